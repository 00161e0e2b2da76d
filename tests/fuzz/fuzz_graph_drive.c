/*
 * fuzz_graph_drive.c - graph_parse_drive() on arbitrary bytes (GET /me/drive).
 *
 * A parsed drive has an id and no negative quota numbers (statfs divides
 * them into blocks).
 */
#include <errno.h>

#include "fuzz.h"
#include "graph.h"
#include "item.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct drive_info info;
	int rc;

	rc = graph_parse_drive((const char *)data, size, &info);
	if (rc < 0) {
		FUZZ_CHECK(rc == -EIO || rc == -ENOMEM);
		return 0;
	}
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(info.id && *info.id);
	FUZZ_CHECK(info.quota.total >= 0 && info.quota.used >= 0);
	FUZZ_CHECK(info.quota.remaining >= 0 && info.quota.deleted >= 0);
	drive_info_release(&info);
	return 0;
}
