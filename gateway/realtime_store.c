/* realtime_store.c - the websocket ops that go through the store
 * (realtime_conn.h): subscribe with since (resume pages of RESUME_PAGE
 * notifications, the next one once the queue has drained to a quarter, live
 * frames held meanwhile), inbox, mark and mark_all (every tab of the user
 * hears of a change), and the store's answers (gw_realtime_store_done).
 * The store runs on workers; requests and answers go through store_jobs.h.
 *
 * Ownership: a request belongs to the store job until its answer comes back
 * through the outbox; an answer for a connection that has gone is dropped.
 * Threads: service thread only.
 */
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "broker_redis.h"
#include "gw/b64url.h"
#include "realtime.h"
#include "realtime_conn.h"
#include "stats.h"
#include "store_jobs.h"

static int copy_allowed(struct gw_conn *c, struct gw_store_req *r);
static int push_store_req(struct gw_conn *c, struct gw_store_req *r);

/* A stored notification as the frame it was first sent as, byte for byte. */
static struct gw_msg *stored_frame(const struct gw_store_item *it)
{
	static const char head[] = "{\"op\":\"notification\",\"claims\":\"";
	static const char mid[] = "\",\"proof\":";
	size_t cap = sizeof(head) + gw_b64url_encoded_len(it->claims_len) + sizeof(mid) + it->proof_len + 2;
	struct gw_msg *m = gw_msg_new(cap);
	if (!m)
		return NULL;
	char *o = (char *)gw_msg_payload(m), *p = o;
	memcpy(o, head, sizeof(head) - 1);
	o += sizeof(head) - 1;
	o += gw_b64url_encode((const unsigned char *)it->claims, it->claims_len, o);
	memcpy(o, mid, sizeof(mid) - 1);
	o += sizeof(mid) - 1;
	memcpy(o, it->proof, it->proof_len);
	o += it->proof_len;
	*o++ = '}';
	*o = '\0';
	m->len = (size_t)(o - p);
	m->seq = it->seq;
	return m;
}

/* Resume pages due once the queue is down to a quarter of its budget. */
void rt_next_pages(struct gw_conn *c)
{
	if (c->state != RT_READY || c->out_bytes > (size_t)c->app->cfg.ws_max_pending_bytes / 4)
		return;
	for (size_t i = 0; i < c->nsubs; i++) {
		if (!c->subs[i].replaying || !c->subs[i].next_due)
			continue;
		if (rt_request_page(c, i)) {
			if (c->subs[i].silent) {
				/* Live frames were given up for it: the old answer, the
				 * client resumes on reconnect. */
				rt_slow_consumer(c);
				return;
			}
			/* Cannot read on: what was replayed stands, the rest is the
			 * inbox's (recovered:false); never a silent partial resume. */
			c->subs[i].replaying = 0;
			c->subs[i].skip = 0;
			c->replaying--;
			rt_send_error(c, "busy",
				      "the gateway cannot read the history right now; read the inbox", 0);
			rt_send_subscribed(c, c->subs[i].ctx, 1, 0);
		}
	}
	if (!c->replaying)
		rt_flush_held(c);
}

