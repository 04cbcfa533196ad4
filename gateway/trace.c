/* trace.c - see trace.h. */
#include "trace.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rules.h"
#include "stats.h"
#include "store.h"
#include "util.h"

#define MAX_USERS 32 /* account ids remembered per entry for ?user= */

struct note {
	char *user;
	uint64_t seq;
	long connections; /* -1: not written yet (or nobody subscribed: 0) */
	int stored; /* recorded with the event's done mark */
};

struct gw_trace_entry {
	uint64_t intake_no;
	char trace_id[64];
	char *text; /* the decision as JSON, without the delivery counts */
	char **users;
	size_t nusers;
	struct note *notes;
	size_t nnotes;
	size_t bytes;
};

int gw_trace_init(struct gw_trace *t, size_t max_entries, size_t max_bytes)
{
	memset(t, 0, sizeof(*t));
	if (!max_entries)
		return 0;
	t->ring = calloc(max_entries, sizeof(*t->ring));
	if (!t->ring || gw_strmap_init(&t->by_intake, 1024)) {
		free(t->ring);
		t->ring = NULL;
		return -1;
	}
	t->max_entries = max_entries;
	t->max_bytes = max_bytes;
	pthread_mutex_init(&t->lock, NULL);
	return 0;
}

static void entry_free(struct gw_trace_entry *e)
{
	if (!e)
		return;
	free(e->text);
	for (size_t i = 0; i < e->nusers; i++)
		free(e->users[i]);
	free(e->users);
	for (size_t i = 0; i < e->nnotes; i++)
		free(e->notes[i].user);
	free(e->notes);
	free(e);
}

void gw_trace_destroy(struct gw_trace *t)
{
	if (!t->ring)
		return;
	for (size_t i = 0; i < t->count; i++)
		entry_free(t->ring[(t->head + i) % t->max_entries]);
	free(t->ring);
	gw_strmap_free(&t->by_intake, NULL);
	pthread_mutex_destroy(&t->lock);
	t->ring = NULL;
}

/* Account ids the event names, for ?user= (recipients are added too). */
static void collect_ids(const json_t *v, int depth, json_t *ids)
{
	if (depth > 8 || json_array_size(ids) >= MAX_USERS)
		return;
	if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach ((json_t *)v, k, x) {
			if ((!strcmp(k, "accountId") || !strcmp(k, "atlassianId")) && json_is_string(x))
				json_array_append(ids, x);
			else
				collect_ids(x, depth + 1, ids);
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach (v, i, x)
			collect_ids(x, depth + 1, ids);
	}
}

static void add_user(struct gw_trace_entry *e, const char *u)
{
	if (!u || !*u || e->nusers >= MAX_USERS)
		return;
	for (size_t i = 0; i < e->nusers; i++)
		if (!strcmp(e->users[i], u))
			return;
	char *c = strdup(u);
	if (c) {
		e->users[e->nusers++] = c;
		e->bytes += strlen(c) + 1 + sizeof(char *);
	}
}

/* The evaluation's explanation: the candidate rules (those whose events
 * name the event type) as `rules test` explains them. */
static json_t *candidates(const struct rules_set *set, struct rules_scratch *scratch,
			  const struct gw_trace_event *ev, size_t *others)
{
	json_t *out = json_array();
	*others = 0;
	json_t *ex = set ? rules_explain_for(set, ev->event_type, ev->event, ev->inv, scratch) : NULL;
	size_t i;
	json_t *r;
	json_array_foreach (json_object_get(ex, "rules"), i, r) {
		const char *stage = json_string_value(json_object_get(r, "stage"));
		if (stage && !strcmp(stage, "events"))
			(*others)++;
		else
			json_array_append(out, r);
	}
	json_decref(ex);
	return out;
}

static void evict_locked(struct gw_trace *t)
{
	struct gw_trace_entry *old = t->ring[t->head];
	t->ring[t->head] = NULL;
	t->head = (t->head + 1) % t->max_entries;
	t->count--;
	t->bytes -= old->bytes;
	char key[17];
	gw_id_key(old->intake_no, key);
	if (gw_strmap_get(&t->by_intake, key, 16) == old)
		gw_strmap_remove(&t->by_intake, key, 16);
	entry_free(old);
	gw_stat_inc(GW_STAT_trace_entries_evicted);
}

