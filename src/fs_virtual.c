/*
 * fs_virtual.c - folders of the mount that are not on the drive, answered
 * before fs.c's operations see a request: the trash folder of file managers
 * here, the versions view in fs_versions.c.
 *
 * "Move to Trash" (gio trash, Nautilus, Thunar...) on a mount without the
 * home trash looks for $top/.Trash-$uid, makes files/ and info/ in it,
 * writes info/NAME.trashinfo, then rename()s the item into files/.  OneDrive
 * has its own recycle bin, so nothing of that reaches the drive: the folder
 * `.Trash-UID` at the mount root always exists here (any UID; shown owned
 * by the mount's user, hidden from listings, empty), info files are
 * accepted and their bytes dropped, and a rename into files/ is a DELETE of
 * the item, which the service keeps in the recycle bin.  Restoring is done
 * from OneDrive's recycle bin (web or app).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include "cache.h"
#include "config.h"
#include "fs.h"
#include "fs_internal.h"
#include "fs_virtual.h"
#include "graph.h"
#include "log.h"

#define TRASH_DIR    (FSV_TRASH_BIT | 1)   /* /.Trash-UID */
#define TRASH_INFO   (FSV_TRASH_BIT | 2)   /* /.Trash-UID/info */
#define TRASH_FILES  (FSV_TRASH_BIT | 3)   /* /.Trash-UID/files */
#define TRASH_NOTE   (FSV_TRASH_BIT | 0x100)  /* first inode of an info file */
#define DROP_BATCH   256                   /* children collected per listing call */

static const struct fuse_lowlevel_ops *real_ops;
static struct fuse_lowlevel_ops wrapped_ops;
static atomic_uint_fast64_t next_note = TRASH_NOTE;

static int is_trash(uint64_t ino)
{
	return (ino & FSV_TRASH_BIT) != 0;
}

static int is_virtual(uint64_t ino)
{
	return is_trash(ino) || fsv_is_versions(ino);
}

/* ".Trash-" and 1 to 10 digits: the per-user trash of the freedesktop.org spec. */
static int is_trash_name(const char *name)
{
	size_t n;

	if (strncmp(name, ".Trash-", 7) != 0)
		return 0;
	n = strspn(name + 7, "0123456789");
	return n > 0 && n <= 10 && name[7 + n] == '\0';
}

/* A name at the mount root that the virtual folders own. */
static int is_reserved(fuse_ino_t parent, const char *name)
{
	return parent == CACHE_ROOT_INO &&
	       (is_trash_name(name) || strcmp(name, FSV_VERSIONS_DIR) == 0);
}

