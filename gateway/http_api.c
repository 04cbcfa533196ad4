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
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "app.h"
#include "broker_redis.h"
#include "cors.h"
#include "dev_api.h"
#include "fitcheck.h"
#include "http_api.h"
#include "intake.h"
#include "subscription.h"
#include "log.h"
#include "metrics.h"
#include "ops_api.h"
#include "stats.h"
#include "version.h"

enum http_state {
	HTTP_IDLE,
	HTTP_AWAITING_VERDICT, /* FIT with a worker; the body is not read meanwhile */
	HTTP_READING_BODY,
	HTTP_WAITING_WORKER,
	HTTP_SEND_HEADERS, /* answer ready: written at the next WRITEABLE */
	HTTP_DONE,
};

struct http_pss {
	/* The FIT-only check waits for the end of the headers' read pass (see
	 * await_verdict); lws zeroes the session data, so it starts unscheduled. */
	lws_sorted_usec_list_t fit_sul;
	int fit_deferred; /* FIT not yet handed to a worker */
	struct gw_app *app; /* NULL until LWS_CALLBACK_HTTP ran for this transaction */
	struct lws *wsi;
	enum http_state state;
	int in_pending_map;
	/* on app->http.unwritten from respond() until the answer is written */
	struct http_pss *unwritten_prev, *unwritten_next;
	int unwritten;
	int64_t answer_queued_ns;
	uint64_t req_id;
	char *body;
	size_t body_len, body_cap;
	char *token;
	char trace_id[64];
	int64_t received_ns;
	int head_only;
	size_t discarded; /* body bytes dropped after an early answer */
	int scheduled;        /* POST /forge/scheduled[/<interval>] */
	char interval[16];
	char *system_token;   /* x-forge-oauth-system; never logged */
	/* the answer */
	int status;
	int retry_after;
	int close_after; /* body not read to the end: close once answered */
	char *resp;      /* owned unless resp_borrowed */
	size_t resp_len;
	int resp_borrowed;
	const char *allow; /* Allow header for 405 */
	const char *ctype; /* NULL: application/json */
	int64_t intake_started_ns; /* intake: headers seen (intake_answer histogram) */
	int rx_held;       /* reading stopped until the answer is ready (rx_hold) */
	int body_done;     /* HTTP_BODY_COMPLETION seen for this request */
	/* intake limits (issue 10 item 2) */
	unsigned long long content_length;
	json_t *fit_claims;       /* verified from the header (fitcheck.c), owned */
	char peer[64];            /* client address */
	int unverified_counted;   /* counted in app->http.unverified */
	size_t budget_reserved;   /* bytes of app->http.body_bytes held */
	int64_t body_started_ns;  /* when reading the body began (verdict) */
	int in_reading;           /* on app->http.reading */
	struct http_pss *reading_prev, *reading_next;
	/* forge.subscription_path and CORS (subscription_http.c, cors.c) */
	int subscription;
	int preflight;
	char *cors_origin;  /* Access-Control-Allow-Origin, owned */
	char *ws_url;       /* owned until the job takes it */
	const char *cache_control; /* NULL: no-store */
};

const size_t gw_http_pss_size = sizeof(struct http_pss);

int gw_http_state_init(struct gw_http_state *h)
{
	h->unwritten = NULL;
	h->reading = NULL;
	h->body_bytes = 0;
	return gw_strmap_init(&h->pending, 256) || gw_strmap_init(&h->unverified, 64) ||
	       gw_strmap_init(&h->verified, 64) || gw_strmap_init(&h->suspect, 64);
}

