/* test_claims.c - numeric time claims (exp, nbf, iat) at the edges of what
 * JSON can say: 1e300, -1e300, 2^63-1, -2^63, non-numbers. Every conversion
 * is clamped (gw_claim_time), so none is undefined behaviour (the UBSan build
 * aborts on a float-cast-overflow) and each gets a defined verdict.
 * Usage: test_crypto_claims KEYDIR (gen_keys.sh). Single-threaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "crypto_test.h"
#include "gw/token.h"

#define T0 1700000000L
#define APP "ari:cloud:ecosystem::app/8d7b5a3e-1111-4c3a-9a39-0f6b4b0a0001"
#define SECRET "0123456789abcdefghij0123456789ABCDEFGHIJ"

static void test_claim_time(void)
{
	static const struct {
		const char *json;
		int rc;
		long long want;
	} cases[] = {
		{"1700000000", 0, 1700000000LL},
		{"1700000000.75", 0, 1700000000LL},
		{"1e300", 0, 253402300799LL},
		{"-1e300", 0, 0},
		{"1.7976931348623157e308", 0, 253402300799LL},
		{"-1.7976931348623157e308", 0, 0},
		{"9223372036854775807", 0, 253402300799LL},
		{"-9223372036854775808", 0, 0},
		{"253402300800", 0, 253402300799LL},
		{"-1", 0, 0},
		{"\"1700000000\"", -1, 0},
		{"\"NaN\"", -1, 0},
		{"\"Infinity\"", -1, 0},
		{"null", -1, 0},
		{"true", -1, 0},
		{"[1]", -1, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_error_t e;
		json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, &e);
		time_t t = 42;
		CHECK(v != NULL);
		int rc = gw_claim_time(v, &t);
		if (rc != cases[i].rc || (rc == 0 && (long long)t != cases[i].want))
			fprintf(stderr, "case %s: rc %d t %lld\n", cases[i].json, rc, (long long)t);
		CHECK_INT_EQ(rc, cases[i].rc);
		CHECK_INT_EQ((long long)t, rc == 0 ? cases[i].want : 42);
		json_decref(v);
	}
	time_t t = 7;
	CHECK_INT_EQ(gw_claim_time(NULL, &t), -1);
	CHECK_INT_EQ((long long)t, 7);
}

/* Subscription tokens: HS256 minted over the claims text exactly as given. */
static enum gw_token_err sub_verdict(const struct gw_subkey *key, const char *claims)
{
	char err[256], detail[256] = "";
	json_t *c = NULL;
	char *tok = gw_subtoken_sign_dev(key, claims, err, sizeof(err));
	CHECK(tok != NULL);
	if (!tok)
		return GW_TOKEN_MISSING;
	enum gw_token_err rc =
		gw_subtoken_verify(key, tok, strlen(tok), NULL, 30, T0, &c, detail, sizeof(detail));
	json_decref(c);
	free(tok);
	return rc;
}

