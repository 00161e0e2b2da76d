/*
 * cache.c - the metadata cache: driveItems in SQLite, inode numbers = row ids.
 *
 * DESIGN
 * One table of items keyed by Graph id, whose INTEGER PRIMARY KEY is the
 * inode number.  AUTOINCREMENT keeps a high-water mark in sqlite_sequence,
 * so a removed item's inode is never handed to another id (the kernel may
 * still hold the old number), and the numbers survive remounts.  Row 1 is
 * the drive root; the sequence starts at 1 so no other item can take it.
 * Children are found through (parent_ino) and (parent_ino, name_fold);
 * name_fold is names_fold(name), recomputed on open whenever the folding
 * tables changed (names_fold_version()).
 *
 * One connection, opened NOMUTEX, behind one mutex: every statement is
 * prepared once and used only with the mutex held.  Writes that touch more
 * than one row run in one IMMEDIATE transaction.  WAL with
 * synchronous=NORMAL: a crash may lose the last commits, never consistency,
 * and it is only a cache.
 *
 * Local changes (cache_local.c): items.dirty marks news the service lacks,
 * an id starting with CACHE_LOCAL_PREFIX an item it has never seen.  The
 * upsert statement's WHERE leaves those rows alone, listings skip a remote
 * item whose name one of them holds, and stale-child removal spares them
 * and the folders above them.  Opening and the schema: cache_open.c.
 */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cache.h"
#include "cache_internal.h"
#include "log.h"
#include "names.h"


#define ENTRY_COLUMNS \
	"SELECT i.ino, i.parent_ino, i.listed_at, i.id, p.id, i.name, i.is_dir, i.is_package," \
	" i.size, i.mtime_sec, i.mtime_nsec, i.ctime_sec, i.ctime_nsec, i.etag, i.ctag, i.qxhash," \
	" i.dirty"
#define ENTRY_JOIN " LEFT JOIN items p ON p.ino = i.parent_ino "
#define ENTRY_SELECT ENTRY_COLUMNS " FROM items i" ENTRY_JOIN

/* Local ids never come from the service; dirty items have news it lacks. */
#define LOCAL_GLOB CACHE_LOCAL_PREFIX "*"
#define PROTECTED "(dirty <> 0 OR id GLOB '" LOCAL_GLOB "')"

/* Both statements delete a subtree; UNION (not UNION ALL) stops on a cycle. */
#define SUBTREE_DELETE \
	" UNION SELECT i.ino FROM items i JOIN sub ON i.parent_ino = sub.ino)" \
	" DELETE FROM items WHERE ino IN sub AND ino <> 1"

