/* schedule.c - scheduled triggers (schedule.h): fires due triggers and due
 * retries in time order.
 *
 * Ownership: see schedule.h.
 * Threads: single-threaded tool; waits end early on g_stop.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "delivery.h"
#include "schedule.h"
#include "util.h"

static const char *const INTERVALS[] = {"fiveMinute", "hour", "day", "week"};
static const int64_t INTERVAL_MS[] = {5LL * 60 * 1000, 3600LL * 1000, 86400LL * 1000, 7LL * 86400 * 1000};

int cmd_schedule(int argc, char **argv)
{
	struct opts o;
	defaults(&o);
	parse_common(&o, argc, argv, 0);
	if (!o.interval)
		usage_error("--interval fiveMinute|hour|day|week is required");
	int iv = -1;
	for (int k = 0; k < 4; k++)
		if (!strcmp(o.interval, INTERVALS[k]))
			iv = k;
	if (iv < 0)
		usage_error("--interval must be fiveMinute, hour, day or week, got '%s'", o.interval);
	if (o.bare)
		usage_error("--bare applies to 'send' only");
	if (!o.has_every)
		o.every_ms = INTERVAL_MS[iv];
	if (o.every_ms <= 0 && o.count != 1)
		usage_error("--every must be more than 0");
	finish_opts(&o, 1);

	json_t *body_tmpl;
	if (o.body_file) {
		json_error_t jerr;
		body_tmpl = json_load_file(o.body_file, 0, &jerr);
		if (!body_tmpl)
			usage_error("%s:%d:%d: not JSON: %s", o.body_file, jerr.line, jerr.column, jerr.text);
		if (!json_is_object(body_tmpl))
			usage_error("%s: the body must be a JSON object", o.body_file);
	} else {
		body_tmpl = json_object();
	}
	char *def_route = xasprintf("/forge/scheduled/%s", o.interval);

	struct run r = {0};
	int64_t start = mono_ms();
	long fired = 0;
	for (;;) {
		if (g_stop)
			break;
		struct delivery *d = next_due(&r);
		int more = o.count == 0 || fired < o.count;
		int64_t fire_at = start + fired * o.every_ms;
		if (!d && !more)
			break;
		if (more && (!d || fire_at <= d->due)) {
			sleep_until(fire_at);
			if (g_stop)
				break;
			fired++;
			d = run_add(&r);
			d->label = xasprintf("trigger=%s#%ld", o.interval, fired);
			d->body = json_deep_copy(body_tmpl);
			d->path = route(&o, def_route);
			d->trace_id = o.trace_id ? xstrdup(o.trace_id) : random_hex(16);
			d->due = mono_ms();
		} else {
			sleep_until(d->due);
			if (g_stop)
				break;
		}
		attempt(&o, d);
	}
	int rc = finish_run(&r);
	json_decref(body_tmpl);
	free(def_route);
	free_opts(&o);
	return rc;
}
