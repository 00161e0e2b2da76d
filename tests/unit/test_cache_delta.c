/*
 * test_cache_delta.c - cache_apply_remote_changes(): delta rounds applied
 * to the SQLite cache in a temporary directory.
 *
 * Covers children before parents, renames and moves keeping inodes,
 * deleted subtrees, a move out of a folder deleted in the same round, the
 * root in the feed, items under unknown folders, content changes by cTag,
 * full enumerations dropping what they do not name, local changes that no
 * round may touch, local changes newer than the round (snapshots), name
 * takeover, listed_at, items inside packages, items deleted behind the
 * cache's back (cache_forget_deleted), and an 11,000-item round.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cache.h"
#include "fixture.h"
#include "unit.h"

static struct drive_item gone(const char *id)
{
	struct drive_item it;

	memset(&it, 0, sizeof(it));
	it.id = (char *)id;
	it.is_deleted = 1;
	return it;
}

static struct cache *fresh(void)
{
	struct cache *c;

	CHECK_INT(fixture_cache(1, &c), 0);
	return c;
}

/* Apply a round; the number of changes, or -errno. */
static long apply(struct cache *c, const struct drive_item *items, size_t n, int flags,
		  struct cache_change **ch)
{
	struct cache_change *changes = NULL;
	size_t nchanges = 0;
	int rc = cache_apply_remote_changes(c, items, n, flags, 1700000000, NULL, &changes,
					    &nchanges);

	if (ch) {
		*ch = changes;
	} else {
		cache_changes_free(changes, nchanges);
	}
	return rc < 0 ? rc : (long)nchanges;
}

static uint64_t ino_at(struct cache *c, uint64_t parent, const char *name)
{
	struct cache_entry e;
	uint64_t ino;

	if (cache_lookup(c, parent, name, &e) != 0)
		return 0;
	ino = e.ino;
	cache_entry_release(&e);
	return ino;
}

static const struct cache_change *find_change(const struct cache_change *ch, long n, uint64_t ino)
{
	for (long i = 0; i < n; i++)
		if (ch[i].ino == ino)
			return &ch[i];
	return NULL;
}

static void test_children_first_and_root(void)
{
	struct cache *c = fresh();
	/* reversed: the leaf first, the root last, a duplicate-free round */
	struct drive_item items[] = {
		fixture_item("f!3", "d!2", "leaf.txt", 0),
		fixture_item("d!2", "c!1", "sub", 1),
		fixture_item("c!1", "root!1", "Docs", 1),
		fixture_item("x!9", "unknown!7", "orphan.txt", 0),
		fixture_item("root!1", NULL, "root", 1),
	};
	struct cache_change *ch = NULL;
	struct cache_entry e;
	uint64_t docs, sub;
	long n;

	items[4].is_root = 1;
	n = apply(c, items, 5, CACHE_APPLY_COMPLETE, &ch);
	CHECK_INT(n, 3);             /* three new items; the orphan and the root change nothing */
	docs = ino_at(c, CACHE_ROOT_INO, "docs");
	sub = ino_at(c, docs, "SUB");
	CHECK(docs && sub && ino_at(c, sub, "leaf.txt"));
	CHECK_INT(cache_count(c), 4);
	for (long i = 0; i < n; i++) {
		CHECK(ch[i].old_name == NULL);
		CHECK(ch[i].new_name != NULL);
	}
	cache_changes_free(ch, (size_t)n);
	/* every folder counts as listed now, the root too */
	CHECK_INT(cache_get(c, docs, &e), 0);
	CHECK_INT(e.listed_at, 1700000000);
	cache_entry_release(&e);
	CHECK_INT(cache_get(c, CACHE_ROOT_INO, &e), 0);
	CHECK_INT(e.listed_at, 1700000000);
	cache_entry_release(&e);
	/* the same round again changes nothing */
	CHECK_INT(apply(c, items, 5, CACHE_APPLY_COMPLETE, NULL), 0);
	cache_close(c);
}

