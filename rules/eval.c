/* eval.c - the expression evaluator, runtime values and builtin methods.
 *
 * Values are small tagged structs that borrow from the event (strings are
 * views into jansson strings, maps/lists are borrowed json_t *); the common
 * path (paths, comparisons, boolean logic, regex matches) allocates nothing.
 * Strings built by '+', toLowerCase() etc. and list literals are carved from
 * the scratch arena, which is reset at the start of every evaluation.
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
#include <time.h>

#include "rules_internal.h"

enum { EV_OK = 0, EV_ERR = -1, EV_SHORT = 1 }; /* EV_SHORT: a ?. met null */

struct ctx {
	const struct rules_expr *expr;
	const json_t *event;
	struct rules_scratch *s;
	unsigned long steps, max_steps;
	bool explain;
	struct rules_value vars[RULES_MAX_VARS]; /* let / arrow slots */
};

/* ---- values ---- */

static const char *const type_names[] = { /* ORDER enum rules_vkind */
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

static bool is_list(const struct rules_value *v)
{
	return v->kind == RULES_V_LIST || v->kind == RULES_V_ARR;
}

static size_t list_len(const struct rules_value *v)
{
	return v->kind == RULES_V_LIST ? v->u.list.n : json_array_size(v->json);
}

static void list_at(const struct rules_value *v, size_t i, struct rules_value *out)
{
	if (v->kind == RULES_V_LIST)
		*out = v->u.list.items[i];
	else
		eval__from_json(json_array_get(v->json, i), out);
}

static bool is_map(const struct rules_value *v)
{
	return v->kind == RULES_V_MAP || v->kind == RULES_V_OBJ;
}

static size_t map_size(const struct rules_value *v)
{
	return v->kind == RULES_V_OBJ ? v->u.obj.n : json_object_size(v->json);
}

/* Looks key up in a Map (event object or literal); false if absent. */
static bool map_get(const struct rules_value *m, const char *key, size_t len,
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

static void render(const struct rules_value *v, struct rules_strbuf *b, const char *null_text)
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

void eval__render(const struct rules_value *v, struct rules_strbuf *b)
{
	render(v, b, "");
}

/* ---- errors and steps ---- */

static int fail(struct ctx *c, const struct rules_node *n, const char *fmt, ...) RULES_FMT(3, 4);

static int fail(struct ctx *c, const struct rules_node *n, const char *fmt, ...)
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
	va_start(ap, fmt);
	vsnprintf(buf + used, size - (size_t)used, fmt, ap);
	va_end(ap);
	return EV_ERR;
}

static int step(struct ctx *c, const struct rules_node *n)
{
	if (++c->steps > c->max_steps)
		return fail(c, n, "expression exceeded %lu steps", c->max_steps);
	return EV_OK;
}

static char *scratch_alloc(struct ctx *c, size_t n)
{
	return arena__alloc(&c->s->strings, n);
}

/* Deep equality without coercion; numbers compare by value (1 == 1.0). */
static int equal(struct ctx *c, const struct rules_node *n, const struct rules_value *a,
		 const struct rules_value *b, bool *eq)
{
	if (step(c, n) < 0)
		return EV_ERR;
	*eq = false;
	if (is_list(a) && is_list(b)) {
		size_t len = list_len(a);
		if (len != list_len(b))
			return EV_OK;
		for (size_t i = 0; i < len; i++) {
			struct rules_value x, y;
			list_at(a, i, &x);
			list_at(b, i, &y);
			if (equal(c, n, &x, &y, eq) < 0)
				return EV_ERR;
			if (!*eq)
				return EV_OK;
		}
		*eq = true;
		return EV_OK;
	}
	if (is_map(a) && is_map(b)) {
		if (map_size(a) != map_size(b))
			return EV_OK;
		if (a->kind == RULES_V_OBJ) {
			for (size_t i = 0; i < a->u.obj.n; i++) {
				const struct rules_kv *kv = &a->u.obj.items[i];
				struct rules_value y;
				if (!map_get(b, kv->key, kv->len, &y))
					return EV_OK;
				if (equal(c, n, &kv->v, &y, eq) < 0)
					return EV_ERR;
				if (!*eq)
					return EV_OK;
			}
			*eq = true;
			return EV_OK;
		}
		const char *key;
		json_t *val;
		json_object_foreach((json_t *)a->json, key, val) {
			struct rules_value x, y;
			if (!map_get(b, key, strlen(key), &y))
				return EV_OK;
			eval__from_json(val, &x);
			if (equal(c, n, &x, &y, eq) < 0)
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
		*eq = a->u.str.len == b->u.str.len &&
		      memcmp(a->u.str.s, b->u.str.s, a->u.str.len) == 0;
		break;
	default: break;
	}
	return EV_OK;
}

static int list_contains(struct ctx *c, const struct rules_node *n, const struct rules_value *list,
			 const struct rules_value *x, bool *found)
{
	size_t len = list_len(list);

	*found = false;
	for (size_t i = 0; i < len && !*found; i++) {
		struct rules_value item;
		list_at(list, i, &item);
		if (equal(c, n, &item, x, found) < 0)
			return EV_ERR;
	}
	return EV_OK;
}

static void set_bool(struct rules_value *out, bool b)
{
	memset(out, 0, sizeof(*out));
	out->kind = RULES_V_BOOL;
	out->u.b = b;
}

static void set_num(struct rules_value *out, double x)
{
	memset(out, 0, sizeof(*out));
	out->kind = RULES_V_NUM;
	out->u.num = x;
}

static void set_str(struct rules_value *out, const char *s, size_t len)
{
	memset(out, 0, sizeof(*out));
	out->kind = RULES_V_STR;
	out->u.str.s = s;
	out->u.str.len = len;
}

/* JavaScript counts UTF-16 code units: 4-byte UTF-8 sequences count two. */
static size_t utf16_length(const char *s, size_t n)
{
	size_t units = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch & 0xC0) != 0x80)
			units += ch >= 0xF0 ? 2 : 1;
	}
	return units;
}

