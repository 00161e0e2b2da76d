/*
 * auth_login.c - device-code sign-in (RFC 8628) and signing out.
 *
 * The device-code flow prints the service's instructions and polls the
 * token endpoint at the interval it asks for; only a complete answer with a
 * refresh token is stored (auth_save_signin), so a declined, expired or
 * refused sign-in leaves nothing behind.
 */
#define _GNU_SOURCE   /* asprintf */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "auth_internal.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "util.h"

#define DEVICE_CODE_MAX_SECONDS 86400  /* cap on a device code's lifetime and poll interval */

/* Print service text, replacing control characters (no terminal escapes from the network). */
static void print_clean(FILE *out, const char *s)
{
	for (; *s; s++)
		fputc(((unsigned char)*s < 0x20 && *s != '\n') || *s == 0x7f ? '?' : *s, out);
}

static void sleep_seconds(long seconds)
{
	struct timespec ts = { .tv_sec = seconds, .tv_nsec = 0 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int64_t monotonic_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

struct device_code {
	char *device_code;
	long expires_in;
	long interval;
};

/* Ask for a code and tell the user what to do with it. */
static int request_device_code(struct auth *a, FILE *out, struct device_code *dc, char **err)
{
	struct http_response resp;
	struct oauth_error oe;
	const char *code, *user_code, *uri, *message;
	json_t *root = NULL;
	long minutes;
	char *body;
	int rc;

	memset(dc, 0, sizeof(*dc));
	body = auth_form_body("client_id", a->cfg->client_id, "scope", a->cfg->scopes, NULL);
	if (!body)
		return -ENOMEM;
	rc = auth_post_form(a, "devicecode", body, &resp);
	free(body);
	if (rc < 0) {
		util_set_err(err, auth_network_message(a, rc));
		goto out_release;
	}
	if (resp.status != 200) {
		auth_parse_oauth_error(&resp, &oe);
		util_set_err(err, auth_describe_error(a, resp.status, &oe));
		rc = -EACCES;
		goto out_release;
	}
	root = json_loadb(resp.body ? resp.body : "", resp.body_len, 0, NULL);
	code = root ? auth_json_str(root, "device_code") : NULL;
	user_code = root ? auth_json_str(root, "user_code") : NULL;
	uri = root ? auth_json_str(root, "verification_uri") : NULL;
	message = root ? auth_json_str(root, "message") : NULL;
	if (!code || !user_code || !uri) {
		util_set_err(err, strdup("the sign-in service sent a device code response that could "
				    "not be read"));
		rc = -EIO;
		goto out_free_json;
	}
	dc->device_code = strdup(code);
	if (!dc->device_code) {
		rc = -ENOMEM;
		goto out_free_json;
	}
	dc->expires_in = auth_json_seconds(json_object_get(root, "expires_in"), 900,
				      DEVICE_CODE_MAX_SECONDS);
	dc->interval = auth_json_seconds(json_object_get(root, "interval"), 5, DEVICE_CODE_MAX_SECONDS);
	if (dc->expires_in <= 0)
		dc->expires_in = 900;
	if (dc->interval <= 0)
		dc->interval = 5;   /* RFC 8628's default */
	if (message) {
		print_clean(out, message);
	} else {
		fputs("To sign in, open ", out);
		print_clean(out, uri);
		fputs(" and enter the code ", out);
		print_clean(out, user_code);
	}
	minutes = (dc->expires_in + 59) / 60;
	fprintf(out, "\nwaiting for you to finish signing in (the code expires in %ld minute%s)...\n",
		minutes, minutes == 1 ? "" : "s");
	fflush(out);
out_free_json:
	json_decref(root);
out_release:
	auth_release_response(&resp);
	return rc;
}

int auth_login_device_code(struct auth *a, FILE *out, char **err)
{
	struct device_code dc;
	struct http_response resp;
	struct oauth_error oe;
	struct auth_tokens t;
	int64_t deadline;
	long status;
	char *body;
	int rc;

	if (err)
		*err = NULL;
	if (!a->cfg->client_id) {
		util_set_err(err, strdup("no client_id set: register an app and set client_id "
				    "(see README)"));
		return -EINVAL;
	}
	rc = request_device_code(a, out, &dc, err);
	if (rc < 0)
		return rc;
	deadline = monotonic_now() + dc.expires_in;
	body = auth_form_body("grant_type", "urn:ietf:params:oauth:grant-type:device_code",
			 "client_id", a->cfg->client_id, "device_code", dc.device_code, NULL);
	if (!body) {
		rc = -ENOMEM;
		goto out_free_code;
	}
	for (;;) {
		/* never poll faster than asked (AADSTS50196 "loop detected") */
		sleep_seconds(dc.interval);
		if (monotonic_now() > deadline) {
			util_set_err(err, strdup("the code expired before sign-in finished; run "
					    "'onedrivefs login' again"));
			rc = -ETIMEDOUT;
			break;
		}
		rc = auth_request_token(a, body, MSG_UNREADABLE_TOKEN, &resp, &t, &oe, err);
		status = resp.status;
		auth_release_response(&resp);
		if (rc < 0)
			break;
		if (rc == 0) {
			rc = auth_save_signin(a, &t, err);
			break;
		}
		if (strcmp(oe.code, "authorization_pending") == 0)
			continue;
		if (strcmp(oe.code, "slow_down") == 0) {
			dc.interval += 5;   /* RFC 8628 3.5 */
			continue;
		}
		util_set_err(err, auth_describe_error(a, status, &oe));
		rc = -EACCES;
		break;
	}
	auth_free_secret(body);
out_free_code:
	auth_free_secret(dc.device_code);
	return rc;
}

int auth_logout(const struct odfs_config *cfg, int *existed, char **err)
{
	if (err)
		*err = NULL;
	return auth_delete_tokens(cfg, existed, err);
}
