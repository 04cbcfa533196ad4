/* test_subtoken.c - subscriber key loading (ES256/RS256 public PEM, HS256
 * secret) and subscription-token verification, tokens minted with libjwt.
 * Usage: test_crypto_subtoken KEYDIR. Single-threaded test program. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static struct gw_subkey *load_secret(const char *name, char *err, size_t errlen)
{
	err[0] = '\0';
	return gw_subkey_load_secret_file(key_path(name), err, errlen);
}

static enum gw_token_err sv(const struct gw_subkey *key, const char *tok, const char *aud, time_t now,
			    char *detail, size_t dl)
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
	return mint_raw(JWT_ALG_HS256, (const unsigned char *)SECRET, strlen(SECRET), NULL, claims);
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
	struct gw_subkey *key = load_secret("secret.txt", err, sizeof(err));
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
	tok = mint_raw(JWT_ALG_HS256, (const unsigned char *)"  " SECRET " \n", strlen(SECRET) + 4, NULL,
		       GOOD);
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

static void refused_by(struct gw_subkey *(*loader)(const char *, char *, size_t), const char *name,
		       const char *needle)
{
	char err[512];
	struct gw_subkey *key = loader(name, err, sizeof(err));

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

static void refused(const char *name, const char *needle)
{
	refused_by(load, name, needle);
}

static void refused_secret(const char *name, const char *needle)
{
	refused_by(load_secret, name, needle);
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
	refused("garbage.pem", "not a PEM public key");
	refused("missing.pem", "missing.pem");
	refused_secret("short_secret.txt", "at least 32");
	refused_secret("garbage.pem", "at least 32");
	refused_secret("missing.pem", "missing.pem");
}

/* A file written into the fixture directory with the given mode. */
static const char *put(const char *name, const void *data, size_t len, mode_t mode)
{
	const char *path = key_path(name);
	FILE *f;
	unlink(path);
	f = fopen(path, "wb");
	CHECK(f != NULL);
	if (!f)
		return path;
	CHECK(fwrite(data, 1, len, f) == len);
	fclose(f);
	CHECK(chmod(path, mode) == 0);
	return path;
}

static const char *put_copy(const char *name, const char *from, mode_t mode)
{
	size_t len = 0;
	char *buf = slurp(key_path(from), &len);
	CHECK(buf != NULL);
	const char *p = put(name, buf ? buf : "", buf ? len : 0, mode);
	free(buf);
	return p;
}

/* Issue 10 item 4: the option decides the algorithm; other key formats are
 * named and refused by both loaders, so no public key becomes a secret. */
