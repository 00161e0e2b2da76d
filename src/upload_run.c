/*
 * upload_run.c - one upload of one file, for a worker of the queue (upload.c).
 *
 * Reads the file's current entry from the cache, stages its content, and
 * sends it: one PUT up to 4 MiB, else an upload session in chunks of
 * cfg->upload_chunk read straight from the staging file (a journalled
 * session is resumed where the service says it stopped; an expired one is
 * started over).  The quickXorHash is computed while the bytes stream and
 * compared with the service's.  Conflicts (the item changed on the service
 * since the edit started, or its name was taken) keep both versions: the
 * local bytes go up as "name (conflict YYYY-MM-DD HHMMSS).ext".
 */
#define _GNU_SOURCE   /* asprintf; pread with _FILE_OFFSET_BITS */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "config.h"
#include "content.h"
#include "errmap.h"
#include "graph.h"
#include "log.h"
#include "names.h"
#include "qxhash.h"
#include "upload_internal.h"

#define SIMPLE_MAX UPLOAD_SIMPLE_MAX
#define SESSION_MARGIN_S 60             /* a stored session this close to expiry is dropped */
#define SESSION_STALLS 6                /* chunk failures without progress per run */
#define HASH_MISMATCH_MAX 3             /* then accept the service's bytes (quirk 8) */
#define PATH_DEPTH_MAX 256

static int64_t wall_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

/* ---- names and paths ---- */

/* "Docs/a.txt" for messages (malloc'd; "?" parts when the cache lacks them). */
static char *path_of(struct upload_queue *q, uint64_t ino)
{
	char *parts[PATH_DEPTH_MAX], *out;
	struct cache_entry e;
	size_t n = 0, len = 1, i;

	while (ino != CACHE_ROOT_INO && n < PATH_DEPTH_MAX && cache_get(q->cache, ino, &e) == 0) {
		parts[n] = e.item.name ? strdup(e.item.name) : NULL;
		len += parts[n] ? strlen(parts[n]) + 1 : 2;
		n++;
		ino = e.parent_ino;
		cache_entry_release(&e);
		if (ino == 0)
			break;
	}
	out = malloc(len);
	if (out) {
		out[0] = '\0';
		for (i = n; i-- > 0;) {
			strcat(out, parts[i] ? parts[i] : "?");
			if (i)
				strcat(out, "/");
		}
	}
	for (i = 0; i < n; i++)
		free(parts[i]);
	return out;
}

/* ---- one upload ---- */

/* Where and how a run uploads; strings borrowed from the cache entries. */
struct run {
	struct upload_queue *q;
	struct job *job;
	struct cache_entry e;         /* the file, as the run started */
	struct cache_entry parent;
	char *path;                   /* for messages */
	char *err;                    /* graph's message of the last failure */
	struct content_stage st;
	int staged;
	int rewritten;                /* cut short: written here while it was read */
};

/* Remember the live session (NULL: none) in the job and in the journal, for resuming. */
static void remember_session(struct run *r, const struct graph_upload_session *s)
{
	struct job *j = r->job;   /* session fields: only the running worker touches them */

	free(j->session_url);
	j->session_url = s && s->upload_url ? strdup(s->upload_url) : NULL;
	j->session_size = j->session_url ? r->st.size : 0;
	j->session_expires = j->session_url ? (int64_t)s->expires.tv_sec : 0;
	upload_db_run(r->q, "UPDATE upload_jobs SET session_url = ?, session_size = ?, "
		      "session_expires = ? WHERE ino = ?", "tiii", j->session_url, j->session_size,
		      j->session_expires, (int64_t)j->ino);
}

/* The item after a completed session whose answer had no body (quirk 12). */
static int fetch_result(struct run *r, const struct graph_upload_target *t,
			struct drive_item *out)
{
	if (t->item_id)
		return graph_get_item(r->q->graph, t->item_id, out, &r->err);
	return graph_get_child(r->q->graph, t->parent_id, t->name, out, &r->err);
}

/*
 * Replace *s (if any) by a new session for t.  The old one is cancelled
 * first: a session the service still holds for the same name makes the
 * new one fail (409), and a "not found" may have been a passing one (quirk 13).
 */
static int new_session(struct run *r, const struct graph_upload_target *t, int64_t size,
		       struct graph_upload_session *s)
{
	int rc;

	if (s->upload_url)
		graph_upload_session_cancel(r->q->graph, s, NULL);
	graph_upload_session_release(s);
	rc = graph_upload_session_create(r->q->graph, t, size, s, &r->err);
	if (rc == 0)
		remember_session(r, s);
	return rc;
}