const char *const cache_stmt_sql[ST_NUM] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_GET_BY_INO] = ENTRY_SELECT "WHERE i.ino = ?1",
	[ST_GET_BY_ID] = ENTRY_SELECT "WHERE i.id = ?1",
	[ST_LOOKUP] = ENTRY_SELECT "WHERE i.parent_ino = ?1 AND i.name_fold = ?2 ORDER BY i.ino LIMIT 1",
	/* (parent_ino, rowid) order: the range on ino and the ORDER BY need no sort */
	[ST_LIST] = ENTRY_COLUMNS " FROM items i INDEXED BY items_parent" ENTRY_JOIN
		"WHERE i.parent_ino = ?1 AND i.ino > ?2 ORDER BY i.ino LIMIT ?3",
	[ST_INO_OF_ID] = "SELECT ino FROM items WHERE id = ?1",
	[ST_KIND] = "SELECT is_dir, id FROM items WHERE ino = ?1",
	[ST_UPSERT] =
		"INSERT INTO items (id, parent_ino, name, name_fold, is_dir, is_package, size,"
		" mtime_sec, mtime_nsec, ctime_sec, ctime_nsec, etag, ctag, qxhash)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
		" ON CONFLICT (id) DO UPDATE SET parent_ino = excluded.parent_ino,"
		" name = excluded.name, name_fold = excluded.name_fold, is_dir = excluded.is_dir,"
		" is_package = excluded.is_package, size = excluded.size,"
		" mtime_sec = excluded.mtime_sec, mtime_nsec = excluded.mtime_nsec,"
		" ctime_sec = excluded.ctime_sec, ctime_nsec = excluded.ctime_nsec,"
		" etag = excluded.etag, ctag = excluded.ctag, qxhash = excluded.qxhash"
		/* the root never moves, local changes are not overwritten: no row comes back */
		" WHERE items.ino <> 1 AND items.dirty = 0 AND items.id NOT GLOB '" LOCAL_GLOB "'"
		" RETURNING ino",
	[ST_SET_ROOT] =
		"INSERT INTO items (ino, id, parent_ino, name, name_fold, is_dir, is_package, size,"
		" mtime_sec, mtime_nsec, ctime_sec, ctime_nsec, etag, ctag, qxhash)"
		" VALUES (1, ?1, NULL, ?3, ?4, 1, 0, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
		" ON CONFLICT (ino) DO UPDATE SET id = excluded.id, name = excluded.name,"
		" name_fold = excluded.name_fold, size = excluded.size,"
		" mtime_sec = excluded.mtime_sec, mtime_nsec = excluded.mtime_nsec,"
		" ctime_sec = excluded.ctime_sec, ctime_nsec = excluded.ctime_nsec,"
		" etag = excluded.etag, ctag = excluded.ctag, qxhash = excluded.qxhash",
	[ST_NAME_HOLDER] = "SELECT ino FROM items WHERE parent_ino = ?1 AND name_fold = ?2"
		" AND id <> ?3 LIMIT 1",
	[ST_HAS_CHILD] = "SELECT 1 FROM items WHERE parent_ino = ?1 LIMIT 1",
	[ST_CHILDREN] = "SELECT ino, id FROM items WHERE parent_ino = ?1",
	[ST_REMOVE_TREE] = "WITH RECURSIVE sub(ino) AS (SELECT ?1" SUBTREE_DELETE,
	[ST_REMOVE_CHILDREN] = "WITH RECURSIVE sub(ino) AS"
		" (SELECT ino FROM items WHERE parent_ino = ?1" SUBTREE_DELETE,
	[ST_SET_LISTED] = "UPDATE items SET listed_at = ?2 WHERE ino = ?1",
	[ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
	[ST_META_SET] = "INSERT INTO meta (key, value) VALUES (?1, ?2)"
		" ON CONFLICT (key) DO UPDATE SET value = excluded.value",
	[ST_WIPE_ITEMS] = "DELETE FROM items",
	[ST_WIPE_META] = "DELETE FROM meta WHERE key <> '" META_FOLD_VERSION "'",
	[ST_COUNT] = "SELECT count(*) FROM items",
	[ST_PROTECTED_HOLDER] = "SELECT 1 FROM items WHERE parent_ino = ?1 AND name_fold = ?2"
		" AND id <> ?3 AND " PROTECTED " LIMIT 1",
	[ST_TREE_PROTECTED] = "WITH RECURSIVE sub(ino) AS (SELECT ?1"
		" UNION SELECT i.ino FROM items i JOIN sub ON i.parent_ino = sub.ino)"
		" SELECT 1 FROM items WHERE ino IN sub AND " PROTECTED " LIMIT 1",
	[ST_INSERT_LOCAL] =
		"INSERT INTO items (id, parent_ino, name, name_fold, is_dir, size, mtime_sec,"
		" mtime_nsec, ctime_sec, ctime_nsec, dirty, listed_at)"
		" VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?6, ?7, 1, ?8) RETURNING ino",
	[ST_SET_ID] = "UPDATE items SET id = ?2 WHERE ino = ?1",
	[ST_MOVE] = "UPDATE items SET parent_ino = ?2, name = ?3, name_fold = ?4 WHERE ino = ?1",
	[ST_IS_ANCESTOR] = "WITH RECURSIVE up(ino) AS (SELECT ?1 UNION SELECT i.parent_ino"
		" FROM items i JOIN up ON i.ino = up.ino WHERE i.parent_ino IS NOT NULL)"
		" SELECT 1 FROM up WHERE ino = ?2",
	[ST_SET_SIZE] = "UPDATE items SET size = ?2 WHERE ino = ?1",
	[ST_SET_MTIME] = "UPDATE items SET mtime_sec = ?2, mtime_nsec = ?3 WHERE ino = ?1",
	[ST_SET_DIRTY] = "UPDATE items SET dirty = ?2 WHERE ino = ?1",
	/* ?8: the upload took everything local: size and times come from the service too */
	[ST_UPDATE_REMOTE] = "UPDATE items SET etag = ?2, ctag = ?3, qxhash = ?4,"
		" size = CASE WHEN ?8 OR dirty = 0 THEN ?5 ELSE size END,"
		" mtime_sec = CASE WHEN ?8 OR dirty = 0 THEN ?6 ELSE mtime_sec END,"
		" mtime_nsec = CASE WHEN ?8 OR dirty = 0 THEN ?7 ELSE mtime_nsec END,"
		" dirty = CASE WHEN ?8 THEN 0 ELSE dirty END WHERE ino = ?1",
	[ST_LIST_DIRTY] = ENTRY_SELECT "WHERE (i.dirty <> 0 OR i.id GLOB '" LOCAL_GLOB "')"
		" AND i.ino > ?1 ORDER BY i.ino LIMIT ?2",
};

