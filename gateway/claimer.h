/* claimer.h - cluster mode's feed of work: the claim thread.
 *
 * With a shared store (store.h ops->claim, the Redis engine) the node that
 * journaled an event queues it itself only when the journal call made the
 * entry its own (gw_store_journaled.owned, the common case: no claim round
 * trip); every node's claim thread takes the rest from the journal's
 * consumer group (new entries no node took, and after cluster.claim_after
 * those a dead node left half done) and queues them on its own events lane. So whichever node is alive finishes every event
 * answered 202, and no event is processed by two live nodes at once (the
 * store's record answers NOT_PENDING to the slower one if it happens).
 *
 * The thread claims while the events lane has room (at most
 * GW_CLAIM_BATCH per call), polls every GW_CLAIM_POLL_MS when there is
 * nothing new, and is woken at once after this node journaled something it
 * did not take (gw_claimer_kick). A failing claim (Redis down or frozen) is logged once
 * per outage and retried at the poll interval.
 *
 * Threads: one claim thread; kick from any thread. Ownership: the claimer
 * belongs to the server (started after the workers, stopped before them).
 */
#ifndef GW_CLAIMER_H
#define GW_CLAIMER_H

#include <stddef.h>

#define GW_CLAIM_BATCH 64 /* events per claim call */
#define GW_CLAIM_POLL_MS 20 /* idle poll: how soon another node's new events are seen */

struct gw_app;
struct gw_claimer;

/* Claims up to max events from the shared journal onto the events lane
 * (intake's gw_intake_claim): 0 or a store error, *count = how many. Given
 * at start, so the claimer does not call intake back (intake kicks it). */
typedef int (*gw_claim_fn)(struct gw_app *app, size_t max, size_t *count);

/* NULL when the store has no claim (embedded engines) or on failure
 * (*failed = 1 then). */
struct gw_claimer *gw_claimer_start(struct gw_app *app, gw_claim_fn claim, int *failed);
void gw_claimer_kick(struct gw_claimer *c);
/* 1 while the last claim failed: the claim thread calls the store every
 * GW_CLAIM_POLL_MS, so this is a live probe of the store (/readyz). */
int gw_claimer_failing(struct gw_claimer *c);
/* Stops and joins the thread (kick stays harmless: the journal thread may
 * still call it); gw_claimer_free after the journal thread has stopped. */
void gw_claimer_stop(struct gw_claimer *c);
void gw_claimer_free(struct gw_claimer *c);

#endif
