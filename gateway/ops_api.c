/* ops_api.c - see ops_api.h.
 *
 * Readiness is a list of checks run in order, each cheap and non-blocking
 * (the service thread answers /readyz): adding a check is one line in
 * `checks`. A check that needs I/O that may block (a store round trip, a
 * Redis PING) must not run here: it belongs on a thread that records its
 * last result, which the check then reads (the store: store_probe.h). */
#include "ops_api.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "broker_redis.h"
#include "claimer.h"
#include "metrics.h"
#include "store_probe.h"

/* A check returns NULL when it passes, else a short reason: static text or
 * written into buf. */
struct ready_check {
	const char *name;
	const char *(*fn)(struct gw_app *app, char *buf, size_t len);
};

static const char *check_stopping(struct gw_app *app, char *buf, size_t len)
{
	(void)buf;
	(void)len;
	return app->stopping ? "the gateway is stopping" : NULL;
}

static const char *check_intake(struct gw_app *app, char *buf, size_t len)
{
	(void)buf;
	(void)len;
	return app->intake_paused ? "intake is paused (SIGUSR1 or POST /admin/pause)" : NULL;
}

static const char *check_rules(struct gw_app *app, char *buf, size_t len)
{
	(void)buf;
	(void)len;
	struct gw_rulebox *rb = &app->rulebox;
	pthread_mutex_lock(&rb->lock);
	int loaded = rb->set != NULL;
	pthread_mutex_unlock(&rb->lock);
	return loaded ? NULL : "no rule set loaded";
}

static const char *check_queue(struct gw_app *app, char *buf, size_t len)
{
	(void)buf;
	(void)len;
	/* A full intake queue answers every event 503: take this instance out
	 * of rotation until it drains rather than let the balancer feed it. */
	return gw_workq_event_depth(&app->workq) >= (size_t)app->cfg.queue_capacity
		       ? "the intake queue is full"
		       : NULL;
}

static const char *check_cluster(struct gw_app *app, char *buf, size_t len)
{
	(void)buf;
	(void)len;
	/* The probe went through Redis and back: a node that silently stopped
	 * receiving (or whose Redis froze) is not ready. */
	if (app->redis_broker && !gw_broker_redis_ready(app->redis_broker, NULL))
		return "the Redis broker's probe did not come back (Redis down, frozen or unreachable)";
	/* the claim thread reads the journal every few ms: its last call failed */
	return gw_claimer_failing(app->claimer) ? "the shared store (Redis) does not answer" : NULL;
}

static const char *check_store(struct gw_app *app, char *buf, size_t len)
{
	if (!app->store_probe)
		return NULL; /* not serving yet (or any more): the other checks answer */
	struct gw_store_probe_state st;
	gw_store_probe_read(app->store_probe, &st);
	int64_t since_ok = gw_monotonic_ns() - st.ok_ns;
	if (st.rc != GW_STORE_OK) {
		snprintf(buf, len, "the last store round trip failed: %s", gw_store_strerror(st.rc));
		return buf;
	}
	if (since_ok > (int64_t)GW_STORE_PROBE_STALE_MS * 1000000) {
		/* one is under way and has not come back */
		snprintf(buf, len, "no store round trip has succeeded for %lld s",
			 (long long)(since_ok / 1000000000));
		return buf;
	}
	return NULL;
}

static const struct ready_check checks[] = {
	{"stopping", check_stopping}, {"intake", check_intake},	  {"rules", check_rules},
	{"queue", check_queue},	      {"cluster", check_cluster}, {"store", check_store},
};

/* The store probe's last result and its age, in every answer: an admin sees
 * the check run (and how stale it is) before it fails. */
static json_t *store_json(struct gw_app *app)
{
	if (!app->store_probe)
		return json_null();
	struct gw_store_probe_state st;
	gw_store_probe_read(app->store_probe, &st);
	int64_t now = gw_monotonic_ns();
	return json_pack("{s:b, s:I, s:o}", "ok", st.rc == GW_STORE_OK, "checkedMsAgo",
			 (json_int_t)((now - st.checked_ns) / 1000000), "okMsAgo",
			 st.ok_ns ? json_integer((json_int_t)((now - st.ok_ns) / 1000000)) : json_null());
}

char *gw_ops_readiness(struct gw_app *app, int *ready)
{
	json_t *j = NULL;
	char buf[160];
	*ready = 1;
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		const char *why = checks[i].fn(app, buf, sizeof(buf));
		if (why) {
			*ready = 0;
			j = json_pack("{s:s, s:s, s:s, s:o}", "status", "not_ready", "check", checks[i].name,
				      "reason", why, "store", store_json(app));
			break;
		}
	}
	if (*ready)
		j = json_pack("{s:s, s:o}", "status", "ready", "store", store_json(app));
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
