/* fit.c - signing (fit.h): the FIT of each attempt as Forge builds it
 * (forge-platform.md §2), the app system token, `forge-sim fit`.
 *
 * Ownership: the system-token key lives here for the process's lifetime;
 * every token returned is the caller's.
 * Threads: single-threaded tool.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fit.h"
#include "util.h"

static char *sign_rs256(EVP_PKEY *pkey, const char *kid, json_t *claims)
{
	json_t *hdr = json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT", "kid", kid);
	char *h = json_dumps(hdr, JSON_COMPACT | JSON_SORT_KEYS);
	char *c = json_dumps(claims, JSON_COMPACT);
	if (!h || !c)
		fatal("out of memory");
	char *h64 = b64url_str(h), *c64 = b64url_str(c);
	char *input = xasprintf("%s.%s", h64, c64);
	size_t sig_len = (size_t)EVP_PKEY_get_size(pkey);
	unsigned char *sig = xmalloc(sig_len);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
	    EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)input, strlen(input)) != 1)
		fatal("RS256 signing failed");
	EVP_MD_CTX_free(md);
	char *s64 = b64url(sig, sig_len);
	char *out = xasprintf("%s.%s", input, s64);
	free(s64);
	free(sig);
	free(input);
	free(h64);
	free(c64);
	free(h);
	free(c);
	json_decref(hdr);
	return out;
}

static unsigned char g_system_key[32];
static int g_system_key_set;

/* The app system token: opaque to the remote; a JWT with exp, HS256 with a
 * per-process random key nobody else knows. */
char *system_token(const char *installation, int64_t ttl_ms)
{
	if (!g_system_key_set) {
		random_bytes(g_system_key, sizeof(g_system_key));
		g_system_key_set = 1;
	}
	int64_t now = wall_s();
	char *jti = random_hex(16);
	json_t *claims = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s}", "iss", "forge-sim", "sub",
				   "forge-sim-app-system-user", "aud", "api.atlassian.com", "installationId",
				   installation, "iat", (json_int_t)now, "exp",
				   (json_int_t)(now + ttl_ms / 1000), "jti", jti);
	char *c = json_dumps(claims, JSON_COMPACT);
	if (!c)
		fatal("out of memory");
	char *h64 = b64url_str("{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
	char *c64 = b64url_str(c);
	char *input = xasprintf("%s.%s", h64, c64);
	unsigned char mac[32];
	unsigned int mac_len = sizeof(mac);
	if (!HMAC(EVP_sha256(), g_system_key, sizeof(g_system_key), (const unsigned char *)input,
		  strlen(input), mac, &mac_len))
		fatal("HMAC failed");
	char *s64 = b64url(mac, mac_len);
	char *out = xasprintf("%s.%s", input, s64);
	free(s64);
	free(input);
	free(h64);
	free(c64);
	free(c);
	free(jti);
	json_decref(claims);
	return out;
}

/* The `context` claim of a UI invocation (forge-platform.md §2.2): from
 * --context (JSON text, or @FILE), or built for --issue / --content; NULL
 * for backend invocations ("no context is currently provided"). */
static json_t *ui_context(const struct opts *o, const char *cloud)
{
	json_error_t jerr;
	if (o->context) {
		json_t *c = o->context[0] == '@' ? json_load_file(o->context + 1, 0, &jerr)
						 : json_loads(o->context, 0, &jerr);
		if (!json_is_object(c))
			usage_error("--context: expected a JSON object (or @FILE): %s",
				    c ? "not an object" : jerr.text);
		return c;
	}
	if (!o->issue && !o->content && !o->principal)
		return NULL;
	char *local = random_hex(16);
	json_t *ext;
	if (o->issue) {
		const char *dash = strchr(o->issue, '-');
		char project[64];
		snprintf(project, sizeof(project), "%.*s", dash ? (int)(dash - o->issue) : 0, o->issue);
		ext = json_pack("{s:s, s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}}", "type",
				"jira:issueViewBackgroundScript", "issue", "key", o->issue, "id", "10073",
				"type", "Story", "project", "key", project, "id", "10000", "type",
				"software");
	} else if (o->content) {
		ext = json_pack("{s:s, s:{s:s, s:s}, s:{s:s}}", "type", "confluence:backgroundScript",
				"content", "id", o->content, "type", "page", "space", "key", "SP");
	} else {
		ext = json_pack("{s:s}", "type", "jira:globalBackgroundScript");
	}
	json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:o}", "cloudId", cloud, "siteUrl",
			      "https://forge-sim.atlassian.net", "moduleKey", o->module_key, "localId", local,
			      "extension", ext);
	free(local);
	return c;
}

char *make_fit(const struct opts *o)
{
	int64_t now = wall_s();
	const char *app_uuid = strrchr(o->app_id, '/');
	app_uuid = app_uuid ? app_uuid + 1 : o->app_id;
	char *env_ari = xasprintf("ari:cloud:ecosystem::environment/%s/%s", app_uuid, o->env_id);
	char *jti = random_hex(20);
	const char *cloud = strrchr(o->api_base_url, '/');
	cloud = cloud ? cloud + 1 : "";
	json_t *ctx0 = json_pack("{s:s, s:s}", "name", "jira", "apiBaseUrl", o->api_base_url);
	if (*cloud)
		json_object_set_new(ctx0, "cloudId", json_string(cloud));
	json_t *app = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:[o]}, s:{s:s, s:s}, s:{s:s, s:s}}", "id",
				o->app_id, "installationId", o->installation, "apiBaseUrl", o->api_base_url,
				"appVersion", o->app_version, "installation", "id", o->installation,
				"contexts", ctx0, "environment", "type", o->env_type, "id", env_ari, "module",
				"type", o->module_type, "key", o->module_key);
	json_t *claims =
		json_pack("{s:o, s:s, s:s, s:I, s:I, s:I, s:s}", "app", app, "iss", "forge/invocation-token",
			  "aud", o->app_id, "iat", (json_int_t)now, "nbf", (json_int_t)now, "exp",
			  (json_int_t)(now + o->fit_ttl_ms / 1000), "jti", jti);
	if (!claims)
		fatal("cannot build the FIT claims");
	if (o->principal && *o->principal)
		json_object_set_new(claims, "principal", json_string(o->principal));
	json_t *context = ui_context(o, cloud);
	if (context)
		json_object_set_new(claims, "context", context);
	if (!*o->installation) { /* --installation '': a FIT without the installation */
		json_object_del(app, "installationId");
		json_object_del(app, "installation");
	}
	char *fit = sign_rs256(o->pkey, o->kid, claims);
	json_decref(claims);
	free(jti);
	free(env_ari);
	return fit;
}

int cmd_fit(int argc, char **argv)
{
	struct opts o;
	defaults(&o);
	parse_common(&o, argc, argv, 0);
	finish_opts(&o, 0);
	char *fit = make_fit(&o);
	puts(fit);
	free(fit);
	free_opts(&o);
	return EXIT_OK;
}
