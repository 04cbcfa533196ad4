// cluster-start.test.mjs - cluster mode's bad input at start (issue 13): an
// unparsable URL, rediss:// (no TLS in Debian's hiredis), a wrong password, a
// server that is not Redis (an HTTP server on the port), each also as the
// second of two shards: a clear message and exit code 2; an unreachable or
// silent Redis: the store's exit code 3; the right password: the gateway
// starts. A real redis-server on a free port.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { rmSync } from 'node:fs';

import { runCli, startGateway, tempDir, writeTemp } from './lib/gateway.mjs';
import { startRedis, freePort } from './lib/redis.mjs';

let redis;
const dirs = [];
before(async () => { redis = await startRedis({ password: 'bb-secret' }); });
after(async () => {
  await redis?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function run(args) {
  const dir = tempDir('ngw-cluster-');
  dirs.push(dir);
  return runCli(['--listen', '127.0.0.1:0', '--state-dir', dir, ...args]);
}

describe('cluster mode at start', () => {
  test('an unparsable URL exits 2 naming the problem', async () => {
    for (const url of ['redis//127.0.0.1:6379', 'redis://127.0.0.1:notaport', 'http://127.0.0.1:1']) {
      const r = await run(['--redis', url]);
      assert.equal(r.code, 2, url + ': ' + r.stderr);
      assert.match(r.stderr, /cluster\.redis/);
    }
  });

  test('rediss:// is refused: this hiredis has no TLS', async () => {
    const r = await run(['--redis', `rediss://127.0.0.1:${redis.port}`]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /TLS/);
  });

  test('a wrong password exits 2 and the message does not contain it', async () => {
    const r = await run(['--redis', `redis://:not-the-secret@127.0.0.1:${redis.port}/0`]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /authentication refused/);
    assert.doesNotMatch(r.stderr, /not-the-secret/);
    const none = await run(['--redis', `redis://127.0.0.1:${redis.port}/0`]);
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /authentication required/);
  });

  test('an HTTP server on the port is not Redis: exit 2', async () => {
    const srv = http.createServer((req, res) => res.end('hello'));
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const r = await run(['--redis', `redis://127.0.0.1:${srv.address().port}`]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /does not speak the Redis protocol/);
    } finally {
      srv.close();
    }
  });

  test('two URLs (two shards): a bad second one exits 2 naming that URL, never its password; a bad entry in the YAML list too; at most 8', async () => {
    // a wrong password on the second shard only
    const r = await run(['--redis', redis.url, '--redis', `redis://:not-the-secret@127.0.0.1:${redis.port}/1`]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`cluster\\.redis: redis://127\\.0\\.0\\.1:${redis.port}/1: authentication refused`));
    assert.doesNotMatch(r.stderr, /not-the-secret|bb-secret/);
    // an HTTP server as the second shard
    const srv = http.createServer((req, res) => res.end('hello'));
    await new Promise((res) => srv.listen(0, '127.0.0.1', res));
    try {
      const h = await run(['--redis', redis.url, '--redis', `redis://127.0.0.1:${srv.address().port}/0`]);
      assert.equal(h.code, 2, h.stderr);
      assert.match(h.stderr, new RegExp(`127\\.0\\.0\\.1:${srv.address().port}/0: .*does not speak the Redis protocol`));
    } finally {
      srv.close();
    }
    // an unparsable second entry in the YAML list
    const dir = tempDir('ngw-cluster-');
    dirs.push(dir);
    const cfg = writeTemp(dir, 'gw.yml', `cluster:\n  redis:\n    - ${redis.url}\n    - redis//127.0.0.1:6379\n`);
    const y = await run(['--config', cfg]);
    assert.equal(y.code, 2, y.stderr);
    assert.match(y.stderr, /cluster\.redis/);
    // nine shards: more than the list holds
    const nine = await run(Array.from({ length: 9 }, (_, i) => ['--redis', `redis://127.0.0.1:${redis.port}/${i}`]).flat());
    assert.equal(nine.code, 2, nine.stderr);
    assert.match(nine.stderr, /at most 8/);
  });

  test('a server that accepts and never answers (a frozen Redis): exit 3 naming the wait', async () => {
    const silent = net.createServer(() => { /* accepts, never answers */ });
    await new Promise((res) => silent.listen(0, '127.0.0.1', res));
    try {
      const r = await run(['--redis', `redis://127.0.0.1:${silent.address().port}/0`, '--cluster-timeout', '300']);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /no answer within 300 ms/);
    } finally {
      silent.closeAllConnections?.();
      silent.close();
    }
  });

  test('nothing listening: the store exit code 3', async () => {
    const r = await run(['--redis', `redis://127.0.0.1:${await freePort()}`]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /unreachable/);
  });

  test('the right password starts, from the flag or a YAML list', async () => {
    const gw = await startGateway({ args: ['--redis', redis.url, '--node-id', 'bb-1'] });
    await gw.stop();
    // this Redis runs without AOF: the operator is told what that loses
    assert.match(gw.stderr, /appendonly no: events answered 202 since its last snapshot are lost/);
    const aof = await startRedis({ aof: true });
    try {
      const gw3 = await startGateway({ args: ['--redis', aof.url] });
      await gw3.stop();
      assert.doesNotMatch(gw3.stderr, /appendonly/);
    } finally {
      await aof.stop();
    }
    const dir = tempDir('ngw-cluster-');
    dirs.push(dir);
    const cfg = writeTemp(dir, 'gw.yml', `cluster:\n  redis:\n    - ${redis.url}\n  timeout: 1000\n`);
    const gw2 = await startGateway({ args: ['--config', cfg] });
    await gw2.stop();
  });
});
