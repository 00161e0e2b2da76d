/*
 * test_http.c - the connectivity state of the HTTP client: offline after
 * a request that got no answer, one attempt while offline, online again
 * at any answer, the state hook once per change.  Servers are sockets on
 * 127.0.0.1 driven by a thread: refusing, answering, or silent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "unit.h"

static struct http_client *client;
static int hook_calls, hook_last = -1;
static int64_t hook_seen_since = -1;

static void hook(void *ctx, int online)
{
	(void)ctx;
	hook_calls++;
	hook_last = online;
	/* no lock of the client is held: asking it again must not deadlock */
	hook_seen_since = http_offline_since(client);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A listening socket on 127.0.0.1 and its port. */
static int listen_any(int *port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		perror("socket");
		exit(1);
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

struct server {
	int fd;
	int answer;          /* 1: answer 500; 0: accept and stay silent */
	int conns;           /* connections to serve */
};

static void *serve(void *arg)
{
	static const char reply[] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
				    "Connection: close\r\n\r\n";
	struct server *s = arg;
	char buf[4096];
	int c, held[8], n = 0;

	for (int i = 0; i < s->conns; i++) {
		c = accept(s->fd, NULL, NULL);
		if (c < 0)
			break;
		if (!s->answer) {
			if (n < 8)
				held[n++] = c;   /* silent until the test ends */
			continue;
		}
		if (read(c, buf, sizeof(buf)) > 0 && write(c, reply, sizeof(reply) - 1) < 0)
			perror("write");
		close(c);
	}
	for (int i = 0; i < n; i++)
		close(held[i]);
	return NULL;
}

static int get(int port, int no_retry)
{
	struct http_request req;
	struct http_response resp;
	char url[64];
	int rc;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1.0/me/drive", port);
	http_request_init(&req, "GET", url);
	req.no_retry = no_retry;
	rc = http_perform(client, &req, &resp);
	if (rc == 0)
		rc = (int)resp.status;
	http_response_release(&resp);
	return rc;
}

static void test_refused_then_answer(void)
{
	struct server s = { .answer = 1, .conns = 1 };
	int port, rc;
	pthread_t t;
	double t0;

	/* a port nobody listens on any more: refused */
	close(listen_any(&port));
	CHECK_INT(http_offline_since(client), 0);
	rc = get(port, 0);
	CHECK_INT(rc, -ECONNREFUSED);
	CHECK(http_offline_since(client) > 0);
	CHECK_INT(hook_calls, 1);
	CHECK_INT(hook_last, 0);
	CHECK(hook_seen_since > 0);

	/* offline: one attempt, none of the quick retries (0.2 s + 0.4 s) */
	t0 = now();
	rc = get(port, 0);
	CHECK_INT(rc, -ECONNREFUSED);
	CHECK(now() - t0 < 0.15);
	CHECK_INT(hook_calls, 1);

	/* any answer, even a 500, is online again */
	s.fd = listen_any(&port);
	pthread_create(&t, NULL, serve, &s);
	rc = get(port, 1);
	pthread_join(t, NULL);
	close(s.fd);
	CHECK_INT(rc, 500);
	CHECK_INT(http_offline_since(client), 0);
	CHECK_INT(hook_calls, 2);
	CHECK_INT(hook_last, 1);
	CHECK_INT(hook_seen_since, 0);
}

static void test_silent_server(void)
{
	struct server s = { .answer = 0, .conns = 8 };
	int port, rc, calls = hook_calls;
	pthread_t t;
	double t0;

	s.fd = listen_any(&port);
	pthread_create(&t, NULL, serve, &s);
	/* accepted, never answered: io_timeout (1 s), then one retry while still online */
	rc = get(port, 0);
	CHECK_INT(rc, -ETIMEDOUT);
	CHECK(http_offline_since(client) > 0);
	CHECK_INT(hook_calls, calls + 1);
	CHECK_INT(hook_last, 0);
	/* offline: one attempt, no back-off after it */
	t0 = now();
	rc = get(port, 0);
	CHECK_INT(rc, -ETIMEDOUT);
	CHECK(now() - t0 < 1.9);
	CHECK_INT(hook_calls, calls + 1);
	shutdown(s.fd, SHUT_RDWR);
	pthread_join(t, NULL);
	close(s.fd);
}

int main(void)
{
	struct odfs_config cfg;

	if (config_init(&cfg) < 0)
		return 1;
	cfg.connect_timeout = 2;
	cfg.io_timeout = 1;
	cfg.max_retries = 1;
	client = http_client_new(&cfg, "http://127.0.0.1");
	if (!client)
		return 1;
	http_set_state_hook(client, hook, NULL);
	RUN(test_refused_then_answer);
	RUN(test_silent_server);
	http_client_free(client);
	config_release(&cfg);
	return unit_report("http");
}
