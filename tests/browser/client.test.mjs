// notify-client.js in chromium against the real gateway: an unreachable JWKS
// is its own state (not 'malformed'), retried with backoff, and nothing is
// shown unverified; once the JWKS is back every held notification is shown
// once. Per-context subscription state (subscribed, forbidden, recovered)
// as events and a getter. A token provider's exp drives the refresh.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, launchBrowser, openDemo, fireEvent, issueCreated, stats, sleep } from './lib/harness.mjs';

let gw;
let browser;
before(async () => {
  gw = await Gateway.start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await gw?.stop();
});

const flag = (page, title) => page.locator('#flags .flag', { has: page.locator('.flag__title', { hasText: title }) });

test('JWKS unreachable: held as keys_unavailable (not malformed), retried, none shown unverified; delivered once when back', async () => {
  // The JWKS fetch fails in the browser's network stack (the gateway itself is fine).
  const page = await openDemo(browser.context, gw.url, { user: 'jwks' });
  let blocked = 0;
  await page.route('**/.well-known/jwks.json', (route) => {
    blocked++;
    return route.abort('connectionrefused');
  });
  await page.evaluate(() => {
    window.keyEvents = [];
    window.notifyDemo.client.addEventListener('keys', (e) => window.keyEvents.push(e.detail.state));
  });
  const summaries = ['Held one', 'Held two', 'Held three'];
  for (const s of summaries) assert.equal((await fireEvent(gw.port, issueCreated({ assignee: 'jwks', summary: s }))).status, 202);
  await page.waitForFunction(() => window.notifyDemo.client.state === 'keys_unavailable', null, { timeout: 5000 });
  // Retried with backoff while down (500 ms, 1 s, 2 s ... with jitter).
  await page.waitForFunction(() => window.notifyDemo.client.stats.jwksFailures >= 3, null, { timeout: 10000 });
  let s = await stats(page);
  assert.equal(s.received, 3);
  assert.equal(s.delivered, 0, 'nothing delivered unverified');
  assert.equal(s.rejectedTotal, 0, 'not filed as malformed or unknown_kid');
  assert.equal(await page.locator('#flags .flag').count(), 0, 'no flag shown');
  assert.ok(blocked >= 3, `fetches attempted: ${blocked}`);
  assert.match(await page.locator('#demo-subscriptions').textContent(), /Cannot fetch the signing keys/);

  await page.unroute('**/.well-known/jwks.json');
  for (const t of summaries) await flag(page, `SP-10 created: ${t}`).waitFor({ timeout: 35000 });
  s = await stats(page);
  assert.equal(s.delivered, 3);
  assert.equal(s.rejectedTotal, 0);
  assert.equal(s.state, 'open');
  // In the order they were sent.
  const titles = await page.evaluate(() => window.notifyDemo.shown.map((x) => x.title));
  assert.deepEqual(titles, summaries.map((t) => `SP-10 created: ${t}`));
  const ev = await page.evaluate(() => window.keyEvents);
  assert.equal(ev[ev.length - 1], 'ok');
  assert.ok(ev.includes('unavailable'));
  await page.close();
});

test('a JWKS answering 500 is also keys_unavailable, never malformed', async () => {
  const page = await openDemo(browser.context, gw.url, { user: 'jwks500' });
  await page.route('**/.well-known/jwks.json', (route) => route.fulfill({ status: 500, body: 'down' }));
  await fireEvent(gw.port, issueCreated({ assignee: 'jwks500', summary: 'Five hundred' }));
  await page.waitForFunction(() => window.notifyDemo.client.stats.jwksFailures >= 2, null, { timeout: 10000 });
  assert.equal((await stats(page)).rejectedTotal, 0);
  assert.equal(await page.locator('#flags .flag').count(), 0);
  await page.unroute('**/.well-known/jwks.json');
  await flag(page, 'SP-10 created: Five hundred').waitFor({ timeout: 35000 });
  await page.close();
});

