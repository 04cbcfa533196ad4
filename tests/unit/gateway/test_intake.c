/* Tests intake.c's pure steps on Forge's documented payloads: event
 * extraction (envelope, bare event, scheduled triggers), lifecycle inference,
 * the redelivery key (key order and retryContext do not matter, content
 * does), the unverified exp of the system token, and the refusal helper.
 * Fixtures: tests/blackbox/fixtures (Forge's sample payloads) and
 * tests/unit/gateway/fixtures (the retry envelope, a Confluence event). */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../check.h"
#include "gw/b64url.h"
#include "intake.h"

static json_t *load(const char *dir, const char *name)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	json_error_t err;
	json_t *j = json_load_file(path, 0, &err);
	if (!j)
		fprintf(stderr, "cannot load %s: %s\n", path, err.text);
	return j;
}

static json_t *fixture(const char *name)
{
	return load(GW_BLACKBOX_FIXTURES, name);
}

static json_t *unit_fixture(const char *name)
{
	return load(GW_UNIT_FIXTURES, name);
}

static int same_key(const char *inst_a, json_t *a, const char *inst_b, json_t *b)
{
	unsigned char ka[GW_DEDUP_KEY_LEN], kb[GW_DEDUP_KEY_LEN];
	if (gw_intake_event_key(inst_a, a, ka) || gw_intake_event_key(inst_b, b, kb))
		return -1;
	return memcmp(ka, kb, sizeof(ka)) == 0;
}

static void test_lifecycle_inference(void)
{
	json_t *installed = fixture("forge-installed-app.json");
	json_t *upgraded = fixture("forge-upgraded-app.json");
	json_t *jira = fixture("jira-created-issue.json");
	json_t *page = unit_fixture("confluence-created-page.json");
	CHECK(installed && upgraded && jira && page);
	/* Lifecycle payloads carry no eventType: inferred from who did it. */
	CHECK(json_object_get(installed, "eventType") == NULL);
	CHECK_STR_EQ(gw_intake_event_type(installed), "avi:forge:installed:app");
	CHECK_STR_EQ(gw_intake_event_type(upgraded), "avi:forge:upgraded:app");
	CHECK_STR_EQ(gw_intake_event_type(jira), "avi:jira:created:issue");
	CHECK_STR_EQ(gw_intake_event_type(page), "avi:confluence:created:page");
	CHECK(gw_intake_is_lifecycle(gw_intake_event_type(installed)));
	CHECK(gw_intake_is_lifecycle(gw_intake_event_type(upgraded)));
	CHECK(!gw_intake_is_lifecycle(gw_intake_event_type(jira)));

	/* an explicit eventType wins over the lifecycle fields */
	json_t *typed = json_deep_copy(installed);
	json_object_set_new(typed, "eventType", json_string("avi:jira:created:issue"));
	CHECK_STR_EQ(gw_intake_event_type(typed), "avi:jira:created:issue");
	/* an empty or non-string eventType does not count */
	json_object_set_new(typed, "eventType", json_string(""));
	CHECK_STR_EQ(gw_intake_event_type(typed), "avi:forge:installed:app");
	json_object_set_new(typed, "eventType", json_integer(3));
	CHECK_STR_EQ(gw_intake_event_type(typed), "avi:forge:installed:app");
	/* installerAccountId without app: not a lifecycle payload */
	json_object_del(typed, "app");
	CHECK(gw_intake_event_type(typed) == NULL);
	json_t *empty = json_object();
	CHECK(gw_intake_event_type(empty) == NULL);
	json_decref(empty);
	json_decref(typed);
	json_decref(installed);
	json_decref(upgraded);
	json_decref(jira);
	json_decref(page);
}

