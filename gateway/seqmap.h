/* seqmap.h - the per-(installation, user) `seq` counters, bounded in bytes.
 *
 * Every notification addressed to a user takes that user's next seq
 * (docs/protocol.md). One entry per user ever addressed would grow forever,
 * so the map holds at most max_bytes (entry, key and bookkeeping counted);
 * to make room for a new user, the entries notified least recently go first
 * (GW_STAT_seq_entries_evicted). For a user whose entry is kept, seq rises by
 * exactly one per notification. A user whose entry was evicted starts again
 * above `floor`, the highest seq any evicted entry had reached: so every
 * user's seq still only ever increases, but after eviction it jumps (a gap
 * that does not mean a lost notification; docs/protocol.md).
 *
 * Ownership: the map owns its entries. Threads: none of its own; the
 * sequencer lock guards it (pipeline.c).
 */
#ifndef GW_SEQMAP_H
#define GW_SEQMAP_H

#include <stddef.h>
#include <stdint.h>

#include "strmap.h"

struct gw_seq_node;

struct gw_seqmap {
	struct gw_strmap map; /* key -> struct gw_seq_node* */
	struct gw_seq_node *oldest, *newest; /* least / most recently used */
	size_t bytes, max_bytes;
	uint64_t floor; /* highest seq of any evicted entry */
	uint64_t evicted; /* entries evicted so far */
};

/* Bytes one entry with a key of key_len bytes is charged. */
size_t gw_seqmap_entry_bytes(size_t key_len);

int gw_seqmap_init(struct gw_seqmap *m, size_t max_bytes);
void gw_seqmap_destroy(struct gw_seqmap *m);

/* The next seq for key (creating the entry, evicting others if needed).
 * 0 when out of memory or when the key alone exceeds max_bytes: no seq, the
 * caller does not deliver. */
uint64_t gw_seqmap_next(struct gw_seqmap *m, const char *key, size_t len);
/* Like gw_seqmap_next, but a new entry starts above max(base, floor):
 * base is the user's last seq known elsewhere (the store). */
uint64_t gw_seqmap_next_from(struct gw_seqmap *m, const char *key, size_t len, uint64_t base);
/* Sets key's last seq to seq (creating the entry): cluster mode, after the
 * shared store said another node numbered this user (sequencer.h reseat).
 * 0, or -1 when out of memory or the key alone exceeds max_bytes. */
int gw_seqmap_set(struct gw_seqmap *m, const char *key, size_t len, uint64_t seq);
/* 1 when key has an entry. */
int gw_seqmap_has(struct gw_seqmap *m, const char *key, size_t len);

#endif
