/* registry.h - the installations this gateway has heard of.
 *
 * Lifecycle events (avi:forge:installed:app, avi:forge:upgraded:app) are
 * recorded and persisted to STATE_DIR/installations.json (temporary file,
 * fsync, rename, fsync of the directory), so they survive restarts. The app
 * system token that scheduled triggers bring (x-forge-oauth-system) is kept
 * per installation in memory only, with its expiry; it is never logged or
 * written to disk (a restart forgets it until the next trigger, at most one
 * interval later).
 *
 * Ownership: the registry owns its JSON document and token copies.
 * Threads: any (one mutex); file writes happen on worker threads.
 */
#ifndef GW_REGISTRY_H
#define GW_REGISTRY_H

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "strmap.h"

struct gw_registry {
	pthread_mutex_t lock;
	char *path;
	json_t *installations; /* id -> record */
	struct gw_strmap tokens; /* id -> struct gw_system_token* */
};

/* Loads STATE_DIR/installations.json if it exists. Returns -1 with a message
 * on err when the file exists but cannot be read or parsed. */
int gw_registry_open(struct gw_registry *r, const char *state_dir, FILE *err);
void gw_registry_close(struct gw_registry *r);

/* Records a lifecycle event for installation `id`; fit is the verified FIT
 * claims (for apiBaseUrl, appVersion, environment). Persists. 0 or -1. */
int gw_registry_record(struct gw_registry *r, const char *id, const char *event_type, const json_t *event,
		       const json_t *fit, time_t now);

/* Keeps the system token (copied) and its expiry for installation id. */
void gw_registry_set_token(struct gw_registry *r, const char *id, const char *token, time_t exp);

/* The /healthz view: an array of installations with token freshness. */
json_t *gw_registry_health(struct gw_registry *r, time_t now);

#endif
