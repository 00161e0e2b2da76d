/*
 * journal.c - name operations made while offline, replayed in order.
 *
 * Table name_ops (cache_dir/meta.db, this module's own connection, WAL,
 * synchronous=FULL): seq orders the rows; kind is 'folder', 'move',
 * 'delete' or 'times'.  The rows are mirrored in a list behind j->lock;
 * the replay thread runs the head, deletes its row, and moves on.  A row
 * the service refuses for good (a name it rejects, a read-only folder) is
 * logged and dropped: one bad row must not hold every later change back.
 * Transport failures and throttling keep the row and wait (1 s doubling
 * to 30 s, or until journal_kick()).
 */
#define _GNU_SOURCE   /* asprintf */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "cache.h"
#include "config.h"
#include "errmap.h"
#include "graph.h"
#include "http.h"
#include "journal.h"
#include "log.h"
#include "names.h"
#include "sqlrun.h"

#define BUSY_TIMEOUT_MS 10000
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 30000
#define WARN_ATTEMPTS 5        /* a row still refused: say so once */
#define GIVE_UP_ATTEMPTS 40    /* about 17 minutes, for failures other than the network's */

enum op_kind { OP_FOLDER, OP_MOVE, OP_DELETE, OP_TIMES };

static const char *const kind_names[] = { "folder", "move", "delete", "times" };

struct op {
	int64_t seq;
	enum op_kind kind;
	char *item_id;
	char *parent_id;        /* folder: where; move: new parent or NULL */
	char *name;             /* folder: its name; move: new name or NULL */
	char *tag;              /* delete: the cTag it saw, or NULL */
	int is_dir;             /* delete */
	int64_t mtime, crtime;  /* times: unix seconds (0: leave) */
	char *path;             /* for messages */
	int attempts;           /* failed tries in a row (replay thread only) */
	struct op *next;
};

/* A folder's local id and the real one its replayed creation gave it. */
struct id_map {
	char *local_id, *real_id;
	struct id_map *next;
};

struct journal {
	const struct odfs_config *cfg;
	struct cache *cache;
	struct graph *graph;

	pthread_mutex_t db_lock;        /* protects db */
	sqlite3 *db;

	/*
	 * Held across a row's INSERT and its place in the list, and across an
	 * id rewrite of the table and the list, so a row added meanwhile is
	 * rewritten too; ids holds every rewrite made, for rows whose caller
	 * read the local id before it changed.  Taken before lock and db_lock.
	 */
	pthread_mutex_t order;
	struct id_map *ids;

	pthread_mutex_t lock;           /* protects everything below */
	pthread_cond_t work;            /* a row was added, a kick, or stop */
	struct op *head, *tail;
	int kicked, stopping, started;
	pthread_t thread;
	journal_notify_fn notify;       /* set before start, then read-only */
	journal_drained_fn drained;
	void *hook_ctx;
};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS name_ops("
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	" kind TEXT NOT NULL,"
	" item_id TEXT NOT NULL,"
	" parent_id TEXT,"
	" name TEXT,"
	" tag TEXT,"
	" is_dir INTEGER NOT NULL DEFAULT 0,"
	" mtime INTEGER NOT NULL DEFAULT 0,"
	" crtime INTEGER NOT NULL DEFAULT 0,"
	" path TEXT)";

/* ---- the table ---- */

/* One statement with bound values (sqlrun.h).  Takes db_lock. */
static int db_run(struct journal *j, int64_t *rowid, const char *sql, const char *types, ...)
{
	va_list ap;
	int rc;

	pthread_mutex_lock(&j->db_lock);
	va_start(ap, types);
	rc = sqlrun_v(j->db, "the journal of offline changes", rowid, sql, types, ap);
	va_end(ap);
	pthread_mutex_unlock(&j->db_lock);
	return rc;
}

static void free_op(struct op *o)
{
	if (!o)
		return;
	free(o->item_id);
	free(o->parent_id);
	free(o->name);
	free(o->tag);
	free(o->path);
	free(o);
}

static char *dup_or_null(const char *s, int *failed)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*failed = 1;
	return d;
}

static enum op_kind kind_of(const char *s)
{
	for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
		if (s && strcmp(s, kind_names[i]) == 0)
			return (enum op_kind)i;
	return OP_TIMES + 1;
}

static void append(struct journal *j, struct op *o)
{
	o->next = NULL;
	if (j->tail)
		j->tail->next = o;
	else
		j->head = o;
	j->tail = o;
}

