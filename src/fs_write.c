/*
 * fs_write.c - the FUSE operations that change file content.
 *
 * create() and open() for writing hand the bytes to content.c (the staging
 * area); nothing reaches Graph until close.  flush (every close()) makes
 * the bytes durable and commits the upload journal row before it replies,
 * so a close() that returned is never forgotten; upload.c sends the file
 * in the background.  fsync waits for that upload.  truncate and utimens
 * live here too; the operations on names are in fs_names.c, the records of
 * open handles and writers in fs_handles.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include "cache.h"
#include "content.h"
#include "fs.h"
#include "fs_internal.h"
#include "errmap.h"
#include "graph.h"
#include "journal.h"
#include "log.h"
#include "upload.h"

/* ---- helpers -------------------------------------------------------------- */

static void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

struct timespec fs_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

/*
 * One line per failure.  Answers a user can cause (a name taken, a folder
 * not empty, a quota full) are warnings; failures of the service, the
 * network or the disk are errors.
 */
void fs_log_failure(const char *what, const char *path, const char *to, int rc,
			const char *err)
{
	char ebuf[128];
	const char *why = fs_error_text(rc, err, ebuf, sizeof(ebuf));
	enum log_level level = LOG_LEVEL_ERROR;

	switch (-rc) {
	case ENOENT:
	case EEXIST:
	case ENOTEMPTY:
	case EISDIR:
	case ENOTDIR:
	case EINVAL:
	case EPERM:
	case EACCES:
	case ENOSPC:
	case EDQUOT:
	case ENAMETOOLONG:
		level = LOG_LEVEL_WARN;
	}
	if (to)
		log_msg(level, "cannot %s '%s' to '%s': %s", what, path, to, why);
	else
		log_msg(level, "cannot %s '%s': %s", what, path, why);
}

void fs_log_ino_failure(struct fs_context *ctx, const char *what, uint64_t ino, int rc,
			const char *err)
{
	char path[FS_PATH_MAX];

	fs_path_of(ctx, ino, path, sizeof(path));
	fs_log_failure(what, path, NULL, rc, err);
}

int fs_queue_upload(struct fs_context *ctx, uint64_t ino)
{
	if (!ctx->upload)
		return -EROFS;
	return upload_enqueue(ctx->upload, ino);
}

/* An item is gone here: no upload, no content, no row. */
void fs_drop_item(struct fs_context *ctx, const struct cache_entry *e, int remove_row)
{
	if (ctx->upload)
		upload_forget(ctx->upload, e->ino);
	if (e->item.id && !e->item.is_dir)
		content_discard(ctx->content, e->item.id);
	if (remove_row)
		cache_remove(ctx->cache, e->ino);
}

/* ---- files ------------------------------------------------------------------ */

/* The first change through h: the cache learns the item is dirty (listings keep it). */
static void mark_changed(struct fs_context *ctx, uint64_t ino, struct fs_file *h)
{
	if (atomic_exchange(&h->changed, 1) == 0)
		cache_set_dirty(ctx->cache, ino, 1);
}

/*
 * Make what h changed durable and commit its upload: the promise close()
 * keeps.  The local size and time go to the cache first, so the upload
 * and every later getattr see them.
 */
static int commit(struct fs_context *ctx, uint64_t ino, struct fs_file *h)
{
	struct timespec mtime = fs_now();
	struct cache_entry e;
	int64_t size, ignored;
	int rc;

	if (!atomic_exchange(&h->changed, 0) && !content_file_modified(h->cf))
		return 0;
	/* unlinked while open: its content was discarded, nothing goes up */
	rc = cache_get(ctx->cache, ino, &e);
	if (rc == -ENOENT)
		return 0;
	if (rc == 0)
		cache_entry_release(&e);
	rc = content_flush(h->cf);
	if (rc)
		goto out_failed;
	size = content_file_size(h->cf);
	if (size < 0) {
		rc = (int)size;
		goto out_failed;
	}
	fs_writer_peek(ctx->state, ino, &ignored, &mtime);
	rc = cache_set_local_change(ctx->cache, ino, &size, &mtime, 1);
	if (rc == -ENOENT)
		return 0;   /* deleted while open: nothing to upload */
	if (rc == 0)
		rc = fs_queue_upload(ctx, ino);
	if (rc == 0) {
		fs_note_written(ctx->state, ino);
		return 0;
	}
out_failed:
	atomic_store(&h->changed, 1);   /* release tries again */
	return rc;
}

