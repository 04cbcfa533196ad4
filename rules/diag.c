/* diag.c - diagnostics: the list the loader fills, line maps that turn byte
 * offsets into line/column, and the compiler-style caret rendering.
 *
 * Ownership: struct rules_diags owns every string of its entries
 * (rules_diags_free). A linemap borrows its text and owns its offset table.
 * Threads: no shared state; each object is used by one thread at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_internal.h"

void rules_diags_init(struct rules_diags *d)
{
	memset(d, 0, sizeof(*d));
}

void rules_diags_free(struct rules_diags *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->count; i++) {
		free(d->items[i].file);
		free(d->items[i].message);
		free(d->items[i].source_line);
	}
	free(d->items);
	memset(d, 0, sizeof(*d));
}

int diag__vadd(struct rules_diags *d, enum rules_severity sev, const char *file, int line, int col,
	       const char *source_line, const char *fmt, va_list ap)
{
	struct rules_diag *it;

	if (!d)
		return 0;
	if (d->count == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct rules_diag *p = realloc(d->items, cap * sizeof(*p));
		if (!p)
			return -1;
		d->items = p;
		d->cap = cap;
	}
	it = &d->items[d->count];
	memset(it, 0, sizeof(*it));
	it->severity = sev;
	it->line = line;
	it->col = col;
	it->file = strdup(file ? file : "<input>");
	it->source_line = source_line ? strdup(source_line) : NULL;
	if (vasprintf(&it->message, fmt, ap) < 0)
		it->message = NULL;
	if (!it->file || !it->message || (source_line && !it->source_line)) {
		free(it->file);
		free(it->source_line);
		free(it->message);
		return -1;
	}
	d->count++;
	if (sev == RULES_SEV_ERROR)
		d->errors++;
	else
		d->warnings++;
	return 0;
}

int diag__add(struct rules_diags *d, enum rules_severity sev, const char *file, int line, int col,
	      const char *source_line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	int rc = diag__vadd(d, sev, file, line, col, source_line, fmt, ap);
	va_end(ap);
	return rc;
}

char *rules_diag_format(const struct rules_diag *d)
{
	struct rules_strbuf b = {0};
	const char *sev = d->severity == RULES_SEV_ERROR ? "error" : "warning";

	if (d->line > 0 && d->col > 0)
		strbuf__printf(&b, "%s:%d:%d: %s: %s\n", d->file, d->line, d->col, sev, d->message);
	else if (d->line > 0)
		strbuf__printf(&b, "%s:%d: %s: %s\n", d->file, d->line, sev, d->message);
	else
		strbuf__printf(&b, "%s: %s: %s\n", d->file, sev, d->message);
	if (d->source_line && d->line > 0 && d->col > 0) {
		const char *s = d->source_line;
		int col = 1;

		strbuf__printf(&b, "  %s\n  ", s);
		/* Pad with the line's own tabs so the caret lines up whatever the
		 * terminal's tab width; columns count UTF-8 characters. */
		for (; *s && col < d->col; s++) {
			if (((unsigned char)*s & 0xC0) == 0x80)
				continue;
			strbuf__append(&b, *s == '\t' ? "\t" : " ", 1);
			col++;
		}
		for (; col < d->col; col++) /* column past the end of the line */
			strbuf__append(&b, " ", 1);
		strbuf__append(&b, "^\n", 2);
	}
	return strbuf__take(&b);
}

/* ---- line maps ---- */

int linemap__init(struct rules_linemap *lm, const char *text, size_t len)
{
	size_t n = 1;

	memset(lm, 0, sizeof(*lm));
	for (size_t i = 0; i < len; i++)
		if (text[i] == '\n')
			n++;
	lm->starts = malloc(n * sizeof(size_t));
	if (!lm->starts)
		return -1;
	lm->text = text;
	lm->len = len;
	lm->starts[0] = 0;
	lm->nlines = 1;
	for (size_t i = 0; i < len; i++)
		if (text[i] == '\n')
			lm->starts[lm->nlines++] = i + 1;
	return 0;
}

