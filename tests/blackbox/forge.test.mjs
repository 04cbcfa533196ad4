// forge.test.mjs - issue #4 (Forge fidelity) end to end: the real gateway
// with Forge played by tools/forge-sim (lib/forge-sim.mjs).
//
//  - forge-sim itself: keys/JWKS, FIT verified by jose, the request Forge
//    sends, retries with retryContext (non-2xx, 3xx, timeout), exit codes
//  - lifecycle: installed -> registry file + /healthz -> restart -> still
//    there; a rule on avi:forge:installed:app notifies the installer
//  - scheduled triggers: system token kept per installation, freshness in
//    /healthz (valid / expiring / expired), never in the log
//  - redelivery after a 503 (SIGUSR1 pause) and after the simulator's
//    timeout (gateway SIGSTOPped) -> exactly one notification
//  - isolation between two installations (same accountId and context)
//  - a FIT for another app -> 401, Forge-style retries, nothing delivered
//
// Every wait is bounded; nothing asserts on timing. Exactly-once checks use a
// barrier: a later event to the same user arrives after anything the earlier
// one could still have produced (per-user order = acceptance order).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import { startGateway, fixture, tempDir, runCli } from './lib/gateway.mjs';
import { makeSubscriberKey, mintSub, jose } from './lib/keys.mjs';
import { request, adminStatus } from './lib/http.mjs';
import { subscriber, WsClient } from './lib/ws.mjs';
import { claimsOf } from './lib/notification.mjs';
import { bugEvent, uniqueUser, ctxOf } from './lib/events.mjs';
import { ForgeSim, runSim, parseSimOutput, FORGE_SIM } from './lib/forge-sim.mjs';

const RULES = fixture('forge-rules.yml');
const INSTALLED = JSON.parse(readFileSync(fixture('forge-installed-app.json'), 'utf8'));
const UPGRADED = JSON.parse(readFileSync(fixture('forge-upgraded-app.json'), 'utf8'));
const newApp = () => `ari:cloud:ecosystem::app/${randomUUID()}`;
const newInstallation = () => `ari:cloud:ecosystem::installation/${randomUUID()}`;

const cleanups = [];
after(async () => {
  for (const fn of cleanups.reverse()) {
    try {
      await fn();
    } catch {
      /* best effort */
    }
  }
});

async function newSim(opts = {}) {
  const sim = await ForgeSim.create({ appId: opts.appId ?? newApp(), installation: opts.installation ?? newInstallation() });
  cleanups.push(() => sim.cleanup());
  return sim;
}

/** Starts a gateway that trusts sim's JWKS for sim's app, HS256 subscriber secret. */
async function gatewayFor(sim, { stateDir, sub, args = [] } = {}) {
  sub = sub || (await makeSubscriberKey('hs256'));
  const keys = { appId: sim.appId, jwks: sim.jwks, sub };
  const gw = await startGateway({ keys, rules: RULES, stateDir, args: ['--log-level', 'info', ...args] });
  cleanups.push(() => gw.stop());
  return gw;
}

async function health(gw) {
  const res = await adminStatus(gw);
  assert.equal(res.status, 200, res.text);
  return res.json;
}

