/* store_redis_shard.c - the Redis store's shards (store_redis_shard.h):
 * script loading, epochs (SET NX at first use; several shards: a digest of
 * all of them), the consumer group, taking a shard with a deadline, running
 * scripts (NOSCRIPT and EPOCH handled once each), argument vectors.
 *
 * Ownership and threads: see store_redis_shard.h.
 */
#include "store_redis_shard.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "stats.h"
#include "store_redis_lua.h"
#include "util.h"

static const char *const scripts[NSCRIPTS] = {lua_journal, lua_key_seen, lua_record, lua_is_pending,
					      lua_since,   lua_inbox,	 lua_unread, lua_mark,
					      lua_purge,   lua_max_seqs};

static void set_epoch(struct rstore *r)
{
	char e[GW_STORE_EPOCH_MAX + 1];
	if (r->nshards == 1) {
		snprintf(e, sizeof(e), "%s", r->sh[0].epoch);
	} else {
		unsigned char d[EVP_MAX_MD_SIZE];
		unsigned dl = 0;
		EVP_MD_CTX *c = EVP_MD_CTX_new();
		int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL);
		for (size_t i = 0; ok && i < r->nshards; i++)
			ok = EVP_DigestUpdate(c, r->sh[i].epoch, strlen(r->sh[i].epoch) + 1);
		ok = ok && EVP_DigestFinal_ex(c, d, &dl);
		EVP_MD_CTX_free(c);
		if (!ok) /* keep the old one: the shards' own checks still refuse stale writes */
			return;
		gw_hex_encode(d, 16, e);
	}
	pthread_mutex_lock(&r->epoch_lock);
	memcpy(r->epoch, e, sizeof(e));
	pthread_mutex_unlock(&r->epoch_lock);
}

/* A field of an INFO reply ("name:value\r\n"), copied into out ("" when absent). */
static void info_field(const char *info, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	out[0] = '\0';
	for (const char *p = info; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, name, nl) || p[nl] != ':')
			continue;
		p += nl + 1;
		size_t n = strcspn(p, "\r\n");
		snprintf(out, outlen, "%.*s", (int)(n < outlen ? n : outlen - 1), p);
		return;
	}
}

/* A string reply's text (NULL otherwise); the reply is kept in *keep. */
static const char *cmd_text(struct shard *sh, int argc, const char **argv, redisReply **keep)
{
	*keep = gw_redis_conn_cmd(&sh->conn, argc, argv, NULL);
	if (*keep && ((*keep)->type == REDIS_REPLY_STRING))
		return (*keep)->str;
	return NULL;
}

/* Does the server this connection reached hold every write this node had
 * acknowledged on the shard? Decided after each (re)connect from INFO
 * (docs/cluster.md, "Durability", rules 1-5): 1 when it may not (a
 * failover to a replica that had not received the tail, a restart that may
 * have lost it): the shard's epoch must change. ident: "<run_id>:<replid>"
 * of the new server, which names that change (several nodes bump once). */
