/* crypto_internal.h - helpers shared by the files of gwcrypto (gateway/crypto/).
 * Not installed; nothing outside this directory includes it.
 *
 * Ownership: struct crypto__key borrows its EVP_PKEY / secret from the object
 * that loaded it (struct gw_jwks, struct gw_subkey); the verifier never frees
 * them. Buffers returned by crypto__read_file are malloc'd, caller frees
 * (with crypto__free_secret when the content may be key material).
 *
 * Threads: every function here is reentrant; the only shared state they touch
 * is read-only key material (EVP_PKEY, EVP_MD), which OpenSSL allows to be
 * used concurrently with per-call contexts (openssl-threads(7)).
 */
#ifndef GW_CRYPTO_INTERNAL_H
#define GW_CRYPTO_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "gw/token.h"

/* Upper bound for any compact JWS we verify. Real FITs are ~1.5 KiB. */
#define CRYPTO__MAX_TOKEN_LEN 16384
/* Upper bound for key / JWKS files we read. */
#define CRYPTO__MAX_KEY_FILE (1024 * 1024)

enum crypto__alg {
	CRYPTO__RS256,
	CRYPTO__ES256,
	CRYPTO__HS256,
};

const char *crypto__alg_name(enum crypto__alg alg);

/* The key one verification uses. Exactly one of pkey / secret is set. */
struct crypto__key {
	enum crypto__alg alg;
	EVP_PKEY *pkey; /* RS256 / ES256, borrowed */
	const EVP_MD *sha256; /* pre-fetched SHA-256, borrowed */
	/* RS256 / ES256: a verify context set up once (padding, digest), owned
	 * by the loader through crypto__key_prepare / crypto__key_release and
	 * duplicated per verification (EVP_PKEY_CTX_dup takes it const), which
	 * saves OpenSSL 3's per-call algorithm fetches (~4 us per RS256 check).
	 * NULL: every verification sets up its own context. */
	EVP_PKEY_CTX *verify_proto;
	const unsigned char *secret; /* HS256, borrowed */
	size_t secret_len;
};

/* Creates key->verify_proto for an RS256/ES256 key whose pkey and sha256
 * are set (no-op for HS256; failure leaves it NULL, which only costs speed). */
void crypto__key_prepare(struct crypto__key *key);
void crypto__key_release(struct crypto__key *key);

/* Called by crypto__jws_verify once the header has been decoded and its
 * `alg` matched the pinned one; picks the key (FIT: by kid). On failure
 * returns the error and writes detail. */
typedef enum gw_token_err (*crypto__key_fn)(void *arg, json_t *header, const struct crypto__key **key,
					    char *detail, size_t detail_len);

/* The shared JWS verifier: bounded size, three base64url parts, header a JSON
 * object whose `alg` equals `pinned` (never trusted otherwise), no `crit`,
 * signature checked with the key chosen by key_fn, then the claims decoded
 * (must be a JSON object). On GW_TOKEN_OK *claims is a new reference. */
enum gw_token_err crypto__jws_verify(const char *token, size_t len, enum crypto__alg pinned,
				     crypto__key_fn key_fn, void *key_arg, json_t **claims, char *detail,
				     size_t detail_len);

/* Claim helpers for the two token kinds. Return GW_TOKEN_OK or an error with
 * detail written. leeway < 0 is treated as 0. */
enum gw_token_err crypto__check_times(json_t *claims, long leeway, time_t now, char *detail,
				      size_t detail_len);
enum gw_token_err crypto__check_aud(json_t *claims, const char *audience, char *detail, size_t detail_len);

/* snprintf into err when err != NULL && errlen > 0. */
void crypto__errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Copies at most max bytes of s into out (size outlen), replacing anything
 * that is not printable ASCII with '?', so header values such as `kid` can be
 * quoted in messages without injecting control characters. */
void crypto__printable(const char *s, size_t max, char *out, size_t outlen);

/* Reads a whole regular file of at most max bytes (NUL appended). Returns 0
 * or -1 with err filled (errno text only, never file content). */
int crypto__read_file(const char *path, size_t max, char **out, size_t *out_len, char *err, size_t errlen);

/* The same for a key file, after checking who may change or read it, the
 * way OpenSSH checks its key files (on the open descriptor, so the checked
 * file is the one read): the file must be owned by the running user or by
 * root; a public key file (JWKS, PEM public key) must not be writable by
 * group or others (whoever can write it chooses whom the gateway trusts); a
 * secret (private key, HS256 secret) must not be readable, writable or
 * executable by group or others at all. The message names the mode found and
 * the fix. */
enum crypto__key_file { CRYPTO__KEY_PUBLIC, CRYPTO__KEY_SECRET };
int crypto__read_key_file(const char *path, size_t max, enum crypto__key_file kind, char **out,
			  size_t *out_len, char *err, size_t errlen);

/* What a key file that is not what was asked for looks like: "DER (binary
 * ASN.1)", "JWK/JWKS JSON", "OpenSSH public key", "OpenSSH private key",
 * "PuTTY key", "PEM" - or NULL when it looks like none of them. */
const char *crypto__sniff_key_format(const char *buf, size_t len);

/* OPENSSL_cleanse + free. */
void crypto__free_secret(void *p, size_t len);

/* A pem_password_cb that always fails, so an encrypted PEM is refused
 * instead of prompting on the controlling tty. */
int crypto__no_passphrase(char *buf, int size, int rwflag, void *u);

/* True if the PEM text holds a private-key block of any flavour
 * (PKCS#8, encrypted PKCS#8, SEC1, PKCS#1, OpenSSH). */
int crypto__pem_has_private(const char *pem, size_t len);
/* True if the PEM text holds an encrypted private key. */
int crypto__pem_is_encrypted(const char *pem, size_t len);

/* Atomic file write (tmp file in the same directory, fchmod(mode), write,
 * fsync, rename, fsync directory). Returns 0 or -1 with err filled. */
int crypto__write_atomic(const char *path, const void *data, size_t len, unsigned mode, char *err,
			 size_t errlen);

/* The signer's key pair (borrowed), for its public half as a verification key. */
struct gw_signer;
EVP_PKEY *crypto__signer_pkey(const struct gw_signer *signer);

/* EC group name check for P-256 (OpenSSL names it "prime256v1"). */
int crypto__is_p256(EVP_PKEY *pkey);

#endif
