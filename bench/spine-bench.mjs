#!/usr/bin/env node
// spine-bench.mjs - measures the gateway's spine end to end: HTTP intake
// (RS256 FIT verification) -> rules -> ES256 batch signing (Merkle tree) ->
// websocket fan-out.
// A measuring script, not a test. See bench/README.md.
//
//   node bench/spine-bench.mjs [BINARY] [--users 1000] [--events 20000]
//        [--concurrency 32] [--latency-events 2000] [--workers N] [--json]
//
// It starts the gateway on 127.0.0.1:0 with a fresh state dir and its own
// keys, connects --users websockets (one per user, each subscribed to its own
// context, HS256 subscription tokens), then
//   phase A (throughput): posts --events events as fast as possible over
//     --concurrency keep-alive connections, each event addressed to one user;
//     reports accepted events/s (202) and POST-start -> frame latency under
//     that load;
//   phase B (latency): posts --latency-events events one at a time and reports
//     the same latency without queueing.
// Delivered must equal accepted (each event reaches exactly one socket).
// Everything is local (127.0.0.1) and bounded: counts are fixed, every wait
// has a timeout, and the gateway is stopped at the end.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const blackbox = path.join(root, 'tests/blackbox');
let WebSocket;
try {
  WebSocket = createRequire(path.join(blackbox, 'package.json'))('ws');
} catch {
  console.error('spine-bench: the ws package is missing: run "cd tests/blackbox && npm ci" first');
  process.exit(2);
}

// ---- options ----------------------------------------------------------------
const opts = { users: 1000, events: 20000, concurrency: 32, latencyEvents: 2000, workers: 0, json: false, binary: process.env.GW_BINARY };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const num = () => {
    const v = Number(argv[++i]);
    if (!Number.isInteger(v) || v < 0) throw new Error(`${a} expects a non-negative integer`);
    return v;
  };
  if (a === '--users') opts.users = num();
  else if (a === '--events') opts.events = num();
  else if (a === '--concurrency') opts.concurrency = Math.max(1, num());
  else if (a === '--latency-events') opts.latencyEvents = num();
  else if (a === '--workers') opts.workers = num();
  else if (a === '--json') opts.json = true;
  else if (a === '--help' || a === '-h') {
    console.log(fs.readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(1, 20).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
    process.exit(0);
  } else if (!a.startsWith('--') && !opts.binaryFromArg) {
    opts.binary = a;
    opts.binaryFromArg = true;
  } else throw new Error(`unknown argument ${a}`);
}
opts.binary = path.resolve(opts.binary || path.join(root, 'build/gateway/notify-gateway'));
if (!fs.existsSync(opts.binary)) {
  console.error(`spine-bench: no gateway binary at ${opts.binary} (pass its path or set GW_BINARY)`);
  process.exit(2);
}
if (opts.users < 1) throw new Error('--users must be at least 1');

// ---- keys and tokens (node:crypto only) ------------------------------------
const b64u = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
const nowS = () => Math.floor(Date.now() / 1000);
const appId = `ari:cloud:ecosystem::app/${crypto.randomUUID()}`;
const kid = 'spine-bench-forge';
const installation = `ari:cloud:ecosystem::installation/${crypto.randomUUID()}`;
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...rsa.publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
const secret = crypto.randomBytes(48).toString('base64url');

function mintFit() {
  const t = nowS();
  const head = b64u({ alg: 'RS256', typ: 'JWT', kid });
  const body = b64u({ iss: 'forge/invocation-token', aud: appId, iat: t, nbf: t, exp: t + 25, jti: crypto.randomBytes(16).toString('hex'),
    app: { id: appId, installationId: installation, module: { type: 'core:endpoint', key: 'bench' } } });
  const sig = crypto.sign('sha256', Buffer.from(`${head}.${body}`), rsa.privateKey).toString('base64url');
  return `${head}.${body}.${sig}`;
}
function mintSub(sub, ctx) {
  const head = b64u({ alg: 'HS256', typ: 'JWT' });
  const body = b64u({ installation, sub, ctx, iat: nowS(), exp: nowS() + 3600 });
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}
// A FIT lives 25 s; the bench reuses one and renews it every 10 s.
let fit = mintFit();
let fitAt = Date.now();
const currentFit = () => {
  if (Date.now() - fitAt > 10000) {
    fit = mintFit();
    fitAt = Date.now();
  }
  return fit;
};

