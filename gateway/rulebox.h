/* rulebox.h - holds the rule set in force and swaps it atomically.
 *
 * Workers take a reference for each event (gw_rulebox_get1) and evaluate the
 * whole event on that set, so an event that started on the old rules finishes
 * on them even if a reload swaps in new ones meanwhile.
 *
 * Ownership: the box holds one reference to the current set; get1 returns a
 * new reference the caller drops with rules_set_unref. Threads: any (mutex).
 */
#ifndef GW_RULEBOX_H
#define GW_RULEBOX_H

#include <pthread.h>
#include <time.h>

#include "rules.h"

struct gw_rulebox {
	pthread_mutex_t lock;
	struct rules_set *set;
	char *source; /* file path or "(embedded)" */
	time_t loaded_at;
	char *last_error; /* last failed reload, or NULL */
	unsigned long reloads_ok, reloads_failed;
};

int gw_rulebox_init(struct gw_rulebox *box);
void gw_rulebox_destroy(struct gw_rulebox *box);

/* Takes ownership of set (one reference). */
void gw_rulebox_install_take(struct gw_rulebox *box, struct rules_set *set, const char *source);
void gw_rulebox_record_failure(struct gw_rulebox *box, const char *message);
struct rules_set *gw_rulebox_get1(struct gw_rulebox *box);

/* Where gw_rulebox_load sends each diagnostic, formatted (file:line:col). */
typedef void (*gw_rules_diag_fn)(void *ud, int is_error, const char *text);

/* Loads the rules the gateway runs on: path (a rule file or a directory of
 * them), or when path is NULL the given text (the embedded defaults, named
 * text_name). Every diagnostic goes to emit. Returns the set, or NULL with
 * the number of errors in *errors and the first message in first_error.
 * Runs on whichever thread calls it (main at start, the reload thread). */
struct rules_set *gw_rulebox_load(const char *path, const char *text_name, const char *text, size_t text_len,
				  gw_rules_diag_fn emit, void *ud, char *first_error, size_t first_error_len,
				  size_t *errors);

#endif