static void since_done(struct gw_conn *c, struct gw_store_req *r)
{
	ssize_t at = rt_find_sub(c, r->ctx);
	if (at < 0 || !c->subs[at].replaying || c->subs[at].gen != r->gen)
		return; /* unsubscribed meanwhile (perhaps subscribed again: another resume) */
	struct sub *sb = &c->subs[at];
	int ok = r->rc == GW_STORE_OK && r->page.recovered;
	size_t half = (size_t)c->app->cfg.ws_max_pending_bytes / 2;
	if (ok) {
		int more = r->page.more;
		for (size_t i = 0; i < r->page.count; i++) {
			struct gw_msg *m = stored_frame(&r->page.items[i]);
			if (m && c->out_bytes && c->out_bytes + rt_frame_cost(m) > half) {
				/* The rest of this page is read again once the queue drained:
				 * a replay never makes a slow consumer of a reading client. */
				gw_msg_unref(m);
				more = 1;
				break;
			}
			if (!m || !rt_queue_msg(c, m)) {
				gw_msg_unref(m);
				ok = 0; /* out of memory or the connection is being closed */
				break;
			}
			gw_msg_unref(m);
			gw_stat_inc(GW_STAT_store_replayed);
			sb->after = r->page.items[i].seq;
		}
		/* Live frames were given up while held: page on until a read
		 * asked after the last of them saw them (the recorder stores
		 * before it delivers); a read that should have and did not fails. */
		if (ok && !more && r->page.max_seq < c->dropped_max) {
			if (sb->drops == c->drops)
				ok = 0;
			else
				more = 1;
		}
		if (ok && more) {
			/* The next page once the queue has drained to a quarter of its
			 * budget: a long history never makes a slow consumer. */
			sb->next_due = 1;
			lws_callback_on_writable(c->wsi);
			return;
		}
	}
	sb->replaying = 0;
	c->replaying--;
	/* Everything of this subscription up to the store's seq at the read was
	 * in the replay (or had seq <= since.seq): not sent again live. */
	sb->skip = ok ? r->page.max_seq : 0;
	if (sb->silent) {
		sb->silent = 0;
		if (!ok) {
			/* What was given up cannot be read again: the old answer, the
			 * client resumes on reconnect. */
			rt_slow_consumer(c);
			return;
		}
		if (!c->replaying)
			rt_flush_held(c);
		return;
	}
	if (r->rc)
		rt_send_error(c, "store_unavailable",
			      "the history cannot be read right now; read the inbox later", 0);
	rt_send_subscribed(c, sb->ctx, 1, ok);
	if (!c->replaying)
		rt_flush_held(c);
}

/* An inbox item: the claims exactly as signed (base64url, like a live frame)
 * and the proof, so it verifies like one. */
static json_t *inbox_item(const struct gw_store_item *it)
{
	char *b64 = malloc(gw_b64url_encoded_len(it->claims_len) + 1);
	json_t *proof = json_loadb(it->proof, it->proof_len, 0, NULL);
	json_t *j = NULL;
	if (b64 && proof) {
		size_t n = gw_b64url_encode((const unsigned char *)it->claims, it->claims_len, b64);
		b64[n] = '\0';
		j = json_pack("{s:s, s:O, s:b}", "claims", b64, "proof", proof, "read", it->read);
	}
	free(b64);
	json_decref(proof);
	return j;
}

static void inbox_done(struct gw_conn *c, struct gw_store_req *r)
{
	if (r->rc) {
		json_t *e = json_pack("{s:s, s:s, s:s}", "op", "error", "code", "store_unavailable",
				      "message", "the inbox cannot be read right now; try again later");
		if (e && r->id)
			json_object_set(e, "id", r->id);
		rt_send_json(c, e);
		return;
	}
	json_t *items = json_array();
	for (size_t i = 0; items && i < r->page.count; i++)
		json_array_append_new(items, inbox_item(&r->page.items[i]));
	json_t *j = json_pack("{s:s, s:o, s:I, s:b}", "op", "inbox", "items", items, "unread",
			      (json_int_t)r->page.unread, "more", r->page.more);
	if (j && r->id)
		json_object_set(j, "id", r->id);
	rt_send_json(c, j);
}

static int same_patterns(const struct gw_conn *a, const struct gw_conn *b)
{
	if (a->nallowed != b->nallowed)
		return 0;
	for (size_t i = 0; i < a->nallowed; i++) {
		size_t k = 0;
		while (k < b->nallowed && strcmp(a->allowed[i], b->allowed[k]))
			k++;
		if (k == b->nallowed)
			return 0;
	}
	return 1;
}

/* Tab o hears that ids[0, n) (in contexts ctxs) changed to `read`: only the
 * ids its own token covers, with its own unread count, read on a worker
 * (unread_done); nothing when it covers none. ctxs NULL (an engine without
 * contexts): nothing, that tab reads its inbox. */
