/* What only the redis engine has to prove (the shared contract is
 * test_store.c's): Redis killed mid-run (calls fail with GW_STORE_ERR_IO,
 * then work again after the restart on the same handle, with nothing
 * acknowledged lost under AOF), a frozen Redis (SIGSTOP: a timeout, not a
 * hang), refusals at open (unparsable URL, rediss://, wrong password, a
 * server that is not Redis), two nodes on one journal (claim after
 * claim_after, idempotent record, seq conflicts), two shards, and a server
 * wiped while running (a new epoch). Real redis-server processes started on
 * free ports; alarm() turns any hang into a failure. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check.h"
#include "redis_conn.h"
#include "redis_fixture.h"
#include "stats.h"
#include "store.h"

#define INST "ari:cloud:ecosystem::installation/7"
#define TIMEOUT_MS 500

static struct redis_fixture srv;

static struct gw_store *open_on(const char *const *urls, size_t n, const char *node, int64_t claim_after,
				int *rc_out, char *msg, size_t msglen)
{
	struct gw_store_options o = {GW_STORE_OS, 30 * 86400, 1000};
	struct gw_store_cluster cl = {urls, n, TIMEOUT_MS, claim_after, node, 1, 0, 0};
	struct gw_store *s = NULL;
	int rc = gw_store_open_ex("redis", NULL, &o, &cl, &s, msg, msglen);
	if (rc_out)
		*rc_out = rc;
	return s;
}

static struct gw_store *open_node(const char *node, int64_t claim_after)
{
	const char *urls[] = {srv.url};
	char msg[400] = "";
	int rc;
	struct gw_store *s = open_on(urls, 1, node, claim_after, &rc, msg, sizeof(msg));
	if (rc)
		fprintf(stderr, "open: %s\n", msg);
	CHECK_INT_EQ(rc, GW_STORE_OK);
	return s;
}

static uint64_t journal(struct gw_store *s, const char *payload)
{
	struct gw_store_event ev = {INST, "t", 1, NULL, payload, strlen(payload)};
	struct gw_store_journaled j = {0};
	int rc = s->ops->journal(s, &ev, 1, 1000, 900, &j);
	return rc ? 0 : j.id;
}

static int record_seen(struct gw_store *s, uint64_t jid, const char *user, uint64_t seq, int *res,
		       uint64_t *seen)
{
	char id[32], claims[128];
	snprintf(id, sizeof(id), "n-%s-%llu", user, (unsigned long long)seq);
	snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"seq\":%llu}", user, (unsigned long long)seq);
	struct gw_store_note n = {user, "c", id, seq, claims, strlen(claims), "{}", 2, 1000, 2000};
	struct gw_store_done d = {jid, INST, &n, 1, seen};
	return s->ops->record(s, &d, 1, res);
}

static int record(struct gw_store *s, uint64_t jid, const char *user, uint64_t seq, int *res)
{
	return record_seen(s, jid, user, seq, res, NULL);
}

static double now_s(void)
{
	return (double)gw_redis_now_ms() / 1000.0;
}

/* Retries op until it succeeds: the engine reconnects on its own, after its
 * backoff (at most 5 s); 40 tries 250 ms apart cover it. */
static int until_ok(struct gw_store *s)
{
	for (int i = 0; i < 40; i++) {
		uint64_t seq;
		if (s->ops->max_seq(s, INST, "u1", &seq) == GW_STORE_OK)
			return 0;
		fixture_sleep_ms(250);
	}
	return -1;
}

struct claimed {
	uint64_t ids[16];
	size_t n;
};

static int take(void *ud, uint64_t id, const struct gw_store_event *ev)
{
	(void)ev;
	struct claimed *c = ud;
	if (c->n < 16)
		c->ids[c->n++] = id;
	return 0;
}