/* Upload through a session, resuming the journalled one when it is alive. */
static int upload_session(struct run *r, struct reader *rd, const struct graph_upload_target *t,
			  int resume, struct drive_item *out)
{
	struct upload_queue *q = r->q;
	struct graph_upload_session s;
	int64_t off, n, chunk = q->cfg->upload_chunk > 0 ? q->cfg->upload_chunk : 10485760;
	int rc = -ENOENT, done = 0, stalls = 0, restarts = 0;

	memset(&s, 0, sizeof(s));
	if (resume && r->job->session_url && r->job->session_size == rd->size &&
	    r->job->session_expires > wall_seconds() + SESSION_MARGIN_S) {
		s.upload_url = strdup(r->job->session_url);
		rc = s.upload_url ? graph_upload_session_status(q->graph, &s, &r->err) : -ENOMEM;
		if (rc == 0)
			log_debug("resuming the upload of '%s' at byte %" PRId64, r->path,
				  s.next_offset);
	}
	if (rc < 0) {
		rc = new_session(r, t, rd->size, &s);
		if (rc < 0)
			return rc;
	}
	off = s.next_offset;
	while (!done) {
		if (upload_reader_cancelled(rd)) {
			rc = -ECANCELED;
			break;
		}
		if (off < 0 || off >= rd->size) {
			/* the service has every byte but did not say done: ask again */
			rc = -ERANGE;
		} else {
			n = rd->size - off < chunk ? rd->size - off : chunk;
			rd->pos = off;
			rc = graph_upload_session_put(q->graph, &s, off, n, rd->size, upload_reader_source, rd,
						      &done, out, &r->err);
		}
		if (rc == 0) {
			stalls = 0;
			off = s.next_offset;
			continue;
		}
		if (rc == -ECANCELED || rd->changed)
			break;
		if (rc == -ENOENT && restarts++ == 0) {
			/* expired, or its credential did (quirk 14): a new session, once per run */
			log_debug("the upload session of '%s' expired: starting over", r->path);
			rc = new_session(r, t, rd->size, &s);
			if (rc < 0)
				break;
			off = s.next_offset;
			continue;
		}
		if (rc != -ERANGE && rc != -EAGAIN && rc != -ECONNRESET && rc != -ETIMEDOUT &&
		    rc != -EIO && rc != -ECONNREFUSED)
			break;
		if (++stalls > SESSION_STALLS)
			break;
		/* where does the service want us to go on? (quirk 15) */
		rc = graph_upload_session_status(q->graph, &s, &r->err);
		if (rc < 0 && rc != -ENOENT)
			break;
		if (rc == 0)
			off = s.next_offset;
		else
			off = -1;   /* gone: the next turn restarts it */
		if (rc == -ENOENT) {
			if (restarts > 1)
				break;
			restarts++;
			rc = new_session(r, t, rd->size, &s);
			if (rc < 0)
				break;
			off = s.next_offset;
		}
	}
	if (rc == -ECANCELED && __atomic_load_n(&r->job->forgotten, __ATOMIC_RELAXED))
		graph_upload_session_cancel(q->graph, &s, NULL);
	/* a failed run leaves the session remembered: the next run resumes it */
	if (rd->changed && !done)
		/* it holds bytes of the version before: resuming would mix the two */
		graph_upload_session_cancel(q->graph, &s, NULL);
	if (done || rc == -ENOENT || rc == -ESTALE || rc == -EEXIST || rd->changed)
		remember_session(r, NULL);
	if (rc == 0 && !out->id)
		rc = fetch_result(r, t, out);
	graph_upload_session_release(&s);
	return rc;
}

/* Upload the staged bytes to t, small or by session; out gets the item. */
static int upload_to(struct run *r, const struct graph_upload_target *t, int resume,
		     struct reader *rd, struct drive_item *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rd->pos = 0;
	rd->hashed = 0;
	rd->changed = 0;
	qxhash_init(&rd->h);
	if (rd->size <= SIMPLE_MAX)
		rc = graph_upload_small(r->q->graph, t, upload_reader_source, rd, rd->size, out, &r->err);
	else
		rc = upload_session(r, rd, t, resume, out);
	if (rc < 0 && rd->changed) {
		/* the next run sends the new bytes */
		free(r->err);
		r->err = strdup("it was written again while it uploaded");
		r->rewritten = 1;
		rc = -EAGAIN;
	}
	return rc;
}

/*
 * Give ino the id of the item its upload became, crash-safely: the journal
 * row remembers from_id, the cache commits the new id (and tags, via
 * cache_update_remote in the caller), and only then does the content move;
 * load_journal() finishes a move a crash interrupted.  Call move_content()
 * after the cache is committed.
 */
