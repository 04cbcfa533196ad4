/* dedup.h - the redelivery guard: remembers events the gateway accepted, so
 * that Forge's retries of them (same event, new retryContext) are answered
 * 202 without a second notification.
 *
 * A key is a 32-byte digest of (installation, event without retryContext).
 * Entries live ttl seconds (at least Forge's 4 retries x 60 s, default 15
 * minutes) in a table bounded to `capacity`; when full, the oldest entry goes
 * first and, if it was still within its ttl, gw_dedup_evicted_early counts it.
 *
 * A key is first reserved (PENDING) while its event is being queued, then
 * committed (ACCEPTED) or released. A retry that meets a PENDING key is told
 * to come back (503): answering 202 then could lose the event if the first
 * attempt's queueing failed.
 *
 * Ownership: the table owns its keys. Threads: any (one mutex).
 */
#ifndef GW_DEDUP_H
#define GW_DEDUP_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "strmap.h"

#define GW_DEDUP_KEY_LEN 32

enum gw_dedup_result { GW_DEDUP_NEW, GW_DEDUP_DUPLICATE, GW_DEDUP_IN_FLIGHT };

struct gw_dedup_slot {
	unsigned char key[GW_DEDUP_KEY_LEN];
	time_t expires;
	int used;
};

struct gw_dedup {
	pthread_mutex_t lock;
	struct gw_strmap index; /* key -> slot index + 1 */
	struct gw_dedup_slot *ring;
	size_t capacity, head, count;
	long ttl;
	uint64_t evicted_early;
};

int gw_dedup_init(struct gw_dedup *d, size_t capacity, long ttl);
void gw_dedup_destroy(struct gw_dedup *d);

/* Reserves key unless it is known. Returns GW_DEDUP_NEW (reserved: call
 * commit or release), GW_DEDUP_DUPLICATE (accepted before) or
 * GW_DEDUP_IN_FLIGHT (another attempt is being queued right now). */
enum gw_dedup_result gw_dedup_reserve(struct gw_dedup *d, const unsigned char key[GW_DEDUP_KEY_LEN],
				      time_t now);
void gw_dedup_commit(struct gw_dedup *d, const unsigned char key[GW_DEDUP_KEY_LEN]);
void gw_dedup_release(struct gw_dedup *d, const unsigned char key[GW_DEDUP_KEY_LEN]);
size_t gw_dedup_count(struct gw_dedup *d);

#endif
