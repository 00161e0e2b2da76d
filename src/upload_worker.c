/*
 * upload_worker.c - the upload workers: take the first ready job, run it
 * (upload_run.c) and decide its fate: done, again (written meanwhile),
 * retried after a back-off, or parked when retrying cannot help.  Files
 * of up to 4 MiB (one PUT, mostly a short wait on the service) run on a
 * lane of cfg->small_uploads, larger ones (sessions moving bytes) on one
 * of cfg->upload_workers; there are as many workers as the wider lane.  The
 * queue, its journal rows and the API are upload.c's (see its DESIGN).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cache.h"
#include "config.h"
#include "errmap.h"
#include "http.h"
#include "log.h"
#include "upload.h"
#include "upload_internal.h"

#define REWRITES_NOTED 20               /* runs cut short by writes before a notice */
#define BACKOFF_QUOTA_MS 5000
#define BACKOFF_MAX_MS 60000

#define HOLD_RECHECK_MS 1000   /* a hold ends with upload_kick(); this is the safety net */

/* 1 when lane runs as many uploads as it may (small files: cfg->small_uploads). */
static int lane_full(const struct upload_queue *q, enum job_lane lane)
{
	long large = q->cfg->upload_workers > 0 ? q->cfg->upload_workers : 4;   /* as upload_start() */
	long small = q->cfg->small_uploads > 0 ? q->cfg->small_uploads : large;

	if (lane == LANE_LARGE)
		return q->running_large >= large;
	if (lane == LANE_SMALL)
		return q->running_small >= small;
	return 0;
}

/* The lane of j's current bytes (their size, as the cache has it); no lock held. */
static enum job_lane lane_of(struct upload_queue *q, const struct job *j)
{
	struct cache_entry e;
	enum job_lane lane;

	if (cache_get(q->cache, j->ino, &e) < 0)
		return LANE_SMALL;   /* gone: the run finds out at once */
	lane = e.item.size > UPLOAD_SIMPLE_MAX ? LANE_LARGE : LANE_SMALL;
	cache_entry_release(&e);
	return lane;
}

static long *lane_count(struct upload_queue *q, enum job_lane lane)
{
	return lane == LANE_LARGE ? &q->running_large : &q->running_small;
}

/* The first ready job, or NULL with *wake (monotonic ms, 0 = none) set. */
static struct job *next_ready(struct upload_queue *q, int64_t *wake)
{
	int64_t now = upload_now_ms();

	*wake = 0;
	if (q->head && upload_held(q)) {
		*wake = now + HOLD_RECHECK_MS;
		return NULL;
	}
	for (struct job *j = q->head; j; j = j->next) {
		if (j->state != JOB_QUEUED || j->failed)
			continue;
		/* still being written: upload_writer_close() wakes the workers */
		if (!j->urgent && upload_being_written(q, j->ino))
			continue;
		/* its lane is busy: a run there ending wakes the workers */
		if (lane_full(q, j->lane))
			continue;
		if (j->not_before <= now)
			return j;
		if (!*wake || j->not_before < *wake)
			*wake = j->not_before;
	}
	return NULL;
}

static void wait_until(struct upload_queue *q, int64_t wake)
{
	struct timespec ts;

	if (!wake) {
		pthread_cond_wait(&q->work, &q->lock);
		return;
	}
	ts.tv_sec = (time_t)(wake / 1000);
	ts.tv_nsec = (long)(wake % 1000) * 1000000;
	pthread_cond_timedwait(&q->work, &q->lock, &ts);
}

static int next_delay(const struct job *j, int rc)
{
	int first = rc == -ENOSPC ? BACKOFF_QUOTA_MS : UPLOAD_BACKOFF_FIRST_MS;

	if (j->attempts <= 1 || j->last_error != rc)
		return first;
	return j->delay_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : j->delay_ms * 2;
}

/* No failure or session behind j any more: it landed, or new content replaces it. */
static void start_afresh(struct job *j)
{
	j->attempts = 0;
	j->rewrites = 0;
	j->last_error = 0;
	free(j->message);
	j->message = NULL;
	free(j->session_url);
	j->session_url = NULL;
}

