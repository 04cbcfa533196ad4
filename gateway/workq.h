/* workq.h - the bounded hand-off from the lws service thread to the workers.
 *
 * Three lanes under one mutex, each bounded on its own:
 *  - verify: HTTP requests waiting for FIT verification and JSON parsing
 *    (limits.verify_backlog), so that a flood cannot pile up unverified bodies;
 *  - auth: websocket logins and refreshes waiting for subscription-token
 *    verification (limits.auth_backlog);
 *  - events: accepted events waiting for rules and signing: this is "the
 *    intake queue" whose fullness answers 503.
 * Verifications come first, so HTTP answers stay fast and events gather into
 * runs that one signature covers; the two verification lanes alternate when
 * both wait. But once max_events verifications (a pass's worth,
 * signing.batch_events) have been served in a row while events waited, the
 * events lane gets a turn. So a flood into one lane (bad FITs, say) neither
 * fills another lane nor holds back its jobs: logins get every other turn,
 * events at least one in max_events + 1.
 * Every accepted event gets an intake number, strictly increasing in the order
 * events enter the lane; the sequencer uses it to keep per-user order across
 * parallel workers.
 *
 * Ownership: a pushed job belongs to the queue until popped, then to the
 * popping worker (gw_job_free). Threads: any.
 */
#ifndef GW_WORKQ_H
#define GW_WORKQ_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

struct gw_store_req;

/* INTAKE (an intake request, intake.h) and SUBSCRIPTION (a token for a
 * Forge UI invocation, subscription.h) travel in the verify lane, AUTH in
 * the auth lane, EVENT in the events lane. STORE (a websocket's store
 * request: resume, inbox, mark; or a retention purge; store_jobs.h) travels
 * in the auth lane: it is a websocket's request like a login. */
enum gw_job_kind { GW_JOB_INTAKE, GW_JOB_AUTH, GW_JOB_EVENT, GW_JOB_SUBSCRIPTION, GW_JOB_STORE };

struct gw_job {
	struct gw_job *next;
	enum gw_job_kind kind;
	uint64_t req_id; /* INTAKE: the HTTP request; AUTH: the connection */
	char *body; /* INTAKE: request body (NUL-terminated), owned */
	size_t body_len;
	char *token; /* INTAKE, AUTH: the token, owned */
	uint64_t intake_no; /* EVENT: set by gw_workq_push_event */
	json_t *event; /* EVENT: the event payload, owned reference */
	json_t *fit; /* EVENT, INTAKE: verified FIT claims, owned reference */
	int64_t received_ns; /* CLOCK_MONOTONIC when the request completed */
	char trace_id[64]; /* x-b3-traceid, or a generated id */
	char *installation; /* EVENT: app.installationId of the FIT, owned */
	char *event_type; /* EVENT: the effective event type, owned */
	int scheduled; /* INTAKE/EVENT: a scheduled trigger */
	char interval[16]; /* scheduled: fiveMinute|hour|day|week or "" */
	char *system_token; /* INTAKE: x-forge-oauth-system, owned, never logged */
	uint64_t journal_id; /* EVENT: its row in the store's journal (store.h) */
	int journal_owned; /* EVENT, cluster mode: the journal call made it this node's (no claim) */
	int leave_pending; /* EVENT, cluster mode: a recipient's seq could not be read: not recorded, claimed again later */
	unsigned char key[32]; /* EVENT before it is journaled: the redelivery key (when keyed) */
	int keyed;
	struct gw_store_req *store_req; /* STORE: the request, owned (store_req.h) */
	int fit_only; /* INTAKE: check the FIT only, before the body (fitcheck.h) */
	char *ws_url; /* SUBSCRIPTION: the websocket URL to answer, owned */
};

struct gw_job *gw_job_new(enum gw_job_kind kind);
void gw_job_free(struct gw_job *job);

struct gw_workq {
	pthread_mutex_t lock;
	pthread_cond_t not_empty;
	struct gw_job *verify_head, *verify_tail;
	struct gw_job *event_head, *event_tail;
	struct gw_job *auth_head, *auth_tail;
	size_t verify_count, verify_cap;
	size_t event_count, event_cap;
	size_t auth_count, auth_cap;
	size_t verify_streak; /* verifications served in a row while events waited */
	int last_auth; /* the last verification served was a login */
	uint64_t next_intake_no;
	/* The signing window (gw_workq_window_pop): at most one worker at a
	 * time waits on `window` for more events to share its signature. */
	pthread_cond_t window;
	int collecting; /* a worker is in its window */
	size_t collect_room; /* events it can still take */
	size_t collect_wake_at; /* queued events that wake it before its deadline */
	size_t idle; /* workers waiting in gw_workq_pop_some */
	int closed;
	int refusing; /* verify pushes refused; workers stay (gw_workq_refuse) */
	/* gw_workq_set_handback */
	void (*hold)(void *ud);
	void (*flush)(void *ud);
	void *handback_ud;
};

