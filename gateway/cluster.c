/* cluster.c - see cluster.h. */
#include "cluster.h"

#include <hiredis/hiredis.h>
#include <string.h>
#include <unistd.h>

#include "redis_conn.h"

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
	cl->contiguous = 1; /* batch.c renumbers on GW_STORE_ERR_SEQ */
	cl->take_own = 1; /* intake.c queues what the journal call made this node's */
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

/* Warns about a Redis that would lose accepted events on a restart: the
 * gateway answers 202 once an event is in Redis, so without AOF a restart
 * drops everything since the last snapshot (docs/cluster.md, durability).
 * A server that refuses CONFIG (managed Redis) is not checked. */
static void warn_persistence(const char *url, int64_t timeout_ms, FILE *err)
{
	struct gw_redis_url u;
	struct gw_redis_conn c;
	char msg[300];
	int fresh;
	if (gw_redis_url_parse(url, &u, msg, sizeof(msg)))
		return;
	gw_redis_conn_init(&c, &u, timeout_ms);
	if (gw_redis_conn_ensure(&c, &fresh, msg, sizeof(msg)) == GW_REDIS_OK) {
		const char *argv[] = {"CONFIG", "GET", "append*"};
		redisReply *r = gw_redis_conn_cmd(&c, 3, argv, NULL);
		const char *aof = NULL, *fsync = NULL;
		for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
			if (r->element[i]->type != REDIS_REPLY_STRING ||
			    r->element[i + 1]->type != REDIS_REPLY_STRING)
				continue;
			if (!strcmp(r->element[i]->str, "appendonly"))
				aof = r->element[i + 1]->str;
			if (!strcmp(r->element[i]->str, "appendfsync"))
				fsync = r->element[i + 1]->str;
		}
		char name[300];
		gw_redis_url_name(&u, name, sizeof(name));
		if (aof && !strcmp(aof, "no"))
			fprintf(err,
				"notify-gateway: warning: %s has appendonly no: events answered 202 since its last "
				"snapshot are lost when it restarts (appendonly yes, appendfsync always or "
				"everysec; docs/cluster.md)\n",
				name);
		else if (aof && fsync && !strcmp(fsync, "no"))
			fprintf(err,
				"notify-gateway: warning: %s has appendfsync no: a machine crash loses up to "
				"~30 s of accepted events (docs/cluster.md)\n",
				name);
		if (r)
			freeReplyObject(r);
	}
	gw_redis_conn_close(&c);
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
	if (!rc) {
		for (size_t i = 0; i < cl.nredis; i++)
			warn_persistence(cl.redis[i], cl.timeout_ms, err);
		return 0;
	}
	fprintf(err, "notify-gateway: cluster.redis: %s (%s); not starting\n", msg, gw_store_strerror(rc));
	return rc == GW_STORE_ERR_IO || rc == GW_STORE_ERR_NOMEM ? GW_STORE_EXIT_CODE : 2;
}
