/* dedup.c - see dedup.h. Slots in one array, linked twice: all keys in
 * insertion order (expiry leaves from the old end in O(1)), and each
 * installation's keys in insertion order (its own oldest goes in O(1)). A
 * hash index finds a key's slot. Only a full table costs more: the largest
 * installation is found by a scan of the installation records. */
#include "dedup.h"

#include <stdlib.h>
#include <string.h>

#include "stats.h"

/* Index values: slot number + 1, with the top bit set while PENDING. */
#define PENDING_BIT ((uintptr_t)1 << (sizeof(uintptr_t) * 8 - 1))
#define NONE GW_DEDUP_NONE

struct gw_dedup_inst {
	size_t count;
	size_t oldest, newest; /* slots */
	size_t name_len;
	char name[];
};

int gw_dedup_init(struct gw_dedup *d, size_t capacity, size_t per_installation, long ttl)
{
	memset(d, 0, sizeof(*d));
	d->capacity = capacity ? capacity : 1;
	d->per_installation =
		per_installation && per_installation < d->capacity ? per_installation : d->capacity;
	d->ttl = ttl;
	d->oldest = d->newest = NONE;
	d->slots = calloc(d->capacity, sizeof(*d->slots));
	if (!d->slots)
		return -1;
	for (size_t i = 0; i < d->capacity; i++)
		d->slots[i].next = i + 1 < d->capacity ? i + 1 : NONE;
	d->free_head = 0;
	if (gw_strmap_init(&d->index, d->capacity < 1024 ? d->capacity : 1024) ||
	    gw_strmap_init(&d->insts, 64)) {
		gw_strmap_free(&d->index, NULL);
		free(d->slots);
		return -1;
	}
	return pthread_mutex_init(&d->lock, NULL) ? -1 : 0;
}

void gw_dedup_destroy(struct gw_dedup *d)
{
	gw_strmap_free(&d->index, NULL);
	gw_strmap_free(&d->insts, free);
	free(d->slots);
	pthread_mutex_destroy(&d->lock);
}

/* Unlinks slot s from both orders, drops its index entry and its
 * installation record when that becomes empty, and frees the slot. */
static void drop_slot_locked(struct gw_dedup *d, size_t s, time_t now, uint64_t *reason)
{
	struct gw_dedup_slot *sl = &d->slots[s];
	struct gw_dedup_inst *in = sl->inst;
	if (sl->expires > now && reason) {
		d->evicted_early++;
		(*reason)++;
		gw_stat_inc(reason == &d->evicted_own_share ? GW_STAT_redelivery_evicted_own_share
							    : GW_STAT_redelivery_evicted_fair_share);
	}
	gw_strmap_remove(&d->index, (const char *)sl->key, GW_DEDUP_KEY_LEN);
	if (sl->prev != NONE)
		d->slots[sl->prev].next = sl->next;
	else
		d->oldest = sl->next;
	if (sl->next != NONE)
		d->slots[sl->next].prev = sl->prev;
	else
		d->newest = sl->prev;
	if (sl->iprev != NONE)
		d->slots[sl->iprev].inext = sl->inext;
	else
		in->oldest = sl->inext;
	if (sl->inext != NONE)
		d->slots[sl->inext].iprev = sl->iprev;
	else
		in->newest = sl->iprev;
	if (--in->count == 0)
		free(gw_strmap_remove(&d->insts, in->name, in->name_len));
	d->count--;
	sl->inst = NULL;
	sl->next = d->free_head;
	d->free_head = s;
}

/* The installation holding the most keys (pinned: its count is one high). */
static struct gw_dedup_inst *largest_locked(struct gw_dedup *d, struct gw_dedup_inst *pinned)
{
	struct gw_dedup_inst *best = NULL;
	size_t best_n = 0;
	for (size_t b = 0; b < d->insts.nbuckets; b++)
		for (struct gw_strmap_entry *e = d->insts.buckets[b]; e; e = e->next) {
			struct gw_dedup_inst *in = e->value;
			size_t n = in ? in->count - (in == pinned) : 0;
			if (in && n > best_n) {
				best = in;
				best_n = n;
			}
		}
	return best;
}

