/* test_examples.c - docs/examples/: every example rule file loads without a
 * diagnostic and produces exactly the expected notifications for the sample
 * events (docs/examples/events/, tests/unit/rules/fixtures/); the whole
 * directory loads as one set; multi-file loading, schedule rules,
 * excludeActor and rules_explain's reasons.
 *
 * Ownership: sets, scratches, JSON and temp files are released per test.
 * Threads: single.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check.h"
#include "rules.h"

static const struct {
	const char *rules, *event, *event_type, *expected;
} examples[] =
	{
		{"bug-created.yml", "DOCS:events/jira-created-bug.json", NULL,
		 "[{\"rule\":\"bugs.created\",\"eventType\":\"avi:jira:created:issue\",\"to\":[\"acc-lead\"],\"context\":\"jira:issue:SP-11\",\"type\":\"warning\",\"title\":\"New bug SP-11: Login button does nothing\",\"description\":\"Priority High\",\"actions\":[{\"text\":\"Open\",\"href\":\"/browse/SP-11\"}],\"ttl\":86400}]"},
		{"bug-created.yml", "TEST:fixtures/jira-created-issue.PARTIAL.json", NULL, "[]"},
		{"assigned-to-me.yml", "DOCS:events/jira-assigned.json", NULL,
		 "[{\"rule\":\"assign.to-me\",\"eventType\":\"avi:jira:updated:issue\",\"to\":[\"acc-dev\"],\"context\":\"jira:issue:SP-11\",\"type\":\"info\",\"title\":\"SP-11 was assigned to you\",\"description\":\"Login button does nothing\",\"actions\":[{\"text\":\"Open\",\"href\":\"/browse/SP-11\"}],\"excludeActor\":true}]"},
		{"assigned-to-me.yml", "DOCS:events/jira-status-done.json", NULL, "[]"},
		{"status-done.yml", "DOCS:events/jira-status-done.json", NULL,
		 "[{\"rule\":\"status.done\",\"eventType\":\"avi:jira:updated:issue\",\"to\":[\"acc-reporter\",\"acc-watcher\"],\"context\":\"jira:issue:SP-11\",\"type\":\"success\",\"title\":\"SP-11 is done\",\"description\":\"Login button does nothing (was In Progress)\",\"actions\":[{\"text\":\"Open\",\"href\":\"/browse/SP-11\"}],\"excludeActor\":true}]"},
		{"status-done.yml", "TEST:fixtures/jira-updated-issue.CONSTRUCTED.json", NULL, "[]"},
		{"mentioned-in-comment.yml", "DOCS:events/jira-comment-mention.json", NULL,
		 "[{\"rule\":\"comment.mentioned\",\"eventType\":\"avi:jira:commented:issue\",\"to\":[\"acc-lead\"],\"context\":\"jira:issue:SP-11\",\"type\":\"info\",\"title\":\"You were mentioned on SP-11\",\"description\":\"Login button does nothing\",\"actions\":[{\"text\":\"Show the comment\",\"href\":\"/browse/SP-11?focusedCommentId=10200\"}],\"excludeActor\":true}]"},
		{"mentioned-in-comment.yml", "TEST:fixtures/jira-commented-issue.CONSTRUCTED.json", NULL,
		 "[]"},
		{"confluence-page-in-my-space.yml", "DOCS:events/confluence-page-personal-space.json", NULL,
		 "[{\"rule\":\"confluence.page-in-my-space\",\"eventType\":\"avi:confluence:created:page\",\"to\":[\"acc-owner\"],\"context\":\"confluence:page:98310\",\"type\":\"info\",\"title\":\"New page in your space: Notes for your review\",\"description\":\"By Colin Colleague\",\"actions\":[{\"text\":\"Open\",\"href\":\"/spaces/~acc-owner/pages/98310\"}],\"excludeActor\":true}]"},
		{"confluence-page-in-my-space.yml", "TEST:fixtures/confluence-created-page.json", NULL, "[]"},
		{"app-installed.yml", "TEST:fixtures/forge-installed-app.json", "avi:forge:installed:app", "[{\"rule\":\"app.installed\",\"eventType\":\"avi:forge:installed:app\",\"to\":[\"4ad9aa0c52dc1b420a791d12\",\"3bc8aa0c52dc1b310a791d34\"],\"context\":\"forge:app:406d303d-0393-4ec4-ad7c-1435be94583a\",\"type\":\"success\",\"title\":\"My App Name installed (version 9.0.0)\",\"description\":\"\",\"actions\":[]}]"},
		{"app-installed.yml", "TEST:fixtures/forge-upgraded-app.json", "avi:forge:upgraded:app",
		 "[{\"rule\":\"app.installed\",\"eventType\":\"avi:forge:upgraded:app\",\"to\":[\"4ad9aa0c52dc1b420a791d12\",\"3bc8aa0c52dc1b310a791d34\"],\"context\":\"forge:app:406d303d-0393-4ec4-ad7c-1435be94583a\",\"type\":\"success\",\"title\":\"My App Name upgraded (version 9.0.0)\",\"description\":\"\",\"actions\":[]}]"},
};

/* "DOCS:x" -> docs/examples/x, "TEST:x" -> tests/unit/rules/x */
static void resolve(const char *ref, char *out, size_t n)
{
	if (!strncmp(ref, "DOCS:", 5))
		snprintf(out, n, "%s/examples/%s", RULES_DOCS_DIR, ref + 5);
	else
		snprintf(out, n, "%s/%s", RULES_TEST_DIR, ref + 5);
}

