"""File versions (graph-notes 9), personal style.

  GET  .../items/{id}/versions                         -> 200 {"value": [driveItemVersion...]} newest first
  GET  .../items/{id}/versions/{vid}                   -> 200 driveItemVersion
  GET  .../items/{id}/versions/{vid}/content           -> 302 to a pre-authenticated URL of that version
  POST .../items/{id}/versions/{vid}/restoreVersion    -> 204 (a new current version with the old bytes)

Ids: the newest version is "current"; older ones are "<n>-<count>" (n = the
version's ordinal from the oldest, count = versions at the time), so, as on
Personal (issue #1560), older ids change whenever a version is added and a
stale id answers 404 itemNotFound.  driveItemVersion:
{"id", "lastModifiedDateTime", "size", "lastModifiedBy"}.  Folders have no
versions (400 invalidRequest).  Versions are recorded by drive.py on every
content write and every fileSystemInfo PATCH of a file.
"""

from . import render, util
from .drive import QuotaExceeded
from .web import GraphError, graph_empty, graph_json
from .writes import quota_error


def version_id(item, index):
    n = len(item.versions)
    return "current" if index == n - 1 else "%d-%d" % (index + 1, n)


def find_version(item, vid):
    """Index of version `vid` or None."""
    n = len(item.versions)
    if vid == "current":
        return n - 1
    parts = vid.split("-")
    if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit() and int(parts[1]) == n:
        i = int(parts[0]) - 1
        if 0 <= i < n - 1:
            return i
    return None


class Versions:
    def __init__(self, fake):
        self.fake = fake

    def version_json(self, item, index):
        v = item.versions[index]
        return {"id": version_id(item, index), "lastModifiedDateTime": util.iso_millis(v.modified),
                "size": v.size, "lastModifiedBy": render.identity_set(item.drive)}

    def handle(self, req, route, item, method):
        fake = self.fake
        if item.is_folder or item.remote is not None:
            raise GraphError(400, "invalidRequest", "Versions are only available for files.")
        if route.op == "versions":
            ctx = "%s/$metadata#drives('%s')/items('%s')/versions" % (
                fake.graph_url, item.drive.drive_id.lower(), item.id)
            value = [self.version_json(item, i) for i in range(len(item.versions) - 1, -1, -1)]
            return graph_json(req, {"@odata.context": ctx, "value": value})
        i = find_version(item, route.version_id)
        if i is None:
            raise GraphError(404, "itemNotFound", "The requested version was not found.")
        if route.op == "version":
            return graph_json(req, self.version_json(item, i))
        if route.op == "versionContent":
            return graph_empty(req, 302, [("Location", fake.downloads.url_for(item, version=i + 1))])
        content = item.versions[i].content
        try:
            item.drive.replace_content(item, content)
        except QuotaExceeded:
            raise quota_error()
        return graph_empty(req, 204)
