/* static_guard.h - keeps static file serving (the lws file mount at "/")
 * inside web_root: a file whose real path (symlinks resolved) is not under
 * the web root's real path is not opened, and the request gets the 404 of a
 * missing file. Service thread only (lws opens files there).
 */
#ifndef GW_STATIC_GUARD_H
#define GW_STATIC_GUARD_H

struct lws_context;

/* Wraps the context's file open; call once after lws_create_context.
 * Returns 0, or -1 when web_root has no real path (then every static file
 * is refused, and the caller says so). */
int gw_static_guard_install(struct lws_context *ctx, const char *web_root);
/* Frees what install kept. */
void gw_static_guard_free(void);

#endif
