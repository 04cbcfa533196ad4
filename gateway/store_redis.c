/* store_redis.c - store.h's contract on one or more Redis servers shared by
 * several gateway nodes (cluster mode). Layout, key names and sizes:
 * docs/cluster.md; the scripts: store_redis_lua.h.
 *
 *  - The journal is the Stream gw:journal on the first server (shard 0)
 *    with entry ids 0-<n> (n from INCR gw:jid, so journal ids stay the
 *    uint64 of the contract) and the consumer group "gw": with take_own the
 *    journal script gives the call's new entries to this node's consumer
 *    (no claim round trip); claim reads entries nobody took with XREADGROUP
 *    and takes over a dead node's with XAUTOCLAIM after claim_after. Done entries are acknowledged and deleted, so the
 *    stream holds exactly the pending events.
 *  - A user lives on shard gw_redis_shard_of(inst, user) under
 *    gw:u:<32 hex>: seq, history, inbox and read state (several keys).
 *  - record is one script per shard. With one shard (the common case) it
 *    checks pending, checks seqs, writes the notes and the done mark in one
 *    atomic step. With several, the notes go first, shard by shard, each
 *    leaving a marker gw:ap:<journal id> so a retry after a crash never
 *    writes them twice, then the done mark on shard 0.
 *  - Each shard has its own epoch (gw:epoch, SET NX at first use); the
 *    store's epoch is that epoch with one shard, a digest of all of them
 *    with several (a wiped shard changes it: resume is refused, not wrong).
 *
 * Threads: any; one connection per shard, taken with a deadline
 * (pthread_mutex_timedlock) so that a caller never waits longer than about
 * twice cluster.timeout even behind a frozen server. epoch() reads a copy
 * under its own lock and never blocks on Redis.
 *
 * This file: the operations and the engine (vtable, open, close); the shards,
 * scripts and argument vectors they run on: store_redis_shard.c.
 */
#include "store.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "redis_conn.h"
#include "stats.h"
#include "store_redis_shard.h"
#include "util.h"

#define MARKER_TTL "604800" /* a week: far beyond any claim_after */

/* ---- operations ---------------------------------------------------------- */

static const char *r_epoch(struct gw_store *s)
{
	/* The copy is rewritten only under the lock and only to another valid
	 * epoch; readers get one of the two. The contract's "stable for the
	 * handle's life" holds unless a shard is wiped while running. */
	return R(s)->epoch;
}

static int r_journal(struct gw_store *s, const struct gw_store_event *ev, size_t n, int64_t now,
		     int64_t key_ttl, struct gw_store_journaled *out)
{
	struct rstore *r = R(s);
	for (size_t i = 0; i < n; i++)
		if (!ev[i].installation) {
			gw_stat_inc(GW_STAT_store_write_errors);
			return GW_STORE_ERR_INVAL;
		}
	struct args a = {0};
	char(*hex)[GW_STORE_KEY_LEN * 2 + 1] = calloc(n ? n : 1, sizeof(*hex));
	if (!hex)
		return GW_STORE_ERR_NOMEM;
	rs_arg_fmt(&a, "%" PRId64, now);
	rs_arg_fmt(&a, "%" PRId64, key_ttl);
	rs_arg_fmt(&a, "%zu", n);
	rs_arg_str(&a, r->take_own ? r->node_id : "");
	for (size_t i = 0; i < n; i++) {
		if (ev[i].key)
			gw_hex_encode(ev[i].key, GW_STORE_KEY_LEN, hex[i]);
		rs_arg_str(&a, hex[i]);
		rs_arg_str(&a, ev[i].installation);
		rs_arg_str(&a, ev[i].trace_id ? ev[i].trace_id : "");
		rs_arg_fmt(&a, "%" PRId64, ev[i].received_ms);
		rs_arg_bin(&a, ev[i].payload, ev[i].payload_len);
	}
	redisReply *rep;
	gw_stat_inc(GW_STAT_store_commit_requests);
	int64_t began_ns = gw_monotonic_ns(); /* the store_commit histogram (metrics.h) */
	int rc = rs_run(r, &r->sh[0], S_JOURNAL, &a, &rep);
	free(hex);
	if (rc) {
		gw_stat_inc(GW_STAT_store_write_errors);
		return rc;
	}
	gw_stat_inc(GW_STAT_store_commits);
	gw_hist_observe_ns(GW_HIST_store_commit, gw_monotonic_ns() - began_ns);
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != n + 1) {
		freeReplyObject(rep);
		return GW_STORE_ERR_IO;
	}
	int owned = rs_int_of(rep->element[n]) == 1;
	for (size_t i = 0; i < n; i++) {
		out[i].id = rs_int_of(rep->element[i]);
		out[i].rc = out[i].id ? GW_STORE_OK : GW_STORE_DUPLICATE;
		out[i].owned = owned && out[i].id;
		if (out[i].owned)
			gw_stat_inc(GW_STAT_redis_journal_owned);
	}
	freeReplyObject(rep);
	return GW_STORE_OK;
}

