// lifecycle.test.mjs - /healthz and its counters, the other GET endpoints,
// the config file, development mode end to end, and the graceful stop:
// SIGTERM with clients connected -> an event accepted just before is still
// delivered, clients see close 1001, the process exits 0.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

import { startGateway, writeTemp, tempDir, DEFAULT_RULES } from './lib/gateway.mjs';
import { makeKeys, mintFit, mintSub, jose, now, DEV_INSTALLATION, DEV_APP_ID } from './lib/keys.mjs';
import { postEvent, request, rawUpgrade, adminStatus } from './lib/http.mjs';
import { subscriber } from './lib/ws.mjs';
import { claimsOf } from './lib/notification.mjs';
import { bugEvent, envelope, uniqueUser, ctxOf } from './lib/events.mjs';

const gateways = [];
const clients = [];
const dirs = [];
after(async () => {
  for (const c of clients) c.close();
  for (const gw of gateways) await gw.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function start(opts) {
  const gw = await startGateway(opts);
  gateways.push(gw);
  return gw;
}

async function health(gw) {
  const res = await adminStatus(gw);
  assert.equal(res.status, 200, res.text);
  assert.match(String(res.headers['content-type']), /application\/json/);
  return res.json;
}

describe('lifecycle: /healthz and the GET endpoints', () => {
  let keys;
  let gw;
  before(async () => {
    keys = await makeKeys();
    gw = await start({ keys, args: ['--workers', '3', '--limits-queue', '77'] });
  });

  test('/healthz has the documented fields', async () => {
    const h = await health(gw);
    assert.equal(h.status, 'ok');
    assert.equal(h.version, '0.1.0');
    assert.equal(typeof h.uptimeSeconds, 'number');
    assert.ok(h.uptimeSeconds >= 0);
    assert.equal(h.rules.count, 2);
    assert.equal(typeof h.rules.version, 'string');
    assert.ok(h.rules.version.length > 0);
    assert.equal(path.resolve(h.rules.source), path.resolve(DEFAULT_RULES));
    assert.match(h.rules.loadedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(h.rules.lastReloadError, null);
    assert.ok('reloads' in h.rules);
    assert.equal(h.queue.capacity, 77);
    assert.equal(typeof h.queue.depth, 'number');
    assert.equal(typeof h.queue.verifying, 'number');
    assert.equal(typeof h.queue.verifyCapacity, 'number');
    assert.equal(h.workers, 3);
    assert.equal(typeof h.connections.websocket, 'number');
    assert.equal(typeof h.connections.subscriptions, 'number');
    assert.equal(h.intake, 'open');
    assert.ok(Array.isArray(h.installations), `installations: ${JSON.stringify(h.installations)}`);
    assert.equal(typeof h.redelivery, 'object');
    for (const k of ['remembered', 'capacity', 'ttlSeconds']) assert.equal(typeof h.redelivery[k], 'number', `redelivery.${k}`);
    for (const c of ['events_accepted', 'events_rejected_token', 'notifications_delivered', 'http_requests']) {
      assert.equal(typeof h.counters[c], 'number', `counter ${c} missing: ${JSON.stringify(h.counters)}`);
    }
  });

  test('counters and connection gauges move with traffic', async () => {
    const h0 = await health(gw);
    const U = uniqueUser('hz');
    const C = ctxOf('HZ-1');
    const token = await mintSub(keys, { sub: U, ctx: [C, ctxOf('HZ-2')] });
    const c1 = await subscriber(gw, token, [C, ctxOf('HZ-2')], { name: 'hz-1' });
    const c2 = await subscriber(gw, token, [C], { name: 'hz-2' });
    clients.push(c1, c2);
    const h1 = await health(gw);
    assert.equal(h1.connections.websocket, h0.connections.websocket + 2);
    assert.equal(h1.connections.subscriptions, h0.connections.subscriptions + 3);

    const ok = await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key: 'HZ-1', assignee: U })));
    assert.equal(ok.status, 202, ok.text);
    await c1.waitNotifications(1);
    await c2.waitNotifications(1);
    const bad = await postEvent(gw.port, 'garbage', envelope(bugEvent({ key: 'HZ-1', assignee: U })));
    assert.equal(bad.status, 401);
    const h2 = await health(gw);
    const d = (k) => h2.counters[k] - h0.counters[k];
    assert.equal(d('events_accepted'), 1, JSON.stringify(h2.counters));
    assert.equal(d('events_rejected_token'), 1, JSON.stringify(h2.counters));
    assert.equal(d('notifications_delivered'), 2, JSON.stringify(h2.counters));
    assert.ok(d('http_requests') >= 3, JSON.stringify(h2.counters));
    if ('events_processed' in h2.counters) assert.equal(d('events_processed'), 1);
    if ('notifications_signed' in h2.counters) assert.equal(d('notifications_signed'), 1);

    c1.close();
    c2.close();
    await c1.waitClose();
    await c2.waitClose();
    // The gauges drop back once the server has seen the closes (bounded poll).
    let h3;
    for (let i = 0; i < 100; i++) {
      h3 = await health(gw);
      if (h3.connections.websocket === h0.connections.websocket) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(h3.connections.websocket, h0.connections.websocket);
    assert.equal(h3.connections.subscriptions, h0.connections.subscriptions);
  });

  test('GET /.well-known/jwks.json is the public EC key', async () => {
    const res = await request(gw.port, { path: '/.well-known/jwks.json' });
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /json/);
    assert.equal(res.json.keys.length, 1);
    const k = res.json.keys[0];
    assert.deepEqual(Object.keys(k).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    assert.deepEqual([k.kty, k.crv, k.alg, k.use], ['EC', 'P-256', 'ES256', 'sig']);
    await jose.importJWK(k, 'ES256');
  });

  test('POST /healthz → 405 with Allow', async () => {
    const res = await request(gw.port, { method: 'POST', path: '/healthz', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    assert.equal(res.status, 405, res.text);
    assert.match(String(res.headers.allow), /GET/);
  });

  test('GET / does not fail (web demo page or 404 while it is absent)', async () => {
    const res = await request(gw.port, { path: '/' });
    assert.ok(res.status === 200 || res.status === 404, `GET / answered ${res.status}`);
    if (res.status === 200) assert.match(String(res.headers['content-type']), /text\/html/);
  });

  test('a websocket upgrade on another path is refused', async () => {
    const res = await rawUpgrade(gw.port, '/not-realtime');
    assert.notEqual(res.status, 101);
  });
});

describe('lifecycle: configuration file', () => {
  test('options come from --config; flags override the file', async () => {
    const keys = await makeKeys();
    const dir = tempDir('ngw-cfg-');
    dirs.push(dir);
    const cfg = writeTemp(dir, 'gateway.yml', [
      'listen: 127.0.0.1:1', // overridden by --listen 127.0.0.1:0 from startGateway
      'workers: 5',
      'limits:',
      '  queue: 33',
      `rules: ${DEFAULT_RULES}`,
      '',
    ].join('\n'));
    const gw = await start({ keys, rules: null, args: ['--config', cfg, '--workers', '2'] });
    const h = await health(gw);
    assert.equal(h.queue.capacity, 33);
    assert.equal(h.workers, 2);
    assert.equal(h.rules.count, 2);
  });
});

describe('lifecycle: development mode', () => {
  test('without key options: generated keys sign FITs and subscription tokens that work', async () => {
    const gw = await start({ keys: null });
    const d = gw.stateDir;
    const jwks = JSON.parse(readFileSync(path.join(d, 'dev-forge-jwks.json'), 'utf8'));
    assert.ok(jwks.keys.some((k) => k.kid === 'notify-gateway-dev-forge'));
    const forgeKey = await importAnyPrivatePem(readFileSync(path.join(d, 'dev-forge-key.pem'), 'utf8'), 'RS256');
    const secret = new TextEncoder().encode(readFileSync(path.join(d, 'dev-subscriber-secret'), 'utf8').trim());
    const U = uniqueUser('dev');
    const C = ctxOf('DEV-1');
    const subTok = await new jose.SignJWT({ installation: DEV_INSTALLATION, sub: U, ctx: [C], exp: now() + 600 }).setProtectedHeader({ alg: 'HS256' }).sign(secret);
    const c = await subscriber(gw, subTok, [C], { name: 'dev' });
    clients.push(c);
    const t = now();
    const fit = await new jose.SignJWT({ iss: 'forge/invocation-token', aud: DEV_APP_ID, iat: t, nbf: t, exp: t + 25, app: { id: DEV_APP_ID, installationId: DEV_INSTALLATION } })
      .setProtectedHeader({ alg: 'RS256', kid: 'notify-gateway-dev-forge' }).sign(forgeKey);
    const res = await postEvent(gw.port, fit, envelope(bugEvent({ key: 'DEV-1', assignee: U, summary: 'dev mode' })));
    assert.equal(res.status, 202, res.text);
    const [n] = await c.waitNotifications(1);
    assert.equal(claimsOf(n).n.description, 'dev mode');
  });
});

describe('lifecycle: development endpoints', () => {
  test('/dev/fit and /dev/token mint tokens that work end to end', async () => {
    const gw = await start({ keys: null });
    const U = uniqueUser('devep');
    const C = ctxOf('DEVEP-1');
    const tok = await request(gw.port, { path: `/dev/token?sub=${encodeURIComponent(U)}&ctx=${encodeURIComponent(C)}&ttl=600` });
    assert.equal(tok.status, 200, tok.text);
    assert.equal(typeof tok.json.token, 'string');
    assert.equal(typeof tok.json.exp, 'number');
    const claims = jose.decodeJwt(tok.json.token);
    assert.equal(claims.sub, U);
    assert.deepEqual(claims.ctx, [C]);
    assert.equal(claims.installation, DEV_INSTALLATION);
    const c = await subscriber(gw, tok.json.token, [C], { name: 'dev-endpoints' });
    clients.push(c);
    const fit = await request(gw.port, { path: '/dev/fit' });
    assert.equal(fit.status, 200, fit.text);
    const fc = jose.decodeJwt(fit.json.token);
    assert.equal(fc.iss, 'forge/invocation-token');
    assert.equal(fc.app.installationId, DEV_INSTALLATION);
    const res = await postEvent(gw.port, fit.json.token, envelope(bugEvent({ key: 'DEVEP-1', assignee: U, summary: 'via dev endpoints' })));
    assert.equal(res.status, 202, res.text);
    const [n] = await c.waitNotifications(1);
    assert.equal(claimsOf(n).n.description, 'via dev endpoints');
  });

  test('with real keys configured the development endpoints answer 404', async () => {
    const gw = await start({ keys: await makeKeys() });
    for (const p of ['/dev/fit', '/dev/token?sub=x&ctx=y']) {
      const res = await request(gw.port, { path: p });
      assert.equal(res.status, 404, `${p}: ${res.status} ${res.text}`);
    }
  });
});

async function importAnyPrivatePem(pem, alg) {
  if (pem.includes('BEGIN PRIVATE KEY')) return jose.importPKCS8(pem, alg);
  // PKCS#1 ("BEGIN RSA PRIVATE KEY"): convert with node:crypto.
  const { createPrivateKey } = await import('node:crypto');
  const pkcs8 = createPrivateKey(pem).export({ type: 'pkcs8', format: 'pem' });
  return jose.importPKCS8(pkcs8, alg);
}

describe('lifecycle: graceful stop', () => {
  test('SIGTERM: an event accepted just before is delivered, clients get 1001, exit 0', async () => {
    const keys = await makeKeys();
    const gw = await start({ keys, args: ['--workers', '1'] });
    const U = uniqueUser('stop');
    const V = uniqueUser('idle');
    const C = ctxOf('STOP-1');
    const a = await subscriber(gw, await mintSub(keys, { sub: U, ctx: [C] }), [C], { name: 'stop-a' });
    const b = await subscriber(gw, await mintSub(keys, { sub: V, ctx: [C] }), [C], { name: 'stop-b' });
    clients.push(a, b);
    // Several events, the last one answered 202 right before the signal.
    const fits = await Promise.all(Array.from({ length: 10 }, () => mintFit(keys)));
    const results = await Promise.all(fits.map((f, i) =>
      postEvent(gw.port, f, envelope(bugEvent({ key: 'STOP-1', assignee: U, summary: `before stop ${i}` })))));
    assert.deepEqual(results.map((r) => r.status), fits.map(() => 202), results.map((r) => r.text).join('\n'));
    gw.signal('SIGTERM');
    const ca = await a.waitClose(15000);
    const cb = await b.waitClose(15000);
    assert.equal(ca.code, 1001, `client a closed with ${ca.code}`);
    assert.equal(cb.code, 1001, `client b closed with ${cb.code}`);
    const descs = a.notificationClaims().map((x) => x.n.description).sort();
    assert.deepEqual(descs, fits.map((_, i) => `before stop ${i}`).sort(), 'accepted events not delivered before the close');
    assert.deepEqual(a.notificationClaims().map((x) => x.seq), fits.map((_, i) => i + 1));
    assert.equal(b.notifications().length, 0);
    const exit = await gw.waitExit(20000);
    assert.deepEqual(exit, { code: 0, signal: null }, gw.diag());
  });

  test('SIGTERM while the intake queue still holds events: all of them are delivered', async () => {
    const keys = await makeKeys();
    const gw = await start({ keys, args: ['--workers', '1'] });
    const U = uniqueUser('drain');
    const C = ctxOf('DRAIN-1');
    const a = await subscriber(gw, await mintSub(keys, { sub: U, ctx: [C] }), [C], { name: 'drain' });
    clients.push(a);
    const fits = await Promise.all(Array.from({ length: 50 }, () => mintFit(keys)));
    let accepted = 0;
    let signalled = false;
    await Promise.all(fits.map(async (f, i) => {
      const r = await postEvent(gw.port, f, envelope(bugEvent({ key: 'DRAIN-1', assignee: U, summary: `drain ${i}` })));
      if (r.status === 202) {
        accepted += 1;
        if (!signalled) {
          signalled = true;
          gw.signal('SIGTERM'); // the first 202: most events are still in flight
        }
      } else {
        assert.equal(r.status, 503, `unexpected ${r.status} ${r.text}`);
      }
    }).map((p) => p.catch((e) => {
      // A request the stopping gateway closed without answering was not accepted.
      if (!/socket hang up|ECONNRESET|ECONNREFUSED|no complete answer/.test(e.message)) throw e;
    })));
    await a.waitClose(20000);
    assert.equal(a.closeInfo.code, 1001);
    assert.equal(a.notifications().length, accepted, `accepted ${accepted}, delivered ${a.notifications().length}`);
    assert.deepEqual(a.notificationClaims().map((x) => x.seq), Array.from({ length: accepted }, (_, i) => i + 1));
    assert.deepEqual(await gw.waitExit(20000), { code: 0, signal: null }, gw.diag());
  });
});
