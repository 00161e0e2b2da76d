/*
 * http.c - libcurl behind one small blocking API, with the retry policy.
 *
 * DESIGN: FUSE threads, the token thread and the upload/delta workers all
 * call http_perform() concurrently.  An easy handle belongs to one thread
 * at a time: handles are taken from a free list (client->lock) and put back
 * after the transfer, so each keeps its idle connections (keep-alive,
 * HTTP/2) for the next request.  A share handle holds the DNS cache and TLS
 * sessions; the connection cache is deliberately NOT shared: libcurl does
 * not support sharing connections between concurrent threads (CURLSHOPT_
 * SHARE(3), curl discussion #12895), and per-handle caches give the same
 * reuse once the pool is warm.
 *
 * Throttling and connectivity are client-wide (http_state.c); what a log
 * line may show of a URL is decided in http_url.c.
 *
 * A thread may register a cancellation hook (http_set_thread_cancel()):
 * its transfers then run with a progress callback that aborts them, and
 * its waits sleep in short slices that look at the hook, so an unmount
 * never waits for a stalled upload or a long Retry-After.
 *
 * Nothing here logs a header or a body (they may hold tokens), and URLs
 * outside the authorized origin (pre-authenticated download and upload
 * URLs carry credentials in path and query) are logged as their origin.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "config.h"
#include "http.h"
#include "http_internal.h"
#include "log.h"

#ifndef ODFS_VERSION
#define ODFS_VERSION "0.1.0"
#endif

#define HTTP_DEFAULT_MAX_BODY (4u * 1024 * 1024)
#define HTTP_POOL_MAX 16            /* idle easy handles kept */
#define HTTP_SINK_BUFFER (256L * 1024)  /* curl's receive buffer for streamed bodies */
#define HTTP_BACKOFF_FIRST 0.5      /* seconds */
#define HTTP_BACKOFF_MAX 30.0
#define HTTP_RETRY_AFTER_MAX 300.0  /* a longer Retry-After would hang FUSE calls */
#define HTTP_OFFLINE_RETRIES 2      /* refused / unresolvable: offline, give up fast */
#define HTTP_OFFLINE_DELAY 0.2
#define HTTP_HEADER_MAX 16384       /* longest header value we keep */
#define HTTP_CANCEL_SLICE 0.1       /* seconds between looks at the cancel hook */

void http_request_init(struct http_request *req, const char *method, const char *url)
{
	memset(req, 0, sizeof(*req));
	req->method = method ? method : "GET";
	req->url = url;
	req->range_start = -1;
	req->range_end = -1;
}

static void response_init(struct http_response *resp)
{
	memset(resp, 0, sizeof(*resp));
	resp->content_length = -1;
	resp->retry_after = -1;
}

void http_response_release(struct http_response *resp)
{
	if (!resp)
		return;
	free(resp->body);
	free(resp->location);
	free(resp->content_range);
	free(resp->etag);
	response_init(resp);
}

/* ---- cancellation (per thread) ---- */

static _Thread_local http_cancel_fn cancel_fn;
static _Thread_local void *cancel_ctx;

void http_set_thread_cancel(http_cancel_fn fn, void *ctx)
{
	cancel_fn = fn;
	cancel_ctx = fn ? ctx : NULL;
}

static int cancel_requested(void)
{
	return cancel_fn && cancel_fn(cancel_ctx);
}

