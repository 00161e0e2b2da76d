/*
 * replay.c - run a fuzz target over files, without libFuzzer.
 *
 * Linked with one tests/fuzz/fuzz_*.c by `make check-unit` (any compiler),
 * so the seed corpus and every regression input run as ordinary tests:
 *     build/tests/fuzz_names tests/fuzz/corpus/names tests/fuzz/regressions/names
 * Each argument is a file or a folder of files (not recursive).  A bug shows
 * up as the target aborting or a sanitizer report (make SANITIZE=1).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#define REPLAY_MAX_INPUT (16 * 1024 * 1024)

/* Feed one file to the target, in a buffer of exactly its size (so ASan sees overreads). */
static int replay_file(const char *path)
{
	struct stat st;
	uint8_t *data;
	size_t done = 0;
	ssize_t n;
	int fd, rc = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "replay: cannot read '%s': %m\n", path);
		goto out_close;
	}
	if (st.st_size > REPLAY_MAX_INPUT) {
		fprintf(stderr, "replay: '%s' is larger than %d bytes\n", path, REPLAY_MAX_INPUT);
		goto out_close;
	}
	data = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!data)
		goto out_close;
	while (done < (size_t)st.st_size) {
		n = read(fd, data + done, (size_t)st.st_size - done);
		if (n <= 0) {
			fprintf(stderr, "replay: cannot read '%s'\n", path);
			goto out_free_data;
		}
		done += (size_t)n;
	}
	LLVMFuzzerTestOneInput(data, done);
	rc = 0;
out_free_data:
	free(data);
out_close:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Every regular file in dir, in name order; returns how many or -1. */
static int replay_dir(const char *dir)
{
	struct dirent **names;
	char path[4096];
	struct stat st;
	int i, n, count = 0;

	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "replay: cannot list '%s': %m\n", dir);
		return -1;
	}
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			if (replay_file(path) < 0)
				count = -1;
			else if (count >= 0)
				count++;
		}
		free(names[i]);
	}
	free(names);
	return count;
}

int main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	struct stat st;
	int i, n, total = 0, failed = 0;

	for (i = 1; i < argc; i++) {
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: cannot find '%s': %m\n", argv[i]);
			failed = 1;
			continue;
		}
		n = S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : (replay_file(argv[i]) < 0 ? -1 : 1);
		if (n < 0)
			failed = 1;
		else
			total += n;
	}
	printf("%s: %d inputs replayed%s\n", name, total, failed ? ", some unreadable" : "");
	return failed || total == 0;
}
