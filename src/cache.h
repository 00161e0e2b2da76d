/*
 * cache.h - the metadata cache: SQLite (WAL), keyed by Graph item id.
 *
 * Every item ever seen gets an inode number (its row id), stable across
 * remounts; the drive root is always FUSE_ROOT_ID (1).  Lookups by name are
 * case-insensitive like OneDrive (names.c folds).  A folder remembers when
 * its children were last fetched (listed_at) so a remount lists
 * already-seen folders with no request.
 *
 * One connection behind one mutex: all functions are thread-safe.  Entries
 * handed out are copies the caller owns (cache_entry_release()).  Functions
 * return 0 or -errno (-ENOENT for a missing row, -EINVAL for a bad argument,
 * -EIO (-ENOSPC, -ENOMEM) for SQLite failures, which cache.c logs itself
 * with SQLite's message: callers need not log them again).
 *
 * Inode numbers are never reused for another id within one database, even
 * after the item was removed (the kernel may still hold the old number).
 * download_url is never stored (it expires); entries come back with
 * download_url NULL, is_root set for inode 1 and parent_id filled in.
 */
#ifndef ODFS_CACHE_H
#define ODFS_CACHE_H

#include <stdint.h>
#include "item.h"

#define CACHE_ROOT_INO 1

struct cache;

struct cache_entry {
	uint64_t ino;
	uint64_t parent_ino;    /* 0 for the root */
	int64_t listed_at;      /* folders: unix time children were fetched, 0 never */
	int dirty;              /* local content or times not yet on the service */
	int is_local;           /* created here, not on the service yet (id "local:...") */
	struct drive_item item; /* owned */
};

void cache_entry_release(struct cache_entry *e);

/*
 * Open or create the database at path (its folder must exist).  A damaged
 * file or an unknown schema is replaced by an empty cache (logged).  On
 * failure *err (if err is not NULL) receives a malloc'd message.
 */
int cache_open(const char *path, struct cache **out, char **err);
void cache_close(struct cache *c);

/*
 * Record the drive root as inode 1; call it once after cache_open(), before
 * anything else.  If the database belonged to another drive (drive_id
 * differs from the one stored; personal ids compare case-insensitively and
 * ignoring dropped leading zeros), items and meta are emptied first.
 * listed_at of an already-known root is kept.
 */
int cache_set_root(struct cache *c, const char *drive_id, const struct drive_item *root);

int cache_get(struct cache *c, uint64_t ino, struct cache_entry *out);
int cache_get_by_id(struct cache *c, const char *id, struct cache_entry *out);
/* Case-insensitive lookup of name in folder parent_ino (lowest inode if several). */
int cache_lookup(struct cache *c, uint64_t parent_ino, const char *name, struct cache_entry *out);

/*
 * Insert or update one item (matched by id; its parent is found by
 * item->parent_id and must already be cached, else -ENOENT).  A name held
 * by another item in the same folder (case-insensitively) is taken over:
 * that item is removed with its subtree.  A changed parent_id moves the
 * item (same inode, subtree kept).  An item that is no longer a folder
 * loses its cached children.  listed_at is left as it was (0 for a new
 * item).  item->is_root updates inode 1; deleted items are -EINVAL (use
 * cache_remove).  *ino (if not NULL) receives the inode.
 */
int cache_upsert(struct cache *c, const struct drive_item *item, uint64_t *ino);

/*
 * Make items the complete child list of folder dir_ino in one transaction:
 * remove cached children (and their subtrees) whose ids are not in the
 * list, upsert each item under dir_ino (whatever its parent_id says; items
 * cached elsewhere move here keeping inode and subtree), and set the
 * folder's listed_at.  Names are trusted to be unique (the server's
 * complete list), so there is no takeover within the list.  Items marked
 * deleted are skipped.  -ENOENT if dir_ino is not cached, -ENOTDIR if it
 * is not a folder.  1,000 children take a few milliseconds.
 */
