/* redis_conn.c - see redis_conn.h. */
#include "redis_conn.h"

#include "stats.h"

#include <ctype.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

int64_t gw_redis_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes [s, s+n) into out; -1 on a bad escape or overflow. */
static int pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return -1;
			int h = unhex(s[i + 1]), l = unhex(s[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = h * 16 + l;
			i += 2;
		}
		if (w + 1 >= outlen || c == 0)
			return -1;
		out[w++] = (char)c;
	}
	out[w] = '\0';
	return 0;
}

int gw_redis_url_parse(const char *url, struct gw_redis_url *out, char *msg, size_t msglen)
{
	memset(out, 0, sizeof(*out));
	out->port = 6379;
	if (!strncmp(url, "rediss://", 9)) {
		snprintf(
			msg, msglen,
			"rediss:// (TLS) is not supported: Debian 12's hiredis 0.14.1 has no TLS; "
			"reach Redis over a private network or a TLS tunnel (stunnel, spiped) and use redis://");
		return -1;
	}
	if (strncmp(url, "redis://", 8)) {
		snprintf(msg, msglen, "not a redis:// URL (expected redis://[:password@]host:port/db)");
		return -1;
	}
	const char *p = url + 8;
	const char *at = strrchr(p, '@');
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (!colon) {
			snprintf(msg, msglen, "credentials must be [user]:password@ (percent-encoded)");
			return -1;
		}
		if (pct_decode(p, (size_t)(colon - p), out->user, sizeof(out->user)) ||
		    pct_decode(colon + 1, (size_t)(at - colon - 1), out->password, sizeof(out->password))) {
			snprintf(msg, msglen, "bad percent-encoding or too long in the credentials");
			return -1;
		}
		p = at + 1;
	}
	const char *hend;
	if (*p == '[') {
		hend = strchr(p, ']');
		if (!hend || hend == p + 1 || (size_t)(hend - p - 1) >= sizeof(out->host)) {
			snprintf(msg, msglen, "bad IPv6 address in brackets");
			return -1;
		}
		memcpy(out->host, p + 1, (size_t)(hend - p - 1));
		hend++;
	} else {
		hend = p + strcspn(p, ":/");
		if (hend == p || (size_t)(hend - p) >= sizeof(out->host)) {
			snprintf(msg, msglen, "missing or too long host name");
			return -1;
		}
		memcpy(out->host, p, (size_t)(hend - p));
		for (const char *c = out->host; *c; c++)
			if (!isalnum((unsigned char)*c) && !strchr(".-_", *c)) {
				snprintf(msg, msglen, "bad character in host name");
				return -1;
			}
	}
	p = hend;
	if (*p == ':') {
		char *end;
		long port = strtol(p + 1, &end, 10);
		if (end == p + 1 || port < 1 || port > 65535 || (*end && *end != '/')) {
			snprintf(msg, msglen, "bad port (1-65535)");
			return -1;
		}
		out->port = (int)port;
		p = end;
	}
	if (*p == '/' && p[1]) {
		char *end;
		long db = strtol(p + 1, &end, 10);
		if (end == p + 1 || *end || db < 0 || db > 1000000) {
			snprintf(msg, msglen, "bad database number after / (0, 1, ...)");
			return -1;
		}
		out->db = (int)db;
	} else if (*p && strcmp(p, "/")) {
		snprintf(msg, msglen, "unexpected '%.20s' after the host", p);
		return -1;
	}
	return 0;
}

void gw_redis_url_name(const struct gw_redis_url *u, char *out, size_t outlen)
{
	snprintf(out, outlen, strchr(u->host, ':') ? "redis://[%s]:%d/%d" : "redis://%s:%d/%d", u->host,
		 u->port, u->db);
}

void gw_redis_user_key(const char *inst, const char *user, char out[38])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned dl = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
		 EVP_DigestUpdate(c, inst, strlen(inst) + 1) && EVP_DigestUpdate(c, user, strlen(user)) &&
		 EVP_DigestFinal_ex(c, d, &dl);
	EVP_MD_CTX_free(c);
	if (!ok) {
		out[0] = '\0';
		return;
	}
	static const char hex[] = "0123456789abcdef";
	memcpy(out, "gw:u:", 5);
	for (int i = 0; i < 16; i++) {
		out[5 + 2 * i] = hex[d[i] >> 4];
		out[6 + 2 * i] = hex[d[i] & 15];
	}
	out[37] = '\0';
}

