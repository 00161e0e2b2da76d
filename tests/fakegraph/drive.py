"""The drive model: a OneDrive (personal or business) or a SharePoint
document library, with its item tree and quota.

Pure data structure, no HTTP.  Callers hold the FakeGraph lock.

* drive.kind is the driveType: "personal" | "business" | "documentLibrary".
  A fake holds several drives (fake.drives, by id); every item knows its
  drive (item.drive).  A shortcut to a folder shared by someone else is an
  item of the grantee's drive with item.remote = the Share (accounts.py):
  not a folder, no content of its own, rendered with a remoteItem facet.
* Personal item ids look like "<DRIVEID>!<n>", the root "<DRIVEID>!s<32 hex>"
  (graph-notes 2.3); they are opaque to clients.  Personal drive ids are
  matched case-insensitively (also with a dropped leading zero).  Business
  and library drive ids are "b!..." and item ids "01..." (34 characters),
  matched exactly.
* Folders keep an insertion-ordered child list (for O(page) paging) plus a
  name_key -> item index (case-insensitive, case-preserving lookup).
* Folder sizes are recursive totals, maintained incrementally.
* eTag "{GUID},N" changes with any change of the item; cTag "c:{GUID},N"
  with content changes; a personal folder's cTag also changes when any
  descendant changes (graph-notes 2.1).
* Mutations (create_folder, create_file, replace_content, move, set_fs_times,
  delete) validate names (naming.py), quota and conflicts and raise
  NameConflict / InvalidMove / QuotaExceeded / naming.InvalidName; the HTTP
  layer (writes.py, upload.py) maps those to Graph errors.
* Versions: every content write and every fileSystemInfo change of a file
  appends a Version (immutable content objects are shared, so a metadata
  version costs no bytes).  Version storage is not charged to the quota.
* Change log for delta: one sequence number per mutation.  item.dseq is the
  last mutation of the item itself, item.seq also counts changes of
  descendants (a personal folder's size/cTag/childCount change with them).
  Deleted items leave tombstones (id -> record with the sequence number).
* Recycle bin: delete() detaches the subtree into self.recycle (kept for a
  later restore feature; quota.deleted counts its bytes); permanent=True
  drops it.
"""

import itertools
import secrets
from collections import OrderedDict

from . import naming, util
from .content import BytesContent, make_content

from . import accounts
from .accounts import business_drive_id, business_item_id

PERSONAL_CONSUMER_TENANT = accounts.PERSONAL_CONSUMER_TENANT     # kept for older importers

DRIVE_KINDS = ("personal", "business", "documentLibrary")


class NameConflict(ValueError):
    pass


class InvalidMove(ValueError):
    pass


class QuotaExceeded(ValueError):
    pass


class Version:
    """One entry of a file's history (content objects are immutable)."""
    __slots__ = ("content", "modified", "fs_modified")

    def __init__(self, content, modified, fs_modified):
        self.content = content
        self.modified = modified
        self.fs_modified = fs_modified

    @property
    def size(self):
        return self.content.size


class Item:
    __slots__ = ("id", "name", "parent", "is_folder", "kids", "index", "content", "size",
                 "created", "modified", "fs_created", "fs_modified",
                 "tag_guid", "etag_ver", "ctag_ver", "versions", "seq", "dseq", "drive", "remote",
                 "__weakref__")

    def __init__(self, item_id, name, parent, is_folder, t, drive=None):
        self.id = item_id
        self.drive = drive
        self.remote = None
        self.name = name
        self.parent = parent
        self.is_folder = is_folder
        self.kids = [] if is_folder else None
        self.index = {} if is_folder else None
        self.content = None
        self.size = 0
        self.created = t
        self.modified = t
        self.fs_created = int(t)
        self.fs_modified = int(t)
        self.tag_guid = util.new_guid_upper()
        self.etag_ver = 1
        self.ctag_ver = 1
        self.versions = [] if not is_folder else None
        self.seq = 0
        self.dseq = 0

    @property
    def etag(self):
        return '"{%s},%d"' % (self.tag_guid, self.etag_ver)

    @property
    def ctag(self):
        return '"c:{%s},%d"' % (self.tag_guid, self.ctag_ver)

    @property
    def child_count(self):
        return len(self.kids) if self.is_folder else 0

    def ancestors(self):
        p = self.parent
        while p is not None:
            yield p
            p = p.parent