static void tell_tab_marked(struct gw_conn *o, int read, const char *const *ids, const char *const *ctxs,
			    size_t n)
{
	struct gw_store_req *q = gw_store_req_new(GW_SOP_UNREAD);
	int ok = q && (q->inst = strdup(o->installation)) && (q->user = strdup(o->user)) &&
		 !copy_allowed(o, q) && (q->ids = calloc(n ? n : 1, sizeof(char *)));
	for (size_t i = 0; ok && i < n; i++)
		if (ctxs && gw_store_visible((const char *const *)o->allowed, o->nallowed, NULL, ctxs[i]) &&
		    !(q->ids[q->nids++] = strdup(ids[i])))
			ok = 0;
	if (ok && q->nids) {
		q->read = read;
		push_store_req(o, q);
	} else {
		gw_store_req_free(q);
	}
}

/* Read state changed: every open connection of the user hears of it (each
 * only of the ids in contexts its own token covers, with its own unread
 * count); when nothing changed only the sender does, with ids []. */
static void marked_done(struct gw_app *app, struct gw_conn *c, struct gw_store_req *r)
{
	if (r->rc) {
		rt_send_error(c, "store_unavailable",
			      "the read state cannot be changed right now; try again later", 0);
		return;
	}
	int read = r->op == GW_SOP_MARK_ALL ? 1 : r->read;
	if (!r->marked.count) {
		rt_send_json(c, json_pack("{s:s, s:[], s:b, s:I}", "op", "marked", "ids", "read", read,
					  "unread", (json_int_t)r->marked.unread));
		return;
	}
	struct gw_strmap *m = &app->rt.conns_by_id;
	for (size_t b = 0; b < m->nbuckets; b++)
		for (struct gw_strmap_entry *e = m->buckets[b]; e; e = e->next) {
			struct gw_conn *o = e->value;
			if (o->state != RT_READY || !o->user || strcmp(o->user, c->user) ||
			    strcmp(o->installation, c->installation))
				continue;
			/* The sender's count is another tab's only when no ctx filter narrowed it
			 * (mark_all with ctx counts within the filter, for the sender alone). */
			if (o == c || (!r->ctx && same_patterns(o, c))) {
				json_t *ids = json_array();
				for (size_t i = 0; ids && i < r->marked.count; i++)
					json_array_append_new(ids, json_string(r->marked.ids[i]));
				rt_send_json(o,
					     json_pack("{s:s, s:o, s:b, s:I}", "op", "marked", "ids", ids,
						       "read", read, "unread", (json_int_t)r->marked.unread));
				continue;
			}
			/* Another token: its own ids and its own count. */
			tell_tab_marked(o, read, (const char *const *)r->marked.ids,
					(const char *const *)r->marked.ctxs, r->marked.count);
		}
	/* Cluster mode: the user's tabs on the other nodes (gw_realtime_remote_marked there). */
	if (app->redis_broker)
		gw_broker_redis_publish_marked(app->redis_broker, c->installation, c->user, read,
					       r->marked.ids, r->marked.ctxs, r->marked.count);
}

void gw_realtime_remote_marked(void *ud, const char *inst, const char *user, int read, const char *const *ids,
			       const char *const *ctxs, size_t n)
{
	struct gw_app *app = ud;
	struct gw_strmap *m = &app->rt.conns_by_id;
	for (size_t b = 0; b < m->nbuckets; b++)
		for (struct gw_strmap_entry *e = m->buckets[b]; e; e = e->next) {
			struct gw_conn *o = e->value;
			if (o->state != RT_READY || !o->user || strcmp(o->user, user) ||
			    strcmp(o->installation, inst))
				continue;
			tell_tab_marked(o, read, ids, ctxs, n);
		}
}

