/*
 * cache_delta.c - the metadata cache's side of remote changes: one delta
 * round applied in one transaction (cache_apply_remote_changes).
 *
 * Delta sends items by id, in no promised order, without paths: an item
 * can come before the folder it now lives in.  So the round is applied in
 * passes: first every live item, each after the chain of its not yet
 * applied parents in the same round; then the deleted ones (a folder
 * deleted with items moved out of it in the same round loses only what is
 * still inside); then, for a full enumeration, whatever the round did not
 * name.  Dirty and local items (cache.h, "Local changes") and folders that
 * hold one are never removed or overwritten: the service does not know
 * them yet.  Neither are rows that changed here after the round started
 * (a cache_snapshot of fingerprints taken then tells): the round is older
 * than them, and the service reports those items again next time.  What
 * changed is collected for the caller, who tells the kernel once the lock
 * is released.  See cache.c for the storage.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "cache_internal.h"
#include "log.h"
#include "names.h"

#define CHAIN_MAX 4096          /* deeper parent chains in one round are cut (a cycle) */

#define FP_COLUMNS "id, parent_ino, name, etag, ctag, size, mtime_sec, mtime_nsec, dirty"

/* A row's fingerprint, by inode. */
struct row_fp {
	uint64_t ino;
	uint64_t fp;
};

struct cache_snapshot {
	struct row_fp *rows;          /* sorted by ino */
	size_t nrows;
	uint64_t *ids;                /* hashes of the ids then cached, sorted */
	size_t nids;
	uint64_t deleted_seq;         /* cache.deleted_seq then */
};

/* A round's item ids, sorted, to find an item's parent within the round. */
struct id_pos {
	const char *id;
	size_t pos;
};

struct apply {
	struct cache *c;
	const struct drive_item *items;
	size_t n;
	struct id_pos *ids;           /* live items only, sorted by id */
	size_t nids;
	unsigned char *state;         /* per item: 0 to do, 1 in a chain, 2 done */
	unsigned char *gone;          /* per item: removed here after the round started */
	unsigned char *fresh;         /* per item: a folder the cache did not hold before */
	const struct cache_snapshot *before;  /* may be NULL */
	sqlite3_stmt *fp_stmt;        /* FP_COLUMNS of one row, when before is set */
	char *root_id;
	struct cache_change *changes;
	size_t nchanges, cap;
	size_t skipped;               /* parent unknown */
	size_t kept;                  /* local changes won */
};

static int compare_id_pos(const void *a, const void *b)
{
	return strcmp(((const struct id_pos *)a)->id, ((const struct id_pos *)b)->id);
}

/* Position of id among the round's live items, or -1. */
static long find_in_round(const struct apply *ap, const char *id)
{
	struct id_pos key = { id, 0 }, *hit;

	if (!id)
		return -1;
	hit = bsearch(&key, ap->ids, ap->nids, sizeof(*ap->ids), compare_id_pos);
	return hit ? (long)hit->pos : -1;
}

/* ---- snapshots ---------------------------------------------------------- */

/* FNV-1a, 64 bits. */
static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t hash_id(const char *id)
{
	return fnv(0xcbf29ce484222325ULL, id, strlen(id));
}

/* The fingerprint of the FP_COLUMNS (9 of them) from column first of st's row. */
static uint64_t row_fingerprint(sqlite3_stmt *st, int first)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (int col = first; col < first + 9; col++) {
		const void *v = sqlite3_column_blob(st, col);
		int len = sqlite3_column_bytes(st, col);
		unsigned char sep = sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : 1;

		h = fnv(h, &sep, 1);
		if (v && len > 0)
			h = fnv(h, v, (size_t)len);
	}
	return h;
}

static int compare_fp(const void *a, const void *b)
{
	uint64_t x = ((const struct row_fp *)a)->ino, y = ((const struct row_fp *)b)->ino;

	return x < y ? -1 : x > y;
}

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

