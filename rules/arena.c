/* arena.c - bump allocator for compiled rules and per-evaluation scratch
 * strings, plus the small growable string buffer used for rendering.
 *
 * Ownership: an arena owns its blocks and the PCRE2 codes registered in it
 * (regex__compile); arena__free releases all of them. A strbuf owns its data
 * until strbuf__take hands it to the caller.
 * Threads: an arena is used by one thread while it is being filled; compiled
 * arenas are read-only afterwards.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_internal.h"

#define ARENA_ALIGN 16
#define ARENA_MIN_BLOCK 4096

struct rules_arena_block {
	struct rules_arena_block *next;
	size_t used, cap;
	/* 16-byte alignment suits every type stored here */
	_Alignas(ARENA_ALIGN) unsigned char data[];
};

void arena__init(struct rules_arena *a)
{
	memset(a, 0, sizeof(*a));
}

void *arena__alloc(struct rules_arena *a, size_t n)
{
	struct rules_arena_block *b = a->head;
	size_t need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);

	if (need < n)
		return NULL;
	if (!b || b->cap - b->used < need) {
		size_t cap = need > ARENA_MIN_BLOCK ? need : ARENA_MIN_BLOCK;

		b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->used = 0;
		b->cap = cap;
		/* A big one-off request goes behind the current block so the
		 * current block's free space stays usable. */
		if (a->head && need > ARENA_MIN_BLOCK) {
			b->next = a->head->next;
			a->head->next = b;
		} else {
			b->next = a->head;
			a->head = b;
		}
	}
	void *p = b->data + b->used;
	b->used += need;
	memset(p, 0, n);
	return p;
}

bool arena__extend(struct rules_arena *a, void *p, size_t n, size_t m)
{
	struct rules_arena_block *b = a->head;
	size_t old_need = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
	size_t new_need = (m + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);

	if (!b || m < n || new_need < m || (unsigned char *)p < b->data ||
	    (unsigned char *)p + old_need != b->data + b->used || new_need - old_need > b->cap - b->used)
		return false;
	b->used += new_need - old_need;
	return true;
}

char *arena__strndup(struct rules_arena *a, const char *s, size_t n)
{
	char *p = arena__alloc(a, n + 1);

	if (!p)
		return NULL;
	if (n)
		memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void arena__reset(struct rules_arena *a)
{
	struct rules_arena_block *b = a->head;

	if (!b)
		return;
	/* keep the newest block (usually the only one), drop the rest */
	struct rules_arena_block *rest = b->next;
	while (rest) {
		struct rules_arena_block *next = rest->next;
		free(rest);
		rest = next;
	}
	b->next = NULL;
	b->used = 0;
}

void arena__free(struct rules_arena *a)
{
	if (a->release)
		a->release(a);
	struct rules_arena_block *b = a->head;
	while (b) {
		struct rules_arena_block *next = b->next;
		free(b);
		b = next;
	}
	a->head = NULL;
}

/* ---- strbuf ---- */

static bool strbuf_reserve(struct rules_strbuf *b, size_t extra)
{
	if (b->oom)
		return false;
	if (b->limit && (extra > b->limit || b->len > b->limit - extra)) {
		b->oom = b->over = true;
		return false;
	}
	if (b->len + extra + 1 <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < b->len + extra + 1)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void strbuf__append(struct rules_strbuf *b, const char *s, size_t n)
{
	if (!strbuf_reserve(b, n))
		return;
	if (n)
		memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void strbuf__printf(struct rules_strbuf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];

	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		strbuf__append(b, small, (size_t)n);
		return;
	}
	if (!strbuf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

char *strbuf__take(struct rules_strbuf *b)
{
	if (b->oom) {
		strbuf__free(b);
		return NULL;
	}
	if (!b->data && !strbuf_reserve(b, 0))
		return NULL;
	if (b->len == 0)
		b->data[0] = '\0';
	char *p = b->data;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void strbuf__free(struct rules_strbuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}
