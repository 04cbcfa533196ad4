// examples/forge-app: the manifest passes Atlassian's own validator
// (@forge/manifest, full validation, after the real build of the Custom UI
// resource), and the background script works in chromium: bundled from its
// source with a stand-in for @forge/bridge (fixtures/forge-bridge-stand-in.js)
// whose invokeRemote calls the REAL gateway's /forge/subscription with FITs
// from forge-sim, from a page on another origin. Flags go through showFlag,
// actions through router.navigate; another user sees nothing; a view with no
// issue subscribes to nothing. The validator's output is written to
// $GW_MANIFEST_REPORT when set.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { validate } from '@forge/manifest';
import { Gateway, launchBrowser, SOURCE_DIR, request, sleep, adminStatus } from './lib/harness.mjs';
import { buildExample, simKeys, staticServer, simSend, bugCreated, APP_ID, EXAMPLE_DIR } from './lib/forge-app.mjs';

let example;
let keys;
let gw;
let site;
let browser;
before(async () => {
  example = await buildExample();
  keys = simKeys();
  site = await staticServer(example.standInBuild, keys.dir);
  gw = await Gateway.start({
    args: ['--forge-jwks', keys.jwks, '--forge-app-id', APP_ID, '--cors-allowed-origins', site.url],
  });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await gw?.stop();
  await site?.close();
  for (const d of [example?.dir, keys?.dir]) if (d) rmSync(d, { recursive: true, force: true });
});

test('manifest.yml passes @forge/manifest full validation (with the built resource)', async () => {
  const cwd = process.cwd();
  process.chdir(example.dir); // the validator resolves resource paths from the app directory
  let result;
  try {
    result = await validate(false, path.join(example.dir, 'manifest.yml'));
  } finally {
    process.chdir(cwd);
  }
  const out = { success: result.success, errors: result.errors || [] };
  console.log(`@forge/manifest validate(examples/forge-app/manifest.yml): ${JSON.stringify(out)}`);
  if (process.env.GW_MANIFEST_REPORT) writeFileSync(process.env.GW_MANIFEST_REPORT, JSON.stringify(out, null, 2));
  assert.deepEqual(out.errors.filter((e) => e.level === 'error'), []);
  assert.equal(result.success, true);
  // The pieces the docs promise are there.
  const modules = result.manifestObject.typedContent.modules;
  assert.equal(modules['jira:issueViewBackgroundScript'][0].resolver.endpoint, 'notify-subscription');
  assert.equal(modules['jira:globalBackgroundScript'][0].resolver.endpoint, 'notify-subscription');
  assert.ok(modules.trigger.some((t) => t.filter?.ignoreSelf === true));
  assert.equal(modules.endpoint.find((e) => e.key === 'notify-subscription').route.path, '/forge/subscription');
  // The copy of notify-client.js in the example is the library, not a fork.
  assert.equal(readFileSync(path.join(EXAMPLE_DIR, 'static/notifications/src/notify-client.js'), 'utf8'),
    readFileSync(path.join(SOURCE_DIR, 'web-demo/lib/notify-client.js'), 'utf8'));
});

async function waitSubscriptions(n, timeout = 10000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const h = await adminStatus(gw);
    if (h.json.connections.subscriptions >= n) return;
    if (Date.now() > deadline) throw new Error(`${h.json.connections.subscriptions} subscriptions, expected ${n}`);
    await sleep(50);
  }
}

async function openApp(query) {
  const page = await browser.context.newPage();
  page.logs = [];
  page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => page.logs.push(`pageerror: ${e.message}`));
  await page.goto(`${site.url}/index.html?${new URLSearchParams({ ...query, gateway: gw.url })}`, { waitUntil: 'load', timeout: 15000 });
  return page;
}

test('the issue-view background script: token via invokeRemote, verified notifications as showFlag flags', async () => {
  const alice = await openApp({ user: 'alice-acct', issue: 'SP-10' });
  const bob = await openApp({ user: 'bob-acct', issue: 'SP-10' });
  for (const p of [alice, bob]) {
    await p.waitForFunction(() => window.standIn.invocations.length >= 1, null, { timeout: 10000 });
  }
  assert.deepEqual(await alice.evaluate(() => window.standIn.invocations), [{ path: '/forge/subscription', status: 200 }]);
  // Both scripts connected and subscribed (the gateway counts subscriptions) before the event.
  await waitSubscriptions(2);
  const out = await simSend(keys.dir, gw.url, [bugCreated({ assignee: 'alice-acct', summary: 'Crash on save' })]);
  assert.match(out, /status=202/);
  await alice.waitForFunction(() => window.standIn.flags.length >= 2, null, { timeout: 10000 });
  const flags = await alice.evaluate(() => window.standIn.flags.map((f) => ({ ...f, actions: f.actions.map((a) => a.text) })));
  const bug = flags.find((f) => f.title === 'New bug SP-10');
  assert.equal(bug.type, 'warning');
  assert.equal(bug.isAutoDismiss, false, 'warnings stay');
  assert.equal(bug.description, 'Crash on save');
  assert.deepEqual(bug.actions, ['Open']);
  assert.equal(typeof bug.id, 'string');
  const info = flags.find((f) => f.title === 'SP-10 created: Crash on save');
  assert.equal(info.type, 'info');
  assert.equal(info.isAutoDismiss, true);
  // The action navigates with the bridge's router.
  await alice.evaluate(() => window.standIn.flags.find((f) => f.title === 'New bug SP-10').actions[0].onClick());
  assert.deepEqual(await alice.evaluate(() => window.standIn.navigated), ['/browse/SP-10']);
  // Each notification once; bob saw none of alice's.
  const ids = flags.map((f) => f.id);
  assert.equal(new Set(ids).size, ids.length);
  assert.deepEqual(await bob.evaluate(() => window.standIn.flags.length), 0);
  assert.deepEqual(alice.logs.filter((l) => /error|dropped/i.test(l)), []);
  await alice.close();
  await bob.close();
});

test('a view without an issue (global script on a dashboard): nothing to subscribe to, no error', async () => {
  const page = await openApp({ user: 'carol-acct' });
  await page.waitForFunction(() => window.standIn.invocations.length >= 1, null, { timeout: 10000 });
  assert.deepEqual(await page.evaluate(() => window.standIn.invocations), [{ path: '/forge/subscription', status: 403 }]);
  assert.ok(page.logs.some((l) => /nothing to subscribe to here \(no_context\)/.test(l)), page.logs.join('\n'));
  // (the browser itself logs the stand-in's fetch answered 403; Forge's proxy would not)
  assert.deepEqual(page.logs.filter((l) => /^error|pageerror/.test(l) && !/status of 403/.test(l)), []);
  await page.close();
});

// The example ships its own copy of the client (a Forge app's static folder
// must stand alone); it must never drift from web-demo/lib's.
test("the example's notify-client.js is the same file as web-demo/lib/notify-client.js", () => {
  const ours = readFileSync(path.join(SOURCE_DIR, 'web-demo/lib/notify-client.js'), 'utf8');
  const copy = readFileSync(path.join(EXAMPLE_DIR, 'static/notifications/src/notify-client.js'), 'utf8');
  assert.ok(ours.length > 1000);
  assert.equal(copy, ours, 'copy web-demo/lib/notify-client.js to examples/forge-app/static/notifications/src/');
});
