/*
 * fs_names.c - the FUSE operations on names: mkdir, rmdir, unlink, rename.
 *
 * They talk to Graph at once (POST children, DELETE, PATCH) and then update
 * the cache, except for files that exist only here (never uploaded), which
 * change in the cache alone.  A new file renamed over an existing one takes
 * over the target's item id, so its upload becomes a new version of that
 * item (editors save this way).  No lock is held across a Graph call: the
 * kernel serializes operations on one folder, and the cache is the only
 * shared state.  Also: the checks of new names OneDrive would refuse.
 */
#define _GNU_SOURCE     /* RENAME_NOREPLACE */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
#include "names.h"
#include "upload.h"

#define PATH_CHARS_MAX 400    /* OneDrive: the full path must be shorter */
#define PATH_WALK_MAX  4096   /* deeper than this is a broken cache */
#define WRITTEN_LATELY 600    /* seconds a file written here counts as an editor's save */
#define RENAME_POLL_NS 50000000L   /* a target's first upload: checked every 50 ms */
#define RENAME_WAIT_POLLS 600      /* ... for at most 30 s */

/* Code points in a UTF-8 string (what OneDrive's path limit counts). */
static size_t utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

/* Characters of "/a/b/c" for folder ino (0 for the root), as OneDrive counts them. */
static int path_chars(struct fs_context *ctx, uint64_t ino, size_t *out)
{
	struct cache_entry e;
	size_t n = 0, depth = 0;
	int rc;

	while (ino != CACHE_ROOT_INO) {
		if (++depth > PATH_WALK_MAX)
			return -ELOOP;
		rc = cache_get(ctx->cache, ino, &e);
		if (rc)
			return rc;
		n += 1 + utf8_chars(e.item.name ? e.item.name : "");
		ino = e.parent_ino;
		cache_entry_release(&e);
	}
	*out = n;
	return 0;
}

/*
 * -EINVAL (logged: what, the new path, the rule) when OneDrive would refuse
 * name in folder parent: a forbidden name or a path of 400 characters or
 * more.
 */
int fs_check_new_name(struct fs_context *ctx, uint64_t parent, const char *name,
			  const char *what, const char *old_path)
{
	char path[FS_PATH_MAX];
	const char *rule = NULL;
	size_t n = 0;
	int rc;

	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	rc = names_validate(name, &rule);
	if (rc == 0) {
		rc = path_chars(ctx, parent, &n);
		if (rc)
			return rc;
		if (n + 1 + utf8_chars(name) < PATH_CHARS_MAX)
			return 0;
		rule = NULL;
	}
	fs_child_path(ctx, parent, name, path, sizeof(path));
	if (old_path)
		log_warnx("cannot %s '%s' to '%s': %s%s", what, old_path, path,
			  rule ? "the name " : "", rule ? rule :
			  "the path is too long for OneDrive (400 characters or more)");
	else
		log_warnx("cannot %s '%s': %s%s", what, path, rule ? "the name " : "",
			  rule ? rule : "the path is too long for OneDrive (400 characters or more)");
	return -EINVAL;
}

/* The folder ino from the cache, its listing no older than dir_ttl. */
int fs_fresh_dir(struct fs_context *ctx, uint64_t ino, struct cache_entry *dir)
{
	int rc;

	rc = cache_get(ctx->cache, ino, dir);
	if (rc)
		return rc;
	rc = dir->item.is_dir ? fs_refresh_dir(ctx, dir) : -ENOTDIR;
	if (rc)
		cache_entry_release(dir);
	return rc;
}

static int make_content_local(struct fs_context *ctx, const struct cache_entry *src);

/*
 * File e is about to be deleted on the service while still open here: its
 * handles must go on reading it (POSIX), so every byte comes here first.
 */
static void keep_open_content(struct fs_context *ctx, const struct cache_entry *e)
{
	char path[FS_PATH_MAX];
	int rc;

	if (e->item.is_dir || e->is_local || !fs_is_open(ctx->state, e->ino))
		return;
	rc = make_content_local(ctx, e);
	if (rc) {
		fs_path_of(ctx, e->ino, path, sizeof(path));
		fs_log_failure("keep the content of the open file", path, NULL, rc, NULL);
	}
}

static int has_child(void *vctx, const struct cache_entry *e)
{
	return 1;
}

