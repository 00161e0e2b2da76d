/*
 * graph_drive.c - which drive to mount, the drives an account can reach,
 * and revoking sign-in sessions.
 *
 * A drive is chosen once, by graph_open_drive(): /me/drive by default,
 * /drives/{drive_id}, /users/{user}/drive, or a SharePoint site's document
 * library (/sites/{host}:/{path} -> /sites/{id}/drives -> the library by
 * name).  App-only tokens have no /me (graph-notes 1.5), so they must name
 * the drive.  Every later item URL is built under the drive found here.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "config.h"
#include "graph.h"
#include "graph_internal.h"
#include "http.h"
#include "log.h"

#define DRIVES_MAX_PAGES 100     /* a nextLink loop of drive lists must end */
#define LIBRARY_NAMES_MAX 512    /* the "it has: ..." list in a message */

static const char *get_string(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int app_only(const struct odfs_config *cfg)
{
	return cfg->auth && strcmp(cfg->auth, "client_credentials") == 0;
}

int graph_get_drive(struct graph *g, const char *path, struct drive_info *out, char **err)
{
	const char *what = "cannot open the drive";
	json_t *obj = NULL;
	char *url;
	int rc;

	memset(out, 0, sizeof(*out));
	url = graph_xprintf("%s%s", g->cfg->graph_url, path);
	if (!url)
		return graph_fail_errno(err, what, -ENOMEM);
	rc = graph_get_json(g, url, &obj, what, err);
	free(url);
	if (rc < 0)
		return rc;
	rc = graph_parse_drive_json(obj, out);
	json_decref(obj);
	if (rc < 0)
		graph_set_err(err, graph_xprintf("%s: the service sent an invalid drive", what));
	return rc;
}

int graph_list_drives(struct graph *g, const char *path, graph_drive_fn fn, void *ctx,
		      char **err)
{
	const char *what = "cannot list drives", *next;
	struct drive_info info;
	json_t *page = NULL, *value, *elem;
	char *url;
	size_t i;
	int rc, pages = 0;

	url = graph_xprintf("%s%s", g->cfg->graph_url, path);
	if (!url)
		return graph_fail_errno(err, what, -ENOMEM);
	for (;;) {
		rc = graph_get_json(g, url, &page, what, err);
		if (rc < 0)
			break;
		value = json_object_get(page, "value");
		if (!json_is_array(value)) {
			rc = -EIO;
			graph_set_err(err, graph_xprintf("%s: the service sent no list", what));
			break;
		}
		json_array_foreach(value, i, elem) {
			if (graph_parse_drive_json(elem, &info) < 0)
				continue;   /* one odd entry does not hide the others */
			rc = fn(ctx, &info);
			drive_info_release(&info);
			if (rc)
				goto out_free_page;
		}
		next = get_string(page, "@odata.nextLink");
		/* verbatim, but only on the Graph origin, the one host that sees the token */
		if (!next || strncasecmp(next, g->origin, strlen(g->origin)) != 0 ||
		    next[strlen(g->origin)] != '/' || ++pages >= DRIVES_MAX_PAGES)
			break;
		free(url);
		url = strdup(next);
		json_decref(page);
		page = NULL;
		if (!url)
			return graph_fail_errno(err, what, -ENOMEM);
	}
out_free_page:
	json_decref(page);
	free(url);
	return rc;
}

/* "/sites/{host}:/{path}" for "host:/path", else "/sites/{id}"; malloc'd. */
static char *site_path(const char *site)
{
	const char *colon = strstr(site, ":/");
	char *host, *esc, *out, *p;
	size_t n;

	if (!colon) {
		esc = graph_escape_segment(site);
		out = esc ? graph_xprintf("/sites/%s", esc) : NULL;
		free(esc);
		return out;
	}
	host = strndup(site, (size_t)(colon - site));
	esc = host ? graph_escape_segment(host) : NULL;
	free(host);
	out = esc ? graph_xprintf("/sites/%s:", esc) : NULL;
	free(esc);
	/* each path segment escaped on its own, the slashes kept */
	for (p = (char *)colon + 1; out && *p == '/'; p += n) {
		p++;
		n = strcspn(p, "/");
		host = strndup(p, n);
		esc = host ? graph_escape_segment(host) : NULL;
		free(host);
		host = out;
		out = esc ? graph_xprintf("%s/%s", host, esc) : NULL;
		free(host);
		free(esc);
	}
	return out;
}

struct library_pick {
	const char *want;         /* library name */
	struct drive_info found;  /* id NULL until found */
	char names[LIBRARY_NAMES_MAX];
};

static int pick_library(void *ctx, const struct drive_info *d)
{
	struct library_pick *lp = ctx;
	size_t n = strlen(lp->names);

	if (!lp->found.id && d->name && strcasecmp(d->name, lp->want) == 0) {
		lp->found.id = strdup(d->id);
		return lp->found.id ? 0 : -ENOMEM;
	}
	snprintf(lp->names + n, sizeof(lp->names) - n, "%s'%s'", n ? ", " : "",
		 d->name ? d->name : d->id);
	return 0;
}

/* The site's id from "host:/sites/x" (or an id), then /sites/{id}/drives. */
static int site_drives_path(struct graph *g, const char *site, char **path, char **err)
{
	char what[320], *spath, *url, *esc;
	const char *id;
	json_t *obj = NULL;
	int rc;

	*path = NULL;
	snprintf(what, sizeof(what), "cannot open SharePoint site '%s'", site);
	spath = site_path(site);
	url = spath ? graph_xprintf("%s%s", g->cfg->graph_url, spath) : NULL;
	free(spath);
	if (!url)
		return graph_fail_errno(err, what, -ENOMEM);
	rc = graph_get_json(g, url, &obj, what, err);
	free(url);
	if (rc == -ENOENT) {
		graph_set_err(err, graph_xprintf("SharePoint site '%s' was not found: use "
						 "site=HOST:/sites/NAME, e.g. contoso.sharepoint.com:"
						 "/sites/Team", site));
		return rc;
	}
	if (rc < 0)
		return rc;
	id = get_string(obj, "id");
	esc = id ? graph_escape_segment(id) : NULL;
	*path = esc ? graph_xprintf("/sites/%s/drives", esc) : NULL;
	free(esc);
	rc = id ? -ENOMEM : -EIO;
	json_decref(obj);
	if (*path)
		return 0;
	if (rc == -ENOMEM)
		return graph_fail_errno(err, what, -ENOMEM);
	graph_set_err(err, graph_xprintf("%s: the service sent no site id", what));
	return -EIO;
}

int graph_site_drives(struct graph *g, const char *site, graph_drive_fn fn, void *ctx,
		      char **err)
{
	char *path;
	int rc = site_drives_path(g, site, &path, err);

	if (rc < 0)
		return rc;
	rc = graph_list_drives(g, path, fn, ctx, err);
	free(path);
	return rc;
}

/* The Graph path of the drive the settings name (malloc'd), or NULL with *err. */
static char *chosen_drive_path(struct graph *g, int *rc, char **err)
{
	const struct odfs_config *cfg = g->cfg;
	struct library_pick lp;
	char *esc, *path = NULL;
	int n = !!cfg->drive_id + !!cfg->user + !!cfg->site;

	*rc = -EINVAL;
	if (n > 1) {
		graph_set_err(err, graph_xprintf("choose one drive: drive_id, user and site cannot "
						 "be combined"));
		return NULL;
	}
	if (cfg->library && !cfg->site) {
		graph_set_err(err, graph_xprintf("library='%s' needs site=HOST:/sites/NAME",
						 cfg->library));
		return NULL;
	}
	*rc = -ENOMEM;
	if (cfg->drive_id || cfg->user) {
		esc = graph_escape_segment(cfg->drive_id ? cfg->drive_id : cfg->user);
		path = esc ? graph_xprintf(cfg->drive_id ? "/drives/%s" : "/users/%s/drive", esc)
			   : NULL;
		free(esc);
	} else if (cfg->site) {
		memset(&lp, 0, sizeof(lp));
		lp.want = cfg->library ? cfg->library : "Documents";
		*rc = graph_site_drives(g, cfg->site, pick_library, &lp, err);
		if (*rc < 0) {
			drive_info_release(&lp.found);
			return NULL;
		}
		if (!lp.found.id) {
			*rc = -ENOENT;
			graph_set_err(err, graph_xprintf("SharePoint site '%s' has no document library "
							 "named '%s' (it has: %s): set library=NAME",
							 cfg->site, lp.want,
							 lp.names[0] ? lp.names : "none"));
			return NULL;
		}
		esc = graph_escape_segment(lp.found.id);
		path = esc ? graph_xprintf("/drives/%s", esc) : NULL;
		free(esc);
		drive_info_release(&lp.found);
	} else if (app_only(cfg)) {
		*rc = -EINVAL;
		graph_set_err(err, graph_xprintf("an app-only sign-in (auth=client_credentials) has "
						 "no /me drive: choose one with drive_id=ID, "
						 "user=ID_OR_UPN or site=HOST:/sites/NAME"));
		return NULL;
	} else {
		path = strdup("/me/drive");
	}
	if (!path)
		graph_fail_errno(err, "cannot open the drive", -ENOMEM);
	else
		*rc = 0;
	return path;
}

int graph_open_drive(struct graph *g, struct drive_info *info, char **err)
{
	char *path;
	int rc;

	memset(info, 0, sizeof(*info));
	path = chosen_drive_path(g, &rc, err);
	if (!path)
		return rc;
	rc = graph_get_drive(g, path, info, err);
	if (rc == -ENOENT && (g->cfg->drive_id || g->cfg->user))
		graph_set_err(err, graph_xprintf("there is no drive %s '%s' (or this sign-in may not "
						 "see it): run 'onedrivefs drives' to list drives",
						 g->cfg->drive_id ? "with id" : "of user",
						 g->cfg->drive_id ? g->cfg->drive_id : g->cfg->user));
	free(path);
	if (rc < 0)
		return rc;
	rc = graph_use_drive(g, info->id);
	if (rc < 0) {
		drive_info_release(info);
		return graph_fail_errno(err, "cannot open the drive", rc);
	}
	return 0;
}

int graph_use_drive(struct graph *g, const char *drive_id)
{
	char *esc, *durl;

	esc = graph_escape_segment(drive_id);
	durl = esc ? graph_xprintf("%s/drives/%s", g->cfg->graph_url, esc) : NULL;
	free(esc);
	if (!durl)
		return -ENOMEM;
	pthread_mutex_lock(&g->lock);
	free(g->drive_url);
	g->drive_url = durl;
	pthread_mutex_unlock(&g->lock);
	graph_set_home_drive(drive_id);
	return 0;
}

int graph_revoke_sessions(struct graph *g, char **err)
{
	const char *what = "cannot revoke the sign-in sessions";
	struct http_request req;
	struct http_response resp;
	char *url;
	int rc;

	url = graph_xprintf("%s/me/revokeSignInSessions", g->cfg->graph_url);
	if (!url)
		return graph_fail_errno(err, what, -ENOMEM);
	http_request_init(&req, "POST", url);
	req.content_type = "application/json";
	req.body = "";
	req.body_len = 0;
	req.max_body = 64 * 1024;
	rc = graph_call(g, &req, &resp, what, err);
	/* documented as 204, answered 200 {"value": true} (graph-notes 14): any 2xx */
	if (rc == 0 && (resp.status < 200 || resp.status > 299))
		rc = graph_fail_response(err, what, &resp);
	http_response_release(&resp);
	free(url);
	return rc;
}
