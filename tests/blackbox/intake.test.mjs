// intake.test.mjs - POST /forge/events: what is accepted (202) and every way
// a request is refused (400/401/405/413/415/503), and that a refused event
// delivers nothing.
//
// "Delivers nothing" is checked without sleeping: every case has its own
// user U and context C with a subscribed websocket. After the refused request
// a valid event for (U, C) is posted; batches are released in acceptance
// order, so the FIRST notification U's client receives must be that valid
// one, with seq 1 (a refused event that slipped through would come first, or
// at least have consumed seq 1).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';

import { startGateway, fixture } from './lib/gateway.mjs';
import { readFileSync } from 'node:fs';
import { makeKeys, mintFit, mintSub, unsignedToken, tamperPayload, fitClaims, jose, now, newInstallation, INSTALLATION } from './lib/keys.mjs';
import { postEvent, request } from './lib/http.mjs';
import { subscriber } from './lib/ws.mjs';
import { claimsOf } from './lib/notification.mjs';
import { bugEvent, envelope, uniqueUser, ctxOf } from './lib/events.mjs';

let keys;
let gw;
const clients = [];

before(async () => {
  keys = await makeKeys();
  gw = await startGateway({ keys });
});

after(async () => {
  for (const c of clients) c.close();
  if (gw) await gw.stop();
});

let caseNo = 0;
/** A fresh user, context and subscribed client for one case. */
async function target() {
  caseNo += 1;
  const user = uniqueUser('in');
  const key = `IN-${caseNo}`;
  const ctx = ctxOf(key);
  const client = await subscriber(gw, await mintSub(keys, { sub: user, ctx: [ctx] }), [ctx], { name: `client-${key}` });
  clients.push(client);
  return { user, key, ctx, client, event: bugEvent({ key, assignee: user, summary: `refused ${key}` }) };
}

/** Posts a valid sentinel event for t and asserts it is the first and only notification t received. */
async function assertNothingDeliveredBefore(t) {
  const summary = `sentinel ${t.key} ${randomBytes(4).toString('hex')}`;
  const res = await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key: t.key, assignee: t.user, summary })));
  assert.equal(res.status, 202, `sentinel refused: ${res.text}\n${gw.diag()}`);
  const [first] = await t.client.waitNotifications(1);
  const claims = claimsOf(first);
  assert.equal(claims.n.description, summary, `the first notification is not the sentinel: ${t.client.dump()}`);
  assert.equal(claims.seq, 1, `sentinel has seq ${claims.seq}: a refused event consumed a seq`);
  await t.client.roundTrip();
  assert.equal(t.client.notifications().length, 1, t.client.dump());
}

/** Asserts t's client received exactly the notifications with these descriptions (in order), after a round trip. */
async function assertOnly(t, descriptions) {
  await t.client.waitNotifications(descriptions.length);
  // A sentinel proves nothing else is on its way (acceptance order).
  const summary = `only-sentinel ${t.key} ${randomBytes(4).toString('hex')}`;
  const res = await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key: t.key, assignee: t.user, summary })));
  assert.equal(res.status, 202, res.text);
  await t.client.waitFor((f) => f.op === 'notification' && claimsOf(f).n.description === summary, { what: 'the sentinel' });
  const got = t.client.notificationClaims().map((c) => c.n.description);
  assert.deepEqual(got, [...descriptions, summary], t.client.dump());
}

function assertError(res, status, code) {
  assert.equal(res.status, status, `expected ${status} ${code ?? ''}, got ${res.status} ${res.text}\n${gw.diag()}`);
  assert.match(String(res.headers['content-type']), /application\/json/);
  assert.equal(typeof res.json, 'object', `body is not JSON: ${res.text}`);
  if (code) assert.equal(res.json.error, code, res.text);
  assert.equal(typeof res.json.message, 'string', res.text);
}

