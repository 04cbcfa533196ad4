/* workers.c - see workers.h. */
#include "workers.h"
#include "fitcheck.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "batch.h"
#include "intake.h"
#include "log.h"
#include "metrics.h"
#include "recorder.h"
#include "trace.h"
#include "sequencer.h"
#include "stats.h"
#include "store_jobs.h"
#include "subscription.h"

/* ---- AUTH: a websocket connect frame ------------------------------------ */

static void do_auth(struct gw_app *app, struct gw_job *job)
{
	char detail[256] = "";
	json_t *claims = NULL;
	/* Tokens minted by /forge/subscription (typ GW_SUBTOKEN_TYP) verify with our own key. */
	const struct gw_subkey *key =
		gw_subtoken_is_own(job->token, strlen(job->token)) ? app->own_subkey : app->subkey;
	enum gw_token_err te =
		gw_subtoken_verify(key, job->token, strlen(job->token), app->cfg.subscriber_audience, 0,
				   time(NULL), &claims, detail, sizeof(detail));
	struct gw_outbox_item *it = calloc(1, sizeof(*it));
	if (!it) {
		json_decref(claims);
		return;
	}
	it->kind = GW_OUT_AUTH;
	it->req_id = job->req_id;
	it->status = (int)te;
	it->claims = te == GW_TOKEN_OK ? claims : NULL;
	if (te != GW_TOKEN_OK)
		json_decref(claims);
	it->body = strdup(detail);
	gw_outbox_push_take(&app->outbox, it);
}

/* ---- EVENT: rules and seqs, one event at a time --------------------------- */

struct rule_log_ctx {
	const char *trace_id;
	const char *event_type;
};

/* This worker's spare batch item, for when an allocation fails (outbox.h). */
static _Thread_local struct gw_outbox_item *batch_spare;
/* This worker's pass array (do_events), freed when the worker ends. */
static _Thread_local struct gw_event_work *works_buf;
static _Thread_local size_t works_cap;

static void rule_log(void *ud, const char *rule_key, const char *message)
{
	struct rule_log_ctx *c = ud;
	gw_stat_inc(GW_STAT_rule_log_lines);
	gw_log(GW_LOG_NOTICE, "rule trace=%s type=%s rule=%s: %s", c->trace_id, GW_Q(c->event_type),
	       GW_Q(rule_key), GW_Q(message));
}