/* ---- builtin methods ---- */

typedef int (*builtin_fn)(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
			  const struct rules_value *args, struct rules_value *out);

static int ev(struct ctx *c, const struct rules_node *n, struct rules_value *out);

static int want_string_arg(struct ctx *c, const struct rules_node *n, const struct rules_value *arg)
{
	if (arg->kind != RULES_V_STR)
		return fail(c, n, "%s() expects a String argument, got %s", n->u.m.name,
			    eval__type_name(arg));
	return EV_OK;
}

static int want_string_recv(struct ctx *c, const struct rules_node *n, const struct rules_value *recv)
{
	if (recv->kind != RULES_V_STR)
		return fail(c, n, "%s() is not a method of %s", n->u.m.name, eval__type_name(recv));
	return EV_OK;
}

static int want_list_recv(struct ctx *c, const struct rules_node *n, const struct rules_value *recv)
{
	if (!is_list(recv))
		return fail(c, n, "%s() is not a method of %s", n->u.m.name, eval__type_name(recv));
	return EV_OK;
}

static void set_list(struct rules_value *out, const struct rules_value *items, size_t n)
{
	memset(out, 0, sizeof(*out));
	out->kind = RULES_V_LIST;
	out->u.list.items = items;
	out->u.list.n = n;
}

static struct rules_value *alloc_items(struct ctx *c, size_t n)
{
	return (struct rules_value *)scratch_alloc(c, (n ? n : 1) * sizeof(struct rules_value));
}

static int bi_includes(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		       const struct rules_value *args, struct rules_value *out)
{
	bool found = false;

	if (is_list(recv)) {
		if (list_contains(c, n, recv, &args[0], &found) < 0)
			return EV_ERR;
	} else if (recv->kind == RULES_V_STR) {
		if (want_string_arg(c, n, &args[0]) < 0)
			return EV_ERR;
		found = memmem(recv->u.str.s, recv->u.str.len, args[0].u.str.s, args[0].u.str.len) !=
			NULL || args[0].u.str.len == 0;
	} else {
		return fail(c, n, "includes() is not a method of %s", eval__type_name(recv));
	}
	set_bool(out, found);
	return EV_OK;
}

static int bi_starts_with(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
			  const struct rules_value *args, struct rules_value *out)
{
	if (want_string_recv(c, n, recv) < 0 || want_string_arg(c, n, &args[0]) < 0)
		return EV_ERR;
	size_t k = args[0].u.str.len;
	set_bool(out, k <= recv->u.str.len && memcmp(recv->u.str.s, args[0].u.str.s, k) == 0);
	return EV_OK;
}

static int bi_ends_with(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
			const struct rules_value *args, struct rules_value *out)
{
	if (want_string_recv(c, n, recv) < 0 || want_string_arg(c, n, &args[0]) < 0)
		return EV_ERR;
	size_t k = args[0].u.str.len, len = recv->u.str.len;
	set_bool(out, k <= len && memcmp(recv->u.str.s + len - k, args[0].u.str.s, k) == 0);
	return EV_OK;
}

/* Case mapping without locale state (thread-safe): ASCII, Latin-1, Greek
 * and Cyrillic basic letters; everything else is copied unchanged. */
static int map_case(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		    struct rules_value *out, bool upper)
{
	if (want_string_recv(c, n, recv) < 0)
		return EV_ERR;
	size_t len = recv->u.str.len;
	unsigned char *d = (unsigned char *)scratch_alloc(c, len + 1);
	const unsigned char *s = (const unsigned char *)recv->u.str.s;
	if (!d)
		return fail(c, n, "out of memory");
	for (size_t i = 0; i < len; i++) {
		unsigned ch = s[i];
		if (ch < 0x80) {
			if (upper && ch >= 'a' && ch <= 'z')
				ch -= 32;
			else if (!upper && ch >= 'A' && ch <= 'Z')
				ch += 32;
			d[i] = (unsigned char)ch;
			continue;
		}
		if ((ch & 0xE0) == 0xC0 && i + 1 < len) { /* two-byte sequence */
			unsigned cp = ((ch & 0x1F) << 6) | (s[i + 1] & 0x3F);
			if (upper) {
				if ((cp >= 0xE0 && cp <= 0xFE && cp != 0xF7) ||
				    (cp >= 0x3B1 && cp <= 0x3C9 && cp != 0x3C2) ||
				    (cp >= 0x430 && cp <= 0x44F))
					cp -= 0x20;
				else if (cp >= 0x450 && cp <= 0x45F)
					cp -= 0x50;
			} else {
				if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) ||
				    (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) ||
				    (cp >= 0x410 && cp <= 0x42F))
					cp += 0x20;
				else if (cp >= 0x400 && cp <= 0x40F)
					cp += 0x50;
			}
			/* every mapping above stays within two-byte UTF-8 */
			d[i] = (unsigned char)(0xC0 | (cp >> 6));
			d[i + 1] = (unsigned char)(0x80 | (cp & 0x3F));
			i++;
			continue;
		}
		d[i] = (unsigned char)ch;
	}
	set_str(out, (const char *)d, len);
	return EV_OK;
}

static int bi_to_lower(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		       const struct rules_value *args, struct rules_value *out)
{
	(void)args;
	return map_case(c, n, recv, out, false);
}

