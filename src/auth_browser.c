/*
 * auth_browser.c - browser sign-in: authorization code with PKCE and a
 * loopback redirect listener (RFC 6749 4.1, RFC 7636, RFC 8252 7.3).
 *
 * The redirect URI is http://localhost:PORT, which Microsoft accepts for
 * any port when the app registers http://localhost.  We listen on
 * 127.0.0.1 and ::1 (browsers may resolve localhost to either), answer
 * exactly one redirect that carries our `state`, and ignore other requests
 * (favicon).  The PKCE verifier never leaves this process except in the
 * code redemption; the code, verifier and tokens never reach a log.
 */
#define _GNU_SOURCE   /* asprintf, explicit_bzero */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "auth_internal.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "util.h"

extern char **environ;

#define WAIT_SECONDS 600         /* for the user to finish in the browser */
#define REQUEST_MAX 8192         /* the redirect request head */
#define REQUEST_TIMEOUT 10       /* seconds a connection may take to send it */
#define PARAM_MAX 4096           /* one query value (codes are ~1 KB) */

/* ---- PKCE ---------------------------------------------------------------- */

/* base64url without padding (RFC 7636 appendix A) into out (4n/3 + 1 bytes). */
static void base64url(const unsigned char *in, size_t n, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint32_t v;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		*out++ = tab[v >> 18 & 63];
		*out++ = tab[v >> 12 & 63];
		*out++ = tab[v >> 6 & 63];
		*out++ = tab[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		*out++ = tab[v >> 18 & 63];
		*out++ = tab[v >> 12 & 63];
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		*out++ = tab[v >> 18 & 63];
		*out++ = tab[v >> 12 & 63];
		*out++ = tab[v >> 6 & 63];
	}
	*out = '\0';
}

struct pkce {
	char verifier[48];    /* 32 random bytes: 43 characters */
	char challenge[48];   /* base64url(SHA-256(verifier)) */
	char state[32];       /* 16 random bytes: 22 characters */
};

static int pkce_init(struct pkce *p)
{
	unsigned char rnd[32], digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;

	memset(p, 0, sizeof(*p));
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -EIO;
	base64url(rnd, sizeof(rnd), p->verifier);
	if (EVP_Digest(p->verifier, strlen(p->verifier), digest, &dlen, EVP_sha256(), NULL) != 1 ||
	    dlen != 32)
		return -EIO;
	base64url(digest, dlen, p->challenge);
	if (RAND_bytes(rnd, 16) != 1)
		return -EIO;
	base64url(rnd, 16, p->state);
	explicit_bzero(rnd, sizeof(rnd));
	return 0;
}

/* ---- the loopback listener ------------------------------------------------ */

struct listener {
	int fd[2];
	int nfd;
	int port;
};

static void listener_close(struct listener *l)
{
	for (int i = 0; i < l->nfd; i++)
		close(l->fd[i]);
	l->nfd = 0;
}

static int listen_on(int family, int port, int *fd_out, int *port_out)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int fd, one = 1, rc;

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		in4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*in4);
	} else {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		in6->sin6_addr = in6addr_loopback;
		len = sizeof(*in6);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 8) < 0)
		goto out_errno;
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		goto out_errno;
	*port_out = ntohs(family == AF_INET ? in4->sin_port : in6->sin6_port);
	*fd_out = fd;
	return 0;
out_errno:
	rc = -errno;
	close(fd);
	return rc;
}

static int listener_open(struct listener *l, long want_port, char **err)
{
	char ebuf[128];
	int fd, port, rc;

	memset(l, 0, sizeof(*l));
	rc = listen_on(AF_INET, (int)want_port, &fd, &port);
	if (rc < 0) {
		if (want_port)
			util_set_err(err, util_format("cannot listen on localhost port %ld for the sign-in "
					    "answer: %s (set redirect_port to a free port, or 0)",
					    want_port, log_errstr(rc, ebuf, sizeof(ebuf))));
		else
			util_set_err(err, util_format("cannot listen on localhost for the sign-in answer: %s",
					    log_errstr(rc, ebuf, sizeof(ebuf))));
		return rc;
	}
	l->fd[l->nfd++] = fd;
	l->port = port;
	/* the same port on ::1 too, when the machine has IPv6 */
	if (listen_on(AF_INET6, port, &fd, &port) == 0)
		l->fd[l->nfd++] = fd;
	return 0;
}

