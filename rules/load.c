/* load.c - the rule-file loader: reads rule files and directories, walks
 * each YAML document once, checks every key and value (reporting every
 * mistake found, with file:line:col), compiles expressions and templates into
 * the set's arena, and hands the set to set.c to be indexed.
 *
 * Ownership: returns a new rule set (reference count 1) or NULL; the caller's
 * diagnostics receive every problem. Threads: loading runs on one thread and
 * touches no global state.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "load_internal.h"

static bool known_event(const char *name)
{
	size_t lo = 0, hi = rules__forge_event_count;

	/* The gateway's own scheduled events: "scheduled:X" (once per run) and
	 * "scheduled:X:user" (once per user with activity), docs/protocol.md. */
	for (size_t i = 0; set__schedule_names[i]; i++) {
		size_t n = strlen(set__schedule_names[i]);
		if (!strncmp(name, "scheduled:", 10) && !strncmp(name + 10, set__schedule_names[i], n) &&
		    (name[10 + n] == '\0' || !strcmp(name + 10 + n, ":user")))
			return true;
	}

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(rules__forge_events[mid], name);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static void load_filter(struct rules_loader *L, struct rules_filter *out, yaml_node_t *f,
			const char *const *events, size_t n_events);
static void load_payload(struct rules_loader *L, struct rules_rule *r, yaml_node_t *pl);

/* The known event closest to an unknown name, or NULL if none is close. */
static const char *closest_event(const char *name)
{
	const char *best = NULL;
	int best_d = (int)strlen(name) / 8 + 2;

	for (size_t k = 0; k < rules__forge_event_count; k++) {
		int d = diag__edit_distance(name, rules__forge_events[k]);
		if (d < best_d) {
			best_d = d;
			best = rules__forge_events[k];
		}
	}
	return best;
}

/* One event name (a string node): checked and returned in the set's arena. */
static const char *load_event_name(struct rules_loader *L, struct rules_rule *r, yaml_node_t *e)
{
	if (!yaml__is_string(e) || !*yaml__scalar(e)) {
		yaml__diag(L, e, RULES_SEV_ERROR, "event names must be non-empty strings");
		return NULL;
	}
	const char *name = yaml__dup(L, e);
	if (name && strchr(name, '*')) {
		bool any = false;
		for (size_t k = 0; k < rules__forge_event_count && !any; k++)
			any = glob__match(name, rules__forge_events[k]);
		if (!any)
			yaml__diag(L, e, RULES_SEV_WARNING, "event pattern '%s' matches no known event",
				   name);
		r->has_glob = true;
	} else if (name && !known_event(name)) {
		const char *hint = closest_event(name);
		if (hint)
			yaml__diag(L, e, RULES_SEV_WARNING, "unknown event '%s'; did you mean '%s'?", name,
				   hint);
		else
			yaml__diag(L, e, RULES_SEV_WARNING, "unknown event '%s'", name);
	}
	return name;
}

/* events: [name, ...] or, as @forge/manifest FilteredProductEvents,
 * [{eventType: name, filter: {...}, payload: {...}}, ...]: a filter for that
 * event alone. */
