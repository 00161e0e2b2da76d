/*
 * config.c - defaults, the config file and validation of every KEY=VALUE.
 *
 * All settings pass through config_set(), from the file and from -o alike,
 * so a value is checked the same way wherever it comes from and the error
 * names the key, the value and what would be accepted.
 */
#define _GNU_SOURCE   /* asprintf */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define CONFIG_LINE_MAX 4096
#define CONFIG_VALUE_MAX 2048

enum key_kind {
	KIND_CLIENT_ID, KIND_TENANT, KIND_URL, KIND_SCOPES, KIND_PATH,
	KIND_SECONDS, KIND_COUNT, KIND_BYTES, KIND_CHUNK,
	KIND_SECRET, KIND_AUTH, KIND_NAME, KIND_PORT,
};

struct key_desc {
	const char *name;
	enum key_kind kind;
	size_t offset;          /* of the char * or long field */
	long min, max;          /* numbers only */
};

#define STR_KEY(n, k) { #n, k, offsetof(struct odfs_config, n), 0, 0 }
#define NUM_KEY(n, k, lo, hi) { #n, k, offsetof(struct odfs_config, n), lo, hi }
#define MIB (1024L * 1024L)

static const struct key_desc keys[] = {
	STR_KEY(client_id, KIND_CLIENT_ID),
	STR_KEY(tenant, KIND_TENANT),
	STR_KEY(graph_url, KIND_URL),
	STR_KEY(auth_url, KIND_URL),
	STR_KEY(scopes, KIND_SCOPES),
	STR_KEY(cache_dir, KIND_PATH),
	STR_KEY(config_dir, KIND_PATH),
	STR_KEY(auth, KIND_AUTH),
	STR_KEY(client_secret, KIND_SECRET),
	STR_KEY(client_secret_file, KIND_PATH),
	NUM_KEY(redirect_port, KIND_PORT, 0, 65535),
	STR_KEY(drive_id, KIND_NAME),
	STR_KEY(user, KIND_NAME),
	STR_KEY(site, KIND_NAME),
	STR_KEY(library, KIND_NAME),
	NUM_KEY(dir_ttl, KIND_SECONDS, 0, 31536000),
	NUM_KEY(page_size, KIND_COUNT, 0, 1000),
	NUM_KEY(poll_interval, KIND_SECONDS, 0, 86400),
	NUM_KEY(attr_timeout, KIND_SECONDS, 0, 86400),
	NUM_KEY(connect_timeout, KIND_SECONDS, 1, 600),
	NUM_KEY(io_timeout, KIND_SECONDS, 1, 3600),
	NUM_KEY(max_retries, KIND_COUNT, 0, 100),
	NUM_KEY(offline_probe, KIND_SECONDS, 1, 3600),
	NUM_KEY(readahead_max, KIND_BYTES, 0, 1024 * MIB),
	NUM_KEY(content_cache_max, KIND_BYTES, 0, 1024L * 1024 * MIB),
	NUM_KEY(upload_workers, KIND_COUNT, 1, 32),
	NUM_KEY(small_uploads, KIND_COUNT, 1, 64),
	/* the largest multiple of 320 KiB below 60 MiB */
	NUM_KEY(upload_chunk, KIND_CHUNK, ODFS_UPLOAD_CHUNK_UNIT,
		60 * MIB - ODFS_UPLOAD_CHUNK_UNIT),
};

static const struct key_desc *find_key(const char *name)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

int config_is_key(const char *key)
{
	return key && find_key(key) != NULL;
}

/*
 * The message goes to a terminal or a log: control characters of a value
 * or a file name (escape sequences, newlines) are shown as '?'.
 */
