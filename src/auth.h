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
 *
 * With auth=client_credentials (application permissions) there is no
 * sign-in and no tokens.json: auth_load() asks for an app-only token with
 * the client secret, and a new one is fetched before it expires.
 * Confidential clients send client_secret_file (or client_secret) with
 * every grant.  Implemented in auth.c (grants, refresh thread),
 * auth_store.c (files), auth_login.c (device code, logout) and
 * auth_browser.c (authorization code + PKCE, loopback listener).
 */
#ifndef ODFS_AUTH_H
#define ODFS_AUTH_H

#include <stddef.h>
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

/*
 * Browser sign-in: authorization code with PKCE (S256) and a loopback
 * redirect listener on http://localhost:PORT (cfg->redirect_port, 0 = any
 * free port).  Prints the URL to out and, when open_browser, runs xdg-open
 * on it; waits (up to 10 minutes) for the redirect, checks state, redeems
 * the code and stores the tokens.  The browser gets a plain success or
 * error page.  On any failure nothing is stored and *err says why.
 */
int auth_login_browser(struct auth *a, FILE *out, int open_browser, char **err);

/* Remove the stored tokens (logout); *existed says whether there were any. */
int auth_logout(const struct odfs_config *cfg, int *existed, char **err);

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

/* A token endpoint's success answer, parsed. */
struct auth_tokens {
	char *access;        /* never NULL or empty after a successful parse */
	char *refresh;       /* NULL when the answer had none (no offline_access) */
	long expires_in;     /* seconds, 3600 when absent, clamped to [0, AUTH_MAX_EXPIRES_IN] */
};

/* Far beyond any real token lifetime (CAE tokens live 28 h); keeps now + expires_in sane. */
#define AUTH_MAX_EXPIRES_IN (30L * 24 * 3600)

/*
 * Parse the JSON body of a 200 from the token endpoint (exposed for tests
 * and fuzzing; pure, no I/O).  Returns 0 with t filled (release it), -EINVAL
 * when there is no usable access token, -ENOMEM; on failure t is empty.
 */
int auth_parse_token_response(const char *body, size_t len, struct auth_tokens *t);
/* Wipe and free the tokens; leaves t empty.  Safe on an empty struct. */
void auth_tokens_release(struct auth_tokens *t);

#endif
