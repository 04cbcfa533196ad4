/* store_memory.c - the store contract (store.h) in process memory.
 *
 * For tests and benchmarks (`store: memory`): resume, inbox and read state
 * work within one process; a restart starts empty with a new epoch, so every
 * client's resume then answers recovered:false. Memory is bounded by purge
 * (history.per_user per user, retention), like the durable engines.
 *
 * Ownership: the store owns copies of everything recorded.
 * Threads: any; one mutex around everything (operations are short and
 * never block on I/O).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "store.h"
#include "strmap.h"

struct mjob {
	struct mjob *prev, *next;
	uint64_t id;
	char *installation, *trace_id;
	int64_t received_ms;
	unsigned char key[GW_STORE_KEY_LEN];
	int keyed;
	void *payload;
	size_t payload_len;
};

struct mnote {
	uint64_t seq;
	char *ctx, *id, *claims, *proof;
	size_t claims_len, proof_len;
	int64_t created, exp;
	int read;
};

struct muser {
	uint64_t max_seq;
	struct mnote *notes; /* ascending seq */
	size_t count, cap;
};

struct mstore {
	struct gw_store base;
	pthread_mutex_t lock;
	struct gw_store_options opt;
	char epoch[33];
	uint64_t next_id;
	struct mjob *head, *tail; /* pending, journal order */
	struct gw_strmap jobs; /* id (8 bytes) -> struct mjob */
	struct gw_strmap keys; /* key -> expiry (int64 in the pointer) */
	struct gw_strmap users; /* user key -> struct muser */
	struct muser **user_list; /* for purge, in creation order */
	size_t nusers, users_cap, purge_cursor;
};

#define M(s) ((struct mstore *)(s))

