/* config.c - the option table, the YAML loader and the command line.
 *
 * One table describes every option: its YAML path, its flag (derived: dots
 * and underscores become dashes), type, default, range and help. Adding an
 * option is one line here plus a field in struct gw_config. The YAML file is
 * read with libyaml's document API so every error can name line and column.
 * Relative paths in a file are resolved against the file's directory; on the
 * command line, against the working directory.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "redis_conn.h"
#include "version.h"
#include "webroot.h"

enum opt_type {
	OPT_STR,
	OPT_PATH,
	OPT_INT,
	OPT_LISTEN,
	OPT_LOGLEVEL,
	OPT_EVLOOP,
	OPT_STORE,
	OPT_DURABILITY,
	OPT_LIST,
	OPT_LOGFORMAT,
	OPT_REDIS /* redis:// URLs: a YAML sequence, the flag repeatable (appends) */
};

struct opt {
	const char *name; /* YAML path, dotted */
	enum opt_type type;
	size_t offset;
	const char *def; /* default as text, NULL = unset */
	long min, max;
	const char *help;
};

#define OFF(f) offsetof(struct gw_config, f)

static const struct opt options[] = {
	{"listen", OPT_LISTEN, OFF(listen), "127.0.0.1:8080", 0, 0,
	 "HOST:PORT to listen on (port 0: the kernel picks; the line 'listening on http://HOST:PORT' is printed)"},
	{"state_dir", OPT_PATH, OFF(state_dir), ".notify-gateway", 0, 0,
	 "directory for generated keys and state"},
	{"rules", OPT_PATH, OFF(rules), NULL, 0, 0,
	 "rule file, or directory of *.yml rule files (default: the embedded example rules)"},
	{"web_root", OPT_PATH, OFF(web_root), NULL, 0, 0,
	 "files served at / [the installed web demo, else the source tree's web-demo/]"},
	{"log_level", OPT_LOGLEVEL, OFF(log_level), "notice", 0, 0, "error|warn|notice|info|debug"},
	{"tls.cert", OPT_PATH, OFF(tls_cert), NULL, 0, 0,
	 "PEM certificate (chain) for HTTPS/WSS on the public listener; with tls.key; reloaded on SIGHUP"},
	{"tls.key", OPT_PATH, OFF(tls_key), NULL, 0, 0, "PEM private key of tls.cert (no passphrase)"},
	{"admin.listen", OPT_STR, OFF(admin_listen), NULL, 0, 0,
	 "HOST:PORT (port 0: the kernel picks; 'admin listening on http://HOST:PORT' is printed) or a unix socket path for the admin API; off unless admin.token_file is set too"},
	{"admin.token_file", OPT_PATH, OFF(admin_token_file), NULL, 0, 0,
	 "file holding the admin bearer token (surrounding whitespace trimmed; 16-1000 characters): the admin listener's, or without admin.listen GET /admin/status on the public listener (unset: the admin routes answer 403)"},
	{"admin.trace_events", OPT_INT, OFF(admin_trace_events), "10000", 0, 1000000,
	 "events whose rule decisions the admin API remembers (GET /admin/trace; 0: none)"},
	{"admin.trace_bytes", OPT_INT, OFF(admin_trace_bytes), "16777216", 65536, 1073741824,
	 "bytes the remembered decisions may take at most (the oldest go first)"},
	{"log.format", OPT_LOGFORMAT, OFF(log_format), "text", 0, 0,
	 "text (one line: time level message) or json (one JSON object a line: ts, level, msg, trace, the event's fields)"},
	{"event_loop", OPT_EVLOOP, OFF(event_loop), "epoll", 0, 0,
	 "epoll (libwebsockets inside a libuv loop) or poll (libwebsockets' own poll(2) loop); see docs/configuration.md"},
	{"workers", OPT_INT, OFF(workers), "0", 0, 64, "worker threads (0: one per CPU)"},
	{"forge.app_id", OPT_STR, OFF(forge_app_id), NULL, 0, 0,
	 "the app ARI that FITs must name as aud (ari:cloud:ecosystem::app/<uuid>)"},
	{"forge.jwks", OPT_PATH, OFF(forge_jwks), NULL, 0, 0,
	 "JWKS file with the RSA keys that sign FITs (default: a development key in state_dir)"},
	{"forge.leeway", OPT_INT, OFF(forge_leeway), "60", 0, 60, "seconds of clock skew allowed on exp/nbf"},
	{"subscriber.key", OPT_PATH, OFF(subscriber_key), NULL, 0, 0,
	 "PEM public key (EC P-256: ES256, RSA: RS256) that verifies subscription tokens (default: a development HS256 secret in state_dir)"},
	{"subscriber.hs256_secret", OPT_PATH, OFF(subscriber_secret), NULL, 0, 0,
	 "file holding an HS256 secret (32-4096 bytes, mode 0600) for subscription tokens, instead of subscriber.key"},
	{"subscriber.audience", OPT_STR, OFF(subscriber_audience), NULL, 0, 0,
	 "required aud of subscription tokens (unset: aud not checked)"},
	{"subscriber.auth_timeout", OPT_INT, OFF(ws_auth_timeout), "10", 1, 300,
	 "seconds a new websocket has to send its connect frame"},
	{"subscriber.ping_interval", OPT_INT, OFF(ws_ping_interval), "30", 0, 3600,
	 "seconds of silence after which a websocket is pinged; silent twice as long: closed (0: never)"},
	{"signing.key", OPT_PATH, OFF(signing_key), NULL, 0, 0,
	 "EC P-256 private key (PEM) that signs notifications (default: state_dir/signing-key.pem, generated)"},
	{"signing.issuer", OPT_STR, OFF(signing_issuer), "notify-gateway", 0, 0, "iss of notifications"},
	{"signing.ttl", OPT_INT, OFF(notification_ttl), "3600", 10, 2592000,
	 "default notification lifetime in seconds (exp - iat)"},
	{"signing.batch_events", OPT_INT, OFF(sign_batch_events), "64", 1, 4096,
	 "queued events one worker takes at once and covers with one signature"},
	{"signing.window_us", OPT_INT, OFF(sign_window_us), "1000", 0, 100000,
	 "microseconds a worker whose pass holds few notifications waits for more events to share its signature (0: off)"},
	{"signing.window_notifications", OPT_INT, OFF(sign_window_notifications), "8", 1, 4096,
	 "a pass with fewer notifications than this waits (signing.window_us)"},
	{"limits.queue", OPT_INT, OFF(queue_capacity), "10000", 1, 10000000,
	 "accepted events waiting for the rules; full: 503 + Retry-After"},
	{"limits.verify_backlog", OPT_INT, OFF(verify_backlog), "1024", 1, 1000000,
	 "requests waiting for token verification; full: 503 + Retry-After"},
	{"limits.auth_backlog", OPT_INT, OFF(auth_backlog), "1024", 1, 1000000,
	 "websocket logins and token refreshes waiting for verification (a lane of their own); full: error busy"},
	{"limits.max_body", OPT_INT, OFF(max_body), "204800", 1024, 16777216,
	 "largest event body in bytes; larger: 413"},
	{"limits.ws_max_frame", OPT_INT, OFF(ws_max_frame), "16384", 256, 1048576,
	 "largest client frame in bytes; larger: error frame and close"},
	{"limits.ws_max_pending_bytes", OPT_INT, OFF(ws_max_pending_bytes), "1048576", 4096, 268435456,
	 "bytes queued to one connection (every frame counts); replies over half: reading stops; over all: closed as a slow consumer"},
	{"limits.ws_max_subscriptions", OPT_INT, OFF(ws_max_subscriptions), "64", 1, 100000,
	 "contexts one connection may subscribe to"},
	{"limits.ws_max_per_user", OPT_INT, OFF(ws_max_per_user), "64", 0, 1000000,
	 "websockets one user (installation, sub) may have connected at once (tabs); more: error too_many_connections, close 1008 (0: no cap)"},
	{"limits.ws_max_per_address", OPT_INT, OFF(ws_max_per_address), "0", 0, 4194304,
	 "websockets open at once from one client address, authenticated or not (0: no cap: many users may share one NAT address); more: error too_many_connections, close 1008"},
	{"limits.ws_max_unauthenticated_per_address", OPT_INT, OFF(ws_max_unauth_per_address), "1024", 0,
	 4194304,
	 "websockets from one client address not yet authenticated; more: error too_many_connections, close 1008 (0: no cap)"},
	{"forge.dedup_ttl", OPT_INT, OFF(dedup_ttl), "900", 600, 86400,
	 "seconds an accepted event is remembered so that Forge's redeliveries of it are ignored"},
	{"limits.max_fds", OPT_INT, OFF(max_fds), "65536", 256, 4194304,
	 "file descriptors (connections) the gateway sets as its soft RLIMIT_NOFILE, within the hard limit"},
	{"limits.dedup_entries", OPT_INT, OFF(dedup_capacity), "200000", 1000, 50000000,
	 "accepted events remembered for redelivery detection"},
	{"forge.subscription_path", OPT_STR, OFF(subscription_path), "/forge/subscription", 0, 0,
	 "path of the endpoint that mints subscription tokens for Forge UI invocations (FIT with principal)"},
	{"subscriber.contexts", OPT_LIST, OFF(subscriber_contexts),
	 "jira:issue:{{ context.extension.issue.key }},confluence:page:{{ context.extension.content.id }}", 0,
	 0,
	 "templates of the contexts a minted subscription token covers, from the FIT ('*': any context); a list, comma-separated as a flag"},
	{"subscriber.token_ttl", OPT_INT, OFF(subscriber_token_ttl), "900", 30, 86400,
	 "lifetime in seconds of subscription tokens minted by /forge/subscription"},
	{"subscriber.websocket_url", OPT_STR, OFF(subscriber_websocket_url), NULL, 0, 0,
	 "the websocket URL /forge/subscription answers (default: ws[s]://<Host of the request>/realtime)"},
	{"cors.allowed_origins", OPT_LIST, OFF(cors_allowed_origins), "https://*.cdn.prod.atlassian-dev.net",
	 0, 0,
	 "origins (exact, or https://*.domain) allowed to call the token endpoint and open websockets; a list, comma-separated as a flag"},
	{"limits.dedup_per_installation", OPT_INT, OFF(dedup_per_installation), "50000", 1, 50000000,
	 "accepted events remembered per installation (its own oldest goes first; capped at limits.dedup_entries)"},
	{"limits.seq_bytes", OPT_INT, OFF(seq_bytes), "67108864", 4096, 2147483647,
	 "bytes of per-user seq counters kept; over it the users notified least recently are forgotten (their seq jumps)"},
	{"limits.digest_bytes", OPT_INT, OFF(digest_bytes), "134217728", 4096, 2147483647,
	 "bytes of per-user activity kept for scheduled digests; over it new users are not tracked"},
	{"limits.digest_title_bytes", OPT_INT, OFF(digest_title_bytes), "200", 16, 65536,
	 "bytes of each title kept for digests (longer titles are cut at a UTF-8 boundary)"},
	{"limits.rule_scratch_bytes", OPT_INT, OFF(rule_scratch_bytes), "1048576", 4096, 268435456,
	 "bytes one rule expression or template may build (strings, lists); more: an evaluation error"},
	{"dev_mode", OPT_STR, OFF(dev_mode), "auto", 0, 0,
	 "auto|true|false: development keys and /dev/token, /dev/fit for what has no real key; auto: only on a loopback listener and for loopback Host names"},
	{"limits.body_timeout", OPT_INT, OFF(body_timeout), "10", 1, 300,
	 "seconds to receive a whole event body once its FIT is verified; later: 408 and close"},
	{"limits.body_budget", OPT_INT, OFF(body_budget), "67108864", 1048576, 2147483647,
	 "bytes of event bodies in flight (by Content-Length) across all requests; over: 503 + Retry-After"},
	{"limits.unverified_per_address", OPT_INT, OFF(unverified_per_address), "32", 0, 1000000,
	 "requests from one client address waiting for their FIT verdict (addresses that sent a valid FIT are exempt; 0: no cap); over: 429"},
	{"shutdown_grace", OPT_INT, OFF(shutdown_grace), "10", 0, 600,
	 "seconds SIGTERM waits for accepted events to be delivered"},
	{"store", OPT_STORE, OFF(store), "sqlite", 0, 0,
	 "sqlite (STATE_DIR/notify.db, survives restarts) or memory (tests, benchmarks); docs/storage.md"},
	{"durability", OPT_DURABILITY, OFF(durability), "fsync", 0, 0,
	 "fsync (a commit survives a power loss) or os (survives a process crash, not a power loss)"},
	{"history.retention", OPT_INT, OFF(history_retention), "2592000", 60, 157680000,
	 "seconds a notification stays in the inbox at least (kept until max(exp, created + this))"},
	{"history.per_user", OPT_INT, OFF(history_per_user), "1000", 1, 100000,
	 "notifications kept per user and installation (the oldest go first)"},
	{"shutdown.reconnect_spread", OPT_INT, OFF(shutdown_reconnect_spread), "5", 0, 3600,
	 "seconds over which clients closed by a stop are told to spread their reconnects (close reason reconnect_ms=N)"},
	{"cluster.redis", OPT_REDIS, OFF(redis), NULL, 0, 0,
	 "redis://[:password@]host:port/db of the Redis that several nodes share (cluster mode; --redis URL, repeat to shard users); docs/cluster.md"},
	{"cluster.timeout", OPT_INT, OFF(cluster_timeout), "2000", 50, 60000,
	 "milliseconds any one Redis call may take; then it fails (503 at intake) and the connection is made again with backoff"},
	{"cluster.claim_after", OPT_INT, OFF(cluster_claim_after), "10000", 100, 3600000,
	 "milliseconds an event may sit unfinished in another node's hands before this node takes it over"},
	{"node_id", OPT_STR, OFF(node_id), NULL, 0, 0,
	 "this node's name in the cluster (default: hostname:port)"},
};
#define NOPTS (sizeof(options) / sizeof(options[0]))

