// events.mjs - Forge product events built from the saved sample payloads
// (fixtures/), addressed to test users. With fixtures/rules.yml:
//   bugEvent({key, assignee})  -> rule bug-created notifies `assignee`
//                                  in context jira:issue:<key>
//   updatedEvent({key, reporter, assignee}) -> rule issue-updated notifies both
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const load = (name) => JSON.parse(readFileSync(path.join(here, '../fixtures', name), 'utf8'));
const CREATED = load('jira-created-issue.json');
const UPDATED = load('jira-updated-issue.json');

export const ctxOf = (key) => `jira:issue:${key}`;

export function bugEvent({ key = 'SP-10', assignee, summary = 'A descriptive title', selfGenerated = false, issuetype = 'Bug' } = {}) {
  const e = structuredClone(CREATED);
  e.issue.key = key;
  e.issue.fields.summary = summary;
  e.issue.fields.issuetype.name = issuetype;
  e.selfGenerated = selfGenerated;
  if (assignee === null) delete e.issue.fields.assignee;
  else if (assignee) e.issue.fields.assignee = { accountId: assignee, displayName: `User ${assignee}` };
  return e;
}

export function updatedEvent({ key = 'SP-10', reporter, assignee, summary = 'A descriptive title' } = {}) {
  const e = structuredClone(UPDATED);
  e.issue.key = key;
  e.issue.fields.summary = summary;
  if (reporter) e.issue.fields.reporter = { accountId: reporter };
  if (assignee) e.issue.fields.assignee = { accountId: assignee };
  return e;
}

/** The Forge Remote envelope: {"payload": event}. */
export const envelope = (event) => ({ payload: event });

let counter = 0;
/** A unique account id for one test (Atlassian-like hex). */
export function uniqueUser(tag = 'u') {
  counter += 1;
  return `${tag}${process.pid.toString(16)}${counter.toString(16).padStart(4, '0')}${Math.random().toString(16).slice(2, 10)}`;
}
