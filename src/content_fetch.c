/*
 * content_fetch.c - moving bytes from the service into the sparse data
 * files: demand fetches for reads and stages, and the prefetch streams
 * (see the DESIGN in content.c).
 *
 * A fetch writes only into bytes that are still missing and below the
 * item's fetch_limit, deciding and writing under the item's io mutex: a
 * local write or truncate that happened while the download was in flight
 * is never overwritten by the older remote bytes.
 *
 * A stream receives and writes on two threads: copying from the socket and
 * writing the page cache cost about the same, and one thread doing both in
 * turn is what a cold sequential read on a fast link waits for.  Its
 * network thread fills pieces of STREAM_RECORD bytes and queues them; a
 * writer thread of its own writes and records them in order (struct
 * fetch_writer).
 */
#define _GNU_SOURCE     /* asprintf, GNU strerror_r */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "config.h"
#include "content_internal.h"
#include "graph.h"
#include "log.h"

#define STREAM_AFTER    (256 * 1024)       /* sequential bytes before a stream starts */
#define STREAM_REPLACE  (4 * 1024 * 1024)  /* a sequential run elsewhere this long takes over */
#define STREAM_SKIP_MAX (1024 * 1024)      /* present bytes a stream drops rather than stop */
#define STREAM_IDLE     10                 /* seconds a stream waits for the reader */
#define STREAM_REACH    (2 * 1024 * 1024)  /* readers this close ahead wait for the stream */
#define STREAM_RECORD   (256 * 1024)       /* a stream records (and wakes readers) this often */
#define FETCH_RESUMES   3                  /* restarts of a download that dropped midway */
#define URL_MAX_AGE     300                /* seconds a download URL is trusted */
#define ERROR_LOG_EVERY 10                 /* seconds between failure messages per item */
#define FAIL_HOLD       2                  /* seconds reads fail at once after a failure */
#define FETCH_PIECES    4                  /* a stream's pieces between network and writer */
#define FETCH_RESERVE   (4 * 1024 * 1024)  /* data file blocks allocated ahead of the writes */

/* ---- waiting ---------------------------------------------------------- */

/* Wait for cc->changed; until is NULL or an absolute CLOCK_REALTIME time.  Lock held. */
void content_changed_wait(struct content_cache *cc, const struct timespec *until)
{
	cc->waiters++;
	if (until)
		pthread_cond_timedwait(&cc->changed, &cc->lock, until);
	else
		pthread_cond_wait(&cc->changed, &cc->lock);
	cc->waiters--;
}

/* Wake the waiters of cc->changed, if any (most records have none).  Lock held. */
void content_changed_wake(struct content_cache *cc)
{
	if (cc->waiters)
		pthread_cond_broadcast(&cc->changed);
}

/* ---- fetching ---------------------------------------------------------- */

/*
 * One ranged GET in progress.  A demand fetch owns its whole range (marked
 * busy before it starts).  A stream asks for everything up to EOF but
 * claims (marks busy) only what lies within a window of the reader, as it
 * goes: it waits when it is a window ahead, skips short runs of bytes that
 * are already present, and stops when it runs into bytes someone else is
 * fetching for longer than it cares to wait, when nobody reads on, or when
 * the last handle closes.
 */
struct fetch {
	struct content_cache *cc;
	struct content_item *it;
	int64_t pos, end;             /* next byte to arrive; end of the range asked */
	int64_t taken;                /* bytes in [taken, pos) wait in buf; below: written or queued */
	/*
	 * While a writer thread runs, it alone changes the fields below up to
	 * no_reserve (written and recorded under cc->lock); otherwise the
	 * fetch's own thread does.
	 */
	int64_t written;              /* bytes before this are in the data file */
	int64_t recorded;             /* bytes in [recorded, written) are written, not yet in have */
	int64_t reserved;             /* the data file's blocks are allocated up to here */
	int no_reserve;               /* the file system cannot allocate ahead */
	char *buf;                    /* NULL: every piece is written as it comes */
	size_t buf_size;
	int64_t claim_end;            /* stream: bytes before this are ours (busy) */
	int64_t skip_end;             /* stream: bytes before this are present: drop them */
	int stream;
	struct fetch_writer *w;       /* stream: its writer thread, or NULL: written here */
};

