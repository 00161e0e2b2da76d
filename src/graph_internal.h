/*
 * graph_internal.h - what graph.c shares with graph_write.c, and nobody else.
 *
 * The handle and the request helpers behind graph.h: item ids and URLs, the
 * authorized call (one token refresh on 401), error messages and driveItem
 * parsing.  Not part of any API: only the graph*.c files include it.
 */
#ifndef ODFS_GRAPH_INTERNAL_H
#define ODFS_GRAPH_INTERNAL_H

#include <pthread.h>
#include <jansson.h>

#include "graph.h"
#include "http.h"
#include "item.h"

#define GRAPH_MAX_PAGE (4u * 1024 * 1024)  /* one page of JSON */

struct graph {
	const struct odfs_config *cfg;  /* borrowed */
	struct http_client *http;       /* borrowed */
	struct auth *auth;              /* borrowed */
	char *origin;                   /* of graph_url: nextLinks must stay on it */
	pthread_mutex_t lock;           /* protects drive_url */
	char *drive_url;                /* {graph_url}/drives/{escaped id}; NULL until opened */

	/* graph_batch.c: time PATCHes waiting to be gathered into a $batch (graph.c sets up the lock) */
	pthread_mutex_t batch_lock;     /* protects the fields below */
	pthread_cond_t batch_done;      /* a batch was answered */
	struct graph_times_req *pending, *pending_tail;
	int senders;                    /* batches on the way */
	int no_batch;                   /* the service refused $batch: single requests */
};

/* {"createdDateTime","lastModifiedDateTime"}: both, so neither is reset (§5.3); graph_write.c. */
json_t *graph_fs_info_json(const struct timespec *mtime, const struct timespec *crtime);


/* malloc'd printf; NULL on ENOMEM. */
char *graph_xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Replace *err (if err is not NULL) with msg, which it takes over. */
void graph_set_err(char **err, char *msg);
/* "<what>: <text>" for a request that got no answer; returns rc. */
int graph_fail_errno(char **err, const char *what, int rc);
/* Map an unwanted answer to errno (errmap), with "<what>: code: message (status)". */
int graph_fail_response(char **err, const char *what, const struct http_response *resp);
/*
 * "{drive_url}{middle}{escaped id}{suffix}" (id may be NULL); malloc'd, NULL
 * when the drive is not open or on ENOMEM.
 */
char *graph_item_url(struct graph *g, const char *middle, const char *id, const char *suffix);
/*
 * Perform req with the access token; a 401 refreshes once and retries once
 * (so req must be replayable: a buffered body, not a source).  0 with resp
 * filled (release it whatever happens), or -errno with *err set.
 */
int graph_call(struct graph *g, struct http_request *req, struct http_response *resp,
	       const char *what, char **err);
/*
 * Item ids as the cache sees them: the service's id for an item of the
 * mounted drive, "remote:{driveId}:{itemId}" for one on another drive
 * (inside a shared folder added to "My files", or the shortcut itself).
 * Drive ids never contain ':'.  graph_item_url() addresses either form.
 */
#define GRAPH_REMOTE_PREFIX "remote:"
#define GRAPH_DRIVE_ID_MAX 256
/*
 * Split id: 0 for a plain id (*item = id, drive ""), 1 for a remote one
 * (drive filled, *item points into id), -EINVAL when malformed.
 */
int graph_split_id(const char *id, char *drive, size_t size, const char **item);
/* 1 when both ids are on the same drive (a move between drives is -EXDEV). */
int graph_same_drive(const char *a, const char *b);
/* Remember the mounted drive's id (graph_open_drive does it); items elsewhere are remote. */
void graph_set_home_drive(const char *drive_id);

/* GET url and parse a JSON object answer (200 only). */
int graph_get_json(struct graph *g, const char *url, json_t **out, const char *what, char **err);
/* Percent-encode one URL path segment (malloc'd, NULL on ENOMEM). */
char *graph_escape_segment(const char *s);
/* One drive JSON object; -EIO when it has no id. */
int graph_parse_drive_json(json_t *obj, struct drive_info *out);
/* One driveItem JSON object; -EIO when it is not a usable item. */
int graph_parse_item_json(json_t *obj, struct drive_item *out);

#endif
