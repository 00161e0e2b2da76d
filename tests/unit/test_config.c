/*
 * test_config.c - defaults, config_set validation and the config file parser.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "unit.h"

static char tmpdir[] = "/tmp/odfs-test-config-XXXXXX";

/* Set key=value, expect failure, and check the message mentions `needle`. */
static int set_fails(struct odfs_config *cfg, const char *key, const char *value,
		     const char *needle)
{
	char *err = NULL;
	int rc = config_set(cfg, key, value, &err);
	int ok = rc == -EINVAL && err && strstr(err, needle);

	if (!ok)
		fprintf(stderr, "  %s=%s: rc %d, err '%s'\n", key, value ? value : "(null)", rc,
			err ? err : "(null)");
	free(err);
	return ok;
}

static int set_ok(struct odfs_config *cfg, const char *key, const char *value)
{
	char *err = NULL;
	int rc = config_set(cfg, key, value, &err);

	if (rc != 0)
		fprintf(stderr, "  %s=%s: rc %d, err '%s'\n", key, value, rc, err ? err : "(null)");
	free(err);
	return rc == 0;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

static void write_bytes(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return;
	fwrite(data, 1, len, f);
	fclose(f);
}

static void test_defaults(void)
{
	struct odfs_config cfg;

	setenv("XDG_CONFIG_HOME", "/xdg/conf", 1);
	setenv("XDG_CACHE_HOME", "/xdg/cache", 1);
	CHECK_INT(config_init(&cfg), 0);
	CHECK(cfg.client_id == NULL);
	CHECK_STR(cfg.tenant, "common");
	CHECK_STR(cfg.graph_url, "https://graph.microsoft.com/v1.0");
	CHECK_STR(cfg.auth_url, "https://login.microsoftonline.com");
	CHECK_STR(cfg.scopes, ODFS_DEFAULT_SCOPES);
	CHECK_STR(cfg.config_dir, "/xdg/conf/onedrivefs");
	CHECK_STR(cfg.cache_dir, "/xdg/cache/onedrivefs");
	CHECK_INT(cfg.dir_ttl, 60);
	CHECK_INT(cfg.page_size, 1000);
	CHECK_INT(cfg.attr_timeout, 30);
	CHECK_INT(cfg.connect_timeout, 15);
	CHECK_INT(cfg.io_timeout, 30);
	CHECK_INT(cfg.max_retries, 6);
	CHECK_INT(cfg.readahead_max, 16L * 1024 * 1024);
	CHECK_INT(cfg.content_cache_max, 1024L * 1024 * 1024);
	CHECK_INT(cfg.upload_workers, 4);
	CHECK_INT(cfg.small_uploads, 32);
	CHECK_INT(cfg.upload_chunk, 10L * 1024 * 1024);
	char *p = config_token_path(&cfg);
	CHECK_STR(p, "/xdg/conf/onedrivefs/tokens.json");
	free(p);
	p = config_file_path(&cfg);
	CHECK_STR(p, "/xdg/conf/onedrivefs/config");
	free(p);
	config_release(&cfg);
	CHECK(cfg.tenant == NULL);
	config_release(&cfg);   /* twice is harmless */
}

static void test_defaults_home(void)
{
	struct odfs_config cfg;

	setenv("XDG_CONFIG_HOME", "relative/ignored", 1);
	unsetenv("XDG_CACHE_HOME");
	setenv("HOME", "/home/someone", 1);
	CHECK_INT(config_init(&cfg), 0);
	CHECK_STR(cfg.config_dir, "/home/someone/.config/onedrivefs");
	CHECK_STR(cfg.cache_dir, "/home/someone/.cache/onedrivefs");
	config_release(&cfg);
}

static void test_numbers(void)
{
	struct odfs_config cfg;

	CHECK_INT(config_init(&cfg), 0);
	CHECK(set_ok(&cfg, "dir_ttl", "0"));
	CHECK_INT(cfg.dir_ttl, 0);
	CHECK(set_ok(&cfg, "dir_ttl", "300"));
	CHECK_INT(cfg.dir_ttl, 300);
	CHECK(set_ok(&cfg, "page_size", "2"));
	CHECK_INT(cfg.page_size, 2);
	CHECK(set_ok(&cfg, "max_retries", "0"));
	CHECK_INT(cfg.max_retries, 0);
	CHECK(set_ok(&cfg, "connect_timeout", "5"));
	CHECK_INT(cfg.connect_timeout, 5);
	CHECK(set_ok(&cfg, "io_timeout", "120"));
	CHECK_INT(cfg.io_timeout, 120);
	CHECK(set_ok(&cfg, "attr_timeout", "1"));
	CHECK_INT(cfg.attr_timeout, 1);

	CHECK(set_fails(&cfg, "dir_ttl", "abc", "'abc' for 'dir_ttl'"));
	CHECK(set_fails(&cfg, "dir_ttl", "", "'dir_ttl'"));
	CHECK(set_fails(&cfg, "dir_ttl", "-1", "from 0 to"));
	CHECK(set_fails(&cfg, "dir_ttl", "+5", "'dir_ttl'"));
	CHECK(set_fails(&cfg, "dir_ttl", "12x", "'dir_ttl'"));
	CHECK(set_fails(&cfg, "dir_ttl", "10K", "'dir_ttl'"));  /* no suffixes on seconds */
	CHECK(set_fails(&cfg, "dir_ttl", "99999999999999999999999", "'dir_ttl'"));
	CHECK(set_fails(&cfg, "page_size", "1001", "from 0 to 1000"));
	CHECK(set_fails(&cfg, "connect_timeout", "0", "from 1 to"));
	CHECK(set_fails(&cfg, "max_retries", "1000", "'max_retries'"));
	CHECK(set_fails(&cfg, "dir_ttl", NULL, "missing value for 'dir_ttl'"));
	CHECK_INT(cfg.dir_ttl, 300);   /* failed sets leave the value alone */
	CHECK_INT(cfg.page_size, 2);
	config_release(&cfg);
}

static void test_sizes(void)
{
	struct odfs_config cfg;

	CHECK_INT(config_init(&cfg), 0);
	CHECK(set_ok(&cfg, "readahead_max", "4096"));
	CHECK_INT(cfg.readahead_max, 4096);
	CHECK(set_ok(&cfg, "readahead_max", "512K"));
	CHECK_INT(cfg.readahead_max, 512L * 1024);
	CHECK(set_ok(&cfg, "readahead_max", "8m"));
	CHECK_INT(cfg.readahead_max, 8L * 1024 * 1024);
	CHECK(set_ok(&cfg, "content_cache_max", "2G"));
	CHECK_INT(cfg.content_cache_max, 2L * 1024 * 1024 * 1024);
	CHECK(set_ok(&cfg, "content_cache_max", "0"));
	CHECK_INT(cfg.content_cache_max, 0);
	CHECK(set_fails(&cfg, "readahead_max", "2G", "'readahead_max'"));   /* over 1 GiB */
	CHECK(set_fails(&cfg, "readahead_max", "1X", "suffixes"));
	CHECK(set_fails(&cfg, "readahead_max", "1MB", "'readahead_max'"));
	CHECK(set_fails(&cfg, "readahead_max", "M", "'readahead_max'"));
	CHECK(set_fails(&cfg, "readahead_max", "-1K", "'readahead_max'"));
	CHECK(set_fails(&cfg, "content_cache_max", "9999999999999T", "'content_cache_max'"));
	CHECK_INT(cfg.readahead_max, 8L * 1024 * 1024);
	config_release(&cfg);
}

static void test_poll_interval(void)
{
	struct odfs_config cfg;

	CHECK_INT(config_init(&cfg), 0);
	CHECK(config_is_key("poll_interval"));
	CHECK_INT(cfg.poll_interval, 30);
	CHECK(set_ok(&cfg, "poll_interval", "0"));       /* no delta: dir_ttl listings */
	CHECK_INT(cfg.poll_interval, 0);
	CHECK(set_ok(&cfg, "poll_interval", "86400"));
	CHECK_INT(cfg.poll_interval, 86400);
	CHECK(set_fails(&cfg, "poll_interval", "86401", "whole seconds from 0 to 86400"));
	CHECK(set_fails(&cfg, "poll_interval", "-1", "'poll_interval'"));
	CHECK(set_fails(&cfg, "poll_interval", "5s", "'poll_interval'"));
	CHECK_INT(cfg.poll_interval, 86400);
	config_release(&cfg);
}

static void test_upload_keys(void)
{
	struct odfs_config cfg;

	CHECK_INT(config_init(&cfg), 0);
	CHECK(config_is_key("upload_workers"));
	CHECK(config_is_key("upload_chunk"));
	CHECK(set_ok(&cfg, "upload_workers", "1"));
	CHECK_INT(cfg.upload_workers, 1);
	CHECK(set_ok(&cfg, "upload_workers", "32"));
	CHECK_INT(cfg.upload_workers, 32);
	CHECK(set_fails(&cfg, "upload_workers", "0", "from 1 to 32"));
	CHECK(set_fails(&cfg, "upload_workers", "33", "from 1 to 32"));
	CHECK(set_fails(&cfg, "upload_workers", "4K", "'upload_workers'"));
	CHECK(config_is_key("small_uploads"));
	CHECK(set_ok(&cfg, "small_uploads", "64"));
	CHECK_INT(cfg.small_uploads, 64);
	CHECK(set_fails(&cfg, "small_uploads", "0", "from 1 to 64"));
	CHECK(set_fails(&cfg, "small_uploads", "65", "from 1 to 64"));
	CHECK_INT(cfg.upload_workers, 32);

	CHECK(set_ok(&cfg, "upload_chunk", "320K"));
	CHECK_INT(cfg.upload_chunk, 327680);
	CHECK(set_ok(&cfg, "upload_chunk", "5M"));
	CHECK_INT(cfg.upload_chunk, 5L * 1024 * 1024);
	CHECK(set_ok(&cfg, "upload_chunk", "62586880"));   /* 191 x 320 KiB, just below 60 MiB */
	CHECK_INT(cfg.upload_chunk, 62586880);
	CHECK(set_ok(&cfg, "upload_chunk", "10m"));
	CHECK(set_fails(&cfg, "upload_chunk", "0", "positive multiple of 320K"));
	CHECK(set_fails(&cfg, "upload_chunk", "1M", "multiple of 320K (327680 bytes)"));
	CHECK(set_fails(&cfg, "upload_chunk", "327681", "'upload_chunk'"));
	CHECK(set_fails(&cfg, "upload_chunk", "60M", "smaller than 60M"));   /* 192 x 320 KiB */
	CHECK(set_fails(&cfg, "upload_chunk", "1G", "'upload_chunk'"));
	CHECK(set_fails(&cfg, "upload_chunk", "-320K", "'upload_chunk'"));
	CHECK(set_fails(&cfg, "upload_chunk", "abc", "'upload_chunk'"));
	CHECK_INT(cfg.upload_chunk, 10L * 1024 * 1024);
	config_release(&cfg);
}

static void test_strings(void)
{
	struct odfs_config cfg;

	CHECK_INT(config_init(&cfg), 0);
	CHECK(set_ok(&cfg, "client_id", "00000000-0000-0000-0000-0000000000a1"));
	CHECK_STR(cfg.client_id, "00000000-0000-0000-0000-0000000000a1");
	CHECK(set_fails(&cfg, "client_id", "", "must not be empty"));
	CHECK(set_fails(&cfg, "client_id", "a b", "'client_id'"));
	CHECK_STR(cfg.client_id, "00000000-0000-0000-0000-0000000000a1");

	CHECK(set_ok(&cfg, "tenant", "consumers"));
	CHECK(set_ok(&cfg, "tenant", "organizations"));
	CHECK(set_ok(&cfg, "tenant", "contoso.onmicrosoft.com"));
	CHECK(set_ok(&cfg, "tenant", "9188040d-6c67-4c5b-b112-36a304b66dad"));
	CHECK_STR(cfg.tenant, "9188040d-6c67-4c5b-b112-36a304b66dad");
	CHECK(set_fails(&cfg, "tenant", "con toso", "'tenant'"));
	CHECK(set_fails(&cfg, "tenant", "a/b", "'tenant'"));
	CHECK(set_fails(&cfg, "tenant", "..", "'tenant'"));
	CHECK(set_fails(&cfg, "tenant", ".example.com", "'tenant'"));
	CHECK(set_fails(&cfg, "tenant", "", "'tenant'"));

	CHECK(set_ok(&cfg, "graph_url", "http://127.0.0.1:8080/v1.0/"));
	CHECK_STR(cfg.graph_url, "http://127.0.0.1:8080/v1.0");
	CHECK(set_ok(&cfg, "auth_url", "https://login.microsoftonline.us//"));
	CHECK_STR(cfg.auth_url, "https://login.microsoftonline.us");
	CHECK(set_fails(&cfg, "graph_url", "ftp://x", "https:// or http://"));
	CHECK(set_fails(&cfg, "graph_url", "graph.microsoft.com", "https:// or http://"));
	CHECK(set_fails(&cfg, "auth_url", "https://", "'auth_url'"));
	CHECK(set_fails(&cfg, "auth_url", "https:///x", "'auth_url'"));
	CHECK(set_fails(&cfg, "auth_url", "https://a b", "'auth_url'"));
	CHECK_STR(cfg.auth_url, "https://login.microsoftonline.us");

	CHECK(set_ok(&cfg, "scopes", "Files.Read offline_access"));
	CHECK_STR(cfg.scopes, "Files.Read offline_access");
	CHECK(set_fails(&cfg, "scopes", "", "'scopes'"));

	CHECK(set_ok(&cfg, "cache_dir", "/var/tmp/odfs/"));
	CHECK_STR(cfg.cache_dir, "/var/tmp/odfs");
	setenv("HOME", "/home/u", 1);
	CHECK(set_ok(&cfg, "config_dir", "~/odfs"));
	CHECK_STR(cfg.config_dir, "/home/u/odfs");
	CHECK(set_fails(&cfg, "cache_dir", "relative/dir", "absolute path"));
	CHECK(set_fails(&cfg, "cache_dir", "", "'cache_dir'"));

	/* not ours: the caller passes it to libfuse */
	char *err = NULL;
	CHECK_INT(config_set(&cfg, "allow_other", NULL, &err), 1);
	CHECK(err == NULL);
	CHECK_INT(config_set(&cfg, "ro", "1", &err), 1);
	CHECK(config_is_key("dir_ttl"));
	CHECK(config_is_key("client_id"));
	CHECK(!config_is_key("allow_other"));
	CHECK(!config_is_key("foreground"));
	/* err may be NULL */
	CHECK_INT(config_set(&cfg, "dir_ttl", "x", NULL), -EINVAL);
	config_release(&cfg);
}

static void test_file(void)
{
	struct odfs_config cfg;
	char path[128], *err = NULL;

	snprintf(path, sizeof(path), "%s/config", tmpdir);
	CHECK_INT(config_init(&cfg), 0);

	/* missing file: nothing to do */
	CHECK_INT(config_load_file(&cfg, "/nonexistent/odfs/config", &err), 0);
	CHECK(err == NULL);

	write_file(path,
		   "# onedrivefs settings\n"
		   "\n"
		   "client_id = 00000000-0000-0000-0000-0000000000a1\n"
		   "   tenant=consumers   \n"
		   "\t# indented comment\n"
		   "dir_ttl\t=\t5\n"
		   "scopes = Files.Read  offline_access\n"
		   "readahead_max = 1M\n"
		   "graph_url = http://127.0.0.1:1/v1.0/\n"
		   "   \n"
		   "page_size = 3");   /* no newline at the end */
	CHECK_INT(config_load_file(&cfg, path, &err), 0);
	CHECK(err == NULL);
	CHECK_STR(cfg.client_id, "00000000-0000-0000-0000-0000000000a1");
	CHECK_STR(cfg.tenant, "consumers");
	CHECK_INT(cfg.dir_ttl, 5);
	CHECK_STR(cfg.scopes, "Files.Read  offline_access");
	CHECK_INT(cfg.readahead_max, 1024 * 1024);
	CHECK_STR(cfg.graph_url, "http://127.0.0.1:1/v1.0");
	CHECK_INT(cfg.page_size, 3);

	/* command line applied after the file wins */
	CHECK(set_ok(&cfg, "dir_ttl", "7"));
	CHECK_INT(cfg.dir_ttl, 7);
	config_release(&cfg);
}

static void expect_file_error(const char *text, const char *needle)
{
	struct odfs_config cfg;
	char path[128], *err = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s/config", tmpdir);
	write_file(path, text);
	CHECK_INT(config_init(&cfg), 0);
	rc = config_load_file(&cfg, path, &err);
	CHECK_INT(rc, -EINVAL);
	CHECK(err != NULL);
	if (err && !strstr(err, needle)) {
		fprintf(stderr, "  message '%s' lacks '%s'\n", err, needle);
		CHECK(0);
	}
	if (err && !strstr(err, path)) {
		fprintf(stderr, "  message '%s' does not name the file\n", err);
		CHECK(0);
	}
	free(err);
	config_release(&cfg);
}

static void test_file_errors(void)
{
	expect_file_error("foo = 1\n", "line 1: unknown key 'foo'");
	expect_file_error("# c\n\ndir_ttl = 5\nallow_other = 1\n", "line 4: unknown key 'allow_other'");
	expect_file_error("dir_ttl 5\n", "line 1: expected 'key = value'");
	expect_file_error("\n\n = 5\n", "line 3: expected 'key = value'");
	expect_file_error("dir_ttl = ten\n", "line 1: invalid value 'ten' for 'dir_ttl'");
	expect_file_error("client_id =\n", "line 1: invalid value '' for 'client_id'");
	expect_file_error("graph_url = graph.microsoft.com\n", "https:// or http://");

	/* an over-long line */
	char *big = malloc(6000);
	if (big) {
		memset(big, 'a', 5998);
		big[5998] = '\n';
		big[5999] = '\0';
		expect_file_error(big, "line 1: line longer than");
		free(big);
	}

	/* unreadable: a directory is not a file */
	struct odfs_config cfg;
	char *err = NULL;
	CHECK_INT(config_init(&cfg), 0);
	CHECK(config_load_file(&cfg, tmpdir, &err) < 0);
	CHECK(err && strstr(err, "config file"));
	free(err);
	config_release(&cfg);
}

/* A NUL byte must not cut a value short, even on an over-long line. */
static void test_file_nul(void)
{
	static const char nul_value[] = "dir_ttl = 5\nclient_id = abc\0def\n";
	struct odfs_config cfg;
	char path[128], *err = NULL, *big;
	size_t n = 5000;

	snprintf(path, sizeof(path), "%s/config", tmpdir);
	write_bytes(path, nul_value, sizeof(nul_value) - 1);
	CHECK_INT(config_init(&cfg), 0);
	CHECK_INT(config_load_file(&cfg, path, &err), -EINVAL);
	CHECK(err && strstr(err, "line 2: contains a NUL byte"));
	CHECK(err && strstr(err, path));
	CHECK(cfg.client_id == NULL || strcmp(cfg.client_id, "abc") != 0);
	free(err);
	err = NULL;
	config_release(&cfg);

	/* over 4096 characters, with a NUL early on: the length check still sees it */
	big = malloc(n);
	if (!big)
		return;
	memset(big, 'a', n);
	memcpy(big, "scopes = x", 10);
	big[10] = '\0';
	big[n - 1] = '\n';
	write_bytes(path, big, n);
	free(big);
	CHECK_INT(config_init(&cfg), 0);
	CHECK_INT(config_load_file(&cfg, path, &err), -EINVAL);
	CHECK(err && strstr(err, "line 1: contains a NUL byte"));
	free(err);
	err = NULL;
	config_release(&cfg);

	/* a NUL in the last line, without a newline */
	write_bytes(path, "page_size = 3\0", 14);
	CHECK_INT(config_init(&cfg), 0);
	CHECK_INT(config_load_file(&cfg, path, &err), -EINVAL);
	CHECK(err && strstr(err, "line 1: contains a NUL byte"));
	free(err);
	config_release(&cfg);
}

/* Messages never carry a value's control characters (escape sequences, newlines). */
static void test_file_control_chars(void)
{
	struct odfs_config cfg;
	char path[128], *err = NULL;
	const char *p;

	snprintf(path, sizeof(path), "%s/config", tmpdir);
	write_file(path, "dir_ttl = \033[2J\r\n\x7f\x01key = 1\n");
	CHECK_INT(config_init(&cfg), 0);
	CHECK_INT(config_load_file(&cfg, path, &err), -EINVAL);
	CHECK(err && strstr(err, "invalid value '?[2J' for 'dir_ttl'"));
	for (p = err; p && *p; p++)
		CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
	free(err);
	err = NULL;
	config_release(&cfg);

	write_file(path, "\x7f\x01key = 1\n");
	CHECK_INT(config_init(&cfg), 0);
	CHECK_INT(config_load_file(&cfg, path, &err), -EINVAL);
	CHECK(err && strstr(err, "unknown key '??key'"));
	free(err);
	err = NULL;
	config_release(&cfg);

	/* the same through -o */
	CHECK_INT(config_init(&cfg), 0);
	CHECK(set_fails(&cfg, "dir_ttl", "1\n2", "invalid value '1?2'"));
	config_release(&cfg);
}

static void test_mkdirs(void)
{
	char path[160];
	struct stat st;

	snprintf(path, sizeof(path), "%s/a/b/c", tmpdir);
	CHECK_INT(config_mkdirs(path, 0700), 0);
	CHECK_INT(stat(path, &st), 0);
	CHECK(S_ISDIR(st.st_mode));
	CHECK_INT(st.st_mode & 0777, 0700);
	CHECK_INT(config_mkdirs(path, 0700), 0);   /* exists already: fine */
	snprintf(path, sizeof(path), "%s/config", tmpdir);
	write_file(path, "x\n");
	CHECK_INT(config_mkdirs(path, 0700), -ENOTDIR);
	snprintf(path, sizeof(path), "%s/config/sub", tmpdir);
	CHECK_INT(config_mkdirs(path, 0700), -ENOTDIR);
}

static void cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove '%s'\n", tmpdir);
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_defaults);
	RUN(test_defaults_home);
	RUN(test_numbers);
	RUN(test_sizes);
	RUN(test_upload_keys);
	RUN(test_poll_interval);
	RUN(test_strings);
	RUN(test_file);
	RUN(test_file_errors);
	RUN(test_file_nul);
	RUN(test_file_control_chars);
	RUN(test_mkdirs);
	cleanup();
	return unit_report("test_config");
}
