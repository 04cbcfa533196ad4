/* log.c - see log.h. Thread-safe by construction: no shared buffers. */
#include "log.h"
#include "stats.h"
#include <pthread.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int gw_log_max_level = GW_LOG_NOTICE;

static const char *const level_names[] = {"error", "warn", "notice", "info", "debug"};

void gw_log_set_level(enum gw_log_level level)
{
	gw_log_max_level = (int)level;
}

int gw_log_level_parse(const char *name)
{
	for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++)
		if (!strcmp(name, level_names[i]))
			return i;
	if (!strcmp(name, "warning"))
		return GW_LOG_WARN;
	return -1;
}

static const char hexdig[] = "0123456789abcdef";

size_t gw_log_escape_controls(const char *line, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	if (!cap)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c >= 0x20 && c != 0x7f) {
			if (o + 1 >= cap)
				break;
			out[o++] = (char)c;
			continue;
		}
		if (o + 4 >= cap)
			break;
		out[o++] = '\\';
		out[o++] = 'x';
		out[o++] = hexdig[c >> 4];
		out[o++] = hexdig[c & 15];
	}
	out[o] = '\0';
	return o;
}

/* Length of the valid UTF-8 sequence at s (n bytes left) that is not a C1
 * control (U+0080-U+009F), or 0. */
