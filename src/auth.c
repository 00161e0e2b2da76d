/*
 * auth.c - token grants (refresh, client credentials), the identity
 * platform's errors in plain words, and the refresh thread.  The files live
 * in auth_store.c, the interactive sign-ins in auth_login.c (device code)
 * and auth_browser.c (authorization code + PKCE).
 *
 * DESIGN: two locks.  refresh_lock serialises refreshes and is held across
 * the network request, so concurrent 401s (or the background thread and a
 * FUSE thread) cause one refresh, and the losers see the new token.  lock
 * protects the token fields and the condvar; it is never held across I/O,
 * so reading a still-valid token never waits for the network.  Order:
 * refresh_lock before lock.
 *
 * Tokens go only to the identity host they came from (tokens.json records
 * it) and never to a log.  Secrets are wiped from memory before free().
 */
#define _GNU_SOURCE   /* asprintf, explicit_bzero */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "auth_internal.h"
#include "config.h"
#include "errmap.h"
#include "http.h"
#include "log.h"
#include "util.h"

#define TOKEN_BODY_MAX (1024 * 1024)
#define MAX_THREAD_SLEEP 60        /* re-check the wall clock at least this often (suspend) */
#define RELOAD_CHECK 30            /* while expired, look for a new tokens.json this often */
#define RETRY_MIN 15               /* background retry after a network failure, doubling */
#define RETRY_MAX 300
#define MIN_REFRESH_GAP 10         /* seconds between background refreshes, at least */


void auth_free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void auth_release_response(struct http_response *resp)
{
	if (resp->body)
		explicit_bzero(resp->body, resp->body_len);
	http_response_release(resp);
}

/* "https://login.microsoftonline.com" -> "login.microsoftonline.com" into buf. */
static const char *url_host(const char *url, char *buf, size_t size)
{
	const char *p = strstr(url, "://");
	size_t n;

	p = p ? p + 3 : url;
	n = strcspn(p, "/?#");
	snprintf(buf, size, "%.*s", (int)n, p);
	return buf;
}

struct auth *auth_new(const struct odfs_config *cfg, struct http_client *http)
{
	struct auth *a = calloc(1, sizeof(*a));
	pthread_condattr_t attr;

	if (!a)
		return NULL;
	a->cfg = cfg;
	a->http = http;
	a->app_only = cfg->auth && strcmp(cfg->auth, "client_credentials") == 0;
	a->state = AUTH_NONE;
	a->ahead = AUTH_REFRESH_AHEAD;
	pthread_mutex_init(&a->refresh_lock, NULL);
	pthread_mutex_init(&a->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cond, &attr);
	pthread_condattr_destroy(&attr);
	return a;
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	auth_stop(a);
	auth_free_secret(a->access_token);
	auth_free_secret(a->refresh_token);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	pthread_mutex_destroy(&a->refresh_lock);
	free(a);
}

const char *auth_json_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int fetch_app_token(struct auth *a, char **err);

int auth_load(struct auth *a, char **err)
{
	int rc;

	if (err)
		*err = NULL;
	pthread_mutex_lock(&a->refresh_lock);
	/* app-only: the secret is the credential, nothing is stored */
	rc = a->app_only ? fetch_app_token(a, err) : auth_load_file(a, err);
	pthread_mutex_unlock(&a->refresh_lock);
	return rc;
}

/* ---- talking to the identity platform --------------------------------- */

/* POST an x-www-form-urlencoded body to {auth_url}/{tenant}/oauth2/v2.0/{endpoint}. */
int auth_post_form(struct auth *a, const char *endpoint, const char *body,
		     struct http_response *resp)
{
	struct http_request req;
	char *url;
	int rc;

	url = util_format("%s/%s/oauth2/v2.0/%s", a->cfg->auth_url, a->cfg->tenant, endpoint);
	if (!url) {
		memset(resp, 0, sizeof(*resp));
		return -ENOMEM;
	}
	http_request_init(&req, "POST", url);
	req.content_type = "application/x-www-form-urlencoded";
	req.body = body;
	req.body_len = strlen(body);
	req.max_body = TOKEN_BODY_MAX;
	req.bearer = NULL;   /* the identity host is not the Graph origin */
	rc = http_perform(a->http, &req, resp);
	free(url);
	return rc;
}

