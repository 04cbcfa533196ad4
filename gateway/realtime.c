/* realtime.c - the websocket protocol at /realtime (docs/protocol.md).
 *
 * A connection starts unauthenticated. Its first frame must be
 *   {"op":"connect","token":"<subscription JWT>"}
 * The token is verified by a worker (AUTH job); frames that arrive meanwhile
 * wait in order in a bounded inbound queue, so a client may send connect and
 * its subscribes at once. Then {"op":"subscribe","ctx":...} registers the
 * connection with the broker for (sub, ctx) if the token's ctx list covers it.
 * A later connect refreshes the token: the connection stays RT_READY (it keeps
 * receiving notifications and is not subject to auth_timeout) and only its
 * frames wait until the new token is verified.
 *
 * Outbound frames (notifications, acknowledgements, pongs, errors) go through
 * a per-connection FIFO bounded in bytes: realtime_out.c. Subscribe with
 * since (resume), inbox and mark go through the store: realtime_store.c.
 * This file: the lws callback, authentication, the caps, subscriptions,
 * frame dispatch, realtime's part of the sweep.
 *
 * Connections are counted per client address (all, and those not yet
 * authenticated) from the moment they open, and per (installation, user) once
 * their first token is verified; over a cap: too_many_connections, 1008.
 *
 * Ownership: struct gw_conn (realtime_conn.h) is lws's per-session data; it
 * owns its strings, queued inbound frames and one reference per queued
 * gw_msg. The broker and app->rt.conns_by_id only point at it; both forget
 * it in LWS_CALLBACK_CLOSED.
 * Threads: service thread only.
 */
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "broker_redis.h"
#include "realtime.h"
#include "realtime_conn.h"
#include "redis_conn.h"
#include "log.h"
#include "stats.h"
#include "cors.h"
#include "ws_frames.h"

const size_t gw_conn_size = sizeof(struct gw_conn);

int gw_realtime_state_init(struct gw_realtime_state *r)
{
	return gw_strmap_init(&r->conns_by_id, 1024) || gw_strmap_init(&r->ws_per_user, 256) ||
	       gw_strmap_init(&r->ws_per_address, 256) || gw_strmap_init(&r->ws_unauth_per_address, 256);
}

void gw_realtime_state_free(struct gw_realtime_state *r)
{
	gw_strmap_free(&r->conns_by_id, NULL);
	gw_strmap_free(&r->ws_per_user, NULL);
	gw_strmap_free(&r->ws_per_address, NULL);
	gw_strmap_free(&r->ws_unauth_per_address, NULL);
}

/* ---- outbound ------------------------------------------------------------ */

/* ---- connection caps: per (installation, user), per client address ----- */

/* Counts one more connection under key unless cap (0: none) is reached.
 * Returns 0 (counted), -1 (at the cap), -2 (out of memory). */
static int cap_take(struct gw_strmap *m, const char *key, size_t len, int cap)
{
	int created = 0;
	struct gw_strmap_entry *e = gw_strmap_upsert(m, key, len, &created);
	if (!e)
		return -2;
	uintptr_t n = (uintptr_t)e->value;
	if (cap > 0 && n >= (uintptr_t)cap) {
		if (created)
			gw_strmap_remove(m, key, len);
		return -1;
	}
	e->value = (void *)(n + 1);
	return 0;
}

static void cap_give(struct gw_strmap *m, const char *key, size_t len)
{
	struct gw_strmap_entry *e = gw_strmap_upsert(m, key, len, NULL);
	if (!e)
		return;
	uintptr_t n = (uintptr_t)e->value;
	if (n <= 1)
		gw_strmap_remove(m, key, len);
	else
		e->value = (void *)(n - 1);
}

/* "<len(inst)>:<inst><user>": no two (installation, user) pairs share a key. */
static char *user_key(const char *inst, const char *user, size_t *len)
{
	char *k = NULL;
	int n = asprintf(&k, "%zu:%s%s", strlen(inst), inst, user);
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return k;
}

