/* intake.h - the worker's half of POST /forge/events and /forge/scheduled:
 * from a request http_api.c has read (a GW_JOB_INTAKE job) to an accepted
 * event in the events lane, or a refusal.
 *
 *  FIT check    -> 401 (token invalid, no app.installationId)
 *  JSON parse   -> 400 malformed_json
 *  extraction   -> 400 invalid_event (the event: body.payload or the bare
 *                  body; a scheduled trigger's event is built here)
 *  lifecycle    -> installed/upgraded payloads carry no eventType: inferred
 *  redelivery   -> 202 duplicate / 503 in_flight (dedup.h, keyed by
 *                  gw_intake_event_key)
 *  events lane  -> 503 queue_full when the lane is full
 *  journal      -> 202 duplicate (redelivery key known to the store, also
 *                  across restarts), 503 store_unavailable, or 202 accepted
 *                  once the event is durably journaled (store.h) and queued
 *                  in the lane; registry updated for lifecycle
 *                  events and scheduled triggers' system tokens.
 *
 * Every refusal of an intake request, on either thread, goes through
 * gw_intake_refusal: count, log ("event refused trace=T status=S ..."),
 * answer body.
 *
 * Ownership: gw_intake_run takes nothing (the caller frees the job); answers
 * go to the outbox. Threads: gw_intake_run on worker threads; the pure
 * functions on any thread.
 */
#ifndef GW_INTAKE_H
#define GW_INTAKE_H

#include <jansson.h>
#include <time.h>

#include "dedup.h"
#include "log.h"
#include "stats.h"

struct gw_app;
struct gw_job;

/* Queues every journaled, not done event (store.h pending) into the events
 * lane, in journal order, before any new intake: at start, before the
 * workers and the listener. *count: how many. 0 or a gw_store_rc. */
int gw_intake_replay_pending(struct gw_app *app, size_t *count);

/* Cluster mode (claimer.h): queues up to max events the shared store hands
 * this node (store.h claim). *count: how many. 0 or a gw_store_rc. */
int gw_intake_claim(struct gw_app *app, size_t max, size_t *count);

/* Runs one GW_JOB_INTAKE job to its answer (or hands the event to the
 * journal thread, which answers through gw_intake_journaled). */
void gw_intake_run(struct gw_app *app, struct gw_job *job);

/* The journal thread's outcome for an event (rc: GW_STORE_OK,
 * GW_STORE_DUPLICATE or an error): answers 202 / 202 duplicate / 503, keeps
 * the redelivery guard in step, and on success records lifecycle events and
 * system tokens and queues the event (takes ev). */
void gw_intake_journaled(struct gw_app *app, struct gw_job *ev, int rc);

/* A refusal of an intake request: counts stat, logs reason at level (no
 * line when reason is NULL), and returns body (taken) as compact JSON text
 * to answer with (NULL on out of memory). */
char *gw_intake_refusal(enum gw_stat stat, enum gw_log_level level, const char *trace_id, int status,
			const char *reason, json_t *body);

/* {"error": code, "message": message} */
json_t *gw_intake_error_body(const char *code, const char *message);

/* ---- pure steps, reachable from unit tests ------------------------------- */

struct gw_intake_event {
	json_t *event; /* new reference (also on refusal, may be NULL) */
	const char *type; /* effective event type: borrowed from event or type_buf */
	char type_buf[64]; /* "scheduled:<interval>" */
};

/* Finds the event in a parsed body: {"payload": event} or a bare event; for a
 * scheduled trigger (interval from the path, else body.interval, written back
 * into interval) builds {eventType: "scheduled:<interval>", interval,
 * installationId: inst, time: now as RFC 3339}. Returns NULL, or why the body
 * is refused (400 invalid_event). */
const char *gw_intake_extract(json_t *body, int scheduled, char interval[16], const char *inst, time_t now,
			      struct gw_intake_event *out);

/* The event's eventType, or for Forge lifecycle payloads (which carry none)
 * avi:forge:installed:app / avi:forge:upgraded:app inferred from
 * installerAccountId / upgraderAccountId next to app. NULL: no type. */
const char *gw_intake_event_type(const json_t *event);

/* installed or upgraded: recorded in the registry. */
int gw_intake_is_lifecycle(const char *type);

/* The redelivery key: SHA-256 over the installation and the event without
 * retryContext, object keys sorted (key order does not matter). 0 or -1. */
int gw_intake_event_key(const char *inst, json_t *event, unsigned char key[GW_DEDUP_KEY_LEN]);

/* The exp of a JWT-shaped token read without verifying it, or fallback. */
time_t gw_intake_unverified_exp(const char *token, time_t fallback);

#endif
