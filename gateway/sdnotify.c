/* sdnotify.c - see sdnotify.h. */
#include "sdnotify.h"

#include <stdio.h>
#include <systemd/sd-daemon.h>

void gw_sd_ready(const char *status)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
	sd_notify(0, msg);
}

void gw_sd_reloading(void)
{
	sd_notify(0, "RELOADING=1\nSTATUS=reloading the rules");
}

void gw_sd_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping: finishing accepted events");
}
