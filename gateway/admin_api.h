/* admin_api.h - the admin listener (admin.listen + admin.token_file): a
 * second lws vhost on the service thread's context, on a loopback port or a
 * unix socket, off unless both options are set (so several gateways on one
 * host never collide on a default port). Every request needs
 * `Authorization: Bearer <token>` (the file's content, surrounding
 * whitespace trimmed; loaded and compared by http_api.c, which also serves
 * GET /admin/status on the public listener when there is no admin
 * listener); otherwise 401 and nothing else. Routes:
 *   GET  /admin/status                 the detailed health (rules, queues,
 *                                      installations, counters)
 *   POST /admin/reload                 as SIGHUP (rules, TLS certificate)
 *   POST /admin/pause, /admin/resume   intake paused / resumed (as SIGUSR1)
 *   GET  /admin/trace/<traceId>        the decisions for one event (trace.h)
 *   GET  /admin/trace?user=ID&limit=N  the latest decisions concerning a user
 * Ownership: the per-request buffers (lws per-session data). Threads:
 * service thread only. */
#ifndef GW_ADMIN_API_H
#define GW_ADMIN_API_H

#include <stddef.h>

struct gw_app;

/* Loads admin.token_file (gw_http_admin_load) and checks admin.listen;
 * 0 (also when both are unset), or -1 with a message. Main thread, before
 * the server runs (it sets only the admin fields of app->http). */
int gw_admin_prepare(struct gw_app *app, char *msg, size_t msglen);

/* Whether both options are set (the listener and the trace ring are on). */
int gw_admin_enabled(const struct gw_app *app);

/* Creates the admin vhost on app->lws and prints "admin listening on
 * http://HOST:PORT" (or "unix:PATH"). Returns 0 or -1 (logged). */
/* What the admin routes may ask of the server: given by the server at
 * start, so this module does not call the server back (no cycle). */
struct gw_admin_control {
	void (*request_reload)(void); /* as SIGHUP */
	void (*set_paused)(struct gw_app *app, int paused, const char *by); /* as SIGUSR1 */
};

int gw_admin_start(struct gw_app *app, const struct gw_admin_control *control);

/* Removes the unix socket file, if one was made. */
void gw_admin_stop(struct gw_app *app);

#endif
