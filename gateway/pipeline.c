/* pipeline.c - the worker threads: all CPU work of the gateway.
 *
 * A worker pops a job and runs it to the end:
 *  - VERIFY (an HTTP intake request): FIT verification, JSON parsing, event
 *    extraction, push into the events lane; the HTTP answer goes back through
 *    the outbox. A request is answered 202 only once its event sits in the
 *    bounded events lane.
 *  - AUTH (a websocket connect frame): subscription-token verification.
 *  - EVENT: rules -> per-user seq -> claims -> ES256 -> frame, then one batch
 *    per event into the outbox (empty batches too: the service thread releases
 *    batches in intake order and needs every number).
 *
 * Order: workers run events in parallel, but per-user seq must follow intake
 * order. After evaluating the rules (parallel), a worker waits for its turn in
 * the sequencer (a ticket on the intake number), takes seqs for its
 * recipients, passes the turn on, then signs (parallel). The service thread
 * puts batches back in intake order before fan-out. No deadlock: events are
 * popped in intake order, so every earlier ticket is held by a running worker
 * that never waits on a later one.
 *
 * Threads: worker threads only; they touch lws through nothing but the outbox
 * wake callback (lws_cancel_service) and never call lwsl_*.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "log.h"
#include "stats.h"

#define RETRY_AFTER_SECONDS 5

static int64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void random_hex(char *out, size_t bytes)
{
	unsigned char buf[32];
	static const char hex[] = "0123456789abcdef";
	if (bytes > sizeof(buf))
		bytes = sizeof(buf);
	if (RAND_bytes(buf, (int)bytes) != 1) {
		/* RAND_bytes failing means the process is in trouble; still make ids unique. */
		static _Atomic unsigned long fallback;
		unsigned long v = ++fallback;
		memset(buf, 0, sizeof(buf));
		memcpy(buf, &v, sizeof(v));
	}
	for (size_t i = 0; i < bytes; i++) {
		out[2 * i] = hex[buf[i] >> 4];
		out[2 * i + 1] = hex[buf[i] & 15];
	}
	out[2 * bytes] = '\0';
}

/* ---- sequencer ---------------------------------------------------------- */

int gw_sequencer_init(struct gw_sequencer *s)
{
	s->next_intake_no = 1;
	if (gw_strmap_init(&s->user_seq, 1024))
		return -1;
	if (pthread_mutex_init(&s->lock, NULL))
		return -1;
	return pthread_cond_init(&s->turn, NULL) ? -1 : 0;
}

void gw_sequencer_destroy(struct gw_sequencer *s)
{
	gw_strmap_free(&s->user_seq, NULL);
	pthread_cond_destroy(&s->turn);
	pthread_mutex_destroy(&s->lock);
}

/* ---- answers ------------------------------------------------------------ */

static void answer(struct gw_app *app, uint64_t req_id, int status, int retry_after, json_t *body)
{
	struct gw_outbox_item *it = calloc(1, sizeof(*it));
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!it || !text) {
		/* The service thread times the request out; nothing else we can do. */
		free(it);
		free(text);
		gw_log(GW_LOG_ERR, "pipeline: out of memory answering request %llu",
		       (unsigned long long)req_id);
		return;
	}
	it->kind = GW_OUT_ANSWER;
	it->req_id = req_id;
	it->status = status;
	it->retry_after = retry_after;
	it->body = text;
	it->body_len = strlen(text);
	gw_outbox_push_take(&app->outbox, it);
}

static json_t *error_body(const char *code, const char *message)
{
	return json_pack("{s:s, s:s}", "error", code, "message", message);
}

/* ---- VERIFY ------------------------------------------------------------- */

static const char *const intervals[] = {"fiveMinute", "hour", "day", "week"};

static int valid_interval(const char *s)
{
	for (size_t i = 0; i < sizeof(intervals) / sizeof(intervals[0]); i++)
		if (s && !strcmp(s, intervals[i]))
			return 1;
	return 0;
}

/* The exp of a JWT-shaped token, read without verifying it (Forge's system
 * token is opaque to us; we only track when it stops being usable). */
