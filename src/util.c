/*
 * util.c - message helpers shared by sign-in, the token store and the
 * command line (see util.h).
 */
#define _GNU_SOURCE   /* vasprintf */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

char *util_format(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

void util_set_err(char **err, char *msg)
{
	if (!err) {
		free(msg);
		return;
	}
	free(*err);
	*err = msg;
}
