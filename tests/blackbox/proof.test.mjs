// proof.test.mjs - the notification proof verifiers themselves, without a
// gateway: trees built here per RFC 9162 §2.1 (MTH with k = the largest power
// of two < n, PATH(m, D[n]) of §2.1.3.1) for sizes 1..20, checked with the
// test helper (lib/notification.mjs, node:crypto + jose) and with the browser
// client's verifier (web-demo/lib/notify-client.js, WebCrypto). Both must
// accept every index and reject a wrong index, a wrong or missing path
// element, other claims, and a batch signed with another key.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';

import { jose } from './lib/keys.mjs';
import { verifyNotification, verifyInclusion, leafHash, mth, inclusionPath, makeBatchFrames, nodeHash } from './lib/notification.mjs';
import * as client from '../../web-demo/lib/notify-client.js';

let keyPair;
let otherPair;
let jwksDoc;
let keySet;
const KID = 'proof-test';

/** A stand-in for the client's JwksCache: {get(kid), subtle}. */
const clientJwks = () => ({
  subtle: globalThis.crypto.subtle,
  async get(kid) {
    return kid === KID ? keyPair.publicKey : null;
  },
});

const claimsFor = (i, extra = {}) => ({
  iss: 'notify-gateway',
  installation: 'inst-1',
  sub: `user-${i}`,
  ctx: 'jira:issue:P-1',
  iat: Math.floor(Date.now() / 1000),
  exp: Math.floor(Date.now() / 1000) + 600,
  jti: randomBytes(16).toString('hex'),
  seq: 1,
  n: { id: 'n-1', type: 'info', title: `t${i}`, description: 'd', actions: [], rule: 'r', eventType: 'e' },
  ...extra,
});

const expectFor = (claims) => ({ sub: claims.sub, contexts: new Set([claims.ctx]), installation: claims.installation, issuer: 'notify-gateway' });

async function clientVerdict(frame, jwks = clientJwks()) {
  const claims = JSON.parse(Buffer.from(frame.claims, 'base64url').toString('utf8'));
  try {
    await client.verifyNotification(frame, jwks, expectFor(claims));
    return 'ok';
  } catch (e) {
    return e.reason || `threw ${e.message}`;
  }
}

async function helperVerdict(frame, key = keySet) {
  try {
    await verifyNotification(frame, key, { issuer: 'notify-gateway' });
    return 'ok';
  } catch (e) {
    return `rejected: ${e.message}`;
  }
}

before(async () => {
  keyPair = await jose.generateKeyPair('ES256', { extractable: true });
  otherPair = await jose.generateKeyPair('ES256', { extractable: true });
  jwksDoc = { keys: [{ ...(await jose.exportJWK(keyPair.publicKey)), kid: KID, alg: 'ES256', use: 'sig' }] };
  keySet = jose.createLocalJWKSet(jwksDoc);
});

