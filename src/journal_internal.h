/*
 * journal_internal.h - what the journal's queue (journal.c) shares with
 * the replay of one row (journal_replay.c).  Not an API: only journal*.c
 * include it.
 */
#ifndef ODFS_JOURNAL_INTERNAL_H
#define ODFS_JOURNAL_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <sqlite3.h>

#include "journal.h"

enum op_kind { OP_FOLDER, OP_MOVE, OP_DELETE, OP_TIMES };

/* One journalled operation (a row of name_ops). */
struct op {
	int64_t seq;
	enum op_kind kind;
	char *item_id;
	char *parent_id;        /* folder: where; move: new parent or NULL */
	char *name;             /* folder: its name; move: new name or NULL */
	char *tag;              /* delete: the cTag it saw, or NULL */
	int is_dir;             /* delete */
	int64_t mtime, crtime;  /* times: unix seconds (0: leave) */
	char *path;             /* for messages */
	int attempts;           /* failed tries in a row (replay thread only) */
	struct op *next;
};

/* A folder's local id and the real one its replayed creation gave it. */
struct id_map {
	char *local_id, *real_id;
	struct id_map *next;
};

struct journal {
	const struct odfs_config *cfg;
	struct cache *cache;
	struct graph *graph;

	pthread_mutex_t db_lock;        /* protects db */
	sqlite3 *db;

	/*
	 * Held across a row's INSERT and its place in the list, and across an
	 * id rewrite of the table and the list, so a row added meanwhile is
	 * rewritten too; ids holds every rewrite made, for rows whose caller
	 * read the local id before it changed.  Taken before lock and db_lock.
	 */
	pthread_mutex_t order;
	struct id_map *ids;

	pthread_mutex_t lock;           /* protects everything below */
	pthread_cond_t work;            /* a row was added, a kick, or stop */
	struct op *head, *tail;
	int kicked, stopping, started;
	pthread_t thread;
	journal_notify_fn notify;       /* set before start, then read-only */
	journal_drained_fn drained;
	journal_taken_fn taken;
	void *hook_ctx;
};

/* One statement on the journal's connection (sqlrun.h types); takes db_lock. */
int journal_db_run(struct journal *j, int64_t *rowid, const char *sql, const char *types, ...);

/* 1 when a replay failure may pass: the network, throttling, a busy or full service. */
int journal_is_transient(int rc);
/* Every row (table and list) naming old names new_id from now on; remembered in j->ids. */
int journal_rewrite_id(struct journal *j, const char *old, const char *new_id);
void journal_id_map_free(struct id_map *m);

/* Send row o to the service (replay thread, no lock held): 0 or -errno, *err a message. */
int journal_replay(struct journal *j, struct op *o, char **err);
/* o was refused for good: bring back the service's view of what it touched. */
void journal_forget_change(struct journal *j, const struct op *o);
/* "create folder", "rename", ... for messages. */
const char *journal_what_of(const struct op *o);

#endif