static void test_rename_move_delete(void)
{
	struct cache *c = fresh();
	struct drive_item base[] = {
		fixture_item("a!1", "root!1", "A", 1),
		fixture_item("b!2", "root!1", "B", 1),
		fixture_item("f!3", "a!1", "f.txt", 0),
		fixture_item("g!4", "a!1", "g.txt", 0),
		fixture_item("s!5", "a!1", "S", 1),
		fixture_item("t!6", "s!5", "t.txt", 0),
		fixture_item("u!7", "s!5", "u.txt", 0),
	};
	struct drive_item round[6];
	struct cache_change *ch = NULL;
	const struct cache_change *x;
	uint64_t a, b, f, g, s, t, u;
	long n;

	CHECK_INT(apply(c, base, 7, CACHE_APPLY_COMPLETE, NULL), 7);
	a = ino_at(c, 1, "A");
	b = ino_at(c, 1, "B");
	f = ino_at(c, a, "f.txt");
	g = ino_at(c, a, "g.txt");
	s = ino_at(c, a, "S");
	t = ino_at(c, s, "t.txt");
	u = ino_at(c, s, "u.txt");
	/* f renamed, g moved to B with new content, u moved out of S, S deleted */
	round[0] = gone("s!5");
	round[1] = gone("t!6");
	round[2] = fixture_item("f!3", "a!1", "f2.txt", 0);
	round[3] = fixture_item("g!4", "b!2", "g.txt", 0);
	round[3].ctag = (char *)"\"c:{E},2\"";
	round[3].size = 7;
	round[4] = fixture_item("u!7", "b!2", "u.txt", 0);
	round[5] = fixture_item("a!1", "root!1", "A", 1);
	n = apply(c, round, 6, 0, &ch);
	CHECK_INT(n, 4);              /* f, g, u and the removed S (t went with it) */
	CHECK_INT(ino_at(c, a, "f2.txt"), f);
	CHECK_INT(ino_at(c, a, "f.txt"), 0);
	CHECK_INT(ino_at(c, b, "g.txt"), g);
	CHECK_INT(ino_at(c, b, "u.txt"), u);
	CHECK_INT(ino_at(c, a, "S"), 0);
	CHECK_INT(ino_at(c, s, "t.txt"), 0);
	CHECK(t != 0);
	x = find_change(ch, n, f);
	CHECK(x && x->old_parent == a && x->new_parent == a && !x->content_changed);
	CHECK(x && strcmp(x->old_name, "f.txt") == 0 && strcmp(x->new_name, "f2.txt") == 0);
	x = find_change(ch, n, g);
	CHECK(x && x->old_parent == a && x->new_parent == b && x->content_changed);
	x = find_change(ch, n, s);
	CHECK(x && x->old_parent == a && x->new_name == NULL && x->is_dir);
	cache_changes_free(ch, (size_t)n);
	cache_close(c);
}

static void test_local_changes_win(void)
{
	struct cache *c = fresh();
	struct drive_item base[] = {
		fixture_item("a!1", "root!1", "A", 1),
		fixture_item("f!3", "a!1", "f.txt", 0),
		fixture_item("k!4", "a!1", "kept", 1),
	};
	struct drive_item round[4];
	struct timespec now = { 1700000001, 0 };
	struct cache_entry e;
	uint64_t a, f, k, local, inner;
	char *id = NULL;

	CHECK_INT(apply(c, base, 3, CACHE_APPLY_COMPLETE, NULL), 3);
	a = ino_at(c, 1, "A");
	f = ino_at(c, a, "f.txt");
	k = ino_at(c, a, "kept");
	CHECK_INT(cache_set_dirty(c, f, 1), 0);
	CHECK_INT(cache_create_local(c, a, "new.txt", 0, &now, &local, &id), 0);
	free(id);
	CHECK_INT(cache_create_local(c, k, "inner.txt", 0, &now, &inner, &id), 0);
	free(id);
	/* remote: f changed and renamed, a file takes new.txt, folder 'kept' deleted */
	round[0] = fixture_item("f!3", "a!1", "renamed.txt", 0);
	round[0].ctag = (char *)"\"c:{E},9\"";
	round[1] = fixture_item("n!5", "a!1", "NEW.txt", 0);
	round[2] = gone("k!4");
	round[3] = gone("f!3");
	CHECK_INT(apply(c, round, 3, 0, NULL), 0);
	CHECK_INT(cache_get(c, f, &e), 0);
	CHECK_STR(e.item.name, "f.txt");
	CHECK_STR(e.item.ctag, "\"c:{E},1\"");     /* the base tag of the edit stays */
	cache_entry_release(&e);
	CHECK_INT(ino_at(c, a, "new.txt"), local);
	CHECK_INT(ino_at(c, k, "inner.txt"), inner);
	/* a deleted dirty file stays; a full enumeration that omits them keeps them too */
	CHECK_INT(apply(c, &round[3], 1, 0, NULL), 0);
	CHECK_INT(ino_at(c, a, "f.txt"), f);
	CHECK_INT(apply(c, NULL, 0, CACHE_APPLY_COMPLETE, NULL), 0);
	CHECK_INT(ino_at(c, a, "f.txt"), f);
	CHECK_INT(ino_at(c, a, "new.txt"), local);
	CHECK_INT(ino_at(c, k, "inner.txt"), inner);
	CHECK_INT(cache_count(c), 6);   /* root, A, f, new, kept (holds inner), inner */
	cache_close(c);
}

