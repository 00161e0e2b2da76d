/*
 * content_internal.h - what the content cache's files share (content.c,
 * content_fetch.c, content_index.c, content_spare.c, content_write.c).  Not
 * an API: only those files include it.  See content.c for the design.
 */
#ifndef ODFS_CONTENT_INTERNAL_H
#define ODFS_CONTENT_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <sqlite3.h>
#include <time.h>

#include "content.h"

#define CONTENT_URL_SLOTS  1024       /* download URLs remembered from listings */
#define CONTENT_ALIAS_SLOTS 64        /* local ids recently replaced by real ones */
#define CONTENT_FAIL_SLOTS 64         /* recent read failures remembered */
#define CONTENT_WORKERS    4          /* prefetch streams at once */
#define CONTENT_KEY_LEN    (2 * 20)   /* hex SHA-1 */
#define CONTENT_BLOCK      (64 * 1024)        /* fetch granularity */
#define CONTENT_SEQ_SLACK  (512 * 1024)       /* reordered async reads still count as sequential */

/*
 * One item's cached content while at least one handle, stream or stage
 * uses it.  Invariant: every byte of [fetch_limit, size) is in have (local
 * content: written, or zeros from a truncate up), so a gap in have is
 * always below fetch_limit and is fetched from tag's version.  The data
 * file is exactly size bytes long.
 */
struct content_item {
	struct content_item *next;    /* cc->items, unless detached */
	int fd;                       /* data file, O_RDWR; fixed for the item's life */
	/*
	 * Serializes changes of the data file's bytes: a write or truncate
	 * holds it across its pwrite/ftruncate and the update of have, a
	 * fetch across its check of have and its pwrite, so fetched bytes
	 * never land on locally written ones.  Taken before cc->lock.
	 */
	pthread_mutex_t io;
	/* Fields below: cc->lock.  Those marked "io too" change only with both held. */
	char *id;
	char *name;                   /* the item's name at the last open, for messages, or NULL */
	char *tag;                    /* cTag, else eTag, else "" (never matches); the base */
	char key[CONTENT_KEY_LEN + 1];/* hex SHA-1 of id: the data file name */
	int64_t size;                 /* what readers see (the local size); io too */
	int64_t remote_size;          /* size of tag's version on the service */
	int64_t fetch_limit;          /* bytes from here on are local, never fetched; io too */
	struct extent_set have;       /* bytes on disk; io too for removals */
	struct extent_set busy;       /* bytes some thread is fetching */
	char *url;                    /* pre-authenticated download URL or NULL */
	time_t url_at;
	unsigned opens;               /* open content_files */
	unsigned refs;                /* opens + streams + stages in progress */
	unsigned writers;             /* open content_files that may write; io too */
	int local;                    /* local changes not on the service (dirty row); io too */
	uint64_t generation;          /* local changes so far */
	int cancel;                   /* no handle left: the stream stops */
	int streaming;                /* a stream is queued or running */
	int stream_running;           /* ... and running: stream_claim is meaningful */
	int stream_prompt;            /* ... or queued with a worker free to take it at once */
	int stream_stop;              /* the stream is no longer wanted */
	int64_t stream_start;         /* where it started */
	int64_t stream_claim;         /* where its claimed bytes end */
	int64_t seq_end;              /* where reads near the stream got to */
	int64_t ahead;                /* how far past seq_end the stream may go */
	int64_t want_end;             /* readers wait for the stream up to here */
	int detached;                 /* replaced, invalidated or discarded: no index, no total */
	int unsaved;                  /* the index row is out of date */
	int new_file;                 /* data file created here: the first flush syncs the folder */
};

struct content_file {
	struct content_cache *cc;
	struct content_item *it;
	int writable;                 /* counted in it->writers */
	int modified;                 /* cc->lock: changed since open or the last flush */
	int64_t expect;               /* cc->lock: where a sequential read starts */
	int64_t window;               /* cc->lock: 0 until the first read */
	int64_t run;                  /* cc->lock: bytes read in a row since the last seek */
};

struct content_stream_job {
	struct content_stream_job *next;
	struct content_item *it;      /* holds a ref */
	int64_t start;
};

/* A download URL from a listing, for an item not open yet. */
/* A local id whose content moved to its real id: a reader that looked the id up just before still finds the bytes. */
struct content_alias {
	char *from;
	char *to;
};

struct content_url_hint {
	char *id;
	char *url;
	time_t at;
};

/*
 * A recent read failure.  The kernel retries a failed readahead at once
 * with a plain read: that retry should neither wait through the network
 * again nor log again.
 */
struct content_failure {
	uint32_t hash;                /* of the item id */
	time_t at, logged_at;
	int offline;                  /* it failed while offline: void once back */
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
	struct content_stream_job *queue; /* lock: FIFO */
	struct content_stream_job **queue_tail;
	int stopping;                 /* lock */
	int db_warned;                /* lock: an index failure was logged */
	struct content_url_hint hints[CONTENT_URL_SLOTS];   /* lock: by hash of the id */
	struct content_alias aliases[CONTENT_ALIAS_SLOTS];  /* lock: a ring, oldest replaced */
	unsigned alias_next;          /* lock */
	struct content_failure failures[CONTENT_FAIL_SLOTS]; /* lock: by hash of the id */
	pthread_t workers[CONTENT_WORKERS];
	int nworkers;                 /* lock; started at the first open, after any fork */
	int idle_workers;             /* lock: workers waiting for a job */
	int workers_tried;            /* lock */
	struct content_spares *spares;    /* content_spare.c, its own lock */
};

