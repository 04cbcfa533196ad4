/* subkey.c - the subscriber key and subscription-token verification.
 *
 * The option decides the algorithm, never the file's content alone:
 * subscriber.key is a PEM public key (EC P-256 -> ES256, RSA >= 2048 bits ->
 * RS256); subscriber.hs256_secret is a file whose trimmed content is an HS256
 * secret of at least 32 bytes. A file in another key format (DER, JWK JSON,
 * OpenSSH, PuTTY) is refused with a message naming the format, for either
 * option: such a file read as an HMAC secret is the alg-confusion attack
 * (anyone holding the public key could mint tokens). Private keys are
 * refused: the gateway only verifies.
 *
 * Ownership: struct gw_subkey owns its EVP_PKEY or a copy of the secret
 * (wiped on free). Immutable after load.
 * Threads: shareable read-only by any number of threads.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/hmac.h>

#include "crypto_internal.h"
#include "gw/b64url.h"

#define SUBKEY_MIN_SECRET 32
#define SUBKEY_MIN_RSA_BITS 2048

struct gw_subkey {
	struct crypto__key key;
	EVP_MD *sha256;
	unsigned char *secret;
	size_t secret_len;
	int own; /* the gateway's signing key: only tokens typed GW_SUBTOKEN_TYP */
};

void gw_subkey_free(struct gw_subkey *key)
{
	if (!key)
		return;
	crypto__key_release(&key->key);
	EVP_PKEY_free(key->key.pkey);
	EVP_MD_free(key->sha256);
	crypto__free_secret(key->secret, key->secret_len);
	free(key);
}

const char *gw_subkey_alg(const struct gw_subkey *key)
{
	return key ? crypto__alg_name(key->key.alg) : NULL;
}

static struct gw_subkey *subkey_new(char *err, size_t errlen)
{
	struct gw_subkey *key = calloc(1, sizeof(*key));

	if (!key || !(key->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) {
		free(key);
		crypto__errf(err, errlen, "out of memory");
		return NULL;
	}
	key->key.sha256 = key->sha256;
	return key;
}

struct gw_subkey *gw_subkey_from_secret(const unsigned char *secret, size_t len, char *err, size_t errlen)
{
	struct gw_subkey *key;

	if (!secret || len < SUBKEY_MIN_SECRET) {
		crypto__errf(err, errlen, "HS256 secret is %zu bytes; at least %d are required", len,
			     SUBKEY_MIN_SECRET);
		return NULL;
	}
	if (len > 4096) {
		crypto__errf(err, errlen, "HS256 secret is %zu bytes; at most 4096 are accepted", len);
		return NULL;
	}
	key = subkey_new(err, errlen);
	if (!key)
		return NULL;
	key->secret = malloc(len);
	if (!key->secret) {
		crypto__errf(err, errlen, "out of memory");
		gw_subkey_free(key);
		return NULL;
	}
	memcpy(key->secret, secret, len);
	key->secret_len = len;
	key->key.alg = CRYPTO__HS256;
	key->key.secret = key->secret;
	key->key.secret_len = len;
	return key;
}

/* PEM public key (SPKI "PUBLIC KEY" or PKCS#1 "RSA PUBLIC KEY"). */
static struct gw_subkey *subkey_from_pem(const char *path, const char *pem, size_t len, char *err,
					 size_t errlen)
{
	OSSL_DECODER_CTX *dctx = NULL;
	const unsigned char *p = (const unsigned char *)pem;
	size_t plen = len;
	EVP_PKEY *pkey = NULL;
	BIGNUM *priv = NULL;
	struct gw_subkey *key = NULL;

	if (crypto__pem_has_private(pem, len)) {
		crypto__errf(err, errlen,
			     "%s: holds a PRIVATE key; the gateway verifies subscription tokens "
			     "and needs only the public key (openssl pkey -pubout)",
			     path);
		return NULL;
	}
	dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL, EVP_PKEY_PUBLIC_KEY, NULL, NULL);
	if (!dctx || !OSSL_DECODER_CTX_set_pem_password_cb(dctx, crypto__no_passphrase, NULL) ||
	    !OSSL_DECODER_from_data(dctx, &p, &plen) || !pkey) {
		crypto__errf(err, errlen, "%s: not a readable PEM public key", path);
		goto fail;
	}
	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &priv) ||
	    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_D, &priv)) {
		crypto__errf(err, errlen, "%s: holds a private key; give the public key only", path);
		goto fail;
	}
	key = subkey_new(err, errlen);
	if (!key)
		goto fail;
	if (EVP_PKEY_is_a(pkey, "EC")) {
		if (!crypto__is_p256(pkey)) {
			crypto__errf(err, errlen, "%s: EC key is not on P-256; only ES256 is supported",
				     path);
			goto fail;
		}
		key->key.alg = CRYPTO__ES256;
	} else if (EVP_PKEY_is_a(pkey, "RSA")) {
		if (EVP_PKEY_get_bits(pkey) < SUBKEY_MIN_RSA_BITS) {
			crypto__errf(err, errlen, "%s: RSA key has %d bits; at least %d required", path,
				     EVP_PKEY_get_bits(pkey), SUBKEY_MIN_RSA_BITS);
			goto fail;
		}
		key->key.alg = CRYPTO__RS256;
	} else {
		crypto__errf(err, errlen,
			     "%s: unsupported key type %s (need EC P-256, RSA, or an HS256 secret)", path,
			     EVP_PKEY_get0_type_name(pkey));
		goto fail;
	}
	key->key.pkey = pkey;
	crypto__key_prepare(&key->key);
	OSSL_DECODER_CTX_free(dctx);
	return key;
