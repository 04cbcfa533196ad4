/* crypto_test.h - helpers shared by the gwcrypto unit tests: key paths in the
 * fixture directory (argv[1], filled by gen_keys.sh), file reading, and token
 * minting with libjwt 1.10 - an implementation independent of gwcrypto, so a
 * token that verifies was not produced by the code under test.
 *
 * Ownership: returned strings are malloc'd; callers free them.
 * Threads: key_path uses rotating static buffers; call it from main only.
 */
#ifndef GW_CRYPTO_TEST_H
#define GW_CRYPTO_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jwt.h>

#include "gw/b64url.h"

static const char *crypto_test_keydir = ".";

static inline const char *key_path(const char *name)
{
	static char bufs[8][512];
	static unsigned next;
	char *b = bufs[next++ % 8];

	snprintf(b, sizeof(bufs[0]), "%s/%s", crypto_test_keydir, name);
	return b;
}

static inline char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
		buf[n] = '\0';
		if (len)
			*len = (size_t)n;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* libjwt: header {"alg":..,"typ":"JWT"[,"kid":kid]}, grants from claims.
 * key is PEM text (RS/ES) or the HMAC secret (HS); NULL for alg none. */
static inline char *mint_raw(jwt_alg_t alg, const unsigned char *key, size_t key_len, const char *kid,
			     const char *claims)
{
	jwt_t *jwt = NULL;
	char *tok = NULL;

	if (jwt_new(&jwt) != 0)
		return NULL;
	if (jwt_add_grants_json(jwt, claims) != 0 || (kid && jwt_add_header(jwt, "kid", kid) != 0) ||
	    jwt_set_alg(jwt, alg, key, (int)key_len) != 0)
		goto done;
	tok = jwt_encode_str(jwt);
done:
	jwt_free(jwt);
	return tok;
}

/* Same, with the key read from a file in the fixture directory. */
static inline char *mint(jwt_alg_t alg, const char *key_file, const char *kid, const char *claims)
{
	size_t len = 0;
	char *key = key_file ? slurp(key_path(key_file), &len) : NULL;
	char *tok;

	if (key_file && !key) {
		fprintf(stderr, "cannot read %s\n", key_path(key_file));
		return NULL;
	}
	tok = mint_raw(alg, (unsigned char *)key, len, kid, claims);
	free(key);
	return tok;
}

/* A compact JWS from raw header/payload JSON and a ready signature part. */
static inline char *craft(const char *header, const char *payload, const char *sig_b64)
{
	size_t hl = strlen(header), pl = strlen(payload), sl = strlen(sig_b64);
	char *out = malloc(gw_b64url_encoded_len(hl) + gw_b64url_encoded_len(pl) + sl + 3);
	size_t n = 0;

	if (!out)
		return NULL;
	n += gw_b64url_encode((const unsigned char *)header, hl, out + n);
	out[n++] = '.';
	n += gw_b64url_encode((const unsigned char *)payload, pl, out + n);
	out[n++] = '.';
	memcpy(out + n, sig_b64, sl + 1);
	return out;
}

/* The n-th (0-based) dot-separated part of a token, malloc'd. */
static inline char *token_part(const char *tok, int idx)
{
	const char *p = tok, *e;

	while (idx-- > 0) {
		p = strchr(p, '.');
		if (!p)
			return NULL;
		p++;
	}
	e = strchr(p, '.');
	return strndup(p, e ? (size_t)(e - p) : strlen(p));
}

#endif
