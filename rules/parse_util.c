/* parse_util.c - the parser's token stream (advance, expect, peek), its
 * error reporting (the first syntax error, with its position) and node
 * allocation; parser.c holds the grammar that uses them.
 *
 * Ownership: nodes go to the parser's arena. Threads: one parser per thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse_internal.h"

void parse__syntax_error(struct parser *p, size_t at, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (p->failed)
		return;
	p->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	srcmap__diag(p->map, p->diags, RULES_SEV_ERROR, at, "%s", msg);
}

void parse__advance(struct parser *p)
{
	p->prev_end = p->tok.end;
	p->tok = lexer__next(&p->lx);
	if (p->tok.kind == RULES_T_ERROR)
		parse__syntax_error(p, p->lx.error_pos, "%s", p->lx.error);
}

/* Describes the current token for messages: 'name' for identifiers. */
const char *parse__tok_desc(struct parser *p, char *buf, size_t n)
{
	const struct rules_token *t = &p->tok;

	if (t->kind == RULES_T_IDENT || t->kind == RULES_T_NUMBER) {
		int len = (int)(t->end - t->start);
		snprintf(buf, n, "'%.*s'", len > 40 ? 40 : len, p->lx.src + t->start);
		return buf;
	}
	return lexer__token_name(t->kind);
}

bool parse__tok_is_name(struct parser *p, const char *name)
{
	size_t n = strlen(name);
	return p->tok.kind == RULES_T_IDENT && p->tok.end - p->tok.start == n &&
	       memcmp(p->lx.src + p->tok.start, name, n) == 0;
}

bool parse__expect(struct parser *p, enum rules_tok kind, const char *context)
{
	char buf[64];

	if (p->failed)
		return false;
	if (p->tok.kind != kind) {
		if (p->tok.kind == RULES_T_ASSIGN)
			parse__syntax_error(p, p->tok.start, "unexpected '=' (use '==' to compare)");
		else
			parse__syntax_error(p, p->tok.start, "expected %s %s, found %s",
					    lexer__token_name(kind), context,
					    parse__tok_desc(p, buf, sizeof(buf)));
		return false;
	}
	parse__advance(p);
	return !p->failed;
}

/* "unexpected X", with the hint for a lone '='. */
void parse__unexpected(struct parser *p, const char *after)
{
	char buf[64];

	if (p->tok.kind == RULES_T_ASSIGN)
		parse__syntax_error(p, p->tok.start, "unexpected '=' (use '==' to compare)");
	else
		parse__syntax_error(p, p->tok.start, "unexpected %s%s", parse__tok_desc(p, buf, sizeof(buf)),
				    after);
}

/* True if the tokens after the current one are kinds[0..n). */
bool parse__peek_is(struct parser *p, const enum rules_tok *kinds, size_t n)
{
	struct rules_lexer copy = p->lx;

	for (size_t i = 0; i < n; i++)
		if (lexer__next(&copy).kind != kinds[i])
			return false;
	return true;
}

struct rules_node *parse__new_node(struct parser *p, enum rules_node_kind kind, size_t start, size_t end)
{
	struct rules_node *n = arena__alloc(p->arena, sizeof(*n));

	if (!n) {
		parse__syntax_error(p, start, "out of memory");
		return NULL;
	}
	n->kind = (unsigned char)kind;
	n->start = (uint32_t)start;
	n->end = (uint32_t)end;
	return n;
}

bool parse__enter(struct parser *p)
{
	if (++p->depth > PARSE_MAX_DEPTH) {
		parse__syntax_error(p, p->tok.start, "expression nested too deeply");
		return false;
	}
	return true;
}

/* Appends item to a node's u.list, growing it in the arena (capacity: the
 * next power of two). */
bool parse__list_push(struct parser *p, struct rules_node *n, struct rules_node *item)
{
	size_t k = n->u.list.n;

	if (k == 0 || (k >= 2 && (k & (k - 1)) == 0)) {
		size_t cap = k ? k * 2 : 2;
		struct rules_node **ni = arena__alloc(p->arena, cap * sizeof(*ni));
		if (!ni) {
			parse__syntax_error(p, item->start, "out of memory");
			return false;
		}
		if (k)
			memcpy(ni, n->u.list.items, k * sizeof(*ni));
		n->u.list.items = ni;
	}
	n->u.list.items[n->u.list.n++] = item;
	return true;
}
