/* Tests activity.c: counts per (installation, user) and interval, newest
 * titles first, reset per interval on take, isolation between
 * installations, the bound on tracked users. */
#include <string.h>

#include "../check.h"
#include "activity.h"

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
	CHECK_INT_EQ(gw_activity_init(&a, 3), 0);
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

	/* bound: 3 entries exist; a fourth user is not tracked and is counted */
	gw_activity_record_locked(&a, "I1", "carol", "c");
	CHECK_INT_EQ(a.dropped, 1);
	gw_activity_destroy(&a);
	return CHECK_DONE();
}
