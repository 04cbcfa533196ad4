/* signer.c - ES256 compact JWS for outgoing notifications.
 *
 * The P-256 private key is parsed once (EVP_PKEY); the kid (RFC 7638
 * thumbprint) and the base64url header are computed at load, so a signature
 * costs one base64url pass over the claims plus one ECDSA operation.
 *
 * Ownership: struct gw_signer owns its key, its fetched SHA-256 and its
 * cached strings. gw_signer_jwks_json returns malloc'd text.
 * Threads: after gw_signer_load_file returns, the signer is read-only;
 * gw_signer_sign creates its own EVP_MD_CTX per call, so any number of
 * threads may sign with one signer (openssl-threads(7)).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/pem.h>

#include "crypto_internal.h"
#include "gw/b64url.h"
#include "gw/signer.h"

#define B64_32 43 /* base64url length of 32 bytes */
#define ES256_SIG_B64 86

struct gw_signer {
	EVP_PKEY *pkey;
	EVP_MD *sha256;
	char kid[B64_32 + 1];
	char x[B64_32 + 1];
	char y[B64_32 + 1];
	char *hdr; /* base64url of the JOSE header, followed by '.' */
	size_t hdr_len; /* including the '.' */
};

void gw_signer_free(struct gw_signer *signer)
{
	if (!signer)
		return;
	EVP_PKEY_free(signer->pkey);
	EVP_MD_free(signer->sha256);
	free(signer->hdr);
	free(signer);
}

/* x, y (padded to 32 bytes), RFC 7638 thumbprint, cached header. */
static int signer_derive(struct gw_signer *sg)
{
	BIGNUM *bx = NULL, *by = NULL;
	unsigned char xb[32], yb[32], dgst[32];
	char canon[160], header[128];
	unsigned int dlen = 0;
	int n, ok = 0;

	if (!EVP_PKEY_get_bn_param(sg->pkey, OSSL_PKEY_PARAM_EC_PUB_X, &bx) ||
	    !EVP_PKEY_get_bn_param(sg->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &by) ||
	    BN_bn2binpad(bx, xb, 32) != 32 || BN_bn2binpad(by, yb, 32) != 32)
		goto done;
	gw_b64url_encode(xb, 32, sg->x);
	gw_b64url_encode(yb, 32, sg->y);
	/* RFC 7638 §3.2: required members only, lexicographic order, no
	 * whitespace. */
	n = snprintf(canon, sizeof(canon), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
		     sg->x, sg->y);
	if (n <= 0 || (size_t)n >= sizeof(canon) ||
	    !EVP_Digest(canon, (size_t)n, dgst, &dlen, sg->sha256, NULL) || dlen != 32)
		goto done;
	gw_b64url_encode(dgst, 32, sg->kid);
	n = snprintf(header, sizeof(header), "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", sg->kid);
	if (n <= 0 || (size_t)n >= sizeof(header))
		goto done;
	sg->hdr = malloc(gw_b64url_encoded_len((size_t)n) + 2);
	if (!sg->hdr)
		goto done;
	sg->hdr_len = gw_b64url_encode((const unsigned char *)header, (size_t)n, sg->hdr);
	sg->hdr[sg->hdr_len++] = '.';
	sg->hdr[sg->hdr_len] = '\0';
	ok = 1;
done:
	BN_free(bx);
	BN_free(by);
	return ok;
}

struct gw_signer *gw_signer_load_file(const char *path, char *err, size_t errlen)
{
	struct gw_signer *sg = NULL;
	char *buf = NULL;
	size_t len = 0;
	BIO *bio = NULL;

