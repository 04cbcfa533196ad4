/* fuzz_token.c - libFuzzer target: JWS/JWT parsing and verification of the
 * two tokens the gateway accepts, Forge Invocation Tokens (gw_fit_verify,
 * RS256 + JWKS) and subscription tokens (gw_subtoken_verify under an HS256
 * secret and an ES256 public key), with keys made once per process.
 *
 * The first input byte picks a mode (the rest is R):
 *   0  R is a compact token, verified as a FIT and as a subscription token
 *      under each key (header, base64url, JSON and signature parsing);
 *   1  R is a claims object, signed as a FIT (RS256) by the harness and then
 *      verified: a valid signature lets the fuzzer reach the claim checks
 *      (iss, aud, exp/nbf, types) that a forged token never reaches;
 *   2  R is a claims object, signed HS256, verified as a subscription token;
 *   3  R is a claims object, signed ES256, verified as a subscription token;
 *   4  R is "header\0payload\0signature": each part is base64url-encoded by
 *      the harness, so header fields (alg none, kid, crit, ...) are reached
 *      without the fuzzer learning base64url.
 * Signing in the harness means a reproducer replays under any key.
 *
 * Invariants checked (abort on violation): claims are handed back exactly
 * when the verdict is OK; the verdict has a code; a valid token made by
 * the harness with a well-formed claim set is never refused for its
 * signature.
 *
 * Ownership: per-input memory is freed before returning; keys live for the
 * process in a temporary directory under the working directory.
 * Threads: libFuzzer's single thread.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "gw/b64url.h"
#include "gw/keygen.h"
#include "gw/signer.h"
#include "gw/token.h"

#define AUDIENCE "fuzz-app"
#define NOW ((time_t)1700000000)

static struct gw_jwks *jwks;
static struct gw_subkey *hs_key, *es_key;
static struct gw_signer *es_signer;
static char rsa_priv[4096];

static void die(const char *what, const char *err)
{
	fprintf(stderr, "fuzz_token: %s: %s\n", what, err);
	abort();
}

static void init(void)
{
	char dir[] = "fuzz-token-keys-XXXXXX", err[256], path[4096];
	if (!mkdtemp(dir))
		die("mkdtemp", "failed");
	snprintf(rsa_priv, sizeof(rsa_priv), "%s/forge.pem", dir);
	snprintf(path, sizeof(path), "%s/jwks.json", dir);
	if (gw_keygen_rsa_jwks(rsa_priv, path, "fuzz-kid", err, sizeof(err)))
		die("rsa key", err);
	if (!(jwks = gw_jwks_load_file(path, err, sizeof(err))))
		die("jwks", err);
	static const unsigned char secret[] = "0123456789abcdef0123456789abcdef-fuzz";
	if (!(hs_key = gw_subkey_from_secret(secret, sizeof(secret) - 1, err, sizeof(err))))
		die("hs256", err);
	snprintf(path, sizeof(path), "%s/ec.pem", dir);
	if (gw_keygen_ec_p256(path, err, sizeof(err)) ||
	    !(es_signer = gw_signer_load_file(path, err, sizeof(err))))
		die("ec key", err);
	/* the subscriber key is the public half, as an operator configures it */
	FILE *f = fopen(path, "r");
	EVP_PKEY *pk = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	snprintf(path, sizeof(path), "%s/ec.pub.pem", dir);
	f = fopen(path, "w");
	if (!pk || !f || !PEM_write_PUBKEY(f, pk))
		die("ec public key", "cannot write");
	fclose(f);
	EVP_PKEY_free(pk);
	if (!(es_key = gw_subkey_load_file(path, err, sizeof(err))))
		die("es256", err);
}

static void check(enum gw_token_err e, json_t *claims)
{
	if ((e == GW_TOKEN_OK) != (claims != NULL))
		die("invariant", "claims must be returned exactly on success");
	if (!gw_token_code(e))
		die("invariant", "a verdict without a code");
	json_decref(claims);
}