static char **field_str(struct gw_config *cfg, const struct opt *o)
{
	return (char **)((char *)cfg + o->offset);
}
static int *field_int(struct gw_config *cfg, const struct opt *o)
{
	return (int *)((char *)cfg + o->offset);
}

static int parse_listen(struct gw_config *cfg, const char *v, char *msg, size_t msglen)
{
	const char *colon = strrchr(v, ':');
	if (!colon || colon == v) {
		snprintf(msg, msglen, "expected HOST:PORT, got '%s'", v);
		return -1;
	}
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 0 || port > 65535) {
		snprintf(msg, msglen, "invalid port in '%s' (0-65535)", v);
		return -1;
	}
	size_t hlen = (size_t)(colon - v);
	const char *h = v;
	if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	free(cfg->listen_host);
	cfg->listen_host = strndup(h, hlen);
	cfg->listen_port = (int)port;
	return 0;
}

/* Sets option o from text v. base_dir resolves relative paths (NULL: as is). */
static int set_option(struct gw_config *cfg, const struct opt *o, const char *v, const char *base_dir,
		      char *msg, size_t msglen)
{
	switch (o->type) {
	case OPT_INT: {
		char *end;
		errno = 0;
		long n = strtol(v, &end, 10);
		if (errno || !*v || *end) {
			snprintf(msg, msglen, "'%s' expects an integer, got '%s'", o->name, v);
			return -1;
		}
		if (n < o->min || n > o->max) {
			snprintf(msg, msglen, "'%s' must be between %ld and %ld, got %ld", o->name, o->min,
				 o->max, n);
			return -1;
		}
		*field_int(cfg, o) = (int)n;
		return 0;
	}
	case OPT_LISTEN:
		if (parse_listen(cfg, v, msg, msglen))
			return -1;
		break;
	case OPT_LOGLEVEL:
		if (!strcmp(v, "warning"))
			v = "warn";
		if (strcmp(v, "error") && strcmp(v, "warn") && strcmp(v, "notice") && strcmp(v, "info") &&
		    strcmp(v, "debug")) {
			snprintf(msg, msglen, "'%s' must be error, warn, notice, info or debug, got '%s'",
				 o->name, v);
			return -1;
		}
		break;
	case OPT_LOGFORMAT:
		if (strcmp(v, "text") && strcmp(v, "json")) {
			snprintf(msg, msglen, "'%s' must be text or json, got '%s'", o->name, v);
			return -1;
		}
		break;
	case OPT_EVLOOP:
		if (strcmp(v, "epoll") && strcmp(v, "poll")) {
			snprintf(msg, msglen, "'%s' must be epoll or poll, got '%s'", o->name, v);
			return -1;
		}
		break;
	case OPT_STORE:
		if (strcmp(v, "sqlite") && strcmp(v, "memory")) {
			snprintf(msg, msglen, "'%s' must be sqlite or memory, got '%s'", o->name, v);
			return -1;
		}
		break;
	case OPT_DURABILITY:
		if (strcmp(v, "fsync") && strcmp(v, "os")) {
			snprintf(msg, msglen, "'%s' must be fsync or os, got '%s'", o->name, v);
			return -1;
		}
		break;
	case OPT_PATH:
		if (!*v) {
			snprintf(msg, msglen, "'%s' must not be empty", o->name);
			return -1;
		}
		if (base_dir && v[0] != '/') {
			char *p = NULL;
			if (asprintf(&p, "%s/%s", base_dir, v) < 0)
				return -1;
			free(*field_str(cfg, o));
			*field_str(cfg, o) = p;
			return 0;
		}
		break;
	case OPT_STR:
		if (!*v) {
			snprintf(msg, msglen, "'%s' must not be empty", o->name);
			return -1;
		}
		break;
	case OPT_REDIS: {
		char why[300];
		struct gw_redis_url u;
		if (gw_redis_url_parse(v, &u, why, sizeof(why))) {
			snprintf(msg, msglen, "'%s': %s", o->name, why);
			return -1;
		}
		if (cfg->nredis >= GW_CONFIG_MAX_REDIS) {
			snprintf(msg, msglen, "'%s': at most %d URLs", o->name, GW_CONFIG_MAX_REDIS);
			return -1;
		}
		char *copy = strdup(v);
		if (!copy)
			return -1;
		cfg->redis[cfg->nredis++] = copy;
		return 0;
	}
	case OPT_LIST: {
		/* Stored as its entries, trimmed, one per line; "" is the empty list. */
		char *out = malloc(strlen(v) + 1), *w = out;
		if (!out)
			return -1;
		for (const char *p = v; *p;) {
			size_t n = strcspn(p, ",\n");
			const char *b = p, *e = p + n;
			while (b < e && (*b == ' ' || *b == '\t'))
				b++;
			while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			if (e > b) {
				if (w != out)
					*w++ = '\n';
				memcpy(w, b, (size_t)(e - b));
				w += e - b;
			}
			p += n;
			if (*p)
				p++;
		}
		*w = '\0';
		free(*field_str(cfg, o));
		*field_str(cfg, o) = out;
		return 0;
	}
	}
	free(*field_str(cfg, o));
	*field_str(cfg, o) = strdup(v);
	return 0;
}

