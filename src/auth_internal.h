/*
 * auth_internal.h - what auth.c shares with auth_login.c and auth_browser.c.
 *
 * The handle and the identity-platform helpers behind auth.h: form posts to
 * the token endpoint, OAuth error parsing and wording, the client secret,
 * and storing the answer of an interactive sign-in.  Not an API: only the
 * auth*.c files include it.
 */
#ifndef ODFS_AUTH_INTERNAL_H
#define ODFS_AUTH_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "auth.h"
#include "http.h"

#define MSG_NOT_SIGNED_IN "not signed in: run 'onedrivefs login' first"
#define MSG_EXPIRED "sign-in expired or was revoked: run 'onedrivefs login'"
#define MSG_UNREADABLE_TOKEN "the sign-in service sent a token response that could not be read"
#define AUTH_REFRESH_AHEAD 300     /* refresh when fewer seconds remain */

struct auth {
	const struct odfs_config *cfg;
	struct http_client *http;
	int app_only;                  /* client_credentials: no refresh token, no tokens.json */

	pthread_mutex_t refresh_lock;  /* held across a refresh request */
	pthread_mutex_t lock;          /* protects everything below */
	pthread_cond_t cond;           /* wakes the refresh thread (new token, stop) */
	char *access_token;
	char *refresh_token;           /* NULL when app_only */
	int64_t expires_at;            /* unix seconds */
	long ahead;                    /* refresh when fewer seconds than this remain */
	enum auth_state state;
	int expired_logged;            /* the expiry sentence went to the log */
	struct timespec file_mtime;    /* of the tokens.json we loaded or wrote */
	int stopping;
	int thread_started;
	pthread_t thread;
};

struct oauth_error {
	char code[64];     /* "invalid_grant", or "" */
	char aadsts[16];   /* "70008" from "AADSTS70008: ...", or "" */
};

/* explicit_bzero, then free; NULL is fine. */
void auth_free_secret(char *s);
/* Wipe the body (it may hold tokens) and release. */
void auth_release_response(struct http_response *resp);
/* A string member of obj, or NULL. */
const char *auth_json_str(json_t *obj, const char *key);
/* Seconds as integer or numeric string, clamped to [0, max]; dflt if unreadable. */
long auth_json_seconds(json_t *v, long dflt, long max);

/* POST a form body to {auth_url}/{tenant}/oauth2/v2.0/{endpoint}; no bearer. */
int auth_post_form(struct auth *a, const char *endpoint, const char *body,
		   struct http_response *resp);
/* "name=value&..." with values form-escaped; NULL-terminated pairs; NULL values skipped. */
char *auth_form_body(const char *name, ...);
void auth_parse_oauth_error(const struct http_response *resp, struct oauth_error *oe);
/*
 * POST body to the token endpoint and read the answer.  0: a token answer,
 * now in *t (the caller owns it); 1: the service said no, *oe holds why;
 * -errno: no usable answer, *err says why (unreadable: that sentence).
 * The caller releases *resp in every case.
 */
int auth_request_token(struct auth *a, const char *body, const char *unreadable,
		       struct http_response *resp, struct auth_tokens *t,
		       struct oauth_error *oe, char **err);
/* One sentence (malloc'd) for a token-endpoint error. */
char *auth_describe_error(struct auth *a, long status, const struct oauth_error *oe);
/* "cannot reach '<identity host>': <why>" (malloc'd). */
char *auth_network_message(struct auth *a, int rc);

/* ---- auth_store.c ---- */

/* Write tokens.json atomically (0600).  Caller holds refresh_lock. */
int auth_store_tokens(struct auth *a, const char *access, const char *refresh,
		      int64_t expires_at, char **err);
/*
 * Read tokens.json and install its tokens.  -ENOENT when absent or issued
 * for another client_id or auth_url, -EINVAL when damaged.  Caller holds
 * refresh_lock.
 */
int auth_load_file(struct auth *a, char **err);
/* Remove tokens.json; *existed says whether there was one.  0 or -errno. */
int auth_delete_tokens(const struct odfs_config *cfg, int *existed, char **err);
/*
 * The client secret of a confidential client: *secret malloc'd (wipe it with
 * auth_free_secret) or NULL for a public client.  A client_secret_file that
 * others may read is refused (-EACCES with a message); nothing is logged.
 */
int auth_client_secret(struct auth *a, char **secret, char **err);

/* ---- auth.c ---- */

/* Install new tokens in memory (after they were stored).  Takes t's strings. */
void auth_install_tokens(struct auth *a, struct auth_tokens *t, int64_t expires_at);
/*
 * Store the answer of an interactive sign-in (it must carry a refresh
 * token) in tokens.json and use it.  Takes t's strings (t is left empty).
 */
int auth_save_signin(struct auth *a, struct auth_tokens *t, char **err);

#endif
