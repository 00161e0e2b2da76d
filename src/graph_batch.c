/*
 * graph_batch.c - time PATCHes gathered into JSON batches (graph.h,
 * graph_set_times; graph-notes §14 "JSON batching").
 *
 * A caller's PATCH joins a list of waiting ones.  While fewer than
 * BATCH_SENDERS batches are on the way, a caller whose PATCH still waits
 * takes every waiting PATCH (up to BATCH_MAX, oldest first, its own among
 * them unless more wait) and sends them as one POST $batch; callers whose
 * PATCH another thread took wait for that answer.  Nothing waits for
 * companions on a timer: a PATCH waits at most for the batches already on
 * the way.  One PATCH alone goes as the single request.
 *
 * Each answer inside the batch is handled as the single request's answer
 * would be (statuses mapped as graph_update_item() maps them, the item
 * taken from the body).  A throttled (429, 503) or failing (5xx) one is
 * sent again, alone or with the others that failed so, after its
 * Retry-After, up to cfg->max_retries times; a 401 inside is sent again
 * as a single request (which refreshes the token).  When the service
 * refuses $batch itself (400, 404, 405, 501) or answers with something
 * that is not a batch answer, the PATCHes go as single requests, and so
 * does every later one (logged once).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "config.h"
#include "errmap.h"
#include "graph.h"
#include "graph_internal.h"
#include "http.h"
#include "log.h"

#define BATCH_MAX 20              /* requests in one batch (the service's limit) */
#define BATCH_SENDERS 2           /* batches on the way at once */
#define BATCH_RETRY_FIRST 1.0     /* seconds before a throttled PATCH without Retry-After */
#define BATCH_RETRY_CAP 300.0     /* as http.c caps Retry-After */

struct graph_times_req {
	const char *item_id;
	const struct timespec *mtime, *crtime;
	const char *if_match;
	int taken, done;
	int rc;                        /* 0 or -errno */
	struct drive_item *out;        /* the caller's, or NULL */
	char *err;
	int retry;                     /* answered 429/5xx: send again */
	int single;                    /* answered 401: send again alone */
	double retry_after;            /* seconds, -1 when absent */
	struct graph_times_req *next;
};

static void send_single(struct graph *g, struct graph_times_req *r)
{
	free(r->err);
	r->err = NULL;
	r->rc = graph_update_item(g, r->item_id, NULL, NULL, r->mtime, r->crtime, r->if_match, r->out,
				  &r->err);
}

/* "{graph_url}/x" -> "/x": a batch request's url is relative to the version root. */
static const char *relative_url(const struct graph *g, const char *url)
{
	size_t n = strlen(g->cfg->graph_url);

	return strncmp(url, g->cfg->graph_url, n) == 0 && url[n] == '/' ? url + n : NULL;
}

/* The $batch body for reqs[0..n); NULL on ENOMEM. */
static char *batch_body(struct graph *g, struct graph_times_req **reqs, size_t n)
{
	json_t *doc, *list, *one, *hdrs, *body;
	char id[24], *url, *text = NULL;
	const char *rel;
	size_t i;

	doc = json_object();
	list = json_array();
	if (!doc || !list || json_object_set(doc, "requests", list) < 0)
		goto out_free;
	for (i = 0; i < n; i++) {
		url = graph_item_url(g, "/items/", reqs[i]->item_id, "");
		rel = url ? relative_url(g, url) : NULL;
		snprintf(id, sizeof(id), "%zu", i + 1);
		hdrs = json_pack("{s:s}", "Content-Type", "application/json");
		if (hdrs && reqs[i]->if_match &&
		    json_object_set_new(hdrs, "If-Match", json_string(reqs[i]->if_match)) < 0) {
			json_decref(hdrs);
			hdrs = NULL;
		}
		body = json_pack("{s:o}", "fileSystemInfo",
				 graph_fs_info_json(reqs[i]->mtime, reqs[i]->crtime));
		one = rel && hdrs && body ?
			json_pack("{s:s, s:s, s:s, s:o, s:o}", "id", id, "method", "PATCH", "url", rel,
				  "headers", hdrs, "body", body) : NULL;
		free(url);
		if (!one) {
			if (!rel || !hdrs || !body) {
				json_decref(hdrs);
				json_decref(body);
			}
			goto out_free;
		}
		if (json_array_append_new(list, one) < 0)
			goto out_free;
	}
	text = json_dumps(doc, JSON_COMPACT);
out_free:
	json_decref(list);
	json_decref(doc);
	return text;
}

/* Retry-After of one answer's headers (any case), seconds or -1. */
static double answer_retry_after(json_t *headers)
{
	const char *key, *s;
	json_t *v;
	char *end;
	double d;

	json_object_foreach(headers, key, v) {
		if (strcasecmp(key, "Retry-After") != 0)
			continue;
		s = json_is_string(v) ? json_string_value(v) : NULL;
		if (!s)
			return -1;
		errno = 0;
		d = strtod(s, &end);
		if (errno || end == s || *end || !isfinite(d) || d < 0)
			return -1;
		return d > BATCH_RETRY_CAP ? BATCH_RETRY_CAP : d;
	}
	return -1;
}

