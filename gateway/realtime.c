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
 * a per-connection FIFO of shared gw_msg references, bounded in bytes: every
 * queued frame counts; a connection that lets more than
 * limits.ws_max_pending_bytes pile up is closed as a slow consumer (1008), and
 * reading from it stops while replies to its own frames fill half of that
 * (rx_throttle). A frame is written at once when nothing is waiting;
 * otherwise one lws_write per WRITEABLE callback.
 *
 * Connections are counted per client address (all, and those not yet
 * authenticated) from the moment they open, and per (installation, user) once
 * their first token is verified; over a cap: too_many_connections, 1008.
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
#include "broker_redis.h"
#include "realtime.h"
#include "log.h"
#include "stats.h"
#include "store_jobs.h"
#include "gw/b64url.h"
#include "cors.h"
#include "ws_frames.h"

_Static_assert(LWS_PRE <= GW_MSG_HEADROOM, "gw_msg headroom must cover LWS_PRE");

#define MAX_QUEUED_INBOUND 64
/* Stored notifications one resume page carries (the next page is read once
 * the connection's queue has drained to a quarter of its budget). */
#define RESUME_PAGE 200

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

/* One subscription: a context or a pattern the token covers. */
struct sub {
	char *ctx;
	uint64_t skip;    /* live frames of it with seq <= skip were sent by its resume */
	uint64_t after;   /* resume under way: the next page starts after this seq */
	int replaying;    /* a resume page is being read or waits for the queue to drain */
	int next_due;     /* the next page is asked for once the queue is down to a quarter */
	uint64_t gen;     /* which resume a page answer belongs to (a re-subscribe starts another) */
	int silent;       /* re-reading live frames given up while held (defer_held): no subscribed frame */
	uint64_t drops;   /* c->drops when its last page was asked for */
};

struct held {
	struct held *next;
	struct gw_msg *msg;
	char ctx[];
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
	struct sub *subs;
	size_t nsubs;
	int replaying;        /* subscriptions whose resume is under way: live frames are held */
	struct held *held_head, *held_tail;
	size_t held_bytes;
	uint64_t last_live_seq; /* the user's last live seq queued here (a frame reached by two subscriptions goes once) */
	uint64_t dropped_max; /* highest seq of held live frames given up during this resume (0: none) */
	uint64_t drops;       /* times held live frames were given up (a page asked before the last one may miss some) */
	uint64_t next_gen;    /* resume generations */
	struct inbound *in_head, *in_tail;
	size_t in_count;
	time_t auth_deadline; /* until connected: close with auth_timeout after */
	time_t last_rx;       /* last frame or pong from the peer */
	int ping_due;         /* 1: write a ping next; 2: ping sent, awaiting any answer */
	struct gw_ws_rx rx;  /* fragments of the message being received */
	struct outbound *out_head, *out_tail;
	size_t out_bytes;    /* charged for every queued frame (frame_cost) */
	int rx_paused;       /* reading stopped until the queue drains (replies over half the budget) */
	int refreshing;      /* RT_READY with a new token being verified: still delivers */
	char *ukey;          /* counted in app->rt.ws_per_user under this key (owned); NULL: not counted */
	size_t ukey_len;
	char addr[48];       /* client address ("": unknown, not counted) */
	int addr_counted;    /* counted in app->rt.ws_per_address */
	int unauth_counted;  /* counted in app->rt.ws_unauth_per_address (until connected) */
	int close_pending;   /* 1: close once the queue is flushed; 2: close frame sent */
	enum lws_close_status close_status;
	char close_reason[64];
};

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

/* What one queued frame costs this connection: its bytes plus our list node,
 * the frame's header and headroom (charged to every connection it is queued
 * to, which overstates a frame shared by tabs: the bound stays a bound). */
static size_t frame_cost(const struct gw_msg *msg)
{
	return msg->len + sizeof(struct outbound) + sizeof(struct gw_msg) + GW_MSG_HEADROOM;
}

static void slow_consumer(struct gw_conn *c);
static void flush_held(struct gw_conn *c);
static int request_page(struct gw_conn *c, size_t at);
static void send_subscribed(struct gw_conn *c, const char *ctx, int has_since, int recovered);
static ssize_t find_sub(struct gw_conn *c, const char *ctx);
static int copy_allowed(struct gw_conn *c, struct gw_store_req *r);
static int push_store_req(struct gw_conn *c, struct gw_store_req *r);

/* Returns 1 when the frame was written or queued, 0 when it was dropped
 * (socket gone, out of memory, or the byte budget exceeded: then the
 * connection is being closed as a slow consumer). */
static int queue_msg(struct gw_conn *c, struct gw_msg *msg)
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
			return 0;
		}
		return 1;
	}
	/* Every queued frame counts against the budget, whatever its kind:
	 * pongs, acknowledgements and errors as much as notifications. The
	 * slow_consumer error itself is queued after the queue is dropped. */
	if (c->out_bytes + frame_cost(msg) > (size_t)c->app->cfg.ws_max_pending_bytes) {
		if (!c->close_pending)
			slow_consumer(c);
		return 0;
	}
	struct outbound *o = malloc(sizeof(*o));
	if (!o)
		return 0;
	o->next = NULL;
	o->msg = gw_msg_ref(msg);
	if (c->out_tail)
		c->out_tail->next = o;
	else
		c->out_head = o;
	c->out_tail = o;
	c->out_bytes += frame_cost(msg);
	lws_callback_on_writable(c->wsi);
	return 1;
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

