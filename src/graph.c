/*
 * graph.c - Microsoft Graph requests and their JSON.
 *
 * Everything is addressed by id under one drive, found once by
 * graph_open_drive(): {graph_url}/drives/{drive-id}/items/{item-id}.  Ids
 * are opaque; each goes into the URL as one percent-encoded path segment.
 * Paging follows @odata.nextLink verbatim, and only while it stays on the
 * Graph origin, the one host that ever sees the access token.  Content comes
 * from pre-authenticated URLs fetched without Authorization.
 *
 * Shared folders added to "My files" (an item with a remoteItem facet) can
 * only be addressed on their owner's drive (graph-notes 3).  Such items, and
 * every item on another drive than the mounted one, get the id
 * "remote:{driveId}:{itemId}" (graph_internal.h), built here from the
 * JSON so that the cache and fs never learn about drives; graph_item_url()
 * turns it back into /drives/{driveId}/items/{itemId}.  The shortcut itself
 * takes its target's id: renaming or deleting it acts on the shared folder.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "auth.h"
#include "config.h"
#include "errmap.h"
#include "graph.h"
#include "graph_internal.h"
#include "http.h"
#include "log.h"
#include "util.h"

#define GRAPH_REFRESHES 2                  /* refreshes per call on 401 */
#define GRAPH_MAX_PAGES 100000             /* a nextLink loop must end */
#define GRAPH_MAX_REDIRECTS 5              /* download host hops */

/* ---- small helpers ---- */

char *graph_xprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(s = malloc((size_t)n + 1)))
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

void graph_set_err(char **err, char *msg)
{
	if (err) {
		free(*err);
		*err = msg;
	} else {
		free(msg);
	}
}

/* "<what>: <text>" for a request that got no answer; returns rc. */
int graph_fail_errno(char **err, const char *what, int rc)
{
	graph_set_err(err, graph_xprintf("%s: %s", what, errmap_strerror(rc)));
	return rc;
}

/* Map an unwanted answer to errno, with "<what>: code: message (status)". */
int graph_fail_response(char **err, const char *what, const struct http_response *resp)
{
	struct graph_error ge;
	int parsed, rc;

	parsed = errmap_parse(resp->body, resp->body_len, &ge) == 0;
	rc = errmap_to_errno(resp->status, parsed ? &ge : NULL);
	if (parsed && ge.code[0] && ge.message[0])
		graph_set_err(err, graph_xprintf("%s: %s: %s (%ld)", what, ge.code, ge.message, resp->status));
	else if (parsed && ge.code[0])
		graph_set_err(err, graph_xprintf("%s: %s (%ld)", what, ge.code, resp->status));
	else
		graph_set_err(err, graph_xprintf("%s: %s (%ld)", what, errmap_strerror(rc), resp->status));
	return rc;
}

/* Percent-encode one path segment: unreserved and sub-delims but ( ) ' stay. */
char *graph_escape_segment(const char *s)
{
	return util_percent_encode(s, "!$&*+,;=");
}

static int is_http_url(const char *url)
{
	return strncasecmp(url, "https://", 8) == 0 || strncasecmp(url, "http://", 7) == 0;
}

/* ---- handle ---- */

struct graph *graph_new(const struct odfs_config *cfg, struct http_client *http,
			struct auth *auth)
{
	struct graph *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->cfg = cfg;
	g->http = http;
	g->auth = auth;
	g->origin = http_origin_of(cfg->graph_url);
	if (!g->origin) {
		free(g);
		return NULL;
	}
	pthread_mutex_init(&g->lock, NULL);
	pthread_mutex_init(&g->batch_lock, NULL);
	pthread_cond_init(&g->batch_done, NULL);
	return g;
}

void graph_free(struct graph *g)
{
	if (!g)
		return;
	pthread_cond_destroy(&g->batch_done);
	pthread_mutex_destroy(&g->batch_lock);
	pthread_mutex_destroy(&g->lock);
	free(g->drive_url);
	free(g->origin);
	free(g);
}

/* The mounted drive's id, for telling other drives' items apart (see graph_open_drive). */
static pthread_mutex_t home_lock = PTHREAD_MUTEX_INITIALIZER;
static char *home_drive;   /* protected by home_lock; NULL until a drive is open */

