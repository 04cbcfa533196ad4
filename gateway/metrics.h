/* metrics.h - latency histograms and the Prometheus text exposition
 * (GET /metrics, docs/operations.md).
 *
 * Histograms have fixed bucket bounds (seconds, the same for all of them)
 * and are fixed arrays of C11 atomics: observing is a few relaxed atomic adds,
 * from any thread, with no lock and no allocation. Rendering reads the
 * counters of stats.h, these histograms and a few gauges of the app; it runs
 * on the service thread (it reads service-thread-only state such as the
 * websocket count) and takes the same locks /healthz takes, one at a time.
 *
 * Labels are bounded by construction: a counter family's reason (the stats.h
 * name suffix) and nothing else; never a user, context or installation.
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define GW_HISTOGRAMS(X)                                                                                     \
	X(event_to_frame,                                                                                    \
	  "seconds from an event's request completing to its frames being queued to connections")            \
	X(intake_answer, "seconds from an intake request's headers to its answer being written")             \
	X(rule_evaluation, "seconds one event's rule evaluation took (all rules of the set)")                \
	X(store_commit, "seconds one store transaction took to commit")

enum gw_hist {
#define GW_HIST_ENUM(name, help) GW_HIST_##name,
	GW_HISTOGRAMS(GW_HIST_ENUM)
#undef GW_HIST_ENUM
		GW_HIST__COUNT
};

/* Records one observation of ns nanoseconds (negative: counted as 0). Any thread. */
void gw_hist_observe_ns(enum gw_hist h, int64_t ns);

/* Reads one bucket (cumulative, as Prometheus exposes it; i == number of
 * bounds: +Inf), the count and the sum in nanoseconds. For tests. */
uint64_t gw_hist_cumulative(enum gw_hist h, size_t i);
uint64_t gw_hist_count(enum gw_hist h);

struct gw_app;

/* The exposition text (malloc'd, NUL-terminated), NULL when out of memory.
 * Service thread. */
char *gw_metrics_render(struct gw_app *app);

#endif
