/* test_signer.c - ES256 signer: load/refuse keys, RFC 7638 kid (against a
 * thumbprint computed by gen_keys.sh from the openssl CLI, and recomputed
 * from the emitted JWKS), signatures verified with plain OpenSSL EVP and with
 * libjwt, and a 4-thread concurrency smoke test.
 * Usage: test_crypto_signer KEYDIR. main thread + 4 signing threads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "check.h"
#include "crypto_test.h"
#include "gw/signer.h"
#include "gw/token.h"

static struct gw_signer *signer;
static EVP_PKEY *pub; /* ec_pub.pem, loaded with OpenSSL directly */

/* Independent ES256 check: raw R||S -> DER -> EVP_DigestVerify. */
static int openssl_verify(const char *jws, size_t len)
{
	const char *dot = memrchr(jws, '.', len);
	unsigned char *raw = NULL, der[80], *dp = der;
	size_t raw_len = 0;
	ECDSA_SIG *es = NULL;
	EVP_MD_CTX *md = NULL;
	int ok = 0, dl;

	if (!dot || gw_b64url_decode(dot + 1, len - (size_t)(dot + 1 - jws), &raw, &raw_len) != 0)
		return 0;
	if (raw_len != 64 || !(es = ECDSA_SIG_new()) ||
	    !ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL)))
		goto done;
	dl = i2d_ECDSA_SIG(es, &dp);
	md = EVP_MD_CTX_new();
	if (dl <= 0 || !md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) != 1)
		goto done;
	ok = EVP_DigestVerify(md, der, (size_t)dl, (const unsigned char *)jws, (size_t)(dot - jws)) == 1;
done:
	EVP_MD_CTX_free(md);
	ECDSA_SIG_free(es);
	free(raw);
	return ok;
}

static char *sign_str(const char *claims, size_t *out_len)
{
	size_t cap = gw_signer_max_jws_len(signer, strlen(claims)), n;
	char *out = malloc(cap + 1);

	n = gw_signer_sign(signer, claims, strlen(claims), out, cap);
	out[n] = '\0';
	if (out_len)
		*out_len = n;
	return out;
}

static void test_kid_and_jwks(void)
{
	char *thumb = slurp(key_path("ec.thumb"), NULL), *jwks, canon[256], b64[64];
	const char *x, *y;
	unsigned char dgst[32];
	unsigned int dl = 0;
	json_t *root, *k;

	CHECK_STR_EQ(gw_signer_kid(signer), thumb);
	CHECK_INT_EQ(strlen(gw_signer_kid(signer)), 43);
	free(thumb);

	jwks = gw_signer_jwks_json(signer);
	CHECK(jwks != NULL);
	root = json_loads(jwks, 0, NULL);
	k = json_array_get(json_object_get(root, "keys"), 0);
	CHECK_INT_EQ(json_array_size(json_object_get(root, "keys")), 1);
	CHECK_STR_EQ(json_string_value(json_object_get(k, "kty")), "EC");
	CHECK_STR_EQ(json_string_value(json_object_get(k, "crv")), "P-256");
	CHECK_STR_EQ(json_string_value(json_object_get(k, "alg")), "ES256");
	CHECK_STR_EQ(json_string_value(json_object_get(k, "use")), "sig");
	CHECK_STR_EQ(json_string_value(json_object_get(k, "kid")), gw_signer_kid(signer));
	CHECK(json_object_get(k, "d") == NULL); /* never the private part */
	x = json_string_value(json_object_get(k, "x"));
	y = json_string_value(json_object_get(k, "y"));
	CHECK(x && y && strlen(x) == 43 && strlen(y) == 43);
	/* Recompute the RFC 7638 thumbprint from the emitted JWK. */
	snprintf(canon, sizeof(canon), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
		 x ? x : "", y ? y : "");
	EVP_Digest(canon, strlen(canon), dgst, &dl, EVP_sha256(), NULL);
	gw_b64url_encode(dgst, 32, b64);
	CHECK_STR_EQ(b64, gw_signer_kid(signer));
	json_decref(root);
	free(jwks);
	CHECK(gw_signer_kid(NULL) == NULL);
	CHECK(gw_signer_jwks_json(NULL) == NULL);
}

