/* Tests store.h against every engine with the same cases (data-driven over
 * the vtable): journal order and recovery, done atomicity across a simulated
 * crash, seq continuity, epoch, all-or-nothing since, patterns, inbox paging
 * and limits, read state, retention purge, the redelivery guard, concurrent
 * writers (group commit), the readiness ping (answers, is not counted as a
 * commit, and for SQLite reports a write lock another process holds); and, for SQLite only, a corrupt file, a foreign
 * database, a newer schema, an unwritable directory, a second process, and
 * a schema version 1 store migrated in place with everything in it kept.
 * Real SQLite in temporary directories; the redis engine against a real
 * redis-server this test starts on a free port (GW_REDIS_SERVER), each case
 * on an emptied server, "restart" = close and open a new handle. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../check.h"
#include "metrics.h"
#include "stats.h"
#include "store.h"
#ifdef GW_REDIS_SERVER
#include "redis_fixture.h"
static struct redis_fixture redis;
#endif

#define INST "ari:cloud:ecosystem::installation/1"

struct engine {
	const char *name;
	int durable; /* survives close + open */
};

static const struct engine engines[] = {
	{"sqlite", 1},
	{"memory", 0},
#ifdef GW_REDIS_SERVER
	{"redis", 1},
#endif
};

static int is_redis(const struct engine *e)
{
	return !strcmp(e->name, "redis");
}

struct t {
	const struct engine *e;
	char dir[512];
	struct gw_store_options opt;
	struct gw_store *s;
};

static int rm_rf(const char *path)
{
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd);
}

static void t_open(struct t *t)
{
	char msg[512] = "";
	struct gw_store_cluster cl = {0};
#ifdef GW_REDIS_SERVER
	const char *urls[] = {redis.url};
	cl = (struct gw_store_cluster){urls, 1, 2000, 10000, "test-node", 0, 0, 0};
#endif
	int rc = gw_store_open_ex(t->e->name, t->dir, &t->opt, is_redis(t->e) ? &cl : NULL, &t->s, msg,
				  sizeof(msg));
	if (rc)
		fprintf(stderr, "open %s: %s\n", t->e->name, msg);
	CHECK_INT_EQ(rc, GW_STORE_OK);
}

static void t_start(struct t *t, const struct engine *e, int64_t per_user)
{
	memset(t, 0, sizeof(*t));
	t->e = e;
	snprintf(t->dir, sizeof(t->dir), "%s/store-XXXXXX",
		 getenv("GW_TEST_TMP") ? getenv("GW_TEST_TMP") : "/tmp");
	CHECK(mkdtemp(t->dir) != NULL);
	t->opt = (struct gw_store_options){GW_STORE_OS, 30 * 86400, per_user};
#ifdef GW_REDIS_SERVER
	if (is_redis(e))
		CHECK_INT_EQ(fixture_cmd(&redis, "FLUSHALL"), 0);
#endif
	t_open(t);
}

/* A restart: the durable engines close and open again; the memory engine
 * keeps its handle (its contract is resume within the process). */
static void t_reopen(struct t *t)
{
	if (!t->e->durable)
		return;
	t->s->ops->close(t->s);
	t->s = NULL;
	t_open(t);
}

static void t_end(struct t *t)
{
	if (t->s)
		t->s->ops->close(t->s);
	rm_rf(t->dir);
}

static void key_of(int n, unsigned char key[GW_STORE_KEY_LEN])
{
	memset(key, 0, GW_STORE_KEY_LEN);
	memcpy(key, &n, sizeof(n));
	key[31] = 0x5a;
}

/* Journals one event with payload "event-<n>"; returns its id (0: dup). */
static uint64_t journal_one(struct t *t, int n, int keyed, int64_t now)
{
	char payload[32], trace[32];
	unsigned char key[GW_STORE_KEY_LEN];
	key_of(n, key);
	snprintf(payload, sizeof(payload), "event-%d", n);
	snprintf(trace, sizeof(trace), "trace-%d", n);
	struct gw_store_event ev = {INST, trace, now * 1000, keyed ? key : NULL, payload, strlen(payload)};
	struct gw_store_journaled out;
	CHECK_INT_EQ(t->s->ops->journal(t->s, &ev, 1, now, 900, &out), GW_STORE_OK);
	return out.id;
}

/* A note with realistic claims and proof text. Strings live in `buf`. */
struct note_buf {
	char id[40], claims[600], proof[200];
};

static struct gw_store_note make_note(struct note_buf *b, const char *user, const char *ctx, uint64_t seq,
				      int64_t created, int64_t exp)
{
	snprintf(b->id, sizeof(b->id), "%08llx%024llx", (unsigned long long)seq, (unsigned long long)created);
	snprintf(
		b->claims, sizeof(b->claims),
		"{\"iss\":\"notify-gateway\",\"installation\":\"%s\",\"sub\":\"%s\",\"ctx\":\"%s\",\"iat\":%lld,"
		"\"exp\":%lld,\"jti\":\"00\",\"seq\":%llu,\"n\":{\"id\":\"%s\",\"title\":\"t\"}}",
		INST, user, ctx, (long long)created, (long long)exp, (unsigned long long)seq, b->id);
	snprintf(b->proof, sizeof(b->proof), "{\"batch\":\"h.p.s\",\"index\":%llu,\"path\":[]}",
		 (unsigned long long)seq);
	return (struct gw_store_note){
		user,	 ctx, b->id, seq, b->claims, strlen(b->claims), b->proof, strlen(b->proof),
		created, exp};
}

/* Journals an event and records one note for user in ctx with seq. */
static int add_note(struct t *t, const char *user, const char *ctx, uint64_t seq, int64_t created,
		    int64_t exp)
{
	static int n = 100000;
	uint64_t id = journal_one(t, n++, 0, created);
	struct note_buf b;
	struct gw_store_note note = make_note(&b, user, ctx, seq, created, exp);
	struct gw_store_done d = {id, INST, &note, 1, NULL};
	int res = -99;
	int rc = t->s->ops->record(t->s, &d, 1, &res);
	return rc ? rc : res;
}

struct pending_list {
	uint64_t ids[64];
	char payloads[64][32];
	int keyed[64];
	size_t n;
};

static int collect(void *ud, uint64_t id, const struct gw_store_event *ev)
{
	struct pending_list *l = ud;
	if (l->n < 64) {
		l->ids[l->n] = id;
		snprintf(l->payloads[l->n], 32, "%.*s", (int)ev->payload_len, (const char *)ev->payload);
		l->keyed[l->n] = ev->key != NULL && !strcmp(ev->installation, INST);
		l->n++;
	}
	return 0;
}

static struct pending_list pending(struct t *t)
{
	struct pending_list l = {0};
	CHECK_INT_EQ(t->s->ops->pending(t->s, collect, &l), GW_STORE_OK);
	return l;
}