static void load_events(struct rules_loader *L, struct rules_rule *r, yaml_node_t *ev)
{
	static const char *const keys[] = {"eventType", "filter", "payload", NULL};

	if (ev->type != YAML_SEQUENCE_NODE) {
		yaml__diag(L, ev, RULES_SEV_ERROR, "'events' must be a list of event names, got %s",
			   yaml__kind(ev));
		return;
	}
	size_t n = (size_t)(ev->data.sequence.items.top - ev->data.sequence.items.start);
	if (n == 0) {
		yaml__diag(L, ev, RULES_SEV_ERROR, "'events' must not be empty");
		return;
	}
	r->events = arena__alloc(&L->set->arena, n * sizeof(*r->events));
	r->event_filters = arena__alloc(&L->set->arena, n * sizeof(*r->event_filters));
	if (!r->events || !r->event_filters)
		return;
	size_t names = 0, objects = 0;
	for (yaml_node_item_t *it = ev->data.sequence.items.start; it < ev->data.sequence.items.top; it++)
		if (yaml__at(L, *it)->type == YAML_MAPPING_NODE)
			objects++;
		else
			names++;
	if (names && objects)
		yaml__forge_note(L, ev,
				 "Forge would refuse these events: its manifest takes either "
				 "event names or {eventType, filter} objects, not both");
	for (yaml_node_item_t *it = ev->data.sequence.items.start; it < ev->data.sequence.items.top; it++) {
		yaml_node_t *e = yaml__at(L, *it);
		if (e->type != YAML_MAPPING_NODE) {
			const char *name = load_event_name(L, r, e);
			if (name)
				r->events[r->n_events++] = name;
			continue;
		}
		yaml__check_keys(L, e, keys, "the event");
		yaml_node_t *type = yaml__get(L, e, "eventType", NULL);
		yaml_node_t *f = yaml__get(L, e, "filter", NULL);
		yaml_node_t *pl = yaml__get(L, e, "payload", NULL);
		if (!type || !f) {
			yaml__diag(L, e, RULES_SEV_ERROR,
				   "an event given as a mapping needs 'eventType' and 'filter' (as in "
				   "the Forge manifest)");
			continue;
		}
		const char *name = load_event_name(L, r, type);
		struct rules_filter *rf = arena__alloc(&L->set->arena, sizeof(*rf));
		if (!name || !rf)
			continue;
		load_filter(L, rf, f, &name, 1);
		if (pl)
			load_payload(L, r, pl);
		r->event_filters[r->n_events] = rf;
		r->events[r->n_events++] = name;
	}
	if (!objects)
		r->event_filters = NULL; /* the common case: no per-event lookup when evaluating */
}

static void load_schedule(struct rules_loader *L, struct rules_rule *r, yaml_node_t *sc)
{
	int v = yaml__is_string(sc) ? set__name_index(yaml__scalar(sc), set__schedule_names) : -1;
	const char *hint = yaml__is_string(sc) ? yaml__closest(yaml__scalar(sc), set__schedule_names) : NULL;

	if (v < 0) {
		if (hint)
			yaml__diag(L, sc, RULES_SEV_ERROR, "invalid schedule '%s'; did you mean '%s'?",
				   yaml__scalar(sc), hint);
		else
			yaml__diag(L, sc, RULES_SEV_ERROR,
				   "invalid schedule; expected fiveMinute, hour, day or week");
		return;
	}
	r->events = arena__alloc(&L->set->arena, sizeof(*r->events));
	if (!r->events)
		return;
	r->schedule = set__schedule_names[v];
	r->events[r->n_events++] = set__schedule_events[v];
}

/* filter: {appIsLicensed, ignoreSelf, expression, onError} into *out;
 * events[0..n_events) are the events it applies to (ignoreSelf is for Jira
 * events only). */
