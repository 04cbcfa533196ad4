/* realtime.c - the websocket protocol at /realtime (docs/protocol.md).
 *
 * A connection starts unauthenticated. Its first frame must be
 *   {"op":"connect","token":"<subscription JWT>"}
 * The token is verified by a worker (AUTH job); frames that arrive meanwhile
 * wait in order in a bounded inbound queue, so a client may send connect and
 * its subscribes at once. Then {"op":"subscribe","ctx":...} registers the
 * connection with the broker for (sub, ctx) if the token's ctx list covers it.
 *
 * Outbound frames (notifications, acknowledgements, errors) go through a
 * per-connection FIFO of shared gw_msg references, bounded in bytes: a
 * connection that lets more than limits.ws_max_pending_bytes pile up is closed
 * as a slow consumer (1008). A frame is written at once when nothing is
 * waiting; otherwise one lws_write per WRITEABLE callback.
 *
 * Ownership: struct gw_conn is lws's per-session data; it owns its strings,
 * queued inbound frames and one reference per queued gw_msg. The broker and
 * app->rt.conns_by_id only point at it; both forget it in LWS_CALLBACK_CLOSED.
 * Threads: service thread only.
 */
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "realtime.h"
#include "log.h"
#include "stats.h"
#include "ws_frames.h"

_Static_assert(LWS_PRE <= GW_MSG_HEADROOM, "gw_msg headroom must cover LWS_PRE");

#define MAX_QUEUED_INBOUND 64

enum conn_state { RT_AWAIT_CONNECT, RT_AUTHENTICATING, RT_READY, RT_CLOSING };

struct inbound {
	struct inbound *next;
	size_t len;
	char data[];
};

struct outbound {
	struct outbound *next;
	struct gw_msg *msg;
};

struct gw_conn {
	struct gw_app *app;
	struct lws *wsi;
	uint64_t id;
	enum conn_state state;
	char *installation; /* from the token's "installation" claim */
	char *user;
	char **allowed;
	size_t nallowed;
	time_t exp;
	char **subs;
	size_t nsubs;
	struct inbound *in_head, *in_tail;
	size_t in_count;
	time_t auth_deadline; /* until connected: close with auth_timeout after */
	time_t last_rx;       /* last frame or pong from the peer */
	int ping_due;         /* 1: write a ping next; 2: ping sent, awaiting any answer */
	struct gw_ws_rx rx;  /* fragments of the message being received */
	struct outbound *out_head, *out_tail;
	size_t out_bytes;
	int close_pending;   /* 1: close once the queue is flushed; 2: close frame sent */
	enum lws_close_status close_status;
	char close_reason[64];
};

const size_t gw_conn_size = sizeof(struct gw_conn);

int gw_realtime_state_init(struct gw_realtime_state *r)
{
	return gw_strmap_init(&r->conns_by_id, 1024);
}

void gw_realtime_state_free(struct gw_realtime_state *r)
{
	gw_strmap_free(&r->conns_by_id, NULL);
}

/* ---- outbound ------------------------------------------------------------ */

static void queue_msg(struct gw_conn *c, struct gw_msg *msg)
{
	/* Nothing waiting (ours or lws's): write now. Going through WRITEABLE
	 * costs two epoll_ctl calls and a loop turn per frame under libuv; lws
	 * keeps whatever the socket does not take and flushes it on POLLOUT,
	 * and lws_partial_buffered() sends every later frame through our queue
	 * until then, so at most one frame sits outside the byte bound. */
	if (!c->out_head && !c->close_pending && c->ping_due != 1 && c->state != RT_CLOSING &&
	    !lws_partial_buffered(c->wsi)) {
		if (lws_write(c->wsi, gw_msg_payload(msg), msg->len, LWS_WRITE_TEXT) < 0) {
			/* The socket is gone: let lws close it on its next turn. */
			c->state = RT_CLOSING;
			c->close_pending = 2;
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
		}
		return;
	}
	struct outbound *o = malloc(sizeof(*o));
	if (!o)
		return;
	o->next = NULL;
	o->msg = gw_msg_ref(msg);
	if (c->out_tail)
		c->out_tail->next = o;
	else
		c->out_head = o;
	c->out_tail = o;
	c->out_bytes += msg->len;
	lws_callback_on_writable(c->wsi);
}

static void send_json(struct gw_conn *c, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		return;
	size_t n = strlen(text);
	struct gw_msg *m = gw_msg_new(n);
	if (m) {
		memcpy(gw_msg_payload(m), text, n + 1);
		queue_msg(c, m);
		gw_msg_unref(m);
	}
	free(text);
}

/* Closes the connection once everything queued so far has been written. */
static void close_after_flush(struct gw_conn *c, enum lws_close_status status, const char *reason)
{
	if (c->close_pending)
		return;
	c->close_pending = 1;
	c->state = RT_CLOSING;
	c->close_status = status;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	/* A peer that stops reading would keep us waiting for the flush forever. */
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
	lws_callback_on_writable(c->wsi);
}

