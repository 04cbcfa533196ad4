/* rules_cli.c - `notify-gateway rules check|test ...`: the rule author's
 * command line (docs/rules.md §7).
 *
 *   rules check [--format text|json] [--forge] FILE|DIR...
 *       loads every path as one rule set (as the gateway would); prints the
 *       diagnostics (errors and warnings) and a summary. Exit 0 when there
 *       is no error, 1 when there is one, 2 on a usage error. --forge also
 *       warns where a filter would not deploy to Forge as written
 *       (rules_forge_check) and then exits 1 if there is any such place.
 *   rules test [--format text|json] [--event-type TYPE] [--fit CLAIMS.json] FILE|DIR EVENT.json...
 *       loads the rules, then for each event file (one JSON object, or an
 *       array of them) shows which rules matched, why every other rule did
 *       not (disabled, event type, ignoreSelf, the filter's value or error
 *       with the sub-expression that decided it, no recipients) and the
 *       rendered notifications. Exit 0, 1 if the rules or an event file
 *       cannot be loaded, 2 on a usage error.
 *
 * Ownership: everything allocated here is freed before returning; output
 * goes to the given streams. Threads: runs alone on the main thread, before
 * any server state exists.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "rules_cli.h"

enum cli_format { CLI_TEXT, CLI_JSON };

struct cli_opts {
	enum cli_format format;
	const char *event_type;
	bool forge; /* check --forge */
	const char *fit_path; /* test --fit: FIT claims for appIsLicensed */
	const char **paths; /* positional arguments (borrowed from argv) */
	int npaths;
};

static void usage(FILE *err)
{
	fprintf(err, "usage: notify-gateway rules check [--format text|json] [--forge] FILE|DIR...\n"
		     "       notify-gateway rules test [--format text|json] [--event-type TYPE] "
		     "[--fit CLAIMS.json] FILE|DIR EVENT.json...\n"
		     "       notify-gateway rules manifest [--endpoint KEY] FILE|DIR...\n");
}

/* Parses options mixed with positional arguments. Returns 0 or 2. */
static int parse_opts(int argc, char **argv, bool allow_type, struct cli_opts *o, FILE *err)
{
	memset(o, 0, sizeof(*o));
	o->paths = calloc((size_t)argc + 1, sizeof(*o->paths));
	if (!o->paths)
		return 2;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		bool is_format = !strncmp(a, "--format", 8) && (a[8] == '\0' || a[8] == '=');
		bool is_type =
			allow_type && !strncmp(a, "--event-type", 12) && (a[12] == '\0' || a[12] == '=');
		bool is_fit = allow_type && !strncmp(a, "--fit", 5) && (a[5] == '\0' || a[5] == '=');
		if (is_format || is_type || is_fit) {
			const char *eq = strchr(a, '=');
			val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
			if (!val) {
				fprintf(err, "notify-gateway rules: %s needs a value\n", a);
				return 2;
			}
			if (is_fit) {
				o->fit_path = val;
			} else if (is_type) {
				o->event_type = val;
			} else if (!strcmp(val, "json")) {
				o->format = CLI_JSON;
			} else if (!strcmp(val, "text")) {
				o->format = CLI_TEXT;
			} else {
				fprintf(err, "notify-gateway rules: unknown format '%s' (text or json)\n",
					val);
				return 2;
			}
		} else if (!allow_type && !strcmp(a, "--forge")) {
			o->forge = true;
		} else if (a[0] == '-' && a[1] == '-' && a[2] != '\0') {
			fprintf(err, "notify-gateway rules: unknown option %s\n", a);
			return 2;
		} else {
			o->paths[o->npaths++] = a;
		}
	}
	return 0;
}

static json_t *diags_json(const struct rules_diags *d)
{
	json_t *list = json_array();

	for (size_t i = 0; list && i < d->count; i++) {
		const struct rules_diag *x = &d->items[i];
		json_t *o =
			json_pack("{s:s, s:i, s:i, s:s, s:s}", "file", x->file, "line", x->line, "column",
				  x->col, "severity", x->severity == RULES_SEV_ERROR ? "error" : "warning",
				  "message", x->message);
		if (o && x->source_line)
			json_object_set_new(o, "source", json_string(x->source_line));
		json_array_append_new(list, o);
	}
	return list;
}