/* The connection let more than limits.ws_max_pending_bytes pile up: drop
 * what is queued, say why, close. The client recovers by reconnecting. */
static void slow_consumer(struct gw_conn *c)
{
	gw_stat_inc(GW_STAT_ws_slow_consumer_closed);
	gw_log(GW_LOG_WARN, "realtime: closing slow consumer conn=%llu user=%s (%zu bytes queued)",
	       (unsigned long long)c->id, GW_Q(c->user), c->out_bytes);
	drop_outbound(c);
	close_after_flush(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "slow_consumer");
	send_json(c, json_pack("{s:s, s:s, s:s}", "op", "error", "code", "slow_consumer", "message",
			       "this connection fell too far behind and is closed"));
}

static void send_error(struct gw_conn *c, const char *code, const char *message, int close)
{
	gw_stat_inc(GW_STAT_ws_frames_refused);
	send_json(c, json_pack("{s:s, s:s, s:s}", "op", "error", "code", code, "message", message));
	if (close)
		close_after_flush(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, code);
}

/* Replies (pongs, acknowledgements, errors) are made by the client's own
 * frames: a client that sends but does not read would grow its queue without
 * end. Once the queue holds half the budget we stop reading from it (lws
 * keeps the rest of the current read and stops polling the socket, so TCP
 * pushes back on the sender) and start again when the queue is down to a
 * quarter. Notifications keep the other half; past the whole budget the
 * connection is a slow consumer. */
static void rx_throttle(struct gw_conn *c)
{
	size_t budget = (size_t)c->app->cfg.ws_max_pending_bytes;
	if (!c->rx_paused && c->out_bytes > budget / 2 && c->state != RT_CLOSING) {
		c->rx_paused = 1;
		gw_stat_inc(GW_STAT_ws_rx_paused);
		lws_rx_flow_control(c->wsi, 0);
	} else if (c->rx_paused && (c->out_bytes <= budget / 4 || c->state == RT_CLOSING)) {
		/* Closing: read again so the peer's close frame is seen. */
		c->rx_paused = 0;
		lws_rx_flow_control(c->wsi, 1);
	}
}

static int sub_wants(struct gw_conn *c, const char *ctx, uint64_t seq)
{
	int matched = 0;
	for (size_t i = 0; i < c->nsubs; i++)
		if (gw_store_pattern_match(c->subs[i].ctx, ctx)) {
			matched = 1;
			if (!seq || seq > c->subs[i].skip)
				return 1;
		}
	if (matched)
		gw_stat_inc(GW_STAT_store_live_skipped);
	return 0;
}

static void deliver_now(struct gw_conn *c, struct gw_msg *msg, const char *ctx)
{
	if (!sub_wants(c, ctx, msg->seq))
		return;
	if (queue_msg(c, msg))
		gw_stat_inc(GW_STAT_notifications_delivered);
	else
		gw_stat_inc(GW_STAT_notifications_dropped);
}

static int defer_held(struct gw_conn *c, struct gw_msg *msg);

/* Sends the live frames held during a resume, in order. The replay may have
 * queued more since they were held: those that no longer fit the budget are
 * given up and read again from the store (defer_held), not a slow consumer. */
static void flush_held(struct gw_conn *c)
{
	while (c->held_head) {
		struct held *h = c->held_head;
		if (c->state == RT_READY &&
		    c->out_bytes + frame_cost(h->msg) > (size_t)c->app->cfg.ws_max_pending_bytes &&
		    defer_held(c, NULL))
			return;
		c->held_head = h->next;
		c->held_bytes -= frame_cost(h->msg);
		if (c->state == RT_READY)
			deliver_now(c, h->msg, h->ctx);
		gw_msg_unref(h->msg);
		free(h);
	}
	c->held_tail = NULL;
	c->held_bytes = 0;
	c->dropped_max = 0; /* every resume is out: what was given up has been read again */
}

/* The live frames held during a resume (and msg, if any) would take more than
 * limits.ws_max_pending_bytes. The recorder stores every notification before
 * it is delivered live (recorder.h), so each of them can be read again: they
 * are given up, and the store is read past the highest of them before live
 * frames flow again. Replaying subscriptions page on until a read saw
 * dropped_max (since_done); live ones are put back into a silent replay from
 * before the first frame given up (what they had already been sent is below
 * it, or at most their skip). A reading client is never made a slow consumer
 * by a replay (docs/protocol.md). Returns 0 when this cannot be done (a frame
 * without seq): the caller then closes the connection as a slow consumer. */
