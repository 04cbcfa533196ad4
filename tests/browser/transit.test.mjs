// Messages altered in transit are rejected and never shown; a notification
// replayed after a reconnect is not delivered twice. A websocket proxy sits
// between the page and the gateway.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, launchBrowser, openDemo, fireEvent, issueCreated, stats, sleep } from './lib/harness.mjs';
import { TamperProxy, alterClaims, flipClaimsChar, flipBatchPayloadChar, frameClaims, shiftIndex } from './lib/proxy.mjs';

let gw;
let browser;
let proxy;
let lastNotification = null;
before(async () => {
  gw = await Gateway.start();
  browser = await launchBrowser();
  proxy = new TamperProxy(gw.port, {
    onServerFrame(text) {
      let f = JSON.parse(text);
      if (f.op !== 'notification') return text;
      const title = frameClaims(f).n.title;
      if (title.includes('[alter-title]')) {
        f = alterClaims(f, (c) => ({ ...c, n: { ...c.n, title: 'Pay invoice now', actions: [{ text: 'Pay', href: 'https://evil.example/' }] } }));
      } else if (title.includes('[flip-char]')) {
        f = flipClaimsChar(f);
      } else if (title.includes('[other-sub]')) {
        // Genuine, validly proven claims for someone else must not show either:
        // not reachable through the gateway, so the claims are re-addressed (and the proof breaks).
        f = alterClaims(f, (c) => ({ ...c, sub: 'mallory' }));
      } else if (title.includes('[bad-index]')) {
        f = shiftIndex(f, 1); // the claims untouched, the proof points elsewhere
      } else if (title.includes('[flip-batch]')) {
        f = flipBatchPayloadChar(f); // the batch signature no longer verifies
      } else {
        lastNotification = text;
      }
      return JSON.stringify(f);
    },
  });
  await proxy.listen();
});
after(async () => {
  await browser?.close();
  await proxy?.close();
  await gw?.stop();
});

const flag = (page, title) => page.locator('#flags .flag', { has: page.locator('.flag__title', { hasText: title }) });

test('a notification altered in transit is rejected, counted and not shown', async () => {
  const page = await openDemo(browser.context, proxy.url, { user: 'alice' });
  const tags = ['[alter-title]', '[flip-char]', '[other-sub]', '[bad-index]', '[flip-batch]'];
  for (const tag of tags) {
    assert.equal((await fireEvent(gw.port, issueCreated({ assignee: 'alice', summary: `Invoice ${tag}` }))).status, 202);
  }
  // A clean one afterwards: once it shows, the altered ones (sent before it, in order) were handled.
  await fireEvent(gw.port, issueCreated({ assignee: 'alice', summary: 'Clean after tampering' }));
  await flag(page, 'Clean after tampering').waitFor({ timeout: 5000 });
  const s = await stats(page);
  assert.equal(s.received, tags.length + 1);
  assert.equal(s.delivered, 1);
  assert.equal(s.rejectedTotal, tags.length, JSON.stringify(s.rejected));
  // every one fails its proof (altered claims, index or batch signature)
  assert.equal(s.rejected.bad_signature, tags.length, JSON.stringify(s.rejected));
  assert.equal(await page.locator('#flags .flag').count(), 1);
  assert.equal(await flag(page, 'Pay invoice now').count(), 0);
  assert.equal(await flag(page, 'Invoice').count(), 0);
  assert.equal(await page.locator('body').getAttribute('data-notify-rejected'), String(tags.length));
  await page.close();
});

test('a notification replayed after a reconnect is delivered only once', async () => {
  const page = await openDemo(browser.context, proxy.url, { user: 'erin' });
  await fireEvent(gw.port, issueCreated({ assignee: 'erin', summary: 'Only once please' }));
  await flag(page, 'Only once please').waitFor({ timeout: 5000 });
  const replay = lastNotification;
  assert.ok(replay);
  // Cut the connection; the page reconnects (backoff) through the proxy.
  proxy.dropAll();
  await page.waitForFunction(() => window.notifyDemo.stats().connects >= 2 && window.notifyDemo.client.state === 'open', null, { timeout: 15000 });
  // Replay the old frame on the new connection, then a fresh notification.
  for (const c of proxy.conns) c.client.send(replay);
  await fireEvent(gw.port, issueCreated({ assignee: 'erin', summary: 'Fresh after reconnect' }));
  await flag(page, 'Fresh after reconnect').waitFor({ timeout: 5000 });
  await sleep(200);
  const s = await stats(page);
  assert.equal(s.duplicates, 1, JSON.stringify(s));
  assert.equal(s.delivered, 2);
  assert.equal(await flag(page, 'Only once please').count(), 1);
  assert.equal(await page.locator('#flags .flag').count(), 2);
  await page.close();
});
