/* batch.c - see batch.h. */
#include "batch.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "gw/b64url.h"
#include "gw/signer.h"
#include "log.h"
#include "stats.h"
#include "recorder.h"
#include "store.h"
#include "util.h"

/* The claim `n` and the lifetime are the same for every recipient of one
 * notification: serialised once per note, spliced into every recipient's
 * claims. Written directly, as the claims are (json_pack + json_dumps was
 * ~4 % of the workers' samples at 1,000 events/s; issue 15): the keys of
 * docs/protocol.md in its order, jansson's escapes (gw_sbuf_json_str). NULL
 * when a field is missing (as json_pack refused it) or out of memory. */
static char *note_claim_text(json_t *note, const char *note_id)
{
	static const char *const keys[] = {"type", "title", "description"};
	const char *val[3];
	for (size_t i = 0; i < 3; i++)
		if (!(val[i] = json_string_value(json_object_get(note, keys[i]))))
			return NULL;
	const char *rule = json_string_value(json_object_get(note, "rule"));
	const char *event_type = json_string_value(json_object_get(note, "eventType"));
	if (!rule || !event_type)
		return NULL;
	json_t *actions = json_object_get(note, "actions");
	struct gw_sbuf b = {0};
	gw_sbuf_puts(&b, "{\"id\":");
	gw_sbuf_json_str(&b, note_id);
	for (size_t i = 0; i < 3; i++) {
		gw_sbuf_puts(&b, ",\"");
		gw_sbuf_puts(&b, keys[i]);
		gw_sbuf_puts(&b, "\":");
		gw_sbuf_json_str(&b, val[i]);
	}
	gw_sbuf_puts(&b, ",\"actions\":");
	if (actions)
		gw_sbuf_json_value(&b, actions);
	else
		gw_sbuf_puts(&b, "[]");
	gw_sbuf_puts(&b, ",\"rule\":");
	gw_sbuf_json_str(&b, rule);
	gw_sbuf_puts(&b, ",\"eventType\":");
	gw_sbuf_json_str(&b, event_type);
	gw_sbuf_puts(&b, "}");
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

static json_int_t note_ttl(const struct gw_batch_signing *how, json_t *note)
{
	json_t *t = json_object_get(note, "ttl");
	return json_is_integer(t) && json_integer_value(t) > 0 ? json_integer_value(t)
							       : (json_int_t)how->default_ttl;
}

void gw_sbuf_put(struct gw_sbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		/* small first: most buffers of a pass (issuer, payload) stay under
		 * 1 KiB, and a larger malloc makes glibc consolidate its fast bins */
		size_t cap = b->cap ? b->cap : 512;
		while (b->len + n + 1 > cap)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->failed = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void gw_sbuf_puts(struct gw_sbuf *b, const char *s)
{
	gw_sbuf_put(b, s, strlen(s));
}

/* jansson's escapes but lower-case hex (batch.h); claims read back
 * identically through any JSON parser. */
void gw_sbuf_json_str(struct gw_sbuf *b, const char *s)
{
	gw_sbuf_put(b, "\"", 1);
	const char *run = s;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		gw_sbuf_put(b, run, (size_t)(s - run));
		run = s + 1;
		char esc[7] = {'\\', 0};
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc, "\\u00", 4);
			gw_hex_encode(&c, 1, esc + 4); /* writes a NUL at esc[6] */
			gw_sbuf_put(b, esc, 6);
			continue;
		}
		gw_sbuf_put(b, esc, 2);
	}
	gw_sbuf_put(b, run, (size_t)(s - run));
	gw_sbuf_put(b, "\"", 1);
}

