/* util.c - see util.h. */
#include "util.h"

#include <openssl/rand.h>
#include <string.h>
#include <time.h>

int64_t gw_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void gw_hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void gw_random_hex(char *out, size_t bytes)
{
	unsigned char buf[32];
	if (bytes > sizeof(buf))
		bytes = sizeof(buf);
	if (RAND_bytes(buf, (int)bytes) != 1) {
		/* RAND_bytes failing means the process is in trouble; still make ids unique. */
		static _Atomic unsigned long fallback;
		unsigned long v = ++fallback;
		memset(buf, 0, sizeof(buf));
		memcpy(buf, &v, sizeof(v));
	}
	gw_hex_encode(buf, bytes, out);
}

void gw_id_key(uint64_t id, char out[17])
{
	unsigned char be[8];
	for (int i = 7; i >= 0; i--) {
		be[i] = (unsigned char)(id & 0xff);
		id >>= 8;
	}
	gw_hex_encode(be, sizeof(be), out);
}
