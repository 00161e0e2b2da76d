"""Microsoft Graph v1.0 drive routes (graph-notes sections 3, 4, 7).

parse_route() turns the raw (percent-encoded) path after /v1.0 into a
GraphRoute without touching state, so the stats/fault label is known before
authentication; GraphApi.handle() authenticates and dispatches.

Addressing: /me, /me/drive, /me/drives, /drives/{id}, and below a drive
root | items/{id} | items/root, optionally followed by a path
:/a/b[:] (segments percent-decoded one by one, case-insensitive) and an
operation (after a path: ':/children'): /children (GET, POST = create
folder), /content (GET, PUT), /createUploadSession, /permanentDelete,
/delta (also delta(token='...')), /versions[/{id}[/content|/restoreVersion]];
the item itself takes GET, PATCH and DELETE.  Write routes live in
writes.py, upload.py, versions.py, delta.py.  Metadata segments are
case-sensitive.  Segments of the real API not implemented yet answer 501
notSupported (never a fake success); other methods 405.  Writes need a
Files.ReadWrite* scope (403 accessDenied otherwise).

Query options: $select/select, $top/top (children, 1..1000), $skiptoken
(opaque, from @odata.nextLink only).  Other options ($expand, $orderby,
$filter, unknown $options) are accepted and ignored - leniency, noted in
the report: the real service implements some of them.
"""

import re
from urllib.parse import quote, unquote

from . import render, util
from .identity import Identity
from .web import GraphError, graph_empty, graph_json

# Real API segments (drive- or item-level) that are not implemented: they
# answer 501 notSupported.
FUTURE_SEGMENTS = {
    "thumbnails", "copy", "permissions", "invite", "createLink", "preview", "checkin", "checkout",
    "follow", "unfollow", "restore", "special", "recent", "sharedWithMe", "search", "following",
    "bundles", "analytics", "workbook", "listItem", "subscriptions", "activities", "items", "list",
}
# op -> methods served (GET implies HEAD).  Other real methods -> 405.
ITEM_OPS = {
    None: ("GET", "PATCH", "DELETE"),
    "children": ("GET", "POST"),
    "content": ("GET", "PUT"),
    "createUploadSession": ("POST",),
    "permanentDelete": ("POST",),
    "delta": ("GET",),
    "versions": ("GET",),
    "version": ("GET",),
    "versionContent": ("GET",),
    "restoreVersion": ("POST",),
}
# real-API method/op pairs not implemented yet (501 rather than 405)
FUTURE_METHODS = {(None, "PUT"), ("version", "DELETE")}
READ_METHODS = ("GET", "HEAD")
MAX_TOP = 1000

_DRIVE_PREFIX = re.compile(r"^/(?:me/drive|drives/([^/:]+))(?=/|$)")
_ITEM_BASE = re.compile(r"^/(root|items/([^/:]+))(?=[/:]|$)")
_DELTA_FN = re.compile(r"^/delta\((?:token='([^']*)')?\)$")
_SIMPLE_OPS = ("children", "content", "createUploadSession", "permanentDelete", "delta")


class GraphRoute:
    def __init__(self, kind, method, drive_ref=None, base=None, path=None, op=None, error=None,
                 segment=None):
        self.kind = kind            # me | drives | drive | item | unknown
        self.method = method
        self.drive_ref = drive_ref  # None = /me/drive, else raw drive id
        self.base = base            # "root" or decoded item id
        self.path = path            # list of decoded names or None
        self.op = op                # None | one of ITEM_OPS
        self.error = error          # GraphError to raise after auth
        self.segment = segment
        self.version_id = None      # versions/{id}
        self.fn_token = None        # delta(token='...')

    @property
    def label(self):
        if self.kind == "item":
            return "%s %s" % (self.method, self.op or "item")
        if self.kind in ("me", "drive", "drives"):
            return "%s %s" % (self.method, self.kind)
        return "%s unknown" % self.method


def _segment_error(seg):
    return GraphError(400, "BadRequest", "Resource not found for the segment '%s'." % seg)


def _not_implemented(seg):
    return GraphError(501, "notSupported",
                      "The fake Graph server does not implement '%s' yet." % seg)


def _split_path(text):
    """':/a/b' body ('/a/b') -> decoded names."""
    if text == "" or text == "/":
        return []
    if not text.startswith("/"):
        raise GraphError(400, "invalidRequest", "The path must start with '/'.", inner_code="invalidPath")
    parts = text[1:].split("/")
    if parts and parts[-1] == "":
        parts.pop()
    names = []
    for p in parts:
        if p == "":
            raise GraphError(400, "invalidRequest", "The path contains an empty segment.",
                             inner_code="invalidPath")
        try:
            names.append(unquote(p, errors="strict"))
        except UnicodeDecodeError:
            raise GraphError(400, "invalidRequest", "The path is not valid UTF-8.", inner_code="invalidPath")
    return names


