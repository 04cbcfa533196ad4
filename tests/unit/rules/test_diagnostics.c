/* test_diagnostics.c - rule-file mistakes: one case per kind, each asserting
 * the exact rendered diagnostics (file:line:col, message, source line, caret).
 *
 * Ownership: diagnostics and sets are freed per case. Threads: single.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "rules.h"

static const struct {
	const char *name, *yaml, *expected;
} cases[] = {
	{"yaml_syntax",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [x\n"
	 "",
	 "rules.yml:4:1: error: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence at line 3)\n"
	 "  \n"
	 "  ^\n"
	 ""},
	{"top_not_mapping",
	 "- key: a\n"
	 "",
	 "rules.yml:1:1: error: the top level must be a mapping with a 'rules' list, got a list\n"
	 "  - key: a\n"
	 "  ^\n"
	 ""},
	{"rules_missing",
	 "rule:\n"
	 "  - key: a\n"
	 "",
	 "rules.yml:1:1: error: unknown key 'rule' in the top level; did you mean 'rules'?\n"
	 "  rule:\n"
	 "  ^\n"
	 "rules.yml:1:1: error: missing required key 'rules'\n"
	 "  rule:\n"
	 "  ^\n"
	 ""},
	{"rules_not_list",
	 "rules: {key: a}\n"
	 "",
	 "rules.yml:1:8: error: 'rules' must be a list, got a mapping\n"
	 "  rules: {key: a}\n"
	 "         ^\n"
	 ""},
	{"empty_file", "",
	 "rules.yml: error: the rule file is empty; expected a mapping with a 'rules' list\n"
	 ""},
	{"unknown_key",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    filtr: {ignoreSelf: true}\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:4:5: error: unknown key 'filtr' in rule; did you mean 'filter'?\n"
	 "      filtr: {ignoreSelf: true}\n"
	 "      ^\n"
	 ""},
	{"unknown_key_nohint",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    colour: red\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:4:5: error: unknown key 'colour' in rule\n"
	 "      colour: red\n"
	 "      ^\n"
	 ""},
	{"wrong_type_enabled",
	 "rules:\n"
	 "  - key: a\n"
	 "    enabled: yes\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:3:14: error: 'enabled' must be true or false\n"
	 "      enabled: yes\n"
	 "               ^\n"
	 ""},
	{"wrong_type_events",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: avi:jira:created:issue\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:3:13: error: 'events' must be a list of event names, got a scalar\n"
	 "      events: avi:jira:created:issue\n"
	 "              ^\n"
	 ""},
	{"missing_required",
	 "rules:\n"
	 "  - key: a\n"
	 "    notify: {to: \"'x'\"}\n"
	 "",
	 "rules.yml:2:5: error: rule is missing required key 'events'\n"
	 "    - key: a\n"
	 "      ^\n"
	 "rules.yml:3:13: error: 'notify' is missing required key 'context'\n"
	 "      notify: {to: \"'x'\"}\n"
	 "              ^\n"
	 "rules.yml:3:13: error: 'notify' is missing required key 'title'\n"
	 "      notify: {to: \"'x'\"}\n"
	 "              ^\n"
	 ""},
	{"duplicate_rule_key",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:5:10: error: duplicate rule key 'a' (first used at line 2)\n"
	 "    - key: a\n"
	 "           ^\n"
	 ""},
	{"bad_rule_key",
	 "rules:\n"
	 "  - key: 'a b'\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:2:10: error: rule key must be made of letters, digits, '_', '.' and '-'\n"
	 "    - key: 'a b'\n"
	 "           ^\n"
	 ""},
	{"bad_on_error",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    filter:\n"
	 "      expression: 'true'\n"
	 "      onError: IGNORE_AND_LOGG\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:6:16: error: invalid onError 'IGNORE_AND_LOGG'; did you mean 'IGNORE_AND_LOG'?\n"
	 "        onError: IGNORE_AND_LOGG\n"
	 "                 ^\n"
	 ""},
	{"bad_type",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    notify: {to: \"'x'\", context: c, title: t, type: warn}\n"
	 "",
	 "rules.yml:4:53: error: invalid type; expected info, success, warning or error\n"
	 "      notify: {to: \"'x'\", context: c, title: t, type: warn}\n"
	 "                                                      ^\n"
	 ""},
	{"expr_syntax_plain",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    filter:\n"
	 "      expression: event.a == = 1\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:5:30: error: unexpected '=' (use '==' to compare)\n"
	 "        expression: event.a == = 1\n"
	 "                               ^\n"
	 ""},
	{"expr_syntax_dq",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    filter:\n"
	 "      expression: \"event.a == \\\"x\\\" && \"\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:5:40: error: unexpected end of expression\n"
	 "        expression: \"event.a == \\\"x\\\" && \"\n"
	 "                                         ^\n"
	 ""},
	{"expr_unknown_ident_sq",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    filter:\n"
	 "      expression: 'issue.key == ''SP-1'''\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:5:20: error: unknown identifier 'issue' (only 'event' is defined)\n"
	 "        expression: 'issue.key == ''SP-1'''\n"
	 "                     ^\n"
	 ""},
	{"expr_unknown_function",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    filter:\n"
	 "      expression: \"size(event) > 1\"\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:5:20: error: unknown function 'size'\n"
	 "        expression: \"size(event) > 1\"\n"
	 "                     ^\n"
	 ""},
	{"regex_error",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    filter:\n"
	 "      expression: \"event.issue.key matches '^SP-(\\\\\\\\d+'\"\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:5:56: error: invalid regular expression: missing closing parenthesis\n"
	 "        expression: \"event.issue.key matches '^SP-(\\\\\\\\d+'\"\n"
	 "                                                         ^\n"
	 ""},
	{"expr_literal_block",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    filter:\n"
	 "      expression: |\n"
	 "        event.a == 1 &&\n"
	 "          evnt.b\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:7:11: error: unknown identifier 'evnt'; did you mean 'event'?\n"
	 "            evnt.b\n"
	 "            ^\n"
	 ""},
	{"ignore_self_non_jira",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue, avi:confluence:created:page]\n"
	 "    filter: {ignoreSelf: true}\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:4:14: error: ignoreSelf works only with Jira events (Forge refuses it too)\n"
	 "      filter: {ignoreSelf: true}\n"
	 "               ^\n"
	 ""},
	{"empty_events",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: []\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:3:13: error: 'events' must not be empty\n"
	 "      events: []\n"
	 "              ^\n"
	 ""},
	{"bad_ttl",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    notify: {to: \"'x'\", context: c, title: t, ttl: 0}\n"
	 "",
	 "rules.yml:4:52: error: 'ttl' must be a whole number of seconds from 1 to 2592000\n"
	 "      notify: {to: \"'x'\", context: c, title: t, ttl: 0}\n"
	 "                                                     ^\n"
	 ""},
	{"unknown_event_warning",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:isue, 'avi:jira:*:issue', 'avi:nothing:*']\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:3:14: warning: unknown event 'avi:jira:created:isue'; did you mean "
	 "'avi:jira:created:issue'?\n"
	 "      events: [avi:jira:created:isue, 'avi:jira:*:issue', 'avi:nothing:*']\n"
	 "               ^\n"
	 "rules.yml:3:57: warning: event pattern 'avi:nothing:*' matches no known event\n"
	 "      events: [avi:jira:created:isue, 'avi:jira:*:issue', 'avi:nothing:*']\n"
	 "                                                          ^\n"
	 ""},
	{"scheduled_events_known",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [scheduled:hour, 'scheduled:week:user', scheduled:minute]\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:3:53: warning: unknown event 'scheduled:minute'\n"
	 "      events: [scheduled:hour, 'scheduled:week:user', scheduled:minute]\n"
	 "  "
	 "                                                    ^\n"
	 ""},
	{"template_error",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    notify: {to: \"'x'\", context: \"jira:{{ event.issue.key \", title: \"New {{ evnt.x }}\"}\n"
	 "",
	 "rules.yml:4:40: error: unterminated '{{' in template (missing '}}')\n"
	 "      notify: {to: \"'x'\", context: \"jira:{{ event.issue.key \", title: \"New {{ evnt.x }}\"}\n"
	 "                                         ^\n"
	 "rules.yml:4:77: error: unknown identifier 'evnt'; did you mean 'event'?\n"
	 "      notify: {to: \"'x'\", context: \"jira:{{ event.issue.key \", title: \"New {{ evnt.x }}\"}\n"
	 "                                                                              ^\n"
	 ""},
	{"tabs_in_line",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "    \tbad: 1\n"
	 "",
	 "rules.yml:5:5: error: YAML syntax error: found character that cannot start any token (while scanning for the next token at line 5)\n"
	 "      \tbad: 1\n"
	 "      ^\n"
	 ""},
	{"multi_doc",
	 "rules: []\n"
	 "---\n"
	 "rules: []\n"
	 "",
	 "rules.yml:3:1: error: the rule file must contain a single YAML document\n"
	 "  rules: []\n"
	 "  ^\n"
	 ""},
	{"duplicate_key",
	 "rules:\n"
	 "  - key: a\n"
	 "    key: b\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:3:5: error: duplicate key 'key' in rule\n"
	 "      key: b\n"
	 "      ^\n"
	 ""},
	{"on_error_without_expr",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    filter: {ignoreSelf: true, onError: RECEIVE}\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:4:32: warning: 'onError' has no effect without 'expression'\n"
	 "      filter: {ignoreSelf: true, onError: RECEIVE}\n"
	 "                                 ^\n"
	 ""},
	{"arrow_missing",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:updated:issue]\n"
	 "    filter:\n"
	 "      expression: \"event.changelog.items.some(i.field == 1)\"\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:5:55: error: some() expects an arrow function such as 'x => x.name'\n"
	 "        expression: \"event.changelog.items.some(i.field == 1)\"\n"
	 "                                                        ^\n"
	 ""},
	{"bad_schedule",
	 "rules:\n"
	 "  - key: a\n"
	 "    schedule: hourly\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:3:15: error: invalid schedule 'hourly'; did you mean 'hour'?\n"
	 "      schedule: hourly\n"
	 "                ^\n"
	 ""},
	{"events_and_schedule",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    schedule: hour\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:4:5: error: a rule has either 'events' or 'schedule', not both\n"
	 "      schedule: hour\n"
	 "      ^\n"
	 ""},
	{"exclude_actor_type",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    notify: {to: \"'x'\", context: c, title: t, excludeActor: maybe}\n"
	 "",
	 "rules.yml:4:61: error: 'excludeActor' must be true or false\n"
	 "      notify: {to: \"'x'\", context: c, title: t, excludeActor: maybe}\n"
	 "                                                              ^\n"
	 ""},
	{"exclude_actor_typo",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    notify: {to: \"'x'\", context: c, title: t, excludActor: true}\n"
	 "",
	 "rules.yml:4:47: error: unknown key 'excludActor' in notify; did you mean 'excludeActor'?\n"
	 "      notify: {to: \"'x'\", context: c, title: t, excludActor: true}\n"
	 "                                                ^\n"
	 ""},
	{"func_arity",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:updated:issue]\n"
	 "    filter:\n"
	 "      expression: \"changedTo('status')\"\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:5:20: error: function 'changedTo' takes 2 arguments, got 1\n"
	 "        expression: \"changedTo('status')\"\n"
	 "                     ^\n"
	 ""},
	{"ignore_self_schedule",
	 "rules:\n"
	 "  - key: a\n"
	 "    schedule: day\n"
	 "    filter: {ignoreSelf: true}\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:4:14: error: ignoreSelf works only with Jira events (Forge refuses it too)\n"
	 "      filter: {ignoreSelf: true}\n"
	 "               ^\n"
	 ""},
	{"let_unknown_var",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:updated:issue]\n"
	 "    notify:\n"
	 "      to: \"let x = event.a; y\"\n"
	 "      context: c\n"
	 "      title: t\n"
	 "",
	 "rules.yml:5:29: error: unknown identifier 'y'\n"
	 "        to: \"let x = event.a; y\"\n"
	 "                              ^\n"
	 ""},
	{"regex_in_let_block",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:updated:issue]\n"
	 "    filter:\n"
	 "      expression: |\n"
	 "        let s = event.issue.fields.summary;\n"
	 "        s matches '(unclosed'\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:7:29: error: invalid regular expression: missing closing parenthesis\n"
	 "          s matches '(unclosed'\n"
	 "                              ^\n"
	 ""},
	{"template_map_dup",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:updated:issue]\n"
	 "    notify:\n"
	 "      to: \"'x'\"\n"
	 "      context: c\n"
	 "      title: \"{{ {a: 1, a: 2} }}\"\n"
	 "",
	 "rules.yml:7:25: error: duplicate key 'a' in map literal\n"
	 "        title: \"{{ {a: 1, a: 2} }}\"\n"
	 "                          ^\n"
	 ""},
	{"unknown_function_hint",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: [avi:jira:updated:issue]\n"
	 "    filter:\n"
	 "      expression: \"chnged('status')\"\n"
	 "    notify: {to: \"'x'\", context: c, title: t}\n"
	 "",
	 "rules.yml:5:20: error: unknown function 'chnged'; did you mean 'changed'?\n"
	 "        expression: \"chnged('status')\"\n"
	 "                     ^\n"
	 ""},
	{"many_errors",
	 "rules:\n"
	 "  - key: a\n"
	 "    events: []\n"
	 "    notify: {to: \"foo\", context: c, title: t, type: loud}\n"
	 "  - key: a\n"
	 "    events: [avi:jira:created:issue]\n"
	 "    notify: {to: \"'x'\", context: c, title: t, ttl: 9999999}\n"
	 "",
	 "rules.yml:3:13: error: 'events' must not be empty\n"
	 "      events: []\n"
	 "              ^\n"
	 "rules.yml:4:19: error: unknown identifier 'foo' (only 'event' is defined)\n"
	 "      notify: {to: \"foo\", context: c, title: t, type: loud}\n"
	 "                    ^\n"
	 "rules.yml:4:53: error: invalid type; expected info, success, warning or error\n"
	 "      notify: {to: \"foo\", context: c, title: t, type: loud}\n"
	 "                                                      ^\n"
	 "rules.yml:5:10: error: duplicate rule key 'a' (first used at line 2)\n"
	 "    - key: a\n"
	 "           ^\n"
	 "rules.yml:7:52: error: 'ttl' must be a whole number of seconds from 1 to 2592000\n"
	 "      notify: {to: \"'x'\", context: c, title: t, ttl: 9999999}\n"
	 "                                                     ^\n"
	 ""},
};

/* Loads yaml as "rules.yml" and renders every diagnostic. */
static char *load_and_render(const char *yaml, size_t len, struct rules_set **set_out)
{
	struct rules_diags d;
	size_t total = 1;
	rules_diags_init(&d);
	struct rules_set *set = rules_load_string("rules.yml", yaml, len, &d);
	char *all = calloc(1, 1);
	for (size_t i = 0; i < d.count; i++) {
		char *one = rules_diag_format(&d.items[i]);
		total += strlen(one);
		all = realloc(all, total);
		strcat(all, one);
		free(one);
	}
	if (set && d.errors)
		fprintf(stderr, "loaded despite %zu errors\n", d.errors);
	if (set_out)
		*set_out = set;
	else
		rules_set_unref(set);
	rules_diags_free(&d);
	return all;
}

