/* main.c - notify-gateway: parse the command line, load rules and keys,
 * build the shared state, run the server, tear down in order.
 * Exit codes: 0 normal stop (also --help/--version), 1 runtime failure,
 * 2 bad command line, config, rules or keys, 3 (GW_STORE_EXIT_CODE) the
 * store cannot be opened (corrupt, unwritable, newer schema, locked). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <libwebsockets.h>

#include "app.h"
#include "admin_api.h"
#include "check_config.h"
#include "broker_local.h"
#include "broker_redis.h"
#include "cluster.h"
#include "http_api.h"
#include "intake.h"
#include "keys.h"
#include "realtime.h"
#include "log.h"
#include "rules.h"
#include "rules_cli.h"
#include "server.h"

extern const char gw_embedded_rules[];
extern const size_t gw_embedded_rules_len;

static void diag_to_stderr(void *ud, int is_error, const char *text)
{
	(void)ud;
	(void)is_error;
	/* a formatted diagnostic ends with its own newline (as rules_diags_print) */
	size_t n = strlen(text);
	fprintf(stderr, n && text[n - 1] == '\n' ? "%s" : "%s\n", text);
}

/* The Redis broker's wake-up (its thread): the service thread drains it. */
static void wake_for_broker(void *ud)
{
	struct gw_app *app = ud;
	if (app->lws)
		lws_cancel_service(app->lws);
}

static struct rules_set *load_rules(const struct gw_config *cfg)
{
	size_t errors = 0;
	struct rules_set *set =
		gw_rulebox_load(cfg->rules, "(embedded default rules)", gw_embedded_rules,
				gw_embedded_rules_len, diag_to_stderr, NULL, NULL, 0, &errors);
	if (!set)
		fprintf(stderr, "notify-gateway: %s: %zu error(s); not starting\n",
			cfg->rules ? cfg->rules : "embedded rules", errors);
	return set;
}

/* workq's handback (workq.h): a worker's answer and its own event's frames
 * go to the service thread together. */
static void outbox_hold(void *ud)
{
	gw_outbox_hold(ud);
}

static void outbox_flush(void *ud)
{
	gw_outbox_flush(ud);
}