static void unread_done(struct gw_conn *c, struct gw_store_req *r)
{
	if (r->rc)
		return; /* that tab learns the count from its next inbox read */
	json_t *ids = json_array();
	for (size_t i = 0; ids && i < r->nids; i++)
		json_array_append_new(ids, json_string(r->ids[i]));
	rt_send_json(c, json_pack("{s:s, s:o, s:b, s:I}", "op", "marked", "ids", ids, "read", r->read,
				  "unread", (json_int_t)r->unread));
}

void gw_realtime_store_done(struct gw_app *app, struct gw_outbox_item *item)
{
	char key[17];
	gw_id_key(item->req_id, key);
	struct gw_conn *c = item->req_id ? gw_strmap_get(&app->rt.conns_by_id, key, 16) : NULL;
	struct gw_store_req *r = item->store_req;
	if (r && r->op == GW_SOP_PURGE) {
		app->purge_running = 0;
		if (r->rc == GW_STORE_OK) {
			gw_stat_add(GW_STAT_store_purged_expired, r->purged.expired);
			gw_stat_add(GW_STAT_store_purged_over_cap, r->purged.over_cap);
			gw_stat_add(GW_STAT_store_keys_expired, r->purged.keys);
			app->purge_more = r->purged.more;
		}
	} else if (c && r && c->state == RT_READY) {
		switch (r->op) {
		case GW_SOP_SINCE: since_done(c, r); break;
		case GW_SOP_INBOX: inbox_done(c, r); break;
		case GW_SOP_UNREAD: unread_done(c, r); break;
		case GW_SOP_MARK:
		case GW_SOP_MARK_ALL: marked_done(app, c, r); break;
		default: break;
		}
		rt_rx_throttle(c);
	}
	gw_outbox_item_free(item);
}

/* Queues a store request for this connection. 0, or -1 (busy, stopping,
 * out of memory: the request is freed). */
static int push_store_req(struct gw_conn *c, struct gw_store_req *r)
{
	struct gw_job *job = gw_job_new(GW_JOB_STORE);
	if (!job) {
		gw_store_req_free(r);
		return -1;
	}
	r->conn_id = c->id;
	job->req_id = c->id;
	job->store_req = r;
	if (gw_workq_push_verify(&c->app->workq, job)) {
		gw_job_free(job);
		return -1;
	}
	return 0;
}

/* Asks for the next resume page of subscription `at`. */
int rt_request_page(struct gw_conn *c, size_t at)
{
	struct gw_store_req *r = gw_store_req_new(GW_SOP_SINCE);
	if (!r || !(r->inst = strdup(c->installation)) || !(r->user = strdup(c->user)) ||
	    !(r->ctx = strdup(c->subs[at].ctx)) || !(r->pats = calloc(1, sizeof(char *))) ||
	    !(r->pats[0] = strdup(c->subs[at].ctx))) {
		if (r && r->pats)
			r->npats = 1;
		gw_store_req_free(r);
		return -1;
	}
	r->npats = 1;
	r->after = c->subs[at].after;
	r->limit = RESUME_PAGE;
	r->gen = c->subs[at].gen;
	c->subs[at].drops = c->drops;
	c->subs[at].next_due = 0;
	return push_store_req(c, r);
}

/* A copy of the token's patterns into r (the store filters by them). */
static int copy_allowed(struct gw_conn *c, struct gw_store_req *r)
{
	if (!c->nallowed)
		return 0;
	if (!(r->pats = calloc(c->nallowed, sizeof(char *))))
		return -1;
	for (size_t i = 0; i < c->nallowed; i++)
		if (!(r->pats[r->npats++] = strdup(c->allowed[i])))
			return -1;
	return 0;
}

/* Optional "ctx" of inbox / mark_all: a non-empty string (a pattern). */
static int opt_ctx(struct gw_conn *c, json_t *frame, const char **ctx)
{
	json_t *j = json_object_get(frame, "ctx");
	*ctx = NULL;
	if (!j)
		return 0;
	if (!json_is_string(j) || !json_string_length(j)) {
		rt_send_error(c, "bad_frame", "\"ctx\" must be a non-empty string (a context or a pattern)",
			      0);
		return -1;
	}
	*ctx = json_string_value(j);
	return 0;
}

