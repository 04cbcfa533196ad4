/* cluster.h - cluster mode's start-up glue: the configuration's cluster.*
 * options as the redis engine's settings (store.h's gw_store_cluster), and
 * the check at start that every configured Redis is reachable, accepts the
 * password and speaks Redis, so that bad input stops the gateway with a
 * clear message (exit code 2) instead of 503s at run time.
 * Threads: main thread, before the server starts. */
#ifndef GW_CLUSTER_H
#define GW_CLUSTER_H

#include <stdio.h>

#include "config.h"
#include "store.h"

/* Fills cl from cfg; node_id_buf receives the default node id
 * (hostname:port) when node_id is not configured. 0, or -1 without
 * cluster.redis (not in cluster mode). */
int gw_cluster_settings(const struct gw_config *cfg, struct gw_store_cluster *cl, char *node_id_buf,
			size_t buflen);

/* Without cluster.redis: 0. Else connects to every server once (and warns
 * on err about one without AOF, which loses accepted events when it
 * restarts) and returns 0, 2 (a bad URL, a refused password, not Redis: bad input) or
 * GW_STORE_EXIT_CODE (unreachable), with the reason on err. */
int gw_cluster_check(const struct gw_config *cfg, FILE *err);

#endif
