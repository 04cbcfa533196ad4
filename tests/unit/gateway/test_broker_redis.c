/* Tests broker_redis.c with store_redis.c on a real redis-server: three
 * brokers ("nodes") in one process, each with its own connections; notes
 * recorded through two store handles (two nodes' workers) reach every
 * connection of their user on every node exactly once and in seq order,
 * and no other user's connections; an unsubscribed tab receives nothing
 * more; readiness falls when Redis freezes (SIGSTOP) and comes back with
 * it; subscriber connections killed by Redis are made again (generation
 * changes) and notifications flow again. A subscribe is pending until
 * Redis confirmed the node's SUBSCRIBE (gw_conn_subscribed), also when the
 * user's channel is unsubscribed and subscribed again at once. With two
 * shards, one shard's subscriber made again holds only that shard's frames
 * until its new generation is accepted. This test plays the service
 * thread: it calls drain. alarm() turns a hang into a
 * failure. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check.h"
#include "broker_redis.h"
#include "gw/b64url.h"
#include "redis_conn.h"
#include "redis_fixture.h"
#include "stats.h"
#include "store.h"

#define INST "ari:cloud:ecosystem::installation/9"

struct gw_conn {
	const char *name;
	uint64_t seqs[128];
	size_t n;
	int out_of_order, foreign;
	int confirmed; /* gw_conn_subscribed calls */
	const char *user; /* the only user it may receive */
};

static void seq_of(struct gw_conn *c, const struct gw_msg *m)
{
	/* {"op":"notification","claims":"<b64url>","proof":...} */
	const char *p = (const char *)m->buf + GW_MSG_HEADROOM;
	const char *start = strstr(p, "\"claims\":\"");
	if (!start) {
		c->foreign++;
		return;
	}
	start += 10;
	const char *end = strchr(start, '"');
	unsigned char *raw = NULL;
	size_t len = 0;
	char claims[512];
	if (!end || gw_b64url_decode(start, (size_t)(end - start), &raw, &len) || len >= sizeof(claims)) {
		free(raw);
		c->foreign++;
		return;
	}
	memcpy(claims, raw, len);
	claims[len] = '\0';
	free(raw);
	char want[64];
	snprintf(want, sizeof(want), "\"sub\":\"%s\"", c->user);
	if (!strstr(claims, want))
		c->foreign++;
	const char *s = strstr(claims, "\"seq\":");
	uint64_t seq = s ? strtoull(s + 6, NULL, 10) : 0;
	if (c->n && seq <= c->seqs[c->n - 1])
		c->out_of_order++;
	if (c->n < 128)
		c->seqs[c->n++] = seq;
}

void gw_conn_deliver(struct gw_conn *conn, struct gw_msg *msg, const char *ctx)
{
	(void)ctx;
	seq_of(conn, msg);
}

void gw_conn_subscribed(struct gw_conn *conn, const char *ctx)
{
	(void)ctx;
	conn->confirmed++;
}

static atomic_int wakes;
static void wake(void *ud)
{
	(void)ud;
	atomic_fetch_add(&wakes, 1);
}

static struct redis_fixture srv;

static struct gw_broker *node(const char *id)
{
	const char *urls[] = {srv.url};
	struct gw_broker_redis_options o = {urls, 1, 500, 100, id, wake, NULL, NULL, NULL};
	char msg[300] = "";
	struct gw_broker *b = gw_broker_redis_new(&o, msg, sizeof(msg));
	if (!b)
		fprintf(stderr, "broker: %s\n", msg);
	CHECK(b != NULL);
	return b;
}

static struct gw_store *store(const char *id)
{
	const char *urls[] = {srv.url};
	struct gw_store_options o = {GW_STORE_OS, 86400, 1000};
	struct gw_store_cluster cl = {urls, 1, 500, 10000, id, 1, 0, 0};
	struct gw_store *s = NULL;
	char msg[300];
	CHECK_INT_EQ(gw_store_open_ex("redis", NULL, &o, &cl, &s, msg, sizeof(msg)), GW_STORE_OK);
	return s;
}