/* Log a failed SQLite call with SQLite's own words and turn it into an errno. */
int cache_db_fail(struct cache *c, int rc, const char *what)
{
	log_error("cannot %s in metadata cache '%s': %s", what, c->path, sqlite3_errmsg(c->db));
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	default:
		return -EIO;
	}
}

/* Step a statement that returns no rows we need, then reset it. */
int cache_run(struct cache *c, enum stmt_id id, const char *what)
{
	sqlite3_stmt *st = c->stmt[id];
	int rc = sqlite3_step(st), ret = 0;

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		ret = cache_db_fail(c, rc, what);
	sqlite3_reset(st);
	return ret;
}

void cache_bind_text(sqlite3_stmt *st, int col, const char *s)
{
	sqlite3_bind_text(st, col, s, -1, SQLITE_STATIC);
}

int cache_begin(struct cache *c)
{
	return cache_run(c, ST_BEGIN, "start a transaction");
}

/* Commit, or roll back when ret (the work's result) or the commit failed. */
int cache_finish(struct cache *c, int ret)
{
	if (ret == 0)
		ret = cache_run(c, ST_COMMIT, "commit");
	if (ret < 0 && !sqlite3_get_autocommit(c->db)) {
		sqlite3_step(c->stmt[ST_ROLLBACK]);
		sqlite3_reset(c->stmt[ST_ROLLBACK]);
	}
	return ret;
}

static int dup_column(sqlite3_stmt *st, int col, char **out)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	*out = NULL;
	if (!s)
		return 0;
	*out = strdup((const char *)s);
	return *out ? 0 : -ENOMEM;
}

void cache_entry_release(struct cache_entry *e)
{
	drive_item_release(&e->item);
	memset(e, 0, sizeof(*e));
}

/* Copy the current ENTRY_SELECT row into e (which the caller then owns). */
int cache_entry_from_row(sqlite3_stmt *st, struct cache_entry *e)
{
	struct drive_item *it = &e->item;
	int ret = 0;

	memset(e, 0, sizeof(*e));
	e->ino = (uint64_t)sqlite3_column_int64(st, 0);
	e->parent_ino = (uint64_t)sqlite3_column_int64(st, 1);  /* NULL reads as 0 */
	e->listed_at = sqlite3_column_int64(st, 2);
	ret |= dup_column(st, 3, &it->id);
	ret |= dup_column(st, 4, &it->parent_id);
	ret |= dup_column(st, 5, &it->name);
	it->is_dir = sqlite3_column_int(st, 6);
	it->is_package = sqlite3_column_int(st, 7);
	it->is_root = e->ino == CACHE_ROOT_INO;
	it->size = sqlite3_column_int64(st, 8);
	it->mtime.tv_sec = (time_t)sqlite3_column_int64(st, 9);
	it->mtime.tv_nsec = (long)sqlite3_column_int64(st, 10);
	it->ctime_created.tv_sec = (time_t)sqlite3_column_int64(st, 11);
	it->ctime_created.tv_nsec = (long)sqlite3_column_int64(st, 12);
	ret |= dup_column(st, 13, &it->etag);
	ret |= dup_column(st, 14, &it->ctag);
	ret |= dup_column(st, 15, &it->qxhash);
	e->dirty = sqlite3_column_int(st, 16) != 0;
	e->is_local = cache_id_is_local(it->id);
	if (ret) {
		cache_entry_release(e);
		return -ENOMEM;
	}
	return 0;
}

