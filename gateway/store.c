/* store.c - what the store engines share: context pattern matching, limits,
 * epochs, freeing results. No engine-specific code; the engines call it, it
 * calls none of them (opening by name is store_open.c).
 * Threads: any (no state).
 */
#include "store.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *gw_store_strerror(int rc)
{
	switch (rc) {
	case GW_STORE_OK: return "ok";
	case GW_STORE_DUPLICATE: return "already accepted";
	case GW_STORE_NOT_PENDING: return "event not pending";
	case GW_STORE_ERR_IO: return "I/O error";
	case GW_STORE_ERR_CORRUPT: return "database corrupt or not a notify-gateway database";
	case GW_STORE_ERR_ACCESS: return "not writable";
	case GW_STORE_ERR_VERSION: return "database written by a newer version";
	case GW_STORE_ERR_LOCKED: return "in use by another process";
	case GW_STORE_ERR_NOMEM: return "out of memory";
	case GW_STORE_ERR_INVAL: return "invalid argument";
	case GW_STORE_ERR_SEQ: return "seq already taken by another node";
	}
	return "unknown error";
}

int gw_store_pattern_match(const char *pattern, const char *ctx)
{
	size_t n = strlen(pattern);
	if (n && pattern[n - 1] == '*')
		return strncmp(pattern, ctx, n - 1) == 0;
	return strcmp(pattern, ctx) == 0;
}

int gw_store_visible(const char *const *pats, size_t npats, const char *filter, const char *ctx)
{
	if (filter && !gw_store_pattern_match(filter, ctx))
		return 0;
	for (size_t i = 0; i < npats; i++)
		if (gw_store_pattern_match(pats[i], ctx))
			return 1;
	return 0;
}

size_t gw_store_clamp_limit(size_t limit)
{
	return limit < GW_STORE_PAGE_MIN   ? GW_STORE_PAGE_MIN
	       : limit > GW_STORE_PAGE_MAX ? GW_STORE_PAGE_MAX
					   : limit;
}

int gw_store_new_epoch(char out[33])
{
	unsigned char b[16];
	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1; /* an epoch must be unpredictable: no fallback (unlike gw_random_hex) */
	gw_hex_encode(b, sizeof(b), out);
	return 0;
}

void gw_store_page_free(struct gw_store_page *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->count; i++) {
		free(p->items[i].ctx);
		free(p->items[i].id);
		free(p->items[i].claims);
		free(p->items[i].proof);
	}
	free(p->items);
	p->items = NULL;
	p->count = 0;
}

void gw_store_marked_free(struct gw_store_marked *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->count; i++) {
		free(m->ids[i]);
		if (m->ctxs)
			free(m->ctxs[i]);
	}
	free(m->ids);
	free(m->ctxs);
	m->ids = NULL;
	m->ctxs = NULL;
	m->count = 0;
}
