/* subscription.h - POST /forge/subscription (forge.subscription_path): a Forge
 * UI invocation (invokeRemote / requestRemote from a Custom UI background
 * script) exchanges its FIT for a subscription token signed with the
 * gateway's own key, so an app needs no backend of its own to let its users
 * subscribe. docs/protocol.md has the contract.
 *
 * The HTTP side (headers, CORS, bounded body) is in http_api.c; this is the
 * worker side.
 * Threads: gw_subscription_mint runs on a worker. Ownership: the job stays
 * the caller's; the answer goes to the outbox.
 */
#ifndef GW_SUBSCRIPTION_H
#define GW_SUBSCRIPTION_H

#include <stddef.h>

#include <jansson.h>

struct gw_app;
struct gw_job;

/* Largest request body accepted (the body is not used: everything comes from
 * the FIT); larger: 413. */
#define GW_SUBSCRIPTION_MAX_BODY 4096
/* Bounds on what a FIT's context may turn into. */
#define GW_SUBSCRIPTION_MAX_CTX_LEN 256
#define GW_SUBSCRIPTION_MAX_CONTEXTS 16

/* Verifies the job's FIT like an event's, derives the contexts, signs and
 * answers {"token","exp","url"} (or the refusal) through the outbox. */
void gw_subscription_mint(struct gw_app *app, struct gw_job *job);

/* The contexts the templates (one per line) yield for the FIT claims: a new
 * array of strings. A template whose value is missing yields nothing; "*" is
 * kept. Returns NULL with *why set ("context_too_large" or "bad_context")
 * when a value cannot make a context. Exposed for the unit tests. */
json_t *gw_subscription_contexts(const char *templates, json_t *claims, const char **why);

#endif

/* ---- service thread: the HTTP side, before the body ------------------------ */
struct lws;

struct gw_sub_http {
	int status; /* answer now with this status (0: read the body) */
	const char *code; /* error code of that answer (NULL: no body, a preflight) */
	const char *message;
	const char *allow; /* Allow header for 405 */
	char *cors_origin; /* Access-Control-Allow-Origin to send, owned by the caller after */
	int preflight; /* OPTIONS answered: CORS preflight headers */
	char *token; /* the FIT (Authorization: Bearer), owned by the caller after */
	char *ws_url; /* the websocket URL to answer, owned by the caller after */
	long body_len; /* Content-Length (0: none) */
};

/* Checks a request to forge.subscription_path: OPTIONS (CORS preflight for
 * allowed origins), method, Origin against cors.allowed_origins, body size
 * (GW_SUBSCRIPTION_MAX_BODY) and type, Authorization. Fills *out. */
void gw_subscription_begin(struct gw_app *app, struct lws *wsi, int method, struct gw_sub_http *out);
