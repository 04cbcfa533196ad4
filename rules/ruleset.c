/* ruleset.c - loading YAML rule files into immutable rule sets, and
 * evaluating events against them.
 *
 * Loading walks the libyaml document tree once, checks every key and value
 * (reporting every mistake found, with file:line:col), compiles expressions
 * and templates into the set's arena, and indexes rules by event name: exact
 * names in an open-addressing hash table, glob patterns in a short list.
 *
 * Ownership: a struct rules_set owns its arena (rules, AST, templates, PCRE2
 * codes) and is shared by an atomic reference count. rules_evaluate returns a
 * new JSON array owned by the caller.
 * Threads: a loaded set is never modified, so any number of threads may call
 * rules_evaluate on it concurrently, each with its own struct rules_scratch.
 * Loading runs on one thread and touches no global state.
 */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "rules_internal.h"

#define RULES_MAX_TTL 2592000

enum on_error { /* ORDER ON_ERROR (on_error_names[]) */
	ON_ERROR_IGNORE,
	ON_ERROR_IGNORE_AND_LOG,
	ON_ERROR_RECEIVE,
	ON_ERROR_RECEIVE_AND_LOG,
};

static const char *const on_error_names[] = { /* ORDER ON_ERROR */
	"IGNORE", "IGNORE_AND_LOG", "RECEIVE", "RECEIVE_AND_LOG", NULL,
};

static const char *const notify_types[] = {"info", "success", "warning", "error", NULL};

/* Forge scheduled trigger intervals; a `schedule: X` rule is indexed under
 * the event type "scheduled:X" (the event the gateway builds for
 * POST /forge/scheduled/X, docs/protocol.md). */
static const char *const schedule_names[] = {"fiveMinute", "hour", "day", "week", NULL};
static const char *const schedule_events[] = {"scheduled:fiveMinute", "scheduled:hour",
					      "scheduled:day", "scheduled:week", NULL};

struct rules_action {
	struct rules_template *text, *href;
};

struct rules_rule {
	const char *key;
	const char *file; /* the file it was loaded from (set arena) */
	int line;
	bool enabled;
	const char *schedule; /* interval name for schedule rules, else NULL */
	bool exclude_actor;
	const char **events;
	size_t n_events;
	bool has_glob;
	bool ignore_self;
	struct rules_expr *filter; /* NULL: no expression */
	enum on_error on_error;
	struct rules_expr **to;
	size_t n_to;
	struct rules_template *context, *title, *description; /* description may be NULL */
	const char *type;
	struct rules_action *actions;
	size_t n_actions;
	long ttl; /* 0: not set */
};

struct rules_bucket {
	const char *name; /* NULL: empty slot */
	size_t *rules;    /* rule indices, ascending */
	size_t n;
};

struct rules_set {
	atomic_int refs;
	struct rules_arena arena;
	struct rules_rule *rules; /* malloc'd, grows while loading */
	size_t n_rules, cap_rules;
	size_t n_files;
	uint64_t hash; /* FNV-1a over the sources, '\0' between files */
	struct rules_bucket *buckets; /* power-of-two sized, open addressing */
	size_t n_buckets;
	size_t *glob_rules; /* indices of rules with at least one glob */
	size_t n_glob_rules;
	char version[17];
};

/* ============================================================
 * Small helpers
 * ============================================================ */

#define FNV_BASIS 0xcbf29ce484222325ULL

