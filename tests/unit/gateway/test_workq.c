/* Tests workq.c: lanes, bounds, intake numbering, close semantics, and that
 * concurrent producers and consumers lose and duplicate nothing. */
#include <pthread.h>
#include <stdlib.h>

#include "../check.h"
#include "workq.h"

static struct gw_workq q;

static void *consumer(void *arg)
{
	long *count = arg;
	struct gw_job *j;
	while ((j = gw_workq_pop(&q))) {
		(*count)++;
		gw_job_free(j);
	}
	return NULL;
}

static int holds, flushes;
static void on_hold(void *ud)
{
	(void)ud;
	holds++;
}
static void on_flush(void *ud)
{
	(void)ud;
	flushes++;
}

/* A worker hands an event it accepted to itself (no other worker woken) and
 * holds its results until the pop after the one that takes the event. */
static void *handback(void *arg)
{
	(void)arg;
	struct gw_job *j;
	CHECK_INT_EQ(gw_workq_init(&q, 10, 10), 0);
	gw_workq_set_handback(&q, on_hold, on_flush, NULL);
	CHECK_INT_EQ(gw_workq_push_verify(&q, gw_job_new(GW_JOB_INTAKE)), 0);
	j = gw_workq_pop(&q); /* this thread is a worker now */
	gw_job_free(j);
	CHECK_INT_EQ(gw_workq_push_event(&q, gw_job_new(GW_JOB_EVENT)), 0);
	CHECK_INT_EQ(holds, 1);
	j = gw_workq_pop(&q);
	CHECK_INT_EQ(j->kind, GW_JOB_EVENT);
	gw_job_free(j);
	CHECK_INT_EQ(flushes, 0); /* still held while the event is signed */
	CHECK_INT_EQ(gw_workq_push_verify(&q, gw_job_new(GW_JOB_INTAKE)), 0);
	j = gw_workq_pop(&q);
	gw_job_free(j);
	CHECK_INT_EQ(flushes, 1); /* released at the next pop */
	/* with other work queued, the event is left to another worker: no hold */
	CHECK_INT_EQ(gw_workq_push_verify(&q, gw_job_new(GW_JOB_INTAKE)), 0);
	CHECK_INT_EQ(gw_workq_push_event(&q, gw_job_new(GW_JOB_EVENT)), 0);
	CHECK_INT_EQ(holds, 1);
	while ((j = gw_workq_pop(&q)) && j->kind != GW_JOB_EVENT)
		gw_job_free(j);
	gw_job_free(j);
	CHECK_INT_EQ(gw_workq_push_event(&q, gw_job_new(GW_JOB_EVENT)), 0);
	CHECK_INT_EQ(holds, 2);
	/* the next pop takes something else first (a verification): released at once */
	CHECK_INT_EQ(gw_workq_push_verify(&q, gw_job_new(GW_JOB_INTAKE)), 0);
	j = gw_workq_pop(&q);
	CHECK_INT_EQ(j->kind, GW_JOB_INTAKE);
	gw_job_free(j);
	CHECK_INT_EQ(flushes, 2);
	/* held results never wait for a blocking pop: the last pop flushes */
	j = gw_workq_pop(&q);
	CHECK_INT_EQ(j->kind, GW_JOB_EVENT);
	gw_job_free(j);
	CHECK_INT_EQ(gw_workq_push_event(&q, gw_job_new(GW_JOB_EVENT)), 0);
	CHECK_INT_EQ(holds, 3);
	gw_workq_close(&q);
	j = gw_workq_pop(&q);
	gw_job_free(j);
	CHECK_INT_EQ(flushes, 2);
	CHECK(gw_workq_pop(&q) == NULL);
	CHECK_INT_EQ(flushes, 3);
	gw_workq_destroy(&q);
	return NULL;
}

/* ---- the signing window (gw_workq_window_pop) ---- */

#include "util.h"

static int lane_state(int *collecting, size_t *idle)
{
	pthread_mutex_lock(&q.lock);
	*collecting = q.collecting;
	*idle = q.idle;
	pthread_mutex_unlock(&q.lock);
	return 0;
}

/* Waits (polling) until `want_collecting` and `want_idle` hold. */
static void await_state(int want_collecting, size_t want_idle)
{
	int c;
	size_t i;
	for (;;) {
		lane_state(&c, &i);
		if (c == want_collecting && i == want_idle)
			return;
		sched_yield();
	}
}

struct window_call {
	size_t room, wake_at;
	int64_t wait_ns;
	struct gw_job *got; /* what the call returned */
	int events; /* the run's length, when it returned events */
};

