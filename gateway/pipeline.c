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
#include "gw/merkle.h"
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

/* The claim `n` and the lifetime are the same for every recipient of one
 * notification: serialised once per note, spliced into every recipient's
 * claims. */
static char *note_claim_text(json_t *note, const char *note_id)
{
	json_t *actions = json_object_get(note, "actions");
	actions = actions ? json_incref(actions) : json_array();
	json_t *n = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:s}", "id", note_id, "type",
			      json_string_value(json_object_get(note, "type")), "title",
			      json_string_value(json_object_get(note, "title")), "description",
			      json_string_value(json_object_get(note, "description")), "actions", actions,
			      "rule", json_string_value(json_object_get(note, "rule")), "eventType",
			      json_string_value(json_object_get(note, "eventType")));
	char *text = n ? json_dumps(n, JSON_COMPACT) : NULL;
	json_decref(n);
	return text;
}

static json_int_t note_ttl(struct gw_app *app, json_t *note)
{
	json_t *t = json_object_get(note, "ttl");
	return json_is_integer(t) && json_integer_value(t) > 0 ? json_integer_value(t)
								: app->cfg.notification_ttl;
}

/* ---- a growable byte buffer for claims text ----------------------------- */

struct sbuf {
	char *p;
	size_t len, cap;
	int failed;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (b->len + n + 1 > cap)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* A JSON string literal, as jansson's encoder writes it (same escapes), so
 * claims built here read back identically. Input is UTF-8 that jansson
 * already validated (rule output, token claims). */
static void sb_json_str(struct sbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	sb_put(b, "\"", 1);
	const char *run = s;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sb_put(b, run, (size_t)(s - run));
		run = s + 1;
		char esc[6] = {'\\', 0};
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			sb_put(b, esc, 6);
			continue;
		}
		sb_put(b, esc, 2);
	}
	sb_put(b, run, (size_t)(s - run));
	sb_put(b, "\"", 1);
}

/* ---- EVENT: rules and seqs, one event at a time --------------------------- */

/* One event of a worker's pass, between its rules and the pass's signature. */
struct event_work {
	struct gw_job *job;
	json_t *notes;             /* rule results, owned */
	size_t nnotes;
	struct gw_delivery *items; /* one per (note, recipient); user NULL: no seq, no delivery */
	size_t nitems;
	struct gw_outbox_item *batch; /* NULL: out of memory (the event is dropped, logged) */
};

static void evaluate_event(struct gw_app *app, struct gw_job *job, struct rules_scratch *scratch,
			   struct event_work *w)
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

	w->job = job;
	w->notes = notes;
	w->nnotes = items ? nnotes : 0;
	w->items = items;
	w->nitems = total;
	w->batch = batch;
}

/* ---- EVENT: one signature for the whole pass ----------------------------- */

/* A notification of the pass: its claims are bytes [off, off+len) of the
 * pass's claims buffer. */
struct leaf {
	struct event_work *w;
	size_t item;
	size_t off, len;
};

static const char frame_head[] = "{\"op\":\"notification\",\"claims\":\"";
static const char frame_batch[] = "\",\"proof\":{\"batch\":\"";
static const char frame_index[] = "\",\"index\":";
static const char frame_path[] = ",\"path\":[";
static const char frame_tail[] = "]}}";

/* The frame of one leaf: claims, the shared batch JWS, its inclusion proof. */
static struct gw_msg *leaf_frame(const char *claims, size_t claims_len, const char *batch_jws,
				 size_t batch_len, const struct gw_merkle *tree, size_t index)
{
	const unsigned char *sib[GW_MERKLE_MAX_PATH];
	size_t npath = gw_merkle_path(tree, index, sib);
	if (npath == (size_t)-1)
		return NULL;
	char idx[24];
	int idx_len = snprintf(idx, sizeof(idx), "%zu", index);
	size_t hash_b64 = gw_b64url_encoded_len(GW_MERKLE_HASH_LEN);
	size_t cap = sizeof(frame_head) - 1 + gw_b64url_encoded_len(claims_len) + sizeof(frame_batch) - 1 +
		     batch_len + sizeof(frame_index) - 1 + (size_t)idx_len + sizeof(frame_path) - 1 +
		     npath * (hash_b64 + 3) + sizeof(frame_tail) + 1;
	struct gw_msg *msg = gw_msg_new(cap);
	if (!msg)
		return NULL;
	char *p = (char *)gw_msg_payload(msg), *o = p;
	memcpy(o, frame_head, sizeof(frame_head) - 1);
	o += sizeof(frame_head) - 1;
	o += gw_b64url_encode((const unsigned char *)claims, claims_len, o);
	memcpy(o, frame_batch, sizeof(frame_batch) - 1);
	o += sizeof(frame_batch) - 1;
	memcpy(o, batch_jws, batch_len);
	o += batch_len;
	memcpy(o, frame_index, sizeof(frame_index) - 1);
	o += sizeof(frame_index) - 1;
	memcpy(o, idx, (size_t)idx_len);
	o += idx_len;
	memcpy(o, frame_path, sizeof(frame_path) - 1);
	o += sizeof(frame_path) - 1;
	for (size_t i = 0; i < npath; i++) {
		if (i)
			*o++ = ',';
		*o++ = '"';
		o += gw_b64url_encode(sib[i], GW_MERKLE_HASH_LEN, o);
		*o++ = '"';
	}
	memcpy(o, frame_tail, sizeof(frame_tail) - 1);
	o += sizeof(frame_tail) - 1;
	*o = '\0';
	msg->len = (size_t)(o - p);
	return msg;
}

