// redis.mjs - a real redis-server for a test: a free port, a temporary
// directory, AOF as asked; stopped when the test process exits.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const live = new Set();
process.on('exit', () => {
  for (const c of live) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
});

export function redisServerPath() {
  for (const p of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) {
    try { execFileSync(p, ['--version']); return p; } catch { /* next */ }
  }
  return null;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function ping(port, password) {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    let buf = '';
    c.on('connect', () => c.write((password ? `AUTH ${password}\r\n` : '') + 'PING\r\n'));
    c.on('data', (d) => {
      buf += d;
      if (buf.includes('PONG')) { c.destroy(); resolve(true); }
    });
    c.on('error', () => resolve(false));
    setTimeout(() => { c.destroy(); resolve(false); }, 500);
  });
}

/**
 * Starts redis-server; resolves {port, url, dir, child, stop(), kill(),
 * restart()}. appendfsync: always | everysec | no (with aof). kill() is a
 * SIGKILL that keeps the directory; restart() starts it again on the same
 * port and directory (the AOF is read back) and resolves once it answers.
 */
export async function startRedis({ password, aof = false, appendfsync } = {}) {
  const bin = redisServerPath();
  if (!bin) throw new Error('redis-server not installed (scripts/setup.sh installs it)');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ngw-redis-'));
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
    '--appendonly', aof ? 'yes' : 'no', '--daemonize', 'no'];
  if (appendfsync) args.push('--appendfsync', appendfsync);
  if (password) args.push('--requirepass', password);
  const spawnServer = async () => {
    const child = spawn(bin, args, { stdio: 'ignore' });
    live.add(child);
    let up = false;
    for (let i = 0; i < 100 && !(up = await ping(port, password)); i++) await new Promise((r) => setTimeout(r, 50));
    if (!up) throw new Error(`redis-server on port ${port} (dir ${dir}) not answering PING`);
    return child;
  };
  const url = password ? `redis://:${encodeURIComponent(password)}@127.0.0.1:${port}/0` : `redis://127.0.0.1:${port}/0`;
  const r = {
    port, url, dir, child: await spawnServer(),
    /** SIGKILL, keeping the directory; resolves once the process is gone. */
    async kill() {
      const c = r.child;
      live.delete(c);
      if (c.exitCode === null && c.signalCode === null) {
        const gone = new Promise((res) => c.once('exit', res));
        c.kill('SIGKILL');
        await gone;
      }
    },
    async restart() {
      r.child = await spawnServer();
    },
    async stop() {
      live.delete(r.child);
      r.child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return r;
}

/**
 * A TCP proxy in front of a Redis that can hold back what a gateway's pub/sub
 * subscriber sends (its connection is the one whose commands include
 * SUBSCRIBE): hold() keeps that connection's client-to-server bytes (a node's
 * SUBSCRIBE of a user's channel then does not reach Redis), release() sends
 * them on in order. Every other connection, and every reply, flows freely.
 * target(port) sends new connections to another server and cuts the open ones.
 * Resolves {port, url, hold(), release(), target(), stop()}.
 */
export async function startGateProxy(redisPort) {
  const conns = new Set();
  let holding = false;
  const server = net.createServer((client) => {
    const up = net.connect(redisPort, '127.0.0.1');
    const c = { client, up, sub: false, held: [] };
    conns.add(c);
    client.on('data', (d) => {
      if (!c.sub && d.includes('\r\nSUBSCRIBE\r\n')) c.sub = true;
      if (c.sub && (holding || c.held.length)) c.held.push(d);
      else up.write(d);
    });
    up.on('data', (d) => client.write(d));
    const end = () => { conns.delete(c); client.destroy(); up.destroy(); };
    client.on('error', end); up.on('error', end);
    client.on('close', end); up.on('close', end);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    /** How many subscriber connections hold bytes back now. */
    holding: () => [...conns].filter((c) => c.held.length).length,
    hold() { holding = true; },
    /** A failover as a load balancer or a moved address does it: new
     * connections go to `port`, the open ones are cut. */
    target(port) {
      redisPort = port;
      for (const c of conns) { c.client.destroy(); c.up.destroy(); }
      conns.clear();
    },
    release() {
      holding = false;
      for (const c of conns) {
        for (const d of c.held) c.up.write(d);
        c.held = [];
      }
    },
    async stop() {
      for (const c of conns) { c.client.destroy(); c.up.destroy(); }
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
