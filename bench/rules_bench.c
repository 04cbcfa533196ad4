/* rules_bench.c - rule engine throughput on one core.
 *
 * Builds a set of 1,000 rules (typical Forge filters spread over the event
 * types of the sample payloads; most filters are false for a given event, as
 * in real rule sets), then:
 *   1. set: rules_evaluate over the sample payloads in a loop; reports
 *      filter evaluations per second (candidate rules met) and ns per
 *      evaluation, notifications rendered included;
 *   2. expr: each typical filter alone (eval__run, no result conversion),
 *      ns per evaluation.
 * Usage: rules_bench [seconds per measurement, default 2]
 *        rules_bench xN  -- exactly N rounds of the set loop and no expr
 *        part: a fixed amount of work, for instruction counts under
 *        valgrind --tool=callgrind --toggle-collect=rules_evaluate (wall and
 *        CPU time do not compare on a loaded machine; instructions do).
 *
 * Ownership: everything is freed before exit. Threads: single (one core).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rules_internal.h"

static const char *const filters[] = {
	"event.issue.fields.issuetype.name == 'Bug%d'",
	"(event.issue.fields?.issuetype ?? event.issue.fields?.issueType)?.name == 'Task%d'",
	"event.issue.fields?.assignee?.accountId == 'acc-%d'",
	"changedTo('status', 'State %d')",
	"event.issue.key matches '^SP-%d[0-9]*$'",
	"event?.changelog?.items?.some(i => i.field == 'f%d') ?? false",
	"event.issue.fields?.project?.key == 'P%d' && !(event.selfGenerated ?? false)",
	"event.content.space?.key?.startsWith('~%d') ?? false",
	"event.app.version == '%d.0.0'",
	"event.issue.key in ['SP-%d', 'SP-10%d', 'OPS-1']",
};

static const char *const event_types[] = {
	"avi:jira:created:issue",      "avi:jira:updated:issue",	 "avi:jira:commented:issue",
	"avi:confluence:created:page", "avi:confluence:created:comment", "avi:forge:installed:app",
};

static const char *const samples[] = {
	RULES_BENCH_FIXTURES "/jira-created-issue.PARTIAL.json",
	RULES_BENCH_FIXTURES "/jira-updated-issue.CONSTRUCTED.json",
	RULES_BENCH_FIXTURES "/jira-commented-issue.CONSTRUCTED.json",
	RULES_BENCH_FIXTURES "/confluence-created-page.json",
	RULES_BENCH_FIXTURES "/confluence-created-comment.json",
	RULES_BENCH_EVENTS "/jira-created-bug.json",
	RULES_BENCH_EVENTS "/jira-status-done.json",
	RULES_BENCH_EVENTS "/jira-comment-mention.json",
};

#define N_RULES 1000

/* CPU time of this process: on a machine shared with other work, the rate
 * per CPU second is the comparable figure (wall time counts the waits). */
static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Copies template t to out replacing every "%d" with i (no printf with a
 * variable format). */
static void subst(char *out, size_t n, const char *t, int i)
{
	size_t o = 0;

	for (; *t && o + 12 < n; t++) {
		if (t[0] == '%' && t[1] == 'd') {
			o += (size_t)snprintf(out + o, n - o, "%d", i);
			t++;
		} else {
			out[o++] = *t;
		}
	}
	out[o] = '\0';
}

/* Filter i of the set: filters[i % 10] for an event type that suits it. */
static void append_rule(struct rules_strbuf *b, int i)
{
	int f = i % 10;
	const char *type = f == 7   ? "avi:confluence:created:page"
			   : f == 8 ? "avi:forge:installed:app"
				    : event_types[(i / 10) % 3];
	char expr[256];

	/* every 50th rule matches its events: the filter is made true */
	if (i % 50 == 0)
		snprintf(expr, sizeof(expr), "event.eventType == '%s' || true", type);
	else
		subst(expr, sizeof(expr), filters[f], i);
	strbuf__printf(b,
		       "  - key: r%d\n    events: [%s]\n    filter:\n      expression: \"%s\"\n"
		       "    notify:\n      to: \"event?.issue?.fields?.assignee?.accountId ?? 'u%d'\"\n"
		       "      context: \"c:{{ event?.issue?.key ?? 'x' }}\"\n      title: \"rule %d\"\n",
		       i, type, expr, i, i);
}