int gw_workq_init(struct gw_workq *q, size_t verify_cap, size_t event_cap);
/* The auth lane's bound (gw_workq_init makes it verify_cap). Before any push. */
void gw_workq_set_auth_cap(struct gw_workq *q, size_t auth_cap);
void gw_workq_destroy(struct gw_workq *q); /* frees jobs still queued */
/* Results a worker produces between handing an event to itself (below) and
 * its next pop but one are held (hold(ud)) and released by flush(ud) when it
 * pops again without such an event, and always before it blocks or leaves:
 * so a request's answer and its event's frames travel back together. The
 * gateway passes gw_outbox_hold/gw_outbox_flush. Before any pop. */
void gw_workq_set_handback(struct gw_workq *q, void (*hold)(void *ud), void (*flush)(void *ud), void *ud);

/* A VERIFY job into the verify lane, an AUTH job into the auth lane.
 * Returns 0 (taken), -1 (that lane full: caller keeps the job), -2 (closed). */
int gw_workq_push_verify(struct gw_workq *q, struct gw_job *job);
/* Assigns job->intake_no. Accepted even after close (events verified before
 * the close still have to be processed). Returns 0 or -1 (full). A thread
 * that pops (a worker) and pushes an event into an otherwise idle queue wakes
 * no one: it takes the event itself on its next pop, so it must come back to
 * pop. Threads that never pop wake a worker as usual. */
int gw_workq_push_event(struct gw_workq *q, struct gw_job *job);

/* Like gw_workq_push_event but never refused: for an event already
 * journaled (intake checked the lane had room just before journaling it, so
 * the lane overshoots its cap by at most one event per worker) and for the
 * journal's pending events replayed at start. */
void gw_workq_push_event_force(struct gw_workq *q, struct gw_job *job);
/* 1 when the events lane is at its cap. */
int gw_workq_events_full(struct gw_workq *q);

/* Blocks until a job is available (lanes served as above, with
 * max_events 1: events every other turn). Returns NULL once the queue is
 * closed and every lane is empty. */
struct gw_job *gw_workq_pop(struct gw_workq *q);

/* Like gw_workq_pop, but when the events lane has its turn, takes a run of
 * consecutive events linked through ->next: at most max_events, and no more
 * than a 1/share part of the queued events (rounded up), so that `share`
 * waking workers split a backlog instead of one taking it all. */
struct gw_job *gw_workq_pop_some(struct gw_workq *q, size_t max_events, size_t share);

/* The signing window (issue 15). A worker whose pass is small (its events'
 * rules done, its sequencer turns passed) calls this to wait, until
 * deadline_ns (gw_monotonic_ns), for more events to join the pass so that one
 * signature covers them. It sleeps until the deadline, or until `wake_at`
 * events wait (enough to fill the pass: woken once, not once per event).
 * Returns
 *  - a run of at most `room` consecutive events (linked through ->next),
 *    which the caller evaluates and adds to its pass;
 *  - or one verification job (verify or auth lane) when no idle worker is
 *    there to take it: the caller runs it and calls again, so the window
 *    never keeps work waiting;
 *  - or NULL: the deadline passed, the queue is closed, or another worker
 *    is in its window already (one at a time). The window is then over.
 * While a worker is in its window, events pushed are left for it (it is
 * woken, not another worker), unless more wait than it has room for. A
 * caller that stops asking before NULL calls gw_workq_window_end. */
struct gw_job *gw_workq_window_pop(struct gw_workq *q, size_t room, size_t wake_at, int64_t deadline_ns);
void gw_workq_window_end(struct gw_workq *q);

/* Refuses further verify pushes (-2) but keeps the workers: at a stop,
 * events still on their way to the events lane (the journal thread) must
 * find a worker. */
void gw_workq_refuse(struct gw_workq *q);

/* Refuses further verify pushes and wakes idle workers so they can leave. */
void gw_workq_close(struct gw_workq *q);

size_t gw_workq_event_depth(struct gw_workq *q);
size_t gw_workq_verify_depth(struct gw_workq *q);
size_t gw_workq_auth_depth(struct gw_workq *q);
/* The intake number the next accepted event will get. */
uint64_t gw_workq_next_intake_no(struct gw_workq *q);

#endif
