/*
 * test_cache_local.c - the metadata cache's local changes, in a temporary
 * directory: local ids, moves (with rename-over and cycles), local sizes
 * and times, dirty flags, taking an upload's result, recovery listing, the
 * invariant that listings never remove or overwrite local and dirty items,
 * and the upgrade of a cache from before the write path.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cache.h"
#include "fixture.h"
#include "unit.h"

static struct cache *reopen(void)
{
	struct cache *c;

	CHECK_INT(fixture_cache(0, &c), 0);
	return c;
}

static struct cache *fresh(void)
{
	struct cache *c;

	CHECK_INT(fixture_cache(1, &c), 0);
	return c;
}

static uint64_t add(struct cache *c, const char *id, const char *parent_id, const char *name,
		    int is_dir)
{
	struct drive_item it = fixture_item(id, parent_id, name, is_dir);
	uint64_t ino = 0;

	CHECK_INT(cache_upsert(c, &it, &ino), 0);
	return ino;
}

/* The entry at ino (zeroed when absent). */
static struct cache_entry get(struct cache *c, uint64_t ino)
{
	struct cache_entry e;

	if (cache_get(c, ino, &e))
		memset(&e, 0, sizeof(e));
	return e;
}

static int exists(struct cache *c, uint64_t ino)
{
	struct cache_entry e = get(c, ino);
	int found = e.ino != 0;

	cache_entry_release(&e);
	return found;
}

static void test_create_local(void)
{
	struct cache *c = fresh();
	struct timespec t = { 1710000000, 5 };
	uint64_t file, folder, sub, ino = 0;
	struct cache_entry e;
	char *id = NULL;

	if (!c)
		return;
	CHECK_INT(cache_create_local(c, CACHE_ROOT_INO, "New.txt", 0, &t, &file, &id), 0);
	CHECK(id && strncmp(id, CACHE_LOCAL_PREFIX, strlen(CACHE_LOCAL_PREFIX)) == 0);
	CHECK_INT(id ? strlen(id) : 0, strlen(CACHE_LOCAL_PREFIX) + 32);
	CHECK_INT(cache_get(c, file, &e), 0);
	CHECK_STR(e.item.id, id);
	CHECK_STR(e.item.name, "New.txt");
	CHECK_STR(e.item.parent_id, "root!1");
	CHECK(e.is_local && e.dirty && !e.item.is_dir);
	CHECK_INT(e.item.size, 0);
	CHECK_INT(e.item.mtime.tv_sec, 1710000000);
	CHECK_INT(e.item.mtime.tv_nsec, 5);
	CHECK(e.item.etag == NULL && e.item.ctag == NULL);
	cache_entry_release(&e);
	free(id);
	/* Names are taken case-insensitively, by local and remote items alike. */
	CHECK_INT(cache_create_local(c, CACHE_ROOT_INO, "NEW.TXT", 0, NULL, &ino, NULL), -EEXIST);
	add(c, "F1", "root!1", "remote.txt", 0);
	CHECK_INT(cache_create_local(c, CACHE_ROOT_INO, "Remote.TXT", 1, NULL, &ino, NULL),
		  -EEXIST);
	CHECK_INT(cache_create_local(c, 9999, "x", 0, NULL, &ino, NULL), -ENOENT);
	CHECK_INT(cache_create_local(c, file, "x", 0, NULL, &ino, NULL), -ENOTDIR);
	CHECK_INT(cache_create_local(c, CACHE_ROOT_INO, "", 0, NULL, &ino, NULL), -EINVAL);
	/* A new folder counts as listed: there is nothing on the service to list. */
	CHECK_INT(cache_create_local(c, CACHE_ROOT_INO, "Dir", 1, NULL, &folder, NULL), 0);
	CHECK_INT(cache_get(c, folder, &e), 0);
	CHECK(e.item.is_dir && e.listed_at > 0 && e.is_local);
	cache_entry_release(&e);
	CHECK_INT(cache_create_local(c, folder, "inner", 0, NULL, &sub, NULL), 0);
	CHECK(sub > folder && folder > file);
	CHECK_INT(cache_lookup(c, folder, "INNER", &e), 0);
	CHECK_INT(e.ino, sub);
	cache_entry_release(&e);
	cache_close(c);
}

