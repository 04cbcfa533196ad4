/* fuzz_rules.c - libFuzzer target: one YAML rule file through the loader
 * (libyaml, key checks, expressions, templates, regexes, the event index);
 * every diagnostic is rendered, and a set that loads is evaluated (with and
 * without a licensed FIT: appIsLicensed), explained for a few events, and
 * checked for Forge (rules check --forge).
 *
 * Ownership: everything per input is freed before returning; the events and
 * the scratch live for the process. Threads: libFuzzer's single thread.
 */
#include <stdint.h>
#include <stdlib.h>

#include "rules.h"

static json_t *events[3], *fit;
static struct rules_scratch *scratch;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rules_diags d;

	if (!scratch) {
		events[0] =
			json_loads("{\"eventType\":\"avi:jira:created:issue\",\"atlassianId\":\"u1\","
				   "\"issue\":{\"key\":\"SP-1\",\"fields\":{\"summary\":\"s\","
				   "\"issuetype\":{\"name\":\"Bug\"},\"assignee\":{\"accountId\":\"a1\"}}},"
				   "\"payloadIncludeProperties\":{\"issue.properties['f'].x\":1}}",
				   0, NULL);
		fit = json_loads("{\"app\":{\"license\":{\"active\":true}}}", 0, NULL);
		events[1] = json_loads(
			"{\"eventType\":\"avi:jira:updated:issue\",\"selfGenerated\":true,"
			"\"changelog\":{\"items\":[{\"field\":\"status\",\"toString\":\"Done\"}]}}",
			0, NULL);
		events[2] = json_loads("{\"eventType\":\"scheduled:hour\",\"interval\":\"hour\"}", 0, NULL);
		scratch = rules_scratch_new();
		rules_scratch_set_max_steps(scratch, 5000);
	}
	rules_diags_init(&d);
	struct rules_set *set = rules_load_string("fuzz.yml", (const char *)data, size, &d);
	for (size_t i = 0; i < d.count; i++)
		free(rules_diag_format(&d.items[i]));
	if (set) {
		const struct rules_invocation inv = {fit};
		for (int i = 0; i < 3; i++) {
			const char *type = json_string_value(json_object_get(events[i], "eventType"));
			json_decref(rules_evaluate(set, events[i], scratch, NULL, NULL));
			json_decref(rules_evaluate_for(set, type, events[i], &inv, scratch, NULL, NULL));
			json_decref(rules_explain(set, NULL, events[i], scratch));
		}
		struct rules_diags forge;
		rules_diags_init(&forge);
		rules_forge_check(set, &forge);
		rules_diags_free(&forge);
		json_decref(rules_evaluate_schedule(set, "hour", events[2], scratch, NULL, NULL));
		rules_set_unref(set);
	}
	rules_diags_free(&d);
	return 0;
}