static void case_journal_recovery(const struct engine *e)
{
	struct t t;
	t_start(&t, e, 1000);
	struct gw_store_event ev[3];
	const char *payloads[] = {"event-1", "event-2", "event-3"};
	unsigned char keys[3][GW_STORE_KEY_LEN];
	for (int i = 0; i < 3; i++) {
		key_of(i + 1, keys[i]);
		ev[i] = (struct gw_store_event){INST, "tr", 1000, i == 1 ? NULL : keys[i], payloads[i], 7};
	}
	struct gw_store_journaled out[3];
	CHECK_INT_EQ(t.s->ops->journal(t.s, ev, 3, 1000, 900, out), GW_STORE_OK);
	CHECK(out[0].id && out[0].id < out[1].id && out[1].id < out[2].id);
	uint64_t id4 = journal_one(&t, 4, 1, 1000);
	uint64_t id5 = journal_one(&t, 5, 1, 1000);
	CHECK(id4 > out[2].id && id5 > id4);
	/* events 2 and 4 done, with and without notifications */
	struct note_buf b;
	struct gw_store_note note = make_note(&b, "u1", "issue-1", 1, 1000, 5000);
	struct gw_store_done d[2] = {{out[1].id, INST, &note, 1, NULL}, {id4, INST, NULL, 0, NULL}};
	int res[2];
	CHECK_INT_EQ(t.s->ops->record(t.s, d, 2, res), GW_STORE_OK);
	CHECK_INT_EQ(res[0], GW_STORE_OK);
	CHECK_INT_EQ(res[1], GW_STORE_OK);
	/* recording a done event again changes nothing */
	CHECK_INT_EQ(t.s->ops->record(t.s, d, 1, res), GW_STORE_OK);
	CHECK_INT_EQ(res[0], GW_STORE_NOT_PENDING);
	t_reopen(&t);
	struct pending_list l = pending(&t);
	CHECK_INT_EQ(l.n, 3);
	CHECK_INT_EQ(l.ids[0], out[0].id);
	CHECK_INT_EQ(l.ids[1], out[2].id);
	CHECK_INT_EQ(l.ids[2], id5);
	CHECK_STR_EQ(l.payloads[0], "event-1");
	CHECK_STR_EQ(l.payloads[1], "event-3");
	CHECK_STR_EQ(l.payloads[2], "event-5");
	CHECK(l.keyed[0] && l.keyed[1] && l.keyed[2]);
	/* ids keep growing after a restart */
	uint64_t id6 = journal_one(&t, 6, 1, 1000);
	CHECK(id6 > id5);
	t_end(&t);
}

static void case_done_atomic(const struct engine *e)
{
	struct t t;
	t_start(&t, e, 1000);
	/* A crash after journaling, before the done mark: the event is pending
	 * after the restart and none of its notifications exists. */
	uint64_t id = journal_one(&t, 1, 1, 1000);
	t_reopen(&t);
	struct pending_list l = pending(&t);
	CHECK_INT_EQ(l.n, 1);
	CHECK_INT_EQ(l.ids[0], id);
	uint64_t seq = 99;
	CHECK_INT_EQ(t.s->ops->max_seq(t.s, INST, "u1", &seq), GW_STORE_OK);
	CHECK_INT_EQ(seq, 0);
	/* A record call that fails (seq 1 twice) writes nothing at all: the
	 * first event's notes and done mark are not there either. */
	uint64_t id2 = journal_one(&t, 2, 1, 1000);
	struct note_buf b1, b2;
	struct gw_store_note n1 = make_note(&b1, "u1", "c", 1, 1000, 5000);
	struct gw_store_note n2 = make_note(&b2, "u1", "c", 1, 1000, 5000);
	struct gw_store_done d[2] = {{id, INST, &n1, 1, NULL}, {id2, INST, &n2, 1, NULL}};
	int res[2];
	CHECK(t.s->ops->record(t.s, d, 2, res) < 0);
	l = pending(&t);
	CHECK_INT_EQ(l.n, 2);
	CHECK_INT_EQ(t.s->ops->max_seq(t.s, INST, "u1", &seq), GW_STORE_OK);
	CHECK_INT_EQ(seq, 0);
	struct gw_store_page p;
	const char *all[] = {"*"};
	CHECK_INT_EQ(t.s->ops->inbox(t.s, INST, "u1", all, 1, NULL, 0, 50, &p), GW_STORE_OK);
	CHECK_INT_EQ(p.count, 0);
	gw_store_page_free(&p);
	/* done with its notes: both visible after a restart */
	n2.seq = 2;
	CHECK_INT_EQ(t.s->ops->record(t.s, d, 2, res), GW_STORE_OK);
	t_reopen(&t);
	CHECK_INT_EQ(pending(&t).n, 0);
	CHECK_INT_EQ(t.s->ops->inbox(t.s, INST, "u1", all, 1, NULL, 0, 50, &p), GW_STORE_OK);
	CHECK_INT_EQ(p.count, 2);
	CHECK(p.count == 2 && p.items[0].seq == 2 && !strcmp(p.items[0].claims, b2.claims) &&
	      !strcmp(p.items[0].proof, b2.proof));
	gw_store_page_free(&p);
	t_end(&t);
}

