/* check_config.c - see check_config.h. */
#include "check_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "gw/signer.h"
#include "gw/token.h"
#include "rulebox.h"
#include "tls.h"
#include "admin_api.h"
#include "app.h"

int gw_check_config_requested(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (!strcmp(argv[i], "--check-config"))
			return 1;
	return 0;
}

struct diag_ctx {
	FILE *err;
};

static void diag_print(void *ud, int is_error, const char *text)
{
	struct diag_ctx *d = ud;
	size_t n = strlen(text);
	fprintf(d->err, n && text[n - 1] == '\n' ? "%s" : "%s\n", text);
	(void)is_error;
}

static int is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A key file a start would load: configured (must load) or generated in
 * state_dir (checked if already there, else reported as "would be generated"). */
static int check_key(FILE *out, FILE *err, const char *what, const char *path, int generated,
		     int (*load)(const char *path, char *msg, size_t msglen))
{
	char msg[512] = "";
	if (generated && !is_file(path)) {
		fprintf(out, "  %s: %s (development key; a start generates it)\n", what, path);
		return 0;
	}
	if (load(path, msg, sizeof(msg))) {
		size_t pl = strlen(path);
		const char *m = !strncmp(msg, path, pl) && !strncmp(msg + pl, ": ", 2) ? msg + pl + 2 : msg;
		fprintf(err, "%s: error: %s: %s\n", path, what, m);
		return 1;
	}
	fprintf(out, "  %s: %s%s\n", what, path, generated ? " (development key)" : "");
	return 0;
}

static int load_signer(const char *p, char *m, size_t n)
{
	struct gw_signer *s = gw_signer_load_file(p, m, n);
	gw_signer_free(s);
	return s ? 0 : -1;
}
static int load_jwks(const char *p, char *m, size_t n)
{
	struct gw_jwks *j = gw_jwks_load_file(p, m, n);
	gw_jwks_free(j);
	return j ? 0 : -1;
}
static int load_subkey(const char *p, char *m, size_t n)
{
	struct gw_subkey *k = gw_subkey_load_file(p, m, n);
	gw_subkey_free(k);
	return k ? 0 : -1;
}
static int load_secret(const char *p, char *m, size_t n)
{
	struct gw_subkey *k = gw_subkey_load_secret_file(p, m, n);
	gw_subkey_free(k);
	return k ? 0 : -1;
}

/* The state directory must be usable: there and writable, or creatable. */
static int check_state_dir(FILE *out, FILE *err, const char *dir)
{
	struct stat st;
	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			fprintf(err, "%s: error: state_dir is not a directory\n", dir);
			return 1;
		}
		if (access(dir, W_OK | X_OK)) {
			fprintf(err, "%s: error: state_dir is not writable: %s\n", dir, strerror(errno));
			return 1;
		}
		fprintf(out, "  state_dir: %s\n", dir);
		return 0;
	}
	char *parent = strdup(dir);
	char *slash = parent ? strrchr(parent, '/') : NULL;
	if (slash)
		*(slash == parent ? slash + 1 : slash) = '\0';
	const char *p = slash ? parent : ".";
	int ok = access(p, W_OK | X_OK) == 0;
	if (!ok)
		fprintf(err, "%s: error: state_dir does not exist and %s is not writable\n", dir, p);
	else
		fprintf(out, "  state_dir: %s (a start creates it)\n", dir);
	free(parent);
	return !ok;
}

static char *join(const char *dir, const char *name)
{
	char *p = NULL;
	return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

int gw_check_config(int argc, char **argv, const char *embedded, size_t embedded_len, FILE *out, FILE *err)
{
	char **args = calloc((size_t)argc + 1, sizeof(char *));
	int n = 0;
	if (!args)
		return 1;
	for (int i = 0; i < argc; i++)
		if (strcmp(argv[i], "--check-config"))
			args[n++] = argv[i];
	struct gw_config cfg;
	gw_config_defaults(&cfg);
	int problems = 0;
	int rc = gw_config_from_args(&cfg, n, args, out, err);
	free(args);
	if (rc == 1) { /* --help, --version */
		gw_config_free(&cfg);
		return 0;
	}
	if (rc)
		problems++; /* printed; what did load is still checked below */
	fprintf(out, "checking:\n");

	size_t errors = 0;
	struct diag_ctx d = {err};
	struct rules_set *set = gw_rulebox_load(cfg.rules, "(embedded default rules)", embedded, embedded_len,
						diag_print, &d, NULL, 0, &errors);
	if (set) {
		fprintf(out, "  rules: %zu from %s (version %s)\n", rules_set_count(set),
			cfg.rules ? cfg.rules : "the embedded default", rules_set_version(set));
		rules_set_unref(set);
	} else {
		problems++;
	}

	if (cfg.state_dir)
		problems += check_state_dir(out, err, cfg.state_dir);
	char *signing = cfg.signing_key ? strdup(cfg.signing_key) : join(cfg.state_dir, "signing-key.pem");
	if (signing)
		problems += check_key(out, err, "signing.key", signing, !cfg.signing_key, load_signer);
	free(signing);
	if (cfg.forge_jwks) {
		problems += check_key(out, err, "forge.jwks", cfg.forge_jwks, 0, load_jwks);
	} else {
		char *p = join(cfg.state_dir, "dev-forge-jwks.json");
		if (p)
			problems += check_key(out, err, "forge.jwks", p, 1, load_jwks);
		free(p);
	}
	if (cfg.subscriber_key) {
		problems += check_key(out, err, "subscriber.key", cfg.subscriber_key, 0, load_subkey);
	} else if (cfg.subscriber_secret) {
		problems +=
			check_key(out, err, "subscriber.hs256_secret", cfg.subscriber_secret, 0, load_secret);
	} else {
		char *p = join(cfg.state_dir, "dev-subscriber-secret");
		if (p)
			problems += check_key(out, err, "subscriber secret", p, 1, load_secret);
		free(p);
	}
	static struct gw_app probe; /* gw_admin_prepare reads only cfg */
	probe.cfg = cfg;
	char amsg[512];
	if (gw_admin_prepare(&probe, amsg, sizeof(amsg))) {
		fprintf(err, "%s: error: %s\n", cfg.admin_token_file ? cfg.admin_token_file : "admin.listen",
			amsg);
		problems++;
	} else if (gw_admin_enabled(&probe)) {
		fprintf(out, "  admin: %s, token from %s\n", cfg.admin_listen, cfg.admin_token_file);
	}
	char tmsg[512];
	if (gw_tls_check(cfg.tls_cert, cfg.tls_key, tmsg, sizeof(tmsg))) {
		fprintf(err, "%s: error: %s\n", cfg.tls_cert ? cfg.tls_cert : cfg.tls_key, tmsg);
		problems++;
	} else if (cfg.tls_cert) {
		fprintf(out, "  tls: %s, %s\n", cfg.tls_cert, cfg.tls_key);
	}
	struct stat st;
	if (cfg.web_root && (stat(cfg.web_root, &st) || !S_ISDIR(st.st_mode))) {
		fprintf(err, "%s: error: web_root is not a directory\n", cfg.web_root);
		problems++;
	}
	gw_config_free(&cfg);
	if (problems) {
		fprintf(err, "notify-gateway: the configuration has problems (see above)\n");
		return 1;
	}
	fprintf(out, "notify-gateway: the configuration is ok\n");
	return 0;
}