static void sbuf_json_value(struct gw_sbuf *b, json_t *v, int depth)
{
	char num[32];
	if (!v || depth > 2048) { /* jansson's own parsing depth limit */
		b->failed = 1;
		return;
	}
	switch (json_typeof(v)) {
	case JSON_STRING: gw_sbuf_json_str(b, json_string_value(v)); break;
	case JSON_OBJECT: {
		const char *key;
		json_t *x;
		int first = 1;
		gw_sbuf_put(b, "{", 1);
		json_object_foreach (v, key, x) {
			if (!first)
				gw_sbuf_put(b, ",", 1);
			first = 0;
			gw_sbuf_json_str(b, key);
			gw_sbuf_put(b, ":", 1);
			sbuf_json_value(b, x, depth + 1);
		}
		gw_sbuf_put(b, "}", 1);
		break;
	}
	case JSON_ARRAY:
		gw_sbuf_put(b, "[", 1);
		for (size_t i = 0; i < json_array_size(v); i++) {
			if (i)
				gw_sbuf_put(b, ",", 1);
			sbuf_json_value(b, json_array_get(v, i), depth + 1);
		}
		gw_sbuf_put(b, "]", 1);
		break;
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		gw_sbuf_puts(b, num);
		break;
	case JSON_TRUE: gw_sbuf_puts(b, "true"); break;
	case JSON_FALSE: gw_sbuf_puts(b, "false"); break;
	case JSON_NULL: gw_sbuf_puts(b, "null"); break;
	case JSON_REAL: {
		char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!text)
			b->failed = 1;
		else
			gw_sbuf_puts(b, text);
		free(text);
		break;
	}
	}
}

void gw_sbuf_json_value(struct gw_sbuf *b, json_t *v)
{
	sbuf_json_value(b, v, 0);
}

/* A notification of the pass: its claims are bytes [off, off+len) of the
 * pass's claims buffer. */
struct leaf {
	struct gw_event_work *w;
	size_t item;
	size_t off, len;
};

static const char frame_head[] = "{\"op\":\"notification\",\"claims\":\"";
static const char frame_batch[] = "\",\"proof\":{\"batch\":\"";
static const char frame_index[] = "\",\"index\":";
static const char frame_path[] = ",\"path\":[";
static const char frame_tail[] = "]}}";

/* The frame of one leaf: claims, the shared batch JWS, its inclusion proof. */
struct gw_msg *gw_batch_leaf_frame(const char *claims, size_t claims_len, const char *batch_jws,
				   size_t batch_len, const struct gw_merkle *tree, size_t index)
{
	const unsigned char *sib[GW_MERKLE_MAX_PATH];
	size_t npath = gw_merkle_path(tree, index, sib);
	if (npath == (size_t)-1)
		return NULL;
	char idx[24];
	int idx_len = snprintf(idx, sizeof(idx), "%zu", index);
	size_t hash_b64 = gw_b64url_encoded_len(GW_MERKLE_HASH_LEN);
	size_t cap = sizeof(frame_head) - 1 + gw_b64url_encoded_len(claims_len) + sizeof(frame_batch) - 1 +
		     batch_len + sizeof(frame_index) - 1 + (size_t)idx_len + sizeof(frame_path) - 1 +
		     npath * (hash_b64 + 3) + sizeof(frame_tail) + 1;
	struct gw_msg *msg = gw_msg_new(cap);
	if (!msg)
		return NULL;
	char *p = (char *)gw_msg_payload(msg), *o = p;
	memcpy(o, frame_head, sizeof(frame_head) - 1);
	o += sizeof(frame_head) - 1;
	o += gw_b64url_encode((const unsigned char *)claims, claims_len, o);
	memcpy(o, frame_batch, sizeof(frame_batch) - 1);
	o += sizeof(frame_batch) - 1;
	memcpy(o, batch_jws, batch_len);
	o += batch_len;
	memcpy(o, frame_index, sizeof(frame_index) - 1);
	o += sizeof(frame_index) - 1;
	memcpy(o, idx, (size_t)idx_len);
	o += idx_len;
	memcpy(o, frame_path, sizeof(frame_path) - 1);
	o += sizeof(frame_path) - 1;
	for (size_t i = 0; i < npath; i++) {
		if (i)
			*o++ = ',';
		*o++ = '"';
		o += gw_b64url_encode(sib[i], GW_MERKLE_HASH_LEN, o);
		*o++ = '"';
	}
	memcpy(o, frame_tail, sizeof(frame_tail) - 1);
	o += sizeof(frame_tail) - 1;
	*o = '\0';
	msg->len = (size_t)(o - p);
	return msg;
}

/* Builds every recipient's claims, one Merkle tree over them, one ES256
 * signature over its root, and every frame. Returns the number of leaves
 * signed; on failure none is (the caller counts and logs). */
