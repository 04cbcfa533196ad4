/* opts.c - the shared options of send, schedule, fit and ui (opts.h).
 *
 * Ownership: see opts.h.
 * Threads: single-threaded tool.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "keys.h"
#include "opts.h"

static long parse_count(const char *opt, const char *v, long max)
{
	char *end;
	errno = 0;
	long n = strtol(v, &end, 10);
	if (errno || *end || end == v || n < 0 || n > max)
		usage_error("option '%s': '%s' is not a whole number between 0 and %ld", opt, v, max);
	return n;
}

static int64_t parse_dur_opt(const char *opt, const char *v, int allow_negative)
{
	int64_t ms;
	if (parse_duration(v, allow_negative, &ms))
		usage_error("option '%s': '%s' is not a duration (examples: 250ms, 5s, 2m, 4h%s)", opt, v,
			    allow_negative ? ", -1h" : "");
	return ms;
}

/* Options that take a value. */
static const char *const VALUE_OPTS[] = {"--url",
					 "--path",
					 "--keys",
					 "--key",
					 "--kid",
					 "--app-id",
					 "--installation",
					 "--api-base-url",
					 "--app-version",
					 "--environment",
					 "--environment-id",
					 "--module-key",
					 "--trace-id",
					 "--interval",
					 "--body",
					 "--timeout",
					 "--retry-delay",
					 "--fit-ttl",
					 "--system-token-ttl",
					 "--every",
					 "--retries",
					 "--count",
					 "--header",
					 "--principal",
					 "--context",
					 "--issue",
					 "--content",
					 "--module-type",
					 NULL};
static const char *const FLAG_OPTS[] = {"--bare", "--no-fit", NULL};

void parse_common(struct opts *o, int argc, char **argv, int accept_files)
{
	o->files = xmalloc(sizeof(char *) * (size_t)(argc + 1));
	for (int i = 0; i < argc; i++) {
		char *a = argv[i];
		if (a[0] != '-' || !strcmp(a, "-")) {
			if (!accept_files)
				usage_error("unexpected argument '%s'", a);
			o->files[o->n_files++] = a;
			continue;
		}
		if (!strcmp(a, "--")) {
			if (!accept_files && i + 1 < argc)
				usage_error("unexpected argument '%s'", argv[i + 1]);
			for (i++; i < argc; i++)
				o->files[o->n_files++] = argv[i];
			break;
		}
		const char *name = a, *val = NULL;
		char namebuf[64];
		char *eq = strchr(a, '=');
		if (eq && a[1] == '-') {
			size_t nl = (size_t)(eq - a);
			if (nl >= sizeof(namebuf))
				usage_error("unknown option '%s'", a);
			memcpy(namebuf, a, nl);
			namebuf[nl] = '\0';
			name = namebuf;
			val = eq + 1;
		}
		int is_flag = 0, is_value = 0;
		for (int k = 0; FLAG_OPTS[k]; k++)
			if (!strcmp(name, FLAG_OPTS[k]))
				is_flag = 1;
		for (int k = 0; VALUE_OPTS[k]; k++)
			if (!strcmp(name, VALUE_OPTS[k]))
				is_value = 1;
		if (!is_flag && !is_value)
			usage_error("unknown option '%s'", a);
		if (is_flag) {
			if (val)
				usage_error("option '%s' takes no value", name);
			if (!strcmp(name, "--bare"))
				o->bare = 1;
			else
				o->no_fit = 1;
			continue;
		}
		if (!val) {
			if (i + 1 >= argc)
				usage_error("option '%s' needs a value", name);
			val = argv[++i];
		}
		if (!strcmp(name, "--url"))
			o->url = val;
		else if (!strcmp(name, "--path"))
			o->path = val;
		else if (!strcmp(name, "--keys"))
			o->keys_dir = val;
		else if (!strcmp(name, "--key"))
			o->key_file = val;
		else if (!strcmp(name, "--kid"))
			o->kid = val;
		else if (!strcmp(name, "--app-id"))
			o->app_id = val;
		else if (!strcmp(name, "--installation"))
			o->installation = val;
		else if (!strcmp(name, "--api-base-url"))
			o->api_base_url = val;
		else if (!strcmp(name, "--app-version"))
			o->app_version = val;
		else if (!strcmp(name, "--environment"))
			o->env_type = val;
		else if (!strcmp(name, "--environment-id"))
			o->env_id = val;
		else if (!strcmp(name, "--principal"))
			o->principal = val;
		else if (!strcmp(name, "--context"))
			o->context = val;
		else if (!strcmp(name, "--issue"))
			o->issue = val;
		else if (!strcmp(name, "--content"))
			o->content = val;
		else if (!strcmp(name, "--module-type"))
			o->module_type = val;
		else if (!strcmp(name, "--module-key"))
			o->module_key = val;
		else if (!strcmp(name, "--trace-id"))
			o->trace_id = val;
		else if (!strcmp(name, "--interval"))
			o->interval = val;
		else if (!strcmp(name, "--body"))
			o->body_file = val;
		else if (!strcmp(name, "--timeout"))
			o->timeout_ms = parse_dur_opt(name, val, 0);
		else if (!strcmp(name, "--retry-delay"))
			o->retry_delay_ms = parse_dur_opt(name, val, 0);
		else if (!strcmp(name, "--fit-ttl"))
			o->fit_ttl_ms = parse_dur_opt(name, val, 1);
		else if (!strcmp(name, "--system-token-ttl")) {
			o->system_ttl_ms = parse_dur_opt(name, val, 1);
			o->has_system_ttl = 1;
		} else if (!strcmp(name, "--every")) {
			o->every_ms = parse_dur_opt(name, val, 0);
			o->has_every = 1;
		} else if (!strcmp(name, "--retries"))
			o->retries = parse_count(name, val, 100);
		else if (!strcmp(name, "--count"))
			o->count = parse_count(name, val, 100000000L);
		else if (!strcmp(name, "--header")) {
			if (o->n_headers >= MAX_HEADERS)
				usage_error("at most %d --header options", MAX_HEADERS);
			const char *colon = strchr(val, ':');
			if (!colon || colon == val || strpbrk(val, "\r\n"))
				usage_error("option '--header': expected 'Name: value', got '%s'", val);
			o->headers[o->n_headers++] = val;
		}
	}
}