static void set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char **err, const char *fmt, ...)
{
	va_list ap;
	char *p;

	if (!err)
		return;
	free(*err);
	*err = NULL;
	va_start(ap, fmt);
	if (vasprintf(err, fmt, ap) < 0)
		*err = NULL;
	va_end(ap);
	for (p = *err; p && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

/* The user's home: $HOME, else the password database. */
static char *home_dir(void)
{
	const char *home = getenv("HOME");
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (home && home[0] == '/')
		return strdup(home);
	if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_dir)
		return strdup(res->pw_dir);
	return strdup("/");
}

/* $XDG_x/onedrivefs, or ~/fallback/onedrivefs (relative XDG values are ignored, per the spec). */
static char *xdg_dir(const char *var, const char *fallback)
{
	const char *base = getenv(var);
	char *home, *path = NULL;

	if (base && base[0] == '/') {
		if (asprintf(&path, "%s/onedrivefs", base) < 0)
			return NULL;
		return path;
	}
	home = home_dir();
	if (!home)
		return NULL;
	if (asprintf(&path, "%s/%s/onedrivefs", strcmp(home, "/") ? home : "", fallback) < 0)
		path = NULL;
	free(home);
	return path;
}

int config_init(struct odfs_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->tenant = strdup("common");
	cfg->graph_url = strdup(ODFS_DEFAULT_GRAPH_URL);
	cfg->auth_url = strdup(ODFS_DEFAULT_AUTH_URL);
	cfg->scopes = strdup(ODFS_DEFAULT_SCOPES);
	cfg->config_dir = xdg_dir("XDG_CONFIG_HOME", ".config");
	cfg->cache_dir = xdg_dir("XDG_CACHE_HOME", ".cache");
	cfg->dir_ttl = 60;
	cfg->page_size = 1000;
	cfg->poll_interval = 30;
	cfg->attr_timeout = 30;
	cfg->connect_timeout = 15;
	cfg->io_timeout = 30;
	cfg->max_retries = 6;
	cfg->offline_probe = 15;
	cfg->readahead_max = 16 * MIB;
	cfg->content_cache_max = 1024 * MIB;
	cfg->upload_workers = 4;
	cfg->small_uploads = 32;
	cfg->upload_chunk = 10 * MIB;
	if (!cfg->tenant || !cfg->graph_url || !cfg->auth_url || !cfg->scopes ||
	    !cfg->config_dir || !cfg->cache_dir) {
		config_release(cfg);
		return -ENOMEM;
	}
	return 0;
}

void config_release(struct odfs_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->client_id);
	free(cfg->tenant);
	free(cfg->graph_url);
	free(cfg->auth_url);
	free(cfg->scopes);
	free(cfg->config_dir);
	free(cfg->cache_dir);
	free(cfg->auth);
	if (cfg->client_secret)
		explicit_bzero(cfg->client_secret, strlen(cfg->client_secret));
	free(cfg->client_secret);
	free(cfg->client_secret_file);
	free(cfg->drive_id);
	free(cfg->user);
	free(cfg->site);
	free(cfg->library);
	memset(cfg, 0, sizeof(*cfg));
}

static int has_space_or_control(const char *s)
{
	for (; *s; s++)
		if (isspace((unsigned char)*s) || iscntrl((unsigned char)*s))
			return 1;
	return 0;
}

static int has_control(const char *s)
{
	for (; *s; s++)
		if (iscntrl((unsigned char)*s))
			return 1;
	return 0;
}

/* common, consumers, organizations, a GUID or a domain: [A-Za-z0-9.-]+, sensibly placed dots and dashes. */
static int valid_tenant(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 253 || s[0] == '.' || s[0] == '-' || s[len - 1] == '.' ||
	    s[len - 1] == '-' || strstr(s, ".."))
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-')
			return 0;
	return 1;
}

