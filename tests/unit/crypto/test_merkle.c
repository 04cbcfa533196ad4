/* test_merkle.c - gw/merkle.h against RFC 9162 §2.1: the published
 * Certificate Transparency test vectors, and a direct recursive
 * implementation of MTH and PATH (as the RFC writes them) for every tree size
 * up to 130 and every leaf; proofs verify, and altered proofs do not.
 *
 * Ownership: each check frees what it builds. Threads: main only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "gw/merkle.h"

static int failures;
#define CHECK(cond, ...)                                                                                     \
	do {                                                                                                 \
		if (!(cond)) {                                                                               \
			failures++;                                                                          \
			fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                      \
			fprintf(stderr, __VA_ARGS__);                                                        \
			fputc('\n', stderr);                                                                 \
		}                                                                                            \
	} while (0)

#define H GW_MERKLE_HASH_LEN

static void sha(const unsigned char *a, size_t alen, unsigned char out[H])
{
	unsigned int n = 0;
	if (!EVP_Digest(a, alen, out, &n, EVP_sha256(), NULL) || n != H)
		abort();
}

/* RFC 9162 §2.1.1: MTH(D[n]) with k the largest power of two < n. */
static void ref_mth(unsigned char (*leaves)[H], size_t n, unsigned char out[H])
{
	if (n == 1) {
		memcpy(out, leaves[0], H);
		return;
	}
	size_t k = 1;
	while (k * 2 < n)
		k *= 2;
	unsigned char buf[1 + 2 * H];
	buf[0] = 0x01;
	ref_mth(leaves, k, buf + 1);
	ref_mth(leaves + k, n - k, buf + 1 + H);
	sha(buf, sizeof(buf), out);
}

/* RFC 9162 §2.1.3.1: PATH(m, D[n]), leaf to root. Returns its length. */
static size_t ref_path(unsigned char (*leaves)[H], size_t n, size_t m, unsigned char (*out)[H])
{
	if (n == 1)
		return 0;
	size_t k = 1;
	while (k * 2 < n)
		k *= 2;
	size_t len;
	if (m < k) {
		len = ref_path(leaves, k, m, out);
		ref_mth(leaves + k, n - k, out[len]);
	} else {
		len = ref_path(leaves + k, n - k, m - k, out);
		ref_mth(leaves, k, out[len]);
	}
	return len + 1;
}

static void hex(const unsigned char *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_vectors(void)
{
	/* The CT reference test data (RFC 6962 leaves, roots of the first 1..8). */
	static const char *inputs[] = {"",
				       "00",
				       "10",
				       "2021",
				       "3031",
				       "40414243",
				       "5051525354555657",
				       "606162636465666768696a6b6c6d6e6f"};
	static const char *roots[] = {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
				      "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
				      "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
				      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
				      "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
				      "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
				      "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
				      "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};
	unsigned char leaves[8][H];
	for (size_t i = 0; i < 8; i++) {
		unsigned char raw[16];
		size_t n = strlen(inputs[i]) / 2;
		for (size_t j = 0; j < n; j++)
			sscanf(inputs[i] + 2 * j, "%2hhx", &raw[j]);
		CHECK(gw_merkle_leaf_hash(raw, n, leaves[i]) == 0, "leaf hash %zu", i);
	}
	for (size_t n = 1; n <= 8; n++) {
		struct gw_merkle t;
		CHECK(gw_merkle_build(&t, leaves[0], n) == 0, "build %zu", n);
		char got[2 * H + 1];
		hex(gw_merkle_root(&t), H, got);
		CHECK(!strcmp(got, roots[n - 1]), "root of %zu leaves: %s, want %s", n, got, roots[n - 1]);
		gw_merkle_free(&t);
	}
}

static void test_against_rfc(void)
{
	enum { MAX = 130 };
	static unsigned char leaves[MAX][H];
	for (size_t i = 0; i < MAX; i++) {
		char data[32];
		int len = snprintf(data, sizeof(data), "leaf %zu", i);
		gw_merkle_leaf_hash(data, (size_t)len, leaves[i]);
	}
	for (size_t n = 1; n <= MAX; n++) {
		struct gw_merkle t;
		if (gw_merkle_build(&t, leaves[0], n)) {
			CHECK(0, "build %zu", n);
			continue;
		}
		unsigned char want_root[H];
		ref_mth(leaves, n, want_root);
		CHECK(!memcmp(gw_merkle_root(&t), want_root, H), "root differs from RFC MTH at n=%zu", n);
		for (size_t m = 0; m < n; m++) {
			unsigned char want[GW_MERKLE_MAX_PATH][H], flat[GW_MERKLE_MAX_PATH * H];
			const unsigned char *sib[GW_MERKLE_MAX_PATH];
			size_t wlen = ref_path(leaves, n, m, want);
			size_t len = gw_merkle_path(&t, m, sib);
			CHECK(len == wlen, "path length n=%zu m=%zu: %zu, RFC %zu", n, m, len, wlen);
			if (len != wlen)
				continue;
			for (size_t i = 0; i < len; i++) {
				CHECK(!memcmp(sib[i], want[i], H), "path element %zu differs n=%zu m=%zu", i,
				      n, m);
				memcpy(flat + i * H, sib[i], H);
			}
			CHECK(gw_merkle_verify(leaves[m], m, n, flat, len, want_root), "proof n=%zu m=%zu", n,
			      m);
			/* Altered proofs must fail. */
			if (n > 1) {
				CHECK(!gw_merkle_verify(leaves[m], (m + 1) % n, n, flat, len, want_root),
				      "wrong index accepted n=%zu m=%zu", n, m);
				CHECK(!gw_merkle_verify(leaves[(m + 1) % n], m, n, flat, len, want_root),
				      "other leaf accepted n=%zu m=%zu", n, m);
				CHECK(!gw_merkle_verify(leaves[m], m, n, flat, len - 1, want_root),
				      "short path accepted n=%zu m=%zu", n, m);
				flat[(m * 7) % (len * H)] ^= 0x20;
				CHECK(!gw_merkle_verify(leaves[m], m, n, flat, len, want_root),
				      "altered path accepted n=%zu m=%zu", n, m);
				flat[(m * 7) % (len * H)] ^= 0x20;
			}
			memcpy(flat + len * H, leaves[m], H);
			CHECK(!gw_merkle_verify(leaves[m], m, n, flat, len + 1, want_root),
			      "long path accepted n=%zu m=%zu", n, m);
			CHECK(!gw_merkle_verify(leaves[m], n, n, flat, len, want_root),
			      "index == size accepted n=%zu", n);
		}
		const unsigned char *sib[GW_MERKLE_MAX_PATH];
		CHECK(gw_merkle_path(&t, n, sib) == (size_t)-1, "path for index n accepted");
		gw_merkle_free(&t);
	}
}

int main(void)
{
	struct gw_merkle t;
	unsigned char one[H] = {0};
	CHECK(gw_merkle_build(&t, one, 0) == -1, "a tree of no leaves was built");
	test_vectors();
	test_against_rfc();
	if (failures) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	puts("merkle: RFC 9162 vectors and trees of 1..130 leaves: ok");
	return 0;
}
