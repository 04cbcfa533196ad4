// notification.mjs - reading and verifying notification frames
// (docs/protocol.md, "Notification claims and proof"):
//   {"op":"notification","claims":"<base64url claims JSON>",
//    "proof":{"batch":"<ES256 compact JWS {iss,iat,size,root}>","index":i,"path":[...]}}
// The batch JWS is checked with jose (an independent JOSE implementation), the
// Merkle inclusion proof with node:crypto, exactly as RFC 9162 §2.1.3.2.
import { createHash } from 'node:crypto';
import * as jose from 'jose';

const HASH_LEN = 32;

export const sha256 = (...parts) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};
/** RFC 9162 leaf hash: SHA-256(0x00 || leaf). */
export const leafHash = (bytes) => sha256(Buffer.from([0x00]), bytes);
/** RFC 9162 interior node: SHA-256(0x01 || left || right). */
export const nodeHash = (left, right) => sha256(Buffer.from([0x01]), left, right);

/** The claims bytes of a frame (base64url-decoded `claims`), not verified. */
export function claimsBytesOf(frame) {
  if (!frame || typeof frame.claims !== 'string') throw new Error(`not a notification frame: ${JSON.stringify(frame)?.slice(0, 200)}`);
  return Buffer.from(frame.claims, 'base64url');
}

/** The decoded claims of a notification frame, NOT verified. */
export function claimsOf(frame) {
  return JSON.parse(claimsBytesOf(frame).toString('utf8'));
}

/** The decoded batch payload {iss, iat, size, root} of a frame, NOT verified. */
export function batchOf(frame) {
  return jose.decodeJwt(frame.proof.batch);
}

/**
 * RFC 9162 §2.1.3.2 verification of an inclusion proof. leaf: the leaf
 * hash; path: Buffers (or base64url strings). Returns true/false.
 */
export function verifyInclusion(leaf, index, path, size, root) {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  if (!Array.isArray(path)) return false;
  let r = leaf;
  let fn = index;
  let sn = size - 1;
  for (const raw of path) {
    const p = typeof raw === 'string' ? Buffer.from(raw, 'base64url') : raw;
    if (!Buffer.isBuffer(p) || p.length !== HASH_LEN) return false;
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && Buffer.isBuffer(root) && root.length === HASH_LEN && r.equals(root);
}

/**
 * Verifies a notification frame: proof.batch with jose (ES256 only, key from
 * `key` = a jose key set function or a public key; `issuer` checked in the
 * batch payload AND the claims when given), then the inclusion proof.
 * Resolves {claims, batch (payload), protectedHeader, index, size}; throws
 * on any failure.
 */
export async function verifyNotification(frame, key, { issuer } = {}) {
  if (!frame || typeof frame !== 'object' || typeof frame.claims !== 'string') throw new Error('frame: no claims');
  const proof = frame.proof;
  if (!proof || typeof proof.batch !== 'string' || !Array.isArray(proof.path)) throw new Error('frame: no proof {batch, index, path}');
  if (!Number.isInteger(proof.index)) throw new Error(`proof.index ${JSON.stringify(proof.index)} is not an integer`);
  if (!/^[A-Za-z0-9_-]*$/.test(frame.claims)) throw new Error('claims: not base64url');
  for (const p of proof.path) {
    if (typeof p !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(p)) throw new Error(`proof.path: ${JSON.stringify(p)} is not a base64url 32-byte hash`);
  }
  const { payload: batch, protectedHeader } = await jose.jwtVerify(proof.batch, key, {
    algorithms: ['ES256'],
    ...(issuer ? { issuer } : {}),
  });
  if (!Number.isSafeInteger(batch.size) || batch.size < 1) throw new Error(`batch size ${JSON.stringify(batch.size)}`);
  if (typeof batch.root !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(batch.root)) throw new Error(`batch root ${JSON.stringify(batch.root)}`);
  const bytes = claimsBytesOf(frame);
  const ok = verifyInclusion(leafHash(bytes), proof.index, proof.path.map((p) => Buffer.from(p, 'base64url')), batch.size, Buffer.from(batch.root, 'base64url'));
  if (!ok) throw new Error(`inclusion proof fails: index ${proof.index}, size ${batch.size}, path length ${proof.path.length}`);
  const claims = JSON.parse(bytes.toString('utf8'));
  if (issuer && claims.iss !== issuer) throw new Error(`claims iss ${JSON.stringify(claims.iss)}, expected ${issuer}`);
  return { claims, batch, protectedHeader, index: proof.index, size: batch.size };
}

// --- RFC 9162 §2.1 reference trees (for tests) -----------------------------

/** Largest power of two smaller than n (n > 1). */
function split(n) {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** MTH(D[n]) of RFC 9162 §2.1.1 over leaf byte strings (n >= 1). */
export function mth(leaves) {
  const n = leaves.length;
  if (n === 0) return sha256();
  if (n === 1) return leafHash(leaves[0]);
  const k = split(n);
  return nodeHash(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

/** PATH(m, D[n]) of RFC 9162 §2.1.3.1: sibling hashes, leaf to root. */
export function inclusionPath(m, leaves) {
  const n = leaves.length;
  if (n <= 1) return [];
  const k = split(n);
  if (m < k) return [...inclusionPath(m, leaves.slice(0, k)), mth(leaves.slice(k))];
  return [...inclusionPath(m - k, leaves.slice(k)), mth(leaves.slice(0, k))];
}

/**
 * Builds signed frames for a list of claims objects the way the protocol
 * describes (one batch JWS, one inclusion proof each), signed with
 * `privateKey` (ES256) under `kid`. For tests of the verifiers.
 */
export async function makeBatchFrames(claimsList, privateKey, { kid = 'test-batch', iss = 'notify-gateway', header = {} } = {}) {
  const leaves = claimsList.map((c) => (Buffer.isBuffer(c) ? c : Buffer.from(JSON.stringify(c))));
  const root = mth(leaves);
  const batch = await new jose.SignJWT({ iss, iat: Math.floor(Date.now() / 1000), size: leaves.length, root: root.toString('base64url') })
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid, ...header })
    .sign(privateKey);
  return leaves.map((bytes, i) => ({
    op: 'notification',
    claims: bytes.toString('base64url'),
    proof: { batch, index: i, path: inclusionPath(i, leaves).map((h) => h.toString('base64url')) },
  }));
}
