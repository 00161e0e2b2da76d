/*
 * upload_internal.h - what the queue (upload.c) shares with one run (upload_run.c).
 *
 * Not an API: only the upload*.c files include it.  Field comments name the
 * lock that protects them (q->lock unless said otherwise).
 */
#ifndef ODFS_UPLOAD_INTERNAL_H
#define ODFS_UPLOAD_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include <sqlite3.h>
#include <sys/types.h>

#include "qxhash.h"
#include "upload.h"

struct content_stage;
struct drive_item;

#define UPLOAD_QUOTA_TEXT "the OneDrive is full (quota exceeded)"
#define UPLOAD_READ_ONLY_TEXT "access denied: this folder is read-only for you"

enum job_state { JOB_QUEUED, JOB_RUNNING };
/* Small files (one PUT) and large ones (a session) run on separate lanes. */
enum job_lane { LANE_UNKNOWN, LANE_SMALL, LANE_LARGE };

struct job {
	uint64_t ino;
	uint64_t serial;        /* unique per job object: waiters tell a new job from theirs */
	int64_t stamp;          /* queued_at of the journal row this job runs */
	enum job_state state;
	int again;              /* enqueued while running: run once more */
	int forgotten;          /* upload_forget() while running: abandon */
	int failed;             /* permanent failure: not retried until written again */
	int64_t not_before;     /* monotonic ms */
	int delay_ms;           /* current back-off */
	int attempts;           /* failed attempts in a row */
	int finished;           /* runs ended (waiters compare) */
	int last_error;         /* -errno of the last run, 0 */
	int mismatches;         /* hash mismatches in a row */
	int rewrites;           /* runs in a row cut short by writes here */
	int urgent;             /* upload_wait() waits for it: writers do not hold it back */
	enum job_lane lane;     /* small or large, as last seen (upload_worker.c) */
	char *message;          /* status text of the last failure, or NULL */
	char *session_url;      /* journalled session to resume, or NULL */
	char *stale_session;    /* a session of older bytes to end on the service, or NULL */
	int64_t session_size;
	int64_t session_expires; /* unix seconds */
	char *lost_create;      /* journalled "hash\nparent_id\nname" of a create that failed */
	char *lost_update;      /* journalled "item_id\nhash..." of versions sent, answer unknown */
	char *bequest;          /* the same, of an item this file took over while it ran: merged
				 * into lost_update before its next run */
	struct job *next;
};

/* Versions in doubt of an item a file took over, until its upload is queued. */
struct bequest {
	uint64_t heir;          /* the inode that took the item over */
	char *rec;              /* "item_id\nhash..." as in job.lost_update */
	struct bequest *next;
};

struct conflict_mark {
	uint64_t ino;
	struct conflict_mark *next;
};

/* Per-inode facts kept in memory: open write handles, times set on purpose. */
struct ino_mark {
	uint64_t ino;
	unsigned writers;               /* handles open for writing */
	int times_set;                  /* mtime below was set by utimens */
	struct timespec mtime;
	struct ino_mark *next;
};

struct upload_queue {
	const struct odfs_config *cfg;   /* borrowed */
	struct cache *cache;             /* borrowed */
	struct content_cache *content;   /* borrowed */
	struct graph *graph;             /* borrowed */

	pthread_mutex_t db_lock;         /* protects db */
	sqlite3 *db;

	pthread_mutex_t lock;            /* protects everything below */
	pthread_cond_t work;             /* a job became ready, or stop */
	pthread_cond_t done;             /* a run ended */
	struct job *head, *tail;         /* FIFO of all jobs */
	struct conflict_mark *conflicts; /* inodes whose status is "conflict" */
	struct bequest *bequests;        /* handed over by upload_forget_into(), not yet queued */
	struct ino_mark *marks;          /* writers and explicit times, by inode */
	uint64_t next_serial;
	int64_t last_stamp;
	int started, stopping;
	upload_notify_fn notify;         /* set before upload_start(), then read-only */
	void *notify_ctx;
	upload_hold_fn hold;             /* the same */
	void *hold_ctx;
	upload_move_fn move;             /* the same */
	void *move_ctx;
	upload_times_fn times;           /* the same */
	void *times_ctx;
	pthread_t *threads;
	long nthreads;
	long running_small, running_large;  /* runs per lane (cfg->small_uploads, upload_workers) */
};

/* What a run tells its worker. */
enum run_result { RUN_DONE = 0, RUN_DROP = 1, RUN_CONFLICT = 2 };

struct outcome {
	int rc;              /* enum run_result or -errno */
	char *path;          /* for messages, or NULL */
	char *message;       /* why it failed, or NULL */
	int permanent;       /* retrying cannot help (read-only folder, refused name) */
	int rewritten;       /* cut short: the file was written (or renamed) meanwhile; no failure */
};

/*
 * Run one statement with bound values ("i" int64_t, "t" text or NULL) on
 * the journal connection; takes q->db_lock.  0 or -errno (logged).
 */
int upload_db_run(struct upload_queue *q, const char *sql, const char *types, ...);

/*
 * Upload job->ino once (upload_run.c).  Runs without q->lock; reads the
 * job's forgotten flag and q->stopping atomically and owns the job's
 * session fields while it runs.  Returns enum run_result or -errno, also
 * in oc (with the path and a failure message, malloc'd).
 */
int upload_run_job(struct upload_queue *q, struct job *job, struct outcome *oc);

/* ---- upload_doubt.c: requests whose answer was lost ---- */

