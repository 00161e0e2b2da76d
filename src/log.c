/*
 * log.c - the daemon's messages: stderr while attached, syslog once detached.
 *
 * Each message is formatted into a local buffer first and written with a
 * single fprintf()/syslog() under one mutex, so lines from the FUSE worker
 * threads never interleave.  The stderr format is fixed (tests read it):
 *     onedrivefs: <info>
 *     onedrivefs: warning: <message>
 *     onedrivefs: error: <message>
 *     onedrivefs: debug: <message>
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "log.h"

/* Longest message kept; longer ones are cut (and end in "..."). */
#define LOG_MSG_MAX 2048

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
/* All three are protected by log_lock. */
static char log_ident[64] = "onedrivefs";
static int log_debug_on;
static int log_syslog_on;

void log_init(const char *ident, int debug)
{
	pthread_mutex_lock(&log_lock);
	if (ident && *ident)
		snprintf(log_ident, sizeof(log_ident), "%s", ident);
	log_debug_on = debug ? 1 : 0;
	pthread_mutex_unlock(&log_lock);
}

void log_use_syslog(void)
{
	pthread_mutex_lock(&log_lock);
	if (!log_syslog_on) {
		/* openlog keeps the pointer: log_ident is static and never changes after this */
		openlog(log_ident, LOG_PID, LOG_DAEMON);
		log_syslog_on = 1;
	}
	pthread_mutex_unlock(&log_lock);
}

int log_debug_enabled(void)
{
	int on;

	pthread_mutex_lock(&log_lock);
	on = log_debug_on;
	pthread_mutex_unlock(&log_lock);
	return on;
}

const char *log_errstr(int err, char *buf, size_t size)
{
	if (!buf || size == 0)
		return "";
	if (err < 0)
		err = -err;
	/* XSI strerror_r (no _GNU_SOURCE here): returns 0 and fills buf */
	if (strerror_r(err, buf, size) != 0)
		snprintf(buf, size, "error %d", err);
	if (buf[0] && isupper((unsigned char)buf[0]) &&
	    !(buf[1] && isupper((unsigned char)buf[1])))
		buf[0] = (char)tolower((unsigned char)buf[0]);
	return buf;
}

/* Format, strip a trailing newline (libfuse adds one), then emit. */
static void log_emit(enum log_level level, const char *fmt, va_list ap, const char *suffix)
	__attribute__((format(printf, 2, 0)));
static void log_emit(enum log_level level, const char *fmt, va_list ap, const char *suffix)
{
	static const char *const prefix[] = {
		[LOG_LEVEL_ERROR] = "error: ",
		[LOG_LEVEL_WARN] = "warning: ",
		[LOG_LEVEL_INFO] = "",
		[LOG_LEVEL_DEBUG] = "debug: ",
	};
	static const int priority[] = {
		[LOG_LEVEL_ERROR] = LOG_ERR,
		[LOG_LEVEL_WARN] = LOG_WARNING,
		[LOG_LEVEL_INFO] = LOG_INFO,
		[LOG_LEVEL_DEBUG] = LOG_DEBUG,
	};
	char msg[LOG_MSG_MAX];
	int n;
	size_t len;

	if ((unsigned)level > LOG_LEVEL_DEBUG)
		level = LOG_LEVEL_ERROR;
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		snprintf(msg, sizeof(msg), "(unprintable message)");
	else if ((size_t)n >= sizeof(msg))
		memcpy(msg + sizeof(msg) - 4, "...", 4);
	len = strlen(msg);
	while (len > 0 && msg[len - 1] == '\n')
		msg[--len] = '\0';
	if (suffix && len < sizeof(msg) - 1)
		snprintf(msg + len, sizeof(msg) - len, "%s", suffix);

	pthread_mutex_lock(&log_lock);
	if (level == LOG_LEVEL_DEBUG && !log_debug_on) {
		pthread_mutex_unlock(&log_lock);
		return;
	}
	if (log_syslog_on)
		syslog(priority[level], "%s", msg);
	else
		fprintf(stderr, "%s: %s%s\n", log_ident, prefix[level], msg);
	pthread_mutex_unlock(&log_lock);
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	log_emit(level, fmt, ap, NULL);
}

void log_warn(const char *fmt, ...)
{
	int saved = errno;
	char err[128], suffix[160];
	va_list ap;

	snprintf(suffix, sizeof(suffix), ": %s", log_errstr(saved, err, sizeof(err)));
	va_start(ap, fmt);
	log_emit(LOG_LEVEL_WARN, fmt, ap, suffix);
	va_end(ap);
	errno = saved;
}

#define LOG_FN(name, level) \
void name(const char *fmt, ...) \
{ \
	int saved = errno; \
	va_list ap; \
	va_start(ap, fmt); \
	log_emit(level, fmt, ap, NULL); \
	va_end(ap); \
	errno = saved; \
}

LOG_FN(log_warnx, LOG_LEVEL_WARN)
LOG_FN(log_error, LOG_LEVEL_ERROR)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_debug, LOG_LEVEL_DEBUG)

void fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit(LOG_LEVEL_ERROR, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
