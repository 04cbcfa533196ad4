/* Tests config.c: defaults, YAML loading with positioned errors, flags over
 * file, unknown options with suggestions, ranges, --help/--version. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"
#include "config.h"

static char errbuf[4096];

static FILE *mem(void)
{
	memset(errbuf, 0, sizeof(errbuf));
	return fmemopen(errbuf, sizeof(errbuf), "w");
}

static const char *write_file(const char *name, const char *text)
{
	static char path[512];
	const char *dir = getenv("GW_TEST_TMP");
	snprintf(path, sizeof(path), "%s/%s", dir ? dir : "/tmp", name);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static int run(struct gw_config *cfg, int argc, char **argv)
{
	FILE *err = mem();
	FILE *out = fopen("/dev/null", "w");
	int rc = gw_config_from_args(cfg, argc, argv, out, err);
	fclose(err);
	fclose(out);
	return rc;
}

int main(void)
{
	struct gw_config cfg;
	gw_config_defaults(&cfg);
	CHECK_STR_EQ(cfg.listen_host, "127.0.0.1");
	CHECK_INT_EQ(cfg.listen_port, 8080);
	CHECK_INT_EQ(cfg.max_body, 204800);
	CHECK_INT_EQ(cfg.forge_leeway, 60);
	CHECK(cfg.rules == NULL);
	CHECK(cfg.forge_jwks == NULL);

	char *a1[] = {"--listen", "0.0.0.0:0", "--workers=3", "--state-dir", "/tmp/x"};
	CHECK_INT_EQ(run(&cfg, 5, a1), 0);
	CHECK_STR_EQ(cfg.listen_host, "0.0.0.0");
	CHECK_INT_EQ(cfg.listen_port, 0);
	CHECK_INT_EQ(cfg.workers, 3);
	CHECK_STR_EQ(cfg.state_dir, "/tmp/x");
	gw_config_free(&cfg);

	gw_config_defaults(&cfg);
	char *a2[] = {"--forge-jkws", "x"};
	CHECK_INT_EQ(run(&cfg, 2, a2), 2);
	CHECK(strstr(errbuf, "unknown option '--forge-jkws'; did you mean '--forge-jwks'?") != NULL);
	char *a3[] = {"--listen", "nope"};
	CHECK_INT_EQ(run(&cfg, 2, a3), 2);
	CHECK(strstr(errbuf, "--listen: expected HOST:PORT, got 'nope'") != NULL);
	char *a4[] = {"--listen", "127.0.0.1:70000"};
	CHECK_INT_EQ(run(&cfg, 2, a4), 2);
	char *a5[] = {"--workers", "abc"};
	CHECK_INT_EQ(run(&cfg, 2, a5), 2);
	CHECK(strstr(errbuf, "'workers' expects an integer, got 'abc'") != NULL);
	char *a6[] = {"--forge-leeway", "61"};
	CHECK_INT_EQ(run(&cfg, 2, a6), 2);
	CHECK(strstr(errbuf, "between 0 and 60") != NULL);
	char *a7[] = {"--rules"};
	CHECK_INT_EQ(run(&cfg, 1, a7), 2);
	CHECK(strstr(errbuf, "needs a value") != NULL);
	char *a8[] = {"--version"};
	CHECK_INT_EQ(run(&cfg, 1, a8), 1);
	char *a9[] = {"stray"};
	CHECK_INT_EQ(run(&cfg, 1, a9), 2);
	char *a10[] = {"--forge-jwks", "/x.json"};
	CHECK_INT_EQ(run(&cfg, 2, a10), 2); /* jwks without app id */
	CHECK(strstr(errbuf, "forge.app_id") != NULL);
	gw_config_free(&cfg);

	/* A file, nested sections, relative paths resolved against the file. */
	const char *good = write_file("good.yml", "listen: 127.0.0.1:9999\n"
						  "forge:\n"
						  "  app_id: ari:cloud:ecosystem::app/abc\n"
						  "  jwks: keys/jwks.json\n"
						  "limits:\n"
						  "  queue: 5\n");
	gw_config_defaults(&cfg);
	char *b1[] = {"--config", (char *)good, "--limits-queue", "7"};
	CHECK_INT_EQ(run(&cfg, 4, b1), 0);
	CHECK_INT_EQ(cfg.listen_port, 9999);
	CHECK_INT_EQ(cfg.queue_capacity, 7); /* the flag wins */
	CHECK(cfg.forge_jwks && strstr(cfg.forge_jwks, "/keys/jwks.json") && cfg.forge_jwks[0] == '/');
	gw_config_free(&cfg);

	/* The store options (docs/storage.md): defaults, flags, a file, refusals. */
	gw_config_defaults(&cfg);
	CHECK_STR_EQ(cfg.store, "sqlite");
	CHECK_STR_EQ(cfg.durability, "fsync");
	CHECK_INT_EQ(cfg.history_retention, 30 * 86400);
	CHECK_INT_EQ(cfg.history_per_user, 1000);
	char *s1[] = {
		"--store", "memory", "--durability=os", "--history-retention", "3600", "--history-per-user",
		"5"};
	CHECK_INT_EQ(run(&cfg, 7, s1), 0);
	CHECK_STR_EQ(cfg.store, "memory");
	CHECK_STR_EQ(cfg.durability, "os");
	CHECK_INT_EQ(cfg.history_retention, 3600);
	CHECK_INT_EQ(cfg.history_per_user, 5);
	char *s2[] = {"--store", "redis"};
	CHECK_INT_EQ(run(&cfg, 2, s2), 2);
	CHECK(strstr(errbuf, "'store' must be sqlite or memory, got 'redis'") != NULL);
	char *s3[] = {"--durability", "never"};
	CHECK_INT_EQ(run(&cfg, 2, s3), 2);
	CHECK(strstr(errbuf, "'durability' must be fsync or os") != NULL);
	char *s4[] = {"--history-per-user", "0"};
	CHECK_INT_EQ(run(&cfg, 2, s4), 2);
	gw_config_free(&cfg);
	const char *hist =
		write_file("hist.yml", "store: memory\nhistory:\n  retention: 86400\n  per_user: 50\n");
	gw_config_defaults(&cfg);
	char *s5[] = {"--config", (char *)hist};
	CHECK_INT_EQ(run(&cfg, 2, s5), 0);
	CHECK_STR_EQ(cfg.store, "memory");
	CHECK_INT_EQ(cfg.history_retention, 86400);
	CHECK_INT_EQ(cfg.history_per_user, 50);
	gw_config_free(&cfg);

	const char *bad = write_file("bad.yml", "listen: 127.0.0.1:1\n"
						"limts:\n"
						"  queue: 5\n"
						"forge:\n"
						"  leeway: 99\n"
						"workers: [1, 2]\n");
	gw_config_defaults(&cfg);
	FILE *err = mem();
	CHECK_INT_EQ(gw_config_load_file(&cfg, bad, err), -1);
	fclose(err);
	CHECK(strstr(errbuf, "bad.yml:2:1: error: unknown option 'limts'; did you mean 'limits'?") ||
	      strstr(errbuf, "bad.yml:2:1: error: unknown option 'limts'"));
	CHECK(strstr(errbuf, "bad.yml:5:11: error: 'forge.leeway' must be between 0 and 60, got 99") != NULL);
	CHECK(strstr(errbuf, "bad.yml:6:10: error: 'workers' expects a single value") != NULL);
	gw_config_free(&cfg);

	/* List options: defaults, a YAML list, a comma-separated flag, bad entries. */
	gw_config_defaults(&cfg);
	CHECK_STR_EQ(cfg.cors_allowed_origins, "https://*.cdn.prod.atlassian-dev.net");
	CHECK_STR_EQ(cfg.subscriber_contexts, "jira:issue:{{ context.extension.issue.key }}\n"
					      "confluence:page:{{ context.extension.content.id }}");
	CHECK_STR_EQ(cfg.subscription_path, "/forge/subscription");
	gw_config_free(&cfg);
	const char *lists = write_file(
		"lists.yml", "cors:\n  allowed_origins:\n    - https://app.example.com\n"
			     "    - 'http://127.0.0.1:5173'\n"
			     "subscriber:\n  contexts: ['*', 'user:{{ principal }}']\n  token_ttl: 120\n");
	gw_config_defaults(&cfg);
	char *l1[] = {"--config", (char *)lists};
	CHECK_INT_EQ(run(&cfg, 2, l1), 0);
	CHECK_STR_EQ(cfg.cors_allowed_origins, "https://app.example.com\nhttp://127.0.0.1:5173");
	CHECK_STR_EQ(cfg.subscriber_contexts, "*\nuser:{{ principal }}");
	CHECK_INT_EQ(cfg.subscriber_token_ttl, 120);
	gw_config_free(&cfg);
	gw_config_defaults(&cfg);
	char *l2[] = {"--cors-allowed-origins", " https://a.example , https://*.b.example ,"};
	CHECK_INT_EQ(run(&cfg, 2, l2), 0);
	CHECK_STR_EQ(cfg.cors_allowed_origins, "https://a.example\nhttps://*.b.example");
	gw_config_free(&cfg);
	gw_config_defaults(&cfg);
	char *l3[] = {"--cors-allowed-origins", "a.example"};
	CHECK_INT_EQ(run(&cfg, 2, l3), 2);
	CHECK(strstr(errbuf, "'a.example' is not an origin") != NULL);
	gw_config_free(&cfg);
	const char *badlist =
		write_file("badlist.yml", "cors:\n  allowed_origins: [https://a.example, [1]]\n");
	gw_config_defaults(&cfg);
	err = mem();
	CHECK_INT_EQ(gw_config_load_file(&cfg, badlist, err), -1);
	fclose(err);
	CHECK(strstr(errbuf, "'cors.allowed_origins' entries must be single-line strings without commas") !=
	      NULL);
	gw_config_free(&cfg);

	const char *broken = write_file("broken.yml", "listen: [\n");
	gw_config_defaults(&cfg);
	err = mem();
	CHECK_INT_EQ(gw_config_load_file(&cfg, broken, err), -1);
	fclose(err);
	CHECK(strstr(errbuf, "broken.yml:2:1: error:") != NULL);
	gw_config_free(&cfg);
	if (check_failures)
		fprintf(stderr, "last error output:\n%s\n", errbuf);
	/* cluster.redis: repeatable flag, a URL list; bad URLs are bad input */
	gw_config_defaults(&cfg);
	CHECK_INT_EQ(cfg.nredis, 0);
	CHECK_INT_EQ(cfg.cluster_timeout, 2000);
	CHECK_INT_EQ(cfg.cluster_claim_after, 10000);
	char *r1[] = {"--redis",
		      "redis://127.0.0.1:7001/0",
		      "--cluster-redis=redis://:pw@10.0.0.2:7002",
		      "--node-id",
		      "n-1",
		      "--cluster-timeout",
		      "500"};
	CHECK_INT_EQ(run(&cfg, 7, r1), 0);
	CHECK_INT_EQ(cfg.nredis, 2);
	CHECK(cfg.nredis == 2 && !strcmp(cfg.redis[1], "redis://:pw@10.0.0.2:7002"));
	CHECK_STR_EQ(cfg.node_id, "n-1");
	CHECK_INT_EQ(cfg.cluster_timeout, 500);
	gw_config_free(&cfg);
	gw_config_defaults(&cfg);
	char *r2[] = {"--redis", "rediss://127.0.0.1:7001"};
	CHECK_INT_EQ(run(&cfg, 2, r2), 2);
	CHECK(strstr(errbuf, "no TLS") != NULL);
	char *r3[] = {"--redis", "redis://127.0.0.1:0"};
	CHECK_INT_EQ(run(&cfg, 2, r3), 2);
	CHECK(strstr(errbuf, "bad port") != NULL);
	char *r4[] = {"--cluster-timeout", "10"};
	CHECK_INT_EQ(run(&cfg, 2, r4), 2);
	gw_config_free(&cfg);

	return CHECK_DONE();
}
