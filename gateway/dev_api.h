/* dev_api.h - development-mode endpoints (see dev_api.c). Service thread. */
#ifndef GW_DEV_API_H
#define GW_DEV_API_H

struct gw_app;
struct lws;

/* Answers GET path under /dev/. Returns 0 with *status and *body (malloc'd
 * JSON) set, or -1 when the endpoint does not exist in this configuration
 * (the caller answers 404). */
int gw_dev_answer(struct gw_app *app, struct lws *wsi, const char *path, int *status, char **body);

#endif
