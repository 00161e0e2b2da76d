/*
 * account.h - the commands about the account: login, logout, drives.
 *
 * Used by main.c for `onedrivefs login`, `logout` and `drives`.  Each
 * function prints its result on stdout, logs its errors (one sentence, what
 * to do) and returns 0 or -1.  Settings come from cfg (profile folders
 * already applied).
 */
#ifndef ODFS_ACCOUNT_H
#define ODFS_ACCOUNT_H

struct odfs_config;
struct http_client;

enum account_flow {
	ACCOUNT_AUTO,          /* cfg->auth, else browser with a display, else device code */
	ACCOUNT_BROWSER,       /* login --browser */
	ACCOUNT_DEVICE_CODE,   /* login --device-code */
};

/* An HTTP client for cfg (its graph_url origin); NULL after logging why. */
struct http_client *account_http_client(const struct odfs_config *cfg);

/* Sign in and store the tokens (auth.h); nothing is stored on failure. */
int account_login(struct odfs_config *cfg, enum account_flow flow);

/*
 * Delete the stored tokens; with revoke, first POST /me/revokeSignInSessions
 * (work or school accounts; a personal account is told where to revoke).
 */
int account_logout(struct odfs_config *cfg, int revoke);

/* List the drives the account can reach, each with the option that mounts it. */
int account_drives(struct odfs_config *cfg);

#endif
