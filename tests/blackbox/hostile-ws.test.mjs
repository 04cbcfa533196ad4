// hostile-ws.test.mjs - websocket clients and token holders that try to
// exhaust or starve the gateway (issue 10): a reader that never reads and
// floods pings, oversized ping ids, too many connections per user or per
// address, token refreshes under verification load, notifications during a
// refresh, and a flood of bad FITs against websocket logins and events.
//
// After every attack: /healthz answers at once and a legitimate event still
// reaches a legitimate subscriber. Where the attack is about exhaustion, the
// gateway's RSS is read from /proc/<pid>/status.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import http from 'node:http';

import { startGateway } from './lib/gateway.mjs';
import { makeKeys, mintFit, mintSub, fitClaims, b64u } from './lib/keys.mjs';
import { postEvent, request, adminStatus } from './lib/http.mjs';
import { WsClient, subscriber } from './lib/ws.mjs';
import { RawWs, encodeFrame } from './lib/rawws.mjs';
import { bugEvent, envelope, uniqueUser, ctxOf } from './lib/events.mjs';

const gateways = [];
const sockets = [];
after(async () => {
  for (const s of sockets) s.close ? s.close() : s.destroy();
  for (const g of gateways) await g.stop();
});

async function start(opts = {}) {
  const keys = opts.keys || (await makeKeys());
  const gw = await startGateway({ keys, ...opts });
  gateways.push(gw);
  return { gw, keys };
}

const track = (s) => {
  sockets.push(s);
  return s;
};

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

async function counters(gw) {
  const res = await adminStatus(gw, { timeout: 2000 });
  assert.equal(res.status, 200, res.text);
  return res.json.counters;
}

/**
 * The gateway still serves: /healthz answers (bounded: 2 s) and a legitimate
 * event reaches a fresh, legitimate subscriber.
 */
async function assertServes(gw, keys, tag = 'after') {
  const health = await request(gw.port, { path: '/healthz', timeout: 2000 });
  assert.equal(health.status, 200, `${tag}: /healthz ${health.status}\n${gw.diag()}`);
  const user = uniqueUser('legit');
  const key = `LEGIT-${Math.floor(Math.random() * 1e6)}`;
  const c = track(await subscriber(gw, await mintSub(keys, { sub: user, ctx: [ctxOf(key)] }), [ctxOf(key)], { name: `${tag}-legit` }));
  let res;
  for (let i = 0; i < 50; i++) {
    res = await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key, assignee: user })));
    if (res.status !== 503) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(res.status, 202, `${tag}: legitimate event refused: ${res.text}\n${gw.diag()}`);
  const [n] = await c.waitNotifications(1);
  assert.ok(n, `${tag}: no notification`);
  c.close();
}

/** A raw websocket connected with a valid token (waits for "connected"). */
async function rawConnected(gw, keys, user, ctx = []) {
  const raw = track(await RawWs.open(gw.port));
  raw.send({ op: 'connect', token: await mintSub(keys, { sub: user, ctx }) });
  await raw.waitOp('connected');
  return raw;
}