static int r_key_seen(struct gw_store *s, const unsigned char key[GW_STORE_KEY_LEN], int64_t now)
{
	struct rstore *r = R(s);
	char hex[GW_STORE_KEY_LEN * 2 + 1];
	gw_hex_encode(key, GW_STORE_KEY_LEN, hex);
	struct args a = {0};
	rs_arg_fmt(&a, "%" PRId64, now);
	rs_arg_str(&a, hex);
	redisReply *rep;
	int rc = rs_run(r, &r->sh[0], S_KEY_SEEN, &a, &rep);
	if (rc)
		return rc;
	int seen = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
	freeReplyObject(rep);
	return seen;
}

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Calls cb for each stream entry [id, [field, value, ...]] of arr. */
static int deliver_entries(const redisReply *arr, int (*cb)(void *, uint64_t, const struct gw_store_event *),
			   void *ud)
{
	for (size_t i = 0; i < arr->elements; i++) {
		const redisReply *e = arr->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING || e->element[1]->type != REDIS_REPLY_ARRAY)
			continue; /* a deleted entry (XAUTOCLAIM's nil) */
		const char *dash = strchr(e->element[0]->str, '-');
		uint64_t id = dash ? strtoull(dash + 1, NULL, 10) : 0;
		struct gw_store_event ev = {0};
		unsigned char key[GW_STORE_KEY_LEN];
		const redisReply *f = e->element[1];
		for (size_t k = 0; k + 1 < f->elements; k += 2) {
			const char *name = f->element[k]->str;
			const redisReply *v = f->element[k + 1];
			if (!name || v->type != REDIS_REPLY_STRING)
				continue;
			switch (name[0]) {
			case 'i': ev.installation = v->str; break;
			case 't': ev.trace_id = v->str; break;
			case 'r': ev.received_ms = strtoll(v->str, NULL, 10); break;
			case 'p':
				ev.payload = v->str;
				ev.payload_len = v->len;
				break;
			case 'k':
				if (v->len == GW_STORE_KEY_LEN * 2) {
					int ok = 1;
					for (size_t j = 0; j < GW_STORE_KEY_LEN && ok; j++) {
						int h = hexval(v->str[2 * j]), l = hexval(v->str[2 * j + 1]);
						ok = h >= 0 && l >= 0;
						key[j] = (unsigned char)(h * 16 + l);
					}
					ev.key = ok ? key : NULL;
				}
				break;
			}
		}
		if (!ev.installation || !id)
			continue;
		if (cb(ud, id, &ev))
			return 1;
	}
	return 0;
}

static int r_pending(struct gw_store *s, int (*cb)(void *ud, uint64_t id, const struct gw_store_event *ev),
		     void *ud)
{
	struct rstore *r = R(s);
	/* Pages of 512 so that a long backlog is not one huge reply. */
	char start[32] = "-";
	for (;;) {
		const char *argv[] = {"XRANGE", "gw:journal", start, "+", "COUNT", "512"};
		redisReply *rep;
		int rc = rs_command(r, &r->sh[0], 6, argv, &rep);
		if (rc)
			return rc;
		size_t got = rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0;
		int stop = got ? deliver_entries(rep, cb, ud) : 0;
		if (got)
			snprintf(start, sizeof(start), "(%s", rep->element[got - 1]->element[0]->str);
		freeReplyObject(rep);
		if (stop || got < 512)
			return GW_STORE_OK;
	}
}

