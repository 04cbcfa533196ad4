/* load_yaml.c - YAML node access for the rule-file loader: typed reads of
 * scalars, key checks with suggestions, diagnostics at a node, and the
 * mapping from a scalar's decoded bytes back to file offsets that puts
 * expression and template errors at their exact line and column.
 *
 * Ownership: compiled expressions and templates go to the set's arena;
 * offset tables are temporary. Threads: one loader per thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load_internal.h"

void yaml__diag(struct rules_loader *L, const yaml_node_t *n, enum rules_severity sev, const char *fmt, ...)
{
	va_list ap;
	int line = n ? (int)n->start_mark.line + 1 : 0;
	int col = n ? (int)n->start_mark.column + 1 : 0;
	char *src = line ? linemap__line_dup(&L->lm, line) : NULL;

	if (sev == RULES_SEV_ERROR)
		L->errors++;
	va_start(ap, fmt);
	diag__vadd(L->d, sev, L->file, line, col, src, fmt, ap);
	va_end(ap);
	free(src);
}

void yaml__forge_note(struct rules_loader *L, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;
	int line = (int)n->start_mark.line + 1, col = (int)n->start_mark.column + 1;
	char *src = linemap__line_dup(&L->lm, line);

	va_start(ap, fmt);
	diag__vadd(&L->set->forge_notes, RULES_SEV_WARNING, L->file, line, col, src, fmt, ap);
	va_end(ap);
	free(src);
}

yaml_node_t *yaml__at(struct rules_loader *L, int id)
{
	return yaml_document_get_node(&L->doc, id);
}

const char *yaml__scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

bool yaml__is_null(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = yaml__scalar(n);
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

bool yaml__is_string(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE && !yaml__is_null(n);
}

const char *yaml__kind(const yaml_node_t *n)
{
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (yaml__is_null(n))
		return "null";
	return "a scalar";
}

bool yaml__get_bool(struct rules_loader *L, const yaml_node_t *n, const char *what, bool *out)
{
	if (n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		const char *s = yaml__scalar(n);
		if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
			*out = true;
			return true;
		}
		if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
			*out = false;
			return true;
		}
	}
	yaml__diag(L, n, RULES_SEV_ERROR, "'%s' must be true or false", what);
	return false;
}

/* Suggests the closest of `names` to `word` (edit distance <= 2), or NULL. */
const char *yaml__closest(const char *word, const char *const *names)
{
	const char *best = NULL;
	int best_d = 3;

	for (; *names; names++) {
		int dist = diag__edit_distance(word, *names);
		if (dist < best_d) {
			best_d = dist;
			best = *names;
		}
	}
	return best;
}

/* Checks the keys of mapping `m` against `allowed`: reports non-scalar,
 * duplicate and unknown keys. */
void yaml__check_keys(struct rules_loader *L, const yaml_node_t *m, const char *const *allowed,
		      const char *where)
{
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml__at(L, p->key);
		if (k->type != YAML_SCALAR_NODE) {
			yaml__diag(L, k, RULES_SEV_ERROR, "keys in %s must be plain names", where);
			continue;
		}
		for (yaml_node_pair_t *q = m->data.mapping.pairs.start; q < p; q++) {
			yaml_node_t *k2 = yaml__at(L, q->key);
			if (k2->type == YAML_SCALAR_NODE && !strcmp(yaml__scalar(k2), yaml__scalar(k))) {
				yaml__diag(L, k, RULES_SEV_ERROR, "duplicate key '%s' in %s", yaml__scalar(k),
					   where);
				break;
			}
		}
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			if (!strcmp(*a, yaml__scalar(k)))
				ok = true;
		if (ok)
			continue;
		const char *hint = yaml__closest(yaml__scalar(k), allowed);
		if (hint)
			yaml__diag(L, k, RULES_SEV_ERROR, "unknown key '%s' in %s; did you mean '%s'?",
				   yaml__scalar(k), where, hint);
		else
			yaml__diag(L, k, RULES_SEV_ERROR, "unknown key '%s' in %s", yaml__scalar(k), where);
	}
}

/* Value of key `name` in mapping m (the first one), NULL if absent; *key_out
 * gets the key node when not NULL. */
yaml_node_t *yaml__get(struct rules_loader *L, const yaml_node_t *m, const char *name, yaml_node_t **key_out)
{
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml__at(L, p->key);
		if (k->type == YAML_SCALAR_NODE && !strcmp(yaml__scalar(k), name)) {
			if (key_out)
				*key_out = k;
			return yaml__at(L, p->value);
		}
	}
	return NULL;
}

static size_t mark_offset(struct rules_loader *L, yaml_mark_t m)
{
	return linemap__offset(&L->lm, (int)m.line + 1, (int)m.column + 1);
}

static bool offsets_match(const char *decoded, size_t dlen, const yaml_node_t *n)
{
	return dlen >= n->data.scalar.length && memcmp(decoded, yaml__scalar(n), n->data.scalar.length) == 0;
}

/* Builds, for each byte of the scalar's value, the offset in the file it
 * came from. Exact for single-line plain, single- and double-quoted scalars
 * and for literal (|) blocks; returns NULL (caller falls back to "start +
 * offset") for folded blocks, multi-line flow scalars and anything the
 * re-scan does not reproduce byte for byte. */