void cache_snapshot_free(struct cache_snapshot *s)
{
	if (!s)
		return;
	free(s->rows);
	free(s->ids);
	free(s);
}

static int snapshot_locked(struct cache *c, struct cache_snapshot *s)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 0;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(c->db, "SELECT ino, " FP_COLUMNS " FROM items", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return cache_db_fail(c, rc, "read the items");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 1);

		if (s->nrows == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct row_fp *rows = realloc(s->rows, ncap * sizeof(*rows));
			uint64_t *ids = rows ? realloc(s->ids, ncap * sizeof(*ids)) : NULL;

			if (rows)
				s->rows = rows;
			if (ids)
				s->ids = ids;
			if (!rows || !ids) {
				ret = -ENOMEM;
				goto out_finalize;
			}
			cap = ncap;
		}
		s->rows[s->nrows].ino = (uint64_t)sqlite3_column_int64(st, 0);
		s->rows[s->nrows++].fp = row_fingerprint(st, 1);
		s->ids[s->nids++] = hash_id(id ? id : "");
	}
	if (rc != SQLITE_DONE)
		ret = cache_db_fail(c, rc, "read the items");
out_finalize:
	sqlite3_finalize(st);
	return ret;
}

int cache_snapshot_take(struct cache *c, struct cache_snapshot **out)
{
	struct cache_snapshot *s = calloc(1, sizeof(*s));
	int ret;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	pthread_mutex_lock(&c->lock);
	s->deleted_seq = c->deleted_seq;
	ret = snapshot_locked(c, s);
	pthread_mutex_unlock(&c->lock);
	if (ret < 0) {
		cache_snapshot_free(s);
		return ret;
	}
	qsort(s->rows, s->nrows, sizeof(*s->rows), compare_fp);
	qsort(s->ids, s->nids, sizeof(*s->ids), compare_u64);
	*out = s;
	return 0;
}

/* 1 when this mount deleted id on the service after the snapshot was taken. */
static int deleted_since(const struct apply *ap, const char *id)
{
	const struct cache *c = ap->c;

	for (size_t i = 0; ap->before && i < c->ndeleted; i++)
		if (c->deleted[i].seq > ap->before->deleted_seq && strcmp(c->deleted[i].id, id) == 0)
			return 1;
	return 0;
}

/* 1 when id was cached when the snapshot was taken. */
static int id_was_cached(const struct apply *ap, const char *id)
{
	uint64_t h = hash_id(id);

	return ap->before && bsearch(&h, ap->before->ids, ap->before->nids, sizeof(h), compare_u64);
}

/*
 * 1 when row ino changed (or appeared) since the round started, 0 if not,
 * or -errno.  Without a snapshot nothing counts as changed.
 */
static int changed_since(struct apply *ap, uint64_t ino)
{
	struct row_fp key = { ino, 0 }, *was;
	uint64_t now = 0;
	int rc;

	if (!ap->before)
		return 0;
	was = bsearch(&key, ap->before->rows, ap->before->nrows, sizeof(key), compare_fp);
	if (!was)
		return 1;
	sqlite3_bind_int64(ap->fp_stmt, 1, (sqlite3_int64)ino);
	rc = sqlite3_step(ap->fp_stmt);
	if (rc == SQLITE_ROW)
		now = row_fingerprint(ap->fp_stmt, 0);
	sqlite3_reset(ap->fp_stmt);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return cache_db_fail(ap->c, rc, "read an item");
	return rc == SQLITE_ROW && now != was->fp;
}

/* ---- applying ------------------------------------------------------------ */

void cache_changes_free(struct cache_change *changes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(changes[i].old_name);
		free(changes[i].new_name);
		free(changes[i].id);
	}
	free(changes);
}