static void note_move(struct run *r, const char *from_id)
{
	upload_db_run(r->q, "UPDATE upload_jobs SET moving_from = ? WHERE ino = ?", "ti", from_id,
		      (int64_t)r->e.ino);
}

/* Test hook, off unless ODFS_TEST_KILL_AT names the point: die there as a crash would. */
static void test_kill_point(const char *where)
{
	const char *at = getenv("ODFS_TEST_KILL_AT");

	if (at && strcmp(at, where) == 0)
		raise(SIGKILL);
}

/*
 * Test hook, off unless ODFS_TEST_PAUSE_AT names the point and
 * ODFS_TEST_PAUSE_DIR a folder: create <dir>/<point>.paused, then wait
 * until the test creates <dir>/<point>.go (at most 30 s), so that the test
 * acts exactly while the daemon stands there.
 */
static void test_pause_point(const char *where)
{
	const char *at = getenv("ODFS_TEST_PAUSE_AT"), *dir = getenv("ODFS_TEST_PAUSE_DIR");
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	char paused[512], go[512];
	int fd, i;

	if (!at || !dir || strcmp(at, where) != 0)
		return;
	snprintf(paused, sizeof(paused), "%s/%s.paused", dir, where);
	snprintf(go, sizeof(go), "%s/%s.go", dir, where);
	fd = open(paused, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	for (i = 0; i < 3000 && access(go, F_OK) != 0; i++)
		nanosleep(&tick, NULL);
}

static void move_content(struct run *r, const char *from_id, const char *to_id)
{
	int rc;

	test_kill_point("content-move");
	rc = content_rename_id(r->q->content, from_id, to_id);
	if (rc < 0 && rc != -ENOENT)
		log_warnx("cannot move the local copy of '%s' to its new id: %s", r->path,
			  errmap_strerror(rc));
	upload_db_run(r->q, "UPDATE upload_jobs SET moving_from = NULL WHERE ino = ?", "i",
		      (int64_t)r->e.ino);
}

/*
 * The service's version of the file changed since the edit started (or the
 * name was taken by another device): upload the local bytes beside it under
 * a conflict name, make this inode that copy, and let the original name show
 * the remote version again.
 */
static int save_conflict(struct run *r, struct reader *rd, int created_elsewhere,
			 const struct drive_item *remote)
{
	struct upload_queue *q = r->q;
	struct graph_upload_target t;
	struct drive_item item;
	char *name, *old_id = r->e.item.id;
	int rc, clean;

	name = names_conflict(r->e.item.name);
	if (!name)
		return -ENOMEM;
	memset(&t, 0, sizeof(t));
	t.parent_id = r->parent.item.id;
	t.name = name;
	t.mtime = r->e.item.mtime.tv_sec > 0 ? &r->e.item.mtime : NULL;
	t.mtime_explicit = t.mtime && upload_times_explicit(r->q, r->e.ino, t.mtime);
	t.crtime = r->e.item.ctime_created.tv_sec > 0 ? &r->e.item.ctime_created : NULL;
	rc = upload_to(r, &t, 0, rd, &item);
	if (rc < 0)
		goto out_free_name;
	if (__atomic_load_n(&r->job->forgotten, __ATOMIC_RELAXED)) {
		graph_delete_item(q->graph, item.id, NULL);
		rc = -ECANCELED;
		goto out_release;
	}
	note_move(r, old_id);
	clean = content_stage_done(q->content, old_id, &r->st, NULL, item.ctag);
	cache_set_id(q->cache, r->e.ino, item.id);
	cache_move(q->cache, r->e.ino, r->e.parent_ino, name);
	cache_update_remote(q->cache, r->e.ino, &item, clean == 1);
	move_content(r, old_id, item.id);
	/* the original name shows the service's version again */
	if (cache_upsert(q->cache, remote, NULL) < 0)
		cache_set_listed_at(q->cache, r->e.parent_ino, 0);
	if (q->notify) {
		q->notify(q->notify_ctx, r->e.parent_ino, r->e.item.name);
		q->notify(q->notify_ctx, r->e.parent_ino, name);
	}
	log_warnx("'%s' was %s on another device; your version was saved as '%s'", r->path,
		  created_elsewhere ? "also created" : "changed", name);
out_release:
	drive_item_release(&item);
out_free_name:
	free(name);
	return rc;
}

static int forgotten(const struct run *r);

/*
 * A new file's name or folder changed while it uploaded: follow with a PATCH.
 * Not for a file forgotten meanwhile: a rename over another file took the
 * inode over (the other item's id and name) and deletes this item.
 */
static void follow_rename(struct run *r, const struct drive_item *item)
{
	struct upload_queue *q = r->q;
	struct cache_entry now, parent;
	struct drive_item moved;
	const char *new_parent = NULL, *new_name;
	char *err = NULL;
	int rc;

	if (cache_get(q->cache, r->e.ino, &now) < 0)
		return;
	if (forgotten(r)) {
		cache_entry_release(&now);
		return;
	}
	if (now.parent_ino != r->e.parent_ino &&
	    cache_get(q->cache, now.parent_ino, &parent) == 0) {
		new_parent = cache_id_is_local(parent.item.id) ? NULL : parent.item.id;
	} else {
		memset(&parent, 0, sizeof(parent));
	}
	if (new_parent || strcmp(now.item.name, item->name) != 0) {
		new_name = strcmp(now.item.name, item->name) ? now.item.name : NULL;
		rc = graph_update_item(q->graph, item->id, new_name, new_parent, NULL, NULL, NULL,
				       &moved, &err);
		if (rc == 0) {
			pthread_mutex_lock(&q->lock);
			if (!forgotten(r))
				cache_update_remote(q->cache, r->e.ino, &moved, 0);
			pthread_mutex_unlock(&q->lock);
			drive_item_release(&moved);
		} else if ((errmap_is_transport(rc) || rc == -ECANCELED) && q->move &&
			   q->move(q->move_ctx, item->id, new_parent, new_name, r->path) == 0) {
			/* no answer: it may have been applied; the journal sends it again */
			log_debug("rename of '%s' to '%s' journalled", r->path, now.item.name);
		} else {
			log_error("cannot rename '%s' to '%s' on the service: %s", r->path,
				  now.item.name, err ? err : "unknown error");
		}
	}
	free(err);
	cache_entry_release(&parent);
	cache_entry_release(&now);
}


static int forgotten(const struct run *r)
{
	return __atomic_load_n(&r->job->forgotten, __ATOMIC_RELAXED);
}

/*
 * A utimens that landed while the bytes travelled only changed the cache
 * (the upload was to carry the time, and carried the old one): if the
 * cache's time (now: the entry read before it took item) is not the one
 * item has, PATCH it.  1 when *item was replaced by the answer, else 0.
 * Best effort: on failure the service keeps its time.
 */
static int mtime_to_follow(struct run *r, const struct cache_entry *now,
			   const struct drive_item *item)
{
	/*
	 * Also a time set on purpose that item lacks: an item taken for ours
	 * (an earlier upload whose answer was lost) carries that upload's time.
	 */
	return now->item.mtime.tv_sec > 0 && now->item.mtime.tv_sec != item->mtime.tv_sec &&
	       (now->item.mtime.tv_sec != r->e.item.mtime.tv_sec ||
		upload_times_explicit(r->q, r->e.ino, &now->item.mtime));
}

static int follow_mtime(struct run *r, const struct cache_entry *now, struct drive_item *item)
{
	struct drive_item patched;
	const struct timespec *crtime;
	char *err = NULL;
	int replaced = 0, rc;

	if (mtime_to_follow(r, now, item)) {
		crtime = now->item.ctime_created.tv_sec > 0 ? &now->item.ctime_created : NULL;
		memset(&patched, 0, sizeof(patched));
		rc = graph_set_times(r->q->graph, item->id, &now->item.mtime, crtime, NULL, &patched,
				     &err);
		if (rc == 0) {
			drive_item_release(item);
			*item = patched;
			replaced = 1;
		} else if (rc != -ENOENT && r->q->times &&
			   r->q->times(r->q->times_ctx, item->id, &now->item.mtime, crtime,
				       r->path) == 0) {
			/* the cache keeps the time; the journal sends it when it can */
			log_debug("time of '%s' journalled: %s", r->path, err ? err : "unknown error");
		} else {
			log_warnx("cannot set the time of '%s': %s", r->path,
				  err ? err : "unknown error");
		}
		free(err);
	}
	return replaced;
}

/* A new version of t's item is about to go out: journal it (upload_doubt.c). */
static void note_update(struct run *r, struct reader *rd, const struct graph_upload_target *t)
{
	char hash[QXHASH_BASE64_LEN + 1];

	if (t->item_id && upload_reader_hash(rd, hash))
		upload_doubt_note_update(r->q, r->job, r->e.ino, t->item_id, hash);
}

/* The upload landed as item: tell the content and the cache. */
static int landed(struct run *r, struct reader *rd, struct drive_item *item, int was_new)
{
	struct upload_queue *q = r->q;
	struct cache_entry now;
	struct timespec served;
	int match, clean, moved, have_now, follow;

	/* deleted (or taken over) locally meanwhile: the cache is no longer ours to change */
	if (forgotten(r))
		return -ECANCELED;
	match = upload_reader_matches(rd, item->qxhash);
	if (match < 0)
		return match;
	if (!match && ++r->job->mismatches <= HASH_MISMATCH_MAX) {
		/* keep it dirty, take the ids and tags (our own), upload again later */
		log_warnx("'%s' arrived with another hash than it was sent with; uploading it again",
			  r->path);
		moved = strcmp(item->id, r->e.item.id) != 0;
		if (moved)
			note_move(r, r->e.item.id);
		if (was_new)
			cache_set_id(q->cache, r->e.ino, item->id);
		cache_update_remote(q->cache, r->e.ino, item, 0);
		if (moved)
			move_content(r, r->e.item.id, item->id);
		free(r->err);
		r->err = strdup("the service stored other bytes than were sent");
		return -EIO;
	}
	r->job->mismatches = 0;
	moved = strcmp(item->id, r->e.item.id) != 0;
	if (moved)
		note_move(r, r->e.item.id);
	test_pause_point("landed");
	have_now = cache_get(q->cache, r->e.ino, &now) == 0;   /* its time, for follow_mtime() */
	follow = have_now && mtime_to_follow(r, &now, item);   /* (takes q->lock) */
	/*
	 * Content and cache take the item under q->lock, where upload_forget()
	 * sets the flag: a rename that takes the inode over (the target's id
	 * and tags, its content moved there) either comes first and is seen, or
	 * comes after both; it never finds the content's tag new and the
	 * cache's old, nor is it overwritten with this item.  The content keeps
	 * the old id until the cache holds the new one (crash safety).
	 */
	pthread_mutex_lock(&q->lock);
	if (forgotten(r)) {
		pthread_mutex_unlock(&q->lock);
		if (have_now)
			cache_entry_release(&now);
		return -ECANCELED;
	}
	clean = content_stage_done(q->content, r->e.item.id, &r->st, NULL, item->ctag);
	if (was_new)
		cache_set_id(q->cache, r->e.ino, item->id);
	follow = follow && clean == 1;
	served = item->mtime;
	if (follow)
		item->mtime = now.item.mtime;   /* stat keeps the time set here meanwhile */
	cache_update_remote(q->cache, r->e.ino, item, clean == 1);
	item->mtime = served;
	if (moved)
		move_content(r, r->e.item.id, item->id);
	pthread_mutex_unlock(&q->lock);
	/* (written again: the next upload carries the time) */
	if (follow && follow_mtime(r, &now, item) == 1) {
		pthread_mutex_lock(&q->lock);
		if (!forgotten(r))
			cache_update_remote(q->cache, r->e.ino, item, 0);
		pthread_mutex_unlock(&q->lock);
	}
	if (have_now)
		cache_entry_release(&now);
	if (was_new)
		follow_rename(r, item);
	upload_doubt_clear_update(r->q, r->job);
	return 0;
}


/*
 * The item holds our own earlier version (upload_doubt_own_version): it is the base
 * of this one, so send the bytes again conditioned on its tags.
 */
static int replace_own_version(struct run *r, struct reader *rd, const struct graph_upload_target *t,
			       const struct drive_item *remote)
{
	struct graph_upload_target again = *t;
	struct drive_item item;
	int rc;

	log_debug("'%s': the service holds the version sent last, whose answer was lost", r->path);
	again.item_id = remote->id;
	again.if_match = remote->ctag ? remote->ctag : remote->etag;
	note_update(r, rd, &again);
	rc = upload_to(r, &again, 0, rd, &item);
	if (rc == -ESTALE)
		rc = -EAGAIN;   /* changed on the service meanwhile: the next run sees a conflict */
	if (rc == 0)
		rc = landed(r, rd, &item, 0);
	drive_item_release(&item);
	return rc;
}

/*
 * The service refused the upload as a conflict (-ESTALE, -EEXIST), or the
 * item's tags moved.  Unless it already holds exactly the local bytes, keep
 * both versions.  remote: the service's item when already fetched, or NULL.
 */
static int resolve_conflict(struct run *r, struct reader *rd, const struct graph_upload_target *t,
			    int created_elsewhere, const struct drive_item *remote)
{
	struct drive_item cur;
	int rc;

	memset(&cur, 0, sizeof(cur));
	if (!remote) {
		rc = t->item_id ? graph_get_item(r->q->graph, t->item_id, &cur, &r->err) :
		     graph_get_child(r->q->graph, t->parent_id, t->name, &cur, &r->err);
		if (rc < 0)
			return rc == -ENOENT ? -EAGAIN : rc;   /* gone meanwhile: try again */
		remote = &cur;
	}
	if (upload_reader_same_bytes(rd, remote)) {
		log_debug("'%s' is already on the service", r->path);
		rc = remote == &cur ? 0 : drive_item_copy(&cur, remote);
		if (rc == 0)
			rc = landed(r, rd, &cur, t->item_id == NULL);
	} else if (t->item_id && !created_elsewhere && upload_doubt_own_version(r->job, remote)) {
		rc = replace_own_version(r, rd, t, remote);
	} else {
		rc = save_conflict(r, rd, created_elsewhere, remote);
		rc = rc == 0 ? RUN_CONFLICT : rc;
	}
	drive_item_release(&cur);
	return rc;
}

/* A create is about to go out to t's folder and name: journal it (upload_doubt.c). */
static void note_create(struct run *r, struct reader *rd, const struct graph_upload_target *t)
{
	char hash[QXHASH_BASE64_LEN + 1];

	if (t->parent_id && t->name && upload_reader_hash(rd, hash))
		upload_doubt_note_create(r->q, r->job, r->e.ino, hash, t->parent_id, t->name);
}

/*
 * The item a failed create made after all (upload_doubt_find_create): moved to t's
 * folder and name, given the current bytes, into *item.  1 when *item is
 * set, 0 when there is no such item (create as usual), or -errno.
 */
static int lost_create_item(struct run *r, struct reader *rd, const struct graph_upload_target *t,
			    struct drive_item *item)
{
	struct graph_upload_target to;
	struct drive_item remote, moved;
	int rc;

	rc = upload_doubt_find_create(r->q, r->job->lost_create, &remote, &r->err);
	if (rc <= 0)
		return rc;
	log_debug("'%s' was created by an earlier upload whose answer was lost", r->path);
	if (!remote.parent_id || strcmp(remote.parent_id, t->parent_id) != 0 ||
	    strcmp(remote.name, t->name) != 0) {
		/* renamed or moved since: follow */
		const char *new_name = strcmp(remote.name, t->name) != 0 ? t->name : NULL;
		const char *new_parent = remote.parent_id &&
			strcmp(remote.parent_id, t->parent_id) == 0 ? NULL : t->parent_id;

		memset(&moved, 0, sizeof(moved));
		rc = graph_update_item(r->q->graph, remote.id, new_name, new_parent, NULL, NULL, NULL,
				       &moved, &r->err);
		if (rc == -EEXIST)
			rc = 0;   /* the name is taken: create as usual (it ends in a conflict) */
		if (rc <= 0 && !moved.id)
			goto out_release;
		drive_item_release(&remote);
		remote = moved;
	}
	if (upload_reader_same_bytes(rd, &remote)) {
		*item = remote;
		memset(&remote, 0, sizeof(remote));
		rc = 1;
		goto out_release;
	}
	memset(&to, 0, sizeof(to));
	to.item_id = remote.id;
	to.if_match = remote.ctag ? remote.ctag : remote.etag;
	to.mtime = t->mtime;
	to.mtime_explicit = t->mtime_explicit;
	to.crtime = t->crtime;
	note_update(r, rd, &to);
	rc = upload_to(r, &to, 0, rd, item);
	if (rc == -ESTALE)
		rc = -EAGAIN;   /* changed on the service meanwhile: the next run sees a conflict */
	rc = rc == 0 ? 1 : rc;
out_release:
	drive_item_release(&remote);
	return rc;
}

/* Did the service's item change since the cache entry's tags? */
static int tags_differ(const struct drive_item *base, const struct drive_item *remote)
{
	if (base->ctag && remote->ctag)
		return strcmp(base->ctag, remote->ctag) != 0;
	if (base->etag && remote->etag)
		return strcmp(base->etag, remote->etag) != 0;
	return 0;
}

static void run_release(struct run *r)
{
	if (r->staged)
		content_stage_close(&r->st);
	cache_entry_release(&r->parent);
	cache_entry_release(&r->e);
	free(r->err);
}

/*
 * Was the file deleted here while its new item was uploading (forgotten, or
 * its cache row gone)?  Then that item must not stay on the service.
 */
static int gone_meanwhile(struct run *r)
{
	struct cache_entry now;
	int rc;

	if (forgotten(r))
		return 1;
	rc = cache_get(r->q->cache, r->e.ino, &now);
	if (rc == 0)
		cache_entry_release(&now);
	return rc == -ENOENT;
}

/*
 * Was the file renamed or moved here since the run started?  A create
 * refused for its old name (taken meanwhile, say by a new file of that
 * name) is then no conflict of this file's.
 */
static int renamed_meanwhile(struct run *r)
{
	struct cache_entry now;
	int moved;

	if (cache_get(r->q->cache, r->e.ino, &now) < 0)
		return 0;
	moved = now.parent_ino != r->e.parent_ino || !now.item.name || !r->e.item.name ||
		strcmp(now.item.name, r->e.item.name) != 0;
	cache_entry_release(&now);
	return moved;
}

/*
 * A create in doubt, and the file has an item of its own since (it took
 * over another file's by a rename while the doubt waited, maybe across a
 * kill): what that create made, unless it is that very item, is no file's
 * here and must go.  0 when settled (the record is cleared), or -errno to
 * look again on a later run.
 */
static int settle_create_in_doubt(struct run *r)
{
	struct drive_item remote;
	int rc;

	rc = upload_doubt_find_create(r->q, r->job->lost_create, &remote, &r->err);
	if (rc == 1 && strcmp(remote.id, r->e.item.id) != 0)
		rc = upload_drop_lost_create(r->q, r->job->lost_create);
	drive_item_release(&remote);   /* (zeroed when there was none) */
	if (rc < 0)
		return rc;
	upload_doubt_clear_create(r->q, r->job, r->e.ino);
	return 0;
}

/* A session left with older bytes (drop_session in upload.c): end it, best effort. */
static void cancel_stale_session(struct run *r)
{
	struct graph_upload_session s;

	if (!r->job->stale_session)
		return;
	memset(&s, 0, sizeof(s));
	s.upload_url = r->job->stale_session;
	r->job->stale_session = NULL;
	graph_upload_session_cancel(r->q->graph, &s, NULL);
	graph_upload_session_release(&s);
}

/* Stage the file and pick its target; RUN_DROP when there is nothing to upload. */
static int run_prepare(struct run *r, int *was_new)
{
	struct upload_queue *q = r->q;
	int rc;

	if (forgotten(r))
		return RUN_DROP;   /* kept for a create in doubt only */
	rc = cache_get(q->cache, r->job->ino, &r->e);
	if (rc == -ENOENT)
		return RUN_DROP;   /* deleted before its upload started */
	if (rc < 0)
		return rc;
	if (r->e.item.is_dir)
		return RUN_DROP;   /* folders are created synchronously */
	*was_new = r->e.is_local || cache_id_is_local(r->e.item.id);
	if (!*was_new && !r->e.dirty && !content_is_dirty(q->content, r->e.item.id))
		return RUN_DROP;   /* nothing local left (a stale journal row) */
	r->path = path_of(q, r->e.ino);
	rc = cache_get(q->cache, r->e.parent_ino, &r->parent);
	if (rc < 0)
		return rc == -ENOENT ? RUN_DROP : rc;
	if (cache_id_is_local(r->parent.item.id)) {
		r->err = strdup("waiting for its folder to be created");
		return -EAGAIN;
	}
	rc = content_stage_open(q->content, &r->e.item, &r->st, &r->err);
	if (rc == -ENOENT && *was_new) {
		/* created and closed without a byte written: an empty file */
		memset(&r->st, 0, sizeof(r->st));
		r->st.fd = -1;
		return 0;
	}
	if (rc == -ENOENT)
		return RUN_DROP;
	if (rc < 0)
		return rc;
	r->staged = 1;
	return 0;
}

int upload_run_job(struct upload_queue *q, struct job *job, struct outcome *oc)
{
	struct run r = { .q = q, .job = job };
	struct graph_upload_target t;
	struct drive_item remote, item;
	struct reader rd;
	int rc, was_new = 0, new_target = 0;

	memset(&item, 0, sizeof(item));
	cancel_stale_session(&r);
	rc = run_prepare(&r, &was_new);
	if ((rc == 0 || rc == RUN_DROP) && !was_new && job->lost_create && r.e.item.id &&
	    !forgotten(&r)) {
		int settled = settle_create_in_doubt(&r);

		if (settled < 0)
			rc = settled;
	}
	if (rc != 0)
		goto out;
	memset(&rd, 0, sizeof(rd));
	rd.q = q;
	rd.job = job;
	rd.item_id = r.e.item.id;
	rd.st = r.staged ? &r.st : NULL;
	rd.fd = r.st.fd;
	rd.size = r.st.size;
	qxhash_init(&rd.h);

	memset(&t, 0, sizeof(t));
	t.mtime = r.e.item.mtime.tv_sec > 0 ? &r.e.item.mtime : NULL;
	t.mtime_explicit = t.mtime && upload_times_explicit(q, r.e.ino, t.mtime);
	t.crtime = r.e.item.ctime_created.tv_sec > 0 ? &r.e.item.ctime_created : NULL;
	new_target = was_new;
	if (!was_new) {
		t.item_id = r.e.item.id;
		t.if_match = r.e.item.ctag ? r.e.item.ctag : r.e.item.etag;
		if (rd.size > SIMPLE_MAX && !job->session_url) {
			/* no If-Match on createUploadSession (quirk 16): compare tags first */
			rc = graph_get_item(q->graph, t.item_id, &remote, &r.err);
			if (rc == 0 && tags_differ(&r.e.item, &remote)) {
				rc = resolve_conflict(&r, &rd, &t, 0, &remote);
				drive_item_release(&remote);
				goto out;
			}
			if (rc == 0)
				drive_item_release(&remote);
			if (rc < 0 && rc != -ENOENT)
				goto out;
		}
		if (rc == 0) {
			note_update(&r, &rd, &t);
			rc = upload_to(&r, &t, 1, &rd, &item);
		}
		if (rc == -ENOENT && gone_meanwhile(&r)) {
			/*
			 * deleted here too (an unlink, a rename over it): nothing to
			 * bring back, and a create under its old name would take
			 * whatever holds that name now for its own
			 */
			rc = -ECANCELED;
			goto out;
		} else if (rc == -ENOENT) {
			/* deleted on the service meanwhile: the local bytes come back as new */
			log_info("'%s' was deleted on another device; uploading your version again",
				 r.path);
			t.item_id = NULL;
			t.if_match = NULL;
			new_target = 1;
		} else if (rc == -ESTALE) {
			rc = resolve_conflict(&r, &rd, &t, 0, NULL);
			goto out;
		}
	}
	if (new_target) {
		t.parent_id = r.parent.item.id;
		t.name = r.e.item.name;
		drive_item_release(&item);
		rc = job->lost_create ? lost_create_item(&r, &rd, &t, &item) : 0;
		if (rc == 0) {
			note_create(&r, &rd, &t);
			rc = upload_to(&r, &t, was_new, &rd, &item);
		} else if (rc == 1) {
			rc = 0;
		}
		if (rc == -EEXIST && renamed_meanwhile(&r)) {
			/* the name refused is not the file's any more: create it under its own */
			free(r.err);
			r.err = strdup("it was renamed while it uploaded");
			r.rewritten = 1;
			rc = -EAGAIN;
			goto out;
		}
		if (rc == -EEXIST) {
			rc = resolve_conflict(&r, &rd, &t, 1, NULL);
			goto out;
		}
	}
	if (rc < 0)
		goto out;
	rc = landed(&r, &rd, &item, new_target);
	if (rc == 0 && new_target)
		upload_doubt_clear_create(q, job, r.e.ino);
	if ((rc == 0 || rc == -ECANCELED) && new_target && gone_meanwhile(&r)) {
		/* deleted locally while it uploaded: a new file must not stay behind */
		rc = graph_delete_item(q->graph, item.id, NULL);
		if ((rc == 0 || rc == -ENOENT) && q->cache)
			cache_forget_deleted(q->cache, item.id);   /* a round may have listed it */
		rc = -ECANCELED;
	}
out:
	if (job->lost_create && (forgotten(&r) || (rc == RUN_DROP && !r.e.item.id))) {
		/* deleted here while a create was in doubt: what it made must not stay */
		if (upload_drop_lost_create(q, job->lost_create) >= 0) {
			free(job->lost_create);
			job->lost_create = NULL;
			upload_db_run(q, "UPDATE upload_jobs SET lost_create = NULL WHERE ino = ?", "i",
				      (int64_t)job->ino);
		}
	}
	drive_item_release(&item);
	oc->rc = rc;
	oc->rewritten = rc < 0 && r.rewritten;
	oc->path = r.path;
	r.path = NULL;
	if (rc == -ENOSPC) {
		oc->message = strdup(UPLOAD_QUOTA_TEXT);
	} else if (rc == -EACCES && !graph_sign_in_expired(q->graph)) {
		/* 403 accessDenied: a read-only (shared) folder; retrying will not help */
		oc->permanent = 1;
		oc->message = strdup(UPLOAD_READ_ONLY_TEXT);
	} else if ((rc == -EINVAL || rc == -ENAMETOOLONG) && new_target && r.e.item.name) {
		/* 400 invalidRequest: a name the service refuses (names.c missed a rule) */
		oc->permanent = 1;
		if (asprintf(&oc->message, "the service refuses the name '%s'%s%s", r.e.item.name,
			     r.err ? ": " : "", r.err ? r.err : "") < 0)
			oc->message = NULL;
	} else if (rc < 0) {
		oc->message = r.err ? strdup(r.err) : strdup(errmap_strerror(rc));
	}
	run_release(&r);
	return rc;
}
