/* broker_local.c - see broker_local.h. Keys are
 * "<len(inst)>:<len(user)>:<inst><user><ctx>" so that no choice of characters
 * can make two different triples collide. */
#include "broker_local.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

struct conn_list {
	struct gw_conn **conns;
	size_t count, cap;
};

struct local_broker {
	struct gw_broker base;
	struct gw_strmap topics;
	size_t subscriptions;
};

static char *make_key(const char *inst, const char *user, const char *ctx, size_t *len)
{
	size_t il = strlen(inst), ul = strlen(user), cl = strlen(ctx);
	char *k = malloc(il + ul + cl + 48);
	if (!k)
		return NULL;
	int n = snprintf(k, 48, "%zu:%zu:", il, ul);
	memcpy(k + n, inst, il);
	memcpy(k + n + il, user, ul);
	memcpy(k + n + il + ul, ctx, cl);
	*len = (size_t)n + il + ul + cl;
	k[*len] = '\0';
	return k;
}

static size_t local_publish(struct gw_broker *b, const char *inst, const char *user, const char *ctx,
			    struct gw_msg *msg)
{
	struct local_broker *lb = (struct local_broker *)b;
	size_t len;
	char *key = make_key(inst, user, ctx, &len);
	if (!key)
		return 0;
	struct conn_list *cl = gw_strmap_get(&lb->topics, key, len);
	free(key);
	if (!cl)
		return 0;
	for (size_t i = 0; i < cl->count; i++)
		gw_conn_deliver(cl->conns[i], msg);
	return cl->count;
}

static int local_subscribe(struct gw_broker *b, const char *inst, const char *user, const char *ctx,
			   struct gw_conn *conn)
{
	struct local_broker *lb = (struct local_broker *)b;
	size_t len;
	char *key = make_key(inst, user, ctx, &len);
	if (!key)
		return -1;
	struct gw_strmap_entry *e = gw_strmap_upsert(&lb->topics, key, len, NULL);
	free(key);
	if (!e)
		return -1;
	struct conn_list *cl = e->value;
	if (!cl) {
		cl = calloc(1, sizeof(*cl));
		if (!cl)
			return -1;
		e->value = cl;
	}
	for (size_t i = 0; i < cl->count; i++)
		if (cl->conns[i] == conn)
			return 0;
	if (cl->count == cl->cap) {
		size_t ncap = cl->cap ? cl->cap * 2 : 2;
		struct gw_conn **n = realloc(cl->conns, ncap * sizeof(*n));
		if (!n)
			return -1;
		cl->conns = n;
		cl->cap = ncap;
	}
	cl->conns[cl->count++] = conn;
	lb->subscriptions++;
	return 0;
}

static void local_unsubscribe(struct gw_broker *b, const char *inst, const char *user, const char *ctx,
			      struct gw_conn *conn)
{
	struct local_broker *lb = (struct local_broker *)b;
	size_t len;
	char *key = make_key(inst, user, ctx, &len);
	if (!key)
		return;
	struct conn_list *cl = gw_strmap_get(&lb->topics, key, len);
	if (cl) {
		for (size_t i = 0; i < cl->count; i++)
			if (cl->conns[i] == conn) {
				/* Keep order: tabs receive in subscription order. */
				memmove(&cl->conns[i], &cl->conns[i + 1],
					(cl->count - i - 1) * sizeof(cl->conns[0]));
				cl->count--;
				lb->subscriptions--;
				break;
			}
		if (!cl->count) {
			gw_strmap_remove(&lb->topics, key, len);
			free(cl->conns);
			free(cl);
		}
	}
	free(key);
}

static size_t local_count(struct gw_broker *b)
{
	return ((struct local_broker *)b)->subscriptions;
}

static void free_list(void *v)
{
	struct conn_list *cl = v;
	free(cl->conns);
	free(cl);
}

static void local_destroy(struct gw_broker *b)
{
	struct local_broker *lb = (struct local_broker *)b;
	gw_strmap_free(&lb->topics, free_list);
	free(lb);
}

static const struct gw_broker_ops local_ops = {
	.publish = local_publish,
	.subscribe = local_subscribe,
	.unsubscribe = local_unsubscribe,
	.subscription_count = local_count,
	.destroy = local_destroy,
};

struct gw_broker *gw_broker_local_new(void)
{
	struct local_broker *lb = calloc(1, sizeof(*lb));
	if (!lb)
		return NULL;
	lb->base.ops = &local_ops;
	if (gw_strmap_init(&lb->topics, 1024)) {
		free(lb);
		return NULL;
	}
	return &lb->base;
}
