/* dev_api.c - development-mode endpoints for the web demo and local trials.
 *
 *   GET /dev/token?sub=USER&ctx=CTX[&ctx=CTX2...][&ttl=SECONDS]
 *       a subscription token signed with the generated HS256 secret
 *   GET /dev/fit
 *       a Forge Invocation Token signed with the generated development Forge
 *       key, for POSTing sample events to /forge/events
 *
 * Each answers 404 (as if it did not exist) as soon as the corresponding real
 * key is configured (subscriber.key / forge.jwks): anyone who can reach these
 * endpoints can mint tokens, which is only acceptable with throw-away keys.
 * With dev_mode: auto (the default) they also answer 404 unless the gateway
 * listens on a loopback address, and 403 unless the request's Host is a
 * loopback name or address: a web page the developer visits could otherwise
 * point a DNS name at 127.0.0.1 and mint tokens from the browser (DNS
 * rebinding). dev_mode: true lifts both checks on purpose.
 * Signing here runs on the service thread: a development-only exception to
 * "the service thread only does I/O" (one RSA signature per button press).
 *
 * Threads: service thread. Ownership: returned strings are malloc'd.
 */
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "dev_api.h"
#include "keys.h"
#include "log.h"
#include "stats.h"
#include "util.h"

static int query_values(struct lws *wsi, const char *name, char vals[][256], int max)
{
	int count = 0;
	size_t nl = strlen(name);
	char frag[300];
	for (int i = 0; count < max; i++) {
		int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag), WSI_TOKEN_HTTP_URI_ARGS, i);
		if (n < 0)
			break;
		if ((size_t)n > nl && !strncmp(frag, name, nl) && frag[nl] == '=') {
			snprintf(vals[count], 256, "%s", frag + nl + 1);
			count++;
		}
	}
	return count;
}

/* 1: serve; 0: answer 404 (not here); -1: answer 403 (set in *j). */
static int dev_allowed(struct gw_app *app, struct lws *wsi, json_t **j)
{
	if (!strcmp(app->cfg.dev_mode, "true"))
		return 1;
	if (!gw_host_is_loopback(app->cfg.listen_host, strlen(app->cfg.listen_host)))
		return 0;
	char host[256];
	int n = lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST);
	size_t hl = n > 0 ? (size_t)n : 0;
	/* strip the port: "name:port", "[v6]:port" */
	char *close = hl && host[0] == '[' ? strchr(host, ']') : NULL;
	char *colon = close ? strchr(close, ':') : (hl ? strrchr(host, ':') : NULL);
	if (colon && (close || strchr(host, ':') == colon))
		hl = (size_t)(colon - host);
	if (hl && gw_host_is_loopback(host, hl))
		return 1;
	gw_stat_inc(GW_STAT_http_dev_refused);
	*j = json_pack("{s:s, s:s}", "error", "forbidden_host", "message",
		       "development endpoints answer only requests addressed to a loopback name "
		       "(localhost, 127.0.0.1, [::1]); set dev_mode: true to lift this");
	return -1;
}

int gw_dev_answer(struct gw_app *app, struct lws *wsi, const char *path, int *status, char **body)
{
	char msg[256];
	json_t *j = NULL;
	if ((!strcmp(path, "/dev/token") && app->dev_subscriber_key) ||
	    (!strcmp(path, "/dev/fit") && app->dev_forge_key)) {
		int allowed = dev_allowed(app, wsi, &j);
		if (!allowed)
			return -1;
		if (allowed < 0) {
			*status = 403;
			goto out;
		}
	}
	if (!strcmp(path, "/dev/token")) {
		if (!app->dev_subscriber_key)
			return -1;
		char subs[1][256], ctxs[16][256], ttls[1][256];
		if (query_values(wsi, "sub", subs, 1) != 1 || !subs[0][0]) {
			*status = 400;
			j = json_pack("{s:s, s:s}", "error", "bad_request", "message",
				      "give ?sub=USER&ctx=CONTEXT");
			goto out;
		}
		int nctx = query_values(wsi, "ctx", ctxs, 16);
		long ttl = 3600;
		if (query_values(wsi, "ttl", ttls, 1) == 1)
			ttl = strtol(ttls[0], NULL, 10);
		if (ttl < 1 || ttl > 86400)
			ttl = 3600;
		json_t *ctx = json_array();
		for (int i = 0; i < nctx; i++)
			json_array_append_new(ctx, json_string(ctxs[i]));
		time_t now = time(NULL);
		json_t *claims = json_pack("{s:s, s:s, s:o, s:I, s:I}", "installation", GW_DEV_INSTALLATION,
					   "sub", subs[0], "ctx", ctx, "iat", (json_int_t)now, "exp",
					   (json_int_t)(now + ttl));
		char *text = claims ? json_dumps(claims, JSON_COMPACT) : NULL;
		json_decref(claims);
		char *token = text ? gw_subtoken_sign_dev(app->subkey, text, msg, sizeof(msg)) : NULL;
		free(text);
		if (!token) {
			*status = 500;
			j = json_pack("{s:s, s:s}", "error", "internal_error", "message", "cannot sign");
			goto out;
		}
		*status = 200;
		j = json_pack("{s:s, s:I}", "token", token, "exp", (json_int_t)(now + ttl));
		free(token);
		goto out;
	}
	if (!strcmp(path, "/dev/fit")) {
		if (!app->dev_forge_key)
			return -1;
		time_t now = time(NULL);
		char jti[33];
		gw_random_hex(jti, 16);
		json_t *claims = json_pack(
			"{s:{s:s, s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s}}, s:s, s:s, s:I, s:I, s:I, s:s}",
			"app", "id", app->forge_app_id, "installationId", GW_DEV_INSTALLATION, "appVersion",
			"1.0.0", "environment", "type", "DEVELOPMENT", "id",
			"ari:cloud:ecosystem::environment/dev", "module", "type", "core:endpoint", "key",
			"notify-gateway-demo", "iss", "forge/invocation-token", "aud", app->forge_app_id,
			"iat", (json_int_t)now, "nbf", (json_int_t)now, "exp", (json_int_t)(now + 25), "jti",
			jti);
		char *text = claims ? json_dumps(claims, JSON_COMPACT) : NULL;
		json_decref(claims);
		char *fit = text ? gw_fit_sign_dev(app->dev_forge_key_path, GW_DEV_FORGE_KID, text, msg,
						   sizeof(msg))
				 : NULL;
		free(text);
		if (!fit) {
			*status = 500;
			j = json_pack("{s:s, s:s}", "error", "internal_error", "message", "cannot sign");
			goto out;
		}
		*status = 200;
		j = json_pack("{s:s, s:I}", "token", fit, "exp", (json_int_t)(now + 25));
		free(fit);
		goto out;
	}
	return -1;
out:
	*body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return 0;
}
