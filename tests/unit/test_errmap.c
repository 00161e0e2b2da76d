/*
 * test_errmap.c - Graph error bodies and statuses to errno, row by row,
 * plus malformed bodies that must never crash or read past their length.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errmap.h"
#include "unit.h"

#define BODY(code) "{\"error\":{\"code\":\"" code "\",\"message\":\"m\"}}"
#define INNER(code, inner) \
	"{\"error\":{\"code\":\"" code "\",\"message\":\"m\",\"innerError\":{\"code\":\"" inner "\"}}}"

struct row {
	long status;
	const char *body;     /* NULL: no body */
	int expect;           /* negative errno */
};

static const struct row rows[] = {
	/* service codes first */
	{ 404, BODY("itemNotFound"), -ENOENT },
	{ 409, BODY("nameAlreadyExists"), -EEXIST },
	{ 403, BODY("accessDenied"), -EACCES },
	{ 403, BODY("notAllowed"), -EPERM },
	{ 400, BODY("notAllowed"), -EPERM },
	{ 501, BODY("notSupported"), -ENOTSUP },
	{ 507, BODY("quotaLimitReached"), -ENOSPC },
	{ 412, BODY("resourceModified"), -ESTALE },
	{ 416, BODY("invalidRange"), -ERANGE },
	{ 429, BODY("activityLimitReached"), -EAGAIN },
	{ 429, BODY("TooManyRequests"), -EAGAIN },
	{ 503, BODY("serviceNotAvailable"), -EAGAIN },
	{ 401, BODY("unauthenticated"), -EACCES },
	{ 401, BODY("InvalidAuthenticationToken"), -EACCES },
	{ 400, INNER("invalidRequest", "pathIsTooLong"), -ENAMETOOLONG },
	{ 400, INNER("invalidRequest", "invalidPath"), -EINVAL },
	{ 400, BODY("invalidRequest"), -EINVAL },
	{ 403, BODY("malwareDetected"), -EACCES },
	{ 410, BODY("resyncRequired"), -ESTALE },
	{ 410, INNER("resyncRequired", "resyncApplyDifferences"), -ESTALE },
	{ 412, INNER("resourceModified", "entityTagDoesNotMatch"), -ESTALE },
	{ 429, INNER("activityLimitReached", "throttledRequest"), -EAGAIN },
	{ 401, INNER("unauthenticated", "expiredToken"), -EACCES },
	{ 400, INNER("invalidRequest", "serviceReadOnly"), -EROFS },
	/* the service code wins over the status */
	{ 400, BODY("itemNotFound"), -ENOENT },
	{ 500, BODY("nameAlreadyExists"), -EEXIST },
	/* codes compared without case */
	{ 200, BODY("ITEMNOTFOUND"), -ENOENT },
	/* unknown codes: the status decides */
	{ 404, BODY("somethingNew"), -ENOENT },
	{ 500, BODY("generalException"), -EIO },
	{ 409, INNER("somethingNew", "alsoNew"), -EEXIST },
	/* status only */
	{ 400, NULL, -EINVAL },
	{ 401, NULL, -EACCES },
	{ 403, NULL, -EACCES },
	{ 404, NULL, -ENOENT },
	{ 409, NULL, -EEXIST },
	{ 410, NULL, -ESTALE },
	{ 412, NULL, -ESTALE },
	{ 413, NULL, -EFBIG },
	{ 416, NULL, -ERANGE },
	{ 423, NULL, -EBUSY },
	{ 429, NULL, -EAGAIN },
	{ 500, NULL, -EIO },
	{ 502, NULL, -EIO },
	{ 503, NULL, -EAGAIN },
	{ 504, NULL, -EIO },
	{ 507, NULL, -ENOSPC },
	{ 509, NULL, -EIO },
	{ 418, NULL, -EIO },
	{ 0, NULL, -EIO },
	{ 200, NULL, -EIO },
};

static void test_table(void)
{
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		int got = errmap_response(r->status, r->body, r->body ? strlen(r->body) : 0);

		if (got != r->expect)
			fprintf(stderr, "row %zu: status %ld body %s\n", i, r->status,
				r->body ? r->body : "(none)");
		CHECK_INT(got, r->expect);
	}
}