static int tail_lost(struct shard *sh, const char *name, char *ident, size_t identlen)
{
	const char *isrv[] = {"INFO", "server"}, *irep[] = {"INFO", "replication"};
	redisReply *a, *b;
	const char *srv = cmd_text(sh, 2, isrv, &a);
	const char *rep = srv ? cmd_text(sh, 2, irep, &b) : (b = NULL, NULL);
	char run_id[48], replid[48], replid2[48], role[16], off[24], off2[24];
	if (srv)
		info_field(srv, "run_id", run_id, sizeof(run_id));
	if (rep) {
		info_field(rep, "role", role, sizeof(role));
		info_field(rep, "master_replid", replid, sizeof(replid));
		info_field(rep, "master_replid2", replid2, sizeof(replid2));
		info_field(rep, "master_repl_offset", off, sizeof(off));
		info_field(rep, "second_repl_offset", off2, sizeof(off2));
	}
	int ok = srv && rep && run_id[0] && replid[0] && off[0];
	if (a)
		freeReplyObject(a);
	if (b)
		freeReplyObject(b);
	if (!ok) {
		/* INFO renamed away (some managed services): nothing to compare */
		if (sh->known)
			gw_log(GW_LOG_WARN,
			       "store: %s: INFO server/replication unavailable: a failover "
			       "cannot be detected (docs/cluster.md)",
			       name);
		sh->known = 0;
		return 0;
	}
	int64_t offset = strtoll(off, NULL, 10), second = off2[0] ? strtoll(off2, NULL, 10) : -1;
	int lost = 0;
	const char *why = NULL;
	snprintf(ident, identlen, "%s:%s", run_id, replid);
	if (!sh->known || !strcmp(run_id, sh->run_id)) {
		lost = 0; /* 1, 2: first sight, or the same process: its memory is intact */
	} else if (sh->hw > 0 && !strcmp(replid, sh->replid)) {
		/* 3: another process continuing the same history (a restart from a
		 * snapshot that kept the replication id): as far as it reaches */
		lost = offset < sh->hw;
		why = "a restarted server whose history stops before this node's last acknowledged write";
	} else if (sh->hw > 0 && !strcmp(replid2, sh->replid) && second > 0) {
		/* 4: a promoted replica: it has the old history up to second - 1 */
		lost = second - 1 < sh->hw;
		why = "a promoted replica that had not received this node's last acknowledged write";
	} else if (sh->wrote) {
		/* 5: no common history (a restart that kept no replication id,
		 * another server, or offsets never tracked): only an AOF fsynced
		 * before every reply keeps what was acknowledged */
		const char *ipers[] = {"INFO", "persistence"}, *cfg[] = {"CONFIG", "GET", "appendfsync"};
		redisReply *p, *c = NULL;
		const char *pers = cmd_text(sh, 2, ipers, &p);
		char aof[8] = "";
		if (pers)
			info_field(pers, "aof_enabled", aof, sizeof(aof));
		if (p)
			freeReplyObject(p);
		int always = 0;
		if (!strcmp(aof, "1") && (c = gw_redis_conn_cmd(&sh->conn, 3, cfg, NULL)) &&
		    c->type == REDIS_REPLY_ARRAY && c->elements == 2 &&
		    c->element[1]->type == REDIS_REPLY_STRING)
			always = !strcmp(c->element[1]->str, "always");
		if (c)
			freeReplyObject(c);
		lost = !always;
		why = "another server or a restart without appendfsync always (acknowledged writes may be lost)";
	}
	if (lost)
		gw_log(GW_LOG_WARN,
		       "store: %s: %s: the shard's epoch is changed (resume answers recovered:false)", name,
		       why);
	if (!strcmp(role, "master") || !role[0]) {
		sh->known = 1;
		snprintf(sh->run_id, sizeof(sh->run_id), "%s", run_id);
		snprintf(sh->replid, sizeof(sh->replid), "%s", replid);
		if (lost || !sh->hw)
			sh->hw = offset; /* what was lost is not waited for again */
	}
	return lost;
}

/* A new epoch for the shard, once per new server (ident): every node that
 * finds the same loss bumps it once between them. */
static const char lua_bump[] = "if redis.call('GET', 'gw:epoch_src') == ARGV[1] then return 0 end\n"
			       "redis.call('SET', 'gw:epoch', ARGV[2])\n"
			       "redis.call('SET', 'gw:epoch_src', ARGV[1])\n"
			       "return 1\n";

/* After every (re)connect: the scripts (a restarted Redis forgot them), the
 * shard's epoch (created when absent: a new or wiped server; changed when
 * the server may lack acknowledged writes: tail_lost) and, on shard 0, the
 * journal's consumer group. */