static void case_seq_epoch(const struct engine *e)
{
	struct t t;
	t_start(&t, e, 2);
	const char *epoch = t.s->ops->epoch(t.s);
	size_t elen = strlen(epoch);
	CHECK(elen >= 1 && elen <= GW_STORE_EPOCH_MAX);
	CHECK_INT_EQ(strspn(epoch, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"), elen);
	char first[GW_STORE_EPOCH_MAX + 1];
	snprintf(first, sizeof(first), "%s", epoch);
	for (uint64_t s = 1; s <= 3; s++)
		CHECK_INT_EQ(add_note(&t, "u1", "c", s, 1000, 1100), GW_STORE_OK);
	CHECK_INT_EQ(add_note(&t, "u2", "c", 7, 1000, 1100), GW_STORE_OK);
	t_reopen(&t);
	uint64_t seq = 0;
	CHECK_INT_EQ(t.s->ops->max_seq(t.s, INST, "u1", &seq), GW_STORE_OK);
	CHECK_INT_EQ(seq, 3);
	CHECK_INT_EQ(t.s->ops->max_seq(t.s, INST, "u2", &seq), GW_STORE_OK);
	CHECK_INT_EQ(seq, 7);
	CHECK_INT_EQ(t.s->ops->max_seq(t.s, "other-installation", "u1", &seq), GW_STORE_OK);
	CHECK_INT_EQ(seq, 0);
	CHECK_STR_EQ(t.s->ops->epoch(t.s), first);
	/* everything purged: the seq still continues */
	struct gw_store_purged pr;
	CHECK_INT_EQ(t.s->ops->purge(t.s, 1000 + 31 * 86400, 1000, &pr), GW_STORE_OK);
	CHECK_INT_EQ(pr.expired, 4);
	CHECK_INT_EQ(t.s->ops->max_seq(t.s, INST, "u1", &seq), GW_STORE_OK);
	CHECK_INT_EQ(seq, 3);
	/* a wiped database (or, in memory, a restart) has a new epoch */
	t.s->ops->close(t.s);
	t.s = NULL;
#ifdef GW_REDIS_SERVER
	if (is_redis(e))
		CHECK_INT_EQ(fixture_cmd(&redis, "FLUSHALL"), 0);
#endif
	if (e->durable && !is_redis(e)) {
		const char *files[] = {"notify.db", "notify.db-wal", "notify.db-shm"};
		for (int i = 0; i < 3; i++) {
			char p[600];
			snprintf(p, sizeof(p), "%s/%s", t.dir, files[i]);
			unlink(p);
		}
	}
	t_open(&t);
	CHECK(strcmp(t.s->ops->epoch(t.s), first) != 0);
	CHECK_INT_EQ(t.s->ops->max_seq(t.s, INST, "u1", &seq), GW_STORE_OK);
	CHECK_INT_EQ(seq, 0);
	t_end(&t);
}

static void case_since(const struct engine *e)
{
	struct t t;
	t_start(&t, e, 5);
	const char *ctxs[] = {"issue-1", "issue-2", "page-9", "issue-10"};
	for (uint64_t s = 1; s <= 10; s++)
		CHECK_INT_EQ(add_note(&t, "u1", ctxs[s % 4], s, 1000, 1100), GW_STORE_OK);
	const char *all[] = {"*"};
	struct gw_store_page p;
	CHECK_INT_EQ(t.s->ops->since(t.s, INST, "u1", all, 1, 0, 100, &p), GW_STORE_OK);
	CHECK(p.recovered);
	CHECK_INT_EQ(p.count, 10);
	CHECK_INT_EQ(p.max_seq, 10);
	CHECK_INT_EQ(p.oldest, 1);
	for (size_t i = 0; i < p.count; i++)
		CHECK_INT_EQ(p.items[i].seq, i + 1);
	gw_store_page_free(&p);
	/* up to date: recovered, nothing to send */
	CHECK_INT_EQ(t.s->ops->since(t.s, INST, "u1", all, 1, 10, 100, &p), GW_STORE_OK);
	CHECK(p.recovered && p.count == 0);
	gw_store_page_free(&p);
	/* above the user's seq (another epoch's numbers): not recovered */
	CHECK_INT_EQ(t.s->ops->since(t.s, INST, "u1", all, 1, 11, 100, &p), GW_STORE_OK);
	CHECK(!p.recovered && p.count == 0);
	gw_store_page_free(&p);
	/* a page: limit and more */
	CHECK_INT_EQ(t.s->ops->since(t.s, INST, "u1", all, 1, 3, 2, &p), GW_STORE_OK);
	CHECK(p.recovered && p.count == 2 && p.more && p.items[0].seq == 4 && p.items[1].seq == 5);
	gw_store_page_free(&p);
	/* patterns: prefix, exact, prefix that is also a whole name */
	const char *issues[] = {"issue-*"};
	CHECK_INT_EQ(t.s->ops->since(t.s, INST, "u1", issues, 1, 0, 100, &p), GW_STORE_OK);
	CHECK_INT_EQ(p.count, 7);
	for (size_t i = 0; i < p.count; i++)
		CHECK(!strncmp(p.items[i].ctx, "issue-", 6));
	gw_store_page_free(&p);
	const char *exact[] = {"issue-1"};
	CHECK_INT_EQ(t.s->ops->since(t.s, INST, "u1", exact, 1, 0, 100, &p), GW_STORE_OK);
	CHECK_INT_EQ(p.count, 2); /* seq 4, 8 */
	gw_store_page_free(&p);
	const char *one_star[] = {"issue-1*"};
	CHECK_INT_EQ(t.s->ops->since(t.s, INST, "u1", one_star, 1, 0, 100, &p), GW_STORE_OK);
	CHECK_INT_EQ(p.count, 4); /* issue-1 and issue-10 */
	gw_store_page_free(&p);
	const char *two[] = {"page-9", "issue-2"};
	CHECK_INT_EQ(t.s->ops->since(t.s, INST, "u1", two, 2, 0, 100, &p), GW_STORE_OK);
	CHECK_INT_EQ(p.count, 6);
	gw_store_page_free(&p);
	CHECK_INT_EQ(t.s->ops->since(t.s, INST, "u1", NULL, 0, 0, 100, &p), GW_STORE_OK);
	CHECK_INT_EQ(p.count, 0);
	gw_store_page_free(&p);
	/* a user never seen: recovered from 0, nothing to send */
	CHECK_INT_EQ(t.s->ops->since(t.s, INST, "nobody", all, 1, 0, 100, &p), GW_STORE_OK);
	CHECK(p.recovered && p.count == 0 && p.max_seq == 0 && p.oldest == 1);
	gw_store_page_free(&p);
	/* the cap (5) purges 1..5: oldest retained 6, so since 4 would miss 5 */
	struct gw_store_purged pr;
	CHECK_INT_EQ(t.s->ops->purge(t.s, 1050, 1000, &pr), GW_STORE_OK);
	CHECK_INT_EQ(pr.over_cap, 5);
	CHECK_INT_EQ(pr.expired, 0);
	t_reopen(&t);
	CHECK_INT_EQ(t.s->ops->since(t.s, INST, "u1", all, 1, 4, 100, &p), GW_STORE_OK);
	CHECK(!p.recovered && p.count == 0 && p.oldest == 6);
	gw_store_page_free(&p);
	CHECK_INT_EQ(t.s->ops->since(t.s, INST, "u1", all, 1, 5, 100, &p), GW_STORE_OK);
	CHECK(p.recovered && p.count == 5 && p.items[0].seq == 6 && p.items[4].seq == 10);
	gw_store_page_free(&p);
	/* all purged: oldest is max + 1; resuming at max is still complete */
	CHECK_INT_EQ(t.s->ops->purge(t.s, 1000 + 31 * 86400, 1000, &pr), GW_STORE_OK);
	CHECK_INT_EQ(pr.expired, 5);
	CHECK_INT_EQ(t.s->ops->since(t.s, INST, "u1", all, 1, 10, 100, &p), GW_STORE_OK);
	CHECK(p.recovered && p.count == 0 && p.oldest == 11);
	gw_store_page_free(&p);
	CHECK_INT_EQ(t.s->ops->since(t.s, INST, "u1", all, 1, 9, 100, &p), GW_STORE_OK);
	CHECK(!p.recovered);
	gw_store_page_free(&p);
	t_end(&t);
}

static void case_inbox(const struct engine *e)
{
	struct t t;
	t_start(&t, e, 1000);
	for (uint64_t s = 1; s <= 250; s++)
		CHECK_INT_EQ(add_note(&t, "u1", s % 2 ? "issue-1" : "page-2", s, 1000, 1100), GW_STORE_OK);
	CHECK_INT_EQ(add_note(&t, "u2", "issue-1", 1, 1000, 1100), GW_STORE_OK);
	const char *all[] = {"*"};
	struct gw_store_page p;
	/* limit clamped: 0 -> 1, 10,000 -> 200 */
	CHECK_INT_EQ(t.s->ops->inbox(t.s, INST, "u1", all, 1, NULL, 0, 0, &p), GW_STORE_OK);
	CHECK(p.count == 1 && p.more && p.items[0].seq == 250 && p.unread == 250 && !p.items[0].read);
	gw_store_page_free(&p);
	CHECK_INT_EQ(t.s->ops->inbox(t.s, INST, "u1", all, 1, NULL, 0, 10000, &p), GW_STORE_OK);
	CHECK_INT_EQ(p.count, GW_STORE_PAGE_MAX);
	CHECK(p.more);
	int ordered = 1;
	for (size_t i = 0; i < p.count; i++)
		ordered &= p.items[i].seq == 250 - i;
	CHECK(ordered);
	gw_store_page_free(&p);
	/* paging with before */
	CHECK_INT_EQ(t.s->ops->inbox(t.s, INST, "u1", all, 1, NULL, 51, 50, &p), GW_STORE_OK);
	CHECK(p.count == 50 && !p.more && p.items[0].seq == 50 && p.items[49].seq == 1);
	gw_store_page_free(&p);
	/* token patterns and a filter within them */
	const char *issues[] = {"issue-*"};
	CHECK_INT_EQ(t.s->ops->inbox(t.s, INST, "u1", issues, 1, NULL, 0, 200, &p), GW_STORE_OK);
	CHECK(p.count == 125 && !p.more && p.unread == 125 && !strcmp(p.items[0].ctx, "issue-1"));
	gw_store_page_free(&p);
	CHECK_INT_EQ(t.s->ops->inbox(t.s, INST, "u1", all, 1, "page-*", 0, 200, &p), GW_STORE_OK);
	CHECK(p.count == 125 && p.unread == 125 && !strcmp(p.items[0].ctx, "page-2"));
	gw_store_page_free(&p);
	/* a filter outside the token's patterns sees nothing */
	CHECK_INT_EQ(t.s->ops->inbox(t.s, INST, "u1", issues, 1, "page-2", 0, 200, &p), GW_STORE_OK);
	CHECK(p.count == 0 && p.unread == 0);
	gw_store_page_free(&p);
	CHECK_INT_EQ(t.s->ops->inbox(t.s, INST, "nobody", all, 1, NULL, 0, 20, &p), GW_STORE_OK);
	CHECK(p.count == 0 && p.unread == 0 && !p.more);
	gw_store_page_free(&p);
	t_end(&t);
}

static void case_mark(const struct engine *e)
{
	struct t t;
	t_start(&t, e, 1000);
	struct note_buf b[4];
	/* u1: seq 1 (issue-1), 2 (issue-1), 3 (page-2); u2: seq 1 */
	const char *ctx[] = {"issue-1", "issue-1", "page-2"};
	char ids[3][40], other[40];
	for (int i = 0; i < 3; i++) {
		CHECK_INT_EQ(add_note(&t, "u1", ctx[i], (uint64_t)i + 1, 1000 + i, 1100), GW_STORE_OK);
		make_note(&b[i], "u1", ctx[i], (uint64_t)i + 1, 1000 + i, 1100);
		memcpy(ids[i], b[i].id, sizeof(ids[i]));
	}
	CHECK_INT_EQ(add_note(&t, "u2", "issue-1", 9, 1000, 1100), GW_STORE_OK);
	make_note(&b[3], "u2", "issue-1", 9, 1000, 1100);
	memcpy(other, b[3].id, sizeof(other));

	const char *all[] = {"*"}, *issues[] = {"issue-*"};
	struct gw_store_marked m;
	const char *req[] = {ids[0], other, "no-such-id", ids[2]};
	/* token covers issue-*: ids[2] (page-2) and u2's id are ignored */
	CHECK_INT_EQ(t.s->ops->mark(t.s, INST, "u1", issues, 1, req, 4, 1, &m), GW_STORE_OK);
	CHECK(m.count == 1 && !strcmp(m.ids[0], ids[0]));
	CHECK_INT_EQ(m.unread, 1);
	gw_store_marked_free(&m);
	/* again: nothing changes */
	CHECK_INT_EQ(t.s->ops->mark(t.s, INST, "u1", issues, 1, req, 4, 1, &m), GW_STORE_OK);
	CHECK_INT_EQ(m.count, 0);
	gw_store_marked_free(&m);
	/* u2 unaffected */
	uint64_t unread = 0;
	CHECK_INT_EQ(t.s->ops->unread(t.s, INST, "u2", all, 1, NULL, &unread), GW_STORE_OK);
	CHECK_INT_EQ(unread, 1);
	t_reopen(&t);
	CHECK_INT_EQ(t.s->ops->unread(t.s, INST, "u1", all, 1, NULL, &unread), GW_STORE_OK);
	CHECK_INT_EQ(unread, 2);
	/* unread again */
	CHECK_INT_EQ(t.s->ops->mark(t.s, INST, "u1", all, 1, req, 4, 0, &m), GW_STORE_OK);
	CHECK(m.count == 1 && !strcmp(m.ids[0], ids[0]) && m.unread == 3);
	gw_store_marked_free(&m);
	/* the cap is the caller's to refuse; the store refuses more too */
	const char *many[GW_STORE_MARK_MAX_IDS + 1];
	for (size_t i = 0; i <= GW_STORE_MARK_MAX_IDS; i++)
		many[i] = ids[0];
	CHECK_INT_EQ(t.s->ops->mark(t.s, INST, "u1", all, 1, many, GW_STORE_MARK_MAX_IDS + 1, 1, &m),
		     GW_STORE_ERR_INVAL);
	CHECK_INT_EQ(t.s->ops->mark(t.s, INST, "u1", all, 1, many, GW_STORE_MARK_MAX_IDS, 1, &m),
		     GW_STORE_OK);
	CHECK_INT_EQ(m.count, 1);
	gw_store_marked_free(&m);
	/* mark_all within a filter, then everything */
	CHECK_INT_EQ(t.s->ops->mark_all(t.s, INST, "u1", all, 1, "issue-*", &m), GW_STORE_OK);
	CHECK(m.count == 1 && !strcmp(m.ids[0], ids[1]) && m.unread == 0);
	gw_store_marked_free(&m);
	CHECK_INT_EQ(t.s->ops->mark_all(t.s, INST, "u1", all, 1, NULL, &m), GW_STORE_OK);
	CHECK(m.count == 1 && !strcmp(m.ids[0], ids[2]) && m.unread == 0);
	gw_store_marked_free(&m);
	struct gw_store_page p;
	CHECK_INT_EQ(t.s->ops->inbox(t.s, INST, "u1", all, 1, NULL, 0, 10, &p), GW_STORE_OK);
	CHECK(p.count == 3 && p.items[0].read && p.items[1].read && p.items[2].read && p.unread == 0);
	gw_store_page_free(&p);
	CHECK_INT_EQ(t.s->ops->mark_all(t.s, INST, "nobody", all, 1, NULL, &m), GW_STORE_OK);
	CHECK_INT_EQ(m.count, 0);
	gw_store_marked_free(&m);
	t_end(&t);
}

static void case_purge(const struct engine *e)
{
	struct t t;
	t_start(&t, e, 3);
	int64_t day = 86400, now = 100 * day;
	/* retention is 30 days: kept until max(exp, created + 30 d) */
	CHECK_INT_EQ(add_note(&t, "u1", "c", 1, now - 40 * day, now - 39 * day), GW_STORE_OK); /* gone */
	CHECK_INT_EQ(add_note(&t, "u1", "c", 2, now - 40 * day, now + day), GW_STORE_OK); /* exp later */
	CHECK_INT_EQ(add_note(&t, "u1", "c", 3, now - 10 * day, now - 9 * day), GW_STORE_OK); /* retention */
	for (uint64_t s = 1; s <= 6; s++) /* u2: 6 recent, cap 3 */
		CHECK_INT_EQ(add_note(&t, "u2", "c", s, now, now + 60), GW_STORE_OK);
	/* bounded: 2 rows per call */
	struct gw_store_purged pr, sum = {0};
	int calls = 0;
	uint64_t stat_expired = gw_stat_get(GW_STAT_store_purged_expired);
	uint64_t stat_over = gw_stat_get(GW_STAT_store_purged_over_cap);
	do {
		CHECK_INT_EQ(t.s->ops->purge(t.s, now, 2, &pr), GW_STORE_OK);
		CHECK(pr.expired + pr.over_cap <= 2);
		sum.expired += pr.expired;
		sum.over_cap += pr.over_cap;
		calls++;
	} while (pr.more && calls < 20);
	CHECK_INT_EQ(sum.expired, 1);
	CHECK_INT_EQ(sum.over_cap, 3);
	CHECK(calls >= 2);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_store_purged_expired) - stat_expired, 1);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_store_purged_over_cap) - stat_over, 3);
	const char *all[] = {"*"};
	struct gw_store_page p;
	CHECK_INT_EQ(t.s->ops->inbox(t.s, INST, "u1", all, 1, NULL, 0, 50, &p), GW_STORE_OK);
	CHECK(p.count == 2 && p.items[0].seq == 3 && p.items[1].seq == 2);
	gw_store_page_free(&p);
	CHECK_INT_EQ(t.s->ops->inbox(t.s, INST, "u2", all, 1, NULL, 0, 50, &p), GW_STORE_OK);
	CHECK(p.count == 3 && p.items[0].seq == 6 && p.items[2].seq == 4);
	gw_store_page_free(&p);
	/* nothing left to do */
	CHECK_INT_EQ(t.s->ops->purge(t.s, now, 100, &pr), GW_STORE_OK);
	CHECK(pr.expired == 0 && pr.over_cap == 0 && !pr.more);
	t_end(&t);
}