/*
 * A stream's writer: a ring of FETCH_PIECES buffers.  The network thread
 * fills the one after the queued pieces and waits when every buffer is
 * queued; the writer writes the oldest, records it (waking the readers)
 * and frees its buffer.  After a failed write, or once the stream is no
 * longer wanted, the writer drops what is queued: pieces are written in
 * order or not at all, so written never passes a hole.
 */
struct fetch_writer {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;          /* lock: a piece queued or done, or stop */
	char *bufs[FETCH_PIECES];
	int64_t off[FETCH_PIECES];    /* lock: where each queued piece goes */
	size_t len[FETCH_PIECES];     /* lock */
	int64_t limit[FETCH_PIECES];  /* lock: its fetch writes nothing past this (reserve) */
	unsigned head;                /* lock: the oldest queued piece */
	unsigned queued;              /* lock: pieces queued, being written included */
	int error;                    /* lock: first write failure, or -ECANCELED */
	int stop;                     /* lock: no more pieces will come */
};

/*
 * Record [recorded, written) as present (up to fetch_limit: beyond it a
 * truncate made the bytes local) and no longer busy, and wake whoever
 * waits for it.  Lock held.
 */
static void fetch_record(struct fetch *f)
{
	struct content_item *it = f->it;
	int64_t end = f->written < it->fetch_limit ? f->written : it->fetch_limit;

	if (f->written <= f->recorded)
		return;
	if (content_item_add_present(f->cc, it, f->recorded, end) == 0) {
		it->unsaved = 1;
		if (extent_set_remove(&it->busy, f->recorded, f->written))
			extent_set_clear(&it->busy);    /* ENOMEM: waiters recheck */
		f->recorded = f->written;
		content_changed_wake(f->cc);
	}
}

/*
 * Stream: make pos claimable.  Waits (at most STREAM_IDLE seconds without
 * the reader moving) while pos is a window ahead of the reader or being
 * fetched by someone else.  0 when f->claim_end > pos, -ECANCELED when the
 * stream should stop.  Takes the lock.
 */
static int stream_claim(struct fetch *f)
{
	struct content_cache *cc = f->cc;
	struct content_item *it = f->it;
	int64_t seen = -1;
	time_t idle_since = time(NULL);
	int rc = -ECANCELED;

	pthread_mutex_lock(&cc->lock);
	fetch_record(f);
	while (!it->cancel && !cc->stopping && !it->stream_stop) {
		int64_t limit = it->seq_end + it->ahead, run_end;
		struct extent gap;
		struct timespec until;

		if (limit < it->want_end)
			limit = it->want_end;
		if (limit > f->end)
			limit = f->end;
		if (it->seq_end != seen) {
			seen = it->seq_end;
			idle_since = time(NULL);
		}
		run_end = extent_set_skip(&it->have, f->pos);
		if (run_end > f->pos) {
			/* Present already: cheaper to drop a little than to ask again. */
			if (run_end - f->pos > STREAM_SKIP_MAX)
				break;
			f->skip_end = f->claim_end = it->stream_claim = run_end;
			rc = 0;
			break;
		}
		if (f->pos < limit && !extent_set_covers(&it->busy, f->pos, f->pos + 1) &&
		    extent_set_first_gap(&it->have, &it->busy, f->pos, limit, &gap)) {
			if (extent_set_add(&it->busy, gap.start, gap.end))
				break;
			f->claim_end = it->stream_claim = gap.end;
			rc = 0;
			break;
		}
		/* A window ahead, or someone else is fetching pos: wait for either to move. */
		if (time(NULL) - idle_since >= STREAM_IDLE)
			break;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		content_changed_wait(cc, &until);
	}
	pthread_mutex_unlock(&cc->lock);
	return rc;
}

