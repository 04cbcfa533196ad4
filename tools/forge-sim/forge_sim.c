/* forge_sim.c - plays Forge's part in front of a Forge remote (notify-gateway).
 *
 *   forge-sim keys     --dir DIR [--kid KID] [--force]
 *   forge-sim send     [common options] EVENT.json...
 *   forge-sim schedule [common options] --interval fiveMinute|hour|day|week
 *   forge-sim fit      [common options]
 *   forge-sim ui       [common options] --principal ACCOUNT [--issue KEY | --content ID | --context JSON]
 *
 * What it imitates (Atlassian's Forge remote documentation:
 * developer.atlassian.com/platform/forge/remote/essentials/,
 * .../remote/sending-product-events/, .../remote/scheduled-triggers/,
 * .../events-reference/life-cycle/):
 *  - the remote envelope {"payload": <event>} POSTed to baseUrl + route;
 *  - a Forge Invocation Token per attempt (RS256, kid, iss
 *    forge/invocation-token, aud = app ARI, 25 s lifetime, app{...} claims),
 *    signed with the simulator's own RSA key whose JWKS it writes;
 *  - x-b3-traceid (one per event, kept across attempts), x-b3-spanid (one per
 *    attempt), optional x-forge-oauth-system (an opaque HS256 JWT with exp);
 *  - the retry policy: 5 s timeout, up to 4 retries 60 s apart on a non-2xx
 *    answer (3xx are not followed), a timeout or a network error, with
 *    payload.retryContext = {retryCount, retryReason, retryData: null};
 *  - scheduled triggers fired every --every, --count times;
 *  - UI invocations (invokeRemote from @forge/bridge, §2.2): a FIT with
 *    `principal` (the user) and `context` (cloudId, siteUrl, moduleKey,
 *    localId, extension{type, issue|content...}), app.module of the UI
 *    module; one POST, no retries (UI invocations are not retried).
 *
 * Output: one line per attempt and one final line per delivery on stdout
 * (line buffered, so a test can follow it); usage errors on stderr.
 * Exit: 0 every delivery succeeded, 1 some did not, 2 usage error.
 *
 * Plain HTTP/1.1 over POSIX sockets (no TLS): the simulator talks to a local
 * gateway. Single-threaded: attempts are sent one at a time, in the order
 * they fall due.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#define SIM_VERSION "0.1.0"
#define KEY_FILE "forge-sim-key.pem"
#define JWKS_FILE "jwks.json"
#define DEV_APP_ID "ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000"
#define DEV_INSTALLATION "ari:cloud:ecosystem::installation/00000000-0000-4000-8000-000000000001"
#define DEF_CLOUD_ID "5a2e1f3c-7b8d-4e9f-a0b1-c2d3e4f5a6b7"
#define DEF_ENV_ID "aa911f10-c54b-4b93-9e27-dd2947840b9e"
#define MAX_ANSWER (64 * 1024)
#define MAX_HEADERS 32

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static volatile sig_atomic_t g_stop;

static void on_sigint(int sig)
{
	(void)sig;
	g_stop = 1;
}

/* ---------------------------------------------------------------- helpers */

static const char *g_cmd = "forge-sim";

__attribute__((format(printf, 1, 2), noreturn)) static void usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", g_cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'forge-sim --help'.\n");
	exit(EXIT_USAGE);
}

__attribute__((format(printf, 1, 2), noreturn)) static void fatal(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", g_cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_FAILED);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		fatal("out of memory");
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		fatal("out of memory");
	return p;
}

__attribute__((format(printf, 1, 2))) static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("out of memory");
	return p;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_msf(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int64_t wall_s(void)
{
	return (int64_t)time(NULL);
}

/* Sleeps until the monotonic time `until` (ms) or until SIGINT. */
static void sleep_until(int64_t until)
{
	for (;;) {
		int64_t left = until - mono_ms();
		if (left <= 0 || g_stop)
			return;
		if (left > 200)
			left = 200;
		struct timespec ts = {(time_t)(left / 1000), (long)(left % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static void random_bytes(unsigned char *buf, size_t n)
{
	if (RAND_bytes(buf, (int)n) != 1)
		fatal("RAND_bytes failed");
}

static char *random_hex(size_t nbytes)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char buf[64];
	char *out = xmalloc(nbytes * 2 + 1);
	if (nbytes > sizeof(buf))
		nbytes = sizeof(buf);
	random_bytes(buf, nbytes);
	for (size_t i = 0; i < nbytes; i++) {
		out[2 * i] = hex[buf[i] >> 4];
		out[2 * i + 1] = hex[buf[i] & 15];
	}
	out[nbytes * 2] = '\0';
	return out;
}

static int is_hex(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F')))
			return 0;
	return 1;
}

static char *b64url(const unsigned char *in, size_t len)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char *out = xmalloc((len + 2) / 3 * 4 + 1);
	size_t o = 0, i = 0;
	for (; i + 2 < len; i += 3) {
		uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = tbl[(v >> 6) & 63];
		out[o++] = tbl[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
	} else if (len - i == 2) {
		uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = tbl[(v >> 6) & 63];
	}
	out[o] = '\0';
	return out;
}

static char *b64url_str(const char *s)
{
	return b64url((const unsigned char *)s, strlen(s));
}

/* Durations: an integer with ms, s, m or h (no suffix: seconds); a leading
 * '-' only when allow_negative. Returns -1 on error, 0 on success. */
static int parse_duration(const char *s, int allow_negative, int64_t *out_ms)
{
	int neg = 0;
	const char *p = s;
	if (*p == '-') {
		if (!allow_negative)
			return -1;
		neg = 1;
		p++;
	}
	if (*p < '0' || *p > '9')
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(p, &end, 10);
	if (errno || v > 1000000000ULL)
		return -1;
	int64_t mul;
	if (!*end || !strcmp(end, "s"))
		mul = 1000;
	else if (!strcmp(end, "ms"))
		mul = 1;
	else if (!strcmp(end, "m"))
		mul = 60 * 1000;
	else if (!strcmp(end, "h"))
		mul = 3600 * 1000;
	else
		return -1;
	*out_ms = (neg ? -1 : 1) * (int64_t)v * mul;
	return 0;
}

static char *read_file(const char *path, size_t *len_out)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	if (!f)
		return NULL;
	size_t cap = 4096, len = 0;
	char *buf = xmalloc(cap);
	for (;;) {
		if (len + 1 >= cap) {
			cap *= 2;
			char *nb = realloc(buf, cap);
			if (!nb)
				fatal("out of memory");
			buf = nb;
		}
		size_t n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	int err = ferror(f);
	if (f != stdin)
		fclose(f);
	if (err) {
		free(buf);
		errno = EIO;
		return NULL;
	}
	buf[len] = '\0';
	if (len_out)
		*len_out = len;
	return buf;
}

/* Writes data to path atomically (temp file + rename) with the given mode. */
static int write_file_atomic(const char *path, const char *data, size_t len, mode_t mode)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		free(tmp);
		return -1;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			unlink(tmp);
			free(tmp);
			return -1;
		}
		off += (size_t)n;
	}
	if (fchmod(fd, mode) || fsync(fd) || close(fd) || rename(tmp, path)) {
		int e = errno;
		unlink(tmp);
		free(tmp);
		errno = e;
		return -1;
	}
	free(tmp);
	return 0;
}

/* ---------------------------------------------------------------- keys */

static char *bn_param_b64(EVP_PKEY *pkey, const char *name)
{
	BIGNUM *bn = NULL;
	if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1 || !bn)
		fatal("cannot read RSA parameter %s", name);
	int n = BN_num_bytes(bn);
	unsigned char *buf = xmalloc((size_t)n);
	BN_bn2bin(bn, buf);
	char *out = b64url(buf, (size_t)n);
	free(buf);
	BN_free(bn);
	return out;
}

