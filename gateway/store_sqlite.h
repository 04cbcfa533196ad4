/* store_sqlite.h - internal to the SQLite engine (store_sqlite.c, the
 * operations; store_sqlite_schema.c, the SQL and opening): the handle, the
 * prepared statements' indices, the group-commit request, and the helpers
 * both files use.
 *
 * Ownership: a struct sstore owns its two connections, its prepared
 * statements, the in-memory redelivery keys and the state directory's lock
 * descriptor; sq_close releases them all.
 * Threads: any, except the lws service thread (calls may block on I/O);
 * the locks in struct sstore say which state each one guards.
 */
#ifndef GW_STORE_SQLITE_H
#define GW_STORE_SQLITE_H

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "strmap.h"

/* Writer statements (leader only). */
enum wst {
	W_BEGIN,
	W_COMMIT,
	W_ROLLBACK,
	W_SAVEPOINT,
	W_RELEASE,
	W_ROLLBACK_TO,
	W_KEY_PUT,
	W_JOURNAL_ADD,
	W_JOURNAL_DONE,
	W_USER_UPSERT,
	W_NOTE_ADD,
	W_USER_GET,
	W_MARK,
	W_MARK_ALL,
	W_UNREAD,
	W_PURGE_AGE,
	W_PURGE_USERS,
	W_PURGE_OLDEST,
	W_PURGE_KEYS,
	W_BATCH_ADD,
	W_PURGE_BATCHES,
	W__COUNT
};

/* Reader statements (reader mutex). */
enum rst { R_BEGIN, R_COMMIT, R_PENDING, R_USER_GET, R_OLDEST, R_SINCE, R_INBOX, R_UNREAD, R__COUNT };

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

/* What a request is, for the group commit's linger (store_sqlite.c). */
enum wkind { WK_OTHER, WK_JOURNAL, WK_RECORD };

struct wreq {
	struct wreq *next;
	wfn fn;
	void (*undo)(struct sstore *s, struct wreq *r); /* its effects were rolled back */
	void *arg;
	int rc;
	int done;
	int quiet; /* a readiness ping (store.h): not counted as a write */
	enum wkind kind;
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
	/* the linger (store_sqlite.c, submit_ex): a leader holding only record
	 * requests waits on lcond, at most SQ_LINGER_NS, for the journal's next
	 * request when one is due; j_*: when the last one came, the smoothed
	 * gap between them, from which thread, its events, its commit's end */
	pthread_cond_t lcond; /* CLOCK_MONOTONIC */
	int lingering;
	int64_t j_last_ns, j_gap_ns;
	size_t j_last_n; /* events in the last journal request */
	int64_t j_done_ns; /* when the last commit carrying a journal request ended */
	pthread_t j_thread;
	int j_seen; /* journal requests seen: 0, 1, 2 = two or more (j_gap_ns valid) */
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

/* An SQLite result code as a GW_STORE_* code. */
int sq_map_rc(int rc);
/* gw_visible(ctx, vis): registered on both connections at open. */
void sq_vis_func(sqlite3_context *cx, int argc, sqlite3_value **argv);
/* Finalizes, closes, unlocks and frees s (also a half-open one). */
void sq_close(struct gw_store *s);
/* The engine's vtable (store.h). */
extern const struct gw_store_ops sq_ops;

#endif
