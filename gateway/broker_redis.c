/* broker_redis.c - see broker_redis.h. */
#include "broker_redis.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wsign-conversion"
#pragma GCC diagnostic ignored "-Wconversion"
#include <hiredis/adapters/libuv.h>
#pragma GCC diagnostic pop

#include <jansson.h>

#include "broker_local.h"
#include "gw/b64url.h"
#include "log.h"
#include "outbox.h"
#include "redis_conn.h"
#include "stats.h"
#include "strmap.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define SUBSCRIBE_BATCH 512
#define GW_BROKER_NODES_MAX 64 /* nodes whose rule version is tracked (more: not listed) */
#define GW_BROKER_MARKED_MAX 500 /* ids per read-state message (a mark's own bound) */
/* Frames received but not yet drained by the service thread. Past it new
 * ones are dropped and counted: their clients recover with since. */
#define INBOX_MAX_BYTES (64u << 20)

struct request {
	struct request *next;
	int subscribe; /* 1 SUBSCRIBE, 0 UNSUBSCRIBE, 2 PUBLISH payload */
	char *payload; /* PUBLISH: owned */
	uint64_t sub_id; /* SUBSCRIBE: what its confirmation names */
	size_t shard;
	char channel[64];
};

/* Broker thread: a user channel it was asked for, and where its
 * subscription stands on the shard's current subscriber connection. One
 * SUBSCRIBE or UNSUBSCRIBE of a channel is in flight at a time: hiredis
 * 0.14 forgets a channel's callback on an UNSUBSCRIBE reply, so a
 * SUBSCRIBE sent before that reply came back would never see its messages. */
struct chan {
	size_t shard;
	uint64_t sub_id; /* the service thread's SUBSCRIBE in force (0: not wanted) */
	int sent; /* SUBSCRIBE sent on the current subscriber, no UNSUBSCRIBE since */
	int confirmed; /* and Redis answered it */
	int unsub_pending; /* UNSUBSCRIBE sent, its reply not in yet */
};

/* Service thread: a user this node has subscriptions for (by channel). */
struct waiter {
	struct waiter *next;
	struct gw_conn *conn;
	char ctx[];
};
struct uent {
	size_t count; /* subscriptions (connection, ctx) of the user here */
	uint64_t sub_id; /* the SUBSCRIBE asked for when count went from 0 to 1 */
	int confirmed; /* Redis answered it: the user's feed is live */
	struct waiter *waiters; /* subscriptions answered "pending" (broker.h) */
};

struct rbroker;

struct bshard {
	struct rbroker *b;
	size_t idx;
	struct gw_redis_url url;
	redisAsyncContext *sub, *pub;
	int sub_up; /* AUTH answered, probe channel subscribed */
	int64_t connected_ms; /* when sub was made (monotonic) */
	int64_t retry_at_ms; /* 0: no reconnect pending */
	int64_t backoff_ms;
	char probe_channel[200];
	_Atomic int64_t last_probe_ms; /* written by the broker thread, read by ready() */
	_Atomic int up;
	/* Bumped each time the subscriber is made (broker thread); every item
	 * the shard queues carries the generation it came from (tag). */
	_Atomic uint64_t gen;
	/* Service thread: the generation whose items drain delivers (0: none
	 * accepted yet, then generation 1's go); items of a newer one wait in
	 * held, in order, until gw_broker_redis_accept_shard; older ones are
	 * dropped (their connections were closed before the newer was accepted). */
	uint64_t accepted;
	struct gw_outbox_item *held_head, *held_tail;
};

struct rbroker {
	struct gw_broker base;
	struct gw_broker *inner; /* service thread */
	struct gw_strmap users; /* service thread: user channel -> struct uent */
	uint64_t next_sub_id; /* service thread */
	size_t nshards;
	struct bshard *sh;
	int64_t timeout_ms, probe_ms;
	char node_id[128];
	struct gw_outbox inbox; /* broker thread -> service thread */
	_Atomic size_t inbox_bytes;
	pthread_mutex_t lock; /* requests, stopping */
	struct request *req_head, *req_tail;
	int stopping;
	_Atomic uint64_t generation;
	void (*marked)(void *ud, const char *inst, const char *user, int read, const char *const *ids,
		       const char *const *ctxs, size_t n);
	void *marked_ud;
	/* rule versions of the nodes (shard 0's gw:nodes:<db> channel), under lock */
	char nodes_channel[64];
	char version[64];
	struct node_seen {
		char node[128], version[64];
		int64_t seen_ms;
		int warned;
	} nodes[GW_BROKER_NODES_MAX];
	size_t nnodes;
	/* broker thread */
	pthread_t thread;
	uv_loop_t loop;
	uv_async_t async;
	uv_timer_t tick;
	int64_t last_tick_ms; /* broker thread: when on_tick last ran */
	struct gw_strmap chans; /* broker thread: user channel -> struct chan */
};

static int64_t now_ms(void)
{
	return gw_redis_now_ms();
}

/* The broker's inbox items reuse two fields their kinds leave unused:
 * intake_no carries the shard's subscriber generation, retry_after the
 * shard index (drain holds or drops by them). */
static void tag(struct bshard *s, struct gw_outbox_item *it)
{
	it->intake_no = atomic_load(&s->gen);
	it->retry_after = (int)s->idx;
}

/* ---- the broker thread --------------------------------------------------- */

