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
#include "log.h"
#include "names.h"

#define CACHE_SCHEMA_VERSION 1
#define CACHE_BUSY_TIMEOUT_MS 10000
#define CACHE_LIST_BATCH 64         /* entries copied per lock hold in cache_list_children */
#define META_DRIVE_ID "drive_id"
#define META_FOLD_VERSION "fold_version"

enum stmt_id {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
	ST_GET_BY_INO, ST_GET_BY_ID, ST_LOOKUP, ST_LIST, ST_INO_OF_ID, ST_KIND,
	ST_UPSERT, ST_SET_ROOT, ST_NAME_HOLDER, ST_HAS_CHILD, ST_CHILDREN,
	ST_REMOVE_TREE, ST_REMOVE_CHILDREN, ST_SET_LISTED,
	ST_META_GET, ST_META_SET, ST_WIPE_ITEMS, ST_WIPE_META, ST_COUNT,
	ST_NUM
};

#define ENTRY_COLUMNS \
	"SELECT i.ino, i.parent_ino, i.listed_at, i.id, p.id, i.name, i.is_dir, i.is_package," \
	" i.size, i.mtime_sec, i.mtime_nsec, i.ctime_sec, i.ctime_nsec, i.etag, i.ctag, i.qxhash"
#define ENTRY_JOIN " LEFT JOIN items p ON p.ino = i.parent_ino "
#define ENTRY_SELECT ENTRY_COLUMNS " FROM items i" ENTRY_JOIN

/* Both statements delete a subtree; UNION (not UNION ALL) stops on a cycle. */
#define SUBTREE_DELETE \
	" UNION SELECT i.ino FROM items i JOIN sub ON i.parent_ino = sub.ino)" \
	" DELETE FROM items WHERE ino IN sub AND ino <> 1"

static const char *const stmt_sql[ST_NUM] = {
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
		" WHERE items.ino <> 1"  /* the root never moves: no row comes back */
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
};

static const char schema_sql[] =
	"CREATE TABLE items ("
	" ino INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, parent_ino INTEGER,"
	" name TEXT NOT NULL, name_fold TEXT NOT NULL,"
	" is_dir INTEGER NOT NULL DEFAULT 0, is_package INTEGER NOT NULL DEFAULT 0,"
	" size INTEGER NOT NULL DEFAULT 0,"
	" mtime_sec INTEGER NOT NULL DEFAULT 0, mtime_nsec INTEGER NOT NULL DEFAULT 0,"
	" ctime_sec INTEGER NOT NULL DEFAULT 0, ctime_nsec INTEGER NOT NULL DEFAULT 0,"
	" etag TEXT, ctag TEXT, qxhash TEXT, listed_at INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX items_parent_fold ON items (parent_ino, name_fold);"
	"CREATE INDEX items_parent ON items (parent_ino);"
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
	/* Inode 1 is the root's alone: automatic row ids start at 2. */
	"INSERT INTO sqlite_sequence (name, seq) VALUES ('items', 1);";

struct cache {
	pthread_mutex_t lock;
	sqlite3 *db;                  /* lock */
	sqlite3_stmt *stmt[ST_NUM];   /* lock */
	char *path;                   /* read-only after open */
};

/* Log a failed SQLite call with SQLite's own words and turn it into an errno. */
static int db_fail(struct cache *c, int rc, const char *what)
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
static int run(struct cache *c, enum stmt_id id, const char *what)
{
	sqlite3_stmt *st = c->stmt[id];
	int rc = sqlite3_step(st), ret = 0;

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		ret = db_fail(c, rc, what);
	sqlite3_reset(st);
	return ret;
}

static void bind_text(sqlite3_stmt *st, int col, const char *s)
{
	sqlite3_bind_text(st, col, s, -1, SQLITE_STATIC);
}

static int begin(struct cache *c)
{
	return run(c, ST_BEGIN, "start a transaction");
}