static time_t unverified_exp(const char *token, time_t fallback)
{
	const char *p1 = strchr(token, '.');
	const char *p2 = p1 ? strchr(p1 + 1, '.') : NULL;
	if (!p2)
		return fallback;
	unsigned char *raw = NULL;
	size_t n = 0;
	if (gw_b64url_decode(p1 + 1, (size_t)(p2 - p1 - 1), &raw, &n))
		return fallback;
	json_t *j = json_loadb((const char *)raw, n, 0, NULL);
	free(raw);
	json_t *exp = json_object_get(j, "exp");
	time_t t = json_is_number(exp) ? (time_t)json_number_value(exp) : fallback;
	json_decref(j);
	return t;
}

static void count_retry(json_t *event, const char *trace_id)
{
	json_t *rc = json_object_get(event, "retryContext");
	if (!json_is_object(rc))
		return;
	const char *reason = json_string_value(json_object_get(rc, "retryReason"));
	if (!reason)
		reason = "";
	if (!strcmp(reason, "INVALID_REMOTE_INVOCATION_ERROR"))
		gw_stat_inc(GW_STAT_forge_retries_INVALID_REMOTE_INVOCATION_ERROR);
	else if (!strcmp(reason, "TIMEOUT_ERROR"))
		gw_stat_inc(GW_STAT_forge_retries_TIMEOUT_ERROR);
	else if (!strcmp(reason, "INVALID_FORGE_INVOCATION_TOKEN"))
		gw_stat_inc(GW_STAT_forge_retries_INVALID_FORGE_INVOCATION_TOKEN);
	else
		gw_stat_inc(GW_STAT_forge_retries_other);
	gw_log(GW_LOG_INFO, "event redelivery trace=%s retryCount=%lld retryReason=%s", trace_id,
	       (long long)json_integer_value(json_object_get(rc, "retryCount")), reason[0] ? reason : "-");
}

/* The idempotency key: SHA-256 over the installation and the event with
 * retryContext removed, serialised with sorted keys so that key order in the
 * redelivered JSON does not matter. */
static int event_key(const char *inst, json_t *event, unsigned char key[GW_DEDUP_KEY_LEN])
{
	json_t *copy = json_copy(event); /* shallow: only the top level changes */
	if (!copy)
		return -1;
	json_object_del(copy, "retryContext");
	char *text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(copy);
	if (!text)
		return -1;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int len = 0;
	int ok = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
		 EVP_DigestUpdate(md, inst, strlen(inst) + 1) && EVP_DigestUpdate(md, text, strlen(text)) &&
		 EVP_DigestFinal_ex(md, key, &len);
	EVP_MD_CTX_free(md);
	free(text);
	return ok && len == GW_DEDUP_KEY_LEN ? 0 : -1;
}

/* Lifecycle payloads as documented carry no eventType: infer it. */
static const char *effective_event_type(json_t *event)
{
	json_t *type = json_object_get(event, "eventType");
	if (json_is_string(type) && json_string_length(type))
		return json_string_value(type);
	if (json_object_get(event, "installerAccountId") && json_object_get(event, "app"))
		return "avi:forge:installed:app";
	if (json_object_get(event, "upgraderAccountId") && json_object_get(event, "app"))
		return "avi:forge:upgraded:app";
	return NULL;
}

static int is_lifecycle(const char *type)
{
	return !strcmp(type, "avi:forge:installed:app") || !strcmp(type, "avi:forge:upgraded:app");
}

