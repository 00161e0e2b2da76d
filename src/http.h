/*
 * http.h - every byte that crosses the network goes through here.
 *
 * DESIGN: one struct http_client per process, shared by all threads.  It
 * owns a libcurl share handle (DNS cache, TLS sessions, connection cache)
 * and a small pool of easy handles, so connections are reused across
 * threads (keep-alive, HTTP/2 where offered).  TLS verification is always
 * on and cannot be turned off.
 *
 * Retry policy lives here and nowhere else: 429 and 503 wait Retry-After
 * (seconds, may be fractional) and pause every thread of the client until
 * then; other 5xx, 509 and dropped connections back off exponentially
 * (0.5 s doubling, capped at 30 s) up to cfg->max_retries times; a refused
 * connection or an unknown host is retried at most twice, quickly (not at
 * all while offline, see below).
 * A streaming request (sink set) is retried only while no body byte has been
 * handed to the sink, and one with a source only while the source has not
 * been read.  4xx other than 429 are returned at once, and so are 501, 505
 * and 507 (not transient).  Retry-After waits are capped at 300 s.
 * Redirects are never followed: a 302 comes back with resp->location.
 *
 * Connectivity: a request that ends, after its retries, with no answer
 * (refused, unknown host, unreachable, timed out, reset before a response)
 * makes the client "offline since" that moment; any HTTP answer, whatever
 * its status, makes it online again.  Each change is logged once.  While
 * offline a request makes one attempt: a failure to connect comes back at
 * once, with no retries, so callers never stack up minutes of waiting.
 *
 * The bearer token is attached only to URLs under the authorized origin
 * given to http_client_new() (the Graph host): a request with a bearer for
 * any other URL fails with -EPERM before anything is sent.  Download and
 * upload URLs are therefore always sent without Authorization.
 */
#ifndef ODFS_HTTP_H
#define ODFS_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct odfs_config;
struct http_client;

/* Receives body bytes of a 2xx response; return 0 to go on, -errno to abort. */
typedef int (*http_sink_fn)(void *ctx, const char *data, size_t len);
struct http_response;
/*
 * Called with sink_ctx once the headers of a 2xx answer are in, before its
 * first body byte reaches the sink (status, Content-Range etc. are set).
 * Called again if the request is retried.  Return 0 or -errno to abort.
 */
typedef int (*http_begin_fn)(void *ctx, const struct http_response *resp);
/* Fills buf with up to len bytes of request body; returns bytes (0 at end) or -errno. */
typedef ssize_t (*http_source_fn)(void *ctx, char *buf, size_t len);

struct http_request {
	const char *method;           /* "GET", "POST", "PUT", "PATCH", "DELETE" */
	const char *url;              /* absolute URL */
	const char *bearer;           /* access token or NULL (see origin rule above) */
	const char *content_type;     /* for the body, or NULL */
	const char *body;             /* request body or NULL */
	size_t body_len;
	http_source_fn source;        /* streamed body instead of body/body_len */
	void *source_ctx;
	int64_t source_len;           /* exact length of the streamed body */
	const char *const *headers;   /* extra "Name: value" strings, NULL-terminated */
	int64_t range_start;          /* Range: bytes=start-end when 0 <= start <= end */
	int64_t range_end;            /* set both to -1 for no Range */
	size_t max_body;              /* cap on the buffered body; 0 = 4 MiB */
	http_sink_fn sink;            /* stream 2xx bodies here instead of buffering */
	void *sink_ctx;
	int no_retry;                 /* return the first answer, whatever it is */
	http_begin_fn begin;          /* optional, see above; used with sink */
	int no_resend;                /* not idempotent (a POST that creates): after a dropped,
	                               * refused (curl retries a dead reused connection itself) or
	                               * timed-out connection, when the request may have been
	                               * carried out, return the error instead of sending it again
	                               * (the caller finds out what happened) */
};

/* Initialise a request to GET url with no range and defaults elsewhere. */
void http_request_init(struct http_request *req, const char *method, const char *url);

struct http_response {
	long status;                  /* HTTP status; 0 if no response */
	char *body;                   /* NUL-terminated buffered body, "" when empty;
	                                 NULL for sink'ed 2xx and when no response */
	size_t body_len;
	char *location;               /* Location header or NULL */
	char *content_range;          /* Content-Range header or NULL */
	char *etag;                   /* ETag header or NULL */
	int64_t content_length;       /* -1 when unknown */
	double retry_after;           /* seconds, -1 when absent */
};

/* Frees the fields; the struct itself belongs to the caller. */
void http_response_release(struct http_response *resp);

/*
 * Create the client.  authorized_origin is "scheme://host[:port]" (derived
 * from graph_url by the caller via http_origin_of()).  Returns NULL on
 * allocation or libcurl failure.  Call once, before starting threads.
 */
struct http_client *http_client_new(const struct odfs_config *cfg, const char *authorized_origin);
void http_client_free(struct http_client *client);

/* "https://graph.microsoft.com/v1.0" -> "https://graph.microsoft.com"; malloc'd. */
char *http_origin_of(const char *url);

/*
 * Perform a request, with the retry policy above.  Returns 0 when a response
 * arrived (any status: check resp->status), or -errno when none did after
 * the retries: -ECONNREFUSED, -EHOSTUNREACH, -ETIMEDOUT, -ECONNRESET, -EIO,
 * -EFBIG (body over max_body), -EPERM (bearer to a foreign origin), or the
 * sink's/source's own error.  resp is always initialised (without freeing
 * what it held: release it before passing it again); release it.  When a
 * streamed answer breaks off midway the error is returned and the sink has
 * seen a prefix of the body: the caller decides what to do with it.
 */
int http_perform(struct http_client *client, const struct http_request *req,
		 struct http_response *resp);

/*
 * Cancellation, per thread: a thread that must be able to give up midway
 * (an upload worker when the file system is unmounted) registers fn; once
 * fn(ctx) returns non-zero, http_perform() on that thread aborts its
 * transfer (checked at least about once a second), cuts retry and throttle
 * waits short and returns -ECANCELED.  fn NULL unregisters.  Other threads
 * are not affected; a thread that registers nothing is never cancelled.
 */
typedef int (*http_cancel_fn)(void *ctx);
void http_set_thread_cancel(http_cancel_fn fn, void *ctx);

/* Sleep for seconds; 0, or -ECANCELED as soon as this thread's hook says so. */
int http_sleep(double seconds);

/*
 * The service throttled a request that went inside another (a JSON batch's
 * answer said 429/503 with this Retry-After): every request, in any thread,
 * waits that long before it is sent, as for a throttled request of its own.
 * 1 when this starts a throttling episode (worth a log line), else 0.
 */
int http_pause(struct http_client *client, double seconds);

/* Unix seconds since the service stopped answering; 0 while it answers. */
int64_t http_offline_since(struct http_client *client);

/*
 * Called on each change of connectivity (online 1 or 0), by the thread
 * that saw it, with no lock of the client held (fn may call
 * http_perform()).  The changes are logged ("offline since ...", "back
 * online after ...") only while a hook is set: a mount sets one, other
 * commands report their own failures.  fn NULL removes it.
 */
typedef void (*http_state_fn)(void *ctx, int online);
void http_set_state_hook(struct http_client *client, http_state_fn fn, void *ctx);

/* Form-encode one value for x-www-form-urlencoded bodies; malloc'd. */
char *http_form_escape(const char *value);

#endif
