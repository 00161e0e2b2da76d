/*
 * fixture.h - what the cache and content unit tests share: a temporary
 * directory per test program, a metadata cache in it with a root, and
 * plain items to put in it.
 *
 * The helpers report trouble on stderr and return it; tests CHECK the
 * result (unit.h's counters belong to each test file).
 */
#ifndef ODFS_FIXTURE_H
#define ODFS_FIXTURE_H

#include "cache.h"
#include "item.h"

#define FIXTURE_ROOT_ID "root!1"
#define FIXTURE_DRIVE_ID "0123ABCD"

/* The temporary directory, and its meta.db (set by fixture_setup). */
extern char fixture_dir[64];
extern char fixture_db[128];

/* Create /tmp/odfs-<name>-XXXXXX: 0, or -1 after saying why. */
int fixture_setup(const char *name);
/* Remove the directory and everything in it. */
void fixture_teardown(void);
/* Remove meta.db with its -wal, -shm and -journal files. */
void fixture_remove_db(void);
/*
 * An item that borrows its strings: a 42-byte file or a folder, modified
 * at 1700000000, with an eTag and a cTag.
 */
struct drive_item fixture_item(const char *id, const char *parent_id, const char *name,
			       int is_dir);
/*
 * Open meta.db (removed first when wipe) into *c, with root
 * FIXTURE_ROOT_ID of drive FIXTURE_DRIVE_ID: 0 or -errno.  *c is set
 * whenever the cache opened, even if setting the root failed.
 */
int fixture_cache(int wipe, struct cache **c);

#endif
