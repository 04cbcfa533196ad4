/* http_api.c - the HTTP endpoints served by callback (lws protocol "http-api"):
 *   POST /forge/events                 Forge remote invocations (intake)
 *   POST /forge/scheduled[/<interval>] Forge scheduled triggers (intake; the
 *                                      interval from the path or the body)
 *   GET  /healthz                      health and counters
 *   GET  /.well-known/jwks.json        the keys that verify notifications
 *   GET  /dev/token, /dev/fit          development keys only (dev_api.c)
 * GET and HEAD for the GET routes; another method answers 405 with Allow;
 * anything else under these mounts 404. Static files at / are served by an
 * lws file mount (server.c, the web root), 404 through here when missing.
 *
 * Intake does only I/O here: header checks, bounded body accumulation, then a
 * INTAKE job for the workers (intake.h); their answer comes back through the outbox
 * (gw_http_answer_ready), found by request id: if the client went away in the
 * meantime the id is no longer in app->http.pending and the answer is dropped.
 *
 * Ownership: struct http_pss (lws per-session data) owns its body, token and
 * response buffers; they are freed when lws drops the session.
 * Threads: service thread only.
 */
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "broker_redis.h"
#include "cors.h"
#include "dev_api.h"
#include "fitcheck.h"
#include "http_admin.h"
#include "http_api.h"
#include "http_pss.h"
#include "intake.h"
#include "subscription.h"
#include "log.h"
#include "metrics.h"
#include "ops_api.h"
#include "stats.h"

const size_t gw_http_pss_size = sizeof(struct http_pss);

int gw_http_state_init(struct gw_http_state *h)
{
	h->unwritten = NULL;
	h->reading = NULL;
	h->body_bytes = 0;
	return gw_strmap_init(&h->pending, 256) || gw_strmap_init(&h->unverified, 64) ||
	       gw_strmap_init(&h->verified, 64) || gw_strmap_init(&h->suspect, 64);
}

void gw_http_state_free(struct gw_http_state *h)
{
	OPENSSL_cleanse(h->admin_hash, sizeof(h->admin_hash));
	gw_strmap_free(&h->pending, NULL);
	gw_strmap_free(&h->unverified, NULL);
	gw_strmap_free(&h->verified, NULL);
	gw_strmap_free(&h->suspect, NULL);
}

static struct gw_app *app_of(struct lws *wsi)
{
	return (struct gw_app *)lws_get_protocol(wsi)->user;
}

/* ---- intake limits (issue 10 item 2) ------------------------------------
 * The FIT is checked from the header by a worker before any body byte is
 * read (fitcheck.h): rx flow control holds the body in the kernel (only
 * what came in the headers' read, at most one lws read buffer, is kept).
 * An unverified request costs its session data and a slot in the FIT lane.
 * Per client address that has sent an invalid FIT (and no valid one), at
 * most limits.unverified_per_address requests may wait for a verdict. An
 * address that has sent a valid FIT is exempt for good, and an address not
 * yet judged is not capped either (its requests are bounded by the FIT
 * lane, limits.verify_backlog), so a burst from a Forge egress address right
 * after a start is never throttled: the cap only ever meets peers that have
 * shown a bad token. Once verified, the body must arrive
 * whole within limits.body_timeout (one deadline, not per chunk), and all
 * bodies in flight share limits.body_budget bytes (by Content-Length). */
#define VERIFIED_ADDRESSES_MAX 4096

static void unverified_uncount(struct gw_app *app, struct http_pss *pss)
{
	if (!pss->unverified_counted)
		return;
	pss->unverified_counted = 0;
	size_t n = strlen(pss->peer);
	uintptr_t c = (uintptr_t)gw_strmap_get(&app->http.unverified, pss->peer, n);
	if (c <= 1)
		gw_strmap_remove(&app->http.unverified, pss->peer, n);
	else {
		struct gw_strmap_entry *e = gw_strmap_upsert(&app->http.unverified, pss->peer, n, NULL);
		if (e)
			e->value = (void *)(c - 1);
	}
}

/* Adds peer to an address set bounded at VERIFIED_ADDRESSES_MAX entries;
 * when full, the set starts over (addresses still active come back at once). */
