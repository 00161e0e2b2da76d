/*
 * mount.c - one mount from start to end: check the mountpoint, open the
 * drive (or its cache when the service is out of reach), the caches, the
 * upload queue, the journal of offline changes, the delta and probe
 * threads; mount, daemonize, run the FUSE loop; tear down in order.
 */
#define _GNU_SOURCE
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
#include "errmap.h"
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

/* Undo /proc/self/mountinfo's octal escapes (\040 for a space) in place. */
static void unescape_mountinfo(char *s)
{
	char *out = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*out++ = *s++;
		}
	}
	*out = '\0';
}

/* 1 if path (canonical) is a mount point according to /proc/self/mountinfo. */
static int is_mounted(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, *field, *end;
	size_t cap = 0;
	int found = 0;

	if (!f)
		return 0;
	while (!found && getline(&line, &cap, f) > 0) {
		/* the fifth space-separated field is the mount point */
		field = line;
		for (int i = 0; i < 4 && field; i++) {
			field = strchr(field, ' ');
			if (field)
				field++;
		}
		if (!field)
			continue;
		end = strchr(field, ' ');
		if (end)
			*end = '\0';
		unescape_mountinfo(field);
		found = strcmp(field, path) == 0;
	}
	free(line);
	fclose(f);
	return found;
}

/* One sentence for whatever is wrong with the mountpoint; canonical path in *canon. */
static int check_mountpoint(const char *mp, char **canon)
{
	char ebuf[128];
	struct stat st;

	*canon = NULL;
	if (stat(mp, &st) < 0) {
		int e = errno;

		if (e == ENOENT)
			log_error("mountpoint '%s' does not exist", mp);
		else if (e == ENOTCONN || (mp[0] == '/' && is_mounted(mp)))
			/* a FUSE mount whose daemon died or does not answer */
			log_error("mountpoint '%s' is already mounted (run 'fusermount3 -u %s' first)",
				  mp, mp);
		else
			log_error("cannot use mountpoint '%s': %s", mp, log_errstr(e, ebuf, sizeof(ebuf)));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_error("mountpoint '%s' is not a directory", mp);
		return -1;
	}
	*canon = realpath(mp, NULL);
	if (!*canon) {
		log_error("cannot use mountpoint '%s': %s", mp, log_errstr(errno, ebuf, sizeof(ebuf)));
		return -1;
	}
	if (is_mounted(*canon)) {
		log_error("mountpoint '%s' is already mounted (run 'fusermount3 -u %s' first)", mp, mp);
		free(*canon);
		*canon = NULL;
		return -1;
	}
	return 0;
}

/* The Graph host, for messages. */
static void graph_host(const struct odfs_config *cfg, char *host, size_t size)
{
	const char *p = strstr(cfg->graph_url, "://");

	p = p ? p + 3 : cfg->graph_url;
	snprintf(host, size, "%.*s", (int)strcspn(p, "/?#"), p);
}

/*
 * GET /me/drive and the root item: the one Graph call that proves we can
 * work.  A service that cannot be reached is left to the caller (*offline
 * set, nothing logged): the cache may know the drive.
 */
static int open_drive(struct auth *auth, struct graph *graph, struct drive_info *drive,
		      struct drive_item *root, int *offline)
{
	char *err = NULL, ebuf[128];
	int rc;

	*offline = 0;

	rc = graph_open_drive(graph, drive, &err);
	if (rc == 0) {
		rc = graph_get_root(graph, root, &err);
		if (rc < 0 && errmap_is_transport(rc)) {
			drive_info_release(drive);
			*offline = 1;
		} else if (rc < 0) {
			log_error("cannot read the root folder of the drive: %s",
				  err ? err : log_errstr(rc, ebuf, sizeof(ebuf)));
		}
		free(err);
		return rc;
	}
	if (auth_state(auth) == AUTH_EXPIRED) {
		/* auth.c has already said so, once */
	} else if (errmap_is_transport(rc)) {
		*offline = 1;
	} else {
		log_error("cannot open the drive: %s", err ? err : log_errstr(rc, ebuf, sizeof(ebuf)));
	}
	free(err);
	return rc;
}