size_t gw_batch_sign(const struct gw_batch_signing *how, struct gw_event_work *works, size_t nworks,
		     time_t now)
{
	size_t nleaves = 0;
	for (size_t e = 0; e < nworks; e++)
		for (size_t k = 0; k < works[e].nitems; k++)
			if (works[e].items[k].user)
				nleaves++;
	if (!nleaves)
		return 0;
	struct leaf *leaves = calloc(nleaves, sizeof(*leaves));
	unsigned char *salt = malloc(nleaves * 16);
	unsigned char *hashes = malloc(nleaves * GW_MERKLE_HASH_LEN);
	struct gw_sbuf claims = {0}, iss_json = {0}, payload = {0};
	struct gw_merkle tree = {0};
	char *batch_jws = NULL;
	size_t signed_leaves = 0;
	if (!leaves || !salt || !hashes || RAND_bytes(salt, (int)(nleaves * 16)) != 1)
		goto done;

	/* Claims, in the key order of the protocol document. */
	gw_sbuf_json_str(&iss_json, how->issuer);
	if (iss_json.failed)
		goto done;
	const char *iss = iss_json.p;
	size_t li = 0;
	for (size_t e = 0; e < nworks; e++) {
		struct gw_event_work *w = &works[e];
		size_t k = 0;
		for (size_t i = 0; i < w->nnotes; i++) {
			json_t *note = json_array_get(w->notes, i);
			size_t nto = json_array_size(json_object_get(note, "to"));
			char note_id[33];
			gw_random_hex(note_id, 16);
			char *n = note_claim_text(note, note_id);
			const char *ctx = json_string_value(json_object_get(note, "context"));
			json_int_t ttl = note_ttl(how, note);
			for (size_t j = 0; j < nto; j++, k++) {
				if (!w->items[k].user)
					continue;
				if (!n || !ctx) /* cannot be serialised: counted as not signed */
					continue;
				struct leaf *lf = &leaves[li];
				lf->w = w;
				lf->item = k;
				lf->off = claims.len;
				char num[96], jti[33];
				gw_hex_encode(salt + li * 16, 16, jti);
				gw_sbuf_puts(&claims, "{\"iss\":");
				gw_sbuf_puts(&claims, iss);
				gw_sbuf_puts(&claims, ",\"installation\":");
				gw_sbuf_json_str(&claims, w->job->installation);
				gw_sbuf_puts(&claims, ",\"sub\":");
				gw_sbuf_json_str(&claims, w->items[k].user);
				gw_sbuf_puts(&claims, ",\"ctx\":");
				gw_sbuf_json_str(&claims, ctx);
				snprintf(num, sizeof(num), ",\"iat\":%lld,\"exp\":%lld,\"jti\":\"",
					 (long long)now, (long long)(now + ttl));
				gw_sbuf_puts(&claims, num);
				gw_sbuf_puts(&claims, jti);
				snprintf(num, sizeof(num),
					 "\",\"seq\":%llu,\"n\":", (unsigned long long)w->items[k].seq);
				gw_sbuf_puts(&claims, num);
				gw_sbuf_puts(&claims, n);
				gw_sbuf_puts(&claims, "}");
				lf->len = claims.len - lf->off;
				w->items[k].ctx = strdup(ctx);
				memcpy(w->items[k].nid, note_id, sizeof(note_id));
				w->items[k].iat = (int64_t)now;
				w->items[k].exp = (int64_t)(now + ttl);
				li++;
			}
			free(n);
		}
	}
	nleaves = li; /* notes that could not be serialised dropped theirs */
	if (claims.failed || !nleaves)
		goto done;
	for (size_t i = 0; i < nleaves; i++)
		if (gw_merkle_leaf_hash(claims.p + leaves[i].off, leaves[i].len,
					hashes + i * GW_MERKLE_HASH_LEN))
			goto done;
	if (gw_merkle_build(&tree, hashes, nleaves))
		goto done;

	char root[48], num[96];
	gw_b64url_encode(gw_merkle_root(&tree), GW_MERKLE_HASH_LEN, root);
	gw_sbuf_puts(&payload, "{\"iss\":");
	gw_sbuf_puts(&payload, iss);
	snprintf(num, sizeof(num), ",\"iat\":%lld,\"size\":%zu,\"root\":\"", (long long)now, nleaves);
	gw_sbuf_puts(&payload, num);
	gw_sbuf_puts(&payload, root);
	gw_sbuf_puts(&payload, "\"}");
	if (payload.failed)
		goto done;
	size_t jws_cap = gw_signer_max_jws_len(how->signer, payload.len);
	batch_jws = malloc(jws_cap);
	size_t jws_len =
		batch_jws ? gw_signer_sign(how->signer, payload.p, payload.len, batch_jws, jws_cap) : 0;
	if (!jws_len)
		goto done;
	gw_stat_inc(GW_STAT_signatures);

	for (size_t i = 0; i < nleaves; i++) {
		struct gw_delivery *d = &leaves[i].w->items[leaves[i].item];
		d->msg = gw_batch_leaf_frame(claims.p + leaves[i].off, leaves[i].len, batch_jws, jws_len,
					     &tree, i);
		if (d->msg && (d->claims = malloc(leaves[i].len + 1))) {
			memcpy(d->claims, claims.p + leaves[i].off, leaves[i].len);
			d->claims[leaves[i].len] = '\0';
			d->claims_len = leaves[i].len;
			d->msg->seq = d->seq;
			signed_leaves++;
		} else {
			gw_msg_unref(d->msg);
			d->msg = NULL;
		}
	}
done:
	free(batch_jws);
	gw_merkle_free(&tree);
	free(claims.p);
	free(iss_json.p);
	free(payload.p);
	free(hashes);
	free(salt);
	free(leaves);
	return signed_leaves;
}

