// proxy.mjs - a man in the middle between the page and the gateway: HTTP is
// passed through unchanged (one upstream connection per request), websocket
// frames are relayed, and server→client frames can be rewritten by a hook.
import http from 'node:http';
import WebSocket, { WebSocketServer } from 'ws';

export class TamperProxy {
  /** onServerFrame(text, conn) -> text to forward, or null to drop. */
  constructor(upstreamPort, { onServerFrame } = {}) {
    this.upstreamPort = upstreamPort;
    this.onServerFrame = onServerFrame || ((t) => t);
    this.conns = new Set();
    this.wss = new WebSocketServer({ noServer: true });
    this.server = http.createServer((req, res) => {
      const up = http.request(
        { host: '127.0.0.1', port: this.upstreamPort, method: req.method, path: req.url, headers: req.headers, agent: false },
        (ur) => {
          res.writeHead(ur.statusCode, ur.headers);
          ur.pipe(res);
        },
      );
      up.setTimeout(10000, () => up.destroy(new Error('upstream timeout')));
      up.on('error', () => {
        if (!res.headersSent) res.writeHead(502);
        res.end();
      });
      req.pipe(up);
    });
    this.server.on('upgrade', (req, socket, head) => {
      this.wss.handleUpgrade(req, socket, head, (client) => this._relay(client, req.url));
    });
  }

  listen() {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => resolve(this.server.address().port)));
  }

  get url() {
    return `http://127.0.0.1:${this.server.address().port}`;
  }

  _relay(client, url) {
    const upstream = new WebSocket(`ws://127.0.0.1:${this.upstreamPort}${url}`);
    const conn = { client, upstream, pending: [] };
    this.conns.add(conn);
    upstream.on('open', () => {
      for (const m of conn.pending) upstream.send(m);
      conn.pending = null;
    });
    client.on('message', (data) => {
      const text = data.toString('utf8');
      if (conn.pending) conn.pending.push(text);
      else if (upstream.readyState === WebSocket.OPEN) upstream.send(text);
    });
    upstream.on('message', (data) => {
      const out = this.onServerFrame(data.toString('utf8'), conn);
      if (out !== null && client.readyState === WebSocket.OPEN) client.send(out);
    });
    const closeBoth = () => {
      this.conns.delete(conn);
      for (const s of [client, upstream]) {
        try {
          if (s.readyState === WebSocket.OPEN) s.close(1000);
          else s.terminate();
        } catch {
          /* ignore */
        }
      }
    };
    client.on('close', closeBoth);
    upstream.on('close', closeBoth);
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);
  }

  /** Drops every relayed websocket (the page sees its connection close). */
  dropAll() {
    for (const c of [...this.conns]) c.client.terminate();
  }

  async close() {
    this.dropAll();
    this.wss.close();
    await new Promise((r) => this.server.close(() => r()));
  }
}

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const unb64u = (s) => Buffer.from(s, 'base64url');

// Notification frames: {"op":"notification","claims":"<base64url claims JSON>",
// "proof":{"batch":"<compact JWS>","index":i,"path":[...]}} (docs/protocol.md).
// The helpers below rewrite a parsed frame's fields and keep everything else.

/** The claims of a notification frame (not verified). */
export function frameClaims(frame) {
  return JSON.parse(unb64u(frame.claims).toString('utf8'));
}

/** Rewrites the claims of a frame, keeping its proof: a new frame object. */
export function alterClaims(frame, fn) {
  return { ...frame, claims: b64u(JSON.stringify(fn(frameClaims(frame)))) };
}

/** Flips one character in the middle of the base64url claims (stays base64url). */
export function flipClaimsChar(frame) {
  const p = frame.claims;
  const i = Math.floor(p.length / 2);
  const c = p[i] === 'A' ? 'B' : 'A';
  return { ...frame, claims: `${p.slice(0, i)}${c}${p.slice(i + 1)}` };
}

/** Changes proof.index by delta (the claims stay as they are). */
export function shiftIndex(frame, delta = 1) {
  return { ...frame, proof: { ...frame.proof, index: frame.proof.index + delta } };
}

/** Flips one character in the middle of the batch JWS payload (its signature then fails). */
export function flipBatchPayloadChar(frame) {
  const [h, p, s] = frame.proof.batch.split('.');
  const i = Math.floor(p.length / 2);
  const c = p[i] === 'A' ? 'B' : 'A';
  return { ...frame, proof: { ...frame.proof, batch: `${h}.${p.slice(0, i)}${c}${p.slice(i + 1)}.${s}` } };
}
