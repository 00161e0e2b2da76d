/*
 * content.c - the sparse on-disk content cache behind read().
 *
 * DESIGN
 * Every file that has been read has a sparse data file content/<sha1(id)>
 * as long as the item, and a row in content/content.db (its own SQLite
 * connection) holding the version tag (cTag, else eTag), the size, the
 * byte ranges present as text ("0-65536 131072-262144") and when it was
 * last used.  A row whose tag or size differs from the item being opened
 * is stale: its bytes are dropped and the range list starts empty.
 *
 * While a file is open its state lives in memory (struct content_item),
 * shared by every handle on it.  A read first makes sure its own bytes are
 * present: the missing parts not already being fetched by someone else are
 * marked busy, downloaded with one ranged GET each, written with pwrite and
 * recorded as they arrive (every 64 KiB), so a reader waiting on another
 * thread's download wakes as soon as its bytes are on disk, not when the
 * whole window is done.  Then pread answers.
 *
 * Readahead: the first read of a handle, and any read after a seek, fetches
 * what was asked rounded to 64 KiB blocks and nothing more (a thumbnailer
 * touching the heads of many files moves little more than it asked for;
 * the kernel's own small readahead covers short sequential runs).  While
 * reads stay sequential the window doubles from 128 KiB up to
 * cfg->readahead_max, and once STREAM_AFTER bytes were read in a row a
 * stream takes over: one GET from the first missing byte to the end of the
 * file, run by a small fixed pool of workers (a FIFO, the one mutex, a
 * condvar), written to the sparse file as it arrives and never more than a
 * window ahead of the reader (TCP holds the rest back).  A single request
 * pays the network latency once, which is what lets a cold sequential read
 * keep up with a plain download.  The stream stops when the last handle
 * closes, when nobody reads on for STREAM_IDLE seconds, or when it runs
 * into bytes that are already there.

 * Eviction: cc->total counts the bytes present in all files of the index;
 * beyond cfg->content_cache_max the least recently used files that are not
 * open are deleted until 90 % of the limit is left.
 *
 * One lock (cc->lock) guards everything below cc, including the SQLite
 * connection; it is never held across a network call.
 */
#define _GNU_SOURCE     /* asprintf, GNU strerror_r */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "config.h"
#include "content.h"
#include "graph.h"
#include "log.h"

#define BLOCK           (64 * 1024)        /* fetch granularity */
#define FIRST_WINDOW    (128 * 1024)       /* first sequential readahead window */
#define SEQ_SLACK       (512 * 1024)       /* reordered async reads still count as sequential */
#define STREAM_AFTER    (256 * 1024)       /* sequential bytes before a stream starts */
#define STREAM_REPLACE  (4 * 1024 * 1024)  /* a sequential run elsewhere this long takes over */
#define STREAM_SKIP_MAX (1024 * 1024)      /* present bytes a stream drops rather than stop */
#define STREAM_IDLE     10                 /* seconds a stream waits for the reader */
#define STREAM_REACH    (2 * 1024 * 1024)  /* readers this close ahead wait for the stream */
#define STREAM_WORKERS  4
#define STREAM_RECORD   (256 * 1024)       /* a stream records (and wakes readers) this often */
#define FETCH_RESUMES   3                  /* restarts of a download that dropped midway */
#define URL_MAX_AGE     300                /* seconds a download URL is trusted */
#define ERROR_LOG_EVERY 10                 /* seconds between failure messages per item */
#define URL_SLOTS       1024               /* download URLs remembered from listings */
#define FAIL_SLOTS      64                 /* recent read failures remembered */
#define FAIL_HOLD       2                  /* seconds reads fail at once after a failure */

/* One item's cached content while at least one handle or stream uses it. */
struct content_item {
	struct content_item *next;    /* cc->items, unless detached */
	char *id;
	char *tag;                    /* cTag, else eTag, else "" (never matches) */
	char key[2 * 20 + 1];         /* hex SHA-1 of id: the data file name */
	int fd;                       /* data file, O_RDWR */
	int64_t size;
	/* everything below: cc->lock */
	struct extent_set have;       /* bytes on disk */
	struct extent_set busy;       /* bytes some thread is fetching */
	char *url;                    /* pre-authenticated download URL or NULL */
	time_t url_at;
	unsigned opens;               /* open content_files */
	unsigned refs;                /* opens + a stream queued or running */
	int cancel;                   /* no handle left: the stream stops */
	int streaming;                /* a stream is queued or running */
	int stream_running;           /* ... and running: stream_claim is meaningful */
	int stream_stop;              /* the stream is no longer wanted */
	int64_t stream_start;         /* where it started */
	int64_t stream_claim;         /* where its claimed bytes end */
	int64_t seq_end;              /* where reads near the stream got to */
	int64_t ahead;                /* how far past seq_end the stream may go */
	int64_t want_end;             /* readers wait for the stream up to here */
	int detached;                 /* replaced or invalidated: no index, no total */
	int dirty;                    /* have changed since the index was written */
};

struct content_file {
	struct content_cache *cc;
	struct content_item *it;
	int64_t expect;               /* cc->lock: where a sequential read starts */
	int64_t window;               /* cc->lock: 0 until the first read */
	int64_t run;                  /* cc->lock: bytes read in a row since the last seek */
};

