/* fuzz_intake.c - libFuzzer target: the body of POST /forge/events after the
 * FIT has been verified, through the gateway's own intake functions
 * (gateway/intake.h): JSON parsing as do_verify parses it, event extraction
 * (the {"payload": ...} envelope or a bare event), the effective event type
 * with lifecycle inference, and the redelivery key.
 *
 * Invariants checked (abort on violation):
 *  - an event is accepted only as an object with a non-empty type, the
 *    event's effective type; a scheduled trigger only as its
 *    scheduled:<interval> event;
 *  - a lifecycle type is only ever one inferred or named for installs and
 *    upgrades;
 *  - the redelivery key is a function of the event's content: the same
 *    event re-serialised with its keys sorted, or with its retryContext
 *    removed, gets the same key; another installation gets another key.
 *
 * Ownership: per-input memory is freed before returning.
 * Threads: libFuzzer's single thread.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake.h"

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_intake: invariant: %s\n", what);
	abort();
}

#define INST "ari:cloud:ecosystem::installation/1"

/* A scheduled trigger: the interval from the body (the path named none). */
static void scheduled(json_t *body)
{
	char interval[16] = "";
	struct gw_intake_event ev;
	const char *why = gw_intake_extract(body, 1, interval, INST, (time_t)1700000000, &ev);
	if (!why && (!json_is_object(ev.event) || !ev.type || strncmp(ev.type, "scheduled:", 10) ||
		     strcmp(ev.type + 10, interval)))
		fail("a scheduled trigger without its scheduled:<interval> event");
	json_decref(ev.event);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	/* as gw_intake_run parses a body */
	json_t *body = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
	if (!body)
		return 0;
	scheduled(body);
	char interval[16] = "";
	struct gw_intake_event ev;
	const char *why = gw_intake_extract(body, 0, interval, INST, (time_t)1700000000, &ev);
	if (why) {
		json_decref(ev.event);
		json_decref(body);
		return 0;
	}
	json_t *event = ev.event;
	if (!json_is_object(event) || !ev.type || !ev.type[0])
		fail("an accepted event that is not an object with a type");
	if (gw_intake_event_type(event) != ev.type)
		fail("the extracted type is not the event's effective type");
	if (gw_intake_is_lifecycle(ev.type) && strcmp(ev.type, "avi:forge:installed:app") &&
	    strcmp(ev.type, "avi:forge:upgraded:app"))
		fail("a lifecycle type other than installed/upgraded");

	unsigned char k1[GW_DEDUP_KEY_LEN], k2[GW_DEDUP_KEY_LEN];
	if (gw_intake_event_key(INST, event, k1) == 0) {
		/* same content, keys sorted and retryContext dropped */
		json_t *copy = json_deep_copy(event);
		if (copy) {
			json_object_del(copy, "retryContext");
			char *text = json_dumps(copy, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
			json_t *again = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
			if (again && gw_intake_event_key(INST, again, k2) == 0 && memcmp(k1, k2, sizeof(k1)))
				fail("the key depends on key order or on retryContext");
			json_decref(again);
			free(text);
			json_decref(copy);
		}
		if (gw_intake_event_key("ari:cloud:ecosystem::installation/2", event, k2) == 0 &&
		    !memcmp(k1, k2, sizeof(k1)))
			fail("two installations share a key");
	}
	json_decref(event);
	json_decref(body);
	return 0;
}
