/* shared.h - what notify-loadgen's two threads share: the options, the
 * per-event table (send stamp, frames received), the counters, the
 * measurement window and the latency samples.
 *
 * Ownership: everything here is process-wide and lives until exit; g_ev is
 * allocated by main before either thread starts.
 * Threads: the counters and g_ev are atomics written by both threads; O is
 * written by main before the threads start, read-only afterwards; the
 * latency samples and g_frame_bytes belong to the websocket (main) thread.
 */
#ifndef LOADGEN_SHARED_H
#define LOADGEN_SHARED_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Cluster nodes a run may spread its load over (--port, --server-pid lists). */
#define GW_MAX_NODES 16

enum scenario { SC_INTAKE, SC_TARGETED, SC_BROADCAST, SC_CONNS };
enum target { TG_GATEWAY, TG_NCHAN };

struct opts {
	enum scenario sc;
	enum target tg;
	const char *host;
	int port; /* ports[0] */
	int ports[GW_MAX_NODES]; /* --port P1,P2,...: one server per port (cluster nodes) */
	int nports;
	const char *state_dir;
	int server_pid; /* server_pids[0] */
	int server_pids[GW_MAX_NODES]; /* --server-pid A,B,...: CPU and memory summed */
	int nserver_pids;
	int redis_pid; /* --redis-pid: CPU reported apart (redis_cpu_s) */
	int users;
	double duration, warmup, drain, settle;
	double rate;
	int window;
	int http_conns;
	int concurrency;
	int src_addrs;
	int msg_size;
	const char *run_id;
	long max_events;
	int expect_exact;
	int verbose;
	int use_poll; /* --event-loop poll: lws's poll(2) loop instead of libuv */
};
extern struct opts O;

struct ev {
	_Atomic uint64_t t_send; /* ns; 0 = not sent */
	_Atomic uint32_t got; /* frames received for it */
	_Atomic uint8_t measured;
	_Atomic uint8_t rejected; /* answered non-2xx or never answered: delivered 0 times or fully, never partly or twice */
};

extern struct ev *g_ev;
extern long g_ev_cap;
extern _Atomic long g_sent; /* events written (request fully sent) */
extern _Atomic long g_accepted; /* 2xx answers */
extern _Atomic long g_rejected; /* non-2xx answers */
extern _Atomic long g_http_err; /* connection failures / resets with a request outstanding */
extern _Atomic long g_completed; /* events whose every expected frame arrived */
extern _Atomic long g_frames; /* matched frames */
extern _Atomic long g_dups; /* frames beyond the expected count */
extern _Atomic long g_misdelivered;
extern _Atomic long g_unmatched; /* frames we could not parse */
extern _Atomic long g_ws_errors; /* error frames, connection errors */
extern _Atomic int g_stop_pub;
extern _Atomic int g_pub_done;
extern _Atomic uint64_t g_win_start, g_win_end; /* measurement window, ns */
extern _Atomic long g_frames_in_win;
extern _Atomic long g_accepted_in_win;
extern int g_fanout;
extern long g_frame_bytes; /* ws thread only */

/* latency samples (ws thread only) */
extern uint64_t *g_lat;
extern size_t g_nlat, g_caplat;

/* CLOCK_MONOTONIC in ns. */
uint64_t now_ns(void);
/* Prints "notify-loadgen: what" and exits 2. */
void die(const char *what);
void lat_add(uint64_t v);
int cmp_u64(const void *a, const void *b);
/* The p-th percentile of the sorted ns samples v, in us. */
double pct(const uint64_t *v, size_t n, double p);
/* The server port for connection i: round robin over --port's list. */
int port_of(int i);
/* Parses "A,B,C" into out (at most GW_MAX_NODES positive ints); returns the count, 0 if malformed. */
int parse_int_list(const char *s, int *out);
/* Whether t falls in the measurement window. */
int in_window(uint64_t t);

#endif
