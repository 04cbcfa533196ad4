// reload.test.mjs - SIGHUP reloads the rule file (issue #3, "hot reload"):
//   - a good file is swapped in: /healthz shows the new version, load time
//     and the ok counter, and new events use the new rules;
//   - a broken file keeps the running rules: /healthz shows the error and
//     the failed counter, events still produce notifications;
//   - a reload while a stream of events flows loses nothing and doubles
//     nothing: every 202'd event yields its notification exactly once, the
//     user's seq runs 1..N without a gap, and each event was handled by
//     exactly one rule version (its title says which).
// The rule file and the directory form (--rules DIR) are both covered.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';

import { startGateway, tempDir } from './lib/gateway.mjs';
import { makeKeys, mintFit, mintSub } from './lib/keys.mjs';
import { postEvent, request, adminStatus } from './lib/http.mjs';
import { subscriber } from './lib/ws.mjs';
import { bugEvent, envelope, uniqueUser, ctxOf } from './lib/events.mjs';

/** A rule file whose bug rule titles its notifications "<tag> <key>". */
const rules = (tag) => `# reload.test.mjs rules, version ${tag}
rules:
  - key: bug-created
    events: [avi:jira:created:issue]
    filter:
      expression: "event.issue.fields.issuetype.name == 'Bug'"
    notify:
      to: "event.issue.fields?.assignee?.accountId"
      context: "jira:issue:{{ event.issue.key }}"
      title: "${tag} {{ event.issue.key }}"
      description: "{{ event.issue.fields.summary }}"
`;

const BROKEN = `rules:
  - key: bug-created
    events: [avi:jira:created:issue]
    filter:
      expression: "event.issue.fields.issuetype.name == "
    notify: {to: "'x'", context: c, title: t}
`;

let keys;
let dir;
const gateways = [];
const clients = [];

before(async () => {
  keys = await makeKeys({ subscriber: 'es256' });
  dir = tempDir('ngw-reload-');
});

after(async () => {
  for (const c of clients) c.close();
  for (const gw of gateways) await gw.stop();
  if (dir && !process.env.GW_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
});

async function health(gw) {
  const res = await adminStatus(gw);
  assert.equal(res.status, 200, res.text);
  return res.json.rules;
}

/** Polls /healthz until pred(rules) holds (bounded). */
async function waitRules(gw, pred, what, timeout = 10000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const r = await health(gw);
    if (pred(r)) return r;
    if (Date.now() > deadline) throw new Error(`/healthz rules: no ${what} within ${timeout} ms: ${JSON.stringify(r)}\n${gw.diag()}`);
    await new Promise((res) => setTimeout(res, 25));
  }
}

async function post(gw, event) {
  const res = await postEvent(gw.port, await mintFit(keys), envelope(event));
  assert.equal(res.status, 202, `event refused: ${res.text}\n${gw.diag()}`);
}

async function sub(gw, user, key) {
  const c = await subscriber(gw, await mintSub(keys, { sub: user, ctx: [ctxOf(key)] }), [ctxOf(key)], { name: user });
  clients.push(c);
  return c;
}

async function start(rulesPath) {
  const gw = await startGateway({ keys, rules: rulesPath });
  gateways.push(gw);
  return gw;
}

