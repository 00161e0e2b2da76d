/*
 * upload.c - the upload queue: closed files travel to OneDrive in the background.
 *
 * DESIGN (in the manner of redis bio.c)
 *
 * Journal.  Table upload_jobs in cache_dir/meta.db, through this module's own
 * SQLite connection (WAL, busy_timeout, synchronous=FULL).  Same file as the
 * cache on purpose: the FULL commit of a journal row syncs the shared WAL,
 * so the cache rows the file depends on (a new local file's row, written
 * with synchronous=NORMAL) become durable with it.  One row per inode:
 * state 'queued' (content to upload) or 'conflict' (only remembers the
 * status after a conflict).  queued_at is a stamp unique within the process
 * (microseconds, strictly increasing): a worker deletes a finished row only
 * if the stamp is still the one it ran, so an upload_enqueue() that raced
 * with the end of a run is never lost.  session_url/size/expires let a kill
 * -9 resume an upload session where the service says it stopped.
 *
 * Queue.  All jobs (one per inode) sit in one FIFO list behind q->lock; a
 * job is queued (ready at not_before), or running.  cfg->upload_workers
 * threads take the first ready job; a job enqueued while it runs is marked
 * "again" and goes back to the queue when the run ends, so one file is only
 * ever uploaded by one worker at a time, and in order.  q->work wakes the
 * workers, q->done the waiters of upload_wait().  Jobs wait a short settle
 * time before they start (a save dance of lock and temp files that are
 * deleted or renamed right after close() causes no remote churn); a waiter
 * in upload_wait() cuts it short.  Lock order: q->lock, then q->db_lock.
 *
 * A run reads the file's CURRENT entry from the cache (so a file renamed or
 * deleted before its upload starts is never uploaded under its old name),
 * stages the content (content.c fetches what was never downloaded), and
 * uploads with one PUT (up to 4 MiB) or an upload session, conditioned on
 * the cTag (else eTag) the cache entry holds: the cache only takes new tags
 * from this module after an upload, so they are the edit's base.  The
 * quickXorHash of the bytes is computed as they stream and compared with
 * the service's.  Failures stay queued with a back-off (1 s doubling to
 * 60 s; quota: 5 s to 60 s): data is never dropped.  A failure that retrying
 * cannot cure (a read-only shared folder, a name the service refuses) is
 * logged once and parks the job ("failed"): its status and fsync report
 * the error, the local copy and the journal row stay, and the next write
 * of the file (or the next mount) tries once more.
 *
 * Unmounting (upload_stop) cuts every wait short: the workers' back-off is
 * a condvar wait, and http.c's transfers, retry sleeps and Retry-After
 * waits look at a per-thread cancel hook (http_set_thread_cancel).
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
#include "content.h"
#include "errmap.h"
#include "graph.h"
#include "http.h"
#include "log.h"
#include "sqlrun.h"
#include "upload.h"
#include "upload_internal.h"

#define BUSY_TIMEOUT_MS 10000

/* ---- time ---- */

/* Unique, increasing journal stamp (microseconds since the epoch).  q->lock held. */
static int64_t next_stamp(struct upload_queue *q)
{
	struct timespec ts;
	int64_t us;

	clock_gettime(CLOCK_REALTIME, &ts);
	us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	if (us <= q->last_stamp)
		us = q->last_stamp + 1;
	q->last_stamp = us;
	return us;
}

/* ---- journal ---- */

static const char journal_sql[] =
	"CREATE TABLE IF NOT EXISTS upload_jobs("
	" ino INTEGER PRIMARY KEY,"
	" queued_at INTEGER NOT NULL,"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" last_error TEXT,"
	" session_url TEXT,"
	" session_size INTEGER,"
	" session_expires INTEGER,"
	" state TEXT NOT NULL DEFAULT 'queued')";

