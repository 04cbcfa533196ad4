/* redis_conn.h - what the Redis store (store_redis.c) and the Redis broker
 * (broker_redis.c) share: parsing redis:// URLs, placing a user on a shard,
 * and one synchronous connection with a deadline on every call and
 * reconnection with backoff and jitter.
 *
 * Why a deadline everywhere: a frozen Redis (SIGSTOP, a hung VM) accepts TCP
 * connections and never answers; hiredis' blocking calls would wait forever.
 * Every connect and every command here has timeout_ms (SO_RCVTIMEO/SNDTIMEO
 * through redisSetTimeout), a failed connection is dropped, and the next
 * attempt waits out a backoff (100 ms doubling to 5 s, equal jitter) during
 * which calls fail at once instead of queueing behind a dead server.
 *
 * Debian 12's hiredis is 0.14.1: no TLS (rediss:// is refused with that
 * reason), no RESP3, redisSetTimeout and redisReconnect exist.
 *
 * Ownership: a gw_redis_conn owns its hiredis context and its copy of the
 * URL parts. Threads: a connection is used by one thread at a time (the
 * caller's lock). Nothing here logs; messages never contain the password.
 */
#ifndef GW_REDIS_CONN_H
#define GW_REDIS_CONN_H

#include <stddef.h>
#include <stdint.h>

struct redisContext;
struct redisReply;

struct gw_redis_url {
	char host[256];
	int port;
	int db;
	char user[128]; /* empty: no ACL user (AUTH password only) */
	char password[256]; /* empty: no AUTH */
};

/* redis://[[user]:password@]host[:port][/db]; 0, or -1 with a message that
 * names what is wrong (never the password). */
int gw_redis_url_parse(const char *url, struct gw_redis_url *out, char *msg, size_t msglen);
/* "host:port/db" for messages. */
void gw_redis_url_name(const struct gw_redis_url *u, char *out, size_t outlen);

/* The shard of (installation, user) among n: jump consistent hash of a
 * 64-bit hash of (inst NUL user): stable while the list is; a list grown by
 * one moves 1/n of the users. */
size_t gw_redis_shard_of(const char *inst, const char *user, size_t n);

/* gw:u:<32 hex of SHA-256(inst NUL user)>: the user's key prefix; "" if
 * the digest failed (the caller refuses). */
void gw_redis_user_key(const char *inst, const char *user, char out[38]);
/* gw:ch:<db>:<32 hex>: the user's notification channel (PUBLISH ignores the
 * database number, so it is part of the name). */
void gw_redis_user_channel(const char *inst, const char *user, int db, char out[64]);
/* The message the record script publishes: "<seq> <len inst> <len user>
 * <len ctx> <len claims>\n" inst user ctx, then claims and proof follow. */
int gw_redis_note_header(uint64_t seq, const char *inst, const char *user, const char *ctx, size_t claims_len,
			 char *out, size_t outlen);

enum gw_redis_fail {
	GW_REDIS_OK = 0,
	GW_REDIS_UNREACHABLE = -1, /* refused, reset, timed out, backing off */
	GW_REDIS_AUTH = -2, /* the server refused the password */
	GW_REDIS_NOT_REDIS = -3, /* the peer does not speak RESP */
};

struct gw_redis_conn {
	struct gw_redis_url url;
	int64_t timeout_ms;
	struct redisContext *c;
	int64_t next_try_ms; /* monotonic; no connect before it */
	int64_t backoff_ms;
	uint64_t connects; /* successful connects (the first included) */
};

void gw_redis_conn_init(struct gw_redis_conn *rc, const struct gw_redis_url *u, int64_t timeout_ms);
/* Connects unless connected: AUTH, PING, SELECT, each within timeout_ms.
 * GW_REDIS_UNREACHABLE at once while backing off. Returns enum gw_redis_fail;
 * msg says why. *fresh = 1 when this call made a new connection. */
int gw_redis_conn_ensure(struct gw_redis_conn *rc, int *fresh, char *msg, size_t msglen);
/* One command; NULL when the connection failed (it is dropped and backoff
 * starts). A reply of type error is returned as is. */
struct redisReply *gw_redis_conn_cmd(struct gw_redis_conn *rc, int argc, const char **argv,
				     const size_t *lens);
/* The same, with ROLE pipelined behind it (one round trip): *offset is the
 * server's master_repl_offset once the command has run (its effects
 * included), or -1 when the server is not a master or ROLE is refused. */
struct redisReply *gw_redis_conn_cmd_offset(struct gw_redis_conn *rc, int argc, const char **argv,
					    const size_t *lens, int64_t *offset);
/* Drops the connection and starts the backoff. */
void gw_redis_conn_fail(struct gw_redis_conn *rc);
void gw_redis_conn_close(struct gw_redis_conn *rc);
int64_t gw_redis_now_ms(void);

#endif