static void trash_attr(struct fs_context *ctx, uint64_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = ino >= TRASH_NOTE ? S_IFREG | 0600 : S_IFDIR | 0700;
	st->st_nlink = ino >= TRASH_NOTE ? 1 : 2;
	st->st_uid = ctx->uid;   /* gio wants the trash owned by its user */
	st->st_gid = ctx->gid;
	st->st_blksize = 4096;
	clock_gettime(CLOCK_REALTIME, &st->st_mtim);
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

/* Entries of virtual trash inodes are not cached: every lookup asks again. */
static void reply_trash_entry(fuse_req_t req, uint64_t ino)
{
	struct fuse_entry_param ep;

	memset(&ep, 0, sizeof(ep));
	ep.ino = ino;
	trash_attr(fs_ctx(req), ino, &ep.attr);
	fuse_reply_entry(req, &ep);
}

static void reply_negative(fuse_req_t req)
{
	struct fuse_entry_param ep;

	memset(&ep, 0, sizeof(ep));
	fuse_reply_entry(req, &ep);
}

/* The error for changing something inside the virtual folders. */
static int refusal(uint64_t ino)
{
	return fsv_is_versions(ino) ? EROFS : EPERM;
}

/* ---- moving to the recycle bin ------------------------------------------ */

struct ino_batch {
	uint64_t ino[DROP_BATCH];
	size_t n;
};

static int collect_ino(void *vctx, const struct cache_entry *e)
{
	struct ino_batch *b = vctx;

	if (b->n == DROP_BATCH)
		return 1;
	b->ino[b->n++] = e->ino;
	return 0;
}

/* Forget the uploads and cached bytes below folder dir (its rows go with it). */
static void drop_subtree(struct fs_context *ctx, uint64_t dir, unsigned depth)
{
	struct ino_batch *b;
	uint64_t after = 0;

	if (depth > 256 || !(b = malloc(sizeof(*b))))
		return;
	do {
		b->n = 0;
		if (cache_list_children(ctx->cache, dir, after, collect_ino, b) < 0)
			break;
		for (size_t i = 0; i < b->n; i++) {
			struct cache_entry e;

			if (cache_get(ctx->cache, b->ino[i], &e))
				continue;
			if (e.item.is_dir)
				drop_subtree(ctx, e.ino, depth + 1);
			fs_drop_item(ctx, &e, 0);
			cache_entry_release(&e);
		}
		if (b->n)
			after = b->ino[b->n - 1];
	} while (b->n == DROP_BATCH);
	free(b);
}

/* name in folder parent goes to OneDrive's recycle bin (a DELETE) and leaves the cache. */
static int trash_item(struct fs_context *ctx, uint64_t parent, const char *name, char **err)
{
	struct cache_entry dir, e;
	int rc;

	rc = fs_fresh_dir(ctx, parent, &dir);
	if (rc)
		return rc;
	cache_entry_release(&dir);
	rc = cache_lookup(ctx->cache, parent, name, &e);
	if (rc)
		return rc;
	if (e.ino == CACHE_ROOT_INO) {
		rc = -EBUSY;
		goto out_release;
	}
	if (!e.is_local) {
		rc = graph_delete_item(ctx->graph, e.item.id, err);
		if (rc == -ENOENT)   /* gone already is just as good */
			rc = 0;
	}
	if (rc == 0) {
		if (e.item.is_dir)
			drop_subtree(ctx, e.ino, 0);
		fs_drop_item(ctx, &e, 1);
	}
out_release:
	cache_entry_release(&e);
	return rc;
}

/* ---- the wrapped operations --------------------------------------------- */

static void v_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (parent == CACHE_ROOT_INO && is_trash_name(name)) {
		reply_trash_entry(req, TRASH_DIR);
	} else if (parent == TRASH_DIR && strcmp(name, "info") == 0) {
		reply_trash_entry(req, TRASH_INFO);
	} else if (parent == TRASH_DIR && strcmp(name, "files") == 0) {
		reply_trash_entry(req, TRASH_FILES);
	} else if (is_trash(parent)) {
		reply_negative(req);   /* info files are write-only, files/ is always empty */
	} else if ((parent == CACHE_ROOT_INO && strcmp(name, FSV_VERSIONS_DIR) == 0) ||
		   fsv_is_versions(parent)) {
		fsv_versions_lookup(req, parent, name);
	} else {
		real_ops->lookup(req, parent, name);
	}
}

static void v_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	if (is_trash(ino)) {
		trash_attr(fs_ctx(req), ino, &st);
		fuse_reply_attr(req, &st, 0);
	} else if (fsv_is_versions(ino)) {
		fsv_versions_getattr(req, ino);
	} else {
		real_ops->getattr(req, ino, fi);
	}
}

static void v_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		      struct fuse_file_info *fi)
{
	struct stat st;

	if (is_trash(ino)) {
		/* chmod of the trash or truncating an info file: nothing to keep */
		trash_attr(fs_ctx(req), ino, &st);
		fuse_reply_attr(req, &st, 0);
	} else if (fsv_is_versions(ino)) {
		fuse_reply_err(req, EROFS);
	} else {
		real_ops->setattr(req, ino, attr, to_set, fi);
	}
}

static void v_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	if (is_reserved(parent, name) ||
	    (parent == TRASH_DIR && (!strcmp(name, "info") || !strcmp(name, "files"))))
		fuse_reply_err(req, EEXIST);   /* they always exist */
	else if (is_virtual(parent))
		fuse_reply_err(req, refusal(parent));
	else
		real_ops->mkdir(req, parent, name, mode);
}

static void v_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		    dev_t rdev)
{
	if (is_reserved(parent, name))
		fuse_reply_err(req, EEXIST);
	else if (is_virtual(parent))
		fuse_reply_err(req, refusal(parent));
	else
		real_ops->mknod(req, parent, name, mode, rdev);
}

static void v_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     struct fuse_file_info *fi)
{
	struct fuse_entry_param ep;

	if (parent == TRASH_INFO) {
		/* a .trashinfo (or gio's temporary copy of one): bytes dropped */
		memset(&ep, 0, sizeof(ep));
		ep.ino = atomic_fetch_add(&next_note, 1);
		trash_attr(fs_ctx(req), ep.ino, &ep.attr);
		fi->fh = 0;
		fi->direct_io = 1;
		fuse_reply_create(req, &ep, fi);
	} else if (is_reserved(parent, name)) {
		fuse_reply_err(req, EEXIST);
	} else if (is_virtual(parent)) {
		fuse_reply_err(req, refusal(parent));
	} else {
		real_ops->create(req, parent, name, mode, fi);
	}
}

