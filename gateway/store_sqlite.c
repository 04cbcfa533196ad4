/* store_sqlite.c - the store contract (store.h) on SQLite: STATE_DIR/notify.db.
 *
 * The only file that knows SQL. Layout, durability and retention are
 * described for admins in docs/storage.md (keep it in step with SCHEMA).
 *
 * Connections: one writer and one reader (WAL: the reader sees the last
 * committed state and never waits for the writer).
 *  - Writes go through group commit: a caller queues its request; if no
 *    commit is running it becomes the leader, takes every queued request
 *    and runs them in one transaction (each inside its own SAVEPOINT, so a
 *    failing request does not undo the others), commits once (one fsync
 *    with durability fsync), and wakes the callers. Requests that arrive
 *    during a commit wait for the next one, which then carries all of them.
 *  - Reads take the reader's mutex; since() reads inside one transaction so
 *    the oldest retained seq and the rows come from one snapshot.
 * Prepared statements are made once at open and reset after use.
 *
 * Durability (PRAGMA synchronous, WAL):
 *  - fsync (FULL): the WAL is fsynced at every commit: a call that returned
 *    survives a process crash, a kernel crash and a power loss (given a disk
 *    that honours flushes).
 *  - os (NORMAL): commits are written to the WAL (the OS page cache) and
 *    fsynced only at checkpoints: a returned call survives a crash of the
 *    process, not of the machine (the last commits may roll back; the file
 *    stays consistent).
 *
 * Exclusive use: the database file is flock()ed for the handle's life, so a
 * second gateway on the same state dir gets GW_STORE_ERR_LOCKED instead of
 * replaying the same journal (the sqlite3 shell does not take that lock and
 * can read while the gateway runs).
 *
 * Threads: any, except the lws service thread (every call may block on I/O).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics.h"
#include "stats.h"
#include "store.h"
#include "strmap.h"
#include "util.h"

#define SCHEMA_VERSION 1
#define PURGE_USERS_PER_STEP 64
#define BUSY_TIMEOUT_MS 5000

/* Migrations: SCHEMA[v] takes user_version v to v + 1. Never edit a step
 * that has shipped; append one. */
static const char *const SCHEMA[SCHEMA_VERSION] = {
	/* 0 -> 1 */
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
	" UPDATE users SET stored = stored - 1 WHERE uid = old.uid; END;",
};

/* Writer statements (leader only). */
enum wst {
	W_BEGIN, W_COMMIT, W_ROLLBACK, W_SAVEPOINT, W_RELEASE, W_ROLLBACK_TO,
	W_KEY_PUT, W_JOURNAL_ADD, W_JOURNAL_DONE, W_USER_UPSERT, W_NOTE_ADD, W_USER_GET,
	W_MARK, W_MARK_ALL, W_UNREAD, W_PURGE_AGE, W_PURGE_USERS, W_PURGE_OLDEST, W_PURGE_KEYS,
	W_BATCH_ADD, W_PURGE_BATCHES, W__COUNT
};
static const char *const WSQL[W__COUNT] = {
	[W_BEGIN] = "BEGIN IMMEDIATE",
	[W_COMMIT] = "COMMIT",
	[W_ROLLBACK] = "ROLLBACK",
	[W_SAVEPOINT] = "SAVEPOINT req",
	[W_RELEASE] = "RELEASE req",
	[W_ROLLBACK_TO] = "ROLLBACK TO req",
	[W_KEY_PUT] = "INSERT INTO redelivery(key, expires) VALUES(?1, ?2)",
	[W_JOURNAL_ADD] = "INSERT INTO journal(installation, trace_id, received_ms, key, payload)"
			  " VALUES(?1, ?2, ?3, ?4, ?5)",
	[W_JOURNAL_DONE] = "DELETE FROM journal WHERE id = ?1",
	[W_USER_UPSERT] = "INSERT INTO users(installation, user, max_seq) VALUES(?1, ?2, ?3)"
			  " ON CONFLICT(installation, user) DO UPDATE SET max_seq = max(max_seq, excluded.max_seq)"
			  " RETURNING uid",
	[W_NOTE_ADD] = "INSERT INTO notes(uid, seq, ctx, nid, created, exp, claims, batch, proof)"
		       " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[W_BATCH_ADD] = "INSERT INTO batches(jws) VALUES(?1)",
	[W_PURGE_BATCHES] = "DELETE FROM batches WHERE id IN (SELECT id FROM batches b WHERE id > ?1"
			    " AND NOT EXISTS (SELECT 1 FROM notes WHERE batch = b.id) ORDER BY id LIMIT ?2)"
			    " RETURNING id",
	[W_USER_GET] = "SELECT uid FROM users WHERE installation = ?1 AND user = ?2",
	[W_MARK] = "UPDATE notes SET read = ?3 WHERE uid = ?1 AND nid = ?2 AND read <> ?3"
		   " AND gw_visible(ctx, ?4) RETURNING nid, ctx",
	[W_MARK_ALL] = "UPDATE notes SET read = 1 WHERE uid = ?1 AND read = 0 AND gw_visible(ctx, ?2)"
		       " RETURNING nid, ctx",
	[W_UNREAD] = "SELECT count(*) FROM notes WHERE uid = ?1 AND read = 0 AND gw_visible(ctx, ?2)",
	[W_PURGE_AGE] = "DELETE FROM notes WHERE id IN (SELECT id FROM notes"
			" WHERE created < ?1 AND exp < ?2 LIMIT ?3)",
	[W_PURGE_USERS] = "SELECT uid, stored FROM users WHERE uid > ?1 AND stored > ?2 ORDER BY uid LIMIT ?3",
	[W_PURGE_OLDEST] = "DELETE FROM notes WHERE id IN (SELECT id FROM notes WHERE uid = ?1"
			   " ORDER BY seq LIMIT ?2)",
	[W_PURGE_KEYS] = "DELETE FROM redelivery WHERE id IN (SELECT id FROM redelivery"
			 " WHERE expires <= ?1 ORDER BY expires LIMIT ?2) RETURNING key, expires",
};

/* A proof {"batch":"<JWS>",...} is stored as a batches row (one per signed
 * pass, shared by its notes) and the rest of the text; this puts it back
 * together byte for byte. Other proofs are stored whole (batch NULL). */
#define PROOF_SQL " CASE WHEN n.batch IS NULL THEN n.proof ELSE '{\"batch\":\"' || b.jws || '\"' || n.proof END"

