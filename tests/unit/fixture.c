/*
 * fixture.c - the shared set-up of the cache and content unit tests (see
 * fixture.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "fixture.h"
#include "item.h"

char fixture_dir[64];
char fixture_db[128];

int fixture_setup(const char *name)
{
	snprintf(fixture_dir, sizeof(fixture_dir), "/tmp/odfs-%s-XXXXXX", name);
	if (!mkdtemp(fixture_dir)) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(fixture_db, sizeof(fixture_db), "%s/meta.db", fixture_dir);
	return 0;
}

void fixture_teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fixture_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", fixture_dir);
}

void fixture_remove_db(void)
{
	static const char *const suffixes[] = { "", "-wal", "-shm", "-journal" };
	char name[160];

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(name, sizeof(name), "%s%s", fixture_db, suffixes[i]);
		unlink(name);
	}
}

struct drive_item fixture_item(const char *id, const char *parent_id, const char *name,
			       int is_dir)
{
	struct drive_item it;

	memset(&it, 0, sizeof(it));
	it.id = (char *)id;
	it.parent_id = (char *)parent_id;
	it.name = (char *)name;
	it.is_dir = is_dir;
	it.size = is_dir ? 0 : 42;
	it.mtime.tv_sec = 1700000000;
	it.etag = (char *)"\"{E},1\"";
	it.ctag = (char *)"\"c:{E},1\"";
	return it;
}

int fixture_cache(int wipe, struct cache **c)
{
	struct drive_item root = fixture_item(FIXTURE_ROOT_ID, NULL, "root", 1);
	char *err = NULL;
	int rc;

	*c = NULL;
	if (wipe)
		fixture_remove_db();
	root.is_root = 1;
	rc = cache_open(fixture_db, c, &err);
	if (rc == 0 && err) {
		fprintf(stderr, "cache_open succeeded with a message: %s\n", err);
		rc = -EINVAL;
	} else if (rc) {
		fprintf(stderr, "cache_open: %d: %s\n", rc, err ? err : "(no message)");
	}
	free(err);
	if (rc == 0 && *c) {
		rc = cache_set_root(*c, FIXTURE_DRIVE_ID, &root);
		if (rc)
			fprintf(stderr, "cache_set_root: %d\n", rc);
	}
	return rc;
}
