// keepalive.test.mjs - idle websockets (subscriber.ping_interval): the gateway
// pings a connection that has been silent for one interval and closes it
// when it stays silent for two; a pong or any frame counts as a sign of life.
// Browsers and the `ws` package answer pings by themselves; a peer that
// does not (autoPong: false, like a dead path) is closed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';

import { startGateway, runCli, tempDir } from './lib/gateway.mjs';
import { makeKeys, mintFit, mintSub } from './lib/keys.mjs';
import { getJson, postEvent, adminStatus } from './lib/http.mjs';
import { WsClient } from './lib/ws.mjs';
import { claimsOf } from './lib/notification.mjs';
import { bugEvent, envelope, uniqueUser, ctxOf } from './lib/events.mjs';

const PING = 1; // seconds
let keys;
let gw;
const clients = [];

before(async () => {
  keys = await makeKeys({ subscriber: 'es256' });
  gw = await startGateway({ keys, args: ['--subscriber-ping-interval', String(PING)] });
});

after(async () => {
  for (const c of clients) c.close();
  if (gw) await gw.stop();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A subscribed client; autoPong false makes it ignore the gateway's pings. */
async function open(name, { autoPong = true, ctx } = {}) {
  const ws = new WebSocket(gw.wsUrl, { autoPong });
  const c = new WsClient(ws, name, () => gw.diag());
  clients.push(c);
  c.pings = 0;
  ws.on('ping', () => c.pings++);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const user = uniqueUser(name);
  c.send({ op: 'connect', token: await mintSub(keys, { sub: user, ctx: [ctx] }) });
  c.send({ op: 'subscribe', ctx });
  await c.waitOp('subscribed');
  c.user = user;
  return c;
}

async function counters() {
  return (await adminStatus(gw)).json.counters;
}

describe('keepalive: pings for silent websockets', () => {
  test('a client that answers pings stays connected while idle and still gets notifications', async () => {
    const ctx = ctxOf('KA-1');
    const c = await open('answers', { ctx });
    await sleep((3 * PING + 1.5) * 1000);
    assert.equal(c.closeInfo, null, `closed while answering pings: ${JSON.stringify(c.closeInfo)}`);
    assert.ok(c.pings >= 2, `expected at least 2 pings in ${3 * PING + 1.5} s of silence, got ${c.pings}`);
    const res = await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key: 'KA-1', assignee: c.user })));
    assert.equal(res.status, 202, res.text);
    const [n] = await c.waitNotifications(1);
    assert.equal(claimsOf(n).sub, c.user);
  });

  test('a client that never answers is pinged, then closed after two intervals of silence', async () => {
    const before = await counters();
    const c = await open('silent', { autoPong: false, ctx: ctxOf('KA-2') });
    const t0 = Date.now();
    const { code } = await c.waitClose((4 * PING + 3) * 1000);
    const took = (Date.now() - t0) / 1000;
    assert.ok(c.pings >= 1, 'closed without being pinged first');
    assert.ok(took >= 2 * PING - 1, `closed after ${took} s: sooner than two intervals of silence`);
    assert.equal(code, 1006, 'a dead peer gets no close frame: the connection is dropped');
    const after = await counters();
    assert.ok(after.ws_pings_sent > before.ws_pings_sent, 'ws_pings_sent did not move');
    assert.equal(after.ws_idle_closed, before.ws_idle_closed + 1, 'ws_idle_closed must count this close');
  });

  test('frames from the client count as life: no close without pongs while it keeps talking', async () => {
    const c = await open('talks', { autoPong: false, ctx: ctxOf('KA-3') });
    for (let i = 0; i < 8; i++) {
      await c.roundTrip();
      await sleep(500);
    }
    assert.equal(c.closeInfo, null, `closed although it sent frames: ${JSON.stringify(c.closeInfo)}`);
  });
});

describe('keepalive: configuration', () => {
  test('an out-of-range ping interval is refused with a clear error', async () => {
    for (const bad of ['-1', '3601', 'soon']) {
      const r = await runCli(['--subscriber-ping-interval', bad, '--listen', '127.0.0.1:0', '--state-dir', tempDir()], { timeout: 5000 });
      assert.equal(r.code, 2, `--subscriber-ping-interval ${bad} accepted`);
      assert.match(r.stderr, /ping.interval/, `the error must name the option: ${r.stderr}`);
    }
  });

  test('0 turns pings off: a silent client is neither pinged nor closed', async () => {
    const quiet = await startGateway({ keys, args: ['--subscriber-ping-interval', '0'] });
    try {
      const ws = new WebSocket(quiet.wsUrl, { autoPong: false });
      const c = new WsClient(ws, 'no-pings', () => quiet.diag());
      clients.push(c);
      let pings = 0;
      ws.on('ping', () => pings++);
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      c.send({ op: 'connect', token: await mintSub(keys, { sub: uniqueUser('np'), ctx: [] }) });
      await c.waitOp('connected');
      await sleep(3000);
      assert.equal(pings, 0);
      assert.equal(c.closeInfo, null);
    } finally {
      await quiet.stop();
    }
  });
});
