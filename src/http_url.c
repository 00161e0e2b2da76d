/*
 * http_url.c - origins of URLs, and what of a URL a log line may show:
 * download and upload URLs carry credentials in path and query.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"
#include "util.h"

char *http_origin_of(const char *url)
{
	const char *p, *end;
	char *origin;
	size_t n;

	if (!url || !(p = strstr(url, "://")))
		return NULL;
	p += 3;
	end = p + strcspn(p, "/?#");
	if (end == p)
		return NULL;
	n = (size_t)(end - url);
	origin = malloc(n + 1);
	if (!origin)
		return NULL;
	memcpy(origin, url, n);
	origin[n] = '\0';
	return origin;
}

/* url is origin itself or origin + "/...": the only place a bearer may go. */
int http_under_origin(const char *url, const char *origin)
{
	size_t n = strlen(origin);

	return strncasecmp(url, origin, n) == 0 && (url[n] == '/' || url[n] == '\0');
}

/*
 * What a log line may show of url: Graph URLs in full, anything else only
 * as its origin (download and upload URLs embed credentials).
 */
void http_url_for_log(const struct http_client *client, const char *url, char *buf,
		      size_t size)
{
	char *origin;

	if (http_under_origin(url, client->origin)) {
		snprintf(buf, size, "%s", url);
		return;
	}
	origin = http_origin_of(url);
	snprintf(buf, size, "%s/...", origin ? origin : "(invalid url)");
	free(origin);
}

/* The host part, for user-facing messages. */
void http_host_for_log(const char *url, char *buf, size_t size)
{
	const char *p = strstr(url, "://");
	size_t n;

	p = p ? p + 3 : url;
	n = strcspn(p, "/?#");
	snprintf(buf, size, "%.*s", (int)(n > 200 ? 200 : n), p);
}

char *http_form_escape(const char *value)
{
	return util_percent_encode(value, "");
}