static void load_filter(struct rules_loader *L, struct rules_filter *out, yaml_node_t *f,
			const char *const *events, size_t n_events)
{
	static const char *const keys[] = {"appIsLicensed", "ignoreSelf", "expression", "onError", NULL};
	yaml_node_t *k_ignore = NULL, *k_on_error = NULL;

	out->on_error = ON_ERROR_IGNORE_AND_LOG;
	out->line = (int)f->start_mark.line + 1;
	if (f->type != YAML_MAPPING_NODE) {
		yaml__diag(L, f, RULES_SEV_ERROR, "'filter' must be a mapping, got %s", yaml__kind(f));
		return;
	}
	yaml__check_keys(L, f, keys, "filter");
	yaml_node_t *lic = yaml__get(L, f, "appIsLicensed", NULL);
	yaml_node_t *ig = yaml__get(L, f, "ignoreSelf", &k_ignore);
	yaml_node_t *ex = yaml__get(L, f, "expression", NULL);
	yaml_node_t *oe = yaml__get(L, f, "onError", &k_on_error);
	if (lic)
		yaml__get_bool(L, lic, "appIsLicensed", &out->app_licensed);
	if (ig)
		yaml__get_bool(L, ig, "ignoreSelf", &out->ignore_self);
	if (ex) {
		if (yaml__is_string(ex))
			out->expr = yaml__compile_expr(L, ex, true);
		else
			yaml__diag(L, ex, RULES_SEV_ERROR, "'expression' must be a string, got %s",
				   yaml__kind(ex));
	}
	if (oe) {
		int v = yaml__is_string(oe) ? set__name_index(yaml__scalar(oe), set__on_error_names) : -1;
		const char *hint =
			yaml__is_string(oe) ? yaml__closest(yaml__scalar(oe), set__on_error_names) : NULL;
		if (v >= 0)
			out->on_error = (enum on_error)v;
		else if (hint)
			yaml__diag(L, oe, RULES_SEV_ERROR, "invalid onError '%s'; did you mean '%s'?",
				   yaml__scalar(oe), hint);
		else
			yaml__diag(L, oe, RULES_SEV_ERROR,
				   "invalid onError value; expected IGNORE, IGNORE_AND_LOG, RECEIVE or "
				   "RECEIVE_AND_LOG");
		if (!ex)
			yaml__diag(L, k_on_error, RULES_SEV_WARNING,
				   "'onError' has no effect without 'expression'");
	}
	/* @forge/manifest ProductEventsFilter: anyOf appIsLicensed, ignoreSelf, expression */
	if (!lic && !ig && !ex)
		yaml__diag(L, f, RULES_SEV_ERROR,
			   "'filter' needs at least one of 'appIsLicensed', 'ignoreSelf' or "
			   "'expression'");
	if (out->ignore_self) {
		for (size_t i = 0; i < n_events; i++) {
			if (events[i] && !strstr(events[i], "jira")) {
				yaml__diag(L, k_ignore, RULES_SEV_ERROR,
					   "ignoreSelf works only with Jira events (Forge refuses it too)");
				break;
			}
		}
	}
}

/* Distinct property paths of the rules loaded so far (r included). */
static size_t distinct_paths(struct rules_loader *L, const struct rules_rule *r)
{
	size_t n = 0;

	for (const struct rules_rule *a = L->set->rules; a <= r; a++)
		for (size_t i = 0; i < a->n_property_paths; i++) {
			bool seen = false;
			for (const struct rules_rule *b = L->set->rules; b <= a && !seen; b++)
				for (size_t j = 0; j < (b == a ? i : b->n_property_paths) && !seen; j++)
					seen = !strcmp(b->property_paths[j], a->property_paths[i]);
			n += !seen;
		}
	return n;
}

/* payload: {include: {propertyPaths: [...], fields: [...]}} (@forge/manifest
 * PayloadInclude). The paths name the entity properties Forge adds to the
 * event (event.payloadIncludeProperties), read in expressions as
 * event.runtime.<path>. */
