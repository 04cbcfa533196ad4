// batch.test.mjs - signing.batch_events: under a backlog one worker pass
// covers several events with one signature (frames of different events share
// `proof.batch`), every frame still verifies on its own with the right seq;
// with signing.batch_events 1 every event gets its own signature.
//
// The backlog is made deterministic rather than hoped for: the gateway is
// stopped (SIGSTOP) while the burst is sent, so on SIGCONT all requests are
// waiting at once; with one worker, verification jobs go first and the
// accepted events pile up in the events lane behind them.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { startGateway, runCli, tempDir } from './lib/gateway.mjs';
import { makeKeys, mintFit, mintSub, gatewayJwks } from './lib/keys.mjs';
import { postEvent } from './lib/http.mjs';
import { subscriber } from './lib/ws.mjs';
import { verifyNotification } from './lib/notification.mjs';
import { bugEvent, envelope, uniqueUser, ctxOf } from './lib/events.mjs';

const TOTAL = 120;
const gateways = [];
const clients = [];
after(async () => {
  for (const c of clients) c.close();
  for (const g of gateways) await g.stop().catch(() => {});
});

async function burst(args) {
  const keys = await makeKeys({ subscriber: 'hs256' });
  const gw = await startGateway({ keys, args: ['--workers', '1', ...args] });
  gateways.push(gw);
  const jwks = await gatewayJwks(gw);
  const user = uniqueUser('batch');
  const ctx = ctxOf('BATCH-1');
  const c = await subscriber(gw, await mintSub(keys, { sub: user, ctx: [ctx] }), [ctx], { name: 'batch' });
  clients.push(c);
  const fits = await Promise.all(Array.from({ length: TOTAL }, () => mintFit(keys)));
  const agent = new http.Agent({ keepAlive: true, maxSockets: TOTAL });
  process.kill(gw.pid, 'SIGSTOP');
  const pending = fits.map((fit, i) =>
    postEvent(gw.port, fit, envelope(bugEvent({ key: 'BATCH-1', assignee: user, summary: `b${i}` })), { agent, timeout: 20000 }));
  await new Promise((r) => setTimeout(r, 500)); // the requests reach the kernel's buffers
  process.kill(gw.pid, 'SIGCONT');
  const results = await Promise.all(pending);
  agent.destroy();
  for (const r of results) assert.equal(r.status, 202, r.text);
  const frames = await c.waitNotifications(TOTAL, { timeout: 20000 });
  const verified = [];
  for (const f of frames) verified.push(await verifyNotification(f, jwks.keySet, { issuer: 'notify-gateway' }));
  assert.deepEqual(verified.map((v) => v.claims.seq), Array.from({ length: TOTAL }, (_, i) => i + 1), 'seq 1..N in order');
  assert.equal(new Set(verified.map((v) => v.claims.n.description)).size, TOTAL, 'every event exactly once');
  const batches = new Map(); // batch JWS -> {size, events}
  for (let i = 0; i < frames.length; i++) {
    const b = frames[i].proof.batch;
    const e = batches.get(b) || { size: verified[i].size, events: new Set() };
    e.events.add(verified[i].claims.n.id);
    batches.set(b, e);
  }
  return { batches, gw };
}

describe('signing.batch_events', () => {
  test('under a backlog one signature covers several events; each frame verifies alone', async () => {
    const { batches } = await burst([]);
    const sizes = [...batches.values()].map((b) => b.size);
    assert.ok(batches.size < TOTAL, `${TOTAL} events signed in ${batches.size} batches: no pass covered two events`);
    assert.ok(Math.max(...sizes) > 1 && Math.max(...sizes) <= 64, `batch sizes ${sizes}`);
    for (const b of batches.values()) assert.equal(b.events.size, b.size, 'in a targeted burst every leaf of a batch is another event');
  });

  test('signing.batch_events 1: one signature per event', async () => {
    const { batches } = await burst(['--signing-batch-events', '1']);
    assert.equal(batches.size, TOTAL);
    for (const b of batches.values()) assert.equal(b.size, 1);
  });

  test('values outside 1..4096 are refused with the option named', async () => {
    for (const bad of ['0', '4097', 'lots']) {
      const r = await runCli(['--signing-batch-events', bad, '--listen', '127.0.0.1:0', '--state-dir', tempDir()], { timeout: 5000 });
      assert.equal(r.code, 2, `--signing-batch-events ${bad} accepted`);
      assert.match(r.stderr, /signing\.batch_events/);
    }
  });
});
