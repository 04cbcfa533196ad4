/* activity.h - what each user was notified about since the last scheduled
 * run of each interval, so that scheduled rules can send digests.
 *
 * For every notification a product or lifecycle event produces, the worker
 * records (installation, user, title). A scheduled trigger for interval X
 * takes the users with activity since the previous X run of that
 * installation (and resets their X counters); the rules are then evaluated
 * once per such user with event.user = {accountId, count, titles}, or once
 * with event.user = null when nobody had any.
 *
 * Bounded in bytes: each title is cut to `title_bytes` (at a UTF-8
 * boundary; GW_STAT_digest_titles_truncated), each user keeps its latest
 * GW_ACTIVITY_TITLES titles, and an entry is charged its worst case (entry,
 * key, account id, GW_ACTIVITY_TITLES full titles) when created, so the
 * tracker never holds more than `max_bytes`. A new user that does not fit is
 * not tracked (gw_activity.dropped, GW_STAT_digest_users_untracked). Entries
 * leave at a take (any installation's): when every interval has taken their
 * activity, or when their user's last activity is older than
 * GW_ACTIVITY_STALE_SECONDS (8 days: longer than the longest interval, so an
 * interval that has not run since is one the installation does not run).
 * So the tracker holds users with activity not yet in a digest, instead of
 * everyone ever notified.
 * Ownership: the tracker owns its entries. Threads: any, but only under the
 * sequencer lock (sequencer.h): recording and taking must happen in intake
 * order, which is what the sequencer's turn gives, so the tracker has no lock
 * of its own (no nested locks).
 */
#ifndef GW_ACTIVITY_H
#define GW_ACTIVITY_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "strmap.h"

#define GW_ACTIVITY_INTERVALS 4

/* The Forge scheduled-trigger intervals, in this order: the gateway's one
 * list (intake accepts these names, the tracker counts per interval). */
extern const char *const gw_schedule_intervals[GW_ACTIVITY_INTERVALS];

/* The index of name in gw_schedule_intervals, or -1 (NULL too). */
int gw_schedule_interval_index(const char *name);
#define GW_ACTIVITY_TITLES 5
#define GW_ACTIVITY_STALE_SECONDS (8 * 86400)

struct gw_activity {
	struct gw_strmap users; /* "<len(inst)>:<inst><user>" -> struct activity_entry* */
	size_t max_bytes, bytes, title_bytes;
	uint64_t dropped;
};

int gw_activity_init(struct gw_activity *a, size_t max_bytes, size_t title_bytes);
/* Bytes an entry is charged (its worst case), for tests and docs. */
size_t gw_activity_entry_bytes(const struct gw_activity *a, size_t key_len, size_t user_len);
void gw_activity_destroy(struct gw_activity *a);

void gw_activity_record_locked(struct gw_activity *a, const char *inst, const char *user, const char *title);

/* Returns a new array of {accountId, count, titles} for users of inst with
 * activity since the last take of `interval`, and resets their counters for
 * it. Unknown interval: empty array. */
json_t *gw_activity_take_locked(struct gw_activity *a, const char *inst, const char *interval);
/* The same at a given time (now: for tests of the stale rule). */
json_t *gw_activity_take_at_locked(struct gw_activity *a, const char *inst, const char *interval, time_t now);

#endif
