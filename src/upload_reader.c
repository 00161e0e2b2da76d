/*
 * upload_reader.c - the staged bytes of one upload, read for the service
 * and hashed (quickXorHash) once each as they go (upload_internal.h).
 */
#define _GNU_SOURCE   /* pread with _FILE_OFFSET_BITS */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "content.h"
#include "graph.h"
#include "upload_internal.h"

int upload_reader_cancelled(const struct reader *r)
{
	return __atomic_load_n(&r->q->stopping, __ATOMIC_RELAXED) ||
	       __atomic_load_n(&r->job->forgotten, __ATOMIC_RELAXED);
}

static ssize_t pread_full(int fd, char *buf, size_t len, int64_t off)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = pread(fd, buf + got, len - got, (off_t)(off + (int64_t)got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Hash bytes [r->hashed, upto) straight from the file (a resumed session). */
static int hash_until(struct reader *r, int64_t upto)
{
	char buf[65536];
	ssize_t n;

	while (r->hashed < upto) {
		n = pread_full(r->fd, buf, (size_t)(upto - r->hashed < (int64_t)sizeof(buf) ?
						     upto - r->hashed : (int64_t)sizeof(buf)),
			       r->hashed);
		if (n <= 0)
			return n < 0 ? (int)n : -EIO;
		qxhash_update(&r->h, buf, (size_t)n);
		r->hashed += n;
	}
	return 0;
}

/*
 * http_source_fn: the next bytes at r->pos, hashed once each.  The
 * descriptor is no snapshot: before the last byte goes out (the one that
 * makes the service commit), make sure nothing was written since staging,
 * else the service would keep a mix of versions whose hash nobody knows.
 */
ssize_t upload_reader_source(void *ctx, char *buf, size_t len)
{
	struct reader *r = ctx;
	int64_t skip;
	ssize_t n;
	int rc;

	if (upload_reader_cancelled(r))
		return -ECANCELED;
	if (r->pos > r->hashed && (rc = hash_until(r, r->pos)) < 0)
		return rc;
	if ((int64_t)len > r->size - r->pos)
		len = (size_t)(r->size - r->pos);   /* the file may have grown meanwhile */
	n = len ? pread_full(r->fd, buf, len, r->pos) : 0;
	if (n > 0 && r->pos + n == r->size && r->st &&
	    content_stage_changed(r->q->content, r->item_id, r->st) == 1)
		n = 0;
	if (n <= 0) {
		if (n == 0)
			r->changed = 1;   /* shorter than staged (a truncate), or written over */
		return n < 0 ? n : -EIO;
	}
	if (r->pos + n > r->hashed) {
		skip = r->hashed - r->pos;
		qxhash_update(&r->h, buf + skip, (size_t)(n - skip));
		r->hashed = r->pos + n;
	}
	r->pos += n;
	return n;
}

/* 1 if the service's hash matches the bytes (or it sent none), else 0; <0 on read errors. */
int upload_reader_matches(struct reader *r, const char *remote)
{
	char local[QXHASH_BASE64_LEN + 1];
	int rc = hash_until(r, r->size);

	if (rc < 0)
		return rc;
	qxhash_final_base64(&r->h, local);
	return !remote || strcmp(local, remote) == 0;
}

/* The hash of the staged bytes, base64 (NULL: they cannot be read). */
const char *upload_reader_hash(struct reader *rd, char *hash)
{
	if (hash_until(rd, rd->size) < 0)
		return NULL;
	qxhash_final_base64(&rd->h, hash);
	return hash;
}

/* 1 if remote holds exactly the staged bytes (say, our own upload whose answer was lost). */
int upload_reader_same_bytes(struct reader *rd, const struct drive_item *remote)
{
	char local[QXHASH_BASE64_LEN + 1];

	if (!remote->qxhash || remote->size != rd->size || hash_until(rd, rd->size) < 0)
		return 0;
	qxhash_final_base64(&rd->h, local);
	return strcmp(local, remote->qxhash) == 0;
}
