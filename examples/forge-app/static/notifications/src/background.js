// background.js - the Forge background script (jira:issueViewBackgroundScript
// and jira:globalBackgroundScript in manifest.yml) that shows notify-gateway's
// notifications as native flags. No backend of the app's own: the gateway
// mints the subscription token from the invocation's FIT.
//
//   invokeRemote (endpoint notify-subscription: POST /forge/subscription)
//     -> {token, exp, url, contexts}: this user, the contexts in view
//   NotifyClient (notify-client.js, a copy of web-demo/lib/notify-client.js)
//     -> websocket to `url`, every notification verified (ES256 batch
//        signature + inclusion proof, against the gateway's JWKS), once each
//   showFlag (@forge/bridge) per notification; actions navigate with router.
import { invokeRemote, showFlag, router } from '@forge/bridge';
import { NotifyClient } from './notify-client.js';

export const SUBSCRIPTION_PATH = '/forge/subscription';

/**
 * The token provider: one UI invocation of the gateway. Forge proxies it and
 * adds the FIT (this user as `principal`, the module's context); the answer
 * is {token, exp, url, contexts}. NotifyClient calls it again before exp.
 */
export async function getSubscription() {
  const res = await invokeRemote({ path: SUBSCRIPTION_PATH, method: 'POST' });
  const body = res && res.body;
  if (!res || res.status !== 200 || !body || typeof body.token !== 'string') {
    const why = body && body.error ? `${body.error}: ${body.message}` : 'no token';
    const err = new Error(`notify-gateway answered ${res ? res.status : 'nothing'} (${why})`);
    err.status = res ? res.status : 0;
    err.code = body && body.error;
    throw err;
  }
  return body;
}

/** A notification (claims.n) as @forge/bridge showFlag options. */
export function flagFor(n) {
  const type = ['info', 'success', 'warning', 'error'].includes(n.type) ? n.type : 'info';
  return {
    id: n.id,
    title: n.title,
    description: n.description || '',
    type,
    // Warnings and errors stay until closed, like Jira's own.
    isAutoDismiss: type === 'info' || type === 'success',
    actions: (Array.isArray(n.actions) ? n.actions : [])
      .filter((a) => a && typeof a.text === 'string' && typeof a.href === 'string')
      .map((a) => ({ text: a.text, onClick: () => router.navigate(a.href) })),
  };
}

/**
 * Starts the background script. Resolves the NotifyClient, or null when
 * this view has nothing to subscribe to (the gateway answered 403
 * no_context: say, the global script on a page without an issue).
 */
export async function start({ log = console } = {}) {
  let first;
  try {
    first = await getSubscription();
  } catch (e) {
    if (e.status === 403) {
      log.info(`notify-gateway: nothing to subscribe to here (${e.code})`);
      return null;
    }
    throw e;
  }
  let pending = first; // the first answer serves the first connection
  const client = new NotifyClient({
    tokenProvider: async () => {
      const t = pending || (await getSubscription());
      pending = null;
      return t;
    },
    contexts: first.contexts.filter((c) => c !== '*'),
    onNotification: (n) => showFlag(flagFor(n)),
  });
  client.addEventListener('rejected', (e) => log.warn(`notify-gateway: dropped (${e.detail.reason}) ${e.detail.message}`));
  client.addEventListener('forbidden', (e) => log.warn(`notify-gateway: not allowed: ${e.detail.ctx}`));
  client.start();
  return client;
}