static int r_claim(struct gw_store *s, size_t max,
		   int (*cb)(void *ud, uint64_t id, const struct gw_store_event *ev), void *ud)
{
	struct rstore *r = R(s);
	char count[24], idle[24];
	snprintf(count, sizeof(count), "%zu", max ? max : 1);
	snprintf(idle, sizeof(idle), "%" PRId64, r->claim_after_ms);
	/* A dead node's entries first: they are the oldest. XAUTOCLAIM scans up
	 * to 10 x COUNT entries of the group's PEL (every node's unfinished
	 * events) from 0-0 whatever it finds: under load at 3 nodes that was
	 * ~40 % of Redis' CPU (bench/run.sh --cluster, docs/cluster.md "Round
	 * trips and CPU"). An entry must idle claim_after before it may be taken,
	 * so looking every claim_after / 4 takes a dead node's events over at
	 * most a quarter later; again at once while a look fills the batch. */
	redisReply *rep;
	int rc;
	size_t taken = 0;
	int stop = 0;
	int64_t now = gw_redis_now_ms();
	if (now >= atomic_load(&r->autoclaim_due_ms)) {
		const char *ac[] = {"XAUTOCLAIM", "gw:journal", "gw", r->node_id, idle, "0-0", "COUNT", count};
		if ((rc = rs_command(r, &r->sh[0], 8, ac, &rep)))
			return rc;
		if (rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2 &&
		    rep->element[1]->type == REDIS_REPLY_ARRAY) {
			taken = rep->element[1]->elements;
			if (taken)
				gw_stat_add(GW_STAT_redis_claimed, taken);
			stop = deliver_entries(rep->element[1], cb, ud);
		}
		freeReplyObject(rep);
		atomic_store(&r->autoclaim_due_ms, taken >= max ? now : now + r->claim_after_ms / 4);
	}
	if (stop || taken >= max)
		return GW_STORE_OK;
	snprintf(count, sizeof(count), "%zu", max - taken);
	const char *rg[] = {"XREADGROUP", "GROUP",   "gw",	   r->node_id, "COUNT",
			    count,	  "STREAMS", "gw:journal", ">"};
	if ((rc = rs_command(r, &r->sh[0], 9, rg, &rep)))
		return rc;
	/* [[stream, [entries]]] or nil when nothing is new */
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
	    rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2)
		deliver_entries(rep->element[0]->element[1], cb, ud);
	freeReplyObject(rep);
	return GW_STORE_OK;
}

static void add_notes(struct args *a, const struct gw_store_done *d, size_t shard, struct rstore *r)
{
	size_t nn = 0;
	for (size_t k = 0; k < d->count; k++)
		nn += gw_redis_shard_of(d->installation, d->notes[k].user, r->nshards) == shard;
	rs_arg_fmt(a, "%" PRIu64, d->journal_id);
	rs_arg_fmt(a, "%zu", nn);
	for (size_t k = 0; k < d->count; k++) {
		const struct gw_store_note *n = &d->notes[k];
		if (gw_redis_shard_of(d->installation, n->user, r->nshards) != shard)
			continue;
		char base[38];
		rs_user_base(d->installation, n->user, base);
		rs_arg_fmt(a, "%s", base);
		rs_arg_fmt(a, "%" PRIu64, n->seq);
		rs_arg_str(a, n->ctx);
		rs_arg_str(a, n->id);
		rs_arg_fmt(a, "%" PRId64, n->created);
		rs_arg_fmt(a, "%" PRId64, n->exp);
		rs_arg_bin(a, n->claims, n->claims_len);
		rs_arg_bin(a, n->proof, n->proof_len);
		if (r->publish) {
			char chan[64], *hdr = NULL;
			size_t hl = strlen(d->installation) + strlen(n->user) + strlen(n->ctx) + 96;
			gw_redis_user_channel(d->installation, n->user, r->sh[shard].conn.url.db, chan);
			if (!(hdr = malloc(hl)) || gw_redis_note_header(n->seq, d->installation, n->user,
									n->ctx, n->claims_len, hdr, hl) < 0) {
				free(hdr);
				a->oom = 1;
				return;
			}
			rs_arg_fmt(a, "%s", chan);
			rs_arg_own(a, hdr);
		} else {
			rs_arg_str(a, "");
			rs_arg_str(a, "");
		}
	}
}

