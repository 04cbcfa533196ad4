/* workq.c - see workq.h. One mutex, one condition variable; pushes never
 * block (the service thread must not wait), pops do. */
#include "workq.h"
#include "stats.h"
#include "store_req.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Set on a thread once it pops: a worker, which comes back for more when its
 * job is done. An event such a thread pushes into an idle queue is left for
 * it instead of waking another worker (gw_workq_push_event). */
static _Thread_local int tl_consumer;
/* This thread pushed an event without waking anyone and holds its results
 * (gw_workq_set_handback) until the pop after the one that takes it. */
static _Thread_local int tl_self_event;
static _Thread_local uint64_t tl_self_no; /* its intake number */
static _Thread_local struct gw_workq *tl_holding;
/* This thread is the worker in its signing window (gw_workq_window_pop). */
static _Thread_local int tl_collecting;

/* Whom a push wakes (after the unlock). */
#define WAKE_WORKER 1 /* not_empty: a worker waiting in gw_workq_pop_some */
#define WAKE_COLLECTOR 2 /* window: the worker in its signing window */

static void wake(struct gw_workq *q, int who)
{
	if (who & WAKE_WORKER)
		pthread_cond_signal(&q->not_empty);
	if (who & WAKE_COLLECTOR)
		pthread_cond_signal(&q->window);
}

void gw_workq_set_handback(struct gw_workq *q, void (*hold)(void *ud), void (*flush)(void *ud), void *ud)
{
	q->hold = hold;
	q->flush = flush;
	q->handback_ud = ud;
}

static void handback_flush(struct gw_workq *q)
{
	if (tl_holding == q) {
		tl_holding = NULL;
		q->flush(q->handback_ud);
	}
}

struct gw_job *gw_job_new(enum gw_job_kind kind)
{
	struct gw_job *job = calloc(1, sizeof(*job));
	if (job)
		job->kind = kind;
	return job;
}

void gw_job_free(struct gw_job *job)
{
	if (!job)
		return;
	free(job->body);
	free(job->token);
	free(job->installation);
	free(job->event_type);
	free(job->ws_url);
	if (job->system_token) {
		memset(job->system_token, 0, strlen(job->system_token));
		free(job->system_token);
	}
	json_decref(job->event);
	json_decref(job->fit);
	gw_store_req_free(job->store_req);
	free(job);
}

int gw_workq_init(struct gw_workq *q, size_t verify_cap, size_t event_cap)
{
	*q = (struct gw_workq){0};
	q->verify_cap = verify_cap;
	q->auth_cap = verify_cap;
	q->event_cap = event_cap;
	q->next_intake_no = 1;
	if (pthread_mutex_init(&q->lock, NULL))
		return -1;
	if (pthread_cond_init(&q->not_empty, NULL)) {
		pthread_mutex_destroy(&q->lock);
		return -1;
	}
	/* the window's deadline is on gw_monotonic_ns's clock */
	pthread_condattr_t attr;
	int rc = pthread_condattr_init(&attr);
	if (!rc && (rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)) == 0)
		rc = pthread_cond_init(&q->window, &attr);
	if (rc) {
		pthread_cond_destroy(&q->not_empty);
		pthread_mutex_destroy(&q->lock);
		return -1;
	}
	pthread_condattr_destroy(&attr);
	return 0;
}

void gw_workq_set_auth_cap(struct gw_workq *q, size_t auth_cap)
{
	pthread_mutex_lock(&q->lock);
	q->auth_cap = auth_cap;
	pthread_mutex_unlock(&q->lock);
}

static void free_list(struct gw_job *j)
{
	while (j) {
		struct gw_job *next = j->next;
		gw_job_free(j);
		j = next;
	}
}

void gw_workq_destroy(struct gw_workq *q)
{
	free_list(q->verify_head);
	free_list(q->auth_head);
	free_list(q->event_head);
	pthread_cond_destroy(&q->not_empty);
	pthread_cond_destroy(&q->window);
	pthread_mutex_destroy(&q->lock);
}

int gw_workq_push_verify(struct gw_workq *q, struct gw_job *job)
{
	int rc = 0, who = 0;
	job->next = NULL;
	int auth = job->kind == GW_JOB_AUTH || job->kind == GW_JOB_STORE;
	struct gw_job **head = auth ? &q->auth_head : &q->verify_head;
	struct gw_job **tail = auth ? &q->auth_tail : &q->verify_tail;
	size_t *count = auth ? &q->auth_count : &q->verify_count;
	pthread_mutex_lock(&q->lock); /* ---- workq lock { */
	if (q->closed || q->refusing)
		rc = -2;
	else if (*count >= (auth ? q->auth_cap : q->verify_cap))
		rc = -1;
	else {
		if (*tail)
			(*tail)->next = job;
		else
			*head = job;
		*tail = job;
		(*count)++;
		/* No idle worker, but one in its signing window: it takes the
		 * job rather than let it wait (gw_workq_window_pop). */
		who = !q->idle && q->collecting ? WAKE_COLLECTOR : WAKE_WORKER;
	}
	pthread_mutex_unlock(&q->lock); /* } workq lock ---- */
	wake(q, who); /* after the unlock: see wake_for_event */
	return rc;
}