/*
 * Run one statement with bound values ("i" int64_t, "t" text or NULL) on
 * the journal connection.  Takes q->db_lock (callers may hold q->lock).
 */
int upload_db_run(struct upload_queue *q, const char *sql, const char *types, ...)
{
	va_list ap;
	int rc;

	pthread_mutex_lock(&q->db_lock);
	va_start(ap, types);
	rc = sqlrun_v(q->db, "the upload journal", NULL, sql, types, ap);
	va_end(ap);
	pthread_mutex_unlock(&q->db_lock);
	return rc;
}

static int journal_open(struct upload_queue *q, char **err)
{
	char *path = NULL;
	int rc;

	if (asprintf(&path, "%s/meta.db", q->cfg->cache_dir) < 0)
		return -ENOMEM;
	rc = sqlite3_open_v2(path, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlrun_busy_timeout(q->db, BUSY_TIMEOUT_MS);
		rc = sqlite3_exec(q->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;",
				  NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(q->db, journal_sql, NULL, NULL, NULL);
	/* added later: fails harmlessly ("duplicate column") on a journal that has it */
	if (rc == SQLITE_OK)
		sqlite3_exec(q->db, "ALTER TABLE upload_jobs ADD COLUMN moving_from TEXT", NULL, NULL,
			     NULL);
	if (rc == SQLITE_OK)   /* the seconds of an mtime set on purpose (upload_times_set) */
		sqlite3_exec(q->db, "ALTER TABLE upload_jobs ADD COLUMN explicit_mtime INTEGER", NULL,
			     NULL, NULL);
	if (rc == SQLITE_OK)   /* a new file's create whose answer may be lost (upload_run.c) */
		sqlite3_exec(q->db, "ALTER TABLE upload_jobs ADD COLUMN lost_create TEXT", NULL, NULL,
			     NULL);
	if (rc == SQLITE_OK)   /* a new version whose answer may be lost (upload_run.c) */
		sqlite3_exec(q->db, "ALTER TABLE upload_jobs ADD COLUMN lost_update TEXT", NULL, NULL,
			     NULL);
	if (rc != SQLITE_OK) {
		if (err && asprintf(err, "cannot open the upload journal in '%s': %s", path,
				    q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc)) < 0)
			*err = NULL;
		sqlite3_close(q->db);
		q->db = NULL;
		free(path);
		return -EIO;
	}
	free(path);
	return 0;
}

/* ---- jobs (q->lock held) ---- */

struct job *upload_find_job(struct upload_queue *q, uint64_t ino)
{
	for (struct job *j = q->head; j; j = j->next)
		if (j->ino == ino)
			return j;
	return NULL;
}

static struct job *add_job(struct upload_queue *q, uint64_t ino, int64_t stamp)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->ino = ino;
	j->serial = ++q->next_serial;
	j->stamp = stamp;
	j->state = JOB_QUEUED;
	j->not_before = upload_now_ms() + UPLOAD_SETTLE_MS;
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	return j;
}

static void free_job(struct job *j)
{
	free(j->message);
	free(j->session_url);
	free(j->lost_create);
	free(j->lost_update);
	free(j->bequest);
	free(j->stale_session);
	free(j);
}

/*
 * heir took over the item of a file whose versions in doubt are rec
 * (upload_forget_into): keep rec until heir's upload is queued.  q->lock held.
 */
static void bequeath(struct upload_queue *q, uint64_t heir, const char *rec)
{
	struct bequest *b = calloc(1, sizeof(*b));

	if (!b || !(b->rec = strdup(rec))) {
		free(b);
		return;   /* best effort, as the record itself */
	}
	b->heir = heir;
	b->next = q->bequests;
	q->bequests = b;
}