static void sleep_plain(double s)
{
	struct timespec ts;

	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

int http_sleep(double seconds)
{
	double end = http_now_mono() + seconds, left;

	if (!cancel_fn) {
		sleep_plain(seconds);
		return 0;
	}
	for (;;) {
		if (cancel_requested())
			return -ECANCELED;
		left = end - http_now_mono();
		if (left <= 0)
			return 0;
		sleep_plain(left < HTTP_CANCEL_SLICE ? left : HTTP_CANCEL_SLICE);
	}
}

/* ---- share locks ---- */

static void share_lock(CURL *handle, curl_lock_data data, curl_lock_access access, void *ctx)
{
	struct http_client *client = ctx;

	(void)handle;
	(void)access;
	if (data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&client->share_locks[data]);
}

static void share_unlock(CURL *handle, curl_lock_data data, void *ctx)
{
	struct http_client *client = ctx;

	(void)handle;
	if (data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&client->share_locks[data]);
}

/* ---- client ---- */

struct http_client *http_client_new(const struct odfs_config *cfg, const char *authorized_origin)
{
	struct http_client *client;
	int i;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return NULL;
	client = calloc(1, sizeof(*client));
	if (!client)
		goto out_global;
	client->cfg = cfg;
	client->origin = strdup(authorized_origin ? authorized_origin : "");
	client->user_agent = strdup("ISV|onedrivefs|onedrivefs/" ODFS_VERSION);
	if (!client->origin || !client->user_agent)
		goto out_free_strings;
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&client->share_locks[i], NULL);
	pthread_mutex_init(&client->lock, NULL);

	client->share = curl_share_init();
	if (!client->share)
		goto out_free_locks;
	if (curl_share_setopt(client->share, CURLSHOPT_LOCKFUNC, share_lock) ||
	    curl_share_setopt(client->share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
	    curl_share_setopt(client->share, CURLSHOPT_USERDATA, client) ||
	    curl_share_setopt(client->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
	    curl_share_setopt(client->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION))
		goto out_free_share;
	return client;

out_free_share:
	curl_share_cleanup(client->share);
out_free_locks:
	pthread_mutex_destroy(&client->lock);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&client->share_locks[i]);
out_free_strings:
	free(client->origin);
	free(client->user_agent);
	free(client);
out_global:
	curl_global_cleanup();
	return NULL;
}

void http_client_free(struct http_client *client)
{
	struct pooled *p, *next;
	int i;

	if (!client)
		return;
	/* Easy handles first: they still reference the share. */
	for (p = client->pool; p; p = next) {
		next = p->next;
		curl_easy_cleanup(p->curl);
		free(p);
	}
	curl_share_cleanup(client->share);
	pthread_mutex_destroy(&client->lock);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&client->share_locks[i]);
	free(client->origin);
	free(client->user_agent);
	free(client);
	curl_global_cleanup();
}

static CURL *pool_take(struct http_client *client)
{
	struct pooled *p;
	CURL *curl = NULL;

	pthread_mutex_lock(&client->lock);
	p = client->pool;
	if (p) {
		client->pool = p->next;
		client->pool_len--;
	}
	pthread_mutex_unlock(&client->lock);
	if (p) {
		curl = p->curl;
		free(p);
		/* Options go, connections and caches stay. */
		curl_easy_reset(curl);
		return curl;
	}
	return curl_easy_init();
}

static void pool_give(struct http_client *client, CURL *curl)
{
	struct pooled *p = NULL;

	pthread_mutex_lock(&client->lock);
	if (client->pool_len < HTTP_POOL_MAX && (p = malloc(sizeof(*p)))) {
		p->curl = curl;
		p->next = client->pool;
		client->pool = p;
		client->pool_len++;
	}
	pthread_mutex_unlock(&client->lock);
	if (!p)
		curl_easy_cleanup(curl);
}

/* ---- headers ---- */

/* Retry-After: delta seconds ("120", "2.128") or an HTTP-date; -1 if neither. */
static double parse_retry_after(const char *v)
{
	double secs = 0, scale = 0.1;
	const char *p = v;
	time_t when;

	/* By hand: strtod depends on the locale's decimal point. */
	if (*p >= '0' && *p <= '9') {
		for (; *p >= '0' && *p <= '9'; p++)
			if (secs < 1e9)
				secs = secs * 10 + (*p - '0');
		if (*p == '.')
			for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
				secs += (*p - '0') * scale;
		while (*p == ' ' || *p == '\t')
			p++;
		return *p == '\0' ? secs : -1;
	}
	when = curl_getdate(v, NULL);
	if (when == -1)
		return -1;
	secs = difftime(when, time(NULL));
	return secs > 0 ? secs : 0;
}

