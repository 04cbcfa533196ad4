/* rules_internal.h - private interfaces shared by the files of the gwrules library.
 *
 * Nothing here is seen by the gateway; include/rules.h is the public contract.
 *
 * Ownership: everything built while compiling (AST nodes, decoded literals,
 * compiled templates, PCRE2 codes) lives in a struct rules_arena and dies with
 * it; the owner is a struct rules_set (for rule files) or a struct rules_expr
 * compiled alone. Strings built while evaluating live in the per-thread scratch
 * arena and are valid until the next evaluation on that scratch.
 *
 * Threads: compiled objects are immutable after compile and may be read by any
 * number of threads; a struct rules_scratch is used by one thread at a time.
 * Internal functions shared across files are named module__verb.
 */
#ifndef RULES_INTERNAL_H
#define RULES_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rules.h"

#define RULES_FMT(a, b) __attribute__((format(printf, a, b)))

/* ============================================================
 * Arena: bump allocation, freed all at once
 * ============================================================ */

struct rules_arena_block;
struct rules_regex;

struct rules_arena {
	struct rules_arena_block *head;
	struct rules_regex *regexes; /* compiled patterns freed with the arena */
	pcre2_match_context *mctx; /* limits shared by this arena's patterns */
	/* Set by regex.c when it registers a pattern: frees what the arena's
	 * blocks only point at (the arena does not call regex.c by name). */
	void (*release)(struct rules_arena *a);
};

void arena__init(struct rules_arena *a);
/* Zeroed, 16-byte aligned memory; NULL on allocation failure. */
void *arena__alloc(struct rules_arena *a, size_t n);
char *arena__strndup(struct rules_arena *a, const char *s, size_t n);
/* Grows p, the last allocation of the current block (n bytes), to m bytes
 * in place if the block has room; false (nothing changed) otherwise. */
bool arena__extend(struct rules_arena *a, void *p, size_t n, size_t m);
/* Frees every block but the first (scratch reuse between evaluations). */
void arena__reset(struct rules_arena *a);
void arena__free(struct rules_arena *a);

/* Growable malloc'd string; `oom` sticks once an allocation failed. */
struct rules_strbuf {
	char *data;
	size_t len, cap;
	bool oom;
	size_t limit; /* most bytes it may hold; 0: no limit */
	bool over; /* an append went over limit (oom is set too) */
};
void strbuf__append(struct rules_strbuf *b, const char *s, size_t n);
void strbuf__printf(struct rules_strbuf *b, const char *fmt, ...) RULES_FMT(2, 3);
/* Returns the NUL-terminated string (caller frees) or NULL after OOM. */
char *strbuf__take(struct rules_strbuf *b);
void strbuf__free(struct rules_strbuf *b);

/* ============================================================
 * Line maps and diagnostics
 * ============================================================ */

/* Byte offsets of line starts of one text; the text is borrowed. */
struct rules_linemap {
	const char *text;
	size_t len;
	size_t *starts;
	size_t nlines;
};

int linemap__init(struct rules_linemap *lm, const char *text, size_t len);
void linemap__free(struct rules_linemap *lm);
/* offset -> 1-based line and 1-based column counted in UTF-8 characters. */
void linemap__locate(const struct rules_linemap *lm, size_t offset, int *line, int *col);
/* 1-based line + 1-based character column -> byte offset (clamped). */
size_t linemap__offset(const struct rules_linemap *lm, int line, int col);
/* malloc'd copy of line `line` (1-based) without its newline; NULL if none. */
char *linemap__line_dup(const struct rules_linemap *lm, int line);

/* Adds one diagnostic; source_line is copied (may be NULL). -1 on OOM. */
int diag__add(struct rules_diags *d, enum rules_severity sev, const char *file, int line, int col,
	      const char *source_line, const char *fmt, ...) RULES_FMT(7, 8);
