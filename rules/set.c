/* set.c - the rule set: creation, the event-name index (exact names in an
 * open-addressing hash table, glob patterns in a short list), the content
 * version, the reference count and the candidate count.
 *
 * Ownership: a set owns its arena and rules (set__free); rules_set_ref /
 * rules_set_unref share it. Threads: the reference count is atomic; a set is
 * read-only once indexed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "set_internal.h"

const char *const set__on_error_names[] = {
	/* ORDER ON_ERROR */
	"IGNORE", "IGNORE_AND_LOG", "RECEIVE", "RECEIVE_AND_LOG", NULL,
};

const char *const set__notify_types[] = {"info", "success", "warning", "error", NULL};

const char *const set__schedule_names[] = {"fiveMinute", "hour", "day", "week", NULL};
const char *const set__schedule_events[] = {"scheduled:fiveMinute", "scheduled:hour", "scheduled:day",
					    "scheduled:week", NULL};

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
	return fnv1a_update(FNV_BASIS, s, n);
}

void set__hash_source(struct rules_set *set, const char *text, size_t len)
{
	if (set->n_files++)
		set->hash = fnv1a_update(set->hash, "", 1); /* '\0' between files */
	set->hash = fnv1a_update(set->hash, text, len);
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

/* ---- event index ---- */

static struct rules_bucket *bucket_for(struct rules_set *s, const char *name)
{
	size_t mask = s->n_buckets - 1, i = (size_t)fnv1a(name, strlen(name)) & mask;

	while (s->buckets[i].name && strcmp(s->buckets[i].name, name))
		i = (i + 1) & mask;
	return &s->buckets[i];
}

const struct rules_bucket *set__bucket_find(const struct rules_set *s, const char *name)
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

int set__build_index(struct rules_set *s)
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

void set__free(struct rules_set *s)
{
	if (!s)
		return;
	rules_diags_free(&s->forge_notes);
	arena__free(&s->arena);
	free(s->rules);
	free(s);
}

size_t rules_forge_check(const struct rules_set *set, struct rules_diags *diags)
{
	for (size_t i = 0; set && i < set->forge_notes.count; i++) {
		const struct rules_diag *n = &set->forge_notes.items[i];
		diag__add(diags, n->severity, n->file, n->line, n->col, n->source_line, "%s", n->message);
	}
	return set ? set->forge_notes.count : 0;
}

struct rules_set *set__new(void)
{
	struct rules_set *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	arena__init(&s->arena);
	atomic_init(&s->refs, 1);
	s->hash = FNV_BASIS;
	return s;
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
		set__free(set);
}

size_t rules_set_count(const struct rules_set *set)
{
	return set ? set->n_rules : 0;
}

const char *rules_set_version(const struct rules_set *set)
{
	return set ? set->version : "";
}

int set__name_index(const char *s, const char *const *names)
{
	for (int i = 0; names[i]; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

bool set__rule_globs_match(const struct rules_rule *r, const char *event_type)
{
	for (size_t k = 0; k < r->n_events; k++)
		if (strchr(r->events[k], '*') && glob__match(r->events[k], event_type))
			return true;
	return false;
}

bool set__rule_wants(const struct rules_rule *r, const char *event_type)
{
	for (size_t k = 0; k < r->n_events; k++)
		if (strchr(r->events[k], '*') ? glob__match(r->events[k], event_type)
					      : !strcmp(r->events[k], event_type))
			return true;
	return false;
}

size_t rules_set_candidates(const struct rules_set *set, const char *event_type)
{
	size_t n = 0;

	if (!set || !event_type)
		return 0;
	const struct rules_bucket *b = set__bucket_find(set, event_type);
	n = b ? b->n : 0;
	for (size_t i = 0; i < set->n_glob_rules; i++) {
		const struct rules_rule *r = &set->rules[set->glob_rules[i]];
		bool exact = false;
		for (size_t k = 0; b && k < b->n && !exact; k++)
			exact = b->rules[k] == set->glob_rules[i];
		if (!exact && set__rule_globs_match(r, event_type))
			n++;
	}
	return n;
}