static void too_many(struct gw_conn *c, const char *which)
{
	char msg[128];
	snprintf(msg, sizeof(msg), "too many websocket connections for this %s; close another first", which);
	rt_send_json(c, json_pack("{s:s, s:s, s:s}", "op", "error", "code", "too_many_connections", "message",
				  msg));
	rt_close_after_flush(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too_many_connections");
}

/* ---- subscriptions --------------------------------------------------------- */

/* A token entry covers a subscription: "*" every context, "abc*" every
 * context or pattern that starts with "abc", anything else itself only. */
int gw_ctx_covers(const char *entry, const char *ctx)
{
	size_t n = strlen(entry);
	if (n && entry[n - 1] == '*')
		return !strncmp(entry, ctx, n - 1);
	return !strcmp(entry, ctx);
}

static int ctx_allowed(struct gw_conn *c, const char *ctx)
{
	for (size_t i = 0; i < c->nallowed; i++)
		if (gw_ctx_covers(c->allowed[i], ctx))
			return 1;
	return 0;
}

static void unsubscribe_all(struct gw_conn *c)
{
	for (size_t i = 0; i < c->nsubs; i++) {
		if (c->user)
			gw_broker_unsubscribe(c->app->broker, c->installation, c->user, c->subs[i].ctx, c);
		free(c->subs[i].ctx);
	}
	free(c->subs);
	c->subs = NULL;
	c->nsubs = 0;
}

static void free_allowed(struct gw_conn *c)
{
	for (size_t i = 0; i < c->nallowed; i++)
		free(c->allowed[i]);
	free(c->allowed);
	c->allowed = NULL;
	c->nallowed = 0;
}

static void remove_sub(struct gw_conn *c, size_t at)
{
	if (c->subs[at].replaying)
		c->replaying--; /* its answer finds no subscription and is dropped */
	if (c->subs[at].confirming)
		c->confirming--;
	free(c->subs[at].ctx);
	c->subs[at] = c->subs[--c->nsubs];
	if (!c->replaying)
		rt_flush_held(c);
}

/* {"epoch": 1-64 of [A-Za-z0-9_-], "seq": integer >= 0}; NULL when valid. */
static const char *since_invalid(json_t *since, const char **epoch, uint64_t *seq)
{
	if (!json_is_object(since))
		return "\"since\" must be an object {\"epoch\":\"<id>\",\"seq\":<integer>}";
	json_t *e = json_object_get(since, "epoch"), *q = json_object_get(since, "seq");
	if (!json_is_string(e) || json_string_length(e) < 1 || json_string_length(e) > GW_STORE_EPOCH_MAX)
		return "\"since.epoch\" must be a string of 1-64 characters [A-Za-z0-9_-]";
	const char *es = json_string_value(e);
	for (const char *p = es; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '_' || *p == '-'))
			return "\"since.epoch\" must be a string of 1-64 characters [A-Za-z0-9_-]";
	/* jansson reads integers beyond int64 as reals: refused here too */
	if (!json_is_integer(q) || json_integer_value(q) < 0)
		return "\"since.seq\" must be an integer >= 0";
	*epoch = es;
	*seq = (uint64_t)json_integer_value(q);
	return NULL;
}

/* The subscription at is live (broker.h): acknowledge it, or start its
 * resume. Not replaying when called. */
static void start_sub(struct gw_conn *c, ssize_t at, int has_since, const char *epoch, uint64_t after)
{
	const char *ctx = c->subs[at].ctx;
	if (!has_since) {
		rt_send_subscribed(c, ctx, 0, 0);
		return;
	}
	/* Resume. Another epoch: nothing of that store is here to replay. */
	if (strcmp(epoch, c->app->store->ops->epoch(c->app->store)) != 0) {
		c->subs[at].skip = 0;
		rt_send_subscribed(c, ctx, 1, 0);
		return;
	}
	/* Subscribed to the broker first, then the store is read: what is
	 * recorded after the read comes live, and live frames wait (held) until
	 * the replay is out; those the replay already carried are skipped. */
	c->subs[at].after = after;
	c->subs[at].replaying = 1;
	c->subs[at].gen = ++c->next_gen;
	c->replaying++;
	if (rt_request_page(c, (size_t)at)) {
		c->subs[at].replaying = 0;
		c->replaying--;
		rt_send_error(c, "busy",
			      "the gateway cannot read the history right now; subscribe again later", 0);
		rt_send_subscribed(c, ctx, 1, 0);
		if (!c->replaying)
			rt_flush_held(c);
	}
}

