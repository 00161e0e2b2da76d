/*
 * auth_store.c - the files of sign-in: tokens.json and the client secret.
 *
 * tokens.json is written to a temporary file, fsync'd and renamed (mode
 * 0600), so a crash never leaves half a file and readers never see one.
 * The client secret file must be private (0600): one that others can read
 * is refused rather than silently fixed, because the secret has leaked.
 * Nothing read here ever reaches a log.
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
#include "log.h"
#include "util.h"

#define TOKEN_FILE_MAX (1024 * 1024)

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

	tmp = util_format("%s.tmp.%ld", path, (long)getpid());
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
int auth_store_tokens(struct auth *a, const char *access, const char *refresh,
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
		util_set_err(err, util_format("cannot create folder '%s': %s", cfg->config_dir,
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
		util_set_err(err, util_format("cannot store tokens in '%s': %s", path,
				    log_errstr(rc, ebuf, sizeof(ebuf))));
		goto out_free_text;
	}
	if (stat(path, &st) == 0) {
		pthread_mutex_lock(&a->lock);
		a->file_mtime = st.st_mtim;
		pthread_mutex_unlock(&a->lock);
	}
out_free_text:
	auth_free_secret(text);
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
				auth_free_secret(buf);
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

/*
 * Read tokens.json and install its tokens.  -ENOENT when absent or issued
 * for other settings (so the caller says "run login"), -EINVAL when damaged.
 */
int auth_load_file(struct auth *a, char **err)
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
			util_set_err(err, strdup(MSG_NOT_SIGNED_IN));
		else
			util_set_err(err, util_format("cannot read '%s': %s", path,
					    log_errstr(rc, ebuf, sizeof(ebuf))));
		goto out_free_path;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		util_set_err(err, util_format("'%s' is not a regular file: remove it and run "
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
		util_set_err(err, util_format("cannot read '%s': %s", path,
				    log_errstr(rc, ebuf, sizeof(ebuf))));
		goto out_close;
	}
	root = json_loadb(text, len, 0, NULL);
	access = root ? auth_json_str(root, "access_token") : NULL;
	refresh = root ? auth_json_str(root, "refresh_token") : NULL;
	exp = root ? json_object_get(root, "expires_at") : NULL;
	if (!access || !refresh || !*refresh || !json_is_integer(exp)) {
		rc = -EINVAL;
		util_set_err(err, util_format("'%s' is damaged: run 'onedrivefs login' again", path));
		goto out_free_json;
	}
	client_id = auth_json_str(root, "client_id");
	if (!client_id || !cfg->client_id || strcmp(client_id, cfg->client_id) != 0) {
		rc = -ENOENT;
		util_set_err(err, util_format("not signed in with client_id '%s' (the tokens in '%s' belong "
				    "to another app): run 'onedrivefs login' first",
				    cfg->client_id ? cfg->client_id : "", path));
		goto out_free_json;
	}
	/* a refresh token is only ever sent to the identity host that issued it */
	auth_url = auth_json_str(root, "auth_url");
	if (!auth_url || strcmp(auth_url, cfg->auth_url) != 0) {
		rc = -ENOENT;
		util_set_err(err, util_format("not signed in at '%s' (the tokens in '%s' came from '%s'): "
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
	auth_free_secret(a->access_token);
	auth_free_secret(a->refresh_token);
	a->access_token = new_access;
	a->refresh_token = new_refresh;
	new_access = new_refresh = NULL;
	a->expires_at = json_integer_value(exp);
	a->ahead = AUTH_REFRESH_AHEAD;
	a->state = AUTH_OK;
	a->expired_logged = 0;
	a->file_mtime = st.st_mtim;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	rc = 0;
out_free_json:
	auth_free_secret(new_access);
	auth_free_secret(new_refresh);
	json_decref(root);
	auth_free_secret(text);
out_close:
	close(fd);
out_free_path:
	free(path);
	return rc;
}

#define SECRET_FILE_MAX 4096

int auth_client_secret(struct auth *a, char **secret, char **err)
{
	const struct odfs_config *cfg = a->cfg;
	const char *path = cfg->client_secret_file;
	char ebuf[128], *text = NULL;
	struct stat st;
	size_t len = 0;
	int fd, rc;

	*secret = NULL;
	if (!path) {
		if (cfg->client_secret && !(*secret = strdup(cfg->client_secret)))
			return -ENOMEM;
		return 0;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rc = -errno;
		util_set_err(err, util_format("cannot read the client secret file '%s': %s", path,
				    log_errstr(rc, ebuf, sizeof(ebuf))));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		util_set_err(err, util_format("the client secret file '%s' is not a regular file", path));
		goto out_close;
	}
	if (st.st_mode & 077) {
		/* a secret others can read is no secret: refuse, do not fix silently */
		rc = -EACCES;
		util_set_err(err, util_format("the client secret file '%s' can be read by other users (mode "
				    "%04o): run 'chmod 600 %s'", path,
				    (unsigned)(st.st_mode & 07777), path));
		goto out_close;
	}
	rc = read_capped(fd, SECRET_FILE_MAX, &text, &len);
	if (rc < 0) {
		util_set_err(err, util_format("cannot read the client secret file '%s': %s", path,
				    log_errstr(rc, ebuf, sizeof(ebuf))));
		goto out_close;
	}
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' ||
			   text[len - 1] == ' ' || text[len - 1] == '\t'))
		text[--len] = '\0';
	if (len == 0 || strcspn(text, "\r\n") != len) {
		auth_free_secret(text);
		rc = -EINVAL;
		util_set_err(err, util_format("the client secret file '%s' must hold the secret on one line",
				    path));
		goto out_close;
	}
	*secret = text;
out_close:
	close(fd);
	return rc;
}

int auth_delete_tokens(const struct odfs_config *cfg, int *existed, char **err)
{
	char ebuf[128], *path = config_token_path(cfg);
	int dfd, rc = 0;

	*existed = 0;
	if (!path)
		return -ENOMEM;
	if (unlink(path) == 0) {
		*existed = 1;
		dfd = open(cfg->config_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
	} else if (errno != ENOENT) {
		rc = -errno;
		util_set_err(err, util_format("cannot remove '%s': %s", path, log_errstr(rc, ebuf, sizeof(ebuf))));
	}
	free(path);
	return rc;
}
