// Accessibility of the demo page in chromium: axe-core (npm) finds no serious
// or critical violation before and after flags; the page reflows at 420 px
// (WCAG 1.4.10); closing the last focused flag moves focus somewhere sensible;
// Escape acts only inside the flag region and leaves the host page's Escape
// alone; the flags' shadow is not clipped by the scrolling region.
// The axe results are written to $GW_A11Y_REPORT when set.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Gateway, launchBrowser, openDemo, fireEvent, issueCreated } from './lib/harness.mjs';

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

let gw;
let browser;
const report = {};
before(async () => {
  gw = await Gateway.start();
  browser = await launchBrowser();
});
after(async () => {
  if (process.env.GW_A11Y_REPORT) writeFileSync(process.env.GW_A11Y_REPORT, JSON.stringify(report, null, 2));
  await browser?.close();
  await gw?.stop();
});

const flag = (page, title) => page.locator('#flags .flag', { has: page.locator('.flag__title', { hasText: title }) });

/** Runs axe-core in the page (evaluated over CDP, so the page's CSP does not apply). */
async function axe(page) {
  await page.evaluate(AXE_SOURCE);
  return page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')) }));
  });
}

const serious = (violations) => violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');

async function showFlags(page, user, summary) {
  await fireEvent(gw.port, issueCreated({ assignee: user, type: 'Bug', summary }));
  await flag(page, 'New bug SP-10').waitFor({ timeout: 5000 });
  await flag(page, `SP-10 created: ${summary}`).waitFor({ timeout: 5000 });
}

test('axe-core: no serious or critical violations before and after flags (1280 px and 420 px)', async () => {
  for (const width of [1280, 420]) {
    const page = await openDemo(browser.context, gw.url, { user: `axe${width}` });
    await page.setViewportSize({ width, height: 800 });
    const beforeFlags = await axe(page);
    await showFlags(page, `axe${width}`, `Axe ${width}`);
    // Let the entry animation end so colours are final.
    await page.waitForTimeout(300);
    const withFlags = await axe(page);
    report[`${width}px`] = { beforeFlags, withFlags };
    console.log(`axe-core ${width}px before flags: ${JSON.stringify(beforeFlags)}`);
    console.log(`axe-core ${width}px with flags: ${JSON.stringify(withFlags)}`);
    assert.deepEqual(serious(beforeFlags), [], `before flags at ${width}px`);
    assert.deepEqual(serious(withFlags), [], `with flags at ${width}px`);
    await page.close();
  }
});

test('at 420 px the page reflows: no horizontal scrolling, nothing overlaps', async () => {
  const page = await openDemo(browser.context, gw.url, { user: 'narrow' });
  await page.setViewportSize({ width: 420, height: 800 });
  await showFlags(page, 'narrow', 'Narrow');
  const geo = await page.evaluate(() => {
    const r = (sel) => {
      const b = document.querySelector(sel).getBoundingClientRect();
      return { left: b.left, right: b.right, top: b.top + scrollY, bottom: b.bottom + scrollY };
    };
    return {
      scrollWidth: document.documentElement.scrollWidth,
      main: r('.issue__main'),
      side: r('.issue__side'),
      panel: r('.demo-panel'),
      issue: r('#issue'),
      flags: [...document.querySelectorAll('#flags .flag')].map((f) => {
        const b = f.getBoundingClientRect();
        return { left: b.left, right: b.right };
      }),
    };
  });
  const overlap = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  assert.ok(geo.scrollWidth <= 420, `horizontal scrolling: ${geo.scrollWidth}px wide`);
  assert.ok(!overlap(geo.main, geo.side), `main ${JSON.stringify(geo.main)} overlaps side ${JSON.stringify(geo.side)}`);
  assert.ok(!overlap(geo.issue, geo.panel), `the demo panel covers the issue ${JSON.stringify(geo)}`);
  for (const f of geo.flags) assert.ok(f.left >= 0 && f.right <= 420, `flag outside the viewport ${JSON.stringify(f)}`);
  await page.close();
});