int gw_http_admin_load(struct gw_http_state *h, const char *path, char *err, size_t errlen)
{
	h->admin_enabled = 0;
	if (!path)
		return 0;
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "cannot read admin.token_file %s: %s", path, strerror(errno));
		return -1;
	}
	char buf[1024];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	size_t a = 0; /* surrounding whitespace is not part of the token */
	while (a < n && isspace((unsigned char)buf[a]))
		a++;
	while (n > a && isspace((unsigned char)buf[n - 1]))
		n--;
	if (n - a < 16 || n >= sizeof(buf) - 1) {
		snprintf(err, errlen, "admin.token_file %s must hold one token of 16 to 1000 characters", path);
		OPENSSL_cleanse(buf, sizeof(buf));
		return -1;
	}
	unsigned int hl = 0;
	int ok = EVP_Digest(buf + a, n - a, h->admin_hash, &hl, EVP_sha256(), NULL) && hl == 32;
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!ok) {
		snprintf(err, errlen, "cannot hash the admin token");
		return -1;
	}
	h->admin_enabled = 1;
	return 0;
}

/* The Authorization bearer against admin.token_file: both hashed, compared
 * in constant time (no length or prefix leaks). */
int gw_http_admin_authorized(struct gw_app *app, struct lws *wsi)
{
	if (!app->http.admin_enabled)
		return 0;
	char auth[1100];
	int n = lws_hdr_copy(wsi, auth, sizeof(auth), WSI_TOKEN_HTTP_AUTHORIZATION);
	if (n < 8 || strncasecmp(auth, "Bearer ", 7))
		return 0;
	const char *tok = auth + 7;
	while (*tok == ' ')
		tok++;
	unsigned char hash[32];
	unsigned int hl = 0;
	int ok = EVP_Digest(tok, strlen(tok), hash, &hl, EVP_sha256(), NULL) && hl == 32 &&
		 CRYPTO_memcmp(hash, app->http.admin_hash, 32) == 0;
	OPENSSL_cleanse(auth, sizeof(auth));
	return ok;
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

static void unwritten_remove(struct http_pss *pss)
{
	if (!pss->unwritten)
		return;
	if (pss->unwritten_prev)
		pss->unwritten_prev->unwritten_next = pss->unwritten_next;
	else
		pss->app->http.unwritten = pss->unwritten_next;
	if (pss->unwritten_next)
		pss->unwritten_next->unwritten_prev = pss->unwritten_prev;
	pss->unwritten_prev = pss->unwritten_next = NULL;
	pss->unwritten = 0;
}

static void unwritten_add(struct http_pss *pss)
{
	if (pss->unwritten || !pss->app)
		return;
	pss->unwritten_prev = NULL;
	pss->unwritten_next = pss->app->http.unwritten;
	if (pss->unwritten_next)
		pss->unwritten_next->unwritten_prev = pss;
	pss->app->http.unwritten = pss;
	pss->unwritten = 1;
	pss->answer_queued_ns = gw_monotonic_ns();
}

/* Pipelining (HTTP/1.1 keep-alive, several requests in one write). lws
 * 4.1.6 keeps the bytes after a request in the connection's buffer list and
 * works on them whenever the connection is serviced, whether or not the
 * previous answer went out:
 *  - after a body, it re-delivers HTTP_BODY_COMPLETION for them on every
 *    loop turn (a busy loop for as long as the answer waits on a worker:
 *    issue 10, the gateway froze and ignored SIGTERM);
 *  - after a request without body it parses the next headers into the same
 *    header table, after which the pending answer is never written (lws
 *    only calls WRITEABLE for a request whose headers are complete);
 *  - a request with a body that is parsed out of that buffer list makes
 *    lws_http_action feed the buffered bytes, its own headers included, to
 *    the body parser in a loop that never ends once the body is "complete"
 *    (lib/roles/http/server/server.c, "if the stream wsi has its own
 *    buflist"). So no request may ever be parsed from the buffer list.
 * Hence: reading stops (rx flow control) from the end of a body until its
 * answer is ready; then it resumes and the answer waits for the next
 * WRITEABLE. lws services buffered bytes before that WRITEABLE (both event
 * loops run buffered input ahead of POLLOUT), so pipelined bytes show up
 * while the answer is still pending, as a second HTTP_BODY_COMPLETION or a
 * new LWS_CALLBACK_HTTP: the pending answer is written at once and the
 * connection closed (answer the first, close; http_pipelined_closed).
 * Clients that wait for each answer (every real HTTP/1.1 client) keep their
 * keep-alive connection. */
static void rx_hold(struct http_pss *pss)
{
	if (pss->rx_held || !pss->wsi)
		return;
	pss->rx_held = 1;
	lws_rx_flow_control(pss->wsi, 0);
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
	unwritten_remove(pss);
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

/* Queues an answer; the body is taken (malloc'd) or borrowed. */
static void respond(struct http_pss *pss, int status, char *body, int borrowed)
{
	pss->status = status;
	if (!pss->resp_borrowed)
		free(pss->resp);
	pss->resp = body;
	pss->resp_len = body ? strlen(body) : 0;
	pss->resp_borrowed = borrowed;
	pss->state = HTTP_SEND_HEADERS;
	unwritten_add(pss);
	/* Reading resumes before the answer goes out: if the client pipelined
	 * more bytes, lws works on them now (before the WRITEABLE asked for
	 * here) and they show up as a second HTTP_BODY_COMPLETION or a new
	 * request while this answer is pending: answer_and_close. */
	if (pss->rx_held) {
		pss->rx_held = 0;
		lws_rx_flow_control(pss->wsi, 1);
	}
	lws_callback_on_writable(pss->wsi);
}

static void respond_error(struct http_pss *pss, int status, const char *code, const char *message)
{
	json_t *j = json_pack("{s:s, s:s}", "error", code, "message", message);
	respond(pss, status, j ? json_dumps(j, JSON_COMPACT) : NULL, 0);
	json_decref(j);
}

/* An intake refusal before the worker: counted, logged (reason NULL: not
 * logged), answered {"error": code, "message": message} (intake.h). */
static void refuse(struct http_pss *pss, enum gw_stat stat, enum gw_log_level level, int status,
		   const char *reason, const char *code, const char *message)
{
	respond(pss, status,
		gw_intake_refusal(stat, level, pss->trace_id, status, reason, gw_intake_error_body(code, message)),
		0);
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
	/* No (usable) trace id: make one so every log line of this event has one. */
	unsigned char rnd[8];
	lws_get_random(lws_get_context(wsi), rnd, sizeof(rnd));
	gw_hex_encode(rnd, sizeof(rnd), pss->trace_id);
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
static void push_fit_check(struct gw_app *app, struct http_pss *pss);

/* The header is acceptable: the FIT goes to a worker; the body waits. */
static void await_verdict(struct gw_app *app, struct lws *wsi, struct http_pss *pss)
{
	lws_get_peer_simple(wsi, pss->peer, sizeof(pss->peer));
	size_t n = strlen(pss->peer);
	uintptr_t waiting = (uintptr_t)gw_strmap_get(&app->http.unverified, pss->peer, n);
	if (app->cfg.unverified_per_address > 0 && waiting >= (uintptr_t)app->cfg.unverified_per_address &&
	    gw_strmap_get(&app->http.suspect, pss->peer, n) && !gw_strmap_get(&app->http.verified, pss->peer, n)) {
		char reason[160]; /* peer (<=64) + the text: never truncated */
		snprintf(reason, sizeof(reason), "%zu requests from %s already await their FIT verdict",
			 (size_t)waiting, pss->peer);
		pss->close_after = 1;
		pss->retry_after = 1;
		refuse(pss, GW_STAT_events_rejected_unverified_cap, GW_LOG_NOTICE, 429, reason, "too_many_unverified",
		       "too many requests from this address are waiting for token verification; retry later");
		return;
	}
	struct gw_strmap_entry *u = gw_strmap_upsert(&app->http.unverified, pss->peer, n, NULL);
	if (u) {
		u->value = (void *)(waiting + 1);
		pss->unverified_counted = 1;
	}
	pss->state = HTTP_AWAITING_VERDICT;
	rx_hold(pss);
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
		respond_error(pss, 503, "out_of_memory", "try again later");
		return;
	}
	job->fit_only = 1;
	job->token = tok;
	memcpy(job->trace_id, pss->trace_id, sizeof(job->trace_id));
	job->received_ns = gw_monotonic_ns();
	job->req_id = ++app->next_id;
	uint64_t req_id = job->req_id; /* once pushed, the job belongs to a worker */
	int rc = gw_workq_push_verify(&app->workq, job);
	if (rc) {
		gw_job_free(job);
		pss->close_after = 1;
		pss->retry_after = 5;
		if (rc == -2) {
			refuse(pss, GW_STAT_events_rejected_stopping, GW_LOG_NOTICE, 503, NULL, "stopping",
			       "the gateway is shutting down; retry later");
		} else {
			char reason[64];
			snprintf(reason, sizeof(reason), "verification backlog full (%d)", app->cfg.verify_backlog);
			refuse(pss, GW_STAT_events_rejected_busy, GW_LOG_WARN, 503, reason, "busy",
			       "too many requests waiting for verification; retry later");
		}
		return;
	}
	pss->req_id = req_id;
	char key[17];
	gw_id_key(req_id, key);
	struct gw_strmap_entry *e = gw_strmap_upsert(&app->http.pending, key, 16, NULL);
	if (e) {
		e->value = pss;
		pss->in_pending_map = 1;
	}
}

static void begin_intake(struct gw_app *app, struct lws *wsi, struct http_pss *pss)
{
	char buf[256];
	take_trace_id(wsi, pss);
	pss->received_ns = 0;
	if (app->stopping) {
		pss->retry_after = 5;
		pss->close_after = 1;
		refuse(pss, GW_STAT_events_rejected_stopping, GW_LOG_NOTICE, 503, NULL, "stopping",
		       "the gateway is shutting down; retry later");
		return;
	}
	if (app->intake_paused) {
		pss->retry_after = 30;
		pss->close_after = 1;
		refuse(pss, GW_STAT_events_rejected_paused, GW_LOG_NOTICE, 503, "intake paused", "paused",
		       "intake is paused for maintenance; retry later");
		return;
	}
	int ctlen = lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_CONTENT_TYPE);
	if (ctlen <= 0 || !is_json_media_type(buf)) {
		char reason[300];
		snprintf(reason, sizeof(reason), "content-type %s", GW_Q(ctlen > 0 ? buf : ""));
		pss->close_after = 1;
		refuse(pss, GW_STAT_events_rejected_media_type, GW_LOG_NOTICE, 415, reason, "unsupported_media_type",
		       "the body must be JSON: send Content-Type: application/json");
		return;
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
		/* libwebsockets 4.1.6 does not decode chunked request bodies on
		 * HTTP/1.1: without a length the body could never be read. */
		pss->close_after = 1;
		refuse(pss, GW_STAT_events_rejected_json, GW_LOG_NOTICE, 411, "no Content-Length", "length_required",
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
			refuse(pss, GW_STAT_events_rejected_too_large, GW_LOG_NOTICE, 413, reason, "payload_too_large", buf);
			return;
		}
		if (cl == 0 && !pss->scheduled) {
			refuse(pss, GW_STAT_events_rejected_json, GW_LOG_NOTICE, 400, NULL, "malformed_json",
			       "the request has no body");
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
		refuse(pss, GW_STAT_events_rejected_token, GW_LOG_NOTICE, 401, "reason=token_missing", "token_missing",
		       "missing Authorization: Bearer <Forge Invocation Token>");
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
			if (pss->system_token &&
			    lws_hdr_custom_copy(wsi, pss->system_token, slen + 1, "x-forge-oauth-system:", 21) < 0) {
				free(pss->system_token);
				pss->system_token = NULL;
			}
		}
	}
	await_verdict(app, wsi, pss);
}

/* After an early answer (413, 415, 401...) the client may still be sending
 * its body. Closing at once would reset the connection and the client would
 * likely lose our answer, so the answer is followed by a half-close and the
 * rest of the body is read and dropped, up to this many bytes or
 * LINGER_SECONDS, whichever comes first. */
#define LINGER_MAX_BYTES (64u * 1024u * 1024u)
#define LINGER_SECONDS 5

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
		refuse(pss, GW_STAT_events_rejected_too_large, GW_LOG_NOTICE, 413, reason, "payload_too_large", msg);
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
			respond_error(pss, 503, "out_of_memory", "try again later");
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
		refuse(pss, GW_STAT_events_rejected_json, GW_LOG_NOTICE, 400, NULL, "malformed_json",
		       "the request has no body");
		return;
	}
	if (!pss->body) {
		pss->body = malloc(1);
		if (!pss->body) {
			pss->retry_after = 5;
			respond_error(pss, 503, "out_of_memory", "try again later");
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
		respond_error(pss, 503, "out_of_memory", "try again later");
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
	job->req_id = ++app->next_id;
	uint64_t req_id = job->req_id; /* once pushed, the job belongs to a worker */
	int rc = gw_workq_push_verify(&app->workq, job);
	if (rc) {
		gw_job_free(job);
		pss->retry_after = 5;
		if (rc == -2) {
			refuse(pss, GW_STAT_events_rejected_stopping, GW_LOG_NOTICE, 503, NULL, "stopping",
			       "the gateway is shutting down; retry later");
		} else {
			char reason[64];
			snprintf(reason, sizeof(reason), "verification backlog full (%d)", app->cfg.verify_backlog);
			refuse(pss, GW_STAT_events_rejected_busy, GW_LOG_WARN, 503, reason, "busy",
			       "too many requests waiting for verification; retry later");
		}
		return;
	}
	pss->req_id = req_id;
	char key[17];
	gw_id_key(pss->req_id, key);
	struct gw_strmap_entry *e = gw_strmap_upsert(&app->http.pending, key, 16, NULL);
	if (e) {
		e->value = pss;
		pss->in_pending_map = 1;
	}
	pss->state = HTTP_WAITING_WORKER;
}

/* The whole body came in the headers' read, before the FIT went to a worker
 * (await_verdict): one job verifies the FIT and takes the event (intake.c
 * verifies when job->fit is NULL). The answer settles the address's standing
 * as a verdict would (gw_http_answer_ready). */
static void fit_with_body(struct gw_app *app, struct http_pss *pss)
{
	lws_sul_cancel(&pss->fit_sul);
	pss->fit_deferred = 0;
	size_t want = (size_t)pss->content_length;
	if (app->http.body_bytes + want > (size_t)app->cfg.body_budget) {
		char reason[96];
		snprintf(reason, sizeof(reason), "bodies in flight %zu + %zu bytes over limits.body_budget %d",
			 app->http.body_bytes, want, app->cfg.body_budget);
		unverified_uncount(app, pss);
		pss->close_after = 1;
		pss->retry_after = 5;
		refuse(pss, GW_STAT_events_rejected_body_budget, GW_LOG_WARN, 503, reason, "busy",
		       "too many event bodies in flight; retry later");
		return;
	}
	app->http.body_bytes += want;
	pss->budget_reserved = want;
	pss->state = HTTP_READING_BODY;
	pss->body_started_ns = gw_monotonic_ns();
	gw_stat_inc(GW_STAT_events_fit_checked_with_body);
	intake_complete(app, pss);
}

static int write_answer(struct lws *wsi, struct http_pss *pss);

void gw_http_sweep(struct gw_app *app, int64_t now)
{
	struct http_pss *next;
	int64_t limit = (int64_t)app->cfg.body_timeout * 1000000000LL;
	for (struct http_pss *p = app->http.reading; p; p = next) {
		next = p->reading_next;
		if (p->state != HTTP_READING_BODY || now - p->body_started_ns < limit)
			continue;
		char reason[96];
		snprintf(reason, sizeof(reason), "%zu of %llu body bytes after %d s", p->body_len, p->content_length,
			 app->cfg.body_timeout);
		reading_remove(app, p);
		budget_release(app, p);
		free(p->body);
		p->body = NULL;
		p->body_len = p->body_cap = 0;
		p->close_after = 1;
		refuse(p, GW_STAT_events_rejected_body_timeout, GW_LOG_NOTICE, 408, reason, "body_timeout",
		       "the request body did not arrive in time");
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
		gw_log(GW_LOG_NOTICE, "http: answer %d for request %llu pending for %lld ms (client sent more before it): written, connection closed",
		       p->status, (unsigned long long)p->req_id, (long long)((now - p->answer_queued_ns) / 1000000));
		p->close_after = 1;
		struct lws *wsi = p->wsi;
		write_answer(wsi, p);
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
		respond(pss, item->status, item->body, 0);
		item->body = NULL;
		gw_outbox_item_free(item);
		return;
	}
	gw_stat_inc(GW_STAT_events_fit_checked_early);
	remember_verified(app, pss->peer);
	pss->fit_claims = item->claims;
	item->claims = NULL;
	gw_outbox_item_free(item);
	size_t want = (size_t)pss->content_length;
	if (app->http.body_bytes + want > (size_t)app->cfg.body_budget) {
		char reason[96];
		snprintf(reason, sizeof(reason), "bodies in flight %zu + %zu bytes over limits.body_budget %d",
			 app->http.body_bytes, want, app->cfg.body_budget);
		pss->close_after = 1;
		pss->retry_after = 5;
		refuse(pss, GW_STAT_events_rejected_body_budget, GW_LOG_WARN, 503, reason, "busy",
		       "too many event bodies in flight; retry later");
		return;
	}
	app->http.body_bytes += want;
	pss->budget_reserved = want;
	pss->state = HTTP_READING_BODY;
	pss->body_started_ns = gw_monotonic_ns();
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
	respond(pss, item->status, item->body, 0);
	item->body = NULL;
	gw_outbox_item_free(item);
}

static char *health_json(struct gw_app *app)
{
	struct gw_rulebox *rb = &app->rulebox;
	json_t *counters = json_object();
	for (int i = 0; i < GW_STAT__COUNT; i++)
		json_object_set_new(counters, gw_stat_names[i], json_integer((json_int_t)gw_stat_get(i)));
	char loaded[32] = "";
	pthread_mutex_lock(&rb->lock);
	struct tm tm;
	gmtime_r(&rb->loaded_at, &tm);
	strftime(loaded, sizeof(loaded), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_t *rules = json_pack("{s:I, s:s, s:s, s:s, s:o, s:{s:I, s:I}}", "count",
				  (json_int_t)(rb->set ? rules_set_count(rb->set) : 0), "version",
				  rb->set ? rules_set_version(rb->set) : "", "source",
				  rb->source ? rb->source : "", "loadedAt", loaded, "lastReloadError",
				  rb->last_error ? json_string(rb->last_error) : json_null(), "reloads", "ok",
				  (json_int_t)rb->reloads_ok, "failed", (json_int_t)rb->reloads_failed);
	pthread_mutex_unlock(&rb->lock);
	json_t *j = json_pack(
		"{s:s, s:s, s:I, s:o, s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I}, s:i, s:o}", "status",
		app->stopping ? "stopping" : "ok", "version", GW_VERSION, "uptimeSeconds",
		(json_int_t)(time(NULL) - app->started_at), "rules", rules, "queue", "depth",
		(json_int_t)gw_workq_event_depth(&app->workq), "capacity", (json_int_t)app->cfg.queue_capacity,
		"verifying", (json_int_t)gw_workq_verify_depth(&app->workq), "verifyCapacity",
		(json_int_t)app->cfg.verify_backlog, "connections", "websocket",
		(json_int_t)app->ws_connections, "subscriptions",
		(json_int_t)app->broker->ops->subscription_count(app->broker), "workers", app->nworkers,
		"counters", counters);
	if (j) {
		json_object_set_new(j, "intake", json_string(app->intake_paused ? "paused" : "open"));
		if (app->redis_broker) /* cluster mode: every node's rule version */
			json_object_set_new(j, "cluster", gw_broker_redis_nodes_json(app->redis_broker));
		json_object_set_new(j, "installations", gw_registry_health(&app->registry, time(NULL)));
		pthread_mutex_lock(&app->dedup.lock);
		json_object_set_new(j, "redelivery",
				    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "remembered",
					      (json_int_t)app->dedup.count, "capacity", (json_int_t)app->dedup.capacity,
					      "perInstallation", (json_int_t)app->dedup.per_installation,
					      "installations", (json_int_t)app->dedup.insts.count, "ttlSeconds",
					      (json_int_t)app->dedup.ttl, "evictedEarly", (json_int_t)app->dedup.evicted_early,
					      "evictedOwnShare", (json_int_t)app->dedup.evicted_own_share,
					      "evictedFairShare", (json_int_t)app->dedup.evicted_fair_share));
		pthread_mutex_unlock(&app->dedup.lock);
		pthread_mutex_lock(&app->seq.lock); /* the activity tracker lives under it */
		json_object_set_new(j, "digests",
				    json_pack("{s:I, s:I, s:I, s:I}", "tracked", (json_int_t)app->activity.users.count,
					      "bytes", (json_int_t)app->activity.bytes, "maxBytes",
					      (json_int_t)app->activity.max_bytes, "untracked",
					      (json_int_t)app->activity.dropped));
		pthread_mutex_unlock(&app->seq.lock);
	}
	char *text = j ? json_dumps(j, JSON_COMPACT | JSON_INDENT(0)) : NULL;
	json_decref(j);
	return text;
}

/* The detailed health for the admin API (admin_api.c). */
char *gw_http_status_json(struct gw_app *app)
{
	return health_json(app);
}

/* Headers and body in one write: one syscall per answer, and no second
 * WRITEABLE to wait for (between two, lws could start parsing a pipelined
 * request). lws 4.1.6 only insists on separate writes for HTTP/2, which this
 * server does not speak (no TLS, no ALPN); HTTP/1.1 keep-alive bookkeeping
 * does not look at the body count; what the socket does not take, lws keeps
 * and flushes itself. Returns 0, or -1 when the connection must close. */
#define HEADERS_MAX 1024
#define STACK_BODY_MAX 3072

static int write_answer(struct lws *wsi, struct http_pss *pss)
{
	size_t body = pss->head_only ? 0 : pss->resp_len;
	unsigned char stackbuf[LWS_PRE + HEADERS_MAX + STACK_BODY_MAX];
	unsigned char *buf = stackbuf;
	if (body > STACK_BODY_MAX && !(buf = malloc(LWS_PRE + HEADERS_MAX + body)))
		return -1;
	unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + LWS_PRE + HEADERS_MAX - 1;
	int rc = -1;
	unwritten_remove(pss);
	pss->state = HTTP_DONE;
	if (lws_add_http_common_headers(wsi, (unsigned int)pss->status, pss->ctype ? pss->ctype : "application/json",
					pss->head_only ? LWS_ILLEGAL_HTTP_CONTENT_LEN : pss->resp_len, &p, end))
		goto out;
	const char *cc = pss->cache_control ? pss->cache_control : "no-store";
	if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
					(const unsigned char *)cc, (int)strlen(cc), &p, end))
		goto out;
	if (pss->cors_origin && gw_cors_add_headers(wsi, pss->cors_origin, pss->preflight, &p, end))
		goto out;
	if (pss->retry_after > 0) {
		char ra[16];
		int n = snprintf(ra, sizeof(ra), "%d", pss->retry_after);
		if (lws_add_http_header_by_name(wsi, (const unsigned char *)"retry-after:",
						(const unsigned char *)ra, n, &p, end))
			goto out;
	}
	if (pss->allow && lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
						      (const unsigned char *)pss->allow,
						      (int)strlen(pss->allow), &p, end))
		goto out;
	if (pss->close_after && lws_add_http_header_by_name(wsi, (const unsigned char *)"connection:",
							    (const unsigned char *)"close", 5, &p, end))
		goto out;
	if (lws_finalize_http_header(wsi, &p, end))
		goto out;
	if (body) {
		memcpy(p, pss->resp, body);
		p += body;
	}
	int len = (int)(p - start);
	rc = lws_write(wsi, start, (size_t)len, LWS_WRITE_HTTP_HEADERS) == len ? 0 : -1;
	if (pss->intake_started_ns) {
		gw_hist_observe_ns(GW_HIST_intake_answer, gw_monotonic_ns() - pss->intake_started_ns);
		pss->intake_started_ns = 0;
	}
