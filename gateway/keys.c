/* keys.c - the state directory and every key the gateway uses.
 *
 * Configured keys are loaded as given. What is not configured is generated
 * on first start into state_dir and reused afterwards (development mode):
 *   signing-key.pem        EC P-256, signs notifications (kept across restarts
 *                          so browsers' cached JWKS stay valid)
 *   dev-forge-key.pem      RSA key standing in for Forge's FIT signer, with
 *   dev-forge-jwks.json    its public JWKS; only when forge.jwks is not set
 *   dev-subscriber-secret  HS256 secret for subscription tokens; only when
 *                          neither subscriber.key nor subscriber.hs256_secret
 *                          is set
 * Key files are checked like OpenSSH checks its own (gwcrypto): owned by the
 * running user or root; secrets not accessible by group/others, public keys
 * not writable by them. The algorithm chosen for each key is logged at start.
 * Runs on the main thread before any other thread exists.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "gw/keygen.h"
#include "keys.h"
#include "log.h"

static int mkdir_p(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0700) && errno != EEXIST)
		return -1;
	return 0;
}

static char *join(const char *dir, const char *name)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

static int exists(const char *path)
{
	return access(path, F_OK) == 0;
}

int gw_keys_load(struct gw_app *app, FILE *err)
{
	struct gw_config *cfg = &app->cfg;
	char msg[512];
	int rc = -1;
	char *signing = NULL, *fkey = NULL, *fjwks = NULL, *secret = NULL;

	if (mkdir_p(cfg->state_dir)) {
		fprintf(err, "notify-gateway: cannot create state directory '%s': %s\n", cfg->state_dir,
			strerror(errno));
		return -1;
	}

	signing = cfg->signing_key ? strdup(cfg->signing_key) : join(cfg->state_dir, "signing-key.pem");
	if (!cfg->signing_key && !exists(signing)) {
		if (gw_keygen_ec_p256(signing, msg, sizeof(msg))) {
			fprintf(err, "notify-gateway: cannot generate %s: %s\n", signing, msg);
			goto out;
		}
		gw_log(GW_LOG_NOTICE, "generated notification signing key %s", signing);
	}
	app->signer = gw_signer_load_file(signing, msg, sizeof(msg));
	if (!app->signer) {
		fprintf(err, "notify-gateway: signing key %s: %s\n", signing, msg);
		goto out;
	}
	gw_log(GW_LOG_NOTICE, "notifications: ES256, signing key %s", signing);
	app->jwks_json = gw_signer_jwks_json(app->signer);
	app->jwks_json_len = app->jwks_json ? strlen(app->jwks_json) : 0;
	/* Verifies the subscription tokens /forge/subscription mints. */
	app->own_subkey = gw_subkey_from_signer(app->signer, msg, sizeof(msg));
	if (!app->own_subkey) {
		fprintf(err, "notify-gateway: signing key %s: %s\n", signing, msg);
		goto out;
	}

	if (cfg->forge_jwks) {
		app->jwks = gw_jwks_load_file(cfg->forge_jwks, msg, sizeof(msg));
		if (!app->jwks) {
			fprintf(err, "notify-gateway: Forge JWKS %s: %s\n", cfg->forge_jwks, msg);
			goto out;
		}
		app->forge_app_id = strdup(cfg->forge_app_id);
		gw_log(GW_LOG_NOTICE, "FITs: RS256, %zu key(s) from %s", gw_jwks_count(app->jwks),
		       cfg->forge_jwks);
	} else {
		fkey = join(cfg->state_dir, "dev-forge-key.pem");
		fjwks = join(cfg->state_dir, "dev-forge-jwks.json");
		if (!exists(fkey) || !exists(fjwks)) {
			if (gw_keygen_rsa_jwks(fkey, fjwks, GW_DEV_FORGE_KID, msg, sizeof(msg))) {
				fprintf(err,
					"notify-gateway: cannot generate the development Forge key: %s\n",
					msg);
				goto out;
			}
		}
		app->jwks = gw_jwks_load_file(fjwks, msg, sizeof(msg));
		if (!app->jwks) {
			fprintf(err, "notify-gateway: development JWKS %s: %s\n", fjwks, msg);
			goto out;
		}
		app->forge_app_id = strdup(cfg->forge_app_id ? cfg->forge_app_id : GW_DEV_APP_ID);
		app->dev_forge_key = 1;
		app->dev_forge_key_path = fkey;
		fkey = NULL;
		gw_log(GW_LOG_NOTICE, "FITs: RS256, %zu key(s) from %s", gw_jwks_count(app->jwks), fjwks);
		gw_log(GW_LOG_WARN,
		       "development mode: FITs are checked against the generated key %s "
		       "(set forge.jwks and forge.app_id for real Forge traffic)",
		       fjwks);
	}

	if (cfg->subscriber_key || cfg->subscriber_secret) {
		const char *path = cfg->subscriber_key ? cfg->subscriber_key : cfg->subscriber_secret;
		app->subkey = cfg->subscriber_key ? gw_subkey_load_file(path, msg, sizeof(msg))
						  : gw_subkey_load_secret_file(path, msg, sizeof(msg));
		if (!app->subkey) {
			fprintf(err, "notify-gateway: %s %s: %s\n",
				cfg->subscriber_key ? "subscriber.key" : "subscriber.hs256_secret", path,
				msg);
			goto out;
		}
		gw_log(GW_LOG_NOTICE, "subscription tokens: %s, key %s (%s)", gw_subkey_alg(app->subkey),
		       path, cfg->subscriber_key ? "subscriber.key" : "subscriber.hs256_secret");
	} else {
		secret = join(cfg->state_dir, "dev-subscriber-secret");
		if (!exists(secret) && gw_keygen_secret(secret, msg, sizeof(msg))) {
			fprintf(err, "notify-gateway: cannot generate %s: %s\n", secret, msg);
			goto out;
		}
		app->subkey = gw_subkey_load_secret_file(secret, msg, sizeof(msg));
		if (!app->subkey) {
			fprintf(err, "notify-gateway: %s: %s\n", secret, msg);
			goto out;
		}
		app->dev_subscriber_key = 1;
		gw_log(GW_LOG_WARN,
		       "development mode: subscription tokens are HS256 with the generated secret %s "
		       "(set subscriber.key or subscriber.hs256_secret in production)",
		       secret);
	}
	rc = 0;
out:
	free(signing);
	free(fkey);
	free(fjwks);
	free(secret);
	return rc;
}

void gw_keys_free(struct gw_app *app)
{
	gw_signer_free(app->signer);
	gw_jwks_free(app->jwks);
	gw_subkey_free(app->subkey);
	gw_subkey_free(app->own_subkey);
	app->own_subkey = NULL;
	free(app->jwks_json);
	free(app->forge_app_id);
	free(app->dev_forge_key_path);
	app->signer = NULL;
	app->jwks = NULL;
	app->subkey = NULL;
	app->jwks_json = app->forge_app_id = app->dev_forge_key_path = NULL;
}
