// inbox.js - the bell and the notification panel of the demo page: the
// user's stored notifications (client.inbox(), newest first), read and
// unread, "Mark all as read", each item's actions. The count and the read
// state come from the gateway (the unread count of the token's contexts,
// `marked` frames), so every tab of the user shows the same; new
// notifications are added as they arrive (live or replayed after a reload).
// Keyboard: the bell is a disclosure button (Enter/Space); Escape inside
// the panel or on the bell closes it and focus returns to the bell.
import { client } from './background.js';
import { safeHref } from './lib/flags.js';
import { issueUrl } from './context.js';

const PAGE = 20;
const $ = (id) => document.getElementById(id);
const bell = $('bell');
const count = $('bell-count');
const panel = $('inbox-panel');
const list = $('inbox-list');
const status = $('inbox-status');
const more = $('inbox-more');
const markAll = $('inbox-mark-all');

const items = new Map(); // n.id -> {n, claims, seq, read, ctx}
let older = null; // `before` of the next older page, null when none
let loading = false;

function resolveHref(href) {
  const m = /^\/browse\/([A-Z][A-Z0-9_]{0,19}-[0-9]{1,9})(?:[?#].*)?$/.exec(href || '');
  return m ? issueUrl(m[1]) : href;
}

function when(iat) {
  if (typeof iat !== 'number') return '';
  const d = new Date(iat * 1000);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

function add(n, claims, read) {
  const had = items.get(n.id);
  if (had) {
    if (read !== undefined) had.read = read;
    return;
  }
  items.set(n.id, { n, claims, seq: claims.seq, ctx: claims.ctx, read: !!read });
}

function renderCount() {
  const u = client.unread;
  const c = u == null ? null : u;
  count.textContent = c ? (c > 99 ? '99+' : String(c)) : '';
  count.hidden = !c;
  bell.setAttribute('aria-label', c == null ? 'Notifications' : `Notifications, ${c} unread`);
  document.body.dataset.notifyUnread = c == null ? '' : String(c);
}

function itemElement(it) {
  const li = document.createElement('li');
  li.className = `inbox-item${it.read ? '' : ' is-unread'}`;
  li.dataset.id = it.n.id;
  li.dataset.seq = String(it.seq);
  li.dataset.read = String(it.read);
  const dot = document.createElement('span');
  dot.className = 'inbox-item__dot';
  dot.setAttribute('aria-hidden', 'true');
  const body = document.createElement('div');
  body.className = 'inbox-item__body';
  const title = document.createElement('p');
  title.className = 'inbox-item__title';
  if (!it.read) {
    const sr = document.createElement('span');
    sr.className = 'sr-only';
    sr.textContent = 'Unread: ';
    title.append(sr);
  }
  title.append(document.createTextNode(it.n.title));
  body.append(title);
  if (it.n.description) {
    const p = document.createElement('p');
    p.className = 'inbox-item__desc';
    p.textContent = it.n.description;
    body.append(p);
  }
  const meta = document.createElement('p');
  meta.className = 'inbox-item__meta';
  meta.textContent = [when(it.claims.iat), it.ctx].filter(Boolean).join(' · ');
  body.append(meta);
  const acts = document.createElement('div');
  acts.className = 'inbox-item__actions';
  for (const a of Array.isArray(it.n.actions) ? it.n.actions : []) {
    if (!a || typeof a.text !== 'string') continue;
    const href = safeHref(resolveHref(a.href));
    if (!href) continue; // javascript:, data:, garbage: not a link
    const link = document.createElement('a');
    link.className = 'inbox-item__action';
    link.href = href;
    link.textContent = a.text;
    link.addEventListener('click', () => {
      if (!it.read) client.markRead([it.n.id]);
    });
    acts.append(link);
  }
  const toggle = document.createElement('button');
  toggle.type = 'button';
  toggle.className = 'inbox-item__toggle';
  toggle.textContent = it.read ? 'Mark as unread' : 'Mark as read';
  // The visible text is short; the accessible name says which notification.
  toggle.setAttribute('aria-label', `${it.read ? 'Mark as unread' : 'Mark as read'}: ${it.n.title}`);
  toggle.addEventListener('click', () => client.markRead([it.n.id], !it.read));
  acts.append(toggle);
  body.append(acts);
  li.append(dot, body);
  return li;
}

function render() {
  renderCount();
  if (panel.hidden) return;
  // Keep the focus on the same control across a re-render.
  const active = document.activeElement;
  const focusId = active && list.contains(active) ? active.closest('.inbox-item')?.dataset.id : null;
  const focusClass = focusId ? active.className : null;
  const sorted = [...items.values()].sort((a, b) => (b.seq ?? 0) - (a.seq ?? 0));
  list.replaceChildren(...sorted.map(itemElement));
  if (focusId) {
    const again = list.querySelector(`.inbox-item[data-id="${CSS.escape(focusId)}"] .${focusClass.split(' ')[0]}`);
    if (again) again.focus();
  }
  status.textContent = loading ? 'Loading…' : sorted.length ? '' : 'No notifications yet.';
  more.hidden = older == null;
  // aria-disabled, not disabled: a button that had the focus keeps it (a disabled one drops it to <body>).
  markAll.setAttribute('aria-disabled', String(!client.unread));
}

async function load(before) {
  if (loading) return;
  loading = true;
  render();
  try {
    const page = await client.inbox({ limit: PAGE, before: before || undefined });
    for (const it of page.items) add(it.n, it.claims, it.read);
    if (!before || older != null) older = page.more ? page.before : null;
  } catch (e) {
    status.textContent = `Cannot read the inbox: ${e.message}`;
    loading = false;
    return;
  }
  loading = false;
  render();
}

function setOpen(open) {
  panel.hidden = !open;
  bell.setAttribute('aria-expanded', String(open));
  document.body.dataset.inboxOpen = String(open);
  if (open) {
    render();
    load(null);
  }
}

bell.addEventListener('click', () => setOpen(panel.hidden));
markAll.addEventListener('click', () => {
  if (client.unread) client.markAllRead();
});
more.addEventListener('click', () => load(older));
for (const el of [panel, bell]) {
  el.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || panel.hidden || e.defaultPrevented) return;
    e.preventDefault();
    setOpen(false);
    bell.focus();
  });
}
// A click elsewhere closes the panel (focus stays where the click put it).
document.addEventListener('pointerdown', (e) => {
  if (!panel.hidden && !$('inbox').contains(e.target)) setOpen(false);
});

client.addEventListener('notification', (e) => {
  add(e.detail.n, e.detail.claims, false);
  render();
});
client.addEventListener('marked', (e) => {
  for (const id of e.detail.ids) {
    const it = items.get(id);
    if (it) it.read = e.detail.read;
  }
  render();
});
client.addEventListener('resync', (e) => {
  // The history could not be replayed: the inbox is what was missed.
  for (const it of e.detail.items) add(it.n, it.claims, it.read);
  render();
});
client.addEventListener('unread', render);
client.addEventListener('state', () => {
  // A (re)connected panel reads the inbox again: another tab may have changed it meanwhile.
  if (client.state === 'open' && !panel.hidden) load(null);
  renderCount();
});

window.notifyInbox = {
  open: () => setOpen(true),
  close: () => setOpen(false),
  items: () => [...items.values()].sort((a, b) => (b.seq ?? 0) - (a.seq ?? 0)).map((it) => ({ id: it.n.id, seq: it.seq, read: it.read, title: it.n.title })),
};
renderCount();
