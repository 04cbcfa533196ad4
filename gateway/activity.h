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
 * Bounded: at most `max_users` (installation, user) entries; beyond that new
 * users are not tracked and gw_activity.dropped counts them. Titles: the
 * latest GW_ACTIVITY_TITLES per user.
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

#include "strmap.h"

#define GW_ACTIVITY_INTERVALS 4

/* The Forge scheduled-trigger intervals, in this order: the gateway's one
 * list (intake accepts these names, the tracker counts per interval). */
extern const char *const gw_schedule_intervals[GW_ACTIVITY_INTERVALS];

/* The index of name in gw_schedule_intervals, or -1 (NULL too). */
int gw_schedule_interval_index(const char *name);
#define GW_ACTIVITY_TITLES 5

struct gw_activity {
	struct gw_strmap users; /* "<len(inst)>:<inst><user>" -> struct activity_entry* */
	size_t max_users;
	uint64_t dropped;
};

int gw_activity_init(struct gw_activity *a, size_t max_users);
void gw_activity_destroy(struct gw_activity *a);

void gw_activity_record_locked(struct gw_activity *a, const char *inst, const char *user, const char *title);

/* Returns a new array of {accountId, count, titles} for users of inst with
 * activity since the last take of `interval`, and resets their counters for
 * it. Unknown interval: empty array. */
json_t *gw_activity_take_locked(struct gw_activity *a, const char *inst, const char *interval);

#endif
