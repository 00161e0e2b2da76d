/*
 * upload_doubt.c - uploads whose answer was lost.
 *
 * A request can land on the service while its answer never arrives (a
 * dropped connection, a kill).  Before a create or a new version goes out,
 * the job's journal row records what it sends (the bytes' quickXorHash and
 * where they go), so that a later run recognizes the item or the version
 * that request made as its own: no phantom second file, no "conflict" copy
 * of itself, and no item left behind by a file deleted here meanwhile.
 * The records live in upload_jobs.lost_create and lost_update.
 */
#define _GNU_SOURCE   /* asprintf */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "graph.h"
#include "log.h"
#include "names.h"
#include "upload.h"
#include "upload_internal.h"

#define LOST_VERSIONS_MAX 4             /* versions in doubt remembered per file */

/*
 * old ("item_id\nhash\nhash...", or NULL) with hash put first: every
 * version sent to the item since an answer last arrived (any of them may be
 * the one that landed), the newest LOST_VERSIONS_MAX kept.  A record of
 * another item is dropped.  malloc'd, NULL when out of memory.
 */
static char *record_with(const char *old, const char *item_id, const char *hash)
{
	char *rec, *kept;
	const char *p = old ? strchr(old, '\n') : NULL, *end;
	size_t len, used = 0;
	int n = 1;

	kept = calloc(1, old ? strlen(old) + 1 : 1);
	if (!kept)
		return NULL;
	if (p && strlen(item_id) == (size_t)(p - old) &&
	    strncmp(old, item_id, (size_t)(p - old)) == 0) {
		/* the same item: the hashes sent before follow, but this one */
		for (; p && n < LOST_VERSIONS_MAX; p = end) {
			end = strchr(p + 1, '\n');
			len = end ? (size_t)(end - p - 1) : strlen(p + 1);
			if (len == strlen(hash) && strncmp(p + 1, hash, len) == 0)
				continue;
			memcpy(kept + used, p, len + 1);
			used += len + 1;
			n++;
		}
	}
	if (asprintf(&rec, "%s\n%s%s", item_id, hash, kept) < 0)
		rec = NULL;
	free(kept);
	return rec;
}

/*
 * A new version of an existing item is about to go out.  The service may
 * take it and the answer never arrive (a dropped connection, a kill); the
 * next upload's If-Match then fails against that version, our own.  Journal
 * the bytes' hash first, so that upload_run.c knows such a version
 * for ours instead of keeping a conflict copy of it.  The pointer changes
 * under q->lock: a rename over the file hands the record over
 * (upload_forget_into) while this run may go on.  Best effort.
 */
void upload_doubt_note_update(struct upload_queue *q, struct job *j, uint64_t ino,
			      const char *item_id, const char *hash)
{
	char *rec, *old;

	/* only this job's worker writes it while the job runs: no lock to read */
	rec = record_with(j->lost_update, item_id, hash);
	if (!rec)
		return;
	if (j->lost_update && strcmp(j->lost_update, rec) == 0) {
		free(rec);   /* journalled already */
		return;
	}
	pthread_mutex_lock(&q->lock);
	old = j->lost_update;
	j->lost_update = rec;
	pthread_mutex_unlock(&q->lock);
	free(old);
	upload_db_run(q, "UPDATE upload_jobs SET lost_update = ? WHERE ino = ?", "ti", rec,
		      (int64_t)ino);
}

/* An answer arrived: no version sent is in doubt (in memory; a stale row is harmless). */
void upload_doubt_clear_update(struct upload_queue *q, struct job *j)
{
	char *old;

	pthread_mutex_lock(&q->lock);
	old = j->lost_update;
	j->lost_update = NULL;
	pthread_mutex_unlock(&q->lock);
	free(old);
}

#define MERGE_MAX 16   /* hashes read from a record handed over */

