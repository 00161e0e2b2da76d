/*
 * delta.c - the remote-change thread (see delta.h).
 *
 * DESIGN
 * One thread, one loop: run a round, then sleep on a condvar until
 * poll_interval passes, delta_wake() asks for an early round, or
 * delta_stop() ends it.  A round collects every page first (graph_delta),
 * drops duplicates (the last occurrence of an id wins), and hands the
 * items to cache_apply_remote_changes(), which orders parents before
 * children, keeps local edits, and returns what changed.  Only after the
 * transaction (and with no lock of ours held) does the thread invalidate
 * the kernel's entries and inodes and drop stale cached bytes: a FUSE
 * operation may hold the kernel's directory lock while it waits for the
 * cache, and notify_inval_entry needs that same lock.
 *
 * A round without a stored link is a full enumeration (first mount, or the
 * service's 410 asking for a resync): the cache keeps what the round names
 * and drops clean items it does not; every folder then counts as listed.
 * "ready" is set before the kernel is notified, because an operation
 * waiting in delta_wait_ready() may hold a directory lock the notification
 * needs.
 *
 * struct delta's lock protects the fields marked "lock"; progress is
 * atomic so that collecting items costs no lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include "cache.h"
#include "config.h"
#include "content.h"
#include "delta.h"
#include "graph.h"
#include "log.h"

#define META_DELTA_LINK "delta_link"
#define META_DELTA_COMPLETE "delta_complete"

struct delta {
	const struct odfs_config *cfg;     /* borrowed */
	struct graph *graph;               /* borrowed */
	struct cache *cache;               /* borrowed */
	struct content_cache *content;     /* borrowed */
	struct fuse_session *se;           /* set before the thread starts */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;               /* lock: wake-ups, stop, ready, failed */
	int running;                       /* lock: the thread exists */
	int stop;                          /* lock */
	int wake;                          /* lock: an early round was asked for */
	int ready;                         /* lock: the cache holds a complete enumeration */
	int failed;                        /* lock: the last round failed before ready */
	struct timespec round_at;          /* lock: CLOCK_MONOTONIC start of the last round */
	atomic_uint_fast64_t progress;     /* items received, for delta_wait_ready */
	delta_hold_fn hold;                /* set before start, then read-only */
	void *hold_ctx;
	atomic_int abandon;                /* stop asked: leave the round between pages */
};

/* The items of one round, as received. */
struct round {
	struct delta *d;
	struct drive_item *items;
	size_t n, cap;
};

static void now_mono(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

/* ---- handle ------------------------------------------------------------ */

int delta_open(const struct odfs_config *cfg, struct graph *g, struct cache *cache,
	       struct content_cache *content, struct delta **out)
{
	struct delta *d = calloc(1, sizeof(*d));
	pthread_condattr_t ca;

	*out = NULL;
	if (!d)
		return -ENOMEM;
	d->cfg = cfg;
	d->graph = g;
	d->cache = cache;
	d->content = content;
	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cond, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&d->progress, 0);
	atomic_init(&d->abandon, 0);
	*out = d;
	return 0;
}

void delta_close(struct delta *d)
{
	if (!d)
		return;
	delta_stop(d);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/* ---- one round ----------------------------------------------------------- */

static int collect_item(void *vctx, struct drive_item *item)
{
	struct round *r = vctx;

	if (atomic_load(&r->d->abandon))
		return -ECANCELED;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 256;
		struct drive_item *more = realloc(r->items, cap * sizeof(*more));

		if (!more)
			return -ENOMEM;
		r->items = more;
		r->cap = cap;
	}
	/* Steal every field: graph_delta releases an empty item. */
	r->items[r->n++] = *item;
	memset(item, 0, sizeof(*item));
	atomic_fetch_add(&r->d->progress, 1);
	return 0;
}

static void round_release(struct round *r)
{
	for (size_t i = 0; i < r->n; i++)
		drive_item_release(&r->items[i]);
	free(r->items);
	memset(r, 0, sizeof(*r));
}

static const struct drive_item *sort_items;   /* only during qsort, under dedupe_lock */
static pthread_mutex_t dedupe_lock = PTHREAD_MUTEX_INITIALIZER;

/* By id, then by position: the last of equal ids comes last. */
static int compare_pos(const void *a, const void *b)
{
	size_t ia = *(const size_t *)a, ib = *(const size_t *)b;
	int c = strcmp(sort_items[ia].id, sort_items[ib].id);

	if (c)
		return c;
	return ia < ib ? -1 : ia > ib;
}

/*
 * The same item can come more than once in a round, within a page or
 * across pages: keep its last occurrence (its latest state), in place, and
 * keep the round's order otherwise.
 */
