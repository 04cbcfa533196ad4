/* journal.c - see journal.h. */
#include "journal.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "outbox.h"
#include "stats.h"
#include "store.h"
#include "util.h"
#include "workq.h"

struct gw_journal {
	struct gw_app *app;
	gw_journal_done_fn done;
	pthread_t tid;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct gw_job *head, *tail;
	size_t waiting, committing;
	int stop;
	int inline_commit; /* gw_journal_start_inline: no thread */
};

static void commit(struct gw_journal *j, struct gw_job **evs, size_t n);

void gw_journal_submit(struct gw_journal *j, struct gw_job *ev)
{
	ev->next = NULL;
	if (j->inline_commit) {
		commit(j, &ev, 1);
		return;
	}
	pthread_mutex_lock(&j->lock);
	/* Only a thread that waits needs the signal: with events already
	 * waiting, or a commit under way, it looks at the list again anyway. */
	int wake = !j->head && !j->committing;
	if (j->tail)
		j->tail->next = ev;
	else
		j->head = ev;
	j->tail = ev;
	j->waiting++;
	pthread_mutex_unlock(&j->lock);
	/* After the unlock: signalled under it, the journal thread ran (often
	 * preempting this one) only to block on the lock it still held: four
	 * context switches where two do (issue 15). */
	if (wake)
		pthread_cond_signal(&j->cond);
}

size_t gw_journal_depth(struct gw_journal *j)
{
	if (!j || j->inline_commit)
		return 0;
	pthread_mutex_lock(&j->lock);
	size_t n = j->waiting + j->committing;
	pthread_mutex_unlock(&j->lock);
	return n;
}

static void commit(struct gw_journal *j, struct gw_job **evs, size_t n)
{
	struct gw_app *app = j->app;
	struct gw_store_event se[GW_JOURNAL_BATCH];
	struct gw_store_journaled out[GW_JOURNAL_BATCH];
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	for (size_t i = 0; i < n; i++)
		se[i] = (struct gw_store_event){
			evs[i]->installation, evs[i]->trace_id, ms, evs[i]->keyed ? evs[i]->key : NULL,
			evs[i]->body,	      evs[i]->body_len};
	memset(out, 0, n * sizeof(out[0]));
	/* the engine times its commit (store_commit_seconds, metrics.h); the
	 * memory engine has no transaction and observes nothing */
	int rc = app->store->ops->journal(app->store, se, n, (int64_t)ts.tv_sec, app->cfg.dedup_ttl, out);
	gw_stat_inc(GW_STAT_journal_batches);
	/* The transaction's answers reach the service thread in one hand-off
	 * (one wake-up), not one per event. Not inline: a worker may hold its
	 * results already (workq.h), and commits one event anyway. */
	if (!j->inline_commit)
		gw_outbox_hold(&app->outbox);
	for (size_t i = 0; i < n; i++) {
		int r = rc;
		if (rc == GW_STORE_OK) {
			r = out[i].rc;
			evs[i]->journal_id = out[i].id;
			evs[i]->journal_owned = out[i].owned;
		}
		j->done(app, evs[i], r);
	}
	if (!j->inline_commit)
		gw_outbox_flush(&app->outbox);
}

static void *journal_main(void *arg)
{
	struct gw_journal *j = arg;
	struct gw_job *evs[GW_JOURNAL_BATCH];
	pthread_mutex_lock(&j->lock);
	for (;;) {
		while (!j->head && !j->stop)
			pthread_cond_wait(&j->cond, &j->lock);
		if (!j->head)
			break; /* stopping and nothing left */
		size_t n = 0;
		while (j->head && n < GW_JOURNAL_BATCH) {
			evs[n++] = j->head;
			j->head = j->head->next;
		}
		if (!j->head)
			j->tail = NULL;
		j->waiting -= n;
		j->committing = n;
		pthread_mutex_unlock(&j->lock);
		commit(j, evs, n);
		pthread_mutex_lock(&j->lock);
		j->committing = 0;
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

struct gw_journal *gw_journal_start(struct gw_app *app, gw_journal_done_fn done)
{
	struct gw_journal *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->app = app;
	j->done = done;
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old); /* only the service thread takes signals */
	int rc = pthread_create(&j->tid, NULL, journal_main, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!rc)
		pthread_setname_np(j->tid, "gw-journal"); /* per-thread CPU in top -H, bench/run.sh */
	if (rc) {
		pthread_mutex_destroy(&j->lock);
		pthread_cond_destroy(&j->cond);
		free(j);
		return NULL;
	}
	return j;
}

struct gw_journal *gw_journal_start_inline(struct gw_app *app, gw_journal_done_fn done)
{
	struct gw_journal *j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	j->app = app;
	j->done = done;
	j->inline_commit = 1;
	return j;
}

void gw_journal_stop(struct gw_journal *j)
{
	if (!j)
		return;
	if (j->inline_commit) {
		free(j);
		return;
	}
	pthread_mutex_lock(&j->lock);
	j->stop = 1;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
	pthread_join(j->tid, NULL);
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->cond);
	free(j);
}
