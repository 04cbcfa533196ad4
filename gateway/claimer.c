/* claimer.c - see claimer.h. */
#include "claimer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "app.h"
#include "log.h"
#include "store.h"
#include "workq.h"

struct gw_claimer {
	struct gw_app *app;
	gw_claim_fn claim;
	pthread_t tid;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int kicked, stop;
	_Atomic int failing; /* the last claim failed (read by /readyz) */
};

int gw_claimer_failing(struct gw_claimer *c)
{
	return c && atomic_load(&c->failing);
}

void gw_claimer_kick(struct gw_claimer *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->kicked = 1;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void *claimer_main(void *arg)
{
	struct gw_claimer *c = arg;
	struct gw_app *app = c->app;
	int failing = 0;
	for (;;) {
		size_t got = 0, max = 0;
		int rc = GW_STORE_OK;
		/* Room on the lane: take at most what fits, never more than a batch. */
		size_t depth = gw_workq_event_depth(&app->workq);
		size_t cap = (size_t)app->cfg.queue_capacity;
		if (depth < cap) {
			max = cap - depth < GW_CLAIM_BATCH ? cap - depth : GW_CLAIM_BATCH;
			rc = c->claim(app, max, &got);
			if (rc && !failing)
				gw_log(GW_LOG_ERR,
				       "cluster: cannot claim events from the journal: %s (retrying)",
				       gw_store_strerror(rc));
			else if (!rc && failing)
				gw_log(GW_LOG_NOTICE, "cluster: claiming events again");
			failing = rc != GW_STORE_OK;
			atomic_store(&c->failing, failing);
		}
		pthread_mutex_lock(&c->lock);
		/* Fewer than asked for: the journal had nothing more just now, so
		 * claiming again at once would be two round trips for nothing (it
		 * was, for every event at light load: docs/cluster.md "Round trips
		 * and CPU"). This node's next journaling of an entry it did not
		 * take kicks; other nodes' untaken events are seen at the poll. */
		if (got < max || !max || rc) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += GW_CLAIM_POLL_MS * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			while (!c->kicked && !c->stop)
				if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) == ETIMEDOUT)
					break;
		}
		c->kicked = 0;
		int stop = c->stop;
		pthread_mutex_unlock(&c->lock);
		if (stop)
			break;
	}
	return NULL;
}

struct gw_claimer *gw_claimer_start(struct gw_app *app, gw_claim_fn claim, int *failed)
{
	*failed = 0;
	if (!app->store || !app->store->ops->claim)
		return NULL;
	struct gw_claimer *c = calloc(1, sizeof(*c));
	if (!c) {
		*failed = 1;
		return NULL;
	}
	c->app = app;
	c->claim = claim;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old); /* only the service thread takes signals */
	int rc = pthread_create(&c->tid, NULL, claimer_main, c);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		pthread_mutex_destroy(&c->lock);
		pthread_cond_destroy(&c->cond);
		free(c);
		*failed = 1;
		return NULL;
	}
	return c;
}

void gw_claimer_stop(struct gw_claimer *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = 1;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->tid, NULL);
}

void gw_claimer_free(struct gw_claimer *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}