void gw_conn_subscribed(struct gw_conn *c, const char *ctx)
{
	ssize_t at = rt_find_sub(c, ctx);
	if (at < 0 || !c->subs[at].confirming)
		return;
	struct sub *sb = &c->subs[at];
	sb->confirming = 0;
	c->confirming--;
	sb->replaying = 0;
	c->replaying--;
	if (c->state == RT_READY)
		start_sub(c, at, sb->want_since, sb->since_epoch, sb->after);
	if (!c->replaying)
		rt_flush_held(c);
}

static void op_subscribe(struct gw_conn *c, const char *ctx, json_t *frame, int subscribe)
{
	ssize_t at = rt_find_sub(c, ctx);
	if (!subscribe) {
		if (at >= 0) {
			gw_broker_unsubscribe(c->app->broker, c->installation, c->user, ctx, c);
			remove_sub(c, (size_t)at);
		}
		rt_send_json(c, json_pack("{s:s, s:s}", "op", "unsubscribed", "ctx", ctx));
		return;
	}
	json_t *since = json_object_get(frame, "since");
	const char *epoch = NULL;
	uint64_t after = 0;
	if (since) {
		const char *why = since_invalid(since, &epoch, &after);
		if (why) {
			rt_send_error(c, "bad_frame", why, 0);
			return;
		}
	}
	if (!ctx_allowed(c, ctx)) {
		gw_stat_inc(
			GW_STAT_ws_frames_refused); /* names the ctx: a client tells its subscriptions apart */
		rt_send_json(c, json_pack("{s:s, s:s, s:s, s:s}", "op", "error", "code", "ctx_forbidden",
					  "message", "the subscription token does not cover this context",
					  "ctx", ctx));
		return;
	}
	if (at >= 0 && c->subs[at].replaying) {
		rt_send_error(
			c, "busy",
			"a subscribe or resume of this subscription is under way; subscribe again after it",
			0);
		return;
	}
	if (at < 0) {
		if (c->nsubs >= (size_t)c->app->cfg.ws_max_subscriptions) {
			rt_send_error(c, "too_many_subscriptions",
				      "this connection has reached its subscription limit", 0);
			return;
		}
		struct sub *n = realloc(c->subs, (c->nsubs + 1) * sizeof(*n));
		char *copy = strdup(ctx);
		int rc = n && copy ? gw_broker_subscribe(c->app->broker, c->installation, c->user, ctx, c)
				   : -1;
		if (rc < 0) {
			if (n)
				c->subs = n;
			free(copy);
			rt_send_error(c, "internal_error", "could not subscribe; try again", 0);
			return;
		}
		c->subs = n;
		memset(&c->subs[c->nsubs], 0, sizeof(c->subs[0]));
		c->subs[c->nsubs].ctx = copy;
		at = (ssize_t)c->nsubs++;
		if (rc == 1) {
			/* Cluster mode: the node's feed of this user is not live yet.
			 * Neither the answer nor the resume's read may come before it
			 * is, or a notification recorded in between would be missed
			 * (docs/cluster.md, "The live seam"). Live frames are held. */
			struct sub *sb = &c->subs[at];
			sb->confirming = 1;
			sb->replaying = 1;
			sb->want_since = since != NULL;
			sb->after = after;
			snprintf(sb->since_epoch, sizeof(sb->since_epoch), "%s", epoch ? epoch : "");
			int64_t wait =
				2 * (int64_t)(c->app->cfg.cluster_timeout > 0 ? c->app->cfg.cluster_timeout
									      : 2000);
			sb->confirm_by_ms = gw_monotonic_ns() / 1000000 + wait;
			c->replaying++;
			c->confirming++;
			gw_stat_inc(GW_STAT_cluster_subscribe_waits);
			return;
		}
	}
	start_sub(c, at, since != NULL, epoch, after);
}

/* Subscribes the broker did not confirm in time (Redis unreachable or
 * frozen): answered busy and dropped; the client subscribes again. */
