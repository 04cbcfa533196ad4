/* test_subtoken.c - subscriber key loading (ES256/RS256 public PEM, HS256
 * secret) and subscription-token verification, tokens minted with libjwt.
 * Usage: test_crypto_subtoken KEYDIR. Single-threaded test program. */
#include <stdlib.h>
#include <string.h>

#include <openssl/ec.h>

#include "check.h"
#include "crypto_test.h"
#include "gw/token.h"

#define T0 1700000000L
#define SECRET "0123456789abcdefghij0123456789ABCDEFGHIJ" /* secret.txt, trimmed */
#define GOOD "{\"sub\":\"user-1\",\"exp\":1700000060,\"ctx\":[\"jira:10001\",\"site:abc\"]}"

static struct gw_subkey *load(const char *name, char *err, size_t errlen)
{
	err[0] = '\0';
	return gw_subkey_load_file(key_path(name), err, errlen);
}

static enum gw_token_err sv(const struct gw_subkey *key, const char *tok, const char *aud,
			    time_t now, char *detail, size_t dl)
{
	json_t *claims = NULL;
	enum gw_token_err rc;

	rc = gw_subtoken_verify(key, tok, tok ? strlen(tok) : 0, aud, 30, now, &claims, detail, dl);
	CHECK((rc == GW_TOKEN_OK) == (claims != NULL));
	if (rc == GW_TOKEN_OK)
		CHECK_STR_EQ(json_string_value(json_object_get(claims, "sub")), "user-1");
	json_decref(claims);
	return rc;
}

static enum gw_token_err sv1(const struct gw_subkey *key, const char *tok, const char *aud)
{
	char detail[256];
	return sv(key, tok, aud, T0, detail, sizeof(detail));
}

/* A token for the key type: libjwt with the matching private key/secret. */
static char *mint_for(const char *alg, const char *claims)
{
	if (strcmp(alg, "ES256") == 0)
		return mint(JWT_ALG_ES256, "ec.pem", NULL, claims);
	if (strcmp(alg, "RS256") == 0)
		return mint(JWT_ALG_RS256, "rsa.pem", NULL, claims);
	return mint_raw(JWT_ALG_HS256, (const unsigned char *)SECRET, strlen(SECRET), NULL,
			claims);
}

/* The claim checks, run once per key type. */
static void claims_suite(const struct gw_subkey *key)
{
	const char *alg = gw_subkey_alg(key);
	static const struct {
		const char *claims;
		const char *aud;
		enum gw_token_err want;
	} cases[] = {
		{GOOD, NULL, GW_TOKEN_OK},
		{"{\"sub\":\"user-1\",\"exp\":1700000060,\"ctx\":[]}", NULL, GW_TOKEN_OK},
		{"{\"exp\":1700000060,\"ctx\":[]}", NULL, GW_TOKEN_BAD_CLAIMS},
		{"{\"sub\":\"\",\"exp\":1700000060,\"ctx\":[]}", NULL, GW_TOKEN_BAD_CLAIMS},
		{"{\"sub\":42,\"exp\":1700000060,\"ctx\":[]}", NULL, GW_TOKEN_BAD_CLAIMS},
		{"{\"sub\":\"user-1\",\"ctx\":[]}", NULL, GW_TOKEN_BAD_CLAIMS},
		{"{\"sub\":\"user-1\",\"exp\":\"soon\",\"ctx\":[]}", NULL, GW_TOKEN_BAD_CLAIMS},
		{"{\"sub\":\"user-1\",\"exp\":1700000060}", NULL, GW_TOKEN_BAD_CLAIMS},
		{"{\"sub\":\"user-1\",\"exp\":1700000060,\"ctx\":\"jira:1\"}", NULL, GW_TOKEN_BAD_CLAIMS},
		{"{\"sub\":\"user-1\",\"exp\":1700000060,\"ctx\":[\"a\",7]}", NULL, GW_TOKEN_BAD_CLAIMS},
		{"{\"sub\":\"user-1\",\"exp\":1699999900,\"ctx\":[]}", NULL, GW_TOKEN_EXPIRED},
		{"{\"sub\":\"user-1\",\"exp\":1699999990,\"ctx\":[]}", NULL, GW_TOKEN_OK}, /* leeway 30 */
		{"{\"sub\":\"user-1\",\"exp\":1700000060,\"nbf\":1700000100,\"ctx\":[]}", NULL,
		 GW_TOKEN_NOT_YET_VALID},
		/* aud checked only when an audience is configured */
		{GOOD, "notify-gateway", GW_TOKEN_BAD_AUDIENCE},
		{"{\"sub\":\"user-1\",\"exp\":1700000060,\"ctx\":[],\"aud\":\"other\"}", NULL, GW_TOKEN_OK},
		{"{\"sub\":\"user-1\",\"exp\":1700000060,\"ctx\":[],\"aud\":\"other\"}", "notify-gateway",
		 GW_TOKEN_BAD_AUDIENCE},
		{"{\"sub\":\"user-1\",\"exp\":1700000060,\"ctx\":[],\"aud\":\"notify-gateway\"}",
		 "notify-gateway", GW_TOKEN_OK},
		{"{\"sub\":\"user-1\",\"exp\":1700000060,\"ctx\":[],\"aud\":[\"x\",\"notify-gateway\"]}",
		 "notify-gateway", GW_TOKEN_OK},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *tok = mint_for(alg, cases[i].claims), detail[256];
		enum gw_token_err rc;

		CHECK(tok != NULL);
		rc = sv(key, tok, cases[i].aud, T0, detail, sizeof(detail));
		CHECK_INT_EQ(rc, cases[i].want);
		if (rc != cases[i].want)
			fprintf(stderr, "  %s case %zu: %s (%s)\n", alg, i, gw_token_code(rc), detail);
		free(tok);
	}
}

