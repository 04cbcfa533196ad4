/* store_req.h - one store request of a websocket or of the sweep (a resume
 * page, an inbox page, mark / mark all, unread, a purge) and its result: the
 * value that travels service thread -> workq job -> worker -> outbox item ->
 * service thread (store_jobs.h runs it). Its own module so the queues that
 * carry it (workq.c, outbox.c) can free it without calling store_jobs.c,
 * which pushes to them.
 *
 * Ownership: whoever holds the request frees it with gw_store_req_free (every
 * pointer field is owned). Threads: any, one at a time.
 */
#ifndef GW_STORE_REQ_H
#define GW_STORE_REQ_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* UNREAD: another tab's unread count after a mark (its token covers other
 * contexts than the sender's); ids = the changed ids it covers, read. */
enum gw_store_op { GW_SOP_SINCE, GW_SOP_INBOX, GW_SOP_MARK, GW_SOP_MARK_ALL, GW_SOP_PURGE, GW_SOP_UNREAD };

struct gw_store_req {
	enum gw_store_op op;
	uint64_t conn_id; /* the asking connection (0: the sweep's purge) */
	char *inst, *user; /* owned */
	char **pats; /* the token's ctx patterns (since: the subscription's one), owned */
	size_t npats;
	char *ctx; /* since: the subscription; inbox/mark_all: the filter or NULL; owned */
	uint64_t after; /* since: seq > after */
	uint64_t before; /* inbox: seq < before (0: newest) */
	size_t limit; /* since, inbox: page size */
	char **ids; /* mark: owned */
	size_t nids;
	int read; /* mark: 1 read, 0 unread */
	json_t *id; /* inbox: the client's id, echoed (owned reference) */
	uint64_t unread; /* unread: the result */
	uint64_t gen; /* since: the asking subscription's resume generation (realtime.c) */
	/* results */
	int rc; /* GW_STORE_OK or a negative gw_store_rc */
	struct gw_store_page page;
	struct gw_store_marked marked;
	struct gw_store_purged purged;
};

struct gw_store_req *gw_store_req_new(enum gw_store_op op);
void gw_store_req_free(struct gw_store_req *r);

#endif
