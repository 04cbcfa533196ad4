/* cluster.c - see cluster.h. */
#include "cluster.h"

#include <string.h>
#include <unistd.h>

int gw_cluster_settings(const struct gw_config *cfg, struct gw_store_cluster *cl, char *node_id_buf,
			size_t buflen)
{
	memset(cl, 0, sizeof(*cl));
	if (!cfg->nredis)
		return -1;
	cl->redis = (const char *const *)cfg->redis;
	cl->nredis = (size_t)cfg->nredis;
	cl->timeout_ms = cfg->cluster_timeout;
	cl->claim_after_ms = cfg->cluster_claim_after;
	cl->publish = 1; /* cluster mode fans out through broker_redis.c */
	if (cfg->node_id) {
		cl->node_id = cfg->node_id;
	} else {
		char host[200] = "node";
		if (gethostname(host, sizeof(host)))
			snprintf(host, sizeof(host), "node");
		host[sizeof(host) - 1] = '\0';
		snprintf(node_id_buf, buflen, "%s:%d", host, cfg->listen_port);
		cl->node_id = node_id_buf;
	}
	return 0;
}

int gw_cluster_check(const struct gw_config *cfg, FILE *err)
{
	struct gw_store_cluster cl;
	char node[256];
	if (gw_cluster_settings(cfg, &cl, node, sizeof(node)))
		return 0;
	struct gw_store_options o = {GW_STORE_FSYNC, cfg->history_retention, cfg->history_per_user};
	struct gw_store *s = NULL;
	char msg[512] = "";
	int rc = gw_store_redis_open(&o, &cl, &s, msg, sizeof(msg));
	if (s)
		s->ops->close(s);
	if (!rc)
		return 0;
	fprintf(err, "notify-gateway: cluster.redis: %s (%s); not starting\n", msg, gw_store_strerror(rc));
	return rc == GW_STORE_ERR_IO || rc == GW_STORE_ERR_NOMEM ? GW_STORE_EXIT_CODE : 2;
}
