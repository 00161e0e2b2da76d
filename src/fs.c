/*
 * fs.c - the FUSE low-level operations: translate, call down, reply.
 *
 * Metadata comes from cache.c; a folder whose children were never fetched,
 * or were fetched longer than cfg->dir_ttl ago, is listed from Graph again
 * when it is opened or looked up in (one listing per folder at a time:
 * concurrent callers wait for the one in flight).  Bytes come from
 * content.c.  Inode numbers are the cache's row ids, stable across
 * remounts, so forget needs no bookkeeping.  The write operations live in
 * fs_write.c (content) and fs_names.c (names), the extended attributes in
 * fs_xattr.c; this file keeps the reading side and the operations table.
 *
 * While delta.c follows remote changes (poll_interval > 0), a folder listed
 * once stays fresh whatever its age: changes arrive through delta, which
 * also tells the kernel (notify_inval_*), so entries and attributes are
 * cached for DELTA_TIMEOUT instead of attr_timeout.  A folder older than
 * dir_ttl only asks delta for an early round.  A folder never listed while
 * the first enumeration runs waits for it instead of being listed alone.
 */
#define _GNU_SOURCE     /* GNU strerror_r */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include "cache.h"
#include "config.h"
#include "content.h"
#include "delta.h"
#include "fs.h"
#include "fs_internal.h"
#include "fs_virtual.h"
#include "graph.h"
#include "journal.h"
#include "log.h"
#include "upload.h"

#define KERNEL_READAHEAD (128 * 1024)  /* content.c does the real readahead */
#define URL_FRESH        300           /* seconds a listed download URL is trusted */
#define QUOTA_TTL        60            /* seconds between quota refreshes */
#define DIR_OFFSET_BASE  2             /* readdir offsets 1 and 2 are "." and ".." */
#define PATH_DEPTH_MAX   64            /* deeper paths are shown from their tail */
#define LIST_LOG_EVERY   10            /* seconds between messages about one folder */
#define DELTA_TIMEOUT    3600          /* kernel cache seconds while delta pushes changes */
#define DELTA_WAIT_MS    30000         /* give up on the first enumeration after this
                                          long without a page, and list the folder */

/*
 * Reply a failure from the layers below (-errno).  Transport trouble
 * (dropped connections, timeouts, unreachable hosts) reaches applications
 * as EIO, the errno they know how to report.
 */
void fs_reply_failure(fuse_req_t req, int rc)
{
	int e = -rc;

	switch (e) {
	case ECONNRESET:
	case ECONNREFUSED:
	case ETIMEDOUT:
	case EHOSTUNREACH:
	case ECANCELED:
	case EFBIG:
	case EPROTO:
		e = EIO;
		break;
	}
	fuse_reply_err(req, e);
}

/*
 * An inode whose row is gone, reached through a kernel dentry that
 * outlived it (another spelling of a name that was unlinked): -ESTALE makes
 * the kernel look the path up again and retry, instead of failing.
 */
int fs_stale(int rc)
{
	return rc == -ENOENT ? -ESTALE : rc;
}

struct fs_context *fs_ctx(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

double fs_timeout(const struct fs_context *ctx)
{
	long t = ctx->cfg->attr_timeout;

	return (double)(ctx->delta && t < DELTA_TIMEOUT ? DELTA_TIMEOUT : t);
}

const char *fs_error_text(int rc, const char *err, char *buf, size_t size)
{
	return err ? err : strerror_r(-rc, buf, size);
}

/*
 * The path of ino relative to the drive root, for messages ("/" for the
 * root).  Best effort: a missing row ends the walk.
 */
void fs_path_of(struct fs_context *ctx, uint64_t ino, char *buf, size_t size)
{
	char *names[PATH_DEPTH_MAX];
	size_t n = 0, len = 0;
	struct cache_entry e;

	buf[0] = '\0';
	while (ino != CACHE_ROOT_INO && n < PATH_DEPTH_MAX && cache_get(ctx->cache, ino, &e) == 0) {
		names[n] = e.item.name ? strdup(e.item.name) : NULL;
		ino = e.parent_ino;
		cache_entry_release(&e);
		if (!names[n])
			break;
		n++;
	}
	if (n == 0) {
		snprintf(buf, size, "/");
		return;
	}
	while (n-- > 0) {
		if (len < size)
			len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? "/" : "",
						names[n]);
		free(names[n]);
	}
}

