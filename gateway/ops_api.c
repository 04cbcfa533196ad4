/* ops_api.c - see ops_api.h.
 *
 * Readiness is a list of checks run in order, each cheap and non-blocking
 * (the service thread answers /readyz): adding a check is one line in
 * `checks`. A check that needs I/O that may block (a store round trip, a
 * Redis PING) must not run here: it belongs on a worker that records its
 * last result, which the check then reads. */
#include "ops_api.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "broker_redis.h"
#include "claimer.h"
#include "metrics.h"

/* A check returns NULL when it passes, else a short reason (static text). */
struct ready_check {
	const char *name;
	const char *(*fn)(struct gw_app *app);
};

static const char *check_stopping(struct gw_app *app)
{
	return app->stopping ? "the gateway is stopping" : NULL;
}

static const char *check_intake(struct gw_app *app)
{
	return app->intake_paused ? "intake is paused (SIGUSR1 or POST /admin/pause)" : NULL;
}

static const char *check_rules(struct gw_app *app)
{
	struct gw_rulebox *rb = &app->rulebox;
	pthread_mutex_lock(&rb->lock);
	int loaded = rb->set != NULL;
	pthread_mutex_unlock(&rb->lock);
	return loaded ? NULL : "no rule set loaded";
}

static const char *check_queue(struct gw_app *app)
{
	/* A full intake queue answers every event 503: take this instance out
	 * of rotation until it drains rather than let the balancer feed it. */
	return gw_workq_event_depth(&app->workq) >= (size_t)app->cfg.queue_capacity ? "the intake queue is full"
										      : NULL;
}

static const char *check_cluster(struct gw_app *app)
{
	/* The probe went through Redis and back: a node that silently stopped
	 * receiving (or whose Redis froze) is not ready. */
	if (app->redis_broker && !gw_broker_redis_ready(app->redis_broker, NULL))
		return "the Redis broker's probe did not come back (Redis down, frozen or unreachable)";
	/* the claim thread reads the journal every few ms: its last call failed */
	return gw_claimer_failing(app->claimer) ? "the shared store (Redis) does not answer" : NULL;
}

static const struct ready_check checks[] = {
	{"stopping", check_stopping},
	{"intake", check_intake},
	{"rules", check_rules},
	{"queue", check_queue},
	{"cluster", check_cluster},
};

char *gw_ops_readiness(struct gw_app *app, int *ready)
{
	json_t *j = NULL;
	*ready = 1;
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		const char *why = checks[i].fn(app);
		if (why) {
			*ready = 0;
			j = json_pack("{s:s, s:s, s:s}", "status", "not_ready", "check", checks[i].name, "reason", why);
			break;
		}
	}
	if (*ready)
		j = json_pack("{s:s}", "status", "ready");
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return text;
}

int gw_ops_answer(struct gw_app *app, const char *path, int *status, char **body, const char **content_type)
{
	if (!strcmp(path, "/metrics")) {
		*body = gw_metrics_render(app);
		*status = *body ? 200 : 503;
		/* the version Prometheus negotiates for the text format */
		*content_type = "text/plain; version=0.0.4; charset=utf-8";
		return 0;
	}
	if (!strcmp(path, "/livez")) {
		/* Answering at all proves the event loop turns; nothing else is
		 * checked, so a restart is never triggered by a busy dependency. */
		*body = strdup("{\"status\":\"alive\"}");
		*status = 200;
		*content_type = "application/json";
		return 0;
	}
	if (!strcmp(path, "/readyz")) {
		int ready;
		*body = gw_ops_readiness(app, &ready);
		*status = ready ? 200 : 503;
		*content_type = "application/json";
		return 0;
	}
	return -1;
}
