/*
 * content.h - file content, fetched lazily by range into a sparse disk cache.
 *
 * Each file's bytes live in cache_dir/content/ as a sparse file keyed by
 * item id and cTag, with a record of which ranges are present; the record
 * survives remounts.  A read returns as soon as the bytes it asked for are
 * there: never a whole-file download first.  Readahead is adaptive per open
 * file: small for random access (a thumbnailer reading the head of many
 * files moves little more than it asked for), growing while reads stay
 * sequential, up to cfg->readahead_max.  A cTag different from the stored
 * one discards the stale bytes.  Least recently used files are evicted
 * beyond cfg->content_cache_max.
 *
 * Thread-safe; several handles on one item share its cached bytes.
 * Functions return 0 / byte counts or -errno.
 */
#ifndef ODFS_CONTENT_H
#define ODFS_CONTENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "extent.h"
#include "item.h"

struct odfs_config;
struct graph;
struct content_cache;
struct content_file;

/* Borrows cfg and g.  Creates cache_dir/content if needed. */
int content_open(const struct odfs_config *cfg, struct graph *g, struct content_cache **out,
		 char **err);
/* Stops the prefetch workers; every content_file must be closed first. */
void content_close(struct content_cache *cc);

/*
 * Open item's content for reading (item is copied: id, ctag, size,
 * download_url).  A download_url passed in is trusted as fresh: the caller
 * drops it when it may be older than a few minutes.  Packages and folders
 * are the caller's business: this only moves bytes.
 */
int content_file_open(struct content_cache *cc, const struct drive_item *item,
		      struct content_file **out);
/*
 * Read up to size bytes at off; returns bytes read (short only at EOF) or
 * -errno: -EIO for any network or service failure (logged once with the
 * item id), -ENOMEM, -ENOSPC when the local cache disk is full.
 */
ssize_t content_read(struct content_file *f, char *buf, size_t size, off_t off);
/*
 * content_read() without the copy: make the bytes present and set *fd to
 * the descriptor they can be read from at off (pread or splice; it stays
 * open while f is).  Returns how many bytes are there (fewer only at EOF,
 * or if a truncate shrinks the file meanwhile) or -errno as content_read.
 */
ssize_t content_read_fd(struct content_file *f, size_t size, off_t off, int *fd);
void content_file_close(struct content_file *f);

/*
 * Remember a download URL seen in a listing (in memory only, a bounded
 * table, trusted for a few minutes), so the first read of that item needs
 * no request for one.
 */
void content_remember_url(struct content_cache *cc, const char *item_id, const char *url);

/*
 * Forget the cached bytes of an item (content changed or item deleted).
 * Local changes, and an item open for writing, are kept: content_discard()
 * drops those.
 */
void content_invalidate(struct content_cache *cc, const char *item_id);

/* Extent sets (which byte ranges are here) moved to extent.h; included for old users. */

/* ---- Local changes: content.c doubles as the staging area ------------------
 *
 * A file being written keeps its bytes in the same sparse data file reads
 * use: written ranges count as present, so reads see the process's own
 * writes at once, and a random write into a large remote file needs no
 * download first.  Such an item is dirty: never evicted, never discarded for
 * a cTag change, and it survives a crash (the index row says dirty and holds
 * the local size).  A generation number counts local changes, so an upload
 * that raced with a new write does not mark the item clean.
 */

/*
 * Open for reading and writing.  item as for content_file_open (for a new
 * local file: its local id, size 0, no tags).  truncate drops the content
 * (O_TRUNC; a change only if there was any).  An item without a tag is a
 * file created here: it is dirty, and the handle modified, from the start
 * (closing it uploads an empty file).  Handles opened with
 * content_file_open see the same local bytes and size.
 */
int content_file_open_write(struct content_cache *cc, const struct drive_item *item, int truncate,
			    struct content_file **out);
/*
 * Write size bytes at off (extends the file as needed; a hole reads as
 * zeros); bytes written or -errno (-EBADF on a read-only handle, -ENOSPC
 * when the cache disk is full).  The item is dirty from now on.
 */
ssize_t content_write(struct content_file *f, const char *buf, size_t size, off_t off);
/* Set the local size of the item behind f (truncate up or down). */
int content_truncate(struct content_file *f, int64_t size);
/* Same without an open handle (setattr on a path); durable (flushed) on return. */
int content_truncate_item(struct content_cache *cc, const struct drive_item *item, int64_t size);
/* The local size as seen by readers of f (may differ from the service's). */
int64_t content_file_size(struct content_file *f);
/* 1 if f has written anything since it was opened (or since the last content_flush). */
int content_file_modified(struct content_file *f);
/*
 * Make f's local changes durable (fdatasync the data, commit the index row
 * as dirty) so they survive a crash.  Called before the upload is queued.
 */
int content_flush(struct content_file *f);

/* For uploads: a complete, stable view of an item's local content. */
struct content_stage {
	int fd;               /* read-only descriptor on the data file */
	int64_t size;         /* bytes to upload */
	uint64_t generation;  /* local change count when staged */
};

/*
 * Make every byte of base_item->id's local content present (downloading
 * what was never fetched nor written, with base_item's download URL when
 * given), then open it read-only for the upload.  -ENOENT if nothing is
 * stored for the item; -EIO (*err, if err, a malloc'd message) when a
 * download failed.  The descriptor is not a snapshot: a write after
 * staging shows through it (and bumps the generation, so the item stays
 * dirty); a truncate may make reads come back short.
 */
int content_stage_open(struct content_cache *cc, const struct drive_item *base_item,
		       struct content_stage *st, char **err);
void content_stage_close(struct content_stage *st);
/*
 * 1 if item_id changed here since st was staged (its generation moved), else
 * 0.  Waits for a write in progress, so bytes read through st before the
 * call that came from a later write are always reported.
 */
int content_stage_changed(struct content_cache *cc, const char *item_id,
			  const struct content_stage *st);

/*
 * The upload of st landed: the content of item_id is now new_id's with tag
 * (the cTag if the response had one, else the eTag: the same rule as
 * content_file_open) on the service.  The bytes stay cached; the item
 * becomes clean unless it changed after st was staged (generation
 * differs; it stays dirty with tag as its new base).  Returns 1 if clean
 * now, 0 if still dirty, or -errno (-ENOENT if nothing is stored).
 * Renames the entry when new_id (may be NULL) differs from item_id (a
 * local file that got its real id); content cached for new_id is replaced.
 */
int content_stage_done(struct content_cache *cc, const char *item_id, const struct content_stage *st,
		       const char *new_id, const char *tag);

/* Move an item's cached content to another id (a local id replaced); open handles follow. */
int content_rename_id(struct content_cache *cc, const char *old_id, const char *new_id);

/* 1 if item_id has local changes not yet uploaded. */
int content_is_dirty(struct content_cache *cc, const char *item_id);

/* Drop an item's content, dirty or not (the file was deleted locally); open handles go on unaffected. */
void content_discard(struct content_cache *cc, const char *item_id);

#endif
