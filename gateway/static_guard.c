/* static_guard.c - see static_guard.h.
 *
 * lws 4.1.6 rejects ".." in URLs but opens whatever the joined path names,
 * symlinks included, so a link inside web_root (a deploy script, a mounted
 * volume) could publish any file the process can read. lws has no option
 * against that; it opens every served file through the context's file
 * operations, so the open is wrapped: realpath(3) of the file must be the
 * root's real path or below it. The root is resolved once at start; a file
 * added under it later is still checked on every open (one realpath per
 * static request: the demo page's few files).
 *
 * Ownership: the resolved root (static, freed by gw_static_guard_free).
 */
#include "static_guard.h"

#include <libwebsockets.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "stats.h"

static char *root_real;
static size_t root_len;
static lws_fop_fd_t (*platform_open)(const struct lws_plat_file_ops *fops, const char *filename,
				     const char *vpath, lws_fop_flags_t *flags);

static int inside_root(const char *path)
{
	char *real = realpath(path, NULL);
	if (!real)
		return 0; /* missing: the platform open would fail too */
	int ok = root_real && !strncmp(real, root_real, root_len) &&
		 (real[root_len] == '/' || real[root_len] == '\0' || root_len == 1);
	free(real);
	return ok;
}

static lws_fop_fd_t guarded_open(const struct lws_plat_file_ops *fops, const char *filename,
				 const char *vpath, lws_fop_flags_t *flags)
{
	if (!inside_root(filename)) {
		gw_stat_inc(GW_STAT_http_static_refused);
		gw_log(GW_LOG_NOTICE, "static: refused a file outside web_root (symlink or missing)");
		return NULL;
	}
	return platform_open(fops, filename, vpath, flags);
}

int gw_static_guard_install(struct lws_context *ctx, const char *web_root)
{
	struct lws_plat_file_ops *fops = lws_get_fops(ctx);
	if (!fops || platform_open)
		return -1;
	free(root_real);
	root_real = web_root ? realpath(web_root, NULL) : NULL;
	root_len = root_real ? strlen(root_real) : 0;
	platform_open = fops->LWS_FOP_OPEN;
	fops->LWS_FOP_OPEN = guarded_open;
	return root_real ? 0 : -1;
}

void gw_static_guard_free(void)
{
	free(root_real);
	root_real = NULL;
	root_len = 0;
	platform_open = NULL;
}