static void test_complete_drops_unnamed_and_takeover(void)
{
	struct cache *c = fresh();
	struct drive_item base[] = {
		fixture_item("a!1", "root!1", "A", 1),
		fixture_item("f!3", "a!1", "f.txt", 0),
		fixture_item("g!4", "a!1", "g.txt", 0),
	};
	struct drive_item again[] = {
		fixture_item("a!1", "root!1", "A", 1),
		fixture_item("h!5", "a!1", "G.TXT", 0),     /* takes g's name: g is gone */
	};
	struct cache_change *ch = NULL;
	uint64_t a, f, g;
	long n;

	CHECK_INT(apply(c, base, 3, CACHE_APPLY_COMPLETE, NULL), 3);
	a = ino_at(c, 1, "A");
	f = ino_at(c, a, "f.txt");
	g = ino_at(c, a, "g.txt");
	n = apply(c, again, 2, CACHE_APPLY_COMPLETE, &ch);
	CHECK_INT(n, 3);                   /* g taken over, h new, f not named */
	CHECK(find_change(ch, n, f) && find_change(ch, n, f)->new_name == NULL);
	CHECK(find_change(ch, n, g) && find_change(ch, n, g)->new_name == NULL);
	CHECK(ino_at(c, a, "g.txt") > g);
	CHECK_INT(ino_at(c, a, "f.txt"), 0);
	CHECK_INT(cache_count(c), 3);
	cache_changes_free(ch, (size_t)n);
	cache_close(c);
}

static void test_snapshot_keeps_newer_local_state(void)
{
	struct cache *c = fresh();
	struct drive_item base[] = {
		fixture_item("a!1", "root!1", "A", 1),
		fixture_item("f!3", "a!1", "f.txt", 0),
		fixture_item("g!4", "a!1", "g.txt", 0),
	};
	struct drive_item uploaded = fixture_item("u!9", "a!1", "up.txt", 0);
	struct timespec now = { 1700000001, 0 };
	struct cache_snapshot *snap = NULL;
	struct cache_change *changes = NULL;
	size_t nchanges = 0;
	uint64_t a, f, local;
	char *id = NULL;

	CHECK_INT(apply(c, base, 3, CACHE_APPLY_COMPLETE, NULL), 3);
	a = ino_at(c, 1, "A");
	f = ino_at(c, a, "f.txt");
	CHECK_INT(cache_snapshot_take(c, &snap), 0);
	/* while the round is on its way: a rename, a delete, an upload that landed */
	CHECK_INT(cache_move(c, f, a, "renamed.txt"), 0);
	CHECK_INT(cache_remove(c, ino_at(c, a, "g.txt")), 0);
	CHECK_INT(cache_create_local(c, a, "up.txt", 0, &now, &local, &id), 0);
	free(id);
	CHECK_INT(cache_set_id(c, local, "u!9"), 0);
	CHECK_INT(cache_update_remote(c, local, &uploaded, 1), 0);
	/* the round (a resync) still knows the old state: it must not undo ours */
	CHECK_INT(cache_apply_remote_changes(c, base, 3, CACHE_APPLY_COMPLETE, 1700000000, snap,
					     &changes, &nchanges), 0);
	CHECK_INT(nchanges, 0);
	cache_changes_free(changes, nchanges);
	CHECK_INT(ino_at(c, a, "renamed.txt"), f);
	CHECK_INT(ino_at(c, a, "f.txt"), 0);
	CHECK_INT(ino_at(c, a, "g.txt"), 0);
	CHECK_INT(ino_at(c, a, "up.txt"), local);
	cache_snapshot_free(snap);
	/* the next round, taken after, applies as usual */
	CHECK_INT(cache_snapshot_take(c, &snap), 0);
	CHECK_INT(cache_apply_remote_changes(c, base, 3, CACHE_APPLY_COMPLETE, 1700000000, snap,
					     &changes, &nchanges), 0);
	cache_changes_free(changes, nchanges);
	CHECK_INT(ino_at(c, a, "f.txt"), f);
	CHECK(ino_at(c, a, "g.txt") != 0);
	CHECK_INT(ino_at(c, a, "up.txt"), 0);
	cache_snapshot_free(snap);
	cache_close(c);
}