static void connect_shard(struct bshard *s);

static void schedule_retry(struct bshard *s)
{
	unsigned r = 0;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (unsigned)now_ms();
	s->retry_at_ms = now_ms() + s->backoff_ms / 2 + (int64_t)(r % (unsigned)(s->backoff_ms / 2 + 1));
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

/* The shard's subscriber is gone: nothing is sent on it any more; channels
 * no longer wanted are forgotten, the others are sent again on the next one. */
static void reset_chans(struct bshard *s)
{
	struct gw_strmap *m = &s->b->chans;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct gw_strmap_entry *e = m->buckets[i];
		while (e) {
			struct gw_strmap_entry *next = e->next;
			struct chan *ch = e->value;
			if (ch->shard == s->idx) {
				ch->sent = ch->confirmed = ch->unsub_pending = 0;
				if (!ch->sub_id)
					free(gw_strmap_remove(m, e->key, e->key_len));
			}
			e = next;
		}
	}
}

/* Drops both connections (their disconnect callbacks clear the pointers). */
static void drop_shard(struct bshard *s)
{
	atomic_store(&s->up, 0);
	s->sub_up = 0;
	reset_chans(s);
	redisAsyncContext *sub = s->sub, *pub = s->pub;
	s->sub = s->pub = NULL;
	/* detached first: their disconnect callbacks then ignore them */
	if (sub) {
		sub->data = NULL;
		redisAsyncFree(sub);
	}
	if (pub) {
		pub->data = NULL;
		redisAsyncFree(pub);
	}
	if (!s->retry_at_ms && !s->b->stopping)
		schedule_retry(s);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	(void)status;
	struct bshard *s = ac->data;
	if (!s)
		return;
	if (ac == s->sub)
		s->sub = NULL;
	if (ac == s->pub)
		s->pub = NULL;
	if (s->b->stopping)
		return;
	gw_stat_inc(GW_STAT_redis_broker_disconnects);
	drop_shard(s);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct bshard *s = ac->data;
	if (status != REDIS_OK && s) {
		/* hiredis frees the context after this callback */
		if (ac == s->sub)
			s->sub = NULL;
		if (ac == s->pub)
			s->pub = NULL;
		if (!s->b->stopping)
			drop_shard(s);
	}
}

/* Parses a published note and queues its frame for the service thread. */
static void deliver(struct bshard *s, const char *p, size_t len)
{
	struct rbroker *b = s->b;
	unsigned long long seq;
	size_t il, ul, cl, claims_len;
	int used = 0;
	if (sscanf(p, "%llu %zu %zu %zu %zu\n%n", &seq, &il, &ul, &cl, &claims_len, &used) != 5 || !used ||
	    (size_t)used + il + ul + cl + claims_len > len) {
		gw_stat_inc(GW_STAT_redis_broker_malformed);
		return;
	}
	const char *inst = p + used, *user = inst + il, *ctx = user + ul, *claims = ctx + cl;
	const char *proof = claims + claims_len;
	size_t proof_len = len - (size_t)used - il - ul - cl - claims_len;
	static const char head[] = "{\"op\":\"notification\",\"claims\":\"";
	static const char mid[] = "\",\"proof\":";
	size_t cap = sizeof(head) + gw_b64url_encoded_len(claims_len) + sizeof(mid) + proof_len + 2;
	struct gw_msg *m = gw_msg_new(cap);
	struct gw_outbox_item *it = calloc(1, sizeof(*it));
	struct gw_delivery *d = calloc(1, sizeof(*d));
	char *ci = malloc(il + 1), *cu = malloc(ul + 1), *cc = malloc(cl + 1);
	if (!m || !it || !d || !ci || !cu || !cc || atomic_load(&b->inbox_bytes) + cap > INBOX_MAX_BYTES) {
		gw_stat_inc(GW_STAT_redis_broker_dropped);
		gw_msg_unref(m);
		free(it);
		free(d);
		free(ci);
		free(cu);
		free(cc);
		return;
	}
	char *o = (char *)gw_msg_payload(m), *start = o;
	memcpy(o, head, sizeof(head) - 1);
	o += sizeof(head) - 1;
	o += gw_b64url_encode((const unsigned char *)claims, claims_len, o);
	memcpy(o, mid, sizeof(mid) - 1);
	o += sizeof(mid) - 1;
	memcpy(o, proof, proof_len);
	o += proof_len;
	*o++ = '}';
	*o = '\0';
	m->len = (size_t)(o - start);
	memcpy(ci, inst, il);
	ci[il] = '\0';
	memcpy(cu, user, ul);
	cu[ul] = '\0';
	memcpy(cc, ctx, cl);
	cc[cl] = '\0';
	m->seq = seq; /* realtime.c's resume seam and once-per-connection check */
	*d = (struct gw_delivery){.installation = ci, .user = cu, .ctx = cc, .seq = seq, .msg = m};
	it->kind = GW_OUT_BATCH;
	it->count = 1;
	it->items = d;
	gw_stat_inc(GW_STAT_redis_broker_received);
	atomic_fetch_add(&b->inbox_bytes, m->len);
	tag(s, it);
	gw_outbox_push_take(&b->inbox, it);
}

/* A read-state change another node published: queued as a GW_OUT_ANSWER
 * item whose body is the JSON (this node's own are ignored). */
