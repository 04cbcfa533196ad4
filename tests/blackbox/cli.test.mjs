// cli.test.mjs - the command line: --version, --help, refused flags and
// values (exit 2), rule-file diagnostics, key files, signals.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync, rmSync } from 'node:fs';
import path from 'node:path';

import { runCli, startGateway, fixture, tempDir, writeTemp } from './lib/gateway.mjs';
import { makeKeys } from './lib/keys.mjs';

const dirs = [];
const scratch = () => {
  const d = tempDir('ngw-cli-');
  dirs.push(d);
  return d;
};
const gateways = [];
after(async () => {
  for (const gw of gateways) await gw.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('notify-gateway command line', () => {
  test('--version prints "notify-gateway 0.1.0" and exits 0', async () => {
    const r = await runCli(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'notify-gateway 0.1.0');
  });

  test('--help lists every option and exits 0', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const flag of ['--config', '--listen', '--rules', '--forge-app-id', '--forge-jwks', '--subscriber-key',
      '--subscriber-audience', '--signing-key', '--state-dir', '--workers', '--limits-queue', '--limits-max-body',
      '--log-level']) {
      assert.match(r.stdout, new RegExp(`${flag}\\b`), `--help does not mention ${flag}`);
    }
  });

  test('an unknown flag exits 2 with a message naming it', async () => {
    const r = await runCli(['--frobnicate', 'yes']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--frobnicate/);
    assert.equal(r.stdout.includes('listening'), false);
  });

  for (const [args, why] of [
    [['--listen', 'nope'], /nope/],
    [['--listen', '127.0.0.1:99999'], /99999/],
    [['--workers', 'abc'], /abc/],
    [['--workers', '-3'], /workers/],
    [['--limits-queue', '0'], /queue/],
    [['--limits-max-body', 'lots'], /lots/],
    [['--log-level', 'loud'], /loud/],
    [['--listen'], /listen/],
  ]) {
    test(`bad value ${args.join(' ')} exits 2 with a message`, async () => {
      const state = scratch();
      const r = await runCli(['--state-dir', state, ...args]);
      assert.equal(r.code, 2, `exit ${r.code}; stderr: ${r.stderr}`);
      assert.match(r.stderr, why);
      assert.equal(r.stdout.includes('listening'), false);
    });
  }

  test('a rule file with errors exits 2 with file:line:col: error', async () => {
    const state = scratch();
    const bad = fixture('bad-rules.yml');
    const r = await runCli(['--rules', bad, '--listen', '127.0.0.1:0', '--state-dir', state]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /bad-rules\.yml:6:\d+: error: /);
    assert.equal(r.stdout.includes('listening'), false);
  });

  test('a rule file that does not exist exits 2', async () => {
    const state = scratch();
    const r = await runCli(['--rules', path.join(state, 'missing.yml'), '--listen', '127.0.0.1:0', '--state-dir', state]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /missing\.yml/);
  });

  test('a missing --forge-jwks file exits 2', async () => {
    const state = scratch();
    const keys = await makeKeys();
    const sub = writeTemp(state, 'sub.pem', keys.sub.file);
    const r = await runCli(['--listen', '127.0.0.1:0', '--state-dir', state, '--rules', fixture('rules.yml'),
      '--forge-jwks', path.join(state, 'no-such-jwks.json'), '--forge-app-id', keys.appId, '--subscriber-key', sub]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /no-such-jwks\.json/);
    assert.equal(r.stdout.includes('listening'), false);
  });

  test('--forge-jwks without --forge-app-id exits 2', async () => {
    const state = scratch();
    const keys = await makeKeys();
    const jwks = writeTemp(state, 'jwks.json', JSON.stringify(keys.jwks));
    const r = await runCli(['--listen', '127.0.0.1:0', '--state-dir', state, '--forge-jwks', jwks]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /app.id|app-id/);
  });

  test('a --forge-app-id that is not an app ARI exits 2', async () => {
    const state = scratch();
    const keys = await makeKeys();
    const jwks = writeTemp(state, 'jwks.json', JSON.stringify(keys.jwks));
    const r = await runCli(['--listen', '127.0.0.1:0', '--state-dir', state, '--forge-jwks', jwks, '--forge-app-id', 'my-app']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /my-app/);
  });

  test('a JWKS file without RSA keys exits 2', async () => {
    const state = scratch();
    const keys = await makeKeys();
    const jwks = writeTemp(state, 'jwks.json', JSON.stringify({ keys: [] }));
    const r = await runCli(['--listen', '127.0.0.1:0', '--state-dir', state, '--forge-jwks', jwks, '--forge-app-id', keys.appId]);
    assert.equal(r.code, 2, r.stderr);
  });

  test('an HS256 subscriber secret shorter than 32 bytes exits 2', async () => {
    const state = scratch();
    const short = writeTemp(state, 'short-secret', 'too-short-secret\n');
    const r = await runCli(['--listen', '127.0.0.1:0', '--state-dir', state, '--subscriber-hs256-secret', short]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /short-secret/);
  });

  test('a config file option that does not exist exits 2 with file:line:col', async () => {
    const state = scratch();
    const cfg = writeTemp(state, 'gw.yml', `listen: 127.0.0.1:0\nlimits:\n  queue: 5\n  quue_size: 7\n`);
    const r = await runCli(['--config', cfg, '--state-dir', state]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /gw\.yml:4:\d+: error: .*quue_size/);
  });

  test('SIGTERM stops a running gateway with exit 0', async () => {
    const gw = await startGateway();
    gateways.push(gw);
    gw.signal('SIGTERM');
    const exit = await gw.waitExit();
    assert.deepEqual(exit, { code: 0, signal: null }, gw.diag());
  });

  test('SIGINT stops a running gateway with exit 0', async () => {
    const gw = await startGateway();
    gateways.push(gw);
    gw.signal('SIGINT');
    const exit = await gw.waitExit();
    assert.deepEqual(exit, { code: 0, signal: null }, gw.diag());
  });

  test('development mode generates its keys in the state dir', async () => {
    const gw = await startGateway({ keys: null });
    gateways.push(gw);
    const d = gw.stateDir;
    for (const f of ['dev-forge-key.pem', 'dev-forge-jwks.json', 'dev-subscriber-secret', 'signing-key.pem']) {
      assert.ok(existsSync(path.join(d, f)), `${f} missing in ${d}`);
    }
    const jwks = JSON.parse(readFileSync(path.join(d, 'dev-forge-jwks.json'), 'utf8'));
    assert.ok(jwks.keys.some((k) => k.kid === 'notify-gateway-dev-forge' && k.kty === 'RSA'), JSON.stringify(jwks));
    assert.ok(readFileSync(path.join(d, 'dev-subscriber-secret')).toString().trim().length >= 32);
    gw.signal('SIGTERM');
    assert.deepEqual(await gw.waitExit(), { code: 0, signal: null }, gw.diag());
  });
});
