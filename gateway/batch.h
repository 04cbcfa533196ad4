/* batch.h - turning a worker's pass of evaluated events into signed frames:
 * per-recipient claims, one Merkle tree over them, one ES256 signature over
 * its root, and for every recipient a frame carrying its claims, the batch
 * JWS and its inclusion proof (docs/protocol.md, "notification").
 *
 * A pass is a run of consecutive events a worker took from the events lane
 * (sign_batch_events); each event ends as exactly one GW_OUT_BATCH item in the
 * outbox, possibly empty, so the service thread can release batches in intake
 * order.
 *
 * Ownership: gw_batch_sign fills items[].msg and items[].ctx, which the
 * caller owns afterwards; gw_batch_deliver hands every event's items and
 * batch to the outbox. Threads: worker threads; pure but for RAND_bytes and
 * the shared read-only signer.
 */
#ifndef GW_BATCH_H
#define GW_BATCH_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "gw/merkle.h"
#include "msg.h"
#include "outbox.h"
#include "workq.h"

struct gw_app;
struct gw_signer;

/* One event of a pass, between its rules (and seqs) and the pass's signature. */
struct gw_event_work {
	struct gw_job *job;
	json_t *notes; /* rule results, owned */
	size_t nnotes;
	struct gw_delivery
		*items; /* one per (note, recipient) in note order; user NULL: no seq, no delivery */
	size_t nitems;
	struct gw_outbox_item *batch; /* never NULL (gw_outbox_batch_new) */
	int numbered; /* took seqs and was told to the recorder (gw_recorder_numbered) */
};

/* What signing needs from the configuration. */
struct gw_batch_signing {
	const struct gw_signer *signer;
	const char *issuer; /* iss of claims and batch */
	long long default_ttl; /* seconds, when a note has no positive ttl */
};

/* Builds every recipient's claims (key order of docs/protocol.md), one
 * Merkle tree over them, one signature, and every frame (items[].msg, .ctx).
 * Returns the number of leaves signed; on failure none is (the caller counts
 * and logs what has no msg). */
size_t gw_batch_sign(const struct gw_batch_signing *how, struct gw_event_work *works, size_t nworks,
		     time_t now);

/* Signs the pass (now = time(NULL)) and hands it on to be recorded in the
 * store and delivered (gw_batch_finish, on the recorder thread). Takes the
 * works' jobs (freed once delivered). */
void gw_batch_deliver(struct gw_app *app, struct gw_event_work *works, size_t nworks);

/* Records the works' notifications and done marks in one store transaction
 * (before any delivery: exactly once after a crash), drops what could not be
 * signed or recorded (counted, logged), pushes every event's batch to the
 * outbox, and frees the jobs. */
void gw_batch_finish(struct gw_app *app, struct gw_event_work *works, size_t nworks);

/* The frame of one leaf: claims, the shared batch JWS, its inclusion proof.
 * NULL on out of memory or an index outside the tree. */
struct gw_msg *gw_batch_leaf_frame(const char *claims, size_t claims_len, const char *batch_jws,
				   size_t batch_len, const struct gw_merkle *tree, size_t index);

/* A growable text buffer; failed sticks after the first allocation failure. */
struct gw_sbuf {
	char *p;
	size_t len, cap;
	int failed;
};

void gw_sbuf_put(struct gw_sbuf *b, const char *s, size_t n);
void gw_sbuf_puts(struct gw_sbuf *b, const char *s);

/* Appends s (UTF-8 that jansson already validated) as a JSON string literal.
 * Same escapes as jansson's encoder with default flags, except the case of
 * the hex digits in \u00XX: jansson writes them upper case, this lower case.
 * Both decode to the same string, and nothing compares claims text with
 * jansson's output (the signature covers these bytes as written). */
void gw_sbuf_json_str(struct gw_sbuf *b, const char *s);
/* Appends any JSON value as jansson's compact encoder writes it (keys in
 * insertion order, gw_sbuf_json_str's escapes; reals through jansson
 * itself), without building a copy: what the claim n and the journal's
 * payload are written with (issue 15). */
void gw_sbuf_json_value(struct gw_sbuf *b, json_t *v);

#endif
