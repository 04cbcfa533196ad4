/* fuzz_ws_frames.c - libFuzzer target: what a websocket client sends, through
 * gateway/ws_frames.c (no socket): fragment reassembly under the frame size
 * limit, JSON frame parsing and op classification, and the pong answer,
 * with the connection's state (awaiting connect or connected) carried from
 * frame to frame as realtime.c carries it.
 *
 * Input: messages separated by '\n'; within one, byte 0x01 splits it into
 * fragments as lws hands them over; a message starting with 0x02 arrives as
 * a binary frame. Seeds: tests/fuzz/corpus/ws_frames/.
 *
 * Invariants checked (abort on violation): every operation is complete
 * (connect has a non-empty token, (un)subscribe a non-empty ctx, an error a
 * code and a message), an error that closes before connect is what closes
 * the connection, a reassembled message never exceeds the limit, and a pong
 * is a JSON object whose "op" is "pong" echoing an id of at most
 * GW_WS_MAX_PING_ID_BYTES.
 *
 * Ownership: per-input memory is freed before returning.
 * Threads: libFuzzer's single thread.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frames.h"

#define MAX_FRAME 2048 /* small, so that frame_too_large is reachable */

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_ws_frames: invariant: %s\n", what);
	abort();
}

/* One complete message, as realtime.c's process_frame sees it. Returns 1
 * when the connection would be closed. */
static int dispatch(const char *data, size_t len, int *connected)
{
	struct gw_ws_op op;
	int closed = 0;
	gw_ws_frame_parse(data, len, *connected, &op);
	switch (op.kind) {
	case GW_WS_OP_ERROR:
		if (!op.code || !op.code[0] || !op.message[0] || !memchr(op.message, 0, sizeof(op.message)))
			fail("an error without code or message");
		if (op.auth_failed && !op.close)
			fail("a failed authentication that leaves the connection open");
		if (!*connected && !strcmp(op.code, "bad_frame") && !op.close)
			fail("a bad frame before connect that does not close");
		closed = op.close;
		break;
	case GW_WS_OP_CONNECT:
		if (!op.token || !op.token[0])
			fail("connect without a token");
		*connected = 1; /* as if the worker had accepted the token */
		break;
	case GW_WS_OP_SUBSCRIBE:
	case GW_WS_OP_UNSUBSCRIBE:
		if (!*connected)
			fail("a subscription before connect");
		if (!op.ctx || !op.ctx[0])
			fail("(un)subscribe without a ctx");
		break;
	case GW_WS_OP_PING: {
		if (!*connected)
			fail("a ping answered before connect");
		json_t *pong = gw_ws_pong(&op);
		char *text = pong ? json_dumps(pong, JSON_COMPACT) : NULL;
		json_t *back = text ? json_loads(text, 0, NULL) : NULL;
		if (op.id &&
		    json_dumpb(op.id, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) > GW_WS_MAX_PING_ID_BYTES)
			fail("a pong echoing an id over the cap");
		const char *back_op = json_string_value(json_object_get(back, "op"));
		if (pong && (!back_op || strcmp(back_op, "pong")))
			fail("a pong that is not {\"op\":\"pong\",...}");
		json_decref(back);
		free(text);
		json_decref(pong);
		break;
	}
	case GW_WS_OP_INBOX:
	case GW_WS_OP_MARK:
	case GW_WS_OP_MARK_ALL:
		/* fields are checked where the store request is built (realtime.c) */
		if (!*connected)
			fail("a store request before connect");
		if (!op.frame)
			fail("a store request without its frame");
		break;
	}
	gw_ws_op_clear(&op);
	return closed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_ws_rx rx = {0};
	int connected = 0;
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *msg_end = nl ? nl : end;
		int binary = p < msg_end && *p == 0x02;
		if (binary)
			p++;
		enum gw_ws_rx_result r = GW_WS_RX_MORE;
		/* the fragments of one message */
		while (r == GW_WS_RX_MORE) {
			const char *cut = memchr(p, 0x01, (size_t)(msg_end - p));
			const char *frag_end = cut ? cut : msg_end;
			const char *msg = NULL;
			size_t mlen = 0;
			r = gw_ws_rx_feed(&rx, p, (size_t)(frag_end - p), binary, !cut, MAX_FRAME, &msg,
					  &mlen);
			p = cut ? cut + 1 : msg_end;
			if (r == GW_WS_RX_FRAME) {
				if (mlen > MAX_FRAME)
					fail("a message over the limit");
				if (dispatch(msg, mlen, &connected))
					connected = 0; /* closed: the next message starts a new connection */
				gw_ws_rx_release(&rx);
			} else if (r == GW_WS_RX_TOO_LARGE) {
				if (rx.buf || rx.len)
					fail("an oversized message kept");
			} else if (r != GW_WS_RX_MORE) {
				/* binary (refused, closed) or out of memory: a new connection */
				gw_ws_rx_release(&rx);
				connected = 0;
			}
		}
		if (r == GW_WS_RX_TOO_LARGE) {
			gw_ws_rx_release(&rx);
			connected = 0;
		}
		p = nl ? nl + 1 : end;
	}
	gw_ws_rx_release(&rx);
	return 0;
}
