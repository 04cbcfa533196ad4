/* broker_redis.h - broker.h's operations across gateway nodes (cluster
 * mode, docs/cluster.md): a notification reaches every connection of its
 * user on every node, once, in seq order.
 *
 * How: the store's record script (store_redis.c) PUBLISHes every note to
 * its user's channel gw:ch:<db>:<hash> in the same atomic step that assigns
 * its seq, so Redis emits a user's notifications in seq order. Each node
 * SUBSCRIBEs to the channels of the users it has connections for (per-user
 * channels; the measured reason is in docs/cluster.md) and delivers what
 * arrives to its local connections, its own notifications included: one
 * path for all, so no race between a local shortcut and the channel.
 * publish() therefore delivers nothing itself (returns 0). subscribe()
 * answers 1 (pending) until Redis has confirmed this node's SUBSCRIBE of the
 * user's channel; drain then calls gw_conn_subscribed for each waiting
 * subscription (broker.h; docs/cluster.md "The live seam after a subscribe").
 *
 * Threads: subscribe, unsubscribe, drain, ready and destroy run on the
 * service thread and never wait for Redis. A dedicated broker thread runs a
 * libuv loop with hiredis' async API (its libuv adapter): it subscribes,
 * receives, builds each frame ({"op":"notification","claims":...,"proof":...})
 * and hands it to the service thread through an outbox (wake() is called
 * when the outbox goes from empty to non-empty; the service thread then
 * calls gw_broker_redis_drain). At most 64 MiB of frames wait there; past
 * it new ones are dropped (redis_broker_dropped) and their clients recover
 * with since. Requests to the broker thread go through a locked list and
 * uv_async_send.
 *
 * Liveness: every probe interval the broker thread PUBLISHes a probe to
 * gw:probe:<db>:<node id> on each shard over a second connection and its own
 * subscriber must receive it; a subscriber that has not seen its probe for
 * two intervals plus cluster.timeout (a frozen or failed-over Redis that
 * still holds the TCP connection) is dropped and made again with backoff
 * and jitter. gw_broker_redis_ready is true only while every shard's probe
 * came back recently: a node that silently stopped receiving is not ready.
 * After a shard's subscriber is made again, notifications published
 * meanwhile on that shard were not received: the shard's generation
 * changes, and the connections of that node whose user lives on that shard
 * must resume with since (the store has everything). Every item the broker
 * thread queues carries its shard and that shard's generation; drain
 * delivers only the accepted generation's, holds newer ones (in order) until
 * the service thread accepts their generation (after closing the shard's
 * connections), and drops older ones. So the other shards' users keep their
 * live feed, and no frame of a new subscriber reaches a connection opened
 * before it was accepted, whenever drain runs.
 *
 * Ownership: the broker owns its inner local broker, its threads and its
 * connections; destroy stops the thread and frees everything.
 */
#ifndef GW_BROKER_REDIS_H
#define GW_BROKER_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "broker.h"

struct gw_broker_redis_options {
	const char *const *redis; /* the store's URLs, in the same order (shards) */
	size_t nredis;
	int64_t timeout_ms; /* cluster.timeout (0: 2000) */
	int64_t probe_interval_ms; /* 0: 1000 */
	const char *node_id;
	void (*wake)(void *ud); /* called on the broker thread: deliveries wait */
	void *wake_ud;
	/* Service thread, from drain: another node changed the read state of
	 * these ids (ctxs[i]: the context of ids[i]) of (inst, user). */
	void (*marked)(void *ud, const char *inst, const char *user, int read, const char *const *ids,
		       const char *const *ctxs, size_t n);
	void *marked_ud;
};

/* NULL with msg on a bad URL or out of memory. Connecting happens on the
 * broker thread (the store's open has already checked the servers). */
struct gw_broker *gw_broker_redis_new(const struct gw_broker_redis_options *o, char *msg, size_t msglen);
/* Service thread: delivers everything that arrived; returns how many
 * frames were queued to connections. */
size_t gw_broker_redis_drain(struct gw_broker *b);
/* 1 when every shard's subscriber is up and its last probe came back
 * within two intervals plus the timeout; *oldest_ms: the oldest probe age. */
int gw_broker_redis_ready(struct gw_broker *b, int64_t *oldest_ms);
/* Service thread, never waits: tells the other nodes' tabs of (inst, user)
 * that the read state of ids changed (published on the user's channel as
 * "M\n" + JSON with this node's id, which this node ignores when it comes
 * back). Lost when Redis is down: those tabs read it with their next inbox. */
void gw_broker_redis_publish_marked(struct gw_broker *b, const char *inst, const char *user, int read,
				    char *const *ids, char *const *ctxs, size_t n);
/* Rule versions across the nodes: every probe interval each node publishes
 * "<rules version> <node id>" on gw:nodes:<db> (shard 0); a node whose
 * version differs from this one's is logged (warning, once per node and
 * version). set: service thread, at start and after each reload. */
void gw_broker_redis_set_rules_version(struct gw_broker *b, const char *version);
/* {"node","rulesVersion","nodes":[{"node","rulesVersion","seenMsAgo"}],
 * "rulesVersionsDiffer"}: the nodes heard from within 3 probe intervals +
 * the timeout (this one included once its own message came back). */
json_t *gw_broker_redis_nodes_json(struct gw_broker *b);
/* Changes every time a subscriber connection is made again (any shard). */
uint64_t gw_broker_redis_generation(struct gw_broker *b);
/* Per shard (shard < nshards). generation: bumped each time the shard's
 * subscriber is made (1 after the first); any thread. shard_ready: its
 * subscriber is up and its probe came back within two intervals plus the
 * timeout. accepted / accept_shard: service thread; the generation whose
 * items drain delivers (0 at start: generation 1's are delivered). */
size_t gw_broker_redis_nshards(struct gw_broker *b);
uint64_t gw_broker_redis_shard_generation(struct gw_broker *b, size_t shard);
int gw_broker_redis_shard_ready(struct gw_broker *b, size_t shard);
uint64_t gw_broker_redis_shard_accepted(struct gw_broker *b, size_t shard);
void gw_broker_redis_accept_shard(struct gw_broker *b, size_t shard, uint64_t gen);

#endif
