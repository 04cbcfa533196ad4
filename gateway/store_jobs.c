/* store_jobs.c - see store_jobs.h. */
#include "store_jobs.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "log.h"
#include "outbox.h"
#include "stats.h"
#include "workq.h"

#define PURGE_BATCH_ROWS 500 /* rows one purge job removes at most (one transaction) */

void gw_store_job_run(struct gw_app *app, struct gw_job *job)
{
	struct gw_store_req *r = job->store_req;
	struct gw_store *s = app->store;
	job->store_req = NULL;
	if (!r)
		return;
	const char *const *pats = (const char *const *)r->pats;
	switch (r->op) {
	case GW_SOP_SINCE:
		r->rc = s->ops->since(s, r->inst, r->user, pats, r->npats, r->after, r->limit, &r->page);
		break;
	case GW_SOP_INBOX:
		r->rc = s->ops->inbox(s, r->inst, r->user, pats, r->npats, r->ctx, r->before, r->limit,
				      &r->page);
		break;
	case GW_SOP_MARK:
		r->rc = s->ops->mark(s, r->inst, r->user, pats, r->npats, (const char *const *)r->ids,
				     r->nids, r->read, &r->marked);
		break;
	case GW_SOP_MARK_ALL:
		r->rc = s->ops->mark_all(s, r->inst, r->user, pats, r->npats, r->ctx, &r->marked);
		break;
	case GW_SOP_UNREAD:
		r->rc = s->ops->unread(s, r->inst, r->user, pats, r->npats, NULL, &r->unread);
		break;
	case GW_SOP_PURGE: r->rc = s->ops->purge(s, (int64_t)time(NULL), PURGE_BATCH_ROWS, &r->purged); break;
	}
	if (r->rc && r->op != GW_SOP_PURGE)
		gw_stat_inc(GW_STAT_store_requests_failed);
	if (r->rc)
		gw_log(GW_LOG_ERR, "store: request failed: %s", gw_store_strerror(r->rc));
	struct gw_outbox_item *it = calloc(1, sizeof(*it));
	if (!it) {
		/* The connection sees no answer; its client times out and retries. */
		gw_store_req_free(r);
		return;
	}
	it->kind = GW_OUT_STORE;
	it->req_id = r->conn_id;
	it->store_req = r;
	gw_outbox_push_take(&app->outbox, it);
}