static void remember_address(struct gw_strmap *set, const char *peer)
{
	size_t n = strlen(peer);
	if (gw_strmap_get(set, peer, n))
		return;
	if (set->count >= VERIFIED_ADDRESSES_MAX) {
		gw_strmap_free(set, NULL);
		gw_strmap_init(set, 64);
	}
	struct gw_strmap_entry *e = gw_strmap_upsert(set, peer, n, NULL);
	if (e)
		e->value = (void *)1;
}

static void remember_verified(struct gw_app *app, const char *peer)
{
	remember_address(&app->http.verified, peer);
	gw_strmap_remove(&app->http.suspect, peer, strlen(peer));
}

static void reading_remove(struct gw_app *app, struct http_pss *pss)
{
	if (!pss->in_reading)
		return;
	if (pss->reading_prev)
		pss->reading_prev->reading_next = pss->reading_next;
	else
		app->http.reading = pss->reading_next;
	if (pss->reading_next)
		pss->reading_next->reading_prev = pss->reading_prev;
	pss->reading_prev = pss->reading_next = NULL;
	pss->in_reading = 0;
}

static void reading_add(struct gw_app *app, struct http_pss *pss)
{
	if (pss->in_reading)
		return;
	pss->reading_prev = NULL;
	pss->reading_next = app->http.reading;
	if (pss->reading_next)
		pss->reading_next->reading_prev = pss;
	app->http.reading = pss;
	pss->in_reading = 1;
}

static void budget_release(struct gw_app *app, struct http_pss *pss)
{
	app->http.body_bytes -= pss->budget_reserved;
	pss->budget_reserved = 0;
}

static void pss_release(struct gw_app *app, struct http_pss *pss)
{
	lws_sul_cancel(&pss->fit_sul);
	pss->fit_deferred = 0;
	unverified_uncount(app, pss);
	reading_remove(app, pss);
	budget_release(app, pss);
	json_decref(pss->fit_claims);
	pss->fit_claims = NULL;
	gw_http_unwritten_remove(pss);
	if (pss->in_pending_map) {
		char key[17];
		gw_id_key(pss->req_id, key);
		gw_strmap_remove(&app->http.pending, key, 16);
		pss->in_pending_map = 0;
	}
	free(pss->body);
	free(pss->token);
	free(pss->cors_origin);
	free(pss->ws_url);
	pss->cors_origin = pss->ws_url = NULL;
	if (pss->system_token) {
		memset(pss->system_token, 0, strlen(pss->system_token));
		free(pss->system_token);
	}
	if (!pss->resp_borrowed)
		free(pss->resp);
	pss->body = pss->token = pss->resp = pss->system_token = NULL;
}

