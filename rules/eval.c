/* eval.c - the expression evaluator, and the explanation of what decided
 * an evaluation (rules test).
 *
 * The common path (paths, comparisons, boolean logic, regex matches)
 * allocates nothing. Strings built by '+', toLowerCase() etc. and list
 * literals are carved from the scratch arena, which is reset at the start of
 * every evaluation.
 *
 * Every node visit (and every element compared by ==, `in` and includes())
 * counts one step; going over scratch->max_steps (RULES_MAX_EVAL_STEPS by
 * default) is an evaluation error.
 *
 * Ownership: the evaluator never takes ownership of anything it is given.
 * Threads: no global state; one scratch per thread, compiled expressions and
 * events are read concurrently.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval_internal.h"

static int ev(struct rules_ctx *c, const struct rules_node *n, struct rules_value *out);

/* ---- methods that take an arrow function ---- */

/* Calls the arrow function fn with its parameter bound to arg. */
static int apply(struct rules_ctx *c, const struct rules_node *fn, const struct rules_value *arg,
		 struct rules_value *out)
{
	c->vars[fn->u.bind.slot] = *arg;
	int r = ev(c, fn->u.bind.body, out);
	if (r == EV_SHORT) { /* cannot happen: the body closes its chains */
		memset(out, 0, sizeof(*out));
		r = EV_OK;
	}
	return r;
}

static int apply_bool(struct rules_ctx *c, const struct rules_node *n, const struct rules_node *fn,
		      const struct rules_value *arg, bool *b)
{
	struct rules_value v;

	if (apply(c, fn, arg, &v) < 0)
		return EV_ERR;
	if (v.kind != RULES_V_BOOL)
		return value__fail(c, n, "the function passed to %s() must return a Boolean, got %s",
				   n->u.m.name, eval__type_name(&v));
	*b = v.u.b;
	return EV_OK;
}

/* some / every / filter / map share one loop. */

static int list_loop(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
		     struct rules_value *out, int mode)
{
	const struct rules_node *fn = n->u.m.args[0];
	struct rules_value item, *items = NULL;
	size_t len, k = 0;
	bool b = false;

	if (!value__is_list(recv))
		return value__fail(c, n, "%s() is not a method of %s", n->u.m.name, eval__type_name(recv));
	len = value__list_len(recv);
	if ((mode == LOOP_FILTER || mode == LOOP_MAP) && !(items = value__alloc_items(c, len)))
		return value__oom(c, n);
	for (size_t i = 0; i < len; i++) {
		value__list_at(recv, i, &item);
		if (mode == LOOP_MAP) {
			if (apply(c, fn, &item, &items[i]) < 0)
				return EV_ERR;
			continue;
		}
		if (apply_bool(c, n, fn, &item, &b) < 0)
			return EV_ERR;
		if (mode == LOOP_SOME && b) {
			value__set_bool(out, true);
			return EV_OK;
		}
		if (mode == LOOP_EVERY && !b) {
			value__set_bool(out, false);
			return EV_OK;
		}
		if (mode == LOOP_FILTER && b)
			items[k++] = item;
	}
	if (mode == LOOP_SOME || mode == LOOP_EVERY)
		value__set_bool(out, mode == LOOP_EVERY);
	else
		value__set_list(out, items, mode == LOOP_MAP ? len : k);
	return EV_OK;
}

/* ---- evaluation ---- */

/* A ?. met null somewhere inside this chain: the chain's outermost node
 * turns that into null, inner nodes pass it on. */
static int short_circuit(const struct rules_node *n, struct rules_value *out)
{
	if (!n->chain_end)
		return EV_SHORT;
	memset(out, 0, sizeof(*out));
	return EV_OK;
}

/* event.runtime when the event has no "runtime": the properties Forge
 * added (runtime.c), built once per evaluation and kept in the scratch
 * until the next one, since the result may point into it. */
static int ev_runtime(struct rules_ctx *c, const struct rules_node *n, struct rules_value *out)
{
	struct rules_scratch *s = c->s;

	if (!s->runtime && !(s->runtime = runtime__build(c->event)))
		return value__oom(c, n);
	eval__from_json(s->runtime, out);
	return EV_OK;
}

