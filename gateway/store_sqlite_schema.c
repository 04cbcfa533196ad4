/* store_sqlite_schema.c - the SQLite engine's SQL and its opening: the
 * schema and its migrations (user_version), the text of every prepared
 * statement (store_sqlite.h numbers them), and gw_store_sqlite_open: the
 * state directory, the file lock, WAL and durability pragmas, migration, the
 * epoch, statements prepared once, the redelivery keys loaded into memory.
 * The only file with SQL in it. Layout, durability and retention are
 * described for admins in docs/storage.md (keep it in step with SCHEMA).
 *
 * Ownership: the handle it returns is the caller's (gw_store_close); a
 * failed open frees everything it made (sq_close).
 * Threads: the caller's, once per store, never the lws service thread.
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
#include <time.h>
#include <unistd.h>

#include "store.h"
#include "store_sqlite.h"
#include "strmap.h"

#define SCHEMA_VERSION 3
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
	/* 1 -> 2: fewer b-tree writes per event. The redelivery keys are
	 * ordered by their expiry (WITHOUT ROWID, primary key (expires, key)):
	 * an insert is one append to one b-tree instead of a row and an index
	 * entry, and the purge reads them in that order. users.stored grows in
	 * the users upsert that each note makes anyway (W_USER_UPSERT) instead
	 * of a trigger's second update of the same row. */
	"CREATE TABLE redelivery_v2(expires INTEGER NOT NULL, key BLOB NOT NULL, PRIMARY KEY(expires, key))"
	" WITHOUT ROWID;"
	"INSERT OR IGNORE INTO redelivery_v2(expires, key) SELECT expires, key FROM redelivery;"
	"DROP TABLE redelivery;"
	"ALTER TABLE redelivery_v2 RENAME TO redelivery;"
	"DROP TRIGGER notes_count_ins;",
	/* 2 -> 3: one index for the read state instead of two: (uid, nid, read,
	 * ctx) answers mark (uid, nid), and covers the unread counts and
	 * mark_all (uid; read and ctx from the index), where notes_user_nid and
	 * the partial notes_unread took an insert each per note. */
	"CREATE INDEX notes_user_state ON notes(uid, nid, read, ctx);"
	"DROP INDEX notes_user_nid;"
	"DROP INDEX notes_unread;",
};

/* Writer statements (leader only), by enum wst. */
static const char *const WSQL[W__COUNT] = {
	[W_BEGIN] = "BEGIN IMMEDIATE",
	[W_COMMIT] = "COMMIT",
	[W_ROLLBACK] = "ROLLBACK",
	[W_SAVEPOINT] = "SAVEPOINT req",
	[W_RELEASE] = "RELEASE req",
	[W_ROLLBACK_TO] = "ROLLBACK TO req",
	[W_KEY_PUT] = "INSERT OR IGNORE INTO redelivery(key, expires) VALUES(?1, ?2)",
	[W_JOURNAL_ADD] = "INSERT INTO journal(installation, trace_id, received_ms, key, payload)"
			  " VALUES(?1, ?2, ?3, ?4, ?5)",
	[W_JOURNAL_DONE] = "DELETE FROM journal WHERE id = ?1",
	[W_USER_UPSERT] =
		"INSERT INTO users(installation, user, max_seq, stored) VALUES(?1, ?2, ?3, 1)"
		" ON CONFLICT(installation, user) DO UPDATE SET max_seq = max(max_seq, excluded.max_seq),"
		" stored = stored + 1 RETURNING uid",
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
	[W_PURGE_USERS] =
		"SELECT uid, stored FROM users WHERE uid > ?1 AND stored > ?2 ORDER BY uid LIMIT ?3",
	[W_PURGE_OLDEST] = "DELETE FROM notes WHERE id IN (SELECT id FROM notes WHERE uid = ?1"
			   " ORDER BY seq LIMIT ?2)",
	[W_PURGE_KEYS] = "DELETE FROM redelivery WHERE (expires, key) IN (SELECT expires, key FROM redelivery"
			 " WHERE expires <= ?1 ORDER BY expires LIMIT ?2) RETURNING key, expires",
};

/* A proof {"batch":"<JWS>",...} is stored as a batches row (one per signed
 * pass, shared by its notes) and the rest of the text; this puts it back
 * together byte for byte. Other proofs are stored whole (batch NULL). */
#define PROOF_SQL                                                                                            \
	" CASE WHEN n.batch IS NULL THEN n.proof ELSE '{\"batch\":\"' || b.jws || '\"' || n.proof END"

/* Reader statements (reader mutex), by enum rst. */
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

