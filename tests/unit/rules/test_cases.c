/* test_cases.c - data-driven expression tests: runs every .txt file in
 * cases/, or with --conformance every one in conformance/ (the Jira
 * expressions conformance table, issue 17), where every case must follow a
 *   @ URL                           line naming the Atlassian page that
 *                                   documents it (it applies until the next)
 * An expression line ending in a backslash continues on the next line
 * (joined with a newline), for statements and '#' comments.
 *
 * Format (jq style), blocks separated by blank lines, '#' lines are comments:
 *   expression                      (one line)
 *   event JSON                      (one line)
 *   expected                        one of:
 *     a JSON value                  the result must equal it (jansson json_equal)
 *     %%ERROR message               evaluation fails with exactly this message
 *     %%FAIL line:col: message      compilation fails; first diagnostic is
 *                                   "expr:line:col: error: message"
 * Ownership: all memory is freed per case. Threads: single-threaded.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "rules.h"

static int cases_run;
static bool need_source; /* --conformance: every case has an @ URL */

static void chomp(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

static void run_case(const char *where, const char *expr, const char *event_text, const char *expected,
		     struct rules_scratch *scratch)
{
	struct rules_diags d;
	json_error_t jerr;
	json_t *event = json_loads(event_text, JSON_DECODE_ANY, &jerr);

	cases_run++;
	rules_diags_init(&d);
	if (!event) {
		fprintf(stderr, "%s: bad event JSON: %s\n", where, jerr.text);
		CHECK(event != NULL);
		return;
	}
	struct rules_expr *e = rules_expr_compile("expr", expr, strlen(expr), 1, 1, &d);
	if (strncmp(expected, "%%FAIL ", 7) == 0) {
		char want[13000];
		snprintf(want, sizeof(want), "expr:%s", expected + 7);
		char *got = NULL;
		if (!e && d.count) {
			got = rules_diag_format(&d.items[0]);
			char *nl = strchr(got, '\n');
			if (nl)
				*nl = '\0';
			/* "expr:1:2: error: msg" -> drop " error:" to match the case text */
			char *sev = strstr(got, " error: ");
			if (sev)
				memmove(sev + 1, sev + 8, strlen(sev + 8) + 1);
		}
		if (!got || strcmp(got, want) != 0)
			fprintf(stderr, "%s: %s\n", where, expr);
		CHECK_STR_EQ(got, want);
		free(got);
		goto done;
	}
	if (!e) {
		fprintf(stderr, "%s: %s: does not compile: %s\n", where, expr,
			d.count ? d.items[0].message : "?");
		CHECK(e != NULL);
		goto done;
	}
	json_t *result = NULL;
	char *error = NULL;
	int rc = rules_expr_eval(e, event, scratch, &result, &error);
	if (strncmp(expected, "%%ERROR ", 8) == 0) {
		if (rc == 0 || strcmp(error, expected + 8) != 0)
			fprintf(stderr, "%s: %s\n", where, expr);
		CHECK_INT_EQ(rc, -1);
		CHECK_STR_EQ(error, expected + 8);
	} else {
		json_t *want = json_loads(expected, JSON_DECODE_ANY, &jerr);
		char *got = result ? json_dumps(result, JSON_ENCODE_ANY) : NULL;
		bool ok = rc == 0 && want && json_equal(result, want);
		if (!ok)
			fprintf(stderr, "%s: %s\n  got: %s\n  error: %s\n  expected: %s\n", where, expr,
				got ? got : "-", error ? error : "-", expected);
		CHECK(ok);
		free(got);
		json_decref(want);
	}
	json_decref(result);
	free(error);
	rules_expr_free(e);
done:
	json_decref(event);
	rules_diags_free(&d);
}

static void run_file(const char *path, struct rules_scratch *scratch)
{
	FILE *f = fopen(path, "r");
	char line[3][12000], where[600], source[400] = "";
	int have = 0, lineno = 0, start = 0;
	char buf[12000];

	line[0][0] = '\0';
	CHECK(f != NULL);
	if (!f)
		return;
	while (fgets(buf, sizeof(buf), f)) {
		lineno++;
		chomp(buf);
		if (buf[0] == '#' && have == 0)
			continue;
		if (buf[0] == '@' && buf[1] == ' ' && have == 0) {
			snprintf(source, sizeof(source), "%.300s", buf + 2);
			CHECK(strncmp(source, "https://", 8) == 0);
			continue;
		}
		size_t bl = strlen(buf);
		if (have == 0 && bl && buf[bl - 1] == '\\') {
			/* continued expression: keep reading into line[0] */
			if (line[0][0] == '\0' || start == 0)
				start = lineno;
			buf[bl - 1] = '\n';
			strncat(line[0], buf, sizeof(line[0]) - strlen(line[0]) - 1);
			continue;
		}
		if (buf[0] == '\0') {
			if (have != 0) {
				fprintf(stderr, "%s:%d: incomplete case\n", path, start);
				CHECK(have == 0);
				have = 0;
			}
			continue;
		}
		if (have == 0 && line[0][0]) { /* the last line of a continued expression */
			strncat(line[0], buf, sizeof(line[0]) - strlen(line[0]) - 1);
			have = 1;
			continue;
		}
		if (have == 0)
			start = lineno;
		snprintf(line[have++], sizeof(line[0]), "%s", buf);
		if (have == 3) {
			snprintf(where, sizeof(where), "%s:%d (%s)", path, start,
				 source[0] ? source : "no source");
			if (need_source && !source[0])
				fprintf(stderr, "%s: a conformance case needs an @ URL line\n", where);
			CHECK(!need_source || source[0]);
			run_case(where, line[0], line[1], line[2], scratch);
			have = 0;
			line[0][0] = '\0';
			start = 0;
		}
	}
	CHECK(have == 0);
	fclose(f);
}

int main(int argc, char **argv)
{
	struct rules_scratch *scratch = rules_scratch_new();
	need_source = argc > 1 && !strcmp(argv[1], "--conformance");
	const char *sub = need_source ? "conformance" : "cases";
	char dirpath[900];
	snprintf(dirpath, sizeof(dirpath), "%s/%s", RULES_TEST_DIR, sub);
	DIR *dir = opendir(dirpath);
	struct dirent *de;
	int files = 0;

	CHECK(dir != NULL);
	while (dir && (de = readdir(dir))) {
		size_t n = strlen(de->d_name);
		if (n < 5 || strcmp(de->d_name + n - 4, ".txt") != 0)
			continue;
		char path[1024];
		snprintf(path, sizeof(path), "%s/%.100s", dirpath, de->d_name);
		run_file(path, scratch);
		files++;
	}
	if (dir)
		closedir(dir);
	rules_scratch_free(scratch);
	fprintf(stderr, "%d cases in %d files\n", cases_run, files);
	CHECK(cases_run >= (need_source ? 150 : 100));
	return CHECK_DONE();
}
