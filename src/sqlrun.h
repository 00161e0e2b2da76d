/*
 * sqlrun.h - run one SQL statement with bound values, in one call.
 *
 * For the small write statements of the journals (upload queue, offline
 * name changes): prepare, bind, step, finalize, and on failure one log line
 * naming what could not be updated.
 */
#ifndef ODFS_SQLRUN_H
#define ODFS_SQLRUN_H

#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>

/*
 * Run sql on db, binding one value per letter of types: 'i' an int64_t,
 * 't' a const char * (NULL binds SQL NULL).  The statement must not return
 * rows.  The caller serializes use of db (and holds that lock across the
 * call so *rowid is this statement's).  On success 0, and *rowid (when not
 * NULL) is the last inserted row id.  On failure logs "cannot update
 * <subject>: <sqlite message>" and returns -ENOSPC when the disk is full,
 * else -EIO.
 */
int sqlrun(sqlite3 *db, const char *subject, int64_t *rowid, const char *sql,
	   const char *types, ...);
/* The same with the values in ap. */
int sqlrun_v(sqlite3 *db, const char *subject, int64_t *rowid, const char *sql,
	     const char *types, va_list ap);

/*
 * sqlite3_busy_timeout(db, ms) with short waits.  The connections of one
 * process to meta.db take turns at the write lock, and a turn lasts about
 * one commit (a sync, well under a millisecond): SQLite's own handler
 * sleeps 1, 2, 5, 10... ms and so makes a FUSE reply wait many times
 * longer than the lock was held.  This one polls every 20 us at first,
 * then every 100 us, then every millisecond, and gives up (SQLITE_BUSY)
 * after about ms milliseconds in all.
 */
int sqlrun_busy_timeout(sqlite3 *db, int ms);

#endif