void gw_redis_user_channel(const char *inst, const char *user, int db, char out[64])
{
	char k[38];
	gw_redis_user_key(inst, user, k);
	if (!k[0]) {
		out[0] = '\0';
		return;
	}
	snprintf(out, 64, "gw:ch:%d:%s", db, k + 5);
}

int gw_redis_note_header(uint64_t seq, const char *inst, const char *user, const char *ctx, size_t claims_len,
			 char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%" PRIu64 " %zu %zu %zu %zu\n%s%s%s", seq, strlen(inst), strlen(user),
			 strlen(ctx), claims_len, inst, user, ctx);
	return n < 0 || (size_t)n >= outlen ? -1 : n;
}

size_t gw_redis_shard_of(const char *inst, const char *user, size_t n)
{
	if (n <= 1)
		return 0;
	/* FNV-1a over inst NUL user, then the splitmix64 finalizer: no
	 * allocation, so no failure that could move a user. */
	uint64_t key = 1469598103934665603ULL;
	for (const char *p = inst;; p++) {
		key = (key ^ (unsigned char)*p) * 1099511628211ULL;
		if (!*p)
			break;
	}
	for (const char *p = user; *p; p++)
		key = (key ^ (unsigned char)*p) * 1099511628211ULL;
	key = (key ^ (key >> 30)) * 0xbf58476d1ce4e5b9ULL;
	key = (key ^ (key >> 27)) * 0x94d049bb133111ebULL;
	key ^= key >> 31;
	/* Jump consistent hash (Lamping, Veach 2014): adding a shard moves
	 * only 1/n of the users. */
	int64_t b = -1, j = 0;
	while (j < (int64_t)n) {
		b = j;
		key = key * 2862933555777941757ULL + 1;
		j = (int64_t)((double)(b + 1) * ((double)(1LL << 31) / (double)((key >> 33) + 1)));
	}
	return (size_t)b;
}

void gw_redis_conn_init(struct gw_redis_conn *rc, const struct gw_redis_url *u, int64_t timeout_ms)
{
	memset(rc, 0, sizeof(*rc));
	rc->url = *u;
	rc->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
	rc->backoff_ms = BACKOFF_MIN_MS;
}

void gw_redis_conn_fail(struct gw_redis_conn *rc)
{
	if (rc->c)
		redisFree(rc->c);
	rc->c = NULL;
	unsigned r = 0;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (unsigned)gw_redis_now_ms();
	/* equal jitter: half the backoff fixed, half random, so that nodes
	 * that lost Redis together do not come back in one burst */
	int64_t wait = rc->backoff_ms / 2 + (int64_t)(r % (unsigned)(rc->backoff_ms / 2 + 1));
	rc->next_try_ms = gw_redis_now_ms() + wait;
	rc->backoff_ms = rc->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : rc->backoff_ms * 2;
}

void gw_redis_conn_close(struct gw_redis_conn *rc)
{
	if (rc->c)
		redisFree(rc->c);
	rc->c = NULL;
}

struct redisReply *gw_redis_conn_cmd(struct gw_redis_conn *rc, int argc, const char **argv,
				     const size_t *lens)
{
	if (!rc->c)
		return NULL;
	gw_stat_inc(GW_STAT_redis_round_trips);
	redisReply *r = redisCommandArgv(rc->c, argc, argv, lens);
	if (!r || rc->c->err) {
		if (r)
			freeReplyObject(r);
		gw_redis_conn_fail(rc);
		return NULL;
	}
	return r;
}

struct redisReply *gw_redis_conn_cmd_offset(struct gw_redis_conn *rc, int argc, const char **argv,
					    const size_t *lens, int64_t *offset)
{
	*offset = -1;
	if (!rc->c)
		return NULL;
	gw_stat_inc(GW_STAT_redis_round_trips);
	void *r = NULL, *role = NULL;
	if (redisAppendCommandArgv(rc->c, argc, argv, lens) != REDIS_OK ||
	    redisAppendCommand(rc->c, "ROLE") != REDIS_OK || redisGetReply(rc->c, &r) != REDIS_OK ||
	    redisGetReply(rc->c, &role) != REDIS_OK || rc->c->err) {
		if (r)
			freeReplyObject(r);
		if (role)
			freeReplyObject(role);
		gw_redis_conn_fail(rc);
		return NULL;
	}
	redisReply *ro = role;
	if (ro->type == REDIS_REPLY_ARRAY && ro->elements >= 2 &&
	    ro->element[0]->type == REDIS_REPLY_STRING && !strcmp(ro->element[0]->str, "master") &&
	    ro->element[1]->type == REDIS_REPLY_INTEGER)
		*offset = ro->element[1]->integer;
	freeReplyObject(role);
	return r;
}

