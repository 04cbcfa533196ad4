/* recorder.c - see recorder.h. */
#include "recorder.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "batch.h"
#include "outbox.h"
#include "stats.h"

struct pass {
	struct pass *next;
	size_t n;
	struct gw_event_work works[];
};

struct gw_recorder {
	struct gw_app *app;
	gw_recorder_done_fn done;
	pthread_t tid;
	pthread_mutex_t lock;
	pthread_cond_t work, room;
	struct pass *head, *tail;
	size_t events; /* waiting */
	int busy; /* the thread is recording (lock released) */
	int stop;
};

int gw_recorder_submit(struct gw_recorder *r, struct gw_event_work *works, size_t n)
{
	struct pass *p = malloc(sizeof(*p) + n * sizeof(p->works[0]));
	if (!p)
		return -1;
	p->next = NULL;
	p->n = n;
	memcpy(p->works, works, n * sizeof(works[0]));
	pthread_mutex_lock(&r->lock);
	while (r->events >= GW_RECORDER_MAX_EVENTS && !r->stop)
		pthread_cond_wait(&r->room, &r->lock);
	/* Only a waiting thread needs the signal (journal.c's reasoning), and
	 * it is sent after the unlock. */
	int wake = !r->head && !r->busy;
	if (r->tail)
		r->tail->next = p;
	else
		r->head = p;
	r->tail = p;
	r->events += n;
	pthread_mutex_unlock(&r->lock);
	if (wake)
		pthread_cond_signal(&r->work);
	return 0;
}

static void *recorder_main(void *arg)
{
	struct gw_recorder *r = arg;
	struct gw_event_work *all = NULL;
	size_t cap = 0;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (!r->head && !r->stop)
			pthread_cond_wait(&r->work, &r->lock);
		if (!r->head)
			break;
		struct pass *list = r->head;
		size_t n = r->events;
		int was_full = n >= GW_RECORDER_MAX_EVENTS;
		r->head = r->tail = NULL;
		r->events = 0;
		r->busy = 1;
		pthread_mutex_unlock(&r->lock);
		if (was_full) /* submitters wait for room only then */
			pthread_cond_broadcast(&r->room);
		/* Every waiting pass in one transaction. */
		if (n > cap) {
			struct gw_event_work *grown = realloc(all, n * sizeof(*all));
			if (grown) {
				all = grown;
				cap = n;
			}
		}
		size_t k = 0;
		while (list) {
			struct pass *p = list;
			list = p->next;
			if (k + p->n <= cap) {
				memcpy(all + k, p->works, p->n * sizeof(p->works[0]));
				k += p->n;
			} else {
				r->done(r->app, p->works, p->n); /* no room to gather: alone */
			}
			free(p);
		}
		if (k) {
			gw_stat_inc(GW_STAT_record_batches);
			/* Held: every pass's batches reach the service thread in
			 * one hand-off. done records first (it may block on the
			 * disk) and only then pushes, so nothing held waits on it. */
			gw_outbox_hold(&r->app->outbox);
			r->done(r->app, all, k);
			gw_outbox_flush(&r->app->outbox);
		}
		pthread_mutex_lock(&r->lock);
		r->busy = 0;
	}
	pthread_mutex_unlock(&r->lock);
	free(all);
	return NULL;
}

struct gw_recorder *gw_recorder_start(struct gw_app *app, gw_recorder_done_fn done)
{
	struct gw_recorder *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->app = app;
	r->done = done;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->work, NULL);
	pthread_cond_init(&r->room, NULL);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old); /* only the service thread takes signals */
	int rc = pthread_create(&r->tid, NULL, recorder_main, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!rc)
		pthread_setname_np(r->tid, "gw-recorder"); /* per-thread CPU in top -H, bench/run.sh */
	if (rc) {
		pthread_mutex_destroy(&r->lock);
		pthread_cond_destroy(&r->work);
		pthread_cond_destroy(&r->room);
		free(r);
		return NULL;
	}
	return r;
}

void gw_recorder_stop(struct gw_recorder *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = 1;
	pthread_cond_broadcast(&r->work);
	pthread_cond_broadcast(&r->room);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->tid, NULL);
	pthread_mutex_destroy(&r->lock);
	pthread_cond_destroy(&r->work);
	pthread_cond_destroy(&r->room);
	free(r);
}