/* 0 when folder dir (listed fresh) has no children, -ENOTEMPTY otherwise. */
int fs_check_empty(struct fs_context *ctx, const struct cache_entry *dir)
{
	int rc;

	rc = fs_refresh_dir(ctx, dir);
	if (rc)
		return rc;
	rc = cache_list_children(ctx->cache, dir->ino, 0, has_child, NULL);
	return rc > 0 ? -ENOTEMPTY : rc;
}

void fs_reply_entry(fuse_req_t req, struct fs_context *ctx, uint64_t ino)
{
	struct fuse_entry_param ep;
	struct cache_entry e;
	int rc;

	rc = cache_get(ctx->cache, ino, &e);
	if (rc) {
		fs_reply_failure(req, rc);
		return;
	}
	fs_fill_entry(ctx, &e, &ep);
	cache_entry_release(&e);
	fuse_reply_entry(req, &ep);
}

void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	char path[FS_PATH_MAX];

	fs_child_path(fs_ctx(req), parent, name, path, sizeof(path));
	log_warnx("cannot create '%s': symbolic links are not supported on OneDrive", path);
	fuse_reply_err(req, EPERM);
}

void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	char path[FS_PATH_MAX];

	fs_child_path(fs_ctx(req), newparent, newname, path, sizeof(path));
	log_warnx("cannot create '%s': hard links are not supported on OneDrive", path);
	fuse_reply_err(req, EPERM);
}

/* ---- folders and names ---------------------------------------------------------- */

/*
 * The service is out of reach (or earlier offline changes still wait): the
 * folder exists here under a local id and is created when they are sent.
 */
static int mkdir_journalled(struct fs_context *ctx, const struct cache_entry *dir,
			    const char *name, uint64_t *ino)
{
	char path[FS_PATH_MAX], *local_id = NULL;
	int rc;

	rc = cache_create_local(ctx->cache, dir->ino, name, 1, NULL, ino, &local_id);
	if (rc)
		return rc;
	fs_child_path(ctx, dir->ino, name, path, sizeof(path));
	rc = journal_add_folder(ctx->journal, local_id, dir->item.id, name, path);
	if (rc)
		cache_remove(ctx->cache, *ino);
	free(local_id);
	return rc;
}

void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fs_context *ctx = fs_ctx(req);
	char path[FS_PATH_MAX], *err = NULL;
	struct cache_entry dir, e;
	struct drive_item out;
	uint64_t ino = 0;
	int rc, journalled;

	memset(&out, 0, sizeof(out));
	rc = fs_check_new_name(ctx, parent, name, "create", NULL);
	if (rc) {
		fs_reply_failure(req, rc);
		return;
	}
	rc = fs_fresh_dir(ctx, parent, &dir);
	if (rc)
		goto out_log;
	rc = cache_lookup(ctx->cache, parent, name, &e);
	if (rc == 0) {
		cache_entry_release(&e);
		rc = -EEXIST;
		goto out_release_dir;
	}
	if (rc != -ENOENT)
		goto out_release_dir;
	journalled = journal_wanted(ctx->journal);
	if (!journalled) {
		rc = graph_create_folder(ctx->graph, dir.item.id, name, &out, &err);
		if (rc == -EEXIST)   /* created elsewhere meanwhile: list again */
			cache_set_listed_at(ctx->cache, parent, 0);
	}
	if (journalled || (rc && errmap_is_transport(rc) && ctx->journal)) {
		free(err);
		err = NULL;
		rc = mkdir_journalled(ctx, &dir, name, &ino);
		goto out_release_dir;
	}
	if (rc)
		goto out_release_dir;
	/* it is where we created it, whatever form of the parent id came back */
	free(out.parent_id);
	out.parent_id = strdup(dir.item.id);
	rc = out.parent_id ? cache_upsert(ctx->cache, &out, &ino) : -ENOMEM;
	if (rc == 0)   /* new and empty: no need to list it */
		rc = cache_set_listed_at(ctx->cache, ino, (int64_t)time(NULL));
out_release_dir:
	cache_entry_release(&dir);
out_log:
	drive_item_release(&out);
	if (rc) {
		fs_child_path(ctx, parent, name, path, sizeof(path));
		fs_log_failure("create folder", path, NULL, rc, err);
		free(err);
		fs_reply_failure(req, rc);
		return;
	}
	fs_reply_entry(req, ctx, ino);
}

