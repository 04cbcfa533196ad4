/* test_keygen.c - key generation: files exist with the right modes, no
 * temporary files are left behind, the keys load, and a JWKS written by
 * gw_keygen_rsa_jwks verifies a FIT signed by gw_fit_sign_dev.
 * Works in a fresh mkdtemp directory it removes afterwards. Single-threaded. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "gw/keygen.h"
#include "gw/signer.h"
#include "gw/token.h"

static char dir[256];

static const char *p(const char *name)
{
	static char bufs[4][512];
	static unsigned next;
	char *b = bufs[next++ % 4];

	snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
	return b;
}

static int mode_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static int count_entries(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n;
}

static void cleanup(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlink(p(e->d_name));
	if (d)
		closedir(d);
	rmdir(dir);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	char err[256], kid1[64], *tok, claims[512];
	struct gw_signer *sg;
	struct gw_jwks *jwks;
	struct gw_subkey *sk;
	json_t *c = NULL;
	FILE *f;
	size_t n;

	snprintf(dir, sizeof(dir), "%s/gw-keygen-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	umask(022); /* the library must not rely on the caller's umask */

	/* EC P-256 */
	err[0] = '\0';
	CHECK_INT_EQ(gw_keygen_ec_p256(p("sign.pem"), err, sizeof(err)), 0);
	CHECK_STR_EQ(err, "");
	CHECK_INT_EQ(mode_of(p("sign.pem")), 0600);
	sg = gw_signer_load_file(p("sign.pem"), err, sizeof(err));
	CHECK(sg != NULL);
	if (sg) {
		snprintf(kid1, sizeof(kid1), "%s", gw_signer_kid(sg));
		gw_signer_free(sg);
	}
	/* Regenerating replaces the key atomically. */
	CHECK_INT_EQ(gw_keygen_ec_p256(p("sign.pem"), err, sizeof(err)), 0);
	sg = gw_signer_load_file(p("sign.pem"), err, sizeof(err));
	CHECK(sg != NULL && strcmp(gw_signer_kid(sg), kid1) != 0);
	gw_signer_free(sg);
	CHECK_INT_EQ(count_entries(), 1);

	/* RSA + JWKS, used with gw_fit_sign_dev */
	CHECK_INT_EQ(gw_keygen_rsa_jwks(p("fit.pem"), p("jwks.json"), "dev-1", err, sizeof(err)), 0);
	CHECK_INT_EQ(mode_of(p("fit.pem")), 0600);
	CHECK_INT_EQ(mode_of(p("jwks.json")), 0644);
	jwks = gw_jwks_load_file(p("jwks.json"), err, sizeof(err));
	CHECK(jwks != NULL);
	CHECK_INT_EQ(gw_jwks_count(jwks), 1);
	snprintf(claims, sizeof(claims),
		 "{\"iss\":\"forge/invocation-token\",\"aud\":\"ari:cloud:ecosystem::app/x\","
		 "\"iat\":1700000000,\"nbf\":1700000000,\"exp\":1700000025}");
	tok = gw_fit_sign_dev(p("fit.pem"), "dev-1", claims, err, sizeof(err));
	CHECK(tok != NULL);
	if (tok && jwks) {
		CHECK_INT_EQ(gw_fit_verify(jwks, tok, strlen(tok), "ari:cloud:ecosystem::app/x", 0,
					   1700000001, &c, NULL, 0),
			     GW_TOKEN_OK);
		json_decref(c);
	}
	free(tok);
	tok = gw_fit_sign_dev(p("fit.pem"), "dev-2", claims, err, sizeof(err));
	if (tok && jwks)
		CHECK_INT_EQ(gw_fit_verify(jwks, tok, strlen(tok), "ari:cloud:ecosystem::app/x", 0,
					   1700000001, NULL, NULL, 0),
			     GW_TOKEN_UNKNOWN_KID);
	free(tok);
	gw_jwks_free(jwks);
	/* The JWKS never carries the private exponent. */
	{
		FILE *jf = fopen(p("jwks.json"), "r");
		char buf[4096];
		size_t got = jf ? fread(buf, 1, sizeof(buf) - 1, jf) : 0;
		buf[got] = '\0';
		if (jf)
			fclose(jf);
		CHECK(strstr(buf, "\"d\"") == NULL && strstr(buf, "\"p\"") == NULL);
		CHECK(strstr(buf, "\"dev-1\"") != NULL);
	}
	CHECK_INT_EQ(gw_keygen_rsa_jwks(p("a"), p("a"), "k", err, sizeof(err)), -1);
	CHECK_INT_EQ(gw_keygen_rsa_jwks(p("a"), p("b"), "", err, sizeof(err)), -1);

	/* HS256 secret */
	CHECK_INT_EQ(gw_keygen_secret(p("secret"), err, sizeof(err)), 0);
	CHECK_INT_EQ(mode_of(p("secret")), 0600);
	f = fopen(p("secret"), "r");
	if (f) {
		char buf[128];
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		CHECK_INT_EQ(n, 44); /* 43 base64url characters + newline */
		CHECK(n == 44 && buf[43] == '\n');
	}
	sk = gw_subkey_load_secret_file(p("secret"), err, sizeof(err));
	CHECK(sk != NULL);
	CHECK_STR_EQ(gw_subkey_alg(sk), "HS256");
	gw_subkey_free(sk);

	/* No temporary files left: sign.pem fit.pem jwks.json secret */
	CHECK_INT_EQ(count_entries(), 4);

	/* Failures: missing directory, and a path that is a directory. */
	err[0] = '\0';
	CHECK_INT_EQ(gw_keygen_ec_p256(p("nodir/key.pem"), err, sizeof(err)), -1);
	CHECK(strstr(err, "nodir") != NULL);
	CHECK_INT_EQ(gw_keygen_secret(dir, err, sizeof(err)), -1);
	CHECK_INT_EQ(gw_keygen_secret("", err, sizeof(err)), -1);
	CHECK_INT_EQ(count_entries(), 4);

	cleanup();
	return CHECK_DONE();
}
