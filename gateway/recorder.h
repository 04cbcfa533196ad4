/* recorder.h - the recorder thread: group commit of signed passes.
 *
 * A worker that signed a pass (batch.c) hands it here and pops its next run
 * of events. The recorder takes every pass waiting, records all their
 * notifications and done marks in one store transaction (one fsync), then
 * delivers each (gw_batch_finish: batches to the outbox, released by the
 * service thread in intake order). So many passes share one fsync, and
 * nothing is delivered before it is stored. Submitters wait while
 * GW_RECORDER_MAX_EVENTS events are waiting (back-pressure onto the events
 * lane, whose bound answers 503).
 *
 * Order: workers sign passes in parallel, so a pass whose seqs come later
 * can be submitted before one whose seqs come earlier. Committed in that
 * order, a kill -9 between the two transactions would lose the earlier
 * pass's seqs (its events are replayed at start and numbered again): a gap.
 * So every event that took seqs is told here while its sequencer turn is
 * held (gw_recorder_numbered, in intake order), and a pass is committed
 * only when no event numbered before any of its own is still unsubmitted
 * (`record_order_waits`). A numbered event never submitted would hold the
 * rest back: after GW_RECORDER_ORDER_WAIT_MS they are committed anyway
 * (`record_order_expired`), the old behaviour.
 *
 * Ownership: a submitted pass (its works, their jobs, items and batches)
 * belongs to the recorder. Threads: submit from workers; one recorder thread.
 */
#ifndef GW_RECORDER_H
#define GW_RECORDER_H

#include <stddef.h>
#include <stdint.h>

#define GW_RECORDER_MAX_EVENTS 4096
#define GW_RECORDER_ORDER_WAIT_MS 2000

struct gw_app;
struct gw_event_work;
struct gw_recorder;

/* Called on the recorder thread with the works it recorded (or could not:
 * each work says), to sign off and deliver them (batch's gw_batch_finish).
 * Given at start so the recorder does not call batch back. */
typedef void (*gw_recorder_done_fn)(struct gw_app *app, struct gw_event_work *works, size_t n);

struct gw_recorder *gw_recorder_start(struct gw_app *app, gw_recorder_done_fn done);
/* An event took seqs (called with its sequencer turn held, outside the
 * sequencer lock, so in intake order); its pass must then be submitted.
 * 0, or -1 when out of memory (not tracked: its pass is not waited for). */
int gw_recorder_numbered(struct gw_recorder *r, uint64_t intake_no);
/* Copies the works array (taking what it points to). 0, or -1 when out of
 * memory (the caller still owns everything and records it itself; its
 * numbered events no longer hold others back). */
int gw_recorder_submit(struct gw_recorder *r, struct gw_event_work *works, size_t n);
/* Records and delivers what waits, then stops and joins the thread. */
void gw_recorder_stop(struct gw_recorder *r);

#endif