static void case_killed_and_aof(void)
{
	struct gw_store *s = open_node("n1", 10000);
	CHECK_INT_EQ(fixture_cmd(&srv, "FLUSHALL"), 0);
	/* FLUSHALL wiped the epoch: the first call adopts a new one */
	uint64_t ids[5];
	int res;
	for (int i = 0; i < 5; i++) {
		char p[16];
		snprintf(p, sizeof(p), "ev-%d", i);
		ids[i] = journal(s, p);
		CHECK(ids[i] != 0);
	}
	CHECK_INT_EQ(record(s, ids[0], "u1", 1, &res), GW_STORE_OK);
	CHECK_INT_EQ(record(s, ids[1], "u1", 2, &res), GW_STORE_OK);
	char epoch[GW_STORE_EPOCH_MAX + 1];
	snprintf(epoch, sizeof(epoch), "%s", s->ops->epoch(s));
	uint64_t errs = gw_stat_get(GW_STAT_redis_errors);

	/* SIGKILL: every acknowledged write was appended with fsync (always) */
	fixture_kill(&srv);
	double t0 = now_s();
	uint64_t seq = 0;
	CHECK_INT_EQ(s->ops->max_seq(s, INST, "u1", &seq), GW_STORE_ERR_IO);
	CHECK_INT_EQ(journal(s, "while-down"), 0);
	int r2 = 0;
	CHECK_INT_EQ(record(s, ids[2], "u1", 3, &r2), GW_STORE_ERR_IO);
	fprintf(stderr, "  (killed: three calls failed in %.3f s, timeout %d ms)\n", now_s() - t0,
		TIMEOUT_MS);
	CHECK(gw_stat_get(GW_STAT_redis_errors) > errs);

	/* back on the same port and directory: the same handle works again */
	uint64_t reconnects = gw_stat_get(GW_STAT_redis_reconnects);
	CHECK_INT_EQ(fixture_spawn(&srv), 0);
	CHECK_INT_EQ(until_ok(s), 0);
	CHECK(gw_stat_get(GW_STAT_redis_reconnects) > reconnects);
	CHECK_STR_EQ(s->ops->epoch(s), epoch);
	CHECK_INT_EQ(s->ops->max_seq(s, INST, "u1", &seq), GW_STORE_OK);
	CHECK_INT_EQ(seq, 2);
	/* the three pending events survived, in order */
	struct claimed l = {{0}, 0};
	CHECK_INT_EQ(s->ops->pending(s, take, &l), GW_STORE_OK);
	CHECK_INT_EQ(l.n, 3);
	CHECK(l.n == 3 && l.ids[0] == ids[2] && l.ids[2] == ids[4]);
	CHECK_INT_EQ(record(s, ids[2], "u1", 3, &res), GW_STORE_OK);
	CHECK_INT_EQ(res, GW_STORE_OK);
	uint64_t next = journal(s, "after");
	CHECK(next > ids[4]);
	s->ops->close(s);
}

static void case_frozen(void)
{
	struct gw_store *s = open_node("n1", 10000);
	fixture_freeze(&srv, 1);
	double t0 = now_s();
	uint64_t seq;
	CHECK_INT_EQ(s->ops->max_seq(s, INST, "u1", &seq), GW_STORE_ERR_IO);
	CHECK_INT_EQ(journal(s, "frozen"), 0);
	fprintf(stderr, "  (frozen: two calls failed in %.3f s, timeout %d ms)\n", now_s() - t0, TIMEOUT_MS);
	/* a new handle cannot open against it either: refused, not hung */
	const char *urls[] = {srv.url};
	char msg[400] = "";
	int rc;
	CHECK(open_on(urls, 1, "n2", 10000, &rc, msg, sizeof(msg)) == NULL);
	CHECK_INT_EQ(rc, GW_STORE_ERR_IO);
	CHECK(strstr(msg, "no answer within") != NULL);
	fprintf(stderr, "  (frozen open: %s)\n", msg);
	fixture_freeze(&srv, 0);
	CHECK_INT_EQ(until_ok(s), 0);
	s->ops->close(s);
}