void graph_set_home_drive(const char *drive_id)
{
	char *copy = drive_id ? strdup(drive_id) : NULL;

	pthread_mutex_lock(&home_lock);
	free(home_drive);
	home_drive = copy;
	pthread_mutex_unlock(&home_lock);
}

/* 1 if drive_id is another drive than the mounted one (ids compared in any case, quirk 19). */
static int is_foreign_drive(const char *drive_id)
{
	int foreign;

	pthread_mutex_lock(&home_lock);
	foreign = home_drive && drive_id && *drive_id && strcasecmp(home_drive, drive_id) != 0;
	pthread_mutex_unlock(&home_lock);
	return foreign;
}

int graph_split_id(const char *id, char *drive, size_t size, const char **item)
{
	const char *p, *colon;

	if (strncmp(id, GRAPH_REMOTE_PREFIX, strlen(GRAPH_REMOTE_PREFIX)) != 0) {
		if (size)
			drive[0] = '\0';
		*item = id;
		return 0;
	}
	p = id + strlen(GRAPH_REMOTE_PREFIX);
	colon = strchr(p, ':');
	if (!colon || colon == p || !colon[1] || (size_t)(colon - p) >= size)
		return -EINVAL;
	memcpy(drive, p, (size_t)(colon - p));
	drive[colon - p] = '\0';
	*item = colon + 1;
	return 1;
}

int graph_sign_in_expired(struct graph *g)
{
	return g->auth && auth_state(g->auth) == AUTH_EXPIRED;
}

int64_t graph_offline_since(struct graph *g)
{
	return http_offline_since(g->http);
}

int graph_probe(struct graph *g)
{
	struct http_request req;
	struct http_response resp;
	char *url, *err = NULL;
	int rc;

	url = graph_xprintf("%s/me/drive?$select=id", g->cfg->graph_url);
	if (!url)
		return -ENOMEM;
	http_request_init(&req, "GET", url);
	req.max_body = 64 * 1024;
	if (graph_sign_in_expired(g))
		rc = http_perform(g->http, &req, &resp);
	else
		rc = graph_call(g, &req, &resp, "cannot reach the service", &err);
	http_response_release(&resp);
	free(err);
	free(url);
	return rc;
}

int graph_id_is_remote(const char *id)
{
	return id && strncmp(id, GRAPH_REMOTE_PREFIX, strlen(GRAPH_REMOTE_PREFIX)) == 0;
}

int graph_same_drive(const char *a, const char *b)
{
	char da[GRAPH_DRIVE_ID_MAX], db[GRAPH_DRIVE_ID_MAX];
	const char *ia, *ib;
	int ra = graph_split_id(a, da, sizeof(da), &ia);
	int rb = graph_split_id(b, db, sizeof(db), &ib);

	if (ra < 0 || rb < 0 || ra != rb)
		return 0;
	return ra == 0 || strcasecmp(da, db) == 0;
}

/* "remote:{drive}:{id}" for an item of a foreign drive, else a copy of id. */
static char *qualified_id(const char *drive_id, const char *id)
{
	if (!id)
		return NULL;
	if (!is_foreign_drive(drive_id))
		return strdup(id);
	return graph_xprintf(GRAPH_REMOTE_PREFIX "%s:%s", drive_id, id);
}

/*
 * "{drive_url}{middle}{escaped id}{suffix}", or NULL (drive not open,
 * ENOMEM, a malformed remote id); a remote id goes to its own drive.
 */
char *graph_item_url(struct graph *g, const char *middle, const char *id, const char *suffix)
{
	char drive[GRAPH_DRIVE_ID_MAX], *esc = NULL, *esc_drive = NULL, *url = NULL;
	const char *item = NULL;
	int remote = 0;

	if (id) {
		remote = graph_split_id(id, drive, sizeof(drive), &item);
		if (remote < 0 || !(esc = graph_escape_segment(item)))
			return NULL;
	}
	if (remote) {
		esc_drive = graph_escape_segment(drive);
		url = esc_drive ? graph_xprintf("%s/drives/%s%s%s%s", g->cfg->graph_url, esc_drive,
						middle, esc, suffix) : NULL;
		free(esc_drive);
		free(esc);
		return url;
	}
	pthread_mutex_lock(&g->lock);
	if (g->drive_url)
		url = graph_xprintf("%s%s%s%s", g->drive_url, middle, esc ? esc : "", suffix);
	pthread_mutex_unlock(&g->lock);
	free(esc);
	return url;
}

