/*
 * fuzz_errmap.c - error bodies from Graph and the identity platform.
 *
 * Input: two bytes choose the HTTP status and the buffer sizes given to
 * errmap_parse_oauth(), the rest is the body.  Checks errmap.h's promises:
 * every answer maps to a negative errno with a text, errmap_response() is
 * parse + map, a failed parse leaves a zeroed struct, and the copied codes
 * and messages are NUL-terminated inside the space they were given, valid
 * UTF-8 (cut at a character boundary) and free of control characters.
 */
#include <errno.h>
#include <string.h>

#include "errmap.h"
#include "fuzz.h"
#include "names.h"

#define CANARY 0x5a

/* The statuses the service sends most, then anything from 100 to 608. */
static long pick_status(uint8_t b)
{
	static const long common[] = { 400, 401, 403, 404, 409, 410, 412, 416, 423, 429,
				       500, 503, 507, 200, 302, 0 };

	if (b < 16 * 8)
		return common[b % 16];
	return 100 + (long)(b - 128) * 4;
}

static void check_text(const char *s, size_t size)
{
	const char *end = memchr(s, '\0', size);

	FUZZ_CHECK(end != NULL);
	FUZZ_CHECK(names_valid_utf8(s));
	for (; *s; s++)
		FUZZ_CHECK((unsigned char)*s >= 0x20 && *s != 0x7f);
}

static void check_zero(const struct graph_error *e)
{
	static const struct graph_error zero;

	FUZZ_CHECK(memcmp(e, &zero, sizeof(zero)) == 0);
}

static void check_oauth(const char *body, size_t len, size_t codesz, size_t descsz)
{
	char code[64 + 8], desc[512 + 8];
	size_t i;
	int rc;

	memset(code, CANARY, sizeof(code));
	memset(desc, CANARY, sizeof(desc));
	rc = errmap_parse_oauth(body, len, code, codesz, desc, descsz);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	for (i = codesz; i < sizeof(code); i++)
		FUZZ_CHECK(code[i] == CANARY);
	for (i = descsz; i < sizeof(desc); i++)
		FUZZ_CHECK(desc[i] == CANARY);
	if (codesz)
		check_text(code, codesz);
	if (descsz)
		check_text(desc, descsz);
	if (rc < 0) {
		FUZZ_CHECK(!codesz || code[0] == '\0');
		FUZZ_CHECK(!descsz || desc[0] == '\0');
	}
	/* NULL buffers are allowed */
	FUZZ_CHECK(errmap_parse_oauth(body, len, NULL, 0, NULL, 0) == rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body;
	struct graph_error ge;
	long status;
	size_t len, codesz, descsz;
	int rc, e;

	if (size < 2)
		return 0;
	status = pick_status(data[0]);
	codesz = data[1] & 63;         /* 0..63 of 64 */
	descsz = data[1] & 0x40 ? 512 : 1 + (data[1] & 63);
	body = (const char *)data + 2;
	len = size - 2;

	rc = errmap_parse(body, len, &ge);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL);
	if (rc < 0) {
		check_zero(&ge);
	} else {
		check_text(ge.code, sizeof(ge.code));
		check_text(ge.inner, sizeof(ge.inner));
		check_text(ge.message, sizeof(ge.message));
	}
	e = errmap_to_errno(status, rc == 0 ? &ge : NULL);
	FUZZ_CHECK(e < 0);
	FUZZ_CHECK(errmap_strerror(e) && *errmap_strerror(e));
	FUZZ_CHECK(errmap_response(status, body, len) == e);

	check_oauth(body, len, codesz, descsz);
	return 0;
}
