/* merkle.h - RFC 9162 (Certificate Transparency 2.0) §2.1 Merkle trees over
 * SHA-256: the batch signatures of outgoing notifications.
 *
 * Library "gwcrypto". One ES256 signature covers the root of a tree whose
 * leaves are the claims of many notifications; each notification carries its
 * inclusion proof (docs/protocol.md, "Notification claims and proof").
 *
 * The tree is built bottom-up, pairing nodes left to right and carrying an
 * odd last node up unchanged; this yields exactly RFC 9162's MTH (split at the
 * largest power of two below n) and its PATH, without recursion.
 *
 * Ownership: struct gw_merkle owns its node storage (gw_merkle_free);
 * pointers returned by gw_merkle_root / gw_merkle_path borrow from it.
 * Threads: a tree is used by the thread that built it; the functions keep no
 * global state beyond OpenSSL's read-only SHA-256 implementation.
 */
#ifndef GW_MERKLE_H
#define GW_MERKLE_H

#include <stddef.h>

#define GW_MERKLE_HASH_LEN 32
/* 2^64 leaves would need 64 levels; a proof is never longer. */
#define GW_MERKLE_MAX_PATH 64

struct gw_merkle {
	size_t size; /* leaves */
	size_t levels; /* 1 + the path length of the deepest leaf */
	unsigned char *nodes; /* every level, leaves first, 32 bytes each */
	size_t level_off[GW_MERKLE_MAX_PATH + 1]; /* first node of each level */
	size_t level_len[GW_MERKLE_MAX_PATH + 1]; /* nodes in each level */
};

/* SHA-256(0x00 || data). Returns 0 or -1. */
int gw_merkle_leaf_hash(const void *data, size_t len, unsigned char out[GW_MERKLE_HASH_LEN]);

/* Builds the tree over n >= 1 leaf hashes (n * 32 bytes, copied). Returns 0,
 * or -1 (n == 0, out of memory, hashing failed) with *t left empty. */
int gw_merkle_build(struct gw_merkle *t, const unsigned char *leaf_hashes, size_t n);
void gw_merkle_free(struct gw_merkle *t);

const unsigned char *gw_merkle_root(const struct gw_merkle *t);

/* The inclusion proof of leaf index: up to GW_MERKLE_MAX_PATH sibling hashes,
 * leaf to root, as pointers into the tree. Returns how many (0 for a tree of
 * one leaf), or (size_t)-1 when index is out of range. */
size_t gw_merkle_path(const struct gw_merkle *t, size_t index,
		      const unsigned char *siblings[GW_MERKLE_MAX_PATH]);

/* RFC 9162 §2.1.3.2: does path prove that leaf is at index in a tree of size
 * leaves with this root? path holds path_len hashes back to back. 1 or 0. */
int gw_merkle_verify(const unsigned char leaf[GW_MERKLE_HASH_LEN], size_t index, size_t size,
		     const unsigned char *path, size_t path_len,
		     const unsigned char root[GW_MERKLE_HASH_LEN]);

#endif
