// gateway.mjs - start and stop the real notify-gateway binary for a test.
//
// Every gateway gets a fresh temporary state dir, listens on 127.0.0.1:0 (the
// port is read from the "listening on http://127.0.0.1:PORT" line on stdout,
// with a timeout) and keeps its stderr so a failing test can show it.
// Gateways still running when the node process exits are SIGKILLed.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { makeKeys } from './keys.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BLACKBOX_DIR = path.resolve(here, '..');
export const FIXTURES = path.join(BLACKBOX_DIR, 'fixtures');
export const SOURCE_DIR = process.env.GW_SOURCE_DIR || path.resolve(BLACKBOX_DIR, '../..');
export const BINARY = process.env.GW_BINARY || path.join(SOURCE_DIR, 'build/gateway/notify-gateway');
export const DEFAULT_RULES = path.join(FIXTURES, 'rules.yml');

const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

export function fixture(name) {
  return path.join(FIXTURES, name);
}

export function tempDir(prefix = 'ngw-') {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

function tail(text, n = 4000) {
  return text.length > n ? '...' + text.slice(-n) : text;
}

/** Runs the binary to completion (for CLI tests). Resolves {code, signal, stdout, stderr}. */
export function runCli(args, { timeout = 15000, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${BINARY} ${args.join(' ')} did not exit within ${timeout} ms\nstdout: ${tail(stdout)}\nstderr: ${tail(stderr)}`));
    }, timeout);
    child.on('error', (e) => {
      clearTimeout(timer);
      live.delete(child);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export class Gateway {
  constructor(child, { stateDir, keys, args, ownsStateDir }) {
    this.child = child;
    this.pid = child.pid;
    this.stateDir = stateDir;
    this.keys = keys;
    this.args = args;
    this.ownsStateDir = ownsStateDir;
    this.stdout = '';
    this.stderr = '';
    this.port = 0;
    this.exit = null;
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        live.delete(child);
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
    child.stdout.setEncoding('utf8').on('data', (d) => (this.stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (this.stderr += d));
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/realtime`;
  }

  /** Diagnostics: command line, exit status and the tail of stderr. */
  diag() {
    return `gateway pid ${this.pid} (${this.exit ? `exited ${JSON.stringify(this.exit)}` : 'running'})\n` +
      `args: ${this.args.join(' ')}\nstderr (tail):\n${tail(this.stderr)}`;
  }

  async waitListening(timeout = 15000) {
    const re = /^listening on https?:\/\/(?:\[[^\]]*\]|[^\s:/]+):(\d+)/m;
    const deadline = Date.now() + timeout;
    await new Promise((resolve, reject) => {
      const check = () => {
        const m = re.exec(this.stdout);
        if (m) {
          this.port = Number(m[1]);
          cleanup();
          resolve();
        } else if (this.exit) {
          cleanup();
          reject(new Error(`gateway exited before listening\n${this.diag()}`));
        } else if (Date.now() > deadline) {
          cleanup();
          reject(new Error(`no "listening on" line within ${timeout} ms\n${this.diag()}`));
        }
      };
      const timer = setInterval(check, 20);
      const onData = () => check();
      this.child.stdout.on('data', onData);
      this.exited.then(check);
      const cleanup = () => {
        clearInterval(timer);
        this.child.stdout.off('data', onData);
      };
      check();
    });
  }

  signal(sig) {
    if (!this.exit) this.child.kill(sig);
  }

  /** Waits for the exit, bounded. Resolves {code, signal}. */
  async waitExit(timeout = 20000) {
    let timer;
    const t = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`gateway did not exit within ${timeout} ms\n${this.diag()}`)), timeout);
    });
    try {
      return await Promise.race([this.exited, t]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGTERM, wait (bounded), SIGKILL as a last resort; removes the state dir. */
  async stop({ timeout = 15000 } = {}) {
    if (!this.exit) {
      this.child.kill('SIGTERM');
      try {
        await this.waitExit(timeout);
      } catch (e) {
        this.child.kill('SIGKILL');
        await this.waitExit(5000).catch(() => {});
      }
    }
    if (process.env.GW_DUMP_STDERR) process.stderr.write(`--- gateway ${this.pid} stderr ---\n${this.stderr}\n`);
    if (this.ownsStateDir && !process.env.GW_KEEP_TMP) rmSync(this.stateDir, { recursive: true, force: true });
    if (this.adminDir) rmSync(this.adminDir, { recursive: true, force: true });
    return this.exit;
  }
}

/**
 * Starts a gateway.
 *  keys:   from makeKeys() (default: a new set with an ES256 subscriber key);
 *          null = development mode (no --forge-jwks / --subscriber-key)
 *  rules:  rule file (default fixtures/rules.yml); null = no --rules
 *  args:   extra command-line arguments
 */
export async function startGateway({ keys, rules = DEFAULT_RULES, args = [], stateDir, timeout = 15000, cwd, admin = true } = {}) {
  const ownsStateDir = !stateDir;
  stateDir = stateDir || tempDir();
  if (keys === undefined) keys = await makeKeys();
  const argv = ['--listen', '127.0.0.1:0', '--state-dir', stateDir];
  if (rules) argv.push('--rules', rules);
  if (keys) {
    const jwksPath = path.join(stateDir, 'test-forge-jwks.json');
    writeFileSync(jwksPath, JSON.stringify(keys.jwks), { mode: 0o644 });
    const subPath = path.join(stateDir, 'test-subscriber-key');
    // A secret must not be readable by others (the gateway refuses it otherwise).
    writeFileSync(subPath, keys.sub.file, { mode: 0o600 });
    const subOption = keys.sub.kind === 'hs256' ? '--subscriber-hs256-secret' : '--subscriber-key';
    argv.push('--forge-jwks', jwksPath, '--forge-app-id', keys.appId, subOption, subPath);
  }
  // Every test gateway has an admin token: /admin/status carries the details
  // /healthz no longer publishes (gw.adminToken; lib/http.mjs adminStatus).
  const adminToken = admin ? randomBytes(24).toString('base64url') : null;
  // (in a directory of its own: a test may hand over a state dir the gateway has to create)
  const adminDir = admin ? tempDir('ngw-admin-') : null;
  if (admin) {
    const adminPath = path.join(adminDir, 'test-admin-token');
    writeFileSync(adminPath, adminToken + '\n', { mode: 0o600 });
    argv.push('--admin-token-file', adminPath);
  }
  if (process.env.GW_LOG_LEVEL) argv.push('--log-level', process.env.GW_LOG_LEVEL);
  argv.push(...args);
  if (!existsSync(BINARY)) throw new Error(`gateway binary not found: ${BINARY} (build it, or set GW_BINARY)`);
  const child = spawn(BINARY, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd });
  live.add(child);
  const gw = new Gateway(child, { stateDir, keys, args: argv, ownsStateDir });
  gw.adminToken = adminToken;
  gw.adminDir = adminDir;
  try {
    await gw.waitListening(timeout);
  } catch (e) {
    await gw.stop();
    throw e;
  }
  return gw;
}

/** Writes text to a file in dir (mode 0600: it may be a key) and returns its path. */
export function writeTemp(dir, name, text) {
  const p = path.join(dir, name);
  writeFileSync(p, text, { mode: 0o600 });
  return p;
}

/** Polls pred every 25 ms until it returns something truthy (returned), or
 * throws `timed out waiting for <what>` after timeout ms. */
export async function waitFor(pred, what, timeout = 10000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