static int add_change(struct apply *ap, uint64_t ino, const struct cache_entry *old,
		      uint64_t new_parent, const char *new_name, const char *id, int is_dir,
		      int content_changed)
{
	struct cache_change *ch;

	if (ap->nchanges == ap->cap) {
		size_t cap = ap->cap ? ap->cap * 2 : 64;
		struct cache_change *more = realloc(ap->changes, cap * sizeof(*more));

		if (!more)
			return -ENOMEM;
		ap->changes = more;
		ap->cap = cap;
	}
	ch = &ap->changes[ap->nchanges];
	memset(ch, 0, sizeof(*ch));
	ch->ino = ino;
	ch->is_dir = is_dir;
	ch->content_changed = content_changed;
	ch->old_parent = old ? old->parent_ino : 0;
	ch->new_parent = new_name ? new_parent : 0;
	if ((old && old->item.name && !(ch->old_name = strdup(old->item.name))) ||
	    (new_name && !(ch->new_name = strdup(new_name))) ||
	    (id && !(ch->id = strdup(id)))) {
		free(ch->old_name);
		free(ch->new_name);
		return -ENOMEM;
	}
	ap->nchanges++;
	return 0;
}

static int get_entry_by_ino(struct cache *c, uint64_t ino, struct cache_entry *e)
{
	sqlite3_bind_int64(c->stmt[ST_GET_BY_INO], 1, (sqlite3_int64)ino);
	return cache_fetch_entry(c, ST_GET_BY_INO, e);
}

static int get_entry_by_id(struct cache *c, const char *id, struct cache_entry *e)
{
	cache_bind_text(c->stmt[ST_GET_BY_ID], 1, id);
	return cache_fetch_entry(c, ST_GET_BY_ID, e);
}

/* Remove ino and its subtree, reported as one change (the kernel drops the subtree). */
static int remove_reported(struct apply *ap, uint64_t ino)
{
	struct cache_entry e;
	int ret = get_entry_by_ino(ap->c, ino, &e);

	if (ret < 0)
		return ret == -ENOENT ? 0 : ret;
	ret = cache_remove_tree(ap->c, ino);
	if (ret == 0)
		ret = add_change(ap, ino, &e, 0, NULL, e.item.id, e.item.is_dir, 0);
	cache_entry_release(&e);
	return ret;
}

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Bytes cached under the old state are stale: by cTag, else hash, else size and time. */
static int content_differs(const struct drive_item *old, const struct drive_item *now)
{
	if (old->is_dir || now->is_dir)
		return 0;
	if (old->ctag && now->ctag)
		return strcmp(old->ctag, now->ctag) != 0;
	if (old->qxhash && now->qxhash)
		return strcmp(old->qxhash, now->qxhash) != 0;
	return old->size != now->size || old->mtime.tv_sec != now->mtime.tv_sec ||
	       old->mtime.tv_nsec != now->mtime.tv_nsec;
}

/* Anything ls or stat shows, or a new version. */
static int attrs_differ(const struct drive_item *old, const struct drive_item *now)
{
	return old->is_dir != now->is_dir || old->is_package != now->is_package ||
	       old->size != (now->size > 0 ? now->size : 0) ||
	       old->mtime.tv_sec != now->mtime.tv_sec || old->mtime.tv_nsec != now->mtime.tv_nsec ||
	       !same_str(old->etag, now->etag) || !same_str(old->ctag, now->ctag);
}

/* The ST_UPSERT parameters of item under parent_ino. */
static void bind_upsert(sqlite3_stmt *st, const struct drive_item *item, uint64_t parent_ino,
			const char *fold)
{
	cache_bind_text(st, 1, item->id);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)parent_ino);
	cache_bind_text(st, 3, item->name);
	cache_bind_text(st, 4, fold);
	sqlite3_bind_int(st, 5, item->is_dir ? 1 : 0);
	sqlite3_bind_int(st, 6, item->is_package ? 1 : 0);
	sqlite3_bind_int64(st, 7, item->size > 0 ? item->size : 0);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)item->mtime.tv_sec);
	sqlite3_bind_int64(st, 9, item->mtime.tv_nsec);
	sqlite3_bind_int64(st, 10, (sqlite3_int64)item->ctime_created.tv_sec);
	sqlite3_bind_int64(st, 11, item->ctime_created.tv_nsec);
	cache_bind_text(st, 12, item->etag);
	cache_bind_text(st, 13, item->ctag);
	cache_bind_text(st, 14, item->qxhash);
}