/*
 * The child name of folder parent (listing it first if stale).  -ENOENT
 * when absent.
 */
static int get_child(struct fs_context *ctx, uint64_t parent, const char *name,
		     struct cache_entry *out)
{
	struct cache_entry dir;
	int rc;

	rc = fs_fresh_dir(ctx, parent, &dir);
	if (rc)
		return rc;
	cache_entry_release(&dir);
	return cache_lookup(ctx->cache, parent, name, out);
}

/*
 * The tag a journalled delete of e is conditioned on (a change made on
 * another device meanwhile keeps the file).  None while e's own upload is
 * pending: a version it sent may have landed with its answer lost, and
 * would pass for someone else's change (a file deleted here stayed on the
 * service).  The delete sent at once has no condition either.
 */
static const char *delete_condition(struct fs_context *ctx, const struct cache_entry *e)
{
	if (!e->item.is_dir && (e->dirty || (ctx->upload && upload_pending(ctx->upload, e->ino))))
		return NULL;
	return e->item.ctag;
}

/*
 * A folder about to be deleted (rmdir, or a rename over it) is empty here,
 * but the cache's view may be older than the service's, and a DELETE of a
 * folder takes everything in it: ask the service first.  0 when it holds no
 * children (or the folder is gone), -ENOTEMPTY (and the folder is listed
 * again at the next look), or the request's failure.
 */
static int folder_empty_on_service(struct fs_context *ctx, const struct cache_entry *dir,
				   char **err)
{
	struct drive_item remote;
	int rc;

	rc = graph_get_item(ctx->graph, dir->item.id, &remote, err);
	if (rc == -ENOENT) {
		free(*err);
		*err = NULL;
		return 0;
	}
	if (rc)
		return rc;
	if (remote.child_count > 0) {
		cache_set_listed_at(ctx->cache, dir->ino, 0);
		rc = -ENOTEMPTY;
	}
	drive_item_release(&remote);
	return rc;
}

/*
 * Delete e on the service (to the recycle bin), or journal the delete when
 * it is out of reach; the caller then drops it here.  A local folder
 * exists only in the journal so far: its delete is journalled after it.
 */
static int delete_item(struct fs_context *ctx, const struct cache_entry *e, char **err)
{
	char path[FS_PATH_MAX];
	int rc = 0;

	keep_open_content(ctx, e);
	if (!e->is_local && !journal_wanted(ctx->journal)) {
		rc = e->item.is_dir ? folder_empty_on_service(ctx, e, err) : 0;
		if (rc == 0)
			rc = graph_delete_item(ctx->graph, e->item.id, err);
		if (rc == -ENOENT) {   /* gone already is just as good */
			free(*err);
			*err = NULL;
			rc = 0;
		}
		if (!rc || !errmap_is_transport(rc) || !ctx->journal)
			return rc;
		free(*err);
		*err = NULL;
	}
	fs_path_of(ctx, e->ino, path, sizeof(path));
	return journal_add_delete(ctx->journal, e->item.id, delete_condition(ctx, e), e->item.is_dir,
				  path);
}

/*
 * The stored spelling of a name, when the kernel reached it through another
 * one (names ignore case): malloc'd, else NULL.
 */
static char *other_spelling(const struct cache_entry *e, const char *name)
{
	return e->item.name && strcmp(e->item.name, name) != 0 ? strdup(e->item.name) : NULL;
}

/*
 * A rename or unlink through another spelling leaves the kernel's dentry
 * of the stored one (entry_timeout long) pointing at the old inode: later
 * I/O through that name would reach the moved file.  Forget it.  Only
 * after the reply: the kernel holds the folder's lock until then, and the
 * notification needs it.  Frees stored.
 */