/* The proof object of a frame built by gw_batch_leaf_frame: from after
 * "proof": to before the final '}' (claims are base64url: no quote inside). */
static const char *frame_proof(const struct gw_msg *msg, size_t *len)
{
	const char *p = (const char *)msg->buf + GW_MSG_HEADROOM;
	const char *at = strstr(p, "\",\"proof\":");
	if (!at || msg->len < 2)
		return NULL;
	at += 10;
	*len = (size_t)(p + msg->len - 1 - at);
	return at;
}

#define GW_RESEQ_MAX 16 /* cluster mode: re-numberings of one pass before giving up (left pending) */

/* A shared store (cluster mode) keeps each work's rule results until the
 * pass is recorded: a seq conflict means signing again. */
static int clustered(const struct gw_app *app)
{
	return app->store && app->store->ops->claim;
}

/* Cluster mode, after GW_STORE_ERR_SEQ (nothing was written): another node
 * recorded some of these users since this node's sequencer cached their
 * seq. Reads each user's seq from the store again, numbers the pass's items
 * after it (in pass order, so a user's notes stay in intake order), tells
 * the sequencer, and signs the pass again (seq is inside the signed claims).
 * 0, or a gw_store_rc (the pass is then left pending: claimed again later). */
static int reseq_pass(struct gw_app *app, struct gw_event_work *works, size_t nworks,
		      const struct gw_store_done *done, size_t nd)
{
	/* The pass's distinct (installation, user) pairs, read in one round trip
	 * per shard where the engine can (max_seqs): one read per user, one after
	 * the other, was most of a conflict's cost (docs/cluster.md). */
	size_t nitems = 0, nu = 0;
	for (size_t e = 0; e < nworks; e++)
		nitems += works[e].nitems;
	const char **insts = calloc(nitems ? nitems : 1, sizeof(*insts));
	const char **users = calloc(nitems ? nitems : 1, sizeof(*users));
	uint64_t *bases = calloc(nitems ? nitems : 1, sizeof(*bases));
	int rc = insts && users && bases ? GW_STORE_OK : GW_STORE_ERR_NOMEM;
	for (size_t e = 0; !rc && e < nworks; e++)
		for (size_t k = 0; k < works[e].nitems; k++) {
			const char *u = works[e].items[k].user, *in = works[e].job->installation;
			size_t x = 0;
			while (u && x < nu && (strcmp(users[x], u) || strcmp(insts[x], in)))
				x++;
			if (u && x == nu) {
				insts[nu] = in;
				users[nu++] = u;
			}
		}
	/* What the refusing call saw (done[].stored) needs no read at all. */
	size_t nr = 0;
	for (size_t x = 0; !rc && x < nu; x++) {
		uint64_t v = GW_STORE_SEQ_UNKNOWN;
		for (size_t i = 0; i < nd && v == GW_STORE_SEQ_UNKNOWN; i++)
			for (size_t k = 0; done[i].stored && k < done[i].count; k++)
				if (!strcmp(done[i].notes[k].user, users[x]) &&
				    !strcmp(done[i].installation, insts[x])) {
					v = done[i].stored[k];
					break;
				}
		if (v != GW_STORE_SEQ_UNKNOWN) {
			bases[x] = v;
			continue;
		}
		/* unknown ones to the front (the pairs' order does not matter) */
		const char *ti = insts[nr], *tu = users[nr];
		uint64_t tb = bases[nr];
		insts[nr] = insts[x];
		users[nr] = users[x];
		bases[nr] = bases[x];
		insts[x] = ti;
		users[x] = tu;
		bases[x] = tb;
		nr++;
	}
	gw_stat_add(GW_STAT_cluster_reseq_reads, nr);
	if (!rc && nr && app->store->ops->max_seqs)
		rc = app->store->ops->max_seqs(app->store, insts, users, nr, bases);
	for (size_t x = 0; !rc && !app->store->ops->max_seqs && x < nr; x++)
		rc = app->store->ops->max_seq(app->store, insts[x], users[x], &bases[x]);
	for (size_t e = 0; !rc && e < nworks; e++) {
		struct gw_event_work *w = &works[e];
		for (size_t k = 0; k < w->nitems; k++) {
			struct gw_delivery *d = &w->items[k];
			if (!d->user)
				continue;
			/* the nearest earlier item of the same (installation, user) */
			uint64_t prev = 0;
			for (size_t pe = e + 1; pe-- > 0 && !prev;) {
				struct gw_event_work *pw = &works[pe];
				if (strcmp(pw->job->installation, w->job->installation))
					continue;
				for (size_t pk = pe == e ? k : pw->nitems; pk-- > 0;)
					if (pw->items[pk].user && !strcmp(pw->items[pk].user, d->user)) {
						prev = pw->items[pk].seq;
						break;
					}
			}
			for (size_t x = 0; !prev && x < nu; x++)
				if (!strcmp(users[x], d->user) && !strcmp(insts[x], w->job->installation))
					prev = bases[x];
			d->seq = prev + 1;
			gw_msg_unref(d->msg);
			d->msg = NULL;
			free(d->claims);
			d->claims = NULL;
			free(d->ctx);
			d->ctx = NULL;
		}
	}
	free(insts);
	free(users);
	free(bases);
	if (rc)
		return rc;
	/* the last seq of each user: later passes continue from it */
	for (size_t e = 0; e < nworks; e++)
		for (size_t k = 0; k < works[e].nitems; k++)
			if (works[e].items[k].user)
				gw_sequencer_reseat(&app->seq, works[e].job->installation,
						    works[e].items[k].user, works[e].items[k].seq);
	struct gw_batch_signing how = {app->signer, app->cfg.signing_issuer, app->cfg.notification_ttl};
	gw_batch_sign(&how, works, nworks, time(NULL));
	return GW_STORE_OK;
}

