/* builtins.c - the builtin methods (includes, split, join, ...) and the
 * Forge helper functions (changed, changedTo, now, mentions, ...): their
 * tables, which the checker (parser.c, names and arity) and the evaluator
 * (eval.c, calls) share, and their implementations.
 *
 * Methods that take an arrow function (some, every, filter, map) call back
 * into the evaluator, so eval.c runs those; their table entries carry only
 * the name, the arity and which loop.
 *
 * Ownership: results borrow from the receiver or the event, or live in the
 * scratch arena. Threads: the tables are constant; no other state.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eval_internal.h"

/* ---- builtin methods ---- */

static int want_string_arg(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *arg)
{
	if (arg->kind != RULES_V_STR)
		return value__fail(c, n, "%s() expects a String argument, got %s", n->u.m.name,
				   eval__type_name(arg));
	return EV_OK;
}

static int want_string_recv(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv)
{
	if (recv->kind != RULES_V_STR)
		return value__fail(c, n, "%s() is not a method of %s", n->u.m.name, eval__type_name(recv));
	return EV_OK;
}

static int want_list_recv(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv)
{
	if (!value__is_list(recv))
		return value__fail(c, n, "%s() is not a method of %s", n->u.m.name, eval__type_name(recv));
	return EV_OK;
}

static int bi_includes(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
		       const struct rules_value *args, struct rules_value *out)
{
	bool found = false;

	if (value__is_list(recv)) {
		if (value__list_contains(c, n, recv, &args[0], &found) < 0)
			return EV_ERR;
	} else if (recv->kind == RULES_V_STR) {
		if (want_string_arg(c, n, &args[0]) < 0)
			return EV_ERR;
		found = memmem(recv->u.str.s, recv->u.str.len, args[0].u.str.s, args[0].u.str.len) != NULL ||
			args[0].u.str.len == 0;
	} else {
		return value__fail(c, n, "includes() is not a method of %s", eval__type_name(recv));
	}
	value__set_bool(out, found);
	return EV_OK;
}

static int bi_starts_with(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
			  const struct rules_value *args, struct rules_value *out)
{
	if (want_string_recv(c, n, recv) < 0 || want_string_arg(c, n, &args[0]) < 0)
		return EV_ERR;
	size_t k = args[0].u.str.len;
	value__set_bool(out, k <= recv->u.str.len && memcmp(recv->u.str.s, args[0].u.str.s, k) == 0);
	return EV_OK;
}

static int bi_ends_with(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
			const struct rules_value *args, struct rules_value *out)
{
	if (want_string_recv(c, n, recv) < 0 || want_string_arg(c, n, &args[0]) < 0)
		return EV_ERR;
	size_t k = args[0].u.str.len, len = recv->u.str.len;
	value__set_bool(out, k <= len && memcmp(recv->u.str.s + len - k, args[0].u.str.s, k) == 0);
	return EV_OK;
}

/* Case mapping without locale state (thread-safe): ASCII, Latin-1, Greek
 * and Cyrillic basic letters; everything else is copied unchanged. */
static int map_case(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
		    struct rules_value *out, bool upper)
{
	if (want_string_recv(c, n, recv) < 0)
		return EV_ERR;
	size_t len = recv->u.str.len;
	unsigned char *d = (unsigned char *)value__scratch_alloc(c, len + 1);
	const unsigned char *s = (const unsigned char *)recv->u.str.s;
	if (!d)
		return value__oom(c, n);
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
	value__set_str(out, (const char *)d, len);
	return EV_OK;
}

static int bi_to_lower(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
		       const struct rules_value *args, struct rules_value *out)
{
	(void)args;
	return map_case(c, n, recv, out, false);
}

