/* ws_frames.h - the client half of the /realtime protocol without a socket:
 * reassembly of one client message from the fragments lws hands over
 * (bounded by limits.ws_max_frame), and parsing one JSON frame into the
 * operation the connection must carry out (docs/protocol.md).
 *
 * realtime.c owns the connection and carries the operation out (broker,
 * verification queue, writes, counters); this module makes no lws call and
 * keeps no global state, so tests/fuzz/fuzz_ws_frames.c drives it alone.
 *
 * Ownership: struct gw_ws_rx owns its buffer (gw_ws_rx_release frees it);
 * struct gw_ws_op holds one reference to the parsed frame, which its token,
 * ctx and id point into (gw_ws_op_clear drops it).
 * Threads: any; one caller per struct at a time.
 */
#ifndef GW_WS_FRAMES_H
#define GW_WS_FRAMES_H

#include <stddef.h>
#include <jansson.h>

/* ---- reassembly ---------------------------------------------------------- */

struct gw_ws_rx {
	char *buf; /* fragments of an unfinished message, or NULL */
	size_t len;
};

enum gw_ws_rx_result {
	GW_WS_RX_MORE, /* fragment kept; the message continues */
	GW_WS_RX_FRAME, /* *data, *dlen: the whole message */
	GW_WS_RX_BINARY, /* a binary frame: refuse (bad_frame, close) */
	GW_WS_RX_TOO_LARGE, /* over max bytes: what was kept is dropped (frame_too_large, close) */
	GW_WS_RX_NOMEM, /* could not keep the fragment: drop the connection */
};

/* Feeds one fragment; `last` is true on the final fragment of a message.
 * On GW_WS_RX_FRAME the message is either `in` itself (an unfragmented
 * message is not copied) or rx's buffer: valid until gw_ws_rx_release,
 * which the caller calls once it has handled the message. */
enum gw_ws_rx_result gw_ws_rx_feed(struct gw_ws_rx *rx, const void *in, size_t len, int binary, int last,
				   size_t max, const char **data, size_t *dlen);
void gw_ws_rx_release(struct gw_ws_rx *rx);

/* ---- one frame -> one operation ------------------------------------------ */

/* The echoed "id" of a ping, as compact JSON: a client picks it, and every
 * byte of it is queued back to the client (id_too_large beyond). */
#define GW_WS_MAX_PING_ID_BYTES 128

enum gw_ws_op_kind {
	GW_WS_OP_ERROR, /* answer {"op":"error",code,message}; close if .close */
	GW_WS_OP_CONNECT, /* verify .token (first frame, or a refresh) */
	GW_WS_OP_SUBSCRIBE, /* .ctx */
	GW_WS_OP_UNSUBSCRIBE, /* .ctx */
	GW_WS_OP_PING, /* answer gw_ws_pong(op) */
	GW_WS_OP_INBOX, /* .frame: limit, before, ctx, id (checked by realtime.c) */
	GW_WS_OP_MARK, /* .frame: ids, read */
	GW_WS_OP_MARK_ALL, /* .frame: ctx */
};

struct gw_ws_op {
	enum gw_ws_op_kind kind;
	json_t *frame; /* the parsed frame (one reference) or NULL */
	const char *token; /* CONNECT: a non-empty string */
	const char *ctx; /* (UN)SUBSCRIBE: a non-empty string (SUBSCRIBE: .frame may hold "since") */
	json_t *id; /* PING: the "id" to echo (borrowed from frame) or NULL */
	const char *code; /* ERROR: the error code for the client */
	int close; /* ERROR: close the connection once it is said */
	int auth_failed; /* ERROR: counts as a failed authentication */
	char message[200]; /* ERROR: the message for the client */
};

/* Parses one text frame. `connected`: a connect frame has been accepted on
 * this connection (before that, anything but connect closes it). */
void gw_ws_frame_parse(const char *data, size_t len, int connected, struct gw_ws_op *op);
/* The answer to a PING: {"op":"pong"} with its "id" echoed (new reference). */
json_t *gw_ws_pong(const struct gw_ws_op *op);
void gw_ws_op_clear(struct gw_ws_op *op);

#endif