static uint64_t fnv1a_update(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = FNV_BASIS;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

bool glob__match(const char *p, const char *s)
{
	const char *star = NULL, *resume = NULL;

	while (*s) {
		if (*p == '*') {
			star = p++;
			resume = s;
		} else if (*p == *s) {
			p++;
			s++;
		} else if (star) {
			p = star + 1;
			s = ++resume;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

static bool known_event(const char *name)
{
	size_t lo = 0, hi = rules__forge_event_count;

	/* The gateway's own scheduled events: "scheduled:X" (once per run) and
	 * "scheduled:X:user" (once per user with activity), docs/protocol.md. */
	for (size_t i = 0; schedule_names[i]; i++) {
		size_t n = strlen(schedule_names[i]);
		if (!strncmp(name, "scheduled:", 10) && !strncmp(name + 10, schedule_names[i], n) &&
		    (name[10 + n] == '\0' || !strcmp(name + 10 + n, ":user")))
			return true;
	}

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(rules__forge_events[mid], name);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* ============================================================
 * Loader
 * ============================================================ */

struct loader {
	const char *file;
	const char *file_copy; /* the same name in the set's arena */
	struct rules_linemap lm;
	yaml_document_t doc;
	struct rules_diags *d;
	struct rules_set *set;
	size_t errors;
};

static void node_diag(struct loader *L, const yaml_node_t *n, enum rules_severity sev,
		      const char *fmt, ...) RULES_FMT(4, 5);

static void node_diag(struct loader *L, const yaml_node_t *n, enum rules_severity sev,
		      const char *fmt, ...)
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

static yaml_node_t *node_at(struct loader *L, int id)
{
	return yaml_document_get_node(&L->doc, id);
}

static const char *scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static bool is_null_scalar(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = scalar(n);
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

static bool is_string(const yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE && !is_null_scalar(n);
}

static const char *node_kind(const yaml_node_t *n)
{
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	if (is_null_scalar(n))
		return "null";
	return "a scalar";
}

static bool get_bool(struct loader *L, const yaml_node_t *n, const char *what, bool *out)
{
	if (n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		const char *s = scalar(n);
		if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
			*out = true;
			return true;
		}
		if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
			*out = false;
			return true;
		}
	}
	node_diag(L, n, RULES_SEV_ERROR, "'%s' must be true or false", what);
	return false;
}

/* Suggests the closest of `names` to `word` (edit distance <= 2), or NULL. */
static const char *closest(const char *word, const char *const *names)
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
static void check_keys(struct loader *L, const yaml_node_t *m, const char *const *allowed,
		       const char *where)
{
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_at(L, p->key);
		if (k->type != YAML_SCALAR_NODE) {
			node_diag(L, k, RULES_SEV_ERROR, "keys in %s must be plain names", where);
			continue;
		}
		for (yaml_node_pair_t *q = m->data.mapping.pairs.start; q < p; q++) {
			yaml_node_t *k2 = node_at(L, q->key);
			if (k2->type == YAML_SCALAR_NODE && !strcmp(scalar(k2), scalar(k))) {
				node_diag(L, k, RULES_SEV_ERROR, "duplicate key '%s' in %s", scalar(k),
					  where);
				break;
			}
		}
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			if (!strcmp(*a, scalar(k)))
				ok = true;
		if (ok)
			continue;
		const char *hint = closest(scalar(k), allowed);
		if (hint)
			node_diag(L, k, RULES_SEV_ERROR, "unknown key '%s' in %s; did you mean '%s'?",
				  scalar(k), where, hint);
		else
			node_diag(L, k, RULES_SEV_ERROR, "unknown key '%s' in %s", scalar(k), where);
	}
}

/* Value of key `name` in mapping m (the first one), NULL if absent; *key_out
 * gets the key node when not NULL. */
static yaml_node_t *get(struct loader *L, const yaml_node_t *m, const char *name,
			yaml_node_t **key_out)
{
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_at(L, p->key);
		if (k->type == YAML_SCALAR_NODE && !strcmp(scalar(k), name)) {
			if (key_out)
				*key_out = k;
			return node_at(L, p->value);
		}
	}
	return NULL;
}

static size_t mark_offset(struct loader *L, yaml_mark_t m)
{
	return linemap__offset(&L->lm, (int)m.line + 1, (int)m.column + 1);
}

static bool offsets_match(const char *decoded, size_t dlen, const yaml_node_t *n)
{
	return dlen >= n->data.scalar.length &&
	       memcmp(decoded, scalar(n), n->data.scalar.length) == 0;
}

/* Builds, for each byte of the scalar's value, the offset in the file it
 * came from. Exact for single-line plain, single- and double-quoted scalars
 * and for literal (|) blocks; returns NULL (caller falls back to "start +
 * offset") for folded blocks, multi-line flow scalars and anything the
 * re-scan does not reproduce byte for byte. */
static size_t *scalar_offsets(struct loader *L, const yaml_node_t *n)
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
			case 't': case '\t': c = '\t'; break;
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
				unsigned char lead = (unsigned char)scalar(n)[o];
				size_t w = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
				for (size_t k = 0; k < w && o < vlen; k++, o++) {
					dec[o] = scalar(n)[o];
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
	default:
		goto fail;
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

static void scalar_srcmap(struct loader *L, const yaml_node_t *n, struct rules_srcmap *m,
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

static struct rules_expr *compile_expr(struct loader *L, const yaml_node_t *n)
{
	struct rules_srcmap m;
	size_t *offsets;
	size_t before = L->d->errors;

	scalar_srcmap(L, n, &m, &offsets);
	struct rules_expr *e = expr__compile(&L->set->arena, scalar(n), n->data.scalar.length, &m,
					     L->d);
	free(offsets);
	if (!e && L->d->errors == before) /* make sure a failure always counts */
		node_diag(L, n, RULES_SEV_ERROR, "cannot compile expression");
	else if (!e)
		L->errors++;
	return e;
}

static struct rules_template *compile_template(struct loader *L, const yaml_node_t *n,
					       const char *what)
{
	struct rules_srcmap m;
	size_t *offsets;
	size_t before = L->d->errors;

	if (!is_string(n)) {
		node_diag(L, n, RULES_SEV_ERROR, "'%s' must be a string, got %s", what, node_kind(n));
		return NULL;
	}
	scalar_srcmap(L, n, &m, &offsets);
	struct rules_template *t = template__compile(&L->set->arena, scalar(n),
						     n->data.scalar.length, &m, L->d);
	free(offsets);
	if (!t && L->d->errors == before)
		node_diag(L, n, RULES_SEV_ERROR, "cannot compile template");
	else if (!t)
		L->errors++;
	return t;
}

static const char *dup_scalar(struct loader *L, const yaml_node_t *n)
{
	return arena__strndup(&L->set->arena, scalar(n), n->data.scalar.length);
}

static int enum_index(const char *s, const char *const *names)
{
	for (int i = 0; names[i]; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

static void load_events(struct loader *L, struct rules_rule *r, yaml_node_t *ev)
{
	if (ev->type != YAML_SEQUENCE_NODE) {
		node_diag(L, ev, RULES_SEV_ERROR, "'events' must be a list of event names, got %s",
			  node_kind(ev));
		return;
	}
	size_t n = (size_t)(ev->data.sequence.items.top - ev->data.sequence.items.start);
	if (n == 0) {
		node_diag(L, ev, RULES_SEV_ERROR, "'events' must not be empty");
		return;
	}
	r->events = arena__alloc(&L->set->arena, n * sizeof(*r->events));
	if (!r->events)
		return;
	for (yaml_node_item_t *it = ev->data.sequence.items.start; it < ev->data.sequence.items.top;
	     it++) {
		yaml_node_t *e = node_at(L, *it);
		if (!is_string(e) || !*scalar(e)) {
			node_diag(L, e, RULES_SEV_ERROR, "event names must be non-empty strings");
			continue;
		}
		const char *name = dup_scalar(L, e);
		if (strchr(name, '*')) {
			bool any = false;
			for (size_t k = 0; k < rules__forge_event_count && !any; k++)
				any = glob__match(name, rules__forge_events[k]);
			if (!any)
				node_diag(L, e, RULES_SEV_WARNING,
					  "event pattern '%s' matches no known event", name);
			r->has_glob = true;
		} else if (!known_event(name)) {
			node_diag(L, e, RULES_SEV_WARNING, "unknown event '%s'", name);
		}
		r->events[r->n_events++] = name;
	}
}

static void load_schedule(struct loader *L, struct rules_rule *r, yaml_node_t *sc)
{
	int v = is_string(sc) ? enum_index(scalar(sc), schedule_names) : -1;
	const char *hint = is_string(sc) ? closest(scalar(sc), schedule_names) : NULL;

	if (v < 0) {
		if (hint)
			node_diag(L, sc, RULES_SEV_ERROR, "invalid schedule '%s'; did you mean '%s'?",
				  scalar(sc), hint);
		else
			node_diag(L, sc, RULES_SEV_ERROR,
				  "invalid schedule; expected fiveMinute, hour, day or week");
		return;
	}
	r->events = arena__alloc(&L->set->arena, sizeof(*r->events));
	if (!r->events)
		return;
	r->schedule = schedule_names[v];
	r->events[r->n_events++] = schedule_events[v];
}

static void load_filter(struct loader *L, struct rules_rule *r, yaml_node_t *f)
{
	static const char *const keys[] = {"ignoreSelf", "expression", "onError", NULL};
	yaml_node_t *k_ignore = NULL, *k_on_error = NULL;

	r->on_error = ON_ERROR_IGNORE_AND_LOG;
	if (f->type != YAML_MAPPING_NODE) {
		node_diag(L, f, RULES_SEV_ERROR, "'filter' must be a mapping, got %s", node_kind(f));
		return;
	}
	check_keys(L, f, keys, "filter");
	yaml_node_t *ig = get(L, f, "ignoreSelf", &k_ignore);
	yaml_node_t *ex = get(L, f, "expression", NULL);
	yaml_node_t *oe = get(L, f, "onError", &k_on_error);
	if (ig)
		get_bool(L, ig, "ignoreSelf", &r->ignore_self);
	if (ex) {
		if (is_string(ex))
			r->filter = compile_expr(L, ex);
		else
			node_diag(L, ex, RULES_SEV_ERROR, "'expression' must be a string, got %s",
				  node_kind(ex));
	}
	if (oe) {
		int v = is_string(oe) ? enum_index(scalar(oe), on_error_names) : -1;
		const char *hint = is_string(oe) ? closest(scalar(oe), on_error_names) : NULL;
		if (v >= 0)
			r->on_error = (enum on_error)v;
		else if (hint)
			node_diag(L, oe, RULES_SEV_ERROR, "invalid onError '%s'; did you mean '%s'?",
				  scalar(oe), hint);
		else
			node_diag(L, oe, RULES_SEV_ERROR,
				  "invalid onError value; expected IGNORE, IGNORE_AND_LOG, RECEIVE or "
				  "RECEIVE_AND_LOG");
		if (!ex)
			node_diag(L, k_on_error, RULES_SEV_WARNING,
				  "'onError' has no effect without 'expression'");
	}
	if (!ig && !ex)
		node_diag(L, f, RULES_SEV_ERROR, "'filter' needs 'ignoreSelf' or 'expression'");
	if (r->ignore_self) {
		for (size_t i = 0; i < r->n_events; i++) {
			if (!strstr(r->events[i], "jira")) {
				node_diag(L, k_ignore, RULES_SEV_ERROR,
					  "ignoreSelf works only with Jira events (Forge refuses it too)");
				break;
			}
		}
	}
}

static void load_to(struct loader *L, struct rules_rule *r, yaml_node_t *to)
{
	yaml_node_item_t single = 0, *start, *top;

	if (to->type == YAML_SEQUENCE_NODE) {
		start = to->data.sequence.items.start;
		top = to->data.sequence.items.top;
		if (start == top) {
			node_diag(L, to, RULES_SEV_ERROR, "'to' must not be empty");
			return;
		}
	} else if (is_string(to)) {
		/* a lone string is a one-element list (node ids are 1-based) */
		single = (yaml_node_item_t)(to - L->doc.nodes.start) + 1;
		start = &single;
		top = start + 1;
	} else {
		node_diag(L, to, RULES_SEV_ERROR,
			  "'to' must be an expression or a list of expressions, got %s", node_kind(to));
		return;
	}
	r->to = arena__alloc(&L->set->arena, (size_t)(top - start) * sizeof(*r->to));
	if (!r->to)
		return;
	for (yaml_node_item_t *it = start; it < top; it++) {
		yaml_node_t *e = node_at(L, *it);
		if (!is_string(e)) {
			node_diag(L, e, RULES_SEV_ERROR, "each entry of 'to' must be an expression string");
			continue;
		}
		struct rules_expr *x = compile_expr(L, e);
		if (x)
			r->to[r->n_to++] = x;
	}
}

static void load_actions(struct loader *L, struct rules_rule *r, yaml_node_t *acts)
{
	static const char *const keys[] = {"text", "href", NULL};

	if (acts->type != YAML_SEQUENCE_NODE) {
		node_diag(L, acts, RULES_SEV_ERROR, "'actions' must be a list, got %s", node_kind(acts));
		return;
	}
	size_t n = (size_t)(acts->data.sequence.items.top - acts->data.sequence.items.start);
	r->actions = arena__alloc(&L->set->arena, (n ? n : 1) * sizeof(*r->actions));
	if (!r->actions)
		return;
	for (yaml_node_item_t *it = acts->data.sequence.items.start;
	     it < acts->data.sequence.items.top; it++) {
		yaml_node_t *a = node_at(L, *it);
		if (a->type != YAML_MAPPING_NODE) {
			node_diag(L, a, RULES_SEV_ERROR, "each action must be a mapping with 'text' and 'href'");
			continue;
		}
		check_keys(L, a, keys, "action");
		yaml_node_t *text = get(L, a, "text", NULL), *href = get(L, a, "href", NULL);
		if (!text)
			node_diag(L, a, RULES_SEV_ERROR, "action is missing required key 'text'");
		if (!href)
			node_diag(L, a, RULES_SEV_ERROR, "action is missing required key 'href'");
		if (!text || !href)
			continue;
		struct rules_action *ra = &r->actions[r->n_actions];
		ra->text = compile_template(L, text, "text");
		ra->href = compile_template(L, href, "href");
		if (ra->text && ra->href)
			r->n_actions++;
	}
}

static void load_notify(struct loader *L, struct rules_rule *r, yaml_node_t *nt)
{
	static const char *const keys[] = {"to",      "context", "type", "title",
					   "description", "actions", "ttl", "excludeActor", NULL};

	if (nt->type != YAML_MAPPING_NODE) {
		node_diag(L, nt, RULES_SEV_ERROR, "'notify' must be a mapping, got %s", node_kind(nt));
		return;
	}
	check_keys(L, nt, keys, "notify");
	yaml_node_t *to = get(L, nt, "to", NULL), *context = get(L, nt, "context", NULL);
	yaml_node_t *type = get(L, nt, "type", NULL), *title = get(L, nt, "title", NULL);
	yaml_node_t *desc = get(L, nt, "description", NULL), *acts = get(L, nt, "actions", NULL);
	yaml_node_t *ttl = get(L, nt, "ttl", NULL), *excl = get(L, nt, "excludeActor", NULL);

	static const char *const required[] = {"to", "context", "title"};
	yaml_node_t *req_nodes[] = {to, context, title};
	for (size_t i = 0; i < 3; i++)
		if (!req_nodes[i])
			node_diag(L, nt, RULES_SEV_ERROR, "'notify' is missing required key '%s'",
				  required[i]);
	if (to)
		load_to(L, r, to);
	if (context)
		r->context = compile_template(L, context, "context");
	if (title)
		r->title = compile_template(L, title, "title");
	if (desc)
		r->description = compile_template(L, desc, "description");
	r->type = "info";
	if (type) {
		int v = is_string(type) ? enum_index(scalar(type), notify_types) : -1;
		const char *hint = is_string(type) ? closest(scalar(type), notify_types) : NULL;
		if (v >= 0)
			r->type = notify_types[v];
		else if (hint)
			node_diag(L, type, RULES_SEV_ERROR, "invalid type '%s'; did you mean '%s'?",
				  scalar(type), hint);
		else
			node_diag(L, type, RULES_SEV_ERROR,
				  "invalid type; expected info, success, warning or error");
	}
	if (acts)
		load_actions(L, r, acts);
	if (excl)
		get_bool(L, excl, "excludeActor", &r->exclude_actor);
	if (ttl) {
		char *end = NULL;
		long v = -1;
		if (ttl->type == YAML_SCALAR_NODE &&
		    ttl->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && *scalar(ttl)) {
			errno = 0;
			v = strtol(scalar(ttl), &end, 10);
			if (errno || *end)
				v = -1;
		}
		if (v < 1 || v > RULES_MAX_TTL)
			node_diag(L, ttl, RULES_SEV_ERROR,
				  "'ttl' must be a whole number of seconds from 1 to %d",
				  RULES_MAX_TTL);
		else
			r->ttl = v;
	}
}

static bool valid_rule_key(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '.' || *s == '-'))
			return false;
	return true;
}

static void load_rule(struct loader *L, yaml_node_t *rn, size_t index)
{
	static const char *const keys[] = {"key", "enabled", "events", "schedule", "filter",
					   "notify", NULL};
	struct rules_rule *r = &L->set->rules[index];

	r->enabled = true;
	r->file = L->file_copy;
	r->line = (int)rn->start_mark.line + 1;
	if (rn->type != YAML_MAPPING_NODE) {
		node_diag(L, rn, RULES_SEV_ERROR, "each rule must be a mapping, got %s", node_kind(rn));
		return;
	}
	check_keys(L, rn, keys, "rule");
	yaml_node_t *key = get(L, rn, "key", NULL), *enabled = get(L, rn, "enabled", NULL);
	yaml_node_t *events = get(L, rn, "events", NULL), *filter = get(L, rn, "filter", NULL);
	yaml_node_t *notify = get(L, rn, "notify", NULL), *k_schedule = NULL;
	yaml_node_t *schedule = get(L, rn, "schedule", &k_schedule);

	if (!key) {
		node_diag(L, rn, RULES_SEV_ERROR, "rule is missing required key 'key'");
	} else if (!is_string(key) || !valid_rule_key(scalar(key))) {
		node_diag(L, key, RULES_SEV_ERROR,
			  "rule key must be made of letters, digits, '_', '.' and '-'");
	} else {
		r->key = dup_scalar(L, key);
		for (size_t i = 0; i < index; i++) {
			const struct rules_rule *o = &L->set->rules[i];
			if (!o->key || strcmp(o->key, r->key))
				continue;
			if (o->file == r->file)
				node_diag(L, key, RULES_SEV_ERROR,
					  "duplicate rule key '%s' (first used at line %d)", r->key,
					  o->line);
			else
				node_diag(L, key, RULES_SEV_ERROR,
					  "duplicate rule key '%s' (first used at %s:%d)", r->key,
					  o->file, o->line);
			break;
		}
	}
	if (enabled)
		get_bool(L, enabled, "enabled", &r->enabled);
	if (events && schedule)
		node_diag(L, k_schedule, RULES_SEV_ERROR,
			  "a rule has either 'events' or 'schedule', not both");
	else if (schedule)
		load_schedule(L, r, schedule);
	else if (!events)
		node_diag(L, rn, RULES_SEV_ERROR, "rule is missing required key 'events'");
	else
		load_events(L, r, events);
	r->on_error = ON_ERROR_IGNORE_AND_LOG;
	if (filter)
		load_filter(L, r, filter);
	if (!notify)
		node_diag(L, rn, RULES_SEV_ERROR, "rule is missing required key 'notify'");
	else
		load_notify(L, r, notify);
}

/* ---- event index ---- */

static struct rules_bucket *bucket_for(struct rules_set *s, const char *name)
{
	size_t mask = s->n_buckets - 1, i = (size_t)fnv1a(name, strlen(name)) & mask;

	while (s->buckets[i].name && strcmp(s->buckets[i].name, name))
		i = (i + 1) & mask;
	return &s->buckets[i];
}

static const struct rules_bucket *bucket_find(const struct rules_set *s, const char *name)
{
	if (!s->n_buckets)
		return NULL;
	size_t mask = s->n_buckets - 1, i = (size_t)fnv1a(name, strlen(name)) & mask;

	while (s->buckets[i].name) {
		if (!strcmp(s->buckets[i].name, name))
			return &s->buckets[i];
		i = (i + 1) & mask;
	}
	return NULL;
}

static int build_index(struct rules_set *s)
{
	struct rules_arena *a = &s->arena;
	size_t exact = 0;

	for (size_t i = 0; i < s->n_rules; i++)
		exact += s->rules[i].n_events;
	s->n_buckets = 8;
	while (s->n_buckets < exact * 2)
		s->n_buckets *= 2;
	s->buckets = arena__alloc(a, s->n_buckets * sizeof(*s->buckets));
	s->glob_rules = arena__alloc(a, (s->n_rules ? s->n_rules : 1) * sizeof(size_t));
	if (!s->buckets || !s->glob_rules)
		return -1;
	/* two passes: count per name, then fill, so each list is one array */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < s->n_rules; i++) {
			const struct rules_rule *r = &s->rules[i];
			if (!r->enabled)
				continue;
			for (size_t k = 0; k < r->n_events; k++) {
				if (strchr(r->events[k], '*'))
					continue;
				struct rules_bucket *b = bucket_for(s, r->events[k]);
				b->name = r->events[k];
				if (pass == 0) {
					b->n++;
				} else if (!b->n || b->rules[b->n - 1] != i) {
					b->rules[b->n++] = i;
				}
			}
		}
		if (pass == 0) {
			for (size_t i = 0; i < s->n_buckets; i++) {
				if (!s->buckets[i].name)
					continue;
				s->buckets[i].rules = arena__alloc(a, s->buckets[i].n * sizeof(size_t));
				if (!s->buckets[i].rules)
					return -1;
				s->buckets[i].n = 0;
			}
		}
	}
	for (size_t i = 0; i < s->n_rules; i++)
		if (s->rules[i].enabled && s->rules[i].has_glob)
			s->glob_rules[s->n_glob_rules++] = i;
	return 0;
}

static void set_free(struct rules_set *s)
{
	if (!s)
		return;
	arena__free(&s->arena);
	free(s->rules);
	free(s);
}

static void load_document(struct loader *L, yaml_node_t *root)
{
	static const char *const top_keys[] = {"rules", NULL};

	if (!root) {
		node_diag(L, NULL, RULES_SEV_ERROR,
			  "the rule file is empty; expected a mapping with a 'rules' list");
		return;
	}
	if (root->type != YAML_MAPPING_NODE) {
		node_diag(L, root, RULES_SEV_ERROR,
			  "the top level must be a mapping with a 'rules' list, got %s",
			  node_kind(root));
		return;
	}
	check_keys(L, root, top_keys, "the top level");
	yaml_node_t *rules = get(L, root, "rules", NULL);
	if (!rules) {
		node_diag(L, root, RULES_SEV_ERROR, "missing required key 'rules'");
		return;
	}
	if (rules->type != YAML_SEQUENCE_NODE) {
		node_diag(L, rules, RULES_SEV_ERROR, "'rules' must be a list, got %s",
			  node_kind(rules));
		return;
	}
	struct rules_set *set = L->set;
	size_t n = (size_t)(rules->data.sequence.items.top - rules->data.sequence.items.start);
	size_t base = set->n_rules;
	if (base + n > set->cap_rules) {
		size_t cap = set->cap_rules ? set->cap_rules : 16;
		while (cap < base + n)
			cap *= 2;
		struct rules_rule *nr = realloc(set->rules, cap * sizeof(*nr));
		if (!nr) {
			node_diag(L, NULL, RULES_SEV_ERROR, "out of memory");
			return;
		}
		set->rules = nr;
		set->cap_rules = cap;
	}
	if (n)
		memset(set->rules + base, 0, n * sizeof(*set->rules));
	set->n_rules = base + n;
	for (size_t i = 0; i < n; i++)
		load_rule(L, node_at(L, rules->data.sequence.items.start[i]), base + i);
}

static void yaml_error(struct loader *L, yaml_parser_t *p)
{
	int line, col;

	if (p->error == YAML_READER_ERROR) {
		linemap__locate(&L->lm, p->problem_offset, &line, &col);
	} else {
		line = (int)p->problem_mark.line + 1;
		col = (int)p->problem_mark.column + 1;
	}
	char *src = linemap__line_dup(&L->lm, line);
	const char *problem = p->problem ? p->problem : "unknown error";
	if (p->error == YAML_MEMORY_ERROR)
		problem = "out of memory";
	if (p->context)
		diag__add(L->d, RULES_SEV_ERROR, L->file, line, col, src,
			  "YAML syntax error: %s (%s at line %d)", problem, p->context,
			  (int)p->context_mark.line + 1);
	else
		diag__add(L->d, RULES_SEV_ERROR, L->file, line, col, src, "YAML syntax error: %s",
			  problem);
	L->errors++;
	free(src);
}

static struct rules_set *set_new(void)
{
	struct rules_set *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	arena__init(&s->arena);
	atomic_init(&s->refs, 1);
	s->hash = FNV_BASIS;
	return s;
}

/* Parses one YAML source into `set` (appending its rules). Returns the
 * number of errors found. */
static size_t load_source(struct rules_set *set, const char *name, const char *yaml, size_t len,
			  struct rules_diags *diags)
{
	struct loader L;
	yaml_parser_t parser;
	bool parser_ok = false, doc_ok = false;

	memset(&L, 0, sizeof(L));
	L.file = name;
	L.d = diags;
	L.set = set;
	if (set->n_files++)
		set->hash = fnv1a_update(set->hash, "", 1); /* '\0' between files */
	set->hash = fnv1a_update(set->hash, yaml, len);
	L.file_copy = arena__strndup(&set->arena, name, strlen(name));
	if (!L.file_copy || linemap__init(&L.lm, yaml, len) < 0) {
		diag__add(diags, RULES_SEV_ERROR, name, 0, 0, NULL, "out of memory");
		return 1;
	}
	if (!yaml_parser_initialize(&parser)) {
		node_diag(&L, NULL, RULES_SEV_ERROR, "out of memory");
		goto done;
	}
	parser_ok = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&parser, &L.doc)) {
		yaml_error(&L, &parser);
		goto done;
	}
	doc_ok = true;
	load_document(&L, yaml_document_get_root_node(&L.doc));

	/* a second document would be silently ignored: refuse it */
	yaml_document_t extra;
	if (!yaml_parser_load(&parser, &extra)) {
		yaml_error(&L, &parser);
	} else {
		yaml_node_t *r2 = yaml_document_get_root_node(&extra);
		if (r2)
			node_diag(&L, r2, RULES_SEV_ERROR,
				  "the rule file must contain a single YAML document");
		yaml_document_delete(&extra);
	}
done:
	if (doc_ok)
		yaml_document_delete(&L.doc);
	if (parser_ok)
		yaml_parser_delete(&parser);
	linemap__free(&L.lm);
	return L.errors;
}

