/* set_explain.c - `rules test`: what happened to each rule of a set for one
 * event (disabled, not its event, ignoreSelf, filter and why, notify).
 *
 * Ownership: rules_explain returns a new JSON object owned by the caller.
 * Threads: like rules_evaluate; the slow path, not for the gateway's workers.
 */
#include <stdlib.h>

#include "set_internal.h"

/* ---- rules test ---- */

static json_t *explain_rule(const struct rules_rule *r, const char *event_type, const json_t *event,
			    bool licensed, struct rules_scratch *s, json_t *notes)
{
	struct rules_strbuf why = {0};
	const struct rules_sink k = {NULL, NULL, &why, licensed};
	const char *outcome = "skipped", *stage;
	json_t *out;

	if (!r->enabled) {
		stage = "enabled";
		strbuf__printf(&why, "the rule is disabled (enabled: false)");
	} else if (!set__rule_wants(r, event_type)) {
		stage = "events";
		if (r->schedule)
			strbuf__printf(&why, "a schedule rule (%s); the event is %s", r->schedule,
				       event_type);
		else
			strbuf__printf(&why, "%s is not in its events", event_type);
	} else if (!set_eval__filter_matches(r, set_eval__filter_for(r, event_type), event, s, &k, &stage)) {
		/* stage says which part of the filter skipped it */
	} else {
		/* why holds the filter's reason; the notification's own failure
		 * (no recipients, a template error) is appended to it */
		struct rules_strbuf nwhy = {0};
		const struct rules_sink k2 = {NULL, NULL, &nwhy, licensed};
		json_t *n = set_eval__notification(r, event_type, event, s, &k2);
		stage = "notify";
		if (n) {
			outcome = "matched";
			json_array_append_new(notes, n);
		} else {
			strbuf__printf(&why, "; %s", nwhy.data ? nwhy.data : "no notification");
		}
		strbuf__free(&nwhy);
	}
	char *text = strbuf__take(&why);
	out = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "rule", r->key ? r->key : "", "file",
			r->file ? r->file : "", "line", r->line, "outcome", outcome, "stage", stage, "reason",
			text ? text : "out of memory");
	free(text);
	return out;
}

json_t *rules_explain(const struct rules_set *set, const char *event_type, const json_t *event,
		      struct rules_scratch *scratch)
{
	return rules_explain_for(set, event_type, event, NULL, scratch);
}

json_t *rules_explain_for(const struct rules_set *set, const char *event_type, const json_t *event,
			  const struct rules_invocation *inv, struct rules_scratch *scratch)
{
	json_t *rules = json_array(), *notes = json_array();
	bool licensed = set_eval__licensed(inv);

	if (!event_type)
		event_type = json_string_value(json_object_get(event, "eventType"));
	if (!event_type)
		event_type = "";
	for (size_t i = 0; set && rules && notes && i < set->n_rules; i++)
		json_array_append_new(
			rules, explain_rule(&set->rules[i], event_type, event, licensed, scratch, notes));
	return json_pack("{s:s, s:o, s:o}", "eventType", event_type, "rules", rules, "notifications", notes);
}
