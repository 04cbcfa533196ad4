/* store_req.c - see store_req.h. */
#include "store_req.h"

#include <stdlib.h>

struct gw_store_req *gw_store_req_new(enum gw_store_op op)
{
	struct gw_store_req *r = calloc(1, sizeof(*r));
	if (r)
		r->op = op;
	return r;
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

void gw_store_req_free(struct gw_store_req *r)
{
	if (!r)
		return;
	free(r->inst);
	free(r->user);
	free_strv(r->pats, r->npats);
	free(r->ctx);
	free_strv(r->ids, r->nids);
	json_decref(r->id);
	gw_store_page_free(&r->page);
	gw_store_marked_free(&r->marked);
	free(r);
}
