/* Tests strmap.c: insert, lookup, growth, removal, keys with NULs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "../check.h"
#include "strmap.h"

int main(void)
{
	struct gw_strmap m;
	CHECK_INT_EQ(gw_strmap_init(&m, 4), 0);
	char key[32];
	for (int i = 0; i < 10000; i++) {
		int n = snprintf(key, sizeof(key), "user-%d", i);
		int created = -1;
		struct gw_strmap_entry *e = gw_strmap_upsert(&m, key, (size_t)n, &created);
		CHECK(e != NULL);
		CHECK_INT_EQ(created, 1);
		e->value = (void *)(uintptr_t)(i + 1);
	}
	CHECK_INT_EQ(m.count, 10000);
	CHECK(m.nbuckets >= 8192);
	for (int i = 0; i < 10000; i += 7) {
		int n = snprintf(key, sizeof(key), "user-%d", i);
		CHECK_INT_EQ((uintptr_t)gw_strmap_get(&m, key, (size_t)n), (uintptr_t)(i + 1));
	}
	int created = -1;
	gw_strmap_upsert(&m, "user-5", 6, &created);
	CHECK_INT_EQ(created, 0);
	CHECK_INT_EQ((uintptr_t)gw_strmap_remove(&m, "user-5", 6), 6);
	CHECK(gw_strmap_get(&m, "user-5", 6) == NULL);
	CHECK(gw_strmap_remove(&m, "user-5", 6) == NULL);
	CHECK_INT_EQ(m.count, 9999);
	/* Keys are byte strings: "a\0b" and "a\0c" differ. */
	gw_strmap_upsert(&m, "a\0b", 3, NULL)->value = (void *)1;
	gw_strmap_upsert(&m, "a\0c", 3, NULL)->value = (void *)2;
	CHECK_INT_EQ((uintptr_t)gw_strmap_get(&m, "a\0b", 3), 1);
	CHECK_INT_EQ((uintptr_t)gw_strmap_get(&m, "a\0c", 3), 2);
	CHECK(gw_strmap_get(&m, "a", 1) == NULL);
	gw_strmap_free(&m, NULL);
	return CHECK_DONE();
}