static void deliver_marked(struct bshard *s, const char *p, size_t len)
{
	struct rbroker *b = s->b;
	json_t *j = json_loadb(p, len, 0, NULL);
	const char *node = json_string_value(json_object_get(j, "node"));
	if (!j || !node) {
		json_decref(j);
		gw_stat_inc(GW_STAT_redis_broker_malformed);
		return;
	}
	int own = !strcmp(node, b->node_id);
	json_decref(j);
	if (own)
		return;
	struct gw_outbox_item *it = calloc(1, sizeof(*it));
	char *body = malloc(len + 1);
	if (!it || !body || atomic_load(&b->inbox_bytes) + len > INBOX_MAX_BYTES) {
		gw_stat_inc(GW_STAT_redis_broker_dropped);
		free(it);
		free(body);
		return;
	}
	memcpy(body, p, len);
	body[len] = '\0';
	it->kind = GW_OUT_ANSWER;
	it->body = body;
	it->body_len = len;
	atomic_fetch_add(&b->inbox_bytes, len);
	tag(s, it);
	gw_outbox_push_take(&b->inbox, it);
}

/* "<rules version> <node id>" from gw:nodes: remembered with the time;
 * a version other than this node's is logged once per node and version. */
static void node_seen(struct rbroker *b, const char *msg)
{
	char version[64] = "", node[128] = "";
	if (sscanf(msg, "%63s %127[^\n]", version, node) != 2)
		return;
	pthread_mutex_lock(&b->lock);
	struct node_seen *n = NULL;
	for (size_t i = 0; i < b->nnodes && !n; i++)
		if (!strcmp(b->nodes[i].node, node))
			n = &b->nodes[i];
	if (!n && b->nnodes < GW_BROKER_NODES_MAX) {
		n = &b->nodes[b->nnodes++];
		snprintf(n->node, sizeof(n->node), "%s", node);
	}
	int warn = 0;
	if (n) {
		if (strcmp(n->version, version))
			n->warned = 0;
		snprintf(n->version, sizeof(n->version), "%s", version);
		n->seen_ms = now_ms();
		warn = strcmp(version, b->version) && !n->warned && b->version[0];
		if (warn)
			n->warned = 1;
	}
	char own[64];
	snprintf(own, sizeof(own), "%s", b->version);
	pthread_mutex_unlock(&b->lock);
	if (warn)
		gw_log(GW_LOG_WARN,
		       "cluster: node %s runs rules version %s, this node %s: the nodes' rule files differ",
		       node, version, own);
}

static void send_channels(struct bshard *s, int subscribe, const char **chans, size_t n);

/* Tells the service thread that Redis has the subscription to channel asked
 * for as sub_id: queued behind every message received before, and before
 * any of that channel's. */
static void confirm(struct bshard *s, const char *channel, uint64_t sub_id)
{
	struct rbroker *b = s->b;
	struct gw_outbox_item *it = calloc(1, sizeof(*it));
	char *body = it ? strdup(channel) : NULL;
	if (!body) {
		/* the subscription is answered busy after its deadline (realtime.c) */
		free(it);
		gw_stat_inc(GW_STAT_redis_broker_dropped);
		return;
	}
	it->kind = GW_OUT_ANSWER;
	it->status = 1; /* a confirmation; 0: a read-state change */
	it->req_id = sub_id;
	it->body = body;
	it->body_len = strlen(body);
	tag(s, it);
	gw_outbox_push_take(&b->inbox, it);
}

/* A SUBSCRIBE or UNSUBSCRIBE reply for one channel on s's subscriber. */
static void sub_state(struct bshard *s, int subscribed, const char *channel)
{
	struct rbroker *b = s->b;
	struct chan *ch = gw_strmap_get(&b->chans, channel, strlen(channel));
	if (!ch || ch->shard != s->idx)
		return; /* the probe and nodes channels */
	if (subscribed) {
		if (ch->sent && ch->sub_id && !ch->unsub_pending && !ch->confirmed) {
			ch->confirmed = 1;
			confirm(s, channel, ch->sub_id);
		}
		return;
	}
	if (!ch->unsub_pending)
		return;
	ch->unsub_pending = 0;
	if (!ch->sub_id) {
		free(gw_strmap_remove(&b->chans, channel, strlen(channel)));
		return;
	}
	/* wanted again meanwhile: its SUBSCRIBE waited for this reply */
	const char *one[1] = {channel};
	ch->sent = 1;
	send_channels(s, 1, one, 1);
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)priv;
	struct bshard *s = ac->data;
	redisReply *r = reply;
	if (!s || !r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING)
		return;
	const char *kind = r->element[0]->str;
	if (ac == s->sub && r->element[1]->type == REDIS_REPLY_STRING &&
	    (!strcmp(kind, "subscribe") || !strcmp(kind, "unsubscribe"))) {
		sub_state(s, kind[0] == 's', r->element[1]->str);
		return;
	}
	if (!strcmp(kind, "message") && r->element[1]->type == REDIS_REPLY_STRING &&
	    r->element[2]->type == REDIS_REPLY_STRING) {
		if (!strcmp(r->element[1]->str, s->probe_channel)) {
			atomic_store(&s->last_probe_ms, now_ms());
			if (!s->sub_up) {
				s->sub_up = 1;
				s->backoff_ms = BACKOFF_MIN_MS;
				atomic_store(&s->up, 1);
			}
			return;
		}
		if (!strcmp(r->element[1]->str, s->b->nodes_channel)) {
			node_seen(s->b, r->element[2]->str);
			return;
		}
		if (r->element[2]->str[0] == 'M')
			deliver_marked(s, r->element[2]->str + 1, r->element[2]->len - 1);
		else
			deliver(s, r->element[2]->str, r->element[2]->len);
	}
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)priv;
	struct bshard *s = ac->data;
	redisReply *r = reply;
	if (s && r && r->type == REDIS_REPLY_ERROR) {
		gw_stat_inc(GW_STAT_redis_broker_disconnects);
		drop_shard(s);
	}
}