describe('replies count against limits.ws_max_pending_bytes', () => {
  for (const loop of ['epoll', 'poll']) test(`${loop}: a client that floods pings and never reads is throttled (reading stops), not buffered without bound; every ping is answered once it reads`, async (t) => {
    // Under AddressSanitizer (the suite's ASan run), freed memory is held in
    // a quarantine of 256 MB by default, which RSS would show: keep it small
    // for this gateway so that RSS still measures what is live.
    const asan = process.env.ASAN_OPTIONS;
    process.env.ASAN_OPTIONS = [asan, 'quarantine_size_mb=4', 'thread_local_quarantine_size_kb=64'].filter(Boolean).join(':');
    let started;
    try {
      started = await start({ args: ['--event-loop', loop] });
    } finally {
      if (asan === undefined) delete process.env.ASAN_OPTIONS;
      else process.env.ASAN_OPTIONS = asan;
    }
    const { gw, keys } = started;
    const raw = await rawConnected(gw, keys, uniqueUser('flood'));
    raw.keep = false; // count pongs only
    const base = raw.textCount; // "connected"
    raw.pause(); // never read: the gateway's writes to us block
    const before = rssKiB(gw.pid);
    // 120-byte ids (within the cap): pongs of ~140 bytes. 400,000 pings are
    // ~70 MB; a gateway that reads them all and queues every pong grows by
    // far more than 50 MB.
    const one = encodeFrame({ op: 'ping', id: 'i'.repeat(118) });
    const chunk = Buffer.concat(Array.from({ length: 500 }, () => one));
    const { sent, stalled } = await raw.flood(chunk, { count: 800, stallMs: 1500 });
    const grown = rssKiB(gw.pid) - before;
    t.diagnostic(`${sent * 500} pings written (stalled: ${stalled}); gateway RSS grew by ${grown} KiB`);
    assert.ok(grown < 24 * 1024, `RSS grew by ${grown} KiB while a client sent ${sent * 500} pings without reading (stalled: ${stalled})`);
    assert.ok(stalled, `the gateway read all ${sent * 500} pings of a client that reads nothing`);
    const c = await counters(gw);
    assert.ok(c.ws_rx_paused >= 1, JSON.stringify(c));
    await assertServes(gw, keys, 'during');
    // Reading again: the gateway resumes reading and answers every ping sent.
    raw.resume();
    const total = sent * 500; // a stalled write is still queued in node and goes out on drain
    await raw.waitUntil(() => raw.textCount - base >= total, { timeout: 60000, what: `${total} pongs` });
    assert.equal(raw.textCount - base, total);
    assert.equal(raw.ended, false, `closed: ${JSON.stringify(raw.close)}`);
    await assertServes(gw, keys);
  });

  test('the echoed ping id is capped: a larger one gets error id_too_large and the connection stays open', async () => {
    const { gw, keys } = await start();
    const c = track(await subscriber(gw, await mintSub(keys, { sub: uniqueUser('id') }), []));
    const from = c.frames.length;
    c.send({ op: 'ping', id: 'x'.repeat(200) });
    const err = await c.waitFor((f) => f.op === 'error' || f.op === 'pong', { from, what: 'an answer to the ping' });
    assert.equal(err.op, 'error', `a 200-byte id was echoed: ${JSON.stringify(err).slice(0, 100)}`);
    assert.equal(err.code, 'id_too_large');
    c.send({ op: 'ping', id: { n: 1, s: 'y'.repeat(100) } }); // 116 bytes of JSON: fine
    const pong = await c.waitOp('pong', { from });
    assert.deepEqual(pong.id, { n: 1, s: 'y'.repeat(100) });
    await c.roundTrip();
    assert.equal(c.closeInfo, null);
    c.close();
    await assertServes(gw, keys);
  });
});

/**
 * Keeps `client` refreshing its token without pause: `depth` connect frames
 * always outstanding (each "connected" answer sends the next), so nearly all
 * the time a refresh is being verified. Resolves {refreshes} when stop() is
 * called.
 */
function keepRefreshing(client, token, depth = 8) {
  let stopped = false;
  let answered = 0;
  const base = client.ops('connected').length;
  for (let i = 0; i < depth; i++) client.send({ op: 'connect', token });
  const tick = () => {
    const n = client.ops('connected').length - base;
    while (answered < n) {
      answered++;
      if (!stopped && !client.closeInfo) client.send({ op: 'connect', token });
    }
  };
  client.waiters.push(tick);
  return {
    stop: async () => {
      stopped = true;
      client.waiters = client.waiters.filter((w) => w !== tick);
      await client.roundTrip(10000); // every refresh sent is answered
      return { refreshes: client.ops('connected').length - base };
    },
  };
}

