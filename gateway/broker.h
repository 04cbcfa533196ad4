/* broker.h - who receives a signed notification: the seam between the
 * workers (batch.c knows user, context and frame) and the connections.
 *
 * A broker maps (installation, user, context) to the connections subscribed
 * to it, where a subscription may be a pattern ("*": every context of the
 * user, "abc*": every context starting with "abc"; store.h): the same accountId and context string in two installations are two
 * different addresses. The
 * in-process broker (broker_local.c) is the only one today; a Redis-backed
 * broker for several gateway nodes implements the same operations: publish
 * forwards to the other nodes, and their deliveries come back into the local
 * table. Intake and rules never see a broker.
 *
 * Ownership: the broker never owns connections; a connection unsubscribes
 * itself from each of its subscriptions (gw_broker_unsubscribe, called by
 * realtime.c's unsubscribe_all) before it goes away. publish takes its
 * own references to msg for every connection it queues to.
 * Threads: service thread only.
 */
#ifndef GW_BROKER_H
#define GW_BROKER_H

#include <stddef.h>

#include "msg.h"

struct gw_conn; /* a websocket connection (realtime.c) */

/* Implemented by the transport: queue msg (taking a reference) to conn;
 * ctx is the notification's context (the connection's subscriptions may be
 * patterns: it filters and holds by it). */
void gw_conn_deliver(struct gw_conn *conn, struct gw_msg *msg, const char *ctx);
/* Implemented by the transport: a subscription that subscribe() answered 1
 * (pending) is live now: every notification published from here on reaches
 * conn. Not called for a subscription unsubscribed before. */
void gw_conn_subscribed(struct gw_conn *conn, const char *ctx);

struct gw_broker;

struct gw_broker_ops {
	/* Returns the number of connections the message was queued to here. */
	size_t (*publish)(struct gw_broker *b, const char *inst, const char *user, const char *ctx,
			  struct gw_msg *msg);
	/* 0: subscribed, every notification published from now on reaches
	 * conn; 1: subscribed, but live only once gw_conn_subscribed(conn, ctx)
	 * is called (a broker whose feed is set up elsewhere, broker_redis.h);
	 * -1 when out of memory. Subscribing twice is a no-op (0). */
	int (*subscribe)(struct gw_broker *b, const char *inst, const char *user, const char *ctx,
			 struct gw_conn *conn);
	void (*unsubscribe)(struct gw_broker *b, const char *inst, const char *user, const char *ctx,
			    struct gw_conn *conn);
	size_t (*subscription_count)(struct gw_broker *b);
	void (*destroy)(struct gw_broker *b);
};

struct gw_broker {
	const struct gw_broker_ops *ops;
};

/* The in-process broker: broker_local.h. */

static inline size_t gw_broker_publish(struct gw_broker *b, const char *inst, const char *user,
				       const char *ctx, struct gw_msg *msg)
{
	return b->ops->publish(b, inst, user, ctx, msg);
}
static inline int gw_broker_subscribe(struct gw_broker *b, const char *inst, const char *user,
				      const char *ctx, struct gw_conn *conn)
{
	return b->ops->subscribe(b, inst, user, ctx, conn);
}
static inline void gw_broker_unsubscribe(struct gw_broker *b, const char *inst, const char *user,
					 const char *ctx, struct gw_conn *conn)
{
	b->ops->unsubscribe(b, inst, user, ctx, conn);
}

#endif