/* Fills msg for a failed step on db; returns the mapped code. */
static int fail(sqlite3 *db, int src, const char *path, const char *what, char *msg, size_t msglen)
{
	int rc = sq_map_rc(src);
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
		snprintf(msg, msglen,
			 "store %s: opened read-only (the gateway needs write access to the file "
			 "and its directory)",
			 path);
		return GW_STORE_ERR_ACCESS;
	}
	sqlite3_busy_timeout(*db, BUSY_TIMEOUT_MS);
	src = sqlite3_create_function_v2(*db, "gw_visible", 2, SQLITE_UTF8 | SQLITE_DIRECTONLY, NULL,
					 sq_vis_func, NULL, NULL, NULL);
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
		src = query_int(s->w, "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
				&tables);
	if (src != SQLITE_OK)
		return fail(s->w, src, s->path, "cannot read the schema", msg, msglen);
	if (version > SCHEMA_VERSION) {
		snprintf(msg, msglen,
			 "store %s: schema version %lld is newer than this gateway's (%d): run a "
			 "newer notify-gateway or move the file away",
			 s->path, (long long)version, SCHEMA_VERSION);
		return GW_STORE_ERR_VERSION;
	}
	if (version == 0 && tables > 0) {
		snprintf(msg, msglen,
			 "store %s: the file is an SQLite database but not a notify-gateway store "
			 "(it has tables and no schema version): move it away",
			 s->path);
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
					 " ('created', strftime('%%Y-%%m-%%dT%%H:%%M:%%SZ', 'now'))",
					 epoch);
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
		snprintf(msg, msglen,
			 "store %s: the epoch is missing or malformed (table meta): the file is "
			 "damaged; move it away",
			 s->path);
		return GW_STORE_ERR_CORRUPT;
	}
	return GW_STORE_OK;
}

/* The redelivery keys into memory (expired ones too: purge removes them). */
static int load_keys(struct sstore *s, char *msg, size_t msglen)
{
	sqlite3_stmt *st;
	/* a key stored twice (journaled again after it expired): the later expiry wins */
	int src = sqlite3_prepare_v2(s->r, "SELECT key, expires FROM redelivery ORDER BY expires", -1, &st,
				     NULL);
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
	return src == SQLITE_DONE ? GW_STORE_OK
				  : fail(s->r, src, s->path, "cannot read the redelivery keys", msg, msglen);
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
	s->base.ops = &sq_ops;
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
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->lcond, &ca);
	pthread_condattr_destroy(&ca);
	int rc;

	if (mkdir(state_dir, 0700) && errno != EEXIST) {
		snprintf(msg, msglen,
			 "store %s: cannot create the state directory: %s (the gateway needs write access "
			 "to it)",
			 s->path, strerror(errno));
		rc = errno == ENOSPC || errno == EIO ? GW_STORE_ERR_IO : GW_STORE_ERR_ACCESS;
		goto fail;
	}
	s->lock_fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0) {
		snprintf(msg, msglen,
			 "store %s: cannot open: %s (the gateway needs write access to the file and "
			 "its directory)",
			 s->path, strerror(errno));
		rc = errno == ENOSPC || errno == EIO ? GW_STORE_ERR_IO : GW_STORE_ERR_ACCESS;
		goto fail;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB)) {
		snprintf(msg, msglen,
			 "store %s: in use by another notify-gateway process (one process per "
			 "state directory)",
			 s->path);
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
			snprintf(msg, msglen,
				 "store %s: cannot switch to WAL mode (the directory must be writable for "
				 "notify.db-wal and notify.db-shm)",
				 s->path);
			rc = GW_STORE_ERR_ACCESS;
			goto fail;
		}
		src = src == SQLITE_ROW ? SQLITE_OK : src;
	}
	if (src != SQLITE_OK) {
		rc = fail(s->w, src, s->path, "cannot open the database", msg, msglen);
		goto fail;
	}
	/* temp_store = MEMORY keeps the savepoints' sub-journal (each request of
	 * a group commit runs in one, store_sqlite.c) in memory: by default it
	 * spills past 64 KiB to a file in /var/tmp, one pwrite per page a
	 * request touches (measured: 3 of the 7 writes per event). It holds at
	 * most the pages of one request (a few MB for 256 events). */
	char pragmas[200];
	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA synchronous = %s; PRAGMA foreign_keys = OFF; PRAGMA journal_size_limit = 67108864;"
		 " PRAGMA temp_store = MEMORY",
		 opt->durability == GW_STORE_OS ? "NORMAL" : "FULL");
	if ((rc = exec(s->w, pragmas, s->path, "cannot configure", msg, msglen)) ||
	    (rc = migrate(s, msg, msglen)) || (rc = open_conn(s->path, &s->r, msg, msglen)))
		goto fail;
	for (int i = 0; i < W__COUNT; i++)
		if ((src = sqlite3_prepare_v3(s->w, WSQL[i], -1, SQLITE_PREPARE_PERSISTENT, &s->ws[i],
					      NULL))) {
			rc = fail(s->w, src, s->path, "cannot prepare statements", msg, msglen);
			goto fail;
		}
	for (int i = 0; i < R__COUNT; i++)
		if ((src = sqlite3_prepare_v3(s->r, RSQL[i], -1, SQLITE_PREPARE_PERSISTENT, &s->rs[i],
					      NULL))) {
			rc = fail(s->r, src, s->path, "cannot prepare statements", msg, msglen);
			goto fail;
		}
	if ((rc = load_keys(s, msg, msglen)))
		goto fail;
	*out = &s->base;
	return GW_STORE_OK;
fail:
	sq_close(&s->base);
	return rc;
}
