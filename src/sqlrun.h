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

#endif
