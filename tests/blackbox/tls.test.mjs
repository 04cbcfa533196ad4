// tls.test.mjs - tls.cert / tls.key (issue 14, "TLS"): with a CA and a
// server certificate made by `openssl` here,
//   - the public listener speaks HTTPS and WSS: a client that trusts the test
//     CA posts an event over HTTPS and receives its notification over WSS;
//     a client that does not trust it is refused in the handshake;
//   - SIGHUP with new certificate files: new handshakes present the new
//     certificate, the open WSS connection stays and keeps receiving;
//   - SIGHUP with a key that does not match: refused and logged, the running
//     certificate stays;
//   - a mismatched pair at start: exit 2 naming the files.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import WebSocket from 'ws';

import { runCli, startGateway, tempDir } from './lib/gateway.mjs';
import { makeKeys, mintFit, mintSub } from './lib/keys.mjs';
import { WsClient } from './lib/ws.mjs';
import { bugEvent, ctxOf, envelope, uniqueUser } from './lib/events.mjs';

let keys;
let dir;
let ca;
const gateways = [];
const clients = [];

function openssl(...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A server certificate for 127.0.0.1 signed by the test CA, written to cert/key. */
function issue(serial, cert, key) {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key,
    '-out', 'srv.csr', '-subj', `/CN=notify-gateway test ${serial}`);
  openssl('x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', String(serial),
    '-out', cert, '-days', '1', '-extfile', 'san.cnf');
}

before(async () => {
  keys = await makeKeys();
  dir = tempDir('ngw-tls-');
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key',
    '-out', 'ca.pem', '-days', '1', '-subj', '/CN=notify-gateway test CA');
  writeFileSync(path.join(dir, 'san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ca = readFileSync(path.join(dir, 'ca.pem'));
});

after(async () => {
  for (const c of clients) c.close();
  for (const gw of gateways) await gw.stop();
  if (dir && !process.env.GW_KEEP_TMP) rmSync(dir, { recursive: true, force: true });
});

function postHttps(port, token, body) {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = https.request({ host: '127.0.0.1', port, path: '/forge/events', method: 'POST', ca,
      headers: { 'Content-Type': 'application/json', 'Content-Length': data.length, Authorization: `Bearer ${token}` } },
    (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.setTimeout(10000, () => req.destroy(new Error('no answer')));
    req.on('error', reject);
    req.end(data);
  });
}

/** The serial number of the certificate a new handshake presents (hex, upper case). */
function peerSerial(port) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      s.end();
      resolve(serial);
    });
    s.on('error', reject);
  });
}

async function wssSubscriber(gw, user, key) {
  const ws = new WebSocket(`wss://127.0.0.1:${gw.port}/realtime`, { ca });
  const c = new WsClient(ws, user, () => gw.diag());
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  clients.push(c);
  c.send({ op: 'connect', token: await mintSub(keys, { sub: user, ctx: [ctxOf(key)] }) });
  c.send({ op: 'subscribe', ctx: ctxOf(key) });
  await c.waitFor((f) => f.op === 'subscribed', { what: 'subscribed' });
  return c;
}

describe('TLS on the public listener', () => {
  test('HTTPS + WSS end to end; SIGHUP swaps the certificate without dropping the socket', async () => {
    const cert = path.join(dir, 'srv.pem');
    const key = path.join(dir, 'srv.key');
    issue(1001, cert, key);
    const gw = await startGateway({ keys, args: ['--tls-cert', cert, '--tls-key', key] });
    gateways.push(gw);
    assert.match(gw.stdout, /listening on https:\/\/127\.0\.0\.1:\d+/);
    assert.equal(await peerSerial(gw.port), '03E9');

    const user = uniqueUser('tls');
    const c = await wssSubscriber(gw, user, 'TLS-1');
    const r1 = await postHttps(gw.port, await mintFit(keys), envelope(bugEvent({ key: 'TLS-1', assignee: user, summary: 'first' })));
    assert.equal(r1.status, 202, r1.text);
    await c.waitNotifications(1);

    // a client without the test CA is refused in the handshake
    await assert.rejects(peerSerialUntrusted(gw.port), /self.signed|unable to verify|certificate/i);

    issue(2002, cert, key);
    gw.signal('SIGHUP');
    const deadline = Date.now() + 10000;
    while ((await peerSerial(gw.port)) !== '07D2') {
      if (Date.now() > deadline) throw new Error(`the new certificate is not served\n${gw.diag()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // the log line was written before that handshake, but the pipe carrying
    // stderr and the TLS socket are read independently: wait for it
    while (!/tls: certificate reloaded/.test(gw.stderr)) {
      if (Date.now() > deadline) throw new Error(`no reload logged\n${gw.diag()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(c.closeInfo, null, 'the open WSS connection was dropped by the reload');
    const r2 = await postHttps(gw.port, await mintFit(keys), envelope(bugEvent({ key: 'TLS-1', assignee: user, summary: 'second' })));
    assert.equal(r2.status, 202, r2.text);
    await c.waitNotifications(2);
    assert.deepEqual(c.notificationClaims().map((x) => [x.seq, x.n.description]), [[1, 'first'], [2, 'second']]);

    // a key that does not belong to the certificate: refused, the running pair stays
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'srv.key');
    gw.signal('SIGHUP');
    const d2 = Date.now() + 10000;
    while (!/tls: reload refused/.test(gw.stderr)) {
      if (Date.now() > d2) throw new Error(`no refusal logged\n${gw.diag()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(gw.stderr, /does not belong to the certificate/);
    assert.equal(await peerSerial(gw.port), '07D2');
    assert.equal(c.closeInfo, null);
  });

  test('a key that does not match the certificate at start: exit 2, both named', async () => {
    const cert = path.join(dir, 'a.pem');
    issue(3003, cert, path.join(dir, 'a.key'));
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'other.key');
    const r = await runCli(['--listen', '127.0.0.1:0', '--state-dir', path.join(dir, 'st'), '--tls-cert', cert,
      '--tls-key', path.join(dir, 'other.key')]);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /tls\.key .*other\.key does not belong to the certificate in .*a\.pem/);
    const c = await runCli(['--check-config', '--state-dir', path.join(dir, 'st'), '--tls-cert', cert]);
    assert.equal(c.code, 1);
    assert.match(c.stderr, /tls\.cert and tls\.key go together/);
  });
});

function peerSerialUntrusted(port) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost' }, () => {
      s.end();
      resolve('connected');
    });
    s.on('error', reject);
  });
}