static void load_payload(struct rules_loader *L, struct rules_rule *r, yaml_node_t *pl)
{
	static const char *const keys[] = {"include", NULL};
	static const char *const inc_keys[] = {"propertyPaths", "fields", NULL};

	if (pl->type != YAML_MAPPING_NODE) {
		yaml__diag(L, pl, RULES_SEV_ERROR, "'payload' must be a mapping, got %s", yaml__kind(pl));
		return;
	}
	yaml__check_keys(L, pl, keys, "payload");
	yaml_node_t *inc = yaml__get(L, pl, "include", NULL);
	if (!inc) {
		yaml__diag(L, pl, RULES_SEV_ERROR, "'payload' needs 'include'");
		return;
	}
	if (inc->type != YAML_MAPPING_NODE) {
		yaml__diag(L, inc, RULES_SEV_ERROR, "'include' must be a mapping, got %s", yaml__kind(inc));
		return;
	}
	yaml__check_keys(L, inc, inc_keys, "payload.include");
	yaml_node_t *paths = yaml__get(L, inc, "propertyPaths", NULL);
	yaml_node_t *fields = yaml__get(L, inc, "fields", NULL);
	if (!paths && !fields)
		yaml__diag(L, inc, RULES_SEV_ERROR, "'include' needs 'propertyPaths' or 'fields'");
	for (int k = 0; k < 2; k++) {
		yaml_node_t *list = k ? fields : paths;
		const char *what = k ? "fields" : "propertyPaths";
		if (!list)
			continue;
		if (list->type != YAML_SEQUENCE_NODE ||
		    list->data.sequence.items.start == list->data.sequence.items.top) {
			yaml__diag(L, list, RULES_SEV_ERROR, "'%s' must be a non-empty list of strings",
				   what);
			continue;
		}
		size_t n = (size_t)(list->data.sequence.items.top - list->data.sequence.items.start);
		const char **all =
			k ? NULL : arena__alloc(&L->set->arena, (r->n_property_paths + n) * sizeof(*all));
		if (!k && !all)
			return;
		if (!k && r->n_property_paths)
			memcpy(all, r->property_paths, r->n_property_paths * sizeof(*all));
		if (!k)
			r->property_paths = all; /* distinct_paths() reads it as paths are added */
		for (yaml_node_item_t *it = list->data.sequence.items.start;
		     it < list->data.sequence.items.top; it++) {
			yaml_node_t *e = yaml__at(L, *it);
			if (!yaml__is_string(e) || !*yaml__scalar(e)) {
				yaml__diag(L, e, RULES_SEV_ERROR, "each of '%s' must be a non-empty string",
					   what);
				continue;
			}
			if (!k && !runtime__path_valid(yaml__scalar(e)))
				yaml__diag(L, e, RULES_SEV_ERROR,
					   "invalid property path '%s' (expected ENTITY.properties['key'] "
					   "followed by .name or ['name'] parts; ENTITY: issue, project, "
					   "user or issuetype)",
					   yaml__scalar(e));
			else if (!k)
				all[r->n_property_paths++] = yaml__dup(L, e);
			if (!k && distinct_paths(L, r) == 6)
				yaml__forge_note(L, e,
						 "Forge would refuse this path: a manifest may "
						 "name at most 5 distinct property paths");
		}
		if (!k)
			r->property_paths = all;
	}
}

static void load_to(struct rules_loader *L, struct rules_rule *r, yaml_node_t *to)
{
	yaml_node_item_t single = 0, *start, *top;

	if (to->type == YAML_SEQUENCE_NODE) {
		start = to->data.sequence.items.start;
		top = to->data.sequence.items.top;
		if (start == top) {
			yaml__diag(L, to, RULES_SEV_ERROR, "'to' must not be empty");
			return;
		}
	} else if (yaml__is_string(to)) {
		/* a lone string is a one-element list (node ids are 1-based) */
		single = (yaml_node_item_t)(to - L->doc.nodes.start) + 1;
		start = &single;
		top = start + 1;
	} else {
		yaml__diag(L, to, RULES_SEV_ERROR,
			   "'to' must be an expression or a list of expressions, got %s", yaml__kind(to));
		return;
	}
	r->to = arena__alloc(&L->set->arena, (size_t)(top - start) * sizeof(*r->to));
	if (!r->to)
		return;
	for (yaml_node_item_t *it = start; it < top; it++) {
		yaml_node_t *e = yaml__at(L, *it);
		if (!yaml__is_string(e)) {
			yaml__diag(L, e, RULES_SEV_ERROR, "each entry of 'to' must be an expression string");
			continue;
		}
		struct rules_expr *x = yaml__compile_expr(L, e, false);
		if (x)
			r->to[r->n_to++] = x;
	}
}

static void load_actions(struct rules_loader *L, struct rules_rule *r, yaml_node_t *acts)
{
	static const char *const keys[] = {"text", "href", NULL};

	if (acts->type != YAML_SEQUENCE_NODE) {
		yaml__diag(L, acts, RULES_SEV_ERROR, "'actions' must be a list, got %s", yaml__kind(acts));
		return;
	}
	size_t n = (size_t)(acts->data.sequence.items.top - acts->data.sequence.items.start);
	r->actions = arena__alloc(&L->set->arena, (n ? n : 1) * sizeof(*r->actions));
	if (!r->actions)
		return;
	for (yaml_node_item_t *it = acts->data.sequence.items.start; it < acts->data.sequence.items.top;
	     it++) {
		yaml_node_t *a = yaml__at(L, *it);
		if (a->type != YAML_MAPPING_NODE) {
			yaml__diag(L, a, RULES_SEV_ERROR,
				   "each action must be a mapping with 'text' and 'href'");
			continue;
		}
		yaml__check_keys(L, a, keys, "action");
		yaml_node_t *text = yaml__get(L, a, "text", NULL), *href = yaml__get(L, a, "href", NULL);
		if (!text)
			yaml__diag(L, a, RULES_SEV_ERROR, "action is missing required key 'text'");
		if (!href)
			yaml__diag(L, a, RULES_SEV_ERROR, "action is missing required key 'href'");
		if (!text || !href)
			continue;
		struct rules_action *ra = &r->actions[r->n_actions];
		ra->text = yaml__compile_template(L, text, "text");
		ra->href = yaml__compile_template(L, href, "href");
		if (ra->text && ra->href)
			r->n_actions++;
	}
}

