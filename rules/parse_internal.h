/* parse_internal.h - the parser's state and token-stream helpers, shared by
 * parse_util.c (tokens, errors, nodes) and parser.c (the grammar).
 *
 * Ownership: a struct parser borrows its source, arena, map and diagnostics;
 * nodes go to the arena. Threads: one parser per compiling thread.
 */
#ifndef RULES_PARSE_INTERNAL_H
#define RULES_PARSE_INTERNAL_H

#include "rules_internal.h"

#define PARSE_MAX_DEPTH 64 /* nested parens / brackets / blocks / unary operators */

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

/* Reports the first syntax error of the expression (later ones are dropped:
 * they follow from the first). */
void parse__syntax_error(struct parser *p, size_t at, const char *fmt, ...) RULES_FMT(3, 4);
/* Moves to the next token; a lexical error becomes the syntax error. */
void parse__advance(struct parser *p);
/* Describes the current token for messages: 'name' for identifiers. */
const char *parse__tok_desc(struct parser *p, char *buf, size_t n);
bool parse__tok_is_name(struct parser *p, const char *name);
/* Consumes a token of this kind or reports "expected K CONTEXT, found X". */
bool parse__expect(struct parser *p, enum rules_tok kind, const char *context);
/* "unexpected X" + after, with the hint for a lone '='. */
void parse__unexpected(struct parser *p, const char *after);
/* True if the tokens after the current one are kinds[0..n). */
bool parse__peek_is(struct parser *p, const enum rules_tok *kinds, size_t n);
struct rules_node *parse__new_node(struct parser *p, enum rules_node_kind kind, size_t start, size_t end);
/* One more nesting level; false (reported) past PARSE_MAX_DEPTH. */
bool parse__enter(struct parser *p);
/* Appends item to a node's u.list (arena-grown). */
bool parse__list_push(struct parser *p, struct rules_node *n, struct rules_node *item);

#endif
