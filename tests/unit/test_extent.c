/*
 * test_extent.c - the extent sets behind the content cache:
 * merging, removing, coverage, skipping, gaps against two sets, and the
 * index text.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "extent.h"
#include "unit.h"

/* The set as text, for compact comparisons. */
static const char *fmt(const struct extent_set *s)
{
	static char buf[1024];
	char *t = extent_set_format(s);

	snprintf(buf, sizeof(buf), "%s", t ? t : "(oom)");
	free(t);
	return buf;
}

static void test_add_merges(void)
{
	struct extent_set s = EXTENT_SET_INIT;

	CHECK_STR(fmt(&s), "");
	CHECK_INT(extent_set_add(&s, 10, 20), 0);
	CHECK_INT(extent_set_add(&s, 30, 40), 0);
	CHECK_STR(fmt(&s), "10-20 30-40");
	extent_set_add(&s, 0, 5);
	CHECK_STR(fmt(&s), "0-5 10-20 30-40");
	extent_set_add(&s, 20, 30);             /* touching both sides: one range */
	CHECK_STR(fmt(&s), "0-5 10-40");
	extent_set_add(&s, 5, 10);
	CHECK_STR(fmt(&s), "0-40");
	extent_set_add(&s, 15, 25);             /* inside: no change */
	CHECK_STR(fmt(&s), "0-40");
	extent_set_add(&s, 50, 50);             /* empty: no-op */
	extent_set_add(&s, 60, 55);
	CHECK_STR(fmt(&s), "0-40");
	extent_set_add(&s, 100, 110);
	extent_set_add(&s, 120, 130);
	extent_set_add(&s, 140, 150);
	extent_set_add(&s, 95, 145);            /* swallows three, extends the last */
	CHECK_STR(fmt(&s), "0-40 95-150");
	CHECK_INT(extent_set_bytes(&s), 40 + 55);
	extent_set_release(&s);
	CHECK_INT(s.n, 0);
}

static void test_add_many(void)
{
	struct extent_set s = EXTENT_SET_INIT;
	int64_t i;

	/* Every other block, out of order, then fill the holes. */
	for (i = 99; i >= 0; i--)
		CHECK_INT(extent_set_add(&s, i * 20, i * 20 + 10), 0);
	CHECK_INT(s.n, 100);
	CHECK_INT(extent_set_bytes(&s), 1000);
	for (i = 0; i < 99; i++)
		extent_set_add(&s, i * 20 + 10, i * 20 + 20);
	CHECK_STR(fmt(&s), "0-1990");
	extent_set_release(&s);
}

static void test_remove(void)
{
	struct extent_set s = EXTENT_SET_INIT;

	extent_set_add(&s, 0, 100);
	CHECK_INT(extent_set_remove(&s, 40, 60), 0);   /* split */
	CHECK_STR(fmt(&s), "0-40 60-100");
	extent_set_remove(&s, 0, 10);                  /* head */
	CHECK_STR(fmt(&s), "10-40 60-100");
	extent_set_remove(&s, 90, 200);                /* tail, past the end */
	CHECK_STR(fmt(&s), "10-40 60-90");
	extent_set_remove(&s, 40, 60);                 /* exactly the hole */
	CHECK_STR(fmt(&s), "10-40 60-90");
	extent_set_remove(&s, 30, 70);                 /* across the hole */
	CHECK_STR(fmt(&s), "10-30 70-90");
	extent_set_add(&s, 100, 110);
	extent_set_remove(&s, 0, 105);                 /* several at once */
	CHECK_STR(fmt(&s), "105-110");
	extent_set_remove(&s, 105, 110);
	CHECK_STR(fmt(&s), "");
	extent_set_remove(&s, 0, 10);                  /* empty set */
	CHECK_INT(s.n, 0);
	extent_set_release(&s);
}

