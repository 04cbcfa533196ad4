/* realtime.h - the websocket protocol at /realtime (see realtime.c).
 * Service thread only. */
#ifndef GW_REALTIME_H
#define GW_REALTIME_H

#include <stddef.h>
#include <time.h>

struct gw_app;
struct gw_outbox_item;
struct lws;

#include "strmap.h"

/* Realtime's own state in the app. Service thread only. */
struct gw_realtime_state {
	struct gw_strmap conns_by_id; /* conn id (gw_id_key) -> struct gw_conn* */
	struct gw_strmap ws_per_user; /* (installation, user) -> authenticated connections (uintptr_t) */
	struct gw_strmap ws_per_address; /* client address -> websocket connections (uintptr_t) */
	struct gw_strmap ws_unauth_per_address; /* client address -> connections not yet authenticated */
};

int gw_realtime_state_init(struct gw_realtime_state *r);
void gw_realtime_state_free(struct gw_realtime_state *r); /* the connections belong to lws */

extern const size_t gw_conn_size; /* sizeof(struct gw_conn): lws per-session data */

/* The lws callback of protocol "notify-realtime" (server.c binds it). */
int gw_realtime_callback(struct lws *wsi, int reason, void *user, void *in, size_t len);

/* A worker's verdict on a connect frame; takes item. */
void gw_realtime_auth_done(struct gw_app *app, struct gw_outbox_item *item);

/* A worker's answer to a connection's store request (resume page, inbox,
 * mark); takes item. */
void gw_realtime_store_done(struct gw_app *app, struct gw_outbox_item *item);

/* A token ctx entry covers a subscription: "*" every context, "abc*" every
 * context or pattern starting with "abc", anything else itself only. */
int gw_ctx_covers(const char *entry, const char *ctx);

/* Stop: flush and close every websocket with 1001. */
void gw_realtime_close_all(struct gw_app *app);
/* Cluster mode: the node's broker feed of Redis shard `shard` (of nshards)
 * was lost and is back (notifications published meanwhile on it never
 * reached this node): every connection whose user lives on that shard is
 * closed with 1012 and "resume with since", so each client reconnects (to
 * any node) and its resume fetches what it missed from the store. The
 * other shards' users' connections keep their live feed. */
void gw_realtime_resume_shard(struct gw_app *app, size_t shard, size_t nshards);
/* Cluster mode (broker_redis.h marked callback, ud = the app): another node
 * changed the read state of these ids of (inst, user); each local tab of the
 * user gets "marked" with the ids its token covers and its own unread. */
void gw_realtime_remote_marked(void *ud, const char *inst, const char *user, int read, const char *const *ids,
			       const char *const *ctxs, size_t n);

/* Realtime's part of the 1 s sweep (server.c): authentication deadlines,
 * token expiry, idle pings and closes. One pass over all connections instead
 * of per-wsi lws timers (O(n) insertion in lws 4.1.6). */
void gw_realtime_sweep(struct gw_app *app, time_t now);

#endif