void fs_file_put(struct fs_context *ctx, struct fs_file *h)
{
	if (atomic_fetch_sub(&h->refs, 1) != 1)
		return;
	content_file_close(h->cf);
	if (h->writable) {
		fs_writer_put(ctx->state, h->ino);
		upload_writer_close(ctx->upload, h->ino);
	}
	free(h);
}

void fs_file_close(struct fs_context *ctx, struct fs_file *h)
{
	fs_opened_remove(ctx->state, h);
	fs_file_put(ctx, h);
}

/* Attributes from handle h alone: its row is gone (unlinked while open). */
static void handle_attr(struct fs_context *ctx, struct fs_file *h, struct stat *st)
{
	struct timespec mtime = h->mtime;
	int64_t size = content_file_size(h->cf);

	fs_writer_peek(ctx->state, h->ino, &size, &mtime);
	memset(st, 0, sizeof(*st));
	st->st_ino = h->ino;
	st->st_mode = S_IFREG | 0644;
	st->st_nlink = 0;
	st->st_uid = ctx->uid;
	st->st_gid = ctx->gid;
	st->st_size = size > 0 ? size : 0;
	st->st_blksize = 4096;
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_mtim = mtime;
	st->st_atim = mtime;
	st->st_ctim = mtime;
}

/* fi's handle, or one borrowed from ino's open handles (put it when borrowed). */
static struct fs_file *orphan_handle(struct fs_context *ctx, uint64_t ino,
				     struct fuse_file_info *fi, int *borrowed)
{
	*borrowed = 0;
	if (fi && fi->fh)
		return fs_file_of(fi);
	*borrowed = 1;
	return fs_handle_borrow(ctx->state, ino);
}

int fs_orphan_attr(struct fs_context *ctx, uint64_t ino, struct fuse_file_info *fi,
		   struct stat *st)
{
	int borrowed;
	struct fs_file *h = orphan_handle(ctx, ino, fi, &borrowed);

	if (!h)
		return -ENOENT;
	handle_attr(ctx, h, st);
	if (borrowed)
		fs_file_put(ctx, h);
	return 0;
}

int fs_orphan_setattr(struct fs_context *ctx, uint64_t ino, const struct stat *attr,
		      int to_set, struct fuse_file_info *fi, struct stat *st)
{
	struct timespec now = fs_now();
	int borrowed, rc = 0;
	struct fs_file *h = orphan_handle(ctx, ino, fi, &borrowed);
	int64_t size = (int64_t)attr->st_size;

	if (!h)
		return -ENOENT;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (!h->writable)
			rc = -EBADF;
		else if (size < 0)
			rc = -EINVAL;
		else
			rc = content_truncate(h->cf, size);
		if (rc == 0) {
			atomic_store(&h->changed, 1);
			h->mtime = now;
			fs_writer_set(ctx->state, ino, &size, &now);
		}
	}
	if (rc == 0 && (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))) {
		h->mtime = to_set & FUSE_SET_ATTR_MTIME_NOW ? now : attr->st_mtim;
		fs_writer_set(ctx->state, ino, NULL, &h->mtime);
		if (!(to_set & FUSE_SET_ATTR_MTIME_NOW))
			upload_times_set(ctx->upload, ino, &h->mtime);
	}
	if (rc == 0)
		handle_attr(ctx, h, st);
	if (borrowed)
		fs_file_put(ctx, h);
	return rc;
}

