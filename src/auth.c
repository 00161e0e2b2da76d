/*
 * auth.c - device-code sign-in, the token store and the refresh thread.
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
#include "config.h"
#include "errmap.h"
#include "http.h"
#include "log.h"

#define REFRESH_AHEAD 300          /* refresh when fewer seconds remain */
#define TOKEN_BODY_MAX (1024 * 1024)
#define TOKEN_FILE_MAX (1024 * 1024)
#define MAX_THREAD_SLEEP 60        /* re-check the wall clock at least this often (suspend) */
#define RELOAD_CHECK 30            /* while expired, look for a new tokens.json this often */
#define RETRY_MIN 15               /* background retry after a network failure, doubling */
#define RETRY_MAX 300
#define MIN_REFRESH_GAP 10         /* seconds between background refreshes, at least */

#define MSG_NOT_SIGNED_IN "not signed in: run 'onedrivefs login' first"
#define MSG_EXPIRED "sign-in expired or was revoked: run 'onedrivefs login'"

struct auth {
	const struct odfs_config *cfg;
	struct http_client *http;

	pthread_mutex_t refresh_lock;  /* held across a refresh request */
	pthread_mutex_t lock;          /* protects everything below */
	pthread_cond_t cond;           /* wakes the refresh thread (new token, stop) */
	char *access_token;
	char *refresh_token;
	int64_t expires_at;            /* unix seconds */
	long ahead;                    /* refresh when fewer seconds than this remain */
	enum auth_state state;
	int expired_logged;            /* the expiry sentence went to the log */
	struct timespec file_mtime;    /* of the tokens.json we loaded or wrote */
	int stopping;
	int thread_started;
	pthread_t thread;
};

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static void set_err(char **err, char *msg)
{
	if (!err) {
		free(msg);
		return;
	}
	free(*err);
	*err = msg;
}

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void release_response(struct http_response *resp)
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
	a->state = AUTH_NONE;
	a->ahead = REFRESH_AHEAD;
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
	free_secret(a->access_token);
	free_secret(a->refresh_token);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	pthread_mutex_destroy(&a->refresh_lock);
	free(a);
}

/* ---- the token file ---------------------------------------------------- */

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Write data to path atomically with mode 0600: temp file, fsync, rename, fsync dir. */
static int write_file_atomic(const char *dir, const char *path, const char *data, size_t len)
{
	char *tmp;
	int fd, dfd, rc;

	tmp = format("%s.tmp.%ld", path, (long)getpid());
	if (!tmp)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && errno == EEXIST) {
		/* left over by a crashed process with our pid */
		unlink(tmp);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	}
	if (fd < 0) {
		rc = -errno;
		goto out_free_tmp;
	}
	rc = write_all(fd, data, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		goto out_free_tmp;
	}
	/* make the rename itself durable */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
out_free_tmp:
	free(tmp);
	return rc;
}

/* Store the given tokens in tokens.json.  Caller holds refresh_lock. */
static int store_tokens(struct auth *a, const char *access, const char *refresh,
			int64_t expires_at, char **err)
{
	const struct odfs_config *cfg = a->cfg;
	char ebuf[128], *path, *text = NULL;
	struct stat st;
	json_t *obj;
	int rc;

	path = config_token_path(cfg);
	if (!path)
		return -ENOMEM;
	rc = config_mkdirs(cfg->config_dir, 0700);
	if (rc < 0) {
		set_err(err, format("cannot create folder '%s': %s", cfg->config_dir,
				    log_errstr(rc, ebuf, sizeof(ebuf))));
		goto out_free_path;
	}
	obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}",
			"client_id", cfg->client_id ? cfg->client_id : "",
			"tenant", cfg->tenant, "auth_url", cfg->auth_url,
			"access_token", access, "refresh_token", refresh,
			"expires_at", (json_int_t)expires_at);
	if (obj) {
		text = json_dumps(obj, JSON_INDENT(2));
		json_decref(obj);   /* jansson's copies of the tokens are freed unwiped */
	}
	if (!text) {
		rc = -ENOMEM;
		goto out_free_path;
	}
	rc = write_file_atomic(cfg->config_dir, path, text, strlen(text));
	if (rc < 0) {
		set_err(err, format("cannot store tokens in '%s': %s", path,
				    log_errstr(rc, ebuf, sizeof(ebuf))));
		goto out_free_text;
	}
	if (stat(path, &st) == 0) {
		pthread_mutex_lock(&a->lock);
		a->file_mtime = st.st_mtim;
		pthread_mutex_unlock(&a->lock);
	}
