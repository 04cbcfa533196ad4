/* metrics.c - see metrics.h. */
#include "metrics.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "stats.h"
#include "store_probe.h"
#include "version.h"

/* Upper bounds in nanoseconds: 100 us to 10 s, roughly 1-2.5-5 per decade.
 * The gateway's own steps take tens of microseconds; an fsync'd commit or a
 * backed-up queue takes milliseconds to seconds. */
static const int64_t bounds_ns[] = {
	100000,	  250000,    500000,	1000000,   2500000,    5000000,	     10000000,	   25000000,
	50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000LL, 5000000000LL, 10000000000LL,
};
#define NBOUNDS (sizeof(bounds_ns) / sizeof(bounds_ns[0]))

struct hist {
	_Atomic uint64_t bucket[NBOUNDS + 1]; /* per bucket, not cumulative; last: over every bound */
	_Atomic uint64_t count;
	_Atomic uint64_t sum_ns;
};

static struct hist hists[GW_HIST__COUNT];

static const char *const hist_names[GW_HIST__COUNT] = {
#define GW_HIST_NAME(name, help) #name,
	GW_HISTOGRAMS(GW_HIST_NAME)
#undef GW_HIST_NAME
};
static const char *const hist_helps[GW_HIST__COUNT] = {
#define GW_HIST_HELP(name, help) help,
	GW_HISTOGRAMS(GW_HIST_HELP)
#undef GW_HIST_HELP
};
static const char *const stat_helps[GW_STAT__COUNT] = {
#define GW_STAT_HELP(name, help) help,
	GW_STATS_COUNTERS(GW_STAT_HELP)
#undef GW_STAT_HELP
};

void gw_hist_observe_ns(enum gw_hist h, int64_t ns)
{
	if ((unsigned)h >= GW_HIST__COUNT)
		return;
	if (ns < 0)
		ns = 0;
	size_t i = 0;
	while (i < NBOUNDS && ns > bounds_ns[i])
		i++;
	struct hist *x = &hists[h];
	atomic_fetch_add_explicit(&x->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&x->sum_ns, (uint64_t)ns, memory_order_relaxed);
	atomic_fetch_add_explicit(&x->count, 1, memory_order_relaxed);
}

uint64_t gw_hist_cumulative(enum gw_hist h, size_t upto)
{
	uint64_t n = 0;
	for (size_t i = 0; i <= upto && i <= NBOUNDS; i++)
		n += atomic_load_explicit(&hists[h].bucket[i], memory_order_relaxed);
	return n;
}

uint64_t gw_hist_count(enum gw_hist h)
{
	return atomic_load_explicit(&hists[h].count, memory_order_relaxed);
}

/* Counters whose stats.h names share one of these prefixes are one family
 * with the rest of the name as its label: events_rejected_token becomes
 * notify_gateway_events_rejected_total{reason="token"}. */
static const struct family {
	const char *prefix, *name, *label, *help;
} families[] = {
	{"events_rejected_", "events_rejected", "reason",
	 "events refused, by reason (token 401, json 400, too_large 413, media_type 415, queue_full/busy/stopping/paused 503)"},
	{"forge_retries_", "forge_retries", "reason",
	 "deliveries Forge marked as retries, by the retry reason it gave"},
};
#define NFAMILIES (sizeof(families) / sizeof(families[0]))

static const struct family *family_of(const char *stat)
{
	for (size_t i = 0; i < NFAMILIES; i++)
		if (!strncmp(stat, families[i].prefix, strlen(families[i].prefix)))
			return &families[i];
	return NULL;
}

static void help_line(FILE *f, const char *kind, const char *name, const char *help)
{
	fprintf(f, "# HELP notify_gateway_%s ", name);
	for (const char *p = help; *p; p++) { /* the format escapes \ and newline in HELP */
		if (*p == '\\')
			fputs("\\\\", f);
		else if (*p == '\n')
			fputs("\\n", f);
		else
			fputc(*p, f);
	}
	fprintf(f, "\n# TYPE notify_gateway_%s %s\n", name, kind);
}

static void counters(FILE *f)
{
	for (size_t fi = 0; fi < NFAMILIES; fi++) {
		const struct family *fam = &families[fi];
		char full[96];
		snprintf(full, sizeof(full), "%s_total", fam->name);
		help_line(f, "counter", full, fam->help);
		size_t plen = strlen(fam->prefix);
		for (int i = 0; i < GW_STAT__COUNT; i++)
			if (family_of(gw_stat_names[i]) == fam)
				fprintf(f, "notify_gateway_%s_total{%s=\"%s\"} %llu\n", fam->name, fam->label,
					gw_stat_names[i] + plen, (unsigned long long)gw_stat_get(i));
	}
	for (int i = 0; i < GW_STAT__COUNT; i++) {
		if (family_of(gw_stat_names[i]))
			continue;
		char full[96];
		snprintf(full, sizeof(full), "%s_total", gw_stat_names[i]);
		help_line(f, "counter", full, stat_helps[i]);
		fprintf(f, "notify_gateway_%s %llu\n", full, (unsigned long long)gw_stat_get(i));
	}
}

static void gauge(FILE *f, const char *name, const char *help, double v)
{
	help_line(f, "gauge", name, help);
	fprintf(f, "notify_gateway_%s %.17g\n", name, v);
}

