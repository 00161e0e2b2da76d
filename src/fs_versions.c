/*
 * fs_versions.c - the read-only versions view: /.onedrive-versions mirrors
 * the drive's folders, and each file there is a folder of its versions,
 * named "TIME_ID" (TIME UTC as 2026-11-29T03-04-05Z, ID the service's
 * version id, "current" for the newest), each readable.
 *
 * DESIGN: nothing is stored.  A mirrored folder or file is FSV_MIRROR_BIT
 * plus its cache inode; a version is FSV_VERSION_BIT, the file's inode
 * shifted by VERSION_BITS, and its place counted from the oldest version
 * (stable while newer versions come).  Every lookup, getattr and open asks
 * the service for the versions (the kernel caches entries and attributes
 * for attr_timeout); reads are ranged downloads of the version's
 * pre-authenticated URL, fetched at open and again when it expires.  Not
 * listed at the mount root, so find and backup tools do not walk it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
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

#define VERSION_BITS   16            /* versions per file the view can show */
#define INO_REAL_MAX   (UINT64_C(1) << 44)
#define NAME_MAX_LEN   256
#define DIR_OFFSET_BASE 2            /* readdir offsets 1 and 2 are "." and ".." */

/* An open version: where its bytes are (the URL expires and is fetched again). */
struct version_file {
	pthread_mutex_t lock;
	char *item_id, *version_id;
	char *url;                    /* lock */
};

static uint64_t real_of_mirror(uint64_t ino)
{
	return ino & ~FSV_MIRROR_BIT;
}

static void split_version(uint64_t ino, uint64_t *real, size_t *k)
{
	uint64_t v = ino & ~FSV_VERSION_BIT;

	*real = v >> VERSION_BITS;
	*k = (size_t)(v & ((UINT64_C(1) << VERSION_BITS) - 1));
}

static double view_timeout(const struct fs_context *ctx)
{
	return (double)ctx->cfg->attr_timeout;
}

/* "TIME_ID" for v; ids are made safe for a file name. */
static void version_name(const struct graph_version *v, char *buf, size_t size)
{
	char when[32] = "unknown-time";
	struct tm tm;
	size_t len;

	if (v->mtime.tv_sec && gmtime_r(&v->mtime.tv_sec, &tm))
		strftime(when, sizeof(when), "%Y-%m-%dT%H-%M-%SZ", &tm);
	snprintf(buf, size, "%s_%s", when, v->id ? v->id : "");
	len = strlen(when) + 1;
	for (char *p = buf + (len < size ? len : size - 1); *p; p++)
		if (*p == '/')
			*p = '_';
}

static void mirror_attr(struct fs_context *ctx, uint64_t ino, const struct cache_entry *e,
			struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_uid = ctx->uid;
	st->st_gid = ctx->gid;
	st->st_blksize = 4096;
	if (e) {
		st->st_mtim = e->item.mtime;
		st->st_atim = e->item.mtime;
		st->st_ctim = e->item.mtime;
	}
}

static void version_attr(struct fs_context *ctx, uint64_t ino, const struct graph_version *v,
			 struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_uid = ctx->uid;
	st->st_gid = ctx->gid;
	st->st_size = v->size > 0 ? v->size : 0;
	st->st_blksize = 4096;
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_mtim = v->mtime;
	st->st_atim = v->mtime;
	st->st_ctim = v->mtime;
}

/*
 * The versions of file real (newest first).  A file not on the service
 * yet has none; a folder is -EISDIR.
 */
static int versions_of(struct fs_context *ctx, uint64_t real, char **item_id,
		       struct graph_version **v, size_t *n)
{
	struct cache_entry e;
	char *err = NULL, path[FS_PATH_MAX];
	int rc;

	*v = NULL;
	*n = 0;
	rc = cache_get(ctx->cache, real, &e);
	if (rc)
		return rc;
	if (e.item.is_dir) {
		rc = -EISDIR;
	} else if (!e.is_local && e.item.id) {
		rc = graph_list_versions(ctx->graph, e.item.id, v, n, &err);
		if (rc == 0 && item_id && !(*item_id = strdup(e.item.id))) {
			graph_versions_free(*v, *n);
			*v = NULL;
			*n = 0;
			rc = -ENOMEM;
		}
		if (rc && rc != -ENOENT) {
			fs_path_of(ctx, real, path, sizeof(path));
			fs_log_failure("list the versions of", path, NULL, rc, err);
		}
	}
	cache_entry_release(&e);
	free(err);
	return rc;
}