int cache_replace_children(struct cache *c, uint64_t dir_ino, const struct drive_item *items,
			   size_t n, int64_t listed_at);

/*
 * Set a folder's listed_at alone, e.g. 0 to make the next access list it
 * again.  -ENOENT if not cached.
 */
int cache_set_listed_at(struct cache *c, uint64_t dir_ino, int64_t listed_at);

/* Remove an item and its whole subtree (-ENOENT if absent, -EINVAL for the root). */
int cache_remove(struct cache *c, uint64_t ino);

/*
 * Call fn for the children of dir_ino with inode > after_ino, in inode
 * order (stable offsets for readdir), until fn returns non-zero (that value
 * is returned) or the children run out.  The entry is borrowed: valid only
 * during the call.  fn runs without the cache lock (entries are copied a
 * batch at a time), so it may call cache functions.  -ENOENT if dir_ino is
 * not cached, -ENOTDIR if it is not a folder.  New children get higher
 * inodes than all existing ones, so an offset taken earlier stays valid.
 */
typedef int (*cache_entry_fn)(void *ctx, const struct cache_entry *e);
int cache_list_children(struct cache *c, uint64_t dir_ino, uint64_t after_ino,
			cache_entry_fn fn, void *ctx);

/*
 * Small key/value store for drive-wide state (quota, delta link, ...).
 * Keys "drive_id" and "fold_version" are the cache's own.  meta_get stores
 * a malloc'd copy in *value (caller frees); -ENOENT if unset.
 */
int cache_meta_get(struct cache *c, const char *key, char **value);
int cache_meta_set(struct cache *c, const char *key, const char *value);

/* Number of cached items including the root (for statfs and tests), or -errno. */
int64_t cache_count(struct cache *c);

/* ---- Local changes (the write path) ---------------------------------------
 *
 * A file created here lives in the cache under a local id ("local:" + 32 hex
 * digits) until its first upload gives it a real one (cache_set_id keeps the
 * inode).  Dirty items (local content or times newer than the service's) and
 * local items are never removed or overwritten by cache_replace_children()
 * or cache_upsert(): the server does not know them yet.  A listing leaves
 * such an item exactly as it is (name, size, times, tags: the upload
 * updates them through cache_update_remote) and keeps it when absent, and a
 * folder holding one is kept too.  A remote item whose name (folded) a
 * dirty or local item holds in that folder is skipped (the upload meets it
 * as a conflict); cache_upsert() returns -EEXIST for it.  An entry's
 * is_local is derived from the id prefix.
 */

#define CACHE_LOCAL_PREFIX "local:"

/* 1 when id is a local id (an item created here, not on the service yet). */
int cache_id_is_local(const char *id);

/*
 * A new local file or folder named name in parent_ino (-EEXIST if the name is
 * taken case-insensitively, -ENOENT/-ENOTDIR for a bad parent).  *ino
 * receives the inode; *id (if not NULL) a malloc'd copy of the local id.
 * The item starts dirty, size 0, mtime and ctime = mtime (NULL: now).
 * Folders are created with listed_at = now.
 */
int cache_create_local(struct cache *c, uint64_t parent_ino, const char *name, int is_dir,
		       const struct timespec *mtime, uint64_t *ino, char **id);

/*
 * Give ino a new id (its first real one, or the target's on a rename-over).
 * A row still holding that id is removed with its subtree.  Dirty stays.
 */
int cache_set_id(struct cache *c, uint64_t ino, const char *id);

/*
 * Move/rename ino to new_parent_ino/new_name.  An item holding that name
 * there (case-insensitively, other than ino) is removed with its subtree,
 * dirty or not.  -EINVAL for the root or a move into ino's own subtree,
 * -ENOTDIR if new_parent_ino is not a folder.  Dirty and id are unchanged.
 */
int cache_move(struct cache *c, uint64_t ino, uint64_t new_parent_ino, const char *new_name);

/* Set the local size and/or times (NULL leaves a field alone); dirty is unchanged. */
int cache_set_local_attrs(struct cache *c, uint64_t ino, const int64_t *size,
			  const struct timespec *mtime);

