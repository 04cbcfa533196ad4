/* set_internal.h - the rule set and its rules, private to the files that
 * build (load.c, set.c), evaluate (set_eval.c) and explain (set_explain.c)
 * rule sets.
 *
 * Ownership: a struct rules_set owns its arena (rules, AST, templates, PCRE2
 * codes) and its rules array; it is shared by an atomic reference count.
 * Threads: a set is filled by one loading thread, then never modified, so
 * any number of threads may evaluate it at once.
 */
#ifndef RULES_SET_INTERNAL_H
#define RULES_SET_INTERNAL_H

#include <stdatomic.h>

#include "rules_internal.h"

#define RULES_MAX_TTL 2592000

enum on_error { /* ORDER ON_ERROR (set__on_error_names[]) */
		ON_ERROR_IGNORE,
		ON_ERROR_IGNORE_AND_LOG,
		ON_ERROR_RECEIVE,
		ON_ERROR_RECEIVE_AND_LOG,
};

extern const char *const set__on_error_names[]; /* ORDER ON_ERROR, NULL-terminated */

extern const char *const set__notify_types[]; /* NULL-terminated */

/* Forge scheduled trigger intervals; a `schedule: X` rule is indexed under
 * the event type "scheduled:X" (the event the gateway builds for
 * POST /forge/scheduled/X, docs/protocol.md). */
extern const char *const set__schedule_names[]; /* NULL-terminated */
extern const char *const set__schedule_events[]; /* ORDER set__schedule_names */

struct rules_action {
	struct rules_template *text, *href;
};

/* A trigger filter as Forge applies it: appIsLicensed, then ignoreSelf, then
 * the expression with onError. */
struct rules_filter {
	bool ignore_self;
	bool app_licensed; /* appIsLicensed: true */
	struct rules_expr *expr; /* NULL: no expression */
	enum on_error on_error;
	int line; /* of the filter in its file (diagnostics, rules check --forge) */
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
	struct rules_filter filter; /* for the events given by name */
	struct rules_filter **event_filters; /* per events[i] given as {eventType, filter}, else NULL */
	const char **property_paths; /* payload.include.propertyPaths (all forms) */
	size_t n_property_paths;
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
	size_t *rules; /* rule indices, ascending */
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
	struct rules_diags forge_notes; /* rules check --forge (warnings) */
};

/* ---- set.c ---- */

struct rules_set *set__new(void);
void set__free(struct rules_set *s);
/* Adds one source text to the set's version hash. */
void set__hash_source(struct rules_set *set, const char *text, size_t len);
/* Indexes the rules by event name; -1 on allocation failure. */
int set__build_index(struct rules_set *s);
const struct rules_bucket *set__bucket_find(const struct rules_set *s, const char *name);
/* Does one of the rule's glob patterns match / does the rule take the event type? */
bool set__rule_globs_match(const struct rules_rule *r, const char *event_type);
bool set__rule_wants(const struct rules_rule *r, const char *event_type);
/* Index of s in a NULL-terminated list of names, -1 if absent. */
int set__name_index(const char *s, const char *const *names);

/* ---- set_eval.c ---- */

/* Where rules_evaluate's messages go: the caller's log callback, and in
 * rules_explain also a buffer that becomes the rule's reason. */
struct rules_sink {
	rules_log_fn log;
	void *ud;
	struct rules_strbuf *why; /* NULL outside rules_explain */
	bool licensed; /* the FIT says app.license.active: true */
};

/* Does the invocation's FIT say app.license.active: true? */
bool set_eval__licensed(const struct rules_invocation *inv);
/* The filter that applies to an event of this type (the rule must take it). */
const struct rules_filter *set_eval__filter_for(const struct rules_rule *r, const char *event_type);
/* Applies appIsLicensed, ignoreSelf and the filter expression; true if the
 * rule matches. With k->why set (rules_explain) the reason is written there,
 * and *stage (if not NULL) names the step that decided. */
bool set_eval__filter_matches(const struct rules_rule *r, const struct rules_filter *f, const json_t *event,
			      struct rules_scratch *s, const struct rules_sink *k, const char **stage);
/* The rule's notification for the event, or NULL (no recipients, a template
 * error: said through k). */
json_t *set_eval__notification(const struct rules_rule *r, const char *event_type, const json_t *event,
			       struct rules_scratch *s, const struct rules_sink *k);

#endif