void fsv_versions_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_context *ctx = fs_ctx(req);
	uint64_t real = parent == CACHE_ROOT_INO ? CACHE_ROOT_INO : real_of_mirror(parent);
	struct fuse_entry_param ep;
	struct graph_version *v = NULL;
	struct cache_entry dir, e;
	size_t n = 0, i;
	char vname[NAME_MAX_LEN];
	int rc;

	memset(&ep, 0, sizeof(ep));
	ep.attr_timeout = view_timeout(ctx);
	ep.entry_timeout = view_timeout(ctx);
	if (parent == CACHE_ROOT_INO) {
		ep.ino = FSV_MIRROR_BIT | CACHE_ROOT_INO;
		mirror_attr(ctx, ep.ino, NULL, &ep.attr);
		fuse_reply_entry(req, &ep);
		return;
	}
	if (parent & FSV_VERSION_BIT) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	rc = cache_get(ctx->cache, real, &dir);
	if (rc)
		goto out_reply;
	if (dir.item.is_dir) {
		rc = fs_refresh_dir(ctx, &dir);
		if (rc == 0)
			rc = cache_lookup(ctx->cache, real, name, &e);
		if (rc == 0 && e.ino >= INO_REAL_MAX)
			rc = -EOVERFLOW;
		if (rc == 0) {
			ep.ino = FSV_MIRROR_BIT | e.ino;
			mirror_attr(ctx, ep.ino, &e, &ep.attr);
			cache_entry_release(&e);
		}
		cache_entry_release(&dir);
		goto out_reply;
	}
	cache_entry_release(&dir);
	rc = versions_of(ctx, real, NULL, &v, &n);
	if (rc)
		goto out_reply;
	rc = -ENOENT;
	for (i = 0; i < n && i < (UINT64_C(1) << VERSION_BITS); i++) {
		version_name(&v[i], vname, sizeof(vname));
		if (strcmp(vname, name) == 0) {
			ep.ino = FSV_VERSION_BIT | real << VERSION_BITS | (uint64_t)(n - 1 - i);
			version_attr(ctx, ep.ino, &v[i], &ep.attr);
			rc = 0;
			break;
		}
	}
	graph_versions_free(v, n);
out_reply:
	if (rc == -ENOENT) {
		ep.ino = 0;   /* remembered as absent for a while */
		fuse_reply_entry(req, &ep);
	} else if (rc) {
		fs_reply_failure(req, rc);
	} else {
		fuse_reply_entry(req, &ep);
	}
}

/* The version at place k (from the oldest) of file real: *i indexes v. */
static int find_version(struct fs_context *ctx, uint64_t real, size_t k, char **item_id,
			struct graph_version **v, size_t *n, size_t *i)
{
	int rc = versions_of(ctx, real, item_id, v, n);

	if (rc)
		return rc;
	if (k >= *n) {
		graph_versions_free(*v, *n);
		if (item_id) {
			free(*item_id);
			*item_id = NULL;
		}
		return -ENOENT;
	}
	*i = *n - 1 - k;
	return 0;
}

void fsv_versions_getattr(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_context *ctx = fs_ctx(req);
	struct graph_version *v;
	struct cache_entry e;
	struct stat st;
	uint64_t real;
	size_t k, n, i;
	int rc;

	if (ino & FSV_VERSION_BIT) {
		split_version(ino, &real, &k);
		rc = find_version(ctx, real, k, NULL, &v, &n, &i);
		if (rc == 0) {
			version_attr(ctx, ino, &v[i], &st);
			graph_versions_free(v, n);
		}
	} else {
		rc = cache_get(ctx->cache, real_of_mirror(ino), &e);
		if (rc == 0) {
			mirror_attr(ctx, ino, &e, &st);
			cache_entry_release(&e);
		}
	}
	if (rc)
		fs_reply_failure(req, rc);
	else
		fuse_reply_attr(req, &st, view_timeout(ctx));
}