void upload_doubt_merge(struct upload_queue *q, struct job *j, const char *rec)
{
	const char *hashes[MERGE_MAX], *p = rec ? strchr(rec, '\n') : NULL;
	char *item, *cur, *next, *hash;
	size_t lens[MERGE_MAX];
	int n = 0;

	if (!p)
		return;
	item = strndup(rec, (size_t)(p - rec));
	if (!item)
		return;
	for (; p && n < MERGE_MAX; p = strchr(p + 1, '\n')) {
		hashes[n] = p + 1;
		lens[n] = strchr(p + 1, '\n') ? (size_t)(strchr(p + 1, '\n') - p - 1) : strlen(p + 1);
		n++;
	}
	cur = j->lost_update ? strdup(j->lost_update) : NULL;
	if (j->lost_update && !cur)
		goto out_free_item;
	/* oldest first, so that the handed-over record keeps its order, newest first */
	while (n-- > 0) {
		hash = strndup(hashes[n], lens[n]);
		next = hash ? record_with(cur, item, hash) : NULL;
		free(hash);
		if (!next)
			goto out_free_cur;
		free(cur);
		cur = next;
	}
	free(j->lost_update);
	j->lost_update = cur;
	cur = NULL;
	upload_db_run(q, "UPDATE upload_jobs SET lost_update = ? WHERE ino = ?", "ti", j->lost_update,
		      (int64_t)j->ino);
out_free_cur:
	free(cur);
out_free_item:
	free(item);
}

/* 1 if remote holds a version upload_doubt_note_update() journalled (its answer was lost). */
int upload_doubt_own_version(const struct job *j, const struct drive_item *remote)
{
	const char *rec = j->lost_update, *p = rec ? strchr(rec, '\n') : NULL, *end;
	size_t len;

	if (!p || !remote->qxhash || !remote->id || strlen(remote->id) != (size_t)(p - rec) ||
	    strncmp(rec, remote->id, (size_t)(p - rec)) != 0)
		return 0;
	for (; p; p = end) {
		end = strchr(p + 1, '\n');
		len = end ? (size_t)(end - p - 1) : strlen(p + 1);
		if (len == strlen(remote->qxhash) && strncmp(p + 1, remote->qxhash, len) == 0)
			return 1;
	}
	return 0;
}

/*
 * A create of a new file is about to go out.  The service may make the
 * item and the answer never arrive (a dropped connection, a kill): journal
 * the bytes' hash and where they go first, so that a later run takes that
 * item for its own instead of making another one beside it (a phantom
 * name, or a "conflict" copy of itself).  Best effort.
 */
void upload_doubt_note_create(struct upload_queue *q, struct job *j, uint64_t ino,
			      const char *hash, const char *parent_id, const char *name)
{
	char *rec;

	if (asprintf(&rec, "%s\n%s\n%s", hash, parent_id, name) < 0)
		return;
	if (j->lost_create && strcmp(j->lost_create, rec) == 0) {
		free(rec);   /* journalled already */
		return;
	}
	free(j->lost_create);
	j->lost_create = rec;
	upload_db_run(q, "UPDATE upload_jobs SET lost_create = ? WHERE ino = ?", "ti", rec,
		      (int64_t)ino);
}

/*
 * The create landed, or what it made is gone.  The row forgets it too: a
 * stale record, loaded by the next mount, would name an item the file owns
 * now, and the file's deletion (or a rename over it) would delete that
 * item once more, under whoever took it over meanwhile.
 */
void upload_doubt_clear_create(struct upload_queue *q, struct job *j, uint64_t ino)
{
	free(j->lost_create);
	j->lost_create = NULL;
	upload_db_run(q, "UPDATE upload_jobs SET lost_create = NULL WHERE ino = ?", "i",
		      (int64_t)ino);
}

/*
 * The item a create journalled as rec ("hash\nparent_id\nname") made, if
 * the service holds a file there with exactly the bytes sent then: 1 and
 * *remote set, 0 when there is none (nothing was made, or someone else's
 * file), or -errno.
 */
int upload_doubt_find_create(struct upload_queue *q, const char *rec, struct drive_item *remote,
			     char **err)
{
	const char *nl1 = rec ? strchr(rec, '\n') : NULL, *nl2 = nl1 ? strchr(nl1 + 1, '\n') : NULL;
	char *parent = NULL, *hash = NULL;
	int rc;

	memset(remote, 0, sizeof(*remote));
	if (!nl2)
		return 0;
	hash = strndup(rec, (size_t)(nl1 - rec));
	parent = strndup(nl1 + 1, (size_t)(nl2 - nl1 - 1));
	rc = hash && parent ? 0 : -ENOMEM;
	if (rc == 0)
		rc = graph_get_child(q->graph, parent, nl2 + 1, remote, err);
	if (rc == 0 && !remote->is_dir && remote->qxhash && strcmp(remote->qxhash, hash) == 0)
		rc = 1;
	else if (rc == 0 || rc == -ENOENT)
		rc = 0;
	if (rc != 1)
		drive_item_release(remote);
	free(parent);
	free(hash);
	return rc;
}

