/* http.h - forge-sim's HTTP/1.1 client: one POST over a plain socket with
 * the whole exchange bounded by one deadline (no TLS: the remote is local).
 *
 * Ownership: the answer is the caller's struct, filled in place.
 * Threads: single-threaded tool; blocks the caller up to timeout_ms.
 */
#ifndef FORGE_SIM_HTTP_H
#define FORGE_SIM_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "opts.h"

struct answer {
	int status; /* HTTP status; 0 = no answer */
	int timed_out;
	char error[160]; /* network error text when status == 0 && !timed_out */
	char body[MAX_ANSWER + 1];
	size_t body_len;
};

/* POSTs body to path on o's host with extra_headers (each line ending in
 * CRLF) and fills ans: the status, or timed_out, or an error text. */
void http_post(const struct opts *o, const char *path, const char *extra_headers, const char *body,
	       int64_t timeout_ms, struct answer *ans);

#endif