int diag__vadd(struct rules_diags *d, enum rules_severity sev, const char *file, int line, int col,
	       const char *source_line, const char *fmt, va_list ap) RULES_FMT(7, 0);

/* Where the bytes of an expression (or template) come from: maps a byte
 * offset inside the decoded text to an offset in lm->text. With offsets ==
 * NULL the mapping is base_offset + i. line_base/col_base shift the result
 * for expressions compiled from a bare string (rules_expr_compile). */
struct rules_srcmap {
	const char *file;
	const struct rules_linemap *lm;
	int line_base, col_base;
	const size_t *offsets;
	size_t n_offsets;
	size_t base_offset;
	size_t shift; /* added to the decoded offset before the lookup */
};

void srcmap__locate(const struct rules_srcmap *m, size_t off, int *line, int *col);
void srcmap__diag(const struct rules_srcmap *m, struct rules_diags *d, enum rules_severity sev, size_t off,
		  const char *fmt, ...) RULES_FMT(5, 6);

/* Levenshtein distance of two short ASCII words (capped at 99). */
int diag__edit_distance(const char *a, const char *b);

/* ============================================================
 * Lexer
 * ============================================================ */

enum rules_tok { /* ORDER RULES_TOK (lexer.c token_names[]) */
		 RULES_T_EOF,
		 RULES_T_NUMBER,
		 RULES_T_STRING,
		 RULES_T_IDENT,
		 RULES_T_DOT, /* . */
		 RULES_T_QDOT, /* ?. */
		 RULES_T_LBRACKET, /* [ */
		 RULES_T_RBRACKET, /* ] */
		 RULES_T_LPAREN, /* ( */
		 RULES_T_RPAREN, /* ) */
		 RULES_T_COMMA, /* , */
		 RULES_T_NOT, /* ! */
		 RULES_T_MINUS, /* - */
		 RULES_T_PLUS, /* + */
		 RULES_T_STAR, /* * */
		 RULES_T_SLASH, /* / */
		 RULES_T_PERCENT, /* % */
		 RULES_T_LT, /* < */
		 RULES_T_LE, /* <= */
		 RULES_T_GT, /* > */
		 RULES_T_GE, /* >= */
		 RULES_T_EQ, /* == */
		 RULES_T_NE, /* != */
		 RULES_T_AND, /* && */
		 RULES_T_OR, /* || */
		 RULES_T_COALESCE, /* ?? */
		 RULES_T_QUESTION, /* ? */
		 RULES_T_COLON, /* : */
		 RULES_T_LBRACE, /* { */
		 RULES_T_RBRACE, /* } */
		 RULES_T_ARROW, /* => */
		 RULES_T_ASSIGN, /* = (only in let) */
		 RULES_T_SEMI, /* ; */
		 RULES_T_TEMPLATE, /* `text ${expr} text`, with its substitutions */
		 RULES_T_ERROR, /* lexical error; message in the lexer */
		 RULES_T__COUNT
};

struct rules_token {
	enum rules_tok kind;
	uint32_t start, end; /* byte range in the source */
	double num; /* RULES_T_NUMBER */
};

struct rules_lexer {
	const char *src;
	size_t len, pos;
	char error[160]; /* set with RULES_T_ERROR */
	size_t error_pos;
	size_t js_comment; /* 1 + offset of the first // or block comment; 0: none */
};

void lexer__init(struct rules_lexer *lx, const char *src, size_t len);
struct rules_token lexer__next(struct rules_lexer *lx);
const char *lexer__token_name(enum rules_tok kind);
/* In a template literal: the index of the '}' closing the substitution
 * whose expression starts at s[i] (after "${"), or len if none. */
size_t lexer__substitution_end(const char *s, size_t len, size_t i);

/* Decodes the string literal whose raw text (with quotes) is raw[0..n).
 * Writes the bytes to out (at most n bytes are needed) and, when offsets is
 * not NULL, for each output byte the offset in raw it came from. Returns the
 * decoded length, or -1 with *err_at / *msg describing a bad escape. */