static void case_redelivery(const struct engine *e)
{
	struct t t;
	t_start(&t, e, 1000);
	unsigned char k1[GW_STORE_KEY_LEN], k2[GW_STORE_KEY_LEN];
	key_of(1, k1);
	key_of(2, k2);
	CHECK_INT_EQ(t.s->ops->key_seen(t.s, k1, 1000), 0);
	CHECK(journal_one(&t, 1, 1, 1000) != 0);
	CHECK_INT_EQ(t.s->ops->key_seen(t.s, k1, 1000), 1);
	t_reopen(&t);
	/* a redelivery after a restart, within the ttl (900 s): not journaled */
	CHECK_INT_EQ(journal_one(&t, 1, 1, 1500), 0);
	CHECK_INT_EQ(pending(&t).n, 1);
	/* the same key twice in one batch: the first only */
	struct gw_store_event ev[2] = {{INST, "a", 0, k2, "x", 1}, {INST, "b", 0, k2, "y", 1}};
	struct gw_store_journaled out[2];
	CHECK_INT_EQ(t.s->ops->journal(t.s, ev, 2, 1500, 900, out), GW_STORE_OK);
	CHECK(out[0].rc == GW_STORE_OK && out[0].id && out[1].rc == GW_STORE_DUPLICATE && !out[1].id);
	/* a failing call journals nothing and remembers none of its keys */
	unsigned char k3[GW_STORE_KEY_LEN];
	key_of(3, k3);
	struct gw_store_event bad[2] = {{INST, "c", 0, k3, "z", 1}, {NULL, "d", 0, NULL, "w", 1}};
	CHECK_INT_EQ(t.s->ops->journal(t.s, bad, 2, 1500, 900, out), GW_STORE_ERR_INVAL);
	CHECK_INT_EQ(t.s->ops->key_seen(t.s, k3, 1500), 0);
	CHECK_INT_EQ(pending(&t).n, 2);
	t_reopen(&t);
	CHECK_INT_EQ(t.s->ops->key_seen(t.s, k3, 1500), 0);
	CHECK_INT_EQ(pending(&t).n, 2);
	CHECK(journal_one(&t, 3, 1, 1500) != 0);
	/* past the ttl the key is forgotten: accepted again */
	CHECK_INT_EQ(t.s->ops->key_seen(t.s, k1, 1901), 0);
	struct gw_store_purged pr;
	CHECK_INT_EQ(t.s->ops->purge(t.s, 1901, 100, &pr), GW_STORE_OK);
	CHECK_INT_EQ(pr.keys, 1);
	CHECK(journal_one(&t, 1, 1, 1901) != 0);
	CHECK_INT_EQ(pending(&t).n, 4);
	t_end(&t);
}

