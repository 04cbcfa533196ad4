/* token.h - verification of incoming JWTs: Forge Invocation Tokens (FIT) and
 * subscription tokens presented by websocket clients.
 *
 * Library "gwcrypto" (gateway/crypto/), OpenSSL 3 + jansson.
 *
 * The algorithm is always pinned by configuration, never taken from the token
 * header: FITs are RS256 only, with the key chosen by `kid` from a JWKS file;
 * subscription tokens use the algorithm of the configured key option
 * (subscriber.key: EC P-256 public key -> ES256, RSA public key -> RS256;
 * subscriber.hs256_secret: HS256).
 *
 * Ownership: struct gw_jwks and struct gw_subkey are immutable once loaded and
 * may be shared read-only by any number of threads (each verification uses
 * its own OpenSSL contexts). Claims handed back are new json_t references
 * owned by the caller. Error text never contains key material or the token.
 */
#ifndef GW_TOKEN_H
#define GW_TOKEN_H

#include <stddef.h>
#include <time.h>
#include <jansson.h>

enum gw_token_err {
	GW_TOKEN_OK = 0,
	GW_TOKEN_MISSING, /* no token at all */
	GW_TOKEN_MALFORMED, /* not three base64url parts / bad JSON */
	GW_TOKEN_BAD_ALG, /* header alg differs from the pinned one (incl. none) */
	GW_TOKEN_UNKNOWN_KID, /* FIT: no JWKS key with that kid (or kid missing) */
	GW_TOKEN_BAD_SIGNATURE,
	GW_TOKEN_EXPIRED, /* exp + leeway <= now */
	GW_TOKEN_NOT_YET_VALID, /* nbf - leeway > now */
	GW_TOKEN_BAD_ISSUER,
	GW_TOKEN_BAD_AUDIENCE,
	GW_TOKEN_BAD_CLAIMS, /* a required claim is missing or has the wrong type */
};

/* A numeric time claim (exp, nbf, iat) as seconds since the epoch, clamped
 * to [GW_CLAIM_TIME_MIN, GW_CLAIM_TIME_MAX] (1970 .. the end of year 9999),
 * so that no claim (1e300, -1e300, 2^63) can overflow a conversion or the
 * arithmetic done on it afterwards. Returns 0 and stores the clamped value
 * when v is a finite JSON number (integer or real); -1 (out untouched) when v
 * is NULL, not a number, or not finite. */
#define GW_CLAIM_TIME_MIN ((time_t)0)
#define GW_CLAIM_TIME_MAX ((time_t)253402300799LL)
int gw_claim_time(const json_t *v, time_t *out);

/* A short stable code for logs and error frames, e.g. "token_expired". */
const char *gw_token_code(enum gw_token_err err);

/* ---- Forge JWKS + FIT ------------------------------------------------ */

struct gw_jwks;

/* Loads a JWKS document ({"keys":[{"kty":"RSA","kid":..,"n":..,"e":..}, ...]}).
 * Non-RSA keys are skipped; a document without any usable RSA key is an error.
 * Returns NULL and writes a message into err on failure. */
struct gw_jwks *gw_jwks_load_file(const char *path, char *err, size_t errlen);
struct gw_jwks *gw_jwks_load_json(const char *json, size_t len, char *err, size_t errlen);
size_t gw_jwks_count(const struct gw_jwks *jwks);
void gw_jwks_free(struct gw_jwks *jwks);

/* Verifies a FIT: RS256 pinned, kid looked up in jwks, signature, iss ==
 * "forge/invocation-token", aud == audience (string, or array containing it),
 * exp required and nbf optional, both with `leeway` seconds (callers pass at
 * most 60). On GW_TOKEN_OK stores the claims in *claims (new reference). On
 * failure writes a human-readable reason into detail (may be NULL). */
enum gw_token_err gw_fit_verify(const struct gw_jwks *jwks, const char *token, size_t len,
				const char *audience, long leeway, time_t now, json_t **claims, char *detail,
				size_t detail_len);

/* DEVELOPMENT / DEMO TOOLING ONLY: mints an RS256 FIT-shaped compact JWS,
 * header {"alg":"RS256","typ":"JWT","kid":kid}, payload = claims_json as
 * given (must be a JSON object). Parses the PEM (unencrypted RSA private key)
 * on every call, so it is slow by design. Returns malloc'd text (caller
 * frees) or NULL with err filled. Thread-safe. */
char *gw_fit_sign_dev(const char *rsa_priv_pem_path, const char *kid, const char *claims_json, char *err,
		      size_t errlen);

/* ---- subscription tokens ---------------------------------------------- */

struct gw_subkey;

/* Loads the subscriber public key: PEM only (EC P-256 -> ES256, RSA ->
 * RS256). Private keys, and DER, JWK JSON, OpenSSH and PuTTY files, are
 * refused with a message naming what was found. The file must be owned by
 * the running user or root and not writable by group or others. */
struct gw_subkey *gw_subkey_load_file(const char *path, char *err, size_t errlen);
/* Loads an HS256 secret file (surrounding whitespace trimmed; 32..4096
 * bytes). A file that is a key in any known format (PEM, DER, JWK, OpenSSH)
 * is refused. The file must be owned by the running user or root and not
 * accessible by group or others (mode 0600 or stricter). */
struct gw_subkey *gw_subkey_load_secret_file(const char *path, char *err, size_t errlen);
/* HS256 from bytes in memory (for generated development secrets). */
struct gw_subkey *gw_subkey_from_secret(const unsigned char *secret, size_t len, char *err, size_t errlen);
const char *gw_subkey_alg(const struct gw_subkey *key); /* "ES256" | "RS256" | "HS256" */

/* The JOSE typ of the subscription tokens the gateway mints itself
 * (POST /forge/subscription), signed with its notification key. */
#define GW_SUBTOKEN_TYP "notify-subscription+jwt"

struct gw_signer;
/* The verification key for tokens the gateway minted: the public half of its
 * signing key, ES256 pinned, and only tokens whose header typ is
 * GW_SUBTOKEN_TYP (a notification batch JWS is never a subscription token). */
struct gw_subkey *gw_subkey_from_signer(const struct gw_signer *signer, char *err, size_t errlen);
/* Whether the (unverified) header says typ GW_SUBTOKEN_TYP: which key to
 * verify with; the chosen key still pins its algorithm. */
int gw_subtoken_is_own(const char *token, size_t len);
void gw_subkey_free(struct gw_subkey *key);

/* Verifies a subscription token: alg pinned by the key, signature, `sub` a
 * non-empty string, `exp` a number (required, leeway applies), `nbf` if
 * present, `ctx` an array of strings, and `aud` == audience when audience is
 * non-NULL (string or array containing it). */
enum gw_token_err gw_subtoken_verify(const struct gw_subkey *key, const char *token, size_t len,
				     const char *audience, long leeway, time_t now, json_t **claims,
				     char *detail, size_t detail_len);

/* DEVELOPMENT / DEMO TOOLING ONLY: an HS256 subscription token for claims_json
 * (a JSON object), signed with the key's secret. Only for HS256 keys (the
 * generated development secret); other keys answer NULL with err filled.
 * Returns malloc'd text. Thread-safe. */
char *gw_subtoken_sign_dev(const struct gw_subkey *key, const char *claims_json, char *err, size_t errlen);

#endif
