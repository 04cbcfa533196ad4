/* realtime_conn.h - internal to the websocket protocol's three files:
 * realtime.c (the lws callback, authentication, caps, subscriptions, frame
 * dispatch, the sweep), realtime_out.c (what a connection sends: the bounded
 * outbound queue, errors, held live frames, delivery) and realtime_store.c
 * (resume pages, inbox, read state through the store). The per-connection
 * state and the functions the files share.
 *
 * Ownership: struct gw_conn is lws's per-session data; it owns its strings,
 * queued inbound frames and one reference per queued gw_msg. The broker and
 * app->rt.conns_by_id only point at it; both forget it in LWS_CALLBACK_CLOSED.
 * Threads: service thread only.
 */
#ifndef GW_REALTIME_CONN_H
#define GW_REALTIME_CONN_H

#include <jansson.h>
#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "msg.h"
#include "store_jobs.h"
#include "ws_frames.h"

struct gw_app;

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
	uint64_t skip; /* live frames of it with seq <= skip were sent by its resume */
	uint64_t after; /* resume under way: the next page starts after this seq */
	int replaying; /* a resume page is being read or waits for the queue to drain */
	int next_due; /* the next page is asked for once the queue is down to a quarter */
	uint64_t gen; /* which resume a page answer belongs to (a re-subscribe starts another) */
	int silent; /* re-reading live frames given up while held (defer_held): no subscribed frame */
	uint64_t drops; /* c->drops when its last page was asked for */
	/* Cluster mode: the broker answered "pending" (broker.h): nothing is
	 * read or acknowledged until gw_conn_subscribed; counted in replaying
	 * meanwhile (live frames held), answered busy after confirm_by_ms. */
	int confirming;
	int want_since; /* the waiting subscribe is a resume from since_epoch / after */
	int64_t confirm_by_ms;
	char since_epoch[GW_STORE_EPOCH_MAX + 1];
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
	int replaying; /* subscriptions whose resume is under way: live frames are held */
	int confirming; /* subscriptions waiting for the broker's confirmation (sub.confirming) */
	struct held *held_head, *held_tail;
	size_t held_bytes;
	uint64_t
		last_live_seq; /* the user's last live seq queued here (a frame reached by two subscriptions goes once) */
	uint64_t dropped_max; /* highest seq of held live frames given up during this resume (0: none) */
	uint64_t
		drops; /* times held live frames were given up (a page asked before the last one may miss some) */
	uint64_t next_gen; /* resume generations */
	struct inbound *in_head, *in_tail;
	size_t in_count;
	time_t auth_deadline; /* until connected: close with auth_timeout after */
	time_t last_rx; /* last frame or pong from the peer */
	int ping_due; /* 1: write a ping next; 2: ping sent, awaiting any answer */
	struct gw_ws_rx rx; /* fragments of the message being received */
	struct outbound *out_head, *out_tail;
	size_t out_bytes; /* charged for every queued frame (frame_cost) */
	int rx_paused; /* reading stopped until the queue drains (replies over half the budget) */
	int refreshing; /* RT_READY with a new token being verified: still delivers */
	char *ukey; /* counted in app->rt.ws_per_user under this key (owned); NULL: not counted */
	size_t ukey_len;
	char addr[48]; /* client address ("": unknown, not counted) */
	int addr_counted; /* counted in app->rt.ws_per_address */
	int unauth_counted; /* counted in app->rt.ws_unauth_per_address (until connected) */
	int close_pending; /* 1: close once the queue is flushed; 2: close frame sent */
	enum lws_close_status close_status;
	char close_reason[64];
};

/* realtime_out.c */
/* What one queued frame is charged against limits.ws_max_pending_bytes. */
size_t rt_frame_cost(const struct gw_msg *msg);
/* Queues a frame (takes a reference); 0, or -1 when the connection was closed as a slow consumer. */
int rt_queue_msg(struct gw_conn *c, struct gw_msg *msg);
void rt_send_json(struct gw_conn *c, json_t *j);
void rt_close_after_flush(struct gw_conn *c, enum lws_close_status status, const char *reason);
void rt_drop_outbound(struct gw_conn *c);
/* Closes the connection as a slow consumer (1008, counted). */
void rt_slow_consumer(struct gw_conn *c);
/* {"op":"error",...}; close: then close the connection once flushed. */
void rt_send_error(struct gw_conn *c, const char *code, const char *message, int close);
/* Stops or resumes reading by what the replies queued to the client weigh. */
void rt_rx_throttle(struct gw_conn *c);
/* Delivers the live frames held while resumes were under way. */
void rt_flush_held(struct gw_conn *c);
/* The subscription of ctx, or -1. */
ssize_t rt_find_sub(struct gw_conn *c, const char *ctx);
void rt_send_subscribed(struct gw_conn *c, const char *ctx, int has_since, int recovered);

/* realtime_store.c */
/* Asks for the next resume pages that are due (the queue has drained). */
void rt_next_pages(struct gw_conn *c);
/* Asks the store for subscription at's next resume page; 0 or -1. */
int rt_request_page(struct gw_conn *c, size_t at);
/* {"op":"inbox"} and {"op":"mark"} / {"op":"mark_all"} (all). */
void rt_op_inbox(struct gw_conn *c, json_t *frame);
void rt_op_mark(struct gw_conn *c, json_t *frame, int all);

#endif
