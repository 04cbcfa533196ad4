// The gateway is killed (SIGKILL) and started again on the same port with the
// same state dir (the signing key persists): the page reconnects by itself and
// later notifications appear exactly once.
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

test('after a kill and restart the page reconnects and later notifications appear exactly once', async () => {
  const page = await openDemo(browser.context, gw.url, { user: 'alice' });
  const other = await openDemo(browser.context, gw.url, { user: 'alice', issue: 'SP-10' }); // a second tab
  await fireEvent(gw.port, issueCreated({ assignee: 'alice', type: 'Bug', summary: 'Before the crash' }));
  await flag(page, 'New bug SP-10').waitFor({ timeout: 5000 });
  const port = gw.port;

  await gw.kill();
  await page.waitForFunction(() => window.notifyDemo.client.state !== 'open', null, { timeout: 10000 });
  await sleep(500); // a few reconnect attempts fail meanwhile
  await gw.restart();
  assert.equal(gw.port, port);
  for (const p of [page, other]) {
    await p.waitForFunction(() => window.notifyDemo.client.state === 'open' && window.notifyDemo.stats().connects === 2, null, { timeout: 20000 });
  }

  for (let i = 1; i <= 3; i++) {
    assert.equal((await fireEvent(gw.port, issueCreated({ assignee: 'alice', type: 'Bug', summary: `After the restart ${i}` }))).status, 202);
  }
  for (const p of [page, other]) {
    await flag(p, 'After the restart 3').waitFor({ timeout: 5000 });
    await sleep(300);
    for (let i = 1; i <= 3; i++) assert.equal(await flag(p, `After the restart ${i}`).count(), 1);
    // Warnings stay: 2 flags (bug + issue created) per event, each exactly once.
    const ids = await p.evaluate(() => window.notifyDemo.shown.map((s) => s.id));
    assert.equal(new Set(ids).size, ids.length, 'no notification id shown twice');
    const s = await stats(p);
    assert.equal(s.duplicates, 0);
    assert.equal(s.rejectedTotal, 0);
    assert.equal(s.delivered, 8);
    assert.equal(await p.locator('#flags .flag[data-type="warning"]').count(), 4);
  }
  await page.close();
  await other.close();
});
