/* stats.h - process-wide counters (C11 atomics, no locks), any thread.
 *
 * Every limit the gateway enforces has a counter here, so hitting it is
 * observable in /healthz (and later in Prometheus metrics). The X-macro keeps
 * the enum and the names in one place. */
#ifndef GW_STATS_H
#define GW_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#define GW_STATS_COUNTERS(X)                                                                                                                 \
	X(http_requests, "HTTP requests received")                                                                                           \
	X(http_answers_rearmed,                                                                                                              \
	  "HTTP answers still unwritten a second after they were queued (written by the sweep, connection closed)")                          \
	X(http_pipelined_closed,                                                                                                             \
	  "connections closed after answering because the client pipelined (sent a request before the previous answer)")                     \
	X(http_answers_direct,                                                                                                               \
	  "HTTP answers from a worker written at once from the outbox drain, without waiting for a writeable callback")                      \
	X(http_static_refused,                                                                                                               \
	  "static file requests refused: the file's real path is outside web_root (symlink)")                                                \
	X(http_dev_refused, "development endpoint requests refused (403): Host not a loopback name")                                         \
	X(http_admin_refused,                                                                                                                \
	  "admin route requests refused (401 bad token, 403 admin.token_file unset), on either listener")                                    \
	X(events_rejected_body_timeout,                                                                                                      \
	  "events answered 408: the body did not arrive within limits.body_timeout")                                                         \
	X(events_rejected_body_budget, "events answered 503: bodies in flight over limits.body_budget")                                      \
	X(events_rejected_unverified_cap,                                                                                                    \
	  "events answered 429: too many requests from one address awaiting their FIT verdict")                                              \
	X(events_fit_checked_early, "FITs verified from the header before the body was read")                                                \
	X(events_fit_checked_with_body,                                                                                                      \
	  "FITs verified with a body that came in the headers' read (one worker job)")                                                       \
	X(events_accepted, "events answered 202")                                                                                            \
	X(events_rejected_token, "events answered 401")                                                                                      \
	X(events_rejected_json, "events answered 400")                                                                                       \
	X(events_rejected_too_large, "events answered 413")                                                                                  \
	X(events_rejected_media_type, "events answered 415")                                                                                 \
	X(events_rejected_queue_full, "events answered 503: intake queue full")                                                              \
	X(events_rejected_busy, "events answered 503: verification backlog full")                                                            \
	X(events_rejected_stopping, "events answered 503: shutting down")                                                                    \
	X(events_rejected_paused, "events answered 503: intake paused by the admin (SIGUSR1)")                                               \
	X(events_duplicate, "redeliveries of accepted events answered 202 without effect")                                                   \
	X(events_retry_in_flight, "redeliveries answered 503 while the first attempt was being queued")                                      \
	X(redelivery_evicted_own_share,                                                                                                      \
	  "accepted-event keys forgotten within their ttl: their installation held limits.dedup_per_installation keys")                      \
	X(redelivery_evicted_fair_share,                                                                                                     \
	  "accepted-event keys forgotten within their ttl: the table was full and their installation held the most keys")                    \
	X(forge_retries_INVALID_REMOTE_INVOCATION_ERROR,                                                                                     \
	  "deliveries Forge marked as retries after a non-2xx")                                                                              \
	X(forge_retries_TIMEOUT_ERROR, "deliveries Forge marked as retries after a timeout")                                                 \
	X(forge_retries_INVALID_FORGE_INVOCATION_TOKEN, "deliveries Forge marked as retries after a 401")                                    \
	X(forge_retries_other, "deliveries marked as retries with another reason")                                                           \
	X(lifecycle_events, "installed/upgraded events recorded in the registry")                                                            \
	X(scheduled_invocations, "scheduled triggers accepted")                                                                              \
	X(events_processed, "accepted events that went through the rules")                                                                   \
	X(rule_matches, "notifications produced by rules (before fan-out)")                                                                  \
	X(rule_log_lines, "rule evaluation outcomes logged (onError *_AND_LOG etc.)")                                                        \
	X(rules_step_limit, "rule evaluations stopped at the step limit (50,000)")                                                           \
	X(rules_scratch_limit, "rule evaluations stopped at limits.rule_scratch_bytes")                                                      \
	X(notifications_signed, "notifications signed (one per user and context)")                                                           \
	X(notifications_sign_failed, "notifications that could not be signed")                                                               \
	X(events_batch_emptied_oom,                                                                                                          \
	  "events whose notifications were dropped for lack of memory; their batch went out empty so later batches are still released")      \
	X(batch_alloc_fallbacks,                                                                                                             \
	  "batch containers taken from the worker's spare or retried after an allocation failure (nothing lost)")                            \
	X(signatures, "ES256 batch signatures (one per worker pass, covering its notifications)")                                            \
	X(signing_windows, "worker passes that waited for more events to share their signature (signing.window_us)")                       \
	X(signing_window_joined, "events that joined a waiting pass (signing.window_us)")                                                   \
	X(notifications_delivered, "notification frames queued to connections")                                                              \
	X(notifications_undelivered, "signed notifications with no subscribed connection")                                                   \
	X(notifications_dropped,                                                                                                             \
	  "notifications for a subscribed connection that was closing or over its byte budget (limits.ws_max_pending_bytes)")                \
	X(store_commits,                                                                                                                     \
	  "store write transactions committed (group commit: one for all writes queued meanwhile)")                                          \
	X(store_commit_requests, "store write calls (journal, record, mark, purge) those commits carried")                                   \
	X(store_commits_shared,                                                                                                              \
	  "store commits that carried both a journal batch and a record of processed events (one fsync for both)")                           \
	X(store_lingers,                                                                                                                     \
	  "record commits that waited (at most 1 ms) for the journal's next batch to share their commit")                                    \
	X(store_write_errors, "store write calls that failed (nothing of them written)")                                                     \
	X(store_probe_failures,                                                                                                              \
	  "store round trips of the readiness probe that failed (/readyz answers 503 meanwhile)")                                            \
	X(store_purged_expired, "notifications purged past max(exp, created + history.retention)")                                           \
	X(store_purged_over_cap, "notifications purged beyond history.per_user (oldest first)")                                              \
	X(store_keys_expired, "redelivery keys purged past their ttl")                                                                       \
	X(events_rejected_store, "events answered 503: the store could not journal them")                                                    \
	X(journal_batches, "journal transactions (events_accepted / this = events per fsync)")                                               \
	X(record_batches,                                                                                                                    \
	  "record transactions of the recorder thread (events_processed / this = events per fsync)")                                         \
	X(record_order_waits,                                                                                                                \
	  "times the recorder held signed passes for an earlier-numbered pass still being signed (seqs committed in order)")                \
	X(record_order_expired,                                                                                                              \
	  "times held passes were committed after GW_RECORDER_ORDER_WAIT_MS without the earlier pass (a seq gap is possible after a crash)") \
	X(events_replayed, "journaled events not done at start, processed again before new intake")                                          \
	X(store_record_failed,                                                                                                               \
	  "events whose notifications the store could not record (left pending, not delivered; processed again at the next start)")          \
	X(store_resumes, "subscribes with since answered recovered:true")                                                                    \
	X(store_resumes_refused, "subscribes with since answered recovered:false")                                                           \
	X(store_replayed, "stored notifications replayed on resume")                                                                         \
	X(store_live_skipped,                                                                                                                \
	  "live frames not sent because the resume that preceded them already sent them")                                                    \
	X(store_live_deferred,                                                                                                               \
	  "live frames held during a resume beyond limits.ws_max_pending_bytes, given up and read again from the store")                     \
	X(store_requests_failed, "websocket store requests (resume, inbox, mark) that failed in the store")                                  \
	X(redis_round_trips,                                                                                                                 \
	  "commands the store sent to Redis and waited for (one per call: scripts do the rest server-side)")                                 \
	X(redis_errors, "Redis calls that failed (unreachable, timed out, backing off, or an error reply)")                                  \
	X(redis_reconnects, "connections to a Redis server made again after a failure")                                                      \
	X(redis_busy_timeouts, "store calls that gave up waiting cluster.timeout for a shard's connection")                                  \
	X(redis_epoch_changes, "Redis shards found wiped while running (a new epoch adopted)")                                               \
	X(redis_claimed, "journal entries taken over from another node after cluster.claim_after")                                           \
	X(redis_journal_owned, "journal entries this node took for itself in the journal call (no claim call)")                              \
	X(redis_seq_conflicts,                                                                                                               \
	  "record calls refused because another node recorded the user meanwhile (re-signed)")                                               \
	X(cluster_resume_closes,                                                                                                             \
	  "websockets closed with 1012 (resume with since) after this node's broker feed came back")                                         \
	X(cluster_events_left_pending,                                                                                                       \
	  "events not recorded because a recipient's seq could not be read from the shared store (claimed again after cluster.claim_after)") \
	X(cluster_resigned_passes,                                                                                                           \
	  "worker passes numbered and signed again after a seq conflict with another node")                                                  \
	X(cluster_reseq_reads,                                                                                                               \
	  "users whose seq was read again after a seq conflict (0 when the refusal carried it: one shard)")                                  \
	X(redis_failover_epochs,                                                                                                             \
	  "shard epochs changed: a reconnect found a server that may lack writes this node had acknowledged (failover, restart)")            \
	X(cluster_subscribe_waits,                                                                                                           \
	  "subscribes held until Redis confirmed this node's SUBSCRIBE of the user's channel")                                               \
	X(cluster_subscribe_timeouts,                                                                                                        \
	  "subscribes answered busy: Redis did not confirm this node's SUBSCRIBE within 2 x cluster.timeout")                                \
	X(redis_broker_received, "notifications received from Redis by this node's broker")                                                  \
	X(redis_broker_dropped,                                                                                                              \
	  "notifications from Redis dropped: no memory, or 64 MiB of them waiting for the service thread (the clients resume with since)")   \
	X(redis_broker_malformed, "messages on a notification channel that were not a notification")                                         \
	X(redis_broker_disconnects, "broker connections to Redis lost (closed, reset, auth refused)")                                        \
	X(redis_broker_reconnects,                                                                                                           \
	  "broker subscriber connections made again (messages meanwhile are missed: resume)")                                                \
	X(redis_broker_probe_failures,                                                                                                       \
	  "broker connections dropped because their probe did not come back in time")                                                        \
	X(redis_broker_late_ticks,                                                                                                           \
	  "broker probe ticks that ran late (the thread was stalled): liveness judged on the next tick")                                      \
	X(ws_connections_opened, "websocket connections opened")                                                                             \
	X(ws_auth_failed, "websocket connections refused at connect")                                                                        \
	X(ws_frames_refused, "client frames answered with an error frame")                                                                   \
	X(ws_slow_consumer_closed, "connections closed: send queue over its byte limit")                                                     \
	X(ws_refused_user_cap,                                                                                                               \
	  "websockets closed at connect: their user had limits.ws_max_per_user connections")                                                 \
	X(ws_refused_address_cap,                                                                                                            \
	  "websockets closed on opening: their address had limits.ws_max_per_address connections")                                           \
	X(ws_refused_unauthenticated_cap,                                                                                                    \
	  "websockets closed on opening: their address had limits.ws_max_unauthenticated_per_address not yet authenticated")                 \
	X(ws_auth_busy, "websocket logins/refreshes answered busy: limits.auth_backlog full")                                                \
	X(ws_rx_paused,                                                                                                                      \
	  "times reading from a websocket stopped: replies to its frames filled half of limits.ws_max_pending_bytes")                        \
	X(ws_token_expired_closed, "connections closed when their token expired")                                                            \
	X(ws_pings_sent, "pings sent to websockets silent for subscriber.ping_interval")                                                     \
	X(ws_idle_closed, "websockets closed after two ping intervals of silence")                                                           \
	X(seq_entries_evicted,                                                                                                               \
	  "per-user seq counters forgotten to stay within limits.seq_bytes (that user's seq jumps)")                                         \
	X(digest_users_untracked,                                                                                                            \
	  "notifications to users not tracked for digests: limits.digest_bytes was reached")                                                 \
	X(digest_titles_truncated, "titles cut to limits.digest_title_bytes for digests")                                                    \
	X(lws_log_suppressed, "libwebsockets log lines dropped over the per-second budget")                                                  \
	X(subscription_tokens_issued, "subscription tokens minted by /forge/subscription")                                                   \
	X(subscription_refused, "/forge/subscription requests refused (401/403/400/413/405)")                                                \
	X(cors_preflights, "CORS preflights answered for allowed origins")                                                                   \
	X(cors_refused, "cross-origin requests or preflights from origins not in cors.allowed_origins")                                      \
	X(ws_origin_refused, "websocket upgrades refused: Origin not allowed")                                                               \
	X(trace_entries_evicted,                                                                                                             \
	  "admin trace entries dropped to stay within admin.trace_events / admin.trace_bytes")

enum gw_stat {
#define GW_STAT_ENUM(name, help) GW_STAT_##name,
	GW_STATS_COUNTERS(GW_STAT_ENUM)
#undef GW_STAT_ENUM
		GW_STAT__COUNT
};

extern _Atomic uint64_t gw_stats[GW_STAT__COUNT];
extern const char *const gw_stat_names[GW_STAT__COUNT];

static inline void gw_stat_inc(enum gw_stat s)
{
	atomic_fetch_add_explicit(&gw_stats[s], 1, memory_order_relaxed);
}
static inline void gw_stat_add(enum gw_stat s, uint64_t n)
{
	atomic_fetch_add_explicit(&gw_stats[s], n, memory_order_relaxed);
}
static inline uint64_t gw_stat_get(enum gw_stat s)
{
	return atomic_load_explicit(&gw_stats[s], memory_order_relaxed);
}

#endif
