/*
 * test_cache.c - the SQLite metadata cache, in a temporary directory.
 *
 * Covers the root and drive switches, lookups (case-insensitive, non-ASCII),
 * listing replacement with vanished subtrees, readdir paging, inode
 * stability across reopen and after removal, moves, name takeover, damaged
 * files, refolding, four threads at once, and the speed of big listings.
 */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cache.h"
#include "fixture.h"
#include "unit.h"

/* fixture_item() with nanoseconds, a creation time and a URL that must not be stored. */
static struct drive_item mk(const char *id, const char *parent_id, const char *name, int is_dir)
{
	struct drive_item it = fixture_item(id, parent_id, name, is_dir);

	it.mtime.tv_nsec = 123456789;
	it.ctime_created.tv_sec = 1600000000;
	it.download_url = (char *)"https://example.invalid/never-stored";
	return it;
}

/* A fresh cache with root "root!1" of drive "0123ABCD". */
static struct cache *fresh(void)
{
	struct cache *c;

	CHECK_INT(fixture_cache(1, &c), 0);
	return c;
}

static uint64_t add(struct cache *c, const char *id, const char *parent_id, const char *name,
		    int is_dir)
{
	struct drive_item it = mk(id, parent_id, name, is_dir);
	uint64_t ino = 0;

	CHECK_INT(cache_upsert(c, &it, &ino), 0);
	CHECK(ino > CACHE_ROOT_INO);
	return ino;
}

static int exists_id(struct cache *c, const char *id)
{
	struct cache_entry e;
	int rc = cache_get_by_id(c, id, &e);

	if (rc == 0)
		cache_entry_release(&e);
	return rc == 0;
}

static uint64_t ino_of(struct cache *c, const char *id)
{
	struct cache_entry e;
	uint64_t ino = 0;

	if (cache_get_by_id(c, id, &e) == 0) {
		ino = e.ino;
		cache_entry_release(&e);
	}
	return ino;
}

static void test_root(void)
{
	struct drive_item root2 = mk("other!root", NULL, "root", 1);
	struct cache *c = fresh();
	struct cache_entry e;
	char *v = NULL;

	if (!c)
		return;
	CHECK_INT(cache_get(c, CACHE_ROOT_INO, &e), 0);
	CHECK_STR(e.item.id, "root!1");
	CHECK(e.item.is_root && e.item.is_dir);
	CHECK_INT(e.parent_ino, 0);
	CHECK(e.item.parent_id == NULL);
	CHECK_INT(e.listed_at, 0);
	cache_entry_release(&e);
	CHECK_INT(cache_count(c), 1);

	add(c, "a", "root!1", "a.txt", 0);
	CHECK_INT(cache_meta_set(c, "delta_link", "https://x/delta?token=1"), 0);
	CHECK_INT(cache_set_listed_at(c, CACHE_ROOT_INO, 77), 0);

	/* same personal drive, other casing and a dropped leading zero: kept */
	root2.id = (char *)"root!1";
	root2.is_root = 1;
	CHECK_INT(cache_set_root(c, "123abcd", &root2), 0);
	CHECK_INT(cache_count(c), 2);
	CHECK_INT(cache_get(c, CACHE_ROOT_INO, &e), 0);
	CHECK_INT(e.listed_at, 77);
	cache_entry_release(&e);
	CHECK_INT(cache_meta_get(c, "delta_link", &v), 0);
	free(v);

	/* another drive: wiped */
	root2.id = (char *)"other!root";
	CHECK_INT(cache_set_root(c, "b!Zm9vYmFy", &root2), 0);
	CHECK_INT(cache_count(c), 1);
	CHECK(!exists_id(c, "a"));
	CHECK_INT(cache_meta_get(c, "delta_link", &v), -ENOENT);
	CHECK_INT(cache_meta_get(c, "drive_id", &v), 0);
	CHECK_STR(v, "b!Zm9vYmFy");
	free(v);
	CHECK_INT(cache_get(c, CACHE_ROOT_INO, &e), 0);
	CHECK_STR(e.item.id, "other!root");
	CHECK_INT(e.listed_at, 0);
	cache_entry_release(&e);
	/* business ids are case-sensitive */
	CHECK_INT(cache_set_root(c, "b!ZM9VYMFY", &root2), 0);
	CHECK_INT(cache_meta_get(c, "drive_id", &v), 0);
	CHECK_STR(v, "b!ZM9VYMFY");
	free(v);

	CHECK_INT(cache_remove(c, CACHE_ROOT_INO), -EINVAL);
	CHECK_INT(cache_remove(c, 999999), -ENOENT);
	cache_close(c);
}