static void forget_spelling(struct fs_context *ctx, uint64_t parent, char *stored)
{
	int rc;

	if (stored && ctx->se) {
		rc = fuse_lowlevel_notify_inval_entry(ctx->se, parent, stored, strlen(stored));
		/* -ENOENT: the kernel never looked it up, nothing to forget */
		if (rc < 0 && rc != -ENOENT)
			log_debug("cannot invalidate entry '%s' in inode %llu: %d", stored,
				  (unsigned long long)parent, rc);
	}
	free(stored);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int want_dir)
{
	struct fs_context *ctx = fs_ctx(req);
	char path[FS_PATH_MAX], *err = NULL, *stored = NULL;
	struct cache_entry e;
	int rc;

	rc = get_child(ctx, parent, name, &e);
	if (rc)
		goto out_log;
	if (e.ino == CACHE_ROOT_INO)
		rc = -EBUSY;
	else if (want_dir && !e.item.is_dir)
		rc = -ENOTDIR;
	else if (!want_dir && e.item.is_dir)
		rc = -EISDIR;
	else if (want_dir)
		rc = fs_check_empty(ctx, &e);
	if (rc == 0 && (!e.is_local || e.item.is_dir))
		rc = delete_item(ctx, &e, &err);
	if (rc == 0) {
		fs_drop_item(ctx, &e, 1);
		stored = other_spelling(&e, name);
	}
	cache_entry_release(&e);
out_log:
	if (rc) {
		fs_child_path(ctx, parent, name, path, sizeof(path));
		fs_log_failure(want_dir ? "remove folder" : "remove", path, NULL, rc, err);
		free(err);
	}
	fs_reply_failure(req, rc);
	forget_spelling(ctx, parent, stored);
}

void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, 0);
}

void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, 1);
}

/* What a rename works with: both folders, the source, and the target if any. */
struct rename_op {
	struct fs_context *ctx;
	struct cache_entry dir, newdir, src, dst;
	int has_dst;
	int dst_gone;             /* deleted on the service and here */
	int dst_rechecked;        /* the PATCH met the name of a target made here */
	const char *newname;
	char *err;
};

/*
 * A source on the service is about to give its bytes to another item: make
 * every byte present in the content cache (fetched from the source's own
 * item) and mark them local, so they are neither evicted nor taken for
 * stale under the target's tag.  A resize up and back down is a change that
 * leaves the bytes as they are.  The handle for writing comes first: while
 * it is open the cached bytes stay as they are, so what the stage makes
 * present is still there when they become local.  (The other way round,
 * an upload of the source landing in between gave them a tag newer than
 * src's, and the open for writing dropped them as stale.)
 */
static int make_content_local(struct fs_context *ctx, const struct cache_entry *src)
{
	struct content_stage st;
	struct content_file *f;
	char *err = NULL;
	int64_t size;
	int rc;

	rc = content_file_open_write(ctx->content, &src->item, 0, &f);
	if (rc)
		return rc;
	rc = content_stage_open(ctx->content, &src->item, &st, &err);
	free(err);
	if (rc)
		goto out_close;
	size = st.size;
	content_stage_close(&st);
	rc = content_truncate(f, size + 1);
	if (rc == 0)
		rc = content_truncate(f, size);
	if (rc == 0)
		rc = content_flush(f);
out_close:
	content_file_close(f);
	return rc;
}

/*
 * The source as it is now, once its upload is forgotten (no landing changes
 * it after that: upload_forget() sets the flag landed() checks under the
 * queue's lock).  A file created here whose first upload landed while the
 * rename waited (the PATCH of another spelling, retried) has an id of the
 * service's now, its bytes moved there and clean under the new tag: make
 * them local, as for any source on the service, so the target's tag does
 * not pass them for stale.
 */
static int reread_source(struct rename_op *op)
{
	struct fs_context *ctx = op->ctx;
	struct cache_entry fresh;
	int rc;

	rc = cache_get(ctx->cache, op->src.ino, &fresh);
	if (rc)
		return rc;
	if (op->src.is_local && !fresh.is_local) {
		log_debug("'%s' landed while it was renamed: taking over with id '%s'",
			  fresh.item.name, fresh.item.id);
		rc = make_content_local(ctx, &fresh);
		if (rc) {
			cache_entry_release(&fresh);
			return rc;
		}
	}
	cache_entry_release(&op->src);
	op->src = fresh;
	return 0;
}

/*
 * A file written here replaces a file on the service: it takes over the
 * target's id and tags, so its upload becomes a new version of the target's
 * item (id, history and sharing kept).  A source that exists only here
 * needs no request now; one that was uploaded already (an editor that
 * fsyncs its temp file) is deleted on the service once its bytes are
 * journalled under the target.
 */
