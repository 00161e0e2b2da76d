/*
 * fuzz.h - what every tests/fuzz/fuzz_*.c shares.
 *
 * Each target defines LLVMFuzzerTestOneInput() and nothing else that is
 * global.  The same file is linked two ways: with libFuzzer (`make fuzz`,
 * clang, coverage-guided) and with replay.c (`make check-unit`, any
 * compiler), which feeds it the committed seed corpus and regressions.
 * A target reports a bug by crashing: a sanitizer error or FUZZ_CHECK.
 */
#ifndef ODFS_FUZZ_H
#define ODFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property the code under test promises; abort (a "crash") if it does not hold. */
#define FUZZ_CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

/* The input as a NUL-terminated string (cut at its first NUL); abort on ENOMEM. */
static inline char *fuzz_cstring(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
