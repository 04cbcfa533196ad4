/* http_admin.h - the admin bearer token and the detailed status, for the
 * public GET /admin/status (http_api.c) and the admin listener
 * (admin_api.c). Ownership and threads: see each function.
 */
#ifndef GW_HTTP_ADMIN_H
#define GW_HTTP_ADMIN_H

#include <stddef.h>

struct gw_app;
struct gw_http_state;
struct lws;

/* Reads the admin bearer token from path (admin.token_file, surrounding
 * whitespace trimmed; NULL: the admin routes answer 403 admin_disabled).
 * Keeps only its SHA-256, compared in constant time. Returns 0, or -1 with a
 * message on err. Main thread, before the server runs (admin_api.c). */
int gw_http_admin_load(struct gw_http_state *h, const char *path, char *err, size_t errlen);
/* Whether the request's Authorization bearer is the admin token (service
 * thread; the public /admin/status and the admin listener, admin_api.c). */
int gw_http_admin_authorized(struct gw_app *app, struct lws *wsi);

/* The detailed health (rules, queues, installations, counters) as JSON text,
 * malloc'd: GET /admin/status (admin_api.c). Service thread. */
char *gw_http_status_json(struct gw_app *app);

#endif
