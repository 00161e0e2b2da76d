/*
 * fs_features.c - OneDrive's own features through the filesystem: versions,
 * restore, server-side copy (copy_file_range and a copy xattr), web and
 * sharing links.
 *
 * DESIGN: everything goes through the mount itself, so the command-line
 * tools (cmd_features.c) need neither the mount's settings nor its tokens:
 * they find the mount and the item from a path alone.  Attributes that cost
 * a request are not listed by listxattr (getfattr -d stays cheap):
 *
 *   user.onedrive.versions            get: one line per version, newest first:
 *                                     "ID<TAB>TIME<TAB>SIZE<TAB>WHO"
 *   user.onedrive.versionurl.ID       get: a short-lived pre-authenticated URL
 *                                     of version ID's bytes (no token needed)
 *   user.onedrive.restore             set to a version id: restoreVersion
 *   user.onedrive.copyto              set on the source to "PARENT_ID\nNAME":
 *                                     server-side copy (folders whole)
 *   user.onedrive.weburl              get: the item's web link
 *   user.onedrive.share.TYPE[.EXPIRY] get: a sharing link (createLink), TYPE
 *                                     view or edit, EXPIRY ISO-8601 UTC
 *
 * copy_file_range uses /copy only for what cp does: a whole clean remote
 * file into a new, empty file created here at offset 0.  Anything else
 * answers EXDEV, on which cp (and the kernel's fallback users) copy the
 * bytes themselves.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include "cache.h"
#include "config.h"
#include "content.h"
#include "fs.h"
#include "fs_internal.h"
#include "graph.h"
#include "log.h"

#define FEAT_PREFIX   "user.onedrive."
#define COPY_TIMEOUT  600     /* seconds a server-side copy may take */
#define LISTING_MAX   (1024 * 1024)