long lexer__decode_string(const char *raw, size_t n, char *out, size_t *offsets, size_t *err_at,
			  const char **msg);

/* ============================================================
 * AST
 * ============================================================ */

enum rules_node_kind { /* ORDER RULES_NODE (eval.c dispatch) */
		       RULES_N_NULL,
		       RULES_N_BOOL,
		       RULES_N_NUM,
		       RULES_N_STR,
		       RULES_N_LIST, /* [a, b] */
		       RULES_N_IDENT, /* a name; the check turns variables into RULES_N_VAR */
		       RULES_N_MEMBER, /* obj.name, obj?.name */
		       RULES_N_INDEX, /* obj[expr], obj?.[expr] */
		       RULES_N_CALL, /* obj.name(args): a builtin method */
		       RULES_N_FUNC, /* name(args): a builtin function (changed, now, ...) */
		       RULES_N_UNARY, /* ! -  (op holds the token) */
		       RULES_N_BINARY, /* arithmetic, comparison, in (op holds the token) */
		       RULES_N_AND, /* a && b && ...: u.list (a flat chain is one node) */
		       RULES_N_OR, /* a || b || ...: u.list */
		       RULES_N_COALESCE, /* a ?? b ?? ...: u.list */
		       RULES_N_COND, /* c ? a : b */
		       RULES_N_MATCHES, /* s matches 'pattern' */
		       RULES_N_MAP, /* {a: 1, 'b': x} */
		       RULES_N_LET, /* let name = value; body */
		       RULES_N_ARROW, /* name => body (only as a method argument) */
		       RULES_N_VAR, /* a let or arrow variable, resolved to a slot */
		       RULES_N_TEMPLATE, /* `a${x}b`: u.list of STR nodes and expressions */
		       RULES_N_TYPEOF, /* typeof x: ops.a */
		       RULES_N_IF, /* if (a) {b} else {c}: ops.a, ops.b, ops.c (c may be an IF) */
		       RULES_N_TRY, /* try {value} catch (name) {body}: bind; name NULL for catch () */
		       RULES_N_THROW, /* throw x: ops.a */
		       RULES_N__COUNT
};

struct rules_regex {
	pcre2_code *code;
	pcre2_match_context *mctx;
	struct rules_regex *next; /* arena list */
};

struct rules_node {
	unsigned char kind;
	unsigned char op; /* enum rules_tok for UNARY/BINARY, "in" is RULES_T_IDENT */
	bool optional; /* ?. or ?.[ */
	bool chain_end; /* outermost node of a ?. chain: short-circuit stops here */
	bool runtime; /* MEMBER: this is event.runtime */
	bool lenient; /* MEMBER/INDEX below event.runtime: what is missing is null */
	uint32_t start, end; /* byte range in the expression source */
	union {
		bool b;
		double num;
		struct {
			const char *s;
			size_t len;
		} str; /* STR, IDENT */
		struct {
			struct rules_node **items;
			size_t n;
		} list; /* LIST */
		struct {
			struct rules_node *obj; /* NULL for FUNC */
			const char *name;
			size_t name_len;
			struct rules_node *index; /* INDEX */
			struct rules_node **args; /* CALL, FUNC */
			size_t nargs;
			int builtin; /* CALL: index in the builtin table */
		} m;
		struct {
			struct rules_node *a, *b, *c;
		} ops;
		struct {
			struct rules_node *subject;
			struct rules_node *pattern; /* the string literal */
			const struct rules_regex *re;
		} match;
		struct {
			const char **keys; /* decoded, NUL-terminated */
			size_t *key_lens;
			struct rules_node **values;
			size_t n;
		} map;
		struct {
			const char *name; /* NUL-terminated copy */
			size_t name_len;
			int slot; /* index in the evaluation's variable stack */
			struct rules_node *value; /* LET */
			struct rules_node *body; /* LET, ARROW */
		} bind; /* LET, ARROW, VAR */
	} u;
};

