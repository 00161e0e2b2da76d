/*
 * fs_handles.c - what the FUSE operations know of open files, per inode:
 * writer records (size and time while a file is written), the open
 * handles (an unlinked or replaced file stays usable through them), and
 * short notes (written lately, moved through another spelling).  All under
 * fs_state's lock; fs_write.c and fs_names.c act on them.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "fs_internal.h"

/* ---- writer records ------------------------------------------------------ */

static struct fs_writer **writer_slot(struct fs_state *st, uint64_t ino)
{
	struct fs_writer **pp = &st->writers[ino % WRITER_BUCKETS];

	while (*pp && (*pp)->ino != ino)
		pp = &(*pp)->next;
	return pp;
}

/*
 * Count one more write handle on ino.  A new record starts from size and
 * mtime; an existing one keeps its newer values unless reset (O_TRUNC).
 */
int fs_writer_get(struct fs_state *st, uint64_t ino, int64_t size, const struct timespec *mtime,
		  int reset)
{
	struct fs_writer **pp, *w;
	int rc = 0;

	pthread_mutex_lock(&st->lock);
	pp = writer_slot(st, ino);
	w = *pp;
	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w) {
			rc = -ENOMEM;
			goto out_unlock;
		}
		w->ino = ino;
		*pp = w;
		reset = 1;
	}
	w->nopen++;
	if (reset) {
		w->size = size;
		w->mtime = *mtime;
	}
out_unlock:
	pthread_mutex_unlock(&st->lock);
	return rc;
}

void fs_writer_put(struct fs_state *st, uint64_t ino)
{
	struct fs_writer **pp, *w;

	pthread_mutex_lock(&st->lock);
	pp = writer_slot(st, ino);
	w = *pp;
	if (w && --w->nopen == 0) {
		*pp = w->next;
		free(w);
	}
	pthread_mutex_unlock(&st->lock);
}

void fs_writer_set(struct fs_state *st, uint64_t ino, const int64_t *size,
		   const struct timespec *mtime)
{
	struct fs_writer *w;

	pthread_mutex_lock(&st->lock);
	w = *writer_slot(st, ino);
	if (w && size)
		w->size = *size;
	if (w && mtime)
		w->mtime = *mtime;
	pthread_mutex_unlock(&st->lock);
}

int fs_writer_peek(struct fs_state *st, uint64_t ino, int64_t *size, struct timespec *mtime)
{
	struct fs_writer *w;

	pthread_mutex_lock(&st->lock);
	w = *writer_slot(st, ino);
	if (w) {
		*size = w->size;
		*mtime = w->mtime;
	}
	pthread_mutex_unlock(&st->lock);
	return w != NULL;
}

void fs_writers_free(struct fs_state *st)
{
	size_t i;

	for (i = 0; i < WRITER_BUCKETS; i++) {
		while (st->writers[i]) {
			struct fs_writer *w = st->writers[i];

			st->writers[i] = w->next;
			free(w);
		}
	}
}

/* ---- open handles ------------------------------------------------------- */

static struct fs_opened **opened_slot(struct fs_state *st, uint64_t ino)
{
	struct fs_opened **pp = &st->opened[ino % WRITER_BUCKETS];

	while (*pp && (*pp)->ino != ino)
		pp = &(*pp)->next;
	return pp;
}

int fs_opened_add(struct fs_state *st, uint64_t ino, struct fs_file *h)
{
	struct fs_opened **pp, *o;
	int rc = 0;

	h->ino = ino;
	atomic_store(&h->refs, 1);
	pthread_mutex_lock(&st->lock);
	pp = opened_slot(st, ino);
	o = *pp;
	if (!o) {
		o = calloc(1, sizeof(*o));
		if (!o) {
			rc = -ENOMEM;
			goto out_unlock;
		}
		o->ino = ino;
		*pp = o;
	}
	h->next_open = o->files;
	o->files = h;
out_unlock:
	pthread_mutex_unlock(&st->lock);
	return rc;
}

/* h is closing: it no longer counts nor serves ino. */
void fs_opened_remove(struct fs_state *st, struct fs_file *h)
{
	struct fs_opened **pp, *o;
	struct fs_file **fp;

	pthread_mutex_lock(&st->lock);
	pp = opened_slot(st, h->ino);
	o = *pp;
	if (o) {
		for (fp = &o->files; *fp && *fp != h; fp = &(*fp)->next_open)
			;
		if (*fp)
			*fp = h->next_open;
		if (!o->files) {
			*pp = o->next;
			free(o);
		}
	}
	pthread_mutex_unlock(&st->lock);
}

int fs_is_open(struct fs_state *st, uint64_t ino)
{
	int open;

	pthread_mutex_lock(&st->lock);
	open = *opened_slot(st, ino) != NULL;
	pthread_mutex_unlock(&st->lock);
	return open;
}

/* A handle open on ino, with a reference for the caller (NULL if none). */
struct fs_file *fs_handle_borrow(struct fs_state *st, uint64_t ino)
{
	struct fs_opened *o;
	struct fs_file *h = NULL;

	pthread_mutex_lock(&st->lock);
	o = *opened_slot(st, ino);
	if (o && o->files) {
		h = o->files;
		atomic_fetch_add(&h->refs, 1);
	}
	pthread_mutex_unlock(&st->lock);
	return h;
}

/*
 * Whether a handle on ino has changes its flush or release will commit,
 * with the size and time of ino's writer record.  A commit clears changed
 * before it reads that record, so a time set in the record before this
 * answered 1 is never missed.
 */
int fs_commit_pending(struct fs_state *st, uint64_t ino)
{
	struct fs_opened *o;
	int pending = 0;

	pthread_mutex_lock(&st->lock);
	o = *opened_slot(st, ino);
	for (struct fs_file *h = o ? o->files : NULL; h && !pending; h = h->next_open)
		pending = h->writable && atomic_load(&h->changed);
	pthread_mutex_unlock(&st->lock);
	return pending;
}

void fs_opened_free(struct fs_state *st)
{
	size_t i;

	for (i = 0; i < WRITER_BUCKETS; i++) {
		while (st->opened[i]) {
			struct fs_opened *o = st->opened[i];

			st->opened[i] = o->next;
			free(o);
		}
	}
}

void fs_note_written(struct fs_state *st, uint64_t ino)
{
	size_t slot = ino % RECENT_SLOTS;

	pthread_mutex_lock(&st->lock);
	st->recent[slot].ino = ino;
	st->recent[slot].at = time(NULL);
	pthread_mutex_unlock(&st->lock);
}

void fs_alias_note(struct fs_state *st, uint64_t ino)
{
	pthread_mutex_lock(&st->lock);
	st->alias_moved[ino % ALIAS_SLOTS] = ino;
	pthread_mutex_unlock(&st->lock);
}

int fs_alias_take(struct fs_state *st, uint64_t ino)
{
	size_t slot = ino % ALIAS_SLOTS;
	int taken;

	pthread_mutex_lock(&st->lock);
	taken = st->alias_moved[slot] == ino;
	if (taken)
		st->alias_moved[slot] = 0;
	pthread_mutex_unlock(&st->lock);
	return taken;
}

int fs_written_lately(struct fs_state *st, uint64_t ino, time_t seconds)
{
	size_t slot = ino % RECENT_SLOTS;
	int lately;

	pthread_mutex_lock(&st->lock);
	lately = st->recent[slot].ino == ino && time(NULL) - st->recent[slot].at < seconds;
	pthread_mutex_unlock(&st->lock);
	return lately;
}