/* One answer of the batch, as the single PATCH's answer would be handled. */
static void take_answer(struct graph_times_req *r, long status, json_t *headers, json_t *body)
{
	struct http_response resp;
	struct drive_item item;
	char what[320];
	int rc;

	snprintf(what, sizeof(what), "cannot update '%s'", r->item_id);
	free(r->err);
	r->err = NULL;
	if (status == 200 || status == 201) {
		memset(&item, 0, sizeof(item));
		rc = json_is_object(body) ? graph_parse_item_json(body, &item) : -EIO;
		if (rc == -EIO)
			graph_set_err(&r->err, graph_xprintf("%s: the service sent an invalid item", what));
		else if (rc < 0)
			graph_fail_errno(&r->err, what, rc);
		if (rc == 0 && r->out)
			*r->out = item;
		else if (rc == 0)
			drive_item_release(&item);
		r->rc = rc;
		return;
	}
	if (status == 401) {
		r->single = 1;
		return;
	}
	memset(&resp, 0, sizeof(resp));
	resp.status = status;
	resp.content_length = -1;
	resp.retry_after = answer_retry_after(headers);
	resp.body = body ? json_dumps(body, JSON_COMPACT) : NULL;
	resp.body_len = resp.body ? strlen(resp.body) : 0;
	rc = graph_fail_response(&r->err, what, &resp);
	free(resp.body);
	switch (status) {
	case 409: rc = -EEXIST; break;
	case 412: rc = -ESTALE; break;
	case 507: rc = -ENOSPC; break;
	case 429: case 500: case 502: case 503: case 504: case 509:
		r->retry = 1;
		r->retry_after = resp.retry_after;
		break;
	default: break;
	}
	r->rc = rc;
}

/* The answers of a 200 batch; -EPROTO when it is not a batch answer for reqs. */
static int take_answers(struct graph_times_req **reqs, size_t n, const struct http_response *resp)
{
	json_t *doc, *list, *one, *v;
	const char *id;
	char *end;
	size_t i, answered = 0;
	unsigned char *seen;
	long k;
	int rc = -EPROTO;

	seen = calloc(n, 1);
	doc = resp->body ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
	list = json_object_get(doc, "responses");
	if (!seen || !json_is_array(list))
		goto out_free;
	/* check all first: a broken answer changes nothing */
	json_array_foreach(list, i, one) {
		id = json_string_value(json_object_get(one, "id"));
		v = json_object_get(one, "status");
		if (!id || !json_is_integer(v))
			goto out_free;
		errno = 0;
		k = strtol(id, &end, 10);
		if (errno || *end || k < 1 || (size_t)k > n || seen[k - 1])
			goto out_free;
		seen[k - 1] = 1;
		answered++;
	}
	if (answered != n)
		goto out_free;
	json_array_foreach(list, i, one) {
		k = strtol(json_string_value(json_object_get(one, "id")), NULL, 10);
		take_answer(reqs[k - 1], (long)json_integer_value(json_object_get(one, "status")),
			    json_object_get(one, "headers"), json_object_get(one, "body"));
	}
	rc = 0;
out_free:
	json_decref(doc);
	free(seen);
	return rc;
}

/* The service does not batch: say so once, and send single requests from now on. */
static void batch_refused(struct graph *g, long status)
{
	int first;

	pthread_mutex_lock(&g->batch_lock);
	first = !g->no_batch;
	g->no_batch = 1;
	pthread_mutex_unlock(&g->batch_lock);
	if (first && status)
		log_info("the service does not take JSON batches (%ld): times are set one request "
			 "at a time", status);
	else if (first)
		log_info("the service answered a JSON batch with something else: times are set one "
			 "request at a time");
}

static int batching_off(struct graph *g)
{
	int off;

	pthread_mutex_lock(&g->batch_lock);
	off = g->no_batch;
	pthread_mutex_unlock(&g->batch_lock);
	return off;
}

/* POST one $batch for reqs[0..n) (2 <= n <= BATCH_MAX); fills each rc/out/err. */
static void send_batch(struct graph *g, struct graph_times_req **reqs, size_t n)
{
	struct http_request req;
	struct http_response resp;
	char *url, *text, *err = NULL;
	const char *what = "cannot set the times of several files";
	size_t i;
	int rc;

	url = graph_xprintf("%s/$batch", g->cfg->graph_url);
	text = batch_body(g, reqs, n);
	if (!url || !text) {
		for (i = 0; i < n; i++) {
			free(reqs[i]->err);
			reqs[i]->err = NULL;
			reqs[i]->rc = graph_fail_errno(&reqs[i]->err, what, -ENOMEM);
		}
		goto out_free;
	}
	http_request_init(&req, "POST", url);
	req.content_type = "application/json";
	req.body = text;
	req.body_len = strlen(text);
	req.max_body = GRAPH_MAX_PAGE;
	rc = graph_call(g, &req, &resp, what, &err);
	if (rc == 0 && resp.status == 200 && take_answers(reqs, n, &resp) == 0)
		goto out_release;
	if (rc == 0 && (resp.status == 200 || resp.status == 400 || resp.status == 404 ||
			resp.status == 405 || resp.status == 501)) {
		batch_refused(g, resp.status == 200 ? 0 : resp.status);
		for (i = 0; i < n; i++)
			send_single(g, reqs[i]);
		goto out_release;
	}
	if (rc == 0)
		rc = graph_fail_response(&err, what, &resp);
	for (i = 0; i < n; i++) {
		free(reqs[i]->err);
		reqs[i]->err = err ? strdup(err) : NULL;
		reqs[i]->rc = rc;
	}
out_release:
	http_response_release(&resp);
out_free:
	free(err);
	free(text);
	free(url);
}

