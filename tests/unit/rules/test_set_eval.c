/* test_set_eval.c - rule-set evaluation (rules/set_eval.c, rules_evaluate)
 * end to end: the shipped default rule file against the sample payloads
 * (fixtures/), and small rule sets for
 * ignoreSelf, onError, recipients, templates, globs, disabled rules and
 * concurrent evaluation of one set.
 *
 * Ownership: sets, scratches and JSON are released per test. Threads: the
 * concurrency test starts two threads that share one set.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "rules.h"

struct log_capture {
	char text[4096];
	int calls;
};

static void capture(void *ud, const char *rule_key, const char *message)
{
	struct log_capture *c = ud;
	size_t n = strlen(c->text);
	c->calls++;
	snprintf(c->text + n, sizeof(c->text) - n, "[%s] %s\n", rule_key, message);
}

static struct rules_set *load(const char *yaml)
{
	struct rules_diags d;
	rules_diags_init(&d);
	struct rules_set *s = rules_load_string("t.yml", yaml, strlen(yaml), &d);
	for (size_t i = 0; i < d.count; i++) {
		char *f = rules_diag_format(&d.items[i]);
		fprintf(stderr, "%s", f);
		free(f);
	}
	CHECK(s != NULL);
	rules_diags_free(&d);
	return s;
}

static json_t *fixture(const char *name)
{
	char path[1024];
	json_error_t e;
	snprintf(path, sizeof(path), "%s/fixtures/%s", RULES_TEST_DIR, name);
	json_t *j = json_load_file(path, 0, &e);
	if (!j)
		fprintf(stderr, "%s: %s\n", path, e.text);
	CHECK(j != NULL);
	return j;
}

/* Compact JSON of the result for exact comparison; frees `result`. */
static char *dump(json_t *result)
{
	char *s = json_dumps(result, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(result);
	return s;
}

#define CHECK_RESULT(result, want)                                                                           \
	do {                                                                                                 \
		char *got_ = dump(result);                                                                   \
		CHECK_STR_EQ(got_, want);                                                                    \
		free(got_);                                                                                  \
	} while (0)

static void test_default_rules(struct rules_scratch *s)
{
	struct rules_diags d;
	rules_diags_init(&d);
	struct rules_set *set = rules_load_file(RULES_DOCS_DIR "/examples/default.yml", &d);
	CHECK(set != NULL);
	CHECK_INT_EQ(d.count, 0);
	rules_diags_free(&d);
	if (!set)
		return;
	CHECK_INT_EQ(rules_set_count(set), 8);
	CHECK_INT_EQ(strlen(rules_set_version(set)), 16);
	struct log_capture log = {{0}, 0};
	json_t *ev;

	ev = fixture("jira-created-issue.PARTIAL.json");
	CHECK_RESULT(rules_evaluate(set, ev, s, capture, &log),
		     "[{\"rule\":\"issue-created\",\"eventType\":\"avi:jira:created:issue\","
		     "\"to\":[\"4ad9aa0c52dc1b420a791d12\"],\"context\":\"jira:issue:SP-10\","
		     "\"type\":\"info\",\"title\":\"SP-10 created: A descriptive title\","
		     "\"description\":\"Story in Sample Project\",\"actions\":[{\"text\":\"Open\","
		     "\"href\":\"/browse/SP-10\"}],\"ttl\":604800}]");
	/* the same issue as a Bug with an assignee: both rules, in file order */
	json_t *fields = json_object_get(json_object_get(ev, "issue"), "fields");
	json_object_set_new(json_object_get(fields, "issuetype"), "name", json_string("Bug"));
	json_object_set_new(fields, "assignee", json_pack("{s:s}", "accountId", "assignee-1"));
	CHECK_RESULT(rules_evaluate(set, ev, s, capture, &log),
		     "[{\"rule\":\"bug-created\",\"eventType\":\"avi:jira:created:issue\","
		     "\"to\":[\"assignee-1\"],\"context\":\"jira:issue:SP-10\",\"type\":\"warning\","
		     "\"title\":\"New bug SP-10\",\"description\":\"A descriptive title\","
		     "\"actions\":[{\"text\":\"Open\",\"href\":\"/browse/SP-10\"}]},"
		     "{\"rule\":\"issue-created\",\"eventType\":\"avi:jira:created:issue\","
		     "\"to\":[\"4ad9aa0c52dc1b420a791d12\",\"assignee-1\"],\"context\":"
		     "\"jira:issue:SP-10\",\"type\":\"info\",\"title\":\"SP-10 created: A "
		     "descriptive title\",\"description\":\"Bug in Sample Project\",\"actions\":"
		     "[{\"text\":\"Open\",\"href\":\"/browse/SP-10\"}],\"ttl\":604800}]");
	json_decref(ev);

	ev = fixture("jira-updated-issue.CONSTRUCTED.json");
	CHECK_RESULT(rules_evaluate(set, ev, s, capture, &log),
		     "[{\"rule\":\"status-changed\",\"eventType\":\"avi:jira:updated:issue\","
		     "\"to\":[\"4ad9aa0c52dc1b420a791d12\"],\"context\":\"jira:issue:SP-10\","
		     "\"type\":\"info\",\"title\":\"SP-10 moved to In Progress\",\"description\":"
		     "\"A descriptive title\",\"actions\":[{\"text\":\"Open\",\"href\":"
		     "\"/browse/SP-10\"}]}]");
	/* self-generated updates are dropped by ignoreSelf */
	json_object_set_new(ev, "selfGenerated", json_true());
	CHECK_RESULT(rules_evaluate(set, ev, s, capture, &log), "[]");
	json_decref(ev);

	ev = fixture("jira-commented-issue.CONSTRUCTED.json");
	CHECK_RESULT(rules_evaluate(set, ev, s, capture, &log),
		     "[{\"rule\":\"issue-commented\",\"eventType\":\"avi:jira:commented:issue\","
		     "\"to\":[\"4ad9aa0c52dc1b420a791d12\"],\"context\":\"jira:issue:SP-10\","
		     "\"type\":\"info\",\"title\":\"New comment on SP-10\",\"description\":"
		     "\"A descriptive title\",\"actions\":[{\"text\":\"Open\",\"href\":"
		     "\"/browse/SP-10?focusedCommentId=10100\"}]}]");
	json_decref(ev);

	ev = fixture("confluence-created-page.json");
	CHECK_RESULT(rules_evaluate(set, ev, s, capture, &log),
		     "[{\"rule\":\"page-created\",\"eventType\":\"avi:confluence:created:page\","
		     "\"to\":[\"4ad9aa0c52dc1b420a791d12\"],\"context\":\"confluence:page:838205441\","
		     "\"type\":\"success\",\"title\":\"Page created: A brand new page\","
		     "\"description\":\"In Project: Sample Project\",\"actions\":[]}]");
	json_decref(ev);

	ev = fixture("confluence-created-comment.json");
	CHECK_RESULT(rules_evaluate(set, ev, s, capture, &log),
		     "[{\"rule\":\"page-commented\",\"eventType\":\"avi:confluence:created:comment\","
		     "\"to\":[\"4ad9aa0c52dc1b420a791d12\",\"5df0ac136e39300e512d2ffa\"],"
		     "\"context\":\"confluence:page:838205441\",\"type\":\"info\",\"title\":"
		     "\"New comment on A brand new page\",\"description\":\"\",\"actions\":[]}]");
	json_decref(ev);

	ev = fixture("forge-installed-app.json");
	/* lifecycle payloads carry no eventType: rules_evaluate finds nothing */
	CHECK_RESULT(rules_evaluate(set, ev, s, capture, &log), "[]");
	CHECK_RESULT(rules_evaluate_as(set, "avi:forge:installed:app", ev, s, capture, &log),
		     "[{\"rule\":\"app-installed\",\"eventType\":\"avi:forge:installed:app\","
		     "\"to\":[\"4ad9aa0c52dc1b420a791d12\"],\"context\":\"forge:app\",\"type\":"
		     "\"success\",\"title\":\"My App Name installed\",\"description\":"
		     "\"Version 9.0.0\",\"actions\":[]}]");
	json_decref(ev);

	ev = fixture("forge-upgraded-app.json");
	CHECK_RESULT(rules_evaluate_as(set, "avi:forge:upgraded:app", ev, s, capture, &log),
		     "[{\"rule\":\"app-upgraded\",\"eventType\":\"avi:forge:upgraded:app\","
		     "\"to\":[\"4ad9aa0c52dc1b420a791d12\"],\"context\":\"forge:app\",\"type\":"
		     "\"info\",\"title\":\"My App Name upgraded to 9.0.0\",\"description\":\"\","
		     "\"actions\":[]}]");
	json_decref(ev);
	CHECK_INT_EQ(log.calls, 0);
	if (log.calls)
		fprintf(stderr, "%s", log.text);
	rules_set_unref(set);
}

#define NOTIFY "    notify: {to: \"'u1'\", context: c, title: \"{{ event.eventType }}\"}\n"

static void test_on_error(struct rules_scratch *s)
{
	struct rules_set *set =
		load("rules:\n"
		     "  - key: ignore\n    events: [avi:jira:created:issue]\n"
		     "    filter: {expression: event.issue.fields.name == 'x', onError: IGNORE}\n" NOTIFY
		     "  - key: ignore-log\n    events: [avi:jira:created:issue]\n"
		     "    filter: {expression: event.issue.fields.name == 'x'}\n" NOTIFY
		     "  - key: receive\n    events: [avi:jira:created:issue]\n"
		     "    filter: {expression: event.issue.fields.name == 'x', onError: RECEIVE}\n" NOTIFY
		     "  - key: receive-log\n    events: [avi:jira:created:issue]\n"
		     "    filter: {expression: \"event.issue.key\", onError: RECEIVE_AND_LOG}\n" NOTIFY);
	struct log_capture log = {{0}, 0};
	json_t *ev = json_pack("{s:s,s:{s:s,s:{}}}", "eventType", "avi:jira:created:issue", "issue", "key",
			       "K-1", "fields");
	json_t *r = rules_evaluate(set, ev, s, capture, &log);
	CHECK_INT_EQ(json_array_size(r), 2);
	CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(r, 0), "rule")), "receive");
	CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(r, 1), "rule")), "receive-log");
	CHECK_STR_EQ(log.text,
		     "[ignore-log] rule 'ignore-log': filter expression failed: t.yml:8:45: "
		     "property 'name' is not defined (onError IGNORE_AND_LOG: event ignored)\n"
		     "[receive-log] rule 'receive-log': filter expression must yield a Boolean, got "
		     "String (onError RECEIVE_AND_LOG: event received)\n");
	json_decref(r);
	json_decref(ev);
	rules_set_unref(set);
}

