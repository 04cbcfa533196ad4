/* activity.c - see activity.h. */
#include "activity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const gw_schedule_intervals[GW_ACTIVITY_INTERVALS] = {"fiveMinute", "hour", "day", "week"};

int gw_schedule_interval_index(const char *name)
{
	for (int i = 0; name && i < GW_ACTIVITY_INTERVALS; i++)
		if (!strcmp(name, gw_schedule_intervals[i]))
			return i;
	return -1;
}

struct activity_entry {
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

int gw_activity_init(struct gw_activity *a, size_t max_users)
{
	memset(a, 0, sizeof(*a));
	a->max_users = max_users;
	return gw_strmap_init(&a->users, 1024);
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
	char *t = strdup(title ? title : "");
	struct activity_entry *e = gw_strmap_get(&a->users, key, (size_t)n);
	if (!e) {
		if (a->users.count >= a->max_users || !(e = calloc(1, sizeof(*e))) || !(e->user = strdup(user))) {
			a->dropped++;
			free_entry(e);
			e = NULL;
		} else {
			struct gw_strmap_entry *me = gw_strmap_upsert(&a->users, key, (size_t)n, NULL);
			if (me)
				me->value = e;
			else {
				free_entry(e);
				e = NULL;
			}
		}
	}
	if (e) {
		for (int i = 0; i < GW_ACTIVITY_INTERVALS; i++)
			e->count[i]++;
		free(e->titles[e->next % GW_ACTIVITY_TITLES]);
		e->titles[e->next % GW_ACTIVITY_TITLES] = t;
		e->next++;
		t = NULL;
	}
	free(t);
}

json_t *gw_activity_take_locked(struct gw_activity *a, const char *inst, const char *interval)
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
			json_array_append_new(list, json_pack("{s:s, s:I, s:o}", "accountId", e->user, "count",
							      (json_int_t)e->count[iv], "titles", titles));
			e->count[iv] = 0;
		}
	return list;
}