static void test_set_id(void)
{
	struct cache *c = fresh();
	struct cache_entry e;
	uint64_t ino, other;

	if (!c)
		return;
	CHECK_INT(cache_create_local(c, CACHE_ROOT_INO, "a.txt", 0, NULL, &ino, NULL), 0);
	CHECK_INT(cache_set_id(c, ino, "REAL!1"), 0);
	CHECK_INT(cache_get_by_id(c, "REAL!1", &e), 0);
	CHECK_INT(e.ino, ino);          /* the inode stays */
	CHECK(!e.is_local && e.dirty);  /* still dirty until the upload says otherwise */
	cache_entry_release(&e);
	/* A stale row holding the id goes (the id moved to this inode). */
	other = add(c, "REAL!2", "root!1", "b.txt", 0);
	CHECK_INT(cache_set_id(c, ino, "REAL!2"), 0);
	CHECK(!exists(c, other));
	CHECK_INT(cache_get_by_id(c, "REAL!2", &e), 0);
	CHECK_INT(e.ino, ino);
	cache_entry_release(&e);
	CHECK_INT(cache_set_id(c, 9999, "REAL!3"), -ENOENT);
	CHECK_INT(cache_set_id(c, CACHE_ROOT_INO, "REAL!3"), -EINVAL);
	CHECK_INT(cache_set_id(c, ino, "root!1"), -EINVAL);
	cache_close(c);
}

static void test_local_move(void)
{
	struct cache *c = fresh();
	uint64_t d1, d2, sub, file, target, target_child;
	struct cache_entry e;

	if (!c)
		return;
	d1 = add(c, "D1", "root!1", "d1", 1);
	d2 = add(c, "D2", "root!1", "d2", 1);
	sub = add(c, "S", "D1", "sub", 1);
	CHECK_INT(cache_create_local(c, d1, "tmp~", 0, NULL, &file, NULL), 0);
	target = add(c, "T", "D2", "Target", 1);
	target_child = add(c, "TC", "T", "child", 0);
	/* rename(2) over an existing name: the holder and its subtree go. */
	CHECK_INT(cache_move(c, file, d2, "target"), 0);
	CHECK(!exists(c, target) && !exists(c, target_child));
	CHECK_INT(cache_lookup(c, d2, "TARGET", &e), 0);
	CHECK_INT(e.ino, file);
	CHECK_STR(e.item.name, "target");
	CHECK_STR(e.item.parent_id, "D2");
	CHECK(e.is_local && e.dirty);
	cache_entry_release(&e);
	/* A case-only rename of itself is no takeover. */
	CHECK_INT(cache_move(c, file, d2, "TARGET"), 0);
	CHECK(exists(c, file));
	/* Folders move with their subtree; never into themselves. */
	CHECK_INT(cache_move(c, d1, d2, "d1moved"), 0);
	CHECK_INT(cache_lookup(c, d1, "sub", &e), 0);
	CHECK_INT(e.ino, sub);
	cache_entry_release(&e);
	CHECK_INT(cache_move(c, d2, sub, "loop"), -EINVAL);
	CHECK_INT(cache_move(c, d2, d2, "loop"), -EINVAL);
	CHECK_INT(cache_move(c, CACHE_ROOT_INO, d2, "x"), -EINVAL);
	CHECK_INT(cache_move(c, file, file, "x"), -ENOTDIR);
	CHECK_INT(cache_move(c, 9999, d2, "x"), -ENOENT);
	CHECK_INT(cache_move(c, file, 9999, "x"), -ENOENT);
	cache_close(c);
}

static void test_attrs_and_dirty(void)
{
	struct cache *c = fresh();
	struct timespec t = { 1720000000, 42 };
	int64_t size = 123456;
	struct cache_entry e;
	uint64_t ino;

	if (!c)
		return;
	ino = add(c, "F", "root!1", "f.txt", 0);
	e = get(c, ino);
	CHECK(!e.dirty && !e.is_local);
	cache_entry_release(&e);
	CHECK_INT(cache_set_local_attrs(c, ino, &size, NULL), 0);
	e = get(c, ino);
	CHECK_INT(e.item.size, 123456);
	CHECK_INT(e.item.mtime.tv_sec, 1700000000);
	cache_entry_release(&e);
	CHECK_INT(cache_set_local_attrs(c, ino, NULL, &t), 0);
	e = get(c, ino);
	CHECK_INT(e.item.size, 123456);
	CHECK_INT(e.item.mtime.tv_sec, 1720000000);
	CHECK_INT(e.item.mtime.tv_nsec, 42);
	cache_entry_release(&e);
	CHECK_INT(cache_set_dirty(c, ino, 1), 0);
	e = get(c, ino);
	CHECK(e.dirty);
	cache_entry_release(&e);
	CHECK_INT(cache_set_dirty(c, ino, 0), 0);
	e = get(c, ino);
	CHECK(!e.dirty);
	cache_entry_release(&e);
	CHECK_INT(cache_set_dirty(c, 9999, 1), -ENOENT);
	CHECK_INT(cache_set_local_attrs(c, 9999, &size, &t), -ENOENT);
	size = -1;
	CHECK_INT(cache_set_local_attrs(c, ino, &size, NULL), -EINVAL);
	cache_close(c);
}