static void drop_outbound(struct gw_conn *c)
{
	while (c->out_head) {
		struct outbound *o = c->out_head;
		c->out_head = o->next;
		gw_msg_unref(o->msg);
		free(o);
	}
	c->out_tail = NULL;
	c->out_bytes = 0;
}

static void send_error(struct gw_conn *c, const char *code, const char *message, int close)
{
	gw_stat_inc(GW_STAT_ws_frames_refused);
	send_json(c, json_pack("{s:s, s:s, s:s}", "op", "error", "code", code, "message", message));
	if (close)
		close_after_flush(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, code);
}

void gw_conn_deliver(struct gw_conn *c, struct gw_msg *msg)
{
	if (c->state != RT_READY)
		return;
	if (c->out_bytes + msg->len > (size_t)c->app->cfg.ws_max_pending_bytes) {
		gw_stat_inc(GW_STAT_ws_slow_consumer_closed);
		gw_log(GW_LOG_WARN, "realtime: closing slow consumer conn=%llu user=%s (%zu bytes queued)",
		       (unsigned long long)c->id, c->user, c->out_bytes);
		/* Drop what is queued, say why, close. The client recovers by reconnecting. */
		drop_outbound(c);
		send_json(c, json_pack("{s:s, s:s, s:s}", "op", "error", "code", "slow_consumer", "message",
				       "this connection fell too far behind and is closed"));
		close_after_flush(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "slow_consumer");
		return;
	}
	gw_stat_inc(GW_STAT_notifications_delivered);
	queue_msg(c, msg);
}

/* ---- subscriptions --------------------------------------------------------- */

static int ctx_allowed(struct gw_conn *c, const char *ctx)
{
	for (size_t i = 0; i < c->nallowed; i++)
		if (!strcmp(c->allowed[i], ctx))
			return 1;
	return 0;
}

static ssize_t find_sub(struct gw_conn *c, const char *ctx)
{
	for (size_t i = 0; i < c->nsubs; i++)
		if (!strcmp(c->subs[i], ctx))
			return (ssize_t)i;
	return -1;
}