/* Give job j what was bequeathed to its inode (q->lock held). */
static void inherit(struct upload_queue *q, struct job *j)
{
	struct bequest **pp = &q->bequests, *b;

	while ((b = *pp)) {
		if (b->heir != j->ino) {
			pp = &b->next;
			continue;
		}
		*pp = b->next;
		if (j->state == JOB_RUNNING) {
			/* its worker merges it before the next run */
			free(j->bequest);
			j->bequest = b->rec;
		} else {
			upload_doubt_merge(q, j, b->rec);
			free(b->rec);
		}
		free(b);
	}
}

/*
 * The file was written again: its remembered session holds older bytes.
 * The next run ends it on the service (upload_run.c), which refuses a new
 * session for the file while one is open (409).  q->lock held, job not running.
 */
void upload_drop_session(struct job *j)
{
	if (!j->session_url)
		return;
	free(j->stale_session);
	j->stale_session = j->session_url;
	j->session_url = NULL;
}

void upload_remove_job(struct upload_queue *q, struct job *j)
{
	struct job **pp, *prev = NULL;

	for (pp = &q->head; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			if (q->tail == j)
				q->tail = prev;
			break;
		}
	}
	free_job(j);
}

/* Move j to the end of the FIFO (it ran; others go first). */
void upload_requeue_last(struct upload_queue *q, struct job *j)
{
	struct job **pp;

	if (q->tail == j)
		return;
	for (pp = &q->head; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	}
	j->next = NULL;
	q->tail->next = j;
	q->tail = j;
}

/* ---- the API ---- */

/*
 * A crash came between an upload's cache commit (the inode got its new id)
 * and the move of its content from the old id: finish the move, so the
 * bytes are found under the id the cache now has.  Lock not held.
 */
static void recover_move(struct upload_queue *q, uint64_t ino, const char *from)
{
	struct cache_entry e;
	int rc;

	if (cache_get(q->cache, ino, &e) < 0)
		return;
	if (strcmp(e.item.id, from) != 0) {
		rc = content_rename_id(q->content, from, e.item.id);
		if (rc == 0)
			log_info("recovered the local copy of '%s' after a crash", e.item.name);
		else if (rc != -ENOENT)
			log_warnx("cannot recover the local copy of '%s': %s", e.item.name,
				  errmap_strerror(rc));
	}
	cache_entry_release(&e);
}

