/* webroot.c - see webroot.h. */
#include "webroot.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef GW_WEB_ROOT_FROM_BIN
#define GW_WEB_ROOT_FROM_BIN "../share/notify-gateway/web-demo"
#endif
#ifndef GW_SOURCE_WEB_ROOT
#define GW_SOURCE_WEB_ROOT "web-demo"
#endif

char *gw_default_web_root(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			char candidate[PATH_MAX + 64], index[PATH_MAX + 80];
			int c = snprintf(candidate, sizeof(candidate), "%s/%s", exe, GW_WEB_ROOT_FROM_BIN);
			snprintf(index, sizeof(index), "%s/index.html", candidate);
			if (c > 0 && (size_t)c < sizeof(candidate) && access(index, R_OK) == 0) {
				char *real = realpath(candidate, NULL);
				return real ? real : strdup(candidate);
			}
		}
	}
	return strdup(GW_SOURCE_WEB_ROOT);
}