describe('token refresh', () => {
  test('refreshing under verification load never trips auth_timeout', async (t) => {
    const { gw, keys } = await start({ args: ['--subscriber-auth-timeout', '1', '--workers', '1'] });
    const user = uniqueUser('refresh');
    const ctx = ctxOf('REF-1');
    const token = await mintSub(keys, { sub: user, ctx: [ctx] });
    const c = track(await subscriber(gw, token, [ctx], { name: 'refresher' }));
    // Verification load: other connections refreshing just as hard.
    const others = [];
    for (let i = 0; i < 4; i++) {
      const u = uniqueUser('load');
      const tok = await mintSub(keys, { sub: u, ctx: [] });
      const o = track(await subscriber(gw, tok, [], { name: `load-${i}` }));
      others.push(keepRefreshing(o, tok));
    }
    const r = keepRefreshing(c, token);
    // Past three auth_timeouts and three 1 s sweeps after the connection's
    // first deadline.
    await new Promise((res) => setTimeout(res, 3500));
    const { refreshes } = await r.stop();
    for (const o of others) await o.stop();
    t.diagnostic(`${refreshes} refreshes in 3.5 s`);
    assert.ok(refreshes > 10, `only ${refreshes} refreshes`);
    assert.equal(c.closeInfo, null, `closed: ${JSON.stringify(c.closeInfo)} ${c.dump()}`);
    assert.deepEqual(c.ops('error'), []);
    await assertServes(gw, keys);
  });

  test('notifications that arrive during a refresh are delivered (and not counted as dropped)', async () => {
    const { gw, keys } = await start();
    const user = uniqueUser('during');
    const key = 'DUR-1';
    const token = await mintSub(keys, { sub: user, ctx: [ctxOf(key)] });
    const c = track(await subscriber(gw, token, [ctxOf(key)], { name: 'refresher' }));
    const before = await counters(gw);
    const r = keepRefreshing(c, token);
    const N = 30;
    for (let i = 0; i < N; i++) {
      const res = await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key, assignee: user, summary: `during ${i}` })));
      assert.equal(res.status, 202, res.text);
    }
    const { refreshes } = await r.stop();
    assert.ok(refreshes > 0);
    const notes = await c.waitNotifications(N);
    assert.equal(notes.length, N);
    assert.deepEqual(c.notificationClaims().map((x) => x.seq), Array.from({ length: N }, (_, i) => i + 1));
    const after = await counters(gw);
    assert.equal(after.notifications_dropped - (before.notifications_dropped ?? 0), 0);
    assert.equal(after.notifications_delivered - before.notifications_delivered, N);
    assert.equal(c.closeInfo, null);
    await assertServes(gw, keys);
  });
});

