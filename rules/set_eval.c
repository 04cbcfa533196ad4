/* set_eval.c - evaluating an event against a rule set: candidate rules by
 * event type, ignoreSelf, the filter expression with onError as Forge
 * applies it, recipients (distinct, flattened, excludeActor) and the
 * rendered notification of each matching rule.
 *
 * Ownership: rules_evaluate* return a new JSON array owned by the caller;
 * the set, the event and the scratch are borrowed.
 * Threads: any number of threads may evaluate one set at once, each with its
 * own struct rules_scratch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "set_internal.h"

static void log_msg(const struct rules_sink *k, const struct rules_rule *r, const char *fmt, ...)
	RULES_FMT(3, 4);

static void log_msg(const struct rules_sink *k, const struct rules_rule *r, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;

	if (!k->log && !k->why)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg && k->log)
		k->log(k->ud, r->key, msg);
	if (msg && k->why && k->why->len == 0)
		strbuf__append(k->why, msg, strlen(msg));
	free(msg);
}

/* Recipients already in `to`, for dropping repeats: a linear scan while the
 * list is short, then an open-addressing set of indices into `to` (a
 * broadcast to 1,000 watchers made the scan 500,000 string compares per
 * event: 17 % of the gateway's CPU). Owned by recipients(), freed there. */
struct recip_seen {
	size_t cap; /* slots, a power of two; 0 while the list is short */
	size_t *slot; /* index into `to` + 1; 0 = empty */
};

#define RECIP_SCAN_MAX 16

static uint64_t recip_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static int recip_same(json_t *x, const char *s, size_t n)
{
	return json_string_length(x) == n && memcmp(json_string_value(x), s, n) == 0;
}

/* Index of s in `to` through the set, or -1; with insert_at >= 0, stores it
 * in the empty slot found instead. */
static long recip_probe(const struct recip_seen *seen, json_t *to, const char *s, size_t n, long insert_at)
{
	size_t mask = seen->cap - 1;
	for (size_t i = (size_t)recip_hash(s, n) & mask;; i = (i + 1) & mask) {
		if (!seen->slot[i]) {
			if (insert_at >= 0)
				seen->slot[i] = (size_t)insert_at + 1;
			return -1;
		}
		if (recip_same(json_array_get(to, seen->slot[i] - 1), s, n))
			return (long)(seen->slot[i] - 1);
	}
}

/* (Re)builds the set for the current list with room to double. */
static int recip_rebuild(struct recip_seen *seen, json_t *to)
{
	size_t n = json_array_size(to), cap = 64;
	while (cap < 4 * (n + 1))
		cap *= 2;
	size_t *slot = calloc(cap, sizeof(*slot));
	if (!slot)
		return -1;
	free(seen->slot);
	seen->slot = slot;
	seen->cap = cap;
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_array_get(to, i);
		recip_probe(seen, to, json_string_value(x), json_string_length(x), (long)i);
	}
	return 0;
}

static int add_recipient(json_t *to, struct recip_seen *seen, const struct rules_value *v)
{
	if (v->kind == RULES_V_NULL || (v->kind == RULES_V_STR && v->u.str.len == 0))
		return 0;
	if (v->kind != RULES_V_STR)
		return -1;
	size_t count = json_array_size(to);
	if (!seen->cap && count >= RECIP_SCAN_MAX && recip_rebuild(seen, to))
		return -2;
	if (!seen->cap) {
		size_t i;
		json_t *x;
		json_array_foreach (to, i, x)
			if (recip_same(x, v->u.str.s, v->u.str.len))
				return 0;
	} else if (recip_probe(seen, to, v->u.str.s, v->u.str.len, -1) >= 0) {
		return 0;
	}
	if (json_array_append_new(to, json_stringn(v->u.str.s, v->u.str.len)) < 0)
		return -2;
	if (seen->cap) {
		if (4 * (count + 1) > seen->cap) /* keep the load at most 1/4... */
			return recip_rebuild(seen, to) ? -2 : 0;
		recip_probe(seen, to, v->u.str.s, v->u.str.len, (long)count); /* ...or just insert */
	}
	return 0;
}