static void confirm_deadlines(struct gw_conn *c)
{
	int64_t now = gw_monotonic_ns() / 1000000;
	for (size_t i = 0; i < c->nsubs;) {
		struct sub *sb = &c->subs[i];
		if (!sb->confirming || now < sb->confirm_by_ms) {
			i++;
			continue;
		}
		gw_stat_inc(GW_STAT_cluster_subscribe_timeouts);
		gw_stat_inc(GW_STAT_ws_frames_refused);
		rt_send_json(
			c, json_pack("{s:s, s:s, s:s, s:s}", "op", "error", "code", "busy", "message",
				     "the cluster did not confirm this subscription in time; subscribe again",
				     "ctx", sb->ctx));
		gw_broker_unsubscribe(c->app->broker, c->installation, c->user, sb->ctx, c);
		remove_sub(c, i);
	}
}

static void op_connect(struct gw_conn *c, const char *token)
{
	struct gw_job *job = gw_job_new(GW_JOB_AUTH);
	if (!job || !(job->token = strdup(token))) {
		gw_job_free(job);
		rt_send_error(c, "internal_error", "out of memory", 1);
		return;
	}
	job->req_id = c->id;
	int rc = gw_workq_push_verify(&c->app->workq, job);
	if (rc) {
		gw_job_free(job);
		if (rc == -1)
			gw_stat_inc(GW_STAT_ws_auth_busy);
		if (c->state == RT_READY) {
			/* A refresh: the current token still holds; the client retries. */
			rt_send_json(
				c,
				json_pack("{s:s, s:s, s:s}", "op", "error", "code",
					  rc == -2 ? "stopping" : "busy", "message",
					  "the gateway cannot verify tokens right now; refresh again later"));
			return;
		}
		rt_send_json(c, json_pack("{s:s, s:s, s:s}", "op", "error", "code",
					  rc == -2 ? "stopping" : "busy", "message",
					  "the gateway cannot verify tokens right now; reconnect later"));
		rt_close_after_flush(c, (enum lws_close_status)1013 /* try again later */, "busy");
		return;
	}
	if (c->state == RT_READY)
		c->refreshing = 1;
	else
		c->state = RT_AUTHENTICATING;
}

/* The frame is parsed and classified by ws_frames.c (no socket there); the
 * connection carries the operation out here. */
static void process_frame(struct gw_conn *c, const char *data, size_t len)
{
	struct gw_ws_op op;
	gw_ws_frame_parse(data, len, c->state != RT_AWAIT_CONNECT, &op);
	switch (op.kind) {
	case GW_WS_OP_ERROR:
		if (op.auth_failed)
			gw_stat_inc(GW_STAT_ws_auth_failed);
		rt_send_error(c, op.code, op.message, op.close);
		break;
	case GW_WS_OP_CONNECT: op_connect(c, op.token); break;
	case GW_WS_OP_SUBSCRIBE:
	case GW_WS_OP_UNSUBSCRIBE: op_subscribe(c, op.ctx, op.frame, op.kind == GW_WS_OP_SUBSCRIBE); break;
	case GW_WS_OP_PING: rt_send_json(c, gw_ws_pong(&op)); break;
	case GW_WS_OP_INBOX: rt_op_inbox(c, op.frame); break;
	case GW_WS_OP_MARK: rt_op_mark(c, op.frame, 0); break;
	case GW_WS_OP_MARK_ALL: rt_op_mark(c, op.frame, 1); break;
	}
	gw_ws_op_clear(&op);
}

/* Runs queued inbound frames until one starts a verification (or none left). */
static void drain_inbound(struct gw_conn *c)
{
	while (c->in_head && c->state == RT_READY && !c->refreshing) {
		struct inbound *f = c->in_head;
		c->in_head = f->next;
		if (!c->in_head)
			c->in_tail = NULL;
		c->in_count--;
		process_frame(c, f->data, f->len);
		free(f);
	}
}

static void handle_frame(struct gw_conn *c, const char *data, size_t len)
{
	if (c->state == RT_CLOSING)
		return;
	if (c->state == RT_AUTHENTICATING || c->refreshing) {
		if (c->in_count >= MAX_QUEUED_INBOUND) {
			rt_send_error(c, "too_many_frames",
				      "too many frames sent before the token was verified", 1);
			return;
		}
		struct inbound *f = malloc(sizeof(*f) + len);
		if (!f)
			return;
		f->next = NULL;
		f->len = len;
		memcpy(f->data, data, len);
		if (c->in_tail)
			c->in_tail->next = f;
		else
			c->in_head = f;
		c->in_tail = f;
		c->in_count++;
		return;
	}
	process_frame(c, data, len);
}

