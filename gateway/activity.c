/* activity.c - see activity.h. */
#include "activity.h"

#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const gw_schedule_intervals[GW_ACTIVITY_INTERVALS] = {"fiveMinute", "hour", "day", "week"};

int gw_schedule_interval_index(const char *name)
{
	for (int i = 0; name && i < GW_ACTIVITY_INTERVALS; i++)
		if (!strcmp(name, gw_schedule_intervals[i]))
			return i;
	return -1;
}

struct activity_entry {
	size_t charged; /* bytes counted against max_bytes */
	time_t last; /* last activity */
	char *user;
	size_t inst_len;
	unsigned count[GW_ACTIVITY_INTERVALS];
	char *titles[GW_ACTIVITY_TITLES]; /* ring, newest at (next - 1) */
	unsigned next;
};

static void free_entry(void *v)
{
	struct activity_entry *e = v;
	if (!e)
		return;
	free(e->user);
	for (int i = 0; i < GW_ACTIVITY_TITLES; i++)
		free(e->titles[i]);
	free(e);
}

int gw_activity_init(struct gw_activity *a, size_t max_bytes, size_t title_bytes)
{
	memset(a, 0, sizeof(*a));
	a->max_bytes = max_bytes;
	a->title_bytes = title_bytes ? title_bytes : 1;
	return gw_strmap_init(&a->users, 1024);
}

/* The worst case of one entry: everything it can ever hold. */
size_t gw_activity_entry_bytes(const struct gw_activity *a, size_t key_len, size_t user_len)
{
	return sizeof(struct activity_entry) + sizeof(struct gw_strmap_entry) + key_len + 1 + user_len + 1 +
	       GW_ACTIVITY_TITLES * (a->title_bytes + 1) + sizeof(void *);
}

/* A copy of title cut to at most max bytes, not inside a UTF-8 sequence. */
static char *title_copy(const char *title, size_t max, int *cut)
{
	size_t n = strlen(title);
	*cut = n > max;
	if (*cut) {
		n = max;
		while (n > 0 && ((unsigned char)title[n] & 0xc0) == 0x80)
			n--; /* title[n] continues a sequence: cut before its lead byte */
	}
	return strndup(title, n);
}

void gw_activity_destroy(struct gw_activity *a)
{
	gw_strmap_free(&a->users, free_entry);
}

static int make_key(char *buf, size_t cap, const char *inst, const char *user)
{
	int n = snprintf(buf, cap, "%zu:%s%s", strlen(inst), inst, user ? user : "");
	return n > 0 && (size_t)n < cap ? n : -1;
}

void gw_activity_record_locked(struct gw_activity *a, const char *inst, const char *user, const char *title)
{
	char key[512];
	int n = make_key(key, sizeof(key), inst, user);
	if (n < 0)
		return;
	int cut = 0;
	char *t = title_copy(title ? title : "", a->title_bytes, &cut);
	struct activity_entry *e = gw_strmap_get(&a->users, key, (size_t)n);
	if (!e) {
		size_t cost = gw_activity_entry_bytes(a, (size_t)n, strlen(user));
		if (a->bytes + cost > a->max_bytes || !(e = calloc(1, sizeof(*e))) ||
		    !(e->user = strdup(user))) {
			a->dropped++;
			gw_stat_inc(GW_STAT_digest_users_untracked);
			free_entry(e);
			e = NULL;
		} else {
			struct gw_strmap_entry *me = gw_strmap_upsert(&a->users, key, (size_t)n, NULL);
			if (me) {
				me->value = e;
				e->charged = cost;
				a->bytes += cost;
			} else {
				free_entry(e);
				e = NULL;
			}
		}
	}
	if (e && t) {
		if (cut)
			gw_stat_inc(GW_STAT_digest_titles_truncated);
		for (int i = 0; i < GW_ACTIVITY_INTERVALS; i++)
			e->count[i]++;
		free(e->titles[e->next % GW_ACTIVITY_TITLES]);
		e->titles[e->next % GW_ACTIVITY_TITLES] = t;
		e->next++;
		e->last = time(NULL);
		t = NULL;
	}
	free(t);
}

json_t *gw_activity_take_locked(struct gw_activity *a, const char *inst, const char *interval)
{
	return gw_activity_take_at_locked(a, inst, interval, time(NULL));
}

json_t *gw_activity_take_at_locked(struct gw_activity *a, const char *inst, const char *interval, time_t now)
{
	json_t *list = json_array();
	int iv = gw_schedule_interval_index(interval);
	if (iv < 0)
		return list;
	char prefix[256];
	int pn = snprintf(prefix, sizeof(prefix), "%zu:%s", strlen(inst), inst);
	if (pn < 0 || (size_t)pn >= sizeof(prefix))
		return list;
	for (size_t b = 0; b < a->users.nbuckets; b++)
		for (struct gw_strmap_entry *me = a->users.buckets[b]; me; me = me->next) {
			struct activity_entry *e = me->value;
			if (me->key_len < (size_t)pn || memcmp(me->key, prefix, (size_t)pn) != 0 ||
			    me->key_len != (size_t)pn + strlen(e->user) || !e->count[iv])
				continue;
			json_t *titles = json_array();
			for (unsigned k = 0; k < GW_ACTIVITY_TITLES && k < e->next; k++) {
				const char *t = e->titles[(e->next - 1 - k) % GW_ACTIVITY_TITLES];
				json_array_append_new(titles, json_string(t ? t : ""));
			}
			json_array_append_new(list,
					      json_pack("{s:s, s:I, s:o}", "accountId", e->user, "count",
							(json_int_t)e->count[iv], "titles", titles));
			e->count[iv] = 0;
		}
	/* Entries every interval has taken, or silent for longer than the
	 * longest interval, are done: remove them. */
	for (size_t b = 0; b < a->users.nbuckets; b++) {
		struct gw_strmap_entry *me = a->users.buckets[b];
		while (me) {
			struct gw_strmap_entry *next = me->next;
			struct activity_entry *e = me->value;
			int pending = 0;
			for (int i = 0; i < GW_ACTIVITY_INTERVALS; i++)
				pending |= e->count[i] != 0;
			if (now - e->last > GW_ACTIVITY_STALE_SECONDS)
				pending = 0;
			if (!pending) {
				a->bytes -= e->charged;
				gw_strmap_remove(&a->users, me->key, me->key_len);
				free_entry(e);
			}
			me = next;
		}
	}
	return list;
}
