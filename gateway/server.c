/* server.c - the lws context, the service loop, signals and the ordered stop.
 *
 * The service thread (main) owns the lws context and runs lws_service; it
 * does I/O only. Workers wake it with lws_cancel_service (outbox wake
 * callback); LWS_CALLBACK_EVENT_WAIT_CANCELLED then drains the outbox:
 * HTTP answers, token verdicts for websockets, and delivery batches, which
 * are released to the broker strictly in intake order.
 *
 * Stop (SIGTERM/SIGINT): refuse new requests and upgrades (503 / refused
 * handshake), let the workers finish every accepted event, deliver the
 * batches (counting what had no subscriber), flush and close every websocket
 * with 1001, then destroy the context. limits: shutdown_grace seconds.
 */
#include <errno.h>
#include <uv.h>
#include <libwebsockets.h>
#include <sys/resource.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "http_api.h"
#include "realtime.h"
#include "server.h"
#include "log.h"
#include "metrics.h"
#include "sdnotify.h"
#include "tls.h"
#include "admin_api.h"
#include "store_probe.h"
#include "stats.h"
#include "static_guard.h"
#include "journal.h"
#include "recorder.h"
#include "batch.h"
#include "intake.h"
#include "claimer.h"
#include "broker_redis.h"
#include "store_jobs.h"
#include "workers.h"

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;
static volatile sig_atomic_t pause_toggle_requested;

static void on_usr1(int sig)
{
	(void)sig;
	pause_toggle_requested = 1;
}

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void on_uv_signal(uv_signal_t *h, int sig)
{
	(void)h;
	if (sig == SIGHUP)
		reload_requested = 1;
	else if (sig == SIGUSR1)
		pause_toggle_requested = 1;
	else
		stop_requested = 1;
}

static void on_hup(int sig)
{
	(void)sig;
	reload_requested = 1;
}

void gw_server_request_reload(void)
{
	reload_requested = 1;
}

void gw_server_set_paused(struct gw_app *app, int paused, const char *by)
{
	app->intake_paused = paused;
	gw_log(GW_LOG_NOTICE, "intake %s (%s): events are answered %s", paused ? "paused" : "resumed", by,
	       paused ? "503 + Retry-After until resumed" : "normally again");
}

/* ---- outbox drain (service thread) -------------------------------------- */

static void hold_batch(struct gw_app *app, struct gw_outbox_item *b)
{
	struct gw_outbox_item **pp = &app->release.held;
	while (*pp && (*pp)->intake_no < b->intake_no)
		pp = &(*pp)->next;
	b->next = *pp;
	*pp = b;
}

static void release_batches(struct gw_app *app)
{
	while (app->release.held && app->release.held->intake_no == app->release.next) {
		struct gw_outbox_item *b = app->release.held;
		app->release.held = b->next;
		if (b->count && b->received_ns)
			gw_hist_observe_ns(GW_HIST_event_to_frame, gw_monotonic_ns() - b->received_ns);
		for (size_t i = 0; i < b->count; i++) {
			struct gw_delivery *d = &b->items[i];
			size_t n = gw_broker_publish(app->broker, d->installation, d->user, d->ctx, d->msg);
			if (!n)
				gw_stat_inc(GW_STAT_notifications_undelivered);
			if (app->trace.ring && d->user)
				gw_trace_delivered(&app->trace, b->intake_no, d->user, d->seq, n);
		}
		app->release.next++;
		gw_outbox_item_free(b);
	}
}

static void drain_outbox(struct gw_app *app)
{
	struct gw_outbox_item *it = gw_outbox_take_all(&app->outbox);
	while (it) {
		struct gw_outbox_item *next = it->next;
		it->next = NULL;
		switch (it->kind) {
		case GW_OUT_ANSWER: gw_http_answer_ready(app, it); break;
		case GW_OUT_AUTH: gw_realtime_auth_done(app, it); break;
		case GW_OUT_BATCH: hold_batch(app, it); break;
		case GW_OUT_STORE: gw_realtime_store_done(app, it); break;
		}
		it = next;
	}
	release_batches(app);
}