void fs_child_path(struct fs_context *ctx, uint64_t parent, const char *name, char *buf,
		   size_t size)
{
	size_t len;

	fs_path_of(ctx, parent, buf, size);
	if (strcmp(buf, "/") == 0)
		buf[0] = '\0';
	len = strlen(buf);
	if (len < size)
		snprintf(buf + len, size - len, "%s%s", len ? "/" : "", name);
}

void fs_fill_attr(struct fs_context *ctx, const struct cache_entry *e, struct stat *st)
{
	const struct drive_item *it = &e->item;
	struct timespec mtime = it->mtime;
	int64_t size = it->size;

	memset(st, 0, sizeof(*st));
	st->st_ino = e->ino;
	if (it->is_dir) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		/* Packages (OneNote) cannot be downloaded: shown, but not readable. */
		st->st_mode = S_IFREG | (it->is_package ? 0444 : 0644);
		st->st_nlink = 1;
		/* A file being written: its local size and time are newer than the cache's. */
		fs_writer_peek(ctx->state, e->ino, &size, &mtime);
	}
	st->st_uid = ctx->uid;
	st->st_gid = ctx->gid;
	/* A folder's size is the total below it: shown, du would count it twice. */
	st->st_size = size > 0 && !it->is_dir ? size : 0;
	st->st_blksize = 4096;
	st->st_blocks = (st->st_size + 511) / 512;
	/* OneDrive keeps no change or access time: modification time stands in. */
	st->st_mtim = mtime;
	st->st_atim = mtime;
	st->st_ctim = mtime;
}

void fs_fill_entry(struct fs_context *ctx, const struct cache_entry *e,
		   struct fuse_entry_param *ep)
{
	memset(ep, 0, sizeof(*ep));
	ep->ino = e->ino;
	fs_fill_attr(ctx, e, &ep->attr);
	ep->attr_timeout = fs_timeout(ctx);
	ep->entry_timeout = fs_timeout(ctx);
	/* on another drive (a shortcut): delta reports no change, dir_ttl rules */
	if (ctx->delta && graph_id_is_remote(e->item.id)) {
		ep->attr_timeout = (double)ctx->cfg->attr_timeout;
		ep->entry_timeout = (double)ctx->cfg->attr_timeout;
	}
}

/* ---- folder listings ------------------------------------------------- */

struct child_list {
	struct drive_item *items;
	size_t n, cap;
};

static int collect_child(void *vctx, struct drive_item *item)
{
	struct child_list *l = vctx;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct drive_item *more = realloc(l->items, cap * sizeof(*more));

		if (!more)
			return -ENOMEM;
		l->items = more;
		l->cap = cap;
	}
	/* Steal every field: the caller's copy is left empty. */
	l->items[l->n++] = *item;
	memset(item, 0, sizeof(*item));
	return 0;
}

static int list_from_graph(struct fs_context *ctx, const struct cache_entry *dir, char **err)
{
	struct child_list l = { NULL, 0, 0 };
	int64_t now = (int64_t)time(NULL);
	size_t i;
	int rc;

	rc = graph_list_children(ctx->graph, dir->item.id, collect_child, &l, err);
	if (rc == 0)
		rc = cache_replace_children(ctx->cache, dir->ino, l.items, l.n, now);
	for (i = 0; i < l.n; i++) {
		/* Saves a round trip at the first read; kept in memory only. */
		if (rc == 0 && l.items[i].download_url)
			content_remember_url(ctx->content, l.items[i].id, l.items[i].download_url);
		drive_item_release(&l.items[i]);
	}
	free(l.items);
	return rc;
}

/*
 * One message per folder every LIST_LOG_EVERY seconds: a folder that fails
 * to list fails for every lookup in it.  The path replaces the id in
 * graph.c's message.
 */
