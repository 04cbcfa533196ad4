/* lexer.c - hand-written tokenizer for rule expressions (Lua style).
 *
 * Tokens carry byte ranges into the source; nothing is allocated. String
 * literals are only delimited here; lexer__decode_string turns them into
 * bytes later (the parser decodes into its arena, the checker re-decodes
 * with offsets to map regex error positions).
 *
 * Ownership: the lexer borrows its source. Threads: one lexer per thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_internal.h"

static const char *const token_names[RULES_T__COUNT] = {
	/* ORDER RULES_TOK */
	"end of expression",
	"number",
	"string",
	"identifier",
	"'.'",
	"'?.'",
	"'['",
	"']'",
	"'('",
	"')'",
	"','",
	"'!'",
	"'-'",
	"'+'",
	"'*'",
	"'/'",
	"'%'",
	"'<'",
	"'<='",
	"'>'",
	"'>='",
	"'=='",
	"'!='",
	"'&&'",
	"'||'",
	"'?"
	"?'",
	"'?'",
	"':'",
	"'{'",
	"'}'",
	"'=>'",
	"'='",
	"';'",
	"template literal",
	"invalid token",
};

const char *lexer__token_name(enum rules_tok kind)
{
	return kind < RULES_T__COUNT ? token_names[kind] : "?";
}

void lexer__init(struct rules_lexer *lx, const char *src, size_t len)
{
	memset(lx, 0, sizeof(*lx));
	lx->src = src;
	lx->len = len;
}

static bool is_ident_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static struct rules_token lex_error(struct rules_lexer *lx, size_t at, const char *msg)
{
	struct rules_token t = {RULES_T_ERROR, (uint32_t)at, (uint32_t)at + 1, 0};

	snprintf(lx->error, sizeof(lx->error), "%s", msg);
	lx->error_pos = at;
	lx->pos = lx->len; /* stop: the parser reports the first lexical error */
	return t;
}

static struct rules_token lex_number(struct rules_lexer *lx, size_t start)
{
	const char *s = lx->src;
	size_t i = start;
	char buf[64];

	while (i < lx->len && is_digit(s[i]))
		i++;
	if (i < lx->len && s[i] == '.' && i + 1 < lx->len && is_digit(s[i + 1])) {
		i++;
		while (i < lx->len && is_digit(s[i]))
			i++;
	}
	if (i < lx->len && (s[i] == 'e' || s[i] == 'E')) {
		size_t j = i + 1;
		if (j < lx->len && (s[j] == '+' || s[j] == '-'))
			j++;
		if (j >= lx->len || !is_digit(s[j]))
			return lex_error(lx, i, "malformed number exponent");
		while (j < lx->len && is_digit(s[j]))
			j++;
		i = j;
	}
	if (i < lx->len && (is_ident_start(s[i]) || is_digit(s[i])))
		return lex_error(lx, i, "unexpected character after number");
	if (i - start >= sizeof(buf))
		return lex_error(lx, start, "number literal too long");
	memcpy(buf, s + start, i - start);
	buf[i - start] = '\0';
	struct rules_token t = {RULES_T_NUMBER, (uint32_t)start, (uint32_t)i, strtod(buf, NULL)};
	lx->pos = i;
	return t;
}

static struct rules_token lex_string(struct rules_lexer *lx, size_t start)
{
	const char *s = lx->src;
	char quote = s[start];
	size_t i = start + 1;

	while (i < lx->len && s[i] != quote) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '\n')
			return lex_error(lx, start, "unterminated string literal");
		i++;
	}
	if (i >= lx->len)
		return lex_error(lx, start, "unterminated string literal");
	struct rules_token t = {RULES_T_STRING, (uint32_t)start, (uint32_t)(i + 1), 0};
	lx->pos = i + 1;
	/* validate escapes now so errors point at the right place */
	size_t err_at = 0;
	const char *msg = NULL;
	long n = lexer__decode_string(s + start, i + 1 - start, NULL, NULL, &err_at, &msg);
	if (n < 0)
		return lex_error(lx, start + err_at, msg);
	return t;
}

#define TEMPLATE_MAX_NESTING 16 /* templates inside ${} inside templates */

static size_t skip_template(const char *s, size_t len, size_t i, int depth);

/* Index of the '}' that closes the ${ whose content starts at i (nested
 * braces, strings and templates skipped), or len if there is none. */
static size_t skip_substitution(const char *s, size_t len, size_t i, int depth)
{
	int braces = 0;

	while (i < len) {
		char c = s[i];
		if (c == '\'' || c == '"') {
			for (i++; i < len && s[i] != c && s[i] != '\n'; i++)
				if (s[i] == '\\')
					i++;
			if (i >= len || s[i] == '\n')
				return len;
		} else if (c == '`') {
			i = skip_template(s, len, i, depth + 1);
			if (i >= len)
				return len;
		} else if (c == '{') {
			braces++;
		} else if (c == '}') {
			if (braces-- == 0)
				return i;
		}
		i++;
	}
	return len;
}

