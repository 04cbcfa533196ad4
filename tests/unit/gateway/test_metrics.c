/* Tests metrics.h's histograms: an observation lands in the first bucket
 * whose bound it does not exceed (bounds inclusive, as Prometheus's le),
 * buckets read cumulatively, over every bound only +Inf counts it; and the
 * SQLite store observes store_commit once per committed transaction (the
 * store_commits counter), through the real engine in a temporary directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check.h"
#include "metrics.h"
#include "stats.h"
#include "store.h"

#define NB 16 /* bounds in metrics.c: 100 us .. 10 s */

static void test_buckets(void)
{
	enum gw_hist h = GW_HIST_rule_evaluation;
	CHECK_INT_EQ(gw_hist_count(h), 0);
	gw_hist_observe_ns(h, -5); /* clock oddity: counted as 0 */
	gw_hist_observe_ns(h, 100000); /* exactly the first bound: le="0.0001" */
	gw_hist_observe_ns(h, 100001); /* just over: le="0.00025" */
	gw_hist_observe_ns(h, 3000000); /* 3 ms: le="0.005" (index 5) */
	gw_hist_observe_ns(h, 20000000000LL); /* 20 s: only +Inf */
	CHECK_INT_EQ(gw_hist_count(h), 5);
	CHECK_INT_EQ(gw_hist_cumulative(h, 0), 2);
	CHECK_INT_EQ(gw_hist_cumulative(h, 1), 3);
	CHECK_INT_EQ(gw_hist_cumulative(h, 4), 3);
	CHECK_INT_EQ(gw_hist_cumulative(h, 5), 4);
	CHECK_INT_EQ(gw_hist_cumulative(h, NB - 1), 4);
	CHECK_INT_EQ(gw_hist_cumulative(h, NB), 5);
	CHECK_INT_EQ(gw_hist_count(GW_HIST_event_to_frame), 0); /* histograms are separate */
}

static void test_store_commit(void)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/metrics-XXXXXX",
		 getenv("GW_TEST_TMP") ? getenv("GW_TEST_TMP") : "/tmp");
	CHECK(mkdtemp(dir) != NULL);
	struct gw_store_options opt = {GW_STORE_OS, 3600, 100};
	struct gw_store *s = NULL;
	char msg[512] = "";
	int rc = gw_store_open("sqlite", dir, &opt, &s, msg, sizeof(msg));
	if (rc)
		fprintf(stderr, "open: %s\n", msg);
	CHECK_INT_EQ(rc, GW_STORE_OK);
	if (rc)
		return;
	uint64_t commits0 = gw_stat_get(GW_STAT_store_commits), hist0 = gw_hist_count(GW_HIST_store_commit);
	for (int i = 0; i < 3; i++) {
		char payload[16];
		snprintf(payload, sizeof(payload), "event-%d", i);
		struct gw_store_event ev = {
			"ari:cloud:ecosystem::installation/1", "trace", 1000, NULL, payload, strlen(payload)};
		struct gw_store_journaled out;
		CHECK_INT_EQ(s->ops->journal(s, &ev, 1, 1, 900, &out), GW_STORE_OK);
	}
	uint64_t commits = gw_stat_get(GW_STAT_store_commits) - commits0;
	CHECK(commits >= 1);
	CHECK_INT_EQ(gw_hist_count(GW_HIST_store_commit) - hist0, commits);
	s->ops->close(s);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK_INT_EQ(system(cmd), 0);
}

int main(void)
{
	test_buckets();
	test_store_commit();
	return CHECK_DONE();
}
