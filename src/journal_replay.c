/*
 * journal_replay.c - sending one journalled name operation to the service,
 * with the conflict rule (journal.h says which), and keeping the cache in
 * step with what the service answered.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "errmap.h"
#include "graph.h"
#include "journal_internal.h"
#include "log.h"
#include "names.h"

/* ---- journal_replay ---- */

/* Transport trouble or throttling: the row waits and is tried again. */
int journal_is_transient(int rc)
{
	if (errmap_is_transport(rc))
		return 1;
	switch (-rc) {
	case EAGAIN: case EBUSY: case ECANCELED: case EIO: case ENOMEM:
	case ENOSPC:   /* a full drive: space may be freed */
		return 1;
	}
	return 0;
}

/* Every later row (and the list) that names old_id names new_id from now on. */
void journal_id_map_free(struct id_map *m)
{
	if (m) {
		free(m->local_id);
		free(m->real_id);
		free(m);
	}
}

int journal_rewrite_id(struct journal *j, const char *old, const char *new_id)
{
	struct id_map *m = calloc(1, sizeof(*m));
	char *a, *b;
	int rc;

	if (!m || !(m->local_id = strdup(old)) || !(m->real_id = strdup(new_id))) {
		journal_id_map_free(m);
		return -ENOMEM;
	}
	old = m->local_id;   /* the caller's string may be one of those replaced */
	pthread_mutex_lock(&j->order);
	/* both columns in one statement: a kill between two would strand rows */
	rc = journal_db_run(j, NULL, "UPDATE name_ops SET"
		    " item_id = CASE WHEN item_id = ?1 THEN ?2 ELSE item_id END,"
		    " parent_id = CASE WHEN parent_id = ?1 THEN ?2 ELSE parent_id END"
		    " WHERE item_id = ?1 OR parent_id = ?1", "tt", old, new_id);
	if (rc < 0) {
		pthread_mutex_unlock(&j->order);
		journal_id_map_free(m);
		return rc;
	}
	m->next = j->ids;
	j->ids = m;
	pthread_mutex_lock(&j->lock);
	for (struct op *o = j->head; o; o = o->next) {
		if (strcmp(o->item_id, old) == 0 && (a = strdup(new_id))) {
			free(o->item_id);
			o->item_id = a;
		}
		if (o->parent_id && strcmp(o->parent_id, old) == 0 && (b = strdup(new_id))) {
			free(o->parent_id);
			o->parent_id = b;
		}
	}
	pthread_mutex_unlock(&j->lock);
	pthread_mutex_unlock(&j->order);
	return 0;
}

static void notify(struct journal *j, uint64_t parent_ino, const char *name)
{
	if (j->notify && parent_ino && name)
		j->notify(j->hook_ctx, parent_ino, name);
}

/* The folder that holds item id (cached), so it can be listed again. */
static void relist_parent_of_id(struct journal *j, const char *parent_id)
{
	struct cache_entry p;

	if (parent_id && cache_get_by_id(j->cache, parent_id, &p) == 0) {
		cache_set_listed_at(j->cache, p.ino, 0);
		cache_entry_release(&p);
	}
}

/*
 * The cached item with id gets the conflict name: the service keeps the
 * other one under the name we wanted.
 */
static void rename_cached(struct journal *j, const char *id, const char *wanted,
			  const char *new_name)
{
	struct cache_entry e;

	if (cache_get_by_id(j->cache, id, &e) < 0)
		return;
	/* renamed again here since: a later row carries that name */
	if (wanted && e.item.name && strcmp(e.item.name, wanted) != 0) {
		cache_entry_release(&e);
		return;
	}
	if (cache_move(j->cache, e.ino, e.parent_ino, new_name) == 0) {
		notify(j, e.parent_ino, e.item.name);
		notify(j, e.parent_ino, new_name);
	}
	cache_entry_release(&e);
}

/*
 * The service's answer becomes the cached item's base (name and place stay
 * ours).  Not for an item with local changes: its tags are the base its
 * upload is conditioned on, and the answer's may already hold another
 * device's edit, which the upload must meet as a conflict.
 */
