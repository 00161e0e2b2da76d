/*
 * test_names.c - folding, OneDrive's name rules and path-segment escaping.
 */
#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "names.h"
#include "unit.h"

static void check_fold(const char *in, const char *want)
{
	char *got = names_fold(in);

	CHECK_STR(got, want);
	free(got);
}

static void test_fold(void)
{
	check_fold("", "");
	check_fold("Hello World.TXT", "hello world.txt");
	check_fold("\xc3\x89t\xc3\xa9", "\xc3\xa9t\xc3\xa9");                /* Été -> été */
	check_fold("\xc3\x84RGER", "\xc3\xa4rger");                          /* ÄRGER */
	check_fold("\xce\xa3\xce\x9f\xce\xa6\xce\x99\xce\x91", "\xcf\x83\xce\xbf\xcf\x86\xce\xb9\xce\xb1"); /* ΣΟΦΙΑ */
	check_fold("\xd0\x96\xd0\xa3\xd0\x9a", "\xd0\xb6\xd1\x83\xd0\xba");  /* ЖУК */
	check_fold("\xc8\xba", "\xe2\xb1\xa5");     /* U+023A -> U+2C65: grows from 2 to 3 bytes */
	check_fold("\xf0\x90\x90\x80", "\xf0\x90\x90\xa8");  /* Deseret U+10400 -> U+10428 */
	check_fold("\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac");  /* no case */
	check_fold("\xe2\x80\x8b" "A", "\xe2\x80\x8b" "a");
	/* invalid UTF-8: bytes kept, ASCII lowered */
	check_fold("AB\xff\xc3" "C", "ab\xff\xc3" "c");
	check_fold("\xc3\x89\x80X", "\xc3\x89\x80x");  /* É followed by a stray byte */
	check_fold("\xed\xa0\x80Z", "\xed\xa0\x80z");  /* surrogate */

	CHECK(names_equal_fold("README.md", "readme.MD"));
	CHECK(names_equal_fold("\xc3\x89" "cole", "\xc3\xa9" "COLE"));
	CHECK(!names_equal_fold("a", "b"));
	CHECK(!names_equal_fold("e", "\xc3\xa9"));
	CHECK(names_fold_version()[0] != '\0');
}

/* The process locale must not change the result. */
static void test_fold_locale_independent(void)
{
	char *before = names_fold("\xc3\x89T\xc3\x89"), *after;

	setlocale(LC_ALL, "C");
	after = names_fold("\xc3\x89T\xc3\x89");
	CHECK_STR(after, "\xc3\xa9t\xc3\xa9");
	CHECK_STR(before, after);
	free(before);
	free(after);
}

static void *fold_thread(void *arg)
{
	long *bad = arg;

	for (int i = 0; i < 2000; i++) {
		char *f = names_fold("\xc3\x96" "STERREICH \xc3\x89T\xc3\x89");

		if (!f || strcmp(f, "\xc3\xb6sterreich \xc3\xa9t\xc3\xa9") != 0)
			(*bad)++;
		free(f);
	}
	return NULL;
}

static void test_fold_threads(void)
{
	pthread_t t[4];
	long bad[4] = { 0 };

	for (int i = 0; i < 4; i++)
		CHECK_INT(pthread_create(&t[i], NULL, fold_thread, &bad[i]), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_INT(bad[i], 0);
	}
}

static void check_valid(const char *name)
{
	const char *rule = "unset";
	int rc = names_validate(name, &rule);

	if (rc != 0)
		fprintf(stderr, "'%s' rejected: %s\n", name, rule);
	CHECK_INT(rc, 0);
	CHECK(rule == NULL);
}

static void check_invalid(const char *name, const char *want_rule)
{
	const char *rule = NULL;

	CHECK_INT(names_validate(name, &rule), -EINVAL);
	CHECK_STR(rule, want_rule);
}