static void send_channels(struct bshard *s, int subscribe, const char **chans, size_t n)
{
	if (!n || !s->sub)
		return;
	const char *argv[SUBSCRIBE_BATCH + 1];
	argv[0] = subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE";
	for (size_t i = 0; i < n; i++)
		argv[i + 1] = chans[i];
	redisAsyncCommandArgv(s->sub, on_sub_reply, NULL, (int)n + 1, argv, NULL);
}

static redisAsyncContext *open_async(struct bshard *s)
{
	redisAsyncContext *ac = redisAsyncConnect(s->url.host, s->url.port);
	if (!ac)
		return NULL;
	if (ac->err) {
		redisAsyncFree(ac);
		return NULL;
	}
	ac->data = s;
	if (redisLibuvAttach(ac, &s->b->loop) != REDIS_OK) {
		redisAsyncFree(ac);
		return NULL;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	if (s->url.password[0]) {
		if (s->url.user[0]) {
			const char *argv[] = {"AUTH", s->url.user, s->url.password};
			redisAsyncCommandArgv(ac, on_auth, NULL, 3, argv, NULL);
		} else {
			const char *argv[] = {"AUTH", s->url.password};
			redisAsyncCommandArgv(ac, on_auth, NULL, 2, argv, NULL);
		}
	}
	return ac;
}

static void connect_shard(struct bshard *s)
{
	s->retry_at_ms = 0;
	s->sub = open_async(s);
	s->pub = s->sub ? open_async(s) : NULL;
	if (!s->sub || !s->pub) {
		drop_shard(s);
		return;
	}
	s->connected_ms = now_ms();
	if (atomic_load(&s->last_probe_ms))
		gw_stat_inc(GW_STAT_redis_broker_reconnects);
	atomic_fetch_add(&s->gen, 1);
	atomic_fetch_add(&s->b->generation, 1);
	/* the probe channel, then every channel wanted on this shard */
	const char *batch[SUBSCRIBE_BATCH];
	size_t n = 0;
	batch[n++] = s->probe_channel;
	if (s->idx == 0)
		batch[n++] = s->b->nodes_channel;
	struct gw_strmap *w = &s->b->chans;
	for (size_t i = 0; i < w->nbuckets; i++)
		for (struct gw_strmap_entry *e = w->buckets[i]; e; e = e->next) {
			struct chan *ch = e->value;
			if (ch->shard != s->idx || !ch->sub_id)
				continue;
			ch->sent = 1;
			batch[n++] = e->key;
			if (n == SUBSCRIBE_BATCH) {
				send_channels(s, 1, batch, n);
				n = 0;
			}
		}
	send_channels(s, 1, batch, n);
}

static void on_probe_published(redisAsyncContext *ac, void *reply, void *priv)
{
	(void)ac;
	(void)reply;
	(void)priv;
}

/* Every probe interval: reconnect what is due, drop what is silent, probe. */
static void on_tick(uv_timer_t *t)
{
	struct rbroker *b = t->data;
	int64_t now = now_ms();
	/* A tick well past its time: this thread (or the whole process) was
	 * stalled, and libuv runs due timers before it reads the sockets, so
	 * probes that came back meanwhile are still unread. Judging now would
	 * drop healthy subscribers (and 1012 every tab of the node: found by
	 * the failover black-box test under ASan on a loaded machine); the
	 * next tick, with the sockets read, judges. */
	int stalled = b->last_tick_ms && now - b->last_tick_ms > b->probe_ms + b->probe_ms / 2;
	b->last_tick_ms = now;
	if (stalled)
		gw_stat_inc(GW_STAT_redis_broker_late_ticks);
	for (size_t i = 0; i < b->nshards; i++) {
		struct bshard *s = &b->sh[i];
		if (!s->sub && !s->pub) {
			if (!s->retry_at_ms)
				schedule_retry(s);
			if (now >= s->retry_at_ms)
				connect_shard(s);
			continue;
		}
		int64_t since = s->sub_up ? atomic_load(&s->last_probe_ms) : s->connected_ms;
		if (!stalled && now - since > 2 * b->probe_ms + b->timeout_ms) {
			gw_stat_inc(GW_STAT_redis_broker_probe_failures);
			drop_shard(s);
			continue;
		}
		if (s->pub) {
			char ts[24];
			snprintf(ts, sizeof(ts), "%" PRId64, now);
			const char *argv[] = {"PUBLISH", s->probe_channel, ts};
			redisAsyncCommandArgv(s->pub, on_probe_published, NULL, 3, argv, NULL);
			if (i == 0) {
				char vmsg[256];
				pthread_mutex_lock(&b->lock);
				snprintf(vmsg, sizeof(vmsg), "%s %s", b->version, b->node_id);
				pthread_mutex_unlock(&b->lock);
				const char *av[] = {"PUBLISH", b->nodes_channel, vmsg};
				redisAsyncCommandArgv(s->pub, on_probe_published, NULL, 3, av, NULL);
			}
		}
	}
}

static void close_cb(uv_handle_t *h)
{
	(void)h;
}

static void on_async(uv_async_t *a)
{
	struct rbroker *b = a->data;
	pthread_mutex_lock(&b->lock);
	struct request *r = b->req_head;
	b->req_head = b->req_tail = NULL;
	int stopping = b->stopping;
	pthread_mutex_unlock(&b->lock);
	while (r) {
		struct request *next = r->next;
		struct bshard *s = &b->sh[r->shard];
		size_t len = strlen(r->channel);
		const char *chan[1] = {r->channel};
		if (r->subscribe == 2) {
			if (s->pub) {
				const char *argv[] = {"PUBLISH", r->channel, r->payload};
				redisAsyncCommandArgv(s->pub, on_probe_published, NULL, 3, argv, NULL);
			} else {
				gw_stat_inc(GW_STAT_redis_broker_dropped);
			}
			free(r->payload);
		} else if (r->subscribe) {
			struct gw_strmap_entry *e = gw_strmap_upsert(&b->chans, r->channel, len, NULL);
			if (e && !e->value && !(e->value = calloc(1, sizeof(struct chan)))) {
				gw_strmap_remove(&b->chans, r->channel, len);
				e = NULL;
			}
			if (!e) {
				/* the subscription is answered busy after its deadline (realtime.c) */
				gw_stat_inc(GW_STAT_redis_broker_dropped);
			} else {
				struct chan *ch = e->value;
				ch->shard = r->shard;
				ch->sub_id = r->sub_id;
				if (ch->confirmed) {
					confirm(s, r->channel, ch->sub_id); /* live all along */
				} else if (s->sub && !ch->sent && !ch->unsub_pending) {
					ch->sent = 1;
					send_channels(s, 1, chan, 1);
				}
			}
		} else {
			struct chan *ch = gw_strmap_get(&b->chans, r->channel, len);
			if (ch) {
				ch->sub_id = 0;
				if (ch->sent && s->sub) {
					ch->sent = ch->confirmed = 0;
					ch->unsub_pending = 1;
					send_channels(s, 0, chan, 1);
				} else if (!ch->unsub_pending) {
					free(gw_strmap_remove(&b->chans, r->channel, len));
				}
			}
		}
		free(r);
		r = next;
	}
	if (stopping) {
		for (size_t i = 0; i < b->nshards; i++)
			drop_shard(&b->sh[i]);
		uv_timer_stop(&b->tick);
		uv_close((uv_handle_t *)&b->tick, close_cb);
		uv_close((uv_handle_t *)&b->async, close_cb);
	}
}

static void *broker_thread(void *p)
{
	struct rbroker *b = p;
	for (size_t i = 0; i < b->nshards; i++)
		connect_shard(&b->sh[i]);
	uv_run(&b->loop, UV_RUN_DEFAULT);
	return NULL;
}

/* ---- the service thread -------------------------------------------------- */

static int queue_request(struct rbroker *b, int subscribe, const char *inst, const char *user, char *payload,
			 uint64_t sub_id)
{
	struct request *r = calloc(1, sizeof(*r));
	if (!r) {
		free(payload);
		return -1;
	}
	r->subscribe = subscribe;
	r->payload = payload;
	r->sub_id = sub_id;
	r->shard = gw_redis_shard_of(inst, user, b->nshards);
	gw_redis_user_channel(inst, user, b->sh[r->shard].url.db, r->channel);
	pthread_mutex_lock(&b->lock);
	if (b->req_tail)
		b->req_tail->next = r;
	else
		b->req_head = r;
	b->req_tail = r;
	pthread_mutex_unlock(&b->lock);
	uv_async_send(&b->async);
	return 0;
}

static void user_channel(struct rbroker *b, const char *inst, const char *user, char out[64])
{
	gw_redis_user_channel(inst, user, b->sh[gw_redis_shard_of(inst, user, b->nshards)].url.db, out);
}

static void uent_free(void *p)
{
	struct uent *u = p;
	while (u && u->waiters) {
		struct waiter *w = u->waiters;
		u->waiters = w->next;
		free(w);
	}
	free(u);
}

static size_t r_publish(struct gw_broker *gb, const char *inst, const char *user, const char *ctx,
			struct gw_msg *msg)
{
	/* Published by the store's record script; delivered by drain. */
	(void)gb;
	(void)inst;
	(void)user;
	(void)ctx;
	(void)msg;
	return 0;
}

/* Pending (1) until Redis has this node's SUBSCRIBE of the user's channel
 * (drain then calls gw_conn_subscribed): only then is every notification
 * recorded from then on sure to come here, so only then may a resume read
 * the store or the client be told "subscribed" (docs/cluster.md). */
static int r_subscribe(struct gw_broker *gb, const char *inst, const char *user, const char *ctx,
		       struct gw_conn *conn)
{
	struct rbroker *b = (struct rbroker *)gb;
	size_t before = b->inner->ops->subscription_count(b->inner);
	if (b->inner->ops->subscribe(b->inner, inst, user, ctx, conn))
		return -1;
	if (b->inner->ops->subscription_count(b->inner) == before)
		return 0; /* already subscribed */
	char ch[64];
	user_channel(b, inst, user, ch);
	size_t len = strlen(ch), cl = strlen(ctx);
	struct gw_strmap_entry *e = gw_strmap_upsert(&b->users, ch, len, NULL);
	struct uent *u = e ? e->value : NULL;
	if (e && !u && !(u = e->value = calloc(1, sizeof(*u))))
		gw_strmap_remove(&b->users, ch, len);
	struct waiter *w = u && !u->confirmed ? malloc(sizeof(*w) + cl + 1) : NULL;
	if (!u || (!u->confirmed && !w) ||
	    (!u->count && queue_request(b, 1, inst, user, NULL, u->sub_id = ++b->next_sub_id))) {
		free(w);
		if (u && !u->count)
			uent_free(gw_strmap_remove(&b->users, ch, len));
		b->inner->ops->unsubscribe(b->inner, inst, user, ctx, conn);
		return -1;
	}
	u->count++;
	if (u->confirmed)
		return 0;
	w->conn = conn;
	memcpy(w->ctx, ctx, cl + 1);
	w->next = u->waiters;
	u->waiters = w;
	return 1;
}

static void r_unsubscribe(struct gw_broker *gb, const char *inst, const char *user, const char *ctx,
			  struct gw_conn *conn)
{
	struct rbroker *b = (struct rbroker *)gb;
	size_t before = b->inner->ops->subscription_count(b->inner);
	b->inner->ops->unsubscribe(b->inner, inst, user, ctx, conn);
	if (b->inner->ops->subscription_count(b->inner) == before)
		return;
	char ch[64];
	user_channel(b, inst, user, ch);
	size_t len = strlen(ch);
	struct uent *u = gw_strmap_get(&b->users, ch, len);
	if (!u)
		return;
	for (struct waiter **pw = &u->waiters; *pw; pw = &(*pw)->next)
		if ((*pw)->conn == conn && !strcmp((*pw)->ctx, ctx)) {
			struct waiter *w = *pw;
			*pw = w->next;
			free(w);
			break;
		}
	if (u->count <= 1) {
		uent_free(gw_strmap_remove(&b->users, ch, len));
		/* out of memory here only leaves a subscription Redis keeps sending */
		queue_request(b, 0, inst, user, NULL, 0);
	} else {
		u->count--;
	}
}

static size_t r_count(struct gw_broker *gb)
{
	struct rbroker *b = (struct rbroker *)gb;
	return b->inner->ops->subscription_count(b->inner);
}

/* {"node","i","u","r","ids":[…],"ctxs":[…]} to the marked callback. */
static void remote_marked(struct rbroker *b, const char *text, size_t len)
{
	json_t *j = json_loadb(text, len, 0, NULL);
	const char *inst = json_string_value(json_object_get(j, "i"));
	const char *user = json_string_value(json_object_get(j, "u"));
	json_t *ids = json_object_get(j, "ids"), *ctxs = json_object_get(j, "ctxs");
	size_t n = json_array_size(ids);
	if (!inst || !user || !n || n > GW_BROKER_MARKED_MAX || json_array_size(ctxs) != n || !b->marked) {
		json_decref(j);
		return;
	}
	const char *iv[GW_BROKER_MARKED_MAX], *cv[GW_BROKER_MARKED_MAX];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		iv[k] = json_string_value(json_array_get(ids, i));
		cv[k] = json_string_value(json_array_get(ctxs, i));
		k += iv[k] && cv[k];
	}
	if (k)
		b->marked(b->marked_ud, inst, user, json_is_true(json_object_get(j, "r")), iv, cv, k);
	json_decref(j);
}

