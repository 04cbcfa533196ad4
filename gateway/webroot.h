/* webroot.h - where the web demo (served at /) is when web_root is not set:
 * installed, <bindir>/../<datadir>/notify-gateway/web-demo next to the
 * running binary (found through /proc/self/exe, so a relocated prefix works);
 * else, for a binary run from its build tree, the source tree's web-demo/.
 *
 * Ownership: returns a malloc'd path the caller frees. Threads: any (called
 * once, while the configuration is built).
 */
#ifndef GW_WEBROOT_H
#define GW_WEBROOT_H

char *gw_default_web_root(void);

#endif