fail:
	BN_clear_free(priv);
	OSSL_DECODER_CTX_free(dctx);
	EVP_PKEY_free(pkey);
	gw_subkey_free(key);
	return NULL;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

struct gw_subkey *gw_subkey_load_file(const char *path, char *err, size_t errlen)
{
	struct gw_subkey *key = NULL;
	char *buf = NULL;
	size_t len = 0;
	const char *kind;

	if (crypto__read_key_file(path, 64 * 1024, CRYPTO__KEY_PUBLIC, &buf, &len, err, errlen) != 0)
		return NULL;
	kind = crypto__sniff_key_format(buf, len);
	if (kind && strcmp(kind, "PEM") == 0) {
		key = subkey_from_pem(path, buf, len, err, errlen);
	} else if (kind) {
		crypto__errf(err, errlen,
			     "%s: this is a %s file; subscriber.key takes a PEM public key only "
			     "(EC P-256 or RSA; convert with `openssl pkey -pubin -in KEY -out KEY.pem`, "
			     "`ssh-keygen -e -m PKCS8 -f KEY`)",
			     path, kind);
	} else {
		crypto__errf(err, errlen,
			     "%s: not a PEM public key; subscriber.key takes a PEM public key only "
			     "(an HS256 secret goes in subscriber.hs256_secret)",
			     path);
	}
	free(buf);
	return key;
}

struct gw_subkey *gw_subkey_load_secret_file(const char *path, char *err, size_t errlen)
{
	struct gw_subkey *key = NULL;
	char *buf = NULL, sub[160];
	size_t len = 0, start = 0, end;
	const char *kind;

	if (crypto__read_key_file(path, 64 * 1024, CRYPTO__KEY_SECRET, &buf, &len, err, errlen) != 0)
		return NULL;
	/* A key file used as an HMAC secret is the algorithm-confusion hole:
	 * whoever has the (public) key could mint tokens. */
	kind = crypto__sniff_key_format(buf, len);
	if (kind) {
		crypto__errf(err, errlen,
			     "%s: this is a %s file, not an HS256 secret; a public key goes in "
			     "subscriber.key (as PEM)",
			     path, kind);
		goto done;
	}
	end = len;
	while (start < end && is_space(buf[start]))
		start++;
	while (end > start && is_space(buf[end - 1]))
		end--;
	key = gw_subkey_from_secret((unsigned char *)buf + start, end - start, sub, sizeof(sub));
	if (!key)
		crypto__errf(err, errlen, "%s: %s", path, sub);
done:
	crypto__free_secret(buf, len);
	return key;
}

static enum gw_token_err sub_key(void *arg, json_t *header, const struct crypto__key **key, char *detail,
				 size_t detail_len)
{
	const struct gw_subkey *k = arg;
	if (k->own) {
		/* The signing key also signs notification batches: only tokens of
		 * our own type are subscription tokens. */
		const char *typ = json_string_value(json_object_get(header, "typ"));
		if (!typ || strcmp(typ, GW_SUBTOKEN_TYP) != 0) {
			crypto__errf(detail, detail_len, "typ must be %s", GW_SUBTOKEN_TYP);
			return GW_TOKEN_MALFORMED;
		}
	}
	*key = &k->key;
	return GW_TOKEN_OK;
}