describe('RFC 9162 reference trees', () => {
  test('MTH and PATH follow the RFC on a hand-built 3-leaf tree', () => {
    const d = [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')];
    const [a, b, c] = d.map(leafHash);
    const root = nodeHash(nodeHash(a, b), c);
    assert.deepEqual(mth(d), root);
    assert.deepEqual(inclusionPath(0, d), [b, c]);
    assert.deepEqual(inclusionPath(1, d), [a, c]);
    assert.deepEqual(inclusionPath(2, d), [nodeHash(a, b)]);
    assert.deepEqual(mth([d[0]]), a);
    assert.deepEqual(inclusionPath(0, [d[0]]), []);
  });

  test('sizes 1..20: every index verifies; a wrong index, a wrong or missing path element, another leaf do not', () => {
    for (let n = 1; n <= 20; n++) {
      const leaves = Array.from({ length: n }, (_, i) => Buffer.from(`leaf ${i} of ${n} ${randomBytes(4).toString('hex')}`));
      const root = mth(leaves);
      for (let m = 0; m < n; m++) {
        const path = inclusionPath(m, leaves);
        const leaf = leafHash(leaves[m]);
        const what = `n=${n} m=${m}`;
        assert.ok(verifyInclusion(leaf, m, path, n, root), `${what}: valid proof rejected`);
        for (let w = -1; w <= n; w++) {
          if (w !== m) assert.ok(!verifyInclusion(leaf, w, path, n, root), `${what}: accepted with index ${w}`);
        }
        assert.ok(!verifyInclusion(leaf, m + 0.5, path, n, root), `${what}: accepted a fractional index`);
        assert.ok(!verifyInclusion(leaf, m, [...path, randomBytes(32)], n, root), `${what}: accepted a path one too long`);
        assert.ok(!verifyInclusion(leaf, m, [...path, root], n, root), `${what}: accepted the root appended to the path`);
        for (let j = 0; j < path.length; j++) {
          assert.ok(!verifyInclusion(leaf, m, path.filter((_, k) => k !== j), n, root), `${what}: accepted without path[${j}]`);
          const bad = path.map((p) => Buffer.from(p));
          bad[j][7] ^= 1;
          assert.ok(!verifyInclusion(leaf, m, bad, n, root), `${what}: accepted with path[${j}] altered`);
        }
        const other = leafHash(leaves[(m + 1) % n]);
        if (n > 1) assert.ok(!verifyInclusion(other, m, path, n, root), `${what}: accepted another leaf`);
        // the leaf is hashed with the 0x00 prefix: the raw SHA-256 of the bytes is not it
        assert.ok(!verifyInclusion(createHash('sha256').update(leaves[m]).digest(), m, path, n, root), `${what}: accepted an unprefixed leaf hash`);
      }
    }
  });
});

describe('the verifiers on signed batches', () => {
  test('sizes 1..20: test helper and browser client accept every index and reject a wrong one', async () => {
    for (let n = 1; n <= 20; n++) {
      const claims = Array.from({ length: n }, (_, i) => claimsFor(i));
      const frames = await makeBatchFrames(claims, keyPair.privateKey, { kid: KID });
      assert.ok(frames.every((f) => f.proof.batch === frames[0].proof.batch));
      for (let m = 0; m < n; m++) {
        const f = frames[m];
        const what = `n=${n} m=${m}`;
        const ok = await verifyNotification(f, keySet, { issuer: 'notify-gateway' });
        assert.deepEqual(ok.claims, claims[m], what);
        assert.equal(ok.size, n);
        assert.equal(ok.protectedHeader.kid, KID);
        assert.equal(await clientVerdict(f), 'ok', what);
        for (const w of new Set([(m + 1) % n, m === 0 ? n - 1 : m - 1, n, -1])) {
          if (w === m) continue;
          const bad = { ...f, proof: { ...f.proof, index: w } };
          assert.match(await helperVerdict(bad), /^rejected/, `${what}: helper accepted index ${w}`);
          assert.equal(await clientVerdict(bad), 'bad_signature', `${what}: client, index ${w}`);
        }
      }
    }
  });

  test('tampered frames are rejected by both verifiers', async () => {
    const claims = Array.from({ length: 7 }, (_, i) => claimsFor(i));
    const frames = await makeBatchFrames(claims, keyPair.privateKey, { kid: KID });
    const f = frames[3];
    const bytes = Buffer.from(f.claims, 'base64url');
    const flipByte = Buffer.from(bytes);
    flipByte[Math.floor(bytes.length / 2)] ^= 0x01;
    // re-signed: the same payload (same root) under another key with our kid
    const forgedBatch = await new jose.SignJWT(jose.decodeJwt(f.proof.batch))
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: KID }).sign(otherPair.privateKey);
    const [h, , sig] = f.proof.batch.split('.');
    const cases = {
      'one claims byte altered': { ...f, claims: flipByte.toString('base64url') },
      'another recipient\'s claims': { ...f, claims: frames[4].claims },
      'readdressed claims (sub)': { ...f, claims: Buffer.from(JSON.stringify({ ...claims[3], sub: 'user-4' })).toString('base64url') },
      'index changed': { ...f, proof: { ...f.proof, index: 4 } },
      'path element dropped': { ...f, proof: { ...f.proof, path: f.proof.path.slice(1) } },
      'last path element dropped': { ...f, proof: { ...f.proof, path: f.proof.path.slice(0, -1) } },
      'path element altered': { ...f, proof: { ...f.proof, path: f.proof.path.map((x, i) => (i === 1 ? frames[0].proof.path[0] : x)) } },
      'path element appended': { ...f, proof: { ...f.proof, path: [...f.proof.path, f.proof.path[0]] } },
      'batch re-signed with another key': { ...f, proof: { ...f.proof, batch: forgedBatch } },
      'batch signature truncated': { ...f, proof: { ...f.proof, batch: f.proof.batch.slice(0, -4) } },
      'batch payload with another root': {
        ...f,
        proof: { ...f.proof, batch: `${h}.${Buffer.from(JSON.stringify({ ...jose.decodeJwt(f.proof.batch), root: leafHash(bytes).toString('base64url') })).toString('base64url')}.${sig}` },
      },
      'another batch\'s proof': { ...f, proof: (await makeBatchFrames(claims, keyPair.privateKey, { kid: KID }))[3].proof },
    };
    // sanity: the untouched frame passes
    assert.equal(await helperVerdict(f), 'ok');
    assert.equal(await clientVerdict(f), 'ok');
    for (const [name, bad] of Object.entries(cases)) {
      if (name === 'another batch\'s proof') {
        // the same claims bytes in an equivalent batch DO verify (jti makes real leaves unique)
        assert.equal(await helperVerdict(bad), 'ok', name);
        continue;
      }
      assert.match(await helperVerdict(bad), /^rejected/, `helper accepted: ${name}`);
      const verdict = await clientVerdict(bad);
      assert.ok(['bad_signature', 'malformed'].includes(verdict), `client: ${name} → ${verdict}`);
      if (!/truncated/.test(name)) assert.equal(verdict, 'bad_signature', `client: ${name}`);
    }
  });

  test('the client: alg other than ES256 is bad_alg, an unknown kid unknown_kid, a wrong issuer wrong_iss', async () => {
    const claims = [claimsFor(0), claimsFor(1)];
    const hs = await makeBatchFrames(claims, keyPair.privateKey, { kid: KID });
    const [h, p, s] = hs[0].proof.batch.split('.');
    const header = JSON.parse(Buffer.from(h, 'base64url').toString());
    const noneAlg = `${Buffer.from(JSON.stringify({ ...header, alg: 'none' })).toString('base64url')}.${p}.${s}`;
    assert.equal(await clientVerdict({ ...hs[0], proof: { ...hs[0].proof, batch: noneAlg } }), 'bad_alg');
    assert.match(await helperVerdict({ ...hs[0], proof: { ...hs[0].proof, batch: noneAlg } }), /^rejected/);
    const otherKid = await makeBatchFrames(claims, keyPair.privateKey, { kid: 'nobody' });
    assert.equal(await clientVerdict(otherKid[0]), 'unknown_kid');
    assert.match(await helperVerdict(otherKid[0]), /^rejected/);
    const otherIss = await makeBatchFrames(claims, keyPair.privateKey, { kid: KID, iss: 'someone-else' });
    assert.equal(await clientVerdict(otherIss[1]), 'wrong_iss');
    assert.match(await helperVerdict(otherIss[1]), /^rejected/);
    // claims whose iss differs while the batch's is right: also refused
    const mixed = await makeBatchFrames([claimsFor(0, { iss: 'someone-else' })], keyPair.privateKey, { kid: KID });
    assert.match(await helperVerdict(mixed[0]), /^rejected/);
  });

  test('the client verifies each batch signature once (cache), and not a failed one', async () => {
    const claims = Array.from({ length: 5 }, (_, i) => claimsFor(i));
    const frames = await makeBatchFrames(claims, keyPair.privateKey, { kid: KID });
    let verifies = 0;
    const subtle = globalThis.crypto.subtle;
    const counting = {
      subtle: {
        verify: (...a) => {
          verifies++;
          return subtle.verify(...a);
        },
        digest: (...a) => subtle.digest(...a),
      },
      get: async (kid) => (kid === KID ? keyPair.publicKey : null),
    };
    for (const f of frames) assert.equal(await clientVerdict(f, counting), 'ok');
    assert.equal(verifies, 1, 'one ECDSA verification for five messages of one batch');
    const [h, p, s] = frames[0].proof.batch.split('.');
    const badSig = `${h}.${p}.${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
    for (let i = 0; i < 2; i++) assert.equal(await clientVerdict({ ...frames[0], proof: { ...frames[0].proof, batch: badSig } }, counting), 'bad_signature');
    assert.equal(verifies, 3, 'a failed batch is verified again');
    // a good frame after the bad ones is still fine
    assert.equal(await clientVerdict(frames[1], counting), 'ok');
    assert.equal(verifies, 3);
  });

  test('the client: frames without claims/proof are malformed', async () => {
    const [f] = await makeBatchFrames([claimsFor(0)], keyPair.privateKey, { kid: KID });
    const jwks = clientJwks();
    for (const bad of [
      'a.b.c',
      { op: 'notification', jws: f.proof.batch },
      { ...f, proof: undefined },
      { ...f, claims: 'not base64url!' },
      { ...f, proof: { ...f.proof, index: '0' } },
      { ...f, proof: { ...f.proof, path: 'x' } },
    ]) {
      await assert.rejects(client.verifyNotification(bad, jwks, expectFor(claimsFor(0))), (e) => e.reason === 'malformed', JSON.stringify(bad).slice(0, 80));
    }
  });
});