static int ev_member(struct rules_ctx *c, const struct rules_node *n, struct rules_value *out)
{
	struct rules_value obj;
	int r = ev(c, n->u.m.obj, &obj);

	if (r == EV_SHORT)
		return short_circuit(n, out);
	if (r < 0)
		return r;
	if (obj.kind == RULES_V_NULL) {
		if (n->optional)
			return short_circuit(n, out);
		if (n->lenient) {
			value__set_null(out);
			return EV_OK;
		}
		return value__fail(c, n, "cannot read property '%s' of null", n->u.m.name);
	}
	if (value__is_map(&obj)) {
		if (value__map_get(&obj, n->u.m.name, n->u.m.name_len, out))
			return EV_OK;
		if (n->runtime && obj.json == c->event)
			return ev_runtime(c, n, out);
		if (n->optional || n->lenient) {
			value__set_null(out);
			return EV_OK;
		}
		return value__fail(c, n, "property '%s' is not defined", n->u.m.name);
	}
	if (strcmp(n->u.m.name, "length") == 0) {
		if (obj.kind == RULES_V_STR) {
			value__set_num(out, (double)value__utf16_length(obj.u.str.s, obj.u.str.len));
			return EV_OK;
		}
		if (value__is_list(&obj)) {
			value__set_num(out, (double)value__list_len(&obj));
			return EV_OK;
		}
	}
	if (n->optional || n->lenient) {
		value__set_null(out);
		return EV_OK;
	}
	return value__fail(c, n, "%s has no property '%s'", eval__type_name(&obj), n->u.m.name);
}

static int ev_index(struct rules_ctx *c, const struct rules_node *n, struct rules_value *out)
{
	struct rules_value obj, ix;
	int r = ev(c, n->u.m.obj, &obj);

	if (r == EV_SHORT)
		return short_circuit(n, out);
	if (r < 0)
		return r;
	if (obj.kind == RULES_V_NULL && n->optional)
		return short_circuit(n, out);
	if ((r = ev(c, n->u.m.index, &ix)) != EV_OK)
		return r;
	if (n->lenient &&
	    (obj.kind == RULES_V_NULL || (value__is_map(&obj) && ix.kind == RULES_V_STR &&
					  !value__map_get(&obj, ix.u.str.s, ix.u.str.len, out)))) {
		value__set_null(out);
		return EV_OK;
	}
	if (obj.kind == RULES_V_NULL)
		return value__fail(c, n, "cannot index null");
	if (value__is_map(&obj)) {
		if (ix.kind != RULES_V_STR)
			return value__fail(c, n, "a Map is indexed by a String, got %s",
					   eval__type_name(&ix));
		if (value__map_get(&obj, ix.u.str.s, ix.u.str.len, out))
			return EV_OK;
		if (n->optional) {
			value__set_null(out);
			return EV_OK;
		}
		return value__fail(c, n, "property '%.*s' is not defined", (int)ix.u.str.len, ix.u.str.s);
	}
	if (value__is_list(&obj)) {
		if (ix.kind != RULES_V_NUM)
			return value__fail(c, n, "a List is indexed by a Number, got %s",
					   eval__type_name(&ix));
		if (ix.u.num != floor(ix.u.num))
			return value__fail(c, n, "list index must be an integer, got %g", ix.u.num);
		if (ix.u.num < 0)
			return value__fail(c, n, "negative list index %.0f", ix.u.num);
		size_t len = value__list_len(&obj);
		if (ix.u.num >= (double)len) {
			if (n->optional) {
				value__set_null(out);
				return EV_OK;
			}
			return value__fail(c, n, "list index %.0f is out of range (length %zu)", ix.u.num,
					   len);
		}
		value__list_at(&obj, (size_t)ix.u.num, out);
		return EV_OK;
	}
	return value__fail(c, n, "cannot index a %s", eval__type_name(&obj));
}

static int ev_call(struct rules_ctx *c, const struct rules_node *n, struct rules_value *out)
{
	struct rules_value recv, args[BUILTIN_MAX_ARGS];
	int r = ev(c, n->u.m.obj, &recv);

	if (r == EV_SHORT)
		return short_circuit(n, out);
	if (r < 0)
		return r;
	if (recv.kind == RULES_V_NULL) {
		if (n->optional)
			return short_circuit(n, out);
		return value__fail(c, n, "cannot call %s() on null", n->u.m.name);
	}
	if (n->u.m.builtin < 0 || n->u.m.nargs > BUILTIN_MAX_ARGS)
		return value__fail(c, n, "unknown method '%s'", n->u.m.name);
	const struct rules_builtin *bi = &rules__builtins[n->u.m.builtin];
	if (bi->loop != LOOP_NONE)
		return list_loop(c, n, &recv, out, bi->loop);
	for (size_t i = 0; i < n->u.m.nargs; i++)
		if ((r = ev(c, n->u.m.args[i], &args[i])) != EV_OK)
			return r;
	return bi->fn(c, n, &recv, args, out);
}

