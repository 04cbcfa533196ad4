/* rules_manifest.c - `notify-gateway rules manifest [--endpoint KEY] FILE|DIR...`:
 * prints the Forge manifest `trigger` modules that let Forge filter events
 * before invoking the gateway (fewer invocations against Forge's limits),
 * and says which rules must stay gateway-side only, and why.
 *
 * One trigger per enabled event rule, with the rule's own filter when Forge
 * can evaluate it. That is safe whatever Forge filters: the gateway still
 * evaluates every rule on every event it receives, and an event that passes
 * the triggers of several rules reaches it several times, which the
 * redelivery guard answers `duplicate` (docs/protocol.md). A rule whose
 * expression Forge cannot evaluate gets a trigger without the expression
 * (ignoreSelf kept), so Forge delivers what the gateway must look at.
 *
 * What Forge evaluates is a subset of Jira expressions whose exact list is
 * not published (forge-platform.md §4.3, [NOT CONFIRMED]); this keeps to
 * what the documentation shows and what Jira expressions have: property
 * access with . ?. [], literals, == != < <= > >=, && || !, ?:, let, + - * / %,
 * and the String/List methods listed in FORGE_METHODS. Everything else in our
 * language (the gateway helpers changed/changedTo/changedFrom/mentions/now,
 * `matches` (PCRE2), `in`, `??`, map literals, other methods) keeps the rule
 * gateway-side.
 *
 * The rule files are first loaded with the rule engine (errors: printed,
 * exit 1); then read again with libyaml for the fields a trigger needs.
 * Ownership: everything is freed before returning. Threads: main, alone.
 */
#include "rules_cli.h"

#include <ctype.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>
#include <jansson.h>

#include "rules.h"

/* The rule engine's catalogue of Forge event names (rules/forge_events.c,
 * generated from forge-events.json), to expand event globs. */
extern const char *const rules__forge_events[];
extern const size_t rules__forge_event_count;

static const char *const GATEWAY_FUNCTIONS[] = {"changed",  "changedTo", "changedFrom",
						"mentions", "now",	 NULL};
static const char *const FORGE_METHODS[] = {
	"includes", "startsWith", "endsWith", "toLowerCase", "toUpperCase", "trim",   "split", "slice",
	"indexOf",  "some",	  "every",    "filter",	     "map",	    "length", NULL};

static bool in_list(const char *const *list, const char *s, size_t n)
{
	for (; *list; list++)
		if (strlen(*list) == n && !strncmp(*list, s, n))
			return true;
	return false;
}

/* NULL when Forge can evaluate src; else why not (static text in buf). */
static const char *forge_unsupported(const char *src, char *buf, size_t buflen)
{
	const char *p = src;
	char prev = 0; /* the last significant character before the current token */
	while (*p) {
		if (isspace((unsigned char)*p)) {
			p++;
			continue;
		}
		if (*p == '\'' || *p == '"') {
			char q = *p++;
			while (*p && *p != q) {
				if (*p == '\\' && p[1])
					p++;
				p++;
			}
			if (*p)
				p++;
			prev = 's';
			continue;
		}
		if (isalpha((unsigned char)*p) || *p == '_' || *p == '$') {
			const char *s = p;
			while (isalnum((unsigned char)*p) || *p == '_' || *p == '$')
				p++;
			size_t n = (size_t)(p - s);
			const char *after = p;
			while (isspace((unsigned char)*after))
				after++;
			bool member = prev == '.';
			if (!member && n == 7 && !strncmp(s, "matches", 7)) {
				snprintf(
					buf, buflen,
					"uses `matches` (a PCRE2 regex), which Forge's expressions do not have");
				return buf;
			}
			if (!member && n == 2 && !strncmp(s, "in", 2)) {
				snprintf(
					buf, buflen,
					"uses the `in` operator, not in Forge's documented expression subset");
				return buf;
			}
			if (!member && *after == '(' && in_list(GATEWAY_FUNCTIONS, s, n)) {
				snprintf(buf, buflen, "uses %.*s(), a gateway helper Forge does not have",
					 (int)n, s);
				return buf;
			}
			if (member && *after == '(' && !in_list(FORGE_METHODS, s, n)) {
				snprintf(buf, buflen,
					 "uses .%.*s(), not in Forge's documented expression subset", (int)n,
					 s);
				return buf;
			}
			prev = 'a';
			continue;
		}
		if (p[0] == '?' && p[1] == '?') {
			snprintf(buf, buflen, "uses `??`, not in Forge's documented expression subset");
			return buf;
		}
		if (*p == '{') {
			snprintf(buf, buflen,
				 "uses a map literal, not in Forge's documented expression subset");
			return buf;
		}
		if (p[0] == '?' && p[1] == '.') {
			prev = '.';
			p += 2;
			continue;
		}
		prev = *p++;
	}
	return NULL;
}