/* Answers anything with an HTTP error, like a web server on the port. */
static void *http_server(void *p)
{
	int fd = *(int *)p;
	for (int i = 0; i < 2; i++) {
		int c = accept(fd, NULL, NULL);
		if (c < 0)
			break;
		char buf[256];
		if (read(c, buf, sizeof(buf)) > 0) {
			const char resp[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
			if (write(c, resp, sizeof(resp) - 1) < 0)
				perror("write");
		}
		close(c);
	}
	return NULL;
}

static void case_refusals(void)
{
	char msg[400];
	int rc;
	const char *bad[] = {"http://127.0.0.1:6379", "redis://",      "redis://host:99999",
			     "redis://h:1/x",	      "redis://a b:1", "redis://:p%zz@h:1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msg[0] = '\0';
		CHECK(open_on(&bad[i], 1, "n", 0, &rc, msg, sizeof(msg)) == NULL);
		CHECK_INT_EQ(rc, GW_STORE_ERR_INVAL);
		CHECK(msg[0] != '\0');
	}
	const char *tls[] = {"rediss://127.0.0.1:6380"};
	CHECK(open_on(tls, 1, "n", 0, &rc, msg, sizeof(msg)) == NULL);
	CHECK(rc == GW_STORE_ERR_INVAL && strstr(msg, "TLS"));
	fprintf(stderr, "  (rediss: %s)\n", msg);

	/* a wrong password, and none where one is required */
	struct redis_fixture pw;
	CHECK_INT_EQ(fixture_start(&pw, 0, "s3cret-pass"), 0);
	char url[160];
	snprintf(url, sizeof(url), "redis://:wrong-pass@127.0.0.1:%d/0", pw.port);
	const char *u1[] = {url};
	CHECK(open_on(u1, 1, "n", 0, &rc, msg, sizeof(msg)) == NULL);
	CHECK_INT_EQ(rc, GW_STORE_ERR_ACCESS);
	CHECK(strstr(msg, "authentication") && !strstr(msg, "wrong-pass"));
	fprintf(stderr, "  (wrong password: %s)\n", msg);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", pw.port);
	CHECK(open_on(u1, 1, "n", 0, &rc, msg, sizeof(msg)) == NULL);
	CHECK_INT_EQ(rc, GW_STORE_ERR_ACCESS);
	const char *u2[] = {pw.url};
	struct gw_store *ok = open_on(u2, 1, "n", 0, &rc, msg, sizeof(msg));
	CHECK_INT_EQ(rc, GW_STORE_OK);
	if (ok)
		ok->ops->close(ok);
	fixture_stop(&pw);

	/* an HTTP server on the port */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(fd, 4) == 0 &&
	      getsockname(fd, (struct sockaddr *)&a, &len) == 0);
	pthread_t th;
	pthread_create(&th, NULL, http_server, &fd);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", ntohs(a.sin_port));
	CHECK(open_on(u1, 1, "n", 0, &rc, msg, sizeof(msg)) == NULL);
	CHECK_INT_EQ(rc, GW_STORE_ERR_CORRUPT);
	CHECK(strstr(msg, "Redis protocol") != NULL);
	fprintf(stderr, "  (not Redis: %s)\n", msg);
	shutdown(fd, SHUT_RDWR);
	close(fd);
	pthread_join(th, NULL);

	/* nothing listening */
	snprintf(url, sizeof(url), "redis://127.0.0.1:%d", fixture_free_port());
	CHECK(open_on(u1, 1, "n", 0, &rc, msg, sizeof(msg)) == NULL);
	CHECK_INT_EQ(rc, GW_STORE_ERR_IO);

	/* what the URL parser keeps */
	struct gw_redis_url pu;
	CHECK_INT_EQ(gw_redis_url_parse("redis://app:p%40ss@[::1]:7000/3", &pu, msg, sizeof(msg)), 0);
	CHECK(!strcmp(pu.user, "app") && !strcmp(pu.password, "p@ss") && !strcmp(pu.host, "::1") &&
	      pu.port == 7000 && pu.db == 3);
	CHECK_INT_EQ(gw_redis_url_parse("redis://localhost", &pu, msg, sizeof(msg)), 0);
	CHECK(pu.port == 6379 && pu.db == 0 && !pu.password[0]);
}

