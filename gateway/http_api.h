/* http_api.h - the HTTP endpoints served by callback (see http_api.c for the
 * routes). Service thread only. */
#ifndef GW_HTTP_API_H
#define GW_HTTP_API_H

#include <stddef.h>
#include <stdint.h>

struct gw_app;
struct gw_outbox_item;
struct lws;

#include "strmap.h"

struct http_pss;

/* HTTP's own state in the app. Service thread only. */
struct gw_http_state {
	struct gw_strmap pending; /* req id (gw_id_key) -> struct http_pss* waiting for a worker */
	struct http_pss *unwritten; /* answers queued, not yet written (the sweep re-arms them) */
	/* intake limits (issue 10 item 2) */
	struct gw_strmap unverified; /* client address -> requests awaiting their FIT verdict (uintptr_t) */
	struct gw_strmap verified; /* client address -> 1: sent a valid FIT (exempt from that cap) */
	struct gw_strmap suspect; /* client address -> 1: sent an invalid FIT and no valid one (capped) */
	size_t body_bytes; /* Content-Length reserved by bodies being read or verified */
	struct http_pss *reading; /* bodies being read (the whole-body deadline) */
	unsigned char admin_hash[32]; /* SHA-256 of the admin.token_file bearer */
	int admin_enabled; /* admin.token_file configured */
};

int gw_http_state_init(struct gw_http_state *h);
void gw_http_state_free(struct gw_http_state *h); /* the sessions belong to lws */

extern const size_t gw_http_pss_size; /* sizeof(struct http_pss): lws per-session data */

/* The lws callback of protocol "http-api" (server.c binds it). */
int gw_http_callback(struct lws *wsi, int reason, void *user, void *in, size_t len);

/* A worker's answer to an intake request; takes item. Dropped when the
 * client went away meanwhile. */
void gw_http_answer_ready(struct gw_app *app, struct gw_outbox_item *answer);

/* HTTP's part of the 1 s sweep: answers queued for over a second but not
 * written get their writeable callback requested again (counted, logged). */
void gw_http_sweep(struct gw_app *app, int64_t now_ns);

#endif
