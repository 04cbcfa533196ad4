/* tls.h - HTTPS and WSS on the public listener (tls.cert, tls.key).
 *
 * At start the files are checked (PEM, the key matches the certificate) and
 * handed to lws as paths: lws 4.1.6 builds one OpenSSL SSL_CTX per vhost
 * from them. On SIGHUP (gw_tls_reload) the files are checked again and, if
 * good, loaded into that same SSL_CTX with lws_tls_cert_updated: handshakes
 * from then on present the new certificate; connections already open keep
 * theirs and are not dropped. A bad pair is refused and the running one
 * stays (lws would otherwise install the new certificate and then fail on
 * the key, leaving the SSL_CTX unusable). What lws 4.1.6 does not allow:
 * switching TLS on or off, or changing the file paths, without a restart
 * (the vhost's TLS mode and paths are fixed at creation); a key with a
 * passphrase. ALPN offers http/1.1 only: the HTTP code writes HTTP/1.1.
 * Threads: service thread (gw_tls_reload touches the lws context). */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <stddef.h>

struct gw_app;
struct lws_context_creation_info;

/* Checks the configured pair; returns 0 (or TLS is off) or -1 with a message. */
int gw_tls_check(const char *cert, const char *key, char *msg, size_t msglen);

/* Fills the lws creation info for TLS when tls.cert is set. */
void gw_tls_configure(struct gw_app *app, struct lws_context_creation_info *info);

/* SIGHUP: reloads the certificate files into the running listener (logged). */
void gw_tls_reload(struct gw_app *app);

#endif
