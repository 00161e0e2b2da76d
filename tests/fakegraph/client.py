"""A tiny Graph client for tests: "another device" changing the drive
through the real API (so eTags, versions, delta and quota behave exactly as
for any client).  Standard library (http.client) only.

    other = fake.client()                     # its own access token
    bob = fake.client(user="bob", drive="bob")   # another account, addressing /drives/{id}
    other.mkdir("/Docs")                      # or mkdir(parent_id, "Docs")
    item = other.put_content("/Docs/a.txt", data=b"hello")      # simple PUT (replace)
    other.put_content(parent_id, "b.txt", b"x", conflict="rename")
    other.upload("/Docs/big.bin", data=big, chunk=10 * 1024 * 1024)   # upload session
    other.rename("/Docs/a.txt", "c.txt"); other.move(item["id"], "/Other", "d.txt")
    other.set_times("/Docs/c.txt", mtime=1700000000)
    other.delete("/Docs"); other.permanent_delete(item_id)
    other.get("/Docs/c.txt"); other.children("/Docs"); other.get_content("/Docs/c.txt")
    items, link = other.delta(); items, link = other.delta(link)

A target is a path when it starts with "/" ("/" = the root), otherwise an
item id.  Methods return the parsed JSON (None for 204) and raise
ClientError(status, code, body) on an error status.  Requests carry the
X-Fakegraph-Peer header: they bypass fault injection and latency and are
not counted in the stats of the client under test (only in peer_requests).
Upload and download URLs are used without Authorization, as required.
While the fake is down (FakeGraph.go_down) requests are answered in process
(FakeGraph.serve_local): "another device" still reaches the service.
"""

import http.client
import json
from urllib.parse import quote, urlsplit

from . import util

PEER_HEADER = "X-Fakegraph-Peer"


class ClientError(Exception):
    def __init__(self, status, code, body):
        super().__init__("HTTP %d %s" % (status, code))
        self.status = status
        self.code = code
        self.body = body


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body.decode("utf-8")) if self.body else None


def _iso(t):
    if t is None or isinstance(t, str):
        return t
    return util.iso_seconds(t)


