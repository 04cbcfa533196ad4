/* cors.c - origin matching for cors.allowed_origins (see cors.h).
 *
 * Why a list and not "*": the token endpoint answers with a credential (a
 * subscription token); only pages the operator trusts to run the app's
 * script may read it. Forge serves Custom UI from https://{*}.cdn.prod.atlassian-dev.net,
 * the default.
 */
#include "cors.h"

#include <string.h>
#include <strings.h>

static int entry_matches(const char *e, size_t n, const char *origin)
{
	size_t ol = strlen(origin);
	const char *star = memchr(e, '*', n);
	if (!star)
		return n == ol && !strncasecmp(e, origin, n);
	/* scheme://{*}.domain: the star stands for one or more whole labels. */
	size_t pre = (size_t)(star - e); /* "https://" */
	if (pre + 2 > n || star[1] != '.' || memchr(star + 1, '*', n - pre - 1))
		return 0;
	const char *suffix = star + 1; /* ".domain" */
	size_t sl = n - pre - 1;
	if (ol <= pre + sl || strncasecmp(origin, e, pre) != 0)
		return 0;
	const char *host = origin + pre;
	size_t hl = ol - pre;
	if (hl <= sl || strncasecmp(host + hl - sl, suffix, sl) != 0)
		return 0;
	/* the labels before the suffix: letters, digits, '-' and '.', no port */
	for (size_t i = 0; i < hl - sl; i++) {
		char c = host[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return 0;
	}
	return host[0] != '.' && host[hl - sl - 1] != '.';
}

int gw_cors_origin_listed(const char *list, const char *origin)
{
	if (!list || !origin || !*origin || strchr(origin, '\n'))
		return 0;
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, "\n");
		if (n && entry_matches(p, n, origin))
			return 1;
		p += n;
		if (*p)
			p++;
	}
	return 0;
}

int gw_cors_same_origin(const char *origin, const char *host)
{
	if (!origin || !host || !*host)
		return 0;
	const char *h = strstr(origin, "://");
	return h && !strcasecmp(h + 3, host);
}

int gw_cors_loopback(const char *origin)
{
	if (!origin)
		return 0;
	const char *h = !strncmp(origin, "http://", 7)	  ? origin + 7
			: !strncmp(origin, "https://", 8) ? origin + 8
							  : NULL;
	if (!h)
		return 0;
	size_t hl = strcspn(h, ":");
	if (h[0] == '[')
		hl = strcspn(h, "]") + 1;
	const char *port = h + hl;
	if (*port && *port != ':')
		return 0;
	if (*port == ':') {
		if (!port[1])
			return 0;
		for (const char *q = port + 1; *q; q++)
			if (*q < '0' || *q > '9')
				return 0;
	}
	if ((hl == 9 && !strncasecmp(h, "localhost", 9)) || (hl == 5 && !strncmp(h, "[::1]", 5)))
		return 1;
	if (hl < 4 || strncmp(h, "127.", 4) != 0)
		return 0;
	for (size_t i = 4; i < hl; i++)
		if (!((h[i] >= '0' && h[i] <= '9') || h[i] == '.'))
			return 0;
	return 1;
}

/* ---- with libwebsockets ---------------------------------------------------- */

#include <libwebsockets.h>
#include <stdlib.h>

#include "app.h"

char *gw_cors_request_origin(struct lws *wsi)
{
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
	if (n <= 0 || n > 512)
		return n > 512 ? strdup("") : NULL; /* an absurd Origin matches nothing */
	char *o = malloc((size_t)n + 1);
	if (o && lws_hdr_copy(wsi, o, n + 1, WSI_TOKEN_ORIGIN) != n) {
		free(o);
		return strdup("");
	}
	return o;
}

int gw_cors_ws_origin_allowed(const struct gw_app *app, struct lws *wsi)
{
	char *origin = gw_cors_request_origin(wsi);
	if (!origin)
		return 1;
	char host[256] = "";
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HOST) < (int)sizeof(host))
		lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST);
	int ok = gw_cors_same_origin(origin, host) ||
		 gw_cors_origin_listed(app->cfg.cors_allowed_origins, origin) ||
		 (app->dev_subscriber_key && gw_cors_loopback(origin));
	free(origin);
	return ok;
}

static int add(struct lws *wsi, const char *name, const char *value, unsigned char **p, unsigned char *end)
{
	return lws_add_http_header_by_name(wsi, (const unsigned char *)name, (const unsigned char *)value,
					   (int)strlen(value), p, end);
}

int gw_cors_add_headers(struct lws *wsi, const char *origin, int preflight, unsigned char **p,
			unsigned char *end)
{
	if (add(wsi, "access-control-allow-origin:", origin, p, end))
		return -1;
	if (strcmp(origin, "*") && add(wsi, "vary:", "Origin", p, end))
		return -1;
	if (!preflight)
		return 0;
	/* Echo the requested headers when they are plain header names: the
	 * bridge may add its own (tracing) headers; a token is no header. */
	char req[512] = "authorization, content-type";
	int n = lws_hdr_custom_length(wsi, "access-control-request-headers:", 31);
	if (n > 0 && n < (int)sizeof(req) &&
	    lws_hdr_custom_copy(wsi, req, sizeof(req), "access-control-request-headers:", 31) == n) {
		for (int i = 0; i < n; i++) {
			char c = req[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			      c == '-' || c == '_' || c == ',' || c == ' '))
				snprintf(req, sizeof(req), "authorization, content-type");
		}
	}
	return add(wsi, "access-control-allow-methods:", "POST, OPTIONS", p, end) ||
	       add(wsi, "access-control-allow-headers:", req, p, end) ||
	       add(wsi, "access-control-max-age:", "600", p, end);
}
