/*
 * auth.h - sign-in, the token store and keeping the access token fresh.
 *
 * Tokens live in config_dir/tokens.json (mode 0600, written to a temporary
 * file, fsync'd and renamed, so a crash never leaves half a file).  The
 * refresh token rotates: every refresh stores the new one at once.
 * A background thread refreshes the access token five minutes before it
 * expires; a 401 from Graph calls auth_refresh() with the token that failed,
 * so concurrent 401s cause a single refresh.  When the service refuses the
 * refresh token (invalid_grant), auth_state() turns AUTH_EXPIRED and the log
 * says once: "sign-in expired: run 'onedrivefs login'".
 * Tokens never reach a log.
 */
#ifndef ODFS_AUTH_H
#define ODFS_AUTH_H

#include <stdio.h>

struct odfs_config;
struct http_client;
struct auth;

enum auth_state { AUTH_OK, AUTH_EXPIRED, AUTH_NONE };

/* Borrows cfg and http.  NULL on allocation failure. */
struct auth *auth_new(const struct odfs_config *cfg, struct http_client *http);
void auth_free(struct auth *a);

/* Load tokens.json.  -ENOENT (with a message telling to run login) if absent. */
int auth_load(struct auth *a, char **err);

/*
 * Device-code sign-in: asks for a code, prints the service's instructions
 * (URL and code) to out, polls at the service's interval honouring
 * authorization_pending/slow_down, and stores the tokens.  Declined or
 * expired codes are a clear error and nothing is stored.
 */
int auth_login_device_code(struct auth *a, FILE *out, char **err);

/* A malloc'd copy of a valid access token (refreshing first if due). */
int auth_access_token(struct auth *a, char **token, char **err);

/*
 * Refresh now because `stale` was refused.  If another thread already
 * replaced `stale`, returns 0 without a request.
 */
int auth_refresh(struct auth *a, const char *stale, char **err);

enum auth_state auth_state(struct auth *a);

/* Start/stop the background refresh thread (start after daemonizing). */
int auth_start(struct auth *a);
void auth_stop(struct auth *a);

#endif
