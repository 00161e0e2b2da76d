/*
 * http_internal.h - what http.c, http_state.c and http_url.c share: the
 * client and one transfer in flight.  Nothing outside these files
 * includes it.
 */
#ifndef ODFS_HTTP_INTERNAL_H
#define ODFS_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include <curl/curl.h>

#include "http.h"

struct pooled {
	CURL *curl;
	struct pooled *next;
};

struct http_client {
	const struct odfs_config *cfg;     /* borrowed, read-only */
	char *origin;                      /* the only origin a bearer may go to */
	char *user_agent;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];  /* one per curl_lock_data */

	pthread_mutex_t lock;              /* protects the fields below */
	struct pooled *pool;               /* idle easy handles */
	size_t pool_len;
	struct timespec throttled_until;   /* CLOCK_MONOTONIC; no request before it */
	int throttle_noticed;              /* the info-level notice was printed */
	int foreign_bearer_logged;         /* the -EPERM error was logged */
	int64_t offline_since;             /* unix seconds; 0 while the service answers */
	http_state_fn state_fn;            /* set before threads start */
	void *state_ctx;
};

/* One transfer in flight: what the curl callbacks need. */
struct transfer {
	const struct http_request *req;
	struct http_response *resp;
	CURL *curl;
	size_t cap;                        /* max buffered body */
	char *buf;
	size_t len, alloc;
	int started;                       /* first body byte seen */
	int to_sink;                       /* this answer streams to req->sink */
	int64_t sink_bytes;                /* handed to the sink */
	int64_t source_bytes;              /* read from req->source */
	int error;                         /* our -errno that aborted the transfer */
	CURLcode code;                     /* how the transfer ended */
	long status;                       /* status line seen, 0 if none */
	curl_off_t moved;                  /* bytes sent + received, last seen */
	int64_t moved_at_ms;               /* monotonic ms they last changed */
	int64_t stall_ms;                  /* io_timeout: no byte either way for this long */
	int stalled;                       /* aborted by the stall watch */
};
static inline double http_now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline double http_ts_to_double(const struct timespec *ts)
{
	return (double)ts->tv_sec + (double)ts->tv_nsec / 1e9;
}

/* ---- http_state.c: throttling and connectivity, client-wide ---- */

/* Block until the client-wide throttle deadline has passed; 0 or -ECANCELED. */
int http_throttle_wait(struct http_client *client);
/* Push the deadline to now + seconds (never earlier); 1 for the episode's first. */
int http_throttle_set(struct http_client *client, double seconds);
/* A normal answer ends a throttling episode: the next one is noticed again. */
void http_throttle_clear_notice(struct http_client *client);
/* 1 when the attempt got no answer because the service could not be reached. */
int http_unreachable(const struct transfer *t);
/* A request gave up without an answer: offline from now (logged once). */
void http_note_offline(struct http_client *client, const char *url, int rc);
/* An answer came: online again if the client was offline. */
void http_note_online(struct http_client *client);

/* ---- http_url.c ---- */

/* url is origin itself or origin + "/...": the only place a bearer may go. */
int http_under_origin(const char *url, const char *origin);
/* What a log line may show of url (Graph URLs in full, others as origin). */
void http_url_for_log(const struct http_client *client, const char *url, char *buf,
		      size_t size);
/* The host part, for user-facing messages. */
void http_host_for_log(const char *url, char *buf, size_t size);

#endif
