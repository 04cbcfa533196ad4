// delivery.test.mjs - the websocket protocol at /realtime and who receives
// what: several tabs of one user, other contexts, other users, verification of
// the claims and their batch proof (ES256 batch JWS against
// /.well-known/jwks.json + RFC 9162 inclusion proof, lib/notification.mjs),
// one batch shared by every recipient of an event, tampered proofs refused,
// token refusals, frame errors, unsubscribe, and the rule filters (ignoreSelf,
// expression).
//
// "X receives nothing" is always shown by a later event that X does receive:
// batches are released in acceptance order, so when X's first notification is
// the later one (with the expected seq), nothing earlier reached X.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { rmSync } from 'node:fs';

import { startGateway, tempDir, writeTemp, fixture } from './lib/gateway.mjs';
import { makeKeys, makeSubscriberKey, mintFit, mintSub, gatewayJwks, jose, now, unsignedToken, b64u, INSTALLATION, newInstallation } from './lib/keys.mjs';
import { postEvent, rawUpgrade } from './lib/http.mjs';
import { WsClient, subscriber } from './lib/ws.mjs';
import { claimsOf, verifyNotification } from './lib/notification.mjs';
import { JwksCache, verifyNotification as clientVerify } from '../../web-demo/lib/notify-client.js';
import { bugEvent, updatedEvent, envelope, uniqueUser, ctxOf } from './lib/events.mjs';

let keys;
let gw;
let jwks;
const clients = [];
const track = (c) => {
  clients.push(c);
  return c;
};

before(async () => {
  keys = await makeKeys({ subscriber: 'es256' });
  gw = await startGateway({ keys });
  jwks = await gatewayJwks(gw);
});

after(async () => {
  for (const c of clients) c.close();
  if (gw) await gw.stop();
});

async function post(event) {
  const res = await postEvent(gw.port, await mintFit(keys), envelope(event));
  assert.equal(res.status, 202, `event refused: ${res.text}\n${gw.diag()}`);
  return res;
}

async function open(name) {
  return track(await WsClient.open(gw.wsUrl, { name, diag: () => gw.diag() }));
}

async function sub(user, tokenCtx, subscribeTo, name) {
  return track(await subscriber(gw, await mintSub(keys, { sub: user, ctx: tokenCtx }), subscribeTo, { name }));
}