/* Content moves a crash interrupted (see upload_run.c, landed()). */
static int recover_moves(struct upload_queue *q)
{
	sqlite3_stmt *st;
	struct {
		uint64_t ino;
		char *from;
	} *moves = NULL, *grown;
	size_t n = 0, i;
	int rc;

	pthread_mutex_lock(&q->db_lock);
	rc = sqlite3_prepare_v2(q->db, "SELECT ino, moving_from FROM upload_jobs "
				"WHERE moving_from IS NOT NULL", -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = SQLITE_OK;
		grown = realloc(moves, (n + 1) * sizeof(*moves));
		if (!grown) {
			rc = SQLITE_NOMEM;
			break;
		}
		moves = grown;
		moves[n].ino = (uint64_t)sqlite3_column_int64(st, 0);
		moves[n].from = strdup((const char *)sqlite3_column_text(st, 1));
		if (!moves[n].from) {
			rc = SQLITE_NOMEM;
			break;
		}
		n++;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&q->db_lock);
	/* outside db_lock: the cache and the content take their own locks */
	for (i = 0; i < n; i++) {
		if (rc == SQLITE_DONE) {
			recover_move(q, moves[i].ino, moves[i].from);
			upload_db_run(q, "UPDATE upload_jobs SET moving_from = NULL WHERE ino = ?", "i",
				      (int64_t)moves[i].ino);
		}
		free(moves[i].from);
	}
	free(moves);
	if (rc != SQLITE_DONE)
		log_error("cannot read the upload journal: %s", sqlite3_errstr(rc));
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Jobs and conflict marks the journal holds from an earlier mount. */
static int load_journal(struct upload_queue *q)
{
	sqlite3_stmt *st;
	struct job *j;
	const char *state, *url;
	int rc;

	rc = recover_moves(q);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&q->db_lock);
	rc = sqlite3_prepare_v2(q->db, "SELECT ino, queued_at, attempts, session_url, session_size, "
				"session_expires, state, explicit_mtime, lost_create, lost_update "
				"FROM upload_jobs "
				"ORDER BY queued_at", -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		rc = SQLITE_OK;
		if (sqlite3_column_type(st, 7) == SQLITE_INTEGER) {
			struct ino_mark *m = upload_mark_of(q, (uint64_t)sqlite3_column_int64(st, 0), 1);

			if (m) {
				m->times_set = 1;
				m->mtime.tv_sec = (time_t)sqlite3_column_int64(st, 7);
				m->mtime.tv_nsec = 0;
			}
		}
		state = (const char *)sqlite3_column_text(st, 6);
		if (state && strcmp(state, "conflict") == 0) {
			upload_set_conflict(q, (uint64_t)sqlite3_column_int64(st, 0), 1);
			continue;
		}
		j = add_job(q, (uint64_t)sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1));
		if (!j) {
			rc = SQLITE_NOMEM;
			break;
		}
		j->not_before = 0;
		if (j->stamp > q->last_stamp)
			q->last_stamp = j->stamp;
		url = (const char *)sqlite3_column_text(st, 3);
		if (url && (j->session_url = strdup(url))) {
			j->session_size = sqlite3_column_int64(st, 4);
			j->session_expires = sqlite3_column_int64(st, 5);
		}
		url = (const char *)sqlite3_column_text(st, 8);
		if (url)
			j->lost_create = strdup(url);
		url = (const char *)sqlite3_column_text(st, 9);
		if (url)
			j->lost_update = strdup(url);
	}
	if (rc != SQLITE_DONE)
		log_error("cannot read the upload journal: %s", sqlite3_errmsg(q->db));
	sqlite3_finalize(st);
	pthread_mutex_unlock(&q->db_lock);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

int upload_open(const struct odfs_config *cfg, struct cache *cache, struct content_cache *content,
		struct graph *g, struct upload_queue **out, char **err)
{
	struct upload_queue *q;
	pthread_condattr_t attr;
	int rc;

	*out = NULL;
	if (err)
		*err = NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->cfg = cfg;
	q->cache = cache;
	q->content = content;
	q->graph = g;
	pthread_mutex_init(&q->db_lock, NULL);
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&q->work, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&q->done, NULL);
	rc = journal_open(q, err);
	if (rc == 0)
		rc = load_journal(q);
	if (rc < 0) {
		if (err && !*err && asprintf(err, "cannot read the upload journal") < 0)
			*err = NULL;
		upload_close(q);
		return rc;
	}
	*out = q;
	return 0;
}

/* Record ino in the journal and queue it; the row is committed first. */
static int enqueue(struct upload_queue *q, uint64_t ino)
{
	struct job *j;
	int64_t stamp, explicit_mtime;
	int rc;

	pthread_mutex_lock(&q->lock);
	stamp = next_stamp(q);
	explicit_mtime = upload_explicit_mtime_of(q, ino);
	pthread_mutex_unlock(&q->lock);
	/* outside q->lock: a FULL commit waits for the disk; one statement, one sync */
	rc = upload_db_run(q, "INSERT INTO upload_jobs(ino, queued_at, state, explicit_mtime) "
		    "VALUES(?1, ?2, 'queued', nullif(?3, 0)) "
		    "ON CONFLICT(ino) DO UPDATE SET queued_at = max(queued_at, excluded.queued_at), "
		    "attempts = 0, last_error = NULL, session_url = NULL, session_size = NULL, "
		    "session_expires = NULL, state = 'queued', "
		    "explicit_mtime = coalesce(excluded.explicit_mtime, explicit_mtime)", "iii",
		    (int64_t)ino, stamp, explicit_mtime);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&q->lock);
	j = upload_find_job(q, ino);
	if (!j) {
		j = add_job(q, ino, stamp);
		rc = j ? 0 : -ENOMEM;
	} else {
		if (stamp > j->stamp)
			j->stamp = stamp;
		if (j->state == JOB_RUNNING) {
			j->again = 1;
		} else {
			/* new content: no reason to sit out an old back-off or failure */
			j->forgotten = 0;   /* kept for a create in doubt: the new run takes that item */
			j->failed = 0;
			j->not_before = upload_now_ms() + UPLOAD_SETTLE_MS;
			upload_drop_session(j);
		}
	}
	if (j)
		inherit(q, j);
	upload_set_conflict(q, ino, 0);
	pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int upload_enqueue(struct upload_queue *q, uint64_t ino)
{
	if (!q || ino == 0)
		return -EINVAL;
	return enqueue(q, ino);
}