static void test_recipients_templates_globs(struct rules_scratch *s)
{
	struct rules_set *set = load(
		"rules:\n"
		"  - key: people\n    events: ['avi:jira:*:issue']\n"
		"    notify:\n"
		"      to: [\"event.a\", \"event.list\", \"null\", \"''\", \"[event.a, 'u3', null]\"]\n"
		"      context: \"ctx:{{ event.n }}:{{ event.obj }}:{{ null }}:{{ true }}\"\n"
		"      title: \"{{ event.a }} {{ event.list }}\"\n"
		"      description: \"{{ event.n + 1 }}\"\n"
		"      type: error\n"
		"      ttl: 60\n"
		"  - key: disabled\n    enabled: false\n    events: [avi:jira:created:issue]\n" NOTIFY
		"  - key: nobody\n    events: [avi:jira:created:issue]\n"
		"    notify: {to: \"event.none ?? null\", context: c, title: t}\n"
		"  - key: bad-recipient\n    events: [avi:jira:created:issue]\n"
		"    notify: {to: \"event.n\", context: c, title: t}\n"
		"  - key: bad-template\n    events: [avi:jira:created:issue]\n"
		"    notify: {to: \"'u1'\", context: c, title: \"x {{ event.obj.missing }}\"}\n"
		"  - key: exact-and-glob\n    events: [avi:jira:created:issue, 'avi:*:created:*']\n" NOTIFY);
	struct log_capture log = {{0}, 0};
	json_t *ev = json_pack("{s:s,s:s,s:[s,s,n],s:i,s:{s:i},s:n}", "eventType", "avi:jira:created:issue",
			       "a", "u1", "list", "u2", "u1", "n", 41, "obj", "k", 1, "none");
	CHECK_RESULT(rules_evaluate(set, ev, s, capture, &log),
		     "[{\"rule\":\"people\",\"eventType\":\"avi:jira:created:issue\",\"to\":"
		     "[\"u1\",\"u2\",\"u3\"],\"context\":\"ctx:41:{\\\"k\\\":1}::true\",\"type\":"
		     "\"error\",\"title\":\"u1 [\\\"u2\\\",\\\"u1\\\",null]\",\"description\":\"42\","
		     "\"actions\":[],\"ttl\":60},"
		     "{\"rule\":\"exact-and-glob\",\"eventType\":\"avi:jira:created:issue\",\"to\":"
		     "[\"u1\"],\"context\":\"c\",\"type\":\"info\",\"title\":"
		     "\"avi:jira:created:issue\",\"description\":\"\",\"actions\":[]}]");
	CHECK_STR_EQ(log.text, "[bad-recipient] rule 'bad-recipient': recipient expression 'event.n' yielded "
			       "a Number; expected a String, a List of Strings or null\n"
			       "[bad-template] rule 'bad-template': title template failed: in {{ "
			       "event.obj.missing }}: t.yml:23:61: property 'missing' is not defined\n");
	/* only the glob rule matches another issue event */
	json_object_set_new(ev, "eventType", json_string("avi:jira:updated:issue"));
	json_t *r = rules_evaluate(set, ev, s, NULL, NULL);
	CHECK_INT_EQ(json_array_size(r), 1);
	json_decref(r);
	/* nothing matches an unrelated event */
	json_object_set_new(ev, "eventType", json_string("avi:confluence:updated:page"));
	CHECK_RESULT(rules_evaluate(set, ev, s, NULL, NULL), "[]");
	json_decref(ev);
	rules_set_unref(set);
}

