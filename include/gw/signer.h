/* signer.h - ES256 compact JWS for outgoing notifications, OpenSSL 3.
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
size_t gw_signer_sign(const struct gw_signer *signer, const char *claims, size_t claims_len,
		      char *out, size_t out_cap);

/* Signs claims with header {"alg":"ES256","typ":"<typ>","kid":"<kid>"}: the
 * subscription tokens the gateway mints for Forge users (typ
 * GW_SUBTOKEN_TYP, so they can never pass for a batch signature or the
 * other way round). out must hold at least 512 + 4/3 * claims_len bytes;
 * a NUL follows the text. Returns the length, or 0. Thread-safe. */
size_t gw_signer_sign_typ(const struct gw_signer *signer, const char *typ, const char *claims,
			  size_t claims_len, char *out, size_t out_cap);

/* ---- key generation (first start, development keys) --------------------- */

/* Writes a new EC P-256 private key as PKCS#8 PEM, mode 0600, atomically
 * (temporary file, fsync, rename). Returns 0 or -1 with err filled. */
int gw_keygen_ec_p256(const char *path, char *err, size_t errlen);

/* Writes a new RSA-2048 private key (PKCS#8 PEM, 0600) to priv_path and the
 * matching public JWKS {"keys":[{"kty":"RSA","kid":kid,"alg":"RS256","use":"sig",
 * "n":..,"e":..}]} to jwks_path, both atomically. */
int gw_keygen_rsa_jwks(const char *priv_path, const char *jwks_path, const char *kid, char *err,
		       size_t errlen);

/* Writes len bytes to path atomically: a temporary file in the same
 * directory with the given mode, write, fsync, rename, fsync of the directory.
 * The shared writer behind the key files; the gateway uses it for its state
 * files too. Returns 0 or -1 with err filled. */
int gw_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode, char *err,
			 size_t errlen);

/* OpenSSL 3's SHA-256, fetched once (EVP_sha256() makes every digest init
 * look it up again). Shared read-only by every thread; NULL if the fetch
 * failed. */
const struct evp_md_st *gw_sha256(void);

/* Writes 32 random bytes, base64url, as an HS256 secret file (0600, atomic). */
int gw_keygen_secret(const char *path, char *err, size_t errlen);

/* ---- base64url (RFC 4648 §5, no padding) ------------------------------- */

/* Encodes len bytes; out must hold gw_b64url_encoded_len(len) + 1 bytes.
 * Returns the number of characters written (a NUL follows). */
size_t gw_b64url_encoded_len(size_t len);
size_t gw_b64url_encode(const unsigned char *in, size_t len, char *out);
/* Decodes; refuses padding and characters outside the alphabet. Returns 0 and
 * a malloc'd buffer (NUL-terminated for convenience) or -1. */
int gw_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len);

#endif
