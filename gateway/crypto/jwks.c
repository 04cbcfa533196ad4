/* jwks.c - Forge JWKS loading and FIT verification (RS256 pinned).
 *
 * A JWKS is parsed once into a kid -> EVP_PKEY table. Keys that are not RSA,
 * or that say they are for another use/alg, or have no kid, are skipped; RSA
 * keys shorter than 2048 bits are skipped too. A duplicate kid among the
 * usable keys is an error, since the lookup would be ambiguous.
 *
 * Ownership: struct gw_jwks owns its keys; it is immutable after load.
 * Threads: a loaded struct gw_jwks may be shared read-only by any number of
 * threads; gw_fit_verify uses per-call OpenSSL contexts.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include "crypto_internal.h"
#include "gw/b64url.h"

#define FIT_ISSUER "forge/invocation-token"
#define JWKS_MIN_RSA_BITS 2048

struct jwks_entry {
	char *kid;
	struct crypto__key key;
};

struct gw_jwks {
	size_t n;
	struct jwks_entry *keys;
	EVP_MD *sha256;
};

static BIGNUM *b64_to_bn(json_t *v)
{
	unsigned char *raw = NULL;
	size_t raw_len = 0;
	BIGNUM *bn;
	const char *s = json_string_value(v);

	if (!s || !*s || gw_b64url_decode(s, json_string_length(v), &raw, &raw_len) != 0)
		return NULL;
	bn = BN_bin2bn(raw, (int)raw_len, NULL);
	free(raw);
	return bn;
}

/* n, e -> EVP_PKEY through OSSL_PARAM (no deprecated RSA_* calls). */
static EVP_PKEY *rsa_from_jwk(json_t *jwk, size_t idx, char *err, size_t errlen)
{
	BIGNUM *n = NULL, *e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;

	n = b64_to_bn(json_object_get(jwk, "n"));
	e = b64_to_bn(json_object_get(jwk, "e"));
	if (!n || !e) {
		crypto__errf(err, errlen, "key #%zu: n and e must be non-empty base64url strings", idx);
		goto done;
	}
	if (!BN_is_odd(e) || BN_is_one(e) || BN_num_bits(e) > 64) {
		crypto__errf(err, errlen, "key #%zu: unusable RSA exponent", idx);
		goto done;
	}
	bld = OSSL_PARAM_BLD_new();
	if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
	    !(params = OSSL_PARAM_BLD_to_param(bld))) {
		crypto__errf(err, errlen, "key #%zu: out of memory", idx);
		goto done;
	}
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		crypto__errf(err, errlen, "key #%zu: OpenSSL refused the RSA key", idx);
		pkey = NULL;
	}
done:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return pkey;
}

void gw_jwks_free(struct gw_jwks *jwks)
{
	size_t i;

	if (!jwks)
		return;
	for (i = 0; i < jwks->n; i++) {
		free(jwks->keys[i].kid);
		crypto__key_release(&jwks->keys[i].key);
		EVP_PKEY_free(jwks->keys[i].key.pkey);
	}
	free(jwks->keys);
	EVP_MD_free(jwks->sha256);
	free(jwks);
}

size_t gw_jwks_count(const struct gw_jwks *jwks)
{
	return jwks ? jwks->n : 0;
}

struct gw_jwks *gw_jwks_load_json(const char *json, size_t len, char *err, size_t errlen)
{
	struct gw_jwks *jwks = NULL;
	json_t *root = NULL, *keys, *jwk;
	json_error_t jerr;
	size_t i, j, skipped = 0;

