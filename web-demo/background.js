// background.js - the invisible "background script" of the issue view (the
// role a Forge jira:issueViewBackgroundScript plays): it connects to the
// gateway's /realtime websocket, subscribes to this issue's context, verifies
// every notification, and shows each one once as a flag. After a reload or a
// reconnect the client resumes: what was missed is replayed, and a flag is
// shown only for a replayed notification new to this user (no tab of this
// browser has had it); the rest is in the inbox (the bell, inbox.js).
//
// Tests and the demo panel read window.notifyDemo (client stats, shown flags)
// and the data-notify-* attributes of <body>.
import { NotifyClient } from './lib/notify-client.js';
import { FlagGroup } from './lib/flags.js';
import { user, contexts, tokenTtl, issueUrl } from './context.js';

const region = document.getElementById('flags');

// Notification actions link to Jira (/browse/KEY); in the demo the issue view is this page.
function resolveHref(href) {
  const m = /^\/browse\/([A-Z][A-Z0-9_]{0,19}-[0-9]{1,9})(?:[?#].*)?$/.exec(href || '');
  return m ? issueUrl(m[1]) : href;
}
// When the last focused flag closes, focus returns where it came from, else to the issue.
const flags = new FlagGroup(region, { resolveHref, returnFocus: () => document.getElementById('issue') });

// Demo mode: the subscription token comes from the gateway's development
// endpoint. A real app gets it from its own backend (docs/frontend.md).
let devTokenMissing = false;
async function getToken() {
  const q = new URLSearchParams({ sub: user, ttl: String(tokenTtl) });
  // The contexts the client wants now (subscribe() adds to them): a refreshed token covers them.
  for (const c of client.contexts) q.append('ctx', c);
  const res = await fetch(`/dev/token?${q}`, { cache: 'no-store', credentials: 'same-origin' });
  if (res.status === 404) {
    devTokenMissing = true;
    throw new Error('/dev/token answered 404: the gateway has a real subscriber key (not in development mode)');
  }
  if (!res.ok) throw new Error(`/dev/token answered HTTP ${res.status}`);
  return res.json(); // {token, exp}
}

const client = new NotifyClient({ getToken, contexts, user, issuer: null });

// Every flag shown, with the time it entered the DOM (MutationObserver, epoch ms).
const shown = [];
const appearedAt = new Map();
new MutationObserver((records) => {
  const t = performance.timeOrigin + performance.now();
  for (const r of records) {
    for (const node of r.addedNodes) {
      if (node.nodeType === 1 && node.dataset.flagId && !appearedAt.has(node.dataset.flagId)) {
        appearedAt.set(node.dataset.flagId, t);
      }
    }
  }
}).observe(region, { childList: true });

// n.ids some tab of this user has had (localStorage: shared by the tabs), the last SEEN_MAX.
const SEEN_MAX = 500;
const seenKey = `notify-demo:seen:${user}`;
function seenList() {
  try {
    const v = JSON.parse(localStorage.getItem(seenKey) || '[]');
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}
function markSeen(id) {
  const v = seenList();
  if (v.includes(id)) return;
  v.push(id);
  try {
    localStorage.setItem(seenKey, JSON.stringify(v.slice(-SEEN_MAX)));
  } catch {
    /* quota or privacy mode: replayed notifications then always flag */
  }
}

// Replayed notifications new to this user are flagged when the resume ends
// (every subscription answered): the newest REPLAY_FLAGS, and one flag
// saying how many more wait in the inbox (a tab back after a long while
// does not get a flag per missed notification).
export const REPLAY_FLAGS = 3;
let replayedFlagged = 0;
let replayedQuiet = 0; // another tab had it: inbox only
let replayedSummarized = 0; // over REPLAY_FLAGS: counted in a summary flag
let pendingReplayed = [];

function showFlag(n, claims) {
  const handle = flags.show({
    id: n.id,
    title: n.title,
    description: n.description,
    type: n.type,
    actions: Array.isArray(n.actions) ? n.actions : [],
  });
  if (handle) shown.push({ id: n.id, type: n.type, title: n.title, ctx: claims.ctx, seq: claims.seq, jti: claims.jti });
}

let summaries = 0;
function flushReplayed() {
  const newest = pendingReplayed.sort((a, b) => b.claims.seq - a.claims.seq);
  pendingReplayed = [];
  const rest = newest.length - REPLAY_FLAGS;
  if (rest > 0) {
    replayedSummarized += rest;
    const id = `replay-summary-${++summaries}-${Date.now()}`;
    flags.show({ id, type: 'info', title: `${rest} more notification${rest === 1 ? '' : 's'} while you were away`,
      description: 'They are in the inbox: the bell at the top.' });
  }
  // Oldest first, so the newest ends on top of the stack.
  for (const d of newest.slice(0, REPLAY_FLAGS).reverse()) {
    replayedFlagged++;
    showFlag(d.n, d.claims);
  }
  update();
}

client.addEventListener('notification', (e) => {
  const { n, claims, replayed } = e.detail;
  const isNew = !replayed || !seenList().includes(n.id);
  markSeen(n.id);
  if (!isNew) {
    replayedQuiet++;
    update();
    return; // another tab showed it: it waits in the inbox
  }
  if (replayed) {
    pendingReplayed.push({ n, claims });
    return; // flagged when this resume ends ('resumed')
  }
  showFlag(n, claims);
  update();
});
// After the last resume under way: every replayed notification is in.
client.addEventListener('resumed', (e) => {
  if (e.detail.last) flushReplayed();
});
client.addEventListener('state', () => {
  if (client.state === 'waiting' && pendingReplayed.length) flushReplayed(); // the connection dropped mid-resume
});

const banner = document.getElementById('banner');
client.addEventListener('error', (e) => {
  if (e.detail.code === 'token_provider' && devTokenMissing) {
    client.stop();
    banner.textContent = 'Demo mode is off: this gateway has a real subscriber key, so /dev/token answers 404. ' +
      'A real app gets its subscription token from its own backend (see docs/frontend.md).';
    banner.hidden = false;
  }
  update();
});
client.addEventListener('rejected', (e) => {
  console.warn(`notify-gateway: dropped a notification (${e.detail.reason}): ${e.detail.message}`);
  update();
});
client.addEventListener('state', update);
client.addEventListener('subscriptions', update);
client.addEventListener('keys', update);

// What this page is subscribed to: a context the token does not cover is
// shown as such (the connection stays open, but nothing would arrive for it).
const subsLine = document.getElementById('demo-subscriptions');
function showSubscriptions() {
  const subs = client.subscriptions;
  const forbidden = Object.keys(subs).filter((c) => subs[c] === 'forbidden');
  let text = '';
  if (client.state === 'keys_unavailable') text = 'Cannot fetch the signing keys: notifications are held until they can be verified. ';
  if (forbidden.length) text += `Not allowed: ${forbidden.join(', ')}.`;
  if (client.state === 'open' && client.subscribedToNothing && Object.values(subs).every((s) => s !== 'pending')) {
    text += ' Subscribed to nothing: no notification can arrive.';
  }
  if (subsLine) subsLine.textContent = text.trim();
}

function update() {
  const s = client.stats;
  document.body.dataset.notifyState = client.state;
  document.body.dataset.notifyDelivered = String(s.delivered);
  document.body.dataset.notifyRejected = String(s.rejectedTotal);
  document.body.dataset.notifyShown = String(shown.length);
  document.body.dataset.notifyReplayed = String(s.replayed);
  document.body.dataset.notifySubscriptions = JSON.stringify(client.subscriptions);
  showSubscriptions();
  window.dispatchEvent(new CustomEvent('notifydemo:update'));
}

window.notifyDemo = {
  client,
  flags,
  shown,
  appearedAt: (id) => appearedAt.get(id),
  stats: () => JSON.parse(JSON.stringify({ ...client.stats, state: client.state, shown: shown.length, unread: client.unread, replayedFlagged, replayedQuiet, replayedSummarized })),
};

export { client };

update();
client.start();