/* Reader statements (reader mutex). */
enum rst {
	R_BEGIN, R_COMMIT, R_PENDING, R_USER_GET, R_OLDEST, R_SINCE, R_INBOX, R_UNREAD,
	R__COUNT
};
static const char *const RSQL[R__COUNT] = {
	[R_BEGIN] = "BEGIN",
	[R_COMMIT] = "COMMIT",
	[R_PENDING] = "SELECT id, installation, trace_id, received_ms, key, payload FROM journal ORDER BY id",
	[R_USER_GET] = "SELECT uid, max_seq FROM users WHERE installation = ?1 AND user = ?2",
	[R_OLDEST] = "SELECT min(seq) FROM notes WHERE uid = ?1",
	[R_SINCE] = "SELECT seq, ctx, nid, created, exp, read, claims," PROOF_SQL " FROM notes n"
		    " LEFT JOIN batches b ON b.id = n.batch"
		    " WHERE uid = ?1 AND seq > ?2 AND gw_visible(ctx, ?3) ORDER BY seq LIMIT ?4",
	[R_INBOX] = "SELECT seq, ctx, nid, created, exp, read, claims," PROOF_SQL " FROM notes n"
		    " LEFT JOIN batches b ON b.id = n.batch"
		    " WHERE uid = ?1 AND seq < ?2 AND gw_visible(ctx, ?3) ORDER BY seq DESC LIMIT ?4",
	[R_UNREAD] = "SELECT count(*) FROM notes WHERE uid = ?1 AND read = 0 AND gw_visible(ctx, ?2)",
};

/* What gw_visible(ctx, ?) tests, bound with sqlite3_bind_pointer. */
struct vis {
	const char *const *pats;
	size_t npats;
	const char *filter;
};
static const char VIS_TYPE[] = "gw_store_visibility";

struct sstore;
struct wreq;
typedef int (*wfn)(struct sstore *s, struct wreq *r);

struct wreq {
	struct wreq *next;
	wfn fn;
	void (*undo)(struct sstore *s, struct wreq *r); /* its effects were rolled back */
	void *arg;
	int rc;
	int done;
	int quiet; /* a readiness ping (store.h): not counted as a write */
};

struct sstore {
	struct gw_store base;
	struct gw_store_options opt;
	char epoch[33];
	char *path;
	int lock_fd;
	sqlite3 *w, *r;
	sqlite3_stmt *ws[W__COUNT], *rs[R__COUNT];
	pthread_mutex_t rlock;
	/* group commit */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct wreq *queue, **queue_tail;
	int leader_active;
	int64_t purge_cursor; /* writer only: the next uid the per-user cap looks at */
	/* The redelivery guard's lookups are served from memory: keys are
	 * SHA-256 digests, so an on-disk index of them would take a random
	 * page per event (half of the bytes written per event, measured).
	 * The table is append-only and loaded at open. */
	pthread_mutex_t klock;
	struct gw_strmap keys; /* key -> expires (int64 in the pointer) */
	int64_t batch_cursor; /* writer only: where the purge of unreferenced batches resumes */
	/* writer only: the last batch JWS stored and its row (notes of one pass
	 * come in a row); cleared on every rollback and batch purge */
	char *last_jws;
	int64_t last_batch;
};

#define S(s) ((struct sstore *)(s))

static int map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE: return GW_STORE_OK;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
	case SQLITE_FORMAT: return GW_STORE_ERR_CORRUPT;
	case SQLITE_CANTOPEN:
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH: return GW_STORE_ERR_ACCESS;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return GW_STORE_ERR_LOCKED;
	case SQLITE_NOMEM: return GW_STORE_ERR_NOMEM;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE: return GW_STORE_ERR_INVAL;
	default: return GW_STORE_ERR_IO;
	}
}

static void vis_func(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
	const struct vis *v = sqlite3_value_pointer(argv[1], VIS_TYPE);
	const char *ctx = (const char *)sqlite3_value_text(argv[0]);
	sqlite3_result_int(cx, v && ctx && gw_store_visible(v->pats, v->npats, v->filter, ctx));
}

/* Runs a statement that returns no rows we need; resets it. */
static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	while (rc == SQLITE_ROW)
		rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? GW_STORE_OK : map_rc(rc);
}

static const char *s_epoch(struct gw_store *s)
{
	return S(s)->epoch;
}

/* ---- group commit -------------------------------------------------------- */

static void forget_batch(struct sstore *s)
{
	free(s->last_jws);
	s->last_jws = NULL;
	s->last_batch = 0;
}


/* Runs fn(arg) in a write transaction shared with concurrent callers and
 * returns once it is committed (or failed). quiet: see wreq. */
static int submit_ex(struct sstore *s, wfn fn, void (*undo)(struct sstore *, struct wreq *), void *arg, int quiet)
{
	struct wreq req = {.fn = fn, .undo = undo, .arg = arg, .quiet = quiet};
	pthread_mutex_lock(&s->qlock);
	*s->queue_tail = &req;
	s->queue_tail = &req.next;
	while (!req.done) {
		if (s->leader_active) {
			pthread_cond_wait(&s->qcond, &s->qlock);
			continue;
		}
		/* Lead: take the whole queue and commit it in one transaction. */
		s->leader_active = 1;
		struct wreq *batch = s->queue;
		s->queue = NULL;
		s->queue_tail = &s->queue;
		pthread_mutex_unlock(&s->qlock);

		int64_t began_ns = gw_monotonic_ns(); /* the store_commit histogram (metrics.h) */
		int trc = step_done(s->ws[W_BEGIN]);
		for (struct wreq *q = batch; q; q = q->next) {
			if (trc) {
				q->rc = trc;
				continue;
			}
			int src = step_done(s->ws[W_SAVEPOINT]);
			q->rc = src ? src : q->fn(s, q);
			if (q->rc < 0 && !src) {
				step_done(s->ws[W_ROLLBACK_TO]);
				forget_batch(s); /* its row may be gone */
			}
			if (q->rc < 0 && q->undo)
				q->undo(s, q);
			if (!src)
				step_done(s->ws[W_RELEASE]);
		}
		if (!trc) {
			trc = step_done(s->ws[W_COMMIT]);
			if (trc) {
				step_done(s->ws[W_ROLLBACK]);
				forget_batch(s);
				for (struct wreq *q = batch; q; q = q->next)
					if (q->rc >= 0) {
						q->rc = trc;
						if (q->undo)
							q->undo(s, q);
					}
			}
		}

		size_t nreq = 0, nfailed = 0;
		for (struct wreq *q = batch; q; q = q->next) {
			nreq += !q->quiet;
			nfailed += !q->quiet && q->rc < 0;
		}
		/* A commit that carried only pings wrote nothing: it is not one
		 * the metrics should show (an idle gateway would count one a second). */
		if (!trc && nreq) {
			gw_stat_inc(GW_STAT_store_commits);
			gw_hist_observe_ns(GW_HIST_store_commit, gw_monotonic_ns() - began_ns);
		}
		gw_stat_add(GW_STAT_store_commit_requests, nreq);
		gw_stat_add(GW_STAT_store_write_errors, nfailed);
		pthread_mutex_lock(&s->qlock);
		for (struct wreq *q = batch, *next; q; q = next) {
			next = q->next;
			q->done = 1;
		}
		s->leader_active = 0;
		pthread_cond_broadcast(&s->qcond);
	}
	pthread_mutex_unlock(&s->qlock);
	return req.rc;
}

