// Resume, the inbox and read state in the demo page (issue 12), in chromium
// against the real gateway with its default store (SQLite):
// - the page is reloaded three times while events flow: every notification
//   appears as a flag exactly once (replayed after a reload when it was
//   missed), none twice, and the inbox panel lists them all, newest first;
// - a tab that was away replays what it missed, but shows no flag for what
//   another tab of the user already showed (it waits in the inbox); one
//   that missed 205 flags the newest three and sums up the rest in one flag;
// - two tabs: marking one read in one tab drops the count in the other;
//   "Mark all as read" zeroes both; the bell and the panel work with the
//   keyboard (Enter opens, Escape closes and focus returns to the bell);
// - a wiped store (new epoch): the page's resume answers recovered:false,
//   the client reads the inbox instead, and later notifications arrive once;
// - notifications past their exp (a rule with ttl 1 s): a replayed one is not
//   shown (the resume point still moves past it), the inbox keeps both;
// - a refused resume (the token no longer covers a context) does not make
//   later live notifications look replayed;
// - graceful stop (SIGTERM) and restart: the page resumes, nothing lost or
//   twice; chromium gets the close's code and reason, and the client waits
//   the reconnect_ms it names (also run in Node with ws).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Gateway, launchBrowser, openDemo, fireEvent, issueCreated, stats, sleep, waitOpen, tempDir, request, SOURCE_DIR } from './lib/harness.mjs';

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

const unread = (page) => page.evaluate(() => document.body.dataset.notifyUnread);
const waitUnread = (page, n, timeout = 5000) =>
  page.waitForFunction((v) => document.body.dataset.notifyUnread === String(v), n, { timeout });
const flagTitles = (page) => page.evaluate(() => [...document.querySelectorAll('#flags .flag .flag__title')].map((e) => e.textContent));

/**
 * Records, across reloads, every flag that enters the DOM of this tab and
 * every notification the client delivers: installed before each load, each
 * appends to a list in this tab's sessionStorage, synchronously (a message to
 * the test could be lost while the old document is torn down by the reload).
 */
async function recordFlags(page) {
  await page.addInitScript(() => {
    const push = (key, v) => {
      const list = JSON.parse(sessionStorage.getItem(key) || '[]');
      list.push(v);
      sessionStorage.setItem(key, JSON.stringify(list));
    };
    new MutationObserver((records) => {
      for (const r of records) {
        for (const node of r.addedNodes) {
          if (node.nodeType === 1 && node.classList.contains('flag') && node.dataset.flagId) {
            push('test-flags', { id: node.dataset.flagId, title: node.querySelector('.flag__title')?.textContent || '' });
          }
        }
      }
    }).observe(document, { childList: true, subtree: true });
    // background.js sets window.notifyDemo before it starts its client.
    let demo;
    Object.defineProperty(window, 'notifyDemo', {
      configurable: true,
      get: () => demo,
      set(v) {
        demo = v;
        v.client.addEventListener('notification', (e) => push('test-delivered', { id: e.detail.n.id, title: e.detail.n.title, replayed: e.detail.replayed }));
      },
    });
  });
  return {
    flags: () => page.evaluate(() => JSON.parse(sessionStorage.getItem('test-flags') || '[]')),
    delivered: () => page.evaluate(() => JSON.parse(sessionStorage.getItem('test-delivered') || '[]')),
  };
}