/*
 * Make way for name fold in parent_ino: clean holders go (reported); a
 * holder with local changes wins.  1 when the name stays taken.
 */
static int take_name(struct apply *ap, uint64_t parent_ino, const char *fold, const char *id)
{
	sqlite3_stmt *st = ap->c->stmt[ST_NAME_HOLDER];
	uint64_t holder;
	int rc, ret;

	for (;;) {
		ret = 0;
		sqlite3_bind_int64(st, 1, (sqlite3_int64)parent_ino);
		cache_bind_text(st, 2, fold);
		cache_bind_text(st, 3, id);
		rc = sqlite3_step(st);
		holder = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			ret = cache_db_fail(ap->c, rc, "look up a name");
		sqlite3_reset(st);
		if (ret < 0 || !holder)
			return ret;
		ret = cache_tree_protected(ap->c, holder);
		if (ret == 0)
			ret = changed_since(ap, holder);
		if (ret != 0)
			return ret;
		ret = remove_reported(ap, holder);
		if (ret < 0)
			return ret;
	}
}

/* A file that was a folder loses the folder's cached children. */
static int drop_former_children(struct cache *c, uint64_t ino)
{
	sqlite3_stmt *st = c->stmt[ST_HAS_CHILD];
	int rc;

	sqlite3_bind_int64(st, 1, (sqlite3_int64)ino);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return cache_db_fail(c, rc, "look up children");
	sqlite3_bind_int64(c->stmt[ST_REMOVE_CHILDREN], 1, (sqlite3_int64)ino);
	return cache_run(c, ST_REMOVE_CHILDREN, "remove children of a former folder");
}

/* 1 when ino is a folder, 0 when not, or -errno. */
static int parent_is_folder(struct cache *c, uint64_t ino)
{
	char *id = NULL;
	int is_dir = 0, ret = cache_kind(c, ino, &is_dir, &id);

	free(id);
	return ret < 0 ? ret : is_dir != 0;
}

/* Insert or update one live item whose parent, if in the round, is applied. */
static int apply_item(struct apply *ap, const struct drive_item *item)
{
	struct cache *c = ap->c;
	struct cache_entry old;
	uint64_t parent_ino, ino = 0;
	sqlite3_stmt *st;
	int have_old, ret, rc, moved;
	char *fold;

	if (item->is_root || (ap->root_id && strcmp(item->id, ap->root_id) == 0))
		return 0;       /* the root is inode 1, set at mount */
	if (!item->parent_id || !item->name) {
		ap->skipped++;
		return 0;
	}
	ret = cache_ino_of_id(c, item->parent_id, &parent_ino);
	if (ret == -ENOENT) {
		/* under a folder this round did not bring and we never saw */
		ap->skipped++;
		return 0;
	}
	if (ret < 0)
		return ret;
	ret = parent_is_folder(c, parent_ino);
	if (ret <= 0) {
		/* inside a package (OneNote): not shown, so not kept */
		ap->skipped += ret == 0;
		return ret;
	}
	ret = get_entry_by_id(c, item->id, &old);
	if (ret < 0 && ret != -ENOENT)
		return ret;
	have_old = ret == 0;
	if (have_old && (old.dirty || old.is_local)) {
		/* the local edit wins; its upload meets the remote change (If-Match) */
		ap->kept++;
		ret = 0;
		goto out_release_old;
	}
	/* changed here since the round started, or removed here meanwhile: newer */
	ret = have_old ? changed_since(ap, old.ino) : ap->gone[item - ap->items];
	if (ret != 0) {
		ap->kept += ret > 0;
		ret = ret < 0 ? ret : 0;
		goto out_release_old;
	}
	fold = names_fold(item->name);
	if (!fold) {
		ret = -ENOMEM;
		goto out_release_old;
	}
	ret = take_name(ap, parent_ino, fold, item->id);
	if (ret != 0) {
		if (ret == 1) {
			/* a local item holds the name: the remote one waits for its upload */
			ap->kept++;
			ret = 0;
		}
		goto out_free_fold;
	}
	st = c->stmt[ST_UPSERT];
	bind_upsert(st, item, parent_ino, fold);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ino = (uint64_t)sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		ret = cache_db_fail(c, rc, "store an item");
	sqlite3_reset(st);
	if (ret < 0 || !ino)
		goto out_free_fold;   /* no row back: the root's id, or local changes kept */
	if (!item->is_dir) {
		ret = drop_former_children(c, ino);
		if (ret < 0)
			goto out_free_fold;
	}
	if (!have_old) {
		ret = add_change(ap, ino, NULL, parent_ino, item->name, item->id, item->is_dir, 0);
		goto out_free_fold;
	}
	moved = old.parent_ino != parent_ino || !same_str(old.item.name, item->name);
	if (moved || attrs_differ(&old.item, item))
		ret = add_change(ap, ino, &old, parent_ino, item->name, item->id, item->is_dir,
				 content_differs(&old.item, item));
out_free_fold:
	free(fold);
out_release_old:
	if (have_old)
		cache_entry_release(&old);
	return ret;
}