/* http://HOST[:PORT][/PATH] -> host, port, base path (without trailing '/'). */
static void parse_url(struct opts *o)
{
	const char *u = o->url;
	if (strncmp(u, "http://", 7)) {
		if (!strncmp(u, "https://", 8))
			usage_error(
				"--url: https is not supported (forge-sim talks plain HTTP to a local remote)");
		usage_error("--url: expected http://HOST[:PORT][/PATH], got '%s'", u);
	}
	u += 7;
	const char *slash = strchr(u, '/');
	size_t hp_len = slash ? (size_t)(slash - u) : strlen(u);
	char *hp = xmalloc(hp_len + 1);
	memcpy(hp, u, hp_len);
	hp[hp_len] = '\0';
	if (!*hp)
		usage_error("--url: no host in '%s'", o->url);
	char *host, *port = NULL;
	if (hp[0] == '[') {
		char *close = strchr(hp, ']');
		if (!close)
			usage_error("--url: unterminated IPv6 address in '%s'", o->url);
		*close = '\0';
		host = hp + 1;
		if (close[1] == ':')
			port = close + 2;
		else if (close[1])
			usage_error("--url: bad host in '%s'", o->url);
	} else {
		host = hp;
		char *colon = strrchr(hp, ':');
		if (colon) {
			*colon = '\0';
			port = colon + 1;
		}
	}
	if (port) {
		char *end;
		long p = strtol(port, &end, 10);
		if (!*port || *end || p < 1 || p > 65535)
			usage_error("--url: bad port in '%s'", o->url);
	}
	o->host = xstrdup(host);
	o->port = xstrdup(port ? port : "80");
	o->host_header = xmalloc(hp_len + 1);
	memcpy(o->host_header, u, hp_len);
	o->host_header[hp_len] = '\0';
	const char *path = slash ? slash : "";
	size_t pl = strlen(path);
	while (pl > 0 && path[pl - 1] == '/')
		pl--;
	o->base_path = xmalloc(pl + 1);
	memcpy(o->base_path, path, pl);
	o->base_path[pl] = '\0';
	free(hp);
}

