/* dedup.h - the redelivery guard: remembers events the gateway accepted, so
 * that Forge's retries of them (same event, new retryContext) are answered
 * 202 without a second notification.
 *
 * A key is a 32-byte digest of (installation, event without retryContext).
 * Entries live ttl seconds (at least Forge's 4 retries x 60 s, default 15
 * minutes) in a table bounded to `capacity` keys, with a fair share for each
 * installation, so that one installation's traffic cannot make the gateway
 * forget another's events:
 *  - an installation holds at most `per_installation` keys: at that bound its
 *    own oldest key goes (gw_dedup.evicted_own_share);
 *  - when the whole table is full, the oldest key of the installation that
 *    holds the most keys goes (gw_dedup.evicted_fair_share): an installation
 *    below capacity / (installations) never loses a key to another one.
 * A key evicted while still within its ttl is also counted in
 * gw_dedup.evicted_early (the total of both, as before).
 *
 * A key is first reserved (PENDING) while its event is being queued, then
 * committed (ACCEPTED) or released. A retry that meets a PENDING key is told
 * to come back (503): answering 202 then could lose the event if the first
 * attempt's queueing failed.
 *
 * Memory: capacity slots of 80 bytes, allocated at init, an index entry of
 * ~80 bytes per key held, and one small record per installation that holds
 * keys (at most one per key).
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

struct gw_dedup_inst;

struct gw_dedup_slot {
	unsigned char key[GW_DEDUP_KEY_LEN];
	time_t expires;
	struct gw_dedup_inst *inst; /* NULL: the slot is free */
	size_t prev, next; /* all keys, oldest first (free slots: next only) */
	size_t iprev, inext; /* the installation's keys, oldest first */
};

struct gw_dedup {
	pthread_mutex_t lock;
	struct gw_strmap index; /* key -> slot index + 1 (| PENDING) */
	struct gw_strmap insts; /* installation -> struct gw_dedup_inst* */
	struct gw_dedup_slot *slots;
	size_t capacity, per_installation;
	size_t oldest, newest, free_head; /* slot numbers; GW_DEDUP_NONE: none */
	size_t count;
	long ttl;
	uint64_t evicted_early; /* evicted while still within the ttl (any reason) */
	uint64_t evicted_own_share; /* ... because their installation was at per_installation */
	uint64_t evicted_fair_share; /* ... because the table was full (largest installation) */
};

#define GW_DEDUP_NONE ((size_t)-1)

/* per_installation 0: no bound of its own (only the fair eviction when full). */
int gw_dedup_init(struct gw_dedup *d, size_t capacity, size_t per_installation, long ttl);
void gw_dedup_destroy(struct gw_dedup *d);

/* Reserves key for installation inst unless it is known. Returns
 * GW_DEDUP_NEW (reserved: call commit or release), GW_DEDUP_DUPLICATE
 * (accepted before) or GW_DEDUP_IN_FLIGHT (another attempt is being queued
 * right now). */
enum gw_dedup_result gw_dedup_reserve(struct gw_dedup *d, const unsigned char key[GW_DEDUP_KEY_LEN],
				      const char *inst, time_t now);
void gw_dedup_commit(struct gw_dedup *d, const unsigned char key[GW_DEDUP_KEY_LEN]);
void gw_dedup_release(struct gw_dedup *d, const unsigned char key[GW_DEDUP_KEY_LEN]);
size_t gw_dedup_count(struct gw_dedup *d);
/* Keys the installation holds now. */
size_t gw_dedup_count_installation(struct gw_dedup *d, const char *inst);

#endif