static int rename_take_over(struct rename_op *op)
{
	struct fs_context *ctx = op->ctx;
	struct cache_entry *src = &op->src, *dst = &op->dst;
	struct drive_item base, renamed;
	struct timespec mtime;
	int64_t size;
	char path[FS_PATH_MAX], *err = NULL;
	int rc;

	if (!src->is_local && make_content_local(ctx, src))
		return -EAGAIN;
	/*
	 * Over another spelling of the target's name: the upload replaces the
	 * content of the item, not its name, so the name changes now.
	 */
	memset(&renamed, 0, sizeof(renamed));
	if (dst->item.name && strcmp(dst->item.name, op->newname) != 0) {
		rc = journal_wanted(ctx->journal) ? -EHOSTUNREACH :
			graph_update_item(ctx->graph, dst->item.id, op->newname, NULL, NULL, NULL,
					  NULL, &renamed, &op->err);
		if (rc && errmap_is_transport(rc) && ctx->journal) {
			/* offline, or no answer (it may have been applied): the journal sends it */
			free(op->err);
			op->err = NULL;
			fs_path_of(ctx, dst->ino, path, sizeof(path));
			rc = journal_add_move(ctx->journal, dst->item.id, NULL, op->newname, path);
		}
		if (rc)
			return rc;
	}
	/* a running upload of the source under its old name is abandoned */
	if (ctx->upload) {
		upload_forget(ctx->upload, src->ino);
		/* a version of the target's in doubt is the base of the source's upload */
		upload_forget_into(ctx->upload, dst->ino, src->ino);
	}
	rc = reread_source(op);
	if (rc)
		goto out_requeue;
	size = src->item.size;
	mtime = src->item.mtime;
	fs_writer_peek(ctx->state, src->ino, &size, &mtime);
	keep_open_content(ctx, dst);
	rc = cache_move(ctx->cache, src->ino, op->newdir.ino, op->newname);
	if (rc)
		goto out_requeue;
	content_discard(ctx->content, dst->item.id);
	rc = content_rename_id(ctx->content, src->item.id, dst->item.id);
	if (rc == 0)
		rc = cache_set_id(ctx->cache, src->ino, dst->item.id);
	if (rc == 0) {
		memset(&base, 0, sizeof(base));
		base.id = dst->item.id;
		base.parent_id = dst->item.parent_id;
		base.name = (char *)op->newname;
		base.etag = renamed.etag ? renamed.etag : dst->item.etag;
		base.ctag = renamed.ctag ? renamed.ctag : dst->item.ctag;
		base.size = size;
		base.mtime = mtime;
		base.ctime_created = dst->item.ctime_created;
		rc = cache_update_remote(ctx->cache, src->ino, &base, 0);
	}
	if (rc == 0)
		rc = cache_set_dirty(ctx->cache, src->ino, 1);
	if (rc == 0)
		rc = fs_queue_upload(ctx, src->ino);
	if (rc || src->is_local)
		goto out_release;
	fs_child_path(ctx, op->dir.ino, src->item.name, path, sizeof(path));
	rc = journal_wanted(ctx->journal) ? -EHOSTUNREACH :
		graph_delete_item(ctx->graph, src->item.id, &err);
	/*
	 * The rename is done here: a deletion the service could not take now
	 * (out of reach, throttled or unavailable past the retries) waits in
	 * the journal, else the temporary file would stay on the service
	 */
	if (rc && (errmap_is_transport(rc) || rc == -EAGAIN || rc == -EBUSY || rc == -EIO) &&
	    ctx->journal)
		rc = journal_add_delete(ctx->journal, src->item.id, NULL, 0, path);
	if (rc && rc != -ENOENT)
		fs_log_failure("remove the uploaded temporary file", path, NULL, rc, err);
	free(err);
	rc = 0;
	goto out_release;
out_requeue:
	/* nothing moved: both files keep their changes, and their uploads go on */
	if (src->dirty || src->is_local)
		fs_queue_upload(ctx, src->ino);
	if (dst->dirty)
		fs_queue_upload(ctx, dst->ino);
out_release:
	drive_item_release(&renamed);
	return rc;
}

/* Source never uploaded: the cache alone changes. */
static int rename_journalled(struct rename_op *op);

