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
 * Output: human-readable lines on stderr, one "RESULT key=value ..." line on
 * stdout. Exit 1 when --expect-exact is given and any event was not delivered
 * exactly the expected number of times (or any error was seen).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

enum scenario { SC_INTAKE, SC_TARGETED, SC_BROADCAST, SC_CONNS };
enum target { TG_GATEWAY, TG_NCHAN };

static struct opts {
	enum scenario sc;
	enum target tg;
	const char *host;
	int port;
	const char *state_dir;
	int server_pid;
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
} O = {
	.host = "127.0.0.1", .port = 8080, .users = 1000, .duration = 15, .warmup = 3, .drain = 10,
	.settle = 3, .rate = 0, .window = 0, .http_conns = 32, .concurrency = 128, .src_addrs = 1,
	.msg_size = 700, .run_id = "bench", .max_events = 0,
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "notify-loadgen: %s\n", what);
	exit(2);
}

/* ---- base64url ----------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64url_enc(const unsigned char *in, size_t n, char *out)
{
	size_t o = 0, i;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = B64[v >> 18 & 63];
		out[o++] = B64[v >> 12 & 63];
		out[o++] = B64[v >> 6 & 63];
		out[o++] = B64[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = B64[v >> 18 & 63];
		out[o++] = B64[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = B64[v >> 18 & 63];
		out[o++] = B64[v >> 12 & 63];
		out[o++] = B64[v >> 6 & 63];
	}
	out[o] = '\0';
	return o;
}

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Decodes at most outlen-1 bytes; returns the length or -1. NUL-terminates. */
static long b64url_dec(const char *in, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64val((unsigned char)in[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (char)(acc >> bits & 0xff);
		}
	}
	out[o] = '\0';
	return (long)o;
}

/* ---- tokens ---------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = malloc(65536);
	size_t n = buf ? fread(buf, 1, 65535, f) : 0;
	fclose(f);
	if (!buf)
		return NULL;
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (!p)
		die("out of memory");
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* The development installation: the FIT's app.installationId and the
 * subscription tokens' "installation" claim must agree (docs/protocol.md). */
#define DEV_INSTALLATION "ari:cloud:ecosystem::installation/00000000-0000-4000-8000-000000000001"

/* An RS256 Forge Invocation Token signed with STATE/dev-forge-key.pem. */
static char *mint_fit(EVP_PKEY *pk, long ttl)
{
	static const char hdr[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"notify-gateway-dev-forge\"}";
	unsigned char jti[16];
	char jtihex[33], claims[1024], in[4096], sigb[1024];
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	long now = (long)time(NULL);

	RAND_bytes(jti, sizeof(jti));
	for (int i = 0; i < 16; i++)
		snprintf(jtihex + 2 * i, 3, "%02x", jti[i]);
	snprintf(claims, sizeof(claims),
		 "{\"app\":{\"id\":\"ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000\","
		 "\"installationId\":\"" DEV_INSTALLATION "\","
		 "\"appVersion\":\"1.0.0\",\"environment\":{\"type\":\"DEVELOPMENT\","
		 "\"id\":\"ari:cloud:ecosystem::environment/dev\"},\"module\":{\"type\":\"core:endpoint\","
		 "\"key\":\"notify-gateway-demo\"}},\"iss\":\"forge/invocation-token\","
		 "\"aud\":\"ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000\","
		 "\"iat\":%ld,\"nbf\":%ld,\"exp\":%ld,\"jti\":\"%s\"}",
		 now, now - 5, now + ttl, jtihex);
	size_t o = b64url_enc((const unsigned char *)hdr, strlen(hdr), in);
	in[o++] = '.';
	o += b64url_enc((const unsigned char *)claims, strlen(claims), in + o);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk) != 1 ||
	    EVP_DigestSign(md, sig, &siglen, (const unsigned char *)in, o) != 1)
		die("RS256 signing failed");
	EVP_MD_CTX_free(md);
	b64url_enc(sig, siglen, sigb);
	size_t n = o + 1 + strlen(sigb) + 1;
	char *tok = malloc(n);
	if (!tok)
		die("out of memory");
	snprintf(tok, n, "%.*s.%s", (int)o, in, sigb);
	return tok;
}