/* ---- reading the rule files (after the engine accepted them) ----------------- */

struct mrule {
	char *key, *file;
	int line;
	bool enabled, has_ignore_self, ignore_self;
	char *expression, *on_error, *schedule;
	char **events;
	size_t nevents;
};

static const char *scalar(yaml_document_t *d, yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		const char *k = scalar(d, yaml_document_get_node(d, p->key));
		if (k && !strcmp(k, key))
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int read_file(const char *path, struct mrule **rules, size_t *n, FILE *err)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(err, "notify-gateway rules manifest: cannot read %s\n", path);
		return -1;
	}
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	int rc = yaml_parser_load(&parser, &doc) ? 0 : -1;
	if (rc == 0) {
		yaml_node_t *list = get(&doc, yaml_document_get_root_node(&doc), "rules");
		if (list && list->type == YAML_SEQUENCE_NODE) {
			for (yaml_node_item_t *it = list->data.sequence.items.start;
			     it < list->data.sequence.items.top; it++) {
				yaml_node_t *r = yaml_document_get_node(&doc, *it);
				struct mrule *grown = realloc(*rules, (*n + 1) * sizeof(**rules));
				if (!grown) {
					rc = -1;
					break;
				}
				*rules = grown;
				struct mrule *m = &(*rules)[(*n)++];
				memset(m, 0, sizeof(*m));
				m->key = dup_or_null(scalar(&doc, get(&doc, r, "key")));
				m->file = strdup(path);
				m->line = (int)r->start_mark.line + 1;
				const char *en = scalar(&doc, get(&doc, r, "enabled"));
				m->enabled = !en || strcmp(en, "false") != 0;
				m->schedule = dup_or_null(scalar(&doc, get(&doc, r, "schedule")));
				yaml_node_t *filter = get(&doc, r, "filter");
				const char *is = scalar(&doc, get(&doc, filter, "ignoreSelf"));
				m->has_ignore_self = is != NULL;
				m->ignore_self = is && !strcmp(is, "true");
				m->expression = dup_or_null(scalar(&doc, get(&doc, filter, "expression")));
				m->on_error = dup_or_null(scalar(&doc, get(&doc, filter, "onError")));
				yaml_node_t *ev = get(&doc, r, "events");
				if (ev && ev->type == YAML_SEQUENCE_NODE) {
					size_t cap = (size_t)(ev->data.sequence.items.top -
							      ev->data.sequence.items.start);
					m->events = calloc(cap + 1, sizeof(char *));
					for (yaml_node_item_t *e = ev->data.sequence.items.start;
					     m->events && e < ev->data.sequence.items.top; e++)
						m->events[m->nevents++] = dup_or_null(
							scalar(&doc, yaml_document_get_node(&doc, *e)));
				}
			}
		}
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&parser);
	fclose(f);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The files a path stands for, as the engine loads them (a directory: its
 * *.yml / *.yaml, not hidden, sorted). */
static int read_path(const char *path, struct mrule **rules, size_t *n, FILE *err)
{
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		DIR *d = opendir(path);
		char **names = NULL;
		size_t count = 0;
		struct dirent *e;
		while (d && (e = readdir(d))) {
			size_t l = strlen(e->d_name);
			if (e->d_name[0] == '.' || !((l > 4 && !strcmp(e->d_name + l - 4, ".yml")) ||
						     (l > 5 && !strcmp(e->d_name + l - 5, ".yaml"))))
				continue;
			char **g = realloc(names, (count + 1) * sizeof(*names));
			if (!g)
				break;
			names = g;
			names[count++] = strdup(e->d_name);
		}
		if (d)
			closedir(d);
		qsort(names, count, sizeof(*names), cmp_str);
		int rc = 0;
		for (size_t i = 0; i < count; i++) {
			char *full = NULL;
			if (!rc && asprintf(&full, "%s/%s", path, names[i]) > 0)
				rc = read_file(full, rules, n, err);
			free(full);
			free(names[i]);
		}
		free(names);
		return rc;
	}
	return read_file(path, rules, n, err);
}

static bool glob_match(const char *pat, const char *s)
{
	if (!*pat)
		return !*s;
	if (*pat == '*')
		return glob_match(pat + 1, s) || (*s && glob_match(pat, s + 1));
	return *s == *pat && glob_match(pat + 1, s + 1);
}