static void test_extract(void)
{
	json_t *jira = fixture("jira-created-issue.json");
	char interval[16] = "";
	struct gw_intake_event ie;

	/* the remote envelope {"payload": event} */
	json_t *body = json_pack("{s:O}", "payload", jira);
	CHECK(gw_intake_extract(body, 0, interval, "inst-1", 0, &ie) == NULL);
	CHECK(ie.event == jira);
	CHECK_STR_EQ(ie.type, "avi:jira:created:issue");
	json_decref(ie.event);
	json_decref(body);

	/* a bare event */
	CHECK(gw_intake_extract(jira, 0, interval, "inst-1", 0, &ie) == NULL);
	CHECK(ie.event == jira);
	CHECK_STR_EQ(ie.type, "avi:jira:created:issue");
	json_decref(ie.event);

	/* a lifecycle event in the envelope: type inferred */
	json_t *installed = fixture("forge-installed-app.json");
	body = json_pack("{s:O}", "payload", installed);
	CHECK(gw_intake_extract(body, 0, interval, "inst-1", 0, &ie) == NULL);
	CHECK_STR_EQ(ie.type, "avi:forge:installed:app");
	json_decref(ie.event);
	json_decref(body);
	json_decref(installed);

	/* refusals, each with its reason */
	json_t *arr = json_array();
	CHECK(gw_intake_extract(arr, 0, interval, "inst-1", 0, &ie) != NULL);
	json_decref(ie.event);
	json_decref(arr);
	body = json_pack("{s:s}", "payload", "not an object");
	const char *why = gw_intake_extract(body, 0, interval, "inst-1", 0, &ie);
	CHECK(why && strstr(why, "\"payload\" must be an object"));
	json_decref(ie.event);
	json_decref(body);
	body = json_pack("{s:{s:s}}", "payload", "issue", "x");
	why = gw_intake_extract(body, 0, interval, "inst-1", 0, &ie);
	CHECK(why && strstr(why, "eventType"));
	json_decref(ie.event);
	json_decref(body);

	/* a scheduled trigger: the event is built here, the interval from the
	 * path, else from the body (written back) */
	body = json_object();
	strcpy(interval, "hour");
	CHECK(gw_intake_extract(body, 1, interval, "inst-9", 86400 + 3661, &ie) == NULL);
	CHECK_STR_EQ(ie.type, "scheduled:hour");
	CHECK_STR_EQ(json_string_value(json_object_get(ie.event, "eventType")), "scheduled:hour");
	CHECK_STR_EQ(json_string_value(json_object_get(ie.event, "interval")), "hour");
	CHECK_STR_EQ(json_string_value(json_object_get(ie.event, "installationId")), "inst-9");
	CHECK_STR_EQ(json_string_value(json_object_get(ie.event, "time")), "1970-01-02T01:01:01Z");
	json_decref(ie.event);
	json_decref(body);

	body = json_pack("{s:s}", "interval", "week");
	interval[0] = '\0';
	CHECK(gw_intake_extract(body, 1, interval, "inst-9", 0, &ie) == NULL);
	CHECK_STR_EQ(interval, "week");
	CHECK_STR_EQ(ie.type, "scheduled:week");
	json_decref(ie.event);
	strcpy(interval, "day"); /* the path wins over the body */
	CHECK(gw_intake_extract(body, 1, interval, "inst-9", 0, &ie) == NULL);
	CHECK_STR_EQ(ie.type, "scheduled:day");
	json_decref(ie.event);
	json_decref(body);

	body = json_object();
	strcpy(interval, "hourly");
	why = gw_intake_extract(body, 1, interval, "inst-9", 0, &ie);
	CHECK(why && strstr(why, "fiveMinute|hour|day|week"));
	CHECK(ie.event == NULL);
	interval[0] = '\0';
	CHECK(gw_intake_extract(body, 1, interval, "inst-9", 0, &ie) != NULL);
	json_decref(body);
	json_decref(jira);
}