describe('delivery: who receives a notification', () => {
  test('every tab of the user subscribed to the context gets the same verifiable frame; no one else does', async () => {
    const A = uniqueUser('a');
    const B = uniqueUser('b');
    const X = ctxOf('DEL-1');
    const Y = ctxOf('DEL-2');
    const a1 = await sub(A, [X, Y], [X], 'A-tab1');
    const a2 = await sub(A, [X, Y], [X], 'A-tab2');
    const a3 = await sub(A, [X, Y], [Y], 'A-tab3(Y)');
    const b1 = await sub(B, [X, Y], [X, Y], 'B-tab1');

    const before = now();
    const ev = bugEvent({ key: 'DEL-1', assignee: A, summary: 'Checkout crashes on empty cart' });
    await post(ev);
    const [n1] = await a1.waitNotifications(1);
    const [n2] = await a2.waitNotifications(1);
    assert.equal(typeof n1.text, 'string');
    assert.equal(n1.text, n2.text, 'tabs of one user must get the same frame bytes');
    assert.deepEqual(Object.keys(n1).sort(), ['claims', 'op', 'proof'], 'a notification frame is {op, claims, proof}');
    assert.deepEqual(Object.keys(n1.proof).sort(), ['batch', 'index', 'path']);

    // verifyNotification checks iss in the batch payload and in the claims
    const { claims: payload, batch, protectedHeader, size } = await verifyNotification(n1, jwks.keySet, { issuer: 'notify-gateway' });
    assert.equal(protectedHeader.alg, 'ES256');
    assert.equal(protectedHeader.typ, 'JWT');
    assert.ok(jwks.doc.keys.some((k) => k.kid === protectedHeader.kid), `kid ${protectedHeader.kid} not in the JWKS`);
    assert.equal(batch.iss, 'notify-gateway');
    assert.ok(Number.isInteger(batch.iat) && batch.iat >= before - 5 && batch.iat <= now() + 5, `batch iat ${batch.iat}`);
    assert.ok(size >= 1);
    assert.equal(payload.iss, 'notify-gateway');
    assert.equal(payload.installation, INSTALLATION);
    assert.equal(payload.sub, A);
    assert.equal(payload.ctx, X);
    assert.equal(payload.seq, 1);
    assert.ok(Number.isInteger(payload.iat) && payload.iat >= before - 5 && payload.iat <= now() + 5, `iat ${payload.iat}`);
    assert.ok(Number.isInteger(payload.exp) && payload.exp > payload.iat, `exp ${payload.exp}`);
    assert.equal(payload.exp - payload.iat, 3600, 'default signing.ttl is 3600 s');
    assert.equal(typeof payload.jti, 'string');
    assert.ok(payload.jti.length >= 16);
    assert.equal(typeof payload.n.id, 'string');
    assert.ok(payload.n.id.length > 0);
    assert.deepEqual({ ...payload.n, id: undefined }, {
      id: undefined,
      type: 'warning',
      title: 'New bug DEL-1',
      description: 'Checkout crashes on empty cart',
      actions: [{ text: 'Open', href: '/browse/DEL-1' }],
      rule: 'bug-created',
      eventType: 'avi:jira:created:issue',
    });

    // A's tab subscribed to Y only: its first notification is the next one for Y (seq 2).
    await post(bugEvent({ key: 'DEL-2', assignee: A, summary: 'second' }));
    const [n3] = await a3.waitNotifications(1);
    const c3 = claimsOf(n3);
    assert.equal(c3.ctx, Y);
    assert.equal(c3.seq, 2);
    assert.equal(c3.n.description, 'second');
    // B, subscribed to X and Y: its first notification is its own (seq 1).
    await post(bugEvent({ key: 'DEL-1', assignee: B, summary: 'for B' }));
    const [nb] = await b1.waitNotifications(1);
    const cb = (await verifyNotification(nb, jwks.keySet)).claims;
    assert.equal(cb.sub, B);
    assert.equal(cb.seq, 1);
    assert.equal(cb.n.description, 'for B');
    // Nothing else arrived anywhere.
    for (const [c, n] of [[a1, 1], [a2, 1], [a3, 1], [b1, 1]]) {
      await c.roundTrip();
      assert.equal(c.notifications().length, n, `${c.name}: ${c.dump()}`);
    }
    // And the jti differs per notification.
    assert.notEqual(claimsOf(n1).jti, c3.jti);
  });

  test('one notification addressed to two users: each gets its own claims (own sub), same n.id, one shared batch', async () => {
    const R = uniqueUser('rep');
    const S = uniqueUser('asg');
    const C = ctxOf('DEL-3');
    const r = await sub(R, [C], [C], 'reporter');
    const s = await sub(S, [C], [C], 'assignee');
    await post(updatedEvent({ key: 'DEL-3', reporter: R, assignee: S, summary: 'moved' }));
    const [nr] = await r.waitNotifications(1);
    const [ns] = await s.waitNotifications(1);
    const vr = await verifyNotification(nr, jwks.keySet, { issuer: 'notify-gateway' });
    const vs = await verifyNotification(ns, jwks.keySet, { issuer: 'notify-gateway' });
    const cr = vr.claims;
    const cs = vs.claims;
    assert.equal(nr.proof.batch, ns.proof.batch, 'the recipients of one event share one batch signature');
    assert.notEqual(nr.proof.index, ns.proof.index);
    assert.ok(vr.size >= 2, `batch size ${vr.size}`);
    assert.equal(cr.sub, R);
    assert.equal(cs.sub, S);
    assert.equal(cr.n.id, cs.n.id);
    assert.notEqual(cr.jti, cs.jti);
    assert.equal(cr.n.rule, 'issue-updated');
    assert.equal(cr.n.type, 'info');
    assert.equal(cr.seq, 1);
    assert.equal(cs.seq, 1);
  });

  test('a notification reaches only connections of its installation (same user id and context elsewhere get nothing)', async () => {
    const U = uniqueUser('iso');
    const C = ctxOf('ISO-1');
    const I2 = newInstallation();
    const mine = await sub(U, [C], [C], 'installation-1');
    const theirs = track(await subscriber(gw, await mintSub(keys, { sub: U, ctx: [C], installation: I2 }), [C], { name: 'installation-2' }));
    assert.equal(theirs.frames[0].installation, I2);
    await post(bugEvent({ key: 'ISO-1', assignee: U, summary: 'installation 1 only' }));
    const [n] = await mine.waitNotifications(1);
    assert.equal(claimsOf(n).installation, INSTALLATION);
    // The other installation's first notification is its own event, with seq 1.
    const res = await postEvent(gw.port, await mintFit(keys, { installation: I2 }), envelope(bugEvent({ key: 'ISO-1', assignee: U, summary: 'installation 2 only' })));
    assert.equal(res.status, 202, res.text);
    const [m] = await theirs.waitNotifications(1);
    const c = (await verifyNotification(m, jwks.keySet)).claims;
    assert.equal(c.installation, I2);
    assert.equal(c.n.description, 'installation 2 only');
    assert.equal(c.seq, 1);
    await mine.roundTrip();
    assert.equal(mine.notifications().length, 1, mine.dump());
  });

  test('a refreshed token for another installation → sub_mismatch, close 1008', async () => {
    const U = uniqueUser('mm');
    const C = ctxOf('MM-1');
    const c = await sub(U, [C], [C], 'mismatch');
    c.send({ op: 'connect', token: await mintSub(keys, { sub: U, ctx: [C], installation: newInstallation() }) });
    const err = await c.waitOp('error');
    assert.equal(err.code, 'sub_mismatch');
    assert.equal((await c.waitClose()).code, 1008);
  });

  test('a refreshed token for another user → sub_mismatch, close 1008', async () => {
    const C = ctxOf('MM-2');
    const c = await sub(uniqueUser('mm'), [C], [C], 'mismatch-user');
    c.send({ op: 'connect', token: await mintSub(keys, { sub: uniqueUser('other'), ctx: [C] }) });
    const err = await c.waitOp('error');
    assert.equal(err.code, 'sub_mismatch');
    assert.equal((await c.waitClose()).code, 1008);
  });

  test('the gateway JWKS has the documented shape', async () => {
    assert.ok(Array.isArray(jwks.doc.keys) && jwks.doc.keys.length >= 1, JSON.stringify(jwks.doc));
    for (const k of jwks.doc.keys) {
      assert.equal(k.kty, 'EC');
      assert.equal(k.crv, 'P-256');
      assert.equal(k.alg, 'ES256');
      assert.equal(k.use, 'sig');
      assert.equal(typeof k.kid, 'string');
      assert.equal(Buffer.from(k.x, 'base64url').length, 32);
      assert.equal(Buffer.from(k.y, 'base64url').length, 32);
      assert.equal(k.d, undefined, 'the JWKS must not contain the private key');
    }
  });
});

