/* Tests broker_local.c: (installation, user, context) routing, several
 * connections per address, no cross-talk between installations, users or
 * contexts, unsubscribe. gw_conn_deliver
 * is the transport's hook; here it records what each connection received. */
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "broker_local.h"

struct gw_conn {
	int received;
	struct gw_msg *last;
};

void gw_conn_deliver(struct gw_conn *conn, struct gw_msg *msg, const char *ctx)
{
	(void)ctx;
	conn->received++;
	conn->last = msg;
}

int main(void)
{
	struct gw_broker *b = gw_broker_local_new();
	struct gw_conn a1 = {0}, a2 = {0}, a_other = {0}, bconn = {0}, tricky = {0};
	CHECK_INT_EQ(gw_broker_subscribe(b, "I1", "alice", "jira:issue:SP-1", &a1), 0);
	CHECK_INT_EQ(gw_broker_subscribe(b, "I1", "alice", "jira:issue:SP-1", &a2), 0);
	CHECK_INT_EQ(gw_broker_subscribe(b, "I1", "alice", "jira:issue:SP-1", &a2), 0); /* twice: no-op */
	CHECK_INT_EQ(gw_broker_subscribe(b, "I1", "alice", "jira:issue:SP-2", &a_other), 0);
	CHECK_INT_EQ(gw_broker_subscribe(b, "I1", "bob", "jira:issue:SP-1", &bconn), 0);
	/* user "al" + ctx "icejira:issue:SP-1" must not collide with alice's key */
	CHECK_INT_EQ(gw_broker_subscribe(b, "I1", "al", "icejira:issue:SP-1", &tricky), 0);
	/* the same user and context in another installation is another address */
	struct gw_conn other_inst = {0};
	CHECK_INT_EQ(gw_broker_subscribe(b, "I2", "alice", "jira:issue:SP-1", &other_inst), 0);
	CHECK_INT_EQ(b->ops->subscription_count(b), 6);

	struct gw_msg *m = gw_msg_new(4);
	CHECK_INT_EQ(gw_broker_publish(b, "I1", "alice", "jira:issue:SP-1", m), 2);
	CHECK_INT_EQ(a1.received, 1);
	CHECK_INT_EQ(a2.received, 1);
	CHECK_INT_EQ(a_other.received, 0);
	CHECK_INT_EQ(bconn.received, 0);
	CHECK_INT_EQ(tricky.received, 0);
	CHECK_INT_EQ(other_inst.received, 0);
	CHECK_INT_EQ(gw_broker_publish(b, "I2", "alice", "jira:issue:SP-1", m), 1);
	CHECK_INT_EQ(other_inst.received, 1);
	CHECK_INT_EQ(a1.received, 1);
	CHECK_INT_EQ(gw_broker_publish(b, "I1", "carol", "jira:issue:SP-1", m), 0);

	gw_broker_unsubscribe(b, "I1", "alice", "jira:issue:SP-1", &a1);
	CHECK_INT_EQ(gw_broker_publish(b, "I1", "alice", "jira:issue:SP-1", m), 1);
	CHECK_INT_EQ(a1.received, 1);
	CHECK_INT_EQ(a2.received, 2);
	gw_broker_unsubscribe(b, "I1", "alice", "jira:issue:SP-1", &a2);
	CHECK_INT_EQ(gw_broker_publish(b, "I1", "alice", "jira:issue:SP-1", m), 0);
	CHECK_INT_EQ(b->ops->subscription_count(b), 4);

	/* patterns: "jira:*" gets every jira context of alice in I1, "*" all */
	struct gw_conn pj = {0}, pall = {0};
	CHECK_INT_EQ(gw_broker_subscribe(b, "I1", "alice", "jira:*", &pj), 0);
	CHECK_INT_EQ(gw_broker_subscribe(b, "I1", "alice", "*", &pall), 0);
	CHECK_INT_EQ(gw_broker_publish(b, "I1", "alice", "jira:issue:SP-9", m), 2);
	CHECK_INT_EQ(gw_broker_publish(b, "I1", "alice", "confluence:page:1", m), 1);
	CHECK_INT_EQ(gw_broker_publish(b, "I1", "bob", "jira:issue:SP-9", m),
		     0); /* alice's patterns are not bob's */
	CHECK_INT_EQ(pj.received, 1);
	CHECK_INT_EQ(pall.received, 2);
	gw_broker_unsubscribe(b, "I1", "alice", "*", &pall);
	CHECK_INT_EQ(gw_broker_publish(b, "I1", "alice", "confluence:page:1", m), 0);
	CHECK_INT_EQ(pall.received, 2);
	gw_msg_unref(m);
	b->ops->destroy(b);
	return CHECK_DONE();
}