static int rename_local(struct rename_op *op)
{
	struct fs_context *ctx = op->ctx;

	/* a folder made offline: its creation waits in the journal, so must this */
	if (op->src.item.is_dir)
		return rename_journalled(op);
	if (op->has_dst && !op->dst.is_local)
		return rename_take_over(op);
	if (op->has_dst)
		fs_drop_item(ctx, &op->dst, 0);   /* cache_move removes its row */
	return cache_move(ctx->cache, op->src.ino, op->newdir.ino, op->newname);
}

/*
 * The service is out of reach (or earlier offline changes still wait):
 * the cache changes now, the journal sends the same steps later - the
 * target's delete (conditioned on the tag seen here), then the move.
 */
static int rename_journalled(struct rename_op *op)
{
	struct fs_context *ctx = op->ctx;
	struct cache_entry *src = &op->src;
	const char *new_name = NULL, *new_parent = NULL;
	char from[FS_PATH_MAX], path[FS_PATH_MAX];
	int rc;

	fs_path_of(ctx, src->ino, from, sizeof(from));
	if (op->has_dst && !op->dst_gone) {
		if (!op->dst.is_local || op->dst.item.is_dir) {
			keep_open_content(ctx, &op->dst);
			fs_path_of(ctx, op->dst.ino, path, sizeof(path));
			rc = journal_add_delete(ctx->journal, op->dst.item.id,
						delete_condition(ctx, &op->dst), op->dst.item.is_dir,
						path);
			if (rc)
				return rc;
			fs_drop_item(ctx, &op->dst, 1);
		} else {
			fs_drop_item(ctx, &op->dst, 0);   /* cache_move removes its row */
		}
		op->dst_gone = 1;
	}
	if (strcmp(src->item.name ? src->item.name : "", op->newname) != 0)
		new_name = op->newname;
	if (op->newdir.ino != src->parent_ino)
		new_parent = op->newdir.item.id;
	if (new_name || new_parent) {
		rc = journal_add_move(ctx->journal, src->item.id, new_parent, new_name, from);
		if (rc)
			return rc;
	}
	return cache_move(ctx->cache, src->ino, op->newdir.ino, op->newname);
}

/*
 * Source on the service: PATCH name and/or parent.  A target on the service
 * is deleted first (a PATCH cannot replace): a short window in which
 * neither name exists remotely, invisible through this mount.
 */
static int wait_target_upload(struct rename_op *op);

