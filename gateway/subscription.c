/* subscription.c - minting subscription tokens for Forge users (see
 * subscription.h and docs/protocol.md "POST /forge/subscription").
 *
 * Why the gateway mints them: the FIT of a UI invocation names the user
 * (principal) and what they are looking at (context.extension), signed by
 * Forge; that is exactly what a subscription token must bind. Minting here
 * spares every app a second backend sharing a secret with the gateway.
 * The token is signed with the notification key (ES256) but typed
 * GW_SUBTOKEN_TYP, and only that type is accepted as a token with that key.
 */
#include "subscription.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "log.h"
#include "stats.h"

static void answer_json(struct gw_app *app, uint64_t req_id, int status, json_t *body)
{
	struct gw_outbox_item *it = calloc(1, sizeof(*it));
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!it || !text) {
		free(it);
		free(text);
		gw_log(GW_LOG_ERR, "subscription: out of memory answering request %llu",
		       (unsigned long long)req_id);
		return;
	}
	it->kind = GW_OUT_ANSWER;
	it->req_id = req_id;
	it->status = status;
	it->body = text;
	it->body_len = strlen(text);
	gw_outbox_push_take(&app->outbox, it);
}

static void refuse(struct gw_app *app, struct gw_job *job, int status, const char *code, const char *message)
{
	gw_stat_inc(GW_STAT_subscription_refused);
	gw_log(GW_LOG_NOTICE, "subscription refused trace=%s status=%d reason=%s: %s", job->trace_id, status,
	       code, message);
	answer_json(app, job->req_id, status, json_pack("{s:s, s:s}", "error", code, "message", message));
}

/* The value at a dotted path below root, as text (strings and integers), or
 * NULL when missing or of another type. */
static const char *lookup(json_t *root, const char *path, size_t len, char *num, size_t numlen)
{
	json_t *v = root;
	const char *p = path, *end = path + len;
	while (p < end && v) {
		const char *dot = memchr(p, '.', (size_t)(end - p));
		size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);
		char key[64];
		if (!n || n >= sizeof(key) || !json_is_object(v))
			return NULL;
		memcpy(key, p, n);
		key[n] = '\0';
		v = json_object_get(v, key);
		p += n + (dot ? 1 : 0);
	}
	if (json_is_string(v))
		return json_string_length(v) ? json_string_value(v) : NULL;
	if (json_is_integer(v)) {
		snprintf(num, numlen, "%lld", (long long)json_integer_value(v));
		return num;
	}
	return NULL;
}

/* Renders one template into out; returns 1 (a context), 0 (a value is
 * missing: yields nothing) or -1 with *why. */
static int render(const char *t, size_t tl, json_t *claims, char *out, const char **why)
{
	size_t o = 0;
	const char *p = t, *end = t + tl;
	while (p < end) {
		const char *open = NULL;
		for (const char *q = p; q + 1 < end; q++)
			if (q[0] == '{' && q[1] == '{') {
				open = q;
				break;
			}
		size_t lit = (size_t)((open ? open : end) - p);
		if (o + lit > GW_SUBSCRIPTION_MAX_CTX_LEN) {
			*why = "context_too_large";
			return -1;
		}
		memcpy(out + o, p, lit);
		o += lit;
		if (!open)
			break;
		const char *close = NULL;
		for (const char *q = open + 2; q + 1 < end; q++)
			if (q[0] == '}' && q[1] == '}') {
				close = q;
				break;
			}
		if (!close)
			return 0; /* config.c accepted it; an unclosed brace yields nothing */
		const char *a = open + 2, *b = close;
		while (a < b && *a == ' ')
			a++;
		while (b > a && b[-1] == ' ')
			b--;
		char num[32];
		const char *v = lookup(claims, a, (size_t)(b - a), num, sizeof(num));
		if (!v)
			return 0;
		size_t vl = strlen(v);
		if (o + vl > GW_SUBSCRIPTION_MAX_CTX_LEN) {
			*why = "context_too_large";
			return -1;
		}
		for (size_t i = 0; i < vl; i++)
			if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
				*why = "bad_context";
				return -1;
			}
		memcpy(out + o, v, vl);
		o += vl;
		p = close + 2;
	}
	out[o] = '\0';
	return o > 0;
}

