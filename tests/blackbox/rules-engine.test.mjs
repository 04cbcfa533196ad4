// rules-engine.test.mjs - what the gateway passes to the rule engine, seen
// from outside: the scratch byte limit (limits.rule_scratch_bytes, counted
// in rules_scratch_limit) stops a rule whose filter would build far more
// than the event holds, the gateway keeps serving, and the limit is
// configurable.
//
// "Not delivered" is checked without sleeping: after the stopped event a
// sentinel event to the same user and context is posted; batches leave in
// acceptance order, so the first notification the user receives must be the
// sentinel's.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startGateway, tempDir, writeTemp } from './lib/gateway.mjs';
import { makeKeys, mintFit, mintSub } from './lib/keys.mjs';
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

async function gatewayWith(args) {
  const keys = await makeKeys();
  const rules = writeTemp(tempDir(), 'limits.yml', RULES);
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