/* One record script on one shard for the events in `which` (NULL: all). */
static int record_on(struct rstore *r, size_t shard, const struct gw_store_done *d, size_t n,
		     const int *which, int chk, int done, int *results)
{
	struct args a = {0};
	rs_arg_fmt(&a, "%" PRId64, r->opt.retention);
	rs_arg_fmt(&a, "%" PRId64, r->opt.per_user);
	rs_arg_str(&a, chk ? "1" : "0");
	rs_arg_str(&a, done ? "1" : "0");
	rs_arg_str(&a, r->nshards > 1 ? MARKER_TTL : "0");
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		m += !which || which[i];
	rs_arg_fmt(&a, "%zu", m);
	rs_arg_str(&a, r->contiguous ? "1" : "0");
	for (size_t i = 0; i < n; i++)
		if (!which || which[i])
			add_notes(&a, &d[i], shard, r);
	redisReply *rep;
	int rc = rs_run(r, &r->sh[shard], S_RECORD, &a, &rep);
	if (rc == GW_STORE_ERR_SEQ && rep) {
		/* "SEQ" then each note's user's stored seq, in argument order */
		const char *p = rep->str + 3;
		if (!strncmp(rep->str, "ERR ", 4))
			p += 4;
		for (size_t i = 0; i < n; i++)
			for (size_t k = 0; (!which || which[i]) && k < d[i].count; k++) {
				if (gw_redis_shard_of(d[i].installation, d[i].notes[k].user, r->nshards) !=
				    shard)
					continue;
				char *end;
				unsigned long long v = strtoull(p, &end, 10);
				if (d[i].stored)
					d[i].stored[k] = end != p ? (uint64_t)v : GW_STORE_SEQ_UNKNOWN;
				p = end;
			}
		freeReplyObject(rep);
	}
	if (rc)
		return rc;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != m) {
		freeReplyObject(rep);
		return GW_STORE_ERR_IO;
	}
	for (size_t i = 0, j = 0; results && i < n; i++)
		if (!which || which[i])
			results[i] = rs_int_of(rep->element[j++]) == 2 ? GW_STORE_NOT_PENDING : GW_STORE_OK;
	freeReplyObject(rep);
	return GW_STORE_OK;
}

static int record_sharded(struct rstore *r, const struct gw_store_done *d, size_t n, int *results)
{
	/* Which events are still pending (shard 0 holds the journal)? */
	struct args a = {0};
	rs_arg_fmt(&a, "%zu", n);
	for (size_t i = 0; i < n; i++)
		rs_arg_fmt(&a, "%" PRIu64, d[i].journal_id);
	redisReply *rep;
	int rc = rs_run(r, &r->sh[0], S_IS_PENDING, &a, &rep);
	if (rc)
		return rc;
	int *pend = calloc(n ? n : 1, sizeof(int));
	if (!pend || rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
		freeReplyObject(rep);
		free(pend);
		return pend ? GW_STORE_ERR_IO : GW_STORE_ERR_NOMEM;
	}
	for (size_t i = 0; i < n; i++)
		pend[i] = rs_int_of(rep->element[i]) == 1;
	freeReplyObject(rep);
	/* Notes on the other shards first; the markers make a retry skip
	 * what already landed. Shard 0 last: its notes and the done marks. */
	for (size_t sh = 1; sh < r->nshards && !rc; sh++) {
		int any = 0;
		for (size_t i = 0; i < n && !any; i++)
			for (size_t k = 0; pend[i] && k < d[i].count && !any; k++)
				any = gw_redis_shard_of(d[i].installation, d[i].notes[k].user, r->nshards) ==
				      sh;
		if (any)
			rc = record_on(r, sh, d, n, pend, 0, 0, NULL);
	}
	if (!rc)
		rc = record_on(r, 0, d, n, NULL, 1, 1, results);
	free(pend);
	return rc;
}