describe('delivery: one batch proof for every recipient of an event', () => {
  let gwB;
  let jwksB;
  before(async () => {
    gwB = await startGateway({ keys, rules: fixture('batch-rules.yml') });
    jwksB = await gatewayJwks(gwB);
  });
  after(async () => {
    if (gwB) await gwB.stop();
  });

  /** Posts one event addressed to `watchers` in ctx jira:issue:<key>; resolves each recipient's first frame. */
  async function watchedEvent(key, n) {
    const C = ctxOf(key);
    const users = Array.from({ length: n }, () => uniqueUser('w'));
    const tabs = [];
    for (const u of users) tabs.push(track(await subscriber(gwB, await mintSub(keys, { sub: u, ctx: [C] }), [C], { name: `watcher-${tabs.length}` })));
    // the first watcher has a second tab; a bystander on the same context is not a watcher
    const second = track(await subscriber(gwB, await mintSub(keys, { sub: users[0], ctx: [C] }), [C], { name: 'watcher-0-tab2' }));
    const bystander = track(await subscriber(gwB, await mintSub(keys, { sub: uniqueUser('by'), ctx: [C] }), [C], { name: 'bystander' }));
    const ev = { ...updatedEvent({ key, summary: `watched ${key}` }), watchers: users };
    const res = await postEvent(gwB.port, await mintFit(keys), envelope(ev));
    assert.equal(res.status, 202, `${res.text}\n${gwB.diag()}`);
    const frames = [];
    for (const c of tabs) frames.push((await c.waitNotifications(1))[0]);
    const [again] = await second.waitNotifications(1);
    assert.equal(again.text, frames[0].text, 'the two tabs of one watcher get the same frame bytes');
    await bystander.roundTrip();
    for (const c of tabs) await c.roundTrip();
    assert.equal(bystander.notifications().length, 0, bystander.dump());
    for (const c of tabs) assert.equal(c.notifications().length, 1, c.dump());
    return { users, frames, C };
  }

  test('six watchers: every proof verifies, one shared batch, distinct indices, size >= 6', async () => {
    const { users, frames, C } = await watchedEvent('BATCH-1', 6);
    const verified = [];
    for (const f of frames) verified.push(await verifyNotification(f, jwksB.keySet, { issuer: 'notify-gateway' }));
    const batches = new Set(frames.map((f) => f.proof.batch));
    assert.equal(batches.size, 1, 'all recipients of one event share one batch JWS');
    const indices = frames.map((f) => f.proof.index);
    assert.equal(new Set(indices).size, users.length, `indices not distinct: ${indices}`);
    const { size, batch, protectedHeader } = verified[0];
    assert.ok(size >= users.length, `batch size ${size} < ${users.length} recipients`);
    assert.ok(indices.every((i) => Number.isInteger(i) && i >= 0 && i < size), `indices ${indices} outside 0..${size - 1}`);
    assert.equal(protectedHeader.alg, 'ES256');
    assert.equal(protectedHeader.typ, 'JWT');
    assert.ok(jwksB.doc.keys.some((k) => k.kid === protectedHeader.kid), `kid ${protectedHeader.kid} not in the JWKS`);
    assert.deepEqual(Object.keys(batch).sort(), ['iat', 'iss', 'root', 'size']);
    assert.equal(Buffer.from(batch.root, 'base64url').length, 32);
    // a path has the length RFC 9162 gives a leaf of a tree of this size (never more than ceil(log2 size))
    const maxPath = Math.ceil(Math.log2(size));
    for (const f of frames) assert.ok(f.proof.path.length <= maxPath && (size === 1 || f.proof.path.length >= 1), `path length ${f.proof.path.length} for size ${size}`);
    // the claims: one per watcher, its own sub, one shared n.id, distinct jti
    const claims = verified.map((v) => v.claims);
    assert.deepEqual(claims.map((c) => c.sub), users);
    assert.ok(claims.every((c) => c.ctx === C && c.iss === 'notify-gateway' && c.installation === INSTALLATION && c.n.rule === 'watchers'));
    assert.equal(new Set(claims.map((c) => c.n.id)).size, 1);
    assert.equal(new Set(claims.map((c) => c.jti)).size, users.length);
    // the browser client's verifier (WebCrypto) accepts them too, each for its own user only
    const cj = new JwksCache(`${gwB.url}/.well-known/jwks.json`);
    for (const [i, f] of frames.entries()) {
      const expect = { sub: users[i], contexts: new Set([C]), installation: INSTALLATION, issuer: 'notify-gateway' };
      assert.equal((await clientVerify(f, cj, expect)).sub, users[i]);
      await assert.rejects(clientVerify(f, cj, { ...expect, sub: users[(i + 1) % users.length] }), (e) => e.reason === 'wrong_sub');
    }
  });

  test('tampered proofs and claims are refused by the test verifier and the browser client', async () => {
    const { users, frames, C } = await watchedEvent('BATCH-2', 5);
    const f = frames.find((x) => x.proof.path.length >= 2) || frames[0];
    assert.ok(f.proof.path.length >= 1, 'a batch of 5 gives every leaf a non-empty path');
    const g = frames.find((x) => x !== f);
    const i = frames.indexOf(f);
    const bytes = Buffer.from(f.claims, 'base64url');
    const oneByte = Buffer.from(bytes);
    oneByte[Math.floor(bytes.length / 2)] ^= 0x20;
    const altPath = f.proof.path.map((p) => Buffer.from(p, 'base64url'));
    altPath[0][0] ^= 1;
    // the batch payload (same root, size, iss) re-signed with another key, under the gateway's kid
    const [h] = f.proof.batch.split('.');
    const other = await jose.generateKeyPair('ES256');
    const resigned = await new jose.SignJWT(jose.decodeJwt(f.proof.batch))
      .setProtectedHeader(JSON.parse(Buffer.from(h, 'base64url').toString('utf8'))).sign(other.privateKey);
    const withProof = (proof) => ({ ...f, proof: { ...f.proof, ...proof } });
    const cases = [
      ['one byte of the claims altered', { ...f, claims: oneByte.toString('base64url') }],
      ['the claims re-addressed to another recipient', { ...f, claims: Buffer.from(JSON.stringify({ ...JSON.parse(bytes), sub: users[(i + 1) % users.length] })).toString('base64url') }],
      ['another recipient\'s claims with this proof', { ...f, claims: g.claims }],
      ['another index', withProof({ index: g.proof.index })],
      ['index + 1', withProof({ index: f.proof.index + 1 })],
      ['index = size', withProof({ index: jose.decodeJwt(f.proof.batch).size })],
      ['the first path element dropped', withProof({ path: f.proof.path.slice(1) })],
      ['the last path element dropped', withProof({ path: f.proof.path.slice(0, -1) })],
      ['a path element altered', withProof({ path: altPath.map((p) => p.toString('base64url')) })],
      ['a path element appended', withProof({ path: [...f.proof.path, f.proof.path[0]] })],
      ['the batch re-signed with another key', withProof({ batch: resigned })],
    ];
    // the untouched frame passes both, so a rejection below is the tampering's doing
    await verifyNotification(f, jwksB.keySet, { issuer: 'notify-gateway' });
    const cj = new JwksCache(`${gwB.url}/.well-known/jwks.json`);
    const expect = { sub: users[i], contexts: new Set([C]), installation: INSTALLATION, issuer: 'notify-gateway' };
    await clientVerify(f, cj, expect);
    for (const [name, bad] of cases) {
      await assert.rejects(verifyNotification(bad, jwksB.keySet, { issuer: 'notify-gateway' }), `the test verifier accepted: ${name}`);
      const claimsSub = (() => {
        try {
          return JSON.parse(Buffer.from(bad.claims, 'base64url')).sub;
        } catch {
          return users[i];
        }
      })();
      // expect the sub the (tampered) claims name, so only the proof can refuse it
      await assert.rejects(clientVerify(bad, cj, { ...expect, sub: claimsSub }), (e) => e.reason === 'bad_signature', `the browser client: ${name}`);
    }
  });
});