/* Journals an event and records one note for user; retries on a seq
 * conflict as a worker would (read max_seq again, sign again). */
static int notify(struct gw_store *s, const char *user)
{
	struct gw_store_event ev = {INST, "t", 1, NULL, "p", 1};
	struct gw_store_journaled j;
	if (s->ops->journal(s, &ev, 1, 1000, 900, &j))
		return -1;
	for (int attempt = 0; attempt < 5; attempt++) {
		uint64_t seq = 0;
		if (s->ops->max_seq(s, INST, user, &seq))
			return -1;
		seq++;
		char id[32], claims[160];
		snprintf(id, sizeof(id), "%s-%llu", user, (unsigned long long)seq);
		snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"ctx\":\"c\",\"seq\":%llu}", user,
			 (unsigned long long)seq);
		struct gw_store_note n = {user, "c",  id,  seq, claims, strlen(claims), "{\"index\":0}",
					  11,	1000, 5000};
		struct gw_store_done d = {j.id, INST, &n, 1, NULL};
		int res;
		int rc = s->ops->record(s, &d, 1, &res);
		if (rc == GW_STORE_ERR_SEQ)
			continue;
		return rc;
	}
	return -1;
}

/* Plays server.c's cluster_service: a ready shard's new generation is
 * accepted (the gateway closes that shard's connections first; these test
 * connections stay), then the frames are drained. */
static void drain_all(struct gw_broker **b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t s = 0; s < gw_broker_redis_nshards(b[i]); s++) {
			uint64_t gen = gw_broker_redis_shard_generation(b[i], s);
			if (gw_broker_redis_shard_ready(b[i], s))
				gw_broker_redis_accept_shard(b[i], s, gen);
		}
		gw_broker_redis_drain(b[i]);
	}
}

/* Drains until every connection holds want[i] notifications (or ~10 s). */
static void drain_until(struct gw_broker **b, size_t nb, struct gw_conn **c, const size_t *want, size_t nc)
{
	for (int i = 0; i < 200; i++) {
		drain_all(b, nb);
		int done = 1;
		for (size_t k = 0; k < nc; k++)
			done &= c[k]->n >= want[k];
		if (done)
			break;
		fixture_sleep_ms(50);
	}
	fixture_sleep_ms(100); /* and nothing more arrives */
	drain_all(b, nb);
}

/* Drains until every connection's subscribe was confirmed (or ~10 s). */
static int wait_confirmed(struct gw_broker **b, size_t nb, struct gw_conn **c, size_t nc)
{
	for (int i = 0; i < 200; i++) {
		drain_all(b, nb);
		int done = 1;
		for (size_t k = 0; k < nc; k++)
			done &= c[k]->confirmed == 1;
		if (done)
			return 1;
		fixture_sleep_ms(50);
	}
	return 0;
}

static int wait_ready(struct gw_broker **b, size_t n, int want)
{
	for (int i = 0; i < 300; i++) {
		int all = 1;
		for (size_t k = 0; k < n; k++)
			all &= gw_broker_redis_ready(b[k], NULL) == want;
		if (all)
			return 1;
		fixture_sleep_ms(50);
	}
	return 0;
}

