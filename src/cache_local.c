/*
 * cache_local.c - the metadata cache's side of the write path: items made
 * here (local ids until their first upload), moves, local sizes and times,
 * dirty flags, and taking back what the service said after an upload.
 *
 * A local id is CACHE_LOCAL_PREFIX and 32 random hex digits: it can never
 * be a Graph id, so listings never collide with it, and it stays unique
 * across remounts without a counter.  See cache.c for the storage.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "cache.h"
#include "cache_internal.h"
#include "log.h"
#include "names.h"

#define LOCAL_ID_BYTES 16

static int make_local_id(char **out)
{
	unsigned char raw[LOCAL_ID_BYTES];
	size_t plen = strlen(CACHE_LOCAL_PREFIX);
	char *id = malloc(plen + 2 * LOCAL_ID_BYTES + 1);

	*out = NULL;
	if (!id)
		return -ENOMEM;
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		log_error("cannot make a local id: no random bytes");
		free(id);
		return -EIO;
	}
	memcpy(id, CACHE_LOCAL_PREFIX, plen);
	for (size_t i = 0; i < LOCAL_ID_BYTES; i++)
		snprintf(id + plen + 2 * i, 3, "%02x", raw[i]);
	*out = id;
	return 0;
}

/* The inode holding fold in parent_ino other than the item except_id, or 0. */
static int name_holder(struct cache *c, uint64_t parent_ino, const char *fold,
		       const char *except_id, uint64_t *holder)
{
	sqlite3_stmt *st = c->stmt[ST_NAME_HOLDER];
	int rc, ret = 0;

	*holder = 0;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)parent_ino);
	cache_bind_text(st, 2, fold);
	cache_bind_text(st, 3, except_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*holder = (uint64_t)sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		ret = cache_db_fail(c, rc, "look up a name");
	sqlite3_reset(st);
	return ret;
}

/* A folder to put things in: 0, -ENOENT or -ENOTDIR. */
static int check_folder(struct cache *c, uint64_t ino)
{
	char *id = NULL;
	int is_dir = 0, ret = cache_kind(c, ino, &is_dir, &id);

	free(id);
	if (ret == 0 && !is_dir)
		ret = -ENOTDIR;
	return ret;
}

int cache_create_local(struct cache *c, uint64_t parent_ino, const char *name, int is_dir,
		       const struct timespec *mtime, uint64_t *ino, char **id)
{
	struct timespec now;
	sqlite3_stmt *st;
	char *fold, *new_id = NULL;
	uint64_t holder, new_ino = 0;
	int rc, ret;

	if (id)
		*id = NULL;
	if (!name || !*name || !ino)
		return -EINVAL;
	if (!mtime) {
		clock_gettime(CLOCK_REALTIME, &now);
		mtime = &now;
	}
	fold = names_fold(name);
	if (!fold)
		return -ENOMEM;
	ret = make_local_id(&new_id);
	if (ret < 0)
		goto out_free;
	pthread_mutex_lock(&c->lock);
	ret = cache_begin(c);
	if (ret < 0)
		goto out_unlock;
	ret = check_folder(c, parent_ino);
	if (ret == 0)
		ret = name_holder(c, parent_ino, fold, new_id, &holder);
	if (ret == 0 && holder)
		ret = -EEXIST;
	if (ret == 0) {
		st = c->stmt[ST_INSERT_LOCAL];
		cache_bind_text(st, 1, new_id);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)parent_ino);
		cache_bind_text(st, 3, name);
		cache_bind_text(st, 4, fold);
		sqlite3_bind_int(st, 5, is_dir ? 1 : 0);
		sqlite3_bind_int64(st, 6, (sqlite3_int64)mtime->tv_sec);
		sqlite3_bind_int64(st, 7, mtime->tv_nsec);
		sqlite3_bind_int64(st, 8, is_dir ? (sqlite3_int64)time(NULL) : 0);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			new_ino = (uint64_t)sqlite3_column_int64(st, 0);
		else
			ret = cache_db_fail(c, rc, "store a new item");
		sqlite3_reset(st);
	}
	ret = cache_finish(c, ret);