describe('token refresh: a full login lane', () => {
  test('a refresh answered busy (limits.auth_backlog full) keeps the connection on its current token', async () => {
    const { gw, keys } = await start({ args: ['--workers', '1', '--limits-auth-backlog', '2'] });
    const user = uniqueUser('busy');
    const key = 'BUSY-1';
    const token = await mintSub(keys, { sub: user, ctx: [ctxOf(key)] });
    const victim = track(await subscriber(gw, token, [ctxOf(key)], { name: 'victim' }));
    const all = [victim];
    const tokens = new Map([[victim, token]]);
    for (let i = 0; i < 30; i++) {
      const tok = await mintSub(keys, { sub: uniqueUser('busyload') });
      let c;
      for (;;) { // the lane holds 2: connect one by one, again if refused as busy
        c = track(await WsClient.open(gw.wsUrl, { name: `busyload-${i}` }));
        c.send({ op: 'connect', token: tok });
        const f = await c.waitFor((x) => x.op === 'connected' || x.op === 'error', { what: 'an answer' });
        if (f.op === 'connected') break;
        c.close();
      }
      all.push(c);
      tokens.set(c, tok);
    }
    // Everyone refreshes without pause: every answer (connected or busy) sends the next.
    let stopped = false;
    const loops = all.map((c) => {
      let answered = 0;
      const base = c.frames.length;
      const tick = () => {
        const n = c.frames.slice(base).filter((f) => f.op === 'connected' || (f.op === 'error' && f.code === 'busy')).length;
        while (answered < n) {
          answered++;
          if (!stopped && !c.closeInfo) c.send({ op: 'connect', token: tokens.get(c) });
        }
      };
      c.waiters.push(tick);
      for (let i = 0; i < 8; i++) c.send({ op: 'connect', token: tokens.get(c) });
      return { c, tick };
    });
    await victim.waitFor((f) => f.op === 'error' && f.code === 'busy', { timeout: 10000, what: 'a refresh answered busy' })
      .catch((e) => {
        if (victim.closeInfo) throw e;
        assert.fail(`no refresh was answered busy under the load: ${e.message.slice(0, 300)}`);
      });
    stopped = true;
    for (const { c, tick } of loops) c.waiters = c.waiters.filter((w) => w !== tick);
    await victim.roundTrip(10000);
    assert.equal(victim.closeInfo, null, `closed: ${JSON.stringify(victim.closeInfo)}`);
    assert.ok(victim.ops('error').every((f) => f.code === 'busy'), victim.dump());
    const c = await counters(gw);
    assert.ok(c.ws_auth_busy > 0);
    // Still subscribed on its token: a notification reaches it.
    let res;
    for (let i = 0; i < 50; i++) {
      res = await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key, assignee: user })));
      if (res.status !== 503) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(res.status, 202, res.text);
    await victim.waitNotifications(1);
    await assertServes(gw, keys);
  });
});

