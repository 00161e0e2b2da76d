/*
 * probe.h - the way back online: while the service cannot be reached, one
 * thread asks it with one cheap request (graph_probe) after 1 s, then 2,
 * 4, ... up to cfg->offline_probe seconds between tries.  The first answer
 * makes the HTTP client online again (and its state hook fires).  While
 * online the thread sleeps on a condition variable: no traffic at all.
 *
 * Whoever sees a change of connectivity calls probe_wake() (main.c does,
 * from the HTTP client's state hook).  All functions are thread-safe.
 */
#ifndef ODFS_PROBE_H
#define ODFS_PROBE_H

struct odfs_config;
struct graph;
struct probe;

/* Borrows cfg and g (they must outlive it); starts no thread.  0 or -ENOMEM. */
int probe_open(const struct odfs_config *cfg, struct graph *g, struct probe **out);

/* Start the thread (after daemonizing).  0 or -errno. */
int probe_start(struct probe *p);

/* Connectivity changed (either way): look at it again now.  Never blocks for long. */
void probe_wake(struct probe *p);

/* Stop the thread promptly (a probe in flight is cancelled); idempotent. */
void probe_stop(struct probe *p);

/* Stops if needed and frees; NULL is fine. */
void probe_close(struct probe *p);

#endif