static void test_sign(void)
{
	const char *claims = "{\"sub\":\"user-1\",\"exp\":1700000060,\"ctx\":[\"jira:1\"],"
			     "\"msg\":\"h\\u00e9llo \\\"world\\\"\"}";
	char *jws, *part, expect_hdr[160], err[256], small[64];
	unsigned char *raw = NULL;
	size_t len = 0, raw_len = 0;
	jwt_t *jwt = NULL;
	char *pem;
	size_t pem_len = 0;

	jws = sign_str(claims, &len);
	CHECK(len > 0);
	CHECK(len <= gw_signer_max_jws_len(signer, strlen(claims)));
	CHECK(openssl_verify(jws, len));

	/* Header exactly as documented. */
	part = token_part(jws, 0);
	CHECK_INT_EQ(gw_b64url_decode(part, strlen(part), &raw, &raw_len), 0);
	snprintf(expect_hdr, sizeof(expect_hdr), "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
		 gw_signer_kid(signer));
	CHECK_STR_EQ((char *)raw, expect_hdr);
	free(raw);
	free(part);
	/* Payload is the claims text byte for byte. */
	part = token_part(jws, 1);
	CHECK_INT_EQ(gw_b64url_decode(part, strlen(part), &raw, &raw_len), 0);
	CHECK_STR_EQ((char *)raw, claims);
	free(raw);
	free(part);
	/* Signature: 86 characters, exactly 64 bytes. */
	part = token_part(jws, 2);
	CHECK_INT_EQ(strlen(part), 86);
	CHECK_INT_EQ(gw_b64url_decode(part, strlen(part), &raw, &raw_len), 0);
	CHECK_INT_EQ(raw_len, 64);
	free(raw);
	free(part);

	/* libjwt verifies it with the public key PEM. */
	pem = slurp(key_path("ec_pub.pem"), &pem_len);
	CHECK_INT_EQ(jwt_decode(&jwt, jws, (unsigned char *)pem, (int)pem_len), 0);
	if (jwt) {
		CHECK_INT_EQ(jwt_get_alg(jwt), JWT_ALG_ES256);
		CHECK_STR_EQ(jwt_get_grant(jwt, "sub"), "user-1");
		CHECK_STR_EQ(jwt_get_header(jwt, "kid"), gw_signer_kid(signer));
		jwt_free(jwt);
	}
	free(pem);

	/* And our own subscription-token verifier with the public PEM. */
	{
		struct gw_subkey *key = gw_subkey_load_file(key_path("ec_pub.pem"), err, sizeof(err));
		CHECK(key != NULL);
		CHECK_INT_EQ(gw_subtoken_verify(key, jws, len, NULL, 0, 1700000000, NULL, NULL, 0),
			     GW_TOKEN_OK);
		/* A tampered copy fails in both verifiers. */
		jws[len - 50] = jws[len - 50] == 'A' ? 'B' : 'A';
		CHECK(!openssl_verify(jws, len));
		CHECK_INT_EQ(gw_subtoken_verify(key, jws, len, NULL, 0, 1700000000, NULL, NULL, 0),
			     GW_TOKEN_BAD_SIGNATURE);
		gw_subkey_free(key);
	}
	free(jws);

	/* Empty claims and a too-small buffer. */
	jws = sign_str("", &len);
	CHECK(len > 0 && openssl_verify(jws, len));
	free(jws);
	CHECK_INT_EQ(gw_signer_sign(signer, "{}", 2, small, sizeof(small)), 0);
	CHECK_INT_EQ(gw_signer_sign(signer, "{}", 2, small, gw_signer_max_jws_len(signer, 2) - 1), 0);
	CHECK_INT_EQ(gw_signer_sign(NULL, "{}", 2, small, sizeof(small)), 0);
	CHECK_INT_EQ(gw_signer_max_jws_len(NULL, 2), 0);

	/* Two signatures of the same claims differ (randomised ECDSA) and both verify. */
	{
		char *a = sign_str("{\"a\":1}", NULL), *b = sign_str("{\"a\":1}", NULL);
		CHECK(strcmp(a, b) != 0);
		CHECK(openssl_verify(a, strlen(a)) && openssl_verify(b, strlen(b)));
		free(a);
		free(b);
	}
}