static int defer_held(struct gw_conn *c, struct gw_msg *msg)
{
	uint64_t first = msg ? msg->seq : UINT64_MAX, last = msg ? msg->seq : 0;
	if (!first)
		return 0;
	for (struct held *h = c->held_head; h; h = h->next) {
		if (!h->msg->seq)
			return 0;
		if (h->msg->seq < first)
			first = h->msg->seq;
		if (h->msg->seq > last)
			last = h->msg->seq;
	}
	if (!last)
		return 0;
	for (size_t i = 0; i < c->nsubs; i++) {
		struct sub *sb = &c->subs[i];
		if (sb->replaying)
			continue;
		sb->after = sb->skip > first - 1 ? sb->skip : first - 1;
		sb->replaying = 1;
		sb->silent = 1;
		sb->gen = ++c->next_gen;
		sb->next_due = 1; /* asked for by next_pages once the queue has drained */
		c->replaying++;
	}
	while (c->held_head) {
		struct held *h = c->held_head;
		c->held_head = h->next;
		gw_msg_unref(h->msg);
		free(h);
		gw_stat_inc(GW_STAT_store_live_deferred);
	}
	c->held_tail = NULL;
	c->held_bytes = 0;
	if (msg)
		gw_stat_inc(GW_STAT_store_live_deferred);
	if (last > c->dropped_max)
		c->dropped_max = last;
	c->drops++;
	lws_callback_on_writable(c->wsi);
	return 1;
}

void gw_conn_deliver(struct gw_conn *c, struct gw_msg *msg, const char *ctx)
{
	if (c->state != RT_READY) {
		/* Subscribed, but closing: say so in the counters rather than let
		 * the broker's count pass it as delivered. */
		gw_stat_inc(GW_STAT_notifications_dropped);
		return;
	}
	/* A user's live frames come in increasing seq: one at or below the last
	 * reached this connection through another of its subscriptions. */
	if (msg->seq) {
		if (msg->seq <= c->last_live_seq)
			return;
		c->last_live_seq = msg->seq;
	}
	if (!c->replaying) {
		deliver_now(c, msg, ctx);
		return;
	}
	/* A resume is under way: held, counted against the same byte budget;
	 * beyond it, given up and read again from the store (defer_held). */
	size_t cl = strlen(ctx);
	if (c->out_bytes + c->held_bytes + frame_cost(msg) > (size_t)c->app->cfg.ws_max_pending_bytes) {
		if (!defer_held(c, msg)) {
			slow_consumer(c);
			gw_stat_inc(GW_STAT_notifications_dropped);
		}
		return;
	}
	struct held *h = malloc(sizeof(*h) + cl + 1);
	if (!h) {
		gw_stat_inc(GW_STAT_notifications_dropped);
		return;
	}
	h->next = NULL;
	h->msg = gw_msg_ref(msg);
	memcpy(h->ctx, ctx, cl + 1);
	if (c->held_tail)
		c->held_tail->next = h;
	else
		c->held_head = h;
	c->held_tail = h;
	c->held_bytes += frame_cost(msg);
}

/* A stored notification as the frame it was first sent as, byte for byte. */
static struct gw_msg *stored_frame(const struct gw_store_item *it)
{
	static const char head[] = "{\"op\":\"notification\",\"claims\":\"";
	static const char mid[] = "\",\"proof\":";
	size_t cap = sizeof(head) + gw_b64url_encoded_len(it->claims_len) + sizeof(mid) + it->proof_len + 2;
	struct gw_msg *m = gw_msg_new(cap);
	if (!m)
		return NULL;
	char *o = (char *)gw_msg_payload(m), *p = o;
	memcpy(o, head, sizeof(head) - 1);
	o += sizeof(head) - 1;
	o += gw_b64url_encode((const unsigned char *)it->claims, it->claims_len, o);
	memcpy(o, mid, sizeof(mid) - 1);
	o += sizeof(mid) - 1;
	memcpy(o, it->proof, it->proof_len);
	o += it->proof_len;
	*o++ = '}';
	*o = '\0';
	m->len = (size_t)(o - p);
	m->seq = it->seq;
	return m;
}

/* Resume pages due once the queue is down to a quarter of its budget. */
static void next_pages(struct gw_conn *c)
{
	if (c->state != RT_READY || c->out_bytes > (size_t)c->app->cfg.ws_max_pending_bytes / 4)
		return;
	for (size_t i = 0; i < c->nsubs; i++) {
		if (!c->subs[i].replaying || !c->subs[i].next_due)
			continue;
		if (request_page(c, i)) {
			if (c->subs[i].silent) {
				/* Live frames were given up for it: the old answer, the
				 * client resumes on reconnect. */
				slow_consumer(c);
				return;
			}
			/* Cannot read on: what was replayed stands, the rest is the
			 * inbox's (recovered:false); never a silent partial resume. */
			c->subs[i].replaying = 0;
			c->subs[i].skip = 0;
			c->replaying--;
			send_error(c, "busy", "the gateway cannot read the history right now; read the inbox", 0);
			send_subscribed(c, c->subs[i].ctx, 1, 0);
		}
	}
	if (!c->replaying)
		flush_held(c);
}

