/* runtime.c - event.runtime: the entity properties a trigger asks Forge to
 * add to the event (payload.include.propertyPaths, e.g.
 * "issue.properties['com.acme.flags'].level"), which Forge delivers as
 * event.payloadIncludeProperties {"<path>": value} and filters read as
 * event.runtime.<path>.
 *
 * runtime__build turns that flat map into the nested object the paths
 * describe; what the event lacks reads as null (eval.c makes every access
 * below event.runtime lenient), as Forge resolves it.
 *
 * Ownership: runtime__build returns a new JSON reference (the caller's);
 * values are shared with the event. Threads: no state.
 */
#include <stdio.h>
#include <string.h>

#include "rules_internal.h"

#define RUNTIME_MAX_PATHS 64 /* Forge allows 5 per manifest */
#define RUNTIME_MAX_SEGMENTS 32
#define RUNTIME_MAX_SEGMENT 256

static const char *const entities[] = {"issue", "project", "user", "issuetype", NULL};

/* Reads the next segment of a path at *p: a name (first, or after '.') or a
 * quoted string in brackets. Returns 1 (segment in out), 0 at the end, -1 on
 * a syntax error. */
static int next_segment(const char **p, bool first, char *out, size_t cap)
{
	const char *s = *p;
	size_t n = 0;

	if (!*s)
		return 0;
	if (*s == '[') {
		char q = s[1];
		if (q != '\'' && q != '"')
			return -1;
		for (s += 2; *s && *s != q; s++) {
			if (*s == '\\' && s[1])
				s++;
			if (n + 1 >= cap)
				return -1;
			out[n++] = *s;
		}
		if (*s != q || s[1] != ']')
			return -1;
		out[n] = '\0';
		*p = s + 2;
		return 1;
	}
	if (!first) {
		if (*s != '.')
			return -1;
		s++;
	}
	while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
	       *s == '_' || *s == '$') {
		if (n + 1 >= cap)
			return -1;
		out[n++] = *s++;
	}
	if (n == 0)
		return -1;
	out[n] = '\0';
	*p = s;
	return 1;
}

bool runtime__path_valid(const char *path)
{
	char seg[RUNTIME_MAX_SEGMENT];
	const char *p = path;
	int k = 0, r;

	while ((r = next_segment(&p, k == 0, seg, sizeof(seg))) == 1) {
		if (k == 0) {
			bool ok = false;
			for (const char *const *e = entities; *e; e++)
				ok = ok || !strcmp(*e, seg);
			if (!ok)
				return false;
		} else if (k == 1 && strcmp(seg, "properties") != 0) {
			return false;
		}
		if (++k > RUNTIME_MAX_SEGMENTS)
			return false;
	}
	return r == 0 && k >= 3; /* ENTITY.properties[key] at least */
}

/* Sets root.<path> = value, creating objects on the way. */
static void put_path(json_t *root, const char *path, json_t *value)
{
	char seg[RUNTIME_MAX_SEGMENT], next[RUNTIME_MAX_SEGMENT];
	const char *p = path;
	json_t *cur = root;
	int k = 0;

	if (next_segment(&p, true, seg, sizeof(seg)) != 1)
		return;
	for (;;) {
		int r = next_segment(&p, false, next, sizeof(next));
		if (r < 0 || ++k > RUNTIME_MAX_SEGMENTS)
			return;
		if (r == 0) {
			json_object_set(cur, seg, value);
			return;
		}
		json_t *child = json_object_get(cur, seg);
		if (!json_is_object(child)) {
			child = json_object();
			if (!child || json_object_set_new(cur, seg, child) < 0)
				return;
		}
		cur = child;
		memcpy(seg, next, sizeof(seg));
	}
}

json_t *runtime__build(const json_t *event)
{
	const json_t *props = json_object_get(event, "payloadIncludeProperties");
	json_t *root = json_object();
	const char *path;
	json_t *value;
	int n = 0;

	if (!root || !json_is_object(props))
		return root;
	json_object_foreach ((json_t *)props, path, value) {
		if (++n > RUNTIME_MAX_PATHS)
			break;
		put_path(root, path, value);
	}
	return root;
}