static void test_key_formats(void)
{
	static const char ssh_pub[] =
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@host\n";
	static const char ssh_priv[] =
		"-----BEGIN OPENSSH PRIVATE KEY-----\n"
		"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
		"-----END OPENSSH PRIVATE KEY-----\n";
	static const char jwk[] =
		"{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
		"\"y\":\"x_FEzRu9m36HLN_tvf5BQM6h8P5zCL5-4JmZ5FP5QsU\"}";
	static const char putty[] = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: x\n";

	put_copy("t_der", "ec_pub.der", 0600);
	refused("t_der", "DER (binary ASN.1)");
	refused_secret("t_der", "DER (binary ASN.1)");
	put_copy("t_jwks", "jwks.json", 0600);
	refused("t_jwks", "JWK/JWKS JSON");
	refused_secret("t_jwks", "JWK/JWKS JSON");
	put("t_jwk", jwk, sizeof(jwk) - 1, 0600);
	refused("t_jwk", "JWK/JWKS JSON");
	refused_secret("t_jwk", "JWK/JWKS JSON");
	put("t_sshpub", ssh_pub, sizeof(ssh_pub) - 1, 0600);
	refused("t_sshpub", "OpenSSH public key");
	refused_secret("t_sshpub", "OpenSSH public key");
	put("t_sshpriv", ssh_priv, sizeof(ssh_priv) - 1, 0600);
	refused("t_sshpriv", "OpenSSH private key");
	refused_secret("t_sshpriv", "OpenSSH private key");
	put("t_putty", putty, sizeof(putty) - 1, 0600);
	refused("t_putty", "PuTTY key");
	refused_secret("t_putty", "PuTTY key");
	/* A PEM public key is not a secret (the alg-confusion hole), and a
	 * secret is not a public key: each option takes its own kind only. */
	refused_secret("ec_pub.pem", "PEM");
	refused_secret("rsa_pub.pem", "PEM");
	refused("secret.txt", "subscriber.hs256_secret");

	/* Secrets that merely start like DER are still secrets: printable
	 * text (hex starting "01" whose length byte matches), and binary bytes
	 * that are no single DER element. */
	char err[512];
	char hex[52];
	memset(hex, 'a', sizeof(hex));
	hex[0] = '0';
	hex[1] = '1'; /* 0x30 0x31: SEQUENCE of 49 bytes: 51 in all */
	put("t_hex", hex, 51, 0600);
	struct gw_subkey *k = load_secret("t_hex", err, sizeof(err));
	CHECK(k != NULL);
	if (!k)
		fprintf(stderr, "  t_hex: %s\n", err);
	gw_subkey_free(k);
	unsigned char bin[40];
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)(0x30 + i * 37);
	put("t_bin", bin, sizeof(bin), 0600);
	k = load_secret("t_bin", err, sizeof(err));
	CHECK(k != NULL);
	CHECK_STR_EQ(gw_subkey_alg(k), "HS256");
	gw_subkey_free(k);
}

/* Key files are checked like OpenSSH's: secrets 0600 or stricter, public
 * keys not writable by group/others, owner the running user or root. */
static void test_permissions(void)
{
	char err[512];
	struct gw_subkey *k;
	static const mode_t open_secret[] = {0644, 0640, 0604, 0660, 0606, 0610, 0601};
	for (size_t i = 0; i < sizeof(open_secret) / sizeof(open_secret[0]); i++) {
		put_copy("t_secret", "secret.txt", open_secret[i]);
		refused_secret("t_secret", "too open");
		refused_secret("t_secret", "chmod 600");
	}
	put_copy("t_secret", "secret.txt", 0400);
	k = load_secret("t_secret", err, sizeof(err));
	CHECK(k != NULL);
	gw_subkey_free(k);
	put_copy("t_secret", "secret.txt", 0600);
	k = load_secret("t_secret", err, sizeof(err));
	CHECK(k != NULL);
	gw_subkey_free(k);

	put_copy("t_pub", "ec_pub.pem", 0664);
	refused("t_pub", "write this key file");
	put_copy("t_pub", "ec_pub.pem", 0646);
	refused("t_pub", "chmod go-w");
	put_copy("t_pub", "ec_pub.pem", 0644);
	k = load("t_pub", err, sizeof(err));
	CHECK(k != NULL);
	gw_subkey_free(k);

	/* Owned by someone else: only root can make such a file here. */
	if (geteuid() == 0) {
		put_copy("t_secret", "secret.txt", 0600);
		CHECK(chown(key_path("t_secret"), 65534, 65534) == 0);
		refused_secret("t_secret", "owned by uid 65534");
		put_copy("t_pub", "ec_pub.pem", 0644);
		CHECK(chown(key_path("t_pub"), 65534, 65534) == 0);
		refused("t_pub", "owned by uid 65534");
		CHECK(chown(key_path("t_pub"), 0, 0) == 0); /* root's own: accepted */
		k = load("t_pub", err, sizeof(err));
		CHECK(k != NULL);
		gw_subkey_free(k);
	} else {
		fprintf(stderr,
			"note: not root; the foreign-owner refusal is checked in the black-box suite only when root\n");
	}
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
	test_key_formats();
	test_permissions();
	CHECK_INT_EQ(gw_subtoken_verify(NULL, "a.b.c", 5, NULL, 0, T0, NULL, NULL, 0),
		     GW_TOKEN_BAD_SIGNATURE);
	CHECK(gw_subkey_alg(NULL) == NULL);
	return CHECK_DONE();
}
