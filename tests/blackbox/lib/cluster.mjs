// cluster.mjs - helpers for the cluster-mode black-box tests (issue 13):
// a user's shard and channel as the gateway computes them (docs/cluster.md,
// "Keys"), redis-cli on a shard, tabs that subscribe (and resume with since),
// posting with Forge's retry of a 503, and the exactly-once / contiguous
// assertions, and the one signing key every node of a cluster shares. Every
// wait is bounded.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { INSTALLATION, mintFit, mintSub } from './keys.mjs';
import { getJson, postEvent } from './http.mjs';
import { tempDir } from './gateway.mjs';
import { WsClient } from './ws.mjs';
import { claimsOf } from './notification.mjs';

const M64 = (1n << 64n) - 1n;

/** The user's shard among n (redis_conn.c gw_redis_shard_of: FNV-1a over
 * installation NUL user, the splitmix64 finalizer, jump consistent hash). */
export function shardOf(user, n, installation = INSTALLATION) {
  if (n <= 1) return 0;
  let key = 1469598103934665603n;
  for (const b of [...Buffer.from(installation), 0, ...Buffer.from(user)]) key = ((key ^ BigInt(b)) * 1099511628211n) & M64;
  key = ((key ^ (key >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  key = ((key ^ (key >> 27n)) * 0x94d049bb133111ebn) & M64;
  key ^= key >> 31n;
  let b = -1, j = 0;
  while (j < n) {
    b = j;
    key = (key * 2862933555777941757n + 1n) & M64;
    j = Math.trunc((b + 1) * (2 ** 31 / (Number(key >> 33n) + 1)));
  }
  return b;
}

/** The 32-hex user key of the store's key names and channels. */
export function userHash(user, installation = INSTALLATION) {
  return createHash('sha256').update(installation).update(Buffer.from([0])).update(user).digest('hex').slice(0, 32);
}

export const channelOf = (user, db = 0) => `gw:ch:${db}:${userHash(user)}`;

/** redis-cli against the server on port; the output, trimmed. */
export function redisCli(port, ...args) {
  return execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout: 10000 }).trim();
}

/** Asserts, at once, that the user's channel on its server has n
 * subscribers: every node holding a tab of the user has subscribed. A tab's
 * `subscribed` comes only once Redis confirmed its node's SUBSCRIBE
 * (docs/cluster.md, "The live seam after a subscribe"), so no waiting. */
export function assertSubscribers(port, user, n) {
  const out = redisCli(port, 'PUBSUB', 'NUMSUB', channelOf(user)).split('\n');
  assert.equal(Number(out[1]), n, `PUBSUB NUMSUB ${channelOf(user)} on port ${port} right after every tab was subscribed`);
}

/** A tab of user on gw: connect, subscribe to every context (resuming after
 * `since` when given). Resolves {c, connected, subscribed}. */
export async function tab(gw, keys, user, name, since) {
  const c = await WsClient.open(gw.wsUrl, { name, diag: () => gw.diag() });
  c.send({ op: 'connect', token: await mintSub(keys, { sub: user, ctx: ['*'] }) });
  const connected = await c.waitOp('connected');
  c.send({ op: 'subscribe', ctx: '*', ...(since !== undefined ? { since: { epoch: connected.epoch, seq: since } } : {}) });
  const subscribed = await c.waitOp('subscribed', { timeout: 10000 });
  return { c, connected, subscribed };
}

export const seqsOf = (c) => c.notifications().map((f) => claimsOf(f).seq);
export const descsOf = (c) => c.notifications().map((f) => claimsOf(f).n.description);

/** The highest seq a tab holds (0: none). */
export const lastSeq = (c) => {
  const n = c.notifications();
  return n.length ? claimsOf(n[n.length - 1]).seq : 0;
};

/** Every accepted description exactly once in descs, and nothing twice. */
export function assertExactlyOnce(descs, accepted, what) {
  const counts = new Map();
  for (const d of descs) counts.set(d, (counts.get(d) || 0) + 1);
  for (const s of accepted) assert.equal(counts.get(s), 1, `${what}: ${s} delivered ${counts.get(s) || 0} times`);
  for (const [d, n] of counts) assert.equal(n, 1, `${what}: ${d} delivered ${n} times`);
}

export function assertContiguous(seqs, what, first) {
  if (first !== undefined) assert.equal(seqs[0], first, `${what}: first seq`);
  assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => seqs[0] + i), `${what}: seqs ${seqs.join(',')}`);
}

/**
 * Posts one event as Forge does: a 503 is retried after a pause (here at
 * most `tries` times); a lost answer (timeout, reset) is retried too, since
 * it promised nothing. Resolves {status, tries, refused} where refused counts
 * the 503 answers.
 */
export async function postRetrying(gw, keys, body, { tries = 60, pause = 250, timeout = 5000 } = {}) {
  let refused = 0;
  for (let i = 1; i <= tries; i++) {
    let res = null;
    try {
      res = await postEvent(gw.port, await mintFit(keys), body, { timeout });
    } catch { /* no answer: nothing was promised, Forge retries */ }
    if (res && res.status !== 503) return { status: res.status, text: res.text, tries: i, refused };
    if (res) {
      refused++;
      assert.ok(res.headers['retry-after'], 'Retry-After on a 503');
    }
    await new Promise((r) => setTimeout(r, pause));
  }
  return { status: 503, tries, refused };
}

/** Polls /readyz until it answers `status` (bounded); resolves the answer. */
export async function waitReadyz(gw, status, { tries = 150 } = {}) {
  let r;
  for (let i = 0; i < tries; i++) {
    r = await getJson(gw.port, '/readyz').catch((e) => ({ status: 0, text: String(e) }));
    if (r.status === status) return r;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(r.status, status, `${r.text}\n${gw.diag()}`);
  return r;
}

/** A counter from a node's /metrics (0 when absent); label: e.g.
 * 'reason="store"' for a family (events_rejected). */
export async function metric(gw, name, label) {
  const m = (await getJson(gw.port, '/metrics')).text;
  const l = label ? `\\{${label}\\}` : '';
  return Number(new RegExp(`^notify_gateway_${name}_total${l} (\\d+)`, 'm').exec(m)?.[1] ?? 0);
}

export { INSTALLATION };

/** One ES256 signing key for every node of a test's cluster (one JWKS for
 * the whole cluster), in a new temp dir: {keyDir, signingKey}. */
export function sharedSigningKey(prefix) {
  const keyDir = tempDir(prefix);
  const signingKey = path.join(keyDir, 'signing-key.pem');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  writeFileSync(signingKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return { keyDir, signingKey };
}
