/* test_eval.c - evaluator behaviour that the case files cannot express:
 * the step limit (natural and through the scratch hook), the scratch byte
 * limit (per evaluation, configurable, counted), regex limits,
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
	err = eval(s,
		   "event.s matches '^\\\\w+ \\\\w+$' && event.s matches '(?i)σίσυφος' && "
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

/* An event with a 100 kB string field "big". */
static json_t *big_event(void)
{
	char *big = malloc(100001);
	memset(big, 'x', 100000);
	big[100000] = '\0';
	json_t *ev = json_pack("{s:s}", "big", big);
	free(big);
	return ev;
}

static void test_byte_limit(struct rules_scratch *s)
{
	json_t *ev = big_event(), *r = NULL;
	struct rules_limit_counts counts;
	rules_scratch_take_counts(s, &counts); /* start from zero */

	/* 12 chained doublings of a 100 kB field would build 800 MB: the
	 * default limit (1 MiB per evaluation) stops the third, s3 = s2 + s2 (column 69) */
	char src[600];
	size_t n = (size_t)snprintf(src, sizeof(src), "let s0 = event.big; ");
	for (int i = 1; i <= 12; i++)
		n += (size_t)snprintf(src + n, sizeof(src) - n, "let s%d = s%d + s%d; ", i, i - 1, i - 1);
	snprintf(src + n, sizeof(src) - n, "s12.length");
	char *err = eval(s, src, ev, NULL);
	CHECK_STR_EQ(err, "at column 69: expression needs more than 1048576 bytes of scratch "
			  "memory");
	free(err);
	CHECK_INT_EQ(rules_scratch_status(s), RULES_EVAL_BYTE_LIMIT);
	rules_scratch_take_counts(s, &counts);
	CHECK_INT_EQ(counts.byte_limit, 1);
	CHECK_INT_EQ(counts.step_limit, 0);
	rules_scratch_take_counts(s, &counts);
	CHECK_INT_EQ(counts.byte_limit, 0);

	/* within the limit the same scratch works, and the limit is per evaluation */
	for (int i = 0; i < 3; i++) {
		err = eval(s, "(event.big + event.big + event.big).length", ev, &r);
		CHECK(err == NULL && json_integer_value(r) == 300000);
		free(err);
		json_decref(r);
		CHECK_INT_EQ(rules_scratch_status(s), RULES_EVAL_OK);
	}

	/* join() builds in a temporary buffer: refused at the limit too */
	err = eval(s,
		   "[event.big, event.big, event.big, event.big, event.big, event.big, "
		   "event.big, event.big, event.big, event.big, event.big].join('-')",
		   ev, NULL);
	CHECK(err && strstr(err, "needs more than 1048576 bytes"));
	free(err);
	/* '+' with a List renders it as JSON: the same */
	err = eval(s,
		   "'x' + [event.big, event.big, event.big, event.big, event.big, event.big, "
		   "event.big, event.big, event.big, event.big, event.big]",
		   ev, NULL);
	CHECK(err && strstr(err, "needs more than 1048576 bytes"));
	free(err);
	/* a result that holds one big string many times is not copied out */
	err = eval(s,
		   "[event.big, event.big, event.big, event.big, event.big, event.big, "
		   "event.big, event.big, event.big, event.big, event.big]",
		   ev, NULL);
	CHECK_STR_EQ(err, "the result needs more than 1048576 bytes");
	free(err);
	rules_scratch_take_counts(s, &counts);
	CHECK_INT_EQ(counts.byte_limit, 3);

	/* the limit is configurable */
	rules_scratch_set_max_bytes(s, 150000);
	err = eval(s, "(event.big + event.big).length", ev, NULL);
	CHECK(err && strstr(err, "needs more than 150000 bytes"));
	free(err);
	rules_scratch_set_max_bytes(s, 16u << 20);
	err = eval(s, "let a = event.big + event.big; let b = a + a; let c = b + b; c.length", ev, &r);
	CHECK(err == NULL && json_integer_value(r) == 800000);
	free(err);
	json_decref(r);
	rules_scratch_set_max_bytes(s, 0); /* back to the default */
	err = eval(s, "let a = event.big + event.big; let b = a + a; let c = b + b; c.length", ev, NULL);
	CHECK(err && strstr(err, "needs more than 1048576 bytes"));
	free(err);

	/* a step-limit stop is told apart */
	rules_scratch_set_max_steps(s, 3);
	err = eval(s, "1 + 2 + 3 + 4", ev, NULL);
	free(err);
	CHECK_INT_EQ(rules_scratch_status(s), RULES_EVAL_STEP_LIMIT);
	rules_scratch_set_max_steps(s, 0);
	rules_scratch_take_counts(s, &counts);
	CHECK_INT_EQ(counts.step_limit, 1);
	CHECK_INT_EQ(counts.byte_limit, 2);
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
	test_byte_limit(s);
	rules_scratch_free(s);
	return CHECK_DONE();
}
