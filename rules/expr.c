/* expr.c - the public API for single expressions (compile, evaluate,
 * free) and the per-thread evaluation scratch (include/rules.h).
 *
 * Ownership: a struct rules_expr compiled here owns its arena (freed by
 * rules_expr_free); a scratch owns its PCRE2 match data and string arena.
 * Threads: a scratch belongs to one thread at a time; compiled expressions
 * are immutable and shared freely.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_internal.h"

struct rules_scratch *rules_scratch_new(void)
{
	struct rules_scratch *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	/* one ovector pair is enough: only "did it match" is used */
	s->match_data = pcre2_match_data_create(1, NULL);
	if (!s->match_data) {
		free(s);
		return NULL;
	}
	arena__init(&s->strings);
	s->max_steps = RULES_MAX_EVAL_STEPS;
	s->max_bytes = RULES_MAX_SCRATCH_BYTES;
	return s;
}

void rules_scratch_free(struct rules_scratch *s)
{
	if (!s)
		return;
	pcre2_match_data_free(s->match_data);
	json_decref(s->runtime);
	arena__free(&s->strings);
	free(s);
}

void rules_scratch_set_max_steps(struct rules_scratch *s, unsigned long max_steps)
{
	s->max_steps = max_steps ? max_steps : RULES_MAX_EVAL_STEPS;
}

void rules_scratch_set_max_bytes(struct rules_scratch *s, size_t max_bytes)
{
	s->max_bytes = max_bytes ? max_bytes : RULES_MAX_SCRATCH_BYTES;
}

enum rules_eval_status rules_scratch_status(const struct rules_scratch *s)
{
	return s->status;
}

void rules_scratch_take_counts(struct rules_scratch *s, struct rules_limit_counts *out)
{
	*out = s->counts;
	memset(&s->counts, 0, sizeof(s->counts));
}

struct rules_expr *rules_expr_compile(const char *name, const char *src, size_t len, int line_base,
				      int col_base, struct rules_diags *diags)
{
	struct rules_arena *a = malloc(sizeof(*a));
	struct rules_linemap lm;
	struct rules_expr *e = NULL;

	if (!a)
		return NULL;
	arena__init(a);
	if (linemap__init(&lm, src, len) < 0) {
		free(a);
		return NULL;
	}
	struct rules_srcmap map = {
		.file = name,
		.lm = &lm,
		.line_base = line_base,
		.col_base = col_base,
	};
	e = expr__compile(a, src, len, &map, diags);
	linemap__free(&lm);
	if (!e) {
		arena__free(a);
		free(a);
		return NULL;
	}
	e->owned = a;
	return e;
}

void rules_expr_free(struct rules_expr *e)
{
	if (!e || !e->owned)
		return;
	struct rules_arena *a = e->owned; /* e itself lives in the arena */
	arena__free(a);
	free(a);
}

int rules_expr_eval(const struct rules_expr *e, const json_t *event, struct rules_scratch *scratch,
		    json_t **result, char **error)
{
	struct rules_value v;

	*result = NULL;
	if (error)
		*error = NULL;
	if (eval__run(e, event, scratch, &v) < 0) {
		if (error)
			*error = strdup(scratch->error);
		return -1;
	}
	if (!eval__fits(&v, scratch->max_bytes)) {
		scratch->status = RULES_EVAL_BYTE_LIMIT;
		eval__count(scratch);
		if (error && asprintf(error, "the result needs more than %zu bytes", scratch->max_bytes) < 0)
			*error = NULL;
		return -1;
	}
	*result = eval__to_json(&v);
	if (!*result) {
		if (error)
			*error = strdup("out of memory");
		return -1;
	}
	return 0;
}