/* An item we deleted on the service stays out of rounds that began before. */
static void test_forget_deleted(void)
{
	struct cache *c = fresh();
	struct drive_item base[] = {
		fixture_item("a!1", "root!1", "A", 1),
		fixture_item("s!2", "a!1", "stray.txt", 0),
	};
	struct cache_snapshot *before = NULL, *after = NULL;
	struct cache_change *changes = NULL;
	size_t nchanges = 0;
	uint64_t a;

	CHECK_INT(apply(c, base, 1, CACHE_APPLY_COMPLETE, NULL), 1);
	a = ino_at(c, 1, "A");
	/* a round listed the stray before its deletion: the deletion drops the row */
	CHECK_INT(apply(c, base + 1, 1, 0, NULL), 1);
	CHECK(ino_at(c, a, "stray.txt") != 0);
	CHECK_INT(cache_snapshot_take(c, &before), 0);
	CHECK_INT(cache_forget_deleted(c, "s!2"), 0);
	CHECK_INT(ino_at(c, a, "stray.txt"), 0);
	CHECK_INT(cache_forget_deleted(c, "x!404"), 0);   /* no row: nothing to drop */
	/* a round begun before the deletion still lists it: not brought back */
	CHECK_INT(cache_apply_remote_changes(c, base + 1, 1, 0, 1700000000, before, &changes,
					     &nchanges), 0);
	CHECK_INT(nchanges, 0);
	cache_changes_free(changes, nchanges);
	CHECK_INT(ino_at(c, a, "stray.txt"), 0);
	/* a round begun after it (the item restored elsewhere, say) applies as usual */
	CHECK_INT(cache_snapshot_take(c, &after), 0);
	CHECK_INT(cache_apply_remote_changes(c, base + 1, 1, 0, 1700000000, after, &changes,
					     &nchanges), 0);
	cache_changes_free(changes, nchanges);
	CHECK(ino_at(c, a, "stray.txt") != 0);
	cache_snapshot_free(before);
	cache_snapshot_free(after);
	cache_close(c);
}

static void test_package_children_skipped(void)
{
	struct cache *c = fresh();
	struct drive_item items[] = {
		fixture_item("p!1", "root!1", "Notebook", 0),
		fixture_item("s!2", "p!1", "Section.one", 0),
	};

	items[0].is_package = 1;
	CHECK_INT(apply(c, items, 2, CACHE_APPLY_COMPLETE, NULL), 1);
	CHECK_INT(cache_count(c), 2);
	cache_close(c);
}

static void test_big_round(void)
{
	enum { FOLDERS = 1000, PER = 10 };
	struct drive_item *items = calloc(FOLDERS * (PER + 1), sizeof(*items));
	char (*ids)[32] = calloc(FOLDERS * (PER + 1), sizeof(*ids));
	char (*names)[32] = calloc(FOLDERS * (PER + 1), sizeof(*names));
	struct cache *c = fresh();
	struct timespec t0, t1;
	size_t k = 0;
	double ms;

	CHECK(items && ids && names);
	if (!items || !ids || !names)
		goto out;
	/* children first for every folder (their ids are written below): the worst order */
	for (int d = 0; d < FOLDERS; d++) {
		for (int i = 0; i < PER; i++, k++) {
			snprintf(ids[k], sizeof(ids[k]), "f!%d.%d", d, i);
			snprintf(names[k], sizeof(names[k]), "file-%d.txt", i);
			items[k] = fixture_item(ids[k], ids[FOLDERS * PER + d], names[k], 0);
		}
	}
	for (int d = 0; d < FOLDERS; d++, k++) {
		snprintf(ids[k], sizeof(ids[k]), "d!%d", d);
		snprintf(names[k], sizeof(names[k]), "folder-%d", d);
		items[k] = fixture_item(ids[k], "root!1", names[k], 1);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_INT(apply(c, items, k, CACHE_APPLY_COMPLETE, NULL), (long)k);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	CHECK_INT(cache_count(c), (long)k + 1);
	fprintf(stderr, "  %zu items applied in %.0f ms\n", k, ms);
	CHECK(ms < 5000);
	CHECK_INT(apply(c, items, k, CACHE_APPLY_COMPLETE, NULL), 0);
out:
	free(items);
	free(ids);
	free(names);
	cache_close(c);
}

int main(void)
{
	if (fixture_setup("cache-delta"))
		return 1;
	RUN(test_children_first_and_root);
	RUN(test_rename_move_delete);
	RUN(test_local_changes_win);
	RUN(test_complete_drops_unnamed_and_takeover);
	RUN(test_snapshot_keeps_newer_local_state);
	RUN(test_forget_deleted);
	RUN(test_package_children_skipped);
	RUN(test_big_round);
	fixture_teardown();
	return unit_report("test_cache_delta");
}