static void since_done(struct gw_conn *c, struct gw_store_req *r)
{
	ssize_t at = find_sub(c, r->ctx);
	if (at < 0 || !c->subs[at].replaying || c->subs[at].gen != r->gen)
		return; /* unsubscribed meanwhile (perhaps subscribed again: another resume) */
	struct sub *sb = &c->subs[at];
	int ok = r->rc == GW_STORE_OK && r->page.recovered;
	size_t half = (size_t)c->app->cfg.ws_max_pending_bytes / 2;
	if (ok) {
		int more = r->page.more;
		for (size_t i = 0; i < r->page.count; i++) {
			struct gw_msg *m = stored_frame(&r->page.items[i]);
			if (m && c->out_bytes && c->out_bytes + frame_cost(m) > half) {
				/* The rest of this page is read again once the queue drained:
				 * a replay never makes a slow consumer of a reading client. */
				gw_msg_unref(m);
				more = 1;
				break;
			}
			if (!m || !queue_msg(c, m)) {
				gw_msg_unref(m);
				ok = 0; /* out of memory or the connection is being closed */
				break;
			}
			gw_msg_unref(m);
			gw_stat_inc(GW_STAT_store_replayed);
			sb->after = r->page.items[i].seq;
		}
		/* Live frames were given up while held: page on until a read
		 * asked after the last of them saw them (the recorder stores
		 * before it delivers); a read that should have and did not fails. */
		if (ok && !more && r->page.max_seq < c->dropped_max) {
			if (sb->drops == c->drops)
				ok = 0;
			else
				more = 1;
		}
		if (ok && more) {
			/* The next page once the queue has drained to a quarter of its
			 * budget: a long history never makes a slow consumer. */
			sb->next_due = 1;
			lws_callback_on_writable(c->wsi);
			return;
		}
	}
	sb->replaying = 0;
	c->replaying--;
	/* Everything of this subscription up to the store's seq at the read was
	 * in the replay (or had seq <= since.seq): not sent again live. */
	sb->skip = ok ? r->page.max_seq : 0;
	if (sb->silent) {
		sb->silent = 0;
		if (!ok) {
			/* What was given up cannot be read again: the old answer, the
			 * client resumes on reconnect. */
			slow_consumer(c);
			return;
		}
		if (!c->replaying)
			flush_held(c);
		return;
	}
	if (r->rc)
		send_error(c, "store_unavailable", "the history cannot be read right now; read the inbox later", 0);
	send_subscribed(c, sb->ctx, 1, ok);
	if (!c->replaying)
		flush_held(c);
}

/* An inbox item: the claims exactly as signed (base64url, like a live frame)
 * and the proof, so it verifies like one. */
static json_t *inbox_item(const struct gw_store_item *it)
{
	char *b64 = malloc(gw_b64url_encoded_len(it->claims_len) + 1);
	json_t *proof = json_loadb(it->proof, it->proof_len, 0, NULL);
	json_t *j = NULL;
	if (b64 && proof) {
		size_t n = gw_b64url_encode((const unsigned char *)it->claims, it->claims_len, b64);
		b64[n] = '\0';
		j = json_pack("{s:s, s:O, s:b}", "claims", b64, "proof", proof, "read", it->read);
	}
	free(b64);
	json_decref(proof);
	return j;
}

static void inbox_done(struct gw_conn *c, struct gw_store_req *r)
{
	if (r->rc) {
		json_t *e = json_pack("{s:s, s:s, s:s}", "op", "error", "code", "store_unavailable", "message",
				      "the inbox cannot be read right now; try again later");
		if (e && r->id)
			json_object_set(e, "id", r->id);
		send_json(c, e);
		return;
	}
	json_t *items = json_array();
	for (size_t i = 0; items && i < r->page.count; i++)
		json_array_append_new(items, inbox_item(&r->page.items[i]));
	json_t *j = json_pack("{s:s, s:o, s:I, s:b}", "op", "inbox", "items", items, "unread",
			      (json_int_t)r->page.unread, "more", r->page.more);
	if (j && r->id)
		json_object_set(j, "id", r->id);
	send_json(c, j);
}

static int same_patterns(const struct gw_conn *a, const struct gw_conn *b)
{
	if (a->nallowed != b->nallowed)
		return 0;
	for (size_t i = 0; i < a->nallowed; i++) {
		size_t k = 0;
		while (k < b->nallowed && strcmp(a->allowed[i], b->allowed[k]))
			k++;
		if (k == b->nallowed)
			return 0;
	}
	return 1;
}

/* Read state changed: every open connection of the user hears of it (each
 * only of the ids in contexts its own token covers, with its own unread
 * count); when nothing changed only the sender does, with ids []. */