int main(int argc, char **argv)
{
	long rounds = argc > 1 && argv[1][0] == 'x' ? atol(argv[1] + 1) : 0;
	double secs = argc > 1 && !rounds ? atof(argv[1]) : 2.0;
	struct rules_strbuf y = {0};
	struct rules_diags d;
	json_t *events[sizeof(samples) / sizeof(samples[0])];
	size_t cand[sizeof(samples) / sizeof(samples[0])], n_events = 0;
	int rc = 1;

	/* a fixed hash seed: jansson's random one moves instruction counts */
	json_object_seed(1);
	strbuf__printf(&y, "rules:\n");
	for (int i = 0; i < N_RULES; i++)
		append_rule(&y, i);
	rules_diags_init(&d);
	double t0 = now_s();
	struct rules_set *set = y.data ? rules_load_string("bench.yml", y.data, y.len, &d) : NULL;
	double load_ms = (now_s() - t0) * 1e3;
	if (!set) {
		for (size_t i = 0; i < d.count && i < 5; i++)
			fprintf(stderr, "%s:%d:%d: %s\n", d.items[i].file, d.items[i].line, d.items[i].col,
				d.items[i].message);
		goto done;
	}
	struct rules_scratch *s = rules_scratch_new();
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		json_error_t e;
		json_t *ev = json_load_file(samples[i], 0, &e);
		if (!ev) {
			fprintf(stderr, "%s: %s\n", samples[i], e.text);
			continue;
		}
		const char *type = json_string_value(json_object_get(ev, "eventType"));
		cand[n_events] = rules_set_candidates(set, type);
		events[n_events++] = ev;
	}
	printf("rule engine benchmark: %d rules (%zu bytes of YAML, loaded in %.1f ms), %zu sample "
	       "events, one core\n",
	       N_RULES, y.len, load_ms, n_events);

	/* 1. whole set */
	unsigned long evals = 0, calls = 0, notes = 0;
	double start = now_s(), elapsed, cpu0 = cpu_s();
	do {
		for (int rep = 0; rep < 20; rep++) {
			for (size_t i = 0; i < n_events; i++) {
				json_t *res = rules_evaluate(set, events[i], s, NULL, NULL);
				notes += json_array_size(res);
				json_decref(res);
				evals += cand[i];
				calls++;
			}
		}
		elapsed = now_s() - start;
	} while (rounds ? --rounds > 0 : elapsed < secs);
	printf("set:  %lu rules_evaluate calls, %.1f candidate rules per event, %.2f notifications "
	       "per event\n      %.0f filter evaluations/s, %.0f ns per evaluation, %.1f us per "
	       "event\n",
	       calls, (double)evals / (double)calls, (double)notes / (double)calls, (double)evals / elapsed,
	       elapsed * 1e9 / (double)evals, elapsed * 1e6 / (double)calls);
	printf("      %.0f filter evaluations per CPU second\n", (double)evals / (cpu_s() - cpu0));

	if (argc > 1 && argv[1][0] == 'x')
		goto out;
	/* 2. each typical filter alone, on an event of its kind */
	json_t *app = json_load_file(RULES_BENCH_FIXTURES "/forge-installed-app.json", 0, NULL);
	printf("expr: ns per evaluation (eval__run only; wall, then CPU)\n");
	for (size_t f = 0; f < sizeof(filters) / sizeof(filters[0]); f++) {
		char src[256];
		struct rules_value v;
		subst(src, sizeof(src), filters[f], 1);
		struct rules_expr *e = rules_expr_compile("bench", src, strlen(src), 1, 1, &d);
		json_t *ev = events[f == 7 ? 3 : f == 3 || f == 5 ? 6 : 5];
		if (f == 8)
			ev = app;
		if (!e || !ev)
			continue;
		unsigned long n = 0;
		start = now_s();
		double c0 = cpu_s();
		do {
			for (int k = 0; k < 10000; k++)
				n += 1 + 0 * eval__run(e, ev, s, &v);
			elapsed = now_s() - start;
		} while (elapsed < secs / 4);
		printf("  %6.0f ns  %6.0f ns  %s\n", elapsed * 1e9 / (double)n,
		       (cpu_s() - c0) * 1e9 / (double)n, src);
		rules_expr_free(e);
	}
	json_decref(app);
out:
	rc = 0;
	for (size_t i = 0; i < n_events; i++)
		json_decref(events[i]);
	rules_scratch_free(s);
	rules_set_unref(set);
done:
	rules_diags_free(&d);
	strbuf__free(&y);
	return rc;
}
