/* store.h - durable delivery: the journal of accepted events, the
 * redelivery guard, per-user history with seq, the inbox and its read state,
 * and retention. One contract, several engines behind a vtable:
 *  - store_sqlite.c: the embedded default, STATE_DIR/notify.db (docs/storage.md);
 *  - store_memory.c: the same contract in process memory (tests, benchmarks;
 *    resume works within one process, nothing survives a restart);
 *  - store_redis.c: the same contract on one or more Redis servers shared by
 *    several gateway nodes (cluster mode, docs/cluster.md).
 * Nothing outside an engine knows its query language or its layout.
 *
 * What the contract promises:
 *  - journal: accepted events are written (one group-committed transaction
 *    per batch of callers, durable as `durability` says) before the caller
 *    answers 202; an event whose redelivery key is already known and not
 *    expired is not journaled again (GW_STORE_DUPLICATE).
 *  - record: an event's notifications and its done mark commit together, so
 *    after a crash at any moment an event is either pending (its
 *    notifications absent) or done (all of them present), never half.
 *  - pending: journaled, not done events in journal (intake) order.
 *  - seq: max_seq per (installation, user) survives restarts and purges.
 *  - epoch: a random id created with the database; a new or wiped database
 *    has a new one. Resume is valid only within one epoch.
 *  - since: all-or-nothing; recovered = 1 only when nothing of the user with
 *    seq > after has been purged and after <= the user's max seq, and then
 *    every stored item with seq > after (in the patterns) is returned.
 *  - retention: a notification is kept until max(exp, created + retention)
 *    and a user keeps at most per_user (the newest); purge removes the rest
 *    in bounded batches. Until a purge runs a user may hold more.
 *
 * Context patterns: "*" matches every context; "abc*" every context that
 * starts with "abc"; anything else is an exact context. A pattern list
 * matches when any of its patterns does; an empty list matches nothing.
 *
 * Ownership: the store owns its handle; every pointer passed in is borrowed
 * for the duration of the call; results (pages, marked lists) belong to the
 * caller and are freed with gw_store_page_free / gw_store_marked_free.
 *
 * Threads: every operation may block on disk (fsync) or network: call it
 * from worker threads or a store thread, never from the lws service thread
 * (results travel back through the outbox like everything else). Every
 * operation is safe to call from several threads at once; concurrent writes
 * are committed together (group commit). gw_store_epoch is the exception:
 * it never blocks and may be called from any thread.
 */
#ifndef GW_STORE_H
#define GW_STORE_H

#include <stddef.h>
#include <stdint.h>

#define GW_STORE_KEY_LEN 32 /* redelivery key: SHA-256 digest */
#define GW_STORE_EPOCH_MAX 64 /* epoch: 1-64 characters [A-Za-z0-9_-] */
#define GW_STORE_MARK_MAX_IDS 500 /* ids per mark; the caller refuses more (too_many_ids) */
#define GW_STORE_PAGE_MIN 1 /* inbox limit is clamped to [MIN, MAX] */
#define GW_STORE_PAGE_MAX 200
#define GW_STORE_EXIT_CODE 3 /* the gateway's exit code when the store cannot open */

/* Return codes. Engines log nothing: a failing open fills the caller's
 * message buffer with the path and the reason. */
enum gw_store_rc {
	GW_STORE_OK = 0,
	GW_STORE_DUPLICATE = 1, /* journal: redelivery key known (not journaled) */
	GW_STORE_NOT_PENDING = 2, /* record: the journal id is done or unknown (nothing written) */
	GW_STORE_ERR_IO = -1, /* read/write failed (disk full, I/O error, network) */
	GW_STORE_ERR_CORRUPT = -2, /* the database is not one of ours or is damaged */
	GW_STORE_ERR_ACCESS = -3, /* the file or directory cannot be written */
	GW_STORE_ERR_VERSION = -4, /* written by a newer schema than this binary knows */
	GW_STORE_ERR_LOCKED = -5, /* another process has the store open */
	GW_STORE_ERR_NOMEM = -6,
	GW_STORE_ERR_INVAL = -7, /* bad argument (e.g. a seq that was already recorded) */
	GW_STORE_ERR_SEQ = -8, /* record, shared engines: a note's seq is not above the user's
				     * stored seq (another node recorded that user meanwhile):
				     * nothing written; re-read max_seq, sign again, record again */
};
const char *gw_store_strerror(int rc);