void gw_config_defaults(struct gw_config *cfg)
{
	char msg[256];
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NOPTS; i++)
		if (options[i].def)
			set_option(cfg, &options[i], options[i].def, NULL, msg, sizeof(msg));
	cfg->web_root = gw_default_web_root();
}

void gw_config_free(struct gw_config *cfg)
{
	for (int i = 0; i < cfg->nredis; i++)
		free(cfg->redis[i]);
	cfg->nredis = 0;
	for (size_t i = 0; i < NOPTS; i++)
		if (options[i].type != OPT_INT && options[i].type != OPT_REDIS) {
			free(*field_str(cfg, &options[i]));
			*field_str(cfg, &options[i]) = NULL;
		}
	free(cfg->listen_host);
	cfg->listen_host = NULL;
}

static const struct opt *find_option(const char *name)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (!strcmp(options[i].name, name))
			return &options[i];
	return NULL;
}

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return 99;
	size_t d[65][65];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
			d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
	return d[la][lb];
}

/* The nearest option name within distance 2 of `name`, or NULL. */
static const char *suggest(const char *name, int as_flag)
{
	const char *best = NULL;
	size_t best_d = 3;
	static char flag[96];
	for (size_t i = 0; i < 2 * NOPTS; i++) {
		char cand[96];
		snprintf(cand, sizeof(cand), "%s", options[i / 2].name);
		if (i % 2) { /* the section a dotted option lives in, e.g. "limits" */
			char *dot = strchr(cand, '.');
			if (!dot || as_flag)
				continue;
			*dot = '\0';
		}
		if (as_flag)
			for (char *p = cand; *p; p++)
				if (*p == '.' || *p == '_')
					*p = '-';
		size_t d = edit_distance(name, cand);
		if (d < best_d) {
			best_d = d;
			snprintf(flag, sizeof(flag), "%s", cand);
			best = flag;
		}
	}
	return best;
}

