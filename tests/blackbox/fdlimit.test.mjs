// fdlimit.test.mjs - limits.max_fds: the gateway sets its own open-file
// limit (connections + a reserve for files and the event loop), refuses
// connections past it at once, never spins on a failing accept(2), keeps
// lws's per-refusal error lines to 20 a second, and takes new connections
// again as soon as others close.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

import { startGateway, runCli, tempDir } from './lib/gateway.mjs';
import { makeKeys } from './lib/keys.mjs';
import { getJson } from './lib/http.mjs';

const MAX = 300;
const gateways = [];
const sockets = [];
after(async () => {
  for (const s of sockets) s.terminate();
  for (const g of gateways) await g.stop().catch(() => {});
});

/** Opens n websockets at once; resolves {open, refused} once each has settled. */
function openMany(url, n, timeout = 8000) {
  return new Promise((resolve) => {
    const open = [];
    let refused = 0;
    let settled = 0;
    const done = () => {
      if (++settled === n) resolve({ open, refused });
    };
    for (let i = 0; i < n; i++) {
      const ws = new WebSocket(url, { handshakeTimeout: timeout });
      sockets.push(ws);
      ws.once('open', () => {
        open.push(ws);
        done();
      });
      ws.once('error', () => {
        refused++;
        done();
      });
    }
  });
}

const openFileLimit = (pid) => {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  return Number(line.split(/\s{2,}/)[1]);
};

describe('limits.max_fds', () => {
  test('connections past the limit are refused at once; no accept loop; room again after closes', async () => {
    const keys = await makeKeys({ subscriber: 'hs256' });
    const gw = await startGateway({ keys, args: ['--limits-max-fds', String(MAX), '--log-level', 'info'] });
    gateways.push(gw);
    assert.equal(openFileLimit(gw.pid), MAX + 64, 'soft open-file limit = limits.max_fds + the 64 reserve');

    const first = await openMany(gw.wsUrl, MAX + 200);
    assert.ok(first.open.length > MAX - 40 && first.open.length < MAX, `open: ${first.open.length}`);
    assert.equal(first.open.length + first.refused, MAX + 200);
    assert.ok(first.refused >= 200, `refused: ${first.refused}`);

    // Full, the gateway must not spin on accept(2) failing with EMFILE, and
    // lws's one error line per refused connection is held to its budget.
    await new Promise((r) => setTimeout(r, 1500));
    assert.doesNotMatch(gw.stderr, /accept: errno 24/, 'lws retried a failing accept');
    const lwsLines = gw.stderr.split('\n').filter((l) => / lws: /.test(l) && !/suppressed/.test(l));
    assert.ok(lwsLines.length <= 60, `${lwsLines.length} lws lines for ${first.refused} refusals: over the 20/s budget`);
    assert.match(gw.stderr, /lws: \d+ more lines suppressed/, 'the dropped lines are summed up');

    // Close 20: new connections (and plain HTTP) are taken again.
    for (const ws of first.open.splice(0, 20)) ws.terminate();
    await new Promise((r) => setTimeout(r, 300));
    const again = await openMany(gw.wsUrl, 10);
    assert.equal(again.open.length, 10, `after closes only ${again.open.length} of 10 opened`);
    const health = await getJson(gw.port, '/healthz');
    assert.equal(health.status, 200);
  });

  test('values outside 256..4194304 are refused', async () => {
    for (const bad of ['10', '0', 'many']) {
      const r = await runCli(['--limits-max-fds', bad, '--listen', '127.0.0.1:0', '--state-dir', tempDir()], { timeout: 5000 });
      assert.equal(r.code, 2, `--limits-max-fds ${bad} accepted`);
      assert.match(r.stderr, /max_fds/);
    }
  });
});
