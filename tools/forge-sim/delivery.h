/* delivery.h - Forge's delivery of remote invocations: one attempt at a
 * time, in the order they fall due, with Forge's retry policy (retry on a
 * non-2xx answer, a timeout or a network error, --retries times
 * --retry-delay apart, payload.retryContext on each retry); `forge-sim send`.
 *
 * Ownership: a run owns its deliveries (label, body, path, trace id);
 * finish_run frees them.
 * Threads: single-threaded tool.
 */
#ifndef FORGE_SIM_DELIVERY_H
#define FORGE_SIM_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "opts.h"

enum dstate { D_PENDING, D_DELIVERED, D_FAILED, D_ABANDONED };

struct delivery {
	char *label; /* "event=FILE" or "trigger=hour#3" */
	json_t *body; /* the body of the first attempt */
	char *path;
	char *trace_id;
	int attempts;
	int64_t due;
	enum dstate state;
	const char *retry_reason; /* reason of the last failure */
	char last[48]; /* last status, for the final line */
};

struct run {
	struct delivery *d;
	size_t n, cap;
};

/* One attempt of d now: prints its line; schedules the retry or settles d. */
void attempt(const struct opts *o, struct delivery *d);
/* A new zeroed delivery in r. */
struct delivery *run_add(struct run *r);
/* The pending delivery due first, or NULL when none is pending. */
struct delivery *next_due(struct run *r);
/* Abandons what is pending, prints the summary, frees r; the exit code. */
int finish_run(struct run *r);
/* forge-sim send [OPTIONS] EVENT.json... */
int cmd_send(int argc, char **argv);

#endif
