/* rulebox.c - see rulebox.h. */
#include "rulebox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gw_rulebox_init(struct gw_rulebox *box)
{
	memset(box, 0, sizeof(*box));
	return pthread_mutex_init(&box->lock, NULL) ? -1 : 0;
}

void gw_rulebox_destroy(struct gw_rulebox *box)
{
	rules_set_unref(box->set);
	free(box->source);
	free(box->last_error);
	pthread_mutex_destroy(&box->lock);
}

void gw_rulebox_install_take(struct gw_rulebox *box, struct rules_set *set, const char *source)
{
	char *src = strdup(source ? source : "(embedded)");
	pthread_mutex_lock(&box->lock); /* ---- rulebox lock { */
	struct rules_set *old = box->set;
	box->set = set;
	free(box->source);
	box->source = src;
	box->loaded_at = time(NULL);
	free(box->last_error);
	box->last_error = NULL;
	if (old)
		box->reloads_ok++;
	pthread_mutex_unlock(&box->lock); /* } rulebox lock ---- */
	rules_set_unref(old); /* outside the lock: may free a whole set */
}

void gw_rulebox_record_failure(struct gw_rulebox *box, const char *message)
{
	char *m = strdup(message);
	pthread_mutex_lock(&box->lock);
	free(box->last_error);
	box->last_error = m;
	box->reloads_failed++;
	pthread_mutex_unlock(&box->lock);
}

struct rules_set *gw_rulebox_get1(struct gw_rulebox *box)
{
	pthread_mutex_lock(&box->lock);
	struct rules_set *set = box->set ? rules_set_ref(box->set) : NULL;
	pthread_mutex_unlock(&box->lock);
	return set;
}

struct rules_set *gw_rulebox_load(const char *path, const char *text_name, const char *text, size_t text_len,
				  gw_rules_diag_fn emit, void *ud, char *first_error, size_t first_error_len,
				  size_t *errors)
{
	struct rules_diags diags;
	rules_diags_init(&diags);
	const char *paths[] = {path};
	struct rules_set *set = path ? rules_load_paths(paths, 1, &diags)
				     : rules_load_string(text_name, text, text_len, &diags);
	for (size_t i = 0; i < diags.count; i++) {
		char *formatted = rules_diag_format(&diags.items[i]);
		emit(ud, diags.items[i].severity == RULES_SEV_ERROR,
		     formatted ? formatted : diags.items[i].message);
		free(formatted);
	}
	if (first_error_len)
		snprintf(first_error, first_error_len, "%s",
			 diags.count ? diags.items[0].message : "cannot load rules");
	if (errors)
		*errors = diags.errors;
	rules_diags_free(&diags);
	return set;
}