void gw_realtime_auth_done(struct gw_app *app, struct gw_outbox_item *item)
{
	char key[17];
	gw_id_key(item->req_id, key);
	struct gw_conn *c = gw_strmap_get(&app->rt.conns_by_id, key, 16);
	if (!c || !(c->state == RT_AUTHENTICATING || (c->state == RT_READY && c->refreshing))) {
		gw_outbox_item_free(item);
		return;
	}
	c->refreshing = 0;
	if (item->status != GW_TOKEN_OK) {
		gw_stat_inc(GW_STAT_ws_auth_failed);
		gw_log(GW_LOG_INFO, "realtime: conn=%llu refused: %s: %s", (unsigned long long)c->id,
		       gw_token_code((enum gw_token_err)item->status), GW_Q(item->body ? item->body : ""));
		rt_send_error(c, gw_token_code((enum gw_token_err)item->status), item->body ? item->body : "",
			      1);
		gw_outbox_item_free(item);
		return;
	}
	json_t *claims = item->claims;
	const char *sub = json_string_value(json_object_get(claims, "sub"));
	const char *inst = json_string_value(json_object_get(claims, "installation"));
	if (!inst || !*inst) {
		gw_stat_inc(GW_STAT_ws_auth_failed);
		rt_send_error(c, "token_bad_claims",
			      "the subscription token must name the Forge installation in \"installation\"",
			      1);
		gw_outbox_item_free(item);
		return;
	}
	if (c->user && (strcmp(c->user, sub) != 0 || strcmp(c->installation, inst) != 0)) {
		rt_send_error(c, "sub_mismatch", "a refreshed token must name the same user and installation",
			      1);
		gw_outbox_item_free(item);
		return;
	}
	json_t *ctx = json_object_get(claims, "ctx");
	char **allowed = calloc(json_array_size(ctx) + 1, sizeof(*allowed));
	if (!allowed) {
		rt_send_error(c, "internal_error", "out of memory", 1);
		gw_outbox_item_free(item);
		return;
	}
	for (size_t i = 0; i < json_array_size(ctx); i++)
		allowed[i] = strdup(json_string_value(json_array_get(ctx, i)));
	if (c->user) {
		/* Refresh: subscriptions the new token no longer covers are dropped. */
		for (size_t i = 0; i < c->nsubs;) {
			int keep = 0;
			for (size_t k = 0; k < json_array_size(ctx); k++)
				if (allowed[k] && gw_ctx_covers(allowed[k], c->subs[i].ctx))
					keep = 1;
			if (keep) {
				i++;
				continue;
			}
			gw_broker_unsubscribe(app->broker, c->installation, c->user, c->subs[i].ctx, c);
			remove_sub(c, i);
		}
	} else {
		size_t klen = 0;
		char *ukey = user_key(inst, sub, &klen);
		int rc = ukey ? cap_take(&app->rt.ws_per_user, ukey, klen, app->cfg.ws_max_per_user) : -2;
		if (rc) {
			free(ukey);
			for (size_t i = 0; i < json_array_size(ctx); i++)
				free(allowed[i]);
			free(allowed);
			if (rc == -1) {
				gw_stat_inc(GW_STAT_ws_refused_user_cap);
				gw_log(GW_LOG_INFO,
				       "realtime: conn=%llu refused: user has limits.ws_max_per_user connections",
				       (unsigned long long)c->id);
				too_many(c, "user");
			} else {
				rt_send_error(c, "internal_error", "out of memory", 1);
			}
			gw_outbox_item_free(item);
			return;
		}
		c->ukey = ukey;
		c->ukey_len = klen;
		if (c->unauth_counted) { /* authenticated now: no longer holds a pre-auth place */
			cap_give(&app->rt.ws_unauth_per_address, c->addr, strlen(c->addr));
			c->unauth_counted = 0;
		}
		c->user = strdup(sub);
		c->installation = strdup(inst);
	}
	free_allowed(c);
	c->allowed = allowed;
	c->nallowed = json_array_size(ctx);
	/* Verified, so exp is a finite number; clamped (exp: 1e300 is no UB). */
	if (gw_claim_time(json_object_get(claims, "exp"), &c->exp))
		c->exp = 0;
	c->state = RT_READY; /* the sweep closes it at exp */
	rt_send_json(c, json_pack("{s:s, s:s, s:s, s:O, s:I, s:s}", "op", "connected", "installation",
				  c->installation, "sub", c->user, "ctx", ctx, "exp", (json_int_t)c->exp,
				  "epoch", app->store->ops->epoch(app->store)));
	gw_outbox_item_free(item);
	drain_inbound(c);
	rt_rx_throttle(c);
}

