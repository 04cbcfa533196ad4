/* Tests outbox.c: FIFO order, take-all, and the wake callback firing only on
 * the empty -> non-empty transition. */
#include <stdlib.h>

#include "../check.h"
#include "outbox.h"

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
	return CHECK_DONE();
}