describe('intake: accepted events', () => {
  test('the {"payload": event} envelope is accepted (202) and delivered', async () => {
    const t = await target();
    const res = await postEvent(gw.port, await mintFit(keys), envelope(t.event));
    assert.equal(res.status, 202, res.text);
    assert.equal(res.json.status, 'accepted');
    assert.equal(typeof res.json.traceId, 'string');
    assert.ok(res.json.traceId.length > 0);
    const [n] = await t.client.waitNotifications(1);
    const c = claimsOf(n);
    assert.equal(c.sub, t.user);
    assert.equal(c.ctx, t.ctx);
    assert.equal(c.seq, 1);
    assert.equal(c.n.description, t.event.issue.fields.summary);
  });

  test('a bare event is accepted (202) and delivered', async () => {
    const t = await target();
    const res = await postEvent(gw.port, await mintFit(keys), t.event);
    assert.equal(res.status, 202, res.text);
    assert.equal(res.json.status, 'accepted');
    const [n] = await t.client.waitNotifications(1);
    assert.equal(claimsOf(n).n.title, `New bug ${t.key}`);
  });

  test('a retry redelivery (retryContext inside payload) is accepted', async () => {
    const t = await target();
    const ev = { ...t.event, retryContext: { retryData: null, retryCount: 2, retryReason: 'INVALID_REMOTE_INVOCATION_ERROR' } };
    const res = await postEvent(gw.port, await mintFit(keys), envelope(ev));
    assert.equal(res.status, 202, res.text);
    await t.client.waitNotifications(1);
  });

  test('a lifecycle event without eventType (avi:forge:installed:app payload) is accepted', async () => {
    const installed = JSON.parse(readFileSync(fixture('forge-installed-app.json'), 'utf8'));
    installed.id = randomBytes(16).toString('hex');
    const res = await postEvent(gw.port, await mintFit(keys), envelope(installed));
    assert.equal(res.status, 202, res.text);
    assert.equal(res.json.status, 'accepted');
  });

  test('x-b3-traceid (hex) is echoed as traceId', async () => {
    const trace = randomBytes(8).toString('hex');
    const t = await target();
    const res = await postEvent(gw.port, await mintFit(keys), envelope(t.event), {
      headers: { 'x-b3-traceid': trace, 'x-b3-spanid': randomBytes(8).toString('hex') },
    });
    assert.equal(res.status, 202, res.text);
    assert.equal(res.json.traceId, trace);
  });

  test('a non-hex x-b3-traceid is not echoed; the gateway makes a hex traceId', async () => {
    const t = await target();
    const res = await postEvent(gw.port, await mintFit(keys), envelope(t.event), { headers: { 'x-b3-traceid': 'not hex <script>' } });
    assert.equal(res.status, 202, res.text);
    assert.match(res.json.traceId, /^[0-9a-f]+$/);
  });

  test('Content-Type application/json; charset=utf-8 is accepted', async () => {
    const t = await target();
    const res = await postEvent(gw.port, await mintFit(keys), envelope(t.event), {
      headers: { 'Content-Type': 'application/json; charset=utf-8' },
    });
    assert.equal(res.status, 202, res.text);
  });

  test('a FIT that expired 30 s ago is still accepted (60 s leeway)', async () => {
    const t = now();
    const tok = await mintFit(keys, { claims: { iat: t - 55, nbf: t - 55, exp: t - 30 } });
    const tg = await target();
    const res = await postEvent(gw.port, tok, envelope(tg.event));
    assert.equal(res.status, 202, res.text);
  });

  test('a FIT whose nbf is 30 s ahead is accepted (60 s leeway)', async () => {
    const t = now();
    const tok = await mintFit(keys, { claims: { iat: t, nbf: t + 30, exp: t + 55 } });
    const tg = await target();
    const res = await postEvent(gw.port, tok, envelope(tg.event));
    assert.equal(res.status, 202, res.text);
  });

  test('aud given as an array holding the app ARI is accepted', async () => {
    const tok = await mintFit(keys, { claims: { aud: ['ari:cloud:ecosystem::app/other', keys.appId] } });
    const tg = await target();
    const res = await postEvent(gw.port, tok, envelope(tg.event));
    assert.equal(res.status, 202, res.text);
  });
});