static unsigned char *g_secret;
static size_t g_secret_len;

/* HS256 subscription token for user u<i>. */
static char *mint_sub(int i, long ttl)
{
	static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	char claims[256], in[1024], sigb[64];
	unsigned char mac[32];
	unsigned int maclen = sizeof(mac);
	snprintf(claims, sizeof(claims),
		 "{\"installation\":\"" DEV_INSTALLATION "\",\"sub\":\"u%d\",\"ctx\":[\"user:u%d\",\"bcast\"],"
		 "\"exp\":%ld}",
		 i, i, (long)time(NULL) + ttl);
	size_t o = b64url_enc((const unsigned char *)hdr, strlen(hdr), in);
	in[o++] = '.';
	o += b64url_enc((const unsigned char *)claims, strlen(claims), in + o);
	if (!HMAC(EVP_sha256(), g_secret, (int)g_secret_len, (const unsigned char *)in, o, mac, &maclen))
		die("HMAC failed");
	b64url_enc(mac, maclen, sigb);
	size_t n = o + 1 + strlen(sigb) + 1;
	char *tok = malloc(n);
	if (!tok)
		die("out of memory");
	snprintf(tok, n, "%.*s.%s", (int)o, in, sigb);
	return tok;
}

#define NFITS 16
static char *g_fits[NFITS];

