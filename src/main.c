/*
 * main.c - the command line: options, the config file and profiles, and
 * the commands (login, logout, drives, features, or a mount: mount.c).
 *
 * Start-up follows sshfs: parse and validate everything, load the tokens
 * and make one Graph call, mount, and only then daemonize (mount.c), so
 * every start-up failure is one clear sentence on the terminal and exit
 * status 1.
 */
#define _GNU_SOURCE   /* asprintf */
#include <curl/curl.h>
#include <errno.h>
#include <fuse_lowlevel.h>
#include <fuse_opt.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "account.h"
#include "auth.h"
#include "cache.h"
#include "cmd_features.h"
#include "config.h"
#include "content.h"
#include "delta.h"
#include "fs.h"
#include "graph.h"
#include "journal.h"
#include "http.h"
#include "item.h"
#include "log.h"
#include "mount.h"
#include "probe.h"
#include "upload.h"
#include "util.h"

#ifndef ODFS_VERSION
#define ODFS_VERSION "0.1.0"
#endif


static const char usage_text[] =
"usage: onedrivefs [-f] [-d] [--profile NAME] [-o KEY=VALUE,...] MOUNTPOINT\n"
"       onedrivefs login [--browser | --device-code] [--profile NAME] [-o KEY=VALUE,...]\n"
"       onedrivefs logout [--revoke] [--profile NAME] [-o KEY=VALUE,...]\n"
"       onedrivefs drives [--profile NAME] [-o KEY=VALUE,...]\n"
"       onedrivefs versions PATH [--get ID] | restore PATH ID | cp SRC DST\n"
"       onedrivefs share PATH [--edit] [--expiry DATE]   (PATH inside a mount)\n"
"       onedrivefs --help | --version\n"
"\n"
"commands:\n"
"  login            sign in: in the browser (--browser, the default with a display)\n"
"                   or with a code entered on another device (--device-code)\n"
"  logout           delete the stored tokens; --revoke also signs out every session\n"
"                   of a work or school account\n"
"  drives           list the drives you can reach, with the option that mounts each\n"
"  MOUNTPOINT       mount your OneDrive there (unmount: fusermount3 -u MOUNTPOINT)\n"
"\n"
"options:\n"
"  --profile NAME   another account: its own tokens and cache under\n"
"                   profiles/NAME/ of config_dir and cache_dir\n"
"  -f               stay in the foreground and log to stderr\n"
"  -d               debug messages (implies -f)\n"
"  -o KEY=VALUE     a setting below, or a FUSE mount option (allow_other, ro, ...)\n"
"  -h, --help       this text\n"
"  -V, --version    versions of onedrivefs, libfuse and libcurl\n"
"\n"
"settings (-o or ~/.config/onedrivefs/config as 'key = value' lines):\n"
"  client_id        application id of your app registration (required; see README)\n"
"  tenant           common (default), consumers, organizations, a tenant id or domain\n"
"  graph_url        default " ODFS_DEFAULT_GRAPH_URL "\n"
"  auth_url         default " ODFS_DEFAULT_AUTH_URL "\n"
"  scopes           default \"" ODFS_DEFAULT_SCOPES "\"\n"
"  auth             device_code, browser or client_credentials (app-only)\n"
"  client_secret_file  file (mode 0600) with the secret of a confidential app\n"
"  client_secret    the secret itself (prefer client_secret_file)\n"
"  redirect_port    port of the browser sign-in's http://localhost (0 = any)\n"
"  drive_id         mount this drive (see 'onedrivefs drives')\n"
"  user             mount this user's OneDrive (id or user@domain; app-only)\n"
"  site             a SharePoint site, HOST:/sites/NAME; its library: library\n"
"  library          document library of site, by name (Documents)\n"
"  config_dir       default $XDG_CONFIG_HOME/onedrivefs\n"
"  cache_dir        default $XDG_CACHE_HOME/onedrivefs\n"
"  dir_ttl          seconds a folder listing is trusted (60)\n"
"  poll_interval    seconds between checks for remote changes, 0 = off (30)\n"
"  page_size        entries per listing request, 0 = service default (1000)\n"
"  attr_timeout     seconds the kernel caches attributes (30)\n"
"  connect_timeout  seconds (15)\n"
"  io_timeout       seconds without progress before a transfer fails (30)\n"
"  max_retries      retries of throttled or failed requests (6)\n"
"  offline_probe    longest wait in seconds between checks for the service\n"
"                   while offline (15)\n"
"  readahead_max    largest readahead, K/M/G suffixes allowed (16M)\n"
"  content_cache_max  file content kept on disk (1G)\n"
"  upload_workers   files uploaded in parallel, 1 to 32 (4)\n"
"  small_uploads    files of up to 4M uploaded in parallel, 1 to 64 (32)\n"
"  upload_chunk     upload piece size, a multiple of 320K below 60M (10M)\n";