void linemap__free(struct rules_linemap *lm)
{
	free(lm->starts);
	lm->starts = NULL;
}

void linemap__locate(const struct rules_linemap *lm, size_t offset, int *line, int *col)
{
	size_t lo = 0, hi = lm->nlines;

	if (offset > lm->len)
		offset = lm->len;
	while (hi - lo > 1) { /* last line start <= offset */
		size_t mid = (lo + hi) / 2;
		if (lm->starts[mid] <= offset)
			lo = mid;
		else
			hi = mid;
	}
	int c = 1;
	for (size_t i = lm->starts[lo]; i < offset; i++)
		if (((unsigned char)lm->text[i] & 0xC0) != 0x80)
			c++;
	*line = (int)lo + 1;
	*col = c;
}

size_t linemap__offset(const struct rules_linemap *lm, int line, int col)
{
	if (line < 1)
		return 0;
	if ((size_t)line > lm->nlines)
		return lm->len;
	size_t i = lm->starts[line - 1];
	for (int c = 1; c < col && i < lm->len && lm->text[i] != '\n'; c++) {
		i++;
		while (i < lm->len && ((unsigned char)lm->text[i] & 0xC0) == 0x80)
			i++;
	}
	return i;
}

char *linemap__line_dup(const struct rules_linemap *lm, int line)
{
	if (line < 1 || (size_t)line > lm->nlines)
		return NULL;
	size_t s = lm->starts[line - 1], e = s;
	while (e < lm->len && lm->text[e] != '\n')
		e++;
	if (e > s && lm->text[e - 1] == '\r')
		e--;
	return strndup(lm->text + s, e - s);
}

/* ---- source maps ---- */

void srcmap__locate(const struct rules_srcmap *m, size_t off, int *line, int *col)
{
	size_t i = off + m->shift, raw;

	if (m->offsets) {
		if (m->n_offsets == 0)
			raw = m->base_offset;
		else if (i < m->n_offsets)
			raw = m->offsets[i];
		else /* just past the end: one after the last byte */
			raw = m->offsets[m->n_offsets - 1] + 1 + (i - m->n_offsets);
	} else {
		raw = m->base_offset + i;
	}
	linemap__locate(m->lm, raw, line, col);
	if (*line == 1)
		*col += m->col_base - 1;
	*line += m->line_base - 1;
}

void srcmap__diag(const struct rules_srcmap *m, struct rules_diags *d, enum rules_severity sev, size_t off,
		  const char *fmt, ...)
{
	int line, col, lm_line, lm_col;
	va_list ap;

	srcmap__locate(m, off, &line, &col);
	/* the source line is looked up in the map's own text */
	size_t i = off + m->shift;
	size_t raw = m->offsets ? (m->n_offsets ? m->offsets[i < m->n_offsets ? i : m->n_offsets - 1]
						: m->base_offset)
				: m->base_offset + i;
	linemap__locate(m->lm, raw, &lm_line, &lm_col);
	char *src = linemap__line_dup(m->lm, lm_line);
	va_start(ap, fmt);
	diag__vadd(d, sev, m->file, line, col, src, fmt, ap);
	va_end(ap);
	free(src);
}

void rules_diags_print(const struct rules_diags *d, FILE *out)
{
	for (size_t i = 0; d && i < d->count; i++) {
		char *text = rules_diag_format(&d->items[i]);
		if (text)
			fputs(text, out);
		else
			fprintf(out, "%s\n", d->items[i].message);
		free(text);
	}
}

int diag__edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	int row[64];

	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		int prev = row[0];
		row[0] = (int)i;
		for (size_t j = 1; j <= lb; j++) {
			int cur = row[j];
			int cost = a[i - 1] == b[j - 1] ? 0 : 1;
			int best = prev + cost;
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = cur;
		}
	}
	return row[lb];
}