static void load_keys(void)
{
	if (O.tg != TG_GATEWAY)
		return;
	if (!O.state_dir)
		die("--state-dir is required with --target gateway");
	char *p = path_join(O.state_dir, "dev-forge-key.pem");
	size_t n;
	char *pem = read_file(p, &n);
	if (!pem)
		die("cannot read STATE/dev-forge-key.pem");
	BIO *bio = BIO_new_mem_buf(pem, (int)n);
	EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (!pk)
		die("STATE/dev-forge-key.pem is not a private key");
	/* Distinct tokens (jti) so that nothing can be cached per token. */
	for (int i = 0; i < NFITS; i++)
		g_fits[i] = mint_fit(pk, 6 * 3600);
	EVP_PKEY_free(pk);
	BIO_free(bio);
	free(pem);
	free(p);
	p = path_join(O.state_dir, "dev-subscriber-secret");
	char *s = read_file(p, &n);
	if (!s)
		die("cannot read STATE/dev-subscriber-secret");
	size_t a = 0, b = n;
	while (a < b && isspace((unsigned char)s[a]))
		a++;
	while (b > a && isspace((unsigned char)s[b - 1]))
		b--;
	g_secret_len = b - a;
	g_secret = malloc(g_secret_len + 1);
	memcpy(g_secret, s + a, g_secret_len);
	free(s);
	free(p);
}

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
		if (rp && sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
			total += (double)(ut + st) / (double)hz;
	}
	return total;
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
			if (rp && sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2) {
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

/* ---- shared state ------------------------------------------------------------ */

struct ev {
	_Atomic uint64_t t_send; /* ns; 0 = not sent */
	_Atomic uint32_t got;    /* frames received for it */
	_Atomic uint8_t measured;
};

static struct ev *g_ev;
static long g_ev_cap;
static _Atomic long g_sent;      /* events written (request fully sent) */
static _Atomic long g_accepted;  /* 2xx answers */
static _Atomic long g_rejected;  /* non-2xx answers */
static _Atomic long g_http_err;  /* connection failures / resets with a request outstanding */
static _Atomic long g_completed; /* events whose every expected frame arrived */
static _Atomic long g_frames;    /* matched frames */
static _Atomic long g_dups;      /* frames beyond the expected count */
static _Atomic long g_misdelivered;
static _Atomic long g_unmatched; /* frames we could not parse */
static _Atomic long g_ws_errors; /* error frames, connection errors */
static _Atomic int g_stop_pub;
static _Atomic int g_pub_done;
static _Atomic uint64_t g_win_start, g_win_end; /* measurement window, ns */
static _Atomic long g_frames_in_win;
static _Atomic long g_accepted_in_win;
static int g_fanout = 1;
static long g_frame_bytes;  /* ws thread only */

/* latency samples (ws thread only) */
static uint64_t *g_lat;
static size_t g_nlat, g_caplat;

static void lat_add(uint64_t v)
{
	if (g_nlat == g_caplat) {
		g_caplat = g_caplat ? g_caplat * 2 : 1 << 16;
		g_lat = realloc(g_lat, g_caplat * sizeof(*g_lat));
		if (!g_lat)
			die("out of memory");
	}
	g_lat[g_nlat++] = v;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p)
{
	if (!n)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return (double)v[i] / 1000.0; /* us */
}

static int in_window(uint64_t t)
{
	uint64_t a = atomic_load(&g_win_start), b = atomic_load(&g_win_end);
	return a && t >= a && (!b || t < b);
}

/* ---- event bodies ------------------------------------------------------------ */

static char *g_watchers; /* gateway broadcast: ["u0",...] */
static char *g_pad;

static int build_request(char *buf, size_t cap, long seq)
{
	char body[16384], path[128];
	int bl = 0;
	int user = (int)(seq % O.users);
	if (O.tg == TG_GATEWAY) {
		switch (O.sc) {
		case SC_INTAKE:
			bl = snprintf(body, sizeof(body),
				      "{\"payload\":{\"eventType\":\"avi:jira:deleted:issue\",\"issue\":{\"key\":\"B-%ld\","
				      "\"fields\":{\"summary\":\"bench\",\"assignee\":{\"accountId\":\"u%d\"}}}}}",
				      seq, user);
			break;
		case SC_TARGETED:
			bl = snprintf(body, sizeof(body),
				      "{\"payload\":{\"eventType\":\"avi:jira:created:issue\",\"issue\":{\"key\":\"B-%ld\","
				      "\"fields\":{\"summary\":\"bench\",\"assignee\":{\"accountId\":\"u%d\"}}}}}",
				      seq, user);
			break;
		default:
			bl = snprintf(body, sizeof(body),
				      "{\"payload\":{\"eventType\":\"avi:jira:updated:issue\",\"issue\":{\"key\":\"B-%ld\","
				      "\"fields\":{\"summary\":\"bench\"}},\"ctx\":\"bcast\",\"watchers\":%s}}",
				      seq, g_watchers);
			break;
		}
		if (bl < 0 || (size_t)bl >= sizeof(body))
			die("event body too large");
		return snprintf(buf, cap,
				"POST /forge/events HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
				"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
				O.host, O.port, g_fits[seq % NFITS], bl, body);
	}
	if (O.sc == SC_BROADCAST)
		snprintf(path, sizeof(path), "/pub?id=%s-bcast", O.run_id);
	else if (O.sc == SC_INTAKE)
		snprintf(path, sizeof(path), "/pub?id=%s-i%d", O.run_id, user);
	else
		snprintf(path, sizeof(path), "/pub?id=%s-u%d", O.run_id, user);
	bl = snprintf(body, sizeof(body), "{\"seq\":%ld,\"pad\":\"%s\"}", seq, g_pad);
	return snprintf(buf, cap,
			"POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
			"Accept: text/plain\r\nContent-Length: %d\r\n\r\n%s",
			path, O.host, O.port, bl, body);
}

/* ---- publisher ------------------------------------------------------------ */

struct hconn {
	int fd;
	int busy;
	char *out;
	size_t out_len, out_off;
	char in[8192];
	size_t in_len;
	long seq;
};

static int tcp_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)O.port)};
	int one = 1;
	inet_pton(AF_INET, O.host, &sa.sin_addr);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Returns 1 when a full response sits in c->in (and consumes it), 0 if more is needed, -1 on garbage. */