void gw_broker_redis_publish_marked(struct gw_broker *gb, const char *inst, const char *user, int read,
				    char *const *ids, char *const *ctxs, size_t n)
{
	struct rbroker *b = (struct rbroker *)gb;
	if (!n || n > GW_BROKER_MARKED_MAX || !ctxs)
		return;
	json_t *ja = json_array(), *jc = json_array();
	for (size_t i = 0; ja && jc && i < n; i++) {
		json_array_append_new(ja, json_string(ids[i]));
		json_array_append_new(jc, json_string(ctxs[i]));
	}
	json_t *j = json_pack("{s:s, s:s, s:s, s:b, s:o, s:o}", "node", b->node_id, "i", inst, "u", user, "r",
			      read, "ids", ja, "ctxs", jc);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	size_t tl = text ? strlen(text) : 0;
	char *payload = text ? malloc(tl + 2) : NULL;
	if (payload) {
		payload[0] = 'M';
		memcpy(payload + 1, text, tl + 1);
	}
	free(text);
	if (!payload || queue_request(b, 2, inst, user, payload, 0))
		gw_stat_inc(GW_STAT_redis_broker_dropped);
}

/* Redis has the SUBSCRIBE asked for as sub_id: the user's pending
 * subscriptions are live (an older SUBSCRIBE's answer is not this one's). */