static void case_two_nodes(void)
{
	CHECK_INT_EQ(fixture_cmd(&srv, "FLUSHALL"), 0);
	struct gw_store *a = open_node("node-a", 300), *b = open_node("node-b", 300);
	uint64_t j1 = journal(a, "one"), j2 = journal(b, "two");
	CHECK(j1 && j2 > j1);
	/* a takes both; b finds nothing new and nothing idle yet */
	struct claimed ca = {{0}, 0}, cb = {{0}, 0};
	CHECK_INT_EQ(a->ops->claim(a, 10, take, &ca), GW_STORE_OK);
	CHECK(ca.n == 2 && ca.ids[0] == j1 && ca.ids[1] == j2);
	CHECK_INT_EQ(b->ops->claim(b, 10, take, &cb), GW_STORE_OK);
	CHECK_INT_EQ(cb.n, 0);
	/* a "dies"; after claim_after, b takes a's entries over */
	a->ops->close(a);
	uint64_t claimed = gw_stat_get(GW_STAT_redis_claimed);
	for (int i = 0; i < 40 && cb.n < 2; i++) {
		fixture_sleep_ms(100);
		CHECK_INT_EQ(b->ops->claim(b, 10, take, &cb), GW_STORE_OK);
	}
	CHECK(cb.n == 2 && cb.ids[0] == j1 && cb.ids[1] == j2);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_redis_claimed) - claimed, 2);
	/* b finishes j1; a late duplicate of the work (a revived a) is refused */
	int res = -1;
	CHECK_INT_EQ(record(b, j1, "u1", 1, &res), GW_STORE_OK);
	CHECK_INT_EQ(res, GW_STORE_OK);
	a = open_node("node-a", 300);
	CHECK_INT_EQ(record(a, j1, "u1", 2, &res), GW_STORE_OK);
	CHECK_INT_EQ(res, GW_STORE_NOT_PENDING);
	/* seq conflict: a read max_seq 1 and signs seq 2, b records seq 2 first */
	uint64_t seq = 0;
	CHECK_INT_EQ(a->ops->max_seq(a, INST, "u1", &seq), GW_STORE_OK);
	CHECK_INT_EQ(seq, 1);
	uint64_t j3 = journal(a, "three");
	CHECK_INT_EQ(record(b, j2, "u1", 2, &res), GW_STORE_OK);
	uint64_t conflicts = gw_stat_get(GW_STAT_redis_seq_conflicts);
	CHECK_INT_EQ(record(a, j3, "u1", seq + 1, &res), GW_STORE_ERR_SEQ);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_redis_seq_conflicts) - conflicts, 1);
	CHECK_INT_EQ(a->ops->max_seq(a, INST, "u1", &seq), GW_STORE_OK);
	CHECK_INT_EQ(record(a, j3, "u1", seq + 1, &res), GW_STORE_OK);
	/* contiguous, whoever recorded */
	const char *all[] = {"*"};
	struct gw_store_page p;
	CHECK_INT_EQ(b->ops->since(b, INST, "u1", all, 1, 0, 10, &p), GW_STORE_OK);
	CHECK(p.recovered && p.count == 3 && p.items[0].seq == 1 && p.items[1].seq == 2 &&
	      p.items[2].seq == 3);
	gw_store_page_free(&p);
	struct claimed none = {{0}, 0};
	CHECK_INT_EQ(a->ops->pending(a, take, &none), GW_STORE_OK);
	CHECK_INT_EQ(none.n, 0);
	a->ops->close(a);
	b->ops->close(b);
}

static struct gw_store *open_own(const char *node, int64_t claim_after, int take_own)
{
	const char *urls[] = {srv.url};
	struct gw_store_options o = {GW_STORE_OS, 30 * 86400, 1000};
	struct gw_store_cluster cl = {urls, 1, TIMEOUT_MS, claim_after, node, 1, 1, take_own};
	struct gw_store *s = NULL;
	char msg[400] = "";
	CHECK_INT_EQ(gw_store_open_ex("redis", NULL, &o, &cl, &s, msg, sizeof(msg)), GW_STORE_OK);
	return s;
}

static uint64_t journal_owned(struct gw_store *s, const char *payload, int *owned)
{
	struct gw_store_event ev = {INST, "t", 1, NULL, payload, strlen(payload)};
	struct gw_store_journaled j = {0};
	int rc = s->ops->journal(s, &ev, 1, 1000, 900, &j);
	*owned = j.owned;
	return rc ? 0 : j.id;
}

/* The owner of journal entry jid in the group's pending list ("" if none). */
static void pel_owner(uint64_t jid, char *out, size_t outlen)
{
	out[0] = '\0';
	redisContext *c = fixture_connect(&srv);
	char id[32];
	snprintf(id, sizeof(id), "0-%llu", (unsigned long long)jid);
	redisReply *r = c ? redisCommand(c, "XPENDING gw:journal gw %s %s 1", id, id) : NULL;
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->elements >= 2)
		snprintf(out, outlen, "%s", r->element[0]->element[1]->str);
	if (r)
		freeReplyObject(r);
	if (c)
		redisFree(c);
}

