/*
 * journal.h - name operations waiting for the service: mkdir, rename,
 * delete and times made while OneDrive could not be reached.
 *
 * DESIGN: while the service is out of reach (or while earlier operations
 * still wait, so that order is kept), fs_names.c applies mkdir, rmdir,
 * unlink, rename and folder utimens to the cache at once and records them
 * here: a table name_ops in cache_dir/meta.db, each row committed (FULL)
 * before the operation returns, so a kill -9 loses none.  One thread
 * replays them strictly in order once the service answers again.  Rows
 * name items by id; a folder created here carries its local id
 * ("local:...") until its own row has been replayed, and then every later
 * row that mentions the local id is rewritten to the real one, so a
 * rename into (or of) a new folder finds it.
 *
 * The conflict rule: a delete is sent with If-Match of the cTag it saw, so
 * a file changed on another device meanwhile is kept (412); a folder that
 * gained children elsewhere is kept too.  A new folder whose name was
 * taken meanwhile by a folder is merged into it; a name taken by a file
 * (or a rename onto a taken name) gets "name (conflict YYYY-MM-DD HHMMSS)".
 *
 * While rows wait, the upload queue starts no upload and folder listings
 * and delta rounds leave the cache alone (journal_busy()): the cache holds
 * the newer truth until the journal has drained.  All functions are
 * thread-safe.
 */
#ifndef ODFS_JOURNAL_H
#define ODFS_JOURNAL_H

#include <stdint.h>
#include <time.h>

struct odfs_config;
struct cache;
struct graph;
struct journal;

/* Borrows everything; they must outlive the journal. */
int journal_open(const struct odfs_config *cfg, struct cache *cache, struct graph *g,
		 struct journal **out, char **err);
/* Start the replay thread (after daemonizing). */
int journal_start(struct journal *j);
/* Stop it promptly; rows not replayed stay for the next mount. */
void journal_stop(struct journal *j);
void journal_close(struct journal *j);

/* 1 while rows wait to be replayed (0 for a NULL journal). */
int journal_busy(struct journal *j);

/*
 * 1 when a name operation must be journalled instead of sent now: the
 * service is out of reach, or earlier rows still wait (order is kept).
 */
int journal_wanted(struct journal *j);

/*
 * Record one operation (committed before it returns; 0 or -errno).
 * path is only for messages.  ids may be local ids of folders recorded
 * earlier with journal_add_folder().
 */
int journal_add_folder(struct journal *j, const char *local_id, const char *parent_id,
		       const char *name, const char *path);
/* new_parent_id or new_name may be NULL (unchanged). */
int journal_add_move(struct journal *j, const char *item_id, const char *new_parent_id,
		     const char *new_name, const char *path);
/* ctag: the tag the delete saw (files; NULL sends no condition). */
int journal_add_delete(struct journal *j, const char *item_id, const char *ctag, int is_dir,
		       const char *path);
int journal_add_times(struct journal *j, const char *item_id, const struct timespec *mtime,
		      const struct timespec *crtime, const char *path);

/* The service answers again (or may): try the waiting rows now. */
void journal_kick(struct journal *j);

/*
 * Hooks, set before journal_start().  notify(ctx, parent_ino, name): the
 * kernel must look name up again (a conflict renamed an item).  drained(ctx):
 * the last waiting row was replayed (uploads and delta may go on).  Both
 * are called from the replay thread with no lock held.
 */
typedef void (*journal_notify_fn)(void *ctx, uint64_t parent_ino, const char *name);
typedef void (*journal_drained_fn)(void *ctx);
void journal_set_hooks(struct journal *j, journal_notify_fn notify, journal_drained_fn drained,
		       void *ctx);

/*
 * taken(ctx, parent_id, name): the service refused a replayed move the name
 * in folder parent_id; 1 if the hook freed it (a stray item a create whose
 * answer was lost made there, for a file gone here since), so the move is
 * sent again before it takes a conflict name.  Set before journal_start(),
 * with the ctx of journal_set_hooks(); called from the replay thread.
 */
typedef int (*journal_taken_fn)(void *ctx, const char *parent_id, const char *name);
void journal_set_taken_hook(struct journal *j, journal_taken_fn taken);

#endif
