/* server.h - the lws context, the service loop, the 1 s sweep, signals and
 * the ordered stop (see server.c). The service thread is the thread that
 * calls gw_server_run (main). */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <stdint.h>

struct gw_app;
struct gw_outbox_item;

/* The server's own state in the app: batches go to the broker strictly in
 * intake order. Service thread only. */
struct gw_release {
	uint64_t next; /* next intake number to hand to the broker (first: 1) */
	struct gw_outbox_item *held; /* batches that arrived before their turn, sorted */
};

/* Listens, starts the workers, serves until SIGTERM/SIGINT, then stops in
 * order. Returns the process exit code. */
int gw_server_run(struct gw_app *app);

/* The admin API's SIGHUP and SIGUSR1 (service thread): a reload as after
 * SIGHUP; intake paused (1) or resumed (0), logged with who asked. */
void gw_server_request_reload(void);
void gw_server_set_paused(struct gw_app *app, int paused, const char *by);

#endif
