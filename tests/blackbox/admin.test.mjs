// admin.test.mjs - the admin listener (issue 14, "The admin surface"):
//   - off unless admin.listen is set (it needs admin.token_file); port 0
//     prints "admin listening on http://HOST:PORT"; a unix socket path works;
//   - every admin request needs the bearer token (trimmed from the file):
//     none or a wrong one gets 401 and nothing else; with an admin listener
//     the public listener has no admin route at all (404) and its /metrics,
//     /readyz name no user;
//   - /admin/status, POST /admin/pause|resume (seen by /readyz and intake),
//     POST /admin/reload (seen in /admin/status);
//   - /admin/trace/<traceId> explains a delivered event (the rule matched,
//     its notification stored and written to 1 connection), a filtered-out one (the
//     deciding sub-expression), an ignoreSelf one and an onError one (the
//     error and the onError mode); /admin/trace?user= finds all four for the
//     user, including the ones whose rules excluded them, newest first.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import { runCli, startGateway, tempDir, waitFor } from './lib/gateway.mjs';
import { makeKeys, mintFit, mintSub } from './lib/keys.mjs';
import { postEvent, request } from './lib/http.mjs';
import { subscriber } from './lib/ws.mjs';
import { bugEvent, ctxOf, envelope, uniqueUser } from './lib/events.mjs';

const TOKEN = 'adm-0123456789abcdef-token';
const RULES = `rules:
  - key: bugs
    events: [avi:jira:created:issue]
    filter:
      ignoreSelf: true
      expression: "event.issue.fields.issuetype.name == 'Bug'"
    notify:
      to: ["event.issue.fields.assignee?.accountId"]
      context: "jira:issue:{{ event.issue.key }}"
      title: "bug {{ event.issue.key }}"
  - key: fragile
    events: [avi:jira:created:issue]
    filter:
      expression: "event.issue.fields.issuetype.name == 'Story' && event.issue.fields.nothing.deeper == 'x'"
      onError: IGNORE_AND_LOG
    notify:
      to: ["event.issue.fields.assignee?.accountId"]
      context: "jira:issue:{{ event.issue.key }}"
      title: "story {{ event.issue.key }}"
  - key: updates
    events: ["avi:jira:updated:issue"]
    notify:
      to: ["event.issue.fields.assignee?.accountId"]
      context: "jira:issue:{{ event.issue.key }}"
      title: "updated"
`;

let keys;
let dir;
let tokenFile;
let rulesFile;
const gateways = [];
const clients = [];

before(async () => {
  keys = await makeKeys();
  dir = tempDir('ngw-admin-');
  tokenFile = path.join(dir, 'admin-token');
  writeFileSync(tokenFile, `\n  ${TOKEN}  \n`); // surrounding whitespace is trimmed
  rulesFile = path.join(dir, 'rules.yml');
  writeFileSync(rulesFile, RULES);
});

