/*
 * cache_open.c - opening the metadata cache: the SQLite connection, the
 * schema (created, upgraded in place from version 1, or rebuilt when
 * unknown), the prepared statements, refolding names when names.c's case
 * tables changed, and a damaged file started afresh.  See cache.c.
 */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cache.h"
#include "cache_internal.h"
#include "sqlrun.h"
#include "log.h"
#include "names.h"

#define CACHE_SCHEMA_VERSION 2     /* 2: items.dirty */
#define CACHE_BUSY_TIMEOUT_MS 10000

static const char schema_sql[] =
	"CREATE TABLE items ("
	" ino INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, parent_ino INTEGER,"
	" name TEXT NOT NULL, name_fold TEXT NOT NULL,"
	" is_dir INTEGER NOT NULL DEFAULT 0, is_package INTEGER NOT NULL DEFAULT 0,"
	" size INTEGER NOT NULL DEFAULT 0,"
	" mtime_sec INTEGER NOT NULL DEFAULT 0, mtime_nsec INTEGER NOT NULL DEFAULT 0,"
	" ctime_sec INTEGER NOT NULL DEFAULT 0, ctime_nsec INTEGER NOT NULL DEFAULT 0,"
	" etag TEXT, ctag TEXT, qxhash TEXT, listed_at INTEGER NOT NULL DEFAULT 0,"
	" dirty INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX items_parent_fold ON items (parent_ino, name_fold);"
	"CREATE INDEX items_parent ON items (parent_ino);"
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
	/* Inode 1 is the root's alone: automatic row ids start at 2. */
	"INSERT INTO sqlite_sequence (name, seq) VALUES ('items', 1);";

static void set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_err(char **err, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	*err = strdup(buf);
}

/* SQL function odfs_fold(name), so one UPDATE can refold every row. */
static void sql_fold(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const unsigned char *name = sqlite3_value_text(argv[0]);
	char *fold;

	if (!name) {
		sqlite3_result_null(ctx);
		return;
	}
	fold = names_fold((const char *)name);
	if (!fold) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	sqlite3_result_text(ctx, fold, -1, free);
}

static int exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static int query_int(sqlite3 *db, const char *sql, sqlite3_int64 *value)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*value = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

/*
 * Create or check the schema.  Version 1 (before the write path) gains the
 * dirty column in place.  A schema we do not know (a newer onedrivefs) is
 * dropped and rebuilt: local changes it held are still in the upload
 * journal and the content index, but their metadata is lost.
 */
static int setup_schema(sqlite3 *db, const char *path)
{
	sqlite3_int64 version = 0;
	char sql[128];
	int rc = query_int(db, "PRAGMA user_version", &version);

	if (rc != SQLITE_OK || version == CACHE_SCHEMA_VERSION)
		return rc;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d;", CACHE_SCHEMA_VERSION);
	if (version == 1) {
		/* The read-only layout: add what the write path needs, keeping the inodes. */
		rc = exec(db, "BEGIN IMMEDIATE;"
			  "ALTER TABLE items ADD COLUMN dirty INTEGER NOT NULL DEFAULT 0;");
		if (rc == SQLITE_OK)
			rc = exec(db, sql);
		if (rc == SQLITE_OK)
			rc = exec(db, "COMMIT");
		if (rc != SQLITE_OK)
			exec(db, "ROLLBACK");
		return rc;
	}
	if (version != 0)
		log_warnx("metadata cache '%s' has an unknown layout (%lld); rebuilding it",
			  path, (long long)version);
	rc = exec(db, "BEGIN IMMEDIATE;"
		  "DROP TABLE IF EXISTS items; DROP TABLE IF EXISTS meta;");
	if (rc == SQLITE_OK)
		rc = exec(db, schema_sql);
	if (rc == SQLITE_OK)
		rc = exec(db, sql);
	if (rc == SQLITE_OK)
		rc = exec(db, "COMMIT");
	if (rc != SQLITE_OK)
		exec(db, "ROLLBACK");
	return rc;
}

