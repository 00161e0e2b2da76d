/*
 * content_index.c - content/content.db, the record of what the sparse data
 * files hold: one row per item with the version tag (cTag, else eTag) and
 * size the bytes belong to, the ranges present, when the item was last
 * used, and for local changes the dirty flag, the local size and the
 * change count.  A dirty row is the staging area's memory across a crash:
 * it is never evicted.  Its own SQLite connection, used with cc->lock held.
 */
#define _GNU_SOURCE     /* asprintf */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "content_internal.h"
#include "log.h"

static const char schema_sql[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS content ("
	" id TEXT PRIMARY KEY, tag TEXT NOT NULL, size INTEGER NOT NULL,"
	" ranges TEXT NOT NULL, bytes INTEGER NOT NULL, used_at INTEGER NOT NULL,"
	" dirty INTEGER NOT NULL DEFAULT 0, local_size INTEGER,"
	" generation INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS content_used ON content(used_at);";

/* An index from before the write path lacks the local-change columns. */
static const char migrate_sql[] =
	"BEGIN IMMEDIATE;"
	"ALTER TABLE content ADD COLUMN dirty INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE content ADD COLUMN local_size INTEGER;"
	"ALTER TABLE content ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;"
	"COMMIT;";

static void log_once(struct content_cache *cc, const char *what)
{
	if (!cc->db_warned)
		log_warnx("cannot %s the content index '%s/content.db': %s", what, cc->dir,
			  sqlite3_errmsg(cc->db));
	cc->db_warned = 1;
}

static int has_local_columns(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int ok = sqlite3_prepare_v2(db, "SELECT dirty, local_size, generation FROM content", -1,
				    &st, NULL) == SQLITE_OK;

	sqlite3_finalize(st);
	return ok;
}

int content_index_open(struct content_cache *cc, char **err)
{
	sqlite3_stmt *st = NULL;
	char *path = NULL;
	int rc = -EIO;

	if (asprintf(&path, "%s/content.db", cc->dir) < 0)
		return -ENOMEM;
	if (sqlite3_open(path, &cc->db) != SQLITE_OK ||
	    sqlite3_busy_timeout(cc->db, 5000) != SQLITE_OK ||
	    sqlite3_exec(cc->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK)
		goto out_fail;
	if (!has_local_columns(cc->db) &&
	    sqlite3_exec(cc->db, migrate_sql, NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_exec(cc->db, "ROLLBACK", NULL, NULL, NULL);
		goto out_fail;
	}
	if (sqlite3_prepare_v2(cc->db, "SELECT coalesce(sum(bytes), 0) FROM content", -1, &st,
			       NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		goto out_fail;
	cc->total = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	free(path);
	return 0;

out_fail:
	if (asprintf(err, "cannot open the content index '%s': %s", path,
		     cc->db ? sqlite3_errmsg(cc->db) : "out of memory") < 0)
		*err = NULL;
	sqlite3_finalize(st);
	sqlite3_close(cc->db);
	cc->db = NULL;
	free(path);
	return rc;
}

void content_index_close(struct content_cache *cc)
{
	sqlite3_close(cc->db);
	cc->db = NULL;
}

/* A clean item's failures only cost a refetch later; a dirty one's are returned. */
int content_index_save(struct content_cache *cc, struct content_item *it, int durable)
{
	sqlite3_stmt *st = NULL;
	char *ranges = extent_set_format(&it->have);
	int rc = -EIO;

	if (!ranges)
		return -ENOMEM;
	/* WAL with synchronous=NORMAL may lose the last commits on power loss. */
	if (durable && sqlite3_exec(cc->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK)
		goto out_log;
	if (sqlite3_prepare_v2(cc->db, "INSERT OR REPLACE INTO content"
			       "(id, tag, size, ranges, bytes, used_at, dirty, local_size, generation)"
			       " VALUES (?,?,?,?,?,?,?,?,?)", -1, &st, NULL) != SQLITE_OK)
		goto out_log;
	sqlite3_bind_text(st, 1, it->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, it->tag, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, it->remote_size);
	sqlite3_bind_text(st, 4, ranges, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, extent_set_bytes(&it->have));
	sqlite3_bind_int64(st, 6, (sqlite3_int64)time(NULL));
	sqlite3_bind_int(st, 7, it->local);
	sqlite3_bind_int64(st, 8, it->size);
	sqlite3_bind_int64(st, 9, (sqlite3_int64)it->generation);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out_log;
	it->unsaved = 0;
	rc = 0;
	goto out_finalize;

out_log:
	log_once(cc, "update");
out_finalize:
	sqlite3_finalize(st);
	if (durable)
		sqlite3_exec(cc->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	free(ranges);
	return rc;
}

void content_index_delete(struct content_cache *cc, const char *id)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(cc->db, "DELETE FROM content WHERE id = ?", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			log_once(cc, "update");
	}
	sqlite3_finalize(st);
}

void content_row_release(struct content_row *row)
{
	free(row->tag);
	free(row->ranges);
	memset(row, 0, sizeof(*row));
}

int content_index_load(struct content_cache *cc, const char *id, struct content_row *row)
{
	sqlite3_stmt *st = NULL;
	int rc = -EIO, step;

	memset(row, 0, sizeof(*row));
	if (sqlite3_prepare_v2(cc->db, "SELECT tag, size, ranges, bytes, dirty,"
			       " coalesce(local_size, size), generation FROM content WHERE id = ?",
			       -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	step = sqlite3_step(st);
	if (step == SQLITE_DONE) {
		rc = -ENOENT;
		goto out;
	}
	if (step != SQLITE_ROW)
		goto out;
	row->tag = strdup((const char *)sqlite3_column_text(st, 0));
	row->size = sqlite3_column_int64(st, 1);
	row->ranges = strdup((const char *)sqlite3_column_text(st, 2));
	row->bytes = sqlite3_column_int64(st, 3);
	row->dirty = sqlite3_column_int(st, 4) != 0;
	row->local_size = sqlite3_column_int64(st, 5);
	row->generation = (uint64_t)sqlite3_column_int64(st, 6);
	if (!row->tag || !row->ranges) {
		content_row_release(row);
		rc = -ENOMEM;
		goto out;
	}
	rc = 0;
out:
	if (rc == -EIO)
		log_once(cc, "read");
	sqlite3_finalize(st);
	return rc;
}

int content_index_rename(struct content_cache *cc, const char *old_id, const char *new_id)
{
	sqlite3_stmt *st = NULL;
	int rc = -EIO;

	content_index_delete(cc, new_id);
	if (sqlite3_prepare_v2(cc->db, "UPDATE content SET id = ? WHERE id = ?", -1, &st, NULL) !=
	    SQLITE_OK)
		goto out_log;
	sqlite3_bind_text(st, 1, new_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, old_id, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out_log;
	rc = 0;
	goto out_finalize;
out_log:
	log_once(cc, "update");
out_finalize:
	sqlite3_finalize(st);
	return rc;
}

int content_index_mark_clean(struct content_cache *cc, const char *id, uint64_t generation,
			     const char *tag)
{
	sqlite3_stmt *st = NULL;
	int rc = -EIO;

	if (sqlite3_prepare_v2(cc->db, "UPDATE content SET dirty = 0, tag = ?,"
			       " size = coalesce(local_size, size) WHERE id = ? AND generation = ?",
			       -1, &st, NULL) != SQLITE_OK)
		goto out_log;
	sqlite3_bind_text(st, 1, tag, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)generation);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out_log;
	rc = sqlite3_changes(cc->db) > 0;
	goto out_finalize;
out_log:
	log_once(cc, "update");
out_finalize:
	sqlite3_finalize(st);
	return rc;
}

/* Dirty rows are local content not on the service yet: never evicted. */
void content_index_evict(struct content_cache *cc)
{
	int64_t max = cc->cfg->content_cache_max, low = max - max / 10, freed = 0;
	sqlite3_stmt *st = NULL;
	char **ids = NULL;
	size_t n = 0, cap = 0, i;

	if (cc->total <= max)
		return;
	/* Collect first, delete after: no writes while the SELECT is stepping. */
	if (sqlite3_prepare_v2(cc->db, "SELECT id, bytes FROM content WHERE bytes > 0"
			       " AND dirty = 0 ORDER BY used_at", -1, &st, NULL) != SQLITE_OK) {
		log_once(cc, "read");
		return;
	}
	while (cc->total - freed > low && sqlite3_step(st) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);

		if (content_item_find(cc, id))
			continue;
		if (n == cap) {
			char **more = realloc(ids, (cap ? cap * 2 : 16) * sizeof(*ids));

			if (!more)
				break;
			ids = more;
			cap = cap ? cap * 2 : 16;
		}
		ids[n] = strdup(id);
		if (!ids[n])
			break;
		n++;
		freed += sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);

	for (i = 0; i < n; i++) {
		content_drop_stored(cc, ids[i]);
		free(ids[i]);
	}
	free(ids);
}
