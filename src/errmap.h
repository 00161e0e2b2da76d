/*
 * errmap.h - Graph and identity-platform errors to errno, in one pure place.
 *
 * The service's own code decides first (walking innerError to the most
 * specific code we know), the HTTP status second, EIO last.  Per-operation
 * overrides (e.g. a non-empty folder on rmdir) stay at the call site.
 * No I/O, no globals: safe to fuzz.
 */
#ifndef ODFS_ERRMAP_H
#define ODFS_ERRMAP_H

#include <stddef.h>

struct graph_error {
	char code[64];        /* top-level error.code, "" if none */
	char inner[64];       /* most specific innerError code, "" if none */
	char message[256];    /* error.message, truncated, "" if none */
};

/*
 * Parse a Graph error body {"error":{"code","message","innerError":{...}}}
 * (innerError or innererror).  Returns 0 if an error object was found,
 * -EINVAL otherwise (err is then zeroed).  Never reads past len.
 */
int errmap_parse(const char *body, size_t len, struct graph_error *err);

/* Map status + parsed codes to a negative errno (never 0). */
int errmap_to_errno(long status, const struct graph_error *err);

/* Convenience: parse (if possible) and map. */
int errmap_response(long status, const char *body, size_t len);

/*
 * Token-endpoint errors ({"error":"invalid_grant","error_description":...}).
 * Copies the error string into code (may be ""), returns 0 or -EINVAL.
 */
int errmap_parse_oauth(const char *body, size_t len, char *code, size_t codesz,
		       char *description, size_t descsz);

/*
 * Short lower-case text for an errno (sign ignored), for messages such as
 * "cannot read 'a.txt': connection refused".  Static storage, thread-safe:
 * use it instead of strerror().
 */
const char *errmap_strerror(int err);

/*
 * 1 when -errno (or errno) rc says the service could not be reached or
 * stopped answering (refused, unresolvable, timed out, reset): a failure
 * of the network, not of the request.
 */
int errmap_is_transport(int rc);

#endif
