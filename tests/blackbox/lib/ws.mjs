// ws.mjs - a websocket client (the `ws` package) that records every frame and
// lets a test await predicates over them, always with a timeout.
import WebSocket from 'ws';
import { claimsOf } from './notification.mjs';

export class WsClient {
  constructor(ws, name, diag) {
    this.ws = ws;
    this.name = name;
    this.diag = diag || (() => '');
    this.frames = []; // parsed JSON frames ({raw, binary} when not JSON); each has a non-enumerable .text
    this.waiters = [];
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        resolve(this.closeInfo);
        this._wake();
      });
    });
    ws.on('message', (data, isBinary) => {
      const text = data.toString('utf8');
      let f;
      try {
        f = JSON.parse(text);
      } catch {
        f = { raw: text, binary: isBinary };
      }
      // The exact frame text, for byte comparisons (not enumerable: dumps and deepEqual ignore it).
      if (f && typeof f === 'object' && !('text' in f)) Object.defineProperty(f, 'text', { value: text, enumerable: false });
      this.frames.push(f);
      this._wake();
    });
    ws.on('error', (e) => {
      this.error = e;
    });
  }

  /** Opens a websocket to url (resolves once open; bounded). */
  static open(url, { name = 'client', protocols, timeout = 5000, diag, origin } = {}) {
    return new Promise((resolve, reject) => {
      // origin: the Origin header a browser page would send.
      const opts = origin ? { origin } : undefined;
      const ws = protocols === undefined ? new WebSocket(url, opts) : new WebSocket(url, protocols, opts);
      const client = new WsClient(ws, name, diag);
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`${name}: websocket to ${url} not open within ${timeout} ms\n${client.diag()}`));
      }, timeout);
      ws.once('open', () => {
        clearTimeout(timer);
        resolve(client);
      });
      ws.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`${name}: websocket to ${url} failed: ${e.message}\n${client.diag()}`));
      });
      ws.once('unexpected-response', (req, res) => {
        clearTimeout(timer);
        reject(new Error(`${name}: upgrade refused with HTTP ${res.statusCode}`));
        ws.terminate();
      });
    });
  }

  _wake() {
    for (const w of [...this.waiters]) w();
  }

  send(obj) {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  /** Frames with op === op (in arrival order). */
  ops(op) {
    return this.frames.filter((f) => f.op === op);
  }

  notifications() {
    return this.ops('notification');
  }

  /** Decoded (unverified) claims of every notification received so far. */
  notificationClaims() {
    return this.notifications().map((f) => claimsOf(f));
  }

  /**
   * Resolves with the first frame at index >= from matching pred; rejects
   * after `timeout` ms (or when the socket closes without a match).
   */
  waitFor(pred, { timeout = 5000, from = 0, what = 'a matching frame' } = {}) {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (let i = from; i < this.frames.length; i++) {
          if (pred(this.frames[i], i)) {
            done();
            resolve(this.frames[i]);
            return;
          }
        }
        if (this.closeInfo) {
          done();
          reject(new Error(`${this.name}: closed ${JSON.stringify(this.closeInfo)} before ${what}; frames: ${this.dump()}\n${this.diag()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name}: no ${what} within ${timeout} ms; frames: ${this.dump()}\n${this.diag()}`));
      }, timeout);
      const done = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      this.waiters.push(check);
      check();
    });
  }

  waitOp(op, opts = {}) {
    return this.waitFor((f) => f.op === op, { what: `"${op}" frame`, ...opts });
  }

  /** Waits until at least n notifications arrived. */
  async waitNotifications(n, { timeout = 10000 } = {}) {
    await this.waitFor(() => this.notifications().length >= n, { timeout, what: `${n} notification(s) (have ${this.notifications().length})` });
    return this.notifications();
  }

  /** Waits for the close (bounded); resolves {code, reason}. */
  async waitClose(timeout = 5000) {
    let timer;
    const t = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name}: not closed within ${timeout} ms; frames: ${this.dump()}\n${this.diag()}`)), timeout);
    });
    try {
      return await Promise.race([this.closed, t]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Round-trip: a ping answered proves every earlier frame was processed. */
  async roundTrip(timeout = 5000) {
    const id = `rt-${Math.random().toString(36).slice(2)}`;
    const from = this.frames.length;
    this.send({ op: 'ping', id });
    return this.waitFor((f) => f.op === 'pong' && f.id === id, { from, timeout, what: `pong ${id}` });
  }

  dump(max = 2000) {
    const s = JSON.stringify(this.frames.map((f) => (f.op === 'notification' ? { op: f.op, claims: safeDecode(f) } : f)));
    return s.length > max ? s.slice(0, max) + '...' : s;
  }

  close() {
    if (!this.closeInfo) this.ws.terminate();
  }
}

function safeDecode(frame) {
  try {
    const c = claimsOf(frame);
    return { sub: c.sub, ctx: c.ctx, seq: c.seq, title: c.n?.title, description: c.n?.description, index: frame.proof?.index };
  } catch {
    return frame;
  }
}

/**
 * Opens a client, sends connect and every subscribe at once (no waiting in
 * between: the contract says frames are handled in order), then waits for
 * "connected" and one "subscribed" per context.
 */
export async function subscriber(gw, token, ctxs = [], { name = 'client', timeout = 5000 } = {}) {
  const c = await WsClient.open(gw.wsUrl, { name, diag: () => gw.diag() });
  c.send({ op: 'connect', token });
  for (const ctx of ctxs) c.send({ op: 'subscribe', ctx });
  await c.waitOp('connected', { timeout });
  for (const ctx of ctxs) {
    await c.waitFor((f) => f.op === 'subscribed' && f.ctx === ctx, { timeout, what: `subscribed ${ctx}` });
  }
  return c;
}
