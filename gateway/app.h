/* app.h - the running gateway: the state the threads and modules share, in
 * one struct that main owns and hands to the lws protocols (through the
 * protocol user pointer) and to the workers. Functions live in each module's
 * own header, not here.
 *
 * Not everything is in this struct. Process-wide state outside it, each
 * because it must outlive or precede the app or be reachable from a signal
 * handler or a library callback:
 *  - counters (stats.c, atomics) and the log level and lws log budget (log.c);
 *  - server.c: the signal flags, the libuv loop and its signal handles, the
 *    reload lock and the 1 s sweep timer (service thread);
 *  - gwcrypto's SHA-256 fetched once, util.c's fallback id counter.
 *
 * Threads and ownership:
 *  - cfg, jwks, subkey, signer, jwks_json: built before any thread starts,
 *    read-only afterwards, freed by main after every thread has stopped;
 *  - workq, outbox, rulebox, seq, dedup, registry: shared, each with its own
 *    lock; activity: under the sequencer's lock (activity.h);
 *  - lws, broker, ids, counts and the http/rt/release parts (each private to
 *    the module whose header declares it): service thread only.
 */
#ifndef GW_APP_H
#define GW_APP_H

#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include "broker.h"
#include "config.h"
#include "activity.h"
#include "dedup.h"
#include "registry.h"
#include "gw/signer.h"
#include "gw/token.h"
#include "http_api.h"
#include "outbox.h"
#include "realtime.h"
#include "rulebox.h"
#include "sequencer.h"
#include "server.h"
#include "store.h"
#include "strmap.h"
#include "trace.h"
#include "util.h"
#include "workq.h"

struct lws_context;
struct lws_vhost;

struct gw_app {
	struct gw_config cfg;
	char *forge_app_id; /* the effective aud (configured or dev) */
	int dev_forge_key; /* FIT key generated in state_dir */
	int dev_subscriber_key; /* subscriber secret generated in state_dir */
	char *dev_forge_key_path;
	struct gw_jwks *jwks;
	struct gw_subkey *subkey;
	struct gw_subkey *own_subkey; /* the signer's public key: tokens minted by /forge/subscription */
	struct gw_signer *signer;
	char *jwks_json; /* our public JWKS, served verbatim */
	size_t jwks_json_len;

	struct gw_workq workq;
	struct gw_outbox outbox;
	struct gw_rulebox rulebox;
	struct gw_sequencer seq;
	struct gw_dedup dedup; /* redelivery guard */
	struct gw_registry registry; /* installations, system tokens */
	struct gw_activity activity; /* per-user activity for scheduled digests */
	struct gw_store
		*store; /* journal, history, inbox (store.h): workers only, never the service thread */
	struct gw_journal *journal; /* the journal thread (journal.h) */
	struct gw_recorder *recorder; /* the recorder thread (recorder.h) */
	struct gw_claimer *claimer; /* cluster mode: the claim thread (claimer.h); NULL otherwise */
	struct gw_store_probe *store_probe; /* the readiness round trip (store_probe.h) */
	struct gw_trace trace; /* admin trace ring (trace.h); ring NULL: off */
	volatile sig_atomic_t intake_paused; /* SIGUSR1 toggles; read by the service thread */

	pthread_t *workers;
	int nworkers;

	/* service thread only */
	struct lws_context *lws;
	struct lws_vhost *vhost;
	struct gw_broker *broker;
	struct gw_broker *redis_broker; /* cluster mode: the same broker as broker_redis.h; NULL otherwise */
	uint64_t next_id; /* request and connection ids (http_api.c, realtime.c) */
	size_t ws_connections; /* open websockets: counted by realtime.c, read by /healthz and the stop */
	int listen_port;
	int stopping; /* SIGTERM seen: refuse new work */
	int purge_running; /* a retention purge job is queued or running (server.c sweep) */
	int purge_more; /* the last purge hit its bound: the next sweep purges again */
	time_t purge_last; /* when the last purge was queued */
	time_t started_at;

	/* service thread only, each the private state of one module (its header) */
	struct gw_http_state http; /* http_api.h */
	struct gw_realtime_state rt; /* realtime.h */
	struct gw_release release; /* server.h */
};

#endif
