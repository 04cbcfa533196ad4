/* notify-loadgen - load generator for notify-gateway and nginx+nchan.
 *
 * One process, two threads:
 *   - the websocket side (main thread): a libwebsockets client context holding
 *     every subscriber connection; it stamps CLOCK_MONOTONIC on frame receipt;
 *   - the publisher (one thread): plain non-blocking HTTP/1.1 keep-alive
 *     connections driven by ppoll; it stamps CLOCK_MONOTONIC right before the
 *     request's write(2).
 * Every event carries a sequence number that comes back in the frame (the
 * issue key in the notification's title, decoded from the frame's base64url
 * "claims" (signatures and proofs are not checked), or
 * "seq" in the nchan message), so each frame is matched to its POST.
 *
 * Scenarios (first argument):
 *   intake     POST as fast as the server answers (closed loop, --http-conns
 *              requests outstanding); counts 2xx answers/s. Gateway: an event
 *              type no rule matches, so this is FIT verification + parsing +
 *              queueing. nchan: publish to channels nobody subscribes to.
 *   targeted   --users connections, user i subscribed to its own context
 *              (gateway "user:u<i>", nchan channel <run>-u<i>); event k goes
 *              to user k % users. --rate R: open loop at R events/s;
 *              --rate 0: closed loop with --window undelivered events at most.
 *   broadcast  --users connections all subscribed to one context; every
 *              event goes to all of them (gateway: one event listing every
 *              user in "watchers" = one claims+proof frame per user, one
 *              batch signature per worker pass; nchan: one publish).
 *   conns      open --users connections, --concurrency handshakes at a time;
 *              each authenticates (gateway: connect frame + "connected") and
 *              subscribes; reports connects/s and, after --settle seconds,
 *              the server's memory per connection (PSS, /proc/PID/smaps_rollup,
 *              summed over PID and its children).
 *
 * Several servers (a cluster: --port P1,P2,... --server-pid A,B,...): the
 * publisher's connections and the websocket users are spread round robin over
 * the ports (connection i and user i on port i mod n), and CPU / memory are
 * summed over the pids; --redis-pid reads a shared store's CPU apart.
 *
 * Output: human-readable lines on stderr, one "RESULT key=value ..." line on
 * stdout. Exit 1 when --expect-exact is given and any event was not delivered
 * exactly the expected number of times (or any error was seen).
 *
 * This file: the command line, the /proc readings of the server under test
 * and the report. Beside it: shared.c (options, counters, latency samples),
 * tokens.c (FITs, subscription tokens, base64url), publisher.c (the
 * publisher thread), subscribers.c (the websocket side).
 */
#include <ctype.h>
#include <dirent.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "publisher.h"
#include "shared.h"
#include "subscribers.h"
#include "tokens.h"

/* ---- /proc ----------------------------------------------------------------- */

static int proc_children(int pid, int *out, int max)
{
	int n = 0;
	if (pid <= 0)
		return 0;
	out[n++] = pid;
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d)) && n < max) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		char p[300], buf[512];
		snprintf(p, sizeof(p), "/proc/%s/stat", e->d_name);
		FILE *f = fopen(p, "r");
		if (!f)
			continue;
		size_t k = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[k] = '\0';
		char *rp = strrchr(buf, ')');
		int ppid = 0;
		if (rp && sscanf(rp + 2, "%*c %d", &ppid) == 1 && ppid == pid)
			out[n++] = atoi(e->d_name);
	}
	if (d)
		closedir(d);
	return n;
}

