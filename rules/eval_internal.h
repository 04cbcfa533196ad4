/* eval_internal.h - the evaluation context shared by value.c (values,
 * equality, errors), builtins.c (builtin methods and functions) and eval.c
 * (the evaluator).
 *
 * A struct rules_ctx lives on the stack of one eval__run call; the helpers
 * here are inline because the evaluator calls them for every node (the
 * common path allocates nothing and makes no call it can avoid).
 *
 * Ownership: a context borrows the expression, the event and the scratch;
 * values it produces borrow from the event or live in the scratch arena.
 * Threads: a context is used by the one thread that runs the evaluation.
 */
#ifndef RULES_EVAL_INTERNAL_H
#define RULES_EVAL_INTERNAL_H

#include <string.h>

#include "rules_internal.h"

enum { EV_OK = 0, EV_ERR = -1, EV_SHORT = 1 }; /* EV_SHORT: a ?. met null */

struct rules_ctx {
	const struct rules_expr *expr;
	const json_t *event;
	struct rules_scratch *s;
	unsigned long steps, max_steps;
	bool explain;
	struct rules_value vars[RULES_MAX_VARS]; /* let / arrow slots */
};

/* ---- value.c ---- */

/* Formats "at column N: message" (or "at line L, column N: ") into
 * c->s->error for node n; returns EV_ERR. */
int value__fail(struct rules_ctx *c, const struct rules_node *n, const char *fmt, ...) RULES_FMT(3, 4);
/* The error for a refused allocation: the byte limit when that was the
 * cause (status RULES_EVAL_BYTE_LIMIT), else "out of memory". */
int value__oom(struct rules_ctx *c, const struct rules_node *n);
/* Deep equality without coercion; numbers compare by value (1 == 1.0).
 * Counts a step per element. */
int value__equal(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *a,
		 const struct rules_value *b, bool *eq);
int value__list_contains(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *list,
			 const struct rules_value *x, bool *found);
/* Appends v as templates and '+' show it; null as null_text. */
void value__render(const struct rules_value *v, struct rules_strbuf *b, const char *null_text);
/* Copies b into the scratch arena as the String out and frees b; an
 * allocation failure (b->oom included) is an evaluation error. */
int value__str_from_buf(struct rules_ctx *c, const struct rules_node *n, struct rules_strbuf *b,
			struct rules_value *out);
/* JavaScript counts UTF-16 code units: 4-byte UTF-8 sequences count two. */
size_t value__utf16_length(const char *s, size_t n);

static inline int value__step(struct rules_ctx *c, const struct rules_node *n)
{
	if (++c->steps > c->max_steps) {
		value__fail(c, n, "expression exceeded %lu steps", c->max_steps);
		c->s->status = RULES_EVAL_STEP_LIMIT;
		return EV_ERR;
	}
	return EV_OK;
}

/* Scratch memory within the evaluation's byte limit; NULL when over it
 * (s->over_bytes) or out of memory: the caller reports value__oom. */
static inline char *value__scratch_alloc(struct rules_ctx *c, size_t n)
{
	struct rules_scratch *s = c->s;

	if (n > s->max_bytes - s->used_bytes) {
		s->over_bytes = true;
		return NULL;
	}
	s->used_bytes += n;
	return arena__alloc(&s->strings, n);
}

/* Bytes the evaluation may still build, as a strbuf limit (never 0, which
 * would mean "no limit"). */
static inline size_t value__bytes_left(const struct rules_ctx *c)
{
	size_t left = c->s->max_bytes - c->s->used_bytes;
	return left ? left : 1;
}

static inline struct rules_value *value__alloc_items(struct rules_ctx *c, size_t n)
{
	return (struct rules_value *)value__scratch_alloc(c, (n ? n : 1) * sizeof(struct rules_value));
}

static inline bool value__is_list(const struct rules_value *v)
{
	return v->kind == RULES_V_LIST || v->kind == RULES_V_ARR;
}

static inline size_t value__list_len(const struct rules_value *v)
{
	return v->kind == RULES_V_LIST ? v->u.list.n : json_array_size(v->json);
}

static inline void value__list_at(const struct rules_value *v, size_t i, struct rules_value *out)
{
	if (v->kind == RULES_V_LIST)
		*out = v->u.list.items[i];
	else
		eval__from_json(json_array_get(v->json, i), out);
}

static inline bool value__is_map(const struct rules_value *v)
{
	return v->kind == RULES_V_MAP || v->kind == RULES_V_OBJ;
}

static inline size_t value__map_size(const struct rules_value *v)
{
	return v->kind == RULES_V_OBJ ? v->u.obj.n : json_object_size(v->json);
}

/* Looks key up in a Map (event object or literal); false if absent. */
static inline bool value__map_get(const struct rules_value *m, const char *key, size_t len,
				  struct rules_value *out)
{
	if (m->kind == RULES_V_MAP) {
		const json_t *v = json_object_getn(m->json, key, len);
		if (!v)
			return false;
		eval__from_json(v, out);
		return true;
	}
	for (size_t i = 0; i < m->u.obj.n; i++) {
		if (m->u.obj.items[i].len == len && !memcmp(m->u.obj.items[i].key, key, len)) {
			*out = m->u.obj.items[i].v;
			return true;
		}
	}
	return false;
}

static inline void value__set_null(struct rules_value *out)
{
	memset(out, 0, sizeof(*out));
}

static inline void value__set_bool(struct rules_value *out, bool b)
{
	memset(out, 0, sizeof(*out));
	out->kind = RULES_V_BOOL;
	out->u.b = b;
}

static inline void value__set_num(struct rules_value *out, double x)
{
	memset(out, 0, sizeof(*out));
	out->kind = RULES_V_NUM;
	out->u.num = x;
}

static inline void value__set_str(struct rules_value *out, const char *s, size_t len)
{
	memset(out, 0, sizeof(*out));
	out->kind = RULES_V_STR;
	out->u.str.s = s;
	out->u.str.len = len;
}

static inline void value__set_list(struct rules_value *out, const struct rules_value *items, size_t n)
{
	memset(out, 0, sizeof(*out));
	out->kind = RULES_V_LIST;
	out->u.list.items = items;
	out->u.list.n = n;
}

/* ---- builtins.c ---- */

#define BUILTIN_MAX_ARGS 4

/* Methods taking an arrow function are run by the evaluator (they call
 * back into it); for them fn is NULL and loop says which loop. */
enum { LOOP_NONE, LOOP_SOME, LOOP_EVERY, LOOP_FILTER, LOOP_MAP };

typedef int (*builtin_fn)(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
			  const struct rules_value *args, struct rules_value *out);

struct rules_builtin {
	const char *name;
	int min_args, max_args;
	int loop; /* LOOP_*: args[0] is an arrow function, not evaluated up front */
	builtin_fn fn;
};

extern const struct rules_builtin rules__builtins[]; /* methods, ORDER RULES_BI */
extern const struct rules_builtin rules__funcs[]; /* functions, ORDER RULES_FN */

#endif