static int r_record(struct gw_store *s, const struct gw_store_done *d, size_t n, int *results)
{
	struct rstore *r = R(s);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < d[i].count; k++)
			if (!d[i].installation || !d[i].notes[k].user || !d[i].notes[k].ctx ||
			    !d[i].notes[k].id || !d[i].notes[k].seq)
				return GW_STORE_ERR_INVAL;
	gw_stat_inc(GW_STAT_store_commit_requests);
	int64_t began_ns = gw_monotonic_ns();
	int rc = r->nshards == 1 ? record_on(r, 0, d, n, NULL, 1, 1, results)
				 : record_sharded(r, d, n, results);
	if (rc == GW_STORE_ERR_SEQ)
		gw_stat_inc(GW_STAT_redis_seq_conflicts);
	if (rc) {
		gw_stat_inc(GW_STAT_store_write_errors);
	} else {
		gw_stat_inc(GW_STAT_store_commits);
		gw_hist_observe_ns(GW_HIST_store_commit, gw_monotonic_ns() - began_ns);
	}
	return rc;
}

static int r_max_seq(struct gw_store *s, const char *inst, const char *user, uint64_t *seq)
{
	struct rstore *r = R(s);
	char base[38], field[48];
	rs_user_base(inst, user, base);
	snprintf(field, sizeof(field), "%s:m", base);
	const char *argv[] = {"HGET", field, "max"};
	redisReply *rep;
	int rc = rs_command(r, rs_user_shard(r, inst, user), 3, argv, &rep);
	if (rc)
		return rc;
	*seq = rep->type == REDIS_REPLY_STRING ? strtoull(rep->str, NULL, 10) : 0;
	freeReplyObject(rep);
	return GW_STORE_OK;
}

/* One script per shard holding any of the users. */
static int r_max_seqs(struct gw_store *s, const char *const *insts, const char *const *users, size_t n,
		      uint64_t *seqs)
{
	struct rstore *r = R(s);
	size_t *shard = calloc(n ? n : 1, sizeof(*shard));
	if (!shard)
		return GW_STORE_ERR_NOMEM;
	for (size_t i = 0; i < n; i++)
		shard[i] = gw_redis_shard_of(insts[i], users[i], r->nshards);
	int rc = GW_STORE_OK;
	for (size_t sh = 0; sh < r->nshards && !rc; sh++) {
		struct args a = {0};
		size_t m = 0;
		for (size_t i = 0; i < n; i++)
			m += shard[i] == sh;
		if (!m)
			continue;
		rs_arg_fmt(&a, "%zu", m);
		for (size_t i = 0; i < n; i++)
			if (shard[i] == sh) {
				char base[38];
				rs_user_base(insts[i], users[i], base);
				rs_arg_fmt(&a, "%s", base);
			}
		redisReply *rep;
		if ((rc = rs_run(r, &r->sh[sh], S_MAX_SEQS, &a, &rep)))
			break;
		if (rep->type != REDIS_REPLY_ARRAY || rep->elements != m) {
			rc = GW_STORE_ERR_IO;
		} else {
			for (size_t i = 0, j = 0; i < n; i++)
				if (shard[i] == sh)
					seqs[i] = rs_int_of(rep->element[j++]);
		}
		freeReplyObject(rep);
	}
	free(shard);
	return rc;
}

static char *dupn(const char *p, size_t n)
{
	char *c = malloc(n + 1);
	if (c) {
		memcpy(c, p, n);
		c[n] = '\0';
	}
	return c;
}

/* {seq, ctx, id, body, read} into it; body is "created exp claims_len\n"
 * then claims then proof. */