void gw_trace_record(struct gw_trace *t, const struct rules_set *set, struct rules_scratch *scratch,
		     const struct gw_trace_event *ev, const struct gw_trace_note *notes, size_t nnotes)
{
	if (!t->ring)
		return;
	struct gw_trace_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return;
	e->intake_no = ev->intake_no;
	snprintf(e->trace_id, sizeof(e->trace_id), "%s", ev->trace_id);
	e->users = calloc(MAX_USERS, sizeof(char *));
	e->notes = nnotes ? calloc(nnotes, sizeof(*e->notes)) : NULL;
	if (!e->users || (nnotes && !e->notes)) {
		entry_free(e);
		return;
	}
	e->bytes = sizeof(*e) + MAX_USERS * sizeof(char *) + nnotes * sizeof(*e->notes);

	size_t others;
	json_t *rules = candidates(set, scratch, ev, &others);
	json_t *recipients = json_array();
	json_t *jnotes = json_array();
	for (size_t i = 0; i < nnotes; i++) {
		json_t *n = json_pack("{s:s, s:s, s:s}", "rule", notes[i].rule ? notes[i].rule : "", "user",
				      notes[i].user ? notes[i].user : "", "context",
				      notes[i].ctx ? notes[i].ctx : "");
		if (notes[i].seq)
			json_object_set_new(n, "seq", json_integer((json_int_t)notes[i].seq));
		json_array_append_new(jnotes, n);
		int seen = 0;
		for (size_t j = 0; j < i; j++)
			seen |= notes[j].user && notes[i].user && !strcmp(notes[j].user, notes[i].user);
		if (!seen && notes[i].user)
			json_array_append_new(recipients, json_string(notes[i].user));
		e->notes[i].user = notes[i].user ? strdup(notes[i].user) : NULL;
		e->notes[i].seq = notes[i].seq;
		e->notes[i].connections = -1;
		e->nnotes++;
		e->bytes += notes[i].user ? strlen(notes[i].user) + 1 : 0;
		add_user(e, notes[i].user);
	}
	json_t *ids = json_array();
	collect_ids(ev->event, 0, ids);
	size_t i;
	json_t *x;
	json_array_foreach (ids, i, x)
		add_user(e, json_string_value(x));
	json_decref(ids);

	char when[64];
	time_t sec = (time_t)(ev->accepted_ms / 1000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ev->accepted_ms % 1000));
	json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:o, s:I, s:o, s:o}", "traceId", ev->trace_id,
			      "acceptedAt", when, "intakeNo", (json_int_t)ev->intake_no, "eventType",
			      ev->event_type ? ev->event_type : "", "installation",
			      ev->installation ? ev->installation : "", "rulesVersion",
			      set ? rules_set_version(set) : "", "rules", rules, "otherRules",
			      (json_int_t)others, "recipients", recipients, "notifications", jnotes);
	e->text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (e->text && strlen(e->text) > GW_TRACE_ENTRY_MAX) {
		/* keep the facts, leave the long explanation out */
		free(e->text);
		json_object_set_new(j, "rules", json_string("left out: the explanation is over 64 KiB"));
		e->text = json_dumps(j, JSON_COMPACT);
	}
	json_decref(j);
	if (!e->text) {
		entry_free(e);
		return;
	}
	e->bytes += strlen(e->text) + 1;

	pthread_mutex_lock(&t->lock);
	while (t->count && (t->count >= t->max_entries || t->bytes + e->bytes > t->max_bytes))
		evict_locked(t);
	if (e->bytes > t->max_bytes) { /* cannot fit even alone */
		pthread_mutex_unlock(&t->lock);
		gw_stat_inc(GW_STAT_trace_entries_evicted);
		entry_free(e);
		return;
	}
	t->ring[(t->head + t->count) % t->max_entries] = e;
	t->count++;
	t->bytes += e->bytes;
	char key[17];
	gw_id_key(e->intake_no, key);
	struct gw_strmap_entry *me = gw_strmap_upsert(&t->by_intake, key, 16, NULL);
	if (me)
		me->value = e;
	pthread_mutex_unlock(&t->lock);
}

