/*
 * names.c - OneDrive's name rules: case folding, validation, URL escaping.
 *
 * Folding must not depend on the locale the daemon was started in, so it
 * runs under a private C.UTF-8 locale (uselocale() is per thread) created
 * once.  Without that locale only ASCII letters fold, and
 * names_fold_version() says so, so cached folded names get recomputed when
 * the tables change.  The validation rules are graph-notes.md section 12.
 */
#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <wchar.h>
#include <wctype.h>
#ifdef __GLIBC__
#include <gnu/libc-version.h>
#endif
#include "names.h"

#define NAME_MAX_BYTES 255

static pthread_once_t fold_once = PTHREAD_ONCE_INIT;
/* Written once under fold_once, read-only afterwards. */
static locale_t fold_locale;       /* (locale_t)0: ASCII folding only */
static char fold_version[64];

static void fold_init(void)
{
	static const char *const names[] = { "C.UTF-8", "C.utf8", "en_US.UTF-8" };
	const char *libc = "libc";

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && !fold_locale; i++)
		fold_locale = newlocale(LC_CTYPE_MASK, names[i], (locale_t)0);
#ifdef __GLIBC__
	libc = gnu_get_libc_version();
#endif
	snprintf(fold_version, sizeof(fold_version), "%s %s", libc,
		 fold_locale ? "utf8-lower" : "ascii-lower");
}

const char *names_fold_version(void)
{
	pthread_once(&fold_once, fold_init);
	return fold_version;
}

int names_valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		uint32_t cp;
		int extra;

		if (*p < 0x80) {
			p++;
			continue;
		} else if (*p >= 0xc2 && *p <= 0xdf) {
			cp = *p & 0x1f;
			extra = 1;
		} else if (*p >= 0xe0 && *p <= 0xef) {
			cp = *p & 0x0f;
			extra = 2;
		} else if (*p >= 0xf0 && *p <= 0xf4) {
			cp = *p & 0x07;
			extra = 3;
		} else {
			return 0;  /* continuation byte, overlong 0xc0/0xc1, or past U+10FFFF */
		}
		for (int i = 1; i <= extra; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;  /* also stops at the NUL */
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
		p += extra + 1;
	}
	return 1;
}

static void fold_ascii(const char *in, char *out)
{
	while (*in) {
		unsigned char ch = (unsigned char)*in++;

		*out++ = (char)(ch >= 'A' && ch <= 'Z' ? ch + ('a' - 'A') : ch);
	}
	*out = '\0';
}

/*
 * Valid UTF-8 only.  Every non-ASCII character takes at least two bytes and
 * its lower case at most four, so out needs 2 * strlen(in) + 1 bytes.
 * Returns -1 if the C library disagrees about the encoding.
 */
static int fold_utf8(const char *in, char *out, size_t cap)
{
	locale_t old = uselocale(fold_locale);
	mbstate_t in_state, out_state;
	size_t left = strlen(in), o = 0;
	int ret = -1;

	memset(&in_state, 0, sizeof(in_state));
	memset(&out_state, 0, sizeof(out_state));
	while (left) {
		char mb[MB_LEN_MAX];
		wchar_t wc;
		size_t n = mbrtowc(&wc, in, left, &in_state), m;

		if (n == 0 || n > left)  /* (size_t)-1 and -2 are larger than left */
			goto out_restore_locale;
		m = wcrtomb(mb, (wchar_t)towlower_l((wint_t)wc, fold_locale), &out_state);
		if (m == (size_t)-1 || m > cap - 1 - o)
			goto out_restore_locale;
		memcpy(out + o, mb, m);
		o += m;
		in += n;
		left -= n;
	}
	out[o] = '\0';
	ret = 0;
out_restore_locale:
	uselocale(old);
	return ret;
}

char *names_fold(const char *name)
{
	size_t len = strlen(name), cap;
	const unsigned char *p;
	char *out;

	if (len > (SIZE_MAX - 1) / 2)
		return NULL;
	cap = 2 * len + 1;
	out = malloc(cap);
	if (!out)
		return NULL;
	for (p = (const unsigned char *)name; *p && *p < 0x80; p++)
		;
	pthread_once(&fold_once, fold_init);
	if (!*p || !fold_locale || !names_valid_utf8(name) || fold_utf8(name, out, cap) < 0)
		fold_ascii(name, out);
	return out;
}

