/* strmap.h - a string-keyed hash map (chained, grows by doubling).
 *
 * Ownership: the map copies keys; values are opaque pointers the caller owns.
 * Threads: none of its own; each map has one owner thread or an outer lock.
 */
#ifndef GW_STRMAP_H
#define GW_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct gw_strmap_entry {
	struct gw_strmap_entry *next;
	uint64_t hash;
	void *value;
	size_t key_len;
	char key[]; /* NUL-terminated copy */
};

struct gw_strmap {
	struct gw_strmap_entry **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
};

int gw_strmap_init(struct gw_strmap *m, size_t initial);
/* Frees entries; calls free_value on each value when non-NULL. */
void gw_strmap_free(struct gw_strmap *m, void (*free_value)(void *));

void *gw_strmap_get(const struct gw_strmap *m, const char *key, size_t len);
/* Returns the entry for key, creating it with value NULL when absent.
 * NULL only when out of memory. *created says which happened. */
struct gw_strmap_entry *gw_strmap_upsert(struct gw_strmap *m, const char *key, size_t len, int *created);
/* Removes key; returns its value (or NULL). */
void *gw_strmap_remove(struct gw_strmap *m, const char *key, size_t len);

uint64_t gw_hash_bytes(const void *data, size_t len);

#endif
