// harness.mjs - the real notify-gateway (development mode: /dev/token, /dev/fit)
// and Debian's chromium driven by playwright-core. Every wait is bounded.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const BROWSER_DIR = path.resolve(here, '..');
export const SOURCE_DIR = process.env.GW_SOURCE_DIR || path.resolve(BROWSER_DIR, '../..');
export const BINARY = process.env.GW_BINARY || path.join(SOURCE_DIR, 'build/gateway/notify-gateway');
export const WEB_ROOT = path.join(SOURCE_DIR, 'web-demo');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const fixture = (name) => path.join(BROWSER_DIR, 'fixtures', name);

const live = new Set();
process.on('exit', () => {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
});

export function tempDir(prefix) {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

const tail = (s, n = 3000) => (s.length > n ? '...' + s.slice(-n) : s);

export class Gateway {
  /** opts: {port = 0, stateDir, rules, args} */
  static async start({ port = 0, stateDir, rules, args = [], timeout = 15000 } = {}) {
    const gw = new Gateway();
    gw.ownsStateDir = !stateDir;
    gw.stateDir = stateDir || tempDir('ngw-browser-');
    gw.argv = ['--listen', `127.0.0.1:${port}`, '--state-dir', gw.stateDir, '--web-root', WEB_ROOT];
    // /admin/status holds the details /healthz no longer publishes (adminStatus below)
    gw.adminToken = randomBytes(24).toString('base64url');
    gw.adminDir = tempDir('ngw-browser-admin-');
    writeFileSync(path.join(gw.adminDir, 'admin-token'), gw.adminToken, { mode: 0o600 });
    gw.argv.push('--admin-token-file', path.join(gw.adminDir, 'admin-token'));
    if (rules) gw.argv.push('--rules', rules);
    gw.argv.push(...args);
    if (!existsSync(BINARY)) throw new Error(`gateway binary not found: ${BINARY} (build it or set GW_BINARY)`);
    await gw._spawn(timeout);
    return gw;
  }

  async _spawn(timeout) {
    this.stdout = '';
    this.stderr = '';
    this.exit = null;
    const child = spawn(BINARY, this.argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    live.add(child);
    this.exited = new Promise((resolve) =>
      child.on('close', (code, signal) => {
        live.delete(child);
        this.exit = { code, signal };
        resolve(this.exit);
      }),
    );
    child.stdout.setEncoding('utf8').on('data', (d) => (this.stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (this.stderr += d));
    const deadline = Date.now() + timeout;
    for (;;) {
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(this.stdout);
      if (m) {
        this.port = Number(m[1]);
        return;
      }
      if (this.exit) throw new Error(`gateway exited before listening\n${this.diag()}`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`gateway printed no "listening on" within ${timeout} ms\n${this.diag()}`);
      }
      await sleep(20);
    }
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  diag() {
    return `gateway ${this.argv.join(' ')} (${this.exit ? `exited ${JSON.stringify(this.exit)}` : 'running'})\nstderr:\n${tail(this.stderr)}`;
  }

  /** SIGKILL (no graceful stop), wait for the exit. */
  async kill() {
    if (!this.exit) this.child.kill('SIGKILL');
    await withTimeout(this.exited, 10000, 'gateway did not die after SIGKILL');
  }

  /** Starts the same binary again with the same state dir, on the same port (retrying while it is in use). */
  async restart({ timeout = 20000 } = {}) {
    const i = this.argv.indexOf('--listen');
    this.argv[i + 1] = `127.0.0.1:${this.port}`;
    const deadline = Date.now() + timeout;
    for (;;) {
      try {
        await this._spawn(Math.max(1000, deadline - Date.now()));
        return;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await sleep(200);
      }
    }
  }

  async stop() {
    if (this.child && !this.exit) {
      this.child.kill('SIGTERM');
      try {
        await withTimeout(this.exited, 15000, 'gateway did not stop');
      } catch {
        this.child.kill('SIGKILL');
        await withTimeout(this.exited, 5000, 'gateway did not die').catch(() => {});
      }
    }
    if (process.env.GW_DUMP_STDERR) process.stderr.write(`--- gateway stderr ---\n${this.stderr}\n`);
    if (this.ownsStateDir && !process.env.GW_KEEP_TMP) rmSync(this.stateDir, { recursive: true, force: true });
    if (this.adminDir) rmSync(this.adminDir, { recursive: true, force: true });
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function withTimeout(promise, ms, what) {
  let timer;
  try {
    return await Promise.race([
      promise,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} (after ${ms} ms)`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A plain HTTP request (no keep-alive), bounded. Resolves {status, json, text, at}. */
export function request(port, { method = 'GET', path: p = '/', headers = {}, body, timeout = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? null : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const h = { ...headers };
    if (payload) h['Content-Length'] = payload.length;
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers: h, agent: false }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('end', () => {
        const at = Date.now();
        const text = Buffer.concat(parts).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json, at });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeout, () => req.destroy(new Error(`${method} ${p}: no answer within ${timeout} ms`)));
    req.on('error', reject);
    req.end(payload ?? undefined);
  });
}

let nonce = 0;
/** POSTs an event through /forge/events with a FIT from /dev/fit. Resolves {status, json, at} (at = Date.now() at the answer). */
export async function fireEvent(port, event) {
  const fit = await request(port, { path: '/dev/fit' });
  if (fit.status !== 200) throw new Error(`/dev/fit answered ${fit.status}: ${fit.text}`);
  // Unique, so the gateway's redelivery guard never takes it for a duplicate.
  const body = { payload: { ...event, timestamp: String(Date.now()), testNonce: `${process.pid}-${++nonce}` } };
  return request(port, {
    method: 'POST',
    path: '/forge/events',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${fit.json.token}` },
    body,
  });
}

/** A Jira "issue created" event for assignee, as the demo panel sends it. */
export function issueCreated({ assignee, key = 'SP-10', summary = 'A descriptive title', type = 'Story', creator = 'demo-reporter' }) {
  return {
    eventType: 'avi:jira:created:issue',
    issue: {
      id: '10073',
      key,
      fields: {
        summary,
        issuetype: { id: '10001', name: type },
        creator: { accountId: creator },
        assignee: { accountId: assignee },
        project: { id: '10000', key: key.split('-')[0], name: 'Sample Project' },
      },
    },
  };
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches chromium with a fresh profile. Returns {context, close()}. */
export async function launchBrowser() {
  const dir = tempDir('ngw-chromium-');
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
    timeout: 30000,
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Opens the demo page for user/issue and waits until its websocket is open
 * and subscribed. Collects console messages and page errors on page.logs.
 */
export async function openDemo(context, baseUrl, { user = 'alice', issue = 'SP-10', extra = '' } = {}) {
  const page = await context.newPage();
  page.logs = [];
  page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => page.logs.push(`pageerror: ${e.message}`));
  await page.goto(`${baseUrl}/?user=${encodeURIComponent(user)}&issue=${encodeURIComponent(issue)}${extra}`, {
    waitUntil: 'load',
    timeout: 15000,
  });
  await waitOpen(page);
  return page;
}

export async function waitOpen(page, timeout = 10000) {
  await page.waitForFunction(() => document.body.dataset.notifyState === 'open', null, { timeout });
}

export const stats = (page) => page.evaluate(() => window.notifyDemo.stats());
export const shown = (page) => page.evaluate(() => window.notifyDemo.shown.map((s) => ({ ...s })));

/** GET /admin/status (health details) with the gateway's admin token. */
export function adminStatus(gw, opts = {}) {
  return request(gw.port, { path: '/admin/status', headers: { Authorization: `Bearer ${gw.adminToken}` }, ...opts });
}
