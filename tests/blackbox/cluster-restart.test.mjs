// cluster-restart.test.mjs - Redis restarted mid-stream with AOF on (issue
// 13): a real redis-server with appendonly yes and appendfsync always, three
// gateway nodes, events streamed to all nodes; Redis is SIGKILLed and started
// again on the same port and directory. Every event answered 202 is
// delivered exactly once to each tab (the tabs closed with 1012 resume with
// since), seq contiguous, nothing accepted lost; /readyz goes 503 then 200
// without restarting a node; events answered 503 meanwhile are retried as
// Forge does and delivered once.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';

import { startGateway } from './lib/gateway.mjs';
import { makeKeys, mintFit } from './lib/keys.mjs';
import { postEvent } from './lib/http.mjs';
import { bugEvent, envelope, uniqueUser } from './lib/events.mjs';
import { startRedis } from './lib/redis.mjs';
import {
  assertContiguous, assertExactlyOnce, assertSubscribers, descsOf, metric, postRetrying, redisCli, seqsOf, tab,
  sharedSigningKey, userHash, waitReadyz,
} from './lib/cluster.mjs';

let keys, redis, keyDir, signingKey;
const TIMEOUT = 800;       // ms: cluster.timeout
const CLAIM_AFTER = 1500;  // ms: cluster.claim_after

before(async () => {
  keys = await makeKeys({ subscriber: 'es256' });
  redis = await startRedis({ aof: true, appendfsync: 'always' });
  ({ keyDir, signingKey } = sharedSigningKey('ngw-restart-key-'));
});
after(async () => {
  await redis?.stop();
  rmSync(keyDir, { recursive: true, force: true });
});

/** Posters round-robin over the nodes until stop(); each event is retried on
 * 503 (and on a lost answer) as Forge does, so every one ends 202. */
function stream(nodes, user, tag) {
  const accepted = [];
  const stats = { first: 0, retried: 0, refused: 0 };
  let stopped = false;
  const done = Promise.all([0, 1, 2].map(async (w) => {
    for (let i = 0; !stopped; i++) {
      const summary = `${tag}-w${w}-${i}`;
      const r = await postRetrying(nodes[(i + w) % nodes.length], keys,
        envelope(bugEvent({ key: `RS-${w}`, assignee: user, summary })), { tries: 80, pause: 250 });
      assert.equal(r.status, 202, `${summary}: ${r.text} after ${r.tries} tries`);
      accepted.push(summary);
      stats.refused += r.refused;
      if (r.tries === 1) stats.first++;
      else stats.retried++;
    }
  }));
  return { accepted, stats, stop: async () => { stopped = true; await done; return accepted; } };
}