static void test_update_remote(void)
{
	struct cache *c = fresh();
	struct drive_item up = fixture_item("REAL!9", "ignored", "ignored", 0);
	int64_t size = 5000;
	struct cache_entry e;
	uint64_t dir_ino, ino;

	if (!c)
		return;
	dir_ino = add(c, "D", "root!1", "d", 1);
	CHECK_INT(cache_create_local(c, dir_ino, "n.txt", 0, NULL, &ino, NULL), 0);
	CHECK_INT(cache_set_local_attrs(c, ino, &size, NULL), 0);
	/* Written again meanwhile: the new base is taken, local size and dirt stay. */
	up.size = 4000;
	up.etag = (char *)"\"{R9},2\"";
	up.ctag = (char *)"\"c:{R9},2\"";
	up.qxhash = (char *)"AAAA";
	up.mtime.tv_sec = 1690000000;
	CHECK_INT(cache_update_remote(c, ino, &up, 0), 0);
	CHECK_INT(cache_get_by_id(c, "REAL!9", &e), 0);
	CHECK_INT(e.ino, ino);
	CHECK(e.dirty && !e.is_local);
	CHECK_INT(e.item.size, 5000);
	CHECK_STR(e.item.ctag, "\"c:{R9},2\"");
	CHECK_STR(e.item.etag, "\"{R9},2\"");
	CHECK_STR(e.item.qxhash, "AAAA");
	CHECK_STR(e.item.name, "n.txt");    /* name and parent stay ours */
	CHECK_STR(e.item.parent_id, "D");
	cache_entry_release(&e);
	/* The upload took everything: clean, size and time from the service. */
	up.size = 5000;
	up.ctag = (char *)"\"c:{R9},3\"";
	CHECK_INT(cache_update_remote(c, ino, &up, 1), 0);
	e = get(c, ino);
	CHECK(!e.dirty);
	CHECK_INT(e.item.size, 5000);
	CHECK_INT(e.item.mtime.tv_sec, 1690000000);
	CHECK_STR(e.item.ctag, "\"c:{R9},3\"");
	cache_entry_release(&e);
	/* A clean item (a PATCH after a rename) takes size and time too. */
	up.size = 7;
	CHECK_INT(cache_update_remote(c, ino, &up, 0), 0);
	e = get(c, ino);
	CHECK_INT(e.item.size, 7);
	cache_entry_release(&e);
	CHECK_INT(cache_update_remote(c, CACHE_ROOT_INO, &up, 1), -EINVAL);
	CHECK_INT(cache_update_remote(c, 9999, &up, 1), -ENOENT);
	cache_close(c);
}

struct collected {
	uint64_t ino[16];
	int n;
};

static int collect(void *ctx, const struct cache_entry *e)
{
	struct collected *col = ctx;

	if (col->n < 16)
		col->ino[col->n++] = e->ino;
	return 0;
}

static void test_list_dirty(void)
{
	struct cache *c = fresh();
	struct collected col = { { 0 }, 0 };
	uint64_t a, b, d, local;

	if (!c)
		return;
	a = add(c, "A", "root!1", "a", 0);
	b = add(c, "B", "root!1", "b", 0);
	d = add(c, "DD", "root!1", "dd", 1);
	CHECK_INT(cache_list_dirty(c, collect, &col), 0);
	CHECK_INT(col.n, 0);
	CHECK_INT(cache_set_dirty(c, b, 1), 0);
	CHECK_INT(cache_create_local(c, d, "new", 0, NULL, &local, NULL), 0);
	CHECK_INT(cache_set_dirty(c, local, 0), 0);     /* local alone is enough */
	CHECK_INT(cache_list_dirty(c, collect, &col), 0);
	CHECK_INT(col.n, 2);
	CHECK_INT(col.ino[0], b);
	CHECK_INT(col.ino[1], local);
	CHECK(a != b);
	cache_close(c);
	/* It survives a remount: this is what recovery walks. */
	c = reopen();
	if (!c)
		return;
	col.n = 0;
	CHECK_INT(cache_list_dirty(c, collect, &col), 0);
	CHECK_INT(col.n, 2);
	cache_close(c);
}

