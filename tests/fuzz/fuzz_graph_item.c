/*
 * fuzz_graph_item.c - graph_parse_item() on arbitrary bytes: a driveItem
 * from GET item, a listing page or (later) delta, as the service sends it.
 *
 * Beyond "no crash, no leak": a parsed item keeps graph.h's and item.h's
 * promises (an id, a usable name unless root or deleted, no parent for the
 * root, size >= 0, valid times) and survives a deep copy.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"
#include "graph.h"
#include "item.h"

static int same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void check_time(const struct timespec *ts)
{
	FUZZ_CHECK(ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct drive_item it, copy;
	int rc;

	rc = graph_parse_item((const char *)data, size, &it);
	if (rc < 0) {
		/* nothing to release: a leak here is the parser's */
		FUZZ_CHECK(rc == -EIO || rc == -ENOMEM);
		return 0;
	}
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(it.id && *it.id);
	if (!it.is_root && !it.is_deleted) {
		FUZZ_CHECK(it.name && *it.name);
		FUZZ_CHECK(!strchr(it.name, '/'));
		FUZZ_CHECK(strcmp(it.name, ".") != 0 && strcmp(it.name, "..") != 0);
	}
	FUZZ_CHECK(!it.is_root || (it.is_dir && !it.parent_id));
	FUZZ_CHECK(it.size >= 0);
	check_time(&it.mtime);
	check_time(&it.ctime_created);

	if (drive_item_copy(&copy, &it) == 0) {
		FUZZ_CHECK(same(copy.id, it.id) && same(copy.name, it.name));
		FUZZ_CHECK(same(copy.parent_id, it.parent_id) && same(copy.etag, it.etag));
		FUZZ_CHECK(same(copy.ctag, it.ctag) && same(copy.qxhash, it.qxhash));
		FUZZ_CHECK(same(copy.download_url, it.download_url));
		FUZZ_CHECK(copy.size == it.size && copy.is_dir == it.is_dir);
		drive_item_release(&copy);
	}
	drive_item_release(&it);
	FUZZ_CHECK(!it.id && !it.name && !it.download_url);
	return 0;
}
