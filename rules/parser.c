/* parser.c - precedence-climbing parser for rule expressions (the check
 * pass that follows is check.c), and the AST dump for tests.
 *
 *   expr    -> 'let' name '=' expr ';' expr | subexpr(0) [ '?' expr ':' expr ]
 *   subexpr -> (unop subexpr(UNARY) | postfix) { binop subexpr(right priority) }
 *   postfix -> primary { '.' name | '?.' name | '?.' '[' expr ']' | '[' expr ']' | '(' args ')' }
 *   primary -> number | string | name | true | false | null | '(' expr ')' | '[' [expr {',' expr}] ']'
 *            | '{' [key ':' expr {',' key ':' expr}] '}' | name '=>' expr | '(' name ')' '=>' expr
 *
 * The parser stops at the first syntax error of an expression (reporting it
 * with its exact position) and never unwinds with longjmp: every production
 * returns NULL on failure.
 *
 * Ownership: nodes and decoded strings go to the caller's
 * arena. Threads: one compile per thread; the result is immutable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_internal.h"

#define PARSE_MAX_DEPTH 64  /* nested parens / brackets / unary operators */

struct parser {
	struct rules_lexer lx;
	struct rules_token tok; /* current token */
	struct rules_arena *arena;
	const struct rules_srcmap *map;
	struct rules_diags *diags;
	int depth;
	bool failed;
	uint32_t prev_end; /* end of the token before p->tok */
};

/* Binary operator priorities {left, right}; equal values = left associative.
 * ORDER RULES_TOK for the operator tokens below; `in` and `matches` are
 * names and get the relational priority. */
enum {
	PRIO_COALESCE = 2,
	PRIO_OR = 3,
	PRIO_AND = 4,
	PRIO_EQUALITY = 7,
	PRIO_RELATIONAL = 8,
	PRIO_ADDITIVE = 10,
	PRIO_MULTIPLICATIVE = 11,
	PRIO_UNARY = 12,
};

static void syntax_error(struct parser *p, size_t at, const char *fmt, ...) RULES_FMT(3, 4);

static void syntax_error(struct parser *p, size_t at, const char *fmt, ...)
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

static void advance(struct parser *p)
{
	p->prev_end = p->tok.end;
	p->tok = lexer__next(&p->lx);
	if (p->tok.kind == RULES_T_ERROR)
		syntax_error(p, p->lx.error_pos, "%s", p->lx.error);
}

/* Describes the current token for messages: 'name' for identifiers. */
static const char *tok_desc(struct parser *p, char *buf, size_t n)
{
	const struct rules_token *t = &p->tok;

	if (t->kind == RULES_T_IDENT || t->kind == RULES_T_NUMBER) {
		int len = (int)(t->end - t->start);
		snprintf(buf, n, "'%.*s'", len > 40 ? 40 : len, p->lx.src + t->start);
		return buf;
	}
	return lexer__token_name(t->kind);
}

static bool tok_is_name(struct parser *p, const char *name)
{
	size_t n = strlen(name);
	return p->tok.kind == RULES_T_IDENT && p->tok.end - p->tok.start == n &&
	       memcmp(p->lx.src + p->tok.start, name, n) == 0;
}

static bool expect(struct parser *p, enum rules_tok kind, const char *context)
{
	char buf[64];

	if (p->failed)
		return false;
	if (p->tok.kind != kind) {
		if (p->tok.kind == RULES_T_ASSIGN)
			syntax_error(p, p->tok.start, "unexpected '=' (use '==' to compare)");
		else
			syntax_error(p, p->tok.start, "expected %s %s, found %s",
				     lexer__token_name(kind), context, tok_desc(p, buf, sizeof(buf)));
		return false;
	}
	advance(p);
	return !p->failed;
}

/* "unexpected X", with the hint for a lone '='. */
static void unexpected(struct parser *p, const char *after)
{
	char buf[64];

	if (p->tok.kind == RULES_T_ASSIGN)
		syntax_error(p, p->tok.start, "unexpected '=' (use '==' to compare)");
	else
		syntax_error(p, p->tok.start, "unexpected %s%s", tok_desc(p, buf, sizeof(buf)), after);
}

