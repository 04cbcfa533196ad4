/* outbox.h - results travelling from the workers back to the service thread.
 *
 * Workers push HTTP answers (for requests they verified) and delivery batches
 * (signed notifications of one accepted event). The service thread takes the
 * whole list at once in LWS_CALLBACK_EVENT_WAIT_CANCELLED. The wake callback
 * (lws_cancel_service) runs only when the list goes from empty to non-empty,
 * after the lock is released: lws coalesces wake-ups, so the drain takes
 * everything anyway (h2o's multithread queue does the same).
 *
 * Ownership: a pushed item belongs to the outbox until taken, then to the
 * service thread, which frees it with gw_outbox_item_free. Threads: push from
 * any thread; take from the service thread.
 */
#ifndef GW_OUTBOX_H
#define GW_OUTBOX_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "msg.h"

struct gw_store_req;

struct gw_delivery {
	char *installation; /* owned */
	char *user; /* owned */
	char *ctx; /* owned */
	uint64_t seq;
	struct gw_msg *msg; /* one reference */
	/* Filled by batch.c for the store's record, freed once recorded. */
	char *claims; /* the claims as signed (JSON text), owned */
	size_t claims_len;
	char nid[33]; /* n.id */
	int64_t iat, exp;
};

enum gw_outbox_kind { GW_OUT_ANSWER, GW_OUT_BATCH, GW_OUT_AUTH, GW_OUT_STORE };

struct gw_outbox_item {
	struct gw_outbox_item *next;
	enum gw_outbox_kind kind;
	/* GW_OUT_ANSWER: req_id is the HTTP request; GW_OUT_AUTH: the connection,
	 * status a enum gw_token_err, body the reason, claims the verified claims */
	uint64_t req_id;
	int status;
	json_t *claims; /* owned (GW_OUT_AUTH) */
	int retry_after; /* seconds; 0 = no header */
	char *body; /* JSON text, owned */
	size_t body_len;
	/* GW_OUT_BATCH: every accepted event yields exactly one batch, possibly
	 * empty, so the service thread can release batches in intake order. */
	uint64_t intake_no;
	int64_t received_ns;
	size_t count;
	struct gw_delivery *items; /* owned array */
	/* GW_OUT_STORE: a store request with its result (store_req.h), owned */
	struct gw_store_req *store_req;
};

void gw_outbox_item_free(struct gw_outbox_item *item);

/* A new, zeroed batch item, never NULL: every accepted event must yield its
 * batch, or the service thread holds back every later one forever. If the
 * allocation fails, *spare (allocated ahead by the caller's thread) is used;
 * if there is none, the allocation is retried after 1, 2, 4 ... 100 ms until
 * it succeeds (the events behind this one cannot be released meanwhile
 * anyway). Either way GW_STAT_batch_alloc_fallbacks counts it. After a
 * successful allocation an empty *spare is refilled. The caller frees
 * *spare when its thread ends. */
struct gw_outbox_item *gw_outbox_batch_new(struct gw_outbox_item **spare);
/* The allocator behind gw_outbox_batch_new (calloc); unit tests replace it
 * to make allocations fail. */
extern void *(*gw_outbox_batch_calloc)(size_t n, size_t size);

typedef void (*gw_outbox_wake_fn)(void *ud);

struct gw_outbox {
	pthread_mutex_t lock;
	struct gw_outbox_item *head, *tail;
	gw_outbox_wake_fn wake;
	void *wake_ud;
};

int gw_outbox_init(struct gw_outbox *o, gw_outbox_wake_fn wake, void *wake_ud);
void gw_outbox_destroy(struct gw_outbox *o); /* frees items not taken */

/* Takes ownership of item. Held back while this thread holds o (below). */
void gw_outbox_push_take(struct gw_outbox *o, struct gw_outbox_item *item);

/* Holding: this thread's pushes to o are kept on a thread-local list until
 * gw_outbox_flush, which appends them all under one lock with at most one
 * wake-up. A worker holds while it answers a request and then signs that
 * request's own event (workq.h): the 202 and the frames reach the service
 * thread in one wake-up instead of two. Flush before anything that may
 * block. Threads: the holding thread only. */
void gw_outbox_hold(struct gw_outbox *o);
void gw_outbox_flush(struct gw_outbox *o);

/* Returns the whole list (oldest first) and leaves the outbox empty. */
struct gw_outbox_item *gw_outbox_take_all(struct gw_outbox *o);

int gw_outbox_is_empty(struct gw_outbox *o);

#endif
