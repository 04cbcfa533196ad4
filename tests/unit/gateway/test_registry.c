/* Tests registry.c: lifecycle records persisted atomically and read back by a
 * new registry (a restart), system-token freshness, refusal of a corrupt
 * file, and that tokens never reach the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../check.h"
#include "registry.h"

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static const char *find_state(json_t *list, const char *id)
{
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *it = json_array_get(list, i);
		if (!strcmp(json_string_value(json_object_get(it, "id")), id))
			return json_string_value(json_object_get(it, "systemToken"));
	}
	return NULL;
}

int main(void)
{
	char dir[512];
	snprintf(dir, sizeof(dir), "%s/registry-XXXXXX",
		 getenv("GW_TEST_TMP") ? getenv("GW_TEST_TMP") : "/tmp");
	CHECK(mkdtemp(dir) != NULL);
	FILE *devnull = fopen("/dev/null", "w");

	struct gw_registry r;
	CHECK_INT_EQ(gw_registry_open(&r, dir, devnull), 0);
	json_t *event = json_pack("{s:s, s:s, s:{s:s}}", "id", "ev-1", "installerAccountId", "acc-1", "app",
				  "version", "9.0.0");
	json_t *fit = json_pack("{s:{s:s, s:s}}", "app", "appVersion", "9.1.0", "apiBaseUrl",
				"https://api.example");
	CHECK_INT_EQ(gw_registry_record(&r, "inst-A", "avi:forge:installed:app", event, fit, 1000), 0);
	gw_registry_set_token(&r, "inst-A", "SECRET-TOKEN-VALUE", 1000 + 3 * 3600);
	gw_registry_set_token(&r, "inst-B", "OTHER-SECRET", 1000 + 3600);
	json_t *h = gw_registry_health(&r, 1000);
	CHECK_STR_EQ(find_state(h, "inst-A"), "valid");
	CHECK_STR_EQ(find_state(h, "inst-B"), "expiring");
	json_decref(h);
	h = gw_registry_health(&r, 1000 + 3600);
	CHECK_STR_EQ(find_state(h, "inst-B"), "expired");
	json_decref(h);
	gw_registry_close(&r);

	char path[600];
	snprintf(path, sizeof(path), "%s/installations.json", dir);
	struct stat st;
	CHECK_INT_EQ(stat(path, &st), 0);
	CHECK_INT_EQ(st.st_mode & 0777, 0600);
	const char *text = read_all(path);
	CHECK(text && strstr(text, "\"installerAccountId\": \"acc-1\""));
	CHECK(text && strstr(text, "\"appVersion\": \"9.1.0\""));
	CHECK(text && !strstr(text, "SECRET")); /* tokens stay in memory */

	/* a restart: the record is there, the token is not (until the next trigger) */
	CHECK_INT_EQ(gw_registry_open(&r, dir, devnull), 0);
	h = gw_registry_health(&r, 2000);
	CHECK_INT_EQ(json_array_size(h), 1);
	CHECK_STR_EQ(find_state(h, "inst-A"), "none");
	CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(h, 0), "installedAt")),
		     "1970-01-01T00:16:40Z");
	json_decref(h);
	json_t *up = json_pack("{s:s, s:{s:s}}", "upgraderAccountId", "acc-2", "app", "version", "10.0.0");
	json_t *nofit = json_object();
	CHECK_INT_EQ(gw_registry_record(&r, "inst-A", "avi:forge:upgraded:app", up, nofit, 3000), 0);
	gw_registry_close(&r);
	text = read_all(path);
	CHECK(text && strstr(text, "\"upgraderAccountId\": \"acc-2\"") && strstr(text, "\"installedAt\""));

	/* a corrupt file stops the start with a message */
	FILE *f = fopen(path, "w");
	fputs("{\"installations\": [", f);
	fclose(f);
	CHECK_INT_EQ(gw_registry_open(&r, dir, devnull), -1);
	gw_registry_close(&r);

	unlink(path);
	rmdir(dir);
	json_decref(event);
	json_decref(fit);
	json_decref(up);
	json_decref(nofit);
	fclose(devnull);
	return CHECK_DONE();
}