after(async () => {
  for (const c of clients) c.close();
  for (const gw of gateways) await gw.stop();
  if (dir && !process.env.GW_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
});

async function start(adminListen = '127.0.0.1:0') {
  const gw = await startGateway({ keys, rules: rulesFile, args: ['--admin-listen', adminListen, '--admin-token-file', tokenFile] });
  gateways.push(gw);
  const m = /admin listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(gw.stdout);
  if (m) gw.adminPort = Number(m[1]);
  return gw;
}

/** An admin request; opts.token: the bearer (default the right one; null: none). */
function admin(gw, reqPath, { method = 'GET', token = TOKEN, socketPath } = {}) {
  return new Promise((resolve, reject) => {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const target = socketPath ? { socketPath } : { host: '127.0.0.1', port: gw.adminPort };
    const req = http.request({ ...target, path: reqPath, method, headers, agent: false }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.setTimeout(10000, () => req.destroy(new Error(`${method} ${reqPath}: no answer`)));
    req.on('error', reject);
    req.end();
  });
}

describe('admin listener', () => {
  test('off unless both options are set; port 0 prints the address', async () => {
    const r = await runCli(['--listen', '127.0.0.1:0', '--state-dir', path.join(dir, 'x'), '--admin-listen', '127.0.0.1:0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /admin\.listen needs admin\.token_file/);
    const short = path.join(dir, 'short-token');
    writeFileSync(short, 'abc\n');
    const r2 = await runCli(['--listen', '127.0.0.1:0', '--state-dir', path.join(dir, 'x'), '--admin-listen', '127.0.0.1:0', '--admin-token-file', short]);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /must hold one token of 16/);
    const plain = await startGateway({ keys, rules: rulesFile }); // a token (lib), no admin.listen
    gateways.push(plain);
    assert.doesNotMatch(plain.stdout, /admin listening/);
    // without an admin listener the public listener keeps GET /admin/status only
    assert.equal((await request(plain.port, { path: '/admin/status', headers: { Authorization: `Bearer ${plain.adminToken}` } })).status, 200);
    assert.equal((await request(plain.port, { path: '/admin/trace?user=x', headers: { Authorization: `Bearer ${plain.adminToken}` } })).status, 404);
    const gw = await start();
    assert.ok(gw.adminPort > 0 && gw.adminPort !== gw.port, gw.stdout);
  });

  test('auth: no token, a wrong token: 401; the public listener has no admin route', async () => {
    const gw = await start();
    for (const token of [null, 'wrong-token-0123456789', `${TOKEN}x`, TOKEN.slice(0, -1)]) {
      const r = await admin(gw, '/admin/status', { token });
      assert.equal(r.status, 401, `token ${token}: ${r.text}`);
      assert.equal(r.headers['www-authenticate'], 'Bearer');
      assert.deepEqual(Object.keys(r.json), ['error', 'message']);
      const t = await admin(gw, '/admin/trace?user=x', { token });
      assert.equal(t.status, 401);
      const p = await admin(gw, '/admin/pause', { method: 'POST', token });
      assert.equal(p.status, 401);
    }
    assert.equal((await request(gw.port, { path: '/readyz' })).status, 200, 'an unauthorized pause did nothing');
    const ok = await admin(gw, '/admin/status');
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.json.rules.count, 3);
    for (const p of ['/admin/status', '/admin/trace?user=x', '/admin/trace/abc']) {
      const r = await request(gw.port, { path: p, headers: { Authorization: `Bearer ${TOKEN}` } });
      assert.equal(r.status, 404, `public ${p}: ${r.status}`);
    }
  });

  test('pause, resume and reload through the API', async () => {
    const gw = await start();
    assert.deepEqual((await admin(gw, '/admin/pause', { method: 'POST' })).json, { intake: 'paused' });
    let r = await request(gw.port, { path: '/readyz' });
    assert.equal(r.status, 503);
    assert.equal(r.json.check, 'intake');
    assert.equal((await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ assignee: 'u' })))).status, 503);
    assert.equal((await admin(gw, '/admin/pause')).status, 405, 'GET is not POST');
    assert.deepEqual((await admin(gw, '/admin/resume', { method: 'POST' })).json, { intake: 'open' });
    assert.equal((await request(gw.port, { path: '/readyz' })).status, 200);

    const rl = await admin(gw, '/admin/reload', { method: 'POST' });
    assert.equal(rl.status, 202, rl.text);
    await waitFor(async () => (await admin(gw, '/admin/status')).json.rules.reloads.ok === 1, 'the reload');
  });

  test('a unix socket', async () => {
    const sock = path.join(dir, 'admin.sock');
    const gw = await start(sock);
    assert.match(gw.stdout, new RegExp(`admin listening on unix:${sock.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    assert.equal((await admin(gw, '/admin/status', { socketPath: sock })).status, 200);
    assert.equal((await admin(gw, '/admin/status', { socketPath: sock, token: null })).status, 401);
    await gw.stop();
    assert.equal(existsSync(sock), false, 'the socket file is removed at stop');
  });
});

describe('/admin/trace', () => {
  test('explains a delivered, a filtered-out, an ignoreSelf and an onError case', async () => {
    const gw = await start();
    const user = uniqueUser('tr');
    const c = await subscriber(gw, await mintSub(keys, { sub: user, ctx: [ctxOf('TR-1')] }), [ctxOf('TR-1')], { name: 'tr' });
    clients.push(c);
    const cases = {
      delivered: ['00000000000000000000000000000a01', bugEvent({ key: 'TR-1', assignee: user })],
      filtered: ['00000000000000000000000000000a02', bugEvent({ key: 'TR-1', assignee: user, issuetype: 'Task' })],
      ignoreSelf: ['00000000000000000000000000000a03', bugEvent({ key: 'TR-1', assignee: user, selfGenerated: true })],
      onError: ['00000000000000000000000000000a04', bugEvent({ key: 'TR-1', assignee: user, issuetype: 'Story' })],
    };
    for (const [trace, ev] of Object.values(cases)) {
      const r = await postEvent(gw.port, await mintFit(keys), envelope(ev), { headers: { 'x-b3-traceid': trace } });
      assert.equal(r.status, 202, r.text);
    }
    await c.waitNotifications(1);

    const get = async (name) => {
      const [trace] = cases[name];
      const r = await waitFor(async () => {
        const x = await admin(gw, `/admin/trace/${trace}`);
        return x.status === 200 ? x : null;
      }, `trace ${name}`);
      assert.equal(r.json.traceId, trace);
      assert.equal(r.json.events.length, 1);
      const e = r.json.events[0];
      assert.equal(e.traceId, trace);
      assert.equal(e.eventType, 'avi:jira:created:issue');
      assert.ok(Date.parse(e.acceptedAt) > Date.now() - 60000, e.acceptedAt);
      assert.deepEqual(e.rules.map((x) => x.rule), ['bugs', 'fragile'], 'the candidates, not the updates rule');
      assert.equal(e.otherRules, 1);
      return e;
    };

    const d = await waitFor(async () => {
      const e = await get('delivered');
      return e.notifications[0]?.connections === 1 ? e : null;
    }, 'the delivered notification to be counted');
    assert.equal(d.rules[0].outcome, 'matched');
    assert.deepEqual(d.recipients, [user]);
    assert.equal(d.notifications.length, 1);
    // stored: recorded with the event's done mark (before it was written to the connection)
    assert.deepEqual({ ...d.notifications[0] }, { rule: 'bugs', user, context: ctxOf('TR-1'), seq: 1, stored: true, connections: 1 });

    const f = await get('filtered');
    assert.equal(f.rules[0].outcome, 'skipped');
    assert.equal(f.rules[0].stage, 'filter');
    assert.match(f.rules[0].reason, /expression was false, decided by `event\.issue\.fields\.issuetype\.name == 'Bug'`.*Task/);
    assert.deepEqual(f.recipients, []);
    assert.deepEqual(f.notifications, []);

    const s = await get('ignoreSelf');
    assert.equal(s.rules[0].stage, 'ignoreSelf');
    assert.equal(s.rules[0].outcome, 'skipped');

    const o = await get('onError');
    assert.equal(o.rules[1].rule, 'fragile');
    assert.equal(o.rules[1].stage, 'filter');
    assert.match(o.rules[1].reason, /property 'nothing' is not defined.*onError IGNORE_AND_LOG: event ignored/);

    // by user: all four concerned the user (assignee), newest first
    const u = await admin(gw, `/admin/trace?user=${user}&limit=10`);
    assert.equal(u.status, 200, u.text);
    assert.deepEqual(u.json.events.map((e) => e.traceId), Object.values(cases).map(([t]) => t).reverse());
    const u2 = await admin(gw, `/admin/trace?user=${user}&limit=2`);
    assert.equal(u2.json.events.length, 2);
    assert.equal((await admin(gw, `/admin/trace?user=${uniqueUser('nobody')}`)).json.events.length, 0);
    assert.equal((await admin(gw, '/admin/trace/ffffffffffffffff')).status, 404);
    assert.equal((await admin(gw, '/admin/trace?user=')).status, 400);
    assert.equal((await admin(gw, `/admin/trace?user=${user}&limit=0`)).status, 400);

    // the public listener names no user anywhere it answers
    for (const p of ['/metrics', '/readyz', '/livez']) {
      const r = await request(gw.port, { path: p });
      assert.ok(!r.text.includes(user), `${p} names the user`);
    }
  });

  test('the ring is bounded by admin.trace_events (oldest first)', async () => {
    const gw = await startGateway({ keys, rules: rulesFile, args: ['--admin-listen', '127.0.0.1:0', '--admin-token-file', tokenFile, '--admin-trace-events', '3'] });
    gateways.push(gw);
    gw.adminPort = Number(/admin listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(gw.stdout)[1]);
    const user = uniqueUser('rb');
    const traces = [];
    for (let i = 0; i < 5; i++) {
      const t = `00000000000000000000000000000b0${i}`;
      traces.push(t);
      assert.equal((await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key: 'RB-1', assignee: user, summary: `ring ${i}` })), { headers: { 'x-b3-traceid': t } })).status, 202);
    }
    const r = await waitFor(async () => {
      const x = await admin(gw, `/admin/trace?user=${user}&limit=100`);
      return x.json.events.length === 3 && x.json.events[0].traceId === traces[4] ? x : null;
    }, 'the last three events');
    assert.deepEqual(r.json.events.map((e) => e.traceId), traces.slice(2).reverse());
    assert.equal((await admin(gw, `/admin/trace/${traces[0]}`)).status, 404);
    const m = await request(gw.port, { path: '/metrics' });
    assert.match(m.text, /^notify_gateway_trace_entries_evicted_total 2$/m);
  });
});
