/* config.h - the gateway configuration: a YAML file, command-line flags that
 * override it, and defaults, all described by one option table (config.c).
 *
 * Ownership: struct gw_config owns its strings (gw_config_free). Threads:
 * loaded on the main thread before any other thread starts, then read-only.
 */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdio.h>

#define GW_CONFIG_MAX_REDIS 8

struct gw_config {
	char *listen; /* "HOST:PORT" as given */
	char *listen_host; /* parsed from listen */
	int listen_port;
	char *state_dir;
	char *rules; /* NULL: the embedded example rules */
	char *web_root;
	char *forge_app_id;
	char *forge_jwks; /* NULL: development key generated in state_dir */
	int forge_leeway;
	char *subscriber_key; /* PEM public key; NULL (and no secret): development HS256 secret */
	char *subscriber_secret; /* HS256 secret file (subscriber.hs256_secret) */
	char *subscriber_audience;
	char *signing_key; /* NULL: <state_dir>/signing-key.pem, generated */
	char *signing_issuer;
	int notification_ttl;
	int sign_batch_events; /* events per worker pass, one signature */
	int sign_window_us; /* a small pass waits this long for more events (0: never) */
	int sign_window_notifications; /* ... while it holds fewer notifications than this */
	int workers; /* 0: one per CPU */
	int queue_capacity;
	int verify_backlog;
	int auth_backlog; /* websocket logins waiting for token verification */
	int max_body;
	int ws_max_frame;
	int ws_max_pending_bytes;
	int ws_max_subscriptions;
	int ws_max_per_user; /* authenticated websockets per (installation, user); 0: no cap */
	int ws_max_per_address; /* websockets per client address; 0: no cap */
	int ws_max_unauth_per_address; /* websockets per client address not yet authenticated; 0: no cap */
	int ws_auth_timeout;
	int ws_ping_interval; /* 0: no pings, no idle close */
	int shutdown_grace;
	int dedup_capacity;
	int dedup_per_installation;
	int max_fds; /* soft RLIMIT_NOFILE set at start */
	int dedup_ttl;
	int seq_bytes; /* per-user seq map budget */
	int digest_bytes; /* activity tracker budget */
	int digest_title_bytes; /* one title in the tracker */
	int rule_scratch_bytes; /* bytes one rule evaluation may build */
	char *log_level;
	char *log_format; /* "text" or "json" (log.c) */
	char *tls_cert, *tls_key; /* PEM files: HTTPS/WSS on the public listener (tls.c) */
	char *admin_listen; /* HOST:PORT or unix socket path (admin_api.c); NULL: off */
	char *admin_token_file; /* the admin bearer token (http_api.c loads it; NULL: admin routes off) */
	int admin_trace_events; /* trace ring entries (trace.h) */
	int admin_trace_bytes;
	char *event_loop; /* "epoll" (libuv) or "poll" (lws's own) */
	char *subscription_path; /* POST: subscription tokens for Forge UI invocations */
	char *subscriber_contexts; /* list (one per line): context templates */
	int subscriber_token_ttl; /* seconds, minted tokens */
	char *subscriber_websocket_url; /* NULL: from the request's Host */
	char *cors_allowed_origins; /* list (one per line): exact origins or https://STAR.domain */
	char *dev_mode; /* "auto", "true" or "false" (dev_api.c) */
	int body_timeout; /* seconds for a whole request body, once its FIT is verified */
	int body_budget; /* bytes of bodies in flight (Content-Length) */
	int unverified_per_address; /* requests awaiting a FIT verdict per client address; 0: no cap */
	char *store; /* "sqlite" (STATE_DIR/notify.db) or "memory" (gateway/store.h) */
	char *durability; /* "fsync" or "os" */
	int history_retention; /* seconds a notification stays in the inbox at least */
	int history_per_user; /* notifications kept per (installation, user) */
	int shutdown_reconnect_spread; /* seconds: the close at stop names a random reconnect delay below it */
	char *redis[8]; /* cluster.redis: redis:// URLs, one per shard (none: no cluster) */
	int nredis;
	int cluster_timeout; /* milliseconds per Redis call */
	int cluster_claim_after; /* milliseconds before another node's unfinished event is taken over */
	char *node_id; /* NULL: hostname:port */
};

/* Fills defaults. */
void gw_config_defaults(struct gw_config *cfg);
void gw_config_free(struct gw_config *cfg);

/* Parses argv (after the program name) into cfg: --config FILE is read first,
 * then flags override it. Prints errors to err as "notify-gateway: ..." and
 * returns 2 on bad input, 1 when the caller should exit 0 (--help,
 * --version, output already printed to out), 0 to run. */
int gw_config_from_args(struct gw_config *cfg, int argc, char **argv, FILE *out, FILE *err);

/* Loads a YAML file into cfg (values override what is there). Errors are
 * written as "FILE:LINE:COL: error: message". Returns 0 or -1. */
int gw_config_load_file(struct gw_config *cfg, const char *path, FILE *err);

/* Checks cross-option consistency after loading; returns 0 or -1. */
int gw_config_validate(struct gw_config *cfg, FILE *err);

void gw_config_print_help(FILE *out);

/* 1 when host (an address or name, as in listen or a Host header without
 * its port) is loopback: localhost, *.localhost, 127.0.0.0/8, ::1. */
int gw_host_is_loopback(const char *host, size_t len);

#endif