static int valid_trace_id(const char *s, size_t n)
{
	if (n == 0 || n > 32)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

static void take_trace_id(struct lws *wsi, struct http_pss *pss)
{
	char buf[128];
	int n = lws_hdr_custom_copy(wsi, buf, sizeof(buf), "x-b3-traceid:", 13);
	if (n > 0 && valid_trace_id(buf, (size_t)n)) {
		memcpy(pss->trace_id, buf, (size_t)n);
		pss->trace_id[n] = '\0';
		return;
	}
	/* No (usable) trace id: make one so every log line of this event has one.
	 * It only has to be unique, not secret (a client may send its own): a
	 * splitmix64 sequence from a random start, with no system call per
	 * request (lws_get_random reads /dev/urandom, RAND_bytes calls getpid). */
	static uint64_t next_trace;
	if (!next_trace && RAND_bytes((unsigned char *)&next_trace, sizeof(next_trace)) != 1)
		next_trace = (uint64_t)gw_monotonic_ns();
	uint64_t z = (next_trace += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	gw_id_key(z ^ (z >> 31), pss->trace_id);
}

static int is_json_media_type(const char *ct)
{
	/* application/json, optionally with parameters; application/<x>+json too. */
	size_t n = strcspn(ct, ";");
	while (n && isspace((unsigned char)ct[n - 1]))
		n--;
	if (n == 16 && !strncasecmp(ct, "application/json", 16))
		return 1;
	return n > 17 && !strncasecmp(ct, "application/", 12) && !strncasecmp(ct + n - 5, "+json", 5);
}

static void fit_sul_cb(lws_sorted_usec_list_t *sul);
/* Hands job (a FIT check, or the FIT and its event) to the verify lane and
 * files the request as waiting for its answer by request id. A full lane or
 * a stop refuses with 503 (closing the connection when close_on_refusal: its
 * body is still unread). 0 when pushed; -1 when refused (job freed). */
static int push_verify_job(struct gw_app *app, struct http_pss *pss, struct gw_job *job, int close_on_refusal)
{
	job->req_id = ++app->next_id;
	uint64_t req_id = job->req_id; /* once pushed, the job belongs to a worker */
	int rc = gw_workq_push_verify(&app->workq, job);
	if (rc) {
		gw_job_free(job);
		if (close_on_refusal)
			pss->close_after = 1;
		pss->retry_after = 5;
		if (rc == -2) {
			gw_http_refuse(pss, GW_STAT_events_rejected_stopping, GW_LOG_NOTICE, 503, NULL,
				       "stopping", "the gateway is shutting down; retry later");
		} else {
			char reason[64];
			snprintf(reason, sizeof(reason), "verification backlog full (%d)",
				 app->cfg.verify_backlog);
			gw_http_refuse(pss, GW_STAT_events_rejected_busy, GW_LOG_WARN, 503, reason, "busy",
				       "too many requests waiting for verification; retry later");
		}
		return -1;
	}
	pss->req_id = req_id;
	char key[17];
	gw_id_key(req_id, key);
	struct gw_strmap_entry *e = gw_strmap_upsert(&app->http.pending, key, 16, NULL);
	if (e) {
		e->value = pss;
		pss->in_pending_map = 1;
	}
	return 0;
}

static void push_fit_check(struct gw_app *app, struct http_pss *pss);

/* The header is acceptable: the FIT goes to a worker; the body waits. */
static void await_verdict(struct gw_app *app, struct lws *wsi, struct http_pss *pss)
{
	lws_get_peer_simple(wsi, pss->peer, sizeof(pss->peer));
	size_t n = strlen(pss->peer);
	uintptr_t waiting = (uintptr_t)gw_strmap_get(&app->http.unverified, pss->peer, n);
	if (app->cfg.unverified_per_address > 0 && waiting >= (uintptr_t)app->cfg.unverified_per_address &&
	    gw_strmap_get(&app->http.suspect, pss->peer, n) &&
	    !gw_strmap_get(&app->http.verified, pss->peer, n)) {
		char reason[160]; /* peer (<=64) + the text: never truncated */
		snprintf(reason, sizeof(reason), "%zu requests from %s already await their FIT verdict",
			 (size_t)waiting, pss->peer);
		pss->close_after = 1;
		pss->retry_after = 1;
		gw_http_refuse(
			pss, GW_STAT_events_rejected_unverified_cap, GW_LOG_NOTICE, 429, reason,
			"too_many_unverified",
			"too many requests from this address are waiting for token verification; retry later");
		return;
	}
	struct gw_strmap_entry *u = gw_strmap_upsert(&app->http.unverified, pss->peer, n, NULL);
	if (u) {
		u->value = (void *)(waiting + 1);
		pss->unverified_counted = 1;
	}
	pss->state = HTTP_AWAITING_VERDICT;
	gw_http_rx_hold(pss);
	/* The FIT goes to a worker at the end of this read pass, not now: when the
	 * body came in the same read as the headers (the usual case: Forge sends
	 * small bodies), lws hands it over right after this callback, and one
	 * worker job then verifies the FIT and takes the event (fit_with_body),
	 * saving a hand-off to a worker and back per event. Nothing more is read
	 * meanwhile (rx_hold): what is kept is what lws had already read. */
	pss->fit_deferred = 1;
	lws_sul_schedule(lws_get_context(wsi), 0, &pss->fit_sul, fit_sul_cb, 1);
}

/* The body did not come with the headers: the FIT alone goes to a worker. */
static void fit_sul_cb(lws_sorted_usec_list_t *sul)
{
	struct http_pss *pss = lws_container_of(sul, struct http_pss, fit_sul);
	if (!pss->fit_deferred || pss->state != HTTP_AWAITING_VERDICT)
		return;
	pss->fit_deferred = 0;
	push_fit_check(pss->app, pss);
}

static void push_fit_check(struct gw_app *app, struct http_pss *pss)
{
	struct gw_job *job = gw_job_new(GW_JOB_INTAKE);
	char *tok = job ? strdup(pss->token) : NULL;
	if (!tok) {
		gw_job_free(job);
		pss->close_after = 1;
		pss->retry_after = 5;
		gw_http_respond_error(pss, 503, "out_of_memory", "try again later");
		return;
	}
	job->fit_only = 1;
	job->token = tok;
	memcpy(job->trace_id, pss->trace_id, sizeof(job->trace_id));
	job->received_ns = gw_monotonic_ns();
	push_verify_job(app, pss, job, 1);
}

static void begin_intake(struct gw_app *app, struct lws *wsi, struct http_pss *pss)
{
	char buf[256];
	take_trace_id(wsi, pss);
	pss->received_ns = 0;
	if (app->stopping) {
		pss->retry_after = 5;
		pss->close_after = 1;
		gw_http_refuse(pss, GW_STAT_events_rejected_stopping, GW_LOG_NOTICE, 503, NULL, "stopping",
			       "the gateway is shutting down; retry later");
		return;
	}
	if (app->intake_paused) {
		pss->retry_after = 30;
		pss->close_after = 1;
		gw_http_refuse(pss, GW_STAT_events_rejected_paused, GW_LOG_NOTICE, 503, "intake paused",
			       "paused", "intake is paused for maintenance; retry later");
		return;
	}
	int ctlen = lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_CONTENT_TYPE);
	if (ctlen <= 0 || !is_json_media_type(buf)) {
		char reason[300];
		snprintf(reason, sizeof(reason), "content-type %s", GW_Q(ctlen > 0 ? buf : ""));
		pss->close_after = 1;
		gw_http_refuse(pss, GW_STAT_events_rejected_media_type, GW_LOG_NOTICE, 415, reason,
			       "unsupported_media_type",
			       "the body must be JSON: send Content-Type: application/json");
		return;
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
		/* libwebsockets 4.1.6 does not decode chunked request bodies on
		 * HTTP/1.1: without a length the body could never be read. */
		pss->close_after = 1;
		gw_http_refuse(
			pss, GW_STAT_events_rejected_json, GW_LOG_NOTICE, 411, "no Content-Length",
			"length_required",
			"send the body with a Content-Length header (chunked bodies are not accepted)");
		return;
	}
	if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
		char *end;
		unsigned long long cl = strtoull(buf, &end, 10);
		pss->content_length = cl;
		if (cl > (unsigned long long)app->cfg.max_body) {
			char reason[64];
			snprintf(reason, sizeof(reason), "content-length %llu", cl);
			pss->close_after = 1;
			snprintf(buf, sizeof(buf), "the body is larger than %d bytes", app->cfg.max_body);
			gw_http_refuse(pss, GW_STAT_events_rejected_too_large, GW_LOG_NOTICE, 413, reason,
				       "payload_too_large", buf);
			return;
		}
		if (cl == 0 && !pss->scheduled) {
			gw_http_refuse(pss, GW_STAT_events_rejected_json, GW_LOG_NOTICE, 400, NULL,
				       "malformed_json", "the request has no body");
			return;
		}
	}
	int alen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	char *auth = alen > 0 ? malloc((size_t)alen + 1) : NULL;
	if (auth && lws_hdr_copy(wsi, auth, alen + 1, WSI_TOKEN_HTTP_AUTHORIZATION) != alen) {
		free(auth);
		auth = NULL;
	}
	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !auth[7]) {
		free(auth);
		pss->close_after = 1;
		gw_http_refuse(pss, GW_STAT_events_rejected_token, GW_LOG_NOTICE, 401, "reason=token_missing",
			       "token_missing", "missing Authorization: Bearer <Forge Invocation Token>");
		return;
	}
	size_t skip = 7;
	while (auth[skip] == ' ')
		skip++;
	pss->token = strdup(auth + skip);
	free(auth);
	if (pss->scheduled) {
		int slen = lws_hdr_custom_length(wsi, "x-forge-oauth-system:", 21);
		if (slen > 0 && slen < 16384) {
			pss->system_token = malloc((size_t)slen + 1);
			if (pss->system_token && lws_hdr_custom_copy(wsi, pss->system_token, slen + 1,
								     "x-forge-oauth-system:", 21) < 0) {
				free(pss->system_token);
				pss->system_token = NULL;
			}
		}
	}
	await_verdict(app, wsi, pss);
}

