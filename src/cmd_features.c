/*
 * cmd_features.c - `onedrivefs versions|restore|cp|share`: OneDrive's own
 * features from the shell.
 *
 * Each command reads or sets one of the user.onedrive.* attributes that
 * the mount's daemon answers by calling Graph (fs_features.c): the path
 * alone names the mount and the item.  Only `versions --get` moves bytes
 * itself, from the pre-authenticated URL the daemon hands out (no token).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cmd_features.h"
#include "config.h"
#include "http.h"
#include "log.h"

#define ATTR_MAX (1024 * 1024)

static const char usage[] =
	"usage: onedrivefs versions PATH [--get ID]\n"
	"       onedrivefs restore PATH ID\n"
	"       onedrivefs cp SRC DST\n"
	"       onedrivefs share PATH [--edit] [--expiry DATE]\n"
	"PATH is inside a mounted OneDrive (see onedrivefs(1), FEATURES)\n";

int cmd_features_is(const char *name)
{
	return strcmp(name, "versions") == 0 || strcmp(name, "restore") == 0 ||
	       strcmp(name, "cp") == 0 || strcmp(name, "share") == 0;
}

static void say_failure(const char *what, const char *path, int e)
{
	char buf[128];
	const char *text = strerror_r(e, buf, sizeof(buf));

	if (e == ENOTSUP || e == ENODATA)
		log_error("cannot %s '%s': not a file of a mounted OneDrive (or not on the "
			  "service yet)", what, path);
	else
		log_error("cannot %s '%s': %s (the mount's log says more)", what, path, text);
}

/* Read attribute name of path (malloc'd, NUL-terminated); -errno. */
static int get_attr(const char *path, const char *name, char **out)
{
	size_t cap = 64 * 1024;

	for (;;) {
		char *buf = malloc(cap + 1);
		ssize_t n;

		if (!buf)
			return -ENOMEM;
		n = getxattr(path, name, buf, cap);
		if (n >= 0) {
			buf[n] = '\0';
			*out = buf;
			return 0;
		}
		free(buf);
		if (errno != ERANGE || cap >= ATTR_MAX)
			return -errno;
		cap *= 4;
	}
}

static int sink_stdout(void *ctx, const char *data, size_t len)
{
	(void)ctx;
	return fwrite(data, 1, len, stdout) == len ? 0 : -EIO;
}

/* GET a pre-authenticated URL to stdout, never with a token. */
static int fetch(const char *url)
{
	struct odfs_config cfg;
	struct http_client *http;
	struct http_request req;
	struct http_response resp;
	int rc;

	if (config_init(&cfg) < 0)
		return -ENOMEM;
	http = http_client_new(&cfg, "https://graph.microsoft.com");
	if (!http) {
		config_release(&cfg);
		return -ENOMEM;
	}
	http_request_init(&req, "GET", url);
	req.sink = sink_stdout;
	rc = http_perform(http, &req, &resp);
	if (rc == 0 && (resp.status < 200 || resp.status > 299))
		rc = -EIO;
	if (rc == 0 && fflush(stdout) != 0)
		rc = -EIO;
	http_response_release(&resp);
	http_client_free(http);
	config_release(&cfg);
	return rc;
}

static int cmd_versions(int argc, char **argv)
{
	char *text = NULL, *line, *save = NULL, *name = NULL;
	const char *path = argv[1];
	int rc;

	if (argc == 4 && strcmp(argv[2], "--get") == 0) {
		if (isatty(STDOUT_FILENO)) {
			log_error("refusing to write a file's bytes to a terminal: redirect stdout, "
				  "e.g. 'onedrivefs versions PATH --get ID > old'");
			return 1;
		}
		if (asprintf(&name, "user.onedrive.versionurl.%s", argv[3]) < 0)
			return 1;
		rc = get_attr(path, name, &text);
		free(name);
		if (rc == 0)
			rc = fetch(text);
		free(text);
		if (rc) {
			say_failure("read this version of", path, -rc);
			return 1;
		}
		return 0;
	}
	if (argc != 2) {
		fputs(usage, stderr);
		return 1;
	}
	rc = get_attr(path, "user.onedrive.versions", &text);
	if (rc) {
		say_failure("list the versions of", path, -rc);
		return 1;
	}
	printf("%-24s %-20s %12s  %s\n", "ID", "MODIFIED (UTC)", "SIZE", "BY");
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[4] = { line, "", "", "" }, *p = line;

		for (int i = 1; i < 4 && (p = strchr(p, '\t')); i++) {
			*p++ = '\0';
			f[i] = p;
		}
		printf("%-24s %-20s %12s  %s\n", f[0], f[1], f[2], f[3]);
	}
	free(text);
	return 0;
}