static void log_list_failure(struct fs_context *ctx, const struct cache_entry *dir, int rc,
			     const char *err, const char *tail)
{
	struct fs_state *st = ctx->state;
	time_t now = time(NULL);
	char path[1024], prefix[512], ebuf[128];
	const char *why = fs_error_text(rc, err, ebuf, sizeof(ebuf));
	size_t slot = dir->ino % LIST_LOG_SLOTS;
	int quiet;

	pthread_mutex_lock(&st->lock);
	quiet = st->list_logged[slot].ino == dir->ino &&
		now - st->list_logged[slot].at < LIST_LOG_EVERY;
	if (!quiet) {
		st->list_logged[slot].ino = dir->ino;
		st->list_logged[slot].at = now;
	}
	pthread_mutex_unlock(&st->lock);
	if (quiet)
		return;
	snprintf(prefix, sizeof(prefix), "cannot list '%s': ", dir->item.id);
	if (strncmp(why, prefix, strlen(prefix)) == 0)
		why += strlen(prefix);
	fs_path_of(ctx, dir->ino, path, sizeof(path));
	if (*tail)
		log_warnx("cannot list '%s': %s%s", path, why, tail);
	else
		log_error("cannot list '%s': %s", path, why);
}

/*
 * 1 when delta keeps folder dir fresh: not a folder on another drive (a
 * shortcut), whose contents the drive's delta never reports.
 */
static int delta_covers(const struct fs_context *ctx, const struct cache_entry *dir)
{
	return ctx->delta && !graph_id_is_remote(dir->item.id);
}

/* 1 when the cached listing of folder ino is younger than dir_ttl. */
static int listing_age_ok(struct fs_context *ctx, uint64_t ino)
{
	struct cache_entry d;
	int ok;

	if (cache_get(ctx->cache, ino, &d))
		return 0;
	ok = d.listed_at && (delta_covers(ctx, &d) ||
			     (int64_t)time(NULL) - d.listed_at < ctx->cfg->dir_ttl);
	cache_entry_release(&d);
	return ok;
}

/*
 * Make sure dir's children in the cache are no older than dir_ttl.  Only
 * one listing per folder runs at a time; the others wait for its result.
 * A failed listing falls back to the cached one if there is one.
 */
int fs_refresh_dir(struct fs_context *ctx, const struct cache_entry *dir)
{
	struct fs_state *st = ctx->state;
	int64_t now = (int64_t)time(NULL);
	struct listing *l;
	char *err = NULL;
	int rc;

	if (!dir->item.is_dir)
		return -ENOTDIR;
	if (dir->listed_at && now - dir->listed_at < ctx->cfg->dir_ttl)
		return 0;
	/* offline changes not sent yet: the cache is newer than the service */
	if (dir->listed_at && journal_busy(ctx->journal))
		return 0;
	if (delta_covers(ctx, dir) && dir->listed_at) {
		delta_wake(ctx->delta, ctx->cfg->dir_ttl);
		return 0;
	}
	if (delta_covers(ctx, dir) && delta_wait_ready(ctx->delta, DELTA_WAIT_MS) == 0 &&
	    listing_age_ok(ctx, dir->ino))
		return 0;

	pthread_mutex_lock(&st->lock);
	for (l = st->listings; l; l = l->next)
		if (l->ino == dir->ino)
			break;
	if (l) {
		l->waiters++;
		while (!l->done)
			pthread_cond_wait(&st->listed, &st->lock);
		rc = l->rc;
		if (--l->waiters == 0)
			free(l);
		pthread_mutex_unlock(&st->lock);
		return rc && dir->listed_at ? 0 : rc;
	}
	/* A listing may have finished since our copy was read (it updates the cache first). */
	if (listing_age_ok(ctx, dir->ino)) {
		pthread_mutex_unlock(&st->lock);
		return 0;
	}
	l = calloc(1, sizeof(*l));
	if (!l) {
		pthread_mutex_unlock(&st->lock);
		return -ENOMEM;
	}
	l->ino = dir->ino;
	l->next = st->listings;
	st->listings = l;
	pthread_mutex_unlock(&st->lock);

	rc = list_from_graph(ctx, dir, &err);

	pthread_mutex_lock(&st->lock);
	for (struct listing **pp = &st->listings; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	}
	l->done = 1;
	l->rc = rc;
	if (l->waiters == 0)
		free(l);
	pthread_cond_broadcast(&st->listed);
	pthread_mutex_unlock(&st->lock);

	if (rc && dir->listed_at) {
		log_list_failure(ctx, dir, rc, err, "; showing the cached listing");
		rc = 0;
	} else if (rc) {
		log_list_failure(ctx, dir, rc, err, "");
	}
	free(err);
	return rc;
}