test('reloading while events flow: every notification is shown once, none is missed, the panel lists them newest first', async () => {
  const user = 'reloader';
  const page = await openDemo(browser.context, gw.url, { user });
  const recorded = await recordFlags(page);
  await page.reload({ waitUntil: 'load' }); // the recorder is installed from this load on
  await waitOpen(page);
  const N = 24;
  const summaries = Array.from({ length: N }, (_, i) => `Flow ${i + 1}`);
  const firing = (async () => {
    for (const s of summaries) {
      assert.equal((await fireEvent(gw.port, issueCreated({ assignee: user, summary: s }))).status, 202);
      await sleep(60);
    }
  })();
  for (let r = 0; r < 3; r++) {
    await sleep(250);
    await page.reload({ waitUntil: 'load' });
  }
  await firing;
  await waitOpen(page);
  // Every notification delivered exactly once across the reloads (replayed
  // when the reload missed it), flagged at most once, and flagged when it
  // came live or was among the newest replayed (REPLAY_FLAGS per resume).
  const title = (s) => `SP-10 created: ${s}`;
  const deadline = Date.now() + 10000;
  let delivered = await recorded.delivered();
  while (Date.now() < deadline && !summaries.every((s) => delivered.some((d) => d.title === title(s)))) {
    await sleep(100);
    delivered = await recorded.delivered();
  }
  await sleep(500); // anything delivered twice would be by now
  delivered = await recorded.delivered();
  const flagsSeen = await recorded.flags();
  for (const s of summaries) {
    const d = delivered.filter((x) => x.title === title(s));
    assert.equal(d.length, 1, `${s}: delivered ${d.length} times`);
    const f = flagsSeen.filter((x) => x.title.endsWith(title(s)));
    assert.ok(f.length <= 1, `${s}: flagged ${f.length} times`);
    if (!d[0].replayed) assert.equal(f.length, 1, `${s}: came live, not flagged`);
  }
  assert.equal(new Set(flagsSeen.map((f) => f.id)).size, flagsSeen.length, 'no flag shown twice');
  const replayed = delivered.filter((d) => d.replayed).length;
  console.log(`reload test: ${N} notifications, ${replayed} replayed after a reload, ${flagsSeen.length} flags`);
  const st = await stats(page);
  assert.equal(st.rejectedTotal, 0);
  // The reloads resumed (the last load at least subscribed with since) and the count is every notification (none read).
  assert.ok(st.resumes >= 1, `resumes ${st.resumes}`);
  await waitUnread(page, N);

  // The panel: all N, newest first, unread.
  await page.click('#bell');
  await page.waitForFunction((n) => document.querySelectorAll('#inbox-list .inbox-item').length >= n, 20, { timeout: 5000 });
  await page.click('#inbox-more');
  await page.waitForFunction((n) => document.querySelectorAll('#inbox-list .inbox-item').length === n, N, { timeout: 5000 });
  const items = await page.evaluate(() => [...document.querySelectorAll('#inbox-list .inbox-item')].map((li) => ({
    seq: Number(li.dataset.seq), read: li.dataset.read, title: li.querySelector('.inbox-item__title').textContent })));
  assert.deepEqual(items.map((i) => i.title.replace(/^Unread: /, '')), summaries.map(title).reverse());
  for (let i = 1; i < items.length; i++) assert.ok(items[i - 1].seq > items[i].seq, 'newest first');
  assert.ok(items.every((i) => i.read === 'false' && i.title.startsWith('Unread: ')));
  assert.equal(await page.locator('#inbox-more').isHidden(), true);
  assert.deepEqual(page.logs.filter((l) => /error/i.test(l)), []);
  await page.close();
});

test('a tab that was away replays what it missed, without flags for what another tab showed', async () => {
  const user = 'twotabs';
  const a = await openDemo(browser.context, gw.url, { user });
  const b = await openDemo(browser.context, gw.url, { user });
  await fireEvent(gw.port, issueCreated({ assignee: user, summary: 'Both see it' }));
  for (const p of [a, b]) await p.locator('#flags .flag', { hasText: 'Both see it' }).waitFor({ timeout: 5000 });
  const url = b.url();
  await b.goto('about:blank');
  await fireEvent(gw.port, issueCreated({ assignee: user, summary: 'While b was away 1' }));
  await fireEvent(gw.port, issueCreated({ assignee: user, summary: 'While b was away 2' }));
  await a.locator('#flags .flag', { hasText: 'While b was away 2' }).waitFor({ timeout: 5000 });
  await b.goto(url, { waitUntil: 'load' }); // same tab: its sessionStorage keeps the resume point
  await waitOpen(b);
  // Both subscriptions resume (jira:issue:SP-10 and forge:app).
  await b.waitForFunction(() => window.notifyDemo.stats().replayed === 2 && window.notifyDemo.stats().resumes === 2, null, { timeout: 5000 });
  const sb = await stats(b);
  assert.equal(sb.replayedQuiet, 2);
  assert.equal(sb.replayedFlagged, 0);
  assert.deepEqual(await flagTitles(b), [], 'no flag for what tab a showed');
  await waitUnread(b, 3);
  await b.click('#bell');
  await b.waitForFunction(() => document.querySelectorAll('#inbox-list .inbox-item').length === 3, null, { timeout: 5000 });
  // Live again in both tabs.
  await fireEvent(gw.port, issueCreated({ assignee: user, summary: 'After b is back' }));
  for (const p of [a, b]) await p.locator('#flags .flag', { hasText: 'After b is back' }).waitFor({ timeout: 5000 });
  await a.close();
  await b.close();
});

