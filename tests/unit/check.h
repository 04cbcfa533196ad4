/* check.h - the unit-test harness: a handful of macros, no framework.
 *
 * Each CHECK prints file:line and the failed expression; main() returns
 * check_failures so ctest sees a non-zero exit. Tests include this header
 * once per executable. */
#ifndef GW_TEST_CHECK_H
#define GW_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(expr)                                                                                          \
	do {                                                                                                 \
		check_count++;                                                                               \
		if (!(expr)) {                                                                               \
			check_failures++;                                                                    \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr);             \
		}                                                                                            \
	} while (0)

#define CHECK_INT_EQ(a, b)                                                                                   \
	do {                                                                                                 \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b);                              \
		check_count++;                                                                               \
		if (check_a_ != check_b_) {                                                                  \
			check_failures++;                                                                    \
			fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a,    \
				#b, check_a_, check_b_);                                                     \
		}                                                                                            \
	} while (0)

#define CHECK_STR_EQ(a, b)                                                                                   \
	do {                                                                                                 \
		const char *check_a_ = (a), *check_b_ = (b);                                                 \
		check_count++;                                                                               \
		if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) {                             \
			check_failures++;                                                                    \
			fprintf(stderr,                                                                      \
				"%s:%d: %s == %s failed:\n  got:      %s\n"                                  \
				"  expected: %s\n",                                                          \
				__FILE__, __LINE__, #a, #b, check_a_ ? check_a_ : "(null)",                  \
				check_b_ ? check_b_ : "(null)");                                             \
		}                                                                                            \
	} while (0)

#define CHECK_DONE()                                                                                         \
	(fprintf(stderr, "%d checks, %d failed\n", check_count, check_failures), check_failures ? 1 : 0)

#endif
