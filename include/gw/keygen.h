/* keygen.h - key files written on first start (development keys, the
 * signing key): EC P-256, RSA-2048 with its public JWKS, HS256 secrets.
 *
 * Library "gwcrypto". Every file is written 0600 and atomically
 * (atomic_file.h). Threads: any (no shared state). */
#ifndef GW_KEYGEN_H
#define GW_KEYGEN_H

#include <stddef.h>

/* Writes a new EC P-256 private key as PKCS#8 PEM, mode 0600, atomically
 * (temporary file, fsync, rename). Returns 0 or -1 with err filled. */
int gw_keygen_ec_p256(const char *path, char *err, size_t errlen);

/* Writes a new RSA-2048 private key (PKCS#8 PEM, 0600) to priv_path and the
 * matching public JWKS {"keys":[{"kty":"RSA","kid":kid,"alg":"RS256","use":"sig",
 * "n":..,"e":..}]} to jwks_path, both atomically. */
int gw_keygen_rsa_jwks(const char *priv_path, const char *jwks_path, const char *kid, char *err,
		       size_t errlen);

/* Writes 32 random bytes, base64url, as an HS256 secret file (0600, atomic). */
int gw_keygen_secret(const char *path, char *err, size_t errlen);

#endif