/* Commit, or roll back when ret (the work's result) or the commit failed. */
static int finish(struct cache *c, int ret)
{
	if (ret == 0)
		ret = run(c, ST_COMMIT, "commit");
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
static int entry_from_row(sqlite3_stmt *st, struct cache_entry *e)
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
	if (ret) {
		cache_entry_release(e);
		return -ENOMEM;
	}
	return 0;
}

/* Run a prepared ENTRY_SELECT (parameters bound) for at most one row. */
static int fetch_entry(struct cache *c, enum stmt_id id, struct cache_entry *out)
{
	sqlite3_stmt *st = c->stmt[id];
	int rc = sqlite3_step(st), ret;

	if (rc == SQLITE_ROW)
		ret = entry_from_row(st, out);
	else if (rc == SQLITE_DONE)
		ret = -ENOENT;
	else
		ret = db_fail(c, rc, "read an item");
	sqlite3_reset(st);
	return ret;
}

/* Look up the inode of an item id: 0, -ENOENT or -EIO. */
static int ino_of_id(struct cache *c, const char *id, uint64_t *ino)
{
	sqlite3_stmt *st = c->stmt[ST_INO_OF_ID];
	int rc, ret = 0;

	bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ino = (uint64_t)sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		ret = -ENOENT;
	else
		ret = db_fail(c, rc, "find an item");
	sqlite3_reset(st);
	return ret;
}

static int remove_tree(struct cache *c, uint64_t ino)
{
	sqlite3_bind_int64(c->stmt[ST_REMOVE_TREE], 1, (sqlite3_int64)ino);
	return run(c, ST_REMOVE_TREE, "remove an item");
}

/* Bind the item columns shared by ST_UPSERT and ST_SET_ROOT (?1, ?3..?14). */
static void bind_item(sqlite3_stmt *st, const struct drive_item *item, const char *fold)
{
	bind_text(st, 1, item->id);
	bind_text(st, 3, item->name ? item->name : "");
	bind_text(st, 4, fold);
	sqlite3_bind_int(st, 5, item->is_dir ? 1 : 0);
	sqlite3_bind_int(st, 6, item->is_package ? 1 : 0);
	sqlite3_bind_int64(st, 7, item->size > 0 ? item->size : 0);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)item->mtime.tv_sec);
	sqlite3_bind_int64(st, 9, item->mtime.tv_nsec);
	sqlite3_bind_int64(st, 10, (sqlite3_int64)item->ctime_created.tv_sec);
	sqlite3_bind_int64(st, 11, item->ctime_created.tv_nsec);
	bind_text(st, 12, item->etag);
	bind_text(st, 13, item->ctag);
	bind_text(st, 14, item->qxhash);
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
	ret = ino_of_id(c, root->id, &ino);
	if (ret == 0 && ino != CACHE_ROOT_INO)
		ret = remove_tree(c, ino);
	else if (ret == -ENOENT)
		ret = 0;
	if (ret < 0)
		goto out_free_fold;
	bind_item(st, root, fold);
	ret = run(c, ST_SET_ROOT, "store the drive root");
out_free_fold:
	free(fold);
	return ret;
}