static int parse_item(const redisReply *e, struct gw_store_item *it)
{
	memset(it, 0, sizeof(*it));
	if (e->type != REDIS_REPLY_ARRAY || e->elements != 5 || e->element[1]->type != REDIS_REPLY_STRING ||
	    e->element[2]->type != REDIS_REPLY_STRING || e->element[3]->type != REDIS_REPLY_STRING)
		return GW_STORE_ERR_CORRUPT;
	const redisReply *b = e->element[3];
	long long created, exp;
	size_t clen;
	int used = 0;
	if (sscanf(b->str, "%lld %lld %zu\n%n", &created, &exp, &clen, &used) != 3 || !used ||
	    (size_t)used + clen > b->len)
		return GW_STORE_ERR_CORRUPT;
	it->seq = rs_int_of(e->element[0]);
	it->created = created;
	it->exp = exp;
	it->read = rs_int_of(e->element[4]) == 1;
	it->ctx = strdup(e->element[1]->str);
	it->id = strdup(e->element[2]->str);
	it->claims = dupn(b->str + used, clen);
	it->claims_len = clen;
	it->proof_len = b->len - (size_t)used - clen;
	it->proof = dupn(b->str + used + clen, it->proof_len);
	if (!it->ctx || !it->id || !it->claims || !it->proof)
		return GW_STORE_ERR_NOMEM;
	return GW_STORE_OK;
}

static int parse_items(const redisReply *rep, size_t from, struct gw_store_page *page)
{
	size_t n = rep->elements > from ? rep->elements - from : 0;
	if (!n)
		return GW_STORE_OK;
	page->items = calloc(n, sizeof(*page->items));
	if (!page->items)
		return GW_STORE_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		page->count = i + 1; /* so that page_free frees a half-filled item */
		int rc = parse_item(rep->element[from + i], &page->items[i]);
		if (rc)
			return rc;
	}
	return GW_STORE_OK;
}

static int r_since(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		   size_t npats, uint64_t after, size_t limit, struct gw_store_page *page)
{
	struct rstore *r = R(s);
	memset(page, 0, sizeof(*page));
	char base[38];
	rs_user_base(inst, user, base);
	struct args a = {0};
	rs_arg_str(&a, base);
	rs_arg_fmt(&a, "%" PRIu64, after);
	rs_arg_fmt(&a, "%zu", limit);
	rs_arg_pats(&a, pats, npats);
	redisReply *rep;
	int rc = rs_run(r, rs_user_shard(r, inst, user), S_SINCE, &a, &rep);
	if (rc)
		return rc;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 4) {
		freeReplyObject(rep);
		return GW_STORE_ERR_IO;
	}
	page->max_seq = rs_int_of(rep->element[0]);
	page->oldest = rs_int_of(rep->element[1]);
	page->recovered = rs_int_of(rep->element[2]) == 1;
	page->more = rs_int_of(rep->element[3]) == 1;
	rc = parse_items(rep, 4, page);
	freeReplyObject(rep);
	if (rc)
		gw_store_page_free(page);
	return rc;
}

static void arg_filter(struct args *a, const char *filter)
{
	rs_arg_str(a, filter ? filter : "");
	rs_arg_str(a, filter ? "1" : "0");
}

static int r_inbox(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		   size_t npats, const char *filter, uint64_t before, size_t limit,
		   struct gw_store_page *page)
{
	struct rstore *r = R(s);
	memset(page, 0, sizeof(*page));
	char base[38];
	rs_user_base(inst, user, base);
	struct args a = {0};
	rs_arg_str(&a, base);
	rs_arg_fmt(&a, "%" PRIu64, before);
	rs_arg_fmt(&a, "%zu", gw_store_clamp_limit(limit));
	arg_filter(&a, filter);
	rs_arg_pats(&a, pats, npats);
	redisReply *rep;
	int rc = rs_run(r, rs_user_shard(r, inst, user), S_INBOX, &a, &rep);
	if (rc)
		return rc;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3) {
		freeReplyObject(rep);
		return GW_STORE_ERR_IO;
	}
	page->max_seq = rs_int_of(rep->element[0]);
	page->unread = rs_int_of(rep->element[1]);
	page->more = rs_int_of(rep->element[2]) == 1;
	rc = parse_items(rep, 3, page);
	freeReplyObject(rep);
	if (rc)
		gw_store_page_free(page);
	return rc;
}