/* True if the tokens after the current one are kinds[0..n). */
static bool peek_is(struct parser *p, const enum rules_tok *kinds, size_t n)
{
	struct rules_lexer copy = p->lx;

	for (size_t i = 0; i < n; i++)
		if (lexer__next(&copy).kind != kinds[i])
			return false;
	return true;
}

static struct rules_node *new_node(struct parser *p, enum rules_node_kind kind, size_t start,
				   size_t end)
{
	struct rules_node *n = arena__alloc(p->arena, sizeof(*n));

	if (!n) {
		syntax_error(p, start, "out of memory");
		return NULL;
	}
	n->kind = (unsigned char)kind;
	n->start = (uint32_t)start;
	n->end = (uint32_t)end;
	return n;
}

static bool enter(struct parser *p)
{
	if (++p->depth > PARSE_MAX_DEPTH) {
		syntax_error(p, p->tok.start, "expression nested too deeply");
		return false;
	}
	return true;
}

static struct rules_node *parse_expr(struct parser *p);
static struct rules_node *parse_subexpr(struct parser *p, int limit);

/* Parses `expr {, expr} close`; the opening token is already consumed. */
static bool parse_list(struct parser *p, enum rules_tok close, const char *what,
		       struct rules_node ***items_out, size_t *n_out)
{
	struct rules_node **items = NULL;
	size_t n = 0, cap = 0;

	if (p->tok.kind != close) {
		for (;;) {
			struct rules_node *e = parse_expr(p);
			if (!e)
				return false;
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 4;
				struct rules_node **ni = arena__alloc(p->arena, ncap * sizeof(*ni));
				if (!ni) {
					syntax_error(p, p->tok.start, "out of memory");
					return false;
				}
				if (n)
					memcpy(ni, items, n * sizeof(*ni));
				items = ni;
				cap = ncap;
			}
			items[n++] = e;
			if (p->tok.kind != RULES_T_COMMA)
				break;
			advance(p);
			if (p->failed)
				return false;
		}
	}
	if (!expect(p, close, what))
		return false;
	*items_out = items;
	*n_out = n;
	return true;
}

/* name '=>' body, or '(' name ')' '=>' body; the current token is the name
 * or the '('. */
static struct rules_node *parse_arrow(struct parser *p)
{
	struct rules_token name;

	if (p->tok.kind == RULES_T_LPAREN)
		advance(p);
	name = p->tok;
	advance(p);
	if (p->tok.kind == RULES_T_RPAREN)
		advance(p);
	advance(p); /* '=>' */
	if (p->failed || !enter(p))
		return NULL;
	struct rules_node *body = parse_expr(p);
	p->depth--;
	if (!body)
		return NULL;
	struct rules_node *n = new_node(p, RULES_N_ARROW, name.start, name.end);
	if (!n)
		return NULL;
	n->u.bind.name = arena__strndup(p->arena, p->lx.src + name.start, name.end - name.start);
	n->u.bind.name_len = name.end - name.start;
	n->u.bind.body = body;
	n->end = body->end;
	return n->u.bind.name ? n : NULL;
}

/* '{' [key ':' expr {',' key ':' expr}] '}' with key = name | string. */
static struct rules_node *parse_map(struct parser *p)
{
	struct rules_node *n = new_node(p, RULES_N_MAP, p->tok.start, p->tok.end);
	size_t cap = 0;
	char buf[64];

