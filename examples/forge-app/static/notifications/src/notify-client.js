// notify-client.js - a dependency-free browser client for notify-gateway.
//
// It connects to the gateway's websocket (/realtime), authenticates with a
// subscription token from a token provider, subscribes to contexts, verifies
// every notification against the gateway's JWKS with WebCrypto (the ES256
// batch JWS, then the Merkle inclusion proof of the claims in it), drops
// what is not for this user and these contexts, and delivers each notification
// id at most once, across reconnects. It reconnects with exponential backoff
// and jitter, and refreshes the token before it expires.
//
// Contract: docs/protocol.md. Usage: docs/frontend.md.
//
//   import { NotifyClient } from './lib/notify-client.js';
//   const client = new NotifyClient({
//     // a token provider: {token, exp[, url]} (or a string); called again before exp
//     getToken: async () => (await fetch('/my-backend/notify-token')).json(),
//     url: 'wss://gateway.example.com/realtime', // or the provider's `url`
//     contexts: ['jira:issue:SP-10'],
//     onNotification: (n, claims) => flags.show(n),
//   });
//   client.start();

const te = new TextEncoder();
const td = new TextDecoder('utf-8', { fatal: true });

/** base64url → Uint8Array; throws on characters outside the alphabet. */
export function b64urlDecode(s) {
  if (typeof s !== 'string' || !/^[A-Za-z0-9_-]*$/.test(s) || s.length % 4 === 1) throw new Error('bad base64url');
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function decodeJsonPart(part) {
  const v = JSON.parse(td.decode(b64urlDecode(part)));
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
  return v;
}

/** The claims of a JWT, NOT verified (used only to read our own token's sub/exp). */
export function peekClaims(token) {
  const parts = String(token).split('.');
  if (parts.length !== 3) throw new Error('not a compact JWS');
  return decodeJsonPart(parts[1]);
}

/** Why a message was dropped; each is a counter in client.stats.rejected. */
export const REJECT_REASONS = Object.freeze([
  'malformed', // no claims/proof, undecodable base64url or JSON, missing claims
  'bad_alg', // the batch JWS header's alg is not ES256
  'unknown_kid', // no key with the batch's kid, even after refetching the JWKS
  'bad_signature', // the batch signature or the claims' inclusion proof does not verify
  'wrong_sub', // addressed to another user
  'wrong_ctx', // addressed to a context this client did not subscribe to
  'expired', // exp has passed
  'wrong_iss', // issuer differs from options.issuer (when set)
  'wrong_installation', // another Forge installation than the token's
]);

class Rejected extends Error {
  constructor(reason, message) {
    super(message || reason);
    this.reason = reason;
  }
}

/**
 * The JWKS could not be fetched (network, CORS, HTTP status, not a key set).
 * Not a verdict on the message: the client holds it and retries (state
 * 'keys_unavailable'), it never delivers it unverified.
 */
export class JwksUnavailable extends Error {
  constructor(message) {
    super(message);
    this.name = 'JwksUnavailable';
  }
}

/**
 * Keys from a JWKS URL, cached by kid. An unknown kid triggers a refetch,
 * at most once per `minRefetchMs` (concurrent misses share one fetch). A
 * failed fetch is not a verdict: get() throws JwksUnavailable, and the next
 * get() fetches again (the caller paces retries).
 */
export class JwksCache {
  constructor(url, { fetch: fetchImpl, minRefetchMs = 2000, subtle } = {}) {
    this.url = url;
    this.fetch = fetchImpl || globalThis.fetch.bind(globalThis);
    this.subtle = subtle || globalThis.crypto.subtle;
    this.minRefetchMs = minRefetchMs;
    this.keys = new Map(); // kid -> Promise<CryptoKey>
    this.lastFetch = -Infinity;
    this.inflight = null;
    this.fetches = 0;
    this.lastError = null; // the last fetch failed: the next get() fetches again
  }

  async refresh() {
    if (this.inflight) return this.inflight;
    this.lastFetch = Date.now();
    this.fetches++;
    this.inflight = (async () => {
      let body;
      try {
        const res = await this.fetch(this.url, { cache: 'no-store', credentials: 'omit' });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        body = await res.json();
        if (!body || !Array.isArray(body.keys)) throw new Error('not a JWKS (no "keys" array)');
      } catch (e) {
        this.lastError = e;
        throw new JwksUnavailable(`JWKS ${this.url}: ${e && e.message ? e.message : e}`);
      }
      this.lastError = null;
      const next = new Map();
      for (const jwk of body.keys) {
        if (!jwk || jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.kid !== 'string') continue;
        if (jwk.alg && jwk.alg !== 'ES256') continue;
        if (jwk.use && jwk.use !== 'sig') continue;
        const p = this.subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, ext: true },
          { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
        p.catch(() => {}); // a bad key only matters when it is used
        next.set(jwk.kid, p);
      }
      this.keys = next;
    })();
    try {
      await this.inflight;
    } finally {
      this.inflight = null;
    }
  }

  /** The key for kid, or null when the JWKS does not have it; throws JwksUnavailable. */
  async get(kid) {
    if (!this.keys.has(kid)) {
      if (this.inflight) await this.inflight;
      else if (this.lastError || Date.now() - this.lastFetch >= this.minRefetchMs) await this.refresh();
    }
    const p = this.keys.get(kid);
    return p ? p : null;
  }
}

/** How many verified batch signatures each key cache remembers. */
export const BATCH_CACHE_SIZE = 64;
const batchCaches = new WeakMap(); // jwks -> Map(batch string -> Promise<{root, size, iss}>)

/**
 * Verifies a batch JWS (proof.batch): ES256 over header.payload with the
 * JWKS key named by kid. Resolves the signed {root (32 bytes), size, iss};
 * throws Rejected.
 */
async function verifyBatch(batch, jwks) {
  const parts = batch.split('.');
  if (parts.length !== 3) throw new Rejected('malformed', 'proof.batch is not a compact JWS');
  let header, payload, sig;
  try {
    header = decodeJsonPart(parts[0]);
    sig = b64urlDecode(parts[2]);
  } catch (e) {
    throw new Rejected('malformed', `undecodable batch JWS: ${e.message}`);
  }
  if (header.alg !== 'ES256') throw new Rejected('bad_alg', `alg ${JSON.stringify(header.alg)}`);
  if (sig.length !== 64) throw new Rejected('bad_signature', 'ES256 signature must be 64 bytes');
  if (typeof header.kid !== 'string') throw new Rejected('unknown_kid', 'no kid');
  const key = await jwks.get(header.kid);
  if (!key) throw new Rejected('unknown_kid', `kid ${header.kid}`);
  const ok = await jwks.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, await key, sig,
    te.encode(`${parts[0]}.${parts[1]}`));
  if (!ok) throw new Rejected('bad_signature', 'batch signature');
  // Signed from here on; still check its shape.
  let root;
  try {
    payload = decodeJsonPart(parts[1]);
  } catch (e) {
    throw new Rejected('malformed', `undecodable batch payload: ${e.message}`);
  }
  try {
    root = b64urlDecode(payload.root);
  } catch {
    throw new Rejected('malformed', 'batch root is not base64url');
  }
  if (root.length !== 32) throw new Rejected('malformed', 'batch root must be 32 bytes');
  const size = payload.size;
  if (!Number.isSafeInteger(size) || size < 1) throw new Rejected('malformed', `batch size ${JSON.stringify(size)}`);
  return { root, size, iss: payload.iss };
}

