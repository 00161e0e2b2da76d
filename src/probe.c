/*
 * probe.c - the thread that notices the service is back (see probe.h).
 *
 * DESIGN: one loop.  Online, it waits on the condvar until probe_wake()
 * or probe_stop().  Offline, it waits the current delay (1 s, doubling up
 * to offline_probe) and sends one probe; the HTTP client itself decides
 * what an answer means, so the state changes in exactly one place.  The
 * probe runs with a cancel hook (http_set_thread_cancel), so an unmount
 * does not wait for a connect_timeout.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "config.h"
#include "graph.h"
#include "http.h"
#include "log.h"
#include "probe.h"

#define PROBE_FIRST 1          /* seconds before the first probe */
#define PROBE_MAX_DEFAULT 15

struct probe {
	const struct odfs_config *cfg;  /* borrowed */
	struct graph *graph;            /* borrowed */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;            /* lock: wake-ups and stop */
	int running;                    /* lock: the thread exists */
	int stop;                       /* lock */
	int woken;                      /* lock: probe_wake() since the last look */
	atomic_int cancel;              /* stop asked: cut a probe in flight short */
};

int probe_open(const struct odfs_config *cfg, struct graph *g, struct probe **out)
{
	struct probe *p = calloc(1, sizeof(*p));
	pthread_condattr_t ca;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->cfg = cfg;
	p->graph = g;
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&p->cancel, 0);
	*out = p;
	return 0;
}

void probe_close(struct probe *p)
{
	if (!p)
		return;
	probe_stop(p);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static int cancelled(void *ctx)
{
	struct probe *p = ctx;

	return atomic_load(&p->cancel);
}

/* Wait up to seconds (0: until woken) for a wake-up or stop.  Lock held; 1 when stopping. */
static int wait_locked(struct probe *p, long seconds)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += seconds;
	while (!p->stop && !p->woken) {
		if (!seconds)
			pthread_cond_wait(&p->cond, &p->lock);
		else if (pthread_cond_timedwait(&p->cond, &p->lock, &until) == ETIMEDOUT)
			break;
	}
	p->woken = 0;
	return p->stop;
}

static void *probe_main(void *arg)
{
	struct probe *p = arg;
	long max = p->cfg->offline_probe > 0 ? p->cfg->offline_probe : PROBE_MAX_DEFAULT;
	long delay = PROBE_FIRST;
	int rc;

	http_set_thread_cancel(cancelled, p);
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		if (!graph_offline_since(p->graph)) {
			/* online: nothing to do until someone says the state changed */
			delay = PROBE_FIRST;
			wait_locked(p, 0);
			continue;
		}
		if (wait_locked(p, delay))
			break;
		if (!graph_offline_since(p->graph))
			continue;
		pthread_mutex_unlock(&p->lock);
		rc = graph_probe(p->graph);
		log_debug("probe: %s", rc == 0 ? "the service answered" : "no answer");
		pthread_mutex_lock(&p->lock);
		delay = delay * 2 > max ? max : delay * 2;
	}
	pthread_mutex_unlock(&p->lock);
	http_set_thread_cancel(NULL, NULL);
	return NULL;
}

int probe_start(struct probe *p)
{
	int rc;

	pthread_mutex_lock(&p->lock);
	if (p->running) {
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	p->stop = 0;
	p->woken = 0;
	atomic_store(&p->cancel, 0);
	rc = pthread_create(&p->thread, NULL, probe_main, p);
	p->running = rc == 0;
	pthread_mutex_unlock(&p->lock);
	return -rc;
}

void probe_wake(struct probe *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->woken = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void probe_stop(struct probe *p)
{
	int running;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	running = p->running;
	p->stop = 1;
	atomic_store(&p->cancel, 1);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (running)
		pthread_join(p->thread, NULL);
	pthread_mutex_lock(&p->lock);
	p->running = 0;
	pthread_mutex_unlock(&p->lock);
}
