/* util.h - the few helpers every gateway module shares: the one process clock
 * and the one hex encoder (ids, trace ids, note ids, jti, JSON \u escapes).
 *
 * Ownership: callers own every buffer. Threads: any; no state but the
 * fallback counter of gw_random_hex.
 */
#ifndef GW_UTIL_H
#define GW_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in ns: request ages, queue latency, the sweep. */
int64_t gw_monotonic_ns(void);

/* n bytes as lowercase hex, NUL-terminated: out holds 2 * n + 1. */
void gw_hex_encode(const unsigned char *in, size_t n, char *out);

/* bytes (at most 32) random bytes from OpenSSL as hex: out holds 2 * bytes + 1.
 * If the RNG fails the ids stay unique (a counter) though not unpredictable. */
void gw_random_hex(char *out, size_t bytes);

/* The strmap key of a request or connection id: 16 hex digits. */
void gw_id_key(uint64_t id, char out[17]);

#endif