static int bi_to_upper(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		       const struct rules_value *args, struct rules_value *out)
{
	(void)args;
	return map_case(c, n, recv, out, true);
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static int bi_trim(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		   const struct rules_value *args, struct rules_value *out)
{
	(void)args;
	if (want_string_recv(c, n, recv) < 0)
		return EV_ERR;
	const char *s = recv->u.str.s;
	size_t b = 0, e = recv->u.str.len;
	while (b < e && is_space(s[b]))
		b++;
	while (e > b && is_space(s[e - 1]))
		e--;
	set_str(out, s + b, e - b);
	return EV_OK;
}

/* Byte length of the UTF-8 character starting with byte ch. */
static size_t utf8_width(unsigned char ch)
{
	return ch < 0xC0 ? 1 : ch < 0xE0 ? 2 : ch < 0xF0 ? 3 : 4;
}

/* Width of the character at s[i]: its lead byte's length, cut short at the
 * end of the string or at a byte that is not a continuation byte (invalid
 * UTF-8 in a literal steps one byte at a time). */
static size_t char_width(const char *s, size_t n, size_t i)
{
	size_t w = utf8_width((unsigned char)s[i]);

	if (w > n - i)
		w = n - i;
	for (size_t k = 1; k < w; k++)
		if (((unsigned char)s[i + k] & 0xC0) != 0x80)
			return k;
	return w;
}

static size_t utf8_count(const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i += char_width(s, n, i))
		k++;
	return k;
}

/* Byte offset of character k (clamped to n). */
static size_t utf8_offset(const char *s, size_t n, size_t k)
{
	size_t i = 0;
	while (k-- && i < n)
		i += char_width(s, n, i);
	return i;
}

static int bi_split(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		    const struct rules_value *args, struct rules_value *out)
{
	if (want_string_recv(c, n, recv) < 0 || want_string_arg(c, n, &args[0]) < 0)
		return EV_ERR;
	const char *s = recv->u.str.s, *sep = args[0].u.str.s;
	size_t len = recv->u.str.len, k = args[0].u.str.len, count = 1;
	struct rules_value *items;

	if (k == 0) { /* split into characters, as JavaScript does for '' */
		count = utf8_count(s, len);
		if (!(items = alloc_items(c, count)))
			return fail(c, n, "out of memory");
		for (size_t i = 0, j = 0; i < len; j++) {
			size_t w = char_width(s, len, i);
			set_str(&items[j], s + i, w);
			i += w;
		}
		set_list(out, items, count);
		return EV_OK;
	}
	for (const char *p = s; (p = memmem(p, len - (size_t)(p - s), sep, k)); p += k)
		count++;
	if (!(items = alloc_items(c, count)))
		return fail(c, n, "out of memory");
	const char *from = s;
	for (size_t j = 0; j < count; j++) {
		const char *to = j + 1 < count ? memmem(from, len - (size_t)(from - s), sep, k) : s + len;
		set_str(&items[j], from, (size_t)(to - from));
		from = to + k;
	}
	set_list(out, items, count);
	return EV_OK;
}

/* JavaScript's slice() bounds: negative counts from the end, clamped. */
static int slice_bounds(struct ctx *c, const struct rules_node *n, const struct rules_value *args,
			size_t len, size_t *from, size_t *to)
{
	double b[2] = {0, (double)len};

	for (size_t i = 0; i < n->u.m.nargs && i < 2; i++) {
		if (args[i].kind != RULES_V_NUM || args[i].u.num != floor(args[i].u.num))
			return fail(c, n, "slice() expects whole Numbers, got %s",
				    args[i].kind == RULES_V_NUM ? "a fraction"
								: eval__type_name(&args[i]));
		b[i] = args[i].u.num < 0 ? (double)len + args[i].u.num : args[i].u.num;
		b[i] = b[i] < 0 ? 0 : b[i] > (double)len ? (double)len : b[i];
	}
	*from = (size_t)b[0];
	*to = b[1] < b[0] ? *from : (size_t)b[1];
	return EV_OK;
}

static int bi_slice(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		    const struct rules_value *args, struct rules_value *out)
{
	size_t from, to;

	if (recv->kind == RULES_V_STR) {
		const char *s = recv->u.str.s;
		size_t len = recv->u.str.len;
		if (slice_bounds(c, n, args, utf8_count(s, len), &from, &to) < 0)
			return EV_ERR;
		size_t b = utf8_offset(s, len, from), e = utf8_offset(s, len, to);
		set_str(out, s + b, e - b);
		return EV_OK;
	}
	if (want_list_recv(c, n, recv) < 0)
		return EV_ERR;
	if (slice_bounds(c, n, args, list_len(recv), &from, &to) < 0)
		return EV_ERR;
	if (recv->kind == RULES_V_LIST) {
		/* An empty list may have no items array: no arithmetic on NULL. */
		set_list(out, to > from ? recv->u.list.items + from : NULL, to - from);
		return EV_OK;
	}
	struct rules_value *items = alloc_items(c, to - from);
	if (!items)
		return fail(c, n, "out of memory");
	for (size_t i = from; i < to; i++)
		list_at(recv, i, &items[i - from]);
	set_list(out, items, to - from);
	return EV_OK;
}

static int bi_first_last(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
			 struct rules_value *out, bool last)
{
	if (want_list_recv(c, n, recv) < 0)
		return EV_ERR;
	size_t len = list_len(recv);
	if (len == 0) {
		memset(out, 0, sizeof(*out));
		return EV_OK;
	}
	list_at(recv, last ? len - 1 : 0, out);
	return EV_OK;
}

static int bi_first(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		    const struct rules_value *args, struct rules_value *out)
{
	(void)args;
	return bi_first_last(c, n, recv, out, false);
}

static int bi_last(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		   const struct rules_value *args, struct rules_value *out)
{
	(void)args;
	return bi_first_last(c, n, recv, out, true);
}

static int bi_flatten(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		      const struct rules_value *args, struct rules_value *out)
{
	size_t len, total = 0;
	struct rules_value item, inner;

	(void)args;
	if (want_list_recv(c, n, recv) < 0)
		return EV_ERR;
	len = list_len(recv);
	for (size_t i = 0; i < len; i++) {
		list_at(recv, i, &item);
		total += is_list(&item) ? list_len(&item) : 1;
	}
	struct rules_value *items = alloc_items(c, total);
	if (!items)
		return fail(c, n, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < len; i++) {
		list_at(recv, i, &item);
		if (!is_list(&item)) {
			items[k++] = item;
			continue;
		}
		for (size_t j = 0; j < list_len(&item); j++) {
			list_at(&item, j, &inner);
			items[k++] = inner;
		}
	}
	set_list(out, items, total);
	return EV_OK;
}

