/* fit.h - what forge-sim signs: the Forge Invocation Token of one attempt
 * (RS256 with the simulator's key; app claims, and for a UI invocation
 * principal and context), the opaque app system token, and `forge-sim fit`.
 *
 * Ownership: returned tokens are the caller's (free()).
 * Threads: single-threaded tool (the system-token key is process state).
 */
#ifndef FORGE_SIM_FIT_H
#define FORGE_SIM_FIT_H

#include <stdint.h>

#include "opts.h"

/* A fresh FIT for o (new jti, iat now, exp now + --fit-ttl). */
char *make_fit(const struct opts *o);
/* The x-forge-oauth-system token: an HS256 JWT with exp, keyed per process. */
char *system_token(const char *installation, int64_t ttl_ms);
/* forge-sim fit [OPTIONS]: prints one FIT. */
int cmd_fit(int argc, char **argv);

#endif