static size_t *scalar_offsets(struct rules_loader *L, const yaml_node_t *n)
{
	const char *t = L->lm.text;
	size_t len = L->lm.len, vlen = n->data.scalar.length;
	size_t i = mark_offset(L, n->start_mark), o = 0;
	size_t *off = malloc((vlen + 1) * sizeof(size_t));
	char *dec = malloc(vlen + 8);

	if (!off || !dec)
		goto fail;
	switch (n->data.scalar.style) {
	case YAML_PLAIN_SCALAR_STYLE:
		for (; o < vlen && i < len && t[i] != '\n'; o++, i++) {
			dec[o] = t[i];
			off[o] = i;
		}
		break;
	case YAML_SINGLE_QUOTED_SCALAR_STYLE:
		for (i++; o < vlen && i < len && t[i] != '\n'; o++, i++) {
			if (t[i] == '\'' && i + 1 < len && t[i + 1] == '\'') {
				dec[o] = '\'';
				off[o] = i++;
			} else if (t[i] == '\'') {
				break;
			} else {
				dec[o] = t[i];
				off[o] = i;
			}
		}
		break;
	case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
		for (i++; o < vlen && i < len && t[i] != '\n' && t[i] != '"'; i++) {
			if (t[i] != '\\') {
				dec[o] = t[i];
				off[o++] = i;
				continue;
			}
			size_t at = i++, digits = 0;
			char c = 0;
			switch (i < len ? t[i] : 0) {
			case 'n': c = '\n'; break;
			case 't':
			case '\t': c = '\t'; break;
			case 'r': c = '\r'; break;
			case '\\': c = '\\'; break;
			case '"': c = '"'; break;
			case '/': c = '/'; break;
			case ' ': c = ' '; break;
			case 'x': digits = 2; break;
			case 'u': digits = 4; break;
			case 'U': digits = 8; break;
			default: goto fail; /* rare escapes: approximate */
			}
			if (digits) {
				/* the value already holds the decoded character: copy
				 * its UTF-8 bytes, all pointing at the backslash */
				unsigned char lead = (unsigned char)yaml__scalar(n)[o];
				size_t w = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
				for (size_t k = 0; k < w && o < vlen; k++, o++) {
					dec[o] = yaml__scalar(n)[o];
					off[o] = at;
				}
				i += digits;
			} else {
				dec[o] = c;
				off[o++] = at;
			}
		}
		break;
	case YAML_LITERAL_SCALAR_STYLE: {
		/* skip the indicator line, then take the indentation of the first
		 * non-empty line as the block's indentation */
		while (i < len && t[i] != '\n')
			i++;
		i++;
		size_t indent = 0, j = i;
		while (j < len && (t[j] == '\n' || t[j] == ' ')) {
			if (t[j] == '\n') {
				indent = 0;
			} else {
				indent++;
			}
			j++;
		}
		while (o < vlen && i < len) {
			size_t k = 0;
			while (k < indent && i < len && t[i] == ' ') {
				k++;
				i++;
			}
			while (o < vlen && i < len && t[i] != '\n') {
				dec[o] = t[i];
				off[o++] = i++;
			}
			if (o < vlen && i < len) {
				dec[o] = '\n';
				off[o++] = i++;
			}
		}
		break;
	}
	default: goto fail;
	}
	if (o != vlen || !offsets_match(dec, o, n))
		goto fail;
	free(dec);
	return off;
fail:
	free(off);
	free(dec);
	return NULL;
}

static void scalar_srcmap(struct rules_loader *L, const yaml_node_t *n, struct rules_srcmap *m,
			  size_t **offsets)
{
	memset(m, 0, sizeof(*m));
	m->file = L->file;
	m->lm = &L->lm;
	m->line_base = 1;
	m->col_base = 1;
	*offsets = scalar_offsets(L, n);
	if (*offsets) {
		m->offsets = *offsets;
		m->n_offsets = n->data.scalar.length;
	} else {
		/* approximation: start + offset (+1 for an opening quote) */
		int quoted = n->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
			     n->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
		m->base_offset = mark_offset(L, n->start_mark) + (size_t)quoted;
	}
}

struct rules_expr *yaml__compile_expr(struct rules_loader *L, const yaml_node_t *n, bool filter)
{
	struct rules_srcmap m;
	size_t *offsets;
	size_t before = L->d->errors;

	scalar_srcmap(L, n, &m, &offsets);
	struct rules_expr *e = expr__compile_filter(&L->set->arena, yaml__scalar(n), n->data.scalar.length,
						    &m, L->d, filter ? &L->set->forge_notes : NULL);
	free(offsets);
	if (!e && L->d->errors == before) /* make sure a failure always counts */
		yaml__diag(L, n, RULES_SEV_ERROR, "cannot compile expression");
	else if (!e)
		L->errors++;
	return e;
}

struct rules_template *yaml__compile_template(struct rules_loader *L, const yaml_node_t *n, const char *what)
{
	struct rules_srcmap m;
	size_t *offsets;
	size_t before = L->d->errors;

	if (!yaml__is_string(n)) {
		yaml__diag(L, n, RULES_SEV_ERROR, "'%s' must be a string, got %s", what, yaml__kind(n));
		return NULL;
	}
	scalar_srcmap(L, n, &m, &offsets);
	struct rules_template *t =
		template__compile(&L->set->arena, yaml__scalar(n), n->data.scalar.length, &m, L->d);
	free(offsets);
	if (!t && L->d->errors == before)
		yaml__diag(L, n, RULES_SEV_ERROR, "cannot compile template");
	else if (!t)
		L->errors++;
	return t;
}

const char *yaml__dup(struct rules_loader *L, const yaml_node_t *n)
{
	return arena__strndup(&L->set->arena, yaml__scalar(n), n->data.scalar.length);
}