/* Large recipient lists: repeats dropped (the hashed path past 16 entries,
 * across several set rebuilds), first-seen order kept, excludeActor applied,
 * and the same answer as the short-list scan for a short list. */
static void test_many_recipients(struct rules_scratch *s)
{
	struct rules_set *set = load(
		"rules:\n"
		"  - key: many\n    events: [avi:jira:updated:issue]\n"
		"    notify: {to: [\"event.w\", \"event.w2\", \"'u7'\"], context: c, title: t, excludeActor: true}\n");
	json_t *ev = json_pack("{s:s,s:s,s:[],s:[]}", "eventType", "avi:jira:updated:issue", "atlassianId",
			       "u3", "w", "w2");
	json_t *w = json_object_get(ev, "w"), *w2 = json_object_get(ev, "w2");
	char id[32];
	for (int i = 0; i < 3000; i++) { /* u0..u1499, each twice, interleaved */
		snprintf(id, sizeof(id), "u%d", i % 1500);
		json_array_append_new(w, json_string(id));
	}
	for (int i = 2999; i >= 0; i--) { /* u0..u2999 backwards: 1500 new ones */
		snprintf(id, sizeof(id), "u%d", i);
		json_array_append_new(w2, json_string(id));
	}
	json_t *r = rules_evaluate(set, ev, s, NULL, NULL);
	json_t *to = json_object_get(json_array_get(r, 0), "to");
	CHECK_INT_EQ(json_array_size(to), 2999); /* 3000 distinct minus the actor u3 */
	int order_ok = 1;
	for (size_t i = 0; i < json_array_size(to); i++) {
		/* first seen: u0..u1499 from w (u3 removed), then u2999..u1500 from w2 */
		int want = i < 3 ? (int)i : i < 1499 ? (int)i + 1 : 2999 - (int)(i - 1499);
		snprintf(id, sizeof(id), "u%d", want);
		if (strcmp(json_string_value(json_array_get(to, i)), id))
			order_ok = 0;
	}
	CHECK(order_ok);
	json_decref(r);
	json_decref(ev);
	rules_set_unref(set);
}

