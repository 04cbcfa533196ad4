/* keys.h - loading (and in development mode generating) the gateway's keys.
 * See keys.c for the files in the state directory. Main thread only. */
#ifndef GW_KEYS_H
#define GW_KEYS_H

#include <stdio.h>

struct gw_app;

/* Returns 0, or -1 after printing why to err. */
int gw_keys_load(struct gw_app *app, FILE *err);
void gw_keys_free(struct gw_app *app);

#endif
