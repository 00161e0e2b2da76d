"""Resumable uploads (graph-notes 6.2-6.4).

POST .../items/{parent-id}:/{name}:/createUploadSession, .../root:/path:/
createUploadSession or .../items/{id}/createUploadSession -> 200
{"uploadUrl": "{url}/_upload/{opaque}", "expirationDateTime", "nextExpectedRanges": ["0-"]}.

Body (optional): {"item": {"@microsoft.graph.conflictBehavior" (or legacy
"@name.conflictBehavior"; default replace, as rclone relies on),
"name" (must equal the URL name exactly, else 400), "fileSystemInfo",
"fileSize"}, "deferCommit"}.  Unknown properties -> 400; "description" ->
400 (personal refuses it on upload since 2026); deferCommit true -> 501
(explicit commit is not implemented).  fileSize larger than the free quota
-> 507 and no session.  If-Match / If-None-Match -> 412 at creation; an
If-Match tag is checked again at completion (412 if the target changed).
conflictBehavior fail with an existing name -> 409 at creation and again at
completion.  A second session for the same parent+name while one is open ->
409 nameAlreadyExists "An upload session already exists for this file"
(seen on Business; onedrive-api-docs#747 says Personal hands out a new
session instead - config upload_session_conflict=False gives that).

The uploadUrl takes no Authorization (with it: 401 unauthenticated and an
auth violation in stats).  PUT needs Content-Range "bytes a-b/total" and a
Content-Length equal to b-a+1 (else 400; "bytes 0--1/0" is malformed:
zero-byte files need a simple PUT).  Fragments must be < 60 MiB (400,
inner maxFragmentLengthExceeded), sequential (416 invalidRange, inner
fragmentOverlap for a range already received, fragmentOutOfOrder for a gap),
with the same total (400, inner fragmentLengthMismatch; also against
item.fileSize), and - stricter than the service, which only "may fail at
commit" - every fragment but the last must be a multiple of 320 KiB (400).
Intermediate fragments -> 202 {"expirationDateTime", "nextExpectedRanges":
["N-"]}; the last -> 201 (new) / 200 (replaced) + driveItem.  GET -> 200
status; DELETE -> 204 cancel.  A session ends when completed (successfully
or not: 409/412/507/404 at completion end it), cancelled or expired
(config upload_session_lifetime, default 900 s, extended by each accepted
fragment); afterwards its URL answers 404 itemNotFound "The upload session
was not found" (inner uploadSessionNotFound).

Bytes are kept in memory up to 8 MiB, then in an anonymous temporary file;
the quickXorHash is computed while receiving.
"""

import re
import tempfile

from . import naming, util
from .content import BytesContent, FileContent
from .drive import InvalidMove, NameConflict, QuotaExceeded
from .qxhash import QuickXorHash
from .web import GraphError, graph_empty, graph_json
from .writes import (check_preconditions, conflict_behavior, invalid, json_body, model_error, name_exists,
                     parse_fs_info, quota_error, CONFLICT_KEYS)

FRAGMENT_MAX = 60 * 1024 * 1024          # fragments must be smaller than this
FRAGMENT_UNIT = 320 * 1024               # 327 680 bytes
SPOOL_MAX = 8 * 1024 * 1024
_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+)\s*$", re.IGNORECASE)
ITEM_KEYS = set(CONFLICT_KEYS) | {"name", "fileSystemInfo", "fileSize", "@odata.type"}


def not_found():
    return GraphError(404, "itemNotFound", "The upload session was not found",
                      inner_code="uploadSessionNotFound")


def malformed_range():
    return invalid("The Content-Range header is missing or malformed.")


class Session:
    def __init__(self, sid, parent_id, name, item_id, behavior, fs, file_size, if_match, lifetime, drive=None):
        self.id = sid
        self.drive = drive
        self.parent_id = parent_id
        self.name = name
        self.key = (parent_id, naming.name_key(name))
        self.item_id = item_id          # id-addressed session: replace this item
        self.behavior = behavior
        self.fs_created, self.fs_modified = fs
        self.file_size = file_size
        self.if_match = if_match
        self.total = None
        self.received = 0
        self.hasher = QuickXorHash()
        self.buf = bytearray()
        self.file = None
        self.url = None
        self.expires = util.now() + lifetime

    def append(self, data):
        if self.file is None and len(self.buf) + len(data) > SPOOL_MAX:
            self.file = tempfile.TemporaryFile(prefix="fakegraph-upload-")
            self.file.write(self.buf)
            self.buf = None
        if self.file is not None:
            self.file.write(data)
        else:
            self.buf += data
        self.hasher.update(data)
        self.received += len(data)

    def content(self):
        qx = self.hasher.b64digest()
        if self.file is None:
            return BytesContent(bytes(self.buf), qx)
        self.file.flush()
        f, self.file = self.file, None
        return FileContent(f, self.received, qx)

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None
        self.buf = None

    def status(self):
        return {"expirationDateTime": util.iso_millis(self.expires),
                "nextExpectedRanges": ["%d-" % self.received]}