/* RFC 7638 thumbprint of the RSA public key (base64url SHA-256). */
static char *rsa_thumbprint(const char *n, const char *e)
{
	char *canon = xasprintf("{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e, n);
	unsigned char md[32];
	unsigned int mdlen = 0;
	if (EVP_Digest(canon, strlen(canon), md, &mdlen, EVP_sha256(), NULL) != 1)
		fatal("SHA-256 failed");
	free(canon);
	return b64url(md, mdlen);
}

static EVP_PKEY *load_rsa_key(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	EVP_PKEY *pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!pkey)
		return NULL;
	if (!EVP_PKEY_is_a(pkey, "RSA")) {
		EVP_PKEY_free(pkey);
		return NULL;
	}
	return pkey;
}

static int cmd_keys(int argc, char **argv)
{
	const char *dir = NULL, *kid = NULL;
	int force = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--dir") || !strcmp(a, "--kid")) {
			if (i + 1 >= argc)
				usage_error("option '%s' needs a value", a);
			if (!strcmp(a, "--dir"))
				dir = argv[++i];
			else
				kid = argv[++i];
		} else if (!strncmp(a, "--dir=", 6)) {
			dir = a + 6;
		} else if (!strncmp(a, "--kid=", 6)) {
			kid = a + 6;
		} else if (!strcmp(a, "--force")) {
			force = 1;
		} else {
			usage_error("unknown argument '%s' (keys takes --dir DIR [--kid KID] [--force])", a);
		}
	}
	if (!dir)
		usage_error("--dir DIR is required");
	if (kid && !*kid)
		usage_error("--kid must not be empty");
	if (mkdir(dir, 0700) && errno != EEXIST)
		fatal("cannot create directory '%s': %s", dir, strerror(errno));

	char *key_path = xasprintf("%s/%s", dir, KEY_FILE);
	char *jwks_path = xasprintf("%s/%s", dir, JWKS_FILE);
	EVP_PKEY *pkey = NULL;
	int generated = 0;
	if (!force && access(key_path, F_OK) == 0) {
		pkey = load_rsa_key(key_path);
		if (!pkey)
			fatal("%s exists but is not an RSA private key (use --force to replace it)", key_path);
	} else {
		pkey = EVP_RSA_gen(2048);
		if (!pkey)
			fatal("RSA key generation failed");
		BIO *bio = BIO_new(BIO_s_mem());
		if (!bio || !PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL))
			fatal("cannot encode the private key");
		char *pem = NULL;
		long pem_len = BIO_get_mem_data(bio, &pem);
		if (write_file_atomic(key_path, pem, (size_t)pem_len, 0600))
			fatal("cannot write %s: %s", key_path, strerror(errno));
		BIO_free(bio);
		generated = 1;
	}
	char *n = bn_param_b64(pkey, OSSL_PKEY_PARAM_RSA_N);
	char *e = bn_param_b64(pkey, OSSL_PKEY_PARAM_RSA_E);
	char *thumb = rsa_thumbprint(n, e);
	char *kid_final = kid ? xstrdup(kid) : xasprintf("forge-sim-%.16s", thumb);
	json_t *jwk = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "RSA", "n", n, "e", e, "kid", kid_final,
				"alg", "RS256", "use", "sig");
	json_t *doc = json_pack("{s:[o]}", "keys", jwk);
	char *text = json_dumps(doc, JSON_INDENT(2));
	if (!text)
		fatal("out of memory");
	size_t tl = strlen(text);
	char *text_nl = xasprintf("%s\n", text);
	if (write_file_atomic(jwks_path, text_nl, tl + 1, 0644))
		fatal("cannot write %s: %s", jwks_path, strerror(errno));
	printf("%s %s (RSA-2048, mode 0600)\n", generated ? "generated" : "kept", key_path);
	printf("wrote %s (kid %s)\n", jwks_path, kid_final);
	free(text);
	free(text_nl);
	json_decref(doc);
	free(kid_final);
	free(thumb);
	free(n);
	free(e);
	EVP_PKEY_free(pkey);
	free(key_path);
	free(jwks_path);
	return EXIT_OK;
}

/* ---------------------------------------------------------------- tokens */

static char *sign_rs256(EVP_PKEY *pkey, const char *kid, json_t *claims)
{
	json_t *hdr = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "kid", kid);
	char *h = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
	char *c = json_dumps(claims, JSON_COMPACT);
	if (!h || !c)
		fatal("out of memory");
	char *h64 = b64url_str(h), *c64 = b64url_str(c);
	char *input = xasprintf("%s.%s", h64, c64);
	size_t sig_len = (size_t)EVP_PKEY_get_size(pkey);
	unsigned char *sig = xmalloc(sig_len);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
	    EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)input, strlen(input)) != 1)
		fatal("RS256 signing failed");
	EVP_MD_CTX_free(md);
	char *s64 = b64url(sig, sig_len);
	char *out = xasprintf("%s.%s", input, s64);
	free(s64);
	free(sig);
	free(input);
	free(h64);
	free(c64);
	free(h);
	free(c);
	json_decref(hdr);
	return out;
}

static unsigned char g_system_key[32];
static int g_system_key_set;

/* The app system token: opaque to the remote; a JWT with exp, HS256 with a
 * per-process random key nobody else knows. */
