/* load_internal.h - the YAML side of the rule-file loader: the state of one
 * source being loaded and the node helpers (load_yaml.c) that load.c uses to
 * read, check and compile it.
 *
 * Ownership: a struct rules_loader borrows the source text, the diagnostics
 * and the set it fills; what it compiles goes to the set's arena.
 * Threads: one loader per loading thread.
 */
#ifndef RULES_LOAD_INTERNAL_H
#define RULES_LOAD_INTERNAL_H

#include <yaml.h>

#include "set_internal.h"

struct rules_loader {
	const char *file;
	const char *file_copy; /* the same name in the set's arena */
	struct rules_linemap lm;
	yaml_document_t doc;
	struct rules_diags *d;
	struct rules_set *set;
	size_t errors;
};

/* Records a diagnostic at node n (NULL: no position); errors are counted. */
void yaml__diag(struct rules_loader *L, const yaml_node_t *n, enum rules_severity sev, const char *fmt, ...)
	RULES_FMT(4, 5);
yaml_node_t *yaml__at(struct rules_loader *L, int id);
const char *yaml__scalar(const yaml_node_t *n);
/* A plain scalar spelling null (empty, ~, null, Null, NULL). */
bool yaml__is_null(const yaml_node_t *n);
/* A scalar that is not null. */
bool yaml__is_string(const yaml_node_t *n);
/* "a mapping", "a list", "null" or "a scalar", for messages. */
const char *yaml__kind(const yaml_node_t *n);
bool yaml__get_bool(struct rules_loader *L, const yaml_node_t *n, const char *what, bool *out);
/* Suggests the closest of `names` to `word` (edit distance <= 2), or NULL. */
const char *yaml__closest(const char *word, const char *const *names);
/* Checks the keys of mapping `m` against `allowed`: reports non-scalar,
 * duplicate and unknown keys. */
void yaml__check_keys(struct rules_loader *L, const yaml_node_t *m, const char *const *allowed,
		      const char *where);
/* Value of key `name` in mapping m (the first one), NULL if absent; *key_out
 * gets the key node when not NULL. */
yaml_node_t *yaml__get(struct rules_loader *L, const yaml_node_t *m, const char *name, yaml_node_t **key_out);
/* Compiles the scalar as an expression / a template, with diagnostics at
 * their exact place in the file. NULL on error (reported). */
struct rules_expr *yaml__compile_expr(struct rules_loader *L, const yaml_node_t *n, bool filter);
/* Adds a note for `rules check --forge` at node n: something Forge would
 * refuse or run differently. */
void yaml__forge_note(struct rules_loader *L, const yaml_node_t *n, const char *fmt, ...) RULES_FMT(3, 4);
struct rules_template *yaml__compile_template(struct rules_loader *L, const yaml_node_t *n, const char *what);
/* The scalar copied into the set's arena. */
const char *yaml__dup(struct rules_loader *L, const yaml_node_t *n);

#endif