static int rename_remote(struct rename_op *op, const char *name)
{
	struct fs_context *ctx = op->ctx;
	struct cache_entry *src = &op->src;
	const char *new_name = NULL, *new_parent = NULL;
	struct drive_item out;
	int64_t size = src->item.size;
	struct timespec mtime = src->item.mtime;
	int local_changes, rc;

	if (journal_wanted(ctx->journal))
		return rename_journalled(op);
	if (op->has_dst && !op->dst.is_local) {
		keep_open_content(ctx, &op->dst);
		rc = op->dst.item.is_dir ? folder_empty_on_service(ctx, &op->dst, &op->err) : 0;
		if (rc == 0)
			rc = graph_delete_item(ctx->graph, op->dst.item.id, &op->err);
		if (rc && errmap_is_transport(rc) && ctx->journal)
			return rename_journalled(op);
		if (rc && rc != -ENOENT)
			return rc;
		fs_drop_item(ctx, &op->dst, 1);
		op->dst_gone = 1;
	}
	/* a target created here may hold the name through a create whose answer was lost */
	if (op->has_dst && op->dst.is_local && !op->dst.item.is_dir && ctx->upload)
		upload_drop_create_in_doubt(ctx->upload, op->dst.ino);
	if (strcmp(src->item.name ? src->item.name : name, op->newname) != 0)
		new_name = op->newname;
	if (op->newdir.ino != src->parent_ino)
		new_parent = op->newdir.item.id;
	memset(&out, 0, sizeof(out));
	rc = graph_update_item(ctx->graph, src->item.id, new_name, new_parent, NULL, NULL, NULL,
			       &out, &op->err);
	if (rc && errmap_is_transport(rc) && ctx->journal) {
		drive_item_release(&out);
		return rename_journalled(op);
	}
	if (rc == -EEXIST && op->has_dst && op->dst.is_local && !op->dst_gone &&
	    !op->dst_rechecked) {
		/*
		 * The target made here holds the name: its create landed meanwhile
		 * (replace it as a target on the service), or went out with the
		 * answer lost and could not be settled above (the journal's replay
		 * settles it, then sends the move).
		 */
		op->dst_rechecked = 1;
		drive_item_release(&out);
		free(op->err);
		op->err = NULL;
		rc = wait_target_upload(op);
		if (rc)
			return rc;
		if (!op->has_dst || !op->dst.is_local)
			return rename_remote(op, name);
		return ctx->journal ? rename_journalled(op) : -EEXIST;
	}
	if (rc == -EEXIST)   /* the name was taken on the service meanwhile */
		cache_set_listed_at(ctx->cache, op->newdir.ino, 0);
	if (rc)
		goto out_release;
	if (op->has_dst && !op->dst_gone)
		fs_drop_item(ctx, &op->dst, 0);   /* local only: cache_move removes its row */
	rc = cache_move(ctx->cache, src->ino, op->newdir.ino, op->newname);
	if (rc)
		goto out_release;
	/* new eTag (it changes on renames); local content and times stay ours */
	local_changes = src->dirty || fs_writer_peek(ctx->state, src->ino, &size, &mtime) ||
		(ctx->upload && upload_pending(ctx->upload, src->ino));
	if (local_changes) {
		/*
		 * The upload is conditioned on the tags its edit started from,
		 * and records its own when it lands, maybe while the PATCH
		 * travelled: the row keeps what it holds now.  The tags read
		 * before the PATCH would make the landed bytes pass for stale.
		 */
		goto out_release;
	} else if (out.mtime.tv_sec != src->item.mtime.tv_sec && src->item.mtime.tv_sec) {
		/* some services reset the time on a move: put it back */
		struct drive_item fixed;
		const struct timespec *crtime = src->item.ctime_created.tv_sec ?
			&src->item.ctime_created : NULL;

		memset(&fixed, 0, sizeof(fixed));
		if (graph_update_item(ctx->graph, src->item.id, NULL, NULL, &src->item.mtime,
				      crtime, NULL, &fixed, NULL) == 0) {
			drive_item_release(&out);
			out = fixed;
		}
	}
	rc = cache_update_remote(ctx->cache, src->ino, &out, 0);
out_release:
	drive_item_release(&out);
	return rc;
}

/*
 * A file on the service over another: give its bytes to the target's item
 * when they were written here (an editor's temp file, fsynced and so
 * uploaded already), else just move it (no download and upload of a file
 * that merely changes its name).
 */
static int take_over_wanted(struct rename_op *op)
{
	struct fs_context *ctx = op->ctx;

	if (op->src.item.is_dir || op->dst.item.is_dir || op->dst.is_local)
		return 0;
	return op->src.dirty || fs_written_lately(ctx->state, op->src.ino, WRITTEN_LATELY) ||
		(ctx->upload && upload_pending(ctx->upload, op->src.ino));
}

/*
 * A target created here whose first upload is running may appear on the
 * service at any moment, and a PATCH of the source onto its name would
 * then fail.  Let that upload land (bounded), so the target is an item
 * on the service like any other, replaced the usual way.  has_dst is
 * cleared (and dst released) when the target is gone meanwhile or on error.
 * The source is read again too: a version of its own that landed
 * meanwhile tagged its cached bytes anew, and the entry read before
 * would take them for stale (make_content_local dropped them).
 */
static int wait_target_upload(struct rename_op *op)
{
	struct fs_context *ctx = op->ctx;
	struct timespec pause = { 0, RENAME_POLL_NS };
	struct cache_entry fresh;
	char *status;
	int waited, rc, running;

	if (!op->has_dst || !op->dst.is_local || op->dst.item.is_dir || !ctx->upload)
		return 0;
	status = upload_status(ctx->upload, op->dst.ino);
	running = status && strcmp(status, "uploading") == 0;
	free(status);
	if (!running)
		return 0;
	for (waited = 0; waited < RENAME_WAIT_POLLS && upload_pending(ctx->upload, op->dst.ino);
	     waited++)
		nanosleep(&pause, NULL);
	rc = cache_get(ctx->cache, op->src.ino, &fresh);
	if (rc)
		return rc;
	cache_entry_release(&op->src);
	op->src = fresh;
	rc = cache_get(ctx->cache, op->dst.ino, &fresh);
	cache_entry_release(&op->dst);
	if (rc) {
		op->has_dst = 0;
		return rc == -ENOENT ? 0 : rc;   /* gone meanwhile: nothing to replace */
	}
	op->dst = fresh;
	return 0;
}

