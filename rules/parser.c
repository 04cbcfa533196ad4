/* parser.c - the grammar: a precedence-climbing parser for rule expressions
 * and Jira-expressions statements (tokens, errors and nodes: parse_util.c;
 * the check pass that follows: check.c; the AST dump: dump.c).
 *
 *   program -> letin EOF                      (Jira expressions' top_level_let_in)
 *   letin   -> { ['let'] name '=' expr ';' } ['return'] body [';']
 *   body    -> 'if' '(' expr ')' block { 'else' 'if' '(' expr ')' block } 'else' block
 *            | 'try' block 'catch' '(' [name] ')' block | expr
 *   block   -> '{' letin '}'
 *   expr    -> 'let' name '=' expr ';' expr | throw [ '?' expr ':' expr ]
 *   throw   -> 'throw' throw | subexpr(0)
 *   subexpr -> (unop subexpr(UNARY) | postfix) { binop subexpr(right priority) }
 *   unop    -> '!' | '-' | 'typeof' 
 *   postfix -> primary { '.' name | '?.' name | '?.' '[' expr ']' | '[' expr ']' | '(' args ')' }
 *   primary -> number | string | name | true | false | null | '(' expr ')' | '[' [expr {',' expr}] ']'
 *            | '{' [key ':' expr {',' key ':' expr}] '}' | name '=>' expr | '(' name ')' '=>' expr
 *            | '`' text { '${' expr '}' text } '`'
 *
 * A flat chain of one logical operator (a && b && c ...) is one node with a
 * list of operands, so its length is bounded by the expression's length,
 * not by the nesting limit.
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

#include "parse_internal.h"

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

static struct rules_node *parse_expr(struct parser *p);
static struct rules_node *parse_subexpr(struct parser *p, int limit);
static struct rules_node *parse_template(struct parser *p);
static struct rules_node *parse_binding(struct parser *p, int statement, bool in_block);
#define parse_let(p) parse_binding((p), 0, false)
#define parse_let_stmt(p, in_block) parse_binding((p), 1, (in_block))

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
					parse__syntax_error(p, p->tok.start, "out of memory");
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
			parse__advance(p);
			if (p->failed)
				return false;
		}
	}
	if (!parse__expect(p, close, what))
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
		parse__advance(p);
	name = p->tok;
	parse__advance(p);
	if (p->tok.kind == RULES_T_RPAREN)
		parse__advance(p);
	parse__advance(p); /* '=>' */
	if (p->failed || !parse__enter(p))
		return NULL;
	struct rules_node *body = parse_expr(p);
	p->depth--;
	if (!body)
		return NULL;
	struct rules_node *n = parse__new_node(p, RULES_N_ARROW, name.start, name.end);
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
	struct rules_node *n = parse__new_node(p, RULES_N_MAP, p->tok.start, p->tok.end);
	size_t cap = 0;
	char buf[64];

	if (!n || !parse__enter(p))
		return NULL;
	parse__advance(p);
	while (!p->failed && p->tok.kind != RULES_T_RBRACE) {
		struct rules_token k = p->tok;
		const char *key;
		size_t klen;

		if (n->u.map.n) {
			if (p->tok.kind != RULES_T_COMMA)
				break; /* reported below as a missing '}' */
			parse__advance(p);
			k = p->tok;
		}
		if (k.kind == RULES_T_IDENT) {
			key = arena__strndup(p->arena, p->lx.src + k.start, k.end - k.start);
			klen = k.end - k.start;
		} else if (k.kind == RULES_T_STRING) {
			char *out = arena__alloc(p->arena, k.end - k.start + 1);
			size_t err_at;
			const char *msg;
			long len = out ? lexer__decode_string(p->lx.src + k.start, k.end - k.start, out, NULL,
							      &err_at, &msg)
				       : -1;
			if (len < 0) {
				parse__syntax_error(p, k.start, "out of memory");
				return NULL;
			}
			key = out;
			klen = (size_t)len;
		} else {
			parse__syntax_error(p, k.start, "expected a map key (a name or a string), found %s",
					    parse__tok_desc(p, buf, sizeof(buf)));
			return NULL;
		}
		parse__advance(p);
		if (!parse__expect(p, RULES_T_COLON, "after the map key"))
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
				parse__syntax_error(p, k.start, "out of memory");
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
				parse__syntax_error(p, k.start, "duplicate key '%s' in map literal", key);
				return NULL;
			}
		}
		n->u.map.keys[n->u.map.n] = key;
		n->u.map.key_lens[n->u.map.n] = klen;
		n->u.map.values[n->u.map.n++] = v;
	}
	if (!parse__expect(p, RULES_T_RBRACE, "to close the map"))
		return NULL;
	p->depth--;
	n->end = p->prev_end;
	return n;
}

