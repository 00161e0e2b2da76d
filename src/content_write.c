/*
 * content_write.c - local changes: the content cache as the staging area of
 * the write path (see "Local changes" in content.h and the DESIGN in
 * content.c).
 *
 * A write or truncate holds the item's io mutex across its change of the
 * data file and of the present ranges, then bumps the generation.  A flush
 * makes it durable: fdatasync of the data file (and of the folder for a
 * new file), then the dirty row committed with a full sync.  Staging
 * fetches what an upload needs that was never fetched nor written and
 * hands out a read-only descriptor; the upload's end compares generations
 * to decide whether the item is clean.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "content_internal.h"
#include "log.h"

/* The item changed here: dirty from now on, no more streaming.  io and lock held. */
static void note_change(struct content_cache *cc, struct content_item *it, struct content_file *f)
{
	it->local = 1;
	it->generation++;
	it->unsaved = 1;
	if (f)
		f->modified = 1;
	if (it->streaming && !it->stream_stop) {
		it->stream_stop = 1;
		content_changed_wake(cc);
	}
}

int content_file_open_write(struct content_cache *cc, const struct drive_item *item, int truncate,
			    struct content_file **out)
{
	struct content_item *it;
	int rc = content_file_open_mode(cc, item, 1, out);

	if (rc)
		return rc;
	it = (*out)->it;
	pthread_mutex_lock(&it->io);
	pthread_mutex_lock(&cc->lock);
	/* No tag: a file created here, whose mere existence is a change to upload. */
	if (!it->local && !*it->tag && !it->detached)
		note_change(cc, it, *out);
	pthread_mutex_unlock(&cc->lock);
	pthread_mutex_unlock(&it->io);
	if (truncate) {
		rc = content_truncate(*out, 0);
		if (rc) {
			content_file_close(*out);
			*out = NULL;
		}
	}
	return rc;
}