enum {
	KEY_HELP, KEY_VERSION, KEY_FOREGROUND, KEY_DEBUG, KEY_DEVICE_CODE, KEY_BROWSER,
	KEY_REVOKE,
};

enum command { CMD_MOUNT, CMD_LOGIN, CMD_LOGOUT, CMD_DRIVES };


/* What the command line said; our KEY=VALUE pairs wait until the file is read. */
struct cmdline {
	int login;             /* any command but a mount */
	enum command command;
	int browser, device_code, revoke;
	char *profile;         /* --profile NAME (fuse_opt fills it) */
	int help, version, foreground, debug;
	char *mountpoint;
	int had_source;         /* an fstab source came before the mountpoint */
	char **pairs;          /* "key=value" or "key", ours only */
	size_t npairs;
	char *error;           /* first problem found */
	struct odfs_config *cfg;
};

static const struct fuse_opt opt_spec[] = {
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("--device-code", KEY_DEVICE_CODE),
	FUSE_OPT_KEY("--browser", KEY_BROWSER),
	FUSE_OPT_KEY("--revoke", KEY_REVOKE),
	{ "--profile=%s", offsetof(struct cmdline, profile), 0 },
	{ "--profile %s", offsetof(struct cmdline, profile), 0 },
	FUSE_OPT_END
};

static void cmdline_error(struct cmdline *cl, char *msg)
{
	if (!cl->error)
		cl->error = msg;
	else
		free(msg);
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cmdline *cl = data;
	char name[128], **grown;
	size_t n;

	switch (key) {
	case KEY_HELP:
		cl->help = 1;
		return 0;
	case KEY_VERSION:
		cl->version = 1;
		return 0;
	case KEY_FOREGROUND:
		cl->foreground = 1;
		return 0;
	case KEY_DEBUG:
		cl->debug = cl->foreground = 1;
		return 0;
	case KEY_DEVICE_CODE:
	case KEY_BROWSER:
		if (cl->command != CMD_LOGIN)
			cmdline_error(cl, util_format("'%s' goes with 'onedrivefs login'", arg));
		*(key == KEY_BROWSER ? &cl->browser : &cl->device_code) = 1;
		if (cl->browser && cl->device_code)
			cmdline_error(cl, util_format("choose one of '--browser' and '--device-code'"));
		return 0;
	case KEY_REVOKE:
		if (cl->command != CMD_LOGOUT)
			cmdline_error(cl, util_format("'--revoke' goes with 'onedrivefs logout'"));
		cl->revoke = 1;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (!cl->login && !cl->mountpoint) {
			cl->mountpoint = strdup(arg);
			return 0;
		}
		if (!cl->login && !cl->had_source) {
			/*
			 * mount.fuse3 (fstab) calls "onedrivefs SOURCE MOUNTPOINT":
			 * the first argument was the source, which means nothing here.
			 */
			free(cl->mountpoint);
			cl->mountpoint = strdup(arg);
			cl->had_source = 1;
			return 0;
		}
		cmdline_error(cl, util_format("unexpected argument '%s' (see 'onedrivefs --help')", arg));
		return 0;
	case FUSE_OPT_KEY_OPT:
		break;
	default:
		return 1;
	}
	if (arg[0] == '-') {
		cmdline_error(cl, util_format("unknown option '%s' (see 'onedrivefs --help')", arg));
		return 0;
	}
	n = strcspn(arg, "=");
	snprintf(name, sizeof(name), "%.*s", (int)(n < sizeof(name) ? n : sizeof(name) - 1), arg);
	if (config_is_key(name)) {
		grown = realloc(cl->pairs, (cl->npairs + 1) * sizeof(*grown));
		if (!grown || !(grown[cl->npairs] = strdup(arg))) {
			cl->pairs = grown ? grown : cl->pairs;
			cmdline_error(cl, util_format("out of memory"));
			return 0;
		}
		cl->pairs = grown;
		cl->npairs++;
		return 0;
	}
	if (cl->login) {
		cmdline_error(cl, util_format("unknown setting '%s' (see 'onedrivefs --help')", name));
		return 0;
	}
	if (strcmp(arg, "allow_other") == 0)
		cl->cfg->allow_other = 1;
	return 1;   /* a mount option: libfuse's business */
}