static void print_diags(const struct rules_diags *d)
{
	for (size_t i = 0; i < d->count; i++) {
		char *f = rules_diag_format(&d->items[i]);
		fprintf(stderr, "%s", f ? f : d->items[i].message);
		free(f);
	}
}

static void test_examples(struct rules_scratch *s)
{
	for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
		char path[1024], evpath[1024];
		struct rules_diags d;
		json_error_t jerr;

		snprintf(path, sizeof(path), "%s/examples/%s", RULES_DOCS_DIR, examples[i].rules);
		resolve(examples[i].event, evpath, sizeof(evpath));
		rules_diags_init(&d);
		struct rules_set *set = rules_load_file(path, &d);
		print_diags(&d);
		CHECK(set != NULL);
		CHECK_INT_EQ(d.count, 0);
		rules_diags_free(&d);
		json_t *ev = json_load_file(evpath, 0, &jerr);
		CHECK(ev != NULL);
		if (!set || !ev) {
			rules_set_unref(set);
			json_decref(ev);
			continue;
		}
		json_t *res = examples[i].event_type
				      ? rules_evaluate_as(set, examples[i].event_type, ev, s, NULL, NULL)
				      : rules_evaluate(set, ev, s, NULL, NULL);
		char *got = json_dumps(res, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (!got || strcmp(got, examples[i].expected))
			fprintf(stderr, "example %s with %s\n", examples[i].rules, examples[i].event);
		CHECK_STR_EQ(got, examples[i].expected);
		free(got);
		json_decref(res);
		json_decref(ev);
		rules_set_unref(set);
	}
}

static void test_directory(void)
{
	struct rules_diags d;
	rules_diags_init(&d);
	const char *paths[] = {RULES_DOCS_DIR "/examples"};
	struct rules_set *set = rules_load_paths(paths, 1, &d);
	print_diags(&d);
	CHECK(set != NULL);
	CHECK_INT_EQ(d.count, 0);
	CHECK_INT_EQ(rules_set_count(set), 15);
	CHECK_INT_EQ(strlen(rules_set_version(set)), 16);
	/* default.yml's and bug-created.yml's rules both want created issues */
	CHECK_INT_EQ(rules_set_candidates(set, "avi:jira:created:issue"), 4);
	CHECK_INT_EQ(rules_set_candidates(set, "avi:forge:installed:app"), 2);
	CHECK_INT_EQ(rules_set_candidates(set, "scheduled:day"), 0); /* disabled */
	rules_set_unref(set);
	rules_diags_free(&d);
}