void fs_open_write(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_context *ctx = fs_ctx(req);
	int truncate = (fi->flags & O_TRUNC) != 0;
	struct timespec now = fs_now();
	struct cache_entry e;
	struct fs_file *h;
	int64_t size;
	int rc;

	rc = fs_open_begin(ctx, ino, &e, &h);
	if (rc) {
		fs_reply_failure(req, rc);
		return;
	}
	/* a listed URL may be stale; content.c asks for a fresh one when it needs bytes */
	free(e.item.download_url);
	e.item.download_url = NULL;
	rc = content_file_open_write(ctx->content, &e.item, truncate, &h->cf);
	if (rc) {
		free(h);
		fs_log_ino_failure(ctx, "open for writing", ino, rc, NULL);
		goto out_release;
	}
	h->writable = 1;
	h->mtime = truncate ? now : e.item.mtime;
	size = content_file_size(h->cf);
	rc = fs_writer_get(ctx->state, ino, size >= 0 ? size : e.item.size,
			   truncate ? &now : &e.item.mtime, truncate);
	if (rc) {
		content_file_close(h->cf);
		free(h);
		goto out_release;
	}
	upload_writer_open(ctx->upload, ino);
	rc = fs_opened_add(ctx->state, ino, h);
	if (rc) {
		fs_file_put(ctx, h);
		goto out_release;
	}
	if (truncate)
		mark_changed(ctx, ino, h);
	fi->keep_cache = !truncate &&
		fs_tag_unchanged(ctx->state, ino, e.item.ctag ? e.item.ctag : e.item.etag);
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(req, fi)) {
		/* interrupted: no release will come */
		commit(ctx, ino, h);
		fs_file_close(ctx, h);
	}
out_release:
	cache_entry_release(&e);
	if (rc)
		fs_reply_failure(req, rc);
}

void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       struct fuse_file_info *fi)
{
	struct fs_context *ctx = fs_ctx(req);
	struct timespec now = fs_now();
	struct fuse_entry_param ep;
	struct drive_item item;
	char path[FS_PATH_MAX];
	struct cache_entry dir, e;
	struct fs_file *h = NULL;
	uint64_t ino = 0;
	char *id = NULL;
	int rc;

	rc = fs_check_new_name(ctx, parent, name, "create", NULL);
	if (rc)
		goto out_reply;
	rc = fs_fresh_dir(ctx, parent, &dir);
	if (rc)
		goto out_log;
	cache_entry_release(&dir);
	rc = cache_create_local(ctx->cache, parent, name, 0, &now, &ino, &id);
	if (rc == -EEXIST) {
		fs_child_path(ctx, parent, name, path, sizeof(path));
		log_warnx("cannot create '%s': the name is taken (OneDrive names ignore case)",
			  path);
		goto out_reply;
	}
	if (rc)
		goto out_log;
	h = calloc(1, sizeof(*h));
	if (!h) {
		rc = -ENOMEM;
		goto out_remove;
	}
	memset(&item, 0, sizeof(item));
	item.id = id;
	item.name = (char *)name;
	item.mtime = now;
	item.ctime_created = now;
	/* a fresh id: its staging file starts empty, no truncate needed */
	rc = content_file_open_write(ctx->content, &item, 0, &h->cf);
	if (rc)
		goto out_remove;
	h->writable = 1;
	h->mtime = now;
	rc = fs_writer_get(ctx->state, ino, 0, &now, 1);
	if (rc) {
		content_file_close(h->cf);
		goto out_remove;
	}
	upload_writer_open(ctx->upload, ino);
	rc = fs_opened_add(ctx->state, ino, h);
	if (rc) {
		fs_file_put(ctx, h);
		h = NULL;
		goto out_remove;
	}
	/* even an empty new file goes up at close */
	atomic_store(&h->changed, 1);
	rc = cache_get(ctx->cache, ino, &e);
	if (rc) {
		fs_file_close(ctx, h);
		h = NULL;
		goto out_remove;
	}
	fs_fill_entry(ctx, &e, &ep);
	cache_entry_release(&e);
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_create(req, &ep, fi)) {
		commit(ctx, ino, h);
		fs_file_close(ctx, h);
	}
	free(id);
	return;

