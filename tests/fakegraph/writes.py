"""Graph write routes (graph-notes 5, 6.1, 11, 12): create folder (POST
children), rename/move/timestamps (PATCH item), delete (DELETE item, POST
permanentDelete) and simple upload (PUT content).  createUploadSession goes
to upload.py, restoreVersion to versions.py.

Strictness (what the fake refuses, like or stricter than the service):
* JSON bodies need `Content-Type: application/json` (else 415) and must be
  a JSON object (else 400 invalidRequest).
* conflictBehavior: body `@microsoft.graph.conflictBehavior` or the legacy
  `@name.conflictBehavior`, or the query parameter of the same name; values
  fail | rename | replace exactly (else 400).
* Preconditions: If-Match `*` or a quoted eTag/cTag (412 resourceModified,
  inner entityTagDoesNotMatch, when stale; an unquoted value is 400 with
  inner malformedEntityTag); If-None-Match `*` or a tag on PUT content ->
  412 when it matches.
* Names follow naming.py (400 invalidRequest, inner invalidPath or
  pathIsTooLong).  Path-addressed uploads need the parent folder to exist
  (404 itemNotFound) - the fake never creates intermediate folders.
* PATCH refuses read-only properties (400, inner propertyNotUpdateable) and
  parentReference.id "root" (400: moves to the root need the real root id,
  driveitem_move.md).  Rename/move keep fileSystemInfo (quirk 4 says the
  service may reset it; keeping it is the simpler documented choice).
* Quota: a write that does not fit answers 507 quotaLimitReached and changes
  nothing; creating items while the quota state is "exceeded" is refused too.
"""

import json
from urllib.parse import unquote

from . import naming, util
from .content import BytesContent
from .drive import InvalidMove, NameConflict, QuotaExceeded
from .web import GraphError, graph_empty, graph_json

CONFLICT_KEYS = ("@microsoft.graph.conflictBehavior", "@name.conflictBehavior")
CONFLICT_VALUES = ("fail", "rename", "replace")
READ_ONLY = {"id", "size", "eTag", "cTag", "createdDateTime", "lastModifiedDateTime", "createdBy",
             "lastModifiedBy", "webUrl", "file", "folder", "root", "deleted", "package", "remoteItem",
             "specialFolder", "shared", "@microsoft.graph.downloadUrl"}
FS_KEYS = ("createdDateTime", "lastModifiedDateTime", "lastAccessedDateTime")


# ------------------------------------------------------------------ errors
def name_exists(msg="Name already exists"):
    return GraphError(409, "nameAlreadyExists", msg)


def quota_error():
    return GraphError(507, "quotaLimitReached", "Insufficient Space Available", inner_code="quotaLimitReached")


def invalid(msg, inner=None):
    return GraphError(400, "invalidRequest", msg, inner_code=inner)


def model_error(e):
    """Map a drive/naming exception to a GraphError."""
    if isinstance(e, naming.InvalidName):
        return invalid(str(e), e.inner)
    if isinstance(e, NameConflict):
        return name_exists(str(e) or "Name already exists")
    if isinstance(e, QuotaExceeded):
        return quota_error()
    if isinstance(e, InvalidMove):
        return invalid(str(e))
    raise e


