/* seqmap.c - see seqmap.h. A hash map for lookup plus a doubly linked list in
 * order of last use, so both the update and the eviction are O(1). */
#include "seqmap.h"

#include <stdlib.h>

#include "stats.h"

struct gw_seq_node {
	struct gw_seq_node *prev, *next; /* towards oldest / newest */
	uint64_t seq;
	size_t key_len;
	struct gw_strmap_entry *entry; /* its map entry (the key lives there) */
};

size_t gw_seqmap_entry_bytes(size_t key_len)
{
	/* the map entry with its key copy, the node, and a bucket pointer */
	return sizeof(struct gw_strmap_entry) + key_len + 1 + sizeof(struct gw_seq_node) + sizeof(void *);
}

int gw_seqmap_init(struct gw_seqmap *m, size_t max_bytes)
{
	m->oldest = m->newest = NULL;
	m->bytes = 0;
	m->max_bytes = max_bytes;
	m->floor = 0;
	m->evicted = 0;
	return gw_strmap_init(&m->map, 1024);
}

void gw_seqmap_destroy(struct gw_seqmap *m)
{
	gw_strmap_free(&m->map, free);
	m->oldest = m->newest = NULL;
}

static void unlink_node(struct gw_seqmap *m, struct gw_seq_node *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		m->oldest = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		m->newest = n->prev;
	n->prev = n->next = NULL;
}

static void append_node(struct gw_seqmap *m, struct gw_seq_node *n)
{
	n->prev = m->newest;
	n->next = NULL;
	if (m->newest)
		m->newest->next = n;
	else
		m->oldest = n;
	m->newest = n;
}

static void evict_oldest(struct gw_seqmap *m)
{
	struct gw_seq_node *n = m->oldest;
	unlink_node(m, n);
	if (n->seq > m->floor)
		m->floor = n->seq;
	m->bytes -= gw_seqmap_entry_bytes(n->key_len);
	gw_strmap_remove(&m->map, n->entry->key, n->key_len);
	free(n);
	m->evicted++;
	gw_stat_inc(GW_STAT_seq_entries_evicted);
}

int gw_seqmap_has(struct gw_seqmap *m, const char *key, size_t len)
{
	return gw_strmap_get(&m->map, key, len) != NULL;
}

uint64_t gw_seqmap_next(struct gw_seqmap *m, const char *key, size_t len)
{
	return gw_seqmap_next_from(m, key, len, 0);
}

uint64_t gw_seqmap_next_from(struct gw_seqmap *m, const char *key, size_t len, uint64_t base)
{
	struct gw_seq_node *n = gw_strmap_get(&m->map, key, len);
	if (n) {
		unlink_node(m, n);
		append_node(m, n);
		return ++n->seq;
	}
	size_t cost = gw_seqmap_entry_bytes(len);
	if (cost > m->max_bytes)
		return 0;
	while (m->oldest && m->bytes + cost > m->max_bytes)
		evict_oldest(m);
	n = calloc(1, sizeof(*n));
	if (!n)
		return 0;
	int created = 0;
	struct gw_strmap_entry *e = gw_strmap_upsert(&m->map, key, len, &created);
	if (!e) {
		free(n);
		return 0;
	}
	e->value = n;
	n->entry = e;
	n->key_len = len;
	n->seq = (base > m->floor ? base : m->floor) + 1;
	m->bytes += cost;
	append_node(m, n);
	return n->seq;
}

int gw_seqmap_set(struct gw_seqmap *m, const char *key, size_t len, uint64_t seq)
{
	struct gw_seq_node *n = gw_strmap_get(&m->map, key, len);
	if (!n && !gw_seqmap_next_from(m, key, len, 0))
		return -1;
	n = gw_strmap_get(&m->map, key, len);
	if (!n)
		return -1;
	n->seq = seq;
	return 0;
}