static int shard_setup(struct rstore *r, struct shard *sh, int is_journal, char *msg, size_t msglen)
{
	char name[300];
	gw_redis_url_name(&sh->conn.url, name, sizeof(name));
	for (int i = 0; i < NSCRIPTS; i++) {
		const char *argv[] = {"SCRIPT", "LOAD", scripts[i]};
		redisReply *rep = gw_redis_conn_cmd(&sh->conn, 3, argv, NULL);
		if (!rep || rep->type != REDIS_REPLY_STRING || rep->len != 40) {
			snprintf(msg, msglen, "%s: SCRIPT LOAD failed: %.160s", name,
				 rep && rep->type == REDIS_REPLY_ERROR ? rep->str : "no answer");
			if (rep)
				freeReplyObject(rep);
			gw_redis_conn_fail(&sh->conn);
			return GW_STORE_ERR_IO;
		}
		memcpy(sh->sha[i], rep->str, 41);
		freeReplyObject(rep);
	}
	char fresh[33];
	if (gw_store_new_epoch(fresh)) {
		snprintf(msg, msglen, "%s: no randomness for a new epoch", name);
		return GW_STORE_ERR_IO;
	}
	char ident[100];
	if (tail_lost(sh, name, ident, sizeof(ident))) {
		const char *bump[] = {"EVAL", lua_bump, "0", ident, fresh};
		redisReply *br = gw_redis_conn_cmd(&sh->conn, 5, bump, NULL);
		int bumped = br && br->type == REDIS_REPLY_INTEGER;
		if (bumped && br->integer == 1)
			gw_stat_inc(GW_STAT_redis_failover_epochs);
		if (br)
			freeReplyObject(br);
		if (!bumped) {
			snprintf(msg, msglen, "%s: cannot change gw:epoch after a failover", name);
			sh->known = 0; /* decided again on the next connect */
			gw_redis_conn_fail(&sh->conn);
			return GW_STORE_ERR_IO;
		}
	}
	const char *setnx[] = {"SET", "gw:epoch", fresh, "NX"};
	const char *get[] = {"GET", "gw:epoch"};
	redisReply *a = gw_redis_conn_cmd(&sh->conn, 4, setnx, NULL);
	redisReply *b = a ? gw_redis_conn_cmd(&sh->conn, 2, get, NULL) : NULL;
	int ok = b && b->type == REDIS_REPLY_STRING && b->len >= 1 && b->len <= GW_STORE_EPOCH_MAX;
	if (ok)
		memcpy(sh->epoch, b->str, b->len + 1);
	if (a)
		freeReplyObject(a);
	if (b)
		freeReplyObject(b);
	if (!ok) {
		snprintf(msg, msglen, "%s: cannot read or create gw:epoch", name);
		gw_redis_conn_fail(&sh->conn);
		return GW_STORE_ERR_IO;
	}
	if (is_journal) {
		const char *grp[] = {"XGROUP", "CREATE", "gw:journal", "gw", "0", "MKSTREAM"};
		redisReply *g = gw_redis_conn_cmd(&sh->conn, 6, grp, NULL);
		ok = g && (g->type == REDIS_REPLY_STATUS ||
			   (g->type == REDIS_REPLY_ERROR && !strncmp(g->str, "BUSYGROUP", 9)));
		if (g)
			freeReplyObject(g);
		if (!ok) {
			snprintf(msg, msglen, "%s: cannot create the journal's consumer group", name);
			gw_redis_conn_fail(&sh->conn);
			return GW_STORE_ERR_IO;
		}
	}
	set_epoch(r);
	return GW_STORE_OK;
}

static int code_of(int fail)
{
	switch (fail) {
	case GW_REDIS_AUTH: return GW_STORE_ERR_ACCESS;
	case GW_REDIS_NOT_REDIS: return GW_STORE_ERR_CORRUPT;
	default: return GW_STORE_ERR_IO;
	}
}

/* Takes the shard with a deadline and makes sure it is connected. */
int rs_shard_take(struct rstore *r, struct shard *sh, char *msg, size_t msglen)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += r->timeout_ms / 1000;
	dl.tv_nsec += (r->timeout_ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	if (pthread_mutex_timedlock(&sh->lock, &dl)) {
		gw_stat_inc(GW_STAT_redis_busy_timeouts);
		snprintf(msg, msglen, "the shard's connection is busy past cluster.timeout");
		return GW_STORE_ERR_IO;
	}
	int fresh = 0;
	int f = gw_redis_conn_ensure(&sh->conn, &fresh, msg, msglen);
	if (f) {
		gw_stat_inc(GW_STAT_redis_errors);
		pthread_mutex_unlock(&sh->lock);
		return code_of(f);
	}
	if (fresh) {
		if (sh->conn.connects > 1)
			gw_stat_inc(GW_STAT_redis_reconnects);
		int rc = shard_setup(r, sh, sh == &r->sh[0], msg, msglen);
		if (rc) {
			gw_stat_inc(GW_STAT_redis_errors);
			pthread_mutex_unlock(&sh->lock);
			return rc;
		}
	}
	return GW_STORE_OK;
}

/* A script's own refusal (redis.error_reply): Redis 7 passes the text as
 * is; older servers prefix it with "ERR ". */
static int is_script_error(const char *str, const char *what)
{
	if (!strncmp(str, "ERR ", 4))
		str += 4;
	return !strcmp(str, what);
}