struct worker {
	const struct rules_set *set;
	json_t *event;
	int matches;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct rules_scratch *s = rules_scratch_new();
	for (int i = 0; i < 2000; i++) {
		json_t *r = rules_evaluate(w->set, w->event, s, NULL, NULL);
		w->matches += (int)json_array_size(r);
		json_decref(r);
	}
	rules_scratch_free(s);
	return NULL;
}

static void test_threads(void)
{
	struct rules_set *set = load(
		"rules:\n  - key: r\n    events: [avi:jira:created:issue]\n"
		"    filter: {expression: \"event.k matches '^K-\\\\\\\\d+$' && event.k + 'x' != 'y'\"}\n"
		"    notify: {to: \"event.k.toLowerCase()\", context: c, title: \"{{ event.k }}\"}\n");
	json_t *ev = json_pack("{s:s,s:s}", "eventType", "avi:jira:created:issue", "k", "K-12");
	struct worker w[2] = {{rules_set_ref(set), ev, 0}, {rules_set_ref(set), ev, 0}};
	pthread_t t[2];
	rules_set_unref(set); /* the workers' references keep it alive */
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT_EQ(w[i].matches, 2000);
		rules_set_unref((struct rules_set *)w[i].set);
	}
	json_decref(ev);
}

/* The scratch byte limit in a rule set: a filter over it follows onError,
 * a template over it drops the notification; both are logged and counted. */