/* Builds every recipient's claims, one Merkle tree over them, one ES256
 * signature over its root, and every frame. Returns the number of leaves
 * signed; on failure none is (the caller counts and logs). */
static size_t sign_pass(struct gw_app *app, struct event_work *works, size_t nworks, time_t now)
{
	size_t nleaves = 0;
	for (size_t e = 0; e < nworks; e++)
		for (size_t k = 0; k < works[e].nitems; k++)
			if (works[e].items[k].user)
				nleaves++;
	if (!nleaves)
		return 0;
	struct leaf *leaves = calloc(nleaves, sizeof(*leaves));
	unsigned char *salt = malloc(nleaves * 16);
	unsigned char *hashes = malloc(nleaves * GW_MERKLE_HASH_LEN);
	struct sbuf claims = {0}, iss_json = {0}, payload = {0};
	struct gw_merkle tree = {0};
	char *batch_jws = NULL;
	size_t signed_leaves = 0;
	if (!leaves || !salt || !hashes || RAND_bytes(salt, (int)(nleaves * 16)) != 1)
		goto done;

	/* Claims, in the key order of the protocol document. */
	sb_json_str(&iss_json, app->cfg.signing_issuer);
	if (iss_json.failed)
		goto done;
	const char *iss = iss_json.p;
	size_t li = 0;
	for (size_t e = 0; e < nworks; e++) {
		struct event_work *w = &works[e];
		size_t k = 0;
		for (size_t i = 0; i < w->nnotes; i++) {
			json_t *note = json_array_get(w->notes, i);
			size_t nto = json_array_size(json_object_get(note, "to"));
			char note_id[33];
			random_hex(note_id, 16);
			char *n = note_claim_text(note, note_id);
			const char *ctx = json_string_value(json_object_get(note, "context"));
			json_int_t ttl = note_ttl(app, note);
			gw_stat_inc(GW_STAT_rule_matches);
			for (size_t j = 0; j < nto; j++, k++) {
				if (!w->items[k].user)
					continue;
				if (!n || !ctx) /* cannot be serialised: counted as not signed */
					continue;
				struct leaf *lf = &leaves[li];
				lf->w = w;
				lf->item = k;
				lf->off = claims.len;
				char num[96], jti[33];
				static const char hex[] = "0123456789abcdef";
				for (int b = 0; b < 16; b++) {
					jti[2 * b] = hex[salt[li * 16 + b] >> 4];
					jti[2 * b + 1] = hex[salt[li * 16 + b] & 15];
				}
				jti[32] = '\0';
				sb_puts(&claims, "{\"iss\":");
				sb_puts(&claims, iss);
				sb_puts(&claims, ",\"installation\":");
				sb_json_str(&claims, w->job->installation);
				sb_puts(&claims, ",\"sub\":");
				sb_json_str(&claims, w->items[k].user);
				sb_puts(&claims, ",\"ctx\":");
				sb_json_str(&claims, ctx);
				snprintf(num, sizeof(num), ",\"iat\":%lld,\"exp\":%lld,\"jti\":\"", (long long)now,
					 (long long)(now + ttl));
				sb_puts(&claims, num);
				sb_puts(&claims, jti);
				snprintf(num, sizeof(num), "\",\"seq\":%llu,\"n\":",
					 (unsigned long long)w->items[k].seq);
				sb_puts(&claims, num);
				sb_puts(&claims, n);
				sb_puts(&claims, "}");
				lf->len = claims.len - lf->off;
				w->items[k].ctx = strdup(ctx);
				li++;
			}
			free(n);
		}
	}
	nleaves = li; /* notes that could not be serialised dropped theirs */
	if (claims.failed || !nleaves)
		goto done;
	for (size_t i = 0; i < nleaves; i++)
		if (gw_merkle_leaf_hash(claims.p + leaves[i].off, leaves[i].len,
					hashes + i * GW_MERKLE_HASH_LEN))
			goto done;
	if (gw_merkle_build(&tree, hashes, nleaves))
		goto done;

	char root[48], num[96];
	gw_b64url_encode(gw_merkle_root(&tree), GW_MERKLE_HASH_LEN, root);
	sb_puts(&payload, "{\"iss\":");
	sb_puts(&payload, iss);
	snprintf(num, sizeof(num), ",\"iat\":%lld,\"size\":%zu,\"root\":\"", (long long)now, nleaves);
	sb_puts(&payload, num);
	sb_puts(&payload, root);
	sb_puts(&payload, "\"}");
	if (payload.failed)
		goto done;
	size_t jws_cap = gw_signer_max_jws_len(app->signer, payload.len);
	batch_jws = malloc(jws_cap);
	size_t jws_len = batch_jws ? gw_signer_sign(app->signer, payload.p, payload.len, batch_jws, jws_cap) : 0;
	if (!jws_len)
		goto done;
	gw_stat_inc(GW_STAT_signatures);

	for (size_t i = 0; i < nleaves; i++) {
		struct gw_delivery *d = &leaves[i].w->items[leaves[i].item];
		d->msg = leaf_frame(claims.p + leaves[i].off, leaves[i].len, batch_jws, jws_len, &tree, i);
		if (d->msg)
			signed_leaves++;
	}
done:
	free(batch_jws);
	gw_merkle_free(&tree);
	free(claims.p);
	free(iss_json.p);
	free(payload.p);
	free(hashes);
	free(salt);
	free(leaves);
	return signed_leaves;
}

