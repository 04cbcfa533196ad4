/* msg.h - an outgoing websocket frame, built once and shared.
 *
 * A worker (batch.c) builds the frame text ({"op":"notification","claims":...,
 * "proof":{...}}) once per recipient, with GW_MSG_HEADROOM bytes in front so
 * lws can prepend the websocket header without copying (LWS_PRE; realtime.c
 * asserts LWS_PRE <= GW_MSG_HEADROOM). Every connection it goes to (several
 * tabs of one user) holds a reference; the last gw_msg_unref frees it.
 *
 * Threads: built on a worker, then handed to the service thread through the
 * outbox; the reference count is atomic, so any thread may drop a reference.
 */
#ifndef GW_MSG_H
#define GW_MSG_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#define GW_MSG_HEADROOM 32

struct gw_msg {
	_Atomic unsigned refs;
	size_t len; /* frame length, excluding headroom */
	uint64_t seq; /* a notification's seq (realtime.c's resume seam); 0 for other frames */
	unsigned char buf[]; /* GW_MSG_HEADROOM + len + 1 (NUL) */
};

static inline struct gw_msg *gw_msg_new(size_t len)
{
	struct gw_msg *m = malloc(sizeof(*m) + GW_MSG_HEADROOM + len + 1);
	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	m->len = len;
	m->seq = 0;
	m->buf[GW_MSG_HEADROOM + len] = '\0';
	return m;
}

static inline unsigned char *gw_msg_payload(struct gw_msg *m)
{
	return m->buf + GW_MSG_HEADROOM;
}

static inline struct gw_msg *gw_msg_ref(struct gw_msg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

static inline void gw_msg_unref(struct gw_msg *m)
{
	if (m && atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}

#endif
