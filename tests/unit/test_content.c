/*
 * test_content.c - the content cache as the staging area of the write path,
 * in a temporary cache folder, against a fake remote (graph_download and
 * graph_download_url are defined here, so no network and no graph.c):
 * new local files, writes with holes, truncates up and down, durability
 * across a remount, lazy fetches of a dirty remote file that never reach
 * past a truncate, staging and the generation rule, renames to a real id,
 * dirty items surviving a new cTag, invalidation and eviction, fetched
 * bytes never landing on local writes nor past a truncate, and an index from before the
 * write path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "config.h"
#include "content.h"
#include "fixture.h"
#include "graph.h"
#include "unit.h"

/* ---- the fake remote: one file of fake_size bytes of pattern() ---------- */

static int64_t fake_size;
static int fake_calls;                  /* graph_download calls */
static int64_t fake_max_end;            /* highest byte asked for */
static void (*fake_hook)(void);         /* run once, after the first chunk */

static unsigned char pattern(int64_t i)
{
	return (unsigned char)((i * 31 + 7) ^ (i >> 9));
}

int64_t graph_offline_since(struct graph *g)
{
	(void)g;
	return 0;
}

int graph_download_url(struct graph *g, const char *item_id, char **url, char **err)
{
	(void)g;
	(void)item_id;
	(void)err;
	*url = strdup("http://fake.invalid/content");
	return *url ? 0 : -ENOMEM;
}

int graph_download(struct graph *g, const char *url, int64_t off, int64_t len, http_sink_fn sink,
		   void *ctx, char **err)
{
	char chunk[16384];
	int64_t end = off + len < fake_size ? off + len : fake_size;

	(void)g;
	(void)url;
	(void)err;
	fake_calls++;
	if (off + len > fake_max_end)
		fake_max_end = off + len;
	while (off < end) {
		size_t n = end - off < (int64_t)sizeof(chunk) ? (size_t)(end - off) : sizeof(chunk);
		int rc;

		for (size_t i = 0; i < n; i++)
			chunk[i] = (char)pattern(off + (int64_t)i);
		rc = sink(ctx, chunk, n);
		if (rc)
			return rc;
		off += (int64_t)n;
		if (fake_hook) {
			void (*hook)(void) = fake_hook;

			fake_hook = NULL;
			hook();
		}
	}
	return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static struct odfs_config cfg;

static struct content_cache *open_cc(void)
{
	struct content_cache *cc = NULL;
	char *err = NULL;

	CHECK_INT(content_open(&cfg, NULL, &cc, &err), 0);
	CHECK(err == NULL);
	free(err);
	return cc;
}

static struct drive_item mk(const char *id, const char *ctag, int64_t size)
{
	struct drive_item it;

	memset(&it, 0, sizeof(it));
	it.id = (char *)id;
	it.ctag = (char *)ctag;
	it.etag = ctag ? (char *)"\"etag\"" : NULL;
	it.size = size;
	return it;
}

static void reset_fake(int64_t size)
{
	fake_size = size;
	fake_calls = 0;
	fake_max_end = 0;
	fake_hook = NULL;
}

/* Read [off, off+len) of f into a malloc'd buffer; *got receives the count. */
static char *read_at(struct content_file *f, int64_t off, size_t len, ssize_t *got)
{
	char *buf = calloc(1, len + 1);

	*got = buf ? content_read(f, buf, len, off) : -ENOMEM;
	return buf;
}

static int is_pattern(const char *buf, int64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)buf[i] != pattern(off + (int64_t)i))
			return 0;
	return 1;
}