static int load_rows(struct journal *j)
{
	sqlite3_stmt *st;
	struct op *o;
	int rc, failed = 0;

	pthread_mutex_lock(&j->db_lock);
	rc = sqlite3_prepare_v2(j->db, "SELECT seq, kind, item_id, parent_id, name, tag, is_dir,"
				" mtime, crtime, path FROM name_ops ORDER BY seq", -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = SQLITE_OK;
		o = calloc(1, sizeof(*o));
		if (!o) {
			rc = SQLITE_NOMEM;
			break;
		}
		o->seq = sqlite3_column_int64(st, 0);
		o->kind = kind_of((const char *)sqlite3_column_text(st, 1));
		o->item_id = dup_or_null((const char *)sqlite3_column_text(st, 2), &failed);
		o->parent_id = dup_or_null((const char *)sqlite3_column_text(st, 3), &failed);
		o->name = dup_or_null((const char *)sqlite3_column_text(st, 4), &failed);
		o->tag = dup_or_null((const char *)sqlite3_column_text(st, 5), &failed);
		o->is_dir = sqlite3_column_int(st, 6) != 0;
		o->mtime = sqlite3_column_int64(st, 7);
		o->crtime = sqlite3_column_int64(st, 8);
		o->path = dup_or_null((const char *)sqlite3_column_text(st, 9), &failed);
		if (failed || !o->item_id || o->kind > OP_TIMES) {
			free_op(o);
			if (failed) {
				rc = SQLITE_NOMEM;
				break;
			}
			continue;   /* a row this version does not know: skipped */
		}
		append(j, o);
	}
	if (rc != SQLITE_DONE)
		log_error("cannot read the journal of offline changes: %s", sqlite3_errmsg(j->db));
	sqlite3_finalize(st);
	pthread_mutex_unlock(&j->db_lock);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static int open_db(struct journal *j, char **err)
{
	char *path = NULL;
	int rc;

	if (asprintf(&path, "%s/meta.db", j->cfg->cache_dir) < 0)
		return -ENOMEM;
	rc = sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(j->db, BUSY_TIMEOUT_MS);
		rc = sqlite3_exec(j->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;",
				  NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(j->db, schema_sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		if (err && asprintf(err, "cannot open the journal of offline changes in '%s': %s",
				    path, j->db ? sqlite3_errmsg(j->db) : sqlite3_errstr(rc)) < 0)
			*err = NULL;
		sqlite3_close(j->db);
		j->db = NULL;
		free(path);
		return -EIO;
	}
	free(path);
	return 0;
}

/* ---- the API: recording ---- */

/* Replace *id by the real id a replayed folder creation gave it.  order held. */
static void translate(struct journal *j, char **id)
{
	char *real;

	if (!*id)
		return;
	for (struct id_map *m = j->ids; m; m = m->next) {
		if (strcmp(m->local_id, *id) == 0 && (real = strdup(m->real_id))) {
			free(*id);
			*id = real;
			return;
		}
	}
}

static int add(struct journal *j, struct op *o)
{
	int rc;

	if (!o->item_id) {
		free_op(o);
		return -ENOMEM;
	}
	pthread_mutex_lock(&j->order);
	translate(j, &o->item_id);
	translate(j, &o->parent_id);
	/* outside j->lock: a FULL commit waits for the disk */
	rc = db_run(j, &o->seq, "INSERT INTO name_ops(kind, item_id, parent_id, name, tag, is_dir,"
		    " mtime, crtime, path) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)", "tttttiiit",
		    kind_names[o->kind], o->item_id, o->parent_id, o->name, o->tag,
		    (int64_t)o->is_dir, o->mtime, o->crtime, o->path);
	if (rc < 0) {
		pthread_mutex_unlock(&j->order);
		free_op(o);
		return rc;
	}
	pthread_mutex_lock(&j->lock);
	append(j, o);
	pthread_cond_signal(&j->work);
	pthread_mutex_unlock(&j->lock);
	pthread_mutex_unlock(&j->order);
	return 0;
}

static struct op *new_op(enum op_kind kind, const char *item_id, const char *path, int *failed)
{
	struct op *o = calloc(1, sizeof(*o));

	if (!o) {
		*failed = 1;
		return NULL;
	}
	o->kind = kind;
	o->item_id = dup_or_null(item_id, failed);
	o->path = dup_or_null(path, failed);
	return o;
}

int journal_add_folder(struct journal *j, const char *local_id, const char *parent_id,
		       const char *name, const char *path)
{
	int failed = 0;
	struct op *o;

	if (!j || !local_id || !parent_id || !name)
		return -EINVAL;
	o = new_op(OP_FOLDER, local_id, path, &failed);
	if (o) {
		o->parent_id = dup_or_null(parent_id, &failed);
		o->name = dup_or_null(name, &failed);
	}
	if (failed) {
		free_op(o);
		return -ENOMEM;
	}
	return add(j, o);
}

int journal_add_move(struct journal *j, const char *item_id, const char *new_parent_id,
		     const char *new_name, const char *path)
{
	int failed = 0;
	struct op *o;

	if (!j || !item_id || (!new_parent_id && !new_name))
		return -EINVAL;
	o = new_op(OP_MOVE, item_id, path, &failed);
	if (o) {
		o->parent_id = dup_or_null(new_parent_id, &failed);
		o->name = dup_or_null(new_name, &failed);
	}
	if (failed) {
		free_op(o);
		return -ENOMEM;
	}
	return add(j, o);
}

int journal_add_delete(struct journal *j, const char *item_id, const char *ctag, int is_dir,
		       const char *path)
{
	int failed = 0;
	struct op *o;

	if (!j || !item_id)
		return -EINVAL;
	o = new_op(OP_DELETE, item_id, path, &failed);
	if (o) {
		o->tag = is_dir ? NULL : dup_or_null(ctag, &failed);
		o->is_dir = is_dir;
	}
	if (failed) {
		free_op(o);
		return -ENOMEM;
	}
	return add(j, o);
}

int journal_add_times(struct journal *j, const char *item_id, const struct timespec *mtime,
		      const struct timespec *crtime, const char *path)
{
	int failed = 0;
	struct op *o;

	if (!j || !item_id || !mtime)
		return -EINVAL;
	o = new_op(OP_TIMES, item_id, path, &failed);
	if (failed) {
		free_op(o);
		return -ENOMEM;
	}
	o->mtime = (int64_t)mtime->tv_sec;
	o->crtime = crtime ? (int64_t)crtime->tv_sec : 0;
	return add(j, o);
}

int journal_busy(struct journal *j)
{
	int busy;

	if (!j)
		return 0;
	pthread_mutex_lock(&j->lock);
	busy = j->head != NULL;
	pthread_mutex_unlock(&j->lock);
	return busy;
}

int journal_wanted(struct journal *j)
{
	if (!j)
		return 0;
	return graph_offline_since(j->graph) != 0 || journal_busy(j);
}

void journal_kick(struct journal *j)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	j->kicked = 1;
	pthread_cond_broadcast(&j->work);
	pthread_mutex_unlock(&j->lock);
}

void journal_set_hooks(struct journal *j, journal_notify_fn notify, journal_drained_fn drained,
		       void *ctx)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	j->notify = notify;
	j->drained = drained;
	j->hook_ctx = ctx;
	pthread_mutex_unlock(&j->lock);
}