/* The store's view of works[from, to): their notes and done marks, recorded
 * in one call. *nd: events in the call (map[i]: which work; results[i]:
 * its outcome when the call succeeded). Unjournaled works get ok = 1. */
static int record_range(struct gw_app *app, struct gw_event_work *works, size_t from, size_t to,
			struct gw_store_done *done, struct gw_store_note *notes, uint64_t *stored,
			int *results, size_t *map, size_t *nd_out, int *ok)
{
	size_t nd = 0, ni = 0;
	for (size_t e = from; e < to; e++) {
		struct gw_event_work *w = &works[e];
		if (!w->job->journal_id) {
			ok[e] = 1; /* not journaled (cannot happen with a store): deliver as before */
			continue;
		}
		if (w->job->leave_pending) {
			ok[e] = 0; /* workers.c: a seq could not be read; the journal keeps it */
			continue;
		}
		done[nd].journal_id = w->job->journal_id;
		done[nd].installation = w->job->installation;
		done[nd].notes = notes + ni;
		done[nd].stored = stored ? stored + ni : NULL;
		done[nd].count = 0;
		for (size_t k = 0; k < w->nitems; k++) {
			struct gw_delivery *d = &w->items[k];
			size_t plen = 0;
			const char *proof = d->msg && d->claims ? frame_proof(d->msg, &plen) : NULL;
			if (!d->user || !proof || !d->ctx)
				continue;
			if (stored)
				stored[ni] = GW_STORE_SEQ_UNKNOWN;
			struct gw_store_note *n = &notes[ni++];
			n->user = d->user;
			n->ctx = d->ctx;
			n->id = d->nid;
			n->seq = d->seq;
			n->claims = d->claims;
			n->claims_len = d->claims_len;
			n->proof = proof;
			n->proof_len = plen;
			n->created = d->iat;
			n->exp = d->exp;
			done[nd].count++;
		}
		map[nd++] = e;
	}
	*nd_out = nd;
	return nd ? app->store->ops->record(app->store, done, nd, results) : GW_STORE_OK;
}