static void do_verify(struct gw_app *app, struct gw_job *job)
{
	char detail[256] = "";
	json_t *claims = NULL, *body = NULL, *event = NULL;
	time_t now = time(NULL);
	enum gw_token_err te = gw_fit_verify(app->jwks, job->token, strlen(job->token), app->forge_app_id,
					     app->cfg.forge_leeway, now, &claims, detail, sizeof(detail));
	const char *inst = NULL;
	if (te == GW_TOKEN_OK) {
		inst = json_string_value(json_object_get(json_object_get(claims, "app"), "installationId"));
		if (!inst || !*inst) {
			te = GW_TOKEN_BAD_CLAIMS;
			snprintf(detail, sizeof(detail), "the FIT has no app.installationId");
		}
	}
	if (te != GW_TOKEN_OK) {
		gw_stat_inc(GW_STAT_events_rejected_token);
		gw_log(GW_LOG_NOTICE, "event refused trace=%s status=401 reason=%s: %s", job->trace_id,
		       gw_token_code(te), detail);
		answer(app, job->req_id, 401, 0, error_body(gw_token_code(te), detail));
		json_decref(claims);
		return;
	}

	json_error_t jerr;
	if (job->scheduled && job->body_len == 0)
		body = json_object();
	else
		body = json_loadb(job->body, job->body_len, JSON_DECODE_ANY, &jerr);
	if (!body) {
		gw_stat_inc(GW_STAT_events_rejected_json);
		json_decref(claims);
		gw_log(GW_LOG_NOTICE, "event refused trace=%s status=400 malformed JSON at line %d column %d: %s",
		       job->trace_id, jerr.line, jerr.column, jerr.text);
		answer(app, job->req_id, 400, 0,
		       json_pack("{s:s, s:s, s:i, s:i, s:i}", "error", "malformed_json", "message", jerr.text,
				 "line", jerr.line, "column", jerr.column, "position", jerr.position));
		return;
	}
	const char *why = NULL, *type = NULL;
	char scheduled_type[64];
	if (!json_is_object(body)) {
		why = "the body must be a JSON object: {\"payload\": {...event...}} or a bare event";
	} else if (job->scheduled) {
		if (!job->interval[0] && json_is_string(json_object_get(body, "interval")))
			snprintf(job->interval, sizeof(job->interval), "%s",
				 json_string_value(json_object_get(body, "interval")));
		if (!valid_interval(job->interval)) {
			why = "name the interval: POST /forge/scheduled/fiveMinute|hour|day|week";
		} else {
			char when[32];
			struct tm tm;
			gmtime_r(&now, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			snprintf(scheduled_type, sizeof(scheduled_type), "scheduled:%s", job->interval);
			type = scheduled_type;
			event = json_pack("{s:s, s:s, s:s, s:s}", "eventType", scheduled_type, "interval",
					  job->interval, "installationId", inst, "time", when);
		}
	} else {
		json_t *payload = json_object_get(body, "payload");
		event = json_incref(payload ? payload : body);
		if (!json_is_object(event))
			why = "\"payload\" must be an object holding the event";
		else if (!(type = effective_event_type(event)))
			why = "the event has no \"eventType\" string";
	}
	if (why) {
		gw_stat_inc(GW_STAT_events_rejected_json);
		json_decref(claims);
		json_decref(body);
		json_decref(event);
		gw_log(GW_LOG_NOTICE, "event refused trace=%s status=400 %s", job->trace_id, why);
		answer(app, job->req_id, 400, 0, error_body("invalid_event", why));
		return;
	}

	/* Redelivery guard (not for scheduled triggers: those carry nothing to
	 * tell two runs apart, and a duplicate run only repeats a digest). */
	unsigned char key[GW_DEDUP_KEY_LEN];
	int keyed = 0;
	if (!job->scheduled) {
		count_retry(event, job->trace_id);
		if (event_key(inst, event, key) == 0) {
			enum gw_dedup_result dr = gw_dedup_reserve(&app->dedup, key, now);
			if (dr == GW_DEDUP_DUPLICATE) {
				gw_stat_inc(GW_STAT_events_duplicate);
				gw_log(GW_LOG_NOTICE, "event duplicate trace=%s type=%s: already accepted, not processed again",
				       job->trace_id, type);
				answer(app, job->req_id, 202, 0,
				       json_pack("{s:s, s:s}", "status", "duplicate", "traceId", job->trace_id));
				goto done;
			}
			if (dr == GW_DEDUP_IN_FLIGHT) {
				gw_stat_inc(GW_STAT_events_retry_in_flight);
				answer(app, job->req_id, 503, RETRY_AFTER_SECONDS,
				       error_body("in_flight", "the same event is being accepted right now; retry later"));
				goto done;
			}
			keyed = 1;
		}
	}

	struct gw_job *ev = gw_job_new(GW_JOB_EVENT);
	if (!ev || !(ev->installation = strdup(inst)) || !(ev->event_type = strdup(type))) {
		gw_job_free(ev);
		if (keyed)
			gw_dedup_release(&app->dedup, key);
		answer(app, job->req_id, 503, RETRY_AFTER_SECONDS, error_body("out_of_memory", "try again"));
		goto done;
	}
	ev->event = json_incref(event);
	ev->fit = json_incref(claims);
	ev->scheduled = job->scheduled;
	ev->received_ns = job->received_ns;
	memcpy(ev->trace_id, job->trace_id, sizeof(ev->trace_id));
	if (gw_workq_push_event(&app->workq, ev)) {
		gw_job_free(ev);
		if (keyed)
			gw_dedup_release(&app->dedup, key);
		gw_stat_inc(GW_STAT_events_rejected_queue_full);
		gw_log(GW_LOG_WARN, "event refused trace=%s status=503 intake queue full (%d)", job->trace_id,
		       app->cfg.queue_capacity);
		answer(app, job->req_id, 503, RETRY_AFTER_SECONDS,
		       error_body("queue_full", "the intake queue is full; retry later"));
		goto done;
	}
	/* ev now belongs to the queue and may already be freed by another worker. */
	if (keyed)
		gw_dedup_commit(&app->dedup, key);
	if (job->scheduled) {
		gw_stat_inc(GW_STAT_scheduled_invocations);
		if (job->system_token)
			gw_registry_set_token(&app->registry, inst, job->system_token,
					      unverified_exp(job->system_token, now + 2 * 3600));
	} else if (is_lifecycle(type)) {
		gw_stat_inc(GW_STAT_lifecycle_events);
		gw_registry_record(&app->registry, inst, type, event, claims, now);
	}
	gw_stat_inc(GW_STAT_events_accepted);
	gw_log(GW_LOG_INFO, "event accepted trace=%s type=%s installation=%s", job->trace_id, type, inst);
	answer(app, job->req_id, 202, 0, json_pack("{s:s, s:s}", "status", "accepted", "traceId", job->trace_id));
done:
	json_decref(claims);
	json_decref(body);
	json_decref(event);
}

/* ---- AUTH --------------------------------------------------------------- */

static void do_auth(struct gw_app *app, struct gw_job *job)
{
	char detail[256] = "";
	json_t *claims = NULL;
	enum gw_token_err te = gw_subtoken_verify(app->subkey, job->token, strlen(job->token),
						  app->cfg.subscriber_audience, 0, time(NULL), &claims,
						  detail, sizeof(detail));
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

/* ---- EVENT -------------------------------------------------------------- */

struct rule_log_ctx {
	const char *trace_id;
	const char *event_type;
};

static void rule_log(void *ud, const char *rule_key, const char *message)
{
	struct rule_log_ctx *c = ud;
	gw_stat_inc(GW_STAT_rule_log_lines);
	gw_log(GW_LOG_NOTICE, "rule trace=%s type=%s rule=%s: %s", c->trace_id, c->event_type,
	       rule_key ? rule_key : "-", message);
}

static const char frame_head[] = "{\"op\":\"notification\",\"jws\":\"";
static const char frame_tail[] = "\"}";

/* The claim `n` and the lifetime are the same for every recipient of one
 * notification: built once per note, shared (by reference) by its frames. */
static json_t *note_claim(json_t *note, const char *note_id)
{
	json_t *actions = json_object_get(note, "actions");
	actions = actions ? json_incref(actions) : json_array();
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:s}", "id", note_id, "type",
			 json_string_value(json_object_get(note, "type")), "title",
			 json_string_value(json_object_get(note, "title")), "description",
			 json_string_value(json_object_get(note, "description")), "actions", actions, "rule",
			 json_string_value(json_object_get(note, "rule")), "eventType",
			 json_string_value(json_object_get(note, "eventType")));
}