static void test_subtokens(void)
{
	char err[256];
	struct gw_subkey *key =
		gw_subkey_from_secret((const unsigned char *)SECRET, strlen(SECRET), err, sizeof(err));
	CHECK(key != NULL);
#define SUB(extra) "{\"sub\":\"u\",\"ctx\":[\"c\"]," extra "}"
	CHECK_INT_EQ(sub_verdict(key, SUB("\"exp\":1700000060")), GW_TOKEN_OK);
	CHECK_INT_EQ(sub_verdict(key, SUB("\"exp\":1e300")), GW_TOKEN_OK);
	CHECK_INT_EQ(sub_verdict(key, SUB("\"exp\":9223372036854775807")), GW_TOKEN_OK);
	CHECK_INT_EQ(sub_verdict(key, SUB("\"exp\":-1e300")), GW_TOKEN_EXPIRED);
	CHECK_INT_EQ(sub_verdict(key, SUB("\"exp\":-9223372036854775808")), GW_TOKEN_EXPIRED);
	CHECK_INT_EQ(sub_verdict(key, SUB("\"exp\":\"NaN\"")), GW_TOKEN_BAD_CLAIMS);
	CHECK_INT_EQ(sub_verdict(key, SUB("\"exp\":null")), GW_TOKEN_BAD_CLAIMS);
	CHECK_INT_EQ(sub_verdict(key, SUB("\"exp\":1e300,\"nbf\":1e300")), GW_TOKEN_NOT_YET_VALID);
	CHECK_INT_EQ(sub_verdict(key, SUB("\"exp\":1e300,\"nbf\":-1e300")), GW_TOKEN_OK);
	CHECK_INT_EQ(sub_verdict(key, SUB("\"exp\":1e300,\"nbf\":9223372036854775807")),
		     GW_TOKEN_NOT_YET_VALID);
	CHECK_INT_EQ(sub_verdict(key, SUB("\"exp\":1e300,\"nbf\":-9223372036854775808")), GW_TOKEN_OK);
	CHECK_INT_EQ(sub_verdict(key, SUB("\"exp\":1e300,\"iat\":1e300")), GW_TOKEN_OK);
	CHECK_INT_EQ(sub_verdict(key, SUB("\"exp\":1e300,\"iat\":-1e300")), GW_TOKEN_OK);
	CHECK_INT_EQ(sub_verdict(key, SUB("\"exp\":1e300,\"iat\":\"x\"")), GW_TOKEN_BAD_CLAIMS);
	CHECK_INT_EQ(sub_verdict(key, SUB("\"exp\":1e300,\"nbf\":\"Infinity\"")), GW_TOKEN_BAD_CLAIMS);
#undef SUB
	gw_subkey_free(key);
}

/* FITs: RS256 minted with the fixture's rsa.pem (kid k1 in jwks.json). */
static enum gw_token_err fit_verdict(const struct gw_jwks *jwks, const char *times)
{
	char err[256], detail[256] = "", claims[1024];
	json_t *c = NULL;
	snprintf(claims, sizeof(claims),
		 "{\"iss\":\"forge/invocation-token\",\"aud\":\"" APP "\",%s,\"jti\":\"j\","
		 "\"app\":{\"id\":\"" APP "\",\"installationId\":\"ari:cloud:ecosystem::installation/42\"}}",
		 times);
	char *tok = gw_fit_sign_dev(key_path("rsa.pem"), "k1", claims, err, sizeof(err));
	CHECK(tok != NULL);
	if (!tok)
		return GW_TOKEN_MISSING;
	enum gw_token_err rc = gw_fit_verify(jwks, tok, strlen(tok), APP, 60, T0, &c, detail, sizeof(detail));
	json_decref(c);
	free(tok);
	return rc;
}

static void test_fits(void)
{
	char err[256];
	struct gw_jwks *jwks = gw_jwks_load_file(key_path("jwks.json"), err, sizeof(err));
	CHECK(jwks != NULL);
	if (!jwks)
		return;
	CHECK_INT_EQ(fit_verdict(jwks, "\"exp\":1700000025"), GW_TOKEN_OK);
	CHECK_INT_EQ(fit_verdict(jwks, "\"exp\":1e300"), GW_TOKEN_OK);
	CHECK_INT_EQ(fit_verdict(jwks, "\"exp\":-1e300"), GW_TOKEN_EXPIRED);
	CHECK_INT_EQ(fit_verdict(jwks, "\"exp\":9223372036854775807,\"nbf\":-9223372036854775808"),
		     GW_TOKEN_OK);
	CHECK_INT_EQ(fit_verdict(jwks, "\"exp\":1e300,\"nbf\":1e300"), GW_TOKEN_NOT_YET_VALID);
	CHECK_INT_EQ(fit_verdict(jwks, "\"exp\":1e300,\"iat\":-1e300"), GW_TOKEN_OK);
	CHECK_INT_EQ(fit_verdict(jwks, "\"exp\":\"NaN\""), GW_TOKEN_BAD_CLAIMS);
	gw_jwks_free(jwks);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		crypto_test_keydir = argv[1];
	test_claim_time();
	test_subtokens();
	test_fits();
	return CHECK_DONE();
}