def _parse_op(route, tail):
    """Set route.op (and friends) from the part after the item address."""
    m = _DELTA_FN.match(tail)
    if m:
        route.op = "delta"
        route.fn_token = unquote(m.group(1)) if m.group(1) is not None else None
        return
    parts = tail[1:].split("/") if tail.startswith("/") else None
    if parts and len(parts) == 1 and parts[0] in _SIMPLE_OPS:
        route.op = parts[0]
        return
    if parts and parts[0] == "versions" and all(parts[1:]):
        if len(parts) == 1:
            route.op = "versions"
        elif len(parts) == 2:
            route.op = "version"
        elif len(parts) == 3 and parts[2] in ("content", "restoreVersion"):
            route.op = "versionContent" if parts[2] == "content" else "restoreVersion"
        if route.op is not None:
            route.version_id = unquote(parts[1]) if len(parts) > 1 else None
            return
    seg = unquote(tail.strip("/").split("/")[0])
    route.segment = seg
    route.error = _not_implemented(seg) if seg in FUTURE_SEGMENTS else _segment_error(seg)


def parse_route(method, raw):
    """raw: request path after '/v1.0' (still percent-encoded)."""
    if raw in ("/me", "/me/"):
        return GraphRoute("me", method)
    if raw in ("/me/drives", "/me/drives/"):
        return GraphRoute("drives", method)
    m = _DRIVE_PREFIX.match(raw)
    if not m:
        seg = raw.strip("/").split("/")[0] if raw.strip("/") else ""
        return GraphRoute("unknown", method, error=_segment_error(unquote(seg)))
    drive_ref = unquote(m.group(1)) if m.group(1) else None
    rest = raw[m.end():]
    if rest in ("", "/"):
        return GraphRoute("drive", method, drive_ref)
    m = _ITEM_BASE.match(rest)
    if not m:
        seg = unquote(rest.strip("/").split("/")[0].split(":")[0])
        err = _not_implemented(seg) if seg in FUTURE_SEGMENTS else _segment_error(seg)
        return GraphRoute("unknown", method, drive_ref, error=err)
    base = "root" if m.group(1) == "root" else unquote(m.group(2))
    tail = rest[m.end():]
    route = GraphRoute("item", method, drive_ref, base)
    try:
        if tail.startswith(":"):
            tail = tail[1:]
            cut = tail.find(":")
            if cut == -1:
                ptxt, tail = tail, ""
            else:
                ptxt, tail = tail[:cut], tail[cut + 1:]
            route.path = _split_path(ptxt)
    except GraphError as e:
        route.error = e
        return route
    if tail in ("", "/"):
        return route
    _parse_op(route, tail)
    return route


def _tag_matches(header, item):
    """If-None-Match against the item's eTag or cTag.  Tags contain a comma
    ("{GUID},N"), so the header is compared as one value (or "*")."""
    if not header:
        return False
    h = header.strip()
    return h == "*" or h in (item.etag, item.ctag)


