/* value.c - runtime values of the expression language: conversion from and
 * to JSON, rendering for templates and '+', deep equality, and the
 * evaluation error message.
 *
 * Values are small tagged structs that borrow from the event (strings are
 * views into jansson strings, maps/lists are borrowed json_t *); what an
 * evaluation builds lives in the scratch arena (eval_internal.h).
 *
 * Ownership: nothing here takes ownership of its arguments; eval__to_json
 * returns a new reference. Threads: no global state.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval_internal.h"

/* ---- values ---- */

static const char *const type_names[] = {
	/* ORDER enum rules_vkind */
	"null", "Boolean", "Number", "String", "List", "List", "Map", "Map",
};

const char *eval__type_name(const struct rules_value *v)
{
	return type_names[v->kind];
}

void eval__from_json(const json_t *j, struct rules_value *out)
{
	memset(out, 0, sizeof(*out));
	out->json = j;
	switch (json_typeof(j)) {
	case JSON_OBJECT: out->kind = RULES_V_MAP; break;
	case JSON_ARRAY: out->kind = RULES_V_ARR; break;
	case JSON_STRING:
		out->kind = RULES_V_STR;
		out->u.str.s = json_string_value(j);
		out->u.str.len = json_string_length(j);
		break;
	case JSON_INTEGER:
		out->kind = RULES_V_NUM;
		out->u.num = (double)json_integer_value(j);
		break;
	case JSON_REAL:
		out->kind = RULES_V_NUM;
		out->u.num = json_real_value(j);
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		out->kind = RULES_V_BOOL;
		out->u.b = json_is_true(j);
		break;
	case JSON_NULL: out->kind = RULES_V_NULL; break;
	}
}

/* Numbers print like JavaScript's String(n) for the common cases: integers
 * without a fraction, others with the shortest round-tripping digits. */
static void format_number(double x, char *buf, size_t n)
{
	if (x == 0) {
		snprintf(buf, n, "0");
		return;
	}
	if (x == floor(x) && fabs(x) < 1e21) {
		snprintf(buf, n, "%.0f", x);
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, n, "%.*g", prec, x);
		if (strtod(buf, NULL) == x)
			return;
	}
}

json_t *eval__to_json(const struct rules_value *v)
{
	switch (v->kind) {
	case RULES_V_NULL: return json_null();
	case RULES_V_BOOL: return json_boolean(v->u.b);
	case RULES_V_NUM:
		if (v->json)
			return json_deep_copy(v->json);
		if (v->u.num == floor(v->u.num) && fabs(v->u.num) <= 9007199254740992.0)
			return json_integer((json_int_t)v->u.num);
		return json_real(v->u.num);
	case RULES_V_STR: return json_stringn(v->u.str.s, v->u.str.len);
	case RULES_V_LIST: {
		json_t *a = json_array();
		for (size_t i = 0; a && i < v->u.list.n; i++) {
			if (json_array_append_new(a, eval__to_json(&v->u.list.items[i])) < 0) {
				json_decref(a);
				return NULL;
			}
		}
		return a;
	}
	case RULES_V_ARR:
	case RULES_V_MAP:
		/* a copy, so results never share (and never race on) the caller's event */
		return json_deep_copy(v->json);
	case RULES_V_OBJ: {
		json_t *o = json_object();
		for (size_t i = 0; o && i < v->u.obj.n; i++) {
			const struct rules_kv *kv = &v->u.obj.items[i];
			if (json_object_setn_new(o, kv->key, kv->len, eval__to_json(&kv->v)) < 0) {
				json_decref(o);
				return NULL;
			}
		}
		return o;
	}
	}
	return NULL;
}