test('subscription state per context: subscribed, forbidden (the page can tell), recovered after a refresh', async () => {
  const page = await openDemo(browser.context, gw.url, { user: 'subs', extra: '&ttl=6' });
  await page.waitForFunction(() => Object.values(window.notifyDemo.client.subscriptions).every((v) => v === 'subscribed'), null, { timeout: 5000 });
  assert.deepEqual(await page.evaluate(() => window.notifyDemo.client.subscriptions), {
    'jira:issue:SP-10': 'subscribed',
    'forge:app': 'subscribed',
  });
  await page.evaluate(() => {
    window.subEvents = [];
    for (const t of ['subscribed', 'forbidden', 'recovered']) {
      window.notifyDemo.client.addEventListener(t, (e) => window.subEvents.push(`${t}:${e.detail.ctx}`));
    }
    // The current token does not cover it: ctx_forbidden.
    window.notifyDemo.client.subscribe('jira:issue:SP-77');
  });
  await page.waitForFunction(() => window.notifyDemo.client.subscriptionState('jira:issue:SP-77') === 'forbidden', null, { timeout: 5000 });
  assert.match(await page.locator('#demo-subscriptions').textContent(), /Not allowed: jira:issue:SP-77/);
  assert.equal(await page.evaluate(() => window.notifyDemo.client.subscribedToNothing), false);
  // The refreshed token (the demo asks for every wanted context) covers it.
  await page.waitForFunction(() => window.subEvents.includes('recovered:jira:issue:SP-77'), null, { timeout: 15000 });
  assert.deepEqual(await page.evaluate(() => window.subEvents), [
    'forbidden:jira:issue:SP-77',
    'subscribed:jira:issue:SP-77',
    'recovered:jira:issue:SP-77',
  ]);
  assert.equal(await page.evaluate(() => window.notifyDemo.client.subscriptionState('jira:issue:SP-77')), 'subscribed');
  assert.equal(await page.locator('#demo-subscriptions').textContent(), '');
  // Notifications for it arrive now.
  await fireEvent(gw.port, issueCreated({ assignee: 'subs', key: 'SP-77', summary: 'Recovered' }));
  await flag(page, 'SP-77 created: Recovered').waitFor({ timeout: 5000 });
  await page.close();
});

test('a client whose every context is refused says it is subscribed to nothing', async () => {
  const page = await openDemo(browser.context, gw.url, { user: 'nothing' });
  const res = await page.evaluate(async () => {
    const { NotifyClient } = await import('./lib/notify-client.js');
    // A token for one context, a client asking for another.
    const getToken = async () => (await fetch('/dev/token?sub=nothing&ctx=jira:issue:A-1')).json();
    const c = new NotifyClient({ getToken, contexts: ['jira:issue:B-2'] });
    const seen = [];
    c.addEventListener('forbidden', (e) => seen.push(e.detail.ctx));
    c.start();
    const t0 = Date.now();
    while (c.subscriptionState('jira:issue:B-2') !== 'forbidden' && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
    const out = { state: c.state, subs: c.subscriptions, nothing: c.subscribedToNothing, seen };
    c.stop();
    return out;
  });
  assert.deepEqual(res, { state: 'open', subs: { 'jira:issue:B-2': 'forbidden' }, nothing: true, seen: ['jira:issue:B-2'] });
  await page.close();
});

test("a token provider's {token, exp} drives the refresh (before exp, in place)", async () => {
  const page = await openDemo(browser.context, gw.url, { user: 'provider' });
  const res = await page.evaluate(async () => {
    const { NotifyClient } = await import('./lib/notify-client.js');
    let calls = 0;
    // The token itself lives an hour; the provider says it must be replaced in 4 s.
    const tokenProvider = async () => {
      calls++;
      const { token } = await (await fetch('/dev/token?sub=provider&ctx=jira:issue:SP-10&ttl=3600')).json();
      return { token, exp: Math.floor(Date.now() / 1000) + 4 };
    };
    const c = new NotifyClient({ tokenProvider, contexts: ['jira:issue:SP-10'] });
    c.start();
    const t0 = Date.now();
    while (c.stats.refreshes < 1 && Date.now() - t0 < 15000) await new Promise((r) => setTimeout(r, 100));
    const out = { calls, refreshes: c.stats.refreshes, connects: c.stats.connects, state: c.state };
    c.stop();
    return out;
  });
  assert.ok(res.refreshes >= 1, JSON.stringify(res));
  assert.equal(res.connects, 1, 'refreshed in place, no reconnect');
  assert.ok(res.calls >= 2);
  await sleep(10);
  await page.close();
});
