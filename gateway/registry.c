/* registry.c - see registry.h. */
#include "registry.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gw/atomic_file.h"
#include "log.h"

#define TOKEN_EXPIRING_SECONDS (2 * 3600)

struct gw_system_token {
	char *token;
	time_t exp;
};

static void free_token(void *v)
{
	struct gw_system_token *t = v;
	if (!t)
		return;
	if (t->token) {
		memset(t->token, 0, strlen(t->token));
		free(t->token);
	}
	free(t);
}

int gw_registry_open(struct gw_registry *r, const char *state_dir, FILE *err)
{
	memset(r, 0, sizeof(*r));
	if (asprintf(&r->path, "%s/installations.json", state_dir) < 0)
		return -1;
	if (pthread_mutex_init(&r->lock, NULL) || gw_strmap_init(&r->tokens, 64))
		return -1;
	if (access(r->path, F_OK) != 0) {
		r->installations = json_object();
		return 0;
	}
	json_error_t jerr;
	json_t *doc = json_load_file(r->path, 0, &jerr);
	json_t *inst = doc ? json_object_get(doc, "installations") : NULL;
	if (!json_is_object(inst)) {
		fprintf(err,
			"notify-gateway: %s:%d:%d: %s (move the file aside to start with an empty registry)\n",
			r->path, jerr.line, jerr.column,
			doc ? "expected {\"installations\": {...}}" : jerr.text);
		json_decref(doc);
		return -1;
	}
	r->installations = json_incref(inst);
	json_decref(doc);
	return 0;
}

void gw_registry_close(struct gw_registry *r)
{
	json_decref(r->installations);
	gw_strmap_free(&r->tokens, free_token);
	free(r->path);
	pthread_mutex_destroy(&r->lock);
}

static void iso_time(time_t t, char out[32])
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void copy_string(json_t *dst, const char *key, const json_t *v)
{
	if (json_is_string(v))
		json_object_set_new(dst, key, json_string(json_string_value(v)));
}

int gw_registry_record(struct gw_registry *r, const char *id, const char *event_type, const json_t *event,
		       const json_t *fit, time_t now)
{
	char when[32];
	iso_time(now, when);
	int installed = !strcmp(event_type, "avi:forge:installed:app");
	const json_t *app = json_object_get(fit, "app");
	const json_t *eapp = json_object_get(event, "app");
	pthread_mutex_lock(&r->lock); /* ---- registry lock { */
	json_t *rec = json_object_get(r->installations, id);
	if (!rec) {
		rec = json_object();
		json_object_set_new(r->installations, id, rec);
	}
	json_object_set_new(rec, installed ? "installedAt" : "upgradedAt", json_string(when));
	copy_string(rec, installed ? "installerAccountId" : "upgraderAccountId",
		    json_object_get(event, installed ? "installerAccountId" : "upgraderAccountId"));
	copy_string(rec, "appVersion", json_object_get(eapp, "version"));
	copy_string(rec, "appVersion", json_object_get(app, "appVersion"));
	copy_string(rec, "apiBaseUrl", json_object_get(app, "apiBaseUrl"));
	copy_string(rec, "environment", json_object_get(json_object_get(app, "environment"), "type"));
	copy_string(rec, "lifecycleEventId", json_object_get(event, "id"));
	json_object_set_new(rec, "lastEvent", json_string(event_type));
	json_t *doc = json_pack("{s:i, s:O}", "version", 1, "installations", r->installations);
	char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
	json_decref(doc);
	char err[256] = "out of memory";
	int rc = text ? gw_write_file_atomic(r->path, text, strlen(text), 0600, err, sizeof(err)) : -1;
	pthread_mutex_unlock(&r->lock); /* } registry lock ---- */
	free(text);
	if (rc)
		gw_log(GW_LOG_ERR, "registry: cannot write %s: %s", r->path, err);
	return rc;
}

void gw_registry_set_token(struct gw_registry *r, const char *id, const char *token, time_t exp)
{
	struct gw_system_token *t = calloc(1, sizeof(*t));
	if (!t || !(t->token = strdup(token))) {
		free(t);
		return;
	}
	t->exp = exp;
	pthread_mutex_lock(&r->lock);
	struct gw_strmap_entry *e = gw_strmap_upsert(&r->tokens, id, strlen(id), NULL);
	if (e) {
		free_token(e->value);
		e->value = t;
		t = NULL;
	}
	pthread_mutex_unlock(&r->lock);
	free_token(t);
}

json_t *gw_registry_health(struct gw_registry *r, time_t now)
{
	json_t *list = json_array();
	pthread_mutex_lock(&r->lock);
	/* Installations known from lifecycle events or from a token. */
	json_t *seen = json_object();
	const char *id;
	json_t *rec;
	json_object_foreach (r->installations, id, rec)
		json_object_set_new(seen, id, json_deep_copy(rec));
	for (size_t i = 0; i < r->tokens.nbuckets; i++)
		for (struct gw_strmap_entry *e = r->tokens.buckets[i]; e; e = e->next)
			if (!json_object_get(seen, e->key))
				json_object_set_new(seen, e->key, json_object());
	json_object_foreach (seen, id, rec) {
		json_t *item = json_deep_copy(rec);
		json_object_set_new(item, "id", json_string(id));
		struct gw_system_token *t = gw_strmap_get(&r->tokens, id, strlen(id));
		if (!t) {
			json_object_set_new(item, "systemToken", json_string("none"));
		} else {
			const char *state = t->exp <= now			     ? "expired"
					    : t->exp - now <= TOKEN_EXPIRING_SECONDS ? "expiring"
										     : "valid";
			char when[32];
			iso_time(t->exp, when);
			json_object_set_new(item, "systemToken", json_string(state));
			json_object_set_new(item, "systemTokenExp", json_string(when));
		}
		json_array_append_new(list, item);
	}
	pthread_mutex_unlock(&r->lock);
	json_decref(seen);
	return list;
}
