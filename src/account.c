/*
 * account.c - the commands about the account rather than the mount:
 * login, logout [--revoke] and drives.
 *
 * Each runs to completion in the foreground, prints its result on stdout
 * and its errors through log.c (one sentence each), and returns 0 or -1:
 * main() turns that into the exit status.
 */
#define _GNU_SOURCE   /* asprintf */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "auth.h"
#include "config.h"
#include "graph.h"
#include "http.h"
#include "item.h"
#include "log.h"

struct http_client *account_http_client(const struct odfs_config *cfg)
{
	struct http_client *http;
	char *origin = http_origin_of(cfg->graph_url);

	if (!origin) {
		log_error("invalid value '%s' for 'graph_url': expected a URL starting with "
			  "https:// or http://", cfg->graph_url);
		return NULL;
	}
	http = http_client_new(cfg, origin);
	free(origin);
	if (!http)
		log_error("cannot start the HTTP client (libcurl failed to initialise)");
	return http;
}

static int has_display(void)
{
	const char *x = getenv("DISPLAY"), *w = getenv("WAYLAND_DISPLAY");

	return (x && *x) || (w && *w);
}

int account_login(struct odfs_config *cfg, enum account_flow flow)
{
	struct http_client *http;
	struct auth *auth;
	char *err = NULL, *path;
	int rc = -1, browser, signed_in;

	if (cfg->auth && strcmp(cfg->auth, "client_credentials") == 0) {
		log_error("auth=client_credentials signs in with the client secret at mount time: "
			  "there is nothing to log in to");
		return -1;
	}
	/* --browser/--device-code, else the auth setting, else what the machine allows */
	if (flow != ACCOUNT_AUTO)
		browser = flow == ACCOUNT_BROWSER;
	else if (cfg->auth)
		browser = strcmp(cfg->auth, "browser") == 0;
	else
		browser = has_display();

	http = account_http_client(cfg);
	if (!http)
		return -1;
	auth = auth_new(cfg, http);
	if (!auth) {
		log_error("out of memory");
		goto out_free_http;
	}
	signed_in = browser ? auth_login_browser(auth, stdout, has_display(), &err)
			    : auth_login_device_code(auth, stdout, &err);
	if (signed_in < 0) {
		log_error("%s", err ? err : "sign-in failed");
		goto out_free_auth;
	}
	path = config_token_path(cfg);
	printf("signed in; tokens stored in %s\n", path ? path : cfg->config_dir);
	free(path);
	rc = 0;
out_free_auth:
	free(err);
	auth_free(auth);
out_free_http:
	http_client_free(http);
	return rc;
}

static const char consent_page[] = "https://account.live.com/consent/Manage";

/* logout [--revoke]: revoke first (it needs the tokens), then forget them. */
int account_logout(struct odfs_config *cfg, int revoke)
{
	struct http_client *http = NULL;
	struct auth *auth = NULL;
	struct graph *graph = NULL;
	struct drive_info drive;
	char *err = NULL, *path;
	int existed, rc, status = -1;

	memset(&drive, 0, sizeof(drive));
	if (revoke) {
		http = account_http_client(cfg);
		auth = http ? auth_new(cfg, http) : NULL;
		graph = auth ? graph_new(cfg, http, auth) : NULL;
		if (!graph) {
			log_error("%s", http ? "out of memory" : "cannot start the HTTP client");
			goto out_free;
		}
		if (auth_load(auth, &err) < 0) {
			log_error("cannot revoke: %s", err ? err : "not signed in");
			goto out_free;
		}
		/* /me/drive tells a personal account from a work or school one */
		free(cfg->drive_id);
		free(cfg->user);
		free(cfg->site);
		cfg->drive_id = cfg->user = cfg->site = NULL;
		free(cfg->library);
		cfg->library = NULL;
		if (graph_open_drive(graph, &drive, &err) < 0) {
			log_error("cannot revoke: %s", err ? err : "cannot reach the account");
			goto out_free;
		}
		if (drive.drive_type && strcmp(drive.drive_type, "personal") == 0) {
			printf("a personal Microsoft account cannot be signed out everywhere from here "
			       "(Microsoft offers revokeSignInSessions only for work and school "
			       "accounts): remove onedrivefs's access on %s\n", consent_page);
		} else if ((rc = graph_revoke_sessions(graph, &err)) < 0) {
			log_error("%s (the local tokens were kept: %s)", err ? err : "cannot revoke",
				  rc == -EACCES || rc == -EPERM ?
				  "this sign-in may not revoke sessions; sign in with "
				  "User.RevokeSessions.All added to scopes, or run 'onedrivefs logout' "
				  "without --revoke" :
				  "try again, or run 'onedrivefs logout' without --revoke");
			goto out_free;
		} else {
			printf("revoked every sign-in session of this account (other devices and apps "
			       "must sign in again; access tokens already issued live up to an hour)\n");
		}
	}
	free(err);
	err = NULL;
	path = config_token_path(cfg);
	if (auth_logout(cfg, &existed, &err) < 0) {
		log_error("%s", err ? err : "cannot remove the tokens");
	} else {
		printf(existed ? "signed out: removed %s\n" : "not signed in (no %s)\n",
		       path ? path : "tokens.json");
		status = 0;
	}
	free(path);
out_free:
	free(err);
	drive_info_release(&drive);
	graph_free(graph);
	auth_free(auth);
	http_client_free(http);
	return status;
}