static void test_parse_fields(void)
{
	const char *body = "{\"error\":{\"code\":\"itemNotFound\","
			   "\"message\":\"The resource could not be found.\","
			   "\"innerError\":{\"date\":\"x\",\"request-id\":\"y\"}}}";
	struct graph_error ge;

	CHECK_INT(errmap_parse(body, strlen(body), &ge), 0);
	CHECK_STR(ge.code, "itemNotFound");
	CHECK_STR(ge.message, "The resource could not be found.");
	CHECK_STR(ge.inner, "");
}

static void test_inner_chain(void)
{
	/* Graph's throttling sample: inner "429" unknown, deepest kept. */
	const char *graph = "{\"error\":{\"code\":\"TooManyRequests\",\"message\":\"Please retry\","
			    "\"innerError\":{\"code\":\"429\",\"status\":\"429\"}}}";
	/* OneDrive spelling, three deep: the known throttledRequest wins over "quota". */
	const char *od = "{\"error\":{\"code\":\"activityLimitReached\",\"message\":\"x\","
			 "\"innererror\":{\"code\":\"throttledRequest\","
			 "\"innererror\":{\"code\":\"quota\"}}}}";
	/* Known code deeper than an unknown one. */
	const char *deep = "{\"error\":{\"code\":\"invalidRequest\",\"innerError\":{\"code\":\"x\","
			   "\"innerError\":{\"code\":\"pathIsTooLong\"}}}}";
	struct graph_error ge;

	CHECK_INT(errmap_parse(graph, strlen(graph), &ge), 0);
	CHECK_STR(ge.inner, "429");
	CHECK_INT(errmap_to_errno(429, &ge), -EAGAIN);

	CHECK_INT(errmap_parse(od, strlen(od), &ge), 0);
	CHECK_STR(ge.code, "activityLimitReached");
	CHECK_STR(ge.inner, "throttledRequest");

	CHECK_INT(errmap_parse(deep, strlen(deep), &ge), 0);
	CHECK_STR(ge.inner, "pathIsTooLong");
	CHECK_INT(errmap_to_errno(400, &ge), -ENAMETOOLONG);
	CHECK_INT(errmap_to_errno(400, NULL), -EINVAL);
}