/* ---- YAML --------------------------------------------------------------- */

struct yaml_ctx {
	struct gw_config *cfg;
	const char *path;
	char *base_dir;
	yaml_document_t *doc;
	FILE *err;
	int errors;
};

static void yerr(struct yaml_ctx *y, yaml_node_t *node, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void yerr(struct yaml_ctx *y, yaml_node_t *node, const char *fmt, ...)
{
	va_list ap;
	fprintf(y->err, "%s:%zu:%zu: error: ", y->path, node->start_mark.line + 1,
		node->start_mark.column + 1);
	va_start(ap, fmt);
	vfprintf(y->err, fmt, ap);
	va_end(ap);
	fputc('\n', y->err);
	y->errors++;
}

static void walk_mapping(struct yaml_ctx *y, yaml_node_t *map, const char *prefix)
{
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(y->doc, p->key);
		yaml_node_t *v = yaml_document_get_node(y->doc, p->value);
		if (!k || !v)
			continue;
		if (k->type != YAML_SCALAR_NODE) {
			yerr(y, k, "option names must be plain words");
			continue;
		}
		char name[160];
		snprintf(name, sizeof(name), "%s%s%s", prefix, *prefix ? "." : "",
			 (const char *)k->data.scalar.value);
		const struct opt *o = find_option(name);
		if (!o) {
			/* A section such as forge: or limits: */
			size_t nl = strlen(name);
			int is_section = 0;
			for (size_t i = 0; i < NOPTS; i++)
				if (!strncmp(options[i].name, name, nl) && options[i].name[nl] == '.')
					is_section = 1;
			if (is_section && v->type == YAML_MAPPING_NODE) {
				walk_mapping(y, v, name);
				continue;
			}
			if (is_section) {
				yerr(y, v, "'%s' must be a mapping of options", name);
				continue;
			}
			const char *near = suggest(name, 0);
			if (near)
				yerr(y, k, "unknown option '%s'; did you mean '%s'?", name, near);
			else
				yerr(y, k, "unknown option '%s'", name);
			continue;
		}
		if (o->type == OPT_REDIS) { /* a URL or a list of them; the file's list replaces */
			for (int i = 0; i < y->cfg->nredis; i++)
				free(y->cfg->redis[i]);
			y->cfg->nredis = 0;
			if (v->type == YAML_SEQUENCE_NODE) {
				for (yaml_node_item_t *it = v->data.sequence.items.start;
				     it < v->data.sequence.items.top; it++) {
					yaml_node_t *e = yaml_document_get_node(y->doc, *it);
					char msg[400];
					if (!e || e->type != YAML_SCALAR_NODE)
						yerr(y, v, "'%s' expects a list of redis:// URLs", name);
					else if (set_option(y->cfg, o, (const char *)e->data.scalar.value,
							    NULL, msg, sizeof(msg)))
						yerr(y, e, "%s", msg);
				}
				continue;
			}
		}
		if (o->type == OPT_LIST && v->type == YAML_SEQUENCE_NODE) {
			/* A YAML list: its scalars, one per line (an entry may not hold a newline). */
			size_t cap = 1;
			for (yaml_node_item_t *it = v->data.sequence.items.start;
			     it < v->data.sequence.items.top; it++) {
				yaml_node_t *e = yaml_document_get_node(y->doc, *it);
				cap += e && e->type == YAML_SCALAR_NODE
					       ? strlen((const char *)e->data.scalar.value) + 1
					       : 0;
			}
			char *joined = calloc(1, cap);
			int bad = !joined;
			for (yaml_node_item_t *it = v->data.sequence.items.start;
			     !bad && it < v->data.sequence.items.top; it++) {
				yaml_node_t *e = yaml_document_get_node(y->doc, *it);
				if (!e || e->type != YAML_SCALAR_NODE ||
				    strpbrk((const char *)e->data.scalar.value, ",\n")) {
					yerr(y, e ? e : v,
					     "'%s' entries must be single-line strings without commas", name);
					bad = 1;
					break;
				}
				if (*joined)
					strcat(joined, "\n");
				strcat(joined, (const char *)e->data.scalar.value);
			}
			char msg[256];
			if (!bad && set_option(y->cfg, o, joined, NULL, msg, sizeof(msg)))
				yerr(y, v, "%s", msg);
			free(joined);
			continue;
		}
		if (v->type != YAML_SCALAR_NODE) {
			yerr(y, v, "'%s' expects a single value", name);
			continue;
		}
		char msg[256];
		if (set_option(y->cfg, o, (const char *)v->data.scalar.value,
			       o->type == OPT_PATH ? y->base_dir : NULL, msg, sizeof(msg)))
			yerr(y, v, "%s", msg);
	}
}

