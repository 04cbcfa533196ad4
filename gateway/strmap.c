/* strmap.c - see strmap.h. FNV-1a with a final avalanche; good enough for
 * account ids and context strings, which are not attacker-chosen in bulk
 * (tokens are signed), and cheap. */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

uint64_t gw_hash_bytes(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

int gw_strmap_init(struct gw_strmap *m, size_t initial)
{
	size_t n = 16;
	while (n < initial)
		n <<= 1;
	m->buckets = calloc(n, sizeof(*m->buckets));
	m->nbuckets = m->buckets ? n : 0;
	m->count = 0;
	return m->buckets ? 0 : -1;
}

void gw_strmap_free(struct gw_strmap *m, void (*free_value)(void *))
{
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct gw_strmap_entry *e = m->buckets[i];
		while (e) {
			struct gw_strmap_entry *next = e->next;
			if (free_value && e->value)
				free_value(e->value);
			free(e);
			e = next;
		}
	}
	free(m->buckets);
	m->buckets = NULL;
	m->nbuckets = m->count = 0;
}

static struct gw_strmap_entry **find_slot(const struct gw_strmap *m, const char *key, size_t len, uint64_t h)
{
	struct gw_strmap_entry **pp = &m->buckets[h & (m->nbuckets - 1)];
	while (*pp) {
		if ((*pp)->hash == h && (*pp)->key_len == len && !memcmp((*pp)->key, key, len))
			return pp;
		pp = &(*pp)->next;
	}
	return pp;
}

void *gw_strmap_get(const struct gw_strmap *m, const char *key, size_t len)
{
	if (!m->nbuckets)
		return NULL;
	struct gw_strmap_entry **pp = find_slot(m, key, len, gw_hash_bytes(key, len));
	return *pp ? (*pp)->value : NULL;
}

static void grow(struct gw_strmap *m)
{
	size_t n = m->nbuckets * 2;
	struct gw_strmap_entry **nb = calloc(n, sizeof(*nb));
	if (!nb)
		return; /* keep working with longer chains */
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct gw_strmap_entry *e = m->buckets[i];
		while (e) {
			struct gw_strmap_entry *next = e->next;
			e->next = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(m->buckets);
	m->buckets = nb;
	m->nbuckets = n;
}

struct gw_strmap_entry *gw_strmap_upsert(struct gw_strmap *m, const char *key, size_t len, int *created)
{
	uint64_t h = gw_hash_bytes(key, len);
	struct gw_strmap_entry **pp = find_slot(m, key, len, h);
	if (*pp) {
		if (created)
			*created = 0;
		return *pp;
	}
	struct gw_strmap_entry *e = malloc(sizeof(*e) + len + 1);
	if (!e)
		return NULL;
	e->next = NULL;
	e->hash = h;
	e->value = NULL;
	e->key_len = len;
	memcpy(e->key, key, len);
	e->key[len] = '\0';
	*pp = e;
	m->count++;
	if (created)
		*created = 1;
	if (m->count > m->nbuckets)
		grow(m);
	return e;
}

void *gw_strmap_remove(struct gw_strmap *m, const char *key, size_t len)
{
	if (!m->nbuckets)
		return NULL;
	struct gw_strmap_entry **pp = find_slot(m, key, len, gw_hash_bytes(key, len));
	struct gw_strmap_entry *e = *pp;
	if (!e)
		return NULL;
	void *v = e->value;
	*pp = e->next;
	free(e);
	m->count--;
	return v;
}
