/* store_redis_shard.h - what the Redis store's operations (store_redis.c)
 * run on: the store handle and its shards (one Redis server each), a shard
 * taken with a deadline and (re)set up after every connect, the Lua scripts
 * run by name with the epoch check, plain commands, argument vectors, and
 * where a user's keys live. Internal to store_redis*.c.
 *
 * Ownership: the handle owns its shards; a shard owns its connection, the
 * scripts' SHA1s and its epoch. A reply returned through *out is the
 * caller's (freeReplyObject); an argument vector owns the strings it
 * formatted or was given and is freed by rs_run.
 * Threads: any but the service thread; a shard's connection is used under
 * its lock, taken with a deadline (pthread_mutex_timedlock) so a caller
 * never waits longer than about twice cluster.timeout even behind a frozen
 * server; the store's epoch copy has its own lock and never waits on Redis.
 */
#ifndef GW_STORE_REDIS_SHARD_H
#define GW_STORE_REDIS_SHARD_H

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "redis_conn.h"
#include "store.h"

enum {
	S_JOURNAL,
	S_KEY_SEEN,
	S_RECORD,
	S_IS_PENDING,
	S_SINCE,
	S_INBOX,
	S_UNREAD,
	S_MARK,
	S_PURGE,
	S_MAX_SEQS,
	NSCRIPTS
};

struct shard {
	pthread_mutex_t lock;
	struct gw_redis_conn conn;
	char sha[NSCRIPTS][41];
	char epoch[GW_STORE_EPOCH_MAX + 1];
	/* Failover detection (docs/cluster.md, "Durability"): the server the
	 * shard was last set up on, and how far this node's acknowledged writes
	 * reached in its replication stream. Under lock. */
	int known; /* run_id and replid recorded */
	int wrote; /* this node has had a write acknowledged on this shard */
	char run_id[48], replid[48];
	int64_t hw; /* master_repl_offset after this node's last acknowledged write (0: untracked) */
};

struct rstore {
	struct gw_store base;
	struct gw_store_options opt;
	int64_t timeout_ms, claim_after_ms;
	/* claim: XAUTOCLAIM not before this (ms, gw_redis_now_ms); it scans up
	 * to 10 x COUNT entries of the group's PEL, so it runs every
	 * claim_after / 4, not on every claim (store_redis.c r_claim) */
	_Atomic int64_t autoclaim_due_ms;
	char node_id[128];
	int publish;
	int take_own; /* journal: new entries go to this node's consumer at once (store.h) */
	int contiguous; /* record: seqs must follow the stored one (store.h gw_store_cluster) */
	size_t nshards;
	struct shard *sh;
	pthread_mutex_t epoch_lock;
	char epoch[GW_STORE_EPOCH_MAX + 1];
};

#define R(s) ((struct rstore *)(s))

/* Takes the shard with a deadline and makes sure it is connected (the
 * scripts loaded, the epoch read). On success the caller holds sh->lock. */
int rs_shard_take(struct rstore *r, struct shard *sh, char *msg, size_t msglen);
/* The store probe's round trip (INFO replication): also keeps the shard's
 * replication id current (a master changes it when its first replica
 * attaches), so that a promoted replica is recognised (tail_lost). */
int rs_ping(struct rstore *r, struct shard *sh);
/* A plain command on a shard (stream reads). */
int rs_command(struct rstore *r, struct shard *sh, int argc, const char **argv, redisReply **out);
/* gw:u:<32 hex>, the prefix of a user's keys. */
void rs_user_base(const char *inst, const char *user, char out[38]);
/* The shard that holds a user's keys. */
struct shard *rs_user_shard(struct rstore *r, const char *inst, const char *user);

/* A script's arguments after the epoch (ARGV[2..]); a failed allocation is
 * remembered (oom) and reported by rs_run. */
struct args {
	const char **v;
	size_t *len;
	char **owned;
	size_t n, cap, nowned;
	int oom;
};

void rs_arg_bin(struct args *a, const void *p, size_t len);
void rs_arg_str(struct args *a, const char *s);
void rs_arg_fmt(struct args *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Takes a malloc'ed string into the vector. */
void rs_arg_own(struct args *a, char *str);
/* The count, then each pattern. */
void rs_arg_pats(struct args *a, const char *const *pats, size_t npats);
/* Runs script `which` (S_*) with a on sh and frees a. On GW_STORE_ERR_SEQ
 * *out is the error reply (its text: "SEQ" and the stored seqs), the
 * caller's to free; on other errors NULL. */
int rs_run(struct rstore *r, struct shard *sh, int which, struct args *a, redisReply **out);
/* An integer reply, or a string one holding digits; 0 otherwise. */
uint64_t rs_int_of(const redisReply *e);

#endif
