/*
 * graph.h - Microsoft Graph requests and their JSON, and nothing else.
 *
 * Sits between the filesystem and http.c.  Addresses items by id under the
 * drive found by graph_open_drive() ("{graph_url}/drives/{drive-id}/items/
 * {id}"), follows @odata.nextLink verbatim, never builds skip tokens.
 * Items on another drive (inside a shared folder added to "My files") have
 * ids of the form "remote:{driveId}:{itemId}": opaque to callers, routed
 * to their own drive here.
 * Access tokens come from auth.c; a 401 makes one refresh and one retry.
 * Download URLs (302 Location or @microsoft.graph.downloadUrl) are fetched
 * without Authorization.
 *
 * Every function returns 0 or -errno (from errmap.c for service errors).
 * When err is not NULL, a failure stores a malloc'd one-line message the
 * caller may log and must free.  JSON bodies are capped (4 MiB a page).
 * All functions are thread-safe.
 */
#ifndef ODFS_GRAPH_H
#define ODFS_GRAPH_H

#include <stddef.h>
#include <stdint.h>
#include "http.h"
#include "item.h"

struct odfs_config;
struct auth;
struct graph;

/* The handle borrows cfg, http and auth; they must outlive it. */
struct graph *graph_new(const struct odfs_config *cfg, struct http_client *http,
			struct auth *auth);
void graph_free(struct graph *g);

/*
 * Open the drive the settings name (graph_drive.c): /me/drive by default,
 * /drives/{drive_id}, /users/{user}/drive, or site (HOST:/sites/NAME or a
 * site id) with its library (by name, default Documents).  Fills info
 * (caller releases) and remembers the drive id for every later item URL.
 * Must succeed once before the item calls.  -EINVAL for settings that
 * cannot work (two drives named, app-only without a drive), -ENOENT for a
 * drive, site or library that does not exist, with *err saying which.
 */
int graph_open_drive(struct graph *g, struct drive_info *info, char **err);

/* GET one drive at a Graph path ("/me/drive", "/drives/{id}"); info released by caller. */
int graph_get_drive(struct graph *g, const char *path, struct drive_info *out, char **err);

/*
 * List drives at a Graph path ("/me/drives", "/users/{id}/drives") or a
 * SharePoint site's document libraries, following paging.  fn sees each
 * drive (borrowed); a non-zero return stops the listing and is returned.
 */
typedef int (*graph_drive_fn)(void *ctx, const struct drive_info *drive);
int graph_list_drives(struct graph *g, const char *path, graph_drive_fn fn, void *ctx,
		      char **err);
int graph_site_drives(struct graph *g, const char *site, graph_drive_fn fn, void *ctx,
		      char **err);

/*
 * POST /me/revokeSignInSessions (work/school accounts only; any 2xx is
 * success, graph-notes 14).  Refresh tokens die at once, access tokens
 * live until they expire.
 */
int graph_revoke_sessions(struct graph *g, char **err);

/*
 * 1 when the item lives on another drive than the mounted one (inside a
 * shared folder added to "My files"): the mounted drive's delta does not
 * report its changes (graph-notes 15, quirk 25), so such folders must be
 * listed again after dir_ttl even while delta runs.
 */
int graph_id_is_remote(const char *id);

/*
 * 1 while the sign-in has expired or was revoked (auth.h AUTH_EXPIRED):
 * requests fail until 'onedrivefs login' runs, then carry on by themselves.
 * For status reports (user.onedrive.status).
 */
int graph_sign_in_expired(struct graph *g);

/*
 * Unix seconds since the service stopped answering (http.h), 0 while it
 * answers.  For status reports and for skipping work that cannot succeed.
 */
int64_t graph_offline_since(struct graph *g);

/*
 * One cheap request (GET /me/drive?$select=id) to learn whether the
 * service answers again: any answer makes the client online (http.h).
 * 0 when an answer came, whatever its status, else -errno.  Without a
 * usable sign-in it asks without a token (a 401 is an answer too).
 */
int graph_probe(struct graph *g);

/*
 * Address items under drive_id without asking the service (a mount that
 * starts offline, from the drive its cache holds).  0 or -ENOMEM.
 */
int graph_use_drive(struct graph *g, const char *drive_id);

/* GET the drive root item. */
int graph_get_root(struct graph *g, struct drive_item *out, char **err);

/* GET one item by id. -ENOENT if it does not exist. */
int graph_get_item(struct graph *g, const char *item_id, struct drive_item *out, char **err);

/*
 * List every child of a folder, following paging.  fn is called once per
 * child with an item it may steal fields from (set them to NULL); return
 * non-zero from fn to stop early (that value is returned).
 */