static int ev_func(struct rules_ctx *c, const struct rules_node *n, struct rules_value *out)
{
	struct rules_value args[BUILTIN_MAX_ARGS];
	int r;

	if (n->u.m.builtin < 0 || n->u.m.nargs > BUILTIN_MAX_ARGS)
		return value__fail(c, n, "unknown function '%s'", n->u.m.name);
	for (size_t i = 0; i < n->u.m.nargs; i++)
		if ((r = ev(c, n->u.m.args[i], &args[i])) != EV_OK)
			return r;
	return rules__funcs[n->u.m.builtin].fn(c, n, NULL, args, out);
}

static int ev_map(struct rules_ctx *c, const struct rules_node *n, struct rules_value *out)
{
	struct rules_kv *items = NULL;
	int r;

	if (n->u.map.n && !(items = (struct rules_kv *)value__scratch_alloc(c, n->u.map.n * sizeof(*items))))
		return value__oom(c, n);
	for (size_t i = 0; i < n->u.map.n; i++) {
		items[i].key = n->u.map.keys[i];
		items[i].len = n->u.map.key_lens[i];
		if ((r = ev(c, n->u.map.values[i], &items[i].v)) != EV_OK)
			return r;
	}
	memset(out, 0, sizeof(*out));
	out->kind = RULES_V_OBJ;
	out->u.obj.items = items;
	out->u.obj.n = n->u.map.n;
	return EV_OK;
}

/* rules test: remembers which sub-expression decided a logical operator.
 * A logical child already recorded its own decider; keep that one. */
static void decided_by(struct rules_ctx *c, const struct rules_node *child)
{
	struct rules_explain *ex = &c->s->ex;

	if (!c->explain)
		return;
	switch ((enum rules_node_kind)child->kind) {
	case RULES_N_AND:
	case RULES_N_OR:
	case RULES_N_COND:
	case RULES_N_LET:
	case RULES_N_COALESCE:
	case RULES_N_IF:
	case RULES_N_TRY: return;
	case RULES_N_UNARY:
		if (child->op == RULES_T_NOT)
			return;
		break;
	default: break;
	}
	ex->node = child;
	ex->has_operands = ex->bin == child;
}

static void remember_operands(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *a,
			      const struct rules_value *b)
{
	if (!c->explain)
		return;
	c->s->ex.bin = n;
	c->s->ex.a = *a;
	c->s->ex.b = *b;
}

static const char *op_text(const struct rules_node *n)
{
	if (n->op == RULES_T_IDENT)
		return "'in'";
	return lexer__token_name((enum rules_tok)n->op);
}

static int arith(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *a,
		 const struct rules_value *b, struct rules_value *out)
{
	double x, y, r;

	if (a->kind != RULES_V_NUM || b->kind != RULES_V_NUM)
		return value__fail(c, n, "cannot apply %s to %s and %s", op_text(n), eval__type_name(a),
				   eval__type_name(b));
	x = a->u.num;
	y = b->u.num;
	switch (n->op) {
	case RULES_T_PLUS: r = x + y; break;
	case RULES_T_MINUS: r = x - y; break;
	case RULES_T_STAR: r = x * y; break;
	case RULES_T_SLASH:
		if (y == 0)
			return value__fail(c, n, "division by zero");
		r = x / y;
		break;
	default: /* RULES_T_PERCENT */
		if (y == 0)
			return value__fail(c, n, "division by zero");
		r = fmod(x, y);
		break;
	}
	if (!isfinite(r))
		return value__fail(c, n, "numeric overflow");
	value__set_num(out, r);
	return EV_OK;
}