static int parse_response(struct hconn *c, int *status)
{
	c->in[c->in_len] = '\0';
	char *end = strstr(c->in, "\r\n\r\n");
	if (!end)
		return c->in_len >= sizeof(c->in) - 1 ? -1 : 0;
	size_t hlen = (size_t)(end - c->in) + 4;
	if (strncmp(c->in, "HTTP/1.", 7) != 0)
		return -1;
	*status = atoi(c->in + 9);
	long clen = -1;
	int chunked = 0;
	for (char *l = strstr(c->in, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n")) {
		if (!strncasecmp(l + 2, "content-length:", 15))
			clen = atol(l + 17);
		else if (!strncasecmp(l + 2, "transfer-encoding:", 18) && strstr(l + 2, "chunked") &&
			 strstr(l + 2, "chunked") < strstr(l + 2, "\r\n"))
			chunked = 1;
	}
	size_t total;
	if (chunked) {
		char *z = strstr(end + 4, "0\r\n\r\n");
		if (!z)
			return 0;
		total = (size_t)(z - c->in) + 5;
	} else {
		if (clen < 0)
			clen = 0;
		total = hlen + (size_t)clen;
		if (c->in_len < total)
			return total >= sizeof(c->in) ? -1 : 0;
	}
	memmove(c->in, c->in + total, c->in_len - total);
	c->in_len -= total;
	return 1;
}

static long next_seq(void)
{
	static long seq;
	return seq < g_ev_cap ? seq++ : -1;
}

static void hconn_reset(struct hconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	if (c->busy)
		atomic_fetch_add(&g_http_err, 1);
	c->busy = 0;
	c->in_len = 0;
	c->fd = tcp_connect();
}

static void *publisher(void *arg)
{
	(void)arg;
	int nc = O.http_conns;
	struct hconn *cs = calloc((size_t)nc, sizeof(*cs));
	struct pollfd *pf = calloc((size_t)nc, sizeof(*pf));
	size_t cap = 65536;
	for (int i = 0; i < nc; i++) {
		cs[i].fd = tcp_connect();
		cs[i].out = malloc(cap);
	}
	uint64_t t0 = now_ns();
	double interval = O.rate > 0 ? 1e9 / O.rate : 0;
	long scheduled = 0; /* open loop: events due so far */
	int closed_loop = O.rate <= 0;
	int window = O.window > 0 ? O.window : (O.sc == SC_INTAKE ? 1 << 30 : 256);

	while (!atomic_load(&g_stop_pub)) {
		uint64_t now = now_ns();
		long due = closed_loop ? 0 : (long)((double)(now - t0) / interval) + 1;
		/* start requests on idle connections */
		for (int i = 0; i < nc; i++) {
			struct hconn *c = &cs[i];
			if (c->busy || c->fd < 0)
				continue;
			if (closed_loop) {
				if (O.sc != SC_INTAKE &&
				    atomic_load(&g_sent) - atomic_load(&g_completed) >= window)
					break;
			} else if (scheduled >= due) {
				break;
			}
			long seq = next_seq();
			if (seq < 0) {
				atomic_store(&g_stop_pub, 1);
				break;
			}
			c->seq = seq;
			c->out_len = (size_t)build_request(c->out, cap, seq);
			c->out_off = 0;
			c->busy = 1;
			scheduled++;
			uint64_t t = now_ns();
			atomic_store(&g_ev[seq].t_send, t);
			atomic_store(&g_ev[seq].measured, (uint8_t)in_window(t));
			ssize_t w = write(c->fd, c->out, c->out_len);
			if (w > 0)
				c->out_off = (size_t)w;
			else if (w < 0 && errno != EAGAIN) {
				hconn_reset(c);
				continue;
			}
			if (c->out_off == c->out_len)
				atomic_fetch_add(&g_sent, 1);
		}
		int timeout_ns = 20 * 1000 * 1000;
		if (!closed_loop) {
			uint64_t next = t0 + (uint64_t)((double)scheduled * interval);
			uint64_t n2 = now_ns();
			timeout_ns = next > n2 ? (int)(next - n2 < 20000000 ? next - n2 : 20000000) : 0;
		}
		for (int i = 0; i < nc; i++) {
			pf[i].fd = cs[i].fd;
			pf[i].events = POLLIN | (cs[i].busy && cs[i].out_off < cs[i].out_len ? POLLOUT : 0);
			pf[i].revents = 0;
		}
		struct timespec ts = {0, timeout_ns};
		if (closed_loop && O.sc != SC_INTAKE)
			ts.tv_nsec = 200000; /* re-check the window often */
		int r = ppoll(pf, (nfds_t)nc, &ts, NULL);
		if (r <= 0)
			continue;
		for (int i = 0; i < nc; i++) {
			struct hconn *c = &cs[i];
			if (!pf[i].revents)
				continue;
			if (pf[i].revents & POLLOUT) {
				ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
				if (w > 0) {
					c->out_off += (size_t)w;
					if (c->out_off == c->out_len)
						atomic_fetch_add(&g_sent, 1);
				}
			}
			if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len);
				if (n <= 0) {
					if (n < 0 && errno == EAGAIN)
						continue;
					hconn_reset(c);
					continue;
				}
				c->in_len += (size_t)n;
				int st, pr;
				while ((pr = parse_response(c, &st)) == 1) {
					if (!c->busy)
						continue;
					c->busy = 0;
					if (st >= 200 && st < 300) {
						atomic_fetch_add(&g_accepted, 1);
						if (in_window(now_ns()))
							atomic_fetch_add(&g_accepted_in_win, 1);
					} else {
						if (atomic_fetch_add(&g_rejected, 1) < 5)
							fprintf(stderr, "publisher: HTTP %d for event %ld\n", st, c->seq);
						/* never delivered: count as complete so the window moves */
						atomic_fetch_add(&g_completed, 1);
					}
				}
				if (pr < 0)
					hconn_reset(c);
			}
		}
	}
	/* Stop sending; collect the answers still outstanding (5 s at most). */
	uint64_t give_up = now_ns() + 5000000000ull;
	for (;;) {
		int busy = 0;
		for (int i = 0; i < nc; i++) {
			pf[i].fd = cs[i].busy ? cs[i].fd : -1;
			pf[i].events = POLLIN;
			pf[i].revents = 0;
			busy += cs[i].busy;
		}
		if (!busy || now_ns() > give_up)
			break;
		struct timespec ts = {0, 10000000};
		if (ppoll(pf, (nfds_t)nc, &ts, NULL) <= 0)
			continue;
		for (int i = 0; i < nc; i++) {
			struct hconn *c = &cs[i];
			if (!pf[i].revents)
				continue;
			ssize_t n = read(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len);
			if (n <= 0) {
				if (!(n < 0 && errno == EAGAIN))
					hconn_reset(c);
				continue;
			}
			c->in_len += (size_t)n;
			int st;
			while (c->busy && parse_response(c, &st) == 1) {
				c->busy = 0;
				if (st >= 200 && st < 300)
					atomic_fetch_add(&g_accepted, 1);
				else {
					atomic_fetch_add(&g_rejected, 1);
					atomic_fetch_add(&g_completed, 1);
				}
			}
		}
	}
	for (int i = 0; i < nc; i++) {
		if (cs[i].fd >= 0)
			close(cs[i].fd);
		free(cs[i].out);
	}
	free(cs);
	free(pf);
	atomic_store(&g_pub_done, 1);
	return NULL;
}