static char *system_token(const char *installation, int64_t ttl_ms)
{
	if (!g_system_key_set) {
		random_bytes(g_system_key, sizeof(g_system_key));
		g_system_key_set = 1;
	}
	int64_t now = wall_s();
	char *jti = random_hex(16);
	json_t *claims = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "iss", "forge-sim", "sub",
				   "forge-sim-app-system-user", "aud", "api.atlassian.com", "installationId",
				   installation, "iat", (json_int_t)now, "exp",
				   (json_int_t)(now + ttl_ms / 1000), "jti", jti);
	char *c = json_dumps(claims, JSON_COMPACT);
	if (!c)
		fatal("out of memory");
	char *h64 = b64url_str("{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
	char *c64 = b64url_str(c);
	char *input = xasprintf("%s.%s", h64, c64);
	unsigned char mac[32];
	unsigned int mac_len = sizeof(mac);
	if (!HMAC(EVP_sha256(), g_system_key, sizeof(g_system_key), (const unsigned char *)input, strlen(input),
		  mac, &mac_len))
		fatal("HMAC failed");
	char *s64 = b64url(mac, mac_len);
	char *out = xasprintf("%s.%s", input, s64);
	free(s64);
	free(input);
	free(h64);
	free(c64);
	free(c);
	free(jti);
	json_decref(claims);
	return out;
}

/* ---------------------------------------------------------------- options */

struct opts {
	const char *url;
	const char *path;	/* route; NULL = the command's default */
	const char *keys_dir;
	const char *key_file;
	const char *kid;
	const char *app_id;
	const char *installation;
	const char *api_base_url;
	const char *app_version;
	const char *env_type;
	const char *env_id;
	const char *module_key;
	const char *module_type; /* app.module.type (core:endpoint) */
	const char *principal;   /* UI invocation: the user's accountId */
	const char *context;     /* UI invocation: the context claim, JSON or @FILE */
	const char *issue;       /* UI invocation: context.extension.issue.key */
	const char *content;     /* UI invocation: context.extension.content.id */
	const char *trace_id;
	const char *interval;
	const char *body_file;
	int64_t timeout_ms;
	int64_t retry_delay_ms;
	int64_t fit_ttl_ms;
	int64_t system_ttl_ms;
	int has_system_ttl;
	int64_t every_ms;
	int has_every;
	long retries;
	long count;
	int bare;
	int no_fit;
	const char *headers[MAX_HEADERS];
	int n_headers;
	char **files;
	int n_files;
	/* derived */
	EVP_PKEY *pkey;
	char *kid_owned;
	char *host;
	char *port;
	char *base_path;
	char *host_header;
};

static const char *const INTERVALS[] = {"fiveMinute", "hour", "day", "week"};
static const int64_t INTERVAL_MS[] = {5LL * 60 * 1000, 3600LL * 1000, 86400LL * 1000, 7LL * 86400 * 1000};

static long parse_count(const char *opt, const char *v, long max)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || *end || end == v || n < 0 || n > max)
		usage_error("option '%s': '%s' is not a whole number between 0 and %ld", opt, v, max);
	return n;
}

static int64_t parse_dur_opt(const char *opt, const char *v, int allow_negative)
{
	int64_t ms;
	if (parse_duration(v, allow_negative, &ms))
		usage_error("option '%s': '%s' is not a duration (examples: 250ms, 5s, 2m, 4h%s)", opt, v,
			    allow_negative ? ", -1h" : "");
	return ms;
}

/* Options that take a value. */
static const char *const VALUE_OPTS[] = {
	"--url", "--path", "--keys", "--key", "--kid", "--app-id", "--installation", "--api-base-url",
	"--app-version", "--environment", "--environment-id", "--module-key", "--trace-id", "--interval",
	"--body", "--timeout", "--retry-delay", "--fit-ttl", "--system-token-ttl", "--every", "--retries",
	"--count", "--header", "--principal", "--context", "--issue", "--content", "--module-type", NULL};
static const char *const FLAG_OPTS[] = {"--bare", "--no-fit", NULL};

static void parse_common(struct opts *o, int argc, char **argv, int accept_files)
{
	o->files = xmalloc(sizeof(char *) * (size_t)(argc + 1));
	for (int i = 0; i < argc; i++) {
		char *a = argv[i];
		if (a[0] != '-' || !strcmp(a, "-")) {
			if (!accept_files)
				usage_error("unexpected argument '%s'", a);
			o->files[o->n_files++] = a;
			continue;
		}
		if (!strcmp(a, "--")) {
			if (!accept_files && i + 1 < argc)
				usage_error("unexpected argument '%s'", argv[i + 1]);
			for (i++; i < argc; i++)
				o->files[o->n_files++] = argv[i];
			break;
		}
		const char *name = a, *val = NULL;
		char namebuf[64];
		char *eq = strchr(a, '=');
		if (eq && a[1] == '-') {
			size_t nl = (size_t)(eq - a);
			if (nl >= sizeof(namebuf))
				usage_error("unknown option '%s'", a);
			memcpy(namebuf, a, nl);
			namebuf[nl] = '\0';
			name = namebuf;
			val = eq + 1;
		}
		int is_flag = 0, is_value = 0;
		for (int k = 0; FLAG_OPTS[k]; k++)
			if (!strcmp(name, FLAG_OPTS[k]))
				is_flag = 1;
		for (int k = 0; VALUE_OPTS[k]; k++)
			if (!strcmp(name, VALUE_OPTS[k]))
				is_value = 1;
		if (!is_flag && !is_value)
			usage_error("unknown option '%s'", a);
		if (is_flag) {
			if (val)
				usage_error("option '%s' takes no value", name);
			if (!strcmp(name, "--bare"))
				o->bare = 1;
			else
				o->no_fit = 1;
			continue;
		}
		if (!val) {
			if (i + 1 >= argc)
				usage_error("option '%s' needs a value", name);
			val = argv[++i];
		}
		if (!strcmp(name, "--url"))
			o->url = val;
		else if (!strcmp(name, "--path"))
			o->path = val;
		else if (!strcmp(name, "--keys"))
			o->keys_dir = val;
		else if (!strcmp(name, "--key"))
			o->key_file = val;
		else if (!strcmp(name, "--kid"))
			o->kid = val;
		else if (!strcmp(name, "--app-id"))
			o->app_id = val;
		else if (!strcmp(name, "--installation"))
			o->installation = val;
		else if (!strcmp(name, "--api-base-url"))
			o->api_base_url = val;
		else if (!strcmp(name, "--app-version"))
			o->app_version = val;
		else if (!strcmp(name, "--environment"))
			o->env_type = val;
		else if (!strcmp(name, "--environment-id"))
			o->env_id = val;
		else if (!strcmp(name, "--principal"))
			o->principal = val;
		else if (!strcmp(name, "--context"))
			o->context = val;
		else if (!strcmp(name, "--issue"))
			o->issue = val;
		else if (!strcmp(name, "--content"))
			o->content = val;
		else if (!strcmp(name, "--module-type"))
			o->module_type = val;
		else if (!strcmp(name, "--module-key"))
			o->module_key = val;
		else if (!strcmp(name, "--trace-id"))
			o->trace_id = val;
		else if (!strcmp(name, "--interval"))
			o->interval = val;
		else if (!strcmp(name, "--body"))
			o->body_file = val;
		else if (!strcmp(name, "--timeout"))
			o->timeout_ms = parse_dur_opt(name, val, 0);
		else if (!strcmp(name, "--retry-delay"))
			o->retry_delay_ms = parse_dur_opt(name, val, 0);
		else if (!strcmp(name, "--fit-ttl"))
			o->fit_ttl_ms = parse_dur_opt(name, val, 1);
		else if (!strcmp(name, "--system-token-ttl")) {
			o->system_ttl_ms = parse_dur_opt(name, val, 1);
			o->has_system_ttl = 1;
		} else if (!strcmp(name, "--every")) {
			o->every_ms = parse_dur_opt(name, val, 0);
			o->has_every = 1;
		} else if (!strcmp(name, "--retries"))
			o->retries = parse_count(name, val, 100);
		else if (!strcmp(name, "--count"))
			o->count = parse_count(name, val, 100000000L);
		else if (!strcmp(name, "--header")) {
			if (o->n_headers >= MAX_HEADERS)
				usage_error("at most %d --header options", MAX_HEADERS);
			const char *colon = strchr(val, ':');
			if (!colon || colon == val || strpbrk(val, "\r\n"))
				usage_error("option '--header': expected 'Name: value', got '%s'", val);
			o->headers[o->n_headers++] = val;
		}
	}
}