int auth_request_token(struct auth *a, const char *body, const char *unreadable,
		       struct http_response *resp, struct auth_tokens *t,
		       struct oauth_error *oe, char **err)
{
	int rc;

	rc = auth_post_form(a, "token", body, resp);
	if (rc < 0) {
		util_set_err(err, auth_network_message(a, rc));
		return rc;
	}
	if (resp->status != 200) {
		auth_parse_oauth_error(resp, oe);
		return 1;
	}
	if (auth_parse_token_response(resp->body, resp->body_len, t) < 0) {
		util_set_err(err, strdup(unreadable));
		return -EIO;
	}
	return 0;
}

/* "name=value&..." with each value form-escaped; NULL-terminated name/value pairs. */
char *auth_form_body(const char *name, ...)
{
	va_list ap;
	char *body = strdup(""), *esc, *next;
	const char *value;

	va_start(ap, name);
	for (; name && body; name = va_arg(ap, const char *)) {
		value = va_arg(ap, const char *);
		if (!value)
			continue;   /* an optional field (client_secret) that is not set */
		esc = http_form_escape(value ? value : "");
		next = esc ? util_format("%s%s%s=%s", body, *body ? "&" : "", name, esc) : NULL;
		auth_free_secret(esc);
		auth_free_secret(body);
		body = next;
	}
	va_end(ap);
	return body;
}

/* Pull the error code and the AADSTS number (never the whole description). */
void auth_parse_oauth_error(const struct http_response *resp, struct oauth_error *oe)
{
	char desc[512];
	const char *p;
	size_t n;

	memset(oe, 0, sizeof(*oe));
	if (!resp->body ||
	    errmap_parse_oauth(resp->body, resp->body_len, oe->code, sizeof(oe->code),
			       desc, sizeof(desc)) < 0)
		return;
	p = strstr(desc, "AADSTS");
	if (p) {
		p += 6;
		n = strspn(p, "0123456789");
		if (n > 0 && n < sizeof(oe->aadsts))
			memcpy(oe->aadsts, p, n);
	}
}

/* ", AADSTS70008" or "" */
static const char *aadsts_suffix(const struct oauth_error *oe, char *buf, size_t size)
{
	if (oe->aadsts[0])
		snprintf(buf, size, ", AADSTS%s", oe->aadsts);
	else
		buf[0] = '\0';
	return buf;
}

/* Codes that mean "sign in interactively again"; retrying cannot help. */
static int needs_login(const char *code)
{
	return strcmp(code, "invalid_grant") == 0 || strcmp(code, "interaction_required") == 0 ||
	       strcmp(code, "consent_required") == 0;
}

