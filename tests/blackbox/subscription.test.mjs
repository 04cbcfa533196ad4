// POST /forge/subscription: a Forge UI invocation (FIT with principal and
// context, from forge-sim) gets a subscription token signed with the
// gateway's own key (ES256, typ notify-subscription+jwt) for the contexts its
// context yields; the websocket accepts it; bad inputs get the right status
// and nothing is minted. CORS: JWKS for any origin, preflights and answers for
// cors.allowed_origins, websocket Origin checked, /dev/* for loopback pages.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';

import { startGateway } from './lib/gateway.mjs';
import { ForgeSim, DEV_INSTALLATION, runSim } from './lib/forge-sim.mjs';
import { request, getJson, adminStatus } from './lib/http.mjs';
import { WsClient, subscriber } from './lib/ws.mjs';
import { bugEvent } from './lib/events.mjs';
import { jose, mintSub, makeKeys } from './lib/keys.mjs';
import { claimsOf, verifyNotification } from './lib/notification.mjs';

const APP = 'ari:cloud:ecosystem::app/6a0c6b8e-8f0e-4c1e-9d3b-2f6a9b1c0d11';
const PAGE_ORIGIN = 'http://127.0.0.1:9';

let sim;
let gw;
let keys;
before(async () => {
  sim = await ForgeSim.create({ appId: APP, installation: DEV_INSTALLATION });
  keys = await makeKeys();
  gw = await startGateway({
    keys: null,
    args: ['--forge-jwks', sim.jwksPath, '--forge-app-id', APP, '--subscriber-key', await subKeyFile(), '--subscriber-token-ttl', '60',
      '--cors-allowed-origins', `${PAGE_ORIGIN},https://*.example-cdn.net`],
  });
});
after(async () => {
  await gw?.stop();
  sim?.cleanup();
});

async function subKeyFile() {
  const { writeFileSync, mkdtempSync } = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ngw-subkey-'));
  const p = path.join(dir, 'subscriber.pem');
  writeFileSync(p, keys.sub.file);
  return p;
}

const issued = async () => (await adminStatus(gw)).json.counters.subscription_tokens_issued;
const post = (token, { headers = {}, body, path = '/forge/subscription' } = {}) => {
  const h = { ...headers };
  if (token) h.Authorization = `Bearer ${token}`;
  if (body !== undefined) h['Content-Type'] = h['Content-Type'] || 'application/json';
  return request(gw.port, { method: 'POST', path, headers: h, body });
};