/** verifyBatch through a bounded per-JWKS cache: one ECDSA check per batch string. */
function verifiedBatch(batch, jwks) {
  let cache = batchCaches.get(jwks);
  if (!cache) {
    cache = new Map();
    batchCaches.set(jwks, cache);
  }
  let p = cache.get(batch);
  if (p) {
    cache.delete(batch); // most recently used last
  } else {
    p = verifyBatch(batch, jwks);
    // A failure is not remembered: the next message re-checks (a kid may appear).
    p.catch(() => {
      if (cache.get(batch) === p) cache.delete(batch);
    });
  }
  cache.set(batch, p);
  while (cache.size > BATCH_CACHE_SIZE) cache.delete(cache.keys().next().value);
  return p;
}

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

async function sha256(subtle, prefix, ...parts) {
  let len = 1;
  for (const p of parts) len += p.length;
  const buf = new Uint8Array(len);
  buf[0] = prefix;
  let o = 1;
  for (const p of parts) {
    buf.set(p, o);
    o += p.length;
  }
  return new Uint8Array(await subtle.digest('SHA-256', buf));
}

/**
 * RFC 9162 §2.1.3.2: does `path` prove that the leaf `claimBytes` is entry
 * `index` of the tree of `size` leaves with root hash `root`?
 * (leaf = SHA-256(0x00 || claims bytes), node = SHA-256(0x01 || left || right))
 */