static int concat(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *a,
		  const struct rules_value *b, struct rules_value *out)
{
	struct rules_strbuf tmp = {.limit = value__bytes_left(c)};
	const struct rules_value *parts[2] = {a, b};
	size_t len = 0;

	/* fast path: two strings need no intermediate buffer */
	if (a->kind == RULES_V_STR && b->kind == RULES_V_STR) {
		struct rules_scratch *s = c->s;
		len = a->u.str.len + b->u.str.len;
		char *d;
		/* a + b + c ...: the left side is the string the previous '+'
		 * built, still the arena's last allocation: grow it in place, so
		 * a chain costs its length, not the sum of its prefixes. Views of
		 * the shorter string stay valid (strings carry their length). */
		if (a->u.str.s == s->top_str && a->u.str.len == s->top_len &&
		    b->u.str.len <= s->max_bytes - s->used_bytes &&
		    arena__extend(&s->strings, (char *)a->u.str.s, a->u.str.len + 1, len + 1)) {
			s->used_bytes += b->u.str.len;
			d = (char *)a->u.str.s;
			memmove(d + a->u.str.len, b->u.str.s, b->u.str.len);
			d[len] = '\0';
		} else {
			d = value__scratch_alloc(c, len + 1);
			if (!d)
				return value__oom(c, n);
			memcpy(d, a->u.str.s, a->u.str.len);
			memcpy(d + a->u.str.len, b->u.str.s, b->u.str.len);
		}
		s->top_str = d;
		s->top_len = len;
		value__set_str(out, d, len);
		return EV_OK;
	}
	for (int i = 0; i < 2; i++)
		value__render(parts[i], &tmp, "null");
	return value__str_from_buf(c, n, &tmp, out);
}

static int compare(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *a,
		   const struct rules_value *b, struct rules_value *out)
{
	int cmp;

	if (a->kind == RULES_V_NUM && b->kind == RULES_V_NUM) {
		cmp = a->u.num < b->u.num ? -1 : a->u.num > b->u.num ? 1 : 0;
	} else if (a->kind == RULES_V_STR && b->kind == RULES_V_STR) {
		size_t k = a->u.str.len < b->u.str.len ? a->u.str.len : b->u.str.len;
		cmp = memcmp(a->u.str.s, b->u.str.s, k);
		if (cmp == 0)
			cmp = a->u.str.len < b->u.str.len ? -1 : a->u.str.len > b->u.str.len ? 1 : 0;
	} else {
		return value__fail(c, n, "cannot compare %s with %s using %s", eval__type_name(a),
				   eval__type_name(b), op_text(n));
	}
	switch (n->op) {
	case RULES_T_LT: value__set_bool(out, cmp < 0); break;
	case RULES_T_LE: value__set_bool(out, cmp <= 0); break;
	case RULES_T_GT: value__set_bool(out, cmp > 0); break;
	default: value__set_bool(out, cmp >= 0); break;
	}
	return EV_OK;
}

static int ev_binary(struct rules_ctx *c, const struct rules_node *n, struct rules_value *out)
{
	struct rules_value a, b;
	int r;
	bool eq = false;

	if ((r = ev(c, n->u.ops.a, &a)) != EV_OK || (r = ev(c, n->u.ops.b, &b)) != EV_OK)
		return r;
	remember_operands(c, n, &a, &b);
	switch (n->op) {
	case RULES_T_PLUS:
		if (a.kind == RULES_V_STR || b.kind == RULES_V_STR)
			return concat(c, n, &a, &b, out);
		return arith(c, n, &a, &b, out);
	case RULES_T_MINUS:
	case RULES_T_STAR:
	case RULES_T_SLASH:
	case RULES_T_PERCENT: return arith(c, n, &a, &b, out);
	case RULES_T_LT:
	case RULES_T_LE:
	case RULES_T_GT:
	case RULES_T_GE: return compare(c, n, &a, &b, out);
	case RULES_T_EQ:
	case RULES_T_NE:
		if (value__equal(c, n, &a, &b, &eq) < 0)
			return EV_ERR;
		value__set_bool(out, n->op == RULES_T_EQ ? eq : !eq);
		return EV_OK;
	case RULES_T_IDENT: /* in */
		if (value__is_list(&b)) {
			if (value__list_contains(c, n, &b, &a, &eq) < 0)
				return EV_ERR;
			value__set_bool(out, eq);
			return EV_OK;
		}
		if (value__is_map(&b)) {
			struct rules_value ignored;
			if (a.kind != RULES_V_STR)
				return value__fail(c, n, "'in' on a Map needs a String key, got %s",
						   eval__type_name(&a));
			value__set_bool(out, value__map_get(&b, a.u.str.s, a.u.str.len, &ignored));
			return EV_OK;
		}
		return value__fail(c, n, "the right side of 'in' must be a List or a Map, got %s",
				   eval__type_name(&b));
	}
	return value__fail(c, n, "unknown operator");
}