static void free_token(char *token)
{
	if (token) {
		explicit_bzero(token, strlen(token));
		free(token);
	}
}

/*
 * Perform req with the access token; on 401 refresh once (auth_refresh
 * makes concurrent 401s cost one refresh) and retry once.  0 with resp
 * filled, or -errno with *err set.
 */
int graph_call(struct graph *g, struct http_request *req, struct http_response *resp,
		      const char *what, char **err)
{
	char *token = NULL, *aerr = NULL;
	int rc, refreshes = 0;

	/* Callers release resp whatever happens, even when no request was sent. */
	memset(resp, 0, sizeof(*resp));
	resp->content_length = -1;
	resp->retry_after = -1;
	rc = auth_access_token(g->auth, &token, &aerr);
	if (rc < 0)
		goto out_auth_error;
	req->bearer = token;
	rc = http_perform(g->http, req, resp);
	/* twice: a token can expire again between a refresh and its use (a 401 would read as EACCES) */
	while (rc == 0 && resp->status == 401 && refreshes++ < GRAPH_REFRESHES) {
		rc = auth_refresh(g->auth, token, &aerr);
		free_token(token);
		token = NULL;
		if (rc < 0)
			goto out_auth_error;
		rc = auth_access_token(g->auth, &token, &aerr);
		if (rc < 0)
			goto out_auth_error;
		req->bearer = token;
		http_response_release(resp);
		rc = http_perform(g->http, req, resp);
	}
	req->bearer = NULL;
	free_token(token);
	if (rc == -EFBIG) {
		/* the caller logs err once; this layer stays quiet */
		graph_set_err(err, graph_xprintf("%s: the answer is larger than %zu bytes", what,
				     req->max_body ? req->max_body : (size_t)GRAPH_MAX_PAGE));
		return -EIO;
	}
	if (rc < 0)
		return graph_fail_errno(err, what, rc);
	return 0;

out_auth_error:
	req->bearer = NULL;
	free_token(token);
	graph_set_err(err, aerr ? graph_xprintf("%s: %s", what, aerr) : graph_xprintf("%s: %s", what,
			errmap_strerror(rc)));
	free(aerr);
	return rc;
}

/* GET url and parse a JSON object answer (200 only). */
int graph_get_json(struct graph *g, const char *url, json_t **out, const char *what, char **err)
{
	struct http_request req;
	struct http_response resp;
	json_error_t jerr;
	int rc;

	*out = NULL;
	http_request_init(&req, "GET", url);
	req.max_body = GRAPH_MAX_PAGE;
	rc = graph_call(g, &req, &resp, what, err);
	if (rc < 0)
		goto out_release;
	if (resp.status != 200) {
		rc = graph_fail_response(err, what, &resp);
		goto out_release;
	}
	*out = json_loadb(resp.body, resp.body_len, 0, &jerr);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		rc = -EIO;
		graph_set_err(err, graph_xprintf("%s: the service sent invalid JSON", what));
	}
out_release:
	http_response_release(&resp);
	return rc;
}

/* ---- JSON ---- */

static const char *get_string(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int64_t get_int(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	double d;

	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_real(v)) {
		d = json_real_value(v);
		if (d > -9.2e18 && d < 9.2e18)
			return (int64_t)d;
	}
	return 0;
}