describe('delivery: the websocket protocol', () => {
  test('connect, subscribe and ping sent at once are answered in order', async () => {
    const U = uniqueUser('o');
    const C = ctxOf('ORD-1');
    const c = await open('at-once');
    const token = await mintSub(keys, { sub: U, ctx: [C] });
    c.send({ op: 'connect', token });
    c.send({ op: 'subscribe', ctx: C });
    c.send({ op: 'ping', id: 7 });
    await c.waitOp('pong');
    const ops = c.frames.map((f) => f.op);
    assert.deepEqual(ops, ['connected', 'subscribed', 'pong'], c.dump());
    assert.equal(c.frames[0].sub, U);
    assert.equal(c.frames[0].installation, INSTALLATION);
    assert.deepEqual(c.frames[0].ctx, [C]);
    assert.equal(typeof c.frames[0].exp, 'number');
    assert.equal(c.frames[1].ctx, C);
    assert.equal(c.frames[2].id, 7);
  });

  test('works with the subprotocol "notify-gateway" offered', async () => {
    const U = uniqueUser('p');
    const C = ctxOf('PROTO-1');
    const c = track(await WsClient.open(gw.wsUrl, { name: 'subprotocol', protocols: ['notify-gateway'], diag: () => gw.diag() }));
    c.send({ op: 'connect', token: await mintSub(keys, { sub: U, ctx: [C] }) });
    await c.waitOp('connected');
  });

  test('subprotocols: none or notify-gateway is accepted (101), only unknown ones are refused', async () => {
    for (const proto of ['notify-gateway', 'graphql-ws, notify-gateway']) {
      const res = await rawUpgrade(gw.port, '/realtime', { 'Sec-WebSocket-Protocol': proto });
      assert.equal(res.status, 101, `subprotocol "${proto}": upgrade answered ${res.status} ${res.error ?? ''}`);
      assert.equal(res.headers?.['sec-websocket-protocol'], 'notify-gateway', `subprotocol "${proto}": the chosen one is echoed`);
    }
    const none = await rawUpgrade(gw.port, '/realtime', {});
    assert.equal(none.status, 101);
    const unknown = await rawUpgrade(gw.port, '/realtime', { 'Sec-WebSocket-Protocol': 'something-else' });
    assert.notEqual(unknown.status, 101, 'a client that speaks only other subprotocols is refused');
  });

  test('ping echoes ids of any JSON type', async () => {
    const c = await sub(uniqueUser('ping'), [], [], 'ping');
    for (const id of [1, 'abc', { nested: [1, 2] }, null]) {
      const from = c.frames.length;
      c.send({ op: 'ping', id });
      const pong = await c.waitFor((f) => f.op === 'pong', { from, what: `pong for ${JSON.stringify(id)}` });
      assert.deepEqual(pong.id, id);
    }
  });

  test('subscribe to a context not in the token → ctx_forbidden, the connection stays open', async () => {
    const U = uniqueUser('f');
    const C = ctxOf('ALLOWED-1');
    const c = await sub(U, [C], [], 'forbidden');
    c.send({ op: 'subscribe', ctx: ctxOf('SECRET-1') });
    const err = await c.waitOp('error');
    assert.equal(err.code, 'ctx_forbidden');
    assert.equal(typeof err.message, 'string');
    await c.roundTrip();
    assert.equal(c.closeInfo, null);
    // And nothing for the forbidden context arrives, while the allowed one works.
    await post(bugEvent({ key: 'SECRET-1', assignee: U, summary: 'secret' }));
    c.send({ op: 'subscribe', ctx: C });
    await c.waitFor((f) => f.op === 'subscribed' && f.ctx === C, { what: 'subscribed' });
    await post(bugEvent({ key: 'ALLOWED-1', assignee: U, summary: 'allowed' }));
    const [n] = await c.waitNotifications(1);
    const claims = claimsOf(n);
    assert.equal(claims.n.description, 'allowed');
    assert.equal(claims.seq, 2);
  });

  test('a frame before connect → not_connected, then close 1008', async () => {
    const c = await open('early');
    c.send({ op: 'subscribe', ctx: ctxOf('X-1') });
    const err = await c.waitOp('error');
    assert.equal(err.code, 'not_connected');
    const close = await c.waitClose();
    assert.equal(close.code, 1008);
  });

  test('invalid JSON after connect → bad_frame, the connection stays open', async () => {
    const c = await sub(uniqueUser('bf'), [], [], 'bad-json');
    c.send('{"op": "ping", ');
    const err = await c.waitOp('error');
    assert.equal(err.code, 'bad_frame');
    await c.roundTrip();
    c.send({ no_op: true });
    await c.waitFor((f) => f.op === 'error' && f !== err, { what: 'a second error' });
    assert.equal(c.ops('error')[1].code, 'bad_frame');
    await c.roundTrip();
    assert.equal(c.closeInfo, null);
  });

  test('a binary frame → bad_frame', async () => {
    const c = await sub(uniqueUser('bin'), [], [], 'binary');
    c.ws.send(Buffer.from(JSON.stringify({ op: 'ping', id: 1 })), { binary: true });
    const err = await c.waitOp('error');
    assert.equal(err.code, 'bad_frame');
  });

  test('a frame over limits.ws_max_frame (16384) → frame_too_large, close 1008', async () => {
    const c = await sub(uniqueUser('big'), [], [], 'big-frame');
    c.send({ op: 'ping', id: 'x'.repeat(20000) });
    const err = await c.waitOp('error');
    assert.equal(err.code, 'frame_too_large');
    assert.equal((await c.waitClose()).code, 1008);
  });

  test('an unknown op → unknown_op, the connection stays open', async () => {
    const c = await sub(uniqueUser('uo'), [], [], 'unknown-op');
    c.send({ op: 'teleport' });
    const err = await c.waitOp('error');
    assert.equal(err.code, 'unknown_op');
    await c.roundTrip();
    assert.equal(c.closeInfo, null);
  });

  test('unsubscribe stops delivery for that context only', async () => {
    const U = uniqueUser('un');
    const P = ctxOf('UNSUB-1');
    const Q = ctxOf('UNSUB-2');
    const c = await sub(U, [P, Q], [P], 'unsub');
    await post(bugEvent({ key: 'UNSUB-1', assignee: U, summary: 'while subscribed' }));
    await c.waitNotifications(1);
    c.send({ op: 'unsubscribe', ctx: P });
    const ack = await c.waitOp('unsubscribed');
    assert.equal(ack.ctx, P);
    await post(bugEvent({ key: 'UNSUB-1', assignee: U, summary: 'after unsubscribe' })); // seq 2, to nobody
    c.send({ op: 'subscribe', ctx: Q });
    await c.waitFor((f) => f.op === 'subscribed' && f.ctx === Q, { what: 'subscribed Q' });
    await post(bugEvent({ key: 'UNSUB-2', assignee: U, summary: 'on Q' })); // seq 3
    const notes = await c.waitNotifications(2);
    const claims = notes.map((n) => claimsOf(n));
    assert.deepEqual(claims.map((x) => [x.seq, x.n.description]), [[1, 'while subscribed'], [3, 'on Q']], c.dump());
  });

  test('a connection whose token expires gets token_expired, then close 1008', async () => {
    const U = uniqueUser('exp');
    const C = ctxOf('EXP-1');
    const c = await open('expiring');
    c.send({ op: 'connect', token: await mintSub(keys, { sub: U, ctx: [C], ttl: 3 }) });
    c.send({ op: 'subscribe', ctx: C });
    await c.waitOp('connected');
    const err = await c.waitFor((f) => f.op === 'error', { timeout: 10000, what: 'token_expired' });
    assert.equal(err.code, 'token_expired');
    assert.equal((await c.waitClose()).code, 1008);
  });

  test('a refreshed token (connect again) keeps the user and narrows the contexts', async () => {
    const U = uniqueUser('rf');
    const P = ctxOf('REF-1');
    const Q = ctxOf('REF-2');
    const c = await sub(U, [P, Q], [P, Q], 'refresh');
    c.send({ op: 'connect', token: await mintSub(keys, { sub: U, ctx: [Q] }) });
    await c.waitFor((f, i) => f.op === 'connected' && i > 0, { what: 'second connected' });
    await post(bugEvent({ key: 'REF-1', assignee: U, summary: 'on P' })); // P no longer covered
    await post(bugEvent({ key: 'REF-2', assignee: U, summary: 'on Q' }));
    const [n] = await c.waitNotifications(1);
    const claims = claimsOf(n);
    assert.equal(claims.n.description, 'on Q');
    assert.equal(claims.seq, 2);
  });
});

