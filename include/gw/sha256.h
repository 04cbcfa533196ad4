/* sha256.h - the process's one SHA-256 (Merkle trees, the redelivery
 * key, thumbprints).
 *
 * Library "gwcrypto". Threads: any. */
#ifndef GW_SHA256_H
#define GW_SHA256_H

struct evp_md_st;

/* OpenSSL 3's SHA-256, fetched once (EVP_sha256() makes every digest init
 * look it up again). Shared read-only by every thread; NULL if the fetch
 * failed. */
const struct evp_md_st *gw_sha256(void);

#endif