static void test_covers(void)
{
	struct extent_set s = EXTENT_SET_INIT;

	CHECK(extent_set_covers(&s, 5, 5));            /* empty range */
	CHECK(!extent_set_covers(&s, 0, 1));
	extent_set_add(&s, 10, 20);
	extent_set_add(&s, 30, 40);
	CHECK(extent_set_covers(&s, 10, 20));
	CHECK(extent_set_covers(&s, 12, 18));
	CHECK(!extent_set_covers(&s, 9, 12));
	CHECK(!extent_set_covers(&s, 18, 21));
	CHECK(!extent_set_covers(&s, 15, 35));
	CHECK(!extent_set_covers(&s, 20, 30));
	CHECK(extent_set_covers(&s, 39, 40));
	CHECK(!extent_set_covers(&s, 40, 41));
	extent_set_release(&s);
}

static void test_first_gap(void)
{
	struct extent_set have = EXTENT_SET_INIT, busy = EXTENT_SET_INIT;
	struct extent g;

	/* Nothing present: the whole range is the gap. */
	CHECK_INT(extent_set_first_gap(&have, NULL, 0, 100, &g), 1);
	CHECK_INT(g.start, 0);
	CHECK_INT(g.end, 100);

	extent_set_add(&have, 0, 10);
	extent_set_add(&have, 50, 60);
	CHECK_INT(extent_set_first_gap(&have, NULL, 0, 100, &g), 1);
	CHECK_INT(g.start, 10);
	CHECK_INT(g.end, 50);
	CHECK_INT(extent_set_first_gap(&have, NULL, 55, 100, &g), 1);
	CHECK_INT(g.start, 60);
	CHECK_INT(g.end, 100);
	CHECK_INT(extent_set_first_gap(&have, NULL, 0, 10, &g), 0);
	CHECK_INT(extent_set_first_gap(&have, NULL, 5, 8, &g), 0);

	/* Busy ranges are skipped as if present, and cut gaps short. */
	extent_set_add(&busy, 10, 20);
	extent_set_add(&busy, 30, 40);
	CHECK_INT(extent_set_first_gap(&have, &busy, 0, 100, &g), 1);
	CHECK_INT(g.start, 20);
	CHECK_INT(g.end, 30);
	extent_set_add(&busy, 20, 30);
	CHECK_INT(extent_set_first_gap(&have, &busy, 0, 100, &g), 1);
	CHECK_INT(g.start, 40);
	CHECK_INT(g.end, 50);
	extent_set_add(&busy, 40, 50);
	CHECK_INT(extent_set_first_gap(&have, &busy, 0, 100, &g), 1);
	CHECK_INT(g.start, 60);
	CHECK_INT(g.end, 100);
	CHECK_INT(extent_set_first_gap(&have, &busy, 0, 60, &g), 0);

	/* Alternating coverage between the two sets. */
	extent_set_clear(&have);
	extent_set_clear(&busy);
	extent_set_add(&have, 0, 10);
	extent_set_add(&busy, 5, 20);
	extent_set_add(&have, 20, 30);
	extent_set_add(&busy, 30, 40);
	extent_set_add(&have, 45, 50);
	CHECK_INT(extent_set_first_gap(&have, &busy, 0, 100, &g), 1);
	CHECK_INT(g.start, 40);
	CHECK_INT(g.end, 45);
	CHECK_INT(extent_set_first_gap(&have, &busy, 3, 42, &g), 1);
	CHECK_INT(g.start, 40);
	CHECK_INT(g.end, 42);
	extent_set_release(&have);
	extent_set_release(&busy);
}

static void test_skip(void)
{
	struct extent_set s = EXTENT_SET_INIT;

	CHECK_INT(extent_set_skip(NULL, 5), 5);
	CHECK_INT(extent_set_skip(&s, 5), 5);
	extent_set_add(&s, 10, 20);
	extent_set_add(&s, 30, 40);
	CHECK_INT(extent_set_skip(&s, 5), 5);
	CHECK_INT(extent_set_skip(&s, 10), 20);
	CHECK_INT(extent_set_skip(&s, 19), 20);
	CHECK_INT(extent_set_skip(&s, 20), 20);         /* end is outside */
	CHECK_INT(extent_set_skip(&s, 35), 40);
	CHECK_INT(extent_set_skip(&s, 40), 40);
	extent_set_remove(&s, 0, INT64_MAX);            /* a truncate to 0 */
	CHECK_INT(s.n, 0);
	extent_set_release(&s);
}

