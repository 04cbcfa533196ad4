/* webroot.h - where the demo's files are when web_root is not configured:
 * an installed or moved binary must find them without a source tree.
 * Threads: main thread, before the server starts. Ownership: cfg->web_root
 * stays owned by the config.
 */
#ifndef GW_WEBROOT_H
#define GW_WEBROOT_H

struct gw_config;

/* When web_root is not configured, the first directory with an index.html
 * of: <binary dir>/../share/notify-gateway/web-demo (an installed tree,
 * ${prefix}/bin + ${prefix}/share), the source tree's web-demo/ (a build
 * in place), the install prefix's data dir, <binary dir>/web-demo (copied
 * beside it). Logs where the demo comes from, or a warning that / will
 * answer 404. A configured web_root is never changed. */
void gw_webroot_resolve(struct gw_config *cfg);

#endif