/* ---- one HTTP request ------------------------------------------------------ */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode [s, s+n) ('+' is a space) into a malloc'd string, or NULL. */
static char *url_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;
	int hi, lo;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			*o++ = ' ';
		} else if (s[i] == '%' && i + 2 < n &&
			   (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
			   (lo = hexval((unsigned char)s[i + 2])) >= 0) {
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

struct redirect {
	char *code, *state, *error, *error_description;
};

static void redirect_release(struct redirect *r)
{
	auth_free_secret(r->code);
	free(r->state);
	free(r->error);
	free(r->error_description);
	memset(r, 0, sizeof(*r));
}

/* Pick our parameters out of "a=1&b=2"; later duplicates are ignored. */
static int parse_query(const char *q, size_t qlen, struct redirect *r)
{
	const char *end = q + qlen, *amp, *eq;
	char **slot;
	size_t klen;

	while (q < end) {
		amp = memchr(q, '&', (size_t)(end - q));
		if (!amp)
			amp = end;
		eq = memchr(q, '=', (size_t)(amp - q));
		klen = (size_t)((eq ? eq : amp) - q);
		slot = NULL;
		if (klen == 4 && memcmp(q, "code", 4) == 0)
			slot = &r->code;
		else if (klen == 5 && memcmp(q, "state", 5) == 0)
			slot = &r->state;
		else if (klen == 5 && memcmp(q, "error", 5) == 0)
			slot = &r->error;
		else if (klen == 17 && memcmp(q, "error_description", 17) == 0)
			slot = &r->error_description;
		if (slot && !*slot && eq && (size_t)(amp - eq - 1) <= PARAM_MAX) {
			*slot = url_decode(eq + 1, (size_t)(amp - eq - 1));
			if (!*slot)
				return -ENOMEM;
		}
		q = amp < end ? amp + 1 : end;
	}
	return 0;
}

/* Read a request head from fd: "GET /?a=b HTTP/1.1\r\n...\r\n\r\n".  Returns its length. */
static ssize_t read_head(int fd, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;

	while (len < size - 1) {
		n = recv(fd, buf + len, size - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
			break;
	}
	buf[len] = '\0';
	return len > 0 ? (ssize_t)len : -1;
}

static void send_all(int fd, const char *data, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, data, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;   /* the browser went away: nothing to tell it */
		data += n;
		len -= (size_t)n;
	}
}

/* Text for HTML: & < > " escaped, control characters dropped. */
static char *html_escape(const char *s)
{
	size_t n = 0;
	char *out, *o;

	for (const char *p = s; *p; p++)
		n += *p == '&' ? 5 : (*p == '<' || *p == '>') ? 4 : *p == '"' ? 6 : 1;
	out = malloc(n + 1);
	if (!out)
		return NULL;
	for (o = out; *s; s++) {
		if (*s == '&')
			o = stpcpy(o, "&amp;");
		else if (*s == '<')
			o = stpcpy(o, "&lt;");
		else if (*s == '>')
			o = stpcpy(o, "&gt;");
		else if (*s == '"')
			o = stpcpy(o, "&quot;");
		else if ((unsigned char)*s >= 0x20 && *s != 0x7f)
			*o++ = *s;
	}
	*o = '\0';
	return out;
}

/* A plain page: id="success" or id="error" on the heading, for people and tests. */
static void send_page(int fd, int status, int ok, const char *text)
{
	char *esc = html_escape(text ? text : ""), *page, *resp;

	page = util_format("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
		      "<title>onedrivefs sign-in</title></head>\n<body>\n<h1 id=\"%s\">%s</h1>\n"
		      "<p id=\"message\">%s</p>\n</body></html>\n", ok ? "success" : "error",
		      ok ? "Signed in to onedrivefs" : "onedrivefs sign-in failed",
		      esc ? esc : "");
	resp = page ? util_format("HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
			     "Content-Length: %zu\r\nCache-Control: no-store\r\n"
			     "Connection: close\r\n\r\n%s", status,
			     status == 200 ? "OK" : status == 404 ? "Not Found" : "Bad Request",
			     strlen(page), page) : NULL;
	if (resp)
		send_all(fd, resp, strlen(resp));
	free(resp);
	free(page);
	free(esc);
}

/*
 * Wait for the redirect: a GET / with our parameters.  Other requests get a
 * 404 and we keep waiting.  Returns the connection (the caller answers it)
 * with r filled, -ETIMEDOUT, or -errno.
 */
static int wait_redirect(struct listener *l, struct redirect *r, char **err)
{
	struct timeval tv = { .tv_sec = REQUEST_TIMEOUT, .tv_usec = 0 };
	struct pollfd pfd[2];
	struct timespec now;
	char head[REQUEST_MAX], *target, *sp, *q;
	int64_t deadline;
	ssize_t n;
	int i, fd, rc;

	clock_gettime(CLOCK_MONOTONIC, &now);
	deadline = now.tv_sec + WAIT_SECONDS;
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec >= deadline) {
			util_set_err(err, strdup("no answer from the browser within 10 minutes; run "
					    "'onedrivefs login' again (nothing was stored)"));
			return -ETIMEDOUT;
		}
		for (i = 0; i < l->nfd; i++) {
			pfd[i].fd = l->fd[i];
			pfd[i].events = POLLIN;
			pfd[i].revents = 0;
		}
		rc = poll(pfd, (nfds_t)l->nfd, (int)(deadline - now.tv_sec) * 1000);
		if (rc < 0 && errno != EINTR)
			return -errno;
		for (i = 0; rc > 0 && i < l->nfd; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			fd = accept4(l->fd[i], NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
			n = read_head(fd, head, sizeof(head));
			target = n > 0 && strncmp(head, "GET ", 4) == 0 ? head + 4 : NULL;
			sp = target ? strchr(target, ' ') : NULL;
			if (!sp || target[0] != '/' || (target[1] != '?' && target[1] != ' ')) {
				send_page(fd, 404, 0, "Not found.");
				close(fd);
				continue;
			}
			*sp = '\0';
			q = strchr(target, '?');
			memset(r, 0, sizeof(*r));
			rc = q ? parse_query(q + 1, strlen(q + 1), r) : 0;
			explicit_bzero(head, sizeof(head));
			if (rc < 0) {
				redirect_release(r);
				close(fd);
				return rc;
			}
			if (!r->code && !r->error) {
				send_page(fd, 400, 0, "This address only takes the answer of a "
					  "sign-in started by 'onedrivefs login'.");
				redirect_release(r);
				close(fd);
				continue;
			}
			return fd;
		}
	}
}

/* ---- the flow --------------------------------------------------------------- */

/* "AADSTS65004" -> "65004" into buf, or "". */
static void aadsts_of(const char *desc, char *buf, size_t size)
{
	const char *p = desc ? strstr(desc, "AADSTS") : NULL;
	size_t n = p ? strspn(p + 6, "0123456789") : 0;

	buf[0] = '\0';
	if (n > 0 && n < size) {
		memcpy(buf, p + 6, n);
		buf[n] = '\0';
	}
}

/* An error the browser brought back instead of a code. */
static char *describe_redirect_error(const struct redirect *r)
{
	char ax[16];
	char code[64];
	size_t i;

	snprintf(code, sizeof(code), "%s", r->error);
	for (i = 0; code[i]; i++)   /* it is shown on a terminal */
		if (!((code[i] >= 'a' && code[i] <= 'z') || code[i] == '_'))
			code[i] = '?';
	aadsts_of(r->error_description, ax, sizeof(ax));
	if (strcmp(code, "access_denied") == 0)
		return util_format("sign-in was cancelled in the browser (access_denied%s%s); nothing "
			      "was stored", ax[0] ? ", AADSTS" : "", ax);
	return util_format("sign-in failed in the browser: the service said '%s'%s%s; nothing was "
		      "stored", code, ax[0] ? ", AADSTS" : "", ax);
}

/* Token-endpoint errors that only the code redemption can cause. */
static char *describe_redeem_error(struct auth *a, long status, const struct oauth_error *oe)
{
	if (strcmp(oe->aadsts, "501481") == 0)
		return strdup("the service refused the PKCE code verifier (invalid_grant, "
			      "AADSTS501481): the answer in the browser belongs to another sign-in; "
			      "run 'onedrivefs login' again (nothing was stored)");
	if (strcmp(oe->aadsts, "54005") == 0)
		return strdup("the authorization code was already used (invalid_grant, "
			      "AADSTS54005): run 'onedrivefs login' again (nothing was stored)");
	if (strcmp(oe->aadsts, "70008") == 0)
		return strdup("the authorization code expired before it was redeemed "
			      "(invalid_grant, AADSTS70008): run 'onedrivefs login' again");
	if (strcmp(oe->code, "invalid_grant") == 0)
		return util_format("the service refused the authorization code (invalid_grant%s%s): it "
			      "was issued for another app or redirect URI; run 'onedrivefs login' "
			      "again (nothing was stored)", oe->aadsts[0] ? ", AADSTS" : "",
			      oe->aadsts);
	return auth_describe_error(a, status, oe);
}

static int redeem_code(struct auth *a, const char *code, const char *redirect_uri,
		       const struct pkce *p, char **err)
{
	struct http_response resp;
	struct oauth_error oe;
	struct auth_tokens t;
	char *body, *secret = NULL;
	int rc;

	rc = auth_client_secret(a, &secret, err);
	if (rc < 0)
		return rc;
	body = auth_form_body("client_id", a->cfg->client_id, "grant_type", "authorization_code",
			      "code", code, "redirect_uri", redirect_uri,
			      "code_verifier", p->verifier, "scope", a->cfg->scopes,
			      "client_secret", secret, NULL);
	auth_free_secret(secret);
	if (!body)
		return -ENOMEM;
	rc = auth_request_token(a, body, MSG_UNREADABLE_TOKEN "; nothing was stored", &resp, &t,
				&oe, err);
	auth_free_secret(body);
	if (rc < 0)
		goto out_release;
	if (rc == 0) {
		rc = auth_save_signin(a, &t, err);
		goto out_release;
	}
	util_set_err(err, describe_redeem_error(a, resp.status, &oe));
	rc = -EACCES;
out_release:
	auth_release_response(&resp);
	return rc;
}

static char *authorize_url(struct auth *a, const char *redirect_uri, const struct pkce *p)
{
	const struct odfs_config *cfg = a->cfg;
	char *cid, *ruri, *scope, *url = NULL;

	cid = http_form_escape(cfg->client_id);
	ruri = http_form_escape(redirect_uri);
	scope = http_form_escape(cfg->scopes);
	if (cid && ruri && scope)
		url = util_format("%s/%s/oauth2/v2.0/authorize?client_id=%s&response_type=code"
			     "&redirect_uri=%s&response_mode=query&scope=%s&state=%s"
			     "&code_challenge=%s&code_challenge_method=S256", cfg->auth_url,
			     cfg->tenant, cid, ruri, scope, p->state, p->challenge);
	free(cid);
	free(ruri);
	free(scope);
	return url;
}

/* xdg-open url, quietly; returns the child's pid or -1. */
static pid_t open_in_browser(const char *url)
{
	char *argv[] = { "xdg-open", (char *)url, NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int rc;

	if (posix_spawn_file_actions_init(&fa) != 0)
		return -1;
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	rc = posix_spawnp(&pid, "xdg-open", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	return rc == 0 ? pid : -1;
}

int auth_login_browser(struct auth *a, FILE *out, int open_browser, char **err)
{
	struct listener l;
	struct redirect r;
	struct pkce p;
	char redirect_uri[64], *url;
	pid_t opener = -1;
	int fd, rc;

	if (err)
		*err = NULL;
	if (!a->cfg->client_id) {
		util_set_err(err, strdup("no client_id set: register an app and set client_id "
				    "(see README)"));
		return -EINVAL;
	}
	if (pkce_init(&p) < 0) {
		util_set_err(err, strdup("cannot make the PKCE secret: the random number generator "
				    "failed"));
		return -EIO;
	}
	rc = listener_open(&l, a->cfg->redirect_port, err);
	if (rc < 0)
		goto out_wipe;
	snprintf(redirect_uri, sizeof(redirect_uri), "http://localhost:%d", l.port);
	url = authorize_url(a, redirect_uri, &p);
	if (!url) {
		rc = -ENOMEM;
		goto out_close;
	}
	fprintf(out, "To sign in, open this address in a browser:\n\n  %s\n\n", url);
	if (open_browser) {
		opener = open_in_browser(url);
		fprintf(out, opener > 0 ? "(opening it in your browser)\n"
			: "(could not run xdg-open: open the address yourself)\n");
	}
	fprintf(out, "waiting for the answer on %s (if the browser shows AADSTS50011, add "
		"http://localhost as a 'Mobile and desktop applications' redirect URI to the "
		"app registration)...\n", redirect_uri);
	fflush(out);
	free(url);

	fd = wait_redirect(&l, &r, err);
	if (fd < 0) {
		rc = fd;
		goto out_reap;
	}
	if (!r.state || strcmp(r.state, p.state) != 0) {
		/* not the answer to our request: maybe forged, never redeemed */
		util_set_err(err, strdup("the browser's answer does not belong to this sign-in (state "
				    "mismatch): run 'onedrivefs login' again (nothing was stored)"));
		rc = -EACCES;
	} else if (r.error) {
		util_set_err(err, describe_redirect_error(&r));
		rc = -EACCES;
	} else {
		rc = redeem_code(a, r.code, redirect_uri, &p, err);
	}
	if (rc == 0)
		send_page(fd, 200, 1, "You can close this tab and return to the terminal.");
	else
		send_page(fd, 400, 0, err && *err ? *err : "Sign-in failed.");
	close(fd);
	redirect_release(&r);
out_reap:
	if (opener > 0)
		waitpid(opener, NULL, WNOHANG);
out_close:
	listener_close(&l);
out_wipe:
	explicit_bzero(&p, sizeof(p));
	return rc;
}