/* Index of the closing backtick of the template starting at s[i] == '`',
 * or len if it is unterminated (or nested too deeply). */
static size_t skip_template(const char *s, size_t len, size_t i, int depth)
{
	if (depth > TEMPLATE_MAX_NESTING)
		return len;
	for (i++; i < len; i++) {
		if (s[i] == '\\') {
			i++;
		} else if (s[i] == '`') {
			return i;
		} else if (s[i] == '$' && i + 1 < len && s[i + 1] == '{') {
			i = skip_substitution(s, len, i + 2, depth);
			if (i >= len)
				return len;
		}
	}
	return len;
}

size_t lexer__substitution_end(const char *s, size_t len, size_t i)
{
	return skip_substitution(s, len, i, 0);
}

static struct rules_token lex_template(struct rules_lexer *lx, size_t start)
{
	size_t end = skip_template(lx->src, lx->len, start, 0);

	if (end >= lx->len)
		return lex_error(lx, start, "unterminated template literal (missing '`' or '}')");
	struct rules_token t = {RULES_T_TEMPLATE, (uint32_t)start, (uint32_t)(end + 1), 0};
	lx->pos = end + 1;
	return t;
}

/* Skips white space and comments: '#' and '//' to the end of the line,
 * '/' '*' to '*' '/'. Returns the next position, or (size_t)-1 for an
 * unterminated block comment (which starts at *open). */