test('the bell and its open inbox panel: axe-core clean at 1280 and 420 px, reflow, keyboard only', async () => {
  for (const width of [1280, 420]) {
    const user = `bell${width}`;
    const page = await openDemo(browser.context, gw.url, { user });
    await page.setViewportSize({ width, height: 800 });
    await showFlags(page, user, `Bell ${width}`);
    await page.waitForFunction(() => document.body.dataset.notifyUnread === '2', null, { timeout: 5000 });
    // Keyboard only: Tab from the product link reaches the bell; Enter opens the panel.
    await page.locator('.topbar__product').focus();
    for (let i = 0; i < 5 && (await page.evaluate(() => document.activeElement.id)) !== 'bell'; i++) await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'bell', 'the bell is in the tab order');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelectorAll('#inbox-list .inbox-item').length === 2, null, { timeout: 5000 });
    // One item read, one unread: both looks are checked.
    await page.keyboard.press('Tab'); // "Mark all as read"
    assert.equal(await page.evaluate(() => document.activeElement.id), 'inbox-mark-all');
    await page.locator('#inbox-list .inbox-item__toggle').first().focus();
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.body.dataset.notifyUnread === '1', null, { timeout: 5000 });
    await page.waitForTimeout(300);
    const v = await axe(page);
    report[`${width}px inbox open`] = v;
    console.log(`axe-core ${width}px with the inbox panel open: ${JSON.stringify(v)}`);
    // Not even a moderate one (the panel is a region: its name differs from the flags' "Notifications").
    assert.deepEqual(v, [], `inbox panel open at ${width}px`);
    const geo = await page.evaluate(() => {
      const b = document.getElementById('inbox-panel').getBoundingClientRect();
      return { scrollWidth: document.documentElement.scrollWidth, left: b.left, right: b.right };
    });
    assert.ok(geo.scrollWidth <= width, `horizontal scrolling with the panel open: ${geo.scrollWidth}px wide`);
    assert.ok(geo.left >= 0 && geo.right <= width, `the panel leaves the viewport: ${JSON.stringify(geo)}`);
    await page.keyboard.press('Escape');
    assert.equal(await page.locator('#inbox-panel').isHidden(), true);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'bell', 'Escape returns focus to the bell');
    await page.close();
  }
});

test('closing the last focused flag moves focus back, never to <body>', async () => {
  const page = await openDemo(browser.context, gw.url, { user: 'focus' });
  await showFlags(page, 'focus', 'Focus');
  // Come from the breadcrumb link, go into the flags, close them all by keyboard.
  await page.locator('#issue-key').focus();
  await page.locator('#flags .flag').first().locator('.flag__close').focus();
  await page.keyboard.press('Enter');
  assert.equal(await page.locator('#flags .flag').count(), 1);
  assert.equal(await page.evaluate(() => !!document.activeElement.closest('#flags .flag')), true, 'focus stays in the stack');
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('#flags .flag').count(), 0);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'issue-key', 'focus returns where it came from');

  // When that element is gone, the issue (the page's main content) gets it.
  await showFlags(page, 'focus', 'Focus again');
  await page.locator('#flags .flag').first().locator('.flag__close').focus();
  await page.evaluate(() => {
    window.notifyDemo.flags.cameFrom = null;
  });
  await page.keyboard.press('Escape');
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('#flags .flag').count(), 0);
  const active = await page.evaluate(() => ({ tag: document.activeElement.tagName, id: document.activeElement.id }));
  assert.notEqual(active.tag, 'BODY');
  assert.equal(active.id, 'issue');
  await page.close();
});

test('Escape outside the flag region closes nothing and is not preventDefault-ed', async () => {
  const page = await openDemo(browser.context, gw.url, { user: 'escape' });
  await showFlags(page, 'escape', 'Escape');
  await page.evaluate(() => {
    window.escapeSeen = [];
    window.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') window.escapeSeen.push(e.defaultPrevented);
    });
  });
  await page.locator('#issue-key').focus();
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('#flags .flag').count(), 2, 'no flag closed');
  assert.deepEqual(await page.evaluate(() => window.escapeSeen), [false], 'the host page sees an untouched Escape');
  // Inside the region, Escape closes the flag that holds the focus (here the older one).
  await page.locator('#flags .flag').nth(1).locator('.flag__close').focus();
  await page.keyboard.press('Escape');
  assert.equal(await flag(page, 'New bug SP-10').count(), 0);
  assert.equal(await flag(page, 'SP-10 created: Escape').count(), 1);
  await page.close();
});

test("the flags' shadow lies inside the region's clip box", async () => {
  const page = await openDemo(browser.context, gw.url, { user: 'shadow' });
  await showFlags(page, 'shadow', 'Shadow');
  await page.waitForTimeout(300); // entry animation
  const res = await page.evaluate(() => {
    const region = document.getElementById('flags');
    const rs = getComputedStyle(region);
    const clips = rs.overflowX !== 'visible' || rs.overflowY !== 'visible';
    const rb = region.getBoundingClientRect();
    const out = [];
    for (const f of region.querySelectorAll('.flag')) {
      const b = f.getBoundingClientRect();
      // box-shadow: "<color> x y blur spread, ..." (computed: colour first, px lengths)
      for (const part of getComputedStyle(f).boxShadow.split(/,(?![^(]*\))/)) {
        const [x, y, blur, spread = 0] = (part.match(/-?[\d.]+px/g) || []).map(parseFloat);
        const ext = blur + spread;
        out.push({
          left: b.left + x - ext >= rb.left,
          right: b.right + x + ext <= rb.right,
          top: b.top + y - ext >= rb.top,
          bottom: b.bottom + y + ext <= rb.bottom,
        });
      }
    }
    return { clips, out };
  });
  assert.ok(res.out.length >= 2);
  if (res.clips) for (const o of res.out) assert.deepEqual(o, { left: true, right: true, top: true, bottom: true });
  await page.close();
});