static void load_notify(struct rules_loader *L, struct rules_rule *r, yaml_node_t *nt)
{
	static const char *const keys[] = {"to",      "context", "type",	 "title", "description",
					   "actions", "ttl",	 "excludeActor", NULL};

	if (nt->type != YAML_MAPPING_NODE) {
		yaml__diag(L, nt, RULES_SEV_ERROR, "'notify' must be a mapping, got %s", yaml__kind(nt));
		return;
	}
	yaml__check_keys(L, nt, keys, "notify");
	yaml_node_t *to = yaml__get(L, nt, "to", NULL), *context = yaml__get(L, nt, "context", NULL);
	yaml_node_t *type = yaml__get(L, nt, "type", NULL), *title = yaml__get(L, nt, "title", NULL);
	yaml_node_t *desc = yaml__get(L, nt, "description", NULL), *acts = yaml__get(L, nt, "actions", NULL);
	yaml_node_t *ttl = yaml__get(L, nt, "ttl", NULL), *excl = yaml__get(L, nt, "excludeActor", NULL);

	static const char *const required[] = {"to", "context", "title"};
	yaml_node_t *req_nodes[] = {to, context, title};
	for (size_t i = 0; i < 3; i++)
		if (!req_nodes[i])
			yaml__diag(L, nt, RULES_SEV_ERROR, "'notify' is missing required key '%s'",
				   required[i]);
	if (to)
		load_to(L, r, to);
	if (context)
		r->context = yaml__compile_template(L, context, "context");
	if (title)
		r->title = yaml__compile_template(L, title, "title");
	if (desc)
		r->description = yaml__compile_template(L, desc, "description");
	r->type = "info";
	if (type) {
		int v = yaml__is_string(type) ? set__name_index(yaml__scalar(type), set__notify_types) : -1;
		const char *hint =
			yaml__is_string(type) ? yaml__closest(yaml__scalar(type), set__notify_types) : NULL;
		if (v >= 0)
			r->type = set__notify_types[v];
		else if (hint)
			yaml__diag(L, type, RULES_SEV_ERROR, "invalid type '%s'; did you mean '%s'?",
				   yaml__scalar(type), hint);
		else
			yaml__diag(L, type, RULES_SEV_ERROR,
				   "invalid type; expected info, success, warning or error");
	}
	if (acts)
		load_actions(L, r, acts);
	if (excl)
		yaml__get_bool(L, excl, "excludeActor", &r->exclude_actor);
	if (ttl) {
		char *end = NULL;
		long v = -1;
		if (ttl->type == YAML_SCALAR_NODE && ttl->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
		    *yaml__scalar(ttl)) {
			errno = 0;
			v = strtol(yaml__scalar(ttl), &end, 10);
			if (errno || *end)
				v = -1;
		}
		if (v < 1 || v > RULES_MAX_TTL)
			yaml__diag(L, ttl, RULES_SEV_ERROR,
				   "'ttl' must be a whole number of seconds from 1 to %d", RULES_MAX_TTL);
		else
			r->ttl = v;
	}
}

static bool valid_rule_key(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '.' || *s == '-'))
			return false;
	return true;
}

