/* Tests recorder.c's order: a pass is committed only when every event
 * numbered before its own has been submitted (recorder.h, "Order"), so a
 * crash between two transactions can never leave a seq gap; passes without
 * numbered events go at once; the pass holding the oldest numbered event
 * never waits for room. A real recorder thread; the done callback stands in
 * for gw_batch_finish and notes what was committed, in which call. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "../check.h"
#include "app.h"
#include "batch.h"
#include "recorder.h"
#include "stats.h"
#include "util.h"
#include "workq.h"

static struct gw_app app;
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t seen[64];
static int seen_call[64]; /* which done call committed seen[i] */
static size_t nseen;
static int calls;

static void on_wake(void *ud)
{
	(void)ud;
}

static void done(struct gw_app *a, struct gw_event_work *works, size_t n)
{
	(void)a;
	pthread_mutex_lock(&seen_lock);
	calls++;
	for (size_t e = 0; e < n; e++) {
		if (nseen < 64) {
			seen_call[nseen] = calls;
			seen[nseen++] = works[e].job->intake_no;
		}
		gw_job_free(works[e].job);
	}
	pthread_mutex_unlock(&seen_lock);
}

static size_t seen_count(void)
{
	pthread_mutex_lock(&seen_lock);
	size_t n = nseen;
	pthread_mutex_unlock(&seen_lock);
	return n;
}

/* Waits (bounded) until `n` events were committed. */
static int await_seen(size_t n)
{
	int64_t until = gw_monotonic_ns() + 5000000000LL;
	while (seen_count() < n && gw_monotonic_ns() < until)
		sched_yield();
	return seen_count() >= n;
}

/* Gives the recorder thread time to commit what it (wrongly) could. */
static void settle(void)
{
	int64_t until = gw_monotonic_ns() + 50000000LL;
	while (gw_monotonic_ns() < until)
		sched_yield();
}

/* One pass of events with these intake numbers; numbered: told to the
 * recorder as having taken seqs (done by the caller, in intake order). */
static void submit(struct gw_recorder *r, const uint64_t *nos, size_t n, int numbered)
{
	struct gw_event_work works[8];
	memset(works, 0, sizeof(works));
	for (size_t e = 0; e < n; e++) {
		works[e].job = gw_job_new(GW_JOB_EVENT);
		works[e].job->intake_no = nos[e];
		works[e].numbered = numbered;
	}
	CHECK_INT_EQ(gw_recorder_submit(r, works, n), 0);
}

static void reset(void)
{
	pthread_mutex_lock(&seen_lock);
	nseen = 0;
	calls = 0;
	pthread_mutex_unlock(&seen_lock);
}

int main(void)
{
	CHECK_INT_EQ(gw_outbox_init(&app.outbox, on_wake, NULL), 0);
	struct gw_recorder *r = gw_recorder_start(&app, done);
	CHECK(r != NULL);
	if (!r)
		return check_failures;
	uint64_t waits0 = gw_stat_get(GW_STAT_record_order_waits);

	/* 10 and 11 numbered; 11's pass signed first: it waits for 10's,
	 * then both go in one transaction, in submission order. */
	CHECK_INT_EQ(gw_recorder_numbered(r, 10), 0);
	CHECK_INT_EQ(gw_recorder_numbered(r, 11), 0);
	submit(r, (uint64_t[]){11}, 1, 1);
	settle();
	CHECK_INT_EQ(seen_count(), 0);
	CHECK(gw_stat_get(GW_STAT_record_order_waits) > waits0);
	submit(r, (uint64_t[]){10}, 1, 1);
	CHECK(await_seen(2));
	CHECK_INT_EQ(calls, 1);
	CHECK_INT_EQ(seen[0], 11);
	CHECK_INT_EQ(seen[1], 10);

	/* A pass of 20 and 22 (a signing window) with 21 in another pass:
	 * neither may go alone, and 23 after them waits too. A pass without
	 * numbered events (no seqs: a done mark only) goes at once. */
	reset();
	for (uint64_t no = 20; no <= 23; no++)
		CHECK_INT_EQ(gw_recorder_numbered(r, no), 0);
	submit(r, (uint64_t[]){20, 22}, 2, 1);
	submit(r, (uint64_t[]){23}, 1, 1);
	submit(r, (uint64_t[]){99}, 1, 0);
	CHECK(await_seen(1));
	settle();
	CHECK_INT_EQ(seen_count(), 1);
	CHECK_INT_EQ(seen[0], 99);
	submit(r, (uint64_t[]){21}, 1, 1);
	CHECK(await_seen(5));
	CHECK_INT_EQ(seen_count(), 5);
	CHECK_INT_EQ(calls, 2); /* 20, 22, 23 and 21 in one transaction */
	CHECK_INT_EQ(seen_call[1], 2);
	CHECK_INT_EQ(seen_call[4], 2);

	/* A pass that comes before every numbered event still open goes. */
	reset();
	CHECK_INT_EQ(gw_recorder_numbered(r, 30), 0);
	CHECK_INT_EQ(gw_recorder_numbered(r, 31), 0);
	submit(r, (uint64_t[]){30}, 1, 1);
	CHECK(await_seen(1));
	CHECK_INT_EQ(seen[0], 30);
	submit(r, (uint64_t[]){31}, 1, 1);
	CHECK(await_seen(2));

	gw_recorder_stop(r);
	gw_outbox_destroy(&app.outbox);

	/* Stopping commits what waits, even a pass still held for an earlier
	 * one that never came. */
	reset();
	CHECK_INT_EQ(gw_outbox_init(&app.outbox, on_wake, NULL), 0);
	r = gw_recorder_start(&app, done);
	CHECK(r != NULL);
	if (!r)
		return 1;
	CHECK_INT_EQ(gw_recorder_numbered(r, 40), 0);
	CHECK_INT_EQ(gw_recorder_numbered(r, 41), 0);
	submit(r, (uint64_t[]){41}, 1, 1);
	gw_recorder_stop(r);
	CHECK_INT_EQ(seen_count(), 1);
	gw_outbox_destroy(&app.outbox);

	return CHECK_DONE();
}