void value__render(const struct rules_value *v, struct rules_strbuf *b, const char *null_text)
{
	char num[64];

	switch (v->kind) {
	case RULES_V_NULL: strbuf__append(b, null_text, strlen(null_text)); return;
	case RULES_V_BOOL: strbuf__append(b, v->u.b ? "true" : "false", v->u.b ? 4 : 5); return;
	case RULES_V_NUM:
		format_number(v->u.num, num, sizeof(num));
		strbuf__append(b, num, strlen(num));
		return;
	case RULES_V_STR: strbuf__append(b, v->u.str.s, v->u.str.len); return;
	case RULES_V_LIST:
	case RULES_V_ARR:
	case RULES_V_MAP:
	case RULES_V_OBJ: {
		if (b->limit && !eval__fits(v, b->limit - (b->len < b->limit ? b->len : b->limit))) {
			b->oom = b->over = true;
			return;
		}
		json_t *j = eval__to_json(v);
		char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		if (s)
			strbuf__append(b, s, strlen(s));
		else
			b->oom = true;
		free(s);
		json_decref(j);
		return;
	}
	}
}

/* Subtracts an upper estimate of the JSON text of j from *left; false once
 * it does not fit. Every node costs at least a byte, so the walk is bounded
 * by the budget. */
static bool json_fits(const json_t *j, size_t *left, int depth)
{
	size_t need = 8, i;
	const char *key;
	json_t *x;

	if (depth > 512)
		return false;
	if (json_is_string(j))
		need = json_string_length(j) + 2;
	else if (json_is_number(j))
		need = 24;
	if (need > *left)
		return false;
	*left -= need;
	if (json_is_array(j)) {
		json_array_foreach (j, i, x)
			if (!json_fits(x, left, depth + 1))
				return false;
	} else if (json_is_object(j)) {
		json_object_foreach ((json_t *)j, key, x) {
			size_t kl = strlen(key) + 3;
			if (kl > *left || !json_fits(x, left, depth + 1))
				return false;
			*left -= kl;
		}
	}
	return true;
}

static bool value_fits(const struct rules_value *v, size_t *left, int depth)
{
	size_t need = 8;

	if (v->json)
		return json_fits(v->json, left, depth);
	if (depth > 512)
		return false;
	if (v->kind == RULES_V_STR)
		need = v->u.str.len + 2;
	else if (v->kind == RULES_V_NUM)
		need = 24;
	if (need > *left)
		return false;
	*left -= need;
	if (v->kind == RULES_V_LIST) {
		for (size_t i = 0; i < v->u.list.n; i++)
			if (!value_fits(&v->u.list.items[i], left, depth + 1))
				return false;
	} else if (v->kind == RULES_V_OBJ) {
		for (size_t i = 0; i < v->u.obj.n; i++) {
			size_t kl = v->u.obj.items[i].len + 3;
			if (kl > *left || !value_fits(&v->u.obj.items[i].v, left, depth + 1))
				return false;
			*left -= kl;
		}
	}
	return true;
}

bool eval__fits(const struct rules_value *v, size_t budget)
{
	return value_fits(v, &budget, 0);
}

void eval__count(struct rules_scratch *s)
{
	if (s->status == RULES_EVAL_STEP_LIMIT)
		s->counts.step_limit++;
	else if (s->status == RULES_EVAL_BYTE_LIMIT)
		s->counts.byte_limit++;
}

void eval__render(const struct rules_value *v, struct rules_strbuf *b)
{
	value__render(v, b, "");
}

/* ---- errors ---- */

int value__fail(struct rules_ctx *c, const struct rules_node *n, const char *fmt, ...)
{
	int line = 1, col = 1;
	char *buf = c->s->error;
	size_t size = sizeof(c->s->error);
	int used;
	va_list ap;

	/* the position is computed only now: errors are the slow path */
	for (size_t i = 0; i < n->start && i < c->expr->len; i++) {
		unsigned char ch = (unsigned char)c->expr->src[i];
		if (ch == '\n') {
			line++;
			col = 1;
		} else if ((ch & 0xC0) != 0x80) {
			col++;
		}
	}
	if (line > 1)
		used = snprintf(buf, size, "at line %d, column %d: ", line, col);
	else
		used = snprintf(buf, size, "at column %d: ", col);
	c->s->err_msg_at = (size_t)used;
	c->s->err_at = n->start;
	c->s->err_line = line;
	c->s->err_col = col;
	va_start(ap, fmt);
	vsnprintf(buf + used, size - (size_t)used, fmt, ap);
	va_end(ap);
	c->s->status = RULES_EVAL_ERROR;
	return EV_ERR;
}