static void confirmed(struct rbroker *b, const char *channel, uint64_t sub_id)
{
	struct uent *u = gw_strmap_get(&b->users, channel, strlen(channel));
	if (!u || u->sub_id != sub_id || u->confirmed)
		return;
	u->confirmed = 1;
	struct waiter *w = u->waiters;
	u->waiters = NULL;
	/* Detached first: a callback may unsubscribe (and free u). Oldest first. */
	struct waiter *rev = NULL;
	while (w) {
		struct waiter *next = w->next;
		w->next = rev;
		rev = w;
		w = next;
	}
	while (rev) {
		struct waiter *next = rev->next;
		gw_conn_subscribed(rev->conn, rev->ctx);
		free(rev);
		rev = next;
	}
}

/* Bytes of the inbox budget an item holds. */
static size_t item_bytes(const struct gw_outbox_item *it)
{
	size_t n = it->kind == GW_OUT_ANSWER && it->status != 1 ? it->body_len : 0;
	for (size_t i = 0; i < it->count; i++)
		n += it->items[i].msg->len;
	return n;
}

/* One inbox item of an accepted generation to its connections. */
static size_t deliver_item(struct rbroker *b, struct gw_outbox_item *it)
{
	size_t n = 0;
	if (it->kind == GW_OUT_ANSWER && it->status == 1)
		confirmed(b, it->body, it->req_id);
	else if (it->kind == GW_OUT_ANSWER)
		remote_marked(b, it->body, it->body_len);
	for (size_t i = 0; i < it->count; i++) {
		struct gw_delivery *d = &it->items[i];
		n += b->inner->ops->publish(b->inner, d->installation, d->user, d->ctx, d->msg);
	}
	return n;
}

