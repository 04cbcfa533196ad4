/* subscribers.c - the websocket side (subscribers.h): connecting,
 * authenticating, subscribing, and matching each frame to its event.
 *
 * Ownership: see subscribers.h.
 * Threads: the main thread only.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared.h"
#include "subscribers.h"
#include "tokens.h"

struct wconn *g_conns;
int g_nconns;
static int g_next_conn;
static int g_pending; /* handshakes + auth in progress */
long g_ready, g_authed, g_failed;
struct lws_context *g_ctx;
lws_sorted_usec_list_t g_tick;
static uint64_t g_t_ramp0;
uint64_t g_t_ramp_last_auth;

static void start_more(void)
{
	char hostport[80], path[128];
	static const lws_retry_bo_t no_validity_timers = {0};
	while (g_next_conn < g_nconns && g_pending < O.concurrency) {
		struct wconn *c = &g_conns[g_next_conn++];
		struct lws_client_connect_info i;
		char iface[32];
		/* user i's websocket on server i mod nports (a cluster: users connect anywhere) */
		int port = port_of(c->idx);
		snprintf(hostport, sizeof(hostport), "%s:%d", O.host, port);
		memset(&i, 0, sizeof(i));
		i.context = g_ctx;
		i.address = O.host;
		i.port = port;
		if (O.tg == TG_GATEWAY)
			snprintf(path, sizeof(path), "/realtime");
		else if (O.sc == SC_BROADCAST)
			snprintf(path, sizeof(path), "/sub?id=%s-bcast", O.run_id);
		else
			snprintf(path, sizeof(path), "/sub?id=%s-u%d", O.run_id, c->idx);
		i.path = path;
		i.host = hostport;
		i.origin = hostport;
		i.local_protocol_name = "bench";
		i.opaque_user_data = c;
		/* No lws validity (ping) timers: lws 4.1.6 inserts one per
		 * websocket into a sorted list, O(open connections) per connect,
		 * which made the generator, not the server, bound connects/s. */
		i.retry_and_idle_policy = &no_validity_timers;
		if (O.src_addrs > 1) {
			snprintf(iface, sizeof(iface), "127.0.0.%d", 1 + c->idx % O.src_addrs);
			i.iface = iface;
		}
		c->st = WS_CONNECTING;
		c->t_start = now_ns();
		if (!g_t_ramp0)
			g_t_ramp0 = c->t_start;
		g_pending++;
		i.pwsi = &c->wsi;
		if (!lws_client_connect_via_info(&i)) {
			/* the error callback may already have run and counted it */
			if (c->st == WS_CONNECTING) {
				c->st = WS_DEAD;
				g_pending--;
				g_failed++;
			}
		}
	}
}

void tick(lws_sorted_usec_list_t *sul)
{
	start_more();
	lws_sul_schedule(g_ctx, 0, sul, tick, 2 * LWS_US_PER_MS);
}

static void on_message(struct wconn *c, const char *m, size_t n)
{
	uint64_t t = now_ns();
	long seq = -1;
	if (O.tg == TG_GATEWAY) {
		if (n > 22 && !memcmp(m, "{\"op\":\"notification\"", 20)) {
			/* "claims":"<base64url of the claims JSON>" (the proof is not checked) */
			const char *j = memmem(m, n, "\"claims\":\"", 10);
			const char *q = j ? memchr(j + 10, '"', (size_t)(m + n - j - 10)) : NULL;
			char pl[8192];
			if (q && b64url_dec(j + 10, (size_t)(q - j - 10), pl, sizeof(pl)) > 0) {
				const char *tt = strstr(pl, "\"title\":\"B-");
				if (tt)
					seq = strtol(tt + 11, NULL, 10);
				if (!strstr(pl, c->sub_expect))
					atomic_fetch_add(&g_misdelivered, 1);
			}
			g_frame_bytes += (long)n;
		} else if (!memcmp(m, "{\"op\":\"connected\"", 17)) {
			c->st = WS_AUTHED;
			c->t_auth = t;
			g_authed++;
			g_t_ramp_last_auth = t;
			return;
		} else if (!memcmp(m, "{\"op\":\"subscribed\"", 18)) {
			c->st = WS_READY;
			c->t_ready = t;
			g_ready++;
			g_pending--;
			return;
		} else {
			if (atomic_fetch_add(&g_ws_errors, 1) < 5)
				fprintf(stderr, "ws u%d: %.*s\n", c->idx, (int)(n > 200 ? 200 : n), m);
			return;
		}
	} else {
		if (n > 7 && !memcmp(m, "{\"seq\":", 7))
			seq = strtol(m + 7, NULL, 10);
		g_frame_bytes += (long)n;
	}
	if (seq < 0 || seq >= g_ev_cap) {
		atomic_fetch_add(&g_unmatched, 1);
		return;
	}
	struct ev *e = &g_ev[seq];
	uint64_t ts = atomic_load(&e->t_send);
	uint32_t got = atomic_fetch_add(&e->got, 1) + 1;
	atomic_fetch_add(&g_frames, 1);
	if (in_window(t))
		atomic_fetch_add(&g_frames_in_win, 1);
	if (got == (uint32_t)g_fanout && !atomic_load(&e->rejected)) /* a 503 counted it complete */
		atomic_fetch_add(&g_completed, 1);
	else if (got > (uint32_t)g_fanout)
		atomic_fetch_add(&g_dups, 1);
	if (ts && atomic_load(&e->measured))
		lat_add(t > ts ? t - ts : 0);
}