/* JavaScript's truthiness, for && and ||: false, null, 0, NaN and '' are
 * falsy; everything else (lists and maps too, even empty) is truthy. */
static bool truthy(const struct rules_value *v)
{
	switch (v->kind) {
	case RULES_V_NULL: return false;
	case RULES_V_BOOL: return v->u.b;
	case RULES_V_NUM: return v->u.num != 0 && v->u.num == v->u.num;
	case RULES_V_STR: return v->u.str.len != 0;
	default: return true;
	}
}

/* `a${x}b`: the parts rendered as '+' renders them (null as "null"). */
static int ev_template(struct rules_ctx *c, const struct rules_node *n, struct rules_value *out)
{
	struct rules_strbuf tmp = {.limit = value__bytes_left(c)};
	struct rules_value part;
	int r;

	strbuf__append(&tmp, "", 0);
	for (size_t i = 0; i < n->u.list.n && !tmp.oom; i++) {
		if ((r = ev(c, n->u.list.items[i], &part)) != EV_OK) {
			strbuf__free(&tmp);
			return r;
		}
		value__render(&part, &tmp, "null");
	}
	return value__str_from_buf(c, n, &tmp, out);
}

/* try { value } catch (e) { body }: an evaluation error in value (a type
 * error, a missing property, a throw; not a limit) runs body with e bound
 * to {message: String, location: "line:column"}. */
static int ev_try(struct rules_ctx *c, const struct rules_node *n, struct rules_value *out)
{
	struct rules_scratch *s = c->s;
	int r = ev(c, n->u.bind.value, out);

	if (r != EV_ERR || s->status != RULES_EVAL_ERROR) {
		if (r == EV_OK)
			decided_by(c, n->u.bind.value);
		return r;
	}
	if (n->u.bind.name) {
		struct rules_kv *kv = (struct rules_kv *)value__scratch_alloc(c, 2 * sizeof(*kv));
		const char *msg = s->error + s->err_msg_at;
		size_t msg_len = strlen(msg);
		char loc[32];
		int loc_len = snprintf(loc, sizeof(loc), "%d:%d", s->err_line, s->err_col);
		char *text = kv ? value__scratch_alloc(c, msg_len + (size_t)loc_len + 2) : NULL;
		if (!text)
			return value__oom(c, n);
		memcpy(text, msg, msg_len + 1);
		memcpy(text + msg_len + 1, loc, (size_t)loc_len + 1);
		kv[0].key = "message";
		kv[0].len = 7;
		value__set_str(&kv[0].v, text, msg_len);
		kv[1].key = "location";
		kv[1].len = 8;
		value__set_str(&kv[1].v, text + msg_len + 1, (size_t)loc_len);
		memset(&c->vars[n->u.bind.slot], 0, sizeof(c->vars[0]));
		c->vars[n->u.bind.slot].kind = RULES_V_OBJ;
		c->vars[n->u.bind.slot].u.obj.items = kv;
		c->vars[n->u.bind.slot].u.obj.n = 2;
	}
	s->status = RULES_EVAL_OK;
	s->error[0] = '\0';
	r = ev(c, n->u.bind.body, out);
	decided_by(c, n->u.bind.body);
	return r;
}

