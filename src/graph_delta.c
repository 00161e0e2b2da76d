/*
 * graph_delta.c - one round of root delta: GET {drive}/root/delta.
 *
 * A round starts either without a token (a full enumeration of the drive)
 * or at a stored deltaLink, follows @odata.nextLink verbatim until a page
 * carries @odata.deltaLink, and hands that link back for the next round
 * (graph-notes §10).  The caller applies the items only once the round is
 * complete.  410 Gone (resyncRequired and its relatives) is -ESTALE: the
 * caller drops its link and starts again without one.  The 410's Location
 * header would hold the same thing (a fresh enumeration URL); starting
 * from our own URL keeps the request in one known shape.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "config.h"
#include "graph.h"
#include "graph_internal.h"
#include "log.h"

#define DELTA_MAX_PAGES 100000     /* a nextLink loop must end */
#define DELTA_TOP_MAX 1000         /* the service's largest $top */

/* 1 when link is on the Graph origin, the only host that may see the token. */
static int on_graph_origin(const struct graph *g, const char *link)
{
	size_t n = strlen(g->origin);

	return strncasecmp(link, g->origin, n) == 0 && link[n] == '/';
}

static const char *page_string(json_t *page, const char *key)
{
	json_t *v = json_object_get(page, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Hand each item of one page to fn; items we cannot read are skipped. */
static int page_items(json_t *page, graph_item_fn fn, void *ctx, const char *what, char **err)
{
	struct drive_item item;
	json_t *value, *elem;
	size_t i;
	int rc;

	value = json_object_get(page, "value");
	if (!json_is_array(value)) {
		graph_set_err(err, graph_xprintf("%s: the service sent a page without items", what));
		return -EIO;
	}
	json_array_foreach(value, i, elem) {
		rc = graph_parse_item_json(elem, &item);
		if (rc == -ENOMEM)
			return graph_fail_errno(err, what, rc);
		if (rc < 0) {
			/* One odd item (a name we cannot show) must not stop every round. */
			log_warnx("%s: skipping an item the service sent in an unusable form ('%s')",
				  what, page_string(elem, "id") ? page_string(elem, "id") : "no id");
			continue;
		}
		rc = fn(ctx, &item);
		drive_item_release(&item);
		if (rc)
			return rc;
	}
	return 0;
}

int graph_delta(struct graph *g, const char *link, graph_item_fn fn, void *ctx,
		char **delta_link, char **err)
{
	const char *what = "cannot follow the changes of the drive";
	const char *next, *done;
	long top = g->cfg->page_size, pages = 0;
	json_t *page = NULL;
	char suffix[48] = "/root/delta", *url;
	int rc;

	*delta_link = NULL;
	if (link) {
		if (!on_graph_origin(g, link)) {
			graph_set_err(err, graph_xprintf("%s: the stored delta link is not on '%s'",
							 what, g->origin));
			return -ESTALE;   /* start over from our own URL */
		}
		url = strdup(link);
	} else {
		/* The links the service hands back keep $top: set it once here. */
		if (top > 0)
			snprintf(suffix, sizeof(suffix), "/root/delta?$top=%ld",
				 top > DELTA_TOP_MAX ? (long)DELTA_TOP_MAX : top);
		url = graph_item_url(g, suffix, NULL, "");
	}
	if (!url)
		return graph_fail_errno(err, what, -ENOMEM);
	for (;;) {
		rc = graph_get_json(g, url, &page, what, err);
		if (rc < 0)
			goto out_free_url;   /* -ESTALE for 410 / resyncRequired (errmap) */
		rc = page_items(page, fn, ctx, what, err);
		if (rc)
			goto out_free_page;
		done = page_string(page, "@odata.deltaLink");
		next = page_string(page, "@odata.nextLink");
		if (done || !next) {
			if (!done) {
				graph_set_err(err, graph_xprintf("%s: the last page has no delta link",
								 what));
				rc = -EIO;
				goto out_free_page;
			}
			*delta_link = strdup(done);
			rc = *delta_link ? 0 : graph_fail_errno(err, what, -ENOMEM);
			goto out_free_page;
		}
		/* Verbatim, but never to a host that should not see the token. */
		if (!on_graph_origin(g, next)) {
			graph_set_err(err, graph_xprintf("%s: the next page is not on '%s', not "
							 "following it", what, g->origin));
			rc = -EIO;
			goto out_free_page;
		}
		if (++pages >= DELTA_MAX_PAGES) {
			graph_set_err(err, graph_xprintf("%s: more than %d pages", what, DELTA_MAX_PAGES));
			rc = -EIO;
			goto out_free_page;
		}
		free(url);
		url = strdup(next);
		json_decref(page);
		page = NULL;
		if (!url)
			return graph_fail_errno(err, what, -ENOMEM);
	}
out_free_page:
	json_decref(page);
out_free_url:
	free(url);
	return rc;
}