static size_t utf8_ok(const unsigned char *s, size_t n)
{
	size_t need;
	unsigned cp;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		need = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		need = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((need == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (need == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0; /* overlong or surrogate */
	if (cp >= 0x80 && cp <= 0x9f)
		return 0;
	return need;
}

const char *gw_log_quote(struct gw_log_quoted *q, const char *value, size_t len)
{
	const size_t cap = GW_LOG_QUOTED_MAX; /* for the quoted text; "..." fits after it */
	size_t o = 0;
	if (!value) {
		memcpy(q->s, "-", 2);
		return q->s;
	}
	if (len == (size_t)-1)
		len = strlen(value);
	const unsigned char *v = (const unsigned char *)value;
	q->s[o++] = '"';
	size_t i = 0;
	while (i < len) {
		unsigned char c = v[i];
		char esc[4];
		size_t n = 0;
		const char *src = (const char *)v + i;
		size_t adv = 1;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			src = esc;
			n = 2;
		} else if (c >= 0x20 && c < 0x7f) {
			n = 1;
		} else if (c >= 0x80 && (adv = utf8_ok(v + i, len - i)) > 0) {
			n = adv;
		} else {
			adv = 1;
			esc[0] = '\\';
			esc[1] = 'x';
			esc[2] = hexdig[c >> 4];
			esc[3] = hexdig[c & 15];
			src = esc;
			n = 4;
		}
		if (o + n + 1 > cap - 1)
			break; /* keep room for the closing quote */
		memcpy(q->s + o, src, n);
		o += n;
		i += adv;
	}
	q->s[o++] = '"';
	if (i < len) {
		memcpy(q->s + o, "...", 3);
		o += 3;
	}
	q->s[o] = '\0';
	return q->s;
}

/* ---- log.format: json ------------------------------------------------------
 *
 * One JSON object a line: {"ts", "level", "msg", ...fields}. The fields are
 * the message's own key=value pairs (trace=..., type="...", status=503):
 * every call site already writes them that way, so no call site changes and
 * the text and JSON forms carry the same facts. A quoted value (GW_Q) is
 * unquoted ("\"" and "\\" undone; \xNN escapes stay as text). Keys that
 * would shadow ts, level, msg or component are left in msg only. */

static int log_json;

void gw_log_set_json(int on)
{
	log_json = on;
}

struct jbuf {
	char *p;
	size_t n, cap;
};

static void jraw(struct jbuf *b, const char *s, size_t n)
{
	if (b->n + n >= b->cap)
		n = b->n + 1 < b->cap ? b->cap - b->n - 1 : 0;
	memcpy(b->p + b->n, s, n);
	b->n += n;
}

/* A JSON string: control bytes as \u00XX, invalid UTF-8 as U+FFFD. */
static void jstr(struct jbuf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	jraw(b, "\"", 1);
	for (size_t i = 0; i < n;) {
		unsigned char c = u[i];
		size_t adv;
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			jraw(b, e, 2);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			char e[6] = {'\\', 'u', '0', '0', hexdig[c >> 4], hexdig[c & 15]};
			jraw(b, e, 6);
			i++;
		} else if (c < 0x80) {
			jraw(b, s + i, 1);
			i++;
		} else if ((adv = utf8_ok(u + i, n - i)) > 0) {
			jraw(b, s + i, adv);
			i += adv;
		} else {
			jraw(b, "\\ufffd", 6);
			i++;
		}
	}
	jraw(b, "\"", 1);
}

static int reserved_key(const char *k, size_t n)
{
	static const char *const names[] = {"ts", "level", "msg", "component"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == n && !memcmp(names[i], k, n))
			return 1;
	return 0;
}

/* Appends ,"key":"value" for each key=value in msg; at most 16 fields. */
static void jfields(struct jbuf *b, const char *msg, size_t len)
{
	char seen[16][32];
	int nseen = 0;
	for (size_t i = 0; i < len && nseen < 16; i++) {
		if (i > 0 && msg[i - 1] != ' ')
			continue;
		size_t k = i;
		while (k < len && ((msg[k] >= 'a' && msg[k] <= 'z') || (msg[k] >= 'A' && msg[k] <= 'Z') ||
				   (msg[k] >= '0' && msg[k] <= '9') || msg[k] == '_'))
			k++;
		if (k == i || k >= len || msg[k] != '=' || k - i >= 32 || reserved_key(msg + i, k - i))
			continue;
		int dup = 0;
		for (int s = 0; s < nseen; s++)
			dup |= strlen(seen[s]) == k - i && !memcmp(seen[s], msg + i, k - i);
		if (dup)
			continue;
		memcpy(seen[nseen], msg + i, k - i);
		seen[nseen++][k - i] = '\0';
		char val[GW_LOG_QUOTED_MAX + 8];
		size_t vn = 0, v = k + 1;
		if (v < len && msg[v] == '"') {
			for (v++; v < len && msg[v] != '"' && vn < sizeof(val); v++) {
				if (msg[v] == '\\' && v + 1 < len &&
				    (msg[v + 1] == '"' || msg[v + 1] == '\\'))
					v++;
				val[vn++] = msg[v];
			}
		} else {
			for (; v < len && msg[v] != ' ' && vn < sizeof(val); v++)
				val[vn++] = msg[v];
			while (vn && (val[vn - 1] == ':' || val[vn - 1] == ',' || val[vn - 1] == ';'))
				vn--;
		}
		jraw(b, ",", 1);
		jstr(b, msg + i, k - i);
		jraw(b, ":", 1);
		jstr(b, val, vn);
		i = v > i ? v - 1 : i;
	}
}

static void json_head(struct jbuf *b, enum gw_log_level level, const char *prefix, const char *t)
{
	jraw(b, "{\"ts\":", 6);
	jstr(b, t, strlen(t));
	jraw(b, ",\"level\":", 9);
	jstr(b, level_names[level], strlen(level_names[level]));
	if (*prefix)
		jraw(b, ",\"component\":\"lws\"", 18);
	jraw(b, ",\"msg\":", 7);
}

/* Bytes of a message that always fit the line as JSON with its head: each
 * byte escapes to at most 6 ("\u00XX", "\ufffd"). */
#define JSON_SAFE_MSG 600

static void emit_json(enum gw_log_level level, const char *prefix, const char *msg, size_t len, int cut,
		      const struct timespec *ts, const struct tm *tm)
{
	char out[4096], t[96];
	struct jbuf b = {out, 0, sizeof(out) - 2};
	snprintf(t, sizeof(t), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm->tm_year + 1900, tm->tm_mon + 1,
		 tm->tm_mday, tm->tm_hour, tm->tm_min, tm->tm_sec, ts->tv_nsec / 1000000);
	json_head(&b, level, prefix, t);
	jstr(&b, msg, len);
	jfields(&b, msg, len);
	if (cut || b.n >= sizeof(out) - 3) {
		/* Too long for one line (or cut by the formatter): the head and
		 * the start of the message only, still one valid object. */
		if (b.n >= sizeof(out) - 3) {
			b.n = 0;
			json_head(&b, level, prefix, t);
			while (len > JSON_SAFE_MSG)
				len = JSON_SAFE_MSG;
			while (len > 0 && ((unsigned char)msg[len] & 0xc0) == 0x80)
				len--; /* not inside a UTF-8 sequence */
			jstr(&b, msg, len);
		}
		jraw(&b, ",\"truncated\":true", 17);
	}
	out[b.n++] = '}';
	out[b.n++] = '\n';
	ssize_t w = write(STDERR_FILENO, out, b.n);
	(void)w;
}

static void emit_line(enum gw_log_level level, const char *prefix, const char *fmt, va_list ap)
{
	char line[2048], out[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (log_json) {
		int m = vsnprintf(line, sizeof(line), fmt, ap);
		size_t len = m < 0 ? 0 : (size_t)m < sizeof(line) ? (size_t)m : sizeof(line) - 1;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			len--;
		emit_json(level, prefix, line, len, m >= (int)sizeof(line), &ts, &tm);
		return;
	}
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
			 level_names[level], prefix);
	if (n < 0)
		return;
	size_t used = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	int m = vsnprintf(line + used, sizeof(line) - used, fmt, ap);
	if (m > 0)
		used += (size_t)m < sizeof(line) - used ? (size_t)m : sizeof(line) - used - 1;
	while (used > 0 && (line[used - 1] == '\n' || line[used - 1] == '\r'))
		used--;
	/* One line per record: every control byte left is escaped. */
	used = gw_log_escape_controls(line, used, out, sizeof(out) - 1);
	out[used++] = '\n';
	ssize_t w = write(STDERR_FILENO, out, used);
	(void)w;
}

void gw_log_emit(enum gw_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit_line(level, "", fmt, ap);
	va_end(ap);
}

static void emit_plain(enum gw_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit_line(level, "lws: ", fmt, ap);
	va_end(ap);
}

static struct {
	pthread_mutex_t lock;
	time_t second;
	int used;
	unsigned long suppressed;
} lws_budget = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0};