// ---- gateway ------------------------------------------------------------------
const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spine-bench-'));
fs.writeFileSync(path.join(stateDir, 'jwks.json'), JSON.stringify({ keys: [jwk] }));
fs.writeFileSync(path.join(stateDir, 'subscriber-secret'), secret, { mode: 0o600 });
const adminToken = crypto.randomBytes(24).toString('base64url'); // /admin/status holds the counters
fs.writeFileSync(path.join(stateDir, 'admin-token'), adminToken);
const gwArgs = ['--listen', '127.0.0.1:0', '--state-dir', stateDir, '--rules', path.join(blackbox, 'fixtures/rules.yml'),
  '--admin-token-file', path.join(stateDir, 'admin-token'),
  '--forge-jwks', path.join(stateDir, 'jwks.json'), '--forge-app-id', appId, '--subscriber-hs256-secret', path.join(stateDir, 'subscriber-secret'),
  '--limits-queue', String(Math.max(10000, opts.events + 1000)), '--log-level', 'warn'];
if (opts.workers) gwArgs.push('--workers', String(opts.workers));
const gw = spawn(opts.binary, gwArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
let gwStderr = '';
let gwStdout = '';
let gwExit = null;
const gwExited = new Promise((r) => gw.on('close', (code, signal) => r((gwExit = { code, signal }))));
gw.stderr.setEncoding('utf8').on('data', (d) => (gwStderr = (gwStderr + d).slice(-20000)));
gw.stdout.setEncoding('utf8').on('data', (d) => (gwStdout += d));
process.on('exit', () => {
  if (!gwExit) gw.kill('SIGKILL');
  fs.rmSync(stateDir, { recursive: true, force: true });
});

function withTimeout(p, ms, what) {
  let t;
  return Promise.race([p, new Promise((_, rej) => (t = setTimeout(() => rej(new Error(`timeout after ${ms} ms: ${what}`)), ms)))]).finally(() => clearTimeout(t));
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitPort() {
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(gwStdout);
    if (m) return Number(m[1]);
    if (gwExit) break;
    await sleep(20);
  }
  throw new Error(`the gateway did not start\n${gwStderr}`);
}

function cpuOfPid(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime in clock ticks (USER_HZ = 100) -> s
  } catch {
    return NaN;
  }
}

/** Machine-wide busy CPU seconds so far (all CPUs, from /proc/stat). */
function machineBusy() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] || 0);
    return (f.reduce((a, b) => a + b, 0) - idle) / 100;
  } catch {
    return NaN;
  }
}

// ---- run ------------------------------------------------------------------------
const port = await waitPort();
const userId = (i) => `bench-user-${i.toString().padStart(5, '0')}`;
const ctxOf = (i) => `jira:issue:B-${i}`;

// Pending deliveries: event id -> POST start (hrtime ns).
const pending = new Map();
const latencies = { A: [], B: [] };
let phase = 'warmup';
let delivered = 0;
let foreign = 0;
const deliveredIds = new Set();
let duplicates = 0;