static int ev_matches(struct rules_ctx *c, const struct rules_node *n, struct rules_value *out)
{
	struct rules_value subject;
	int r = ev(c, n->u.match.subject, &subject);
	const struct rules_regex *re = n->u.match.re;

	if (r != EV_OK)
		return r;
	if (c->explain) {
		struct rules_value pat;
		value__set_str(&pat, n->u.match.pattern->u.str.s, n->u.match.pattern->u.str.len);
		remember_operands(c, n, &subject, &pat);
	}
	if (subject.kind != RULES_V_STR)
		return value__fail(c, n, "'matches' expects a String on its left, got %s",
				   eval__type_name(&subject));
	if (!re)
		return value__fail(c, n, "regular expression was not compiled");
	r = pcre2_match(re->code, (PCRE2_SPTR)subject.u.str.s, subject.u.str.len, 0, 0, c->s->match_data,
			re->mctx);
	if (r >= 0) {
		value__set_bool(out, true);
		return EV_OK;
	}
	if (r == PCRE2_ERROR_NOMATCH) {
		value__set_bool(out, false);
		return EV_OK;
	}
	if (r == PCRE2_ERROR_MATCHLIMIT || r == PCRE2_ERROR_DEPTHLIMIT || r == PCRE2_ERROR_HEAPLIMIT ||
	    r == PCRE2_ERROR_JIT_STACKLIMIT)
		return value__fail(c, n, "regex match limit exceeded");
	PCRE2_UCHAR msg[160];
	if (pcre2_get_error_message(r, msg, sizeof(msg)) < 0)
		snprintf((char *)msg, sizeof(msg), "error %d", r);
	return value__fail(c, n, "regex match failed: %s", (const char *)msg);
}

static int ev(struct rules_ctx *c, const struct rules_node *n, struct rules_value *out)
{
	int r;

	if (value__step(c, n) < 0)
		return EV_ERR;
	switch ((enum rules_node_kind)n->kind) {
	case RULES_N_NULL: value__set_null(out); return EV_OK;
	case RULES_N_BOOL: value__set_bool(out, n->u.b); return EV_OK;
	case RULES_N_NUM: value__set_num(out, n->u.num); return EV_OK;
	case RULES_N_STR: value__set_str(out, n->u.str.s, n->u.str.len); return EV_OK;
	case RULES_N_LIST: {
		struct rules_value *items = NULL;
		if (n->u.list.n) {
			items = (struct rules_value *)value__scratch_alloc(c, n->u.list.n * sizeof(*items));
			if (!items)
				return value__oom(c, n);
		}
		for (size_t i = 0; i < n->u.list.n; i++)
			if ((r = ev(c, n->u.list.items[i], &items[i])) != EV_OK)
				return r;
		memset(out, 0, sizeof(*out));
		out->kind = RULES_V_LIST;
		out->u.list.items = items;
		out->u.list.n = n->u.list.n;
		return EV_OK;
	}
	case RULES_N_IDENT: eval__from_json(c->event, out); return EV_OK;
	case RULES_N_MEMBER: return ev_member(c, n, out);
	case RULES_N_INDEX: return ev_index(c, n, out);
	case RULES_N_CALL: return ev_call(c, n, out);
	case RULES_N_FUNC: return ev_func(c, n, out);
	case RULES_N_MAP: return ev_map(c, n, out);
	case RULES_N_VAR: *out = c->vars[n->u.bind.slot]; return EV_OK;
	case RULES_N_LET:
		if ((r = ev(c, n->u.bind.value, &c->vars[n->u.bind.slot])) != EV_OK)
			return r;
		r = ev(c, n->u.bind.body, out);
		decided_by(c, n->u.bind.body);
		return r;
	case RULES_N_ARROW: return value__fail(c, n, "an arrow function is not a value");
	case RULES_N_UNARY: {
		struct rules_value a;
		if ((r = ev(c, n->u.ops.a, &a)) != EV_OK)
			return r;
		if (n->op == RULES_T_NOT) {
			if (a.kind != RULES_V_BOOL)
				return value__fail(c, n, "'!' expects a Boolean, got %s",
						   eval__type_name(&a));
			decided_by(c, n->u.ops.a);
			value__set_bool(out, !a.u.b);
		} else {
			if (a.kind != RULES_V_NUM)
				return value__fail(c, n, "unary '-' expects a Number, got %s",
						   eval__type_name(&a));
			value__set_num(out, -a.u.num);
		}
		return EV_OK;
	}
	case RULES_N_BINARY: return ev_binary(c, n, out);
	case RULES_N_AND:
	case RULES_N_OR:
	case RULES_N_COALESCE:
		/* Like JavaScript, the operand that decides is the value: a && b
		 * is a if a is falsy, else b; a || b is a if a is truthy, else
		 * b; a ?? b is a unless a is null. Later operands are not
		 * evaluated (nor checked). */
		for (size_t i = 0; i < n->u.list.n; i++) {
			const struct rules_node *x = n->u.list.items[i];
			if ((r = ev(c, x, out)) != EV_OK)
				return r;
			bool last = i + 1 == n->u.list.n;
			bool stop = n->kind == RULES_N_COALESCE ? out->kind != RULES_V_NULL
				    : n->kind == RULES_N_OR	? truthy(out)
								: !truthy(out);
			if (stop || last) {
				decided_by(c, x);
				return EV_OK;
			}
		}
		return EV_OK;
	case RULES_N_TYPEOF: {
		struct rules_value a;
		if ((r = ev(c, n->u.ops.a, &a)) != EV_OK)
			return r;
		const char *name = eval__type_name(&a);
		value__set_str(out, name, strlen(name));
		return EV_OK;
	}
	case RULES_N_TEMPLATE: return ev_template(c, n, out);
	case RULES_N_IF: {
		struct rules_value cond;
		const struct rules_node *branch = n;
		/* else-if chains are walked here, not by recursion */
		while (branch->kind == RULES_N_IF) {
			if (value__step(c, branch) < 0 || (r = ev(c, branch->u.ops.a, &cond)) != EV_OK)
				return r < 0 ? EV_ERR : r;
			if (cond.kind != RULES_V_BOOL)
				return value__fail(c, branch->u.ops.a,
						   "the condition of 'if' must be a Boolean, got %s",
						   eval__type_name(&cond));
			branch = cond.u.b ? branch->u.ops.b : branch->u.ops.c;
			if (cond.u.b)
				break;
		}
		r = ev(c, branch, out);
		decided_by(c, branch);
		return r;
	}
	case RULES_N_TRY: return ev_try(c, n, out);
	case RULES_N_THROW: {
		struct rules_value a;
		if ((r = ev(c, n->u.ops.a, &a)) != EV_OK)
			return r;
		if (a.kind != RULES_V_STR)
			return value__fail(c, n, "'throw' needs a String, got %s", eval__type_name(&a));
		return value__fail(c, n, "%.*s", (int)(a.u.str.len > 250 ? 250 : a.u.str.len), a.u.str.s);
	}
	case RULES_N_COND: {
		struct rules_value cond;
		if ((r = ev(c, n->u.ops.a, &cond)) != EV_OK)
			return r;
		if (cond.kind != RULES_V_BOOL)
			return value__fail(c, n, "the condition of '?:' must be a Boolean, got %s",
					   eval__type_name(&cond));
		r = ev(c, cond.u.b ? n->u.ops.b : n->u.ops.c, out);
		decided_by(c, cond.u.b ? n->u.ops.b : n->u.ops.c);
		return r;
	}
	case RULES_N_MATCHES: return ev_matches(c, n, out);
	case RULES_N__COUNT: break;
	}
	return value__fail(c, n, "internal error: unknown node");
}