static json_int_t note_ttl(struct gw_app *app, json_t *note)
{
	json_t *t = json_object_get(note, "ttl");
	return json_is_integer(t) && json_integer_value(t) > 0 ? json_integer_value(t)
								: app->cfg.notification_ttl;
}

/* Builds the signed frame for one (notification, user). NULL on failure. */
static struct gw_msg *build_frame(struct gw_app *app, json_t *n, const char *ctx, json_int_t ttl,
				  const char *inst, const char *user, uint64_t seq, time_t now)
{
	char jti[33];
	random_hex(jti, 16);
	json_t *claims = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:O}", "iss",
				   app->cfg.signing_issuer, "installation", inst, "sub", user, "ctx", ctx, "iat",
				   (json_int_t)now, "exp", (json_int_t)now + ttl, "jti", jti, "seq",
				   (json_int_t)seq, "n", n);
	if (!claims)
		return NULL;
	char *text = json_dumps(claims, JSON_COMPACT);
	json_decref(claims);
	if (!text)
		return NULL;
	size_t tlen = strlen(text);
	size_t cap = sizeof(frame_head) - 1 + gw_signer_max_jws_len(app->signer, tlen) + sizeof(frame_tail);
	struct gw_msg *msg = gw_msg_new(cap);
	if (!msg) {
		free(text);
		return NULL;
	}
	unsigned char *p = gw_msg_payload(msg);
	memcpy(p, frame_head, sizeof(frame_head) - 1);
	size_t off = sizeof(frame_head) - 1;
	size_t signed_len = gw_signer_sign(app->signer, text, tlen, (char *)p + off, cap - off);
	free(text);
	if (!signed_len) {
		gw_msg_unref(msg);
		return NULL;
	}
	off += signed_len;
	memcpy(p + off, frame_tail, sizeof(frame_tail) - 1);
	off += sizeof(frame_tail) - 1;
	msg->len = off;
	p[off] = '\0';
	return msg;
}

