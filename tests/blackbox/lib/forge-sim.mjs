// forge-sim.mjs - drives tools/forge-sim (the Forge simulator) from tests.
//
// The binary: $GW_FORGE_SIM, else next to the gateway binary's build tree
// (${GW_BINARY%/gateway/notify-gateway}/tools/forge-sim/forge-sim), else
// build/tools/forge-sim/forge-sim in the source tree.
//
//   const sim = await ForgeSim.create({ appId, installation });  // keys in a temp dir
//   sim.jwks                      -> the JWKS the gateway must trust
//   await sim.send(gw, [event], { retryDelay: '200ms' })  -> SimRun (finished)
//   const run = sim.start(gw, 'send', [event], opts)      -> SimRun (running)
//   await run.waitLine(/attempt=1 status=503/)            -> bounded wait
//   await run.done                                         -> {code, ...}
//
// Every wait is bounded; a simulator still running when node exits is killed.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { SOURCE_DIR } from './gateway.mjs';

function locate() {
  if (process.env.GW_FORGE_SIM) return process.env.GW_FORGE_SIM;
  const gw = process.env.GW_BINARY;
  if (gw && gw.endsWith('/gateway/notify-gateway')) {
    return gw.slice(0, -'/gateway/notify-gateway'.length) + '/tools/forge-sim/forge-sim';
  }
  return path.join(SOURCE_DIR, 'build/tools/forge-sim/forge-sim');
}

export const FORGE_SIM = locate();
export const DEV_INSTALLATION = 'ari:cloud:ecosystem::installation/00000000-0000-4000-8000-000000000001';

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
});

const tail = (t, n = 4000) => (t.length > n ? '...' + t.slice(-n) : t);

/**
 * Parses forge-sim's stdout:
 *   attempts: [{label, attempt, status, ms, trace, retryCount, retryReason, answer}]
 *   finals:   {label: {outcome: 'delivered'|'failed'|'abandoned', attempts}}
 */
export function parseSimOutput(stdout) {
  const attempts = [];
  const finals = {};
  for (const line of stdout.split('\n')) {
    let m = /^(\S+) attempt=(\d+) status=(\S+) ms=(\d+) trace=([0-9a-f]+)(.*)$/.exec(line);
    if (m) {
      const rest = m[6];
      const a = {
        label: m[1], attempt: Number(m[2]), status: /^\d+$/.test(m[3]) ? Number(m[3]) : m[3], ms: Number(m[4]), trace: m[5],
      };
      const rc = / retryCount=(\d+) retryReason=(\S+)/.exec(rest);
      if (rc) {
        a.retryCount = Number(rc[1]);
        a.retryReason = rc[2];
      }
      const ans = / answer=(.*)$/.exec(rest);
      if (ans) {
        a.answerText = ans[1];
        try {
          a.answer = JSON.parse(ans[1]);
        } catch {
          /* truncated or not JSON */
        }
      }
      attempts.push(a);
      continue;
    }
    m = /^(\S+) (delivered|failed|abandoned) after (\d+) attempts?/.exec(line);
    if (m) finals[m[1]] = { outcome: m[2], attempts: Number(m[3]) };
  }
  return { attempts, finals };
}

