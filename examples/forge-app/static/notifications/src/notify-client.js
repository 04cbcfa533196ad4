// notify-client.js - a dependency-free browser client for notify-gateway.
//
// It connects to the gateway's websocket (/realtime), authenticates with a
// subscription token from a token provider, subscribes to contexts, verifies
// every notification against the gateway's JWKS with WebCrypto (the ES256
// batch JWS, then the Merkle inclusion proof of the claims in it), drops
// what is not for this user and these contexts, and delivers each notification
// id at most once, across reconnects and page reloads. It reconnects with
// exponential backoff and jitter, refreshes the token before it expires, and
// resumes every subscription where it left off (the store's epoch and the
// highest seq per context, kept in sessionStorage: the gateway replays what
// was missed). It also reads the user's inbox (pages, unread count) and
// changes read state (mark, mark all), which every tab of the user hears of.
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
 * expect: {sub, contexts: Set | fn(ctx) -> bool, installation?, issuer?, now?, leeway?, keepExpired?}
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
  // History (inbox items) is verified but kept past exp: exp bounds showing a flag, not keeping it.
  if (!expect.keepExpired && claims.exp * 1000 + leeway <= now) throw new Rejected('expired', `exp ${claims.exp}`);
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

/**
 * Does the context entry or pattern `entry` cover context `ctx`? An entry
 * ending in `*` is a prefix pattern (`*` alone: every context), as in the
 * gateway's tokens and subscriptions (docs/protocol.md, "Context patterns").
 */
export function ctxCovers(entry, ctx) {
  if (typeof entry !== 'string' || typeof ctx !== 'string') return false;
  if (entry.endsWith('*')) return ctx.startsWith(entry.slice(0, -1));
  return entry === ctx;
}

/** Ids per `mark` frame (the gateway takes 500, in a frame of at most 16 KiB by default). */
const MARK_CHUNK = 200;

/** How many recently delivered n.ids the resume record keeps (a reloaded page drops them). */
export const RESUME_IDS = 200;

/**
 * Where a client keeps what it needs to resume after a reconnect or a page
 * reload: the store's epoch, per subscribed context the highest seq
 * delivered (a safe resume point: every connection gets a subscription's
 * notifications in increasing seq), and the last RESUME_IDS delivered n.ids.
 * One JSON record per (installation, user) in a Storage (sessionStorage by
 * default: per tab, survives reloads, not shared with other tabs, whose
 * streams are their own). A storage that throws (quota, privacy mode) only
 * costs the resume across reloads; within the page the record lives on.
 */
class ResumeRecord {
  constructor(storage, key) {
    this.storage = storage;
    this.key = key;
    this.epoch = null;
    this.points = new Map(); // ctx -> highest seq delivered
    this.ids = [];
    let rec = null;
    try {
      rec = storage ? JSON.parse(storage.getItem(key) || 'null') : null;
    } catch {
      rec = null;
    }
    if (rec && typeof rec === 'object' && typeof rec.epoch === 'string') {
      this.epoch = rec.epoch;
      for (const [ctx, seq] of Object.entries(rec.points || {})) if (Number.isSafeInteger(seq) && seq >= 0) this.points.set(ctx, seq);
      if (Array.isArray(rec.ids)) this.ids = rec.ids.filter((x) => typeof x === 'string').slice(-RESUME_IDS);
    }
  }

  /** A new epoch: every old resume point is void. */
  setEpoch(epoch) {
    if (this.epoch === epoch) return;
    this.epoch = epoch;
    this.points.clear();
    this.save();
  }

  advance(ctx, seq) {
    if (!(seq > (this.points.get(ctx) ?? -1))) return false;
    this.points.set(ctx, seq);
    return true;
  }

  addId(id) {
    this.ids.push(id);
    if (this.ids.length > RESUME_IDS) this.ids.splice(0, this.ids.length - RESUME_IDS);
  }

  save() {
    if (!this.storage) return;
    try {
      this.storage.setItem(this.key, JSON.stringify({ epoch: this.epoch, points: Object.fromEntries(this.points), ids: this.ids }));
    } catch {
      /* quota or privacy mode: resume within this page only */
    }
  }
}