typedef int (*graph_item_fn)(void *ctx, struct drive_item *item);
int graph_list_children(struct graph *g, const char *folder_id, graph_item_fn fn,
			void *ctx, char **err);

/*
 * GET .../content without following: the pre-authenticated URL from the
 * 302 Location (malloc'd).  -EIO for a 200 or a redirect without Location.
 */
int graph_download_url(struct graph *g, const char *item_id, char **url, char **err);

/*
 * Ranged GET of a pre-authenticated URL, bytes [off, off+len), streamed to
 * sink, never with Authorization.  The sink sees exactly the bytes of the
 * range, in order, at most len of them: a 206 must start at off (else
 * -EIO); a 200 (range ignored) is skipped up to off and cut after len
 * bytes.  Fewer than len bytes means end of file; 416 (off past the end)
 * returns 0 with nothing sent.  Redirects are followed (up to 5, still
 * without Authorization).  -ESTALE when the URL has expired or was refused
 * (401/403/404/410): fetch a new one with graph_download_url() and try
 * again.  On a transport error midway, the sink has seen a prefix.
 */
int graph_download(struct graph *g, const char *url, int64_t off, int64_t len,
		   http_sink_fn sink, void *ctx, char **err);

/* Parse one driveItem JSON object (exposed for tests and fuzzing). */
int graph_parse_item(const char *json, size_t len, struct drive_item *out);
/* Parse a drive JSON object. */
int graph_parse_drive(const char *json, size_t len, struct drive_info *out);
/* ISO-8601 "2024-01-02T03:04:05[.fff]Z" -> timespec; 0 or -EINVAL. */
int graph_parse_time(const char *s, struct timespec *out);

/* ---- Writing (implemented in graph_write.c) ------------------------------ */

/*
 * POST children of parent_id: a new folder with @microsoft.graph.conflictBehavior
 * "fail".  -EEXIST when the name is taken (in any case), -EINVAL for a name
 * the service refuses.  out (caller releases) receives the new folder.
 */
int graph_create_folder(struct graph *g, const char *parent_id, const char *name,
			struct drive_item *out, char **err);

/*
 * PATCH an item.  Any of new_name, new_parent_id (a real id, never "root"),
 * mtime (fileSystemInfo; crtime is sent along so neither is reset) may be
 * NULL to leave it alone.  if_match: an eTag/cTag or NULL.  -EEXIST when the
 * target name is taken, -ESTALE on 412.  out may be NULL.
 */
int graph_update_item(struct graph *g, const char *item_id, const char *new_name,
		      const char *new_parent_id, const struct timespec *mtime,
		      const struct timespec *crtime, const char *if_match,
		      struct drive_item *out, char **err);

/*
 * Set an item's fileSystemInfo times: graph_update_item() with only mtime
 * (and crtime), with the same answers (-ESTALE on 412, out filled).  Calls
 * that other threads make at the same time are gathered into one JSON
 * batch (POST {graph_url}/$batch, at most 20 PATCHes; graph_batch.c): a
 * caller whose PATCH is waiting sends whatever PATCHes are waiting then,
 * without waiting for more.  A throttled PATCH inside a batch is sent
 * again after its Retry-After.  When the service refuses $batch, every
 * later call is a single PATCH.
 */
int graph_set_times(struct graph *g, const char *item_id, const struct timespec *mtime,
		    const struct timespec *crtime, const char *if_match,
		    struct drive_item *out, char **err);

/* DELETE an item (to the recycle bin; folders go whole).  -ENOENT if gone. */
int graph_delete_item(struct graph *g, const char *item_id, char **err);
/* The same, only if the item's eTag or cTag is still if_match (NULL: always); -ESTALE on 412. */
int graph_delete_item_if(struct graph *g, const char *item_id, const char *if_match, char **err);

/*
 * GET the child named name (any case) of folder parent_id, e.g. a new file
 * whose upload completed with an empty answer.  -ENOENT if there is none.
 */
int graph_get_child(struct graph *g, const char *parent_id, const char *name,
		    struct drive_item *out, char **err);

/*
 * Where new content goes: either an existing item (item_id set: its content
 * is replaced, guarded by if_match when set) or a new file (parent_id + name,
 * conflictBehavior "fail": an existing name is -EEXIST, never overwritten).
 */
struct graph_upload_target {
	const char *item_id;
	const char *parent_id;
	const char *name;
	const char *if_match;          /* cTag or eTag the edit started from, or NULL */
	const struct timespec *mtime;  /* fileSystemInfo to record, or NULL */
	int mtime_explicit;            /* set by utimens: record it to the second */
	const struct timespec *crtime;
};

/*
 * Simple upload (PUT .../content) of len bytes read from source; for files of
 * up to 4 MiB (and every empty file).  -ESTALE on 412 (changed remotely),
 * -EEXIST on 409, -ENOSPC on 507.  out receives the resulting item.
 */
