/* dump.c - the S-expression rendering of an expression's AST, e.g.
 * "(+ 1 (* 2 3))", for parser tests, the fuzzers and debugging.
 *
 * Ownership: expr__dump returns a malloc'd string. Threads: reads only.
 */
#include <string.h>

#include "rules_internal.h"

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
	case RULES_N_AND:
	case RULES_N_OR:
	case RULES_N_COALESCE: {
		/* a flat chain prints as the left-nested pairs it means */
		const char *op = n->kind == RULES_N_AND	 ? "&&"
				 : n->kind == RULES_N_OR ? "||"
							 : "?"
							   "?";
		for (size_t i = 1; i < n->u.list.n; i++)
			strbuf__printf(b, "(%s ", op);
		for (size_t i = 0; i < n->u.list.n; i++) {
			dump_node(n->u.list.items[i], b);
			strbuf__append(b, i ? ")" : "", i ? 1 : 0);
			if (i + 1 < n->u.list.n)
				strbuf__append(b, " ", 1);
		}
		return;
	}
	case RULES_N_TEMPLATE:
		strbuf__append(b, "(`", 2);
		for (size_t i = 0; i < n->u.list.n; i++) {
			strbuf__append(b, " ", 1);
			dump_node(n->u.list.items[i], b);
		}
		strbuf__append(b, ")", 1);
		return;
	case RULES_N_TYPEOF:
	case RULES_N_THROW:
		strbuf__printf(b, "(%s ", n->kind == RULES_N_TYPEOF ? "typeof" : "throw");
		dump_node(n->u.ops.a, b);
		strbuf__append(b, ")", 1);
		return;
	case RULES_N_IF:
		strbuf__append(b, "(if ", 4);
		dump_node(n->u.ops.a, b);
		strbuf__append(b, " ", 1);
		dump_node(n->u.ops.b, b);
		strbuf__append(b, " ", 1);
		dump_node(n->u.ops.c, b);
		strbuf__append(b, ")", 1);
		return;
	case RULES_N_TRY:
		strbuf__append(b, "(try ", 5);
		dump_node(n->u.bind.value, b);
		strbuf__printf(b, " %s ", n->u.bind.name ? n->u.bind.name : "_");
		dump_node(n->u.bind.body, b);
		strbuf__append(b, ")", 1);
		return;
	case RULES_N_COND:
	case RULES_N_BINARY: {
		const char *op = n->kind == RULES_N_COND ? "?:" : n->op == RULES_T_IDENT ? "in" : NULL;
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