static void marked_done(struct gw_app *app, struct gw_conn *c, struct gw_store_req *r)
{
	if (r->rc) {
		send_error(c, "store_unavailable", "the read state cannot be changed right now; try again later", 0);
		return;
	}
	int read = r->op == GW_SOP_MARK_ALL ? 1 : r->read;
	if (!r->marked.count) {
		send_json(c, json_pack("{s:s, s:[], s:b, s:I}", "op", "marked", "ids", "read", read, "unread",
				       (json_int_t)r->marked.unread));
		return;
	}
	struct gw_strmap *m = &app->rt.conns_by_id;
	for (size_t b = 0; b < m->nbuckets; b++)
		for (struct gw_strmap_entry *e = m->buckets[b]; e; e = e->next) {
			struct gw_conn *o = e->value;
			if (o->state != RT_READY || !o->user || strcmp(o->user, c->user) ||
			    strcmp(o->installation, c->installation))
				continue;
			if (o == c || same_patterns(o, c)) {
				json_t *ids = json_array();
				for (size_t i = 0; ids && i < r->marked.count; i++)
					json_array_append_new(ids, json_string(r->marked.ids[i]));
				send_json(o, json_pack("{s:s, s:o, s:b, s:I}", "op", "marked", "ids", ids, "read", read,
						       "unread", (json_int_t)r->marked.unread));
				continue;
			}
			/* Another token: its own ids and its own count, read on a worker. */
			struct gw_store_req *q = gw_store_req_new(GW_SOP_UNREAD);
			int ok = q && (q->inst = strdup(o->installation)) && (q->user = strdup(o->user)) &&
				 !copy_allowed(o, q) && (q->ids = calloc(r->marked.count, sizeof(char *)));
			for (size_t i = 0; ok && i < r->marked.count; i++)
				if (r->marked.ctxs && /* an engine without contexts: that tab reads its inbox */
				    gw_store_visible((const char *const *)o->allowed, o->nallowed, NULL, r->marked.ctxs[i]) &&
				    !(q->ids[q->nids++] = strdup(r->marked.ids[i])))
					ok = 0;
			if (ok && q->nids) {
				q->read = read;
				push_store_req(o, q);
			} else {
				gw_store_req_free(q);
			}
		}
	/* Cluster mode: the user's tabs on the other nodes (gw_realtime_remote_marked there). */
	if (app->redis_broker)
		gw_broker_redis_publish_marked(app->redis_broker, c->installation, c->user, read, r->marked.ids,
					       r->marked.ctxs, r->marked.count);
}

void gw_realtime_remote_marked(void *ud, const char *inst, const char *user, int read, const char *const *ids,
			       const char *const *ctxs, size_t n)
{
	struct gw_app *app = ud;
	struct gw_strmap *m = &app->rt.conns_by_id;
	for (size_t b = 0; b < m->nbuckets; b++)
		for (struct gw_strmap_entry *e = m->buckets[b]; e; e = e->next) {
			struct gw_conn *o = e->value;
			if (o->state != RT_READY || !o->user || strcmp(o->user, user) || strcmp(o->installation, inst))
				continue;
			/* its own ids and its own unread count, read on a worker */
			struct gw_store_req *q = gw_store_req_new(GW_SOP_UNREAD);
			int ok = q && (q->inst = strdup(o->installation)) && (q->user = strdup(o->user)) &&
				 !copy_allowed(o, q) && (q->ids = calloc(n, sizeof(char *)));
			for (size_t i = 0; ok && i < n; i++)
				if (gw_store_visible((const char *const *)o->allowed, o->nallowed, NULL, ctxs[i]) &&
				    !(q->ids[q->nids++] = strdup(ids[i])))
					ok = 0;
			if (ok && q->nids) {
				q->read = read;
				push_store_req(o, q);
			} else {
				gw_store_req_free(q);
			}
		}
}

static void unread_done(struct gw_conn *c, struct gw_store_req *r)
{
	if (r->rc)
		return; /* that tab learns the count from its next inbox read */
	json_t *ids = json_array();
	for (size_t i = 0; ids && i < r->nids; i++)
		json_array_append_new(ids, json_string(r->ids[i]));
	send_json(c, json_pack("{s:s, s:o, s:b, s:I}", "op", "marked", "ids", ids, "read", r->read, "unread",
			       (json_int_t)r->unread));
}

void gw_realtime_store_done(struct gw_app *app, struct gw_outbox_item *item)
{
	char key[17];
	gw_id_key(item->req_id, key);
	struct gw_conn *c = item->req_id ? gw_strmap_get(&app->rt.conns_by_id, key, 16) : NULL;
	struct gw_store_req *r = item->store_req;
	if (r && r->op == GW_SOP_PURGE) {
		app->purge_running = 0;
		if (r->rc == GW_STORE_OK) {
			gw_stat_add(GW_STAT_store_purged_expired, r->purged.expired);
			gw_stat_add(GW_STAT_store_purged_over_cap, r->purged.over_cap);
			gw_stat_add(GW_STAT_store_keys_expired, r->purged.keys);
			app->purge_more = r->purged.more;
		}
	} else if (c && r && c->state == RT_READY) {
		switch (r->op) {
		case GW_SOP_SINCE:
			since_done(c, r);
			break;
		case GW_SOP_INBOX:
			inbox_done(c, r);
			break;
		case GW_SOP_UNREAD:
			unread_done(c, r);
			break;
		case GW_SOP_MARK:
		case GW_SOP_MARK_ALL:
			marked_done(app, c, r);
			break;
		default:
			break;
		}
		rx_throttle(c);
	}
	gw_outbox_item_free(item);
}

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
	send_json(c, json_pack("{s:s, s:s, s:s}", "op", "error", "code", "too_many_connections", "message", msg));
	close_after_flush(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too_many_connections");
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

static ssize_t find_sub(struct gw_conn *c, const char *ctx)
{
	for (size_t i = 0; i < c->nsubs; i++)
		if (!strcmp(c->subs[i].ctx, ctx))
			return (ssize_t)i;
	return -1;
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
	free(c->subs[at].ctx);
	c->subs[at] = c->subs[--c->nsubs];
	if (!c->replaying)
		flush_held(c);
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
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		      *p == '-'))
			return "\"since.epoch\" must be a string of 1-64 characters [A-Za-z0-9_-]";
	/* jansson reads integers beyond int64 as reals: refused here too */
	if (!json_is_integer(q) || json_integer_value(q) < 0)
		return "\"since.seq\" must be an integer >= 0";
	*epoch = es;
	*seq = (uint64_t)json_integer_value(q);
	return NULL;
}