	if (!n || !enter(p))
		return NULL;
	advance(p);
	while (!p->failed && p->tok.kind != RULES_T_RBRACE) {
		struct rules_token k = p->tok;
		const char *key;
		size_t klen;

		if (n->u.map.n) {
			if (p->tok.kind != RULES_T_COMMA)
				break; /* reported below as a missing '}' */
			advance(p);
			k = p->tok;
		}
		if (k.kind == RULES_T_IDENT) {
			key = arena__strndup(p->arena, p->lx.src + k.start, k.end - k.start);
			klen = k.end - k.start;
		} else if (k.kind == RULES_T_STRING) {
			char *out = arena__alloc(p->arena, k.end - k.start + 1);
			size_t err_at;
			const char *msg;
			long len = out ? lexer__decode_string(p->lx.src + k.start, k.end - k.start, out,
							    NULL, &err_at, &msg)
				       : -1;
			if (len < 0) {
				syntax_error(p, k.start, "out of memory");
				return NULL;
			}
			key = out;
			klen = (size_t)len;
		} else {
			syntax_error(p, k.start, "expected a map key (a name or a string), found %s",
				     tok_desc(p, buf, sizeof(buf)));
			return NULL;
		}
		advance(p);
		if (!expect(p, RULES_T_COLON, "after the map key"))
			return NULL;
		struct rules_node *v = parse_expr(p);
		if (!v || !key)
			return NULL;
		if (n->u.map.n == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			const char **nk = arena__alloc(p->arena, ncap * sizeof(*nk));
			size_t *nl = arena__alloc(p->arena, ncap * sizeof(*nl));
			struct rules_node **nv = arena__alloc(p->arena, ncap * sizeof(*nv));
			if (!nk || !nl || !nv) {
				syntax_error(p, k.start, "out of memory");
				return NULL;
			}
			if (n->u.map.n) {
				memcpy(nk, n->u.map.keys, n->u.map.n * sizeof(*nk));
				memcpy(nl, n->u.map.key_lens, n->u.map.n * sizeof(*nl));
				memcpy(nv, n->u.map.values, n->u.map.n * sizeof(*nv));
			}
			n->u.map.keys = nk;
			n->u.map.key_lens = nl;
			n->u.map.values = nv;
			cap = ncap;
		}
		for (size_t i = 0; i < n->u.map.n; i++) {
			if (n->u.map.key_lens[i] == klen && !memcmp(n->u.map.keys[i], key, klen)) {
				syntax_error(p, k.start, "duplicate key '%s' in map literal", key);
				return NULL;
			}
		}
		n->u.map.keys[n->u.map.n] = key;
		n->u.map.key_lens[n->u.map.n] = klen;
		n->u.map.values[n->u.map.n++] = v;
	}
	if (!expect(p, RULES_T_RBRACE, "to close the map"))
		return NULL;
	p->depth--;
	n->end = p->prev_end;
	return n;
}

static struct rules_node *parse_primary(struct parser *p)
{
	static const enum rules_tok arrow1[] = {RULES_T_ARROW};
	static const enum rules_tok arrow3[] = {RULES_T_IDENT, RULES_T_RPAREN, RULES_T_ARROW};
	struct rules_token t = p->tok;
	struct rules_node *n = NULL;
	char buf[64];