/* Apply item i after the chain of its parents that this round also brings. */
static int apply_chain(struct apply *ap, size_t i)
{
	size_t chain[64], *big = NULL, *stack = chain, cap = 64, depth = 0;
	long p;
	int ret = 0;

	for (p = (long)i; p >= 0 && ap->state[p] == 0 && depth < CHAIN_MAX;
	     p = find_in_round(ap, ap->items[p].parent_id)) {
		if (depth == cap) {
			size_t *more = realloc(big, 2 * cap * sizeof(*more));

			if (!more) {
				ret = -ENOMEM;
				break;
			}
			if (!big)
				memcpy(more, chain, sizeof(chain));
			big = stack = more;
			cap *= 2;
		}
		ap->state[p] = 1;
		stack[depth++] = (size_t)p;
	}
	/* the top ancestor first */
	while (depth > 0) {
		size_t j = stack[--depth];

		if (ret == 0)
			ret = apply_item(ap, &ap->items[j]);
		ap->state[j] = 2;
	}
	free(big);
	return ret;
}

/* A deleted item goes with its subtree, unless local changes live there. */
static int apply_delete(struct apply *ap, const struct drive_item *item)
{
	uint64_t ino;
	int ret = cache_ino_of_id(ap->c, item->id, &ino);

	if (ret == -ENOENT || (ret == 0 && ino == CACHE_ROOT_INO))
		return 0;
	if (ret == 0)
		ret = cache_tree_protected(ap->c, ino);
	if (ret == 1) {
		ap->kept++;
		return 0;
	}
	return ret < 0 ? ret : remove_reported(ap, ino);
}

/* A full enumeration: clean items it did not name are gone from the service. */
static int remove_unnamed(struct apply *ap)
{
	sqlite3_stmt *st = NULL;
	uint64_t *gone = NULL;
	size_t ngone = 0, cap = 0;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(ap->c->db, "SELECT ino, id FROM items WHERE ino <> 1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return cache_db_fail(ap->c, rc, "list items");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 1);

		if (!id || find_in_round(ap, id) >= 0)
			continue;
		if (ngone == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			uint64_t *more = realloc(gone, ncap * sizeof(*more));

			if (!more) {
				ret = -ENOMEM;
				goto out_finalize;
			}
			gone = more;
			cap = ncap;
		}
		gone[ngone++] = (uint64_t)sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_DONE)
		ret = cache_db_fail(ap->c, rc, "list items");
out_finalize:
	sqlite3_finalize(st);
	/* parents come before their children in inode order, mostly: fewer reports */
	for (size_t i = 0; ret == 0 && i < ngone; i++) {
		ret = cache_tree_protected(ap->c, gone[i]);
		if (ret == 0)
			ret = changed_since(ap, gone[i]);   /* new here since the round began */
		if (ret == 1) {
			ret = 0;       /* local changes, or a folder holding some */
			continue;
		}
		if (ret == 0)
			ret = remove_reported(ap, gone[i]);
	}
	free(gone);
	return ret;
}

