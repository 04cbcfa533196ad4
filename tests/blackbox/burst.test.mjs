// burst.test.mjs - 200 events posted with 20 in flight to 2 users x 2 tabs:
// every notification arrives exactly once at each tab, per-user seq runs
// 1..N without gaps in arrival order, every signature verifies, and the order
// respects acceptance: when event i's 202 had arrived before event j was
// sent, i was accepted first, so seq(i) < seq(j).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startGateway } from './lib/gateway.mjs';
import { makeKeys, mintFit, mintSub, gatewayJwks } from './lib/keys.mjs';
import { postEvent } from './lib/http.mjs';
import { subscriber } from './lib/ws.mjs';
import { verifyNotification } from './lib/notification.mjs';
import { bugEvent, updatedEvent, envelope, uniqueUser, ctxOf } from './lib/events.mjs';
import http from 'node:http';

const TOTAL = 200;
const IN_FLIGHT = 20;

let keys;
let gw;
const clients = [];

before(async () => {
  keys = await makeKeys({ subscriber: 'hs256' });
  gw = await startGateway({ keys, args: ['--workers', '2'] });
});

after(async () => {
  for (const c of clients) c.close();
  if (gw) await gw.stop();
});

describe('burst', () => {
  test(`${TOTAL} events, ${IN_FLIGHT} in flight, 2 users x 2 tabs: exactly once, seq 1..N, acceptance order`, async () => {
    const users = [uniqueUser('burstA'), uniqueUser('burstB')];
    const keyOf = (u) => (u === users[0] ? 'BURST-A' : 'BURST-B');
    const tabs = new Map();
    for (const u of users) {
      const ctx = ctxOf(keyOf(u));
      const token = await mintSub(keys, { sub: u, ctx: [ctx] });
      const t = [];
      for (let i = 0; i < 2; i++) {
        const c = await subscriber(gw, token, [ctx], { name: `${keyOf(u)}-tab${i + 1}` });
        clients.push(c);
        t.push(c);
      }
      tabs.set(u, t);
    }

    // Pre-mint the FITs so the burst itself is only HTTP.
    const fits = await Promise.all(Array.from({ length: TOTAL }, () => mintFit(keys)));
    const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
    const userOf = (i) => users[i % 2];
    const completed = []; // indices in the order their 202 arrived
    const sentAfter = new Array(TOTAL); // completed.length when i was sent
    let next = 0;
    const failures = [];
    async function worker() {
      while (next < TOTAL) {
        const i = next++;
        sentAfter[i] = completed.length;
        const ev = bugEvent({ key: keyOf(userOf(i)), assignee: userOf(i), summary: `#${i}` });
        const res = await postEvent(gw.port, fits[i], envelope(ev), { agent, timeout: 20000 });
        if (res.status !== 202) failures.push(`#${i}: ${res.status} ${res.text}`);
        else completed.push(i);
      }
    }
    try {
      await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    } finally {
      agent.destroy();
    }
    assert.deepEqual(failures, [], `refused during the burst\n${gw.diag()}`);

    const { keySet } = await gatewayJwks(gw);
    const seqOf = new Map(); // index -> seq
    for (const u of users) {
      const expected = Array.from({ length: TOTAL }, (_, i) => i).filter((i) => userOf(i) === u);
      const perTab = [];
      for (const c of tabs.get(u)) {
        const notes = await c.waitNotifications(expected.length, { timeout: 30000 });
        await c.roundTrip();
        const claims = [];
        for (const n of c.notifications()) claims.push((await verifyNotification(n, keySet)).claims);
        assert.equal(claims.length, expected.length, `${c.name}: ${claims.length} notifications, expected ${expected.length}`);
        assert.ok(claims.every((x) => x.sub === u && x.ctx === ctxOf(keyOf(u))), `${c.name}: foreign notification`);
        assert.deepEqual(claims.map((x) => x.seq), expected.map((_, k) => k + 1), `${c.name}: seq not 1..${expected.length} in arrival order`);
        const indices = claims.map((x) => Number(x.n.description.slice(1)));
        assert.deepEqual([...indices].sort((a, b) => a - b), expected, `${c.name}: not every event exactly once`);
        perTab.push(notes.map((n) => n.text)); // the exact frame bytes
        for (const x of claims) seqOf.set(Number(x.n.description.slice(1)), x.seq);
      }
      assert.deepEqual(perTab[0], perTab[1], `the two tabs of ${u} got different frames or a different order`);
    }

    // Acceptance order: a 202 seen before j was sent means an earlier seq.
    const violations = [];
    for (let j = 0; j < TOTAL; j++) {
      for (let k = 0; k < sentAfter[j]; k++) {
        const i = completed[k];
        if (userOf(i) === userOf(j) && seqOf.get(i) >= seqOf.get(j)) violations.push(`#${i} (seq ${seqOf.get(i)}) accepted before #${j} was sent, but #${j} has seq ${seqOf.get(j)}`);
      }
    }
    assert.deepEqual(violations.slice(0, 10), [], `${violations.length} order violations`);
  });

  test('100 events each addressed to two users, 20 in flight: both see the same notifications in the same order', async () => {
    const R = uniqueUser('burstR');
    const S = uniqueUser('burstS');
    const ctx = ctxOf('BURST-RS');
    const r = await subscriber(gw, await mintSub(keys, { sub: R, ctx: [ctx] }), [ctx], { name: 'reporter' });
    const s2 = await subscriber(gw, await mintSub(keys, { sub: S, ctx: [ctx] }), [ctx], { name: 'assignee' });
    clients.push(r, s2);
    const N = 100;
    const fits = await Promise.all(Array.from({ length: N }, () => mintFit(keys)));
    const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
    let next = 0;
    const failures = [];
    async function worker() {
      while (next < N) {
        const i = next++;
        const res = await postEvent(gw.port, fits[i], envelope(updatedEvent({ key: 'BURST-RS', reporter: R, assignee: S, summary: `rs${i}` })), { agent, timeout: 20000 });
        if (res.status !== 202) failures.push(`#${i}: ${res.status} ${res.text}`);
      }
    }
    try {
      await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    } finally {
      agent.destroy();
    }
    assert.deepEqual(failures, []);
    const { keySet } = await gatewayJwks(gw);
    const seen = [];
    for (const [c, u] of [[r, R], [s2, S]]) {
      await c.waitNotifications(N, { timeout: 30000 });
      await c.roundTrip();
      const claims = [];
      for (const n of c.notifications()) claims.push((await verifyNotification(n, keySet)).claims);
      assert.equal(claims.length, N, c.dump());
      assert.ok(claims.every((x) => x.sub === u));
      assert.deepEqual(claims.map((x) => x.seq), claims.map((_, k) => k + 1));
      seen.push(claims.map((x) => `${x.n.id}/${x.n.description}`));
    }
    assert.deepEqual(seen[0], seen[1], 'the two recipients saw different notifications or a different order');
    assert.equal(new Set(seen[0]).size, N);
  });
});