struct dirty_list {
	uint64_t *v;
	size_t n, cap;
};

static int collect_dirty(void *ctx, const struct cache_entry *e)
{
	struct dirty_list *l = ctx;
	uint64_t *grown;

	if (e->item.is_dir)
		return 0;
	if (l->n == l->cap) {
		grown = realloc(l->v, (l->cap ? l->cap * 2 : 64) * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		l->v = grown;
		l->cap = l->cap ? l->cap * 2 : 64;
	}
	l->v[l->n++] = e->ino;
	return 0;
}

int upload_start(struct upload_queue *q)
{
	struct dirty_list dirty = { NULL, 0, 0 };
	long i, n = q->cfg->upload_workers > 0 ? q->cfg->upload_workers : 4;

	/* small files have their own, wider lane (upload_worker.c) */
	if (q->cfg->small_uploads > n)
		n = q->cfg->small_uploads;
	size_t k, resumed = 0;
	int rc, known;

	/* dirty files without a row (robustness: fs.c journals before replying) */
	if (cache_list_dirty(q->cache, collect_dirty, &dirty) == 0) {
		for (k = 0; k < dirty.n; k++) {
			pthread_mutex_lock(&q->lock);
			known = upload_find_job(q, dirty.v[k]) != NULL;
			pthread_mutex_unlock(&q->lock);
			if (!known)
				enqueue(q, dirty.v[k]);
		}
	}
	free(dirty.v);
	pthread_mutex_lock(&q->lock);
	for (struct job *j = q->head; j; j = j->next)
		resumed++;
	if (resumed)
		log_info("resuming %zu pending upload%s", resumed, resumed == 1 ? "" : "s");
	q->threads = calloc((size_t)n, sizeof(*q->threads));
	if (!q->threads) {
		pthread_mutex_unlock(&q->lock);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		rc = pthread_create(&q->threads[i], NULL, upload_worker_main, q);
		if (rc != 0)
			break;
		q->nthreads++;
	}
	q->started = q->nthreads > 0;
	pthread_mutex_unlock(&q->lock);
	if (q->nthreads == 0) {
		log_error("cannot start the upload threads");
		return -EAGAIN;
	}
	return 0;
}

void upload_stop(struct upload_queue *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	__atomic_store_n(&q->stopping, 1, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&q->work);
	pthread_cond_broadcast(&q->done);
	pthread_mutex_unlock(&q->lock);
	for (long i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	free(q->threads);
	q->threads = NULL;
	q->nthreads = 0;
	q->started = 0;
}

void upload_close(struct upload_queue *q)
{
	struct conflict_mark *m;
	struct job *j;

	if (!q)
		return;
	upload_stop(q);
	while ((j = q->head)) {
		q->head = j->next;
		free_job(j);
	}
	while ((m = q->conflicts)) {
		q->conflicts = m->next;
		free(m);
	}
	while (q->bequests) {
		struct bequest *b = q->bequests;

		q->bequests = b->next;
		free(b->rec);
		free(b);
	}
	while (q->marks) {
		struct ino_mark *im = q->marks;

		q->marks = im->next;
		free(im);
	}
	if (q->db)
		sqlite3_close(q->db);
	pthread_cond_destroy(&q->work);
	pthread_cond_destroy(&q->done);
	pthread_mutex_destroy(&q->lock);
	pthread_mutex_destroy(&q->db_lock);
	free(q);
}

int upload_wait(struct upload_queue *q, uint64_t ino)
{
	struct job *j;
	uint64_t serial;
	int finished, rc = 0;

	if (!q)
		return 0;
	pthread_mutex_lock(&q->lock);
	j = upload_find_job(q, ino);
	if (!j)
		goto out_unlock;
	/*
	 * A full drive stays full for a while, a read-only folder read-only:
	 * say so now (fsync reports ENOSPC, EACCES...).
	 */
	if (j->state == JOB_QUEUED && (j->last_error == -ENOSPC || j->failed)) {
		rc = j->last_error;
		goto out_unlock;
	}
	serial = j->serial;
	finished = j->finished;
	while (q->started && !q->stopping) {
		if (upload_held(q) == UPLOAD_HOLD_OFFLINE) {
			rc = 0;   /* journalled: it goes up when the service returns */
			goto out_unlock;
		}
		j = upload_find_job(q, ino);
		if (!j || j->serial != serial || j->forgotten) {
			rc = 0;
			goto out_unlock;
		}
		if (j->finished > finished && j->last_error) {
			rc = j->last_error;
			goto out_unlock;
		}
		if (j->state == JOB_QUEUED && (j->not_before > upload_now_ms() || !j->urgent)) {
			/* someone waits: no settle time, no back-off, no waiting for writers */
			j->not_before = upload_now_ms();
			j->urgent = 1;
			pthread_cond_signal(&q->work);
		}
		pthread_cond_wait(&q->done, &q->lock);
	}
	/* no workers (not started, or unmounting): the journal keeps it */
	j = upload_find_job(q, ino);
	rc = j ? j->last_error : 0;
out_unlock:
	pthread_mutex_unlock(&q->lock);
	return rc;
}

int upload_pending(struct upload_queue *q, uint64_t ino)
{
	struct job *j;
	int pending;

	if (!q)
		return 0;
	pthread_mutex_lock(&q->lock);
	j = upload_find_job(q, ino);
	pending = j && !j->forgotten;
	pthread_mutex_unlock(&q->lock);
	return pending;
}

char *upload_status(struct upload_queue *q, uint64_t ino)
{
	struct cache_entry e;
	struct job *j;
	char *s = NULL;
	int dirty;

	if (q) {
		pthread_mutex_lock(&q->lock);
		j = upload_find_job(q, ino);
		if (j && !j->forgotten) {
			if (j->state == JOB_RUNNING)
				s = strdup("uploading");
			else if (j->message && errmap_is_transport(j->last_error) &&
				 upload_held(q) == UPLOAD_HOLD_OFFLINE)
				s = strdup("dirty");   /* the offline state says why it waits */
			else if (j->message && asprintf(&s, "error: %s", j->message) < 0)
				s = NULL;
			else if (!j->message)
				s = strdup("dirty");
			pthread_mutex_unlock(&q->lock);
			return s;
		}
		if (upload_is_conflict(q, ino))
			s = strdup("conflict");
		pthread_mutex_unlock(&q->lock);
		if (s)
			return s;
	}
	dirty = 0;
	if (q && cache_get(q->cache, ino, &e) == 0) {
		dirty = e.dirty || e.is_local;
		cache_entry_release(&e);
	}
	return strdup(dirty ? "dirty" : "clean");
}

void upload_kick(struct upload_queue *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	for (struct job *j = q->head; j; j = j->next) {
		if (j->state != JOB_QUEUED || j->failed)
			continue;
		j->not_before = 0;
		j->delay_ms = UPLOAD_BACKOFF_FIRST_MS;
	}
	pthread_cond_broadcast(&q->work);
	pthread_cond_broadcast(&q->done);   /* waiters re-check the hold (offline now?) */
	pthread_mutex_unlock(&q->lock);
}

void upload_set_notify(struct upload_queue *q, upload_notify_fn fn, void *ctx)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->notify = fn;
	q->notify_ctx = ctx;
	pthread_mutex_unlock(&q->lock);
}

void upload_set_hold(struct upload_queue *q, upload_hold_fn fn, void *ctx)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->hold = fn;
	q->hold_ctx = ctx;
	pthread_mutex_unlock(&q->lock);
}

