/*
 * fuzz_config.c - config_load_file() on an arbitrary config file.
 *
 * config.c reads a path, so the input goes into a memfd read back through
 * /proc/self/fd (no temporary files, nothing left behind).  Checks
 * config.h's promises: success means no message and usable settings (every
 * string set, URLs without a trailing slash, an upload chunk that is a
 * multiple of 320 KiB below 60 MiB); a refused file always says why.
 */
#define _GNU_SOURCE   /* memfd_create */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static int memfd = -1;
static char memfd_path[64];

static void put_input(const uint8_t *data, size_t size)
{
	size_t done = 0;
	ssize_t n;

	if (memfd < 0) {
		memfd = memfd_create("odfs-fuzz-config", MFD_CLOEXEC);
		FUZZ_CHECK(memfd >= 0);
		snprintf(memfd_path, sizeof(memfd_path), "/proc/self/fd/%d", memfd);
	}
	FUZZ_CHECK(ftruncate(memfd, 0) == 0);
	while (done < size) {
		n = pwrite(memfd, data + done, size - done, (off_t)done);
		FUZZ_CHECK(n > 0);
		done += (size_t)n;
	}
}

static void check_url(const char *url)
{
	size_t len;

	FUZZ_CHECK(url && *url);
	len = strlen(url);
	FUZZ_CHECK(url[len - 1] != '/');
	FUZZ_CHECK(strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct odfs_config cfg;
	char *err = NULL;
	int rc;

	put_input(data, size);
	FUZZ_CHECK(config_init(&cfg) == 0);
	rc = config_load_file(&cfg, memfd_path, &err);
	if (rc < 0) {
		FUZZ_CHECK(rc == -ENOMEM || (err && *err));
	} else {
		FUZZ_CHECK(rc == 0 && err == NULL);
		check_url(cfg.graph_url);
		check_url(cfg.auth_url);
		FUZZ_CHECK(cfg.tenant && *cfg.tenant && cfg.scopes && *cfg.scopes);
		FUZZ_CHECK(cfg.config_dir && cfg.config_dir[0] == '/');
		FUZZ_CHECK(cfg.cache_dir && cfg.cache_dir[0] == '/');
		FUZZ_CHECK(!cfg.client_id || *cfg.client_id);
		FUZZ_CHECK(cfg.upload_chunk > 0 && cfg.upload_chunk < 60L * 1024 * 1024);
		FUZZ_CHECK(cfg.upload_chunk % ODFS_UPLOAD_CHUNK_UNIT == 0);
	}
	free(err);
	config_release(&cfg);
	return 0;
}
