/*
 * journal.c - name operations made while offline, replayed in order.
 *
 * Table name_ops (cache_dir/meta.db, this module's own connection, WAL,
 * synchronous=FULL): seq orders the rows; kind is 'folder', 'move',
 * 'delete' or 'times'.  The rows are mirrored in a list behind j->lock;
 * the journal_replay thread runs the head, deletes its row, and moves on.  A row
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
#include "journal_internal.h"
#include "log.h"
#include "names.h"
#include "sqlrun.h"

#define BUSY_TIMEOUT_MS 10000
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 30000
#define WARN_ATTEMPTS 5        /* a row still refused: say so once */
#define GIVE_UP_ATTEMPTS 40    /* about 17 minutes, for failures other than the network's */

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

static const char *const kind_names[] = { "folder", "move", "delete", "times" };

/* ---- the table ---- */

/* One statement with bound values (sqlrun.h).  Takes db_lock. */
int journal_db_run(struct journal *j, int64_t *rowid, const char *sql, const char *types, ...)
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
	rc = journal_db_run(j, &o->seq, "INSERT INTO name_ops(kind, item_id, parent_id, name, tag, is_dir,"
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

void journal_set_taken_hook(struct journal *j, journal_taken_fn taken)
{
	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	j->taken = taken;
	pthread_mutex_unlock(&j->lock);
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
		rc = journal_replay(j, o, &err);
		if (rc < 0 && journal_is_transient(rc) && !thread_cancelled(j) &&
		    (errmap_is_transport(rc) || ++o->attempts < GIVE_UP_ATTEMPTS)) {
			if (o->attempts == WARN_ATTEMPTS)
				log_warnx("cannot %s '%s' yet: %s; it is retried, and later changes "
					  "wait for it", journal_what_of(o), o->path ? o->path : "?",
					  err ? err : errmap_strerror(rc));
			else
				log_debug("cannot %s '%s' yet: %s", journal_what_of(o),
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
				  "shows it as it is on the service", journal_what_of(o),
				  o->path ? o->path : "?", err ? err : errmap_strerror(rc));
		if (rc < 0)
			journal_forget_change(j, o);
		else
			sent++;
		free(err);
		delay = RETRY_FIRST_MS;
		journal_db_run(j, NULL, "DELETE FROM name_ops WHERE seq = ?", "i", o->seq);
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

	if (!e->item.is_dir || !cache_id_is_local(e->item.id) || has_folder_row(l->j, e->item.id))
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
		journal_id_map_free(m);
	}
	if (j->db)
		sqlite3_close(j->db);
	pthread_cond_destroy(&j->work);
	pthread_mutex_destroy(&j->order);
	pthread_mutex_destroy(&j->lock);
	pthread_mutex_destroy(&j->db_lock);
	free(j);
}