static void counter(FILE *f, const char *name, const char *help, uint64_t v)
{
	help_line(f, "counter", name, help);
	fprintf(f, "notify_gateway_%s %llu\n", name, (unsigned long long)v);
}

static void histograms(FILE *f)
{
	for (int h = 0; h < GW_HIST__COUNT; h++) {
		char full[96];
		snprintf(full, sizeof(full), "%s_seconds", hist_names[h]);
		help_line(f, "histogram", full, hist_helps[h]);
		/* +Inf and _count are the sum of the buckets as read here, not the
		 * separate count: observations landing meanwhile cannot make the
		 * series inconsistent (a bucket above +Inf). */
		uint64_t cum = 0;
		for (size_t i = 0; i <= NBOUNDS; i++) {
			cum += atomic_load_explicit(&hists[h].bucket[i], memory_order_relaxed);
			if (i < NBOUNDS)
				fprintf(f, "notify_gateway_%s_bucket{le=\"%g\"} %llu\n", full,
					(double)bounds_ns[i] / 1e9, (unsigned long long)cum);
			else
				fprintf(f, "notify_gateway_%s_bucket{le=\"+Inf\"} %llu\n", full,
					(unsigned long long)cum);
		}
		fprintf(f, "notify_gateway_%s_sum %.9f\n", full,
			(double)atomic_load_explicit(&hists[h].sum_ns, memory_order_relaxed) / 1e9);
		fprintf(f, "notify_gateway_%s_count %llu\n", full, (unsigned long long)cum);
	}
}

char *gw_metrics_render(struct gw_app *app)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	help_line(f, "gauge", "build_info", "always 1; the version as a label");
	fprintf(f, "notify_gateway_build_info{version=\"%s\"} 1\n", GW_VERSION);
	gauge(f, "start_time_seconds", "unix time the process started", (double)app->started_at);
	counters(f);
	histograms(f);

	gauge(f, "websocket_connections", "open websocket connections", (double)app->ws_connections);
	gauge(f, "subscriptions", "(connection, context) subscriptions",
	      (double)app->broker->ops->subscription_count(app->broker));
	gauge(f, "intake_queue_depth", "accepted events waiting for the rules",
	      (double)gw_workq_event_depth(&app->workq));
	gauge(f, "intake_queue_capacity", "limits.queue", (double)app->cfg.queue_capacity);
	gauge(f, "verify_backlog_depth", "requests waiting for token verification",
	      (double)gw_workq_verify_depth(&app->workq));
	gauge(f, "verify_backlog_capacity", "limits.verify_backlog", (double)app->cfg.verify_backlog);
	gauge(f, "workers", "worker threads", (double)app->nworkers);
	gauge(f, "intake_paused", "1 while intake is paused (SIGUSR1 or the admin API)",
	      app->intake_paused ? 1 : 0);
	gauge(f, "stopping", "1 once a stop was requested", app->stopping ? 1 : 0);
	if (app->store_probe) {
		struct gw_store_probe_state st;
		gw_store_probe_read(app->store_probe, &st);
		gauge(f, "store_round_trip_age_seconds",
		      "seconds since the readiness probe's last successful store round trip (/readyz fails past 5)",
		      st.ok_ns ? (double)(gw_monotonic_ns() - st.ok_ns) / 1e9 : -1);
	}

	struct gw_rulebox *rb = &app->rulebox;
	pthread_mutex_lock(&rb->lock);
	size_t nrules = rb->set ? rules_set_count(rb->set) : 0;
	double loaded_at = (double)rb->loaded_at;
	uint64_t rok = rb->reloads_ok, rfail = rb->reloads_failed;
	pthread_mutex_unlock(&rb->lock);
	gauge(f, "rules", "rules in the set in force", (double)nrules);
	gauge(f, "rules_loaded_time_seconds", "unix time the set in force was loaded", loaded_at);
	help_line(f, "counter", "rule_reloads_total", "rule reloads (SIGHUP, admin), by result");
	fprintf(f, "notify_gateway_rule_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)rok);
	fprintf(f, "notify_gateway_rule_reloads_total{result=\"failed\"} %llu\n", (unsigned long long)rfail);

	pthread_mutex_lock(&app->dedup.lock);
	double remembered = (double)app->dedup.count, dcap = (double)app->dedup.capacity;
	uint64_t evicted = app->dedup.evicted_early;
	pthread_mutex_unlock(&app->dedup.lock);
	gauge(f, "redelivery_keys", "accepted events remembered for redelivery detection", remembered);
	gauge(f, "redelivery_keys_capacity", "limits.dedup_entries", dcap);
	counter(f, "redelivery_evicted_early_total", "keys forgotten before forge.dedup_ttl (any reason)",
		evicted);

	pthread_mutex_lock(&app->seq.lock); /* the activity tracker lives under it */
	double tracked = (double)app->activity.users.count, abytes = (double)app->activity.bytes,
	       amax = (double)app->activity.max_bytes;
	pthread_mutex_unlock(&app->seq.lock);
	gauge(f, "digest_users_tracked", "(installation, user) pairs tracked for digests", tracked);
	gauge(f, "digest_tracker_bytes", "bytes the digest tracker holds", abytes);
	gauge(f, "digest_tracker_max_bytes", "the digest tracker's byte limit", amax);

	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
