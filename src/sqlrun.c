/*
 * sqlrun.c - one SQL statement with bound values (see sqlrun.h), shared by
 * the upload journal and the journal of offline name changes.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <time.h>

#include "log.h"
#include "sqlrun.h"

int sqlrun_v(sqlite3 *db, const char *subject, int64_t *rowid, const char *sql,
	     const char *types, va_list ap)
{
	sqlite3_stmt *st;
	int rc, i;

	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto out_log;
	for (i = 0; types[i]; i++) {
		if (types[i] == 'i') {
			sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
		} else {
			const char *s = va_arg(ap, const char *);

			if (s)
				sqlite3_bind_text(st, i + 1, s, -1, SQLITE_TRANSIENT);
			else
				sqlite3_bind_null(st, i + 1);
		}
	}
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE) {
		if (rowid)
			*rowid = sqlite3_last_insert_rowid(db);
		return 0;
	}
out_log:
	log_error("cannot update %s: %s", subject, sqlite3_errmsg(db));
	return rc == SQLITE_FULL ? -ENOSPC : -EIO;
}

int sqlrun(sqlite3 *db, const char *subject, int64_t *rowid, const char *sql,
	   const char *types, ...)
{
	va_list ap;
	int rc;

	va_start(ap, types);
	rc = sqlrun_v(db, subject, rowid, sql, types, ap);
	va_end(ap);
	return rc;
}

/* Microseconds slept before the n-th wait: 20 us x 10, 100 us x 40, then 1 ms. */
static int64_t busy_slept_us(int n)
{
	if (n < 10)
		return 20 * (int64_t)n;
	if (n < 50)
		return 200 + 100 * (int64_t)(n - 10);
	return 4200 + 1000 * (int64_t)(n - 50);
}

static int busy_wait(void *arg, int n)
{
	int64_t limit_us = (int64_t)(intptr_t)arg * 1000;
	struct timespec ts;

	if (busy_slept_us(n) >= limit_us)
		return 0;
	ts.tv_sec = 0;
	ts.tv_nsec = (long)(busy_slept_us(n + 1) - busy_slept_us(n)) * 1000;
	nanosleep(&ts, NULL);
	return 1;
}

int sqlrun_busy_timeout(sqlite3 *db, int ms)
{
	return sqlite3_busy_handler(db, ms > 0 ? busy_wait : NULL, (void *)(intptr_t)ms);
}
