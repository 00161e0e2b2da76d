"""Microsoft Graph v1.0 drive routes (graph-notes sections 3, 4, 7).

parse_route() turns the raw (percent-encoded) path after /v1.0 into a
GraphRoute without touching state, so the stats/fault label is known before
authentication; GraphApi.handle() authenticates and dispatches.

Addressing: /me, /me/drive, /me/drives, /drives/{id}, /users/{id|upn}/drive,
/sites/{site-id}/drive (also /sites/{hostname}:/{server-relative-path}:/drive),
and below a drive root | items/{id} | items/root, optionally followed by a path
:/a/b[:] (segments percent-decoded one by one, case-insensitive) and an
operation (after a path: ':/children'): /children (GET, POST = create
folder), /content (GET, PUT), /createUploadSession, /permanentDelete,
/delta (also delta(token='...')), /versions[/{id}[/content|/restoreVersion]];
the item itself takes GET, PATCH and DELETE.  Write routes live in
writes.py, upload.py, versions.py, delta.py.  Metadata segments are
case-sensitive.  Segments of the real API not implemented yet answer 501
notSupported (never a fake success); other methods 405.  Writes need a
Files.ReadWrite* scope (403 accessDenied otherwise).

Other resources (directory.py): /users/{id|upn}, /me|users/{id}/drives,
/sites/{site-id}, /sites/{hostname}:/{path}, /sites/{id}/drives,
POST /me|users/{id}/revokeSignInSessions.

Who may use which drive (GraphApi._access): app-only tokens never use /me
(400 BadRequest "/me request is only valid with delegated authentication
flow.") and need a Files.*.All / Sites.*.All role for any drive (403
accessDenied); a delegated token uses its own drive with any Files.*
scope, SharePoint libraries (work accounts only; personal accounts get 400
BadRequest "Tenant does not have a SPO license.") with Files.*.All or
Sites.*, and another user's drive only inside a folder shared with it
(fake.share; personal: any Files.* scope, work: Files.*.All) - anything
else there is 403 accessDenied, and so is a write into a read-only share.

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
    "thumbnails", "permissions", "invite", "preview", "checkin", "checkout",
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
    "copy": ("POST",),
    "createLink": ("POST",),
}
# real-API method/op pairs not implemented yet (501 rather than 405)
FUTURE_METHODS = {(None, "PUT"), ("version", "DELETE")}
READ_METHODS = ("GET", "HEAD")
MAX_TOP = 1000

_DRIVE_PREFIX = re.compile(r"^/(?:(me)/drive|drives/([^/:]+)|users/([^/:]+)/drive|sites/([^/:]+)/drive)(?=/|$)")
_SITE_PATH = re.compile(r"^/sites/([^/:]+):(/[^:]*)(?::(.*))?$")
_OWNER_OP = re.compile(r"^/(?:(me)|users/([^/:]+))/(drives|revokeSignInSessions)/?$")
_USER = re.compile(r"^/users/([^/:]+)/?$")
_SITE = re.compile(r"^/sites/([^/:]+)(/drives)?/?$")
SITE_BY_PATH = "\x00path"         # owner ref of a /sites/{host}:/{path} route
_ITEM_BASE = re.compile(r"^/(root|items/([^/:]+))(?=[/:]|$)")
_DELTA_FN = re.compile(r"^/delta\((?:token='([^']*)')?\)$")
_SIMPLE_OPS = ("children", "content", "createUploadSession", "permanentDelete", "delta", "copy", "createLink")


class GraphRoute:
    def __init__(self, kind, method, drive_ref=None, base=None, path=None, op=None, error=None,
                 segment=None, owner=("me", None)):
        self.kind = kind            # me | drives | drive | item | user | site | revoke | unknown
        self.method = method
        self.drive_ref = drive_ref  # None = /me/drive, else raw drive id
        self.owner = owner          # ("me"|"drive"|"user"|"site", decoded ref or None)
        self.site_path = None       # (hostname, path) of /sites/{host}:/{path}
        self.drive = None           # the Drive, once resolved by GraphApi.handle
        self.share_user = None      # set when access rests on a share (writes check targets)
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
        if self.kind in ("me", "drive", "drives", "user", "site"):
            return "%s %s" % (self.method, self.kind)
        if self.kind == "revoke":
            return "%s revokeSignInSessions" % self.method
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
    site_path = None
    m = _SITE_PATH.match(raw)
    if m:
        try:
            site_path = (unquote(m.group(1)), unquote(m.group(2), errors="strict"))
        except UnicodeDecodeError:
            return GraphRoute("unknown", method, error=GraphError(400, "invalidRequest", "Invalid site path."))
        raw = "/sites/%s%s" % (quote(SITE_BY_PATH, safe=""), m.group(3) or "")
    route = _parse_owned(method, raw)
    route.site_path = site_path
    return route


def _owner(m):
    me, drive_id, user, site = m.groups()
    if me:
        return ("me", None)
    if drive_id is not None:
        return ("drive", unquote(drive_id))
    if user is not None:
        return ("user", unquote(user))
    return ("site", unquote(site))


def _parse_owned(method, raw):
    m = _OWNER_OP.match(raw)
    if m:
        owner = ("me", None) if m.group(1) else ("user", unquote(m.group(2)))
        return GraphRoute("drives" if m.group(3) == "drives" else "revoke", method, owner=owner)
    m = _USER.match(raw)
    if m:
        return GraphRoute("user", method, owner=("user", unquote(m.group(1))))
    m = _SITE.match(raw)
    if m:
        return GraphRoute("drives" if m.group(2) else "site", method, owner=("site", unquote(m.group(1))))
    m = _DRIVE_PREFIX.match(raw)
    if not m:
        seg = raw.strip("/").split("/")[0] if raw.strip("/") else ""
        return GraphRoute("unknown", method, error=_segment_error(unquote(seg)))
    owner = _owner(m)
    drive_ref = owner[1] if owner[0] == "drive" else None
    rest = raw[m.end():]
    if rest in ("", "/"):
        return GraphRoute("drive", method, drive_ref, owner=owner)
    m = _ITEM_BASE.match(rest)
    if not m:
        seg = unquote(rest.strip("/").split("/")[0].split(":")[0])
        err = _not_implemented(seg) if seg in FUTURE_SEGMENTS else _segment_error(seg)
        return GraphRoute("unknown", method, drive_ref, error=err, owner=owner)
    base = "root" if m.group(1) == "root" else unquote(m.group(2))
    tail = rest[m.end():]
    route = GraphRoute("item", method, drive_ref, base, owner=owner)
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
            user = None if token.get("app") else fake.user_by_id(token["user_id"])
            if route.owner[0] == "me" and user is None:
                raise GraphError(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
            if route.kind == "revoke":
                return fake.directory.revoke(req, route, token, user)
            if route.kind != "item":
                if req.method not in READ_METHODS:
                    raise self._method_error(req, ("GET",))
                if route.kind == "me":
                    return graph_json(req, dict({"@odata.context": fake.graph_url + "/$metadata#users/$entity"},
                                                **render.user_json(user)))
                if route.kind in ("user", "site") or (route.kind == "drives" and route.owner[0] != "me"):
                    return fake.directory.handle(req, route, token, user)
                self._need_files_scope(token)
                if route.kind == "drives":
                    return graph_json(req, {"@odata.context": fake.graph_url + "/$metadata#drives",
                                            "value": [render.drive_json(user.drive, fake.url)]})
                drive = self.route_drive(route, token, user)
                access = self._access(token, user, drive, False)
                if access == "share" and not any(sh.grantee is user and sh.item.drive is drive
                                                 for sh in fake.shares):
                    raise GraphError(403, "accessDenied", "Access denied")
                return graph_json(req, dict({"@odata.context": fake.graph_url + "/$metadata#drives/$entity"},
                                            **render.drive_json(drive, fake.url, quota=access != "share")))
            if req.oversize is not None and route.op != "content":
                raise GraphError(413, "requestTooLarge", "The request body is too large.")
            allowed = ITEM_OPS[route.op]
            method = "GET" if req.method == "HEAD" else req.method
            if method not in allowed:
                if (route.op, method) in FUTURE_METHODS:
                    raise _not_implemented("%s %s" % (req.method, route.op or "item"))
                raise self._method_error(req, allowed)
            drive = self.route_drive(route, token, user)
            route.drive = drive
            if self._access(token, user, drive, method != "GET") == "share":
                self._check_share(route, user, method != "GET")
            if method == "GET":
                return self._read(req, route)
            return fake.writes.dispatch(req, route, method)

    # -------------------------------------------------------------- access
    def route_drive(self, route, token, user):
        """The Drive a drive/item route addresses (404 if none)."""
        fake = self.fake
        kind, ref = route.owner
        if kind == "me":
            return user.drive
        if kind == "user":
            u = fake.directory.find_user(ref, token)
            if user is not None and u is not user:
                raise GraphError(403, "accessDenied", "Access denied")
            return u.drive
        if kind == "site":
            site = fake.directory.find_site(route, token, user)
            if not site.drives:
                raise GraphError(404, "itemNotFound", "The site has no document library.")
            return site.drives[0]
        drive = fake.drive_by_id(ref)
        if drive is None:
            raise GraphError(404, "itemNotFound", "Item not found")
        return drive

    def _access(self, token, user, drive, write):
        """'own', 'all' or 'share' (item-level check still due), or raise
        403 accessDenied for a missing scope/role."""
        ident = self.fake.identity
        if user is None:
            if not ident.has_all_scope(token, write):
                raise GraphError(403, "accessDenied", "Access denied", inner_code="accessRestricted")
            return "all"
        if drive is user.drive:
            self._need_files_scope(token)
            if write:
                self._need_write_scope(token)
            return "own"
        if drive.kind == "documentLibrary":
            if not user.is_business:
                raise GraphError(400, "BadRequest", "Tenant does not have a SPO license.")
            ok = ident.has_all_scope(token, write) or (not write and ident.has_sites_scope(token))
            if not ok:
                raise GraphError(403, "accessDenied", "Access denied", inner_code="accessRestricted")
            return "all"
        ok = ident.has_all_scope(token, write) if user.is_business else \
            (ident.has_drive_scope(token) and (not write or ident.has_write_scope(token)))
        if not ok:
            raise GraphError(403, "accessDenied", "Access denied", inner_code="accessRestricted")
        return "share"

    def _check_share(self, route, user, write):
        """Item-level access to another user's drive: the addressed item (or
        the deepest existing item of its path) must be inside a folder
        shared with user; writes need a read-write share."""
        drive = route.drive
        item = drive.get(route.base)
        if item is None:
            raise GraphError(404, "itemNotFound", "Item not found")
        for name in route.path or ():
            nxt = drive.child(item, name)
            if nxt is None:
                break
            item = nxt
        share = self.fake.share_for(user, item)
        if share is None or (write and not share.writable):
            raise GraphError(403, "accessDenied", "Access denied")
        route.share_user = user

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

    def item_context(self, drive):
        return "%s/$metadata#drives('%s')/items/$entity" % (self.fake.graph_url, quote(drive.drive_id.lower(), safe=""))

    def item_body(self, req, item, select=None):
        """A driveItem response body as GET item renders it."""
        fake = self.fake
        body = {"@odata.context": self.item_context(item.drive)}
        body.update(render.item_json(item.drive, item, fake.url, fake.download_url, select))
        return body

    def _resolve(self, route):
        drive = route.drive
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
            fake.graph_url, quote(folder.drive.drive_id.lower(), safe=""), quote(folder.id, safe=""))
        if raw_select:
            ctx += "(%s)" % raw_select
        body = {"@odata.context": ctx,
                "value": [render.item_json(folder.drive, it, fake.url, fake.download_url, select) for it in page]}
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
        if item.is_folder or item.remote is not None:
            raise GraphError(404, "itemNotFound", "The item does not have content.")
        if _tag_matches(req.header("If-None-Match"), item):
            return graph_empty(req, 304, [("ETag", item.etag)])
        return graph_empty(req, 302, [("Location", self.fake.download_url(item))])