static void test_upsert_lookup(void)
{
	struct drive_item it = mk("f1", "root!1", "\xc3\x89t\xc3\xa9.TXT", 0);  /* Été.TXT */
	struct drive_item orphan = mk("o", "nope", "o", 0);
	struct cache *c = fresh();
	struct cache_entry e;
	uint64_t ino = 0, ino2 = 0;

	if (!c)
		return;
	it.qxhash = (char *)"AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	it.size = 1234567890123LL;
	CHECK_INT(cache_upsert(c, &it, &ino), 0);
	CHECK(ino >= 2);

	CHECK_INT(cache_get(c, ino, &e), 0);
	CHECK_STR(e.item.id, "f1");
	CHECK_STR(e.item.parent_id, "root!1");
	CHECK_STR(e.item.name, "\xc3\x89t\xc3\xa9.TXT");
	CHECK_INT(e.parent_ino, CACHE_ROOT_INO);
	CHECK_INT(e.item.size, 1234567890123LL);
	CHECK_INT(e.item.mtime.tv_sec, 1700000000);
	CHECK_INT(e.item.mtime.tv_nsec, 123456789);
	CHECK_INT(e.item.ctime_created.tv_sec, 1600000000);
	CHECK_STR(e.item.etag, "\"{E},1\"");
	CHECK_STR(e.item.ctag, "\"c:{E},1\"");
	CHECK_STR(e.item.qxhash, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
	CHECK(e.item.download_url == NULL);
	CHECK(!e.item.is_dir && !e.item.is_root && !e.item.is_package);
	cache_entry_release(&e);

	CHECK_INT(cache_get_by_id(c, "f1", &e), 0);
	CHECK_INT(e.ino, ino);
	cache_entry_release(&e);
	CHECK_INT(cache_get_by_id(c, "F1", &e), -ENOENT);  /* ids are exact */
	CHECK_INT(cache_get(c, 12345, &e), -ENOENT);

	CHECK_INT(cache_lookup(c, CACHE_ROOT_INO, "\xc3\xa9t\xc3\xa9.txt", &e), 0);  /* été.txt */
	CHECK_INT(e.ino, ino);
	cache_entry_release(&e);
	CHECK_INT(cache_lookup(c, CACHE_ROOT_INO, "\xc3\x89T\xc3\x89.Txt", &e), 0);
	cache_entry_release(&e);
	CHECK_INT(cache_lookup(c, CACHE_ROOT_INO, "ete.txt", &e), -ENOENT);
	CHECK_INT(cache_lookup(c, ino, "x", &e), -ENOENT);

	/* update in place: same inode, new fields */
	it.name = (char *)"renamed.txt";
	it.size = 5;
	it.qxhash = NULL;
	CHECK_INT(cache_upsert(c, &it, &ino2), 0);
	CHECK_INT(ino2, ino);
	CHECK_INT(cache_lookup(c, CACHE_ROOT_INO, "\xc3\xa9t\xc3\xa9.txt", &e), -ENOENT);
	CHECK_INT(cache_lookup(c, CACHE_ROOT_INO, "RENAMED.TXT", &e), 0);
	CHECK_INT(e.item.size, 5);
	CHECK(e.item.qxhash == NULL);
	cache_entry_release(&e);

	CHECK_INT(cache_upsert(c, &orphan, NULL), -ENOENT);
	orphan = mk("root!1", "f1", "root", 1);  /* the root is never moved */
	CHECK_INT(cache_upsert(c, &orphan, NULL), -EINVAL);
	CHECK_INT(cache_get(c, CACHE_ROOT_INO, &e), 0);
	CHECK_INT(e.parent_ino, 0);
	cache_entry_release(&e);
	orphan = mk("o", "nope", "o", 0);
	orphan.parent_id = NULL;
	CHECK_INT(cache_upsert(c, &orphan, NULL), -EINVAL);
	it.is_deleted = 1;
	CHECK_INT(cache_upsert(c, &it, NULL), -EINVAL);
	CHECK_INT(cache_count(c), 2);
	cache_close(c);
}

static void test_replace_children(void)
{
	struct cache *c = fresh();
	uint64_t d, a1, a1x, a2, a3, x, y, other;
	struct cache_entry e;
	struct drive_item list[3];

	if (!c)
		return;
	d = add(c, "D", "root!1", "Dir", 1);
	a1 = add(c, "a1", "D", "a1", 1);
	a1x = add(c, "a1x", "a1", "deep", 0);
	a2 = add(c, "a2", "D", "a2", 0);
	a3 = add(c, "a3", "D", "a3", 0);
	other = add(c, "m", "root!1", "moved-in", 0);
	CHECK(a1 && a1x && a3);

	list[0] = mk("a2", "D", "a2-renamed", 0);
	list[1] = mk("a4", "D", "a4", 1);
	list[2] = mk("m", "D", "moved-in", 0);
	CHECK_INT(cache_replace_children(c, d, list, 3, 1111), 0);
	CHECK(!exists_id(c, "a1"));
	CHECK(!exists_id(c, "a1x"));
	CHECK(!exists_id(c, "a3"));
	CHECK_INT(ino_of(c, "a2"), a2);
	CHECK_INT(ino_of(c, "m"), other);  /* moved in, same inode */
	CHECK(ino_of(c, "a4") > other);
	CHECK_INT(cache_lookup(c, d, "A2-RENAMED", &e), 0);
	cache_entry_release(&e);
	CHECK_INT(cache_lookup(c, CACHE_ROOT_INO, "moved-in", &e), -ENOENT);
	CHECK_INT(cache_get(c, d, &e), 0);
	CHECK_INT(e.listed_at, 1111);
	cache_entry_release(&e);
	CHECK_INT(cache_count(c), 5);  /* root, D, a2, a4, m */

	/* a rename swap keeps both inodes */
	x = add(c, "x", "a4", "one", 0);
	y = add(c, "y", "a4", "two", 0);
	list[0] = mk("x", "a4", "TWO", 0);
	list[1] = mk("y", "a4", "one", 0);
	CHECK_INT(cache_replace_children(c, ino_of(c, "a4"), list, 2, 2222), 0);
	CHECK_INT(ino_of(c, "x"), x);
	CHECK_INT(ino_of(c, "y"), y);
	CHECK_INT(cache_lookup(c, ino_of(c, "a4"), "two", &e), 0);
	CHECK_INT(e.ino, x);
	cache_entry_release(&e);

	/* an item moved up out of a vanished subfolder keeps its inode */
	add(c, "S", "D", "sub", 1);
	x = add(c, "f", "S", "f", 0);
	list[0] = mk("a2", "D", "a2-renamed", 0);
	list[1] = mk("a4", "D", "a4", 1);
	list[2] = mk("f", "D", "f", 0);
	CHECK_INT(cache_replace_children(c, d, list, 3, 1112), 0);
	CHECK(!exists_id(c, "S"));
	CHECK_INT(ino_of(c, "f"), x);
	CHECK(!exists_id(c, "m"));

	/* empty listing removes everything below */
	CHECK_INT(cache_replace_children(c, d, NULL, 0, 3333), 0);
	CHECK_INT(cache_count(c), 2);
	CHECK(!exists_id(c, "x"));

	CHECK_INT(cache_replace_children(c, 99999, list, 2, 1), -ENOENT);
	a2 = add(c, "file", "D", "file", 0);
	CHECK_INT(cache_replace_children(c, a2, list, 2, 1), -ENOTDIR);
	/* the failed transaction left nothing behind */
	CHECK(!exists_id(c, "x"));
	cache_close(c);
}

struct collect {
	uint64_t inos[512];
	size_t n;
	size_t stop_after;      /* 0: never stop */
	struct cache *reenter;  /* call cache_get from inside the callback */
	int reenter_ok;
};

static int collect_fn(void *ctx, const struct cache_entry *e)
{
	struct collect *col = ctx;

	if (col->reenter) {
		struct cache_entry again;

		if (cache_get(col->reenter, e->ino, &again) == 0) {
			col->reenter_ok += strcmp(again.item.id, e->item.id) == 0;
			cache_entry_release(&again);
		}
	}
	if (col->n < 512)
		col->inos[col->n++] = e->ino;
	if (col->stop_after && col->n >= col->stop_after)
		return 7;
	return 0;
}

static void test_list_paging(void)
{
	struct cache *c = fresh();
	struct collect all, page;
	uint64_t d, f, after = 0;
	char id[32], name[32];

	if (!c)
		return;
	d = add(c, "D", "root!1", "D", 1);
	f = add(c, "F", "root!1", "F", 0);
	for (int i = 0; i < 200; i++) {
		snprintf(id, sizeof(id), "c%03d", i);
		snprintf(name, sizeof(name), "Name %d", 199 - i);
		add(c, id, "D", name, i % 3 == 0);
	}
	memset(&all, 0, sizeof(all));
	all.reenter = c;
	CHECK_INT(cache_list_children(c, d, 0, collect_fn, &all), 0);
	CHECK_INT(all.n, 200);
	CHECK_INT(all.reenter_ok, 200);
	for (size_t i = 1; i < all.n; i++)
		CHECK(all.inos[i] > all.inos[i - 1]);

	/* page through 30 at a time, resuming from the last inode seen */
	memset(&page, 0, sizeof(page));
	for (int round = 0; round < 20; round++) {
		struct collect one;
		int rc;

		memset(&one, 0, sizeof(one));
		one.stop_after = 30;
		rc = cache_list_children(c, d, after, collect_fn, &one);
		CHECK(rc == 7 || rc == 0);
		for (size_t i = 0; i < one.n; i++)
			page.inos[page.n++] = one.inos[i];
		if (one.n)
			after = one.inos[one.n - 1];
		if (rc == 0)
			break;
	}
	CHECK_INT(page.n, 200);
	CHECK(memcmp(page.inos, all.inos, 200 * sizeof(uint64_t)) == 0);

	/* an entry added after an offset shows up later, never earlier */
	add(c, "late", "D", "aaa-late", 0);
	memset(&page, 0, sizeof(page));
	CHECK_INT(cache_list_children(c, d, all.inos[199], collect_fn, &page), 0);
	CHECK_INT(page.n, 1);
	CHECK_INT(page.inos[0], ino_of(c, "late"));

	memset(&page, 0, sizeof(page));
	CHECK_INT(cache_list_children(c, ino_of(c, "c000"), 0, collect_fn, &page), 0);  /* empty */
	CHECK_INT(page.n, 0);
	CHECK_INT(cache_list_children(c, f, 0, collect_fn, &page), -ENOTDIR);
	CHECK_INT(cache_list_children(c, 424242, 0, collect_fn, &page), -ENOENT);
	cache_close(c);
}

static void test_stable_ino(void)
{
	struct cache *c = fresh();
	uint64_t a, b, z, n1, n2;
	char *err = NULL;

	if (!c)
		return;
	a = add(c, "A", "root!1", "a", 1);
	b = add(c, "B", "A", "b", 0);
	z = add(c, "Z", "root!1", "z", 0);
	cache_close(c);

	c = NULL;
	CHECK_INT(cache_open(fixture_db, &c, &err), 0);
	if (!c)
		return;
	CHECK_INT(ino_of(c, "A"), a);
	CHECK_INT(ino_of(c, "B"), b);
	CHECK_INT(ino_of(c, "Z"), z);
	CHECK_INT(ino_of(c, "root!1"), CACHE_ROOT_INO);

	/* the highest inode removed, and a new item added: no reuse */
	CHECK_INT(cache_remove(c, z), 0);
	n1 = add(c, "N1", "root!1", "n1", 0);
	CHECK(n1 > z);
	CHECK_INT(cache_remove(c, n1), 0);
	cache_close(c);
	c = NULL;
	CHECK_INT(cache_open(fixture_db, &c, &err), 0);
	if (!c)
		return;
	n2 = add(c, "N2", "root!1", "n2", 0);
	CHECK(n2 > n1);
	/* even a drive switch keeps the high-water mark */
	{
		struct drive_item root = mk("r2", NULL, "root", 1);

		root.is_root = 1;
		CHECK_INT(cache_set_root(c, "FFFF", &root), 0);
		CHECK(add(c, "N3", "r2", "n3", 0) > n2);
	}
	cache_close(c);
}

static void test_meta(void)
{
	struct cache *c = fresh();
	char *v = (char *)"x";

	if (!c)
		return;
	CHECK_INT(cache_meta_get(c, "quota", &v), -ENOENT);
	CHECK(v == NULL);
	CHECK_INT(cache_meta_set(c, "quota", "1 2 3"), 0);
	CHECK_INT(cache_meta_get(c, "quota", &v), 0);
	CHECK_STR(v, "1 2 3");
	free(v);
	CHECK_INT(cache_meta_set(c, "quota", "4"), 0);
	CHECK_INT(cache_meta_get(c, "quota", &v), 0);
	CHECK_STR(v, "4");
	free(v);
	CHECK_INT(cache_meta_set(c, "empty", ""), 0);
	CHECK_INT(cache_meta_get(c, "empty", &v), 0);
	CHECK_STR(v, "");
	free(v);
	CHECK_INT(cache_meta_set(c, "k", NULL), -EINVAL);
	cache_close(c);
}

static void test_move(void)
{
	struct cache *c = fresh();
	struct drive_item sub;
	struct cache_entry e;
	uint64_t f1, f2, s, file, ino = 0;

	if (!c)
		return;
	f1 = add(c, "F1", "root!1", "f1", 1);
	f2 = add(c, "F2", "root!1", "f2", 1);
	s = add(c, "S", "F1", "sub", 1);
	file = add(c, "FILE", "S", "file.txt", 0);
	CHECK_INT(cache_set_listed_at(c, s, 55), 0);

	sub = mk("S", "F2", "Sub moved", 1);
	CHECK_INT(cache_upsert(c, &sub, &ino), 0);
	CHECK_INT(ino, s);
	CHECK_INT(cache_lookup(c, f1, "sub", &e), -ENOENT);
	CHECK_INT(cache_lookup(c, f2, "SUB MOVED", &e), 0);
	CHECK_INT(e.ino, s);
	CHECK_STR(e.item.parent_id, "F2");
	CHECK_INT(e.listed_at, 55);  /* the listing stays valid */
	cache_entry_release(&e);
	CHECK_INT(cache_lookup(c, s, "file.txt", &e), 0);
	CHECK_INT(e.ino, file);
	cache_entry_release(&e);
	CHECK_INT(cache_set_listed_at(c, 999999, 1), -ENOENT);
	cache_close(c);
}

static void test_takeover(void)
{
	struct cache *c = fresh();
	struct drive_item item;
	struct cache_entry e;
	uint64_t old, child, other, ino = 0;

	if (!c)
		return;
	old = add(c, "d1", "root!1", "Doc", 1);
	child = add(c, "d1c", "d1", "inside", 0);
	other = add(c, "keep", "d1", "doc", 0);  /* same name in another folder: untouched */
	CHECK(child && other);

	item = mk("d2", "root!1", "doc", 0);
	CHECK_INT(cache_upsert(c, &item, &ino), 0);
	CHECK(ino != old);
	CHECK(!exists_id(c, "d1"));
	CHECK(!exists_id(c, "d1c"));
	CHECK(!exists_id(c, "keep"));  /* it was inside d1 */
	CHECK_INT(cache_lookup(c, CACHE_ROOT_INO, "DOC", &e), 0);
	CHECK_STR(e.item.id, "d2");
	cache_entry_release(&e);

	/* non-ASCII takeover: É vs é */
	add(c, "u1", "root!1", "\xc3\x89t\xc3\xa9", 0);
	item = mk("u2", "root!1", "\xc3\xa9T\xc3\xa9", 0);
	CHECK_INT(cache_upsert(c, &item, NULL), 0);
	CHECK(!exists_id(c, "u1"));

	/* a folder that became a file loses its children */
	add(c, "fd", "root!1", "fd", 1);
	add(c, "fdc", "fd", "c", 1);
	add(c, "fdcc", "fdc", "cc", 0);
	item = mk("fd", "root!1", "fd", 0);
	CHECK_INT(cache_upsert(c, &item, NULL), 0);
	CHECK(!exists_id(c, "fdc"));
	CHECK(!exists_id(c, "fdcc"));
	CHECK_INT(cache_count(c), 4);  /* root, d2, u2, fd */
	cache_close(c);
}

/* Names stored with stale folding get refolded on open. */
static void test_refold_and_damage(void)
{
	struct cache *c = fresh();
	struct cache_entry e;
	sqlite3 *db;
	char *err = NULL;
	FILE *f;

	if (!c)
		return;
	add(c, "u", "root!1", "\xc3\x84RGER", 0);
	cache_close(c);
	CHECK_INT(sqlite3_open(fixture_db, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, "UPDATE items SET name_fold = 'stale';"
			       "UPDATE meta SET value = 'old' WHERE key = 'fold_version'",
			       NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	c = NULL;
	CHECK_INT(cache_open(fixture_db, &c, &err), 0);
	if (!c)
		return;
	CHECK_INT(cache_lookup(c, CACHE_ROOT_INO, "\xc3\xa4rger", &e), 0);
	cache_entry_release(&e);
	cache_close(c);

	/* unknown schema version: rebuilt empty */
	CHECK_INT(sqlite3_open(fixture_db, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	c = NULL;
	CHECK_INT(cache_open(fixture_db, &c, &err), 0);
	if (c) {
		CHECK_INT(cache_count(c), 0);
		cache_close(c);
	}

	/* garbage file: replaced */
	fixture_remove_db();
	f = fopen(fixture_db, "w");
	CHECK(f != NULL);
	if (f) {
		for (int i = 0; i < 512; i++)
			fputs("this is not a database ", f);
		fclose(f);
	}
	c = NULL;
	CHECK_INT(cache_open(fixture_db, &c, &err), 0);
	if (c) {
		CHECK_INT(cache_count(c), 0);
		cache_close(c);
	}

	/* missing folder: an error message, no crash */
	c = NULL;
	CHECK(cache_open("/nonexistent-odfs-dir/meta.db", &c, &err) < 0);
	CHECK(c == NULL);
	CHECK(err != NULL && strstr(err, "/nonexistent-odfs-dir/meta.db") != NULL);
	free(err);
}

struct worker {
	struct cache *c;
	int n;
	int errors;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char folder[16], ids[50][48], names[50][24];
	struct drive_item items[50];
	uint64_t dir_ino = 0;

	snprintf(folder, sizeof(folder), "T%d", w->n);
	dir_ino = ino_of(w->c, folder);
	if (!dir_ino)
		w->errors++;
	for (int round = 0; round < 60; round++) {
		struct collect col;
		struct cache_entry e;
		struct drive_item shared;
		char sid[32], sname[32];

		for (int j = 0; j < 50; j++) {
			/* half the ids change every round, half stay */
			snprintf(ids[j], sizeof(ids[j]), "t%d-%d-%d", w->n, j, j % 2 ? round : 0);
			snprintf(names[j], sizeof(names[j]), "File %d", j);
			items[j] = mk(ids[j], folder, names[j], 0);
		}
		if (cache_replace_children(w->c, dir_ino, items, 50, round) != 0)
			w->errors++;
		memset(&col, 0, sizeof(col));
		if (cache_list_children(w->c, dir_ino, 0, collect_fn, &col) != 0 || col.n != 50)
			w->errors++;
		if (cache_lookup(w->c, dir_ino, "FILE 7", &e) == 0) {
			if (strcmp(e.item.id, ids[7]) != 0)
				w->errors++;
			cache_entry_release(&e);
		} else {
			w->errors++;
		}
		/* everyone writes into the shared folder, names clash across threads */
		snprintf(sid, sizeof(sid), "s%d-%d", w->n, round);
		snprintf(sname, sizeof(sname), "shared %d", round % 5);
		shared = mk(sid, "SH", sname, 0);
		if (cache_upsert(w->c, &shared, NULL) != 0)
			w->errors++;
		if (cache_count(w->c) < 0)
			w->errors++;
	}
	return NULL;
}

static void test_threads(void)
{
	struct cache *c = fresh();
	struct worker w[4];
	pthread_t t[4];
	struct collect col;

	if (!c)
		return;
	add(c, "SH", "root!1", "shared", 1);
	for (int i = 0; i < 4; i++) {
		char id[16];

		snprintf(id, sizeof(id), "T%d", i);
		add(c, id, "root!1", id, 1);
	}
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .c = c, .n = i };
		CHECK_INT(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(w[i].errors, 0);
	}
	/* 4 folders of 50, the shared folder holds each of its 5 names once */
	memset(&col, 0, sizeof(col));
	CHECK_INT(cache_list_children(c, ino_of(c, "SH"), 0, collect_fn, &col), 0);
	CHECK_INT(col.n, 5);
	CHECK_INT(cache_count(c), 1 + 5 + 4 * 50 + 5);
	cache_close(c);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* 10 folders of 1,000: time the listings (printed, loosely bounded). */
static void test_big(void)
{
	static char ids[1000][32], names[1000][32];
	static struct drive_item items[1000];
	struct cache *c = fresh();
	struct cache_entry e;
	double t0, first = 0, again = 0, lookups;
	char folder[32];

	if (!c)
		return;
	for (int f = 0; f < 10; f++) {
		uint64_t d;

		snprintf(folder, sizeof(folder), "BIG%d", f);
		d = add(c, folder, "root!1", folder, 1);
		for (int j = 0; j < 1000; j++) {
			snprintf(ids[j], sizeof(ids[j]), "big%d-%d", f, j);
			snprintf(names[j], sizeof(names[j]), "Document %04d.docx", j);
			items[j] = mk(ids[j], folder, names[j], j % 10 == 0);
		}
		t0 = now_ms();
		CHECK_INT(cache_replace_children(c, d, items, 1000, 1), 0);
		first += now_ms() - t0;
		t0 = now_ms();
		CHECK_INT(cache_replace_children(c, d, items, 1000, 2), 0);
		again += now_ms() - t0;
	}
	CHECK_INT(cache_count(c), 1 + 10 + 10000);
	t0 = now_ms();
	for (int j = 0; j < 1000; j++) {
		snprintf(folder, sizeof(folder), "document %04d.DOCX", j);
		if (cache_lookup(c, ino_of(c, "BIG3"), folder, &e) == 0)
			cache_entry_release(&e);
		else
			CHECK(0);
	}
	lookups = now_ms() - t0;
	printf("cache: replace 1000 new %.1f ms, 1000 existing %.1f ms, 1000 lookups %.1f ms\n",
	       first / 10, again / 10, lookups);
	CHECK(first / 10 < 1000 && again / 10 < 1000);
	cache_close(c);
}

int main(void)
{
	if (fixture_setup("cache"))
		return 1;
	RUN(test_root);
	RUN(test_upsert_lookup);
	RUN(test_replace_children);
	RUN(test_list_paging);
	RUN(test_stable_ino);
	RUN(test_meta);
	RUN(test_move);
	RUN(test_takeover);
	RUN(test_refold_and_damage);
	RUN(test_threads);
	RUN(test_big);
	fixture_teardown();
	return unit_report("cache");
}