static int has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The remote id of ino (malloc'd in *e); -ENODATA for an item not on the service yet. */
static int remote_entry(struct fs_context *ctx, uint64_t ino, struct cache_entry *e)
{
	int rc = cache_get(ctx->cache, ino, e);

	if (rc)
		return rc;
	if (e->is_local || !e->item.id) {
		cache_entry_release(e);
		return -ENODATA;
	}
	return 0;
}

/* The versions listing as text (malloc'd). */
static int versions_text(struct fs_context *ctx, const char *id, char **out, char **err)
{
	struct graph_version *v;
	size_t n, len = 0, cap = 256;
	char *buf;
	int rc;

	rc = graph_list_versions(ctx->graph, id, &v, &n, err);
	if (rc)
		return rc;
	buf = malloc(cap);
	if (!buf) {
		graph_versions_free(v, n);
		return -ENOMEM;
	}
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char when[32] = "-", line[512];
		struct tm tm;
		int k;

		if (v[i].mtime.tv_sec && gmtime_r(&v[i].mtime.tv_sec, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		k = snprintf(line, sizeof(line), "%s\t%s\t%lld\t%s\n", v[i].id, when,
			     (long long)v[i].size, v[i].who ? v[i].who : "-");
		if (k < 0 || (size_t)k >= sizeof(line))
			continue;
		if (len + (size_t)k + 1 > cap) {
			char *bigger;

			while (len + (size_t)k + 1 > cap)
				cap *= 2;
			bigger = cap <= LISTING_MAX ? realloc(buf, cap) : NULL;
			if (!bigger) {
				rc = cap > LISTING_MAX ? -E2BIG : -ENOMEM;
				free(buf);
				graph_versions_free(v, n);
				return rc;
			}
			buf = bigger;
		}
		memcpy(buf + len, line, (size_t)k + 1);
		len += (size_t)k;
	}
	graph_versions_free(v, n);
	*out = buf;
	return 0;
}

/* "view[.EXPIRY]" or "edit[.EXPIRY]" -> a sharing link. */
static int share_link(struct fs_context *ctx, const char *id, const char *spec, char **out,
		      char **err)
{
	char type[8];
	const char *dot = strchr(spec, '.');
	size_t tlen = dot ? (size_t)(dot - spec) : strlen(spec);

	if (tlen >= sizeof(type))
		return -ENODATA;
	memcpy(type, spec, tlen);
	type[tlen] = '\0';
	if (strcmp(type, "view") != 0 && strcmp(type, "edit") != 0)
		return -ENODATA;
	return graph_create_link(ctx->graph, id, type, NULL, dot && dot[1] ? dot + 1 : NULL, out,
				 err);
}

int fs_feature_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs_context *ctx = fs_ctx(req);
	const char *attr = name + strlen(FEAT_PREFIX);
	struct cache_entry e;
	char *value = NULL, *err = NULL;
	int rc;

	if (!has_prefix(name, FEAT_PREFIX) ||
	    (strcmp(attr, "versions") != 0 && !has_prefix(attr, "versionurl.") &&
	     strcmp(attr, "weburl") != 0 && !has_prefix(attr, "share.")))
		return 0;
	rc = remote_entry(ctx, ino, &e);
	if (rc)
		goto out_reply;
	if (strcmp(attr, "weburl") == 0)
		rc = graph_web_url(ctx->graph, e.item.id, &value, &err);
	else if (has_prefix(attr, "share."))
		rc = share_link(ctx, e.item.id, attr + 6, &value, &err);
	else if (e.item.is_dir)
		rc = -ENODATA;   /* folders have no versions */
	else if (strcmp(attr, "versions") == 0)
		rc = versions_text(ctx, e.item.id, &value, &err);
	else
		rc = graph_version_url(ctx->graph, e.item.id, attr + 11, &value, &err);
	if (rc && rc != -ENODATA)
		fs_log_ino_failure(ctx, "read attribute of", ino, rc, err);
	cache_entry_release(&e);
out_reply:
	if (rc)
		fs_reply_failure(req, rc);
	else
		fs_reply_xattr_data(req, value, strlen(value), size);
	free(value);
	free(err);
	return 1;
}

/* After a restore: the cache takes the item's new state, cached bytes go. */
static int restore(struct fs_context *ctx, const struct cache_entry *e, const char *vid,
		   char **err)
{
	struct drive_item item;
	int rc;

	rc = graph_restore_version(ctx->graph, e->item.id, vid, err);
	if (rc)
		return rc;
	rc = graph_get_item(ctx->graph, e->item.id, &item, err);
	if (rc)
		return rc;
	rc = cache_update_remote(ctx->cache, e->ino, &item, 0);
	drive_item_release(&item);
	content_invalidate(ctx->content, e->item.id);
	return rc;
}

/* "PARENT_ID\nNAME": copy e there; the new item enters the cache. */
static int copy_to(struct fs_context *ctx, const struct cache_entry *e, const char *value,
		   size_t size, char **err)
{
	char *spec = strndup(value, size), *nl, *new_id = NULL;
	struct drive_item item;
	int rc;

	if (!spec)
		return -ENOMEM;
	nl = strchr(spec, '\n');
	if (!nl || nl == spec || !nl[1] || strchr(nl + 1, '/')) {
		rc = -EINVAL;
		goto out_free;
	}
	*nl = '\0';
	rc = graph_copy_item(ctx->graph, e->item.id, spec, nl + 1, COPY_TIMEOUT, &new_id, err);
	if (rc)
		goto out_free;
	if (graph_get_item(ctx->graph, new_id, &item, NULL) == 0) {
		cache_upsert(ctx->cache, &item, NULL);   /* else the next listing shows it */
		drive_item_release(&item);
	}
out_free:
	free(new_id);
	free(spec);
	return rc;
}

int fs_feature_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size)
{
	struct fs_context *ctx = fs_ctx(req);
	struct cache_entry e;
	char *err = NULL, vid[256];
	int rc, is_restore = strcmp(name, FEAT_PREFIX "restore") == 0;

	if (!is_restore && strcmp(name, FEAT_PREFIX "copyto") != 0)
		return 0;
	rc = remote_entry(ctx, ino, &e);
	if (rc) {
		fs_reply_failure(req, rc == -ENODATA ? -EBUSY : rc);
		return 1;
	}
	if (is_restore) {
		if (e.item.is_dir || size == 0 || size >= sizeof(vid) || e.dirty) {
			rc = e.dirty ? -EBUSY : -EINVAL;
		} else {
			memcpy(vid, value, size);
			vid[size] = '\0';
			rc = restore(ctx, &e, vid, &err);
		}
	} else {
		rc = copy_to(ctx, &e, value, size, &err);
	}
	if (rc)
		fs_log_ino_failure(ctx, is_restore ? "restore" : "copy", ino, rc, err);
	cache_entry_release(&e);
	free(err);
	fs_reply_failure(req, rc);
	return 1;
}

