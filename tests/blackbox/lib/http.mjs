// http.mjs - HTTP requests with node:http (no fetch magic), every one bounded
// by a timeout. Supports a fixed body (Content-Length) or a list of chunks
// (Transfer-Encoding: chunked), arbitrary headers and keep-alive agents.
import http from 'node:http';

/**
 * request(port, {method, path, headers, body, chunks, agent, timeout})
 * resolves {status, headers, text, json, writeError}. A server that answers
 * and closes while the body is still being written is fine: the answer wins.
 */
export function request(port, { method = 'GET', path = '/', headers = {}, body, chunks, agent = false, timeout = 10000, expectContinue = false } = {}) {
  return new Promise((resolve, reject) => {
    let done = false;
    let writeError = null;
    const finish = (fn, v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      fn(v);
    };
    const h = { ...headers };
    let payload = null;
    if (body !== undefined && body !== null) {
      payload = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-length')) h['Content-Length'] = payload.length;
    }
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: h, agent }, (res) => {
      const parts = [];
      res.on('data', (d) => parts.push(d));
      res.on('error', (e) => finish(reject, e));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let json;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        finish(resolve, { status: res.statusCode, headers: res.headers, text, json, writeError });
      });
    });
    const timer = setTimeout(() => {
      req.destroy(new Error(`${method} ${path} got no complete answer within ${timeout} ms`));
    }, timeout);
    req.on('error', (e) => {
      // Writing may fail once the server has answered and closed; the
      // response handler still resolves. Only fail if no answer comes.
      writeError = e;
      setTimeout(() => finish(reject, e), 200);
    });
    if (expectContinue) {
      req.setHeader('Expect', '100-continue');
      req.flushHeaders();
    }
    // With Expect: 100-continue the body waits for "100 Continue"; a server
    // may instead answer at once (e.g. 411/413), and then nothing is sent.
    // RFC 9110 10.1.1: a client that gets neither sends the body after a while.
    const bodyGate = expectContinue
      ? new Promise((r) => {
        req.once('continue', r);
        req.once('response', () => r());
        setTimeout(r, 1000);
      })
      : Promise.resolve();
    if (chunks) {
      (async () => {
        await bodyGate;
        for (const c of chunks) {
          if (done || req.destroyed) return;
          const ok = req.write(c);
          if (!ok) {
            await new Promise((r) => {
              const done = () => {
                req.off('drain', done);
                req.off('close', done);
                r();
              };
              req.on('drain', done);
              req.on('close', done);
            });
          }
        }
        if (!req.destroyed) req.end();
      })();
    } else if (expectContinue) {
      bodyGate.then(() => {
        if (!done && !req.destroyed) req.end(payload ?? undefined);
      });
    } else {
      req.end(payload ?? undefined);
    }
  });
}

/** POST /forge/events with a FIT; body is an object (JSON-encoded) or a string. */
export function postEvent(port, token, body, { headers = {}, agent, timeout } = {}) {
  const h = { 'Content-Type': 'application/json', ...headers };
  if (token !== null && token !== undefined) h.Authorization = `Bearer ${token}`;
  return request(port, { method: 'POST', path: '/forge/events', headers: h, body, agent, timeout });
}

export function getJson(port, path, opts = {}) {
  return request(port, { method: 'GET', path, ...opts });
}

/**
 * Sends a websocket upgrade request by hand (no client-side subprotocol
 * checks) and resolves {status, headers} of the answer, or {status: 0, error}
 * when the server drops the connection. The socket is closed afterwards.
 */
export function rawUpgrade(port, path, headers = {}, timeout = 5000) {
  return new Promise((resolve) => {
    const req = http.request({
      host: '127.0.0.1', port, path, agent: false,
      headers: {
        Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': Buffer.from(Array.from({ length: 16 }, () => Math.floor(Math.random() * 256))).toString('base64'),
        ...headers,
      },
    });
    const timer = setTimeout(() => {
      req.destroy();
      resolve({ status: 0, error: `no answer within ${timeout} ms` });
    }, timeout);
    req.on('upgrade', (res, socket) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: res.statusCode, headers: res.headers });
    });
    req.on('response', (res) => {
      clearTimeout(timer);
      res.resume();
      resolve({ status: res.statusCode, headers: res.headers });
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      resolve({ status: 0, error: e.message });
    });
    req.end();
  });
}

/** GET /admin/status (the health details, counters) with the gateway's admin token. */
export function adminStatus(gw, opts = {}) {
  return request(gw.port, { method: 'GET', path: '/admin/status', headers: { Authorization: `Bearer ${gw.adminToken}` }, ...opts });
}
