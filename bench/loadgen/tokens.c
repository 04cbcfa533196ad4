/* tokens.c - notify-loadgen's FITs and subscription tokens, and base64url
 * (tokens.h).
 *
 * Ownership: see tokens.h.
 * Threads: main thread, before the publisher starts (b64url_dec: any).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "shared.h"
#include "tokens.h"

/* ---- base64url ----------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64url_enc(const unsigned char *in, size_t n, char *out)
{
	size_t o = 0, i;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = B64[v >> 18 & 63];
		out[o++] = B64[v >> 12 & 63];
		out[o++] = B64[v >> 6 & 63];
		out[o++] = B64[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = B64[v >> 18 & 63];
		out[o++] = B64[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = B64[v >> 18 & 63];
		out[o++] = B64[v >> 12 & 63];
		out[o++] = B64[v >> 6 & 63];
	}
	out[o] = '\0';
	return o;
}

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Decodes at most outlen-1 bytes; returns the length or -1. NUL-terminates. */
long b64url_dec(const char *in, size_t n, char *out, size_t outlen)
{
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64val((unsigned char)in[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (char)(acc >> bits & 0xff);
		}
	}
	out[o] = '\0';
	return (long)o;
}

/* ---- tokens ---------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = malloc(65536);
	size_t n = buf ? fread(buf, 1, 65535, f) : 0;
	fclose(f);
	if (!buf)
		return NULL;
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

static char *path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	if (!p)
		die("out of memory");
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* The development installation: the FIT's app.installationId and the
 * subscription tokens' "installation" claim must agree (docs/protocol.md). */
#define DEV_INSTALLATION "ari:cloud:ecosystem::installation/00000000-0000-4000-8000-000000000001"

/* An RS256 Forge Invocation Token signed with STATE/dev-forge-key.pem. */
static char *mint_fit(EVP_PKEY *pk, long ttl)
{
	static const char hdr[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"notify-gateway-dev-forge\"}";
	unsigned char jti[16];
	char jtihex[33], claims[1024], in[4096], sigb[1024];
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	long now = (long)time(NULL);

	RAND_bytes(jti, sizeof(jti));
	for (int i = 0; i < 16; i++)
		snprintf(jtihex + 2 * i, 3, "%02x", jti[i]);
	snprintf(claims, sizeof(claims),
		 "{\"app\":{\"id\":\"ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000\","
		 "\"installationId\":\"" DEV_INSTALLATION "\","
		 "\"appVersion\":\"1.0.0\",\"environment\":{\"type\":\"DEVELOPMENT\","
		 "\"id\":\"ari:cloud:ecosystem::environment/dev\"},\"module\":{\"type\":\"core:endpoint\","
		 "\"key\":\"notify-gateway-demo\"}},\"iss\":\"forge/invocation-token\","
		 "\"aud\":\"ari:cloud:ecosystem::app/00000000-0000-4000-8000-000000000000\","
		 "\"iat\":%ld,\"nbf\":%ld,\"exp\":%ld,\"jti\":\"%s\"}",
		 now, now - 5, now + ttl, jtihex);
	size_t o = b64url_enc((const unsigned char *)hdr, strlen(hdr), in);
	in[o++] = '.';
	o += b64url_enc((const unsigned char *)claims, strlen(claims), in + o);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk) != 1 ||
	    EVP_DigestSign(md, sig, &siglen, (const unsigned char *)in, o) != 1)
		die("RS256 signing failed");
	EVP_MD_CTX_free(md);
	b64url_enc(sig, siglen, sigb);
	size_t n = o + 1 + strlen(sigb) + 1;
	char *tok = malloc(n);
	if (!tok)
		die("out of memory");
	snprintf(tok, n, "%.*s.%s", (int)o, in, sigb);
	return tok;
}

static unsigned char *g_secret;
static size_t g_secret_len;

/* HS256 subscription token for user u<i>. */
char *mint_sub(int i, long ttl)
{
	static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	char claims[256], in[1024], sigb[64];
	unsigned char mac[32];
	unsigned int maclen = sizeof(mac);
	snprintf(claims, sizeof(claims),
		 "{\"installation\":\"" DEV_INSTALLATION
		 "\",\"sub\":\"u%d\",\"ctx\":[\"user:u%d\",\"bcast\"],"
		 "\"exp\":%ld}",
		 i, i, (long)time(NULL) + ttl);
	size_t o = b64url_enc((const unsigned char *)hdr, strlen(hdr), in);
	in[o++] = '.';
	o += b64url_enc((const unsigned char *)claims, strlen(claims), in + o);
	if (!HMAC(EVP_sha256(), g_secret, (int)g_secret_len, (const unsigned char *)in, o, mac, &maclen))
		die("HMAC failed");
	b64url_enc(mac, maclen, sigb);
	size_t n = o + 1 + strlen(sigb) + 1;
	char *tok = malloc(n);
	if (!tok)
		die("out of memory");
	snprintf(tok, n, "%.*s.%s", (int)o, in, sigb);
	return tok;
}

char *g_fits[NFITS];

void load_keys(void)
{
	if (O.tg != TG_GATEWAY)
		return;
	if (!O.state_dir)
		die("--state-dir is required with --target gateway");
	char *p = path_join(O.state_dir, "dev-forge-key.pem");
	size_t n;
	char *pem = read_file(p, &n);
	if (!pem)
		die("cannot read STATE/dev-forge-key.pem");
	BIO *bio = BIO_new_mem_buf(pem, (int)n);
	EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (!pk)
		die("STATE/dev-forge-key.pem is not a private key");
	/* Distinct tokens (jti) so that nothing can be cached per token. */
	for (int i = 0; i < NFITS; i++)
		g_fits[i] = mint_fit(pk, 6 * 3600);
	EVP_PKEY_free(pk);
	BIO_free(bio);
	free(pem);
	free(p);
	p = path_join(O.state_dir, "dev-subscriber-secret");
	char *s = read_file(p, &n);
	if (!s)
		die("cannot read STATE/dev-subscriber-secret");
	size_t a = 0, b = n;
	while (a < b && isspace((unsigned char)s[a]))
		a++;
	while (b > a && isspace((unsigned char)s[b - 1]))
		b--;
	g_secret_len = b - a;
	g_secret = malloc(g_secret_len + 1);
	memcpy(g_secret, s + a, g_secret_len);
	free(s);
	free(p);
}