static void test_es256(void)
{
	char err[256], *tok, *pub;
	size_t pub_len = 0;
	struct gw_subkey *key = load("ec_pub.pem", err, sizeof(err));

	CHECK(key != NULL);
	if (!key) {
		fprintf(stderr, "  %s\n", err);
		return;
	}
	CHECK_STR_EQ(gw_subkey_alg(key), "ES256");
	claims_suite(key);

	/* Wrong algorithm for this key type. */
	tok = mint(JWT_ALG_RS256, "rsa.pem", NULL, GOOD);
	CHECK_INT_EQ(sv1(key, tok, NULL), GW_TOKEN_BAD_ALG);
	free(tok);
	tok = mint_raw(JWT_ALG_HS256, (const unsigned char *)SECRET, strlen(SECRET), NULL, GOOD);
	CHECK_INT_EQ(sv1(key, tok, NULL), GW_TOKEN_BAD_ALG);
	free(tok);
	/* HS256 keyed with the EC public key PEM. */
	pub = slurp(key_path("ec_pub.pem"), &pub_len);
	tok = mint_raw(JWT_ALG_HS256, (unsigned char *)pub, pub_len, NULL, GOOD);
	CHECK_INT_EQ(sv1(key, tok, NULL), GW_TOKEN_BAD_ALG);
	free(tok);
	free(pub);
	tok = mint(JWT_ALG_NONE, NULL, NULL, GOOD);
	CHECK_INT_EQ(sv1(key, tok, NULL), GW_TOKEN_BAD_ALG);
	free(tok);
	tok = mint(JWT_ALG_ES384, "p384.pem", NULL, GOOD);
	CHECK_INT_EQ(sv1(key, tok, NULL), GW_TOKEN_BAD_ALG);
	free(tok);
	/* Right alg, another P-256 key. */
	tok = mint(JWT_ALG_ES256, "ec_sec1.pem", NULL, GOOD);
	CHECK_INT_EQ(sv1(key, tok, NULL), GW_TOKEN_BAD_SIGNATURE);
	free(tok);
	/* The same signature in DER (what OpenSSL emits) instead of raw
	 * R||S is refused. */
	tok = mint(JWT_ALG_ES256, "ec.pem", NULL, GOOD);
	CHECK_INT_EQ(sv1(key, tok, NULL), GW_TOKEN_OK);
	{
		char *sig = token_part(tok, 2), *dtok, dsig[200];
		unsigned char *raw = NULL, der[80], *dp = der;
		size_t raw_len = 0;
		int dl = 0;
		ECDSA_SIG *es = ECDSA_SIG_new();

		CHECK_INT_EQ(gw_b64url_decode(sig, strlen(sig), &raw, &raw_len), 0);
		CHECK_INT_EQ(raw_len, 64);
		if (raw_len == 64 && es &&
		    ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL)))
			dl = i2d_ECDSA_SIG(es, &dp);
		CHECK(dl > 64);
		gw_b64url_encode(der, (size_t)dl, dsig);
		*strrchr(tok, '.') = '\0';
		dtok = malloc(strlen(tok) + strlen(dsig) + 2);
		sprintf(dtok, "%s.%s", tok, dsig);
		CHECK_INT_EQ(sv1(key, dtok, NULL), GW_TOKEN_BAD_SIGNATURE);
		/* R||S with R and S swapped. */
		if (raw_len == 64) {
			unsigned char sw[64];
			memcpy(sw, raw + 32, 32);
			memcpy(sw + 32, raw, 32);
			gw_b64url_encode(sw, 64, dsig);
			sprintf(dtok, "%s.%s", tok, dsig);
			CHECK_INT_EQ(sv1(key, dtok, NULL), GW_TOKEN_BAD_SIGNATURE);
		}
		ECDSA_SIG_free(es);
		free(dtok);
		free(raw);
		free(sig);
	}
	free(tok);
	gw_subkey_free(key);
}

