/*
 * item.h - a driveItem as the rest of the program sees it.
 *
 * graph.c fills these from Graph JSON; cache.c stores them.  All strings are
 * malloc'd and owned by the struct: drive_item_release() frees them and
 * leaves the struct zeroed.  Times are fileSystemInfo times (client times),
 * falling back to the service times when fileSystemInfo is absent.
 */
#ifndef ODFS_ITEM_H
#define ODFS_ITEM_H

#include <stdint.h>
#include <time.h>

struct drive_item {
	char *id;            /* opaque Graph id, never NULL in a valid item */
	char *parent_id;     /* NULL for the root */
	char *name;
	int is_dir;          /* folder facet (or the root) */
	int is_root;
	int is_package;      /* OneNote and similar: neither file nor folder */
	int is_deleted;      /* deleted facet (delta) */
	int64_t size;        /* bytes; folders: as reported, clamped at 0 */
	struct timespec mtime;
	struct timespec ctime_created;
	char *etag;
	char *ctag;          /* may be NULL (Business folders, delta) */
	char *qxhash;        /* base64 quickXorHash or NULL */
	char *download_url;  /* @microsoft.graph.downloadUrl or NULL; short-lived */
	int64_t child_count; /* folders: folder.childCount as parsed, -1 when not given */
};

struct drive_quota {
	int64_t total, used, remaining, deleted;  /* bytes; 0 when unknown */
};

struct drive_info {
	char *id;
	char *drive_type;    /* personal, business, documentLibrary */
	char *name;
	struct drive_quota quota;
};

void drive_item_release(struct drive_item *item);
/* Deep copy; 0 or -ENOMEM. */
int drive_item_copy(struct drive_item *dst, const struct drive_item *src);
void drive_info_release(struct drive_info *info);

#endif