void finish_opts(struct opts *o, int need_url)
{
	if (need_url) {
		if (!o->url)
			usage_error("--url http://HOST:PORT is required");
		parse_url(o);
	}
	if (!o->keys_dir && !o->key_file)
		usage_error("--keys DIR (from 'forge-sim keys') or --key FILE --kid KID is required");
	char *key_path = o->key_file ? xstrdup(o->key_file) : xasprintf("%s/%s", o->keys_dir, KEY_FILE);
	o->pkey = load_rsa_key(key_path);
	if (!o->pkey) {
		if (access(key_path, F_OK))
			usage_error("key file %s: %s (create it with 'forge-sim keys --dir DIR')", key_path,
				    strerror(errno));
		usage_error("key file %s is not a PEM RSA private key", key_path);
	}
	free(key_path);
	if (!o->kid) {
		if (!o->keys_dir)
			usage_error("--kid KID is required with --key FILE");
		char *jwks_path = xasprintf("%s/%s", o->keys_dir, JWKS_FILE);
		json_error_t jerr;
		json_t *doc = json_load_file(jwks_path, 0, &jerr);
		json_t *k0 = doc ? json_array_get(json_object_get(doc, "keys"), 0) : NULL;
		const char *kid = k0 ? json_string_value(json_object_get(k0, "kid")) : NULL;
		if (!kid)
			usage_error("cannot read the kid from %s (%s); pass --kid", jwks_path,
				    doc ? "no keys[0].kid" : jerr.text);
		o->kid_owned = xstrdup(kid);
		o->kid = o->kid_owned;
		json_decref(doc);
		free(jwks_path);
	}
	if (!o->app_id)
		o->app_id = DEV_APP_ID;
	if (!o->installation)
		o->installation = DEV_INSTALLATION;
	if (!o->app_version)
		o->app_version = "1.0.0";
	if (!o->env_type)
		o->env_type = "DEVELOPMENT";
	if (strcmp(o->env_type, "DEVELOPMENT") && strcmp(o->env_type, "STAGING") &&
	    strcmp(o->env_type, "PRODUCTION"))
		usage_error("--environment must be DEVELOPMENT, STAGING or PRODUCTION, got '%s'",
			    o->env_type);
	if (!o->env_id)
		o->env_id = DEF_ENV_ID;
	if (!o->module_key)
		o->module_key = "forge-sim-endpoint";
	if (!o->module_type)
		o->module_type = o->issue	? "jira:issueViewBackgroundScript"
				 : o->content	? "confluence:backgroundScript"
				 : o->principal ? "jira:globalBackgroundScript"
						: "core:endpoint";
	if ((o->issue != NULL) + (o->content != NULL) + (o->context != NULL) > 1)
		usage_error("give one of --issue, --content and --context");
	if (!o->api_base_url)
		o->api_base_url = "https://api.atlassian.com/ex/jira/" DEF_CLOUD_ID;
	if (o->trace_id && (!is_hex(o->trace_id) || strlen(o->trace_id) > 32))
		usage_error("--trace-id must be 1-32 hex digits, got '%s'", o->trace_id);
}

void free_opts(struct opts *o)
{
	EVP_PKEY_free(o->pkey);
	free(o->files);
	free(o->kid_owned);
	free(o->host);
	free(o->port);
	free(o->base_path);
	free(o->host_header);
	memset(o, 0, sizeof(*o));
}

char *route(const struct opts *o, const char *def)
{
	const char *p = o->path ? o->path : def;
	return xasprintf("%s%s%s", o->base_path, p[0] == '/' ? "" : "/", p);
}

void defaults(struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->timeout_ms = 5000;
	o->retry_delay_ms = 60000;
	o->fit_ttl_ms = 25000;
	o->retries = 4;
	o->count = 1;
}