/* Runs script `which` on sh with args (ARGV[2..]); the epoch is ARGV[1].
 * Reloads scripts on NOSCRIPT and adopts a new epoch on EPOCH (the server
 * was wiped), each once. *out owns the reply. */
static int eval(struct rstore *r, struct shard *sh, int which, int nargs, const char **args,
		const size_t *lens, redisReply **out)
{
	*out = NULL;
	char msg[400];
	int rc = rs_shard_take(r, sh, msg, sizeof(msg));
	if (rc)
		return rc;
	size_t argc = (size_t)nargs + 4;
	const char **argv = malloc(argc * sizeof(*argv));
	size_t *alen = malloc(argc * sizeof(*alen));
	if (!argv || !alen) {
		free(argv);
		free(alen);
		pthread_mutex_unlock(&sh->lock);
		return GW_STORE_ERR_NOMEM;
	}
	for (int attempt = 0; attempt < 3; attempt++) {
		argv[0] = "EVALSHA";
		argv[1] = sh->sha[which];
		argv[2] = "0";
		argv[3] = sh->epoch;
		for (int i = 0; i < 4; i++)
			alen[i] = strlen(argv[i]);
		for (int i = 0; i < nargs; i++) {
			argv[4 + i] = args[i];
			alen[4 + i] = lens ? lens[i] : strlen(args[i]);
		}
		/* Writes whose loss a failover must reveal: ROLE behind them tells
		 * how far they reached in the replication stream (tail_lost). */
		int64_t offset = -1;
		int write = which == S_JOURNAL || which == S_RECORD || which == S_MARK;
		redisReply *rep = write ? gw_redis_conn_cmd_offset(&sh->conn, (int)argc, argv, alen, &offset)
					: gw_redis_conn_cmd(&sh->conn, (int)argc, argv, alen);
		if (write && rep && rep->type != REDIS_REPLY_ERROR) {
			sh->wrote = 1;
			if (offset > sh->hw)
				sh->hw = offset;
		}
		if (!rep) {
			gw_stat_inc(GW_STAT_redis_errors);
			rc = GW_STORE_ERR_IO;
			break;
		}
		int epoch_err = rep->type == REDIS_REPLY_ERROR && is_script_error(rep->str, "EPOCH");
		if (rep->type == REDIS_REPLY_ERROR && (!strncmp(rep->str, "NOSCRIPT", 8) || epoch_err) &&
		    attempt < 2) {
			/* a restarted (NOSCRIPT) or wiped (EPOCH) server: set up again */
			if (epoch_err)
				gw_stat_inc(GW_STAT_redis_epoch_changes);
			freeReplyObject(rep);
			if ((rc = shard_setup(r, sh, sh == &r->sh[0], msg, sizeof(msg))))
				break;
			continue;
		}
		if (rep->type == REDIS_REPLY_ERROR) {
			const char *t = strncmp(rep->str, "ERR ", 4) ? rep->str : rep->str + 4;
			rc = !strncmp(t, "SEQ", 3) && (!t[3] || t[3] == ' ') ? GW_STORE_ERR_SEQ
									     : GW_STORE_ERR_IO;
			if (rc == GW_STORE_ERR_IO) {
				gw_stat_inc(GW_STAT_redis_errors);
				freeReplyObject(rep);
			} else {
				*out = rep; /* the stored seqs that follow "SEQ" (record_on) */
			}
			break;
		}
		*out = rep;
		rc = GW_STORE_OK;
		break;
	}
	free(argv);
	free(alen);
	pthread_mutex_unlock(&sh->lock);
	return rc;
}

/* A reply that is missing or an error: counted and freed (1); else 0. */
static int reply_failed(redisReply *rep)
{
	if (rep && rep->type != REDIS_REPLY_ERROR)
		return 0;
	gw_stat_inc(GW_STAT_redis_errors);
	if (rep)
		freeReplyObject(rep);
	return 1;
}

