// The demo page in Firefox (Debian's firefox-esr, driven by puppeteer-core
// over WebDriver BiDi): the same page and client as in chromium load under
// the strict CSP, verify the batch JWS and the Merkle inclusion proof with
// Firefox's WebCrypto and show the flag for the addressed user only
// (tampering is covered in chromium). Skipped (with a message) only when
// firefox-esr is not installed; the project's setup installs it
// (scripts/setup.sh --with-browser).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import puppeteer from 'puppeteer-core';
import { Gateway, fireEvent, issueCreated, tempDir } from './lib/harness.mjs';

const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';
const haveFirefox = existsSync(FIREFOX);

let gw;
let browser;
let profile;
before(async () => {
  if (!haveFirefox) return;
  gw = await Gateway.start();
  profile = tempDir('ngw-firefox-');
  browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    userDataDir: profile,
    protocolTimeout: 30000,
    extraPrefsFirefox: {
      // no traffic beyond the gateway on this closed network
      'app.update.enabled': false,
      'browser.safebrowsing.malware.enabled': false,
      'browser.safebrowsing.phishing.enabled': false,
      'network.captive-portal-service.enabled': false,
      'network.connectivity-service.enabled': false,
    },
  });
});
after(async () => {
  await browser?.close();
  await gw?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function open(user, issue = 'SP-10') {
  const page = await browser.newPage();
  page.logs = [];
  page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}`));
  await page.goto(`${gw.url}/?user=${user}&issue=${issue}`, { waitUntil: 'load', timeout: 15000 });
  await page.waitForFunction(() => document.body.dataset.notifyState === 'open', { timeout: 10000 });
  return page;
}

const flagTitles = (page) =>
  page.evaluate(() => [...document.querySelectorAll('#flags .flag .flag__title')].map((e) => e.textContent));

test('firefox: the flag appears for the addressed user only, verified, under the CSP', { skip: !haveFirefox && `${FIREFOX} not installed` }, async () => {
  const alice = await open('alice');
  const bob = await open('bob');
  const res = await fireEvent(gw.port, issueCreated({ assignee: 'alice', summary: 'Seen in Firefox', type: 'Bug' }));
  assert.equal(res.status, 202, res.text);
  await alice.waitForFunction(
    () => [...document.querySelectorAll('#flags .flag .flag__title')].some((e) => e.textContent.includes('SP-10')),
    { timeout: 10000 },
  );
  const titles = await flagTitles(alice);
  assert.ok(titles.some((t) => t.includes('New bug SP-10')), titles.join(' | '));
  const flagInfo = await alice.evaluate(() => {
    const f = [...document.querySelectorAll('#flags .flag')].find((e) => e.textContent.includes('New bug SP-10'));
    return { role: f.getAttribute('role'), link: f.querySelector('a')?.getAttribute('href') };
  });
  assert.equal(flagInfo.role, 'alert'); // a warning
  // the demo maps Jira's /browse/KEY to its own issue view
  assert.equal(new URL(flagInfo.link).search, '?user=alice&issue=SP-10');
  const st = await alice.evaluate(() => window.notifyDemo.stats());
  assert.equal(st.rejectedTotal, 0, JSON.stringify(st));
  // bob's page got nothing: a later notification for bob is his first
  await fireEvent(gw.port, issueCreated({ assignee: 'bob', summary: 'for bob', type: 'Bug' }));
  await bob.waitForFunction(
    () => document.querySelectorAll('#flags .flag').length > 0,
    { timeout: 10000 },
  );
  const bobTitles = await flagTitles(bob);
  assert.ok(bobTitles.every((t) => !t.includes('Seen in Firefox')), bobTitles.join(' | '));
  const bad = [...alice.logs, ...bob.logs].filter((l) => /Content-Security-Policy|Content Security Policy|error/i.test(l));
  assert.deepEqual(bad, []);
  await alice.close();
  await bob.close();
});

test('firefox: a page that was away resumes (sessionStorage), the missed notifications are flagged once, the bell counts and clears', { skip: !haveFirefox && `${FIREFOX} not installed` }, async () => {
  const page = await open('ffresume');
  await fireEvent(gw.port, issueCreated({ assignee: 'ffresume', summary: 'Before leaving' }));
  await page.waitForFunction(() => document.body.dataset.notifyUnread === '1', { timeout: 10000 });
  const url = page.url();
  await page.goto('about:blank');
  for (const s of ['Missed 1', 'Missed 2']) await fireEvent(gw.port, issueCreated({ assignee: 'ffresume', summary: s }));
  await page.goto(url, { waitUntil: 'load', timeout: 15000 });
  await page.waitForFunction(() => document.body.dataset.notifyState === 'open', { timeout: 10000 });
  await page.waitForFunction(() => window.notifyDemo.stats().replayed === 2 && document.body.dataset.notifyUnread === '3', { timeout: 10000 });
  const titles = await flagTitles(page);
  assert.deepEqual(titles.filter((t) => /Missed|Before leaving/.test(t)).map((t) => t.replace(/^.*created: /, '')).sort(), ['Missed 1', 'Missed 2']);
  await page.click('#bell');
  await page.waitForFunction(() => document.querySelectorAll('#inbox-list .inbox-item').length === 3, { timeout: 10000 });
  await page.click('#inbox-mark-all');
  await page.waitForFunction(() => document.body.dataset.notifyUnread === '0', { timeout: 10000 });
  const st = await page.evaluate(() => window.notifyDemo.stats());
  assert.equal(st.rejectedTotal, 0, JSON.stringify(st));
  assert.equal(st.duplicates, 0, JSON.stringify(st));
  await page.close();
});
