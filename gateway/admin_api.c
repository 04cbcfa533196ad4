/* admin_api.c - see admin_api.h. */
#include "admin_api.h"

#include <ctype.h>
#include <errno.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "http_admin.h"
#include "http_api.h"
#include "log.h"
#include "stats.h"
#include "trace.h"

#define HEADERS_MAX 2048 /* the admin requests' headers: a bearer of up to 1,000 characters */
#define BODY_MAX 4096 /* admin POSTs take no body; a small one is read and ignored */

static struct {
	const struct gw_admin_control *control;
	int enabled;
	char host[256];
	int port;
	char unix_path[108];
	int made_socket;
} adm;

int gw_admin_enabled(const struct gw_app *app)
{
	return app->cfg.admin_listen && app->cfg.admin_token_file;
}

int gw_admin_prepare(struct gw_app *app, char *msg, size_t msglen)
{
	const char *listen = app->cfg.admin_listen, *file = app->cfg.admin_token_file;
	/* the token serves the public GET /admin/status too when there is no
	 * admin listener (http_api.c): loaded here, once, for both */
	if (gw_http_admin_load(&app->http, file, msg, msglen))
		return -1;
	if (!listen)
		return 0;
	if (!file) {
		snprintf(msg, msglen,
			 "admin.listen needs admin.token_file (the admin listener is off without a token)");
		return -1;
	}
	if (listen[0] == '/' || !strncmp(listen, "./", 2)) {
		if (strlen(listen) >= sizeof(adm.unix_path)) {
			snprintf(msg, msglen, "admin.listen: the socket path is longer than %zu bytes",
				 sizeof(adm.unix_path) - 1);
			return -1;
		}
		snprintf(adm.unix_path, sizeof(adm.unix_path), "%s", listen);
	} else {
		const char *colon = strrchr(listen, ':');
		char *end;
		long port = colon ? strtol(colon + 1, &end, 10) : -1;
		if (!colon || colon == listen || !colon[1] || *end || port < 0 || port > 65535 ||
		    (size_t)(colon - listen) >= sizeof(adm.host)) {
			snprintf(msg, msglen,
				 "admin.listen: expected HOST:PORT or a unix socket path, got '%s'", listen);
			return -1;
		}
		const char *h = listen;
		size_t hl = (size_t)(colon - listen);
		if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
			h++, hl -= 2;
		memcpy(adm.host, h, hl);
		adm.host[hl] = '\0';
		adm.port = (int)port;
	}
	adm.enabled = 1;
	return 0;
}

/* ---- requests ---------------------------------------------------------- */

struct admin_pss {
	char path[512];
	int method; /* LWSHUMETH_* */
	int authorized;
	int status;
	char *resp;
	size_t resp_len;
	size_t body_len;
	int answered;
};

static void answer(struct lws *wsi, struct admin_pss *p, int status, char *body)
{
	p->status = status;
	free(p->resp);
	p->resp = body ? body : strdup("{\"error\":\"out_of_memory\"}");
	p->resp_len = p->resp ? strlen(p->resp) : 0;
	p->answered = 1;
	lws_callback_on_writable(wsi);
}

static char *error_body(const char *code, const char *message)
{
	json_t *j = json_pack("{s:s, s:s}", "error", code, "message", message);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return s;
}

static void route(struct gw_app *app, struct lws *wsi, struct admin_pss *p)
{
	if (!p->authorized) {
		gw_stat_inc(GW_STAT_http_admin_refused);
		answer(wsi, p, 401,
		       error_body("unauthorized",
				  "send Authorization: Bearer <the token in admin.token_file>"));
		return;
	}
	const char *path = p->path;
	int get = p->method == LWSHUMETH_GET, post = p->method == LWSHUMETH_POST;
	if (!strcmp(path, "/admin/status")) {
		if (!get)
			answer(wsi, p, 405, error_body("method_not_allowed", "use GET"));
		else
			answer(wsi, p, 200, gw_http_status_json(app));
		return;
	}
	if (!strcmp(path, "/admin/reload") || !strcmp(path, "/admin/pause") ||
	    !strcmp(path, "/admin/resume")) {
		if (!post) {
			answer(wsi, p, 405, error_body("method_not_allowed", "use POST"));
			return;
		}
		if (!strcmp(path, "/admin/reload")) {
			adm.control->request_reload();
			answer(wsi, p, 202,
			       strdup("{\"reload\":\"started\",\"result\":\"GET /admin/status: rules.reloads, rules.lastReloadError\"}"));
			return;
		}
		adm.control->set_paused(app, !strcmp(path, "/admin/pause"), "admin API");
		answer(wsi, p, 200,
		       strdup(app->intake_paused ? "{\"intake\":\"paused\"}" : "{\"intake\":\"open\"}"));
		return;
	}
	if (!strcmp(path, "/admin/trace") || !strncmp(path, "/admin/trace/", 13)) {
		if (!get) {
			answer(wsi, p, 405, error_body("method_not_allowed", "use GET"));
			return;
		}
		if (path[12] == '/') {
			const char *id = path + 13;
			int oom;
			char *body = *id ? gw_trace_by_id(&app->trace, id, &oom) : NULL;
			if (body)
				answer(wsi, p, 200, body);
			else
				answer(wsi, p, oom ? 503 : 404,
				       error_body(
					       "not_found",
					       "no such trace id among the remembered events (admin.trace_events)"));
			return;
		}
		char user[300], lim[40];
		if (lws_get_urlarg_by_name(wsi, "user=", user, sizeof(user)) == NULL || !user[5]) {
			answer(wsi, p, 400,
			       error_body(
				       "bad_request",
				       "use /admin/trace/<traceId> or /admin/trace?user=<accountId>&limit=N"));
			return;
		}
		long limit = 20;
		if (lws_get_urlarg_by_name(wsi, "limit=", lim, sizeof(lim))) {
			char *end;
			limit = strtol(lim + 6, &end, 10);
			if (*end || limit < 1) {
				answer(wsi, p, 400,
				       error_body("bad_request", "limit must be a positive integer"));
				return;
			}
		}
		answer(wsi, p, 200, gw_trace_by_user(&app->trace, user + 5, (size_t)limit));
		return;
	}
	answer(wsi, p, 404, error_body("not_found", "no such admin resource"));
}

