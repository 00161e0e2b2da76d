/*
 * extent.c - sorted sets of byte ranges (see extent.h), with binary search
 * so that a heavily fragmented file (thousands of ranges) stays cheap.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extent.h"

void extent_set_release(struct extent_set *s)
{
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}

void extent_set_clear(struct extent_set *s)
{
	s->n = 0;
}

static int extent_set_reserve(struct extent_set *s, size_t n)
{
	struct extent *v;
	size_t cap;

	if (n <= s->cap)
		return 0;
	cap = s->cap ? s->cap * 2 : 8;
	while (cap < n)
		cap *= 2;
	v = realloc(s->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->v = v;
	s->cap = cap;
	return 0;
}

/* Index of the first range whose end is >= pos (touching counts). */
static size_t extent_set_find(const struct extent_set *s, int64_t pos)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid].end < pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Index of the first range whose end is > pos: the one holding pos, else
 * the next.  (Not extent_set_find(s, pos + 1): pos may be INT64_MAX.)
 */
static size_t extent_set_find_past(const struct extent_set *s, int64_t pos)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid].end <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int extent_set_add(struct extent_set *s, int64_t start, int64_t end)
{
	size_t i, j;

	if (start >= end)
		return 0;
	i = extent_set_find(s, start);
	/* Ranges i..j-1 touch or overlap [start, end): merge them into one. */
	j = i;
	while (j < s->n && s->v[j].start <= end)
		j++;
	if (i == j) {
		if (extent_set_reserve(s, s->n + 1))
			return -ENOMEM;
		memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(s->v[0]));
		s->v[i].start = start;
		s->v[i].end = end;
		s->n++;
		return 0;
	}
	if (s->v[i].start < start)
		start = s->v[i].start;
	if (s->v[j - 1].end > end)
		end = s->v[j - 1].end;
	s->v[i].start = start;
	s->v[i].end = end;
	memmove(&s->v[i + 1], &s->v[j], (s->n - j) * sizeof(s->v[0]));
	s->n -= j - i - 1;
	return 0;
}

int extent_set_remove(struct extent_set *s, int64_t start, int64_t end)
{
	size_t i;

	if (start >= end)
		return 0;
	i = extent_set_find_past(s, start);
	while (i < s->n && s->v[i].start < end) {
		struct extent *e = &s->v[i];

		if (e->start < start && e->end > end) {
			/* Split in two. */
			if (extent_set_reserve(s, s->n + 1))
				return -ENOMEM;
			e = &s->v[i];
			memmove(&s->v[i + 1], e, (s->n - i) * sizeof(*e));
			s->n++;
			s->v[i].end = start;
			s->v[i + 1].start = end;
			return 0;
		}
		if (e->start < start) {
			e->end = start;
			i++;
		} else if (e->end > end) {
			e->start = end;
			return 0;
		} else {
			memmove(e, e + 1, (s->n - i - 1) * sizeof(*e));
			s->n--;
		}
	}
	return 0;
}

int extent_set_covers(const struct extent_set *s, int64_t start, int64_t end)
{
	size_t i;

	if (start >= end)
		return 1;
	i = extent_set_find_past(s, start);
	return i < s->n && s->v[i].start <= start && s->v[i].end >= end;
}

int64_t extent_set_skip(const struct extent_set *s, int64_t pos)
{
	size_t i;

	if (!s)
		return pos;
	i = extent_set_find_past(s, pos);
	if (i < s->n && s->v[i].start <= pos)
		return s->v[i].end;
	return pos;
}

/* Where the next range of s at or after pos starts (INT64_MAX if none). */
static int64_t extent_set_next_start(const struct extent_set *s, int64_t pos)
{
	size_t i;

	if (!s)
		return INT64_MAX;
	i = extent_set_find_past(s, pos);
	return i < s->n ? (s->v[i].start > pos ? s->v[i].start : pos) : INT64_MAX;
}

int extent_set_first_gap(const struct extent_set *a, const struct extent_set *b,
			 int64_t start, int64_t end, struct extent *gap)
{
	int64_t pos = start, stop;

	/* Skip over bytes covered by either set until neither covers pos. */
	for (;;) {
		int64_t next = extent_set_skip(b, extent_set_skip(a, pos));

		if (next == pos)
			break;
		pos = next;
	}
	if (pos >= end)
		return 0;
	stop = extent_set_next_start(a, pos);
	if (extent_set_next_start(b, pos) < stop)
		stop = extent_set_next_start(b, pos);
	gap->start = pos;
	gap->end = stop < end ? stop : end;
	return 1;
}

int64_t extent_set_bytes(const struct extent_set *s)
{
	int64_t sum = 0;
	size_t i;

	for (i = 0; i < s->n; i++)
		sum += s->v[i].end - s->v[i].start;
	return sum;
}

char *extent_set_format(const struct extent_set *s)
{
	/* Two int64 in decimal, '-', ' ': at most 42 bytes a range. */
	size_t cap = s->n * 42 + 1, len = 0, i;
	char *out = malloc(cap);

	if (!out)
		return NULL;
	out[0] = '\0';
	for (i = 0; i < s->n; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%" PRId64 "-%" PRId64,
					i ? " " : "", s->v[i].start, s->v[i].end);
	return out;
}

int extent_set_parse(struct extent_set *s, const char *text, int64_t limit)
{
	const char *p = text;

	extent_set_clear(s);
	while (*p) {
		long long a, b;
		char *endp;

		while (*p == ' ')
			p++;
		if (!*p)
			break;
		errno = 0;
		a = strtoll(p, &endp, 10);
		if (errno || endp == p || *endp != '-')
			goto out_invalid;
		p = endp + 1;
		b = strtoll(p, &endp, 10);
		if (errno || endp == p || (*endp != ' ' && *endp != '\0'))
			goto out_invalid;
		p = endp;
		if (a < 0 || b <= a || b > limit)
			goto out_invalid;
		if (extent_set_add(s, a, b))
			return -ENOMEM;
	}
	return 0;

out_invalid:
	extent_set_clear(s);
	return -EINVAL;
}