static void test_byte_limit(struct rules_scratch *s)
{
	struct rules_set *set =
		load("rules:\n"
		     "  - key: doubling\n    events: [avi:jira:created:issue]\n"
		     "    filter: {expression: \"let a = event.big + event.big; let b = a + a; "
		     "let c = b + b; c.length > 0\", onError: RECEIVE_AND_LOG}\n"
		     "    notify: {to: \"'u1'\", context: c, title: ok}\n"
		     "  - key: long-title\n    events: [avi:jira:created:issue]\n"
		     "    notify: {to: \"'u2'\", context: c,\n"
		     "             title: '{{event.big}}{{event.big}}{{event.big}}{{event.big}}"
		     "{{event.big}}{{event.big}}{{event.big}}{{event.big}}{{event.big}}{{event.big}}"
		     "{{event.big}}'}\n"
		     "  - key: short-title\n    events: [avi:jira:created:issue]\n"
		     "    notify: {to: \"'u3'\", context: c, title: '{{event.big.length}}'}\n");
	char *big = malloc(100001);
	memset(big, 'x', 100000);
	big[100000] = '\0';
	json_t *ev = json_pack("{s:s,s:s}", "eventType", "avi:jira:created:issue", "big", big);
	free(big);
	struct log_capture log = {{0}, 0};
	struct rules_limit_counts counts;
	rules_scratch_take_counts(s, &counts);
	json_t *r = rules_evaluate(set, ev, s, capture, &log);
	CHECK_INT_EQ(json_array_size(r), 2);
	CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(r, 0), "rule")), "doubling");
	CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(r, 1), "rule")), "short-title");
	CHECK(strstr(log.text, "[doubling] rule 'doubling': filter expression failed: t.yml:4:83: "
			       "expression needs more than 1048576 bytes of scratch memory "
			       "(onError RECEIVE_AND_LOG: event received)") != NULL);
	CHECK(strstr(log.text, "[long-title]") && strstr(log.text, "the text needs more than "
								   "1048576 bytes"));
	rules_scratch_take_counts(s, &counts);
	CHECK_INT_EQ(counts.byte_limit, 2);
	json_decref(r);
	json_decref(ev);
	rules_set_unref(set);
}

/* Rule keys of a result array, comma separated, for comparison. */
static void rule_keys(json_t *r, char *out, size_t n)
{
	size_t i, used = 0;
	json_t *x;
	out[0] = '\0';
	json_array_foreach (r, i, x)
		used += (size_t)snprintf(out + used, n - used, "%s%s", i ? "," : "",
					 json_string_value(json_object_get(x, "rule")));
	json_decref(r);
}

/* Issue 17: appIsLicensed from the FIT, the per-event filter form of the
 * manifest, event.runtime from payload.include.propertyPaths. */
