/*
 * log.h - one place for every message the daemon prints.
 *
 * Before the mount is up (and with -f) messages go to stderr; once the
 * daemon has detached, log_use_syslog() switches them to syslog.  Messages
 * are lower case, no full stop, subject in single quotes:
 *     cannot read 'Documents/a.txt': connection refused
 * Never pass a token, refresh token or secret to these functions.
 * All functions are thread-safe.
 */
#ifndef ODFS_LOG_H
#define ODFS_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* ident is the program name; debug enables log_debug output. */
void log_init(const char *ident, int debug);
/* Send everything to syslog from now on (after daemonizing). */
void log_use_syslog(void);
int log_debug_enabled(void);

/* log_warn appends ": <strerror(errno)>"; the others print the text as is. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/*
 * Thread-safe strerror for messages: the text for err (positive or negative
 * errno) with a lower-case first letter ("connection refused"), written to
 * buf and returned.
 */
const char *log_errstr(int err, char *buf, size_t size);

/* Print and exit(1). */
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