/* Writes text to a new temp file in dir; returns its malloc'd path. */
static char *write_temp(const char *dir, const char *name, const char *text)
{
	char *path = NULL;
	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return NULL;
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	return path;
}

static const char rule_a[] = "rules:\n"
			     "  - key: a\n"
			     "    events: [avi:jira:created:issue]\n"
			     "    notify: {to: \"'u1'\", context: c, title: A}\n";
static const char rule_b[] = "rules:\n"
			     "  - key: b\n"
			     "    events: [avi:jira:created:issue]\n"
			     "    notify: {to: \"'u2'\", context: c, title: B}\n"
			     "  - key: a\n"
			     "    events: [avi:jira:created:issue]\n"
			     "    notify: {to: \"'u3'\", context: c, title: A2}\n";

static void test_multi_file(struct rules_scratch *s)
{
	char tmpl[] = "/tmp/gwrules-test-XXXXXX";
	char *dir = mkdtemp(tmpl);
	struct rules_diags d;

	CHECK(dir != NULL);
	if (!dir)
		return;
	/* an empty directory is an error */
	rules_diags_init(&d);
	const char *p0[] = {dir};
	CHECK(rules_load_paths(p0, 1, &d) == NULL);
	CHECK_INT_EQ(d.count, 1);
	if (d.count) {
		char *f = rules_diag_format(&d.items[0]);
		char want[512];
		snprintf(want, sizeof(want), "%s: error: the directory holds no rule files (*.yml, *.yaml)\n",
			 dir);
		CHECK_STR_EQ(f, want);
		free(f);
	}
	rules_diags_free(&d);

	char *pa = write_temp(dir, "10-a.yml", rule_a);
	char *pn = write_temp(dir, "README.txt", "not a rule file");
	/* two files, one set, in name order */
	char *pb2 = write_temp(dir, "20-b.yaml",
			       "rules:\n  - key: b\n    events: [avi:jira:created:issue]\n"
			       "    notify: {to: \"'u2'\", context: c, title: B}\n");
	rules_diags_init(&d);
	struct rules_set *set = rules_load_paths(p0, 1, &d);
	print_diags(&d);
	CHECK(set != NULL);
	CHECK_INT_EQ(rules_set_count(set), 2);
	json_t *ev = json_pack("{s:s}", "eventType", "avi:jira:created:issue");
	json_t *res = rules_evaluate(set, ev, s, NULL, NULL);
	CHECK_INT_EQ(json_array_size(res), 2);
	CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(res, 0), "rule")), "a");
	CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(res, 1), "rule")), "b");
	json_decref(res);
	rules_set_unref(set);
	rules_diags_free(&d);

	/* a key used in two files: the position and the first use */
	char *pb = write_temp(dir, "30-dup.yml", rule_b + 0);
	rules_diags_init(&d);
	const char *p2[] = {pa, pb};
	CHECK(rules_load_paths(p2, 2, &d) == NULL);
	CHECK_INT_EQ(d.errors, 1);
	if (d.count) {
		char *f = rules_diag_format(&d.items[0]);
		char want[1024];
		snprintf(want, sizeof(want),
			 "%s:5:10: error: duplicate rule key 'a' (first used at %s:2)\n"
			 "    - key: a\n"
			 "           ^\n",
			 pb, pa);
		CHECK_STR_EQ(f, want);
		free(f);
	}
	rules_diags_free(&d);
	/* a missing path */
	rules_diags_init(&d);
	const char *p3[] = {"/nonexistent/rules.yml"};
	CHECK(rules_load_paths(p3, 1, &d) == NULL);
	CHECK(d.count == 1 && strstr(d.items[0].message, "cannot open rule file") != NULL);
	rules_diags_free(&d);

	json_decref(ev);
	unlink(pa);
	unlink(pn);
	unlink(pb);
	unlink(pb2);
	rmdir(dir);
	free(pa);
	free(pn);
	free(pb);
	free(pb2);
}