static void intake_body(struct gw_app *app, struct http_pss *pss, const void *in, size_t len)
{
	if (pss->state != HTTP_READING_BODY && pss->state != HTTP_AWAITING_VERDICT) {
		pss->discarded += len; /* answered already (413 etc.): dropped unread */
		return;
	}
	if (pss->body_len + len > (size_t)app->cfg.max_body) {
		char msg[96], reason[64];
		snprintf(reason, sizeof(reason), "body over %d bytes", app->cfg.max_body);
		snprintf(msg, sizeof(msg), "the body is larger than %d bytes", app->cfg.max_body);
		pss->close_after = 1;
		gw_http_refuse(pss, GW_STAT_events_rejected_too_large, GW_LOG_NOTICE, 413, reason,
			       "payload_too_large", msg);
		return;
	}
	if (pss->body_len + len + 1 > pss->body_cap) {
		size_t cap = pss->body_cap ? pss->body_cap : 4096;
		while (cap < pss->body_len + len + 1)
			cap *= 2;
		if (cap > (size_t)app->cfg.max_body + 1)
			cap = (size_t)app->cfg.max_body + 1;
		char *nb = realloc(pss->body, cap);
		if (!nb) {
			pss->close_after = 1;
			pss->retry_after = 5;
			gw_http_respond_error(pss, 503, "out_of_memory", "try again later");
			return;
		}
		pss->body = nb;
		pss->body_cap = cap;
	}
	memcpy(pss->body + pss->body_len, in, len);
	pss->body_len += len;
}