/* Type rules of rename(2) for a target that exists. */
static int check_target(struct rename_op *op)
{
	if (op->src.item.is_dir && !op->dst.item.is_dir)
		return -ENOTDIR;
	if (!op->src.item.is_dir && op->dst.item.is_dir)
		return -EISDIR;
	if (op->dst.item.is_dir)
		return fs_check_empty(op->ctx, &op->dst);
	return 0;
}

void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
	       const char *newname, unsigned int flags)
{
	struct rename_op op = { .ctx = fs_ctx(req), .newname = newname };
	struct fs_context *ctx = op.ctx;
	char from[FS_PATH_MAX], to[FS_PATH_MAX], *src_stored = NULL, *dst_stored = NULL;
	int rc;

	fs_child_path(ctx, parent, name, from, sizeof(from));
	if (flags & ~(unsigned)RENAME_NOREPLACE) {
		log_warnx("cannot rename '%s': exchanging names is not supported on OneDrive",
			  from);
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = fs_check_new_name(ctx, newparent, newname, "rename", from);
	if (rc) {
		fs_reply_failure(req, rc);
		return;
	}
	rc = fs_fresh_dir(ctx, parent, &op.dir);
	if (rc)
		goto out_log;
	rc = fs_fresh_dir(ctx, newparent, &op.newdir);
	if (rc)
		goto out_release_dir;
	rc = cache_lookup(ctx->cache, parent, name, &op.src);
	if (rc)
		goto out_release_newdir;
	rc = cache_lookup(ctx->cache, newparent, newname, &op.dst);
	if (rc == 0 && op.dst.ino == op.src.ino) {
		/* the same item: a change of case only, or nothing at all */
		cache_entry_release(&op.dst);
		if (parent == newparent && strcmp(op.src.item.name, newname) == 0)
			goto out_release_src;
	} else if (rc == 0) {
		op.has_dst = 1;
		rc = flags & RENAME_NOREPLACE ? -EEXIST : check_target(&op);
		if (rc)
			goto out_release_dst;
	} else if (rc != -ENOENT) {
		goto out_release_src;
	}
	if (!op.src.is_local) {
		rc = wait_target_upload(&op);
		if (rc)
			goto out_release_dst;
	}
	rc = -EAGAIN;
	if (op.src.is_local)
		rc = rename_local(&op);
	else if (op.has_dst && take_over_wanted(&op))
		rc = rename_take_over(&op);
	if (rc == -EAGAIN)
		rc = rename_remote(&op, name);
	/* the kernel's dentry of the stored spelling may outlive this rename */
	if (rc == 0 && !op.src.item.is_dir && op.src.item.name &&
	    strcmp(op.src.item.name, name) != 0)
		fs_alias_note(ctx->state, op.src.ino);
	if (rc == 0) {
		src_stored = other_spelling(&op.src, name);
		if (op.has_dst)
			dst_stored = other_spelling(&op.dst, newname);
	}
out_release_dst:
	if (op.has_dst)
		cache_entry_release(&op.dst);
out_release_src:
	cache_entry_release(&op.src);
out_release_newdir:
	cache_entry_release(&op.newdir);
out_release_dir:
	cache_entry_release(&op.dir);
out_log:
	if (rc == -EXDEV) {
		/* into or out of a shared folder: normal, mv falls back to copy and delete */
		fs_child_path(ctx, newparent, newname, to, sizeof(to));
		log_debug("rename '%s' to '%s': another drive, left to the caller (EXDEV)", from, to);
	} else if (rc) {
		fs_child_path(ctx, newparent, newname, to, sizeof(to));
		fs_log_failure("rename", from, to, rc, op.err);
	}
	free(op.err);
	fs_reply_failure(req, rc);
	forget_spelling(ctx, parent, src_stored);
	forget_spelling(ctx, newparent, dst_stored);
}
