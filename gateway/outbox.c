/* outbox.c - see outbox.h. */
#include "outbox.h"
#include "store_jobs.h"

#include <stdlib.h>
#include <time.h>

#include "stats.h"

void *(*gw_outbox_batch_calloc)(size_t n, size_t size) = calloc;

struct gw_outbox_item *gw_outbox_batch_new(struct gw_outbox_item **spare)
{
	struct gw_outbox_item *it = gw_outbox_batch_calloc(1, sizeof(*it));
	if (it) {
		if (!*spare)
			*spare = gw_outbox_batch_calloc(1, sizeof(**spare));
		return it;
	}
	gw_stat_inc(GW_STAT_batch_alloc_fallbacks);
	if (*spare) {
		it = *spare;
		*spare = NULL;
		return it;
	}
	for (long ms = 1;; ms = ms < 100 ? ms * 2 : 100) {
		struct timespec ts = {0, (ms > 100 ? 100 : ms) * 1000000L};
		nanosleep(&ts, NULL);
		if ((it = gw_outbox_batch_calloc(1, sizeof(*it))))
			return it;
	}
}

void gw_outbox_item_free(struct gw_outbox_item *item)
{
	if (!item)
		return;
	free(item->body);
	json_decref(item->claims);
	for (size_t i = 0; i < item->count; i++) {
		free(item->items[i].installation);
		free(item->items[i].user);
		free(item->items[i].ctx);
		free(item->items[i].claims);
		gw_msg_unref(item->items[i].msg);
	}
	free(item->items);
	gw_store_req_free(item->store_req);
	free(item);
}

int gw_outbox_init(struct gw_outbox *o, gw_outbox_wake_fn wake, void *wake_ud)
{
	o->head = o->tail = NULL;
	o->wake = wake;
	o->wake_ud = wake_ud;
	return pthread_mutex_init(&o->lock, NULL) ? -1 : 0;
}

void gw_outbox_destroy(struct gw_outbox *o)
{
	struct gw_outbox_item *it = o->head;
	while (it) {
		struct gw_outbox_item *next = it->next;
		gw_outbox_item_free(it);
		it = next;
	}
	o->head = o->tail = NULL;
	pthread_mutex_destroy(&o->lock);
}

/* This thread's held items (gw_outbox_hold), for tl_held only. */
static _Thread_local struct gw_outbox *tl_held;
static _Thread_local struct gw_outbox_item *tl_head, *tl_tail;

/* Appends the list first..last; wakes the service thread if it was empty. */
static void push_list(struct gw_outbox *o, struct gw_outbox_item *first, struct gw_outbox_item *last)
{
	int was_empty;
	pthread_mutex_lock(&o->lock); /* ---- outbox lock { */
	was_empty = o->head == NULL;
	if (o->tail)
		o->tail->next = first;
	else
		o->head = first;
	o->tail = last;
	pthread_mutex_unlock(&o->lock); /* } outbox lock ---- */
	if (was_empty && o->wake)
		o->wake(o->wake_ud);
}

void gw_outbox_push_take(struct gw_outbox *o, struct gw_outbox_item *item)
{
	item->next = NULL;
	if (tl_held == o) {
		if (tl_tail)
			tl_tail->next = item;
		else
			tl_head = item;
		tl_tail = item;
		return;
	}
	push_list(o, item, item);
}

void gw_outbox_hold(struct gw_outbox *o)
{
	if (tl_held && tl_held != o)
		gw_outbox_flush(tl_held);
	tl_held = o;
}

void gw_outbox_flush(struct gw_outbox *o)
{
	if (tl_held != o)
		return;
	tl_held = NULL;
	if (tl_head)
		push_list(o, tl_head, tl_tail);
	tl_head = tl_tail = NULL;
}

struct gw_outbox_item *gw_outbox_take_all(struct gw_outbox *o)
{
	pthread_mutex_lock(&o->lock); /* ---- outbox lock { */
	struct gw_outbox_item *list = o->head;
	o->head = o->tail = NULL;
	pthread_mutex_unlock(&o->lock); /* } outbox lock ---- */
	return list;
}

int gw_outbox_is_empty(struct gw_outbox *o)
{
	pthread_mutex_lock(&o->lock);
	int empty = o->head == NULL;
	pthread_mutex_unlock(&o->lock);
	return empty;
}