	if (p->failed)
		return NULL;
	if ((t.kind == RULES_T_IDENT && peek_is(p, arrow1, 1)) ||
	    (t.kind == RULES_T_LPAREN && peek_is(p, arrow3, 3)))
		return parse_arrow(p);
	switch (t.kind) {
	case RULES_T_NUMBER:
		n = new_node(p, RULES_N_NUM, t.start, t.end);
		if (n)
			n->u.num = t.num;
		advance(p);
		break;
	case RULES_T_STRING: {
		n = new_node(p, RULES_N_STR, t.start, t.end);
		if (!n)
			break;
		char *out = arena__alloc(p->arena, t.end - t.start + 1);
		size_t err_at;
		const char *msg;
		long len = out ? lexer__decode_string(p->lx.src + t.start, t.end - t.start, out,
							NULL, &err_at, &msg)
			       : -1;
		if (len < 0) { /* the lexer validated escapes; only OOM gets here */
			syntax_error(p, t.start, "out of memory");
			return NULL;
		}
		n->u.str.s = out;
		n->u.str.len = (size_t)len;
		advance(p);
		break;
	}
	case RULES_T_IDENT:
		if (tok_is_name(p, "true") || tok_is_name(p, "false")) {
			n = new_node(p, RULES_N_BOOL, t.start, t.end);
			if (n)
				n->u.b = tok_is_name(p, "true");
		} else if (tok_is_name(p, "null")) {
			n = new_node(p, RULES_N_NULL, t.start, t.end);
		} else if (tok_is_name(p, "in") || tok_is_name(p, "matches") ||
			   tok_is_name(p, "let")) {
			syntax_error(p, t.start, "unexpected %s", tok_desc(p, buf, sizeof(buf)));
			return NULL;
		} else {
			n = new_node(p, RULES_N_IDENT, t.start, t.end);
			if (n) {
				n->u.str.s = p->lx.src + t.start;
				n->u.str.len = t.end - t.start;
			}
		}
		advance(p);
		break;
	case RULES_T_LPAREN:
		if (!enter(p)) /* before advance: the error points at this '(' */
			return NULL;
		advance(p);
		n = parse_expr(p);
		p->depth--;
		if (!n || !expect(p, RULES_T_RPAREN, "to close '('"))
			return NULL;
		break;
	case RULES_T_LBRACKET:
		n = new_node(p, RULES_N_LIST, t.start, t.end);
		if (!n || !enter(p))
			return NULL;
		advance(p);
		if (!parse_list(p, RULES_T_RBRACKET, "to close the list", &n->u.list.items,
				&n->u.list.n))
			return NULL;
		p->depth--;
		n->end = p->prev_end;
		break;
	case RULES_T_LBRACE:
		return parse_map(p);
	case RULES_T_ERROR:
		return NULL;
	default:
		unexpected(p, "");
		return NULL;
	}
	return p->failed ? NULL : n;
}

static struct rules_node *parse_postfix(struct parser *p)
{
	struct rules_node *obj = parse_primary(p);
	bool chained = false;
	char buf[64];

	while (obj && !p->failed) {
		struct rules_token t = p->tok;
		struct rules_node *n;

		if (t.kind == RULES_T_DOT || t.kind == RULES_T_QDOT) {
			advance(p);
			if (p->failed)
				return NULL;
			if (t.kind == RULES_T_QDOT && p->tok.kind == RULES_T_LBRACKET)
				goto index; /* a?.[expr] */
			if (p->tok.kind != RULES_T_IDENT) {
				syntax_error(p, p->tok.start, "expected a property name after %s, found %s",
					     lexer__token_name(t.kind), tok_desc(p, buf, sizeof(buf)));
				return NULL;
			}
			n = new_node(p, RULES_N_MEMBER, obj->start, p->tok.end);
			if (!n)
				return NULL;
			n->optional = t.kind == RULES_T_QDOT;
			n->u.m.obj = obj;
			n->u.m.name = arena__strndup(p->arena, p->lx.src + p->tok.start,
						     p->tok.end - p->tok.start);
			n->u.m.name_len = p->tok.end - p->tok.start;
			/* errors about the property point at its name */
			n->start = p->tok.start;
			advance(p);
		} else if (t.kind == RULES_T_LBRACKET) {
index:;
			size_t open = p->tok.start;
			advance(p);
			if (!enter(p))
				return NULL;
			struct rules_node *ix = parse_expr(p);
			p->depth--;
			if (!ix || !expect(p, RULES_T_RBRACKET, "to close '['"))
				return NULL;
			n = new_node(p, RULES_N_INDEX, open, p->prev_end);
			if (!n)
				return NULL;
			n->optional = t.kind == RULES_T_QDOT;
			n->u.m.obj = obj;
			n->u.m.index = ix;
		} else if (t.kind == RULES_T_LPAREN) {
			struct rules_node **args;
			size_t nargs;

			if (obj->kind != RULES_N_MEMBER && obj->kind != RULES_N_IDENT) {
				syntax_error(p, t.start, "only methods can be called");
				return NULL;
			}
			advance(p);
			if (!enter(p))
				return NULL;
			if (!parse_list(p, RULES_T_RPAREN, "to close the argument list", &args, &nargs))
				return NULL;
			p->depth--;
			if (obj->kind == RULES_N_IDENT) {
				/* u.str and u.m overlap: read the name first */
				const char *s = obj->u.str.s;
				size_t len = obj->u.str.len;
				obj->kind = RULES_N_FUNC;
				obj->u.m.obj = NULL;
				obj->u.m.name = arena__strndup(p->arena, s, len);
				obj->u.m.name_len = len;
				obj->u.m.args = args;
				obj->u.m.nargs = nargs;
				n = obj;
			} else {
				obj->kind = RULES_N_CALL;
				obj->u.m.args = args;
				obj->u.m.nargs = nargs;
				n = obj;
			}
			n->end = p->prev_end;
		} else {
			break;
		}
		if (n->optional)
			chained = true;
		obj = n;
	}
	if (obj && chained)
		obj->chain_end = true;
	return p->failed ? NULL : obj;
}

