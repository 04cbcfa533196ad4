/* rules.h - the rule engine: load YAML rule files, evaluate events against them.
 *
 * Library "gwrules" (rules/). Depends only on jansson, libyaml and PCRE2; it
 * never logs and never touches gateway state: it returns diagnostics and
 * results to the caller.
 *
 * Ownership: a struct rules_set is immutable once loaded and shared by an
 * atomic reference count (rules_set_ref / rules_set_unref); any number of
 * threads may evaluate the same set at once. Values returned as json_t * are
 * new references owned by the caller. struct rules_diags owns its entries
 * (rules_diags_free). Parameters are borrowed unless a comment says otherwise.
 *
 * Threads: every function may run on any thread. A struct rules_scratch (the
 * per-thread PCRE2 match data and evaluation stack) belongs to one thread at a
 * time.
 */
#ifndef RULES_H
#define RULES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- diagnostics ---------------------------------------------------- */

enum rules_severity { RULES_SEV_ERROR, RULES_SEV_WARNING };

struct rules_diag {
	enum rules_severity severity;
	char *file; /* the file name as given to the loader */
	int line, col; /* 1-based; 0 when unknown */
	char *message; /* one line, no trailing newline */
	char *source_line; /* the offending source line without newline, or NULL */
};

struct rules_diags {
	struct rules_diag *items;
	size_t count, cap;
	size_t errors, warnings;
};

void rules_diags_init(struct rules_diags *d);
void rules_diags_free(struct rules_diags *d);

/* Renders one diagnostic the way compilers do:
 *   file:line:col: error: message
 *     source line
 *     ^
 * Returns a malloc'd string (caller frees), NULL on allocation failure. */
char *rules_diag_format(const struct rules_diag *d);

/* Writes every diagnostic of d to out, each as rules_diag_format renders it
 * (what `rules check`, `rules test` and the gateway's start print). A
 * diagnostic that cannot be formatted (out of memory) is written as its bare
 * message. */
void rules_diags_print(const struct rules_diags *d, FILE *out);

/* ---- rule sets ------------------------------------------------------- */

struct rules_set;

/* Loads and compiles a rule file. On any error returns NULL and records every
 * problem found (not only the first) in diags; warnings may be recorded on
 * success too. */
struct rules_set *rules_load_file(const char *path, struct rules_diags *diags);

/* Loads several files and directories as one set: a directory contributes
 * its *.yml and *.yaml files (not recursive, sorted by name). Rule keys are
 * unique across the whole set; rules keep the order of the files. A path
 * that is neither a readable file nor a directory with rule files is an
 * error. rules_load_file(p) is rules_load_paths(&p, 1). */
struct rules_set *rules_load_paths(const char *const *paths, size_t n, struct rules_diags *diags);

/* Same from memory; name is used in diagnostics. */
struct rules_set *rules_load_string(const char *name, const char *yaml, size_t len,
				    struct rules_diags *diags);

struct rules_set *rules_set_ref(struct rules_set *set);
void rules_set_unref(struct rules_set *set); /* NULL is fine */

size_t rules_set_count(const struct rules_set *set);
/* `rules check --forge`: adds to diags a warning for each place where a
 * filter (or its trigger) would not deploy to Forge as written: this
 * gateway's extensions (changed(), mentions(), now(), 'matches', 'in', …),
 * '//' and block comments (not in Atlassian's documentation), a scheduled
 * rule's filter beyond appIsLicensed, mixed forms of 'events', more than 5
 * property paths. Templates and 'to' are not filters and are not checked.
 * Returns how many were added. */
size_t rules_forge_check(const struct rules_set *set, struct rules_diags *diags);

/* A stable content hash of the loaded sources (16 hex digits, FNV-1a 64 over
 * the file contents in load order, one NUL byte between files), for
 * /healthz. Borrowed. */
const char *rules_set_version(const struct rules_set *set);
/* How many enabled rules an event of this type meets (exact + glob). */
size_t rules_set_candidates(const struct rules_set *set, const char *event_type);

/* ---- evaluation ------------------------------------------------------ */

struct rules_scratch;
struct rules_scratch *rules_scratch_new(void);
void rules_scratch_free(struct rules_scratch *s);

/* Test and tooling hook: lowers (or restores, with 0) the step limit of
 * evaluations run on this scratch. Default RULES_MAX_EVAL_STEPS. */
void rules_scratch_set_max_steps(struct rules_scratch *s, unsigned long max_steps);

/* Sets (0: restores RULES_MAX_SCRATCH_BYTES) how many bytes one evaluation
 * may build: strings made by '+', join(), toLowerCase() ..., list and map
 * literals, and the rendered text of one template field. Going over is an
 * evaluation error ("... needs more than N bytes ..."), handled like any
 * other (onError for filters; the notification is dropped for templates),
 * with status RULES_EVAL_BYTE_LIMIT. The gateway passes
 * limits.rule_scratch_bytes. */
void rules_scratch_set_max_bytes(struct rules_scratch *s, size_t max_bytes);

/* How the last evaluation on a scratch ended. */
enum rules_eval_status {
	RULES_EVAL_OK,
	RULES_EVAL_ERROR, /* a type error, a missing property, ... */
	RULES_EVAL_STEP_LIMIT, /* more than max_steps steps */
	RULES_EVAL_BYTE_LIMIT, /* more than max_bytes bytes built */
};
enum rules_eval_status rules_scratch_status(const struct rules_scratch *s);