static void intake_complete(struct gw_app *app, struct http_pss *pss)
{
	if (pss->state != HTTP_READING_BODY)
		return;
	if (!pss->body_len && !pss->scheduled && !pss->subscription) {
		gw_http_refuse(pss, GW_STAT_events_rejected_json, GW_LOG_NOTICE, 400, NULL, "malformed_json",
			       "the request has no body");
		return;
	}
	if (!pss->body) {
		pss->body = malloc(1);
		if (!pss->body) {
			pss->retry_after = 5;
			gw_http_respond_error(pss, 503, "out_of_memory", "try again later");
			return;
		}
	}
	struct gw_job *job = gw_job_new(pss->subscription ? GW_JOB_SUBSCRIPTION : GW_JOB_INTAKE);
	if (job && pss->subscription) {
		job->ws_url = pss->ws_url;
		pss->ws_url = NULL;
	}
	if (!job) {
		pss->retry_after = 5;
		gw_http_respond_error(pss, 503, "out_of_memory", "try again later");
		return;
	}
	pss->body[pss->body_len] = '\0';
	reading_remove(app, pss);
	job->fit = pss->fit_claims;
	pss->fit_claims = NULL;
	job->body = pss->body;
	job->body_len = pss->body_len;
	job->token = pss->token;
	job->scheduled = pss->scheduled;
	memcpy(job->interval, pss->interval, sizeof(job->interval));
	job->system_token = pss->system_token;
	pss->body = pss->token = pss->system_token = NULL;
	pss->body_len = pss->body_cap = 0;
	job->received_ns = gw_monotonic_ns();
	memcpy(job->trace_id, pss->trace_id, sizeof(job->trace_id));
	if (!push_verify_job(app, pss, job, 0))
		pss->state = HTTP_WAITING_WORKER;
}

/* A verified request's body: its Content-Length is reserved against
 * limits.body_budget and the body is read from now, within
 * limits.body_timeout. 0; or 1 after answering 503 busy (and closing) when
 * the bodies in flight would exceed the budget. */