int gw_config_load_file(struct gw_config *cfg, const char *path, FILE *err)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(err, "notify-gateway: cannot read config file '%s': %s\n", path, strerror(errno));
		return -1;
	}
	yaml_parser_t parser;
	yaml_document_t doc;
	struct yaml_ctx y = {.cfg = cfg, .path = path, .doc = &doc, .err = err};
	const char *slash = strrchr(path, '/');
	y.base_dir = slash ? strndup(path, (size_t)(slash - path ? slash - path : 1)) : NULL;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		fprintf(err, "%s:%zu:%zu: error: %s\n", path, parser.problem_mark.line + 1,
			parser.problem_mark.column + 1, parser.problem ? parser.problem : "invalid YAML");
		yaml_parser_delete(&parser);
		fclose(f);
		free(y.base_dir);
		return -1;
	}
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (!root) {
		/* An empty file: all defaults. */
	} else if (root->type != YAML_MAPPING_NODE) {
		yerr(&y, root, "the config file must be a mapping of options");
	} else {
		walk_mapping(&y, root, "");
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	fclose(f);
	free(y.base_dir);
	return y.errors ? -1 : 0;
}

/* ---- command line -------------------------------------------------------- */

void gw_config_print_help(FILE *out)
{
	fprintf(out, "Usage: notify-gateway [--config FILE] [OPTIONS]\n"
		     "       notify-gateway --check-config [--config FILE] [OPTIONS]\n"
		     "       notify-gateway --version | --help\n\n"
		     "Takes Forge remote invocations (POST /forge/events), evaluates the rule file and\n"
		     "pushes signed per-user notifications over websockets (/realtime).\n"
		     "Without options it runs on the embedded default configuration.\n\n"
		     "Options (each also settable in the YAML config file under the name shown):\n"
		     "  --config FILE                 read options from a YAML file; flags override it\n");
	for (size_t i = 0; i < NOPTS; i++) {
		char flag[96];
		snprintf(flag, sizeof(flag), "%s", options[i].name);
		for (char *p = flag; *p; p++)
			if (*p == '.' || *p == '_')
				*p = '-';
		char left[128];
		snprintf(left, sizeof(left), "--%s %s", flag,
			 options[i].type == OPT_INT	? "N"
			 : options[i].type == OPT_PATH	? "FILE"
			 : options[i].type == OPT_LIST	? "A,B"
			 : options[i].type == OPT_REDIS ? "URL"
							: "VALUE");
		fprintf(out, "  %-29s %s", left, options[i].help);
		if (options[i].def && strcmp(options[i].name, "web_root"))
			fprintf(out, " [%s]", options[i].def);
		fprintf(out, "\n      (config: %s)\n", options[i].name);
	}
	fprintf(out, "\nSignals: SIGHUP reloads the rules, SIGTERM/SIGINT stop gracefully.\n"
		     "Exit codes: 0 normal stop, 1 runtime failure, 2 bad command line or config.\n");
}

