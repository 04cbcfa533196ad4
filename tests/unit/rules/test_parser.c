/* test_parser.c - lexer and parser: token offsets, the precedence and
 * associativity table (checked through the AST dump), the nesting limit and
 * the exact position of syntax errors.
 *
 * Ownership: every compiled expression and diagnostic list is freed here.
 * Threads: single-threaded test.
 */
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "rules_internal.h"

/* Parses without the name check so bare names can stand for operands. */
static char *dump(const char *src)
{
	struct rules_diags d;
	struct rules_arena a;
	struct rules_linemap lm;
	rules_diags_init(&d);
	arena__init(&a);
	linemap__init(&lm, src, strlen(src));
	struct rules_srcmap map = {.file = "t", .lm = &lm, .line_base = 1, .col_base = 1};
	struct rules_expr *e = expr__parse(&a, src, strlen(src), &map, &d);
	char *s = e ? expr__dump(e) : NULL;
	if (!e && d.count)
		fprintf(stderr, "parse failed: %s: %s\n", src, d.items[0].message);
	linemap__free(&lm);
	arena__free(&a);
	rules_diags_free(&d);
	return s;
}

#define CHECK_TREE(src, want)                                                                                \
	do {                                                                                                 \
		char *got_ = dump(src);                                                                      \
		CHECK_STR_EQ(got_, want);                                                                    \
		free(got_);                                                                                  \
	} while (0)

/* Compiles src expecting failure; returns the first diagnostic formatted. */
static char *first_error(const char *src)
{
	struct rules_diags d;
	rules_diags_init(&d);
	struct rules_expr *e = rules_expr_compile("expr", src, strlen(src), 1, 1, &d);
	char *s = NULL;
	if (e)
		rules_expr_free(e);
	else if (d.count)
		s = rules_diag_format(&d.items[0]);
	rules_diags_free(&d);
	return s;
}

#define CHECK_ERR(src, want)                                                                                 \
	do {                                                                                                 \
		char *got_ = first_error(src);                                                               \
		CHECK_STR_EQ(got_, want);                                                                    \
		free(got_);                                                                                  \
	} while (0)

static void test_tokens(void)
{
	struct rules_lexer lx;
	const char *src = "a?.b ?? 'x\\'y' >= 1.5e2 c?.5:1";
	enum rules_tok want[] = {RULES_T_IDENT,	   RULES_T_QDOT,   RULES_T_IDENT,  RULES_T_COALESCE,
				 RULES_T_STRING,   RULES_T_GE,	   RULES_T_NUMBER, RULES_T_IDENT,
				 RULES_T_QUESTION, RULES_T_NUMBER, RULES_T_COLON,  RULES_T_NUMBER,
				 RULES_T_EOF};
	uint32_t starts[] = {0, 1, 3, 5, 8, 15, 18, 24, 25, 26, 28, 29, 30};
	lexer__init(&lx, src, strlen(src));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct rules_token t = lexer__next(&lx);
		CHECK_INT_EQ(t.kind, want[i]);
		CHECK_INT_EQ(t.start, starts[i]);
		if (i == 6)
			CHECK(t.num == 150.0);
	}
}

static void test_precedence(void)
{
	CHECK_TREE("1 + 2 * 3", "(+ 1 (* 2 3))");
	CHECK_TREE("1 * 2 + 3", "(+ (* 1 2) 3)");
	CHECK_TREE("1 - 2 - 3", "(- (- 1 2) 3)");
	CHECK_TREE("8 / 4 / 2", "(/ (/ 8 4) 2)");
	CHECK_TREE("1 + 2 % 3", "(+ 1 (% 2 3))");
	CHECK_TREE("-1 + 2", "(+ (neg 1) 2)");
	CHECK_TREE("-event.a.b", "(neg (. (. event a) b))");
	CHECK_TREE("!a && b", "(&& (! a) b)");
	CHECK_TREE("a || b && c", "(|| a (&& b c))");
	CHECK_TREE("a && b || c", "(|| (&& a b) c)");
	CHECK_TREE("a == b && c != d", "(&& (== a b) (!= c d))");
	CHECK_TREE("1 < 2 == true", "(== (< 1 2) true)");
	CHECK_TREE("1 + 2 < 3 * 4", "(< (+ 1 2) (* 3 4))");
	CHECK_TREE("a in b == c", "(== (in a b) c)");
	CHECK_TREE("a + 'x' in b", "(in (+ a 'x') b)");
	CHECK_TREE("a matches 'x' && b", "(&& (matches a 'x') b)");
	CHECK_TREE("a ?? b || c", "(?? a (|| b c))");
	CHECK_TREE("a ?? b ?? c", "(?? (?? a b) c)");
	CHECK_TREE("a ? b : c ? d : e", "(?: a b (?: c d e))");
	CHECK_TREE("a ?? b ? c : d", "(?: (?? a b) c d)");
	CHECK_TREE("a || b ? c : d", "(?: (|| a b) c d)");
	CHECK_TREE("(1 + 2) * 3", "(* (+ 1 2) 3)");
	CHECK_TREE("a.b[0]?.c?.['d']", "(?.[] (?. ([] (. a b) 0) c) 'd')");
	CHECK_TREE("a.b.includes('x')", "(call includes (. a b) 'x')");
	CHECK_TREE("[1, 'a', [true]]", "[1 'a' [true]]");
	CHECK_TREE("!!true", "(! (! true))");
	CHECK_TREE("1 <= 2", "(<= 1 2)");
	CHECK_TREE("a >= b > c", "(> (>= a b) c)");
	CHECK_TREE("c?.5:1", "(?: c 0.5 1)");
}

