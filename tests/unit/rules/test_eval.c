/* test_eval.c - evaluator behaviour that the case files cannot express:
 * the step limit (natural and through the scratch hook), regex limits,
 * scratch reuse across evaluations and result ownership.
 *
 * Ownership: everything allocated here is freed here. Threads: single.
 */
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "rules.h"

static struct rules_expr *compile(const char *src)
{
	struct rules_diags d;
	rules_diags_init(&d);
	struct rules_expr *e = rules_expr_compile("t", src, strlen(src), 1, 1, &d);
	if (!e && d.count)
		fprintf(stderr, "%s: %s\n", src, d.items[0].message);
	rules_diags_free(&d);
	return e;
}

/* Evaluates and returns the error (malloc'd) or NULL; *res gets the result. */
static char *eval(struct rules_scratch *s, const char *src, const json_t *event, json_t **res)
{
	struct rules_expr *e = compile(src);
	char *err = NULL;
	json_t *r = NULL;
	CHECK(e != NULL);
	if (!e)
		return strdup("no compile");
	if (rules_expr_eval(e, event, s, &r, &err) == 0)
		CHECK(err == NULL);
	if (res)
		*res = r;
	else
		json_decref(r);
	rules_expr_free(e);
	return err;
}

static void test_step_limit_natural(struct rules_scratch *s)
{
	/* `in` counts one step per element compared: a long list in the event
	 * pushes a short expression over RULES_MAX_EVAL_STEPS */
	json_t *ev = json_object(), *list = json_array();
	for (int i = 0; i < 60000; i++)
		json_array_append_new(list, json_integer(i));
	json_object_set_new(ev, "list", list);
	char *err = eval(s, "'zzz' in event.list", ev, NULL);
	CHECK_STR_EQ(err, "at column 7: expression exceeded 50000 steps");
	free(err);
	json_t *r = NULL;
	err = eval(s, "5 in event.list", ev, &r);
	CHECK(err == NULL && json_is_true(r));
	free(err);
	json_decref(r);
	json_decref(ev);
}

static void test_step_limit_hook(struct rules_scratch *s)
{
	json_t *ev = json_object(), *r = NULL;
	/* 1 + 2 + 3 + 4 visits 7 nodes */
	rules_scratch_set_max_steps(s, 7);
	char *err = eval(s, "1 + 2 + 3 + 4", ev, &r);
	CHECK(err == NULL && json_integer_value(r) == 10);
	free(err);
	json_decref(r);
	rules_scratch_set_max_steps(s, 6);
	err = eval(s, "1 + 2 + 3 + 4", ev, NULL);
	CHECK_STR_EQ(err, "at column 13: expression exceeded 6 steps");
	free(err);
	/* short-circuit saves steps: the right side is never visited */
	rules_scratch_set_max_steps(s, 3);
	err = eval(s, "false && (1 + 2 + 3 + 4 == 10)", ev, &r);
	CHECK(err == NULL && json_is_false(r));
	free(err);
	json_decref(r);
	rules_scratch_set_max_steps(s, 0); /* back to the default */
	err = eval(s, "1 + 2 + 3 + 4", ev, NULL);
	CHECK(err == NULL);
	free(err);
	json_decref(ev);
}

static void test_regex_limits(struct rules_scratch *s)
{
	json_t *ev = json_pack("{s:s}", "s", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!");
	char *err = eval(s, "event.s matches '(a+)+$'", ev, NULL);
	CHECK_STR_EQ(err, "at column 9: regex match limit exceeded");
	free(err);
	/* the same scratch keeps working after a limit was hit */
	json_t *r = NULL;
	err = eval(s, "event.s matches 'a!$'", ev, &r);
	CHECK(err == NULL && json_is_true(r));
	free(err);
	json_decref(r);
	json_decref(ev);
	/* UTF-8: '.' is one character, \w and case folding know Unicode */
	ev = json_pack("{s:s}", "s", "Ærøskøbing ΣΊΣΥΦΟΣ");
	err = eval(s, "event.s matches '^\\\\w+ \\\\w+$' && event.s matches '(?i)σίσυφος' && "
		      "'é' matches '^.$'",
		   ev, &r);
	CHECK(err == NULL && json_is_true(r));
	free(err);
	json_decref(r);
	json_decref(ev);
}

static void test_scratch_strings(struct rules_scratch *s)
{
	/* built strings live in the scratch; results are independent copies */
	json_t *ev = json_pack("{s:s}", "k", "SP-1"), *r1 = NULL, *r2 = NULL;
	char *err = eval(s, "'issue ' + event.k + '!'", ev, &r1);
	free(err);
	err = eval(s, "event.k.toLowerCase() + '?'", ev, &r2);
	free(err);
	CHECK_STR_EQ(json_string_value(r1), "issue SP-1!");
	CHECK_STR_EQ(json_string_value(r2), "sp-1?");
	json_decref(r1);
	json_decref(r2);
	/* a big concatenation chain crosses arena blocks */
	char src[9000];
	size_t n = 0, terms = 0;
	n += (size_t)snprintf(src + n, sizeof(src) - n, "event.k");
	for (; terms < 500; terms++)
		n += (size_t)snprintf(src + n, sizeof(src) - n, " + '0123456789'");
	err = eval(s, src, ev, &r1);
	CHECK(err == NULL && json_string_length(r1) == 4 + terms * 10);
	free(err);
	json_decref(r1);
	json_decref(ev);
}

int main(void)
{
	struct rules_scratch *s = rules_scratch_new();
	CHECK(s != NULL);
	test_step_limit_natural(s);
	test_step_limit_hook(s);
	test_regex_limits(s);
	test_scratch_strings(s);
	rules_scratch_free(s);
	return CHECK_DONE();
}