enum gw_store_durability {
	GW_STORE_FSYNC, /* committed = on stable storage before the call returns */
	GW_STORE_OS, /* committed = handed to the OS: survives a process crash, not a power loss */
};

struct gw_store_options {
	enum gw_store_durability durability;
	int64_t retention; /* seconds a notification stays in the inbox at least (history.retention) */
	int64_t per_user; /* notifications kept per (installation, user) (history.per_user) */
};

/* Cluster mode: what the redis engine needs besides the options. */
struct gw_store_cluster {
	const char *const *redis; /* redis://[user:password@]host:port/db, one per shard */
	size_t nredis;
	int64_t timeout_ms; /* every Redis call returns within about this (0: 2000) */
	int64_t claim_after_ms; /* claim: events idle this long in another node's hands (0: 10000) */
	const char *node_id; /* this node's consumer name in the journal's group */
	int publish; /* record PUBLISHes each note to its user's channel
				   * (broker_redis.c receives them on every node) */
	int contiguous; /* record refuses (GW_STORE_ERR_SEQ) a seq that does not follow
				   * the user's stored one, not only one at or below it: the
				   * gateway renumbers, so a seq a failed pass took leaves no gap */
	int take_own; /* journal hands this node its new entries in the same
		       * round trip (gw_store_journaled.owned): no claim call for
		       * them (docs/cluster.md "Round trips and CPU") */
};

/* An accepted event as journaled. payload is opaque to the store: whatever
 * the pipeline needs to process the event again after a restart. */
struct gw_store_event {
	const char *installation;
	const char *trace_id;
	int64_t received_ms; /* unix time, milliseconds */
	const unsigned char *key; /* GW_STORE_KEY_LEN bytes, or NULL: no redelivery guard */
	const void *payload;
	size_t payload_len;
};

/* One notification of an event: the claims exactly as signed (JSON text) and
 * the proof (JSON object text), so a replay is verified like a live frame. */
struct gw_store_note {
	const char *user; /* the installation is the event's */
	const char *ctx;
	const char *id; /* n.id */
	uint64_t seq; /* > 0, assigned by the caller's sequencer */
	const char *claims;
	size_t claims_len;
	const char *proof;
	size_t proof_len;
	int64_t created, exp; /* unix seconds: iat, exp */
};

/* An event's outcome: its notifications and its done mark, atomically. */
#define GW_STORE_SEQ_UNKNOWN UINT64_MAX

struct gw_store_done {
	uint64_t journal_id;
	const char *installation;
	const struct gw_store_note *notes;
	size_t count;
	/* NULL, or count entries the engine may fill when record returns
	 * GW_STORE_ERR_SEQ: stored[k] = the stored seq of notes[k]'s user as the
	 * refusing call saw it, GW_STORE_SEQ_UNKNOWN where it did not look (read
	 * max_seq): the caller renumbers without a read (redis). */
	uint64_t *stored;
};

/* A stored notification as read back. Strings are NUL-terminated copies. */
struct gw_store_item {
	uint64_t seq;
	char *ctx, *id;
	char *claims, *proof;
	size_t claims_len, proof_len;
	int64_t created, exp;
	int read;
};

struct gw_store_page {
	struct gw_store_item *items;
	size_t count;
	int more; /* more items beyond this page */
	uint64_t unread; /* inbox: unread in the token's patterns (and the filter) */
	uint64_t max_seq; /* since: the user's current seq (0: none yet) */
	uint64_t oldest; /* since: oldest retained seq of the user, max_seq + 1 if none */
	int recovered; /* since: 1 = items hold everything after `after` (all-or-nothing) */
};

struct gw_store_marked {
	char **ids; /* the ids whose state changed */
	char **ctxs; /* ctxs[i]: the context of ids[i] (a tab whose token covers less sees only its own) */
	size_t count;
	uint64_t unread; /* unread in the caller's patterns after the change */
};