static int r_unread(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		    size_t npats, const char *filter, uint64_t *count)
{
	struct rstore *r = R(s);
	char base[38];
	rs_user_base(inst, user, base);
	struct args a = {0};
	rs_arg_str(&a, base);
	arg_filter(&a, filter);
	rs_arg_pats(&a, pats, npats);
	redisReply *rep;
	int rc = rs_run(r, rs_user_shard(r, inst, user), S_UNREAD, &a, &rep);
	if (rc)
		return rc;
	*count = rs_int_of(rep);
	freeReplyObject(rep);
	return GW_STORE_OK;
}

static int mark_common(struct rstore *r, const char *inst, const char *user, const char *const *pats,
		       size_t npats, const char *filter, const char *const *ids, size_t nids, int read,
		       struct gw_store_marked *out)
{
	char base[38];
	rs_user_base(inst, user, base);
	struct args a = {0};
	rs_arg_str(&a, base);
	rs_arg_str(&a, read ? "1" : "0");
	rs_arg_str(&a, ids ? "0" : "1");
	arg_filter(&a, filter);
	rs_arg_pats(&a, pats, npats);
	rs_arg_fmt(&a, "%zu", ids ? nids : 0);
	for (size_t i = 0; ids && i < nids; i++)
		rs_arg_str(&a, ids[i]);
	redisReply *rep;
	gw_stat_inc(GW_STAT_store_commit_requests);
	int64_t began_ns = gw_monotonic_ns();
	int rc = rs_run(r, rs_user_shard(r, inst, user), S_MARK, &a, &rep);
	if (rc) {
		gw_stat_inc(GW_STAT_store_write_errors);
		return rc;
	}
	gw_stat_inc(GW_STAT_store_commits);
	gw_hist_observe_ns(GW_HIST_store_commit, gw_monotonic_ns() - began_ns);
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1) {
		freeReplyObject(rep);
		return GW_STORE_ERR_IO;
	}
	out->unread = rs_int_of(rep->element[0]);
	size_t n = (rep->elements - 1) / 2; /* id, ctx pairs */
	if (n && (!(out->ids = calloc(n, sizeof(char *))) || !(out->ctxs = calloc(n, sizeof(char *)))))
		rc = GW_STORE_ERR_NOMEM;
	for (size_t i = 0; !rc && i < n; i++) {
		const redisReply *e = rep->element[1 + 2 * i], *c = rep->element[2 + 2 * i];
		out->ids[i] = e->type == REDIS_REPLY_STRING ? strdup(e->str) : strdup("");
		out->ctxs[i] = c->type == REDIS_REPLY_STRING ? strdup(c->str) : strdup("");
		if (!out->ids[i] || !out->ctxs[i])
			rc = GW_STORE_ERR_NOMEM;
		out->count = i + 1; /* freed with the rest on failure */
	}
	freeReplyObject(rep);
	if (rc)
		gw_store_marked_free(out);
	return rc;
}

static int r_mark(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		  size_t npats, const char *const *ids, size_t nids, int read, struct gw_store_marked *out)
{
	memset(out, 0, sizeof(*out));
	if (nids > GW_STORE_MARK_MAX_IDS)
		return GW_STORE_ERR_INVAL;
	return mark_common(R(s), inst, user, pats, npats, NULL, ids, nids, read, out);
}

static int r_mark_all(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		      size_t npats, const char *filter, struct gw_store_marked *out)
{
	memset(out, 0, sizeof(*out));
	return mark_common(R(s), inst, user, pats, npats, filter, NULL, 0, 1, out);
}

static int r_purge(struct gw_store *s, int64_t now, size_t max_rows, struct gw_store_purged *out)
{
	struct rstore *r = R(s);
	memset(out, 0, sizeof(*out));
	/* Each shard gets the whole bound: the bound is about the length of
	 * one script (Redis runs nothing else meanwhile), per server. */
	for (size_t i = 0; i < r->nshards; i++) {
		struct args a = {0};
		rs_arg_fmt(&a, "%" PRId64, now);
		rs_arg_fmt(&a, "%zu", max_rows);
		rs_arg_fmt(&a, "%" PRId64, r->opt.per_user);
		redisReply *rep;
		int rc = rs_run(r, &r->sh[i], S_PURGE, &a, &rep);
		if (rc)
			return rc;
		if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 4) {
			out->expired += rs_int_of(rep->element[0]);
			out->over_cap += rs_int_of(rep->element[1]);
			out->keys += rs_int_of(rep->element[2]);
			out->more |= rs_int_of(rep->element[3]) == 1;
		}
		freeReplyObject(rep);
	}
	gw_stat_add(GW_STAT_store_purged_expired, out->expired);
	gw_stat_add(GW_STAT_store_purged_over_cap, out->over_cap);
	gw_stat_add(GW_STAT_store_keys_expired, out->keys);
	return GW_STORE_OK;
}

