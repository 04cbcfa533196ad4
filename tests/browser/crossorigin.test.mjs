// Cross-origin, as a Forge Custom UI iframe is: a page served by a second
// static server (another origin than the gateway) gets its token from the
// gateway's /forge/subscription (FIT from forge-sim, CORS for the page's
// origin), fetches the JWKS across origins, verifies and shows
// notifications - in chromium and in firefox. The page is the example Forge
// app's background script with the stand-in bridge (lib/forge-app.mjs).
// JWKS unreachable for a while (chromium): nothing is shown unverified, all
// is shown once it is back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import puppeteer from 'puppeteer-core';
import { Gateway, launchBrowser, request, sleep, tempDir, adminStatus } from './lib/harness.mjs';
import { buildExample, simKeys, staticServer, simSend, bugCreated, APP_ID } from './lib/forge-app.mjs';

const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';

let example;
let keys;
let gw;
let site;
let chromium;
before(async () => {
  example = await buildExample();
  keys = simKeys();
  site = await staticServer(example.standInBuild, keys.dir);
  gw = await Gateway.start({ args: ['--forge-jwks', keys.jwks, '--forge-app-id', APP_ID, '--cors-allowed-origins', site.url] });
  chromium = await launchBrowser();
});
after(async () => {
  await chromium?.close();
  await gw?.stop();
  await site?.close();
  for (const d of [example?.dir, keys?.dir]) if (d) rmSync(d, { recursive: true, force: true });
});

const pageUrl = (user, issue) => `${site.url}/index.html?${new URLSearchParams({ user, issue, gateway: gw.url })}`;

async function subscriptions() {
  return (await adminStatus(gw)).json.connections.subscriptions;
}
async function waitSubscriptions(n, timeout = 10000) {
  const deadline = Date.now() + timeout;
  while ((await subscriptions()) < n) {
    if (Date.now() > deadline) throw new Error(`fewer than ${n} subscriptions`);
    await sleep(50);
  }
}
// A closed page's websocket leaves the gateway's count a little later: the
// next test's baseline must not include it.
async function waitClosed(n, timeout = 10000) {
  const deadline = Date.now() + timeout;
  while ((await subscriptions()) > n) {
    if (Date.now() > deadline) throw new Error(`more than ${n} subscriptions after close`);
    await sleep(50);
  }
}

test('chromium: another origin gets a token, verifies, shows; the origins really differ', async () => {
  const base = await subscriptions();
  const page = await chromium.context.newPage();
  await page.goto(pageUrl('xo-chrome', 'XO-1'), { waitUntil: 'load', timeout: 15000 });
  assert.notEqual(new URL(site.url).origin, new URL(gw.url).origin);
  await waitSubscriptions(base + 1);
  await simSend(keys.dir, gw.url, [bugCreated({ assignee: 'xo-chrome', key: 'XO-1', summary: 'Across origins' })]);
  await page.waitForFunction(() => window.standIn.flags.some((f) => f.title === 'New bug XO-1'), null, { timeout: 10000 });
  await page.close();
  await waitClosed(base);
});

test('chromium: JWKS unreachable for a while - none shown unverified, each shown once when it is back', async () => {
  const base = await subscriptions();
  const page = await chromium.context.newPage();
  let blocked = 0;
  await page.route(`${gw.url}/.well-known/jwks.json`, (route) => {
    blocked++;
    return route.abort('connectionrefused');
  });
  await page.goto(pageUrl('xo-jwks', 'XO-2'), { waitUntil: 'load', timeout: 15000 });
  await waitSubscriptions(base + 1);
  await simSend(keys.dir, gw.url, [bugCreated({ assignee: 'xo-jwks', key: 'XO-2', summary: 'Held' })]);
  const deadline = Date.now() + 10000;
  while (blocked < 3 && Date.now() < deadline) await sleep(100);
  assert.ok(blocked >= 3, `JWKS fetches retried while down (${blocked})`);
  assert.equal(await page.evaluate(() => window.standIn.flags.length), 0, 'nothing shown unverified');
  await page.unroute(`${gw.url}/.well-known/jwks.json`);
  await page.waitForFunction(() => window.standIn.flags.length >= 2, null, { timeout: 35000 });
  await sleep(300);
  const titles = await page.evaluate(() => window.standIn.flags.map((f) => f.title));
  assert.deepEqual(titles.sort(), ['New bug XO-2', 'XO-2 created: Held'], 'each once');
  await page.close();
  await waitClosed(base);
});

test('firefox: another origin gets a token, verifies with Firefox WebCrypto, shows', { skip: !existsSync(FIREFOX) && `${FIREFOX} not installed` }, async () => {
  const profile = tempDir('ngw-firefox-xo-');
  const browser = await puppeteer.launch({
    browser: 'firefox', executablePath: FIREFOX, headless: true, userDataDir: profile, protocolTimeout: 30000,
    extraPrefsFirefox: { 'app.update.enabled': false, 'network.captive-portal-service.enabled': false, 'network.connectivity-service.enabled': false },
  });
  try {
    const base = await subscriptions();
    const page = await browser.newPage();
    const logs = [];
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    await page.goto(pageUrl('xo-firefox', 'XO-3'), { waitUntil: 'load', timeout: 15000 });
    await waitSubscriptions(base + 1);
    await simSend(keys.dir, gw.url, [bugCreated({ assignee: 'xo-firefox', key: 'XO-3', summary: 'In Firefox' })]);
    await page.waitForFunction(() => window.standIn.flags.some((f) => f.title === 'New bug XO-3'), { timeout: 10000 });
    const flag = await page.evaluate(() => {
      const f = window.standIn.flags.find((x) => x.title === 'New bug XO-3');
      return { type: f.type, description: f.description, invocations: window.standIn.invocations };
    });
    assert.deepEqual(flag, { type: 'warning', description: 'In Firefox', invocations: [{ path: '/forge/subscription', status: 200 }] });
    assert.deepEqual(logs.filter((l) => /dropped|CORS|Cross-Origin/i.test(l)), []);
    await page.close();
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
});