/* Run a prepared ENTRY_SELECT (parameters bound) for at most one row. */
int cache_fetch_entry(struct cache *c, enum stmt_id id, struct cache_entry *out)
{
	sqlite3_stmt *st = c->stmt[id];
	int rc = sqlite3_step(st), ret;

	if (rc == SQLITE_ROW)
		ret = cache_entry_from_row(st, out);
	else if (rc == SQLITE_DONE)
		ret = -ENOENT;
	else
		ret = cache_db_fail(c, rc, "read an item");
	sqlite3_reset(st);
	return ret;
}

/*
 * Run a prepared entry SELECT (parameters bound) and copy its rows, at most
 * CACHE_LIST_BATCH, into batch; on failure none are left in it.
 */
int cache_fetch_batch(struct cache *c, enum stmt_id id, const char *what,
		      struct cache_entry *batch, size_t *n)
{
	sqlite3_stmt *st = c->stmt[id];
	int rc, ret = 0;

	*n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ret = cache_entry_from_row(st, &batch[*n]);
		if (ret < 0)
			break;
		(*n)++;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = cache_db_fail(c, rc, what);
	sqlite3_reset(st);
	if (ret < 0) {
		while (*n)
			cache_entry_release(&batch[--*n]);
	}
	return ret;
}

/* Without the lock: fn may call back into the cache. */
int cache_hand_batch(struct cache_entry *batch, size_t n, cache_entry_fn fn, void *ctx,
		     uint64_t *after_ino)
{
	int ret = 0;

	for (size_t i = 0; i < n; i++) {
		*after_ino = batch[i].ino;
		if (ret == 0)
			ret = fn(ctx, &batch[i]);
		cache_entry_release(&batch[i]);
	}
	return ret;
}

/* Look up the inode of an item id: 0, -ENOENT or -EIO. */
int cache_ino_of_id(struct cache *c, const char *id, uint64_t *ino)
{
	sqlite3_stmt *st = c->stmt[ST_INO_OF_ID];
	int rc, ret = 0;

	cache_bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ino = (uint64_t)sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		ret = -ENOENT;
	else
		ret = cache_db_fail(c, rc, "find an item");
	sqlite3_reset(st);
	return ret;
}

int cache_remove_tree(struct cache *c, uint64_t ino)
{
	sqlite3_bind_int64(c->stmt[ST_REMOVE_TREE], 1, (sqlite3_int64)ino);
	return cache_run(c, ST_REMOVE_TREE, "remove an item");
}

int cache_tree_protected(struct cache *c, uint64_t ino)
{
	sqlite3_stmt *st = c->stmt[ST_TREE_PROTECTED];
	int rc, ret;

	sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = 1;
	else if (rc == SQLITE_DONE)
		ret = 0;
	else
		ret = cache_db_fail(c, rc, "look for local changes");
	sqlite3_reset(st);
	return ret;
}

int cache_kind(struct cache *c, uint64_t ino, int *is_dir, char **id)
{
	sqlite3_stmt *st = c->stmt[ST_KIND];
	int rc, ret = 0;

	*id = NULL;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*is_dir = sqlite3_column_int(st, 0);
		ret = dup_column(st, 1, id);
	} else if (rc == SQLITE_DONE) {
		ret = -ENOENT;
	} else {
		ret = cache_db_fail(c, rc, "read an item");
	}
	sqlite3_reset(st);
	return ret;
}

/* Bind the item columns shared by ST_UPSERT and ST_SET_ROOT (?1, ?3..?14). */
static void bind_item(sqlite3_stmt *st, const struct drive_item *item, const char *fold)
{
	cache_bind_text(st, 1, item->id);
	cache_bind_text(st, 3, item->name ? item->name : "");
	cache_bind_text(st, 4, fold);
	sqlite3_bind_int(st, 5, item->is_dir ? 1 : 0);
	sqlite3_bind_int(st, 6, item->is_package ? 1 : 0);
	sqlite3_bind_int64(st, 7, item->size > 0 ? item->size : 0);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)item->mtime.tv_sec);
	sqlite3_bind_int64(st, 9, item->mtime.tv_nsec);
	sqlite3_bind_int64(st, 10, (sqlite3_int64)item->ctime_created.tv_sec);
	sqlite3_bind_int64(st, 11, item->ctime_created.tv_nsec);
	cache_bind_text(st, 12, item->etag);
	cache_bind_text(st, 13, item->ctag);
	cache_bind_text(st, 14, item->qxhash);
}