static void load_rule(struct rules_loader *L, yaml_node_t *rn, size_t index)
{
	static const char *const keys[] = {"key",    "enabled", "events", "schedule",
					   "filter", "payload", "notify", NULL};
	struct rules_rule *r = &L->set->rules[index];

	r->enabled = true;
	r->file = L->file_copy;
	r->line = (int)rn->start_mark.line + 1;
	if (rn->type != YAML_MAPPING_NODE) {
		yaml__diag(L, rn, RULES_SEV_ERROR, "each rule must be a mapping, got %s", yaml__kind(rn));
		return;
	}
	yaml__check_keys(L, rn, keys, "rule");
	yaml_node_t *key = yaml__get(L, rn, "key", NULL), *enabled = yaml__get(L, rn, "enabled", NULL);
	yaml_node_t *events = yaml__get(L, rn, "events", NULL), *filter = yaml__get(L, rn, "filter", NULL);
	yaml_node_t *notify = yaml__get(L, rn, "notify", NULL), *k_schedule = NULL;
	yaml_node_t *schedule = yaml__get(L, rn, "schedule", &k_schedule);
	yaml_node_t *payload = yaml__get(L, rn, "payload", NULL);

	if (!key) {
		yaml__diag(L, rn, RULES_SEV_ERROR, "rule is missing required key 'key'");
	} else if (!yaml__is_string(key) || !valid_rule_key(yaml__scalar(key))) {
		yaml__diag(L, key, RULES_SEV_ERROR,
			   "rule key must be made of letters, digits, '_', '.' and '-'");
	} else {
		r->key = yaml__dup(L, key);
		for (size_t i = 0; i < index; i++) {
			const struct rules_rule *o = &L->set->rules[i];
			if (!o->key || strcmp(o->key, r->key))
				continue;
			if (o->file == r->file)
				yaml__diag(L, key, RULES_SEV_ERROR,
					   "duplicate rule key '%s' (first used at line %d)", r->key,
					   o->line);
			else
				yaml__diag(L, key, RULES_SEV_ERROR,
					   "duplicate rule key '%s' (first used at %s:%d)", r->key, o->file,
					   o->line);
			break;
		}
	}
	if (enabled)
		yaml__get_bool(L, enabled, "enabled", &r->enabled);
	if (events && schedule)
		yaml__diag(L, k_schedule, RULES_SEV_ERROR,
			   "a rule has either 'events' or 'schedule', not both");
	else if (schedule)
		load_schedule(L, r, schedule);
	else if (!events)
		yaml__diag(L, rn, RULES_SEV_ERROR, "rule is missing required key 'events'");
	else
		load_events(L, r, events);
	r->filter.on_error = ON_ERROR_IGNORE_AND_LOG;
	if (filter)
		load_filter(L, &r->filter, filter, r->events, r->n_events);
	if (filter && r->schedule && (r->filter.ignore_self || r->filter.expr))
		yaml__forge_note(L, filter,
				 "Forge would refuse this filter: a scheduled trigger's "
				 "filter takes only appIsLicensed");
	if (payload)
		load_payload(L, r, payload);
	if (!notify)
		yaml__diag(L, rn, RULES_SEV_ERROR, "rule is missing required key 'notify'");
	else
		load_notify(L, r, notify);
}

static void load_document(struct rules_loader *L, yaml_node_t *root)
{
	static const char *const top_keys[] = {"rules", NULL};

	if (!root) {
		yaml__diag(L, NULL, RULES_SEV_ERROR,
			   "the rule file is empty; expected a mapping with a 'rules' list");
		return;
	}
	if (root->type != YAML_MAPPING_NODE) {
		yaml__diag(L, root, RULES_SEV_ERROR,
			   "the top level must be a mapping with a 'rules' list, got %s", yaml__kind(root));
		return;
	}
	yaml__check_keys(L, root, top_keys, "the top level");
	yaml_node_t *rules = yaml__get(L, root, "rules", NULL);
	if (!rules) {
		yaml__diag(L, root, RULES_SEV_ERROR, "missing required key 'rules'");
		return;
	}
	if (rules->type != YAML_SEQUENCE_NODE) {
		yaml__diag(L, rules, RULES_SEV_ERROR, "'rules' must be a list, got %s", yaml__kind(rules));
		return;
	}
	struct rules_set *set = L->set;
	size_t n = (size_t)(rules->data.sequence.items.top - rules->data.sequence.items.start);
	size_t base = set->n_rules;
	if (base + n > set->cap_rules) {
		size_t cap = set->cap_rules ? set->cap_rules : 16;
		while (cap < base + n)
			cap *= 2;
		struct rules_rule *nr = realloc(set->rules, cap * sizeof(*nr));
		if (!nr) {
			yaml__diag(L, NULL, RULES_SEV_ERROR, "out of memory");
			return;
		}
		set->rules = nr;
		set->cap_rules = cap;
	}
	if (n)
		memset(set->rules + base, 0, n * sizeof(*set->rules));
	set->n_rules = base + n;
	for (size_t i = 0; i < n; i++)
		load_rule(L, yaml__at(L, rules->data.sequence.items.start[i]), base + i);
}