static int submit(struct sstore *s, wfn fn, void (*undo)(struct sstore *, struct wreq *), void *arg)
{
	return submit_ex(s, fn, undo, arg, 0);
}

static int do_nothing(struct sstore *s, struct wreq *r)
{
	(void)s;
	(void)r;
	return GW_STORE_OK;
}

/* BEGIN IMMEDIATE takes the write lock (waiting up to BUSY_TIMEOUT_MS for
 * another process holding it), COMMIT of nothing writes nothing. */
static int s_ping(struct gw_store *s)
{
	return submit_ex(S(s), do_nothing, NULL, NULL, 1);
}

/* ---- journal --------------------------------------------------------------- */

struct journal_args {
	const struct gw_store_event *ev;
	size_t n;
	int64_t now, ttl;
	struct gw_store_journaled *out;
	size_t nadded; /* keys this request put in the map (undone on rollback) */
	const unsigned char **added;
};

static int key_known(struct sstore *s, const unsigned char *key, int64_t now)
{
	void *v = gw_strmap_get(&s->keys, (const char *)key, GW_STORE_KEY_LEN);
	return v && (int64_t)(intptr_t)v > now;
}

static int do_journal(struct sstore *s, struct wreq *r)
{
	struct journal_args *a = r->arg;
	for (size_t i = 0; i < a->n; i++) {
		const struct gw_store_event *e = &a->ev[i];
		a->out[i].id = 0;
		a->out[i].rc = GW_STORE_OK;
		int rc;
		if (e->key) {
			pthread_mutex_lock(&s->klock);
			int known = key_known(s, e->key, a->now);
			pthread_mutex_unlock(&s->klock);
			if (known) {
				a->out[i].rc = GW_STORE_DUPLICATE;
				continue;
			}
			sqlite3_stmt *st = s->ws[W_KEY_PUT];
			sqlite3_bind_blob(st, 1, e->key, GW_STORE_KEY_LEN, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, a->now + a->ttl);
			if ((rc = step_done(st)))
				return rc;
			pthread_mutex_lock(&s->klock);
			struct gw_strmap_entry *me =
				gw_strmap_upsert(&s->keys, (const char *)e->key, GW_STORE_KEY_LEN, NULL);
			if (me)
				me->value = (void *)(intptr_t)(a->now + a->ttl);
			pthread_mutex_unlock(&s->klock);
			if (!me)
				return GW_STORE_ERR_NOMEM;
			a->added[a->nadded++] = e->key;
		}
		sqlite3_stmt *st = s->ws[W_JOURNAL_ADD];
		sqlite3_bind_text(st, 1, e->installation, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, e->trace_id ? e->trace_id : "", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, e->received_ms);
		if (e->key)
			sqlite3_bind_blob(st, 4, e->key, GW_STORE_KEY_LEN, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 4);
		sqlite3_bind_blob(st, 5, e->payload ? e->payload : "", (int)e->payload_len, SQLITE_STATIC);
		if ((rc = step_done(st)))
			return rc;
		a->out[i].id = (uint64_t)sqlite3_last_insert_rowid(s->w);
	}
	return GW_STORE_OK;
}

/* The journal request was rolled back: its keys were never stored. */
static void undo_journal(struct sstore *s, struct wreq *r)
{
	struct journal_args *a = r->arg;
	pthread_mutex_lock(&s->klock);
	for (size_t i = 0; i < a->nadded; i++)
		gw_strmap_remove(&s->keys, (const char *)a->added[i], GW_STORE_KEY_LEN);
	pthread_mutex_unlock(&s->klock);
	a->nadded = 0;
}

static int s_journal(struct gw_store *s, const struct gw_store_event *ev, size_t n, int64_t now,
		     int64_t key_ttl, struct gw_store_journaled *out)
{
	struct journal_args a = {ev, n, now, key_ttl, out, 0, calloc(n ? n : 1, sizeof(unsigned char *))};
	if (!a.added)
		return GW_STORE_ERR_NOMEM;
	int rc = submit(S(s), do_journal, undo_journal, &a);
	free(a.added);
	if (rc < 0)
		for (size_t i = 0; i < n; i++)
			out[i].id = 0;
	return rc < 0 ? rc : GW_STORE_OK;
}

static int s_key_seen(struct gw_store *s, const unsigned char key[GW_STORE_KEY_LEN], int64_t now)
{
	struct sstore *ss = S(s);
	pthread_mutex_lock(&ss->klock);
	int r = key_known(ss, key, now);
	pthread_mutex_unlock(&ss->klock);
	return r;
}

static int s_pending(struct gw_store *s, int (*cb)(void *ud, uint64_t id, const struct gw_store_event *ev),
		     void *ud)
{
	struct sstore *ss = S(s);
	pthread_mutex_lock(&ss->rlock);
	sqlite3_stmt *st = ss->rs[R_PENDING];
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct gw_store_event ev = {
			.installation = (const char *)sqlite3_column_text(st, 1),
			.trace_id = (const char *)sqlite3_column_text(st, 2),
			.received_ms = sqlite3_column_int64(st, 3),
			.key = sqlite3_column_bytes(st, 4) == GW_STORE_KEY_LEN ? sqlite3_column_blob(st, 4) : NULL,
			.payload = sqlite3_column_blob(st, 5),
			.payload_len = (size_t)sqlite3_column_bytes(st, 5),
		};
		if (cb(ud, (uint64_t)sqlite3_column_int64(st, 0), &ev)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&ss->rlock);
	return rc == SQLITE_DONE ? GW_STORE_OK : map_rc(rc);
}

