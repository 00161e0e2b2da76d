/*
 * http_state.c - what the client knows of the service as a whole.
 *
 * Throttling: a 429/503 sets throttled_until and every request, in any
 * thread, waits for it before it is sent (Graph's scan guidance: pause all
 * threads).  Connectivity: offline_since is set by the request that gave up
 * without an answer and cleared by the next answer of any kind; the state
 * hook and the log line run after the lock is dropped.
 */
#include <errno.h>
#include <stdio.h>

#include "http_internal.h"
#include "log.h"


/* Block until the client-wide throttle deadline has passed; 0 or -ECANCELED. */
int http_throttle_wait(struct http_client *client)
{
	double wait;
	int rc;

	for (;;) {
		pthread_mutex_lock(&client->lock);
		wait = http_ts_to_double(&client->throttled_until) - http_now_mono();
		pthread_mutex_unlock(&client->lock);
		if (wait <= 0)
			return 0;
		if ((rc = http_sleep(wait)) < 0)
			return rc;
	}
}

/* Push the deadline to now + seconds (never pulls it earlier). */
int http_throttle_set(struct http_client *client, double seconds)
{
	double until = http_now_mono() + seconds;
	int first;

	pthread_mutex_lock(&client->lock);
	if (until > http_ts_to_double(&client->throttled_until)) {
		client->throttled_until.tv_sec = (time_t)until;
		client->throttled_until.tv_nsec =
			(long)((until - (double)client->throttled_until.tv_sec) * 1e9);
	}
	first = !client->throttle_noticed;
	client->throttle_noticed = 1;
	pthread_mutex_unlock(&client->lock);
	return first;
}

int http_pause(struct http_client *client, double seconds)
{
	return http_throttle_set(client, seconds);
}

/* A normal answer ends a throttling episode: the next one is noticed again. */
void http_throttle_clear_notice(struct http_client *client)
{
	pthread_mutex_lock(&client->lock);
	if (client->throttle_noticed && http_now_mono() > http_ts_to_double(&client->throttled_until))
		client->throttle_noticed = 0;
	pthread_mutex_unlock(&client->lock);
}

/* ---- connectivity ---- */

int64_t http_offline_since(struct http_client *client)
{
	int64_t since;

	pthread_mutex_lock(&client->lock);
	since = client->offline_since;
	pthread_mutex_unlock(&client->lock);
	return since;
}

void http_set_state_hook(struct http_client *client, http_state_fn fn, void *ctx)
{
	pthread_mutex_lock(&client->lock);
	client->state_fn = fn;
	client->state_ctx = fn ? ctx : NULL;
	pthread_mutex_unlock(&client->lock);
}

/*
 * 1 when the attempt got no answer because the service could not be
 * reached.  A transfer that stalled for io_timeout counts even after its
 * status line: the link died midway.  Our own aborts never count.
 */
int http_unreachable(const struct transfer *t)
{
	if (t->error)
		return 0;
	switch (t->code) {
	case CURLE_OPERATION_TIMEDOUT:
		return 1;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_SSL_CONNECT_ERROR:
		return t->status == 0;
	default:
		return 0;
	}
}

/* "2026-11-29 05:01:02 UTC" */
static void format_utc(int64_t when, char *buf, size_t size)
{
	time_t t = (time_t)when;
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, size, "%lld", (long long)when);
}

/* "45 s", "1 min 12 s", "3 h 5 min" */
static void format_span(int64_t secs, char *buf, size_t size)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(buf, size, "%lld s", (long long)secs);
	else if (secs < 3600)
		snprintf(buf, size, "%lld min %lld s", (long long)(secs / 60), (long long)(secs % 60));
	else
		snprintf(buf, size, "%lld h %lld min", (long long)(secs / 3600),
			 (long long)(secs % 3600 / 60));
}

/*
 * A request gave up without an answer: the client is offline from now,
 * unless it already was.  Logged while a hook is set (a mount: other
 * commands report their own failure).
 */
void http_note_offline(struct http_client *client, const char *url, int rc)
{
	int64_t now = (int64_t)time(NULL);
	char host[256], when[64], ebuf[128];
	http_state_fn fn;
	void *ctx;
	int changed;

	pthread_mutex_lock(&client->lock);
	changed = client->offline_since == 0;
	if (changed)
		client->offline_since = now;
	fn = client->state_fn;
	ctx = client->state_ctx;
	pthread_mutex_unlock(&client->lock);
	if (!changed || !fn)
		return;
	http_host_for_log(url, host, sizeof(host));
	format_utc(now, when, sizeof(when));
	log_warnx("offline since %s: cannot reach '%s' (%s); cached files stay readable and "
		  "changes are kept until it returns", when, host, log_errstr(rc, ebuf, sizeof(ebuf)));
	fn(ctx, 0);
}

/* An answer came: online again if the client was offline. */
void http_note_online(struct http_client *client)
{
	char span[64];
	http_state_fn fn;
	int64_t since;
	void *ctx;

	pthread_mutex_lock(&client->lock);
	since = client->offline_since;
	client->offline_since = 0;
	fn = client->state_fn;
	ctx = client->state_ctx;
	pthread_mutex_unlock(&client->lock);
	if (!since || !fn)
		return;
	format_span((int64_t)time(NULL) - since, span, sizeof(span));
	log_info("back online after %s: sending queued changes", span);
	fn(ctx, 1);
}