static const struct opt *find_flag(const char *flag)
{
	if (!strcmp(flag, "redis")) /* --redis URL: short for --cluster-redis */
		flag = "cluster-redis";
	for (size_t i = 0; i < NOPTS; i++) {
		char f[96];
		snprintf(f, sizeof(f), "%s", options[i].name);
		for (char *p = f; *p; p++)
			if (*p == '.' || *p == '_')
				*p = '-';
		if (!strcmp(f, flag))
			return &options[i];
	}
	return NULL;
}

int gw_config_from_args(struct gw_config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
	const char *config_path = NULL;
	/* Pass 1: --help/--version/--config, and syntax of every flag. */
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			gw_config_print_help(out);
			return 1;
		}
		if (!strcmp(a, "--version")) {
			fprintf(out, "notify-gateway %s\n", GW_VERSION);
			return 1;
		}
		if (strncmp(a, "--", 2) != 0) {
			fprintf(err, "notify-gateway: unexpected argument '%s' (see --help)\n", a);
			return 2;
		}
		const char *eq = strchr(a, '=');
		char name[96];
		snprintf(name, sizeof(name), "%.*s", (int)(eq ? (size_t)(eq - a - 2) : strlen(a + 2)), a + 2);
		if (strcmp(name, "config") && !find_flag(name)) {
			const char *near = suggest(name, 1);
			if (near)
				fprintf(err, "notify-gateway: unknown option '--%s'; did you mean '--%s'?\n",
					name, near);
			else
				fprintf(err, "notify-gateway: unknown option '--%s' (see --help)\n", name);
			return 2;
		}
		if (!eq) {
			if (i + 1 >= argc) {
				fprintf(err, "notify-gateway: option '--%s' needs a value\n", name);
				return 2;
			}
			i++;
		}
		if (!strcmp(name, "config"))
			config_path = eq ? eq + 1 : argv[i];
	}
	if (config_path && gw_config_load_file(cfg, config_path, err))
		return 2;
	/* Pass 2: flags override the file (--redis flags replace the file's list). */
	int redis_flags = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *eq = strchr(a, '=');
		char name[96];
		snprintf(name, sizeof(name), "%.*s", (int)(eq ? (size_t)(eq - a - 2) : strlen(a + 2)), a + 2);
		const char *value = eq ? eq + 1 : argv[++i];
		if (!strcmp(name, "config"))
			continue;
		if (find_flag(name)->type == OPT_REDIS && !redis_flags++) {
			for (int k = 0; k < cfg->nredis; k++)
				free(cfg->redis[k]);
			cfg->nredis = 0;
		}
		char msg[400];
		if (set_option(cfg, find_flag(name), value, NULL, msg, sizeof(msg))) {
			fprintf(err, "notify-gateway: --%s: %s\n", name, msg);
			return 2;
		}
	}
	return gw_config_validate(cfg, err) ? 2 : 0;
}