describe('Redis restarted mid-stream (AOF, appendfsync always)', () => {
  test('SIGKILL and restart on the same port and dir: /readyz 503 then 200 without restarting a node, 503s retried, every accepted event delivered once to each tab, seq contiguous', async () => {
    const nodes = [];
    for (let i = 0; i < 3; i++) {
      nodes.push(await startGateway({
        keys,
        args: ['--redis', redis.url, '--node-id', `rs${i}-${process.pid}`, '--signing-key', signingKey,
          '--cluster-timeout', String(TIMEOUT), '--cluster-claim-after', String(CLAIM_AFTER)],
      }));
    }
    try {
      const user = uniqueUser('rs');
      // two tabs per node
      const tabs = [];
      for (let i = 0; i < 6; i++) tabs.push({ ...(await tab(nodes[i % 3], keys, user, `tab${i}`)), node: i % 3 });
      assertSubscribers(redis.port, user, 3);
      for (const g of nodes) await waitReadyz(g, 200);

      const s = stream(nodes, user, 'r');
      // mid-stream: some events recorded and delivered first
      await tabs[0].c.waitNotifications(20, { timeout: 20000 });
      await redis.kill();
      const pids = nodes.map((g) => g.pid);
      // Redis down: every node not ready, intake 503 + Retry-After
      for (const g of nodes) {
        const r = await waitReadyz(g, 503);
        assert.match(r.text, /"check":"(store|cluster)"/);
      }
      const down = await postEvent(nodes[1].port, await mintFit(keys), envelope(bugEvent({ key: 'RS-X', assignee: user, summary: 'r-down' })), { timeout: 10000 });
      assert.equal(down.status, 503, down.text);
      assert.ok(down.headers['retry-after'], 'Retry-After on the 503');
      // the websockets stay open while Redis is down
      for (const { c } of tabs) assert.ok(!c.closeInfo, `${c.name} closed while Redis was down: ${JSON.stringify(c.closeInfo)}`);

      await redis.restart();
      for (const g of nodes) await waitReadyz(g, 200);
      assert.deepEqual(nodes.map((g) => g.pid), pids);
      assert.ok(nodes.every((g) => !g.exit), 'no node restarted');
      // the event refused while Redis was down, retried as Forge does
      const again = await postRetrying(nodes[1], keys, envelope(bugEvent({ key: 'RS-X', assignee: user, summary: 'r-down' })));
      assert.equal(again.status, 202, again.text);
      // the stream goes on after the restart, then stops (every poster's
      // last event answered 202)
      const atRestart = s.accepted.length;
      for (let i = 0; i < 100 && s.accepted.length < atRestart + 30; i++) await new Promise((r) => setTimeout(r, 50));
      const accepted = [...await s.stop(), 'r-down'];

      // Each tab lost its node's feed (Redis was killed under the broker):
      // closed with 1012, it resumes with since on its node; what it had plus
      // what the resumes bring is every accepted event once, contiguous.
      for (const { c } of tabs) {
        const closed = await c.waitClose(15000);
        assert.equal(closed.code, 1012, `${c.name}: ${JSON.stringify(closed)}`);
      }
      let resumes = 0, delivered = 0;
      for (const t of tabs) {
        const chain = [t.c];
        const all = (f) => chain.flatMap(f);
        const has = () => { const d = all(descsOf); return accepted.every((x) => d.includes(x)); };
        for (let round = 0; !has(); round++) {
          assert.ok(round < 3, `${t.c.name}: still missing events after ${round} resumes`);
          const cur = chain[chain.length - 1];
          await cur.waitFor(has, { timeout: 20000, what: `every accepted event (${accepted.length})` })
            .catch((e) => {
              if (cur.closeInfo) return;
              // which seqs this tab's chain holds, and the store's
              const held = all(seqsOf), h = userHash(user);
              const missing = accepted.filter((x) => !all(descsOf).includes(x));
              throw new Error(`${cur.name}: ${missing.length} accepted events never arrived (${missing.slice(0, 5).join(' ')}…); ` +
                `seqs held ${held.join(',')}; the store's max ${redisCli(redis.port, 'HGET', `gw:u:${h}:m`, 'max')}\n${e.message.slice(0, 300)}`);
            });
          if (has()) break;
          assert.equal(cur.closeInfo.code, 1012, `${cur.name}: ${JSON.stringify(cur.closeInfo)}`);
          const seqs = all(seqsOf);
          const since = seqs.length ? seqs[seqs.length - 1] : 0;
          const r = await tab(nodes[t.node], keys, user, `${t.c.name}-r${round}`, since);
          assert.equal(r.subscribed.recovered, true, `${r.c.name}: resume after ${since}: ${JSON.stringify(r.subscribed)}`);
          chain.push(r.c);
          resumes++;
        }
        // nothing more arrives (or the tab was closed: nothing more either)
        const cur = chain[chain.length - 1];
        await cur.roundTrip().catch((e) => assert.equal(cur.closeInfo?.code, 1012, e.message));
        assertExactlyOnce(all(descsOf), accepted, t.c.name);
        assertContiguous(all(seqsOf), t.c.name, 1);
        delivered += all(descsOf).length;
        for (const c of chain) c.close();
      }
      // the store agrees: the user's seq is the count, the journal is empty
      assert.equal(redisCli(redis.port, 'HGET', `gw:u:${userHash(user)}:m`, 'max'), String(accepted.length));
      assert.equal(redisCli(redis.port, 'XLEN', 'gw:journal'), '0');
      assert.equal(redisCli(redis.port, 'CONFIG', 'GET', 'appendfsync').split('\n')[1], 'always');
      const closes = (await Promise.all(nodes.map((g) => metric(g, 'cluster_resume_closes')))).reduce((x, y) => x + y, 0);
      const rejected = (await Promise.all(nodes.map((g) => metric(g, 'events_rejected', 'reason="store"')))).reduce((x, y) => x + y, 0);
      assert.ok(rejected >= 1, 'the refusals while Redis was down are counted');
      process.stdout.write(`# Redis restart (AOF always): ${accepted.length} events accepted (${s.stats.first} at once, ${s.stats.retried + 1} after ${s.stats.refused + 1} answers 503), 6 tabs open while Redis was down, then closed with 1012 (${closes} resume closes), ${resumes} resumes with since, ${delivered} deliveries (each tab every event once)\n`);
    } finally {
      await Promise.all(nodes.map((g) => g.stop()));
    }
  });
});
