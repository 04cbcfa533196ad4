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
#include "store_req.h"

struct gw_app;
struct gw_job;

/* Worker: runs job->store_req, pushes it back through the outbox (the job
 * keeps nothing). */
void gw_store_job_run(struct gw_app *app, struct gw_job *job);

#endif