/* Send reqs[0..n): as a batch when there are several, again for those throttled. */
static void send_times(struct graph *g, struct graph_times_req **taken, size_t n)
{
	struct graph_times_req *reqs[BATCH_MAX];   /* the caller marks all of taken done */
	double wait;
	size_t i, k;
	long tries;

	memcpy(reqs, taken, n * sizeof(*reqs));
	for (tries = 0;; tries++) {
		if (n == 1 || batching_off(g)) {
			for (i = 0; i < n; i++)
				send_single(g, reqs[i]);
			return;
		}
		for (i = 0; i < n; i++)
			reqs[i]->retry = reqs[i]->single = 0;
		send_batch(g, reqs, n);
		wait = 0;
		for (i = k = 0; i < n; i++) {
			if (reqs[i]->single)
				send_single(g, reqs[i]);
			else if (reqs[i]->retry && tries < g->cfg->max_retries)
				reqs[k++] = reqs[i];
		}
		if (k == 0)
			return;
		for (i = 0; i < k; i++) {
			double ra = reqs[i]->retry_after >= 0 ? reqs[i]->retry_after : BATCH_RETRY_FIRST;

			if (ra > wait)
				wait = ra;
		}
		/* as for a single request: every thread pauses, not only this one */
		if (http_pause(g->http, wait))
			log_info("the service is throttling requests (inside a batch): pausing all "
				 "requests for %.1f s", wait);
		else
			log_debug("%zu of %zu time updates were throttled: sending them again in %.1f s",
				  k, n, wait);
		if (http_sleep(wait) < 0) {
			for (i = 0; i < k; i++) {
				free(reqs[i]->err);
				reqs[i]->err = NULL;
				reqs[i]->rc = graph_fail_errno(&reqs[i]->err, "cannot set the time of an item",
							       -ECANCELED);
			}
			return;
		}
		n = k;
	}
}

/* 1 if batch[0..n) holds a request for item_id. */
static int in_batch(struct graph_times_req **batch, size_t n, const char *item_id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(batch[i]->item_id, item_id) == 0)
			return 1;
	return 0;
}

/*
 * Take what waits now into batch, oldest first, up to BATCH_MAX.  A second
 * PATCH of an item already taken stays for the next batch: the service
 * runs the requests of one batch in no particular order, so the older
 * could win.  g->batch_lock held.
 */
static size_t take_pending(struct graph *g, struct graph_times_req **batch)
{
	struct graph_times_req **pp = &g->pending, *r, *last = NULL;
	size_t n = 0;

	while ((r = *pp) && n < BATCH_MAX) {
		if (in_batch(batch, n, r->item_id)) {
			last = r;
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		r->next = NULL;
		r->taken = 1;
		batch[n++] = r;
	}
	/* the tail is the last request left in the list */
	if (!g->pending) {
		g->pending_tail = NULL;
	} else if (!*pp) {
		g->pending_tail = last;
	}
	return n;
}

int graph_set_times(struct graph *g, const char *item_id, const struct timespec *mtime,
		    const struct timespec *crtime, const char *if_match,
		    struct drive_item *out, char **err)
{
	struct graph_times_req self, *batch[BATCH_MAX];
	size_t n;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!mtime)
		return graph_update_item(g, item_id, NULL, NULL, NULL, crtime, if_match, out, err);
	memset(&self, 0, sizeof(self));
	self.item_id = item_id;
	self.mtime = mtime;
	self.crtime = crtime;
	self.if_match = if_match;
	self.out = out;
	pthread_mutex_lock(&g->batch_lock);
	if (g->pending_tail)
		g->pending_tail->next = &self;
	else
		g->pending = &self;
	g->pending_tail = &self;
	while (!self.done) {
		if (self.taken || g->senders >= BATCH_SENDERS) {
			pthread_cond_wait(&g->batch_done, &g->batch_lock);
			continue;
		}
		n = take_pending(g, batch);
		g->senders++;
		pthread_mutex_unlock(&g->batch_lock);
		send_times(g, batch, n);
		pthread_mutex_lock(&g->batch_lock);
		g->senders--;
		for (size_t i = 0; i < n; i++)
			batch[i]->done = 1;
		pthread_cond_broadcast(&g->batch_done);
	}
	pthread_mutex_unlock(&g->batch_lock);
	if (self.rc < 0 && err) {
		free(*err);
		*err = self.err;
		self.err = NULL;
	}
	free(self.err);
	return self.rc;
}