static int dup_string(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

static int parse_digits(const char **p, int n, int *out)
{
	int v = 0;

	while (n-- > 0) {
		if (**p < '0' || **p > '9')
			return -1;
		v = v * 10 + (*(*p)++ - '0');
	}
	*out = v;
	return 0;
}

int graph_parse_time(const char *s, struct timespec *out)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int year, mon, day, hour, min, sec, oh = 0, om = 0, sign = 0, leap, digits = 0;
	long nsec = 0, scale = 100000000;
	const char *p = s;
	struct tm tm;
	time_t t;

	memset(out, 0, sizeof(*out));
	if (!s)
		return -EINVAL;
	if (parse_digits(&p, 4, &year) || *p++ != '-' || parse_digits(&p, 2, &mon) ||
	    *p++ != '-' || parse_digits(&p, 2, &day))
		return -EINVAL;
	if (*p != 'T' && *p != 't')
		return -EINVAL;
	p++;
	if (parse_digits(&p, 2, &hour) || *p++ != ':' || parse_digits(&p, 2, &min) ||
	    *p++ != ':' || parse_digits(&p, 2, &sec))
		return -EINVAL;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++, digits++) {
			if (scale > 0) {
				nsec += (*p - '0') * scale;
				scale /= 10;
			}
		}
		if (digits == 0)
			return -EINVAL;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '-' ? -1 : 1;
		if (parse_digits(&p, 2, &oh) || *p++ != ':' || parse_digits(&p, 2, &om) ||
		    oh > 23 || om > 59)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;
	leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
	if (mon < 1 || mon > 12 || day < 1 ||
	    day > mdays[mon - 1] + (mon == 2 && leap) || hour > 23 || min > 59 || sec > 60)
		return -EINVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;   /* 60 (leap second) rolls over, as timegm does */
	t = timegm(&tm);
	out->tv_sec = t - sign * (oh * 3600 + om * 60);
	out->tv_nsec = nsec;
	return 0;
}

/* First parseable time among fileSystemInfo.<key> and the top-level <key>. */
static void parse_item_time(json_t *obj, const char *key, struct timespec *out)
{
	json_t *fsi = json_object_get(obj, "fileSystemInfo");

	if (json_is_object(fsi) && graph_parse_time(get_string(fsi, key), out) == 0)
		return;
	if (graph_parse_time(get_string(obj, key), out) == 0)
		return;
	memset(out, 0, sizeof(*out));
}

/* A name the filesystem can show: not empty, no '/', not . or .. */
static int usable_name(const char *name)
{
	return *name && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

int graph_parse_item_json(json_t *obj, struct drive_item *out)
{
	json_t *parent, *file, *hashes, *remote, *facets, *rparent;
	const char *id, *name, *drive_id, *parent_id;
	int rc = -EIO;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(obj))
		return -EIO;
	id = get_string(obj, "id");
	if (!id || !*id)
		return -EIO;
	out->is_root = json_is_object(json_object_get(obj, "root"));
	out->is_deleted = json_object_get(obj, "deleted") != NULL;
	name = get_string(obj, "name");
	if (!out->is_root && !out->is_deleted && (!name || !usable_name(name)))
		return -EIO;

	/* remoteItem: facets of the target when the outer item has none. */
	facets = obj;
	remote = json_object_get(obj, "remoteItem");
	if (json_is_object(remote) && !json_object_get(obj, "folder") &&
	    !json_object_get(obj, "file") && !json_object_get(obj, "package"))
		facets = remote;

	out->is_dir = out->is_root || json_is_object(json_object_get(facets, "folder"));
	out->child_count = -1;
	if (json_is_integer(json_object_get(json_object_get(facets, "folder"), "childCount")))
		out->child_count = json_integer_value(
			json_object_get(json_object_get(facets, "folder"), "childCount"));
	out->is_package = json_is_object(json_object_get(facets, "package"));
	out->size = get_int(json_object_get(obj, "size") ? obj : facets, "size");
	if (out->size < 0)
		out->size = 0;   /* Business folders can report negative sizes */
	parse_item_time(obj, "lastModifiedDateTime", &out->mtime);
	parse_item_time(obj, "createdDateTime", &out->ctime_created);

	parent = json_object_get(obj, "parentReference");
	drive_id = json_is_object(parent) ? get_string(parent, "driveId") : NULL;
	parent_id = json_is_object(parent) && !out->is_root ? get_string(parent, "id") : NULL;
	file = json_object_get(facets, "file");
	hashes = json_is_object(file) ? json_object_get(file, "hashes") : NULL;
	/* a shortcut stands for its target, which lives on the owner's drive */
	rparent = facets == remote ? json_object_get(remote, "parentReference") : NULL;
	if (json_is_object(rparent) && get_string(remote, "id") && get_string(rparent, "driveId") &&
	    !strchr(get_string(rparent, "driveId"), ':')) {
		out->id = graph_xprintf(GRAPH_REMOTE_PREFIX "%s:%s", get_string(rparent, "driveId"),
					get_string(remote, "id"));
	} else {
		out->id = qualified_id(drive_id, id);
	}
	out->parent_id = qualified_id(drive_id, parent_id);
	if (!out->id || (parent_id && !out->parent_id) ||
	    dup_string(&out->name, name) ||
	    dup_string(&out->etag, get_string(obj, "eTag")) ||
	    dup_string(&out->ctag, get_string(obj, "cTag")) ||
	    dup_string(&out->qxhash, json_is_object(hashes) ?
		       get_string(hashes, "quickXorHash") : NULL) ||
	    dup_string(&out->download_url, get_string(obj, "@microsoft.graph.downloadUrl"))) {
		rc = -ENOMEM;
		goto out_release;
	}
	return 0;

out_release:
	drive_item_release(out);
	return rc;
}

