/*
 * errmap.c - Graph and identity-platform errors to errno.
 *
 * One pure table-driven mapping (STYLE: sshfs sftp_error_to_errno), so that
 * every layer agrees on what a service answer means.  Decisions, in order:
 *
 *   1. the most specific innerError code we know (e.g. pathIsTooLong),
 *   2. the top-level error.code (e.g. itemNotFound),
 *   3. the HTTP status,
 *   4. EIO.
 *
 * Choices worth knowing (callers rely on them):
 *   resourceModified / 412     -> ESTALE  the item changed under us (eTag
 *                                         mismatch): refetch and decide again
 *   resyncRequired & co / 410  -> ESTALE  a delta link is no longer valid:
 *                                         start a fresh enumeration
 *   invalidRange / 416         -> ERANGE  a range the server will not serve
 *                                         (upload fragment overlap, read past
 *                                         end): the caller re-queries state
 *   throttling / 429 / 503     -> EAGAIN  only seen after http.c's retries
 *   401 / unauthenticated      -> EACCES  only seen after graph.c's refresh
 *   423 (locked)               -> EBUSY
 *   serviceReadOnly            -> EROFS
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "errmap.h"

/* Error bodies are small; anything bigger is not worth parsing. */
#define ERRMAP_MAX_BODY (1024 * 1024)
/* innerError chains are a handful deep; stop walking a hostile one. */
#define ERRMAP_MAX_DEPTH 32

struct code_map {
	const char *code;
	int err;      /* positive errno */
};

/* Inner codes: more specific than the top-level code, so they win. */
static const struct code_map inner_codes[] = {
	{ "pathIsTooLong", ENAMETOOLONG },
	{ "pathTooDeep", ENAMETOOLONG },
	{ "parameterIsTooLong", ENAMETOOLONG },
	{ "invalidPath", EINVAL },
	{ "malformedEntityTag", EINVAL },
	{ "invalidQueryOption", EINVAL },
	{ "entityTagDoesNotMatch", ESTALE },
	{ "resyncApplyDifferences", ESTALE },
	{ "resyncUploadDifferences", ESTALE },
	{ "resyncChangesApplyDifferences", ESTALE },
	{ "resyncChangesUploadDifferences", ESTALE },
	{ "throttledRequest", EAGAIN },
	{ "cannotSnapshotTree", EAGAIN },
	{ "expiredToken", EACCES },
	{ "accessRestricted", EACCES },
	{ "virusSuspicious", EACCES },
	{ "maxFileSizeExceeded", EFBIG },
	{ "fragmentOverlap", ERANGE },
	{ "fragmentOutOfOrder", ERANGE },
	{ "fragmentLengthMismatch", ERANGE },
	{ "lockMismatch", EBUSY },
	{ "lockNotFoundOrAlreadyExpired", EBUSY },
	{ "lockOwnerMismatch", EBUSY },
	{ "serviceReadOnly", EROFS },
	{ "uploadSessionNotFound", ENOENT },
};

/* Top-level codes (also accepted as inner codes). */
static const struct code_map top_codes[] = {
	{ "itemNotFound", ENOENT },
	{ "nameAlreadyExists", EEXIST },
	{ "accessDenied", EACCES },
	{ "notAllowed", EPERM },
	{ "notSupported", ENOTSUP },
	{ "quotaLimitReached", ENOSPC },
	{ "resourceModified", ESTALE },
	{ "invalidRange", ERANGE },
	{ "activityLimitReached", EAGAIN },
	{ "TooManyRequests", EAGAIN },
	{ "serviceNotAvailable", EAGAIN },
	{ "unauthenticated", EACCES },
	{ "InvalidAuthenticationToken", EACCES },
	{ "malwareDetected", EACCES },
	{ "resyncRequired", ESTALE },
	{ "syncStateNotFound", ESTALE },
	{ "invalidRequest", EINVAL },
	{ "BadRequest", EINVAL },
};

static int lookup(const struct code_map *map, size_t n, const char *code)
{
	size_t i;

	if (!code || !*code)
		return 0;
	/* Codes are documented in one case; accept any, it costs nothing. */
	for (i = 0; i < n; i++)
		if (strcasecmp(map[i].code, code) == 0)
			return map[i].err;
	return 0;
}

static int known_code(const char *code)
{
	return lookup(inner_codes, sizeof(inner_codes) / sizeof(inner_codes[0]), code) ||
	       lookup(top_codes, sizeof(top_codes) / sizeof(top_codes[0]), code);
}

/* Copy a string, truncated at a UTF-8 boundary, control characters as spaces. */
static void copy_text(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src), i;

	if (n >= size) {
		n = size - 1;
		/* Do not cut a multi-byte sequence in half. */
		while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
			n--;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c < 0x20 || c == 0x7F) ? ' ' : (char)c;
	}
	dst[n] = '\0';
}

/* Member of obj whose key equals name ignoring case (innerError/innererror). */
static json_t *get_nocase(json_t *obj, const char *name)
{
	const char *key;
	json_t *value;

	json_object_foreach(obj, key, value)
		if (strcasecmp(key, name) == 0)
			return value;
	return NULL;
}

