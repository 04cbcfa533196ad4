/* store_probe.c - see store_probe.h. */
#include "store_probe.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "stats.h"
#include "store.h"
#include "util.h"

struct gw_store_probe {
	struct gw_store *store;
	pthread_t tid;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC: the wait between round trips, cut short by stop */
	int stop;
	struct gw_store_probe_state last;
};

static void round_trip(struct gw_store_probe *p)
{
	int rc = p->store->ops->ping ? p->store->ops->ping(p->store) : GW_STORE_OK;
	int64_t now = gw_monotonic_ns();
	if (rc != GW_STORE_OK)
		gw_stat_inc(GW_STAT_store_probe_failures);
	pthread_mutex_lock(&p->lock);
	p->last.rc = rc;
	p->last.checked_ns = now;
	if (rc == GW_STORE_OK)
		p->last.ok_ns = now;
	pthread_mutex_unlock(&p->lock);
}

static void *probe_main(void *arg)
{
	struct gw_store_probe *p = arg;
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += GW_STORE_PROBE_INTERVAL_MS / 1000;
		until.tv_nsec += (long)(GW_STORE_PROBE_INTERVAL_MS % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!p->stop && pthread_cond_timedwait(&p->cond, &p->lock, &until) == 0)
			;
		if (p->stop)
			break;
		pthread_mutex_unlock(&p->lock);
		round_trip(p);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct gw_store_probe *gw_store_probe_start(struct gw_store *store)
{
	struct gw_store_probe *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->store = store;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&p->lock, NULL);
	round_trip(p);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old); /* only the service thread takes signals */
	int rc = pthread_create(&p->tid, NULL, probe_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		pthread_mutex_destroy(&p->lock);
		pthread_cond_destroy(&p->cond);
		free(p);
		return NULL;
	}
	return p;
}

void gw_store_probe_read(struct gw_store_probe *p, struct gw_store_probe_state *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->last;
	pthread_mutex_unlock(&p->lock);
}

void gw_store_probe_stop(struct gw_store_probe *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->tid, NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}