static int dedupe(struct round *r)
{
	size_t *pos, i, out;
	char *drop;

	if (r->n < 2)
		return 0;
	pos = malloc(r->n * sizeof(*pos));
	drop = calloc(r->n, 1);
	if (!pos || !drop) {
		free(pos);
		free(drop);
		return -ENOMEM;
	}
	for (i = 0; i < r->n; i++)
		pos[i] = i;
	pthread_mutex_lock(&dedupe_lock);
	sort_items = r->items;
	qsort(pos, r->n, sizeof(*pos), compare_pos);
	sort_items = NULL;
	pthread_mutex_unlock(&dedupe_lock);
	for (i = 0; i + 1 < r->n; i++)
		if (strcmp(r->items[pos[i]].id, r->items[pos[i + 1]].id) == 0)
			drop[pos[i]] = 1;
	for (i = 0, out = 0; i < r->n; i++) {
		if (drop[i]) {
			drive_item_release(&r->items[i]);
			continue;
		}
		r->items[out++] = r->items[i];
	}
	if (out < r->n)
		log_debug("delta: %zu duplicate items in one round, keeping the last of each",
			  r->n - out);
	r->n = out;
	free(pos);
	free(drop);
	return 0;
}

static void set_ready(struct delta *d)
{
	pthread_mutex_lock(&d->lock);
	d->ready = 1;
	d->failed = 0;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

static int same_name(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static void inval_entry(struct fuse_session *se, uint64_t parent, const char *name)
{
	int rc = fuse_lowlevel_notify_inval_entry(se, parent, name, strlen(name));

	/* -ENOENT: the kernel never looked it up, nothing to forget */
	if (rc < 0 && rc != -ENOENT)
		log_debug("delta: cannot invalidate entry '%s' in inode %llu: %d", name,
			  (unsigned long long)parent, rc);
}

static void inval_inode(struct fuse_session *se, uint64_t ino, int content)
{
	/* offset -1: attributes only; 0 with length 0: attributes and every cached page */
	int rc = fuse_lowlevel_notify_inval_inode(se, ino, content ? 0 : -1, 0);

	if (rc < 0 && rc != -ENOENT)
		log_debug("delta: cannot invalidate inode %llu: %d", (unsigned long long)ino, rc);
}

/*
 * Tell the kernel and the content cache what a round changed.  Runs with
 * no lock held: the kernel may need a directory lock that a FUSE operation
 * holds while it waits for the cache.
 */
static void notify_changes(struct delta *d, const struct cache_change *ch, size_t n)
{
	struct fuse_session *se = d->se;

	for (size_t i = 0; i < n; i++) {
		const struct cache_change *c = &ch[i];
		int moved = c->old_name && c->new_name &&
			    (c->old_parent != c->new_parent || !same_name(c->old_name, c->new_name));

		if (c->content_changed || (!c->new_name && !c->is_dir))
			content_invalidate(d->content, c->id);
		if (!se)
			continue;
		if (c->old_name && (!c->new_name || moved))
			inval_entry(se, c->old_parent, c->old_name);
		/* a new name may sit in the kernel as a negative entry */
		if (c->new_name && (!c->old_name || moved))
			inval_entry(se, c->new_parent, c->new_name);
		if (c->new_name && c->old_name)
			inval_inode(se, c->ino, c->content_changed);
	}
}

/*
 * Fetch and apply one round starting at *link (NULL: full enumeration).
 * On success *link becomes the next round's link; on failure *err may
 * hold a message (caller frees).
 */
static int run_round(struct delta *d, char **link, char **err)
{
	struct round r = { .d = d };
	struct cache_change *changes = NULL;
	struct cache_snapshot *before = NULL;
	size_t nchanges = 0;
	char *next = NULL;
	int full = *link == NULL, rc;

	/* what the cache held before the service was asked: local news since wins */
	rc = cache_snapshot_take(d->cache, &before);
	if (rc < 0)
		return rc;
	rc = graph_delta(d->graph, *link, collect_item, &r, &next, err);
	if (rc < 0)
		goto out_release;
	rc = dedupe(&r);
	if (rc < 0)
		goto out_release;
	rc = cache_apply_remote_changes(d->cache, r.items, r.n,
					full ? CACHE_APPLY_COMPLETE : 0, (int64_t)time(NULL),
					before, &changes, &nchanges);
	if (rc < 0)
		goto out_release;
	/* The link last: a crash before it replays the round, which is harmless. */
	rc = cache_meta_set(d->cache, META_DELTA_LINK, next);
	if (rc == 0 && full)
		rc = cache_meta_set(d->cache, META_DELTA_COMPLETE, "1");
	if (rc < 0)
		goto out_free_changes;
	atomic_fetch_add(&d->progress, 1);
	if (full || nchanges)
		log_debug("delta: %s of %zu items, %zu changes",
			  full ? "full enumeration" : "round", r.n, nchanges);
	set_ready(d);
	notify_changes(d, changes, nchanges);
	free(*link);
	*link = next;
	next = NULL;
out_free_changes:
	cache_changes_free(changes, nchanges);
out_release:
	cache_snapshot_free(before);
	round_release(&r);
	free(next);
	return rc;
}

/* The stored link, if the cache holds a complete enumeration made with it. */
static char *stored_link(struct delta *d)
{
	char *link = NULL, *complete = NULL;

	if (cache_meta_get(d->cache, META_DELTA_COMPLETE, &complete) == 0 &&
	    strcmp(complete, "1") == 0 &&
	    cache_meta_get(d->cache, META_DELTA_LINK, &link) == 0 && !*link) {
		free(link);
		link = NULL;
	}
	free(complete);
	return link;
}

/* Sleep until the next round is due, asked for, or stop.  1 when stopping. */
static int wait_for_round(struct delta *d)
{
	struct timespec until;
	int stop;

	pthread_mutex_lock(&d->lock);
	until = d->round_at;
	until.tv_sec += d->cfg->poll_interval;
	while (!d->stop && !d->wake &&
	       pthread_cond_timedwait(&d->cond, &d->lock, &until) != ETIMEDOUT)
		;
	d->wake = 0;
	stop = d->stop;
	if (!stop)
		now_mono(&d->round_at);
	pthread_mutex_unlock(&d->lock);
	return stop;
}

static void *delta_main(void *arg)
{
	struct delta *d = arg;
	char *link = stored_link(d), *err = NULL, ebuf[128];
	int rc, failing = 0;

	if (link)
		set_ready(d);   /* a remount: the cache is complete, the round brings news */
	do {
		if (d->hold && d->hold(d->hold_ctx)) {
			log_debug("delta: changes made offline go first; round skipped");
			continue;
		}
		rc = run_round(d, &link, &err);
		if (rc == -ESTALE) {
			/* 410: the link is no good; local edits survive a full enumeration */
			log_info("the service asked for a full resync of the drive: reading it again");
			free(err);
			err = NULL;
			free(link);
			link = NULL;
			rc = run_round(d, &link, &err);
		}
		if (rc < 0 && rc != -ECANCELED) {
			/* once per spell of failures; the next success says so.  Offline,
			 * the client's one "offline since" line says it all. */
			if (!failing && !graph_offline_since(d->graph)) {
				log_warnx("%s; trying again in %ld seconds",
					  err ? err : log_errstr(rc, ebuf, sizeof(ebuf)),
					  (long)d->cfg->poll_interval);
				failing = 1;
			} else {
				log_debug("delta: %s", err ? err : log_errstr(rc, ebuf, sizeof(ebuf)));
			}
			pthread_mutex_lock(&d->lock);
			if (!d->ready) {
				d->failed = 1;   /* waiters list folders themselves meanwhile */
				pthread_cond_broadcast(&d->cond);
			}
			pthread_mutex_unlock(&d->lock);
		} else if (rc == 0 && failing) {
			log_info("following the changes of the drive again");
			failing = 0;
		}
		free(err);
		err = NULL;
	} while (!wait_for_round(d));
	free(link);
	return NULL;
}

/* ---- API ----------------------------------------------------------------- */

void delta_set_hold(struct delta *d, delta_hold_fn fn, void *ctx)
{
	if (!d)
		return;
	d->hold = fn;
	d->hold_ctx = ctx;
}

int delta_start(struct delta *d, struct fuse_session *se)
{
	int rc;

	pthread_mutex_lock(&d->lock);
	if (d->running) {
		pthread_mutex_unlock(&d->lock);
		return 0;
	}
	d->se = se;
	d->stop = 0;
	atomic_store(&d->abandon, 0);
	now_mono(&d->round_at);
	rc = pthread_create(&d->thread, NULL, delta_main, d);
	d->running = rc == 0;
	pthread_mutex_unlock(&d->lock);
	return -rc;
}

void delta_stop(struct delta *d)
{
	int running;

	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	running = d->running;
	d->stop = 1;
	atomic_store(&d->abandon, 1);
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
	if (running)
		pthread_join(d->thread, NULL);
	pthread_mutex_lock(&d->lock);
	d->running = 0;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

void delta_wake(struct delta *d, long min_age)
{
	struct timespec now;

	if (min_age < 1)
		min_age = 1;
	now_mono(&now);
	pthread_mutex_lock(&d->lock);
	if (d->running && !d->wake && now.tv_sec - d->round_at.tv_sec >= min_age) {
		d->wake = 1;
		pthread_cond_broadcast(&d->cond);
	}
	pthread_mutex_unlock(&d->lock);
}

void delta_kick(struct delta *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&d->lock);
	if (d->running) {
		d->wake = 1;
		pthread_cond_broadcast(&d->cond);
	}
	pthread_mutex_unlock(&d->lock);
}

int delta_wait_ready(struct delta *d, int timeout_ms)
{
	struct timespec until;
	uint_fast64_t seen;
	int rc = 0;

	pthread_mutex_lock(&d->lock);
	for (;;) {
		if (d->ready) {
			rc = 0;
			break;
		}
		if (!d->running || d->stop || d->failed) {
			rc = -EAGAIN;
			break;
		}
		seen = atomic_load(&d->progress);
		now_mono(&until);
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!d->ready && d->running && !d->stop && !d->failed &&
		       pthread_cond_timedwait(&d->cond, &d->lock, &until) != ETIMEDOUT)
			;
		/* Timed out: give up only if no page came in meanwhile. */
		if (!d->ready && d->running && !d->stop && !d->failed &&
		    atomic_load(&d->progress) == seen) {
			rc = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}