def normalize_drive_id(raw):
    """Canonical (upper-case, 16 char) form of a personal drive id; business
    ids ("b!...") are returned unchanged."""
    if raw.startswith("b!"):
        return raw
    s = raw.strip().upper()
    if 0 < len(s) < 16 and all(c in "0123456789ABCDEF" for c in s):
        s = s.rjust(16, "0")
    return s


class Drive:
    def __init__(self, drive_id=None, owner_name="Fake User", owner_email="fake.user@outlook.com",
                 quota_total=1 << 40, kind="personal", name=None, owner=None, site=None, alias=None):
        if kind not in DRIVE_KINDS:
            raise ValueError("unknown drive kind %r" % kind)
        self.kind = kind
        self.business = kind != "personal"
        if drive_id:
            self.drive_id = normalize_drive_id(drive_id)
        else:
            self.drive_id = business_drive_id() if self.business else self._new_drive_id()
        self.owner = owner                # accounts.User (None: a bare personal drive)
        self.site = site                  # accounts.Site for document libraries
        self.alias = alias
        self.name = name or ("Documents" if kind == "documentLibrary" else "OneDrive")
        self.web_url = None               # business: https://host/... base of item webUrls
        self.user_id = owner.id if owner is not None and owner.id else self.drive_id.lower()
        self.owner_name = owner.name if owner is not None else owner_name
        self.owner_email = owner.email if owner is not None else owner_email
        self.quota_total = quota_total
        self.created = util.now()
        self.reset()

    @staticmethod
    def _new_drive_id():
        while True:
            s = secrets.token_hex(8).upper()
            if s[0] != "0":
                return s

    # ---------------------------------------------------------------- tree
    def reset(self):
        """Empty the drive.  The root id stays the same and item numbers keep
        counting (the service never reuses an id), so a client that survives
        a test-harness reset sees a drive that was emptied, not replaced.
        Delta tokens issued before are invalidated (410 resync)."""
        self.items = {}
        if not hasattr(self, "_counter"):
            self._counter = itertools.count(101)
            self._root_id = business_item_id() if self.business else \
                "%s!s%s" % (self.drive_id, secrets.token_hex(16))
            self.seq = 0
            self.delta_epoch = 0
        root_id = self._root_id
        t = util.now()
        self.root = Item(root_id, "root", None, True, t, self)
        self.items[root_id] = self.root
        self.tombstones = {}
        self.recycle = []
        self.deleted_bytes = 0
        self.delta_rounds = OrderedDict()
        self.invalidate_delta()
        self._mark([self.root])

    def invalidate_delta(self):
        """Every delta token (nextLink or deltaLink) issued so far becomes
        unusable: the next request with one answers 410 resyncRequired."""
        self.delta_epoch += 1
        self.delta_rounds.clear()

    def _new_id(self):
        n = next(self._counter)
        if self.business:
            return business_item_id()
        return "%s!%d" % (self.drive_id, n)

    def matches_drive_id(self, raw):
        return normalize_drive_id(raw) == self.drive_id

    def get(self, raw_id):
        """Item by id; the drive-id part of a personal id is case-insensitive."""
        if raw_id == "root":
            return self.root
        item = self.items.get(raw_id)
        if item is None and "!" in raw_id and not self.business:
            d, rest = raw_id.split("!", 1)
            item = self.items.get("%s!%s" % (normalize_drive_id(d), rest))
        return item

    @staticmethod
    def child(folder, name):
        if not folder.is_folder:
            return None
        return folder.index.get(naming.name_key(name))

    def resolve(self, base, names):
        """Walk `names` (decoded segments) below `base`; None if missing."""
        item = base
        for n in names:
            item = self.child(item, n)
            if item is None:
                return None
        return item

    @staticmethod
    def path_names(item):
        """Names from below the root down to item (root -> [])."""
        out = []
        while item.parent is not None:
            out.append(item.name)
            item = item.parent
        out.reverse()
        return out

    def human_path(self, item):
        return "/" + "/".join(self.path_names(item))

    def split_user_path(self, path):
        return [p for p in path.strip("/").split("/") if p] if path else []

    def lookup_path(self, path):
        return self.resolve(self.root, self.split_user_path(path))

    # ------------------------------------------------------------ mutation
    def _attach(self, parent, item):
        if not parent.is_folder:
            raise NameConflict("parent is not a folder")
        key = naming.name_key(item.name)
        if key in parent.index:
            raise NameConflict("An item named '%s' already exists" % item.name)
        naming.check_path_length(self.path_names(parent) + [item.name])
        parent.index[key] = item
        parent.kids.append(item)
        item.parent = parent
        self.items[item.id] = item

    def add_folder(self, parent, name, mtime=None, ctime=None):
        naming.validate_name(name)
        t = util.now()
        item = Item(self._new_id(), name, None, True, t, self)
        self._set_fs_times(item, mtime, ctime)
        self._attach(parent, item)
        self._bump_ancestors(item)
        self._mark([item])
        return item

    def add_file(self, parent, name, content=None, mtime=None, ctime=None):
        naming.validate_name(name)
        t = util.now()
        item = Item(self._new_id(), name, None, False, t, self)
        item.content = content if content is not None else BytesContent(b"")
        item.size = item.content.size
        self._set_fs_times(item, mtime, ctime)
        self._attach(parent, item)
        self._add_size(parent, item.size)
        self._bump_ancestors(item)
        self._add_version(item)
        self._mark([item])
        return item

    def add_shortcut(self, parent, name, share):
        """A shortcut ("Add to My files") to share.item: an item of this
        drive without content of its own, rendered with a remoteItem facet."""
        naming.validate_name(name)
        item = Item(self._new_id(), name, None, False, util.now(), self)
        item.content = BytesContent(b"")
        item.versions = []
        item.remote = share
        self._attach(parent, item)
        self._bump_ancestors(item)
        self._mark([item])
        share.shortcut = item
        return item

    def set_content(self, item, content, mtime=None):
        """Replace a file's content (fileSystemInfo mtime resets to now
        unless given, as the service does)."""
        delta = content.size - item.size
        item.content = content
        item.size = content.size
        item.modified = util.now()
        item.fs_modified = int(mtime if mtime is not None else item.modified)
        self._add_size(item.parent, delta)
        self.touch_content(item)
        self._add_version(item)
        self._mark([item])

    def touch_content(self, item):
        item.etag_ver += 1
        item.ctag_ver += 1
        self._bump_ancestors(item)

    def touch_meta(self, item):
        item.etag_ver += 1

    @staticmethod
    def _add_version(item):
        item.versions.append(Version(item.content, item.modified, item.fs_modified))

    def _mark(self, direct, indirect=()):
        """Record one mutation in the change log: `direct` items changed
        themselves; they, their ancestors and the folders in `indirect` (and
        their ancestors) changed as seen by delta.  Returns the number."""
        self.seq += 1
        n = self.seq
        for it in direct:
            it.dseq = n
            it.seq = n
        starts = [it.parent for it in direct] + list(indirect)
        for a in starts:
            while a is not None and a.seq != n:
                a.seq = n
                a = a.parent
        return n

    @staticmethod
    def _bump_ancestors(item):
        for a in item.ancestors():
            a.ctag_ver += 1

    @staticmethod
    def _add_size(folder, delta):
        if delta:
            while folder is not None:
                folder.size += delta
                folder = folder.parent

    @staticmethod
    def _set_fs_times(item, mtime, ctime):
        if mtime is not None:
            item.fs_modified = int(mtime)
            item.fs_created = int(ctime if ctime is not None else mtime)
        elif ctime is not None:
            item.fs_created = int(ctime)

    def ensure_folder(self, names):
        """Folder at names (creating missing folders); error if a file is in
        the way."""
        cur = self.root
        for n in names:
            nxt = self.child(cur, n)
            if nxt is None:
                nxt = self.add_folder(cur, n)
            elif not nxt.is_folder:
                raise NameConflict("'%s' is a file" % self.human_path(nxt))
            cur = nxt
        return cur

    # ---------------------------------------------------- API mutations
    def check_quota(self, growth, creating=False):
        """QuotaExceeded if `growth` more bytes do not fit, or if a new item
        is created while the quota state is 'exceeded' (graph-notes 13)."""
        used = self.root.size
        if growth > 0 and used + growth > self.quota_total:
            raise QuotaExceeded("Insufficient Space Available")
        if creating and used >= self.quota_total:
            raise QuotaExceeded("Insufficient Space Available")

    def unique_name(self, folder, name):
        """conflictBehavior=rename: "New Folder 1", "a 1.txt", "a 2.txt"..."""
        dot = name.rfind(".")
        stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
        n = 1
        while True:
            cand = "%s %d%s" % (stem, n, ext)
            if self.child(folder, cand) is None:
                return cand
            n += 1

    def create_folder(self, parent, name):
        """A new empty folder (fileSystemInfo = now; creation times supplied
        by the client are ignored by the service, quirk 3)."""
        naming.validate_name(name)
        self.check_quota(0, creating=True)
        return self.add_folder(parent, name)

    def create_file(self, parent, name, content, fs_created=None, fs_modified=None):
        naming.validate_name(name)
        self.check_quota(content.size, creating=True)
        return self.add_file(parent, name, content, fs_modified, fs_created)

    def replace_content(self, item, content, fs_created=None, fs_modified=None):
        """New content for an existing file: new cTag/eTag and version;
        fileSystemInfo.lastModifiedDateTime resets to now unless given."""
        self.check_quota(content.size - item.size)
        self.set_content(item, content, fs_modified)
        if fs_created is not None:
            item.fs_created = int(fs_created)

    def set_fs_times(self, item, fs_created=None, fs_modified=None):
        """PATCH fileSystemInfo: whole seconds; a file gets a new version
        (quirk 2), eTag changes, cTag does not."""
        if fs_created is None and fs_modified is None:
            return
        if fs_created is not None:
            item.fs_created = int(fs_created)
        if fs_modified is not None:
            item.fs_modified = int(fs_modified)
        item.modified = util.now()
        self.touch_meta(item)
        if not item.is_folder:
            self._add_version(item)
        self._mark([item])

    def _subtree_path_overflow(self, item, new_parent, new_name):
        base = self.path_names(new_parent) + [new_name]
        naming.check_path_length(base)
        if item.is_folder:
            deepest = 0
            old_len = sum(len(n) + 1 for n in self.path_names(item))
            for d in self.walk(item):
                deepest = max(deepest, sum(len(n) + 1 for n in self.path_names(d)) - old_len)
            if deepest:
                naming.check_path_length(base + ["x" * (deepest - 1)])

    def move(self, item, new_parent, new_name):
        """Rename and/or move.  The target name may be taken by the item
        itself (case-only rename); anything else -> NameConflict."""
        if item.parent is None:
            raise InvalidMove("The root folder cannot be renamed or moved.")
        naming.validate_name(new_name)
        if not new_parent.is_folder:
            raise InvalidMove("The target parent is not a folder.")
        if new_parent is item or item in new_parent.ancestors():
            raise InvalidMove("A folder cannot be moved into itself or one of its descendants.")
        existing = self.child(new_parent, new_name)
        if existing is not None and existing is not item:
            raise NameConflict("An item with the same name already exists under the parent.")
        if new_parent is item.parent and new_name == item.name:
            return
        self._subtree_path_overflow(item, new_parent, new_name)
        old_parent = item.parent
        self._detach(item)
        item.name = new_name
        key = naming.name_key(new_name)
        new_parent.index[key] = item
        new_parent.kids.append(item)
        item.parent = new_parent
        self._add_size(new_parent, item.size)
        self._bump_ancestors(item)
        item.modified = util.now()
        self.touch_meta(item)
        self._mark([item], [old_parent])

    def _detach(self, item):
        parent = item.parent
        del parent.index[naming.name_key(item.name)]
        parent.kids.remove(item)
        self._add_size(parent, -item.size)
        self._bump_ancestors(item)

    def delete(self, item, permanent=False):
        """Remove item and its whole subtree (no emptiness check).  Every
        removed item leaves a delta tombstone; the subtree goes to the
        recycle bin unless permanent."""
        if item.parent is None:
            raise InvalidMove("The root folder cannot be deleted.")
        parent = item.parent
        path = self.human_path(item)
        gone = [item] + (list(self.walk(item)) if item.is_folder else [])
        depth0 = len(self.path_names(item))
        depths = {}
        for x in gone:
            depths[x.id] = depth0 if x is item else depths[x.parent.id] + 1
        self._detach(item)
        n = self._mark([], [parent])
        t = util.now()
        for x in gone:
            del self.items[x.id]
            self.tombstones[x.id] = {"seq": n, "name": x.name, "parent_id": x.parent.id,
                                     "folder": x.is_folder, "depth": depths[x.id], "time": t}
        item.parent = None
        if not permanent:
            self.recycle.append({"item": item, "parent_id": parent.id, "path": path, "deleted": t,
                                 "size": item.size})
            self.deleted_bytes += item.size
        return len(gone)

    def recycle_bin(self):
        return [{"id": e["item"].id, "name": e["item"].name, "path": e["path"], "parent_id": e["parent_id"],
                 "folder": e["item"].is_folder, "size": e["size"], "deleted": util.iso_millis(e["deleted"])}
                for e in self.recycle]

    # --------------------------------------------------------------- seeds
    def seed_tree(self, entries):
        """entries: [{"path": "A/b.txt", "content": str | {"size","seed"},
        "mtime": iso, "ctime": iso} | {"path": "A", "folder": true}].
        Returns the number of items created or updated."""
        n = 0
        for e in entries:
            if not isinstance(e, dict) or not isinstance(e.get("path"), str):
                raise ValueError("each tree entry needs a string 'path'")
            names = self.split_user_path(e["path"])
            if not names:
                raise ValueError("empty path in seed entry")
            mtime = util.parse_iso(e["mtime"]) if e.get("mtime") else None
            ctime = util.parse_iso(e["ctime"]) if e.get("ctime") else None
            parent = self.ensure_folder(names[:-1])
            existing = self.child(parent, names[-1])
            if e.get("folder"):
                if existing is None:
                    self.add_folder(parent, names[-1], mtime, ctime)
                elif not existing.is_folder:
                    raise NameConflict("'%s' exists as a file" % e["path"])
                else:
                    self._set_fs_times(existing, mtime, ctime)
            else:
                content = make_content(e.get("content"))
                if existing is None:
                    self.add_file(parent, names[-1], content, mtime, ctime)
                elif existing.is_folder:
                    raise NameConflict("'%s' exists as a folder" % e["path"])
                else:
                    self.set_content(existing, content, mtime)
                    if ctime is not None:
                        existing.fs_created = int(ctime)
            n += 1
        return n

    def seed_generate(self, folders=0, files_per_folder=0, file_size=0, depth=1,
                      under="", seed=0, root_files=0):
        """Bulk-generate `folders` folders arranged in about `depth` levels
        (breadth first, names "folder-00000"), each holding
        `files_per_folder` generated files "file-00000.bin" of `file_size`
        bytes, plus `root_files` files directly in `under`.  Returns the
        number of items created."""
        from .content import GeneratedContent
        base = self.ensure_folder(self.split_user_path(under))
        created = 0
        depth = max(1, int(depth))
        folders = int(folders)
        fanout = max(1, int(round(folders ** (1.0 / depth)))) if folders else 1
        made = []
        for i in range(folders):
            parent = base if i < fanout else made[(i - fanout) // fanout]
            made.append(self.add_folder(parent, "folder-%05d" % i))
            created += 1
        gseed = int(seed) * 1000003
        for fi, folder in enumerate(made):
            for j in range(int(files_per_folder)):
                content = GeneratedContent(int(file_size), gseed + fi * 100003 + j)
                self.add_file(folder, "file-%05d.bin" % j, content)
                created += 1
        for j in range(int(root_files)):
            self.add_file(base, "file-%05d.bin" % j, GeneratedContent(int(file_size), gseed - 1 - j))
            created += 1
        return created

    # --------------------------------------------------------------- views
    def walk(self, folder=None):
        """Depth-first pre-order over all items below folder (excluded)."""
        stack = [iter((folder or self.root).kids)]
        while stack:
            try:
                item = next(stack[-1])
            except StopIteration:
                stack.pop()
                continue
            yield item
            if item.is_folder:
                stack.append(iter(item.kids))

    def quota(self):
        used = self.root.size
        total = self.quota_total
        remaining = max(0, total - used)
        if used >= total:
            state = "exceeded"
        elif remaining < total * 0.01:
            state = "critical"
        elif remaining < total * 0.10:
            state = "nearing"
        else:
            state = "normal"
        out = {"deleted": self.deleted_bytes, "remaining": remaining, "state": state, "total": total, "used": used}
        if self.business:
            out["fileCount"] = sum(1 for it in self.walk() if not it.is_folder and it.remote is None)
        else:
            out["storagePlanInformation"] = {"upgradeAvailable": True}
        return out

    def dump(self):
        out = []
        for it in self.walk():
            rec = {"path": self.human_path(it), "id": it.id, "folder": it.is_folder, "size": it.size,
                   "quickXorHash": None if it.is_folder else it.content.quickxorhash(),
                   "mtime": util.iso_seconds(it.fs_modified), "eTag": it.etag, "cTag": it.ctag,
                   "versions": 0 if it.is_folder else len(it.versions)}
            if it.remote is not None:
                rec["remote"] = {"driveId": it.remote.item.drive.drive_id, "id": it.remote.item.id}
            out.append(rec)
        return {"items": out}
