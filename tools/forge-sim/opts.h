/* opts.h - the options the commands that talk to a remote share (send,
 * schedule, fit, ui): parsing, the --url split into host/port/base path, the
 * key and kid loaded, defaults, and a route under the base path.
 *
 * Ownership: struct opts points into argv for plain values and owns the
 * derived fields (pkey, kid_owned, host, port, base_path, host_header,
 * files): free_opts releases them.
 * Threads: single-threaded tool.
 */
#ifndef FORGE_SIM_OPTS_H
#define FORGE_SIM_OPTS_H

#include <stdint.h>

#include <openssl/evp.h>

#include "util.h"

struct opts {
	const char *url;
	const char *path; /* route; NULL = the command's default */
	const char *keys_dir;
	const char *key_file;
	const char *kid;
	const char *app_id;
	const char *installation;
	const char *api_base_url;
	const char *app_version;
	const char *env_type;
	const char *env_id;
	const char *module_key;
	const char *module_type; /* app.module.type (core:endpoint) */
	const char *principal; /* UI invocation: the user's accountId */
	const char *context; /* UI invocation: the context claim, JSON or @FILE */
	const char *issue; /* UI invocation: context.extension.issue.key */
	const char *content; /* UI invocation: context.extension.content.id */
	const char *trace_id;
	const char *interval;
	const char *body_file;
	int64_t timeout_ms;
	int64_t retry_delay_ms;
	int64_t fit_ttl_ms;
	int64_t system_ttl_ms;
	int has_system_ttl;
	int64_t every_ms;
	int has_every;
	long retries;
	long count;
	int bare;
	int no_fit;
	const char *headers[MAX_HEADERS];
	int n_headers;
	char **files;
	int n_files;
	/* derived */
	EVP_PKEY *pkey;
	char *kid_owned;
	char *host;
	char *port;
	char *base_path;
	char *host_header;
};

/* The defaults of every command (Forge's: 5 s timeout, 4 retries 60 s apart, 25 s FIT). */
void defaults(struct opts *o);
/* Parses argv into o; non-option arguments are files when accept_files, else a usage error. */
void parse_common(struct opts *o, int argc, char **argv, int accept_files);
/* Checks and completes o: the URL when need_url, the key and kid, the claim defaults. */
void finish_opts(struct opts *o, int need_url);
void free_opts(struct opts *o);
/* base path + (--path or def); the caller frees it. */
char *route(const struct opts *o, const char *def);

#endif