static void test_cases(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rules_set *set = NULL;
		char *got = load_and_render(cases[i].yaml, strlen(cases[i].yaml), &set);
		if (strcmp(got, cases[i].expected) != 0)
			fprintf(stderr, "case %s:\n", cases[i].name);
		CHECK_STR_EQ(got, cases[i].expected);
		/* a file with errors never yields a set; warnings alone do */
		bool has_error = strstr(cases[i].expected, ": error: ") != NULL;
		CHECK(has_error ? set == NULL : set != NULL);
		rules_set_unref(set);
		free(got);
	}
}

static void test_too_long(void)
{
	const char *head = "rules:\n  - key: a\n    events: [avi:jira:created:issue]\n"
			   "    filter:\n      expression: \"";
	const char *tail = "true\"\n    notify: {to: \"'x'\", context: c, title: t}\n";
	size_t n = strlen(head) + 1250 * 8 + strlen(tail) + 1;
	char *yaml = malloc(n);
	strcpy(yaml, head);
	for (int i = 0; i < 1250; i++)
		strcat(yaml, "true && ");
	strcat(yaml, tail);
	char *got = load_and_render(yaml, strlen(yaml), NULL);
	CHECK(strncmp(got,
		      "rules.yml:5:20: error: expression is longer than 10000 characters "
		      "(10004)\n",
		      74) == 0);
	free(got);
	free(yaml);
}