int rs_ping(struct rstore *r, struct shard *sh)
{
	char msg[400];
	int rc = rs_shard_take(r, sh, msg, sizeof(msg));
	if (rc)
		return rc;
	const char *argv[] = {"INFO", "replication"};
	redisReply *rep = NULL;
	const char *info = cmd_text(sh, 2, argv, &rep);
	if (rep && rep->type == REDIS_REPLY_ERROR) {
		/* INFO renamed away: the round trip is still the probe's */
		static const char *ping[] = {"PING"};
		freeReplyObject(rep);
		rep = gw_redis_conn_cmd(&sh->conn, 1, ping, NULL);
	}
	if (info && sh->known) {
		/* the same connection as the setup that recorded run_id: same server */
		char role[16], replid[48];
		info_field(info, "role", role, sizeof(role));
		info_field(info, "master_replid", replid, sizeof(replid));
		if (!strcmp(role, "master") && replid[0])
			snprintf(sh->replid, sizeof(sh->replid), "%s", replid);
	}
	pthread_mutex_unlock(&sh->lock);
	if (reply_failed(rep))
		return GW_STORE_ERR_IO;
	freeReplyObject(rep);
	return GW_STORE_OK;
}

/* A plain command on a shard (stream reads). */
int rs_command(struct rstore *r, struct shard *sh, int argc, const char **argv, redisReply **out)
{
	*out = NULL;
	char msg[400];
	int rc = rs_shard_take(r, sh, msg, sizeof(msg));
	if (rc)
		return rc;
	redisReply *rep = gw_redis_conn_cmd(&sh->conn, argc, argv, NULL);
	pthread_mutex_unlock(&sh->lock);
	if (reply_failed(rep))
		return GW_STORE_ERR_IO;
	*out = rep;
	return GW_STORE_OK;
}

void rs_user_base(const char *inst, const char *user, char out[38])
{
	gw_redis_user_key(inst, user, out);
}

struct shard *rs_user_shard(struct rstore *r, const char *inst, const char *user)
{
	return &r->sh[gw_redis_shard_of(inst, user, r->nshards)];
}

void rs_arg_bin(struct args *a, const void *p, size_t len)
{
	if (a->oom)
		return;
	if (a->n == a->cap) {
		size_t nc = a->cap ? a->cap * 2 : 32;
		const char **v = realloc(a->v, nc * sizeof(*v));
		size_t *l = v ? realloc(a->len, nc * sizeof(*l)) : NULL;
		if (v)
			a->v = v;
		if (!v || !l) {
			a->oom = 1;
			return;
		}
		a->len = l;
		a->cap = nc;
	}
	a->v[a->n] = p ? p : "";
	a->len[a->n++] = p ? len : 0;
}

void rs_arg_str(struct args *a, const char *s)
{
	rs_arg_bin(a, s, s ? strlen(s) : 0);
}

void rs_arg_fmt(struct args *a, const char *fmt, ...)
{
	char buf[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	char **o = a->oom ? NULL : realloc(a->owned, (a->nowned + 1) * sizeof(*o));
	char *copy = o ? strdup(buf) : NULL;
	if (o)
		a->owned = o;
	if (!copy) {
		a->oom = 1;
		return;
	}
	a->owned[a->nowned++] = copy;
	rs_arg_str(a, copy);
}

/* Takes a malloc'ed string into the vector. */
void rs_arg_own(struct args *a, char *str)
{
	char **o = a->oom ? NULL : realloc(a->owned, (a->nowned + 1) * sizeof(*o));
	if (!o) {
		free(str);
		a->oom = 1;
		return;
	}
	a->owned = o;
	a->owned[a->nowned++] = str;
	rs_arg_str(a, str);
}

static void args_free(struct args *a)
{
	for (size_t i = 0; i < a->nowned; i++)
		free(a->owned[i]);
	free(a->owned);
	free(a->v);
	free(a->len);
	memset(a, 0, sizeof(*a));
}

void rs_arg_pats(struct args *a, const char *const *pats, size_t npats)
{
	rs_arg_fmt(a, "%zu", npats);
	for (size_t i = 0; i < npats; i++)
		rs_arg_str(a, pats[i]);
}

int rs_run(struct rstore *r, struct shard *sh, int which, struct args *a, redisReply **out)
{
	if (a->oom) {
		args_free(a);
		return GW_STORE_ERR_NOMEM;
	}
	int rc = eval(r, sh, which, (int)a->n, a->v, a->len, out);
	args_free(a);
	return rc;
}

uint64_t rs_int_of(const redisReply *e)
{
	if (e->type == REDIS_REPLY_INTEGER)
		return (uint64_t)e->integer;
	if (e->type == REDIS_REPLY_STRING)
		return strtoull(e->str, NULL, 10);
	return 0;
}