static void test_syntax_errors(void)
{
	CHECK_ERR("1 +", "expr:1:4: error: unexpected end of expression\n  1 +\n     ^\n");
	CHECK_ERR("(1 + 2", "expr:1:7: error: expected ')' to close '(', found end of expression\n"
			    "  (1 + 2\n        ^\n");
	CHECK_ERR("a = b", "expr:1:3: error: unexpected '=' (use '==' to compare)\n  a = b\n    ^\n");
	CHECK_ERR("a === b", "expr:1:3: error: '===' is not supported; use '=='\n  a === b\n    ^\n");
	CHECK_ERR("'abc", "expr:1:1: error: unterminated string literal\n  'abc\n  ^\n");
	CHECK_ERR("'a\\qb'", "expr:1:3: error: invalid escape sequence in string literal\n"
			     "  'a\\qb'\n    ^\n");
	CHECK_ERR("1 2", "expr:1:3: error: unexpected '2' after the end of the expression\n"
			 "  1 2\n    ^\n");
	CHECK_ERR("a.", "expr:1:3: error: expected a property name after '.', found end of "
			"expression\n  a.\n    ^\n");
	CHECK_ERR("a @ b", "expr:1:3: error: unexpected character '@'\n  a @ b\n    ^\n");
	CHECK_ERR("", "expr:1:1: error: empty expression\n  \n  ^\n");
	CHECK_ERR("a matches b", "expr:1:11: error: the pattern of 'matches' must be a string "
				 "literal\n  a matches b\n            ^\n");
	CHECK_ERR("(1)(2)", "expr:1:4: error: only methods can be called\n  (1)(2)\n     ^\n");
	CHECK_ERR("1 ? 2", "expr:1:6: error: expected ':' in conditional expression, found end of "
			   "expression\n  1 ? 2\n       ^\n");
	CHECK_ERR("'\\u12'", "expr:1:2: error: invalid \\u escape (expected 4 hex digits)\n"
			     "  '\\u12'\n   ^\n");
	/* the error is on line 2 of the expression; tabs keep the caret aligned */
	CHECK_ERR("event.a &&\n\tfoo", "expr:2:2: error: unknown identifier 'foo' (only 'event' "
				       "is defined)\n  \tfoo\n  \t^\n");
	CHECK_ERR("evnt.a", "expr:1:1: error: unknown identifier 'evnt'; did you mean 'event'?\n"
			    "  evnt.a\n  ^\n");
	CHECK_ERR("len(event)", "expr:1:1: error: unknown function 'len'\n  len(event)\n  ^\n");
	CHECK_ERR("event.a.size()", "expr:1:9: error: unknown method 'size'\n"
				    "  event.a.size()\n          ^\n");
	CHECK_ERR("event.a.includes()", "expr:1:9: error: method 'includes' takes 1 argument, "
					"got 0\n  event.a.includes()\n          ^\n");
}

static void test_all_check_errors_reported(void)
{
	struct rules_diags d;
	rules_diags_init(&d);
	const char *src = "foo == 1 && bar(2) && event.x.nope()";
	CHECK(rules_expr_compile("e", src, strlen(src), 1, 1, &d) == NULL);
	CHECK_INT_EQ(d.errors, 3);
	if (d.count == 3) {
		CHECK_INT_EQ(d.items[0].col, 1);
		CHECK_INT_EQ(d.items[1].col, 13);
		CHECK_INT_EQ(d.items[2].col, 31);
	}
	rules_diags_free(&d);
}

static void test_depth_limit(void)
{
	char buf[400];
	size_t n = 0;
	for (int i = 0; i < 70; i++)
		buf[n++] = '(';
	buf[n++] = '1';
	for (int i = 0; i < 70; i++)
		buf[n++] = ')';
	buf[n] = '\0';
	char *err = first_error(buf);
	CHECK(err && strstr(err, "expr:1:65: error: expression nested too deeply") == err);
	free(err);
	/* 60 levels are fine */
	char *ok = dump("((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1))))))))"
			"))))))))))))))))))))))))))))))))))))))))))))))))))))");
	CHECK_STR_EQ(ok, "1");
	free(ok);
	/* unary chains count too */
	memset(buf, '!', 100);
	strcpy(buf + 100, "true");
	err = first_error(buf);
	CHECK(err && strstr(err, "expression nested too deeply") != NULL);
	free(err);
}

static void test_length_limit(void)
{
	size_t n = RULES_MAX_EXPR_CHARS + 1;
	char *src = malloc(n + 1);
	memset(src, ' ', n);
	memcpy(src, "true", 4);
	src[n] = '\0';
	char *err = first_error(src);
	CHECK(err && strstr(err, "expr:1:1: error: expression is longer than 10000 characters "
				 "(10001)") == err);
	free(err);
	src[n - 1] = '\0'; /* exactly 10000 is allowed */
	char *ok = dump(src);
	CHECK_STR_EQ(ok, "true");
	free(ok);
	free(src);
}

static void test_bases(void)
{
	struct rules_diags d;
	rules_diags_init(&d);
	CHECK(rules_expr_compile("f.yml", "1 +", 3, 7, 20, &d) == NULL);
	CHECK_INT_EQ(d.count, 1);
	if (d.count) {
		CHECK_INT_EQ(d.items[0].line, 7);
		CHECK_INT_EQ(d.items[0].col, 23);
		CHECK_STR_EQ(d.items[0].file, "f.yml");
	}
	rules_diags_free(&d);
}

int main(void)
{
	test_tokens();
	test_precedence();
	test_syntax_errors();
	test_all_check_errors_reported();
	test_depth_limit();
	test_length_limit();
	test_bases();
	return CHECK_DONE();
}