/* ---- websocket side ---------------------------------------------------------- */

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

static struct wconn *g_conns;
static int g_nconns;
static int g_next_conn;
static int g_pending; /* handshakes + auth in progress */
static long g_ready, g_authed, g_failed;
static struct lws_context *g_ctx;
static lws_sorted_usec_list_t g_tick;
static uint64_t g_t_ramp0, g_t_ramp_last_auth;

static void start_more(void)
{
	char hostport[80], path[128];
	snprintf(hostport, sizeof(hostport), "%s:%d", O.host, O.port);
	static const lws_retry_bo_t no_validity_timers = {0};
	while (g_next_conn < g_nconns && g_pending < O.concurrency) {
		struct wconn *c = &g_conns[g_next_conn++];
		struct lws_client_connect_info i;
		char iface[32];
		memset(&i, 0, sizeof(i));
		i.context = g_ctx;
		i.address = O.host;
		i.port = O.port;
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

static void tick(lws_sorted_usec_list_t *sul)
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
	if (got == (uint32_t)g_fanout)
		atomic_fetch_add(&g_completed, 1);
	else if (got > (uint32_t)g_fanout)
		atomic_fetch_add(&g_dups, 1);
	if (ts && atomic_load(&e->measured))
		lat_add(t > ts ? t - ts : 0);
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
			lws_callback_on_writable(wsi);
		} else {
			c->st = WS_READY;
			c->t_auth = c->t_ready = now_ns();
			g_t_ramp_last_auth = c->t_auth;
			g_authed++;
			g_ready++;
			g_pending--;
		}
		break;
	case LWS_CALLBACK_CLIENT_WRITEABLE: {
		unsigned char buf[LWS_PRE + 2048];
		char *p = (char *)buf + LWS_PRE;
		int n;
		if (!c || c->step >= 2)
			break;
		if (c->step == 0)
			n = snprintf(p, 2048, "{\"op\":\"connect\",\"token\":\"%s\"}", c->token);
		else if (O.sc == SC_BROADCAST)
			n = snprintf(p, 2048, "{\"op\":\"subscribe\",\"ctx\":\"bcast\"}");
		else
			n = snprintf(p, 2048, "{\"op\":\"subscribe\",\"ctx\":\"user:u%d\"}", c->idx);
		if (lws_write(wsi, (unsigned char *)p, (size_t)n, LWS_WRITE_TEXT) < n)
			return -1;
		c->step++;
		if (c->step < 2)
			lws_callback_on_writable(wsi);
		break;
	}
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
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{"bench", cb, 0, 16384, 0, NULL, 0},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

/* The websocket client runs lws inside a libuv loop (epoll) by default: with
 * 10,000 subscribers lws's own poll(2) loop scans every socket on each
 * wake-up and made the generator, not the server, the bound at "max". The
 * 2 ms tick (an lws sul, a libuv timer underneath) bounds each turn. */
static uv_loop_t g_uv;

static void service_for(double seconds, int (*until)(void))
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

static int all_settled(void)
{
	return g_next_conn >= g_nconns && g_pending == 0;
}

static int all_complete(void)
{
	return atomic_load(&g_pub_done) &&
	       (O.sc == SC_INTAKE || atomic_load(&g_completed) >= atomic_load(&g_sent)) &&
	       atomic_load(&g_accepted) + atomic_load(&g_rejected) >= atomic_load(&g_sent);
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: notify-loadgen intake|targeted|broadcast|conns [options]\n"
		"  --target gateway|nchan   (gateway)\n"
		"  --host H --port P        server address (127.0.0.1:8080)\n"
		"  --state-dir DIR          gateway state dir (dev keys)\n"
		"  --server-pid PID         process (and children) to read CPU / memory of\n"
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
		{"target", 1, 0, 't'},   {"host", 1, 0, 'H'},        {"port", 1, 0, 'p'},
		{"state-dir", 1, 0, 's'}, {"server-pid", 1, 0, 'P'}, {"users", 1, 0, 'u'},
		{"duration", 1, 0, 'd'}, {"warmup", 1, 0, 'w'},      {"rate", 1, 0, 'r'},
		{"window", 1, 0, 'W'},   {"events", 1, 0, 'e'},      {"http-conns", 1, 0, 'c'},
		{"concurrency", 1, 0, 'k'}, {"src-addrs", 1, 0, 'a'}, {"settle", 1, 0, 'S'},
		{"msg-size", 1, 0, 'm'}, {"run-id", 1, 0, 'i'},      {"expect-exact", 0, 0, 'x'},
		{"drain", 1, 0, 'D'},    {"verbose", 0, 0, 'v'},     {"event-loop", 1, 0, 'L'},
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
		case 'p': O.port = atoi(optarg); break;
		case 's': O.state_dir = optarg; break;
		case 'P': O.server_pid = atoi(optarg); break;
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
	double cpu_ramp0 = proc_cpu(O.server_pid);
	long pss0 = proc_mem_kib(O.server_pid, "Pss:"), rss0 = proc_mem_kib(O.server_pid, "Rss:");
	lws_sul_schedule(g_ctx, 0, &g_tick, tick, 1);
	uint64_t t_ramp_begin = now_ns();
	service_for(600, all_settled);
	uint64_t t_ramp_end = now_ns();
	double cpu_ramp1 = proc_cpu(O.server_pid);
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
		long pss1 = proc_mem_kib(O.server_pid, "Pss:"), rss1 = proc_mem_kib(O.server_pid, "Rss:");
		double per = g_ready ? (double)(pss1 - pss0) * 1024.0 / (double)g_ready : 0;
		double cps = ramp_s > 0 ? (double)g_authed / ramp_s : 0;
		fprintf(stderr, "conns: %.0f authenticated connects/s; PSS %ld -> %ld KiB = %.0f bytes/conn\n", cps,
			pss0, pss1, per);
		printf("RESULT scenario=conns target=%s users=%d ready=%ld failed=%ld connects_per_s=%.0f "
		       "connect_p50_ms=%.2f connect_p99_ms=%.2f pss0_kib=%ld pss1_kib=%ld rss0_kib=%ld rss1_kib=%ld "
		       "bytes_per_conn=%.0f server_cpu_s=%.2f\n",
		       tgname, O.users, g_ready, g_failed, cps, pct(cl, ncl, 50) / 1000, pct(cl, ncl, 99) / 1000,
		       pss0, pss1, rss0, rss1, per, cpu_ramp1 - cpu_ramp0);
		lws_context_destroy(g_ctx);
		return O.expect_exact && g_failed ? 1 : 0;
	}

	/* publishing phase */
	pthread_t th;
	struct rusage ru0, ru1;
	uint64_t t_pub0 = now_ns();
	pthread_create(&th, NULL, publisher, NULL);
	service_for(O.warmup, all_complete);
	double cpu0 = proc_cpu(O.server_pid), busy0 = machine_busy();
	int th_t0[256];
	double th_s0[256];
	int th_n0 = proc_threads(O.server_pid, th_t0, th_s0, 256);
	int lg_t0[8];
	double lg_s0[8];
	int lg_n0 = proc_threads(getpid(), lg_t0, lg_s0, 8);
	getrusage(RUSAGE_SELF, &ru0);
	uint64_t w0 = now_ns();
	atomic_store(&g_win_start, w0);
	service_for(O.duration, all_complete);
	uint64_t w1 = now_ns();
	atomic_store(&g_win_end, w1);
	double cpu1 = proc_cpu(O.server_pid), busy1 = machine_busy();
	char threads[2048];
	thread_deltas(O.server_pid, th_n0, th_t0, th_s0, threads, sizeof(threads));
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
	double lg_cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
			(double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
	/* exactly-once check over every event sent */
	long bad = 0, missing = 0;
	for (long s = 0; s < g_ev_cap; s++) {
		if (!atomic_load(&g_ev[s].t_send))
			continue;
		uint32_t got = atomic_load(&g_ev[s].got);
		if (O.sc == SC_INTAKE)
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
	       "misdelivered=%ld unmatched=%ld ws_errors=%ld avg_frame_bytes=%ld threads=%s loadgen_threads=%s machine_busy_s=%.2f other_cpu_s=%.2f\n",
	       scnames[O.sc], tgname, O.users, O.rate, O.window, win, sent, acc, rej, atomic_load(&g_http_err),
	       acc_rate, frames, deliv_rate, pct(g_lat, g_nlat, 50) / 1000, pct(g_lat, g_nlat, 99) / 1000,
	       pct(g_lat, g_nlat, 99.9) / 1000, g_nlat ? (double)g_lat[g_nlat - 1] / 1e6 : 0, g_nlat, cpu,
	       cpu_per_1k, awin ? cpu / (double)awin * 1e6 : 0, lg_cpu, atomic_load(&g_dups), missing, bad,
	       atomic_load(&g_misdelivered), atomic_load(&g_unmatched), atomic_load(&g_ws_errors),
	       frames ? g_frame_bytes / frames : 0, threads, lgthreads, busy1 - busy0,
	       busy1 - busy0 - cpu - lg_cpu);
	fflush(stdout);
	lws_context_destroy(g_ctx);
	if (O.expect_exact &&
	    (bad || rej || atomic_load(&g_http_err) || atomic_load(&g_misdelivered) || atomic_load(&g_unmatched) ||
	     atomic_load(&g_dups) || sent == 0))
		return 1;
	return 0;
}