static void cmdline_release(struct cmdline *cl)
{
	for (size_t i = 0; i < cl->npairs; i++)
		free(cl->pairs[i]);
	free(cl->pairs);
	free(cl->mountpoint);
	free(cl->profile);
	free(cl->error);
}

/* Apply our "key=value" pairs; with only_key set, just that key. */
static int apply_pairs(struct cmdline *cl, struct odfs_config *cfg, const char *only_key)
{
	char *key, *eq, *err = NULL;
	int rc;

	for (size_t i = 0; i < cl->npairs; i++) {
		key = cl->pairs[i];
		eq = strchr(key, '=');
		if (eq)
			*eq = '\0';
		rc = only_key && strcmp(key, only_key) != 0 ? 0 :
		     config_set(cfg, key, eq ? eq + 1 : NULL, &err);
		if (eq)
			*eq = '=';
		if (rc < 0) {
			log_error("%s", err ? err : "invalid option");
			free(err);
			return -1;
		}
	}
	return 0;
}

/* A profile name: letters, digits, '.', '_', '-', not starting with '.'. */
static int valid_profile(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 64 || name[0] == '.')
		return 0;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789._-") == n;
}

/*
 * --profile NAME: tokens, config and cache under profiles/NAME/ of the
 * default folders; the profile's own config file, then -o again (it wins;
 * the folders stay the profile's).
 */
static int use_profile(struct cmdline *cl, struct odfs_config *cfg)
{
	char *dir, *path, *key, *eq, *err = NULL;
	int rc = 0;

	if (!valid_profile(cl->profile)) {
		log_error("invalid profile name '%s': use letters, digits, '.', '_' and '-'",
			  cl->profile);
		return -1;
	}
	if (asprintf(&dir, "%s/profiles/%s", cfg->config_dir, cl->profile) < 0)
		return -1;
	free(cfg->config_dir);
	cfg->config_dir = dir;
	if (asprintf(&dir, "%s/profiles/%s", cfg->cache_dir, cl->profile) < 0)
		return -1;
	free(cfg->cache_dir);
	cfg->cache_dir = dir;
	path = config_file_path(cfg);
	if (!path || config_load_file(cfg, path, &err) < 0) {
		log_error("%s", err ? err : "out of memory");
		rc = -1;
	}
	free(err);
	free(path);
	for (size_t i = 0; rc == 0 && i < cl->npairs; i++) {
		key = cl->pairs[i];
		if (strncmp(key, "config_dir", 10) == 0 || strncmp(key, "cache_dir", 9) == 0)
			continue;
		eq = strchr(key, '=');
		if (eq)
			*eq = '\0';
		rc = config_set(cfg, key, eq ? eq + 1 : NULL, &err) < 0 ? -1 : 0;
		if (eq)
			*eq = '=';
		if (rc < 0)
			log_error("%s", err ? err : "invalid option");
		free(err);
		err = NULL;
	}
	return rc;
}

/* Defaults, then the config file, then the command line (which wins). */
static int load_settings(struct cmdline *cl, struct odfs_config *cfg)
{
	char *path, *err = NULL;
	int rc;

	/* -o config_dir decides where the config file is */
	if (apply_pairs(cl, cfg, "config_dir") < 0)
		return -1;
	path = config_file_path(cfg);
	if (!path) {
		log_error("out of memory");
		return -1;
	}
	rc = config_load_file(cfg, path, &err);
	if (rc < 0) {
		log_error("%s", err ? err : "cannot read the config file");
		free(err);
		goto out_free_path;
	}
	rc = apply_pairs(cl, cfg, NULL);
	if (rc == 0 && cl->profile)
		rc = use_profile(cl, cfg);
	if (rc == 0 && !cfg->client_id && !(cl->command == CMD_LOGOUT && !cl->revoke)) {
		log_error("no client_id set: register an app (see README) and put "
			  "'client_id = <application id>' in '%s' or pass -o client_id=...", path);
		rc = -1;
	}
out_free_path:
	free(path);
	return rc < 0 ? -1 : 0;
}