static int print_drive(void *ctx, const struct drive_info *d)
{
	const char *prefix = ctx;

	printf("%s%s (%s)\n    onedrivefs -o drive_id=%s MOUNTPOINT\n", prefix,
	       d->name ? d->name : "(no name)", d->drive_type ? d->drive_type : "drive", d->id);
	return 0;
}

/* drives: the user's drive, /me/drives, and with site= the site's libraries. */
int account_drives(struct odfs_config *cfg)
{
	struct http_client *http;
	struct auth *auth = NULL;
	struct graph *graph = NULL;
	struct drive_info me;
	char *err = NULL, *path = NULL, *esc;
	int status = -1, app = cfg->auth && strcmp(cfg->auth, "client_credentials") == 0;

	memset(&me, 0, sizeof(me));
	http = account_http_client(cfg);
	auth = http ? auth_new(cfg, http) : NULL;
	graph = auth ? graph_new(cfg, http, auth) : NULL;
	if (!graph) {
		log_error("%s", http ? "out of memory" : "cannot start the HTTP client");
		goto out_free;
	}
	if (auth_load(auth, &err) < 0) {
		log_error("%s", err ? err : "not signed in: run 'onedrivefs login' first");
		goto out_free;
	}
	if (cfg->site) {
		printf("document libraries of SharePoint site '%s':\n", cfg->site);
		if (graph_site_drives(graph, cfg->site, print_drive, "  ", &err) < 0)
			goto out_fail;
		status = 0;
		goto out_free;
	}
	if (app && !cfg->user) {
		log_error("an app-only sign-in has no drives of its own: add user=ID_OR_UPN or "
			  "site=HOST:/sites/NAME");
		goto out_free;
	}
	if (cfg->user) {
		esc = http_form_escape(cfg->user);
		if (!esc || asprintf(&path, "/users/%s/drives", esc) < 0)
			path = NULL;
		free(esc);
		printf("drives of user '%s':\n", cfg->user);
		if (!path || graph_list_drives(graph, path, print_drive, "  ", &err) < 0)
			goto out_fail;
		status = 0;
		goto out_free;
	}
	if (graph_get_drive(graph, "/me/drive", &me, &err) < 0)
		goto out_fail;
	printf("your drive:\n");
	print_drive("  ", &me);
	printf("drives you can reach (/me/drives):\n");
	if (graph_list_drives(graph, "/me/drives", print_drive, "  ", &err) < 0)
		goto out_fail;
	printf("(a SharePoint site's libraries: onedrivefs drives -o site=HOST:/sites/NAME)\n");
	status = 0;
	goto out_free;
out_fail:
	log_error("%s", err ? err : "cannot list drives");
out_free:
	free(err);
	free(path);
	drive_info_release(&me);
	graph_free(graph);
	auth_free(auth);
	http_client_free(http);
	return status;
}
