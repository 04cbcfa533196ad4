/* Tests batch.c: a pass of three events (two recipients of one note, one
 * recipient without a seq, one of another installation, one event with no
 * notes) is signed once; every frame is checked the way a client would,
 * independently of gwcrypto: the batch JWS with OpenSSL (ES256 over the
 * P-256 key file), the claims bytes against the Merkle root with the RFC 9162
 * §2.1.3.2 algorithm written out here over OpenSSL's SHA-256, and with
 * gw_merkle_verify. Also: the claims (key order, iat/exp/ttl, shared note
 * id, distinct jti, seq), escaping that reads back exactly, and a frame for
 * an index outside the tree. */
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "../check.h"
#include "batch.h"
#include "gw/b64url.h"
#include "gw/keygen.h"
#include "gw/merkle.h"
#include "gw/signer.h"
#include "log.h"

static unsigned char *b64d(const char *s, size_t n, size_t *out_len)
{
	unsigned char *out = NULL;
	if (gw_b64url_decode(s, n, &out, out_len))
		return NULL;
	return out;
}

/* ES256 compact JWS verified with OpenSSL alone; returns the payload JSON. */
static json_t *verify_jws(EVP_PKEY *pub, const char *jws, size_t len)
{
	const char *d1 = memchr(jws, '.', len);
	const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - jws)) : NULL;
	if (!d2)
		return NULL;
	size_t sig_len = 0, hdr_len = 0, pl_len = 0;
	unsigned char *sig = b64d(d2 + 1, len - (size_t)(d2 + 1 - jws), &sig_len);
	unsigned char *hdr = b64d(jws, (size_t)(d1 - jws), &hdr_len);
	unsigned char *pl = b64d(d1 + 1, (size_t)(d2 - d1 - 1), &pl_len);
	json_t *header = hdr ? json_loadb((char *)hdr, hdr_len, 0, NULL) : NULL;
	json_t *payload = NULL;
	int ok = sig && sig_len == 64 && header &&
		 !strcmp(json_string_value(json_object_get(header, "alg")), "ES256");
	if (ok) {
		ECDSA_SIG *es = ECDSA_SIG_new();
		ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL));
		unsigned char *der = NULL;
		int der_len = i2d_ECDSA_SIG(es, &der);
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		ok = der_len > 0 && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
		     EVP_DigestVerify(md, der, (size_t)der_len, (const unsigned char *)jws,
				      (size_t)(d2 - jws)) == 1;
		EVP_MD_CTX_free(md);
		OPENSSL_free(der);
		ECDSA_SIG_free(es);
	}
	if (ok)
		payload = json_loadb((char *)pl, pl_len, 0, NULL);
	json_decref(header);
	free(sig);
	free(hdr);
	free(pl);
	return payload;
}

static void sha256_parts(const unsigned char *a, size_t an, const unsigned char *b, size_t bn,
			 const unsigned char *c, size_t cn, unsigned char out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = 0;
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, a, an);
	EVP_DigestUpdate(ctx, b, bn);
	if (cn)
		EVP_DigestUpdate(ctx, c, cn);
	EVP_DigestFinal_ex(ctx, out, &len);
	EVP_MD_CTX_free(ctx);
}