/* Open the metadata database and make the drive root inode 1. */
static int open_cache(const struct odfs_config *cfg, const struct drive_info *drive,
		      const struct drive_item *root, struct cache **out)
{
	char *path, *err = NULL, ebuf[128];
	int rc;

	rc = config_mkdirs(cfg->cache_dir, 0700);
	if (rc < 0) {
		log_error("cannot create cache folder '%s': %s", cfg->cache_dir,
			  log_errstr(rc, ebuf, sizeof(ebuf)));
		return rc;
	}
	if (asprintf(&path, "%s/meta.db", cfg->cache_dir) < 0)
		return -ENOMEM;
	rc = cache_open(path, out, &err);
	if (rc < 0) {
		log_error("%s", err ? err : "cannot open the metadata cache");
		goto out_free_path;
	}
	rc = cache_set_root(*out, drive->id, root);
	if (rc < 0) {
		log_error("cannot record the drive root in '%s': %s", path,
			  log_errstr(rc, ebuf, sizeof(ebuf)));
		cache_close(*out);
		*out = NULL;
	}
out_free_path:
	free(err);
	free(path);
	return rc;
}

/* Drive facts kept in the cache's meta table for a start without the service. */
#define META_DRIVE_NAME "drive_name"
#define META_DRIVE_TYPE "drive_type"
#define META_QUOTA_TOTAL "quota_total"
#define META_QUOTA_REMAINING "quota_remaining"

static void store_drive_facts(struct cache *cache, const struct drive_info *drive)
{
	char num[32];

	if (drive->name)
		cache_meta_set(cache, META_DRIVE_NAME, drive->name);
	if (drive->drive_type)
		cache_meta_set(cache, META_DRIVE_TYPE, drive->drive_type);
	snprintf(num, sizeof(num), "%lld", (long long)drive->quota.total);
	cache_meta_set(cache, META_QUOTA_TOTAL, num);
	snprintf(num, sizeof(num), "%lld", (long long)drive->quota.remaining);
	cache_meta_set(cache, META_QUOTA_REMAINING, num);
}

static int64_t meta_int(struct cache *cache, const char *key)
{
	char *v = NULL, *end;
	long long n = 0;

	if (cache_meta_get(cache, key, &v) == 0) {
		errno = 0;
		n = strtoll(v, &end, 10);
		if (errno || end == v || *end || n < 0)
			n = 0;
	}
	free(v);
	return n;
}

/*
 * The service cannot be reached (rc): start from the drive the cache in
 * cache_dir holds, if it holds one with its root.  0 with drive and root
 * filled and graph addressing that drive, or rc with the error logged.
 */
static int open_drive_offline(const struct odfs_config *cfg, struct graph *graph, int rc,
			      struct drive_info *drive, struct drive_item *root)
{
	char *path = NULL, *err = NULL, *id = NULL, host[256], ebuf[128];
	struct cache *cache = NULL;
	struct cache_entry e;
	int ok = 0;

	memset(&e, 0, sizeof(e));
	graph_host(cfg, host, sizeof(host));
	if (asprintf(&path, "%s/meta.db", cfg->cache_dir) < 0) {
		path = NULL;
		goto out_report;
	}
	/* cache_open would create an empty one */
	if (access(path, F_OK) != 0 || cache_open(path, &cache, &err) < 0)
		goto out_report;
	if (cache_meta_get(cache, "drive_id", &id) < 0 || !*id ||
	    (cfg->drive_id && strcasecmp(cfg->drive_id, id) != 0))
		goto out_report;
	if (cache_get(cache, 1, &e) < 0 || !e.item.id || drive_item_copy(root, &e.item) < 0)
		goto out_report;
	drive->id = strdup(id);
	drive->name = NULL;
	drive->drive_type = NULL;
	cache_meta_get(cache, META_DRIVE_NAME, &drive->name);
	cache_meta_get(cache, META_DRIVE_TYPE, &drive->drive_type);
	drive->quota.total = meta_int(cache, META_QUOTA_TOTAL);
	drive->quota.remaining = meta_int(cache, META_QUOTA_REMAINING);
	drive->quota.used = drive->quota.total > drive->quota.remaining ?
			    drive->quota.total - drive->quota.remaining : 0;
	if (!drive->id || graph_use_drive(graph, id) < 0) {
		drive_info_release(drive);
		drive_item_release(root);
		goto out_report;
	}
	ok = 1;
	log_warnx("cannot reach '%s' (%s): mounting from the cache; changes are sent when it "
		  "returns", host, log_errstr(rc, ebuf, sizeof(ebuf)));
out_report:
	if (!ok)
		log_error("cannot reach '%s': %s", host, log_errstr(rc, ebuf, sizeof(ebuf)));
	cache_entry_release(&e);
	if (cache)
		cache_close(cache);
	free(id);
	free(err);
	free(path);
	return ok ? 0 : rc;
}