static void yaml_error(struct rules_loader *L, yaml_parser_t *p)
{
	int line, col;

	if (p->error == YAML_READER_ERROR) {
		linemap__locate(&L->lm, p->problem_offset, &line, &col);
	} else {
		line = (int)p->problem_mark.line + 1;
		col = (int)p->problem_mark.column + 1;
	}
	char *src = linemap__line_dup(&L->lm, line);
	const char *problem = p->problem ? p->problem : "unknown error";
	if (p->error == YAML_MEMORY_ERROR)
		problem = "out of memory";
	if (p->context)
		diag__add(L->d, RULES_SEV_ERROR, L->file, line, col, src,
			  "YAML syntax error: %s (%s at line %d)", problem, p->context,
			  (int)p->context_mark.line + 1);
	else
		diag__add(L->d, RULES_SEV_ERROR, L->file, line, col, src, "YAML syntax error: %s", problem);
	L->errors++;
	free(src);
}

/* Parses one YAML source into `set` (appending its rules). Returns the
 * number of errors found. */
static size_t load_source(struct rules_set *set, const char *name, const char *yaml, size_t len,
			  struct rules_diags *diags)
{
	struct rules_loader L;
	yaml_parser_t parser;
	bool parser_ok = false, doc_ok = false;

	memset(&L, 0, sizeof(L));
	L.file = name;
	L.d = diags;
	L.set = set;
	set__hash_source(set, yaml, len);
	L.file_copy = arena__strndup(&set->arena, name, strlen(name));
	if (!L.file_copy || linemap__init(&L.lm, yaml, len) < 0) {
		diag__add(diags, RULES_SEV_ERROR, name, 0, 0, NULL, "out of memory");
		return 1;
	}
	if (!yaml_parser_initialize(&parser)) {
		yaml__diag(&L, NULL, RULES_SEV_ERROR, "out of memory");
		goto done;
	}
	parser_ok = true;
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&parser, &L.doc)) {
		yaml_error(&L, &parser);
		goto done;
	}
	doc_ok = true;
	load_document(&L, yaml_document_get_root_node(&L.doc));

	/* a second document would be silently ignored: refuse it */
	yaml_document_t extra;
	if (!yaml_parser_load(&parser, &extra)) {
		yaml_error(&L, &parser);
	} else {
		yaml_node_t *r2 = yaml_document_get_root_node(&extra);
		if (r2)
			yaml__diag(&L, r2, RULES_SEV_ERROR,
				   "the rule file must contain a single YAML document");
		yaml_document_delete(&extra);
	}
done:
	if (doc_ok)
		yaml_document_delete(&L.doc);
	if (parser_ok)
		yaml_parser_delete(&parser);
	linemap__free(&L.lm);
	return L.errors;
}

/* Indexes a fully loaded set; frees it and returns NULL if errors were
 * found or the index cannot be built. */
static struct rules_set *finish(struct rules_set *set, size_t errors, const char *name,
				struct rules_diags *diags)
{
	if (!errors && set__build_index(set) < 0) {
		diag__add(diags, RULES_SEV_ERROR, name, 0, 0, NULL, "out of memory");
		errors++;
	}
	if (errors) {
		set__free(set);
		return NULL;
	}
	snprintf(set->version, sizeof(set->version), "%016llx", (unsigned long long)set->hash);
	return set;
}

struct rules_set *rules_load_string(const char *name, const char *yaml, size_t len, struct rules_diags *diags)
{
	struct rules_diags local;
	struct rules_set *set;

