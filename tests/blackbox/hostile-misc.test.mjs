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
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { startGateway, tempDir } from './lib/gateway.mjs';
import { makeKeys, mintFit, mintSub, INSTALLATION } from './lib/keys.mjs';
import { postEvent, request } from './lib/http.mjs';
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
