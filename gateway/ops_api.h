/* ops_api.h - the routes a monitoring system and a load balancer use, on the
 * public listener: GET /metrics (Prometheus text, metrics.h), GET /livez (the
 * process and its event loop answer) and GET /readyz (every readiness check
 * passes: 200, else 503 naming the first that fails). None of them reveals
 * an installation, a user, a context or a path. Service thread only. */
#ifndef GW_OPS_API_H
#define GW_OPS_API_H

struct gw_app;

/* Answers path if it is one of the routes above: fills status, a malloc'd
 * body and its content type, returns 0. Returns -1 for any other path. */
int gw_ops_answer(struct gw_app *app, const char *path, int *status, char **body, const char **content_type);

/* Readiness as one line of JSON ({"status":"ready","store":S} or {"status":
 * "not_ready","check":NAME,"reason":TEXT,"store":S}; S is the store round
 * trip's last result: {"ok":BOOL,"checkedMsAgo":N,"okMsAgo":N or null}),
 * and whether it is ready. */
char *gw_ops_readiness(struct gw_app *app, int *ready);

#endif