out_free_text:
	free_secret(text);
out_free_path:
	free(path);
	return rc;
}

/* Read up to max bytes of fd into a malloc'd NUL-terminated buffer. */
static int read_capped(int fd, size_t max, char **out, size_t *outlen)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap + 1), *bigger;
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (len == cap) {
			if (cap >= max) {
				free_secret(buf);
				return -EFBIG;
			}
			cap *= 2;
			bigger = realloc(buf, cap + 1);
			if (!bigger) {
				free(buf);
				return -ENOMEM;
			}
			buf = bigger;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			n = -errno;
			free(buf);
			return (int)n;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return 0;
}

static const char *json_str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/*
 * Read tokens.json and install its tokens.  -ENOENT when absent or issued
 * for other settings (so the caller says "run login"), -EINVAL when damaged.
 */
static int load_file(struct auth *a, char **err)
{
	const struct odfs_config *cfg = a->cfg;
	char ebuf[128], *path, *text = NULL;
	const char *client_id, *auth_url, *access, *refresh;
	char *new_access = NULL, *new_refresh = NULL;
	json_t *root = NULL, *exp;
	struct stat st;
	size_t len = 0;
	int fd, rc;

	path = config_token_path(cfg);
	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ENOENT)
			set_err(err, strdup(MSG_NOT_SIGNED_IN));
		else
			set_err(err, format("cannot read '%s': %s", path,
					    log_errstr(rc, ebuf, sizeof(ebuf))));
		goto out_free_path;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		set_err(err, format("'%s' is not a regular file: remove it and run "
				    "'onedrivefs login'", path));
		goto out_close;
	}
	if (st.st_mode & 077) {
		log_warnx("'%s' could be read by other users (mode %04o): changed it to 0600",
			  path, (unsigned)(st.st_mode & 07777));
		if (fchmod(fd, 0600) < 0)
			log_warn("cannot change the mode of '%s'", path);
	}
	rc = read_capped(fd, TOKEN_FILE_MAX, &text, &len);
	if (rc < 0) {
		set_err(err, format("cannot read '%s': %s", path,
				    log_errstr(rc, ebuf, sizeof(ebuf))));
		goto out_close;
	}
	root = json_loadb(text, len, 0, NULL);
	access = root ? json_str(root, "access_token") : NULL;
	refresh = root ? json_str(root, "refresh_token") : NULL;
	exp = root ? json_object_get(root, "expires_at") : NULL;
	if (!access || !refresh || !*refresh || !json_is_integer(exp)) {
		rc = -EINVAL;
		set_err(err, format("'%s' is damaged: run 'onedrivefs login' again", path));
		goto out_free_json;
	}
	client_id = json_str(root, "client_id");
	if (!client_id || !cfg->client_id || strcmp(client_id, cfg->client_id) != 0) {
		rc = -ENOENT;
		set_err(err, format("not signed in with client_id '%s' (the tokens in '%s' belong "
				    "to another app): run 'onedrivefs login' first",
				    cfg->client_id ? cfg->client_id : "", path));
		goto out_free_json;
	}
	/* a refresh token is only ever sent to the identity host that issued it */
	auth_url = json_str(root, "auth_url");
	if (!auth_url || strcmp(auth_url, cfg->auth_url) != 0) {
		rc = -ENOENT;
		set_err(err, format("not signed in at '%s' (the tokens in '%s' came from '%s'): "
				    "run 'onedrivefs login' first", cfg->auth_url, path,
				    auth_url ? auth_url : "elsewhere"));
		goto out_free_json;
	}
	new_access = strdup(access);
	new_refresh = strdup(refresh);
	if (!new_access || !new_refresh) {
		rc = -ENOMEM;
		goto out_free_json;
	}
	pthread_mutex_lock(&a->lock);
	free_secret(a->access_token);
	free_secret(a->refresh_token);
	a->access_token = new_access;
	a->refresh_token = new_refresh;
	new_access = new_refresh = NULL;
	a->expires_at = json_integer_value(exp);
	a->ahead = REFRESH_AHEAD;
	a->state = AUTH_OK;
	a->expired_logged = 0;
	a->file_mtime = st.st_mtim;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	rc = 0;