/** Polls /healthz until pred(health) holds (bounded). */
async function waitHealth(gw, pred, what, timeout = 10000) {
  const deadline = Date.now() + timeout;
  let h;
  for (;;) {
    h = await health(gw);
    if (pred(h)) return h;
    if (Date.now() > deadline) throw new Error(`/healthz: no ${what} within ${timeout} ms: ${JSON.stringify(h)}\n${gw.diag()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const counter = (h, name) => h.counters?.[name] ?? 0;
const installationOf = (h, id) => (h.installations || []).find((i) => i.id === id);

/** A websocket user of installation `installation`. */
async function user(gw, keys, { installation, sub, ctx, name }) {
  const token = await mintSub(keys, { sub, ctx, installation });
  const c = await subscriber(gw, token, ctx, { name: name || `${sub}@${installation}` });
  cleanups.push(() => c.close());
  return c;
}

function assertDelivered(r, label = 'the event') {
  assert.equal(r.code, 0, `forge-sim should report ${label} delivered\n${r.stdout}\n${r.stderr}`);
  for (const [k, f] of Object.entries(r.finals)) assert.equal(f.outcome, 'delivered', `${k}: ${JSON.stringify(f)}`);
}

function assertNoTempFiles(dir) {
  const stray = readdirSync(dir).filter((f) => f.includes('.tmp'));
  assert.deepEqual(stray, [], `temporary files left in ${dir}`);
}

// ---------------------------------------------------------------------------
describe('forge-sim itself', () => {
  let sim;
  let server;
  let port;
  const seen = []; // {headers, body} per request
  let mode = 'ok'; // ok | redirect | hang | 503-then-ok
  const hanging = [];

  before(async () => {
    sim = await newSim();
    server = createServer((req, res) => {
      const parts = [];
      req.on('data', (d) => parts.push(d));
      req.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        seen.push({ method: req.method, url: req.url, headers: req.headers, text, body: JSON.parse(text) });
        if (mode === 'hang') {
          hanging.push(res);
          return;
        }
        if (mode === 'redirect') {
          res.writeHead(302, { Location: '/elsewhere', 'Content-Type': 'application/json' }).end('{}');
          return;
        }
        if (mode === '503-then-ok' && seen.length === 1) {
          res.writeHead(503, { 'Content-Type': 'application/json', 'Retry-After': '1' }).end('{"error":"busy"}');
          return;
        }
        res.writeHead(202, { 'Content-Type': 'application/json' }).end('{"status":"accepted"}');
      });
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    port = server.address().port;
    cleanups.push(() => {
      for (const res of hanging) res.destroy();
      return new Promise((r) => server.close(r));
    });
  });

  test('keys: RSA key with mode 0600, JWKS with kid; a printed FIT verifies with jose', async () => {
    const st = statSync(path.join(sim.dir, 'forge-sim-key.pem'));
    assert.equal(st.mode & 0o777, 0o600);
    const [k] = sim.jwks.keys;
    assert.equal(k.kty, 'RSA');
    assert.equal(k.alg, 'RS256');
    assert.ok(k.kid && k.n && k.e);
    const r = await runSim(['fit', '--keys', sim.dir, '--app-id', sim.appId, '--installation', sim.installation]);
    assert.equal(r.code, 0, r.stderr);
    const fit = r.stdout.trim();
    const { payload, protectedHeader } = await jose.jwtVerify(fit, jose.createLocalJWKSet(sim.jwks), {
      issuer: 'forge/invocation-token', audience: sim.appId, algorithms: ['RS256'],
    });
    assert.equal(protectedHeader.kid, k.kid);
    assert.equal(payload.app.id, sim.appId);
    assert.equal(payload.app.installationId, sim.installation);
    assert.equal(payload.app.module.type, 'core:endpoint');
    assert.ok(payload.app.apiBaseUrl && payload.app.appVersion && payload.app.environment?.type);
    assert.equal(payload.iat, payload.nbf);
    assert.equal(payload.exp - payload.iat, 25);
    assert.match(payload.jti, /^[0-9a-f]{40}$/);
    // Running keys again keeps the key (same JWKS).
    const again = await runSim(['keys', '--dir', sim.dir]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(readFileSync(sim.jwksPath, 'utf8')), sim.jwks);
  });

  test('usage errors exit 2 with a message', async () => {
    const cases = [
      [],
      ['bogus'],
      ['send', '--url', `http://127.0.0.1:${port}`, '--keys', sim.dir],
      ['send', '--url', `http://127.0.0.1:${port}`, '--keys', sim.dir, '--timeout', '5 parsecs', 'x.json'],
      ['send', '--url', 'https://example.com', '--keys', sim.dir, 'x.json'],
      ['send', '--url', `http://127.0.0.1:${port}`, '--keys', '/nonexistent-forge-sim-dir', 'x.json'],
      ['send', '--url', `http://127.0.0.1:${port}`, '--keys', sim.dir, '--no-such-flag', 'x.json'],
      ['schedule', '--url', `http://127.0.0.1:${port}`, '--keys', sim.dir, '--interval', 'minute'],
    ];
    for (const args of cases) {
      const r = await runSim(args);
      assert.equal(r.code, 2, `${args.join(' ')} -> ${r.code}\n${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /forge-sim/, args.join(' '));
    }
  });

  test('the request: envelope, headers, fresh FIT and span per attempt, retryContext on retries', async () => {
    seen.length = 0;
    mode = '503-then-ok';
    const event = bugEvent({ key: 'SIM-1', assignee: 'someone' });
    const r = await sim.send(`http://127.0.0.1:${port}`, [event], { retryDelay: '50ms', systemTokenTtl: '4h' });
    assertDelivered(r);
    assert.equal(seen.length, 2);
    const [a, b] = seen;
    for (const s of seen) {
      assert.equal(s.method, 'POST');
      assert.equal(s.url, '/forge/events');
      assert.match(s.headers['content-type'], /^application\/json/);
      assert.match(s.headers.authorization, /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
      assert.match(s.headers['x-b3-traceid'], /^[0-9a-f]{32}$/);
      assert.match(s.headers['x-b3-spanid'], /^[0-9a-f]{16}$/);
      const sys = jose.decodeJwt(s.headers['x-forge-oauth-system']);
      const left = sys.exp - Math.floor(Date.now() / 1000);
      assert.ok(left > 3 * 3600 && left <= 4 * 3600, `system token exp in ${left} s`);
    }
    assert.equal(a.headers['x-b3-traceid'], b.headers['x-b3-traceid'], 'one trace id per event');
    assert.notEqual(a.headers['x-b3-spanid'], b.headers['x-b3-spanid'], 'one span id per attempt');
    assert.notEqual(a.headers.authorization, b.headers.authorization, 'a fresh FIT per attempt');
    assert.deepEqual(a.body, { payload: event });
    assert.deepEqual(b.body.payload.retryContext, { retryCount: 1, retryReason: 'INVALID_REMOTE_INVOCATION_ERROR', retryData: null });
    const { retryContext, ...rest } = b.body.payload;
    assert.deepEqual(rest, event, 'a redelivery is the same event plus retryContext');
    assert.deepEqual(r.attempts.map((x) => x.status), [503, 202]);
  });

  test('3xx is not followed and counts as a failure; retries stop after --retries', async () => {
    seen.length = 0;
    mode = 'redirect';
    const r = await sim.send(`http://127.0.0.1:${port}`, [bugEvent({ key: 'SIM-2' })], { retryDelay: '10ms', retries: 2 });
    assert.equal(r.code, 1, r.stdout);
    assert.equal(seen.length, 3);
    assert.ok(seen.every((s) => s.url === '/forge/events'), 'the Location is never requested');
    assert.deepEqual(seen.slice(1).map((s) => s.body.payload.retryContext.retryCount), [1, 2]);
    assert.equal(Object.values(r.finals)[0].outcome, 'failed');
  });

  test('a timeout is retried with TIMEOUT_ERROR', async () => {
    seen.length = 0;
    mode = 'hang';
    const r = await sim.send(`http://127.0.0.1:${port}`, [bugEvent({ key: 'SIM-3' })], { timeout: '200ms', retryDelay: '10ms', retries: 1 });
    assert.equal(r.code, 1, r.stdout);
    assert.deepEqual(r.attempts.map((x) => x.status), ['timeout', 'timeout']);
    assert.equal(seen[1].body.payload.retryContext.retryReason, 'TIMEOUT_ERROR');
    mode = 'ok';
  });

  test('schedule fires --count triggers at /forge/scheduled/<interval>', async () => {
    seen.length = 0;
    mode = 'ok';
    const r = await sim.schedule(`http://127.0.0.1:${port}`, { interval: 'day', every: '20ms', count: 3 });
    assertDelivered(r);
    assert.equal(seen.length, 3);
    assert.ok(seen.every((s) => s.url === '/forge/scheduled/day' && s.headers['x-forge-oauth-system'] === undefined));
    assert.equal(new Set(seen.map((s) => s.headers['x-b3-traceid'])).size, 3, 'one trace per run');
  });

  test('connection refused: network error, retried, exit 1', async () => {
    const r = await sim.send('http://127.0.0.1:1', [bugEvent({ key: 'SIM-4' })], { retryDelay: '10ms', retries: 1 });
    assert.equal(r.code, 1);
    assert.deepEqual(r.attempts.map((x) => x.status), ['error', 'error']);
    assert.equal(r.attempts[1].retryReason, 'INVALID_REMOTE_INVOCATION_ERROR');
    assert.ok(existsSync(FORGE_SIM));
  });
});

// ---------------------------------------------------------------------------
describe('lifecycle events: registry, restart, installer notified', () => {
  test('installed -> registry + /healthz -> restart -> still there; upgraded updates it', async () => {
    const sim = await newSim();
    const stateDir = tempDir('ngw-forge-');
    cleanups.push(() => rmSync(stateDir, { recursive: true, force: true }));
    const sub = await makeSubscriberKey('hs256');
    const keys = { sub };
    const installer = uniqueUser('inst');
    const upgrader = uniqueUser('upg');

    let gw = await gatewayFor(sim, { stateDir, sub });
    const before = await health(gw);
    const u = await user(gw, keys, { installation: sim.installation, sub: installer, ctx: ['forge:app'] });

    const installed = { ...structuredClone(INSTALLED), installerAccountId: installer };
    const r = await sim.send(gw, [installed]);
    assertDelivered(r, 'the installed event');

    // The installer is notified by the rule on avi:forge:installed:app.
    const [n] = await u.waitNotifications(1);
    const claims = claimsOf(n);
    assert.equal(claims.sub, installer);
    assert.equal(claims.ctx, 'forge:app');
    assert.equal(claims.n.rule, 'installer-welcome');
    assert.equal(claims.n.eventType, 'avi:forge:installed:app');
    assert.equal(claims.installation, sim.installation);
    assert.equal(claims.n.title, 'My App Name is installed');

    // Registry file, written atomically.
    const regPath = path.join(stateDir, 'installations.json');
    assert.ok(existsSync(regPath), 'STATE_DIR/installations.json exists');
    const reg = JSON.parse(readFileSync(regPath, 'utf8'));
    const rec = reg.installations?.[sim.installation];
    assert.ok(rec, `registry has ${sim.installation}: ${JSON.stringify(reg)}`);
    assert.equal(rec.installerAccountId, installer);
    assert.ok(rec.installedAt);
    assertNoTempFiles(stateDir);

    // /healthz
    let h = await health(gw);
    let inst = installationOf(h, sim.installation);
    assert.ok(inst, JSON.stringify(h.installations));
    assert.equal(inst.installerAccountId, installer);
    assert.equal(inst.installedAt, rec.installedAt);
    assert.equal(typeof inst.appVersion, 'string');
    assert.equal(inst.systemToken, 'none');
    assert.equal(counter(h, 'lifecycle_events'), counter(before, 'lifecycle_events') + 1);

    // Forge redelivers the installed event (its 202 was lost): a duplicate,
    // not recorded or notified again.
    const again = await sim.send(gw, [{ ...installed, retryContext: { retryCount: 1, retryReason: 'TIMEOUT_ERROR', retryData: null } }]);
    assertDelivered(again, 'the redelivered installed event');
    assert.equal(again.attempts[0].answer?.status, 'duplicate', again.stdout);
    h = await health(gw);
    assert.equal(counter(h, 'lifecycle_events'), counter(before, 'lifecycle_events') + 1);
    await u.roundTrip();
    assert.equal(u.notifications().length, 1, u.dump());

    // Restart on the same state dir: the installation is still known.
    u.close();
    await gw.stop();
    assert.equal(gw.exit.code, 0, gw.diag());
    gw = await gatewayFor(sim, { stateDir, sub });
    h = await health(gw);
    inst = installationOf(h, sim.installation);
    assert.ok(inst, `after restart: ${JSON.stringify(h.installations)}`);
    assert.equal(inst.installerAccountId, installer);
    assert.equal(inst.installedAt, rec.installedAt);

    // A major-version upgrade: recorded next to the install, upgrader notified.
    const v = await user(gw, keys, { installation: sim.installation, sub: upgrader, ctx: ['forge:app'] });
    const upgraded = { ...structuredClone(UPGRADED), upgraderAccountId: upgrader, app: { ...UPGRADED.app, version: '10.0.0' } };
    assertDelivered(await sim.send(gw, [upgraded], { appVersion: '10.0.0' }), 'the upgraded event');
    const [m] = await v.waitNotifications(1);
    assert.equal(claimsOf(m).n.rule, 'upgrader-notice');
    h = await health(gw);
    inst = installationOf(h, sim.installation);
    assert.ok(inst.upgradedAt, JSON.stringify(inst));
    assert.equal(inst.installedAt, rec.installedAt, 'the install time survives the upgrade');
    assert.equal(inst.installerAccountId, installer);
    assert.equal(inst.appVersion, '10.0.0');
    const reg2 = JSON.parse(readFileSync(regPath, 'utf8'));
    assert.ok(reg2.installations[sim.installation].upgradedAt);
    assertNoTempFiles(stateDir);
  });

  test('an installation not named in any lifecycle event is not in the registry', async () => {
    const sim = await newSim();
    const gw = await gatewayFor(sim);
    assertDelivered(await sim.send(gw, [bugEvent({ key: 'LC-1', assignee: uniqueUser() })]));
    const h = await health(gw);
    assert.equal(installationOf(h, sim.installation), undefined, JSON.stringify(h.installations));
    assert.equal(existsSync(path.join(gw.stateDir, 'installations.json')), false);
  });
});

// ---------------------------------------------------------------------------
describe('scheduled triggers and the system token', () => {
  let sim;
  let gw;
  const sub = makeSubscriberKey('hs256');

  before(async () => {
    sim = await newSim();
    // debug: the most verbose log there is must still not show the token
    gw = await gatewayFor(sim, { sub: await sub, args: ['--log-level', 'debug'] });
  });

  test('token kept per installation: valid (4 h), expiring (1 h), expired; rules run on the interval', async () => {
    const keys = { sub: await sub };
    const [a, b, c] = [sim.as({ installation: newInstallation() }), sim.as({ installation: newInstallation() }), sim.as({ installation: newInstallation() })];
    const reader = await user(gw, keys, { installation: a.installation, sub: 'digest-reader', ctx: ['forge:digest'] });
    const h0 = await health(gw);

    assertDelivered(await a.schedule(gw, { interval: 'hour', systemTokenTtl: '4h' }), 'the hour trigger');
    assertDelivered(await b.schedule(gw, { interval: 'hour', systemTokenTtl: '1h' }), 'the hour trigger');
    assertDelivered(await c.schedule(gw, { interval: 'day', systemTokenTtl: '-5m' }), 'the day trigger');

    const h = await health(gw);
    const ia = installationOf(h, a.installation);
    const ib = installationOf(h, b.installation);
    const ic = installationOf(h, c.installation);
    assert.ok(ia && ib && ic, JSON.stringify(h.installations));
    assert.equal(ia.systemToken, 'valid');
    assert.equal(ib.systemToken, 'expiring');
    assert.equal(ic.systemToken, 'expired');
    const expIn = (Date.parse(ia.systemTokenExp) - Date.now()) / 1000;
    assert.ok(expIn > 3.5 * 3600 && expIn <= 4 * 3600 + 60, `systemTokenExp ${ia.systemTokenExp}`);
    assert.equal(counter(h, 'scheduled_invocations'), counter(h0, 'scheduled_invocations') + 3);

    // hourly-digest (events: ["scheduled:hour"]) ran for installation a.
    const [n] = await reader.waitNotifications(1);
    const claims = claimsOf(n);
    assert.equal(claims.n.rule, 'hourly-digest');
    assert.equal(claims.installation, a.installation);
    assert.equal(claims.n.title, 'Hourly digest (hour)');
  });

  test('a newer token replaces the older one; none without the header', async () => {
    const d = sim.as({ installation: newInstallation() });
    assertDelivered(await d.schedule(gw, { interval: 'fiveMinute', systemTokenTtl: '-1h' }));
    assert.equal(installationOf(await health(gw), d.installation).systemToken, 'expired');
    assertDelivered(await d.schedule(gw, { interval: 'fiveMinute', systemTokenTtl: '3h' }));
    assert.equal(installationOf(await health(gw), d.installation).systemToken, 'valid');
    const e = sim.as({ installation: newInstallation() });
    assertDelivered(await e.schedule(gw, { interval: 'week' }));
    const ie = installationOf(await health(gw), e.installation);
    assert.ok(!ie || ie.systemToken === 'none', JSON.stringify(ie));
  });

  test('a system token without exp counts as 2 h from now (expiring)', async () => {
    const g = sim.as({ installation: newInstallation() });
    const token = await new jose.SignJWT({ sub: 'app-system-user' })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .sign(new TextEncoder().encode(randomUUID() + randomUUID()));
    assertDelivered(await g.schedule(gw, { interval: 'hour', headers: [`x-forge-oauth-system: ${token}`] }));
    const i = installationOf(await health(gw), g.installation);
    assert.equal(i?.systemToken, 'expiring', JSON.stringify(i));
    const left = (Date.parse(i.systemTokenExp) - Date.now()) / 1000;
    assert.ok(left > 7000 && left <= 7200 + 60, `systemTokenExp ${i.systemTokenExp}`);
  });

  test('several runs of one trigger are all accepted (not taken for redeliveries)', async () => {
    const f = sim.as({ installation: newInstallation() });
    const r = await f.schedule(gw, { interval: 'hour', every: '20ms', count: 3, systemTokenTtl: '4h' });
    assertDelivered(r);
    assert.ok(r.attempts.every((x) => x.status === 202 && x.answer?.status === 'accepted'), r.stdout);
  });

  test('the system token never appears in the log (debug level)', async () => {
    const g = sim.as({ installation: newInstallation() });
    const t = Math.floor(Date.now() / 1000);
    const token = await new jose.SignJWT({ sub: 'app-system-user', iat: t, exp: t + 4 * 3600, marker: randomUUID() })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .sign(new TextEncoder().encode(randomUUID() + randomUUID()));
    assertDelivered(await g.schedule(gw, { interval: 'hour', headers: [`x-forge-oauth-system: ${token}`] }));
    assert.equal(installationOf(await health(gw), g.installation)?.systemToken, 'valid');
    // Also the simulator's own tokens (sent by the earlier tests).
    const [hdr, payload, sig] = token.split('.');
    for (const part of [token, payload, sig]) assert.ok(!gw.stderr.includes(part), `token part in the log: ${part.slice(0, 16)}...`);
    assert.ok(hdr);
    assert.doesNotMatch(gw.stderr, /x-forge-oauth-system:\s*\S/i);
    assert.doesNotMatch(gw.stderr, /forge-sim-app-system-user/, 'a decoded simulator system token is logged');
    // ... and not in the state dir either.
    for (const f of readdirSync(gw.stateDir)) {
      const p = path.join(gw.stateDir, f);
      if (statSync(p).isFile()) assert.ok(!readFileSync(p, 'utf8').includes(sig), `token in ${f}`);
    }
  });

  test('a missing or unknown interval is refused with 400; the FIT is still required', async () => {
    const h = sim.as({ installation: newInstallation() });
    for (const p of ['/forge/scheduled', '/forge/scheduled/minute']) {
      const r = await h.schedule(gw, { interval: 'hour', path: p, retries: 0 });
      assert.equal(r.code, 1, r.stdout);
      assert.equal(r.attempts[0].status, 400, r.stdout);
    }
    const r = await h.schedule(gw, { interval: 'hour', noFit: true, retries: 0 });
    assert.equal(r.attempts[0].status, 401, r.stdout);
    // ?interval= and a body member "interval" are accepted too.
    assertDelivered(await h.schedule(gw, { interval: 'hour', path: '/forge/scheduled?interval=hour' }));
    const bodyFile = h.eventFile({ interval: 'day' }, `sched-body-${process.pid}.json`);
    assertDelivered(await h.schedule(gw, { interval: 'day', path: '/forge/scheduled', body: bodyFile }));
  });

  test('issue #4 wording: a rule with `schedule: hour` loads, runs on scheduled:hour only, and a bad interval is refused', async () => {
    const file = fixture('forge-rules-schedule-key.yml');
    const r = await runCli(['rules', 'check', file]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /1 rule, ok/, r.stdout);
    const dir = tempDir('ngw-schedule-key-');
    try {
      const ev = path.join(dir, 'scheduled.json');
      writeFileSync(ev, JSON.stringify({ interval: 'hour' }));
      const hour = await runCli(['rules', 'test', '--format', 'json', '--event-type', 'scheduled:hour', file, ev]);
      assert.equal(hour.code, 0, hour.stdout + hour.stderr);
      assert.match(hour.stdout, /hourly-digest/, hour.stdout);
      assert.match(hour.stdout, /Hourly digest/, hour.stdout);
      const day = await runCli(['rules', 'test', '--format', 'json', '--event-type', 'scheduled:day', file, ev]);
      assert.equal(day.code, 0, day.stdout + day.stderr);
      assert.doesNotMatch(day.stdout, /Hourly digest/, day.stdout);
      const bad = path.join(dir, 'bad.yml');
      writeFileSync(bad, readFileSync(file, 'utf8').replace('schedule: hour', 'schedule: minute'));
      const b = await runCli(['rules', 'check', bad]);
      assert.notEqual(b.code, 0, b.stdout + b.stderr);
      assert.match(b.stderr + b.stdout, /invalid schedule; expected fiveMinute, hour, day or week/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------
describe('redelivery: exactly one notification', () => {
  let sim;
  let gw;
  let keys;

  before(async () => {
    sim = await newSim();
    keys = { sub: await makeSubscriberKey('hs256') };
    gw = await gatewayFor(sim, { sub: keys.sub });
  });

  /** Sends a barrier event to assignee and waits for it: anything the earlier events could produce has arrived. */
  async function barrier(client, assignee, key) {
    assertDelivered(await sim.send(gw, [bugEvent({ key, assignee, summary: 'barrier' })]), 'the barrier');
    await client.waitFor((f) => f.op === 'notification' && claimsOf(f).n.description === 'barrier', { what: 'the barrier notification', timeout: 10000 });
  }

  test('after a 503 (intake paused with SIGUSR1): the retry is accepted, one notification', async () => {
    const assignee = uniqueUser('p');
    const c = await user(gw, keys, { installation: sim.installation, sub: assignee, ctx: [ctxOf('RD-1'), ctxOf('RD-1B')] });
    const h0 = await health(gw);

    gw.signal('SIGUSR1');
    await waitHealth(gw, (h) => h.intake === 'paused', 'intake paused');
    const run = sim.startSend(gw, [bugEvent({ key: 'RD-1', assignee, summary: 'paused then resumed' })], { retryDelay: '1500ms' });
    const first = await run.waitLine(/ attempt=1 status=/);
    assert.match(first, / status=503 /, first);
    assert.match(first, /"paused"/, first);
    gw.signal('SIGUSR1');
    await waitHealth(gw, (h) => h.intake === 'open', 'intake open');
    const r = await run.done;
    assertDelivered(r);
    const last = r.attempts.at(-1);
    assert.equal(last.status, 202);
    assert.equal(last.answer?.status, 'accepted');
    assert.equal(last.retryReason, 'INVALID_REMOTE_INVOCATION_ERROR');

    await barrier(c, assignee, 'RD-1B');
    const mine = c.notificationClaims().filter((x) => x.n.description === 'paused then resumed');
    assert.equal(mine.length, 1, c.dump());

    const h = await health(gw);
    assert.ok(counter(h, 'events_rejected_paused') > counter(h0, 'events_rejected_paused'));
    assert.equal(counter(h, 'forge_retries_INVALID_REMOTE_INVOCATION_ERROR'),
      counter(h0, 'forge_retries_INVALID_REMOTE_INVOCATION_ERROR') + r.attempts.filter((x) => x.retryReason === 'INVALID_REMOTE_INVOCATION_ERROR' && x.status === 202).length);
    // Every log line about this event carries its trace id.
    const trace = r.attempts[0].trace;
    const lines = gw.stderr.split('\n').filter((l) => l.includes(trace));
    assert.ok(lines.length >= 2, `log lines with trace ${trace}:\n${gw.stderr}`);
    // (log lines are `TIME LEVEL message`; event records start with "event ")
    const eventLines = gw.stderr.split('\n').filter((x) => /^\S+ \w+ event /.test(x));
    assert.ok(eventLines.length > 0, gw.stderr);
    for (const l of eventLines) assert.match(l, /trace=[0-9a-f]+/, l);
  });

  test('after the simulator timed out (gateway stopped): the retry is a duplicate, one notification', async () => {
    const assignee = uniqueUser('t');
    const c = await user(gw, keys, { installation: sim.installation, sub: assignee, ctx: [ctxOf('RD-2'), ctxOf('RD-2B')] });
    const h0 = await health(gw);

    // SIGSTOP: the kernel still accepts the connection and buffers the
    // request; the simulator gives up after its timeout. SIGCONT: the
    // gateway reads the request and accepts the event; nobody hears the 202.
    gw.signal('SIGSTOP');
    let run;
    try {
      run = sim.startSend(gw, [bugEvent({ key: 'RD-2', assignee, summary: 'timed out once' })], { timeout: '300ms', retryDelay: '1500ms' });
      const first = await run.waitLine(/ attempt=1 status=/);
      assert.match(first, / status=timeout /, first);
    } finally {
      gw.signal('SIGCONT');
    }
    const r = await run.done;
    assertDelivered(r);
    assert.equal(r.attempts[1].retryReason, 'TIMEOUT_ERROR');
    assert.equal(r.attempts[1].retryCount, 1);

    await barrier(c, assignee, 'RD-2B');
    const mine = c.notificationClaims().filter((x) => x.n.description === 'timed out once');
    assert.equal(mine.length, 1, c.dump());

    const h = await health(gw);
    assert.ok(counter(h, 'forge_retries_TIMEOUT_ERROR') > counter(h0, 'forge_retries_TIMEOUT_ERROR'), JSON.stringify(h.counters));
    // The first attempt reached the gateway and was accepted, so the retry
    // must have been recognised as a redelivery.
    assert.equal(r.attempts[1].answer?.status, 'duplicate', r.stdout);
    assert.equal(counter(h, 'events_duplicate'), counter(h0, 'events_duplicate') + 1);
  });

  test('a redelivery with members in another order is still a duplicate; a different event is not', async () => {
    const assignee = uniqueUser('o');
    const c = await user(gw, keys, { installation: sim.installation, sub: assignee, ctx: [ctxOf('RD-3'), ctxOf('RD-3B')] });
    const ev = bugEvent({ key: 'RD-3', assignee, summary: 'reordered' });
    assertDelivered(await sim.send(gw, [ev]));
    // What Forge would send on a retry, with the members reversed.
    const reordered = Object.fromEntries(Object.entries(ev).reverse());
    reordered.retryContext = { retryCount: 1, retryReason: 'TIMEOUT_ERROR', retryData: null };
    const r = await sim.send(gw, [reordered]);
    assertDelivered(r);
    assert.equal(r.attempts[0].answer?.status, 'duplicate', r.stdout);
    await barrier(c, assignee, 'RD-3B');
    assert.equal(c.notificationClaims().filter((x) => x.n.description === 'reordered').length, 1, c.dump());
  });
});

// ---------------------------------------------------------------------------
describe('installations are isolated', () => {
  test('same accountId and context in two installations: each user gets only their own', async () => {
    const simA = await newSim();
    const simB = simA.as({ installation: newInstallation() });
    const keys = { sub: await makeSubscriberKey('hs256') };
    const gw = await gatewayFor(simA, { sub: keys.sub });
    const accountId = uniqueUser('same');
    const ctx = ctxOf('ISO-1');
    const ca = await user(gw, keys, { installation: simA.installation, sub: accountId, ctx: [ctx], name: 'user@A' });
    const cb = await user(gw, keys, { installation: simB.installation, sub: accountId, ctx: [ctx], name: 'user@B' });

    // The very same event from both installations (must not be taken for a redelivery either).
    const same = bugEvent({ key: 'ISO-1', assignee: accountId, summary: 'identical' });
    assertDelivered(await simA.send(gw, [same]));
    await ca.waitNotifications(1);
    const rb = await simB.send(gw, [same]);
    assertDelivered(rb);
    assert.equal(rb.attempts[0].answer?.status, 'accepted', 'the same event from another installation is not a duplicate');
    await cb.waitNotifications(1);
    assertDelivered(await simA.send(gw, [bugEvent({ key: 'ISO-1', assignee: accountId, summary: 'A2' })]));
    await ca.waitNotifications(2);
    assertDelivered(await simB.send(gw, [bugEvent({ key: 'ISO-1', assignee: accountId, summary: 'B2' })]));
    await cb.waitNotifications(2);
    await ca.roundTrip();
    await cb.roundTrip();

    const na = ca.notificationClaims();
    const nb = cb.notificationClaims();
    assert.deepEqual(na.map((x) => x.n.description), ['identical', 'A2'], ca.dump());
    assert.deepEqual(nb.map((x) => x.n.description), ['identical', 'B2'], cb.dump());
    assert.ok(na.every((x) => x.installation === simA.installation && x.sub === accountId && x.ctx === ctx));
    assert.ok(nb.every((x) => x.installation === simB.installation));
    assert.deepEqual(na.map((x) => x.seq), [1, 2], 'seq counts per (installation, user)');
    assert.deepEqual(nb.map((x) => x.seq), [1, 2], 'seq counts per (installation, user)');
  });

  test('a subscription token without "installation" is refused', async () => {
    const sim = await newSim();
    const keys = { sub: await makeSubscriberKey('hs256') };
    const gw = await gatewayFor(sim, { sub: keys.sub });
    const token = await mintSub(keys, { sub: uniqueUser(), ctx: ['x'], omit: ['installation'] });
    const c = await WsClient.open(gw.wsUrl, { name: 'no-installation' });
    cleanups.push(() => c.close());
    c.send({ op: 'connect', token });
    const err = await c.waitOp('error');
    assert.equal(err.code, 'token_bad_claims');
    const closed = await c.waitClose();
    assert.equal(closed.code, 1008);
  });
});

// ---------------------------------------------------------------------------
describe('FITs the gateway must refuse', () => {
  let sim;
  let gw;
  let keys;

  before(async () => {
    sim = await newSim();
    keys = { sub: await makeSubscriberKey('hs256') };
    gw = await gatewayFor(sim, { sub: keys.sub });
  });

  test('a FIT for another app: 401 on every attempt, Forge retries with INVALID_FORGE_INVOCATION_TOKEN, nothing delivered', async () => {
    const assignee = uniqueUser('x');
    const c = await user(gw, keys, { installation: sim.installation, sub: assignee, ctx: [ctxOf('FIT-1'), ctxOf('FIT-1B')] });
    const h0 = await health(gw);
    const other = sim.as({ appId: newApp() });
    const r = await other.send(gw, [bugEvent({ key: 'FIT-1', assignee, summary: 'wrong app' })], { retryDelay: '50ms' });
    assert.equal(r.code, 1, r.stdout);
    assert.equal(r.attempts.length, 5, 'one delivery and 4 retries');
    for (const a of r.attempts) {
      assert.equal(a.status, 401, r.stdout);
      assert.equal(a.answer?.error, 'token_bad_audience', r.stdout);
    }
    assert.deepEqual(r.attempts.slice(1).map((a) => a.retryReason), Array(4).fill('INVALID_FORGE_INVOCATION_TOKEN'));
    assert.equal(Object.values(r.finals)[0].outcome, 'failed');
    const h1 = await health(gw);
    assert.equal(counter(h1, 'events_rejected_token'), counter(h0, 'events_rejected_token') + 5);
    assert.equal(counter(h1, 'events_accepted'), counter(h0, 'events_accepted'));

    // The barrier (right app) arrives; the refused event never does.
    assertDelivered(await sim.send(gw, [bugEvent({ key: 'FIT-1B', assignee, summary: 'barrier' })]));
    await c.waitNotifications(1);
    await c.roundTrip();
    assert.deepEqual(c.notificationClaims().map((x) => x.n.description), ['barrier'], c.dump());
  });

  test('other invalid FITs: unknown key, expired, no installation, none at all -> 401 with the right code', async () => {
    const stranger = await newSim({ appId: sim.appId, installation: sim.installation }); // another RSA key
    const cases = [
      [stranger, {}, 'token_unknown_kid'],
      [sim, { fitTtl: '-10m' }, 'token_expired'],
      [sim.as({ installation: '' }), {}, 'token_bad_claims'],
      [sim, { noFit: true }, 'token_missing'],
    ];
    for (const [s, opts, code] of cases) {
      const r = await s.send(gw, [bugEvent({ key: 'FIT-2', assignee: uniqueUser() })], { retries: 0, ...opts });
      assert.equal(r.code, 1, r.stdout);
      assert.equal(r.attempts[0].status, 401, r.stdout);
      assert.equal(r.attempts[0].answer?.error, code, r.stdout);
    }
  });

  test('a redelivery after a 401 that now validates is counted by its reason', async () => {
    const h0 = await health(gw);
    const ev = bugEvent({ key: 'FIT-3', assignee: uniqueUser() });
    ev.retryContext = { retryCount: 1, retryReason: 'INVALID_FORGE_INVOCATION_TOKEN', retryData: null };
    assertDelivered(await sim.send(gw, [ev]));
    const h1 = await health(gw);
    assert.equal(counter(h1, 'forge_retries_INVALID_FORGE_INVOCATION_TOKEN'), counter(h0, 'forge_retries_INVALID_FORGE_INVOCATION_TOKEN') + 1);
    const ev2 = bugEvent({ key: 'FIT-4', assignee: uniqueUser() });
    ev2.retryContext = { retryCount: 2, retryReason: 'SOMETHING_NEW', retryData: null };
    assertDelivered(await sim.send(gw, [ev2]));
    const h2 = await health(gw);
    assert.equal(counter(h2, 'forge_retries_other'), counter(h1, 'forge_retries_other') + 1);
  });
});