/* ---- record ------------------------------------------------------------------ */

/* For a proof {"batch":"<JWS>"<tail>: the JWS (pointer and length) and the
 * tail; 0 when the proof has another shape (stored whole). */
static int split_proof(const char *proof, size_t len, const char **jws, size_t *jws_len, const char **tail)
{
	static const char head[] = "{\"batch\":\"";
	if (len < sizeof(head) || memcmp(proof, head, sizeof(head) - 1))
		return 0;
	const char *j = proof + sizeof(head) - 1;
	const char *q = memchr(j, '"', len - (sizeof(head) - 1));
	if (!q || q == j)
		return 0;
	for (const char *c = j; c < q; c++)
		if (*c == '\\')
			return 0; /* escapes: not a compact JWS; keep the text as it is */
	*jws = j;
	*jws_len = (size_t)(q - j);
	*tail = q + 1;
	return 1;
}

/* The batches row of this JWS: the last one stored when it is the same,
 * else a new row. 0 on success. */
static int batch_row(struct sstore *s, const char *jws, size_t len, sqlite3_int64 *id)
{
	if (s->last_jws && strlen(s->last_jws) == len && !memcmp(s->last_jws, jws, len)) {
		*id = s->last_batch;
		return GW_STORE_OK;
	}
	sqlite3_stmt *st = s->ws[W_BATCH_ADD];
	sqlite3_bind_text(st, 1, jws, (int)len, SQLITE_STATIC);
	int rc = step_done(st);
	if (rc)
		return rc;
	*id = sqlite3_last_insert_rowid(s->w);
	forget_batch(s);
	if ((s->last_jws = malloc(len + 1))) {
		memcpy(s->last_jws, jws, len);
		s->last_jws[len] = '\0';
		s->last_batch = *id;
	}
	return GW_STORE_OK;
}

struct record_args {
	const struct gw_store_done *d;
	size_t n;
	int *results;
};

static int do_record(struct sstore *s, struct wreq *r)
{
	struct record_args *a = r->arg;
	for (size_t i = 0; i < a->n; i++) {
		const struct gw_store_done *d = &a->d[i];
		sqlite3_stmt *st = s->ws[W_JOURNAL_DONE];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)d->journal_id);
		int rc = step_done(st);
		if (rc)
			return rc;
		if (sqlite3_changes(s->w) != 1) {
			a->results[i] = GW_STORE_NOT_PENDING;
			continue;
		}
		a->results[i] = GW_STORE_OK;
		for (size_t j = 0; j < d->count; j++) {
			const struct gw_store_note *n = &d->notes[j];
			if (!n->seq || !n->user || !n->ctx || !n->id || !n->claims || !n->proof)
				return GW_STORE_ERR_INVAL;
			st = s->ws[W_USER_UPSERT];
			sqlite3_bind_text(st, 1, d->installation, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, n->user, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 3, (sqlite3_int64)n->seq);
			rc = sqlite3_step(st);
			sqlite3_int64 uid = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
			sqlite3_reset(st);
			if (rc != SQLITE_ROW)
				return map_rc(rc);
			const char *jws, *tail = NULL;
			size_t jws_len;
			sqlite3_int64 batch = 0;
			if (split_proof(n->proof, n->proof_len, &jws, &jws_len, &tail) &&
			    (rc = batch_row(s, jws, jws_len, &batch)))
				return rc;
			st = s->ws[W_NOTE_ADD];
			sqlite3_bind_int64(st, 1, uid);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)n->seq);
			sqlite3_bind_text(st, 3, n->ctx, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 4, n->id, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 5, n->created);
			sqlite3_bind_int64(st, 6, n->exp);
			sqlite3_bind_text(st, 7, n->claims, (int)n->claims_len, SQLITE_STATIC);
			if (batch) {
				sqlite3_bind_int64(st, 8, batch);
				sqlite3_bind_text(st, 9, tail, (int)(n->proof + n->proof_len - tail), SQLITE_STATIC);
			} else {
				sqlite3_bind_null(st, 8);
				sqlite3_bind_text(st, 9, n->proof, (int)n->proof_len, SQLITE_STATIC);
			}
			if ((rc = step_done(st)))
				return rc;
		}
	}
	return GW_STORE_OK;
}

static int s_record(struct gw_store *s, const struct gw_store_done *d, size_t n, int *results)
{
	struct record_args a = {d, n, results};
	int rc = submit(S(s), do_record, NULL, &a);
	return rc < 0 ? rc : GW_STORE_OK;
}

/* ---- reads -------------------------------------------------------------------- */

/* uid and max_seq of a user on the reader; 0 = unknown user, 1 = found. */
static int reader_user(struct sstore *s, const char *inst, const char *user, sqlite3_int64 *uid,
		       uint64_t *max_seq)
{
	sqlite3_stmt *st = s->rs[R_USER_GET];
	sqlite3_bind_text(st, 1, inst, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*uid = sqlite3_column_int64(st, 0);
		*max_seq = (uint64_t)sqlite3_column_int64(st, 1);
	} else {
		*uid = 0;
		*max_seq = 0;
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : map_rc(rc);
}

static int s_max_seq(struct gw_store *s, const char *inst, const char *user, uint64_t *seq)
{
	struct sstore *ss = S(s);
	sqlite3_int64 uid;
	pthread_mutex_lock(&ss->rlock);
	int rc = reader_user(ss, inst, user, &uid, seq);
	pthread_mutex_unlock(&ss->rlock);
	return rc < 0 ? rc : GW_STORE_OK;
}

static char *col_dup(sqlite3_stmt *st, int col, size_t *len)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	char *p = malloc(n + 1);
	if (p) {
		memcpy(p, t ? (const char *)t : "", n);
		p[n] = '\0';
	}
	if (len)
		*len = n;
	return p;
}

/* Steps st (R_SINCE or R_INBOX) into page: at most limit items, page->more
 * when one more row exists. */
