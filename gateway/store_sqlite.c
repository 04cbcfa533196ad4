/* store_sqlite.c - the store contract (store.h) on SQLite: STATE_DIR/notify.db.
 *
 * This file: the operations, group commit and closing; the statements run
 * by index (store_sqlite.h). The SQL (schema, migrations, each statement's
 * text) and opening: store_sqlite_schema.c. Layout, durability and
 * retention are described for admins in docs/storage.md.
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
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "stats.h"
#include "store.h"
#include "store_sqlite.h"
#include "strmap.h"
#include "util.h"

#define PURGE_USERS_PER_STEP 64

int sq_map_rc(int rc)
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

void sq_vis_func(sqlite3_context *cx, int argc, sqlite3_value **argv)
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
	return rc == SQLITE_DONE ? GW_STORE_OK : sq_map_rc(rc);
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

/* The linger: the gateway journals new events on one thread (journal.c)
 * and records processed ones on another (recorder.c). Left alone, at a
 * steady rate each gets a commit (an fsync) of its own: the record of event
 * N commits just before event N+1's journal call arrives. So a leader whose
 * queue holds only record requests, while journal requests come at most
 * SQ_LINGER_GAP_NS apart (smoothed), waits up to SQ_LINGER_NS for the next
 * one and commits both in one transaction: one commit per event instead of
 * two. A journal request never waits (202 waits for its commit), and a
 * record request waits only for a journal request from another thread. */
#define SQ_LINGER_NS 1000000 /* 1 ms: the most a record (delivery) waits */
#define SQ_LINGER_GAP_NS 2000000 /* linger only when journal calls come this often */

/* qlock held, leader_active set by the caller. */
static void linger(struct sstore *s)
{
	if (s->j_seen < 2 || s->j_gap_ns > SQ_LINGER_GAP_NS || pthread_equal(s->j_thread, pthread_self()))
		return;
	for (struct wreq *q = s->queue; q; q = q->next)
		if (q->kind != WK_RECORD)
			return;
	int64_t now = gw_monotonic_ns(), until = s->j_last_ns + 2 * s->j_gap_ns;
	if (until > now + SQ_LINGER_NS)
		until = now + SQ_LINGER_NS;
	if (until <= now)
		return;
	gw_stat_inc(GW_STAT_store_lingers);
	struct timespec ts = {(time_t)(until / 1000000000), (long)(until % 1000000000)};
	s->lingering = 1;
	for (;;) {
		for (struct wreq *q = s->queue; q; q = q->next)
			if (q->kind == WK_JOURNAL)
				goto out;
		if (pthread_cond_timedwait(&s->lcond, &s->qlock, &ts))
			break; /* ETIMEDOUT (gw_monotonic_ns is CLOCK_MONOTONIC, as lcond) */
	}
out:
	s->lingering = 0;
}

/* Runs fn(arg) in a write transaction shared with concurrent callers and
 * returns once it is committed (or failed). quiet: see wreq; kind: for the
 * linger. */
static int submit_ex(struct sstore *s, wfn fn, void (*undo)(struct sstore *, struct wreq *), void *arg,
		     int quiet, enum wkind kind)
{
	struct wreq req = {.fn = fn, .undo = undo, .arg = arg, .quiet = quiet, .kind = kind};
	pthread_mutex_lock(&s->qlock);
	*s->queue_tail = &req;
	s->queue_tail = &req.next;
	if (kind == WK_JOURNAL) {
		int64_t t = gw_monotonic_ns();
		if (s->j_seen)
			s->j_gap_ns = s->j_seen == 1 ? t - s->j_last_ns
						     : (3 * s->j_gap_ns + (t - s->j_last_ns)) / 4;
		s->j_last_ns = t;
		s->j_thread = pthread_self();
		s->j_seen = s->j_seen < 2 ? s->j_seen + 1 : 2;
		if (s->lingering)
			pthread_cond_signal(&s->lcond);
	}
	while (!req.done) {
		if (s->leader_active) {
			pthread_cond_wait(&s->qcond, &s->qlock);
			continue;
		}
		/* Lead: take the whole queue and commit it in one transaction. */
		s->leader_active = 1;
		linger(s);
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
		int kinds = 0;
		for (struct wreq *q = batch; q; q = q->next) {
			nreq += !q->quiet;
			nfailed += !q->quiet && q->rc < 0;
			kinds |= 1 << q->kind;
		}
		if (!trc && kinds == ((1 << WK_JOURNAL) | (1 << WK_RECORD)))
			gw_stat_inc(GW_STAT_store_commits_shared);
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
	return submit_ex(s, fn, undo, arg, 0, WK_OTHER);
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
	return submit_ex(S(s), do_nothing, NULL, NULL, 1, WK_OTHER);
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
	int rc = submit_ex(S(s), do_journal, undo_journal, &a, 0, WK_JOURNAL);
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
			.key = sqlite3_column_bytes(st, 4) == GW_STORE_KEY_LEN ? sqlite3_column_blob(st, 4)
									       : NULL,
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
	return rc == SQLITE_DONE ? GW_STORE_OK : sq_map_rc(rc);
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
				return sq_map_rc(rc);
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
				sqlite3_bind_text(st, 9, tail, (int)(n->proof + n->proof_len - tail),
						  SQLITE_STATIC);
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
	int rc = submit_ex(S(s), do_record, NULL, &a, 0, WK_RECORD);
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
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : sq_map_rc(rc);
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
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? GW_STORE_OK : sq_map_rc(rc);
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
				rc = sq_map_rc(src);
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
	return rc == SQLITE_ROW ? GW_STORE_OK : sq_map_rc(rc);
}

static int s_inbox(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		   size_t npats, const char *filter, uint64_t before, size_t limit,
		   struct gw_store_page *page)
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
		return rc == SQLITE_DONE ? GW_STORE_OK : sq_map_rc(rc);
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
			return sq_map_rc(rc);
	}
	st = s->ws[W_UNREAD];
	sqlite3_bind_int64(st, 1, uid);
	sqlite3_bind_pointer(st, 2, &a->v, VIS_TYPE, NULL);
	rc = sqlite3_step(st);
	a->out->unread = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? GW_STORE_OK : sq_map_rc(rc);
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
		return sq_map_rc(rc);
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
		return sq_map_rc(rc);

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
		return sq_map_rc(rc);
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

void sq_close(struct gw_store *s)
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
	pthread_cond_destroy(&ss->lcond);
	free(ss->last_jws);
	free(ss->path);
	free(ss);
}

const struct gw_store_ops sq_ops = {
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
	.close = sq_close,
	.ping = s_ping,
};
