/*
 * fs_xattr.c - the extended attributes every item has: user.onedrive.id,
 * etag, ctag, quickxorhash and status.
 *
 * They are read-only views of the cached item; status says where the
 * file's local changes stand ("clean", "dirty", "uploading", "conflict" or
 * "error: ..."), with ", offline since ..." while the service is out of
 * reach.  The attributes of fs_features.c are asked first.
 */
#define _GNU_SOURCE     /* asprintf */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include "cache.h"
#include "fs.h"
#include "fs_internal.h"
#include "graph.h"
#include "upload.h"

#define XATTR_PREFIX "user.onedrive."

static const char *const xattr_names[] = {
	XATTR_PREFIX "id", XATTR_PREFIX "etag", XATTR_PREFIX "ctag",
	XATTR_PREFIX "quickxorhash", XATTR_PREFIX "status",
};
#define XATTR_COUNT (sizeof(xattr_names) / sizeof(xattr_names[0]))

/* "dirty" -> "dirty, offline since 2026-11-29 05:01:02 UTC" while offline; takes s. */
static char *offline_suffix(struct fs_context *ctx, char *s)
{
	int64_t since = graph_offline_since(ctx->graph);
	time_t t = (time_t)since;
	char when[64], *out;
	struct tm tm;

	if (!s || !since || strncmp(s, "error:", 6) == 0 || strcmp(s, "conflict") == 0)
		return s;
	if (!gmtime_r(&t, &tm) || !strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(when, sizeof(when), "%lld", (long long)since);
	if (asprintf(&out, "%s, offline since %s", s, when) < 0)
		out = NULL;
	free(s);
	return out;
}

/* "clean", "dirty", "uploading", "conflict" or "error: ..." (malloc'd). */
static char *upload_state_of(struct fs_context *ctx, const struct cache_entry *e)
{
	int64_t size;
	struct timespec mtime;
	int changed = e->dirty || e->is_local || fs_writer_peek(ctx->state, e->ino, &size, &mtime);
	char *s;

	if (e->item.is_dir || !ctx->upload)
		return offline_suffix(ctx, strdup(changed && !e->item.is_dir ? "dirty" : "clean"));
	s = upload_status(ctx->upload, e->ino);
	/* No job, but local changes not yet queued (still open, or never closed). */
	if (s && strcmp(s, "clean") == 0 && changed) {
		free(s);
		s = strdup("dirty");
	}
	/* Nothing can go up or be checked until the user signs in again: say so. */
	if (s && (strcmp(s, "clean") == 0 || strcmp(s, "dirty") == 0) &&
	    graph_sign_in_expired(ctx->graph)) {
		free(s);
		s = strdup("error: sign-in expired: run 'onedrivefs login'");
	}
	return offline_suffix(ctx, s);
}

/* Attributes 0-3 straight from the item (NULL when it has none). */
static const char *item_attr(const struct drive_item *it, size_t i)
{
	switch (i) {
	case 0: return it->id;
	case 1: return it->etag;
	case 2: return it->ctag;
	case 3: return it->qxhash;
	}
	return NULL;
}

/*
 * The value of xattr i for e (malloc'd), NULL when it has none: an item
 * not on the service yet has no id or tags.
 */
static char *xattr_value(struct fs_context *ctx, const struct cache_entry *e, size_t i, int *rc)
{
	const char *v;
	char *copy;

	*rc = 0;
	if (i == 4) {
		copy = upload_state_of(ctx, e);
		if (!copy)
			*rc = -ENOMEM;
		return copy;
	}
	v = e->is_local ? NULL : item_attr(&e->item, i);
	if (!v)
		return NULL;
	copy = strdup(v);
	if (!copy)
		*rc = -ENOMEM;
	return copy;
}

void fs_reply_xattr_data(fuse_req_t req, const char *data, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, data, len);
}

void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs_context *ctx = fs_ctx(req);
	char *value = NULL;
	struct cache_entry e;
	size_t i;
	int rc;

	if (fs_feature_getxattr(req, ino, name, size))
		return;
	for (i = 0; i < XATTR_COUNT; i++)
		if (strcmp(name, xattr_names[i]) == 0)
			break;
	if (i == XATTR_COUNT) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	rc = cache_get(ctx->cache, ino, &e);
	if (rc) {
		fs_reply_failure(req, rc);
		return;
	}
	value = xattr_value(ctx, &e, i, &rc);
	cache_entry_release(&e);
	if (rc)
		fs_reply_failure(req, rc);
	else if (value)
		fs_reply_xattr_data(req, value, strlen(value), size);
	else
		fuse_reply_err(req, ENODATA);
	free(value);
}

void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs_context *ctx = fs_ctx(req);
	char list[256];
	struct cache_entry e;
	size_t i, len = 0;
	int rc;

	rc = cache_get(ctx->cache, ino, &e);
	if (rc) {
		fs_reply_failure(req, rc);
		return;
	}
	for (i = 0; i < XATTR_COUNT; i++) {
		/* status always exists; the others only once the service knows the item */
		if (i != 4 && (e.is_local || !item_attr(&e.item, i)))
			continue;
		memcpy(list + len, xattr_names[i], strlen(xattr_names[i]) + 1);
		len += strlen(xattr_names[i]) + 1;
	}
	cache_entry_release(&e);
	fs_reply_xattr_data(req, list, len, size);
}

/* Our attributes are read-only; nothing else is stored. */
void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		 size_t size, int flags)
{
	if (fs_feature_setxattr(req, ino, name, value, size))
		return;
	fuse_reply_err(req, strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) ? ENOTSUP : EPERM);
}

void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fuse_reply_err(req, strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) ? ENOTSUP : EPERM);
}