static void take_answer(struct journal *j, const char *id, const struct drive_item *item,
			int clear_dirty)
{
	struct cache_entry e;

	if (cache_get_by_id(j->cache, id, &e) < 0)
		return;
	if (!e.dirty || clear_dirty)
		cache_update_remote(j->cache, e.ino, item, clear_dirty);
	cache_entry_release(&e);
}

/* The drive root's id (malloc'd), NULL when unknown. */
static char *root_id(struct journal *j)
{
	struct cache_entry r;
	char *id = NULL;

	if (cache_get(j->cache, CACHE_ROOT_INO, &r) == 0) {
		id = r.item.id ? strdup(r.item.id) : NULL;
		cache_entry_release(&r);
	}
	return id;
}

/* The cached item's current name (malloc'd), NULL when it is gone here. */
static char *cached_name(struct journal *j, const char *id)
{
	struct cache_entry e;
	char *name = NULL;

	if (cache_get_by_id(j->cache, id, &e) == 0) {
		name = e.item.name ? strdup(e.item.name) : NULL;
		cache_entry_release(&e);
	}
	return name;
}

/*
 * Its folder is gone from the service (deleted on another device): the
 * item lands in the drive root instead, so nothing made here is lost.
 */
static void moved_to_root(struct journal *j, const char *id, const char *name)
{
	struct cache_entry e;

	if (cache_get_by_id(j->cache, id, &e) < 0)
		return;
	if (cache_move(j->cache, e.ino, CACHE_ROOT_INO, name) == 0) {
		notify(j, e.parent_ino, e.item.name);
		notify(j, CACHE_ROOT_INO, name);
	}
	cache_entry_release(&e);
}

/*
 * POST the folder; a name taken by a folder merges (*merged set), by a file
 * takes a conflict name.
 */
static int create_folder(struct journal *j, struct op *o, const char *parent_id,
			 struct drive_item *out, int *merged, char **err)
{
	struct drive_item other;
	char *name;
	int rc;

	*merged = 0;
	rc = graph_create_folder(j->graph, parent_id, o->name, out, err);
	if (rc != -EEXIST)
		return rc;
	free(*err);
	*err = NULL;
	memset(&other, 0, sizeof(other));
	rc = graph_get_child(j->graph, parent_id, o->name, &other, err);
	if (rc == 0 && other.is_dir) {
		/* made elsewhere meanwhile: one folder, the contents of both */
		*out = other;
		*merged = 1;
		log_info("'%s' was also created on another device: the two folders are merged",
			 o->path ? o->path : o->name);
		return 0;
	}
	if (rc < 0)
		return rc;
	drive_item_release(&other);
	name = names_conflict(o->name);
	if (!name)
		return -ENOMEM;
	rc = graph_create_folder(j->graph, parent_id, name, out, err);
	if (rc == 0) {
		rename_cached(j, o->item_id, o->name, name);
		log_warnx("a file named '%s' was created on another device; your folder is '%s'",
			  o->path ? o->path : o->name, name);
	}
	free(name);
	return rc;
}

static int replay_folder(struct journal *j, struct op *o, char **err)
{
	struct drive_item out;
	struct cache_entry e;
	char *root = NULL;
	int rc, merged = 0;

	memset(&out, 0, sizeof(out));
	rc = cache_id_is_local(o->parent_id) ? -ENOENT :
		create_folder(j, o, o->parent_id, &out, &merged, err);
	if (rc == -ENOENT && (root = root_id(j)) && strcmp(root, o->parent_id) != 0) {
		/* its parent is gone from the service: the folder goes to the root */
		free(*err);
		*err = NULL;
		rc = create_folder(j, o, root, &out, &merged, err);
		if (rc == 0) {
			moved_to_root(j, o->item_id, out.name ? out.name : o->name);
			log_warnx("the folder holding '%s' was deleted on another device; the "
				  "folder made here is now '/%s'", o->path ? o->path : o->name,
				  out.name ? out.name : o->name);
		}
	}
	free(root);
	if (rc < 0)
		return rc;
	if (cache_get_by_id(j->cache, o->item_id, &e) == 0) {
		rc = cache_set_id(j->cache, e.ino, out.id);
		if (rc == 0)
			rc = cache_update_remote(j->cache, e.ino, &out, 1);
		/*
		 * What the other folder held on the service is in neither the
		 * cache nor any later delta round (it did not change): list it
		 * again, or it stays hidden here and an rmdir of the folder,
		 * empty to our eyes, would delete it on the service.
		 */
		if (rc == 0 && merged) {
			cache_set_listed_at(j->cache, e.ino, 0);
			notify(j, e.parent_ino, e.item.name);
		}
		cache_entry_release(&e);
	}
	if (rc == 0 || rc == -ENOENT)
		rc = journal_rewrite_id(j, o->item_id, out.id);
	drive_item_release(&out);
	return rc;
}

