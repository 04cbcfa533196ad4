/* cors.h - which browser origins may call the gateway across origins:
 * cors.allowed_origins (exact origins, or https://{*}.domain patterns) for the
 * subscription-token endpoint and the websocket's Origin check, and loopback
 * origins for the development endpoints.
 *
 * Threads: any (reads the immutable configuration). Ownership: none.
 */
#ifndef GW_CORS_H
#define GW_CORS_H

#include <stddef.h>

struct gw_config;

/* Whether origin (as a browser sends it: scheme://host[:port]) is in the
 * list (one entry per line, config.c's list format). Exact entries compare
 * case-insensitively; "https://{*}.example.com" matches https://a.example.com
 * and https://a.b.example.com, never https://example.com, another scheme, or
 * an explicit port. */
int gw_cors_origin_listed(const char *list, const char *origin);

/* The origin's host is the request's Host (same origin, any scheme). */
int gw_cors_same_origin(const char *origin, const char *host);

/* http(s)://127.x.x.x, localhost or [::1], any port: development pages. */
int gw_cors_loopback(const char *origin);

#endif

/* ---- service thread, with the request's headers (libwebsockets) ---------- */
struct gw_app;
struct lws;

/* The request's Origin header (malloc'd), or NULL when it has none. */
char *gw_cors_request_origin(struct lws *wsi);
/* Whether a websocket upgrade's Origin may connect: none (not a browser),
 * same origin, listed in cors.allowed_origins, or loopback in development
 * mode. */
int gw_cors_ws_origin_allowed(const struct gw_app *app, struct lws *wsi);
/* Adds Access-Control-Allow-Origin: origin (and Vary: Origin unless "*"); for
 * a preflight also the allowed methods, the requested headers and Max-Age.
 * Returns 0 or -1 (no room). */
int gw_cors_add_headers(struct lws *wsi, const char *origin, int preflight, unsigned char **p,
			unsigned char *end);
