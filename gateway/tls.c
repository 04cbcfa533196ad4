/* tls.c - see tls.h. */
#include "tls.h"

#include <libwebsockets.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "log.h"

static void ossl_reason(char *msg, size_t msglen, const char *what, const char *path)
{
	unsigned long e = ERR_get_error();
	char r[256] = "";
	if (e)
		ERR_error_string_n(e, r, sizeof(r));
	ERR_clear_error();
	snprintf(msg, msglen, "%s %s: %s", what, path, e ? r : "unreadable or not PEM");
}

int gw_tls_check(const char *cert, const char *key, char *msg, size_t msglen)
{
	if (!cert && !key)
		return 0;
	if (!cert || !key) {
		snprintf(msg, msglen, "tls.cert and tls.key go together (only %s is set)",
			 cert ? "tls.cert" : "tls.key");
		return -1;
	}
	int rc = -1;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	FILE *f = fopen(cert, "r");
	if (!f) {
		snprintf(msg, msglen, "tls.cert %s: %s", cert, strerror(errno));
		return -1;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x) {
		ossl_reason(msg, msglen, "tls.cert", cert);
		goto out;
	}
	if (!(f = fopen(key, "r"))) {
		snprintf(msg, msglen, "tls.key %s: %s", key, strerror(errno));
		goto out;
	}
	/* no passphrase callback: an encrypted key fails here, by design */
	k = PEM_read_PrivateKey(f, NULL, NULL, (void *)"");
	fclose(f);
	if (!k) {
		ossl_reason(msg, msglen, "tls.key", key);
		goto out;
	}
	if (X509_check_private_key(x, k) != 1) {
		ERR_clear_error();
		snprintf(msg, msglen, "tls.key %s does not belong to the certificate in %s", key, cert);
		goto out;
	}
	rc = 0;
out:
	X509_free(x);
	EVP_PKEY_free(k);
	return rc;
}

void gw_tls_configure(struct gw_app *app, struct lws_context_creation_info *info)
{
	if (!app->cfg.tls_cert)
		return;
	info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info->ssl_cert_filepath = app->cfg.tls_cert;
	info->ssl_private_key_filepath = app->cfg.tls_key;
	info->alpn = "http/1.1";
}

void gw_tls_reload(struct gw_app *app)
{
	if (!app->cfg.tls_cert)
		return;
	char msg[512];
	if (gw_tls_check(app->cfg.tls_cert, app->cfg.tls_key, msg, sizeof(msg))) {
		gw_log(GW_LOG_ERR, "tls: reload refused, the running certificate stays: %s", msg);
		return;
	}
	lws_tls_cert_updated(app->lws, app->cfg.tls_cert, app->cfg.tls_key, NULL, 0, NULL, 0);
	gw_log(GW_LOG_NOTICE,
	       "tls: certificate reloaded from %s (new handshakes use it; open connections keep theirs)",
	       app->cfg.tls_cert);
}
