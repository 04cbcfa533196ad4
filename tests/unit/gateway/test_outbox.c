/* Tests outbox.c: FIFO order, take-all, and the wake callback firing only on
 * the empty -> non-empty transition. */
#include <stdlib.h>

#include "../check.h"
#include "outbox.h"
#include "stats.h"

/* Fails the next `fail_next` allocations (issue 10: a pass must still push
 * one batch per event when memory runs out). */
static int fail_next, calls;
static void *flaky_calloc(size_t n, size_t size)
{
	calls++;
	if (fail_next > 0) {
		fail_next--;
		return NULL;
	}
	return calloc(n, size);
}

static void test_batch_new(void)
{
	struct gw_outbox_item *spare = NULL, *b;
	uint64_t fb0 = gw_stat_get(GW_STAT_batch_alloc_fallbacks);
	gw_outbox_batch_calloc = flaky_calloc;
	/* normal: a batch, and the spare is filled */
	b = gw_outbox_batch_new(&spare);
	CHECK(b != NULL && spare != NULL);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_batch_alloc_fallbacks) - fb0, 0);
	gw_outbox_item_free(b);
	/* the allocation fails: the spare is handed out, counted */
	struct gw_outbox_item *was = spare;
	fail_next = 1;
	b = gw_outbox_batch_new(&spare);
	CHECK(b == was);
	CHECK(spare == NULL);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_batch_alloc_fallbacks) - fb0, 1);
	CHECK(b->kind == 0 && b->count == 0 && b->items == NULL && b->next == NULL);
	gw_outbox_item_free(b);
	/* fails with no spare: retried until it succeeds, never NULL */
	fail_next = 4;
	calls = 0;
	b = gw_outbox_batch_new(&spare);
	CHECK(b != NULL);
	CHECK_INT_EQ(calls, 5);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_batch_alloc_fallbacks) - fb0, 2);
	gw_outbox_item_free(b);
	/* the next good allocation refills the spare */
	b = gw_outbox_batch_new(&spare);
	CHECK(b != NULL && spare != NULL);
	gw_outbox_item_free(b);
	free(spare);
	gw_outbox_batch_calloc = calloc;
}

static int wakes;
static void on_wake(void *ud)
{
	(void)ud;
	wakes++;
}

static struct gw_outbox_item *item(uint64_t n)
{
	struct gw_outbox_item *it = calloc(1, sizeof(*it));
	it->kind = GW_OUT_BATCH;
	it->intake_no = n;
	return it;
}

int main(void)
{
	struct gw_outbox o;
	CHECK_INT_EQ(gw_outbox_init(&o, on_wake, NULL), 0);
	CHECK(gw_outbox_is_empty(&o));
	gw_outbox_push_take(&o, item(1));
	gw_outbox_push_take(&o, item(2));
	gw_outbox_push_take(&o, item(3));
	CHECK_INT_EQ(wakes, 1);
	struct gw_outbox_item *list = gw_outbox_take_all(&o);
	CHECK(gw_outbox_is_empty(&o));
	int n = 0;
	for (struct gw_outbox_item *it = list; it; n++) {
		CHECK_INT_EQ(it->intake_no, (uint64_t)n + 1);
		struct gw_outbox_item *next = it->next;
		gw_outbox_item_free(it);
		it = next;
	}
	CHECK_INT_EQ(n, 3);
	gw_outbox_push_take(&o, item(4));
	CHECK_INT_EQ(wakes, 2);

	/* A batch owns its deliveries and their message references. */
	struct gw_outbox_item *b = item(5);
	b->count = 1;
	b->items = calloc(1, sizeof(*b->items));
	b->items[0].user = malloc(4);
	b->items[0].ctx = malloc(4);
	struct gw_msg *m = gw_msg_new(10);
	b->items[0].msg = gw_msg_ref(m);
	gw_outbox_push_take(&o, b);
	gw_outbox_destroy(&o); /* frees items 4 and 5 */
	CHECK_INT_EQ(atomic_load(&m->refs), 1);
	gw_msg_unref(m);
	test_batch_new();

	/* Held pushes reach the outbox together, with one wake-up, in order. */
	CHECK_INT_EQ(gw_outbox_init(&o, on_wake, NULL), 0);
	wakes = 0;
	gw_outbox_hold(&o);
	gw_outbox_push_take(&o, item(6));
	gw_outbox_push_take(&o, item(7));
	CHECK(gw_outbox_is_empty(&o));
	CHECK_INT_EQ(wakes, 0);
	gw_outbox_flush(&o);
	CHECK_INT_EQ(wakes, 1);
	gw_outbox_push_take(&o, item(8)); /* no longer held */
	list = gw_outbox_take_all(&o);
	n = 0;
	for (struct gw_outbox_item *it = list; it; n++) {
		CHECK_INT_EQ(it->intake_no, (uint64_t)n + 6);
		struct gw_outbox_item *next = it->next;
		gw_outbox_item_free(it);
		it = next;
	}
	CHECK_INT_EQ(n, 3);
	gw_outbox_flush(&o); /* nothing held: nothing happens */
	CHECK_INT_EQ(wakes, 1);
	gw_outbox_destroy(&o);
	return CHECK_DONE();
}