/* Write the root row (inode 1); a stray row holding the root's id goes first. */
static int set_root_locked(struct cache *c, const struct drive_item *root)
{
	sqlite3_stmt *st = c->stmt[ST_SET_ROOT];
	char *fold = names_fold(root->name ? root->name : "");
	uint64_t ino;
	int ret;

	if (!fold)
		return -ENOMEM;
	ret = cache_ino_of_id(c, root->id, &ino);
	if (ret == 0 && ino != CACHE_ROOT_INO)
		ret = cache_remove_tree(c, ino);
	else if (ret == -ENOENT)
		ret = 0;
	if (ret < 0)
		goto out_free_fold;
	bind_item(st, root, fold);
	ret = cache_run(c, ST_SET_ROOT, "store the drive root");
out_free_fold:
	free(fold);
	return ret;
}

/*
 * 1 when a name in folder parent_ino is held by a dirty or local item
 * other than id: a listing must not bring a second one (the upload of the
 * local one will meet the remote one as a conflict).
 */
static int name_protected(struct cache *c, uint64_t parent_ino, const char *fold, const char *id)
{
	sqlite3_stmt *st = c->stmt[ST_PROTECTED_HOLDER];
	int rc, ret;

	sqlite3_bind_int64(st, 1, (sqlite3_int64)parent_ino);
	cache_bind_text(st, 2, fold);
	cache_bind_text(st, 3, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = 1;
	else if (rc == SQLITE_DONE)
		ret = 0;
	else
		ret = cache_db_fail(c, rc, "look up a name");
	sqlite3_reset(st);
	return ret;
}

/*
 * Insert or update item under parent_ino.  With takeover, other items in
 * that folder holding the same folded name are removed first, unless they
 * hold local changes (-EEXIST).  Without takeover (a listing) an item whose
 * name a dirty or local item holds is skipped (*ino = 0).  A dirty or
 * local item is never overwritten (*ino = its inode).  A file loses
 * whatever children a former folder of that id had.
 */
static int upsert_locked(struct cache *c, const struct drive_item *item, uint64_t parent_ino,
			 int takeover, uint64_t *ino)
{
	sqlite3_stmt *st;
	char *fold = names_fold(item->name ? item->name : "");
	uint64_t new_ino = 0;
	int rc, ret = 0;

	if (!fold)
		return -ENOMEM;
	if (ino)
		*ino = 0;
	if (!takeover) {
		ret = name_protected(c, parent_ino, fold, item->id);
		if (ret != 0)
			goto out_free_fold;     /* 1: skipped, as documented */
	}
	while (takeover) {
		st = c->stmt[ST_NAME_HOLDER];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)parent_ino);
		cache_bind_text(st, 2, fold);
		cache_bind_text(st, 3, item->id);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			new_ino = (uint64_t)sqlite3_column_int64(st, 0);
		else if (rc != SQLITE_DONE)
			ret = cache_db_fail(c, rc, "look up a name");
		sqlite3_reset(st);
		if (ret < 0 || rc != SQLITE_ROW)
			break;
		ret = cache_tree_protected(c, new_ino);
		if (ret == 1)
			ret = -EEXIST;
		if (ret == 0)
			ret = cache_remove_tree(c, new_ino);
		if (ret < 0)
			break;
	}
	if (ret < 0)
		goto out_free_fold;

	st = c->stmt[ST_UPSERT];
	bind_item(st, item, fold);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)parent_ino);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		new_ino = (uint64_t)sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		ret = cache_db_fail(c, rc, "store an item");
	sqlite3_reset(st);
	if (ret == 0 && rc == SQLITE_DONE) {
		/* No row back: the root's id under a parent, or local changes kept. */
		ret = cache_ino_of_id(c, item->id, &new_ino);
		if (ret == 0 && new_ino == CACHE_ROOT_INO)
			ret = -EINVAL;
		if (ret == 0 && ino)
			*ino = new_ino;
		goto out_free_fold;
	}
	if (ret < 0)
		goto out_free_fold;

	if (!item->is_dir) {
		st = c->stmt[ST_HAS_CHILD];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)new_ino);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc == SQLITE_ROW) {
			sqlite3_bind_int64(c->stmt[ST_REMOVE_CHILDREN], 1, (sqlite3_int64)new_ino);
			ret = cache_run(c, ST_REMOVE_CHILDREN, "remove children of a former folder");
		} else if (rc != SQLITE_DONE) {
			ret = cache_db_fail(c, rc, "look up children");
		}
	}
	if (ret == 0 && ino)
		*ino = new_ino;
