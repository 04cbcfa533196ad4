/* keygen.c - first-start / development key generation: EC P-256 signing key,
 * RSA-2048 FIT key + JWKS, HS256 secret. Files are written atomically
 * (temporary file in the same directory, fchmod, write, fsync, rename, fsync
 * of the directory); private material is 0600, the public JWKS 0644.
 * Existing files at the target paths are replaced.
 *
 * Ownership: nothing is returned but status; private PEM text lives in a
 * secure-memory BIO and is wiped when freed.
 * Threads: reentrant (OpenSSL's RNG is thread-safe); meant for startup.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "crypto_internal.h"
#include "gw/b64url.h"
#include "gw/keygen.h"

/* PKCS#8 PEM of pkey's private key, written atomically with mode 0600. */
static int write_private_pem(const char *path, EVP_PKEY *pkey, char *err, size_t errlen)
{
	BIO *bio = BIO_new(BIO_s_secmem());
	char *data = NULL;
	long len;
	int rc = -1;

	if (!bio || !PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)) {
		crypto__errf(err, errlen, "%s: cannot encode the private key", path);
		goto done;
	}
	len = BIO_get_mem_data(bio, &data);
	if (len <= 0) {
		crypto__errf(err, errlen, "%s: cannot encode the private key", path);
		goto done;
	}
	rc = crypto__write_atomic(path, data, (size_t)len, 0600, err, errlen);
done:
	BIO_free(bio);
	return rc;
}

int gw_keygen_ec_p256(const char *path, char *err, size_t errlen)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	int rc;

	if (!pkey) {
		crypto__errf(err, errlen, "EC P-256 key generation failed");
		return -1;
	}
	rc = write_private_pem(path, pkey, err, errlen);
	EVP_PKEY_free(pkey);
	return rc;
}

static char *bn_b64(const BIGNUM *bn)
{
	int n = BN_num_bytes(bn);
	unsigned char *raw = malloc(n > 0 ? (size_t)n : 1);
	char *out = malloc(gw_b64url_encoded_len((size_t)(n > 0 ? n : 1)) + 1);

	if (!raw || !out || n <= 0 || BN_bn2bin(bn, raw) != n) {
		free(raw);
		free(out);
		return NULL;
	}
	gw_b64url_encode(raw, (size_t)n, out);
	free(raw);
	return out;
}

int gw_keygen_rsa_jwks(const char *priv_path, const char *jwks_path, const char *kid, char *err,
		       size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	BIGNUM *n = NULL, *e = NULL;
	char *nb = NULL, *eb = NULL, *text = NULL;
	json_t *root = NULL;
	int rc = -1;

	if (!kid || !*kid) {
		crypto__errf(err, errlen, "a kid is required");
		return -1;
	}
	if (!priv_path || !jwks_path || strcmp(priv_path, jwks_path) == 0) {
		crypto__errf(err, errlen, "two distinct paths are required");
		return -1;
	}
	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	if (!pkey || !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) ||
	    !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) || !(nb = bn_b64(n)) ||
	    !(eb = bn_b64(e))) {
		crypto__errf(err, errlen, "RSA-2048 key generation failed");
		goto done;
	}
	root = json_pack("{s:[{s:s, s:s, s:s, s:s, s:s, s:s}]}", "keys", "kty", "RSA", "kid", kid, "alg",
			 "RS256", "use", "sig", "n", nb, "e", eb);
	text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
	if (!text) {
		crypto__errf(err, errlen, "cannot build the JWKS (kid must be UTF-8)");
		goto done;
	}
	if (write_private_pem(priv_path, pkey, err, errlen) != 0)
		goto done;
	if (crypto__write_atomic(jwks_path, text, strlen(text), 0644, err, errlen) != 0) {
		/* Do not leave a private key without its JWKS behind. */
		unlink(priv_path);
		goto done;
	}
	rc = 0;
done:
	free(text);
	json_decref(root);
	free(nb);
	free(eb);
	BN_free(n);
	BN_free(e);
	EVP_PKEY_free(pkey);
	return rc;
}

int gw_keygen_secret(const char *path, char *err, size_t errlen)
{
	unsigned char raw[32];
	char text[64];
	size_t n;
	int rc;

	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		crypto__errf(err, errlen, "random generator failed");
		return -1;
	}
	n = gw_b64url_encode(raw, sizeof(raw), text);
	text[n++] = '\n';
	rc = crypto__write_atomic(path, text, n, 0600, err, errlen);
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(text, sizeof(text));
	return rc;
}
