/*
 * config.h - settings: defaults, the config file and -o KEY=VALUE keys.
 *
 * Precedence: built-in defaults < $XDG_CONFIG_HOME/onedrivefs/config
 * (`key = value` lines, '#' comments) < -o on the command line.  The
 * caller applies the file first and the command line second.
 * Every string field is owned by the struct and freed by config_release().
 */
#ifndef ODFS_CONFIG_H
#define ODFS_CONFIG_H

#include <stddef.h>

#define ODFS_DEFAULT_GRAPH_URL "https://graph.microsoft.com/v1.0"
#define ODFS_DEFAULT_AUTH_URL "https://login.microsoftonline.com"
/* Upload session fragments must be multiples of this (graph-notes §6.3). */
#define ODFS_UPLOAD_CHUNK_UNIT 327680L
#define ODFS_DEFAULT_SCOPES "User.Read Files.ReadWrite.All Sites.Read.All offline_access"

struct odfs_config {
	char *client_id;       /* no default: each user registers an app */
	char *tenant;          /* common, consumers, organizations, id or domain */
	char *graph_url;       /* no trailing slash */
	char *auth_url;        /* identity host; /{tenant}/oauth2/v2.0/... appended */
	char *scopes;          /* space separated */
	char *config_dir;      /* $XDG_CONFIG_HOME/onedrivefs (tokens, config) */
	char *cache_dir;       /* $XDG_CACHE_HOME/onedrivefs */
	long dir_ttl;          /* seconds a folder listing is trusted (default 60) */
	long page_size;        /* $top for listings (default 1000; 0 = server default) */
	long poll_interval;    /* seconds between delta rounds (default 30; 0 = no delta,
	                          folders are listed again after dir_ttl) */
	long attr_timeout;     /* kernel attribute/entry cache seconds (default 30) */
	long connect_timeout;  /* seconds (default 15) */
	long io_timeout;       /* seconds without progress before a transfer fails (default 30) */
	long max_retries;      /* retries for throttled/failed requests (default 6) */
	long offline_probe;    /* longest wait between checks for the service while
	                          offline, seconds (default 15) */
	long readahead_max;    /* bytes, upper bound of adaptive readahead (default 16 MiB) */
	long content_cache_max;/* bytes of file content kept on disk (default 1 GiB) */
	long upload_workers;   /* files uploaded in parallel (default 4, 1..32) */
	long small_uploads;    /* files of up to 4 MiB (one PUT each) uploaded in parallel
	                          (default 32, 1..64) */
	long upload_chunk;     /* upload session fragment: a multiple of 320 KiB below
	                          60 MiB (default 10 MiB) */
	/* sign-in (auth.h) */
	char *auth;            /* device_code, browser or client_credentials; NULL = login
	                          picks browser with a display, else device_code */
	char *client_secret;   /* confidential clients; never logged (wiped on release) */
	char *client_secret_file; /* a 0600 file holding the secret (wins over client_secret) */
	long redirect_port;    /* loopback port of login --browser (default 0 = any free port) */
	/* which drive to mount (graph_open_drive): at most one of drive_id, user, site */
	char *drive_id;        /* /drives/{drive_id} */
	char *user;            /* /users/{id or UPN}/drive */
	char *site;            /* "host:/sites/path": a SharePoint site's library */
	char *library;         /* the library of site by name (default Documents) */
	int foreground;        /* -f */
	int debug;             /* -d */
	int allow_other;       /* set when -o allow_other was passed through */
};

/* Fill in the defaults (reads XDG variables and HOME).  Returns 0 or -ENOMEM. */
int config_init(struct odfs_config *cfg);
void config_release(struct odfs_config *cfg);

/*
 * Apply one KEY=VALUE.  Returns 0 when applied, 1 when the key is not ours
 * (the caller passes it on to libfuse), or -EINVAL with *err set to a
 * malloc'd sentence naming the key and what is wrong (caller frees).
 */
int config_set(struct odfs_config *cfg, const char *key, const char *value, char **err);

/* 1 if key is one of ours (config_set would handle it), else 0. */
int config_is_key(const char *key);

/*
 * Read a config file.  A missing file is not an error (returns 0).
 * Unknown keys and malformed lines are -EINVAL with *err like
 * "config file '/x/config', line 3: unknown key 'foo'".
 */
int config_load_file(struct odfs_config *cfg, const char *path, char **err);

/* Paths derived from the settings; malloc'd, caller frees. */
char *config_token_path(const struct odfs_config *cfg);  /* config_dir/tokens.json */
char *config_file_path(const struct odfs_config *cfg);   /* config_dir/config */

/* mkdir -p with the given mode; 0 or -errno. */
int config_mkdirs(const char *path, int mode);

#endif