void gw_realtime_close_all(struct gw_app *app)
{
	struct gw_strmap *m = &app->rt.conns_by_id;
	for (size_t i = 0; i < m->nbuckets; i++)
		for (struct gw_strmap_entry *e = m->buckets[i]; e; e = e->next) {
			struct gw_conn *c = e->value;
			if (c->close_pending == 2)
				continue; /* its close frame is already out */
			c->close_pending = 0; /* a going-away close overrides a pending one */
			/* Each client its own delay, so a restart does not bring every
			 * client back in the same millisecond (docs/protocol.md). */
			uint32_t spread = (uint32_t)app->cfg.shutdown_reconnect_spread * 1000u;
			char reason[64];
			snprintf(reason, sizeof(reason), "server shutting down; reconnect_ms=%u",
				 spread ? arc4random_uniform(spread) : 0u);
			rt_close_after_flush(c, LWS_CLOSE_STATUS_GOINGAWAY, reason);
		}
}

/* ---- realtime's part of the 1 s sweep (server.c) ------------------------
 *
 * Token expiry, authentication deadlines, idle pings: one pass over all
 * connections a second. lws 4.1.6 keeps per-wsi timers in one sorted list
 * with O(n) insertion, which made every connect cost O(connections) (41% of
 * the CPU while 10,000 clients connected); its own ping ("validity") timers
 * are off for the same reason (server.c). */

void gw_realtime_sweep(struct gw_app *app, time_t now)
{
	time_t ping = app->cfg.ws_ping_interval;
	struct gw_strmap *m = &app->rt.conns_by_id;
	for (size_t i = 0; i < m->nbuckets; i++)
		for (struct gw_strmap_entry *e = m->buckets[i]; e; e = e->next) {
			struct gw_conn *c = e->value;
			if (c->state == RT_CLOSING)
				continue;
			if (c->confirming && c->state == RT_READY)
				confirm_deadlines(c);
			if (c->state != RT_READY && now >= c->auth_deadline) {
				gw_stat_inc(GW_STAT_ws_auth_failed);
				rt_send_error(c, "auth_timeout", "no valid connect frame in time", 1);
			} else if (c->state == RT_READY && now >= c->exp && !c->refreshing) {
				/* (A refresh in flight gets its verdict first.) */
				gw_stat_inc(GW_STAT_ws_token_expired_closed);
				rt_send_error(c, "token_expired",
					      "the subscription token expired; reconnect with a fresh one",
					      1);
			} else if (ping && now - c->last_rx > 2 * ping) {
				/* Silent through a whole ping interval after our ping: the
				 * peer or the path is gone. */
				gw_stat_inc(GW_STAT_ws_idle_closed);
				c->state = RT_CLOSING;
				lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK, LWS_TO_KILL_ASYNC);
			} else if (ping && now - c->last_rx >= ping && !c->ping_due) {
				c->ping_due = 1;
				lws_callback_on_writable(c->wsi);
			}
		}
}

static int path_is_realtime(struct lws *wsi)
{
	char uri[64];
	int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
	if (n <= 0)
		return 0;
	uri[strcspn(uri, "?")] = '\0';
	return !strcmp(uri, "/realtime");
}

static void conn_free(struct gw_conn *c)
{
	unsubscribe_all(c);
	free_allowed(c);
	free(c->user);
	free(c->installation);
	c->user = c->installation = NULL;
	while (c->in_head) {
		struct inbound *f = c->in_head;
		c->in_head = f->next;
		free(f);
	}
	rt_drop_outbound(c);
	while (c->held_head) {
		struct held *h = c->held_head;
		c->held_head = h->next;
		gw_msg_unref(h->msg);
		free(h);
	}
	c->held_tail = NULL;
	c->held_bytes = 0;
	c->replaying = 0;
	c->in_tail = NULL;
	gw_ws_rx_release(&c->rx);
}