out_free_fold:
	free(fold);
	return ret < 0 ? ret : 0;
}

int cache_meta_get_locked(struct cache *c, const char *key, char **value)
{
	sqlite3_stmt *st = c->stmt[ST_META_GET];
	int rc, ret;

	*value = NULL;
	cache_bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = dup_column(st, 0, value);
	else if (rc == SQLITE_DONE)
		ret = -ENOENT;
	else
		ret = cache_db_fail(c, rc, "read a setting");
	sqlite3_reset(st);
	return ret;
}

int cache_meta_set_locked(struct cache *c, const char *key, const char *value)
{
	cache_bind_text(c->stmt[ST_META_SET], 1, key);
	cache_bind_text(c->stmt[ST_META_SET], 2, value);
	return cache_run(c, ST_META_SET, "store a setting");
}

#define HEX_DIGITS "0123456789abcdefABCDEF"

/* A personal drive id: at most 16 hex digits. */
static int is_personal_drive_id(const char *id)
{
	size_t len = strlen(id);

	return len > 0 && len <= 16 && strspn(id, HEX_DIGITS) == len;
}

/*
 * Personal drive ids come back in either case and sometimes without
 * leading zeros (graph-notes 2.3): compare those as 16 hex digits.
 */
static int same_drive(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (!is_personal_drive_id(a) || !is_personal_drive_id(b))
		return strcmp(a, b) == 0;
	for (size_t i = 0; i < 16; i++) {
		char ca = i < 16 - la ? '0' : a[i - (16 - la)];
		char cb = i < 16 - lb ? '0' : b[i - (16 - lb)];

		if ((ca | 0x20) != (cb | 0x20))  /* hex digits: | 0x20 lowers letters only */
			return 0;
	}
	return 1;
}