static void verify_all(const char *tok, size_t len)
{
	char detail[256];
	json_t *claims = NULL;
	check(gw_fit_verify(jwks, tok, len, AUDIENCE, 60, NOW, &claims, detail, sizeof(detail)), claims);
	claims = NULL;
	check(gw_subtoken_verify(hs_key, tok, len, AUDIENCE, 60, NOW, &claims, detail, sizeof(detail)),
	      claims);
	claims = NULL;
	check(gw_subtoken_verify(es_key, tok, len, NULL, 60, NOW, &claims, detail, sizeof(detail)), claims);
}

/* A token the harness signed itself must never fail on its signature. */
static void verify_signed(enum gw_token_err e, json_t *claims)
{
	if (e == GW_TOKEN_BAD_SIGNATURE || e == GW_TOKEN_BAD_ALG)
		die("invariant", "a token signed with the configured key was refused for its signature");
	check(e, claims);
}

static char *b64(const unsigned char *p, size_t n)
{
	char *s = malloc(gw_b64url_encoded_len(n) + 1);
	if (s)
		s[gw_b64url_encode(p, n, s)] = '\0';
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!jwks)
		init();
	if (size < 1)
		return 0;
	unsigned mode = data[0] % 5;
	const char *r = (const char *)data + 1;
	size_t n = size - 1;
	char *text = malloc(n + 1), err[256], detail[256];
	if (!text)
		return 0;
	memcpy(text, r, n);
	text[n] = '\0';
	json_t *claims = NULL;
	char *tok = NULL;

	switch (mode) {
	case 0: verify_all(r, n); break;
	case 1:
		if ((tok = gw_fit_sign_dev(rsa_priv, "fuzz-kid", text, err, sizeof(err))))
			verify_signed(gw_fit_verify(jwks, tok, strlen(tok), AUDIENCE, 60, NOW, &claims,
						    detail, sizeof(detail)),
				      claims);
		break;
	case 2:
		if ((tok = gw_subtoken_sign_dev(hs_key, text, err, sizeof(err))))
			verify_signed(gw_subtoken_verify(hs_key, tok, strlen(tok), AUDIENCE, 60, NOW, &claims,
							 detail, sizeof(detail)),
				      claims);
		break;
	case 3: {
		if (strlen(text) != n)
			break; /* claims are text */
		size_t cap = gw_signer_max_jws_len(es_signer, n);
		tok = malloc(cap + 1);
		size_t tl = tok ? gw_signer_sign(es_signer, text, n, tok, cap + 1) : 0;
		if (tl)
			verify_signed(gw_subtoken_verify(es_key, tok, tl, NULL, 60, NOW, &claims, detail,
							 sizeof(detail)),
				      claims);
		break;
	}
	case 4: {
		const char *p[3] = {r, NULL, NULL};
		size_t l[3] = {n, 0, 0};
		const char *z = memchr(r, 0, n);
		if (z) {
			l[0] = (size_t)(z - r);
			p[1] = z + 1;
			l[1] = n - l[0] - 1;
			const char *z2 = memchr(p[1], 0, l[1]);
			if (z2) {
				p[2] = z2 + 1;
				l[2] = l[1] - (size_t)(z2 - p[1]) - 1;
				l[1] = (size_t)(z2 - p[1]);
			}
		}
		char *e0 = b64((const unsigned char *)p[0], l[0]);
		char *e1 = b64((const unsigned char *)(p[1] ? p[1] : ""), l[1]);
		char *e2 = b64((const unsigned char *)(p[2] ? p[2] : ""), l[2]);
		if (e0 && e1 && e2) {
			size_t tl = strlen(e0) + strlen(e1) + strlen(e2) + 3;
			if ((tok = malloc(tl)))
				verify_all(tok, (size_t)snprintf(tok, tl, "%s.%s.%s", e0, e1, e2));
		}
		free(e0);
		free(e1);
		free(e2);
		break;
	}
	}
	free(tok);
	free(text);
	return 0;
}