static int is_zero(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			return 0;
	return 1;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_new_local_file(void)
{
	struct drive_item item = mk("local:00112233445566778899aabbccddeeff", NULL, 0);
	struct content_cache *cc = open_cc();
	struct content_file *f, *r;
	ssize_t got;
	char *buf;

	if (!cc)
		return;
	reset_fake(0);
	CHECK_INT(content_file_open_write(cc, &item, 1, &f), 0);
	CHECK_INT(content_file_modified(f), 1);         /* a new file is a change in itself */
	CHECK_INT(content_is_dirty(cc, item.id), 1);
	CHECK_INT(content_write(f, "hello", 5, 0), 5);
	CHECK_INT(content_write(f, "world", 5, 10), 5); /* a hole of zeros in between */
	CHECK_INT(content_file_size(f), 15);
	buf = read_at(f, 0, 100, &got);
	CHECK_INT(got, 15);
	CHECK(memcmp(buf, "hello\0\0\0\0\0world", 15) == 0);
	free(buf);
	/* A reader opened with the cache's stale size sees the local size and bytes. */
	CHECK_INT(content_file_open(cc, &item, &r), 0);
	CHECK_INT(content_file_size(r), 15);
	buf = read_at(r, 8, 4, &got);
	CHECK_INT(got, 4);
	CHECK(memcmp(buf, "\0\0wo", 4) == 0);
	free(buf);
	content_file_close(r);
	CHECK_INT(content_flush(f), 0);
	CHECK_INT(content_file_modified(f), 0);
	content_file_close(f);
	content_close(cc);

	/* A remount finds the dirty content, size and bytes; nothing is fetched. */
	cc = open_cc();
	if (!cc)
		return;
	CHECK_INT(content_is_dirty(cc, item.id), 1);
	CHECK_INT(content_file_open(cc, &item, &r), 0);
	CHECK_INT(content_file_size(r), 15);
	buf = read_at(r, 0, 15, &got);
	CHECK_INT(got, 15);
	CHECK(memcmp(buf, "hello\0\0\0\0\0world", 15) == 0);
	free(buf);
	content_file_close(r);
	CHECK_INT(fake_calls, 0);
	content_discard(cc, item.id);
	CHECK_INT(content_is_dirty(cc, item.id), 0);
	content_close(cc);
}

static void test_truncate(void)
{
	struct drive_item item = mk("local:truncate", NULL, 0);
	struct content_cache *cc = open_cc();
	struct content_file *f;
	char data[100], *buf;
	ssize_t got;

	if (!cc)
		return;
	reset_fake(0);
	memset(data, 'a', sizeof(data));
	CHECK_INT(content_file_open_write(cc, &item, 0, &f), 0);
	CHECK_INT(content_write(f, data, sizeof(data), 0), 100);
	CHECK_INT(content_truncate(f, 10), 0);
	CHECK_INT(content_file_size(f), 10);
	buf = read_at(f, 0, 100, &got);
	CHECK_INT(got, 10);
	free(buf);
	CHECK_INT(content_truncate(f, 50), 0);          /* the new tail reads as zeros */
	buf = read_at(f, 0, 100, &got);
	CHECK_INT(got, 50);
	CHECK(memcmp(buf, data, 10) == 0);
	CHECK(is_zero(buf + 10, 40));
	free(buf);
	CHECK_INT(content_truncate(f, -1), -EINVAL);
	CHECK_INT(content_flush(f), 0);
	content_file_close(f);

	/* Without a handle (setattr on a path): durable at once. */
	CHECK_INT(content_truncate_item(cc, &item, 20), 0);
	content_close(cc);
	cc = open_cc();
	if (!cc)
		return;
	CHECK_INT(content_file_open(cc, &item, &f), 0);
	CHECK_INT(content_file_size(f), 20);
	buf = read_at(f, 0, 100, &got);
	CHECK_INT(got, 20);
	CHECK(memcmp(buf, data, 10) == 0 && is_zero(buf + 10, 10));
	free(buf);
	content_file_close(f);
	CHECK_INT(fake_calls, 0);
	content_discard(cc, item.id);
	content_close(cc);
}

static void test_dirty_remote_file(void)
{
	const int64_t size = 1024 * 1024;
	struct drive_item item = mk("R1", "\"c:{R1},1\"", size);
	struct content_cache *cc = open_cc();
	struct content_stage st;
	struct content_file *f;
	char *buf, *err = NULL;
	ssize_t got;

	if (!cc)
		return;
	reset_fake(size);
	CHECK_INT(content_file_open_write(cc, &item, 0, &f), 0);
	CHECK_INT(content_file_modified(f), 0);
	CHECK_INT(content_is_dirty(cc, item.id), 0);
	/* A random write into a big remote file needs no download. */
	CHECK_INT(content_write(f, "LOCAL", 5, 500000), 5);
	CHECK_INT(fake_calls, 0);
	CHECK_INT(content_is_dirty(cc, item.id), 1);
	CHECK_INT(content_file_size(f), size);
	/* Reads around it fetch lazily and see both. */
	buf = read_at(f, 499995, 15, &got);
	CHECK_INT(got, 15);
	CHECK(is_pattern(buf, 499995, 5));
	CHECK(memcmp(buf + 5, "LOCAL", 5) == 0);
	CHECK(is_pattern(buf + 10, 500005, 5));
	free(buf);
	CHECK(fake_calls > 0);
	/* Truncate down, then up: the new tail is zeros and never fetched. */
	CHECK_INT(content_truncate(f, 600000), 0);
	CHECK_INT(content_truncate(f, 700000), 0);
	buf = read_at(f, 599990, 20, &got);
	CHECK_INT(got, 20);
	CHECK(is_pattern(buf, 599990, 10));
	CHECK(is_zero(buf + 10, 10));
	free(buf);
	CHECK_INT(content_flush(f), 0);
	content_file_close(f);
	CHECK(fake_max_end <= 600000);

	/* Staging fetches what is still missing below the remote part, nothing beyond. */
	item.size = 700000;
	CHECK_INT(content_stage_open(cc, &item, &st, &err), 0);
	CHECK(err == NULL);
	CHECK(fake_max_end <= 600000);
	CHECK_INT(st.size, 700000);
	buf = malloc(700000);
	if (buf) {
		CHECK_INT(pread(st.fd, buf, 700000, 0), 700000);
		CHECK(is_pattern(buf, 0, 500000));
		CHECK(memcmp(buf + 500000, "LOCAL", 5) == 0);
		CHECK(is_pattern(buf + 500005, 500005, 600000 - 500005));
		CHECK(is_zero(buf + 600000, 100000));
		free(buf);
	}
	CHECK_INT(content_stage_done(cc, item.id, &st, NULL, "\"c:{R1},2\""), 1);
	content_stage_close(&st);
	CHECK_INT(content_is_dirty(cc, item.id), 0);

	/* Clean now under the new tag: read without any fetch. */
	fake_calls = 0;
	item.ctag = (char *)"\"c:{R1},2\"";
	CHECK_INT(content_file_open(cc, &item, &f), 0);
	buf = read_at(f, 600000, 100, &got);
	CHECK_INT(got, 100);
	CHECK(is_zero(buf, 100));
	free(buf);
	content_file_close(f);
	CHECK_INT(fake_calls, 0);
	content_discard(cc, item.id);
	content_close(cc);
}

static void test_stage_generation(void)
{
	struct drive_item item = mk("local:gen", NULL, 0);
	struct drive_item real = mk("REAL1", "\"c:{REAL1},1\"", 6);
	struct content_cache *cc = open_cc();
	struct content_stage st, st2;
	struct content_file *f;
	ssize_t got;
	char *buf;

	if (!cc)
		return;
	reset_fake(0);
	CHECK_INT(content_stage_open(cc, &item, &st, NULL), -ENOENT);
	CHECK_INT(content_file_open_write(cc, &item, 1, &f), 0);
	CHECK_INT(content_write(f, "first", 5, 0), 5);
	CHECK_INT(content_stage_open(cc, &item, &st, NULL), 0);
	CHECK_INT(st.size, 5);
	/* Written again while the upload runs: still dirty afterwards. */
	CHECK_INT(content_write(f, "second", 6, 0), 6);
	CHECK_INT(content_stage_done(cc, item.id, &st, NULL, "\"c:{REAL1},0\""), 0);
	content_stage_close(&st);
	CHECK_INT(content_is_dirty(cc, item.id), 1);
	CHECK_INT(content_flush(f), 0);
	content_file_close(f);

	/* Not in memory any more: the row decides; the real id takes the content. */
	CHECK_INT(content_stage_open(cc, &item, &st2, NULL), 0);
	CHECK_INT(st2.size, 6);
	CHECK_INT(content_stage_done(cc, item.id, &st2, "REAL1", "\"c:{REAL1},1\""), 1);
	content_stage_close(&st2);
	CHECK_INT(content_is_dirty(cc, item.id), 0);
	CHECK_INT(content_is_dirty(cc, "REAL1"), 0);
	CHECK_INT(content_file_open(cc, &real, &f), 0);
	buf = read_at(f, 0, 10, &got);
	CHECK_INT(got, 6);
	CHECK(memcmp(buf, "second", 6) == 0);
	free(buf);
	content_file_close(f);
	CHECK_INT(fake_calls, 0);

	/* Renamed while open: the handle goes on, the new id finds the bytes. */
	item.id = (char *)"local:gen2";
	CHECK_INT(content_file_open_write(cc, &item, 1, &f), 0);
	CHECK_INT(content_write(f, "abc", 3, 0), 3);
	CHECK_INT(content_stage_open(cc, &item, &st, NULL), 0);
	CHECK_INT(content_stage_done(cc, item.id, &st, "REAL2", "\"c:{REAL2},1\""), 1);
	content_stage_close(&st);
	CHECK_INT(content_write(f, "d", 1, 3), 1);      /* dirty again, under the new id */
	CHECK_INT(content_is_dirty(cc, "REAL2"), 1);
	CHECK_INT(content_flush(f), 0);
	content_file_close(f);
	CHECK_INT(content_stage_done(cc, "local:never", &st, NULL, "\"x\""), -ENOENT);
	CHECK_INT(content_rename_id(cc, "REAL2", "REAL3"), 0);
	CHECK_INT(content_is_dirty(cc, "REAL3"), 1);
	CHECK_INT(content_is_dirty(cc, "REAL2"), 0);
	content_discard(cc, "REAL1");
	content_discard(cc, "REAL3");
	content_close(cc);
}

static void test_dirty_survives_new_tag(void)
{
	struct drive_item item = mk("R2", "\"c:{R2},1\"", 1000);
	struct content_cache *cc = open_cc();
	struct content_file *f;
	ssize_t got;
	char *buf;

	if (!cc)
		return;
	reset_fake(1000);
	CHECK_INT(content_file_open_write(cc, &item, 1, &f), 0);   /* O_TRUNC */
	CHECK_INT(content_file_size(f), 0);
	CHECK_INT(content_file_modified(f), 1);
	CHECK_INT(content_write(f, "mine", 4, 0), 4);
	CHECK_INT(content_flush(f), 0);
	content_file_close(f);
	/* Another device changed it: the local version stays (the upload sorts it out). */
	item.ctag = (char *)"\"c:{R2},7\"";
	item.size = 2000;
	CHECK_INT(content_file_open(cc, &item, &f), 0);
	buf = read_at(f, 0, 100, &got);
	CHECK_INT(got, 4);
	CHECK(memcmp(buf, "mine", 4) == 0);
	free(buf);
	content_file_close(f);
	content_invalidate(cc, item.id);
	CHECK_INT(content_is_dirty(cc, item.id), 1);
	CHECK_INT(fake_calls, 0);
	content_discard(cc, item.id);
	CHECK_INT(content_is_dirty(cc, item.id), 0);
	/* Now the new version is read from the service. */
	reset_fake(2000);
	CHECK_INT(content_file_open(cc, &item, &f), 0);
	buf = read_at(f, 0, 100, &got);
	CHECK_INT(got, 100);
	CHECK(is_pattern(buf, 0, 100));
	free(buf);
	content_file_close(f);
	content_invalidate(cc, item.id);
	content_close(cc);
}

/* A write landing while a download of the same range is in flight. */
static struct content_file *hook_file;

/*
 * Open item for writing (*w) and for reading (*r), then read all of it
 * through *r while hook acts on *w (once, after the first chunk arrives).
 */
static char *read_with_hook(struct content_cache *cc, struct drive_item *item,
			    void (*hook)(void), struct content_file **w, struct content_file **r,
			    ssize_t *got)
{
	reset_fake(item->size);
	CHECK_INT(content_file_open_write(cc, item, 0, w), 0);
	CHECK_INT(content_file_open(cc, item, r), 0);
	hook_file = *w;
	fake_hook = hook;
	return read_at(*r, 0, (size_t)item->size, got);
}

static void close_hooked(struct content_cache *cc, const struct drive_item *item,
			 struct content_file *w, struct content_file *r)
{
	content_file_close(r);
	content_file_close(w);
	content_discard(cc, item->id);
	content_close(cc);
}

static void write_during_fetch(void)
{
	CHECK_INT(content_write(hook_file, "XXXX", 4, 100000), 4);
}

static void test_fetch_keeps_writes(void)
{
	const int64_t size = 256 * 1024;
	struct drive_item item = mk("R3", "\"c:{R3},1\"", size);
	struct content_cache *cc = open_cc();
	struct content_file *w, *r;
	ssize_t got;
	char *buf;

	if (!cc)
		return;
	buf = read_with_hook(cc, &item, write_during_fetch, &w, &r, &got);
	CHECK_INT(got, size);
	CHECK(fake_hook == NULL);
	CHECK(is_pattern(buf, 0, 100000));
	CHECK(memcmp(buf + 100000, "XXXX", 4) == 0);
	CHECK(is_pattern(buf + 100004, 100004, (size_t)size - 100004));
	free(buf);
	close_hooked(cc, &item, w, r);
}

static void truncate_during_fetch(void)
{
	CHECK_INT(content_truncate(hook_file, 50000), 0);
}

static void test_fetch_after_truncate(void)
{
	const int64_t size = 256 * 1024;
	struct drive_item item = mk("R5", "\"c:{R5},1\"", size);
	struct content_cache *cc = open_cc();
	struct content_file *w, *r;
	ssize_t got;
	char *buf;

	if (!cc)
		return;
	buf = read_with_hook(cc, &item, truncate_during_fetch, &w, &r, &got);
	CHECK_INT(got, 50000);          /* cut short by the truncate */
	CHECK(is_pattern(buf, 0, 50000));
	free(buf);
	/* The download went on past 50000: none of it may show after a truncate up. */
	CHECK_INT(content_truncate(w, 100000), 0);
	buf = read_at(r, 0, 200000, &got);
	CHECK_INT(got, 100000);
	CHECK(is_pattern(buf, 0, 50000));
	CHECK(is_zero(buf + 50000, 50000));
	free(buf);
	close_hooked(cc, &item, w, r);
}

static void test_eviction_keeps_dirty(void)
{
	struct drive_item dirty = mk("local:evict", NULL, 0);
	struct drive_item clean = mk("R4", "\"c:{R4},1\"", 300000);
	struct content_cache *cc;
	struct content_file *f;
	char *data = calloc(1, 200000), *buf;
	long old_max = cfg.content_cache_max;
	ssize_t got;

	if (!data)
		return;
	cfg.content_cache_max = 100000;
	cc = open_cc();
	if (!cc)
		goto out;
	reset_fake(300000);
	memset(data, 'd', 200000);
	CHECK_INT(content_file_open_write(cc, &dirty, 0, &f), 0);
	CHECK_INT(content_write(f, data, 200000, 0), 200000);
	CHECK_INT(content_flush(f), 0);
	content_file_close(f);
	CHECK_INT(content_file_open(cc, &clean, &f), 0);
	buf = read_at(f, 0, 300000, &got);
	CHECK_INT(got, 300000);
	free(buf);
	content_file_close(f);
	content_close(cc);
	cc = open_cc();             /* evicts at open */
	if (!cc)
		goto out;
	CHECK_INT(content_is_dirty(cc, dirty.id), 1);
	fake_calls = 0;
	CHECK_INT(content_file_open(cc, &dirty, &f), 0);
	buf = read_at(f, 0, 200000, &got);
	CHECK_INT(got, 200000);
	CHECK(memcmp(buf, data, 200000) == 0);
	free(buf);
	content_file_close(f);
	CHECK_INT(content_file_open(cc, &clean, &f), 0);
	buf = read_at(f, 0, 10, &got);
	CHECK_INT(got, 10);
	free(buf);
	content_file_close(f);
	CHECK(fake_calls > 0);      /* the clean one was evicted */
	content_discard(cc, dirty.id);
	content_discard(cc, clean.id);
	content_close(cc);
out:
	cfg.content_cache_max = old_max;
	free(data);
}

static void test_old_index(void)
{
	struct drive_item item = mk("OLD", "\"c:{OLD},1\"", 10);
	struct content_cache *cc;
	struct content_file *f;
	char path[160], *buf;
	sqlite3 *db = NULL;
	ssize_t got;

	snprintf(path, sizeof(path), "%s/content/content.db", fixture_dir);
	unlink(path);
	CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
	CHECK_INT(sqlite3_exec(db, "CREATE TABLE content ("
			       " id TEXT PRIMARY KEY, tag TEXT NOT NULL, size INTEGER NOT NULL,"
			       " ranges TEXT NOT NULL, bytes INTEGER NOT NULL,"
			       " used_at INTEGER NOT NULL);"
			       "INSERT INTO content VALUES ('OLD', '\"c:{OLD},1\"', 10, '0-10', 10, 1);",
			       NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	cc = open_cc();
	if (!cc)
		return;
	reset_fake(10);
	CHECK_INT(content_is_dirty(cc, "OLD"), 0);
	CHECK_INT(content_file_open(cc, &item, &f), 0);
	buf = read_at(f, 0, 10, &got);
	CHECK_INT(got, 10);     /* the old row's file is missing: fetched afresh */
	free(buf);
	content_file_close(f);
	content_discard(cc, "OLD");
	content_close(cc);
}

int main(void)
{
	if (fixture_setup("content"))
		return 1;
	cfg.cache_dir = fixture_dir;
	cfg.readahead_max = 1024 * 1024;
	cfg.content_cache_max = 1024L * 1024 * 1024;
	RUN(test_new_local_file);
	RUN(test_truncate);
	RUN(test_dirty_remote_file);
	RUN(test_stage_generation);
	RUN(test_dirty_survives_new_tag);
	RUN(test_fetch_keeps_writes);
	RUN(test_fetch_after_truncate);
	RUN(test_eviction_keeps_dirty);
	RUN(test_old_index);
	fixture_teardown();
	return unit_report("test_content");
}