void fsv_versions_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_context *ctx = fs_ctx(req);
	struct cache_entry e;
	int rc;

	if (ino & FSV_VERSION_BIT) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	rc = cache_get(ctx->cache, real_of_mirror(ino), &e);
	if (rc == 0) {
		if (e.item.is_dir)
			rc = fs_refresh_dir(ctx, &e);
		cache_entry_release(&e);
	}
	if (rc) {
		fs_reply_failure(req, rc);
		return;
	}
	fi->fh = 0;
	fuse_reply_open(req, fi);
}

struct view_fill {
	fuse_req_t req;
	struct fs_context *ctx;
	char *buf;
	size_t size, pos;
	int plus;
};

/* Add one entry; 1 when the buffer is full (the entry was not added). */
static int view_add(struct view_fill *d, const char *name, const struct stat *st, off_t next,
		    int counted)
{
	size_t need;

	if (d->plus) {
		struct fuse_entry_param ep;

		memset(&ep, 0, sizeof(ep));
		ep.attr = *st;
		if (counted) {   /* "." and ".." hand out no inode */
			ep.ino = st->st_ino;
			ep.attr_timeout = view_timeout(d->ctx);
			ep.entry_timeout = view_timeout(d->ctx);
		}
		need = fuse_add_direntry_plus(d->req, d->buf + d->pos, d->size - d->pos, name,
					      &ep, next);
	} else {
		need = fuse_add_direntry(d->req, d->buf + d->pos, d->size - d->pos, name, st,
					 next);
	}
	if (need > d->size - d->pos)
		return 1;
	d->pos += need;
	return 0;
}

static int view_add_child(void *vctx, const struct cache_entry *e)
{
	struct view_fill *d = vctx;
	struct stat st;

	if (e->ino >= INO_REAL_MAX)
		return 0;
	mirror_attr(d->ctx, FSV_MIRROR_BIT | e->ino, e, &st);
	return view_add(d, e->item.name, &st, (off_t)(e->ino + DIR_OFFSET_BASE), 1);
}

/* Offsets: 1 and 2 the dots; a folder's children by inode + 2, versions by place + 3. */
void fsv_versions_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
	struct fs_context *ctx = fs_ctx(req);
	struct view_fill d = { .req = req, .ctx = ctx, .size = size, .plus = plus };
	uint64_t real = real_of_mirror(ino);
	struct graph_version *v = NULL;
	struct cache_entry e;
	struct stat st;
	size_t n = 0;
	int rc;

	rc = cache_get(ctx->cache, real, &e);
	if (rc) {
		fs_reply_failure(req, rc);
		return;
	}
	d.buf = malloc(size ? size : 1);
	if (!d.buf) {
		rc = -ENOMEM;
		goto out_release;
	}
	memset(&st, 0, sizeof(st));
	st.st_mode = S_IFDIR;
	st.st_ino = ino;
	if (off < 1 && view_add(&d, ".", &st, 1, 0))
		goto out_reply;
	st.st_ino = real == CACHE_ROOT_INO ? CACHE_ROOT_INO : FSV_MIRROR_BIT | e.parent_ino;
	if (off < 2 && view_add(&d, "..", &st, 2, 0))
		goto out_reply;
	if (e.item.is_dir) {
		rc = cache_list_children(ctx->cache, real,
					 off > DIR_OFFSET_BASE ? (uint64_t)off - DIR_OFFSET_BASE : 0,
					 view_add_child, &d);
		if (rc > 0)
			rc = 0;   /* buffer full */
		goto out_reply;
	}
	rc = versions_of(ctx, real, NULL, &v, &n);
	for (size_t i = off > DIR_OFFSET_BASE ? (size_t)off - DIR_OFFSET_BASE : 0;
	     rc == 0 && i < n && i < (UINT64_C(1) << VERSION_BITS); i++) {
		char vname[NAME_MAX_LEN];

		version_name(&v[i], vname, sizeof(vname));
		version_attr(ctx, FSV_VERSION_BIT | real << VERSION_BITS | (uint64_t)(n - 1 - i),
			     &v[i], &st);
		if (view_add(&d, vname, &st, (off_t)(i + 1 + DIR_OFFSET_BASE), 1))
			break;
	}
	graph_versions_free(v, n);