/* One sentence for a token-endpoint error (sign-in or refresh). */
char *auth_describe_error(struct auth *a, long status, const struct oauth_error *oe)
{
	const struct odfs_config *cfg = a->cfg;
	const char *code = oe->code;
	char ax[32];

	aadsts_suffix(oe, ax, sizeof(ax));
	if (strcmp(oe->aadsts, "700016") == 0 || strcmp(code, "unauthorized_client") == 0)
		return util_format("the app '%s' was not found or may not sign in at tenant '%s' "
			      "(%s%s): check client_id and tenant", cfg->client_id, cfg->tenant,
			      code[0] ? code : "unauthorized_client", ax);
	if (strcmp(oe->aadsts, "50194") == 0)
		return util_format("the app '%s' is single-tenant and cannot use tenant '%s' (%s%s): "
			      "set tenant to your tenant id or domain", cfg->client_id,
			      cfg->tenant, code, ax);
	if (strcmp(oe->aadsts, "700025") == 0)
		return util_format("the app '%s' is a public client and must not send a secret "
			      "(invalid_client%s): remove client_secret and client_secret_file",
			      cfg->client_id, ax);
	if (strcmp(oe->aadsts, "7000215") == 0)
		return util_format("the service refused the client secret of app '%s' "
			      "(invalid_client%s): check client_secret_file; secrets expire, make a "
			      "new one in the app registration", cfg->client_id, ax);
	if (strcmp(oe->aadsts, "7000218") == 0)
		return util_format("the app '%s' needs a client secret, or 'Allow public client flows' "
			      "in its registration (invalid_client%s): set client_secret_file",
			      cfg->client_id, ax);
	if (strcmp(oe->aadsts, "9001023") == 0 || strcmp(oe->aadsts, "50059") == 0)
		return util_format("app-only sign-in needs the tenant id or domain, not '%s' (%s%s): "
			      "set tenant=<your tenant id or domain>", cfg->tenant, code, ax);
	if (strcmp(code, "invalid_client") == 0)
		return util_format("the service refused client_id '%s' (invalid_client%s): check "
			      "client_id and that the app registration allows public client flows",
			      cfg->client_id, ax);
	if (strcmp(code, "authorization_declined") == 0)
		return strdup("sign-in was declined in the browser; nothing was stored");
	if (strcmp(code, "expired_token") == 0)
		return strdup("the code expired before sign-in finished; run 'onedrivefs login' again");
	if (strcmp(code, "bad_verification_code") == 0)
		return util_format("the service did not recognise the device code (bad_verification_code%s); "
			      "run 'onedrivefs login' again", ax);
	if (strcmp(code, "invalid_scope") == 0)
		return util_format("the service refused the scopes '%s' (invalid_scope%s): check the "
			      "scopes setting", cfg->scopes, ax);
	if (needs_login(code))
		return util_format(MSG_EXPIRED " (the service said: %s%s)", code, ax);
	if (strcmp(oe->aadsts, "90002") == 0)
		return util_format("tenant '%s' was not found (%s%s): check the tenant setting",
			      cfg->tenant, code, ax);
	if (strcmp(oe->aadsts, "50020") == 0 || strcmp(oe->aadsts, "9002332") == 0)
		return util_format("this account cannot sign in at tenant '%s' (%s%s): a personal "
			      "Microsoft account needs tenant common or consumers, a work or school "
			      "account common, organizations or its organization's tenant",
			      cfg->tenant, code, ax);
	if (strcmp(code, "invalid_request") == 0)
		return util_format("the service rejected the sign-in request (invalid_request%s): check "
			      "client_id and tenant", ax);
	if (strcmp(code, "temporarily_unavailable") == 0)
		return util_format("the sign-in service is temporarily unavailable (%s%s): try again "
			      "in a minute", code, ax);
	if (code[0])
		return util_format("sign-in failed: the service said '%s'%s (HTTP %ld)", code, ax, status);
	return util_format("sign-in failed: the service answered HTTP %ld", status);
}

char *auth_network_message(struct auth *a, int rc)
{
	char host[256], ebuf[128];

	return util_format("cannot reach '%s': %s", url_host(a->cfg->auth_url, host, sizeof(host)),
		      log_errstr(rc, ebuf, sizeof(ebuf)));
}

/*
 * Seconds that may arrive as JSON integer or string ("3599" from older
 * endpoints); dflt when absent or unreadable, else clamped to [0, max], so
 * that adding it to a clock cannot overflow.
 */
long auth_json_seconds(json_t *v, long dflt, long max)
{
	json_int_t i;
	char *end;
	long n;

	if (json_is_integer(v)) {
		i = json_integer_value(v);
		return i < 0 ? 0 : i > max ? max : (long)i;
	}
	if (json_is_string(v)) {
		errno = 0;
		n = strtol(json_string_value(v), &end, 10);
		if (errno == 0 && end != json_string_value(v) && *end == '\0')
			return n < 0 ? 0 : n > max ? max : n;
	}
	return dflt;
}

void auth_tokens_release(struct auth_tokens *t)
{
	auth_free_secret(t->access);
	auth_free_secret(t->refresh);
	memset(t, 0, sizeof(*t));
}