static int write_answer(struct lws *wsi, struct admin_pss *p)
{
	size_t hdr = 512;
	unsigned char *buf = malloc(LWS_PRE + hdr + p->resp_len);
	if (!buf)
		return -1;
	unsigned char *start = buf + LWS_PRE, *q = start, *end = start + hdr - 1;
	int rc = -1;
	if (lws_add_http_common_headers(wsi, (unsigned int)p->status, "application/json", p->resp_len, &q,
					end) ||
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
					(const unsigned char *)"no-store", 8, &q, end))
		goto out;
	if (p->status == 401 && lws_add_http_header_by_name(wsi, (const unsigned char *)"www-authenticate:",
							    (const unsigned char *)"Bearer", 6, &q, end))
		goto out;
	if (lws_finalize_http_header(wsi, &q, end))
		goto out;
	memcpy(q, p->resp, p->resp_len);
	q += p->resp_len;
	rc = lws_write(wsi, start, (size_t)(q - start), LWS_WRITE_HTTP_HEADERS) == (int)(q - start) ? 0 : -1;
out:
	free(buf);
	return rc;
}

static int admin_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct admin_pss *p = user;
	struct gw_app *app = lws_get_protocol(wsi) ? (struct gw_app *)lws_get_protocol(wsi)->user : NULL;
	switch (reason) {
	case LWS_CALLBACK_HTTP: {
		free(p->resp);
		memset(p, 0, sizeof(*p));
		char *uri;
		int ulen;
		p->method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
		snprintf(p->path, sizeof(p->path), "%.*s", ulen > 0 ? ulen : 0, ulen > 0 ? uri : "");
		p->path[strcspn(p->path, "?")] = '\0';
		p->authorized = gw_http_admin_authorized(app, wsi);
		/* a POST with a body is answered once the body is in */
		if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
			char cl[24];
			lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH);
			if (strcmp(cl, "0"))
				return 0;
		}
		route(app, wsi, p);
		return 0;
	}
	case LWS_CALLBACK_HTTP_BODY:
		p->body_len += len;
		if (p->body_len > BODY_MAX)
			return -1;
		return 0;
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		if (!p->answered)
			route(app, wsi, p);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		if (!p->answered || !p->resp)
			return 0;
		if (write_answer(wsi, p))
			return -1;
		free(p->resp);
		p->resp = NULL;
		p->answered = 0;
		return lws_http_transaction_completed(wsi) ? -1 : 0;
	case LWS_CALLBACK_CLOSED_HTTP:
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
		if (p) {
			free(p->resp);
			p->resp = NULL;
		}
		return 0;
	default: break;
	}
	return lws_callback_http_dummy(wsi, reason, user, in, len);
}

int gw_admin_start(struct gw_app *app, const struct gw_admin_control *control)
{
	adm.control = control;
	if (!adm.enabled)
		return 0;
	static struct lws_protocols protocols[2];
	protocols[0] = (struct lws_protocols){"admin-api", admin_cb, sizeof(struct admin_pss), 0, 0, app, 0};
	protocols[1] = (struct lws_protocols){NULL, NULL, 0, 0, 0, NULL, 0};
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.vhost_name = "admin";
	info.protocols = protocols;
	info.max_http_header_data = HEADERS_MAX;
	info.timeout_secs = 30;
	static const lws_retry_bo_t no_validity_timers = {0};
	info.retry_and_idle_policy = &no_validity_timers;
	info.options = LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
	if (adm.unix_path[0]) {
		struct stat st;
		/* a socket left by a previous run; anything else is not ours to remove */
		if (lstat(adm.unix_path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(adm.unix_path);
		info.options |= LWS_SERVER_OPTION_UNIX_SOCK;
		info.iface = adm.unix_path;
	} else {
		info.iface = adm.host;
		info.port = adm.port;
		if (!strchr(adm.host, ':'))
			info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	}
	struct lws_vhost *vh = lws_create_vhost(app->lws, &info);
	if (!vh) {
		gw_log(GW_LOG_ERR, "admin: cannot listen on %s", app->cfg.admin_listen);
		fprintf(stderr, "notify-gateway: cannot listen on admin.listen %s\n", app->cfg.admin_listen);
		return -1;
	}
	if (adm.unix_path[0]) {
		adm.made_socket = 1;
		chmod(adm.unix_path, 0660); /* the service's user and group only */
		printf("admin listening on unix:%s\n", adm.unix_path);
	} else {
		int v6 = strchr(adm.host, ':') != NULL;
		printf("admin listening on http://%s%s%s:%d\n", v6 ? "[" : "", adm.host, v6 ? "]" : "",
		       lws_get_vhost_listen_port(vh));
	}
	fflush(stdout);
	return 0;
}

void gw_admin_stop(struct gw_app *app)
{
	(void)app;
	if (adm.made_socket)
		unlink(adm.unix_path);
	adm.made_socket = 0;
}