/* Issue 17: bad inputs of every new construct are refused at load with
 * file:line:col (first line of the rendered diagnostics). */
static void test_bad_statements(void)
{
	static const struct {
		const char *expr, *first_line;
	} bad[] = {
		{"`abc ${event.x",
		 "rules.yml:5:20: error: unterminated template literal (missing '`' or '}')"},
		{"`a ${`b ${`c", "rules.yml:5:20: error: unterminated template literal (missing '`' or '}')"},
		{"throw 42",
		 "rules.yml:5:20: error: 'throw' needs a String (the error message), got a Number"},
		{"throw ['x']",
		 "rules.yml:5:20: error: 'throw' needs a String (the error message), got a List"},
		{"1 + return 2",
		 "rules.yml:5:24: error: 'return' starts a statement: it can only come first in "
		 "the expression or in a { } block (after the declarations)"},
		{"[return 1]",
		 "rules.yml:5:21: error: 'return' starts a statement: it can only come first in "
		 "the expression or in a { } block (after the declarations)"},
		{"try { 1 } catch (e) { return }",
		 "rules.yml:5:49: error: expected a value after 'return', found '}'"},
		{"if (true) { 1 } else { return 1; 2 }",
		 "rules.yml:5:53: error: unexpected '2' (expected '}': the "
		 "value of a block comes last)"},
		{"if (true) { 1 }",
		 "rules.yml:5:35: error: 'if' needs an 'else' block (every Jira expression has a value)"},
		{"try { 1 } catch e { 2 }", "rules.yml:5:36: error: expected '(' after 'catch', found 'e'"},
		{"let if = 1; 2", "rules.yml:5:24: error: 'if' cannot be used as a variable name"},
		{"1 /* open", "rules.yml:5:22: error: unterminated comment (missing '*/')"},
	};
	const char *head = "rules:\n  - key: a\n    events: [avi:jira:created:issue]\n    filter:\n"
			   "      expression: \"";
	const char *tail = "\"\n    notify: {to: \"'x'\", context: c, title: t}\n";
	char yaml[8192];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(yaml, sizeof(yaml), "%s%s%s", head, bad[i].expr, tail);
		char *got = load_and_render(yaml, strlen(yaml), NULL);
		char *nl = strchr(got, '\n');
		if (nl)
			*nl = '\0';
		CHECK_STR_EQ(got, bad[i].first_line);
		free(got);
	}
	/* 70 nested try blocks: the nesting limit, not a stack overflow */
	size_t n = (size_t)snprintf(yaml, sizeof(yaml), "%s", head);
	for (int i = 0; i < 70; i++)
		n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "try { ");
	n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "1");
	for (int i = 0; i < 70; i++)
		n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, " } catch (e) { 0 }");
	snprintf(yaml + n, sizeof(yaml) - n, "%s", tail);
	char *got = load_and_render(yaml, strlen(yaml), NULL);
	CHECK(strncmp(got, "rules.yml:5:408: error: expression nested too deeply\n", 53) == 0);
	free(got);
}

