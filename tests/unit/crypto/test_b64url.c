/* test_b64url.c - base64url encoder/decoder: RFC 4648 vectors, strictness
 * (padding, alphabet, length, non-canonical trailing bits), round trips.
 * Single-threaded test program. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gw/b64url.h"

static void check_vector(const char *plain, const char *enc)
{
	char out[64];
	unsigned char *dec = NULL;
	size_t n, dlen = 0;

	n = gw_b64url_encode((const unsigned char *)plain, strlen(plain), out);
	CHECK_INT_EQ(n, strlen(enc));
	CHECK_INT_EQ(gw_b64url_encoded_len(strlen(plain)), strlen(enc));
	CHECK_STR_EQ(out, enc);
	CHECK_INT_EQ(gw_b64url_decode(enc, strlen(enc), &dec, &dlen), 0);
	CHECK_INT_EQ(dlen, strlen(plain));
	CHECK(dec && memcmp(dec, plain, dlen) == 0 && dec[dlen] == '\0');
	free(dec);
}

static int rejects(const char *s)
{
	unsigned char *dec = (unsigned char *)"sentinel";
	size_t dlen = 0;
	int rc = gw_b64url_decode(s, strlen(s), &dec, &dlen);

	if (rc == 0)
		free(dec);
	return rc == -1;
}

int main(void)
{
	unsigned char all[256], *dec = NULL;
	char enc[400];
	size_t dlen, len, n;

	/* RFC 4648 §10 vectors (no padding). */
	check_vector("", "");
	check_vector("f", "Zg");
	check_vector("fo", "Zm8");
	check_vector("foo", "Zm9v");
	check_vector("foob", "Zm9vYg");
	check_vector("fooba", "Zm9vYmE");
	check_vector("foobar", "Zm9vYmFy");

	/* The two url-safe characters. */
	{
		const unsigned char b[] = {0xfb, 0xff};
		n = gw_b64url_encode(b, 2, enc);
		CHECK_STR_EQ(enc, "-_8");
		CHECK_INT_EQ(n, 3);
	}

	/* Strictness. */
	CHECK(rejects("Zg=="));
	CHECK(rejects("Zm8="));
	CHECK(rejects("Z"));
	CHECK(rejects("Zm9vY"));
	CHECK(rejects("Zm+v"));
	CHECK(rejects("Zm/v"));
	CHECK(rejects("Zm9 "));
	CHECK(rejects("Zm9\n"));
	CHECK(rejects("Zh")); /* non-canonical: low bits of last char set */
	CHECK(rejects("Zm9")); /* '9' has its low 2 bits set */
	CHECK(!rejects("Zm8"));
	{
		const char nul[] = {'Z', 'm', '\0', 'v'};
		CHECK_INT_EQ(gw_b64url_decode(nul, 4, &dec, &dlen), -1);
	}
	CHECK_INT_EQ(gw_b64url_decode(NULL, 0, &dec, &dlen), 0);
	CHECK_INT_EQ(dlen, 0);
	free(dec);
	CHECK_INT_EQ(gw_b64url_decode(NULL, 4, &dec, &dlen), -1);

	/* Round trip of every length 0..256 over all byte values. */
	for (n = 0; n < 256; n++)
		all[n] = (unsigned char)(n * 7 + 3);
	for (len = 0; len <= 256; len++) {
		size_t el = gw_b64url_encode(all, len, enc);
		int ok = el == gw_b64url_encoded_len(len) && strlen(enc) == el &&
			 gw_b64url_decode(enc, el, &dec, &dlen) == 0 && dlen == len &&
			 memcmp(dec, all, len) == 0;
		CHECK(ok);
		if (!ok)
			fprintf(stderr, "  round trip failed at length %zu\n", len);
		free(dec);
		dec = NULL;
	}
	return CHECK_DONE();
}
