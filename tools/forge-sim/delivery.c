/* delivery.c - event delivery with Forge's retry policy and `forge-sim send`
 * (delivery.h).
 *
 * Ownership: see delivery.h; each attempt's body copy, headers and answer
 * are freed before it returns.
 * Threads: single-threaded tool; waits end early on g_stop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery.h"
#include "fit.h"
#include "http.h"
#include "util.h"

/* Puts retryContext where Forge puts it: inside body.payload when that is an
 * object, else at the top level of the body. */
static void set_retry_context(json_t *body, int retry_count, const char *reason)
{
	json_t *target = json_object_get(body, "payload");
	if (!json_is_object(target))
		target = body;
	json_object_set_new(
		target, "retryContext",
		json_pack("{s:i, s:s, s:n}", "retryCount", retry_count, "retryReason", reason, "retryData"));
}

static void print_answer_body(const struct answer *a)
{
	if (!a->body_len)
		return;
	fputs(" answer=", stdout);
	size_t n = a->body_len > 300 ? 300 : a->body_len;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a->body[i];
		fputc(c == '\n' || c == '\r' || c == '\t' ? ' ' : (c < 32 ? '?' : c), stdout);
	}
	if (a->body_len > n)
		fputs("...", stdout);
}

void attempt(const struct opts *o, struct delivery *d)
{
	d->attempts++;
	json_t *body = json_deep_copy(d->body);
	if (d->attempts > 1)
		set_retry_context(body, d->attempts - 1, d->retry_reason);
	char *text = json_dumps(body, JSON_COMPACT);
	if (!text)
		fatal("cannot encode the body of %s", d->label);

	char *span = random_hex(8);
	char *hdrs = xasprintf("x-b3-traceid: %s\r\nx-b3-spanid: %s\r\n", d->trace_id, span);
	if (!o->no_fit) {
		char *fit = make_fit(o);
		char *n = xasprintf("%sAuthorization: Bearer %s\r\n", hdrs, fit);
		free(hdrs);
		free(fit);
		hdrs = n;
	}
	if (o->has_system_ttl) {
		char *st = system_token(o->installation, o->system_ttl_ms);
		char *n = xasprintf("%sx-forge-oauth-system: %s\r\n", hdrs, st);
		free(hdrs);
		free(st);
		hdrs = n;
	}
	for (int i = 0; i < o->n_headers; i++) {
		char *n = xasprintf("%s%s\r\n", hdrs, o->headers[i]);
		free(hdrs);
		hdrs = n;
	}

	struct answer *a = xmalloc(sizeof(*a));
	double t0 = mono_msf();
	http_post(o, d->path, hdrs, text, o->timeout_ms, a);
	double ms = mono_msf() - t0;

	printf("%s attempt=%d", d->label, d->attempts);
	if (a->status)
		printf(" status=%d", a->status);
	else if (a->timed_out)
		printf(" status=timeout");
	else
		printf(" status=error");
	printf(" ms=%.0f trace=%s", ms, d->trace_id);
	if (d->attempts > 1)
		printf(" retryCount=%d retryReason=%s", d->attempts - 1, d->retry_reason);
	if (!a->status && !a->timed_out)
		printf(" error=\"%s\"", a->error);
	print_answer_body(a);
	putchar('\n');

	if (a->status >= 200 && a->status < 300) {
		d->state = D_DELIVERED;
		snprintf(d->last, sizeof(d->last), "%d", a->status);
	} else {
		if (a->status == 401)
			d->retry_reason = "INVALID_FORGE_INVOCATION_TOKEN";
		else if (a->timed_out)
			d->retry_reason = "TIMEOUT_ERROR";
		else
			d->retry_reason = "INVALID_REMOTE_INVOCATION_ERROR";
		if (a->status)
			snprintf(d->last, sizeof(d->last), "%d", a->status);
		else
			snprintf(d->last, sizeof(d->last), "%s", a->timed_out ? "timeout" : "error");
		if (d->attempts >= 1 + o->retries)
			d->state = D_FAILED;
		else
			d->due = mono_ms() + o->retry_delay_ms;
	}
	if (d->state == D_DELIVERED)
		printf("%s delivered after %d attempt%s\n", d->label, d->attempts,
		       d->attempts == 1 ? "" : "s");
	else if (d->state == D_FAILED)
		printf("%s failed after %d attempt%s (last: %s)\n", d->label, d->attempts,
		       d->attempts == 1 ? "" : "s", d->last);
	free(a);
	free(hdrs);
	free(span);
	free(text);
	json_decref(body);
}

