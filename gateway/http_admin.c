/* http_admin.c - the admin bearer token (admin.token_file: loaded once,
 * kept as its SHA-256, compared in constant time) and the detailed status
 * JSON; shared by the public GET /admin/status (http_api.c) and the admin
 * listener (admin_api.c). See http_admin.h.
 *
 * Ownership: the token's hash lives in app->http (struct gw_http_state);
 * the status text returned is the caller's.
 * Threads: gw_http_admin_load on main before the server runs; the rest on
 * the service thread (the status takes the rulebox, dedup and seq locks
 * briefly to read their counts).
 */
#include "http_admin.h"

#include <ctype.h>
#include <errno.h>
#include <libwebsockets.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "app.h"
#include "broker_redis.h"
#include "http_api.h"
#include "stats.h"
#include "version.h"

int gw_http_admin_load(struct gw_http_state *h, const char *path, char *err, size_t errlen)
{
	h->admin_enabled = 0;
	if (!path)
		return 0;
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "cannot read admin.token_file %s: %s", path, strerror(errno));
		return -1;
	}
	char buf[1024];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	size_t a = 0; /* surrounding whitespace is not part of the token */
	while (a < n && isspace((unsigned char)buf[a]))
		a++;
	while (n > a && isspace((unsigned char)buf[n - 1]))
		n--;
	if (n - a < 16 || n >= sizeof(buf) - 1) {
		snprintf(err, errlen, "admin.token_file %s must hold one token of 16 to 1000 characters",
			 path);
		OPENSSL_cleanse(buf, sizeof(buf));
		return -1;
	}
	unsigned int hl = 0;
	int ok = EVP_Digest(buf + a, n - a, h->admin_hash, &hl, EVP_sha256(), NULL) && hl == 32;
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!ok) {
		snprintf(err, errlen, "cannot hash the admin token");
		return -1;
	}
	h->admin_enabled = 1;
	return 0;
}

/* The Authorization bearer against admin.token_file: both hashed, compared
 * in constant time (no length or prefix leaks). */
int gw_http_admin_authorized(struct gw_app *app, struct lws *wsi)
{
	if (!app->http.admin_enabled)
		return 0;
	char auth[1100];
	int n = lws_hdr_copy(wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION);
	if (n < 8 || strncasecmp(auth, "Bearer ", 7))
		return 0;
	const char *tok = auth + 7;
	while (*tok == ' ')
		tok++;
	unsigned char hash[32];
	unsigned int hl = 0;
	int ok = EVP_Digest(tok, strlen(tok), hash, &hl, EVP_sha256(), NULL) && hl == 32 &&
		 CRYPTO_memcmp(hash, app->http.admin_hash, 32) == 0;
	OPENSSL_cleanse(auth, sizeof(auth));
	return ok;
}

static char *health_json(struct gw_app *app)
{
	struct gw_rulebox *rb = &app->rulebox;
	json_t *counters = json_object();
	for (int i = 0; i < GW_STAT__COUNT; i++)
		json_object_set_new(counters, gw_stat_names[i], json_integer((json_int_t)gw_stat_get(i)));
	char loaded[32] = "";
	pthread_mutex_lock(&rb->lock);
	struct tm tm;
	gmtime_r(&rb->loaded_at, &tm);
	strftime(loaded, sizeof(loaded), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_t *rules = json_pack("{s:I, s:s, s:s, s:s, s:o, s:{s:I, s:I}}", "count",
				  (json_int_t)(rb->set ? rules_set_count(rb->set) : 0), "version",
				  rb->set ? rules_set_version(rb->set) : "", "source",
				  rb->source ? rb->source : "", "loadedAt", loaded, "lastReloadError",
				  rb->last_error ? json_string(rb->last_error) : json_null(), "reloads", "ok",
				  (json_int_t)rb->reloads_ok, "failed", (json_int_t)rb->reloads_failed);
	pthread_mutex_unlock(&rb->lock);
	json_t *j = json_pack("{s:s, s:s, s:I, s:o, s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I}, s:i, s:o}",
			      "status", app->stopping ? "stopping" : "ok", "version", GW_VERSION,
			      "uptimeSeconds", (json_int_t)(time(NULL) - app->started_at), "rules", rules,
			      "queue", "depth", (json_int_t)gw_workq_event_depth(&app->workq), "capacity",
			      (json_int_t)app->cfg.queue_capacity, "verifying",
			      (json_int_t)gw_workq_verify_depth(&app->workq), "verifyCapacity",
			      (json_int_t)app->cfg.verify_backlog, "connections", "websocket",
			      (json_int_t)app->ws_connections, "subscriptions",
			      (json_int_t)app->broker->ops->subscription_count(app->broker), "workers",
			      app->nworkers, "counters", counters);
	if (j) {
		json_object_set_new(j, "intake", json_string(app->intake_paused ? "paused" : "open"));
		if (app->redis_broker) /* cluster mode: every node's rule version */
			json_object_set_new(j, "cluster", gw_broker_redis_nodes_json(app->redis_broker));
		json_object_set_new(j, "installations", gw_registry_health(&app->registry, time(NULL)));
		pthread_mutex_lock(&app->dedup.lock);
		json_object_set_new(j, "redelivery",
				    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "remembered",
					      (json_int_t)app->dedup.count, "capacity",
					      (json_int_t)app->dedup.capacity, "perInstallation",
					      (json_int_t)app->dedup.per_installation, "installations",
					      (json_int_t)app->dedup.insts.count, "ttlSeconds",
					      (json_int_t)app->dedup.ttl, "evictedEarly",
					      (json_int_t)app->dedup.evicted_early, "evictedOwnShare",
					      (json_int_t)app->dedup.evicted_own_share, "evictedFairShare",
					      (json_int_t)app->dedup.evicted_fair_share));
		pthread_mutex_unlock(&app->dedup.lock);
		pthread_mutex_lock(&app->seq.lock); /* the activity tracker lives under it */
		json_object_set_new(j, "digests",
				    json_pack("{s:I, s:I, s:I, s:I}", "tracked",
					      (json_int_t)app->activity.users.count, "bytes",
					      (json_int_t)app->activity.bytes, "maxBytes",
					      (json_int_t)app->activity.max_bytes, "untracked",
					      (json_int_t)app->activity.dropped));
		pthread_mutex_unlock(&app->seq.lock);
	}
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_INDENT(0)) : NULL;
	json_decref(j);
	return text;
}

/* The detailed health for the admin API (admin_api.c). */
char *gw_http_status_json(struct gw_app *app)
{
	return health_json(app);
}