/* Evaluations on this scratch stopped by a limit since the last call (for
 * the caller's counters); the counts restart from zero. */
struct rules_limit_counts {
	uint64_t step_limit, byte_limit;
};
void rules_scratch_take_counts(struct rules_scratch *s, struct rules_limit_counts *out);

/* Called for outcomes a rule author asked to see (onError: *_AND_LOG) and for
 * recipient/template errors. May be NULL. rule_key and message are borrowed
 * for the duration of the call. */
typedef void (*rules_log_fn)(void *ud, const char *rule_key, const char *message);

/* Evaluates every enabled rule whose `events` match event.eventType, applying
 * filter.appIsLicensed (no FIT here: unlicensed; see rules_evaluate_for),
 * filter.ignoreSelf, filter.expression and filter.onError as Forge does, and
 * renders each matching rule's notification. Rules are indexed by event type
 * at load (exact names in a hash table, globs resolved per call), so an
 * event meets only its candidate rules.
 *
 * Returns a new JSON array (never NULL unless out of memory) with one object
 * per matching rule that has at least one recipient:
 *   {"rule": key, "eventType": "...", "to": ["accountId", ...],
 *    "context": "...", "type": "info|success|warning|error",
 *    "title": "...", "description": "...",
 *    "actions": [{"text": "...", "href": "..."}], "ttl": seconds,
 *    "excludeActor": true}
 * "to" holds distinct non-empty strings in first-seen order (nested lists
 * flattened); with notify.excludeActor the event's atlassianId is removed
 * from it. "ttl" / "excludeActor" are present only when the rule sets them.
 * The order of objects is the order of the rules in the files. */
json_t *rules_evaluate(const struct rules_set *set, const json_t *event, struct rules_scratch *scratch,
		       rules_log_fn log, void *log_ud);

/* What Forge said about the invocation that delivered the event, beyond the
 * event itself. */
struct rules_invocation {
	const json_t *fit; /* the verified FIT claims (app.license.active for
			    * appIsLicensed), or NULL: no license */
};

/* rules_evaluate_as with the invocation: filter.appIsLicensed: true skips a
 * rule unless inv->fit has app.license.active == true (an absent license is
 * no license, as for Forge's free apps). inv NULL: no license. */
json_t *rules_evaluate_for(const struct rules_set *set, const char *event_type, const json_t *event,
			   const struct rules_invocation *inv, struct rules_scratch *scratch,
			   rules_log_fn log, void *log_ud);

/* Same as rules_evaluate with the event type given by the caller instead of
 * read from event.eventType (Forge lifecycle payloads such as
 * avi:forge:installed:app carry no eventType field). */
json_t *rules_evaluate_as(const struct rules_set *set, const char *event_type, const json_t *event,
			  struct rules_scratch *scratch, rules_log_fn log, void *log_ud);

/* Scheduled rules (`schedule: fiveMinute|hour|day|week`). They are indexed
 * under the event type "scheduled:<interval>", the event the gateway builds
 * for POST /forge/scheduled/<interval> (docs/protocol.md), so this is
 * rules_evaluate_as(set, "scheduled:" interval, ...). An unknown interval
 * yields an empty array. */
json_t *rules_evaluate_schedule(const struct rules_set *set, const char *interval, const json_t *event,
				struct rules_scratch *scratch, rules_log_fn log, void *log_ud);

/* Tooling (`notify-gateway rules test`): evaluates the event against every
 * rule of the set and says what happened to each. event_type NULL reads
 * event.eventType. Returns a new object:
 *   {"eventType": T,
 *    "rules": [{"rule", "file", "line",
 *               "outcome": "matched" | "skipped",
 *               "stage": "enabled" | "events" | "ignoreSelf" | "filter" | "notify",
 *               "reason": "expression was false, decided by `SUBEXPR` (column N):
 *                          left side X, right side Y" | ...}, ...],
 *    "notifications": [as rules_evaluate]}
 * Slow path (renders explanations); not for the gateway's workers. */
json_t *rules_explain(const struct rules_set *set, const char *event_type, const json_t *event,
		      struct rules_scratch *scratch);
/* rules_explain with the invocation (stage "appIsLicensed" when that skipped
 * a rule). */
json_t *rules_explain_for(const struct rules_set *set, const char *event_type, const json_t *event,
			  const struct rules_invocation *inv, struct rules_scratch *scratch);

/* ---- single expressions (for tests, tools and the rule loader) --------- */

struct rules_expr;

/* Compiles one expression. On error returns NULL and records diagnostics
 * positioned relative to the expression text, with `name` as the file name,
 * line and col counting from line_base/col_base (1,1 for a bare string). */
struct rules_expr *rules_expr_compile(const char *name, const char *src, size_t len, int line_base,
				      int col_base, struct rules_diags *diags);
void rules_expr_free(struct rules_expr *e);

/* Evaluates against `event` (bound to the name `event`). On success returns 0
 * and stores a new reference in *result. On an evaluation error returns -1
 * and stores a malloc'd message in *error (caller frees). */
int rules_expr_eval(const struct rules_expr *e, const json_t *event, struct rules_scratch *scratch,
		    json_t **result, char **error);

/* Limits that every evaluation honours (Forge's numbers). */
#define RULES_MAX_EXPR_CHARS 10000
#define RULES_MAX_EVAL_STEPS 50000
/* Bytes one evaluation may build (ours: Forge does not publish one). */
#define RULES_MAX_SCRATCH_BYTES (1024 * 1024)

#ifdef __cplusplus
}
#endif
#endif
