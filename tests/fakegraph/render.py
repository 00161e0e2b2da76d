"""JSON representations (personal flavour) of driveItem, drive and user
resources, plus $select handling.  Field sets follow graph-notes 2.4 / 13.

Timestamps: service times (createdDateTime / lastModifiedDateTime) carry
milliseconds, fileSystemInfo whole seconds - clients must parse both forms.
"""

import mimetypes
from urllib.parse import quote

from . import util
from .web import GraphError

_MIME = mimetypes.MimeTypes()   # built-in table only, independent of the host

DOWNLOAD_URL = "@microsoft.graph.downloadUrl"

DRIVEITEM_PROPERTIES = [
    "audio", "bundle", "content", "createdBy", "createdByUser", "createdDateTime", "cTag",
    "deleted", "description", "eTag", "file", "fileSystemInfo", "folder", "id", "image",
    "lastModifiedBy", "lastModifiedByUser", "lastModifiedDateTime", "location", "malware",
    "name", "package", "parentReference", "pendingOperations", "photo", "publication",
    "remoteItem", "root", "searchResult", "shared", "sharepointIds", "size", "specialFolder",
    "video", "webDavUrl", "webUrl", "children", "listItem", "permissions", "subscriptions",
    "thumbnails", "versions", "analytics", "retentionLabel", "workbook", DOWNLOAD_URL,
]
_CANON = {p.lower(): p for p in DRIVEITEM_PROPERTIES}

# pchar minus the characters the service percent-encodes in paths
_PATH_SAFE = "!$&'()*+,;=:@"


def quote_segment(name):
    return quote(name, safe=_PATH_SAFE)


def parse_select(raw):
    """$select value -> set of canonical property names (None = all)."""
    if raw is None:
        return None
    out = set()
    for part in raw.split(","):
        p = part.strip()
        if not p:
            continue
        canon = _CANON.get(p.lower())
        if canon is None:
            raise GraphError(400, "BadRequest",
                             "Could not find a property named '%s' on type 'microsoft.graph.driveItem'." % p)
        out.add(canon)
    return out


def mime_type(name):
    t, _ = _MIME.guess_type(name, strict=False)
    return t or "application/octet-stream"


def identity_set(drive):
    return {"user": {"displayName": drive.owner_name, "id": drive.user_id}}


def parent_reference(drive, item):
    ref = {"driveId": drive.drive_id, "driveType": "personal"}
    parent = item.parent
    if parent is None:
        return ref
    ref["id"] = parent.id
    ref["name"] = parent.name
    names = drive.path_names(parent)
    ref["path"] = "/drive/root:" + "".join("/" + quote_segment(n) for n in names)
    return ref


def item_json(drive, item, base_url, download_url=None, select=None):
    """driveItem dict.  download_url: callable(item) -> URL for files.
    select: set of properties (None = default representation)."""
    def want(k):
        return select is None or k in select

    d = {}
    if not item.is_folder and download_url is not None and \
            (select is None or DOWNLOAD_URL in select):
        d[DOWNLOAD_URL] = download_url(item)
    if want("createdBy"):
        d["createdBy"] = identity_set(drive)
    if want("createdDateTime"):
        d["createdDateTime"] = util.iso_millis(item.created)
    if want("cTag"):
        d["cTag"] = item.ctag
    if want("eTag"):
        d["eTag"] = item.etag
    d["id"] = item.id
    if want("lastModifiedBy"):
        d["lastModifiedBy"] = identity_set(drive)
    if want("lastModifiedDateTime"):
        d["lastModifiedDateTime"] = util.iso_millis(item.modified)
    if want("name"):
        d["name"] = item.name
    if want("parentReference"):
        d["parentReference"] = parent_reference(drive, item)
    if want("size"):
        d["size"] = item.size
    if want("webUrl"):
        d["webUrl"] = "%s/_web/?cid=%s&id=%s" % (base_url, drive.user_id, quote(item.id, safe=""))
    if item.is_folder:
        if want("folder"):
            d["folder"] = {"childCount": item.child_count,
                           "view": {"viewType": "thumbnails", "sortBy": "name", "sortOrder": "ascending"}}
    elif want("file"):
        d["file"] = {"mimeType": mime_type(item.name),
                     "hashes": {"quickXorHash": item.content.quickxorhash()}}
    if want("fileSystemInfo"):
        d["fileSystemInfo"] = {"createdDateTime": util.iso_seconds(item.fs_created),
                               "lastModifiedDateTime": util.iso_seconds(item.fs_modified)}
    if item.parent is None and want("root"):
        d["root"] = {}
    return d


def drive_json(drive, base_url):
    return {
        "id": drive.drive_id,
        "driveType": "personal",
        "name": "OneDrive",
        "createdDateTime": util.iso_millis(drive.created),
        "lastModifiedDateTime": util.iso_millis(drive.root.modified),
        "webUrl": "%s/_web/?cid=%s" % (base_url, drive.user_id),
        "owner": {"user": {"displayName": drive.owner_name, "id": drive.user_id}},
        "quota": drive.quota(),
    }


def user_json(drive):
    given, _, sur = drive.owner_name.partition(" ")
    return {
        "businessPhones": [],
        "displayName": drive.owner_name,
        "givenName": given,
        "jobTitle": None,
        "mail": drive.owner_email,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
        "surname": sur or None,
        "userPrincipalName": drive.owner_email,
        "id": drive.user_id,
    }