/*
 * The name a move wants is held on the service: 1 if the hook freed it (what
 * a lost create of a file gone here made there).  The folder is parent_id,
 * or the one the item sits in here.
 */
static int name_freed(struct journal *j, const char *item_id, const char *parent_id,
		      const char *name)
{
	struct cache_entry e, p;
	int freed = 0;

	if (!j->taken)
		return 0;
	if (parent_id)
		return j->taken(j->hook_ctx, parent_id, name);
	if (cache_get_by_id(j->cache, item_id, &e) < 0)
		return 0;
	if (cache_get(j->cache, e.parent_ino, &p) == 0) {
		if (p.item.id)
			freed = j->taken(j->hook_ctx, p.item.id, name);
		cache_entry_release(&p);
	}
	cache_entry_release(&e);
	return freed;
}

/* PATCH name and/or parent; a taken name gets a conflict name (both kept). */
static int move_item(struct journal *j, struct op *o, const char *parent_id,
		     struct drive_item *out, char **err)
{
	char *want = NULL, *name = NULL;
	int rc;

	rc = graph_update_item(j->graph, o->item_id, o->name, parent_id, NULL, NULL, NULL, out,
			       err);
	if (rc != -EEXIST)
		return rc;
	want = o->name ? strdup(o->name) : cached_name(j, o->item_id);
	if (!want)
		return rc;
	if (name_freed(j, o->item_id, parent_id, want)) {
		free(*err);
		*err = NULL;
		rc = graph_update_item(j->graph, o->item_id, o->name, parent_id, NULL, NULL, NULL,
				       out, err);
		if (rc != -EEXIST) {
			free(want);
			return rc;
		}
	}
	/* the name was taken on the service meanwhile */
	free(*err);
	*err = NULL;
	name = names_conflict(want);
	rc = name ? graph_update_item(j->graph, o->item_id, name, parent_id, NULL, NULL, NULL, out,
				      err) : -ENOMEM;
	if (rc == 0) {
		rename_cached(j, o->item_id, want, name);
		log_warnx("'%s' was taken on another device meanwhile; yours is now '%s'", want,
			  name);
	}
	free(name);
	free(want);
	return rc;
}

static int replay_move(struct journal *j, struct op *o, char **err)
{
	struct drive_item out, cur;
	char *root = NULL, *name;
	int rc;

	memset(&out, 0, sizeof(out));
	memset(&cur, 0, sizeof(cur));
	if (cache_id_is_local(o->item_id) || cache_id_is_local(o->parent_id)) {
		*err = strdup("a folder it depends on could not be created");
		return -ENOENT;
	}
	rc = move_item(j, o, o->parent_id, &out, err);
	if (rc == -ENOENT && o->parent_id && graph_get_item(j->graph, o->item_id, &cur, NULL) == 0 &&
	    (root = root_id(j))) {
		/* the item is there: its new folder was deleted elsewhere */
		free(*err);
		*err = NULL;
		rc = move_item(j, o, root, &out, err);
		name = out.name ? out.name : o->name;
		if (rc == 0 && name) {
			moved_to_root(j, o->item_id, name);
			log_warnx("the folder '%s' was to move into was deleted on another device; "
				  "it is now '/%s'", o->path ? o->path : o->item_id, name);
		}
	} else if (rc == -ENOENT) {
		log_warnx("'%s' was deleted on another device before the rename could be sent",
			  o->path ? o->path : o->item_id);
		relist_parent_of_id(j, o->parent_id);
		rc = 0;
	}
	if (rc == 0 && out.id)
		take_answer(j, o->item_id, &out, 0);
	free(root);
	drive_item_release(&cur);
	drive_item_release(&out);
	return rc;
}