/* A STR node for the template text raw[a..b) (escapes decoded). */
static bool template_text(struct parser *p, struct rules_node *t, size_t a, size_t b)
{
	const char *src = p->lx.src;
	size_t err_at;
	const char *msg;

	if (a == b)
		return true;
	struct rules_node *s = parse__new_node(p, RULES_N_STR, a, b);
	char *out = s ? arena__alloc(p->arena, b - a + 1) : NULL;
	if (!out) {
		parse__syntax_error(p, a, "out of memory");
		return false;
	}
	/* decode_string skips its first and last byte (the quotes) */
	long len = lexer__decode_string(src + a - 1, b - a + 2, out, NULL, &err_at, &msg);
	if (len < 0) {
		parse__syntax_error(p, a - 1 + err_at, "%s", msg);
		return false;
	}
	s->u.str.s = out;
	s->u.str.len = (size_t)len;
	return parse__list_push(p, t, s);
}

/* `text ${expr} text`: the lexer delimited the whole literal; each
 * substitution is parsed by a lexer over just its bytes, so positions stay
 * those of the source. */
static struct rules_node *parse_template(struct parser *p)
{
	struct rules_token t = p->tok;
	const char *src = p->lx.src;
	struct rules_node *n = parse__new_node(p, RULES_N_TEMPLATE, t.start, t.end);
	size_t i = t.start + 1, text = i, end = t.end - 1;

