/*
 * util.h - small helpers for building error messages, shared by the
 * modules that hand a malloc'd sentence back through a `char **err`, and
 * percent-encoding.
 */
#ifndef ODFS_UTIL_H
#define ODFS_UTIL_H

/*
 * printf into a new string; the caller frees it.  NULL when out of memory,
 * which callers treat as "no message" (every taker of the result accepts NULL).
 */
char *util_format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Hand msg (malloc'd or NULL) to the caller's *err, freeing what was there;
 * when err is NULL the caller wants no message and msg is freed.
 */
void util_set_err(char **err, char *msg);

/*
 * Percent-encode s (malloc'd, NULL when out of memory): letters, digits,
 * "-._~" and the characters in also_keep stay, every other byte is %XX.
 */
char *util_percent_encode(const char *s, const char *also_keep);

#endif