/* Writes the gateway client's next frame: connect (step 0), then subscribe
 * (step 1). Returns -1 when the write failed. */
static int send_step(struct lws *wsi, struct wconn *c)
{
	unsigned char buf[LWS_PRE + 2048];
	char *p = (char *)buf + LWS_PRE;
	int n;
	if (c->step >= 2)
		return 0;
	if (c->step == 0)
		n = snprintf(p, 2048, "{\"op\":\"connect\",\"token\":\"%s\"}", c->token);
	else if (O.sc == SC_BROADCAST)
		n = snprintf(p, 2048, "{\"op\":\"subscribe\",\"ctx\":\"bcast\"}");
	else
		n = snprintf(p, 2048, "{\"op\":\"subscribe\",\"ctx\":\"user:u%d\"}", c->idx);
	if (lws_write(wsi, (unsigned char *)p, (size_t)n, LWS_WRITE_TEXT) < n)
		return -1;
	c->step++;
	return 0;
}

static int cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct wconn *c = (struct wconn *)lws_get_opaque_user_data(wsi);
	(void)user;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		if (!c)
			break;
		c->st = WS_OPEN;
		if (O.tg == TG_GATEWAY) {
			/* connect and subscribe in one go, as web-demo's notify-client.js
			 * does on open (the gateway keeps the order); not one writeable
			 * round each, which cost the generator a loop turn per frame */
			if (send_step(wsi, c) || send_step(wsi, c))
				return -1;
		} else {
			c->st = WS_READY;
			c->t_auth = c->t_ready = now_ns();
			g_t_ramp_last_auth = c->t_auth;
			g_authed++;
			g_ready++;
			g_pending--;
		}
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		if (!c)
			break;
		if (!c->rx_len && lws_is_final_fragment(wsi)) {
			on_message(c, in, len);
			break;
		}
		if (c->rx_len + len + 1 > c->rx_cap) {
			c->rx_cap = (c->rx_len + len + 1) * 2;
			c->rx = realloc(c->rx, c->rx_cap);
			if (!c->rx)
				die("out of memory");
		}
		memcpy(c->rx + c->rx_len, in, len);
		c->rx_len += len;
		if (lws_is_final_fragment(wsi)) {
			on_message(c, c->rx, c->rx_len);
			c->rx_len = 0;
		}
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		if (c && (c->st == WS_CONNECTING || c->st == WS_OPEN || c->st == WS_AUTHED)) {
			if (g_failed < 5)
				fprintf(stderr, "ws u%d: connection error: %s\n", c->idx,
					in ? (const char *)in : "(none)");
			g_pending--;
			g_failed++;
			c->st = WS_DEAD;
		}
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		if (c) {
			if (c->st != WS_READY && c->st != WS_DEAD) {
				g_pending--;
				g_failed++;
			}
			if (c->st == WS_READY && !atomic_load(&g_pub_done))
				atomic_fetch_add(&g_ws_errors, 1);
			c->st = WS_DEAD;
			c->wsi = NULL;
		}
		break;
	default: break;
	}
	return 0;
}

const struct lws_protocols protocols[] = {
	{"bench", cb, 0, 16384, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

/* The websocket client runs lws inside a libuv loop (epoll) by default: with
 * 10,000 subscribers lws's own poll(2) loop scans every socket on each
 * wake-up and made the generator, not the server, the bound at "max". The
 * 2 ms tick (an lws sul, a libuv timer underneath) bounds each turn. */
uv_loop_t g_uv;

void service_for(double seconds, int (*until)(void))
{
	uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);
	while (now_ns() < end) {
		if (until && until())
			return;
		if (O.use_poll)
			lws_service(g_ctx, 0);
		else
			uv_run(&g_uv, UV_RUN_ONCE);
	}
}

int all_settled(void)
{
	return g_next_conn >= g_nconns && g_pending == 0;
}

int all_complete(void)
{
	return atomic_load(&g_pub_done) &&
	       (O.sc == SC_INTAKE || atomic_load(&g_completed) >= atomic_load(&g_sent)) &&
	       atomic_load(&g_accepted) + atomic_load(&g_rejected) >= atomic_load(&g_sent);
}
