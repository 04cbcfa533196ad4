// demo-panel.js - the small "demo" control panel: fires sample Forge product
// events about this page's issue, addressed to this page's user, through the
// real intake path (POST /forge/events) with a FIT signed by the gateway's
// development Forge key (GET /dev/fit, development mode only).
import { user, issueKey, projectKey } from './context.js';

const OTHER = 'demo-reporter';
const project = { id: '10000', key: projectKey, name: 'Sample Project' };
const summary = () => document.getElementById('issue-summary').textContent;

function issue(fields) {
  return { id: '10073', key: issueKey, fields: { summary: summary(), project, ...fields } };
}

// Each sample matches a rule of the embedded default rules (docs/examples/default.yml).
const SAMPLES = [
  {
    label: 'Bug created',
    hint: 'rules bug-created (warning) and issue-created (info)',
    event: () => ({
      eventType: 'avi:jira:created:issue',
      issue: issue({ issuetype: { id: '10004', name: 'Bug' }, creator: { accountId: OTHER }, assignee: { accountId: user } }),
    }),
  },
  {
    label: 'Story created',
    hint: 'rule issue-created (info)',
    event: () => ({
      eventType: 'avi:jira:created:issue',
      issue: issue({ issuetype: { id: '10001', name: 'Story' }, creator: { accountId: OTHER }, assignee: { accountId: user } }),
    }),
  },
  {
    label: 'Status changed',
    hint: 'rule status-changed (info)',
    event: () => ({
      eventType: 'avi:jira:updated:issue',
      selfGenerated: false,
      atlassianId: OTHER,
      issue: issue({
        issuetype: { id: '10001', name: 'Story' },
        assignee: { accountId: user },
        reporter: { accountId: OTHER },
        status: { id: '10001', name: 'In Progress' },
      }),
      changelog: { items: [{ field: 'status', fieldId: 'status', from: '10000', fromString: 'To Do', to: '10001', toString: 'In Progress' }] },
    }),
  },
  {
    label: 'Comment added',
    hint: 'rule issue-commented (info)',
    event: () => ({
      eventType: 'avi:jira:commented:issue',
      selfGenerated: false,
      atlassianId: OTHER,
      issue: issue({ issuetype: { id: '10001', name: 'Story' }, assignee: { accountId: user } }),
      comment: { id: String(10100 + Math.floor(Math.random() * 900)), author: { accountId: OTHER } },
    }),
  },
  {
    label: 'App installed',
    hint: 'rule app-installed (success, context forge:app)',
    event: () => ({
      eventType: 'avi:forge:installed:app',
      id: 'ari:cloud:ecosystem::installation/00000000-0000-4000-8000-000000000001',
      installerAccountId: user,
      app: { id: 'ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000', version: '2.1.0', name: 'Notify demo app' },
    }),
  },
  {
    label: 'Bug for someone else',
    hint: 'assigned to another user: no flag may appear here',
    event: () => ({
      eventType: 'avi:jira:created:issue',
      issue: issue({ issuetype: { id: '10004', name: 'Bug' }, creator: { accountId: OTHER }, assignee: { accountId: `${user}-colleague` } }),
    }),
  },
];

const status = document.getElementById('demo-status');
let lastPost = '';

export async function fire(event) {
  const fit = await fetch('/dev/fit', { cache: 'no-store' });
  if (fit.status === 404) throw new Error('/dev/fit answered 404: the gateway has a real Forge key (not in development mode)');
  if (!fit.ok) throw new Error(`/dev/fit answered HTTP ${fit.status}`);
  const { token } = await fit.json();
  // The gateway drops redeliveries of an identical event (docs/protocol.md,
  // "Redelivery"): every demo event is a new one.
  event = { ...event, timestamp: String(Date.now()), demoNonce: Math.random().toString(36).slice(2) };
  const res = await fetch('/forge/events', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ payload: event }),
  });
  const body = await res.json().catch(() => ({}));
  if (res.status !== 202) throw new Error(`/forge/events answered ${res.status} ${body.error || ''}`);
  return body;
}

const box = document.getElementById('demo-buttons');
for (const s of SAMPLES) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'demo-button';
  b.textContent = s.label;
  b.title = s.hint;
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      const r = await fire(s.event());
      lastPost = `${s.label}: 202 accepted (trace ${r.traceId})`;
    } catch (e) {
      lastPost = `${s.label}: ${e.message}`;
    } finally {
      b.disabled = false;
      render();
    }
  });
  box.append(b);
}

function render() {
  const d = window.notifyDemo;
  const st = d ? d.stats() : null;
  const conn = st ? `${st.state} · shown ${st.shown} · rejected ${st.rejectedTotal}` : 'starting';
  status.textContent = `Websocket: ${conn}${lastPost ? ` — ${lastPost}` : ''}`;
}
window.addEventListener('notifydemo:update', render);
render();