describe('delivery: subscription tokens that are refused (error frame, then close 1008)', () => {
  const C = ctxOf('TOK-1');
  const cases = [
    ['expired', 'token_expired', async (U) => mintSub(keys, { sub: U, ctx: [C], claims: { iat: now() - 600, exp: now() - 60 } })],
    ['signed with another EC key', 'token_bad_signature', async (U) => {
      const other = await makeSubscriberKey('es256');
      return mintSub(keys, { sub: U, ctx: [C], key: other.signKey });
    }],
    ['HS256 with the configured public key PEM as secret (wrong alg for the key type)', 'token_bad_alg', async (U) =>
      mintSub(keys, { sub: U, ctx: [C], alg: 'HS256', key: new TextEncoder().encode(keys.sub.file) })],
    ['RS256 (wrong alg for an EC key)', 'token_bad_alg', async (U) => {
      const rsa = await makeSubscriberKey('rs256');
      return mintSub(keys, { sub: U, ctx: [C], alg: 'RS256', key: rsa.signKey });
    }],
    ['alg none', 'token_bad_alg', async (U) => unsignedToken({ sub: U, ctx: [C], exp: now() + 600 })],
    ['missing ctx', 'token_bad_claims', async (U) => mintSub(keys, { sub: U, omit: ['ctx'] })],
    ['ctx not an array', 'token_bad_claims', async (U) => mintSub(keys, { sub: U, claims: { ctx: C } })],
    ['missing sub', 'token_bad_claims', async () => mintSub(keys, { sub: undefined, ctx: [C], omit: ['sub'] })],
    ['missing exp', 'token_bad_claims', async (U) => mintSub(keys, { sub: U, ctx: [C], omit: ['exp'] })],
    ['missing installation', 'token_bad_claims', async (U) => mintSub(keys, { sub: U, ctx: [C], omit: ['installation'] })],
    ['nbf in the future', 'token_not_yet_valid', async (U) => mintSub(keys, { sub: U, ctx: [C], claims: { nbf: now() + 600 } })],
    ['not a JWT', 'token_malformed', async () => 'hello'],
    ['tampered payload', 'token_bad_signature', async (U) => {
      const [h, , s] = (await mintSub(keys, { sub: U, ctx: [C] })).split('.');
      return `${h}.${b64u({ sub: U, ctx: [C, ctxOf('OTHER')], exp: now() + 600 })}.${s}`;
    }],
    ['an empty token', 'token_missing', async () => ''],
  ];
  for (const [name, code, make] of cases) {
    test(`${name} → ${code}`, async () => {
      const U = uniqueUser('t');
      const c = await open(`token-${code}`);
      c.send({ op: 'connect', token: await make(U) });
      c.send({ op: 'subscribe', ctx: C });
      const err = await c.waitOp('error');
      assert.equal(err.code, code, c.dump());
      const close = await c.waitClose();
      assert.equal(close.code, 1008);
      assert.equal(c.ops('connected').length, 0);
      assert.equal(c.ops('subscribed').length, 0, 'a subscribe queued behind a refused connect must not be acknowledged');
    });
  }

  test('connect without a token field → token_missing, close 1008', async () => {
    const c = await open('no-token');
    c.send({ op: 'connect' });
    const err = await c.waitOp('error');
    assert.equal(err.code, 'token_missing');
    assert.equal((await c.waitClose()).code, 1008);
  });
});