int cache_set_root(struct cache *c, const char *drive_id, const struct drive_item *root)
{
	char *stored = NULL;
	int ret;

	if (!drive_id || !root || !root->id)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = cache_begin(c);
	if (ret < 0)
		goto out_unlock;
	ret = cache_meta_get_locked(c, META_DRIVE_ID, &stored);
	if (ret == 0 && !same_drive(stored, drive_id)) {
		log_info("metadata cache '%s' belonged to another drive; starting afresh", c->path);
		ret = cache_run(c, ST_WIPE_ITEMS, "empty the items");
		if (ret == 0)
			ret = cache_run(c, ST_WIPE_META, "empty the settings");
	} else if (ret == -ENOENT) {
		ret = 0;
	}
	if (ret == 0)
		ret = cache_meta_set_locked(c, META_DRIVE_ID, drive_id);
	if (ret == 0)
		ret = set_root_locked(c, root);
	ret = cache_finish(c, ret);
	free(stored);
out_unlock:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int cache_get(struct cache *c, uint64_t ino, struct cache_entry *out)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	sqlite3_bind_int64(c->stmt[ST_GET_BY_INO], 1, (sqlite3_int64)ino);
	ret = cache_fetch_entry(c, ST_GET_BY_INO, out);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int cache_get_by_id(struct cache *c, const char *id, struct cache_entry *out)
{
	int ret;

	if (!id)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	cache_bind_text(c->stmt[ST_GET_BY_ID], 1, id);
	ret = cache_fetch_entry(c, ST_GET_BY_ID, out);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int cache_lookup(struct cache *c, uint64_t parent_ino, const char *name, struct cache_entry *out)
{
	char *fold = names_fold(name);
	int ret;

	if (!fold)
		return -ENOMEM;
	pthread_mutex_lock(&c->lock);
	sqlite3_bind_int64(c->stmt[ST_LOOKUP], 1, (sqlite3_int64)parent_ino);
	cache_bind_text(c->stmt[ST_LOOKUP], 2, fold);
	ret = cache_fetch_entry(c, ST_LOOKUP, out);
	pthread_mutex_unlock(&c->lock);
	free(fold);
	return ret;
}

int cache_upsert(struct cache *c, const struct drive_item *item, uint64_t *ino)
{
	uint64_t parent_ino = 0;
	int ret;

	if (!item || !item->id || item->is_deleted)
		return -EINVAL;
	if (!item->is_root && (!item->parent_id || strcmp(item->parent_id, item->id) == 0))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = cache_begin(c);
	if (ret < 0)
		goto out_unlock;
	if (item->is_root) {
		ret = set_root_locked(c, item);
		if (ret == 0 && ino)
			*ino = CACHE_ROOT_INO;
	} else {
		ret = cache_ino_of_id(c, item->parent_id, &parent_ino);
		if (ret == 0)
			ret = upsert_locked(c, item, parent_ino, 1, ino);
	}
	ret = cache_finish(c, ret);
out_unlock:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static int compare_ids(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Collect the children of dir_ino whose ids are not in sorted_ids. */
static int stale_children(struct cache *c, uint64_t dir_ino, const char **sorted_ids, size_t n,
			  uint64_t **stale, size_t *nstale)
{
	sqlite3_stmt *st = c->stmt[ST_CHILDREN];
	size_t cap = 0;
	int rc, ret = 0;

	*stale = NULL;
	*nstale = 0;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)dir_ino);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 1);

		if (id && n && bsearch(&id, sorted_ids, n, sizeof(*sorted_ids), compare_ids))
			continue;
		if (*nstale == cap) {
			uint64_t *grown = realloc(*stale, (cap ? 2 * cap : 16) * sizeof(**stale));

			if (!grown) {
				ret = -ENOMEM;
				break;
			}
			*stale = grown;
			cap = cap ? 2 * cap : 16;
		}
		(*stale)[(*nstale)++] = (uint64_t)sqlite3_column_int64(st, 0);
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = cache_db_fail(c, rc, "list children");
	sqlite3_reset(st);
	if (ret < 0) {
		free(*stale);
		*stale = NULL;
	}
	return ret;
}

/*
 * The list is the server's complete child list, whose names are unique, so
 * there is no name takeover here (a rename swap keeps both inodes).  Items
 * are stored before vanished children go, so one that moved up out of a
 * vanished subfolder keeps its inode.
 */
static int replace_children_locked(struct cache *c, uint64_t dir_ino, const struct drive_item *items,
				   size_t n, const char **sorted_ids, int64_t listed_at)
{
	uint64_t *stale = NULL;
	size_t nstale = 0;
	char *dir_id = NULL;
	int is_dir = 0, ret;

	ret = cache_kind(c, dir_ino, &is_dir, &dir_id);
	if (ret == 0 && !is_dir)
		ret = -ENOTDIR;
	if (ret < 0) {
		free(dir_id);
		return ret;
	}

	for (size_t i = 0; ret == 0 && i < n; i++) {
		/* Never make a folder its own child, nor move the root. */
		if (items[i].is_deleted || items[i].is_root || strcmp(items[i].id, dir_id) == 0)
			continue;
		ret = upsert_locked(c, &items[i], dir_ino, 0, NULL);
	}
	if (ret == 0)
		ret = stale_children(c, dir_ino, sorted_ids, n, &stale, &nstale);
	for (size_t i = 0; ret == 0 && i < nstale; i++) {
		/* Unknown to the service, or holding news for it: kept (with their folders). */
		ret = cache_tree_protected(c, stale[i]);
		if (ret == 0)
			ret = cache_remove_tree(c, stale[i]);
		else if (ret == 1)
			ret = 0;
	}
	if (ret == 0) {
		sqlite3_bind_int64(c->stmt[ST_SET_LISTED], 1, (sqlite3_int64)dir_ino);
		sqlite3_bind_int64(c->stmt[ST_SET_LISTED], 2, listed_at);
		ret = cache_run(c, ST_SET_LISTED, "mark a folder listed");
	}
	free(stale);
	free(dir_id);
	return ret;
}

int cache_replace_children(struct cache *c, uint64_t dir_ino, const struct drive_item *items,
			   size_t n, int64_t listed_at)
{
	const char **sorted_ids = NULL;
	int ret;

	if (n && !items)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!items[i].id)
			return -EINVAL;
	if (n) {
		sorted_ids = malloc(n * sizeof(*sorted_ids));
		if (!sorted_ids)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++)
			sorted_ids[i] = items[i].id;
		qsort(sorted_ids, n, sizeof(*sorted_ids), compare_ids);
	}
	pthread_mutex_lock(&c->lock);
	ret = cache_begin(c);
	if (ret == 0)
		ret = cache_finish(c, replace_children_locked(c, dir_ino, items, n, sorted_ids, listed_at));
	pthread_mutex_unlock(&c->lock);
	free(sorted_ids);
	return ret;
}

