/* tokens.h - notify-loadgen's credentials for a gateway under test: FITs
 * signed with the gateway's development Forge key and subscription tokens
 * with its development subscriber secret (both read from --state-dir), and
 * the base64url decoder the websocket side reads frames' claims with.
 *
 * Ownership: g_fits and the secret are made once by load_keys and live until
 * exit; mint_sub's token is the caller's.
 * Threads: load_keys and mint_sub on the main thread before the publisher
 * starts; the publisher only reads g_fits.
 */
#ifndef LOADGEN_TOKENS_H
#define LOADGEN_TOKENS_H

#include <stddef.h>

#define NFITS 16
/* Distinct FITs (jti), used in turn by the publisher. */
extern char *g_fits[NFITS];

/* --target gateway: reads STATE/dev-forge-key.pem and STATE/dev-subscriber-secret, mints g_fits. */
void load_keys(void);
/* HS256 subscription token for user u<i>. */
char *mint_sub(int i, long ttl);
/* Decodes at most outlen-1 bytes; returns the length or -1. NUL-terminates. */
long b64url_dec(const char *in, size_t n, char *out, size_t outlen);

#endif