int eval__run(const struct rules_expr *e, const json_t *event, struct rules_scratch *s,
	      struct rules_value *out)
{
	struct rules_ctx c;

	c.expr = e;
	c.event = event;
	c.s = s;
	c.steps = 0;
	c.max_steps = s->max_steps;
	c.explain = s->explain;
	arena__reset(&s->strings);
	s->used_bytes = 0;
	s->over_bytes = false;
	s->top_str = NULL;
	if (s->runtime) {
		json_decref(s->runtime);
		s->runtime = NULL;
	}
	s->status = RULES_EVAL_OK;
	s->error[0] = '\0';
	if (c.explain)
		memset(&s->ex, 0, sizeof(s->ex));
	int r = ev(&c, e->root, out);
	if (r == EV_SHORT) /* cannot happen: the root closes every chain */
		value__set_null(out);
	if (c.explain) {
		decided_by(&c, e->root);
		s->ex.steps = c.steps;
	}
	if (r < 0)
		eval__count(s);
	return r < 0 ? -1 : 0;
}

void eval__error_where(const struct rules_expr *e, const struct rules_scratch *s, struct rules_strbuf *b)
{
	size_t line = 0, start = 0;

	if (!e->file || !e->loc || s->err_at > e->len) {
		strbuf__append(b, s->error, strlen(s->error));
		return;
	}
	for (size_t i = 0; i < s->err_at; i++)
		if (e->src[i] == '\n') {
			line++;
			start = i + 1;
		}
	int col = e->loc[2 * line + 1];
	for (size_t i = start; i < s->err_at; i++)
		col += ((unsigned char)e->src[i] & 0xC0) != 0x80;
	strbuf__printf(b, "%s:%d:%d: %s", e->file, e->loc[2 * line], col, s->error + s->err_msg_at);
}