static void test_validate(void)
{
	char longname[300];
	static const char *const devices[] = {
		"CON", "con", "Prn", "AUX", "nul", "COM0", "com9", "LPT0", "lpt5",
		"CON.txt", "nul.tar.gz", "Com1.log",
	};

	check_valid("a");
	check_valid("Report 2024.xlsx");
	check_valid(".hidden");
	check_valid("a..b");
	check_valid("#hash%percent");
	check_valid("\xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac");
	check_valid("console");
	check_valid("COM10");
	check_valid("CONX.txt");
	check_valid("lpt");
	check_valid("x.lock");
	check_valid("desktop.ini.bak");
	check_valid("a~$b");
	check_valid("~file");
	check_valid("vti_");
	check_valid("(1) it's [ok] {x} + y = z; a,b @c !d $e &f");

	check_invalid("", "is empty");
	CHECK_INT(names_validate(NULL, NULL), -EINVAL);
	CHECK_INT(names_validate("ok", NULL), 0);
	check_invalid(".", "is a name OneDrive reserves");
	check_invalid("..", "is a name OneDrive reserves");
	check_invalid("a/b", "contains a character OneDrive does not allow ('/')");
	check_invalid("a\\b", "contains a character OneDrive does not allow ('\\')");
	check_invalid("a*", "contains a character OneDrive does not allow ('*')");
	check_invalid("a:b", "contains a character OneDrive does not allow (':')");
	check_invalid("<a", "contains a character OneDrive does not allow ('<')");
	check_invalid("a>", "contains a character OneDrive does not allow ('>')");
	check_invalid("what?", "contains a character OneDrive does not allow ('?')");
	check_invalid("say \"hi\"", "contains a character OneDrive does not allow ('\"')");
	check_invalid("a|b", "contains a character OneDrive does not allow ('|')");
	check_invalid("tab\there", "contains a control character");
	check_invalid("nl\n", "contains a control character");
	check_invalid("\x01", "contains a control character");
	check_invalid("\x1f" "x", "contains a control character");
	check_invalid("del\x7f", "contains a control character");
	for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++)
		check_invalid(devices[i], "is a name OneDrive reserves");
	check_invalid(".lock", "is a name OneDrive reserves");
	check_invalid(".LOCK", "is a name OneDrive reserves");
	check_invalid("desktop.ini", "is a name OneDrive reserves");
	check_invalid("Desktop.INI", "is a name OneDrive reserves");
	check_invalid("~$report.docx", "starts with '~$', which OneDrive reserves");
	check_invalid("my_vti_folder", "contains '_vti_', which OneDrive reserves");
	check_invalid("_VTI_", "contains '_vti_', which OneDrive reserves");
	check_invalid("name.", "ends with a dot or a space");
	check_invalid("name ", "ends with a dot or a space");
	check_invalid("CON.", "ends with a dot or a space");
	check_invalid(" name", "starts with a space");
	check_invalid("bad\xff", "is not valid UTF-8");
	check_invalid("\xc0\xaf", "is not valid UTF-8");          /* overlong '/' */
	check_invalid("\xed\xa0\x80", "is not valid UTF-8");      /* surrogate */
	check_invalid("\xf4\x90\x80\x80", "is not valid UTF-8");  /* past U+10FFFF */
	check_invalid("\xc3", "is not valid UTF-8");              /* truncated */

	memset(longname, 'a', 255);
	longname[255] = '\0';
	check_valid(longname);
	longname[255] = 'b';
	longname[256] = '\0';
	check_invalid(longname, "is longer than 255 bytes");
}

static void test_valid_utf8(void)
{
	CHECK(names_valid_utf8(""));
	CHECK(names_valid_utf8("plain"));
	CHECK(names_valid_utf8("\xf0\x9f\x98\x80"));  /* U+1F600 */
	CHECK(names_valid_utf8("\xf4\x8f\xbf\xbf"));  /* U+10FFFF */
	CHECK(names_valid_utf8("\xef\xbf\xbd"));
	CHECK(!names_valid_utf8("\x80"));
	CHECK(!names_valid_utf8("\xe0\x80\x80"));      /* overlong */
	CHECK(!names_valid_utf8("\xf0\x80\x80\x80")); /* overlong */
	CHECK(!names_valid_utf8("\xe2\x82"));          /* truncated */
	CHECK(!names_valid_utf8("\xf8\x88\x80\x80\x80"));
}

static void check_escape(const char *in, const char *want)
{
	char *got = names_escape_segment(in);

	CHECK_STR(got, want);
	free(got);
}

static void test_escape(void)
{
	check_escape("", "");
	check_escape("plain-name_1.txt", "plain-name_1.txt");
	check_escape("a b", "a%20b");
	check_escape("~!$&+,;=:@", "~!$&+,;=:@");
	check_escape("(x)'y'", "%28x%29%27y%27");
	check_escape("a/b?c#d%e", "a%2Fb%3Fc%23d%25e");
	check_escape("\"<>\\^`{|}[]", "%22%3C%3E%5C%5E%60%7B%7C%7D%5B%5D");
	check_escape("\xc3\xa9t\xc3\xa9", "%C3%A9t%C3%A9");
	check_escape("\xe6\x97\xa5", "%E6%97%A5");
	check_escape("\x01\x7f\xff", "%01%7F%FF");
	check_escape("ZZaz09", "ZZaz09");
}

int main(void)
{
	setlocale(LC_ALL, "");
	RUN(test_fold);
	RUN(test_fold_locale_independent);
	RUN(test_fold_threads);
	RUN(test_validate);
	RUN(test_valid_utf8);
	RUN(test_escape);
	return unit_report("names");
}