test('a tab back after missing many: flags for the newest three, one flag for the rest, all in the inbox', async () => {
  // More than one resume page (200): the other subscription (forge:app) answers while this one still replays.
  const user = 'longaway';
  const M = 205;
  const page = await openDemo(browser.context, gw.url, { user });
  const url = page.url();
  await page.goto('about:blank');
  for (let i = 0; i < M; i += 8) {
    await Promise.all(Array.from({ length: Math.min(8, M - i) }, (_, k) =>
      fireEvent(gw.port, issueCreated({ assignee: user, summary: `Away ${i + k + 1}` })).then((r) => assert.equal(r.status, 202))));
  }
  await page.goto(url, { waitUntil: 'load' });
  await waitOpen(page);
  await page.waitForFunction((m) => window.notifyDemo.stats().replayed === m && window.notifyDemo.stats().resumes === 2, M, { timeout: 20000 });
  await page.waitForFunction(() => window.notifyDemo.stats().replayedFlagged === 3, null, { timeout: 5000 });
  await sleep(300);
  const st = await stats(page);
  assert.equal(st.replayedFlagged, 3);
  assert.equal(st.replayedSummarized, M - 3);
  assert.equal(st.duplicates + st.rejectedTotal, 0);
  await waitUnread(page, M);
  // Newest on top: the three highest seqs (the panel's first three), then the summary.
  await page.click('#bell');
  await page.waitForFunction(() => document.querySelectorAll('#inbox-list .inbox-item').length >= 3, null, { timeout: 5000 });
  const newest = await page.evaluate(() => [...document.querySelectorAll('#inbox-list .inbox-item__title')].slice(0, 3).map((e) => e.textContent.replace(/^Unread: /, '')));
  assert.deepEqual((await flagTitles(page)).map((t) => t.replace(/^Info: /, '')), [...newest, `${M - 3} more notifications while you were away`]);
  await page.close();
});

test('two tabs: mark read in one, the count drops in the other; mark all as read zeroes both; keyboard', async () => {
  const user = 'marker';
  const a = await openDemo(browser.context, gw.url, { user });
  const b = await openDemo(browser.context, gw.url, { user });
  for (let i = 1; i <= 3; i++) assert.equal((await fireEvent(gw.port, issueCreated({ assignee: user, summary: `Mark ${i}` }))).status, 202);
  for (const p of [a, b]) await waitUnread(p, 3);
  assert.equal(await a.getAttribute('#bell', 'aria-label'), 'Notifications, 3 unread');
  assert.equal(await a.locator('#bell-count').textContent(), '3');

  // Keyboard: focus the bell, Enter opens the panel.
  await a.focus('#bell');
  await a.keyboard.press('Enter');
  assert.equal(await a.getAttribute('#bell', 'aria-expanded'), 'true');
  await a.waitForFunction(() => document.querySelectorAll('#inbox-list .inbox-item').length === 3, null, { timeout: 5000 });
  const titles = await a.locator('#inbox-list .inbox-item__title').allTextContents();
  assert.deepEqual(titles, ['Unread: SP-10 created: Mark 3', 'Unread: SP-10 created: Mark 2', 'Unread: SP-10 created: Mark 1']);
  await b.click('#bell');
  await b.waitForFunction(() => document.querySelectorAll('#inbox-list .inbox-item').length === 3, null, { timeout: 5000 });

  // Mark the middle one read in tab a (keyboard: Tab to its button, Enter).
  const toggle = a.locator('#inbox-list .inbox-item').nth(1).locator('.inbox-item__toggle');
  await toggle.focus();
  await a.keyboard.press('Enter');
  for (const p of [a, b]) await waitUnread(p, 2);
  await b.waitForFunction(() => document.querySelectorAll('#inbox-list .inbox-item[data-read="true"]').length === 1, null, { timeout: 5000 });
  assert.equal(await b.locator('#inbox-list .inbox-item[data-read="true"] .inbox-item__title').textContent(), 'SP-10 created: Mark 2');
  assert.equal(await b.getAttribute('#bell', 'aria-label'), 'Notifications, 2 unread');
  // Focus stays on the re-rendered toggle, which now says what it does next.
  assert.match(await a.evaluate(() => document.activeElement.getAttribute('aria-label')), /^Mark as unread: SP-10 created: Mark 2$/);

  // Mark as unread again from tab b, then mark all as read from tab a.
  await b.locator('#inbox-list .inbox-item[data-read="true"] .inbox-item__toggle').click();
  for (const p of [a, b]) await waitUnread(p, 3);
  // By keyboard: the button keeps the focus once there is nothing left to mark.
  await a.focus('#inbox-mark-all');
  await a.keyboard.press('Enter');
  for (const p of [a, b]) await waitUnread(p, 0);
  assert.equal(await a.evaluate(() => document.activeElement.id), 'inbox-mark-all');
  for (const p of [a, b]) {
    await p.waitForFunction(() => [...document.querySelectorAll('#inbox-list .inbox-item')].every((li) => li.dataset.read === 'true'), null, { timeout: 5000 });
    assert.equal(await p.locator('#bell-count').isHidden(), true);
    assert.equal(await p.getAttribute('#bell', 'aria-label'), 'Notifications, 0 unread');
  }
  assert.equal(await a.getAttribute('#inbox-mark-all', 'aria-disabled'), 'true');

  // Escape closes the panel and focus returns to the bell.
  await a.locator('#inbox-list .inbox-item__toggle').first().focus();
  await a.keyboard.press('Escape');
  assert.equal(await a.locator('#inbox-panel').isHidden(), true);
  assert.equal(await a.getAttribute('#bell', 'aria-expanded'), 'false');
  assert.equal(await a.evaluate(() => document.activeElement.id), 'bell');

  // A new notification counts again in both tabs.
  await fireEvent(gw.port, issueCreated({ assignee: user, summary: 'Mark 4' }));
  for (const p of [a, b]) await waitUnread(p, 1);
  await a.close();
  await b.close();
});