struct stream_job {
	struct stream_job *next;
	struct content_item *it;      /* holds a ref */
	int64_t start;
};

/* A download URL from a listing, for an item not open yet. */
struct url_hint {
	char *id;
	char *url;
	time_t at;
};

/*
 * A recent read failure.  The kernel retries a failed readahead at once
 * with a plain read: that retry should neither wait through the network
 * again nor log again.
 */
struct failure {
	uint32_t hash;                /* of the item id */
	time_t at, logged_at;
};

struct content_cache {
	const struct odfs_config *cfg;
	struct graph *g;
	char *dir;                    /* cache_dir/content */
	pthread_mutex_t lock;
	pthread_cond_t changed;       /* lock: bytes recorded, busy ranges finished, reader moved */
	unsigned waiters;             /* lock: threads waiting on changed */
	pthread_cond_t work;          /* lock: job queued or stopping */
	sqlite3 *db;                  /* lock */
	struct content_item *items;   /* lock: items in use, not detached */
	int64_t total;                /* lock: bytes present over the index */
	struct stream_job *queue;     /* lock: FIFO */
	struct stream_job **queue_tail;
	int stopping;                 /* lock */
	int db_warned;                /* lock: an index failure was logged */
	struct url_hint hints[URL_SLOTS]; /* lock: direct-mapped by hash of the id */
	struct failure failures[FAIL_SLOTS]; /* lock: direct-mapped by hash of the id */
	pthread_t workers[STREAM_WORKERS];
	int nworkers;                 /* lock; started at the first open, after any fork */
	int workers_tried;            /* lock */
};

/* ---- extent sets ---------------------------------------------------- */

void extent_set_release(struct extent_set *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

void extent_set_clear(struct extent_set *s)
{
	s->n = 0;
}

static int extent_set_reserve(struct extent_set *s, size_t n)
{
	struct extent *v;
	size_t cap;

	if (n <= s->cap)
		return 0;
	cap = s->cap ? s->cap * 2 : 8;
	while (cap < n)
		cap *= 2;
	v = realloc(s->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->v = v;
	s->cap = cap;
	return 0;
}

/* Index of the first range whose end is >= pos (touching counts). */
static size_t extent_set_find(const struct extent_set *s, int64_t pos)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid].end < pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int extent_set_add(struct extent_set *s, int64_t start, int64_t end)
{
	size_t i, j;

	if (start >= end)
		return 0;
	i = extent_set_find(s, start);
	/* Ranges i..j-1 touch or overlap [start, end): merge them into one. */
	j = i;
	while (j < s->n && s->v[j].start <= end)
		j++;
	if (i == j) {
		if (extent_set_reserve(s, s->n + 1))
			return -ENOMEM;
		memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(s->v[0]));
		s->v[i].start = start;
		s->v[i].end = end;
		s->n++;
		return 0;
	}
	if (s->v[i].start < start)
		start = s->v[i].start;
	if (s->v[j - 1].end > end)
		end = s->v[j - 1].end;
	s->v[i].start = start;
	s->v[i].end = end;
	memmove(&s->v[i + 1], &s->v[j], (s->n - j) * sizeof(s->v[0]));
	s->n -= j - i - 1;
	return 0;
}

int extent_set_remove(struct extent_set *s, int64_t start, int64_t end)
{
	size_t i;

	if (start >= end)
		return 0;
	i = extent_set_find(s, start + 1);
	while (i < s->n && s->v[i].start < end) {
		struct extent *e = &s->v[i];

		if (e->start < start && e->end > end) {
			/* Split in two. */
			if (extent_set_reserve(s, s->n + 1))
				return -ENOMEM;
			e = &s->v[i];
			memmove(&s->v[i + 1], e, (s->n - i) * sizeof(*e));
			s->n++;
			s->v[i].end = start;
			s->v[i + 1].start = end;
			return 0;
		}
		if (e->start < start) {
			e->end = start;
			i++;
		} else if (e->end > end) {
			e->start = end;
			return 0;
		} else {
			memmove(e, e + 1, (s->n - i - 1) * sizeof(*e));
			s->n--;
		}
	}
	return 0;
}

int extent_set_covers(const struct extent_set *s, int64_t start, int64_t end)
{
	size_t i;

	if (start >= end)
		return 1;
	i = extent_set_find(s, start + 1);
	return i < s->n && s->v[i].start <= start && s->v[i].end >= end;
}

/* Where the range of s holding pos ends, or pos if pos is not in s. */
static int64_t extent_set_skip(const struct extent_set *s, int64_t pos)
{
	size_t i;

	if (!s)
		return pos;
	i = extent_set_find(s, pos + 1);
	if (i < s->n && s->v[i].start <= pos)
		return s->v[i].end;
	return pos;
}

/* Where the next range of s at or after pos starts (INT64_MAX if none). */
static int64_t extent_set_next_start(const struct extent_set *s, int64_t pos)
{
	size_t i;

	if (!s)
		return INT64_MAX;
	i = extent_set_find(s, pos + 1);
	return i < s->n ? (s->v[i].start > pos ? s->v[i].start : pos) : INT64_MAX;
}