out_remove:
	free(h);
	content_discard(ctx->content, id);
	cache_remove(ctx->cache, ino);
out_log:
	fs_child_path(ctx, parent, name, path, sizeof(path));
	fs_log_failure("create", path, NULL, rc, NULL);
out_reply:
	free(id);
	fs_reply_failure(req, rc);
}

void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
	      struct fuse_file_info *fi)
{
	struct fs_context *ctx = fs_ctx(req);
	struct fs_file *h = fs_file_of(fi);
	struct timespec now = fs_now();
	int64_t len;
	ssize_t n;

	if (!h->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	n = content_write(h->cf, buf, size, off);
	if (n < 0) {
		fs_log_ino_failure(ctx, "write to", ino, (int)n, NULL);
		fs_reply_failure(req, (int)n);
		return;
	}
	mark_changed(ctx, ino, h);
	len = content_file_size(h->cf);
	fs_writer_set(ctx->state, ino, len >= 0 ? &len : NULL, &now);
	fuse_reply_write(req, (size_t)n);
}

/* Commit what h wrote, if it may write; a failure is logged. */
static int save(struct fs_context *ctx, fuse_ino_t ino, struct fs_file *h)
{
	int rc = h->writable ? commit(ctx, ino, h) : 0;

	if (rc)
		fs_log_ino_failure(ctx, "save", ino, rc, NULL);
	return rc;
}

/* Every close(): the changes are durable and queued before close() returns. */
void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_context *ctx = fs_ctx(req);
	struct fs_file *h = fs_file_of(fi);

	fs_reply_failure(req, save(ctx, ino, h));
}

/*
 * The session has ended with files still open: the kernel drops a release
 * it has not sent by then (an unmount right after a close).  Each is closed
 * here as its release would have: bytes written through it are committed and
 * queued, and nothing it holds outlives the mount.
 */
void fs_close_leftovers(struct fs_context *ctx)
{
	struct fs_state *st = ctx->state;
	size_t i;

	if (!st)
		return;
	for (i = 0; i < WRITER_BUCKETS; i++) {
		for (;;) {
			struct fs_file *h = NULL;

			pthread_mutex_lock(&st->lock);
			if (st->opened[i])
				h = st->opened[i]->files;
			pthread_mutex_unlock(&st->lock);
			if (!h)
				break;
			save(ctx, h->ino, h);
			fs_file_close(ctx, h);
		}
	}
}

void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_context *ctx = fs_ctx(req);
	struct fs_file *h = fs_file_of(fi);

	/* writes after the last flush (a shared mapping written back late) */
	save(ctx, ino, h);
	fs_file_close(ctx, h);
	fuse_reply_err(req, 0);
}

/* Waits until the file has landed on OneDrive; its upload error is the answer. */
void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs_context *ctx = fs_ctx(req);
	struct fs_file *h = fi ? fs_file_of(fi) : NULL;
	int rc = 0;

	if (h && h->writable)
		rc = commit(ctx, ino, h);
	if (rc == 0 && ctx->upload)
		rc = upload_wait(ctx->upload, ino);
	if (rc)
		fs_log_ino_failure(ctx, "sync", ino, rc, NULL);
	fs_reply_failure(req, rc);
}

