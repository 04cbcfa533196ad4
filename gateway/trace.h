/* trace.h - "why did (or didn't) this user get that notification?": a
 * bounded ring of per-event decisions, read through the admin listener
 * (GET /admin/trace/<traceId>, GET /admin/trace?user=<accountId>&limit=N;
 * docs/operations.md).
 *
 * Each entry: when the event was accepted, its type and installation, every
 * candidate rule (its events name the event type) with the explanation
 * `rules test` gives (rules_explain_for: stage, outcome, the deciding
 * sub-expression and its value or error), the recipients, and per
 * notification its context, seq, whether it was stored and to how many
 * connections it was written. An entry concerns a user when the user is a
 * recipient or an account id the event names (accountId, atlassianId
 * anywhere in it): that is how a rule that considered a user and excluded
 * them (filter, ignoreSelf, excludeActor) is found by user.
 *
 * Bounded twice: at most admin.trace_events entries and admin.trace_bytes
 * bytes (the oldest go first; counted: trace_entries_evicted); an entry's
 * explanation over GW_TRACE_ENTRY_MAX bytes is left out of it (marked).
 * Recording runs the rules a second time with explanations, so it is on
 * only when the admin listener is (admin.listen and admin.token_file).
 *
 * Ownership: the ring owns its entries. Threads: any (one mutex): workers
 * record, the recorder thread marks what it stored, the service thread
 * adds delivery counts and answers queries.
 */
#ifndef GW_TRACE_H
#define GW_TRACE_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "strmap.h"

#define GW_TRACE_ENTRY_MAX (64 * 1024) /* bytes of one entry's explanation */
#define GW_TRACE_USER_LIMIT_MAX 100 /* ?limit= is clamped to this */

struct gw_trace_entry;
struct gw_store_note;
struct rules_set;
struct rules_scratch;
struct rules_invocation;

struct gw_trace {
	pthread_mutex_t lock;
	struct gw_trace_entry **ring; /* max_entries slots, oldest at head */
	size_t head, count, max_entries;
	size_t bytes, max_bytes;
	struct gw_strmap by_intake; /* intake_no (gw_id_key) -> entry */
};

/* One notification as the worker assigned it. */
struct gw_trace_note {
	const char *rule, *user, *ctx;
	uint64_t seq; /* 0: none assigned (not delivered) */
};

/* The event as the worker saw it. */
struct gw_trace_event {
	const char *trace_id, *event_type, *installation;
	uint64_t intake_no;
	int64_t accepted_ms; /* unix time, milliseconds */
	const json_t *event;
	const struct rules_invocation *inv;
};

int gw_trace_init(struct gw_trace *t, size_t max_entries, size_t max_bytes);
void gw_trace_destroy(struct gw_trace *t);

/* Worker: explains the event against set and records it with its notes. */
void gw_trace_record(struct gw_trace *t, const struct rules_set *set, struct rules_scratch *scratch,
		     const struct gw_trace_event *ev, const struct gw_trace_note *notes, size_t nnotes);

/* Recorder: these notifications of event intake_no were stored, in the
 * transaction that marked the event done (store.h record). */
void gw_trace_stored(struct gw_trace *t, uint64_t intake_no, const struct gw_store_note *notes, size_t n);

/* Service thread: the notification (user, seq) of event intake_no was
 * written to `connections` connections. */
void gw_trace_delivered(struct gw_trace *t, uint64_t intake_no, const char *user, uint64_t seq,
			size_t connections);

/* The entries with this trace id, newest first: {"traceId", "events": [...]}
 * as JSON text (malloc'd), or NULL when none (or out of memory: *oom set). */
char *gw_trace_by_id(struct gw_trace *t, const char *trace_id, int *oom);
/* The newest `limit` entries that concern user: {"user", "limit", "events": [...]}. */
char *gw_trace_by_user(struct gw_trace *t, const char *user, size_t limit);

#endif