int cache_set_listed_at(struct cache *c, uint64_t dir_ino, int64_t listed_at)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	sqlite3_bind_int64(c->stmt[ST_SET_LISTED], 1, (sqlite3_int64)dir_ino);
	sqlite3_bind_int64(c->stmt[ST_SET_LISTED], 2, listed_at);
	ret = cache_run(c, ST_SET_LISTED, "mark a folder listed");
	if (ret == 0 && sqlite3_changes(c->db) == 0)
		ret = -ENOENT;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int cache_remove(struct cache *c, uint64_t ino)
{
	int ret;

	if (ino == CACHE_ROOT_INO)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = cache_remove_tree(c, ino);
	if (ret == 0 && sqlite3_changes(c->db) == 0)
		ret = -ENOENT;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* Copy up to CACHE_LIST_BATCH children after after_ino into batch. */
static int list_batch(struct cache *c, uint64_t dir_ino, uint64_t after_ino,
		      struct cache_entry *batch, size_t *n)
{
	sqlite3_stmt *st = c->stmt[ST_LIST];
	int ret;

	pthread_mutex_lock(&c->lock);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)dir_ino);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)after_ino);
	sqlite3_bind_int(st, 3, CACHE_LIST_BATCH);
	ret = cache_fetch_batch(c, ST_LIST, "list a folder", batch, n);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/*
 * Entries are copied a batch at a time and fn runs without the lock, so fn
 * may call back into the cache (and the FUSE reply may take its time).
 */
int cache_list_children(struct cache *c, uint64_t dir_ino, uint64_t after_ino,
			cache_entry_fn fn, void *ctx)
{
	struct cache_entry batch[CACHE_LIST_BATCH];
	int first = 1;

	for (;;) {
		size_t n;
		int ret = list_batch(c, dir_ino, after_ino, batch, &n);

		if (ret < 0)
			return ret;
		if (n == 0 && first) {  /* an empty folder, or no folder at all? */
			struct cache_entry dir;

			ret = cache_get(c, dir_ino, &dir);
			if (ret == 0) {
				if (!dir.item.is_dir)
					ret = -ENOTDIR;
				cache_entry_release(&dir);
			}
			return ret;
		}
		first = 0;
		ret = cache_hand_batch(batch, n, fn, ctx, &after_ino);
		if (ret != 0 || n < CACHE_LIST_BATCH)
			return ret;
	}
}

int cache_meta_get(struct cache *c, const char *key, char **value)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = cache_meta_get_locked(c, key, value);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int cache_meta_set(struct cache *c, const char *key, const char *value)
{
	int ret;

	if (!key || !value)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = cache_meta_set_locked(c, key, value);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int64_t cache_count(struct cache *c)
{
	sqlite3_stmt *st;
	int64_t ret;
	int rc;

	pthread_mutex_lock(&c->lock);
	st = c->stmt[ST_COUNT];
	rc = sqlite3_step(st);
	ret = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : cache_db_fail(c, rc, "count items");
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int cache_id_is_local(const char *id)
{
	return id && strncmp(id, CACHE_LOCAL_PREFIX, strlen(CACHE_LOCAL_PREFIX)) == 0;
}
