/* ui.c - UI invocations (ui.h).
 *
 * Ownership: see ui.h.
 * Threads: single-threaded tool.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fit.h"
#include "http.h"
#include "ui.h"
#include "util.h"

/* One UI invocation (invokeRemote): POST with the FIT, no retries; prints
 * "ui status=N answer=..." and the body on its own line. */
int cmd_ui(int argc, char **argv)
{
	struct opts o;
	defaults(&o);
	o.timeout_ms = 25000; /* UI invocations: 25 s, never retried */
	parse_common(&o, argc, argv, 0);
	if (!o.principal)
		usage_error("--principal ACCOUNT is required (a UI invocation names its user)");
	finish_opts(&o, 1);
	char *full = route(&o, "/forge/subscription");
	char *span = random_hex(8), *trace = o.trace_id ? xstrdup(o.trace_id) : random_hex(16);
	char *hdrs = xasprintf("x-b3-traceid: %s\r\nx-b3-spanid: %s\r\n", trace, span);
	if (!o.no_fit) {
		char *fit = make_fit(&o);
		char *n = xasprintf("%sAuthorization: Bearer %s\r\n", hdrs, fit);
		free(hdrs);
		free(fit);
		hdrs = n;
	}
	for (int i = 0; i < o.n_headers; i++) {
		char *n = xasprintf("%s%s\r\n", hdrs, o.headers[i]);
		free(hdrs);
		hdrs = n;
	}
	struct answer *a = xmalloc(sizeof(*a));
	http_post(&o, full, hdrs, "{}", o.timeout_ms, a);
	printf("ui status=");
	if (a->status)
		printf("%d", a->status);
	else
		printf("%s error=\"%s\"", a->timed_out ? "timeout" : "error", a->error);
	putchar('\n');
	if (a->body_len)
		printf("%.*s\n", (int)a->body_len, a->body);
	int rc = a->status >= 200 && a->status < 300 ? EXIT_OK : EXIT_FAILED;
	free(a);
	free(hdrs);
	free(span);
	free(trace);
	free(full);
	free_opts(&o);
	return rc;
}
