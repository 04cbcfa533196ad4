/* subscribers.h - notify-loadgen's websocket side: every subscriber
 * connection in one libwebsockets client context (libuv/epoll by default,
 * lws's poll(2) loop with --event-loop poll), opened --concurrency at a time,
 * authenticated and subscribed; each frame stamped on receipt, matched to
 * its event by sequence number and counted (shared.h).
 *
 * Ownership: g_conns (one per subscriber) and g_ctx are made by main and
 * live until exit; a connection's token and receive buffer are its own.
 * Threads: the main thread only (it runs the lws service).
 */
#ifndef LOADGEN_SUBSCRIBERS_H
#define LOADGEN_SUBSCRIBERS_H

#include <stddef.h>
#include <stdint.h>

#include <libwebsockets.h>
#include <uv.h>

enum wstate { WS_IDLE, WS_CONNECTING, WS_OPEN, WS_AUTHED, WS_READY, WS_DEAD };

struct wconn {
	struct lws *wsi;
	int idx;
	enum wstate st;
	int step; /* frames sent */
	char *token;
	char *rx;
	size_t rx_len, rx_cap;
	uint64_t t_start, t_auth, t_ready;
	char sub_expect[24]; /* "sub":"u<i>" */
};

extern struct wconn *g_conns;
extern int g_nconns;
extern long g_ready, g_authed, g_failed;
extern struct lws_context *g_ctx;
extern lws_sorted_usec_list_t g_tick;
extern uint64_t g_t_ramp_last_auth;
extern const struct lws_protocols protocols[];
extern uv_loop_t g_uv;

/* The 2 ms tick: opens connections up to --concurrency in flight. */
void tick(lws_sorted_usec_list_t *sul);
/* Runs the websocket loop for up to seconds, or until until() is true. */
void service_for(double seconds, int (*until)(void));
/* Every connection tried and none in progress. */
int all_settled(void);
/* The publisher is done and every event answered (and, but for intake, delivered). */
int all_complete(void);

#endif
