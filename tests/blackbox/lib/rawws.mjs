// rawws.mjs - a websocket client on a bare TCP socket, for tests that must
// misbehave in ways the `ws` package will not: stop reading while sending
// (socket.pause(): the kernel buffers fill and TCP pushes back), send frames
// as fast as the socket takes them, count what comes back.
//
// Client frames are masked (RFC 6455 5.3); server frames are parsed for text,
// ping (answered with a pong while reading), and close.
import net from 'node:net';
import { randomBytes } from 'node:crypto';

/** Encodes one masked client frame (opcode 1 text by default). */
export function encodeFrame(payload, opcode = 1) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload));
  const n = data.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = Buffer.alloc(head + 4 + n);
  out[0] = 0x80 | opcode;
  if (n < 126) out[1] = 0x80 | n;
  else if (n < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(n, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(n), 2);
  }
  const mask = randomBytes(4);
  mask.copy(out, head);
  for (let i = 0; i < n; i++) out[head + 4 + i] = data[i] ^ mask[i & 3];
  return out;
}

export class RawWs {
  constructor(socket) {
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    this.texts = []; // parsed JSON of every text frame, in order
    this.textCount = 0;
    this.close = null; // {code, reason} of a close frame received
    this.ended = false;
    this.waiters = [];
    this.keep = true; // keep parsed frames in this.texts (off for floods: count only)
    socket.on('data', (d) => this._data(d));
    socket.on('close', () => {
      this.ended = true;
      this._wake();
    });
    socket.on('error', () => {});
  }

  /** Opens a TCP connection and does the upgrade; resolves once 101 is read. */
  static open(port, { path = '/realtime', timeout = 5000 } = {}) {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      const key = randomBytes(16).toString('base64');
      let head = Buffer.alloc(0);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`raw websocket: no 101 within ${timeout} ms`));
      }, timeout);
      const onData = (d) => {
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        clearTimeout(timer);
        const status = head.slice(0, end).toString('latin1');
        if (!/^HTTP\/1\.1 101/.test(status)) {
          socket.destroy();
          reject(new Error(`raw websocket: upgrade refused: ${status.split('\r\n')[0]}`));
          return;
        }
        const ws = new RawWs(socket);
        const rest = head.slice(end + 4);
        if (rest.length) ws._data(rest);
        resolve(ws);
      };
      socket.on('data', onData);
      socket.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      socket.on('connect', () => {
        socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      });
    });
  }

  _wake() {
    for (const w of [...this.waiters]) w();
  }

  _data(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      const op = b[0] & 0x0f;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (b.length < off + len) break;
      const payload = b.subarray(off, off + len);
      this.buf = b.subarray(off + len);
      if (op === 1) {
        this.textCount++;
        if (this.keep) {
          let f;
          try {
            f = JSON.parse(payload.toString('utf8'));
          } catch {
            f = { raw: payload.toString('utf8') };
          }
          this.texts.push(f);
        }
      } else if (op === 9) {
        if (!this.socket.destroyed) this.socket.write(encodeFrame(Buffer.from(payload), 10));
      } else if (op === 8) {
        this.close = { code: len >= 2 ? payload.readUInt16BE(0) : 1005, reason: payload.subarray(2).toString('utf8') };
      }
    }
    this._wake();
  }

  send(obj) {
    return this.socket.write(encodeFrame(obj));
  }

  /** Resolves once pred() is true (checked on every frame); rejects after timeout or at the end of the socket. */
  waitUntil(pred, { timeout = 5000, what = 'condition' } = {}) {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pred()) {
          done();
          resolve();
        } else if (this.ended) {
          done();
          reject(new Error(`raw websocket ended before ${what} (close ${JSON.stringify(this.close)}, ${this.textCount} text frames)`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`raw websocket: no ${what} within ${timeout} ms (${this.textCount} text frames)`));
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
    return this.waitUntil(() => this.texts.some((f) => f.op === op), { what: `"${op}" frame`, ...opts })
      .then(() => this.texts.find((f) => f.op === op));
  }

  /**
   * Sends `frame` (bytes) repeatedly, as fast as the socket takes it, until
   * `count` are written or the socket has refused to take more (write
   * buffer full, no 'drain') for `stallMs`. Resolves {sent, stalled}.
   */
  flood(frame, { count, stallMs = 2000, maxMs = 20000 } = {}) {
    return new Promise((resolve) => {
      let sent = 0;
      const started = Date.now();
      const socket = this.socket;
      let stallTimer = null;
      const finish = (stalled) => {
        clearTimeout(stallTimer);
        socket.off('drain', pump);
        resolve({ sent, stalled });
      };
      const pump = () => {
        clearTimeout(stallTimer);
        while (sent < count && !socket.destroyed) {
          sent++;
          if (!socket.write(frame)) {
            if (Date.now() - started > maxMs) return finish(false);
            stallTimer = setTimeout(() => finish(true), stallMs);
            return;
          }
        }
        finish(false);
      };
      socket.on('drain', pump);
      pump();
    });
  }

  pause() {
    this.socket.pause();
  }

  resume() {
    this.socket.resume();
  }

  destroy() {
    this.socket.destroy();
  }
}