int upload_drop_lost_create(struct upload_queue *q, const char *rec)
{
	struct drive_item remote;
	char *err = NULL;
	int rc;

	rc = upload_doubt_find_create(q, rec, &remote, &err);
	if (rc == 1) {
		log_debug("deleting '%s', made by a create whose answer was lost, deleted here since",
			  remote.name);
		rc = graph_delete_item_if(q->graph, remote.id,
					  remote.ctag ? remote.ctag : remote.etag, NULL);
		/* a delta round may have listed it meanwhile (no row here named it) */
		if ((rc == 0 || rc == -ENOENT) && q->cache)
			cache_forget_deleted(q->cache, remote.id);
		/* gone, or changed by someone else meanwhile: theirs now */
		rc = rc == 0 ? 1 : rc == -ENOENT || rc == -ESTALE ? 0 : rc;
		drive_item_release(&remote);
	}
	free(err);
	return rc;
}

/* ---- a create in doubt whose name a rename wants (upload.h) ---- */

int upload_drop_create_in_doubt(struct upload_queue *q, uint64_t ino)
{
	struct job *j;
	char *lost = NULL;
	int deleted;

	if (!q)
		return 0;
	pthread_mutex_lock(&q->lock);
	j = upload_find_job(q, ino);
	/* a running upload settles its doubt itself (the caller waits for it) */
	if (j && j->state != JOB_RUNNING && j->lost_create) {
		lost = j->lost_create;
		j->lost_create = NULL;
	}
	pthread_mutex_unlock(&q->lock);
	if (!lost)
		return 0;
	upload_db_run(q, "UPDATE upload_jobs SET lost_create = NULL WHERE ino = ?", "i",
		      (int64_t)ino);
	deleted = upload_drop_lost_create(q, lost);
	if (deleted < 0) {
		/* the service could not tell: the job's next run looks again */
		pthread_mutex_lock(&q->lock);
		j = upload_find_job(q, ino);
		if (j && !j->lost_create) {
			j->lost_create = lost;
			lost = NULL;
			upload_db_run(q, "UPDATE upload_jobs SET lost_create = ? WHERE ino = ?", "ti",
				      j->lost_create, (int64_t)ino);
		}
		pthread_mutex_unlock(&q->lock);
	}
	free(lost);
	return deleted > 0;
}

/* 1 if rec ("hash\nparent_id\nname") is a create into parent_id named name (any case). */
static int create_went_to(const char *rec, const char *parent_id, const char *name)
{
	const char *nl1 = strchr(rec, '\n'), *nl2 = nl1 ? strchr(nl1 + 1, '\n') : NULL;
	size_t n = strlen(parent_id);

	return nl2 && (size_t)(nl2 - nl1 - 1) == n && strncmp(nl1 + 1, parent_id, n) == 0 &&
	       names_equal_fold(nl2 + 1, name);
}

int upload_drop_create_in_doubt_at(struct upload_queue *q, const char *parent_id, const char *name)
{
	struct cache_entry e;
	struct job *j;
	uint64_t ino = 0;
	int gone = 0, rc;

	if (!q || !parent_id || !name)
		return 0;
	pthread_mutex_lock(&q->lock);
	for (j = q->head; j; j = j->next) {
		if (j->state != JOB_RUNNING && j->lost_create &&
		    create_went_to(j->lost_create, parent_id, name)) {
			ino = j->ino;
			gone = j->forgotten;
			break;
		}
	}
	pthread_mutex_unlock(&q->lock);
	if (!ino)
		return 0;
	/* only a file gone here (after a kill, its job is loaded unforgotten) */
	if (!gone) {
		rc = cache_get(q->cache, ino, &e);
		if (rc == 0)
			cache_entry_release(&e);
		gone = rc == -ENOENT;
	}
	return gone ? upload_drop_create_in_doubt(q, ino) : 0;
}
