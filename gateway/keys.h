/* keys.h - loading (and in development mode generating) the gateway's keys.
 * See keys.c for the files in the state directory. Main thread only. */
#ifndef GW_KEYS_H
#define GW_KEYS_H

#include <stdio.h>

struct gw_app;

/* Development mode: the app, installation and FIT key id that the generated
 * keys stand for (docs/configuration.md). */
#define GW_DEV_APP_ID "ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000"
#define GW_DEV_INSTALLATION "ari:cloud:ecosystem::installation/00000000-0000-4000-8000-000000000001"
#define GW_DEV_FORGE_KID "notify-gateway-dev-forge"

/* Returns 0, or -1 after printing why to err. */
int gw_keys_load(struct gw_app *app, FILE *err);
void gw_keys_free(struct gw_app *app);

#endif