/* Signs the pass, drops what could not be signed, and hands every event's
 * batch to the service thread in intake order. */
static void deliver_pass(struct gw_app *app, struct event_work *works, size_t nworks)
{
	time_t now = time(NULL);
	sign_pass(app, works, nworks, now);
	for (size_t e = 0; e < nworks; e++) {
		struct event_work *w = &works[e];
		size_t out = 0, failed = 0;
		for (size_t k = 0; k < w->nitems; k++) {
			struct gw_delivery d = w->items[k];
			if (!d.user)
				continue;
			if (!d.msg || !d.ctx || !(d.installation = strdup(w->job->installation))) {
				failed++;
				free(d.user);
				free(d.ctx);
				gw_msg_unref(d.msg);
				continue;
			}
			w->items[out++] = d;
		}
		gw_stat_add(GW_STAT_notifications_signed, out);
		if (failed) {
			gw_stat_add(GW_STAT_notifications_sign_failed, failed);
			gw_log(GW_LOG_ERR, "%zu notifications not signed trace=%s", failed, w->job->trace_id);
		}
		json_decref(w->notes);
		w->notes = NULL;
		gw_stat_inc(GW_STAT_events_processed);
		if (!w->batch) {
			free(w->items);
			gw_log(GW_LOG_ERR, "pipeline: out of memory; event trace=%s dropped", w->job->trace_id);
			continue;
		}
		w->batch->kind = GW_OUT_BATCH;
		w->batch->intake_no = w->job->intake_no;
		w->batch->received_ns = w->job->received_ns;
		w->batch->items = w->items;
		w->batch->count = out;
		gw_outbox_push_take(&app->outbox, w->batch);
	}
}

/* A run of consecutive events: rules and seqs one event after another (each
 * takes its own turn in the sequencer), then one signature for all of them. */
static void do_events(struct gw_app *app, struct gw_job *chain, struct rules_scratch *scratch)
{
	size_t n = 0;
	for (struct gw_job *j = chain; j; j = j->next)
		n++;
	struct event_work one, *works = n > 1 ? calloc(n, sizeof(*works)) : &one;
	if (!works) { /* sign each event alone rather than lose the run */
		works = &one;
		n = 1;
	}
	memset(works, 0, n * sizeof(*works));
	struct gw_job *j = chain;
	while (j) {
		size_t count = 0;
		for (; j && count < n; j = j->next)
			evaluate_event(app, j, scratch, &works[count++]);
		deliver_pass(app, works, count);
		memset(works, 0, n * sizeof(*works));
	}
	if (works != &one)
		free(works);
}

/* ---- threads ------------------------------------------------------------ */

static void *worker_main(void *arg)
{
	struct gw_app *app = arg;
	struct rules_scratch *scratch = rules_scratch_new();
	struct gw_job *job;
	size_t batch_events = app->cfg.sign_batch_events > 0 ? (size_t)app->cfg.sign_batch_events : 1;
	size_t share = app->nworkers > 0 ? (size_t)app->nworkers : 1;
	while ((job = gw_workq_pop_some(&app->workq, batch_events, share))) {
		if (job->kind == GW_JOB_EVENT) {
			do_events(app, job, scratch);
			while (job) {
				struct gw_job *next = job->next;
				gw_job_free(job);
				job = next;
			}
			continue;
		}
		switch (job->kind) {
		case GW_JOB_VERIFY:
			do_verify(app, job);
			break;
		case GW_JOB_AUTH:
			do_auth(app, job);
			break;
		case GW_JOB_EVENT:
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