static void test_format(void)
{
	struct rules_diag d = {RULES_SEV_WARNING, "f.yml", 2, 3, "unknown event 'x'", "\tab: x"};
	char *s = rules_diag_format(&d);
	CHECK_STR_EQ(s, "f.yml:2:3: warning: unknown event 'x'\n  \tab: x\n  \t ^\n");
	free(s);
	struct rules_diag nolines = {RULES_SEV_ERROR, "f.yml", 0, 0, "cannot open", NULL};
	s = rules_diag_format(&nolines);
	CHECK_STR_EQ(s, "f.yml: error: cannot open\n");
	free(s);
	/* UTF-8 before the column counts one character each */
	struct rules_diag utf = {RULES_SEV_ERROR, "f.yml", 1, 4, "m", "éé x"};
	s = rules_diag_format(&utf);
	CHECK_STR_EQ(s, "f.yml:1:4: error: m\n  éé x\n     ^\n");
	free(s);
}

static void test_load_file(void)
{
	struct rules_diags d;
	rules_diags_init(&d);
	CHECK(rules_load_file("/nonexistent/rules.yml", &d) == NULL);
	CHECK_INT_EQ(d.errors, 1);
	if (d.count)
		CHECK_STR_EQ(d.items[0].message, "cannot open rule file: No such file or directory");
	rules_diags_free(&d);
}

int main(void)
{
	test_cases();
	test_too_long();
	test_bad_statements();
	test_format();
	test_load_file();
	return CHECK_DONE();
}