int extent_set_first_gap(const struct extent_set *a, const struct extent_set *b,
			 int64_t start, int64_t end, struct extent *gap)
{
	int64_t pos = start, stop;

	/* Skip over bytes covered by either set until neither covers pos. */
	for (;;) {
		int64_t next = extent_set_skip(b, extent_set_skip(a, pos));

		if (next == pos)
			break;
		pos = next;
	}
	if (pos >= end)
		return 0;
	stop = extent_set_next_start(a, pos);
	if (extent_set_next_start(b, pos) < stop)
		stop = extent_set_next_start(b, pos);
	gap->start = pos;
	gap->end = stop < end ? stop : end;
	return 1;
}

int64_t extent_set_bytes(const struct extent_set *s)
{
	int64_t sum = 0;
	size_t i;

	for (i = 0; i < s->n; i++)
		sum += s->v[i].end - s->v[i].start;
	return sum;
}

char *extent_set_format(const struct extent_set *s)
{
	/* Two int64 in decimal, '-', ' ': at most 42 bytes a range. */
	size_t cap = s->n * 42 + 1, len = 0, i;
	char *out = malloc(cap);

	if (!out)
		return NULL;
	out[0] = '\0';
	for (i = 0; i < s->n; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%" PRId64 "-%" PRId64,
					i ? " " : "", s->v[i].start, s->v[i].end);
	return out;
}

int extent_set_parse(struct extent_set *s, const char *text, int64_t limit)
{
	const char *p = text;

	extent_set_clear(s);
	while (*p) {
		long long a, b;
		char *endp;

		while (*p == ' ')
			p++;
		if (!*p)
			break;
		errno = 0;
		a = strtoll(p, &endp, 10);
		if (errno || endp == p || *endp != '-')
			goto out_invalid;
		p = endp + 1;
		b = strtoll(p, &endp, 10);
		if (errno || endp == p || (*endp != ' ' && *endp != '\0'))
			goto out_invalid;
		p = endp;
		if (a < 0 || b <= a || b > limit)
			goto out_invalid;
		if (extent_set_add(s, a, b))
			return -ENOMEM;
	}
	return 0;

out_invalid:
	extent_set_clear(s);
	return -EINVAL;
}

/* ---- the index (content.db) ------------------------------------------ */

