/*
 * graph_write.c - the Graph requests that change the drive (graph.h, "Writing").
 *
 * Folders, PATCH (rename, move, times), DELETE, simple uploads and upload
 * sessions (graph-notes §5, §6).  Items are addressed by id; a new file is
 * addressed by its parent's id and its name as one escaped path segment
 * (items/{parent-id}:/{name}:/...).  Upload URLs carry their own credential
 * and never get the bearer token (quirk 11): their requests go straight to
 * http.c, not through graph_call().
 *
 * A streamed request body cannot be replayed, so http.c does not retry a
 * chunk PUT once it started reading: throttling and 5xx answers to a chunk
 * come back as -EAGAIN (after honouring Retry-After) and the caller asks the
 * session where to resume.  Simple uploads (at most 4 MiB) are read into
 * memory first, so they get http.c's retries and graph_call()'s refresh.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "errmap.h"
#include "graph.h"
#include "graph_internal.h"
#include "http.h"
#include "log.h"
#include "names.h"

#define MTIME_SLACK 2   /* seconds an implicit time may differ from the service's stamp */
#define SIMPLE_UPLOAD_MAX (4 * 1024 * 1024)  /* larger files take a session */
#define SESSION_BODY_MAX (1024 * 1024)       /* session status/progress JSON */
#define RETRY_AFTER_MAX 300.0                /* seconds, as http.c caps it */
#define CREATE_FOLDER_TRIES 3                /* POSTs whose answer was lost, then give up */

/* ---- helpers ---- */