static void *window_thread(void *arg)
{
	struct window_call *w = arg;
	w->got = gw_workq_window_pop(&q, w->room, w->wake_at, gw_monotonic_ns() + w->wait_ns);
	for (struct gw_job *j = w->got; j && j->kind == GW_JOB_EVENT; j = j->next)
		w->events++;
	gw_workq_window_end(&q); /* as workers.c does when its pass stops asking */
	return NULL;
}

static void free_run(struct gw_job *j)
{
	while (j) {
		struct gw_job *next = j->next;
		gw_job_free(j);
		j = next;
	}
}

static void window_cases(void)
{
	const int64_t long_wait = 30LL * 1000000000LL; /* never reached: each call ends sooner */
	pthread_t w, c;
	long idle_count = 0;

	/* Nothing arrives: NULL at the deadline, and the window is over. */
	CHECK_INT_EQ(gw_workq_init(&q, 10, 10), 0);
	struct window_call short_call = {4, 1, 2000000, NULL, 0};
	window_thread(&short_call);
	CHECK(short_call.got == NULL);
	int collecting;
	size_t idle;
	lane_state(&collecting, &idle);
	CHECK_INT_EQ(collecting, 0);

	/* An event pushed while a worker is in its window goes to it, not to
	 * the idle worker; a verification goes to the idle worker. */
	pthread_create(&c, NULL, consumer, &idle_count);
	await_state(0, 1);
	struct window_call call = {4, 1, long_wait, NULL, 0};
	pthread_create(&w, NULL, window_thread, &call);
	await_state(1, 1);
	/* another worker's pass does not open a second window */
	struct window_call second = {4, 1, long_wait, NULL, 0};
	window_thread(&second);
	CHECK(second.got == NULL);
	CHECK_INT_EQ(gw_workq_push_event(&q, gw_job_new(GW_JOB_EVENT)), 0);
	pthread_join(w, NULL);
	CHECK(call.got != NULL);
	CHECK_INT_EQ(call.events, 1);
	free_run(call.got);
	/* Fewer events than wake_at: the window sleeps on to its deadline
	 * (one wake-up per window), then takes them; the idle worker does not. */
	call = (struct window_call){4, 2, 50000000, NULL, 0};
	pthread_create(&w, NULL, window_thread, &call);
	await_state(1, 1);
	CHECK_INT_EQ(gw_workq_push_event(&q, gw_job_new(GW_JOB_EVENT)), 0);
	pthread_join(w, NULL);
	CHECK(call.got != NULL);
	CHECK_INT_EQ(call.events, 1);
	free_run(call.got);
	CHECK_INT_EQ(gw_workq_push_verify(&q, gw_job_new(GW_JOB_INTAKE)), 0);
	call = (struct window_call){4, 1, long_wait, NULL, 0};
	pthread_create(&w, NULL, window_thread, &call);
	/* the idle worker took the verification and waits again; the window waits on */
	for (;;) {
		pthread_mutex_lock(&q.lock);
		int done = q.verify_count == 0 && q.idle == 1 && q.collecting;
		pthread_mutex_unlock(&q.lock);
		if (done)
			break;
		sched_yield();
	}
	/* more events than the window has room for: the rest to another worker */
	for (int i = 0; i < 6; i++)
		CHECK_INT_EQ(gw_workq_push_event(&q, gw_job_new(GW_JOB_EVENT)), 0);
	pthread_join(w, NULL);
	CHECK(call.got != NULL);
	CHECK(call.events >= 1 && call.events <= 4);
	free_run(call.got);
	gw_workq_close(&q);
	pthread_join(c, NULL);
	CHECK_INT_EQ(idle_count + call.events, 1 + 6); /* the verification and every event, once */
	gw_workq_destroy(&q);

	/* No idle worker: a verification is handed to the worker in its window
	 * (it never keeps work waiting), and closing ends the window. */
	CHECK_INT_EQ(gw_workq_init(&q, 10, 10), 0);
	call = (struct window_call){4, 1, long_wait, NULL, 0};
	pthread_create(&w, NULL, window_thread, &call);
	await_state(1, 0);
	CHECK_INT_EQ(gw_workq_push_verify(&q, gw_job_new(GW_JOB_INTAKE)), 0);
	pthread_join(w, NULL);
	CHECK(call.got != NULL && call.got->kind == GW_JOB_INTAKE);
	gw_job_free(call.got);
	call = (struct window_call){4, 1, long_wait, NULL, 0};
	pthread_create(&w, NULL, window_thread, &call);
	await_state(1, 0);
	gw_workq_close(&q);
	pthread_join(w, NULL);
	CHECK(call.got == NULL);
	gw_workq_destroy(&q);

	/* Past the deadline the window ends even while verifications wait: a
	 * stream of them (a flood of bad FITs with one worker) must not keep
	 * the window, and the signature of the events it holds, open. The
	 * verification stays queued for the worker's next pop. */
	CHECK_INT_EQ(gw_workq_init(&q, 10, 10), 0);
	CHECK_INT_EQ(gw_workq_push_verify(&q, gw_job_new(GW_JOB_INTAKE)), 0);
	call = (struct window_call){4, 1, -1, NULL, 0};
	window_thread(&call);
	CHECK(call.got == NULL);
	free_run(call.got);
	lane_state(&collecting, &idle);
	CHECK_INT_EQ(collecting, 0);
	pthread_mutex_lock(&q.lock);
	size_t waiting = q.verify_count;
	pthread_mutex_unlock(&q.lock);
	CHECK_INT_EQ(waiting, 1);
	gw_workq_close(&q);
	gw_workq_destroy(&q);
}