static size_t user_key(char *out, size_t cap, const char *inst, const char *user)
{
	int n = snprintf(out, cap, "%zu:%s%s", strlen(inst), inst, user);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static struct muser *find_user(struct mstore *m, const char *inst, const char *user)
{
	char k[1024];
	size_t n = user_key(k, sizeof(k), inst, user);
	return n ? gw_strmap_get(&m->users, k, n) : NULL;
}

static struct muser *get_user(struct mstore *m, const char *inst, const char *user)
{
	char k[1024];
	size_t n = user_key(k, sizeof(k), inst, user);
	if (!n)
		return NULL;
	int created = 0;
	struct gw_strmap_entry *e = gw_strmap_upsert(&m->users, k, n, &created);
	if (!e)
		return NULL;
	if (created) {
		struct muser *u = calloc(1, sizeof(*u));
		if (u && m->nusers == m->users_cap) {
			size_t cap = m->users_cap ? 2 * m->users_cap : 64;
			struct muser **l = realloc(m->user_list, cap * sizeof(*l));
			if (l) {
				m->user_list = l;
				m->users_cap = cap;
			}
		}
		if (!u || m->nusers == m->users_cap) {
			free(u);
			gw_strmap_remove(&m->users, k, n);
			return NULL;
		}
		m->user_list[m->nusers++] = u;
		e->value = u;
	}
	return e->value;
}

static void free_note(struct mnote *n)
{
	free(n->ctx);
	free(n->id);
	free(n->claims);
	free(n->proof);
}

static void free_job(struct mjob *j)
{
	if (!j)
		return;
	free(j->installation);
	free(j->trace_id);
	free(j->payload);
	free(j);
}

static const char *m_epoch(struct gw_store *s)
{
	return M(s)->epoch;
}

static int key_known(struct mstore *m, const unsigned char *key, int64_t now)
{
	void *v = gw_strmap_get(&m->keys, (const char *)key, GW_STORE_KEY_LEN);
	return v && (int64_t)(intptr_t)v > now;
}

static int m_journal(struct gw_store *s, const struct gw_store_event *ev, size_t n, int64_t now,
		     int64_t key_ttl, struct gw_store_journaled *out)
{
	struct mstore *m = M(s);
	for (size_t i = 0; i < n; i++)
		if (!ev[i].installation)
			return GW_STORE_ERR_INVAL;
	/* Allocate everything first: on failure nothing is journaled. */
	struct mjob **jobs = calloc(n ? n : 1, sizeof(*jobs));
	if (!jobs)
		return GW_STORE_ERR_NOMEM;
	for (size_t i = 0; i < n; i++) {
		struct mjob *j = calloc(1, sizeof(*j));
		jobs[i] = j;
		if (!j || !(j->installation = strdup(ev[i].installation)) ||
		    !(j->trace_id = strdup(ev[i].trace_id ? ev[i].trace_id : "")) ||
		    !(j->payload = malloc(ev[i].payload_len ? ev[i].payload_len : 1)))
			goto nomem;
		memcpy(j->payload, ev[i].payload, ev[i].payload_len);
		j->payload_len = ev[i].payload_len;
		j->received_ms = ev[i].received_ms;
		if (ev[i].key) {
			memcpy(j->key, ev[i].key, GW_STORE_KEY_LEN);
			j->keyed = 1;
		}
	}
	pthread_mutex_lock(&m->lock);
	/* Reserve map entries before changing anything visible. */
	for (size_t i = 0; i < n; i++) {
		out[i].id = 0;
		out[i].rc = GW_STORE_OK;
		if (jobs[i]->keyed && key_known(m, jobs[i]->key, now)) {
			out[i].rc = GW_STORE_DUPLICATE;
			continue;
		}
		struct gw_strmap_entry *e = jobs[i]->keyed
						    ? gw_strmap_upsert(&m->keys, (const char *)jobs[i]->key,
								       GW_STORE_KEY_LEN, NULL)
						    : NULL;
		uint64_t id = m->next_id + 1;
		struct gw_strmap_entry *je = gw_strmap_upsert(&m->jobs, (const char *)&id, sizeof(id), NULL);
		if ((jobs[i]->keyed && !e) || !je) {
			/* Undo this call's entries: the call fails as a whole. */
			for (size_t k = 0; k < i; k++)
				if (out[k].rc == GW_STORE_OK) {
					gw_strmap_remove(&m->jobs, (const char *)&out[k].id,
							 sizeof(out[k].id));
					if (jobs[k]->keyed)
						gw_strmap_remove(&m->keys, (const char *)jobs[k]->key,
								 GW_STORE_KEY_LEN);
				}
			if (e && !e->value)
				gw_strmap_remove(&m->keys, (const char *)jobs[i]->key, GW_STORE_KEY_LEN);
			if (je && !je->value)
				gw_strmap_remove(&m->jobs, (const char *)&id, sizeof(id));
			pthread_mutex_unlock(&m->lock);
			goto nomem;
		}
		if (e)
			e->value = (void *)(intptr_t)(now + key_ttl);
		m->next_id = id;
		jobs[i]->id = id;
		je->value = jobs[i];
		out[i].id = id;
	}
	for (size_t i = 0; i < n; i++) {
		if (out[i].rc != GW_STORE_OK) {
			free_job(jobs[i]);
			continue;
		}
		struct mjob *j = jobs[i];
		j->prev = m->tail;
		if (m->tail)
			m->tail->next = j;
		else
			m->head = j;
		m->tail = j;
	}
	pthread_mutex_unlock(&m->lock);
	free(jobs);
	return GW_STORE_OK;
nomem:
	for (size_t i = 0; i < n; i++)
		free_job(jobs[i]);
	free(jobs);
	return GW_STORE_ERR_NOMEM;
}

static int m_key_seen(struct gw_store *s, const unsigned char key[GW_STORE_KEY_LEN], int64_t now)
{
	struct mstore *m = M(s);
	pthread_mutex_lock(&m->lock);
	int r = key_known(m, key, now);
	pthread_mutex_unlock(&m->lock);
	return r;
}

static int m_pending(struct gw_store *s, int (*cb)(void *ud, uint64_t id, const struct gw_store_event *ev),
		     void *ud)
{
	struct mstore *m = M(s);
	pthread_mutex_lock(&m->lock);
	for (struct mjob *j = m->head; j; j = j->next) {
		struct gw_store_event ev = {j->installation,	      j->trace_id, j->received_ms,
					    j->keyed ? j->key : NULL, j->payload,  j->payload_len};
		if (cb(ud, j->id, &ev))
			break;
	}
	pthread_mutex_unlock(&m->lock);
	return GW_STORE_OK;
}

static int note_copy(struct mnote *d, const struct gw_store_note *n)
{
	memset(d, 0, sizeof(*d));
	d->seq = n->seq;
	d->created = n->created;
	d->exp = n->exp;
	d->ctx = strdup(n->ctx);
	d->id = strdup(n->id);
	d->claims = malloc(n->claims_len + 1);
	d->proof = malloc(n->proof_len + 1);
	if (!d->ctx || !d->id || !d->claims || !d->proof) {
		free_note(d);
		return -1;
	}
	memcpy(d->claims, n->claims, n->claims_len);
	d->claims[n->claims_len] = '\0';
	d->claims_len = n->claims_len;
	memcpy(d->proof, n->proof, n->proof_len);
	d->proof[n->proof_len] = '\0';
	d->proof_len = n->proof_len;
	return 0;
}

static struct mnote *find_seq(struct muser *u, uint64_t seq, size_t *pos)
{
	size_t lo = 0, hi = u->count;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (u->notes[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return lo < u->count && u->notes[lo].seq == seq ? &u->notes[lo] : NULL;
}

static int m_record(struct gw_store *s, const struct gw_store_done *d, size_t n, int *results)
{
	struct mstore *m = M(s);
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += d[i].count;
	struct mnote *copies = calloc(total ? total : 1, sizeof(*copies));
	if (!copies)
		return GW_STORE_ERR_NOMEM;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < d[i].count; j++, k++)
			if (d[i].notes[j].seq == 0 || note_copy(&copies[k], &d[i].notes[j])) {
				int rc = d[i].notes[j].seq == 0 ? GW_STORE_ERR_INVAL : GW_STORE_ERR_NOMEM;
				while (k--)
					free_note(&copies[k]);
				free(copies);
				return rc;
			}
	int rc = GW_STORE_OK;
	struct applied {
		struct muser *u;
		uint64_t seq, old_max;
	} *done = calloc(total ? total : 1, sizeof(*done));
	size_t ndone = 0;
	if (!done) {
		for (k = 0; k < total; k++)
			free_note(&copies[k]);
		free(copies);
		return GW_STORE_ERR_NOMEM;
	}
	pthread_mutex_lock(&m->lock);
	/* Insert one by one; on a conflict or no memory, take this call's
	 * inserts out again: the call is all-or-nothing. */
	k = 0;
	for (size_t i = 0; i < n; i++) {
		results[i] = gw_strmap_get(&m->jobs, (const char *)&d[i].journal_id, sizeof(uint64_t))
				     ? GW_STORE_OK
				     : GW_STORE_NOT_PENDING;
		for (size_t j = 0; j < d[i].count; j++, k++) {
			if (rc != GW_STORE_OK || results[i] != GW_STORE_OK)
				continue;
			struct muser *u = get_user(m, d[i].installation, d[i].notes[j].user);
			size_t pos;
			if (!u) {
				rc = GW_STORE_ERR_NOMEM;
				continue;
			}
			if (find_seq(u, copies[k].seq, &pos)) {
				rc = GW_STORE_ERR_INVAL;
				continue;
			}
			if (u->count == u->cap) {
				size_t cap = u->cap ? 2 * u->cap : 16;
				struct mnote *nn = realloc(u->notes, cap * sizeof(*nn));
				if (!nn) {
					rc = GW_STORE_ERR_NOMEM;
					continue;
				}
				u->notes = nn;
				u->cap = cap;
			}
			memmove(&u->notes[pos + 1], &u->notes[pos], (u->count - pos) * sizeof(*u->notes));
			u->notes[pos] = copies[k];
			u->count++;
			copies[k].ctx = NULL; /* owned by the user now */
			done[ndone++] = (struct applied){u, copies[k].seq, u->max_seq};
			if (copies[k].seq > u->max_seq)
				u->max_seq = copies[k].seq;
		}
	}
	if (rc != GW_STORE_OK) {
		while (ndone--) {
			struct applied *a = &done[ndone];
			size_t pos;
			struct mnote *nt = find_seq(a->u, a->seq, &pos);
			free_note(nt);
			memmove(&a->u->notes[pos], &a->u->notes[pos + 1],
				(a->u->count - pos - 1) * sizeof(*nt));
			a->u->count--;
			a->u->max_seq = a->old_max;
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			if (results[i] != GW_STORE_OK)
				continue;
			struct mjob *jb =
				gw_strmap_remove(&m->jobs, (const char *)&d[i].journal_id, sizeof(uint64_t));
			if (jb->prev)
				jb->prev->next = jb->next;
			else
				m->head = jb->next;
			if (jb->next)
				jb->next->prev = jb->prev;
			else
				m->tail = jb->prev;
			free_job(jb);
		}
	}
	pthread_mutex_unlock(&m->lock);
	for (k = 0; k < total; k++)
		if (copies[k].ctx)
			free_note(&copies[k]);
	free(copies);
	free(done);
	return rc;
}

static int m_max_seq(struct gw_store *s, const char *inst, const char *user, uint64_t *seq)
{
	struct mstore *m = M(s);
	pthread_mutex_lock(&m->lock);
	struct muser *u = find_user(m, inst, user);
	*seq = u ? u->max_seq : 0;
	pthread_mutex_unlock(&m->lock);
	return GW_STORE_OK;
}

static int page_add(struct gw_store_page *p, size_t *cap, const struct mnote *n)
{
	if (p->count == *cap) {
		size_t c = *cap ? 2 * *cap : 16;
		struct gw_store_item *it = realloc(p->items, c * sizeof(*it));
		if (!it)
			return -1;
		p->items = it;
		*cap = c;
	}
	struct gw_store_item *it = &p->items[p->count];
	memset(it, 0, sizeof(*it));
	it->seq = n->seq;
	it->created = n->created;
	it->exp = n->exp;
	it->read = n->read;
	it->claims_len = n->claims_len;
	it->proof_len = n->proof_len;
	if (!(it->ctx = strdup(n->ctx)) || !(it->id = strdup(n->id)) || !(it->claims = strdup(n->claims)) ||
	    !(it->proof = strdup(n->proof))) {
		free(it->ctx);
		free(it->id);
		free(it->claims);
		return -1;
	}
	p->count++;
	return 0;
}

static int m_since(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		   size_t npats, uint64_t after, size_t limit, struct gw_store_page *page)
{
	struct mstore *m = M(s);
	memset(page, 0, sizeof(*page));
	size_t cap = 0;
	int rc = GW_STORE_OK;
	pthread_mutex_lock(&m->lock);
	struct muser *u = find_user(m, inst, user);
	page->max_seq = u ? u->max_seq : 0;
	page->oldest = u && u->count ? u->notes[0].seq : page->max_seq + 1;
	page->recovered = after <= page->max_seq && page->oldest <= after + 1;
	if (page->recovered && u && limit) {
		size_t pos;
		find_seq(u, after + 1, &pos);
		for (; pos < u->count; pos++) {
			if (!gw_store_visible(pats, npats, NULL, u->notes[pos].ctx))
				continue;
			if (page->count == limit) {
				page->more = 1;
				break;
			}
			if (page_add(page, &cap, &u->notes[pos])) {
				rc = GW_STORE_ERR_NOMEM;
				break;
			}
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (rc)
		gw_store_page_free(page);
	return rc;
}

static uint64_t count_unread(struct muser *u, const char *const *pats, size_t npats, const char *filter)
{
	uint64_t c = 0;
	for (size_t i = 0; u && i < u->count; i++)
		if (!u->notes[i].read && gw_store_visible(pats, npats, filter, u->notes[i].ctx))
			c++;
	return c;
}

static int m_inbox(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		   size_t npats, const char *filter, uint64_t before, size_t limit,
		   struct gw_store_page *page)
{
	struct mstore *m = M(s);
	memset(page, 0, sizeof(*page));
	limit = gw_store_clamp_limit(limit);
	size_t cap = 0;
	int rc = GW_STORE_OK;
	pthread_mutex_lock(&m->lock);
	struct muser *u = find_user(m, inst, user);
	if (u) {
		size_t pos = u->count;
		if (before)
			find_seq(u, before, &pos);
		while (pos-- > 0) {
			if (!gw_store_visible(pats, npats, filter, u->notes[pos].ctx))
				continue;
			if (page->count == limit) {
				page->more = 1;
				break;
			}
			if (page_add(page, &cap, &u->notes[pos])) {
				rc = GW_STORE_ERR_NOMEM;
				break;
			}
		}
		page->unread = count_unread(u, pats, npats, filter);
		page->max_seq = u->max_seq;
	}
	pthread_mutex_unlock(&m->lock);
	if (rc)
		gw_store_page_free(page);
	return rc;
}

static int m_unread(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		    size_t npats, const char *filter, uint64_t *count)
{
	struct mstore *m = M(s);
	pthread_mutex_lock(&m->lock);
	*count = count_unread(find_user(m, inst, user), pats, npats, filter);
	pthread_mutex_unlock(&m->lock);
	return GW_STORE_OK;
}

/* Sets read on the user's notes in pats/filter; ids NULL: every note. */
static int mark_common(struct mstore *m, const char *inst, const char *user, const char *const *pats,
		       size_t npats, const char *filter, const char *const *ids, size_t nids, int read,
		       struct gw_store_marked *out)
{
	memset(out, 0, sizeof(*out));
	read = read ? 1 : 0;
	int rc = GW_STORE_OK;
	pthread_mutex_lock(&m->lock);
	struct muser *u = find_user(m, inst, user);
	size_t cap = ids ? nids : (u ? u->count : 0);
	if (cap && (!(out->ids = calloc(cap, sizeof(char *))) || !(out->ctxs = calloc(cap, sizeof(char *)))))
		rc = GW_STORE_ERR_NOMEM;
	for (size_t i = 0; u && rc == GW_STORE_OK && i < u->count; i++) {
		struct mnote *n = &u->notes[i];
		if (n->read == read || !gw_store_visible(pats, npats, filter, n->ctx))
			continue;
		int hit = !ids;
		for (size_t k = 0; ids && k < nids && !hit; k++)
			hit = ids[k] && !strcmp(ids[k], n->id);
		if (!hit)
			continue;
		/* Two notes of one user never share an id, but stay bounded anyway. */
		if (out->count == cap)
			break;
		char *copy = strdup(n->id), *cc = strdup(n->ctx);
		if (!copy || !cc) {
			free(copy);
			free(cc);
			rc = GW_STORE_ERR_NOMEM;
			break;
		}
		n->read = read;
		out->ctxs[out->count] = cc;
		out->ids[out->count++] = copy;
	}
	out->unread = count_unread(u, pats, npats, filter);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int m_mark(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		  size_t npats, const char *const *ids, size_t nids, int read, struct gw_store_marked *out)
{
	if (nids > GW_STORE_MARK_MAX_IDS) {
		memset(out, 0, sizeof(*out));
		return GW_STORE_ERR_INVAL;
	}
	return mark_common(M(s), inst, user, pats, npats, NULL, ids, nids, read, out);
}

static int m_mark_all(struct gw_store *s, const char *inst, const char *user, const char *const *pats,
		      size_t npats, const char *filter, struct gw_store_marked *out)
{
	return mark_common(M(s), inst, user, pats, npats, filter, NULL, 0, 1, out);
}

static int m_purge(struct gw_store *s, int64_t now, size_t max_rows, struct gw_store_purged *out)
{
	struct mstore *m = M(s);
	memset(out, 0, sizeof(*out));
	size_t budget = max_rows;
	pthread_mutex_lock(&m->lock);
	int64_t cutoff = now - m->opt.retention;
	for (size_t ui = 0; ui < m->nusers && budget; ui++) {
		struct muser *u = m->user_list[(m->purge_cursor + ui) % m->nusers];
		size_t w = 0;
		for (size_t i = 0; i < u->count; i++) {
			struct mnote *n = &u->notes[i];
			if (budget && n->exp < now && n->created < cutoff) {
				free_note(n);
				out->expired++;
				budget--;
				continue;
			}
			u->notes[w++] = *n;
		}
		u->count = w;
		size_t cap = (size_t)m->opt.per_user;
		if (u->count > cap) {
			size_t drop = u->count - cap;
			if (drop > budget)
				drop = budget;
			for (size_t i = 0; i < drop; i++)
				free_note(&u->notes[i]);
			memmove(u->notes, u->notes + drop, (u->count - drop) * sizeof(*u->notes));
			u->count -= drop;
			out->over_cap += drop;
			budget -= drop;
		}
		if (!budget)
			m->purge_cursor = (m->purge_cursor + ui) % m->nusers;
	}
	if (!budget)
		out->more = 1;
	/* Redelivery keys: collect, then remove (the map must not change
	 * while it is walked). */
	size_t nkeys = 0;
	unsigned char(*gone)[GW_STORE_KEY_LEN] = max_rows ? malloc(max_rows * GW_STORE_KEY_LEN) : NULL;
	for (size_t b = 0; gone && b < m->keys.nbuckets; b++)
		for (struct gw_strmap_entry *e = m->keys.buckets[b]; e; e = e->next) {
			if ((int64_t)(intptr_t)e->value > now)
				continue;
			if (nkeys == max_rows) {
				out->more = 1;
				break;
			}
			memcpy(gone[nkeys++], e->key, GW_STORE_KEY_LEN);
		}
	for (size_t i = 0; i < nkeys; i++)
		gw_strmap_remove(&m->keys, (const char *)gone[i], GW_STORE_KEY_LEN);
	out->keys = nkeys;
	free(gone);
	pthread_mutex_unlock(&m->lock);
	gw_stat_add(GW_STAT_store_purged_expired, out->expired);
	gw_stat_add(GW_STAT_store_purged_over_cap, out->over_cap);
	gw_stat_add(GW_STAT_store_keys_expired, out->keys);
	return GW_STORE_OK;
}

static void free_user(void *v)
{
	struct muser *u = v;
	for (size_t i = 0; i < u->count; i++)
		free_note(&u->notes[i]);
	free(u->notes);
	free(u);
}

/* Nothing to reach: taking the lock shows no call holds it forever. */
static int m_ping(struct gw_store *s)
{
	pthread_mutex_lock(&M(s)->lock);
	pthread_mutex_unlock(&M(s)->lock);
	return GW_STORE_OK;
}

static void m_close(struct gw_store *s)
{
	struct mstore *m = M(s);
	if (!m)
		return;
	for (struct mjob *j = m->head, *next; j; j = next) {
		next = j->next;
		free_job(j);
	}
	gw_strmap_free(&m->jobs, NULL);
	gw_strmap_free(&m->keys, NULL);
	gw_strmap_free(&m->users, free_user);
	free(m->user_list);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct gw_store_ops memory_ops = {
	.name = "memory",
	.epoch = m_epoch,
	.journal = m_journal,
	.key_seen = m_key_seen,
	.pending = m_pending,
	.record = m_record,
	.max_seq = m_max_seq,
	.since = m_since,
	.inbox = m_inbox,
	.unread = m_unread,
	.mark = m_mark,
	.mark_all = m_mark_all,
	.purge = m_purge,
	.close = m_close,
	.ping = m_ping,
};

int gw_store_memory_open(const struct gw_store_options *opt, struct gw_store **out, char *msg, size_t msglen)
{
	*out = NULL;
	struct mstore *m = calloc(1, sizeof(*m));
	if (!m || gw_strmap_init(&m->jobs, 1024) || gw_strmap_init(&m->keys, 1024) ||
	    gw_strmap_init(&m->users, 1024) || gw_store_new_epoch(m->epoch) ||
	    pthread_mutex_init(&m->lock, NULL)) {
		if (m) {
			gw_strmap_free(&m->jobs, NULL);
			gw_strmap_free(&m->keys, NULL);
			gw_strmap_free(&m->users, NULL);
		}
		free(m);
		snprintf(msg, msglen, "memory store: out of memory");
		return GW_STORE_ERR_NOMEM;
	}
	m->opt = *opt;
	if (m->opt.per_user < 1)
		m->opt.per_user = 1;
	m->base.ops = &memory_ops;
	*out = &m->base;
	return GW_STORE_OK;
}