static void unsubscribe_all(struct gw_conn *c)
{
	for (size_t i = 0; i < c->nsubs; i++) {
		if (c->user)
			gw_broker_unsubscribe(c->app->broker, c->installation, c->user, c->subs[i], c);
		free(c->subs[i]);
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

static void op_subscribe(struct gw_conn *c, const char *ctx, int subscribe)
{
	ssize_t at = find_sub(c, ctx);
	if (!subscribe) {
		if (at >= 0) {
			gw_broker_unsubscribe(c->app->broker, c->installation, c->user, ctx, c);
			free(c->subs[at]);
			c->subs[at] = c->subs[--c->nsubs];
		}
		send_json(c, json_pack("{s:s, s:s}", "op", "unsubscribed", "ctx", ctx));
		return;
	}
	if (!ctx_allowed(c, ctx)) {
		send_error(c, "ctx_forbidden", "the subscription token does not cover this context", 0);
		return;
	}
	if (at < 0) {
		if (c->nsubs >= (size_t)c->app->cfg.ws_max_subscriptions) {
			send_error(c, "too_many_subscriptions", "this connection has reached its subscription limit", 0);
			return;
		}
		char **n = realloc(c->subs, (c->nsubs + 1) * sizeof(*n));
		char *copy = strdup(ctx);
		if (!n || !copy || gw_broker_subscribe(c->app->broker, c->installation, c->user, ctx, c)) {
			if (n)
				c->subs = n;
			free(copy);
			send_error(c, "internal_error", "could not subscribe; try again", 0);
			return;
		}
		c->subs = n;
		c->subs[c->nsubs++] = copy;
	}
	send_json(c, json_pack("{s:s, s:s}", "op", "subscribed", "ctx", ctx));
}

static void op_connect(struct gw_conn *c, const char *token)
{
	struct gw_job *job = gw_job_new(GW_JOB_AUTH);
	if (!job || !(job->token = strdup(token))) {
		gw_job_free(job);
		send_error(c, "internal_error", "out of memory", 1);
		return;
	}
	job->req_id = c->id;
	int rc = gw_workq_push_verify(&c->app->workq, job);
	if (rc) {
		gw_job_free(job);
		send_json(c, json_pack("{s:s, s:s, s:s}", "op", "error", "code", rc == -2 ? "stopping" : "busy",
				       "message", "the gateway cannot verify tokens right now; reconnect later"));
		close_after_flush(c, (enum lws_close_status)1013 /* try again later */, "busy");
		return;
	}
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
		send_error(c, op.code, op.message, op.close);
		break;
	case GW_WS_OP_CONNECT:
		op_connect(c, op.token);
		break;
	case GW_WS_OP_SUBSCRIBE:
	case GW_WS_OP_UNSUBSCRIBE:
		op_subscribe(c, op.ctx, op.kind == GW_WS_OP_SUBSCRIBE);
		break;
	case GW_WS_OP_PING:
		send_json(c, gw_ws_pong(&op));
		break;
	}
	gw_ws_op_clear(&op);
}

/* Runs queued inbound frames until one starts a verification (or none left). */
static void drain_inbound(struct gw_conn *c)
{
	while (c->in_head && c->state == RT_READY) {
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
	if (c->state == RT_AUTHENTICATING) {
		if (c->in_count >= MAX_QUEUED_INBOUND) {
			send_error(c, "too_many_frames", "too many frames sent before the token was verified", 1);
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
	if (!c || c->state != RT_AUTHENTICATING) {
		gw_outbox_item_free(item);
		return;
	}
	if (item->status != GW_TOKEN_OK) {
		gw_stat_inc(GW_STAT_ws_auth_failed);
		gw_log(GW_LOG_INFO, "realtime: conn=%llu refused: %s: %s", (unsigned long long)c->id,
		       gw_token_code((enum gw_token_err)item->status), item->body ? item->body : "");
		send_error(c, gw_token_code((enum gw_token_err)item->status), item->body ? item->body : "", 1);
		gw_outbox_item_free(item);
		return;
	}
	json_t *claims = item->claims;
	const char *sub = json_string_value(json_object_get(claims, "sub"));
	const char *inst = json_string_value(json_object_get(claims, "installation"));
	if (!inst || !*inst) {
		gw_stat_inc(GW_STAT_ws_auth_failed);
		send_error(c, "token_bad_claims",
			   "the subscription token must name the Forge installation in \"installation\"", 1);
		gw_outbox_item_free(item);
		return;
	}
	if (c->user && (strcmp(c->user, sub) != 0 || strcmp(c->installation, inst) != 0)) {
		send_error(c, "sub_mismatch", "a refreshed token must name the same user and installation", 1);
		gw_outbox_item_free(item);
		return;
	}
	json_t *ctx = json_object_get(claims, "ctx");
	char **allowed = calloc(json_array_size(ctx) + 1, sizeof(*allowed));
	if (!allowed) {
		send_error(c, "internal_error", "out of memory", 1);
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
				if (allowed[k] && !strcmp(allowed[k], c->subs[i]))
					keep = 1;
			if (keep) {
				i++;
				continue;
			}
			gw_broker_unsubscribe(app->broker, c->installation, c->user, c->subs[i], c);
			free(c->subs[i]);
			c->subs[i] = c->subs[--c->nsubs];
		}
	} else {
		c->user = strdup(sub);
		c->installation = strdup(inst);
	}
	free_allowed(c);
	c->allowed = allowed;
	c->nallowed = json_array_size(ctx);
	c->exp = (time_t)json_integer_value(json_object_get(claims, "exp"));
	if (!json_is_integer(json_object_get(claims, "exp")))
		c->exp = (time_t)json_number_value(json_object_get(claims, "exp"));
	c->state = RT_READY; /* the sweep closes it at exp */
	send_json(c, json_pack("{s:s, s:s, s:s, s:O, s:I}", "op", "connected", "installation",
			       c->installation, "sub", c->user, "ctx", ctx, "exp", (json_int_t)c->exp));
	gw_outbox_item_free(item);
	drain_inbound(c);
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
			close_after_flush(c, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
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
			if (c->state != RT_READY && now >= c->auth_deadline) {
				gw_stat_inc(GW_STAT_ws_auth_failed);
				send_error(c, "auth_timeout", "no valid connect frame in time", 1);
			} else if (c->state == RT_READY && now >= c->exp) {
				gw_stat_inc(GW_STAT_ws_token_expired_closed);
				send_error(c, "token_expired",
					   "the subscription token expired; reconnect with a fresh one", 1);
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
	drop_outbound(c);
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
		return 0;
	}
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
		case GW_WS_RX_MORE:
			break;
		case GW_WS_RX_FRAME:
			handle_frame(c, data, dlen);
			gw_ws_rx_release(&c->rx);
			break;
		case GW_WS_RX_BINARY:
			send_error(c, "bad_frame", "frames must be JSON text", 1);
			break;
		case GW_WS_RX_TOO_LARGE:
			send_error(c, "frame_too_large", "a frame exceeded limits.ws_max_frame", 1);
			break;
		case GW_WS_RX_NOMEM:
			return -1;
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
		struct outbound *o = c->out_head;
		if (o) {
			c->out_head = o->next;
			if (!c->out_head)
				c->out_tail = NULL;
			c->out_bytes -= o->msg->len;
			int w = lws_write(wsi, gw_msg_payload(o->msg), o->msg->len, LWS_WRITE_TEXT);
			gw_msg_unref(o->msg);
			free(o);
			if (w < 0)
				return -1;
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
		conn_free(c);
		c->app = NULL;
		return 0;
	}
	default:
		break;
	}
	return 0;
}
