/* b64url.h - base64url (RFC 4648 §5, no padding): JWS segments, JWK
 * coordinates, Merkle proof hashes.
 *
 * Library "gwcrypto". Ownership: decode returns a malloc'd buffer the caller
 * frees. Threads: any (pure). */
#ifndef GW_B64URL_H
#define GW_B64URL_H

#include <stddef.h>

/* Encodes len bytes; out must hold gw_b64url_encoded_len(len) + 1 bytes.
 * Returns the number of characters written (a NUL follows). */
size_t gw_b64url_encoded_len(size_t len);
size_t gw_b64url_encode(const unsigned char *in, size_t len, char *out);
/* Decodes; refuses padding and characters outside the alphabet. Returns 0 and
 * a malloc'd buffer (NUL-terminated for convenience) or -1. */
int gw_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len);

#endif
