/* webroot.c - finding the web demo without a source tree (see webroot.h). */
#include "webroot.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "version.h"

#ifndef GW_INSTALL_WEB_ROOT
#define GW_INSTALL_WEB_ROOT "/usr/local/share/notify-gateway/web-demo"
#endif

static int has_index(const char *dir)
{
	char p[PATH_MAX];
	return snprintf(p, sizeof(p), "%s/index.html", dir) < (int)sizeof(p) && access(p, R_OK) == 0;
}

void gw_webroot_resolve(struct gw_config *cfg)
{
	if (!cfg->web_root || strcmp(cfg->web_root, GW_DEFAULT_WEB_ROOT) != 0)
		return; /* configured: never second-guessed */
	char exe[PATH_MAX] = "", cand[4][PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	int ncand = 0;
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		/* an installed tree first: ${prefix}/bin/notify-gateway + ${prefix}/share/... */
		snprintf(cand[ncand++], sizeof(cand[0]), "%s/../share/notify-gateway/web-demo", exe);
	}
	snprintf(cand[ncand++], sizeof(cand[0]), "%s", GW_DEFAULT_WEB_ROOT); /* a build in the source tree */
	snprintf(cand[ncand++], sizeof(cand[0]), "%s", GW_INSTALL_WEB_ROOT);
	if (n > 0)
		snprintf(cand[ncand++], sizeof(cand[0]), "%s/web-demo", exe);
	for (int i = 0; i < ncand; i++) {
		char real[PATH_MAX];
		if (has_index(cand[i]) && realpath(cand[i], real)) {
			if (strcmp(real, GW_DEFAULT_WEB_ROOT))
				gw_log(GW_LOG_NOTICE, "web demo served from %s", real);
			free(cfg->web_root);
			cfg->web_root = strdup(real);
			return;
		}
	}
	gw_log(GW_LOG_WARN, "no web demo found (%s, %s, %s): / answers 404; set web_root to serve a page",
	       cand[0], GW_DEFAULT_WEB_ROOT, GW_INSTALL_WEB_ROOT);
}
