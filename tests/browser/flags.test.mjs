// Flag rendering for every type (rules in fixtures/rules.yml pick the type by
// issue type): icon, role, actions, unsafe links, auto-dismiss of info and
// success after 8 s, warnings and errors staying, one flag per id.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Gateway, launchBrowser, openDemo, fireEvent, issueCreated, fixture } from './lib/harness.mjs';

let gw;
let browser;
before(async () => {
  gw = await Gateway.start({ rules: fixture('rules.yml') });
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await gw?.stop();
});

const flag = (page, title) => page.locator('#flags .flag', { has: page.locator('.flag__title', { hasText: title }) });
const TYPES = { Incident: ['error', 'alert'], Bug: ['warning', 'alert'], Epic: ['success', 'status'], Story: ['info', 'status'] };

test('each type gets its icon, role and actions; info and success auto-dismiss, the others stay', async () => {
  const page = await openDemo(browser.context, gw.url, { user: 'alice' });
  for (const issueType of Object.keys(TYPES)) {
    await fireEvent(gw.port, issueCreated({ assignee: 'alice', type: issueType, summary: `A ${issueType} flag` }));
  }
  for (const [issueType, [type, role]] of Object.entries(TYPES)) {
    const f = flag(page, `A ${issueType} flag`);
    await f.waitFor({ timeout: 5000 });
    assert.equal(await f.getAttribute('data-type'), type);
    assert.equal(await f.getAttribute('role'), role);
    assert.ok(await f.evaluate((el) => el.classList.contains(`flag--${el.dataset.type}`)));
    assert.equal(await f.locator('svg.flag__icon[aria-hidden="true"]').count(), 1);
    const links = f.getByRole('link');
    assert.deepEqual(await links.allTextContents(), ['Open', 'Docs']);
    assert.equal(await links.nth(1).getAttribute('href'), 'https://example.com/docs');
    assert.equal(await f.locator('.flag__description').textContent(), `${issueType} on SP-10`);
  }
  // Newest first.
  const order = await page.locator('#flags .flag').evaluateAll((els) => els.map((e) => e.dataset.type));
  assert.deepEqual(order, ['info', 'success', 'warning', 'error']);
  // After 8 s the info and success flags are gone; warning and error stay until closed.
  await flag(page, 'A Story flag').waitFor({ state: 'detached', timeout: 15000 });
  await flag(page, 'A Epic flag').waitFor({ state: 'detached', timeout: 5000 });
  assert.equal(await flag(page, 'A Bug flag').count(), 1);
  assert.equal(await flag(page, 'A Incident flag').count(), 1);
  await flag(page, 'A Bug flag').getByRole('button', { name: /Dismiss/ }).click();
  assert.equal(await flag(page, 'A Bug flag').count(), 0);
  await page.close();
});

test('a javascript: action is rendered as text, never as a link; text is never HTML', async () => {
  const page = await openDemo(browser.context, gw.url, { user: 'bob' });
  await fireEvent(gw.port, issueCreated({ assignee: 'bob', type: 'Script', summary: '<img src=x onerror=alert(1)> hi' }));
  const f = flag(page, 'hi');
  await f.waitFor({ timeout: 5000 });
  assert.deepEqual(await f.getByRole('link').allTextContents(), ['Open']);
  assert.equal(await f.locator('.flag__action--disabled').textContent(), 'Run');
  assert.equal(await f.locator('img').count(), 0);
  assert.match(await f.locator('.flag__title').textContent(), /<img src=x onerror=alert\(1\)> hi/);
  await page.close();
});

test('the same notification id is never shown twice', async () => {
  const page = await openDemo(browser.context, gw.url, { user: 'carol' });
  const r = await page.evaluate(() => {
    const f = window.notifyDemo.flags;
    const a = f.show({ id: 'same-id', title: 'Once', type: 'warning' });
    f.closeNewest();
    const b = f.show({ id: 'same-id', title: 'Twice', type: 'warning' });
    return [a !== null, b === null, document.querySelectorAll('#flags .flag').length];
  });
  assert.deepEqual(r, [true, true, 0]);
  await page.close();
});
