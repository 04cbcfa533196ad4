/* Tests dedup.c: reserve/commit/release, duplicates, in-flight retries,
 * expiry after ttl, capacity eviction with the early-eviction counter, and
 * the per-installation fair share (issue 10): one installation's flood
 * cannot make the table forget another installation's keys. */
#include <stdio.h>
#include <string.h>

#include "../check.h"
#include "dedup.h"
#include "stats.h"

static void key_of(int n, unsigned char k[GW_DEDUP_KEY_LEN])
{
	memset(k, 0, GW_DEDUP_KEY_LEN);
	memcpy(k, &n, sizeof(n));
}

static void test_basics(void)
{
	struct gw_dedup d;
	unsigned char k1[GW_DEDUP_KEY_LEN], k2[GW_DEDUP_KEY_LEN], k3[GW_DEDUP_KEY_LEN];
	const char *I = "inst-a";
	key_of(1, k1);
	key_of(2, k2);
	key_of(3, k3);
	CHECK_INT_EQ(gw_dedup_init(&d, 2, 0, 600), 0);
	time_t t = 1000;
	CHECK_INT_EQ(gw_dedup_reserve(&d, k1, I, t), GW_DEDUP_NEW);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k1, I, t), GW_DEDUP_IN_FLIGHT); /* not committed yet */
	gw_dedup_commit(&d, k1);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k1, I, t + 599), GW_DEDUP_DUPLICATE);
	/* a released reservation (the event was not queued) is forgotten */
	CHECK_INT_EQ(gw_dedup_reserve(&d, k2, I, t), GW_DEDUP_NEW);
	gw_dedup_release(&d, k2);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k2, I, t), GW_DEDUP_NEW);
	gw_dedup_commit(&d, k2);
	CHECK_INT_EQ(gw_dedup_count(&d), 2);
	/* full: the oldest (k1, still within its ttl) goes and is counted */
	CHECK_INT_EQ(gw_dedup_reserve(&d, k3, I, t + 1), GW_DEDUP_NEW);
	gw_dedup_commit(&d, k3);
	CHECK_INT_EQ(d.evicted_early, 1);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k1, I, t + 2), GW_DEDUP_NEW); /* evicts k2 */
	CHECK_INT_EQ(d.evicted_early, 2);
	gw_dedup_release(&d, k1);
	CHECK_INT_EQ(gw_dedup_count(&d), 1);
	/* after the ttl an event is new again, and its expiry is not "early" */
	CHECK_INT_EQ(gw_dedup_reserve(&d, k3, I, t + 1 + 600), GW_DEDUP_NEW);
	CHECK_INT_EQ(d.evicted_early, 2);
	/* capacity 1 keeps working (the only key gives way) */
	gw_dedup_destroy(&d);
	CHECK_INT_EQ(gw_dedup_init(&d, 1, 0, 600), 0);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k1, I, t), GW_DEDUP_NEW);
	gw_dedup_commit(&d, k1);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k2, I, t), GW_DEDUP_NEW);
	gw_dedup_commit(&d, k2);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k2, I, t), GW_DEDUP_DUPLICATE);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k1, "other", t), GW_DEDUP_NEW);
	CHECK_INT_EQ(gw_dedup_count(&d), 1);
	gw_dedup_destroy(&d);
}