	if (!diags) {
		rules_diags_init(&local);
		diags = &local;
	}
	name = name ? name : "<rules>";
	set = set__new();
	if (!set)
		diag__add(diags, RULES_SEV_ERROR, name, 0, 0, NULL, "out of memory");
	else
		set = finish(set, load_source(set, name, yaml, len, diags), name, diags);
	if (diags == &local)
		rules_diags_free(&local);
	return set;
}

/* Reads a whole file into a malloc'd buffer; -1 (with a diagnostic) on error. */
static int read_file(const char *path, char **out, size_t *out_len, struct rules_diags *diags)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f) {
		diag__add(diags, RULES_SEV_ERROR, path, 0, 0, NULL, "cannot open rule file: %s",
			  strerror(errno));
		return -1;
	}
	for (;;) {
		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 16384;
			char *nb = realloc(buf, cap);
			if (!nb) {
				diag__add(diags, RULES_SEV_ERROR, path, 0, 0, NULL, "out of memory");
				goto fail;
			}
			buf = nb;
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		diag__add(diags, RULES_SEV_ERROR, path, 0, 0, NULL, "cannot read rule file: %s",
			  strerror(errno));
		goto fail;
	}
	fclose(f);
	*out = buf;
	*out_len = len;
	return 0;
fail:
	free(buf);
	fclose(f);
	return -1;
}

static size_t load_file_into(struct rules_set *set, const char *path, struct rules_diags *diags)
{
	char *buf;
	size_t len, errors;

	if (read_file(path, &buf, &len, diags) < 0)
		return 1;
	errors = load_source(set, path, buf, len, diags);
	free(buf);
	return errors;
}

static int yaml_name_filter(const struct dirent *de)
{
	size_t n = strlen(de->d_name);

	if (de->d_name[0] == '.')
		return 0;
	return (n > 4 && !strcmp(de->d_name + n - 4, ".yml")) ||
	       (n > 5 && !strcmp(de->d_name + n - 5, ".yaml"));
}

/* Loads every *.yml / *.yaml file of a directory (not recursive), in
 * byte order of their names. */
static size_t load_dir_into(struct rules_set *set, const char *dir, struct rules_diags *diags)
{
	struct dirent **names = NULL;
	size_t errors = 0;
	int n = scandir(dir, &names, yaml_name_filter, alphasort);

	if (n < 0) {
		diag__add(diags, RULES_SEV_ERROR, dir, 0, 0, NULL, "cannot read directory: %s",
			  strerror(errno));
		return 1;
	}
	if (n == 0) {
		diag__add(diags, RULES_SEV_ERROR, dir, 0, 0, NULL,
			  "the directory holds no rule files (*.yml, *.yaml)");
		errors++;
	}
	for (int i = 0; i < n; i++) {
		size_t dl = strlen(dir);
		char *path = NULL;
		if (asprintf(&path, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", names[i]->d_name) <
		    0) {
			diag__add(diags, RULES_SEV_ERROR, dir, 0, 0, NULL, "out of memory");
			errors++;
		} else {
			errors += load_file_into(set, path, diags);
		}
		free(path);
		free(names[i]);
	}
	free(names);
	return errors;
}

struct rules_set *rules_load_paths(const char *const *paths, size_t n, struct rules_diags *diags)
{
	struct rules_diags local;
	struct rules_set *set;
	size_t errors = 0;

	if (!diags) {
		rules_diags_init(&local);
		diags = &local;
	}
	set = set__new();
	if (!set) {
		diag__add(diags, RULES_SEV_ERROR, n ? paths[0] : "<rules>", 0, 0, NULL, "out of memory");
		goto done;
	}
	if (n == 0) {
		diag__add(diags, RULES_SEV_ERROR, "<rules>", 0, 0, NULL, "no rule file given");
		errors++;
	}
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (stat(paths[i], &st) == 0 && S_ISDIR(st.st_mode))
			errors += load_dir_into(set, paths[i], diags);
		else
			errors += load_file_into(set, paths[i], diags);
	}
	set = finish(set, errors, n ? paths[0] : "<rules>", diags);
done:
	if (diags == &local)
		rules_diags_free(&local);
	return set;
}

struct rules_set *rules_load_file(const char *path, struct rules_diags *diags)
{
	return rules_load_paths(&path, 1, diags);
}