/* A range may end at INT64_MAX: no query may compute past it. */
static void test_int64_max_edge(void)
{
	struct extent_set s = EXTENT_SET_INIT, other = EXTENT_SET_INIT;
	struct extent gap;
	const int64_t top = INT64_MAX;

	CHECK_INT(extent_set_parse(&s, "10-20 100-9223372036854775807", INT64_MAX), 0);
	CHECK_INT(s.n, 2);
	CHECK_INT(extent_set_skip(&s, top), top);
	CHECK_INT(extent_set_skip(&s, top - 1), top);
	CHECK_INT(extent_set_skip(&s, 100), top);
	CHECK_INT(extent_set_skip(&s, 50), 50);
	CHECK(extent_set_covers(&s, top - 1, top));
	CHECK(extent_set_covers(&s, 100, top));
	CHECK(!extent_set_covers(&s, 99, top));
	CHECK(extent_set_covers(&s, top, top));          /* empty */
	/* two sets, both reaching the top: the gap search ends there */
	CHECK_INT(extent_set_add(&other, top - 5, top), 0);
	CHECK(!extent_set_first_gap(&s, &other, 100, top, &gap));
	CHECK(!extent_set_first_gap(&other, &s, top - 5, top, &gap));
	CHECK(extent_set_first_gap(&s, &other, 0, top, &gap));
	CHECK_INT(gap.start, 0);
	CHECK_INT(gap.end, 10);
	CHECK(extent_set_first_gap(&s, &other, 20, top, &gap));
	CHECK_INT(gap.start, 20);
	CHECK_INT(gap.end, 100);
	/* remove at the very end, and of the last byte */
	CHECK_INT(extent_set_remove(&s, top - 1, top), 0);
	CHECK_STR(fmt(&s), "10-20 100-9223372036854775806");
	CHECK_INT(extent_set_add(&s, top - 1, top), 0);
	CHECK_INT(extent_set_remove(&s, 200, top), 0);
	CHECK_STR(fmt(&s), "10-20 100-200");
	CHECK_INT(extent_set_add(&s, 300, top), 0);
	CHECK_INT(extent_set_remove(&s, 0, top), 0);
	CHECK_INT(s.n, 0);
	extent_set_release(&other);
	extent_set_release(&s);
}

static void test_format_parse(void)
{
	struct extent_set s = EXTENT_SET_INIT;

	CHECK_INT(extent_set_parse(&s, "", 100), 0);
	CHECK_INT(s.n, 0);
	CHECK_INT(extent_set_parse(&s, "0-10 20-30", 100), 0);
	CHECK_STR(fmt(&s), "0-10 20-30");
	/* Unsorted and touching input is normalised. */
	CHECK_INT(extent_set_parse(&s, "20-30 0-10 10-20", 100), 0);
	CHECK_STR(fmt(&s), "0-30");
	CHECK_INT(extent_set_parse(&s, "0-9223372036854775807", INT64_MAX), 0);
	CHECK_STR(fmt(&s), "0-9223372036854775807");
	/* Malformed or out of bounds: -EINVAL and an empty set. */
	CHECK_INT(extent_set_parse(&s, "0-10 20-", 100), -EINVAL);
	CHECK_INT(s.n, 0);
	CHECK_INT(extent_set_parse(&s, "10-5", 100), -EINVAL);
	CHECK_INT(extent_set_parse(&s, "0-101", 100), -EINVAL);
	CHECK_INT(extent_set_parse(&s, "-5-10", 100), -EINVAL);
	CHECK_INT(extent_set_parse(&s, "0-10x", 100), -EINVAL);
	CHECK_INT(extent_set_parse(&s, "a-b", 100), -EINVAL);
	CHECK_INT(extent_set_parse(&s, "0-99999999999999999999", INT64_MAX), -EINVAL);
	CHECK_INT(s.n, 0);
	extent_set_release(&s);
}

int main(void)
{
	RUN(test_add_merges);
	RUN(test_add_many);
	RUN(test_remove);
	RUN(test_covers);
	RUN(test_first_gap);
	RUN(test_skip);
	RUN(test_format_parse);
	RUN(test_int64_max_edge);
	return unit_report("test_extent");
}
