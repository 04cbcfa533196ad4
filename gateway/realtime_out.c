/* realtime_out.c - what a websocket connection sends (realtime_conn.h):
 * a per-connection FIFO of shared gw_msg references, bounded in bytes: every
 * queued frame counts; a connection that lets more than
 * limits.ws_max_pending_bytes pile up is closed as a slow consumer (1008), and
 * reading from it stops while replies to its own frames fill half of that
 * (rx_throttle). A frame is written at once when nothing is waiting;
 * otherwise one lws_write per WRITEABLE callback. Live notifications are
 * held while a resume is under way and delivered after it (flush_held).
 *
 * Ownership: one reference per queued or held gw_msg.
 * Threads: service thread only.
 */
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "log.h"
#include "realtime.h"
#include "realtime_conn.h"
#include "stats.h"

/* What one queued frame costs this connection: its bytes plus our list node,
 * the frame's header and headroom (charged to every connection it is queued
 * to, which overstates a frame shared by tabs: the bound stays a bound). */
size_t rt_frame_cost(const struct gw_msg *msg)
{
	return msg->len + sizeof(struct outbound) + sizeof(struct gw_msg) + GW_MSG_HEADROOM;
}

/* Returns 1 when the frame was written or queued, 0 when it was dropped
 * (socket gone, out of memory, or the byte budget exceeded: then the
 * connection is being closed as a slow consumer). */
int rt_queue_msg(struct gw_conn *c, struct gw_msg *msg)
{
	/* Nothing waiting (ours or lws's): write now. Going through WRITEABLE
	 * costs two epoll_ctl calls and a loop turn per frame under libuv; lws
	 * keeps whatever the socket does not take and flushes it on POLLOUT,
	 * and lws_partial_buffered() sends every later frame through our queue
	 * until then, so at most one frame sits outside the byte bound. */
	if (!c->out_head && !c->close_pending && c->ping_due != 1 && c->state != RT_CLOSING &&
	    !lws_partial_buffered(c->wsi)) {
		if (lws_write(c->wsi, gw_msg_payload(msg), msg->len, LWS_WRITE_TEXT) < 0) {
			/* The socket is gone: let lws close it on its next turn. */
			c->state = RT_CLOSING;
			c->close_pending = 2;
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
			return 0;
		}
		return 1;
	}
	/* Every queued frame counts against the budget, whatever its kind:
	 * pongs, acknowledgements and errors as much as notifications. The
	 * slow_consumer error itself is queued after the queue is dropped. */
	if (c->out_bytes + rt_frame_cost(msg) > (size_t)c->app->cfg.ws_max_pending_bytes) {
		if (!c->close_pending)
			rt_slow_consumer(c);
		return 0;
	}
	struct outbound *o = malloc(sizeof(*o));
	if (!o)
		return 0;
	o->next = NULL;
	o->msg = gw_msg_ref(msg);
	if (c->out_tail)
		c->out_tail->next = o;
	else
		c->out_head = o;
	c->out_tail = o;
	c->out_bytes += rt_frame_cost(msg);
	lws_callback_on_writable(c->wsi);
	return 1;
}

void rt_send_json(struct gw_conn *c, json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!text)
		return;
	size_t n = strlen(text);
	struct gw_msg *m = gw_msg_new(n);
	if (m) {
		memcpy(gw_msg_payload(m), text, n + 1);
		rt_queue_msg(c, m);
		gw_msg_unref(m);
	}
	free(text);
}

/* Closes the connection once everything queued so far has been written. */
void rt_close_after_flush(struct gw_conn *c, enum lws_close_status status, const char *reason)
{
	if (c->close_pending)
		return;
	c->close_pending = 1;
	c->state = RT_CLOSING;
	c->close_status = status;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	/* A peer that stops reading would keep us waiting for the flush forever. */
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
	lws_callback_on_writable(c->wsi);
}

void rt_drop_outbound(struct gw_conn *c)
{
	while (c->out_head) {
		struct outbound *o = c->out_head;
		c->out_head = o->next;
		gw_msg_unref(o->msg);
		free(o);
	}
	c->out_tail = NULL;
	c->out_bytes = 0;
}

/* The connection let more than limits.ws_max_pending_bytes pile up: drop
 * what is queued, say why, close. The client recovers by reconnecting. */
