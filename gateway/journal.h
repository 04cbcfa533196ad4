/* journal.h - the journal thread: group commit of accepted events.
 *
 * An intake worker that accepted an event (FIT verified, JSON parsed,
 * redelivery key reserved) hands it here and moves on to its next job. The
 * journal thread takes every event waiting (at most GW_JOURNAL_BATCH), writes
 * them to the store in one transaction (one fsync with durability fsync), and
 * for each calls gw_intake_journaled, which answers 202 (or 202 duplicate /
 * 503) through the outbox and queues the event. So under load one fsync
 * carries many events, and 202 is never answered before the event is
 * durable; neither the lws service thread nor the workers wait on the disk.
 *
 * Ownership: a submitted job belongs to the journal until it is handed to
 * gw_intake_journaled. Threads: submit from workers; one journal thread
 * (none when started inline: the submitting worker commits); depth from any
 * thread (one mutex, a leaf).
 */
#ifndef GW_JOURNAL_H
#define GW_JOURNAL_H

#include <stddef.h>

#define GW_JOURNAL_BATCH 256 /* events per transaction at most */

struct gw_app;
struct gw_job;
struct gw_journal;

/* Called on the journal thread for each event once its transaction ended:
 * rc is the store's answer for it (GW_STORE_OK, a duplicate, an error); the
 * callee takes ev. Given at start (intake's gw_intake_journaled), so the
 * journal does not call intake back. */
typedef void (*gw_journal_done_fn)(struct gw_app *app, struct gw_job *ev, int rc);

/* Starts the thread. NULL on failure. */
struct gw_journal *gw_journal_start(struct gw_app *app, gw_journal_done_fn done);
/* No thread: gw_journal_submit commits on the caller's thread (a worker)
 * and calls done there. For a store whose writes never wait on I/O (the
 * memory store): a hand-off to a thread of its own and back would cost more
 * than the write (issue 15). NULL on failure. */
struct gw_journal *gw_journal_start_inline(struct gw_app *app, gw_journal_done_fn done);
/* Takes ev (an EVENT job with body = its payload, req_id = the request). */
void gw_journal_submit(struct gw_journal *j, struct gw_job *ev);
/* Events waiting or being committed. */
size_t gw_journal_depth(struct gw_journal *j);
/* Commits what waits, then stops and joins the thread. */
void gw_journal_stop(struct gw_journal *j);

#endif