static int handshake_fail(struct gw_redis_conn *rc, int code, char *msg, size_t msglen, const char *what,
			  const char *detail)
{
	char name[300];
	gw_redis_url_name(&rc->url, name, sizeof(name));
	snprintf(msg, msglen, "%s: %s%s%s", name, what, detail ? ": " : "", detail ? detail : "");
	gw_redis_conn_fail(rc);
	return code;
}

/* A failed read or write during the handshake: a peer that answered
 * something hiredis cannot parse is not Redis; silence is a timeout. */
static int io_fail(struct gw_redis_conn *rc, char *msg, size_t msglen)
{
	char detail[160];
	snprintf(detail, sizeof(detail), "%s", rc->c->errstr);
	if (rc->c->err == REDIS_ERR_PROTOCOL)
		return handshake_fail(rc, GW_REDIS_NOT_REDIS, msg, msglen,
				      "the server does not speak the Redis protocol (is it Redis?)", detail);
	if (rc->c->err == REDIS_ERR_IO && !strcmp(detail, "Resource temporarily unavailable")) {
		snprintf(detail, sizeof(detail),
			 "no answer within %lld ms (frozen, overloaded, or not Redis)",
			 (long long)rc->timeout_ms);
		return handshake_fail(rc, GW_REDIS_UNREACHABLE, msg, msglen, "unreachable", detail);
	}
	return handshake_fail(rc, GW_REDIS_UNREACHABLE, msg, msglen, "unreachable", detail);
}

int gw_redis_conn_ensure(struct gw_redis_conn *rc, int *fresh, char *msg, size_t msglen)
{
	*fresh = 0;
	if (rc->c)
		return GW_REDIS_OK;
	if (gw_redis_now_ms() < rc->next_try_ms) {
		char name[300];
		gw_redis_url_name(&rc->url, name, sizeof(name));
		snprintf(msg, msglen, "%s: unreachable (waiting before the next attempt)", name);
		return GW_REDIS_UNREACHABLE;
	}
	struct timeval tv = {rc->timeout_ms / 1000, (rc->timeout_ms % 1000) * 1000};
	rc->c = redisConnectWithTimeout(rc->url.host, rc->url.port, tv);
	if (!rc->c)
		return handshake_fail(rc, GW_REDIS_UNREACHABLE, msg, msglen, "unreachable", "out of memory");
	if (rc->c->err)
		return io_fail(rc, msg, msglen);
	if (redisSetTimeout(rc->c, tv) != REDIS_OK)
		return io_fail(rc, msg, msglen);
	redisEnableKeepAlive(rc->c);
	redisReply *r;
	if (rc->url.password[0]) {
		if (rc->url.user[0])
			r = redisCommand(rc->c, "AUTH %s %s", rc->url.user, rc->url.password);
		else
			r = redisCommand(rc->c, "AUTH %s", rc->url.password);
		if (!r)
			return io_fail(rc, msg, msglen);
		if (r->type == REDIS_REPLY_ERROR) {
			char detail[200];
			snprintf(detail, sizeof(detail), "%.180s", r->str);
			freeReplyObject(r);
			return handshake_fail(rc, GW_REDIS_AUTH, msg, msglen, "authentication refused",
					      detail);
		}
		freeReplyObject(r);
	}
	r = redisCommand(rc->c, "PING");
	if (!r)
		return io_fail(rc, msg, msglen);
	int pong = r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG");
	int noauth = r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOAUTH", 6);
	freeReplyObject(r);
	if (noauth)
		return handshake_fail(rc, GW_REDIS_AUTH, msg, msglen, "authentication required",
				      "give the password as redis://:PASSWORD@host:port");
	if (!pong)
		return handshake_fail(rc, GW_REDIS_NOT_REDIS, msg, msglen, "PING was not answered PONG",
				      "is it Redis?");
	if (rc->url.db) {
		r = redisCommand(rc->c, "SELECT %d", rc->url.db);
		if (!r)
			return io_fail(rc, msg, msglen);
		int ok = r->type == REDIS_REPLY_STATUS;
		char detail[200];
		snprintf(detail, sizeof(detail), "%.180s", r->type == REDIS_REPLY_ERROR ? r->str : "");
		freeReplyObject(r);
		if (!ok)
			return handshake_fail(rc, GW_REDIS_NOT_REDIS, msg, msglen,
					      "cannot select the database", detail);
	}
	rc->backoff_ms = BACKOFF_MIN_MS;
	rc->connects++;
	*fresh = 1;
	return GW_REDIS_OK;
}
