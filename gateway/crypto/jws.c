/* jws.c - the one JWS (compact serialisation) verifier behind FITs and
 * subscription tokens, plus the claim checks both share.
 *
 * The algorithm is pinned by the caller; the header's `alg` is only compared
 * to it, so "none", HS256-with-an-RSA-public-key and friends cannot select a
 * different verification path. The signature is checked over the raw
 * "header.payload" bytes before the payload is decoded or parsed.
 *
 * Ownership: claims handed back are new references owned by the caller.
 * Threads: reentrant; per-call EVP_MD_CTX, keys are shared read-only.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "crypto_internal.h"
#include "gw/b64url.h"

const char *gw_token_code(enum gw_token_err err)
{
	switch (err) {
	case GW_TOKEN_OK: return "token_ok";
	case GW_TOKEN_MISSING: return "token_missing";
	case GW_TOKEN_MALFORMED: return "token_malformed";
	case GW_TOKEN_BAD_ALG: return "token_bad_alg";
	case GW_TOKEN_UNKNOWN_KID: return "token_unknown_kid";
	case GW_TOKEN_BAD_SIGNATURE: return "token_bad_signature";
	case GW_TOKEN_EXPIRED: return "token_expired";
	case GW_TOKEN_NOT_YET_VALID: return "token_not_yet_valid";
	case GW_TOKEN_BAD_ISSUER: return "token_bad_issuer";
	case GW_TOKEN_BAD_AUDIENCE: return "token_bad_audience";
	case GW_TOKEN_BAD_CLAIMS: return "token_bad_claims";
	}
	return "token_invalid";
}

void crypto__key_prepare(struct crypto__key *key)
{
	EVP_PKEY_CTX *ctx;
	if (key->alg == CRYPTO__HS256 || !key->pkey || !key->sha256 || key->verify_proto)
		return;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key->pkey, NULL);
	if (!ctx || EVP_PKEY_verify_init(ctx) != 1 ||
	    (key->alg == CRYPTO__RS256 && EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1) ||
	    EVP_PKEY_CTX_set_signature_md(ctx, key->sha256) != 1) {
		EVP_PKEY_CTX_free(ctx);
		return;
	}
	key->verify_proto = ctx;
}

void crypto__key_release(struct crypto__key *key)
{
	EVP_PKEY_CTX_free(key->verify_proto);
	key->verify_proto = NULL;
}

/* Decodes one base64url part into a JSON object. */
static json_t *decode_json_part(const char *p, size_t len)
{
	unsigned char *raw = NULL;
	size_t raw_len = 0;
	json_t *j;

	if (gw_b64url_decode(p, len, &raw, &raw_len) != 0)
		return NULL;
	j = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, NULL);
	free(raw);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* RS256 / ES256 / HS256 over input; sig as it came in the token. Returns 1
 * when valid. ES256 signatures are raw R||S (RFC 7518 §3.4) and converted to
 * DER for OpenSSL. */
static int check_sig(const struct crypto__key *key, const unsigned char *input, size_t input_len,
		     const unsigned char *sig, size_t sig_len)
{
	unsigned char der[80], *derp = der, mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	const unsigned char *vsig = sig;
	size_t vsig_len = sig_len;
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *s = NULL;
	EVP_MD_CTX *md = NULL;
	int ok = 0, der_len;

	if (key->alg == CRYPTO__HS256) {
		if (sig_len != 32)
			return 0;
		if (!HMAC(key->sha256, key->secret, (int)key->secret_len, input, input_len, mac, &mac_len) ||
		    mac_len != 32)
			return 0;
		ok = CRYPTO_memcmp(mac, sig, 32) == 0;
		OPENSSL_cleanse(mac, sizeof(mac));
		return ok;
	}
	if (key->alg == CRYPTO__ES256) {
		if (sig_len != 64)
			return 0;
		es = ECDSA_SIG_new();
		r = BN_bin2bn(sig, 32, NULL);
		s = BN_bin2bn(sig + 32, 32, NULL);
		if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s))
			goto done;
		r = s = NULL; /* owned by es now */
		der_len = i2d_ECDSA_SIG(es, NULL);
		if (der_len <= 0 || (size_t)der_len > sizeof(der))
			goto done;
		der_len = i2d_ECDSA_SIG(es, &derp);
		if (der_len <= 0)
			goto done;
		vsig = der;
		vsig_len = (size_t)der_len;
	} else if ((size_t)EVP_PKEY_get_size(key->pkey) != sig_len) {
		goto done; /* RS256: exactly the modulus size */
	}
	if (key->verify_proto) {
		unsigned char digest[32];
		unsigned int dlen = 0;
		EVP_PKEY_CTX *ctx = NULL;
		if (EVP_Digest(input, input_len, digest, &dlen, key->sha256, NULL) && dlen == 32 &&
		    (ctx = EVP_PKEY_CTX_dup(key->verify_proto)))
			ok = EVP_PKEY_verify(ctx, vsig, vsig_len, digest, dlen) == 1;
		EVP_PKEY_CTX_free(ctx);
		goto done;
	}
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestVerifyInit(md, NULL, key->sha256, NULL, key->pkey) != 1)
		goto done;
	ok = EVP_DigestVerify(md, vsig, vsig_len, input, input_len) == 1;