/*
 * The HTTP client's state hook: back online, queued uploads and the delta
 * thread go at once; either way the prober looks again.  active guards the
 * teardown, when the queue and delta are freed under a running content
 * stream that may still see a change.
 */
struct mount_hooks {
	pthread_mutex_t lock;
	int active;                  /* lock */
	struct fs_context *ctx;
	struct probe *probe;
};

static void state_changed(void *arg, int online)
{
	struct mount_hooks *h = arg;

	pthread_mutex_lock(&h->lock);
	if (h->active) {
		if (online) {
			journal_kick(h->ctx->journal);   /* name changes first; it then kicks uploads */
			delta_kick(h->ctx->delta);
		}
		upload_kick(h->ctx->upload);   /* online: go; offline: fsync waiters return */
		probe_wake(h->probe);
	}
	pthread_mutex_unlock(&h->lock);
}

static void hooks_set_active(struct mount_hooks *h, int active)
{
	pthread_mutex_lock(&h->lock);
	h->active = active;
	pthread_mutex_unlock(&h->lock);
}

/* upload.c's hook: the kernel must look name up again (never called under a lock). */
static void forget_entry(void *ctx, uint64_t parent_ino, const char *name)
{
	fuse_lowlevel_notify_inval_entry(ctx, parent_ino, name, strlen(name));
}

/* Uploads wait behind offline name changes, and while the service is out of reach. */
static int uploads_held(void *vctx)
{
	struct fs_context *ctx = vctx;

	if (graph_offline_since(ctx->graph))
		return UPLOAD_HOLD_OFFLINE;
	return journal_busy(ctx->journal) ? UPLOAD_HOLD_BUSY : UPLOAD_HOLD_NONE;
}

/* upload.c's hook: a rename it could not follow on the service waits in the journal. */
static int upload_times_journalled(void *vctx, const char *item_id, const struct timespec *mtime,
				   const struct timespec *crtime, const char *path)
{
	struct fs_context *ctx = vctx;

	return journal_add_times(ctx->journal, item_id, mtime, crtime, path);
}

static int upload_moved(void *vctx, const char *item_id, const char *new_parent_id,
			const char *new_name, const char *path)
{
	struct fs_context *ctx = vctx;

	return journal_add_move(ctx->journal, item_id, new_parent_id, new_name, path);
}

static int delta_held(void *vctx)
{
	struct fs_context *ctx = vctx;

	return journal_busy(ctx->journal);
}

/* journal.c's hook: as forget_entry, its context being the fs context. */
static void journal_forget_entry(void *vctx, uint64_t parent_ino, const char *name)
{
	struct fs_context *ctx = vctx;

	fuse_lowlevel_notify_inval_entry(ctx->se, parent_ino, name, strlen(name));
}

/* The offline changes are on the service: uploads and remote changes go on. */
static void journal_drained(void *vctx)
{
	struct fs_context *ctx = vctx;

	upload_kick(ctx->upload);
	delta_kick(ctx->delta);
}

/* A replayed move met a name held on the service: a stray of a lost create? */
static int journal_name_taken(void *vctx, const char *parent_id, const char *name)
{
	struct fs_context *ctx = vctx;

	return upload_drop_create_in_doubt_at(ctx->upload, parent_id, name);
}

/* Open the journal of offline name changes (again after daemonizing). */
static int open_journal(const struct odfs_config *cfg, struct fs_context *ctx)
{
	char *err = NULL;
	int rc;

	rc = journal_open(cfg, ctx->cache, ctx->graph, &ctx->journal, &err);
	if (rc < 0)
		log_error("%s", err ? err : "cannot open the journal of offline changes");
	free(err);
	return rc;
}