/* Indexes a fully loaded set; frees it and returns NULL if errors were
 * found or the index cannot be built. */
static struct rules_set *finish(struct rules_set *set, size_t errors, const char *name,
				struct rules_diags *diags)
{
	if (!errors && build_index(set) < 0) {
		diag__add(diags, RULES_SEV_ERROR, name, 0, 0, NULL, "out of memory");
		errors++;
	}
	if (errors) {
		set_free(set);
		return NULL;
	}
	snprintf(set->version, sizeof(set->version), "%016llx", (unsigned long long)set->hash);
	return set;
}

struct rules_set *rules_load_string(const char *name, const char *yaml, size_t len,
				    struct rules_diags *diags)
{
	struct rules_diags local;
	struct rules_set *set;

	if (!diags) {
		rules_diags_init(&local);
		diags = &local;
	}
	name = name ? name : "<rules>";
	set = set_new();
	if (!set)
		diag__add(diags, RULES_SEV_ERROR, name, 0, 0, NULL, "out of memory");
	else
		set = finish(set, load_source(set, name, yaml, len, diags), name, diags);
	if (diags == &local)
		rules_diags_free(&local);
	return set;
}

/* Reads a whole file into a malloc'd buffer; -1 (with a diagnostic) on error. */
static int read_file(const char *path, char **out, size_t *out_len, struct rules_diags *diags)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f) {
		diag__add(diags, RULES_SEV_ERROR, path, 0, 0, NULL, "cannot open rule file: %s",
			  strerror(errno));
		return -1;
	}
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 16384;
			char *nb = realloc(buf, cap);
			if (!nb) {
				diag__add(diags, RULES_SEV_ERROR, path, 0, 0, NULL, "out of memory");
				goto fail;
			}
			buf = nb;
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		diag__add(diags, RULES_SEV_ERROR, path, 0, 0, NULL, "cannot read rule file: %s",
			  strerror(errno));
		goto fail;
	}
	fclose(f);
	*out = buf;
	*out_len = len;
	return 0;
