"""Accounts, SharePoint sites and shares: who exists in the fake.

Pure data, no HTTP; callers hold the FakeGraph lock.

* User: a personal Microsoft account (kind "personal": id = its drive id in
  lower case, tenant = the consumer tenant 9188040d-...) or a work/school
  account (kind "business": id a GUID, userPrincipalName name@domain, a
  member of the fake's one work tenant).  Every user owns one drive
  (user.drive).  `signin` users appear in the account picker of the
  authorize page; others (share owners) only own drives.
* Tenant: the fake's work/school tenant - a GUID and a verified domain
  (default contoso.onmicrosoft.com) with a SharePoint host
  (contoso.sharepoint.com).  It only "exists" (is accepted as a {tenant}
  in identity URLs) once the fake has a business user.
* Site: a SharePoint site {id "host,siteGuid,webGuid", name, displayName,
  webUrl, hostname, path}, owning document libraries (drives of driveType
  "documentLibrary", the first is the default /sites/{id}/drive).
* Share: a folder (or file) of one user's drive shared with another user,
  role "read" or "write"; the grantee may have a shortcut item in their own
  drive (item.remote = the share) rendered with a remoteItem facet.

Id formats (graph-notes 2.3): business drive ids "b!" + 64 URL-safe base64
characters, business item ids "01" + 32 upper-case base32 characters.
"""

import base64
import secrets

from . import util

PERSONAL_CONSUMER_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
KINDS = ("personal", "business")


def business_drive_id():
    return "b!" + base64.urlsafe_b64encode(secrets.token_bytes(48)).decode("ascii")


def business_item_id():
    return "01" + base64.b32encode(secrets.token_bytes(20)).decode("ascii")[:32]


class Tenant:
    def __init__(self, tenant_id=None, domain="contoso.onmicrosoft.com", sharepoint_host=None):
        self.id = (tenant_id or util.new_guid()).lower()
        self.domain = domain.lower()
        label = self.domain.split(".")[0]
        self.sharepoint_host = sharepoint_host or "%s.sharepoint.com" % label
        self.my_host = "%s-my.sharepoint.com" % label

    def matches(self, raw):
        t = raw.lower()
        return t == self.id or t == self.domain


class User:
    def __init__(self, kind, name, email, user_id=None, alias=None, signin=True):
        if kind not in KINDS:
            raise ValueError("account kind must be 'personal' or 'business'")
        self.kind = kind
        self.name = name
        self.email = email
        self.id = user_id
        self.alias = alias
        self.signin = signin
        self.drive = None

    @property
    def is_business(self):
        return self.kind == "business"

    def matches(self, ref):
        """True if ref (from /users/{ref}) names this user: the id or the
        userPrincipalName (case-insensitive)."""
        r = ref.lower()
        return r == (self.id or "").lower() or r == self.email.lower()

    def describe(self):
        return {"id": self.id, "kind": self.kind, "displayName": self.name, "userPrincipalName": self.email,
                "alias": self.alias, "signin": self.signin,
                "drive_id": self.drive.drive_id if self.drive is not None else None}


class Site:
    def __init__(self, hostname, path, display_name, name=None):
        self.hostname = hostname.lower()
        self.path = "/" + path.strip("/")
        self.display_name = display_name
        self.name = name or self.path.rstrip("/").split("/")[-1]
        self.site_guid = util.new_guid()
        self.web_guid = util.new_guid()
        self.id = "%s,%s,%s" % (self.hostname, self.site_guid, self.web_guid)
        self.created = util.now()
        self.drives = []          # document libraries; [0] is the default

    @property
    def web_url(self):
        return "https://%s%s" % (self.hostname, self.path)

    def matches_id(self, ref):
        r = ref.lower()
        return r in (self.id, self.site_guid, "%s,%s" % (self.hostname, self.site_guid))

    def matches_path(self, hostname, path):
        return hostname.lower() == self.hostname and "/" + path.strip("/").lower() == self.path.lower()

    def describe(self):
        return {"id": self.id, "name": self.name, "displayName": self.display_name, "webUrl": self.web_url,
                "drives": [{"id": d.drive_id, "name": d.name, "alias": d.alias} for d in self.drives]}


class Share:
    def __init__(self, item, grantee, role):
        if role not in ("read", "write"):
            raise ValueError("role must be 'read' or 'write'")
        self.item = item              # the shared item in the owner's drive
        self.grantee = grantee        # User
        self.role = role
        self.shared = util.now()
        self.shortcut = None          # the grantee's shortcut item, if any

    @property
    def writable(self):
        return self.role == "write"

    def covers(self, item):
        """True if item is the shared item or below it."""
        while item is not None:
            if item is self.item:
                return True
            item = item.parent
        return False

    def describe(self):
        return {"drive_id": self.item.drive.drive_id, "item_id": self.item.id, "name": self.item.name,
                "owner": self.item.drive.owner_email, "grantee": self.grantee.email, "role": self.role,
                "shortcut_id": self.shortcut.id if self.shortcut is not None else None}
