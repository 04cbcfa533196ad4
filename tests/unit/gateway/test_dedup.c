/* Tests dedup.c: reserve/commit/release, duplicates, in-flight retries,
 * expiry after ttl, capacity eviction with the early-eviction counter. */
#include <string.h>

#include "../check.h"
#include "dedup.h"

static void key_of(int n, unsigned char k[GW_DEDUP_KEY_LEN])
{
	memset(k, 0, GW_DEDUP_KEY_LEN);
	memcpy(k, &n, sizeof(n));
}

int main(void)
{
	struct gw_dedup d;
	unsigned char k1[GW_DEDUP_KEY_LEN], k2[GW_DEDUP_KEY_LEN], k3[GW_DEDUP_KEY_LEN];
	key_of(1, k1);
	key_of(2, k2);
	key_of(3, k3);
	CHECK_INT_EQ(gw_dedup_init(&d, 2, 600), 0);
	time_t t = 1000;
	CHECK_INT_EQ(gw_dedup_reserve(&d, k1, t), GW_DEDUP_NEW);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k1, t), GW_DEDUP_IN_FLIGHT); /* not committed yet */
	gw_dedup_commit(&d, k1);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k1, t + 599), GW_DEDUP_DUPLICATE);
	/* a released reservation (the event was not queued) is forgotten */
	CHECK_INT_EQ(gw_dedup_reserve(&d, k2, t), GW_DEDUP_NEW);
	gw_dedup_release(&d, k2);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k2, t), GW_DEDUP_NEW);
	gw_dedup_commit(&d, k2);
	CHECK_INT_EQ(gw_dedup_count(&d), 2);
	/* full: the oldest (k1, still within its ttl) goes and is counted */
	CHECK_INT_EQ(gw_dedup_reserve(&d, k3, t + 1), GW_DEDUP_NEW);
	gw_dedup_commit(&d, k3);
	CHECK_INT_EQ(d.evicted_early, 1);
	CHECK_INT_EQ(gw_dedup_reserve(&d, k1, t + 2), GW_DEDUP_NEW); /* evicts k2 */
	CHECK_INT_EQ(d.evicted_early, 2);
	gw_dedup_release(&d, k1);
	CHECK_INT_EQ(gw_dedup_count(&d), 1);
	/* after the ttl an event is new again, and its expiry is not "early" */
	CHECK_INT_EQ(gw_dedup_reserve(&d, k3, t + 1 + 600), GW_DEDUP_NEW);
	CHECK_INT_EQ(d.evicted_early, 2);
	gw_dedup_destroy(&d);
	return CHECK_DONE();
}