describe('minting', () => {
  test('a UI invocation from forge-sim gets {token, exp, url}; the token is ES256 by our key and covers the issue', async () => {
    const r = await sim.ui(gw, { principal: 'alice-acct', issue: 'SP-10' });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const body = JSON.parse(r.stdout.split('\n')[1]);
    assert.deepEqual(Object.keys(body).sort(), ['contexts', 'exp', 'token', 'url']);
    assert.equal(body.url, `ws://127.0.0.1:${gw.port}/realtime`);
    assert.deepEqual(body.contexts, ['jira:issue:SP-10']);
    const jwks = jose.createLocalJWKSet((await getJson(gw.port, '/.well-known/jwks.json')).json);
    const { payload, protectedHeader } = await jose.jwtVerify(body.token, jwks, { algorithms: ['ES256'] });
    assert.equal(protectedHeader.typ, 'notify-subscription+jwt');
    assert.equal(payload.sub, 'alice-acct');
    assert.equal(payload.installation, DEV_INSTALLATION);
    assert.deepEqual(payload.ctx, ['jira:issue:SP-10']);
    assert.equal(payload.exp, body.exp);
    assert.equal(payload.exp - payload.iat, 60, 'subscriber.token_ttl');
    assert.match(payload.jti, /^[0-9a-f]{32}$/);
  });

  test('the websocket accepts the minted token; notifications arrive; other contexts are forbidden; refresh works', async () => {
    const fit = await sim.fit({ principal: 'bob-acct', issue: 'SP-11' });
    const r = await post(fit);
    assert.equal(r.status, 200, r.text);
    const c = await subscriber(gw, r.json.token, ['jira:issue:SP-11']);
    c.send({ op: 'subscribe', ctx: 'jira:issue:SP-12' });
    const forbidden = await c.waitFor((f) => f.op === 'error' && f.code === 'ctx_forbidden');
    assert.equal(forbidden.ctx, 'jira:issue:SP-12', 'ctx_forbidden names the context');
    const sent = await sim.send(gw, [bugEvent({ key: 'SP-11', assignee: 'bob-acct' })]);
    assert.equal(sent.code, 0, sent.stdout);
    const n = await c.waitOp('notification');
    const jwk = (await getJson(gw.port, '/.well-known/jwks.json')).json.keys[0];
    const { claims } = await verifyNotification(n, await jose.importJWK(jwk, 'ES256'));
    assert.equal(claims.sub, 'bob-acct');
    assert.equal(claimsOf(n).ctx, 'jira:issue:SP-11');
    // Refreshed the same way: a new invocation, connect again on the open socket.
    const again = await post(await sim.fit({ principal: 'bob-acct', issue: 'SP-11' }));
    c.send({ op: 'connect', token: again.json.token });
    await c.waitFor((f) => f.op === 'connected' && f.exp === again.json.exp);
    c.close();
  });

  test('forge-sim ui: a UI invocation needs --principal; one of --issue/--content/--context; the FIT carries the module', async () => {
    let r = await runSim(['ui', '--url', gw.url, '--keys', sim.dir]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--principal ACCOUNT is required/);
    r = await runSim(['fit', '--keys', sim.dir, '--principal', 'a', '--issue', 'X-1', '--content', '1']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /one of --issue, --content and --context/);
    const claims = JSON.parse(Buffer.from((await sim.fit({ principal: 'a', issue: 'X-1' })).split('.')[1], 'base64url'));
    assert.equal(claims.principal, 'a');
    assert.equal(claims.app.module.type, 'jira:issueViewBackgroundScript');
    assert.equal(claims.context.extension.issue.key, 'X-1');
    assert.equal(claims.context.moduleKey, claims.app.module.key);
    assert.equal(typeof claims.context.cloudId, 'string');
    const backend = JSON.parse(Buffer.from((await sim.fit({})).split('.')[1], 'base64url'));
    assert.equal(backend.principal, undefined);
    assert.equal(backend.context, undefined);
    assert.equal(backend.app.module.type, 'core:endpoint');
  });

  test('a Confluence page context, and templates from subscriber.contexts ("*" and the principal)', async () => {
    const r = await post(await sim.fit({ principal: 'carol', content: '5341185' }));
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.contexts, ['confluence:page:5341185']);
    const g2 = await startGateway({
      keys: null,
      args: ['--forge-jwks', sim.jwksPath, '--forge-app-id', APP, '--subscriber-contexts', '*, user:{{ principal }}, jira:issue:{{ context.extension.issue.key }}',
        '--forge-subscription-path', '/api/notify-token'],
    });
    try {
      // forge.subscription_path outside /forge/ gets its own mount; the default path is gone.
      const gone = await request(g2.port, { method: 'POST', path: '/forge/subscription', headers: { Authorization: `Bearer ${await sim.fit({ principal: 'carol' })}` } });
      assert.equal(gone.status, 405, 'an unknown path: POST is not allowed there');
      const r2 = await request(g2.port, { method: 'POST', path: '/api/notify-token', headers: { Authorization: `Bearer ${await sim.fit({ principal: 'carol' })}` } });
      assert.equal(r2.status, 200, r2.text);
      assert.deepEqual(r2.json.contexts, ['*', 'user:carol'], 'the issue template yields nothing without an issue');
      // "*" lets a global background script subscribe to whatever it shows.
      const c = await subscriber(g2, r2.json.token, ['jira:issue:ANY-1', 'confluence:page:9']);
      c.close();
    } finally {
      await g2.stop();
    }
  });
});

