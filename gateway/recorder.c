/* recorder.c - see recorder.h. */
#include "recorder.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "batch.h"
#include "outbox.h"
#include "stats.h"
#include "util.h"

struct pass {
	struct pass *next;
	size_t n;
	/* intake numbers of its numbered events (first > last: none) */
	uint64_t first, last;
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
	/* Numbered events not yet submitted, ascending (told in intake order). */
	uint64_t *numbered;
	size_t nnumbered, numbered_cap;
	int64_t held_since_ns; /* passes wait for an earlier one since then; 0: none */
	int busy; /* the thread is recording (lock released) */
	int stop;
};

int gw_recorder_numbered(struct gw_recorder *r, uint64_t intake_no)
{
	pthread_mutex_lock(&r->lock);
	if (r->nnumbered == r->numbered_cap) {
		size_t cap = r->numbered_cap ? 2 * r->numbered_cap : 64;
		uint64_t *grown = realloc(r->numbered, cap * sizeof(*grown));
		if (!grown) {
			pthread_mutex_unlock(&r->lock);
			return -1;
		}
		r->numbered = grown;
		r->numbered_cap = cap;
	}
	size_t at = r->nnumbered; /* in intake order: almost always the end */
	while (at && r->numbered[at - 1] > intake_no)
		at--;
	memmove(r->numbered + at + 1, r->numbered + at, (r->nnumbered - at) * sizeof(*r->numbered));
	r->numbered[at] = intake_no;
	r->nnumbered++;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* Lock held. The pass's numbered events are submitted: no longer waited for. */
static void forget_numbered(struct gw_recorder *r, const struct gw_event_work *works, size_t n)
{
	for (size_t e = 0; e < n; e++) {
		if (!works[e].numbered)
			continue;
		uint64_t no = works[e].job->intake_no;
		size_t lo = 0, hi = r->nnumbered;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (r->numbered[mid] < no)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < r->nnumbered && r->numbered[lo] == no) {
			memmove(r->numbered + lo, r->numbered + lo + 1,
				(r->nnumbered - lo - 1) * sizeof(*r->numbered));
			r->nnumbered--;
		}
	}
}

int gw_recorder_submit(struct gw_recorder *r, struct gw_event_work *works, size_t n)
{
	struct pass *p = malloc(sizeof(*p) + n * sizeof(p->works[0]));
	if (!p) {
		pthread_mutex_lock(&r->lock);
		forget_numbered(r, works, n);
		pthread_mutex_unlock(&r->lock);
		pthread_cond_signal(&r->work);
		return -1;
	}
	p->next = NULL;
	p->n = n;
	p->first = UINT64_MAX;
	p->last = 0;
	for (size_t e = 0; e < n; e++)
		if (works[e].numbered) {
			uint64_t no = works[e].job->intake_no;
			p->first = no < p->first ? no : p->first;
			p->last = no > p->last ? no : p->last;
		}
	memcpy(p->works, works, n * sizeof(works[0]));
	pthread_mutex_lock(&r->lock);
	/* The pass holding the oldest numbered event never waits for room:
	 * the passes filling the queue may be waiting for it. */
	while (r->events >= GW_RECORDER_MAX_EVENTS && !r->stop &&
	       !(r->nnumbered && p->first <= r->numbered[0]))
		pthread_cond_wait(&r->room, &r->lock);
	/* Only a waiting thread needs the signal (journal.c's reasoning), and
	 * it is sent after the unlock; one holding passes for an earlier one
	 * waits too. */
	int wake = !r->busy;
	if (r->tail)
		r->tail->next = p;
	else
		r->head = p;
	r->tail = p;
	r->events += n;
	forget_numbered(r, works, n);
	pthread_mutex_unlock(&r->lock);
	if (wake)
		pthread_cond_signal(&r->work);
	return 0;
}

/* Lock held. Unlinks the passes that may be committed now: those all of
 * whose numbered events come before every numbered event not yet submitted
 * and before every waiting pass that must still wait (a fixpoint: such a
 * pass holds back what comes after its first event). `all`: every pass.
 * Returns the list in submission order; *events their count. */
static struct pass *take_ready(struct gw_recorder *r, int all, size_t *events)
{
	uint64_t bound = all || !r->nnumbered ? UINT64_MAX : r->numbered[0];
	for (int changed = 1; changed && !all;) {
		changed = 0;
		for (struct pass *p = r->head; p; p = p->next)
			if (p->first <= p->last && p->last >= bound && p->first < bound) {
				bound = p->first;
				changed = 1;
			}
	}
	struct pass *ready = NULL, **ready_tail = &ready, **at = &r->head;
	r->tail = NULL;
	*events = 0;
	while (*at) {
		struct pass *p = *at;
		if (all || p->first > p->last || p->last < bound) {
			*at = p->next;
			p->next = NULL;
			*ready_tail = p;
			ready_tail = &p->next;
			*events += p->n;
		} else {
			r->tail = p;
			at = &p->next;
		}
	}
	r->events -= *events;
	return ready;
}

static void *recorder_main(void *arg)
{
	struct gw_recorder *r = arg;
	struct gw_event_work *all = NULL;
	size_t cap = 0;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		struct pass *list = NULL;
		size_t n = 0;
		int was_full = 0;
		while (!list) {
			if (!r->head) {
				r->held_since_ns = 0;
				if (r->stop)
					break;
				pthread_cond_wait(&r->work, &r->lock);
				continue;
			}
			int64_t now = gw_monotonic_ns();
			int expired = r->held_since_ns &&
				      now - r->held_since_ns >= GW_RECORDER_ORDER_WAIT_MS * 1000000LL;
			was_full = r->events >= GW_RECORDER_MAX_EVENTS;
			list = take_ready(r, r->stop || expired, &n);
			if (expired)
				gw_stat_inc(GW_STAT_record_order_expired);
			if (list) {
				r->held_since_ns = r->head ? now : 0;
				break;
			}
			if (!r->held_since_ns) {
				r->held_since_ns = now;
				gw_stat_inc(GW_STAT_record_order_waits);
			}
			int64_t until = r->held_since_ns + GW_RECORDER_ORDER_WAIT_MS * 1000000LL;
			struct timespec ts = {(time_t)(until / 1000000000LL), (long)(until % 1000000000LL)};
			pthread_cond_timedwait(&r->work, &r->lock, &ts); /* CLOCK_MONOTONIC (start) */
		}
		if (!list)
			break;
		r->busy = 1;
		pthread_mutex_unlock(&r->lock);
		if (was_full) /* submitters wait for room only then */
			pthread_cond_broadcast(&r->room);
		/* Every pass that may go, in one transaction. */
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
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* gw_monotonic_ns's clock */
	pthread_cond_init(&r->work, &attr);
	pthread_condattr_destroy(&attr);
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
	free(r->numbered);
	free(r);
}