/* ---- lifecycle --------------------------------------------------------- */

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs_context *ctx = userdata;
	struct fs_state *st;

	st = calloc(1, sizeof(*st));
	if (!st)
		fatalx("cannot start the filesystem: out of memory");
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->listed, NULL);
	/* main.c read the drive at start-up; an empty quota is fetched at the first statfs. */
	st->quota_at = ctx->drive.quota.total ? time(NULL) : 0;
	ctx->state = st;

	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	if (conn->capable & FUSE_CAP_READDIRPLUS_AUTO)
		conn->want |= FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
				  FUSE_CAP_SPLICE_MOVE);
	/* Read replies go from the cache file to the kernel by splice: no copy through us. */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	/*
	 * Writes go straight through to content.c, so getattr and O_APPEND see
	 * every byte at once and close() can commit the upload: no writeback
	 * cache.  O_TRUNC comes with open (one handle truncates, no setattr).
	 */
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* A small kernel readahead keeps thumbnail reads small; content.c grows its own. */
	if (conn->max_readahead > KERNEL_READAHEAD)
		conn->max_readahead = KERNEL_READAHEAD;
}

static void fs_destroy(void *userdata)
{
	struct fs_context *ctx = userdata;
	struct fs_state *st = ctx->state;
	size_t i;

	if (!st)
		return;
	for (i = 0; i < TAG_BUCKETS; i++) {
		while (st->tags[i]) {
			struct open_tag *t = st->tags[i];

			st->tags[i] = t->next;
			free(t->tag);
			free(t);
		}
	}
	fs_writers_free(st);
	fs_opened_free(st);
	pthread_cond_destroy(&st->listed);
	pthread_mutex_destroy(&st->lock);
	free(st);
	ctx->state = NULL;
}

/* ---- metadata ---------------------------------------------------------- */

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_context *ctx = fs_ctx(req);
	struct fuse_entry_param ep;
	struct cache_entry dir, e;
	int rc;

	if (strlen(name) > 255) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	rc = cache_get(ctx->cache, parent, &dir);
	if (rc) {
		fs_reply_failure(req, rc);
		return;
	}
	rc = fs_refresh_dir(ctx, &dir);
	if (rc)
		goto out_release_dir;
	rc = cache_lookup(ctx->cache, parent, name, &e);
	if (rc)   /* not remembered by the kernel: another spelling may be created next */
		goto out_release_dir;
	fs_fill_entry(ctx, &e, &ep);
	/*
	 * Another spelling of the stored name (names ignore case) gives the
	 * inode one more kernel dentry; cached, it would outlive a rename or
	 * unlink through the stored one.  Aliases are looked up every time.
	 */
	if (e.item.name && strcmp(e.item.name, name) != 0)
		ep.entry_timeout = 0;
	fuse_reply_entry(req, &ep);
	cache_entry_release(&e);
out_release_dir:
	cache_entry_release(&dir);
	if (rc)
		fs_reply_failure(req, rc);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_context *ctx = fs_ctx(req);
	struct cache_entry e;
	struct stat st;
	int rc;

	rc = cache_get(ctx->cache, ino, &e);
	if (rc == -ENOENT && fs_orphan_attr(ctx, ino, fi, &st) == 0) {
		fuse_reply_attr(req, &st, 0);   /* unlinked while open */
		return;
	}
	if (rc) {
		fs_reply_failure(req, fs_stale(rc));
		return;
	}
	fs_fill_attr(ctx, &e, &st);
	cache_entry_release(&e);
	fuse_reply_attr(req, &st, fs_timeout(ctx));
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_context *ctx = fs_ctx(req);
	struct fs_state *st = ctx->state;
	struct drive_info info;
	struct drive_quota q;
	struct statvfs sv;
	time_t now = time(NULL);
	char *err = NULL, ebuf[128];
	int64_t count;

	memset(&info, 0, sizeof(info));
	pthread_mutex_lock(&st->lock);
	/* offline: the figures last read (or stored) stand */
	if (now - st->quota_at >= QUOTA_TTL && !st->quota_busy && !graph_offline_since(ctx->graph)) {
		int rc;

		st->quota_busy = 1;
		pthread_mutex_unlock(&st->lock);
		rc = graph_open_drive(ctx->graph, &info, &err);
		pthread_mutex_lock(&st->lock);
		if (rc == 0)
			ctx->drive.quota = info.quota;
		else    /* the old figures stay; at most one message a QUOTA_TTL */
			log_warnx("cannot refresh the drive quota: %s",
				  fs_error_text(rc, err, ebuf, sizeof(ebuf)));
		st->quota_at = now;
		st->quota_busy = 0;
	}
	q = ctx->drive.quota;
	pthread_mutex_unlock(&st->lock);
	drive_info_release(&info);
	free(err);

	count = cache_count(ctx->cache);
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = (fsblkcnt_t)(q.total > 0 ? q.total / 4096 : 0);
	sv.f_bfree = (fsblkcnt_t)(q.remaining > 0 ? q.remaining / 4096 : 0);
	sv.f_bavail = sv.f_bfree;
	/* OneDrive has no inode limit: report plenty free so df -i stays sane. */
	sv.f_ffree = INT32_MAX;
	sv.f_favail = INT32_MAX;
	sv.f_files = (fsfilcnt_t)(count > 0 ? count : 0) + sv.f_ffree;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