static void send_subscribed(struct gw_conn *c, const char *ctx, int has_since, int recovered)
{
	if (!has_since) {
		send_json(c, json_pack("{s:s, s:s}", "op", "subscribed", "ctx", ctx));
		return;
	}
	if (recovered)
		gw_stat_inc(GW_STAT_store_resumes);
	else
		gw_stat_inc(GW_STAT_store_resumes_refused);
	send_json(c, json_pack("{s:s, s:s, s:b}", "op", "subscribed", "ctx", ctx, "recovered", recovered));
}

/* Queues a store request for this connection. 0, or -1 (busy, stopping,
 * out of memory: the request is freed). */
static int push_store_req(struct gw_conn *c, struct gw_store_req *r)
{
	struct gw_job *job = gw_job_new(GW_JOB_STORE);
	if (!job) {
		gw_store_req_free(r);
		return -1;
	}
	r->conn_id = c->id;
	job->req_id = c->id;
	job->store_req = r;
	if (gw_workq_push_verify(&c->app->workq, job)) {
		gw_job_free(job);
		return -1;
	}
	return 0;
}

/* Asks for the next resume page of subscription `at`. */
static int request_page(struct gw_conn *c, size_t at)
{
	struct gw_store_req *r = gw_store_req_new(GW_SOP_SINCE);
	if (!r || !(r->inst = strdup(c->installation)) || !(r->user = strdup(c->user)) ||
	    !(r->ctx = strdup(c->subs[at].ctx)) || !(r->pats = calloc(1, sizeof(char *))) ||
	    !(r->pats[0] = strdup(c->subs[at].ctx))) {
		if (r && r->pats)
			r->npats = 1;
		gw_store_req_free(r);
		return -1;
	}
	r->npats = 1;
	r->after = c->subs[at].after;
	r->limit = RESUME_PAGE;
	r->gen = c->subs[at].gen;
	c->subs[at].drops = c->drops;
	c->subs[at].next_due = 0;
	return push_store_req(c, r);
}

static void op_subscribe(struct gw_conn *c, const char *ctx, json_t *frame, int subscribe)
{
	ssize_t at = find_sub(c, ctx);
	if (!subscribe) {
		if (at >= 0) {
			gw_broker_unsubscribe(c->app->broker, c->installation, c->user, ctx, c);
			remove_sub(c, (size_t)at);
		}
		send_json(c, json_pack("{s:s, s:s}", "op", "unsubscribed", "ctx", ctx));
		return;
	}
	json_t *since = json_object_get(frame, "since");
	const char *epoch = NULL;
	uint64_t after = 0;
	if (since) {
		const char *why = since_invalid(since, &epoch, &after);
		if (why) {
			send_error(c, "bad_frame", why, 0);
			return;
		}
	}
	if (!ctx_allowed(c, ctx)) {
		gw_stat_inc(GW_STAT_ws_frames_refused); /* names the ctx: a client tells its subscriptions apart */
		send_json(c, json_pack("{s:s, s:s, s:s, s:s}", "op", "error", "code", "ctx_forbidden", "message",
				       "the subscription token does not cover this context", "ctx", ctx));
		return;
	}
	if (at >= 0 && c->subs[at].replaying) {
		send_error(c, "busy", "a resume of this subscription is under way; subscribe again after it", 0);
		return;
	}
	if (at < 0) {
		if (c->nsubs >= (size_t)c->app->cfg.ws_max_subscriptions) {
			send_error(c, "too_many_subscriptions", "this connection has reached its subscription limit", 0);
			return;
		}
		struct sub *n = realloc(c->subs, (c->nsubs + 1) * sizeof(*n));
		char *copy = strdup(ctx);
		if (!n || !copy || gw_broker_subscribe(c->app->broker, c->installation, c->user, ctx, c)) {
			if (n)
				c->subs = n;
			free(copy);
			send_error(c, "internal_error", "could not subscribe; try again", 0);
			return;
		}
		c->subs = n;
		memset(&c->subs[c->nsubs], 0, sizeof(c->subs[0]));
		c->subs[c->nsubs].ctx = copy;
		at = (ssize_t)c->nsubs++;
	}
	if (!since) {
		send_subscribed(c, ctx, 0, 0);
		return;
	}
	/* Resume. Another epoch: nothing of that store is here to replay. */
	if (strcmp(epoch, c->app->store->ops->epoch(c->app->store)) != 0) {
		c->subs[at].skip = 0;
		send_subscribed(c, ctx, 1, 0);
		return;
	}
	/* Subscribed to the broker first, then the store is read: what is
	 * recorded after the read comes live, and live frames wait (held) until
	 * the replay is out; those the replay already carried are skipped. */
	c->subs[at].after = after;
	c->subs[at].replaying = 1;
	c->subs[at].gen = ++c->next_gen;
	c->replaying++;
	if (request_page(c, (size_t)at)) {
		c->subs[at].replaying = 0;
		c->replaying--;
		send_error(c, "busy", "the gateway cannot read the history right now; subscribe again later", 0);
		send_subscribed(c, ctx, 1, 0);
		if (!c->replaying)
			flush_held(c);
	}
}