int mount_run(struct odfs_config *cfg, struct fuse_args *args, const char *mountpoint)
{
	struct fs_context ctx;
	struct drive_item root;
	struct http_client *http = NULL;
	struct auth *auth = NULL;
	struct graph *graph = NULL;
	struct fuse_session *se;
	struct fuse_loop_config *loop;
	struct probe *probe = NULL;
	static struct mount_hooks hooks = { .lock = PTHREAD_MUTEX_INITIALIZER };
	/*
	 * Static, so the parent that fuse_daemonize() ends with _exit() still
	 * points at it (no false leak under valgrind).
	 */
	static char *canon;
	char *err = NULL;
	int rc, status = 1, offline;

	memset(&ctx, 0, sizeof(ctx));
	memset(&root, 0, sizeof(root));
	if (check_mountpoint(mountpoint, &canon) < 0)
		return 1;
	/* libfuse checks the pass-through options now, before any network traffic */
	if (fuse_opt_add_arg(args, "-ofsname=onedrivefs,subtype=onedrivefs") < 0)
		goto out_free_canon;
	se = fuse_session_new(args, fs_operations(), sizeof(struct fuse_lowlevel_ops), &ctx);
	if (!se)
		goto out_free_canon;   /* libfuse said why */
	ctx.se = se;

	http = account_http_client(cfg);
	if (!http)
		goto out_destroy_session;
	auth = auth_new(cfg, http);
	if (!auth) {
		log_error("out of memory");
		goto out_free_http;
	}
	if (auth_load(auth, &err) < 0) {
		log_error("%s", err ? err : "not signed in: run 'onedrivefs login' first");
		goto out_free_auth;
	}
	graph = graph_new(cfg, http, auth);
	if (!graph) {
		log_error("out of memory");
		goto out_free_auth;
	}
	rc = open_drive(auth, graph, &ctx.drive, &root, &offline);
	if (rc < 0 && offline)
		rc = open_drive_offline(cfg, graph, rc, &ctx.drive, &root);
	if (rc < 0)
		goto out_free_graph;
	if (open_cache(cfg, &ctx.drive, &root, &ctx.cache) < 0)
		goto out_free_graph;
	if (!offline)
		store_drive_facts(ctx.cache, &ctx.drive);
	if (probe_open(cfg, graph, &probe) < 0) {
		log_error("out of memory");
		goto out_close_cache;
	}
	rc = content_open(cfg, graph, &ctx.content, &err);
	if (rc < 0) {
		log_error("%s", err ? err : "cannot open the content cache");
		goto out_close_cache;
	}
	rc = upload_open(cfg, ctx.cache, ctx.content, graph, &ctx.upload, &err);
	if (rc < 0) {
		log_error("%s", err ? err : "cannot open the upload journal");
		goto out_close_content;
	}
	if (cfg->poll_interval > 0 &&
	    delta_open(cfg, graph, ctx.cache, ctx.content, &ctx.delta) < 0) {
		log_error("out of memory");
		goto out_close_upload;
	}
	ctx.cfg = cfg;
	ctx.graph = graph;
	if (open_journal(cfg, &ctx) < 0)
		goto out_close_upload;
	ctx.uid = getuid();
	ctx.gid = getgid();

	if (fuse_set_signal_handlers(se) < 0) {
		log_error("cannot install signal handlers");
		goto out_close_upload;
	}
	if (fuse_session_mount(se, canon) < 0) {
		log_error("cannot mount on '%s'", mountpoint);
		goto out_remove_signals;
	}
	/* the parent exits here, once the mount is ready; the child carries on */
	if (fuse_daemonize(cfg->foreground) < 0) {
		log_error("cannot run in the background");
		goto out_unmount;
	}
	if (!cfg->foreground) {
		log_use_syslog();
		/* SQLite connections (and their POSIX locks) must not cross fork(): reopen */
		delta_close(ctx.delta);
		ctx.delta = NULL;
		journal_close(ctx.journal);
		ctx.journal = NULL;
		upload_close(ctx.upload);
		ctx.upload = NULL;
		content_close(ctx.content);
		ctx.content = NULL;
		cache_close(ctx.cache);
		ctx.cache = NULL;
		if (open_cache(cfg, &ctx.drive, &root, &ctx.cache) < 0)
			goto out_unmount;
		free(err);
		err = NULL;
		if (content_open(cfg, graph, &ctx.content, &err) < 0) {
			log_error("%s", err ? err : "cannot open the content cache");
			goto out_unmount;
		}
		free(err);
		err = NULL;
		if (upload_open(cfg, ctx.cache, ctx.content, graph, &ctx.upload, &err) < 0) {
			log_error("%s", err ? err : "cannot open the upload journal");
			goto out_unmount;
		}
		if (open_journal(cfg, &ctx) < 0)
			goto out_unmount;
		if (cfg->poll_interval > 0 &&
		    delta_open(cfg, graph, ctx.cache, ctx.content, &ctx.delta) < 0) {
			log_error("out of memory");
			goto out_unmount;
		}
	}
	log_info("mounted '%s' (%s drive) on '%s'", ctx.drive.name ? ctx.drive.name : "OneDrive",
		 ctx.drive.drive_type ? ctx.drive.drive_type : "unknown", canon);
	rc = auth_start(auth);
	if (rc < 0)
		log_warnx("cannot start the token refresh thread; tokens refresh on demand");
	upload_set_notify(ctx.upload, forget_entry, se);
	upload_set_hold(ctx.upload, uploads_held, &ctx);
	if (ctx.journal)
		upload_set_move(ctx.upload, upload_moved, &ctx);
	if (ctx.journal)
		upload_set_times_hook(ctx.upload, upload_times_journalled, &ctx);
	journal_set_hooks(ctx.journal, journal_forget_entry, journal_drained, &ctx);
	journal_set_taken_hook(ctx.journal, journal_name_taken);
	if (journal_start(ctx.journal) < 0)
		goto out_stop_auth;
	if (upload_start(ctx.upload) < 0)
		goto out_stop_auth;
	delta_set_hold(ctx.delta, delta_held, &ctx);
	if (ctx.delta && delta_start(ctx.delta, se) < 0) {
		log_warnx("cannot start the thread that follows remote changes; folders are "
			  "listed again after dir_ttl");
		delta_close(ctx.delta);
		ctx.delta = NULL;
	}
	hooks.ctx = &ctx;
	hooks.probe = probe;
	hooks_set_active(&hooks, 1);
	http_set_state_hook(http, state_changed, &hooks);
	if (probe_start(probe) < 0)
		log_warnx("cannot start the thread that watches for the service; after a spell "
			  "offline, the next request finds it again");

	loop = fuse_loop_cfg_create();
	if (!loop) {
		log_error("out of memory");
		goto out_stop_auth;
	}
	fuse_loop_cfg_set_clone_fd(loop, 0);
	fuse_loop_cfg_set_idle_threads(loop, 10);
	rc = fuse_session_loop_mt(se, loop);
	fuse_loop_cfg_destroy(loop);
	status = rc < 0 ? 1 : 0;
	log_info("unmounting '%s'", canon);
	fs_close_leftovers(&ctx);

out_stop_auth:
	hooks_set_active(&hooks, 0);
	probe_stop(probe);
	delta_stop(ctx.delta);   /* its notifications need the session mounted */
	journal_stop(ctx.journal);
	upload_stop(ctx.upload);
	auth_stop(auth);
out_unmount:
	fuse_session_unmount(se);
out_remove_signals:
	fuse_remove_signal_handlers(se);
out_close_upload:
	delta_close(ctx.delta);
	journal_close(ctx.journal);
	/* before the cache and content it borrows; unfinished rows stay journalled */
	upload_close(ctx.upload);
out_close_content:
	if (ctx.content)
		content_close(ctx.content);
out_close_cache:
	probe_close(probe);
	if (ctx.cache)
		cache_close(ctx.cache);
out_free_graph:
	drive_item_release(&root);
	drive_info_release(&ctx.drive);
	graph_free(graph);
out_free_auth:
	auth_free(auth);
out_free_http:
	http_client_free(http);
out_destroy_session:
	fuse_session_destroy(se);
out_free_canon:
	free(err);
	free(canon);
	canon = NULL;
	return status;
}