/* ---- folders ----------------------------------------------------------- */

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_context *ctx = fs_ctx(req);
	struct cache_entry dir;
	int rc;

	rc = cache_get(ctx->cache, ino, &dir);
	if (rc) {
		fs_reply_failure(req, rc);
		return;
	}
	rc = fs_refresh_dir(ctx, &dir);
	cache_entry_release(&dir);
	if (rc) {
		fs_reply_failure(req, rc);
		return;
	}
	fi->fh = 0;
	fuse_reply_open(req, fi);
}

struct dir_fill {
	fuse_req_t req;
	struct fs_context *ctx;
	char *buf;
	size_t size, pos;
	int plus;
};

/* Add one entry; 1 when the buffer is full (the entry was not added). */
static int dir_add(struct dir_fill *d, const char *name, const struct cache_entry *e,
		   uint64_t dot_ino, off_t next)
{
	size_t need;

	if (d->plus) {
		struct fuse_entry_param ep;

		if (e) {
			fs_fill_entry(d->ctx, e, &ep);
		} else {
			/* "." and "..": no inode handed out, no lookup count. */
			memset(&ep, 0, sizeof(ep));
			ep.attr.st_ino = dot_ino;
			ep.attr.st_mode = S_IFDIR;
		}
		need = fuse_add_direntry_plus(d->req, d->buf + d->pos, d->size - d->pos, name,
					      &ep, next);
	} else {
		struct stat st;

		if (e) {
			fs_fill_attr(d->ctx, e, &st);
		} else {
			memset(&st, 0, sizeof(st));
			st.st_ino = dot_ino;
			st.st_mode = S_IFDIR;
		}
		need = fuse_add_direntry(d->req, d->buf + d->pos, d->size - d->pos, name, &st,
					 next);
	}
	if (need > d->size - d->pos)
		return 1;
	d->pos += need;
	return 0;
}

static int dir_add_child(void *vctx, const struct cache_entry *e)
{
	return dir_add(vctx, e->item.name, e, 0, (off_t)(e->ino + DIR_OFFSET_BASE));
}

/*
 * Offsets: 0 start, 1 after ".", 2 after "..", ino + 2 after a child.
 * Children come in inode order, so an offset stays valid while the folder
 * changes.
 */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
	struct fs_context *ctx = fs_ctx(req);
	struct dir_fill d = { .req = req, .ctx = ctx, .size = size, .plus = plus };
	int rc = 0;

	d.buf = malloc(size);
	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off < 1 && dir_add(&d, ".", NULL, ino, 1))
		goto out_reply;
	if (off < 2) {
		struct cache_entry dir;
		uint64_t parent = ino;

		if (cache_get(ctx->cache, ino, &dir) == 0) {
			if (dir.parent_ino)
				parent = dir.parent_ino;
			cache_entry_release(&dir);
		}
		if (dir_add(&d, "..", NULL, parent, 2))
			goto out_reply;
	}
	rc = cache_list_children(ctx->cache, ino,
				 off > DIR_OFFSET_BASE ? (uint64_t)off - DIR_OFFSET_BASE : 0,
				 dir_add_child, &d);
	if (rc > 0)
		rc = 0;     /* buffer full */
out_reply:
	if (rc < 0 && d.pos == 0)
		fs_reply_failure(req, rc);
	else
		fuse_reply_buf(req, d.buf, d.pos);
	free(d.buf);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, 0);
}