/* RFC 9162 §2.1.3.2, as docs/protocol.md spells it for clients. */
static int rfc9162_verify(const unsigned char *claims, size_t claims_len, size_t index, size_t size,
			  unsigned char path[][32], size_t npath, const unsigned char root[32])
{
	static const unsigned char zero = 0, one = 1;
	unsigned char r[32], t[32];
	if (index >= size)
		return 0;
	sha256_parts(&zero, 1, claims, claims_len, NULL, 0, r);
	size_t fn = index, sn = size - 1;
	for (size_t i = 0; i < npath; i++) {
		if (sn == 0)
			return 0;
		unsigned char both[64];
		if ((fn & 1) || fn == sn) {
			memcpy(both, path[i], 32);
			memcpy(both + 32, r, 32);
			sha256_parts(&one, 1, both, 64, NULL, 0, t);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else {
			memcpy(both, r, 32);
			memcpy(both + 32, path[i], 32);
			sha256_parts(&one, 1, both, 64, NULL, 0, t);
		}
		memcpy(r, t, 32);
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && !memcmp(r, root, 32);
}

static json_t *note(const char *title, const char *ctx, json_t *to, int ttl)
{
	json_t *n = json_pack("{s:s, s:s, s:s, s:[{s:s, s:s}], s:s, s:s, s:s, s:o}", "type", "info", "title",
			      title, "description", "d", "actions", "text", "Open", "href",
			      "https://example.net/x", "rule", "r", "eventType", "avi:jira:created:issue",
			      "context", ctx, "to", to);
	if (ttl)
		json_object_set_new(n, "ttl", json_integer(ttl));
	return n;
}

static struct gw_job *job(uint64_t intake_no, const char *inst)
{
	struct gw_job *j = gw_job_new(GW_JOB_EVENT);
	j->intake_no = intake_no;
	j->installation = strdup(inst);
	snprintf(j->trace_id, sizeof(j->trace_id), "trace%llu", (unsigned long long)intake_no);
	return j;
}

static void item(struct gw_delivery *d, const char *user, uint64_t seq)
{
	memset(d, 0, sizeof(*d));
	d->user = user ? strdup(user) : NULL;
	d->seq = seq;
}

static void test_escaping(void)
{
	const char *samples[] = {"plain",
				 "quote \" backslash \\ slash /",
				 "\b\f\n\r\t",
				 "\x01\x1f\x7f",
				 "caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x94\x94",
				 ""};
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		struct gw_sbuf b = {0};
		gw_sbuf_json_str(&b, samples[i]);
		CHECK(!b.failed);
		json_t *back = json_loadb(b.p, b.len, JSON_DECODE_ANY, NULL);
		CHECK_STR_EQ(json_string_value(back), samples[i]);
		/* jansson writes the same escapes but upper-case hex (batch.h) */
		json_t *s = json_string(samples[i]);
		char *j = json_dumps(s, JSON_ENCODE_ANY);
		CHECK(j && strlen(j) == b.len && !strncasecmp(j, b.p, b.len));
		free(j);
		json_decref(s);
		json_decref(back);
		free(b.p);
	}
}

/* gw_sbuf_json_value writes what jansson's compact encoder writes (hex
 * case aside), for every JSON type and for real Forge payloads. */
static void test_json_value(void)
{
	const char *samples[] = {
		"{\"a\":[1,-2,3.25,1e+300,true,false,null,\"x\\u0001y\"],\"b\":{},\"c\":[],\"d\":{\"e\":{\"f\":\"\\u00e9\\n\"}}}",
		"[\"\\u2028\",{\"z\":0,\"a\":-0.5}]", "\"s\"", "12345678901234", "null"};
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		json_t *v = json_loads(samples[i], JSON_DECODE_ANY, NULL);
		CHECK(v != NULL);
		struct gw_sbuf b = {0};
		gw_sbuf_json_value(&b, v);
		char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		CHECK(!b.failed && want && strlen(want) == b.len && !strncasecmp(want, b.p, b.len));
		free(want);
		free(b.p);
		json_decref(v);
	}
}

/* The claim n, written by batch.c directly, is the text jansson's compact
 * encoder writes for the same object (key order of docs/protocol.md; hex
 * case aside), whatever the actions hold. */