describe('intake: 401 for every FIT defect, and nothing delivered', () => {
  const otherRsa = () => jose.generateKeyPair('RS256', { extractable: true });
  const cases = [
    ['no Authorization header', 'token_missing', async () => null],
    ['Authorization: Basic', 'token_missing', async () => ({ header: 'Basic dXNlcjpwYXNz' })],
    ['Bearer with an empty token', 'token_missing', async () => ({ header: 'Bearer ' })],
    ['a token that is not a JWS', 'token_malformed', async () => 'not-a-jwt'],
    ['a token with garbage base64 parts', 'token_malformed', async () => '!!!.@@@.###'],
    ['alg none (unsigned)', 'token_bad_alg', async () => unsignedToken(fitClaims(keys), { alg: 'none', typ: 'JWT', kid: keys.kid })],
    ['HS256 signed with the RSA public key PEM as the HMAC secret', 'token_bad_alg', async () =>
      mintFit(keys, { alg: 'HS256', key: new TextEncoder().encode(keys.fitPublicPem) })],
    ['ES256 signed', 'token_bad_alg', async () => {
      const { privateKey } = await jose.generateKeyPair('ES256');
      return mintFit(keys, { alg: 'ES256', key: privateKey });
    }],
    ['RS512 signed with the right key', 'token_bad_alg', async () =>
      mintFit(keys, { alg: 'RS512', key: await jose.importPKCS8(await jose.exportPKCS8(keys.fitPrivateKey), 'RS512') })],
    ['PS256 signed with the right key', 'token_bad_alg', async () =>
      mintFit(keys, { alg: 'PS256', key: await jose.importPKCS8(await jose.exportPKCS8(keys.fitPrivateKey), 'PS256') })],
    ['expired beyond the leeway', 'token_expired', async () => {
      const t = now();
      return mintFit(keys, { claims: { iat: t - 300, nbf: t - 300, exp: t - 120 } });
    }],
    ['nbf in the future beyond the leeway', 'token_not_yet_valid', async () => {
      const t = now();
      return mintFit(keys, { claims: { iat: t, nbf: t + 300, exp: t + 400 } });
    }],
    ['wrong iss', 'token_bad_issuer', async () => mintFit(keys, { claims: { iss: 'forge/context-token' } })],
    ['wrong aud', 'token_bad_audience', async () =>
      mintFit(keys, { claims: { aud: 'ari:cloud:ecosystem::app/11111111-2222-4333-8444-555555555555' } })],
    ['no aud', 'token_bad_audience', async () => mintFit(keys, { omit: ['aud'] })],
    ['unknown kid', 'token_unknown_kid', async () => mintFit(keys, { header: { kid: 'some-other-kid' } })],
    ['no kid', 'token_unknown_kid', async () => mintFit(keys, { header: { kid: undefined } })],
    ['tampered payload (aud kept, claims changed)', 'token_bad_signature', async () =>
      tamperPayload(await mintFit(keys), (c) => { c.app.installationId = 'ari:cloud:ecosystem::installation/evil'; })],
    ['signed by another RSA key under the known kid', 'token_bad_signature', async () =>
      mintFit(keys, { key: (await otherRsa()).privateKey })],
    ['signature stripped', 'token_bad_signature', async () => {
      const [h, p] = (await mintFit(keys)).split('.');
      return `${h}.${p}.`;
    }],
    ['no exp', 'token_bad_claims', async () => mintFit(keys, { omit: ['exp'] })],
    ['no app.installationId', 'token_bad_claims', async () => {
      const c = fitClaims(keys);
      delete c.app.installationId;
      return mintFit(keys, { claims: { app: c.app } });
    }],
    ['no app claim at all', 'token_bad_claims', async () => mintFit(keys, { omit: ['app'] })],
    ['exp not a number', 'token_bad_claims', async () => mintFit(keys, { claims: { exp: 'tomorrow' } })],
  ];
  for (const [name, code, make] of cases) {
    test(`${name} → 401 ${code}`, async () => {
      const t = await target();
      const made = await make();
      let res;
      if (made && typeof made === 'object') {
        res = await request(gw.port, {
          method: 'POST', path: '/forge/events', body: JSON.stringify(envelope(t.event)),
          headers: { 'Content-Type': 'application/json', Authorization: made.header },
        });
      } else {
        res = await postEvent(gw.port, made, envelope(t.event));
      }
      assertError(res, 401, code);
      await assertNothingDeliveredBefore(t);
    });
  }
});