out_unlock:
	pthread_mutex_unlock(&c->lock);
	if (ret == 0) {
		*ino = new_ino;
		if (id) {
			*id = new_id;
			new_id = NULL;
		}
	}
out_free:
	free(new_id);
	free(fold);
	return ret;
}

/* Give ino the id id, removing a stale row that holds it.  Lock held, in a transaction. */
static int set_id_locked(struct cache *c, uint64_t ino, const char *id)
{
	uint64_t other = 0;
	int ret = cache_ino_of_id(c, id, &other);

	if (ret == 0 && other == ino)
		return 0;
	if (ret == 0 && other == CACHE_ROOT_INO)
		return -EINVAL;
	if (ret == 0)
		ret = cache_remove_tree(c, other);
	else if (ret == -ENOENT)
		ret = 0;
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(c->stmt[ST_SET_ID], 1, (sqlite3_int64)ino);
	cache_bind_text(c->stmt[ST_SET_ID], 2, id);
	ret = cache_run(c, ST_SET_ID, "change an item's id");
	if (ret == 0 && sqlite3_changes(c->db) == 0)
		ret = -ENOENT;
	return ret;
}

int cache_set_id(struct cache *c, uint64_t ino, const char *id)
{
	int ret;

	if (!id || !*id || ino == CACHE_ROOT_INO)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = cache_begin(c);
	if (ret == 0)
		ret = cache_finish(c, set_id_locked(c, ino, id));
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static int move_locked(struct cache *c, uint64_t ino, uint64_t new_parent_ino, const char *name,
		       const char *fold)
{
	sqlite3_stmt *st;
	char *id = NULL;
	uint64_t holder;
	int is_dir, rc, ret;

	ret = cache_kind(c, ino, &is_dir, &id);
	if (ret == 0)
		ret = check_folder(c, new_parent_ino);
	if (ret < 0)
		goto out_free_id;
	/* Not into itself or its own subtree. */
	st = c->stmt[ST_IS_ANCESTOR];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)new_parent_ino);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)ino);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = -EINVAL;
	else if (rc != SQLITE_DONE)
		ret = cache_db_fail(c, rc, "check a move");
	sqlite3_reset(st);
	/* Like rename(2): whatever held the name goes. */
	while (ret == 0) {
		ret = name_holder(c, new_parent_ino, fold, id, &holder);
		if (ret < 0 || !holder)
			break;
		ret = cache_remove_tree(c, holder);
	}
	if (ret < 0)
		goto out_free_id;
	st = c->stmt[ST_MOVE];
	sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)new_parent_ino);
	cache_bind_text(st, 3, name);
	cache_bind_text(st, 4, fold);
	ret = cache_run(c, ST_MOVE, "move an item");
out_free_id:
	free(id);
	return ret;
}

int cache_move(struct cache *c, uint64_t ino, uint64_t new_parent_ino, const char *new_name)
{
	char *fold;
	int ret;

	if (ino == CACHE_ROOT_INO || !new_name || !*new_name)
		return -EINVAL;
	fold = names_fold(new_name);
	if (!fold)
		return -ENOMEM;
	pthread_mutex_lock(&c->lock);
	ret = cache_begin(c);
	if (ret == 0)
		ret = cache_finish(c, move_locked(c, ino, new_parent_ino, new_name, fold));
	pthread_mutex_unlock(&c->lock);
	free(fold);
	return ret;
}

int cache_set_local_attrs(struct cache *c, uint64_t ino, const int64_t *size,
			  const struct timespec *mtime)
{
	return cache_set_local_change(c, ino, size, mtime, 0);
}