static size_t skip_space(const struct rules_lexer *lx, size_t i, size_t *open, size_t *js)
{
	const char *s = lx->src;

	for (;;) {
		while (i < lx->len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
			i++;
		if (i < lx->len && (s[i] == '#' || (s[i] == '/' && i + 1 < lx->len && s[i + 1] == '/'))) {
			if (s[i] == '/' && !*js)
				*js = i + 1;
			while (i < lx->len && s[i] != '\n')
				i++;
			continue;
		}
		if (i + 1 < lx->len && s[i] == '/' && s[i + 1] == '*') {
			if (!*js)
				*js = i + 1;
			const char *end = memmem(s + i + 2, lx->len - i - 2, "*/", 2);
			*open = i;
			if (!end)
				return (size_t)-1;
			i = (size_t)(end - s) + 2;
			continue;
		}
		return i;
	}
}

struct rules_token lexer__next(struct rules_lexer *lx)
{
	const char *s = lx->src;
	size_t open = 0, i = skip_space(lx, lx->pos, &open, &lx->js_comment);

	if (i == (size_t)-1)
		return lex_error(lx, open, "unterminated comment (missing '*/')");
	lx->pos = i;
	if (i >= lx->len) {
		struct rules_token t = {RULES_T_EOF, (uint32_t)i, (uint32_t)i, 0};
		return t;
	}
	int c = (unsigned char)s[i];
	int n = i + 1 < lx->len ? (unsigned char)s[i + 1] : 0;
	enum rules_tok k;
	size_t w = 1;

	if (is_ident_start(c)) {
		size_t j = i + 1;
		while (j < lx->len && (is_ident_start(s[j]) || is_digit(s[j])))
			j++;
		struct rules_token t = {RULES_T_IDENT, (uint32_t)i, (uint32_t)j, 0};
		lx->pos = j;
		return t;
	}
	if (is_digit(c) || (c == '.' && is_digit(n)))
		return lex_number(lx, i);
	if (c == '\'' || c == '"')
		return lex_string(lx, i);
	if (c == '`')
		return lex_template(lx, i);
	switch (c) {
	case '.': k = RULES_T_DOT; break;
	case '[': k = RULES_T_LBRACKET; break;
	case ']': k = RULES_T_RBRACKET; break;
	case '(': k = RULES_T_LPAREN; break;
	case ')': k = RULES_T_RPAREN; break;
	case ',': k = RULES_T_COMMA; break;
	case '-': k = RULES_T_MINUS; break;
	case '+': k = RULES_T_PLUS; break;
	case '*': k = RULES_T_STAR; break;
	case '/': k = RULES_T_SLASH; break;
	case '%': k = RULES_T_PERCENT; break;
	case ':': k = RULES_T_COLON; break;
	case '{': k = RULES_T_LBRACE; break;
	case '}': k = RULES_T_RBRACE; break;
	case ';': k = RULES_T_SEMI; break;
	case '<':
		k = n == '=' ? RULES_T_LE : RULES_T_LT;
		w = n == '=' ? 2 : 1;
		break;
	case '>':
		k = n == '=' ? RULES_T_GE : RULES_T_GT;
		w = n == '=' ? 2 : 1;
		break;
	case '!':
		k = n == '=' ? RULES_T_NE : RULES_T_NOT;
		w = n == '=' ? 2 : 1;
		break;
	case '=':
		/* a lone '=' is only valid in `let x = ...`; the parser says
		 * "use '=='" everywhere else */
		k = n == '=' ? RULES_T_EQ : n == '>' ? RULES_T_ARROW : RULES_T_ASSIGN;
		w = n == '=' || n == '>' ? 2 : 1;
		break;
	case '&':
		if (n != '&')
			return lex_error(lx, i, "unexpected '&' (use '&&')");
		k = RULES_T_AND;
		w = 2;
		break;
	case '|':
		if (n != '|')
			return lex_error(lx, i, "unexpected '|' (use '||')");
		k = RULES_T_OR;
		w = 2;
		break;
	case '?':
		if (n == '?') {
			k = RULES_T_COALESCE;
			w = 2;
		} else if (n == '.' && !(i + 2 < lx->len && is_digit(s[i + 2]))) {
			/* `c?.5:1` is a ternary, as in JavaScript */
			k = RULES_T_QDOT;
			w = 2;
		} else {
			k = RULES_T_QUESTION;
		}
		break;
	default: {
		char msg[64];
		if (c >= 0x20 && c < 0x7f)
			snprintf(msg, sizeof(msg), "unexpected character '%c'", c);
		else
			snprintf(msg, sizeof(msg), "unexpected character (byte 0x%02x)", c);
		return lex_error(lx, i, msg);
	}
	}
	/* `===` / `!==` are common JavaScript habits: say so */
	if ((k == RULES_T_EQ || k == RULES_T_NE) && i + 2 < lx->len && s[i + 2] == '=')
		return lex_error(lx, i,
				 k == RULES_T_EQ ? "'===' is not supported; use '=='"
						 : "'!==' is not supported; use '!='");
	struct rules_token t = {k, (uint32_t)i, (uint32_t)(i + w), 0};
	lx->pos = i + w;
	return t;
}

static int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int read_hex4(const char *p, size_t avail)
{
	int v = 0;

	if (avail < 4)
		return -1;
	for (int k = 0; k < 4; k++) {
		int h = hex_value((unsigned char)p[k]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

static size_t utf8_encode(unsigned cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

long lexer__decode_string(const char *raw, size_t n, char *out, size_t *offsets, size_t *err_at,
			  const char **msg)
{
	size_t o = 0;
	char enc[4];

	/* raw[0] and raw[n-1] are the quotes */
	for (size_t i = 1; i + 1 < n; i++) {
		size_t from = i, w = 1;
		unsigned char c = (unsigned char)raw[i];

		if (c != '\\') {
			enc[0] = (char)c;
		} else {
			i++;
			switch (raw[i]) {
			case 'n': enc[0] = '\n'; break;
			case 't': enc[0] = '\t'; break;
			case 'r': enc[0] = '\r'; break;
			case 'b': enc[0] = '\b'; break;
			case 'f': enc[0] = '\f'; break;
			case '\\': enc[0] = '\\'; break;
			case '\'': enc[0] = '\''; break;
			case '"': enc[0] = '"'; break;
			case '/': enc[0] = '/'; break;
			case '`': enc[0] = '`'; break; /* template literals */
			case '$': enc[0] = '$'; break;
			case 'u': {
				int cp = read_hex4(raw + i + 1, n - 1 - (i + 1));
				if (cp < 0) {
					*err_at = from;
					*msg = "invalid \\u escape (expected 4 hex digits)";
					return -1;
				}
				i += 4;
				if (cp >= 0xD800 && cp <= 0xDBFF) { /* surrogate pair */
					int lo = -1;
					if (i + 2 < n - 1 && raw[i + 1] == '\\' && raw[i + 2] == 'u')
						lo = read_hex4(raw + i + 3, n - 1 - (i + 3));
					if (lo < 0xDC00 || lo > 0xDFFF) {
						*err_at = from;
						*msg = "unpaired UTF-16 surrogate in \\u escape";
						return -1;
					}
					i += 6;
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
					*err_at = from;
					*msg = "unpaired UTF-16 surrogate in \\u escape";
					return -1;
				}
				if (cp == 0) {
					*err_at = from;
					*msg = "\\u0000 is not allowed in strings";
					return -1;
				}
				w = utf8_encode((unsigned)cp, enc);
				break;
			}
			default:
				*err_at = from;
				*msg = "invalid escape sequence in string literal";
				return -1;
			}
		}
		for (size_t k = 0; k < w; k++, o++) {
			if (out)
				out[o] = enc[k];
			if (offsets)
				offsets[o] = from;
		}
	}
	return (long)o;
}
