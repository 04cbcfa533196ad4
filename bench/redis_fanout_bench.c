/* redis_fanout_bench.c - per-user channels vs a fixed set of shard channels
 * for the cluster broker (a benchmark, not a test; docs/cluster.md).
 *
 * Three "nodes" (subscriber connections, one reader thread each) on one
 * redis-server:
 *  - per-user: 100,000 user channels split over the nodes (each user held by
 *    one node); a publish goes to the one node that holds the user;
 *  - shard: 16 channels, every node subscribed to all of them; a publish
 *    goes to all three nodes, two of which drop it.
 * For each: Redis CPU per publish (INFO cpu), messages and bytes each node
 * must read per publish, Redis memory per subscribed channel, and the time
 * to subscribe 100,000 channels. 256-byte payloads, pipelined publishes.
 *
 * Usage: redis_fanout_bench HOST PORT [PUBLISHES]   (a scratch server: it is
 * not flushed, but nothing is written besides subscriptions)
 */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NODES 3
#define USERS 100000
#define SHARDS 16

static const char *host;
static int port;

struct node {
	redisContext *c;
	pthread_t th;
	_Atomic long long msgs, bytes;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static redisContext *conn(void)
{
	redisContext *c = redisConnect(host, port);
	if (!c || c->err) {
		fprintf(stderr, "cannot connect to %s:%d\n", host, port);
		exit(1);
	}
	return c;
}

static double info_num(redisContext *c, const char *section, const char *field)
{
	redisReply *r = redisCommand(c, "INFO %s", section);
	double v = 0;
	char key[64];
	snprintf(key, sizeof(key), "%s:", field);
	const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, key) : NULL;
	if (p)
		v = atof(p + strlen(key));
	if (r)
		freeReplyObject(r);
	return v;
}

static double redis_cpu(redisContext *c)
{
	return info_num(c, "cpu", "used_cpu_sys") + info_num(c, "cpu", "used_cpu_user");
}

static void *reader(void *p)
{
	struct node *n = p;
	redisReply *r;
	while (redisGetReply(n->c, (void **)&r) == REDIS_OK) {
		if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
		    !strcmp(r->element[0]->str, "message")) {
			atomic_fetch_add(&n->msgs, 1);
			atomic_fetch_add(&n->bytes,
					 (long long)(r->element[1]->len + r->element[2]->len + 40));
		}
		freeReplyObject(r);
	}
	return NULL;
}

/* Subscribes node n to the channels i in [0, count) with i % every == rest. */
static void subscribe(struct node *n, const char *fmt, int count, int every, int rest)
{
	const char *argv[1001];
	char names[1000][48];
	int k = 0;
	for (int i = 0; i < count; i++) {
		if (i % every != rest)
			continue;
		snprintf(names[k], sizeof(names[k]), "%s%d", fmt, i);
		argv[k + 1] = names[k];
		if (++k == 1000 || i >= count - every) {
			argv[0] = "SUBSCRIBE";
			redisAppendCommandArgv(n->c, k + 1, argv, NULL);
			k = 0;
		}
	}
	if (k) {
		argv[0] = "SUBSCRIBE";
		redisAppendCommandArgv(n->c, k + 1, argv, NULL);
	}
	int done = 0;
	while (!done) /* flush what is buffered */
		if (redisBufferWrite(n->c, &done) != REDIS_OK)
			exit(1);
}

static void run(const char *label, const char *fmt, int channels, int per_node_split, long publishes)
{
	redisContext *ctl = conn();
	struct node nodes[NODES];
	double m0 = info_num(ctl, "memory", "used_memory");
	double t0 = now_s();
	for (int i = 0; i < NODES; i++) {
		nodes[i].c = conn();
		atomic_init(&nodes[i].msgs, 0);
		atomic_init(&nodes[i].bytes, 0);
		subscribe(&nodes[i], fmt, channels, per_node_split ? NODES : 1, per_node_split ? i : 0);
	}
	double want = per_node_split ? channels : (double)channels;
	while (info_num(ctl, "stats", "pubsub_channels") < want)
		usleep(10000);
	double t_sub = now_s() - t0;
	double m1 = info_num(ctl, "memory", "used_memory");
	for (int i = 0; i < NODES; i++)
		pthread_create(&nodes[i].th, NULL, reader, &nodes[i]);
	usleep(200000); /* the subscribe confirmations are read */
	char payload[257];
	memset(payload, 'x', 256);
	payload[256] = '\0';
	redisContext *pub = conn();
	double c0 = redis_cpu(ctl), w0 = now_s();
	unsigned seed = 42;
	for (long i = 0; i < publishes; i += 1000) {
		for (int k = 0; k < 1000; k++) {
			char ch[48];
			snprintf(ch, sizeof(ch), "%s%d", fmt, (int)(rand_r(&seed) % (unsigned)channels));
			redisAppendCommand(pub, "PUBLISH %s %s", ch, payload);
		}
		for (int k = 0; k < 1000; k++) {
			redisReply *r;
			if (redisGetReply(pub, (void **)&r) != REDIS_OK)
				exit(1);
			freeReplyObject(r);
		}
	}
	long long expect = per_node_split ? publishes : publishes * NODES;
	for (int spin = 0; spin < 3000; spin++) {
		long long got = 0;
		for (int i = 0; i < NODES; i++)
			got += atomic_load(&nodes[i].msgs);
		if (got >= expect)
			break;
		usleep(10000);
	}
	double wall = now_s() - w0, cpu = redis_cpu(ctl) - c0;
	long long msgs = 0, bytes = 0;
	for (int i = 0; i < NODES; i++) {
		msgs += atomic_load(&nodes[i].msgs);
		bytes += atomic_load(&nodes[i].bytes);
	}
	printf("%-9s %6d channels: subscribe %.2f s, %.0f B Redis memory/channel; %ld publishes in %.2f s: "
	       "Redis CPU %.2f us/publish, each node reads %.2f messages (%.0f B) per publish\n",
	       label, channels, t_sub, (m1 - m0) / channels, publishes, wall, cpu * 1e6 / (double)publishes,
	       (double)msgs / NODES / (double)publishes, (double)bytes / NODES / (double)publishes);
	for (int i = 0; i < NODES; i++) {
		shutdown(nodes[i].c->fd, 2);
		pthread_join(nodes[i].th, NULL);
		redisFree(nodes[i].c);
	}
	redisFree(pub);
	redisFree(ctl);
	usleep(300000);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s HOST PORT [PUBLISHES]\n", argv[0]);
		return 2;
	}
	host = argv[1];
	port = atoi(argv[2]);
	long publishes = argc > 3 ? atol(argv[3]) : 300000;
	run("per-user", "gw:ch:0:5f3a9c0e12d4b7a8e6f1c2d3b4a5", USERS, 1, publishes);
	run("shard", "gw:sh:0:", SHARDS, 0, publishes);
	return 0;
}
