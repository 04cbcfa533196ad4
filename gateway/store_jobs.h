/* store_jobs.h - the store work of websockets and of the sweep, run on
 * workers: a resume page (since), an inbox page, mark / mark all, and a
 * bounded retention purge. realtime.c (service thread) fills a request,
 * queues it as a GW_JOB_STORE job (auth lane: a websocket's request like a
 * login), a worker runs it against the store (gw_store_job_run) and hands
 * the request back with its result through the outbox (GW_OUT_STORE); the
 * service thread answers the connection, which may have closed meanwhile
 * (then the result is dropped).
 *
 * Ownership: the request belongs to the job, then to the outbox item, then
 * to the service thread, which frees it with gw_store_req_free. Threads:
 * filled and consumed on the service thread, run on a worker.
 */
#ifndef GW_STORE_JOBS_H
#define GW_STORE_JOBS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct gw_app;
struct gw_job;

/* UNREAD: another tab's unread count after a mark (its token covers other
 * contexts than the sender's); ids = the changed ids it covers, read. */
enum gw_store_op { GW_SOP_SINCE, GW_SOP_INBOX, GW_SOP_MARK, GW_SOP_MARK_ALL, GW_SOP_PURGE, GW_SOP_UNREAD };

struct gw_store_req {
	enum gw_store_op op;
	uint64_t conn_id;     /* the asking connection (0: the sweep's purge) */
	char *inst, *user;    /* owned */
	char **pats;          /* the token's ctx patterns (since: the subscription's one), owned */
	size_t npats;
	char *ctx;            /* since: the subscription; inbox/mark_all: the filter or NULL; owned */
	uint64_t after;       /* since: seq > after */
	uint64_t before;      /* inbox: seq < before (0: newest) */
	size_t limit;         /* since, inbox: page size */
	char **ids;           /* mark: owned */
	size_t nids;
	int read;             /* mark: 1 read, 0 unread */
	json_t *id;           /* inbox: the client's id, echoed (owned reference) */
	uint64_t unread;      /* unread: the result */
	uint64_t gen;         /* since: the asking subscription's resume generation (realtime.c) */
	/* results */
	int rc;               /* GW_STORE_OK or a negative gw_store_rc */
	struct gw_store_page page;
	struct gw_store_marked marked;
	struct gw_store_purged purged;
};

struct gw_store_req *gw_store_req_new(enum gw_store_op op);
void gw_store_req_free(struct gw_store_req *r);

/* Worker: runs job->store_req, pushes it back through the outbox (the job
 * keeps nothing). */
void gw_store_job_run(struct gw_app *app, struct gw_job *job);

#endif