json_t *gw_subscription_contexts(const char *templates, json_t *claims, const char **why)
{
	json_t *out = json_array();
	char buf[GW_SUBSCRIPTION_MAX_CTX_LEN + 1];
	*why = NULL;
	for (const char *p = templates ? templates : ""; *p && out;) {
		size_t n = strcspn(p, "\n");
		int r = render(p, n, claims, buf, why);
		if (r < 0) {
			json_decref(out);
			return NULL;
		}
		if (r > 0) {
			int dup = 0;
			for (size_t i = 0; i < json_array_size(out); i++)
				dup |= !strcmp(json_string_value(json_array_get(out, i)), buf);
			if (!dup && json_array_size(out) < GW_SUBSCRIPTION_MAX_CONTEXTS)
				json_array_append_new(out, json_string(buf));
		}
		p += n;
		if (*p)
			p++;
	}
	return out;
}

void gw_subscription_mint(struct gw_app *app, struct gw_job *job)
{
	char detail[256] = "";
	json_t *claims = NULL, *ctx = NULL, *tok = NULL;
	char *text = NULL, *jws = NULL;
	time_t now = time(NULL);
	enum gw_token_err te = gw_fit_verify(app->jwks, job->token, strlen(job->token), app->forge_app_id,
					     app->cfg.forge_leeway, now, &claims, detail, sizeof(detail));
	if (te != GW_TOKEN_OK) {
		refuse(app, job, 401, gw_token_code(te), detail);
		goto done;
	}
	const char *inst =
		json_string_value(json_object_get(json_object_get(claims, "app"), "installationId"));
	if (!inst || !*inst) {
		refuse(app, job, 401, "token_bad_claims", "the FIT has no app.installationId");
		goto done;
	}
	json_t *principal = json_object_get(claims, "principal");
	if (!json_is_string(principal) || !json_string_length(principal) ||
	    json_string_length(principal) > 128) {
		refuse(app, job, 403, "principal_missing",
		       "the FIT names no user (principal): only UI invocations (invokeRemote/requestRemote from "
		       "the app's frontend) get subscription tokens");
		goto done;
	}
	if (!json_is_object(json_object_get(claims, "context"))) {
		refuse(app, job, 403, "context_missing", "the FIT carries no context (a UI invocation does)");
		goto done;
	}
	const char *why = NULL;
	ctx = gw_subscription_contexts(app->cfg.subscriber_contexts, claims, &why);
	if (!ctx) {
		char msg[128];
		snprintf(msg, sizeof(msg), "a context value is %s",
			 !strcmp(why, "context_too_large") ? "longer than 256 bytes" : "not printable text");
		refuse(app, job, 400, why, msg);
		goto done;
	}
	if (!json_array_size(ctx)) {
		refuse(app, job, 403, "no_context",
		       "the invocation's context yields no subscription context (subscriber.contexts)");
		goto done;
	}
	unsigned char rnd[16];
	char jti[33];
	if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
		refuse(app, job, 503, "internal_error", "no randomness");
		goto done;
	}
	for (int i = 0; i < 16; i++)
		snprintf(jti + 2 * i, 3, "%02x", rnd[i]);
	json_int_t exp = (json_int_t)now + app->cfg.subscriber_token_ttl;
	tok = json_pack("{s:s, s:s, s:s, s:O, s:I, s:I, s:s}", "iss", app->cfg.signing_issuer, "installation",
			inst, "sub", json_string_value(principal), "ctx", ctx, "iat", (json_int_t)now, "exp",
			exp, "jti", jti);
	if (tok && app->cfg.subscriber_audience)
		json_object_set_new(tok, "aud", json_string(app->cfg.subscriber_audience));
	text = tok ? json_dumps(tok, JSON_COMPACT) : NULL;
	size_t cap = text ? 512 + strlen(text) * 2 : 0;
	jws = text ? malloc(cap) : NULL;
	size_t n = jws ? gw_signer_sign_typ(app->signer, GW_SUBTOKEN_TYP, text, strlen(text), jws, cap) : 0;
	if (!n) {
		refuse(app, job, 503, "internal_error", "could not sign the token; try again");
		goto done;
	}
	jws[n] = '\0';
	gw_stat_inc(GW_STAT_subscription_tokens_issued);
	gw_log(GW_LOG_INFO, "subscription token trace=%s installation=%s user=%s contexts=%zu ttl=%d",
	       job->trace_id, inst, json_string_value(principal), json_array_size(ctx),
	       app->cfg.subscriber_token_ttl);
	answer_json(app, job->req_id, 200,
		    json_pack("{s:s, s:I, s:s, s:O}", "token", jws, "exp", exp, "url",
			      job->ws_url ? job->ws_url : "", "contexts", ctx));
done:
	json_decref(claims);
	json_decref(ctx);
	json_decref(tok);
	free(text);
	free(jws);
}
