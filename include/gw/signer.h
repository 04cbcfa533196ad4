/* signer.h - ES256 compact JWS for outgoing notifications, OpenSSL 3.
 * (Key generation: keygen.h; base64url: b64url.h; SHA-256: sha256.h;
 * atomic file writes: atomic_file.h.)
 *
 * Library "gwcrypto". The EC P-256 private key is parsed once at load (an
 * EVP_PKEY); signing creates per-call contexts, so one struct gw_signer is
 * shared read-only by every worker thread.
 *
 * Ownership: the signer owns its key; strings returned by gw_signer_kid are
 * borrowed for the signer's lifetime; gw_signer_jwks_json returns malloc'd
 * text the caller frees.
 */
#ifndef GW_SIGNER_H
#define GW_SIGNER_H

#include <stddef.h>

struct gw_signer;

/* Loads an unencrypted EC P-256 private key (PEM, PKCS#8 or SEC1). Anything
 * else (other curves, RSA, encrypted keys, public keys) is refused with a
 * message in err. */
struct gw_signer *gw_signer_load_file(const char *path, char *err, size_t errlen);
void gw_signer_free(struct gw_signer *signer);

/* The key id: the RFC 7638 JWK thumbprint (SHA-256, base64url). */
const char *gw_signer_kid(const struct gw_signer *signer);

/* {"keys":[{"kty":"EC","crv":"P-256","x":..,"y":..,"kid":..,"alg":"ES256","use":"sig"}]} */
char *gw_signer_jwks_json(const struct gw_signer *signer);

/* Upper bound of the compact JWS length for claims of claims_len bytes. */
size_t gw_signer_max_jws_len(const struct gw_signer *signer, size_t claims_len);

/* Signs: header {"alg":"ES256","typ":"JWT","kid":"<kid>"} + the claims JSON
 * text as given, ES256 signature as raw R||S (64 bytes). Writes the compact
 * JWS (no NUL) into out, which must hold gw_signer_max_jws_len() bytes.
 * Returns the length written, or 0 on failure. Thread-safe. */
size_t gw_signer_sign(const struct gw_signer *signer, const char *claims, size_t claims_len, char *out,
		      size_t out_cap);

/* Signs claims with header {"alg":"ES256","typ":"<typ>","kid":"<kid>"}: the
 * subscription tokens the gateway mints for Forge users (typ
 * GW_SUBTOKEN_TYP, so they can never pass for a batch signature or the
 * other way round). out must hold at least 512 + 4/3 * claims_len bytes;
 * a NUL follows the text. Returns the length, or 0. Thread-safe. */
size_t gw_signer_sign_typ(const struct gw_signer *signer, const char *typ, const char *claims,
			  size_t claims_len, char *out, size_t out_cap);

#endif