/* An index row (content_index_load); strings malloc'd. */
struct content_row {
	char *tag;
	char *ranges;
	int64_t size;                 /* of tag's version */
	int64_t local_size;           /* = size unless dirty */
	int64_t bytes;                /* present */
	int dirty;
	uint64_t generation;
};

/* ---- content.c: items -------------------------------------------------- */

int content_key_of(const char *id, char key[CONTENT_KEY_LEN + 1]);
void content_path_of(const struct content_cache *cc, const char *key, char *path, size_t size);
uint32_t content_id_hash(const char *id);
struct content_item *content_item_find(struct content_cache *cc, const char *id);
/*
 * The item for id, in memory already or loaded from its row (not counted
 * in refs: the caller takes one at once).  tag/size as for content_file_open
 * decide whether clean bytes are still valid; tag NULL keeps any row and
 * wants one (-ENOENT without).  Local content always stays.  Lock held.
 */
int content_item_get(struct content_cache *cc, const char *id, const char *tag, int64_t size,
		     struct content_item **out);
void content_item_detach(struct content_cache *cc, struct content_item *it);
void content_item_unref(struct content_cache *cc, struct content_item *it);
/* Add/remove [start, end) to/from it->have keeping cc->total right; 0 or -ENOMEM.  Lock held. */
int content_item_add_present(struct content_cache *cc, struct content_item *it, int64_t start,
			     int64_t end);
int content_item_drop_present(struct content_cache *cc, struct content_item *it, int64_t start,
			      int64_t end);
/* Give it the id new_id: data file, row and memory (a holder of new_id goes first).  Lock held. */
int content_item_rename(struct content_cache *cc, struct content_item *it, const char *new_id);
/* Drop what is stored for id and is not in memory: file and row.  Lock held. */
void content_drop_stored(struct content_cache *cc, const char *id);
/* Remember that local id from now lives under to (content_rename_id).  Lock held. */
void content_alias_add(struct content_cache *cc, const char *from, const char *to);
/* content_file_open(), as a writer (counted in it->writers) when writable. */
int content_file_open_mode(struct content_cache *cc, const struct drive_item *item, int writable,
			   struct content_file **out);

/* ---- content_fetch.c: fetching and streams ---------------------------- */

void content_changed_wait(struct content_cache *cc, const struct timespec *until);
void content_changed_wake(struct content_cache *cc);
/*
 * Make [need_start, need_end) present, fetching the missing parts of
 * [fetch_start, fetch_end) (which contains it) that nobody else is
 * fetching and waiting for the parts others are.  With err NULL a failure
 * is logged (once in a while) and is -EIO; with err the message is handed
 * back instead.  Lock held; dropped while on the network.
 */
int content_fetch_ensure(struct content_cache *cc, struct content_item *it, int64_t need_start,
			 int64_t need_end, int64_t fetch_start, int64_t fetch_end, char **err);
void content_stream_note(struct content_cache *cc, struct content_file *f, int64_t off,
			 int64_t fetch_end, int sequential);
int content_stream_will_reach(const struct content_item *it, int64_t pos);
void content_stream_cancel(struct content_cache *cc, struct content_item *it);
void content_stream_start_workers(struct content_cache *cc);

/* ---- content_spare.c: empty data files made ahead of need ---------------- */
struct content_spares;
int content_spare_init(struct content_cache *cc);
/* Rename a spare to path (which must not exist): 0, or -ENOENT when none is ready. */
int content_spare_take(struct content_cache *cc, const char *path);
void content_spare_stop(struct content_cache *cc);

/* ---- content_index.c: content.db --------------------------------------- */

/* Open or create cc->dir/content.db (adding the local-change columns), sum cc->total. */
int content_index_open(struct content_cache *cc, char **err);
void content_index_close(struct content_cache *cc);
/* Write it's row; durable: committed with a full sync.  0 or -EIO (logged once).  Lock held. */
int content_index_save(struct content_cache *cc, struct content_item *it, int durable);
void content_index_delete(struct content_cache *cc, const char *id);
/* -ENOENT without a row, -EIO, -ENOMEM.  Lock held. */
int content_index_load(struct content_cache *cc, const char *id, struct content_row *row);
void content_row_release(struct content_row *row);
/* Move the row of old_id to new_id (replacing new_id's).  Lock held. */
int content_index_rename(struct content_cache *cc, const char *old_id, const char *new_id);
/*
 * A row not in memory whose upload landed: clean with tag if its generation
 * is still generation.  1 if clean now, 0 if not, or -errno.  Lock held.
 */
int content_index_mark_clean(struct content_cache *cc, const char *id, uint64_t generation,
			     const char *tag);
/* Delete least recently used clean files until 90 % of the limit is left.  Lock held. */
void content_index_evict(struct content_cache *cc);

#endif
