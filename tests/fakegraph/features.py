"""Server-side copy with a monitor, and sharing links (graph-notes 8; createLink).

  POST .../items/{id}/copy[?@microsoft.graph.conflictBehavior=fail|replace|rename]
       {"parentReference": {"driveId"?, "id"}, "name"?}
       -> 202 Accepted, empty body, Location: {url}/_monitor/{token}
  GET  {url}/_monitor/{token}   (pre-authenticated: no Authorization)
       -> 202 {"operation": "ItemCopy", "percentageComplete": 50.0, "status": "inProgress"}
          while config.copy_polls_in_progress polls remain (default 1), then
          202 {"percentageComplete": 100.0, "resourceId": NEWID, "status": "completed"}
  POST .../items/{id}/createLink {"type": "view"|"edit"|"embed", "scope"?, "expirationDateTime"?}
       -> 201 permission {"id", "roles": [...], "link": {"type", "scope", "webUrl",
          "application"}, "expirationDateTime"?}; the same (type, scope) again -> 200, same link

The copy itself happens at POST time (the monitor only reports it), files
share their content objects (immutable), folders are copied recursively.
Without a conflictBehavior (the documented default, and what consumer
OneDrive always does) an existing name is 409 nameAlreadyExists.  A copy to
another drive is 400.  A request to a monitor URL that carries an
Authorization header is answered 401 and recorded in stats.auth_violations.
Requests: "POST copy", "GET monitor", "POST createLink".
"""

import threading
import uuid

from . import util
from .drive import NameConflict, QuotaExceeded
from .web import GraphError, graph_empty, graph_json
from .writes import conflict_behavior, invalid, json_body, model_error, name_exists
from . import naming


class Features:
    def __init__(self, fake):
        self.fake = fake
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self.monitors = {}      # token -> {"polls": n, "resource": new item id}
            self.links = {}         # (item id, type, scope) -> permission json
            self.copies = []        # {"source", "target", "name"} per accepted copy (tests)

    # ---------------------------------------------------------------- copy
    def copy(self, req, route, item):
        fake = self.fake
        drive = route.drive
        body = json_body(req, required=False) or {}
        if not isinstance(body, dict):
            raise invalid("The request body must be an object.")
        if item.parent is None:
            raise invalid("The root folder cannot be copied.")
        if item.remote is not None:
            raise invalid("A shortcut cannot be copied.")
        pref = body.get("parentReference")
        parent = item.parent if pref is None else fake.writes._target_parent(pref, drive)
        if not parent.is_folder:
            raise invalid("The target parent is not a folder.")
        name = body.get("name", item.name)
        if not isinstance(name, str) or not name:
            raise invalid("name must be a non-empty string.")
        behavior = conflict_behavior(req, {}, "fail")
        if parent is item or any(a is item for a in parent.ancestors()):
            raise invalid("An item cannot be copied into itself.")
        try:
            existing = drive.child(parent, name)
            if existing is not None:
                if behavior == "fail":
                    raise name_exists()
                if behavior == "rename":
                    name = drive.unique_name(parent, name)
                else:
                    drive.delete(existing)
            naming.validate_name(name)
            drive.check_quota(self._tree_size(item), creating=True)
            new = self._clone(drive, item, parent, name)
        except (naming.InvalidName, NameConflict, QuotaExceeded) as e:
            raise model_error(e)
        token = uuid.uuid4().hex
        with self._lock:
            self.monitors[token] = {"polls": fake.config.copy_polls_in_progress, "resource": new.id}
            self.copies.append({"source": item.id, "target": new.id, "name": name})
        return graph_empty(req, 202, [("Location", "%s/_monitor/%s" % (fake.url, token))])

    def _tree_size(self, item):
        if not item.is_folder:
            return item.size
        return sum(self._tree_size(k) for k in item.kids)

    def _clone(self, drive, item, parent, name):
        if item.is_folder:
            new = drive.add_folder(parent, name, item.fs_modified, item.fs_created)
            for kid in list(item.kids):
                if kid.remote is None:
                    self._clone(drive, kid, new, kid.name)
            return new
        # the service does not keep fileSystemInfo times on a copy (graph-notes 8)
        return drive.add_file(parent, name, item.content)

    def monitor(self, req, token):
        fake = self.fake
        if req.header("Authorization") is not None:
            fake.counters.violation(req, "Authorization header sent to a copy monitor URL")
            raise GraphError(401, "unauthenticated", "Unauthenticated")
        with self._lock:
            m = self.monitors.get(token)
            if m is None:
                raise GraphError(404, "itemNotFound", "The monitor was not found.")
            if m["polls"] > 0:
                m["polls"] -= 1
                body = {"operation": "ItemCopy", "percentageComplete": 50.0, "status": "inProgress"}
            else:
                body = {"percentageComplete": 100.0, "resourceId": m["resource"], "status": "completed"}
        return graph_json(req, body, 202)

    # ---------------------------------------------------------- createLink
    def create_link(self, req, route, item):
        fake = self.fake
        body = json_body(req)
        if not isinstance(body, dict):
            raise invalid("The request body must be an object.")
        kind = body.get("type")
        if kind not in ("view", "edit", "embed"):
            raise invalid("type must be view, edit or embed.")
        if kind == "embed" and route.drive.business:
            raise invalid("Embed links are only available on OneDrive personal.")
        scope = body.get("scope", "anonymous")
        if scope not in ("anonymous", "organization", "users"):
            raise invalid("scope must be anonymous, organization or users.")
        if scope == "organization" and not route.drive.business:
            raise invalid("Organization links are not available on OneDrive personal.")
        expiry = body.get("expirationDateTime")
        if expiry is not None:
            try:
                if not isinstance(expiry, str) or util.parse_iso(expiry) <= util.now():
                    raise ValueError
            except (ValueError, TypeError, OverflowError):
                raise invalid("Invalid expirationDateTime '%s'." % expiry)
        key = (item.id, kind, scope)
        with self._lock:
            perm = self.links.get(key)
            status = 200
            if perm is None:
                token = uuid.uuid4().hex[:22]
                perm = {"id": uuid.uuid4().hex, "roles": ["write" if kind == "edit" else "read"],
                        "shareId": "s!" + token,
                        "link": {"type": kind, "scope": scope, "webUrl": "%s/_share/%s" % (fake.url, token),
                                 "application": {"id": "1234", "displayName": "Sample Application"}}}
                if expiry is not None:
                    perm["expirationDateTime"] = expiry
                self.links[key] = perm
                status = 201
        return graph_json(req, dict(perm), status)