# ------------------------------------------------------- request helpers
def json_body(req, required=True):
    """The request's JSON object ({} when optional and absent)."""
    if not req.body:
        if required:
            raise invalid("A request body is required.")
        return {}
    ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise GraphError(415, "BadRequest", "Content-Type must be 'application/json'.")
    try:
        obj = json.loads(req.body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise invalid("Unable to read JSON request payload. Please ensure Content-Type header is set "
                      "and payload is of valid JSON format.")
    if not isinstance(obj, dict):
        raise invalid("The request body must be a JSON object.")
    return obj


def conflict_behavior(req, body, default):
    v = None
    for k in CONFLICT_KEYS:
        if body.get(k) is not None:
            v = body[k]
            break
    if v is None:
        for k in CONFLICT_KEYS:
            if req.qget(k) is not None:
                v = req.qget(k)
                break
    if v is None:
        return default
    if v not in CONFLICT_VALUES:
        raise invalid("Invalid value '%s' for conflictBehavior." % v)
    return v


def _tag_ok(tag):
    return tag == "*" or (len(tag) >= 2 and tag.startswith('"') and tag.endswith('"')) or \
        (tag.startswith('W/"') and tag.endswith('"'))


def check_preconditions(req, item, check_none_match=False):
    """If-Match (and, for PUT/createUploadSession, If-None-Match)."""
    im = req.header("If-Match")
    if im is not None:
        tag = im.strip()
        if not _tag_ok(tag):
            raise invalid("The entity tag '%s' is malformed." % tag, "malformedEntityTag")
        if item is None or (tag != "*" and tag not in (item.etag, item.ctag)):
            raise GraphError(412, "resourceModified", "ETag does not match current item's value",
                             inner_code="entityTagDoesNotMatch")
    if check_none_match:
        inm = req.header("If-None-Match")
        if inm is not None:
            tag = inm.strip()
            if not _tag_ok(tag):
                raise invalid("The entity tag '%s' is malformed." % tag, "malformedEntityTag")
            if item is not None and (tag == "*" or tag in (item.etag, item.ctag)):
                raise GraphError(412, "resourceModified", "The item already exists or its tag matches.",
                                 inner_code="entityTagDoesNotMatch")


def parse_fs_info(obj):
    """fileSystemInfo object -> (created, modified) epoch seconds (whole
    seconds, None when absent)."""
    if obj is None:
        return None, None
    if not isinstance(obj, dict):
        raise invalid("fileSystemInfo must be an object.")
    unknown = set(obj) - set(FS_KEYS) - {"@odata.type"}
    if unknown:
        raise GraphError(400, "BadRequest", "The property '%s' does not exist on type "
                                            "'microsoft.graph.fileSystemInfo'." % sorted(unknown)[0])
    out = []
    for k in ("createdDateTime", "lastModifiedDateTime"):
        v = obj.get(k)
        if v is None:
            out.append(None)
            continue
        try:
            out.append(int(util.parse_iso(v)))
        except (ValueError, TypeError, OverflowError):
            raise invalid("Invalid value for fileSystemInfo.%s: '%s'." % (k, v))
    return out[0], out[1]


class Writes:
    def __init__(self, fake):
        self.fake = fake

    def dispatch(self, req, route, method):
        op = route.op
        if op == "createUploadSession":
            return self.fake.uploads.create(req, route)
        if op == "restoreVersion":
            return self.fake.versions.handle(req, route, self.fake.graph._resolve(route), method)
        if op == "content":
            return self.put_content(req, route)
        item = self.fake.graph._resolve(route)
        if op == "children":
            return self.create_folder(req, item)
        if op == "copy":
            return self.fake.features.copy(req, route, item)
        if op == "createLink":
            return self.fake.features.create_link(req, route, item)
        if op == "permanentDelete":
            return self.delete(req, item, permanent=True)
        if method == "PATCH":
            return self.patch(req, item, route.share_user)
        return self.delete(req, item, permanent=False)

    def _item_response(self, req, item, status):
        return graph_json(req, self.fake.graph.item_body(req, item), status, headers=[("ETag", item.etag)])

    def resolve_target(self, route):
        """(parent, name, existing) for a path-addressed write, or
        (item.parent, item.name, item) for an id-addressed one."""
        drive = route.drive
        base = drive.get(route.base)
        if base is None:
            raise GraphError(404, "itemNotFound", "Item not found")
        if not route.path:
            return base.parent, base.name, base
        parent = drive.resolve(base, route.path[:-1])
        if parent is None:
            raise GraphError(404, "itemNotFound", "The parent folder does not exist.")
        if not parent.is_folder:
            raise invalid("The parent item is not a folder.")
        name = route.path[-1]
        return parent, name, drive.child(parent, name)

    # ------------------------------------------------------ create folder
    def create_folder(self, req, parent):
        body = json_body(req)
        behavior = conflict_behavior(req, body, None)
        if "file" in body or "package" in body or "remoteItem" in body:
            raise invalid("Only folders can be created with this request; upload file content instead.")
        if not isinstance(body.get("folder"), dict):
            raise invalid("The 'folder' facet is required to create a folder.")
        name = body.get("name")
        if not isinstance(name, str):
            raise invalid("The 'name' property is required.")
        if not parent.is_folder:
            raise invalid("The parent item is not a folder.")
        drive = parent.drive
        try:
            naming.validate_name(name)
            existing = drive.child(parent, name)
            if existing is not None:
                if behavior is None and existing.is_folder and not drive.business:
                    return self._item_response(req, existing, 200)       # personal "ensure exists"
                if behavior in (None, "fail"):
                    raise name_exists()
                if behavior == "replace":
                    if existing.is_folder:
                        return self._item_response(req, existing, 200)   # contents untouched
                    drive.delete(existing)
                else:
                    name = drive.unique_name(parent, name)
            item = drive.create_folder(parent, name)
        except (naming.InvalidName, NameConflict, QuotaExceeded, InvalidMove) as e:
            raise model_error(e)
        return self._item_response(req, item, 201)

    # -------------------------------------------------------------- PATCH
    def patch(self, req, item, share_user=None):
        body = json_body(req)
        check_preconditions(req, item)
        ro = sorted(k for k in body if k in READ_ONLY)
        if ro:
            raise invalid("Property '%s' is read-only." % ro[0], "propertyNotUpdateable")
        behavior = conflict_behavior(req, body, "fail")
        drive = item.drive
        new_name = body.get("name", item.name)
        if not isinstance(new_name, str):
            raise invalid("'name' must be a string.")
        new_parent = item.parent
        pref = body.get("parentReference")
        if pref is not None:
            new_parent = self._target_parent(pref, drive)
            if share_user is not None:
                sh = self.fake.share_for(share_user, new_parent)
                if sh is None or not sh.writable:
                    raise GraphError(403, "accessDenied", "Access denied")
        fs_created, fs_modified = parse_fs_info(body.get("fileSystemInfo"))
        if item.parent is None and (new_name != item.name or new_parent is not item.parent):
            raise GraphError(403, "notAllowed", "The root folder cannot be renamed or moved.")
        try:
            if new_parent is not item.parent or new_name != item.name:
                naming.validate_name(new_name)
                if not new_parent.is_folder:
                    raise InvalidMove("The target parent is not a folder.")
                existing = drive.child(new_parent, new_name)
                if existing is not None and existing is not item:
                    if behavior == "rename":
                        new_name = drive.unique_name(new_parent, new_name)
                    elif behavior == "replace" and not existing.is_folder and not item.is_folder:
                        drive.delete(existing)
                    else:
                        raise name_exists()
                drive.move(item, new_parent, new_name)
            drive.set_fs_times(item, fs_created, fs_modified)
        except (naming.InvalidName, NameConflict, QuotaExceeded, InvalidMove) as e:
            raise model_error(e)
        return self._item_response(req, item, 200)

    def _target_parent(self, pref, drive):
        if not isinstance(pref, dict):
            raise invalid("parentReference must be an object.")
        did = pref.get("driveId")
        if did is not None and (not isinstance(did, str) or not drive.matches_drive_id(did)):
            raise invalid("Moving items between drives is not supported; copy and delete instead.")
        pid = pref.get("id")
        if pid is not None:
            if not isinstance(pid, str) or not pid:
                raise invalid("parentReference.id must be a string.")
            if pid.lower() == "root":
                raise invalid("parentReference.id 'root' is not an item id; use the id of the drive's "
                              "root item to move an item to the root.")
            parent = drive.get(pid)
            if parent is None:
                raise GraphError(404, "itemNotFound", "The target parent item was not found.")
            return parent
        path = pref.get("path")
        if isinstance(path, str):
            prefixes = ("/drives/%s/root:" % drive.drive_id,) if drive.business else \
                ("/drive/root:", "/drives/%s/root:" % drive.drive_id)
            for prefix in prefixes:
                if path.lower().startswith(prefix.lower()):
                    names = [unquote(p) for p in path[len(prefix):].split("/") if p]
                    parent = drive.resolve(drive.root, names)
                    if parent is None:
                        raise GraphError(404, "itemNotFound", "The target parent item was not found.")
                    return parent
            raise invalid("parentReference.path is not a valid drive path.", "invalidPath")
        raise invalid("parentReference needs an 'id'.")

    # ------------------------------------------------------------- DELETE
    def delete(self, req, item, permanent):
        if item.parent is None:
            raise GraphError(403, "notAllowed", "The root folder cannot be deleted.")
        check_preconditions(req, item)
        item.drive.delete(item, permanent=permanent)
        return graph_empty(req, 204)

    # -------------------------------------------------------- PUT content
    def put_content(self, req, route):
        if req.oversize is not None:
            raise GraphError(413, "requestTooLarge",
                             "The request is larger than %d bytes; use an upload session."
                             % self.fake.config.simple_upload_max, inner_code="maxFileSizeExceeded")
        parent, name, existing = self.resolve_target(route)
        drive = route.drive
        behavior = conflict_behavior(req, {}, "replace")
        if not route.path and (parent is None or existing.is_folder or existing.remote is not None):
            raise invalid("Content can only be uploaded to a file.")
        check_preconditions(req, existing, check_none_match=True)
        content = BytesContent(req.body)
        try:
            if existing is not None:
                if existing.is_folder or behavior == "fail":
                    raise name_exists()
                if behavior == "replace" or not route.path:
                    drive.replace_content(existing, content)
                    return self._item_response(req, existing, 200)
                name = drive.unique_name(parent, name)
            item = drive.create_file(parent, name, content)
        except (naming.InvalidName, NameConflict, QuotaExceeded, InvalidMove) as e:
            raise model_error(e)
        return self._item_response(req, item, 201)