static void v_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (parent == TRASH_INFO)
		fuse_reply_err(req, 0);   /* gio's clean-up after a failed move */
	else if (is_reserved(parent, name))
		fuse_reply_err(req, EISDIR);
	else if (is_virtual(parent))
		fuse_reply_err(req, parent == TRASH_FILES ? ENOENT : refusal(parent));
	else
		real_ops->unlink(req, parent, name);
}

static void v_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (is_reserved(parent, name) || parent == TRASH_DIR)
		fuse_reply_err(req, EBUSY);
	else if (is_virtual(parent))
		fuse_reply_err(req, refusal(parent));
	else
		real_ops->rmdir(req, parent, name);
}

static void v_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		     const char *newname, unsigned int flags)
{
	struct fs_context *ctx = fs_ctx(req);
	char path[FS_PATH_MAX], *err = NULL;
	int rc;

	if (newparent == TRASH_FILES && !is_virtual(parent) && !is_reserved(parent, name)) {
		rc = trash_item(ctx, parent, name, &err);
		if (rc) {
			fs_child_path(ctx, parent, name, path, sizeof(path));
			fs_log_failure("move to the recycle bin", path, NULL, rc, err);
		}
		free(err);
		fs_reply_failure(req, rc);
	} else if (parent == TRASH_INFO && newparent == TRASH_INFO) {
		fuse_reply_err(req, 0);   /* gio writes the .trashinfo through a temporary file */
	} else if (is_virtual(parent) || is_virtual(newparent)) {
		fuse_reply_err(req, refusal(is_virtual(parent) ? parent : newparent));
	} else if (is_reserved(parent, name) || is_reserved(newparent, newname)) {
		fuse_reply_err(req, EPERM);
	} else {
		real_ops->rename(req, parent, name, newparent, newname, flags);
	}
}

static void v_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	if (is_virtual(ino) || is_virtual(newparent) || is_reserved(newparent, newname))
		fuse_reply_err(req, EPERM);
	else
		real_ops->link(req, ino, newparent, newname);
}

static void v_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	if (is_virtual(parent) || is_reserved(parent, name))
		fuse_reply_err(req, EPERM);
	else
		real_ops->symlink(req, link, parent, name);
}

static void v_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino >= TRASH_NOTE && is_trash(ino)) {
		fi->fh = 0;
		fi->direct_io = 1;
		fuse_reply_open(req, fi);
	} else if (is_trash(ino)) {
		fuse_reply_err(req, EISDIR);
	} else if (fsv_is_versions(ino)) {
		fsv_versions_open(req, ino, fi);
	} else {
		real_ops->open(req, ino, fi);
	}
}

static void v_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	if (is_trash(ino))
		fuse_reply_buf(req, NULL, 0);
	else if (fsv_is_versions(ino))
		fsv_versions_read(req, ino, size, off, fi);
	else
		real_ops->read(req, ino, size, off, fi);
}

static void v_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	if (is_trash(ino))
		fuse_reply_write(req, size);
	else if (fsv_is_versions(ino))
		fuse_reply_err(req, EBADF);
	else
		real_ops->write(req, ino, buf, size, off, fi);
}

static void v_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (is_virtual(ino))
		fuse_reply_err(req, 0);
	else
		real_ops->flush(req, ino, fi);
}

static void v_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (is_trash(ino))
		fuse_reply_err(req, 0);
	else if (fsv_is_versions(ino))
		fsv_versions_release(req, ino, fi);
	else
		real_ops->release(req, ino, fi);
}

static void v_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	if (is_virtual(ino))
		fuse_reply_err(req, 0);
	else
		real_ops->fsync(req, ino, datasync, fi);
}

static void v_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			struct fuse_file_info *fi)
{
	if (is_virtual(ino))
		fuse_reply_err(req, EOPNOTSUPP);
	else
		real_ops->fallocate(req, ino, mode, offset, length, fi);
}

static void v_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			      struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			      struct fuse_file_info *fi_out, size_t len, int flags)
{
	if (is_virtual(ino_in) || is_virtual(ino_out))
		fuse_reply_err(req, EXDEV);   /* cp copies the bytes itself */
	else
		real_ops->copy_file_range(req, ino_in, off_in, fi_in, ino_out, off_out, fi_out,
					  len, flags);
}