static int bi_to_upper(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
		       const struct rules_value *args, struct rules_value *out)
{
	(void)args;
	return map_case(c, n, recv, out, true);
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static int bi_trim(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
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
	value__set_str(out, s + b, e - b);
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

static int bi_split(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
		    const struct rules_value *args, struct rules_value *out)
{
	if (want_string_recv(c, n, recv) < 0 || want_string_arg(c, n, &args[0]) < 0)
		return EV_ERR;
	const char *s = recv->u.str.s, *sep = args[0].u.str.s;
	size_t len = recv->u.str.len, k = args[0].u.str.len, count = 1;
	struct rules_value *items;

	if (k == 0) { /* split into characters, as JavaScript does for '' */
		count = utf8_count(s, len);
		if (!(items = value__alloc_items(c, count)))
			return value__oom(c, n);
		for (size_t i = 0, j = 0; i < len; j++) {
			size_t w = char_width(s, len, i);
			value__set_str(&items[j], s + i, w);
			i += w;
		}
		value__set_list(out, items, count);
		return EV_OK;
	}
	for (const char *p = s; (p = memmem(p, len - (size_t)(p - s), sep, k)); p += k)
		count++;
	if (!(items = value__alloc_items(c, count)))
		return value__oom(c, n);
	const char *from = s;
	for (size_t j = 0; j < count; j++) {
		const char *to = j + 1 < count ? memmem(from, len - (size_t)(from - s), sep, k) : s + len;
		value__set_str(&items[j], from, (size_t)(to - from));
		from = to + k;
	}
	value__set_list(out, items, count);
	return EV_OK;
}

/* JavaScript's slice() bounds: negative counts from the end, clamped. */
static int slice_bounds(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *args,
			size_t len, size_t *from, size_t *to)
{
	double b[2] = {0, (double)len};

	for (size_t i = 0; i < n->u.m.nargs && i < 2; i++) {
		if (args[i].kind != RULES_V_NUM || args[i].u.num != floor(args[i].u.num))
			return value__fail(c, n, "slice() expects whole Numbers, got %s",
					   args[i].kind == RULES_V_NUM ? "a fraction"
								       : eval__type_name(&args[i]));
		b[i] = args[i].u.num < 0 ? (double)len + args[i].u.num : args[i].u.num;
		b[i] = b[i] < 0 ? 0 : b[i] > (double)len ? (double)len : b[i];
	}
	*from = (size_t)b[0];
	*to = b[1] < b[0] ? *from : (size_t)b[1];
	return EV_OK;
}

static int bi_slice(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
		    const struct rules_value *args, struct rules_value *out)
{
	size_t from, to;

	if (recv->kind == RULES_V_STR) {
		const char *s = recv->u.str.s;
		size_t len = recv->u.str.len;
		if (slice_bounds(c, n, args, utf8_count(s, len), &from, &to) < 0)
			return EV_ERR;
		size_t b = utf8_offset(s, len, from), e = utf8_offset(s, len, to);
		value__set_str(out, s + b, e - b);
		return EV_OK;
	}
	if (want_list_recv(c, n, recv) < 0)
		return EV_ERR;
	if (slice_bounds(c, n, args, value__list_len(recv), &from, &to) < 0)
		return EV_ERR;
	if (recv->kind == RULES_V_LIST) {
		/* An empty list may have no items array: no arithmetic on NULL. */
		value__set_list(out, to > from ? recv->u.list.items + from : NULL, to - from);
		return EV_OK;
	}
	struct rules_value *items = value__alloc_items(c, to - from);
	if (!items)
		return value__oom(c, n);
	for (size_t i = from; i < to; i++)
		value__list_at(recv, i, &items[i - from]);
	value__set_list(out, items, to - from);
	return EV_OK;
}

static int bi_first_last(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
			 struct rules_value *out, bool last)
{
	if (want_list_recv(c, n, recv) < 0)
		return EV_ERR;
	size_t len = value__list_len(recv);
	if (len == 0) {
		memset(out, 0, sizeof(*out));
		return EV_OK;
	}
	value__list_at(recv, last ? len - 1 : 0, out);
	return EV_OK;
}

static int bi_first(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
		    const struct rules_value *args, struct rules_value *out)
{
	(void)args;
	return bi_first_last(c, n, recv, out, false);
}

static int bi_last(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
		   const struct rules_value *args, struct rules_value *out)
{
	(void)args;
	return bi_first_last(c, n, recv, out, true);
}

static int bi_flatten(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
		      const struct rules_value *args, struct rules_value *out)
{
	size_t len, total = 0;
	struct rules_value item, inner;

	(void)args;
	if (want_list_recv(c, n, recv) < 0)
		return EV_ERR;
	len = value__list_len(recv);
	for (size_t i = 0; i < len; i++) {
		value__list_at(recv, i, &item);
		total += value__is_list(&item) ? value__list_len(&item) : 1;
	}
	struct rules_value *items = value__alloc_items(c, total);
	if (!items)
		return value__oom(c, n);
	size_t k = 0;
	for (size_t i = 0; i < len; i++) {
		value__list_at(recv, i, &item);
		if (!value__is_list(&item)) {
			items[k++] = item;
			continue;
		}
		for (size_t j = 0; j < value__list_len(&item); j++) {
			value__list_at(&item, j, &inner);
			items[k++] = inner;
		}
	}
	value__set_list(out, items, total);
	return EV_OK;
}

static int bi_join(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
		   const struct rules_value *args, struct rules_value *out)
{
	struct rules_strbuf tmp = {.limit = value__bytes_left(c)};
	struct rules_value item;

	if (want_list_recv(c, n, recv) < 0 || want_string_arg(c, n, &args[0]) < 0)
		return EV_ERR;
	strbuf__append(&tmp, "", 0);
	for (size_t i = 0; i < value__list_len(recv) && !tmp.oom; i++) {
		if (i)
			strbuf__append(&tmp, args[0].u.str.s, args[0].u.str.len);
		value__list_at(recv, i, &item);
		value__render(&item, &tmp, "");
	}
	return value__str_from_buf(c, n, &tmp, out);
}

static int bi_index_of(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
		       const struct rules_value *args, struct rules_value *out)
{
	if (recv->kind == RULES_V_STR) {
		if (want_string_arg(c, n, &args[0]) < 0)
			return EV_ERR;
		const char *p = memmem(recv->u.str.s, recv->u.str.len, args[0].u.str.s, args[0].u.str.len);
		value__set_num(out,
			       p ? (double)value__utf16_length(recv->u.str.s, (size_t)(p - recv->u.str.s))
				 : -1);
		return EV_OK;
	}
	if (want_list_recv(c, n, recv) < 0)
		return EV_ERR;
	for (size_t i = 0; i < value__list_len(recv); i++) {
		struct rules_value item;
		bool eq;
		value__list_at(recv, i, &item);
		if (value__equal(c, n, &item, &args[0], &eq) < 0)
			return EV_ERR;
		if (eq) {
			value__set_num(out, (double)i);
			return EV_OK;
		}
	}
	value__set_num(out, -1);
	return EV_OK;
}

const struct rules_builtin rules__builtins[] = {
	/* ORDER RULES_BI: docs/rules.md §4.4 lists them */
	{"includes", 1, 1, LOOP_NONE, bi_includes},
	{"startsWith", 1, 1, LOOP_NONE, bi_starts_with},
	{"endsWith", 1, 1, LOOP_NONE, bi_ends_with},
	{"toLowerCase", 0, 0, LOOP_NONE, bi_to_lower},
	{"toUpperCase", 0, 0, LOOP_NONE, bi_to_upper},
	{"trim", 0, 0, LOOP_NONE, bi_trim},
	{"split", 1, 1, LOOP_NONE, bi_split},
	{"slice", 1, 2, LOOP_NONE, bi_slice},
	{"indexOf", 1, 1, LOOP_NONE, bi_index_of},
	{"some", 1, 1, LOOP_SOME, NULL},
	{"every", 1, 1, LOOP_EVERY, NULL},
	{"filter", 1, 1, LOOP_FILTER, NULL},
	{"map", 1, 1, LOOP_MAP, NULL},
	{"first", 0, 0, LOOP_NONE, bi_first},
	{"last", 0, 0, LOOP_NONE, bi_last},
	{"flatten", 0, 0, LOOP_NONE, bi_flatten},
	{"join", 1, 1, LOOP_NONE, bi_join},
	{NULL, 0, 0, LOOP_NONE, NULL},
};

#define N_BUILTINS (sizeof(rules__builtins) / sizeof(rules__builtins[0]) - 1)

/* Index of name in a NULL-terminated table, -1 if absent. */
static int table_lookup(const struct rules_builtin *t, const char *name, size_t len)
{
	for (size_t i = 0; t[i].name; i++)
		if (strlen(t[i].name) == len && memcmp(t[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

int builtin__lookup(const char *name, size_t len)
{
	return table_lookup(rules__builtins, name, len);
}

void builtin__arity(int index, int *min_args, int *max_args, bool *takes_fn)
{
	*min_args = rules__builtins[index].min_args;
	*max_args = rules__builtins[index].max_args;
	*takes_fn = rules__builtins[index].loop != LOOP_NONE;
}

const char *builtin__name(size_t i)
{
	return i < N_BUILTINS ? rules__builtins[i].name : NULL;
}

/* ---- builtin functions (Forge helpers) ---- */

/* event.changelog.items as a JSON array, or NULL. */
static const json_t *changelog_items(struct rules_ctx *c)
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
static int changelog_test(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *args,
			  const char *str_key, const char *raw_key, struct rules_value *out)
{
	const json_t *items = changelog_items(c), *it;
	size_t i;

	for (size_t k = 0; k < n->u.m.nargs; k++)
		if (want_string_arg(c, n, &args[k]) < 0)
			return EV_ERR;
	json_array_foreach (items, i, it) {
		if (value__step(c, n) < 0)
			return EV_ERR;
		if (!json_str_eq(json_object_get(it, "field"), &args[0]) &&
		    !json_str_eq(json_object_get(it, "fieldId"), &args[0]))
			continue;
		if (!str_key || json_str_eq(json_object_get(it, str_key), &args[1]) ||
		    json_str_eq(json_object_get(it, raw_key), &args[1])) {
			value__set_bool(out, true);
			return EV_OK;
		}
	}
	value__set_bool(out, false);
	return EV_OK;
}

static int fn_changed(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
		      const struct rules_value *args, struct rules_value *out)
{
	(void)recv;
	return changelog_test(c, n, args, NULL, NULL, out);
}

static int fn_changed_to(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
			 const struct rules_value *args, struct rules_value *out)
{
	(void)recv;
	return changelog_test(c, n, args, "toString", "to", out);
}

static int fn_changed_from(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
			   const struct rules_value *args, struct rules_value *out)
{
	(void)recv;
	return changelog_test(c, n, args, "fromString", "from", out);
}

static int fn_now(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
		  const struct rules_value *args, struct rules_value *out)
{
	struct timespec ts;

	(void)c, (void)n, (void)recv, (void)args;
	clock_gettime(CLOCK_REALTIME, &ts);
	value__set_num(out, floor((double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6));
	return EV_OK;
}

/* Collects mention ids of an ADF node tree: {type: mention, attrs: {id}}.
 * items == NULL counts only. */
static int adf_mentions(struct rules_ctx *c, const struct rules_node *n, const json_t *node,
			struct rules_value *items, size_t *k, int depth)
{
	if (value__step(c, n) < 0)
		return EV_ERR;
	if (depth > 200)
		return value__fail(c, n, "mentions(): document nested too deeply");
	if (json_is_array(node)) {
		size_t i;
		const json_t *x;
		json_array_foreach (node, i, x)
			if (adf_mentions(c, n, x, items, k, depth + 1) < 0)
				return EV_ERR;
		return EV_OK;
	}
	if (!json_is_object(node))
		return EV_OK;
	const json_t *type = json_object_get(node, "type");
	const json_t *id = json_object_get(json_object_get(node, "attrs"), "id");
	if (json_is_string(type) && !strcmp(json_string_value(type), "mention") && json_is_string(id)) {
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
			value__set_str(&items[k], id, (size_t)(end - id));
		k++;
	}
	return k;
}

static int fn_mentions(struct rules_ctx *c, const struct rules_node *n, const struct rules_value *recv,
		       const struct rules_value *args, struct rules_value *out)
{
	const struct rules_value *v = &args[0];
	struct rules_value *items;
	size_t count = 0;

	(void)recv;
	if (v->kind == RULES_V_NULL) {
		value__set_list(out, NULL, 0);
		return EV_OK;
	}
	if (v->kind == RULES_V_STR) {
		count = wiki_mentions(v->u.str.s, v->u.str.len, NULL);
		if (!(items = value__alloc_items(c, count)))
			return value__oom(c, n);
		wiki_mentions(v->u.str.s, v->u.str.len, items);
		value__set_list(out, items, count);
		return EV_OK;
	}
	if (v->kind != RULES_V_MAP && v->kind != RULES_V_ARR)
		return value__fail(c, n, "mentions() expects a String or an ADF document, got %s",
				   eval__type_name(v));
	if (adf_mentions(c, n, v->json, NULL, &count, 0) < 0)
		return EV_ERR;
	if (!(items = value__alloc_items(c, count)))
		return value__oom(c, n);
	count = 0;
	if (adf_mentions(c, n, v->json, items, &count, 0) < 0)
		return EV_ERR;
	value__set_list(out, items, count);
	return EV_OK;
}

const struct rules_builtin rules__funcs[] = {
	/* ORDER RULES_FN: docs/rules.md §4.5 lists them */
	{"changed", 1, 1, LOOP_NONE, fn_changed},	   {"changedTo", 2, 2, LOOP_NONE, fn_changed_to},
	{"changedFrom", 2, 2, LOOP_NONE, fn_changed_from}, {"now", 0, 0, LOOP_NONE, fn_now},
	{"mentions", 1, 1, LOOP_NONE, fn_mentions},	   {NULL, 0, 0, LOOP_NONE, NULL},
};

#define N_FUNCS (sizeof(rules__funcs) / sizeof(rules__funcs[0]) - 1)

int func__lookup(const char *name, size_t len)
{
	return table_lookup(rules__funcs, name, len);
}

void func__arity(int index, int *min_args, int *max_args)
{
	*min_args = rules__funcs[index].min_args;
	*max_args = rules__funcs[index].max_args;
}

const char *func__name(size_t i)
{
	return i < N_FUNCS ? rules__funcs[i].name : NULL;
}