static void do_event(struct gw_app *app, struct gw_job *job, struct rules_scratch *scratch)
{
	const char *event_type = job->event_type;
	struct rule_log_ctx lc = {job->trace_id, event_type};
	struct gw_sequencer *sq = &app->seq;
	struct rules_set *set = gw_rulebox_get1(&app->rulebox);
	json_t *notes = NULL;
	json_t *active = NULL;
	if (job->scheduled) {
		/* A scheduled run must see the activity of every event accepted
		 * before it: take the turn first and keep it through the rules
		 * (scheduled runs are rare; other workers wait meanwhile). */
		const char *interval = json_string_value(json_object_get(job->event, "interval"));
		pthread_mutex_lock(&sq->lock); /* ---- sequencer lock { */
		while (sq->next_intake_no != job->intake_no)
			pthread_cond_wait(&sq->turn, &sq->lock);
		active = gw_activity_take_locked(&app->activity, job->installation, interval ? interval : "");
		pthread_mutex_unlock(&sq->lock); /* } sequencer lock ---- (the turn stays ours) */
	}
	if (set && job->scheduled) {
		/* Rules on "scheduled:<interval>" run once, with event.activity
		 * listing who was notified since this interval's last run; rules on
		 * "scheduled:<interval>:user" run once per such user with event.user
		 * (per-user digests). */
		json_object_set(job->event, "activity", active);
		notes = rules_evaluate_as(set, event_type, job->event, scratch, rule_log, &lc);
		char per_user_type[64];
		snprintf(per_user_type, sizeof(per_user_type), "%s:user", event_type);
		json_object_set_new(job->event, "eventType", json_string(per_user_type));
		for (size_t i = 0; notes && i < json_array_size(active); i++) {
			json_object_set(job->event, "user", json_array_get(active, i));
			json_t *part = rules_evaluate_as(set, per_user_type, job->event, scratch, rule_log, &lc);
			json_array_extend(notes, part);
			json_decref(part);
		}
		json_object_del(job->event, "user");
		json_object_set_new(job->event, "eventType", json_string(event_type));
	} else if (set) {
		notes = rules_evaluate_as(set, event_type, job->event, scratch, rule_log, &lc);
	}
	rules_set_unref(set);
	json_decref(active);
	size_t nnotes = json_is_array(notes) ? json_array_size(notes) : 0;
	size_t total = 0;
	for (size_t i = 0; i < nnotes; i++)
		total += json_array_size(json_object_get(json_array_get(notes, i), "to"));

	struct gw_outbox_item *batch = calloc(1, sizeof(*batch));
	struct gw_delivery *items = total ? calloc(total, sizeof(*items)) : NULL;
	if (!batch || (total && !items)) {
		/* Keep the ticket moving and the release order intact even now. */
		total = 0;
		free(items);
		items = NULL;
	}

	/* ---- ordered section: seqs in intake order ---- */
	pthread_mutex_lock(&sq->lock); /* ---- sequencer lock { */
	while (sq->next_intake_no != job->intake_no)
		pthread_cond_wait(&sq->turn, &sq->lock);
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
	for (size_t i = 0; i < nnotes && items; i++) {
		json_t *to = json_object_get(json_array_get(notes, i), "to");
		for (size_t j = 0; j < json_array_size(to); j++) {
			const char *user = json_string_value(json_array_get(to, j));
			/* seq is per (installation, user): "<len(inst)>:<inst><user>" */
			char skey[512];
			int sk = user ? snprintf(skey, sizeof(skey), "%zu:%s%s", strlen(job->installation),
						 job->installation, user)
				      : -1;
			struct gw_strmap_entry *e =
				sk > 0 && (size_t)sk < sizeof(skey) ? gw_strmap_upsert(&sq->user_seq, skey, (size_t)sk, NULL)
								     : NULL;
			if (!e) {
				k++; /* no seq, no delivery; the slot stays empty */
				continue;
			}
			uint64_t seq = (uint64_t)(uintptr_t)e->value + 1;
			e->value = (void *)(uintptr_t)seq;
			items[k].seq = seq;
			items[k].user = strdup(user);
			k++;
		}
	}
	sq->next_intake_no++;
	pthread_cond_broadcast(&sq->turn);
	pthread_mutex_unlock(&sq->lock); /* } sequencer lock ---- */


	/* ---- sign, in parallel with other workers ---- */
	time_t now = time(NULL);
	size_t out = 0;
	k = 0;
	for (size_t i = 0; i < nnotes && items; i++) {
		json_t *note = json_array_get(notes, i);
		json_t *to = json_object_get(note, "to");
		char note_id[33];
		random_hex(note_id, 16);
		gw_stat_inc(GW_STAT_rule_matches);
		json_t *n = note_claim(note, note_id);
		const char *ctx = json_string_value(json_object_get(note, "context"));
		json_int_t ttl = note_ttl(app, note);
		for (size_t j = 0; j < json_array_size(to); j++, k++) {
			if (!items[k].user)
				continue;
			struct gw_msg *msg = n ? build_frame(app, n, ctx, ttl, job->installation, items[k].user,
							     items[k].seq, now)
					       : NULL;
			if (!msg) {
				gw_stat_inc(GW_STAT_notifications_sign_failed);
				gw_log(GW_LOG_ERR, "notification not signed trace=%s rule=%s user=%s", job->trace_id,
				       json_string_value(json_object_get(note, "rule")), items[k].user);
				free(items[k].user);
				items[k].user = NULL;
				continue;
			}
			gw_stat_inc(GW_STAT_notifications_signed);
			items[out].user = items[k].user;
			items[out].seq = items[k].seq;
			items[out].ctx = strdup(ctx);
			items[out].installation = strdup(job->installation);
			items[out].msg = msg;
			if (out != k)
				items[k].user = NULL;
			out++;
		}
		json_decref(n);
	}
	json_decref(notes);
	gw_stat_inc(GW_STAT_events_processed);
	if (!batch) {
		gw_log(GW_LOG_ERR, "pipeline: out of memory; event trace=%s dropped", job->trace_id);
		return;
	}
	batch->kind = GW_OUT_BATCH;
	batch->intake_no = job->intake_no;
	batch->received_ns = job->received_ns;
	batch->items = items;
	batch->count = out;
	gw_outbox_push_take(&app->outbox, batch);
}

/* ---- threads ------------------------------------------------------------ */

static void *worker_main(void *arg)
{
	struct gw_app *app = arg;
	struct rules_scratch *scratch = rules_scratch_new();
	struct gw_job *job;
	while ((job = gw_workq_pop(&app->workq))) {
		switch (job->kind) {
		case GW_JOB_VERIFY:
			do_verify(app, job);
			break;
		case GW_JOB_AUTH:
			do_auth(app, job);
			break;
		case GW_JOB_EVENT:
			do_event(app, job, scratch);
			break;
		}
		gw_job_free(job);
	}
	rules_scratch_free(scratch);
	return NULL;
}

int gw_pipeline_start(struct gw_app *app)
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

void gw_pipeline_join(struct gw_app *app)
{
	for (int i = 0; i < app->nworkers; i++)
		pthread_join(app->workers[i], NULL);
	free(app->workers);
	app->workers = NULL;
	app->nworkers = 0;
}

int64_t gw_monotonic_ns(void)
{
	return monotonic_ns();
}