/*
 * Insert or update item under parent_ino.  With takeover, other items in
 * that folder holding the same folded name are removed first.  A file
 * loses whatever children a former folder of that id had.
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
	while (takeover) {
		st = c->stmt[ST_NAME_HOLDER];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)parent_ino);
		bind_text(st, 2, fold);
		bind_text(st, 3, item->id);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			new_ino = (uint64_t)sqlite3_column_int64(st, 0);
		else if (rc != SQLITE_DONE)
			ret = db_fail(c, rc, "look up a name");
		sqlite3_reset(st);
		if (ret < 0 || rc != SQLITE_ROW)
			break;
		ret = remove_tree(c, new_ino);
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
	else if (rc == SQLITE_DONE)
		ret = -EINVAL;  /* the root's id under a parent */
	else
		ret = db_fail(c, rc, "store an item");
	sqlite3_reset(st);
	if (ret < 0)
		goto out_free_fold;

	if (!item->is_dir) {
		st = c->stmt[ST_HAS_CHILD];
		sqlite3_bind_int64(st, 1, (sqlite3_int64)new_ino);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		if (rc == SQLITE_ROW) {
			sqlite3_bind_int64(c->stmt[ST_REMOVE_CHILDREN], 1, (sqlite3_int64)new_ino);
			ret = run(c, ST_REMOVE_CHILDREN, "remove children of a former folder");
		} else if (rc != SQLITE_DONE) {
			ret = db_fail(c, rc, "look up children");
		}
	}
	if (ret == 0 && ino)
		*ino = new_ino;
out_free_fold:
	free(fold);
	return ret;
}

static int meta_get_locked(struct cache *c, const char *key, char **value)
{
	sqlite3_stmt *st = c->stmt[ST_META_GET];
	int rc, ret;

	*value = NULL;
	bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = dup_column(st, 0, value);
	else if (rc == SQLITE_DONE)
		ret = -ENOENT;
	else
		ret = db_fail(c, rc, "read a setting");
	sqlite3_reset(st);
	return ret;
}

static int meta_set_locked(struct cache *c, const char *key, const char *value)
{
	bind_text(c->stmt[ST_META_SET], 1, key);
	bind_text(c->stmt[ST_META_SET], 2, value);
	return run(c, ST_META_SET, "store a setting");
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
	ret = begin(c);
	if (ret < 0)
		goto out_unlock;
	ret = meta_get_locked(c, META_DRIVE_ID, &stored);
	if (ret == 0 && !same_drive(stored, drive_id)) {
		log_info("metadata cache '%s' belonged to another drive; starting afresh", c->path);
		ret = run(c, ST_WIPE_ITEMS, "empty the items");
		if (ret == 0)
			ret = run(c, ST_WIPE_META, "empty the settings");
	} else if (ret == -ENOENT) {
		ret = 0;
	}
	if (ret == 0)
		ret = meta_set_locked(c, META_DRIVE_ID, drive_id);
	if (ret == 0)
		ret = set_root_locked(c, root);
	ret = finish(c, ret);
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
	ret = fetch_entry(c, ST_GET_BY_INO, out);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int cache_get_by_id(struct cache *c, const char *id, struct cache_entry *out)
{
	int ret;

	if (!id)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	bind_text(c->stmt[ST_GET_BY_ID], 1, id);
	ret = fetch_entry(c, ST_GET_BY_ID, out);
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
	bind_text(c->stmt[ST_LOOKUP], 2, fold);
	ret = fetch_entry(c, ST_LOOKUP, out);
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
	ret = begin(c);
	if (ret < 0)
		goto out_unlock;
	if (item->is_root) {
		ret = set_root_locked(c, item);
		if (ret == 0 && ino)
			*ino = CACHE_ROOT_INO;
	} else {
		ret = ino_of_id(c, item->parent_id, &parent_ino);
		if (ret == 0)
			ret = upsert_locked(c, item, parent_ino, 1, ino);
	}
	ret = finish(c, ret);
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
		ret = db_fail(c, rc, "list children");
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
	sqlite3_stmt *st = c->stmt[ST_KIND];
	uint64_t *stale = NULL;
	size_t nstale = 0;
	char *dir_id = NULL;
	int rc, ret = 0;

	sqlite3_bind_int64(st, 1, (sqlite3_int64)dir_ino);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = !sqlite3_column_int(st, 0) ? -ENOTDIR : dup_column(st, 1, &dir_id);
	else if (rc == SQLITE_DONE)
		ret = -ENOENT;
	else
		ret = db_fail(c, rc, "read a folder");
	sqlite3_reset(st);
	if (ret < 0)
		return ret;

	for (size_t i = 0; ret == 0 && i < n; i++) {
		/* Never make a folder its own child, nor move the root. */
		if (items[i].is_deleted || items[i].is_root || strcmp(items[i].id, dir_id) == 0)
			continue;
		ret = upsert_locked(c, &items[i], dir_ino, 0, NULL);
	}
	if (ret == 0)
		ret = stale_children(c, dir_ino, sorted_ids, n, &stale, &nstale);
	for (size_t i = 0; ret == 0 && i < nstale; i++)
		ret = remove_tree(c, stale[i]);
	if (ret == 0) {
		sqlite3_bind_int64(c->stmt[ST_SET_LISTED], 1, (sqlite3_int64)dir_ino);
		sqlite3_bind_int64(c->stmt[ST_SET_LISTED], 2, listed_at);
		ret = run(c, ST_SET_LISTED, "mark a folder listed");
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
	ret = begin(c);
	if (ret == 0)
		ret = finish(c, replace_children_locked(c, dir_ino, items, n, sorted_ids, listed_at));
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
	ret = run(c, ST_SET_LISTED, "mark a folder listed");
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
	ret = remove_tree(c, ino);
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
	int rc, ret = 0;

	*n = 0;
	pthread_mutex_lock(&c->lock);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)dir_ino);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)after_ino);
	sqlite3_bind_int(st, 3, CACHE_LIST_BATCH);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ret = entry_from_row(st, &batch[*n]);
		if (ret < 0)
			break;
		(*n)++;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = db_fail(c, rc, "list a folder");
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
	if (ret < 0) {
		while (*n)
			cache_entry_release(&batch[--*n]);
	}
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
		for (size_t i = 0; i < n; i++) {
			after_ino = batch[i].ino;
			if (ret == 0)
				ret = fn(ctx, &batch[i]);
			cache_entry_release(&batch[i]);
		}
		if (ret != 0 || n < CACHE_LIST_BATCH)
			return ret;
	}
}