/* The admin trace (trace.h): the decision, the notifications and their seqs. */
static void trace_event(struct gw_app *app, const struct rules_set *set, struct rules_scratch *scratch,
			const struct gw_job *job, json_t *notes, size_t nnotes,
			const struct gw_delivery *items)
{
	size_t total = 0;
	for (size_t i = 0; i < nnotes; i++)
		total += json_array_size(json_object_get(json_array_get(notes, i), "to"));
	struct gw_trace_note one, *tn = total > 1 ? calloc(total, sizeof(*tn)) : &one;
	if (!tn)
		return;
	size_t k = 0;
	for (size_t i = 0; i < nnotes; i++) {
		json_t *note = json_array_get(notes, i), *to = json_object_get(note, "to");
		for (size_t j = 0; j < json_array_size(to) && k < total; j++, k++) {
			tn[k].rule = json_string_value(json_object_get(note, "rule"));
			tn[k].ctx = json_string_value(json_object_get(note, "context"));
			tn[k].user = json_string_value(json_array_get(to, j));
			tn[k].seq = items ? items[k].seq : 0;
		}
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	const struct rules_invocation inv = {job->fit};
	struct gw_trace_event ev = {job->trace_id,
				    job->event_type,
				    job->installation,
				    job->intake_no,
				    now_ms - (gw_monotonic_ns() - job->received_ns) / 1000000,
				    job->event,
				    &inv};
	gw_trace_record(&app->trace, set, scratch, &ev, tn, k);
	if (tn != &one)
		free(tn);
}

static void evaluate_event(struct gw_app *app, struct gw_job *job, struct rules_scratch *scratch,
			   struct gw_event_work *w)
{
	const char *event_type = job->event_type;
	struct rule_log_ctx lc = {job->trace_id, event_type};
	struct gw_sequencer *sq = &app->seq;
	struct rules_set *set = gw_rulebox_get1(&app->rulebox);
	json_t *notes = NULL;
	json_t *active = NULL;
	const struct rules_invocation inv = {job->fit}; /* appIsLicensed reads app.license */
	if (job->scheduled) {
		/* A scheduled run must see the activity of every event accepted
		 * before it: take the turn first and keep it through the rules
		 * (scheduled runs are rare; other workers wait meanwhile). */
		const char *interval = json_string_value(json_object_get(job->event, "interval"));
		gw_sequencer_wait_turn(sq, job->intake_no); /* ---- sequencer lock { */
		active = gw_activity_take_locked(&app->activity, job->installation, interval ? interval : "");
		gw_sequencer_unlock(sq); /* } sequencer lock ---- (the turn stays ours) */
	}
	int64_t eval_started = gw_monotonic_ns();
	if (set && job->scheduled) {
		/* Rules on "scheduled:<interval>" run once, with event.activity
		 * listing who was notified since this interval's last run; rules on
		 * "scheduled:<interval>:user" run once per such user with event.user
		 * (per-user digests). */
		json_object_set(job->event, "activity", active);
		notes = rules_evaluate_for(set, event_type, job->event, &inv, scratch, rule_log, &lc);
		char per_user_type[64];
		snprintf(per_user_type, sizeof(per_user_type), "%s:user", event_type);
		json_object_set_new(job->event, "eventType", json_string(per_user_type));
		for (size_t i = 0; notes && i < json_array_size(active); i++) {
			json_object_set(job->event, "user", json_array_get(active, i));
			json_t *part = rules_evaluate_for(set, per_user_type, job->event, &inv, scratch,
							  rule_log, &lc);
			json_array_extend(notes, part);
			json_decref(part);
		}
		json_object_del(job->event, "user");
		json_object_set_new(job->event, "eventType", json_string(event_type));
	} else if (set) {
		notes = rules_evaluate_for(set, event_type, job->event, &inv, scratch, rule_log, &lc);
	}
	if (set)
		gw_hist_observe_ns(GW_HIST_rule_evaluation, gw_monotonic_ns() - eval_started);
	json_decref(active);
	struct rules_limit_counts stopped;
	rules_scratch_take_counts(scratch, &stopped);
	gw_stat_add(GW_STAT_rules_step_limit, stopped.step_limit);
	gw_stat_add(GW_STAT_rules_scratch_limit, stopped.byte_limit);
	size_t nnotes = json_is_array(notes) ? json_array_size(notes) : 0;
	size_t total = 0;
	for (size_t i = 0; i < nnotes; i++)
		total += json_array_size(json_object_get(json_array_get(notes, i), "to"));

	/* Never NULL: every event yields exactly one batch (outbox.h). */
	struct gw_outbox_item *batch = gw_outbox_batch_new(&batch_spare);
	struct gw_delivery *items = total ? calloc(total, sizeof(*items)) : NULL;
	if (total && !items) {
		/* Keep the ticket moving and the release order intact even now:
		 * the batch goes out empty. */
		gw_stat_inc(GW_STAT_events_batch_emptied_oom);
		gw_log(GW_LOG_ERR, "workers: out of memory; %zu notifications of event trace=%s dropped",
		       total, job->trace_id);
		total = 0;
	}

	/* ---- ordered section: seqs in intake order ---- */
	gw_sequencer_wait_turn(sq, job->intake_no); /* ---- sequencer lock { */
	/* Remember who was notified of what, for scheduled digests (digests
	 * themselves are not recorded); in order, under the sequencer lock. */
	for (size_t i = 0; i < nnotes && !job->scheduled; i++) {
		json_t *note = json_array_get(notes, i);
		json_t *to = json_object_get(note, "to");
		for (size_t j = 0; j < json_array_size(to); j++)
			gw_activity_record_locked(&app->activity, job->installation,
						  json_string_value(json_array_get(to, j)),
						  json_string_value(json_object_get(note, "title")));
	}
	size_t k = 0;
	uint64_t seq_failures = sq->store_failures;
	for (size_t i = 0; i < nnotes && items; i++) {
		json_t *to = json_object_get(json_array_get(notes, i), "to");
		for (size_t j = 0; j < json_array_size(to); j++) {
			const char *user = json_string_value(json_array_get(to, j));
			uint64_t seq = gw_sequencer_next_seq_locked(sq, job->installation, user);
			if (!seq) {
				k++; /* no seq, no delivery; the slot stays empty */
				continue;
			}
			items[k].seq = seq;
			items[k].user = strdup(user);
			k++;
		}
	}
	/* Cluster mode: a shared store that cannot say a user's seq now is down
	 * or frozen; recording the event without that notification would lose
	 * it, so it stays pending and is claimed again after claim_after. */
	if (sq->store_failures != seq_failures && app->store && app->store->ops->claim)
		job->leave_pending = 1;
	int took_seqs = 0;
	for (size_t i = 0; i < k && !took_seqs; i++)
		took_seqs = items[i].seq != 0;
	if (took_seqs && app->recorder) {
		/* The recorder must hear of it in intake order (recorder.h,
		 * "Order"): still in the turn, but not under the sequencer lock
		 * (no two locks are ever held at once). */
		gw_sequencer_unlock(sq); /* } sequencer lock ---- (the turn stays ours) */
		w->numbered = !gw_recorder_numbered(app->recorder, job->intake_no);
		gw_sequencer_wait_turn(sq, job->intake_no); /* ---- sequencer lock { (ours already) */
	}
	gw_sequencer_pass_turn(sq); /* } sequencer lock ---- */
	if (app->trace.ring)
		trace_event(app, set, scratch, job, notes, nnotes, items);
	rules_set_unref(set);

	w->job = job;
	w->notes = notes;
	w->nnotes = items ? nnotes : 0;
	w->items = items;
	w->nitems = total;
	w->batch = batch;
}

static void run_job(struct gw_app *app, struct gw_job *job);

/* Notifications of works[0, n) that will be signed (they have a seq). */
static size_t pass_leaves(const struct gw_event_work *works, size_t n)
{
	size_t leaves = 0;
	for (size_t e = 0; e < n; e++)
		for (size_t k = 0; k < works[e].nitems; k++)
			leaves += works[e].items[k].user != NULL;
	return leaves;
}

/* The signing window (issue 15): at light load a pass holds one event and
 * pays a whole ES256 signature (~25 us) for it. A pass holding some but
 * fewer than signing.window_notifications notifications waits up to
 * signing.window_us for more events (woken early only once as many events
 * wait as would fill it: one wake-up per window, not per event), evaluates
 * them, then signs them all at once. Verifications that no idle worker takes are run meanwhile
 * (gw_workq_window_pop), so the wait never holds other work back. A pass
 * with no notification signs nothing and does not wait. Returns the number
 * of works now filled (count or more, at most cap). */
static size_t signing_window(struct gw_app *app, struct gw_event_work *works, size_t count, size_t cap,
			     struct rules_scratch *scratch)
{
	size_t leaves = pass_leaves(works, count);
	size_t want = (size_t)app->cfg.sign_window_notifications;
	if (app->cfg.sign_window_us <= 0 || !leaves || leaves >= want || count >= cap)
		return count;
	int64_t deadline = gw_monotonic_ns() + (int64_t)app->cfg.sign_window_us * 1000;
	struct gw_job *more;
	while (count < cap && leaves < want &&
	       (more = gw_workq_window_pop(&app->workq, cap - count, want - leaves, deadline))) {
		if (more->kind != GW_JOB_EVENT) {
			run_job(app, more);
			continue;
		}
		while (more) {
			struct gw_job *next = more->next;
			more->next = NULL;
			evaluate_event(app, more, scratch, &works[count]);
			leaves += pass_leaves(&works[count], 1);
			count++;
			gw_stat_inc(GW_STAT_signing_window_joined);
			more = next;
		}
		/* What waited at the deadline joined; what arrived while it was
		 * evaluated goes to the next pass, or a steady backlog could hold
		 * this one past its deadline. */
		if (gw_monotonic_ns() >= deadline)
			break;
	}
	gw_workq_window_end(&app->workq); /* when it stopped on count, leaves or the deadline */
	return count;
}

/* A run of consecutive events: rules and seqs one event after another (each
 * takes its own turn in the sequencer), then one signature for all of them. */
static void do_events(struct gw_app *app, struct gw_job *chain, struct rules_scratch *scratch,
		      size_t max_events)
{
	size_t n = 0;
	for (struct gw_job *j = chain; j; j = j->next)
		n++;
	size_t cap = n;
	if (app->cfg.sign_window_us > 0 && cap < max_events)
		cap = max_events; /* room for what the signing window gathers */
	/* The worker's own array, kept from pass to pass: a fresh 3 KiB calloc
	 * per pass made glibc consolidate its fast bins each time. */
	if (cap > works_cap) {
		struct gw_event_work *grown = realloc(works_buf, cap * sizeof(*grown));
		if (grown) {
			works_buf = grown;
			works_cap = cap;
		}
	}
	struct gw_event_work one, *works = works_buf;
	if (cap > works_cap) {
		if (works_cap >= n) {
			cap = works_cap; /* what it has: the window gathers less */
		} else { /* sign each event alone rather than lose the run */
			works = &one;
			cap = n = 1;
		}
	}
	memset(works, 0, cap * sizeof(*works));
	struct gw_job *j = chain;
	while (j) {
		size_t count = 0;
		for (; j && count < n; j = j->next)
			evaluate_event(app, j, scratch, &works[count++]);
		if (!j)
			count = signing_window(app, works, count, cap, scratch);
		gw_batch_deliver(app, works, count);
		memset(works, 0, cap * sizeof(*works));
	}
}

/* ---- threads ------------------------------------------------------------ */

/* Any job but EVENT; frees it. */
static void run_job(struct gw_app *app, struct gw_job *job)
{
	switch (job->kind) {
	case GW_JOB_INTAKE:
		if (job->fit_only)
			gw_fitcheck_run(app, job);
		else
			gw_intake_run(app, job);
		break;
	case GW_JOB_AUTH: do_auth(app, job); break;
	case GW_JOB_STORE: gw_store_job_run(app, job); break;
	case GW_JOB_SUBSCRIPTION: gw_subscription_mint(app, job); break;
	case GW_JOB_EVENT: break;
	}
	gw_job_free(job);
}

static void *worker_main(void *arg)
{
	struct gw_app *app = arg;
	struct rules_scratch *scratch = rules_scratch_new();
	if (scratch)
		rules_scratch_set_max_bytes(scratch, (size_t)app->cfg.rule_scratch_bytes);
	struct gw_job *job;
	size_t batch_events = app->cfg.sign_batch_events > 0 ? (size_t)app->cfg.sign_batch_events : 1;
	size_t share = app->nworkers > 0 ? (size_t)app->nworkers : 1;
	while ((job = gw_workq_pop_some(&app->workq, batch_events, share))) {
		if (job->kind == GW_JOB_EVENT) {
			/* the jobs go on with their batches (gw_batch_deliver) */
			do_events(app, job, scratch, batch_events);
			continue;
		}
		run_job(app, job);
	}
	rules_scratch_free(scratch);
	free(batch_spare);
	batch_spare = NULL;
	free(works_buf);
	works_buf = NULL;
	works_cap = 0;
	return NULL;
}

int gw_workers_start(struct gw_app *app)
{
	app->workers = calloc((size_t)app->nworkers, sizeof(pthread_t));
	if (!app->workers)
		return -1;
	/* Workers must not receive signals: only the service thread handles them. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int started = 0;
	for (int i = 0; i < app->nworkers; i++) {
		if (pthread_create(&app->workers[i], NULL, worker_main, app))
			break;
		started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (started != app->nworkers) {
		app->nworkers = started;
		return -1;
	}
	return 0;
}

void gw_workers_join(struct gw_app *app)
{
	for (int i = 0; i < app->nworkers; i++)
		pthread_join(app->workers[i], NULL);
	free(app->workers);
	app->workers = NULL;
	app->nworkers = 0;
}