describe('intake: 400/405/413/415 and nothing delivered', () => {
  test('malformed JSON → 400 with line, column and position', async () => {
    const t = await target();
    const good = JSON.stringify(envelope(t.event));
    // Cut the body in the middle of line 3 and add a stray token there.
    const body = '{\n  "payload":\n    ' + good.slice(good.indexOf(':') + 1, good.indexOf(':') + 40) + ' ]]]\n}';
    const res = await postEvent(gw.port, await mintFit(keys), body);
    assertError(res, 400, 'malformed_json');
    assert.equal(res.json.line, 3, res.text);
    assert.equal(typeof res.json.column, 'number', res.text);
    assert.ok(res.json.column > 0, res.text);
    assert.equal(typeof res.json.position, 'number', res.text);
    assert.ok(res.json.position > 15 && res.json.position <= Buffer.byteLength(body), res.text);
    await assertNothingDeliveredBefore(t);
  });

  test('a truncated body → 400 malformed_json', async () => {
    const t = await target();
    const good = JSON.stringify(envelope(t.event));
    const res = await postEvent(gw.port, await mintFit(keys), good.slice(0, good.length - 5));
    assertError(res, 400, 'malformed_json');
    assert.equal(res.json.line, 1, res.text);
    await assertNothingDeliveredBefore(t);
  });

  const invalid = [
    ['an event without eventType', (t) => { const e = structuredClone(t.event); delete e.eventType; return envelope(e); }],
    ['eventType not a string', (t) => ({ payload: { ...t.event, eventType: 42 } })],
    ['eventType empty', (t) => ({ payload: { ...t.event, eventType: '' } })],
    ['payload a string', () => ({ payload: 'avi:jira:created:issue' })],
    ['payload an array', (t) => ({ payload: [t.event] })],
    ['payload null', () => ({ payload: null })],
    ['the body an array', (t) => [t.event]],
    ['the body a string', () => 'avi:jira:created:issue'],
  ];
  for (const [name, make] of invalid) {
    test(`${name} → 400 invalid_event`, async () => {
      const t = await target();
      const res = await postEvent(gw.port, await mintFit(keys), JSON.stringify(make(t)));
      assertError(res, 400, 'invalid_event');
      await assertNothingDeliveredBefore(t);
    });
  }

  test('an empty body → 400', async () => {
    const t = await target();
    const res = await postEvent(gw.port, await mintFit(keys), '');
    assertError(res, 400);
    await assertNothingDeliveredBefore(t);
  });

  test('Content-Length over limits.max_body (204800) → 413', async () => {
    const t = await target();
    const ev = structuredClone(t.event);
    ev.issue.fields.description = 'x'.repeat(210000);
    const body = JSON.stringify(envelope(ev));
    assert.ok(Buffer.byteLength(body) > 204800);
    const res = await postEvent(gw.port, await mintFit(keys), body);
    assertError(res, 413, 'payload_too_large');
    await assertNothingDeliveredBefore(t);
  });

  // docs/protocol.md: without Content-Length the answer is 411 (libwebsockets
  // 4.1.6 cannot read chunked request bodies; Forge always sends a length).
  test('a chunked body over limits.max_body (no Content-Length) → 411 or 413, nothing delivered', async () => {
    const t = await target();
    const ev = structuredClone(t.event);
    ev.issue.fields.description = 'y'.repeat(260000);
    const body = Buffer.from(JSON.stringify(envelope(ev)));
    const chunks = [];
    for (let i = 0; i < body.length; i += 16384) chunks.push(body.subarray(i, i + 16384));
    // Expect: 100-continue lets the gateway refuse before the body is sent
    // (otherwise its early answer races with our writes; see the report).
    const res = await request(gw.port, {
      method: 'POST', path: '/forge/events', chunks, expectContinue: true,
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await mintFit(keys)}`, 'Transfer-Encoding': 'chunked' },
    });
    assert.ok(res.status === 411 || res.status === 413, `expected 411/413, got ${res.status} ${res.text}`);
    assertError(res, res.status, res.status === 411 ? 'length_required' : 'payload_too_large');
    await assertNothingDeliveredBefore(t);
  });

  test('a small chunked body (no Content-Length) is answered (411 length_required), not left hanging', async () => {
    const t = await target();
    const body = Buffer.from(JSON.stringify(envelope(t.event)));
    const chunks = [];
    for (let i = 0; i < body.length; i += 100) chunks.push(body.subarray(i, i + 100));
    const res = await request(gw.port, {
      method: 'POST', path: '/forge/events', chunks,
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await mintFit(keys)}`, 'Transfer-Encoding': 'chunked' },
    });
    assertError(res, 411, 'length_required');
    await assertNothingDeliveredBefore(t);
  });

  for (const [name, ct] of [['text/plain', 'text/plain'], ['application/x-www-form-urlencoded', 'application/x-www-form-urlencoded'], ['no Content-Type', null]]) {
    test(`Content-Type ${name} → 415`, async () => {
      const t = await target();
      const headers = { Authorization: `Bearer ${await mintFit(keys)}` };
      if (ct) headers['Content-Type'] = ct;
      const res = await request(gw.port, { method: 'POST', path: '/forge/events', headers, body: JSON.stringify(envelope(t.event)) });
      assertError(res, 415);
      await assertNothingDeliveredBefore(t);
    });
  }

  for (const method of ['GET', 'PUT', 'DELETE']) {
    test(`${method} /forge/events → 405 with Allow: POST`, async () => {
      const t = await target();
      const res = await request(gw.port, {
        method, path: '/forge/events',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await mintFit(keys)}` },
        body: method === 'GET' ? undefined : JSON.stringify(envelope(t.event)),
      });
      assertError(res, 405);
      assert.match(String(res.headers.allow), /POST/);
      await assertNothingDeliveredBefore(t);
    });
  }
});

describe('intake: redelivery and installations', () => {
  test('the same event posted again is answered 202 duplicate and delivered once', async () => {
    const t = await target();
    const first = await postEvent(gw.port, await mintFit(keys), envelope(t.event));
    assert.equal(first.status, 202, first.text);
    assert.equal(first.json.status, 'accepted');
    const again = await postEvent(gw.port, await mintFit(keys), envelope(t.event));
    assert.equal(again.status, 202, again.text);
    assert.equal(again.json.status, 'duplicate', again.text);
    // A redelivery as Forge sends it: retryContext inside payload, members in another order.
    const retried = { retryContext: { retryData: null, retryCount: 1, retryReason: 'TIMEOUT_ERROR' } };
    for (const k of Object.keys(t.event).reverse()) retried[k] = t.event[k];
    const redelivered = await postEvent(gw.port, await mintFit(keys), envelope(retried));
    assert.equal(redelivered.status, 202, redelivered.text);
    assert.equal(redelivered.json.status, 'duplicate', redelivered.text);
    // The bare form of the same event is the same event.
    const bare = await postEvent(gw.port, await mintFit(keys), t.event);
    assert.equal(bare.json?.status, 'duplicate', bare.text);
    await assertOnly(t, [t.event.issue.fields.summary]);
  });

  test('a refused attempt does not count: the redelivery of a 401 event is accepted', async () => {
    const t = await target();
    const bad = await postEvent(gw.port, 'garbage', envelope(t.event));
    assert.equal(bad.status, 401);
    const retried = { ...t.event, retryContext: { retryData: null, retryCount: 1, retryReason: 'INVALID_FORGE_INVOCATION_TOKEN' } };
    const res = await postEvent(gw.port, await mintFit(keys), envelope(retried));
    assert.equal(res.status, 202, res.text);
    assert.equal(res.json.status, 'accepted', res.text);
    await assertOnly(t, [t.event.issue.fields.summary]);
  });

  test('the same event from another installation is a different event, delivered only there', async () => {
    const t = await target(); // installation INSTALLATION
    const other = newInstallation();
    const oc = await subscriber(gw, await mintSub(keys, { sub: t.user, ctx: [t.ctx], installation: other }), [t.ctx], { name: 'other-installation' });
    clients.push(oc);
    const a = await postEvent(gw.port, await mintFit(keys, { installation: other }), envelope(t.event));
    assert.equal(a.status, 202, a.text);
    assert.equal(a.json.status, 'accepted');
    const [n] = await oc.waitNotifications(1);
    const c = claimsOf(n);
    assert.equal(c.installation, other);
    assert.equal(c.seq, 1);
    const b = await postEvent(gw.port, await mintFit(keys), envelope(t.event));
    assert.equal(b.status, 202, b.text);
    assert.equal(b.json.status, 'accepted', 'the same event of another installation is not a duplicate');
    const [m] = await t.client.waitNotifications(1);
    const d = claimsOf(m);
    assert.equal(d.installation, INSTALLATION);
    assert.equal(d.seq, 1, 'seq is per (installation, user)');
    await oc.roundTrip();
    assert.equal(oc.notifications().length, 1, oc.dump());
  });
});

describe('intake: 503 + Retry-After when the intake queue is full', () => {
  let gw2;
  let keys2;
  before(async () => {
    keys2 = await makeKeys();
    gw2 = await startGateway({ keys: keys2, args: ['--limits-queue', '1', '--workers', '1'] });
  });
  after(async () => {
    if (gw2) await gw2.stop();
  });

  test('a concurrent burst gets 503s with Retry-After; exactly the 202s are delivered, once each', async () => {
    const user = uniqueUser('q');
    const key = 'QUEUE-1';
    const ctx = ctxOf(key);
    const client = await subscriber(gw2, await mintSub(keys2, { sub: user, ctx: [ctx] }), [ctx], { name: 'queue-client' });
    clients.push(client);
    const accepted = [];
    const refused = [];
    let index = 0;
    for (let round = 0; round < 8 && refused.length === 0; round++) {
      const batch = [];
      for (let i = 0; i < 60; i++) {
        const n = index++;
        batch.push((async () => {
          const tok = await mintFit(keys2);
          return { n, tok };
        })());
      }
      const toks = await Promise.all(batch);
      const results = await Promise.all(toks.map(({ n, tok }) =>
        postEvent(gw2.port, tok, envelope(bugEvent({ key, assignee: user, summary: `burst ${n}` })), { timeout: 20000 })
          .then((res) => ({ n, res }))));
      for (const { n, res } of results) {
        if (res.status === 202) accepted.push(n);
        else if (res.status === 503) refused.push({ n, res });
        else assert.fail(`event ${n}: unexpected ${res.status} ${res.text}`);
      }
    }
    assert.ok(refused.length > 0, `no 503 in ${index} concurrent posts with --limits-queue 1 --workers 1\n${gw2.diag()}`);
    for (const { res } of refused) {
      assert.match(String(res.headers['retry-after']), /^\d+$/, `503 without a numeric Retry-After: ${JSON.stringify(res.headers)}`);
      assert.ok(Number(res.headers['retry-after']) >= 1);
      assert.equal(typeof res.json?.error, 'string', res.text);
    }
    // Exactly the accepted ones arrive, each once, in seq order 1..N.
    const notes = await client.waitNotifications(accepted.length, { timeout: 20000 });
    // A sentinel (retried while the queue drains) proves nothing else is coming.
    let sentinel;
    for (let i = 0; i < 50; i++) {
      sentinel = await postEvent(gw2.port, await mintFit(keys2), envelope(bugEvent({ key, assignee: user, summary: 'sentinel' })));
      if (sentinel.status !== 503) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(sentinel.status, 202, sentinel.text);
    await client.waitFor((f) => f.op === 'notification' && claimsOf(f).n.description === 'sentinel', { timeout: 10000, what: 'the sentinel' });
    const claims = client.notificationClaims();
    assert.equal(claims.length, accepted.length + 1, `expected ${accepted.length} + sentinel, got ${claims.length}`);
    assert.deepEqual(claims.map((c) => c.seq), claims.map((_, i) => i + 1), 'seq not 1..N');
    const delivered = claims.slice(0, -1).map((c) => Number(c.n.description.replace('burst ', '')));
    assert.deepEqual([...delivered].sort((a, b) => a - b), [...accepted].sort((a, b) => a - b),
      `delivered ${delivered.length} vs accepted ${accepted.length}; refused: ${refused.map((r) => r.n).join(',')}`);
    assert.equal(notes.length >= accepted.length, true);
  });
});

describe('intake: 503 + Retry-After when the verification backlog is full', () => {
  let gw3;
  let keys3;
  before(async () => {
    keys3 = await makeKeys();
    gw3 = await startGateway({ keys: keys3, args: ['--limits-verify-backlog', '1', '--workers', '1'] });
  });
  after(async () => {
    if (gw3) await gw3.stop();
  });

  test('a concurrent burst gets 503 busy with Retry-After; exactly the 202s are delivered', async () => {
    const user = uniqueUser('vb');
    const key = 'BACKLOG-1';
    const ctx = ctxOf(key);
    const client = await subscriber(gw3, await mintSub(keys3, { sub: user, ctx: [ctx] }), [ctx], { name: 'backlog-client' });
    clients.push(client);
    const accepted = [];
    const busy = [];
    let index = 0;
    for (let round = 0; round < 8 && busy.length === 0; round++) {
      const toks = await Promise.all(Array.from({ length: 60 }, () => mintFit(keys3)));
      const results = await Promise.all(toks.map((tok) => {
        const n = index++;
        return postEvent(gw3.port, tok, envelope(bugEvent({ key, assignee: user, summary: `vb ${n}` })), { timeout: 20000 }).then((res) => ({ n, res }));
      }));
      for (const { n, res } of results) {
        if (res.status === 202) accepted.push(n);
        else if (res.status === 503) busy.push(res);
        else assert.fail(`event ${n}: unexpected ${res.status} ${res.text}`);
      }
    }
    assert.ok(busy.length > 0, `no 503 in ${index} concurrent posts with --limits-verify-backlog 1\n${gw3.diag()}`);
    for (const res of busy) {
      assert.match(String(res.headers['retry-after']), /^\d+$/);
      assert.equal(res.json?.error, 'busy', res.text);
    }
    await client.waitNotifications(accepted.length, { timeout: 20000 });
    await client.roundTrip();
    const got = client.notificationClaims().map((c) => Number(c.n.description.slice(3)));
    assert.deepEqual([...got].sort((a, b) => a - b), [...accepted].sort((a, b) => a - b));
    assert.deepEqual(client.notificationClaims().map((c) => c.seq), got.map((_, i) => i + 1));
  });
});