function onFrame(data, i) {
  const text = data.toString();
  if (!text.startsWith('{"op":"notification"')) return;
  // the claims, base64url in the frame (the batch proof is not checked here)
  const claims = JSON.parse(Buffer.from(JSON.parse(text).claims, 'base64url').toString());
  const id = claims.n.description;
  if (claims.sub !== userId(i)) foreign += 1;
  if (deliveredIds.has(id)) duplicates += 1;
  deliveredIds.add(id);
  delivered += 1;
  const t0 = pending.get(id);
  if (t0 !== undefined) {
    pending.delete(id);
    if (latencies[phase]) latencies[phase].push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
}

async function connectUser(i) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/realtime`);
  await withTimeout(new Promise((res, rej) => {
    ws.once('open', res);
    ws.once('error', rej);
  }), 10000, `websocket ${i} open`);
  const ready = new Promise((res, rej) => {
    ws.on('message', function first(data) {
      const f = JSON.parse(data.toString());
      if (f.op === 'subscribed') {
        ws.off('message', first);
        res();
      } else if (f.op === 'error') rej(new Error(`user ${i}: ${f.code} ${f.message}`));
    });
  });
  ws.on('message', (d) => onFrame(d, i));
  ws.send(JSON.stringify({ op: 'connect', token: mintSub(userId(i), [ctxOf(i)]) }));
  ws.send(JSON.stringify({ op: 'subscribe', ctx: ctxOf(i) }));
  await withTimeout(ready, 10000, `websocket ${i} subscribed`);
  return ws;
}

const sockets = [];
const tConnect = process.hrtime.bigint();
for (let i = 0; i < opts.users; i += 50) {
  const batch = [];
  for (let k = i; k < Math.min(opts.users, i + 50); k++) batch.push(connectUser(k));
  sockets.push(...(await Promise.all(batch)));
}
const connectMs = Number(process.hrtime.bigint() - tConnect) / 1e6;

let seqNo = 0;
function eventBody(id, u) {
  return JSON.stringify({ payload: { eventType: 'avi:jira:created:issue', selfGenerated: false, timestamp: String(Date.now()),
    issue: { id: String(10000 + u), key: `B-${u}`, fields: { summary: id, issuetype: { name: 'Bug' }, assignee: { accountId: userId(u) } } } } });
}

/** Posts count events with `concurrency` keep-alive connections; returns stats. */
async function postPhase(name, count, concurrency) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let next = 0;
  const stats = { posted: 0, accepted: 0, refused: {}, errors: 0 };
  const t0 = process.hrtime.bigint();
  async function worker() {
    while (next < count) {
      next += 1;
      const u = seqNo % opts.users;
      const id = `${name}-${seqNo++}`;
      const body = eventBody(id, u);
      const start = process.hrtime.bigint();
      pending.set(id, start);
      stats.posted += 1;
      const status = await new Promise((resolve) => {
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/forge/events', agent,
          headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Authorization: `Bearer ${currentFit()}` } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        });
        req.setTimeout(30000, () => req.destroy(new Error('timeout')));
        req.on('error', () => resolve(0));
        req.end(body);
      });
      if (status === 202) stats.accepted += 1;
      else {
        pending.delete(id);
        if (status === 0) stats.errors += 1;
        else stats.refused[status] = (stats.refused[status] || 0) + 1;
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  stats.seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  agent.destroy();
  return stats;
}

async function waitDelivered(target, ms) {
  const deadline = Date.now() + ms;
  while (delivered < target && Date.now() < deadline) await sleep(20);
}

// Warm-up (not measured).
phase = 'warmup';
const warm = await postPhase('warm', Math.min(500, opts.users), 8);
await waitDelivered(warm.accepted, 30000);
const base = delivered;

// Phase A: throughput.
phase = 'A';
const cpu0 = process.cpuUsage();
const gwCpu0 = cpuOfPid(gw.pid);
const busy0 = machineBusy();
const tA = process.hrtime.bigint();
const A = await postPhase('A', opts.events, opts.concurrency);
await waitDelivered(base + A.accepted, 60000);
const wallA = Number(process.hrtime.bigint() - tA) / 1e9;
const cpuA = process.cpuUsage(cpu0);
const gwCpuA = cpuOfPid(gw.pid) - gwCpu0;
const busyA = machineBusy() - busy0;
const deliveredA = delivered - base;

// Phase B: latency without queueing.
phase = 'B';
const baseB = delivered;
const B = await postPhase('B', opts.latencyEvents, 1);
await waitDelivered(baseB + B.accepted, 30000);
const deliveredB = delivered - baseB;

// Health counters, then a graceful stop.
const health = await new Promise((resolve) => {
  http.get({ host: '127.0.0.1', port, path: '/admin/status', agent: false, headers: { Authorization: `Bearer ${adminToken}` } }, (res) => {
    let t = '';
    res.on('data', (d) => (t += d));
    res.on('end', () => resolve(JSON.parse(t)));
  }).on('error', () => resolve(null));
});
for (const ws of sockets) ws.terminate();
gw.kill('SIGTERM');
await withTimeout(gwExited, 20000, 'gateway exit').catch(() => gw.kill('SIGKILL'));

// ---- report -------------------------------------------------------------------------
function pct(arr, p) {
  if (!arr.length) return NaN;
  const s = [...arr].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const clientCpuA = (cpuA.user + cpuA.system) / 1e6;
const result = {
  binary: opts.binary,
  gatewayWorkers: health?.workers,
  cpus: os.cpus().length,
  users: opts.users,
  connectSeconds: connectMs / 1000,
  phaseA: {
    posted: A.posted, accepted: A.accepted, refused: A.refused, errors: A.errors, delivered: deliveredA,
    concurrency: opts.concurrency, postSeconds: A.seconds, acceptedPerSecond: A.accepted / A.seconds,
    deliveredPerSecond: deliveredA / wallA,
    latencyMs: { p50: pct(latencies.A, 50), p99: pct(latencies.A, 99), p999: pct(latencies.A, 99.9), max: pct(latencies.A, 100) },
    clientCpuSeconds: clientCpuA, gatewayCpuSeconds: gwCpuA, machineBusyCpuSeconds: busyA, wallSeconds: wallA,
  },
  phaseB: {
    posted: B.posted, accepted: B.accepted, delivered: deliveredB, acceptedPerSecond: B.accepted / B.seconds,
    latencyMs: { p50: pct(latencies.B, 50), p99: pct(latencies.B, 99), p999: pct(latencies.B, 99.9), max: pct(latencies.B, 100) },
  },
  duplicates, foreign, undeliveredAtEnd: pending.size, gatewayExit: gwExit,
  gatewayCounters: health?.counters,
};
if (opts.json) {
  console.log(JSON.stringify(result, null, 2));
} else {
  const rows = [
    ['', 'A: throughput', 'B: one at a time'],
    ['concurrent POSTs', String(opts.concurrency), '1'],
    ['events posted', String(A.posted), String(B.posted)],
    ['accepted (202)', String(A.accepted), String(B.accepted)],
    ['refused / errors', `${JSON.stringify(A.refused)} / ${A.errors}`, `${JSON.stringify(B.refused)} / ${B.errors}`],
    ['delivered', String(deliveredA), String(deliveredB)],
    ['accepted events/s', fmt(result.phaseA.acceptedPerSecond, 0), fmt(result.phaseB.acceptedPerSecond, 0)],
    ['latency p50 (ms)', fmt(result.phaseA.latencyMs.p50), fmt(result.phaseB.latencyMs.p50)],
    ['latency p99 (ms)', fmt(result.phaseA.latencyMs.p99), fmt(result.phaseB.latencyMs.p99)],
    ['latency p99.9 (ms)', fmt(result.phaseA.latencyMs.p999), fmt(result.phaseB.latencyMs.p999)],
    ['latency max (ms)', fmt(result.phaseA.latencyMs.max), fmt(result.phaseB.latencyMs.max)],
  ];
  const w = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c].length)));
  console.log(`notify-gateway spine bench: ${opts.users} users (1 websocket each), gateway workers ${health?.workers ?? '?'}, ${os.cpus().length} CPUs`);
  console.log(`binary ${opts.binary}; ${opts.users} websockets connected+subscribed in ${fmt(connectMs / 1000)} s`);
  for (const r of rows) console.log(`  ${r[0].padEnd(w[0])}  ${r[1].padStart(w[1])}  ${r[2].padStart(w[2])}`);
  console.log(`latency = POST start -> notification frame arrival at the websocket client (process.hrtime)`);
  const otherA = Math.max(0, busyA - clientCpuA - gwCpuA);
  console.log(`phase A CPU: bench client (node) ${fmt(clientCpuA)} s, gateway ${fmt(gwCpuA)} s, other processes ${fmt(otherA)} s, over ${fmt(wallA)} s wall (${os.cpus().length} CPUs)`);
  if (otherA / (wallA * os.cpus().length) > 0.1) console.log(`note: other processes used ${Math.round((otherA / (wallA * os.cpus().length)) * 100)}% of the machine during phase A; the numbers are disturbed.`);
  const clientShare = clientCpuA / wallA;
  const machineShare = (clientCpuA + gwCpuA) / (wallA * os.cpus().length);
  console.log(`note: node (the bench client) used ${Math.round(clientShare * 100)}% of one core, the gateway ${Math.round((gwCpuA / wallA) * 100)}%; ` +
    `together ${Math.round(machineShare * 100)}% of the machine's ${os.cpus().length} CPUs. Client and gateway share them` +
    `${machineShare > 0.75 || clientShare > 0.8 ? ', and the machine was (nearly) saturated: node is likely a bottleneck and these numbers are a lower bound for the gateway' : ''}.`);
  if (duplicates || foreign || deliveredA !== A.accepted || deliveredB !== B.accepted) {
    console.log(`WARNING: delivered != accepted (A ${deliveredA}/${A.accepted}, B ${deliveredB}/${B.accepted}), duplicates ${duplicates}, foreign ${foreign}`);
  }
  console.log(`gateway exit: ${JSON.stringify(gwExit)}`);
}
const ok = deliveredA === A.accepted && deliveredB === B.accepted && !duplicates && !foreign;
process.exitCode = ok ? 0 : 1;
