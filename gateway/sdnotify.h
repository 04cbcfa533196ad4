/* sdnotify.h - tells systemd (Type=notify, packaging/notify-gateway.service)
 * where the gateway stands: READY once it listens, RELOADING while a SIGHUP
 * reload runs (READY again when it is over, whatever its outcome), STOPPING
 * once a stop begins, and a STATUS line with each. Without NOTIFY_SOCKET in
 * the environment (not started by systemd) every call does nothing.
 * Threads: any (libsystemd's sd_notify opens its own socket per call). */
#ifndef GW_SDNOTIFY_H
#define GW_SDNOTIFY_H

void gw_sd_ready(const char *status);
void gw_sd_reloading(void);
void gw_sd_stopping(void);

#endif
