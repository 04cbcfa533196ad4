/* test_log.c - log injection (issue 10, item 7): a record is one line
 * whatever the values hold; client-chosen values are quoted and escaped.
 * Single-threaded; stderr is redirected to a temporary file to read the
 * lines back. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check.h"
#include "log.h"

static void quote_is(const char *in, size_t len, const char *want)
{
	struct gw_log_quoted q;
	const char *got = gw_log_quote(&q, in, len);
	if (strcmp(got, want))
		fprintf(stderr, "quote: got [%s] want [%s]\n", got, want);
	CHECK_STR_EQ(got, want);
}

static void test_quote(void)
{
	quote_is("plain", (size_t)-1, "\"plain\"");
	quote_is(NULL, 0, "-");
	quote_is("", (size_t)-1, "\"\"");
	quote_is("a\"b\\c", (size_t)-1, "\"a\\\"b\\\\c\"");
	quote_is("x\ny\rz\t\x1b[2J\x7f", (size_t)-1, "\"x\\x0ay\\x0dz\\x09\\x1b[2J\\x7f\"");
	quote_is("nul\0after", 9, "\"nul\\x00after\"");
	quote_is("caf\xc3\xa9 \xe2\x82\xac", (size_t)-1, "\"caf\xc3\xa9 \xe2\x82\xac\""); /* UTF-8 kept */
	quote_is("c1 \xc2\x85 x", (size_t)-1, "\"c1 \\xc2\\x85 x\""); /* NEL (C1) escaped */
	quote_is("bad \xff\xc3 x", (size_t)-1, "\"bad \\xff\\xc3 x\""); /* invalid UTF-8 */
	quote_is("over \xc0\xaf", (size_t)-1, "\"over \\xc0\\xaf\""); /* overlong */
	/* A literal backslash-x typed by a client stays distinguishable. */
	quote_is("\\x0a", (size_t)-1, "\"\\\\x0a\"");

	char big[1000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	struct gw_log_quoted q;
	const char *got = gw_log_quote(&q, big, (size_t)-1);
	CHECK(strlen(got) <= GW_LOG_QUOTED_MAX + 3);
	CHECK(got[0] == '"');
	CHECK(strcmp(got + strlen(got) - 4, "\"...") == 0);
	/* An escape is never cut in half. */
	char esc[600];
	memset(esc, '\n', sizeof(esc) - 1);
	esc[sizeof(esc) - 1] = '\0';
	got = gw_log_quote(&q, esc, (size_t)-1);
	size_t body = strlen(got) - 5; /* quotes and "..." */
	CHECK(body % 4 == 0);
	CHECK(strcmp(got + strlen(got) - 4, "\"...") == 0);
}

static void test_escape_controls(void)
{
	char out[64];
	size_t n = gw_log_escape_controls("a\nb\x01"
					  "c\x7f",
					  6, out, sizeof(out));
	CHECK_STR_EQ(out, "a\\x0ab\\x01c\\x7f");
	CHECK_INT_EQ(n, strlen(out));
	/* Cut to the buffer, never mid-escape. */
	n = gw_log_escape_controls("\n\n\n\n", 4, out, 10);
	CHECK_STR_EQ(out, "\\x0a\\x0a");
}

static void test_lines(void)
{
	char path[] = "/tmp/gw-test-log-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	int saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	gw_log_set_level(GW_LOG_DEBUG);
	const char *type = "avi:x\n2026-01-01T00:00:00.000Z error forged record\r\x1b[31m";
	gw_log(GW_LOG_NOTICE, "event accepted trace=t type=%s installation=%s", GW_Q(type), GW_Q("i\"j"));
	gw_log(GW_LOG_NOTICE, "unquoted %s end", "two\nlines\x07");
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	char buf[4096] = "";
	lseek(fd, 0, SEEK_SET);
	ssize_t got = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	unlink(path);
	CHECK(got > 0);
	buf[got > 0 ? got : 0] = '\0';
	int lines = 0;
	for (char *p = buf; *p; p++) {
		if (*p == '\n')
			lines++;
		else
			CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
	}
	CHECK_INT_EQ(lines, 2);
	CHECK(strstr(buf, " notice event accepted trace=t type=\"avi:x\\x0a2026-01-01T00:00:00.000Z error "
			  "forged record\\x0d\\x1b[31m\" installation=\"i\\\"j\"\n") != NULL);
	CHECK(strstr(buf, " notice unquoted two\\x0alines\\x07 end\n") != NULL);
	if (check_failures)
		fprintf(stderr, "log output:\n%s", buf);
}

int main(void)
{
	test_quote();
	test_escape_controls();
	test_lines();
	return CHECK_DONE();
}
