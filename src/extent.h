/*
 * extent.h - extent sets: the pure bookkeeping behind "which byte ranges
 * are here" (content.c's present, busy and written ranges).
 *
 * A set is a sorted array of disjoint, non-adjacent half-open ranges
 * [start, end); adding merges.  No locking: the owner serializes.  The
 * storage belongs to the set: extent_set_release() frees it.
 */
#ifndef ODFS_EXTENT_H
#define ODFS_EXTENT_H

#include <stddef.h>
#include <stdint.h>

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
/* Where the range of s holding pos ends, or pos if pos is not in s (s may be NULL). */
int64_t extent_set_skip(const struct extent_set *s, int64_t pos);
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