static void test_truncation(void)
{
	char body[2048], longmsg[600];
	struct graph_error ge;

	memset(longmsg, 'a', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	/* A two-byte UTF-8 character straddling the cut must not be split. */
	memcpy(longmsg + 254, "\xc3\xa9", 2);
	snprintf(body, sizeof(body), "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
		 "aVeryLongCodeThatIsLongerThanSixtyFourCharactersForSureYesIndeedItIs",
		 longmsg);
	CHECK_INT(errmap_parse(body, strlen(body), &ge), 0);
	CHECK_INT(strlen(ge.code), 63);
	CHECK_INT(strlen(ge.message), 254);

	/* Control characters never reach a log line. */
	snprintf(body, sizeof(body), "{\"error\":{\"code\":\"x\",\"message\":\"a\\nb\\u001bc\"}}");
	CHECK_INT(errmap_parse(body, strlen(body), &ge), 0);
	CHECK_STR(ge.message, "a b c");
}

static void test_malformed(void)
{
	static const char *bad[] = {
		"",
		"{",
		"{\"error\":{\"code\":\"itemNotFound\"",          /* truncated */
		"[]",
		"42",
		"\"error\"",
		"null",
		"{}",
		"{\"error\":null}",
		"{\"error\":\"itemNotFound\"}",                   /* OAuth shape, not Graph */
		"{\"error\":[1,2]}",
		"<html><body>Bad gateway</body></html>",
	};
	static const char *odd[] = {
		"{\"error\":{}}",
		"{\"error\":{\"code\":42,\"message\":[\"x\"]}}",
		"{\"error\":{\"code\":\"x\",\"innerError\":\"notAnObject\"}}",
		"{\"error\":{\"code\":\"x\",\"innerError\":{\"code\":7}}}",
		"{\"error\":{\"code\":null,\"innerError\":{\"innerError\":{}}}}",
	};
	struct graph_error ge;
	size_t i;
	char *huge, *deep;
	size_t n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_INT(errmap_parse(bad[i], strlen(bad[i]), &ge), -EINVAL);
		CHECK_STR(ge.code, "");
		CHECK_INT(errmap_response(404, bad[i], strlen(bad[i])), -ENOENT);
	}
	for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		CHECK_INT(errmap_parse(odd[i], strlen(odd[i]), &ge), 0);
		CHECK_INT(errmap_response(500, odd[i], strlen(odd[i])), -EIO);
	}
	CHECK_INT(errmap_parse(NULL, 0, &ge), -EINVAL);

	/* Length is respected: the valid prefix alone is parsed... */
	CHECK_INT(errmap_response(500, BODY("itemNotFound") "garbage",
				  strlen(BODY("itemNotFound"))), -ENOENT);
	/* ...and a cut body is not. */
	CHECK_INT(errmap_parse(BODY("itemNotFound"), 10, &ge), -EINVAL);

	/* Huge body (over the parse cap): the status decides. */
	n = 2 * 1024 * 1024;
	huge = malloc(n + 64);
	CHECK(huge != NULL);
	if (huge) {
		strcpy(huge, "{\"error\":{\"code\":\"itemNotFound\",\"message\":\"");
		memset(huge + strlen(huge), 'x', n);
		strcpy(huge + n, "\"}}");
		CHECK_INT(errmap_parse(huge, strlen(huge), &ge), -EINVAL);
		CHECK_INT(errmap_response(409, huge, strlen(huge)), -EEXIST);
		free(huge);
	}

	/* Deeply nested innerError: bounded walk, no crash. */
	n = 5000;
	deep = malloc(n * 32 + 64);
	CHECK(deep != NULL);
	if (deep) {
		static const char open[] = ",\"innerError\":{\"code\":\"c\"";
		char *p = deep;

		strcpy(p, "{\"error\":{\"code\":\"x\"");
		p += strlen(p);
		for (i = 0; i < n; i++, p += sizeof(open) - 1)
			memcpy(p, open, sizeof(open) - 1);
		for (i = 0; i < n; i++)
			*p++ = '}';
		strcpy(p, "}}");
		errmap_parse(deep, strlen(deep), &ge);   /* jansson may refuse the depth */
		CHECK(errmap_response(404, deep, strlen(deep)) == -ENOENT);
		free(deep);
	}
}

static void test_oauth(void)
{
	const char *body = "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS70000: bad\\r\\n"
			   "Trace ID: x\",\"error_codes\":[70000]}";
	char code[32], desc[64];

	CHECK_INT(errmap_parse_oauth(body, strlen(body), code, sizeof(code), desc, sizeof(desc)), 0);
	CHECK_STR(code, "invalid_grant");
	CHECK(strncmp(desc, "AADSTS70000: bad  Trace ID", 26) == 0);

	CHECK_INT(errmap_parse_oauth("{\"error\":{\"code\":\"x\"}}", 22, code, sizeof(code),
				     desc, sizeof(desc)), -EINVAL);
	CHECK_STR(code, "");
	CHECK_INT(errmap_parse_oauth("{\"access_token\":\"x\"}", 20, code, sizeof(code), NULL, 0),
		  -EINVAL);
	CHECK_INT(errmap_parse_oauth("not json", 8, code, sizeof(code), desc, sizeof(desc)),
		  -EINVAL);
	CHECK_INT(errmap_parse_oauth("{\"error\":\"authorization_pending\"}", 33, code, 8,
				     desc, sizeof(desc)), 0);
	CHECK_STR(code, "authori");
	CHECK_STR(desc, "");
}

static void test_strerror(void)
{
	CHECK_STR(errmap_strerror(-ECONNREFUSED), "connection refused");
	CHECK_STR(errmap_strerror(ENOENT), "no such file or folder");
	CHECK(errmap_strerror(-12345) != NULL);
}

int main(void)
{
	RUN(test_table);
	RUN(test_parse_fields);
	RUN(test_inner_chain);
	RUN(test_truncation);
	RUN(test_malformed);
	RUN(test_oauth);
	RUN(test_strerror);
	return unit_report("errmap");
}
