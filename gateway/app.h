/* app.h - the running gateway: everything the threads share, in one struct
 * that main owns and hands to the lws protocols (through the protocol user
 * pointer) and to the workers. There is no global state besides counters.
 *
 * Threads and ownership:
 *  - cfg, jwks, subkey, signer, jwks_json: built before any thread starts,
 *    read-only afterwards, freed by main after every thread has stopped;
 *  - workq, outbox, rulebox, sequencer: shared, each with its own lock;
 *  - broker, lws context, pending requests/connections: service thread only.
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
#include "outbox.h"
#include "rulebox.h"
#include "strmap.h"
#include "workq.h"

struct lws_context;
struct lws_vhost;

struct gw_sequencer {
	pthread_mutex_t lock;
	pthread_cond_t turn;
	uint64_t next_intake_no; /* the event whose recipients get seqs next */
	struct gw_strmap user_seq; /* user -> last seq (uintptr_t) */
};

struct gw_app {
	struct gw_config cfg;
	char *forge_app_id;          /* the effective aud (configured or dev) */
	int dev_forge_key;           /* FIT key generated in state_dir */
	int dev_subscriber_key;      /* subscriber secret generated in state_dir */
	char *dev_forge_key_path;
	struct gw_jwks *jwks;
	struct gw_subkey *subkey;
	struct gw_subkey *own_subkey;  /* the signer's public key: tokens minted by /forge/subscription */
	struct gw_signer *signer;
	char *jwks_json;             /* our public JWKS, served verbatim */
	size_t jwks_json_len;

	struct gw_workq workq;
	struct gw_outbox outbox;
	struct gw_rulebox rulebox;
	struct gw_sequencer seq;
	struct gw_dedup dedup;           /* redelivery guard */
	struct gw_registry registry;     /* installations, system tokens */
	struct gw_activity activity;     /* per-user activity for scheduled digests */
	volatile sig_atomic_t intake_paused; /* SIGUSR1 toggles; read by the service thread */

	pthread_t *workers;
	int nworkers;

	/* service thread only */
	struct lws_context *lws;
	struct lws_vhost *vhost;
	struct gw_broker *broker;
	struct gw_strmap pending_http;  /* req id -> struct http_pss* */
	struct http_pss *answers_unwritten; /* answers queued, not yet written (http_api.c) */
	struct gw_strmap conns_by_id;   /* conn id -> struct gw_conn* */
	uint64_t next_id;
	uint64_t next_release;          /* next intake number to hand to the broker */
	struct gw_outbox_item *held;    /* batches that arrived before their turn, sorted */
	size_t ws_connections;
	int listen_port;
	int stopping;                   /* SIGTERM seen: refuse new work */
	time_t started_at;
};

/* pipeline.c: start/stop the worker threads. */
int gw_pipeline_start(struct gw_app *app);
void gw_pipeline_join(struct gw_app *app);
int gw_sequencer_init(struct gw_sequencer *s);
void gw_sequencer_destroy(struct gw_sequencer *s);

extern const size_t gw_http_pss_size; /* sizeof(struct http_pss) */
extern const size_t gw_conn_size;     /* sizeof(struct gw_conn) */

/* server.c */
int gw_server_run(struct gw_app *app);
void gw_server_drain(struct gw_app *app); /* takes and dispatches the outbox */

/* http_api.c / realtime.c: service-thread entry points used by server.c */
struct lws;
int gw_http_callback(struct lws *wsi, int reason, void *user, void *in, size_t len);
int gw_realtime_callback(struct lws *wsi, int reason, void *user, void *in, size_t len);
void gw_http_answer_ready(struct gw_app *app, struct gw_outbox_item *answer); /* takes item */
/* From the 1 s sweep: answers queued for over a second but not written get
 * their writeable callback requested again (counted, logged). */
void gw_http_sweep(struct gw_app *app, int64_t now_ns);
int64_t gw_monotonic_ns(void); /* CLOCK_MONOTONIC in ns (pipeline.c) */
void gw_realtime_auth_done(struct gw_app *app, struct gw_outbox_item *item); /* takes item */
void gw_realtime_close_all(struct gw_app *app);
void gw_realtime_start_sweep(struct gw_app *app);
void gw_realtime_stop_sweep(void);

/* Small helpers shared by the service-thread modules. */
static inline void gw_id_key(uint64_t id, char out[17])
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--) {
		out[i] = hex[id & 15];
		id >>= 4;
	}
	out[16] = '\0';
}

#endif