static void test_rs256(void)
{
	char err[256], *tok, *pub;
	size_t pub_len = 0;
	struct gw_subkey *key = load("rsa_pub.pem", err, sizeof(err));

	CHECK(key != NULL);
	if (!key)
		return;
	CHECK_STR_EQ(gw_subkey_alg(key), "RS256");
	claims_suite(key);

	tok = mint(JWT_ALG_ES256, "ec.pem", NULL, GOOD);
	CHECK_INT_EQ(sv1(key, tok, NULL), GW_TOKEN_BAD_ALG);
	free(tok);
	pub = slurp(key_path("rsa_pub.pem"), &pub_len);
	tok = mint_raw(JWT_ALG_HS256, (unsigned char *)pub, pub_len, NULL, GOOD);
	CHECK_INT_EQ(sv1(key, tok, NULL), GW_TOKEN_BAD_ALG);
	free(tok);
	free(pub);
	tok = mint(JWT_ALG_RS256, "rsa2.pem", NULL, GOOD);
	CHECK_INT_EQ(sv1(key, tok, NULL), GW_TOKEN_BAD_SIGNATURE);
	free(tok);
	gw_subkey_free(key);

	/* PKCS#1 "RSA PUBLIC KEY" works the same. */
	key = load("rsa_pub_pkcs1.pem", err, sizeof(err));
	CHECK(key != NULL);
	if (key) {
		CHECK_STR_EQ(gw_subkey_alg(key), "RS256");
		tok = mint(JWT_ALG_RS256, "rsa.pem", NULL, GOOD);
		CHECK_INT_EQ(sv1(key, tok, NULL), GW_TOKEN_OK);
		free(tok);
	}
	gw_subkey_free(key);
}

