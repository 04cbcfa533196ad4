/* dedup.c - see dedup.h. A ring of slots in insertion order plus a hash
 * index; the ring makes eviction of the oldest O(1). */
#include "dedup.h"

#include <stdlib.h>
#include <string.h>

/* Index values: slot number + 1, with the top bit set while PENDING. */
#define PENDING_BIT ((uintptr_t)1 << (sizeof(uintptr_t) * 8 - 1))

int gw_dedup_init(struct gw_dedup *d, size_t capacity, long ttl)
{
	memset(d, 0, sizeof(*d));
	d->capacity = capacity ? capacity : 1;
	d->ttl = ttl;
	d->ring = calloc(d->capacity, sizeof(*d->ring));
	if (!d->ring || gw_strmap_init(&d->index, d->capacity < 1024 ? d->capacity : 1024)) {
		free(d->ring);
		return -1;
	}
	return pthread_mutex_init(&d->lock, NULL) ? -1 : 0;
}

void gw_dedup_destroy(struct gw_dedup *d)
{
	gw_strmap_free(&d->index, NULL);
	free(d->ring);
	pthread_mutex_destroy(&d->lock);
}

static void drop_oldest_locked(struct gw_dedup *d, time_t now)
{
	struct gw_dedup_slot *s = &d->ring[d->head];
	if (s->used) {
		if (s->expires > now)
			d->evicted_early++;
		gw_strmap_remove(&d->index, (const char *)s->key, GW_DEDUP_KEY_LEN);
		s->used = 0;
	}
	d->head = (d->head + 1) % d->capacity;
	d->count--;
}

enum gw_dedup_result gw_dedup_reserve(struct gw_dedup *d, const unsigned char key[GW_DEDUP_KEY_LEN],
				      time_t now)
{
	enum gw_dedup_result r = GW_DEDUP_NEW;
	pthread_mutex_lock(&d->lock); /* ---- dedup lock { */
	/* Expired entries leave from the old end first. */
	while (d->count && (!d->ring[d->head].used || d->ring[d->head].expires <= now))
		drop_oldest_locked(d, now);
	uintptr_t v = (uintptr_t)gw_strmap_get(&d->index, (const char *)key, GW_DEDUP_KEY_LEN);
	if (v) {
		r = (v & PENDING_BIT) ? GW_DEDUP_IN_FLIGHT : GW_DEDUP_DUPLICATE;
		goto out;
	}
	if (d->count == d->capacity)
		drop_oldest_locked(d, now);
	size_t slot = (d->head + d->count) % d->capacity;
	struct gw_strmap_entry *e = gw_strmap_upsert(&d->index, (const char *)key, GW_DEDUP_KEY_LEN, NULL);
	if (!e)
		goto out; /* out of memory: behave as if new, unguarded */
	memcpy(d->ring[slot].key, key, GW_DEDUP_KEY_LEN);
	d->ring[slot].expires = now + d->ttl;
	d->ring[slot].used = 1;
	e->value = (void *)((slot + 1) | PENDING_BIT);
	d->count++;
out:
	pthread_mutex_unlock(&d->lock); /* } dedup lock ---- */
	return r;
}

void gw_dedup_commit(struct gw_dedup *d, const unsigned char key[GW_DEDUP_KEY_LEN])
{
	pthread_mutex_lock(&d->lock);
	struct gw_strmap_entry *e = gw_strmap_upsert(&d->index, (const char *)key, GW_DEDUP_KEY_LEN, NULL);
	if (e && e->value)
		e->value = (void *)((uintptr_t)e->value & ~PENDING_BIT);
	else if (e)
		gw_strmap_remove(&d->index, (const char *)key, GW_DEDUP_KEY_LEN);
	pthread_mutex_unlock(&d->lock);
}

void gw_dedup_release(struct gw_dedup *d, const unsigned char key[GW_DEDUP_KEY_LEN])
{
	pthread_mutex_lock(&d->lock);
	uintptr_t v = (uintptr_t)gw_strmap_remove(&d->index, (const char *)key, GW_DEDUP_KEY_LEN);
	if (v) {
		size_t slot = (v & ~PENDING_BIT) - 1;
		d->ring[slot].used = 0;
		/* Usually the newest slot: give it back at once. Otherwise it stays
		 * a hole that leaves when it reaches the old end. */
		if (d->count && slot == (d->head + d->count - 1) % d->capacity)
			d->count--;
	}
	pthread_mutex_unlock(&d->lock);
}

size_t gw_dedup_count(struct gw_dedup *d)
{
	pthread_mutex_lock(&d->lock);
	size_t n = d->index.count;
	pthread_mutex_unlock(&d->lock);
	return n;
}