static struct rules_set *load(const char *yaml)
{
	struct rules_diags d;
	rules_diags_init(&d);
	struct rules_set *set = rules_load_string("t.yml", yaml, strlen(yaml), &d);
	print_diags(&d);
	CHECK(set != NULL);
	rules_diags_free(&d);
	return set;
}

static void test_schedule_and_actor(struct rules_scratch *s)
{
	struct rules_set *set =
		load("rules:\n"
		     "  - key: digest\n"
		     "    schedule: hour\n"
		     "    notify: {to: \"['u1', 'u2']\", context: c, title: \"at {{ event.time }}\"}\n"
		     "  - key: weekly\n"
		     "    schedule: week\n"
		     "    notify: {to: \"'u3'\", context: c, title: w}\n"
		     "  - key: nested\n"
		     "    events: [avi:jira:updated:issue]\n"
		     "    notify:\n"
		     "      to: \"[['u1', ['actor']], null, [], 'u2', 'u1']\"\n"
		     "      excludeActor: true\n"
		     "      context: c\n"
		     "      title: t\n");
	if (!set)
		return;
	json_t *ev = json_pack("{s:s,s:s,s:s}", "eventType", "scheduled:hour", "interval", "hour", "time",
			       "2024-01-01T10:00:00Z");
	json_t *res = rules_evaluate_schedule(set, "hour", ev, s, NULL, NULL);
	char *got = json_dumps(res, JSON_COMPACT | JSON_PRESERVE_ORDER);
	CHECK_STR_EQ(got, "[{\"rule\":\"digest\",\"eventType\":\"scheduled:hour\",\"to\":[\"u1\",\"u2\"],"
			  "\"context\":\"c\",\"type\":\"info\",\"title\":\"at 2024-01-01T10:00:00Z\","
			  "\"description\":\"\",\"actions\":[]}]");
	free(got);
	json_decref(res);
	/* the gateway's scheduled event goes through rules_evaluate as well */
	res = rules_evaluate(set, ev, s, NULL, NULL);
	CHECK_INT_EQ(json_array_size(res), 1);
	json_decref(res);
	res = rules_evaluate_schedule(set, "fortnight", ev, s, NULL, NULL);
	CHECK_INT_EQ(json_array_size(res), 0);
	json_decref(res);
	json_decref(ev);

	ev = json_pack("{s:s,s:s}", "eventType", "avi:jira:updated:issue", "atlassianId", "actor");
	res = rules_evaluate(set, ev, s, NULL, NULL);
	got = json_dumps(res, JSON_COMPACT | JSON_PRESERVE_ORDER);
	CHECK_STR_EQ(got,
		     "[{\"rule\":\"nested\",\"eventType\":\"avi:jira:updated:issue\",\"to\":[\"u1\",\"u2\"],"
		     "\"context\":\"c\",\"type\":\"info\",\"title\":\"t\",\"description\":\"\","
		     "\"actions\":[],\"excludeActor\":true}]");
	free(got);
	json_decref(res);
	json_decref(ev);
	rules_set_unref(set);
}

static const char *reason_of(json_t *report, size_t i)
{
	return json_string_value(
		json_object_get(json_array_get(json_object_get(report, "rules"), i), "reason"));
}

static const char *stage_of(json_t *report, size_t i)
{
	return json_string_value(
		json_object_get(json_array_get(json_object_get(report, "rules"), i), "stage"));
}