class GraphApi:
    def __init__(self, fake):
        self.fake = fake

    # ------------------------------------------------------------ dispatch
    def handle(self, req, route):
        fake = self.fake
        with fake.lock:
            token = fake.identity.authenticate(req)
            if route.error is not None:
                raise route.error
            if route.kind != "item":
                if req.method not in READ_METHODS:
                    raise self._method_error(req, ("GET",))
                if route.kind == "me":
                    return graph_json(req, dict({"@odata.context": fake.graph_url + "/$metadata#users/$entity"},
                                                **render.user_json(fake.drive)))
                self._need_files_scope(token)
                if route.kind == "drives":
                    return graph_json(req, {"@odata.context": fake.graph_url + "/$metadata#drives",
                                            "value": [render.drive_json(fake.drive, fake.url)]})
                self._check_drive(route)
                return graph_json(req, dict({"@odata.context": fake.graph_url + "/$metadata#drives/$entity"},
                                            **render.drive_json(fake.drive, fake.url)))
            if req.oversize is not None and route.op != "content":
                raise GraphError(413, "requestTooLarge", "The request body is too large.")
            allowed = ITEM_OPS[route.op]
            method = "GET" if req.method == "HEAD" else req.method
            if method not in allowed:
                if (route.op, method) in FUTURE_METHODS:
                    raise _not_implemented("%s %s" % (req.method, route.op or "item"))
                raise self._method_error(req, allowed)
            self._need_files_scope(token)
            if method != "GET":
                self._need_write_scope(token)
            self._check_drive(route)
            if method == "GET":
                return self._read(req, route)
            return fake.writes.dispatch(req, route, method)

    @staticmethod
    def _method_error(req, allowed):
        allow = ", ".join(allowed + (("HEAD",) if "GET" in allowed else ()))
        return GraphError(405, "BadRequest",
                          "The HTTP method '%s' is not supported for this resource." % req.method,
                          headers=[("Allow", allow)])

    def _read(self, req, route):
        if route.op == "delta":
            return self.fake.delta.handle(req, route, self._resolve(route))
        item = self._resolve(route)
        if route.op is None:
            return self._get_item(req, item)
        if route.op == "children":
            return self._children(req, item)
        if route.op == "content":
            return self._content(req, item)
        return self.fake.versions.handle(req, route, item, "GET")

    @staticmethod
    def _need_write_scope(token):
        if not Identity.has_write_scope(token):
            raise GraphError(403, "accessDenied", "Access denied", inner_code="accessRestricted")

    @staticmethod
    def _need_files_scope(token):
        if not Identity.has_drive_scope(token):
            raise GraphError(403, "accessDenied", "Access denied",
                             inner_code="accessRestricted")

    def _check_drive(self, route):
        if route.drive_ref is not None and not self.fake.drive.matches_drive_id(route.drive_ref):
            raise GraphError(404, "itemNotFound", "Item not found")

    def item_context(self):
        fake = self.fake
        return "%s/$metadata#drives('%s')/items/$entity" % (fake.graph_url,
                                                            quote(fake.drive.drive_id.lower(), safe=""))

    def item_body(self, req, item, select=None):
        """A driveItem response body as GET item renders it."""
        fake = self.fake
        body = {"@odata.context": self.item_context()}
        body.update(render.item_json(fake.drive, item, fake.url, fake.download_url, select))
        return body

    def _resolve(self, route):
        drive = self.fake.drive
        base = drive.get(route.base)
        if base is None:
            raise GraphError(404, "itemNotFound", "Item not found")
        if route.path:
            item = drive.resolve(base, route.path)
            if item is None:
                raise GraphError(404, "itemNotFound", "The resource could not be found.")
            return item
        return base

    def select(self, req):
        sel = req.qget("$select")
        if sel is None:
            sel = req.qget("select")
        return render.parse_select(sel), sel

    # -------------------------------------------------------------- routes
    def _get_item(self, req, item):
        if _tag_matches(req.header("If-None-Match"), item):
            return graph_empty(req, 304, [("ETag", item.etag)])
        select, _ = self.select(req)
        return graph_json(req, self.item_body(req, item, select), headers=[("ETag", item.etag)])

    def page_size(self, req):
        raw = req.qget("$top")
        if raw is None:
            raw = req.qget("top")
        if raw is None:
            return self.fake.config.page_size
        try:
            n = int(raw)
        except ValueError:
            raise GraphError(400, "invalidRequest", "Invalid value '%s' for query option $top." % raw,
                             inner_code="invalidQueryOption")
        if n < 1 or n > MAX_TOP:
            raise GraphError(400, "invalidRequest",
                             "The $top query option must be between 1 and %d." % MAX_TOP,
                             inner_code="invalidQueryOption")
        return n

    def _children(self, req, folder):
        fake = self.fake
        if _tag_matches(req.header("If-None-Match"), folder):
            return graph_empty(req, 304, [("ETag", folder.etag)])
        select, raw_select = self.select(req)
        top = self.page_size(req)
        offset = 0
        skip = req.qget("$skiptoken")
        if skip is not None:
            st = fake.sealer.unseal_json("skiptoken", skip)
            if not st or st.get("f") != folder.id:
                raise GraphError(400, "invalidRequest", "The skip token is invalid.",
                                 inner_code="invalidQueryOption")
            offset = int(st["o"])
        kids = folder.kids if folder.is_folder else []
        page = kids[offset:offset + top]
        ctx = "%s/$metadata#drives('%s')/items('%s')/children" % (
            fake.graph_url, quote(fake.drive.drive_id.lower(), safe=""), quote(folder.id, safe=""))
        if raw_select:
            ctx += "(%s)" % raw_select
        body = {"@odata.context": ctx,
                "value": [render.item_json(fake.drive, it, fake.url, fake.download_url, select) for it in page]}
        if offset + top < len(kids):
            token = fake.sealer.seal_json("skiptoken", {"f": folder.id, "o": offset + top,
                                                        "n": util.random_hex(4)})
            body["@odata.nextLink"] = self._next_link(req, token)
        return graph_json(req, body)

    def _next_link(self, req, token):
        kept = [p for p in req.query_string.split("&")
                if p and unquote(p.split("=", 1)[0]) != "$skiptoken"]
        kept.append("$skiptoken=" + token)
        return "%s%s?%s" % (self.fake.url, req.path, "&".join(kept))

    def _content(self, req, item):
        if item.is_folder:
            raise GraphError(404, "itemNotFound", "The item does not have content.")
        if _tag_matches(req.header("If-None-Match"), item):
            return graph_empty(req, 304, [("ETag", item.etag)])
        return graph_empty(req, 302, [("Location", self.fake.download_url(item))])
