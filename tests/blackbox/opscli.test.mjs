// opscli.test.mjs - what an admin runs and reads (issue 14, "Logs"):
//   - `--check-config` on a good setup exits 0 and writes nothing (no state
//     dir, no generated key, no listener); on broken files it names every
//     problem with FILE:LINE:COL (config and rules) or FILE (keys) and exits 1;
//   - `log.format: json`: every stderr line parses as JSON with ts, level and
//     msg; an event's lines carry its trace id and fields (type,
//     installation, status, reason); no token ever appears.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { fixture, runCli, startGateway, tempDir } from './lib/gateway.mjs';
import { INSTALLATION, makeKeys, mintFit, mintSub } from './lib/keys.mjs';
import { postEvent } from './lib/http.mjs';
import { subscriber } from './lib/ws.mjs';
import { bugEvent, ctxOf, envelope, uniqueUser } from './lib/events.mjs';

let keys;
let dir;

before(async () => {
  keys = await makeKeys();
  dir = tempDir('ngw-opscli-');
});

after(() => {
  if (dir && !process.env.GW_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
});

describe('--check-config', () => {
  test('a good configuration: exit 0, nothing written, nothing listening', async () => {
    const state = path.join(dir, 'good-state');
    // a port that is certainly ours and free: bind it and close it again
    const srv = net.createServer();
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    const port = srv.address().port;
    srv.close();
    const cfg = path.join(dir, 'good.yml');
    writeFileSync(cfg, `listen: 127.0.0.1:${port}\nstate_dir: ${state}\nrules: ${fixture('rules.yml')}\nlog:\n  format: json\n`);
    const r = await runCli(['--check-config', '--config', cfg]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /rules: 2 from .*rules\.yml/);
    assert.match(r.stdout, /the configuration is ok/);
    assert.equal(r.stderr, '');
    assert.equal(existsSync(state), false, 'the check created the state dir');
  });

  test('broken files: every problem with its file and line, exit 1', async () => {
    const cfg = path.join(dir, 'broken.yml');
    writeFileSync(cfg, [
      'listen: 127.0.0.1:99999', //                       line 1: bad port
      'limitz:', //                                        line 2: unknown section
      '  queue: 3',
      `rules: ${fixture('bad-rules.yml')}`, //             the rule error: bad-rules.yml:6:39
      'signing:',
      '  key: no-such-key.pem', //                         a key that is not there
      'log:',
      '  format: yaml', //                                 line 8: not text|json
      `state_dir: ${path.join(dir, 'broken-state')}`,
      '',
    ].join('\n'));
    const r = await runCli(['--check-config', '--config', cfg]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /broken\.yml:1:9: error: invalid port/);
    assert.match(r.stderr, /broken\.yml:2:1: error: unknown option 'limitz'; did you mean 'limits'\?/);
    assert.match(r.stderr, /broken\.yml:8:11: error: 'log\.format' must be text or json, got 'yaml'/);
    assert.match(r.stderr, /bad-rules\.yml:6:39: error: unexpected end of expression/);
    assert.match(r.stderr, /no-such-key\.pem: error: signing\.key: /);
    assert.equal(existsSync(path.join(dir, 'broken-state')), false);
  });

  test('a bad key file configured by flag is named; exit 1', async () => {
    const jwks = path.join(dir, 'empty-jwks.json');
    writeFileSync(jwks, '{"keys": []}');
    const r = await runCli(['--check-config', '--state-dir', path.join(dir, 's3'), '--forge-jwks', jwks,
      '--forge-app-id', keys.appId]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /empty-jwks\.json: error: forge\.jwks: .*no usable RSA signing key/);
  });
});

describe('log.format: json', () => {
  test('every line is JSON; event lines carry trace and fields; no token', async () => {
    const gw = await startGateway({ keys, args: ['--log-format', 'json', '--log-level', 'info'] });
    let stopped = false;
    try {
      const user = uniqueUser('lj');
      const subToken = await mintSub(keys, { sub: user, ctx: [ctxOf('LJ-1')] });
      const c = await subscriber(gw, subToken, [ctxOf('LJ-1')], { name: 'lj' });
      const fit = await mintFit(keys);
      const trace = 'abcdef0123456789abcdef0123456789';
      const ok = await postEvent(gw.port, fit, envelope(bugEvent({ key: 'LJ-1', assignee: user })), { headers: { 'x-b3-traceid': trace } });
      assert.equal(ok.status, 202, ok.text);
      await c.waitNotifications(1);
      const badTrace = '0123456789abcdef';
      const bad = await postEvent(gw.port, fit.slice(0, -4) + 'AAAA', envelope(bugEvent({ key: 'LJ-1', assignee: user })),
        { headers: { 'x-b3-traceid': badTrace } });
      assert.equal(bad.status, 401);
      c.close();
      await gw.stop();
      stopped = true;

      const lines = gw.stderr.split('\n').filter((l) => l);
      assert.ok(lines.length > 5);
      const recs = lines.map((l, i) => {
        try {
          return JSON.parse(l);
        } catch (e) {
          throw new Error(`stderr line ${i + 1} is not JSON: ${l}`);
        }
      });
      for (const r of recs) {
        assert.match(r.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        assert.ok(['error', 'warn', 'notice', 'info', 'debug'].includes(r.level), r.level);
        assert.equal(typeof r.msg, 'string');
      }
      const accepted = recs.find((r) => r.trace === trace && r.msg.startsWith('event accepted'));
      assert.ok(accepted, `no "event accepted" record for ${trace}:\n${lines.join('\n')}`);
      assert.equal(accepted.type, 'avi:jira:created:issue');
      assert.equal(accepted.installation, INSTALLATION);
      const refused = recs.find((r) => r.trace === badTrace && r.msg.startsWith('event refused'));
      assert.ok(refused, `no "event refused" record for ${badTrace}`);
      assert.equal(refused.status, '401');
      assert.equal(refused.reason, 'token_bad_signature');
      for (const secret of [fit, subToken, fit.split('.')[2], subToken.split('.')[2]])
        assert.ok(!gw.stderr.includes(secret), 'a token reached the log');
    } finally {
      if (!stopped) await gw.stop();
    }
  });
});