/* Recompute name_fold when names.c's case tables differ from the stored ones. */
static int check_fold_version(struct cache *c)
{
	const char *now = names_fold_version();
	char *stored = NULL;
	int ret = cache_meta_get_locked(c, META_FOLD_VERSION, &stored);

	if (ret == 0 && strcmp(stored, now) == 0)
		goto out_free_stored;
	if (ret < 0 && ret != -ENOENT)
		goto out_free_stored;
	ret = cache_begin(c);
	if (ret < 0)
		goto out_free_stored;
	if (exec(c->db, "UPDATE items SET name_fold = odfs_fold(name)") != SQLITE_OK)
		ret = cache_db_fail(c, sqlite3_errcode(c->db), "refold names");
	if (ret == 0)
		ret = cache_meta_set_locked(c, META_FOLD_VERSION, now);
	ret = cache_finish(c, ret);
out_free_stored:
	free(stored);
	return ret;
}

static int open_db(struct cache *c, char **err)
{
	int rc = sqlite3_open_v2(c->path, &c->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);

	if (rc != SQLITE_OK)
		goto out_fail;
	sqlite3_extended_result_codes(c->db, 1);
	sqlrun_busy_timeout(c->db, CACHE_BUSY_TIMEOUT_MS);
	/* cache_size in KiB (negative): the daemon's memory stays small. */
	rc = exec(c->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
		  "PRAGMA cache_size = -2000; PRAGMA temp_store = MEMORY;"
		  "PRAGMA journal_size_limit = 4194304;");
	if (rc == SQLITE_OK)
		rc = setup_schema(c->db, c->path);
	if (rc == SQLITE_OK)
		rc = sqlite3_create_function(c->db, "odfs_fold", 1,
					     SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_fold,
					     NULL, NULL);
	for (int i = 0; rc == SQLITE_OK && i < ST_NUM; i++)
		rc = sqlite3_prepare_v3(c->db, cache_stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					&c->stmt[i], NULL);
	if (rc != SQLITE_OK)
		goto out_fail;
	return SQLITE_OK;
out_fail:
	set_err(err, "cannot open metadata cache '%s': %s", c->path,
		c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
	return rc;
}

static void close_db(struct cache *c)
{
	for (int i = 0; i < ST_NUM; i++) {
		sqlite3_finalize(c->stmt[i]);
		c->stmt[i] = NULL;
	}
	sqlite3_close(c->db);
	c->db = NULL;
}

/* A damaged file is deleted and started afresh, once. */
static void remove_db_files(const char *path)
{
	static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
	char name[4096];

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if ((size_t)snprintf(name, sizeof(name), "%s%s", path, suffixes[i]) < sizeof(name))
			unlink(name);
	}
}

int cache_open(const char *path, struct cache **out, char **err)
{
	struct cache *c;
	int rc, ret;

	*out = NULL;
	if (err)
		*err = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->path = strdup(path);
	if (!c->path) {
		ret = -ENOMEM;
		goto out_free_cache;
	}
	pthread_mutex_init(&c->lock, NULL);
	rc = open_db(c, err);
	if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB) {
		log_warnx("metadata cache '%s' is damaged; starting afresh", path);
		close_db(c);
		if (err) {
			free(*err);
			*err = NULL;
		}
		remove_db_files(path);
		rc = open_db(c, err);
	}
	if (rc != SQLITE_OK) {
		ret = (rc & 0xff) == SQLITE_NOMEM ? -ENOMEM : -EIO;
		goto out_close_db;
	}
	ret = check_fold_version(c);
	if (ret < 0) {
		set_err(err, "cannot open metadata cache '%s': cannot update folded names", path);
		goto out_close_db;
	}
	*out = c;
	return 0;

out_close_db:
	close_db(c);
	pthread_mutex_destroy(&c->lock);
	free(c->path);
out_free_cache:
	free(c);
	return ret;
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	exec(c->db, "PRAGMA optimize");
	close_db(c);
	cache_deleted_free(c);
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_destroy(&c->lock);
	free(c->path);
	free(c);
}
