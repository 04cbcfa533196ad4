/* regex.c - the PCRE2 wrapper: patterns are compiled (and JIT-compiled when
 * the library supports it) once at load; matching uses a match context with
 * the limits below, shared read-only by every thread.
 *
 * Ownership: compiled codes and the match context belong to the arena they
 * were compiled into and are freed by arena__free. Match data is per thread
 * and lives in struct rules_scratch.
 * Threads: pcre2api(3): "the same compiled pattern can be used by more than
 * one thread simultaneously"; the match context is never modified after the
 * first pattern of its arena is compiled, which happens on the loading thread.
 */
#include <stdio.h>
#include <string.h>

#include "rules_internal.h"

#define REGEX_MATCH_LIMIT 100000
#define REGEX_DEPTH_LIMIT 1000

static void free_all(struct rules_arena *a)
{
	for (struct rules_regex *re = a->regexes; re; re = re->next)
		pcre2_code_free(re->code);
	a->regexes = NULL;
	pcre2_match_context_free(a->mctx);
	a->mctx = NULL;
}

const struct rules_regex *regex__compile(struct rules_arena *a, const char *pattern, size_t n,
					 size_t *err_off, char *msg, size_t msg_size)
{
	int errcode = 0;
	PCRE2_SIZE erroff = 0;
	struct rules_regex *re;

	if (!a->mctx) {
		a->mctx = pcre2_match_context_create(NULL);
		if (!a->mctx)
			goto oom;
		pcre2_set_match_limit(a->mctx, REGEX_MATCH_LIMIT);
		pcre2_set_depth_limit(a->mctx, REGEX_DEPTH_LIMIT);
		a->release = free_all; /* the context is freed even if no pattern compiles */
	}
	re = arena__alloc(a, sizeof(*re));
	if (!re)
		goto oom;
	re->code = pcre2_compile((PCRE2_SPTR)pattern, n, PCRE2_UTF | PCRE2_UCP, &errcode, &erroff, NULL);
	if (!re->code) {
		PCRE2_UCHAR buf[200];
		if (pcre2_get_error_message(errcode, buf, sizeof(buf)) < 0)
			snprintf((char *)buf, sizeof(buf), "error %d", errcode);
		snprintf(msg, msg_size, "%s", (const char *)buf);
		*err_off = erroff;
		return NULL;
	}
	/* JIT is an optimisation only: if it is unavailable or fails, the
	 * interpreter runs the same pattern with the same limits. */
	(void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
	re->mctx = a->mctx;
	re->next = a->regexes;
	a->regexes = re;
	return re;
oom:
	snprintf(msg, msg_size, "out of memory");
	*err_off = 0;
	return NULL;
}