int graph_parse_item(const char *json, size_t len, struct drive_item *out)
{
	json_t *root;
	int rc;

	memset(out, 0, sizeof(*out));
	root = json_loadb(json, len, 0, NULL);
	if (!root)
		return -EIO;
	rc = graph_parse_item_json(root, out);
	json_decref(root);
	return rc;
}

int graph_parse_drive_json(json_t *obj, struct drive_info *out)
{
	json_t *quota;
	const char *id;

	memset(out, 0, sizeof(*out));
	id = get_string(obj, "id");
	if (!json_is_object(obj) || !id || !*id)
		return -EIO;
	quota = json_object_get(obj, "quota");
	if (json_is_object(quota)) {
		out->quota.total = get_int(quota, "total");
		out->quota.used = get_int(quota, "used");
		out->quota.remaining = get_int(quota, "remaining");
		out->quota.deleted = get_int(quota, "deleted");
		if (out->quota.total < 0) out->quota.total = 0;
		if (out->quota.used < 0) out->quota.used = 0;
		if (out->quota.remaining < 0) out->quota.remaining = 0;
		if (out->quota.deleted < 0) out->quota.deleted = 0;
	}
	if (dup_string(&out->id, id) ||
	    dup_string(&out->drive_type, get_string(obj, "driveType")) ||
	    dup_string(&out->name, get_string(obj, "name"))) {
		drive_info_release(out);
		return -ENOMEM;
	}
	return 0;
}

int graph_parse_drive(const char *json, size_t len, struct drive_info *out)
{
	json_t *root;
	int rc;

	memset(out, 0, sizeof(*out));
	root = json_loadb(json, len, 0, NULL);
	if (!root)
		return -EIO;
	rc = graph_parse_drive_json(root, out);
	json_decref(root);
	return rc;
}

/* ---- drive and items ---- */

static int get_item_at(struct graph *g, char *url, const char *what, struct drive_item *out,
		       char **err)
{
	json_t *obj = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!url)
		return graph_fail_errno(err, what, -ENOMEM);
	rc = graph_get_json(g, url, &obj, what, err);
	free(url);
	if (rc < 0)
		return rc;
	rc = graph_parse_item_json(obj, out);
	json_decref(obj);
	if (rc == -EIO)
		graph_set_err(err, graph_xprintf("%s: the service sent an invalid item", what));
	else if (rc < 0)
		graph_fail_errno(err, what, rc);
	return rc;
}

int graph_get_root(struct graph *g, struct drive_item *out, char **err)
{
	return get_item_at(g, graph_item_url(g, "/root", NULL, ""), "cannot get the drive root",
			   out, err);
}

int graph_get_item(struct graph *g, const char *item_id, struct drive_item *out, char **err)
{
	char what[320];

	snprintf(what, sizeof(what), "cannot get '%s'", item_id);
	return get_item_at(g, graph_item_url(g, "/items/", item_id, ""), what, out, err);
}

