/*
 * names.h - OneDrive's rules for names: folding, validation, URL encoding.
 *
 * OneDrive names are case-insensitive and case-preserving; lookups compare
 * folded forms (Unicode simple lower case of valid UTF-8; invalid UTF-8 is
 * compared bytewise with ASCII letters lowered).  Pure functions, no globals
 * beyond a read-only C.UTF-8 locale created once: all thread-safe.  Folding
 * does not depend on the process locale.
 */
#ifndef ODFS_NAMES_H
#define ODFS_NAMES_H

#include <stddef.h>

/* Folded copy for case-insensitive comparison; malloc'd, NULL on ENOMEM. */
char *names_fold(const char *name);
/* 1 if a and b fold to the same string, else 0. */
int names_equal_fold(const char *a, const char *b);
/*
 * Static string naming the case tables names_fold() uses (C library version
 * and locale).  When it changes, stored folded names must be recomputed
 * (cache.c does this on open).
 */
const char *names_fold_version(void);

/* 1 if s is valid UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
int names_valid_utf8(const char *s);

/*
 * 0 if OneDrive accepts the name, else -EINVAL with *rule (if rule is not
 * NULL) set to a static phrase that completes "'<name>' ...", such as
 * "contains a character OneDrive does not allow ('*')".
 * Checks: empty, "." "..", '/', forbidden characters, control characters,
 * reserved names (CON, .lock, desktop.ini, ...), "~$" prefix, "_vti_",
 * trailing dot or space, leading space, over 255 bytes, invalid UTF-8.
 */
int names_validate(const char *name, const char **rule);

/*
 * Percent-encode one path segment (RFC 3986 pchar, minus ( ) ' ): bytes
 * other than ALPHA DIGIT - . _ ~ ! $ & + , ; = : @ become %XX (upper-case
 * hex, UTF-8 bytes one by one).  malloc'd, NULL on ENOMEM.
 */
char *names_escape_segment(const char *segment);

/*
 * "a (conflict 2026-11-29 031500).txt" for "a.txt": the name both copies
 * can live under when another device took ours (UTC; before the last
 * extension).  malloc'd, NULL on ENOMEM.
 */
char *names_conflict(const char *name);

#endif
