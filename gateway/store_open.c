/* store_open.c - opens a store engine by its configured name (store.h):
 * the one place that knows every engine, so that the shared helpers in
 * store.c and the engines do not call each other. Threads: any. */
#include "store.h"

#include <stdio.h>
#include <string.h>

int gw_store_open(const char *kind, const char *state_dir, const struct gw_store_options *opt,
		  struct gw_store **out, char *msg, size_t msglen)
{
	return gw_store_open_ex(kind, state_dir, opt, NULL, out, msg, msglen);
}

int gw_store_open_ex(const char *kind, const char *state_dir, const struct gw_store_options *opt,
		     const struct gw_store_cluster *cluster, struct gw_store **out, char *msg, size_t msglen)
{
	*out = NULL;
	if (kind && !strcmp(kind, "memory"))
		return gw_store_memory_open(opt, out, msg, msglen);
	if (kind && !strcmp(kind, "redis"))
		return gw_store_redis_open(opt, cluster, out, msg, msglen);
	if (!kind || !strcmp(kind, "sqlite"))
		return gw_store_sqlite_open(state_dir, opt, out, msg, msglen);
	snprintf(msg, msglen, "unknown store '%s' (sqlite, memory or redis)", kind);
	return GW_STORE_ERR_INVAL;
}