static void render(const struct rules_value *v, struct rules_strbuf *b, const char *null_text);

static int bi_join(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		   const struct rules_value *args, struct rules_value *out)
{
	struct rules_strbuf tmp = {0};
	struct rules_value item;

	if (want_list_recv(c, n, recv) < 0 || want_string_arg(c, n, &args[0]) < 0)
		return EV_ERR;
	strbuf__append(&tmp, "", 0);
	for (size_t i = 0; i < list_len(recv); i++) {
		if (i)
			strbuf__append(&tmp, args[0].u.str.s, args[0].u.str.len);
		list_at(recv, i, &item);
		render(&item, &tmp, "");
	}
	char *d = tmp.oom ? NULL : scratch_alloc(c, tmp.len + 1);
	if (!d) {
		strbuf__free(&tmp);
		return fail(c, n, "out of memory");
	}
	memcpy(d, tmp.data, tmp.len);
	set_str(out, d, tmp.len);
	strbuf__free(&tmp);
	return EV_OK;
}

/* Calls the arrow function fn with its parameter bound to arg. */
static int apply(struct ctx *c, const struct rules_node *fn, const struct rules_value *arg,
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

static int apply_bool(struct ctx *c, const struct rules_node *n, const struct rules_node *fn,
		      const struct rules_value *arg, bool *b)
{
	struct rules_value v;

	if (apply(c, fn, arg, &v) < 0)
		return EV_ERR;
	if (v.kind != RULES_V_BOOL)
		return fail(c, n, "the function passed to %s() must return a Boolean, got %s",
			    n->u.m.name, eval__type_name(&v));
	*b = v.u.b;
	return EV_OK;
}

/* some / every / filter / map share one loop. */
enum { LOOP_SOME, LOOP_EVERY, LOOP_FILTER, LOOP_MAP };

static int list_loop(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		     struct rules_value *out, int mode)
{
	const struct rules_node *fn = n->u.m.args[0];
	struct rules_value item, *items = NULL;
	size_t len, k = 0;
	bool b = false;

	if (want_list_recv(c, n, recv) < 0)
		return EV_ERR;
	len = list_len(recv);
	if ((mode == LOOP_FILTER || mode == LOOP_MAP) && !(items = alloc_items(c, len)))
		return fail(c, n, "out of memory");
	for (size_t i = 0; i < len; i++) {
		list_at(recv, i, &item);
		if (mode == LOOP_MAP) {
			if (apply(c, fn, &item, &items[i]) < 0)
				return EV_ERR;
			continue;
		}
		if (apply_bool(c, n, fn, &item, &b) < 0)
			return EV_ERR;
		if (mode == LOOP_SOME && b) {
			set_bool(out, true);
			return EV_OK;
		}
		if (mode == LOOP_EVERY && !b) {
			set_bool(out, false);
			return EV_OK;
		}
		if (mode == LOOP_FILTER && b)
			items[k++] = item;
	}
	if (mode == LOOP_SOME || mode == LOOP_EVERY)
		set_bool(out, mode == LOOP_EVERY);
	else
		set_list(out, items, mode == LOOP_MAP ? len : k);
	return EV_OK;
}

static int bi_some(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		   const struct rules_value *args, struct rules_value *out)
{
	(void)args;
	return list_loop(c, n, recv, out, LOOP_SOME);
}

static int bi_every(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		    const struct rules_value *args, struct rules_value *out)
{
	(void)args;
	return list_loop(c, n, recv, out, LOOP_EVERY);
}

static int bi_filter(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		     const struct rules_value *args, struct rules_value *out)
{
	(void)args;
	return list_loop(c, n, recv, out, LOOP_FILTER);
}

static int bi_map(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		  const struct rules_value *args, struct rules_value *out)
{
	(void)args;
	return list_loop(c, n, recv, out, LOOP_MAP);
}

static int bi_index_of(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		       const struct rules_value *args, struct rules_value *out)
{
	if (recv->kind == RULES_V_STR) {
		if (want_string_arg(c, n, &args[0]) < 0)
			return EV_ERR;
		const char *p = memmem(recv->u.str.s, recv->u.str.len, args[0].u.str.s,
				       args[0].u.str.len);
		set_num(out, p ? (double)utf16_length(recv->u.str.s, (size_t)(p - recv->u.str.s))
			       : -1);
		return EV_OK;
	}
	if (want_list_recv(c, n, recv) < 0)
		return EV_ERR;
	for (size_t i = 0; i < list_len(recv); i++) {
		struct rules_value item;
		bool eq;
		list_at(recv, i, &item);
		if (equal(c, n, &item, &args[0], &eq) < 0)
			return EV_ERR;
		if (eq) {
			set_num(out, (double)i);
			return EV_OK;
		}
	}
	set_num(out, -1);
	return EV_OK;
}

#define BUILTIN_MAX_ARGS 4

static const struct builtin {
	const char *name;
	int min_args, max_args;
	bool takes_fn; /* args[0] is an arrow function, not evaluated up front */
	builtin_fn fn;
} builtins[] = { /* ORDER RULES_BI: docs/rules.md §4.4 lists them */
	{"includes", 1, 1, false, bi_includes},
	{"startsWith", 1, 1, false, bi_starts_with},
	{"endsWith", 1, 1, false, bi_ends_with},
	{"toLowerCase", 0, 0, false, bi_to_lower},
	{"toUpperCase", 0, 0, false, bi_to_upper},
	{"trim", 0, 0, false, bi_trim},
	{"split", 1, 1, false, bi_split},
	{"slice", 1, 2, false, bi_slice},
	{"indexOf", 1, 1, false, bi_index_of},
	{"some", 1, 1, true, bi_some},
	{"every", 1, 1, true, bi_every},
	{"filter", 1, 1, true, bi_filter},
	{"map", 1, 1, true, bi_map},
	{"first", 0, 0, false, bi_first},
	{"last", 0, 0, false, bi_last},
	{"flatten", 0, 0, false, bi_flatten},
	{"join", 1, 1, false, bi_join},
};

#define N_BUILTINS (sizeof(builtins) / sizeof(builtins[0]))

int builtin__lookup(const char *name, size_t len)
{
	for (size_t i = 0; i < N_BUILTINS; i++)
		if (strlen(builtins[i].name) == len && memcmp(builtins[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

void builtin__arity(int index, int *min_args, int *max_args, bool *takes_fn)
{
	*min_args = builtins[index].min_args;
	*max_args = builtins[index].max_args;
	*takes_fn = builtins[index].takes_fn;
}

const char *builtin__name(size_t i)
{
	return i < N_BUILTINS ? builtins[i].name : NULL;
}

/* ---- builtin functions (Forge helpers) ---- */

/* event.changelog.items as a JSON array, or NULL. */
static const json_t *changelog_items(struct ctx *c)
{
	const json_t *items = json_object_get(json_object_get(c->event, "changelog"), "items");
	return json_is_array(items) ? items : NULL;
}

static bool json_str_eq(const json_t *j, const struct rules_value *v)
{
	return json_is_string(j) && json_string_length(j) == v->u.str.len &&
	       memcmp(json_string_value(j), v->u.str.s, v->u.str.len) == 0;
}

/* changed(field) / changedTo(field, value) / changedFrom(field, value):
 * does a changelog item name the field (field or fieldId) and, when value
 * is given, have it as its new (toString or to) / old (fromString or from)
 * value? A payload without a changelog has no changes. */
static int changelog_test(struct ctx *c, const struct rules_node *n, const struct rules_value *args,
			  const char *str_key, const char *raw_key, struct rules_value *out)
{
	const json_t *items = changelog_items(c), *it;
	size_t i;

	for (size_t k = 0; k < n->u.m.nargs; k++)
		if (want_string_arg(c, n, &args[k]) < 0)
			return EV_ERR;
	json_array_foreach(items, i, it) {
		if (step(c, n) < 0)
			return EV_ERR;
		if (!json_str_eq(json_object_get(it, "field"), &args[0]) &&
		    !json_str_eq(json_object_get(it, "fieldId"), &args[0]))
			continue;
		if (!str_key || json_str_eq(json_object_get(it, str_key), &args[1]) ||
		    json_str_eq(json_object_get(it, raw_key), &args[1])) {
			set_bool(out, true);
			return EV_OK;
		}
	}
	set_bool(out, false);
	return EV_OK;
}

static int fn_changed(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		      const struct rules_value *args, struct rules_value *out)
{
	(void)recv;
	return changelog_test(c, n, args, NULL, NULL, out);
}

static int fn_changed_to(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
			 const struct rules_value *args, struct rules_value *out)
{
	(void)recv;
	return changelog_test(c, n, args, "toString", "to", out);
}

static int fn_changed_from(struct ctx *c, const struct rules_node *n,
			   const struct rules_value *recv, const struct rules_value *args,
			   struct rules_value *out)
{
	(void)recv;
	return changelog_test(c, n, args, "fromString", "from", out);
}

static int fn_now(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		  const struct rules_value *args, struct rules_value *out)
{
	struct timespec ts;

	(void)c, (void)n, (void)recv, (void)args;
	clock_gettime(CLOCK_REALTIME, &ts);
	set_num(out, floor((double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6));
	return EV_OK;
}

/* Collects mention ids of an ADF node tree: {type: mention, attrs: {id}}.
 * items == NULL counts only. */
static int adf_mentions(struct ctx *c, const struct rules_node *n, const json_t *node,
			struct rules_value *items, size_t *k, int depth)
{
	if (step(c, n) < 0)
		return EV_ERR;
	if (depth > 200)
		return fail(c, n, "mentions(): document nested too deeply");
	if (json_is_array(node)) {
		size_t i;
		const json_t *x;
		json_array_foreach(node, i, x)
			if (adf_mentions(c, n, x, items, k, depth + 1) < 0)
				return EV_ERR;
		return EV_OK;
	}
	if (!json_is_object(node))
		return EV_OK;
	const json_t *type = json_object_get(node, "type");
	const json_t *id = json_object_get(json_object_get(node, "attrs"), "id");
	if (json_is_string(type) && !strcmp(json_string_value(type), "mention") &&
	    json_is_string(id)) {
		if (items)
			eval__from_json(id, &items[*k]);
		++*k;
	}
	return adf_mentions(c, n, json_object_get(node, "content"), items, k, depth + 1);
}

/* Wiki markup: [~accountid:ID]. items == NULL counts only. */
static size_t wiki_mentions(const char *s, size_t len, struct rules_value *items)
{
	static const char tag[] = "[~accountid:";
	const size_t tl = sizeof(tag) - 1;
	size_t k = 0;

	for (const char *p = s; (p = memmem(p, len - (size_t)(p - s), tag, tl)); p += tl) {
		const char *id = p + tl, *end = memchr(id, ']', len - (size_t)(id - s));
		if (!end || end == id)
			continue;
		if (items)
			set_str(&items[k], id, (size_t)(end - id));
		k++;
	}
	return k;
}

static int fn_mentions(struct ctx *c, const struct rules_node *n, const struct rules_value *recv,
		       const struct rules_value *args, struct rules_value *out)
{
	const struct rules_value *v = &args[0];
	struct rules_value *items;
	size_t count = 0;

	(void)recv;
	if (v->kind == RULES_V_NULL) {
		set_list(out, NULL, 0);
		return EV_OK;
	}
	if (v->kind == RULES_V_STR) {
		count = wiki_mentions(v->u.str.s, v->u.str.len, NULL);
		if (!(items = alloc_items(c, count)))
			return fail(c, n, "out of memory");
		wiki_mentions(v->u.str.s, v->u.str.len, items);
		set_list(out, items, count);
		return EV_OK;
	}
	if (v->kind != RULES_V_MAP && v->kind != RULES_V_ARR)
		return fail(c, n, "mentions() expects a String or an ADF document, got %s",
			    eval__type_name(v));
	if (adf_mentions(c, n, v->json, NULL, &count, 0) < 0)
		return EV_ERR;
	if (!(items = alloc_items(c, count)))
		return fail(c, n, "out of memory");
	count = 0;
	if (adf_mentions(c, n, v->json, items, &count, 0) < 0)
		return EV_ERR;
	set_list(out, items, count);
	return EV_OK;
}

static const struct builtin funcs[] = { /* ORDER RULES_FN: docs/rules.md §4.5 lists them */
	{"changed", 1, 1, false, fn_changed},
	{"changedTo", 2, 2, false, fn_changed_to},
	{"changedFrom", 2, 2, false, fn_changed_from},
	{"now", 0, 0, false, fn_now},
	{"mentions", 1, 1, false, fn_mentions},
};

#define N_FUNCS (sizeof(funcs) / sizeof(funcs[0]))

int func__lookup(const char *name, size_t len)
{
	for (size_t i = 0; i < N_FUNCS; i++)
		if (strlen(funcs[i].name) == len && memcmp(funcs[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

void func__arity(int index, int *min_args, int *max_args)
{
	*min_args = funcs[index].min_args;
	*max_args = funcs[index].max_args;
}

const char *func__name(size_t i)
{
	return i < N_FUNCS ? funcs[i].name : NULL;
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

static void set_null(struct rules_value *out)
{
	memset(out, 0, sizeof(*out));
}

static int ev_member(struct ctx *c, const struct rules_node *n, struct rules_value *out)
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
		return fail(c, n, "cannot read property '%s' of null", n->u.m.name);
	}
	if (is_map(&obj)) {
		if (map_get(&obj, n->u.m.name, n->u.m.name_len, out))
			return EV_OK;
		if (n->optional) {
			set_null(out);
			return EV_OK;
		}
		return fail(c, n, "property '%s' is not defined", n->u.m.name);
	}
	if (strcmp(n->u.m.name, "length") == 0) {
		if (obj.kind == RULES_V_STR) {
			set_num(out, (double)utf16_length(obj.u.str.s, obj.u.str.len));
			return EV_OK;
		}
		if (is_list(&obj)) {
			set_num(out, (double)list_len(&obj));
			return EV_OK;
		}
	}
	if (n->optional) {
		set_null(out);
		return EV_OK;
	}
	return fail(c, n, "%s has no property '%s'", eval__type_name(&obj), n->u.m.name);
}

static int ev_index(struct ctx *c, const struct rules_node *n, struct rules_value *out)
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
	if (obj.kind == RULES_V_NULL)
		return fail(c, n, "cannot index null");
	if (is_map(&obj)) {
		if (ix.kind != RULES_V_STR)
			return fail(c, n, "a Map is indexed by a String, got %s", eval__type_name(&ix));
		if (map_get(&obj, ix.u.str.s, ix.u.str.len, out))
			return EV_OK;
		if (n->optional) {
			set_null(out);
			return EV_OK;
		}
		return fail(c, n, "property '%.*s' is not defined", (int)ix.u.str.len, ix.u.str.s);
	}
	if (is_list(&obj)) {
		if (ix.kind != RULES_V_NUM)
			return fail(c, n, "a List is indexed by a Number, got %s", eval__type_name(&ix));
		if (ix.u.num != floor(ix.u.num))
			return fail(c, n, "list index must be an integer, got %g", ix.u.num);
		if (ix.u.num < 0)
			return fail(c, n, "negative list index %.0f", ix.u.num);
		size_t len = list_len(&obj);
		if (ix.u.num >= (double)len) {
			if (n->optional) {
				set_null(out);
				return EV_OK;
			}
			return fail(c, n, "list index %.0f is out of range (length %zu)", ix.u.num, len);
		}
		list_at(&obj, (size_t)ix.u.num, out);
		return EV_OK;
	}
	return fail(c, n, "cannot index a %s", eval__type_name(&obj));
}

static int ev_call(struct ctx *c, const struct rules_node *n, struct rules_value *out)
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
		return fail(c, n, "cannot call %s() on null", n->u.m.name);
	}
	if (n->u.m.builtin < 0 || n->u.m.nargs > BUILTIN_MAX_ARGS)
		return fail(c, n, "unknown method '%s'", n->u.m.name);
	const struct builtin *bi = &builtins[n->u.m.builtin];
	for (size_t i = bi->takes_fn ? 1 : 0; i < n->u.m.nargs; i++)
		if ((r = ev(c, n->u.m.args[i], &args[i])) != EV_OK)
			return r;
	return bi->fn(c, n, &recv, args, out);
}

static int ev_func(struct ctx *c, const struct rules_node *n, struct rules_value *out)
{
	struct rules_value args[BUILTIN_MAX_ARGS];
	int r;

	if (n->u.m.builtin < 0 || n->u.m.nargs > BUILTIN_MAX_ARGS)
		return fail(c, n, "unknown function '%s'", n->u.m.name);
	for (size_t i = 0; i < n->u.m.nargs; i++)
		if ((r = ev(c, n->u.m.args[i], &args[i])) != EV_OK)
			return r;
	return funcs[n->u.m.builtin].fn(c, n, NULL, args, out);
}

static int ev_map(struct ctx *c, const struct rules_node *n, struct rules_value *out)
{
	struct rules_kv *items = NULL;
	int r;

	if (n->u.map.n && !(items = (struct rules_kv *)scratch_alloc(c, n->u.map.n * sizeof(*items))))
		return fail(c, n, "out of memory");
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
static void decided_by(struct ctx *c, const struct rules_node *child)
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
		return;
	case RULES_N_UNARY:
		if (child->op == RULES_T_NOT)
			return;
		break;
	default:
		break;
	}
	ex->node = child;
	ex->has_operands = ex->bin == child;
}

static void remember_operands(struct ctx *c, const struct rules_node *n, const struct rules_value *a,
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

static int arith(struct ctx *c, const struct rules_node *n, const struct rules_value *a,
		 const struct rules_value *b, struct rules_value *out)
{
	double x, y, r;

	if (a->kind != RULES_V_NUM || b->kind != RULES_V_NUM)
		return fail(c, n, "cannot apply %s to %s and %s", op_text(n), eval__type_name(a),
			    eval__type_name(b));
	x = a->u.num;
	y = b->u.num;
	switch (n->op) {
	case RULES_T_PLUS: r = x + y; break;
	case RULES_T_MINUS: r = x - y; break;
	case RULES_T_STAR: r = x * y; break;
	case RULES_T_SLASH:
		if (y == 0)
			return fail(c, n, "division by zero");
		r = x / y;
		break;
	default: /* RULES_T_PERCENT */
		if (y == 0)
			return fail(c, n, "division by zero");
		r = fmod(x, y);
		break;
	}
	if (!isfinite(r))
		return fail(c, n, "numeric overflow");
	set_num(out, r);
	return EV_OK;
}

static int concat(struct ctx *c, const struct rules_node *n, const struct rules_value *a,
		  const struct rules_value *b, struct rules_value *out)
{
	struct rules_strbuf tmp = {0};
	const struct rules_value *parts[2] = {a, b};
	size_t len = 0;

	/* fast path: two strings need no intermediate buffer */
	if (a->kind == RULES_V_STR && b->kind == RULES_V_STR) {
		len = a->u.str.len + b->u.str.len;
		char *d = scratch_alloc(c, len + 1);
		if (!d)
			return fail(c, n, "out of memory");
		memcpy(d, a->u.str.s, a->u.str.len);
		memcpy(d + a->u.str.len, b->u.str.s, b->u.str.len);
		set_str(out, d, len);
		return EV_OK;
	}
	for (int i = 0; i < 2; i++)
		render(parts[i], &tmp, "null");
	if (tmp.oom) {
		strbuf__free(&tmp);
		return fail(c, n, "out of memory");
	}
	char *d = scratch_alloc(c, tmp.len + 1);
	if (!d) {
		strbuf__free(&tmp);
		return fail(c, n, "out of memory");
	}
	memcpy(d, tmp.data, tmp.len);
	set_str(out, d, tmp.len);
	strbuf__free(&tmp);
	return EV_OK;
}

static int compare(struct ctx *c, const struct rules_node *n, const struct rules_value *a,
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
		return fail(c, n, "cannot compare %s with %s using %s", eval__type_name(a),
			    eval__type_name(b), op_text(n));
	}
	switch (n->op) {
	case RULES_T_LT: set_bool(out, cmp < 0); break;
	case RULES_T_LE: set_bool(out, cmp <= 0); break;
	case RULES_T_GT: set_bool(out, cmp > 0); break;
	default: set_bool(out, cmp >= 0); break;
	}
	return EV_OK;
}

static int ev_binary(struct ctx *c, const struct rules_node *n, struct rules_value *out)
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
	case RULES_T_PERCENT:
		return arith(c, n, &a, &b, out);
	case RULES_T_LT:
	case RULES_T_LE:
	case RULES_T_GT:
	case RULES_T_GE:
		return compare(c, n, &a, &b, out);
	case RULES_T_EQ:
	case RULES_T_NE:
		if (equal(c, n, &a, &b, &eq) < 0)
			return EV_ERR;
		set_bool(out, n->op == RULES_T_EQ ? eq : !eq);
		return EV_OK;
	case RULES_T_IDENT: /* in */
		if (is_list(&b)) {
			if (list_contains(c, n, &b, &a, &eq) < 0)
				return EV_ERR;
			set_bool(out, eq);
			return EV_OK;
		}
		if (is_map(&b)) {
			struct rules_value ignored;
			if (a.kind != RULES_V_STR)
				return fail(c, n, "'in' on a Map needs a String key, got %s",
					    eval__type_name(&a));
			set_bool(out, map_get(&b, a.u.str.s, a.u.str.len, &ignored));
			return EV_OK;
		}
		return fail(c, n, "the right side of 'in' must be a List or a Map, got %s",
			    eval__type_name(&b));
	}
	return fail(c, n, "unknown operator");
}

static int ev_bool_operand(struct ctx *c, const struct rules_node *n, const struct rules_node *operand,
			   const char *what, bool *b)
{
	struct rules_value v;
	int r = ev(c, operand, &v);

	if (r != EV_OK)
		return r;
	if (v.kind != RULES_V_BOOL)
		return fail(c, n, "%s expects Boolean operands, got %s", what, eval__type_name(&v));
	*b = v.u.b;
	return EV_OK;
}

static int ev_matches(struct ctx *c, const struct rules_node *n, struct rules_value *out)
{
	struct rules_value subject;
	int r = ev(c, n->u.match.subject, &subject);
	const struct rules_regex *re = n->u.match.re;

	if (r != EV_OK)
		return r;
	if (c->explain) {
		struct rules_value pat;
		set_str(&pat, n->u.match.pattern->u.str.s, n->u.match.pattern->u.str.len);
		remember_operands(c, n, &subject, &pat);
	}
	if (subject.kind != RULES_V_STR)
		return fail(c, n, "'matches' expects a String on its left, got %s",
			    eval__type_name(&subject));
	if (!re)
		return fail(c, n, "regular expression was not compiled");
	r = pcre2_match(re->code, (PCRE2_SPTR)subject.u.str.s, subject.u.str.len, 0, 0,
			c->s->match_data, re->mctx);
	if (r >= 0) {
		set_bool(out, true);
		return EV_OK;
	}
	if (r == PCRE2_ERROR_NOMATCH) {
		set_bool(out, false);
		return EV_OK;
	}
	if (r == PCRE2_ERROR_MATCHLIMIT || r == PCRE2_ERROR_DEPTHLIMIT ||
	    r == PCRE2_ERROR_HEAPLIMIT || r == PCRE2_ERROR_JIT_STACKLIMIT)
		return fail(c, n, "regex match limit exceeded");
	PCRE2_UCHAR msg[160];
	if (pcre2_get_error_message(r, msg, sizeof(msg)) < 0)
		snprintf((char *)msg, sizeof(msg), "error %d", r);
	return fail(c, n, "regex match failed: %s", (const char *)msg);
}

static int ev(struct ctx *c, const struct rules_node *n, struct rules_value *out)
{
	int r;
	bool b = false;

	if (step(c, n) < 0)
		return EV_ERR;
	switch ((enum rules_node_kind)n->kind) {
	case RULES_N_NULL: set_null(out); return EV_OK;
	case RULES_N_BOOL: set_bool(out, n->u.b); return EV_OK;
	case RULES_N_NUM: set_num(out, n->u.num); return EV_OK;
	case RULES_N_STR: set_str(out, n->u.str.s, n->u.str.len); return EV_OK;
	case RULES_N_LIST: {
		struct rules_value *items = NULL;
		if (n->u.list.n) {
			items = (struct rules_value *)scratch_alloc(c, n->u.list.n * sizeof(*items));
			if (!items)
				return fail(c, n, "out of memory");
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
	case RULES_N_ARROW: return fail(c, n, "an arrow function is not a value");
	case RULES_N_UNARY: {
		struct rules_value a;
		if ((r = ev(c, n->u.ops.a, &a)) != EV_OK)
			return r;
		if (n->op == RULES_T_NOT) {
			if (a.kind != RULES_V_BOOL)
				return fail(c, n, "'!' expects a Boolean, got %s", eval__type_name(&a));
			decided_by(c, n->u.ops.a);
			set_bool(out, !a.u.b);
		} else {
			if (a.kind != RULES_V_NUM)
				return fail(c, n, "unary '-' expects a Number, got %s", eval__type_name(&a));
			set_num(out, -a.u.num);
		}
		return EV_OK;
	}
	case RULES_N_BINARY: return ev_binary(c, n, out);
	case RULES_N_AND:
	case RULES_N_OR: {
		const char *what = n->kind == RULES_N_AND ? "'&&'" : "'||'";
		if ((r = ev_bool_operand(c, n, n->u.ops.a, what, &b)) != EV_OK)
			return r;
		/* short-circuit: the right side is not evaluated (nor checked) */
		if (b == (n->kind == RULES_N_OR)) {
			decided_by(c, n->u.ops.a);
			set_bool(out, b);
			return EV_OK;
		}
		if ((r = ev_bool_operand(c, n, n->u.ops.b, what, &b)) != EV_OK)
			return r;
		decided_by(c, n->u.ops.b);
		set_bool(out, b);
		return EV_OK;
	}
	case RULES_N_COALESCE:
		if ((r = ev(c, n->u.ops.a, out)) != EV_OK)
			return r;
		if (out->kind != RULES_V_NULL) {
			decided_by(c, n->u.ops.a);
			return EV_OK;
		}
		r = ev(c, n->u.ops.b, out);
		decided_by(c, n->u.ops.b);
		return r;
	case RULES_N_COND: {
		struct rules_value cond;
		if ((r = ev(c, n->u.ops.a, &cond)) != EV_OK)
			return r;
		if (cond.kind != RULES_V_BOOL)
			return fail(c, n, "the condition of '?:' must be a Boolean, got %s",
				    eval__type_name(&cond));
		r = ev(c, cond.u.b ? n->u.ops.b : n->u.ops.c, out);
		decided_by(c, cond.u.b ? n->u.ops.b : n->u.ops.c);
		return r;
	}
	case RULES_N_MATCHES: return ev_matches(c, n, out);
	case RULES_N__COUNT: break;
	}
	return fail(c, n, "internal error: unknown node");
}

int eval__run(const struct rules_expr *e, const json_t *event, struct rules_scratch *s,
	      struct rules_value *out)
{
	struct ctx c;

	c.expr = e;
	c.event = event;
	c.s = s;
	c.steps = 0;
	c.max_steps = s->max_steps;
	c.explain = s->explain;
	arena__reset(&s->strings);
	s->error[0] = '\0';
	if (c.explain)
		memset(&s->ex, 0, sizeof(s->ex));
	int r = ev(&c, e->root, out);
	if (r == EV_SHORT) /* cannot happen: the root closes every chain */
		set_null(out);
	if (c.explain) {
		decided_by(&c, e->root);
		s->ex.steps = c.steps;
	}
	return r < 0 ? -1 : 0;
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
	case RULES_N_AND:
	case RULES_N_OR:
	case RULES_N_COALESCE:
	case RULES_N_COND:
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
		node_extent(n->u.bind.value, lo, hi);
		node_extent(n->u.bind.body, lo, hi);
		break;
	default:
		break;
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

void eval__explain(const struct rules_expr *e, const struct rules_scratch *s,
		   struct rules_strbuf *b)
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

/* ---- public: scratch and single expressions ---- */

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
	return s;
}

void rules_scratch_free(struct rules_scratch *s)
{
	if (!s)
		return;
	pcre2_match_data_free(s->match_data);
	arena__free(&s->strings);
	free(s);
}

void rules_scratch_set_max_steps(struct rules_scratch *s, unsigned long max_steps)
{
	s->max_steps = max_steps ? max_steps : RULES_MAX_EVAL_STEPS;
}

struct rules_expr *rules_expr_compile(const char *name, const char *src, size_t len,
				      int line_base, int col_base, struct rules_diags *diags)
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
		.file = name, .lm = &lm, .line_base = line_base, .col_base = col_base,
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
	*result = eval__to_json(&v);
	if (!*result) {
		if (error)
			*error = strdup("out of memory");
		return -1;
	}
	return 0;
}
