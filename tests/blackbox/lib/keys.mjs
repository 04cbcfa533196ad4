// keys.mjs - test keys and tokens, made with jose (an independent JOSE
// implementation): an RSA key + JWKS for Forge Invocation Tokens, and an
// ES256 / RS256 public key or an HS256 secret for subscription tokens.
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as jose from 'jose';

const here = path.dirname(fileURLToPath(import.meta.url));
const FIT_EXAMPLE = JSON.parse(readFileSync(path.join(here, '../fixtures/fit-claims.json'), 'utf8'));

export const FIT_ISSUER = 'forge/invocation-token';
/** The installation the FITs and subscription tokens name unless told otherwise. */
export const INSTALLATION = FIT_EXAMPLE.app.installationId;
/** The installation of development mode (/dev/fit, /dev/token). */
export const DEV_INSTALLATION = 'ari:cloud:ecosystem::installation/00000000-0000-4000-8000-000000000001';
export const DEV_APP_ID = 'ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000';
export const newInstallation = () => `ari:cloud:ecosystem::installation/${randomUUID()}`;

export const b64u = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
export const now = () => Math.floor(Date.now() / 1000);

/** A subscriber key of the given kind: 'es256' (EC P-256 PEM), 'rs256' (RSA PEM) or 'hs256' (secret). */
export async function makeSubscriberKey(kind = 'es256') {
  if (kind === 'hs256') {
    const secret = randomBytes(48).toString('base64url'); // 64 chars, no whitespace
    return { alg: 'HS256', kind, signKey: new TextEncoder().encode(secret), file: secret + '\n' };
  }
  const alg = kind === 'rs256' ? 'RS256' : 'ES256';
  const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
  return { alg, kind, signKey: privateKey, publicKey, file: await jose.exportSPKI(publicKey) };
}

/** A complete key set for one gateway. */
export async function makeKeys({ subscriber = 'es256' } = {}) {
  const { privateKey, publicKey } = await jose.generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
  const kid = `test-forge-${randomUUID()}`;
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return {
    appId: `ari:cloud:ecosystem::app/${randomUUID()}`,
    kid,
    fitPrivateKey: privateKey,
    fitPublicKey: publicKey,
    fitPublicPem: await jose.exportSPKI(publicKey),
    jwks: { keys: [jwk] },
    sub: await makeSubscriberKey(subscriber),
  };
}

/** The claims a well-formed FIT carries (after the saved example), for this app and installation. */
export function fitClaims(keys, overrides = {}, installation = INSTALLATION) {
  const t = now();
  const c = structuredClone(FIT_EXAMPLE);
  c.app.id = keys.appId;
  c.app.installationId = installation;
  c.app.installation.id = installation;
  c.aud = keys.appId;
  c.iss = FIT_ISSUER;
  c.iat = t;
  c.nbf = t;
  c.exp = t + 25;
  c.jti = randomBytes(20).toString('hex');
  delete c.context; // backend invocations carry no context
  delete c.principal;
  return { ...c, ...overrides };
}

/** Signs claims as a FIT: RS256 with the test key (header/key overridable). */
export async function mintFit(keys, { claims = {}, omit = [], header = {}, key, alg = 'RS256', installation } = {}) {
  const c = fitClaims(keys, claims, installation);
  for (const k of omit) delete c[k];
  return new jose.SignJWT(c)
    .setProtectedHeader({ alg, typ: 'JWT', kid: keys.kid, ...header })
    .sign(key || keys.fitPrivateKey);
}

/** A subscription token for account `sub` covering contexts `ctx`. */
export async function mintSub(keys, { sub, ctx = [], ttl = 3600, claims = {}, omit = [], header = {}, key, alg, installation = INSTALLATION } = {}) {
  const t = now();
  // Deliveries are scoped to the Forge installation (docs/protocol.md): the
  // token names the same installation as the FITs minted by fitClaims().
  const c = { installation, sub, ctx, iat: t, exp: t + ttl, ...claims };
  for (const k of omit) delete c[k];
  return new jose.SignJWT(c)
    .setProtectedHeader({ alg: alg || keys.sub.alg, typ: 'JWT', ...header })
    .sign(key || keys.sub.signKey);
}

/** An unsigned (alg none) token. */
export function unsignedToken(claims, header = { alg: 'none', typ: 'JWT' }) {
  return `${b64u(header)}.${b64u(claims)}.`;
}

/** Replaces the payload of a compact JWS, keeping header and signature. */
export function tamperPayload(token, mutate) {
  const [h, p, s] = token.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  mutate(claims);
  return `${h}.${b64u(claims)}.${s}`;
}

/** Fetches the gateway's JWKS and returns a jose key resolver for it. */
export async function gatewayJwks(gw) {
  const res = await fetch(`${gw.url}/.well-known/jwks.json`, { signal: AbortSignal.timeout(5000) });
  if (res.status !== 200) throw new Error(`/.well-known/jwks.json answered ${res.status}`);
  const doc = await res.json();
  return { doc, keySet: jose.createLocalJWKSet(doc) };
}

export { jose };