/* A folder is deleted only while the service shows it empty. */
static int count_child(void *ctx, struct drive_item *item)
{
	(void)item;
	(*(int *)ctx)++;
	return 1;
}

static int replay_delete(struct journal *j, struct op *o, char **err)
{
	struct drive_item cur;
	int rc, children = 0;

	if (cache_id_is_local(o->item_id))
		return 0;   /* its creation never reached the service */
	if (o->is_dir) {
		rc = graph_list_children(j->graph, o->item_id, count_child, &children, err);
		if (rc == -ENOENT)
			return 0;
		if (rc < 0 && rc != 1)
			return rc;
		if (children) {
			log_warnx("'%s' gained files on another device after you removed it here; "
				  "it was kept", o->path ? o->path : o->item_id);
			memset(&cur, 0, sizeof(cur));
			if (graph_get_item(j->graph, o->item_id, &cur, NULL) == 0)
				relist_parent_of_id(j, cur.parent_id);
			drive_item_release(&cur);
			return 0;
		}
	}
	rc = graph_delete_item_if(j->graph, o->item_id, o->tag, err);
	if (rc == -ENOENT)
		return 0;
	if (rc == -ESTALE) {
		log_warnx("'%s' changed on another device after you deleted it here; it was kept",
			  o->path ? o->path : o->item_id);
		memset(&cur, 0, sizeof(cur));
		if (graph_get_item(j->graph, o->item_id, &cur, NULL) == 0)
			relist_parent_of_id(j, cur.parent_id);
		drive_item_release(&cur);
		return 0;
	}
	return rc;
}

static int replay_times(struct journal *j, struct op *o, char **err)
{
	struct timespec mtime = { (time_t)o->mtime, 0 }, crtime = { (time_t)o->crtime, 0 };
	struct drive_item out;
	int rc;

	if (cache_id_is_local(o->item_id))
		return 0;
	memset(&out, 0, sizeof(out));
	rc = graph_update_item(j->graph, o->item_id, NULL, NULL, &mtime, o->crtime ? &crtime : NULL,
			       NULL, &out, err);
	if (rc == -ENOENT)
		rc = 0;
	else if (rc == 0)
		take_answer(j, o->item_id, &out, 0);
	drive_item_release(&out);
	return rc;
}

int journal_replay(struct journal *j, struct op *o, char **err)
{
	switch (o->kind) {
	case OP_FOLDER: return replay_folder(j, o, err);
	case OP_MOVE:   return replay_move(j, o, err);
	case OP_DELETE: return replay_delete(j, o, err);
	case OP_TIMES:  return replay_times(j, o, err);
	}
	return -EINVAL;
}

/*
 * A row the service refused for good: the cache must not go on showing a
 * change that never happened there.  The item's folders are listed again
 * (and delta reports them), which brings back the service's view; a
 * folder made here stays with its files, which still go up.
 */
void journal_forget_change(struct journal *j, const struct op *o)
{
	struct drive_item cur;
	struct cache_entry e;

	if (cache_id_is_local(o->item_id))
		return;
	memset(&cur, 0, sizeof(cur));
	if (graph_get_item(j->graph, o->item_id, &cur, NULL) == 0) {
		relist_parent_of_id(j, cur.parent_id);
		if (cache_get_by_id(j->cache, o->item_id, &e) == 0) {
			if (e.parent_ino)
				cache_set_listed_at(j->cache, e.parent_ino, 0);
			if (!e.dirty && cache_upsert(j->cache, &cur, NULL) == 0) {
				notify(j, e.parent_ino, e.item.name);
				notify(j, e.parent_ino, cur.name);
			}
			cache_entry_release(&e);
		}
	}
	drive_item_release(&cur);
	if (o->parent_id)
		relist_parent_of_id(j, o->parent_id);
}

const char *journal_what_of(const struct op *o)
{
	switch (o->kind) {
	case OP_FOLDER: return "create folder";
	case OP_MOVE:   return "rename";
	case OP_DELETE: return "remove";
	case OP_TIMES:  return "set the time of";
	}
	return "change";
}