static int64_t parse_length(const char *v)
{
	int64_t n = 0;

	if (*v < '0' || *v > '9')
		return -1;
	for (; *v >= '0' && *v <= '9'; v++) {
		if (n > (INT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (*v - '0');
	}
	return *v == '\0' ? n : -1;
}

static void set_header(char **field, const char *value)
{
	free(*field);
	*field = strdup(value);
}

static size_t header_cb(char *data, size_t size, size_t nitems, void *ctx)
{
	struct transfer *t = ctx;
	struct http_response *resp = t->resp;
	size_t n = size * nitems, name_len, vlen;
	const char *colon, *v;
	char value[HTTP_HEADER_MAX];

	/* A new status line (after 1xx): forget the previous headers. */
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		free(resp->location);
		free(resp->content_range);
		free(resp->etag);
		resp->location = resp->content_range = resp->etag = NULL;
		resp->content_length = -1;
		resp->retry_after = -1;
		return n;
	}
	colon = memchr(data, ':', n);
	if (!colon)
		return n;
	name_len = (size_t)(colon - data);
	v = colon + 1;
	vlen = n - name_len - 1;
	while (vlen && (*v == ' ' || *v == '\t'))
		v++, vlen--;
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ' ||
			v[vlen - 1] == '\t'))
		vlen--;
	if (vlen >= sizeof(value))
		return n;    /* longer than any value we use: ignore it */
	memcpy(value, v, vlen);
	value[vlen] = '\0';

#define IS(name) (name_len == sizeof(name) - 1 && strncasecmp(data, name, name_len) == 0)
	if (IS("Location"))
		set_header(&resp->location, value);
	else if (IS("Content-Range"))
		set_header(&resp->content_range, value);
	else if (IS("ETag"))
		set_header(&resp->etag, value);
	else if (IS("Content-Length"))
		resp->content_length = parse_length(value);
	else if (IS("Retry-After"))
		resp->retry_after = parse_retry_after(value);
#undef IS
	return n;
}

/* ---- body ---- */