/* Returns the priority of the current token as a binary operator, 0 if it
 * is none; *kind_out gets the node kind. */
static int binary_priority(struct parser *p, enum rules_node_kind *kind_out)
{
	*kind_out = RULES_N_BINARY;
	switch (p->tok.kind) {
	case RULES_T_COALESCE: *kind_out = RULES_N_COALESCE; return PRIO_COALESCE;
	case RULES_T_OR: *kind_out = RULES_N_OR; return PRIO_OR;
	case RULES_T_AND: *kind_out = RULES_N_AND; return PRIO_AND;
	case RULES_T_EQ:
	case RULES_T_NE: return PRIO_EQUALITY;
	case RULES_T_LT:
	case RULES_T_LE:
	case RULES_T_GT:
	case RULES_T_GE: return PRIO_RELATIONAL;
	case RULES_T_PLUS:
	case RULES_T_MINUS: return PRIO_ADDITIVE;
	case RULES_T_STAR:
	case RULES_T_SLASH:
	case RULES_T_PERCENT: return PRIO_MULTIPLICATIVE;
	case RULES_T_IDENT:
		if (tok_is_name(p, "in"))
			return PRIO_RELATIONAL;
		if (tok_is_name(p, "matches")) {
			*kind_out = RULES_N_MATCHES;
			return PRIO_RELATIONAL;
		}
		return 0;
	default: return 0;
	}
}

static struct rules_node *parse_subexpr(struct parser *p, int limit)
{
	struct rules_node *left;

	if (p->failed)
		return NULL;
	if (p->tok.kind == RULES_T_NOT || p->tok.kind == RULES_T_MINUS) {
		struct rules_token t = p->tok;
		if (!enter(p))
			return NULL;
		advance(p);
		struct rules_node *operand = parse_subexpr(p, PRIO_UNARY);
		p->depth--;
		if (!operand)
			return NULL;
		left = new_node(p, RULES_N_UNARY, t.start, operand->end);
		if (!left)
			return NULL;
		left->op = (unsigned char)t.kind;
		left->u.ops.a = operand;
	} else {
		left = parse_postfix(p);
	}
	for (;;) {
		enum rules_node_kind kind;
		int prio;

		if (!left || p->failed)
			return NULL;
		prio = binary_priority(p, &kind);
		if (prio == 0 || prio <= limit)
			break;
		struct rules_token op = p->tok;
		advance(p);
		struct rules_node *right = parse_subexpr(p, prio);
		if (!right)
			return NULL;
		struct rules_node *n = new_node(p, kind, op.start, op.end);
		if (!n)
			return NULL;
		n->op = (unsigned char)op.kind;
		if (kind == RULES_N_MATCHES) {
			if (right->kind != RULES_N_STR) {
				syntax_error(p, right->start,
					     "the pattern of 'matches' must be a string literal");
				return NULL;
			}
			n->u.match.subject = left;
			n->u.match.pattern = right;
		} else {
			n->u.ops.a = left;
			n->u.ops.b = right;
		}
		left = n;
	}
	return left;
}