/* http://HOST[:PORT][/PATH] -> host, port, base path (without trailing '/'). */
static void parse_url(struct opts *o)
{
	const char *u = o->url;
	if (strncmp(u, "http://", 7)) {
		if (!strncmp(u, "https://", 8))
			usage_error("--url: https is not supported (forge-sim talks plain HTTP to a local remote)");
		usage_error("--url: expected http://HOST[:PORT][/PATH], got '%s'", u);
	}
	u += 7;
	const char *slash = strchr(u, '/');
	size_t hp_len = slash ? (size_t)(slash - u) : strlen(u);
	char *hp = xmalloc(hp_len + 1);
	memcpy(hp, u, hp_len);
	hp[hp_len] = '\0';
	if (!*hp)
		usage_error("--url: no host in '%s'", o->url);
	char *host, *port = NULL;
	if (hp[0] == '[') {
		char *close = strchr(hp, ']');
		if (!close)
			usage_error("--url: unterminated IPv6 address in '%s'", o->url);
		*close = '\0';
		host = hp + 1;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1])
			usage_error("--url: bad host in '%s'", o->url);
	} else {
		host = hp;
		char *colon = strrchr(hp, ':');
		if (colon) {
			*colon = '\0';
			port = colon + 1;
		}
	}
	if (port) {
		char *end;
		long p = strtol(port, &end, 10);
		if (!*port || *end || p < 1 || p > 65535)
			usage_error("--url: bad port in '%s'", o->url);
	}
	o->host = xstrdup(host);
	o->port = xstrdup(port ? port : "80");
	o->host_header = xmalloc(hp_len + 1);
	memcpy(o->host_header, u, hp_len);
	o->host_header[hp_len] = '\0';
	const char *path = slash ? slash : "";
	size_t pl = strlen(path);
	while (pl > 0 && path[pl - 1] == '/')
		pl--;
	o->base_path = xmalloc(pl + 1);
	memcpy(o->base_path, path, pl);
	o->base_path[pl] = '\0';
	free(hp);
}

static void finish_opts(struct opts *o, int need_url)
{
	if (need_url) {
		if (!o->url)
			usage_error("--url http://HOST:PORT is required");
		parse_url(o);
	}
	if (!o->keys_dir && !o->key_file)
		usage_error("--keys DIR (from 'forge-sim keys') or --key FILE --kid KID is required");
	char *key_path = o->key_file ? xstrdup(o->key_file) : xasprintf("%s/%s", o->keys_dir, KEY_FILE);
	o->pkey = load_rsa_key(key_path);
	if (!o->pkey) {
		if (access(key_path, F_OK))
			usage_error("key file %s: %s (create it with 'forge-sim keys --dir DIR')", key_path,
				    strerror(errno));
		usage_error("key file %s is not a PEM RSA private key", key_path);
	}
	free(key_path);
	if (!o->kid) {
		if (!o->keys_dir)
			usage_error("--kid KID is required with --key FILE");
		char *jwks_path = xasprintf("%s/%s", o->keys_dir, JWKS_FILE);
		json_error_t jerr;
		json_t *doc = json_load_file(jwks_path, 0, &jerr);
		json_t *k0 = doc ? json_array_get(json_object_get(doc, "keys"), 0) : NULL;
		const char *kid = k0 ? json_string_value(json_object_get(k0, "kid")) : NULL;
		if (!kid)
			usage_error("cannot read the kid from %s (%s); pass --kid", jwks_path,
				    doc ? "no keys[0].kid" : jerr.text);
		o->kid_owned = xstrdup(kid);
		o->kid = o->kid_owned;
		json_decref(doc);
		free(jwks_path);
	}
	if (!o->app_id)
		o->app_id = DEV_APP_ID;
	if (!o->installation)
		o->installation = DEV_INSTALLATION;
	if (!o->app_version)
		o->app_version = "1.0.0";
	if (!o->env_type)
		o->env_type = "DEVELOPMENT";
	if (strcmp(o->env_type, "DEVELOPMENT") && strcmp(o->env_type, "STAGING") &&
	    strcmp(o->env_type, "PRODUCTION"))
		usage_error("--environment must be DEVELOPMENT, STAGING or PRODUCTION, got '%s'", o->env_type);
	if (!o->env_id)
		o->env_id = DEF_ENV_ID;
	if (!o->module_key)
		o->module_key = "forge-sim-endpoint";
	if (!o->module_type)
		o->module_type = o->issue ? "jira:issueViewBackgroundScript"
				 : o->content	 ? "confluence:backgroundScript"
				 : o->principal	 ? "jira:globalBackgroundScript"
						 : "core:endpoint";
	if ((o->issue != NULL) + (o->content != NULL) + (o->context != NULL) > 1)
		usage_error("give one of --issue, --content and --context");
	if (!o->api_base_url)
		o->api_base_url = "https://api.atlassian.com/ex/jira/" DEF_CLOUD_ID;
	if (o->trace_id && (!is_hex(o->trace_id) || strlen(o->trace_id) > 32))
		usage_error("--trace-id must be 1-32 hex digits, got '%s'", o->trace_id);
}

