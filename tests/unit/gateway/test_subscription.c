/* Tests cors.c's origin matching and subscription.c's context templates:
 * exact origins, https://{*}.domain patterns (labels only, no port, no other
 * scheme, no bare domain), loopback origins; templates filled from FIT
 * claims, a missing value yielding nothing, "*", limits. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "../check.h"
#include "cors.h"
#include "subscription.h"

static const char *LIST =
	"https://app.example.com\nhttps://*.cdn.prod.atlassian-dev.net\nhttp://127.0.0.1:5173";

static void origins(void)
{
	CHECK(gw_cors_origin_listed(LIST, "https://app.example.com"));
	CHECK(gw_cors_origin_listed(LIST, "HTTPS://APP.EXAMPLE.COM"));
	CHECK(gw_cors_origin_listed(LIST, "http://127.0.0.1:5173"));
	CHECK(!gw_cors_origin_listed(LIST, "http://127.0.0.1:5174"));
	CHECK(!gw_cors_origin_listed(LIST, "https://app.example.com.evil.net"));
	CHECK(gw_cors_origin_listed(LIST, "https://0f3a.cdn.prod.atlassian-dev.net"));
	CHECK(gw_cors_origin_listed(LIST, "https://a.b.cdn.prod.atlassian-dev.net"));
	CHECK(!gw_cors_origin_listed(LIST, "https://cdn.prod.atlassian-dev.net"));
	CHECK(!gw_cors_origin_listed(LIST, "https://.cdn.prod.atlassian-dev.net"));
	CHECK(!gw_cors_origin_listed(LIST, "http://x.cdn.prod.atlassian-dev.net"));
	CHECK(!gw_cors_origin_listed(LIST, "https://x.cdn.prod.atlassian-dev.net:8443"));
	CHECK(!gw_cors_origin_listed(LIST, "https://x/y.cdn.prod.atlassian-dev.net"));
	CHECK(!gw_cors_origin_listed(LIST, "https://evilcdn.prod.atlassian-dev.net"));
	CHECK(!gw_cors_origin_listed(LIST, "null"));
	CHECK(!gw_cors_origin_listed("", "https://app.example.com"));
	CHECK(!gw_cors_origin_listed(LIST, "https://app.example.com\nx"));

	CHECK(gw_cors_same_origin("http://127.0.0.1:8080", "127.0.0.1:8080"));
	CHECK(!gw_cors_same_origin("http://127.0.0.1:8081", "127.0.0.1:8080"));
	CHECK(!gw_cors_same_origin("http://127.0.0.1:8080", ""));

	CHECK(gw_cors_loopback("http://127.0.0.1:5173"));
	CHECK(gw_cors_loopback("http://127.1.2.3"));
	CHECK(gw_cors_loopback("http://localhost:3000"));
	CHECK(gw_cors_loopback("https://[::1]:8443"));
	CHECK(!gw_cors_loopback("http://127.0.0.1.example.com"));
	CHECK(!gw_cors_loopback("http://localhost.evil:80"));
	CHECK(!gw_cors_loopback("http://localhost:"));
	CHECK(!gw_cors_loopback("http://localhost:80x"));
	CHECK(!gw_cors_loopback("ftp://127.0.0.1"));
	CHECK(!gw_cors_loopback("http://10.0.0.1"));
}

static void contexts(void)
{
	const char *why = NULL;
	json_t *issue = json_loads("{\"principal\":\"alice\",\"context\":{\"cloudId\":\"c1\",\"extension\":"
				   "{\"issue\":{\"key\":\"SP-10\",\"id\":10073}}}}",
				   0, NULL);
	const char *defaults = "jira:issue:{{ context.extension.issue.key }}\n"
			       "confluence:page:{{ context.extension.content.id }}";
	json_t *c = gw_subscription_contexts(defaults, issue, &why);
	CHECK(c && json_array_size(c) == 1);
	CHECK_STR_EQ(json_string_value(json_array_get(c, 0)), "jira:issue:SP-10");
	json_decref(c);

	/* integers, several placeholders, "*", duplicates dropped, literal only */
	c = gw_subscription_contexts("*\nissue:{{context.extension.issue.id}}/{{ principal }}\n*\nforge:app",
				     issue, &why);
	CHECK(c && json_array_size(c) == 3);
	CHECK_STR_EQ(json_string_value(json_array_get(c, 0)), "*");
	CHECK_STR_EQ(json_string_value(json_array_get(c, 1)), "issue:10073/alice");
	CHECK_STR_EQ(json_string_value(json_array_get(c, 2)), "forge:app");
	json_decref(c);

	/* a missing value, a non-scalar value, an empty string, an unclosed brace: nothing */
	c = gw_subscription_contexts(
		"a:{{ context.nope }}\nb:{{ context.extension }}\nc:{{ context.extension.issue.key", issue,
		&why);
	CHECK(c && json_array_size(c) == 0);
	json_decref(c);

	/* a value making a context over 256 bytes, or with a control character */
	char big[600];
	memset(big, 'K', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	json_t *huge = json_pack("{s:{s:{s:{s:s}}}}", "context", "extension", "issue", "key", big);
	CHECK(gw_subscription_contexts(defaults, huge, &why) == NULL);
	CHECK_STR_EQ(why, "context_too_large");
	json_t *ctl = json_pack("{s:{s:{s:{s:s}}}}", "context", "extension", "issue", "key", "SP-1\nX");
	CHECK(gw_subscription_contexts(defaults, ctl, &why) == NULL);
	CHECK_STR_EQ(why, "bad_context");
	json_decref(huge);
	json_decref(ctl);

	/* at most GW_SUBSCRIPTION_MAX_CONTEXTS */
	char many[2048] = "";
	for (int i = 0; i < 40; i++) {
		char one[32];
		snprintf(one, sizeof(one), "%sctx-%d", i ? "\n" : "", i);
		strcat(many, one);
	}
	c = gw_subscription_contexts(many, issue, &why);
	CHECK_INT_EQ(json_array_size(c), GW_SUBSCRIPTION_MAX_CONTEXTS);
	json_decref(c);
	json_decref(issue);
}

int main(void)
{
	origins();
	contexts();
	return CHECK_DONE();
}