/*
 * cp's whole-file copy into a file it just created: the service copies, and
 * the new file takes the copy's id.  Returns 1 when done (*copied set), 0
 * when this is not such a copy (the caller answers EXDEV), -errno on failure.
 */
static int server_copy(struct fs_context *ctx, uint64_t ino_in, uint64_t ino_out,
		       struct fs_file *out, size_t len, size_t *copied)
{
	struct cache_entry src, dst, dir;
	struct drive_item item;
	struct timespec mtime;
	char *new_id = NULL, *err = NULL;
	int64_t wsize;
	int rc = 0;

	if (cache_get(ctx->cache, ino_in, &src))
		return 0;
	if (src.is_local || src.dirty || src.item.is_dir || (uint64_t)src.item.size > len ||
	    fs_writer_peek(ctx->state, ino_in, &wsize, &mtime) ||
	    content_is_dirty(ctx->content, src.item.id) == 1)
		goto out_src;
	if (cache_get(ctx->cache, ino_out, &dst))
		goto out_src;
	if (!dst.is_local || !out->writable || content_file_size(out->cf) != 0 ||
	    !fs_writer_peek(ctx->state, ino_out, &wsize, &mtime) || wsize != 0 ||
	    cache_get(ctx->cache, dst.parent_ino, &dir))
		goto out_dst;
	if (dir.is_local)
		goto out_dir;
	/* the local placeholder was never uploaded: the name is free on the service */
	rc = graph_copy_item(ctx->graph, src.item.id, dir.item.id, dst.item.name, COPY_TIMEOUT,
			     &new_id, &err);
	if (rc == 0)
		rc = graph_get_item(ctx->graph, new_id, &item, &err);
	if (rc == -EXDEV) {
		rc = 0;   /* across drives: cp copies the bytes */
		goto out_dir;
	}
	if (rc) {
		fs_log_ino_failure(ctx, "copy to", ino_out, rc, err);
		goto out_dir;
	}
	/* nothing of the placeholder goes up: its (empty) bytes are dropped */
	atomic_store(&out->changed, 0);
	content_flush(out->cf);
	content_discard(ctx->content, dst.item.id);
	rc = cache_set_id(ctx->cache, ino_out, new_id);
	if (rc == 0)
		rc = cache_update_remote(ctx->cache, ino_out, &item, 1);
	if (rc == 0) {
		fs_writer_set(ctx->state, ino_out, &item.size, &item.mtime);
		*copied = (size_t)item.size;
		rc = 1;
	}
	drive_item_release(&item);
out_dir:
	cache_entry_release(&dir);
out_dst:
	cache_entry_release(&dst);
out_src:
	cache_entry_release(&src);
	free(new_id);
	free(err);
	return rc;
}

void fs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct fs_context *ctx = fs_ctx(req);
	size_t copied = 0;
	int rc = 0;

	(void)fi_in;
	if (off_in == 0 && off_out == 0 && flags == 0 && ino_in != ino_out && ctx->upload)
		rc = server_copy(ctx, ino_in, ino_out, fs_file_of(fi_out), len, &copied);
	if (rc == 1)
		fuse_reply_write(req, copied);
	else
		/* EXDEV: cp and the kernel's users copy the bytes themselves */
		fs_reply_failure(req, rc < 0 && rc != -ENOENT ? rc : -EXDEV);
}