/* The pass's notifications and every event's done mark in one store
 * transaction, before anything is delivered: after a crash an event is
 * either pending (processed again, same seqs) or done with all its
 * notifications stored, never delivered without being stored. ok[e] = 1 when
 * event e may be delivered.
 * Cluster mode: a shared store refusing the seqs (GW_STORE_ERR_SEQ) gets the
 * pass numbered and signed again; refused again, the events go one at a
 * time (an event another node already did is not pending and takes no seq,
 * which only a call of its own tells). With several shards, a pass that
 * failed otherwise (a shard down or frozen) also goes one event at a time:
 * events whose users all live on healthy shards are recorded and delivered,
 * only those touching the failed shard are left pending. */
static void record_pass(struct gw_app *app, struct gw_event_work *works, size_t nworks, int *ok)
{
	size_t nnotes = 0;
	for (size_t e = 0; e < nworks; e++)
		nnotes += works[e].nitems;
	struct gw_store_done *done = calloc(nworks, sizeof(*done));
	struct gw_store_note *notes = nnotes ? calloc(nnotes, sizeof(*notes)) : NULL;
	/* cluster mode: what a refusal saw of the users' seqs (reseq_pass) */
	uint64_t *stored = nnotes && clustered(app) ? calloc(nnotes, sizeof(*stored)) : NULL;
	int *results = calloc(nworks, sizeof(*results));
	size_t nd = 0, failed = 0;
	size_t *map = calloc(nworks, sizeof(*map));
	int rc = GW_STORE_ERR_NOMEM;
	if (!done || (nnotes && !notes) || (nnotes && clustered(app) && !stored) || !results || !map) {
		failed = nworks;
		goto out;
	}
	rc = record_range(app, works, 0, nworks, done, notes, stored, results, map, &nd, ok);
	if (rc == GW_STORE_ERR_SEQ && clustered(app)) {
		gw_stat_inc(GW_STAT_cluster_resigned_passes);
		int r2 = reseq_pass(app, works, nworks, done, nd);
		rc = r2 ? r2
			: record_range(app, works, 0, nworks, done, notes, stored, results, map, &nd, ok);
	}
	if (rc == GW_STORE_OK) {
		for (size_t i = 0; i < nd; i++) {
			ok[map[i]] = results[i] == GW_STORE_OK;
			if (ok[map[i]])
				gw_trace_stored(&app->trace, works[map[i]].job->intake_no, done[i].notes,
						done[i].count);
		}
	} else if (clustered(app) && (rc == GW_STORE_ERR_SEQ || (app->cfg.nredis > 1 && nd > 1))) {
		int why = rc; /* the last event's failure, for the log */
		for (size_t e = 0; e < nworks; e++) {
			int r1;
			size_t n1 = 0;
			for (int attempt = 0;; attempt++) {
				r1 = record_range(app, works, e, e + 1, done, notes, stored, results, map,
						  &n1, ok);
				if (r1 != GW_STORE_ERR_SEQ || attempt >= GW_RESEQ_MAX)
					break;
				gw_stat_inc(GW_STAT_cluster_resigned_passes);
				/* this event only: renumbering the rest would read the seq
				 * of users on a shard that may be the one failing */
				if (reseq_pass(app, works + e, 1, done, n1))
					break;
			}
			if (r1 == GW_STORE_OK && n1) {
				ok[e] = results[0] == GW_STORE_OK;
				if (ok[e])
					gw_trace_stored(&app->trace, works[e].job->intake_no, done[0].notes,
							done[0].count);
			} else if (r1) {
				failed++;
				why = r1;
			}
			if (r1 == GW_STORE_OK && n1 && results[0] != GW_STORE_OK)
				gw_log(GW_LOG_WARN,
				       "store: event trace=%s was already done: its notifications are not sent again",
				       works[e].job->trace_id);
		}
		rc = failed ? why : GW_STORE_OK;
		nd = 0; /* logged per event above */
	} else {
		failed = nd;
	}
out:
	if (failed) {
		gw_stat_add(GW_STAT_store_record_failed, failed);
		gw_log(GW_LOG_ERR,
		       "store: cannot record %zu events' notifications (%s): not delivered, left pending %s",
		       failed, gw_store_strerror(rc),
		       clustered(app) ? "(claimed again after cluster.claim_after)" : "for the next start");
	}
	for (size_t i = 0; rc == GW_STORE_OK && i < nd; i++)
		if (results[i] != GW_STORE_OK)
			gw_log(GW_LOG_WARN,
			       "store: event trace=%s was already done: its notifications are not sent again",
			       works[map[i]].job->trace_id);
	free(map);
	free(results);
	free(notes);
	free(stored);
	free(done);
}