static void free_opts(struct opts *o)
{
	EVP_PKEY_free(o->pkey);
	free(o->files);
	free(o->kid_owned);
	free(o->host);
	free(o->port);
	free(o->base_path);
	free(o->host_header);
	memset(o, 0, sizeof(*o));
}

/* ---------------------------------------------------------------- FIT */

/* The `context` claim of a UI invocation (forge-platform.md §2.2): from
 * --context (JSON text, or @FILE), or built for --issue / --content; NULL
 * for backend invocations ("no context is currently provided"). */
static json_t *ui_context(const struct opts *o, const char *cloud)
{
	json_error_t jerr;
	if (o->context) {
		json_t *c = o->context[0] == '@' ? json_load_file(o->context + 1, 0, &jerr)
						 : json_loads(o->context, 0, &jerr);
		if (!json_is_object(c))
			usage_error("--context: expected a JSON object (or @FILE): %s", c ? "not an object" : jerr.text);
		return c;
	}
	if (!o->issue && !o->content && !o->principal)
		return NULL;
	char *local = random_hex(16);
	json_t *ext;
	if (o->issue) {
		const char *dash = strchr(o->issue, '-');
		char project[64];
		snprintf(project, sizeof(project), "%.*s", dash ? (int)(dash - o->issue) : 0, o->issue);
		ext = json_pack("{s:s, s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}}", "type", "jira:issueViewBackgroundScript",
				"issue", "key", o->issue, "id", "10073", "type", "Story", "project", "key", project, "id",
				"10000", "type", "software");
	} else if (o->content) {
		ext = json_pack("{s:s, s:{s:s, s:s}, s:{s:s}}", "type", "confluence:backgroundScript", "content",
				"id", o->content, "type", "page", "space", "key", "SP");
	} else {
		ext = json_pack("{s:s}", "type", "jira:globalBackgroundScript");
	}
	json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:o}", "cloudId", cloud, "siteUrl", "https://forge-sim.atlassian.net",
			      "moduleKey", o->module_key, "localId", local, "extension", ext);
	free(local);
	return c;
}

static char *make_fit(const struct opts *o)
{
	int64_t now = wall_s();
	const char *app_uuid = strrchr(o->app_id, '/');
	app_uuid = app_uuid ? app_uuid + 1 : o->app_id;
	char *env_ari = xasprintf("ari:cloud:ecosystem::environment/%s/%s", app_uuid, o->env_id);
	char *jti = random_hex(20);
	const char *cloud = strrchr(o->api_base_url, '/');
	cloud = cloud ? cloud + 1 : "";
	json_t *ctx0 = json_pack("{s:s, s:s}", "name", "jira", "apiBaseUrl", o->api_base_url);
	if (*cloud)
		json_object_set_new(ctx0, "cloudId", json_string(cloud));
	json_t *app = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:[o]}, s:{s:s, s:s}, s:{s:s, s:s}}", "id",
				o->app_id, "installationId", o->installation, "apiBaseUrl", o->api_base_url,
				"appVersion", o->app_version, "installation", "id", o->installation, "contexts",
				ctx0, "environment", "type", o->env_type, "id", env_ari, "module", "type",
				o->module_type, "key", o->module_key);
	json_t *claims = json_pack("{s:o, s:s, s:s, s:I, s:I, s:I, s:s}", "app", app, "iss",
				   "forge/invocation-token", "aud", o->app_id, "iat", (json_int_t)now, "nbf",
				   (json_int_t)now, "exp", (json_int_t)(now + o->fit_ttl_ms / 1000), "jti", jti);
	if (!claims)
		fatal("cannot build the FIT claims");
	if (o->principal && *o->principal)
		json_object_set_new(claims, "principal", json_string(o->principal));
	json_t *context = ui_context(o, cloud);
	if (context)
		json_object_set_new(claims, "context", context);
	if (!*o->installation) { /* --installation '': a FIT without the installation */
		json_object_del(app, "installationId");
		json_object_del(app, "installation");
	}
	char *fit = sign_rs256(o->pkey, o->kid, claims);
	json_decref(claims);
	free(jti);
	free(env_ari);
	return fit;
}

/* ---------------------------------------------------------------- HTTP */

struct answer {
	int status;	/* HTTP status; 0 = no answer */
	int timed_out;
	char error[160];	/* network error text when status == 0 && !timed_out */
	char body[MAX_ANSWER + 1];
	size_t body_len;
};

static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {fd, events, 0};
		int r = poll(&p, 1, (int)(left > INT_MAX ? INT_MAX : left));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		return 1;
	}
}

static const char *find_header(const char *head, const char *name)
{
	size_t nl = strlen(name);
	const char *p = strstr(head, "\r\n");
	while (p) {
		p += 2;
		if (!strncasecmp(p, name, nl) && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			return v;
		}
		p = strstr(p, "\r\n");
	}
	return NULL;
}

/* One POST with the whole exchange bounded by timeout_ms (from before the
 * connect to the end of the response headers; the body is read with the same
 * deadline and may be cut short). */