int errmap_parse(const char *body, size_t len, struct graph_error *err)
{
	json_t *root, *error, *node, *code, *message;
	const char *deepest = NULL, *known = NULL;
	int depth;

	memset(err, 0, sizeof(*err));
	if (!body || len == 0 || len > ERRMAP_MAX_BODY)
		return -EINVAL;
	root = json_loadb(body, len, 0, NULL);
	if (!root)
		return -EINVAL;
	error = json_object_get(root, "error");
	if (!json_is_object(error)) {
		json_decref(root);
		return -EINVAL;
	}
	code = json_object_get(error, "code");
	if (json_is_string(code))
		copy_text(err->code, sizeof(err->code), json_string_value(code));
	message = json_object_get(error, "message");
	if (json_is_string(message))
		copy_text(err->message, sizeof(err->message), json_string_value(message));

	/* Walk the chain; the deepest code we know is the most specific. */
	node = get_nocase(error, "innererror");
	for (depth = 0; json_is_object(node) && depth < ERRMAP_MAX_DEPTH; depth++) {
		code = json_object_get(node, "code");
		if (json_is_string(code) && *json_string_value(code)) {
			deepest = json_string_value(code);
			if (known_code(deepest))
				known = deepest;
		}
		node = get_nocase(node, "innererror");
	}
	if (known || deepest)
		copy_text(err->inner, sizeof(err->inner), known ? known : deepest);
	json_decref(root);
	return 0;
}

static int status_to_errno(long status)
{
	switch (status) {
	case 400: return EINVAL;
	case 401: return EACCES;
	case 403: return EACCES;
	case 404: return ENOENT;
	case 405: return ENOTSUP;
	case 409: return EEXIST;
	case 410: return ESTALE;
	case 412: return ESTALE;
	case 413: return EFBIG;
	case 416: return ERANGE;
	case 423: return EBUSY;
	case 429: return EAGAIN;
	case 501: return ENOTSUP;
	case 503: return EAGAIN;
	case 507: return ENOSPC;
	default:  return EIO;
	}
}

int errmap_to_errno(long status, const struct graph_error *err)
{
	int e = 0;

	if (err) {
		e = lookup(inner_codes, sizeof(inner_codes) / sizeof(inner_codes[0]), err->inner);
		if (!e)
			e = lookup(top_codes, sizeof(top_codes) / sizeof(top_codes[0]), err->inner);
		if (!e)
			e = lookup(top_codes, sizeof(top_codes) / sizeof(top_codes[0]), err->code);
	}
	if (!e)
		e = status_to_errno(status);
	return -e;
}

int errmap_response(long status, const char *body, size_t len)
{
	struct graph_error err;

	if (errmap_parse(body, len, &err) < 0)
		return errmap_to_errno(status, NULL);
	return errmap_to_errno(status, &err);
}

int errmap_parse_oauth(const char *body, size_t len, char *code, size_t codesz,
		       char *description, size_t descsz)
{
	json_t *root, *error, *desc;
	int rc = -EINVAL;

	if (code && codesz)
		code[0] = '\0';
	if (description && descsz)
		description[0] = '\0';
	if (!body || len == 0 || len > ERRMAP_MAX_BODY)
		return -EINVAL;
	root = json_loadb(body, len, 0, NULL);
	if (!root)
		return -EINVAL;
	error = json_object_get(root, "error");
	if (json_is_string(error)) {
		if (code && codesz)
			copy_text(code, codesz, json_string_value(error));
		desc = json_object_get(root, "error_description");
		if (json_is_string(desc) && description && descsz)
			copy_text(description, descsz, json_string_value(desc));
		rc = 0;
	}
	json_decref(root);
	return rc;
}

const char *errmap_strerror(int err)
{
	switch (err < 0 ? -err : err) {
	case 0: return "success";
	case ENOENT: return "no such file or folder";
	case EEXIST: return "already exists";
	case EACCES: return "access denied";
	case EPERM: return "not allowed";
	case ENOTSUP: return "not supported";
	case ENOSPC: return "no space left (quota reached)";
	case ESTALE: return "changed on the server";
	case ERANGE: return "range not satisfiable";
	case EAGAIN: return "service busy, try again later";
	case ENAMETOOLONG: return "name or path too long";
	case EINVAL: return "invalid request";
	case EBUSY: return "locked";
	case EFBIG: return "too large";
	case EROFS: return "read-only";
	case ENOMEM: return "out of memory";
	case ECONNREFUSED: return "connection refused";
	case ECONNRESET: return "connection reset";
	case ETIMEDOUT: return "timed out";
	case EHOSTUNREACH: return "host unreachable (offline?)";
	case ENOTEMPTY: return "folder not empty";
	case ENOTDIR: return "not a folder";
	case EISDIR: return "is a folder";
	case ECANCELED: return "cancelled";
	case EIO: return "input/output error";
	default: return "unexpected error";
	}
}

int errmap_is_transport(int rc)
{
	switch (rc < 0 ? -rc : rc) {
	case ECONNREFUSED: case EHOSTUNREACH: case ENETUNREACH: case ETIMEDOUT:
	case ECONNRESET: case ECONNABORTED: case EHOSTDOWN:
		return 1;
	}
	return 0;
}