static int buffer_append(struct transfer *t, const char *data, size_t n)
{
	size_t want, alloc;
	char *p;

	if (n > t->cap || t->len > t->cap - n)
		return -EFBIG;
	want = t->len + n + 1;
	if (want > t->alloc) {
		alloc = t->alloc ? t->alloc : 4096;
		while (alloc < want)
			alloc *= 2;
		if (alloc > t->cap + 1)
			alloc = t->cap + 1;
		p = realloc(t->buf, alloc);
		if (!p)
			return -ENOMEM;
		t->buf = p;
		t->alloc = alloc;
	}
	memcpy(t->buf + t->len, data, n);
	t->len += n;
	t->buf[t->len] = '\0';
	return 0;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct transfer *t = ctx;
	size_t n = size * nmemb;
	long status = 0;
	int rc;

	if (!t->started) {
		t->started = 1;
		curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
		t->resp->status = status;
		/* Only a successful answer streams; error bodies are buffered. */
		t->to_sink = t->req->sink && status >= 200 && status < 300;
		if (t->to_sink && t->req->begin) {
			rc = t->req->begin(t->req->sink_ctx, t->resp);
			if (rc) {
				t->error = rc < 0 ? rc : -EIO;
				return 0;
			}
		}
	}
	if (n == 0)
		return 0;
	if (t->to_sink) {
		/* Counted before the call: a byte offered may have been used. */
		t->sink_bytes += (int64_t)n;
		rc = t->req->sink(t->req->sink_ctx, data, n);
		if (rc) {
			t->error = rc < 0 ? rc : -EIO;
			return 0;
		}
		return n;
	}
	rc = buffer_append(t, data, n);
	if (rc) {
		t->error = rc;
		return 0;
	}
	return n;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * CURLOPT_XFERINFOFUNCTION: cancellation, and the stall watch.  curl's
 * low-speed check averages over several seconds, so a request whose body
 * went out at once to a server that then says nothing would wait
 * io_timeout plus that window; here io_timeout without a byte either way
 * ends it.
 */
static int progress_cb(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct transfer *t = ctx;
	int64_t now;

	(void)dltotal;
	(void)ultotal;
	if (cancel_requested()) {
		t->error = -ECANCELED;
		return 1;
	}
	now = mono_ms();
	if (dlnow + ulnow != t->moved || !t->moved_at_ms) {
		t->moved = dlnow + ulnow;
		t->moved_at_ms = now;
		return 0;
	}
	if (t->stall_ms > 0 && now - t->moved_at_ms >= t->stall_ms) {
		t->stalled = 1;
		return 1;
	}
	return 0;
}

static size_t read_cb(char *buf, size_t size, size_t nitems, void *ctx)
{
	struct transfer *t = ctx;
	size_t n = size * nitems;
	ssize_t got;

	got = t->req->source(t->req->source_ctx, buf, n);
	if (got < 0) {
		t->error = (int)got;
		return CURL_READFUNC_ABORT;
	}
	if ((size_t)got > n)
		got = (ssize_t)n;
	t->source_bytes += got;
	return (size_t)got;
}

/* ---- one attempt ---- */

static int curl_to_errno(CURLcode code)
{
	switch (code) {
	case CURLE_COULDNT_CONNECT: return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT: return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST: return -EHOSTUNREACH;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	case CURLE_OUT_OF_MEMORY: return -ENOMEM;
	default: return -EIO;
	}
}

static struct curl_slist *build_headers(const struct http_request *req)
{
	struct curl_slist *list = NULL, *l;
	const char *const *h;
	char line[8192];
	int n;

	/* No "Expect: 100-continue" round trip before bodies. */
	if (!(list = curl_slist_append(list, "Expect:")))
		return NULL;
	if (req->bearer) {
		n = snprintf(line, sizeof(line), "Authorization: Bearer %s", req->bearer);
		l = (n > 0 && (size_t)n < sizeof(line)) ? curl_slist_append(list, line) : NULL;
		explicit_bzero(line, sizeof(line));
		if (!l)
			goto out_free_list;
		list = l;
	}
	if (req->content_type) {
		snprintf(line, sizeof(line), "Content-Type: %s", req->content_type);
		if (!(l = curl_slist_append(list, line)))
			goto out_free_list;
		list = l;
	}
	for (h = req->headers; h && *h; h++) {
		if (!(l = curl_slist_append(list, *h)))
			goto out_free_list;
		list = l;
	}
	return list;

out_free_list:
	curl_slist_free_all(list);
	return NULL;
}

static void setup_common(struct http_client *client, CURL *curl)
{
	const struct odfs_config *cfg = client->cfg;
	long connect_timeout = cfg && cfg->connect_timeout > 0 ? cfg->connect_timeout : 15;
	long io_timeout = cfg && cfg->io_timeout > 0 ? cfg->io_timeout : 30;

	curl_easy_setopt(curl, CURLOPT_SHARE, client->share);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, 60L);
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, 30L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, connect_timeout);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, io_timeout);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, client->user_agent);
}

static int setup_method(CURL *curl, const struct http_request *req, struct transfer *t)
{
	const char *m = req->method;

	if (req->source) {
		curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(curl, CURLOPT_READDATA, t);
		curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->source_len);
		if (strcmp(m, "PUT") != 0)
			curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, m);
		return 0;
	}
	if (strcmp(m, "GET") == 0 && !req->body) {
		curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
		return 0;
	}
	if (strcmp(m, "HEAD") == 0) {
		curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
		return 0;
	}
	if (strcmp(m, "DELETE") == 0 && !req->body) {
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, m);
		return 0;
	}
	/* POST/PUT/PATCH, with or without a body: always a Content-Length. */
	curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, req->body ? req->body : "");
	if (strcmp(m, "POST") != 0)
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, m);
	return 0;
}

/*
 * Send the request once.  0 with resp filled when an answer arrived,
 * else -errno; t tells how far a stream got.
 */
static int perform_once(struct http_client *client, const struct http_request *req,
			struct http_response *resp, struct transfer *t)
{
	struct curl_slist *headers;
	char range[64], logurl[512];
	CURLcode code;
	double total = 0;
	long status = 0;
	int rc;

