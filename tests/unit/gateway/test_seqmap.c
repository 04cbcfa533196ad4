/* Tests seqmap.c (issue 10 item 9): per-user seq counters bounded in bytes.
 * A kept user's seq rises by one per notification; the least recently
 * notified users are evicted to make room; an evicted user's seq restarts
 * above every evicted seq, so it never goes back. */
#include <stdio.h>
#include <string.h>

#include "../check.h"
#include "seqmap.h"
#include "stats.h"

static uint64_t next(struct gw_seqmap *m, const char *k)
{
	return gw_seqmap_next(m, k, strlen(k));
}

int main(void)
{
	struct gw_seqmap m;
	size_t one = gw_seqmap_entry_bytes(5); /* "user1" .. "user9" */
	uint64_t ev0 = gw_stat_get(GW_STAT_seq_entries_evicted);
	CHECK_INT_EQ(gw_seqmap_init(&m, 3 * one), 0);
	for (uint64_t i = 1; i <= 10; i++)
		CHECK_INT_EQ(next(&m, "user1"), i);
	CHECK_INT_EQ(next(&m, "user2"), 1);
	CHECK_INT_EQ(next(&m, "user3"), 1);
	CHECK_INT_EQ(m.bytes, 3 * one);
	/* user1 was notified least recently but is touched now: user2 goes */
	CHECK_INT_EQ(next(&m, "user1"), 11);
	CHECK_INT_EQ(next(&m, "user4"), 2); /* above the floor: user2's seq 1 */
	CHECK_INT_EQ(m.evicted, 1);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_seq_entries_evicted) - ev0, 1);
	CHECK(m.bytes <= m.max_bytes);
	/* kept users go on by one */
	CHECK_INT_EQ(next(&m, "user1"), 12);
	CHECK_INT_EQ(next(&m, "user3"), 2);
	/* user2 comes back: above the floor, so its seq never repeats */
	uint64_t s2 = next(&m, "user2"); /* evicts user4 (seq 2): floor 2 */
	CHECK_INT_EQ(s2, 3);
	CHECK_INT_EQ(next(&m, "user3"), 3);
	/* user1 is now the least recent: evicted with seq 12, the floor is 12 */
	CHECK_INT_EQ(next(&m, "user5"), 13);
	CHECK_INT_EQ(m.floor, 12);
	CHECK_INT_EQ(next(&m, "user1"), 13); /* back: 13 > 12, it never repeats a seq */
	CHECK_INT_EQ(m.floor, 12); /* (user2, seq 3, made room) */
	/* a key that alone exceeds the budget gets no seq */
	char huge[4096];
	memset(huge, 'k', sizeof(huge));
	CHECK_INT_EQ(gw_seqmap_next(&m, huge, sizeof(huge)), 0);
	/* many users: the byte bound holds, every returned seq > 0 */
	for (int i = 0; i < 100000; i++) {
		char k[32];
		int n = snprintf(k, sizeof(k), "u%d", i);
		CHECK(gw_seqmap_next(&m, k, (size_t)n) > 0);
		if (m.bytes > m.max_bytes)
			CHECK(!"over budget");
	}
	CHECK(m.map.count <= 3);
	gw_seqmap_destroy(&m);

	/* a cache in front of the store: a miss continues from the stored max,
	 * but never at or below the eviction floor (seqs in flight) */
	struct gw_seqmap cache;
	CHECK_INT_EQ(gw_seqmap_init(&cache, 3 * gw_seqmap_entry_bytes(5)), 0);
	CHECK_INT_EQ(gw_seqmap_has(&cache, "userA", 5), 0);
	CHECK_INT_EQ(gw_seqmap_next_from(&cache, "userA", 5, 41), 42);
	CHECK_INT_EQ(gw_seqmap_has(&cache, "userA", 5), 1);
	CHECK_INT_EQ(gw_seqmap_next_from(&cache, "userA", 5, 0), 43); /* a hit ignores base */
	CHECK_INT_EQ(gw_seqmap_next_from(&cache, "userB", 5, 0), 1);
	CHECK_INT_EQ(gw_seqmap_next_from(&cache, "userC", 5, 0), 1);
	CHECK_INT_EQ(gw_seqmap_next_from(&cache, "userD", 5, 0), 44); /* userA (43) evicted: floor 43 */
	CHECK_INT_EQ(gw_seqmap_next_from(&cache, "userE", 5, 100), 101);
	gw_seqmap_destroy(&cache);
	return CHECK_DONE();
}