/* Proofs come back byte for byte, whatever their shape (the SQLite engine
 * keeps a pass's shared batch signature once); unreferenced batch rows go
 * with the purge. */
static void case_proofs(const struct engine *e)
{
	struct t t;
	t_start(&t, e, 1000);
	const char *proofs[] = {
		"{\"batch\":\"aa.bb.cc\",\"index\":0,\"path\":[\"x1\"]}",
		"{\"batch\":\"aa.bb.cc\",\"index\":1,\"path\":[\"x0\"]}", "{\"index\":2,\"path\":[]}",
		"{\"batch\":\"dd.ee.ff\",\"index\":0,\"path\":[]}", "{\"batch\":\"a\\\"b\",\"index\":0}"};
	struct gw_store_note notes[5];
	struct note_buf b[5];
	for (int i = 0; i < 5; i++) {
		notes[i] = make_note(&b[i], "u1", "c", (uint64_t)i + 1, 1000, 1100);
		notes[i].proof = proofs[i];
		notes[i].proof_len = strlen(proofs[i]);
	}
	uint64_t id = journal_one(&t, 1, 0, 1000);
	struct gw_store_done d = {id, INST, notes, 5, NULL};
	int res;
	CHECK_INT_EQ(t.s->ops->record(t.s, &d, 1, &res), GW_STORE_OK);
	t_reopen(&t);
	const char *all[] = {"*"};
	struct gw_store_page p;
	CHECK_INT_EQ(t.s->ops->since(t.s, INST, "u1", all, 1, 0, 10, &p), GW_STORE_OK);
	CHECK_INT_EQ(p.count, 5);
	for (size_t i = 0; i < p.count && i < 5; i++) {
		CHECK_STR_EQ(p.items[i].proof, proofs[i]);
		CHECK_INT_EQ(p.items[i].proof_len, strlen(proofs[i]));
	}
	gw_store_page_free(&p);
	struct gw_store_purged pr;
	CHECK_INT_EQ(t.s->ops->purge(t.s, 1000 + 31 * 86400, 100, &pr), GW_STORE_OK);
	CHECK_INT_EQ(pr.expired, 5);
	if (!strcmp(e->name, "sqlite")) {
		char cmd[700], out[64] = "";
		snprintf(cmd, sizeof(cmd), "sqlite3 '%s/notify.db' 'SELECT count(*) FROM batches'", t.dir);
		FILE *f = popen(cmd, "r");
		CHECK(f && fgets(out, sizeof(out), f));
		if (f)
			pclose(f);
		CHECK_STR_EQ(out, "0\n");
	}
	t_end(&t);
}