/* An item of shard s: delivered if its generation is the accepted one,
 * held (appended, so in order) if newer, dropped if older. */
static size_t route_item(struct rbroker *b, struct bshard *s, struct gw_outbox_item *it)
{
	uint64_t accepted = s->accepted ? s->accepted : 1;
	it->next = NULL;
	if (it->intake_no > accepted) {
		if (s->held_tail)
			s->held_tail->next = it;
		else
			s->held_head = it;
		s->held_tail = it;
		return 0;
	}
	size_t n = it->intake_no == accepted ? deliver_item(b, it) : 0;
	atomic_fetch_sub(&b->inbox_bytes, item_bytes(it));
	gw_outbox_item_free(it);
	return n;
}

size_t gw_broker_redis_drain(struct gw_broker *gb)
{
	struct rbroker *b = (struct rbroker *)gb;
	size_t n = 0;
	/* what was held first: a shard accepted since may release it */
	for (size_t i = 0; i < b->nshards; i++) {
		struct bshard *s = &b->sh[i];
		uint64_t accepted = s->accepted ? s->accepted : 1;
		if (!s->held_head || s->held_head->intake_no > accepted)
			continue;
		struct gw_outbox_item *it = s->held_head;
		s->held_head = s->held_tail = NULL;
		while (it) {
			struct gw_outbox_item *next = it->next;
			n += route_item(b, s, it);
			it = next;
		}
	}
	struct gw_outbox_item *it = gw_outbox_take_all(&b->inbox);
	while (it) {
		struct gw_outbox_item *next = it->next;
		size_t si = (size_t)it->retry_after;
		n += route_item(b, &b->sh[si < b->nshards ? si : 0], it);
		it = next;
	}
	return n;
}

size_t gw_broker_redis_nshards(struct gw_broker *gb)
{
	return ((struct rbroker *)gb)->nshards;
}

uint64_t gw_broker_redis_shard_generation(struct gw_broker *gb, size_t shard)
{
	return atomic_load(&((struct rbroker *)gb)->sh[shard].gen);
}

uint64_t gw_broker_redis_shard_accepted(struct gw_broker *gb, size_t shard)
{
	return ((struct rbroker *)gb)->sh[shard].accepted;
}

void gw_broker_redis_accept_shard(struct gw_broker *gb, size_t shard, uint64_t gen)
{
	((struct rbroker *)gb)->sh[shard].accepted = gen;
}

/* One shard's subscriber is up and its probe came back in time. */
static int shard_ready(struct rbroker *b, size_t i, int64_t now, int64_t *age_out)
{
	int64_t last = atomic_load(&b->sh[i].last_probe_ms);
	int64_t age = last ? now - last : INT64_MAX;
	if (age_out)
		*age_out = age;
	return atomic_load(&b->sh[i].up) && age <= 2 * b->probe_ms + b->timeout_ms;
}

int gw_broker_redis_shard_ready(struct gw_broker *gb, size_t shard)
{
	return shard_ready((struct rbroker *)gb, shard, now_ms(), NULL);
}

int gw_broker_redis_ready(struct gw_broker *gb, int64_t *oldest_ms)
{
	struct rbroker *b = (struct rbroker *)gb;
	int64_t now = now_ms(), oldest = 0;
	int ready = 1;
	for (size_t i = 0; i < b->nshards; i++) {
		int64_t age;
		if (!shard_ready(b, i, now, &age))
			ready = 0;
		if (age > oldest)
			oldest = age;
	}
	if (oldest_ms)
		*oldest_ms = oldest;
	return ready;
}

void gw_broker_redis_set_rules_version(struct gw_broker *gb, const char *version)
{
	struct rbroker *b = (struct rbroker *)gb;
	pthread_mutex_lock(&b->lock);
	snprintf(b->version, sizeof(b->version), "%s", version ? version : "");
	for (size_t i = 0; i < b->nnodes; i++)
		b->nodes[i].warned = 0;
	pthread_mutex_unlock(&b->lock);
}