int auth_parse_token_response(const char *body, size_t len, struct auth_tokens *t)
{
	const char *access, *refresh;
	json_t *root;
	int rc = -EINVAL;

	memset(t, 0, sizeof(*t));
	root = body ? json_loadb(body, len, 0, NULL) : NULL;
	access = root ? auth_json_str(root, "access_token") : NULL;
	if (!access || !*access)
		goto out_free_json;
	refresh = auth_json_str(root, "refresh_token");
	t->access = strdup(access);
	t->refresh = refresh && *refresh ? strdup(refresh) : NULL;
	t->expires_in = auth_json_seconds(json_object_get(root, "expires_in"), 3600,
				     AUTH_MAX_EXPIRES_IN);
	rc = 0;
	if (!t->access || (refresh && *refresh && !t->refresh)) {
		auth_tokens_release(t);
		rc = -ENOMEM;
	}
out_free_json:
	json_decref(root);
	return rc;
}

/* Install new tokens in memory (after they were stored).  Takes ownership. */
void auth_install_tokens(struct auth *a, struct auth_tokens *t, int64_t expires_at)
{
	pthread_mutex_lock(&a->lock);
	auth_free_secret(a->access_token);
	a->access_token = t->access;
	if (t->refresh) {
		auth_free_secret(a->refresh_token);
		a->refresh_token = t->refresh;
	}
	t->access = t->refresh = NULL;
	a->expires_at = expires_at;
	/* short-lived tokens (tests, odd tenants) refresh at half their life */
	a->ahead = t->expires_in / 2 < AUTH_REFRESH_AHEAD ? t->expires_in / 2 : AUTH_REFRESH_AHEAD;
	a->state = AUTH_OK;
	a->expired_logged = 0;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

/* The refresh grant.  Caller holds refresh_lock (not lock). */
static int do_refresh(struct auth *a, char **err)
{
	struct http_response resp;
	struct oauth_error oe;
	struct auth_tokens t;
	char *refresh, *body, *msg, *secret = NULL;
	int64_t expires_at;
	int rc, log_it = 0;

	if (a->app_only)
		return fetch_app_token(a, err);   /* there is no refresh token: a new grant */
	pthread_mutex_lock(&a->lock);
	refresh = a->refresh_token ? strdup(a->refresh_token) : NULL;
	pthread_mutex_unlock(&a->lock);
	if (!refresh) {
		util_set_err(err, strdup(MSG_NOT_SIGNED_IN));
		return -EACCES;
	}
	rc = auth_client_secret(a, &secret, err);
	if (rc < 0) {
		auth_free_secret(refresh);
		return rc;
	}
	body = auth_form_body("client_id", a->cfg->client_id, "grant_type", "refresh_token",
			      "refresh_token", refresh, "scope", a->cfg->scopes,
			      "client_secret", secret, NULL);
	auth_free_secret(refresh);
	auth_free_secret(secret);
	if (!body)
		return -ENOMEM;
	log_debug("refreshing the access token");
	/* no answer is not the user's fault: the caller retries later */
	rc = auth_request_token(a, body, MSG_UNREADABLE_TOKEN, &resp, &t, &oe, err);
	auth_free_secret(body);
	if (rc < 0)
		goto out_release;
	if (rc == 0) {
		expires_at = (int64_t)time(NULL) + t.expires_in;
		pthread_mutex_lock(&a->lock);
		/* the refresh token rotates: store the new one before anything else */
		refresh = strdup(t.refresh ? t.refresh : a->refresh_token);
		pthread_mutex_unlock(&a->lock);
		if (!refresh) {
			auth_tokens_release(&t);
			rc = -ENOMEM;
			goto out_release;
		}
		msg = NULL;
		if (auth_store_tokens(a, t.access, refresh, expires_at, &msg) < 0) {
			/* keep going in memory; the next refresh tries again */
			log_error("%s", msg ? msg : "cannot store tokens");
			free(msg);
		}
		auth_free_secret(refresh);
		auth_install_tokens(a, &t, expires_at);
		log_debug("access token refreshed, valid for %ld s", t.expires_in);
		goto out_release;
	}
	if ((resp.status == 400 || resp.status == 401) && oe.code[0] &&
	    strcmp(oe.code, "temporarily_unavailable") != 0) {
		/* refused: only an interactive sign-in can fix this */
		msg = auth_describe_error(a, resp.status, &oe);
		pthread_mutex_lock(&a->lock);
		a->state = AUTH_EXPIRED;
		log_it = !a->expired_logged;
		a->expired_logged = 1;
		pthread_cond_broadcast(&a->cond);
		pthread_mutex_unlock(&a->lock);
		if (log_it)
			log_error("%s", msg ? msg : MSG_EXPIRED);
		util_set_err(err, msg);
		rc = -EACCES;
		goto out_release;
	}
	util_set_err(err, auth_describe_error(a, resp.status, &oe));
	rc = resp.status == 503 || strcmp(oe.code, "temporarily_unavailable") == 0 ? -EAGAIN : -EIO;
out_release:
	auth_release_response(&resp);
	return rc;
}

/*
 * While expired: if 'onedrivefs login' stored new tokens meanwhile, take
 * them, so a mount carries on without a remount.  Caller holds refresh_lock.
 */
static void reload_if_changed(struct auth *a)
{
	struct timespec seen;
	struct stat st;
	char *path, *err = NULL;

	if (a->app_only || !(path = config_token_path(a->cfg)))
		return;
	pthread_mutex_lock(&a->lock);
	seen = a->file_mtime;
	pthread_mutex_unlock(&a->lock);
	if (stat(path, &st) == 0 &&
	    (st.st_mtim.tv_sec != seen.tv_sec || st.st_mtim.tv_nsec != seen.tv_nsec) &&
	    auth_load_file(a, &err) == 0)
		log_info("signed in again: using the new tokens in '%s'", path);
	free(err);
	free(path);
}

/* The app-only scope: {resource}/.default; the user scopes make no sense here. */
static const char *app_scope(const struct odfs_config *cfg)
{
	if (strcmp(cfg->scopes, ODFS_DEFAULT_SCOPES) == 0)
		return "https://graph.microsoft.com/.default";
	return cfg->scopes;
}

/*
 * client_credentials: a new app-only token (there is never a refresh
 * token).  Caller holds refresh_lock.  A refusal turns the state expired
 * and is logged once; the refresh thread tries again now and then.
 */
static int fetch_app_token(struct auth *a, char **err)
{
	struct http_response resp;
	struct oauth_error oe;
	struct auth_tokens t;
	char *body, *secret = NULL, *msg;
	int64_t expires_at;
	int rc, log_it;

	if (!a->cfg->client_id) {
		util_set_err(err, strdup("no client_id set: client_credentials needs the app's client_id"));
		return -EINVAL;
	}
	rc = auth_client_secret(a, &secret, err);
	if (rc < 0)
		return rc;
	if (!secret) {
		util_set_err(err, strdup("auth=client_credentials needs client_secret_file (or "
				    "client_secret)"));
		return -EINVAL;
	}
	body = auth_form_body("client_id", a->cfg->client_id, "grant_type", "client_credentials",
			      "scope", app_scope(a->cfg), "client_secret", secret, NULL);
	auth_free_secret(secret);
	if (!body)
		return -ENOMEM;
	log_debug("requesting an app-only access token");
	rc = auth_request_token(a, body, MSG_UNREADABLE_TOKEN, &resp, &t, &oe, err);
	auth_free_secret(body);
	if (rc < 0)
		goto out_release;
	if (rc == 0) {
		auth_free_secret(t.refresh);   /* not expected; never used */
		t.refresh = NULL;
		expires_at = (int64_t)time(NULL) + t.expires_in;
		auth_install_tokens(a, &t, expires_at);
		log_debug("app-only access token valid for %ld s", t.expires_in);
		goto out_release;
	}
	msg = auth_describe_error(a, resp.status, &oe);
	if ((resp.status == 400 || resp.status == 401) &&
	    strcmp(oe.code, "temporarily_unavailable") != 0) {
		pthread_mutex_lock(&a->lock);
		log_it = a->state != AUTH_NONE && !a->expired_logged;
		if (a->state != AUTH_NONE) {
			a->state = AUTH_EXPIRED;
			a->expired_logged = 1;
		}
		pthread_mutex_unlock(&a->lock);
		if (log_it)
			log_error("%s", msg ? msg : "the service refused the app's credentials");
		rc = -EACCES;
	} else {
		rc = resp.status == 503 ? -EAGAIN : -EIO;
	}
	util_set_err(err, msg);
out_release:
	auth_release_response(&resp);
	return rc;
}

int auth_save_signin(struct auth *a, struct auth_tokens *t, char **err)
{
	int64_t expires_at;
	int rc;

	if (!t->refresh) {
		auth_tokens_release(t);
		util_set_err(err, strdup("the service gave no refresh token: add offline_access to "
				    "scopes; nothing was stored"));
		return -EINVAL;
	}
	expires_at = (int64_t)time(NULL) + t->expires_in;
	pthread_mutex_lock(&a->refresh_lock);
	rc = auth_store_tokens(a, t->access, t->refresh, expires_at, err);
	if (rc == 0)
		auth_install_tokens(a, t, expires_at);
	pthread_mutex_unlock(&a->refresh_lock);
	auth_tokens_release(t);
	return rc;
}

/* Refresh if the token is due (another thread may have just done it). */
static int refresh_if_due(struct auth *a, char **err)
{
	int64_t now;
	int due, rc = 0;
	enum auth_state state;

	pthread_mutex_lock(&a->refresh_lock);
	if (auth_state(a) == AUTH_EXPIRED)
		reload_if_changed(a);   /* 'onedrivefs login' may have run meanwhile */
	pthread_mutex_lock(&a->lock);
	now = time(NULL);
	state = a->state;
	due = !a->access_token || a->expires_at - now <= a->ahead;
	pthread_mutex_unlock(&a->lock);
	if (state == AUTH_EXPIRED) {
		util_set_err(err, strdup(MSG_EXPIRED));
		rc = -EACCES;
	} else if (state == AUTH_NONE) {
		util_set_err(err, strdup(MSG_NOT_SIGNED_IN));
		rc = -EACCES;
	} else if (due) {
		rc = do_refresh(a, err);
	}
	pthread_mutex_unlock(&a->refresh_lock);
	return rc;
}

int auth_access_token(struct auth *a, char **token, char **err)
{
	int64_t now;
	int rc;

	*token = NULL;
	if (err)
		*err = NULL;
	pthread_mutex_lock(&a->lock);
	now = time(NULL);
	if (a->state == AUTH_OK && a->access_token && a->expires_at - now > a->ahead) {
		*token = strdup(a->access_token);
		pthread_mutex_unlock(&a->lock);
		return *token ? 0 : -ENOMEM;
	}
	pthread_mutex_unlock(&a->lock);

	rc = refresh_if_due(a, err);

	pthread_mutex_lock(&a->lock);
	now = time(NULL);
	/* a failed early refresh still leaves a usable token for a while; a
	 * fresh one is used whatever its lifetime (tests, odd tenants) */
	if (a->access_token && a->expires_at > now + (rc == 0 ? 0 : 10) &&
	    (rc == 0 || (rc != -EACCES && a->state == AUTH_OK))) {
		*token = strdup(a->access_token);
		rc = *token ? 0 : -ENOMEM;
		if (rc == 0 && err) {
			free(*err);
			*err = NULL;
		}
	} else if (rc == 0) {
		rc = -EIO;
		util_set_err(err, strdup("the sign-in service gave an access token that has already expired"));
	}
	pthread_mutex_unlock(&a->lock);
	return rc;
}

int auth_refresh(struct auth *a, const char *stale, char **err)
{
	int rc;

	if (err)
		*err = NULL;
	pthread_mutex_lock(&a->refresh_lock);
	if (auth_state(a) == AUTH_EXPIRED)
		reload_if_changed(a);
	pthread_mutex_lock(&a->lock);
	if (a->state == AUTH_EXPIRED) {
		pthread_mutex_unlock(&a->lock);
		util_set_err(err, strdup(MSG_EXPIRED));
		rc = -EACCES;
		goto out_unlock;
	}
	if (a->access_token && stale && strcmp(a->access_token, stale) != 0) {
		/* someone refreshed while our request was failing */
		pthread_mutex_unlock(&a->lock);
		rc = 0;
		goto out_unlock;
	}
	pthread_mutex_unlock(&a->lock);
	rc = do_refresh(a, err);
out_unlock:
	pthread_mutex_unlock(&a->refresh_lock);
	return rc;
}

enum auth_state auth_state(struct auth *a)
{
	enum auth_state s;

	pthread_mutex_lock(&a->lock);
	s = a->state;
	pthread_mutex_unlock(&a->lock);
	return s;
}

/* ---- the background refresh thread ------------------------------------ */

/* Sleep on the condvar for up to seconds (caller holds lock). */
static void wait_seconds(struct auth *a, int64_t seconds)
{
	struct timespec ts;

	if (seconds < 1)
		seconds = 1;
	if (seconds > MAX_THREAD_SLEEP)
		seconds = MAX_THREAD_SLEEP;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += seconds;
	pthread_cond_timedwait(&a->cond, &a->lock, &ts);
}

static void *refresh_thread(void *arg)
{
	struct auth *a = arg;
	int64_t now, due, retry_at = 0;
	long backoff = 0;
	char *err = NULL;
	int rc;

	pthread_mutex_lock(&a->lock);
	while (!a->stopping) {
		now = time(NULL);
		if (a->state != AUTH_OK) {
			wait_seconds(a, RELOAD_CHECK);
			if (a->stopping || a->state == AUTH_OK)
				continue;
			pthread_mutex_unlock(&a->lock);
			pthread_mutex_lock(&a->refresh_lock);
			if (a->app_only)
				fetch_app_token(a, NULL);   /* the secret may have been renewed */
			else
				reload_if_changed(a);
			pthread_mutex_unlock(&a->refresh_lock);
			pthread_mutex_lock(&a->lock);
			continue;
		}
		due = a->expires_at - a->ahead;
		if (due < retry_at)
			due = retry_at;
		if (now < due) {
			wait_seconds(a, due - now);
			continue;
		}
		pthread_mutex_unlock(&a->lock);
		rc = refresh_if_due(a, &err);
		if (rc < 0 && rc != -EACCES && http_offline_since(a->http)) {
			/* offline: the client said so once; the token stays, try again soon */
			log_debug("cannot refresh the sign-in while offline: %s",
				  err ? err : "unknown error");
			backoff = 0;
			retry_at = time(NULL) + RETRY_MIN;
		} else if (rc < 0 && rc != -EACCES) {
			backoff = backoff ? (backoff * 2 > RETRY_MAX ? RETRY_MAX : backoff * 2)
					  : RETRY_MIN;
			log_warnx("cannot refresh the sign-in: %s (trying again in %ld s)",
				  err ? err : "unknown error", backoff);
			retry_at = time(NULL) + backoff;
		} else {
			/* even a token with no lifetime never makes us refresh in a tight loop */
			backoff = 0;
			retry_at = time(NULL) + MIN_REFRESH_GAP;
		}
		free(err);
		err = NULL;
		pthread_mutex_lock(&a->lock);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

int auth_start(struct auth *a)
{
	int rc;

	pthread_mutex_lock(&a->lock);
	if (a->thread_started) {
		pthread_mutex_unlock(&a->lock);
		return 0;
	}
	a->stopping = 0;
	pthread_mutex_unlock(&a->lock);
	rc = pthread_create(&a->thread, NULL, refresh_thread, a);
	if (rc != 0)
		return -rc;
	pthread_mutex_lock(&a->lock);
	a->thread_started = 1;
	pthread_mutex_unlock(&a->lock);
	return 0;
}

void auth_stop(struct auth *a)
{
	int started;

	pthread_mutex_lock(&a->lock);
	started = a->thread_started;
	a->stopping = 1;
	a->thread_started = 0;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	if (started)
		pthread_join(a->thread, NULL);
}
