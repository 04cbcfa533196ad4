/* workers.h - the worker threads: all CPU work of the gateway, and the
 * dispatch of each job kind to the module that does it.
 *
 * A worker pops a job (workq.h) and runs it to the end:
 *  - INTAKE (an HTTP intake request): intake.h, answered through the outbox;
 *  - AUTH (a websocket connect frame): subscription-token verification, the
 *    result back through the outbox;
 *  - EVENT: a run of consecutive events (up to sign_batch_events): for each,
 *    rules (parallel), then per-user seqs in intake order (sequencer.h); then
 *    one signature over the run and one batch per event into the outbox
 *    (batch.h; empty batches too: the service thread releases batches in
 *    intake order and needs every number).
 * Scheduled triggers take their turn before the rules, so a digest sees the
 * activity of every event accepted before it (activity.h).
 *
 * Ownership: the app owns the thread array (app->workers). Threads: start and
 * join from the service thread's owner (server.c); the workers touch lws
 * through nothing but the outbox wake callback (lws_cancel_service) and never
 * call lwsl_*. Workers block every signal.
 */
#ifndef GW_WORKERS_H
#define GW_WORKERS_H

struct gw_app;

/* Starts app->nworkers threads; on failure app->nworkers is the number
 * started (join them) and -1 is returned. */
int gw_workers_start(struct gw_app *app);

/* Joins every worker (after gw_workq_close) and frees the thread array. */
void gw_workers_join(struct gw_app *app);

#endif