/* The source range of a subtree: node ranges point at operators and names,
 * so take the union over the children. */
static void node_extent(const struct rules_node *n, uint32_t *lo, uint32_t *hi)
{
	if (!n)
		return;
	if (n->start < *lo)
		*lo = n->start;
	if (n->end > *hi)
		*hi = n->end;
	switch ((enum rules_node_kind)n->kind) {
	case RULES_N_LIST:
	case RULES_N_AND:
	case RULES_N_OR:
	case RULES_N_COALESCE:
	case RULES_N_TEMPLATE:
		for (size_t i = 0; i < n->u.list.n; i++)
			node_extent(n->u.list.items[i], lo, hi);
		break;
	case RULES_N_MAP:
		for (size_t i = 0; i < n->u.map.n; i++)
			node_extent(n->u.map.values[i], lo, hi);
		break;
	case RULES_N_MEMBER:
	case RULES_N_INDEX:
	case RULES_N_CALL:
	case RULES_N_FUNC:
		node_extent(n->u.m.obj, lo, hi);
		node_extent(n->u.m.index, lo, hi);
		for (size_t i = 0; i < n->u.m.nargs; i++)
			node_extent(n->u.m.args[i], lo, hi);
		break;
	case RULES_N_UNARY:
	case RULES_N_BINARY:
	case RULES_N_COND:
	case RULES_N_TYPEOF:
	case RULES_N_THROW:
	case RULES_N_IF:
		node_extent(n->u.ops.a, lo, hi);
		node_extent(n->u.ops.b, lo, hi);
		node_extent(n->u.ops.c, lo, hi);
		break;
	case RULES_N_MATCHES:
		node_extent(n->u.match.subject, lo, hi);
		node_extent(n->u.match.pattern, lo, hi);
		break;
	case RULES_N_LET:
	case RULES_N_ARROW:
	case RULES_N_TRY:
		node_extent(n->u.bind.value, lo, hi);
		node_extent(n->u.bind.body, lo, hi);
		break;
	default: break;
	}
}

static void render_json(const struct rules_value *v, struct rules_strbuf *b)
{
	json_t *j = eval__to_json(v);
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	if (text)
		strbuf__append(b, text, strlen(text));
	free(text);
	json_decref(j);
}

void eval__explain(const struct rules_expr *e, const struct rules_scratch *s, struct rules_strbuf *b)
{
	const struct rules_node *n = s->ex.node;
	uint32_t lo = UINT32_MAX, hi = 0;
	int col = 1;

	if (!n)
		return;
	node_extent(n, &lo, &hi);
	if (hi > e->len)
		hi = (uint32_t)e->len;
	/* node ranges leave out grouping parentheses: widen until balanced */
	for (int guard = 0; guard < 64; guard++) {
		int depth = 0, min_depth = 0;
		char quote = 0;
		for (uint32_t i = lo; i < hi; i++) {
			char ch = e->src[i];
			if (quote) {
				if (ch == '\\')
					i++;
				else if (ch == quote)
					quote = 0;
			} else if (ch == '\'' || ch == '"') {
				quote = ch;
			} else if (ch == '(' || ch == ')') {
				depth += ch == '(' ? 1 : -1;
				if (depth < min_depth)
					min_depth = depth;
			}
		}
		if (min_depth < 0) { /* an unmatched ')': take in the '(' before */
			while (lo > 0 && e->src[--lo] != '(')
				;
		} else if (depth > 0) { /* an unmatched '(': take in the ')' after */
			while (hi < e->len && e->src[hi++] != ')')
				;
		} else {
			break;
		}
	}
	for (size_t i = 0; i < lo && i < e->len; i++) {
		if (e->src[i] == '\n')
			col = 1;
		else if (((unsigned char)e->src[i] & 0xC0) != 0x80)
			col++;
	}
	strbuf__printf(b, "`%.*s` (column %d)", (int)(hi - lo), e->src + lo, col);
	if (s->ex.has_operands) {
		strbuf__append(b, ": left side ", 12);
		render_json(&s->ex.a, b);
		strbuf__append(b, ", right side ", 13);
		render_json(&s->ex.b, b);
	}
}