/* A copy of the token's patterns into r (the store filters by them). */
static int copy_allowed(struct gw_conn *c, struct gw_store_req *r)
{
	if (!c->nallowed)
		return 0;
	if (!(r->pats = calloc(c->nallowed, sizeof(char *))))
		return -1;
	for (size_t i = 0; i < c->nallowed; i++)
		if (!(r->pats[r->npats++] = strdup(c->allowed[i])))
			return -1;
	return 0;
}

/* Optional "ctx" of inbox / mark_all: a non-empty string (a pattern). */
static int opt_ctx(struct gw_conn *c, json_t *frame, const char **ctx)
{
	json_t *j = json_object_get(frame, "ctx");
	*ctx = NULL;
	if (!j)
		return 0;
	if (!json_is_string(j) || !json_string_length(j)) {
		send_error(c, "bad_frame", "\"ctx\" must be a non-empty string (a context or a pattern)", 0);
		return -1;
	}
	*ctx = json_string_value(j);
	return 0;
}

static void store_request(struct gw_conn *c, struct gw_store_req *r, const char *ctx)
{
	if (!r || !(r->inst = strdup(c->installation)) || !(r->user = strdup(c->user)) || copy_allowed(c, r) ||
	    (ctx && !(r->ctx = strdup(ctx)))) {
		gw_store_req_free(r);
		send_error(c, "internal_error", "out of memory", 0);
		return;
	}
	if (push_store_req(c, r))
		send_error(c, "busy", "the gateway cannot serve this right now; try again later", 0);
}

/* {"op":"inbox","id":any,"limit":50,"before":seq,"ctx":pattern} */
static void op_inbox(struct gw_conn *c, json_t *frame)
{
	json_t *id = json_object_get(frame, "id"), *lim = json_object_get(frame, "limit"),
	       *before = json_object_get(frame, "before");
	const char *ctx;
	if (id && json_dumpb(id, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) > GW_WS_MAX_PING_ID_BYTES) {
		send_error(c, "id_too_large", "an inbox \"id\" must be at most 128 bytes of JSON", 0);
		return;
	}
	if ((lim && !json_is_integer(lim)) || (before && (!json_is_integer(before) || json_integer_value(before) < 0))) {
		send_error(c, "bad_frame", "\"limit\" must be an integer (clamped to 1-200), \"before\" an integer >= 0", 0);
		return;
	}
	if (opt_ctx(c, frame, &ctx))
		return;
	struct gw_store_req *r = gw_store_req_new(GW_SOP_INBOX);
	if (r) {
		json_int_t l = lim ? json_integer_value(lim) : 50;
		r->limit = gw_store_clamp_limit(l < 1 ? 1 : (size_t)l);
		r->before = before ? (uint64_t)json_integer_value(before) : 0;
		r->id = json_incref(id);
	}
	store_request(c, r, ctx);
}