static void test_forge_filters(struct rules_scratch *s)
{
	struct rules_set *set =
		load("rules:\n"
		     "  - key: licensed\n    events: [avi:jira:created:issue]\n"
		     "    filter: {appIsLicensed: true}\n" NOTIFY
		     "  - key: any-license\n    events: [avi:jira:created:issue]\n"
		     "    filter: {appIsLicensed: false}\n" NOTIFY "  - key: per-event\n"
		     "    events:\n"
		     "      - eventType: avi:jira:created:issue\n"
		     "        filter: {expression: \"event.issue.key == 'K-1'\"}\n"
		     "      - {eventType: avi:jira:updated:issue, filter: {ignoreSelf: true}}\n" NOTIFY
		     "  - key: runtime\n    events: [avi:jira:created:issue]\n"
		     "    payload: {include: {propertyPaths: [\"issue.properties['flags'].level\"]}}\n"
		     "    filter:\n"
		     "      expression: \"event.runtime.issue.properties['flags'].level == 3 && "
		     "event.runtime.project.properties['x'].y == null\"\n" NOTIFY);
	json_t *fit_lic = json_pack("{s:{s:{s:b}}}", "app", "license", "active", 1);
	json_t *fit_inactive = json_pack("{s:{s:{s:b}}}", "app", "license", "active", 0);
	json_t *fit_free = json_pack("{s:{s:s}}", "app", "id", "ari:x");
	json_t *ev = json_pack("{s:s,s:{s:s},s:b,s:{s:i}}", "eventType", "avi:jira:created:issue", "issue",
			       "key", "K-1", "selfGenerated", 1, "payloadIncludeProperties",
			       "issue.properties['flags'].level", 3);
	char keys[256];
	struct rules_invocation inv = {fit_lic};
	rule_keys(rules_evaluate_for(set, "avi:jira:created:issue", ev, &inv, s, NULL, NULL), keys,
		  sizeof(keys));
	CHECK_STR_EQ(keys, "licensed,any-license,per-event,runtime");
	inv.fit = fit_inactive;
	rule_keys(rules_evaluate_for(set, "avi:jira:created:issue", ev, &inv, s, NULL, NULL), keys,
		  sizeof(keys));
	CHECK_STR_EQ(keys, "any-license,per-event,runtime");
	inv.fit = fit_free; /* no app.license: unlicensed, as Forge treats free apps */
	rule_keys(rules_evaluate_for(set, "avi:jira:created:issue", ev, &inv, s, NULL, NULL), keys,
		  sizeof(keys));
	CHECK_STR_EQ(keys, "any-license,per-event,runtime");
	rule_keys(rules_evaluate(set, ev, s, NULL, NULL), keys, sizeof(keys));
	CHECK_STR_EQ(keys, "any-license,per-event,runtime");
	/* the updated event's own filter (ignoreSelf) applies, not the created one's */
	rule_keys(rules_evaluate_as(set, "avi:jira:updated:issue", ev, s, NULL, NULL), keys, sizeof(keys));
	CHECK_STR_EQ(keys, "");
	json_object_set_new(ev, "selfGenerated", json_false());
	json_object_set_new(json_object_get(ev, "issue"), "key", json_string("K-2"));
	rule_keys(rules_evaluate_as(set, "avi:jira:updated:issue", ev, s, NULL, NULL), keys, sizeof(keys));
	CHECK_STR_EQ(keys, "per-event");
	rule_keys(rules_evaluate_as(set, "avi:jira:created:issue", ev, s, NULL, NULL), keys, sizeof(keys));
	CHECK_STR_EQ(keys, "any-license,runtime");
	/* runtime: what the event lacks is null, not an error */
	json_object_del(ev, "payloadIncludeProperties");
	rule_keys(rules_evaluate_as(set, "avi:jira:created:issue", ev, s, NULL, NULL), keys, sizeof(keys));
	CHECK_STR_EQ(keys, "any-license");
	/* rules test names the step */
	inv.fit = fit_free;
	json_t *rep = rules_explain_for(set, NULL, ev, &inv, s);
	json_t *first = json_array_get(json_object_get(rep, "rules"), 0);
	CHECK_STR_EQ(json_string_value(json_object_get(first, "stage")), "appIsLicensed");
	json_decref(rep);
	json_decref(ev);
	json_decref(fit_lic);
	json_decref(fit_inactive);
	json_decref(fit_free);
	rules_set_unref(set);

	/* at least one of appIsLicensed, ignoreSelf, expression */
	struct rules_diags d;
	rules_diags_init(&d);
	const char *bad = "rules:\n  - key: k\n    events: [avi:jira:created:issue]\n"
			  "    filter: {onError: IGNORE}\n" NOTIFY;
	CHECK(rules_load_string("t.yml", bad, strlen(bad), &d) == NULL);
	CHECK(d.count >= 1 && !strcmp(d.items[d.count - 1].message,
				      "'filter' needs at least one of 'appIsLicensed', 'ignoreSelf' "
				      "or 'expression'"));
	rules_diags_free(&d);
	rules_diags_init(&d);
	bad = "rules:\n  - key: k\n    events: [{eventType: avi:jira:created:issue}]\n" NOTIFY;
	CHECK(rules_load_string("t.yml", bad, strlen(bad), &d) == NULL);
	CHECK(d.count == 1 && strstr(d.items[0].message, "needs 'eventType' and 'filter'") &&
	      d.items[0].line == 3 && d.items[0].col == 14);
	rules_diags_free(&d);
	rules_diags_init(&d);
	bad = "rules:\n  - key: k\n    events: [avi:jira:created:issue]\n"
	      "    payload: {include: {propertyPaths: [\"issue.flags\"]}}\n" NOTIFY;
	CHECK(rules_load_string("t.yml", bad, strlen(bad), &d) == NULL);
	CHECK(d.count == 1 && strstr(d.items[0].message, "invalid property path 'issue.flags'") &&
	      d.items[0].line == 4);
	rules_diags_free(&d);
}