describe('connection caps', () => {
  test('limits.ws_max_per_user: one more authenticated connection of that user gets too_many_connections and 1008; others are unaffected; closing one frees a place', async () => {
    const { gw, keys } = await start({ args: ['--limits-ws-max-per-user', '3'] });
    const user = uniqueUser('tabs');
    const ctx = ctxOf('CAP-1');
    const token = await mintSub(keys, { sub: user, ctx: [ctx] });
    const tabs = [];
    for (let i = 0; i < 3; i++) tabs.push(track(await subscriber(gw, token, [ctx], { name: `tab-${i}` })));
    const extra = track(await WsClient.open(gw.wsUrl, { name: 'tab-extra' }));
    extra.send({ op: 'connect', token });
    const err = await extra.waitOp('error');
    assert.equal(err.code, 'too_many_connections');
    assert.equal((await extra.waitClose()).code, 1008);
    // A refresh on an existing tab is not a new connection.
    tabs[0].send({ op: 'connect', token });
    await tabs[0].waitFor((f, i) => f.op === 'connected' && i > 0, { what: 'refreshed' });
    // Another user is not affected.
    const other = track(await subscriber(gw, await mintSub(keys, { sub: uniqueUser('other') }), []));
    assert.equal(other.closeInfo, null);
    const c = await counters(gw);
    assert.equal(c.ws_refused_user_cap, 1);
    // Closing a tab frees its place.
    tabs[2].close();
    await tabs[2].waitClose();
    let again;
    for (let i = 0; i < 20; i++) {
      again = track(await WsClient.open(gw.wsUrl, { name: 'tab-again' }));
      again.send({ op: 'connect', token });
      again.send({ op: 'subscribe', ctx });
      const f = await again.waitFor((x) => x.op === 'connected' || x.op === 'error', { what: 'an answer' });
      if (f.op === 'connected') break;
      again.close();
      await new Promise((r) => setTimeout(r, 100)); // the close may not have reached the gateway yet
    }
    assert.equal(again.ops('connected').length, 1, again.dump());
    await again.waitOp('subscribed');
    // Every tab of the user still receives.
    const res = await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key: 'CAP-1', assignee: user })));
    assert.equal(res.status, 202);
    for (const t of [tabs[0], tabs[1], again]) await t.waitNotifications(1);
    await assertServes(gw, keys);
  });

  test('by default a user may have 64 connections (tabs) at once; the 65th is refused', async () => {
    const { gw, keys } = await start();
    const user = uniqueUser('many');
    const token = await mintSub(keys, { sub: user, ctx: [] });
    const opened = await Promise.all(Array.from({ length: 64 }, (_, i) => subscriber(gw, token, [], { name: `t${i}` })));
    opened.forEach(track);
    const extra = track(await WsClient.open(gw.wsUrl, { name: 'tab-65' }));
    extra.send({ op: 'connect', token });
    assert.equal((await extra.waitOp('error')).code, 'too_many_connections');
    assert.equal((await extra.waitClose()).code, 1008);
    for (const o of opened) {
      await o.roundTrip();
      o.close();
    }
    await assertServes(gw, keys);
  });

  test('limits.ws_max_unauthenticated_per_address: connections from one address that have not authenticated are capped; authenticating frees the place', async () => {
    const { gw, keys } = await start({ args: ['--limits-ws-max-unauthenticated-per-address', '5'] });
    const idle = [];
    for (let i = 0; i < 5; i++) idle.push(track(await WsClient.open(gw.wsUrl, { name: `pre-${i}` })));
    const extra = track(await WsClient.open(gw.wsUrl, { name: 'pre-extra' }));
    assert.equal((await extra.waitOp('error')).code, 'too_many_connections');
    assert.equal((await extra.waitClose()).code, 1008);
    // One of the five authenticates: it no longer holds a pre-auth place.
    idle[0].send({ op: 'connect', token: await mintSub(keys, { sub: uniqueUser('pre') }) });
    await idle[0].waitOp('connected');
    const next = track(await WsClient.open(gw.wsUrl, { name: 'pre-next' }));
    next.send({ op: 'connect', token: await mintSub(keys, { sub: uniqueUser('pre') }) });
    await next.waitOp('connected');
    // Authenticated connections do not count: more can be opened and connected.
    const more = track(await subscriber(gw, await mintSub(keys, { sub: uniqueUser('pre') }), []));
    assert.equal(more.closeInfo, null);
    const c = await counters(gw);
    assert.equal(c.ws_refused_unauthenticated_cap, 1);
    for (const s of idle) s.close();
    await assertServes(gw, keys);
  });

  test('limits.ws_max_per_address: connections past the cap from one address get too_many_connections and 1008 before any token is checked', async () => {
    const { gw, keys } = await start({ args: ['--limits-ws-max-per-address', '5'] });
    const idle = [];
    for (let i = 0; i < 5; i++) idle.push(track(await WsClient.open(gw.wsUrl, { name: `idle-${i}` })));
    const extra = track(await WsClient.open(gw.wsUrl, { name: 'extra' }));
    const err = await extra.waitOp('error');
    assert.equal(err.code, 'too_many_connections');
    assert.equal((await extra.waitClose()).code, 1008);
    const c = await counters(gw);
    assert.equal(c.ws_refused_address_cap, 1);
    // Unauthenticated holders leave (or time out): the address has room again.
    for (const s of idle) s.close();
    await Promise.all(idle.map((s) => s.waitClose()));
    await new Promise((r) => setTimeout(r, 200));
    await assertServes(gw, keys);
  });
});

/**
 * An RSA public key with a 16,384-bit modulus (OpenSSL's largest) and a FIT
 * that names it with a forged signature: every check of such a FIT is a
 * full-size RSA operation (about a millisecond), so a few dozen clients keep
 * the workers busy with bad FITs. (The modulus is random: no private key
 * exists; the JWKS is the operator's, the FITs anyone's.)
 */
