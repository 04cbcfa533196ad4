/* fuzz_expr.c - libFuzzer target: one rule expression, compiled (lexer,
 * parser, checker, regex compile) and, when it compiles, evaluated against a
 * fixed Jira-like event with a lowered step limit, explained and dumped.
 *
 * Ownership: everything per input is freed before returning; the event and
 * the scratch live for the process. Threads: libFuzzer's single thread.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules_internal.h"

static json_t *event;
static struct rules_scratch *scratch;

static const char event_json[] =
	"{\"eventType\":\"avi:jira:updated:issue\",\"atlassianId\":\"u1\",\"selfGenerated\":false,"
	"\"issue\":{\"key\":\"SP-1\",\"fields\":{\"summary\":\"Hello Grüße 😀\",\"issuetype\":"
	"{\"name\":\"Bug\"},\"assignee\":null,\"labels\":[\"a\",\"b\"],\"n\":3,\"f\":1.5,"
	"\"nested\":[[1,2],[3]]}},\"changelog\":{\"items\":[{\"field\":\"status\",\"fromString\":"
	"\"To Do\",\"toString\":\"Done\"}]},\"comment\":{\"body\":\"[~accountid:x1] hi\"},"
	"\"payloadIncludeProperties\":{\"issue.properties['flags'].level\":3,"
	"\"user.properties['p']\":{\"a\":[1]}}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rules_diags d;
	struct rules_value v;

	if (!event) {
		event = json_loads(event_json, 0, NULL);
		scratch = rules_scratch_new();
		rules_scratch_set_max_steps(scratch, 5000);
	}
	rules_diags_init(&d);
	struct rules_expr *e = rules_expr_compile("fuzz", (const char *)data, size, 1, 1, &d);
	for (size_t i = 0; i < d.count; i++)
		free(rules_diag_format(&d.items[i]));
	if (e) {
		scratch->explain = size & 1;
		if (eval__run(e, event, scratch, &v) == 0) {
			json_decref(eval__to_json(&v));
			struct rules_strbuf b = {0};
			eval__render(&v, &b);
			if (scratch->explain)
				eval__explain(e, scratch, &b);
			strbuf__free(&b);
		}
		scratch->explain = false;
		free(expr__dump(e));
		rules_expr_free(e);
	}
	rules_diags_free(&d);
	return 0;
}