/*
 * The same, and when dirty also marks the item dirty, all in one
 * transaction (a close() of a written file: one commit instead of two).
 */
int cache_set_local_change(struct cache *c, uint64_t ino, const int64_t *size,
			   const struct timespec *mtime, int dirty);

int cache_set_dirty(struct cache *c, uint64_t ino, int dirty);

/*
 * Take what the service said after an upload or PATCH: id (when not NULL;
 * as cache_set_id), etag, ctag, qxhash, and size and mtime when clear_dirty
 * or the item is not dirty (a dirty item written again during its upload
 * keeps its local size and time; the tags become its new base).  Name and
 * parent stay as they are here, since the user may have renamed meanwhile.
 * Clears dirty only when clear_dirty.
 */
int cache_update_remote(struct cache *c, uint64_t ino, const struct drive_item *item,
			int clear_dirty);

/*
 * Call fn for every dirty or local item in inode order (recovery after a
 * crash); as cache_list_children, fn runs without the lock.
 */
int cache_list_dirty(struct cache *c, cache_entry_fn fn, void *ctx);

/* ---- Remote changes (delta.c; implemented in cache_delta.c) ----------------
 *
 * A round of root delta applied in one transaction.  What changed comes back
 * so the caller can tell the kernel afterwards, outside the cache lock.
 */

/* One item a round changed (a takeover or removal reports the removed top item). */
struct cache_change {
	uint64_t ino;
	uint64_t old_parent;    /* where it was: 0 (and old_name NULL) for a new item */
	char *old_name;
	uint64_t new_parent;    /* where it is: 0 (and new_name NULL) when removed */
	char *new_name;
	char *id;               /* its id (the content cache's key) */
	int is_dir;
	int content_changed;    /* cTag (else hash, else size and time) differs:
	                           the cached bytes are stale */
};

/* The items are the whole drive (a full enumeration): clean items not among them go. */
#define CACHE_APPLY_COMPLETE 1

/*
 * What the cache held when a round started (a fingerprint per row).  The
 * round's items describe the service at about that moment; a row changed
 * here meanwhile (a rename, an upload that landed, a new or removed item)
 * is newer than the round, so the round leaves it alone: the service
 * reports that item again in the next round.
 */
struct cache_snapshot;
int cache_snapshot_take(struct cache *c, struct cache_snapshot **out);
void cache_snapshot_free(struct cache_snapshot *s);

/*
 * Apply the items of one complete delta round (duplicates already dropped)
 * in one transaction.  Parents go before children whatever the order of
 * items; an item whose parent is neither cached nor in the round (or is
 * not a folder) is skipped.  Deleted items are removed with their subtree;
 * the root item and unchanged items change nothing.  A name held by
 * another clean item in the target folder is taken over (that item goes).
 * Dirty and local items, and folders holding one, are never removed or
 * overwritten, nor is a name one of them holds taken over (the remote item
 * waits for the next round); with before (may be NULL), neither are rows
 * that changed since it was taken.  Every folder with listed_at 0 gets
 * listed_at (when non-zero): delta delivers all their children from now
 * on.  *changes (caller frees with cache_changes_free) receives what
 * changed, *nchanges its length.
 */
int cache_apply_remote_changes(struct cache *c, const struct drive_item *items, size_t n,
			       int flags, int64_t listed_at, const struct cache_snapshot *before,
			       struct cache_change **changes, size_t *nchanges);
void cache_changes_free(struct cache_change *changes, size_t n);

/*
 * Item id was deleted on the service behind the cache's back (the item a
 * create whose answer was lost made, for a file deleted here since): a
 * delta round may have brought it in meanwhile, or may be on its way with
 * it.  Its row goes (unless it holds local changes), and a round whose
 * snapshot was taken before now does not bring it back.  0 or -errno.
 */
int cache_forget_deleted(struct cache *c, const char *id);

#endif
