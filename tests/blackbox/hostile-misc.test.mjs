// hostile-misc.test.mjs - issue 10, the findings that need a running gateway
// (pure logic is unit-tested in tests/unit): each test attacks the real
// binary the way the review did and failed before its fix.
//   - SIGHUP then at once SIGTERM, repeatedly: the reload thread is joined
//     before teardown (it was detached: a heap-use-after-free under ASan, and
//     the process could exit before the reload finished);
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { startGateway, tempDir } from './lib/gateway.mjs';
import { makeKeys } from './lib/keys.mjs';

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