/* Records the pass (the store's transaction), then hands every event's
 * batch to the service thread and frees the jobs. */
void gw_batch_finish(struct gw_app *app, struct gw_event_work *works, size_t nworks)
{
	int ok_stack[64];
	int *ok = nworks <= 64 ? ok_stack : calloc(nworks, sizeof(*ok));
	if (ok)
		memset(ok, 0, nworks * sizeof(*ok));
	if (ok && app->store)
		record_pass(app, works, nworks, ok);
	for (size_t e = 0; e < nworks; e++) {
		struct gw_event_work *w = &works[e];
		size_t out = 0, failed = 0;
		int deliver = !app->store || (ok && ok[e]);
		for (size_t k = 0; k < w->nitems; k++) {
			struct gw_delivery d = w->items[k];
			if (!d.user)
				continue;
			free(d.claims); /* recorded (or not): not needed any more */
			d.claims = NULL;
			if (!deliver) {
				free(d.user);
				free(d.ctx);
				gw_msg_unref(d.msg);
				continue;
			}
			if (!d.msg || !d.ctx || !(d.installation = strdup(w->job->installation))) {
				failed++;
				free(d.user);
				free(d.ctx);
				gw_msg_unref(d.msg);
				continue;
			}
			w->items[out++] = d;
		}
		gw_stat_add(GW_STAT_notifications_signed, out);
		if (failed) {
			gw_stat_add(GW_STAT_notifications_sign_failed, failed);
			gw_log(GW_LOG_ERR, "%zu notifications not signed trace=%s", failed, w->job->trace_id);
		}
		if (w->job->leave_pending) {
			gw_stat_inc(GW_STAT_cluster_events_left_pending);
			gw_log(GW_LOG_WARN,
			       "event trace=%s left pending: a recipient's seq could not be read from the store; claimed again after cluster.claim_after",
			       w->job->trace_id);
		} else {
			gw_stat_inc(GW_STAT_events_processed);
		}
		json_decref(w->notes); /* cluster mode kept them for a re-signing */
		w->notes = NULL;
		w->batch->kind = GW_OUT_BATCH;
		w->batch->intake_no = w->job->intake_no;
		w->batch->received_ns = w->job->received_ns;
		w->batch->items = w->items;
		w->batch->count = out;
		gw_outbox_push_take(&app->outbox, w->batch);
		gw_job_free(w->job);
		w->job = NULL;
	}
	if (ok != ok_stack)
		free(ok);
}

/* Signs the pass and hands it to the recorder thread (recorder.h), which
 * records it with other passes in one store transaction and then delivers;
 * without a recorder, records and delivers here. Takes the jobs. */
void gw_batch_deliver(struct gw_app *app, struct gw_event_work *works, size_t nworks)
{
	struct gw_batch_signing how = {app->signer, app->cfg.signing_issuer, app->cfg.notification_ttl};
	/* Counted here, once per note the rules made: a pass re-signed after a
	 * seq conflict (reseq_pass) goes through gw_batch_sign again. */
	for (size_t e = 0; e < nworks; e++)
		gw_stat_add(GW_STAT_rule_matches, json_array_size(works[e].notes));
	gw_batch_sign(&how, works, nworks, time(NULL));
	for (size_t e = 0; e < nworks && !clustered(app); e++) {
		json_decref(works[e].notes); /* signed: the claims hold what is needed */
		works[e].notes = NULL;
	}
	if (app->recorder && !gw_recorder_submit(app->recorder, works, nworks))
		return;
	gw_batch_finish(app, works, nworks);
}
