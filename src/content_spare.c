/*
 * content_spare.c - empty data files made ahead of need.
 *
 * Creating a file costs an inode allocation, which on a busy file system
 * can take longer than the rest of a FUSE create together (ext4 searches
 * past inodes freed in the last seconds).  A new file's create waits for
 * it.  So one thread keeps a few empty files, content/spare-N, ready, and
 * a data file that does not exist yet is a spare renamed to its name.
 * Nothing about durability changes: a renamed spare is a new name in the
 * folder, like a created file, and its first flush syncs the folder
 * (content_flush).  Spares hold no data and no index row; those left by a
 * kill are removed at the next start.
 *
 * A slot is empty (the thread may create its file), ready (its file
 * exists), or taken (being renamed; the thread leaves it alone).  The
 * thread starts at the first take, after any fork.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "content_internal.h"
#include "log.h"

#define SPARES 8

enum { SLOT_EMPTY, SLOT_READY, SLOT_TAKEN };

struct content_spares {
	pthread_mutex_t lock;
	pthread_cond_t want;          /* lock: a slot emptied, or stopping */
	pthread_t thread;
	int started;                  /* lock */
	int stopping;                 /* lock */
	int failed;                   /* lock: a create failed, no more spares */
	unsigned char slot[SPARES];   /* lock: SLOT_* */
};

static void spare_path(const struct content_cache *cc, int i, char *path, size_t size)
{
	snprintf(path, size, "%s/spare-%d", cc->dir, i);
}

static void *spare_main(void *arg)
{
	struct content_cache *cc = arg;
	struct content_spares *sp = cc->spares;
	char path[4096];
	int i, fd;

	pthread_mutex_lock(&sp->lock);
	for (;;) {
		for (i = 0; i < SPARES && sp->slot[i] != SLOT_EMPTY; i++)
			;
		if (sp->stopping)
			break;
		if (i == SPARES) {
			pthread_cond_wait(&sp->want, &sp->lock);
			continue;
		}
		pthread_mutex_unlock(&sp->lock);
		spare_path(cc, i, path, sizeof(path));
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
		pthread_mutex_lock(&sp->lock);
		if (fd < 0) {
			sp->failed = 1;   /* creates go the direct way, which reports the error */
			break;
		}
		sp->slot[i] = SLOT_READY;
	}
	pthread_mutex_unlock(&sp->lock);
	return NULL;
}

int content_spare_init(struct content_cache *cc)
{
	char path[4096];
	int i;

	cc->spares = calloc(1, sizeof(*cc->spares));
	if (!cc->spares)
		return -ENOMEM;
	pthread_mutex_init(&cc->spares->lock, NULL);
	pthread_cond_init(&cc->spares->want, NULL);
	for (i = 0; i < SPARES; i++) {
		spare_path(cc, i, path, sizeof(path));
		unlink(path);   /* left by a kill */
	}
	return 0;
}

int content_spare_take(struct content_cache *cc, const char *path)
{
	struct content_spares *sp = cc->spares;
	char from[4096];
	int i, rc = -ENOENT;

	if (!sp)
		return -ENOENT;
	pthread_mutex_lock(&sp->lock);
	if (!sp->started && !sp->stopping && !sp->failed) {
		sp->started = pthread_create(&sp->thread, NULL, spare_main, cc) == 0;
		if (!sp->started)
			sp->failed = 1;
	}
	for (i = 0; i < SPARES && sp->slot[i] != SLOT_READY; i++)
		;
	if (i < SPARES)
		sp->slot[i] = SLOT_TAKEN;
	pthread_mutex_unlock(&sp->lock);
	if (i == SPARES)
		return -ENOENT;
	spare_path(cc, i, from, sizeof(from));
	if (rename(from, path) == 0)
		rc = 0;
	pthread_mutex_lock(&sp->lock);
	sp->slot[i] = SLOT_EMPTY;
	pthread_cond_signal(&sp->want);
	pthread_mutex_unlock(&sp->lock);
	return rc;
}

void content_spare_stop(struct content_cache *cc)
{
	struct content_spares *sp = cc->spares;
	char path[4096];
	int i;

	if (!sp)
		return;
	pthread_mutex_lock(&sp->lock);
	sp->stopping = 1;
	pthread_cond_broadcast(&sp->want);
	pthread_mutex_unlock(&sp->lock);
	if (sp->started)
		pthread_join(sp->thread, NULL);
	for (i = 0; i < SPARES; i++) {
		spare_path(cc, i, path, sizeof(path));
		unlink(path);
	}
	pthread_cond_destroy(&sp->want);
	pthread_mutex_destroy(&sp->lock);
	free(sp);
	cc->spares = NULL;
}
