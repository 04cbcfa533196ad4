// eventloop.test.mjs - both event loops (event_loop: epoll, the default,
// libuv; event_loop: poll, libwebsockets' own) carry the same protocol: a
// notification is delivered, an error frame reaches the client before the
// close (1008), and a graceful stop closes websockets with 1001 and exits 0.
// The rest of the suite runs on the default loop.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startGateway, runCli } from './lib/gateway.mjs';
import { makeKeys, mintFit, mintSub } from './lib/keys.mjs';
import { postEvent } from './lib/http.mjs';
import { WsClient, subscriber } from './lib/ws.mjs';
import { bugEvent, envelope, uniqueUser, ctxOf } from './lib/events.mjs';

const gateways = [];
after(async () => {
  for (const g of gateways) await g.stop().catch(() => {});
});

test('--event-loop accepts epoll and poll only', async () => {
  const r = await runCli(['--event-loop', 'kqueue', '--listen', '127.0.0.1:0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /'event_loop' must be epoll or poll, got 'kqueue'/);
});

for (const loop of ['epoll', 'poll']) {
  describe(`event_loop: ${loop}`, () => {
    test('delivers, sends error frames before closing, and stops with 1001', async () => {
      const keys = await makeKeys({ subscriber: 'hs256' });
      const gw = await startGateway({ keys, args: ['--event-loop', loop] });
      gateways.push(gw);
      const user = uniqueUser(loop);
      const ctx = ctxOf(`EL-${loop}`);
      const c = await subscriber(gw, await mintSub(keys, { sub: user, ctx: [ctx] }), [ctx], { name: `${loop}-sub` });
      const res = await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key: `EL-${loop}`, assignee: user })));
      assert.equal(res.status, 202, res.text);
      const [n] = await c.waitNotifications(1);
      assert.equal(n.seq, undefined); // frames carry only claims and proof ...
      assert.equal(c.notificationClaims()[0].seq, 1); // ... whose claims hold the seq

      // an error frame, then the close: the frame must arrive first
      const bad = await WsClient.open(gw.wsUrl, { name: `${loop}-bad`, diag: () => gw.diag() });
      bad.send({ op: 'subscribe', ctx });
      const err = await bad.waitFor((f) => f.op === 'error', { what: 'not_connected' });
      assert.equal(err.code, 'not_connected');
      assert.equal((await bad.waitClose()).code, 1008);

      // graceful stop: 1001 to the open connection, exit 0
      const closing = c.waitClose(15000);
      gw.signal('SIGTERM');
      assert.equal((await closing).code, 1001);
      assert.deepEqual(await gw.waitExit(), { code: 0, signal: null });
    });
  });
}