static void http_post(const struct opts *o, const char *path, const char *extra_headers, const char *body,
		      int64_t timeout_ms, struct answer *ans)
{
	memset(ans, 0, sizeof(*ans));
	int64_t deadline = mono_ms() + timeout_ms;
	struct addrinfo hints = {0}, *res = NULL;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	int gai = getaddrinfo(o->host, o->port, &hints, &res);
	if (gai) {
		snprintf(ans->error, sizeof(ans->error), "resolve %s: %s", o->host, gai_strerror(gai));
		return;
	}
	int fd = -1;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINPROGRESS) {
			int w = wait_fd(fd, POLLOUT, deadline);
			if (w == 0) {
				ans->timed_out = 1;
				close(fd);
				freeaddrinfo(res);
				return;
			}
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
			if (w > 0 && soerr == 0)
				break;
			snprintf(ans->error, sizeof(ans->error), "connect: %s", strerror(soerr ? soerr : errno));
		} else {
			snprintf(ans->error, sizeof(ans->error), "connect: %s", strerror(errno));
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return;

	size_t body_len = strlen(body);
	char *req = xasprintf("POST %s HTTP/1.1\r\n"
			      "Host: %s\r\n"
			      "User-Agent: forge-sim/" SIM_VERSION "\r\n"
			      "Content-Type: application/json\r\n"
			      "Accept: application/json\r\n"
			      "Content-Length: %zu\r\n"
			      "Connection: close\r\n"
			      "%s"
			      "\r\n",
			      path, o->host_header, body_len, extra_headers);
	size_t req_len = strlen(req);
	const char *parts[2] = {req, body};
	size_t lens[2] = {req_len, body_len};
	for (int pi = 0; pi < 2; pi++) {
		size_t off = 0;
		while (off < lens[pi]) {
			ssize_t n = send(fd, parts[pi] + off, lens[pi] - off, MSG_NOSIGNAL);
			if (n > 0) {
				off += (size_t)n;
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
				int w = wait_fd(fd, POLLOUT, deadline);
				if (w == 0) {
					ans->timed_out = 1;
					goto out;
				}
				if (w < 0)
					goto neterr;
				continue;
			}
			goto neterr;
		}
	}

	/* Read the answer. */
	size_t cap = 8192, len = 0;
	char *buf = xmalloc(cap + 1);
	size_t head_end = 0;
	long content_length = -1;
	int chunked = 0;
	for (;;) {
		if (head_end) {
			size_t have = len - head_end;
			if (content_length >= 0 && have >= (size_t)content_length)
				break;
			if (chunked && len >= 5 && !memcmp(buf + len - 5, "0\r\n\r\n", 5))
				break;
			if (have >= MAX_ANSWER)
				break;
		}
		int w = wait_fd(fd, POLLIN, deadline);
		if (w == 0) {
			if (!head_end)
				ans->timed_out = 1;
			break;
		}
		if (w < 0) {
			snprintf(ans->error, sizeof(ans->error), "poll: %s", strerror(errno));
			break;
		}
		if (len == cap) {
			cap *= 2;
			char *nb = realloc(buf, cap + 1);
			if (!nb)
				fatal("out of memory");
			buf = nb;
		}
		ssize_t n = recv(fd, buf + len, cap - len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			if (!head_end)
				snprintf(ans->error, sizeof(ans->error), "recv: %s", strerror(errno));
			break;
		}
		if (n == 0) {
			if (!head_end)
				snprintf(ans->error, sizeof(ans->error), "connection closed without an answer");
			break;
		}
		len += (size_t)n;
		buf[len] = '\0';
		if (!head_end) {
			char *he = strstr(buf, "\r\n\r\n");
			if (!he) {
				if (len > 65536) {
					snprintf(ans->error, sizeof(ans->error), "answer headers too long");
					break;
				}
				continue;
			}
			head_end = (size_t)(he - buf) + 4;
			*he = '\0';
			int major = 0, minor = 0, status = 0;
			if (sscanf(buf, "HTTP/%d.%d %d", &major, &minor, &status) != 3 || status < 100 ||
			    status > 999) {
				snprintf(ans->error, sizeof(ans->error), "not an HTTP answer");
				head_end = 0;
				break;
			}
			ans->status = status;
			const char *cl = find_header(buf, "Content-Length");
			if (cl)
				content_length = strtol(cl, NULL, 10);
			const char *te = find_header(buf, "Transfer-Encoding");
			if (te && !strncasecmp(te, "chunked", 7))
				chunked = 1;
			*he = '\r';
		}
	}
	if (head_end && ans->status) {
		size_t have = len - head_end;
		if (have > MAX_ANSWER)
			have = MAX_ANSWER;
		memcpy(ans->body, buf + head_end, have);
		ans->body[have] = '\0';
		ans->body_len = have;
	} else {
		ans->status = 0;
	}
	free(buf);
	goto out;
neterr:
	snprintf(ans->error, sizeof(ans->error), "send: %s", strerror(errno));
out:
	free(req);
	close(fd);
}

/* ---------------------------------------------------------------- deliveries */

enum dstate { D_PENDING, D_DELIVERED, D_FAILED, D_ABANDONED };

struct delivery {
	char *label;	/* "event=FILE" or "trigger=hour#3" */
	json_t *body;	/* the body of the first attempt */
	char *path;
	char *trace_id;
	int attempts;
	int64_t due;
	enum dstate state;
	const char *retry_reason;	/* reason of the last failure */
	char last[48];	/* last status, for the final line */
};

/* Puts retryContext where Forge puts it: inside body.payload when that is an
 * object, else at the top level of the body. */
static void set_retry_context(json_t *body, int retry_count, const char *reason)
{
	json_t *target = json_object_get(body, "payload");
	if (!json_is_object(target))
		target = body;
	json_object_set_new(target, "retryContext",
			    json_pack("{s:i, s:s, s:n}", "retryCount", retry_count, "retryReason", reason,
				      "retryData"));
}

static void print_answer_body(const struct answer *a)
{
	if (!a->body_len)
		return;
	fputs(" answer=", stdout);
	size_t n = a->body_len > 300 ? 300 : a->body_len;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a->body[i];
		fputc(c == '\n' || c == '\r' || c == '\t' ? ' ' : (c < 32 ? '?' : c), stdout);
	}
	if (a->body_len > n)
		fputs("...", stdout);
}

static void attempt(const struct opts *o, struct delivery *d)
{
	d->attempts++;
	json_t *body = json_deep_copy(d->body);
	if (d->attempts > 1)
		set_retry_context(body, d->attempts - 1, d->retry_reason);
	char *text = json_dumps(body, JSON_COMPACT);
	if (!text)
		fatal("cannot encode the body of %s", d->label);

	char *span = random_hex(8);
	char *hdrs = xasprintf("x-b3-traceid: %s\r\nx-b3-spanid: %s\r\n", d->trace_id, span);
	if (!o->no_fit) {
		char *fit = make_fit(o);
		char *n = xasprintf("%sAuthorization: Bearer %s\r\n", hdrs, fit);
		free(hdrs);
		free(fit);
		hdrs = n;
	}
	if (o->has_system_ttl) {
		char *st = system_token(o->installation, o->system_ttl_ms);
		char *n = xasprintf("%sx-forge-oauth-system: %s\r\n", hdrs, st);
		free(hdrs);
		free(st);
		hdrs = n;
	}
	for (int i = 0; i < o->n_headers; i++) {
		char *n = xasprintf("%s%s\r\n", hdrs, o->headers[i]);
		free(hdrs);
		hdrs = n;
	}

	struct answer *a = xmalloc(sizeof(*a));
	double t0 = mono_msf();
	http_post(o, d->path, hdrs, text, o->timeout_ms, a);
	double ms = mono_msf() - t0;

	printf("%s attempt=%d", d->label, d->attempts);
	if (a->status)
		printf(" status=%d", a->status);
	else if (a->timed_out)
		printf(" status=timeout");
	else
		printf(" status=error");
	printf(" ms=%.0f trace=%s", ms, d->trace_id);
	if (d->attempts > 1)
		printf(" retryCount=%d retryReason=%s", d->attempts - 1, d->retry_reason);
	if (!a->status && !a->timed_out)
		printf(" error=\"%s\"", a->error);
	print_answer_body(a);
	putchar('\n');

	if (a->status >= 200 && a->status < 300) {
		d->state = D_DELIVERED;
		snprintf(d->last, sizeof(d->last), "%d", a->status);
	} else {
		if (a->status == 401)
			d->retry_reason = "INVALID_FORGE_INVOCATION_TOKEN";
		else if (a->timed_out)
			d->retry_reason = "TIMEOUT_ERROR";
		else
			d->retry_reason = "INVALID_REMOTE_INVOCATION_ERROR";
		if (a->status)
			snprintf(d->last, sizeof(d->last), "%d", a->status);
		else
			snprintf(d->last, sizeof(d->last), "%s", a->timed_out ? "timeout" : "error");
		if (d->attempts >= 1 + o->retries)
			d->state = D_FAILED;
		else
			d->due = mono_ms() + o->retry_delay_ms;
	}
	if (d->state == D_DELIVERED)
		printf("%s delivered after %d attempt%s\n", d->label, d->attempts, d->attempts == 1 ? "" : "s");
	else if (d->state == D_FAILED)
		printf("%s failed after %d attempt%s (last: %s)\n", d->label, d->attempts,
		       d->attempts == 1 ? "" : "s", d->last);
	free(a);
	free(hdrs);
	free(span);
	free(text);
	json_decref(body);
}