fail:
	free(buf);
	fclose(f);
	return -1;
}

static size_t load_file_into(struct rules_set *set, const char *path, struct rules_diags *diags)
{
	char *buf;
	size_t len, errors;

	if (read_file(path, &buf, &len, diags) < 0)
		return 1;
	errors = load_source(set, path, buf, len, diags);
	free(buf);
	return errors;
}

static int yaml_name_filter(const struct dirent *de)
{
	size_t n = strlen(de->d_name);

	if (de->d_name[0] == '.')
		return 0;
	return (n > 4 && !strcmp(de->d_name + n - 4, ".yml")) ||
	       (n > 5 && !strcmp(de->d_name + n - 5, ".yaml"));
}

/* Loads every *.yml / *.yaml file of a directory (not recursive), in
 * byte order of their names. */
static size_t load_dir_into(struct rules_set *set, const char *dir, struct rules_diags *diags)
{
	struct dirent **names = NULL;
	size_t errors = 0;
	int n = scandir(dir, &names, yaml_name_filter, alphasort);

	if (n < 0) {
		diag__add(diags, RULES_SEV_ERROR, dir, 0, 0, NULL, "cannot read directory: %s",
			  strerror(errno));
		return 1;
	}
	if (n == 0) {
		diag__add(diags, RULES_SEV_ERROR, dir, 0, 0, NULL,
			  "the directory holds no rule files (*.yml, *.yaml)");
		errors++;
	}
	for (int i = 0; i < n; i++) {
		size_t dl = strlen(dir);
		char *path = NULL;
		if (asprintf(&path, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/",
			     names[i]->d_name) < 0) {
			diag__add(diags, RULES_SEV_ERROR, dir, 0, 0, NULL, "out of memory");
			errors++;
		} else {
			errors += load_file_into(set, path, diags);
		}
		free(path);
		free(names[i]);
	}
	free(names);
	return errors;
}

