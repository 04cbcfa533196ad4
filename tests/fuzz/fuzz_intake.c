/* fuzz_intake.c - libFuzzer target: the body of POST /forge/events after the
 * FIT has been verified, through the gateway's own intake functions
 * (gateway/intake.h): JSON parsing as do_verify parses it, event extraction
 * (the {"payload": ...} envelope or a bare event), the effective event type
 * with lifecycle inference, and the redelivery key.
 *
 * Invariants checked (abort on violation):
 *  - an event is extracted exactly when no reason for a 400 is given, and
 *    then it is an object with a non-empty type;
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t jerr;
	json_t *body = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
	if (!body)
		return 0;
	const char *type = NULL, *why = NULL;
	json_t *event = gw_intake_extract(body, &type, &why);
	if (!event != !!why)
		fail("an event and a reason to refuse, or neither");
	if (!event) {
		json_decref(body);
		return 0;
	}
	if (!json_is_object(event) || !type || !type[0])
		fail("an accepted event that is not an object with a type");
	if (gw_intake_is_lifecycle(type) && strcmp(type, "avi:forge:installed:app") &&
	    strcmp(type, "avi:forge:upgraded:app"))
		fail("a lifecycle type other than installed/upgraded");

	unsigned char k1[GW_DEDUP_KEY_LEN], k2[GW_DEDUP_KEY_LEN];
	if (gw_intake_event_key("ari:cloud:ecosystem::installation/1", event, k1) == 0) {
		/* same content, keys sorted and retryContext dropped */
		json_t *copy = json_deep_copy(event);
		if (copy) {
			json_object_del(copy, "retryContext");
			char *text = json_dumps(copy, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENCODE_ANY);
			json_t *again = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
			if (again && gw_intake_event_key("ari:cloud:ecosystem::installation/1", again, k2) == 0 &&
			    memcmp(k1, k2, sizeof(k1)))
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
