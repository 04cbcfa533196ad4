/* fit_dev.c - RS256 FIT minting for development and demo tooling only.
 *
 * Loads the PEM on every call (simple, slow: fine for tools, not for a
 * request path). Production FITs are minted by Forge, never by the gateway.
 *
 * Ownership: returns malloc'd text the caller frees.
 * Threads: reentrant.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#include "crypto_internal.h"
#include "gw/b64url.h"

static char *b64_dup(const void *data, size_t len)
{
	char *out = malloc(gw_b64url_encoded_len(len) + 1);

	if (out)
		gw_b64url_encode(data, len, out);
	return out;
}

char *gw_fit_sign_dev(const char *rsa_priv_pem_path, const char *kid, const char *claims_json, char *err,
		      size_t errlen)
{
	char *pem = NULL, *hdr_json = NULL, *hdr = NULL, *pay = NULL, *sigb = NULL, *out = NULL;
	size_t pem_len = 0, sig_len = 0, hl, pl, sl, in_len;
	unsigned char *sig = NULL, *input = NULL;
	json_t *hj = NULL, *cj = NULL;
	EVP_PKEY *pkey = NULL;
	EVP_MD_CTX *md = NULL;
	BIO *bio = NULL;

	if (!kid || !*kid || !claims_json) {
		crypto__errf(err, errlen, "kid and claims are required");
		return NULL;
	}
	cj = json_loads(claims_json, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(cj)) {
		crypto__errf(err, errlen, "claims are not a JSON object");
		goto done;
	}
	if (crypto__read_key_file(rsa_priv_pem_path, 64 * 1024, CRYPTO__KEY_SECRET, &pem, &pem_len, err,
				  errlen) != 0)
		goto done;
	if (crypto__pem_is_encrypted(pem, pem_len)) {
		crypto__errf(err, errlen, "%s: encrypted keys are not supported", rsa_priv_pem_path);
		goto done;
	}
	bio = BIO_new_mem_buf(pem, (int)pem_len);
	pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, crypto__no_passphrase, NULL) : NULL;
	if (!pkey || !EVP_PKEY_is_a(pkey, "RSA")) {
		crypto__errf(err, errlen, "%s: not an unencrypted RSA private key (PEM)", rsa_priv_pem_path);
		goto done;
	}
	hj = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "kid", kid);
	hdr_json = hj ? json_dumps(hj, JSON_COMPACT) : NULL;
	if (!hdr_json || !(hdr = b64_dup(hdr_json, strlen(hdr_json))) ||
	    !(pay = b64_dup(claims_json, strlen(claims_json)))) {
		crypto__errf(err, errlen, "out of memory (or kid not UTF-8)");
		goto done;
	}
	hl = strlen(hdr);
	pl = strlen(pay);
	in_len = hl + 1 + pl;
	input = malloc(in_len + 1);
	sig_len = (size_t)EVP_PKEY_get_size(pkey);
	sig = malloc(sig_len);
	md = EVP_MD_CTX_new();
	if (!input || !sig || !md) {
		crypto__errf(err, errlen, "out of memory");
		goto done;
	}
	memcpy(input, hdr, hl);
	input[hl] = '.';
	memcpy(input + hl + 1, pay, pl);
	if (EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, pkey, NULL) != 1 ||
	    EVP_DigestSign(md, sig, &sig_len, input, in_len) != 1 || !(sigb = b64_dup(sig, sig_len))) {
		crypto__errf(err, errlen, "RS256 signing failed");
		goto done;
	}
	sl = strlen(sigb);
	out = malloc(in_len + 1 + sl + 1);
	if (!out) {
		crypto__errf(err, errlen, "out of memory");
		goto done;
	}
	memcpy(out, input, in_len);
	out[in_len] = '.';
	memcpy(out + in_len + 1, sigb, sl + 1);
done:
	EVP_MD_CTX_free(md);
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	crypto__free_secret(pem, pem_len);
	json_decref(hj);
	json_decref(cj);
	free(hdr_json);
	free(hdr);
	free(pay);
	free(sigb);
	free(sig);
	free(input);
	return out;
}