	if (!json) {
		crypto__errf(err, errlen, "jwks: no document");
		return NULL;
	}
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		crypto__errf(err, errlen, "jwks: invalid JSON at line %d column %d: %s", jerr.line,
			     jerr.column, jerr.text);
		return NULL;
	}
	keys = json_object_get(root, "keys");
	if (!json_is_array(keys)) {
		crypto__errf(err, errlen, "jwks: no \"keys\" array");
		goto fail;
	}
	jwks = calloc(1, sizeof(*jwks));
	if (!jwks || !(jwks->keys = calloc(json_array_size(keys) + 1, sizeof(*jwks->keys))) ||
	    !(jwks->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) {
		crypto__errf(err, errlen, "jwks: out of memory");
		goto fail;
	}
	json_array_foreach (keys, i, jwk) {
		const char *kty = json_string_value(json_object_get(jwk, "kty"));
		const char *use = json_string_value(json_object_get(jwk, "use"));
		const char *alg = json_string_value(json_object_get(jwk, "alg"));
		const char *kid = json_string_value(json_object_get(jwk, "kid"));
		EVP_PKEY *pkey;

		if (!json_is_object(jwk) || !kty || strcmp(kty, "RSA") != 0 ||
		    (use && strcmp(use, "sig") != 0) || (alg && strcmp(alg, "RS256") != 0) || !kid || !*kid) {
			skipped++;
			continue;
		}
		pkey = rsa_from_jwk(jwk, i, err, errlen);
		if (!pkey)
			goto fail;
		if (EVP_PKEY_get_bits(pkey) < JWKS_MIN_RSA_BITS) {
			EVP_PKEY_free(pkey);
			skipped++;
			continue;
		}
		for (j = 0; j < jwks->n; j++) {
			if (strcmp(jwks->keys[j].kid, kid) == 0) {
				char shown[72];
				crypto__printable(kid, 64, shown, sizeof(shown));
				crypto__errf(err, errlen, "jwks: duplicate kid \"%s\"", shown);
				EVP_PKEY_free(pkey);
				goto fail;
			}
		}
		jwks->keys[jwks->n].kid = strdup(kid);
		if (!jwks->keys[jwks->n].kid) {
			EVP_PKEY_free(pkey);
			crypto__errf(err, errlen, "jwks: out of memory");
			goto fail;
		}
		jwks->keys[jwks->n].key.alg = CRYPTO__RS256;
		jwks->keys[jwks->n].key.pkey = pkey;
		jwks->keys[jwks->n].key.sha256 = jwks->sha256;
		crypto__key_prepare(&jwks->keys[jwks->n].key);
		jwks->n++;
	}
	if (jwks->n == 0) {
		crypto__errf(err, errlen,
			     "jwks: no usable RSA signing key (%zu key(s) skipped: need kty RSA, "
			     "a kid, >= %d bits)",
			     skipped, JWKS_MIN_RSA_BITS);
		goto fail;
	}
	json_decref(root);
	return jwks;
fail:
	json_decref(root);
	gw_jwks_free(jwks);
	return NULL;
}

struct gw_jwks *gw_jwks_load_file(const char *path, char *err, size_t errlen)
{
	struct gw_jwks *jwks;
	char *buf = NULL, sub[192];
	size_t len = 0;

	if (crypto__read_key_file(path, CRYPTO__MAX_KEY_FILE, CRYPTO__KEY_PUBLIC, &buf, &len, err, errlen) !=
	    0)
		return NULL;
	jwks = gw_jwks_load_json(buf, len, sub, sizeof(sub));
	if (!jwks)
		crypto__errf(err, errlen, "%s: %s", path, sub);
	free(buf);
	return jwks;
}

static enum gw_token_err fit_key(void *arg, json_t *header, const struct crypto__key **key, char *detail,
				 size_t detail_len)
{
	const struct gw_jwks *jwks = arg;
	json_t *kidv = json_object_get(header, "kid");
	const char *kid = json_string_value(kidv);
	char shown[72];
	size_t i;

	if (!kid || !*kid) {
		crypto__errf(detail, detail_len, "header has no kid");
		return GW_TOKEN_UNKNOWN_KID;
	}
	for (i = 0; i < jwks->n; i++) {
		if (strcmp(jwks->keys[i].kid, kid) == 0) {
			*key = &jwks->keys[i].key;
			return GW_TOKEN_OK;
		}
	}
	crypto__printable(kid, 64, shown, sizeof(shown));
	crypto__errf(detail, detail_len, "kid \"%s\" is not in the JWKS", shown);
	return GW_TOKEN_UNKNOWN_KID;
}

enum gw_token_err gw_fit_verify(const struct gw_jwks *jwks, const char *token, size_t len,
				const char *audience, long leeway, time_t now, json_t **claims, char *detail,
				size_t detail_len)
{
	json_t *c = NULL;
	const char *iss;
	enum gw_token_err rc;

	if (claims)
		*claims = NULL;
	if (detail && detail_len)
		detail[0] = '\0';
	if (!jwks) {
		crypto__errf(detail, detail_len, "no JWKS loaded");
		return GW_TOKEN_UNKNOWN_KID;
	}
	rc = crypto__jws_verify(token, len, CRYPTO__RS256, fit_key, (void *)jwks, &c, detail, detail_len);
	if (rc != GW_TOKEN_OK)
		return rc;
	iss = json_string_value(json_object_get(c, "iss"));
	if (!iss || strcmp(iss, FIT_ISSUER) != 0) {
		crypto__errf(detail, detail_len, "iss is %s, expected " FIT_ISSUER,
			     iss ? "another issuer" : "missing");
		rc = GW_TOKEN_BAD_ISSUER;
		goto fail;
	}
	rc = crypto__check_aud(c, audience, detail, detail_len);
	if (rc != GW_TOKEN_OK)
		goto fail;
	rc = crypto__check_times(c, leeway, now, detail, detail_len);
	if (rc != GW_TOKEN_OK)
		goto fail;
	if (claims)
		*claims = c;
	else
		json_decref(c);
	return GW_TOKEN_OK;
fail:
	json_decref(c);
	return rc;
}