static int read_items(sqlite3_stmt *st, size_t limit, struct gw_store_page *page)
{
	int rc;
	page->items = calloc(limit ? limit : 1, sizeof(*page->items));
	if (!page->items)
		return GW_STORE_ERR_NOMEM;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (page->count == limit) {
			page->more = 1;
			break;
		}
		struct gw_store_item *it = &page->items[page->count++];
		it->seq = (uint64_t)sqlite3_column_int64(st, 0);
		it->ctx = col_dup(st, 1, NULL);
		it->id = col_dup(st, 2, NULL);
		it->created = sqlite3_column_int64(st, 3);
		it->exp = sqlite3_column_int64(st, 4);
		it->read = sqlite3_column_int(st, 5);
		it->claims = col_dup(st, 6, &it->claims_len);
		it->proof = col_dup(st, 7, &it->proof_len);
		if (!it->ctx || !it->id || !it->claims || !it->proof) {
			sqlite3_reset(st);
			return GW_STORE_ERR_NOMEM;
		}
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? GW_STORE_OK : map_rc(rc);
}

static int s_since(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		   size_t npats, uint64_t after, size_t limit, struct gw_store_page *page)
{
	struct sstore *ss = S(s);
	struct vis v = {pats, npats, NULL};
	memset(page, 0, sizeof(*page));
	pthread_mutex_lock(&ss->rlock);
	int rc = step_done(ss->rs[R_BEGIN]);
	sqlite3_int64 uid = 0;
	if (!rc)
		rc = reader_user(ss, inst, user, &uid, &page->max_seq);
	if (rc >= 0) {
		page->oldest = page->max_seq + 1;
		rc = GW_STORE_OK;
		if (uid) {
			sqlite3_stmt *st = ss->rs[R_OLDEST];
			sqlite3_bind_int64(st, 1, uid);
			int src = sqlite3_step(st);
			if (src == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
				page->oldest = (uint64_t)sqlite3_column_int64(st, 0);
			else if (src != SQLITE_ROW)
				rc = map_rc(src);
			sqlite3_reset(st);
		}
		page->recovered = !rc && after <= page->max_seq && page->oldest <= after + 1;
		if (page->recovered && uid && limit) {
			sqlite3_stmt *st = ss->rs[R_SINCE];
			sqlite3_bind_int64(st, 1, uid);
			sqlite3_bind_int64(st, 2, (sqlite3_int64)after);
			sqlite3_bind_pointer(st, 3, &v, VIS_TYPE, NULL);
			sqlite3_bind_int64(st, 4, (sqlite3_int64)limit + 1);
			rc = read_items(st, limit, page);
		}
	}
	step_done(ss->rs[R_COMMIT]);
	pthread_mutex_unlock(&ss->rlock);
	if (rc) {
		gw_store_page_free(page);
		page->recovered = 0;
	}
	return rc;
}

static int reader_unread(struct sstore *s, sqlite3_int64 uid, struct vis *v, uint64_t *count)
{
	sqlite3_stmt *st = s->rs[R_UNREAD];
	sqlite3_bind_int64(st, 1, uid);
	sqlite3_bind_pointer(st, 2, v, VIS_TYPE, NULL);
	int rc = sqlite3_step(st);
	*count = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? GW_STORE_OK : map_rc(rc);
}

static int s_inbox(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		   size_t npats, const char *filter, uint64_t before, size_t limit, struct gw_store_page *page)
{
	struct sstore *ss = S(s);
	struct vis v = {pats, npats, filter};
	memset(page, 0, sizeof(*page));
	limit = gw_store_clamp_limit(limit);
	pthread_mutex_lock(&ss->rlock);
	int rc = step_done(ss->rs[R_BEGIN]);
	sqlite3_int64 uid = 0;
	if (!rc)
		rc = reader_user(ss, inst, user, &uid, &page->max_seq);
	if (rc > 0) {
		sqlite3_stmt *st = ss->rs[R_INBOX];
		sqlite3_bind_int64(st, 1, uid);
		sqlite3_bind_int64(st, 2, before ? (sqlite3_int64)before : INT64_MAX);
		sqlite3_bind_pointer(st, 3, &v, VIS_TYPE, NULL);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)limit + 1);
		rc = read_items(st, limit, page);
		if (!rc)
			rc = reader_unread(ss, uid, &v, &page->unread);
	}
	step_done(ss->rs[R_COMMIT]);
	pthread_mutex_unlock(&ss->rlock);
	if (rc < 0)
		gw_store_page_free(page);
	return rc < 0 ? rc : GW_STORE_OK;
}

static int s_unread(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		    size_t npats, const char *filter, uint64_t *count)
{
	struct sstore *ss = S(s);
	struct vis v = {pats, npats, filter};
	uint64_t max_seq;
	sqlite3_int64 uid = 0;
	*count = 0;
	pthread_mutex_lock(&ss->rlock);
	int rc = reader_user(ss, inst, user, &uid, &max_seq);
	if (rc > 0)
		rc = reader_unread(ss, uid, &v, count);
	pthread_mutex_unlock(&ss->rlock);
	return rc < 0 ? rc : GW_STORE_OK;
}

/* ---- read state ----------------------------------------------------------------- */

struct mark_args {
	const char *inst, *user;
	struct vis v;
	const char *const *ids; /* NULL: mark_all */
	size_t nids;
	int read;
	struct gw_store_marked *out;
};

static int marked_add(struct gw_store_marked *m, size_t *cap, sqlite3_stmt *st)
{
	if (m->count == *cap) {
		size_t c = *cap ? 2 * *cap : 32;
		char **ids = realloc(m->ids, c * sizeof(*ids));
		if (!ids)
			return -1;
		m->ids = ids;
		char **ctxs = realloc(m->ctxs, c * sizeof(*ctxs));
		if (!ctxs)
			return -1;
		m->ctxs = ctxs;
		*cap = c;
	}
	if (!(m->ids[m->count] = col_dup(st, 0, NULL)))
		return -1;
	if (!(m->ctxs[m->count] = col_dup(st, 1, NULL))) {
		free(m->ids[m->count]);
		return -1;
	}
	m->count++;
	return 0;
}