/*
 * Folders never listed: delta brings all their children from now on.
 * After a full enumeration that is every such folder; after a round only
 * the folders new to the cache in it (fresh).  A folder known before may
 * hold children no round reports (one merged with a folder made offline)
 * or have been set to 0 on purpose, to be listed.  Not folders on other
 * drives (shortcuts, "remote:" ids): the drive's delta never reports
 * their contents, so they stay to be listed.
 */
static int mark_listed(struct apply *ap, int complete, int64_t listed_at)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(ap->c->db, complete ?
				"UPDATE items SET listed_at = ?1 WHERE is_dir = 1"
				" AND listed_at = 0 AND id NOT LIKE 'remote:%'" :
				"UPDATE items SET listed_at = ?1 WHERE is_dir = 1"
				" AND listed_at = 0 AND id NOT LIKE 'remote:%' AND id = ?2",
				-1, &st, NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < (complete ? 1 : ap->n); i++) {
		if (!complete && !ap->fresh[i])
			continue;
		sqlite3_bind_int64(st, 1, listed_at);
		if (!complete)
			sqlite3_bind_text(st, 2, ap->items[i].id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		sqlite3_reset(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : cache_db_fail(ap->c, rc, "mark folders listed");
}

static int apply_locked(struct apply *ap, int flags, int64_t listed_at)
{
	int is_dir, ret;
	size_t i;

	ret = cache_kind(ap->c, CACHE_ROOT_INO, &is_dir, &ap->root_id);
	if (ret < 0 && ret != -ENOENT)
		return ret;
	/* before anything moves: which items did this cache drop since the round began */
	for (i = 0; ap->before && i < ap->n; i++) {
		uint64_t ino;

		if (ap->items[i].is_deleted)
			continue;
		if (!id_was_cached(ap, ap->items[i].id)) {
			/* deleted by us while the round was under way: the round is older */
			ap->gone[i] = deleted_since(ap, ap->items[i].id);
			continue;
		}
		ret = cache_ino_of_id(ap->c, ap->items[i].id, &ino);
		if (ret == -ENOENT)
			ap->gone[i] = 1;
		else if (ret < 0)
			return ret;
	}
	for (i = 0; i < ap->n; i++) {
		uint64_t ino;

		if (ap->items[i].is_deleted || !ap->items[i].is_dir)
			continue;
		ret = cache_ino_of_id(ap->c, ap->items[i].id, &ino);
		if (ret < 0 && ret != -ENOENT)
			return ret;
		ap->fresh[i] = ret == -ENOENT;
	}
	for (i = 0, ret = 0; ret == 0 && i < ap->n; i++)
		if (!ap->items[i].is_deleted && ap->state[i] == 0)
			ret = apply_chain(ap, i);
	for (i = 0; ret == 0 && i < ap->n; i++)
		if (ap->items[i].is_deleted)
			ret = apply_delete(ap, &ap->items[i]);
	if (ret == 0 && (flags & CACHE_APPLY_COMPLETE))
		ret = remove_unnamed(ap);
	if (ret == 0 && listed_at)
		ret = mark_listed(ap, flags & CACHE_APPLY_COMPLETE, listed_at);
	return ret;
}

/* ---- deletions behind the cache's back ------------------------------------ */

/*
 * Deletions up to seq are older than a round that has been applied: the
 * rounds after it began later still, and the service no longer lists
 * those items to them.  Called with c->lock held.
 */
static void forget_deletions_before(struct cache *c, uint64_t seq)
{
	size_t i, kept = 0;

	for (i = 0; i < c->ndeleted; i++) {
		if (c->deleted[i].seq <= seq)
			free(c->deleted[i].id);
		else
			c->deleted[kept++] = c->deleted[i];
	}
	c->ndeleted = kept;
}

void cache_deleted_free(struct cache *c)
{
	forget_deletions_before(c, UINT64_MAX);
}

int cache_forget_deleted(struct cache *c, const char *id)
{
	uint64_t ino;
	char *copy = strdup(id);
	int ret;

	if (!copy)
		return -ENOMEM;
	pthread_mutex_lock(&c->lock);
	if (c->ndeleted == CACHE_DELETED_MAX) {
		/* the oldest: long before any round still under way */
		free(c->deleted[0].id);
		memmove(c->deleted, c->deleted + 1, (CACHE_DELETED_MAX - 1) * sizeof(*c->deleted));
		c->ndeleted--;
	}
	c->deleted[c->ndeleted].id = copy;
	c->deleted[c->ndeleted++].seq = ++c->deleted_seq;
	ret = cache_ino_of_id(c, id, &ino);
	if (ret == 0 && ino != CACHE_ROOT_INO) {
		ret = cache_tree_protected(c, ino);
		if (ret == 0)
			ret = cache_remove_tree(c, ino);
		else if (ret == 1)
			ret = 0;      /* changed here since: its own upload meets the deletion */
	}
	pthread_mutex_unlock(&c->lock);
	return ret == -ENOENT ? 0 : ret;
}

int cache_apply_remote_changes(struct cache *c, const struct drive_item *items, size_t n,
			       int flags, int64_t listed_at, const struct cache_snapshot *before,
			       struct cache_change **changes, size_t *nchanges)
{
	struct apply ap = { .c = c, .items = items, .n = n, .before = before };
	size_t i;
	int ret;

	*changes = NULL;
	*nchanges = 0;
	ap.ids = malloc((n ? n : 1) * sizeof(*ap.ids));
	ap.state = calloc(n ? n : 1, 1);
	ap.gone = calloc(n ? n : 1, 1);
	ap.fresh = calloc(n ? n : 1, 1);
	if (!ap.ids || !ap.state || !ap.gone || !ap.fresh) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < n; i++) {
		if (!items[i].id) {
			ret = -EINVAL;
			goto out_free;
		}
		if (!items[i].is_deleted) {
			ap.ids[ap.nids].id = items[i].id;
			ap.ids[ap.nids++].pos = i;
		}
	}
	qsort(ap.ids, ap.nids, sizeof(*ap.ids), compare_id_pos);

	pthread_mutex_lock(&c->lock);
	ret = 0;
	if (before) {
		int rc = sqlite3_prepare_v2(c->db, "SELECT " FP_COLUMNS " FROM items WHERE ino = ?1",
					    -1, &ap.fp_stmt, NULL);

		if (rc != SQLITE_OK)
			ret = cache_db_fail(c, rc, "read an item");
	}
	if (ret == 0)
		ret = cache_begin(c);
	if (ret == 0)
		ret = cache_finish(c, apply_locked(&ap, flags, listed_at));
	if (ret == 0 && before)
		forget_deletions_before(c, before->deleted_seq);
	sqlite3_finalize(ap.fp_stmt);
	pthread_mutex_unlock(&c->lock);
	if (ret == 0 && (ap.skipped || ap.kept))
		log_debug("delta: %zu items under unknown folders skipped, %zu local changes kept",
			  ap.skipped, ap.kept);
out_free:
	free(ap.ids);
	free(ap.state);
	free(ap.gone);
	free(ap.fresh);
	free(ap.root_id);
	if (ret < 0) {
		cache_changes_free(ap.changes, ap.nchanges);
		return ret;
	}
	*changes = ap.changes;
	*nchanges = ap.nchanges;
	return 0;
}