static void store_request(struct gw_conn *c, struct gw_store_req *r, const char *ctx)
{
	if (!r || !(r->inst = strdup(c->installation)) || !(r->user = strdup(c->user)) ||
	    copy_allowed(c, r) || (ctx && !(r->ctx = strdup(ctx)))) {
		gw_store_req_free(r);
		rt_send_error(c, "internal_error", "out of memory", 0);
		return;
	}
	if (push_store_req(c, r))
		rt_send_error(c, "busy", "the gateway cannot serve this right now; try again later", 0);
}

/* {"op":"inbox","id":any,"limit":50,"before":seq,"ctx":pattern} */
void rt_op_inbox(struct gw_conn *c, json_t *frame)
{
	json_t *id = json_object_get(frame, "id"), *lim = json_object_get(frame, "limit"),
	       *before = json_object_get(frame, "before");
	const char *ctx;
	if (id && json_dumpb(id, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) > GW_WS_MAX_PING_ID_BYTES) {
		rt_send_error(c, "id_too_large", "an inbox \"id\" must be at most 128 bytes of JSON", 0);
		return;
	}
	if ((lim && !json_is_integer(lim)) ||
	    (before && (!json_is_integer(before) || json_integer_value(before) < 0))) {
		rt_send_error(c, "bad_frame",
			      "\"limit\" must be an integer (clamped to 1-200), \"before\" an integer >= 0",
			      0);
		return;
	}
	if (opt_ctx(c, frame, &ctx))
		return;
	struct gw_store_req *r = gw_store_req_new(GW_SOP_INBOX);
	if (r) {
		json_int_t l = lim ? json_integer_value(lim) : 50;
		r->limit = gw_store_clamp_limit(l < 1 ? 1 : (size_t)l);
		r->before = before ? (uint64_t)json_integer_value(before) : 0;
		r->id = json_incref(id);
	}
	store_request(c, r, ctx);
}

/* {"op":"mark","ids":[...],"read":true} and {"op":"mark_all","ctx":pattern} */
void rt_op_mark(struct gw_conn *c, json_t *frame, int all)
{
	const char *ctx = NULL;
	if (all) {
		if (!opt_ctx(c, frame, &ctx))
			store_request(c, gw_store_req_new(GW_SOP_MARK_ALL), ctx);
		return;
	}
	json_t *ids = json_object_get(frame, "ids"), *read = json_object_get(frame, "read");
	if (!json_is_array(ids) || (read && !json_is_boolean(read))) {
		rt_send_error(c, "bad_frame",
			      "\"ids\" must be an array of notification ids, \"read\" a boolean", 0);
		return;
	}
	if (json_array_size(ids) > GW_STORE_MARK_MAX_IDS) {
		rt_send_error(c, "too_many_ids", "at most 500 ids per mark", 0);
		return;
	}
	for (size_t i = 0; i < json_array_size(ids); i++)
		if (!json_is_string(json_array_get(ids, i))) {
			rt_send_error(c, "bad_frame", "\"ids\" must be an array of strings", 0);
			return;
		}
	struct gw_store_req *r = gw_store_req_new(GW_SOP_MARK);
	/* never NULL, even for []: the store reads NULL ids as "every note" */
	if (r && !(r->ids = calloc(json_array_size(ids) + 1, sizeof(char *)))) {
		gw_store_req_free(r);
		r = NULL;
	}
	for (size_t i = 0; r && i < json_array_size(ids); i++)
		if (!(r->ids[r->nids++] = strdup(json_string_value(json_array_get(ids, i))))) {
			gw_store_req_free(r);
			r = NULL;
		}
	if (r)
		r->read = read ? json_is_true(read) : 1;
	store_request(c, r, NULL);
}