struct gw_store_purged {
	uint64_t expired; /* notifications past max(exp, created + retention) */
	uint64_t over_cap; /* notifications beyond per_user (oldest first) */
	uint64_t keys; /* redelivery keys past their ttl */
	int more; /* the bound was hit: call again */
};

struct gw_store_journaled {
	uint64_t id; /* journal id (0 when duplicate) */
	int rc; /* GW_STORE_OK or GW_STORE_DUPLICATE */
	int owned; /* shared engines with gw_store_cluster.take_own: the entry is
		    * this node's already (as if claimed): process it now; claim
		    * does not hand it out unless it idles claim_after */
};

struct gw_store;

/* The engine vtable. Every int-returning operation returns GW_STORE_OK or a
 * negative enum gw_store_rc; on error nothing of that call was written. */
struct gw_store_ops {
	const char *name;
	/* The database's epoch: stable for the handle's life, never blocks. */
	const char *(*epoch)(struct gw_store *s);
	/* Journals n events in one transaction. out[i] says, per event, its
	 * journal id or that its key was known (not expired at `now`). A new key
	 * is remembered until now + key_ttl. Keys repeated within the batch: the
	 * first is journaled, the rest are duplicates. */
	int (*journal)(struct gw_store *s, const struct gw_store_event *ev, size_t n, int64_t now,
		       int64_t key_ttl, struct gw_store_journaled *out);
	/* 1 when key is known and not expired at now, 0 when not, < 0 on error. */
	int (*key_seen)(struct gw_store *s, const unsigned char key[GW_STORE_KEY_LEN], int64_t now);
	/* Calls cb for every journaled, not done event in journal order; cb's
	 * pointers are valid during the call; cb returning non-zero stops. cb
	 * must not call the store (the engine holds a lock meanwhile): copy
	 * what it needs and queue it. */
	int (*pending)(struct gw_store *s, int (*cb)(void *ud, uint64_t id, const struct gw_store_event *ev),
		       void *ud);
	/* Records n events' notifications with their done marks in one
	 * transaction. results[i]: GW_STORE_OK, or GW_STORE_NOT_PENDING when that
	 * event is already done or unknown (its notes are not written). */
	int (*record)(struct gw_store *s, const struct gw_store_done *d, size_t n, int *results);
	/* The highest seq ever recorded for (installation, user); 0 if none.
	 * Seqs are assigned by the caller's sequencer. An engine shared by
	 * several nodes checks them inside record, atomically with the notes and
	 * the done mark: every seq must be above the user's stored one, else the
	 * call writes nothing and returns GW_STORE_ERR_SEQ (the caller reads
	 * max_seq again and signs again: seqs stay contiguous and in order
	 * across nodes without a shared counter to reserve from). */
	int (*max_seq)(struct gw_store *s, const char *inst, const char *user, uint64_t *seq);
	/* Resume: the user's notifications in `pats` with seq > after, in seq
	 * order, at most limit (page->more when there are more), read in one
	 * snapshot with max_seq, oldest and recovered. When not recovered, no
	 * items are returned. */
	int (*since)(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		     size_t npats, uint64_t after, size_t limit, struct gw_store_page *page);
	/* Inbox: newest first, seq < before (0: from the newest), ctx in pats
	 * (the token's) and, when filter is not NULL, in filter; limit clamped
	 * to [GW_STORE_PAGE_MIN, GW_STORE_PAGE_MAX]; unread counted likewise. */
	int (*inbox)(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		     size_t npats, const char *filter, uint64_t before, size_t limit,
		     struct gw_store_page *page);
	/* Unread count of the user in pats (and filter when not NULL). */
	int (*unread)(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		      size_t npats, const char *filter, uint64_t *count);
	/* Sets read state of the user's notifications with these ids in pats.
	 * Ids of other users, outside pats, unknown or already in that state are
	 * ignored. nids must be <= GW_STORE_MARK_MAX_IDS (else GW_STORE_ERR_INVAL). */
	int (*mark)(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		    size_t npats, const char *const *ids, size_t nids, int read, struct gw_store_marked *out);
	/* Marks every notification of the user in pats (and filter) read. */
	int (*mark_all)(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
			size_t npats, const char *filter, struct gw_store_marked *out);
	/* Removes at most max_rows notifications and max_rows redelivery keys
	 * past retention (see above); out->more when there is more to do. */
	int (*purge)(struct gw_store *s, int64_t now, size_t max_rows, struct gw_store_purged *out);
	/* Closes the handle (pending writes are complete: every call returned). */
	void (*close)(struct gw_store *s);
	/* Shared engines only (NULL in the embedded ones, whose single node
	 * reads pending at start): hands this node up to max events nobody is
	 * processing: first those idle in another node's hands for claim_after
	 * (a dead node's), then new ones, in journal order within each; they
	 * count as this node's until recorded. cb as in pending. Processing is
	 * idempotent by journal id: record answers GW_STORE_NOT_PENDING to the
	 * slower of two nodes that processed the same event. */
	int (*claim)(struct gw_store *s, size_t max,
		     int (*cb)(void *ud, uint64_t id, const struct gw_store_event *ev), void *ud);
	/* A round trip for readiness (store_probe.h): GW_STORE_OK when the store
	 * would take a write now. sqlite: begins a write transaction on the
	 * writer (so waits for the write lock like any write, up to its busy
	 * timeout) and commits it empty: nothing written, no fsync; memory: its
	 * lock; redis: PING on every shard. Not counted as a commit (neither
	 * store_commits nor the store_commit histogram) unless it shared one
	 * with real writes. */
	int (*ping)(struct gw_store *s);
	/* Shared engines (NULL in the embedded ones): max_seq of n (installation,
	 * user) pairs in one round trip per shard holding any of them, into
	 * seqs[i] (the re-read after GW_STORE_ERR_SEQ; was one round trip per
	 * user, one after the other). */
	int (*max_seqs)(struct gw_store *s, const char *const *insts, const char *const *users, size_t n,
			uint64_t *seqs);
};

