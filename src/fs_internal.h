/*
 * fs_internal.h - what fs.c (reading side, ops table), fs_write.c (file
 * content) and fs_names.c (operations on names) share.  Not an API for
 * other modules.
 *
 * Open files: fi->fh is a struct fs_file.  A file open for writing also has
 * a writer record in fs_state (one per inode, counted), holding the local
 * size and modification time while writes go on: getattr must show them at
 * once, and they reach the cache only at flush, so a write costs no SQLite
 * transaction.
 */
#ifndef ODFS_FS_INTERNAL_H
#define ODFS_FS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include "cache.h"
#include "fs.h"

#define TAG_BUCKETS      256
#define WRITER_BUCKETS   64
#define RECENT_SLOTS     64            /* files whose content was written here lately */
#define LIST_LOG_SLOTS   64            /* folders whose listing failure was logged lately */
#define ALIAS_SLOTS      64            /* files renamed through another spelling lately */
#define FS_PATH_MAX      1024          /* buffer for paths in messages */

/* A folder listing in flight: later callers wait for it instead of listing again. */
struct listing {
	struct listing *next;
	uint64_t ino;
	int done, rc;
	unsigned waiters;             /* the last one out frees a done listing */
};

/* The version tag a file had when it was last opened (decides keep_cache). */
struct open_tag {
	struct open_tag *next;
	uint64_t ino;
	char *tag;
};

/* An inode open for writing: its local size and time, newer than the cache's. */
struct fs_writer {
	struct fs_writer *next;
	uint64_t ino;
	unsigned nopen;               /* write handles on ino */
	int64_t size;                 /* local size as content.c sees it */
	struct timespec mtime;
};

/*
 * An inode with open handles: through any of them an inode unlinked or
 * replaced while open is still served (POSIX keeps such a file usable
 * until its last close; its cache row is gone by then).
 */
struct fs_opened {
	struct fs_opened *next;
	uint64_t ino;
	struct fs_file *files;        /* chained by fs_file.next_open */
};

struct fs_state {
	pthread_mutex_t lock;
	pthread_cond_t listed;                /* lock: some listing finished */
	struct listing *listings;             /* lock */
	struct open_tag *tags[TAG_BUCKETS];   /* lock */
	struct fs_writer *writers[WRITER_BUCKETS];  /* lock */
	struct fs_opened *opened[WRITER_BUCKETS];   /* lock */
	time_t quota_at;                      /* lock: last quota refresh (or attempt) */
	struct {
		uint64_t ino;
		time_t at;
	} list_logged[LIST_LOG_SLOTS];        /* lock: direct-mapped by inode */
	int quota_busy;                       /* lock: a refresh is running */
	struct {
		uint64_t ino;
		time_t at;
	} recent[RECENT_SLOTS];               /* lock: direct-mapped by inode */
	uint64_t alias_moved[ALIAS_SLOTS];    /* lock: direct-mapped by inode */
};

/* fi->fh of every open file. */
struct fs_file {
	struct content_file *cf;
	int writable;                 /* opened for writing: has a writer record */
	atomic_int changed;           /* written or truncated since the last commit */
	atomic_int refs;              /* the kernel's, plus borrowers' (fs_write.c) */
	uint64_t ino;
	struct timespec mtime;        /* at open, or set since: shown once unlinked */
	struct fs_file *next_open;    /* fs_state lock: the other handles on ino */
};

static inline struct fs_file *fs_file_of(const struct fuse_file_info *fi)
{
	return (struct fs_file *)(uintptr_t)fi->fh;
}

struct fs_context *fs_ctx(fuse_req_t req);
void fs_reply_failure(fuse_req_t req, int rc);
/* -ESTALE for -ENOENT: an inode gone, reached through a stale dentry (fs.c). */
int fs_stale(int rc);
double fs_timeout(const struct fs_context *ctx);
/* err when set, else the text for rc (into buf). */
const char *fs_error_text(int rc, const char *err, char *buf, size_t size);
/* The path of ino for messages ("/" for the root); best effort. */
void fs_path_of(struct fs_context *ctx, uint64_t ino, char *buf, size_t size);
/* The path of name in folder parent, for messages. */
void fs_child_path(struct fs_context *ctx, uint64_t parent, const char *name, char *buf,
		   size_t size);

/* Attributes of e, with the local size and time of an inode open for writing. */
void fs_fill_attr(struct fs_context *ctx, const struct cache_entry *e, struct stat *st);
void fs_fill_entry(struct fs_context *ctx, const struct cache_entry *e,
		   struct fuse_entry_param *ep);

/* Make dir's cached children no older than dir_ttl (see fs.c). */
int fs_refresh_dir(struct fs_context *ctx, const struct cache_entry *dir);
/* 1 when ino's tag is the one of its last open; records tag. */
int fs_tag_unchanged(struct fs_state *st, uint64_t ino, const char *tag);

/* Writer records (fs_handles.c). */
/*
 * Count one more write handle on ino.  A new record starts from size and
 * mtime; an existing one keeps its newer values unless reset (O_TRUNC).
 */
int fs_writer_get(struct fs_state *st, uint64_t ino, int64_t size, const struct timespec *mtime,
		  int reset);
void fs_writer_put(struct fs_state *st, uint64_t ino);
/* Update an existing record (NULL leaves a field); no-op without one. */
void fs_writer_set(struct fs_state *st, uint64_t ino, const int64_t *size,
		   const struct timespec *mtime);