describe('bad inputs: the right status, nothing minted', () => {
  test('each refusal', async () => {
    const before = await issued();
    const other = sim.as({ appId: 'ari:cloud:ecosystem::app/00000000-1111-4000-8000-000000000000' });
    const cases = [
      ['no FIT', () => post(null), 401, 'token_missing'],
      ['a backend FIT (no principal)', async () => post(await sim.fit({})), 403, 'principal_missing'],
      ['a FIT for another app', async () => post(await other.fit({ principal: 'alice', issue: 'SP-10' })), 401, 'token_bad_audience'],
      ['a context that yields no allowed context', async () => post(await sim.fit({ principal: 'alice' })), 403, 'no_context'],
      ['a principal but no context at all', async () => post(await sim.fit({ principal: 'alice', context: '{}' }).then(dropContext)), 403, 'context_missing'],
      ['a huge context value', async () => post(await sim.fit({ principal: 'alice', issue: `SP-${'9'.repeat(3000)}` })), 400, 'context_too_large'],
      ['a control character in the context', async () => post(await sim.fit({ principal: 'alice', context: JSON.stringify({ extension: { issue: { key: 'SP-1\nX' } } }) })), 400, 'bad_context'],
      ['a huge body', async () => post(await sim.fit({ principal: 'alice', issue: 'SP-10' }), { body: { pad: 'x'.repeat(10000) } }), 413, 'payload_too_large'],
      ['GET', () => request(gw.port, { method: 'GET', path: '/forge/subscription' }), 405, 'method_not_allowed'],
      ['a tampered FIT', async () => post(tamper(await sim.fit({ principal: 'alice', issue: 'SP-10' }))), 401, 'token_bad_signature'],
    ];
    for (const [what, send, status, code] of cases) {
      const r = await send();
      assert.equal(r.status, status, `${what}: ${r.status} ${r.text}`);
      assert.equal(r.json?.error, code, `${what}: ${r.text}`);
      assert.equal(r.json.token, undefined);
    }
    assert.equal(await issued(), before, 'nothing minted');
  });

  test('the websocket: a token typed as ours but signed with the subscriber key, and a batch JWS, are refused', async () => {
    const fake = await mintSub(keys, { sub: 'alice', ctx: ['jira:issue:SP-10'], header: { typ: 'notify-subscription+jwt' }, installation: DEV_INSTALLATION });
    let c = await WsClient.open(gw.wsUrl);
    c.send({ op: 'connect', token: fake });
    let e = await c.waitOp('error');
    assert.match(e.code, /^token_/);
    c.close();
    // subscriber.key keeps working for apps that mint their own tokens
    const own = await mintSub(keys, { sub: 'alice', ctx: ['jira:issue:SP-10'], installation: DEV_INSTALLATION });
    const ok = await subscriber(gw, own, ['jira:issue:SP-10']);
    ok.close();
    // A notification batch is signed with the same key, but is no subscription token.
    const bob = await subscriber(gw, (await post(await sim.fit({ principal: 'dan', issue: 'SP-20' }))).json.token, ['jira:issue:SP-20']);
    await sim.send(gw, [bugEvent({ key: 'SP-20', assignee: 'dan' })]);
    const n = await bob.waitOp('notification');
    bob.close();
    c = await WsClient.open(gw.wsUrl);
    c.send({ op: 'connect', token: n.proof.batch });
    e = await c.waitOp('error');
    assert.match(e.code, /^token_/);
    c.close();
  });
});

// Another user in the claims, the signature kept.
function tamper(fit) {
  const [h, p, sig] = fit.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  claims.principal = 'mallory';
  return `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig}`;
}

// A FIT carrying principal but no context claim: re-signed by forge-sim with --context '{}' then the claim removed is
// not possible without the key, so the sim's key dir signs it here through jose.
async function dropContext(fit) {
  const { readFileSync } = await import('node:fs');
  const path = await import('node:path');
  const pem = readFileSync(path.join(sim.dir, 'forge-sim-key.pem'), 'utf8');
  const key = await jose.importPKCS8(pem, 'RS256');
  const [h, p] = fit.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  delete claims.context;
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  return new jose.SignJWT(claims).setProtectedHeader(header).sign(key);
}