done:
	EVP_MD_CTX_free(md);
	ECDSA_SIG_free(es);
	BN_free(r);
	BN_free(s);
	return ok;
}

enum gw_token_err crypto__jws_verify(const char *token, size_t len, enum crypto__alg pinned,
				     crypto__key_fn key_fn, void *key_arg, json_t **claims, char *detail,
				     size_t detail_len)
{
	const struct crypto__key *key = NULL;
	const char *dot1, *dot2;
	json_t *header = NULL, *payload = NULL;
	unsigned char *sig = NULL;
	size_t sig_len = 0;
	const char *alg;
	enum gw_token_err rc;

	if (claims)
		*claims = NULL;
	if (!token || !len) {
		crypto__errf(detail, detail_len, "no token");
		return GW_TOKEN_MISSING;
	}
	if (len > CRYPTO__MAX_TOKEN_LEN) {
		crypto__errf(detail, detail_len, "token longer than %d bytes", CRYPTO__MAX_TOKEN_LEN);
		return GW_TOKEN_MALFORMED;
	}
	dot1 = memchr(token, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
	if (!dot1 || !dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token))) {
		crypto__errf(detail, detail_len, "not a compact JWS (need three dot-separated parts)");
		return GW_TOKEN_MALFORMED;
	}
	header = decode_json_part(token, (size_t)(dot1 - token));
	if (!header) {
		crypto__errf(detail, detail_len, "header is not base64url-encoded JSON object");
		rc = GW_TOKEN_MALFORMED;
		goto fail;
	}
	alg = json_string_value(json_object_get(header, "alg"));
	if (!alg) {
		crypto__errf(detail, detail_len, "header has no alg");
		rc = GW_TOKEN_MALFORMED;
		goto fail;
	}
	if (strcmp(alg, crypto__alg_name(pinned)) != 0) {
		char shown[24];
		crypto__printable(alg, 16, shown, sizeof(shown));
		crypto__errf(detail, detail_len, "alg \"%s\" refused; only %s is accepted", shown,
			     crypto__alg_name(pinned));
		rc = GW_TOKEN_BAD_ALG;
		goto fail;
	}
	if (json_object_get(header, "crit")) {
		crypto__errf(detail, detail_len, "header has crit extensions; none are supported");
		rc = GW_TOKEN_MALFORMED;
		goto fail;
	}
	rc = key_fn(key_arg, header, &key, detail, detail_len);
	if (rc != GW_TOKEN_OK)
		goto fail;
	if (key->alg != pinned) { /* cannot happen with our key_fns; be sure */
		crypto__errf(detail, detail_len, "key does not match the pinned algorithm");
		rc = GW_TOKEN_BAD_ALG;
		goto fail;
	}
	if (gw_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), &sig, &sig_len) != 0) {
		crypto__errf(detail, detail_len, "signature is not base64url");
		rc = GW_TOKEN_MALFORMED;
		goto fail;
	}
	if (!check_sig(key, (const unsigned char *)token, (size_t)(dot2 - token), sig, sig_len)) {
		crypto__errf(detail, detail_len, "%s signature does not verify", crypto__alg_name(pinned));
		rc = GW_TOKEN_BAD_SIGNATURE;
		goto fail;
	}
	payload = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	if (!payload) {
		crypto__errf(detail, detail_len, "payload is not base64url-encoded JSON object");
		rc = GW_TOKEN_MALFORMED;
		goto fail;
	}
	json_decref(header);
	free(sig);
	if (claims)
		*claims = payload;
	else
		json_decref(payload);
	return GW_TOKEN_OK;