/* Issue 17: run-time failures of the new constructs name file:line:col and
 * stop at a limit (a template literal or a notification template of 10 MB,
 * a throw of a non-String): never a crash or a stall. */
static void test_bad_runtime(struct rules_scratch *s)
{
	char yaml[4096];
	size_t n = (size_t)snprintf(
		yaml, sizeof(yaml),
		"rules:\n"
		"  - key: throw-number\n    events: [avi:jira:created:issue]\n"
		"    filter: {expression: \"throw event.n\", onError: IGNORE_AND_LOG}\n" NOTIFY
		"  - key: ten-mb-literal\n    events: [avi:jira:created:issue]\n"
		"    filter: {expression: \"`");
	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "${event.big}");
	n += (size_t)snprintf(yaml + n, sizeof(yaml) - n,
			      "`.length > 0\"}\n" NOTIFY
			      "  - key: ten-mb-title\n    events: [avi:jira:created:issue]\n"
			      "    notify: {to: \"'u1'\", context: c, title: '");
	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "{{event.big}}");
	snprintf(yaml + n, sizeof(yaml) - n, "'}\n");
	struct rules_set *set = load(yaml);
	char *big = malloc(100001);
	memset(big, 'x', 100000);
	big[100000] = '\0';
	json_t *ev = json_pack("{s:s,s:s,s:i}", "eventType", "avi:jira:created:issue", "big", big, "n", 42);
	free(big);
	struct log_capture log = {{0}, 0};
	json_t *r = rules_evaluate(set, ev, s, capture, &log);
	CHECK_INT_EQ(json_array_size(r), 0);
	CHECK(strstr(log.text, "[throw-number] rule 'throw-number': filter expression failed: "
			       "t.yml:4:27: 'throw' needs a String, got Number") != NULL);
	CHECK(strstr(log.text, "[ten-mb-literal] rule 'ten-mb-literal': filter expression failed: "
			       "t.yml:8:27: expression needs more than 1048576 bytes of scratch "
			       "memory") != NULL);
	CHECK(strstr(log.text, "[ten-mb-title] rule 'ten-mb-title': title template failed: "
			       "t.yml:12:178: the text needs more than 1048576 bytes") != NULL);
	if (!strstr(log.text, "t.yml:12:178"))
		fprintf(stderr, "%s", log.text);
	json_decref(r);
	json_decref(ev);
	rules_set_unref(set);
}

int main(void)
{
	struct rules_scratch *s = rules_scratch_new();
	test_default_rules(s);
	test_on_error(s);
	test_recipients_templates_globs(s);
	test_many_recipients(s);
	test_byte_limit(s);
	test_forge_filters(s);
	test_bad_runtime(s);
	test_threads();
	rules_scratch_free(s);
	return CHECK_DONE();
}
