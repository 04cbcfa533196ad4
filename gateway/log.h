/* log.h - the gateway's logger: one line per call, safe from any thread.
 *
 * lwsl_* in Debian's libwebsockets 4.1.6 formats into a static buffer and is
 * not thread-safe, so workers log only through gw_log. Each line is formatted
 * into a stack buffer and written with one write(2) to stderr, so lines from
 * different threads never interleave. lws's own output is bridged in with
 * gw_log_lws_emit (service thread).
 *
 * Format: "2026-11-22T04:37:53.123Z level component: message". Callers never
 * pass secrets (tokens, keys) to gw_log.
 *
 * Injection: a log line is one record whatever the message holds. Every
 * control byte (0x00-0x1f, 0x7f) left in a formatted line is written as \xNN,
 * so a value cannot start a new line, rewrite the terminal or fake a record.
 * Values a client chose (event types, installation and account ids, retry
 * reasons, content types, token error details, rule log messages, ...) are
 * passed through GW_Q(), which quotes them ("..."), escapes `"` and `\`
 * (so a quoted value cannot end early or fake an escape), control bytes, C1
 * controls and invalid UTF-8 as \xNN, and cuts them at GW_LOG_QUOTED_MAX
 * bytes with "..." after the closing quote.
 */
#ifndef GW_LOG_H
#define GW_LOG_H

#include <stddef.h>

enum gw_log_level { GW_LOG_ERR, GW_LOG_WARN, GW_LOG_NOTICE, GW_LOG_INFO, GW_LOG_DEBUG };

extern int gw_log_max_level;

void gw_log_set_level(enum gw_log_level level);
/* log.format: json (1) writes each record as one JSON object a line (log.c). */
void gw_log_set_json(int on);
/* Parses "error|warn|notice|info|debug"; returns -1 if unknown. */
int gw_log_level_parse(const char *name);

void gw_log_emit(enum gw_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The level is checked before the arguments are evaluated. */
#define gw_log(level, ...)                                                                                   \
	do {                                                                                                 \
		if ((int)(level) <= gw_log_max_level)                                                        \
			gw_log_emit((level), __VA_ARGS__);                                                   \
	} while (0)

/* Quoting of client-chosen values (see the top of this file). */
#define GW_LOG_QUOTED_MAX 200
struct gw_log_quoted {
	char s[GW_LOG_QUOTED_MAX + 8];
};
/* Writes value (len bytes; (size_t)-1: up to its NUL) quoted into q and
 * returns q->s. NULL: the unquoted text "-". */
const char *gw_log_quote(struct gw_log_quoted *q, const char *value, size_t len);
/* The quoted form of a NUL-terminated value, in a temporary that lives until
 * the end of the enclosing block (the gw_log call). */
#define GW_Q(value) gw_log_quote(&(struct gw_log_quoted){{0}}, (value), (size_t)-1)

/* Escapes every control byte of line[0..len) as \xNN into out (cap bytes,
 * NUL-terminated, cut if needed). Returns the bytes written. Exposed for the
 * unit test; emit uses it on every line. */
size_t gw_log_escape_controls(const char *line, size_t len, char *out, size_t cap);

/* For lws_set_log_level(): strips the newline lws appends. At most
 * GW_LOG_LWS_PER_SECOND lines a second get through: some lws errors repeat
 * once per refused connection, and a flood of connections must not become
 * a flood of log lines. The rest are counted (stats: lws_log_suppressed) and
 * summed up in one line by gw_log_lws_flush (the 1 s sweep). */
#define GW_LOG_LWS_PER_SECOND 20
void gw_log_lws_emit(int lws_level, const char *line);
void gw_log_lws_flush(void);

#endif
