/* store_probe.h - the store round trip behind /readyz (ops_api.c).
 *
 * /readyz is answered on the lws service thread, which must never wait on
 * the store. So a thread of its own calls the store's ping (store.h: sqlite
 * takes the write lock and commits nothing, memory its lock, redis PINGs
 * every shard) every GW_STORE_PROBE_INTERVAL_MS and keeps the last result
 * and when it was had; the readiness check only reads them. Readiness fails
 * when the last round trip failed, or when none has succeeded for
 * GW_STORE_PROBE_STALE_MS (a round trip that hangs, e.g. waiting for a
 * write lock another process holds, shows up before it times out).
 * Failed round trips are counted (store_probe_failures).
 *
 * Ownership: the probe borrows the store, which must outlive it.
 * Threads: start and stop from the main thread; read from any (one mutex,
 * a leaf); the probe thread calls the store.
 */
#ifndef GW_STORE_PROBE_H
#define GW_STORE_PROBE_H

#include <stdint.h>

#define GW_STORE_PROBE_INTERVAL_MS 1000 /* between the end of one round trip and the next */
#define GW_STORE_PROBE_STALE_MS 5000 /* no success for this long: not ready */

struct gw_store;
struct gw_store_probe;

struct gw_store_probe_state {
	int rc; /* the last round trip's result: GW_STORE_OK or a negative gw_store_rc */
	int64_t checked_ns; /* monotonic time the last round trip ended */
	int64_t ok_ns; /* monotonic time the last successful one ended; 0: never */
};

/* Makes a first round trip on the calling thread (so readiness has an
 * answer from the first request), then starts the thread. NULL when the
 * thread cannot start. */
struct gw_store_probe *gw_store_probe_start(struct gw_store *store);
void gw_store_probe_read(struct gw_store_probe *p, struct gw_store_probe_state *out);
/* Stops and joins the thread (waits for a round trip under way). */
void gw_store_probe_stop(struct gw_store_probe *p);

#endif