/* Adds v (a String, null, or a List of those, nested to any depth) to `to`.
 * Returns 0, -1 for a wrong type (*bad gets it), -2 on OOM. */
static int add_recipients(json_t *to, struct recip_seen *seen, const struct rules_value *v, int depth,
			  const struct rules_value **bad)
{
	struct rules_value item;

	if (v->kind != RULES_V_LIST && v->kind != RULES_V_ARR) {
		int rc = add_recipient(to, seen, v);
		if (rc == -1)
			*bad = v;
		return rc;
	}
	if (depth > 16) {
		*bad = v;
		return -1;
	}
	size_t n = v->kind == RULES_V_LIST ? v->u.list.n : json_array_size(v->json);
	for (size_t k = 0; k < n; k++) {
		if (v->kind == RULES_V_LIST)
			item = v->u.list.items[k];
		else
			eval__from_json(json_array_get(v->json, k), &item);
		int rc = add_recipients(to, seen, &item, depth + 1, bad);
		if (rc == -1 && *bad == &item) {
			/* item lives on this frame: report its type now */
			static const struct rules_value kinds[] = {
				{RULES_V_NULL, NULL, {0}}, {RULES_V_BOOL, NULL, {0}},
				{RULES_V_NUM, NULL, {0}},  {RULES_V_STR, NULL, {0}},
				{RULES_V_LIST, NULL, {0}}, {RULES_V_ARR, NULL, {0}},
				{RULES_V_MAP, NULL, {0}},  {RULES_V_OBJ, NULL, {0}},
			};
			*bad = &kinds[item.kind];
		}
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Evaluates the `to` expressions; NULL (after logging) on error. */
static json_t *recipients(const struct rules_rule *r, const json_t *event, struct rules_scratch *s,
			  const struct rules_sink *k)
{
	json_t *to = json_array();
	struct rules_value v;
	struct recip_seen seen = {0};

	if (!to)
		return NULL;
	for (size_t i = 0; i < r->n_to; i++) {
		const struct rules_expr *e = r->to[i];
		const struct rules_value *bad = NULL;
		if (eval__run(e, event, s, &v) < 0) {
			struct rules_strbuf m = {0};
			eval__error_where(e, s, &m);
			log_msg(k, r, "rule '%s': recipient expression '%.*s' failed: %s", r->key,
				(int)e->len, e->src, m.data ? m.data : s->error);
			strbuf__free(&m);
			goto fail;
		}
		int rc = add_recipients(to, &seen, &v, 0, &bad);
		if (rc == -1 && bad != &v)
			log_msg(k, r,
				"rule '%s': recipient expression '%.*s' yielded a List holding a %s; "
				"expected Strings",
				r->key, (int)e->len, e->src, eval__type_name(bad));
		else if (rc == -1)
			log_msg(k, r,
				"rule '%s': recipient expression '%.*s' yielded a %s; expected a "
				"String, a List of Strings or null",
				r->key, (int)e->len, e->src, eval__type_name(&v));
		if (rc < 0)
			goto fail;
	}
	if (r->exclude_actor) {
		const char *actor = json_string_value(json_object_get(event, "atlassianId"));
		size_t i;
		json_t *x;
		json_array_foreach (to, i, x) {
			if (actor && !strcmp(json_string_value(x), actor)) {
				json_array_remove(to, i);
				break; /* entries are distinct */
			}
		}
	}
	free(seen.slot);
	return to;
fail:
	free(seen.slot);
	json_decref(to);
	return NULL;
}

static json_t *render_field(const struct rules_rule *r, const struct rules_template *t, const char *what,
			    const json_t *event, struct rules_scratch *s, const struct rules_sink *k)
{
	char *text, *err;
	size_t len;

	if (!t)
		return json_string("");
	if (template__render(t, event, s, &text, &len, &err) < 0) {
		log_msg(k, r, "rule '%s': %s template failed: %s", r->key, what, err ? err : "out of memory");
		free(err);
		return NULL;
	}
	json_t *j = json_stringn(text, len);
	free(text);
	return j;
}

const struct rules_filter *set_eval__filter_for(const struct rules_rule *r, const char *event_type)
{
	const struct rules_filter *glob = NULL;

	if (!r->event_filters)
		return &r->filter;
	/* an exact name wins over a pattern; the first pattern that matches next */
	for (size_t i = 0; i < r->n_events; i++) {
		const struct rules_filter *f = r->event_filters[i] ? r->event_filters[i] : &r->filter;
		if (!strchr(r->events[i], '*')) {
			if (!strcmp(r->events[i], event_type))
				return f;
		} else if (!glob && glob__match(r->events[i], event_type)) {
			glob = f;
		}
	}
	return glob ? glob : &r->filter;
}

bool set_eval__filter_matches(const struct rules_rule *r, const struct rules_filter *f, const json_t *event,
			      struct rules_scratch *s, const struct rules_sink *k, const char **stage)
{
	struct rules_value v;
	char reason[400];

	if (stage)
		*stage = "filter";
	if (f->app_licensed && !k->licensed) {
		/* Forge: "invocations are skipped if the app does not have an
		 * active license"; no app.license in the FIT is no license */
		if (k->why)
			strbuf__printf(k->why, "appIsLicensed: the invocation's FIT has no active "
					       "app.license");
		if (stage)
			*stage = "appIsLicensed";
		return false;
	}
	if (f->ignore_self && json_is_true(json_object_get(event, "selfGenerated"))) {
		if (k->why)
			strbuf__printf(k->why, "ignoreSelf: the event has selfGenerated: true");
		if (stage)
			*stage = "ignoreSelf";
		return false;
	}
	if (!f->expr) {
		if (k->why)
			strbuf__printf(k->why, "no filter expression");
		return true;
	}
	s->explain = k->why != NULL;
	int rc = eval__run(f->expr, event, s, &v);
	s->explain = false;
	if (rc == 0) {
		if (v.kind == RULES_V_BOOL) {
			if (k->why) {
				strbuf__printf(k->why, "expression was %s, decided by ",
					       v.u.b ? "true" : "false");
				eval__explain(f->expr, s, k->why);
			}
			return v.u.b;
		}
	}
	bool receive = f->on_error == ON_ERROR_RECEIVE || f->on_error == ON_ERROR_RECEIVE_AND_LOG;
	bool logs = f->on_error == ON_ERROR_IGNORE_AND_LOG || f->on_error == ON_ERROR_RECEIVE_AND_LOG;
	if (!k->why && !(logs && k->log))
		return receive; /* nobody reads the reason: do not format it */
	if (rc == 0) {
		snprintf(reason, sizeof(reason), "filter expression must yield a Boolean, got %s",
			 eval__type_name(&v));
	} else {
		struct rules_strbuf m = {0};
		eval__error_where(f->expr, s, &m);
		snprintf(reason, sizeof(reason), "filter expression failed: %s", m.data ? m.data : s->error);
		strbuf__free(&m);
	}
	if (logs)
		log_msg(&(struct rules_sink){k->log, k->ud, NULL, k->licensed}, r,
			"rule '%s': %s (onError %s: event %s)", r->key, reason,
			set__on_error_names[f->on_error], receive ? "received" : "ignored");
	if (k->why)
		strbuf__printf(k->why, "%s (onError %s: event %s)", reason, set__on_error_names[f->on_error],
			       receive ? "received" : "ignored");
	return receive;
}

json_t *set_eval__notification(const struct rules_rule *r, const char *event_type, const json_t *event,
			       struct rules_scratch *s, const struct rules_sink *k)
{
	json_t *to = recipients(r, event, s, k);
	json_t *n = NULL, *actions = NULL;

	if (!to || json_array_size(to) == 0)
		goto fail;
	n = json_object();
	actions = json_array();
	if (!n || !actions)
		goto fail;
	json_t *context = render_field(r, r->context, "context", event, s, k);
	json_t *title = context ? render_field(r, r->title, "title", event, s, k) : NULL;
	json_t *desc = title ? render_field(r, r->description, "description", event, s, k) : NULL;
	if (!desc) {
		json_decref(context);
		json_decref(title);
		goto fail;
	}
	for (size_t i = 0; i < r->n_actions; i++) {
		json_t *text = render_field(r, r->actions[i].text, "action text", event, s, k);
		json_t *href = text ? render_field(r, r->actions[i].href, "action href", event, s, k) : NULL;
		if (!href) {
			json_decref(text);
			json_decref(context);
			json_decref(title);
			json_decref(desc);
			goto fail;
		}
		json_array_append_new(actions, json_pack("{s:o,s:o}", "text", text, "href", href));
	}
	json_object_set_new(n, "rule", json_string(r->key));
	json_object_set_new(n, "eventType", json_string(event_type));
	json_object_set_new(n, "to", to);
	json_object_set_new(n, "context", context);
	json_object_set_new(n, "type", json_string(r->type));
	json_object_set_new(n, "title", title);
	json_object_set_new(n, "description", desc);
	json_object_set_new(n, "actions", actions);
	if (r->ttl)
		json_object_set_new(n, "ttl", json_integer(r->ttl));
	if (r->exclude_actor)
		json_object_set_new(n, "excludeActor", json_true());
	return n;
fail:
	if (to && json_array_size(to) == 0 && k->why && k->why->len == 0)
		strbuf__printf(k->why,
			       "no recipients: every 'to' expression yielded null or "
			       "nothing%s",
			       r->exclude_actor ? " (after excludeActor)" : "");
	json_decref(to);
	json_decref(n);
	json_decref(actions);
	return NULL;
}

bool set_eval__licensed(const struct rules_invocation *inv)
{
	return inv && json_is_true(json_object_get(
			      json_object_get(json_object_get(inv->fit, "app"), "license"), "active"));
}

json_t *rules_evaluate_for(const struct rules_set *set, const char *event_type, const json_t *event,
			   const struct rules_invocation *inv, struct rules_scratch *scratch,
			   rules_log_fn log, void *log_ud)
{
	json_t *out = json_array();
	const struct rules_bucket *b;
	const struct rules_sink k = {log, log_ud, NULL, set_eval__licensed(inv)};
	size_t ei = 0, gi = 0;

	if (!out || !set || !event_type)
		return out;
	b = set__bucket_find(set, event_type);
	/* merge the exact list and the glob list, both ascending: file order */
	for (;;) {
		size_t ex = b && ei < b->n ? b->rules[ei] : SIZE_MAX;
		size_t gl = gi < set->n_glob_rules ? set->glob_rules[gi] : SIZE_MAX;
		size_t idx;

		if (ex == SIZE_MAX && gl == SIZE_MAX)
			break;
		if (gl < ex) {
			gi++;
			if (!set__rule_globs_match(&set->rules[gl], event_type))
				continue;
			idx = gl;
		} else {
			ei++;
			if (gl == ex)
				gi++;
			idx = ex;
		}
		const struct rules_rule *r = &set->rules[idx];
		const struct rules_filter *f =
			r->event_filters ? set_eval__filter_for(r, event_type) : &r->filter;
		if (!set_eval__filter_matches(r, f, event, scratch, &k, NULL))
			continue;
		json_t *n = set_eval__notification(r, event_type, event, scratch, &k);
		if (n)
			json_array_append_new(out, n);
	}
	return out;
}

json_t *rules_evaluate_as(const struct rules_set *set, const char *event_type, const json_t *event,
			  struct rules_scratch *scratch, rules_log_fn log, void *log_ud)
{
	return rules_evaluate_for(set, event_type, event, NULL, scratch, log, log_ud);
}

json_t *rules_evaluate(const struct rules_set *set, const json_t *event, struct rules_scratch *scratch,
		       rules_log_fn log, void *log_ud)
{
	const char *type = json_string_value(json_object_get(event, "eventType"));

	if (!type) {
		json_t *out = json_array();
		return out;
	}
	return rules_evaluate_as(set, type, event, scratch, log, log_ud);
}

json_t *rules_evaluate_schedule(const struct rules_set *set, const char *interval, const json_t *event,
				struct rules_scratch *scratch, rules_log_fn log, void *log_ud)
{
	int v = interval ? set__name_index(interval, set__schedule_names) : -1;

	if (v < 0)
		return json_array();
	return rules_evaluate_as(set, set__schedule_events[v], event, scratch, log, log_ud);
}