/* ---- the 1 s sweep ----------------------------------------------------------
 *
 * One process-wide timer on the service thread; each module does its own part:
 * realtime (deadlines, expiry, pings), the outbox safety net, HTTP (answers
 * whose writeable callback never came) and the lws log budget. */

static struct {
	lws_sorted_usec_list_t sul;
	struct gw_app *app;
} sweep;

/* Retention: one bounded purge job (store_jobs.c) at a time, every
 * PURGE_INTERVAL seconds, or on the next sweep while the last one hit its
 * bound; on a worker, never here. */
#define PURGE_INTERVAL 60

static void schedule_purge(struct gw_app *app, time_t now)
{
	if (app->purge_running || app->stopping ||
	    (!app->purge_more && now - app->purge_last < PURGE_INTERVAL))
		return;
	struct gw_store_req *r = gw_store_req_new(GW_SOP_PURGE);
	struct gw_job *job = r ? gw_job_new(GW_JOB_STORE) : NULL;
	if (!job) {
		gw_store_req_free(r);
		return;
	}
	job->store_req = r;
	if (gw_workq_push_verify(&app->workq, job)) {
		gw_job_free(job);
		return;
	}
	app->purge_running = 1;
	app->purge_more = 0;
	app->purge_last = now;
}

/* Cluster mode: frames the Redis broker received go to their connections;
 * when a shard's feed is back after a loss (a new generation of its
 * subscriber, seen ready), the connections whose user lives on that shard
 * resume through their clients (realtime.h resume_shard). Once a shard's
 * generation changed, nothing its new subscriber brings may reach a
 * connection opened before: notifications published while the feed was
 * down never reached this node, and a later one would leave a gap that a
 * client resuming after the highest seq it holds never fills (found by the
 * Redis-restart black-box test). So the broker holds that shard's frames
 * (they carry their generation; bounded by its inbox, INBOX_MAX_BYTES)
 * until the feed is ready, the shard's connections are closed with 1012
 * first (a closing connection takes no frame), and only then is the new
 * generation accepted. The other shards' users keep their live feed. */
static void cluster_service(struct gw_app *app)
{
	struct gw_broker *b = app->redis_broker;
	if (!b)
		return;
	size_t n = gw_broker_redis_nshards(b);
	for (size_t i = 0; i < n; i++) {
		/* generation before readiness: a subscriber made again in
		 * between only has its frames held (newer than accepted) */
		uint64_t gen = gw_broker_redis_shard_generation(b, i),
			 acc = gw_broker_redis_shard_accepted(b, i);
		if (gen == acc || !gw_broker_redis_shard_ready(b, i))
			continue; /* live, or held: the frames of a feed that had a gap */
		/* Before the first readiness, gen > 1 means the subscriber was
		 * made again already: subscriptions confirmed on the first one
		 * (broker.h) may have missed notifications too. */
		if (acc || gen > 1) {
			gw_log(GW_LOG_WARN,
			       "cluster: the broker's feed of Redis shard %zu is back; notifications published "
			       "meanwhile did not reach this node: its websockets of that shard's users are "
			       "closed with 1012 to resume with since",
			       i + 1);
			gw_realtime_resume_shard(app, i, n);
		}
		gw_broker_redis_accept_shard(b, i, gen);
	}
	gw_broker_redis_drain(b);
}

static void sweep_cb(lws_sorted_usec_list_t *sul)
{
	struct gw_app *app = sweep.app;
	gw_realtime_sweep(app, time(NULL));
	cluster_service(app);
	schedule_purge(app, time(NULL));
	/* Safety net: results waiting in the outbox are drained even if a
	 * wake-up went missing (a cheap guard: one mutex check per second). */
	if (!gw_outbox_is_empty(&app->outbox)) {
		drain_outbox(app);
		gw_log(GW_LOG_DEBUG, "sweep: drained waiting results (their wake-up was late or lost)");
	}
	gw_http_sweep(app, gw_monotonic_ns());
	gw_log_lws_flush();
	lws_sul_schedule(app->lws, 0, sul, sweep_cb, LWS_US_PER_SEC);
}