/* ---- replay ---- */

static int is_local_id(const char *id)
{
	return id && strncmp(id, CACHE_LOCAL_PREFIX, strlen(CACHE_LOCAL_PREFIX)) == 0;
}

/* Transport trouble or throttling: the row waits and is tried again. */
static int is_transient(int rc)
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
static void id_map_free(struct id_map *m)
{
	if (m) {
		free(m->local_id);
		free(m->real_id);
		free(m);
	}
}

static int rewrite_id(struct journal *j, const char *old, const char *new_id)
{
	struct id_map *m = calloc(1, sizeof(*m));
	char *a, *b;
	int rc;

	if (!m || !(m->local_id = strdup(old)) || !(m->real_id = strdup(new_id))) {
		id_map_free(m);
		return -ENOMEM;
	}
	old = m->local_id;   /* the caller's string may be one of those replaced */
	pthread_mutex_lock(&j->order);
	/* both columns in one statement: a kill between two would strand rows */
	rc = db_run(j, NULL, "UPDATE name_ops SET"
		    " item_id = CASE WHEN item_id = ?1 THEN ?2 ELSE item_id END,"
		    " parent_id = CASE WHEN parent_id = ?1 THEN ?2 ELSE parent_id END"
		    " WHERE item_id = ?1 OR parent_id = ?1", "tt", old, new_id);
	if (rc < 0) {
		pthread_mutex_unlock(&j->order);
		id_map_free(m);
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

/* POST the folder; a name taken by a folder merges, by a file takes a conflict name. */
static int create_folder(struct journal *j, struct op *o, const char *parent_id,
			 struct drive_item *out, char **err)
{
	struct drive_item other;
	char *name;
	int rc;

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
	int rc;

	memset(&out, 0, sizeof(out));
	rc = is_local_id(o->parent_id) ? -ENOENT :
		create_folder(j, o, o->parent_id, &out, err);
	if (rc == -ENOENT && (root = root_id(j)) && strcmp(root, o->parent_id) != 0) {
		/* its parent is gone from the service: the folder goes to the root */
		free(*err);
		*err = NULL;
		rc = create_folder(j, o, root, &out, err);
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
		cache_entry_release(&e);
	}
	if (rc == 0 || rc == -ENOENT)
		rc = rewrite_id(j, o->item_id, out.id);
	drive_item_release(&out);
	return rc;
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
	/* the name was taken on the service meanwhile */
	want = o->name ? strdup(o->name) : cached_name(j, o->item_id);
	if (!want)
		return rc;
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
	if (is_local_id(o->item_id) || is_local_id(o->parent_id)) {
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

	if (is_local_id(o->item_id))
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

	if (is_local_id(o->item_id))
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

static int replay(struct journal *j, struct op *o, char **err)
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
static void forget_change(struct journal *j, const struct op *o)
{
	struct drive_item cur;
	struct cache_entry e;

	if (is_local_id(o->item_id))
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

static const char *what_of(const struct op *o)
{
	switch (o->kind) {
	case OP_FOLDER: return "create folder";
	case OP_MOVE:   return "rename";
	case OP_DELETE: return "remove";
	case OP_TIMES:  return "set the time of";
	}
	return "change";
}

static int thread_cancelled(void *ctx)
{
	struct journal *j = ctx;

	return __atomic_load_n(&j->stopping, __ATOMIC_RELAXED);
}

static void wait_ms(struct journal *j, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	while (!j->stopping && !j->kicked &&
	       pthread_cond_timedwait(&j->work, &j->lock, &ts) == 0)
		;
}

static void *replay_main(void *arg)
{
	struct journal *j = arg;
	int delay = RETRY_FIRST_MS, rc, sent = 0;
	journal_drained_fn drained;
	char *err;
	struct op *o;

	http_set_thread_cancel(thread_cancelled, j);
	pthread_mutex_lock(&j->lock);
	while (!j->stopping) {
		if (!j->head) {
			pthread_cond_wait(&j->work, &j->lock);
			continue;
		}
		if (graph_offline_since(j->graph) && !j->kicked) {
			/* the prober says when it answers again (journal_kick) */
			wait_ms(j, RETRY_MAX_MS);
			continue;
		}
		j->kicked = 0;
		o = j->head;
		pthread_mutex_unlock(&j->lock);

		err = NULL;
		rc = replay(j, o, &err);
		if (rc < 0 && is_transient(rc) && !thread_cancelled(j) &&
		    (errmap_is_transport(rc) || ++o->attempts < GIVE_UP_ATTEMPTS)) {
			if (o->attempts == WARN_ATTEMPTS)
				log_warnx("cannot %s '%s' yet: %s; it is retried, and later changes "
					  "wait for it", what_of(o), o->path ? o->path : "?",
					  err ? err : errmap_strerror(rc));
			else
				log_debug("cannot %s '%s' yet: %s", what_of(o),
					  o->path ? o->path : "?", err ? err : errmap_strerror(rc));
			free(err);
			pthread_mutex_lock(&j->lock);
			wait_ms(j, delay);
			delay = delay * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : delay * 2;
			continue;
		}
		if (rc < 0 && thread_cancelled(j)) {
			free(err);
			pthread_mutex_lock(&j->lock);
			break;
		}
		if (rc < 0)
			log_error("cannot %s '%s' on OneDrive: %s; it was not sent, the drive "
				  "shows it as it is on the service", what_of(o),
				  o->path ? o->path : "?", err ? err : errmap_strerror(rc));
		if (rc < 0)
			forget_change(j, o);
		else
			sent++;
		free(err);
		delay = RETRY_FIRST_MS;
		db_run(j, NULL, "DELETE FROM name_ops WHERE seq = ?", "i", o->seq);
		pthread_mutex_lock(&j->lock);
		j->head = o->next;
		if (!j->head)
			j->tail = NULL;
		free_op(o);
		if (!j->head) {
			drained = j->drained;
			pthread_mutex_unlock(&j->lock);
			if (sent)
				log_info("sent %d change%s made while offline", sent,
					 sent == 1 ? "" : "s");
			sent = 0;
			if (drained)
				drained(j->hook_ctx);
			pthread_mutex_lock(&j->lock);
		}
	}
	pthread_mutex_unlock(&j->lock);
	return NULL;
}

/* ---- lifecycle ---- */

int journal_open(const struct odfs_config *cfg, struct cache *cache, struct graph *g,
		 struct journal **out, char **err)
{
	struct journal *j;
	pthread_condattr_t attr;
	int rc;

	*out = NULL;
	if (err)
		*err = NULL;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->cfg = cfg;
	j->cache = cache;
	j->graph = g;
	pthread_mutex_init(&j->db_lock, NULL);
	pthread_mutex_init(&j->lock, NULL);
	pthread_mutex_init(&j->order, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&j->work, &attr);
	pthread_condattr_destroy(&attr);
	rc = open_db(j, err);
	if (rc == 0)
		rc = load_rows(j);
	if (rc < 0) {
		journal_close(j);
		return rc;
	}
	*out = j;
	return 0;
}

/* A local folder with no row to create it (a crash between the two commits). */
struct orphans {
	struct journal *j;
	struct cache_entry *v;
	size_t n, cap;
};

static int has_folder_row(struct journal *j, const char *id)
{
	int found = 0;

	pthread_mutex_lock(&j->lock);
	for (struct op *o = j->head; o && !found; o = o->next)
		found = o->kind == OP_FOLDER && strcmp(o->item_id, id) == 0;
	pthread_mutex_unlock(&j->lock);
	return found;
}

static int collect_orphan(void *ctx, const struct cache_entry *e)
{
	struct orphans *l = ctx;
	struct cache_entry *grown;

	if (!e->item.is_dir || !is_local_id(e->item.id) || has_folder_row(l->j, e->item.id))
		return 0;
	if (l->n == l->cap) {
		grown = realloc(l->v, (l->cap ? l->cap * 2 : 8) * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		l->v = grown;
		l->cap = l->cap ? l->cap * 2 : 8;
	}
	memset(&l->v[l->n], 0, sizeof(l->v[l->n]));
	l->v[l->n].ino = e->ino;
	l->v[l->n].parent_ino = e->parent_ino;
	l->v[l->n].item.id = strdup(e->item.id);
	l->v[l->n].item.name = strdup(e->item.name ? e->item.name : "");
	l->n++;
	return 0;
}

/*
 * Local folders in inode order (parents before children) that no row
 * creates get one now, so their files are never stuck waiting for them.
 */
static void repair_orphans(struct journal *j)
{
	struct orphans l = { .j = j };
	struct cache_entry parent;

	if (cache_list_dirty(j->cache, collect_orphan, &l) < 0)
		log_warnx("cannot check the cache for folders made offline");
	for (size_t i = 0; i < l.n; i++) {
		if (l.v[i].item.id && l.v[i].item.name &&
		    cache_get(j->cache, l.v[i].parent_ino, &parent) == 0) {
			if (journal_add_folder(j, l.v[i].item.id, parent.item.id, l.v[i].item.name,
					       l.v[i].item.name) == 0)
				log_info("folder '%s' made offline is queued to be created again",
					 l.v[i].item.name);
			cache_entry_release(&parent);
		}
		cache_entry_release(&l.v[i]);
	}
	free(l.v);
}

int journal_start(struct journal *j)
{
	size_t n = 0;
	int rc;

	repair_orphans(j);
	pthread_mutex_lock(&j->lock);
	for (struct op *o = j->head; o; o = o->next)
		n++;
	pthread_mutex_unlock(&j->lock);
	if (n)
		log_info("%zu change%s made while offline wait%s to be sent", n, n == 1 ? "" : "s",
			 n == 1 ? "s" : "");
	rc = pthread_create(&j->thread, NULL, replay_main, j);
	if (rc != 0) {
		log_error("cannot start the thread that sends offline changes");
		return -rc;
	}
	j->started = 1;
	return 0;
}

void journal_stop(struct journal *j)
{
	if (!j || !j->started)
		return;
	pthread_mutex_lock(&j->lock);
	__atomic_store_n(&j->stopping, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&j->work);
	pthread_mutex_unlock(&j->lock);
	pthread_join(j->thread, NULL);
	j->started = 0;
}

void journal_close(struct journal *j)
{
	struct op *o;

	if (!j)
		return;
	journal_stop(j);
	while ((o = j->head)) {
		j->head = o->next;
		free_op(o);
	}
	while (j->ids) {
		struct id_map *m = j->ids;

		j->ids = m->next;
		id_map_free(m);
	}
	if (j->db)
		sqlite3_close(j->db);
	pthread_cond_destroy(&j->work);
	pthread_mutex_destroy(&j->order);
	pthread_mutex_destroy(&j->lock);
	pthread_mutex_destroy(&j->db_lock);
	free(j);
}