static void *producer(void *arg)
{
	(void)arg;
	for (int i = 0; i < 5000; i++) {
		struct gw_job *j = gw_job_new(GW_JOB_EVENT);
		while (gw_workq_push_event(&q, j))
			sched_yield();
	}
	return NULL;
}

int main(void)
{
	/* on a thread of its own: it becomes a worker (thread-local state) */
	pthread_t hb;
	/* checked after the join: the thread's CHECKs count in the same globals */
	int hb_rc = pthread_create(&hb, NULL, handback, NULL);
	if (!hb_rc)
		pthread_join(hb, NULL);
	CHECK_INT_EQ(hb_rc, 0);
	window_cases();

	CHECK_INT_EQ(gw_workq_init(&q, 2, 3), 0);
	struct gw_job *v1 = gw_job_new(GW_JOB_INTAKE), *v2 = gw_job_new(GW_JOB_INTAKE),
		      *v3 = gw_job_new(GW_JOB_INTAKE);
	CHECK_INT_EQ(gw_workq_push_verify(&q, v1), 0);
	CHECK_INT_EQ(gw_workq_push_verify(&q, v2), 0);
	CHECK_INT_EQ(gw_workq_push_verify(&q, v3), -1); /* verify lane bound */
	gw_job_free(v3);

	struct gw_job *e[4];
	for (int i = 0; i < 4; i++)
		e[i] = gw_job_new(GW_JOB_EVENT);
	CHECK_INT_EQ(gw_workq_push_event(&q, e[0]), 0);
	CHECK_INT_EQ(gw_workq_push_event(&q, e[1]), 0);
	CHECK_INT_EQ(gw_workq_push_event(&q, e[2]), 0);
	CHECK_INT_EQ(gw_workq_push_event(&q, e[3]), -1); /* events lane bound */
	CHECK_INT_EQ(e[3]->intake_no, 0); /* a refused event gets no number */
	gw_job_free(e[3]);
	CHECK_INT_EQ(e[0]->intake_no, 1);
	CHECK_INT_EQ(e[2]->intake_no, 3);
	CHECK_INT_EQ(gw_workq_event_depth(&q), 3);
	CHECK_INT_EQ(gw_workq_next_intake_no(&q), 4);

	/* lanes in turn (verify, [auth empty], events, verify, ...); events in intake order */
	struct gw_job *j = gw_workq_pop(&q);
	CHECK(j == v1);
	gw_job_free(j);
	j = gw_workq_pop(&q);
	CHECK(j == e[0]);
	gw_job_free(j);
	j = gw_workq_pop(&q);
	CHECK(j == v2);
	gw_job_free(j);

	gw_workq_close(&q);
	struct gw_job *late = gw_job_new(GW_JOB_INTAKE);
	CHECK_INT_EQ(gw_workq_push_verify(&q, late), -2); /* closed for new requests */
	gw_job_free(late);
	struct gw_job *ev = gw_job_new(GW_JOB_EVENT);
	CHECK_INT_EQ(gw_workq_push_event(&q, ev), 0); /* but verified events still enter */
	int left = 0;
	while ((j = gw_workq_pop(&q))) {
		left++;
		gw_job_free(j);
	}
	CHECK_INT_EQ(left, 3);
	CHECK(gw_workq_pop(&q) == NULL);
	gw_workq_destroy(&q);

	/* The auth lane: bounded on its own, so a full verify lane does not
	 * refuse logins; served in turn with the others, so 1,000 queued FIT
	 * checks do not hold a login back. */
	CHECK_INT_EQ(gw_workq_init(&q, 1000, 10), 0);
	gw_workq_set_auth_cap(&q, 2);
	for (int i = 0; i < 1000; i++)
		CHECK_INT_EQ(gw_workq_push_verify(&q, gw_job_new(GW_JOB_INTAKE)), 0);
	struct gw_job *full = gw_job_new(GW_JOB_INTAKE);
	CHECK_INT_EQ(gw_workq_push_verify(&q, full), -1);
	gw_job_free(full);
	struct gw_job *a1 = gw_job_new(GW_JOB_AUTH), *a2 = gw_job_new(GW_JOB_AUTH),
		      *a3 = gw_job_new(GW_JOB_AUTH);
	CHECK_INT_EQ(gw_workq_push_verify(&q, a1), 0);
	CHECK_INT_EQ(gw_workq_push_verify(&q, a2), 0);
	CHECK_INT_EQ(gw_workq_push_verify(&q, a3), -1); /* auth lane bound */
	gw_job_free(a3);
	CHECK_INT_EQ(gw_workq_auth_depth(&q), 2);
	CHECK_INT_EQ(gw_workq_verify_depth(&q), 1000);
	struct gw_job *ev1 = gw_job_new(GW_JOB_EVENT);
	CHECK_INT_EQ(gw_workq_push_event(&q, ev1), 0);
	int seen_auth = 0, seen_event = 0, pops = 0;
	while (pops < 6 && (j = gw_workq_pop(&q))) {
		pops++;
		seen_auth += j->kind == GW_JOB_AUTH;
		seen_event += j->kind == GW_JOB_EVENT;
		gw_job_free(j);
	}
	CHECK_INT_EQ(seen_auth, 2); /* within the first six pops, not after 1,000 */
	CHECK_INT_EQ(seen_event, 1);
	gw_workq_close(&q);
	while ((j = gw_workq_pop(&q)))
		gw_job_free(j);
	gw_workq_destroy(&q);

	/* Verifications first (events gather into runs), but after max_events
	 * of them in a row while events wait, a run of events. */
	CHECK_INT_EQ(gw_workq_init(&q, 100, 100), 0);
	for (int i = 0; i < 10; i++)
		CHECK_INT_EQ(gw_workq_push_verify(&q, gw_job_new(GW_JOB_INTAKE)), 0);
	for (int i = 0; i < 3; i++)
		CHECK_INT_EQ(gw_workq_push_event(&q, gw_job_new(GW_JOB_EVENT)), 0);
	for (int i = 0; i < 4; i++) {
		j = gw_workq_pop_some(&q, 4, 1);
		CHECK_INT_EQ(j->kind, GW_JOB_INTAKE);
		gw_job_free(j);
	}
	j = gw_workq_pop_some(&q, 4, 1);
	CHECK_INT_EQ(j->kind, GW_JOB_EVENT);
	int run = 0;
	while (j) {
		struct gw_job *next = j->next;
		run++;
		gw_job_free(j);
		j = next;
	}
	CHECK_INT_EQ(run, 3); /* the whole backlog in one run */
	j = gw_workq_pop_some(&q, 4, 1);
	CHECK_INT_EQ(j->kind, GW_JOB_INTAKE);
	gw_job_free(j);
	gw_workq_close(&q);
	while ((j = gw_workq_pop(&q)))
		gw_job_free(j);
	gw_workq_destroy(&q);

	/* 4 producers x 5000, 3 consumers, tiny lane: every job popped once. */
	CHECK_INT_EQ(gw_workq_init(&q, 4, 8), 0);
	pthread_t prod[4], cons[3];
	long counts[3] = {0, 0, 0};
	for (int i = 0; i < 3; i++)
		pthread_create(&cons[i], NULL, consumer, &counts[i]);
	for (int i = 0; i < 4; i++)
		pthread_create(&prod[i], NULL, producer, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(prod[i], NULL);
	gw_workq_close(&q);
	for (int i = 0; i < 3; i++)
		pthread_join(cons[i], NULL);
	CHECK_INT_EQ(counts[0] + counts[1] + counts[2], 20000);
	CHECK_INT_EQ(gw_workq_next_intake_no(&q), 20001);
	gw_workq_destroy(&q);
	return CHECK_DONE();
}
