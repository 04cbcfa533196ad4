/* http_pss.h - internal to the HTTP callback's two files: http_api.c (the
 * routes and the service-thread half of intake) and http_answer.c (queuing
 * and writing answers). The per-request session data lws allocates for
 * protocol "http-api", its states, and the answer helpers.
 *
 * Ownership: struct http_pss (lws per-session data) owns its body, token and
 * response buffers; they are freed when lws drops the session (pss_release,
 * http_api.c). An answer's body is taken (malloc'd) or borrowed.
 * Threads: service thread only.
 */
#ifndef GW_HTTP_PSS_H
#define GW_HTTP_PSS_H

#include <jansson.h>
#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "stats.h"

struct gw_app;
struct lws;

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
	int scheduled; /* POST /forge/scheduled[/<interval>] */
	char interval[16];
	char *system_token; /* x-forge-oauth-system; never logged */
	/* the answer */
	int status;
	int retry_after;
	int close_after; /* body not read to the end: close once answered */
	char *resp; /* owned unless resp_borrowed */
	size_t resp_len;
	int resp_borrowed;
	const char *allow; /* Allow header for 405 */
	const char *ctype; /* NULL: application/json */
	int64_t intake_started_ns; /* intake: headers seen (intake_answer histogram) */
	int rx_held; /* reading stopped until the answer is ready (rx_hold) */
	int body_done; /* HTTP_BODY_COMPLETION seen for this request */
	/* intake limits (issue 10 item 2) */
	unsigned long long content_length;
	json_t *fit_claims; /* verified from the header (fitcheck.c), owned */
	char peer[64]; /* client address */
	int unverified_counted; /* counted in app->http.unverified */
	size_t budget_reserved; /* bytes of app->http.body_bytes held */
	int64_t body_started_ns; /* when reading the body began (verdict) */
	int in_reading; /* on app->http.reading */
	struct http_pss *reading_prev, *reading_next;
	/* forge.subscription_path and CORS (subscription_http.c, cors.c) */
	int subscription;
	int preflight;
	char *cors_origin; /* Access-Control-Allow-Origin, owned */
	char *ws_url; /* owned until the job takes it */
	const char *cache_control; /* NULL: no-store */
};

/* After an early answer (413, 415, 401...) the client may still be sending
 * its body. Closing at once would reset the connection and the client would
 * likely lose our answer, so the answer is followed by a half-close and the
 * rest of the body is read and dropped, up to this many bytes or
 * LINGER_SECONDS, whichever comes first. */
#define LINGER_MAX_BYTES (64u * 1024u * 1024u)
#define LINGER_SECONDS 5

/* Off app->http.unwritten (the answer was written, or the session goes). */
void gw_http_unwritten_remove(struct http_pss *pss);
/* Stops reading from the connection until the answer is ready (see
 * "Pipelining" in http_answer.c). */
void gw_http_rx_hold(struct http_pss *pss);
/* Queues an answer; the body is taken (malloc'd) or borrowed. */
void gw_http_respond(struct http_pss *pss, int status, char *body, int borrowed);
/* A worker's answer from the outbox drain: written at once when the request
 * was read whole and nothing follows it (then pss is freed), else queued as
 * gw_http_respond does. The body is taken. */
void gw_http_respond_now(struct http_pss *pss, int status, char *body);
/* Queues {"error": code, "message": message}. */
void gw_http_respond_error(struct http_pss *pss, int status, const char *code, const char *message);
/* An intake refusal before the worker: counted, logged (reason NULL: not
 * logged), answered {"error": code, "message": message} (intake.h). */
void gw_http_refuse(struct http_pss *pss, enum gw_stat stat, enum gw_log_level level, int status,
		    const char *reason, const char *code, const char *message);
/* Headers and body in one write. Returns 0, or -1 when the connection must close. */
int gw_http_write_answer(struct lws *wsi, struct http_pss *pss);
/* A pipelined request came while this one's answer was pending: write it
 * now and end the connection. Returns -1 for the callback to return. */
int gw_http_answer_and_close(struct lws *wsi, struct http_pss *pss);
/* Half-closes after an early answer (LINGER_SECONDS). Returns 0 or -1. */
int gw_http_linger_close(struct lws *wsi);

#endif