static void test_explain(struct rules_scratch *s)
{
	struct rules_set *set =
		load("rules:\n"
		     "  - key: bug\n"
		     "    events: [avi:jira:created:issue]\n"
		     "    filter:\n"
		     "      ignoreSelf: true\n"
		     "      expression: \"event.kind == 'x' && (event.issue.type == 'Bug' || event.n > 5)\"\n"
		     "    notify: {to: \"'u'\", context: c, title: t}\n"
		     "  - key: err\n"
		     "    events: [avi:jira:*:issue]\n"
		     "    filter: {expression: \"event.missing.x\", onError: RECEIVE}\n"
		     "    notify: {to: \"event?.nobody\", context: c, title: t}\n"
		     "  - key: other\n"
		     "    events: [avi:confluence:created:page]\n"
		     "    notify: {to: \"'u'\", context: c, title: t}\n"
		     "  - key: off\n"
		     "    enabled: false\n"
		     "    events: [avi:jira:created:issue]\n"
		     "    notify: {to: \"'u'\", context: c, title: t}\n"
		     "  - key: tpl\n"
		     "    events: [avi:jira:created:issue]\n"
		     "    notify: {to: \"'u'\", context: c, title: \"{{ event.issue.nope }}\"}\n");
	if (!set)
		return;
	json_t *ev = json_pack("{s:s,s:s,s:{s:s},s:i}", "eventType", "avi:jira:created:issue", "kind", "x",
			       "issue", "type", "Story", "n", 3);
	json_t *rep = rules_explain(set, NULL, ev, s);
	CHECK_STR_EQ(stage_of(rep, 0), "filter");
	CHECK_STR_EQ(reason_of(rep, 0),
		     "expression was false, decided by `event.n > 5` (column 52): left side 3, right side 5");
	CHECK_STR_EQ(stage_of(rep, 1), "notify");
	CHECK_STR_EQ(reason_of(rep, 1),
		     "filter expression failed: t.yml:10:33: property 'missing' is not defined "
		     "(onError RECEIVE: event received); no recipients: every 'to' expression "
		     "yielded null or nothing");
	CHECK_STR_EQ(stage_of(rep, 2), "events");
	CHECK_STR_EQ(reason_of(rep, 2), "avi:jira:created:issue is not in its events");
	CHECK_STR_EQ(stage_of(rep, 3), "enabled");
	CHECK_STR_EQ(stage_of(rep, 4), "notify");
	CHECK_STR_EQ(reason_of(rep, 4),
		     "no filter expression; rule 'tpl': title template failed: in {{ event.issue.nope }}: "
		     "t.yml:21:60: property 'nope' is not defined");
	CHECK_INT_EQ(json_array_size(json_object_get(rep, "notifications")), 0);
	json_decref(rep);

	json_object_set_new(ev, "selfGenerated", json_true());
	json_object_set_new(json_object_get(ev, "issue"), "type", json_string("Bug"));
	rep = rules_explain(set, NULL, ev, s);
	CHECK_STR_EQ(stage_of(rep, 0), "ignoreSelf");
	json_object_set_new(ev, "selfGenerated", json_false());
	json_decref(rep);
	rep = rules_explain(set, NULL, ev, s);
	CHECK_STR_EQ(json_string_value(
			     json_object_get(json_array_get(json_object_get(rep, "rules"), 0), "outcome")),
		     "matched");
	CHECK_STR_EQ(reason_of(rep, 0),
		     "expression was true, decided by `event.issue.type == 'Bug'` (column 23): "
		     "left side \"Bug\", right side \"Bug\"");
	CHECK_INT_EQ(json_array_size(json_object_get(rep, "notifications")), 1);
	json_decref(rep);
	json_decref(ev);
	rules_set_unref(set);
}

int main(void)
{
	struct rules_scratch *s = rules_scratch_new();
	test_examples(s);
	test_directory();
	test_multi_file(s);
	test_schedule_and_actor(s);
	test_explain(s);
	rules_scratch_free(s);
	return CHECK_DONE();
}