void upload_set_move(struct upload_queue *q, upload_move_fn fn, void *ctx)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->move = fn;
	q->move_ctx = ctx;
	pthread_mutex_unlock(&q->lock);
}

void upload_set_times_hook(struct upload_queue *q, upload_times_fn fn, void *ctx)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	q->times = fn;
	q->times_ctx = ctx;
	pthread_mutex_unlock(&q->lock);
}

static void forget(struct upload_queue *q, uint64_t ino, uint64_t heir)
{
	struct job *j;
	char *lost = NULL;
	int keep = 0, deleted;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	j = upload_find_job(q, ino);
	/*
	 * Under the lock that the run's note of a version takes: a version is
	 * either in the record handed over, or its bytes never leave (the run
	 * sees the flag set below first).
	 */
	if (j && heir && (j->lost_update || j->bequest))
		bequeath(q, heir, j->lost_update ? j->lost_update : j->bequest);
	if (j && j->state == JOB_RUNNING) {
		/* the run cleans up after an in-doubt create itself */
		__atomic_store_n(&j->forgotten, 1, __ATOMIC_RELAXED);
		keep = j->lost_create != NULL;
	} else if (j && j->lost_create) {
		/*
		 * What the in-doubt create made must go.  Until the service says
		 * so the job stays, forgotten, with its row: offline, after a
		 * failed look, or after a kill, a run looks again.
		 */
		__atomic_store_n(&j->forgotten, 1, __ATOMIC_RELAXED);
		j->failed = 0;
		j->not_before = upload_now_ms() + UPLOAD_BACKOFF_FIRST_MS;   /* the look below goes first */
		keep = 1;
		if (!q->hold || q->hold(q->hold_ctx) != UPLOAD_HOLD_OFFLINE)
			lost = strdup(j->lost_create);
	} else if (j) {
		upload_remove_job(q, j);
	}
	upload_set_conflict(q, ino, 0);
	{
		struct ino_mark *m = upload_mark_of(q, ino, 0);

		if (m) {
			m->times_set = 0;
			upload_mark_trim(q, ino);
		}
	}
	if (!keep)
		upload_db_run(q, "DELETE FROM upload_jobs WHERE ino = ?", "i", (int64_t)ino);
	pthread_cond_broadcast(&q->done);
	pthread_mutex_unlock(&q->lock);
	if (!lost)
		return;
	deleted = upload_drop_lost_create(q, lost);
	free(lost);
	if (deleted < 0)
		return;   /* the job's run looks again after its back-off */
	pthread_mutex_lock(&q->lock);
	j = upload_find_job(q, ino);
	if (j && j->state != JOB_RUNNING && __atomic_load_n(&j->forgotten, __ATOMIC_RELAXED)) {
		upload_remove_job(q, j);
		upload_db_run(q, "DELETE FROM upload_jobs WHERE ino = ?", "i", (int64_t)ino);
	}
	pthread_mutex_unlock(&q->lock);
}

void upload_forget(struct upload_queue *q, uint64_t ino)
{
	forget(q, ino, 0);
}

void upload_forget_into(struct upload_queue *q, uint64_t ino, uint64_t heir)
{
	forget(q, ino, heir);
}
