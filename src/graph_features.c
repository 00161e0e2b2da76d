/*
 * graph_features.c - OneDrive's own features: versions, server-side copy,
 * sharing links and web links (graph-notes 8, 9; createLink).
 *
 * Requests of the "Features" section of graph.h.  The copy monitor URL is
 * pre-authenticated (it may live on another host): it is polled without
 * Authorization, like download URLs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "graph.h"
#include "graph_internal.h"
#include "http.h"

#define COPY_POLL_FIRST 0.1   /* seconds before the first monitor poll */
#define COPY_POLL_MAX   2.0   /* longest wait between polls */
#define SMALL_BODY      (64u * 1024)

void graph_versions_free(struct graph_version *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].id);
		free(v[i].who);
	}
	free(v);
}

static const char *json_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* lastModifiedBy.user.displayName (or email, or application), NULL if none. */
static const char *who_of(json_t *ver)
{
	json_t *by = json_object_get(ver, "lastModifiedBy");
	const char *kinds[] = { "user", "application", "device" };
	const char *s;

	for (size_t i = 0; json_is_object(by) && i < 3; i++) {
		json_t *id = json_object_get(by, kinds[i]);

		if (!json_is_object(id))
			continue;
		if ((s = json_str(id, "displayName")) || (s = json_str(id, "email")))
			return s;
	}
	return NULL;
}