static void test_redelivery_key(void)
{
	json_t *jira = fixture("jira-created-issue.json");
	json_t *envelope = unit_fixture("remote-event-retry-envelope.json");
	CHECK(jira && envelope);

	/* a redelivery: the same event with payload.retryContext set */
	json_t *retried = json_deep_copy(jira);
	json_object_set(retried, "retryContext",
			json_object_get(json_object_get(envelope, "payload"), "retryContext"));
	CHECK(json_object_get(retried, "retryContext") != NULL);
	CHECK_INT_EQ(same_key("inst-1", jira, "inst-1", retried), 1);

	/* key order does not matter, at any depth */
	json_t *reordered = json_object();
	const char *keys[64];
	size_t n = 0;
	const char *k;
	json_t *v;
	json_object_foreach (retried, k, v)
		if (n < 64)
			keys[n++] = k;
	for (size_t i = n; i-- > 0;)
		json_object_set(reordered, keys[i], json_object_get(retried, keys[i]));
	CHECK_INT_EQ(same_key("inst-1", jira, "inst-1", reordered), 1);
	json_t *a = json_loads("{\"x\":{\"a\":1,\"b\":[1,{\"c\":2,\"d\":3}]},\"y\":null}", 0, NULL);
	json_t *b = json_loads("{\"y\":null,\"x\":{\"b\":[1,{\"d\":3,\"c\":2}],\"a\":1}}", 0, NULL);
	CHECK_INT_EQ(same_key("i", a, "i", b), 1);
	json_decref(a);
	json_decref(b);

	/* the installation and the content do matter */
	CHECK_INT_EQ(same_key("inst-1", jira, "inst-2", jira), 0);
	json_t *changed = json_deep_copy(jira);
	json_object_set_new(json_object_get(changed, "issue"), "key", json_string("SP-11"));
	CHECK_INT_EQ(same_key("inst-1", jira, "inst-1", changed), 0);
	/* retryContext is skipped only at the top level */
	json_t *nested = json_deep_copy(jira);
	json_object_set_new(json_object_get(nested, "issue"), "retryContext", json_integer(1));
	CHECK_INT_EQ(same_key("inst-1", jira, "inst-1", nested), 0);

	/* the encoding is injective: neighbouring shapes differ */
	const char *pairs[][2] = {
		{"{\"a\":\"bc\"}", "{\"ab\":\"c\"}"},
		{"{\"a\":1}", "{\"a\":1.0}"},
		{"{\"a\":1}", "{\"a\":\"1\"}"},
		{"{\"a\":[]}", "{\"a\":{}}"},
		{"{\"a\":[1,2]}", "{\"a\":[2,1]}"},
		{"{\"a\":true}", "{\"a\":false}"},
		{"{\"a\":null}", "{}"},
		{"{\"a\":[[1],2]}", "{\"a\":[1,[2]]}"},
	};
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		json_t *x = json_loads(pairs[i][0], 0, NULL);
		json_t *y = json_loads(pairs[i][1], 0, NULL);
		CHECK(x && y);
		CHECK_INT_EQ(same_key("i", x, "i", y), 0);
		json_decref(x);
		json_decref(y);
	}
	/* the installation cannot run into the event */
	json_t *e1 = json_loads("{\"a\":1}", 0, NULL);
	CHECK_INT_EQ(same_key("ab", e1, "a", e1), 0);
	json_decref(e1);

	json_decref(nested);
	json_decref(changed);
	json_decref(reordered);
	json_decref(retried);
	json_decref(envelope);
	json_decref(jira);
}

static char *jwt_with_payload(const char *payload_json)
{
	size_t n = strlen(payload_json);
	char *p = malloc(gw_b64url_encoded_len(n) + 1);
	gw_b64url_encode((const unsigned char *)payload_json, n, p);
	char *t = malloc(strlen(p) + 32);
	sprintf(t, "eyJhbGciOiJIUzI1NiJ9.%s.c2ln", p);
	free(p);
	return t;
}

static void test_unverified_exp(void)
{
	char *t = jwt_with_payload("{\"exp\":1700000000,\"sub\":\"x\"}");
	CHECK_INT_EQ(gw_intake_unverified_exp(t, 7), 1700000000);
	free(t);
	t = jwt_with_payload("{\"sub\":\"no exp\"}");
	CHECK_INT_EQ(gw_intake_unverified_exp(t, 7), 7);
	free(t);
	t = jwt_with_payload("not json");
	CHECK_INT_EQ(gw_intake_unverified_exp(t, 7), 7);
	free(t);
	CHECK_INT_EQ(gw_intake_unverified_exp("opaque", 7), 7);
	CHECK_INT_EQ(gw_intake_unverified_exp("a.!!!.c", 7), 7);
}

static void test_refusal(void)
{
	uint64_t before = gw_stat_get(GW_STAT_events_rejected_queue_full);
	char *text = gw_intake_refusal(GW_STAT_events_rejected_queue_full, GW_LOG_DEBUG, "abc", 503,
				       "intake queue full (1)", gw_intake_error_body("queue_full", "retry"));
	CHECK_INT_EQ(gw_stat_get(GW_STAT_events_rejected_queue_full), before + 1);
	CHECK_STR_EQ(text, "{\"error\":\"queue_full\",\"message\":\"retry\"}");
	free(text);
	/* no reason: counted, not logged, still answered */
	text = gw_intake_refusal(GW_STAT_events_rejected_queue_full, GW_LOG_ERR, "abc", 503, NULL,
				 gw_intake_error_body("a", "b"));
	CHECK_INT_EQ(gw_stat_get(GW_STAT_events_rejected_queue_full), before + 2);
	CHECK_STR_EQ(text, "{\"error\":\"a\",\"message\":\"b\"}");
	free(text);
}

int main(void)
{
	gw_log_set_level(GW_LOG_ERR);
	test_lifecycle_inference();
	test_extract();
	test_redelivery_key();
	test_unverified_exp();
	test_refusal();
	return CHECK_DONE();
}