describe('delivery: rule filters', () => {
  test('selfGenerated events are ignored (ignoreSelf) and a false expression delivers nothing', async () => {
    const U = uniqueUser('flt');
    const C = ctxOf('FLT-1');
    const c = await sub(U, [C], [C], 'filters');
    await post(bugEvent({ key: 'FLT-1', assignee: U, summary: 'self', selfGenerated: true }));
    await post(bugEvent({ key: 'FLT-1', assignee: U, summary: 'a story', issuetype: 'Story' }));
    await post(bugEvent({ key: 'FLT-1', assignee: null, summary: 'nobody assigned' }));
    await post(bugEvent({ key: 'FLT-1', assignee: U, summary: 'real bug' }));
    const [n] = await c.waitNotifications(1);
    const claims = claimsOf(n);
    assert.equal(claims.n.description, 'real bug', c.dump());
    assert.equal(claims.seq, 1, 'filtered events must not consume a seq');
    await c.roundTrip();
    assert.equal(c.notifications().length, 1, c.dump());
  });

  test('an event type no rule listens to delivers nothing', async () => {
    const U = uniqueUser('nr');
    const C = ctxOf('NR-1');
    const c = await sub(U, [C], [C], 'no-rule');
    const ev = bugEvent({ key: 'NR-1', assignee: U, summary: 'deleted' });
    ev.eventType = 'avi:jira:deleted:issue';
    await post(ev);
    await post(bugEvent({ key: 'NR-1', assignee: U, summary: 'created' }));
    const [n] = await c.waitNotifications(1);
    assert.equal(claimsOf(n).n.description, 'created');
    assert.equal(claimsOf(n).seq, 1);
  });
});