export async function verifyInclusion(subtle, claimBytes, index, path, size, root) {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  if (!Array.isArray(path) || path.length > 64) return false;
  let r = await sha256(subtle, 0x00, claimBytes);
  let fn = index;
  let sn = size - 1;
  for (const p of path) {
    if (sn === 0) return false; // path too long
    if (p.length !== 32) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(subtle, 0x01, p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = await sha256(subtle, 0x01, r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && sameBytes(r, root); // sn != 0: path too short
}

/**
 * Verifies a notification frame {claims, proof: {batch, index, path}}
 * (docs/protocol.md, "Notification claims and proof"): the batch JWS
 * (ES256, key by kid from the JWKS; cached per batch string), then the
 * RFC 9162 inclusion proof of the claims bytes under the batch's root, then
 * the claims. Resolves the claims, or throws an error with .reason in
 * REJECT_REASONS (every failed proof is 'bad_signature'; bad_alg and
 * unknown_kid concern the batch JWS header).
 * expect: {sub, contexts: Set | fn(ctx) -> bool, installation?, issuer?, now?, leeway?}
 */
export async function verifyNotification(frame, jwks, expect) {
  const proof = frame && typeof frame === 'object' ? frame.proof : null;
  if (typeof frame?.claims !== 'string' || !proof || typeof proof !== 'object' ||
      typeof proof.batch !== 'string' || !Array.isArray(proof.path)) {
    throw new Rejected('malformed', 'not a notification with claims and proof');
  }
  if (!Number.isSafeInteger(proof.index)) throw new Rejected('malformed', `proof.index ${JSON.stringify(proof.index)}`);
  let claimBytes, path;
  try {
    claimBytes = b64urlDecode(frame.claims);
    path = proof.path.map((p) => b64urlDecode(p));
  } catch (e) {
    throw new Rejected('malformed', `undecodable claims or proof: ${e.message}`);
  }
  const batch = await verifiedBatch(proof.batch, jwks);
  if (proof.index < 0 || proof.index >= batch.size) throw new Rejected('bad_signature', `index ${proof.index} outside the batch of ${batch.size}`);
  if (!(await verifyInclusion(jwks.subtle, claimBytes, proof.index, path, batch.size, batch.root))) {
    throw new Rejected('bad_signature', 'the claims are not in the signed batch');
  }
  // Only signed claims from here on.
  let claims;
  try {
    claims = JSON.parse(td.decode(claimBytes));
  } catch (e) {
    throw new Rejected('malformed', `undecodable claims: ${e.message}`);
  }
  if (!claims || typeof claims !== 'object' || Array.isArray(claims)) throw new Rejected('malformed', 'claims are not a JSON object');
  const now = expect.now ? expect.now() : Date.now();
  const leeway = (expect.leeway || 0) * 1000;
  if (typeof claims.exp !== 'number') throw new Rejected('malformed', 'no exp');
  if (claims.exp * 1000 + leeway <= now) throw new Rejected('expired', `exp ${claims.exp}`);
  if (expect.issuer && (claims.iss !== expect.issuer || batch.iss !== expect.issuer)) {
    throw new Rejected('wrong_iss', `iss ${claims.iss} (batch ${batch.iss})`);
  }
  if (expect.installation && claims.installation !== expect.installation) {
    throw new Rejected('wrong_installation', `installation ${claims.installation}`);
  }
  if (typeof claims.sub !== 'string' || claims.sub !== expect.sub) throw new Rejected('wrong_sub', 'another user');
  const ctxOk = typeof expect.contexts === 'function' ? expect.contexts(claims.ctx) : expect.contexts.has(claims.ctx);
  if (typeof claims.ctx !== 'string' || !ctxOk) throw new Rejected('wrong_ctx', `ctx ${claims.ctx}`);
  const n = claims.n;
  if (!n || typeof n !== 'object' || typeof n.id !== 'string' || !n.id || typeof n.title !== 'string') {
    throw new Rejected('malformed', 'no notification object');
  }
  return claims;
}

/** A set that forgets its oldest entries beyond `limit`. */
class BoundedSet {
  constructor(limit) {
    this.limit = limit;
    this.set = new Set();
  }
  has(v) {
    return this.set.has(v);
  }
  add(v) {
    this.set.add(v);
    while (this.set.size > this.limit) this.set.delete(this.set.values().next().value);
  }
}

const DEFAULTS = {
  jwksUrl: null, // default: /.well-known/jwks.json on the websocket's host
  issuer: null, // when set, notifications must carry this iss
  user: null, // expected sub; default: the token's sub
  leeway: 0, // seconds of clock skew tolerated on exp
  backoff: { initial: 500, max: 30000, factor: 2 },
  jwksBackoff: { initial: 500, max: 30000, factor: 2 }, // retries of an unreachable JWKS
  maxHeld: 1000, // notifications held (unverified, not shown) while the JWKS is unreachable
  refreshMargin: null, // ms before exp to refresh; default: a quarter of the lifetime, 2 s .. 60 s
  rememberIds: 5000, // delivered notification ids remembered for deduplication
  pingInterval: 25000, // ms between pings while idle; 0 = never
  pingTimeout: 10000, // no pong within this: reconnect
};

/** Per-context subscription states (client.subscriptionState(ctx), client.subscriptions). */
export const SUBSCRIPTION_STATES = Object.freeze(['pending', 'subscribed', 'forbidden']);

function backoffDelay(b, attempt) {
  const ceiling = Math.min(b.max, b.initial * Math.pow(b.factor, attempt));
  // "Equal jitter": half fixed, half random, so clients restarted together spread out.
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

/**
 * NotifyClient. Events (addEventListener): 'notification' (detail {n, claims}),
 * 'rejected' (detail {reason, message}), 'state' (detail {state}), 'error'
 * (detail {code, message}), 'subscribed' / 'forbidden' / 'recovered'
 * (detail {ctx}), 'subscriptions' (detail {contexts: {ctx: state}}), 'keys'
 * (detail {state: 'unavailable'|'ok', message, retryInMs}).
 * States: idle, connecting, authenticating, open, keys_unavailable (open, but
 * the JWKS cannot be fetched: notifications are held, not shown), waiting
 * (backoff), stopped.
 */
export class NotifyClient extends EventTarget {
  constructor(options) {
    super();
    const provider = options && (options.getToken || options.tokenProvider);
    if (typeof provider !== 'function') throw new TypeError('NotifyClient: getToken (a token provider) is required');
    this.opts = {
      ...DEFAULTS,
      ...options,
      backoff: { ...DEFAULTS.backoff, ...(options.backoff || {}) },
      jwksBackoff: { ...DEFAULTS.jwksBackoff, ...(options.jwksBackoff || {}) },
    };
    this.provider = provider;
    // The websocket URL: the option, else the token provider's `url`, else this page's host.
    this.url = this.opts.url || null;
    this.WebSocket = this.opts.WebSocket || globalThis.WebSocket;
    this.jwks = this.opts.jwks || null; // made once the URL is known
    this.contexts = new Set(this.opts.contexts || []);
    this.subState = new Map(); // ctx -> pending | subscribed | forbidden
    this.everForbidden = new Set(); // contexts refused at least once (for 'recovered')
    this.pendingSubs = []; // subscribe frames sent, not yet answered, in order
    this.delivered = new BoundedSet(this.opts.rememberIds);
    this.state = 'idle';
    this.ws = null;
    this.attempt = 0;
    this.timers = { retry: null, refresh: null, ping: null, pong: null, jwks: null };
    this.token = null;
    this.sub = this.opts.user || null;
    this.installation = null; // from our own token, when it names one
    this.lastSeq = 0;
    this.queue = Promise.resolve(); // verification keeps message order
    this.held = 0; // frames waiting in the queue
    this.keysState = 'unknown'; // unknown | ok | unavailable
    this.jwksAttempt = 0;
    this.jwksWake = null; // resolves the current JWKS retry wait early
    this.stats = {
      connects: 0, // websocket connections that reached 'connected'
      reconnects: 0, // connection attempts after the first
      refreshes: 0, // tokens refreshed in place
      received: 0, // notification frames received
      delivered: 0, // notifications handed to the application
      duplicates: 0, // verified, but this n.id was delivered already
      rejected: Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])),
      rejectedTotal: 0,
      errors: 0, // error frames from the server
      jwksFailures: 0, // JWKS fetches that failed (each retried)
      heldDropped: 0, // notifications dropped because more than maxHeld waited for the JWKS
    };
    if (typeof this.opts.onNotification === 'function') {
      this.addEventListener('notification', (e) => this.opts.onNotification(e.detail.n, e.detail.claims));
    }
    this._online = () => {
      if (this.state === 'waiting') this._retryNow();
      if (this.jwksWake) this.jwksWake();
    };
  }

  /** Opens the connection (and keeps it open until stop()). */
  start() {
    if (this.state !== 'idle' && this.state !== 'stopped') return this;
    if (globalThis.addEventListener) globalThis.addEventListener('online', this._online);
    this._open();
    return this;
  }

  /** Closes the connection for good; start() may be called again later. */
  stop() {
    this._clearTimers();
    if (globalThis.removeEventListener) globalThis.removeEventListener('online', this._online);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try {
        ws.close(1000, 'client stop');
      } catch {
        /* ignore */
      }
    }
    this._setState('stopped');
    if (this.jwksWake) this.jwksWake();
  }

  subscribe(ctx) {
    if (this.contexts.has(ctx)) return;
    this.contexts.add(ctx);
    if (this._sendSubscribe(ctx)) this._setSub(ctx, 'pending');
  }

  unsubscribe(ctx) {
    if (!this.contexts.delete(ctx)) return;
    this._send({ op: 'unsubscribe', ctx });
    this.subState.delete(ctx);
    this.everForbidden.delete(ctx);
    this._emitSubscriptions();
  }

  /** 'pending' | 'subscribed' | 'forbidden' | undefined (not asked for). */
  subscriptionState(ctx) {
    return this.subState.get(ctx);
  }

  /** {ctx: state} for every context asked for ('pending' until the server answered). */
  get subscriptions() {
    const out = {};
    for (const ctx of this.contexts) out[ctx] = this.subState.get(ctx) || 'pending';
    return out;
  }

  /** True when the connection is open but no context is subscribed (all refused or pending). */
  get subscribedToNothing() {
    for (const s of this.subState.values()) if (s === 'subscribed') return false;
    return true;
  }

  // --- internals -------------------------------------------------------

  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: { state } }));
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _emitError(code, message) {
    this._emit('error', { code, message });
  }

  _emitSubscriptions() {
    this._emit('subscriptions', { contexts: this.subscriptions });
  }

  _setSub(ctx, state) {
    if (!this.contexts.has(ctx)) return;
    const was = this.subState.get(ctx);
    this.subState.set(ctx, state);
    if (state === 'subscribed' && was !== 'subscribed') {
      this._emit('subscribed', { ctx });
      if (this.everForbidden.has(ctx)) {
        this.everForbidden.delete(ctx);
        this._emit('recovered', { ctx });
      }
    } else if (state === 'forbidden' && was !== 'forbidden') {
      this.everForbidden.add(ctx);
      this._emit('forbidden', { ctx });
    }
    if (was !== state) this._emitSubscriptions();
  }

  _clearTimers() {
    for (const k of Object.keys(this.timers)) {
      clearTimeout(this.timers[k]);
      this.timers[k] = null;
    }
  }

  _send(frame) {
    const ws = this.ws;
    // While authenticating the server queues frames behind 'connect'.
    if (ws && ws.readyState === 1 && this._live()) {
      ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  _live() {
    return this.state === 'open' || this.state === 'authenticating' || this.state === 'keys_unavailable';
  }

  _sendSubscribe(ctx) {
    if (!this._send({ op: 'subscribe', ctx })) return false;
    this.pendingSubs.push(ctx);
    return true;
  }

  async _fetchToken() {
    const t = await this.provider();
    const token = typeof t === 'string' ? t : t && t.token;
    if (typeof token !== 'string' || !token) throw new Error('token provider returned no token');
    const claims = peekClaims(token);
    if (this.opts.user == null) {
      if (this.sub && claims.sub !== this.sub) throw new Error('token provider changed the user');
      this.sub = claims.sub;
    }
    if (typeof claims.installation === 'string') this.installation = claims.installation;
    // The provider's exp (seconds) wins when it is earlier: it may know better (a proxy's cache).
    let exp = typeof claims.exp === 'number' ? claims.exp : null;
    if (t && typeof t === 'object' && typeof t.exp === 'number' && (exp == null || t.exp < exp)) exp = t.exp;
    if (!this.url) this.url = t && typeof t === 'object' && typeof t.url === 'string' && t.url ? t.url : defaultUrl();
    if (!this.jwks) this.jwks = new JwksCache(this.opts.jwksUrl || jwksUrlFor(this.url), { fetch: this.opts.fetch });
    return { token, exp, iat: claims.iat };
  }

  async _open() {
    this._clearTimers();
    this._setState('connecting');
    if (this.stats.connects > 0 || this.attempt > 0) this.stats.reconnects++;
    let tok;
    try {
      tok = await this._fetchToken();
    } catch (e) {
      if (this.state === 'stopped') return;
      this._emitError('token_provider', String(e && e.message ? e.message : e));
      this._scheduleRetry();
      return;
    }
    if (this.state === 'stopped') return;
    this.token = tok;
    let ws;
    try {
      ws = new this.WebSocket(this.url);
    } catch (e) {
      this._emitError('websocket', String(e.message || e));
      this._scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this._setState('authenticating');
      // connect and the subscriptions in one go (the server keeps the order).
      ws.send(JSON.stringify({ op: 'connect', token: tok.token }));
      this.pendingSubs = [];
      for (const ctx of this.contexts) {
        this._sendSubscribe(ctx);
        this._setSub(ctx, 'pending');
      }
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this._onFrame(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this._clearTimers();
      if (this.state === 'stopped') return;
      this._emitError('closed', `websocket closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`);
      this._scheduleRetry();
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  _scheduleRetry() {
    if (this.state === 'stopped') return;
    const delay = backoffDelay(this.opts.backoff, this.attempt);
    this.attempt++;
    this.nextRetryMs = delay;
    this._setState('waiting');
    this.timers.retry = setTimeout(() => this._open(), delay);
  }

  _retryNow() {
    clearTimeout(this.timers.retry);
    this.attempt = 0;
    this._open();
  }

  _scheduleRefresh() {
    clearTimeout(this.timers.refresh);
    const exp = this.token && this.token.exp;
    if (!exp) return;
    const now = Date.now();
    const lifetime = exp * 1000 - (this.token.iat ? this.token.iat * 1000 : now);
    const margin = this.opts.refreshMargin != null ? this.opts.refreshMargin
      : Math.min(60000, Math.max(2000, lifetime / 4));
    const delay = Math.max(0, exp * 1000 - margin - now);
    this.timers.refresh = setTimeout(() => this._refresh(), delay);
  }

  async _refresh() {
    const ws = this.ws;
    let tok;
    try {
      tok = await this._fetchToken();
    } catch (e) {
      this._emitError('token_provider', String(e && e.message ? e.message : e));
      // Try again soon; if the token expires meanwhile the server closes and we reconnect.
      this.timers.refresh = setTimeout(() => this._refresh(), 2000);
      return;
    }
    if (this.ws !== ws || !ws || !this._live() || this.state === 'authenticating') return;
    this.token = tok;
    this.refreshPending = true;
    ws.send(JSON.stringify({ op: 'connect', token: tok.token }));
  }

  _schedulePing() {
    clearTimeout(this.timers.ping);
    if (!this.opts.pingInterval) return;
    this.timers.ping = setTimeout(() => {
      const ws = this.ws;
      if (!ws || !this._live() || this.state === 'authenticating') return;
      const id = Date.now();
      ws.send(JSON.stringify({ op: 'ping', id }));
      this.timers.pong = setTimeout(() => {
        if (this.ws === ws) {
          this._emitError('ping_timeout', 'no pong');
          try {
            ws.close(4000, 'ping timeout');
          } catch {
            /* ignore */
          }
          // Do not wait for the close handshake of a dead connection.
          this.ws = null;
          this._scheduleRetry();
        }
      }, this.opts.pingTimeout);
    }, this.opts.pingInterval);
  }

  /** After a (re)connect: what the token allows now (connected.ctx). */
  _onConnected(f) {
    const allowed = Array.isArray(f.ctx) ? new Set(f.ctx) : null;
    const refresh = this.refreshPending;
    if (refresh) {
      this.refreshPending = false;
      this.stats.refreshes++;
    } else {
      this.stats.connects++;
    }
    this.attempt = 0;
    this._setState(this.keysState === 'unavailable' ? 'keys_unavailable' : 'open');
    this._scheduleRefresh();
    if (!refresh || !allowed) return;
    for (const ctx of this.contexts) {
      const s = this.subState.get(ctx);
      // The server drops subscriptions a refreshed token no longer covers, silently.
      if (s === 'subscribed' && !allowed.has(ctx)) this._setSub(ctx, 'forbidden');
      // A refused context the new token covers: ask again ('recovered' when it works).
      else if (s === 'forbidden' && allowed.has(ctx) && this._sendSubscribe(ctx)) this._setSub(ctx, 'pending');
    }
  }

  _onFrame(data) {
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    if (!f || typeof f !== 'object') return;
    this._schedulePing();
    switch (f.op) {
      case 'connected':
        this._onConnected(f);
        break;
      case 'pong':
        clearTimeout(this.timers.pong);
        break;
      case 'notification':
        this.stats.received++;
        this._enqueue(f);
        break;
      case 'subscribed': {
        const i = this.pendingSubs.indexOf(f.ctx);
        if (i >= 0) this.pendingSubs.splice(i, 1);
        if (typeof f.ctx === 'string') this._setSub(f.ctx, 'subscribed');
        break;
      }
      case 'error':
        this.stats.errors++;
        if (f.code === 'ctx_forbidden' || f.code === 'too_many_subscriptions') {
          // Answers come in the order the subscribes were sent; newer gateways also name the ctx.
          let ctx = typeof f.ctx === 'string' ? f.ctx : this.pendingSubs[0];
          const i = this.pendingSubs.indexOf(ctx);
          if (i >= 0) this.pendingSubs.splice(i, 1);
          else ctx = typeof f.ctx === 'string' ? f.ctx : undefined;
          if (ctx !== undefined) this._setSub(ctx, 'forbidden');
        }
        this._emitError(f.code, f.message);
        break;
      default:
        break; // unsubscribed / future frames
    }
  }

  _enqueue(frame) {
    if (this.held >= this.opts.maxHeld) {
      // Only reachable while the JWKS is down: bounded memory, counted, never shown.
      this.stats.heldDropped++;
      this._emit('rejected', { reason: 'held_overflow', message: `more than ${this.opts.maxHeld} notifications waiting for the JWKS` });
      return;
    }
    this.held++;
    this.queue = this.queue.then(() => this._handle(frame)).finally(() => this.held--);
  }

  _keysUp() {
    this.jwksAttempt = 0;
    if (this.keysState === 'ok') return;
    const was = this.keysState;
    this.keysState = 'ok';
    if (was === 'unavailable') {
      this._emit('keys', { state: 'ok' });
      if (this.state === 'keys_unavailable') this._setState('open');
    }
  }

  /** The JWKS is unreachable: say so, wait (backoff, cut short by 'online' or stop), try again. */
  async _keysDown(e) {
    this.stats.jwksFailures++;
    const delay = backoffDelay(this.opts.jwksBackoff, this.jwksAttempt++);
    const first = this.keysState !== 'unavailable';
    this.keysState = 'unavailable';
    if (this.state === 'open') this._setState('keys_unavailable');
    this._emit('keys', { state: 'unavailable', message: e.message, retryInMs: delay });
    if (first) this._emitError('jwks_unavailable', e.message);
    await new Promise((resolve) => {
      this.jwksWake = resolve;
      this.timers.jwks = setTimeout(resolve, delay);
    });
    clearTimeout(this.timers.jwks);
    this.jwksWake = null;
  }

  async _handle(frame) {
    let claims;
    for (;;) {
      if (this.state === 'stopped') return; // held frames of a stopped client are never shown
      try {
        claims = await verifyNotification(frame, this.jwks, {
          sub: this.sub,
          contexts: this.contexts,
          installation: this.installation,
          issuer: this.opts.issuer,
          leeway: this.opts.leeway,
        });
        this._keysUp();
        break;
      } catch (e) {
        if (e instanceof JwksUnavailable) {
          await this._keysDown(e);
          continue;
        }
        if (e instanceof Rejected && e.reason === 'unknown_kid') this._keysUp(); // the JWKS answered
        const reason = e instanceof Rejected ? e.reason : 'malformed';
        this.stats.rejected[reason] = (this.stats.rejected[reason] || 0) + 1;
        this.stats.rejectedTotal++;
        this._emit('rejected', { reason, message: e.message });
        return;
      }
    }
    if (this.delivered.has(claims.n.id)) {
      this.stats.duplicates++;
      return;
    }
    this.delivered.add(claims.n.id);
    if (typeof claims.seq === 'number') this.lastSeq = claims.seq;
    this.stats.delivered++;
    try {
      this._emit('notification', { n: claims.n, claims });
    } catch (e) {
      // A throwing listener must not stop later deliveries.
      setTimeout(() => {
        throw e;
      });
    }
  }
}

function defaultUrl() {
  const loc = globalThis.location;
  if (!loc) throw new TypeError('NotifyClient: url is required outside a browser page');
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/realtime`;
}

function jwksUrlFor(wsUrl) {
  const u = new URL(wsUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  u.pathname = '/.well-known/jwks.json';
  u.search = '';
  u.hash = '';
  return u.toString();
}
