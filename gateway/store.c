/* store.c - what the store engines share: opening by name, context pattern
 * matching, limits, epochs, freeing results. No engine-specific code.
 * Threads: any (no state).
 */
#include "store.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	}
	return "unknown error";
}

int gw_store_open(const char *kind, const char *state_dir, const struct gw_store_options *opt,
		  struct gw_store **out, char *msg, size_t msglen)
{
	*out = NULL;
	if (kind && !strcmp(kind, "memory"))
		return gw_store_memory_open(opt, out, msg, msglen);
	if (!kind || !strcmp(kind, "sqlite"))
		return gw_store_sqlite_open(state_dir, opt, out, msg, msglen);
	snprintf(msg, msglen, "unknown store '%s' (sqlite or memory)", kind);
	return GW_STORE_ERR_INVAL;
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
	return limit < GW_STORE_PAGE_MIN ? GW_STORE_PAGE_MIN
					 : limit > GW_STORE_PAGE_MAX ? GW_STORE_PAGE_MAX : limit;
}

int gw_store_new_epoch(char out[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[16];
	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	for (size_t i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[32] = '\0';
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
	for (size_t i = 0; i < m->count; i++)
		free(m->ids[i]);
	free(m->ids);
	m->ids = NULL;
	m->count = 0;
}