static void sweep_start(struct gw_app *app)
{
	sweep.app = app;
	lws_sul_schedule(app->lws, 0, &sweep.sul, sweep_cb, LWS_US_PER_SEC);
}

static void sweep_stop(void)
{
	lws_sul_cancel(&sweep.sul);
}

static int http_protocol_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
			    size_t len)
{
	if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
		const struct lws_protocols *p = lws_get_protocol(wsi);
		if (p && p->user) {
			drain_outbox((struct gw_app *)p->user);
			cluster_service((struct gw_app *)p->user);
		}
		return 0;
	}
	return gw_http_callback(wsi, (int)reason, user, in, len);
}

static int realtime_protocol_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
				size_t len)
{
	if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED)
		return 0;
	return gw_realtime_callback(wsi, (int)reason, user, in, len);
}

/* The event loop. event_loop: epoll (the default) runs lws inside a libuv
 * loop we own: 2.5x the delivered notifications at 10,000 connections
 * (docs/performance.md). event_loop: poll is lws 4.1.6's own loop, poll(2),
 * which scans every socket on each wake-up: O(connections) per event, but
 * cheaper per HTTP request when there are few. libuv retries its wait on
 * EINTR, so signals reach us through libuv signal handles that set the same
 * flags as the sigaction handlers. */
static uv_loop_t uv_loop_main;
static int uv_in_use;
static uv_signal_t uv_signals[4];

static void service_once(struct gw_app *app)
{
	if (uv_in_use)
		uv_run(&uv_loop_main, UV_RUN_ONCE);
	else
		lws_service(app->lws, 0);
}

static void wake_service(void *ud)
{
	struct gw_app *app = ud;
	if (app->lws)
		lws_cancel_service(app->lws);
}

/* ---- reload ---------------------------------------------------------------- */

/* At most one reload thread exists at a time, and the service thread owns
 * it: started on SIGHUP, joined once it says it is done, and joined before
 * the ordered stop tears anything down (a detached thread used the rule
 * configuration after main had freed it: SIGHUP then SIGTERM was a
 * use-after-free). One thread at a time also means the reload needs no lock
 * of its own: the rulebox lock is the only one it takes. A SIGHUP that
 * arrives while a reload runs is served once that one has finished. */
static pthread_t reload_tid;
static int reload_running; /* service thread only */
static atomic_int reload_finished; /* set by the reload thread as it ends */

static void diag_to_log(void *ud, int is_error, const char *text)
{
	(void)ud;
	gw_log(is_error ? GW_LOG_ERR : GW_LOG_WARN, "reload: %s", text);
}

/* Loads the rule file on its own thread: parsing and compiling are CPU work
 * that must not stall I/O. A broken file keeps the running rules. */
static void *reload_thread(void *arg)
{
	struct gw_app *app = arg;
	char msg[512];
	struct rules_set *set =
		gw_rulebox_load(app->cfg.rules, NULL, NULL, 0, diag_to_log, NULL, msg, sizeof(msg), NULL);
	if (set) {
		gw_log(GW_LOG_NOTICE, "reload: %zu rules from %s (version %s)", rules_set_count(set),
		       app->cfg.rules, rules_set_version(set));
		if (app->redis_broker) /* the other nodes compare (broker_redis.h) */
			gw_broker_redis_set_rules_version(app->redis_broker, rules_set_version(set));
		gw_rulebox_install_take(&app->rulebox, set, app->cfg.rules);
	} else {
		gw_rulebox_record_failure(&app->rulebox, msg);
		gw_log(GW_LOG_ERR, "reload: %s has errors; the running rules stay in force", app->cfg.rules);
	}
	gw_sd_ready(set ? "serving; rules reloaded"
			: "serving; the last reload failed (the running rules stay)");
	atomic_store(&reload_finished, 1);
	return NULL;
}

/* Joins the reload thread if there is one: at once when wait is set,
 * otherwise only if it has finished. Returns 1 while one is still running. */
