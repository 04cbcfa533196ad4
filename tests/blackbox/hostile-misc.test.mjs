// hostile-misc.test.mjs - issue 10, the findings that need a running gateway
// (pure logic is unit-tested in tests/unit): each test attacks the real
// binary the way the review did and failed before its fix.
//   - SIGHUP then at once SIGTERM, repeatedly: the reload thread is joined
//     before teardown (it was detached: a heap-use-after-free under ASan, and
//     the process could exit before the reload finished);
//   - log injection: client-chosen values (event type, installation, retry
//     reason, token details) are quoted and every control byte is escaped, so
//     one record stays one line and no terminal escape reaches the log;
//   - numeric claims: a subscription token with exp 1e300 / nbf -1e300 and a
//     FIT with exp 1e300 get a defined answer (clamped; the UBSan build used
//     to abort on the float-to-integer cast);
//   - key files: the option names the key type (subscriber.key: PEM public
//     key; subscriber.hs256_secret: secret); a DER public key given as
//     subscriber.key used to become an HS256 secret that anyone holding the
//     public key could sign with; DER, JWK and OpenSSH files are refused by
//     name; key files open to group/others or owned by another user are
//     refused; the algorithm of every key is logged at start;
//   - the redelivery table: one installation's flood of events no longer
//     makes the gateway forget another installation's accepted events (a
//     retry of those was accepted again: a second notification);
//   - the per-user seq map is bounded in bytes (limits.seq_bytes): many users
//     evict idle ones, and an evicted user's seq still only increases;
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, rmSync, writeFileSync } from 'node:fs';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import path from 'node:path';

import { runCli, startGateway, tempDir } from './lib/gateway.mjs';
import { makeKeys, mintFit, mintSub, INSTALLATION, newInstallation } from './lib/keys.mjs';
import { postEvent, request, adminStatus } from './lib/http.mjs';
import { subscriber } from './lib/ws.mjs';
import { bugEvent, envelope, uniqueUser, ctxOf } from './lib/events.mjs';
import { claimsOf } from './lib/notification.mjs';