int cache_set_local_change(struct cache *c, uint64_t ino, const int64_t *size,
			   const struct timespec *mtime, int dirty)
{
	int ret, changed = 1;

	if (size && *size < 0)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = cache_begin(c);
	if (ret < 0)
		goto out_unlock;
	if (size) {
		sqlite3_bind_int64(c->stmt[ST_SET_SIZE], 1, (sqlite3_int64)ino);
		sqlite3_bind_int64(c->stmt[ST_SET_SIZE], 2, *size);
		ret = cache_run(c, ST_SET_SIZE, "store a size");
		changed = ret == 0 && sqlite3_changes(c->db) > 0;
	}
	if (ret == 0 && mtime) {
		sqlite3_bind_int64(c->stmt[ST_SET_MTIME], 1, (sqlite3_int64)ino);
		sqlite3_bind_int64(c->stmt[ST_SET_MTIME], 2, (sqlite3_int64)mtime->tv_sec);
		sqlite3_bind_int64(c->stmt[ST_SET_MTIME], 3, mtime->tv_nsec);
		ret = cache_run(c, ST_SET_MTIME, "store a time");
		changed = ret == 0 && sqlite3_changes(c->db) > 0;
	}
	if (ret == 0 && changed && dirty) {
		sqlite3_bind_int64(c->stmt[ST_SET_DIRTY], 1, (sqlite3_int64)ino);
		sqlite3_bind_int(c->stmt[ST_SET_DIRTY], 2, 1);
		ret = cache_run(c, ST_SET_DIRTY, "mark an item");
	}
	if (ret == 0 && !changed)
		ret = -ENOENT;
	ret = cache_finish(c, ret);
out_unlock:
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int cache_set_dirty(struct cache *c, uint64_t ino, int dirty)
{
	int ret;

	pthread_mutex_lock(&c->lock);
	sqlite3_bind_int64(c->stmt[ST_SET_DIRTY], 1, (sqlite3_int64)ino);
	sqlite3_bind_int(c->stmt[ST_SET_DIRTY], 2, dirty ? 1 : 0);
	ret = cache_run(c, ST_SET_DIRTY, "mark an item");
	if (ret == 0 && sqlite3_changes(c->db) == 0)
		ret = -ENOENT;
	pthread_mutex_unlock(&c->lock);
	return ret;
}

static int update_remote_locked(struct cache *c, uint64_t ino, const struct drive_item *item,
				int clear_dirty)
{
	sqlite3_stmt *st = c->stmt[ST_UPDATE_REMOTE];
	char *id = NULL;
	int is_dir, ret = cache_kind(c, ino, &is_dir, &id);

	if (ret == 0 && item->id && strcmp(item->id, id) != 0)
		ret = set_id_locked(c, ino, item->id);
	free(id);
	if (ret < 0)
		return ret;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
	cache_bind_text(st, 2, item->etag);
	cache_bind_text(st, 3, item->ctag);
	cache_bind_text(st, 4, item->qxhash);
	sqlite3_bind_int64(st, 5, item->size > 0 ? item->size : 0);
	sqlite3_bind_int64(st, 6, (sqlite3_int64)item->mtime.tv_sec);
	sqlite3_bind_int64(st, 7, item->mtime.tv_nsec);
	sqlite3_bind_int(st, 8, clear_dirty ? 1 : 0);
	return cache_run(c, ST_UPDATE_REMOTE, "store an upload's result");
}

int cache_update_remote(struct cache *c, uint64_t ino, const struct drive_item *item,
			int clear_dirty)
{
	int ret;

	if (!item || ino == CACHE_ROOT_INO)
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	ret = cache_begin(c);
	if (ret == 0)
		ret = cache_finish(c, update_remote_locked(c, ino, item, clear_dirty));
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* Copy up to CACHE_LIST_BATCH dirty or local items after after_ino into batch. */
static int dirty_batch(struct cache *c, uint64_t after_ino, struct cache_entry *batch, size_t *n)
{
	sqlite3_stmt *st = c->stmt[ST_LIST_DIRTY];
	int ret;

	pthread_mutex_lock(&c->lock);
	sqlite3_bind_int64(st, 1, (sqlite3_int64)after_ino);
	sqlite3_bind_int(st, 2, CACHE_LIST_BATCH);
	ret = cache_fetch_batch(c, ST_LIST_DIRTY, "list local changes", batch, n);
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int cache_list_dirty(struct cache *c, cache_entry_fn fn, void *ctx)
{
	struct cache_entry batch[CACHE_LIST_BATCH];
	uint64_t after_ino = 0;

	for (;;) {
		size_t n;
		int ret = dirty_batch(c, after_ino, batch, &n);

		if (ret < 0)
			return ret;
		ret = cache_hand_batch(batch, n, fn, ctx, &after_ino);
		if (ret != 0 || n < CACHE_LIST_BATCH)
			return ret;
	}
}