void gw_trace_stored(struct gw_trace *t, uint64_t intake_no, const struct gw_store_note *notes, size_t n)
{
	if (!t->ring || !n)
		return;
	char key[17];
	gw_id_key(intake_no, key);
	pthread_mutex_lock(&t->lock);
	struct gw_trace_entry *e = gw_strmap_get(&t->by_intake, key, 16);
	/* notes are in the entry's order (one per recipient with a seq) */
	for (size_t i = 0, k = 0; e && i < e->nnotes && k < n; i++)
		if (e->notes[i].seq == notes[k].seq && e->notes[i].user && notes[k].user &&
		    !strcmp(e->notes[i].user, notes[k].user)) {
			e->notes[i].stored = 1;
			k++;
		}
	pthread_mutex_unlock(&t->lock);
}

void gw_trace_delivered(struct gw_trace *t, uint64_t intake_no, const char *user, uint64_t seq,
			size_t connections)
{
	if (!t->ring)
		return;
	char key[17];
	gw_id_key(intake_no, key);
	pthread_mutex_lock(&t->lock);
	struct gw_trace_entry *e = gw_strmap_get(&t->by_intake, key, 16);
	for (size_t i = 0; e && i < e->nnotes; i++)
		if (e->notes[i].seq == seq && e->notes[i].user && user && !strcmp(e->notes[i].user, user)) {
			e->notes[i].connections = (long)connections;
			break;
		}
	pthread_mutex_unlock(&t->lock);
}

/* The entry as served: its decision plus, per notification, stored and
 * connections (null: not released to the connections yet). */
static json_t *entry_json(const struct gw_trace_entry *e)
{
	json_t *j = json_loads(e->text, 0, NULL);
	json_t *notes = json_object_get(j, "notifications");
	for (size_t i = 0; i < e->nnotes && i < json_array_size(notes); i++) {
		json_t *n = json_array_get(notes, i);
		json_object_set_new(n, "stored", json_boolean(e->notes[i].stored));
		json_object_set_new(n, "connections",
				    e->notes[i].connections < 0
					    ? json_null()
					    : json_integer((json_int_t)e->notes[i].connections));
	}
	return j;
}

char *gw_trace_by_id(struct gw_trace *t, const char *trace_id, int *oom)
{
	*oom = 0;
	if (!t->ring)
		return NULL;
	json_t *events = json_array();
	pthread_mutex_lock(&t->lock);
	for (size_t i = t->count; i-- > 0;) {
		const struct gw_trace_entry *e = t->ring[(t->head + i) % t->max_entries];
		if (!strcmp(e->trace_id, trace_id))
			json_array_append_new(events, entry_json(e));
	}
	pthread_mutex_unlock(&t->lock);
	if (!json_array_size(events)) {
		json_decref(events);
		return NULL;
	}
	json_t *j = json_pack("{s:s, s:o}", "traceId", trace_id, "events", events);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	*oom = !text;
	return text;
}

char *gw_trace_by_user(struct gw_trace *t, const char *user, size_t limit)
{
	json_t *events = json_array();
	if (limit > GW_TRACE_USER_LIMIT_MAX)
		limit = GW_TRACE_USER_LIMIT_MAX;
	if (t->ring) {
		pthread_mutex_lock(&t->lock);
		for (size_t i = t->count; i-- > 0 && json_array_size(events) < limit;) {
			const struct gw_trace_entry *e = t->ring[(t->head + i) % t->max_entries];
			for (size_t u = 0; u < e->nusers; u++)
				if (!strcmp(e->users[u], user)) {
					json_array_append_new(events, entry_json(e));
					break;
				}
		}
		pthread_mutex_unlock(&t->lock);
	}
	json_t *j = json_pack("{s:s, s:I, s:o}", "user", user, "limit", (json_int_t)limit, "events", events);
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return text;
}