/* truncate(2) with no open handle: a short-lived write handle does the work. */
static int truncate_detached(struct fs_context *ctx, struct cache_entry *e, int64_t size)
{
	struct timespec now = fs_now();
	struct content_file *cf;
	int rc;

	free(e->item.download_url);
	e->item.download_url = NULL;
	rc = content_file_open_write(ctx->content, &e->item, size == 0, &cf);
	if (rc)
		return rc;
	if (size != 0)
		rc = content_truncate(cf, size);
	if (rc == 0)
		rc = content_flush(cf);
	content_file_close(cf);
	if (rc == 0)
		rc = cache_set_local_attrs(ctx->cache, e->ino, &size, &now);
	if (rc == 0)
		rc = cache_set_dirty(ctx->cache, e->ino, 1);
	if (rc == 0)
		rc = fs_queue_upload(ctx, e->ino);
	fs_writer_set(ctx->state, e->ino, &size, &now);
	return rc;
}

static int set_size(struct fs_context *ctx, struct cache_entry *e, int64_t size,
		    struct fs_file *h)
{
	struct timespec now = fs_now();
	int64_t cur;
	int rc;

	if (e->item.is_dir)
		return -EISDIR;
	if (e->item.is_package)
		return -EPERM;
	if (size < 0)
		return -EINVAL;
	if (h && h->writable) {
		rc = content_truncate(h->cf, size);
		if (rc == 0) {
			mark_changed(ctx, e->ino, h);
			fs_writer_set(ctx->state, e->ino, &size, &now);
		}
		return rc;
	}
	cur = e->item.size;
	fs_writer_peek(ctx->state, e->ino, &cur, &now);
	if (size == cur && !e->dirty && !e->is_local)
		return 0;   /* nothing changes: no upload */
	return truncate_detached(ctx, e, size);
}

static int set_mtime_journalled(struct fs_context *ctx, const struct cache_entry *e,
				const struct timespec *mtime, const struct timespec *crtime)
{
	char path[FS_PATH_MAX];
	int rc;

	fs_path_of(ctx, e->ino, path, sizeof(path));
	rc = journal_add_times(ctx->journal, e->item.id, mtime, crtime, path);
	return rc ? rc : cache_set_local_attrs(ctx->cache, e->ino, NULL, mtime);
}

/*
 * utimens: where an upload will carry the time (the file is new, dirty or
 * queued), only the cache changes; otherwise one PATCH.
 */
static int set_mtime(struct fs_context *ctx, struct cache_entry *e, const struct timespec *mtime,
		     char **err)
{
	const struct timespec *crtime = NULL;
	struct drive_item out;
	int rc;

	fs_writer_set(ctx->state, e->ino, NULL, mtime);
	if (e->ino == CACHE_ROOT_INO)
		return 0;   /* the root's time is the service's business */
	if (!e->item.is_dir &&
	    (e->dirty || e->is_local || (ctx->upload && upload_pending(ctx->upload, e->ino)))) {
		/* futimens before close (tar, cp -p): that close stores the time */
		if (fs_commit_pending(ctx->state, e->ino))
			return 0;
		return cache_set_local_attrs(ctx->cache, e->ino, NULL, mtime);
	}
	if (e->item.ctime_created.tv_sec || e->item.ctime_created.tv_nsec)
		crtime = &e->item.ctime_created;
	/* a folder made offline, or the service out of reach: the journal sends it */
	if (e->is_local || journal_wanted(ctx->journal))
		return set_mtime_journalled(ctx, e, mtime, crtime);
	memset(&out, 0, sizeof(out));
	rc = graph_set_times(ctx->graph, e->item.id, mtime, crtime, NULL, &out, err);
	if (rc == 0)
		rc = cache_update_remote(ctx->cache, e->ino, &out, 0);
	drive_item_release(&out);
	if (rc && errmap_is_transport(rc) && ctx->journal) {
		free(*err);
		*err = NULL;
		return set_mtime_journalled(ctx, e, mtime, crtime);
	}
	return rc;
}