/* {"op":"mark","ids":[...],"read":true} and {"op":"mark_all","ctx":pattern} */
static void op_mark(struct gw_conn *c, json_t *frame, int all)
{
	const char *ctx = NULL;
	if (all) {
		if (!opt_ctx(c, frame, &ctx))
			store_request(c, gw_store_req_new(GW_SOP_MARK_ALL), ctx);
		return;
	}
	json_t *ids = json_object_get(frame, "ids"), *read = json_object_get(frame, "read");
	if (!json_is_array(ids) || (read && !json_is_boolean(read))) {
		send_error(c, "bad_frame", "\"ids\" must be an array of notification ids, \"read\" a boolean", 0);
		return;
	}
	if (json_array_size(ids) > GW_STORE_MARK_MAX_IDS) {
		send_error(c, "too_many_ids", "at most 500 ids per mark", 0);
		return;
	}
	for (size_t i = 0; i < json_array_size(ids); i++)
		if (!json_is_string(json_array_get(ids, i))) {
			send_error(c, "bad_frame", "\"ids\" must be an array of strings", 0);
			return;
		}
	struct gw_store_req *r = gw_store_req_new(GW_SOP_MARK);
	/* never NULL, even for []: the store reads NULL ids as "every note" */
	if (r && !(r->ids = calloc(json_array_size(ids) + 1, sizeof(char *)))) {
		gw_store_req_free(r);
		r = NULL;
	}
	for (size_t i = 0; r && i < json_array_size(ids); i++)
		if (!(r->ids[r->nids++] = strdup(json_string_value(json_array_get(ids, i))))) {
			gw_store_req_free(r);
			r = NULL;
		}
	if (r)
		r->read = read ? json_is_true(read) : 1;
	store_request(c, r, NULL);
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
		if (rc == -1)
			gw_stat_inc(GW_STAT_ws_auth_busy);
		if (c->state == RT_READY) {
			/* A refresh: the current token still holds; the client retries. */
			send_json(c, json_pack("{s:s, s:s, s:s}", "op", "error", "code", rc == -2 ? "stopping" : "busy",
					       "message", "the gateway cannot verify tokens right now; refresh again later"));
			return;
		}
		send_json(c, json_pack("{s:s, s:s, s:s}", "op", "error", "code", rc == -2 ? "stopping" : "busy",
				       "message", "the gateway cannot verify tokens right now; reconnect later"));
		close_after_flush(c, (enum lws_close_status)1013 /* try again later */, "busy");
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
		send_error(c, op.code, op.message, op.close);
		break;
	case GW_WS_OP_CONNECT:
		op_connect(c, op.token);
		break;
	case GW_WS_OP_SUBSCRIBE:
	case GW_WS_OP_UNSUBSCRIBE:
		op_subscribe(c, op.ctx, op.frame, op.kind == GW_WS_OP_SUBSCRIBE);
		break;
	case GW_WS_OP_PING:
		send_json(c, gw_ws_pong(&op));
		break;
	case GW_WS_OP_INBOX:
		op_inbox(c, op.frame);
		break;
	case GW_WS_OP_MARK:
		op_mark(c, op.frame, 0);
		break;
	case GW_WS_OP_MARK_ALL:
		op_mark(c, op.frame, 1);
		break;
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
	if (!c || !(c->state == RT_AUTHENTICATING || (c->state == RT_READY && c->refreshing))) {
		gw_outbox_item_free(item);
		return;
	}
	c->refreshing = 0;
	if (item->status != GW_TOKEN_OK) {
		gw_stat_inc(GW_STAT_ws_auth_failed);
		gw_log(GW_LOG_INFO, "realtime: conn=%llu refused: %s: %s", (unsigned long long)c->id,
		       gw_token_code((enum gw_token_err)item->status), GW_Q(item->body ? item->body : ""));
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
				gw_log(GW_LOG_INFO, "realtime: conn=%llu refused: user has limits.ws_max_per_user connections",
				       (unsigned long long)c->id);
				too_many(c, "user");
			} else {
				send_error(c, "internal_error", "out of memory", 1);
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
	send_json(c, json_pack("{s:s, s:s, s:s, s:O, s:I, s:s}", "op", "connected", "installation",
			       c->installation, "sub", c->user, "ctx", ctx, "exp", (json_int_t)c->exp, "epoch",
			       app->store->ops->epoch(app->store)));
	gw_outbox_item_free(item);
	drain_inbound(c);
	rx_throttle(c);
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
			close_after_flush(c, LWS_CLOSE_STATUS_GOINGAWAY, reason);
		}
}

void gw_realtime_resume_all(struct gw_app *app)
{
	struct gw_strmap *m = &app->rt.conns_by_id;
	for (size_t i = 0; i < m->nbuckets; i++)
		for (struct gw_strmap_entry *e = m->buckets[i]; e; e = e->next) {
			struct gw_conn *c = e->value;
			if (c->close_pending == 2)
				continue;
			c->close_pending = 0;
			uint32_t spread = (uint32_t)app->cfg.shutdown_reconnect_spread * 1000u;
			char reason[64];
			snprintf(reason, sizeof(reason), "resume with since; reconnect_ms=%u",
				 spread ? arc4random_uniform(spread) : 0u);
			gw_stat_inc(GW_STAT_cluster_resume_closes);
			close_after_flush(c, (enum lws_close_status)1012, reason);
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
			} else if (c->state == RT_READY && now >= c->exp && !c->refreshing) {
				/* (A refresh in flight gets its verdict first.) */
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
			send_error(c, "origin_not_allowed", "this page's origin is not in cors.allowed_origins", 1);
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
			send_error(c, "internal_error", "out of memory", 1);
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
		case GW_WS_RX_MORE:
			break;
		case GW_WS_RX_FRAME:
			handle_frame(c, data, dlen);
			gw_ws_rx_release(&c->rx);
			rx_throttle(c);
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
		if (c->replaying && !c->out_head)
			next_pages(c);
		struct outbound *o = c->out_head;
		if (o) {
			c->out_head = o->next;
			if (!c->out_head)
				c->out_tail = NULL;
			c->out_bytes -= frame_cost(o->msg);
			int w = lws_write(wsi, gw_msg_payload(o->msg), o->msg->len, LWS_WRITE_TEXT);
			gw_msg_unref(o->msg);
			free(o);
			if (w < 0)
				return -1;
			if (c->rx_paused)
				rx_throttle(c);
			if (c->replaying)
				next_pages(c);
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
	default:
		break;
	}
	return 0;
}