int graph_list_children(struct graph *g, const char *folder_id, graph_item_fn fn,
			void *ctx, char **err)
{
	char what[320], suffix[48] = "/children";
	const char *next;
	struct drive_item item;
	json_t *page = NULL, *value, *elem;
	long pages = 0, top = g->cfg->page_size;
	char *url, *nexturl;
	size_t i, skipped = 0;
	int rc;

	snprintf(what, sizeof(what), "cannot list '%s'", folder_id);
	if (top > 0)
		snprintf(suffix, sizeof(suffix), "/children?$top=%ld", top > 1000 ? 1000L : top);
	url = graph_item_url(g, "/items/", folder_id, suffix);
	if (!url)
		return graph_fail_errno(err, what, -ENOMEM);
	for (;;) {
		rc = graph_get_json(g, url, &page, what, err);
		if (rc < 0)
			goto out_free_url;
		value = json_object_get(page, "value");
		if (!json_is_array(value)) {
			rc = -EIO;
			graph_set_err(err, graph_xprintf("%s: the service sent a page without items", what));
			goto out_free_page;
		}
		json_array_foreach(value, i, elem) {
			rc = graph_parse_item_json(elem, &item);
			if (rc == -ENOMEM) {
				graph_fail_errno(err, what, rc);
				goto out_free_page;
			}
			if (rc < 0) {
				/* one odd item must not hide the folder (as in graph_delta) */
				skipped++;
				continue;
			}
			rc = fn(ctx, &item);
			drive_item_release(&item);
			if (rc)
				goto out_free_page;
		}
		next = get_string(page, "@odata.nextLink");
		if (!next)
			break;
		/* Verbatim, but never to a host that should not see the token. */
		if (strncasecmp(next, g->origin, strlen(g->origin)) != 0 ||
		    next[strlen(g->origin)] != '/') {
			log_error("%s: the next page is not on '%s', not following it", what,
				  g->origin);
			graph_set_err(err, graph_xprintf("%s: the service sent a foreign next page link", what));
			rc = -EIO;
			goto out_free_page;
		}
		if (++pages >= GRAPH_MAX_PAGES) {
			graph_set_err(err, graph_xprintf("%s: more than %d pages", what, GRAPH_MAX_PAGES));
			rc = -EIO;
			goto out_free_page;
		}
		nexturl = strdup(next);
		json_decref(page);
		page = NULL;
		free(url);
		url = nexturl;
		if (!url) {
			rc = graph_fail_errno(err, what, -ENOMEM);
			goto out_free_url;
		}
	}
	rc = 0;
out_free_page:
	json_decref(page);
out_free_url:
	free(url);
	if (skipped)
		log_warnx("listing folder '%s': skipped %zu item%s the service sent in an unusable form",
			  folder_id, skipped, skipped == 1 ? "" : "s");
	return rc;
}

/* ---- content ---- */