struct writer_arg {
	struct gw_store *s;
	int thread;
	int failures;
};

static void *writer(void *p)
{
	struct writer_arg *a = p;
	char user[16];
	snprintf(user, sizeof(user), "w%d", a->thread);
	for (uint64_t i = 1; i <= 50; i++) {
		char payload[16];
		snprintf(payload, sizeof(payload), "%d-%llu", a->thread, (unsigned long long)i);
		struct gw_store_event ev = {INST, "t", 0, NULL, payload, strlen(payload)};
		struct gw_store_journaled j;
		struct note_buf b;
		struct gw_store_note n = make_note(&b, user, "c", i, 1000, 1100);
		int res = -1;
		if (a->s->ops->journal(a->s, &ev, 1, 1000, 900, &j) || !j.id)
			a->failures++;
		struct gw_store_done d = {j.id, INST, &n, 1, NULL};
		if (a->s->ops->record(a->s, &d, 1, &res) || res != GW_STORE_OK)
			a->failures++;
	}
	return NULL;
}

static void case_concurrent(const struct engine *e)
{
	struct t t;
	t_start(&t, e, 1000);
	pthread_t th[4];
	struct writer_arg args[4];
	uint64_t commits = gw_stat_get(GW_STAT_store_commits),
		 reqs = gw_stat_get(GW_STAT_store_commit_requests);
	for (int i = 0; i < 4; i++) {
		args[i] = (struct writer_arg){t.s, i, 0};
		pthread_create(&th[i], NULL, writer, &args[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		CHECK_INT_EQ(args[i].failures, 0);
	}
	CHECK_INT_EQ(pending(&t).n, 0);
	if (e->durable) { /* 400 write calls, grouped into at most as many commits */
		CHECK_INT_EQ(gw_stat_get(GW_STAT_store_commit_requests) - reqs, 400);
		CHECK(gw_stat_get(GW_STAT_store_commits) - commits <= 400);
		fprintf(stderr, "  (group commit: 400 writes in %llu commits)\n",
			(unsigned long long)(gw_stat_get(GW_STAT_store_commits) - commits));
	}
	t_reopen(&t);
	for (int i = 0; i < 4; i++) {
		char user[16];
		uint64_t seq = 0;
		snprintf(user, sizeof(user), "w%d", i);
		CHECK_INT_EQ(t.s->ops->max_seq(t.s, INST, user, &seq), GW_STORE_OK);
		CHECK_INT_EQ(seq, 50);
	}
	t_end(&t);
}

/* The readiness round trip (store_probe.h): OK, and neither a commit nor a
 * commit time, so an idle gateway's metrics stay still; a journal next to
 * it still counts. */
static void case_ping(const struct engine *e)
{
	struct t t;
	t_start(&t, e, 1000);
	CHECK(t.s->ops->ping != NULL);
	uint64_t commits = gw_stat_get(GW_STAT_store_commits),
		 reqs = gw_stat_get(GW_STAT_store_commit_requests),
		 hist = gw_hist_count(GW_HIST_store_commit);
	for (int i = 0; i < 3; i++)
		CHECK_INT_EQ(t.s->ops->ping(t.s), GW_STORE_OK);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_store_commits) - commits, 0);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_store_commit_requests) - reqs, 0);
	CHECK_INT_EQ(gw_hist_count(GW_HIST_store_commit) - hist, 0);
	CHECK(journal_one(&t, 1, 1, 1000) != 0);
	if (strcmp(e->name, "memory")) { /* the engines with transactions time them */
		CHECK_INT_EQ(gw_stat_get(GW_STAT_store_commits) - commits, 1);
		CHECK_INT_EQ(gw_hist_count(GW_HIST_store_commit) - hist, 1);
	}
	t_end(&t);
}

/* ---- SQLite only: files that cannot be used ------------------------------ */

/* Another process (here: another connection, as the sqlite3 shell would)
 * holds the write lock: the ping waits the busy timeout and says LOCKED,
 * then answers again once the lock is gone. */
