/* sequencer.h - per-user seq numbers in intake order across parallel workers.
 *
 * Workers evaluate events in parallel, but the seq of every (installation,
 * user) must follow intake order. Each event holds a ticket: its intake
 * number (workq.h). A worker waits for its turn (gw_sequencer_wait_turn),
 * takes seqs for its recipients, and passes the turn on
 * (gw_sequencer_pass_turn). No deadlock: events are popped in intake order,
 * so every earlier ticket is held by a running worker that never waits on a
 * later one.
 *
 * The turn also orders what must happen in intake order besides seqs: the
 * activity tracker (activity.h) is only touched while the turn is held.
 *
 * Ownership: the sequencer owns its map of last seqs (keys copied), bounded
 * in bytes (seqmap.h). Threads:
 * any; one mutex, the innermost lock of the workers (nothing else is taken
 * while it is held except the activity tracker, which has no lock).
 */
#ifndef GW_SEQUENCER_H
#define GW_SEQUENCER_H

#include <pthread.h>
#include <stdint.h>

#include <stddef.h>

#include "seqmap.h"

struct gw_store;

struct gw_sequencer {
	pthread_mutex_t lock;
	pthread_cond_t turn;
	uint64_t next_intake_no; /* the event whose recipients get seqs next */
	struct gw_seqmap user_seq; /* "<len(inst)>:<inst><user>" -> last seq, within seq_bytes */
	struct gw_store
		*store; /* NULL: counters start at 1; else a miss continues from the store's max seq */
	uint64_t
		store_failures; /* max_seq reads that failed (under the lock): cluster mode leaves that event pending */
};

/* The first turn is intake number 1 (workq's first). The seq counters are
 * held within seq_bytes (limits.seq_bytes; seqmap.h says what eviction does
 * to a user's seq). */
int gw_sequencer_init(struct gw_sequencer *s, size_t seq_bytes);
void gw_sequencer_destroy(struct gw_sequencer *s);

/* Locks the sequencer and waits until intake_no has the turn; returns with
 * the lock held. */
void gw_sequencer_wait_turn(struct gw_sequencer *s, uint64_t intake_no);

/* Unlocks, keeping the turn (nobody else can get it until it is passed). */
void gw_sequencer_unlock(struct gw_sequencer *s);

/* With the lock and turn held: the next seq of (inst, user). The map is a
 * cache in front of the store: on a miss the counter continues from the
 * store's max seq of the user (a read under the lock: only the first
 * notification of a user after a start or an eviction pays it), and never
 * below the eviction floor (seqmap.h: seqs an evicted entry handed out may
 * still be in flight, not yet recorded). 0 when it cannot be tracked (key
 * too long, out of memory, store read failed): no delivery. */
uint64_t gw_sequencer_next_seq_locked(struct gw_sequencer *s, const char *inst, const char *user);

/* Cluster mode (batch.c, after GW_STORE_ERR_SEQ): (inst, user)'s last seq
 * is now seq, as numbered against the shared store. Takes the lock, not the
 * turn. */
void gw_sequencer_reseat(struct gw_sequencer *s, const char *inst, const char *user, uint64_t seq);

/* With the lock and turn held: hands the turn to the next intake number and
 * unlocks. */
void gw_sequencer_pass_turn(struct gw_sequencer *s);

#endif