struct run {
	struct delivery *d;
	size_t n, cap;
};

static struct delivery *run_add(struct run *r)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 8;
		struct delivery *nd = realloc(r->d, r->cap * sizeof(*nd));
		if (!nd)
			fatal("out of memory");
		r->d = nd;
	}
	struct delivery *d = &r->d[r->n++];
	memset(d, 0, sizeof(*d));
	return d;
}

static struct delivery *next_due(struct run *r)
{
	struct delivery *best = NULL;
	for (size_t i = 0; i < r->n; i++) {
		struct delivery *d = &r->d[i];
		if (d->state == D_PENDING && (!best || d->due < best->due))
			best = d;
	}
	return best;
}

static int finish_run(struct run *r)
{
	size_t ok = 0, failed = 0, abandoned = 0;
	for (size_t i = 0; i < r->n; i++) {
		struct delivery *d = &r->d[i];
		if (d->state == D_PENDING) {
			d->state = D_ABANDONED;
			printf("%s abandoned after %d attempt%s (interrupted)\n", d->label, d->attempts,
			       d->attempts == 1 ? "" : "s");
		}
		if (d->state == D_DELIVERED)
			ok++;
		else if (d->state == D_FAILED)
			failed++;
		else
			abandoned++;
	}
	printf("summary: delivered=%zu failed=%zu abandoned=%zu\n", ok, failed, abandoned);
	for (size_t i = 0; i < r->n; i++) {
		free(r->d[i].label);
		free(r->d[i].path);
		free(r->d[i].trace_id);
		json_decref(r->d[i].body);
	}
	free(r->d);
	return (failed || abandoned) ? EXIT_FAILED : EXIT_OK;
}

static char *route(const struct opts *o, const char *def)
{
	const char *p = o->path ? o->path : def;
	return xasprintf("%s%s%s", o->base_path, p[0] == '/' ? "" : "/", p);
}

static void defaults(struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->timeout_ms = 5000;
	o->retry_delay_ms = 60000;
	o->fit_ttl_ms = 25000;
	o->retries = 4;
	o->count = 1;
}

static int cmd_send(int argc, char **argv)
{
	struct opts o;
	defaults(&o);
	parse_common(&o, argc, argv, 1);
	if (o.interval || o.has_every || o.count != 1 || o.body_file)
		usage_error("--interval, --every, --count and --body belong to 'schedule'");
	if (!o.n_files)
		usage_error("no event files (give one or more EVENT.json, or - for stdin)");
	finish_opts(&o, 1);

	struct run r = {0};
	int64_t now = mono_ms();
	for (int i = 0; i < o.n_files; i++) {
		json_error_t jerr;
		size_t len = 0;
		char *text = read_file(o.files[i], &len);
		if (!text)
			usage_error("cannot read %s: %s", o.files[i], strerror(errno));
		json_t *ev = json_loadb(text, len, 0, &jerr);
		free(text);
		if (!ev)
			usage_error("%s:%d:%d: not JSON: %s", o.files[i], jerr.line, jerr.column, jerr.text);
		if (!json_is_object(ev))
			usage_error("%s: an event must be a JSON object", o.files[i]);
		struct delivery *d = run_add(&r);
		d->label = xasprintf("event=%s", o.files[i]);
		d->body = o.bare ? ev : json_pack("{s:o}", "payload", ev);
		d->path = route(&o, "/forge/events");
		d->trace_id = o.trace_id ? xstrdup(o.trace_id) : random_hex(16);
		d->due = now;
	}
	struct delivery *d;
	while (!g_stop && (d = next_due(&r))) {
		sleep_until(d->due);
		if (g_stop)
			break;
		attempt(&o, d);
	}
	int rc = finish_run(&r);
	free_opts(&o);
	return rc;
}

static int cmd_schedule(int argc, char **argv)
{
	struct opts o;
	defaults(&o);
	parse_common(&o, argc, argv, 0);
	if (!o.interval)
		usage_error("--interval fiveMinute|hour|day|week is required");
	int iv = -1;
	for (int k = 0; k < 4; k++)
		if (!strcmp(o.interval, INTERVALS[k]))
			iv = k;
	if (iv < 0)
		usage_error("--interval must be fiveMinute, hour, day or week, got '%s'", o.interval);
	if (o.bare)
		usage_error("--bare applies to 'send' only");
	if (!o.has_every)
		o.every_ms = INTERVAL_MS[iv];
	if (o.every_ms <= 0 && o.count != 1)
		usage_error("--every must be more than 0");
	finish_opts(&o, 1);

	json_t *body_tmpl;
	if (o.body_file) {
		json_error_t jerr;
		body_tmpl = json_load_file(o.body_file, 0, &jerr);
		if (!body_tmpl)
			usage_error("%s:%d:%d: not JSON: %s", o.body_file, jerr.line, jerr.column, jerr.text);
		if (!json_is_object(body_tmpl))
			usage_error("%s: the body must be a JSON object", o.body_file);
	} else {
		body_tmpl = json_object();
	}
	char *def_route = xasprintf("/forge/scheduled/%s", o.interval);

	struct run r = {0};
	int64_t start = mono_ms();
	long fired = 0;
	for (;;) {
		if (g_stop)
			break;
		struct delivery *d = next_due(&r);
		int more = o.count == 0 || fired < o.count;
		int64_t fire_at = start + fired * o.every_ms;
		if (!d && !more)
			break;
		if (more && (!d || fire_at <= d->due)) {
			sleep_until(fire_at);
			if (g_stop)
				break;
			fired++;
			d = run_add(&r);
			d->label = xasprintf("trigger=%s#%ld", o.interval, fired);
			d->body = json_deep_copy(body_tmpl);
			d->path = route(&o, def_route);
			d->trace_id = o.trace_id ? xstrdup(o.trace_id) : random_hex(16);
			d->due = mono_ms();
		} else {
			sleep_until(d->due);
			if (g_stop)
				break;
		}
		attempt(&o, d);
	}
	int rc = finish_run(&r);
	json_decref(body_tmpl);
	free(def_route);
	free_opts(&o);
	return rc;
}