static int do_mark(struct sstore *s, struct wreq *r)
{
	struct mark_args *a = r->arg;
	sqlite3_stmt *st = s->ws[W_USER_GET];
	sqlite3_bind_text(st, 1, a->inst, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, a->user, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_int64 uid = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? GW_STORE_OK : map_rc(rc);
	size_t cap = 0;
	for (size_t i = 0; i < (a->ids ? a->nids : 1); i++) {
		if (a->ids && !a->ids[i])
			continue;
		st = s->ws[a->ids ? W_MARK : W_MARK_ALL];
		sqlite3_bind_int64(st, 1, uid);
		if (a->ids) {
			sqlite3_bind_text(st, 2, a->ids[i], -1, SQLITE_STATIC);
			sqlite3_bind_int(st, 3, a->read);
			sqlite3_bind_pointer(st, 4, &a->v, VIS_TYPE, NULL);
		} else {
			sqlite3_bind_pointer(st, 2, &a->v, VIS_TYPE, NULL);
		}
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			if (marked_add(a->out, &cap, st)) {
				sqlite3_reset(st);
				return GW_STORE_ERR_NOMEM;
			}
		sqlite3_reset(st);
		if (rc != SQLITE_DONE)
			return map_rc(rc);
	}
	st = s->ws[W_UNREAD];
	sqlite3_bind_int64(st, 1, uid);
	sqlite3_bind_pointer(st, 2, &a->v, VIS_TYPE, NULL);
	rc = sqlite3_step(st);
	a->out->unread = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? GW_STORE_OK : map_rc(rc);
}

static int s_mark(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		  size_t npats, const char *const *ids, size_t nids, int read, struct gw_store_marked *out)
{
	memset(out, 0, sizeof(*out));
	if (nids > GW_STORE_MARK_MAX_IDS)
		return GW_STORE_ERR_INVAL;
	struct mark_args a = {inst, user, {pats, npats, NULL}, ids, nids, read ? 1 : 0, out};
	if (!nids) /* nothing to change: the unread count only */
		return s->ops->unread(s, inst, user, pats, npats, NULL, &out->unread);
	int rc = submit(S(s), do_mark, NULL, &a);
	if (rc < 0)
		gw_store_marked_free(out);
	return rc < 0 ? rc : GW_STORE_OK;
}

static int s_mark_all(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		      size_t npats, const char *filter, struct gw_store_marked *out)
{
	memset(out, 0, sizeof(*out));
	struct mark_args a = {inst, user, {pats, npats, filter}, NULL, 0, 1, out};
	int rc = submit(S(s), do_mark, NULL, &a);
	if (rc < 0)
		gw_store_marked_free(out);
	return rc < 0 ? rc : GW_STORE_OK;
}

/* ---- retention ------------------------------------------------------------------- */

struct purge_args {
	int64_t now;
	size_t max_rows;
	struct gw_store_purged *out;
};

static int do_purge(struct sstore *s, struct wreq *r)
{
	struct purge_args *a = r->arg;
	size_t budget = a->max_rows;
	sqlite3_stmt *st = s->ws[W_PURGE_AGE];
	sqlite3_bind_int64(st, 1, a->now - s->opt.retention);
	sqlite3_bind_int64(st, 2, a->now);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)budget);
	int rc = step_done(st);
	if (rc)
		return rc;
	a->out->expired = (uint64_t)sqlite3_changes(s->w);
	budget -= a->out->expired;

	/* Users over the cap, a few at a time from a cursor so that one purge
	 * call never scans every user. */
	struct {
		sqlite3_int64 uid, stored;
	} over[PURGE_USERS_PER_STEP];
	size_t nover = 0;
	st = s->ws[W_PURGE_USERS];
	sqlite3_bind_int64(st, 1, s->purge_cursor);
	sqlite3_bind_int64(st, 2, s->opt.per_user);
	sqlite3_bind_int(st, 3, PURGE_USERS_PER_STEP);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && nover < PURGE_USERS_PER_STEP) {
		over[nover].uid = sqlite3_column_int64(st, 0);
		over[nover].stored = sqlite3_column_int64(st, 1);
		nover++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return map_rc(rc);
	int complete = nover < PURGE_USERS_PER_STEP; /* reached the last user */
	size_t i = 0;
	for (; i < nover && budget; i++) {
		sqlite3_int64 drop = over[i].stored - s->opt.per_user;
		if ((size_t)drop > budget)
			drop = (sqlite3_int64)budget;
		st = s->ws[W_PURGE_OLDEST];
		sqlite3_bind_int64(st, 1, over[i].uid);
		sqlite3_bind_int64(st, 2, drop);
		if ((rc = step_done(st)))
			return rc;
		sqlite3_int64 gone = sqlite3_changes(s->w);
		a->out->over_cap += (uint64_t)gone;
		budget -= (size_t)gone;
		if (gone < over[i].stored - s->opt.per_user)
			break; /* budget ran out within this user: resume here */
	}
	if (i < nover) {
		s->purge_cursor = over[i].uid - 1;
		complete = 0;
	} else {
		s->purge_cursor = complete ? 0 : over[nover - 1].uid;
	}

	st = s->ws[W_PURGE_KEYS];
	sqlite3_bind_int64(st, 1, a->now);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)a->max_rows);
	pthread_mutex_lock(&s->klock);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *k = sqlite3_column_blob(st, 0);
		int64_t exp = sqlite3_column_int64(st, 1);
		/* a key journaled again later has a newer row and expiry: keep it */
		if (k && sqlite3_column_bytes(st, 0) == GW_STORE_KEY_LEN &&
		    (int64_t)(intptr_t)gw_strmap_get(&s->keys, k, GW_STORE_KEY_LEN) <= exp)
			gw_strmap_remove(&s->keys, k, GW_STORE_KEY_LEN);
		a->out->keys++;
	}
	pthread_mutex_unlock(&s->klock);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return map_rc(rc);

	/* Batch signatures no notification refers to any more, from a cursor. */
	st = s->ws[W_PURGE_BATCHES];
	sqlite3_bind_int64(st, 1, s->batch_cursor);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)a->max_rows);
	size_t nbatches = 0;
	int64_t last = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		if (id > last)
			last = id;
		if (id == s->last_batch)
			forget_batch(s);
		nbatches++;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return map_rc(rc);
	s->batch_cursor = nbatches == a->max_rows ? last : 0;
	a->out->more = !budget || !complete || a->out->keys == a->max_rows || nbatches == a->max_rows;
	return GW_STORE_OK;
}

static int s_purge(struct gw_store *s, int64_t now, size_t max_rows, struct gw_store_purged *out)
{
	memset(out, 0, sizeof(*out));
	struct purge_args a = {now, max_rows, out};
	int rc = submit(S(s), do_purge, NULL, &a);
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	gw_stat_add(GW_STAT_store_purged_expired, out->expired);
	gw_stat_add(GW_STAT_store_purged_over_cap, out->over_cap);
	gw_stat_add(GW_STAT_store_keys_expired, out->keys);
	return rc < 0 ? rc : GW_STORE_OK;
}