int gw_realtime_callback(struct lws *wsi, int reason, void *user, void *in, size_t len)
{
	struct gw_conn *c = user;
	struct gw_app *app = lws_get_protocol(wsi) ? (struct gw_app *)lws_get_protocol(wsi)->user : NULL;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		/* Refuse the upgrade on any other path, and while stopping. */
		if (!app || app->stopping || !path_is_realtime(wsi))
			return 1;
		return 0;
	case LWS_CALLBACK_ESTABLISHED: {
		memset(c, 0, sizeof(*c));
		c->app = app;
		c->wsi = wsi;
		c->id = ++app->next_id;
		c->state = RT_AWAIT_CONNECT;
		char key[17];
		gw_id_key(c->id, key);
		struct gw_strmap_entry *e = gw_strmap_upsert(&app->rt.conns_by_id, key, 16, NULL);
		if (!e)
			return -1;
		e->value = c;
		app->ws_connections++;
		gw_stat_inc(GW_STAT_ws_connections_opened);
		c->last_rx = time(NULL);
		c->auth_deadline = c->last_rx + app->cfg.ws_auth_timeout;
		if (!gw_cors_ws_origin_allowed(app, wsi)) { /* defence in depth: tokens stay the guard */
			gw_stat_inc(GW_STAT_ws_origin_refused);
			rt_send_error(c, "origin_not_allowed",
				      "this page's origin is not in cors.allowed_origins", 1);
			return 0; /* closing: not counted under its address */
		}
		char addr[sizeof(c->addr)];
		if (!lws_get_peer_simple(wsi, addr, sizeof(addr)))
			addr[0] = '\0';
		if (!addr[0])
			return 0; /* no address: nothing to count it under */
		memcpy(c->addr, addr, sizeof(addr));
		int rc = cap_take(&app->rt.ws_per_address, addr, strlen(addr), app->cfg.ws_max_per_address);
		if (!rc) {
			c->addr_counted = 1;
			rc = cap_take(&app->rt.ws_unauth_per_address, addr, strlen(addr),
				      app->cfg.ws_max_unauth_per_address);
			if (!rc)
				c->unauth_counted = 1;
			else if (rc == -1)
				gw_stat_inc(GW_STAT_ws_refused_unauthenticated_cap);
		} else if (rc == -1) {
			gw_stat_inc(GW_STAT_ws_refused_address_cap);
		}
		if (rc == -1)
			too_many(c, "address");
		else if (rc == -2)
			rt_send_error(c, "internal_error", "out of memory", 1);
		return 0;
	}
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		/* The peer answers our close frame (written by hand below, so lws
		 * does not know it went out): nonzero makes lws close without
		 * echoing a second close frame, which browsers take for a protocol
		 * error (chromium reports 1006 and loses code and reason). */
		return c->app && c->close_pending == 2 ? -1 : 0;
	case LWS_CALLBACK_RECEIVE_PONG:
		if (c->app) {
			c->last_rx = time(NULL);
			c->ping_due = 0;
		}
		return 0;
	case LWS_CALLBACK_RECEIVE: {
		if (!c->app || c->state == RT_CLOSING)
			return 0;
		c->last_rx = time(NULL);
		c->ping_due = 0;
		int last = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);
		const char *data = NULL;
		size_t dlen = 0;
		switch (gw_ws_rx_feed(&c->rx, in, len, lws_frame_is_binary(wsi), last,
				      (size_t)app->cfg.ws_max_frame, &data, &dlen)) {
		case GW_WS_RX_MORE: break;
		case GW_WS_RX_FRAME:
			handle_frame(c, data, dlen);
			gw_ws_rx_release(&c->rx);
			rt_rx_throttle(c);
			break;
		case GW_WS_RX_BINARY: rt_send_error(c, "bad_frame", "frames must be JSON text", 1); break;
		case GW_WS_RX_TOO_LARGE:
			rt_send_error(c, "frame_too_large", "a frame exceeded limits.ws_max_frame", 1);
			break;
		case GW_WS_RX_NOMEM: return -1;
		}
		return 0;
	}
	case LWS_CALLBACK_SERVER_WRITEABLE: {
		if (!c->app)
			return 0;
		if (c->ping_due == 1 && !c->close_pending) {
			/* Not empty: lws 4.1.6 does not pass an empty pong to the
			 * protocol callback (ops-ws.c), and the peer echoes this. */
			unsigned char ping[LWS_PRE + 2];
			memcpy(ping + LWS_PRE, "gw", 2);
			c->ping_due = 2;
			gw_stat_inc(GW_STAT_ws_pings_sent);
			if (lws_write(wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 0)
				return -1;
			if (c->out_head)
				lws_callback_on_writable(wsi);
			return 0;
		}
		if (c->replaying && !c->out_head)
			rt_next_pages(c);
		struct outbound *o = c->out_head;
		if (o) {
			c->out_head = o->next;
			if (!c->out_head)
				c->out_tail = NULL;
			c->out_bytes -= rt_frame_cost(o->msg);
			int w = lws_write(wsi, gw_msg_payload(o->msg), o->msg->len, LWS_WRITE_TEXT);
			gw_msg_unref(o->msg);
			free(o);
			if (w < 0)
				return -1;
			if (c->rx_paused)
				rt_rx_throttle(c);
			if (c->replaying)
				rt_next_pages(c);
			if (c->out_head || c->close_pending)
				lws_callback_on_writable(wsi);
			return 0;
		}
		if (c->close_pending == 1) {
			/* Write the close frame ourselves and let the peer's answer end
			 * the connection (lws closes when it arrives; the timeout set in
			 * close_after_flush kills a peer that never answers). Returning
			 * -1 instead takes lws's "close_and_handled" path, which in
			 * Debian's lws build under libuv closes a second time at once
			 * and resets the connection before the frame is read. Opcode 4
			 * is lws's LWS_WRITE_CLOSE, kept out of the public enum
			 * ("handled by lws_close_reason()", lws-write.h). */
			unsigned char buf[LWS_PRE + 2 + sizeof(c->close_reason)];
			size_t rl = strlen(c->close_reason);
			buf[LWS_PRE] = (unsigned char)((unsigned)c->close_status >> 8);
			buf[LWS_PRE + 1] = (unsigned char)((unsigned)c->close_status & 0xff);
			memcpy(buf + LWS_PRE + 2, c->close_reason, rl);
			c->close_pending = 2;
			if (lws_write(wsi, buf + LWS_PRE, 2 + rl, (enum lws_write_protocol)4) < 0)
				return -1;
			return 0;
		}
		return 0;
	}
	case LWS_CALLBACK_CLOSED: {
		if (!c->app)
			return 0;
		char key[17];
		gw_id_key(c->id, key);
		gw_strmap_remove(&app->rt.conns_by_id, key, 16);
		app->ws_connections--;
		if (c->ukey)
			cap_give(&app->rt.ws_per_user, c->ukey, c->ukey_len);
		free(c->ukey);
		c->ukey = NULL;
		if (c->addr_counted)
			cap_give(&app->rt.ws_per_address, c->addr, strlen(c->addr));
		if (c->unauth_counted)
			cap_give(&app->rt.ws_unauth_per_address, c->addr, strlen(c->addr));
		conn_free(c);
		c->app = NULL;
		return 0;
	}
	default: break;
	}
	return 0;
}

/* Cluster mode: this node's broker feed of one shard came back after a
 * loss, so the tabs of that shard's users may have missed notifications:
 * each is closed with 1012 and a spread delay, and resumes with since
 * (docs/protocol.md). A connection with no user yet has no subscription:
 * it subscribes on the feed that is live by then. */
void gw_realtime_resume_shard(struct gw_app *app, size_t shard, size_t nshards)
{
	struct gw_strmap *m = &app->rt.conns_by_id;
	for (size_t i = 0; i < m->nbuckets; i++)
		for (struct gw_strmap_entry *e = m->buckets[i]; e; e = e->next) {
			struct gw_conn *c = e->value;
			if (c->close_pending == 2 || !c->installation || !c->user ||
			    gw_redis_shard_of(c->installation, c->user, nshards) != shard)
				continue;
			c->close_pending = 0;
			uint32_t spread = (uint32_t)app->cfg.shutdown_reconnect_spread * 1000u;
			char reason[64];
			snprintf(reason, sizeof(reason), "resume with since; reconnect_ms=%u",
				 spread ? arc4random_uniform(spread) : 0u);
			gw_stat_inc(GW_STAT_cluster_resume_closes);
			rt_close_after_flush(c, (enum lws_close_status)1012, reason);
		}
}
