/* b64url.c - base64url without padding (RFC 4648 §5, as JWS uses it).
 *
 * Strict decoder: no '=', no whitespace, nothing outside [A-Za-z0-9_-],
 * no length of the form 4k+1, and the unused low bits of the final character
 * must be zero (so every byte string has exactly one accepted encoding).
 *
 * Ownership: gw_b64url_decode hands back a malloc'd buffer the caller frees.
 * Threads: stateless; safe from any thread.
 */
#include <stdint.h>
#include <stdlib.h>

#include "gw/b64url.h"

static const char enc_tab[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Decoding table: 1 + the 6-bit value for alphabet characters, 0 for every
 * other byte (designated initialisers, C99). A lookup instead of range
 * branches: the FIT payload (~1.5 KB) is decoded once per event. */
#define D(c, v) [(unsigned char)(c)] = (v) + 1
static const unsigned char dec_tab[256] = {
	D('A', 0),  D('B', 1),	D('C', 2),  D('D', 3),	D('E', 4),  D('F', 5),	D('G', 6),  D('H', 7),
	D('I', 8),  D('J', 9),	D('K', 10), D('L', 11), D('M', 12), D('N', 13), D('O', 14), D('P', 15),
	D('Q', 16), D('R', 17), D('S', 18), D('T', 19), D('U', 20), D('V', 21), D('W', 22), D('X', 23),
	D('Y', 24), D('Z', 25), D('a', 26), D('b', 27), D('c', 28), D('d', 29), D('e', 30), D('f', 31),
	D('g', 32), D('h', 33), D('i', 34), D('j', 35), D('k', 36), D('l', 37), D('m', 38), D('n', 39),
	D('o', 40), D('p', 41), D('q', 42), D('r', 43), D('s', 44), D('t', 45), D('u', 46), D('v', 47),
	D('w', 48), D('x', 49), D('y', 50), D('z', 51), D('0', 52), D('1', 53), D('2', 54), D('3', 55),
	D('4', 56), D('5', 57), D('6', 58), D('7', 59), D('8', 60), D('9', 61), D('-', 62), D('_', 63),
};
#undef D

/* 0..63 for alphabet characters, 0xff otherwise. */
static unsigned dec(unsigned char c)
{
	return dec_tab[c] ? dec_tab[c] - 1u : 0xffu;
}

size_t gw_b64url_encoded_len(size_t len)
{
	static const size_t tail[3] = {0, 2, 3};

	return len / 3 * 4 + tail[len % 3];
}

size_t gw_b64url_encode(const unsigned char *in, size_t len, char *out)
{
	size_t i = 0, o = 0;

	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = enc_tab[v >> 18];
		out[o++] = enc_tab[(v >> 12) & 63];
		out[o++] = enc_tab[(v >> 6) & 63];
		out[o++] = enc_tab[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = enc_tab[v >> 18];
		out[o++] = enc_tab[(v >> 12) & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = enc_tab[v >> 18];
		out[o++] = enc_tab[(v >> 12) & 63];
		out[o++] = enc_tab[(v >> 6) & 63];
	}
	out[o] = '\0';
	return o;
}

int gw_b64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
	const unsigned char *s = (const unsigned char *)in;
	unsigned char *buf = NULL;
	size_t i = 0, o = 0, rem = len % 4;

	if (!out || !out_len || (!in && len) || rem == 1)
		return -1;
	buf = malloc(len / 4 * 3 + (rem ? rem - 1 : 0) + 1);
	if (!buf)
		return -1;
	for (; i + 4 <= len; i += 4) {
		unsigned a = dec(s[i]), b = dec(s[i + 1]), c = dec(s[i + 2]), d = dec(s[i + 3]);
		if ((a | b | c | d) & 0xc0)
			goto fail;
		uint32_t v = a << 18 | b << 12 | c << 6 | d;
		buf[o++] = (unsigned char)(v >> 16);
		buf[o++] = (unsigned char)(v >> 8);
		buf[o++] = (unsigned char)v;
	}
	if (rem == 2) {
		unsigned a = dec(s[i]), b = dec(s[i + 1]);
		if ((a | b) & 0xc0 || (b & 0x0f))
			goto fail;
		buf[o++] = (unsigned char)(a << 2 | b >> 4);
	} else if (rem == 3) {
		unsigned a = dec(s[i]), b = dec(s[i + 1]), c = dec(s[i + 2]);
		if ((a | b | c) & 0xc0 || (c & 0x03))
			goto fail;
		uint32_t v = a << 18 | b << 12 | c << 6;
		buf[o++] = (unsigned char)(v >> 16);
		buf[o++] = (unsigned char)(v >> 8);
	}
	buf[o] = '\0';
	*out = buf;
	*out_len = o;
	return 0;
fail:
	free(buf);
	return -1;
}