out_reply:
	if (rc < 0 && d.pos == 0)
		fs_reply_failure(req, rc);
	else
		fuse_reply_buf(req, d.buf, d.pos);
	rc = 0;
out_release:
	free(d.buf);
	cache_entry_release(&e);
	if (rc)
		fs_reply_failure(req, rc);
}

static void version_file_free(struct version_file *f)
{
	if (!f)
		return;
	pthread_mutex_destroy(&f->lock);
	free(f->item_id);
	free(f->version_id);
	free(f->url);
	free(f);
}

void fsv_versions_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_context *ctx = fs_ctx(req);
	struct version_file *f = NULL;
	struct graph_version *v;
	char *item_id = NULL, *err = NULL;
	uint64_t real;
	size_t k, n, i;
	int rc;

	if (!(ino & FSV_VERSION_BIT)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	split_version(ino, &real, &k);
	rc = find_version(ctx, real, k, &item_id, &v, &n, &i);
	if (rc)
		goto out_reply;
	f = calloc(1, sizeof(*f));
	if (!f || !(f->version_id = strdup(v[i].id))) {
		rc = -ENOMEM;
		goto out_free;
	}
	pthread_mutex_init(&f->lock, NULL);
	f->item_id = item_id;
	item_id = NULL;
	rc = graph_version_url(ctx->graph, f->item_id, f->version_id, &f->url, &err);
	if (rc) {
		char path[FS_PATH_MAX];

		fs_path_of(ctx, real, path, sizeof(path));
		fs_log_failure("read a version of", path, NULL, rc, err);
	}
out_free:
	graph_versions_free(v, n);
out_reply:
	free(item_id);
	free(err);
	if (rc) {
		if (f && f->version_id)
			version_file_free(f);
		else
			free(f);
		fs_reply_failure(req, rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)f;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi))
		version_file_free(f);   /* interrupted: no release will come */
}

struct read_sink {
	char *buf;
	size_t len, cap;
};

static int read_sink(void *vctx, const char *data, size_t len)
{
	struct read_sink *s = vctx;

	if (len > s->cap - s->len)
		return -EFBIG;   /* graph_download never sends more than asked */
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	return 0;
}

void fsv_versions_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct fs_context *ctx = fs_ctx(req);
	struct version_file *f = (struct version_file *)(uintptr_t)fi->fh;
	struct read_sink s = { NULL, 0, size };
	char *url = NULL, *err = NULL;
	int rc, tries;

	(void)ino;
	s.buf = malloc(size ? size : 1);
	if (!s.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (tries = 0; tries < 2; tries++) {
		pthread_mutex_lock(&f->lock);
		url = f->url ? strdup(f->url) : NULL;
		pthread_mutex_unlock(&f->lock);
		if (!url) {
			rc = -ENOMEM;
			break;
		}
		s.len = 0;
		free(err);
		err = NULL;
		rc = graph_download(ctx->graph, url, (int64_t)off, (int64_t)size, read_sink, &s,
				    &err);
		free(url);
		url = NULL;
		if (rc != -ESTALE || tries > 0)
			break;
		/* the URL expired: a new one, then once more */
		free(err);
		err = NULL;
		rc = graph_version_url(ctx->graph, f->item_id, f->version_id, &url, &err);
		if (rc)
			break;
		pthread_mutex_lock(&f->lock);
		free(f->url);
		f->url = url;
		url = NULL;
		pthread_mutex_unlock(&f->lock);
	}
	if (rc) {
		char path[FS_PATH_MAX];

		fs_path_of(ctx, (ino & ~FSV_VERSION_BIT) >> VERSION_BITS, path, sizeof(path));
		fs_log_failure("read a version of", path, NULL, rc, err);
		fs_reply_failure(req, rc);
	} else {
		fuse_reply_buf(req, s.buf, s.len);
	}
	free(err);
	free(s.buf);
}

void fsv_versions_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	if (fi->fh)
		version_file_free((struct version_file *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}