/* A worker that verified this event takes it on its next pop when nothing
 * else waits: waking a second worker for it costs two context switches and
 * gains nothing (issue 15). With other work queued, or from a thread that
 * never pops (the journal's), a worker is woken as before. Lock held; returns
 * 1 when the caller must signal not_empty, which it does after the unlock: a
 * worker woken under the lock runs (it often preempts the waker on this
 * 2-CPU machine) only to block on the lock at once and wake the waker again
 * when it gets it, four context switches where two do (issue 15). */
static int wake_for_event(struct gw_workq *q, struct gw_job *job)
{
	if (q->collecting) {
		/* The event is for the worker in its signing window (or, from
		 * that worker itself, taken on its next call), which sleeps until
		 * its deadline unless enough events wait to fill its pass; another
		 * worker only for what the window has no room for. */
		int who = !tl_collecting && q->event_count >= q->collect_wake_at ? WAKE_COLLECTOR : 0;
		if (q->event_count > q->collect_room)
			who |= WAKE_WORKER;
		return who;
	}
	if (!tl_consumer || q->event_count > 1 || q->verify_head || q->auth_head)
		return WAKE_WORKER;
	if (q->hold && !tl_holding) {
		tl_holding = q;
		tl_self_event = 1;
		tl_self_no = job->intake_no;
		q->hold(q->handback_ud);
	}
	return 0;
}

void gw_workq_push_event_force(struct gw_workq *q, struct gw_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&q->lock); /* ---- workq lock { */
	job->intake_no = q->next_intake_no++;
	if (q->event_tail)
		q->event_tail->next = job;
	else
		q->event_head = job;
	q->event_tail = job;
	q->event_count++;
	int who = wake_for_event(q, job);
	pthread_mutex_unlock(&q->lock); /* } workq lock ---- */
	wake(q, who);
}

int gw_workq_events_full(struct gw_workq *q)
{
	pthread_mutex_lock(&q->lock);
	int full = q->event_count >= q->event_cap;
	pthread_mutex_unlock(&q->lock);
	return full;
}

int gw_workq_push_event(struct gw_workq *q, struct gw_job *job)
{
	int rc = 0, who = 0;
	job->next = NULL;
	pthread_mutex_lock(&q->lock); /* ---- workq lock { */
	if (q->event_count >= q->event_cap)
		rc = -1;
	else {
		job->intake_no = q->next_intake_no++;
		if (q->event_tail)
			q->event_tail->next = job;
		else
			q->event_head = job;
		q->event_tail = job;
		q->event_count++;
		who = wake_for_event(q, job);
	}
	pthread_mutex_unlock(&q->lock); /* } workq lock ---- */
	wake(q, who);
	return rc;
}

struct gw_job *gw_workq_pop(struct gw_workq *q)
{
	return gw_workq_pop_some(q, 1, 1);
}

/* Takes the head of a one-job lane. Lock held. */
static struct gw_job *take_one(struct gw_job **head, struct gw_job **tail, size_t *count)
{
	struct gw_job *job = *head;
	*head = job->next;
	if (!*head)
		*tail = NULL;
	(*count)--;
	job->next = NULL;
	return job;
}

/* The next verification: FITs and logins alternate when both wait. Lock held. */
static struct gw_job *take_verification(struct gw_workq *q)
{
	int auth = !q->verify_head || (q->auth_head && !q->last_auth);
	struct gw_job *job = auth ? take_one(&q->auth_head, &q->auth_tail, &q->auth_count)
				  : take_one(&q->verify_head, &q->verify_tail, &q->verify_count);
	q->last_auth = auth;
	q->verify_streak = q->event_head ? q->verify_streak + 1 : 0;
	return job;
}

/* Takes a run of at most max events from the events lane. Lock held. */
static struct gw_job *take_events(struct gw_workq *q, size_t max)
{
	struct gw_job *job = q->event_head;
	struct gw_job *last = job;
	for (size_t i = 1; i < max && last->next; i++)
		last = last->next;
	q->event_head = last->next;
	if (!q->event_head)
		q->event_tail = NULL;
	last->next = NULL;
	for (struct gw_job *j = job; j; j = j->next)
		q->event_count--;
	q->verify_streak = 0;
	return job;
}