static int start_body(struct gw_app *app, struct http_pss *pss)
{
	size_t want = (size_t)pss->content_length;
	if (app->http.body_bytes + want > (size_t)app->cfg.body_budget) {
		char reason[96];
		snprintf(reason, sizeof(reason),
			 "bodies in flight %zu + %zu bytes over limits.body_budget %d", app->http.body_bytes,
			 want, app->cfg.body_budget);
		pss->close_after = 1;
		pss->retry_after = 5;
		gw_http_refuse(pss, GW_STAT_events_rejected_body_budget, GW_LOG_WARN, 503, reason, "busy",
			       "too many event bodies in flight; retry later");
		return 1;
	}
	app->http.body_bytes += want;
	pss->budget_reserved = want;
	pss->state = HTTP_READING_BODY;
	pss->body_started_ns = gw_monotonic_ns();
	return 0;
}

/* The whole body came in the headers' read, before the FIT went to a worker
 * (await_verdict): one job verifies the FIT and takes the event (intake.c
 * verifies when job->fit is NULL). The answer settles the address's standing
 * as a verdict would (gw_http_answer_ready). */
static void fit_with_body(struct gw_app *app, struct http_pss *pss)
{
	lws_sul_cancel(&pss->fit_sul);
	pss->fit_deferred = 0;
	if (start_body(app, pss)) {
		unverified_uncount(app, pss);
		return;
	}
	gw_stat_inc(GW_STAT_events_fit_checked_with_body);
	intake_complete(app, pss);
}

void gw_http_sweep(struct gw_app *app, int64_t now)
{
	struct http_pss *next;
	int64_t limit = (int64_t)app->cfg.body_timeout * 1000000000LL;
	for (struct http_pss *p = app->http.reading; p; p = next) {
		next = p->reading_next;
		if (p->state != HTTP_READING_BODY || now - p->body_started_ns < limit)
			continue;
		char reason[96];
		snprintf(reason, sizeof(reason), "%zu of %llu body bytes after %d s", p->body_len,
			 p->content_length, app->cfg.body_timeout);
		reading_remove(app, p);
		budget_release(app, p);
		free(p->body);
		p->body = NULL;
		p->body_len = p->body_cap = 0;
		p->close_after = 1;
		gw_http_refuse(p, GW_STAT_events_rejected_body_timeout, GW_LOG_NOTICE, 408, reason,
			       "body_timeout", "the request body did not arrive in time");
	}
	for (struct http_pss *p = app->http.unwritten; p; p = next) {
		next = p->unwritten_next;
		if (now - p->answer_queued_ns < 1000000000LL)
			continue;
		/* No WRITEABLE in a second: lws started parsing bytes the client
		 * sent after this request (pipelined, headers still incomplete),
		 * and lws 4.1.6 calls WRITEABLE only for complete headers. Write
		 * the answer directly and end the connection. */
		gw_stat_inc(GW_STAT_http_answers_rearmed);
		gw_log(GW_LOG_NOTICE,
		       "http: answer %d for request %llu pending for %lld ms (client sent more before it): written, connection closed",
		       p->status, (unsigned long long)p->req_id,
		       (long long)((now - p->answer_queued_ns) / 1000000));
		p->close_after = 1;
		struct lws *wsi = p->wsi;
		gw_http_write_answer(wsi, p);
		lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	}
}

/* The FIT verdict for a request whose body is held (fitcheck.h); takes item. */
static void verdict(struct gw_app *app, struct http_pss *pss, struct gw_outbox_item *item)
{
	unverified_uncount(app, pss);
	if (item->status != GW_FIT_VERDICT_OK) { /* 401: the body is never read */
		if (item->status == 401 && !gw_strmap_get(&app->http.verified, pss->peer, strlen(pss->peer)))
			remember_address(&app->http.suspect, pss->peer);
		pss->close_after = 1;
		pss->retry_after = item->retry_after;
		gw_http_respond(pss, item->status, item->body, 0);
		item->body = NULL;
		gw_outbox_item_free(item);
		return;
	}
	gw_stat_inc(GW_STAT_events_fit_checked_early);
	remember_verified(app, pss->peer);
	pss->fit_claims = item->claims;
	item->claims = NULL;
	gw_outbox_item_free(item);
	if (start_body(app, pss))
		return;
	if (pss->body_done) { /* the whole body came with the headers */
		intake_complete(app, pss);
		return;
	}
	reading_add(app, pss);
	pss->rx_held = 0;
	lws_rx_flow_control(pss->wsi, 1);
}

