/* merkle.c - RFC 9162 Merkle trees over SHA-256; see gw/merkle.h.
 *
 * Hashing goes through one EVP_MD_CTX per call of gw_merkle_build (reused for
 * every node, re-initialised with the pre-fetched SHA-256), because a fresh
 * context and an implicit fetch per 65-byte node would cost more than the
 * hash itself.
 *
 * Ownership: see the header. Threads: the SHA-256 implementation is
 * gwcrypto's shared, fetched-once gw_gw_sha256().
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "gw/merkle.h"
#include "gw/sha256.h"

static int hash2(EVP_MD_CTX *ctx, unsigned char prefix, const void *a, size_t alen, const void *b,
		 size_t blen, unsigned char out[GW_MERKLE_HASH_LEN])
{
	unsigned int n = 0;
	return EVP_DigestInit_ex2(ctx, gw_sha256(), NULL) && EVP_DigestUpdate(ctx, &prefix, 1) &&
			       EVP_DigestUpdate(ctx, a, alen) && (!blen || EVP_DigestUpdate(ctx, b, blen)) &&
			       EVP_DigestFinal_ex(ctx, out, &n) && n == GW_MERKLE_HASH_LEN
		       ? 0
		       : -1;
}

int gw_merkle_leaf_hash(const void *data, size_t len, unsigned char out[GW_MERKLE_HASH_LEN])
{
	EVP_MD_CTX *ctx = gw_sha256() ? EVP_MD_CTX_new() : NULL;
	int rc = ctx ? hash2(ctx, 0x00, data, len, NULL, 0, out) : -1;
	EVP_MD_CTX_free(ctx);
	return rc;
}

void gw_merkle_free(struct gw_merkle *t)
{
	free(t->nodes);
	memset(t, 0, sizeof(*t));
}

int gw_merkle_build(struct gw_merkle *t, const unsigned char *leaf_hashes, size_t n)
{
	memset(t, 0, sizeof(*t));
	if (n == 0 || n > SIZE_MAX / (4 * GW_MERKLE_HASH_LEN))
		return -1;
	/* Levels shrink to ceil(len/2): at most 2n nodes plus one carried odd
	 * node per level. */
	t->nodes = malloc((2 * n + GW_MERKLE_MAX_PATH) * GW_MERKLE_HASH_LEN);
	EVP_MD_CTX *ctx = gw_sha256() ? EVP_MD_CTX_new() : NULL;
	if (!t->nodes || !ctx) {
		EVP_MD_CTX_free(ctx);
		gw_merkle_free(t);
		return -1;
	}
	memcpy(t->nodes, leaf_hashes, n * GW_MERKLE_HASH_LEN);
	t->size = n;
	t->level_off[0] = 0;
	t->level_len[0] = n;
	size_t level = 0, next_off = n;
	while (t->level_len[level] > 1) {
		const unsigned char *in = t->nodes + t->level_off[level] * GW_MERKLE_HASH_LEN;
		size_t len = t->level_len[level];
		unsigned char *out = t->nodes + next_off * GW_MERKLE_HASH_LEN;
		size_t pairs = len / 2;
		for (size_t i = 0; i < pairs; i++) {
			if (hash2(ctx, 0x01, in + 2 * i * GW_MERKLE_HASH_LEN, GW_MERKLE_HASH_LEN,
				  in + (2 * i + 1) * GW_MERKLE_HASH_LEN, GW_MERKLE_HASH_LEN,
				  out + i * GW_MERKLE_HASH_LEN)) {
				EVP_MD_CTX_free(ctx);
				gw_merkle_free(t);
				return -1;
			}
		}
		if (len & 1) /* the odd last node moves up unchanged (RFC 9162's split) */
			memcpy(out + pairs * GW_MERKLE_HASH_LEN, in + (len - 1) * GW_MERKLE_HASH_LEN,
			       GW_MERKLE_HASH_LEN);
		level++;
		t->level_off[level] = next_off;
		t->level_len[level] = pairs + (len & 1);
		next_off += t->level_len[level];
	}
	t->levels = level + 1;
	EVP_MD_CTX_free(ctx);
	return 0;
}

const unsigned char *gw_merkle_root(const struct gw_merkle *t)
{
	if (!t->levels)
		return NULL;
	return t->nodes + t->level_off[t->levels - 1] * GW_MERKLE_HASH_LEN;
}

size_t gw_merkle_path(const struct gw_merkle *t, size_t index,
		      const unsigned char *siblings[GW_MERKLE_MAX_PATH])
{
	if (index >= t->size)
		return (size_t)-1;
	size_t count = 0;
	for (size_t level = 0; level + 1 < t->levels; level++, index >>= 1) {
		size_t sib = index ^ 1;
		if (sib < t->level_len[level])
			siblings[count++] = t->nodes + (t->level_off[level] + sib) * GW_MERKLE_HASH_LEN;
	}
	return count;
}

int gw_merkle_verify(const unsigned char leaf[GW_MERKLE_HASH_LEN], size_t index, size_t size,
		     const unsigned char *path, size_t path_len, const unsigned char root[GW_MERKLE_HASH_LEN])
{
	if (index >= size)
		return 0;
	EVP_MD_CTX *ctx = gw_sha256() ? EVP_MD_CTX_new() : NULL;
	if (!ctx)
		return 0;
	unsigned char r[GW_MERKLE_HASH_LEN];
	memcpy(r, leaf, sizeof(r));
	size_t fn = index, sn = size - 1;
	int ok = 1;
	for (size_t i = 0; i < path_len && ok; i++) {
		const unsigned char *p = path + i * GW_MERKLE_HASH_LEN;
		if (sn == 0) {
			ok = 0;
			break;
		}
		if ((fn & 1) || fn == sn) {
			ok = hash2(ctx, 0x01, p, GW_MERKLE_HASH_LEN, r, GW_MERKLE_HASH_LEN, r) == 0;
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			ok = hash2(ctx, 0x01, r, GW_MERKLE_HASH_LEN, p, GW_MERKLE_HASH_LEN, r) == 0;
		}
		fn >>= 1;
		sn >>= 1;
	}
	EVP_MD_CTX_free(ctx);
	return ok && sn == 0 && CRYPTO_memcmp(r, root, GW_MERKLE_HASH_LEN) == 0;
}