static int cmd_fit(int argc, char **argv)
{
	struct opts o;
	defaults(&o);
	parse_common(&o, argc, argv, 0);
	finish_opts(&o, 0);
	char *fit = make_fit(&o);
	puts(fit);
	free(fit);
	free_opts(&o);
	return EXIT_OK;
}

/* One UI invocation (invokeRemote): POST with the FIT, no retries; prints
 * "ui status=N answer=..." and the body on its own line. */
static int cmd_ui(int argc, char **argv)
{
	struct opts o;
	defaults(&o);
	o.timeout_ms = 25000; /* UI invocations: 25 s, never retried */
	parse_common(&o, argc, argv, 0);
	if (!o.principal)
		usage_error("--principal ACCOUNT is required (a UI invocation names its user)");
	finish_opts(&o, 1);
	char *full = route(&o, "/forge/subscription");
	char *span = random_hex(8), *trace = o.trace_id ? xstrdup(o.trace_id) : random_hex(16);
	char *hdrs = xasprintf("x-b3-traceid: %s\r\nx-b3-spanid: %s\r\n", trace, span);
	if (!o.no_fit) {
		char *fit = make_fit(&o);
		char *n = xasprintf("%sAuthorization: Bearer %s\r\n", hdrs, fit);
		free(hdrs);
		free(fit);
		hdrs = n;
	}
	for (int i = 0; i < o.n_headers; i++) {
		char *n = xasprintf("%s%s\r\n", hdrs, o.headers[i]);
		free(hdrs);
		hdrs = n;
	}
	struct answer *a = xmalloc(sizeof(*a));
	http_post(&o, full, hdrs, "{}", o.timeout_ms, a);
	printf("ui status=");
	if (a->status)
		printf("%d", a->status);
	else
		printf("%s error=\"%s\"", a->timed_out ? "timeout" : "error", a->error);
	putchar('\n');
	if (a->body_len)
		printf("%.*s\n", (int)a->body_len, a->body);
	int rc = a->status >= 200 && a->status < 300 ? EXIT_OK : EXIT_FAILED;
	free(a);
	free(hdrs);
	free(span);
	free(trace);
	free(full);
	free_opts(&o);
	return rc;
}

static void help(void)
{
	fputs("forge-sim " SIM_VERSION " - plays Forge in front of a Forge remote (notify-gateway)\n"
	      "\n"
	      "  forge-sim keys --dir DIR [--kid KID] [--force]\n"
	      "      RSA-2048 key DIR/forge-sim-key.pem (0600; kept if present) and DIR/jwks.json\n"
	      "  forge-sim send [OPTIONS] EVENT.json... (- = stdin)\n"
	      "      POST each event to URL/forge/events as Forge does, with retries\n"
	      "  forge-sim schedule [OPTIONS] --interval fiveMinute|hour|day|week [--every D] [--count N]\n"
	      "      fire a scheduled trigger (URL/forge/scheduled/INTERVAL) N times (0 = until Ctrl-C)\n"
	      "  forge-sim fit [OPTIONS]\n"
	      "      print one FIT (for curl)\n"
	      "  forge-sim ui [OPTIONS] --principal ACCOUNT [--issue KEY | --content ID | --context JSON|@FILE]\n"
	      "      one UI invocation (invokeRemote): POST URL/forge/subscription, FIT with principal and context\n"
	      "\n"
	      "Options (send, schedule, fit):\n"
	      "  --url http://HOST:PORT[/BASE]  the remote's baseUrl (send, schedule)\n"
	      "  --path ROUTE                   route (default /forge/events, /forge/scheduled/INTERVAL)\n"
	      "  --keys DIR | --key PEM --kid KID  FIT signing key\n"
	      "  --app-id ARI                   aud and app.id (default " DEV_APP_ID ")\n"
	      "  --installation ARI             app.installationId (default " DEV_INSTALLATION ")\n"
	      "  --api-base-url URL  --app-version V (1.0.0)  --environment DEVELOPMENT|STAGING|PRODUCTION\n"
	      "  --environment-id UUID  --module-key KEY  --module-type TYPE (core:endpoint; ui: the module)\n"
	      "  --principal ACCOUNT  --issue KEY  --content ID  --context JSON|@FILE  (UI invocation claims; fit, ui)\n"
	      "  --timeout D (5s)  --retries N (4)  --retry-delay D (60s)\n"
	      "  --fit-ttl D (25s, may be negative)  --system-token-ttl D (no token unless given; may be negative)\n"
	      "  --trace-id HEX  --header 'Name: value'  --bare  --no-fit  --body FILE (schedule)\n"
	      "Durations: 250ms, 5s, 2m, 4h (no suffix: seconds).\n"
	      "Exit: 0 all delivered, 1 some not, 2 usage error. See docs/forge-sim.md.\n",
	      stdout);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (argc < 2)
		usage_error("no command (keys, send, schedule, fit)");
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		help();
		return EXIT_OK;
	}
	if (!strcmp(cmd, "--version")) {
		puts("forge-sim " SIM_VERSION);
		return EXIT_OK;
	}
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			help();
			return EXIT_OK;
		}
	static char cmdname[64];
	snprintf(cmdname, sizeof(cmdname), "forge-sim %s", cmd);
	g_cmd = cmdname;
	if (!strcmp(cmd, "keys"))
		return cmd_keys(argc - 2, argv + 2);
	if (!strcmp(cmd, "send"))
		return cmd_send(argc - 2, argv + 2);
	if (!strcmp(cmd, "schedule"))
		return cmd_schedule(argc - 2, argv + 2);
	if (!strcmp(cmd, "fit"))
		return cmd_fit(argc - 2, argv + 2);
	if (!strcmp(cmd, "ui"))
		return cmd_ui(argc - 2, argv + 2);
	g_cmd = "forge-sim";
	usage_error("unknown command '%s' (keys, send, schedule, fit)", cmd);
}