/* take_own: the journaling node gets its new entry in the journal call and
 * records it with no claim call (2 round trips in all); nobody's claim hands
 * it out while the node lives; after claim_after without it, another node
 * takes it over. An entry journaled while the group has an older
 * undelivered one is not taken (skipping that one would lose it). */
static void case_take_own(void)
{
	CHECK_INT_EQ(fixture_cmd(&srv, "FLUSHALL"), 0);
	struct gw_store *a = open_own("own-a", 300, 1), *b = open_own("own-b", 300, 1);
	if (!a || !b)
		return;
	int owned = 0, res = -1;
	uint64_t trips = gw_stat_get(GW_STAT_redis_round_trips);
	uint64_t taken = gw_stat_get(GW_STAT_redis_journal_owned);
	uint64_t j1 = journal_owned(a, "mine", &owned);
	uint64_t a_trips = gw_stat_get(GW_STAT_redis_round_trips) - trips;
	CHECK(j1 && owned);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_redis_journal_owned) - taken, 1);
	char who[64];
	pel_owner(j1, who, sizeof(who));
	CHECK_STR_EQ(who, "own-a");
	struct claimed cb = {{0}, 0};
	CHECK_INT_EQ(b->ops->claim(b, 10, take, &cb), GW_STORE_OK);
	CHECK_INT_EQ(cb.n, 0);
	trips = gw_stat_get(GW_STAT_redis_round_trips);
	CHECK_INT_EQ(record(a, j1, "uo", 1, &res), GW_STORE_OK);
	CHECK_INT_EQ(res, GW_STORE_OK);
	/* a's round trips for j1: the journal call and the record call */
	a_trips += gw_stat_get(GW_STAT_redis_round_trips) - trips;
	CHECK_INT_EQ(a_trips, 2);
	/* a takes j2 and stops before recording it: b takes it over */
	uint64_t j2 = journal_owned(a, "orphan", &owned);
	CHECK(j2 && owned);
	a->ops->close(a);
	cb.n = 0;
	uint64_t claimed = gw_stat_get(GW_STAT_redis_claimed);
	for (int i = 0; i < 40 && cb.n < 1; i++) {
		fixture_sleep_ms(100);
		CHECK_INT_EQ(b->ops->claim(b, 10, take, &cb), GW_STORE_OK);
	}
	CHECK(cb.n == 1 && cb.ids[0] == j2);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_redis_claimed) - claimed, 1);
	CHECK_INT_EQ(record(b, j2, "uo", 2, &res), GW_STORE_OK);
	CHECK_INT_EQ(res, GW_STORE_OK);
	/* a node that does not take its own leaves j3 undelivered: b's j4 is
	 * then not b's either, and a claim hands out both, in order */
	struct gw_store *n = open_own("own-n", 300, 0);
	if (!n)
		return;
	uint64_t j3 = journal_owned(n, "nobody's", &owned);
	CHECK(j3 && !owned);
	uint64_t j4 = journal_owned(b, "behind", &owned);
	CHECK(j4 > j3 && !owned);
	cb.n = 0;
	CHECK_INT_EQ(b->ops->claim(b, 10, take, &cb), GW_STORE_OK);
	CHECK(cb.n == 2 && cb.ids[0] == j3 && cb.ids[1] == j4);
	/* caught up again: the next one is b's at once */
	uint64_t j5 = journal_owned(b, "caught up", &owned);
	CHECK(j5 > j4 && owned);
	CHECK_INT_EQ(record(b, j3, "uo", 3, &res), GW_STORE_OK);
	CHECK_INT_EQ(record(b, j4, "uo", 4, &res), GW_STORE_OK);
	CHECK_INT_EQ(record(b, j5, "uo", 5, &res), GW_STORE_OK);
	struct claimed left = {{0}, 0};
	CHECK_INT_EQ(b->ops->pending(b, take, &left), GW_STORE_OK);
	CHECK_INT_EQ(left.n, 0);
	n->ops->close(n);
	b->ops->close(b);
}

/* Cluster mode's contiguous check: a seq that skips one is refused (nothing
 * written), the next one is taken; the plain check takes any seq above. */
