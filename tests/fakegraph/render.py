"""JSON representations of driveItem, drive, user and site resources, plus
$select handling.  Field sets follow graph-notes 2.4 / 2.5 / 13.

Personal vs business (drive.kind "business" or "documentLibrary"): business
folders carry no cTag; identity sets carry the user's email; parentReference
.path is "/drives/{id}/root:..." (personal: "/drive/root:..."), library items
add parentReference.siteId; quota has fileCount instead of
storagePlanInformation; drive owner of a library is "System Account".
A shortcut item (item.remote, a folder shared by another user and added to
"My files") has no file/folder facet of its own but a remoteItem facet
{id, name, size, folder|file, fileSystemInfo, createdBy, lastModifiedBy,
createdDateTime, lastModifiedDateTime, webUrl, parentReference {driveId,
driveType, id}, shared {owner, sharedDateTime}}; its size is the target's.

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
    if drive.business:
        return {"user": {"email": drive.owner_email, "id": drive.user_id, "displayName": drive.owner_name}}
    return {"user": {"displayName": drive.owner_name, "id": drive.user_id}}


def parent_reference(drive, item):
    ref = {"driveId": drive.drive_id, "driveType": drive.kind}
    parent = item.parent
    if parent is None:
        return ref
    ref["id"] = parent.id
    ref["name"] = parent.name
    names = drive.path_names(parent)
    prefix = "/drives/%s/root:" % drive.drive_id if drive.business else "/drive/root:"
    ref["path"] = prefix + "".join("/" + quote_segment(n) for n in names)
    if drive.site is not None:
        ref["siteId"] = drive.site.id
    return ref


def web_url(drive, item, base_url):
    if drive.business and getattr(drive, "web_url", None):
        names = drive.path_names(item)
        return drive.web_url + "".join("/" + quote(n, safe="") for n in names)
    return "%s/_web/?cid=%s&id=%s" % (base_url, drive.user_id, quote(item.id, safe=""))


def remote_item_json(share, base_url):
    """The remoteItem facet of a shortcut to share.item."""
    target = share.item
    d = target.drive
    r = {"createdBy": identity_set(d), "createdDateTime": util.iso_millis(target.created), "id": target.id,
         "lastModifiedBy": identity_set(d), "lastModifiedDateTime": util.iso_millis(target.modified),
         "name": target.name, "size": target.size}
    ref = {"driveId": d.drive_id, "driveType": d.kind}
    if target.parent is not None:
        ref["id"] = target.parent.id
    r["parentReference"] = ref
    r["fileSystemInfo"] = {"createdDateTime": util.iso_seconds(target.fs_created),
                           "lastModifiedDateTime": util.iso_seconds(target.fs_modified)}
    if target.is_folder:
        r["folder"] = {"childCount": target.child_count}
    else:
        r["file"] = {"mimeType": mime_type(target.name), "hashes": {"quickXorHash": target.content.quickxorhash()}}
    r["shared"] = {"owner": identity_set(d), "sharedDateTime": util.iso_millis(share.shared)}
    r["webUrl"] = web_url(d, target, base_url)
    return r


def item_json(drive, item, base_url, download_url=None, select=None):
    """driveItem dict.  download_url: callable(item) -> URL for files.
    select: set of properties (None = default representation)."""
    def want(k):
        return select is None or k in select

    d = {}
    drive = item.drive or drive
    remote = item.remote
    if remote is None and not item.is_folder and download_url is not None and \
            (select is None or DOWNLOAD_URL in select):
        d[DOWNLOAD_URL] = download_url(item)
    if want("createdBy"):
        d["createdBy"] = identity_set(drive)
    if want("createdDateTime"):
        d["createdDateTime"] = util.iso_millis(item.created)
    if want("cTag") and not (drive.business and item.is_folder):
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
        d["size"] = item.size if remote is None else remote.item.size
    if want("webUrl"):
        d["webUrl"] = web_url(drive, item, base_url)
    if remote is not None:
        if want("remoteItem"):
            d["remoteItem"] = remote_item_json(remote, base_url)
    elif item.is_folder and drive.business:
        if want("folder"):
            d["folder"] = {"childCount": item.child_count}
    elif item.is_folder:
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


def drive_json(drive, base_url, quota=True):
    d = {"id": drive.drive_id, "driveType": drive.kind, "name": drive.name,
         "createdDateTime": util.iso_millis(drive.created),
         "lastModifiedDateTime": util.iso_millis(drive.root.modified)}
    if drive.business:
        d["description"] = ""
        d["webUrl"] = getattr(drive, "web_url", None) or "%s/_web/?cid=%s" % (base_url, drive.user_id)
    else:
        d["webUrl"] = "%s/_web/?cid=%s" % (base_url, drive.user_id)
    if drive.kind == "documentLibrary":
        d["createdBy"] = {"user": {"displayName": "System Account"}}
        d["owner"] = {"user": {"displayName": "System Account"}}
    else:
        d["owner"] = identity_set(drive)
    if quota:
        d["quota"] = drive.quota()
    return d


def user_json(user):
    """user resource of an accounts.User (or, for old callers, a drive)."""
    name = getattr(user, "name", None) or user.owner_name
    email = getattr(user, "email", None) or user.owner_email
    uid = user.id if hasattr(user, "kind") else user.user_id
    given, _, sur = name.partition(" ")
    return {
        "businessPhones": [],
        "displayName": name,
        "givenName": given,
        "jobTitle": None,
        "mail": email,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
        "surname": sur or None,
        "userPrincipalName": email,
        "id": uid,
    }


def site_json(site):
    return {"createdDateTime": util.iso_millis(site.created), "description": "", "id": site.id,
            "lastModifiedDateTime": util.iso_millis(site.created), "name": site.name, "webUrl": site.web_url,
            "displayName": site.display_name,
            "root": {}, "siteCollection": {"hostname": site.hostname}}