describe('CORS and origins', () => {
  test('JWKS: Access-Control-Allow-Origin * and cacheable', async () => {
    const r = await request(gw.port, { path: '/.well-known/jwks.json', headers: { Origin: 'https://anything.example' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], '*');
    assert.match(r.headers['cache-control'], /max-age=\d+/);
    assert.doesNotMatch(r.headers['cache-control'], /no-store/);
  });

  test('preflight: allowed origins (exact and https://*.domain) get 204 and the headers; others 403', async () => {
    for (const origin of [PAGE_ORIGIN, 'https://a1b2.example-cdn.net', 'https://x.y.example-cdn.net']) {
      const r = await request(gw.port, {
        method: 'OPTIONS', path: '/forge/subscription',
        headers: { Origin: origin, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization,content-type' },
      });
      assert.equal(r.status, 204, origin);
      assert.equal(r.headers['access-control-allow-origin'], origin);
      assert.match(r.headers['access-control-allow-methods'], /POST/);
      assert.match(r.headers['access-control-allow-headers'], /authorization/i);
      assert.match(r.headers.vary, /Origin/);
    }
    for (const origin of ['https://example-cdn.net', 'http://a.example-cdn.net', 'https://a.example-cdn.net:444', 'https://evil.example', 'https://a.example-cdn.net.evil.example']) {
      const r = await request(gw.port, { method: 'OPTIONS', path: '/forge/subscription', headers: { Origin: origin, 'Access-Control-Request-Method': 'POST' } });
      assert.equal(r.status, 403, origin);
      assert.equal(r.headers['access-control-allow-origin'], undefined, origin);
    }
  });

  test('POST from an allowed origin carries Access-Control-Allow-Origin; from another origin: 403, nothing minted', async () => {
    const fit = await sim.fit({ principal: 'erin', issue: 'SP-30' });
    const ok = await post(fit, { headers: { Origin: PAGE_ORIGIN } });
    assert.equal(ok.status, 200, ok.text);
    assert.equal(ok.headers['access-control-allow-origin'], PAGE_ORIGIN);
    const before = await issued();
    const bad = await post(await sim.fit({ principal: 'erin', issue: 'SP-30' }), { headers: { Origin: 'https://evil.example' } });
    assert.equal(bad.status, 403);
    assert.equal(bad.json.error, 'origin_not_allowed');
    assert.equal(await issued(), before);
  });

  test('websocket Origin: none, same origin and allowed origins connect; others get origin_not_allowed and close 1008', async () => {
    const token = (await post(await sim.fit({ principal: 'fay', issue: 'SP-40' }))).json.token;
    for (const origin of [undefined, `http://127.0.0.1:${gw.port}`, PAGE_ORIGIN, 'https://q.example-cdn.net']) {
      const c = await WsClient.open(gw.wsUrl, { origin });
      c.send({ op: 'connect', token });
      await c.waitOp('connected');
      c.close();
    }
    const c = await WsClient.open(gw.wsUrl, { origin: 'https://evil.example' });
    const e = await c.waitOp('error');
    assert.equal(e.code, 'origin_not_allowed');
    const closed = await c.closed;
    assert.equal(closed.code, 1008);
    assert.equal(closed.reason, 'origin_not_allowed');
  });

  test('development mode: /dev/* answers CORS for loopback origins only', async () => {
    const dev = await startGateway({ keys: null });
    try {
      for (const origin of ['http://127.0.0.1:5173', 'http://localhost:3000', 'http://[::1]:8081']) {
        const r = await request(dev.port, { path: '/dev/token?sub=alice&ctx=jira:issue:SP-10', headers: { Origin: origin } });
        assert.equal(r.status, 200);
        assert.equal(r.headers['access-control-allow-origin'], origin, origin);
      }
      for (const origin of ['https://example.com', 'http://127.0.0.1.example.com', 'http://localhost.evil:80']) {
        const r = await request(dev.port, { path: '/dev/fit', headers: { Origin: origin } });
        assert.equal(r.headers['access-control-allow-origin'], undefined, origin);
      }
    } finally {
      await dev.stop();
    }
  });
});

test('config: a bad origin or path is refused at start with a clear message', async () => {
  const { runCli } = await import('./lib/gateway.mjs');
  for (const [args, re] of [
    [['--cors-allowed-origins', 'cdn.example.com'], /cors.allowed_origins: 'cdn.example.com' is not an origin/],
    [['--cors-allowed-origins', 'https://a.example/path'], /is not an origin/],
    [['--forge-subscription-path', 'subscription'], /forge.subscription_path must be a path/],
  ]) {
    const r = await runCli([...args, '--listen', '127.0.0.1:0']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, re);
  }
});

