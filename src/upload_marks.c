/*
 * upload_marks.c - what the upload queue remembers of an inode besides its
 * job (upload_internal.h, upload.h): the files open for writing (an upload
 * waits for the last close), the time set on purpose (utimens; journalled
 * with the job's row, so a kill does not turn it implicit), and whether the
 * last upload kept a conflict copy.  All under q->lock unless said.
 */
#include <pthread.h>
#include <stdlib.h>

#include "upload.h"
#include "upload_internal.h"

int upload_is_conflict(struct upload_queue *q, uint64_t ino)
{
	for (struct conflict_mark *m = q->conflicts; m; m = m->next)
		if (m->ino == ino)
			return 1;
	return 0;
}

void upload_set_conflict(struct upload_queue *q, uint64_t ino, int on)
{
	struct conflict_mark **pp, *m;

	for (pp = &q->conflicts; *pp; pp = &(*pp)->next) {
		if ((*pp)->ino == ino) {
			if (!on) {
				m = *pp;
				*pp = m->next;
				free(m);
			}
			return;
		}
	}
	if (on && (m = calloc(1, sizeof(*m)))) {
		m->ino = ino;
		m->next = q->conflicts;
		q->conflicts = m;
	}
}

/* ---- marks: open writers and explicit times ---- */

/* The mark of ino, created when create is set (NULL on ENOMEM).  Lock held. */
struct ino_mark *upload_mark_of(struct upload_queue *q, uint64_t ino, int create)
{
	struct ino_mark *m;

	for (m = q->marks; m; m = m->next)
		if (m->ino == ino)
			return m;
	if (create && (m = calloc(1, sizeof(*m)))) {
		m->ino = ino;
		m->next = q->marks;
		q->marks = m;
	}
	return m;
}

/* Drop ino's mark once it says nothing any more.  Lock held. */
void upload_mark_trim(struct upload_queue *q, uint64_t ino)
{
	struct ino_mark **pp, *m;

	for (pp = &q->marks; (m = *pp); pp = &m->next) {
		if (m->ino == ino) {
			if (!m->writers && !m->times_set) {
				*pp = m->next;
				free(m);
			}
			return;
		}
	}
}

int upload_being_written(struct upload_queue *q, uint64_t ino)
{
	struct ino_mark *m = upload_mark_of(q, ino, 0);

	return m && m->writers > 0;
}

void upload_writer_open(struct upload_queue *q, uint64_t ino)
{
	struct ino_mark *m;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	m = upload_mark_of(q, ino, 1);
	if (m)
		m->writers++;
	pthread_mutex_unlock(&q->lock);
}

void upload_writer_close(struct upload_queue *q, uint64_t ino)
{
	struct ino_mark *m;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	m = upload_mark_of(q, ino, 0);
	if (m && m->writers > 0 && --m->writers == 0) {
		upload_mark_trim(q, ino);
		pthread_cond_broadcast(&q->work);   /* its upload may start now */
	}
	pthread_mutex_unlock(&q->lock);
}

/*
 * The mark is journalled with ino's upload row (when there is one; enqueue
 * copies it into a new row): a kill must not turn the time implicit.
 */
void upload_times_set(struct upload_queue *q, uint64_t ino, const struct timespec *mtime)
{
	struct ino_mark *m;
	int has_row;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	m = upload_mark_of(q, ino, 1);
	if (m) {
		m->times_set = 1;
		m->mtime = *mtime;
	}
	/* no row yet (tar sets the time before close): the enqueue copies the mark */
	has_row = upload_find_job(q, ino) || upload_is_conflict(q, ino);
	pthread_mutex_unlock(&q->lock);
	/* outside q->lock: a FULL commit waits for the disk */
	if (has_row)
		upload_db_run(q, "UPDATE upload_jobs SET explicit_mtime = ? WHERE ino = ?", "ii",
			      (int64_t)mtime->tv_sec, (int64_t)ino);
}

/* The explicit time of ino's mark (0: none).  q->lock held. */
int64_t upload_explicit_mtime_of(struct upload_queue *q, uint64_t ino)
{
	struct ino_mark *m = upload_mark_of(q, ino, 0);

	return m && m->times_set ? (int64_t)m->mtime.tv_sec : 0;
}

int upload_times_explicit(struct upload_queue *q, uint64_t ino, const struct timespec *mtime)
{
	struct ino_mark *m;
	int explicit_time;

	pthread_mutex_lock(&q->lock);
	m = upload_mark_of(q, ino, 0);
	/* a write after the utimens gave the file a new time: that one is implicit */
	explicit_time = m && m->times_set && m->mtime.tv_sec == mtime->tv_sec;
	pthread_mutex_unlock(&q->lock);
	return explicit_time;
}