static struct rules_node *parse_let(struct parser *p)
{
	char buf[64];

	advance(p); /* 'let' */
	if (p->failed)
		return NULL;
	struct rules_token name = p->tok;
	if (name.kind != RULES_T_IDENT) {
		syntax_error(p, name.start, "expected a variable name after 'let', found %s",
			     tok_desc(p, buf, sizeof(buf)));
		return NULL;
	}
	advance(p);
	if (p->failed)
		return NULL;
	if (p->tok.kind != RULES_T_ASSIGN) {
		syntax_error(p, p->tok.start, "expected '=' after 'let %.*s', found %s",
			     (int)(name.end - name.start), p->lx.src + name.start,
			     tok_desc(p, buf, sizeof(buf)));
		return NULL;
	}
	advance(p);
	if (!enter(p))
		return NULL;
	struct rules_node *value = parse_expr(p);
	if (!value || !expect(p, RULES_T_SEMI, "after the value of 'let'"))
		return NULL;
	struct rules_node *body = parse_expr(p);
	p->depth--;
	if (!body)
		return NULL;
	struct rules_node *n = new_node(p, RULES_N_LET, name.start, name.end);
	if (!n)
		return NULL;
	n->u.bind.name = arena__strndup(p->arena, p->lx.src + name.start, name.end - name.start);
	n->u.bind.name_len = name.end - name.start;
	n->u.bind.value = value;
	n->u.bind.body = body;
	return n->u.bind.name ? n : NULL;
}

static struct rules_node *parse_expr(struct parser *p)
{
	if (tok_is_name(p, "let"))
		return parse_let(p);
	struct rules_node *cond = parse_subexpr(p, 0);

	if (!cond || p->tok.kind != RULES_T_QUESTION)
		return cond;
	struct rules_token q = p->tok;
	advance(p);
	if (!enter(p))
		return NULL;
	struct rules_node *a = parse_expr(p);
	if (!a || !expect(p, RULES_T_COLON, "in conditional expression"))
		return NULL;
	struct rules_node *b = parse_expr(p);
	p->depth--;
	if (!b)
		return NULL;
	struct rules_node *n = new_node(p, RULES_N_COND, q.start, q.end);
	if (!n)
		return NULL;
	n->u.ops.a = cond;
	n->u.ops.b = a;
	n->u.ops.c = b;
	return n;
}

/* ---- entry point (check.c) ---- */

struct rules_node *parser__parse(struct rules_arena *a, const char *src, size_t len,
				 const struct rules_srcmap *map, struct rules_diags *d)
{
	struct parser p;

	memset(&p, 0, sizeof(p));
	p.arena = a;
	p.map = map;
	p.diags = d;
	lexer__init(&p.lx, src, len);
	advance(&p);
	if (!p.failed && p.tok.kind == RULES_T_EOF) {
		syntax_error(&p, 0, "empty expression");
		return NULL;
	}
	struct rules_node *root = parse_expr(&p);
	if (root && !p.failed && p.tok.kind != RULES_T_EOF)
		unexpected(&p, " after the end of the expression");
	if (!root || p.failed)
		return NULL;
	return root;
}

/* ---- debug dump (tests, tools) ---- */

