/* ws_frames.c - socket-free reassembly and parsing of client websocket
 * frames (see ws_frames.h). Moved out of realtime.c unchanged in behaviour so
 * that the fuzzer reaches it without lws. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frames.h"

enum gw_ws_rx_result gw_ws_rx_feed(struct gw_ws_rx *rx, const void *in, size_t len, int binary, int last,
				   size_t max, const char **data, size_t *dlen)
{
	if (binary)
		return GW_WS_RX_BINARY;
	if (rx->len + len > max) {
		gw_ws_rx_release(rx);
		return GW_WS_RX_TOO_LARGE;
	}
	if (last && !rx->buf) {
		*data = in;
		*dlen = len;
		return GW_WS_RX_FRAME;
	}
	char *n = realloc(rx->buf, rx->len + len + 1);
	if (!n)
		return GW_WS_RX_NOMEM;
	rx->buf = n;
	if (len)
		memcpy(rx->buf + rx->len, in, len);
	rx->len += len;
	if (!last)
		return GW_WS_RX_MORE;
	*data = rx->buf;
	*dlen = rx->len;
	return GW_WS_RX_FRAME;
}

void gw_ws_rx_release(struct gw_ws_rx *rx)
{
	free(rx->buf);
	rx->buf = NULL;
	rx->len = 0;
}

static void op_error(struct gw_ws_op *op, const char *code, int close, int auth_failed, const char *message)
{
	op->kind = GW_WS_OP_ERROR;
	op->code = code;
	op->close = close;
	op->auth_failed = auth_failed;
	snprintf(op->message, sizeof(op->message), "%s", message);
}

void gw_ws_frame_parse(const char *data, size_t len, int connected, struct gw_ws_op *op)
{
	memset(op, 0, sizeof(*op));
	json_error_t jerr;
	json_t *frame = json_loadb(data, len, 0, &jerr);
	const char *op_name = frame ? json_string_value(json_object_get(frame, "op")) : NULL;
	op->frame = frame;
	if (!frame || !json_is_object(frame) || !op_name) {
		op_error(op, "bad_frame", !connected, 0, "a frame must be an object with a string \"op\"");
		if (!frame)
			snprintf(op->message, sizeof(op->message), "invalid JSON at column %d: %s",
				 jerr.column, jerr.text);
		return;
	}
	if (!strcmp(op_name, "connect")) {
		json_t *tok = json_object_get(frame, "token");
		if (!json_is_string(tok) || !json_string_length(tok)) {
			op_error(op, "token_missing", 1, 1, "\"token\" must be the subscription token");
			return;
		}
		op->kind = GW_WS_OP_CONNECT;
		op->token = json_string_value(tok);
	} else if (!connected) {
		op_error(op, "not_connected", 1, 1,
			 "the first frame must be {\"op\":\"connect\",\"token\":...}");
	} else if (!strcmp(op_name, "subscribe") || !strcmp(op_name, "unsubscribe")) {
		json_t *jctx = json_object_get(frame, "ctx");
		if (!json_is_string(jctx) || !json_string_length(jctx)) {
			op_error(op, "bad_frame", 0, 0, "\"ctx\" must be a non-empty string");
			return;
		}
		op->kind = op_name[0] == 's' ? GW_WS_OP_SUBSCRIBE : GW_WS_OP_UNSUBSCRIBE;
		op->ctx = json_string_value(jctx);
	} else if (!strcmp(op_name, "ping")) {
		json_t *id = json_object_get(frame, "id");
		if (id && json_dumpb(id, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY) > GW_WS_MAX_PING_ID_BYTES) {
			op_error(op, "id_too_large", 0, 0,
				 "a ping's \"id\" must be at most 128 bytes of JSON");
			return;
		}
		op->kind = GW_WS_OP_PING;
		op->id = id;
	} else if (!strcmp(op_name, "inbox")) {
		op->kind = GW_WS_OP_INBOX;
	} else if (!strcmp(op_name, "mark")) {
		op->kind = GW_WS_OP_MARK;
	} else if (!strcmp(op_name, "mark_all")) {
		op->kind = GW_WS_OP_MARK_ALL;
	} else {
		op_error(op, "unknown_op", 0, 0,
			 "op must be connect, subscribe, unsubscribe, inbox, mark, mark_all or ping");
	}
}

json_t *gw_ws_pong(const struct gw_ws_op *op)
{
	json_t *pong = json_pack("{s:s}", "op", "pong");
	if (op->id && pong)
		json_object_set(pong, "id", op->id);
	return pong;
}

void gw_ws_op_clear(struct gw_ws_op *op)
{
	json_decref(op->frame);
	memset(op, 0, sizeof(*op));
}
