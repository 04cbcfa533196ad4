/* keys.c - `forge-sim keys`: an RSA-2048 key (kept if present, mode 0600)
 * and the JWKS with its RFC 7638 kid that a gateway pins; loading the key
 * for the commands that sign (keys.h).
 *
 * Ownership: everything allocated here is freed before returning.
 * Threads: single-threaded tool.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>

#include "keys.h"
#include "util.h"

static char *bn_param_b64(EVP_PKEY *pkey, const char *name)
{
	BIGNUM *bn = NULL;
	if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1 || !bn)
		fatal("cannot read RSA parameter %s", name);
	int n = BN_num_bytes(bn);
	unsigned char *buf = xmalloc((size_t)n);
	BN_bn2bin(bn, buf);
	char *out = b64url(buf, (size_t)n);
	free(buf);
	BN_free(bn);
	return out;
}

/* RFC 7638 thumbprint of the RSA public key (base64url SHA-256). */
static char *rsa_thumbprint(const char *n, const char *e)
{
	char *canon = xasprintf("{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e, n);
	unsigned char md[32];
	unsigned int mdlen = 0;
	if (EVP_Digest(canon, strlen(canon), md, &mdlen, EVP_sha256(), NULL) != 1)
		fatal("SHA-256 failed");
	free(canon);
	return b64url(md, mdlen);
}

EVP_PKEY *load_rsa_key(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!pkey)
		return NULL;
	if (!EVP_PKEY_is_a(pkey, "RSA")) {
		EVP_PKEY_free(pkey);
		return NULL;
	}
	return pkey;
}

int cmd_keys(int argc, char **argv)
{
	const char *dir = NULL, *kid = NULL;
	int force = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--dir") || !strcmp(a, "--kid")) {
			if (i + 1 >= argc)
				usage_error("option '%s' needs a value", a);
			if (!strcmp(a, "--dir"))
				dir = argv[++i];
			else
				kid = argv[++i];
		} else if (!strncmp(a, "--dir=", 6)) {
			dir = a + 6;
		} else if (!strncmp(a, "--kid=", 6)) {
			kid = a + 6;
		} else if (!strcmp(a, "--force")) {
			force = 1;
		} else {
			usage_error("unknown argument '%s' (keys takes --dir DIR [--kid KID] [--force])", a);
		}
	}
	if (!dir)
		usage_error("--dir DIR is required");
	if (kid && !*kid)
		usage_error("--kid must not be empty");
	if (mkdir(dir, 0700) && errno != EEXIST)
		fatal("cannot create directory '%s': %s", dir, strerror(errno));

	char *key_path = xasprintf("%s/%s", dir, KEY_FILE);
	char *jwks_path = xasprintf("%s/%s", dir, JWKS_FILE);
	EVP_PKEY *pkey = NULL;
	int generated = 0;
	if (!force && access(key_path, F_OK) == 0) {
		pkey = load_rsa_key(key_path);
		if (!pkey)
			fatal("%s exists but is not an RSA private key (use --force to replace it)",
			      key_path);
	} else {
		pkey = EVP_RSA_gen(2048);
		if (!pkey)
			fatal("RSA key generation failed");
		BIO *bio = BIO_new(BIO_s_mem());
		if (!bio || !PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL))
			fatal("cannot encode the private key");
		char *pem = NULL;
		long pem_len = BIO_get_mem_data(bio, &pem);
		if (write_file_atomic(key_path, pem, (size_t)pem_len, 0600))
			fatal("cannot write %s: %s", key_path, strerror(errno));
		BIO_free(bio);
		generated = 1;
	}
	char *n = bn_param_b64(pkey, OSSL_PKEY_PARAM_RSA_N);
	char *e = bn_param_b64(pkey, OSSL_PKEY_PARAM_RSA_E);
	char *thumb = rsa_thumbprint(n, e);
	char *kid_final = kid ? xstrdup(kid) : xasprintf("forge-sim-%.16s", thumb);
	json_t *jwk = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "RSA", "n", n, "e", e, "kid",
				kid_final, "alg", "RS256", "use", "sig");
	json_t *doc = json_pack("{s:[o]}", "keys", jwk);
	char *text = json_dumps(doc, JSON_INDENT(2));
	if (!text)
		fatal("out of memory");
	size_t tl = strlen(text);
	char *text_nl = xasprintf("%s\n", text);
	if (write_file_atomic(jwks_path, text_nl, tl + 1, 0644))
		fatal("cannot write %s: %s", jwks_path, strerror(errno));
	printf("%s %s (RSA-2048, mode 0600)\n", generated ? "generated" : "kept", key_path);
	printf("wrote %s (kid %s)\n", jwks_path, kid_final);
	free(text);
	free(text_nl);
	json_decref(doc);
	free(kid_final);
	free(thumb);
	free(n);
	free(e);
	EVP_PKEY_free(pkey);
	free(key_path);
	free(jwks_path);
	return EXIT_OK;
}