test('a wiped store (new epoch): the resume answers recovered:false, the client reads the inbox, later notifications arrive once', async () => {
  const user = 'wiped';
  const page = await openDemo(browser.context, gw.url, { user });
  for (const s of ['Before the wipe 1', 'Before the wipe 2']) await fireEvent(gw.port, issueCreated({ assignee: user, summary: s }));
  await page.locator('#flags .flag', { hasText: 'Before the wipe 2' }).waitFor({ timeout: 5000 });
  const oldEpoch = await page.evaluate(() => window.notifyDemo.client.epoch);
  assert.match(oldEpoch, /^[A-Za-z0-9_-]{1,64}$/);

  await gw.kill();
  for (const f of ['notify.db', 'notify.db-wal', 'notify.db-shm']) rmSync(path.join(gw.stateDir, f), { force: true });
  await gw.restart(); // same keys (the state dir keeps them), a new store
  await page.waitForFunction(() => window.notifyDemo.stats().resyncs === 2 && window.notifyDemo.client.state === 'open', null, { timeout: 20000 });
  const st = await stats(page);
  assert.equal(st.resumes, 0);
  assert.equal(st.replayed, 0);
  assert.notEqual(await page.evaluate(() => window.notifyDemo.client.epoch), oldEpoch);
  await waitUnread(page, 0); // the new store has nothing

  await fireEvent(gw.port, issueCreated({ assignee: user, summary: 'After the wipe' }));
  await page.locator('#flags .flag', { hasText: 'After the wipe' }).waitFor({ timeout: 5000 });
  await waitUnread(page, 1);
  // A reload resumes in the new epoch: nothing replayed, nothing shown twice.
  await page.reload({ waitUntil: 'load' });
  await waitOpen(page);
  await page.waitForFunction(() => window.notifyDemo.stats().resumes === 2, null, { timeout: 5000 });
  await sleep(300);
  const again = await stats(page);
  assert.equal(again.replayed, 0);
  assert.equal(again.resyncs, 0);
  assert.deepEqual(await flagTitles(page), []);
  await waitUnread(page, 1);
  await page.close();
});