static void case_sqlite_ping_locked(void)
{
	struct t t;
	t_start(&t, &engines[0], 1000);
	char db[600];
	snprintf(db, sizeof(db), "%s/notify.db", t.dir);
	sqlite3 *other = NULL;
	CHECK_INT_EQ(sqlite3_open(db, &other), SQLITE_OK);
	CHECK_INT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	uint64_t failed = gw_stat_get(GW_STAT_store_write_errors);
	CHECK_INT_EQ(t.s->ops->ping(t.s), GW_STORE_ERR_LOCKED);
	CHECK_INT_EQ(gw_stat_get(GW_STAT_store_write_errors) - failed, 0); /* the probe counts its own */
	CHECK_INT_EQ(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	CHECK_INT_EQ(t.s->ops->ping(t.s), GW_STORE_OK);
	t_end(&t);
}

static int open_sqlite(const char *dir, char *msg, size_t msglen, struct gw_store **s)
{
	struct gw_store_options o = {GW_STORE_FSYNC, 86400, 10};
	return gw_store_open("sqlite", dir, &o, s, msg, msglen);
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char p[600];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "wb");
	CHECK(f != NULL);
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void case_sqlite_refusals(void)
{
	char dir[512], msg[512];
	struct gw_store *s = NULL;
	snprintf(dir, sizeof(dir), "%s/store-bad-XXXXXX",
		 getenv("GW_TEST_TMP") ? getenv("GW_TEST_TMP") : "/tmp");
	CHECK(mkdtemp(dir) != NULL);

	/* garbage */
	char garbage[8192];
	for (size_t i = 0; i < sizeof(garbage) - 1; i++)
		garbage[i] = (char)('A' + (i * 7919) % 26);
	garbage[sizeof(garbage) - 1] = '\0';
	write_file(dir, "notify.db", garbage);
	msg[0] = '\0';
	CHECK_INT_EQ(open_sqlite(dir, msg, sizeof(msg), &s), GW_STORE_ERR_CORRUPT);
	CHECK(s == NULL);
	CHECK(strstr(msg, "notify.db") && strstr(msg, "not a") && strstr(msg, "move it away"));
	fprintf(stderr, "  (garbage: %s)\n", msg);

	/* an SQLite file that is someone else's */
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "rm -f '%s/notify.db' && sqlite3 '%s/notify.db' 'CREATE TABLE t(x)'", dir,
		 dir);
	CHECK_INT_EQ(system(cmd), 0);
	CHECK_INT_EQ(open_sqlite(dir, msg, sizeof(msg), &s), GW_STORE_ERR_CORRUPT);
	CHECK(strstr(msg, "not a notify-gateway store") != NULL);

	/* a newer schema */
	snprintf(cmd, sizeof(cmd),
		 "rm -f '%s/notify.db' && sqlite3 '%s/notify.db' 'PRAGMA user_version = 99'", dir, dir);
	CHECK_INT_EQ(system(cmd), 0);
	CHECK_INT_EQ(open_sqlite(dir, msg, sizeof(msg), &s), GW_STORE_ERR_VERSION);
	CHECK(strstr(msg, "newer") != NULL);

	/* a second process (or handle) on the same store */
	snprintf(cmd, sizeof(cmd), "rm -f '%s'/notify.db*", dir);
	CHECK_INT_EQ(system(cmd), 0);
	struct gw_store *first = NULL;
	CHECK_INT_EQ(open_sqlite(dir, msg, sizeof(msg), &first), GW_STORE_OK);
	CHECK_INT_EQ(open_sqlite(dir, msg, sizeof(msg), &s), GW_STORE_ERR_LOCKED);
	CHECK(strstr(msg, "another") != NULL);
	if (first)
		first->ops->close(first);
	CHECK_INT_EQ(open_sqlite(dir, msg, sizeof(msg), &s), GW_STORE_OK);
	if (s)
		s->ops->close(s);
	s = NULL;

	/* a state dir that is a file */
	char file_dir[600];
	snprintf(file_dir, sizeof(file_dir), "%s/plain-file", dir);
	write_file(dir, "plain-file", "x");
	CHECK_INT_EQ(open_sqlite(file_dir, msg, sizeof(msg), &s), GW_STORE_ERR_ACCESS);

	/* an unwritable directory, as an unprivileged user (root writes anyway) */
	char ro[600];
	snprintf(ro, sizeof(ro), "%s/readonly", dir);
	CHECK_INT_EQ(mkdir(ro, 0755), 0);
	CHECK_INT_EQ(chmod(dir, 0755), 0); /* the unprivileged user may enter, not write */
	pid_t pid = fork();
	if (pid == 0) {
		if (geteuid() == 0) {
			struct passwd *pw = getpwnam("nobody");
			if (!pw || setgid(pw->pw_gid) || setuid(pw->pw_uid))
				_exit(90);
		} else if (chmod(ro, 0555)) {
			_exit(91);
		}
		char m[512] = "";
		struct gw_store *x = NULL;
		int rc = open_sqlite(ro, m, sizeof(m), &x);
		fprintf(stderr, "  (unwritable: %s)\n", m);
		_exit(rc == GW_STORE_ERR_ACCESS && strstr(m, "write access") ? 0 : 1);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	chmod(ro, 0755);
	rm_rf(dir);
}

/* Schema version 1 exactly as gateways before version 2 created it, and
 * rows such a gateway wrote. */
static const char V1_SCHEMA[] =
	"CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE journal(id INTEGER PRIMARY KEY AUTOINCREMENT, installation TEXT NOT NULL,"
	" trace_id TEXT NOT NULL, received_ms INTEGER NOT NULL, key BLOB, payload BLOB NOT NULL);"
	"CREATE TABLE redelivery(id INTEGER PRIMARY KEY, key BLOB NOT NULL, expires INTEGER NOT NULL);"
	"CREATE INDEX redelivery_expires ON redelivery(expires);"
	"CREATE TABLE users(uid INTEGER PRIMARY KEY, installation TEXT NOT NULL, user TEXT NOT NULL,"
	" max_seq INTEGER NOT NULL DEFAULT 0, stored INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE(installation, user));"
	"CREATE TABLE batches(id INTEGER PRIMARY KEY, jws TEXT NOT NULL);"
	"CREATE TABLE notes(id INTEGER PRIMARY KEY, uid INTEGER NOT NULL REFERENCES users(uid),"
	" seq INTEGER NOT NULL, ctx TEXT NOT NULL, nid TEXT NOT NULL, created INTEGER NOT NULL,"
	" exp INTEGER NOT NULL, read INTEGER NOT NULL DEFAULT 0, claims TEXT NOT NULL,"
	" batch INTEGER REFERENCES batches(id), proof TEXT NOT NULL);"
	"CREATE INDEX notes_batch ON notes(batch) WHERE batch IS NOT NULL;"
	"CREATE UNIQUE INDEX notes_user_seq ON notes(uid, seq);"
	"CREATE INDEX notes_user_nid ON notes(uid, nid);"
	"CREATE INDEX notes_unread ON notes(uid, ctx) WHERE read = 0;"
	"CREATE INDEX notes_age ON notes(created, exp);"
	"CREATE TRIGGER notes_count_ins AFTER INSERT ON notes BEGIN"
	" UPDATE users SET stored = stored + 1 WHERE uid = new.uid; END;"
	"CREATE TRIGGER notes_count_del AFTER DELETE ON notes BEGIN"
	" UPDATE users SET stored = stored - 1 WHERE uid = old.uid; END;"
	"INSERT INTO meta VALUES('epoch', '0123456789abcdef0123456789abcdef'), ('created', '2026-11-01T00:00:00Z');"
	"INSERT INTO journal VALUES(41, 'ari:cloud:ecosystem::installation/1', 'trace-v1', 1000000,"
	" x'070000000000000000000000000000000000000000000000000000000000005a', 'event-v1');"
	"INSERT INTO redelivery VALUES(1, x'080000000000000000000000000000000000000000000000000000000000005a', 500);"
	"INSERT INTO redelivery VALUES(2, x'070000000000000000000000000000000000000000000000000000000000005a', 1900);"
	"INSERT INTO redelivery VALUES(3, x'080000000000000000000000000000000000000000000000000000000000005a', 2000);"
	"INSERT INTO users(uid, installation, user, max_seq) VALUES(1, 'ari:cloud:ecosystem::installation/1', 'u1', 2);"
	"INSERT INTO batches VALUES(1, 'h.p.s');"
	"INSERT INTO notes VALUES(1, 1, 1, 'c', 'n1', 1000, 5000, 1, '{\"seq\":1}', 1, ',\"index\":0}');"
	"INSERT INTO notes VALUES(2, 1, 2, 'c', 'n2', 1000, 5000, 0, '{\"seq\":2}', 1, ',\"index\":1}');"
	"PRAGMA user_version = 1;";

static long long sql_int(const char *db, const char *sql)
{
	sqlite3 *c = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;
	if (sqlite3_open(db, &c) == SQLITE_OK && sqlite3_prepare_v2(c, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(c);
	return v;
}

/* A store written by schema version 1 opens, is migrated to the current
 * version in place (every step since) and keeps everything: epoch, pending
 * events, redelivery keys (the later expiry of a key stored twice),
 * notifications with their proofs, seq, read state, per-user counts. */
static void case_sqlite_migrate_v1(void)
{
	char dir[512], db[600], msg[512] = "";
	snprintf(dir, sizeof(dir), "%s/store-v1-XXXXXX",
		 getenv("GW_TEST_TMP") ? getenv("GW_TEST_TMP") : "/tmp");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(db, sizeof(db), "%s/notify.db", dir);
	sqlite3 *c = NULL;
	CHECK_INT_EQ(sqlite3_open(db, &c), SQLITE_OK);
	CHECK_INT_EQ(sqlite3_exec(c, "PRAGMA journal_mode = WAL", NULL, NULL, NULL), SQLITE_OK);
	CHECK_INT_EQ(sqlite3_exec(c, V1_SCHEMA, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(c);

	struct gw_store *s = NULL;
	CHECK_INT_EQ(open_sqlite(dir, msg, sizeof(msg), &s), GW_STORE_OK);
	if (!s) {
		fprintf(stderr, "  (v1: %s)\n", msg);
		rm_rf(dir);
		return;
	}
	CHECK_STR_EQ(s->ops->epoch(s), "0123456789abcdef0123456789abcdef");
	struct t t = {.s = s};
	struct pending_list l = pending(&t);
	CHECK_INT_EQ(l.n, 1);
	CHECK(l.n == 1 && l.ids[0] == 41 && !strcmp(l.payloads[0], "event-v1") && l.keyed[0]);
	unsigned char k7[GW_STORE_KEY_LEN], k8[GW_STORE_KEY_LEN];
	key_of(7, k7);
	key_of(8, k8);
	CHECK_INT_EQ(s->ops->key_seen(s, k7, 1000), 1);
	CHECK_INT_EQ(s->ops->key_seen(s, k8, 1500), 1); /* 2000, not 500 */
	uint64_t seq = 0;
	CHECK_INT_EQ(s->ops->max_seq(s, INST, "u1", &seq), GW_STORE_OK);
	CHECK_INT_EQ(seq, 2);
	const char *all[] = {"*"};
	struct gw_store_page p;
	CHECK_INT_EQ(s->ops->since(s, INST, "u1", all, 1, 0, 10, &p), GW_STORE_OK);
	CHECK(p.recovered && p.count == 2);
	if (p.count == 2) {
		CHECK_STR_EQ(p.items[1].proof, "{\"batch\":\"h.p.s\",\"index\":1}");
		CHECK_STR_EQ(p.items[1].claims, "{\"seq\":2}");
		CHECK(p.items[0].read == 1 && p.items[1].read == 0);
	}
	gw_store_page_free(&p);
	uint64_t unread = 0;
	CHECK_INT_EQ(s->ops->unread(s, INST, "u1", all, 1, NULL, &unread), GW_STORE_OK);
	CHECK_INT_EQ(unread, 1);
	/* read state through the new index: n2 read, n1 unread again */
	const char *ids[] = {"n2", "n1"};
	struct gw_store_marked m;
	CHECK_INT_EQ(s->ops->mark(s, INST, "u1", all, 1, ids, 1, 1, &m), GW_STORE_OK);
	CHECK(m.count == 1 && !strcmp(m.ids[0], "n2") && m.unread == 0);
	gw_store_marked_free(&m);
	CHECK_INT_EQ(s->ops->mark(s, INST, "u1", all, 1, ids + 1, 1, 0, &m), GW_STORE_OK);
	CHECK(m.count == 1 && !strcmp(m.ids[0], "n1") && m.unread == 1);
	gw_store_marked_free(&m);
	/* the pending event is recorded (done) with a third note; a new event
	 * gets a journal id after the old ones */
	struct note_buf b;
	struct gw_store_note n3 = make_note(&b, "u1", "c", 3, 1000, 5000);
	struct gw_store_done d = {41, INST, &n3, 1, NULL};
	int res = -99;
	CHECK_INT_EQ(s->ops->record(s, &d, 1, &res), GW_STORE_OK);
	CHECK_INT_EQ(res, GW_STORE_OK);
	CHECK(journal_one(&t, 9, 1, 1200) > 41); /* its key expires at 2100 */
	struct gw_store_purged pr;
	CHECK_INT_EQ(s->ops->purge(s, 1950, 100, &pr), GW_STORE_OK);
	CHECK_INT_EQ(pr.keys, 2); /* 500 and 1900 */
	CHECK_INT_EQ(s->ops->key_seen(s, k7, 1950), 0);
	CHECK_INT_EQ(s->ops->key_seen(s, k8, 1950), 1);
	s->ops->close(s);
	CHECK_INT_EQ(sql_int(db, "PRAGMA user_version"), 3);
	CHECK_INT_EQ(sql_int(db, "SELECT stored FROM users WHERE user = 'u1'"), 3);
	CHECK_INT_EQ(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('notes_count_ins',"
				 " 'redelivery_expires', 'redelivery_v2', 'notes_user_nid', 'notes_unread')"),
		     0);
	CHECK_INT_EQ(sql_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'notes_user_state'"), 1);
	CHECK_INT_EQ(sql_int(db, "SELECT count(*) FROM redelivery"), 2); /* k8 at 2000, k9 */
	/* and it opens again as it is */
	CHECK_INT_EQ(open_sqlite(dir, msg, sizeof(msg), &s), GW_STORE_OK);
	if (s)
		s->ops->close(s);
	rm_rf(dir);
}

int main(void)
{
#ifdef GW_REDIS_SERVER
	if (fixture_start(&redis, 1, NULL)) {
		fprintf(stderr, "cannot start %s\n", GW_REDIS_SERVER);
		return 1;
	}
#endif
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++) {
		const struct engine *e = &engines[i];
		int before = check_failures;
		case_journal_recovery(e);
		case_done_atomic(e);
		case_seq_epoch(e);
		case_since(e);
		case_inbox(e);
		case_mark(e);
		case_purge(e);
		case_redelivery(e);
		case_concurrent(e);
		case_proofs(e);
		case_ping(e);
		fprintf(stderr, "%s: %d failed\n", e->name, check_failures - before);
	}
	case_sqlite_refusals();
	case_sqlite_ping_locked();
	case_sqlite_migrate_v1();
#ifdef GW_REDIS_SERVER
	fixture_stop(&redis);
#endif
	return CHECK_DONE();
}
