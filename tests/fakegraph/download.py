"""Pre-authenticated download URLs: {url}/_download/{token} (graph-notes 7).

The token is sealed (util.Sealer) and carries the item id, its content
version and an expiry (config.download_url_lifetime, default 1 hour), so
URLs are unguessable and stateless.  Serving rules:

* a request carrying an Authorization header is rejected with
  401 {"error":{"code":"unauthenticated"}} and recorded in
  stats.auth_violations (the service may do so; clients must strip it);
* forged/garbled token -> 401 unauthenticated; expired -> 401
  unauthenticated (inner expiredToken); item gone or content replaced since
  the URL was issued -> 404 itemNotFound (a version URL, from
  versions/{id}/content, stays valid while the item exists);
* Range: bytes=a-b | a- | -n -> 206 + Content-Range; unsatisfiable -> 416 +
  Content-Range: bytes */size; absent, multi-range or malformed -> 200 with
  the whole body (a server may ignore Range).
"""

from urllib.parse import quote

from . import util
from .web import GraphError, Response


def parse_range(header, size):
    """None (serve everything), "unsatisfiable", or (start, end) inclusive."""
    if not header:
        return None
    unit, eq, spec = header.partition("=")
    if not eq or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash:
        return None
    if first == "":
        if not last.isdigit():
            return None
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return (max(0, size - n), size - 1)
    if not first.isdigit():
        return None
    start = int(first)
    if last == "":
        end = size - 1
    elif last.isdigit():
        end = int(last)
        if end < start:
            return None
        end = min(end, size - 1)
    else:
        return None
    if start >= size:
        return "unsatisfiable"
    return (start, end)


class Downloads:
    def __init__(self, fake):
        self.fake = fake

    def url_for(self, item, version=None):
        """URL of the current content, or of version number `version`
        (1 = oldest)."""
        exp = int(util.now() + self.fake.config.download_url_lifetime)
        rec = {"d": item.drive.drive_id, "i": item.id, "e": exp}
        if version is None:
            rec["v"] = item.ctag_ver
        else:
            rec["n"] = version
        tok = self.fake.sealer.seal_json("download", rec)
        return "%s/_download/%s" % (self.fake.url, tok)

    def handle(self, req, token):
        fake = self.fake
        if req.header("Authorization") is not None:
            fake.counters.violation(req, "Authorization header sent to a pre-authenticated download URL")
            raise GraphError(401, "unauthenticated", "Unauthenticated")
        if req.method not in ("GET", "HEAD"):
            raise GraphError(405, "BadRequest", "The HTTP method '%s' is not supported." % req.method,
                             headers=[("Allow", "GET, HEAD")])
        data = fake.sealer.unseal_json("download", token)
        if not data:
            raise GraphError(401, "unauthenticated", "Unauthenticated")
        if util.now() >= data["e"]:
            raise GraphError(401, "unauthenticated", "The access token has expired.", inner_code="expiredToken")
        with fake.lock:
            drive = fake.drive_by_id(data.get("d", fake.drive.drive_id))
            item = drive.items.get(data["i"]) if drive is not None else None
            if item is None or item.is_folder or ("v" in data and item.ctag_ver != data["v"]) or \
                    ("n" in data and data["n"] > len(item.versions)):
                raise GraphError(404, "itemNotFound", "The resource could not be found.")
            content = item.content if "v" in data else item.versions[data["n"] - 1].content
            name = item.name
        size = content.size
        headers = [("Content-Type", "application/octet-stream"),
                   ("Accept-Ranges", "bytes"),
                   ("Content-Disposition", "attachment; filename*=UTF-8''%s" % quote(name, safe="")),
                   ("request-id", req.request_id)]
        rng = parse_range(req.header("Range"), size)
        if rng == "unsatisfiable":
            return Response(416, headers + [("Content-Range", "bytes */%d" % size)], b"")
        if rng is None:
            start, end, status = 0, size - 1, 200
        else:
            (start, end), status = rng, 206
            headers.append(("Content-Range", "bytes %d-%d/%d" % (start, end, size)))
        length = end - start + 1 if size else 0
        return Response(status, headers, stream=content.iter_range(start, start + length),
                        length=length, content=True)