int value__oom(struct rules_ctx *c, const struct rules_node *n)
{
	if (!c->s->over_bytes)
		return value__fail(c, n, "out of memory");
	value__fail(c, n, "expression needs more than %zu bytes of scratch memory", c->s->max_bytes);
	c->s->status = RULES_EVAL_BYTE_LIMIT;
	return EV_ERR;
}

/* Deep equality without coercion; numbers compare by value (1 == 1.0). */
int value__equal(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *a,
		 const struct rules_value *b, bool *eq)
{
	if (value__step(c, n) < 0)
		return EV_ERR;
	*eq = false;
	if (value__is_list(a) && value__is_list(b)) {
		size_t len = value__list_len(a);
		if (len != value__list_len(b))
			return EV_OK;
		for (size_t i = 0; i < len; i++) {
			struct rules_value x, y;
			value__list_at(a, i, &x);
			value__list_at(b, i, &y);
			if (value__equal(c, n, &x, &y, eq) < 0)
				return EV_ERR;
			if (!*eq)
				return EV_OK;
		}
		*eq = true;
		return EV_OK;
	}
	if (value__is_map(a) && value__is_map(b)) {
		if (value__map_size(a) != value__map_size(b))
			return EV_OK;
		if (a->kind == RULES_V_OBJ) {
			for (size_t i = 0; i < a->u.obj.n; i++) {
				const struct rules_kv *kv = &a->u.obj.items[i];
				struct rules_value y;
				if (!value__map_get(b, kv->key, kv->len, &y))
					return EV_OK;
				if (value__equal(c, n, &kv->v, &y, eq) < 0)
					return EV_ERR;
				if (!*eq)
					return EV_OK;
			}
			*eq = true;
			return EV_OK;
		}
		const char *key;
		json_t *val;
		json_object_foreach ((json_t *)a->json, key, val) {
			struct rules_value x, y;
			if (!value__map_get(b, key, strlen(key), &y))
				return EV_OK;
			eval__from_json(val, &x);
			if (value__equal(c, n, &x, &y, eq) < 0)
				return EV_ERR;
			if (!*eq)
				return EV_OK;
		}
		*eq = true;
		return EV_OK;
	}
	if (a->kind != b->kind)
		return EV_OK;
	switch (a->kind) {
	case RULES_V_NULL: *eq = true; break;
	case RULES_V_BOOL: *eq = a->u.b == b->u.b; break;
	case RULES_V_NUM: *eq = a->u.num == b->u.num; break;
	case RULES_V_STR:
		*eq = a->u.str.len == b->u.str.len && memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
		break;
	default: break;
	}
	return EV_OK;
}

int value__list_contains(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *list,
			 const struct rules_value *x, bool *found)
{
	size_t len = value__list_len(list);

	*found = false;
	for (size_t i = 0; i < len && !*found; i++) {
		struct rules_value item;
		value__list_at(list, i, &item);
		if (value__equal(c, n, &item, x, found) < 0)
			return EV_ERR;
	}
	return EV_OK;
}

/* JavaScript counts UTF-16 code units: 4-byte UTF-8 sequences count two. */
size_t value__utf16_length(const char *s, size_t n)
{
	size_t units = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch & 0xC0) != 0x80)
			units += ch >= 0xF0 ? 2 : 1;
	}
	return units;
}

int value__str_from_buf(struct rules_ctx *c, const struct rules_node *n, struct rules_strbuf *b,
			struct rules_value *out)
{
	char *d = b->oom ? NULL : value__scratch_alloc(c, b->len + 1);

	if (b->over)
		c->s->over_bytes = true;
	if (!d) {
		strbuf__free(b);
		return value__oom(c, n);
	}
	if (b->len)
		memcpy(d, b->data, b->len);
	value__set_str(out, d, b->len);
	strbuf__free(b);
	return EV_OK;
}