int names_equal_fold(const char *a, const char *b)
{
	char *fa = names_fold(a), *fb = names_fold(b);
	int equal;

	if (fa && fb)
		equal = strcmp(fa, fb) == 0;
	else  /* out of memory: exact comparison is the safe answer */
		equal = strcmp(a, b) == 0;
	free(fa);
	free(fb);
	return equal;
}

/* Case-insensitive (ASCII) search for needle in s. */
static int contains_ascii_ci(const char *s, const char *needle)
{
	size_t n = strlen(needle);

	for (; *s; s++)
		if (strncasecmp(s, needle, n) == 0)
			return 1;
	return 0;
}

/* CON, PRN, AUX, NUL, COM0-9, LPT0-9, alone or with any extension. */
static int is_device_name(const char *name)
{
	static const char *const devices[] = { "con", "prn", "aux", "nul" };
	size_t base = strcspn(name, ".");

	for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++)
		if (base == 3 && strncasecmp(name, devices[i], 3) == 0)
			return 1;
	return base == 4 && (strncasecmp(name, "com", 3) == 0 || strncasecmp(name, "lpt", 3) == 0) &&
	       name[3] >= '0' && name[3] <= '9';
}

static const char *forbidden_rule(char ch)
{
	switch (ch) {
	case '"': return "contains a character OneDrive does not allow ('\"')";
	case '*': return "contains a character OneDrive does not allow ('*')";
	case ':': return "contains a character OneDrive does not allow (':')";
	case '<': return "contains a character OneDrive does not allow ('<')";
	case '>': return "contains a character OneDrive does not allow ('>')";
	case '?': return "contains a character OneDrive does not allow ('?')";
	case '/': return "contains a character OneDrive does not allow ('/')";
	case '\\': return "contains a character OneDrive does not allow ('\\')";
	case '|': return "contains a character OneDrive does not allow ('|')";
	default: return NULL;
	}
}

static const char *validate_rule(const char *name)
{
	size_t len = strlen(name);

	if (len == 0)
		return "is empty";
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return "is a name OneDrive reserves";
	if (len > NAME_MAX_BYTES)
		return "is longer than 255 bytes";
	if (!names_valid_utf8(name))
		return "is not valid UTF-8";
	for (const char *p = name; *p; p++) {
		const char *rule = forbidden_rule(*p);

		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return "contains a control character";
		if (rule)
			return rule;
	}
	if (name[0] == ' ')
		return "starts with a space";
	if (name[len - 1] == '.' || name[len - 1] == ' ')
		return "ends with a dot or a space";
	if (strncmp(name, "~$", 2) == 0)
		return "starts with '~$', which OneDrive reserves";
	if (contains_ascii_ci(name, "_vti_"))
		return "contains '_vti_', which OneDrive reserves";
	if (strcasecmp(name, ".lock") == 0 || strcasecmp(name, "desktop.ini") == 0 ||
	    is_device_name(name))
		return "is a name OneDrive reserves";
	return NULL;
}

int names_validate(const char *name, const char **rule)
{
	const char *broken = name ? validate_rule(name) : "is empty";

	if (rule)
		*rule = broken;
	return broken ? -EINVAL : 0;
}

char *names_escape_segment(const char *segment)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(segment), o = 0;
	char *out;

	if (len > (SIZE_MAX - 1) / 3)
		return NULL;
	out = malloc(3 * len + 1);
	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)segment; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~!$&+,;=:@", *p)) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return out;
}

char *names_conflict(const char *name)
{
	const char *dot = strrchr(name, '.');
	char stamp[32], *out;
	struct tm tm;
	time_t t = time(NULL);
	size_t base, len;

	if (!gmtime_r(&t, &tm))
		return NULL;
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H%M%S", &tm);
	base = dot && dot != name ? (size_t)(dot - name) : strlen(name);
	len = strlen(name) + sizeof(" (conflict )") + strlen(stamp);
	out = malloc(len);
	if (out)
		snprintf(out, len, "%.*s (conflict %s)%s", (int)base, name, stamp, name + base);
	return out;
}