void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi)
{
	struct fs_context *ctx = fs_ctx(req);
	struct fs_file *h = fi ? fs_file_of(fi) : NULL;
	char *err = NULL;
	const char *what = "resize";
	struct cache_entry e;
	struct stat st;
	int rc;

	rc = cache_get(ctx->cache, ino, &e);
	if (rc == -ENOENT) {
		/* unlinked or replaced while open: the handle still works */
		rc = fs_orphan_setattr(ctx, ino, attr, to_set, fi, &st);
		if (rc == 0)
			fuse_reply_attr(req, &st, 0);
		else
			fs_reply_failure(req, fs_stale(rc));
		return;
	}
	if (rc) {
		fs_reply_failure(req, rc);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE)
		rc = set_size(ctx, &e, (int64_t)attr->st_size, h);
	/* Access times are not kept by OneDrive; mode and owner are fixed: accepted, ignored. */
	if (rc == 0 && (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))) {
		struct timespec mtime = attr->st_mtim;

		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			mtime = fs_now();
		else
			upload_times_set(ctx->upload, ino, &mtime);
		what = "set the time of";
		if (to_set & FUSE_SET_ATTR_SIZE) {
			/* re-read: the size change made the item dirty */
			cache_entry_release(&e);
			rc = cache_get(ctx->cache, ino, &e);
		}
		if (rc == 0)
			rc = set_mtime(ctx, &e, &mtime, &err);
	}
	/* mode and owner alone change nothing here: e is still current */
	if (rc == 0 && !(to_set & ~(FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
				    FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_CTIME)))
		goto out_reply_attr;
	cache_entry_release(&e);
	if (rc == 0)
		rc = cache_get(ctx->cache, ino, &e);
	if (rc) {
		fs_log_ino_failure(ctx, what, ino, rc, err);
		free(err);
		fs_reply_failure(req, rc);
		return;
	}
out_reply_attr:
	fs_fill_attr(ctx, &e, &st);
	cache_entry_release(&e);
	fuse_reply_attr(req, &st, fs_timeout(ctx));
}

void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
		  struct fuse_file_info *fi)
{
	/* posix_fallocate() falls back to writing zeros */
	fuse_reply_err(req, EOPNOTSUPP);
}

/* ---- mknod ------------------------------------------------------------------ */

/* mknod of a regular file is a create without an open: it goes up at once. */
static int mknod_file(struct fs_context *ctx, uint64_t parent, const char *name, uint64_t *ino)
{
	struct timespec now = fs_now();
	struct content_file *cf;
	struct drive_item item;
	char *id = NULL;
	int rc;

	rc = cache_create_local(ctx->cache, parent, name, 0, &now, ino, &id);
	if (rc)
		return rc;
	memset(&item, 0, sizeof(item));
	item.id = id;
	item.name = (char *)name;
	item.mtime = now;
	rc = content_file_open_write(ctx->content, &item, 1, &cf);
	if (rc == 0) {
		rc = content_flush(cf);
		content_file_close(cf);
	}
	if (rc == 0)
		rc = fs_queue_upload(ctx, *ino);
	if (rc) {
		content_discard(ctx->content, id);
		cache_remove(ctx->cache, *ino);
	}
	free(id);
	return rc;
}

void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct fs_context *ctx = fs_ctx(req);
	char path[FS_PATH_MAX];
	struct cache_entry dir;
	uint64_t ino;
	int rc;

	if (!S_ISREG(mode)) {
		fs_child_path(ctx, parent, name, path, sizeof(path));
		log_warnx("cannot create '%s': special files are not supported on OneDrive", path);
		fuse_reply_err(req, EPERM);
		return;
	}
	rc = fs_check_new_name(ctx, parent, name, "create", NULL);
	if (rc) {
		fs_reply_failure(req, rc);
		return;
	}
	rc = fs_fresh_dir(ctx, parent, &dir);
	if (rc == 0) {
		cache_entry_release(&dir);
		rc = mknod_file(ctx, parent, name, &ino);
	}
	if (rc) {
		fs_child_path(ctx, parent, name, path, sizeof(path));
		fs_log_failure("create", path, NULL, rc, NULL);
		fs_reply_failure(req, rc);
		return;
	}
	fs_reply_entry(req, ctx, ino);
}