let dir;
before(() => {
  dir = tempDir('ngw-hostile-misc-');
});
after(() => {
  if (dir && !process.env.GW_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
});

/** No sanitizer report and no crash in a gateway's stderr. */
function assertClean(gw) {
  assert.doesNotMatch(gw.stderr, /AddressSanitizer|LeakSanitizer|runtime error:|ThreadSanitizer/, gw.diag());
}

/** A rule file of n rules, so that a reload takes a while (it is CPU work on its own thread). */
function bigRules(n) {
  let s = 'rules:\n';
  for (let i = 0; i < n; i++) {
    s += `  - key: r${i}
    events: ["avi:jira:created:issue"]
    filter:
      expression: "event.issue.key == 'K-${i}' && event.issue.fields.summary != 'x${i}'"
    notify:
      to: "event.issue.fields?.assignee?.accountId"
      context: "jira:issue:{{ event.issue.key }}"
      title: "rule ${i} {{ event.issue.key }} {{ event.issue.fields.summary }}"
`;
  }
  return s;
}

describe('SIGHUP immediately followed by SIGTERM', () => {
  test('the reload finishes (and is logged) before the stop tears down; exit 0, no sanitizer report; 6 rounds', async () => {
    const rules = path.join(dir, 'big-rules.yml');
    writeFileSync(rules, bigRules(3000));
    const keys = await makeKeys();
    for (let round = 0; round < 6; round++) {
      const gw = await startGateway({ keys, rules, timeout: 60000 });
      gw.signal('SIGHUP');
      gw.signal('SIGTERM');
      const exit = await gw.waitExit(60000);
      assert.deepEqual(exit, { code: 0, signal: null }, `round ${round}\n${gw.diag()}`);
      assertClean(gw);
      // The reload that started before the stop completed while the rule
      // configuration still existed: its outcome is in the log, before the
      // final "stopped" line.
      const reloaded = gw.stderr.search(/reload: 3000 rules from/);
      const stopped = gw.stderr.search(/ stopped: /);
      assert.ok(reloaded >= 0, `round ${round}: the reload never finished\n${gw.diag()}`);
      assert.ok(stopped > reloaded, `round ${round}: stopped before the reload finished\n${gw.diag()}`);
      await gw.stop();
    }
  });
});

describe('hostile values in logs and claims', () => {
  let gw;
  let keys;
  before(async () => {
    keys = await makeKeys();
    gw = await startGateway({ keys, args: ['--log-level', 'info'] });
  });
  after(async () => {
    if (gw) await gw.stop();
  });

  test('client-chosen values are quoted, control bytes escaped: one record per line, no forged record, no raw ESC', async () => {
    const forged = '2026-01-01T00:00:00.000Z error FORGED';
    const ev = bugEvent({ key: 'LOG-1', assignee: uniqueUser('log') });
    ev.eventType = `avi:jira:created:issue\n${forged}\r\u001b[2J"q\\`;
    ev.retryContext = { retryCount: 1, retryReason: `X\n${forged} retry\u0007` };
    const res = await postEvent(gw.port, await mintFit(keys), envelope(ev));
    assert.equal(res.status, 202, res.text);
    // The 202 is sent before the info line is certain to be written: wait for it.
    const deadline = Date.now() + 10000;
    while (!/event redelivery trace=/.test(gw.stderr) || !/event accepted trace=\S+ type="avi:jira:created:issue\\x0a/.test(gw.stderr)) {
      if (Date.now() > deadline) assert.fail(`no accepted/redelivery lines\n${gw.diag()}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    const lines = gw.stderr.split('\n');
    for (const line of lines) {
      assert.ok(!line.startsWith(forged) && !line.startsWith(' ' + forged), `a forged record: ${JSON.stringify(line)}`);
      assert.doesNotMatch(line, /[\x00-\x08\x0b-\x1f\x7f]/, `a raw control byte: ${JSON.stringify(line)}`);
    }
    const accepted = lines.find((l) => / event accepted trace=/.test(l) && l.includes('LOG') === false && l.includes('FORGED'));
    assert.ok(accepted, gw.diag());
    assert.ok(accepted.includes(`type="avi:jira:created:issue\\x0a${forged}\\x0d\\x1b[2J\\"q\\\\"`), accepted);
    assert.match(accepted, / installation="ari:cloud:ecosystem::installation\/[^"]+"$/, accepted);
    const retry = lines.find((l) => / event redelivery trace=/.test(l));
    assert.ok(retry.includes(`retryReason="X\\x0a${forged} retry\\x07"`), retry);
  });

  test('exp 1e300, nbf -1e300, exp 2^53-1 in a subscription token: connected (clamped), and a FIT with exp 1e300 is accepted', async () => {
    const U = uniqueUser('exp');
    const C = ctxOf('EXP-1');
    for (const claims of [{ exp: 1e300, nbf: -1e300, iat: -1e300 }, { exp: Number.MAX_SAFE_INTEGER, nbf: -Number.MAX_SAFE_INTEGER }]) {
      const tok = await mintSub(keys, { sub: U, ctx: [C], claims });
      const c = await subscriber(gw, tok, [C]);
      c.close();
    }
    const c = await subscriber(gw, await mintSub(keys, { sub: U, ctx: [C], claims: { exp: 1e300 } }), [C]);
    const res = await postEvent(gw.port, await mintFit(keys, { claims: { exp: 1e300, iat: -1e300 } }), envelope(bugEvent({ key: 'EXP-1', assignee: U })));
    assert.equal(res.status, 202, res.text);
    const f = await c.waitFor((x) => x.op === 'notification', { what: 'the notification', timeout: 10000 });
    assert.equal(claimsOf(f).sub, U);
    c.close();
    // exp -1e300: expired, a defined refusal (not a crash).
    const old = await postEvent(gw.port, await mintFit(keys, { claims: { exp: -1e300 } }), envelope(bugEvent({ key: 'EXP-2', assignee: U })));
    assert.equal(old.status, 401, old.text);
    assert.equal(old.json.error, 'token_expired');
    const h = await request(gw.port, { path: '/healthz' });
    assert.equal(h.status, 200);
    assertClean(gw);
  });
});

describe('key files: explicit type, refused formats, ownership and mode', () => {
  test('a DER public key as subscriber.key is refused by name (it used to become an HS256 secret anyone could sign with)', async () => {
    const keys = await makeKeys({ subscriber: 'es256' });
    const d = tempDir('ngw-keyfmt-');
    try {
      const der = createPublicKey(keys.sub.file).export({ type: 'spki', format: 'der' });
      const derPath = path.join(d, 'sub.der');
      writeFileSync(derPath, der, { mode: 0o644 });
      const r = await runCli(['--listen', '127.0.0.1:0', '--state-dir', d, '--subscriber-key', derPath]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /subscriber\.key .*sub\.der: .*DER \(binary ASN\.1\)/, r.stderr);
      // ... and as a "secret" too: a public key is never an HMAC key.
      chmodSync(derPath, 0o600);
      const r2 = await runCli(['--listen', '127.0.0.1:0', '--state-dir', d, '--subscriber-hs256-secret', derPath]);
      assert.equal(r2.code, 2, r2.stdout + r2.stderr);
      assert.match(r2.stderr, /DER \(binary ASN\.1\) file, not an HS256 secret/, r2.stderr);

      const { publicKey } = generateKeyPairSync('ed25519');
      const cases = [
        ['sub.jwk', JSON.stringify(publicKey.export({ format: 'jwk' })), /JWK\/JWKS JSON/],
        ['sub.jwks', JSON.stringify({ keys: [keys.jwks.keys[0]] }), /JWK\/JWKS JSON/],
        ['sub.ssh', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host\n', /OpenSSH public key/],
        ['sub.sshkey', '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ==\n-----END OPENSSH PRIVATE KEY-----\n', /OpenSSH private key/],
      ];
      for (const [name, text, want] of cases) {
        const p = path.join(d, name);
        writeFileSync(p, text, { mode: 0o600 });
        for (const opt of ['--subscriber-key', '--subscriber-hs256-secret']) {
          const rr = await runCli(['--listen', '127.0.0.1:0', '--state-dir', d, opt, p]);
          assert.equal(rr.code, 2, `${name} ${opt}: ${rr.stderr}`);
          assert.match(rr.stderr, want, `${name} ${opt}`);
        }
      }
      // A PEM public key as the secret, and a secret as subscriber.key.
      const pem = path.join(d, 'sub.pem');
      writeFileSync(pem, keys.sub.file, { mode: 0o600 });
      const rp = await runCli(['--listen', '127.0.0.1:0', '--state-dir', d, '--subscriber-hs256-secret', pem]);
      assert.equal(rp.code, 2, rp.stderr);
      assert.match(rp.stderr, /PEM file, not an HS256 secret/);
      const sec = path.join(d, 'secret');
      writeFileSync(sec, 'x'.repeat(48), { mode: 0o600 });
      const rs = await runCli(['--listen', '127.0.0.1:0', '--state-dir', d, '--subscriber-key', sec]);
      assert.equal(rs.code, 2, rs.stderr);
      assert.match(rs.stderr, /not a PEM public key.*subscriber\.hs256_secret/);
      const both = await runCli(['--listen', '127.0.0.1:0', '--state-dir', d, '--subscriber-key', pem, '--subscriber-hs256-secret', sec]);
      assert.equal(both.code, 2, both.stderr);
      assert.match(both.stderr, /both set/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  test('the algorithm of every key is logged at start (ES256 key, HS256 secret, development mode)', async () => {
    const es = await startGateway({ keys: await makeKeys({ subscriber: 'es256' }) });
    const hs = await startGateway({ keys: await makeKeys({ subscriber: 'hs256' }) });
    const dev = await startGateway({ keys: null });
    try {
      assert.match(es.stderr, /notice subscription tokens: ES256, key \S+test-subscriber-key \(subscriber\.key\)/, es.diag());
      assert.match(es.stderr, /notice FITs: RS256, 1 key\(s\) from \S+test-forge-jwks\.json/, es.diag());
      assert.match(es.stderr, /notice notifications: ES256, signing key \S+signing-key\.pem/, es.diag());
      assert.match(hs.stderr, /notice subscription tokens: HS256, key \S+ \(subscriber\.hs256_secret\)/, hs.diag());
      assert.match(dev.stderr, /development mode: subscription tokens are HS256/, dev.diag());
      assert.match(dev.stderr, /notice FITs: RS256, 1 key\(s\) from \S+dev-forge-jwks\.json/, dev.diag());
    } finally {
      await es.stop();
      await hs.stop();
      await dev.stop();
    }
  });

  test('key files readable by others, writable by others, or owned by another user are refused', async () => {
    const keys = await makeKeys({ subscriber: 'hs256' });
    const d = tempDir('ngw-keyperm-');
    try {
      const sec = path.join(d, 'secret');
      writeFileSync(sec, keys.sub.file, { mode: 0o600 });
      chmodSync(sec, 0o644);
      let r = await runCli(['--listen', '127.0.0.1:0', '--state-dir', d, '--subscriber-hs256-secret', sec]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /permissions 0644 are too open .*chmod 600/, r.stderr);
      // A signing key (private) open to the group.
      const sk = path.join(d, 'signing.pem');
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      writeFileSync(sk, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
      chmodSync(sk, 0o640);
      r = await runCli(['--listen', '127.0.0.1:0', '--state-dir', d, '--signing-key', sk]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /signing\.pem: permissions 0640 are too open/, r.stderr);
      // The generated development secret, opened up after the fact.
      chmodSync(sk, 0o600);
      const devDir = path.join(d, 'state');
      const ok = await startGateway({ keys: null, stateDir: devDir });
      await ok.stop();
      chmodSync(path.join(devDir, 'dev-subscriber-secret'), 0o604);
      r = await runCli(['--listen', '127.0.0.1:0', '--state-dir', devDir]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /dev-subscriber-secret: permissions 0604 are too open/, r.stderr);
      // A public key (JWKS) writable by others.
      const jwks = path.join(d, 'jwks.json');
      writeFileSync(jwks, JSON.stringify(keys.jwks), { mode: 0o644 });
      chmodSync(jwks, 0o666);
      r = await runCli(['--listen', '127.0.0.1:0', '--state-dir', d, '--forge-jwks', jwks, '--forge-app-id', keys.appId]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /jwks\.json: permissions 0666 let group or others write/, r.stderr);
      // Owned by another user (only root can arrange that here).
      if (process.getuid() === 0) {
        chmodSync(jwks, 0o644);
        chownSync(jwks, 65534, 65534);
        r = await runCli(['--listen', '127.0.0.1:0', '--state-dir', d, '--forge-jwks', jwks, '--forge-app-id', keys.appId]);
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /owned by uid 65534/, r.stderr);
      }
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('redelivery table: a fair share per installation', () => {
  test('1,200 events of one installation do not evict the keys of another (limits.dedup_entries 1000)', async () => {
    const keys = await makeKeys();
    const gw = await startGateway({ keys, args: ['--limits-dedup-entries', '1000', '--limits-queue', '5000'] });
    try {
      const quiet = newInstallation();
      const noisy = newInstallation();
      const quietEvents = [];
      for (let i = 0; i < 5; i++) {
        const body = envelope(bugEvent({ key: `Q-${i}`, assignee: uniqueUser('q') }));
        quietEvents.push(body);
        const r = await postEvent(gw.port, await mintFit(keys, { installation: quiet }), body);
        assert.equal(r.status, 202, r.text);
        assert.equal(r.json.status, 'accepted');
      }
      const fit = await mintFit(keys, { installation: noisy });
      for (let i = 0; i < 1200; i += 50) {
        const batch = [];
        for (let j = i; j < i + 50; j++) batch.push(postEvent(gw.port, fit, envelope(bugEvent({ key: `N-${j}`, assignee: 'nobody' }))));
        for (const r of await Promise.all(batch)) assert.equal(r.status, 202, r.text);
      }
      // Forge retries the quiet installation's events: each is still known.
      for (const body of quietEvents) {
        const r = await postEvent(gw.port, await mintFit(keys, { installation: quiet }), { payload: { ...body.payload, retryContext: { retryCount: 1, retryReason: 'TIMEOUT_ERROR' } } });
        assert.equal(r.status, 202, r.text);
        assert.equal(r.json.status, 'duplicate', `a quiet installation's key was evicted by another's flood: ${r.text}`);
      }
      const h = await adminStatus(gw);
      assert.equal(h.status, 200, h.text);
      assert.ok(h.json.counters.redelivery_evicted_fair_share >= 200, JSON.stringify(h.json.counters));
    } finally {
      await gw.stop();
    }
  });
});

describe('per-user seq counters bounded in bytes', () => {
  test('limits.seq_bytes 4096: 80 other users evict an idle one; its seq goes on increasing (never back to 1), a busy one stays +1', async () => {
    const keys = await makeKeys();
    const gw = await startGateway({ keys, args: ['--limits-seq-bytes', '4096'] });
    try {
      const idle = uniqueUser('idle');
      const C = ctxOf('SEQ-1');
      const c = await subscriber(gw, await mintSub(keys, { sub: idle, ctx: [C] }), [C]);
      const seqs = [];
      const fit = await mintFit(keys);
      const note = async () => {
        const r = await postEvent(gw.port, fit, envelope(bugEvent({ key: 'SEQ-1', assignee: idle, summary: `n${seqs.length}` })));
        assert.equal(r.status, 202, r.text);
        const f = await c.waitFor((x) => x.op === 'notification' && claimsOf(x).n.description === `n${seqs.length}`, { what: `notification ${seqs.length}`, timeout: 10000 });
        seqs.push(claimsOf(f).seq);
      };
      await note();
      await note();
      assert.deepEqual(seqs, [1, 2]);
      for (let i = 0; i < 80; i++) {
        const r = await postEvent(gw.port, fit, envelope(bugEvent({ key: `SEQ-O${i}`, assignee: uniqueUser(`o${i}`) })));
        assert.equal(r.status, 202, r.text);
      }
      await note();
      await note();
      c.close();
      assert.ok(seqs[2] > seqs[1], `seq went back after eviction: ${seqs}`);
      assert.equal(seqs[3], seqs[2] + 1, `a kept entry goes on by one: ${seqs}`);
      const h = await adminStatus(gw); // the details moved behind admin.token (issue 10 item 6)
      assert.equal(h.status, 200, h.text);
      assert.ok(h.json.counters.seq_entries_evicted > 0, JSON.stringify(h.json.counters));
    } finally {
      await gw.stop();
    }
  });
});
