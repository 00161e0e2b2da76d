/*
 * fuzz_graph_time.c - graph_parse_time() on arbitrary text.
 *
 * A time it accepts must be a real instant: nanoseconds in range, and
 * printing it back as UTC ISO-8601 and parsing that gives the same instant
 * (so offsets, leap days and the leap second are applied consistently).
 */
#include <errno.h>
#include <time.h>

#include "fuzz.h"
#include "graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct timespec ts, again;
	char *text = fuzz_cstring(data, size), buf[128];
	struct tm tm;
	int rc;

	rc = graph_parse_time(text, &ts);
	free(text);
	if (rc < 0) {
		FUZZ_CHECK(rc == -EINVAL);
		return 0;
	}
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
	FUZZ_CHECK(gmtime_r(&ts.tv_sec, &tm) != NULL);
	/* years outside 0000-9999 (an offset past the edge) have no 4-digit form */
	if (tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
		return 0;
	snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)ts.tv_nsec);
	FUZZ_CHECK(graph_parse_time(buf, &again) == 0);
	FUZZ_CHECK(again.tv_sec == ts.tv_sec && again.tv_nsec == ts.tv_nsec);
	return 0;
}