static int is_redirect(long status)
{
	return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

int graph_download_url(struct graph *g, const char *item_id, char **url, char **err)
{
	struct http_request req;
	struct http_response resp;
	char what[320], *content_url;
	int rc;

	*url = NULL;
	snprintf(what, sizeof(what), "cannot open '%s' for reading", item_id);
	content_url = graph_item_url(g, "/items/", item_id, "/content");
	if (!content_url)
		return graph_fail_errno(err, what, -ENOMEM);
	http_request_init(&req, "GET", content_url);
	req.max_body = 64 * 1024;   /* a redirect has no real body */
	rc = graph_call(g, &req, &resp, what, err);
	free(content_url);
	if (rc < 0)
		goto out_release;
	if (is_redirect(resp.status) && resp.location && is_http_url(resp.location)) {
		*url = strdup(resp.location);
		rc = *url ? 0 : graph_fail_errno(err, what, -ENOMEM);
	} else if (is_redirect(resp.status) || resp.status == 200) {
		rc = -EIO;
		graph_set_err(err, graph_xprintf("%s: the service sent no download location (%ld)", what,
				     resp.status));
	} else {
		rc = graph_fail_response(err, what, &resp);
	}
out_release:
	http_response_release(&resp);
	return rc;
}

/* Passes bytes [off, off+len) of a 200 or 206 answer on to the caller's sink. */
struct range_sink {
	http_sink_fn sink;
	void *ctx;
	int64_t off, len;
	int64_t skip;    /* bytes still to drop (server ignored Range) */
	int64_t left;    /* bytes still wanted */
	int done;        /* stopped on purpose once left reached 0 */
};

/* "bytes 100-199/1000" -> 100; -1 if malformed. */
static int64_t content_range_start(const char *v)
{
	int64_t n = 0;

	if (!v || strncasecmp(v, "bytes ", 6) != 0)
		return -1;
	for (v += 6; *v == ' '; v++)
		;
	if (*v < '0' || *v > '9')
		return -1;
	for (; *v >= '0' && *v <= '9'; v++) {
		if (n > (INT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*v - '0');
	}
	return *v == '-' ? n : -1;
}

static int range_begin(void *ctx, const struct http_response *resp)
{
	struct range_sink *rs = ctx;

	rs->left = rs->len;
	rs->done = 0;
	rs->skip = 0;
	if (resp->status == 206) {
		if (content_range_start(resp->content_range) != rs->off) {
			log_error("cannot read: the download host sent another range than asked ('%s')",
				  resp->content_range ? resp->content_range : "none");
			return -EIO;
		}
	} else if (rs->off > 0) {
		/* 200: the whole file; drop what comes before off. */
		log_debug("the download host ignored the range: skipping %lld bytes",
			  (long long)rs->off);
		rs->skip = rs->off;
	}
	return 0;
}

static int range_write(void *ctx, const char *data, size_t n)
{
	struct range_sink *rs = ctx;
	size_t drop, take;
	int rc;

	if (rs->skip > 0) {
		drop = (int64_t)n < rs->skip ? n : (size_t)rs->skip;
		rs->skip -= (int64_t)drop;
		data += drop;
		n -= drop;
	}
	take = (int64_t)n < rs->left ? n : (size_t)rs->left;
	if (take > 0) {
		rc = rs->sink(rs->ctx, data, take);
		if (rc)
			return rc;
		rs->left -= (int64_t)take;
	}
	if (rs->left == 0) {
		rs->done = 1;
		/*
		 * More than we asked for (a 200 with the whole file): stop the
		 * transfer.  An exact 206 ends by itself and keeps its connection.
		 */
		if (take < n)
			return -ECANCELED;
	}
	return 0;
}

int graph_download(struct graph *g, const char *url, int64_t off, int64_t len,
		   http_sink_fn sink, void *ctx, char **err)
{
	const char *what = "cannot read from the download host";
	struct range_sink rs = { .sink = sink, .ctx = ctx, .off = off, .len = len };
	struct http_request req;
	struct http_response resp;
	char *hop = NULL;
	int rc, hops;

	if (off < 0 || len <= 0 || off > INT64_MAX - len)
		return len == 0 ? 0 : graph_fail_errno(err, what, -EINVAL);
	for (hops = 0;; hops++) {
		http_request_init(&req, "GET", hop ? hop : url);
		req.range_start = off;
		req.range_end = off + len - 1;
		req.sink = range_write;
		req.begin = range_begin;
		req.sink_ctx = &rs;
		req.max_body = 64 * 1024;   /* only error bodies are buffered */
		/* No bearer: the URL carries its own credential. */
		rc = http_perform(g->http, &req, &resp);
		if (rc == -ECANCELED && rs.done)
			rc = 0;
		if (rc < 0) {
			graph_fail_errno(err, what, rc);
			goto out_release;
		}
		if (is_redirect(resp.status) && resp.location && is_http_url(resp.location) &&
		    hops < GRAPH_MAX_REDIRECTS) {
			/* Credential-free hop (CDN); still no Authorization. */
			free(hop);
			hop = strdup(resp.location);
			http_response_release(&resp);
			if (!hop)
				return graph_fail_errno(err, what, -ENOMEM);
			continue;
		}
		break;
	}
	switch (resp.status) {
	case 200:
	case 206:
	case 416:   /* past the end: nothing to read */
		rc = 0;
		break;
	case 401:
	case 403:
	case 404:
	case 410:
		rc = -ESTALE;
		graph_set_err(err, graph_xprintf("%s: the download link expired (%ld)", what, resp.status));
		break;
	default:
		rc = graph_fail_response(err, what, &resp);
		break;
	}
out_release:
	free(hop);
	http_response_release(&resp);
	return rc;
}
