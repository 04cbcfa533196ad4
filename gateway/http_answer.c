/* http_answer.c - the answers of the HTTP callback (http_pss.h): queued on
 * the session (respond, respond_error, refuse), written as headers and body
 * in one write at the next WRITEABLE (write_answer) or, for a worker's
 * answer to a request read whole, at once (respond_now), tracked on
 * app->http.unwritten until written (the sweep re-arms what waits), reading
 * held while an answer is pending (rx_hold: pipelining in lws 4.1.6, below),
 * a pipelined request answered and closed, an early answer's half-close.
 *
 * Ownership: the answer body belongs to the session until written (or is
 * borrowed); the unwritten list links sessions, lws owns them.
 * Threads: service thread only.
 */
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "app.h"
#include "cors.h"
#include "http_pss.h"
#include "intake.h"
#include "metrics.h"
#include "util.h"

void gw_http_unwritten_remove(struct http_pss *pss)
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
void gw_http_rx_hold(struct http_pss *pss)
{
	if (pss->rx_held || !pss->wsi)
		return;
	pss->rx_held = 1;
	lws_rx_flow_control(pss->wsi, 0);
}

static void queue_answer(struct http_pss *pss, int status, char *body, int borrowed)
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
}

/* Queues an answer; the body is taken (malloc'd) or borrowed. */
void gw_http_respond(struct http_pss *pss, int status, char *body, int borrowed)
{
	queue_answer(pss, status, body, borrowed);
	lws_callback_on_writable(pss->wsi);
}

/* A worker's answer (from the outbox drain, so outside this connection's
 * callbacks), written at once when that is safe, instead of waiting for a
 * WRITEABLE round (under libuv each round costs two or three epoll_ctl and a
 * loop turn: issue 15). Safe means: the whole request was read (its body
 * completed, reading held since, so lws read nothing after it from the
 * socket), the connection stays open, and lws holds no bytes it read after
 * the body (pipelining, see above): lws_service_adjust_timeout() returns 0
 * when any connection that may read has buffered input, so once reading
 * resumed here, a non-zero answer means this one has none (a zero answer,
 * perhaps for another connection, only sends this answer the usual way).
 * Then lws_http_transaction_completed() runs as the WRITEABLE callback would
 * run it: the connection goes back to waiting for the next request (lws
 * first waits for POLLOUT itself), a partial write is finished by lws before
 * that, and the session data (pss) is freed. */
void gw_http_respond_now(struct http_pss *pss, int status, char *body)
{
	int quiet = pss->state == HTTP_WAITING_WORKER && pss->body_done && pss->rx_held &&
		    !pss->close_after && !pss->head_only;
	struct lws *wsi = pss->wsi;
	queue_answer(pss, status, body, 0);
	if (!quiet || !lws_service_adjust_timeout(lws_get_context(wsi), 1, 0)) {
		lws_callback_on_writable(wsi);
		return;
	}
	gw_stat_inc(GW_STAT_http_answers_direct);
	/* lws_http_transaction_completed frees pss: nothing touches it after */
	if (gw_http_write_answer(wsi, pss) || lws_http_transaction_completed(wsi))
		lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

void gw_http_respond_error(struct http_pss *pss, int status, const char *code, const char *message)
{
	json_t *j = json_pack("{s:s, s:s}", "error", code, "message", message);
	gw_http_respond(pss, status, j ? json_dumps(j, JSON_COMPACT) : NULL, 0);
	json_decref(j);
}

/* An intake refusal before the worker: counted, logged (reason NULL: not
 * logged), answered {"error": code, "message": message} (intake.h). */
void gw_http_refuse(struct http_pss *pss, enum gw_stat stat, enum gw_log_level level, int status,
		    const char *reason, const char *code, const char *message)
{
	gw_http_respond(pss, status,
			gw_intake_refusal(stat, level, pss->trace_id, status, reason,
					  gw_intake_error_body(code, message)),
			0);
}

/* Headers and body in one write: one syscall per answer, and no second
 * WRITEABLE to wait for (between two, lws could start parsing a pipelined
 * request). lws 4.1.6 only insists on separate writes for HTTP/2, which this
 * server does not speak (no TLS, no ALPN); HTTP/1.1 keep-alive bookkeeping
 * does not look at the body count; what the socket does not take, lws keeps
 * and flushes itself. Returns 0, or -1 when the connection must close. */
#define HEADERS_MAX 1024
#define STACK_BODY_MAX 3072

int gw_http_write_answer(struct lws *wsi, struct http_pss *pss)
{
	size_t body = pss->head_only ? 0 : pss->resp_len;
	unsigned char stackbuf[LWS_PRE + HEADERS_MAX + STACK_BODY_MAX];
	unsigned char *buf = stackbuf;
	if (body > STACK_BODY_MAX && !(buf = malloc(LWS_PRE + HEADERS_MAX + body)))
		return -1;
	unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + LWS_PRE + HEADERS_MAX - 1;
	int rc = -1;
	gw_http_unwritten_remove(pss);
	pss->state = HTTP_DONE;
	if (lws_add_http_common_headers(
		    wsi, (unsigned int)pss->status, pss->ctype ? pss->ctype : "application/json",
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
	if (pss->allow && lws_add_http_header_by_name(
				  wsi, (const unsigned char *)"allow:", (const unsigned char *)pss->allow,
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
int gw_http_answer_and_close(struct lws *wsi, struct http_pss *pss)
{
	gw_stat_inc(GW_STAT_http_pipelined_closed);
	if (pss->state == HTTP_SEND_HEADERS) {
		pss->close_after = 1;
		gw_http_write_answer(wsi, pss);
	}
	return -1;
}

/* Half-closes after an early answer so that the client reads it before the
 * connection goes; lws keeps delivering (and we keep dropping) the rest of
 * the body until the client finishes or the timeout closes the connection. */
int gw_http_linger_close(struct lws *wsi)
{
	int fd = (int)lws_get_socket_fd(wsi);
	if (fd < 0 || shutdown(fd, SHUT_WR) != 0)
		return -1;
	lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LINGER_SECONDS);
	return 0;
}
