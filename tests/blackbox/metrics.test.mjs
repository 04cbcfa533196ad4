// metrics.test.mjs - GET /metrics, /livez, /readyz (issue 14, "Metrics and health"):
//   - /metrics is valid Prometheus text (checked by Prometheus's own
//     `promtool check metrics`), every counter /admin/status shows (what
//     /healthz showed) is there with the same value, and after a known sequence of events the counters,
//     gauges and histogram counts say exactly what happened;
//   - /readyz answers 200 when ready and 503 naming the failing check while
//     intake is paused (SIGUSR1), and 200 again after the second SIGUSR1;
//     it answers 503 "stopping" while a stop waits for a websocket to close;
//     it reports the store round trip's last result and age (sqlite and
//     memory), answers 503 "store" while another process holds notify.db's
//     write lock (the sqlite3 shell in BEGIN IMMEDIATE) and 200 once it lets go;
//   - the store_commit_seconds histogram counts the journal's and the
//     recorder's commits of an event;
//   - /livez answers 200;
//   - a real Prometheus scrapes it: the target is up and a query returns
//     the accepted-events count.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';

import { startGateway, waitFor } from './lib/gateway.mjs';
import { makeKeys, mintFit, mintSub } from './lib/keys.mjs';
import { adminStatus, postEvent, request } from './lib/http.mjs';
import { subscriber } from './lib/ws.mjs';
import { bugEvent, envelope, uniqueUser, ctxOf } from './lib/events.mjs';

let keys;
const gateways = [];
const clients = [];

before(async () => {
  keys = await makeKeys();
});

after(async () => {
  for (const c of clients) c.close();
  for (const gw of gateways) await gw.stop();
});

async function start(args = []) {
  const gw = await startGateway({ keys, args });
  gateways.push(gw);
  return gw;
}