void gw_log_lws_emit(int lws_level, const char *line)
{
	/* LLL_ERR=1, LLL_WARN=2, LLL_NOTICE=4, LLL_INFO=8, LLL_DEBUG=16 */
	enum gw_log_level level = lws_level & 1	  ? GW_LOG_ERR
				  : lws_level & 2 ? GW_LOG_WARN
				  : lws_level & 4 ? GW_LOG_NOTICE
				  : lws_level & 8 ? GW_LOG_INFO
						  : GW_LOG_DEBUG;
	if ((int)level > gw_log_max_level)
		return;
	pthread_mutex_lock(&lws_budget.lock);
	time_t now = time(NULL);
	if (now != lws_budget.second) {
		lws_budget.second = now;
		lws_budget.used = 0;
	}
	int pass = lws_budget.used < GW_LOG_LWS_PER_SECOND;
	if (pass)
		lws_budget.used++;
	else
		lws_budget.suppressed++;
	pthread_mutex_unlock(&lws_budget.lock);
	if (pass)
		emit_plain(level, "%s", line);
	else
		gw_stat_inc(GW_STAT_lws_log_suppressed);
}

void gw_log_lws_flush(void)
{
	pthread_mutex_lock(&lws_budget.lock);
	unsigned long n = lws_budget.suppressed;
	lws_budget.suppressed = 0;
	pthread_mutex_unlock(&lws_budget.lock);
	if (n)
		gw_log_emit(GW_LOG_WARN, "lws: %lu more lines suppressed (over %d a second)", n,
			    GW_LOG_LWS_PER_SECOND);
}