describe('delivery: HS256 subscription tokens and subscriber.audience', () => {
  let keys2;
  let gw2;
  before(async () => {
    keys2 = await makeKeys({ subscriber: 'hs256' });
    gw2 = await startGateway({ keys: keys2, args: ['--subscriber-audience', 'notify-test-aud', '--subscriber-auth-timeout', '1', '--limits-ws-max-subscriptions', '2'] });
  });
  after(async () => {
    if (gw2) await gw2.stop();
  });

  test('the right aud connects and receives; a wrong or missing aud is token_bad_audience', async () => {
    const U = uniqueUser('hs');
    const C = ctxOf('HS-1');
    const good = track(await subscriber(gw2, await mintSub(keys2, { sub: U, ctx: [C], claims: { aud: 'notify-test-aud' } }), [C], { name: 'hs-good' }));
    for (const [name, claims] of [['wrong aud', { aud: 'someone-else' }], ['no aud', {}]]) {
      const c = track(await WsClient.open(gw2.wsUrl, { name, diag: () => gw2.diag() }));
      c.send({ op: 'connect', token: await mintSub(keys2, { sub: U, ctx: [C], claims }) });
      const err = await c.waitOp('error');
      assert.equal(err.code, 'token_bad_audience', `${name}: ${c.dump()}`);
      assert.equal((await c.waitClose()).code, 1008);
    }
    const res = await postEvent(gw2.port, await mintFit(keys2), envelope(bugEvent({ key: 'HS-1', assignee: U, summary: 'hs' })));
    assert.equal(res.status, 202, res.text);
    const [n] = await good.waitNotifications(1);
    const { keySet } = await gatewayJwks(gw2);
    const { claims: payload } = await verifyNotification(n, keySet);
    assert.equal(payload.sub, U);
    assert.equal(payload.seq, 1);
  });

  test('no connect frame within subscriber.auth_timeout → auth_timeout, close 1008', async () => {
    const c = track(await WsClient.open(gw2.wsUrl, { name: 'silent', diag: () => gw2.diag() }));
    const err = await c.waitOp('error', { timeout: 10000 });
    assert.equal(err.code, 'auth_timeout');
    assert.equal((await c.waitClose(10000)).code, 1008);
  });

  test('more subscriptions than limits.ws_max_subscriptions → too_many_subscriptions, still open', async () => {
    const U = uniqueUser('many');
    const ctxs = [ctxOf('M-1'), ctxOf('M-2'), ctxOf('M-3')];
    const c = track(await subscriber(gw2, await mintSub(keys2, { sub: U, ctx: ctxs, claims: { aud: 'notify-test-aud' } }), ctxs.slice(0, 2), { name: 'many' }));
    c.send({ op: 'subscribe', ctx: ctxs[2] });
    const err = await c.waitOp('error');
    assert.equal(err.code, 'too_many_subscriptions');
    await c.roundTrip();
    assert.equal(c.closeInfo, null);
  });
});