out_free_json:
	free_secret(new_access);
	free_secret(new_refresh);
	json_decref(root);
	free_secret(text);
out_close:
	close(fd);
out_free_path:
	free(path);
	return rc;
}

int auth_load(struct auth *a, char **err)
{
	int rc;

	if (err)
		*err = NULL;
	pthread_mutex_lock(&a->refresh_lock);
	rc = load_file(a, err);
	pthread_mutex_unlock(&a->refresh_lock);
	return rc;
}

/* ---- talking to the identity platform --------------------------------- */

/* POST an x-www-form-urlencoded body to {auth_url}/{tenant}/oauth2/v2.0/{endpoint}. */
static int post_form(struct auth *a, const char *endpoint, const char *body,
		     struct http_response *resp)
{
	struct http_request req;
	char *url;
	int rc;

	url = format("%s/%s/oauth2/v2.0/%s", a->cfg->auth_url, a->cfg->tenant, endpoint);
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

/* "name=value&..." with each value form-escaped; NULL-terminated name/value pairs. */
static char *form_body(const char *name, ...)
{
	va_list ap;
	char *body = strdup(""), *esc, *next;
	const char *value;

	va_start(ap, name);
	for (; name && body; name = va_arg(ap, const char *)) {
		value = va_arg(ap, const char *);
		esc = http_form_escape(value ? value : "");
		next = esc ? format("%s%s%s=%s", body, *body ? "&" : "", name, esc) : NULL;
		free_secret(esc);
		free_secret(body);
		body = next;
	}
	va_end(ap);
	return body;
}

struct oauth_error {
	char code[64];     /* "invalid_grant", or "" */
	char aadsts[16];   /* "70008" from "AADSTS70008: ...", or "" */
};

/* Pull the error code and the AADSTS number (never the whole description). */
static void parse_oauth_error(const struct http_response *resp, struct oauth_error *oe)
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
static char *describe_oauth_error(struct auth *a, long status, const struct oauth_error *oe)
{
	const struct odfs_config *cfg = a->cfg;
	const char *code = oe->code;
	char ax[32];

	aadsts_suffix(oe, ax, sizeof(ax));
	if (strcmp(oe->aadsts, "700016") == 0 || strcmp(code, "unauthorized_client") == 0)
		return format("the app '%s' was not found or may not sign in at tenant '%s' "
			      "(%s%s): check client_id and tenant", cfg->client_id, cfg->tenant,
			      code[0] ? code : "unauthorized_client", ax);
	if (strcmp(oe->aadsts, "50194") == 0)
		return format("the app '%s' is single-tenant and cannot use tenant '%s' (%s%s): "
			      "set tenant to your tenant id or domain", cfg->client_id,
			      cfg->tenant, code, ax);
	if (strcmp(code, "invalid_client") == 0)
		return format("the service refused client_id '%s' (invalid_client%s): check "
			      "client_id and that the app registration allows public client flows",
			      cfg->client_id, ax);
	if (strcmp(code, "authorization_declined") == 0)
		return strdup("sign-in was declined in the browser; nothing was stored");
	if (strcmp(code, "expired_token") == 0)
		return strdup("the code expired before sign-in finished; run 'onedrivefs login' again");
	if (strcmp(code, "bad_verification_code") == 0)
		return format("the service did not recognise the device code (bad_verification_code%s); "
			      "run 'onedrivefs login' again", ax);
	if (strcmp(code, "invalid_scope") == 0)
		return format("the service refused the scopes '%s' (invalid_scope%s): check the "
			      "scopes setting", cfg->scopes, ax);
	if (needs_login(code))
		return format(MSG_EXPIRED " (the service said: %s%s)", code, ax);
	if (strcmp(oe->aadsts, "90002") == 0)
		return format("tenant '%s' was not found (%s%s): check the tenant setting",
			      cfg->tenant, code, ax);
	if (strcmp(oe->aadsts, "50020") == 0 || strcmp(oe->aadsts, "9002332") == 0)
		return format("this account cannot sign in at tenant '%s' (%s%s): use tenant "
			      "common or consumers for a personal account, or your organization's "
			      "tenant", cfg->tenant, code, ax);
	if (strcmp(code, "invalid_request") == 0)
		return format("the service rejected the sign-in request (invalid_request%s): check "
			      "client_id and tenant", ax);
	if (strcmp(code, "temporarily_unavailable") == 0)
		return format("the sign-in service is temporarily unavailable (%s%s): try again "
			      "in a minute", code, ax);
	if (code[0])
		return format("sign-in failed: the service said '%s'%s (HTTP %ld)", code, ax, status);
	return format("sign-in failed: the service answered HTTP %ld", status);
}

static char *network_message(struct auth *a, int rc)
{
	char host[256], ebuf[128];

	return format("cannot reach '%s': %s", url_host(a->cfg->auth_url, host, sizeof(host)),
		      log_errstr(rc, ebuf, sizeof(ebuf)));
}

/* A number that may arrive as JSON integer or string ("3599" from older endpoints). */
static long json_seconds(json_t *v, long dflt)
{
	char *end;
	long n;

	if (json_is_integer(v))
		return (long)json_integer_value(v);
	if (json_is_string(v)) {
		errno = 0;
		n = strtol(json_string_value(v), &end, 10);
		if (errno == 0 && end != json_string_value(v) && *end == '\0')
			return n;
	}
	return dflt;
}

struct token_set {
	char *access;
	char *refresh;   /* NULL when the response had none */
	long expires_in;
};

static void token_set_release(struct token_set *t)
{
	free_secret(t->access);
	free_secret(t->refresh);
	memset(t, 0, sizeof(*t));
}

static int parse_tokens(const struct http_response *resp, struct token_set *t)
{
	const char *access, *refresh;
	json_t *root;
	int rc = -EINVAL;

	memset(t, 0, sizeof(*t));
	root = resp->body ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
	access = root ? json_str(root, "access_token") : NULL;
	if (!access || !*access)
		goto out_free_json;
	refresh = json_str(root, "refresh_token");
	t->access = strdup(access);
	t->refresh = refresh && *refresh ? strdup(refresh) : NULL;
	t->expires_in = json_seconds(json_object_get(root, "expires_in"), 3600);
	if (t->expires_in < 0)
		t->expires_in = 0;
	rc = 0;
	if (!t->access || (refresh && *refresh && !t->refresh)) {
		token_set_release(t);
		rc = -ENOMEM;
	}
out_free_json:
	json_decref(root);
	return rc;
}

/* Install new tokens in memory (after they were stored).  Takes ownership. */
static void install_tokens(struct auth *a, struct token_set *t, int64_t expires_at)
{
	pthread_mutex_lock(&a->lock);
	free_secret(a->access_token);
	a->access_token = t->access;
	if (t->refresh) {
		free_secret(a->refresh_token);
		a->refresh_token = t->refresh;
	}
	t->access = t->refresh = NULL;
	a->expires_at = expires_at;
	/* short-lived tokens (tests, odd tenants) refresh at half their life */
	a->ahead = t->expires_in / 2 < REFRESH_AHEAD ? t->expires_in / 2 : REFRESH_AHEAD;
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
	struct token_set t;
	char *refresh, *body, *msg;
	int64_t expires_at;
	int rc, log_it = 0;

	pthread_mutex_lock(&a->lock);
	refresh = a->refresh_token ? strdup(a->refresh_token) : NULL;
	pthread_mutex_unlock(&a->lock);
	if (!refresh) {
		set_err(err, strdup(MSG_NOT_SIGNED_IN));
		return -EACCES;
	}
	body = form_body("client_id", a->cfg->client_id, "grant_type", "refresh_token",
			 "refresh_token", refresh, "scope", a->cfg->scopes, NULL);
	free_secret(refresh);
	if (!body)
		return -ENOMEM;
	log_debug("refreshing the access token");
	rc = post_form(a, "token", body, &resp);
	free_secret(body);
	if (rc < 0) {
		/* no answer: not the user's fault, the caller retries later */
		set_err(err, network_message(a, rc));
		goto out_release;
	}
	if (resp.status == 200) {
		rc = parse_tokens(&resp, &t);
		if (rc < 0) {
			set_err(err, strdup("the sign-in service sent a token response that could "
					    "not be read"));
			rc = -EIO;
			goto out_release;
		}
		expires_at = (int64_t)time(NULL) + t.expires_in;
		pthread_mutex_lock(&a->lock);
		/* the refresh token rotates: store the new one before anything else */
		refresh = strdup(t.refresh ? t.refresh : a->refresh_token);
		pthread_mutex_unlock(&a->lock);
		if (!refresh) {
			token_set_release(&t);
			rc = -ENOMEM;
			goto out_release;
		}
		msg = NULL;
		if (store_tokens(a, t.access, refresh, expires_at, &msg) < 0) {
			/* keep going in memory; the next refresh tries again */
			log_error("%s", msg ? msg : "cannot store tokens");
			free(msg);
		}
		free_secret(refresh);
		install_tokens(a, &t, expires_at);
		log_debug("access token refreshed, valid for %ld s", t.expires_in);
		rc = 0;
		goto out_release;
	}
	parse_oauth_error(&resp, &oe);
	if ((resp.status == 400 || resp.status == 401) && oe.code[0] &&
	    strcmp(oe.code, "temporarily_unavailable") != 0) {
		/* refused: only an interactive sign-in can fix this */
		msg = describe_oauth_error(a, resp.status, &oe);
		pthread_mutex_lock(&a->lock);
		a->state = AUTH_EXPIRED;
		log_it = !a->expired_logged;
		a->expired_logged = 1;
		pthread_cond_broadcast(&a->cond);
		pthread_mutex_unlock(&a->lock);
		if (log_it)
			log_error("%s", msg ? msg : MSG_EXPIRED);
		set_err(err, msg);
		rc = -EACCES;
		goto out_release;
	}
	set_err(err, describe_oauth_error(a, resp.status, &oe));
	rc = resp.status == 503 || strcmp(oe.code, "temporarily_unavailable") == 0 ? -EAGAIN : -EIO;
out_release:
	release_response(&resp);
	return rc;
}

/* Refresh if the token is due (another thread may have just done it). */
static int refresh_if_due(struct auth *a, char **err)
{
	int64_t now;
	int due, rc = 0;
	enum auth_state state;

	pthread_mutex_lock(&a->refresh_lock);
	pthread_mutex_lock(&a->lock);
	now = time(NULL);
	state = a->state;
	due = !a->access_token || a->expires_at - now <= a->ahead;
	pthread_mutex_unlock(&a->lock);
	if (state == AUTH_EXPIRED) {
		set_err(err, strdup(MSG_EXPIRED));
		rc = -EACCES;
	} else if (state == AUTH_NONE) {
		set_err(err, strdup(MSG_NOT_SIGNED_IN));
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
	/* a failed early refresh still leaves a usable token for a while */
	if (a->access_token && a->expires_at > now + 10 &&
	    (rc == 0 || (rc != -EACCES && a->state == AUTH_OK))) {
		*token = strdup(a->access_token);
		rc = *token ? 0 : -ENOMEM;
		if (rc == 0 && err) {
			free(*err);
			*err = NULL;
		}
	} else if (rc == 0) {
		rc = -EIO;
		set_err(err, strdup("the sign-in service gave an access token that has already expired"));
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
	pthread_mutex_lock(&a->lock);
	if (a->state == AUTH_EXPIRED) {
		pthread_mutex_unlock(&a->lock);
		set_err(err, strdup(MSG_EXPIRED));
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

/* ---- device-code sign-in ---------------------------------------------- */

/* Print service text, replacing control characters (no terminal escapes from the network). */
static void print_clean(FILE *out, const char *s)
{
	for (; *s; s++)
		fputc(((unsigned char)*s < 0x20 && *s != '\n') || *s == 0x7f ? '?' : *s, out);
}

static void sleep_seconds(long seconds)
{
	struct timespec ts = { .tv_sec = seconds, .tv_nsec = 0 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int64_t monotonic_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

struct device_code {
	char *device_code;
	long expires_in;
	long interval;
};

/* Ask for a code and tell the user what to do with it. */
static int request_device_code(struct auth *a, FILE *out, struct device_code *dc, char **err)
{
	struct http_response resp;
	struct oauth_error oe;
	const char *code, *user_code, *uri, *message;
	json_t *root = NULL;
	long minutes;
	char *body;
	int rc;

	memset(dc, 0, sizeof(*dc));
	body = form_body("client_id", a->cfg->client_id, "scope", a->cfg->scopes, NULL);
	if (!body)
		return -ENOMEM;
	rc = post_form(a, "devicecode", body, &resp);
	free(body);
	if (rc < 0) {
		set_err(err, network_message(a, rc));
		goto out_release;
	}
	if (resp.status != 200) {
		parse_oauth_error(&resp, &oe);
		set_err(err, describe_oauth_error(a, resp.status, &oe));
		rc = -EACCES;
		goto out_release;
	}
	root = json_loadb(resp.body ? resp.body : "", resp.body_len, 0, NULL);
	code = root ? json_str(root, "device_code") : NULL;
	user_code = root ? json_str(root, "user_code") : NULL;
	uri = root ? json_str(root, "verification_uri") : NULL;
	message = root ? json_str(root, "message") : NULL;
	if (!code || !user_code || !uri) {
		set_err(err, strdup("the sign-in service sent a device code response that could "
				    "not be read"));
		rc = -EIO;
		goto out_free_json;
	}
	dc->device_code = strdup(code);
	if (!dc->device_code) {
		rc = -ENOMEM;
		goto out_free_json;
	}
	dc->expires_in = json_seconds(json_object_get(root, "expires_in"), 900);
	dc->interval = json_seconds(json_object_get(root, "interval"), 5);
	if (dc->expires_in <= 0)
		dc->expires_in = 900;
	if (dc->interval <= 0)
		dc->interval = 5;   /* RFC 8628's default */
	if (message) {
		print_clean(out, message);
	} else {
		fputs("To sign in, open ", out);
		print_clean(out, uri);
		fputs(" and enter the code ", out);
		print_clean(out, user_code);
	}
	minutes = (dc->expires_in + 59) / 60;
	fprintf(out, "\nwaiting for you to finish signing in (the code expires in %ld minute%s)...\n",
		minutes, minutes == 1 ? "" : "s");
	fflush(out);
out_free_json:
	json_decref(root);
out_release:
	release_response(&resp);
	return rc;
}

int auth_login_device_code(struct auth *a, FILE *out, char **err)
{
	struct device_code dc;
	struct http_response resp;
	struct oauth_error oe;
	struct token_set t;
	int64_t deadline, expires_at;
	long status;
	char *body;
	int rc;

	if (err)
		*err = NULL;
	if (!a->cfg->client_id) {
		set_err(err, strdup("no client_id set: register an app and set client_id "
				    "(see README)"));
		return -EINVAL;
	}
	rc = request_device_code(a, out, &dc, err);
	if (rc < 0)
		return rc;
	deadline = monotonic_now() + dc.expires_in;
	body = form_body("grant_type", "urn:ietf:params:oauth:grant-type:device_code",
			 "client_id", a->cfg->client_id, "device_code", dc.device_code, NULL);
	if (!body) {
		rc = -ENOMEM;
		goto out_free_code;
	}
	for (;;) {
		/* never poll faster than asked (AADSTS50196 "loop detected") */
		sleep_seconds(dc.interval);
		if (monotonic_now() > deadline) {
			set_err(err, strdup("the code expired before sign-in finished; run "
					    "'onedrivefs login' again"));
			rc = -ETIMEDOUT;
			break;
		}
		rc = post_form(a, "token", body, &resp);
		if (rc < 0) {
			set_err(err, network_message(a, rc));
			release_response(&resp);
			break;
		}
		if (resp.status == 200) {
			rc = parse_tokens(&resp, &t);
			release_response(&resp);
			if (rc < 0) {
				set_err(err, strdup("the sign-in service sent a token response that "
						    "could not be read"));
				rc = -EIO;
				break;
			}
			if (!t.refresh) {
				token_set_release(&t);
				set_err(err, strdup("the service gave no refresh token: add "
						    "offline_access to scopes; nothing was stored"));
				rc = -EINVAL;
				break;
			}
			expires_at = (int64_t)time(NULL) + t.expires_in;
			pthread_mutex_lock(&a->refresh_lock);
			rc = store_tokens(a, t.access, t.refresh, expires_at, err);
			if (rc == 0)
				install_tokens(a, &t, expires_at);
			pthread_mutex_unlock(&a->refresh_lock);
			token_set_release(&t);
			break;
		}
		parse_oauth_error(&resp, &oe);
		status = resp.status;
		release_response(&resp);
		if (strcmp(oe.code, "authorization_pending") == 0)
			continue;
		if (strcmp(oe.code, "slow_down") == 0) {
			dc.interval += 5;   /* RFC 8628 3.5 */
			continue;
		}
		set_err(err, describe_oauth_error(a, status, &oe));
		rc = -EACCES;
		break;
	}
	free_secret(body);
out_free_code:
	free_secret(dc.device_code);
	return rc;
}

/* ---- the background refresh thread ------------------------------------ */

/* While expired: if someone ran 'onedrivefs login' meanwhile, take the new tokens. */
static void try_reload(struct auth *a)
{
	struct timespec seen;
	struct stat st;
	char *path = config_token_path(a->cfg), *err = NULL;

	if (!path)
		return;
	pthread_mutex_lock(&a->lock);
	seen = a->file_mtime;
	pthread_mutex_unlock(&a->lock);
	if (stat(path, &st) == 0 &&
	    (st.st_mtim.tv_sec != seen.tv_sec || st.st_mtim.tv_nsec != seen.tv_nsec)) {
		pthread_mutex_lock(&a->refresh_lock);
		if (load_file(a, &err) == 0)
			log_info("signed in again: using the new tokens in '%s'", path);
		pthread_mutex_unlock(&a->refresh_lock);
		free(err);
	}
	free(path);
}

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
			try_reload(a);
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
		if (rc < 0 && rc != -EACCES) {
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
