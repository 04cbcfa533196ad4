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

static void emit_line(enum gw_log_level level, const char *prefix, const char *fmt, va_list ap)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], prefix);
	if (n < 0)
		return;
	size_t used = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	int m = vsnprintf(line + used, sizeof(line) - used, fmt, ap);
	if (m > 0)
		used += (size_t)m < sizeof(line) - used ? (size_t)m : sizeof(line) - used - 1;
	while (used > 0 && (line[used - 1] == '\n' || line[used - 1] == '\r'))
		used--;
	/* Keep one line per record even if a message carries newlines. */
	for (size_t i = 0; i < used; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	if (used >= sizeof(line) - 1)
		used = sizeof(line) - 2;
	line[used++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, used);
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
	enum gw_log_level level = lws_level & 1 ? GW_LOG_ERR
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
