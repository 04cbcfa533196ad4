/* broker_local.c - see broker_local.h. Keys are
 * "<len(inst)>:<len(user)>:<inst><user><ctx>" so that no choice of characters
 * can make two different triples collide. */
#include "broker_local.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "strmap.h"

struct conn_list {
	struct gw_conn **conns;
	size_t count, cap;
};

/* A user's pattern subscriptions ("abc*", "*"): checked on every publish to
 * that user (a user has few). */
struct pat_sub {
	char *pat;
	struct gw_conn *conn;
};
struct pat_list {
	struct pat_sub *v;
	size_t count, cap;
};
struct local_broker {
	struct gw_broker base;
	struct gw_strmap topics;
	struct gw_strmap patterns; /* make_key(inst, user, "") -> struct pat_list */
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
	size_t n = 0;
	for (size_t i = 0; cl && i < cl->count; i++, n++)
		gw_conn_deliver(cl->conns[i], msg, ctx);
	if (!(key = make_key(inst, user, "", &len)))
		return n;
	struct pat_list *pl = gw_strmap_get(&lb->patterns, key, len);
	free(key);
	/* A connection reached twice (exact and pattern) queues the frame once:
	 * realtime.c drops a seq it already queued. */
	for (size_t i = 0; pl && i < pl->count; i++)
		if (gw_store_pattern_match(pl->v[i].pat, ctx)) {
			gw_conn_deliver(pl->v[i].conn, msg, ctx);
			n++;
		}
	return n;
}

static int is_pattern(const char *ctx)
{
	size_t n = strlen(ctx);
	return n && ctx[n - 1] == '*';
}

static int pattern_add(struct local_broker *lb, const char *inst, const char *user, const char *ctx,
		       struct gw_conn *conn)
{
	size_t len;
	char *key = make_key(inst, user, "", &len);
	if (!key)
		return -1;
	struct gw_strmap_entry *e = gw_strmap_upsert(&lb->patterns, key, len, NULL);
	free(key);
	if (!e)
		return -1;
	struct pat_list *pl = e->value;
	if (!pl && !(pl = e->value = calloc(1, sizeof(*pl))))
		return -1;
	if (pl->count == pl->cap) {
		size_t ncap = pl->cap ? pl->cap * 2 : 2;
		struct pat_sub *n = realloc(pl->v, ncap * sizeof(*n));
		if (!n)
			return -1;
		pl->v = n;
		pl->cap = ncap;
	}
	if (!(pl->v[pl->count].pat = strdup(ctx)))
		return -1;
	pl->v[pl->count++].conn = conn;
	return 0;
}

static void pattern_remove(struct local_broker *lb, const char *inst, const char *user, const char *ctx,
			   struct gw_conn *conn)
{
	size_t len;
	char *key = make_key(inst, user, "", &len);
	if (!key)
		return;
	struct pat_list *pl = gw_strmap_get(&lb->patterns, key, len);
	for (size_t i = 0; pl && i < pl->count; i++)
		if (pl->v[i].conn == conn && !strcmp(pl->v[i].pat, ctx)) {
			free(pl->v[i].pat);
			memmove(&pl->v[i], &pl->v[i + 1], (pl->count - i - 1) * sizeof(pl->v[0]));
			pl->count--;
			break;
		}
	if (pl && !pl->count) {
		gw_strmap_remove(&lb->patterns, key, len);
		free(pl->v);
		free(pl);
	}
	free(key);
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
	if (is_pattern(ctx) && pattern_add(lb, inst, user, ctx, conn))
		return -1;
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
				if (is_pattern(ctx))
					pattern_remove(lb, inst, user, ctx, conn);
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

static void free_pats(void *v)
{
	struct pat_list *pl = v;
	for (size_t i = 0; i < pl->count; i++)
		free(pl->v[i].pat);
	free(pl->v);
	free(pl);
}

static void local_destroy(struct gw_broker *b)
{
	struct local_broker *lb = (struct local_broker *)b;
	gw_strmap_free(&lb->topics, free_list);
	gw_strmap_free(&lb->patterns, free_pats);
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
	if (gw_strmap_init(&lb->topics, 1024) || gw_strmap_init(&lb->patterns, 256)) {
		free(lb);
		return NULL;
	}
	return &lb->base;
}