struct delivery *run_add(struct run *r)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 8;
		struct delivery *nd = realloc(r->d, r->cap * sizeof(*nd));
		if (!nd)
			fatal("out of memory");
		r->d = nd;
	}
	struct delivery *d = &r->d[r->n++];
	memset(d, 0, sizeof(*d));
	return d;
}

struct delivery *next_due(struct run *r)
{
	struct delivery *best = NULL;
	for (size_t i = 0; i < r->n; i++) {
		struct delivery *d = &r->d[i];
		if (d->state == D_PENDING && (!best || d->due < best->due))
			best = d;
	}
	return best;
}

int finish_run(struct run *r)
{
	size_t ok = 0, failed = 0, abandoned = 0;
	for (size_t i = 0; i < r->n; i++) {
		struct delivery *d = &r->d[i];
		if (d->state == D_PENDING) {
			d->state = D_ABANDONED;
			printf("%s abandoned after %d attempt%s (interrupted)\n", d->label, d->attempts,
			       d->attempts == 1 ? "" : "s");
		}
		if (d->state == D_DELIVERED)
			ok++;
		else if (d->state == D_FAILED)
			failed++;
		else
			abandoned++;
	}
	printf("summary: delivered=%zu failed=%zu abandoned=%zu\n", ok, failed, abandoned);
	for (size_t i = 0; i < r->n; i++) {
		free(r->d[i].label);
		free(r->d[i].path);
		free(r->d[i].trace_id);
		json_decref(r->d[i].body);
	}
	free(r->d);
	return (failed || abandoned) ? EXIT_FAILED : EXIT_OK;
}

int cmd_send(int argc, char **argv)
{
	struct opts o;
	defaults(&o);
	parse_common(&o, argc, argv, 1);
	if (o.interval || o.has_every || o.count != 1 || o.body_file)
		usage_error("--interval, --every, --count and --body belong to 'schedule'");
	if (!o.n_files)
		usage_error("no event files (give one or more EVENT.json, or - for stdin)");
	finish_opts(&o, 1);

	struct run r = {0};
	int64_t now = mono_ms();
	for (int i = 0; i < o.n_files; i++) {
		json_error_t jerr;
		size_t len = 0;
		char *text = read_file(o.files[i], &len);
		if (!text)
			usage_error("cannot read %s: %s", o.files[i], strerror(errno));
		json_t *ev = json_loadb(text, len, 0, &jerr);
		free(text);
		if (!ev)
			usage_error("%s:%d:%d: not JSON: %s", o.files[i], jerr.line, jerr.column, jerr.text);
		if (!json_is_object(ev))
			usage_error("%s: an event must be a JSON object", o.files[i]);
		struct delivery *d = run_add(&r);
		d->label = xasprintf("event=%s", o.files[i]);
		d->body = o.bare ? ev : json_pack("{s:o}", "payload", ev);
		d->path = route(&o, "/forge/events");
		d->trace_id = o.trace_id ? xstrdup(o.trace_id) : random_hex(16);
		d->due = now;
	}
	struct delivery *d;
	while (!g_stop && (d = next_due(&r))) {
		sleep_until(d->due);
		if (g_stop)
			break;
		attempt(&o, d);
	}
	int rc = finish_run(&r);
	free_opts(&o);
	return rc;
}