/* ---- open / close ------------------------------------------------------------------ */

static void s_close(struct gw_store *s)
{
	struct sstore *ss = S(s);
	if (!ss)
		return;
	for (int i = 0; i < W__COUNT; i++)
		sqlite3_finalize(ss->ws[i]);
	for (int i = 0; i < R__COUNT; i++)
		sqlite3_finalize(ss->rs[i]);
	sqlite3_close_v2(ss->r);
	sqlite3_close_v2(ss->w);
	/* After SQLite has let go of the file: closing our descriptor drops
	 * every POSIX lock this process holds on it. */
	if (ss->lock_fd >= 0)
		close(ss->lock_fd);
	gw_strmap_free(&ss->keys, NULL);
	pthread_mutex_destroy(&ss->klock);
	pthread_mutex_destroy(&ss->rlock);
	pthread_mutex_destroy(&ss->qlock);
	pthread_cond_destroy(&ss->qcond);
	free(ss->last_jws);
	free(ss->path);
	free(ss);
}

static const struct gw_store_ops sqlite_ops = {
	.name = "sqlite",
	.epoch = s_epoch,
	.journal = s_journal,
	.key_seen = s_key_seen,
	.pending = s_pending,
	.record = s_record,
	.max_seq = s_max_seq,
	.since = s_since,
	.inbox = s_inbox,
	.unread = s_unread,
	.mark = s_mark,
	.mark_all = s_mark_all,
	.purge = s_purge,
	.close = s_close,
	.ping = s_ping,
};

/* Fills msg for a failed step on db; returns the mapped code. */
static int fail(sqlite3 *db, int src, const char *path, const char *what, char *msg, size_t msglen)
{
	int rc = map_rc(src);
	const char *hint = "";
	if (rc == GW_STORE_ERR_CORRUPT)
		hint = " (the file is damaged or not a notify-gateway database: move it away to start with an "
		       "empty store and a new epoch; docs/storage.md)";
	else if (rc == GW_STORE_ERR_ACCESS)
		hint = " (the gateway needs write access to the file and its directory)";
	snprintf(msg, msglen, "store %s: %s: %s%s", path, what, db ? sqlite3_errmsg(db) : sqlite3_errstr(src),
		 hint);
	return rc;
}

static int open_conn(const char *path, sqlite3 **db, char *msg, size_t msglen)
{
	int src = sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				  NULL);
	if (src != SQLITE_OK)
		return fail(*db, src, path, "cannot open", msg, msglen);
	sqlite3_extended_result_codes(*db, 0);
	if (sqlite3_db_readonly(*db, "main") == 1) {
		snprintf(msg, msglen, "store %s: opened read-only (the gateway needs write access to the file "
				      "and its directory)", path);
		return GW_STORE_ERR_ACCESS;
	}
	sqlite3_busy_timeout(*db, BUSY_TIMEOUT_MS);
	src = sqlite3_create_function_v2(*db, "gw_visible", 2, SQLITE_UTF8 | SQLITE_DIRECTONLY, NULL, vis_func,
					 NULL, NULL, NULL);
	if (src != SQLITE_OK)
		return fail(*db, src, path, "cannot register functions", msg, msglen);
	return GW_STORE_OK;
}

/* Runs one or more statements of SQL text; fills msg on failure. */
static int exec(sqlite3 *db, const char *sql, const char *path, const char *what, char *msg, size_t msglen)
{
	int src = sqlite3_exec(db, sql, NULL, NULL, NULL);
	return src == SQLITE_OK ? GW_STORE_OK : fail(db, src, path, what, msg, msglen);
}

static int query_int(sqlite3 *db, const char *sql, sqlite3_int64 *out)
{
	sqlite3_stmt *st;
	int src = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (src != SQLITE_OK)
		return src;
	src = sqlite3_step(st);
	*out = src == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return src == SQLITE_ROW || src == SQLITE_DONE ? SQLITE_OK : src;
}

/* Brings the schema to SCHEMA_VERSION and makes sure there is an epoch. */
static int migrate(struct sstore *s, char *msg, size_t msglen)
{
	sqlite3_int64 version = 0, tables = 0;
	int src = query_int(s->w, "PRAGMA user_version", &version);
	if (src == SQLITE_OK)
		src = query_int(s->w, "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'", &tables);
	if (src != SQLITE_OK)
		return fail(s->w, src, s->path, "cannot read the schema", msg, msglen);
	if (version > SCHEMA_VERSION) {
		snprintf(msg, msglen, "store %s: schema version %lld is newer than this gateway's (%d): run a "
				      "newer notify-gateway or move the file away", s->path, (long long)version,
			 SCHEMA_VERSION);
		return GW_STORE_ERR_VERSION;
	}
	if (version == 0 && tables > 0) {
		snprintf(msg, msglen, "store %s: the file is an SQLite database but not a notify-gateway store "
				      "(it has tables and no schema version): move it away", s->path);
		return GW_STORE_ERR_CORRUPT;
	}
	if (version < SCHEMA_VERSION) {
		int rc = exec(s->w, "BEGIN IMMEDIATE", s->path, "cannot start the migration", msg, msglen);
		for (sqlite3_int64 v = version; !rc && v < SCHEMA_VERSION; v++)
			rc = exec(s->w, SCHEMA[v], s->path, "schema migration failed", msg, msglen);
		if (!rc && version == 0) {
			char epoch[33], sql[160];
			if (gw_store_new_epoch(epoch)) {
				snprintf(msg, msglen, "store %s: no random bytes for the epoch", s->path);
				rc = GW_STORE_ERR_IO;
			} else {
				snprintf(sql, sizeof(sql),
					 "INSERT INTO meta(name, value) VALUES('epoch', '%s'),"
					 " ('created', strftime('%%Y-%%m-%%dT%%H:%%M:%%SZ', 'now'))", epoch);
				rc = exec(s->w, sql, s->path, "cannot write the epoch", msg, msglen);
			}
		}
		if (!rc) {
			char sql[64];
			snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
			rc = exec(s->w, sql, s->path, "cannot set the schema version", msg, msglen);
		}
		if (!rc)
			rc = exec(s->w, "COMMIT", s->path, "cannot commit the migration", msg, msglen);
		if (rc) {
			sqlite3_exec(s->w, "ROLLBACK", NULL, NULL, NULL);
			return rc;
		}
	}
	sqlite3_stmt *st;
	src = sqlite3_prepare_v2(s->w, "SELECT value FROM meta WHERE name = 'epoch'", -1, &st, NULL);
	if (src != SQLITE_OK)
		return fail(s->w, src, s->path, "cannot read the epoch", msg, msglen);
	src = sqlite3_step(st);
	const char *e = src == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
	size_t elen = e ? strlen(e) : 0;
	int ok = elen >= 1 && elen <= 32 && strspn(e, "0123456789abcdefABCDEF_-") == elen;
	if (ok)
		memcpy(s->epoch, e, elen + 1);
	sqlite3_finalize(st);
	if (!ok) {
		snprintf(msg, msglen, "store %s: the epoch is missing or malformed (table meta): the file is "
				      "damaged; move it away", s->path);
		return GW_STORE_ERR_CORRUPT;
	}
	return GW_STORE_OK;
}