fail:
	json_decref(header);
	json_decref(payload);
	free(sig);
	return rc;
}

int gw_claim_time(const json_t *v, time_t *out)
{
	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		*out = i < (json_int_t)GW_CLAIM_TIME_MIN   ? GW_CLAIM_TIME_MIN
		       : i > (json_int_t)GW_CLAIM_TIME_MAX ? GW_CLAIM_TIME_MAX
							   : (time_t)i;
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (!isfinite(d))
			return -1;
		/* Compared as doubles first: converting 1e300 to an integer is UB. */
		*out = d < (double)GW_CLAIM_TIME_MIN   ? GW_CLAIM_TIME_MIN
		       : d > (double)GW_CLAIM_TIME_MAX ? GW_CLAIM_TIME_MAX
						       : (time_t)d;
		return 0;
	}
	return -1;
}

enum gw_token_err crypto__check_times(json_t *claims, long leeway, time_t now, char *detail,
				      size_t detail_len)
{
	json_t *exp = json_object_get(claims, "exp"), *nbf = json_object_get(claims, "nbf");
	json_t *iat = json_object_get(claims, "iat");
	long lw = leeway > 0 ? (leeway < 86400 ? leeway : 86400) : 0;
	time_t texp, tnbf = GW_CLAIM_TIME_MIN, tiat;

	if (!exp) {
		crypto__errf(detail, detail_len, "exp claim missing");
		return GW_TOKEN_BAD_CLAIMS;
	}
	if (gw_claim_time(exp, &texp)) {
		crypto__errf(detail, detail_len, "exp claim is not a number");
		return GW_TOKEN_BAD_CLAIMS;
	}
	if (nbf && gw_claim_time(nbf, &tnbf)) {
		crypto__errf(detail, detail_len, "nbf claim is not a number");
		return GW_TOKEN_BAD_CLAIMS;
	}
	/* iat is not checked against the clock, but when present it must be a
	 * usable number: callers may read it. */
	if (iat && gw_claim_time(iat, &tiat)) {
		crypto__errf(detail, detail_len, "iat claim is not a number");
		return GW_TOKEN_BAD_CLAIMS;
	}
	/* Clamped values and a bounded leeway: no overflow below. */
	if (texp + lw <= now) {
		crypto__errf(detail, detail_len, "expired %lld s ago (leeway %ld s)", (long long)(now - texp),
			     lw);
		return GW_TOKEN_EXPIRED;
	}
	if (nbf && tnbf - lw > now) {
		crypto__errf(detail, detail_len, "not valid for another %lld s (leeway %ld s)",
			     (long long)(tnbf - now), lw);
		return GW_TOKEN_NOT_YET_VALID;
	}
	return GW_TOKEN_OK;
}

enum gw_token_err crypto__check_aud(json_t *claims, const char *audience, char *detail, size_t detail_len)
{
	json_t *aud = json_object_get(claims, "aud"), *v;
	size_t i;

	if (!audience || !*audience) {
		crypto__errf(detail, detail_len, "no audience configured");
		return GW_TOKEN_BAD_AUDIENCE;
	}
	if (!aud) {
		crypto__errf(detail, detail_len, "aud claim missing");
		return GW_TOKEN_BAD_AUDIENCE;
	}
	if (json_is_string(aud)) {
		if (strcmp(json_string_value(aud), audience) == 0)
			return GW_TOKEN_OK;
	} else if (json_is_array(aud)) {
		json_array_foreach (aud, i, v) {
			if (json_is_string(v) && strcmp(json_string_value(v), audience) == 0)
				return GW_TOKEN_OK;
		}
	} else {
		crypto__errf(detail, detail_len, "aud claim is neither a string nor an array");
		return GW_TOKEN_BAD_AUDIENCE;
	}
	crypto__errf(detail, detail_len, "aud does not name this app");
	return GW_TOKEN_BAD_AUDIENCE;
}
