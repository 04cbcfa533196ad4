/* shared.c - notify-loadgen's shared state and small helpers (shared.h):
 * the options with their defaults, the counters, the latency samples.
 *
 * Ownership: process-wide, until exit.
 * Threads: see shared.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "shared.h"

struct opts O = {
	.host = "127.0.0.1",
	.port = 8080,
	.users = 1000,
	.duration = 15,
	.warmup = 3,
	.drain = 10,
	.settle = 3,
	.rate = 0,
	.window = 0,
	.http_conns = 32,
	.concurrency = 128,
	.src_addrs = 1,
	.msg_size = 700,
	.run_id = "bench",
	.max_events = 0,
};

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void die(const char *what)
{
	fprintf(stderr, "notify-loadgen: %s\n", what);
	exit(2);
}

struct ev *g_ev;
long g_ev_cap;
_Atomic long g_sent; /* events written (request fully sent) */
_Atomic long g_accepted; /* 2xx answers */
_Atomic long g_rejected; /* non-2xx answers */
_Atomic long g_http_err; /* connection failures / resets with a request outstanding */
_Atomic long g_completed; /* events whose every expected frame arrived */
_Atomic long g_frames; /* matched frames */
_Atomic long g_dups; /* frames beyond the expected count */
_Atomic long g_misdelivered;
_Atomic long g_unmatched; /* frames we could not parse */
_Atomic long g_ws_errors; /* error frames, connection errors */
_Atomic int g_stop_pub;
_Atomic int g_pub_done;
_Atomic uint64_t g_win_start, g_win_end; /* measurement window, ns */
_Atomic long g_frames_in_win;
_Atomic long g_accepted_in_win;
int g_fanout = 1;
long g_frame_bytes; /* ws thread only */

/* latency samples (ws thread only) */
uint64_t *g_lat;
size_t g_nlat, g_caplat;

void lat_add(uint64_t v)
{
	if (g_nlat == g_caplat) {
		g_caplat = g_caplat ? g_caplat * 2 : 1 << 16;
		g_lat = realloc(g_lat, g_caplat * sizeof(*g_lat));
		if (!g_lat)
			die("out of memory");
	}
	g_lat[g_nlat++] = v;
}

int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

double pct(const uint64_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return (double)v[i] / 1000.0; /* us */
}

int port_of(int i)
{
	return O.nports > 1 ? O.ports[i % O.nports] : O.port;
}

int parse_int_list(const char *s, int *out)
{
	int n = 0;
	while (*s) {
		char *end;
		long v = strtol(s, &end, 10);
		if (end == s || v <= 0 || v > 0x7fffffff || n == GW_MAX_NODES || (*end && *end != ','))
			return 0;
		out[n++] = (int)v;
		s = *end ? end + 1 : end;
	}
	return n;
}

int in_window(uint64_t t)
{
	uint64_t a = atomic_load(&g_win_start), b = atomic_load(&g_win_end);
	return a && t >= a && (!b || t < b);
}