/* 1 and the values if ino is open for writing. */
int fs_writer_peek(struct fs_state *st, uint64_t ino, int64_t *size, struct timespec *mtime);
void fs_writers_free(struct fs_state *st);
void fs_opened_free(struct fs_state *st);
/*
 * 1 if ino's content was committed here within the last seconds: its bytes
 * are almost surely all in the content cache (fs_names.c's rename uses it).
 */
int fs_written_lately(struct fs_state *st, uint64_t ino, time_t seconds);
/*
 * File ino was renamed through another spelling of its name: the kernel
 * may still hold a dentry of the stored spelling in the old folder,
 * pointing at ino.  The next open of ino is answered -ESTALE once
 * (fs_alias_take), so the kernel looks its path up again and drops that
 * dentry; an open through the right path simply succeeds on the retry.
 */
void fs_alias_note(struct fs_state *st, uint64_t ino);
int fs_alias_take(struct fs_state *st, uint64_t ino);

/* Open handles (fs_handles.c): h, new with one reference, is open on ino. */
int fs_opened_add(struct fs_state *st, uint64_t ino, struct fs_file *h);
/* h is closing: it no longer counts nor serves ino. */
void fs_opened_remove(struct fs_state *st, struct fs_file *h);
/* 1 while ino has open handles. */
int fs_is_open(struct fs_state *st, uint64_t ino);
/* A handle open on ino, with a reference for the caller (NULL if none). */
struct fs_file *fs_handle_borrow(struct fs_state *st, uint64_t ino);
/* 1 while a handle on ino holds changes not yet committed. */
int fs_commit_pending(struct fs_state *st, uint64_t ino);
/* ino's content was just committed (for fs_written_lately). */
void fs_note_written(struct fs_state *st, uint64_t ino);
/* Drop a reference to h; the last one closes it. */
void fs_file_put(struct fs_context *ctx, struct fs_file *h);
/* The kernel is done with h (release, or an open it never saw). */
void fs_file_close(struct fs_context *ctx, struct fs_file *h);
/*
 * Attributes and setattr of an inode whose row is gone (unlinked or
 * replaced while open), served from fi's handle or another one open on
 * ino: -ENOENT when there is none.
 */
int fs_orphan_attr(struct fs_context *ctx, uint64_t ino, struct fuse_file_info *fi,
		   struct stat *st);
int fs_orphan_setattr(struct fs_context *ctx, uint64_t ino, const struct stat *attr,
		      int to_set, struct fuse_file_info *fi, struct stat *st);

/* Shared helpers of fs_write.c. */
struct timespec fs_now(void);
/* One line per failure: a warning for answers users cause, else an error. */
void fs_log_failure(const char *what, const char *path, const char *to, int rc,
		    const char *err);
/* fs_log_failure() for ino, named by its path. */
void fs_log_ino_failure(struct fs_context *ctx, const char *what, uint64_t ino, int rc,
			const char *err);
/* Commit ino's upload journal row (-EROFS without an upload queue). */
int fs_queue_upload(struct fs_context *ctx, uint64_t ino);
/* An item is gone here: no upload, no content, and no row when remove_row. */
void fs_drop_item(struct fs_context *ctx, const struct cache_entry *e, int remove_row);

/* Shared helpers of fs_names.c. */
/*
 * -EINVAL (logged with the rule) when OneDrive would refuse name in folder
 * parent: a forbidden name, or a path of 400 characters or more.  what and
 * old_path (NULL unless renaming) make the message.
 */
int fs_check_new_name(struct fs_context *ctx, uint64_t parent, const char *name,
		      const char *what, const char *old_path);
/* Folder ino from the cache, its listing no older than dir_ttl (caller releases). */
int fs_fresh_dir(struct fs_context *ctx, uint64_t ino, struct cache_entry *dir);
/* 0 when folder dir (listed first if stale) has no children, else -ENOTEMPTY. */
int fs_check_empty(struct fs_context *ctx, const struct cache_entry *dir);
/* fuse_reply_entry with ino's current attributes. */
void fs_reply_entry(fuse_req_t req, struct fs_context *ctx, uint64_t ino);

/*
 * fs.c: the start of every open: ino's entry into *e (caller releases) and a
 * zeroed handle into *h (caller frees until opened); -EISDIR, -EOPNOTSUPP
 * (package), -ESTALE (just replaced), -ENOMEM or a cache error, and then
 * nothing to release.
 */
int fs_open_begin(struct fs_context *ctx, fuse_ino_t ino, struct cache_entry *e,
		  struct fs_file **h);
/* fs_write.c: open with a write mode or O_TRUNC. */
void fs_open_write(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* Operations implemented in fs_write.c and fs_names.c. */
void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi);
void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	      struct fuse_file_info *fi);
void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi);
void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
	       const char *newname, unsigned int flags);
void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
		  struct fuse_file_info *fi);

/* fs_xattr.c: the user.onedrive.* attributes of every item. */
void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		 size_t size, int flags);
void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);
/* Reply with len bytes of data the xattr way: size 0 asks for the length only. */
void fs_reply_xattr_data(fuse_req_t req, const char *data, size_t len, size_t size);

/* fs_features.c: versions, restore, copy and link attributes (see its header). */
/* 1 when name is one of its attributes (the request is answered), else 0. */
int fs_feature_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
int fs_feature_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size);
void fs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			struct fuse_file_info *fi_out, size_t len, int flags);

#endif
