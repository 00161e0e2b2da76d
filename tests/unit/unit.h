/*
 * unit.h - the smallest test harness that does the job.
 *
 * Each tests/unit/test_*.c defines test functions, lists them in main() with
 * RUN(fn), and ends with `return unit_report("name");`, which prints
 * "name: N passed, M failed" and gives the exit status.
 */
#ifndef ODFS_UNIT_H
#define ODFS_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed, unit_current_failed;

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
		unit_current_failed = 1; \
	} \
} while (0)

#define CHECK_INT(a, b) do { \
	long long unit_a_ = (long long)(a), unit_b_ = (long long)(b); \
	if (unit_a_ != unit_b_) { \
		fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, \
			#a, unit_a_, #b, unit_b_); \
		unit_current_failed = 1; \
	} \
} while (0)

#define CHECK_STR(a, b) do { \
	const char *unit_a_ = (a), *unit_b_ = (b); \
	if (!unit_a_ || !unit_b_ || strcmp(unit_a_, unit_b_) != 0) { \
		fprintf(stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__, __LINE__, \
			#a, unit_a_ ? unit_a_ : "(null)", unit_b_ ? unit_b_ : "(null)"); \
		unit_current_failed = 1; \
	} \
} while (0)

#define RUN(fn) do { \
	unit_current_failed = 0; \
	fn(); \
	if (unit_current_failed) { unit_failed++; fprintf(stderr, "FAIL %s\n", #fn); } \
	else unit_passed++; \
} while (0)

static inline int unit_report(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, unit_passed, unit_failed);
	return unit_failed ? 1 : 0;
}

#endif
