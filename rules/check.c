/* check.c - the check pass over a parsed expression, and compilation
 * (parse + check) into a struct rules_expr.
 *
 * The check resolves names (variables to stack slots, `event`), looks up
 * builtin methods and functions (builtins.c) and their arity, compiles
 * `matches` patterns, bounds the AST height (evaluator recursion), and
 * reports every problem it finds, not only the first, each with a
 * suggestion where one is close.
 *
 * Ownership: nodes are rewritten in place in the caller's arena; compiled
 * regexes go to the same arena. Threads: one compile per thread; the result
 * is immutable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_internal.h"

#define CHECK_MAX_HEIGHT 1000 /* AST height: bounds evaluator recursion */

struct checker {
	struct rules_arena *arena;
	const struct rules_srcmap *map;
	struct rules_diags *diags;
	const char *src; /* the expression source (arena copy) */
	int errors;
	struct rules_diags *notes; /* Forge filters: what Forge would refuse; may be NULL */
	/* variables in scope, innermost last; index = slot */
	const char *scope[RULES_MAX_VARS];
	int nscope;
};

static void check_error(struct checker *p, size_t at, const char *fmt, ...) RULES_FMT(3, 4);

static void check_error(struct checker *p, size_t at, const char *fmt, ...)
{
	char msg[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->errors++;
	srcmap__diag(p->map, p->diags, RULES_SEV_ERROR, at, "%s", msg);
}

/* A construct of this gateway's dialect in a Forge filter (rules check
 * --forge). */
static void forge_note(struct checker *p, size_t at, const char *what)
{
	if (p->notes)
		srcmap__diag(p->map, p->notes, RULES_SEV_WARNING, at,
			     "Forge would refuse this filter: %s is this gateway's extension, not "
			     "Jira expressions",
			     what);
}

static void check_regex(struct checker *p, struct rules_node *n)
{
	struct rules_node *pat = n->u.match.pattern;
	size_t raw_len = pat->end - pat->start;
	size_t *offsets = malloc((raw_len + 1) * sizeof(size_t));
	char *tmp = malloc(raw_len + 1);
	size_t err_at, err_off;
	const char *msg;
	char pcre_msg[200];

	if (!offsets || !tmp) {
		check_error(p, pat->start, "out of memory");
		goto done;
	}
	long len = lexer__decode_string(p->src + pat->start, raw_len, tmp, offsets, &err_at, &msg);
	if (len < 0) {
		check_error(p, pat->start, "%s", msg);
		goto done;
	}
	n->u.match.re =
		regex__compile(p->arena, pat->u.str.s, pat->u.str.len, &err_off, pcre_msg, sizeof(pcre_msg));
	if (!n->u.match.re) {
		/* map the offset in the pattern back to the expression source */
		size_t at = err_off < (size_t)len ? pat->start + offsets[err_off] : pat->end - 1;
		check_error(p, at, "invalid regular expression: %s", pcre_msg);
	}
done:
	free(offsets);
	free(tmp);
}

/* Closest name to `word` among names[] (NULL-terminated) and extra[0..n),
 * within an edit distance that suits its length; NULL if none. */
static const char *suggest(const char *word, const char *(*names)(size_t), const char *const *extra,
			   int n_extra)
{
	size_t wl = strlen(word);
	int limit = wl >= 6 ? 2 : wl >= 3 ? 1 : 0, best_d = limit + 1;
	const char *best = NULL;
	const char *name;

	for (size_t i = 0; names && (name = names(i)); i++) {
		int d = diag__edit_distance(word, name);
		if (d < best_d) {
			best_d = d;
			best = name;
		}
	}
	for (int i = n_extra - 1; i >= 0; i--) {
		int d = diag__edit_distance(word, extra[i]);
		if (d < best_d) {
			best_d = d;
			best = extra[i];
		}
	}
	return best;
}

static bool reserved_name(const char *name)
{
	static const char *const words[] = {"event", "true",	"false",  "null",   "let",
					    "in",    "matches", "if",	  "else",   "try",
					    "catch", "throw",	"return", "typeof", NULL};
	for (const char *const *w = words; *w; w++)
		if (!strcmp(*w, name))
			return true;
	return false;
}

static int check_node(struct checker *p, struct rules_node *n, int height);

/* Checks `body` with `name` bound to a new slot (stored in n->u.bind.slot). */
static int check_scoped(struct checker *p, struct rules_node *n, struct rules_node *body, int height)
{
	if (reserved_name(n->u.bind.name)) {
		check_error(p, n->start, "'%s' cannot be used as a variable name", n->u.bind.name);
		return 0;
	}
	if (p->nscope >= RULES_MAX_VARS) {
		check_error(p, n->start, "too many variables in scope (at most %d)", RULES_MAX_VARS);
		return -1;
	}
	n->u.bind.slot = p->nscope;
	p->scope[p->nscope++] = n->u.bind.name;
	int rc = check_node(p, body, height + 1);
	p->nscope--;
	return rc;
}

static void check_arity(struct checker *p, struct rules_node *n, const char *what, int min, int max)
{
	size_t got = n->u.m.nargs;

	if (got >= (size_t)min && got <= (size_t)max)
		return;
	if (min == max)
		check_error(p, n->start, "%s '%s' takes %d argument%s, got %zu", what, n->u.m.name, min,
			    min == 1 ? "" : "s", got);
	else
		check_error(p, n->start, "%s '%s' takes %d to %d arguments, got %zu", what, n->u.m.name, min,
			    max, got);
}

static int check_call(struct checker *p, struct rules_node *n, int height)
{
	int min = 0, max = 0;
	bool takes_fn = false;
	size_t first = 0;

	if (n->kind == RULES_N_FUNC) {
		int fi = func__lookup(n->u.m.name, n->u.m.name_len);
		if (fi >= 0) {
			char what[48];
			snprintf(what, sizeof(what), "%s()", n->u.m.name);
			forge_note(p, n->start, what);
		}
		n->u.m.builtin = fi;
		if (fi < 0) {
			const char *hint = suggest(n->u.m.name, func__name, NULL, 0);
			if (hint)
				check_error(p, n->start, "unknown function '%s'; did you mean '%s'?",
					    n->u.m.name, hint);
			else
				check_error(p, n->start, "unknown function '%s'", n->u.m.name);
		} else {
			func__arity(fi, &min, &max);
			check_arity(p, n, "function", min, max);
		}
	} else {
		int bi = builtin__lookup(n->u.m.name, n->u.m.name_len);
		n->u.m.builtin = bi;
		if (bi < 0) {
			const char *hint = suggest(n->u.m.name, builtin__name, NULL, 0);
			if (!strcmp(n->u.m.name, "length"))
				check_error(p, n->start,
					    "unknown method 'length' ('length' is a property: "
					    "write '.length')");
			else if (hint)
				check_error(p, n->start, "unknown method '%s'; did you mean '%s'?",
					    n->u.m.name, hint);
			else
				check_error(p, n->start, "unknown method '%s'", n->u.m.name);
		} else {
			builtin__arity(bi, &min, &max, &takes_fn);
			check_arity(p, n, "method", min, max);
		}
		if (check_node(p, n->u.m.obj, height + 1) < 0)
			return -1;
	}
	if (takes_fn && n->u.m.nargs >= 1) {
		struct rules_node *fn = n->u.m.args[0];
		first = 1;
		if (fn->kind != RULES_N_ARROW)
			check_error(p, fn->start, "%s() expects an arrow function such as 'x => x.name'",
				    n->u.m.name);
		else if (check_scoped(p, fn, fn->u.bind.body, height + 1) < 0)
			return -1;
	}
	for (size_t i = first; i < n->u.m.nargs; i++)
		if (check_node(p, n->u.m.args[i], height + 1) < 0)
			return -1;
	return 0;
}

static int check_node(struct checker *p, struct rules_node *n, int height)
{
	if (!n)
		return 0;
	if (height > CHECK_MAX_HEIGHT) {
		check_error(p, n->start, "expression nested too deeply");
		return -1;
	}
	switch ((enum rules_node_kind)n->kind) {
	case RULES_N_NULL:
	case RULES_N_BOOL:
	case RULES_N_NUM:
	case RULES_N_STR:
	case RULES_N_VAR: return 0;
	case RULES_N_LIST:
		for (size_t i = 0; i < n->u.list.n; i++)
			if (check_node(p, n->u.list.items[i], height + 1) < 0)
				return -1;
		return 0;
	case RULES_N_MAP:
		for (size_t i = 0; i < n->u.map.n; i++)
			if (check_node(p, n->u.map.values[i], height + 1) < 0)
				return -1;
		return 0;
	case RULES_N_IDENT: {
		char name[64];
		int len = (int)n->u.str.len;
		snprintf(name, sizeof(name), "%.*s", len, n->u.str.s);
		for (int i = p->nscope - 1; i >= 0; i--) {
			if (!strcmp(p->scope[i], name)) {
				const char *vname = p->scope[i];
				n->kind = RULES_N_VAR; /* u.str and u.bind overlap: set all */
				n->u.bind.name = vname;
				n->u.bind.name_len = strlen(vname);
				n->u.bind.slot = i;
				n->u.bind.value = n->u.bind.body = NULL;
				return 0;
			}
		}
		if (strcmp(name, "event") == 0)
			return 0;
		const char *hint = suggest(name, NULL, p->scope, p->nscope);
		if (!hint && diag__edit_distance(name, "event") <= 2)
			hint = "event";
		if (hint)
			check_error(p, n->start, "unknown identifier '%s'; did you mean '%s'?", name, hint);
		else if (p->nscope)
			check_error(p, n->start, "unknown identifier '%s'", name);
		else
			check_error(p, n->start, "unknown identifier '%s' (only 'event' is defined)", name);
		return 0;
	}
	case RULES_N_MEMBER:
		if (check_node(p, n->u.m.obj, height + 1) < 0)
			return -1;
		/* event.runtime.X...: Forge resolves what is missing to null */
		n->runtime = n->u.m.obj->kind == RULES_N_IDENT && !strcmp(n->u.m.name, "runtime");
		n->lenient = n->u.m.obj->runtime || n->u.m.obj->lenient;
		return 0;
	case RULES_N_INDEX:
		if (check_node(p, n->u.m.obj, height + 1) < 0)
			return -1;
		n->lenient = n->u.m.obj->runtime || n->u.m.obj->lenient;
		return check_node(p, n->u.m.index, height + 1);
	case RULES_N_CALL:
	case RULES_N_FUNC: return check_call(p, n, height);
	case RULES_N_UNARY:
	case RULES_N_TYPEOF: return check_node(p, n->u.ops.a, height + 1);
	case RULES_N_THROW: {
		const struct rules_node *a = n->u.ops.a;
		if (a->kind == RULES_N_NUM || a->kind == RULES_N_BOOL || a->kind == RULES_N_NULL ||
		    a->kind == RULES_N_LIST || a->kind == RULES_N_MAP)
			check_error(p, n->start, "'throw' needs a String (the error message), got %s",
				    a->kind == RULES_N_NUM    ? "a Number"
				    : a->kind == RULES_N_BOOL ? "a Boolean"
				    : a->kind == RULES_N_NULL ? "null"
				    : a->kind == RULES_N_LIST ? "a List"
							      : "a Map");
		return check_node(p, n->u.ops.a, height + 1);
	}
	case RULES_N_AND:
	case RULES_N_OR:
	case RULES_N_COALESCE:
	case RULES_N_TEMPLATE:
		for (size_t i = 0; i < n->u.list.n; i++)
			if (check_node(p, n->u.list.items[i], height + 1) < 0)
				return -1;
		return 0;
	case RULES_N_TRY:
		if (check_node(p, n->u.bind.value, height + 1) < 0)
			return -1;
		if (!n->u.bind.name)
			return check_node(p, n->u.bind.body, height + 1);
		return check_scoped(p, n, n->u.bind.body, height);
	case RULES_N_BINARY:
		if (n->op == RULES_T_IDENT)
			forge_note(p, n->start, "'in'");
		/* fall through */
	case RULES_N_IF:
	case RULES_N_COND:
		if (check_node(p, n->u.ops.a, height + 1) < 0 || check_node(p, n->u.ops.b, height + 1) < 0)
			return -1;
		return check_node(p, n->u.ops.c, height + 1);
	case RULES_N_MATCHES:
		forge_note(p, n->start, "'matches'");
		if (check_node(p, n->u.match.subject, height + 1) < 0)
			return -1;
		check_regex(p, n);
		return 0;
	case RULES_N_LET:
		if (check_node(p, n->u.bind.value, height + 1) < 0)
			return -1;
		return check_scoped(p, n, n->u.bind.body, height);
	case RULES_N_ARROW:
		check_error(p, n->start,
			    "an arrow function can only be passed to a list method such as "
			    "filter() or map()");
		return 0;
	case RULES_N__COUNT: break;
	}
	return 0;
}

/* Records where each line of e's source sits in its file, so that an
 * evaluation error can name file:line:col (eval__error_where). */
static void set_origin(struct rules_arena *a, struct rules_expr *e, const struct rules_srcmap *map)
{
	size_t lines = 1;
	int *loc;

	if (!map->file || !map->lm)
		return;
	for (size_t i = 0; i < e->len; i++)
		lines += e->src[i] == '\n';
	if (!(loc = arena__alloc(a, 2 * lines * sizeof(int))))
		return; /* only the position is lost */
	for (size_t i = 0, k = 0; i <= e->len && k < lines; i++) {
		if (i == 0 || e->src[i - 1] == '\n') {
			srcmap__locate(map, i, &loc[2 * k], &loc[2 * k + 1]);
			k++;
		}
	}
	e->file = map->file;
	e->loc = loc;
	e->nlines = lines;
}

static struct rules_expr *compile(struct rules_arena *a, const char *src, size_t len,
				  const struct rules_srcmap *map, struct rules_diags *d, bool check,
				  struct rules_diags *notes)
{
	struct checker p;
	size_t chars = 0;

	/* Forge counts characters as JavaScript does (UTF-16 code units), not
	 * bytes and not nesting: a flat chain of 3,000 '&&' fits */
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)src[i];
		if ((ch & 0xC0) != 0x80)
			chars += ch >= 0xF0 ? 2 : 1;
	}
	if (chars > RULES_MAX_EXPR_CHARS) {
		srcmap__diag(map, d, RULES_SEV_ERROR, 0, "expression is longer than %d characters (%zu)",
			     RULES_MAX_EXPR_CHARS, chars);
		return NULL;
	}
	memset(&p, 0, sizeof(p));
	p.arena = a;
	p.map = map;
	p.diags = d;
	char *copy = arena__strndup(a, src, len);
	if (!copy) {
		srcmap__diag(map, d, RULES_SEV_ERROR, 0, "out of memory");
		return NULL;
	}
	p.src = copy;
	p.notes = notes;
	size_t js_comment = 0;
	struct rules_node *root = parser__parse(a, copy, len, map, d, &js_comment);
	if (!root)
		return NULL;
	if (js_comment && notes)
		srcmap__diag(map, notes, RULES_SEV_WARNING, js_comment - 1,
			     "Forge may refuse this filter: Atlassian's documentation shows only "
			     "'#' comments in Jira expressions");
	if (check)
		check_node(&p, root, 1);
	if (p.errors)
		return NULL;
	struct rules_expr *e = arena__alloc(a, sizeof(*e));
	if (!e) {
		srcmap__diag(map, d, RULES_SEV_ERROR, 0, "out of memory");
		return NULL;
	}
	e->root = root;
	e->src = copy;
	e->len = len;
	set_origin(a, e, map);
	return e;
}

struct rules_expr *expr__compile(struct rules_arena *a, const char *src, size_t len,
				 const struct rules_srcmap *map, struct rules_diags *d)
{
	return compile(a, src, len, map, d, true, NULL);
}

struct rules_expr *expr__compile_filter(struct rules_arena *a, const char *src, size_t len,
					const struct rules_srcmap *map, struct rules_diags *d,
					struct rules_diags *notes)
{
	return compile(a, src, len, map, d, true, notes);
}

struct rules_expr *expr__parse(struct rules_arena *a, const char *src, size_t len,
			       const struct rules_srcmap *map, struct rules_diags *d)
{
	return compile(a, src, len, map, d, false, NULL);
}