static int reap_reload(int wait)
{
	if (!reload_running)
		return 0;
	if (!wait && !atomic_load(&reload_finished))
		return 1;
	pthread_join(reload_tid, NULL);
	reload_running = 0;
	return 0;
}

static void start_reload(struct gw_app *app)
{
	if (!app->cfg.rules) {
		gw_log(GW_LOG_NOTICE, "reload: running on the embedded rules; nothing to reload");
		return;
	}
	if (reap_reload(0)) {
		reload_requested = 1; /* after the running one (the 1 s sweep wakes us) */
		return;
	}
	gw_sd_reloading();
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	atomic_store(&reload_finished, 0);
	if (pthread_create(&reload_tid, NULL, reload_thread, app) == 0)
		reload_running = 1;
	else {
		gw_log(GW_LOG_ERR, "reload: cannot start the reload thread");
		gw_sd_ready("serving; the last reload could not start");
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ---- run ------------------------------------------------------------------- */

static int work_idle(struct gw_app *app)
{
	return gw_workq_event_depth(&app->workq) == 0 && gw_workq_verify_depth(&app->workq) == 0 &&
	       gw_journal_depth(app->journal) == 0 && app->http.pending.count == 0 &&
	       app->release.next == gw_workq_next_intake_no(&app->workq) && app->release.held == NULL &&
	       gw_outbox_is_empty(&app->outbox);
}

/* The soft open-file limit decides two things in lws 4.1.6: how many
 * connections it accepts (it sizes its fd table from it when the context is
 * created), and, in Debian's build (compiled with _DEBUG), the cost of every
 * close: a sanity check scans the whole table, about 3 ns per slot (60 us
 * per close at 20,000 slots, 3 ms at 1,048,576). So the gateway sets the
 * limit itself, from limits.max_fds: before the context is created to size
 * lws's table, then FD_RESERVE higher for what is not a socket (libuv,
 * files, pipes). lws stops accepting when its table is full; without the
 * reserve the process would hit EMFILE first, and lws 4.1.6 retries a
 * failing accept at once, forever (a busy loop logging "accept: errno 24"). */
#define FD_RESERVE 64

static void set_fd_limit(struct gw_app *app, int after_context)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t want = (rlim_t)app->cfg.max_fds;
	if (rl.rlim_max != RLIM_INFINITY && want + FD_RESERVE > rl.rlim_max) {
		if (!after_context) /* worth a warning only when set on purpose (not the default) */
			gw_log(app->cfg.max_fds == 65536 ? GW_LOG_INFO : GW_LOG_WARN,
			       "limits.max_fds %d does not fit under the hard open-file limit %llu; using %llu",
			       app->cfg.max_fds, (unsigned long long)rl.rlim_max,
			       (unsigned long long)(rl.rlim_max - FD_RESERVE));
		want = rl.rlim_max - FD_RESERVE;
	}
	if (after_context)
		want += FD_RESERVE;
	if (rl.rlim_cur == want)
		return;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		gw_log(GW_LOG_WARN, "cannot set the open-file limit to %llu: %s", (unsigned long long)want,
		       strerror(errno));
	else if (after_context)
		gw_log(GW_LOG_INFO, "open-file limit %llu: %llu connections (limits.max_fds) + %d (was %llu)",
		       (unsigned long long)want, (unsigned long long)(want - FD_RESERVE), FD_RESERVE,
		       (unsigned long long)was);
}

/* A start that failed once the store's threads began: stops every one of
 * them that was started (each stop takes NULL; the claim thread before the
 * journal it feeds), then the lws context. Returns 1. */
static int start_failed(struct gw_app *app, const char *what)
{
	gw_log(GW_LOG_ERR, "cannot start %s", what);
	gw_claimer_stop(app->claimer);
	gw_journal_stop(app->journal);
	gw_claimer_free(app->claimer);
	app->claimer = NULL;
	app->journal = NULL;
	gw_recorder_stop(app->recorder);
	app->recorder = NULL;
	gw_store_probe_stop(app->store_probe);
	app->store_probe = NULL;
	lws_context_destroy(app->lws);
	return 1;
}

int gw_server_run(struct gw_app *app)
{
	set_fd_limit(app, 0);
	static struct lws_protocols protocols[3];
	static const struct lws_protocol_vhost_options pvo_default = {NULL, NULL, "default", "1"};
	static struct lws_protocol_vhost_options pvo_realtime = {NULL, &pvo_default, "notify-gateway", ""};
	static const struct lws_protocol_vhost_options mime_mjs = {NULL, NULL, ".mjs", "text/javascript"};
	static struct lws_http_mount m_root, m_forge, m_health, m_wellknown, m_dev, m_metrics, m_livez,
		m_readyz;

	protocols[0] = (struct lws_protocols){"http-api", http_protocol_cb, gw_http_pss_size, 0, 0, app, 0};
	protocols[1] =
		(struct lws_protocols){"notify-gateway", realtime_protocol_cb, gw_conn_size, 4096, 0, app, 0};
	protocols[2] = (struct lws_protocols){NULL, NULL, 0, 0, 0, NULL, 0};

	m_root = (struct lws_http_mount){0};
	m_root.mountpoint = "/";
	m_root.mountpoint_len = 1;
	m_root.origin = app->cfg.web_root;
	m_root.def = "index.html";
	m_root.origin_protocol = LWSMPRO_FILE;
	m_root.extra_mimetypes = &mime_mjs;
	/* A file that is not there falls through to our callback for a 404;
	 * without a protocol bound here lws leaves the request unanswered. */
	m_root.protocol = "http-api";
	static struct lws_http_mount m_admin;
	static struct lws_http_mount m_subscription; /* forge.subscription_path outside /forge/ */
	struct lws_http_mount *cb_mounts[] = {&m_forge,	  &m_health, &m_wellknown, &m_dev,	   &m_admin,
					      &m_metrics, &m_livez,  &m_readyz,	   &m_subscription};
	const char *cb_points[] = {"/forge", "/healthz", "/.well-known",
				   "/dev",   "/admin",	 "/metrics",
				   "/livez", "/readyz",	 app->cfg.subscription_path};
	int ncb = strncmp(app->cfg.subscription_path, "/forge/", 7) ? 9 : 8;
	struct lws_http_mount *prev = &m_root;
	for (int i = 0; i < ncb; i++) {
		*cb_mounts[i] = (struct lws_http_mount){0};
		cb_mounts[i]->mountpoint = cb_points[i];
		cb_mounts[i]->mountpoint_len = (unsigned char)strlen(cb_points[i]);
		cb_mounts[i]->origin = "http-api";
		cb_mounts[i]->protocol = "http-api";
		cb_mounts[i]->origin_protocol = LWSMPRO_CALLBACK;
		prev->mount_next = cb_mounts[i];
		prev = cb_mounts[i];
	}

	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = app->cfg.listen_port;
	info.iface = app->cfg.listen_host;
	info.protocols = protocols;
	info.mounts = &m_root;
	info.pvo = &pvo_realtime;
	info.vhost_name = "default";
	info.max_http_header_data = 16384; /* FITs with licence claims run to several KB */
	info.timeout_secs = 30;
	/* No lws "validity" timers: lws 4.1.6 arms one per websocket (ping at
	 * 300 s) in a sorted list with O(n) insertion, so every new connection
	 * and every HTTP keep-alive timeout walked all open websockets (23% of
	 * the CPU while 10,000 clients connected). The once-a-second sweep
	 * (realtime's part) pings idle websockets instead (subscriber.ping_interval). */
	static const lws_retry_bo_t no_validity_timers = {0};
	info.retry_and_idle_policy = &no_validity_timers;
	info.options = LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE |
		       LWS_SERVER_OPTION_VALIDATE_UTF8;
	if (!strchr(app->cfg.listen_host, ':'))
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	char tmsg[512];
	if (gw_tls_check(app->cfg.tls_cert, app->cfg.tls_key, tmsg, sizeof(tmsg))) {
		gw_log(GW_LOG_ERR, "%s", tmsg);
		fprintf(stderr, "notify-gateway: %s\n", tmsg);
		return 2;
	}
	gw_tls_configure(app, &info);

	lws_set_log_level(LLL_ERR | LLL_WARN, gw_log_lws_emit);

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	void *foreign_loops[1];
	if (!strcmp(app->cfg.event_loop, "epoll")) {
		if (uv_loop_init(&uv_loop_main)) {
			gw_log(GW_LOG_ERR, "cannot create the libuv event loop");
			return 1;
		}
		uv_in_use = 1;
		foreign_loops[0] = &uv_loop_main;
		info.foreign_loops = foreign_loops;
		info.options |= LWS_SERVER_OPTION_LIBUV;
	}
	app->lws = lws_create_context(&info);
	if (!app->lws) {
		gw_log(GW_LOG_ERR, "cannot listen on %s (address in use or not available?)", app->cfg.listen);
		fprintf(stderr, "notify-gateway: cannot listen on %s%s\n", app->cfg.listen,
			uv_in_use ? " (or libwebsockets' libuv plugin is missing: install "
				    "libwebsockets-evlib-uv, or run with --event-loop poll)"
				  : "");
		if (uv_in_use)
			uv_loop_close(&uv_loop_main);
		uv_in_use = 0;
		return 1;
	}
	set_fd_limit(app, 1);
	if (app->dev_forge_key || app->dev_subscriber_key) {
		int lo = gw_host_is_loopback(app->cfg.listen_host, strlen(app->cfg.listen_host));
		if (!strcmp(app->cfg.dev_mode, "true"))
			gw_log(GW_LOG_WARN,
			       "dev_mode: true: /dev/token and /dev/fit mint tokens for anyone who reaches %s",
			       app->cfg.listen);
		else if (!lo)
			gw_log(GW_LOG_WARN,
			       "development keys in use but %s is not a loopback listener: /dev/token "
			       "and /dev/fit are off (dev_mode: true turns them on)",
			       app->cfg.listen);
	}
	if (gw_static_guard_install(app->lws, app->cfg.web_root))
		gw_log(GW_LOG_WARN, "web_root %s has no real path: static files are not served",
		       app->cfg.web_root);
	if (uv_in_use) {
		static const int sigs[4] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1};
		for (int i = 0; i < 4; i++) {
			uv_signal_init(&uv_loop_main, &uv_signals[i]);
			uv_signal_start(&uv_signals[i], on_uv_signal, sigs[i]);
		}
	}
	app->vhost = lws_get_vhost_by_name(app->lws, "default");
	static const struct gw_admin_control admin_control = {gw_server_request_reload, gw_server_set_paused};
	if (gw_admin_start(app, &admin_control)) {
		lws_context_destroy(app->lws);
		app->lws = NULL;
		return 1;
	}
	app->listen_port = app->vhost ? lws_get_vhost_listen_port(app->vhost) : app->cfg.listen_port;
	app->outbox.wake = wake_service;
	app->outbox.wake_ud = app;

	sweep_start(app);
	/* The memory store's writes never wait on I/O: journal and record on
	 * the worker (no recorder: gw_batch_deliver records in place), two
	 * thread hand-offs fewer per event (issue 15). */
	int inline_store = app->store && !strcmp(app->store->ops->name, "memory");
	if (inline_store)
		app->journal = gw_journal_start_inline(app, gw_intake_journaled);
	else
		app->journal = gw_journal_start(app, gw_intake_journaled);
	if (!app->journal || (!inline_store && !(app->recorder = gw_recorder_start(app, gw_batch_finish))))
		return start_failed(app, "the journal and recorder threads");
	int claim_failed = 0;
	app->claimer = gw_claimer_start(app, gw_intake_claim, &claim_failed);
	if (claim_failed)
		return start_failed(app, "the claim thread");
	if (!(app->store_probe = gw_store_probe_start(app->store)))
		return start_failed(app, "the store probe thread");
	if (gw_workers_start(app)) {
		gw_workq_close(&app->workq);
		gw_workers_join(app);
		return start_failed(app, "worker threads");
	}
	const char *host = app->cfg.listen_host;
	int v6 = strchr(host, ':') != NULL;
	printf("listening on http%s://%s%s%s:%d\n", app->cfg.tls_cert ? "s" : "", v6 ? "[" : "", host,
	       v6 ? "]" : "", app->listen_port);
	fflush(stdout);
	gw_log(GW_LOG_NOTICE, "notify-gateway listening on %s:%d with %d workers", host, app->listen_port,
	       app->nworkers);
	gw_sd_ready("serving");

	while (!stop_requested) {
		service_once(app);
		if (reload_requested) {
			reload_requested = 0;
			gw_tls_reload(app);
			start_reload(app);
		}
		if (pause_toggle_requested) {
			pause_toggle_requested = 0;
			app->intake_paused = !app->intake_paused;
			gw_log(GW_LOG_NOTICE, "intake %s (SIGUSR1): events are answered %s",
			       app->intake_paused ? "paused" : "resumed",
			       app->intake_paused ? "503 + Retry-After until the next SIGUSR1"
						  : "normally again");
		}
	}

	/* ---- ordered stop ---- */
	gw_log(GW_LOG_NOTICE, "stopping: finishing accepted events");
	gw_sd_stopping();
	reap_reload(1); /* a reload under way finishes first: it uses cfg and the rulebox */
	app->stopping = 1;
	/* New verifications are refused, but the workers stay until everything
	 * accepted is processed: an event answered 202 may still be on its way
	 * from the journal thread to the events lane (a closed queue would let
	 * an idle worker leave before it arrives). */
	gw_workq_refuse(&app->workq);
	/* Cluster mode: take no more events; what this node journaled from now
	 * on is claimed by the others (the journal thread still answers). */
	gw_claimer_stop(app->claimer);
	time_t deadline = time(NULL) + app->cfg.shutdown_grace;
	while (!work_idle(app) && time(NULL) < deadline)
		service_once(app);
	if (!work_idle(app))
		gw_log(GW_LOG_WARN, "stopping: grace period over with events still in flight");
	gw_realtime_close_all(app);
	while (app->ws_connections > 0 && time(NULL) < deadline + 2)
		service_once(app);
	gw_workq_close(&app->workq);
	gw_workers_join(app);
	gw_journal_stop(app->journal); /* after the workers: they submit to it */
	app->journal = NULL;
	gw_claimer_free(app->claimer); /* after the journal thread: it kicks it */
	app->claimer = NULL;
	gw_recorder_stop(app->recorder); /* likewise */
	app->recorder = NULL;
	gw_store_probe_stop(app->store_probe);
	app->store_probe = NULL;
	drain_outbox(app);
	gw_log(GW_LOG_NOTICE, "stopped: %llu events accepted, %llu notifications delivered, %llu undelivered",
	       (unsigned long long)gw_stat_get(GW_STAT_events_accepted),
	       (unsigned long long)gw_stat_get(GW_STAT_notifications_delivered),
	       (unsigned long long)gw_stat_get(GW_STAT_notifications_undelivered));
	sweep_stop();
	lws_context_destroy(app->lws);
	gw_admin_stop(app);
	app->lws = NULL;
	gw_static_guard_free();
	if (uv_in_use) {
		for (int i = 0; i < 4; i++) {
			uv_signal_stop(&uv_signals[i]);
			uv_close((uv_handle_t *)&uv_signals[i], NULL);
		}
		/* lws closes its libuv handles asynchronously: let them finish */
		for (int i = 0; i < 1000 && uv_run(&uv_loop_main, UV_RUN_NOWAIT); i++)
			;
		if (uv_loop_close(&uv_loop_main))
			gw_log(GW_LOG_WARN, "stopping: libuv handles still open at exit");
		uv_in_use = 0;
	}
	while (app->release.held) {
		struct gw_outbox_item *b = app->release.held;
		app->release.held = b->next;
		gw_outbox_item_free(b);
	}
	return 0;
}