class GraphClient:
    FRAGMENT = 10 * 1024 * 1024          # a multiple of 320 KiB

    def __init__(self, fake, token, base=None):
        self.fake = fake
        self.token = token
        self.base = base or "/me/drive"   # or "/drives/{id}"

    # ------------------------------------------------------------ plumbing
    def request(self, method, url, body=None, headers=None, auth=True):
        """One request; url is absolute or a path below /v1.0.  Returns a
        Reply for any status (no redirects are followed)."""
        if not url.startswith("http"):
            url = self.fake.graph_url + url
        parts = urlsplit(url)
        h = {PEER_HEADER: "1"}
        if auth:
            h["Authorization"] = "Bearer " + self.token
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode("utf-8")
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        if self.fake.is_down():      # the outage is on the client under test's side, not ours
            status, hdrs, data = self.fake.serve_local(method, parts.path + ("?" + parts.query if parts.query
                                                                             else ""), h, body)
            return Reply(status, {k.lower(): v for k, v in hdrs}, data)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        try:
            conn.request(method, parts.path + ("?" + parts.query if parts.query else ""), body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

    def call(self, method, url, body=None, headers=None, auth=True):
        r = self.request(method, url, body, headers, auth)
        if r.status >= 400:
            code = None
            try:
                code = r.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                pass
            raise ClientError(r.status, code, r.body)
        return r

    def addr(self, target):
        """API address of a path ("/a/b") or an item id."""
        if target.startswith("/"):
            segs = [quote(s, safe="") for s in target.strip("/").split("/") if s]
            return self.base + "/root" + (":/" + "/".join(segs) + ":" if segs else "")
        return self.base + "/items/" + quote(target, safe="!")

    def _child_addr(self, parent, name):
        if parent.startswith("/"):
            return self.addr(parent.rstrip("/") + "/" + name)
        return self.base + "/items/%s:/%s:" % (quote(parent, safe="!"), quote(name, safe=""))

    @staticmethod
    def _split(target, name):
        if name is not None:
            return target, name
        parent, _, leaf = target.rstrip("/").rpartition("/")
        return parent or "/", leaf

    # --------------------------------------------------------------- reads
    def get(self, target):
        return self.call("GET", self.addr(target)).json()

    def children(self, target):
        out = []
        url = self.addr(target) + "/children"
        while url:
            j = self.call("GET", url).json()
            out += j["value"]
            url = j.get("@odata.nextLink")
        return out

    def get_content(self, target):
        r = self.call("GET", self.addr(target) + "/content")
        return self.call("GET", r.header("location"), auth=False).body

    def versions(self, target):
        return self.call("GET", self.addr(target) + "/versions").json()["value"]

    def delta(self, link=None):
        """Follow one whole delta round: (items, deltaLink)."""
        url = link or self.base + "/root/delta"
        items = []
        while True:
            j = self.call("GET", url).json()
            items += j["value"]
            if "@odata.deltaLink" in j:
                return items, j["@odata.deltaLink"]
            url = j["@odata.nextLink"]

    # -------------------------------------------------------------- writes
    def mkdir(self, path_or_parent, name=None, conflict=None):
        parent, name = self._split(path_or_parent, name)
        body = {"name": name, "folder": {}}
        if conflict:
            body["@microsoft.graph.conflictBehavior"] = conflict
        return self.call("POST", self.addr(parent) + "/children", body).json()

    def put_content(self, path_or_parent, name=None, data=b"", conflict=None, if_match=None):
        """Simple upload (create or replace by name)."""
        parent, name = self._split(path_or_parent, name)
        url = self._child_addr(parent, name) + "/content"
        if conflict:
            url += "?@microsoft.graph.conflictBehavior=" + conflict
        h = {"Content-Type": "application/octet-stream"}
        if if_match:
            h["If-Match"] = if_match
        return self.call("PUT", url, bytes(data), h).json()

    def upload(self, path_or_parent, name=None, data=b"", chunk=None, conflict=None, mtime=None, ctime=None):
        """Upload through an upload session (data must not be empty)."""
        parent, name = self._split(path_or_parent, name)
        item = {"name": name}
        if conflict:
            item["@microsoft.graph.conflictBehavior"] = conflict
        fs = {k: _iso(v) for k, v in (("createdDateTime", ctime), ("lastModifiedDateTime", mtime)) if v is not None}
        if fs:
            item["fileSystemInfo"] = fs
        sess = self.call("POST", self._child_addr(parent, name) + "/createUploadSession", {"item": item}).json()
        chunk = chunk or self.FRAGMENT
        total = len(data)
        pos = 0
        while True:
            part = data[pos:pos + chunk]
            r = self.call("PUT", sess["uploadUrl"], bytes(part),
                          {"Content-Range": "bytes %d-%d/%d" % (pos, pos + len(part) - 1, total)}, auth=False)
            pos += len(part)
            if pos >= total:
                return r.json()

    def rename(self, target, new_name):
        return self.call("PATCH", self.addr(target), {"name": new_name}).json()

    def move(self, target, new_parent, new_name=None):
        pid = new_parent if not new_parent.startswith("/") else self.get(new_parent)["id"]
        body = {"parentReference": {"id": pid}}
        if new_name is not None:
            body["name"] = new_name
        return self.call("PATCH", self.addr(target), body).json()

    def set_times(self, target, mtime=None, ctime=None):
        fs = {k: _iso(v) for k, v in (("createdDateTime", ctime), ("lastModifiedDateTime", mtime)) if v is not None}
        return self.call("PATCH", self.addr(target), {"fileSystemInfo": fs}).json()

    def delete(self, target, if_match=None):
        self.call("DELETE", self.addr(target), headers={"If-Match": if_match} if if_match else None)

    def permanent_delete(self, target):
        self.call("POST", self.addr(target) + "/permanentDelete")
