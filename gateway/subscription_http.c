/* subscription_http.c - the service-thread side of POST /forge/subscription:
 * cheap header checks before any body is read or any token verified (what is
 * reachable without authentication costs a fixed, small amount), and the
 * CORS preflight that requestRemote's cross-origin call needs.
 *
 * Threads: service thread. Ownership: strings put into struct gw_sub_http
 * pass to the caller (http_api.c's per-request state).
 */
#include <ctype.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app.h"
#include "cors.h"
#include "stats.h"
#include "subscription.h"

static void fail(struct gw_sub_http *out, int status, const char *code, const char *message)
{
	gw_stat_inc(GW_STAT_subscription_refused);
	out->status = status;
	out->code = code;
	out->message = message;
}

/* ws(s)://<Host>/realtime, or subscriber.websocket_url. */
static char *websocket_url(struct gw_app *app, struct lws *wsi)
{
	if (app->cfg.subscriber_websocket_url)
		return strdup(app->cfg.subscriber_websocket_url);
	char host[256] = "", proto[16] = "";
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_HOST);
	if (n > 0 && n < (int)sizeof(host))
		lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST);
	for (char *c = host; *c; c++)
		if (!isalnum((unsigned char)*c) && !strchr(".-:[]", *c)) {
			host[0] = '\0';
			break;
		}
	if (!host[0])
		snprintf(host, sizeof(host), "%s:%d", app->cfg.listen_host, app->listen_port);
	/* Behind a TLS-terminating proxy the page must use wss:. */
	int tls = lws_hdr_custom_copy(wsi, proto, sizeof(proto), "x-forwarded-proto:", 18) > 0 &&
		  !strcasecmp(proto, "https");
	char *url = NULL;
	if (asprintf(&url, "%s://%s/realtime", tls ? "wss" : "ws", host) < 0)
		return NULL;
	return url;
}

void gw_subscription_begin(struct gw_app *app, struct lws *wsi, int method, struct gw_sub_http *out)
{
	memset(out, 0, sizeof(*out));
	char *origin = gw_cors_request_origin(wsi);
	if (origin) {
		char host[256] = "";
		if (lws_hdr_total_length(wsi, WSI_TOKEN_HOST) < (int)sizeof(host))
			lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST);
		if (gw_cors_origin_listed(app->cfg.cors_allowed_origins, origin)) {
			out->cors_origin = origin;
		} else if (!gw_cors_same_origin(origin, host)) {
			free(origin);
			gw_stat_inc(GW_STAT_cors_refused);
			fail(out, 403, "origin_not_allowed",
			     "this page's origin is not in cors.allowed_origins (docs/configuration.md)");
			return;
		} else {
			free(origin);
		}
	}
	if (method == LWSHUMETH_OPTIONS) {
		if (!out->cors_origin) {
			fail(out, 403, "origin_not_allowed",
			     "a CORS preflight needs an Origin from cors.allowed_origins");
			return;
		}
		gw_stat_inc(GW_STAT_cors_preflights);
		out->status = 204;
		out->preflight = 1;
		return;
	}
	if (method != LWSHUMETH_POST) {
		out->allow = "POST, OPTIONS";
		fail(out, 405, "method_not_allowed", "use POST");
		return;
	}
	char buf[64];
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0 &&
	    lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
		char *end;
		long long cl = strtoll(buf, &end, 10);
		if (cl < 0 || *end || cl > GW_SUBSCRIPTION_MAX_BODY) {
			fail(out, 413, "payload_too_large",
			     "the body is larger than 4096 bytes (it is not used: everything comes from the FIT)");
			return;
		}
		out->body_len = (long)cl;
	}
	if (out->body_len > 0) {
		int ctlen = lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_CONTENT_TYPE);
		size_t n = ctlen > 0 ? strcspn(buf, "; ") : 0;
		if (!(n == 16 && !strncasecmp(buf, "application/json", 16)) &&
		    !(n == 10 && !strncasecmp(buf, "text/plain", 10))) {
			fail(out, 415, "unsupported_media_type", "send no body, or a JSON body");
			return;
		}
	}
	int alen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	char *auth = alen > 0 ? malloc((size_t)alen + 1) : NULL;
	if (auth && lws_hdr_copy(wsi, auth, alen + 1, WSI_TOKEN_HTTP_AUTHORIZATION) != alen) {
		free(auth);
		auth = NULL;
	}
	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !auth[7]) {
		free(auth);
		fail(out, 401, "token_missing", "missing Authorization: Bearer <Forge Invocation Token>");
		return;
	}
	size_t skip = 7;
	while (auth[skip] == ' ')
		skip++;
	out->token = strdup(auth + skip);
	free(auth);
	out->ws_url = websocket_url(app, wsi);
	if (!out->token || !out->ws_url) {
		free(out->token);
		free(out->ws_url);
		out->token = out->ws_url = NULL;
		fail(out, 503, "out_of_memory", "try again later");
	}
}