struct rules_set *rules_load_paths(const char *const *paths, size_t n, struct rules_diags *diags)
{
	struct rules_diags local;
	struct rules_set *set;
	size_t errors = 0;

	if (!diags) {
		rules_diags_init(&local);
		diags = &local;
	}
	set = set_new();
	if (!set) {
		diag__add(diags, RULES_SEV_ERROR, n ? paths[0] : "<rules>", 0, 0, NULL,
			  "out of memory");
		goto done;
	}
	if (n == 0) {
		diag__add(diags, RULES_SEV_ERROR, "<rules>", 0, 0, NULL, "no rule file given");
		errors++;
	}
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode))
			errors += load_dir_into(set, paths[i], diags);
		else
			errors += load_file_into(set, paths[i], diags);
	}
	set = finish(set, errors, n ? paths[0] : "<rules>", diags);
done:
	if (diags == &local)
		rules_diags_free(&local);
	return set;
}

struct rules_set *rules_load_file(const char *path, struct rules_diags *diags)
{
	return rules_load_paths(&path, 1, diags);
}

struct rules_set *rules_set_ref(struct rules_set *set)
{
	if (set)
		atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
	return set;
}

void rules_set_unref(struct rules_set *set)
{
	if (set && atomic_fetch_sub_explicit(&set->refs, 1, memory_order_acq_rel) == 1)
		set_free(set);
}

