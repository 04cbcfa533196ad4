/* workq.c - see workq.h. One mutex, one condition variable; pushes never
 * block (the service thread must not wait), pops do. */
#include "workq.h"
#include "store_req.h"

#include <stdlib.h>
#include <string.h>

/* Set on a thread once it pops: a worker, which comes back for more when its
 * job is done. An event such a thread pushes into an idle queue is left for
 * it instead of waking another worker (gw_workq_push_event). */
static _Thread_local int tl_consumer;
/* This thread pushed an event without waking anyone and holds its results
 * (gw_workq_set_handback) until the pop after the one that takes it. */
static _Thread_local int tl_self_event;
static _Thread_local uint64_t tl_self_no; /* its intake number */
static _Thread_local struct gw_workq *tl_holding;

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
	pthread_mutex_destroy(&q->lock);
}

int gw_workq_push_verify(struct gw_workq *q, struct gw_job *job)
{
	int rc = 0;
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
	}
	pthread_mutex_unlock(&q->lock); /* } workq lock ---- */
	if (rc == 0) /* after the unlock: see wake_for_event */
		pthread_cond_signal(&q->not_empty);
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
	if (!tl_consumer || q->event_count > 1 || q->verify_head || q->auth_head)
		return 1;
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
	int wake = wake_for_event(q, job);
	pthread_mutex_unlock(&q->lock); /* } workq lock ---- */
	if (wake)
		pthread_cond_signal(&q->not_empty);
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
	int rc = 0, wake = 0;
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
		wake = wake_for_event(q, job);
	}
	pthread_mutex_unlock(&q->lock); /* } workq lock ---- */
	if (wake)
		pthread_cond_signal(&q->not_empty);
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
		if (q->event_head && (!verifying || q->verify_streak >= max_events)) {
			size_t take = share > 1 ? (q->event_count + share - 1) / share : q->event_count;
			if (take > max_events)
				take = max_events;
			if (take < 1)
				take = 1;
			job = q->event_head;
			struct gw_job *last = job;
			for (size_t i = 1; i < take && last->next; i++)
				last = last->next;
			q->event_head = last->next;
			if (!q->event_head)
				q->event_tail = NULL;
			last->next = NULL;
			for (struct gw_job *j = job; j; j = j->next)
				q->event_count--;
			q->verify_streak = 0;
			break;
		}
		if (verifying) {
			/* FITs and logins alternate when both wait. */
			int auth = !q->verify_head || (q->auth_head && !q->last_auth);
			job = auth ? take_one(&q->auth_head, &q->auth_tail, &q->auth_count)
				   : take_one(&q->verify_head, &q->verify_tail, &q->verify_count);
			q->last_auth = auth;
			q->verify_streak = q->event_head ? q->verify_streak + 1 : 0;
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
		pthread_cond_wait(&q->not_empty, &q->lock);
	}
	pthread_mutex_unlock(&q->lock); /* } workq lock ---- */
	if (!job || job->kind != GW_JOB_EVENT || job->intake_no != tl_self_no)
		handback_flush(q);
	return job;
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
