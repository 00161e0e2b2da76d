/*
 * item.c - owning and copying driveItem records.
 *
 * Kept apart from graph.c so that cache.c and the tests can handle items
 * without pulling in the network code.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "item.h"

void drive_item_release(struct drive_item *item)
{
	if (!item)
		return;
	free(item->id);
	free(item->parent_id);
	free(item->name);
	free(item->etag);
	free(item->ctag);
	free(item->qxhash);
	free(item->download_url);
	memset(item, 0, sizeof(*item));
}

/* strdup that keeps NULL as NULL; 0 or -ENOMEM. */
static int dup_field(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

int drive_item_copy(struct drive_item *dst, const struct drive_item *src)
{
	struct drive_item tmp = *src;

	/* Scalars come with the struct copy; every string is duplicated. */
	tmp.id = tmp.parent_id = tmp.name = NULL;
	tmp.etag = tmp.ctag = tmp.qxhash = tmp.download_url = NULL;
	if (dup_field(&tmp.id, src->id) || dup_field(&tmp.parent_id, src->parent_id) ||
	    dup_field(&tmp.name, src->name) || dup_field(&tmp.etag, src->etag) ||
	    dup_field(&tmp.ctag, src->ctag) || dup_field(&tmp.qxhash, src->qxhash) ||
	    dup_field(&tmp.download_url, src->download_url)) {
		drive_item_release(&tmp);
		memset(dst, 0, sizeof(*dst));
		return -ENOMEM;
	}
	*dst = tmp;
	return 0;
}

void drive_info_release(struct drive_info *info)
{
	if (!info)
		return;
	free(info->id);
	free(info->drive_type);
	free(info->name);
	memset(info, 0, sizeof(*info));
}
