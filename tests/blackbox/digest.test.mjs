// digest.test.mjs - scheduled digests (issue #4: "rules with schedule: ...
// run on each invocation of that interval, for example an hourly digest per
// user"). Product events notify users; a POST /forge/scheduled/hour then runs
//  - rules on "scheduled:hour" once, with event.activity listing who was
//    notified since the last hour run of this installation, and
//  - rules on "scheduled:hour:user" once per such user, with event.user =
//    {accountId, count, titles}.
// A second run right after sees no activity (counters reset per interval),
// while the day interval still sees everything. Another installation's
// activity never shows.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { startGateway, tempDir, writeTemp } from './lib/gateway.mjs';
import { makeKeys, mintFit, mintSub, newInstallation, INSTALLATION } from './lib/keys.mjs';
import { postEvent, adminStatus } from './lib/http.mjs';
import { subscriber } from './lib/ws.mjs';
import { claimsOf } from './lib/notification.mjs';
import { bugEvent, envelope, uniqueUser, ctxOf } from './lib/events.mjs';

const RULES = `
rules:
  - key: bug-created
    events: [avi:jira:created:issue]
    notify:
      to: ["event.issue.fields.assignee?.accountId"]
      context: "jira:issue:{{ event.issue.key }}"
      title: "New bug {{ event.issue.key }}"
  - key: hourly-digest
    events: ["scheduled:hour:user", "scheduled:day:user"]
    notify:
      to: ["event.user.accountId"]
      context: "digest"
      title: "{{ event.user.count }} notifications ({{ event.interval }})"
      description: "latest: {{ event.user.titles[0] }}"
  - key: hourly-summary
    events: ["scheduled:hour"]
    notify:
      to: ["'digest-admin'"]
      context: "digest"
      title: "{{ event.activity.length }} people notified"
`;

let keys, gw;
const clients = [];
before(async () => {
  keys = await makeKeys({ subscriber: 'hs256' });
  const dir = tempDir('digest-');
  gw = await startGateway({ keys, rules: writeTemp(dir, 'rules.yml', RULES) });
});
after(async () => {
  for (const c of clients) c.close();
  if (gw) await gw.stop();
});

async function scheduled(interval, installation = INSTALLATION) {
  const fit = await mintFit(keys, { installation });
  const res = await fetch(`${gw.url}/forge/scheduled/${interval}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${fit}` },
    body: '{}',
    signal: AbortSignal.timeout(5000),
  });
  assert.equal(res.status, 202, await res.text());
}

const decode = (n) => claimsOf(n);

describe('scheduled digests', () => {
  test('per-user digest and installation summary reflect the activity since the last run', async () => {
    const A = uniqueUser('dig-a');
    const B = uniqueUser('dig-b');
    const a = await subscriber(gw, await mintSub(keys, { sub: A, ctx: ['digest', ctxOf('DG-1')] }), ['digest'], { name: 'A' });
    const b = await subscriber(gw, await mintSub(keys, { sub: B, ctx: ['digest'] }), ['digest'], { name: 'B' });
    const admin = await subscriber(gw, await mintSub(keys, { sub: 'digest-admin', ctx: ['digest'] }), ['digest'], { name: 'admin' });
    clients.push(a, b, admin);
    // A is notified twice, B once (nobody is subscribed to the issue contexts:
    // digests are for what people missed). Another installation's user with
    // the same id as A is notified too and must not count.
    for (const [key, user, inst] of [['DG-1', A], ['DG-2', A], ['DG-3', B], ['DG-4', A, newInstallation()]]) {
      const res = await postEvent(gw.port, await mintFit(keys, { installation: inst }), envelope(bugEvent({ key, assignee: user })));
      assert.equal(res.status, 202, res.text);
    }
    await scheduled('hour');
    const [da] = await a.waitNotifications(1);
    const health = (await adminStatus(gw)).json;
    assert.equal(health.digests.tracked, 3, JSON.stringify(health.digests)); // A, B, and A in the other installation
    assert.equal(health.digests.untracked, 0);
    const [db] = await b.waitNotifications(1);
    const [ds] = await admin.waitNotifications(1);
    assert.equal(decode(da).n.title, '2 notifications (hour)');
    assert.equal(decode(da).n.description, 'latest: New bug DG-2');
    assert.equal(decode(da).n.rule, 'hourly-digest');
    assert.equal(decode(db).n.title, '1 notifications (hour)');
    assert.equal(decode(ds).n.title, '2 people notified');

    // The hour counters were reset: a second hour run has no per-user digests
    // and a summary of 0; the day interval still counts everything.
    await scheduled('hour');
    const [ds2] = await admin.waitNotifications(2).then((l) => l.slice(1));
    assert.equal(decode(ds2).n.title, '0 people notified');
    await scheduled('day');
    const [da2] = await a.waitNotifications(2).then((l) => l.slice(1));
    assert.equal(decode(da2).n.title, '2 notifications (day)');
    assert.equal(a.notifications().length, 2, 'no hour digest for A in the second run');
  });
});