function costlyKid(keys) {
  const n = randomBytes(2048);
  n[0] |= 0x80;
  n[2047] |= 1;
  keys.jwks.keys.push({ kty: 'RSA', kid: 'costly', alg: 'RS256', use: 'sig', n: n.toString('base64url'), e: 'AQAB' });
  const sig = randomBytes(2048);
  sig[0] = 0x01; // below the modulus
  return `${b64u({ alg: 'RS256', typ: 'JWT', kid: 'costly' })}.${b64u(fitClaims(keys))}.${sig.toString('base64url')}`;
}

/** `conns` keep-alive clients posting `token` with a small body until stop(). */
function fitFlood(port, token, conns) {
  let stopped = false;
  const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
  const statuses = {};
  const body = JSON.stringify(envelope(bugEvent({ assignee: 'nobody' })));
  const one = () => new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/forge/events', agent,
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}`, 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
      res.resume();
      res.on('end', resolve);
      res.on('error', resolve);
    });
    req.on('error', resolve);
    req.setTimeout(20000, () => req.destroy());
    req.end(body);
  });
  const loops = Array.from({ length: conns }, async () => {
    while (!stopped) await one();
  });
  return {
    statuses,
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
      agent.destroy();
      return statuses;
    },
  };
}

describe('verification lanes', () => {
  test('a flood of bad FITs fills only its own lane: websocket logins still connect and events are still delivered while it lasts', async (t) => {
    const keys = await makeKeys();
    const bad = costlyKid(keys);
    // One worker and a FIT lane a fraction of a second deep: the flood keeps
    // it full, and a gateway that serves that lane first never gets to the
    // logins' turn or the events'.
    // The per-address cap on unverified requests (issue 10 item 2) would
    // answer this single-address flood 429 before it reaches the lane: off
    // here, so the lane itself is what is tested.
    const { gw } = await start({ keys, args: ['--workers', '1', '--limits-verify-backlog', '256', '--limits-unverified-per-address', '0'] });
    const user = uniqueUser('lane');
    const key = 'LANE-1';
    const victim = track(await subscriber(gw, await mintSub(keys, { sub: user, ctx: [ctxOf(key)] }), [ctxOf(key)], { name: 'victim' }));
    const flood = fitFlood(gw.port, bad, 320);
    try {
      // Wait until the flood holds the FIT lane full (503 busy answers).
      for (let i = 0; i < 400 && !flood.statuses[503]; i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(flood.statuses[503] > 0, `the flood never filled the FIT lane: ${JSON.stringify(flood.statuses)}`);
      // Logins: each must connect (its own lane), not be refused as busy.
      const logins = [];
      for (let i = 0; i < 10; i++) {
        const c = track(await WsClient.open(gw.wsUrl, { name: `login-${i}` }));
        c.send({ op: 'connect', token: await mintSub(keys, { sub: uniqueUser('login') }) });
        logins.push(c);
      }
      for (const c of logins) {
        const f = await c.waitFor((x) => x.op === 'connected' || x.op === 'error', { timeout: 10000, what: 'an answer to connect' });
        assert.equal(f.op, 'connected', `a login during the FIT flood: ${JSON.stringify(f)}`);
      }
      // An event: its own FIT queues in the flooded lane (503 until a slot
      // frees: Forge retries), but once accepted it is not held back until
      // the flood ends: it must arrive while the flood still runs.
      const fit = await mintFit(keys);
      let res;
      for (let i = 0; i < 5000; i++) {
        res = await postEvent(gw.port, fit, envelope(bugEvent({ key, assignee: user })), { timeout: 20000 });
        if (res.status !== 503) break;
      }
      assert.equal(res.status, 202, res.text);
      await victim.waitNotifications(1, { timeout: 8000 });
      assert.ok(flood.statuses[503] > 0);
    } finally {
      const st = await flood.stop();
      t.diagnostic(`flood answers: ${JSON.stringify(st)}`);
    }
    const c = await counters(gw);
    assert.equal(c.ws_auth_busy, 0);
    assert.ok(c.events_rejected_busy > 0);
    await assertServes(gw, keys);
  });
});