describe('SIGHUP reload', () => {
  test('a good file is swapped in; a broken one keeps the running rules', async () => {
    const file = path.join(dir, 'rules.yml');
    writeFileSync(file, rules('v1'));
    const gw = await start(file);
    const user = uniqueUser('r');
    const c = await sub(gw, user, 'RL-1');

    const h0 = await health(gw);
    assert.deepEqual(h0.reloads, { ok: 0, failed: 0 });
    assert.equal(h0.lastReloadError, null);
    assert.equal(h0.count, 1);
    await post(gw, bugEvent({ key: 'RL-1', assignee: user, summary: 'before' }));
    await c.waitNotifications(1);

    writeFileSync(file, rules('v2'));
    gw.signal('SIGHUP');
    const h1 = await waitRules(gw, (r) => r.reloads.ok === 1, 'successful reload');
    assert.notEqual(h1.version, h0.version, 'the content hash changes with the file');
    assert.match(h1.version, /^[0-9a-f]{16}$/);
    assert.ok(Date.parse(h1.loadedAt) >= Date.parse(h0.loadedAt), `loadedAt ${h1.loadedAt}`);
    assert.equal(h1.lastReloadError, null);
    await post(gw, bugEvent({ key: 'RL-1', assignee: user, summary: 'after good reload' }));
    await c.waitNotifications(2);

    writeFileSync(file, BROKEN);
    gw.signal('SIGHUP');
    const h2 = await waitRules(gw, (r) => r.reloads.failed === 1, 'failed reload');
    assert.equal(h2.version, h1.version, 'a broken file does not replace the running rules');
    assert.equal(h2.reloads.ok, 1);
    assert.match(h2.lastReloadError, /unexpected end of expression/);
    await post(gw, bugEvent({ key: 'RL-1', assignee: user, summary: 'after broken reload' }));
    await c.waitNotifications(3);
    assert.match(gw.stderr, /rules\.yml:5:\d+: error: unexpected end of expression/, 'the diagnostics are logged');

    const claims = c.notificationClaims();
    assert.deepEqual(claims.map((x) => x.n.title), ['v1 RL-1', 'v2 RL-1', 'v2 RL-1']);
    assert.deepEqual(claims.map((x) => x.seq), [1, 2, 3]);
  });

  test('--rules DIR: the directory is reloaded as one set', async () => {
    const rdir = path.join(dir, 'rules.d');
    mkdirSync(rdir);
    writeFileSync(path.join(rdir, '10-bugs.yml'), rules('d1'));
    const gw = await start(rdir);
    const user = uniqueUser('d');
    const c = await sub(gw, user, 'RL-D');
    assert.equal((await health(gw)).count, 1);

    writeFileSync(path.join(rdir, '10-bugs.yml'), rules('d2'));
    writeFileSync(path.join(rdir, '20-more.yaml'), rules('extra').replace('key: bug-created', 'key: bug-created-twice'));
    gw.signal('SIGHUP');
    const h = await waitRules(gw, (r) => r.reloads.ok === 1, 'successful reload');
    assert.equal(h.count, 2);
    await post(gw, bugEvent({ key: 'RL-D', assignee: user, summary: 'two rules' }));
    await c.waitNotifications(2);
    assert.deepEqual(c.notificationClaims().map((x) => x.n.title).sort(), ['d2 RL-D', 'extra RL-D']);
  });

  test('reload while events flow: every accepted event is notified exactly once', async () => {
    const file = path.join(dir, 'stream.yml');
    writeFileSync(file, rules('old'));
    const gw = await start(file);
    const user = uniqueUser('s');
    const key = 'RL-STREAM';
    const c = await sub(gw, user, key);

    const N = 300;
    const INFLIGHT = 8;
    let next = 0;
    let accepted = 0;
    const reloads = [];
    const worker = async () => {
      while (next < N) {
        const i = next++;
        await post(gw, bugEvent({ key, assignee: user, summary: `#${i}` }));
        accepted++;
        if (accepted === Math.floor(N / 3)) {
          writeFileSync(file, rules('new'));
          gw.signal('SIGHUP');
          reloads.push(waitRules(gw, (r) => r.reloads.ok === 1, 'reload in the stream'));
        }
        if (accepted === Math.floor((2 * N) / 3)) {
          await reloads[0];
          writeFileSync(file, BROKEN);
          gw.signal('SIGHUP');
          reloads.push(waitRules(gw, (r) => r.reloads.failed === 1, 'failed reload in the stream'));
        }
      }
    };
    await Promise.all(Array.from({ length: INFLIGHT }, worker));
    assert.equal(accepted, N);
    await Promise.all(reloads);

    await c.waitNotifications(N, { timeout: 30000 });
    // a little longer: a doubled notification would arrive after the N-th
    await new Promise((res) => setTimeout(res, 300));
    const claims = c.notificationClaims();
    assert.equal(claims.length, N, `expected exactly ${N} notifications, got ${claims.length}`);
    assert.deepEqual(claims.map((x) => x.seq), Array.from({ length: N }, (_, i) => i + 1), 'seq is 1..N without gap or repeat');
    const seen = claims.map((x) => Number(x.n.description.slice(1))).sort((a, b) => a - b);
    assert.deepEqual(seen, Array.from({ length: N }, (_, i) => i), 'each event exactly once');
    const titles = new Set(claims.map((x) => x.n.title));
    for (const t of titles) assert.ok(t === `old ${key}` || t === `new ${key}`, `unexpected title ${t}`);
    const newer = claims.filter((x) => x.n.title === `new ${key}`).length;
    assert.ok(newer > 0 && newer < N, `both rule versions were used (new: ${newer} of ${N})`);
    // the broken file left the new rules in force
    await post(gw, bugEvent({ key, assignee: user, summary: 'last' }));
    const all = await c.waitNotifications(N + 1);
    assert.equal(all.length, N + 1);
    assert.equal(c.notificationClaims()[N].n.title, `new ${key}`);
  });
});