/* The redelivery keys into memory (expired ones too: purge removes them). */
static int load_keys(struct sstore *s, char *msg, size_t msglen)
{
	sqlite3_stmt *st;
	int src = sqlite3_prepare_v2(s->r, "SELECT key, expires FROM redelivery ORDER BY id", -1, &st, NULL);
	if (src != SQLITE_OK)
		return fail(s->r, src, s->path, "cannot read the redelivery keys", msg, msglen);
	while ((src = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) != GW_STORE_KEY_LEN)
			continue;
		struct gw_strmap_entry *e =
			gw_strmap_upsert(&s->keys, sqlite3_column_blob(st, 0), GW_STORE_KEY_LEN, NULL);
		if (!e) {
			sqlite3_finalize(st);
			snprintf(msg, msglen, "store %s: out of memory loading the redelivery keys", s->path);
			return GW_STORE_ERR_NOMEM;
		}
		e->value = (void *)(intptr_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return src == SQLITE_DONE ? GW_STORE_OK : fail(s->r, src, s->path, "cannot read the redelivery keys", msg, msglen);
}

int gw_store_sqlite_open(const char *state_dir, const struct gw_store_options *opt, struct gw_store **out,
			 char *msg, size_t msglen)
{
	*out = NULL;
	struct sstore *s = calloc(1, sizeof(*s));
	if (!s || asprintf(&s->path, "%s/notify.db", state_dir) < 0) {
		free(s);
		snprintf(msg, msglen, "store: out of memory");
		return GW_STORE_ERR_NOMEM;
	}
	s->base.ops = &sqlite_ops;
	s->opt = *opt;
	if (s->opt.per_user < 1)
		s->opt.per_user = 1;
	s->lock_fd = -1;
	s->queue_tail = &s->queue;
	if (gw_strmap_init(&s->keys, 1024)) {
		free(s->path);
		free(s);
		snprintf(msg, msglen, "store: out of memory");
		return GW_STORE_ERR_NOMEM;
	}
	pthread_mutex_init(&s->rlock, NULL);
	pthread_mutex_init(&s->klock, NULL);
	pthread_mutex_init(&s->qlock, NULL);
	pthread_cond_init(&s->qcond, NULL);
	int rc;

	if (mkdir(state_dir, 0700) && errno != EEXIST) {
		snprintf(msg, msglen, "store %s: cannot create the state directory: %s (the gateway needs write access "
				      "to it)", s->path, strerror(errno));
		rc = errno == ENOSPC || errno == EIO ? GW_STORE_ERR_IO : GW_STORE_ERR_ACCESS;
		goto fail;
	}
	s->lock_fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		snprintf(msg, msglen, "store %s: cannot open: %s (the gateway needs write access to the file and "
				      "its directory)", s->path, strerror(errno));
		rc = errno == ENOSPC || errno == EIO ? GW_STORE_ERR_IO : GW_STORE_ERR_ACCESS;
		goto fail;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB)) {
		snprintf(msg, msglen, "store %s: in use by another notify-gateway process (one process per "
				      "state directory)", s->path);
		rc = GW_STORE_ERR_LOCKED;
		goto fail;
	}
	if ((rc = open_conn(s->path, &s->w, msg, msglen)))
		goto fail;
	/* The first statement reads the header: a file that is not a database
	 * fails here (SQLITE_NOTADB). */
	sqlite3_stmt *st;
	int src = sqlite3_prepare_v2(s->w, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (src == SQLITE_OK) {
		src = sqlite3_step(st);
		const char *mode = src == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
		int wal = mode && !strcmp(mode, "wal");
		sqlite3_finalize(st);
		if (src == SQLITE_ROW && !wal) {
			snprintf(msg, msglen, "store %s: cannot switch to WAL mode (the directory must be writable for "
					      "notify.db-wal and notify.db-shm)", s->path);
			rc = GW_STORE_ERR_ACCESS;
			goto fail;
		}
		src = src == SQLITE_ROW ? SQLITE_OK : src;
	}
	if (src != SQLITE_OK) {
		rc = fail(s->w, src, s->path, "cannot open the database", msg, msglen);
		goto fail;
	}
	char pragmas[160];
	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA synchronous = %s; PRAGMA foreign_keys = OFF; PRAGMA journal_size_limit = 67108864",
		 opt->durability == GW_STORE_OS ? "NORMAL" : "FULL");
	if ((rc = exec(s->w, pragmas, s->path, "cannot configure", msg, msglen)) ||
	    (rc = migrate(s, msg, msglen)) || (rc = open_conn(s->path, &s->r, msg, msglen)))
		goto fail;
	for (int i = 0; i < W__COUNT; i++)
		if ((src = sqlite3_prepare_v3(s->w, WSQL[i], -1, SQLITE_PREPARE_PERSISTENT, &s->ws[i], NULL))) {
			rc = fail(s->w, src, s->path, "cannot prepare statements", msg, msglen);
			goto fail;
		}
	for (int i = 0; i < R__COUNT; i++)
		if ((src = sqlite3_prepare_v3(s->r, RSQL[i], -1, SQLITE_PREPARE_PERSISTENT, &s->rs[i], NULL))) {
			rc = fail(s->r, src, s->path, "cannot prepare statements", msg, msglen);
			goto fail;
		}
	if ((rc = load_keys(s, msg, msglen)))
		goto fail;
	*out = &s->base;
	return GW_STORE_OK;
fail:
	s_close(&s->base);
	return rc;
}