static void test_hs256(void)
{
	char err[256], *tok;
	struct gw_subkey *key = load("secret.txt", err, sizeof(err));
	unsigned char buf[64];

	CHECK(key != NULL);
	if (!key)
		return;
	CHECK_STR_EQ(gw_subkey_alg(key), "HS256");
	claims_suite(key);

	tok = mint(JWT_ALG_RS256, "rsa.pem", NULL, GOOD);
	CHECK_INT_EQ(sv1(key, tok, NULL), GW_TOKEN_BAD_ALG);
	free(tok);
	/* The untrimmed file content is not the secret. */
	tok = mint_raw(JWT_ALG_HS256, (const unsigned char *)"  " SECRET " \n",
		       strlen(SECRET) + 4, NULL, GOOD);
	CHECK_INT_EQ(sv1(key, tok, NULL), GW_TOKEN_BAD_SIGNATURE);
	free(tok);
	tok = mint(JWT_ALG_HS512, NULL, NULL, GOOD); /* no key: libjwt refuses */
	CHECK(tok == NULL);
	tok = mint_raw(JWT_ALG_HS512, (const unsigned char *)SECRET, strlen(SECRET), NULL, GOOD);
	CHECK_INT_EQ(sv1(key, tok, NULL), GW_TOKEN_BAD_ALG);
	free(tok);
	gw_subkey_free(key);

	/* From memory: 31 bytes refused, 32 accepted. */
	memset(buf, 'k', sizeof(buf));
	err[0] = '\0';
	CHECK(gw_subkey_from_secret(buf, 31, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "32") != NULL);
	key = gw_subkey_from_secret(buf, 32, err, sizeof(err));
	CHECK(key != NULL);
	if (key) {
		tok = mint_raw(JWT_ALG_HS256, buf, 32, NULL, GOOD);
		CHECK_INT_EQ(sv1(key, tok, NULL), GW_TOKEN_OK);
		free(tok);
	}
	gw_subkey_free(key);
	CHECK(gw_subkey_from_secret(NULL, 40, err, sizeof(err)) == NULL);

	/* Development signing with the loaded secret: verifies with the same key
	 * and with libjwt; refused for a public-key subscriber key. */
	key = gw_subkey_from_secret(buf, 32, err, sizeof(err));
	tok = key ? gw_subtoken_sign_dev(key, GOOD, err, sizeof(err)) : NULL;
	CHECK(tok != NULL);
	if (tok) {
		CHECK_INT_EQ(sv1(key, tok, NULL), GW_TOKEN_OK);
		jwt_t *jwt = NULL;
		CHECK_INT_EQ(jwt_decode(&jwt, tok, buf, 32), 0);
		CHECK_STR_EQ(jwt ? jwt_get_grant(jwt, "sub") : NULL, "user-1");
		jwt_free(jwt);
	}
	free(tok);
	gw_subkey_free(key);
	key = load("ec_pub.pem", err, sizeof(err));
	CHECK(key != NULL);
	CHECK(gw_subtoken_sign_dev(key, GOOD, err, sizeof(err)) == NULL);
	gw_subkey_free(key);
}

static void refused(const char *name, const char *needle)
{
	char err[256];
	struct gw_subkey *key = load(name, err, sizeof(err));

	CHECK(key == NULL);
	gw_subkey_free(key);
	if (needle && !strstr(err, needle)) {
		CHECK(!"error text lacks the expected words");
		fprintf(stderr, "  %s: \"%s\" lacks \"%s\"\n", name, err, needle);
	}
	/* No key material in messages. */
	CHECK(strstr(err, "MII") == NULL && strstr(err, "-----") == NULL);
	CHECK(strstr(err, "0123456789") == NULL);
}

static void test_refusals(void)
{
	refused("ec.pem", "PRIVATE key");
	refused("rsa.pem", "PRIVATE key");
	refused("rsa_trad.pem", "PRIVATE key");
	refused("ec_sec1.pem", "PRIVATE key");
	refused("ec_enc.pem", "PRIVATE key");
	refused("ed25519.pem", "PRIVATE key");
	refused("p384_pub.pem", "P-256");
	refused("ed25519_pub.pem", "unsupported key type");
	refused("rsa1024_pub.pem", "2048");
	refused("bad_pub.pem", "PEM public key"); /* never reread as a secret */
	refused("short_secret.txt", "at least 32");
	refused("garbage.pem", "at least 32");
	refused("missing.pem", "missing.pem");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s KEYDIR\n", argv[0]);
		return 2;
	}
	crypto_test_keydir = argv[1];
	test_es256();
	test_rs256();
	test_hs256();
	test_refusals();
	CHECK_INT_EQ(gw_subtoken_verify(NULL, "a.b.c", 5, NULL, 0, T0, NULL, NULL, 0),
		     GW_TOKEN_BAD_SIGNATURE);
	CHECK(gw_subkey_alg(NULL) == NULL);
	return CHECK_DONE();
}