/* utime+stime in seconds of PID and its direct children (nginx workers). */
static double proc_cpu(int pid)
{
	int pids[64], n = proc_children(pid, pids, 64);
	double total = 0;
	long hz = sysconf(_SC_CLK_TCK);
	for (int i = 0; i < n; i++) {
		char p[64], buf[1024];
		snprintf(p, sizeof(p), "/proc/%d/stat", pids[i]);
		FILE *f = fopen(p, "r");
		if (!f)
			continue;
		size_t k = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[k] = '\0';
		char *rp = strrchr(buf, ')');
		unsigned long ut = 0, st = 0;
		/* fields after ")": state(3) ... utime(14) stime(15) */
		if (rp &&
		    sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
			total += (double)(ut + st) / (double)hz;
	}
	return total;
}

/* The servers under test (--server-pid's list: cluster nodes): CPU and memory summed. */
static double servers_cpu(void)
{
	double t = 0;
	for (int i = 0; i < O.nserver_pids; i++)
		t += proc_cpu(O.server_pids[i]);
	return t;
}

/* Busy CPU seconds of the whole machine (all CPUs, /proc/stat), to show how
 * much CPU went to processes other than the server and the load generator. */
static double machine_busy(void)
{
	FILE *f = fopen("/proc/stat", "r");
	unsigned long long v[10] = {0};
	if (!f)
		return 0;
	int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		       &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
	fclose(f);
	if (n < 8)
		return 0;
	/* user nice system idle iowait irq softirq steal: busy = all but idle and iowait */
	return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

/* Per-thread CPU of PID and its children: tids[] and seconds[]; returns count. */
static int proc_threads(int pid, int *tids, double *secs, int max)
{
	int pids[64], n = proc_children(pid, pids, 64), k = 0;
	long hz = sysconf(_SC_CLK_TCK);
	for (int i = 0; i < n; i++) {
		char dir[64];
		snprintf(dir, sizeof(dir), "/proc/%d/task", pids[i]);
		DIR *d = opendir(dir);
		struct dirent *e;
		while (d && (e = readdir(d)) && k < max) {
			if (!isdigit((unsigned char)e->d_name[0]))
				continue;
			char p[400], buf[1024];
			snprintf(p, sizeof(p), "%s/%s/stat", dir, e->d_name);
			FILE *f = fopen(p, "r");
			if (!f)
				continue;
			size_t m = fread(buf, 1, sizeof(buf) - 1, f);
			fclose(f);
			buf[m] = '\0';
			char *rp = strrchr(buf, ')');
			unsigned long ut = 0, st = 0;
			if (rp && sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
					 &st) == 2) {
				tids[k] = atoi(e->d_name);
				secs[k++] = (double)(ut + st) / (double)hz;
			}
		}
		if (d)
			closedir(d);
	}
	return k;
}

/* "tid:seconds,..." for the window; the first entry is PID's main thread. */
/* The name of thread TID of process PID ("" when unreadable); spaces become '_'. */
static void read_comm(int pid, int tid, char *out, size_t cap)
{
	char p[96];
	snprintf(p, sizeof(p), "/proc/%d/task/%d/comm", pid, tid);
	out[0] = '\0';
	FILE *f = fopen(p, "r");
	if (!f)
		return;
	if (fgets(out, (int)cap, f))
		out[strcspn(out, "\n")] = '\0';
	fclose(f);
	for (char *c = out; *c; c++)
		if (*c == ' ' || *c == ',' || *c == ':')
			*c = '_';
}

static void thread_deltas(int pid, int n0, const int *t0, const double *s0, char *out, size_t cap)
{
	int t1[256];
	double s1[256];
	int n1 = proc_threads(pid, t1, s1, 256);
	size_t o = 0;
	out[0] = '\0';
	char pcomm[32];
	read_comm(pid, pid, pcomm, sizeof(pcomm));
	for (int i = 0; i < n1 && o + 64 < cap; i++) {
		double before = 0;
		for (int j = 0; j < n0; j++)
			if (t0[j] == t1[i])
				before = s0[j];
		/* a thread the server named itself (pthread_setname_np) shows as name/tid */
		char comm[32];
		read_comm(pid, t1[i], comm, sizeof(comm));
		int named = comm[0] && strcmp(comm, pcomm) != 0;
		o += (size_t)snprintf(out + o, cap - o, "%s%s%s%s%d:%.2f", i ? "," : "",
				      t1[i] == pid ? "main" : "", named ? comm : "", named ? "/" : "", t1[i],
				      s1[i] - before);
	}
	if (!o)
		snprintf(out, cap, "-");
}

/* Sum over PID and children of a field of smaps_rollup ("Pss:" / "Rss:"), KiB. */
static long proc_mem_kib(int pid, const char *field)
{
	int pids[64], n = proc_children(pid, pids, 64);
	long total = 0;
	size_t fl = strlen(field);
	for (int i = 0; i < n; i++) {
		char p[64], line[256];
		snprintf(p, sizeof(p), "/proc/%d/smaps_rollup", pids[i]);
		FILE *f = fopen(p, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, field, fl)) {
				total += atol(line + fl);
				break;
			}
		fclose(f);
	}
	return total;
}

