// cluster-shards.test.mjs - cluster mode on two Redis shards (issue 13): two
// real redis-servers (free ports, temp dirs), three nodes given both URLs
// (--redis twice). Users are spread over both shards (chosen by the
// gateway's hash, checked against the keys each server holds), events are
// posted round-robin to all nodes, some addressed to two users on different
// shards, each user has tabs on every node: every notification reaches each
// tab exactly once, seq contiguous per user, inbox and read state the same
// from every node. Then one shard frozen (SIGSTOP): the journal lives on
// shard 0 (docs/cluster.md), so intake keeps answering 202; the other
// shard's users' events are still recorded; every tab gets its
// notifications once the shard thaws, exactly once, seq contiguous.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';

import { startGateway } from './lib/gateway.mjs';
import { makeKeys, gatewayJwks, mintFit } from './lib/keys.mjs';
import { getJson, postEvent } from './lib/http.mjs';
import { claimsOf, verifyNotification } from './lib/notification.mjs';
import { bugEvent, envelope, uniqueUser, updatedEvent } from './lib/events.mjs';
import { startRedis } from './lib/redis.mjs';
import {
  assertContiguous, assertExactlyOnce, assertSubscribers, descsOf, lastSeq, metric, redisCli, seqsOf, shardOf, tab,
  sharedSigningKey, userHash, waitReadyz,
} from './lib/cluster.mjs';

let keys, shards, keyDir, signingKey;
const TIMEOUT = 800;       // ms: cluster.timeout
const CLAIM_AFTER = 1500;  // ms: cluster.claim_after

before(async () => {
  keys = await makeKeys({ subscriber: 'es256' });
  shards = [await startRedis({ aof: true }), await startRedis({ aof: true })];
  ({ keyDir, signingKey } = sharedSigningKey('ngw-shards-key-'));
});
after(async () => {
  for (const r of shards || []) await r?.stop();
  rmSync(keyDir, { recursive: true, force: true });
});

async function startNodes(n, tag) {
  const nodes = [];
  for (let i = 0; i < n; i++) {
    nodes.push(await startGateway({
      keys,
      args: ['--redis', shards[0].url, '--redis', shards[1].url, '--node-id', `${tag}${i}-${process.pid}`,
        '--signing-key', signingKey, '--cluster-timeout', String(TIMEOUT),
        '--cluster-claim-after', String(CLAIM_AFTER)],
    }));
  }
  return nodes;
}

/** n fresh users living on shard `s` of 2. */
function usersOn(s, n, tag) {
  const out = [];
  while (out.length < n) {
    const u = uniqueUser(tag);
    if (shardOf(u, 2) === s) out.push(u);
  }
  return out;
}

const stopAll = (nodes) => Promise.all(nodes.map((g) => g.stop()));

/** Opens a tab of every user on every node; each user's channel on its
 * shard then has every node subscribed. */
async function tabsEverywhere(nodes, users) {
  const tabs = new Map(users.map((u) => [u, []]));
  for (const u of users) {
    for (let i = 0; i < nodes.length; i++) tabs.get(u).push({ ...(await tab(nodes[i], keys, u, `${u.slice(0, 6)}@n${i}`)), node: i });
    assertSubscribers(shards[shardOf(u, 2)].port, u, nodes.length);
  }
  return tabs;
}