static int parse_versions(json_t *page, struct graph_version **out, size_t *n)
{
	json_t *value = json_object_get(page, "value"), *ver;
	struct graph_version *v;
	size_t i, count = 0;

	if (!json_is_array(value))
		return -EIO;
	v = calloc(json_array_size(value) + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	json_array_foreach(value, i, ver) {
		const char *id = json_str(ver, "id"), *t = json_str(ver, "lastModifiedDateTime");
		const char *who = who_of(ver);
		json_t *size = json_object_get(ver, "size");

		if (!id)
			continue;   /* unusable entry: skip it rather than fail the listing */
		v[count].id = strdup(id);
		v[count].who = who ? strdup(who) : NULL;
		if (!v[count].id || (who && !v[count].who)) {
			graph_versions_free(v, count + 1);
			return -ENOMEM;
		}
		v[count].size = json_is_integer(size) ? json_integer_value(size) : -1;
		if (!t || graph_parse_time(t, &v[count].mtime) < 0)
			v[count].mtime.tv_sec = v[count].mtime.tv_nsec = 0;
		count++;
	}
	*out = v;
	*n = count;
	return 0;
}

int graph_list_versions(struct graph *g, const char *item_id, struct graph_version **out,
			size_t *n, char **err)
{
	const char *what = "cannot list the versions";
	json_t *page = NULL;
	char *url;
	int rc;

	*out = NULL;
	*n = 0;
	url = graph_item_url(g, "/items/", item_id, "/versions");
	if (!url)
		return graph_fail_errno(err, what, -ENOMEM);
	/* the service sends every version in one answer (no paging documented) */
	rc = graph_get_json(g, url, &page, what, err);
	free(url);
	if (rc < 0)
		return rc;
	rc = parse_versions(page, out, n);
	if (rc == -EIO)
		graph_set_err(err, graph_xprintf("%s: the service sent no version list", what));
	else if (rc < 0)
		graph_fail_errno(err, what, rc);
	json_decref(page);
	return rc;
}

static int is_redirect(long status)
{
	return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* ".../versions/{escaped vid}{suffix}" of item_id (malloc'd, NULL on ENOMEM). */
static char *version_url(struct graph *g, const char *item_id, const char *version_id,
			 const char *suffix)
{
	char *esc = graph_escape_segment(version_id), *tail, *url = NULL;

	if (!esc)
		return NULL;
	tail = graph_xprintf("/versions/%s%s", esc, suffix);
	if (tail)
		url = graph_item_url(g, "/items/", item_id, tail);
	free(tail);
	free(esc);
	return url;
}

int graph_version_url(struct graph *g, const char *item_id, const char *version_id, char **url,
		      char **err)
{
	struct http_request req;
	struct http_response resp;
	char what[200], *u;
	int rc;

	*url = NULL;
	snprintf(what, sizeof(what), "cannot read version '%.60s'", version_id);
	u = version_url(g, item_id, version_id, "/content");
	if (!u)
		return graph_fail_errno(err, what, -ENOMEM);
	http_request_init(&req, "GET", u);
	req.max_body = SMALL_BODY;
	rc = graph_call(g, &req, &resp, what, err);
	free(u);
	if (rc < 0)
		goto out_release;
	if (is_redirect(resp.status) && resp.location) {
		*url = strdup(resp.location);
		rc = *url ? 0 : graph_fail_errno(err, what, -ENOMEM);
	} else if (resp.status >= 200 && resp.status < 400) {
		rc = -EIO;
		graph_set_err(err, graph_xprintf("%s: the service sent no download location (%ld)",
						 what, resp.status));
	} else {
		rc = graph_fail_response(err, what, &resp);
	}
out_release:
	http_response_release(&resp);
	return rc;
}

/* POST url with a JSON body (may be NULL: empty); resp filled (caller releases). */
static int post_json(struct graph *g, const char *url, json_t *body, const char *query,
		     struct http_response *resp, const char *what, char **err)
{
	struct http_request req;
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL, *full = NULL;
	int rc;

	memset(resp, 0, sizeof(*resp));
	if (body && !text)
		return graph_fail_errno(err, what, -ENOMEM);
	if (query && !(full = graph_xprintf("%s%s", url, query))) {
		free(text);
		return graph_fail_errno(err, what, -ENOMEM);
	}
	http_request_init(&req, "POST", full ? full : url);
	req.content_type = "application/json";
	req.body = text ? text : "";
	req.body_len = text ? strlen(text) : 0;
	req.max_body = SMALL_BODY;
	rc = graph_call(g, &req, resp, what, err);
	free(full);
	free(text);
	return rc;
}

int graph_restore_version(struct graph *g, const char *item_id, const char *version_id,
			  char **err)
{
	struct http_response resp;
	char what[200], *url;
	int rc;

	snprintf(what, sizeof(what), "cannot restore version '%.60s'", version_id);
	url = version_url(g, item_id, version_id, "/restoreVersion");
	if (!url)
		return graph_fail_errno(err, what, -ENOMEM);
	rc = post_json(g, url, NULL, NULL, &resp, what, err);
	free(url);
	if (rc == 0 && (resp.status < 200 || resp.status > 299))
		rc = graph_fail_response(err, what, &resp);
	http_response_release(&resp);
	return rc;
}

/* parentReference for a folder id of the cache's form (plain or remote:). */
static json_t *parent_reference(const char *parent_id)
{
	char drive[GRAPH_DRIVE_ID_MAX];
	const char *item;
	int remote = graph_split_id(parent_id, drive, sizeof(drive), &item);

	if (remote < 0)
		return NULL;
	if (remote)
		return json_pack("{s:s, s:s}", "driveId", drive, "id", item);
	return json_pack("{s:s}", "id", parent_id);
}

/*
 * Poll a copy monitor until it reports completed (the new item's id in
 * *new_id) or failed.  No Authorization: the URL carries its own credential.
 */
static int poll_monitor(struct graph *g, const char *monitor, int timeout, char **new_id,
			const char *what, char **err)
{
	struct timespec start, now;
	double wait = COPY_POLL_FIRST;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct http_request req;
		struct http_response resp;
		json_t *obj;
		const char *status, *rid;

		rc = http_sleep(wait);
		if (rc < 0)
			return graph_fail_errno(err, what, rc);
		if (wait < COPY_POLL_MAX)
			wait *= 2;
		http_request_init(&req, "GET", monitor);
		req.max_body = SMALL_BODY;
		rc = http_perform(g->http, &req, &resp);
		if (rc < 0) {
			http_response_release(&resp);
			return graph_fail_errno(err, what, rc);
		}
		/* 202 while running, 200/202/303 when done: read the JSON whatever the status */
		obj = resp.status >= 200 && resp.status < 400 && resp.body ?
		      json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
		if (!obj) {
			rc = resp.status >= 400 ? graph_fail_response(err, what, &resp) : -EIO;
			if (rc == -EIO && resp.status < 400)
				graph_set_err(err, graph_xprintf("%s: the copy monitor sent no status "
								 "(%ld)", what, resp.status));
			http_response_release(&resp);
			return rc;
		}
		http_response_release(&resp);
		status = json_str(obj, "status");
		rid = json_str(obj, "resourceId");
		if (status && strcmp(status, "completed") == 0) {
			*new_id = rid ? strdup(rid) : NULL;
			json_decref(obj);
			if (!rid) {
				graph_set_err(err, graph_xprintf("%s: the copy completed without the new "
								 "item's id", what));
				return -EIO;
			}
			return *new_id ? 0 : graph_fail_errno(err, what, -ENOMEM);
		}
		if (status && (strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0 ||
			       strcmp(status, "deleteFailed") == 0)) {
			const char *code = json_str(obj, "errorCode");

			rc = code && strncmp(code, "AccessDenied", 12) == 0 ? -EACCES : -EIO;
			graph_set_err(err, graph_xprintf("%s: the service reports the copy %s%s%s", what,
							 status, code ? ": " : "", code ? code : ""));
			json_decref(obj);
			return rc;
		}
		json_decref(obj);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > timeout) {
			graph_set_err(err, graph_xprintf("%s: still running after %d seconds", what,
							 timeout));
			return -ETIMEDOUT;
		}
	}
}

int graph_copy_item(struct graph *g, const char *item_id, const char *parent_id,
		    const char *name, int timeout, char **new_id, char **err)
{
	struct http_response resp;
	char what[320], *url;
	json_t *body;
	int rc;

	*new_id = NULL;
	snprintf(what, sizeof(what), "cannot copy to '%.200s'", name);
	if (!graph_same_drive(item_id, parent_id)) {
		graph_set_err(err, graph_xprintf("%s: the source is on another drive", what));
		return -EXDEV;
	}
	url = graph_item_url(g, "/items/", item_id, "/copy");
	body = json_pack("{s:o*, s:s}", "parentReference", parent_reference(parent_id),
			 "name", name);
	if (!url || !body) {
		rc = graph_fail_errno(err, what, -ENOMEM);
		goto out_free;
	}
	/* no conflictBehavior: the name must be free (Personal ignores the parameter) */
	rc = post_json(g, url, body, NULL, &resp, what, err);
	if (rc == 0) {
		if (resp.status == 202 && resp.location)
			rc = poll_monitor(g, resp.location, timeout, new_id, what, err);
		else if (resp.status >= 200 && resp.status < 300) {
			rc = -EIO;
			graph_set_err(err, graph_xprintf("%s: the service sent no monitor URL (%ld)",
							 what, resp.status));
		} else {
			rc = graph_fail_response(err, what, &resp);
		}
	}
	http_response_release(&resp);
out_free:
	json_decref(body);
	free(url);
	return rc;
}

int graph_create_link(struct graph *g, const char *item_id, const char *type,
		      const char *scope, const char *expiry, char **link, char **err)
{
	struct http_response resp;
	const char *what = "cannot create a sharing link";
	json_t *body, *ans = NULL;
	const char *web;
	char *url;
	int rc;

	*link = NULL;
	url = graph_item_url(g, "/items/", item_id, "/createLink");
	body = json_pack("{s:s}", "type", type);
	if (!url || !body || (scope && json_object_set_new(body, "scope", json_string(scope)) < 0) ||
	    (expiry && json_object_set_new(body, "expirationDateTime", json_string(expiry)) < 0)) {
		rc = graph_fail_errno(err, what, -ENOMEM);
		goto out_free;
	}
	rc = post_json(g, url, body, NULL, &resp, what, err);
	if (rc < 0)
		goto out_free;
	if (resp.status != 200 && resp.status != 201) {
		rc = graph_fail_response(err, what, &resp);
		goto out_release;
	}
	ans = json_loadb(resp.body ? resp.body : "", resp.body_len, 0, NULL);
	web = ans ? json_str(json_object_get(ans, "link"), "webUrl") : NULL;
	if (!web) {
		rc = -EIO;
		graph_set_err(err, graph_xprintf("%s: the service sent no link", what));
	} else if (!(*link = strdup(web))) {
		rc = graph_fail_errno(err, what, -ENOMEM);
	}
out_release:
	http_response_release(&resp);
out_free:
	json_decref(ans);
	json_decref(body);
	free(url);
	return rc;
}

int graph_web_url(struct graph *g, const char *item_id, char **web, char **err)
{
	const char *what = "cannot read the web link";
	json_t *obj = NULL;
	const char *s;
	char *url;
	int rc;

	*web = NULL;
	url = graph_item_url(g, "/items/", item_id, "?$select=id,webUrl");
	if (!url)
		return graph_fail_errno(err, what, -ENOMEM);
	rc = graph_get_json(g, url, &obj, what, err);
	free(url);
	if (rc < 0)
		return rc;
	s = json_str(obj, "webUrl");
	if (!s) {
		rc = -ENODATA;
		graph_set_err(err, graph_xprintf("%s: the item has none", what));
	} else if (!(*web = strdup(s))) {
		rc = graph_fail_errno(err, what, -ENOMEM);
	}
	json_decref(obj);
	return rc;
}
