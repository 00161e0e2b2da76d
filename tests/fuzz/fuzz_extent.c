/*
 * fuzz_extent.c - extent_set_parse() on an arbitrary index text (the
 * "start-end start-end" ranges content.c keeps for each cached file).
 *
 * Input: the first byte picks the limit (the file size the ranges must fit
 * in), the rest is the text.  A parsed set must be sorted, disjoint,
 * non-adjacent and inside [0, limit]; format() and parse() must round-trip;
 * the queries content.c makes (covers, skip, first_gap) must agree with the
 * ranges themselves.  A refused text leaves an empty set.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "extent.h"
#include "fuzz.h"

static int64_t pick_limit(uint8_t b)
{
	static const int64_t limits[] = {
		0, 1, 100, 4096, 1000000, INT64_C(250) << 30 /* largest OneDrive file */,
		INT64_C(1) << 62, INT64_MAX,
	};

	return limits[b % (sizeof(limits) / sizeof(limits[0]))];
}

static void check_queries(const struct extent_set *s, int64_t limit)
{
	struct extent gap;
	int64_t sum = 0;
	size_t i;

	for (i = 0; i < s->n; i++) {
		const struct extent *e = &s->v[i];

		FUZZ_CHECK(e->start >= 0 && e->start < e->end && e->end <= limit);
		if (i > 0)
			FUZZ_CHECK(s->v[i - 1].end < e->start);   /* touching ranges merge */
		sum += e->end - e->start;
		FUZZ_CHECK(extent_set_covers(s, e->start, e->end));
		FUZZ_CHECK(extent_set_covers(s, e->end - 1, e->end));
		/* a range may end at INT64_MAX: the queries must not compute past it */
		FUZZ_CHECK(extent_set_skip(s, e->start) == e->end);
		FUZZ_CHECK(extent_set_skip(s, e->end - 1) == e->end);
		FUZZ_CHECK(extent_set_skip(s, e->end) == e->end);
		FUZZ_CHECK(!extent_set_first_gap(s, NULL, e->start, e->end, &gap));
		FUZZ_CHECK(!extent_set_first_gap(s, s, e->start, e->end, &gap));
		if (e->end < INT64_MAX)   /* the test's own e->end + 1 */
			FUZZ_CHECK(!extent_set_covers(s, e->start, e->end + 1));
		if (i > 0) {
			FUZZ_CHECK(extent_set_first_gap(s, NULL, s->v[i - 1].start, e->end, &gap));
			FUZZ_CHECK(gap.start == s->v[i - 1].end && gap.end == e->start);
		}
	}
	FUZZ_CHECK(extent_set_bytes(s) == sum);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct extent_set s = EXTENT_SET_INIT, again = EXTENT_SET_INIT;
	int64_t limit;
	char *text, *formatted;
	int rc;

	if (size < 1)
		return 0;
	limit = pick_limit(data[0]);
	text = fuzz_cstring(data + 1, size - 1);
	/* start from a non-empty set: parse replaces it */
	FUZZ_CHECK(extent_set_add(&s, 5, 10) == 0);
	rc = extent_set_parse(&s, text, limit);
	free(text);
	if (rc < 0) {
		FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM);
		FUZZ_CHECK(rc == -ENOMEM || s.n == 0);
		goto out_release;
	}
	FUZZ_CHECK(rc == 0);
	check_queries(&s, limit);

	formatted = extent_set_format(&s);
	FUZZ_CHECK(formatted != NULL);
	FUZZ_CHECK(extent_set_parse(&again, formatted, limit) == 0);
	FUZZ_CHECK(again.n == s.n);
	FUZZ_CHECK(s.n == 0 || memcmp(again.v, s.v, s.n * sizeof(s.v[0])) == 0);
	free(formatted);
	/* removing the last range, right up to its end, leaves the others */
	if (again.n > 0) {
		struct extent last = again.v[again.n - 1];

		FUZZ_CHECK(extent_set_remove(&again, last.start, last.end) == 0);
		FUZZ_CHECK(again.n == s.n - 1);
		FUZZ_CHECK(!extent_set_covers(&again, last.end - 1, last.end));
		FUZZ_CHECK(extent_set_skip(&again, last.end - 1) == last.end - 1);
	}
out_release:
	extent_set_release(&again);
	extent_set_release(&s);
	return 0;
}
