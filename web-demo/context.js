// context.js - who and where this page is: the product context a Forge
// background script would get from the bridge. Chosen by URL query:
//   /?user=alice&issue=SP-10   (defaults: alice, SP-10 - the sample payloads' issue)
//   &ttl=SECONDS               lifetime of the demo subscription token (default 3600)
const q = new URLSearchParams(location.search);

function pick(name, re, fallback) {
  const v = q.get(name);
  return v && re.test(v) ? v : fallback;
}

export const user = pick('user', /^[A-Za-z0-9:_.@-]{1,128}$/, 'alice');
export const issueKey = pick('issue', /^[A-Z][A-Z0-9_]{0,19}-[0-9]{1,9}$/, 'SP-10');
export const projectKey = issueKey.split('-')[0];
export const tokenTtl = Number(pick('ttl', /^[0-9]{1,5}$/, '3600'));
/** Contexts the background script subscribes to: this issue, and app-wide notices. */
export const issueContext = `jira:issue:${issueKey}`;
export const appContext = 'forge:app';
export const contexts = [issueContext, appContext];

/** This page's URL for another issue (keeps user and ttl). */
export function issueUrl(key) {
  const u = new URL(location.href);
  u.search = '';
  u.hash = '';
  u.searchParams.set('user', user);
  u.searchParams.set('issue', key);
  if (q.has('ttl')) u.searchParams.set('ttl', String(tokenTtl));
  return u.pathname + u.search;
}

export function initials(name) {
  const parts = String(name).split(/[^A-Za-z0-9]+/).filter(Boolean);
  const s = parts.length > 1 ? parts[0][0] + parts[1][0] : String(name).slice(0, 2);
  return s.toUpperCase();
}