int graph_upload_small(struct graph *g, const struct graph_upload_target *t,
		       http_source_fn source, void *source_ctx, int64_t len,
		       struct drive_item *out, char **err);

/* An upload session (createUploadSession); the URL carries its own credential. */
struct graph_upload_session {
	char *upload_url;              /* never sent with Authorization */
	struct timespec expires;
	int64_t next_offset;           /* first byte the service still needs */
};
void graph_upload_session_release(struct graph_upload_session *s);

/* Create a session for t (fileSize = len, conflictBehavior per the target). */
int graph_upload_session_create(struct graph *g, const struct graph_upload_target *t,
				int64_t len, struct graph_upload_session *s, char **err);

/*
 * PUT bytes [off, off+n) of a len-byte file to the session.  On 202
 * s->next_offset advances; on the final 200/201 *done is set and out filled.
 * -ENOENT: the session is gone (expired): start over.  -ERANGE (416): call
 * graph_upload_session_status() and resume from s->next_offset.
 */
int graph_upload_session_put(struct graph *g, struct graph_upload_session *s,
			     int64_t off, int64_t n, int64_t len, http_source_fn source,
			     void *source_ctx, int *done, struct drive_item *out, char **err);

/* GET the session: refreshes s->next_offset.  -ENOENT when gone. */
int graph_upload_session_status(struct graph *g, struct graph_upload_session *s, char **err);

/* DELETE the session (best effort). */
int graph_upload_session_cancel(struct graph *g, struct graph_upload_session *s, char **err);

/* ---- Delta (implemented in graph_delta.c) -------------------------------- */

/*
 * One round of GET {drive}/root/delta.  link NULL starts a full enumeration
 * ($top = cfg->page_size); otherwise link is the deltaLink of the previous
 * round, used verbatim.  Follows @odata.nextLink until a page carries
 * @odata.deltaLink and stores a malloc'd copy of that in *delta_link (the
 * caller frees; NULL on failure).  fn sees every item of every page in the
 * order sent, duplicates included, and may steal fields; a non-zero return
 * stops the round (that value is returned).  Items are not applied here:
 * the caller applies them once the round is complete.  Items in a form we
 * cannot use are skipped with a warning.  -ESTALE: the service wants a full
 * resync (410 Gone, resyncRequired): start again with link NULL.
 */
int graph_delta(struct graph *g, const char *link, graph_item_fn fn, void *ctx,
		char **delta_link, char **err);

/* ---- Features (implemented in graph_features.c) -------------------------- */

/* One version of a file (graph-notes 9), newest first in a listing. */
struct graph_version {
	char *id;                  /* "current", "3.0", "107-70": ids may change later */
	struct timespec mtime;     /* lastModifiedDateTime; 0 when absent */
	int64_t size;              /* -1 when absent */
	char *who;                 /* lastModifiedBy display name or NULL */
};
void graph_versions_free(struct graph_version *v, size_t n);

/* GET .../versions: *out (caller frees with graph_versions_free) holds *n entries. */
int graph_list_versions(struct graph *g, const char *item_id, struct graph_version **out,
			size_t *n, char **err);

/*
 * GET .../versions/{vid}/content without following: the pre-authenticated
 * URL (malloc'd) to fetch with graph_download().  -ENOENT for an unknown id.
 */
int graph_version_url(struct graph *g, const char *item_id, const char *version_id, char **url,
		      char **err);

/* POST .../versions/{vid}/restoreVersion: the old bytes become a new current version. */
int graph_restore_version(struct graph *g, const char *item_id, const char *version_id,
			  char **err);

/*
 * POST .../copy of item_id into folder parent_id as name (no conflictBehavior:
 * -EEXIST when the name is taken), then poll the monitor URL (without
 * Authorization) for up to timeout seconds.  *new_id (malloc'd) receives the
 * copy's id.  Folders are copied whole.  -EXDEV across drives, -ETIMEDOUT
 * when the copy is still running at the deadline (it may still complete).
 */
int graph_copy_item(struct graph *g, const char *item_id, const char *parent_id,
		    const char *name, int timeout, char **new_id, char **err);

/*
 * POST .../createLink {type: view|edit|embed, scope (NULL: the service's
 * default), expirationDateTime (NULL: none)}: *link (malloc'd) = link.webUrl.
 */
int graph_create_link(struct graph *g, const char *item_id, const char *type,
		      const char *scope, const char *expiry, char **link, char **err);

/* The item's webUrl (malloc'd); -ENODATA when it has none. */
int graph_web_url(struct graph *g, const char *item_id, char **web, char **err);

#endif