/* Parse a whole number; sizes may end in K, M, G or T (powers of 1024). */
static int parse_number(const char *s, int allow_suffix, long *out)
{
	char *end;
	long v, mult = 1;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;   /* also refuses "-1" and "+1" */
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (end == s)
		return -EINVAL;
	if (allow_suffix && *end) {
		switch (toupper((unsigned char)*end)) {
		case 'K': mult = 1024L; break;
		case 'M': mult = 1024L * 1024; break;
		case 'G': mult = 1024L * 1024 * 1024; break;
		case 'T': mult = 1024L * 1024 * 1024 * 1024; break;
		default: return -EINVAL;
		}
		end++;
	}
	if (*end)
		return -EINVAL;
	if (v > LONG_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

static int set_number(struct odfs_config *cfg, const struct key_desc *k, const char *value,
		      char **err)
{
	long v;
	int rc = parse_number(value, k->kind == KIND_BYTES || k->kind == KIND_CHUNK, &v);

	if (rc == 0 && (v < k->min || v > k->max))
		rc = -ERANGE;
	if (rc == 0 && k->kind == KIND_CHUNK && v % ODFS_UPLOAD_CHUNK_UNIT)
		rc = -EINVAL;
	if (rc < 0) {
		switch (k->kind) {
		case KIND_CHUNK:
			set_err(err, "invalid value '%s' for '%s': expected a positive multiple of "
				"320K (%ld bytes) smaller than 60M, such as 5M or 10M", value, k->name,
				ODFS_UPLOAD_CHUNK_UNIT);
			break;
		case KIND_SECONDS:
			set_err(err, "invalid value '%s' for '%s': expected whole seconds from %ld to %ld",
				value, k->name, k->min, k->max);
			break;
		case KIND_BYTES:
			set_err(err, "invalid value '%s' for '%s': expected a size in bytes from %ld to %ld "
				"(suffixes K, M, G, T allowed)", value, k->name, k->min, k->max);
			break;
		default:
			set_err(err, "invalid value '%s' for '%s': expected a whole number from %ld to %ld",
				value, k->name, k->min, k->max);
			break;
		}
		return -EINVAL;
	}
	/* the offset comes from offsetof() of a long field, so it is aligned */
	*(long *)(void *)((char *)cfg + k->offset) = v;
	return 0;
}

/* "~/x" becomes $HOME/x; trailing slashes go (but "/" stays). */
static char *normalize_path(const char *value)
{
	char *home, *path = NULL;
	size_t len;

	if (value[0] == '~' && (value[1] == '/' || value[1] == '\0')) {
		home = home_dir();
		if (!home)
			return NULL;
		if (asprintf(&path, "%s%s", home, value + 1) < 0)
			path = NULL;
		free(home);
	} else {
		path = strdup(value);
	}
	if (!path)
		return NULL;
	len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		path[--len] = '\0';
	return path;
}

static int check_string(const struct key_desc *k, const char *value, char **err)
{
	const char *host;

	if (!*value) {
		set_err(err, "invalid value '' for '%s': must not be empty", k->name);
		return -EINVAL;
	}
	if (strlen(value) > CONFIG_VALUE_MAX) {
		set_err(err, "invalid value for '%s': longer than %d characters", k->name,
			CONFIG_VALUE_MAX);
		return -EINVAL;
	}
	switch (k->kind) {
	case KIND_CLIENT_ID:
		if (has_space_or_control(value)) {
			set_err(err, "invalid value '%s' for 'client_id': must not contain spaces "
				"(it is the application id of your app registration)", value);
			return -EINVAL;
		}
		break;
	case KIND_TENANT:
		if (!valid_tenant(value)) {
			set_err(err, "invalid value '%s' for 'tenant': expected common, consumers, "
				"organizations, a tenant id or a domain", value);
			return -EINVAL;
		}
		break;
	case KIND_URL:
		if (strncmp(value, "https://", 8) == 0)
			host = value + 8;
		else if (strncmp(value, "http://", 7) == 0)
			host = value + 7;
		else
			host = NULL;
		if (!host || !*host || *host == '/' || has_space_or_control(value)) {
			set_err(err, "invalid value '%s' for '%s': expected a URL starting with "
				"https:// or http://", value, k->name);
			return -EINVAL;
		}
		break;
	case KIND_SECRET:
		/* the value itself never goes into a message */
		if (has_space_or_control(value)) {
			set_err(err, "invalid value for '%s': must not contain spaces", k->name);
			return -EINVAL;
		}
		break;
	case KIND_AUTH:
		if (strcmp(value, "device_code") != 0 && strcmp(value, "browser") != 0 &&
		    strcmp(value, "client_credentials") != 0) {
			set_err(err, "invalid value '%s' for 'auth': expected device_code, browser "
				"or client_credentials", value);
			return -EINVAL;
		}
		break;
	case KIND_NAME:
		if (has_control(value)) {
			set_err(err, "invalid value for '%s': contains control characters", k->name);
			return -EINVAL;
		}
		break;
	case KIND_SCOPES:
		if (has_control(value)) {
			set_err(err, "invalid value for 'scopes': expected scope names separated by spaces");
			return -EINVAL;
		}
		break;
	case KIND_PATH:
		if (value[0] != '/' && !(value[0] == '~' && (value[1] == '/' || !value[1]))) {
			set_err(err, "invalid value '%s' for '%s': expected an absolute path", value,
				k->name);
			return -EINVAL;
		}
		if (has_control(value)) {
			set_err(err, "invalid value for '%s': the path contains control characters",
				k->name);
			return -EINVAL;
		}
		break;
	default:
		break;
	}
	return 0;
}

int config_set(struct odfs_config *cfg, const char *key, const char *value, char **err)
{
	const struct key_desc *k = key ? find_key(key) : NULL;
	char *copy, **field;
	size_t len;

	if (err)
		*err = NULL;
	if (!k)
		return 1;
	if (!value) {
		set_err(err, "missing value for '%s': use %s=VALUE", key, key);
		return -EINVAL;
	}
	if (k->kind == KIND_SECONDS || k->kind == KIND_COUNT || k->kind == KIND_BYTES ||
	    k->kind == KIND_CHUNK || k->kind == KIND_PORT)
		return set_number(cfg, k, value, err);
	if (check_string(k, value, err) < 0)
		return -EINVAL;
	if (k->kind == KIND_PATH) {
		copy = normalize_path(value);
	} else {
		copy = strdup(value);
		if (copy && k->kind == KIND_URL) {
			len = strlen(copy);
			while (len > 0 && copy[len - 1] == '/')
				copy[--len] = '\0';
		}
	}
	if (!copy) {
		set_err(err, "out of memory");
		return -ENOMEM;
	}
	field = (char **)(void *)((char *)cfg + k->offset);
	free(*field);
	*field = copy;
	return 0;
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

int config_load_file(struct odfs_config *cfg, const char *path, char **err)
{
	FILE *f;
	char *line = NULL, ebuf[128], *key, *value, *eq, *why = NULL;
	unsigned lineno = 0;
	size_t cap = 0, len;
	ssize_t n;
	int rc = 0;

	if (err)
		*err = NULL;
	f = fopen(path, "re");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		rc = -errno;
		set_err(err, "cannot read config file '%s': %s", path,
			log_errstr(rc, ebuf, sizeof(ebuf)));
		return rc;
	}
	while ((n = getline(&line, &cap, f)) > 0) {
		lineno++;
		len = (size_t)n;
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		/* a NUL would silently cut the value short */
		if (strlen(line) != len) {
			set_err(err, "config file '%s', line %u: contains a NUL byte", path, lineno);
			rc = -EINVAL;
			goto out_close;
		}
		if (len > CONFIG_LINE_MAX) {
			set_err(err, "config file '%s', line %u: line longer than %d characters",
				path, lineno, CONFIG_LINE_MAX);
			rc = -EINVAL;
			goto out_close;
		}
		key = trim(line);
		if (!*key || *key == '#')
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			set_err(err, "config file '%s', line %u: expected 'key = value'", path, lineno);
			rc = -EINVAL;
			goto out_close;
		}
		*eq = '\0';
		value = trim(eq + 1);
		key = trim(key);
		if (!*key) {
			set_err(err, "config file '%s', line %u: expected 'key = value'", path, lineno);
			rc = -EINVAL;
			goto out_close;
		}
		rc = config_set(cfg, key, value, &why);
		if (rc == 1) {
			set_err(err, "config file '%s', line %u: unknown key '%s'", path, lineno, key);
			rc = -EINVAL;
			goto out_close;
		}
		if (rc < 0) {
			set_err(err, "config file '%s', line %u: %s", path, lineno,
				why ? why : "invalid value");
			free(why);
			goto out_close;
		}
	}
	if (ferror(f)) {
		rc = -EIO;
		set_err(err, "cannot read config file '%s': %s", path,
			log_errstr(EIO, ebuf, sizeof(ebuf)));
	}
out_close:
	free(line);
	fclose(f);
	return rc;
}

static char *join(const char *dir, const char *name)
{
	char *path;

	if (!dir || asprintf(&path, "%s/%s", dir, name) < 0)
		return NULL;
	return path;
}

char *config_token_path(const struct odfs_config *cfg)
{
	return join(cfg->config_dir, "tokens.json");
}

char *config_file_path(const struct odfs_config *cfg)
{
	return join(cfg->config_dir, "config");
}

int config_mkdirs(const char *path, int mode)
{
	char *copy, *p;
	struct stat st;
	int rc = 0;

	if (!path || !*path)
		return -EINVAL;
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	/* create each missing ancestor, then the directory itself */
	for (p = copy + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(copy, (mode_t)mode) < 0 && errno != EEXIST) {
			rc = -errno;
			goto out_free;
		}
		*p = saved;
		if (!saved)
			break;
	}
	if (stat(path, &st) < 0)
		rc = -errno;
	else if (!S_ISDIR(st.st_mode))
		rc = -ENOTDIR;
out_free:
	free(copy);
	return rc;
}