struct gw_store {
	const struct gw_store_ops *ops;
};

/* Opens the engine `kind` ("sqlite", "memory" or "redis") on state_dir (sqlite:
 * state_dir/notify.db, created with a new epoch when absent). On failure
 * returns a negative gw_store_rc, *out = NULL, and a message naming the file
 * and the cause in msg. */
int gw_store_open(const char *kind, const char *state_dir, const struct gw_store_options *opt,
		  struct gw_store **out, char *msg, size_t msglen);
/* The same with the cluster settings ("redis" needs them; NULL otherwise). */
int gw_store_open_ex(const char *kind, const char *state_dir, const struct gw_store_options *opt,
		     const struct gw_store_cluster *cluster, struct gw_store **out, char *msg, size_t msglen);
int gw_store_sqlite_open(const char *state_dir, const struct gw_store_options *opt, struct gw_store **out,
			 char *msg, size_t msglen);
int gw_store_memory_open(const struct gw_store_options *opt, struct gw_store **out, char *msg, size_t msglen);
/* cluster->redis names the servers. Refusals (msg names the URL, never the
 * password): GW_STORE_ERR_INVAL an unparsable URL or rediss:// (this hiredis
 * has no TLS), GW_STORE_ERR_ACCESS a refused password, GW_STORE_ERR_CORRUPT
 * a server that does not speak Redis, GW_STORE_ERR_IO unreachable. */
int gw_store_redis_open(const struct gw_store_options *opt, const struct gw_store_cluster *cluster,
			struct gw_store **out, char *msg, size_t msglen);

/* Shared by the engines and the callers (store.c). */
int gw_store_pattern_match(const char *pattern, const char *ctx);
/* ctx is in one of pats and, when filter is not NULL, in filter. */
int gw_store_visible(const char *const *pats, size_t npats, const char *filter, const char *ctx);
/* Clamps an inbox limit to [GW_STORE_PAGE_MIN, GW_STORE_PAGE_MAX]. */
size_t gw_store_clamp_limit(size_t limit);
/* 32 lowercase hex characters from a CSPRNG into out[33]; 0 or -1. */
int gw_store_new_epoch(char out[33]);
void gw_store_page_free(struct gw_store_page *p);
void gw_store_marked_free(struct gw_store_marked *m);

#endif