static void case_contiguous(void)
{
	const char *urls[] = {srv.url};
	struct gw_store_options o = {GW_STORE_OS, 30 * 86400, 1000};
	struct gw_store_cluster cl = {urls, 1, TIMEOUT_MS, 10000, "nc", 1, 1, 0};
	struct gw_store *s = NULL;
	char msg[400] = "";
	CHECK_INT_EQ(gw_store_open_ex("redis", NULL, &o, &cl, &s, msg, sizeof(msg)), GW_STORE_OK);
	if (!s)
		return;
	int res;
	uint64_t j1 = journal(s, "c1"), j2 = journal(s, "c2"), j3 = journal(s, "c3");
	CHECK_INT_EQ(record(s, j1, "uc", 1, &res), GW_STORE_OK);
	uint64_t seen = GW_STORE_SEQ_UNKNOWN;
	CHECK_INT_EQ(record_seen(s, j2, "uc", 3, &res, &seen),
		     GW_STORE_ERR_SEQ); /* 2 was taken by a pass never recorded */
	CHECK_INT_EQ(seen, 1); /* the refusal carries the stored seq: no read needed */
	uint64_t seq = 0;
	CHECK_INT_EQ(s->ops->max_seq(s, INST, "uc", &seq), GW_STORE_OK);
	CHECK_INT_EQ(seq, 1);
	CHECK_INT_EQ(record(s, j2, "uc", 2, &res), GW_STORE_OK);
	CHECK_INT_EQ(record(s, j3, "uc", 2, &res), GW_STORE_ERR_SEQ);
	s->ops->close(s);
	/* without contiguous (the embedded engines' contract): any seq above */
	struct gw_store *p = open_node("np", 10000);
	uint64_t j4 = journal(p, "c4");
	CHECK_INT_EQ(record(p, j4, "uc", 9, &res), GW_STORE_OK);
	p->ops->close(p);
}

static void case_wiped_epoch(void)
{
	struct gw_store *s = open_node("n1", 10000);
	char before[GW_STORE_EPOCH_MAX + 1];
	snprintf(before, sizeof(before), "%s", s->ops->epoch(s));
	uint64_t j = journal(s, "x");
	int res;
	CHECK_INT_EQ(record(s, j, "u9", 5, &res), GW_STORE_OK);
	uint64_t changes = gw_stat_get(GW_STAT_redis_epoch_changes);
	CHECK_INT_EQ(fixture_cmd(&srv, "FLUSHALL"), 0); /* a restart without persistence */
	uint64_t j2 = journal(s, "y");
	CHECK(j2 != 0);
	CHECK(strcmp(s->ops->epoch(s), before) != 0);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_redis_epoch_changes) - changes, 1);
	uint64_t seq = 9;
	CHECK_INT_EQ(s->ops->max_seq(s, INST, "u9", &seq), GW_STORE_OK);
	CHECK_INT_EQ(seq, 0);
	s->ops->close(s);
}