enum gw_dedup_result gw_dedup_reserve(struct gw_dedup *d, const unsigned char key[GW_DEDUP_KEY_LEN],
				      const char *inst, time_t now)
{
	enum gw_dedup_result r = GW_DEDUP_NEW;
	size_t inst_len = strlen(inst);
	pthread_mutex_lock(&d->lock); /* ---- dedup lock { */
	/* Expired entries leave from the old end first. */
	while (d->oldest != NONE && d->slots[d->oldest].expires <= now)
		drop_slot_locked(d, d->oldest, now, NULL);
	uintptr_t v = (uintptr_t)gw_strmap_get(&d->index, (const char *)key, GW_DEDUP_KEY_LEN);
	if (v) {
		r = (v & PENDING_BIT) ? GW_DEDUP_IN_FLIGHT : GW_DEDUP_DUPLICATE;
		goto out;
	}
	int created = 0;
	struct gw_strmap_entry *ie = gw_strmap_upsert(&d->insts, inst, inst_len, &created);
	if (!ie)
		goto out; /* out of memory: behave as if new, unguarded */
	struct gw_dedup_inst *in = ie->value;
	if (!in) {
		in = malloc(sizeof(*in) + inst_len + 1);
		if (!in) {
			gw_strmap_remove(&d->insts, inst, inst_len);
			goto out;
		}
		in->count = 0;
		in->oldest = in->newest = NONE;
		in->name_len = inst_len;
		memcpy(in->name, inst, inst_len + 1);
		ie->value = in;
	}
	/* Pinned (count + 1) while keys are dropped, so its record survives
	 * losing its last key; the pin becomes the new key's count. */
	in->count++;
	/* Its own share first; then, if the table is full, the installation
	 * with the most keys gives up its oldest (possibly this one). */
	if (in->count - 1 >= d->per_installation && in->oldest != NONE)
		drop_slot_locked(d, in->oldest, now, &d->evicted_own_share);
	if (d->count == d->capacity) {
		struct gw_dedup_inst *big = largest_locked(d, in);
		if (big && big->oldest != NONE)
			drop_slot_locked(d, big->oldest, now, &d->evicted_fair_share);
	}
	struct gw_strmap_entry *e = gw_strmap_upsert(&d->index, (const char *)key, GW_DEDUP_KEY_LEN, NULL);
	if (!e || d->free_head == NONE) {
		if (e)
			gw_strmap_remove(&d->index, (const char *)key, GW_DEDUP_KEY_LEN);
		if (--in->count == 0)
			free(gw_strmap_remove(&d->insts, inst, inst_len));
		goto out; /* out of memory: behave as if new, unguarded */
	}
	size_t s = d->free_head;
	struct gw_dedup_slot *sl = &d->slots[s];
	d->free_head = sl->next;
	memcpy(sl->key, key, GW_DEDUP_KEY_LEN);
	sl->expires = now + d->ttl;
	sl->inst = in;
	sl->prev = d->newest;
	sl->next = NONE;
	if (d->newest != NONE)
		d->slots[d->newest].next = s;
	else
		d->oldest = s;
	d->newest = s;
	sl->iprev = in->newest;
	sl->inext = NONE;
	if (in->newest != NONE)
		d->slots[in->newest].inext = s;
	else
		in->oldest = s;
	in->newest = s;
	d->count++;
	e->value = (void *)((s + 1) | PENDING_BIT);
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
	else if (e) /* evicted meanwhile: stays forgotten */
		gw_strmap_remove(&d->index, (const char *)key, GW_DEDUP_KEY_LEN);
	pthread_mutex_unlock(&d->lock);
}

void gw_dedup_release(struct gw_dedup *d, const unsigned char key[GW_DEDUP_KEY_LEN])
{
	pthread_mutex_lock(&d->lock);
	uintptr_t v = (uintptr_t)gw_strmap_get(&d->index, (const char *)key, GW_DEDUP_KEY_LEN);
	if (v)
		drop_slot_locked(d, (v & ~PENDING_BIT) - 1, 0, NULL);
	pthread_mutex_unlock(&d->lock);
}

size_t gw_dedup_count(struct gw_dedup *d)
{
	pthread_mutex_lock(&d->lock);
	size_t n = d->count;
	pthread_mutex_unlock(&d->lock);
	return n;
}

size_t gw_dedup_count_installation(struct gw_dedup *d, const char *inst)
{
	pthread_mutex_lock(&d->lock);
	struct gw_dedup_inst *in = gw_strmap_get(&d->insts, inst, strlen(inst));
	size_t n = in ? in->count : 0;
	pthread_mutex_unlock(&d->lock);
	return n;
}