class Uploads:
    def __init__(self, fake):
        self.fake = fake
        self.sessions = {}

    # ------------------------------------------------------------ control
    def reset(self):
        for s in self.sessions.values():
            s.close()
        self.sessions = {}

    def _purge(self):
        t = util.now()
        for sid in [sid for sid, s in self.sessions.items() if t >= s.expires]:
            self.sessions.pop(sid).close()

    def _end(self, s):
        self.sessions.pop(s.id, None)
        s.close()

    def expire(self, url=None):
        """Expire every open session (or the one with this uploadUrl)."""
        n = 0
        for s in self.sessions.values():
            if url is None or s.url == url:
                s.expires = util.now() - 1
                n += 1
        self._purge()
        return n

    def snapshot(self):
        self._purge()
        return [{"uploadUrl": s.url, "parent_id": s.parent_id, "name": s.name, "item_id": s.item_id,
                 "received": s.received, "total": s.total, "expirationDateTime": util.iso_millis(s.expires)}
                for s in self.sessions.values()]

    # --------------------------------------------------- create a session
    def create(self, req, route):
        fake = self.fake
        body = json_body(req, required=False)
        for k in body:
            if k not in ("item", "deferCommit") and not k.startswith("@"):
                raise GraphError(400, "BadRequest", "The property '%s' does not exist on type "
                                                    "'microsoft.graph.driveItemUploadableProperties'." % k)
        spec = body.get("item", {})
        if not isinstance(spec, dict):
            raise invalid("'item' must be an object.")
        drive = route.drive
        if "description" in spec and not drive.business:
            raise invalid("The 'description' property cannot be set when uploading to a personal drive.")
        unknown = sorted(k for k in spec if k not in ITEM_KEYS)
        if unknown:
            raise GraphError(400, "BadRequest", "The property '%s' does not exist on type "
                                                "'microsoft.graph.driveItemUploadableProperties'." % unknown[0])
        defer = body.get("deferCommit", False)
        if not isinstance(defer, bool):
            raise invalid("'deferCommit' must be a boolean.")
        if defer:
            raise GraphError(501, "notSupported", "The fake Graph server does not implement deferCommit.")
        behavior = conflict_behavior(req, spec, "replace")
        parent, name, existing = fake.writes.resolve_target(route)
        if not route.path:
            if parent is None or existing.is_folder:
                raise invalid("An upload session can only target a file.")
        if "name" in spec and spec["name"] != name:
            raise invalid("The name in the request body must match the name in the URL.")
        try:
            naming.validate_name(name)
            naming.check_path_length(drive.path_names(parent) + [name])
        except naming.InvalidName as e:
            raise model_error(e)
        fs = parse_fs_info(spec.get("fileSystemInfo"))
        size = spec.get("fileSize")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise invalid("'fileSize' must be a non-negative integer.")
        check_preconditions(req, existing, check_none_match=True)
        if existing is not None and (existing.is_folder or (behavior == "fail" and route.path)):
            raise name_exists()
        if size is not None:
            replaced = existing.size if existing is not None and behavior == "replace" else 0
            try:
                drive.check_quota(size - replaced)
            except QuotaExceeded:
                raise quota_error()
        self._purge()
        key = (parent.id, naming.name_key(name))
        if existing is not None and existing.remote is not None:
            raise invalid("An upload session can only target a file.")
        if fake.config.upload_session_conflict and any(s.key == key for s in self.sessions.values()):
            raise name_exists("An upload session already exists for this file")
        sid = util.random_hex(16)
        s = Session(sid, parent.id, name, None if route.path else existing.id, behavior, fs, size,
                    req.header("If-Match").strip() if req.header("If-Match") else None,
                    fake.config.upload_session_lifetime, drive)
        s.url = "%s/_upload/%s" % (fake.url, fake.sealer.seal_json("upload", {"s": sid}))
        self.sessions[sid] = s
        out = {"@odata.context": fake.graph_url + "/$metadata#microsoft.graph.uploadSession",
               "uploadUrl": s.url}
        out.update(s.status())
        return graph_json(req, out)

    # ------------------------------------------------------ the uploadUrl
    def handle(self, req, token):
        fake = self.fake
        if req.header("Authorization") is not None:
            fake.counters.violation(req, "Authorization header sent to an upload URL")
            raise GraphError(401, "unauthenticated", "Unauthenticated")
        data = fake.sealer.unseal_json("upload", token)
        with fake.lock:
            self._purge()
            s = self.sessions.get(data.get("s")) if data else None
            if s is None:
                raise not_found()
            if req.method in ("GET", "HEAD"):
                return graph_json(req, s.status())
            if req.method == "DELETE":
                self._end(s)
                return graph_empty(req, 204)
            if req.method == "PUT":
                return self._fragment(req, s)
            raise GraphError(405, "BadRequest", "The HTTP method '%s' is not supported." % req.method,
                             headers=[("Allow", "GET, HEAD, PUT, DELETE")])

    def _fragment(self, req, s):
        m = _RANGE.match(req.header("Content-Range") or "")
        if not m:
            raise malformed_range()
        a, b, total = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if total == 0 or b < a or b >= total:
            raise malformed_range()
        n = b - a + 1
        if req.oversize is not None or n >= FRAGMENT_MAX:
            raise invalid("The fragment is too large; fragments must be smaller than 60 MiB.",
                          "maxFragmentLengthExceeded")
        if req.header("Content-Length") is None and req.header("Transfer-Encoding") is None:
            raise GraphError(411, "invalidRequest", "Content-Length is required.")
        if len(req.body) != n:
            raise invalid("The Content-Range header length does not match the provided number of bytes.")
        want = s.total if s.total is not None else s.file_size
        if want is not None and total != want:
            raise invalid("The Content-Range total does not match the file size.", "fragmentLengthMismatch")
        if a < s.received:
            raise GraphError(416, "invalidRange", "Uploaded fragment overlaps with existing data.",
                             inner_code="fragmentOverlap")
        if a > s.received:
            raise GraphError(416, "invalidRange", "Uploaded fragment is out of order.",
                             inner_code="fragmentOutOfOrder")
        if b + 1 < total and n % FRAGMENT_UNIT:
            raise invalid("Every fragment except the last must be a multiple of 320 KiB (327680 bytes).")
        s.total = total
        s.append(req.body)
        s.expires = util.now() + self.fake.config.upload_session_lifetime
        if s.received < total:
            return graph_json(req, s.status(), 202)
        try:
            return self._complete(req, s)
        finally:
            self._end(s)

    def _complete(self, req, s):
        drive = s.drive
        if s.item_id is not None:
            existing = drive.get(s.item_id)
            if existing is None:
                raise GraphError(404, "itemNotFound", "The item being uploaded was deleted.")
            parent, name = existing.parent, existing.name
        else:
            parent = drive.get(s.parent_id)
            if parent is None:
                raise GraphError(404, "itemNotFound", "The parent folder was deleted.")
            name = s.name
            existing = drive.child(parent, name)
        if s.if_match is not None and s.if_match != "*" and \
                (existing is None or s.if_match not in (existing.etag, existing.ctag)):
            raise GraphError(412, "resourceModified", "ETag does not match current item's value",
                             inner_code="entityTagDoesNotMatch")
        content = s.content()
        try:
            if existing is not None:
                if existing.is_folder or (s.behavior == "fail" and s.item_id is None):
                    raise name_exists()
                if s.behavior == "replace" or s.item_id is not None:
                    drive.replace_content(existing, content, s.fs_created, s.fs_modified)
                    return self._done(req, existing, 200)
                name = drive.unique_name(parent, name)
            item = drive.create_file(parent, name, content, s.fs_created, s.fs_modified)
        except (naming.InvalidName, NameConflict, QuotaExceeded, InvalidMove) as e:
            raise model_error(e)
        return self._done(req, item, 201)

    def _done(self, req, item, status):
        return graph_json(req, self.fake.graph.item_body(req, item), status, headers=[("ETag", item.etag)])