	if (!n || !parse__enter(p))
		return NULL;
	while (i < end) {
		if (src[i] == '\\') {
			i += 2;
			continue;
		}
		if (src[i] != '$' || i + 1 >= end || src[i + 1] != '{') {
			i++;
			continue;
		}
		if (!template_text(p, n, text, i))
			return NULL;
		size_t open = i, close = lexer__substitution_end(src, end, i + 2);
		struct rules_lexer outer = p->lx;
		struct rules_token outer_tok = p->tok;
		lexer__init(&p->lx, src, close);
		p->lx.pos = open + 2;
		parse__advance(p);
		if (!p->failed && p->tok.kind == RULES_T_EOF) {
			parse__syntax_error(p, open, "empty ${} in template literal");
			return NULL;
		}
		struct rules_node *e = parse_expr(p);
		if (e && !p->failed && p->tok.kind != RULES_T_EOF)
			parse__unexpected(p, " in ${} (expected '}')");
		if (!e || p->failed || !parse__list_push(p, n, e))
			return NULL;
		p->lx = outer;
		p->tok = outer_tok;
		i = text = close + 1;
	}
	if (!template_text(p, n, text, end))
		return NULL;
	p->depth--;
	parse__advance(p);
	return p->failed ? NULL : n;
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
	if ((t.kind == RULES_T_IDENT && parse__peek_is(p, arrow1, 1)) ||
	    (t.kind == RULES_T_LPAREN && parse__peek_is(p, arrow3, 3)))
		return parse_arrow(p);
	switch (t.kind) {
	case RULES_T_NUMBER:
		n = parse__new_node(p, RULES_N_NUM, t.start, t.end);
		if (n)
			n->u.num = t.num;
		parse__advance(p);
		break;
	case RULES_T_STRING: {
		n = parse__new_node(p, RULES_N_STR, t.start, t.end);
		if (!n)
			break;
		char *out = arena__alloc(p->arena, t.end - t.start + 1);
		size_t err_at;
		const char *msg;
		long len = out ? lexer__decode_string(p->lx.src + t.start, t.end - t.start, out, NULL,
						      &err_at, &msg)
			       : -1;
		if (len < 0) { /* the lexer validated escapes; only OOM gets here */
			parse__syntax_error(p, t.start, "out of memory");
			return NULL;
		}
		n->u.str.s = out;
		n->u.str.len = (size_t)len;
		parse__advance(p);
		break;
	}
	case RULES_T_IDENT:
		if (parse__tok_is_name(p, "true") || parse__tok_is_name(p, "false")) {
			n = parse__new_node(p, RULES_N_BOOL, t.start, t.end);
			if (n)
				n->u.b = parse__tok_is_name(p, "true");
		} else if (parse__tok_is_name(p, "null")) {
			n = parse__new_node(p, RULES_N_NULL, t.start, t.end);
		} else if (parse__tok_is_name(p, "in") || parse__tok_is_name(p, "matches") ||
			   parse__tok_is_name(p, "let") || parse__tok_is_name(p, "else") ||
			   parse__tok_is_name(p, "catch")) {
			parse__syntax_error(p, t.start, "unexpected %s",
					    parse__tok_desc(p, buf, sizeof(buf)));
			return NULL;
		} else if (parse__tok_is_name(p, "return") || parse__tok_is_name(p, "if") ||
			   parse__tok_is_name(p, "try")) {
			parse__syntax_error(p, t.start,
					    "'%.*s' starts a statement: it can only come first in the "
					    "expression or in a { } block (after the declarations)",
					    (int)(t.end - t.start), p->lx.src + t.start);
			return NULL;
		} else {
			n = parse__new_node(p, RULES_N_IDENT, t.start, t.end);
			if (n) {
				n->u.str.s = p->lx.src + t.start;
				n->u.str.len = t.end - t.start;
			}
		}
		parse__advance(p);
		break;
	case RULES_T_LPAREN:
		if (!parse__enter(p)) /* before advance: the error points at this '(' */
			return NULL;
		parse__advance(p);
		n = parse_expr(p);
		p->depth--;
		if (!n || !parse__expect(p, RULES_T_RPAREN, "to close '('"))
			return NULL;
		break;
	case RULES_T_LBRACKET:
		n = parse__new_node(p, RULES_N_LIST, t.start, t.end);
		if (!n || !parse__enter(p))
			return NULL;
		parse__advance(p);
		if (!parse_list(p, RULES_T_RBRACKET, "to close the list", &n->u.list.items, &n->u.list.n))
			return NULL;
		p->depth--;
		n->end = p->prev_end;
		break;
	case RULES_T_LBRACE: return parse_map(p);
	case RULES_T_TEMPLATE: return parse_template(p);
	case RULES_T_ERROR: return NULL;
	default: parse__unexpected(p, ""); return NULL;
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
			parse__advance(p);
			if (p->failed)
				return NULL;
			if (t.kind == RULES_T_QDOT && p->tok.kind == RULES_T_LBRACKET)
				goto index; /* a?.[expr] */
			if (p->tok.kind != RULES_T_IDENT) {
				parse__syntax_error(
					p, p->tok.start, "expected a property name after %s, found %s",
					lexer__token_name(t.kind), parse__tok_desc(p, buf, sizeof(buf)));
				return NULL;
			}
			n = parse__new_node(p, RULES_N_MEMBER, obj->start, p->tok.end);
			if (!n)
				return NULL;
			n->optional = t.kind == RULES_T_QDOT;
			n->u.m.obj = obj;
			n->u.m.name =
				arena__strndup(p->arena, p->lx.src + p->tok.start, p->tok.end - p->tok.start);
			n->u.m.name_len = p->tok.end - p->tok.start;
			/* errors about the property point at its name */
			n->start = p->tok.start;
			parse__advance(p);
		} else if (t.kind == RULES_T_LBRACKET) {
index:;
			size_t open = p->tok.start;
			parse__advance(p);
			if (!parse__enter(p))
				return NULL;
			struct rules_node *ix = parse_expr(p);
			p->depth--;
			if (!ix || !parse__expect(p, RULES_T_RBRACKET, "to close '['"))
				return NULL;
			n = parse__new_node(p, RULES_N_INDEX, open, p->prev_end);
			if (!n)
				return NULL;
			n->optional = t.kind == RULES_T_QDOT;
			n->u.m.obj = obj;
			n->u.m.index = ix;
		} else if (t.kind == RULES_T_LPAREN) {
			struct rules_node **args;
			size_t nargs;

			if (obj->kind != RULES_N_MEMBER && obj->kind != RULES_N_IDENT) {
				parse__syntax_error(p, t.start, "only methods can be called");
				return NULL;
			}
			parse__advance(p);
			if (!parse__enter(p))
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
		if (parse__tok_is_name(p, "in"))
			return PRIO_RELATIONAL;
		if (parse__tok_is_name(p, "matches")) {
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
	if (p->tok.kind == RULES_T_NOT || p->tok.kind == RULES_T_MINUS || parse__tok_is_name(p, "typeof")) {
		struct rules_token t = p->tok;
		if (!parse__enter(p))
			return NULL;
		parse__advance(p);
		struct rules_node *operand = parse_subexpr(p, PRIO_UNARY);
		p->depth--;
		if (!operand)
			return NULL;
		left = parse__new_node(p, t.kind == RULES_T_IDENT ? RULES_N_TYPEOF : RULES_N_UNARY, t.start,
				       operand->end);
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
		parse__advance(p);
		struct rules_node *right = parse_subexpr(p, prio);
		if (!right)
			return NULL;
		struct rules_node *n = parse__new_node(p, kind, op.start, op.end);
		if (!n)
			return NULL;
		n->op = (unsigned char)op.kind;
		if (kind == RULES_N_AND || kind == RULES_N_OR || kind == RULES_N_COALESCE) {
			/* one node per flat chain: a && b && c is AND[a, b, c] */
			if (left->kind == kind && left->op == 0) {
				if (!parse__list_push(p, left, right))
					return NULL;
				continue;
			}
			struct rules_node *chain = parse__new_node(p, kind, op.start, op.end);
			if (!chain || !parse__list_push(p, chain, left) || !parse__list_push(p, chain, right))
				return NULL;
			left = chain;
			continue;
		}
		if (kind == RULES_N_MATCHES) {
			if (right->kind != RULES_N_STR) {
				parse__syntax_error(p, right->start,
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

static struct rules_node *parse_letin(struct parser *p, bool in_block);

/* 'let' name '=' expr ';' rest, where rest is an expression (inside an
 * expression) or the rest of a statement list (letin, in_block as given;
 * there 'let' may be left out). */
static struct rules_node *parse_binding(struct parser *p, int statement, bool in_block)
{
	char buf[64];
	bool has_let = parse__tok_is_name(p, "let");

	if (has_let)
		parse__advance(p); /* 'let' */
	if (p->failed)
		return NULL;
	struct rules_token name = p->tok;
	if (name.kind != RULES_T_IDENT) {
		parse__syntax_error(p, name.start, "expected a variable name after 'let', found %s",
				    parse__tok_desc(p, buf, sizeof(buf)));
		return NULL;
	}
	parse__advance(p);
	if (p->failed)
		return NULL;
	if (p->tok.kind != RULES_T_ASSIGN) {
		parse__syntax_error(p, p->tok.start, "expected '=' after 'let %.*s', found %s",
				    (int)(name.end - name.start), p->lx.src + name.start,
				    parse__tok_desc(p, buf, sizeof(buf)));
		return NULL;
	}
	size_t assign_at = p->tok.start;
	parse__advance(p);
	if (!parse__enter(p))
		return NULL;
	struct rules_node *value = parse_expr(p);
	if (value && !p->failed && !has_let && p->tok.kind != RULES_T_SEMI) {
		/* `a = b` alone is far more often a comparison than a declaration */
		parse__syntax_error(p, assign_at, "unexpected '=' (use '==' to compare)");
		return NULL;
	}
	if (!value || !parse__expect(p, RULES_T_SEMI, "after the value of 'let'"))
		return NULL;
	struct rules_node *body = statement ? parse_letin(p, in_block) : parse_expr(p);
	p->depth--;
	if (!body)
		return NULL;
	struct rules_node *n = parse__new_node(p, RULES_N_LET, name.start, name.end);
	if (!n)
		return NULL;
	n->u.bind.name = arena__strndup(p->arena, p->lx.src + name.start, name.end - name.start);
	n->u.bind.name_len = name.end - name.start;
	n->u.bind.value = value;
	n->u.bind.body = body;
	return n->u.bind.name ? n : NULL;
}

/* 'throw' throw | subexpr(0) */
static struct rules_node *parse_throw(struct parser *p)
{
	if (!parse__tok_is_name(p, "throw"))
		return parse_subexpr(p, 0);
	struct rules_token t = p->tok;
	if (!parse__enter(p))
		return NULL;
	parse__advance(p);
	struct rules_node *operand = p->failed ? NULL : parse_throw(p);
	p->depth--;
	if (!operand)
		return NULL;
	struct rules_node *n = parse__new_node(p, RULES_N_THROW, t.start, operand->end);
	if (n)
		n->u.ops.a = operand;
	return n;
}

static struct rules_node *parse_expr(struct parser *p)
{
	if (parse__tok_is_name(p, "let"))
		return parse_let(p);
	struct rules_node *cond = parse_throw(p);

	if (!cond || p->tok.kind != RULES_T_QUESTION)
		return cond;
	struct rules_token q = p->tok;
	parse__advance(p);
	if (!parse__enter(p))
		return NULL;
	struct rules_node *a = parse_expr(p);
	if (!a || !parse__expect(p, RULES_T_COLON, "in conditional expression"))
		return NULL;
	struct rules_node *b = parse_expr(p);
	p->depth--;
	if (!b)
		return NULL;
	struct rules_node *n = parse__new_node(p, RULES_N_COND, q.start, q.end);
	if (!n)
		return NULL;
	n->u.ops.a = cond;
	n->u.ops.b = a;
	n->u.ops.c = b;
	return n;
}

/* ---- statements (Jira expressions' top_level_let_in) ---- */

static struct rules_node *parse_letin(struct parser *p, bool in_block);

/* '{' letin '}' */
static struct rules_node *parse_block(struct parser *p, const char *what)
{
	char buf[64];

	if (p->failed)
		return NULL;
	if (p->tok.kind != RULES_T_LBRACE) {
		parse__syntax_error(p, p->tok.start, "expected '{' to open the block %s, found %s", what,
				    parse__tok_desc(p, buf, sizeof(buf)));
		return NULL;
	}
	if (!parse__enter(p))
		return NULL;
	parse__advance(p);
	struct rules_node *body = p->failed ? NULL : parse_letin(p, true);
	p->depth--;
	if (!body || !parse__expect(p, RULES_T_RBRACE, "to close the block"))
		return NULL;
	return body;
}

/* 'if' '(' expr ')' block { 'else' 'if' ... } 'else' block */
static struct rules_node *parse_if(struct parser *p)
{
	struct rules_token t = p->tok;

	parse__advance(p); /* 'if' */
	if (!parse__expect(p, RULES_T_LPAREN, "after 'if'") || !parse__enter(p))
		return NULL;
	struct rules_node *cond = parse_expr(p);
	p->depth--;
	if (!cond || !parse__expect(p, RULES_T_RPAREN, "to close the condition of 'if'"))
		return NULL;
	struct rules_node *then = parse_block(p, "after 'if (...)'");
	if (!then)
		return NULL;
	if (!parse__tok_is_name(p, "else")) {
		parse__syntax_error(p, p->tok.start,
				    "'if' needs an 'else' block (every Jira expression has a value)");
		return NULL;
	}
	parse__advance(p);
	struct rules_node *other = NULL;
	if (parse__tok_is_name(p, "if")) {
		if (!parse__enter(p))
			return NULL;
		other = parse_if(p);
		p->depth--;
	} else {
		other = parse_block(p, "after 'else'");
	}
	if (!other)
		return NULL;
	struct rules_node *n = parse__new_node(p, RULES_N_IF, t.start, t.end);
	if (n) {
		n->u.ops.a = cond;
		n->u.ops.b = then;
		n->u.ops.c = other;
	}
	return n;
}

/* 'try' block 'catch' '(' [name] ')' block */
static struct rules_node *parse_try(struct parser *p)
{
	struct rules_token t = p->tok, name = {RULES_T_EOF, 0, 0, 0};
	char buf[64];

	parse__advance(p); /* 'try' */
	struct rules_node *body = parse_block(p, "after 'try'");
	if (!body)
		return NULL;
	if (!parse__tok_is_name(p, "catch")) {
		parse__syntax_error(p, p->tok.start, "expected 'catch' after the 'try' block, found %s",
				    parse__tok_desc(p, buf, sizeof(buf)));
		return NULL;
	}
	parse__advance(p);
	if (!parse__expect(p, RULES_T_LPAREN, "after 'catch'"))
		return NULL;
	if (p->tok.kind == RULES_T_IDENT) {
		name = p->tok;
		parse__advance(p);
	}
	if (!parse__expect(p, RULES_T_RPAREN, "after the name of the caught error"))
		return NULL;
	struct rules_node *handler = parse_block(p, "after 'catch (...)'");
	if (!handler)
		return NULL;
	struct rules_node *n =
		parse__new_node(p, RULES_N_TRY, name.end ? name.start : t.start, name.end ? name.end : t.end);
	if (!n)
		return NULL;
	if (name.end) {
		n->u.bind.name = arena__strndup(p->arena, p->lx.src + name.start, name.end - name.start);
		n->u.bind.name_len = name.end - name.start;
		if (!n->u.bind.name)
			return NULL;
	}
	n->u.bind.value = body;
	n->u.bind.body = handler;
	return n;
}

/* A declaration starts with 'let', or with a name followed by a lone '='. */
static bool at_declaration(struct parser *p)
{
	static const enum rules_tok assign[] = {RULES_T_ASSIGN};

	return parse__tok_is_name(p, "let") || (p->tok.kind == RULES_T_IDENT && parse__peek_is(p, assign, 1));
}

/* { ['let'] name '=' expr ';' } ['return'] body [';'], ending before '}'
 * (in a block) or at the end of the expression. */
static struct rules_node *parse_letin(struct parser *p, bool in_block)
{
	char buf[64];

	if (p->failed)
		return NULL;
	if (at_declaration(p)) {
		return parse_let_stmt(p, in_block);
	}
	if (parse__tok_is_name(p, "return")) {
		parse__advance(p);
		if (p->failed)
			return NULL;
		if (p->tok.kind == RULES_T_EOF || p->tok.kind == RULES_T_RBRACE ||
		    p->tok.kind == RULES_T_SEMI) {
			parse__syntax_error(p, p->tok.start, "expected a value after 'return', found %s",
					    parse__tok_desc(p, buf, sizeof(buf)));
			return NULL;
		}
	}
	struct rules_node *body;
	if (parse__tok_is_name(p, "if"))
		body = parse_if(p);
	else if (parse__tok_is_name(p, "try"))
		body = parse_try(p);
	else
		body = parse_expr(p);
	if (!body || p->failed)
		return NULL;
	if (p->tok.kind == RULES_T_SEMI)
		parse__advance(p);
	if (p->failed)
		return NULL;
	if (in_block ? p->tok.kind != RULES_T_RBRACE : p->tok.kind != RULES_T_EOF) {
		parse__unexpected(p, in_block ? " (expected '}': the value of a block comes last)"
					      : " after the end of the expression");
		return NULL;
	}
	return body;
}

/* ---- entry point (check.c) ---- */

struct rules_node *parser__parse(struct rules_arena *a, const char *src, size_t len,
				 const struct rules_srcmap *map, struct rules_diags *d, size_t *js_comment)
{
	struct parser p;

	memset(&p, 0, sizeof(p));
	p.arena = a;
	p.map = map;
	p.diags = d;
	lexer__init(&p.lx, src, len);
	parse__advance(&p);
	if (!p.failed && p.tok.kind == RULES_T_EOF) {
		parse__syntax_error(&p, 0, "empty expression");
		return NULL;
	}
	struct rules_node *root = parse_letin(&p, false);
	*js_comment = p.lx.js_comment;
	if (!root || p.failed)
		return NULL;
	return root;
}
