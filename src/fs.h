/*
 * fs.h - the FUSE low-level operations: translate, call down, reply.
 *
 * fs.c holds no Graph JSON and no SQL: it asks cache.c for metadata,
 * graph.c for listings it does not have (or that are older than
 * cfg->dir_ttl), content.c for bytes and for the staging of writes,
 * upload.c to send closed files.  fs_write.c and fs_names.c hold the
 * write operations.
 */
#ifndef ODFS_FS_H
#define ODFS_FS_H

#include <sys/types.h>
#include "item.h"

struct odfs_config;
struct cache;
struct graph;
struct content_cache;
struct upload_queue;
struct delta;
struct fuse_lowlevel_ops;
struct fuse_session;
struct fs_state;

/* What the operations need; owned by main.c, alive while the session runs. */
struct fs_context {
	const struct odfs_config *cfg;
	struct cache *cache;
	struct graph *graph;
	struct content_cache *content;
	struct upload_queue *upload;
	struct journal *journal;      /* name operations made offline (journal.h) */
	struct delta *delta;          /* NULL when poll_interval is 0: folders are listed
	                                 again after dir_ttl (see fs.c) */
	struct drive_info drive;      /* quota is refreshed by fs.c for statfs */
	uid_t uid;                    /* owner shown for every file */
	gid_t gid;
	struct fs_state *state;       /* fs.c's own: set up by the init operation,
	                                 freed by destroy; main.c leaves it NULL */
	struct fuse_session *se;      /* for the kernel's entries a rename or unlink
	                                 through another spelling leaves (NULL: none) */
};

const struct fuse_lowlevel_ops *fs_operations(void);

/* After the session loop: closes files whose release never came (fs_write.c). */
void fs_close_leftovers(struct fs_context *ctx);

#endif