/* log_vmsg with variadic arguments */
static void log_fmt_level(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void log_fmt_level(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

static void fuse_log_to_log(enum fuse_log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static void fuse_log_to_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	/* libfuse sometimes builds one line from several calls: collect up to the newline */
	static __thread char line[1024];
	static __thread size_t len;
	enum log_level ours;
	int n;

	n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	if (n > 0)
		len += (size_t)n < sizeof(line) - len ? (size_t)n : sizeof(line) - len - 1;
	if (len > 0 && line[len - 1] != '\n' && len < sizeof(line) - 1)
		return;
	if (level <= FUSE_LOG_ERR)
		ours = LOG_LEVEL_ERROR;
	else if (level == FUSE_LOG_WARNING)
		ours = LOG_LEVEL_WARN;
	else if (level <= FUSE_LOG_INFO)
		ours = LOG_LEVEL_INFO;
	else
		ours = LOG_LEVEL_DEBUG;
	log_fmt_level(ours, "%s", line);
	len = 0;
	line[0] = '\0';
}

static void print_version(void)
{
	const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);

	printf("onedrivefs %s\nlibfuse %s\nlibcurl %s%s%s\n", ODFS_VERSION, fuse_pkgversion(),
	       cv->version, cv->ssl_version ? " " : "", cv->ssl_version ? cv->ssl_version : "");
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct odfs_config cfg;
	struct cmdline cl;
	int status = 1;

	log_init("onedrivefs", 0);
	fuse_set_log_func(fuse_log_to_log);
	if (argc > 1 && cmd_features_is(argv[1]))
		return cmd_features_main(argc - 1, argv + 1);
	memset(&cl, 0, sizeof(cl));
	if (config_init(&cfg) < 0) {
		log_error("out of memory");
		return 1;
	}
	cl.cfg = &cfg;
	if (argc > 1 && (strcmp(argv[1], "login") == 0 || strcmp(argv[1], "logout") == 0 ||
			 strcmp(argv[1], "drives") == 0)) {
		cl.login = 1;
		cl.command = argv[1][0] == 'd' ? CMD_DRIVES :
			     strcmp(argv[1], "login") == 0 ? CMD_LOGIN : CMD_LOGOUT;
		/* drop the command so libfuse's parser sees options only */
		args = (struct fuse_args)FUSE_ARGS_INIT(0, NULL);
		for (int i = 0; i < argc; i++)
			if (i != 1 && fuse_opt_add_arg(&args, argv[i]) < 0)
				goto out_release;
	}
	if (fuse_opt_parse(&args, &cl, opt_spec, opt_proc) < 0) {
		log_error("cannot parse the command line (see 'onedrivefs --help')");
		goto out_release;
	}
	if (cl.help) {
		fputs(usage_text, stdout);
		status = 0;
		goto out_release;
	}
	if (cl.version) {
		print_version();
		status = 0;
		goto out_release;
	}
	if (cl.error) {
		log_error("%s", cl.error);
		goto out_release;
	}
	if (!cl.login && !cl.mountpoint) {
		log_error("no mountpoint given: use 'onedrivefs MOUNTPOINT' (or 'onedrivefs --help')");
		goto out_release;
	}
	cfg.foreground = cl.foreground;
	cfg.debug = cl.debug;
	log_init("onedrivefs", cl.debug);
	if (load_settings(&cl, &cfg) < 0)
		goto out_release;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("cannot initialise libcurl");
		goto out_release;
	}
	if (cl.command == CMD_LOGIN)
		status = account_login(&cfg, cl.browser ? ACCOUNT_BROWSER :
				       cl.device_code ? ACCOUNT_DEVICE_CODE : ACCOUNT_AUTO) < 0;
	else if (cl.command == CMD_LOGOUT)
		status = account_logout(&cfg, cl.revoke) < 0;
	else if (cl.command == CMD_DRIVES)
		status = account_drives(&cfg) < 0;
	else
		status = mount_run(&cfg, &args, cl.mountpoint);
	curl_global_cleanup();
out_release:
	cmdline_release(&cl);
	config_release(&cfg);
	fuse_opt_free_args(&args);
	return status;
}
