/*
 * delta.h - the remote-change thread: follows root delta, so changes made
 * elsewhere (another device, the web) show in the mount by themselves.
 *
 * One thread per mount polls GET {drive}/root/delta every cfg->poll_interval
 * seconds (and once right after delta_start()), applies each complete round
 * to the cache in one transaction and then tells the kernel what changed
 * (fuse_lowlevel_notify_inval_entry / notify_inval_inode), outside any lock
 * a FUSE operation could need.  The deltaLink lives in the cache's meta
 * table ('delta_link'), so a remount resumes where the last round ended.
 *
 * A cache without a complete enumeration (first mount, or after a 410
 * resync) is filled from delta pages: about items / page_size requests
 * instead of one listing per folder.  Once that round is applied, every
 * folder counts as listed (meta 'delta_complete' = 1) and the cache is
 * "ready": fs.c waits for that (delta_wait_ready) rather than listing a
 * folder itself, and while delta runs trusts listed folders whatever their
 * age, since a change would have come through delta.
 *
 * Local edits win: dirty and local items (cache.h, "Local changes") are
 * never removed or overwritten by a round; the upload's If-Match sees the
 * conflict.  Everything here is thread-safe.
 */
#ifndef ODFS_DELTA_H
#define ODFS_DELTA_H

struct odfs_config;
struct graph;
struct cache;
struct content_cache;
struct fuse_session;
struct delta;

/*
 * Borrows everything (they must outlive the handle); starts no thread, so
 * it is safe before fork().  0 or -ENOMEM.
 */
int delta_open(const struct odfs_config *cfg, struct graph *g, struct cache *cache,
	       struct content_cache *content, struct delta **out);

/*
 * Start the thread (after daemonizing): its first round runs at once.  se
 * receives the kernel notifications; NULL sends none (tests).  0 or -errno.
 */
int delta_start(struct delta *d, struct fuse_session *se);

/*
 * Stop the thread: a round in progress is abandoned between two pages (it
 * will be fetched again from the stored link next time).  Call before the
 * session ends; idempotent.  Waiters in delta_wait_ready() return.
 */
void delta_stop(struct delta *d);

/* Stops if needed and frees; NULL is fine. */
void delta_close(struct delta *d);

/*
 * Ask for a round now, unless one started less than min_age seconds ago
 * (at least 1): fs.c calls this when it meets a listing older than dir_ttl,
 * so dir_ttl keeps its meaning (how stale a folder may look) at the cost of
 * one small request, not a listing.  Never blocks.
 */
void delta_wake(struct delta *d, long min_age);

/*
 * Ask for a round now, however recent the last one (the service answers
 * again after a spell offline).  NULL is fine; never blocks.
 */
void delta_kick(struct delta *d);

/*
 * Wait until the cache holds a complete enumeration of the drive.  Returns
 * 0 when it does, -ETIMEDOUT when no delta page arrived for timeout_ms
 * (while pages keep arriving it keeps waiting: a large drive takes a
 * while), -EAGAIN when the initial round failed or the thread is not
 * running (the caller lists the folder itself).
 */
int delta_wait_ready(struct delta *d, int timeout_ms);

/*
 * Hold hook (optional, set before delta_start()): while fn(ctx) returns
 * non-zero (name operations made offline still wait to be sent), rounds
 * are skipped: the cache holds newer truth than the service until then.
 */
typedef int (*delta_hold_fn)(void *ctx);
void delta_set_hold(struct delta *d, delta_hold_fn fn, void *ctx);

#endif