static void r_close(struct gw_store *s)
{
	struct rstore *r = R(s);
	for (size_t i = 0; i < r->nshards; i++) {
		gw_redis_conn_close(&r->sh[i].conn);
		pthread_mutex_destroy(&r->sh[i].lock);
	}
	pthread_mutex_destroy(&r->epoch_lock);
	free(r->sh);
	free(r);
}

/* PING on every shard (connecting one that is down, within cluster.timeout). */
static int r_ping(struct gw_store *s)
{
	struct rstore *r = R(s);
	for (size_t i = 0; i < r->nshards; i++) {
		int rc = rs_ping(r, &r->sh[i]);
		if (rc)
			return rc;
	}
	return GW_STORE_OK;
}

static const struct gw_store_ops redis_ops = {
	.name = "redis",
	.epoch = r_epoch,
	.journal = r_journal,
	.key_seen = r_key_seen,
	.pending = r_pending,
	.record = r_record,
	.max_seq = r_max_seq,
	.since = r_since,
	.inbox = r_inbox,
	.unread = r_unread,
	.mark = r_mark,
	.mark_all = r_mark_all,
	.purge = r_purge,
	.close = r_close,
	.claim = r_claim,
	.ping = r_ping,
	.max_seqs = r_max_seqs,
};

int gw_store_redis_open(const struct gw_store_options *opt, const struct gw_store_cluster *cl,
			struct gw_store **out, char *msg, size_t msglen)
{
	*out = NULL;
	if (!cl || !cl->nredis) {
		snprintf(msg, msglen, "the redis store needs at least one redis:// URL (cluster.redis)");
		return GW_STORE_ERR_INVAL;
	}
	struct rstore *r = calloc(1, sizeof(*r));
	if (!r || !(r->sh = calloc(cl->nredis, sizeof(*r->sh)))) {
		free(r);
		snprintf(msg, msglen, "out of memory");
		return GW_STORE_ERR_NOMEM;
	}
	r->base.ops = &redis_ops;
	r->opt = *opt;
	r->timeout_ms = cl->timeout_ms > 0 ? cl->timeout_ms : 2000;
	r->claim_after_ms = cl->claim_after_ms > 0 ? cl->claim_after_ms : 10000;
	r->publish = cl->publish;
	r->contiguous = cl->contiguous;
	r->take_own = cl->take_own;
	snprintf(r->node_id, sizeof(r->node_id), "%s", cl->node_id && cl->node_id[0] ? cl->node_id : "node");
	pthread_mutex_init(&r->epoch_lock, NULL);
	int rc = GW_STORE_OK;
	for (size_t i = 0; i < cl->nredis; i++) {
		struct gw_redis_url u;
		char why[300];
		pthread_mutex_init(&r->sh[i].lock, NULL);
		r->nshards = i + 1;
		if (gw_redis_url_parse(cl->redis[i], &u, why, sizeof(why))) {
			snprintf(msg, msglen, "cluster.redis #%zu: %s", i + 1, why);
			rc = GW_STORE_ERR_INVAL;
			break;
		}
		gw_redis_conn_init(&r->sh[i].conn, &u, r->timeout_ms);
	}
	/* Connect every shard now: a wrong password or a server that is not
	 * Redis is a start-up error, not a runtime surprise. */
	for (size_t i = 0; !rc && i < r->nshards; i++) {
		if ((rc = rs_shard_take(r, &r->sh[i], msg, msglen)) == GW_STORE_OK)
			pthread_mutex_unlock(&r->sh[i].lock);
	}
	if (rc) {
		r_close(&r->base);
		return rc;
	}
	*out = &r->base;
	return GW_STORE_OK;
}