/* Variables (let bindings and arrow parameters) live in a fixed stack of
 * slots in the evaluation context; a slot is the binding's scope depth. */
#define RULES_MAX_VARS 32

struct rules_expr {
	struct rules_node *root;
	const char *src; /* copy of the source, for runtime error positions */
	size_t len;
	struct rules_arena *owned; /* set when compiled alone (rules_expr_compile) */
	const char *file; /* where it was compiled from (diagnostics' file) */
	const int *loc; /* per line of src: file line, column of its start */
	size_t nlines;
};

/* check.c: parses, checks and compiles one expression into arena `a`. Diagnostics
 * go to d through map. Returns NULL if any error was reported. */
struct rules_expr *expr__compile(struct rules_arena *a, const char *src, size_t len,
				 const struct rules_srcmap *map, struct rules_diags *d);

/* parser.c: parses src[0..len) (borrowed for the AST's lifetime) into
 * nodes in arena a; NULL after reporting the first syntax error. */
struct rules_node *parser__parse(struct rules_arena *a, const char *src, size_t len,
				 const struct rules_srcmap *map, struct rules_diags *d, size_t *js_comment);

/* expr__compile for a Forge trigger filter: also adds to notes (warnings)
 * every construct Forge would refuse (rules check --forge). */
struct rules_expr *expr__compile_filter(struct rules_arena *a, const char *src, size_t len,
					const struct rules_srcmap *map, struct rules_diags *d,
					struct rules_diags *notes);

/* Parses only (no name check, no regex compile): for parser tests. */
struct rules_expr *expr__parse(struct rules_arena *a, const char *src, size_t len,
			       const struct rules_srcmap *map, struct rules_diags *d);

/* S-expression rendering of the AST, e.g. "(+ 1 (* 2 3))"; malloc'd. */
char *expr__dump(const struct rules_expr *e);

/* Builtin methods and functions: the tables in builtins.c (ORDER RULES_BI,
 * ORDER RULES_FN). takes_fn: the first argument is an arrow function. */
int builtin__lookup(const char *name, size_t len);
void builtin__arity(int index, int *min_args, int *max_args, bool *takes_fn);
int func__lookup(const char *name, size_t len);
void func__arity(int index, int *min_args, int *max_args);
/* Name number i of the methods / functions, NULL past the end (suggestions). */
const char *builtin__name(size_t i);
const char *func__name(size_t i);

/* Appends the last evaluation error of e on s as "FILE:LINE:COL: message"
 * (the position in the rule file), or as s->error when e has no file. */
void eval__error_where(const struct rules_expr *e, const struct rules_scratch *s, struct rules_strbuf *b);

/* Describes what decided the last evaluation on s (needs s->explain):
 * "`SUBEXPR` (column N) was false: left side \"x\", right side \"y\"".
 * Appends to b. */
void eval__explain(const struct rules_expr *e, const struct rules_scratch *s, struct rules_strbuf *b);

/* ============================================================
 * Regex (PCRE2)
 * ============================================================ */

/* Compiles pattern[0..n) into the arena. On error returns NULL, *err_off is
 * the offset in the pattern and msg (size msg_size) the PCRE2 message. */
const struct rules_regex *regex__compile(struct rules_arena *a, const char *pattern, size_t n,
					 size_t *err_off, char *msg, size_t msg_size);

/* ============================================================
 * Evaluation
 * ============================================================ */

enum rules_vkind {
	RULES_V_NULL,
	RULES_V_BOOL,
	RULES_V_NUM,
	RULES_V_STR,
	RULES_V_LIST, /* built by a list literal; items in the scratch arena */
	RULES_V_ARR, /* a JSON array from the event (json) */
	RULES_V_MAP, /* a JSON object from the event (json) */
	RULES_V_OBJ /* built by a map literal; entries in the scratch arena */
};

struct rules_kv;

