// page.js - the (static) issue view: fills in the user and issue from the URL.
import { user, issueKey, issueUrl, initials } from './context.js';

const $ = (id) => document.getElementById(id);
document.title = `${issueKey} · Sample Project · notify-gateway demo`;
$('issue-key').textContent = issueKey;
$('issue-key').href = issueUrl(issueKey);
$('current-user-name').textContent = user;
$('current-user-avatar').textContent = initials(user);
$('assignee-name').textContent = user;
$('assignee-avatar').textContent = initials(user);