void rt_slow_consumer(struct gw_conn *c)
{
	gw_stat_inc(GW_STAT_ws_slow_consumer_closed);
	gw_log(GW_LOG_WARN, "realtime: closing slow consumer conn=%llu user=%s (%zu bytes queued)",
	       (unsigned long long)c->id, GW_Q(c->user), c->out_bytes);
	rt_drop_outbound(c);
	rt_close_after_flush(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "slow_consumer");
	rt_send_json(c, json_pack("{s:s, s:s, s:s}", "op", "error", "code", "slow_consumer", "message",
				  "this connection fell too far behind and is closed"));
}

void rt_send_error(struct gw_conn *c, const char *code, const char *message, int close)
{
	gw_stat_inc(GW_STAT_ws_frames_refused);
	rt_send_json(c, json_pack("{s:s, s:s, s:s}", "op", "error", "code", code, "message", message));
	if (close)
		rt_close_after_flush(c, LWS_CLOSE_STATUS_POLICY_VIOLATION, code);
}

/* Replies (pongs, acknowledgements, errors) are made by the client's own
 * frames: a client that sends but does not read would grow its queue without
 * end. Once the queue holds half the budget we stop reading from it (lws
 * keeps the rest of the current read and stops polling the socket, so TCP
 * pushes back on the sender) and start again when the queue is down to a
 * quarter. Notifications keep the other half; past the whole budget the
 * connection is a slow consumer. */
void rt_rx_throttle(struct gw_conn *c)
{
	size_t budget = (size_t)c->app->cfg.ws_max_pending_bytes;
	if (!c->rx_paused && c->out_bytes > budget / 2 && c->state != RT_CLOSING) {
		c->rx_paused = 1;
		gw_stat_inc(GW_STAT_ws_rx_paused);
		lws_rx_flow_control(c->wsi, 0);
	} else if (c->rx_paused && (c->out_bytes <= budget / 4 || c->state == RT_CLOSING)) {
		/* Closing: read again so the peer's close frame is seen. */
		c->rx_paused = 0;
		lws_rx_flow_control(c->wsi, 1);
	}
}

static int sub_wants(struct gw_conn *c, const char *ctx, uint64_t seq)
{
	int matched = 0;
	for (size_t i = 0; i < c->nsubs; i++)
		if (gw_store_pattern_match(c->subs[i].ctx, ctx)) {
			matched = 1;
			if (!seq || seq > c->subs[i].skip)
				return 1;
		}
	if (matched)
		gw_stat_inc(GW_STAT_store_live_skipped);
	return 0;
}

static void deliver_now(struct gw_conn *c, struct gw_msg *msg, const char *ctx)
{
	if (!sub_wants(c, ctx, msg->seq))
		return;
	if (rt_queue_msg(c, msg))
		gw_stat_inc(GW_STAT_notifications_delivered);
	else
		gw_stat_inc(GW_STAT_notifications_dropped);
}

static int defer_held(struct gw_conn *c, struct gw_msg *msg);

/* Sends the live frames held during a resume, in order. The replay may have
 * queued more since they were held: those that no longer fit the budget are
 * given up and read again from the store (defer_held), not a slow consumer. */
void rt_flush_held(struct gw_conn *c)
{
	while (c->held_head) {
		struct held *h = c->held_head;
		if (c->state == RT_READY &&
		    c->out_bytes + rt_frame_cost(h->msg) > (size_t)c->app->cfg.ws_max_pending_bytes &&
		    defer_held(c, NULL))
			return;
		c->held_head = h->next;
		c->held_bytes -= rt_frame_cost(h->msg);
		if (c->state == RT_READY)
			deliver_now(c, h->msg, h->ctx);
		gw_msg_unref(h->msg);
		free(h);
	}
	c->held_tail = NULL;
	c->held_bytes = 0;
	c->dropped_max = 0; /* every resume is out: what was given up has been read again */
}