static void print_json(json_t *j, FILE *out)
{
	if (j)
		json_dumpf(j, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', out);
}

static int cmd_check(const struct cli_opts *o, FILE *out, FILE *err)
{
	struct rules_diags diags;
	struct rules_set *set;

	if (o->npaths < 1) {
		usage(err);
		return 2;
	}
	rules_diags_init(&diags);
	set = rules_load_paths(o->paths, (size_t)o->npaths, &diags);
	size_t forge = o->forge ? rules_forge_check(set, &diags) : 0;
	if (o->format == CLI_JSON) {
		json_t *j = json_pack("{s:b, s:i, s:s, s:i, s:i, s:o}", "ok", set != NULL, "rules",
				      (int)rules_set_count(set), "version", rules_set_version(set), "errors",
				      (int)diags.errors, "warnings", (int)diags.warnings, "diagnostics",
				      diags_json(&diags));
		print_json(j, out);
		json_decref(j);
	} else {
		rules_diags_print(&diags, err);
		if (set)
			fprintf(out, "%s%s: %zu rule%s, ok (version %s)%s\n", o->paths[0],
				o->npaths > 1 ? " ..." : "", rules_set_count(set),
				rules_set_count(set) == 1 ? "" : "s", rules_set_version(set),
				forge		 ? ", Forge would refuse some filters"
				: diags.warnings ? ", with warnings"
						 : "");
		else
			fprintf(err, "%s%s: %zu error%s\n", o->paths[0], o->npaths > 1 ? " ..." : "",
				diags.errors, diags.errors == 1 ? "" : "s");
	}
	int rc = set && !forge ? 0 : 1;
	rules_set_unref(set);
	rules_diags_free(&diags);
	return rc;
}

static void print_notification_text(const json_t *n, FILE *out)
{
	size_t i;
	json_t *x;

	fprintf(out, "  notification from %s\n    to:", json_string_value(json_object_get(n, "rule")));
	json_array_foreach (json_object_get(n, "to"), i, x)
		fprintf(out, " %s", json_string_value(x));
	fprintf(out, "\n    context: %s\n    type: %s\n    title: %s\n",
		json_string_value(json_object_get(n, "context")),
		json_string_value(json_object_get(n, "type")),
		json_string_value(json_object_get(n, "title")));
	const char *desc = json_string_value(json_object_get(n, "description"));
	if (desc && *desc)
		fprintf(out, "    description: %s\n", desc);
	json_array_foreach (json_object_get(n, "actions"), i, x)
		fprintf(out, "    action: %s -> %s\n", json_string_value(json_object_get(x, "text")),
			json_string_value(json_object_get(x, "href")));
	if (json_object_get(n, "ttl"))
		fprintf(out, "    ttl: %lld\n", (long long)json_integer_value(json_object_get(n, "ttl")));
}

/* Text report for one event: matched and filtered-out rules first, then a
 * count of the rules that do not handle the event type, then notifications. */
static void print_report_text(const char *where, const json_t *report, FILE *out)
{
	size_t i, other = 0;
	json_t *r;

	fprintf(out, "== %s (%s)\n", where, json_string_value(json_object_get(report, "eventType")));
	json_array_foreach (json_object_get(report, "rules"), i, r) {
		const char *stage = json_string_value(json_object_get(r, "stage"));
		if (!strcmp(stage, "events")) {
			other++;
			continue;
		}
		const char *outcome = json_string_value(json_object_get(r, "outcome"));
		fprintf(out, "%-8s %s (%s:%lld)", outcome, json_string_value(json_object_get(r, "rule")),
			json_string_value(json_object_get(r, "file")),
			(long long)json_integer_value(json_object_get(r, "line")));
		if (strcmp(outcome, "matched"))
			fprintf(out, " [%s]", stage);
		fprintf(out, ": %s\n", json_string_value(json_object_get(r, "reason")));
	}
	if (other)
		fprintf(out, "(%zu other rule%s do%s not handle this event type)\n", other,
			other == 1 ? "" : "s", other == 1 ? "es" : "");
	json_t *notes = json_object_get(report, "notifications");
	if (json_array_size(notes) == 0)
		fprintf(out, "no notifications\n");
	json_array_foreach (notes, i, r)
		print_notification_text(r, out);
}

static int cmd_test(const struct cli_opts *o, FILE *out, FILE *err)
{
	struct rules_diags diags;
	struct rules_scratch *scratch = NULL;
	struct rules_set *set;
	json_t *all = NULL, *fit = NULL;
	int rc = 0;

	if (o->npaths < 2) {
		usage(err);
		return 2;
	}
	if (o->fit_path) {
		json_error_t jerr;
		if (!(fit = json_load_file(o->fit_path, 0, &jerr))) {
			fprintf(err, "%s:%d:%d: error: %s\n", o->fit_path, jerr.line, jerr.column, jerr.text);
			return 1;
		}
	}
	const struct rules_invocation inv = {fit};
	rules_diags_init(&diags);
	set = rules_load_paths(o->paths, 1, &diags);
	rules_diags_print(&diags, err);
	if (!set) {
		fprintf(err, "%s: %zu error%s; nothing tested\n", o->paths[0], diags.errors,
			diags.errors == 1 ? "" : "s");
		rc = 1;
		goto done;
	}
	scratch = rules_scratch_new();
	all = json_array();
	if (!scratch || !all) {
		fprintf(err, "notify-gateway rules: out of memory\n");
		rc = 1;
		goto done;
	}
	for (int i = 1; i < o->npaths; i++) {
		json_error_t jerr;
		json_t *doc = json_load_file(o->paths[i], JSON_DECODE_ANY, &jerr);
		if (!doc || !(json_is_object(doc) || json_is_array(doc))) {
			if (doc)
				fprintf(err, "%s: expected a JSON object (or an array of them)\n",
					o->paths[i]);
			else
				fprintf(err, "%s:%d:%d: error: %s\n", o->paths[i], jerr.line, jerr.column,
					jerr.text);
			json_decref(doc);
			rc = 1;
			continue;
		}
		size_t n = json_is_array(doc) ? json_array_size(doc) : 1;
		for (size_t k = 0; k < n; k++) {
			json_t *ev = json_is_array(doc) ? json_array_get(doc, k) : doc;
			char where[1100];
			if (json_is_array(doc))
				snprintf(where, sizeof(where), "%s[%zu]", o->paths[i], k);
			else
				snprintf(where, sizeof(where), "%s", o->paths[i]);
			json_t *report = rules_explain_for(set, o->event_type, ev, &inv, scratch);
			if (!report) {
				fprintf(err, "notify-gateway rules: out of memory\n");
				rc = 1;
				continue;
			}
			json_object_set_new(report, "event", json_string(where));
			if (o->format == CLI_JSON)
				json_array_append(all, report);
			else
				print_report_text(where, report, out);
			json_decref(report);
		}
		json_decref(doc);
	}
	if (o->format == CLI_JSON)
		print_json(all, out);
done:
	json_decref(all);
	json_decref(fit);
	rules_scratch_free(scratch);
	rules_set_unref(set);
	rules_diags_free(&diags);
	return rc;
}

int gw_rules_cli(int argc, char **argv, FILE *out, FILE *err)
{
	struct cli_opts o;
	int rc;

	if (argc >= 1 && !strcmp(argv[0], "manifest")) /* rules_manifest.c */
		return gw_rules_manifest(argc - 1, argv + 1, out, err);
	if (argc < 1 || (strcmp(argv[0], "check") && strcmp(argv[0], "test"))) {
		usage(err);
		return 2;
	}
	bool test = !strcmp(argv[0], "test");
	rc = parse_opts(argc - 1, argv + 1, test, &o, err);
	if (rc == 0)
		rc = test ? cmd_test(&o, out, err) : cmd_check(&o, out, err);
	free(o.paths);
	return rc;
}
