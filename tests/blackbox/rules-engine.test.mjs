// rules-engine.test.mjs - what the gateway passes to the rule engine, seen
// from outside: the scratch byte limit (limits.rule_scratch_bytes, counted
// in rules_scratch_limit) stops a rule whose filter would build far more
// than the event holds, the gateway keeps serving, and the limit is
// configurable; the verified FIT decides filter.appIsLicensed (issue 17);
// `rules check --forge` flags what Forge would refuse.
//
// "Not delivered" is checked without sleeping: after the stopped event a
// sentinel event to the same user and context is posted; batches leave in
// acceptance order, so the first notification the user receives must be the
// sentinel's.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startGateway, tempDir, writeTemp, runCli } from './lib/gateway.mjs';
import { makeKeys, mintFit, mintSub, fitClaims } from './lib/keys.mjs';
import { postEvent, request, adminStatus } from './lib/http.mjs';
import { subscriber } from './lib/ws.mjs';
import { claimsOf } from './lib/notification.mjs';
import { bugEvent, envelope, uniqueUser, ctxOf } from './lib/events.mjs';

// Doubling the 100 kB summary three times builds 1.4 MB: over the default
// 1 MiB, within 4 MiB. The sentinel has a short summary and passes.
const RULES = `rules:
  - key: doubling
    events: [avi:jira:created:issue]
    filter:
      expression: "let a = event.issue.fields.summary + event.issue.fields.summary; let b = a + a; let c = b + b; c.length > 0"
      onError: IGNORE_AND_LOG
    notify:
      to: "event.issue.fields.assignee?.accountId"
      context: "jira:issue:{{ event.issue.key }}"
      title: "{{ event.issue.fields.summary.length }}"
`;

const cleanups = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

async function gatewayWith(args, text = RULES) {
  const keys = await makeKeys();
  const rules = writeTemp(tempDir(), 'limits.yml', text);
  const gw = await startGateway({ keys, rules, args });
  cleanups.push(() => gw.stop());
  return { gw, keys };
}

async function counters(gw) {
  const res = await adminStatus(gw);
  assert.equal(res.status, 200, res.text);
  return res.json.counters;
}

async function userOf(gw, keys, key) {
  const user = uniqueUser('lim');
  const ctx = ctxOf(key);
  const client = await subscriber(gw, await mintSub(keys, { sub: user, ctx: [ctx] }), [ctx], { name: key });
  cleanups.push(() => client.close());
  return { user, client };
}

describe('rule scratch byte limit', () => {
  test('a filter over the default limit is stopped, counted, and the gateway goes on', async () => {
    const { gw, keys } = await gatewayWith([]);
    const { user, client } = await userOf(gw, keys, 'LIM-1');
    const before = await counters(gw);
    const big = 'x'.repeat(100000);
    let res = await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key: 'LIM-1', assignee: user, summary: big })));
    assert.equal(res.status, 202, res.text);
    res = await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key: 'LIM-1', assignee: user, summary: 'short' })));
    assert.equal(res.status, 202, res.text);
    const [first] = await client.waitNotifications(1);
    assert.equal(claimsOf(first).n.title, '5', `the stopped event was delivered: ${client.dump()}`);
    const after = await counters(gw);
    assert.equal(after.rules_scratch_limit - (before.rules_scratch_limit ?? 0), 1, JSON.stringify(after));
    assert.equal(after.rules_step_limit, before.rules_step_limit);
    assert.match(gw.diag(), /needs more than 1048576 bytes of scratch memory/);
  });

  test('limits.rule_scratch_bytes raises it', async () => {
    const { gw, keys } = await gatewayWith(['--limits-rule-scratch-bytes', '4194304']);
    const { user, client } = await userOf(gw, keys, 'LIM-2');
    const res = await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key: 'LIM-2', assignee: user, summary: 'y'.repeat(100000) })));
    assert.equal(res.status, 202, res.text);
    const [first] = await client.waitNotifications(1);
    assert.equal(claimsOf(first).n.title, '100000');
    assert.equal((await counters(gw)).rules_scratch_limit, 0);
  });
});

// Only licensed installations get this rule's notifications.
const LICENSED = `rules:
  - key: licensed-only
    events:
      - eventType: avi:jira:created:issue
        filter: {appIsLicensed: true, expression: "typeof event.issue.key == 'String' && \`\${event.issue.key}\`.length > 0"}
    notify:
      to: "event.issue.fields.assignee?.accountId"
      context: "jira:issue:{{ event.issue.key }}"
      title: "{{ event.issue.fields.summary }}"
`;

/** A FIT for keys whose app.license is replaced (undefined: removed). */
async function fitWithLicense(keys, license) {
  const app = fitClaims(keys).app;
  if (license === undefined) delete app.license;
  else app.license = license;
  return mintFit(keys, { claims: { app } });
}

describe('filter.appIsLicensed reads the verified FIT', () => {
  test('no app.license or an inactive one: skipped; an active one: delivered', async () => {
    const { gw, keys } = await gatewayWith([], LICENSED);
    const { user, client } = await userOf(gw, keys, 'LIC-1');
    const post = async (fit, summary) => {
      const res = await postEvent(gw.port, fit, envelope(bugEvent({ key: 'LIC-1', assignee: user, summary })));
      assert.equal(res.status, 202, res.text);
    };
    await post(await fitWithLicense(keys, undefined), 'free app');
    await post(await fitWithLicense(keys, { active: false }), 'inactive license');
    await post(await fitWithLicense(keys, { active: true }), 'licensed');
    const [first] = await client.waitNotifications(1);
    assert.equal(claimsOf(first).n.title, 'licensed', client.dump());
    await client.roundTrip();
    assert.equal(client.notifications().length, 1, client.dump());
  });
});

describe('rules check --forge', () => {
  test('flags what Forge would refuse, with file:line:col, and exits 1', async () => {
    const dir = tempDir();
    const ours = writeTemp(dir, 'ours.yml', `rules:
  - key: ours
    events: [avi:jira:updated:issue]
    filter:
      expression: "changedTo('status', 'Done')"
    notify: {to: "'u'", context: c, title: t}
`);
    const r = await runCli(['rules', 'check', '--forge', ours]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ours\.yml:5:20: warning: Forge would refuse this filter: changedTo\(\) is this gateway's extension/);
    const plain = await runCli(['rules', 'check', ours]);
    assert.equal(plain.code, 0, plain.stderr);
    const jira = writeTemp(dir, 'jira.yml', LICENSED);
    const ok = await runCli(['rules', 'check', '--forge', jira]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stderr, '');
  });

  test('rules test --fit decides appIsLicensed as the gateway does', async () => {
    const dir = tempDir();
    const rules = writeTemp(dir, 'lic.yml', LICENSED);
    const ev = writeTemp(dir, 'ev.json', JSON.stringify(bugEvent({ key: 'LIC-2', assignee: 'u1' })));
    const fit = writeTemp(dir, 'fit.json', JSON.stringify({ app: { license: { active: true } } }));
    const without = await runCli(['rules', 'test', rules, ev]);
    assert.equal(without.code, 0, without.stderr);
    assert.match(without.stdout, /skipped +licensed-only .*\[appIsLicensed\]/);
    const withFit = await runCli(['rules', 'test', '--fit', fit, rules, ev]);
    assert.equal(withFit.code, 0, withFit.stderr);
    assert.match(withFit.stdout, /matched +licensed-only/);
  });
});
