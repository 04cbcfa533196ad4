/* template.c - "text {{ expr }} text" templates, compiled once at load.
 *
 * Each {{ }} segment is an ordinary expression compiled with its position
 * mapped into the rule file; rendering writes strings as they are, null as
 * nothing and every other value as compact JSON. There is no escape for a
 * literal "{{": write {{ '{{' }}.
 *
 * Ownership: parts and expressions live in the caller's arena; rendering
 * returns malloc'd text. Threads: immutable after compile; one scratch per
 * thread for rendering.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_internal.h"

/* Finds the "}}" closing an expression that starts at i, skipping string
 * literals so that '}}' inside quotes does not end it. */
static size_t find_close(const char *s, size_t len, size_t i)
{
	char quote = 0;

	for (; i + 1 < len; i++) {
		if (quote) {
			if (s[i] == '\\')
				i++;
			else if (s[i] == quote)
				quote = 0;
		} else if (s[i] == '\'' || s[i] == '"') {
			quote = s[i];
		} else if (s[i] == '}' && s[i + 1] == '}') {
			return i;
		}
	}
	return (size_t)-1;
}

struct rules_template *template__compile(struct rules_arena *a, const char *src, size_t len,
					 const struct rules_srcmap *map, struct rules_diags *d)
{
	struct rules_template *t = arena__alloc(a, sizeof(*t));
	size_t cap = 0, i = 0;
	bool failed = false;

	if (!t)
		return NULL;
	while (i < len) {
		const char *open = memmem(src + i, len - i, "{{", 2);
		size_t text_end = open ? (size_t)(open - src) : len;
		struct rules_tpart part = {0};

		if (text_end > i) {
			part.text = arena__strndup(a, src + i, text_end - i);
			part.len = text_end - i;
		} else if (open) {
			size_t expr_start = text_end + 2;
			size_t close = find_close(src, len, expr_start);
			if (close == (size_t)-1) {
				srcmap__diag(map, d, RULES_SEV_ERROR, text_end,
					     "unterminated '{{' in template (missing '}}')");
				return NULL;
			}
			struct rules_srcmap sub = *map;
			sub.shift += expr_start;
			part.expr = expr__compile(a, src + expr_start, close - expr_start, &sub, d);
			if (!part.expr)
				failed = true;
			text_end = close + 2;
		}
		if (t->nparts == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			struct rules_tpart *np = arena__alloc(a, ncap * sizeof(*np));
			if (!np)
				return NULL;
			if (t->nparts)
				memcpy(np, t->parts, t->nparts * sizeof(*np));
			t->parts = np;
			cap = ncap;
		}
		t->parts[t->nparts++] = part;
		i = text_end;
	}
	return failed ? NULL : t;
}

int template__render(const struct rules_template *t, const json_t *event, struct rules_scratch *s,
		     char **text, size_t *text_len, char **error)
{
	struct rules_strbuf b = {.limit = s->max_bytes};
	struct rules_value v;

	*text = NULL;
	*error = NULL;
	strbuf__append(&b, "", 0);
	for (size_t i = 0; i < t->nparts; i++) {
		const struct rules_tpart *p = &t->parts[i];
		if (!p->expr) {
			strbuf__append(&b, p->text, p->len);
			continue;
		}
		if (eval__run(p->expr, event, s, &v) < 0) {
			struct rules_strbuf m = {0};
			strbuf__printf(&m, "in {{%.*s}}: ", (int)p->expr->len, p->expr->src);
			eval__error_where(p->expr, s, &m);
			*error = strbuf__take(&m);
			strbuf__free(&b);
			return -1;
		}
		eval__render(&v, &b);
		if (b.over) {
			struct rules_strbuf m = {0};
			s->status = RULES_EVAL_BYTE_LIMIT;
			eval__count(s);
			strbuf__free(&b);
			/* point at the {{...}} that went over */
			snprintf(s->error, sizeof(s->error), "the text needs more than %zu bytes",
				 s->max_bytes);
			s->err_msg_at = 0;
			s->err_at = 0;
			eval__error_where(p->expr, s, &m);
			*error = strbuf__take(&m);
			return -1;
		}
	}
	*text_len = b.len;
	*text = strbuf__take(&b);
	if (!*text) {
		*error = strdup("out of memory");
		return -1;
	}
	return 0;
}