static long servers_mem_kib(const char *field)
{
	long t = 0;
	for (int i = 0; i < O.nserver_pids; i++)
		t += proc_mem_kib(O.server_pids[i], field);
	return t;
}

/* Per-thread CPU of every server before the window (thread_deltas after it). */
struct threads_before {
	int n[GW_MAX_NODES];
	int tids[GW_MAX_NODES][256];
	double secs[GW_MAX_NODES][256];
};

static void servers_threads_before(struct threads_before *b)
{
	for (int i = 0; i < O.nserver_pids; i++)
		b->n[i] = proc_threads(O.server_pids[i], b->tids[i], b->secs[i], 256);
}

/* thread_deltas of every server, joined with ','. */
static void servers_thread_deltas(const struct threads_before *b, char *out, size_t cap)
{
	size_t o = 0;
	out[0] = '\0';
	for (int i = 0; i < O.nserver_pids && o + 2 < cap; i++) {
		if (i)
			out[o++] = ',';
		thread_deltas(O.server_pids[i], b->n[i], b->tids[i], b->secs[i], out + o, cap - o);
		o += strlen(out + o);
	}
	if (!o)
		snprintf(out, cap, "-");
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: notify-loadgen intake|targeted|broadcast|conns [options]\n"
		"  --target gateway|nchan   (gateway)\n"
		"  --host H --port P[,P...] server address (127.0.0.1:8080); several ports: HTTP\n"
		"                           connections and websocket users spread round robin\n"
		"  --state-dir DIR          gateway state dir (dev keys)\n"
		"  --server-pid PID[,PID..] process(es) (and children) to read CPU / memory of, summed\n"
		"  --redis-pid PID          a store process whose CPU is reported apart (redis_cpu_s)\n"
		"  --users N                subscriber connections (1000)\n"
		"  --duration S --warmup S  measurement window after a warm-up (15, 3)\n"
		"  --rate R                 open loop events/s; 0 = closed loop (0)\n"
		"  --window W               closed loop: undelivered events in flight (256; broadcast 4)\n"
		"  --events E               stop after E events (smoke)\n"
		"  --http-conns C           publisher keep-alive connections (32)\n"
		"  --concurrency K          websocket handshakes in flight (128)\n"
		"  --src-addrs A            spread websockets over 127.0.0.1..A (1)\n"
		"  --settle S               conns: wait before reading memory (3)\n"
		"  --msg-size B             nchan message padding bytes (700)\n"
		"  --run-id ID              nchan channel prefix (bench)\n"
		"  --expect-exact           exit 1 unless every event was delivered exactly as expected\n"
		"  --event-loop epoll|poll  websocket client loop: libuv/epoll, or lws's poll(2) (epoll)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"target", 1, 0, 't'},	    {"host", 1, 0, 'H'},
		{"port", 1, 0, 'p'},	    {"state-dir", 1, 0, 's'},
		{"server-pid", 1, 0, 'P'},  {"users", 1, 0, 'u'},
		{"duration", 1, 0, 'd'},    {"warmup", 1, 0, 'w'},
		{"rate", 1, 0, 'r'},	    {"window", 1, 0, 'W'},
		{"events", 1, 0, 'e'},	    {"http-conns", 1, 0, 'c'},
		{"concurrency", 1, 0, 'k'}, {"src-addrs", 1, 0, 'a'},
		{"settle", 1, 0, 'S'},	    {"msg-size", 1, 0, 'm'},
		{"run-id", 1, 0, 'i'},	    {"expect-exact", 0, 0, 'x'},
		{"drain", 1, 0, 'D'},	    {"verbose", 0, 0, 'v'},
		{"event-loop", 1, 0, 'L'},  {"redis-pid", 1, 0, 'R'},
		{0, 0, 0, 0},
	};
	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "intake"))
		O.sc = SC_INTAKE;
	else if (!strcmp(argv[1], "targeted"))
		O.sc = SC_TARGETED;
	else if (!strcmp(argv[1], "broadcast"))
		O.sc = SC_BROADCAST;
	else if (!strcmp(argv[1], "conns"))
		O.sc = SC_CONNS;
	else
		usage();
	optind = 2;
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 't':
			if (!strcmp(optarg, "gateway"))
				O.tg = TG_GATEWAY;
			else if (!strcmp(optarg, "nchan"))
				O.tg = TG_NCHAN;
			else
				usage();
			break;
		case 'H': O.host = optarg; break;
		case 'p':
			O.nports = parse_int_list(optarg, O.ports);
			if (!O.nports)
				usage();
			O.port = O.ports[0];
			break;
		case 's': O.state_dir = optarg; break;
		case 'P':
			O.nserver_pids = parse_int_list(optarg, O.server_pids);
			if (!O.nserver_pids)
				usage();
			O.server_pid = O.server_pids[0];
			break;
		case 'R': O.redis_pid = atoi(optarg); break;
		case 'u': O.users = atoi(optarg); break;
		case 'd': O.duration = atof(optarg); break;
		case 'w': O.warmup = atof(optarg); break;
		case 'r': O.rate = atof(optarg); break;
		case 'W': O.window = atoi(optarg); break;
		case 'e': O.max_events = atol(optarg); break;
		case 'c': O.http_conns = atoi(optarg); break;
		case 'k': O.concurrency = atoi(optarg); break;
		case 'a': O.src_addrs = atoi(optarg); break;
		case 'S': O.settle = atof(optarg); break;
		case 'm': O.msg_size = atoi(optarg); break;
		case 'i': O.run_id = optarg; break;
		case 'x': O.expect_exact = 1; break;
		case 'D': O.drain = atof(optarg); break;
		case 'v': O.verbose = 1; break;
		case 'L':
			if (!strcmp(optarg, "poll"))
				O.use_poll = 1;
			else if (strcmp(optarg, "epoll"))
				usage();
			break;
		default: usage();
		}
	}
	if (O.users < 1 || O.http_conns < 1 || O.concurrency < 1)
		usage();
	signal(SIGPIPE, SIG_IGN);
	load_keys();
	if (O.sc == SC_BROADCAST) {
		g_fanout = O.users;
		if (O.window <= 0)
			O.window = 4;
	}
	if (O.tg == TG_NCHAN) {
		g_pad = malloc((size_t)O.msg_size + 1);
		memset(g_pad, 'x', (size_t)O.msg_size);
		g_pad[O.msg_size] = '\0';
	} else if (O.sc == SC_BROADCAST) {
		size_t cap = (size_t)O.users * 12 + 4, o = 0;
		g_watchers = malloc(cap);
		g_watchers[o++] = '[';
		for (int i = 0; i < O.users; i++)
			o += (size_t)snprintf(g_watchers + o, cap - o, "%s\"u%d\"", i ? "," : "", i);
		g_watchers[o++] = ']';
		g_watchers[o] = '\0';
	}
	g_ev_cap = O.max_events > 0 ? O.max_events : 4000000;
	g_ev = calloc((size_t)g_ev_cap, sizeof(*g_ev));
	if (!g_ev)
		die("out of memory");

	/* websocket context and subscribers */
	lws_set_log_level(LLL_ERR, NULL);
	struct lws_context_creation_info ci;
	memset(&ci, 0, sizeof(ci));
	ci.port = CONTEXT_PORT_NO_LISTEN;
	ci.protocols = protocols;
	ci.timeout_secs = 30;
	ci.connect_timeout_secs = 30;
	void *foreign_loops[1] = {&g_uv};
	if (!O.use_poll) {
		if (uv_loop_init(&g_uv))
			die("uv_loop_init failed");
		ci.options |= LWS_SERVER_OPTION_LIBUV;
		ci.foreign_loops = foreign_loops;
	}
	g_ctx = lws_create_context(&ci);
	if (!g_ctx)
		die("lws_create_context failed");
	g_nconns = O.sc == SC_INTAKE ? 0 : O.users;
	g_conns = calloc((size_t)(g_nconns ? g_nconns : 1), sizeof(*g_conns));
	for (int i = 0; i < g_nconns; i++) {
		g_conns[i].idx = i;
		snprintf(g_conns[i].sub_expect, sizeof(g_conns[i].sub_expect), "\"sub\":\"u%d\"", i);
		if (O.tg == TG_GATEWAY)
			g_conns[i].token = mint_sub(i, 6 * 3600);
	}
	double cpu_ramp0 = servers_cpu();
	long pss0 = servers_mem_kib("Pss:"), rss0 = servers_mem_kib("Rss:");
	lws_sul_schedule(g_ctx, 0, &g_tick, tick, 1);
	uint64_t t_ramp_begin = now_ns();
	service_for(600, all_settled);
	uint64_t t_ramp_end = now_ns();
	double cpu_ramp1 = servers_cpu();
	double ramp_s = (double)((g_t_ramp_last_auth ? g_t_ramp_last_auth : t_ramp_end) - t_ramp_begin) / 1e9;
	fprintf(stderr, "%d connections: %ld ready, %ld failed in %.2f s\n", g_nconns, g_ready, g_failed,
		(double)(t_ramp_end - t_ramp_begin) / 1e9);
	if (g_nconns && g_ready < g_nconns && O.expect_exact) {
		fprintf(stderr, "not every subscriber connected\n");
		return 1;
	}
	const char *tgname = O.tg == TG_GATEWAY ? "gateway" : "nchan";
	static const char *const scnames[] = {"intake", "targeted", "broadcast", "conns"};

	if (O.sc == SC_CONNS) {
		uint64_t *cl = malloc(sizeof(uint64_t) * (size_t)g_nconns);
		size_t ncl = 0;
		for (int i = 0; i < g_nconns; i++)
			if (g_conns[i].t_auth)
				cl[ncl++] = g_conns[i].t_auth - g_conns[i].t_start;
		qsort(cl, ncl, sizeof(*cl), cmp_u64);
		service_for(O.settle, NULL);
		long pss1 = servers_mem_kib("Pss:"), rss1 = servers_mem_kib("Rss:");
		double per = g_ready ? (double)(pss1 - pss0) * 1024.0 / (double)g_ready : 0;
		double cps = ramp_s > 0 ? (double)g_authed / ramp_s : 0;
		fprintf(stderr,
			"conns: %.0f authenticated connects/s; PSS %ld -> %ld KiB = %.0f bytes/conn\n", cps,
			pss0, pss1, per);
		printf("RESULT scenario=conns target=%s users=%d ready=%ld failed=%ld connects_per_s=%.0f "
		       "connect_p50_ms=%.2f connect_p99_ms=%.2f pss0_kib=%ld pss1_kib=%ld rss0_kib=%ld rss1_kib=%ld "
		       "bytes_per_conn=%.0f server_cpu_s=%.2f\n",
		       tgname, O.users, g_ready, g_failed, cps, pct(cl, ncl, 50) / 1000,
		       pct(cl, ncl, 99) / 1000, pss0, pss1, rss0, rss1, per, cpu_ramp1 - cpu_ramp0);
		lws_context_destroy(g_ctx);
		return O.expect_exact && g_failed ? 1 : 0;
	}

	/* publishing phase */
	pthread_t th;
	struct rusage ru0, ru1;
	uint64_t t_pub0 = now_ns();
	pthread_create(&th, NULL, publisher, NULL);
	service_for(O.warmup, all_complete);
	double cpu0 = servers_cpu(), busy0 = machine_busy();
	double rcpu0 = O.redis_pid ? proc_cpu(O.redis_pid) : 0;
	static struct threads_before thb;
	servers_threads_before(&thb);
	int lg_t0[8];
	double lg_s0[8];
	int lg_n0 = proc_threads(getpid(), lg_t0, lg_s0, 8);
	getrusage(RUSAGE_SELF, &ru0);
	uint64_t w0 = now_ns();
	atomic_store(&g_win_start, w0);
	service_for(O.duration, all_complete);
	uint64_t w1 = now_ns();
	atomic_store(&g_win_end, w1);
	double cpu1 = servers_cpu(), busy1 = machine_busy();
	double rcpu = O.redis_pid ? proc_cpu(O.redis_pid) - rcpu0 : 0;
	char threads[2048 * GW_MAX_NODES / 4];
	servers_thread_deltas(&thb, threads, sizeof(threads));
	char lgthreads[256];
	thread_deltas(getpid(), lg_n0, lg_t0, lg_s0, lgthreads, sizeof(lgthreads));
	getrusage(RUSAGE_SELF, &ru1);
	atomic_store(&g_stop_pub, 1);
	pthread_join(th, NULL);
	service_for(O.drain, all_complete);
	uint64_t t_end = now_ns();

	double win = (double)(w1 - w0) / 1e9;
	long sent = atomic_load(&g_sent), acc = atomic_load(&g_accepted), rej = atomic_load(&g_rejected);
	long frames = atomic_load(&g_frames), fwin = atomic_load(&g_frames_in_win);
	long awin = atomic_load(&g_accepted_in_win);
	double cpu = cpu1 - cpu0;
	double lg_cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
				 ru0.ru_stime.tv_sec) +
			(double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
				 ru0.ru_stime.tv_usec) /
				1e6;
	/* exactly-once check over every event sent */
	long bad = 0, missing = 0;
	for (long s = 0; s < g_ev_cap; s++) {
		if (!atomic_load(&g_ev[s].t_send))
			continue;
		uint32_t got = atomic_load(&g_ev[s].got);
		if (O.sc == SC_INTAKE)
			continue;
		/* An event answered 503 is not lost (Forge retries it), but the
		 * gateway may have journaled it before the answer (docs/cluster.md):
		 * then it is delivered, and must be delivered fully and once. */
		if (atomic_load(&g_ev[s].rejected) && (got == 0 || got == (uint32_t)g_fanout))
			continue;
		if (got != (uint32_t)g_fanout) {
			bad++;
			if (got < (uint32_t)g_fanout)
				missing += g_fanout - (long)got;
		}
	}
	qsort(g_lat, g_nlat, sizeof(*g_lat), cmp_u64);
	double deliv_rate = fwin / win, acc_rate = awin / win;
	double cpu_per_1k = fwin ? cpu / (double)fwin * 1000.0 * 1000.0 : 0; /* ms per 1000 */
	fprintf(stderr,
		"%s/%s: sent %ld, 2xx %ld, non-2xx %ld, http errors %ld; frames %ld (%ld dup, %ld missing, %ld "
		"misdelivered, %ld unmatched); %ld events not delivered exactly %d times; run %.1f s\n",
		scnames[O.sc], tgname, sent, acc, rej, atomic_load(&g_http_err), frames, atomic_load(&g_dups),
		missing, atomic_load(&g_misdelivered), atomic_load(&g_unmatched), bad, g_fanout,
		(double)(t_end - t_pub0) / 1e9);
	printf("RESULT scenario=%s target=%s users=%d rate=%.0f window=%d window_s=%.2f sent=%ld accepted=%ld "
	       "rejected=%ld http_errors=%ld accepted_per_s=%.0f delivered=%ld delivered_per_s=%.0f "
	       "p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f samples=%zu server_cpu_s=%.2f "
	       "cpu_ms_per_1k=%.1f cpu_us_per_accepted=%.1f loadgen_cpu_s=%.2f dups=%ld missing=%ld bad_events=%ld "
	       "misdelivered=%ld unmatched=%ld ws_errors=%ld avg_frame_bytes=%ld threads=%s loadgen_threads=%s machine_busy_s=%.2f other_cpu_s=%.2f "
	       "servers=%d redis_cpu_s=%.2f\n",
	       scnames[O.sc], tgname, O.users, O.rate, O.window, win, sent, acc, rej,
	       atomic_load(&g_http_err), acc_rate, frames, deliv_rate, pct(g_lat, g_nlat, 50) / 1000,
	       pct(g_lat, g_nlat, 99) / 1000, pct(g_lat, g_nlat, 99.9) / 1000,
	       g_nlat ? (double)g_lat[g_nlat - 1] / 1e6 : 0, g_nlat, cpu, cpu_per_1k,
	       awin ? cpu / (double)awin * 1e6 : 0, lg_cpu, atomic_load(&g_dups), missing, bad,
	       atomic_load(&g_misdelivered), atomic_load(&g_unmatched), atomic_load(&g_ws_errors),
	       frames ? g_frame_bytes / frames : 0, threads, lgthreads, busy1 - busy0,
	       busy1 - busy0 - cpu - lg_cpu - rcpu, O.nserver_pids, rcpu);
	fflush(stdout);
	lws_context_destroy(g_ctx);
	if (O.expect_exact && (bad || rej || atomic_load(&g_http_err) || atomic_load(&g_misdelivered) ||
			       atomic_load(&g_unmatched) || atomic_load(&g_dups) || sent == 0))
		return 1;
	return 0;
}