json_t *gw_broker_redis_nodes_json(struct gw_broker *gb)
{
	struct rbroker *b = (struct rbroker *)gb;
	int64_t now = now_ms(), fresh = 3 * b->probe_ms + b->timeout_ms;
	json_t *list = json_array();
	int differ = 0;
	pthread_mutex_lock(&b->lock);
	for (size_t i = 0; list && i < b->nnodes; i++) {
		if (now - b->nodes[i].seen_ms > fresh)
			continue; /* gone (or partitioned away) */
		differ |= strcmp(b->nodes[i].version, b->version) != 0;
		json_array_append_new(list, json_pack("{s:s, s:s, s:I}", "node", b->nodes[i].node,
						      "rulesVersion", b->nodes[i].version, "seenMsAgo",
						      (json_int_t)(now - b->nodes[i].seen_ms)));
	}
	json_t *j = json_pack("{s:s, s:s, s:o, s:b}", "node", b->node_id, "rulesVersion", b->version, "nodes",
			      list, "rulesVersionsDiffer", differ);
	pthread_mutex_unlock(&b->lock);
	return j;
}

uint64_t gw_broker_redis_generation(struct gw_broker *gb)
{
	return atomic_load(&((struct rbroker *)gb)->generation);
}

static void r_destroy(struct gw_broker *gb)
{
	struct rbroker *b = (struct rbroker *)gb;
	pthread_mutex_lock(&b->lock);
	b->stopping = 1;
	pthread_mutex_unlock(&b->lock);
	uv_async_send(&b->async);
	pthread_join(b->thread, NULL);
	uv_loop_close(&b->loop);
	struct request *r = b->req_head;
	while (r) {
		struct request *next = r->next;
		free(r->payload);
		free(r);
		r = next;
	}
	gw_outbox_destroy(&b->inbox);
	for (size_t i = 0; i < b->nshards; i++)
		while (b->sh[i].held_head) {
			struct gw_outbox_item *it = b->sh[i].held_head;
			b->sh[i].held_head = it->next;
			gw_outbox_item_free(it);
		}
	gw_strmap_free(&b->chans, free);
	gw_strmap_free(&b->users, uent_free);
	b->inner->ops->destroy(b->inner);
	pthread_mutex_destroy(&b->lock);
	free(b->sh);
	free(b);
}

static const struct gw_broker_ops redis_broker_ops = {
	.publish = r_publish,
	.subscribe = r_subscribe,
	.unsubscribe = r_unsubscribe,
	.subscription_count = r_count,
	.destroy = r_destroy,
};

struct gw_broker *gw_broker_redis_new(const struct gw_broker_redis_options *o, char *msg, size_t msglen)
{
	if (!o->nredis) {
		snprintf(msg, msglen, "the redis broker needs at least one redis:// URL");
		return NULL;
	}
	struct rbroker *b = calloc(1, sizeof(*b));
	if (!b || !(b->sh = calloc(o->nredis, sizeof(*b->sh)))) {
		free(b);
		snprintf(msg, msglen, "out of memory");
		return NULL;
	}
	b->base.ops = &redis_broker_ops;
	b->nshards = o->nredis;
	b->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 2000;
	b->probe_ms = o->probe_interval_ms > 0 ? o->probe_interval_ms : 1000;
	b->marked = o->marked;
	b->marked_ud = o->marked_ud;
	snprintf(b->node_id, sizeof(b->node_id), "%s", o->node_id && o->node_id[0] ? o->node_id : "node");
	for (size_t i = 0; i < o->nredis; i++) {
		struct bshard *s = &b->sh[i];
		char why[300];
		if (gw_redis_url_parse(o->redis[i], &s->url, why, sizeof(why))) {
			snprintf(msg, msglen, "cluster.redis #%zu: %s", i + 1, why);
			free(b->sh);
			free(b);
			return NULL;
		}
		s->b = b;
		s->idx = i;
		s->backoff_ms = BACKOFF_MIN_MS;
		snprintf(s->probe_channel, sizeof(s->probe_channel), "gw:probe:%d:%s", s->url.db, b->node_id);
		if (i == 0)
			snprintf(b->nodes_channel, sizeof(b->nodes_channel), "gw:nodes:%d", s->url.db);
	}
	int inited = 0;
	if (!(b->inner = gw_broker_local_new()) || gw_strmap_init(&b->users, 1024) ||
	    gw_strmap_init(&b->chans, 1024) || gw_outbox_init(&b->inbox, o->wake, o->wake_ud) ||
	    pthread_mutex_init(&b->lock, NULL) || uv_loop_init(&b->loop) || (inited = 1, 0) ||
	    uv_async_init(&b->loop, &b->async, on_async) || uv_timer_init(&b->loop, &b->tick)) {
		snprintf(msg, msglen, "out of memory or no event loop for the redis broker");
		/* a partial start is not worth unwinding piecewise: fatal at start */
		(void)inited;
		return NULL;
	}
	b->async.data = b;
	b->tick.data = b;
	uv_timer_start(&b->tick, on_tick, (uint64_t)b->probe_ms, (uint64_t)b->probe_ms);
	if (pthread_create(&b->thread, NULL, broker_thread, b)) {
		snprintf(msg, msglen, "cannot start the redis broker thread");
		return NULL;
	}
	return &b->base;
}