int gw_host_is_loopback(const char *host, size_t len)
{
	char h[256];
	if (len >= sizeof(h))
		return 0;
	memcpy(h, host, len);
	h[len] = '\0';
	if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
		memmove(h, h + 1, len - 2);
		h[len - 2] = '\0';
	}
	for (char *c = h; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	size_t n = strlen(h);
	if (n && h[n - 1] == '.') /* "localhost." */
		h[--n] = '\0';
	if (!strcmp(h, "localhost") || (n > 10 && !strcmp(h + n - 10, ".localhost")) || !strcmp(h, "::1"))
		return 1;
	unsigned a, b, c, d;
	char tail;
	return sscanf(h, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 && c < 256 &&
	       d < 256;
}

int gw_config_validate(struct gw_config *cfg, FILE *err)
{
	const char *dev_mode = cfg->dev_mode ? cfg->dev_mode : "auto";
	if (strcmp(dev_mode, "auto") && strcmp(dev_mode, "true") && strcmp(dev_mode, "false")) {
		fprintf(err, "notify-gateway: 'dev_mode' must be auto, true or false, got '%s'\n", dev_mode);
		return -1;
	}
	/* Development keys stand in for a real key that is not configured.
	 * Half a production setup (one real key) is refused unless the listener
	 * is loopback (a developer's machine) or development mode is explicit. */
	int dev_forge = !cfg->forge_jwks, dev_sub = !cfg->subscriber_key;
	int loopback = cfg->listen_host && gw_host_is_loopback(cfg->listen_host, strlen(cfg->listen_host));
	if (dev_forge != dev_sub && !loopback && strcmp(dev_mode, "true")) {
		fprintf(err,
			"notify-gateway: %s is set but %s is not: the %s would be checked with a "
			"generated development key on %s. Set %s too, or dev_mode: true to run half in "
			"development mode on purpose\n",
			dev_forge ? "subscriber.key" : "forge.jwks",
			dev_forge ? "forge.jwks" : "subscriber.key",
			dev_forge ? "Forge Invocation Tokens" : "subscription tokens", cfg->listen,
			dev_forge ? "forge.jwks and forge.app_id" : "subscriber.key");
		return -1;
	}
	if ((dev_forge || dev_sub) && !strcmp(dev_mode, "false")) {
		fprintf(err, "notify-gateway: dev_mode is false but %s not set: configure the real keys\n",
			dev_forge && dev_sub ? "forge.jwks and subscriber.key are"
			: dev_forge	     ? "forge.jwks is"
					     : "subscriber.key is");
		return -1;
	}
	if (cfg->forge_jwks && !cfg->forge_app_id) {
		fprintf(err, "notify-gateway: forge.jwks is set but forge.app_id is not: FITs are checked "
			     "against the app ARI (--forge-app-id ari:cloud:ecosystem::app/<uuid>)\n");
		return -1;
	}
	if (cfg->subscription_path &&
	    (cfg->subscription_path[0] != '/' || strlen(cfg->subscription_path) > 100 ||
	     strpbrk(cfg->subscription_path, "?# "))) {
		fprintf(err,
			"notify-gateway: forge.subscription_path must be a path such as /forge/subscription "
			"(at most 100 characters, no query), got '%s'\n",
			cfg->subscription_path);
		return -1;
	}
	if (cfg->cors_allowed_origins) {
		for (const char *p = cfg->cors_allowed_origins; *p;) {
			size_t n = strcspn(p, "\n");
			size_t skip = !strncmp(p, "https://", 8) ? 8 : !strncmp(p, "http://", 7) ? 7 : 0;
			if (!skip || n <= skip || memchr(p + skip, '/', n - skip) ||
			    memchr(p + skip, '?', n - skip)) {
				fprintf(err,
					"notify-gateway: cors.allowed_origins: '%.*s' is not an origin "
					"(scheme://host[:port], or https://*.domain)\n",
					(int)n, p);
				return -1;
			}
			p += n;
			if (*p)
				p++;
		}
	}
	if (cfg->subscriber_key && cfg->subscriber_secret) {
		fprintf(err, "notify-gateway: subscriber.key and subscriber.hs256_secret are both set; "
			     "subscription tokens are verified with exactly one key: set one of them\n");
		return -1;
	}
	if (cfg->forge_app_id && strncmp(cfg->forge_app_id, "ari:cloud:ecosystem::app/", 25) != 0) {
		fprintf(err,
			"notify-gateway: forge.app_id must look like ari:cloud:ecosystem::app/<uuid>, "
			"got '%s'\n",
			cfg->forge_app_id);
		return -1;
	}
	return 0;
}
