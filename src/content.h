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
void content_file_close(struct content_file *f);

/*
 * Remember a download URL seen in a listing (in memory only, a bounded
 * table, trusted for a few minutes), so the first read of that item needs
 * no request for one.
 */
void content_remember_url(struct content_cache *cc, const char *item_id, const char *url);

/* Forget the cached bytes of an item (content changed or item deleted). */
void content_invalidate(struct content_cache *cc, const char *item_id);

/*
 * Extent sets: the pure bookkeeping behind "which byte ranges are here".
 * A set is a sorted array of disjoint, non-adjacent half-open ranges
 * [start, end); adding merges.  No locking: the owner serializes.
 * Exposed for the unit tests.
 */
struct extent {
	int64_t start, end;     /* start < end */
};

struct extent_set {
	struct extent *v;       /* sorted by start; touching ranges are merged */
	size_t n, cap;
};

#define EXTENT_SET_INIT { NULL, 0, 0 }

void extent_set_release(struct extent_set *s);   /* frees v, leaves an empty set */
void extent_set_clear(struct extent_set *s);     /* empties, keeps the storage */
/* Add [start, end), merging with neighbours; 0 or -ENOMEM.  Empty ranges are a no-op. */
int extent_set_add(struct extent_set *s, int64_t start, int64_t end);
/* Remove [start, end) (may split a range); 0 or -ENOMEM. */
int extent_set_remove(struct extent_set *s, int64_t start, int64_t end);
/* 1 when every byte of [start, end) is in the set (an empty range is). */
int extent_set_covers(const struct extent_set *s, int64_t start, int64_t end);
/*
 * The first sub-range of [start, end) that is in neither a nor b (b may be
 * NULL).  Returns 1 and fills *gap, or 0 when there is none.
 */
int extent_set_first_gap(const struct extent_set *a, const struct extent_set *b,
			 int64_t start, int64_t end, struct extent *gap);
/* Total bytes in the set. */
int64_t extent_set_bytes(const struct extent_set *s);
/*
 * Text form for the index: "start-end start-end ...".  format returns a
 * malloc'd string (NULL on ENOMEM; "" for an empty set).  parse replaces
 * the set; ranges beyond limit or malformed text give -EINVAL.
 */
char *extent_set_format(const struct extent_set *s);
int extent_set_parse(struct extent_set *s, const char *text, int64_t limit);

#endif