static const char *str_member(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* "2024-01-02T03:04:05Z": whole seconds, UTC (the services keep no more). */
static void format_time(const struct timespec *ts, char out[32])
{
	struct tm tm;
	time_t t = ts->tv_sec;

	if (!gmtime_r(&t, &tm)) {
		snprintf(out, 32, "1970-01-01T00:00:00Z");
		return;
	}
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *graph_fs_info_json(const struct timespec *mtime, const struct timespec *crtime)
{
	char created[32], modified[32];

	format_time(mtime, modified);
	format_time(crtime && crtime->tv_sec > 0 ? crtime : mtime, created);
	return json_pack("{s:s, s:s}", "createdDateTime", created, "lastModifiedDateTime", modified);
}

/* The item of a 200/201 answer; -EIO when it is not one. */
static int parse_answer_item(const struct http_response *resp, struct drive_item *out,
			     const char *what, char **err)
{
	json_t *obj;
	int rc;

	obj = resp->body ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
	rc = obj ? graph_parse_item_json(obj, out) : -EIO;
	json_decref(obj);
	if (rc == -EIO)
		graph_set_err(err, graph_xprintf("%s: the service sent an invalid item", what));
	else if (rc < 0)
		graph_fail_errno(err, what, rc);
	return rc;
}

/* An unwanted answer: errmap, with the statuses this file promises forced. */
static int fail_write(char **err, const char *what, const struct http_response *resp)
{
	int rc = graph_fail_response(err, what, resp);

	switch (resp->status) {
	case 409: return -EEXIST;
	case 412: return -ESTALE;
	case 507: return -ENOSPC;
	default: return rc;
	}
}

/* Send a JSON body with the token; resp is filled (release it). */
static int call_json_once(struct graph *g, const char *method, const char *url, json_t *body,
			  const char *if_match, int no_resend, struct http_response *resp,
			  const char *what, char **err);

static int call_json(struct graph *g, const char *method, const char *url, json_t *body,
		     const char *if_match, struct http_response *resp, const char *what,
		     char **err)
{
	return call_json_once(g, method, url, body, if_match, 0, resp, what, err);
}

/* call_json(); no_resend: see struct http_request (for a POST that creates). */
static int call_json_once(struct graph *g, const char *method, const char *url, json_t *body,
			  const char *if_match, int no_resend, struct http_response *resp,
			  const char *what, char **err)
{
	struct http_request req;
	const char *headers[2] = { NULL, NULL };
	char *text = NULL, *hdr = NULL;
	int rc;

	memset(resp, 0, sizeof(*resp));
	resp->content_length = -1;
	resp->retry_after = -1;
	if (body && !(text = json_dumps(body, JSON_COMPACT)))
		return graph_fail_errno(err, what, -ENOMEM);
	if (if_match) {
		hdr = graph_xprintf("If-Match: %s", if_match);
		if (!hdr) {
			free(text);
			return graph_fail_errno(err, what, -ENOMEM);
		}
		headers[0] = hdr;
	}
	http_request_init(&req, method, url);
	req.max_body = GRAPH_MAX_PAGE;
	req.headers = headers;
	req.no_resend = no_resend;
	if (text) {
		req.content_type = "application/json";
		req.body = text;
		req.body_len = strlen(text);
	}
	rc = graph_call(g, &req, resp, what, err);
	free(hdr);
	free(text);
	return rc;
}

/* "{drive}/items/{parent-id}:/{escaped name}:{suffix}" */
static char *child_url(struct graph *g, const char *parent_id, const char *name,
		       const char *suffix)
{
	char *esc, *tail, *url;

	esc = names_escape_segment(name);
	if (!esc)
		return NULL;
	tail = graph_xprintf(":/%s:%s", esc, suffix);
	free(esc);
	if (!tail)
		return NULL;
	url = graph_item_url(g, "/items/", parent_id, tail);
	free(tail);
	return url;
}

/* ---- folders, PATCH, DELETE ---- */

int graph_create_folder(struct graph *g, const char *parent_id, const char *name,
			struct drive_item *out, char **err)
{
	struct http_response resp;
	char what[320], *url;
	json_t *body;
	int rc, found, tries;

	memset(out, 0, sizeof(*out));
	snprintf(what, sizeof(what), "cannot create folder '%s'", name);
	url = graph_item_url(g, "/items/", parent_id, "/children");
	body = json_pack("{s:s, s:{}, s:s}", "name", name, "folder",
			 "@microsoft.graph.conflictBehavior", "fail");
	if (!url || !body) {
		rc = graph_fail_errno(err, what, -ENOMEM);
		goto out_free;
	}
	for (tries = 0;; tries++) {
		rc = call_json_once(g, "POST", url, body, NULL, 1, &resp, what, err);
		if (rc == 0) {
			if (resp.status == 201 || resp.status == 200)
				rc = parse_answer_item(&resp, out, what, err);
			else
				rc = fail_write(err, what, &resp);
		}
		http_response_release(&resp);
		if ((rc != -ECONNRESET && rc != -ETIMEDOUT && rc != -ECONNREFUSED) ||
		    tries >= CREATE_FOLDER_TRIES)
			break;
		/*
		 * The answer was lost: the folder may exist now.  A POST sent
		 * again would get 409 for our own folder, so look first.
		 */
		found = graph_get_child(g, parent_id, name, out, NULL);
		if (found == 0 && out->is_dir && out->name && strcmp(out->name, name) == 0) {
			log_debug("'%s' was created though the answer was lost", name);
			if (err) {
				free(*err);   /* what the failed POST said */
				*err = NULL;
			}
			rc = 0;
			break;
		}
		if (found == 0)
			drive_item_release(out);    /* a file of that name: the POST says 409 */
		else if (found != -ENOENT)
			break;
		if (err) {
			free(*err);
			*err = NULL;
		}
	}
out_free:
	json_decref(body);
	free(url);
	return rc;
}

int graph_update_item(struct graph *g, const char *item_id, const char *new_name,
		      const char *new_parent_id, const struct timespec *mtime,
		      const struct timespec *crtime, const char *if_match,
		      struct drive_item *out, char **err)
{
	struct http_response resp;
	struct drive_item item;
	char what[320], *url, pdrive[GRAPH_DRIVE_ID_MAX];
	const char *pid;
	json_t *body;
	int rc = -ENOMEM;

	if (out)
		memset(out, 0, sizeof(*out));
	snprintf(what, sizeof(what), "cannot update '%s'", new_name ? new_name : item_id);
	url = graph_item_url(g, "/items/", item_id, "");
	body = json_object();
	if (!url || !body)
		goto out_nomem;
	if (new_name && json_object_set_new(body, "name", json_string(new_name)) < 0)
		goto out_nomem;
	if (new_parent_id && !graph_same_drive(item_id, new_parent_id)) {
		/* into or out of a shared folder: mv falls back to copy and delete */
		rc = -EXDEV;
		graph_set_err(err, graph_xprintf("%s: cannot move between drives", what));
		goto out_free;
	}
	if (new_parent_id && graph_split_id(new_parent_id, pdrive, sizeof(pdrive), &pid) >= 0 &&
	    json_object_set_new(body, "parentReference", json_pack("{s:s}", "id", pid)) < 0)
		goto out_nomem;
	if (mtime && json_object_set_new(body, "fileSystemInfo", graph_fs_info_json(mtime, crtime)) < 0)
		goto out_nomem;
	rc = call_json(g, "PATCH", url, body, if_match, &resp, what, err);
	if (rc == 0) {
		if (resp.status == 200 || resp.status == 201) {
			rc = parse_answer_item(&resp, &item, what, err);
			if (rc == 0 && out)
				*out = item;
			else if (rc == 0)
				drive_item_release(&item);
		} else {
			rc = fail_write(err, what, &resp);
		}
	}
	http_response_release(&resp);
	goto out_free;

out_nomem:
	rc = graph_fail_errno(err, what, -ENOMEM);
out_free:
	json_decref(body);
	free(url);
	return rc;
}

int graph_delete_item(struct graph *g, const char *item_id, char **err)
{
	return graph_delete_item_if(g, item_id, NULL, err);
}

int graph_delete_item_if(struct graph *g, const char *item_id, const char *if_match, char **err)
{
	struct http_request req;
	struct http_response resp;
	const char *headers[2] = { NULL, NULL };
	char what[320], *url, *hdr = NULL;
	int rc;

	snprintf(what, sizeof(what), "cannot delete '%s'", item_id);
	url = graph_item_url(g, "/items/", item_id, "");
	if (if_match)
		hdr = graph_xprintf("If-Match: %s", if_match);
	if (!url || (if_match && !hdr)) {
		free(url);
		return graph_fail_errno(err, what, -ENOMEM);
	}
	headers[0] = hdr;
	http_request_init(&req, "DELETE", url);
	req.max_body = 64 * 1024;
	req.headers = headers;
	rc = graph_call(g, &req, &resp, what, err);
	if (rc == 0 && resp.status == 412)
		rc = -ESTALE;
	else if (rc == 0 && resp.status != 204 && resp.status != 200)
		rc = graph_fail_response(err, what, &resp);
	http_response_release(&resp);
	free(hdr);
	free(url);
	return rc;
}

int graph_get_child(struct graph *g, const char *parent_id, const char *name,
		    struct drive_item *out, char **err)
{
	char what[320], *url;
	json_t *obj = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(what, sizeof(what), "cannot get '%s'", name);
	url = child_url(g, parent_id, name, "");
	if (!url)
		return graph_fail_errno(err, what, -ENOMEM);
	/* "items/{id}:/name:" must not end in a colon for a plain GET */
	url[strlen(url) - 1] = '\0';
	rc = graph_get_json(g, url, &obj, what, err);
	free(url);
	if (rc < 0)
		return rc;
	rc = graph_parse_item_json(obj, out);
	json_decref(obj);
	if (rc == -EIO)
		graph_set_err(err, graph_xprintf("%s: the service sent an invalid item", what));
	return rc;
}

/* ---- simple upload ---- */

static const char *target_name(const struct graph_upload_target *t)
{
	return t->name ? t->name : t->item_id;
}

/* URL for t: "{item}{id_suffix}" or "{parent}:/{name}:{new_suffix}". */
static char *target_url(struct graph *g, const struct graph_upload_target *t,
			const char *id_suffix, const char *new_suffix)
{
	if (t->item_id)
		return graph_item_url(g, "/items/", t->item_id, id_suffix);
	if (!t->parent_id || !t->name)
		return NULL;
	return child_url(g, t->parent_id, t->name, new_suffix);
}

/* Read exactly len bytes from source into a new buffer. */
static int read_source(http_source_fn source, void *ctx, int64_t len, char **out)
{
	char *buf;
	int64_t got = 0;
	ssize_t n;

	*out = NULL;
	buf = malloc(len > 0 ? (size_t)len : 1);
	if (!buf)
		return -ENOMEM;
	while (got < len) {
		n = source(ctx, buf + got, (size_t)(len - got));
		if (n < 0) {
			free(buf);
			return (int)n;
		}
		if (n == 0) {
			free(buf);
			return -EIO;   /* the file got shorter than promised */
		}
		got += n;
	}
	*out = buf;
	return 0;
}

int graph_upload_small(struct graph *g, const struct graph_upload_target *t,
		       http_source_fn source, void *source_ctx, int64_t len,
		       struct drive_item *out, char **err)
{
	struct http_request req;
	struct http_response resp;
	struct drive_item patched;
	const char *headers[2] = { NULL, NULL };
	char what[320], *url, *data = NULL, *hdr = NULL, *perr = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	snprintf(what, sizeof(what), "cannot upload '%s'", target_name(t));
	if (len < 0 || len > SIMPLE_UPLOAD_MAX)
		return graph_fail_errno(err, what, -EINVAL);
	url = target_url(g, t, "/content", "/content?@microsoft.graph.conflictBehavior=fail");
	if (!url)
		return graph_fail_errno(err, what, t->item_id || t->parent_id ? -ENOMEM : -EINVAL);
	rc = read_source(source, source_ctx, len, &data);
	if (rc < 0) {
		graph_fail_errno(err, what, rc);
		goto out_free_url;
	}
	if (t->item_id && t->if_match) {
		hdr = graph_xprintf("If-Match: %s", t->if_match);
		if (!hdr) {
			rc = graph_fail_errno(err, what, -ENOMEM);
			goto out_free_data;
		}
		headers[0] = hdr;
	}
	http_request_init(&req, "PUT", url);
	req.content_type = "application/octet-stream";
	req.body = data;
	req.body_len = (size_t)len;
	req.headers = headers;
	req.max_body = GRAPH_MAX_PAGE;
	rc = graph_call(g, &req, &resp, what, err);
	if (rc == 0) {
		if (resp.status == 200 || resp.status == 201)
			rc = parse_answer_item(&resp, out, what, err);
		else
			rc = fail_write(err, what, &resp);
	}
	http_response_release(&resp);
	/*
	 * A PUT cannot carry fileSystemInfo: the service stamps its own time.
	 * A time set on purpose (rsync, cp -p, tar, touch) is corrected to the
	 * second, since tools compare whole seconds; a time that only comes
	 * from writing is corrected when visibly off (a late upload), since
	 * every PATCH makes another version (quirk 2).
	 */
	if (rc == 0 && t->mtime &&
	    (t->mtime_explicit ? out->mtime.tv_sec != t->mtime->tv_sec :
	     llabs((long long)(out->mtime.tv_sec - t->mtime->tv_sec)) > MTIME_SLACK)) {
		/* gathered with other uploads' time PATCHes into one $batch */
		if (graph_set_times(g, out->id, t->mtime, t->crtime, NULL, &patched, &perr) == 0) {
			drive_item_release(out);
			*out = patched;
		} else {
			log_warnx("cannot set the time of '%s': %s", target_name(t),
				  perr ? perr : "unknown error");
		}
		free(perr);
	}
out_free_data:
	free(hdr);
	free(data);
out_free_url:
	free(url);
	return rc;
}

/* ---- upload sessions ---- */

void graph_upload_session_release(struct graph_upload_session *s)
{
	if (!s)
		return;
	free(s->upload_url);
	memset(s, 0, sizeof(*s));
}

/* expirationDateTime and the first nextExpectedRanges start of a session JSON. */
static int parse_session_state(const char *body, size_t len, struct graph_upload_session *s,
			       int need_ranges)
{
	json_t *obj, *ranges;
	const char *first, *exp;
	char *end;
	long long v;
	int rc = -EIO;

	obj = body ? json_loadb(body, len, 0, NULL) : NULL;
	if (!json_is_object(obj))
		goto out_free;
	exp = str_member(obj, "expirationDateTime");
	if (exp)
		graph_parse_time(exp, &s->expires);
	ranges = json_object_get(obj, "nextExpectedRanges");
	first = json_is_array(ranges) && json_array_size(ranges) > 0 ?
		json_string_value(json_array_get(ranges, 0)) : NULL;
	if (!first) {
		rc = need_ranges ? -EIO : 0;
		goto out_free;
	}
	errno = 0;
	v = strtoll(first, &end, 10);
	if (errno || end == first || *end != '-' || v < 0)
		goto out_free;
	s->next_offset = v;
	rc = 0;
out_free:
	json_decref(obj);
	return rc;
}

int graph_upload_session_create(struct graph *g, const struct graph_upload_target *t,
				int64_t len, struct graph_upload_session *s, char **err)
{
	struct http_response resp;
	char what[320], *url;
	json_t *body = NULL, *item, *obj;
	const char *upload_url;
	int rc = -ENOMEM;

	memset(s, 0, sizeof(*s));
	snprintf(what, sizeof(what), "cannot start uploading '%s'", target_name(t));
	url = target_url(g, t, "/createUploadSession", "/createUploadSession");
	if (!url)
		return graph_fail_errno(err, what, t->item_id || t->parent_id ? -ENOMEM : -EINVAL);
	/*
	 * An explicit conflictBehavior: a new file must never overwrite a name
	 * taken meanwhile.  No If-Match here (quirk 16): the caller checks the
	 * tags with a GET just before.
	 */
	item = json_pack("{s:s, s:I}", "@microsoft.graph.conflictBehavior",
			 t->item_id ? "replace" : "fail", "fileSize", (json_int_t)len);
	if (!item)
		goto out_nomem;
	if (!t->item_id && json_object_set_new(item, "name", json_string(t->name)) < 0)
		goto out_nomem;
	if (t->mtime && json_object_set_new(item, "fileSystemInfo",
					    graph_fs_info_json(t->mtime, t->crtime)) < 0)
		goto out_nomem;
	body = json_pack("{s:O}", "item", item);
	if (!body)
		goto out_nomem;
	rc = call_json(g, "POST", url, body, NULL, &resp, what, err);
	if (rc == 0) {
		if (resp.status == 200 || resp.status == 201) {
			obj = json_loadb(resp.body, resp.body_len, 0, NULL);
			upload_url = str_member(obj, "uploadUrl");
			if (!upload_url || (strncasecmp(upload_url, "https://", 8) != 0 &&
					    strncasecmp(upload_url, "http://", 7) != 0)) {
				rc = -EIO;
				graph_set_err(err, graph_xprintf("%s: the service sent no upload URL",
								 what));
			} else if (!(s->upload_url = strdup(upload_url))) {
				rc = graph_fail_errno(err, what, -ENOMEM);
			} else {
				parse_session_state(resp.body, resp.body_len, s, 0);
			}
			json_decref(obj);
		} else {
			rc = fail_write(err, what, &resp);
		}
	}
	http_response_release(&resp);
	goto out_free;

out_nomem:
	rc = graph_fail_errno(err, what, -ENOMEM);
out_free:
	json_decref(body);
	json_decref(item);
	free(url);
	return rc;
}

/*
 * 429/503/5xx on the upload URL: wait what the service asked, then -EAGAIN
 * (-ECANCELED when the thread's http cancel hook cuts the wait short).
 */
static int session_busy(const struct http_response *resp, const char *what, char **err)
{
	double wait = resp->retry_after;

	if (wait > RETRY_AFTER_MAX)
		wait = RETRY_AFTER_MAX;
	if (wait > 0 && http_sleep(wait) < 0) {
		graph_set_err(err, graph_xprintf("%s: cancelled", what));
		return -ECANCELED;
	}
	graph_set_err(err, graph_xprintf("%s: the upload host is busy (%ld)", what, resp->status));
	return -EAGAIN;
}

/* Errors of the upload URL, shared by PUT and GET. */
static int session_failure(const struct http_response *resp, const char *what, char **err)
{
	switch (resp->status) {
	case 401:
	case 403:
	case 404:
	case 410:
		/* gone, or its embedded credential expired (quirk 14): start over */
		graph_set_err(err, graph_xprintf("%s: the upload session expired (%ld)", what,
						 resp->status));
		return -ENOENT;
	case 416:
		graph_set_err(err, graph_xprintf("%s: the upload host expected another range", what));
		return -ERANGE;
	case 429:
	case 503:
		return session_busy(resp, what, err);
	default:
		if (resp->status >= 500 && resp->status != 507 && resp->status != 501)
			return session_busy(resp, what, err);
		return fail_write(err, what, resp);
	}
}

int graph_upload_session_put(struct graph *g, struct graph_upload_session *s,
			     int64_t off, int64_t n, int64_t len, http_source_fn source,
			     void *source_ctx, int *done, struct drive_item *out, char **err)
{
	const char *what = "cannot upload a part of the file";
	const char *headers[2] = { NULL, NULL };
	struct http_request req;
	struct http_response resp;
	char range[96];
	int rc;

	*done = 0;
	memset(out, 0, sizeof(*out));
	if (!s->upload_url || off < 0 || n <= 0 || off > len - n)
		return graph_fail_errno(err, what, -EINVAL);
	snprintf(range, sizeof(range), "Content-Range: bytes %lld-%lld/%lld", (long long)off,
		 (long long)(off + n - 1), (long long)len);
	headers[0] = range;
	http_request_init(&req, "PUT", s->upload_url);
	req.source = source;
	req.source_ctx = source_ctx;
	req.source_len = n;
	req.headers = headers;
	req.content_type = "application/octet-stream";
	req.max_body = GRAPH_MAX_PAGE;
	/* No bearer: the URL carries its own credential (quirk 11). */
	rc = http_perform(g->http, &req, &resp);
	if (rc < 0) {
		graph_fail_errno(err, what, rc);
		goto out_release;
	}
	switch (resp.status) {
	case 202:
		s->next_offset = off + n;
		parse_session_state(resp.body, resp.body_len, s, 0);
		break;
	case 200:
	case 201:
		*done = 1;
		/* An empty completion body happens (quirk 12): out->id stays NULL. */
		if (resp.body_len > 0 && parse_answer_item(&resp, out, what, NULL) < 0)
			memset(out, 0, sizeof(*out));
		break;
	default:
		rc = session_failure(&resp, what, err);
		break;
	}
out_release:
	http_response_release(&resp);
	return rc;
}

int graph_upload_session_status(struct graph *g, struct graph_upload_session *s, char **err)
{
	const char *what = "cannot ask the upload session for its state";
	struct http_request req;
	struct http_response resp;
	int rc;

	if (!s->upload_url)
		return graph_fail_errno(err, what, -EINVAL);
	http_request_init(&req, "GET", s->upload_url);
	req.max_body = SESSION_BODY_MAX;
	rc = http_perform(g->http, &req, &resp);
	if (rc < 0) {
		graph_fail_errno(err, what, rc);
	} else if (resp.status == 200) {
		rc = parse_session_state(resp.body, resp.body_len, s, 1);
		if (rc < 0)
			graph_set_err(err, graph_xprintf("%s: the service sent no expected range",
							 what));
	} else {
		rc = session_failure(&resp, what, err);
	}
	http_response_release(&resp);
	return rc;
}

int graph_upload_session_cancel(struct graph *g, struct graph_upload_session *s, char **err)
{
	const char *what = "cannot cancel the upload session";
	struct http_request req;
	struct http_response resp;
	int rc;

	if (!s->upload_url)
		return 0;
	http_request_init(&req, "DELETE", s->upload_url);
	req.max_body = SESSION_BODY_MAX;
	rc = http_perform(g->http, &req, &resp);
	if (rc < 0)
		graph_fail_errno(err, what, rc);
	else if (resp.status != 204 && resp.status != 200 && resp.status != 404)
		rc = graph_fail_response(err, what, &resp);
	http_response_release(&resp);
	return rc;
}