describe('two Redis shards', () => {
  test('users on both shards, events round-robin over three nodes, tabs on every node: each tab gets its notifications once, seq contiguous; inbox and read state the same from every node', async () => {
    const nodes = await startNodes(3, 'sh');
    try {
      const [a0, b0] = usersOn(0, 2, 's0');
      const [a1, b1] = usersOn(1, 2, 's1');
      const users = [a0, b0, a1, b1];
      const tabs = await tabsEverywhere(nodes, users);
      // 60 events round-robin: one user each, and every third one to two
      // users on different shards (the record crosses shards)
      const expected = new Map(users.map((u) => [u, []]));
      const N = 60;
      const posts = [];
      for (let i = 0; i < N; i++) {
        const summary = `sh-${i}`;
        let ev;
        if (i % 3 === 2) {
          const rep = i % 2 ? a0 : b0, asg = i % 2 ? b1 : a1;
          ev = updatedEvent({ key: `SH-${i % 4}`, reporter: rep, assignee: asg, summary });
          expected.get(rep).push(summary);
          expected.get(asg).push(summary);
        } else {
          const u = users[i % 4];
          ev = bugEvent({ key: `SH-${i % 4}`, assignee: u, summary });
          expected.get(u).push(summary);
        }
        posts.push({ gw: nodes[i % 3], ev, summary });
      }
      // three posters in parallel, each round-robin over the nodes
      await Promise.all([0, 1, 2].map(async (w) => {
        for (let i = w; i < N; i += 3) {
          const { gw, ev } = posts[i];
          const res = await postEvent(gw.port, await mintFit(keys), envelope(ev));
          assert.equal(res.status, 202, `${res.text}\n${gw.diag()}`);
        }
      }));
      let delivered = 0;
      for (const u of users) {
        const want = expected.get(u);
        for (const { c } of tabs.get(u)) {
          await c.waitNotifications(want.length, { timeout: 20000 });
          await c.roundTrip();
          assertExactlyOnce(descsOf(c), want, c.name);
          assertContiguous(seqsOf(c), c.name, 1);
          assert.ok(c.notificationClaims().every((cl) => cl.sub === u), `${c.name}: only its own user's notifications`);
          delivered += c.notifications().length;
        }
      }
      const jwks = await gatewayJwks(nodes[0]);
      for (const u of [a0, a1]) await verifyNotification(tabs.get(u)[2].c.notifications()[0], jwks.keySet);

      // each user's keys live on its shard only, and both shards hold users
      for (const u of users) {
        const s = shardOf(u, 2), h = userHash(u);
        assert.equal(redisCli(shards[s].port, 'HGET', `gw:u:${h}:m`, 'max'), String(expected.get(u).length), `${u}: seq on shard ${s}`);
        assert.equal(redisCli(shards[1 - s].port, 'EXISTS', `gw:u:${h}:m`), '0', `${u}: nothing on the other shard`);
      }
      for (const s of [0, 1]) {
        const held = redisCli(shards[s].port, 'KEYS', 'gw:u:*:m').split('\n').filter(Boolean);
        assert.ok(held.length >= 2, `shard ${s} holds users: ${held}`);
      }
      // the journal is on shard 0 only, and empty once everything is done
      assert.ok(Number(redisCli(shards[0].port, 'GET', 'gw:jid')) >= N);
      assert.equal(redisCli(shards[1].port, 'EXISTS', 'gw:jid', 'gw:journal'), '0');
      assert.equal(redisCli(shards[0].port, 'XLEN', 'gw:journal'), '0');
      const processed = await Promise.all(nodes.map((g) => metric(g, 'events_processed')));
      assert.equal(processed.reduce((x, y) => x + y, 0), N, `processed per node: ${processed}`);

      // the inbox of every user is the same from every node
      for (const u of users) {
        const lists = [];
        for (const { c } of tabs.get(u)) {
          const from = c.frames.length;
          c.send({ op: 'inbox', id: 'ib', limit: 100 });
          const ib = await c.waitFor((f) => f.op === 'inbox', { from, what: 'inbox' });
          lists.push(ib.items.map((it) => `${claimsOf(it).seq}:${claimsOf(it).n.id}:${it.read}`));
        }
        assert.deepEqual(lists[0].map((x) => Number(x.split(':')[0])),
          Array.from({ length: expected.get(u).length }, (_, i) => expected.get(u).length - i), `${u}: inbox, newest first`);
        assert.deepEqual(lists[1], lists[0], `${u}: inbox from node 1`);
        assert.deepEqual(lists[2], lists[0], `${u}: inbox from node 2`);
      }
      // read state: a mark on one node reaches the user's tabs on the others
      // (one user per shard), and every node's inbox shows it
      for (const u of [b0, b1]) {
        const [t0, t1, t2] = tabs.get(u).map((t) => t.c);
        const ids = t0.notificationClaims().slice(0, 3).map((cl) => cl.n.id);
        const f1 = t1.frames.length, f2 = t2.frames.length;
        t0.send({ op: 'mark', ids, read: true });
        const mine = await t0.waitOp('marked');
        assert.equal(mine.unread, expected.get(u).length - 3);
        for (const [t, from] of [[t1, f1], [t2, f2]]) {
          const m = await t.waitFor((f) => f.op === 'marked', { from, what: 'marked from another node' });
          assert.deepEqual([...m.ids].sort(), [...ids].sort());
          assert.equal(m.unread, expected.get(u).length - 3);
          const fi = t.frames.length;
          t.send({ op: 'inbox', id: 'ib2', limit: 100 });
          const ib = await t.waitFor((f) => f.op === 'inbox' && f.id === 'ib2', { from: fi, what: 'inbox after the mark' });
          assert.equal(ib.unread, expected.get(u).length - 3);
          assert.deepEqual(ib.items.filter((it) => it.read).map((it) => claimsOf(it).n.id).sort(), [...ids].sort());
        }
      }
      const perShard = [0, 1].map((s) => users.filter((u) => shardOf(u, 2) === s).reduce((n, u) => n + expected.get(u).length, 0));
      process.stdout.write(`# two shards: ${N} events accepted over 3 nodes (${N / 3} to two users on both shards), notes per shard ${perShard.join('/')}, ${delivered} deliveries to 12 tabs each once; processed per node ${processed.join('/')}\n`);
      for (const list of tabs.values()) for (const { c } of list) c.close();
    } finally {
      await stopAll(nodes);
    }
  });

  test('shard 1 frozen (SIGSTOP): intake still 202 (the journal is on shard 0), shard 0\'s user stays live on every node after the brokers gave shard 1 up, /readyz 503; SIGCONT: only shard 1\'s user\'s tabs closed with 1012, they resume with since: every tab its notifications once, seq contiguous; shard 0 frozen: intake 503', async () => {
    const nodes = await startNodes(2, 'fz');
    const frozen = shards[1];
    let stopped = false, stopped0 = false;
    try {
      const [u0] = usersOn(0, 1, 'f0');
      const [u1] = usersOn(1, 1, 'f1');
      const tabs = await tabsEverywhere(nodes, [u0, u1]);
      const accepted = new Map([[u0, []], [u1, []]]);
      let n = 0;
      const post = async (gw, u, phase) => {
        const summary = `${phase}-${n++}`;
        const res = await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key: 'FZ-1', assignee: u, summary })), { timeout: 10000 });
        if (res.status === 202) accepted.get(u).push(summary);
        return res;
      };
      // both users have notifications (the nodes know their seqs)
      for (let i = 0; i < 4; i++) for (const u of [u0, u1]) assert.equal((await post(nodes[i % 2], u, 'before')).status, 202);
      for (const u of [u0, u1]) for (const { c } of tabs.get(u)) await c.waitNotifications(4);
      for (const g of nodes) await waitReadyz(g, 200);

      frozen.child.kill('SIGSTOP');
      stopped = true;
      // events for both users, to both nodes: the journal is on shard 0, so
      // every one is answered 202. Posted at once, so that passes mix both
      // users: a pass must not hold shard 0's user back.
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => post(nodes[i % 2], [u0, u1][(i >> 1) % 2], 'frozen')));
      for (const res of answers) assert.equal(res.status, 202, `intake with shard 1 frozen: ${res.text}`);
      // and one event for both users: it waits for shard 1 as a whole
      const res = await postEvent(nodes[1].port, await mintFit(keys), envelope(updatedEvent({ key: 'FZ-2', reporter: u0, assignee: u1, summary: 'both' })), { timeout: 10000 });
      assert.equal(res.status, 202, res.text);
      const duringFreeze = [...accepted.get(u0)];
      for (const u of [u0, u1]) accepted.get(u).push('both');
      // shard 0's user's events are recorded while shard 1 is still frozen:
      // its inbox (read from shard 0 on either node) has them. (Live, they
      // reach its tabs until a node's broker gives shard 1's subscriber up;
      // from then on that node holds its feed until shard 1 is back, then
      // its tabs resume from the store: docs/cluster.md, "Not done yet".)
      const inboxOf = async (c) => {
        const id = `ib-${Math.random().toString(36).slice(2)}`, from = c.frames.length;
        c.send({ op: 'inbox', id, limit: 100 });
        const ib = await c.waitFor((f) => f.op === 'inbox' && f.id === id, { from, what: 'inbox' });
        return ib.items.map((it) => claimsOf(it).n.description);
      };
      for (const { c } of tabs.get(u0)) {
        let have = [];
        for (let i = 0; i < 100 && !duringFreeze.every((x) => have.includes(x)); i++) {
          if (i) await new Promise((r) => setTimeout(r, 200));
          have = await inboxOf(c);
        }
        assert.ok(duringFreeze.every((x) => have.includes(x)),
          `${c.name}: u0's ${duringFreeze.length} events recorded while shard 1 is frozen; the inbox has ${have.join(',')}`);
        assert.ok(!have.includes('both'), `${c.name}: the event for both users is recorded as a whole, after the thaw`);
      }
      // shard 1's user: nothing of the frozen phase yet, its tabs open
      for (const { c } of tabs.get(u1)) {
        assert.ok(!descsOf(c).some((d) => d.startsWith('frozen') || d === 'both'), `${c.name}: nothing can be recorded on a frozen shard`);
        assert.ok(!c.closeInfo, `${c.name} closed: ${JSON.stringify(c.closeInfo)}`);
      }
      // not ready: the store's round trip (shard 1 answers nothing) or the
      // broker's probe on shard 1, whichever is checked first
      const ready = await waitReadyz(nodes[0], 503);
      assert.match(ready.text, /"check":"(store|cluster)"/);
      // each node's broker gives shard 1's subscriber up (its probe does not
      // come back): shard 1's feed comes back later under a new generation
      for (const g of nodes) {
        let t = '';
        for (let i = 0; i < 100 && !/probe/.test(t); i++) {
          t = (await getJson(g.port, '/readyz')).text;
          if (!/probe/.test(t)) await new Promise((r) => setTimeout(r, 100));
        }
        assert.match(t, /probe did not come back/);
        // given up (redis_broker_probe_failures), then made again on a
        // later tick (redis_broker_reconnects): a new generation of shard 1
        let given = 0, again = 0;
        for (let i = 0; i < 150 && !(given && again); i++) {
          if (i) await new Promise((r) => setTimeout(r, 100));
          given = await metric(g, 'redis_broker_probe_failures');
          again = await metric(g, 'redis_broker_reconnects');
        }
        assert.ok(given >= 1 && again >= 1, `${g.port}: the broker gave shard 1's subscriber up (redis_broker_probe_failures ${given}) and made it again (redis_broker_reconnects ${again})`);
      }
      // Shard 0's user keeps its live feed on every node meanwhile: events
      // posted now (after the give-up) reach its open tabs while shard 1 is
      // still frozen, and so did everything before (only the event for both
      // users waits for shard 1). Before the per-shard generation, each
      // node held its whole feed here until shard 1 was back.
      for (let i = 0; i < 4; i++) assert.equal((await post(nodes[i % 2], u0, 'given-up')).status, 202);
      const liveU0 = accepted.get(u0).filter((x) => x !== 'both');
      for (const { c } of tabs.get(u0)) {
        await c.waitFor(() => liveU0.every((x) => descsOf(c).includes(x)),
          { timeout: 20000, what: `shard 0's user's ${liveU0.length} events live while shard 1 is given up` });
        assert.ok(!c.closeInfo, `${c.name} closed: ${JSON.stringify(c.closeInfo)}`);
      }
      const liveDuringFreeze = liveU0.filter((x) => !x.startsWith('before')).length;

      frozen.child.kill('SIGCONT');
      stopped = false;
      for (const g of nodes) await waitReadyz(g, 200);
      // Shard 1's user's tabs: their node's feed of shard 1 had a gap, so
      // each is closed with 1012 and resumes with since, losing nothing.
      let resumes = 0, delivered = 0;
      const want1 = accepted.get(u1);
      for (const { c, node } of tabs.get(u1)) {
        const closed = await c.waitClose(15000);
        assert.equal(closed.code, 1012, JSON.stringify(closed));
        const descs0 = descsOf(c), seqs0 = seqsOf(c);
        const again = await tab(nodes[node], keys, u1, `${c.name}-again`, lastSeq(c));
        await again.c.waitFor(() => want1.every((s) => [...descs0, ...descsOf(again.c)].includes(s)),
          { timeout: 20000, what: `every accepted event after the resume (${want1.length})` });
        await again.c.roundTrip();
        const descs = [...descs0, ...descsOf(again.c)];
        assertExactlyOnce(descs, want1, c.name);
        assertContiguous([...seqs0, ...seqsOf(again.c)], c.name, 1);
        again.c.close();
        resumes++;
        delivered += descs.length;
      }
      // Shard 0's user's tabs, on the same nodes (whose shard-1 closes
      // happened above): never closed, the event for both users live too.
      const want0 = accepted.get(u0);
      for (const { c } of tabs.get(u0)) {
        await c.waitFor(() => want0.every((s) => descsOf(c).includes(s)), { timeout: 15000, what: 'every accepted event, live' });
        await c.roundTrip(); // a 1012 sent with the shard-1 closes would come before the pong
        assert.ok(!c.closeInfo, `${c.name} (shard 0) closed: ${JSON.stringify(c.closeInfo)}`);
        assertExactlyOnce(descsOf(c), want0, c.name);
        assertContiguous(seqsOf(c), c.name, 1);
        delivered += descsOf(c).length;
      }
      const closed = (await Promise.all(nodes.map((g) => metric(g, 'cluster_resume_closes')))).reduce((x, y) => x + y, 0);
      assert.ok(closed >= 2, `shard 1's user's 2 tabs closed with 1012 (cluster_resume_closes ${closed})`);
      // The other way round: shard 0 holds the journal, so with shard 0
      // frozen even shard 1's user's event is refused (503 + Retry-After).
      shards[0].child.kill('SIGSTOP');
      stopped0 = true;
      const r0 = await postEvent(nodes[0].port, await mintFit(keys), envelope(bugEvent({ key: 'FZ-3', assignee: u1, summary: 'shard0-frozen' })), { timeout: 10000 });
      assert.equal(r0.status, 503, r0.text);
      assert.ok(r0.headers['retry-after'], 'Retry-After on the 503');
      shards[0].child.kill('SIGCONT');
      stopped0 = false;
      const left = (await Promise.all(nodes.map((g) => metric(g, 'store_record_failed')))).reduce((x, y) => x + y, 0);
      process.stdout.write(`# shard 1 frozen: ${accepted.get(u0).length + accepted.get(u1).length - 1} events answered 202 (all of them), shard 0's user's ${liveDuringFreeze} live on every tab during the freeze (4 after both brokers gave shard 1 up), none of its tabs closed; ${delivered} deliveries to 4 tabs each once, ${closed} tab(s) closed with 1012, ${resumes} of shard 1's user resumed with since, ${left} event recordings failed (left pending, claimed again)\n`);
      for (const list of tabs.values()) for (const { c } of list) c.close();
    } finally {
      if (stopped) frozen.child.kill('SIGCONT');
      if (stopped0) shards[0].child.kill('SIGCONT');
      await stopAll(nodes);
    }
  });
});
