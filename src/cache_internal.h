/*
 * cache_internal.h - what cache.c and cache_local.c share: the connection,
 * the prepared statements and the helpers around them.  Not an API.
 * Every function here is called with c->lock held.  cache_open.c opens it.
 */
#ifndef ODFS_CACHE_INTERNAL_H
#define ODFS_CACHE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "cache.h"

#define CACHE_LIST_BATCH 64         /* entries copied per lock hold when listing */
#define META_DRIVE_ID "drive_id"
#define META_FOLD_VERSION "fold_version"
#define CACHE_DELETED_MAX 32        /* ids deleted behind the cache's back, remembered */

enum stmt_id {
	ST_BEGIN, ST_COMMIT, ST_ROLLBACK,
	ST_GET_BY_INO, ST_GET_BY_ID, ST_LOOKUP, ST_LIST, ST_INO_OF_ID, ST_KIND,
	ST_UPSERT, ST_SET_ROOT, ST_NAME_HOLDER, ST_HAS_CHILD, ST_CHILDREN,
	ST_REMOVE_TREE, ST_REMOVE_CHILDREN, ST_SET_LISTED,
	ST_META_GET, ST_META_SET, ST_WIPE_ITEMS, ST_WIPE_META, ST_COUNT,
	/* local changes */
	ST_PROTECTED_HOLDER, ST_TREE_PROTECTED, ST_INSERT_LOCAL, ST_SET_ID, ST_MOVE,
	ST_IS_ANCESTOR, ST_SET_SIZE, ST_SET_MTIME, ST_SET_DIRTY, ST_UPDATE_REMOTE,
	ST_LIST_DIRTY,
	ST_NUM
};

/* An item deleted on the service behind the cache's back (cache_forget_deleted). */
struct cache_deleted {
	char *id;
	uint64_t seq;                 /* cache.deleted_seq when it was deleted */
};

struct cache {
	pthread_mutex_t lock;
	sqlite3 *db;                  /* lock */
	sqlite3_stmt *stmt[ST_NUM];   /* lock */
	char *path;                   /* read-only after open */
	struct cache_deleted deleted[CACHE_DELETED_MAX];   /* lock, oldest first */
	size_t ndeleted;              /* lock */
	uint64_t deleted_seq;         /* lock: deletions noted so far */
};

/* The SQL of each statement, prepared once at open (cache.c). */
extern const char *const cache_stmt_sql[ST_NUM];

/* Log a failed SQLite call with SQLite's own words and turn it into an errno. */
int cache_db_fail(struct cache *c, int rc, const char *what);
/* Step a statement that returns no rows we need, then reset it. */
int cache_run(struct cache *c, enum stmt_id id, const char *what);
void cache_bind_text(sqlite3_stmt *st, int col, const char *s);
int cache_begin(struct cache *c);
/* Commit, or roll back when ret (the work's result) or the commit failed. */
int cache_finish(struct cache *c, int ret);
/* Copy the current entry row into e (which the caller then owns). */
int cache_entry_from_row(sqlite3_stmt *st, struct cache_entry *e);
/* Run a prepared entry SELECT (parameters bound) for at most one row. */
int cache_fetch_entry(struct cache *c, enum stmt_id id, struct cache_entry *out);
/*
 * Run a prepared entry SELECT (parameters bound) and copy up to
 * CACHE_LIST_BATCH rows into batch (*n of them, the caller owns them);
 * on failure -errno and none are left.
 */
int cache_fetch_batch(struct cache *c, enum stmt_id id, const char *what,
		      struct cache_entry *batch, size_t *n);
/*
 * Called WITHOUT c->lock: hand the n entries of batch to fn in turn until
 * it returns non-zero (that is the result, else 0), releasing every entry;
 * *after_ino becomes the last entry's inode.
 */
int cache_hand_batch(struct cache_entry *batch, size_t n, cache_entry_fn fn, void *ctx,
		     uint64_t *after_ino);
/* The inode of an item id: 0, -ENOENT or -EIO. */
int cache_ino_of_id(struct cache *c, const char *id, uint64_t *ino);
int cache_remove_tree(struct cache *c, uint64_t ino);
/* Free the remembered deletions (cache_delta.c; at close). */
void cache_deleted_free(struct cache *c);
/* 1 if ino or anything below it is dirty or local, 0 if not, or -errno. */
int cache_tree_protected(struct cache *c, uint64_t ino);
/* cache_meta_get/set with the lock held. */
int cache_meta_get_locked(struct cache *c, const char *key, char **value);
int cache_meta_set_locked(struct cache *c, const char *key, const char *value);
/* is_dir and a malloc'd id of ino: 0, -ENOENT, -ENOMEM or -EIO. */
int cache_kind(struct cache *c, uint64_t ino, int *is_dir, char **id);

#endif