static void case_two_shards(void)
{
	struct redis_fixture second;
	CHECK_INT_EQ(fixture_start(&second, 0, NULL), 0);
	CHECK_INT_EQ(fixture_cmd(&srv, "FLUSHALL"), 0);
	const char *urls[] = {srv.url, second.url};
	char msg[400];
	int rc;
	struct gw_store *s = open_on(urls, 2, "n1", 10000, &rc, msg, sizeof(msg));
	CHECK_INT_EQ(rc, GW_STORE_OK);
	if (!s) {
		fixture_stop(&second);
		return;
	}
	/* 20 users spread over both shards, one event notifying all of them */
	char users[20][8];
	struct gw_store_note notes[20];
	size_t on[2] = {0, 0};
	for (int i = 0; i < 20; i++) {
		snprintf(users[i], sizeof(users[i]), "u%d", i);
		on[gw_redis_shard_of(INST, users[i], 2)]++;
		notes[i] = (struct gw_store_note){users[i], "c", users[i], 1, "{}", 2, "{}", 2, 1000, 2000};
	}
	CHECK(on[0] > 0 && on[1] > 0);
	fprintf(stderr, "  (20 users: %zu on shard 0, %zu on shard 1)\n", on[0], on[1]);
	uint64_t j = journal(s, "fan");
	struct gw_store_done d = {j, INST, notes, 20, NULL};
	int res = -1;
	CHECK_INT_EQ(s->ops->record(s, &d, 1, &res), GW_STORE_OK);
	CHECK_INT_EQ(res, GW_STORE_OK);
	/* the same event again (a claimed copy): nothing written twice */
	CHECK_INT_EQ(s->ops->record(s, &d, 1, &res), GW_STORE_OK);
	CHECK_INT_EQ(res, GW_STORE_NOT_PENDING);
	const char *all[] = {"*"};
	for (int i = 0; i < 20; i++) {
		struct gw_store_page p;
		CHECK_INT_EQ(s->ops->since(s, INST, users[i], all, 1, 0, 10, &p), GW_STORE_OK);
		CHECK(p.count == 1 && p.max_seq == 1);
		gw_store_page_free(&p);
	}
	/* a conflict on one shard after another shard took its notes: the call
	 * fails; the retry (signed again) writes the rest once, the first
	 * shard's notes are not written twice (gw:ap marker) */
	const char *on0 = NULL, *on1 = NULL;
	for (int i = 0; i < 20; i++) {
		if (!on0 && gw_redis_shard_of(INST, users[i], 2) == 0)
			on0 = users[i];
		if (!on1 && gw_redis_shard_of(INST, users[i], 2) == 1)
			on1 = users[i];
	}
	uint64_t jc = journal(s, "conflict");
	struct gw_store_note two[2] = {
		{on1, "c", "x1", 2, "{\"v\":1}", 7, "{}", 2, 1000, 2000},
		{on0, "c", "x0", 1, "{}", 2, "{}", 2, 1000, 2000}}; /* on0 already has 1 */
	uint64_t seen[2] = {GW_STORE_SEQ_UNKNOWN, GW_STORE_SEQ_UNKNOWN};
	struct gw_store_done dc = {jc, INST, two, 2, seen};
	CHECK_INT_EQ(s->ops->record(s, &dc, 1, &res), GW_STORE_ERR_SEQ);
	/* the refusal (shard 0) tells on0's stored seq; shard 1 took its note */
	CHECK(seen[1] == 1 && seen[0] == GW_STORE_SEQ_UNKNOWN);
	two[0].claims = "{\"v\":2}";
	two[1].seq = 2;
	CHECK_INT_EQ(s->ops->record(s, &dc, 1, &res), GW_STORE_OK);
	CHECK_INT_EQ(res, GW_STORE_OK);
	struct gw_store_page p1;
	CHECK_INT_EQ(s->ops->since(s, INST, on1, all, 1, 1, 10, &p1), GW_STORE_OK);
	CHECK(p1.count == 1 && p1.max_seq == 2 && !strcmp(p1.items[0].claims, "{\"v\":1}"));
	gw_store_page_free(&p1);
	CHECK_INT_EQ(s->ops->since(s, INST, on0, all, 1, 1, 10, &p1), GW_STORE_OK);
	CHECK(p1.count == 1 && p1.max_seq == 2);
	gw_store_page_free(&p1);
	/* the re-read after a conflict: every user's seq, one round trip per shard */
	const char *ins[3] = {INST, INST, INST}, *us[3] = {on1, "nobody", on0};
	uint64_t got[3] = {9, 9, 9}, rt = gw_stat_get(GW_STAT_redis_round_trips);
	CHECK_INT_EQ(s->ops->max_seqs(s, ins, us, 3, got), GW_STORE_OK);
	CHECK(got[0] == 2 && got[1] == 0 && got[2] == 2);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_redis_round_trips) - rt, 2);
	struct claimed left = {{0}, 0};
	CHECK_INT_EQ(s->ops->pending(s, take, &left), GW_STORE_OK);
	CHECK_INT_EQ(left.n, 0);
	/* the notes really are on the other server: a fresh single-shard view of it sees them */
	redisContext *c = fixture_connect(&second);
	redisReply *r = c ? redisCommand(c, "KEYS gw:u:*:m") : NULL;
	CHECK(r && r->type == REDIS_REPLY_ARRAY && r->elements == on[1]);
	if (r)
		freeReplyObject(r);
	if (c)
		redisFree(c);
	s->ops->close(s);
	fixture_stop(&second);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	alarm(240); /* a hang is a failure, whatever the machine's speed */
	if (fixture_start(&srv, 1, NULL)) {
		fprintf(stderr, "cannot start %s\n", GW_REDIS_SERVER);
		return 1;
	}
	case_refusals();
	case_killed_and_aof();
	case_frozen();
	case_two_nodes();
	case_take_own();
	case_contiguous();
	case_wiped_epoch();
	case_two_shards();
	fixture_stop(&srv);
	return CHECK_DONE();
}