/* A new version (hash: its quickXorHash, base64) goes out to item_id: journal it. */
void upload_doubt_note_update(struct upload_queue *q, struct job *j, uint64_t ino,
			      const char *item_id, const char *hash);
/* An answer arrived: no version sent is in doubt (in memory; a stale row is harmless). */
void upload_doubt_clear_update(struct upload_queue *q, struct job *j);
/*
 * Add the versions in doubt of rec (another job's lost_update) to j's, as
 * when j's file took over that job's item.  q->lock held, j not running
 * (or about to run, by its worker).
 */
void upload_doubt_merge(struct upload_queue *q, struct job *j, const char *rec);
/* 1 if remote holds a version upload_doubt_note_update() journalled. */
int upload_doubt_own_version(const struct job *j, const struct drive_item *remote);
/* A create of these bytes goes out to parent_id/name: journal it. */
void upload_doubt_note_create(struct upload_queue *q, struct job *j, uint64_t ino,
			      const char *hash, const char *parent_id, const char *name);
/* The create landed, or what it made is gone: the job and its row forget it. */
void upload_doubt_clear_create(struct upload_queue *q, struct job *j, uint64_t ino);
/*
 * The item a create journalled as rec made, if the service holds a file
 * there with exactly the bytes sent then: 1 and *remote set, 0 when there
 * is none, or -errno.
 */
int upload_doubt_find_create(struct upload_queue *q, const char *rec, struct drive_item *remote,
			     char **err);

/*
 * A file whose create was in doubt (rec as journalled in job->lost_create)
 * is gone here: delete the item that create made, if the service holds
 * one where it went with exactly those bytes.  No lock held.  1 if such an
 * item was deleted, 0 if there is none (any more), -errno when the service
 * could not tell (keep rec and look again later).
 */
int upload_drop_lost_create(struct upload_queue *q, const char *rec);

/* 1 if ino's mtime was set on purpose to exactly *mtime (takes q->lock). */
int upload_times_explicit(struct upload_queue *q, uint64_t ino, const struct timespec *mtime);

#define UPLOAD_SIMPLE_MAX (4 * 1024 * 1024)   /* larger files go through a session */
#define UPLOAD_SETTLE_MS 500        /* before a job starts, unless waited for */
#define UPLOAD_BACKOFF_FIRST_MS 1000

static inline int64_t upload_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What the hold hook says (UPLOAD_HOLD_*). */
static inline int upload_held(struct upload_queue *q)
{
	return q->hold ? q->hold(q->hold_ctx) : UPLOAD_HOLD_NONE;
}

/* ---- per-inode marks (upload_marks.c; q->lock held) ---- */

/* 1 if ino's last upload kept a conflict copy. */
int upload_is_conflict(struct upload_queue *q, uint64_t ino);
/* The mark of ino, created when create is set (NULL on ENOMEM). */
struct ino_mark *upload_mark_of(struct upload_queue *q, uint64_t ino, int create);
/* Drop ino's mark once it says nothing any more. */
void upload_mark_trim(struct upload_queue *q, uint64_t ino);
/* The explicit time of ino's mark (0: none). */
int64_t upload_explicit_mtime_of(struct upload_queue *q, uint64_t ino);

/* ---- the queue's jobs, for the workers (upload.c; q->lock held) ---- */

/* 1 while a writer has ino open (its upload waits for the close). */
int upload_being_written(struct upload_queue *q, uint64_t ino);
/* The job of ino, or NULL. */
struct job *upload_find_job(struct upload_queue *q, uint64_t ino);
/* Put j back at the end of the queue. */
void upload_requeue_last(struct upload_queue *q, struct job *j);
/* Take j out of the queue and free it. */
void upload_remove_job(struct upload_queue *q, struct job *j);
/* Remember (on) or forget that ino's last upload kept a conflict copy. */
void upload_set_conflict(struct upload_queue *q, uint64_t ino, int on);
/* Forget j's upload session (new content: its bytes are stale). */
void upload_drop_session(struct job *j);

/* ---- the staged bytes of one upload (upload_reader.c) ---- */

/* One staged file being read for an upload, hashing as it goes. */
struct reader {
	struct upload_queue *q;
	struct job *job;        /* read-only here: its forgotten flag */
	const char *item_id;    /* the staged content's, for the change check */
	const struct content_stage *st;
	int fd;
	int64_t size;
	int64_t pos;            /* next byte the current request reads */
	int64_t hashed;         /* bytes [0, hashed) are in h */
	struct qxhash h;
	int changed;            /* written here while it was read: the request was cut */
};

/* 1 when the queue stops or the reader's job was forgotten. */
int upload_reader_cancelled(const struct reader *r);
/* http_source_fn: the next bytes at r->pos, hashed once each. */
ssize_t upload_reader_source(void *ctx, char *buf, size_t len);
/* 1 if the service's hash matches the bytes (or it sent none), else 0; <0 on read errors. */
int upload_reader_matches(struct reader *r, const char *remote);
/* The hash of the staged bytes, base64, in hash (NULL: they cannot be read). */
const char *upload_reader_hash(struct reader *rd, char *hash);
/* 1 if remote holds exactly the staged bytes (say, our own upload whose answer was lost). */
int upload_reader_same_bytes(struct reader *rd, const struct drive_item *remote);

/* A worker thread (upload_worker.c): runs ready jobs until q->stopping. */
void *upload_worker_main(void *arg);

#endif