static int pwrite_all(int fd, const char *data, size_t len, int64_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, data, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/*
 * Allocate the data file's blocks from where the writes got to, a few MiB
 * at a time and never past limit, what the fetch is about to write (its
 * range, or a stream's claim): ext4 and the like charge much less per page
 * for filling allocated blocks than for allocating each block as it is
 * written (about half of a stream's pwrite time).  Only a hint: a file
 * system that cannot, or a full disk, shows at the write.  It fills holes
 * and never changes a byte, so it needs no care for local writes.
 */
static void fetch_reserve(struct fetch *f, int64_t off, int64_t end, int64_t limit)
{
	int64_t from = off > f->reserved ? off : f->reserved, to;

	if (f->no_reserve || end <= f->reserved)
		return;
	to = from + FETCH_RESERVE < limit ? from + FETCH_RESERVE : limit;
	if (to < end)
		to = end;
	if (fallocate(f->it->fd, FALLOC_FL_KEEP_SIZE, from, to - from) != 0) {
		f->no_reserve = 1;
		return;
	}
	f->reserved = to;
}

/*
 * Write fetched bytes [off, off + len) into the data file, but only where
 * they are still missing and below fetch_limit: whatever a write or
 * truncate put there meanwhile is newer.  An item nobody writes (no
 * writer, no local change: both only change under io) takes the short
 * way.  fetch_end: where the fetch's writes end (for fetch_reserve).
 */
static int fetch_write(struct fetch *f, int64_t off, const char *data, size_t len,
		       int64_t fetch_end)
{
	struct content_cache *cc = f->cc;
	struct content_item *it = f->it;
	int64_t pos = off, end = off + (int64_t)len;
	int rc = 0;

	pthread_mutex_lock(&it->io);
	if (!it->writers && !it->local) {
		fetch_reserve(f, off, end, fetch_end);
		rc = pwrite_all(it->fd, data, len, pos);
		goto out_unlock_io;
	}
	pthread_mutex_lock(&cc->lock);
	while (rc == 0) {
		int64_t limit = end < it->fetch_limit ? end : it->fetch_limit;
		struct extent gap;

		if (!extent_set_first_gap(&it->have, NULL, pos, limit, &gap))
			break;
		/* have only grows while io is held: the gap stays a gap without the lock. */
		pthread_mutex_unlock(&cc->lock);
		rc = pwrite_all(it->fd, data + (gap.start - off), (size_t)(gap.end - gap.start),
				gap.start);
		pthread_mutex_lock(&cc->lock);
		pos = gap.end;
	}
	pthread_mutex_unlock(&cc->lock);
out_unlock_io:
	pthread_mutex_unlock(&it->io);
	return rc;
}

/* Where f's writes end: a stream's claim, a demand fetch's range. */
static int64_t fetch_limit_of(const struct fetch *f)
{
	return f->stream ? f->claim_end : f->end;
}

/* Write what waits in f->buf (no writer thread).  Lock not held. */
static int fetch_flush(struct fetch *f)
{
	int rc;

	if (f->pos == f->taken)
		return 0;
	rc = fetch_write(f, f->taken, f->buf, (size_t)(f->pos - f->taken), fetch_limit_of(f));
	if (rc == 0)
		f->written = f->taken = f->pos;
	return rc;
}

/* ---- the writer thread --------------------------------------------------- */

/* 1 when the stream f runs is no longer wanted.  Lock held. */
static int stream_unwanted(const struct fetch *f)
{
	return f->it->cancel || f->cc->stopping || f->it->stream_stop;
}

static void *fetch_writer_main(void *arg)
{
	struct fetch *f = arg;
	struct fetch_writer *w = f->w;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		unsigned i = w->head;
		int64_t off = w->off[i], limit = w->limit[i];
		size_t len = w->len[i];
		int rc = 0;

		if (!w->queued) {
			if (w->stop)
				break;
			pthread_cond_wait(&w->cond, &w->lock);
			continue;
		}
		if (!w->error) {
			pthread_mutex_unlock(&w->lock);
			rc = fetch_write(f, off, w->bufs[i], len, limit);
			pthread_mutex_lock(&f->cc->lock);
			if (rc == 0) {
				f->written = off + (int64_t)len;
				fetch_record(f);
				if (f->stream && stream_unwanted(f))
					rc = -ECANCELED;
			}
			pthread_mutex_unlock(&f->cc->lock);
			pthread_mutex_lock(&w->lock);
			if (rc && !w->error)
				w->error = rc;
		}
		w->head = (w->head + 1) % FETCH_PIECES;
		w->queued--;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void fetch_writer_free(struct fetch_writer *w)
{
	unsigned i;

	for (i = 0; i < FETCH_PIECES; i++)
		free(w->bufs[i]);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* Give f a writer thread and its buffers; without (no memory, no thread) f writes itself. */
static void fetch_writer_start(struct fetch *f)
{
	struct fetch_writer *w = calloc(1, sizeof(*w));
	unsigned i;

	if (!w)
		return;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	for (i = 0; i < FETCH_PIECES; i++) {
		w->bufs[i] = malloc(f->buf_size);
		if (!w->bufs[i])
			goto out_free_writer;
	}
	f->w = w;
	if (pthread_create(&w->thread, NULL, fetch_writer_main, f) != 0) {
		f->w = NULL;
		goto out_free_writer;
	}
	free(f->buf);
	f->buf = w->bufs[0];
	return;

out_free_writer:
	fetch_writer_free(w);
}

/*
 * Queue what waits in f->buf for the writer and make f->buf a free buffer,
 * waiting for one when every buffer is queued.  0, or the writer's failure
 * (-ECANCELED: the stream is no longer wanted).  Lock not held.
 */
static int fetch_queue(struct fetch *f)
{
	struct fetch_writer *w = f->w;
	int rc;

	pthread_mutex_lock(&w->lock);
	if (f->pos > f->taken && !w->error) {
		unsigned i = (w->head + w->queued) % FETCH_PIECES;

		w->off[i] = f->taken;
		w->len[i] = (size_t)(f->pos - f->taken);
		w->limit[i] = fetch_limit_of(f);
		w->queued++;
		pthread_cond_broadcast(&w->cond);
	}
	f->taken = f->pos;
	while (w->queued == FETCH_PIECES && !w->error)
		pthread_cond_wait(&w->cond, &w->lock);
	f->buf = w->bufs[(w->head + w->queued) % FETCH_PIECES];
	rc = w->error;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

/* Wait until the writer has written or dropped every queued piece; its failure or 0. */
static int fetch_drain(struct fetch *f)
{
	struct fetch_writer *w = f->w;
	int rc;

	pthread_mutex_lock(&w->lock);
	while (w->queued)
		pthread_cond_wait(&w->cond, &w->lock);
	rc = w->error;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

/* Queue what is left, let the writer finish and end it; its failure or 0. */
static int fetch_writer_finish(struct fetch *f)
{
	struct fetch_writer *w = f->w;
	int rc;

	fetch_queue(f);
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	rc = w->error;
	fetch_writer_free(w);
	f->w = NULL;
	f->buf = NULL;
	return rc;
}

/*
 * Take the next len bytes: into f->buf, written when it is full.  Page
 * cache writes cost per call more than per byte, so the data file gets
 * large pieces rather than each few kilobytes the network hands over.
 */
static int fetch_take(struct fetch *f, const char *data, size_t len)
{
	while (len > 0) {
		size_t held = (size_t)(f->pos - f->taken), n;
		int rc;

		if (!f->buf || (!f->w && held == 0 && len >= f->buf_size)) {
			rc = fetch_write(f, f->pos, data, len, fetch_limit_of(f));
			if (rc == 0) {
				f->pos += (int64_t)len;
				f->written = f->taken = f->pos;
			}
			return rc;
		}
		n = f->buf_size - held < len ? f->buf_size - held : len;
		memcpy(f->buf + held, data, n);
		f->pos += (int64_t)n;
		data += n;
		len -= n;
		if (held + n == f->buf_size) {
			rc = f->w ? fetch_queue(f) : fetch_flush(f);
			if (rc)
				return rc;
		}
	}
	return 0;
}

static int fetch_sink(void *ctx, const char *data, size_t len)
{
	struct fetch *f = ctx;
	int rc;

	if ((int64_t)len > f->end - f->pos)
		len = (size_t)(f->end - f->pos);    /* graph.c caps this already */
	while (len > 0) {
		size_t n = len;

		if (f->stream && f->pos >= f->claim_end) {
			/* f->buf is empty: a claim's end always flushes (below) */
			rc = stream_claim(f);
			if (rc)
				return rc;
		}
		if (f->stream && (int64_t)n > f->claim_end - f->pos)
			n = (size_t)(f->claim_end - f->pos);
		if (f->pos < f->skip_end) {
			/* the writer must be done before written moves on here */
			rc = f->w ? fetch_drain(f) : 0;
			if (rc)
				return rc;
			f->pos += (int64_t)n;
			f->taken = f->written = f->recorded = f->pos;
		} else {
			rc = fetch_take(f, data, n);
			if (rc)
				return rc;
		}
		data += n;
		len -= n;
		if (f->pos - (f->w ? f->taken : f->recorded) >=
		    (f->stream ? STREAM_RECORD : CONTENT_BLOCK) ||
		    f->pos == f->end || (f->stream && f->pos == f->claim_end)) {
			if (f->w) {
				/* the writer records it and says when the stream is not wanted */
				rc = fetch_queue(f);
				if (rc)
					return rc;
				continue;
			}
			rc = fetch_flush(f);
			if (rc)
				return rc;
			pthread_mutex_lock(&f->cc->lock);
			fetch_record(f);
			rc = f->stream && stream_unwanted(f) ? -ECANCELED : 0;
			pthread_mutex_unlock(&f->cc->lock);
			if (rc)
				return rc;
		}
	}
	return 0;
}

/* A download URL for it: the one in memory if fresh, else a new one.  Lock not held. */
static int fetch_url(struct content_cache *cc, struct content_item *it, int renew, char **url,
		     char **err)
{
	char *id;
	int rc;

	pthread_mutex_lock(&cc->lock);
	if (!renew && it->url && time(NULL) - it->url_at < URL_MAX_AGE) {
		*url = strdup(it->url);
		pthread_mutex_unlock(&cc->lock);
		return *url ? 0 : -ENOMEM;
	}
	id = strdup(it->id);    /* content_item_rename() may replace it->id */
	pthread_mutex_unlock(&cc->lock);
	if (!id)
		return -ENOMEM;
	/* a local id names bytes that exist only here: the service has none to give */
	if (cache_id_is_local(id)) {
		if (err && !*err)
			*err = strdup("its local copy is missing and it was never uploaded");
		free(id);
		return -EIO;
	}

	rc = graph_download_url(cc->g, id, url, err);
	free(id);
	if (rc)
		return rc;
	pthread_mutex_lock(&cc->lock);
	free(it->url);
	it->url = strdup(*url);
	it->url_at = time(NULL);
	pthread_mutex_unlock(&cc->lock);
	return 0;
}

/*
 * Run fetch f: download into it's data file, recording what arrives.
 * Called and returns with cc->lock held; drops it for the network.  What
 * f had claimed is no longer busy afterwards.  On failure *err may hold a
 * message (caller frees).
 */
static int fetch_run(struct fetch *f, char **err)
{
	struct content_cache *cc = f->cc;
	struct content_item *it = f->it;
	char *url = NULL;
	int rc, flushed, renewed = 0, resumed = 0;

	log_debug("%s of item '%s' from %" PRId64 " to %" PRId64, f->stream ? "stream" : "fetch",
		  it->id, f->pos, f->end);
	pthread_mutex_unlock(&cc->lock);
	f->buf_size = f->stream ? STREAM_RECORD : CONTENT_BLOCK;
	f->buf = malloc(f->buf_size);   /* without one, pieces are written as they come */
	if (f->stream && f->buf)
		fetch_writer_start(f);
	rc = fetch_url(cc, it, 0, &url, err);
	while (rc == 0) {
		int64_t start = f->pos;

		rc = graph_download(cc->g, url, f->pos, f->end - f->pos, fetch_sink, f, err);
		/* offline: the link died, a resume would only wait again */
		if ((rc == -ECONNRESET || rc == -ETIMEDOUT) && f->pos > start && f->pos < f->end &&
		    !graph_offline_since(cc->g) && resumed++ < FETCH_RESUMES) {
			/* Dropped after some bytes (http.c cannot replay a stream): go on from there. */
			free(*err);
			*err = NULL;
			rc = 0;
			continue;
		}
		if (rc != -ESTALE || renewed || f->pos != start)
			break;
		/* The URL expired (or was refused): one fresh one, once. */
		free(url);
		url = NULL;
		free(*err);
		*err = NULL;
		renewed = 1;
		rc = fetch_url(cc, it, 1, &url, err);
	}
	free(url);
	/* What arrived before a failure is good: keep it. */
	flushed = f->w ? fetch_writer_finish(f) : fetch_flush(f);
	if (flushed && (rc == 0 || rc == -ECANCELED))
		rc = flushed;
	free(f->buf);
	f->buf = NULL;
	pthread_mutex_lock(&cc->lock);

	fetch_record(f);
	if (extent_set_remove(&it->busy, f->written, f->stream ? f->claim_end : f->end))
		extent_set_clear(&it->busy);
	content_changed_wake(cc);
	if (rc == 0 && f->pos < f->end) {
		rc = -EIO;
		if (!*err && asprintf(err, "the server sent %" PRId64 " bytes less than asked",
				      f->end - f->pos) < 0)
			*err = NULL;
	}
	if (it->unsaved && !it->detached) {
		content_index_save(cc, it, 0);
		content_index_evict(cc);
	}
	return rc;
}

/* ---- streams: the prefetch pool ------------------------------------------ */

/*
 * Steer the stream after a read of [off, end) by f (its fetch ending at
 * fetch_end).  Any handle's read near the stream moves it on (handles
 * share the kernel's page cache, so one reader's requests may skip what
 * another's brought in); a long sequential run elsewhere replaces it; a
 * sequential run with no stream and less than a window present beyond
 * starts one.  When a worker is free to take it at once, the new stream
 * starts at off and the read waits for it: one request, one round trip,
 * instead of the read's own fetch beside the stream.  Items with local
 * changes do not stream: their reads fetch on demand.  Lock held.
 */
void content_stream_note(struct content_cache *cc, struct content_file *f, int64_t off,
			 int64_t fetch_end, int sequential)
{
	struct content_item *it = f->it;
	int64_t reach = f->window > STREAM_REACH ? f->window : STREAM_REACH;
	struct content_stream_job *job;
	struct extent gap;
	int queued = 0, prompt;

	if (it->streaming) {
		if (it->stream_stop)
			return;
		if (it->local || it->writers) {
			it->stream_stop = 1;
			content_changed_wake(cc);
		} else if (off + CONTENT_SEQ_SLACK >= it->stream_start &&
			   off <= it->stream_claim + reach) {
			if (fetch_end > it->seq_end || (sequential && f->window > it->ahead)) {
				if (fetch_end > it->seq_end)
					it->seq_end = fetch_end;
				if (sequential && f->window > it->ahead)
					it->ahead = f->window;
				content_changed_wake(cc);       /* the stream may go on */
			}
		} else if (sequential && f->run > STREAM_REPLACE) {
			/* A long run elsewhere needs it more (one big random read does not). */
			it->stream_stop = 1;
			content_changed_wake(cc);
		}
		return;
	}
	if (!sequential || f->run < STREAM_AFTER || !cc->nworkers || cc->stopping ||
	    it->local || it->writers)
		return;
	for (job = cc->queue; job; job = job->next)
		queued++;
	prompt = cc->idle_workers > queued;
	if (!extent_set_first_gap(&it->have, NULL, prompt ? off : fetch_end, it->size, &gap) ||
	    gap.start - fetch_end >= f->window)
		return;
	job = calloc(1, sizeof(*job));
	if (!job)
		return;
	job->it = it;
	job->start = gap.start;
	it->streaming = 1;
	it->stream_prompt = prompt;
	it->stream_stop = 0;
	it->stream_start = it->stream_claim = gap.start;
	it->seq_end = fetch_end;
	it->ahead = f->window;
	it->want_end = 0;
	it->refs++;
	*cc->queue_tail = job;
	cc->queue_tail = &job->next;
	pthread_cond_signal(&cc->work);
}

/* Remove the queued jobs of it (of every item when it is NULL).  Lock held. */
void content_stream_cancel(struct content_cache *cc, struct content_item *it)
{
	struct content_stream_job **pp = &cc->queue;

	while (*pp) {
		struct content_stream_job *job = *pp;

		if (it && job->it != it) {
			pp = &job->next;
			continue;
		}
		*pp = job->next;
		job->it->streaming = 0;
		job->it->stream_prompt = 0;
		content_changed_wake(cc);       /* a reader waiting for it fetches itself */
		content_item_unref(cc, job->it);
		free(job);
	}
	cc->queue_tail = pp;
}

static void *stream_worker(void *arg)
{
	struct content_cache *cc = arg;

	pthread_mutex_lock(&cc->lock);
	while (!cc->stopping) {
		struct content_stream_job *job = cc->queue;
		struct content_item *it;
		char *err = NULL;
		int rc;

		if (!job) {
			cc->idle_workers++;
			pthread_cond_wait(&cc->work, &cc->lock);
			cc->idle_workers--;
			continue;
		}
		cc->queue = job->next;
		if (!cc->queue)
			cc->queue_tail = &cc->queue;
		it = job->it;
		it->stream_prompt = 0;
		if (!it->cancel && !it->stream_stop) {
			struct fetch f = {
				.cc = cc, .it = it, .pos = job->start, .end = it->fetch_limit,
				.taken = job->start, .written = job->start, .recorded = job->start,
				.claim_end = job->start, .stream = 1,
			};

			it->stream_running = 1;
			it->stream_claim = job->start;
			rc = f.pos < f.end ? fetch_run(&f, &err) : 0;
			it->stream_running = 0;
			content_changed_wake(cc);   /* readers waiting on it fetch now */
			/* Streams stop on purpose; a read that needs the bytes will say. */
			log_debug("stream of item '%s' from %" PRId64 " stopped at %" PRId64 ": %s",
				  it->id, job->start, f.pos,
				  rc == 0 ? "end of file" : rc == -ECANCELED ? "not needed"
				  : err ? err : "error");
			free(err);
		}
		it->streaming = 0;
		content_changed_wake(cc);
		content_item_unref(cc, it);
		free(job);
	}
	pthread_mutex_unlock(&cc->lock);
	return NULL;
}

/*
 * Start the pool at the first open rather than in content_open(): the
 * daemon may fork between the two, and threads do not survive fork.
 * Lock held.
 */
void content_stream_start_workers(struct content_cache *cc)
{
	if (cc->workers_tried)
		return;
	cc->workers_tried = 1;
	while (cc->nworkers < CONTENT_WORKERS &&
	       pthread_create(&cc->workers[cc->nworkers], NULL, stream_worker, cc) == 0)
		cc->nworkers++;
	if (!cc->nworkers)
		log_warnx("cannot start the prefetch threads; reads will not prefetch");
}

/* ---- demand fetches --------------------------------------------------- */

/* 1 when a read of it failed less than FAIL_HOLD seconds ago.  Lock held. */
static int failed_recently(struct content_cache *cc, const struct content_item *it)
{
	uint32_t h = content_id_hash(it->id);
	const struct content_failure *fl = &cc->failures[h % CONTENT_FAIL_SLOTS];

	if (fl->hash != h || time(NULL) - fl->at >= FAIL_HOLD)
		return 0;
	return !fl->offline || graph_offline_since(cc->g);
}

/* Remember a failed read; log it at most once every ERROR_LOG_EVERY seconds per item.  Lock held. */
static void note_failure(struct content_cache *cc, struct content_item *it, int rc,
			 const char *err)
{
	uint32_t h = content_id_hash(it->id);
	struct content_failure *fl = &cc->failures[h % CONTENT_FAIL_SLOTS];
	time_t now = time(NULL);
	char buf[128];

	if (fl->hash != h) {
		fl->hash = h;
		fl->logged_at = 0;
	}
	fl->at = now;
	fl->offline = graph_offline_since(cc->g) != 0;
	if (now - fl->logged_at < ERROR_LOG_EVERY)
		return;
	fl->logged_at = now;
	if (!err)
		err = strerror_r(-rc, buf, sizeof(buf));
	if (fl->offline)
		/* expected while offline: the "offline since" line said why */
		log_warnx("cannot read '%s' while offline: it is not in the cache",
			  it->name ? it->name : it->id);
	else
		log_error("cannot read '%s': %s", it->name ? it->name : it->id, err);
}

/*
 * 1 when the stream, running or about to, will reach pos soon enough that
 * waiting beats a request of our own.  Lock held.
 */
int content_stream_will_reach(const struct content_item *it, int64_t pos)
{
	int64_t reach = it->ahead > STREAM_REACH ? it->ahead : STREAM_REACH;

	return (it->stream_running || it->stream_prompt) && pos >= it->stream_claim &&
	       pos - it->stream_claim < reach;
}

int content_fetch_ensure(struct content_cache *cc, struct content_item *it, int64_t need_start,
			 int64_t need_end, int64_t fetch_start, int64_t fetch_end, char **err)
{
	struct extent gap;

	for (;;) {
		struct fetch f = { .cc = cc, .it = it };
		char *msg = NULL;
		int rc;

		/* A truncate may have cut the item meanwhile; beyond fetch_limit all is present. */
		if (need_end > it->size)
			need_end = it->size;
		if (fetch_end > it->fetch_limit)
			fetch_end = it->fetch_limit;
		if (extent_set_covers(&it->have, need_start, need_end))
			return 0;
		if (!extent_set_first_gap(&it->have, &it->busy, fetch_start, fetch_end, &gap)) {
			/* All that is missing is on its way: wait for it. */
			content_changed_wait(cc, NULL);
			continue;
		}
		if (content_stream_will_reach(it, gap.start)) {
			/* The running stream is about to get there: cheaper than a request. */
			if (fetch_end > it->want_end) {
				it->want_end = fetch_end;
				content_changed_wake(cc);
			}
			content_changed_wait(cc, NULL);
			continue;
		}
		if (!err && failed_recently(cc, it))
			return -EIO;    /* logged already */
		if (extent_set_add(&it->busy, gap.start, gap.end))
			return -ENOMEM;
		f.pos = f.taken = f.written = f.recorded = gap.start;
		f.end = gap.end;
		rc = fetch_run(&f, &msg);
		if (rc && !extent_set_covers(&it->have, need_start,
					     need_end < it->size ? need_end : it->size)) {
			if (err) {
				*err = msg;
				return rc == -ENOMEM || rc == -ENOSPC ? rc : -EIO;
			}
			note_failure(cc, it, rc, msg);
			free(msg);
			if (rc == -ENOMEM || rc == -ENOSPC)
				return rc;
			return -EIO;
		}
		free(msg);
	}
}