static void dump_node(const struct rules_node *n, struct rules_strbuf *b)
{
	switch ((enum rules_node_kind)n->kind) {
	case RULES_N_NULL: strbuf__append(b, "null", 4); return;
	case RULES_N_BOOL: strbuf__printf(b, "%s", n->u.b ? "true" : "false"); return;
	case RULES_N_NUM: strbuf__printf(b, "%g", n->u.num); return;
	case RULES_N_STR: strbuf__printf(b, "'%.*s'", (int)n->u.str.len, n->u.str.s); return;
	case RULES_N_IDENT: strbuf__printf(b, "%.*s", (int)n->u.str.len, n->u.str.s); return;
	case RULES_N_VAR: strbuf__printf(b, "%s", n->u.bind.name); return;
	case RULES_N_MAP:
		strbuf__append(b, "{", 1);
		for (size_t i = 0; i < n->u.map.n; i++) {
			strbuf__printf(b, "%s'%s' ", i ? " " : "", n->u.map.keys[i]);
			dump_node(n->u.map.values[i], b);
		}
		strbuf__append(b, "}", 1);
		return;
	case RULES_N_LET:
		strbuf__printf(b, "(let %s ", n->u.bind.name);
		dump_node(n->u.bind.value, b);
		strbuf__append(b, " ", 1);
		dump_node(n->u.bind.body, b);
		strbuf__append(b, ")", 1);
		return;
	case RULES_N_ARROW:
		strbuf__printf(b, "(=> %s ", n->u.bind.name);
		dump_node(n->u.bind.body, b);
		strbuf__append(b, ")", 1);
		return;
	case RULES_N_LIST:
		strbuf__append(b, "[", 1);
		for (size_t i = 0; i < n->u.list.n; i++) {
			if (i)
				strbuf__append(b, " ", 1);
			dump_node(n->u.list.items[i], b);
		}
		strbuf__append(b, "]", 1);
		return;
	case RULES_N_MEMBER:
		strbuf__printf(b, "(%s ", n->optional ? "?." : ".");
		dump_node(n->u.m.obj, b);
		strbuf__printf(b, " %s)", n->u.m.name);
		return;
	case RULES_N_INDEX:
		strbuf__printf(b, "(%s ", n->optional ? "?.[]" : "[]");
		dump_node(n->u.m.obj, b);
		strbuf__append(b, " ", 1);
		dump_node(n->u.m.index, b);
		strbuf__append(b, ")", 1);
		return;
	case RULES_N_CALL:
	case RULES_N_FUNC:
		strbuf__printf(b, "(call %s", n->u.m.name);
		if (n->u.m.obj) {
			strbuf__append(b, " ", 1);
			dump_node(n->u.m.obj, b);
		}
		for (size_t i = 0; i < n->u.m.nargs; i++) {
			strbuf__append(b, " ", 1);
			dump_node(n->u.m.args[i], b);
		}
		strbuf__append(b, ")", 1);
		return;
	case RULES_N_UNARY:
		strbuf__printf(b, "(%s ", n->op == RULES_T_NOT ? "!" : "neg");
		dump_node(n->u.ops.a, b);
		strbuf__append(b, ")", 1);
		return;
	case RULES_N_MATCHES:
		strbuf__append(b, "(matches ", 9);
		dump_node(n->u.match.subject, b);
		strbuf__append(b, " ", 1);
		dump_node(n->u.match.pattern, b);
		strbuf__append(b, ")", 1);
		return;
	case RULES_N_COND:
	case RULES_N_BINARY:
	case RULES_N_AND:
	case RULES_N_OR:
	case RULES_N_COALESCE: {
		const char *op = n->kind == RULES_N_COND ? "?:" : n->kind == RULES_N_AND ? "&&"
				 : n->kind == RULES_N_OR ? "||" : n->kind == RULES_N_COALESCE ? "?" "?"
				 : n->op == RULES_T_IDENT ? "in" : NULL;
		if (op)
			strbuf__printf(b, "(%s ", op);
		else /* token names are quoted: '+' -> + */
			strbuf__printf(b, "(%.*s ", (int)strlen(lexer__token_name(n->op)) - 2,
				       lexer__token_name(n->op) + 1);
		dump_node(n->u.ops.a, b);
		strbuf__append(b, " ", 1);
		dump_node(n->u.ops.b, b);
		if (n->kind == RULES_N_COND) {
			strbuf__append(b, " ", 1);
			dump_node(n->u.ops.c, b);
		}
		strbuf__append(b, ")", 1);
		return;
	}
	case RULES_N__COUNT: break;
	}
}

char *expr__dump(const struct rules_expr *e)
{
	struct rules_strbuf b = {0};

	dump_node(e->root, &b);
	return strbuf__take(&b);
}
