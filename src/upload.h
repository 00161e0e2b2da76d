/*
 * upload.h - the upload queue: closed files travel to OneDrive in the background.
 *
 * DESIGN: a journal table in SQLite (cache_dir/meta.db, upload.c's own
 * connection) holds one row per file that has local content not yet on the
 * service.  upload_enqueue() commits the row before it returns, so a close()
 * that returned is never forgotten: after a crash or kill -9 the next mount
 * resumes every row (an upload session is resumed from nextExpectedRanges
 * when it is still alive, started over when it expired).
 *
 * Workers (cfg->upload_workers, default 4) take rows in FIFO order, at most
 * one per file at a time.  A worker reads the file's CURRENT parent and name
 * from the cache when it starts, so a file renamed or deleted before its
 * upload starts is never uploaded under its old name.  Files up to 4 MiB go
 * up with one PUT, larger ones through an upload session in chunks of
 * cfg->upload_chunk bytes (a multiple of 320 KiB), streamed from the
 * staging file.  Each upload is conditioned on the tag the edit started from;
 * a remote change meanwhile keeps both: the local bytes go up beside it as
 * "name (conflict YYYY-MM-DD HHMMSS).ext".  After the upload, the cache takes
 * the item from the response and the service's quickXorHash is compared with
 * the local bytes (a mismatch keeps the local copy and retries).
 *
 * All functions are thread-safe.
 */
#ifndef ODFS_UPLOAD_H
#define ODFS_UPLOAD_H

#include <stdint.h>

struct odfs_config;
struct cache;
struct content_cache;
struct graph;
struct upload_queue;

/* Borrows everything; they must outlive the queue. */
int upload_open(const struct odfs_config *cfg, struct cache *cache, struct content_cache *content,
		struct graph *g, struct upload_queue **out, char **err);
/* Start the workers (after daemonizing) and resume what the journal holds. */
int upload_start(struct upload_queue *q);
/* Stop the workers promptly; unfinished rows stay in the journal. */
void upload_stop(struct upload_queue *q);
void upload_close(struct upload_queue *q);

/*
 * Queue inode ino for upload (its content is complete in the staging file).
 * A file already queued or uploading is uploaded again afterwards.
 * Returns once the journal row is committed.
 */
int upload_enqueue(struct upload_queue *q, uint64_t ino);

/*
 * Wait until ino has no queued or running upload; returns the error of its
 * last attempt (-ENOSPC when the quota is full, -EIO, ...) or 0.
 */
int upload_wait(struct upload_queue *q, uint64_t ino);

/* 1 if ino has a queued or running upload. */
int upload_pending(struct upload_queue *q, uint64_t ino);

/* "clean", "dirty", "uploading", "conflict" or "error: <message>"; malloc'd. */
char *upload_status(struct upload_queue *q, uint64_t ino);

/*
 * ino gained or lost a handle open for writing.  While one is open its
 * upload does not start (unless upload_wait() asks for it), so a file that
 * is still being written is never sent half-done.
 */
void upload_writer_open(struct upload_queue *q, uint64_t ino);
void upload_writer_close(struct upload_queue *q, uint64_t ino);

/*
 * The modification time of ino was set on purpose (utimens) to *mtime: the
 * upload records it to the second.  A time that only comes from writing is
 * left to the service when it is within a few seconds of the upload, since
 * every correction makes another version.
 */
void upload_times_set(struct upload_queue *q, uint64_t ino, const struct timespec *mtime);

/* Retry every waiting job now, back-off forgotten (the service answers again). */
void upload_kick(struct upload_queue *q);

/*
 * ino was deleted locally: drop its queued upload (a running one is
 * abandoned).  When its create went out with the answer lost, the item it
 * may have made is deleted on the service (a request, unless offline).
 */
void upload_forget(struct upload_queue *q, uint64_t ino);
/*
 * The same, for a file whose item heir, renamed over it, takes over: the
 * versions ino sent to that item with their answers lost are handed to
 * heir's next upload_enqueue(), so that its If-Match failing against one
 * of them replaces it instead of keeping a conflict copy of it.
 */
void upload_forget_into(struct upload_queue *q, uint64_t ino, uint64_t heir);
/*
 * ino, a file created here, is about to be replaced by a rename.  When its
 * create went out with the answer lost and its upload waits (in back-off,
 * not running), the item that create may have made holds the name on the
 * service: delete it (a request) and forget the doubt, so that the rename
 * can take the name.  1 if an item was deleted, else 0.
 */
int upload_drop_create_in_doubt(struct upload_queue *q, uint64_t ino);
/*
 * The service refused a journalled rename the name in folder parent_id: if
 * a create in doubt of a file that is gone here (forgotten, waiting, not
 * running) went there, the item it may have made holds the name: delete it
 * (a request) and forget the doubt, as above.  1 if an item was deleted,
 * else 0.
 */
int upload_drop_create_in_doubt_at(struct upload_queue *q, const char *parent_id, const char *name);

/*
 * Kernel notification hook (optional, set before upload_start()): an upload
 * thread, holding no lock, calls fn(ctx, parent_ino, name) when the entry
 * name in folder parent_ino changed behind the kernel's back (after a
 * conflict the inode became the conflict copy and the name shows the
 * service's version).  fn would call fuse_lowlevel_notify_inval_entry().
 */
typedef void (*upload_notify_fn)(void *ctx, uint64_t parent_ino, const char *name);
void upload_set_notify(struct upload_queue *q, upload_notify_fn fn, void *ctx);

/*
 * Hold hook (optional, set before upload_start()): while fn(ctx) returns
 * UPLOAD_HOLD_BUSY (name operations made offline go first) or
 * UPLOAD_HOLD_OFFLINE (the service is out of reach), no upload starts.
 * While offline, upload_wait() returns 0 at once: the content is
 * journalled and goes up when the service returns (fsync must not fail
 * an editor's save for a network cut).  upload_kick() re-checks at once.
 */
enum { UPLOAD_HOLD_NONE = 0, UPLOAD_HOLD_BUSY = 1, UPLOAD_HOLD_OFFLINE = 2 };
typedef int (*upload_hold_fn)(void *ctx);
void upload_set_hold(struct upload_queue *q, upload_hold_fn fn, void *ctx);

/*
 * Move hook (optional, set before upload_start()): a new file renamed or
 * moved while its create travelled is followed with a PATCH once the item
 * exists; when that PATCH gets no answer (out of reach, cut short by the
 * unmount), an upload thread holding no lock calls fn(ctx, item_id,
 * new_parent_id or NULL, new_name or NULL, path) to have it sent later (the
 * name journal), 0 or -errno.  Without the hook the rename is only logged.
 */
typedef int (*upload_move_fn)(void *ctx, const char *item_id, const char *new_parent_id,
			      const char *new_name, const char *path);
void upload_set_move(struct upload_queue *q, upload_move_fn fn, void *ctx);

/*
 * Times hook (optional, like the move hook): the PATCH that gives a landed
 * file the time set on purpose here failed (no answer, throttled past the
 * retries); fn(ctx, item_id, mtime, crtime or NULL, path) has it sent later
 * (the name journal), 0 or -errno.  Without the hook it is only logged.
 */
typedef int (*upload_times_fn)(void *ctx, const char *item_id, const struct timespec *mtime,
			       const struct timespec *crtime, const char *path);
void upload_set_times_hook(struct upload_queue *q, upload_times_fn fn, void *ctx);

#endif