/* A run ended: decide the job's fate.  q->lock held. */
static void finish(struct upload_queue *q, struct job *j, struct outcome *oc)
{
	const char *path = oc->path ? oc->path : "?", *why;
	char what[1024];
	int rc = oc->rc, ok = rc >= 0;

	j->state = JOB_QUEUED;
	j->finished++;
	j->urgent = 0;
	if (j->forgotten && j->again) {
		/* forgotten, then queued anew (a rename over another file): run the new one */
		j->forgotten = 0;
		j->again = 0;
		j->mismatches = 0;
		start_afresh(j);
		j->not_before = upload_now_ms() + UPLOAD_SETTLE_MS;
		upload_requeue_last(q, j);
	} else if (j->forgotten && j->lost_create && !q->stopping) {
		/* what its create made may stay on the service: look again later */
		j->attempts++;
		j->delay_ms = next_delay(j, rc);
		j->not_before = upload_now_ms() + j->delay_ms;
		upload_requeue_last(q, j);
	} else if (j->forgotten) {
		/* with a create still in doubt at unmount the row stays: the next mount looks */
		if (!j->lost_create)
			upload_db_run(q, "DELETE FROM upload_jobs WHERE ino = ?", "i", (int64_t)j->ino);
		upload_remove_job(q, j);
	} else if (rc < 0 && q->stopping) {
		/* unmounting (a run cut short, or failing): the row stays for the next mount */
	} else if (ok) {
		if (j->attempts > 0 && rc != RUN_DROP)
			log_info("uploaded '%s'", path);
		start_afresh(j);
		if (rc == RUN_DONE)
			upload_set_conflict(q, j->ino, 0);
		else if (rc == RUN_CONFLICT)
			upload_set_conflict(q, j->ino, 1);
		if (j->again) {
			j->again = 0;
			j->not_before = upload_now_ms() + UPLOAD_SETTLE_MS;
			upload_requeue_last(q, j);
		} else {
			if (rc == RUN_CONFLICT)
				upload_db_run(q, "UPDATE upload_jobs SET state = 'conflict', session_url = NULL "
				       "WHERE ino = ? AND queued_at = ?", "ii", (int64_t)j->ino, j->stamp);
			else
				upload_db_run(q, "DELETE FROM upload_jobs WHERE ino = ? AND queued_at = ?", "ii",
				       (int64_t)j->ino, j->stamp);
			upload_remove_job(q, j);
		}
	} else if (oc->rewritten) {
		/* not a failure: the new version goes once the writes settle */
		if (++j->rewrites == REWRITES_NOTED)
			log_info("'%s' keeps changing while it uploads: it goes up once the writes "
				 "pause", path);
		else
			log_debug("'%s' was written again while it uploaded: uploading the new "
				  "version", path);
		j->not_before = upload_now_ms() + UPLOAD_SETTLE_MS;
		j->again = 0;
		upload_drop_session(j);
		upload_requeue_last(q, j);
	} else {
		j->attempts++;
		j->delay_ms = next_delay(j, rc);
		/* written again meanwhile: that new version deserves its own try */
		j->failed = oc->permanent && !j->again;
		/* the service's message may say "cannot upload 'x'" already */
		why = oc->message ? oc->message : errmap_strerror(rc);
		if (strncmp(why, "cannot ", 7) == 0)
			snprintf(what, sizeof(what), "%s", why);
		else
			snprintf(what, sizeof(what), "cannot upload '%s': %s", path, why);
		if (j->failed)
			log_error("%s; the local copy is kept, write the file again to retry", what);
		else if (j->attempts == 1 || j->last_error != rc)
			log_warnx("%s; it stays queued and is retried", what);
		j->last_error = rc;
		free(j->message);
		j->message = oc->message;
		oc->message = NULL;
		j->not_before = upload_now_ms() + (j->again ? UPLOAD_SETTLE_MS : j->delay_ms);
		if (j->again)
			upload_drop_session(j);   /* new content: a remembered session holds stale bytes */
		j->again = 0;
		upload_db_run(q, "UPDATE upload_jobs SET attempts = ?, last_error = ? WHERE ino = ?", "iti",
		       (int64_t)j->attempts, j->message, (int64_t)j->ino);
		upload_requeue_last(q, j);
	}
	pthread_cond_broadcast(&q->done);
	pthread_cond_signal(&q->work);
}

/* http cancel hook: an unmount abandons running requests and their waits. */
static int worker_cancelled(void *ctx)
{
	struct upload_queue *q = ctx;

	return __atomic_load_n(&q->stopping, __ATOMIC_RELAXED);
}

void *upload_worker_main(void *arg)
{
	struct upload_queue *q = arg;
	struct outcome oc;
	enum job_lane lane;
	struct job *j;
	int64_t wake;

	http_set_thread_cancel(worker_cancelled, q);
	pthread_mutex_lock(&q->lock);
	while (!q->stopping) {
		j = next_ready(q, &wake);
		if (!j) {
			wait_until(q, wake);
			continue;
		}
		j->state = JOB_RUNNING;
		j->again = 0;
		if (j->bequest) {
			/* handed over while it ran (a rename over another file) */
			upload_doubt_merge(q, j, j->bequest);
			free(j->bequest);
			j->bequest = NULL;
		}
		pthread_mutex_unlock(&q->lock);
		lane = lane_of(q, j);
		pthread_mutex_lock(&q->lock);
		j->lane = lane;
		if (lane_full(q, lane) || q->stopping) {
			/* back in its place until its lane has room */
			j->state = JOB_QUEUED;
			if (j->again) {
				j->again = 0;
				upload_drop_session(j);   /* written meanwhile, as upload_enqueue() does */
			}
			continue;
		}
		(*lane_count(q, lane))++;
		pthread_mutex_unlock(&q->lock);

		memset(&oc, 0, sizeof(oc));
		upload_run_job(q, j, &oc);

		pthread_mutex_lock(&q->lock);
		(*lane_count(q, lane))--;
		/* a job waiting for this lane may go now */
		pthread_cond_broadcast(&q->work);
		finish(q, j, &oc);
		free(oc.path);
		free(oc.message);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}
