/*
 * fuzz_names.c - OneDrive name rules on arbitrary names.
 *
 * The input is one or two names (split at the first NUL).  Checks, per
 * names.h: names_validate() accepts only what the listed rules allow and
 * always says why it refuses; names_escape_segment() emits only unreserved
 * characters and %XX and decodes back to the name; names_fold() keeps the
 * length bound names.c relies on, folds ASCII letters, is equal to itself
 * under names_equal_fold(), and that comparison is symmetric.
 */
#define _GNU_SOURCE   /* strcasestr */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "names.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;   /* names.h promises upper-case hex */
}

static void check_escape(const char *name)
{
	char *esc = names_escape_segment(name), *dec;
	size_t o = 0;

	FUZZ_CHECK(esc != NULL);
	dec = malloc(strlen(esc) + 1);
	FUZZ_CHECK(dec != NULL);
	for (const char *p = esc; *p; p++) {
		if (*p == '%') {
			FUZZ_CHECK(hexval(p[1]) >= 0 && hexval(p[2]) >= 0);
			dec[o++] = (char)(hexval(p[1]) << 4 | hexval(p[2]));
			p += 2;
			continue;
		}
		FUZZ_CHECK((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			   (*p >= '0' && *p <= '9') || strchr("-._~!$&+,;=:@", *p));
		dec[o++] = *p;
	}
	dec[o] = '\0';
	FUZZ_CHECK(strcmp(dec, name) == 0);
	free(dec);
	free(esc);
}

static void check_validate(const char *name)
{
	const char *rule = "unset";
	size_t len = strlen(name);
	int rc = names_validate(name, &rule);

	if (rc < 0) {
		FUZZ_CHECK(rc == -EINVAL);
		FUZZ_CHECK(rule && *rule);
		return;
	}
	FUZZ_CHECK(rc == 0 && rule == NULL);
	FUZZ_CHECK(len > 0 && len <= 255);
	FUZZ_CHECK(names_valid_utf8(name));
	FUZZ_CHECK(strcmp(name, ".") != 0 && strcmp(name, "..") != 0);
	FUZZ_CHECK(!strpbrk(name, "\"*:<>?/\\|\x7f"));
	for (const char *p = name; *p; p++)
		FUZZ_CHECK((unsigned char)*p >= 0x20);
	FUZZ_CHECK(name[0] != ' ' && name[len - 1] != ' ' && name[len - 1] != '.');
	FUZZ_CHECK(strncmp(name, "~$", 2) != 0);
	FUZZ_CHECK(!strcasestr(name, "_vti_"));
	FUZZ_CHECK(strcasecmp(name, "desktop.ini") != 0 && strcasecmp(name, ".lock") != 0);
	FUZZ_CHECK(names_validate(name, NULL) == 0);
}

static void check_fold(const char *a, const char *b)
{
	char *fa = names_fold(a);
	size_t i, len = strlen(a);

	FUZZ_CHECK(fa != NULL);
	FUZZ_CHECK(strlen(fa) <= 2 * len);
	if (!names_valid_utf8(a)) {
		/* bytewise, ASCII letters lowered */
		FUZZ_CHECK(strlen(fa) == len);
		for (i = 0; i < len; i++)
			FUZZ_CHECK(fa[i] == ((a[i] >= 'A' && a[i] <= 'Z') ? a[i] + 32 : a[i]));
	} else {
		FUZZ_CHECK(names_valid_utf8(fa));
	}
	FUZZ_CHECK(names_equal_fold(a, a) == 1);
	FUZZ_CHECK(names_equal_fold(a, b) == names_equal_fold(b, a));
	free(fa);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *a = fuzz_cstring(data, size);
	const char *b = a + strlen(a) + 1 <= a + size ? a + strlen(a) + 1 : "";

	check_validate(a);
	check_escape(a);
	check_fold(a, b);
	free(a);
	return 0;
}