static void refused(const char *name, const char *needle)
{
	char err[256];
	struct gw_signer *s;

	err[0] = '\0';
	s = gw_signer_load_file(key_path(name), err, sizeof(err));
	CHECK(s == NULL);
	gw_signer_free(s);
	CHECK(err[0] != '\0');
	if (needle && !strstr(err, needle)) {
		CHECK(!"error text lacks the expected words");
		fprintf(stderr, "  %s: \"%s\" lacks \"%s\"\n", name, err, needle);
	}
	CHECK(strstr(err, "MII") == NULL && strstr(err, "-----") == NULL);
}

static void test_refusals(void)
{
	refused("rsa.pem", "RSA key given");
	refused("rsa_trad.pem", "RSA key given");
	refused("p384.pem", "P-256");
	refused("ed25519.pem", "EC P-256");
	refused("ec_enc.pem", "encrypted");
	refused("ec_enc_trad.pem", "encrypted");
	refused("ec_pub.pem", "no private key");
	refused("garbage.pem", "not a PEM");
	refused("secret.txt", "not a PEM");
	refused("missing.pem", "missing.pem");
}

#define THREADS 4
#define PER_THREAD 200

static void *worker(void *arg)
{
	int id = *(int *)arg, i, bad = 0;
	char claims[96], *out;
	size_t cap;

	cap = gw_signer_max_jws_len(signer, sizeof(claims));
	out = malloc(cap);
	for (i = 0; i < PER_THREAD; i++) {
		size_t cl = (size_t)snprintf(claims, sizeof(claims),
					     "{\"sub\":\"t%d\",\"n\":%d,\"exp\":1,\"ctx\":[]}", id, i);
		size_t n = gw_signer_sign(signer, claims, cl, out, cap);
		if (!n || !openssl_verify(out, n))
			bad++;
	}
	free(out);
	*(int *)arg = bad;
	return NULL;
}

static void test_threads(void)
{
	pthread_t th[THREADS];
	int arg[THREADS], i, bad = 0;

	for (i = 0; i < THREADS; i++) {
		arg[i] = i;
		CHECK_INT_EQ(pthread_create(&th[i], NULL, worker, &arg[i]), 0);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		bad += arg[i];
	}
	CHECK_INT_EQ(bad, 0);
}

int main(int argc, char **argv)
{
	char err[256];
	BIO *bio;
	struct gw_signer *sec1;

	if (argc < 2) {
		fprintf(stderr, "usage: %s KEYDIR\n", argv[0]);
		return 2;
	}
	crypto_test_keydir = argv[1];
	bio = BIO_new_file(key_path("ec_pub.pem"), "r");
	pub = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	CHECK(pub != NULL);
	signer = gw_signer_load_file(key_path("ec.pem"), err, sizeof(err));
	CHECK(signer != NULL);
	if (!signer || !pub) {
		fprintf(stderr, "setup: %s\n", err);
		EVP_PKEY_free(pub);
		return CHECK_DONE();
	}
	test_kid_and_jwks();
	test_sign();
	test_refusals();
	test_threads();

	/* SEC1 "EC PRIVATE KEY" with a leading "EC PARAMETERS" block loads. */
	sec1 = gw_signer_load_file(key_path("ec_sec1.pem"), err, sizeof(err));
	CHECK(sec1 != NULL);
	if (sec1)
		CHECK(strcmp(gw_signer_kid(sec1), gw_signer_kid(signer)) != 0);
	gw_signer_free(sec1);
	gw_signer_free(NULL);

	gw_signer_free(signer);
	EVP_PKEY_free(pub);
	return CHECK_DONE();
}
