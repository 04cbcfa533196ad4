/* test_logjson.c - log.format: json (log.c): every record is one line that
 * parses as a JSON object with ts, level and msg; the message's key=value
 * fields become members (quoted GW_Q values unquoted); control bytes, quotes
 * and invalid UTF-8 in values cannot break the object; a record longer than
 * the line buffer is cut but still valid JSON (truncated: true); reserved
 * names (ts, level, msg) are never overwritten by a field. stderr goes to a
 * temporary file that is read back. Single-threaded. */
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check.h"
#include "log.h"

static char path[512];
static int saved_stderr = -1;

static void capture(void)
{
	snprintf(path, sizeof(path), "%s/logjson-XXXXXX",
		 getenv("GW_TEST_TMP") ? getenv("GW_TEST_TMP") : "/tmp");
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	saved_stderr = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

/* Restores stderr and returns the captured records, parsed (an array). */
static json_t *records(void)
{
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	FILE *f = fopen(path, "r");
	json_t *all = json_array();
	char line[16384];
	while (f && fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);
		CHECK(n > 0 && line[n - 1] == '\n'); /* one record, one line */
		json_error_t e;
		json_t *j = json_loads(line, 0, &e);
		if (!j)
			fprintf(stderr, "not JSON (%s): %s", e.text, line);
		CHECK(json_is_object(j));
		json_array_append_new(all, j ? j : json_null());
	}
	if (f)
		fclose(f);
	unlink(path);
	return all;
}

static const char *str(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

int main(void)
{
	gw_log_set_level(GW_LOG_DEBUG);
	gw_log_set_json(1);
	capture();
	gw_log(GW_LOG_NOTICE, "event accepted trace=%s type=%s installation=%s", "abc123",
	       GW_Q("avi:jira:created:issue"), GW_Q("ari:cloud:ecosystem::installation/1"));
	gw_log(GW_LOG_WARN, "event refused trace=%s status=%d reason=%s detail=%s", "t2", 401,
	       "token_expired",
	       GW_Q("quote \" backslash \\ newline \n tab \t esc \x1b bad \xff utf8 caf\xc3\xa9"));
	gw_log(GW_LOG_ERR,
	       "raw control \x01 and \"quotes\" in the message ts=forged level=forged msg=forged");
	gw_log(GW_LOG_INFO, "rule trace=t3 rule=bug-created: a note, with punctuation;");
	char big[6000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	gw_log(GW_LOG_DEBUG, "long %s", big);
	gw_log_lws_emit(1, "lws says hello\n");
	/* short enough to format, too long once every byte is escaped */
	char ctl[1500];
	memset(ctl, 0x01, sizeof(ctl) - 1);
	ctl[sizeof(ctl) - 1] = '\0';
	gw_log(GW_LOG_WARN, "controls %s end", ctl);
	json_t *r = records();
	CHECK_INT_EQ(json_array_size(r), 7);

	json_t *a = json_array_get(r, 0);
	CHECK_STR_EQ(str(a, "level"), "notice");
	CHECK(str(a, "ts") && strlen(str(a, "ts")) == 24 && str(a, "ts")[23] == 'Z');
	CHECK_STR_EQ(str(a, "trace"), "abc123");
	CHECK_STR_EQ(str(a, "type"), "avi:jira:created:issue");
	CHECK_STR_EQ(str(a, "installation"), "ari:cloud:ecosystem::installation/1");
	CHECK(strstr(str(a, "msg"), "event accepted trace=abc123") != NULL);

	json_t *b = json_array_get(r, 1);
	CHECK_STR_EQ(str(b, "level"), "warn");
	CHECK_STR_EQ(str(b, "status"), "401");
	CHECK_STR_EQ(str(b, "reason"), "token_expired");
	/* GW_Q escaped the control bytes and bad UTF-8 as \xNN text; the JSON
	 * field holds that text with the quote and backslash unescaped */
	CHECK_STR_EQ(str(b, "detail"),
		     "quote \" backslash \\ newline \\x0a tab \\x09 esc \\x1b bad \\xff utf8 caf\xc3\xa9");

	json_t *c = json_array_get(r, 2);
	CHECK_STR_EQ(str(c, "level"), "error");
	CHECK(strstr(str(c, "msg"), "raw control \x01 and \"quotes\"") !=
	      NULL); /* escaped in JSON, intact in the value */
	CHECK(strcmp(str(c, "ts"), "forged") != 0);
	CHECK_STR_EQ(str(c, "level"), "error");
	CHECK(strncmp(str(c, "msg"), "raw control", 11) == 0);

	json_t *d = json_array_get(r, 3);
	CHECK_STR_EQ(str(d, "trace"), "t3");
	CHECK_STR_EQ(str(d, "rule"), "bug-created"); /* the trailing ':' is not part of the value */

	json_t *e = json_array_get(r, 4);
	CHECK(json_is_true(json_object_get(e, "truncated")));
	CHECK(strlen(str(e, "msg")) > 1000 && strlen(str(e, "msg")) < 6000);

	json_t *f = json_array_get(r, 5);
	CHECK_STR_EQ(str(f, "component"), "lws");
	CHECK_STR_EQ(str(f, "msg"), "lws says hello");

	json_t *g = json_array_get(r, 6);
	CHECK(json_is_true(json_object_get(g, "truncated")));
	CHECK_STR_EQ(str(g, "level"), "warn");
	CHECK(str(g, "msg") && strncmp(str(g, "msg"), "controls \x01\x01", 11) == 0 &&
	      strlen(str(g, "msg")) <= 600);
	json_decref(r);
	return CHECK_DONE();
}