/** Parses the exposition text into a Map "name{labels}" -> number. */
function parse(text) {
  const m = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

async function scrape(gw) {
  const res = await request(gw.port, { path: '/metrics' });
  assert.equal(res.status, 200, res.text);
  assert.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  return res.text;
}

function promtool(text) {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool not runnable (${r.error.message}): run scripts/setup.sh (Debian package prometheus)`);
  return r;
}

/** The series a /healthz counter is exposed as. */
function seriesOf(counter) {
  for (const [prefix, fam] of [['events_rejected_', 'events_rejected'], ['forge_retries_', 'forge_retries']])
    if (counter.startsWith(prefix)) return `notify_gateway_${fam}_total{reason="${counter.slice(prefix.length)}"}`;
  return `notify_gateway_${counter}_total`;
}

describe('/metrics', () => {
  test('valid exposition; counters, gauges and histograms after a known sequence', async () => {
    const gw = await start();
    const user = uniqueUser('m');
    const c = await subscriber(gw, await mintSub(keys, { sub: user, ctx: [ctxOf('MT-1')] }), [ctxOf('MT-1')], { name: 'm' });
    clients.push(c);

    for (let i = 0; i < 3; i++) {
      const res = await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key: 'MT-1', assignee: user, summary: `m${i}` })));
      assert.equal(res.status, 202, res.text);
    }
    // one event for nobody subscribed: accepted, signed, undelivered
    assert.equal((await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key: 'MT-2', assignee: uniqueUser('x') })))).status, 202);
    assert.equal((await postEvent(gw.port, null, envelope(bugEvent({ key: 'MT-1', assignee: user })))).status, 401);
    assert.equal((await postEvent(gw.port, await mintFit(keys), '{"payload": ')).status, 400);
    await c.waitNotifications(3);

    const m = parse(await waitFor(async () => {
      const t = await scrape(gw);
      return parse(t).get('notify_gateway_notifications_undelivered_total') === 1 ? t : null;
    }, 'the undelivered notification to be counted'));
    assert.equal(m.get('notify_gateway_events_accepted_total'), 4);
    assert.equal(m.get('notify_gateway_events_rejected_total{reason="token"}'), 1);
    assert.equal(m.get('notify_gateway_events_rejected_total{reason="json"}'), 1);
    assert.equal(m.get('notify_gateway_events_rejected_total{reason="paused"}'), 0);
    assert.equal(m.get('notify_gateway_notifications_delivered_total'), 3);
    assert.equal(m.get('notify_gateway_websocket_connections'), 1);
    assert.equal(m.get('notify_gateway_subscriptions'), 1);
    assert.equal(m.get('notify_gateway_intake_paused'), 0);
    assert.equal(m.get('notify_gateway_rules'), 2);
    // one observation per event with frames, per evaluated event, per intake answer
    assert.equal(m.get('notify_gateway_event_to_frame_seconds_count'), 4);
    assert.equal(m.get('notify_gateway_event_to_frame_seconds_bucket{le="+Inf"}'), 4);
    assert.equal(m.get('notify_gateway_rule_evaluation_seconds_count'), 4);
    assert.equal(m.get('notify_gateway_intake_answer_seconds_count'), 6);
    assert.ok(m.get('notify_gateway_event_to_frame_seconds_sum') > 0);
    // buckets are cumulative
    const buckets = [...m].filter(([k]) => k.startsWith('notify_gateway_rule_evaluation_seconds_bucket')).map(([, v]) => v);
    assert.ok(buckets.length >= 10);
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i] >= buckets[i - 1], `buckets not cumulative: ${buckets}`);
    // no label carries a user, context or installation
    const text = await scrape(gw);
    assert.ok(!text.includes(user) && !text.includes('MT-1') && !text.includes('installation/'), 'an identifier leaked');
  });

  test('store_commit_seconds counts the journal and recorder commits of an event, not the readiness round trips', async () => {
    const gw = await start();
    const user = uniqueUser('sc');
    const c = await subscriber(gw, await mintSub(keys, { sub: user, ctx: [ctxOf('SC-1')] }), [ctxOf('SC-1')], { name: 'sc' });
    clients.push(c);
    const count = 'notify_gateway_store_commit_seconds_count';
    const before = parse(await scrape(gw));
    assert.equal((await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key: 'SC-1', assignee: user })))).status, 202);
    await c.waitNotifications(1);
    const m = parse(await scrape(gw));
    // the journal's commit is over before the rules run, the recorder's after: two transactions at least
    assert.ok(m.get(count) - before.get(count) >= 2, `${before.get(count)} -> ${m.get(count)}`);
    assert.ok(m.get('notify_gateway_store_commit_seconds_sum') > before.get('notify_gateway_store_commit_seconds_sum'));
    assert.equal(m.get('notify_gateway_store_commit_seconds_bucket{le="+Inf"}'), m.get(count));

    // Three readiness round trips later the count has not moved by three
    // (a retention purge, once a minute, may commit once meanwhile).
    const idle = parse(await scrape(gw)).get(count);
    for (let i = 0; i < 3; i++) {
      const since = Date.now();
      await waitFor(async () => (await request(gw.port, { path: '/readyz' })).json.store.okMsAgo < Date.now() - since,
        'a newer store round trip', 15000);
    }
    assert.ok(parse(await scrape(gw)).get(count) - idle <= 1, 'readiness round trips are not commits');
  });

  test('promtool check metrics accepts it, and every /admin/status counter is there with its value', async () => {
    const gw = await start();
    // The counters /healthz showed before issue 10 trimmed it, read before
    // and after the scrape: a background step (a store commit, the sweep) may
    // move one in between, so each series must lie between the two reads.
    const before = (await adminStatus(gw)).json.counters;
    const text = await scrape(gw);
    const after = (await adminStatus(gw)).json.counters;
    const r = promtool(text);
    assert.equal(r.status, 0, `promtool: ${r.stdout}${r.stderr}`);
    assert.equal((r.stdout + r.stderr).trim(), '', 'promtool has no complaint, not even a lint warning');
    const m = parse(text);
    const counters = Object.entries(after);
    assert.ok(counters.length > 20);
    for (const [name, value] of counters) {
      if (name === 'http_requests') continue; // the status requests themselves count; checked below
      const got = m.get(seriesOf(name));
      assert.ok(got !== undefined, `${name} as ${seriesOf(name)}: missing`);
      assert.ok(got >= before[name] && got <= value, `${name} as ${seriesOf(name)}: ${got}, not within ${before[name]}..${value}`);
    }
    assert.ok(m.get('notify_gateway_http_requests_total') >= 1);
  });

  test('promtool fails on a broken exposition (the check can fail)', () => {
    const r = promtool('# TYPE notify_gateway_x counter\nnotify_gateway_x{a="b" 1\n');
    assert.notEqual(r.status, 0);
  });
});

async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const port = srv.address().port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('a real Prometheus', () => {
  test('scrapes the gateway: up == 1 and the accepted events are queryable', async () => {
    const gw = await start();
    const user = uniqueUser('p');
    for (let i = 0; i < 2; i++)
      assert.equal((await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ key: 'PR-1', assignee: user, summary: `p${i}` })))).status, 202);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ngw-prom-'));
    const cfg = path.join(dir, 'prometheus.yml');
    writeFileSync(cfg, `global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: notify-gateway
    static_configs: [{targets: ['127.0.0.1:${gw.port}']}]
`);
    const port = await freePort();
    const prom = spawn('prometheus', [`--config.file=${cfg}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    prom.stderr.setEncoding('utf8').on('data', (d) => (log += d));
    const query = async (q) => {
      const r = await request(port, { path: `/api/v1/query?query=${encodeURIComponent(q)}` }).catch(() => null);
      return r && r.status === 200 ? r.json.data.result : null;
    };
    try {
      const up = await waitFor(async () => {
        const x = await query('up{job="notify-gateway"}');
        return x && x.length && x[0].value[1] === '1' ? x : null;
      }, `Prometheus to scrape the gateway\n${log.slice(-2000)}`, 30000);
      assert.equal(up[0].metric.instance, `127.0.0.1:${gw.port}`);
      const acc = await waitFor(async () => {
        const x = await query('notify_gateway_events_accepted_total');
        return x && x.length ? x : null;
      }, 'the accepted counter', 15000);
      assert.equal(acc[0].value[1], '2');
      const h = await query('notify_gateway_rule_evaluation_seconds_count');
      assert.equal(h[0].value[1], '2');
    } finally {
      prom.kill('SIGTERM');
      await new Promise((r) => prom.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('/livez and /readyz', () => {
  test('ready; 503 "intake" while paused by SIGUSR1; ready again after the second', async () => {
    const gw = await start();
    assert.equal((await request(gw.port, { path: '/livez' })).status, 200);
    let r = await request(gw.port, { path: '/readyz' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, 'ready');
    assert.deepEqual(Object.keys(r.json).sort(), ['status', 'store']);

    gw.signal('SIGUSR1');
    r = await waitFor(async () => {
      const x = await request(gw.port, { path: '/readyz' });
      return x.status === 503 ? x : null;
    }, '/readyz 503 after SIGUSR1');
    assert.equal(r.json.status, 'not_ready');
    assert.equal(r.json.check, 'intake');
    assert.equal((await request(gw.port, { path: '/livez' })).status, 200, 'paused is not dead');
    const m = parse(await scrape(gw));
    assert.equal(m.get('notify_gateway_intake_paused'), 1);
    assert.equal((await postEvent(gw.port, await mintFit(keys), envelope(bugEvent({ assignee: 'u' })))).status, 503);

    gw.signal('SIGUSR1');
    r = await waitFor(async () => {
      const x = await request(gw.port, { path: '/readyz' });
      return x.status === 200 ? x : null;
    }, '/readyz 200 after the second SIGUSR1');
    assert.equal(parse(await scrape(gw)).get('notify_gateway_events_rejected_total{reason="paused"}'), 1);
  });

  for (const store of ['sqlite', 'memory']) {
    test(`store ${store}: the store check reports its last round trip and its age, and runs again`, async () => {
      const gw = await start(['--store', store]);
      const first = await request(gw.port, { path: '/readyz' });
      assert.equal(first.status, 200, first.text);
      const s = first.json.store;
      assert.equal(s.ok, true);
      assert.ok(Number.isInteger(s.checkedMsAgo) && s.checkedMsAgo >= 0, first.text);
      assert.ok(Number.isInteger(s.okMsAgo) && s.okMsAgo >= s.checkedMsAgo, first.text);
      const firstAt = Date.now();
      // a later answer shows a round trip made after the first answer
      await waitFor(async () => {
        const x = await request(gw.port, { path: '/readyz' });
        return x.json.store.okMsAgo < Date.now() - firstAt ? x : null;
      }, 'a newer store round trip', 15000);
      const m = parse(await scrape(gw));
      assert.ok(m.get('notify_gateway_store_round_trip_age_seconds') >= 0);
      assert.equal(m.get('notify_gateway_store_probe_failures_total'), 0);
    });
  }

  test('store sqlite: 503 "store" while another process holds the write lock, 200 once it lets go', async () => {
    const gw = await start();
    assert.equal((await request(gw.port, { path: '/readyz' })).status, 200);
    // The sqlite3 shell takes the database's write lock and keeps it: every
    // write of the gateway (and its readiness round trip) waits for it.
    const shell = spawn('sqlite3', [path.join(gw.stateDir, 'notify.db')], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    shell.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    shell.stderr.setEncoding('utf8').on('data', (d) => (out += d));
    try {
      shell.stdin.write(".timeout 10000\nBEGIN IMMEDIATE;\nSELECT 'locked';\n");
      await waitFor(async () => out.includes('locked'), `the shell to take the write lock (${out})`, 15000);
      const r = await waitFor(async () => {
        const x = await request(gw.port, { path: '/readyz' });
        return x.status === 503 ? x : null;
      }, '/readyz 503 while the store is locked', 30000);
      assert.equal(r.json.status, 'not_ready');
      assert.equal(r.json.check, 'store');
      assert.match(r.json.reason, /store round trip/);
      assert.ok(!r.json.reason.includes(gw.stateDir), 'no path on the public listener');
      assert.ok(r.json.store.okMsAgo > 0);
      assert.equal((await request(gw.port, { path: '/livez' })).status, 200, 'a locked store is not a dead process');
      // a round trip that gave up waiting is counted
      await waitFor(async () => parse(await scrape(gw)).get('notify_gateway_store_probe_failures_total') >= 1,
        'the failed round trip to be counted', 30000);
      assert.match((await request(gw.port, { path: '/readyz' })).json.reason, /store round trip failed: in use by another process|no store round trip has succeeded/);

      shell.stdin.write('ROLLBACK;\n');
      const ok = await waitFor(async () => {
        const x = await request(gw.port, { path: '/readyz' });
        return x.status === 200 ? x : null;
      }, '/readyz 200 once the lock is released', 30000);
      assert.equal(ok.json.store.ok, true);
    } finally {
      shell.stdin.end('.quit\n');
      await new Promise((res) => (shell.exitCode !== null ? res() : shell.once('exit', res)));
    }
  });

  test('503 "stopping" while a stop waits for a websocket to close', async () => {
    const gw = await start(['--shutdown-grace', '3']);
    // A websocket that never answers the close frame keeps the stop waiting
    // (lws' close timeout) while the listener still answers.
    const sock = net.connect(gw.port, '127.0.0.1');
    await new Promise((res) => sock.once('connect', res));
    sock.write('GET /realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    await new Promise((res) => sock.once('data', res));
    sock.on('data', () => {});
    sock.on('error', () => {});
    await waitFor(async () => parse(await scrape(gw)).get('notify_gateway_websocket_connections') === 1, 'the raw websocket');
    gw.signal('SIGTERM');
    const r = await waitFor(async () => {
      const x = await request(gw.port, { path: '/readyz' }).catch(() => null);
      return x && x.status === 503 ? x : null;
    }, '/readyz 503 during the stop');
    assert.equal(r.json.check, 'stopping');
    sock.destroy();
    assert.equal((await gw.waitExit()).code, 0);
  });
});