/* A quiet installation's keys survive a noisy one filling the table. */
static void test_fair_share(void)
{
	struct gw_dedup d;
	unsigned char k[GW_DEDUP_KEY_LEN];
	time_t t = 5000;
	uint64_t fair0 = gw_stat_get(GW_STAT_redelivery_evicted_fair_share);
	uint64_t own0 = gw_stat_get(GW_STAT_redelivery_evicted_own_share);
	/* capacity 100, no per-installation bound: only the fair eviction */
	CHECK_INT_EQ(gw_dedup_init(&d, 100, 0, 600), 0);
	for (int i = 0; i < 10; i++) { /* quiet: 10 keys */
		key_of(i, k);
		CHECK_INT_EQ(gw_dedup_reserve(&d, k, "quiet", t), GW_DEDUP_NEW);
		gw_dedup_commit(&d, k);
	}
	for (int i = 1000; i < 11000; i++) { /* noisy: 10,000 keys, newer */
		key_of(i, k);
		CHECK_INT_EQ(gw_dedup_reserve(&d, k, "noisy", t + 1), GW_DEDUP_NEW);
		gw_dedup_commit(&d, k);
	}
	CHECK_INT_EQ(gw_dedup_count(&d), 100);
	CHECK_INT_EQ(gw_dedup_count_installation(&d, "quiet"), 10);
	CHECK_INT_EQ(gw_dedup_count_installation(&d, "noisy"), 90);
	for (int i = 0; i < 10; i++) { /* every quiet key is still known */
		key_of(i, k);
		CHECK_INT_EQ(gw_dedup_reserve(&d, k, "quiet", t + 2), GW_DEDUP_DUPLICATE);
	}
	/* the noisy one lost its own oldest, not the quiet one's */
	key_of(1000, k);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k, "noisy", t + 2), GW_DEDUP_NEW);
	gw_dedup_release(&d, k);
	key_of(10999, k);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k, "noisy", t + 2), GW_DEDUP_DUPLICATE);
	CHECK_INT_EQ(d.evicted_fair_share, 10000 - 90 + 1); /* + the re-reserve of 1000 */
	CHECK_INT_EQ(gw_stat_get(GW_STAT_redelivery_evicted_fair_share) - fair0, 10000 - 90 + 1);
	/* Two equal installations split the table; a third newcomer takes from
	 * the largest, so shares converge to capacity / installations. */
	for (int i = 20000; i < 20200; i++) {
		key_of(i, k);
		CHECK_INT_EQ(gw_dedup_reserve(&d, k, "third", t + 3), GW_DEDUP_NEW);
		gw_dedup_commit(&d, k);
	}
	size_t q = gw_dedup_count_installation(&d, "quiet"), n = gw_dedup_count_installation(&d, "noisy"),
	       th = gw_dedup_count_installation(&d, "third");
	CHECK_INT_EQ(q + n + th, 100);
	CHECK_INT_EQ(q, 10); /* below its share all along: untouched */
	CHECK(n >= 44 && n <= 46 && th >= 44 && th <= 46);
	gw_dedup_destroy(&d);

	/* per_installation bound: an installation at it loses its own oldest
	 * even while the table has room. */
	CHECK_INT_EQ(gw_dedup_init(&d, 1000, 20, 600), 0);
	for (int i = 0; i < 50; i++) {
		key_of(i, k);
		CHECK_INT_EQ(gw_dedup_reserve(&d, k, "capped", t), GW_DEDUP_NEW);
		gw_dedup_commit(&d, k);
	}
	CHECK_INT_EQ(gw_dedup_count_installation(&d, "capped"), 20);
	CHECK_INT_EQ(d.evicted_own_share, 30);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_redelivery_evicted_own_share) - own0, 30);
	key_of(49, k);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k, "capped", t), GW_DEDUP_DUPLICATE);
	key_of(29, k);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k, "capped", t), GW_DEDUP_NEW);
	/* a pending reservation evicted before commit stays forgotten */
	for (int i = 100; i < 125; i++) {
		unsigned char k2[GW_DEDUP_KEY_LEN];
		key_of(i, k2);
		gw_dedup_reserve(&d, k2, "capped", t);
		gw_dedup_commit(&d, k2);
	}
	gw_dedup_commit(&d, k);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k, "capped", t), GW_DEDUP_NEW);
	/* expiry frees installation records */
	CHECK_INT_EQ(gw_dedup_reserve(&d, k, "late", t + 601), GW_DEDUP_NEW);
	CHECK_INT_EQ(gw_dedup_count(&d), 1);
	CHECK_INT_EQ(d.insts.count, 1);
	gw_dedup_destroy(&d);
}

int main(void)
{
	test_basics();
	test_fair_share();
	return CHECK_DONE();
}