static void test_note_claim(const struct gw_signer *signer)
{
	json_t *actions = json_pack("[{s:s, s:s}, {s:i, s:b, s:n, s:f, s:[s, {s:s}]}]", "text", "caf\xc3\xa9 \"x\"\n",
				    "href", "/a?b=c&d=\x01", "count", -42, "flag", 1, "none", "ratio", 0.5,
				    "nested", "\xf0\x9f\x94\x94", "k", "v\\");
	json_t *n = json_pack("{s:s, s:s, s:s, s:O, s:s, s:s, s:s, s:[s]}", "type", "warning", "title", "T\t1",
			      "description", "line\u2028end", "actions", actions, "rule", "r/1", "eventType",
			      "avi:jira:created:issue", "context", "c", "to", "u");
	struct gw_event_work w;
	memset(&w, 0, sizeof(w));
	w.job = job(1, "inst");
	w.notes = json_pack("[O]", n);
	w.nnotes = 1;
	w.nitems = 1;
	w.items = calloc(1, sizeof(*w.items));
	item(&w.items[0], "u", 1);
	const struct gw_batch_signing how = {signer, "iss", 3600};
	CHECK_INT_EQ(gw_batch_sign(&how, &w, 1, 1700000000), 1);
	const char *claims = w.items[0].claims;
	const char *at = claims ? strstr(claims, ",\"n\":") : NULL;
	CHECK(at != NULL);
	if (at) {
		at += 5;
		size_t len = strlen(at) - 1; /* the claims' closing brace */
		json_t *parsed = json_loadb(at, len, 0, NULL);
		json_t *id = json_object_get(parsed, "id");
		json_t *want = json_pack("{s:O, s:s, s:s, s:s, s:O, s:s, s:s}", "id", id, "type", "warning",
					 "title", "T\t1", "description", "line\u2028end", "actions", actions, "rule",
					 "r/1", "eventType", "avi:jira:created:issue");
		char *text = json_dumps(want, JSON_COMPACT);
		CHECK(text && strlen(text) == len && !strncasecmp(text, at, len));
		free(text);
		json_decref(want);
		json_decref(parsed);
	}
	/* a note without a title cannot be serialised: not signed */
	json_object_del(n, "title");
	free(w.items[0].claims);
	w.items[0].claims = NULL;
	free(w.items[0].ctx);
	w.items[0].ctx = NULL;
	gw_msg_unref(w.items[0].msg);
	w.items[0].msg = NULL;
	CHECK_INT_EQ(gw_batch_sign(&how, &w, 1, 1700000000), 0);
	free(w.items[0].user);
	free(w.items[0].claims);
	free(w.items[0].ctx);
	gw_msg_unref(w.items[0].msg);
	free(w.items);
	json_decref(w.notes);
	gw_job_free(w.job);
	json_decref(n);
	json_decref(actions);
}

