/* fitcheck.c - see fitcheck.h. */
#include "fitcheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "intake.h"
#include "log.h"
#include "stats.h"

void gw_fitcheck_run(struct gw_app *app, struct gw_job *job)
{
	char detail[256] = "", reason[400];
	json_t *claims = NULL;
	enum gw_token_err te =
		gw_fit_verify(app->jwks, job->token, strlen(job->token), app->forge_app_id,
			      app->cfg.forge_leeway, time(NULL), &claims, detail, sizeof(detail));
	if (te == GW_TOKEN_OK) {
		const char *inst =
			json_string_value(json_object_get(json_object_get(claims, "app"), "installationId"));
		if (!inst || !*inst) {
			te = GW_TOKEN_BAD_CLAIMS;
			snprintf(detail, sizeof(detail), "the FIT has no app.installationId");
		}
	}
	struct gw_outbox_item *it = calloc(1, sizeof(*it));
	if (!it) {
		json_decref(claims);
		gw_log(GW_LOG_ERR, "fitcheck: out of memory answering request %llu",
		       (unsigned long long)job->req_id);
		return;
	}
	it->kind = GW_OUT_ANSWER;
	it->req_id = job->req_id;
	if (te == GW_TOKEN_OK) {
		it->status = GW_FIT_VERDICT_OK;
		it->claims = claims;
	} else {
		json_decref(claims);
		snprintf(reason, sizeof(reason), "reason=%s detail=%s (before the body)", gw_token_code(te),
			 GW_Q(detail));
		it->status = 401;
		it->body = gw_intake_refusal(GW_STAT_events_rejected_token, GW_LOG_NOTICE, job->trace_id, 401,
					     reason, gw_intake_error_body(gw_token_code(te), detail));
		if (!it->body) {
			free(it);
			return;
		}
		it->body_len = strlen(it->body);
	}
	gw_outbox_push_take(&app->outbox, it);
}