size_t rules_set_count(const struct rules_set *set)
{
	return set ? set->n_rules : 0;
}

const char *rules_set_version(const struct rules_set *set)
{
	return set ? set->version : "";
}

/* ============================================================
 * Evaluation
 * ============================================================ */

/* Where rules_evaluate's messages go: the caller's log callback, and in
 * rules_explain also a buffer that becomes the rule's reason. */
struct sink {
	rules_log_fn log;
	void *ud;
	struct rules_strbuf *why; /* NULL outside rules_explain */
};

static void log_msg(const struct sink *k, const struct rules_rule *r, const char *fmt, ...)
	RULES_FMT(3, 4);

static void log_msg(const struct sink *k, const struct rules_rule *r, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;

	if (!k->log && !k->why)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg && k->log)
		k->log(k->ud, r->key, msg);
	if (msg && k->why && k->why->len == 0)
		strbuf__append(k->why, msg, strlen(msg));
	free(msg);
}

/* Recipients already in `to`, for dropping repeats: a linear scan while the
 * list is short, then an open-addressing set of indices into `to` (a
 * broadcast to 1,000 watchers made the scan 500,000 string compares per
 * event: 17 % of the gateway's CPU). Owned by recipients(), freed there. */
struct recip_seen {
	size_t cap;      /* slots, a power of two; 0 while the list is short */
	size_t *slot;    /* index into `to` + 1; 0 = empty */
};

#define RECIP_SCAN_MAX 16

static uint64_t recip_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static int recip_same(json_t *x, const char *s, size_t n)
{
	return json_string_length(x) == n && memcmp(json_string_value(x), s, n) == 0;
}

/* Index of s in `to` through the set, or -1; with insert_at >= 0, stores it
 * in the empty slot found instead. */
static long recip_probe(const struct recip_seen *seen, json_t *to, const char *s, size_t n,
			long insert_at)
{
	size_t mask = seen->cap - 1;
	for (size_t i = (size_t)recip_hash(s, n) & mask;; i = (i + 1) & mask) {
		if (!seen->slot[i]) {
			if (insert_at >= 0)
				seen->slot[i] = (size_t)insert_at + 1;
			return -1;
		}
		if (recip_same(json_array_get(to, seen->slot[i] - 1), s, n))
			return (long)(seen->slot[i] - 1);
	}
}

/* (Re)builds the set for the current list with room to double. */
static int recip_rebuild(struct recip_seen *seen, json_t *to)
{
	size_t n = json_array_size(to), cap = 64;
	while (cap < 4 * (n + 1))
		cap *= 2;
	size_t *slot = calloc(cap, sizeof(*slot));
	if (!slot)
		return -1;
	free(seen->slot);
	seen->slot = slot;
	seen->cap = cap;
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_array_get(to, i);
		recip_probe(seen, to, json_string_value(x), json_string_length(x), (long)i);
	}
	return 0;
}

static int add_recipient(json_t *to, struct recip_seen *seen, const struct rules_value *v)
{
	if (v->kind == RULES_V_NULL || (v->kind == RULES_V_STR && v->u.str.len == 0))
		return 0;
	if (v->kind != RULES_V_STR)
		return -1;
	size_t count = json_array_size(to);
	if (!seen->cap && count >= RECIP_SCAN_MAX && recip_rebuild(seen, to))
		return -2;
	if (!seen->cap) {
		size_t i;
		json_t *x;
		json_array_foreach(to, i, x)
			if (recip_same(x, v->u.str.s, v->u.str.len))
				return 0;
	} else if (recip_probe(seen, to, v->u.str.s, v->u.str.len, -1) >= 0) {
		return 0;
	}
	if (json_array_append_new(to, json_stringn(v->u.str.s, v->u.str.len)) < 0)
		return -2;
	if (seen->cap) {
		if (4 * (count + 1) > seen->cap) /* keep the load at most 1/4... */
			return recip_rebuild(seen, to) ? -2 : 0;
		recip_probe(seen, to, v->u.str.s, v->u.str.len, (long)count); /* ...or just insert */
	}
	return 0;
}

/* Adds v (a String, null, or a List of those, nested to any depth) to `to`.
 * Returns 0, -1 for a wrong type (*bad gets it), -2 on OOM. */
