/* Tests activity.c: counts per (installation, user) and interval, newest
 * titles first, reset per interval on take, isolation between
 * installations, the byte budget (issue 10 item 9): titles cut to
 * title_bytes at a UTF-8 boundary, new users refused past max_bytes, entries
 * removed once every interval took them or when stale. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "activity.h"
#include "stats.h"

static json_t *find(json_t *list, const char *user)
{
	for (size_t i = 0; i < json_array_size(list); i++)
		if (!strcmp(json_string_value(json_object_get(json_array_get(list, i), "accountId")), user))
			return json_array_get(list, i);
	return NULL;
}

int main(void)
{
	struct gw_activity a;
	CHECK_INT_EQ(gw_activity_init(&a, 1, 64), 0);
	/* budget: exactly I1/alice, I1/bob and I2/alice ("2:I1alice" ...) */
	a.max_bytes = gw_activity_entry_bytes(&a, 9, 5) * 2 + gw_activity_entry_bytes(&a, 7, 3);
	for (int i = 0; i < 7; i++) {
		char t[16];
		snprintf(t, sizeof(t), "t%d", i);
		gw_activity_record_locked(&a, "I1", "alice", t);
	}
	gw_activity_record_locked(&a, "I1", "bob", "b0");
	gw_activity_record_locked(&a, "I2", "alice", "other-installation");

	json_t *hour = gw_activity_take_locked(&a, "I1", "hour");
	CHECK_INT_EQ(json_array_size(hour), 2);
	json_t *al = find(hour, "alice");
	CHECK_INT_EQ(json_integer_value(json_object_get(al, "count")), 7);
	json_t *titles = json_object_get(al, "titles");
	CHECK_INT_EQ(json_array_size(titles), GW_ACTIVITY_TITLES);
	CHECK_STR_EQ(json_string_value(json_array_get(titles, 0)), "t6");
	CHECK_STR_EQ(json_string_value(json_array_get(titles, 4)), "t2");
	json_decref(hour);

	/* the hour counters were reset; day still sees everything */
	hour = gw_activity_take_locked(&a, "I1", "hour");
	CHECK_INT_EQ(json_array_size(hour), 0);
	json_decref(hour);
	json_t *day = gw_activity_take_locked(&a, "I1", "day");
	CHECK_INT_EQ(json_array_size(day), 2);
	json_decref(day);
	json_t *other = gw_activity_take_locked(&a, "I2", "hour");
	CHECK_INT_EQ(json_array_size(other), 1);
	CHECK_INT_EQ(json_integer_value(json_object_get(json_array_get(other, 0), "count")), 1);
	json_decref(other);
	json_t *bad = gw_activity_take_locked(&a, "I1", "minute");
	CHECK_INT_EQ(json_array_size(bad), 0);
	json_decref(bad);

	/* bound: 3 entries exist (the week counters are still pending); a
	 * fourth user does not fit, is not tracked and is counted */
	uint64_t untracked0 = gw_stat_get(GW_STAT_digest_users_untracked);
	CHECK_INT_EQ(a.users.count, 3);
	CHECK_INT_EQ(a.bytes, a.max_bytes);
	gw_activity_record_locked(&a, "I1", "carol", "c");
	CHECK_INT_EQ(a.dropped, 1);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_digest_users_untracked) - untracked0, 1);
	/* once every interval took I1's users, they leave and make room */
	json_decref(gw_activity_take_locked(&a, "I1", "fiveMinute"));
	CHECK_INT_EQ(a.users.count, 3);
	json_decref(gw_activity_take_locked(&a, "I1", "week"));
	CHECK_INT_EQ(a.users.count, 1); /* I2/alice: its counters are pending */
	CHECK_INT_EQ(a.bytes, gw_activity_entry_bytes(&a, 9, 5));
	gw_activity_record_locked(&a, "I1", "carol", "c");
	CHECK_INT_EQ(a.dropped, 1);
	CHECK_INT_EQ(a.users.count, 2);
	/* stale: an installation that never runs some interval cannot pin its
	 * users forever; 8 days of silence and any take removes them */
	json_t *l = gw_activity_take_at_locked(&a, "I9", "hour", time(NULL) + GW_ACTIVITY_STALE_SECONDS + 1);
	CHECK_INT_EQ(json_array_size(l), 0);
	json_decref(l);
	CHECK_INT_EQ(a.users.count, 0);
	CHECK_INT_EQ(a.bytes, 0);
	gw_activity_destroy(&a);

	/* titles: cut to title_bytes, never inside a UTF-8 sequence */
	CHECK_INT_EQ(gw_activity_init(&a, 1 << 20, 16), 0);
	uint64_t cut0 = gw_stat_get(GW_STAT_digest_titles_truncated);
	char big[100001];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	gw_activity_record_locked(&a, "I", "u", big);
	gw_activity_record_locked(&a, "I", "u", "exactly-16-bytes");
	gw_activity_record_locked(&a, "I", "u", "0123456789abcd\xc3\xa9zz"); /* e-acute at bytes 14-15 */
	gw_activity_record_locked(&a, "I", "u", "0123456789abcde\xc3\xa9z"); /* e-acute at bytes 15-16 */
	CHECK_INT_EQ(gw_stat_get(GW_STAT_digest_titles_truncated) - cut0, 3);
	l = gw_activity_take_locked(&a, "I", "hour");
	json_t *t = json_object_get(json_array_get(l, 0), "titles");
	CHECK_INT_EQ(json_array_size(t), 4);
	CHECK_STR_EQ(json_string_value(json_array_get(t, 0)), "0123456789abcde");
	CHECK_STR_EQ(json_string_value(json_array_get(t, 1)), "0123456789abcd\xc3\xa9");
	CHECK_STR_EQ(json_string_value(json_array_get(t, 2)), "exactly-16-bytes");
	CHECK_INT_EQ(strlen(json_string_value(json_array_get(t, 3))), 16);
	json_decref(l);
	/* 10,000 users notified with 100 kB titles: the tracker stays within 1 MiB */
	for (int i = 0; i < 10000; i++) {
		char user[32];
		snprintf(user, sizeof(user), "user-%d", i);
		gw_activity_record_locked(&a, "I", user, big);
	}
	CHECK(a.bytes <= a.max_bytes);
	CHECK(a.dropped > 0);
	gw_activity_destroy(&a);
	return CHECK_DONE();
}