static const char schema_sql[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS content ("
	" id TEXT PRIMARY KEY, tag TEXT NOT NULL, size INTEGER NOT NULL,"
	" ranges TEXT NOT NULL, bytes INTEGER NOT NULL, used_at INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS content_used ON content(used_at);";

static void db_log_once(struct content_cache *cc, const char *what)
{
	if (!cc->db_warned)
		log_warnx("cannot %s the content index '%s/content.db': %s", what, cc->dir,
			  sqlite3_errmsg(cc->db));
	cc->db_warned = 1;
}

/* Write it's row (tag, size, ranges, bytes, now).  Failures only cost a refetch later. */
static void db_save(struct content_cache *cc, struct content_item *it)
{
	sqlite3_stmt *st = NULL;
	char *ranges = extent_set_format(&it->have);

	if (!ranges)
		return;
	if (sqlite3_prepare_v2(cc->db, "INSERT OR REPLACE INTO content"
			       "(id, tag, size, ranges, bytes, used_at) VALUES (?,?,?,?,?,?)",
			       -1, &st, NULL) != SQLITE_OK)
		goto out_log;
	sqlite3_bind_text(st, 1, it->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, it->tag, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, it->size);
	sqlite3_bind_text(st, 4, ranges, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, extent_set_bytes(&it->have));
	sqlite3_bind_int64(st, 6, (sqlite3_int64)time(NULL));
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out_log;
	it->dirty = 0;
	goto out_finalize;

out_log:
	db_log_once(cc, "update");
out_finalize:
	sqlite3_finalize(st);
	free(ranges);
}

static void db_delete(struct content_cache *cc, const char *id)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(cc->db, "DELETE FROM content WHERE id = ?", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			db_log_once(cc, "update");
	}
	sqlite3_finalize(st);
}

/*
 * Read id's row: *tag and *ranges malloc'd.  -ENOENT without a row, -EIO
 * on SQLite trouble, -ENOMEM.
 */
static int db_load(struct content_cache *cc, const char *id, char **tag, int64_t *size,
		   char **ranges, int64_t *bytes)
{
	sqlite3_stmt *st = NULL;
	int rc = -EIO, step;

	if (sqlite3_prepare_v2(cc->db, "SELECT tag, size, ranges, bytes FROM content"
			       " WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	step = sqlite3_step(st);
	if (step == SQLITE_DONE) {
		rc = -ENOENT;
		goto out;
	}
	if (step != SQLITE_ROW)
		goto out;
	*tag = strdup((const char *)sqlite3_column_text(st, 0));
	*size = sqlite3_column_int64(st, 1);
	*ranges = strdup((const char *)sqlite3_column_text(st, 2));
	*bytes = sqlite3_column_int64(st, 3);
	if (!*tag || !*ranges) {
		free(*tag);
		free(*ranges);
		*tag = *ranges = NULL;
		rc = -ENOMEM;
		goto out;
	}
	rc = 0;
out:
	if (rc == -EIO)
		db_log_once(cc, "read");
	sqlite3_finalize(st);
	return rc;
}

/* ---- items ------------------------------------------------------------ */

static int key_of(const char *id, char key[41])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	if (!EVP_Digest(id, strlen(id), md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
		return -EIO;
	for (i = 0; i < mdlen; i++)
		snprintf(key + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static void path_of(const struct content_cache *cc, const char *key, char *path, size_t size)
{
	snprintf(path, size, "%s/%s", cc->dir, key);
}

static struct content_item *item_find(struct content_cache *cc, const char *id)
{
	struct content_item *it;

	for (it = cc->items; it; it = it->next)
		if (strcmp(it->id, id) == 0)
			return it;
	return NULL;
}

/* Take it out of the index: its bytes no longer count and its file goes. */
static void item_detach(struct content_cache *cc, struct content_item *it)
{
	struct content_item **pp;
	char path[4096];

	for (pp = &cc->items; *pp; pp = &(*pp)->next) {
		if (*pp == it) {
			*pp = it->next;
			break;
		}
	}
	it->next = NULL;
	it->detached = 1;
	cc->total -= extent_set_bytes(&it->have);
	path_of(cc, it->key, path, sizeof(path));
	unlink(path);   /* open handles keep reading the old bytes through it->fd */
	db_delete(cc, it->id);
}

static void item_free(struct content_item *it)
{
	if (it->fd >= 0)
		close(it->fd);
	extent_set_release(&it->have);
	extent_set_release(&it->busy);
	free(it->url);
	free(it->tag);
	free(it->id);
	free(it);
}

/* Drop a reference; the last one writes the index and frees. */
static void item_unref(struct content_cache *cc, struct content_item *it)
{
	struct content_item **pp;

	if (--it->refs)
		return;
	if (!it->detached) {
		if (it->dirty)
			db_save(cc, it);
		for (pp = &cc->items; *pp; pp = &(*pp)->next) {
			if (*pp == it) {
				*pp = it->next;
				break;
			}
		}
	}
	item_free(it);
}

/*
 * Build the in-memory state of item from its row and data file, starting
 * afresh when the row is missing or stale.  Called with cc->lock held.
 */
static int item_load(struct content_cache *cc, const struct drive_item *item, const char *tag,
		     struct content_item **out)
{
	struct content_item *it;
	char path[4096], *old_tag = NULL, *ranges = NULL;
	int64_t old_size = 0, old_bytes = 0;
	int keep = 0, rc;
	struct stat st;

	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->fd = -1;
	it->size = item->size > 0 ? item->size : 0;
	it->id = strdup(item->id);
	it->tag = strdup(tag);
	if (!it->id || !it->tag) {
		rc = -ENOMEM;
		goto out_free_item;
	}
	rc = key_of(it->id, it->key);
	if (rc)
		goto out_free_item;
	path_of(cc, it->key, path, sizeof(path));
	it->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (it->fd < 0) {
		rc = -errno;
		log_warn("cannot open the cache file '%s'", path);
		goto out_free_item;
	}

	rc = db_load(cc, it->id, &old_tag, &old_size, &ranges, &old_bytes);
	if (rc && rc != -ENOENT && rc != -EIO)
		goto out_free_item;
	if (rc == 0) {
		keep = *tag && strcmp(old_tag, tag) == 0 && old_size == it->size &&
		       fstat(it->fd, &st) == 0 && st.st_size == it->size &&
		       extent_set_parse(&it->have, ranges, it->size) == 0;
		if (!keep)
			cc->total -= old_bytes;
		else if (extent_set_bytes(&it->have) != old_bytes)
			cc->total += extent_set_bytes(&it->have) - old_bytes;
	}
	if (!keep) {
		/* Punch out whatever an older version left, then size it sparse. */
		extent_set_clear(&it->have);
		if (ftruncate(it->fd, 0) || ftruncate(it->fd, it->size)) {
			rc = -errno;
			log_warn("cannot size the cache file '%s'", path);
			goto out_free_item;
		}
	}
	db_save(cc, it);    /* stamps used_at, records the new tag */
	*out = it;
	rc = 0;
	goto out_free_row;

out_free_item:
	item_free(it);
out_free_row:
	free(old_tag);
	free(ranges);
	return rc;
}

/* ---- eviction --------------------------------------------------------- */

/* Delete least recently used files that are not in use until 90 % of the limit is left. */
static void evict(struct content_cache *cc)
{
	int64_t max = cc->cfg->content_cache_max, low = max - max / 10, freed = 0;
	sqlite3_stmt *st = NULL;
	char **ids = NULL;
	size_t n = 0, cap = 0, i;

	if (cc->total <= max)
		return;
	/* Collect first, delete after: no writes while the SELECT is stepping. */
	if (sqlite3_prepare_v2(cc->db, "SELECT id, bytes FROM content WHERE bytes > 0"
			       " ORDER BY used_at", -1, &st, NULL) != SQLITE_OK) {
		db_log_once(cc, "read");
		return;
	}
	while (cc->total - freed > low && sqlite3_step(st) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);

		if (item_find(cc, id))
			continue;
		if (n == cap) {
			char **more = realloc(ids, (cap ? cap * 2 : 16) * sizeof(*ids));

			if (!more)
				break;
			ids = more;
			cap = cap ? cap * 2 : 16;
		}
		ids[n] = strdup(id);
		if (!ids[n])
			break;
		n++;
		freed += sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);

	for (i = 0; i < n; i++) {
		char *tag = NULL, *ranges = NULL, key[41], path[4096];
		int64_t size, bytes;

		if (key_of(ids[i], key) == 0 &&
		    db_load(cc, ids[i], &tag, &size, &ranges, &bytes) == 0) {
			path_of(cc, key, path, sizeof(path));
			if (unlink(path) == 0 || errno == ENOENT) {
				cc->total -= bytes;
				db_delete(cc, ids[i]);
			}
		}
		free(tag);
		free(ranges);
		free(ids[i]);
	}
	free(ids);
}

/* ---- waiting ---------------------------------------------------------- */

/* Wait for cc->changed; until is NULL or an absolute CLOCK_REALTIME time.  Lock held. */
static void changed_wait(struct content_cache *cc, const struct timespec *until)
{
	cc->waiters++;
	if (until)
		pthread_cond_timedwait(&cc->changed, &cc->lock, until);
	else
		pthread_cond_wait(&cc->changed, &cc->lock);
	cc->waiters--;
}

/* Wake the waiters of cc->changed, if any (most records have none).  Lock held. */
static void changed_wake(struct content_cache *cc)
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
	int64_t recorded;             /* bytes in [recorded, pos) are written, not yet in have */
	int64_t claim_end;            /* stream: bytes before this are ours (busy) */
	int64_t skip_end;             /* stream: bytes before this are present: drop them */
	int stream;
};

/*
 * Record [recorded, pos) as present and no longer busy, and wake whoever
 * waits for it.  Lock held.
 */
static void fetch_record(struct fetch *f)
{
	struct content_item *it = f->it;
	int64_t before;

	if (f->pos <= f->recorded)
		return;
	before = extent_set_bytes(&it->have);
	if (extent_set_add(&it->have, f->recorded, f->pos) == 0) {
		if (!it->detached)
			f->cc->total += extent_set_bytes(&it->have) - before;
		it->dirty = 1;
		if (extent_set_remove(&it->busy, f->recorded, f->pos))
			extent_set_clear(&it->busy);    /* ENOMEM: waiters recheck */
		f->recorded = f->pos;
		changed_wake(f->cc);
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

		if (limit < it->want_end)
			limit = it->want_end;
		struct extent gap;
		struct timespec until;

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
		changed_wait(cc, &until);
	}
	pthread_mutex_unlock(&cc->lock);
	return rc;
}

static int fetch_write(struct fetch *f, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = pwrite(f->it->fd, data, len, f->pos);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += n;
		len -= (size_t)n;
		f->pos += n;
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
			rc = stream_claim(f);
			if (rc)
				return rc;
		}
		if (f->stream && (int64_t)n > f->claim_end - f->pos)
			n = (size_t)(f->claim_end - f->pos);
		if (f->pos < f->skip_end) {
			f->pos += (int64_t)n;
			f->recorded = f->pos;
		} else {
			rc = fetch_write(f, data, n);
			if (rc)
				return rc;
		}
		data += n;
		len -= n;
		if (f->pos - f->recorded >= (f->stream ? STREAM_RECORD : BLOCK) ||
		    f->pos == f->end || (f->stream && f->pos == f->claim_end)) {
			pthread_mutex_lock(&f->cc->lock);
			fetch_record(f);
			rc = f->stream && (f->it->cancel || f->cc->stopping ||
					   f->it->stream_stop) ? -ECANCELED : 0;
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
	int rc;

	pthread_mutex_lock(&cc->lock);
	if (!renew && it->url && time(NULL) - it->url_at < URL_MAX_AGE) {
		*url = strdup(it->url);
		pthread_mutex_unlock(&cc->lock);
		return *url ? 0 : -ENOMEM;
	}
	pthread_mutex_unlock(&cc->lock);

	rc = graph_download_url(cc->g, it->id, url, err);
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
	int rc, renewed = 0, resumed = 0;

	pthread_mutex_unlock(&cc->lock);
	log_debug("%s of item '%s' from %" PRId64 " to %" PRId64, f->stream ? "stream" : "fetch",
		  it->id, f->pos, f->end);
	rc = fetch_url(cc, it, 0, &url, err);
	while (rc == 0) {
		int64_t start = f->pos;

		rc = graph_download(cc->g, url, f->pos, f->end - f->pos, fetch_sink, f, err);
		if ((rc == -ECONNRESET || rc == -ETIMEDOUT) && f->pos > start && f->pos < f->end &&
		    resumed++ < FETCH_RESUMES) {
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
	pthread_mutex_lock(&cc->lock);

	fetch_record(f);
	if (extent_set_remove(&it->busy, f->pos, f->stream ? f->claim_end : f->end))
		extent_set_clear(&it->busy);
	changed_wake(cc);
	if (rc == 0 && f->pos < f->end) {
		rc = -EIO;
		if (!*err && asprintf(err, "the server sent %" PRId64 " bytes less than asked",
				      f->end - f->pos) < 0)
			*err = NULL;
	}
	if (it->dirty && !it->detached) {
		db_save(cc, it);
		evict(cc);
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
 * starts one.  Lock held.
 */
static void stream_note(struct content_cache *cc, struct content_file *f, int64_t off,
			int64_t fetch_end, int sequential)
{
	struct content_item *it = f->it;
	int64_t reach = f->window > STREAM_REACH ? f->window : STREAM_REACH;
	struct stream_job *job;
	struct extent gap;

	if (it->streaming) {
		if (it->stream_stop)
			return;
		if (off + SEQ_SLACK >= it->stream_start && off <= it->stream_claim + reach) {
			if (fetch_end > it->seq_end || (sequential && f->window > it->ahead)) {
				if (fetch_end > it->seq_end)
					it->seq_end = fetch_end;
				if (sequential && f->window > it->ahead)
					it->ahead = f->window;
				changed_wake(cc);       /* the stream may go on */
			}
		} else if (sequential && f->run > STREAM_REPLACE) {
			/* A long run elsewhere needs it more (one big random read does not). */
			it->stream_stop = 1;
			changed_wake(cc);
		}
		return;
	}
	if (!sequential || f->run < STREAM_AFTER || !cc->nworkers || cc->stopping)
		return;
	if (!extent_set_first_gap(&it->have, NULL, fetch_end, it->size, &gap) ||
	    gap.start - fetch_end >= f->window)
		return;
	job = calloc(1, sizeof(*job));
	if (!job)
		return;
	job->it = it;
	job->start = gap.start;
	it->streaming = 1;
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
static void stream_cancel(struct content_cache *cc, struct content_item *it)
{
	struct stream_job **pp = &cc->queue;

	while (*pp) {
		struct stream_job *job = *pp;

		if (it && job->it != it) {
			pp = &job->next;
			continue;
		}
		*pp = job->next;
		job->it->streaming = 0;
		item_unref(cc, job->it);
		free(job);
	}
	cc->queue_tail = pp;
}

static void *stream_worker(void *arg)
{
	struct content_cache *cc = arg;

	pthread_mutex_lock(&cc->lock);
	while (!cc->stopping) {
		struct stream_job *job = cc->queue;
		struct content_item *it;
		char *err = NULL;
		int rc;

		if (!job) {
			pthread_cond_wait(&cc->work, &cc->lock);
			continue;
		}
		cc->queue = job->next;
		if (!cc->queue)
			cc->queue_tail = &cc->queue;
		it = job->it;
		if (!it->cancel && !it->stream_stop) {
			struct fetch f = {
				.cc = cc, .it = it, .pos = job->start, .end = it->size,
				.recorded = job->start, .claim_end = job->start, .stream = 1,
			};

			it->stream_running = 1;
			it->stream_claim = job->start;
			rc = fetch_run(&f, &err);
			it->stream_running = 0;
			changed_wake(cc);   /* readers waiting on it fetch now */
			/* Streams stop on purpose; a read that needs the bytes will say. */
			log_debug("stream of item '%s' from %" PRId64 " stopped at %" PRId64 ": %s",
				  it->id, job->start, f.pos,
				  rc == 0 ? "end of file" : rc == -ECANCELED ? "not needed"
				  : err ? err : "error");
			free(err);
		}
		it->streaming = 0;
		item_unref(cc, it);
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
static void stream_start_workers(struct content_cache *cc)
{
	if (cc->workers_tried)
		return;
	cc->workers_tried = 1;
	while (cc->nworkers < STREAM_WORKERS &&
	       pthread_create(&cc->workers[cc->nworkers], NULL, stream_worker, cc) == 0)
		cc->nworkers++;
	if (!cc->nworkers)
		log_warnx("cannot start the prefetch threads; reads will not prefetch");
}

/* ---- reads ------------------------------------------------------------ */

static uint32_t id_hash(const char *id)
{
	uint32_t h = 2166136261u;   /* FNV-1a */

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h;
}

/* 1 when a read of it failed less than FAIL_HOLD seconds ago.  Lock held. */
static int failed_recently(struct content_cache *cc, const struct content_item *it)
{
	uint32_t h = id_hash(it->id);
	const struct failure *fl = &cc->failures[h % FAIL_SLOTS];

	return fl->hash == h && time(NULL) - fl->at < FAIL_HOLD;
}

/* Remember a failed read; log it at most once every ERROR_LOG_EVERY seconds per item.  Lock held. */
static void note_failure(struct content_cache *cc, struct content_item *it, int rc,
			 const char *err)
{
	uint32_t h = id_hash(it->id);
	struct failure *fl = &cc->failures[h % FAIL_SLOTS];
	time_t now = time(NULL);
	char buf[128];

	if (fl->hash != h) {
		fl->hash = h;
		fl->logged_at = 0;
	}
	fl->at = now;
	if (now - fl->logged_at < ERROR_LOG_EVERY)
		return;
	fl->logged_at = now;
	if (!err)
		err = strerror_r(-rc, buf, sizeof(buf));
	log_error("cannot read the content of item '%s': %s", it->id, err);
}

/*
 * 1 when the running stream will reach pos soon enough that waiting beats
 * a request of our own.  Lock held.
 */
static int stream_will_reach(const struct content_item *it, int64_t pos)
{
	int64_t reach = it->ahead > STREAM_REACH ? it->ahead : STREAM_REACH;

	return it->stream_running && pos >= it->stream_claim && pos - it->stream_claim < reach;
}

/*
 * Make [need_start, need_end) present, fetching the missing parts of
 * [fetch_start, fetch_end) (which contains it) that nobody else is
 * fetching, and waiting for the parts others are.  Lock held.
 */
static int ensure_locked(struct content_cache *cc, struct content_item *it, int64_t need_start,
			 int64_t need_end, int64_t fetch_start, int64_t fetch_end)
{
	struct extent gap;

	while (!extent_set_covers(&it->have, need_start, need_end)) {
		struct fetch f = { .cc = cc, .it = it };
		char *err = NULL;
		int rc;

		if (!extent_set_first_gap(&it->have, &it->busy, fetch_start, fetch_end, &gap)) {
			/* All that is missing is on its way: wait for it. */
			changed_wait(cc, NULL);
			continue;
		}
		if (stream_will_reach(it, gap.start)) {
			/* The running stream is about to get there: cheaper than a request. */
			if (fetch_end > it->want_end) {
				it->want_end = fetch_end;
				changed_wake(cc);
			}
			changed_wait(cc, NULL);
			continue;
		}
		if (failed_recently(cc, it))
			return -EIO;    /* logged already */
		if (extent_set_add(&it->busy, gap.start, gap.end))
			return -ENOMEM;
		f.pos = f.recorded = gap.start;
		f.end = gap.end;
		rc = fetch_run(&f, &err);
		if (rc && !extent_set_covers(&it->have, need_start, need_end)) {
			note_failure(cc, it, rc, err);
			free(err);
			if (rc == -ENOMEM || rc == -ENOSPC)
				return rc;
			return -EIO;
		}
		free(err);
	}
	return 0;
}

/* ---- download URLs from listings -------------------------------------- */

static struct url_hint *hint_slot(struct content_cache *cc, const char *id)
{
	return &cc->hints[id_hash(id) % URL_SLOTS];
}

static void hint_clear(struct url_hint *h)
{
	free(h->id);
	free(h->url);
	h->id = h->url = NULL;
}

/* A fresh hint for id (malloc'd, *at when it was seen) or NULL.  Lock held. */
static char *hint_take(struct content_cache *cc, const char *id, time_t *at)
{
	struct url_hint *h = hint_slot(cc, id);
	char *url = NULL;

	if (h->id && strcmp(h->id, id) == 0) {
		if (time(NULL) - h->at < URL_MAX_AGE) {
			url = h->url;
			*at = h->at;
			h->url = NULL;
		}
		hint_clear(h);
	}
	return url;
}

void content_remember_url(struct content_cache *cc, const char *item_id, const char *url)
{
	char *id = strdup(item_id), *u = strdup(url);
	struct url_hint *h;

	if (!id || !u) {
		free(id);
		free(u);
		return;
	}
	pthread_mutex_lock(&cc->lock);
	h = hint_slot(cc, item_id);
	hint_clear(h);      /* a collision simply forgets the older one */
	h->id = id;
	h->url = u;
	h->at = time(NULL);
	pthread_mutex_unlock(&cc->lock);
}

/* ---- the API ------------------------------------------------------------ */

int content_open(const struct odfs_config *cfg, struct graph *g, struct content_cache **out,
		 char **err)
{
	struct content_cache *cc;
	char *dbpath = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -ENOMEM;

	*out = NULL;
	cc = calloc(1, sizeof(*cc));
	if (!cc)
		goto out_oom;
	cc->cfg = cfg;
	cc->g = g;
	cc->queue_tail = &cc->queue;
	if (asprintf(&cc->dir, "%s/content", cfg->cache_dir) < 0) {
		cc->dir = NULL;
		goto out_free_cc;
	}
	rc = config_mkdirs(cc->dir, 0700);
	if (rc) {
		if (asprintf(err, "cannot create the cache folder '%s'", cc->dir) < 0)
			*err = NULL;
		goto out_free_cc;
	}
	if (asprintf(&dbpath, "%s/content.db", cc->dir) < 0) {
		dbpath = NULL;
		rc = -ENOMEM;
		goto out_free_cc;
	}
	if (sqlite3_open(dbpath, &cc->db) != SQLITE_OK ||
	    sqlite3_busy_timeout(cc->db, 5000) != SQLITE_OK ||
	    sqlite3_exec(cc->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(cc->db, "SELECT coalesce(sum(bytes), 0) FROM content", -1, &st,
			       NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		rc = -EIO;
		if (asprintf(err, "cannot open the content index '%s': %s", dbpath,
			     cc->db ? sqlite3_errmsg(cc->db) : "out of memory") < 0)
			*err = NULL;
		goto out_close_db;
	}
	cc->total = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;

	pthread_mutex_init(&cc->lock, NULL);
	pthread_cond_init(&cc->changed, NULL);
	pthread_cond_init(&cc->work, NULL);
	pthread_mutex_lock(&cc->lock);
	evict(cc);      /* the limit may have shrunk since the last mount */
	pthread_mutex_unlock(&cc->lock);
	free(dbpath);
	*out = cc;
	return 0;

out_close_db:
	sqlite3_finalize(st);
	sqlite3_close(cc->db);
	free(dbpath);
out_free_cc:
	free(cc->dir);
	free(cc);
	return rc;
out_oom:
	return -ENOMEM;
}

void content_close(struct content_cache *cc)
{
	int i;

	if (!cc)
		return;
	pthread_mutex_lock(&cc->lock);
	cc->stopping = 1;
	stream_cancel(cc, NULL);
	pthread_cond_broadcast(&cc->work);
	pthread_mutex_unlock(&cc->lock);
	for (i = 0; i < cc->nworkers; i++)
		pthread_join(cc->workers[i], NULL);

	pthread_mutex_lock(&cc->lock);
	while (cc->items) {
		/* Handles the kernel never released (unmount mid-read): save and free. */
		struct content_item *it = cc->items;

		cc->items = it->next;
		if (it->dirty)
			db_save(cc, it);
		item_free(it);
	}
	for (i = 0; i < URL_SLOTS; i++)
		hint_clear(&cc->hints[i]);
	pthread_mutex_unlock(&cc->lock);
	sqlite3_close(cc->db);
	pthread_cond_destroy(&cc->work);
	pthread_cond_destroy(&cc->changed);
	pthread_mutex_destroy(&cc->lock);
	free(cc->dir);
	free(cc);
}

int content_file_open(struct content_cache *cc, const struct drive_item *item,
		      struct content_file **out)
{
	const char *tag = item->ctag ? item->ctag : item->etag ? item->etag : "";
	int64_t size = item->size > 0 ? item->size : 0;
	struct content_item *it;
	struct content_file *f;
	int rc;

	*out = NULL;
	if (!item->id)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&cc->lock);
	stream_start_workers(cc);
	it = item_find(cc, item->id);
	if (it && (strcmp(it->tag, tag) != 0 || !*tag || it->size != size)) {
		/* A new version: older handles keep the old bytes, we start afresh. */
		item_detach(cc, it);
		it = NULL;
	}
	if (!it) {
		rc = item_load(cc, item, tag, &it);
		if (rc) {
			pthread_mutex_unlock(&cc->lock);
			free(f);
			return rc;
		}
		it->next = cc->items;
		cc->items = it;
	}
	{
		time_t at = time(NULL);
		char *url = item->download_url ? strdup(item->download_url)
					       : hint_take(cc, item->id, &at);

		if (url) {
			free(it->url);
			it->url = url;
			it->url_at = at;
		}
	}
	it->opens++;
	it->refs++;
	it->cancel = 0;
	pthread_mutex_unlock(&cc->lock);
	f->cc = cc;
	f->it = it;
	*out = f;
	return 0;
}

ssize_t content_read(struct content_file *f, char *buf, size_t size, off_t off)
{
	struct content_cache *cc = f->cc;
	struct content_item *it = f->it;
	int64_t end, fetch_start, fetch_end, max_window;
	size_t done = 0;
	int sequential, rc;

	if (off < 0)
		return -EINVAL;
	if (off >= it->size || size == 0)
		return 0;
	end = it->size - off < (int64_t)size ? it->size : off + (int64_t)size;
	/* What was asked, rounded up to whole blocks: small reads coalesce, little is wasted. */
	fetch_start = off;
	fetch_end = off + (end - off + BLOCK - 1) / BLOCK * BLOCK;
	if (fetch_end > it->size)
		fetch_end = it->size;
	max_window = cc->cfg->readahead_max > BLOCK ? cc->cfg->readahead_max : BLOCK;

	pthread_mutex_lock(&cc->lock);
	sequential = f->window > 0 && off + SEQ_SLACK >= f->expect && off <= f->expect + SEQ_SLACK;
	if (sequential) {
		f->window = f->window < FIRST_WINDOW ? FIRST_WINDOW : f->window * 2;
		if (f->window > max_window)
			f->window = max_window;
		if (end > f->expect)
			f->expect = end;
		f->run += end - off;
	} else {
		f->window = BLOCK;
		f->expect = end;
		f->run = end - off;
	}
	stream_note(cc, f, off, fetch_end, sequential);
	if (sequential && !stream_will_reach(it, fetch_end)) {
		/* Read ahead half of what was read in a row, up to the window. */
		int64_t more = f->run / 2 < f->window ? f->run / 2 : f->window;

		int64_t want = it->size - off < more ? it->size : off + more / BLOCK * BLOCK;

		if (want > fetch_end)
			fetch_end = want;
	}
	rc = ensure_locked(cc, it, off, end, fetch_start, fetch_end);
	pthread_mutex_unlock(&cc->lock);
	if (rc)
		return rc;

	while ((int64_t)done < end - off) {
		ssize_t n = pread(it->fd, buf + done, (size_t)(end - off) - done,
				  off + (off_t)done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			log_warn("cannot read the cache file of item '%s'", it->id);
			return rc;
		}
		if (n == 0)
			return -EIO;    /* the data file shrank under us */
		done += (size_t)n;
	}
	return (ssize_t)done;
}

void content_file_close(struct content_file *f)
{
	struct content_cache *cc;
	struct content_item *it;

	if (!f)
		return;
	cc = f->cc;
	it = f->it;
	pthread_mutex_lock(&cc->lock);
	if (--it->opens == 0) {
		it->cancel = 1;
		stream_cancel(cc, it);
	}
	item_unref(cc, it);
	pthread_mutex_unlock(&cc->lock);
	free(f);
}

void content_invalidate(struct content_cache *cc, const char *item_id)
{
	struct content_item *it;
	char *tag = NULL, *ranges = NULL, key[41], path[4096];
	int64_t size, bytes;

	pthread_mutex_lock(&cc->lock);
	it = item_find(cc, item_id);
	if (it) {
		item_detach(cc, it);
	} else if (db_load(cc, item_id, &tag, &size, &ranges, &bytes) == 0 &&
		   key_of(item_id, key) == 0) {
		path_of(cc, key, path, sizeof(path));
		unlink(path);
		cc->total -= bytes;
		db_delete(cc, item_id);
	}
	pthread_mutex_unlock(&cc->lock);
	free(tag);
	free(ranges);
}