struct gw_subkey *gw_subkey_from_signer(const struct gw_signer *signer, char *err, size_t errlen)
{
	EVP_PKEY *pk = crypto__signer_pkey(signer);
	if (!pk) {
		crypto__errf(err, errlen, "no signing key");
		return NULL;
	}
	struct gw_subkey *key = subkey_new(err, errlen);
	if (!key)
		return NULL;
	if (!EVP_PKEY_up_ref(pk)) {
		crypto__errf(err, errlen, "out of memory");
		gw_subkey_free(key);
		return NULL;
	}
	key->key.pkey = pk;
	key->key.alg = CRYPTO__ES256;
	key->own = 1;
	crypto__key_prepare(&key->key);
	return key;
}

int gw_subtoken_is_own(const char *token, size_t len)
{
	/* Only picks which key (and so which pinned algorithm) verifies the
	 * token: a wrong answer is a failed verification, never a bypass. */
	const char *dot = token ? memchr(token, '.', len < 512 ? len : 512) : NULL;
	unsigned char *hdr = NULL;
	size_t hlen = 0;
	int own = 0;
	if (!dot || gw_b64url_decode(token, (size_t)(dot - token), &hdr, &hlen) != 0)
		return 0;
	json_t *h = json_loadb((const char *)hdr, hlen, 0, NULL);
	const char *typ = json_string_value(json_object_get(h, "typ"));
	own = typ && !strcmp(typ, GW_SUBTOKEN_TYP);
	json_decref(h);
	free(hdr);
	return own;
}

enum gw_token_err gw_subtoken_verify(const struct gw_subkey *key, const char *token, size_t len,
				     const char *audience, long leeway, time_t now, json_t **claims,
				     char *detail, size_t detail_len)
{
	json_t *c = NULL, *sub, *ctx, *v;
	enum gw_token_err rc;
	size_t i;

	if (claims)
		*claims = NULL;
	if (detail && detail_len)
		detail[0] = '\0';
	if (!key) {
		crypto__errf(detail, detail_len, "no subscriber key loaded");
		return GW_TOKEN_BAD_SIGNATURE;
	}
	rc = crypto__jws_verify(token, len, key->key.alg, sub_key, (void *)key, &c, detail, detail_len);
	if (rc != GW_TOKEN_OK)
		return rc;
	rc = GW_TOKEN_BAD_CLAIMS;
	sub = json_object_get(c, "sub");
	if (!json_is_string(sub) || json_string_length(sub) == 0) {
		crypto__errf(detail, detail_len, "sub claim missing or not a non-empty string");
		goto fail;
	}
	ctx = json_object_get(c, "ctx");
	if (!json_is_array(ctx)) {
		crypto__errf(detail, detail_len, "ctx claim missing or not an array");
		goto fail;
	}
	json_array_foreach (ctx, i, v) {
		if (!json_is_string(v)) {
			crypto__errf(detail, detail_len, "ctx[%zu] is not a string", i);
			goto fail;
		}
	}
	if (audience) {
		rc = crypto__check_aud(c, audience, detail, detail_len);
		if (rc != GW_TOKEN_OK)
			goto fail;
	}
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

char *gw_subtoken_sign_dev(const struct gw_subkey *key, const char *claims_json, char *err, size_t errlen)
{
	static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	if (!key || !key->secret || !claims_json) {
		crypto__errf(err, errlen, "development tokens need the HS256 development secret");
		return NULL;
	}
	size_t hl = gw_b64url_encoded_len(sizeof(header) - 1);
	size_t cl = gw_b64url_encoded_len(strlen(claims_json));
	char *out = malloc(hl + 1 + cl + 1 + gw_b64url_encoded_len(32) + 1);
	if (!out) {
		crypto__errf(err, errlen, "out of memory");
		return NULL;
	}
	size_t n = gw_b64url_encode((const unsigned char *)header, sizeof(header) - 1, out);
	out[n++] = '.';
	n += gw_b64url_encode((const unsigned char *)claims_json, strlen(claims_json), out + n);
	unsigned char mac[32];
	unsigned int maclen = 0;
	if (!HMAC(key->sha256, key->secret, (int)key->secret_len, (const unsigned char *)out, n, mac,
		  &maclen)) {
		free(out);
		crypto__errf(err, errlen, "HMAC failed");
		return NULL;
	}
	out[n++] = '.';
	gw_b64url_encode(mac, maclen, out + n);
	return out;
}