	memset(t, 0, sizeof(*t));
	t->req = req;
	t->resp = resp;
	t->cap = req->max_body ? req->max_body : HTTP_DEFAULT_MAX_BODY;
	t->curl = pool_take(client);
	if (!t->curl)
		return -ENOMEM;
	headers = build_headers(req);
	if (!headers) {
		pool_give(client, t->curl);
		return -ENOMEM;
	}
	setup_common(client, t->curl);
	curl_easy_setopt(t->curl, CURLOPT_URL, req->url);
	curl_easy_setopt(t->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(t->curl, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(t->curl, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(t->curl, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(t->curl, CURLOPT_WRITEDATA, t);
	/* Streamed bodies (content) are large: fewer, larger reads from the socket. */
	if (req->sink)
		curl_easy_setopt(t->curl, CURLOPT_BUFFERSIZE, HTTP_SINK_BUFFER);
	if (req->range_start >= 0 && req->range_end >= req->range_start) {
		snprintf(range, sizeof(range), "%lld-%lld", (long long)req->range_start,
			 (long long)req->range_end);
		curl_easy_setopt(t->curl, CURLOPT_RANGE, range);
	} else if (!req->sink) {
		/* Compressed JSON; never for content, where ranges count raw bytes. */
		curl_easy_setopt(t->curl, CURLOPT_ACCEPT_ENCODING, "");
	}
	setup_method(t->curl, req, t);
	t->stall_ms = 1000L * (client->cfg && client->cfg->io_timeout > 0 ?
			       client->cfg->io_timeout : 30);
	curl_easy_setopt(t->curl, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(t->curl, CURLOPT_XFERINFODATA, t);
	curl_easy_setopt(t->curl, CURLOPT_NOPROGRESS, 0L);

	code = curl_easy_perform(t->curl);
	if (t->stalled)
		code = CURLE_OPERATION_TIMEDOUT;   /* as curl's own low-speed check says it */
	curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
	t->code = code;
	t->status = status;
	curl_easy_getinfo(t->curl, CURLINFO_TOTAL_TIME, &total);
	if (t->error)
		rc = t->error;
	else if (code != CURLE_OK)
		rc = curl_to_errno(code);
	else
		rc = 0;
	if (rc == 0) {
		resp->status = status;
		if (!t->to_sink) {
			if (!t->buf && buffer_append(t, "", 0) != 0) {
				rc = -ENOMEM;
			} else {
				resp->body = t->buf;
				resp->body_len = t->len;
				t->buf = NULL;
			}
		}
	}
	free(t->buf);
	t->buf = NULL;
	if (log_debug_enabled()) {
		http_url_for_log(client, req->url, logurl, sizeof(logurl));
		if (code == CURLE_OK || t->error)
			log_debug("%s %s -> %ld in %.3f s%s", req->method, logurl, status, total,
				  t->error ? " (aborted)" : "");
		else
			log_debug("%s %s -> %s after %.3f s", req->method, logurl,
				  curl_easy_strerror(code), total);
	}
	curl_easy_setopt(t->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(headers);
	pool_give(client, t->curl);
	t->curl = NULL;
	return rc;
}

/* ---- the retry loop ---- */

/* 5xx worth another try; 503 is handled with 429 (Retry-After). */
static int transient_status(long status)
{
	return status >= 500 && status < 600 && status != 501 && status != 505 &&
	       status != 507;
}

static double backoff_delay(int n)
{
	double d = HTTP_BACKOFF_FIRST;

	while (n-- > 0 && d < HTTP_BACKOFF_MAX)
		d *= 2;
	return d > HTTP_BACKOFF_MAX ? HTTP_BACKOFF_MAX : d;
}

/*
 * The retry loop: 0 with resp filled, or -errno.  *lost says whether the
 * last attempt failed for want of a connection.  While the client is
 * offline a failure to connect is returned at once: one attempt.
 */
static int perform_retrying(struct http_client *client, const struct http_request *req,
			    struct http_response *resp, int *lost)
{
	long max_retries = client->cfg && client->cfg->max_retries >= 0 ? client->cfg->max_retries : 6;
	int retries = 0, backoffs = 0, quick = 0, rc;
	struct transfer t;
	char host[256];
	double delay;

	for (;;) {
		if ((rc = http_throttle_wait(client)) < 0)
			return rc;
		http_response_release(resp);
		rc = perform_once(client, req, resp, &t);
		*lost = http_unreachable(&t);
		if (!*lost && t.status > 0)
			http_note_online(client);
		if (req->no_retry)
			return rc;
		/* A stream that has begun cannot be replayed. */
		if (t.sink_bytes > 0 || t.source_bytes > 0)
			return rc;
		http_host_for_log(req->url, host, sizeof(host));

		if (rc == 0 && (resp->status == 429 || resp->status == 503)) {
			if (retries >= max_retries)
				return 0;
			delay = resp->retry_after >= 0 ? resp->retry_after : backoff_delay(backoffs++);
			if (delay > HTTP_RETRY_AFTER_MAX)
				delay = HTTP_RETRY_AFTER_MAX;
			if (http_throttle_set(client, delay))
				log_info("'%s' is throttling requests (%ld): pausing all requests for %.1f s",
					 host, resp->status, delay);
			else
				log_debug("'%s' still throttling (%ld): waiting %.1f s (retry %d of %ld)",
					  host, resp->status, delay, retries + 1, max_retries);
			retries++;
			continue;
		}
		if (rc == -ECANCELED)
			return rc;
		if (rc == 0 && transient_status(resp->status)) {
			if (retries >= max_retries)
				return 0;
			delay = backoff_delay(backoffs++);
			log_debug("'%s' answered %ld: retrying in %.1f s (retry %d of %ld)", host,
				  resp->status, delay, retries + 1, max_retries);
			retries++;
			if (http_sleep(delay) < 0)
				return -ECANCELED;
			continue;
		}
		if (rc == 0) {
			http_throttle_clear_notice(client);
			return 0;
		}
		/* offline already: one attempt, no waiting (the prober finds the way back) */
		if (*lost && http_offline_since(client))
			return rc;
		if (rc == -ECONNREFUSED || rc == -EHOSTUNREACH) {
			/* Offline: say so soon rather than hang the caller. */
			/* (curl may have sent it on a reused connection that died first) */
			if (quick >= HTTP_OFFLINE_RETRIES || retries >= max_retries || req->no_resend)
				return rc;
			delay = HTTP_OFFLINE_DELAY * (quick + 1);
			log_debug("cannot reach '%s': %s: retrying in %.1f s", host,
				  rc == -ECONNREFUSED ? "connection refused" : "host not found", delay);
			quick++;
			retries++;
			if (http_sleep(delay) < 0)
				return -ECANCELED;
			continue;
		}
		if (rc == -ECONNRESET || rc == -ETIMEDOUT) {
			/*
			 * Nothing for io_timeout (or no connection in connect_timeout):
			 * the service is not answering.  Retrying would keep the caller
			 * waiting minutes; offline now, the prober finds the way back.
			 */
			if (rc == -ETIMEDOUT && *lost)
				return rc;
			if (retries >= max_retries || req->no_resend)
				return rc;
			delay = backoff_delay(backoffs++);
			log_debug("connection to '%s' failed: %s: retrying in %.1f s (retry %d of %ld)",
				  host, rc == -ETIMEDOUT ? "timed out" : "connection reset", delay,
				  retries + 1, max_retries);
			retries++;
			if (http_sleep(delay) < 0)
				return -ECANCELED;
			continue;
		}
		return rc;
	}
}

int http_perform(struct http_client *client, const struct http_request *req,
		 struct http_response *resp)
{
	int rc, first, lost = 0;
	char host[256];

	response_init(resp);
	if (!req->url || !req->method)
		return -EINVAL;
	if (req->bearer && !http_under_origin(req->url, client->origin)) {
		pthread_mutex_lock(&client->lock);
		first = !client->foreign_bearer_logged;
		client->foreign_bearer_logged = 1;
		pthread_mutex_unlock(&client->lock);
		http_host_for_log(req->url, host, sizeof(host));
		if (first)
			log_error("refused to send the access token to '%s': only '%s' may receive it",
				  host, client->origin);
		return -EPERM;
	}
	rc = perform_retrying(client, req, resp, &lost);
	if (rc < 0 && lost)
		http_note_offline(client, req->url, rc);
	return rc;
}