test('past exp: a replayed notification is not shown, the resume point moves past it, the inbox keeps it', async () => {
  const dir = tempDir('ngw-inbox-ttl-');
  const rules = path.join(dir, 'rules.yml');
  // Bugs live 1 s, other issues the default hour (a live flag with ttl 1 could expire on its way on a busy machine).
  writeFileSync(rules, `rules:
  - key: short-lived
    events: [avi:jira:created:issue]
    filter: {expression: "event.issue.fields.issuetype.name == 'Bug'"}
    notify:
      to: "event.issue.fields.assignee.accountId"
      context: "jira:issue:{{ event.issue.key }}"
      title: "{{ event.issue.fields.summary }}"
      ttl: 1
  - key: long-lived
    events: [avi:jira:created:issue]
    filter: {expression: "event.issue.fields.issuetype.name != 'Bug'"}
    notify:
      to: "event.issue.fields.assignee.accountId"
      context: "jira:issue:{{ event.issue.key }}"
      title: "{{ event.issue.fields.summary }}"
`);
  const short = await Gateway.start({ rules });
  try {
    const user = 'shortlived';
    const page = await openDemo(browser.context, short.url, { user });
    await fireEvent(short.port, issueCreated({ assignee: user, summary: 'Seen live' }));
    await page.locator('#flags .flag', { hasText: 'Seen live' }).waitFor({ timeout: 5000 });
    const url = page.url();
    await page.goto('about:blank');
    await fireEvent(short.port, issueCreated({ assignee: user, summary: 'Expired while away', type: 'Bug' }));
    await sleep(2200); // past its exp (1 s, whole seconds)
    await page.goto(url, { waitUntil: 'load' });
    await waitOpen(page);
    await page.waitForFunction(() => window.notifyDemo.stats().rejected.expired === 1, null, { timeout: 5000 });
    assert.deepEqual(await flagTitles(page), [], 'nothing shown past exp');
    const st = await stats(page);
    assert.equal(st.replayed, 0);
    assert.equal(st.rejectedTotal, 1);
    // The inbox keeps both, the expired one marked so, and counts both unread.
    await waitUnread(page, 2);
    const page1 = await page.evaluate(() => window.notifyDemo.client.inbox({ limit: 10 }).then((p) =>
      p.items.map((i) => ({ title: i.n.title, expired: i.expired, read: i.read }))));
    assert.deepEqual(page1, [{ title: 'Expired while away', expired: true, read: false }, { title: 'Seen live', expired: false, read: false }]);
    // The resume point moved past the expired one: a reload replays nothing and rejects nothing.
    await page.reload({ waitUntil: 'load' });
    await waitOpen(page);
    await page.waitForFunction(() => window.notifyDemo.stats().resumes === 2, null, { timeout: 5000 });
    await sleep(300);
    const again = await stats(page);
    assert.equal(again.rejectedTotal, 0);
    assert.equal(again.received, 0);
    await page.close();
  } finally {
    await short.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a resume point for a context the token no longer covers: refused, and later live notifications are not taken for replayed ones', async () => {
  const user = 'narrowed';
  const page = await openDemo(browser.context, gw.url, { user });
  const first = await page.evaluate(async (user) => {
    const { NotifyClient } = await import('./lib/notify-client.js');
    const mem = new Map();
    window.sharedStorage = { getItem: (k) => mem.get(k) ?? null, setItem: (k, v) => mem.set(k, v) };
    const token = (ctxs) => async () => (await fetch(`/dev/token?sub=${user}&${ctxs.map((c) => `ctx=${c}`).join('&')}`)).json();
    const wait = async (fn) => {
      const t0 = Date.now();
      while (!fn() && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
    };
    // Both contexts covered: both get a resume point.
    const c1 = new NotifyClient({ getToken: token(['jira:issue:A-1', 'jira:issue:B-2']), contexts: ['jira:issue:A-1', 'jira:issue:B-2'], storage: window.sharedStorage });
    c1.start();
    await wait(() => c1.resume && c1.resume.points.size === 2);
    const points = Object.fromEntries(c1.resume.points);
    c1.stop();
    // The next token covers A-1 only: B-2's resume is refused (ctx_forbidden).
    const c2 = new NotifyClient({ getToken: token(['jira:issue:A-1']), contexts: ['jira:issue:A-1', 'jira:issue:B-2'], storage: window.sharedStorage });
    window.c2 = c2;
    window.c2seen = [];
    c2.addEventListener('notification', (e) => window.c2seen.push({ title: e.detail.n.title, replayed: e.detail.replayed }));
    c2.start();
    await wait(() => c2.subscriptionState('jira:issue:B-2') === 'forbidden' && c2.subscriptionState('jira:issue:A-1') === 'subscribed');
    return { points, subs: c2.subscriptions };
  }, user);
  assert.deepEqual(Object.keys(first.points).sort(), ['jira:issue:A-1', 'jira:issue:B-2']);
  assert.deepEqual(first.subs, { 'jira:issue:A-1': 'subscribed', 'jira:issue:B-2': 'forbidden' });
  await fireEvent(gw.port, issueCreated({ assignee: user, key: 'A-1', summary: 'Live after the refusal' }));
  await page.waitForFunction(() => window.c2seen.length === 1, null, { timeout: 5000 });
  assert.deepEqual(await page.evaluate(() => window.c2seen), [{ title: 'A-1 created: Live after the refusal', replayed: false }]);
  await page.evaluate(() => window.c2.stop());
  await page.close();
});

test('graceful stop (SIGTERM) and restart: the page resumes in the same epoch; nothing lost, nothing twice', async () => {
  const g = await Gateway.start({ args: ['--shutdown-reconnect-spread', '1'] });
  try {
    const user = 'graceful';
    const page = await openDemo(browser.context, g.url, { user });
    await fireEvent(g.port, issueCreated({ assignee: user, summary: 'Before the stop' }));
    await page.locator('#flags .flag', { hasText: 'Before the stop' }).waitFor({ timeout: 5000 });
    const epoch = await page.evaluate(() => window.notifyDemo.client.epoch);
    await page.evaluate(() => {
      window.closes = [];
      const c = window.notifyDemo.client;
      c.addEventListener('error', (e) => {
        if (e.detail.code === 'closed') window.closes.push({ message: e.detail.message });
      });
      c.addEventListener('state', (e) => {
        const last = window.closes[window.closes.length - 1];
        if (e.detail.state === 'waiting' && last && last.next === undefined) last.next = c.nextRetryMs;
      });
    });
    g.child.kill('SIGTERM');
    await g.exited;
    await page.waitForFunction(() => window.closes.length && window.closes[0].next !== undefined, null, { timeout: 5000 });
    // The browser gets the close frame with its code and reason (once: a second one made chromium report 1006).
    const [close] = await page.evaluate(() => window.closes);
    const m = /\(1001 server shutting down; reconnect_ms=(\d+)\)/.exec(close.message);
    assert.ok(m, close.message);
    assert.ok(close.next >= Number(m[1]), `the retry (${close.next} ms) waits at least the named ${m[1]} ms`);
    await g.restart();
    await fireEvent(g.port, issueCreated({ assignee: user, summary: 'After the stop' }));
    await page.locator('#flags .flag', { hasText: 'After the stop' }).waitFor({ timeout: 15000 });
    await page.waitForFunction(() => window.notifyDemo.stats().resumes === 2, null, { timeout: 5000 });
    await sleep(300);
    const st = await stats(page);
    assert.equal(await page.evaluate(() => window.notifyDemo.client.epoch), epoch);
    assert.equal(st.resyncs, 0);
    assert.equal(st.duplicates + st.rejectedTotal, 0);
    assert.equal(await page.locator('#flags .flag', { hasText: 'After the stop' }).count(), 1);
    assert.equal(await page.locator('#flags .flag', { hasText: 'Before the stop' }).count(), 1);
    await waitUnread(page, 2);
    await page.close();
  } finally {
    await g.stop();
  }
});

test('graceful stop: the client waits at least the reconnect_ms the close names (the client in Node, ws)', async () => {
  const { default: WebSocket } = await import('ws');
  const { NotifyClient } = await import(path.join(SOURCE_DIR, 'web-demo/lib/notify-client.js'));
  const g = await Gateway.start({ args: ['--shutdown-reconnect-spread', '30'] }); // the retry is not awaited
  let c;
  try {
    c = new NotifyClient({
      url: `ws://127.0.0.1:${g.port}/realtime`,
      WebSocket,
      storage: null,
      contexts: ['jira:issue:SP-10'],
      getToken: async () => (await request(g.port, { path: '/dev/token?sub=nodeclient&ctx=jira:issue:SP-10' })).json,
    });
    const closes = [];
    c.addEventListener('error', (e) => {
      if (e.detail.code === 'closed') closes.push({ message: e.detail.message });
    });
    c.addEventListener('state', (e) => {
      if (e.detail.state === 'waiting' && closes.length && closes[closes.length - 1].next === undefined) closes[closes.length - 1].next = c.nextRetryMs;
    });
    c.start();
    const t0 = Date.now();
    while (c.state !== 'open' && Date.now() - t0 < 5000) await sleep(20);
    assert.equal(c.state, 'open');
    g.child.kill('SIGTERM');
    await g.exited;
    while (closes[0]?.next === undefined && Date.now() - t0 < 10000) await sleep(20);
    const m = /\(1001 server shutting down; reconnect_ms=(\d+)\)/.exec(closes[0]?.message || '');
    assert.ok(m, JSON.stringify(closes));
    assert.ok(Number(m[1]) < 30000);
    assert.ok(closes[0].next >= Number(m[1]), `the retry (${closes[0].next} ms) waits at least the named ${m[1]} ms`);
  } finally {
    c?.stop();
    await g.stop();
  }
});
