// forge-app.mjs - examples/forge-app for the browser tests: builds its
// background script with the project's esbuild (the real build.mjs, in a
// temporary copy of the example whose node_modules is tests/browser's),
// once with the real @forge/bridge (for the manifest validation) and once
// with the stand-in bridge (fixtures/forge-bridge-stand-in.js), and serves
// the stand-in build from a second static server on another origin than the
// gateway, with /fit handing out FITs from forge-sim.
import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { BROWSER_DIR, BINARY, SOURCE_DIR, tempDir } from './harness.mjs';

const run = promisify(execFile);
export const EXAMPLE_DIR = path.join(SOURCE_DIR, 'examples/forge-app');
export const FORGE_SIM = process.env.GW_FORGE_SIM ||
  (BINARY.endsWith('/gateway/notify-gateway') ? BINARY.slice(0, -'/gateway/notify-gateway'.length) + '/tools/forge-sim/forge-sim'
    : path.join(SOURCE_DIR, 'build/tools/forge-sim/forge-sim'));
export const APP_ID = 'ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000'; // the example's app.id
export const INSTALLATION = 'ari:cloud:ecosystem::installation/00000000-0000-4000-8000-000000000001';

/** A temporary copy of the example, built (`node build.mjs`): {dir, build, standInBuild}. */
export async function buildExample() {
  const dir = tempDir('ngw-forge-app-');
  cpSync(EXAMPLE_DIR, dir, { recursive: true, filter: (p) => !p.includes('node_modules') && !p.endsWith('/build') });
  const ui = path.join(dir, 'static/notifications');
  symlinkSync(path.join(BROWSER_DIR, 'node_modules'), path.join(ui, 'node_modules'));
  await run(process.execPath, ['build.mjs'], { cwd: ui, timeout: 60000 });
  const standInBuild = path.join(dir, 'stand-in-build');
  await run(process.execPath, ['build.mjs', standInBuild], {
    cwd: ui,
    timeout: 60000,
    env: { ...process.env, FORGE_BRIDGE: path.join(BROWSER_DIR, 'fixtures/forge-bridge-stand-in.js') },
  });
  return { dir, build: path.join(ui, 'build'), standInBuild };
}

/** forge-sim keys in a temp dir: {dir, jwks}. */
export function simKeys() {
  const dir = tempDir('ngw-forge-sim-');
  execFileSync(FORGE_SIM, ['keys', '--dir', dir], { timeout: 30000 });
  return { dir, jwks: path.join(dir, 'jwks.json') };
}

/** A FIT of a UI invocation from forge-sim. */
export async function uiFit(keysDir, { user, issue, content }) {
  const args = ['fit', '--keys', keysDir, '--app-id', APP_ID, '--installation', INSTALLATION];
  if (user) args.push('--principal', user);
  if (issue) args.push('--issue', issue);
  if (content) args.push('--content', content);
  const { stdout } = await run(FORGE_SIM, args, { timeout: 30000 });
  return stdout.trim();
}

/** Sends events through forge-sim (as Forge's triggers would). */
export async function simSend(keysDir, gatewayUrl, events) {
  const files = events.map((e, i) => {
    const f = path.join(keysDir, `event-${process.pid}-${Date.now()}-${i}.json`);
    writeFileSync(f, JSON.stringify(e));
    return f;
  });
  const { stdout } = await run(FORGE_SIM, ['send', '--url', gatewayUrl, '--keys', keysDir, '--app-id', APP_ID,
    '--installation', INSTALLATION, '--retries', '0', ...files], { timeout: 30000 });
  return stdout;
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css' };

/** A static server on 127.0.0.1:0 for dir, plus GET /fit?user=&issue=&content= (forge-sim). Resolves {port, url, close()}. */
export function staticServer(dir, keysDir) {
  const server = http.createServer(async (req, res) => {
    const u = new URL(req.url, 'http://x');
    try {
      if (u.pathname === '/favicon.ico') {
        res.writeHead(204);
        res.end();
        return;
      }
      if (u.pathname === '/fit') {
        const fit = await uiFit(keysDir, { user: u.searchParams.get('user'), issue: u.searchParams.get('issue'), content: u.searchParams.get('content') });
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Cache-Control': 'no-store' });
        res.end(fit);
        return;
      }
      const file = path.join(dir, path.normalize(u.pathname === '/' ? '/index.html' : u.pathname));
      if (!file.startsWith(dir) || !existsSync(file)) {
        res.writeHead(404);
        res.end('not found');
        return;
      }
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream' });
      res.end(readFileSync(file));
    } catch (e) {
      res.writeHead(500);
      res.end(String(e));
    }
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({ port, url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) });
    });
  });
}

/** A Jira "issue created" Bug for assignee (the default rules' bug-created and issue-created). */
export function bugCreated({ assignee, key = 'SP-10', summary = 'A bug' }) {
  return {
    eventType: 'avi:jira:created:issue',
    timestamp: String(Date.now()),
    issue: {
      id: '10073', key,
      fields: { summary, issuetype: { id: '10004', name: 'Bug' }, creator: { accountId: 'someone-else' },
        assignee: { accountId: assignee }, project: { id: '10000', key: key.split('-')[0], name: 'Sample Project' } },
    },
  };
}