/* The invariant: the server's listings never remove or overwrite what it does not know yet. */
static void test_listing_keeps_local(void)
{
	struct cache *c = fresh();
	struct drive_item list[4];
	uint64_t local, dirty, gone_dirty, folder, nested, clean;
	int64_t size = 999;
	struct cache_entry e;

	if (!c)
		return;
	clean = add(c, "C", "root!1", "clean.txt", 0);
	dirty = add(c, "DI", "root!1", "dirty.txt", 0);
	gone_dirty = add(c, "GD", "root!1", "gone-dirty.txt", 0);
	folder = add(c, "FO", "root!1", "folder", 1);
	CHECK_INT(cache_create_local(c, CACHE_ROOT_INO, "Local.txt", 0, NULL, &local, NULL), 0);
	CHECK_INT(cache_create_local(c, folder, "nested", 0, NULL, &nested, NULL), 0);
	CHECK_INT(cache_set_local_attrs(c, dirty, &size, NULL), 0);
	CHECK_INT(cache_set_dirty(c, dirty, 1), 0);
	CHECK_INT(cache_set_dirty(c, gone_dirty, 1), 0);

	/* The server lists clean.txt, dirty.txt (changed elsewhere) and a new local.txt. */
	list[0] = fixture_item("C", "root!1", "clean.txt", 0);
	list[1] = fixture_item("DI", "root!1", "dirty-renamed.txt", 0);
	list[1].size = 1;
	list[1].ctag = (char *)"\"c:{DI},9\"";
	list[2] = fixture_item("NEW", "root!1", "local.TXT", 0);
	CHECK_INT(cache_replace_children(c, CACHE_ROOT_INO, list, 3, 1234), 0);
	CHECK(exists(c, clean));
	CHECK(exists(c, local));                /* absent from the list: kept */
	CHECK(exists(c, gone_dirty));           /* dirty, absent: kept */
	CHECK(exists(c, folder) && exists(c, nested)); /* vanished, but holds a local item */
	e = get(c, dirty);                      /* present: nothing of ours overwritten */
	CHECK_INT(e.item.size, 999);
	CHECK_STR(e.item.ctag, "\"c:{E},1\"");
	CHECK_STR(e.item.name, "dirty.txt");
	CHECK(e.dirty);
	cache_entry_release(&e);
	CHECK_INT(cache_get_by_id(c, "NEW", &e), -ENOENT);     /* its name is ours */
	CHECK_INT(cache_lookup(c, CACHE_ROOT_INO, "LOCAL.txt", &e), 0);
	CHECK_INT(e.ino, local);
	cache_entry_release(&e);

	/* Single upserts (delta) obey the same rule. */
	list[3] = fixture_item("DI", "root!1", "other.txt", 0);
	list[3].size = 5;
	CHECK_INT(cache_upsert(c, &list[3], NULL), 0);
	e = get(c, dirty);
	CHECK_INT(e.item.size, 999);
	CHECK_STR(e.item.name, "dirty.txt");
	cache_entry_release(&e);
	list[3] = fixture_item("NEW", "root!1", "local.txt", 0);
	CHECK_INT(cache_upsert(c, &list[3], NULL), -EEXIST);
	CHECK(exists(c, local));

	/* Once clean again, listings rule as before. */
	CHECK_INT(cache_set_dirty(c, dirty, 0), 0);
	CHECK_INT(cache_set_dirty(c, gone_dirty, 0), 0);
	CHECK_INT(cache_replace_children(c, CACHE_ROOT_INO, list, 2, 1235), 0);
	CHECK(!exists(c, gone_dirty));
	e = get(c, dirty);
	CHECK_STR(e.item.name, "dirty-renamed.txt");
	CHECK_INT(e.item.size, 1);
	cache_entry_release(&e);
	CHECK(exists(c, local) && exists(c, folder));
	cache_close(c);
}

/* A cache written before the write path (schema 1) keeps its inodes. */
static void test_upgrade(void)
{
	struct cache *c = fresh();
	struct cache_entry e;
	sqlite3 *db = NULL;
	uint64_t ino, local;

	if (!c)
		return;
	ino = add(c, "OLD", "root!1", "old.txt", 0);
	cache_close(c);
	CHECK_INT(sqlite3_open(fixture_db, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, "ALTER TABLE items DROP COLUMN dirty; PRAGMA user_version = 1;",
			       NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	c = reopen();
	if (!c)
		return;
	CHECK_INT(cache_get_by_id(c, "OLD", &e), 0);
	CHECK_INT(e.ino, ino);
	CHECK(!e.dirty);
	cache_entry_release(&e);
	CHECK_INT(cache_set_dirty(c, ino, 1), 0);
	CHECK_INT(cache_create_local(c, CACHE_ROOT_INO, "n", 0, NULL, &local, NULL), 0);
	CHECK(local > ino);
	cache_close(c);
}

int main(void)
{
	if (fixture_setup("cachel"))
		return 1;
	RUN(test_create_local);
	RUN(test_set_id);
	RUN(test_local_move);
	RUN(test_attrs_and_dirty);
	RUN(test_update_remote);
	RUN(test_list_dirty);
	RUN(test_listing_keeps_local);
	RUN(test_upgrade);
	fixture_teardown();
	return unit_report("cache_local");
}