/** One running forge-sim process; stdout is followed line by line. */
export class SimRun {
  constructor(args, { timeout = 60000 } = {}) {
    if (!existsSync(FORGE_SIM)) throw new Error(`forge-sim not found: ${FORGE_SIM} (build it, or set GW_FORGE_SIM)`);
    this.args = args;
    this.stdout = '';
    this.stderr = '';
    this.waiters = [];
    this.child = spawn(FORGE_SIM, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(this.child);
    this.child.stdout.setEncoding('utf8').on('data', (d) => {
      this.stdout += d;
      this.wake();
    });
    this.child.stderr.setEncoding('utf8').on('data', (d) => (this.stderr += d));
    this.exit = null;
    this.done = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        reject(new Error(`forge-sim did not finish within ${timeout} ms\n${this.diag()}`));
      }, timeout);
      this.child.on('error', (e) => {
        clearTimeout(timer);
        live.delete(this.child);
        reject(e);
      });
      this.child.on('close', (code, signal) => {
        clearTimeout(timer);
        live.delete(this.child);
        this.exit = { code, signal };
        this.wake();
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr, ...parseSimOutput(this.stdout) });
      });
    });
    this.done.catch(() => {}); // observed by callers; avoid unhandled rejections
  }

  wake() {
    for (const w of [...this.waiters]) w();
  }

  diag() {
    return `forge-sim ${this.args.join(' ')}\nexit: ${JSON.stringify(this.exit)}\nstdout:\n${tail(this.stdout)}\nstderr:\n${tail(this.stderr)}`;
  }

  get parsed() {
    return parseSimOutput(this.stdout);
  }

  /** Resolves with the first stdout line matching re; rejects after timeout or at exit. */
  waitLine(re, { timeout = 10000 } = {}) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const line = this.stdout.split('\n').find((l) => re.test(l));
        if (line !== undefined) {
          done();
          resolve(line);
        } else if (this.exit) {
          done();
          reject(new Error(`forge-sim exited before printing ${re}\n${this.diag()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`forge-sim printed no ${re} within ${timeout} ms\n${this.diag()}`));
      }, timeout);
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      this.waiters.push(check);
      check();
    });
  }

  kill(sig = 'SIGINT') {
    if (!this.exit) this.child.kill(sig);
  }
}

/** Runs forge-sim with args to completion (bounded); resolves {code, stdout, stderr, attempts, finals}. */
export function runSim(args, opts) {
  return new SimRun(args, opts).done;
}

/** A simulator identity: its own RSA key (temp dir), an app and an installation. */
export class ForgeSim {
  constructor({ dir, appId, installation, ownsDir }) {
    this.dir = dir;
    this.appId = appId;
    this.installation = installation;
    this.ownsDir = ownsDir;
    this.jwksPath = path.join(dir, 'jwks.json');
    this.jwks = JSON.parse(readFileSync(this.jwksPath, 'utf8'));
    this.kid = this.jwks.keys[0].kid;
    this.eventCount = 0;
  }

  /** Generates a key pair with `forge-sim keys` (in dir, or a new temp dir). */
  static async create({ appId, installation = DEV_INSTALLATION, dir, kid } = {}) {
    const ownsDir = !dir;
    dir = dir || mkdtempSync(path.join(os.tmpdir(), 'forge-sim-'));
    const args = ['keys', '--dir', dir];
    if (kid) args.push('--kid', kid);
    const r = await runSim(args, { timeout: 30000 });
    if (r.code !== 0) throw new Error(`forge-sim keys failed (${r.code}): ${r.stderr}`);
    return new ForgeSim({ dir, appId, installation, ownsDir });
  }

  /** The same key, speaking for another app and/or installation. */
  as({ appId = this.appId, installation = this.installation } = {}) {
    return new ForgeSim({ dir: this.dir, appId, installation, ownsDir: false });
  }

  /** Writes an event object to a JSON file in the key dir; returns its path. */
  eventFile(event, name) {
    this.eventCount += 1;
    const p = path.join(this.dir, name || `event-${process.pid}-${this.eventCount}.json`);
    writeFileSync(p, typeof event === 'string' ? event : JSON.stringify(event, null, 2));
    return p;
  }

  /** Command-line arguments for one invocation against gateway gw. */
  argv(command, gw, opts = {}) {
    const a = [command, '--url', gw.url ?? gw, '--keys', this.dir,
      '--app-id', opts.appId ?? this.appId, '--installation', opts.installation ?? this.installation];
    const map = {
      timeout: '--timeout', retries: '--retries', retryDelay: '--retry-delay', fitTtl: '--fit-ttl',
      systemTokenTtl: '--system-token-ttl', traceId: '--trace-id', interval: '--interval', every: '--every',
      count: '--count', appVersion: '--app-version', path: '--path', body: '--body',
      principal: '--principal', issue: '--issue', content: '--content', context: '--context', moduleType: '--module-type',
    };
    for (const [k, flag] of Object.entries(map)) if (opts[k] !== undefined) a.push(flag, String(opts[k]));
    for (const h of opts.headers || []) a.push('--header', h);
    if (opts.bare) a.push('--bare');
    if (opts.noFit) a.push('--no-fit');
    return a;
  }

  /** Starts `send` for events (objects, or paths when strings ending in .json). */
  startSend(gw, events, opts = {}) {
    const files = events.map((e) => (typeof e === 'string' && e.endsWith('.json') ? e : this.eventFile(e)));
    return new SimRun([...this.argv('send', gw, opts), ...files], { timeout: opts.simTimeout ?? 60000 });
  }

  send(gw, events, opts = {}) {
    return this.startSend(gw, events, opts).done;
  }

  /** One UI invocation (`forge-sim ui`) against gw's /forge/subscription. */
  ui(gw, opts = {}) {
    return new SimRun(this.argv('ui', gw, opts), { timeout: opts.simTimeout ?? 30000 }).done;
  }

  /** A FIT as `forge-sim fit` prints it (opts: principal, issue, content, context, appId...). */
  async fit(opts = {}) {
    const r = await new SimRun(this.argv('fit', 'http://127.0.0.1:1', opts), { timeout: 30000 }).done;
    if (r.code !== 0) throw new Error(`forge-sim fit failed (${r.code}): ${r.stderr}`);
    return r.stdout.trim();
  }

  startSchedule(gw, opts = {}) {
    return new SimRun(this.argv('schedule', gw, opts), { timeout: opts.simTimeout ?? 60000 });
  }

  schedule(gw, opts = {}) {
    return this.startSchedule(gw, opts).done;
  }

  cleanup() {
    if (this.ownsDir && !process.env.GW_KEEP_TMP) rmSync(this.dir, { recursive: true, force: true });
  }
}