ssize_t content_write(struct content_file *f, const char *buf, size_t size, off_t off)
{
	struct content_cache *cc = f->cc;
	struct content_item *it = f->it;
	size_t done = 0;
	int rc = 0;

	if (off < 0 || !f->writable)
		return off < 0 ? -EINVAL : -EBADF;
	if (size > (size_t)SSIZE_MAX)
		size = (size_t)SSIZE_MAX;
	if ((int64_t)size > INT64_MAX - off)
		return -EFBIG;
	if (size == 0)
		return 0;
	pthread_mutex_lock(&it->io);
	while (done < size) {
		ssize_t n = pwrite(it->fd, buf + done, size - done, off + (off_t)done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		done += (size_t)n;
	}
	pthread_mutex_lock(&cc->lock);
	if (done > 0) {
		int64_t end = off + (int64_t)done;
		int r = 0;

		/* A hole between the old end and off reads as zeros: local too. */
		if (off > it->size)
			r = content_item_add_present(cc, it, it->size, off);
		if (r == 0)
			r = content_item_add_present(cc, it, off, end);
		if (end > it->size)
			it->size = end;
		note_change(cc, it, f);
		if (r)
			rc = r;
	}
	if (rc && rc != -ENOMEM) {
		char msg[128];

		log_warnx("cannot write the cache file of item '%s': %s", it->id,
			  log_errstr(rc, msg, sizeof(msg)));
	}
	pthread_mutex_unlock(&cc->lock);
	pthread_mutex_unlock(&it->io);
	/* Bytes written but not recorded as present would be fetched over: fail. */
	if (done > 0 && rc != -ENOMEM)
		return (ssize_t)done;
	return rc;
}

/* Set it's local size.  f (may be NULL) is the handle to mark modified.  Takes the locks. */
static int truncate_item(struct content_cache *cc, struct content_item *it, struct content_file *f,
			 int64_t size)
{
	int rc = 0;

	if (size < 0)
		return -EINVAL;
	pthread_mutex_lock(&it->io);
	pthread_mutex_lock(&cc->lock);
	if (size == it->size)
		goto out_unlock;
	if (ftruncate(it->fd, size)) {
		rc = -errno;
		log_warn("cannot resize the cache file of item '%s'", it->id);
		goto out_unlock;
	}
	if (size < it->size) {
		/* What lay beyond is gone; bytes up to the old size must never be fetched again. */
		rc = content_item_drop_present(cc, it, size, INT64_MAX);
		if (it->fetch_limit > size)
			it->fetch_limit = size;
	} else {
		rc = content_item_add_present(cc, it, it->size, size);     /* zeros */
	}
	it->size = size;
	note_change(cc, it, f);
out_unlock:
	pthread_mutex_unlock(&cc->lock);
	pthread_mutex_unlock(&it->io);
	return rc;
}

int content_truncate(struct content_file *f, int64_t size)
{
	if (!f->writable)
		return -EBADF;
	return truncate_item(f->cc, f->it, f, size);
}

int content_truncate_item(struct content_cache *cc, const struct drive_item *item, int64_t size)
{
	struct content_file *f;
	int rc = content_file_open_write(cc, item, 0, &f);

	if (rc)
		return rc;
	rc = content_truncate(f, size);
	if (rc == 0)
		rc = content_flush(f);
	content_file_close(f);
	return rc;
}

int64_t content_file_size(struct content_file *f)
{
	int64_t size;

	pthread_mutex_lock(&f->cc->lock);
	size = f->it->size;
	pthread_mutex_unlock(&f->cc->lock);
	return size;
}

int content_file_modified(struct content_file *f)
{
	int modified;

	pthread_mutex_lock(&f->cc->lock);
	modified = f->modified;
	pthread_mutex_unlock(&f->cc->lock);
	return modified;
}

/* A new file's name is only durable once its folder is synced. */
static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

int content_flush(struct content_file *f)
{
	struct content_cache *cc = f->cc;
	struct content_item *it = f->it;
	int new_file, rc = 0;

	pthread_mutex_lock(&cc->lock);
	if (!it->local || it->detached || (!f->modified && !it->unsaved)) {
		f->modified = 0;
		pthread_mutex_unlock(&cc->lock);
		return 0;
	}
	new_file = it->new_file;
	pthread_mutex_unlock(&cc->lock);

	if (fdatasync(it->fd) || (new_file && (rc = sync_dir(cc->dir)) != 0)) {
		if (!rc)
			rc = -errno;
		pthread_mutex_lock(&cc->lock);
		log_warn("cannot save the cache file of item '%s'", it->id);
		pthread_mutex_unlock(&cc->lock);
		return rc;
	}
	pthread_mutex_lock(&cc->lock);
	if (!it->detached)
		rc = content_index_save(cc, it, 1);
	if (rc == 0) {
		it->new_file = 0;
		f->modified = 0;
	}
	pthread_mutex_unlock(&cc->lock);
	return rc;
}

int content_stage_open(struct content_cache *cc, const struct drive_item *base_item,
		       struct content_stage *st, char **err)
{
	struct content_item *it;
	char path[4096];
	int rc;

	st->fd = -1;
	st->size = 0;
	st->generation = 0;
	if (err)
		*err = NULL;
	if (!base_item || !base_item->id)
		return -EINVAL;
	pthread_mutex_lock(&cc->lock);
	rc = content_item_get(cc, base_item->id, NULL, 0, &it);
	if (rc)
		goto out_unlock;
	it->refs++;
	if (base_item->download_url && !it->url) {
		it->url = strdup(base_item->download_url);
		it->url_at = time(NULL);
	}
	/* Bytes never fetched nor written (a random write into a big file) come now. */
	rc = content_fetch_ensure(cc, it, 0, it->size, 0, it->size, err);
	if (rc)
		goto out_unref;
	if (it->detached) {
		rc = -ENOENT;   /* discarded meanwhile */
		goto out_unref;
	}
	content_path_of(cc, it->key, path, sizeof(path));
	st->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (st->fd < 0) {
		rc = -errno;
		log_warn("cannot open the cache file '%s'", path);
		goto out_unref;
	}
	st->size = it->size;
	st->generation = it->generation;
	if (it->unsaved)
		content_index_save(cc, it, 0);
out_unref:
	content_item_unref(cc, it);
out_unlock:
	pthread_mutex_unlock(&cc->lock);
	return rc;
}

void content_stage_close(struct content_stage *st)
{
	if (st->fd >= 0)
		close(st->fd);
	st->fd = -1;
}

int content_stage_changed(struct content_cache *cc, const char *item_id,
			  const struct content_stage *st)
{
	struct content_item *it;
	struct content_row row;
	int changed = 0;

	pthread_mutex_lock(&cc->lock);
	it = content_item_find(cc, item_id);
	if (it) {
		/* io first (the lock order of writes): a write in progress finishes and counts */
		it->refs++;
		pthread_mutex_unlock(&cc->lock);
		pthread_mutex_lock(&it->io);
		pthread_mutex_lock(&cc->lock);
		changed = it->generation != st->generation;
		pthread_mutex_unlock(&it->io);
		content_item_unref(cc, it);
	} else if (content_index_load(cc, item_id, &row) == 0) {
		changed = row.generation != st->generation;
		content_row_release(&row);
	}
	pthread_mutex_unlock(&cc->lock);
	return changed;
}

/* Rename what is stored for old_id (not in memory) to new_id.  Lock held. */
static int rename_stored(struct content_cache *cc, const char *old_id, const char *new_id)
{
	char okey[CONTENT_KEY_LEN + 1], nkey[CONTENT_KEY_LEN + 1], from[4096], to[4096];
	struct content_row row;
	struct content_item *other;
	int rc;

	if (strcmp(old_id, new_id) == 0)
		return 0;
	if ((rc = content_key_of(old_id, okey)) || (rc = content_key_of(new_id, nkey)))
		return rc;
	/* nothing stored under old_id (moved already): keep what new_id has */
	if ((rc = content_index_load(cc, old_id, &row)) < 0)
		return rc;
	content_row_release(&row);
	other = content_item_find(cc, new_id);
	if (other)
		content_item_detach(cc, other);
	else
		content_drop_stored(cc, new_id);
	content_path_of(cc, okey, from, sizeof(from));
	content_path_of(cc, nkey, to, sizeof(to));
	if (rename(from, to)) {
		rc = -errno;
		if (rc != -ENOENT)
			log_warn("cannot rename the cache file '%s'", from);
		return rc;
	}
	return content_index_rename(cc, old_id, new_id);
}

/* The in-memory side of content_stage_done().  Takes the locks; it is held by a ref. */
static int stage_done_item(struct content_cache *cc, struct content_item *it,
			   const struct content_stage *st, const char *new_id, const char *tag)
{
	char *t = strdup(tag);
	int clean, rc;

	if (!t)
		return -ENOMEM;
	pthread_mutex_lock(&it->io);
	pthread_mutex_lock(&cc->lock);
	clean = it->generation == st->generation;
	free(it->tag);
	it->tag = t;
	/* Every byte up to the local size is present since staging: nothing is fetched again. */
	if (clean) {
		it->local = 0;
		it->remote_size = it->fetch_limit = it->size;
	} else {
		it->remote_size = st->size;
		it->fetch_limit = st->size < it->size ? st->size : it->size;
	}
	it->unsaved = 1;
	rc = new_id ? content_item_rename(cc, it, new_id) : 0;
	if (!it->detached)
		content_index_save(cc, it, 0);
	pthread_mutex_unlock(&cc->lock);
	pthread_mutex_unlock(&it->io);
	return rc ? rc : clean;
}

int content_stage_done(struct content_cache *cc, const char *item_id, const struct content_stage *st,
		       const char *new_id, const char *tag)
{
	struct content_item *it;
	int rc;

	if (!item_id || !st)
		return -EINVAL;
	if (!tag)
		tag = "";       /* never matches: the bytes will be fetched again if read */
	pthread_mutex_lock(&cc->lock);
	it = content_item_find(cc, item_id);
	if (it) {
		it->refs++;
		pthread_mutex_unlock(&cc->lock);
		rc = stage_done_item(cc, it, st, new_id, tag);
		pthread_mutex_lock(&cc->lock);
		content_item_unref(cc, it);
		pthread_mutex_unlock(&cc->lock);
		return rc;
	}
	rc = content_index_mark_clean(cc, item_id, st->generation, tag);
	if (rc == 0) {
		struct content_row row;

		rc = content_index_load(cc, item_id, &row);    /* changed since, or gone? */
		if (rc == 0)
			content_row_release(&row);
	}
	if (rc >= 0 && new_id) {
		int r = rename_stored(cc, item_id, new_id);

		if (r)
			rc = r;
	}
	pthread_mutex_unlock(&cc->lock);
	return rc;
}

int content_rename_id(struct content_cache *cc, const char *old_id, const char *new_id)
{
	struct content_item *it;
	int rc;

	if (!old_id || !new_id)
		return -EINVAL;
	pthread_mutex_lock(&cc->lock);
	it = content_item_find(cc, old_id);
	rc = it ? content_item_rename(cc, it, new_id) : rename_stored(cc, old_id, new_id);
	if (rc == 0)
		content_alias_add(cc, old_id, new_id);
	pthread_mutex_unlock(&cc->lock);
	return rc;
}

int content_is_dirty(struct content_cache *cc, const char *item_id)
{
	struct content_item *it;
	struct content_row row;
	int dirty = 0;

	pthread_mutex_lock(&cc->lock);
	it = content_item_find(cc, item_id);
	if (it) {
		dirty = it->local;
	} else if (content_index_load(cc, item_id, &row) == 0) {
		dirty = row.dirty;
		content_row_release(&row);
	}
	pthread_mutex_unlock(&cc->lock);
	return dirty;
}

void content_discard(struct content_cache *cc, const char *item_id)
{
	struct content_item *it;

	pthread_mutex_lock(&cc->lock);
	it = content_item_find(cc, item_id);
	if (it)
		content_item_detach(cc, it);    /* open handles go on with the unlinked file */
	else
		content_drop_stored(cc, item_id);
	pthread_mutex_unlock(&cc->lock);
}