	if (crypto__read_key_file(path, 64 * 1024, CRYPTO__KEY_SECRET, &buf, &len, err, errlen) != 0)
		return NULL;
	if (!memmem(buf, len, "-----BEGIN", 10)) {
		crypto__errf(err, errlen, "%s: not a PEM file", path);
		goto fail;
	}
	if (crypto__pem_is_encrypted(buf, len)) {
		crypto__errf(err, errlen,
			     "%s: private key is encrypted; the gateway needs it unencrypted "
			     "(protect it with file permissions, mode 0600)",
			     path);
		goto fail;
	}
	if (!crypto__pem_has_private(buf, len)) {
		crypto__errf(err, errlen,
			     "%s: holds no private key (a public key cannot sign); give the EC "
			     "P-256 private key",
			     path);
		goto fail;
	}
	sg = calloc(1, sizeof(*sg));
	bio = BIO_new_mem_buf(buf, (int)len);
	if (!sg || !bio || !(sg->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) {
		crypto__errf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	/* The callback fails instead of prompting, should an encrypted key
	 * slip past the text check above. */
	sg->pkey = PEM_read_bio_PrivateKey(bio, NULL, crypto__no_passphrase, NULL);
	if (!sg->pkey) {
		crypto__errf(err, errlen, "%s: not a readable (unencrypted) PEM private key", path);
		goto fail;
	}
	if (!EVP_PKEY_is_a(sg->pkey, "EC")) {
		crypto__errf(err, errlen, "%s: %s key given; the signer needs an EC P-256 key", path,
			     EVP_PKEY_get0_type_name(sg->pkey));
		goto fail;
	}
	if (!crypto__is_p256(sg->pkey)) {
		crypto__errf(err, errlen, "%s: EC key is not on curve P-256 (ES256)", path);
		goto fail;
	}
	if (!signer_derive(sg)) {
		crypto__errf(err, errlen, "%s: cannot derive the public key", path);
		goto fail;
	}
	BIO_free(bio);
	crypto__free_secret(buf, len);
	return sg;
fail:
	BIO_free(bio);
	crypto__free_secret(buf, len);
	gw_signer_free(sg);
	return NULL;
}

const char *gw_signer_kid(const struct gw_signer *signer)
{
	return signer ? signer->kid : NULL;
}

char *gw_signer_jwks_json(const struct gw_signer *signer)
{
	json_t *root;
	char *out;

	if (!signer)
		return NULL;
	root = json_pack("{s:[{s:s, s:s, s:s, s:s, s:s, s:s, s:s}]}", "keys", "kty", "EC", "crv", "P-256",
			 "x", signer->x, "y", signer->y, "kid", signer->kid, "alg", "ES256", "use", "sig");
	if (!root)
		return NULL;
	out = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return out;
}

size_t gw_signer_max_jws_len(const struct gw_signer *signer, size_t claims_len)
{
	if (!signer || claims_len > (size_t)-1 / 2)
		return 0;
	return signer->hdr_len + gw_b64url_encoded_len(claims_len) + 1 + ES256_SIG_B64;
}

/* Signs the signing input out[0..n) with ES256 and appends '.' and the
 * 86-character signature (no NUL: the caller's capacity covers the text
 * only). Returns the new length, 0 on failure. */
static size_t append_es256_signature(const struct gw_signer *signer, char *out, size_t n)
{
	unsigned char der[80], rs[64];
	const unsigned char *derp = der;
	size_t der_len = sizeof(der);
	ECDSA_SIG *es = NULL;
	const BIGNUM *r, *s;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, signer->sha256, NULL, signer->pkey) != 1 ||
	    EVP_DigestSign(md, der, &der_len, (const unsigned char *)out, n) != 1)
		goto fail;
	es = d2i_ECDSA_SIG(NULL, &derp, (long)der_len);
	if (!es)
		goto fail;
	ECDSA_SIG_get0(es, &r, &s);
	if (BN_bn2binpad(r, rs, 32) != 32 || BN_bn2binpad(s, rs + 32, 32) != 32)
		goto fail;
	out[n++] = '.';
	/* 64 bytes -> exactly 86 characters + NUL; the NUL goes into a local
	 * buffer to honour "no NUL". */
	char sigtxt[ES256_SIG_B64 + 1];
	gw_b64url_encode(rs, sizeof(rs), sigtxt);
	memcpy(out + n, sigtxt, ES256_SIG_B64);
	n += ES256_SIG_B64;
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return n;
fail:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	return 0;
}

size_t gw_signer_sign(const struct gw_signer *signer, const char *claims, size_t claims_len, char *out,
		      size_t out_cap)
{
	if (!signer || !out || (!claims && claims_len))
		return 0;
	size_t need = gw_signer_max_jws_len(signer, claims_len);
	if (!need || out_cap < need)
		return 0;
	/* The signing input is written straight into out. gw_b64url_encode
	 * writes a NUL after the text, which the '.' then overwrites. */
	memcpy(out, signer->hdr, signer->hdr_len);
	size_t n = signer->hdr_len;
	n += gw_b64url_encode((const unsigned char *)claims, claims_len, out + n);
	return append_es256_signature(signer, out, n);
}

EVP_PKEY *crypto__signer_pkey(const struct gw_signer *signer)
{
	return signer ? signer->pkey : NULL;
}

size_t gw_signer_sign_typ(const struct gw_signer *signer, const char *typ, const char *claims,
			  size_t claims_len, char *out, size_t out_cap)
{
	char header[160];
	if (!signer || !typ || !claims)
		return 0;
	int hl = snprintf(header, sizeof(header), "{\"alg\":\"ES256\",\"typ\":\"%s\",\"kid\":\"%s\"}", typ,
			  signer->kid);
	if (hl <= 0 || (size_t)hl >= sizeof(header) || strpbrk(typ, "\"\\"))
		return 0;
	if (out_cap <
	    gw_b64url_encoded_len((size_t)hl) + 1 + gw_b64url_encoded_len(claims_len) + 1 + ES256_SIG_B64 + 1)
		return 0;
	size_t n = gw_b64url_encode((const unsigned char *)header, (size_t)hl, out);
	out[n++] = '.';
	n += gw_b64url_encode((const unsigned char *)claims, claims_len, out + n);
	n = append_es256_signature(signer, out, n);
	if (n)
		out[n] = '\0'; /* this one's capacity includes the NUL, as before */
	return n;
}