static void v_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (is_trash(ino) && ino >= TRASH_NOTE) {
		fuse_reply_err(req, ENOTDIR);
	} else if (is_trash(ino)) {
		fi->fh = 0;
		fuse_reply_open(req, fi);
	} else if (fsv_is_versions(ino)) {
		fsv_versions_opendir(req, ino, fi);
	} else {
		real_ops->opendir(req, ino, fi);
	}
}

/* The trash folders list empty: "." and ".." only. */
static void trash_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off)
{
	char buf[256];
	size_t pos = 0, need;
	struct stat st;

	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFDIR;
	if (size > sizeof(buf))
		size = sizeof(buf);
	if (off < 1) {
		st.st_ino = ino;
		need = fuse_add_direntry(req, buf + pos, size - pos, ".", &st, 1);
		if (need <= size - pos)
			pos += need;
	}
	if (off < 2 && pos > 0) {
		st.st_ino = ino == TRASH_DIR ? CACHE_ROOT_INO : TRASH_DIR;
		need = fuse_add_direntry(req, buf + pos, size - pos, "..", &st, 2);
		if (need <= size - pos)
			pos += need;
	}
	fuse_reply_buf(req, buf, pos);
}

static void v_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	if (is_trash(ino))
		trash_readdir(req, ino, size, off);
	else if (fsv_is_versions(ino))
		fsv_versions_readdir(req, ino, size, off, 0);
	else
		real_ops->readdir(req, ino, size, off, fi);
}

static void v_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	if (is_trash(ino))
		trash_readdir(req, ino, size, off);   /* "." and ".." carry no entry anyway */
	else if (fsv_is_versions(ino))
		fsv_versions_readdir(req, ino, size, off, 1);
	else
		real_ops->readdirplus(req, ino, size, off, fi);
}

static void v_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (is_virtual(ino))
		fuse_reply_err(req, 0);
	else
		real_ops->releasedir(req, ino, fi);
}

static void v_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		       size_t size, int flags)
{
	if (is_virtual(ino))
		fuse_reply_err(req, refusal(ino));
	else
		real_ops->setxattr(req, ino, name, value, size, flags);
}

static void v_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	if (is_virtual(ino))
		fuse_reply_err(req, ENODATA);
	else
		real_ops->getxattr(req, ino, name, size);
}

static void v_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	if (is_virtual(ino)) {
		if (size == 0)
			fuse_reply_xattr(req, 0);
		else
			fuse_reply_buf(req, NULL, 0);
	} else {
		real_ops->listxattr(req, ino, size);
	}
}

static void v_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	if (is_virtual(ino))
		fuse_reply_err(req, refusal(ino));
	else
		real_ops->removexattr(req, ino, name);
}

const struct fuse_lowlevel_ops *fs_virtual_ops(const struct fuse_lowlevel_ops *real)
{
	real_ops = real;
	wrapped_ops = *real;
	wrapped_ops.lookup = v_lookup;
	wrapped_ops.getattr = v_getattr;
	wrapped_ops.setattr = v_setattr;
	wrapped_ops.mkdir = v_mkdir;
	wrapped_ops.mknod = v_mknod;
	wrapped_ops.create = v_create;
	wrapped_ops.unlink = v_unlink;
	wrapped_ops.rmdir = v_rmdir;
	wrapped_ops.rename = v_rename;
	wrapped_ops.link = v_link;
	wrapped_ops.symlink = v_symlink;
	wrapped_ops.open = v_open;
	wrapped_ops.read = v_read;
	wrapped_ops.write = v_write;
	wrapped_ops.flush = v_flush;
	wrapped_ops.release = v_release;
	wrapped_ops.fsync = v_fsync;
	wrapped_ops.fallocate = v_fallocate;
	wrapped_ops.copy_file_range = v_copy_file_range;
	wrapped_ops.opendir = v_opendir;
	wrapped_ops.readdir = v_readdir;
	wrapped_ops.readdirplus = v_readdirplus;
	wrapped_ops.releasedir = v_releasedir;
	wrapped_ops.setxattr = v_setxattr;
	wrapped_ops.getxattr = v_getxattr;
	wrapped_ops.listxattr = v_listxattr;
	wrapped_ops.removexattr = v_removexattr;
	return &wrapped_ops;
}