void gw_http_answer_ready(struct gw_app *app, struct gw_outbox_item *item)
{
	char key[17];
	gw_id_key(item->req_id, key);
	struct http_pss *pss = gw_strmap_remove(&app->http.pending, key, 16);
	if (!pss) { /* the client went away; the event (if accepted) still proceeds */
		gw_outbox_item_free(item);
		return;
	}
	pss->in_pending_map = 0;
	if (pss->state == HTTP_AWAITING_VERDICT) {
		verdict(app, pss, item);
		return;
	}
	if (pss->unverified_counted) { /* FIT and body went together (fit_with_body) */
		unverified_uncount(app, pss);
		if (item->status == 401) {
			if (!gw_strmap_get(&app->http.verified, pss->peer, strlen(pss->peer)))
				remember_address(&app->http.suspect, pss->peer);
		} else if (item->status >= 200 && item->status < 300) {
			remember_verified(app, pss->peer);
		}
	}
	budget_release(app, pss); /* the worker has the body now, and answered */
	pss->retry_after = item->retry_after;
	int status = item->status;
	char *body = item->body;
	item->body = NULL;
	gw_outbox_item_free(item);
	gw_http_respond_now(pss, status, body); /* may free pss */
}

int gw_http_callback(struct lws *wsi, int reason, void *user, void *in, size_t len)
{
	struct http_pss *pss = user;
	struct gw_app *app;

	switch (reason) {
	case LWS_CALLBACK_HTTP: {
		app = app_of(wsi);
		/* The previous request on this connection is not finished: this one
		 * was pipelined (parsed from bytes lws had buffered). */
		if (pss->app && pss->state != HTTP_IDLE && pss->state != HTTP_DONE)
			return gw_http_answer_and_close(wsi, pss);
		if (pss->app)
			pss_release(app, pss);
		memset(pss, 0, sizeof(*pss));
		pss->app = app;
		pss->wsi = wsi;
		gw_stat_inc(GW_STAT_http_requests);
		char *uri;
		int ulen;
		int method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
		char path[128];
		snprintf(path, sizeof(path), "%.*s", ulen > 0 ? ulen : 0, ulen > 0 ? uri : "");
		path[strcspn(path, "?")] = '\0';
		if (!strcmp(path, app->cfg.subscription_path)) {
			struct gw_sub_http sh;
			gw_subscription_begin(app, wsi, method, &sh);
			pss->subscription = 1;
			pss->cors_origin = sh.cors_origin;
			pss->preflight = sh.preflight;
			pss->allow = sh.allow;
			pss->token = sh.token;
			pss->ws_url = sh.ws_url;
			take_trace_id(wsi, pss);
			if (sh.status) {
				pss->close_after = sh.status >= 400; /* a body may still be on its way */
				if (sh.code)
					gw_http_respond_error(pss, sh.status, sh.code, sh.message);
				else
					gw_http_respond(pss, sh.status, NULL, 0);
				return 0;
			}
			pss->state = HTTP_READING_BODY;
			if (!sh.body_len)
				intake_complete(app, pss);
			return 0;
		}
		int scheduled = !strcmp(path, "/forge/scheduled") || !strncmp(path, "/forge/scheduled/", 17);
		if (!strcmp(path, "/forge/events") || scheduled) {
			if (scheduled) {
				pss->scheduled = 1;
				const char *iv = NULL;
				char v[32];
				if (path[16] == '/')
					iv = path + 17;
				else if (lws_get_urlarg_by_name(wsi, "interval=", v, sizeof(v)))
					iv = v + 9;
				/* An over-long name cannot be an interval: leave it empty (400). */
				if (iv && strlen(iv) < sizeof(pss->interval))
					memcpy(pss->interval, iv, strlen(iv) + 1);
			}
			if (method != LWSHUMETH_POST) {
				pss->allow = "POST";
				pss->close_after = 1;
				gw_http_respond_error(pss, 405, "method_not_allowed", "use POST");
				return 0;
			}
			pss->intake_started_ns = gw_monotonic_ns();
			begin_intake(app, wsi, pss);
			/* A scheduled trigger may come without a body: then lws has
			 * nothing to deliver and completion is ours to call. */
			if (pss->state == HTTP_READING_BODY && pss->scheduled &&
			    lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
				char cl[24];
				lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH);
				if (!strcmp(cl, "0"))
					intake_complete(app, pss);
			}
			return 0;
		}
		if (method != LWSHUMETH_GET && method != LWSHUMETH_HEAD) {
			pss->allow = "GET, HEAD";
			pss->close_after = 1;
			gw_http_respond_error(pss, 405, "method_not_allowed", "use GET");
			return 0;
		}
		pss->head_only = method == LWSHUMETH_HEAD;
		if (!strcmp(path, "/healthz")) {
			/* Public liveness only: details are for operators (/admin/status). */
			gw_http_respond(
				pss, 200,
				strdup(app->stopping ? "{\"status\":\"stopping\"}" : "{\"status\":\"ok\"}"),
				0);
			return 0;
		}
		/* The admin surface: bearer admin.token_file. With admin.listen the
		 * admin routes live on that listener only (admin_api.c) and the
		 * public listener has none. */
		if (!strcmp(path, "/admin/status") && !app->cfg.admin_listen) {
			if (!app->http.admin_enabled) {
				gw_stat_inc(GW_STAT_http_admin_refused);
				gw_http_respond_error(pss, 403, "admin_disabled",
						      "set admin.token_file to enable the admin routes");
			} else if (!gw_http_admin_authorized(app, wsi)) {
				gw_stat_inc(GW_STAT_http_admin_refused);
				gw_http_respond_error(pss, 401, "unauthorized",
						      "send Authorization: Bearer <admin.token_file>");
			} else {
				gw_http_respond(pss, 200, gw_http_status_json(app), 0);
			}
			return 0;
		}
		{
			int status;
			char *body = NULL;
			if (!gw_ops_answer(app, path, &status, &body, &pss->ctype)) {
				gw_http_respond(pss, status, body, 0);
				return 0;
			}
		}
		if (!strcmp(path, "/.well-known/jwks.json")) {
			/* Public keys: any page may fetch them (a Forge iframe is never
			 * our origin); cacheable, short enough for a key rotation. */
			pss->cors_origin = strdup("*");
			pss->cache_control = "public, max-age=300";
			gw_http_respond(pss, 200, app->jwks_json, 1);
			return 0;
		}
		if (!strncmp(path, "/dev/", 5)) {
			int status;
			char *body = NULL;
			if (!gw_dev_answer(app, wsi, path, &status, &body)) {
				/* Development pages on any loopback origin may read these. */
				char *origin = gw_cors_request_origin(wsi);
				if (origin && gw_cors_loopback(origin))
					pss->cors_origin = origin;
				else
					free(origin);
				gw_http_respond(pss, status, body, 0);
				return 0;
			}
		}
		gw_http_respond_error(pss, 404, "not_found", "no such resource");
		return 0;
	}
	case LWS_CALLBACK_HTTP_BODY:
		intake_body(app_of(wsi), pss, in, len);
		/* lingering after an early answer: stop once enough was dropped */
		if (pss->state == HTTP_DONE && pss->close_after && pss->discarded > LINGER_MAX_BYTES)
			return -1;
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (pss->state == HTTP_DONE && pss->close_after)
			return -1; /* the early answer went out and the client is done */
		if (pss->body_done) /* re-delivered: pipelined bytes follow the body */
			return gw_http_answer_and_close(wsi, pss);
		pss->body_done = 1;
		if (pss->state == HTTP_READING_BODY || pss->state == HTTP_WAITING_WORKER ||
		    pss->state == HTTP_AWAITING_VERDICT)
			gw_http_rx_hold(pss); /* nothing more is read until the answer is ready */
		if (pss->state == HTTP_AWAITING_VERDICT && pss->fit_deferred)
			fit_with_body(app_of(wsi), pss);
		else
			intake_complete(app_of(wsi), pss);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (pss->state != HTTP_SEND_HEADERS)
			return 0;
		if (gw_http_write_answer(wsi, pss))
			return -1;
		if (pss->close_after)
			return gw_http_linger_close(wsi);
		/* frees pss (lws binds the protocol afresh): touch nothing after */
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		if (pss && pss->app)
			pss_release(pss->app, pss);
		return 0;
	default: break;
	}
	return lws_callback_http_dummy(wsi, (enum lws_callback_reasons)reason, user, in, len);
}