static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, 1);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

/* ---- files ------------------------------------------------------------- */

/* 1 when ino's tag is the one of its last open (its page cache is still good); records tag. */
int fs_tag_unchanged(struct fs_state *st, uint64_t ino, const char *tag)
{
	struct open_tag **pp = &st->tags[ino % TAG_BUCKETS], *t;
	int same = 0;

	pthread_mutex_lock(&st->lock);
	for (t = *pp; t; t = t->next)
		if (t->ino == ino)
			break;
	if (t) {
		same = tag && t->tag && strcmp(t->tag, tag) == 0;
		if (!same) {
			free(t->tag);
			t->tag = tag ? strdup(tag) : NULL;
		}
	} else if ((t = calloc(1, sizeof(*t)))) {
		t->ino = ino;
		t->tag = tag ? strdup(tag) : NULL;
		t->next = *pp;
		*pp = t;
	}
	pthread_mutex_unlock(&st->lock);
	return same;
}

/* A download URL from a listing is only as fresh as that listing. */
static int listing_fresh(struct fs_context *ctx, uint64_t dir_ino)
{
	struct cache_entry d;
	int fresh;

	if (cache_get(ctx->cache, dir_ino, &d))
		return 0;
	fresh = d.listed_at && time(NULL) - d.listed_at < URL_FRESH;
	cache_entry_release(&d);
	return fresh;
}

/* What every open does first (fs_internal.h), for reading and for writing alike. */
int fs_open_begin(struct fs_context *ctx, fuse_ino_t ino, struct cache_entry *e,
		  struct fs_file **h)
{
	int rc;

	rc = cache_get(ctx->cache, ino, e);
	if (rc)
		return fs_stale(rc);
	if (fs_alias_take(ctx->state, ino))
		rc = -ESTALE;   /* maybe through a stale dentry: the kernel retries */
	else if (e->item.is_dir)
		rc = -EISDIR;
	else if (e->item.is_package)
		rc = -EOPNOTSUPP;
	else if (!(*h = calloc(1, sizeof(**h))))
		rc = -ENOMEM;
	if (rc)
		cache_entry_release(e);
	return rc;
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_context *ctx = fs_ctx(req);
	struct fs_file *h;
	struct cache_entry e;
	int rc;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fs_open_write(req, ino, fi);
		return;
	}
	rc = fs_open_begin(ctx, ino, &e, &h);
	if (rc) {
		fs_reply_failure(req, rc);
		return;
	}
	/* cache.c may keep a listed URL; it is only as fresh as its listing. */
	if (e.item.download_url && !listing_fresh(ctx, e.parent_ino)) {
		free(e.item.download_url);
		e.item.download_url = NULL;
	}
	rc = content_file_open(ctx->content, &e.item, &h->cf);
	if (rc) {
		free(h);
		goto out_release;
	}
	h->mtime = e.item.mtime;
	rc = fs_opened_add(ctx->state, ino, h);
	if (rc) {
		fs_file_put(ctx, h);
		goto out_release;
	}
	fi->keep_cache = fs_tag_unchanged(ctx->state, ino, e.item.ctag ? e.item.ctag : e.item.etag);
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(req, fi))
		fs_file_close(ctx, h);  /* interrupted: no release will come */
out_release:
	cache_entry_release(&e);
	if (rc)
		fs_reply_failure(req, rc);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_file *h = fs_file_of(fi);
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(0);
	ssize_t n;
	int fd;

	n = content_read_fd(h->cf, size, off, &fd);
	if (n < 0) {
		fs_reply_failure(req, (int)n);
		return;
	}
	/* libfuse splices from fd when it can, else reads it into a buffer of its own. */
	bv.buf[0].size = (size_t)n;
	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv.buf[0].fd = fd;
	bv.buf[0].pos = off;
	fuse_reply_data(req, &bv, 0);
}

static const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.destroy = fs_destroy,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.releasedir = fs_releasedir,
	.statfs = fs_statfs,
	.setxattr = fs_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
	.create = fs_create,
	.fallocate = fs_fallocate,
	.copy_file_range = fs_copy_file_range,
};

/* The trash and versions folders (fs_virtual.c) answer before these. */
const struct fuse_lowlevel_ops *fs_operations(void)
{
	return fs_virtual_ops(&fs_ops);
}
