// cluster.test.mjs - cluster mode (issue 13) with the real binary: one real
// redis-server (free port, temp dir) and three gateway nodes sharing it.
// Events posted round-robin to all nodes, one user's tabs spread over the
// nodes: every notification reaches each tab exactly once, seq contiguous,
// proofs verify, the inbox is the same from every node. Then the failures:
// kill -9 of a node mid-stream (its events finished by another node after
// cluster.claim_after, its clients resume on another node with since), and a
// frozen Redis (SIGSTOP: intake 503 + Retry-After within cluster.timeout,
// /readyz 503, websockets open; SIGCONT: flows again without a restart).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { startGateway, tempDir } from './lib/gateway.mjs';
import { makeKeys, mintFit, mintSub, gatewayJwks, INSTALLATION } from './lib/keys.mjs';
import { postEvent, getJson } from './lib/http.mjs';
import { WsClient } from './lib/ws.mjs';
import { claimsOf, verifyNotification } from './lib/notification.mjs';
import { bugEvent, envelope, uniqueUser } from './lib/events.mjs';
import { startRedis } from './lib/redis.mjs';

let keys, redis, keyDir, signingKey;
const CLAIM_AFTER = 1500; // ms: a dead node's events are taken over after this
const TIMEOUT = 800;      // ms: cluster.timeout

before(async () => {
  keys = await makeKeys({ subscriber: 'es256' });
  redis = await startRedis({ aof: true });
  // every node signs with the same key (one JWKS for the whole cluster)
  keyDir = tempDir('ngw-cluster-key-');
  signingKey = path.join(keyDir, 'signing-key.pem');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(signingKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
});
after(async () => {
  await redis?.stop();
  rmSync(keyDir, { recursive: true, force: true });
});

function startNode(name, extra = []) {
  return startGateway({
    keys,
    args: ['--redis', redis.url, '--node-id', name, '--signing-key', signingKey,
      '--cluster-timeout', String(TIMEOUT), '--cluster-claim-after', String(CLAIM_AFTER), ...extra],
  });
}

async function startNodes(n) {
  const nodes = [];
  for (let i = 0; i < n; i++) nodes.push(await startNode(`n${i}-${process.pid}`));
  return nodes;
}

/** The Redis channel of a user (docs/cluster.md): its subscriber count tells
 * when every node holding a tab has subscribed. */
function channelOf(user, installation = INSTALLATION) {
  const h = createHash('sha256').update(installation).update(Buffer.from([0])).update(user).digest('hex').slice(0, 32);
  return `gw:ch:0:${h}`;
}

function redisCli(...args) {
  return execFileSync('redis-cli', ['-p', String(redis.port), ...args], { encoding: 'utf8' }).trim();
}

async function waitSubscribers(user, n) {
  const ch = channelOf(user);
  for (let i = 0; i < 200; i++) {
    const out = redisCli('PUBSUB', 'NUMSUB', ch).split('\n');
    if (Number(out[1]) >= n) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`channel ${ch} never had ${n} subscribers`);
}

async function tab(gw, user, name, since) {
  const c = await WsClient.open(gw.wsUrl, { name, diag: () => gw.diag() });
  c.send({ op: 'connect', token: await mintSub(keys, { sub: user, ctx: ['*'] }) });
  const connected = await c.waitOp('connected');
  c.send({ op: 'subscribe', ctx: '*', ...(since !== undefined ? { since: { epoch: connected.epoch, seq: since } } : {}) });
  await c.waitOp('subscribed', { timeout: 10000 });
  return { c, connected };
}

const seqsOf = (c) => c.notifications().map((f) => claimsOf(f).seq);
const descsOf = (c) => c.notifications().map((f) => claimsOf(f).n.description);

function assertExactlyOnce(c, accepted, what) {
  const counts = new Map();
  for (const d of descsOf(c)) counts.set(d, (counts.get(d) || 0) + 1);
  for (const s of accepted) assert.equal(counts.get(s), 1, `${what}: ${s} delivered ${counts.get(s) || 0} times`);
  for (const [d, n] of counts) assert.equal(n, 1, `${what}: ${d} delivered ${n} times`);
}

function assertContiguous(seqs, what) {
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => seqs[0] + i), `${what}: seqs ${seqs.join(',')}`);
}

async function stopAll(nodes) {
  await Promise.all(nodes.map((g) => g.stop()));
}

describe('three nodes, one Redis', () => {
  test('events round-robin over all nodes, tabs on every node: each tab gets every notification once, seq contiguous, the inbox is the same from every node', async () => {
    const nodes = await startNodes(3);
    try {
      const user = uniqueUser('cl');
      const tabs = [];
      for (let i = 0; i < 6; i++) tabs.push(await tab(nodes[i % 3], user, `tab${i}`));
      await waitSubscribers(user, 3);
      const accepted = [];
      const N = 60;
      await Promise.all([0, 1, 2].map(async (w) => {
        for (let i = w; i < N; i += 3) {
          const summary = `rr-${i}`;
          const gw = nodes[i % 3];
          const res = await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key: `CL-${i % 5}`, assignee: user, summary })));
          assert.equal(res.status, 202, `${res.text}\n${gw.diag()}`);
          accepted.push(summary);
        }
      }));
      const jwks = await gatewayJwks(nodes[0]);
      for (const { c } of tabs) {
        await c.waitNotifications(N, { timeout: 20000 });
        await c.roundTrip();
        assertExactlyOnce(c, accepted, c.name);
        assertContiguous(seqsOf(c), c.name);
        assert.equal(seqsOf(c)[0], 1);
      }
      for (const f of tabs[0].c.notifications().slice(0, 5)) await verifyNotification(f, jwks.keySet);
      // events journaled by one node were processed by others too
      const processed = await Promise.all(nodes.map(async (g) => {
        const m = (await getJson(g.port, '/metrics')).text;
        return Number(/^gateway_events_processed_total (\d+)/m.exec(m)?.[1] ?? /events_processed\S* (\d+)/.exec(m)?.[1] ?? 0);
      }));
      assert.equal(processed.reduce((a, b) => a + b, 0), N, `processed per node: ${processed}`);
      // the inbox from every node: same ids, same order
      const inboxes = [];
      for (const { c } of tabs.slice(0, 3)) {
        const from = c.frames.length;
        c.send({ op: 'inbox', id: 'ib', limit: 200 });
        const ib = await c.waitFor((f) => f.op === 'inbox', { from });
        inboxes.push(ib.items.map((it) => it.seq));
      }
      assert.equal(inboxes[0].length, N);
      assert.deepEqual(inboxes[1], inboxes[0]);
      assert.deepEqual(inboxes[2], inboxes[0]);
      process.stdout.write(`# cluster: ${N} events over 3 nodes, 6 tabs each got ${N} once; processed per node ${processed.join('/')}\n`);
      for (const { c } of tabs) c.close();
    } finally {
      await stopAll(nodes);
    }
  });
});