static int cmd_restore(int argc, char **argv)
{
	if (argc != 3) {
		fputs(usage, stderr);
		return 1;
	}
	if (setxattr(argv[1], "user.onedrive.restore", argv[2], strlen(argv[2]), 0) < 0) {
		say_failure("restore", argv[1], errno);
		return 1;
	}
	printf("restored version %s of %s\n", argv[2], argv[1]);
	return 0;
}

/* The last component of path, without trailing slashes, in place. */
static char *last_name(char *path)
{
	size_t n = strlen(path);
	char *slash;

	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* d_type of name in folder dir (DT_UNKNOWN counts as a file), -ENOENT if absent. */
static int child_type(const char *dir, const char *name)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int type = -ENOENT;

	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, name) == 0) {
			type = de->d_type == DT_DIR ? DT_DIR : DT_REG;
			break;
		}
	closedir(d);
	return type;
}

static int cmd_cp(int argc, char **argv)
{
	char *src_copy = NULL, *dst_copy = NULL, *parent_id = NULL, *value = NULL, *name;
	const char *parent;
	int rc, status = 1;

	if (argc != 3) {
		fputs(usage, stderr);
		return 1;
	}
	src_copy = strdup(argv[1]);
	dst_copy = strdup(argv[2]);
	if (!src_copy || !dst_copy)
		goto out_free;
	name = last_name(dst_copy);
	if (name == dst_copy) {
		parent = ".";
	} else {
		name[-1] = '\0';
		parent = *dst_copy ? dst_copy : "/";
	}
	/*
	 * Look DST up by listing its folder, not by stat(): a failed lookup
	 * would leave the kernel a negative entry hiding the copy for a while.
	 */
	rc = child_type(parent, name);
	if (rc == DT_DIR) {
		/* into an existing folder: the copy keeps the source's name */
		parent = argv[2];
		name = last_name(src_copy);
	} else if (rc >= 0) {
		log_error("cannot copy to '%s': it exists", argv[2]);
		goto out_free;
	}
	rc = get_attr(parent, "user.onedrive.id", &parent_id);
	if (rc) {
		say_failure("copy into", parent, -rc);
		goto out_free;
	}
	if (asprintf(&value, "%s\n%s", parent_id, name) < 0) {
		value = NULL;
		goto out_free;
	}
	if (setxattr(argv[1], "user.onedrive.copyto", value, strlen(value), 0) < 0) {
		say_failure("copy", argv[1], errno);
		goto out_free;
	}
	status = 0;
out_free:
	free(value);
	free(parent_id);
	free(src_copy);
	free(dst_copy);
	return status;
}

static int cmd_share(int argc, char **argv)
{
	const char *type = "view", *expiry = NULL;
	char *name = NULL, *link = NULL;
	int rc;

	if (argc < 2) {
		fputs(usage, stderr);
		return 1;
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--edit") == 0) {
			type = "edit";
		} else if (strcmp(argv[i], "--expiry") == 0 && i + 1 < argc) {
			expiry = argv[++i];
		} else {
			fputs(usage, stderr);
			return 1;
		}
	}
	/* a bare date means its first second, UTC */
	if (expiry && strlen(expiry) == 10)
		rc = asprintf(&name, "user.onedrive.share.%s.%sT00:00:00Z", type, expiry);
	else if (expiry)
		rc = asprintf(&name, "user.onedrive.share.%s.%s", type, expiry);
	else
		rc = asprintf(&name, "user.onedrive.share.%s", type);
	if (rc < 0)
		return 1;
	rc = get_attr(argv[1], name, &link);
	free(name);
	if (rc) {
		say_failure("share", argv[1], -rc);
		return 1;
	}
	printf("%s\n", link);
	free(link);
	return 0;
}

int cmd_features_main(int argc, char **argv)
{
	int status;

	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc < 2) {
		fputs(usage, stderr);
		return 1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("cannot initialise libcurl");
		return 1;
	}
	if (strcmp(argv[0], "versions") == 0)
		status = cmd_versions(argc, argv);
	else if (strcmp(argv[0], "restore") == 0)
		status = cmd_restore(argc, argv);
	else if (strcmp(argv[0], "cp") == 0)
		status = cmd_cp(argc, argv);
	else
		status = cmd_share(argc, argv);
	curl_global_cleanup();
	return status;
}