struct gw_job *gw_workq_pop_some(struct gw_workq *q, size_t max_events, size_t share)
{
	struct gw_job *job = NULL;
	if (max_events < 1)
		max_events = 1;
	tl_consumer = 1;
	int expect_own = tl_self_event; /* keep holding only if the next job is that event */
	tl_self_event = 0;
	if (!expect_own)
		handback_flush(q);
	pthread_mutex_lock(&q->lock); /* ---- workq lock { */
	for (;;) {
		int verifying = q->verify_head || q->auth_head;
		/* events the worker in its signing window has room for are its */
		int events = q->event_head && !(q->collecting && q->event_count <= q->collect_room);
		if (events && (!verifying || q->verify_streak >= max_events)) {
			size_t take = share > 1 ? (q->event_count + share - 1) / share : q->event_count;
			if (take > max_events)
				take = max_events;
			if (take < 1)
				take = 1;
			job = take_events(q, take);
			break;
		}
		if (verifying) {
			job = take_verification(q);
			break;
		}
		if (q->closed)
			break;
		if (tl_holding == q) { /* never sleep on held results */
			pthread_mutex_unlock(&q->lock);
			handback_flush(q);
			pthread_mutex_lock(&q->lock);
			continue;
		}
		q->idle++;
		pthread_cond_wait(&q->not_empty, &q->lock);
		q->idle--;
	}
	pthread_mutex_unlock(&q->lock); /* } workq lock ---- */
	if (!job || job->kind != GW_JOB_EVENT || job->intake_no != tl_self_no)
		handback_flush(q);
	return job;
}

/* Lock held. */
static void window_end_locked(struct gw_workq *q)
{
	if (!tl_collecting)
		return;
	tl_collecting = 0;
	q->collecting = 0;
	q->collect_room = 0;
	q->collect_wake_at = 0;
	/* Events pushed for the window that it did not take: for any worker
	 * now (this one too, on its next pop). */
	if (q->event_head)
		pthread_cond_signal(&q->not_empty);
}

struct gw_job *gw_workq_window_pop(struct gw_workq *q, size_t room, size_t wake_at, int64_t deadline_ns)
{
	struct gw_job *job = NULL;
	tl_self_event = 0;
	handback_flush(q); /* never wait on held results */
	pthread_mutex_lock(&q->lock); /* ---- workq lock { */
	if (q->collecting && !tl_collecting) { /* another worker's window */
		pthread_mutex_unlock(&q->lock);
		return NULL;
	}
	if (!tl_collecting)
		gw_stat_inc(GW_STAT_signing_windows);
	q->collecting = 1;
	tl_collecting = 1;
	q->collect_room = room;
	q->collect_wake_at = wake_at < 1 ? 1 : wake_at > room ? room : wake_at;
	while (room) {
		int due = q->closed || gw_monotonic_ns() >= deadline_ns;
		if (q->event_head && (due || q->event_count >= q->collect_wake_at)) {
			job = take_events(q, room);
			break;
		}
		/* Checked before a verification is taken: a stream of them must not
		 * keep the window (and the signature of what it holds) open. */
		if (due)
			break;
		/* Verifications no idle worker waits for: run here rather than
		 * keep them waiting while this worker only waits. */
		if ((q->verify_head || q->auth_head) && !q->idle) {
			job = take_verification(q);
			break;
		}
		struct timespec ts = {(time_t)(deadline_ns / 1000000000LL),
				      (long)(deadline_ns % 1000000000LL)};
		pthread_cond_timedwait(&q->window, &q->lock, &ts); /* CLOCK_MONOTONIC (init) */
	}
	if (!job)
		window_end_locked(q);
	pthread_mutex_unlock(&q->lock); /* } workq lock ---- */
	return job;
}

void gw_workq_window_end(struct gw_workq *q)
{
	pthread_mutex_lock(&q->lock);
	window_end_locked(q);
	pthread_mutex_unlock(&q->lock);
}

void gw_workq_refuse(struct gw_workq *q)
{
	pthread_mutex_lock(&q->lock);
	q->refusing = 1;
	pthread_mutex_unlock(&q->lock);
}

void gw_workq_close(struct gw_workq *q)
{
	pthread_mutex_lock(&q->lock);
	q->closed = 1;
	pthread_cond_broadcast(&q->not_empty);
	pthread_cond_broadcast(&q->window);
	pthread_mutex_unlock(&q->lock);
}

size_t gw_workq_event_depth(struct gw_workq *q)
{
	pthread_mutex_lock(&q->lock);
	size_t n = q->event_count;
	pthread_mutex_unlock(&q->lock);
	return n;
}

size_t gw_workq_verify_depth(struct gw_workq *q)
{
	pthread_mutex_lock(&q->lock);
	size_t n = q->verify_count;
	pthread_mutex_unlock(&q->lock);
	return n;
}

size_t gw_workq_auth_depth(struct gw_workq *q)
{
	pthread_mutex_lock(&q->lock);
	size_t n = q->auth_count;
	pthread_mutex_unlock(&q->lock);
	return n;
}

uint64_t gw_workq_next_intake_no(struct gw_workq *q)
{
	pthread_mutex_lock(&q->lock);
	uint64_t n = q->next_intake_no;
	pthread_mutex_unlock(&q->lock);
	return n;
}