int cache_meta_get(struct cache *c, const char *key, char **value)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	ret = meta_get_locked(c, key, value);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int cache_meta_set(struct cache *c, const char *key, const char *value)
{
	int ret;

	if (!key || !value)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = meta_set_locked(c, key, value);
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
	ret = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : db_fail(c, rc, "count items");
	sqlite3_reset(st);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* ---- opening ---- */

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
 * Create or check the schema.  A schema we do not know (a newer or an
 * older onedrivefs) is dropped and rebuilt: it is only a cache.
 */
static int setup_schema(sqlite3 *db, const char *path)
{
	sqlite3_int64 version = 0;
	char sql[128];
	int rc = query_int(db, "PRAGMA user_version", &version);

	if (rc != SQLITE_OK || version == CACHE_SCHEMA_VERSION)
		return rc;
	if (version != 0)
		log_warnx("metadata cache '%s' has an unknown layout (%lld); rebuilding it",
			  path, (long long)version);
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d;", CACHE_SCHEMA_VERSION);
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
	int ret = meta_get_locked(c, META_FOLD_VERSION, &stored);

	if (ret == 0 && strcmp(stored, now) == 0)
		goto out_free_stored;
	if (ret < 0 && ret != -ENOENT)
		goto out_free_stored;
	ret = begin(c);
	if (ret < 0)
		goto out_free_stored;
	if (exec(c->db, "UPDATE items SET name_fold = odfs_fold(name)") != SQLITE_OK)
		ret = db_fail(c, sqlite3_errcode(c->db), "refold names");
	if (ret == 0)
		ret = meta_set_locked(c, META_FOLD_VERSION, now);
	ret = finish(c, ret);
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
	sqlite3_busy_timeout(c->db, CACHE_BUSY_TIMEOUT_MS);
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
		rc = sqlite3_prepare_v3(c->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
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
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_destroy(&c->lock);
	free(c->path);
	free(c);
}