static int add_recipients(json_t *to, struct recip_seen *seen, const struct rules_value *v, int depth,
			  const struct rules_value **bad)
{
	struct rules_value item;

	if (v->kind != RULES_V_LIST && v->kind != RULES_V_ARR) {
		int rc = add_recipient(to, seen, v);
		if (rc == -1)
			*bad = v;
		return rc;
	}
	if (depth > 16) {
		*bad = v;
		return -1;
	}
	size_t n = v->kind == RULES_V_LIST ? v->u.list.n : json_array_size(v->json);
	for (size_t k = 0; k < n; k++) {
		if (v->kind == RULES_V_LIST)
			item = v->u.list.items[k];
		else
			eval__from_json(json_array_get(v->json, k), &item);
		int rc = add_recipients(to, seen, &item, depth + 1, bad);
		if (rc == -1 && *bad == &item) {
			/* item lives on this frame: report its type now */
			static const struct rules_value kinds[] = {
				{RULES_V_NULL, NULL, {0}}, {RULES_V_BOOL, NULL, {0}},
				{RULES_V_NUM, NULL, {0}},  {RULES_V_STR, NULL, {0}},
				{RULES_V_LIST, NULL, {0}}, {RULES_V_ARR, NULL, {0}},
				{RULES_V_MAP, NULL, {0}},  {RULES_V_OBJ, NULL, {0}},
			};
			*bad = &kinds[item.kind];
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Evaluates the `to` expressions; NULL (after logging) on error. */
static json_t *recipients(const struct rules_rule *r, const json_t *event,
			  struct rules_scratch *s, const struct sink *k)
{
	json_t *to = json_array();
	struct rules_value v;
	struct recip_seen seen = {0};

	if (!to)
		return NULL;
	for (size_t i = 0; i < r->n_to; i++) {
		const struct rules_expr *e = r->to[i];
		const struct rules_value *bad = NULL;
		if (eval__run(e, event, s, &v) < 0) {
			log_msg(k, r, "rule '%s': recipient expression '%.*s' failed: %s", r->key,
				(int)e->len, e->src, s->error);
			goto fail;
		}
		int rc = add_recipients(to, &seen, &v, 0, &bad);
		if (rc == -1 && bad != &v)
			log_msg(k, r,
				"rule '%s': recipient expression '%.*s' yielded a List holding a %s; "
				"expected Strings",
				r->key, (int)e->len, e->src, eval__type_name(bad));
		else if (rc == -1)
			log_msg(k, r,
				"rule '%s': recipient expression '%.*s' yielded a %s; expected a "
				"String, a List of Strings or null",
				r->key, (int)e->len, e->src, eval__type_name(&v));
		if (rc < 0)
			goto fail;
	}
	if (r->exclude_actor) {
		const char *actor = json_string_value(json_object_get(event, "atlassianId"));
		size_t i;
		json_t *x;
		json_array_foreach(to, i, x) {
			if (actor && !strcmp(json_string_value(x), actor)) {
				json_array_remove(to, i);
				break; /* entries are distinct */
			}
		}
	}
	free(seen.slot);
	return to;
fail:
	free(seen.slot);
	json_decref(to);
	return NULL;
}

static json_t *render_field(const struct rules_rule *r, const struct rules_template *t,
			    const char *what, const json_t *event, struct rules_scratch *s,
			    const struct sink *k)
{
	char *text, *err;
	size_t len;

	if (!t)
		return json_string("");
	if (template__render(t, event, s, &text, &len, &err) < 0) {
		log_msg(k, r, "rule '%s': %s template failed: %s", r->key, what,
			err ? err : "out of memory");
		free(err);
		return NULL;
	}
	json_t *j = json_stringn(text, len);
	free(text);
	return j;
}

/* Applies ignoreSelf and the filter expression; true if the rule matches.
 * With k->why set (rules_explain) the reason is written there. */
static bool filter_matches(const struct rules_rule *r, const json_t *event,
			   struct rules_scratch *s, const struct sink *k)
{
	struct rules_value v;
	char reason[400];

	if (r->ignore_self && json_is_true(json_object_get(event, "selfGenerated"))) {
		if (k->why)
			strbuf__printf(k->why, "ignoreSelf: the event has selfGenerated: true");
		return false;
	}
	if (!r->filter) {
		if (k->why)
			strbuf__printf(k->why, "no filter expression");
		return true;
	}
	s->explain = k->why != NULL;
	int rc = eval__run(r->filter, event, s, &v);
	s->explain = false;
	if (rc == 0) {
		if (v.kind == RULES_V_BOOL) {
			if (k->why) {
				strbuf__printf(k->why, "expression was %s, decided by ",
					       v.u.b ? "true" : "false");
				eval__explain(r->filter, s, k->why);
			}
			return v.u.b;
		}
		snprintf(reason, sizeof(reason), "filter expression must yield a Boolean, got %s",
			 eval__type_name(&v));
	} else {
		snprintf(reason, sizeof(reason), "filter expression failed: %s", s->error);
	}
	bool receive = r->on_error == ON_ERROR_RECEIVE || r->on_error == ON_ERROR_RECEIVE_AND_LOG;
	if (r->on_error == ON_ERROR_IGNORE_AND_LOG || r->on_error == ON_ERROR_RECEIVE_AND_LOG)
		log_msg(&(struct sink){k->log, k->ud, NULL}, r, "rule '%s': %s (onError %s: event %s)",
			r->key, reason, on_error_names[r->on_error],
			receive ? "received" : "ignored");
	if (k->why)
		strbuf__printf(k->why, "%s (onError %s: event %s)", reason,
			       on_error_names[r->on_error], receive ? "received" : "ignored");
	return receive;
}

static json_t *notification(const struct rules_rule *r, const char *event_type,
			    const json_t *event, struct rules_scratch *s, const struct sink *k)
{
	json_t *to = recipients(r, event, s, k);
	json_t *n = NULL, *actions = NULL;

	if (!to || json_array_size(to) == 0)
		goto fail;
	n = json_object();
	actions = json_array();
	if (!n || !actions)
		goto fail;
	json_t *context = render_field(r, r->context, "context", event, s, k);
	json_t *title = context ? render_field(r, r->title, "title", event, s, k) : NULL;
	json_t *desc = title ? render_field(r, r->description, "description", event, s, k) : NULL;
	if (!desc) {
		json_decref(context);
		json_decref(title);
		goto fail;
	}
	for (size_t i = 0; i < r->n_actions; i++) {
		json_t *text = render_field(r, r->actions[i].text, "action text", event, s, k);
		json_t *href = text ? render_field(r, r->actions[i].href, "action href", event, s, k)
				    : NULL;
		if (!href) {
			json_decref(text);
			json_decref(context);
			json_decref(title);
			json_decref(desc);
			goto fail;
		}
		json_array_append_new(actions, json_pack("{s:o,s:o}", "text", text, "href", href));
	}
	json_object_set_new(n, "rule", json_string(r->key));
	json_object_set_new(n, "eventType", json_string(event_type));
	json_object_set_new(n, "to", to);
	json_object_set_new(n, "context", context);
	json_object_set_new(n, "type", json_string(r->type));
	json_object_set_new(n, "title", title);
	json_object_set_new(n, "description", desc);
	json_object_set_new(n, "actions", actions);
	if (r->ttl)
		json_object_set_new(n, "ttl", json_integer(r->ttl));
	if (r->exclude_actor)
		json_object_set_new(n, "excludeActor", json_true());
	return n;
fail:
	if (to && json_array_size(to) == 0 && k->why && k->why->len == 0)
		strbuf__printf(k->why, "no recipients: every 'to' expression yielded null or "
				       "nothing%s", r->exclude_actor ? " (after excludeActor)" : "");
	json_decref(to);
	json_decref(n);
	json_decref(actions);
	return NULL;
}

static bool rule_globs_match(const struct rules_rule *r, const char *event_type)
{
	for (size_t k = 0; k < r->n_events; k++)
		if (strchr(r->events[k], '*') && glob__match(r->events[k], event_type))
			return true;
	return false;
}

static bool rule_wants(const struct rules_rule *r, const char *event_type)
{
	for (size_t k = 0; k < r->n_events; k++)
		if (strchr(r->events[k], '*') ? glob__match(r->events[k], event_type)
					       : !strcmp(r->events[k], event_type))
			return true;
	return false;
}

json_t *rules_evaluate_as(const struct rules_set *set, const char *event_type,
			  const json_t *event, struct rules_scratch *scratch, rules_log_fn log,
			  void *log_ud)
{
	json_t *out = json_array();
	const struct rules_bucket *b;
	const struct sink k = {log, log_ud, NULL};
	size_t ei = 0, gi = 0;

	if (!out || !set || !event_type)
		return out;
	b = bucket_find(set, event_type);
	/* merge the exact list and the glob list, both ascending: file order */
	for (;;) {
		size_t ex = b && ei < b->n ? b->rules[ei] : SIZE_MAX;
		size_t gl = gi < set->n_glob_rules ? set->glob_rules[gi] : SIZE_MAX;
		size_t idx;

		if (ex == SIZE_MAX && gl == SIZE_MAX)
			break;
		if (gl < ex) {
			gi++;
			if (!rule_globs_match(&set->rules[gl], event_type))
				continue;
			idx = gl;
		} else {
			ei++;
			if (gl == ex)
				gi++;
			idx = ex;
		}
		const struct rules_rule *r = &set->rules[idx];
		if (!filter_matches(r, event, scratch, &k))
			continue;
		json_t *n = notification(r, event_type, event, scratch, &k);
		if (n)
			json_array_append_new(out, n);
	}
	return out;
}

json_t *rules_evaluate(const struct rules_set *set, const json_t *event,
		       struct rules_scratch *scratch, rules_log_fn log, void *log_ud)
{
	const char *type = json_string_value(json_object_get(event, "eventType"));

	if (!type) {
		json_t *out = json_array();
		return out;
	}
	return rules_evaluate_as(set, type, event, scratch, log, log_ud);
}

json_t *rules_evaluate_schedule(const struct rules_set *set, const char *interval,
				const json_t *event, struct rules_scratch *scratch,
				rules_log_fn log, void *log_ud)
{
	int v = interval ? enum_index(interval, schedule_names) : -1;

	if (v < 0)
		return json_array();
	return rules_evaluate_as(set, schedule_events[v], event, scratch, log, log_ud);
}

size_t rules_set_candidates(const struct rules_set *set, const char *event_type)
{
	size_t n = 0;

	if (!set || !event_type)
		return 0;
	const struct rules_bucket *b = bucket_find(set, event_type);
	n = b ? b->n : 0;
	for (size_t i = 0; i < set->n_glob_rules; i++) {
		const struct rules_rule *r = &set->rules[set->glob_rules[i]];
		bool exact = false;
		for (size_t k = 0; b && k < b->n && !exact; k++)
			exact = b->rules[k] == set->glob_rules[i];
		if (!exact && rule_globs_match(r, event_type))
			n++;
	}
	return n;
}

/* ---- rules test ---- */

static json_t *explain_rule(const struct rules_rule *r, const char *event_type, const json_t *event,
			    struct rules_scratch *s, json_t *notes)
{
	struct rules_strbuf why = {0};
	const struct sink k = {NULL, NULL, &why};
	const char *outcome = "skipped", *stage;
	json_t *out;

	if (!r->enabled) {
		stage = "enabled";
		strbuf__printf(&why, "the rule is disabled (enabled: false)");
	} else if (!rule_wants(r, event_type)) {
		stage = "events";
		if (r->schedule)
			strbuf__printf(&why, "a schedule rule (%s); the event is %s", r->schedule,
				       event_type);
		else
			strbuf__printf(&why, "%s is not in its events", event_type);
	} else if (!filter_matches(r, event, s, &k)) {
		stage = r->ignore_self && json_is_true(json_object_get(event, "selfGenerated"))
				? "ignoreSelf"
				: "filter";
	} else {
		/* why holds the filter's reason; the notification's own failure
		 * (no recipients, a template error) is appended to it */
		struct rules_strbuf nwhy = {0};
		const struct sink k2 = {NULL, NULL, &nwhy};
		json_t *n = notification(r, event_type, event, s, &k2);
		stage = "notify";
		if (n) {
			outcome = "matched";
			json_array_append_new(notes, n);
		} else {
			strbuf__printf(&why, "; %s", nwhy.data ? nwhy.data : "no notification");
		}
		strbuf__free(&nwhy);
	}
	char *text = strbuf__take(&why);
	out = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s}", "rule", r->key ? r->key : "", "file",
			r->file ? r->file : "", "line", r->line, "outcome", outcome, "stage", stage,
			"reason", text ? text : "out of memory");
	free(text);
	return out;
}

json_t *rules_explain(const struct rules_set *set, const char *event_type, const json_t *event,
		      struct rules_scratch *scratch)
{
	json_t *rules = json_array(), *notes = json_array();

	if (!event_type)
		event_type = json_string_value(json_object_get(event, "eventType"));
	if (!event_type)
		event_type = "";
	for (size_t i = 0; set && rules && notes && i < set->n_rules; i++)
		json_array_append_new(rules, explain_rule(&set->rules[i], event_type, event, scratch,
							  notes));
	return json_pack("{s:s, s:o, s:o}", "eventType", event_type, "rules", rules,
			 "notifications", notes);
}