describe('delivery: an RSA subscriber key (RS256 tokens)', () => {
  let keys4;
  let gw4;
  before(async () => {
    keys4 = await makeKeys({ subscriber: 'rs256' });
    gw4 = await startGateway({ keys: keys4 });
  });
  after(async () => {
    if (gw4) await gw4.stop();
  });

  test('RS256 tokens connect and receive; ES256 and HS256-with-the-PEM tokens are token_bad_alg', async () => {
    const U = uniqueUser('rs');
    const C = ctxOf('RS-1');
    const good = track(await subscriber(gw4, await mintSub(keys4, { sub: U, ctx: [C] }), [C], { name: 'rs-good' }));
    const es = await makeSubscriberKey('es256');
    for (const [name, token] of [
      ['ES256', await mintSub(keys4, { sub: U, ctx: [C], alg: 'ES256', key: es.signKey })],
      ['HS256 with the PEM', await mintSub(keys4, { sub: U, ctx: [C], alg: 'HS256', key: new TextEncoder().encode(keys4.sub.file) })],
    ]) {
      const c = track(await WsClient.open(gw4.wsUrl, { name, diag: () => gw4.diag() }));
      c.send({ op: 'connect', token });
      assert.equal((await c.waitOp('error')).code, 'token_bad_alg', `${name}: ${c.dump()}`);
      assert.equal((await c.waitClose()).code, 1008);
    }
    const res = await postEvent(gw4.port, await mintFit(keys4), envelope(bugEvent({ key: 'RS-1', assignee: U, summary: 'rs' })));
    assert.equal(res.status, 202, res.text);
    const [n] = await good.waitNotifications(1);
    assert.equal(claimsOf(n).sub, U);
  });
});

describe('delivery: a configured signing key', () => {
  let keys3;
  let gw3;
  let publicKey;
  before(async () => {
    keys3 = await makeKeys();
    const pair = await jose.generateKeyPair('ES256', { extractable: true });
    publicKey = pair.publicKey;
    const dir = tempDir('ngw-sign-');
    const keyPath = writeTemp(dir, 'signing.pem', await jose.exportPKCS8(pair.privateKey));
    gw3 = await startGateway({ keys: keys3, stateDir: dir, args: ['--signing-key', keyPath, '--signing-issuer', 'acme-notify', '--signing-ttl', '120'] });
  });
  after(async () => {
    if (gw3) await gw3.stop();
    if (gw3) rmSync(gw3.stateDir, { recursive: true, force: true });
  });

  test('notifications verify with our own public key; the JWKS publishes it; iss and ttl follow the options', async () => {
    const U = uniqueUser('sig');
    const C = ctxOf('SIG-1');
    const c = track(await subscriber(gw3, await mintSub(keys3, { sub: U, ctx: [C] }), [C], { name: 'signing' }));
    const res = await postEvent(gw3.port, await mintFit(keys3), envelope(bugEvent({ key: 'SIG-1', assignee: U, summary: 'signed by us' })));
    assert.equal(res.status, 202, res.text);
    const [n] = await c.waitNotifications(1);
    const { claims: payload, batch } = await verifyNotification(n, publicKey, { issuer: 'acme-notify' });
    assert.equal(batch.iss, 'acme-notify');
    assert.equal(payload.iss, 'acme-notify');
    assert.equal(payload.exp - payload.iat, 120);
    // and not with the gateway's other (generated) keys: our key is the one that signed
    const other = await jose.generateKeyPair('ES256');
    await assert.rejects(verifyNotification(n, other.publicKey), /signature/i);
    assert.equal(payload.n.description, 'signed by us');
    const { doc } = await gatewayJwks(gw3);
    const ours = await jose.exportJWK(publicKey);
    assert.ok(doc.keys.some((k) => k.x === ours.x && k.y === ours.y), `the JWKS does not publish the configured key: ${JSON.stringify(doc)}`);
  });
});