out:
	if (buf != stackbuf)
		free(buf);
	return rc;
}

/* A pipelined request showed up while this one's answer was still to be
 * written (see "Pipelining" above): write the answer now and end the
 * connection. Returns -1 for the callback to return. */
static int answer_and_close(struct lws *wsi, struct http_pss *pss)
{
	gw_stat_inc(GW_STAT_http_pipelined_closed);
	if (pss->state == HTTP_SEND_HEADERS) {
		pss->close_after = 1;
		write_answer(wsi, pss);
	}
	return -1;
}

/* Half-closes after an early answer so that the client reads it before the
 * connection goes; lws keeps delivering (and we keep dropping) the rest of
 * the body until the client finishes or the timeout closes the connection. */
static int linger_close(struct lws *wsi)
{
	int fd = (int)lws_get_socket_fd(wsi);
	if (fd < 0 || shutdown(fd, SHUT_WR) != 0)
		return -1;
	lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LINGER_SECONDS);
	return 0;
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
			return answer_and_close(wsi, pss);
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
					respond_error(pss, sh.status, sh.code, sh.message);
				else
					respond(pss, sh.status, NULL, 0);
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
				respond_error(pss, 405, "method_not_allowed", "use POST");
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
			respond_error(pss, 405, "method_not_allowed", "use GET");
			return 0;
		}
		pss->head_only = method == LWSHUMETH_HEAD;
		if (!strcmp(path, "/healthz")) {
			/* Public liveness only: details are for operators (/admin/status). */
			respond(pss, 200,
				strdup(app->stopping ? "{\"status\":\"stopping\"}" : "{\"status\":\"ok\"}"), 0);
			return 0;
		}
		/* The admin surface: bearer admin.token_file. With admin.listen the
		 * admin routes live on that listener only (admin_api.c) and the
		 * public listener has none. */
		if (!strcmp(path, "/admin/status") && !app->cfg.admin_listen) {
			if (!app->http.admin_enabled) {
				gw_stat_inc(GW_STAT_http_admin_refused);
				respond_error(pss, 403, "admin_disabled", "set admin.token_file to enable the admin routes");
			} else if (!gw_http_admin_authorized(app, wsi)) {
				gw_stat_inc(GW_STAT_http_admin_refused);
				respond_error(pss, 401, "unauthorized", "send Authorization: Bearer <admin.token_file>");
			} else {
				respond(pss, 200, health_json(app), 0);
			}
			return 0;
		}
		{
			int status;
			char *body = NULL;
			if (!gw_ops_answer(app, path, &status, &body, &pss->ctype)) {
				respond(pss, status, body, 0);
				return 0;
			}
		}
		if (!strcmp(path, "/.well-known/jwks.json")) {
			/* Public keys: any page may fetch them (a Forge iframe is never
			 * our origin); cacheable, short enough for a key rotation. */
			pss->cors_origin = strdup("*");
			pss->cache_control = "public, max-age=300";
			respond(pss, 200, app->jwks_json, 1);
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
				respond(pss, status, body, 0);
				return 0;
			}
		}
		respond_error(pss, 404, "not_found", "no such resource");
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
			return answer_and_close(wsi, pss);
		pss->body_done = 1;
		if (pss->state == HTTP_READING_BODY || pss->state == HTTP_WAITING_WORKER ||
		    pss->state == HTTP_AWAITING_VERDICT)
			rx_hold(pss); /* nothing more is read until the answer is ready */
		if (pss->state == HTTP_AWAITING_VERDICT && pss->fit_deferred)
			fit_with_body(app_of(wsi), pss);
		else
			intake_complete(app_of(wsi), pss);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (pss->state != HTTP_SEND_HEADERS)
			return 0;
		if (write_answer(wsi, pss))
			return -1;
		if (pss->close_after)
			return linger_close(wsi);
		/* frees pss (lws binds the protocol afresh): touch nothing after */
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		if (pss && pss->app)
			pss_release(pss->app, pss);
		return 0;
	default:
		break;
	}
	return lws_callback_http_dummy(wsi, (enum lws_callback_reasons)reason, user, in, len);
}