/* The live frames held during a resume (and msg, if any) would take more than
 * limits.ws_max_pending_bytes. The recorder stores every notification before
 * it is delivered live (recorder.h), so each of them can be read again: they
 * are given up, and the store is read past the highest of them before live
 * frames flow again. Replaying subscriptions page on until a read saw
 * dropped_max (since_done); live ones are put back into a silent replay from
 * before the first frame given up (what they had already been sent is below
 * it, or at most their skip). A reading client is never made a slow consumer
 * by a replay (docs/protocol.md). Returns 0 when this cannot be done (a frame
 * without seq): the caller then closes the connection as a slow consumer. */
static int defer_held(struct gw_conn *c, struct gw_msg *msg)
{
	uint64_t first = msg ? msg->seq : UINT64_MAX, last = msg ? msg->seq : 0;
	if (!first)
		return 0;
	for (struct held *h = c->held_head; h; h = h->next) {
		if (!h->msg->seq)
			return 0;
		if (h->msg->seq < first)
			first = h->msg->seq;
		if (h->msg->seq > last)
			last = h->msg->seq;
	}
	if (!last)
		return 0;
	for (size_t i = 0; i < c->nsubs; i++) {
		struct sub *sb = &c->subs[i];
		if (sb->replaying)
			continue;
		sb->after = sb->skip > first - 1 ? sb->skip : first - 1;
		sb->replaying = 1;
		sb->silent = 1;
		sb->gen = ++c->next_gen;
		sb->next_due = 1; /* asked for by next_pages once the queue has drained */
		c->replaying++;
	}
	while (c->held_head) {
		struct held *h = c->held_head;
		c->held_head = h->next;
		gw_msg_unref(h->msg);
		free(h);
		gw_stat_inc(GW_STAT_store_live_deferred);
	}
	c->held_tail = NULL;
	c->held_bytes = 0;
	if (msg)
		gw_stat_inc(GW_STAT_store_live_deferred);
	if (last > c->dropped_max)
		c->dropped_max = last;
	c->drops++;
	lws_callback_on_writable(c->wsi);
	return 1;
}

void gw_conn_deliver(struct gw_conn *c, struct gw_msg *msg, const char *ctx)
{
	if (c->state != RT_READY) {
		/* Subscribed, but closing: say so in the counters rather than let
		 * the broker's count pass it as delivered. */
		gw_stat_inc(GW_STAT_notifications_dropped);
		return;
	}
	/* A user's live frames come in increasing seq: one at or below the last
	 * reached this connection through another of its subscriptions. */
	if (msg->seq) {
		if (msg->seq <= c->last_live_seq)
			return;
		c->last_live_seq = msg->seq;
	}
	if (!c->replaying) {
		deliver_now(c, msg, ctx);
		return;
	}
	/* A resume is under way: held, counted against the same byte budget;
	 * beyond it, given up and read again from the store (defer_held). */
	size_t cl = strlen(ctx);
	if (c->out_bytes + c->held_bytes + rt_frame_cost(msg) > (size_t)c->app->cfg.ws_max_pending_bytes) {
		if (!defer_held(c, msg)) {
			rt_slow_consumer(c);
			gw_stat_inc(GW_STAT_notifications_dropped);
		}
		return;
	}
	struct held *h = malloc(sizeof(*h) + cl + 1);
	if (!h) {
		gw_stat_inc(GW_STAT_notifications_dropped);
		return;
	}
	h->next = NULL;
	h->msg = gw_msg_ref(msg);
	memcpy(h->ctx, ctx, cl + 1);
	if (c->held_tail)
		c->held_tail->next = h;
	else
		c->held_head = h;
	c->held_tail = h;
	c->held_bytes += rt_frame_cost(msg);
}

ssize_t rt_find_sub(struct gw_conn *c, const char *ctx)
{
	for (size_t i = 0; i < c->nsubs; i++)
		if (!strcmp(c->subs[i].ctx, ctx))
			return (ssize_t)i;
	return -1;
}

void rt_send_subscribed(struct gw_conn *c, const char *ctx, int has_since, int recovered)
{
	if (!has_since) {
		rt_send_json(c, json_pack("{s:s, s:s}", "op", "subscribed", "ctx", ctx));
		return;
	}
	if (recovered)
		gw_stat_inc(GW_STAT_store_resumes);
	else
		gw_stat_inc(GW_STAT_store_resumes_refused);
	rt_send_json(c, json_pack("{s:s, s:s, s:b}", "op", "subscribed", "ctx", ctx, "recovered", recovered));
}