struct rules_value {
	enum rules_vkind kind;
	const json_t *json; /* the event node it came from, if any (borrowed) */
	union {
		bool b;
		double num;
		struct {
			const char *s;
			size_t len;
		} str;
		struct {
			const struct rules_value *items;
			size_t n;
		} list;
		struct {
			const struct rules_kv *items;
			size_t n;
		} obj;
	} u;
};

struct rules_kv {
	const char *key;
	size_t len;
	struct rules_value v;
};

/* What decided the last evaluation (rules test): filled only when
 * scratch->explain is set, so the normal path pays one branch per && || ?:. */
struct rules_explain {
	const struct rules_node *node; /* the deciding sub-expression, or NULL */
	const struct rules_node *bin; /* last comparison evaluated and its operands */
	struct rules_value a, b;
	bool has_operands;
	unsigned long steps;
};

struct rules_scratch {
	pcre2_match_data *match_data;
	struct rules_arena strings; /* runtime strings and list items */
	size_t max_bytes, used_bytes; /* byte limit of one evaluation, and use so far */
	json_t *runtime; /* event.runtime of the last evaluation, if built */
	const char *top_str; /* the last string '+' built, if nothing came after */
	size_t top_len;
	bool over_bytes; /* an allocation was refused for the byte limit */
	enum rules_eval_status status;
	struct rules_limit_counts counts;
	unsigned long max_steps;
	size_t err_msg_at; /* error + err_msg_at: the message without its position */
	size_t err_at; /* byte offset in the expression of the node that failed */
	int err_line, err_col; /* where the last error was raised */
	bool explain;
	struct rules_explain ex;
	char error[320];
};

/* Evaluates e against event; *out may point into scratch until the next call.
 * Returns 0, or -1 with scratch->error set. */
int eval__run(const struct rules_expr *e, const json_t *event, struct rules_scratch *s,
	      struct rules_value *out);
/* New reference to a JSON rendering of v; NULL on OOM. */
json_t *eval__to_json(const struct rules_value *v);
/* Appends the template rendering of v (strings raw, null empty, other JSON). */
void eval__render(const struct rules_value *v, struct rules_strbuf *b);
const char *eval__type_name(const struct rules_value *v);
/* Could v be rendered (or converted to JSON) in about `budget` bytes? A
 * bounded walk, so that a list holding one large string many times is
 * refused before it is copied. */
bool eval__fits(const struct rules_value *v, size_t budget);
/* Counts an evaluation that ended with s->status (eval__run does it; so
 * does template__render for its output limit). */
void eval__count(struct rules_scratch *s);
/* Converts a JSON value to a borrowed runtime value. */
void eval__from_json(const json_t *j, struct rules_value *out);

/* ============================================================
 * Templates
 * ============================================================ */

struct rules_tpart {
	const char *text; /* literal text, or NULL when expr is set */
	size_t len;
	struct rules_expr *expr;
};

struct rules_template {
	struct rules_tpart *parts;
	size_t nparts;
};

struct rules_template *template__compile(struct rules_arena *a, const char *src, size_t len,
					 const struct rules_srcmap *map, struct rules_diags *d);
/* Renders into a malloc'd string. Returns 0, or -1 with *error malloc'd. */
int template__render(const struct rules_template *t, const json_t *event, struct rules_scratch *s,
		     char **text, size_t *text_len, char **error);

/* ============================================================
 * Known Forge events (forge_events.c, generated by gen-forge-events.sh)
 * ============================================================ */

extern const char *const rules__forge_events[];
extern const size_t rules__forge_event_count;

bool glob__match(const char *pattern, const char *s);

/* ============================================================
 * event.runtime (runtime.c)
 * ============================================================ */

/* A payload.include.propertyPaths entry: ENTITY.properties[key]... */
bool runtime__path_valid(const char *path);
/* The nested object event.payloadIncludeProperties describes (new ref). */
json_t *runtime__build(const json_t *event);

#endif