function defaultStorage() {
  try {
    return globalThis.sessionStorage || null; // throws in sandboxed iframes without allow-same-origin
  } catch {
    return null;
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
  resume: true, // subscribe with `since` (the gateway replays what was missed)
  storage: undefined, // where the resume record lives; default sessionStorage, null: this page only
  storageKey: 'notify-client', // prefix of the resume record's key
  inboxTimeout: 15000, // ms before inbox() gives up on an answer
  unreadSyncMs: 3000, // after live notifications, re-read the unread count once this long quiet; 0: never
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
 * (detail {state: 'unavailable'|'ok', message, retryInMs}); resume and inbox:
 * 'resumed' (detail {ctx, recovered, last}), 'resync' (detail {ctx, items, unread,
 * more, before}: recovered:false, the inbox read instead), 'unread' (detail
 * {count}), 'marked' (detail {ids, read, unread}). 'notification' detail also
 * has `replayed` (sent on resume: missed while away).
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
    this.timers = { retry: null, refresh: null, ping: null, pong: null, jwks: null, unread: null };
    this.token = null;
    this.sub = this.opts.user || null;
    this.installation = null; // from our own token, when it names one
    this.lastSeq = 0;
    this.queue = Promise.resolve(); // verification keeps message order
    this.held = 0; // frames waiting in the queue
    this.keysState = 'unknown'; // unknown | ok | unavailable
    this.jwksAttempt = 0;
    this.jwksWake = null; // resolves the current JWKS retry wait early
    this.storage = this.opts.storage === undefined ? defaultStorage() : this.opts.storage;
    this.resume = null; // ResumeRecord, once the user is known
    this.epoch = null; // the gateway store's epoch (connected.epoch)
    this.allowed = null; // what the token covers (connected.ctx)
    this.replaying = new Set(); // contexts subscribed with `since`, not answered yet
    this.needBaseline = new Set(); // contexts subscribed without a resume point
    this.unread = null; // unread notifications in the token's contexts (null: not known yet)
    this.countedThrough = 0; // the newest seq the last unread count included
    this.syncing = false; // an unread/baseline read is in flight
    this.syncAgain = false; // another was asked for meanwhile
    this.inboxReqs = new Map(); // request id -> {resolve, reject, timer, ctx}
    this.inboxIds = 0;
    this.filteredMarks = 0; // mark_all with ctx in flight: their answer counts within ctx only
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
      replayed: 0, // delivered from a resume (missed while away)
      resumes: 0, // subscriptions resumed (recovered:true)
      resyncs: 0, // resumes refused (recovered:false): the inbox was read instead
      inboxItems: 0, // inbox items verified and returned
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
    this._rejectInbox('client stopped');
    this.replaying.clear();
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
    this.replaying.delete(ctx); // the gateway ends its replay too
    this.needBaseline.delete(ctx);
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

  /**
   * A page of the user's inbox, newest first: {items: [{n, claims, seq, ctx,
   * read, expired}], unread, more, before}. `before` is the cursor of the
   * next (older) page when `more`. Items are verified like live
   * notifications (signature, inclusion proof, user, installation, contexts
   * the token covers) but kept past their exp; an item that fails is dropped
   * and counted (stats.rejected, a 'rejected' event with source 'inbox').
   * opts: {limit (1-200, default 50), before (seq), ctx (context or pattern)}.
   * Rejects when not connected, on close, on a store error, after inboxTimeout.
   */
  inbox({ limit = 50, before, ctx } = {}) {
    return new Promise((resolve, reject) => {
      const id = ++this.inboxIds;
      const frame = { op: 'inbox', id, limit };
      if (before) frame.before = before;
      if (ctx) frame.ctx = ctx;
      if (!this._send(frame)) {
        reject(new Error('inbox: not connected'));
        return;
      }
      const timer = setTimeout(() => {
        this.inboxReqs.delete(id);
        reject(new Error(`inbox: no answer within ${this.opts.inboxTimeout} ms`));
      }, this.opts.inboxTimeout);
      this.inboxReqs.set(id, { resolve, reject, timer, ctx: ctx || null, baseline: null });
    });
  }

  /**
   * Marks notifications (by n.id) read, or unread with read=false. Every tab
   * of the user then gets a 'marked' event and the new unread count. Returns
   * false when not connected (nothing was sent).
   */
  markRead(ids, read = true) {
    if (typeof ids === 'string') ids = [ids];
    if (!Array.isArray(ids) || !ids.every((x) => typeof x === 'string' && x)) throw new TypeError('markRead: ids must be n.id strings');
    let ok = true;
    // The gateway takes at most 500 per frame, and a frame is at most 16 KiB by default.
    for (let i = 0; i < ids.length; i += MARK_CHUNK) ok = this._send({ op: 'mark', ids: ids.slice(i, i + MARK_CHUNK), read: read !== false }) && ok;
    return ok;
  }

  /** Marks every notification read (within the context or pattern `ctx` when given). */
  markAllRead(ctx) {
    const frame = { op: 'mark_all' };
    if (ctx) frame.ctx = ctx;
    if (!this._send(frame)) return false;
    if (ctx) this.filteredMarks++;
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
    const frame = { op: 'subscribe', ctx };
    const r = this.opts.resume ? this.resume : null;
    const point = r && r.epoch ? r.points.get(ctx) : undefined;
    if (point !== undefined) frame.since = { epoch: r.epoch, seq: point };
    if (!this._send(frame)) return false;
    this.pendingSubs.push(ctx);
    if (point !== undefined) {
      this.replaying.add(ctx);
      this.needBaseline.delete(ctx);
    } else {
      this.replaying.delete(ctx);
      // No resume point yet: the newest stored seq when subscribed is one (_syncUnread).
      if (this.opts.resume) {
        this.needBaseline.add(ctx);
        if (this.state !== 'authenticating' && this.epoch) this._syncUnread();
      }
    }
    return true;
  }

  /** Runs fn after every frame received so far has been verified and delivered. */
  _afterQueue(fn) {
    this.queue = this.queue.then(fn).catch((e) => setTimeout(() => {
      throw e;
    }));
  }

  _setUnread(count) {
    if (!Number.isSafeInteger(count) || count < 0 || count === this.unread) return;
    this.unread = count;
    this._emit('unread', { count });
  }

  /**
   * One inbox item: the unread count, and the newest stored seq, which is the
   * resume point of the contexts subscribed without one (needBaseline) before
   * this request was sent (the gateway handles frames in order).
   */
  _syncUnread() {
    clearTimeout(this.timers.unread);
    this.timers.unread = null;
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    const baseline = [...this.needBaseline];
    this.needBaseline.clear();
    this.syncing = true;
    this.inbox({ limit: 1 }).then((page) => {
      if (page.head == null || !this.resume || this.resume.epoch !== this.epoch) return;
      let changed = false;
      for (const ctx of baseline) {
        // Only subscriptions the gateway took: a refused one has nothing to resume.
        if (this.subState.get(ctx) === 'subscribed' && !this.resume.points.has(ctx)) changed = this.resume.advance(ctx, page.head) || changed;
      }
      if (changed) this.resume.save();
    }, () => {
      for (const ctx of baseline) if (this.contexts.has(ctx)) this.needBaseline.add(ctx); // the next sync tries again
    }).finally(() => {
      this.syncing = false;
      if (this.syncAgain) {
        this.syncAgain = false;
        if (this._live()) this._syncUnread();
      }
    });
  }

  /** recovered:false: nothing was replayed; the inbox of ctx is read instead, and its newest seq is the new resume point. */
  async _resync(ctx) {
    let page;
    try {
      page = await this.inbox({ ctx, limit: 50 });
    } catch (e) {
      this._emitError('resync', `cannot read the inbox of ${ctx}: ${e.message}`);
      return;
    }
    if (page.head != null && this.resume && this.resume.epoch === this.epoch && this.resume.advance(ctx, page.head)) this.resume.save();
    this._emit('resync', { ctx, items: page.items, unread: page.unread, more: page.more, before: page.before });
  }

  async _onInbox(f) {
    const req = this.inboxReqs.get(f.id);
    if (!req) return; // timed out, or not ours
    this.inboxReqs.delete(f.id);
    clearTimeout(req.timer);
    const raw = Array.isArray(f.items) ? f.items : [];
    const contexts = (ctx) => (!this.allowed || this.allowed.some((a) => ctxCovers(a, ctx))) && (!req.ctx || ctxCovers(req.ctx, ctx));
    const now = Date.now();
    let results;
    try {
      results = await Promise.all(raw.map((item) => verifyNotification(item, this.jwks, {
        sub: this.sub,
        contexts,
        installation: this.installation,
        issuer: this.opts.issuer,
        keepExpired: true,
      }).then((claims) => ({ claims, item }), (e) => {
        if (e instanceof JwksUnavailable) throw e;
        return { error: e };
      })));
    } catch (e) {
      req.reject(e); // the JWKS is unreachable: nothing can be shown verified
      return;
    }
    const items = [];
    let minSeq = null;
    for (const r of results) {
      if (r.error) {
        const reason = r.error instanceof Rejected ? r.error.reason : 'malformed';
        this.stats.rejected[reason] = (this.stats.rejected[reason] || 0) + 1;
        this.stats.rejectedTotal++;
        this._emit('rejected', { reason, message: r.error.message, source: 'inbox' });
        continue;
      }
      const c = r.claims;
      const seq = Number.isSafeInteger(c.seq) ? c.seq : null;
      if (seq != null && (minSeq == null || seq < minSeq)) minSeq = seq;
      items.push({ n: c.n, claims: c, seq, ctx: c.ctx, read: r.item.read === true, expired: c.exp * 1000 <= now });
    }
    items.sort((a, b) => (b.seq ?? 0) - (a.seq ?? 0));
    this.stats.inboxItems += items.length;
    // head: the newest stored seq of this page (0: nothing stored; null: nothing verified).
    const head = raw.length === 0 ? 0 : items.length && items[0].seq != null ? items[0].seq : null;
    const unread = Number.isSafeInteger(f.unread) ? f.unread : null;
    if (!req.ctx && unread != null) {
      if (head) this.countedThrough = Math.max(this.countedThrough, head);
      this._setUnread(unread);
    }
    req.resolve({ items, unread, more: f.more === true, before: f.more === true ? minSeq : null, head });
  }

  _onMarked(f) {
    const ids = Array.isArray(f.ids) ? f.ids.filter((x) => typeof x === 'string') : [];
    const read = f.read !== false;
    let unread = Number.isSafeInteger(f.unread) ? f.unread : null;
    if (this.filteredMarks > 0) {
      // The answer to a mark_all with ctx counts within that ctx only: read the whole count.
      this.filteredMarks--;
      unread = null;
      this._syncUnread();
    }
    this._afterQueue(() => {
      this._emit('marked', { ids, read, unread });
      if (unread != null) this._setUnread(unread);
    });
  }

  _rejectInbox(why) {
    for (const [id, req] of this.inboxReqs) {
      clearTimeout(req.timer);
      req.reject(new Error(`inbox: ${why}`));
      this.inboxReqs.delete(id);
    }
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
    if (!this.resume) {
      this.resume = new ResumeRecord(this.storage, `${this.opts.storageKey}:${this.installation || ''}:${this.sub}`);
      for (const id of this.resume.ids) this.delivered.add(id); // shown before this page (re)loaded
    }
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
      this._rejectInbox('connection closed');
      this.replaying.clear();
      this.needBaseline.clear();
      this.syncing = false;
      if (this.state === 'stopped') return;
      this._emitError('closed', `websocket closed (${ev.code}${ev.reason ? ' ' + ev.reason : ''})`);
      // A gateway that stops names a random delay, so its clients do not all come back at once.
      const m = /reconnect_ms=(\d{1,7})/.exec(ev.reason || '');
      this._scheduleRetry(m ? Number(m[1]) : 0);
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  _scheduleRetry(extraMs = 0) {
    if (this.state === 'stopped') return;
    const delay = extraMs + backoffDelay(this.opts.backoff, this.attempt);
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
          this._rejectInbox('ping timeout');
          this.replaying.clear();
          this.needBaseline.clear();
          this.syncing = false;
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
    if (Array.isArray(f.ctx)) this.allowed = f.ctx.filter((x) => typeof x === 'string');
    if (typeof f.epoch === 'string' && f.epoch) {
      // A new or wiped store: old resume points are void (the subscribes already sent with one answer recovered:false).
      this.epoch = f.epoch;
      if (this.resume) this.resume.setEpoch(f.epoch);
    }
    this._setState(this.keysState === 'unavailable' ? 'keys_unavailable' : 'open');
    this._scheduleRefresh();
    if (!refresh && this.epoch) this._syncUnread(); // the unread count, and resume points for new subscriptions
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
        // Frames that arrive while a resume is under way are replayed ones (the gateway holds live frames meanwhile).
        this._enqueue(f, this.replaying.size ? new Set(this.replaying) : null);
        break;
      case 'subscribed': {
        const i = this.pendingSubs.indexOf(f.ctx);
        if (i >= 0) this.pendingSubs.splice(i, 1);
        if (typeof f.ctx === 'string') {
          const ctx = f.ctx;
          const resuming = this.replaying.delete(ctx);
          this._setSub(ctx, 'subscribed');
          if (typeof f.recovered === 'boolean') {
            if (f.recovered) this.stats.resumes++;
            else this.stats.resyncs++;
            const recovered = f.recovered;
            // last: no other resume was under way, so every replayed notification is in.
            const last = this.replaying.size === 0;
            // After the replayed notifications are delivered.
            this._afterQueue(() => this._emit('resumed', { ctx, recovered, last }));
            if (!recovered) this._resync(ctx);
            else if (resuming && !this.replaying.size) this._syncUnread(); // what was replayed may be read already
          }
        }
        break;
      }
      case 'inbox':
        this._onInbox(f);
        break;
      case 'marked':
        this._onMarked(f);
        break;
      case 'error':
        this.stats.errors++;
        if (f.id !== undefined && this.inboxReqs.has(f.id)) {
          const req = this.inboxReqs.get(f.id);
          this.inboxReqs.delete(f.id);
          clearTimeout(req.timer);
          req.reject(new Error(`inbox: ${f.code}: ${f.message}`));
        }
        if (f.code === 'ctx_forbidden' || f.code === 'too_many_subscriptions') {
          // Answers come in the order the subscribes were sent; newer gateways also name the ctx.
          let ctx = typeof f.ctx === 'string' ? f.ctx : this.pendingSubs[0];
          const i = this.pendingSubs.indexOf(ctx);
          if (i >= 0) this.pendingSubs.splice(i, 1);
          else ctx = typeof f.ctx === 'string' ? f.ctx : undefined;
          if (ctx !== undefined) {
            this.replaying.delete(ctx); // a refused subscribe replays nothing
            this._setSub(ctx, 'forbidden');
          }
        }
        this._emitError(f.code, f.message);
        break;
      default:
        break; // unsubscribed / future frames
    }
  }

  _enqueue(frame, replaying) {
    if (this.held >= this.opts.maxHeld) {
      // Only reachable while the JWKS is down: bounded memory, counted, never shown.
      this.stats.heldDropped++;
      this._emit('rejected', { reason: 'held_overflow', message: `more than ${this.opts.maxHeld} notifications waiting for the JWKS` });
      return;
    }
    this.held++;
    this.queue = this.queue.then(() => this._handle(frame, replaying)).finally(() => this.held--);
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

  /** Moves the resume point of the subscriptions this verified notification belongs to. */
  _advance(claims, replaying) {
    if (!this.resume || !Number.isSafeInteger(claims.seq) || this.resume.epoch !== this.epoch) return false;
    let subs = [...this.contexts].filter((s) => ctxCovers(s, claims.ctx));
    if (replaying) {
      // During a resume every frame is a replayed one: it belongs to the resuming
      // subscription that covers it; with two such, to neither (only a repeat is risked).
      subs = subs.filter((s) => replaying.has(s));
      if (subs.length !== 1) return false;
    }
    let moved = false;
    for (const s of subs) moved = this.resume.advance(s, claims.seq) || moved;
    return moved;
  }

  async _handle(frame, replaying) {
    let claims;
    for (;;) {
      if (this.state === 'stopped') return; // held frames of a stopped client are never shown
      try {
        claims = await verifyNotification(frame, this.jwks, {
          sub: this.sub,
          contexts: (ctx) => [...this.contexts].some((s) => ctxCovers(s, ctx)),
          installation: this.installation,
          issuer: this.opts.issuer,
          keepExpired: true, // checked below, once the resume point has moved past it
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
    // Verified: the resume point moves past it whatever happens next (a replay would only repeat it).
    const moved = this._advance(claims, replaying);
    const expired = claims.exp * 1000 + (this.opts.leeway || 0) * 1000 <= Date.now();
    const dup = this.delivered.has(claims.n.id);
    if (!expired && !dup) {
      this.delivered.add(claims.n.id);
      if (this.resume) this.resume.addId(claims.n.id);
    }
    // Saved before the application sees it: a reload right after never shows it again.
    if (this.resume && (moved || (!expired && !dup))) this.resume.save();
    if (expired) {
      this.stats.rejected.expired++;
      this.stats.rejectedTotal++;
      this._emit('rejected', { reason: 'expired', message: `exp ${claims.exp}` });
      return;
    }
    if (dup) {
      this.stats.duplicates++;
      return;
    }
    if (typeof claims.seq === 'number') this.lastSeq = claims.seq;
    this.stats.delivered++;
    const replayed = !!replaying;
    if (replayed) this.stats.replayed++;
    else if (this.unread != null && !(claims.seq <= this.countedThrough)) {
      // New, so unread; a quiet while later the count is read again (another tab may have marked it).
      this._setUnread(this.unread + 1);
      if (this.opts.unreadSyncMs > 0) {
        clearTimeout(this.timers.unread);
        this.timers.unread = setTimeout(() => this._syncUnread(), this.opts.unreadSyncMs);
      }
    }
    try {
      this._emit('notification', { n: claims.n, claims, replayed });
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