/* A module key from a rule key: [a-zA-Z0-9_-], prefixed, unique. */
static void module_key(const char *rule_key, char *out, size_t outlen, json_t *used)
{
	char base[96];
	size_t o = 0;
	o += (size_t)snprintf(base, sizeof(base), "notify-");
	for (const char *p = rule_key; *p && o + 1 < sizeof(base); p++)
		base[o++] = isalnum((unsigned char)*p) || *p == '_' || *p == '-' ? *p : '-';
	base[o] = '\0';
	snprintf(out, outlen, "%s", base);
	for (int i = 2; json_object_get(used, out); i++)
		snprintf(out, outlen, "%s-%d", base, i);
	json_object_set_new(used, out, json_true());
}

static void yaml_string(FILE *out, const char *s)
{
	/* A JSON string is a YAML double-quoted scalar. */
	json_t *j = json_string(s);
	char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
	fputs(t ? t : "\"\"", out);
	free(t);
	json_decref(j);
}

int gw_rules_manifest(int argc, char **argv, FILE *out, FILE *err)
{
	const char *endpoint = "notify-events";
	const char **paths = calloc((size_t)argc + 1, sizeof(*paths));
	size_t npaths = 0;
	if (!paths)
		return 2;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--endpoint") && i + 1 < argc) {
			endpoint = argv[++i];
		} else if (!strncmp(argv[i], "--endpoint=", 11)) {
			endpoint = argv[i] + 11;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			fprintf(err,
				"notify-gateway rules manifest: unknown option %s\n"
				"usage: notify-gateway rules manifest [--endpoint KEY] FILE|DIR...\n",
				argv[i]);
			free(paths);
			return 2;
		} else {
			paths[npaths++] = argv[i];
		}
	}
	for (const char *e = endpoint; *e; e++)
		if (!isalnum((unsigned char)*e) && *e != '_' && *e != '-') {
			fprintf(err, "notify-gateway rules manifest: --endpoint must match [a-zA-Z0-9_-]+\n");
			free(paths);
			return 2;
		}
	if (!npaths || !*endpoint) {
		fprintf(err, "usage: notify-gateway rules manifest [--endpoint KEY] FILE|DIR...\n");
		free(paths);
		return 2;
	}
	/* The engine decides whether the files are valid. */
	struct rules_diags diags;
	rules_diags_init(&diags);
	struct rules_set *set = rules_load_paths(paths, npaths, &diags);
	rules_diags_print(&diags, err);
	rules_diags_free(&diags);
	if (!set) {
		free(paths);
		return 1;
	}
	rules_set_unref(set);

	struct mrule *rules = NULL;
	size_t n = 0;
	int rc = 0;
	for (size_t i = 0; i < npaths && !rc; i++)
		rc = read_path(paths[i], &rules, &n, err);
	if (rc) {
		rc = 1;
		goto done;
	}

	/* One trigger per enabled event rule: its events (globs expanded) and
	 * the part of its filter Forge can evaluate. */
	struct trig {
		struct mrule *r;
		char key[128];
		json_t *events; /* [name, from-glob-or-null] pairs, in order */
		bool ignore_self, expr;
		const char *no;
		char why[160];
	} *t = calloc(n ? n : 1, sizeof(*t));
	size_t nt = 0;
	json_t *used = json_object();
	for (size_t i = 0; t && i < n; i++) {
		struct mrule *r = &rules[i];
		if (!r->enabled || r->schedule || !r->nevents)
			continue;
		struct trig *x = &t[nt++];
		x->r = r;
		module_key(r->key, x->key, sizeof(x->key), used);
		x->events = json_array();
		json_t *seen = json_object();
		for (size_t e = 0; e < r->nevents; e++) {
			bool glob = strchr(r->events[e], '*') != NULL;
			/* Forge takes exact names: a glob is expanded over the known events. */
			for (size_t k = 0; k < (glob ? rules__forge_event_count : 1); k++) {
				const char *name = glob ? rules__forge_events[k] : r->events[e];
				if ((glob && !glob_match(r->events[e], name)) || json_object_get(seen, name))
					continue;
				json_object_set_new(seen, name, json_true());
				json_array_append_new(x->events,
						      json_pack("[s,s?]", name, glob ? r->events[e] : NULL));
			}
		}
		json_decref(seen);
		x->no = r->expression ? forge_unsupported(r->expression, x->why, sizeof(x->why)) : NULL;
		x->expr = r->expression && !x->no;
		x->ignore_self = r->ignore_self;
	}
	json_decref(used);
	/* An event already delivered by a trigger whose filter lets through at
	 * least as much (no expression; no ignoreSelf, or ignoreSelf on both) is
	 * left out of the others: one invocation fewer per such event. */