int main(void)
{
	alarm(240);
	if (fixture_start(&srv, 1, NULL)) {
		fprintf(stderr, "cannot start %s\n", GW_REDIS_SERVER);
		return 1;
	}
	struct gw_broker *nodes[3] = {node("node-a"), node("node-b"), node("node-c")};
	if (!nodes[0] || !nodes[1] || !nodes[2])
		return CHECK_DONE();
	struct gw_store *sa = store("node-a"), *sb = store("node-b");
	struct gw_conn a1 = {.name = "a1", .user = "u1"}, b1 = {.name = "b1", .user = "u1"},
		       b2 = {.name = "b2", .user = "u1"}, c1 = {.name = "c1", .user = "u2"};
	/* pending until Redis has each node's SUBSCRIBE (b2 waits with b1) */
	CHECK_INT_EQ(gw_broker_subscribe(nodes[0], INST, "u1", "c", &a1), 1);
	CHECK_INT_EQ(gw_broker_subscribe(nodes[1], INST, "u1", "c", &b1), 1);
	CHECK_INT_EQ(gw_broker_subscribe(nodes[1], INST, "u1", "c", &b2), 1);
	CHECK_INT_EQ(gw_broker_subscribe(nodes[2], INST, "u2", "c", &c1), 1);
	CHECK_INT_EQ(gw_broker_subscribe(nodes[2], INST, "u2", "c", &c1), 0); /* twice: a no-op */
	CHECK_INT_EQ(nodes[1]->ops->subscription_count(nodes[1]), 2);
	struct gw_conn *subs[] = {&a1, &b1, &b2, &c1};
	CHECK(wait_confirmed(nodes, 3, subs, 4));
	CHECK(wait_ready(nodes, 3, 1));

	/* 20 for u1 and 5 for u2, recorded alternately by two nodes */
	for (int i = 0; i < 20; i++)
		CHECK_INT_EQ(notify(i % 2 ? sa : sb, "u1"), GW_STORE_OK);
	for (int i = 0; i < 5; i++)
		CHECK_INT_EQ(notify(i % 2 ? sb : sa, "u2"), GW_STORE_OK);
	struct gw_conn *all[] = {&a1, &b1, &b2, &c1};
	size_t want[] = {20, 20, 20, 5};
	drain_until(nodes, 3, all, want, 4);
	for (size_t k = 0; k < 4; k++) {
		CHECK_INT_EQ(all[k]->n, want[k]);
		CHECK_INT_EQ(all[k]->out_of_order, 0);
		CHECK_INT_EQ(all[k]->foreign, 0);
		CHECK(all[k]->n && all[k]->seqs[0] == 1 && all[k]->seqs[all[k]->n - 1] == want[k]);
	}
	CHECK(atomic_load(&wakes) > 0);
	/* the publish hook delivers nothing by itself: the channel does */
	struct gw_msg *m = gw_msg_new(2);
	CHECK_INT_EQ(gw_broker_publish(nodes[0], INST, "u1", "c", m), 0);
	gw_msg_unref(m);

	/* b2 closes: b1 still receives, b2 nothing more */
	gw_broker_unsubscribe(nodes[1], INST, "u1", "c", &b2);
	CHECK_INT_EQ(notify(sa, "u1"), GW_STORE_OK);
	size_t want2[] = {21, 21, 20, 5};
	drain_until(nodes, 3, all, want2, 4);
	CHECK_INT_EQ(b1.n, 21);
	CHECK_INT_EQ(b2.n, 20);
	CHECK_INT_EQ(a1.n, 21);

	/* A user's channel unsubscribed and subscribed again at once (a tab
	 * switching its only subscription): the new subscribe is confirmed and
	 * receives. (hiredis 0.14 drops a channel's callback on an UNSUBSCRIBE
	 * reply: a SUBSCRIBE sent before that reply would never see a message.) */
	{
		struct gw_conn t1 = {.name = "t1", .user = "u3"}, t2 = {.name = "t2", .user = "u3"};
		struct gw_conn *pt1[] = {&t1}, *pt2[] = {&t2};
		CHECK_INT_EQ(gw_broker_subscribe(nodes[2], INST, "u3", "c", &t1), 1);
		CHECK(wait_confirmed(&nodes[2], 1, pt1, 1));
		for (int round = 0; round < 3; round++) {
			struct gw_conn *from = round % 2 ? &t2 : &t1, *to = round % 2 ? &t1 : &t2;
			gw_broker_unsubscribe(nodes[2], INST, "u3", "c", from);
			to->confirmed = 0;
			CHECK_INT_EQ(gw_broker_subscribe(nodes[2], INST, "u3", "c", to), 1);
			CHECK(wait_confirmed(&nodes[2], 1, round % 2 ? pt1 : pt2, 1));
		}
		/* t2 holds the subscription now */
		CHECK_INT_EQ(notify(sa, "u3"), GW_STORE_OK);
		size_t w1[] = {1};
		drain_until(&nodes[2], 1, pt2, w1, 1);
		CHECK_INT_EQ(t2.n, 1);
		CHECK_INT_EQ(t1.n, 0);
		gw_broker_unsubscribe(nodes[2], INST, "u3", "c", &t2);
	}

	/* a frozen Redis: not ready; thawed: ready again */
	fixture_freeze(&srv, 1);
	CHECK(wait_ready(nodes, 3, 0));
	int64_t age = 0;
	CHECK_INT_EQ(gw_broker_redis_ready(nodes[0], &age), 0);
	fprintf(stderr, "  (frozen: not ready, oldest probe %lld ms ago)\n", (long long)age);
	fixture_freeze(&srv, 0);
	CHECK(wait_ready(nodes, 3, 1));

	/* Redis kills the subscriber connections: made again, flowing again */
	uint64_t gen = gw_broker_redis_generation(nodes[1]);
	CHECK_INT_EQ(fixture_cmd(&srv, "CLIENT KILL TYPE pubsub"), 0);
	for (int i = 0; i < 200 && gw_broker_redis_generation(nodes[1]) == gen; i++)
		fixture_sleep_ms(50);
	CHECK(gw_broker_redis_generation(nodes[1]) != gen);
	CHECK(wait_ready(nodes, 3, 1));
	CHECK_INT_EQ(notify(sb, "u1"), GW_STORE_OK);
	size_t want3[] = {22, 22, 20, 5};
	drain_until(nodes, 3, all, want3, 4);
	CHECK_INT_EQ(a1.n, 22);
	CHECK_INT_EQ(b1.n, 22);
	CHECK_INT_EQ(a1.out_of_order + b1.out_of_order, 0);

	/* Redis killed and restarted (AOF): back without a new broker */
	fixture_kill(&srv);
	CHECK(wait_ready(nodes, 3, 0));
	CHECK_INT_EQ(fixture_spawn(&srv), 0);
	CHECK(wait_ready(nodes, 3, 1));
	for (int i = 0; i < 40 && notify(sa, "u1") != GW_STORE_OK; i++)
		fixture_sleep_ms(250);
	size_t want4[] = {23, 23, 20, 5};
	drain_until(nodes, 3, all, want4, 4);
	CHECK_INT_EQ(a1.n, 23);
	CHECK_INT_EQ(b1.n, 23);
	CHECK(a1.seqs[22] == 23 && b1.seqs[22] == 23);

	/* two shards: users spread over both, each tab gets its one note once */
	struct redis_fixture second;
	CHECK_INT_EQ(fixture_start(&second, 0, NULL), 0);
	{
		const char *urls[] = {srv.url, second.url};
		struct gw_broker_redis_options o = {urls, 2, 500, 100, "node-s", wake, NULL, NULL, NULL};
		char msg[300] = "";
		struct gw_broker *two = gw_broker_redis_new(&o, msg, sizeof(msg));
		struct gw_store_options so = {GW_STORE_OS, 86400, 1000};
		struct gw_store_cluster cl = {urls, 2, 500, 10000, "node-s", 1, 0, 0};
		struct gw_store *st = NULL;
		CHECK_INT_EQ(gw_store_open_ex("redis", NULL, &so, &cl, &st, msg, sizeof(msg)), GW_STORE_OK);
		static char names[10][8];
		static struct gw_conn tabs[10];
		struct gw_conn *tp[10];
		size_t want1[10], on[2] = {0, 0};
		for (int i = 0; i < 10 && two; i++) {
			snprintf(names[i], sizeof(names[i]), "s%d", i);
			tabs[i] = (struct gw_conn){.name = names[i], .user = names[i]};
			tp[i] = &tabs[i];
			want1[i] = 1;
			on[gw_redis_shard_of(INST, names[i], 2)]++;
			CHECK_INT_EQ(gw_broker_subscribe(two, INST, names[i], "c", &tabs[i]), 1);
		}
		CHECK(on[0] && on[1]);
		if (two && st) {
			CHECK(wait_confirmed(&two, 1, tp, 10));
			CHECK(wait_ready(&two, 1, 1));
			for (int i = 0; i < 10; i++)
				CHECK_INT_EQ(notify(st, names[i]), GW_STORE_OK);
			drain_until(&two, 1, tp, want1, 10);
			for (int i = 0; i < 10; i++) {
				CHECK_INT_EQ(tabs[i].n, 1);
				CHECK_INT_EQ(tabs[i].foreign, 0);
			}
			/* Shard 1's subscriber is killed and made again: its
			 * generation changes, shard 0's does not. While the new
			 * generation is not accepted, shard 1's frames are held
			 * (drain alone), shard 0's users keep receiving; accepted,
			 * the held ones come, in order, once. */
			uint64_t g0 = gw_broker_redis_shard_generation(two, 0);
			uint64_t g1 = gw_broker_redis_shard_generation(two, 1);
			CHECK_INT_EQ(fixture_cmd(&second, "CLIENT KILL TYPE pubsub"), 0);
			for (int i = 0; i < 200 && (gw_broker_redis_shard_generation(two, 1) == g1 ||
						    !gw_broker_redis_shard_ready(two, 1));
			     i++)
				fixture_sleep_ms(50);
			CHECK(gw_broker_redis_shard_generation(two, 1) != g1);
			CHECK(gw_broker_redis_shard_generation(two, 0) == g0);
			CHECK(gw_broker_redis_shard_ready(two, 1));
			for (int i = 0; i < 10; i++)
				CHECK_INT_EQ(notify(st, names[i]), GW_STORE_OK);
			size_t got0 = 0;
			for (int round = 0; round < 200 && got0 < on[0]; round++) {
				gw_broker_redis_drain(two); /* no accept */
				got0 = 0;
				for (int i = 0; i < 10; i++)
					got0 += gw_redis_shard_of(INST, names[i], 2) == 0 && tabs[i].n == 2;
				fixture_sleep_ms(50);
			}
			fixture_sleep_ms(300); /* shard 1's frames have arrived by now: held */
			gw_broker_redis_drain(two);
			for (int i = 0; i < 10; i++)
				CHECK_INT_EQ(tabs[i].n, gw_redis_shard_of(INST, names[i], 2) == 0 ? 2u : 1u);
			size_t wantb[10] = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2};
			drain_until(&two, 1, tp, wantb, 10); /* accepts shard 1's generation */
			for (int i = 0; i < 10; i++) {
				CHECK_INT_EQ(tabs[i].n, 2);
				CHECK_INT_EQ(tabs[i].out_of_order, 0);
				gw_broker_unsubscribe(two, INST, names[i], "c", &tabs[i]);
			}
		}
		if (two)
			two->ops->destroy(two);
		if (st)
			st->ops->close(st);
	}
	fixture_stop(&second);

	gw_broker_unsubscribe(nodes[0], INST, "u1", "c", &a1);
	gw_broker_unsubscribe(nodes[1], INST, "u1", "c", &b1);
	gw_broker_unsubscribe(nodes[2], INST, "u2", "c", &c1);
	for (int i = 0; i < 3; i++)
		nodes[i]->ops->destroy(nodes[i]);
	sa->ops->close(sa);
	sb->ops->close(sb);
	fixture_stop(&srv);
	return CHECK_DONE();
}