int main(void)
{
	gw_log_set_level(GW_LOG_ERR);
	test_escaping();
	test_json_value();

	const char *tmp = getenv("GW_TEST_TMP");
	char keypath[1024], err[256];
	snprintf(keypath, sizeof(keypath), "%s/test_batch_signing.pem", tmp ? tmp : ".");
	CHECK_INT_EQ(gw_keygen_ec_p256(keypath, err, sizeof(err)), 0);
	struct gw_signer *signer = gw_signer_load_file(keypath, err, sizeof(err));
	CHECK(signer != NULL);
	FILE *f = fopen(keypath, "r");
	EVP_PKEY *pub = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	CHECK(pub != NULL);
	if (!signer || !pub)
		return CHECK_DONE();
	test_note_claim(signer);

	/* event 1: note A to alice and bob (ttl 60), note B to carol, whose
	 * seq could not be taken (user NULL: no delivery) */
	struct gw_event_work w[3];
	memset(w, 0, sizeof(w));
	w[0].job = job(1, "inst-1");
	w[0].notes =
		json_pack("[o, o]", note("A \"new\"\n", "ctx-a", json_pack("[s, s]", "alice", "bob"), 60),
			  note("B", "ctx-b", json_pack("[s]", "carol"), 0));
	w[0].nnotes = 2;
	w[0].nitems = 3;
	w[0].items = calloc(3, sizeof(struct gw_delivery));
	item(&w[0].items[0], "alice", 1);
	item(&w[0].items[1], "bob", 5);
	item(&w[0].items[2], NULL, 0);
	/* event 2: another installation, a context that needs escaping */
	w[1].job = job(2, "inst-2");
	w[1].notes = json_pack("[o]", note("C", "ctx\x01", json_pack("[s]", "dave"), 0));
	w[1].nnotes = 1;
	w[1].nitems = 1;
	w[1].items = calloc(1, sizeof(struct gw_delivery));
	item(&w[1].items[0], "dave", 2);
	/* event 3: no notes */
	w[2].job = job(3, "inst-1");

	struct gw_batch_signing how = {signer, "notify-gateway-test", 3600};
	time_t now = 1700000000;
	CHECK_INT_EQ(gw_batch_sign(&how, w, 3, now), 3);
	CHECK(w[0].items[2].msg == NULL);

	struct {
		struct gw_delivery *d;
		const char *inst, *ctx;
		long long ttl;
	} expect[] = {
		{&w[0].items[0], "inst-1", "ctx-a", 60},
		{&w[0].items[1], "inst-1", "ctx-a", 60},
		{&w[1].items[0], "inst-2", "ctx\x01", 3600},
	};
	char batch0[4096] = "", note_ids[3][40], jtis[3][40];
	unsigned char root[32];
	for (size_t i = 0; i < 3; i++) {
		struct gw_delivery *d = expect[i].d;
		CHECK(d->msg != NULL);
		if (!d->msg)
			continue;
		CHECK_STR_EQ(d->ctx, expect[i].ctx);
		json_t *frame = json_loadb((char *)gw_msg_payload(d->msg), d->msg->len, 0, NULL);
		CHECK(frame != NULL);
		CHECK_STR_EQ(json_string_value(json_object_get(frame, "op")), "notification");
		json_t *proof = json_object_get(frame, "proof");
		const char *batch = json_string_value(json_object_get(proof, "batch"));
		/* one signature for the whole pass */
		if (i == 0)
			snprintf(batch0, sizeof(batch0), "%s", batch);
		CHECK_STR_EQ(batch, batch0);
		json_t *bp = verify_jws(pub, batch, strlen(batch));
		CHECK(bp != NULL);
		CHECK_STR_EQ(json_string_value(json_object_get(bp, "iss")), "notify-gateway-test");
		CHECK_INT_EQ(json_integer_value(json_object_get(bp, "iat")), now);
		CHECK_INT_EQ(json_integer_value(json_object_get(bp, "size")), 3);
		size_t rl = 0;
		unsigned char *r = b64d(json_string_value(json_object_get(bp, "root")),
					json_string_length(json_object_get(bp, "root")), &rl);
		CHECK(r && rl == 32);
		if (r && rl == 32)
			memcpy(root, r, 32);
		free(r);

		/* the proof, checked twice: our own RFC 9162 verifier and gwcrypto's */
		const char *claims_b64 = json_string_value(json_object_get(frame, "claims"));
		size_t claims_len = 0;
		unsigned char *claims = b64d(claims_b64, strlen(claims_b64), &claims_len);
		json_t *path = json_object_get(proof, "path");
		size_t index = (size_t)json_integer_value(json_object_get(proof, "index"));
		CHECK_INT_EQ(index, i);
		unsigned char sib[GW_MERKLE_MAX_PATH][32];
		size_t npath = json_array_size(path);
		/* three leaves: 0 and 1 pair, 2 is carried up unchanged (RFC 9162's split at 2) */
		CHECK_INT_EQ(npath, i < 2 ? 2 : 1);
		for (size_t p = 0; p < npath && p < GW_MERKLE_MAX_PATH; p++) {
			size_t n = 0;
			unsigned char *h = b64d(json_string_value(json_array_get(path, p)),
						json_string_length(json_array_get(path, p)), &n);
			CHECK(h && n == 32);
			if (h && n == 32)
				memcpy(sib[p], h, 32);
			free(h);
		}
		CHECK(rfc9162_verify(claims, claims_len, index, 3, sib, npath, root));
		unsigned char leaf[32];
		CHECK_INT_EQ(gw_merkle_leaf_hash(claims, claims_len, leaf), 0);
		CHECK(gw_merkle_verify(leaf, index, 3, &sib[0][0], npath, root));
		/* a proof does not fit another index, nor altered claims */
		CHECK(!rfc9162_verify(claims, claims_len, (index + 1) % 3, 3, sib, npath, root));
		claims[claims_len - 2] ^= 1;
		CHECK(!rfc9162_verify(claims, claims_len, index, 3, sib, npath, root));
		claims[claims_len - 2] ^= 1;

		/* the claims, in the protocol's key order */
		json_t *c = json_loadb((char *)claims, claims_len, JSON_PRESERVE_ORDER, NULL);
		CHECK(c != NULL);
		const char *order[] = {"iss", "installation", "sub", "ctx", "iat", "exp", "jti", "seq", "n"};
		const char *k;
		json_t *v;
		size_t ki = 0;
		json_object_foreach (c, k, v)
			CHECK(ki < 9 && !strcmp(k, order[ki++]));
		CHECK_INT_EQ(ki, 9);
		CHECK_STR_EQ(json_string_value(json_object_get(c, "installation")), expect[i].inst);
		CHECK_STR_EQ(json_string_value(json_object_get(c, "sub")), d->user);
		CHECK_STR_EQ(json_string_value(json_object_get(c, "ctx")), expect[i].ctx);
		CHECK_INT_EQ(json_integer_value(json_object_get(c, "iat")), now);
		CHECK_INT_EQ(json_integer_value(json_object_get(c, "exp")), now + expect[i].ttl);
		CHECK_INT_EQ(json_integer_value(json_object_get(c, "seq")), d->seq);
		json_t *n = json_object_get(c, "n");
		CHECK_STR_EQ(json_string_value(json_object_get(n, "rule")), "r");
		CHECK_STR_EQ(json_string_value(json_object_get(
				     json_array_get(json_object_get(n, "actions"), 0), "href")),
			     "https://example.net/x");
		snprintf(note_ids[i], sizeof(note_ids[i]), "%s", json_string_value(json_object_get(n, "id")));
		snprintf(jtis[i], sizeof(jtis[i]), "%s", json_string_value(json_object_get(c, "jti")));
		CHECK_INT_EQ(strlen(jtis[i]), 32);
		if (i == 0)
			CHECK_STR_EQ(json_string_value(json_object_get(n, "title")), "A \"new\"\n");
		json_decref(c);
		free(claims);
		json_decref(bp);
		json_decref(frame);
	}
	/* recipients of one note share its id; jti is per recipient */
	CHECK_STR_EQ(note_ids[0], note_ids[1]);
	CHECK(strcmp(note_ids[0], note_ids[2]) != 0);
	CHECK(strcmp(jtis[0], jtis[1]) != 0 && strcmp(jtis[1], jtis[2]) != 0);

	/* a frame for an index outside the tree is refused */
	struct gw_merkle t = {0};
	unsigned char leaves[64] = {0};
	CHECK_INT_EQ(gw_merkle_build(&t, leaves, 2), 0);
	CHECK(gw_batch_leaf_frame("{}", 2, "a.b.c", 5, &t, 2) == NULL);
	struct gw_msg *one = gw_batch_leaf_frame("{}", 2, "a.b.c", 5, &t, 1);
	CHECK(one != NULL);
	json_t *fr = one ? json_loadb((char *)gw_msg_payload(one), one->len, 0, NULL) : NULL;
	CHECK_INT_EQ(json_array_size(json_object_get(json_object_get(fr, "proof"), "path")), 1);
	json_decref(fr);
	gw_msg_unref(one);
	gw_merkle_free(&t);

	/* a pass with nothing to sign signs nothing */
	CHECK_INT_EQ(gw_batch_sign(&how, &w[2], 1, now), 0);

	for (size_t e = 0; e < 3; e++) {
		for (size_t k = 0; k < w[e].nitems; k++) {
			free(w[e].items[k].user);
			free(w[e].items[k].ctx);
			gw_msg_unref(w[e].items[k].msg);
			free(w[e].items[k].claims); /* gw_batch_sign keeps them for the store's record */
		}
		free(w[e].items);
		json_decref(w[e].notes);
		gw_job_free(w[e].job);
	}
	EVP_PKEY_free(pub);
	gw_signer_free(signer);
	return CHECK_DONE();
}