#define COVERS(i, j) (!(i)->expr && (!(i)->ignore_self || (j)->ignore_self))
	size_t forge_filtered = 0, gateway_only = 0, printed = 0;
	fprintf(out,
		"# Trigger modules for manifest.yml, from notify-gateway rules manifest (%zu rule%s).\n"
		"# Each delivers to the endpoint '%s' (route /forge/events); Forge filters first where it can.\n"
		"# The gateway still evaluates every rule on what it receives; an event passing several\n"
		"# triggers arrives once per trigger, and the redelivery guard answers the extra ones 'duplicate'.\n"
		"modules:\n  trigger:\n",
		n, n == 1 ? "" : "s", endpoint);
	for (size_t j = 0; j < nt; j++) {
		struct trig *x = &t[j];
		json_t *keep = json_array(), *covered = json_array();
		const char *covered_by = NULL;
		size_t idx;
		json_t *ev;
		json_array_foreach (x->events, idx, ev) {
			const char *name = json_string_value(json_array_get(ev, 0));
			const char *by = NULL;
			for (size_t i = 0; i < nt && !by; i++) {
				if (i == j || !COVERS(&t[i], x) || (i > j && COVERS(x, &t[i])))
					continue;
				size_t k;
				json_t *ev2;
				json_array_foreach (t[i].events, k, ev2)
					if (!strcmp(json_string_value(json_array_get(ev2, 0)), name))
						by = t[i].key;
			}
			if (by) {
				covered_by = by;
				json_array_append_new(covered, json_pack("[s,s]", name, by));
			} else
				json_array_append(keep, ev);
		}
		if (!json_array_size(keep)) {
			fprintf(out,
				"    # rule %s: no trigger of its own, trigger %s already delivers its events\n",
				x->r->key, covered_by);
			json_decref(keep);
			json_decref(covered);
			continue;
		}
		printed++;
		fprintf(out, "    - key: %s  # rule %s (%s:%d)\n      endpoint: %s\n      events:\n", x->key,
			x->r->key, x->r->file, x->r->line, endpoint);
		json_array_foreach (keep, idx, ev) {
			const char *from = json_string_value(json_array_get(ev, 1));
			fprintf(out, "        - %s", json_string_value(json_array_get(ev, 0)));
			if (from)
				fprintf(out, "  # from %s", from);
			fputc('\n', out);
		}
		json_decref(keep);
		json_array_foreach (covered, idx, ev)
			fprintf(out, "        # %s: already delivered by %s\n",
				json_string_value(json_array_get(ev, 0)),
				json_string_value(json_array_get(ev, 1)));
		json_decref(covered);
		if (x->ignore_self || x->expr) {
			fprintf(out, "      filter:\n");
			if (x->ignore_self)
				fprintf(out, "        ignoreSelf: true\n");
			if (x->expr) {
				fprintf(out, "        expression: ");
				yaml_string(out, x->r->expression);
				fprintf(out, "\n        onError: %s\n",
					x->r->on_error ? x->r->on_error : "IGNORE_AND_LOG");
			}
		}
		if (x->expr)
			forge_filtered++;
		if (x->no) {
			gateway_only++;
			fprintf(out, "      # gateway-side only: the expression %s\n", x->no);
		}
	}
#undef COVERS
	fprintf(out,
		"# %zu trigger%s; %zu rule%s filtered by Forge; %zu expression%s kept gateway-side only.\n",
		printed, printed == 1 ? "" : "s", forge_filtered, forge_filtered == 1 ? "" : "s",
		gateway_only, gateway_only == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++) {
		if (!rules[i].enabled)
			fprintf(out, "# rule %s: disabled, no trigger\n", rules[i].key);
		else if (rules[i].schedule)
			fprintf(out,
				"# rule %s: scheduled (%s): a scheduledTrigger with interval %s routed to "
				"/forge/scheduled/%s, not a product-event trigger\n",
				rules[i].key, rules[i].schedule, rules[i].schedule, rules[i].schedule);
	}
	for (size_t j = 0; j < nt; j++)
		json_decref(t[j].events);
	free(t);
done:
	for (size_t i = 0; i < n; i++) {
		for (size_t e = 0; e < rules[i].nevents; e++)
			free(rules[i].events[e]);
		free(rules[i].events);
		free(rules[i].key);
		free(rules[i].file);
		free(rules[i].expression);
		free(rules[i].on_error);
		free(rules[i].schedule);
	}
	free(rules);
	free(paths);
	return rc;
}