int main(int argc, char **argv)
{
	static struct gw_app app;
	/* jansson's hash seed must be set before any thread could create objects. */
	json_object_seed(0);
	if (argc >= 2 && !strcmp(argv[1], "rules"))
		return gw_rules_cli(argc - 2, argv + 2, stdout, stderr);
	if (gw_check_config_requested(argc - 1, argv + 1))
		return gw_check_config(argc - 1, argv + 1, gw_embedded_rules, gw_embedded_rules_len, stdout,
				       stderr);
	gw_config_defaults(&app.cfg);
	int rc = gw_config_from_args(&app.cfg, argc - 1, argv + 1, stdout, stderr);
	if (rc) {
		gw_config_free(&app.cfg);
		return rc == 1 ? 0 : 2;
	}
	gw_log_set_level((enum gw_log_level)gw_log_level_parse(app.cfg.log_level));
	gw_log_set_json(!strcmp(app.cfg.log_format, "json"));
	/* Cluster mode: a bad Redis URL, password or server is bad input. */
	if ((rc = gw_cluster_check(&app.cfg, stderr))) {
		gw_config_free(&app.cfg);
		return rc;
	}

	char amsg[512];
	if (gw_admin_prepare(&app, amsg, sizeof(amsg))) {
		fprintf(stderr, "notify-gateway: %s\n", amsg);
		gw_config_free(&app.cfg);
		return 2;
	}
	struct rules_set *rules = load_rules(&app.cfg);
	if (!rules) {
		gw_config_free(&app.cfg);
		return 2;
	}
	if (gw_keys_load(&app, stderr) || gw_registry_open(&app.registry, app.cfg.state_dir, stderr)) {
		rules_set_unref(rules);
		gw_keys_free(&app);
		gw_config_free(&app.cfg);
		return 2;
	}

	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	app.nworkers = app.cfg.workers > 0 ? app.cfg.workers : (ncpu > 0 ? (int)ncpu : 2);
	app.started_at = time(NULL);
	app.next_id = 0;
	app.release.next = 1;
	if (gw_workq_init(&app.workq, (size_t)app.cfg.verify_backlog, (size_t)app.cfg.queue_capacity) ||
	    gw_outbox_init(&app.outbox, NULL, NULL) || gw_rulebox_init(&app.rulebox) ||
	    gw_sequencer_init(&app.seq, (size_t)app.cfg.seq_bytes) || gw_http_state_init(&app.http) ||
	    gw_realtime_state_init(&app.rt) || !(app.broker = gw_broker_local_new()) ||
	    gw_dedup_init(&app.dedup, (size_t)app.cfg.dedup_capacity, (size_t)app.cfg.dedup_per_installation,
			  app.cfg.dedup_ttl) ||
	    gw_activity_init(&app.activity, (size_t)app.cfg.digest_bytes,
			     (size_t)app.cfg.digest_title_bytes)) {
		fprintf(stderr, "notify-gateway: out of memory at start\n");
		return 1;
	}
	gw_workq_set_auth_cap(&app.workq, (size_t)app.cfg.auth_backlog);
	gw_workq_set_handback(&app.workq, outbox_hold, outbox_flush, &app.outbox);
	struct gw_store_options sopt = {
		.durability = !strcmp(app.cfg.durability, "os") ? GW_STORE_OS : GW_STORE_FSYNC,
		.retention = app.cfg.history_retention,
		.per_user = app.cfg.history_per_user,
	};
	char smsg[512] = "";
	/* Cluster mode (--redis): the shared engine; the node id must outlive the store. */
	static char node_id[256];
	struct gw_store_cluster cl;
	int clustered = !gw_cluster_settings(&app.cfg, &cl, node_id, sizeof(node_id));
	const char *kind = clustered ? "redis" : app.cfg.store;
	int src = gw_store_open_ex(kind, app.cfg.state_dir, &sopt, clustered ? &cl : NULL, &app.store, smsg,
				   sizeof(smsg));
	if (src) {
		fprintf(stderr, "notify-gateway: store %s: %s (%s); not starting\n", kind, smsg,
			gw_store_strerror(src));
		rules_set_unref(rules);
		gw_keys_free(&app);
		gw_config_free(&app.cfg);
		return GW_STORE_EXIT_CODE;
	}
	app.seq.store = app.store;
	if (clustered) {
		/* Every node delivers from the users' channels, its own notes included. */
		struct gw_broker_redis_options bo = {
			.redis = cl.redis,
			.nredis = cl.nredis,
			.timeout_ms = cl.timeout_ms,
			.node_id = cl.node_id,
			.wake = wake_for_broker,
			.wake_ud = &app,
			.marked = gw_realtime_remote_marked,
			.marked_ud = &app,
		};
		char bmsg[400] = "";
		struct gw_broker *rb = gw_broker_redis_new(&bo, bmsg, sizeof(bmsg));
		if (!rb) {
			fprintf(stderr, "notify-gateway: cluster broker: %s; not starting\n", bmsg);
			return 2;
		}
		app.broker->ops->destroy(app.broker);
		app.broker = app.redis_broker = rb;
	}
	/* Accepted before a crash, not done: first in line, in journal order. */
	size_t replayed = 0;
	/* Cluster mode: the claim thread takes them instead (claimer.h); every
	 * node replaying every pending event would process each on all nodes. */
	if (!clustered && (src = gw_intake_replay_pending(&app, &replayed))) {
		fprintf(stderr, "notify-gateway: store %s: cannot read the journal: %s; not starting\n",
			app.cfg.store, gw_store_strerror(src));
		return GW_STORE_EXIT_CODE;
	}
	if (clustered)
		gw_log(GW_LOG_NOTICE,
		       "cluster: node %s on %d Redis server(s), timeout %d ms, claim after %d ms", cl.node_id,
		       app.cfg.nredis, app.cfg.cluster_timeout, app.cfg.cluster_claim_after);
	gw_log(GW_LOG_NOTICE, "store: %s (%s durability), epoch %s, %zu journaled events to finish first",
	       kind, app.cfg.durability, app.store->ops->epoch(app.store), replayed);
	/* the trace ring runs the rules twice: only when the admin API can read it */
	if (gw_admin_enabled(&app) && app.cfg.admin_trace_events > 0 &&
	    gw_trace_init(&app.trace, (size_t)app.cfg.admin_trace_events,
			  (size_t)app.cfg.admin_trace_bytes)) {
		fprintf(stderr, "notify-gateway: out of memory at start\n");
		return 1;
	}
	if (app.redis_broker)
		gw_broker_redis_set_rules_version(app.redis_broker, rules_set_version(rules));
	gw_rulebox_install_take(&app.rulebox, rules, app.cfg.rules);
	gw_log(GW_LOG_NOTICE, "rules: %zu from %s (version %s)", rules_set_count(rules),
	       app.cfg.rules ? app.cfg.rules : "the embedded default", rules_set_version(rules));

	rc = gw_server_run(&app);

	app.broker->ops->destroy(app.broker);
	gw_http_state_free(&app.http);
	gw_realtime_state_free(&app.rt);
	gw_sequencer_destroy(&app.seq);
	gw_rulebox_destroy(&app.rulebox);
	gw_outbox_destroy(&app.outbox);
	gw_workq_destroy(&app.workq);
	gw_dedup_destroy(&app.dedup);
	gw_activity_destroy(&app.activity);
	gw_trace_destroy(&app.trace);
	gw_registry_close(&app.registry);
	app.store->ops->close(app.store);
	gw_keys_free(&app);
	gw_config_free(&app.cfg);
	return rc;
}
