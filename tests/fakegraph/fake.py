"""FakeGraph: owns the state (drive, identity, stats, faults, config), the
HTTP server thread, and the Python-side helpers that mirror /_control/.

    with FakeGraph(page_size=50, device_interval=1) as fake:
        fake.seed(tree=[{"path": "Documents/notes.txt", "content": "hi"}])
        tok = fake.issue_tokens()["access_token"]
        ... requests to fake.graph_url with "Authorization: Bearer " + tok ...

    other = fake.client()                  # "another device" using the real API
    other.put_content("/Documents/b.txt", data=b"changed elsewhere")

Python helpers besides the /_control/ mirrors: item(key), item_id(path),
content(key), quickxorhash(key), versions_of(key), recycle_bin(), quota(),
set_quota(total), upload_sessions(), expire_uploads(url=None),
invalidate_delta(), client(token=None, scope=None, user=None, drive=None).
Most take drive=KEY to address another drive than the primary one.

Accounts and drives (accounts.py, drive.py):

    fake = FakeGraph(account="business")       # or "personal" (default)
    fake.me, fake.drive                         # the primary account and its drive
    fake.tenant.id, fake.tenant.domain          # the work tenant (contoso.onmicrosoft.com)
    bob = fake.add_user("Bob Jones")            # another user (same kind) with his own drive, alias "bob"
    alt = fake.add_account("Alex Work", kind="business")   # a second sign-in account (account picker)
    fake.share("/Projects", owner="bob", role="read")      # bob's folder shared to me + shortcut in my root
    site = fake.add_site("/sites/Team", libraries=["Documents", "Team Assets"])   # aliases "team", "team/Team Assets"
    fake.seed(tree=[...], drive="team")         # drive KEY: None/"me", an alias, a drive id or a user id/UPN
    fake.drive_for("bob").drive_id

Sign-in helpers: register_client(client_id, public=True, secret=None,
redirect_uris=None, roles=None, name=None); issue_tokens(scope, client_id,
user=None); issue_app_token(client_id) (client_credentials without HTTP);
pending_authorizations(), approve_authorization(txn=None, account=None) and
decline_authorization(txn=None) (return the redirect URL), auth_codes();
approve_device(user_code=None, account=None); revoke_refresh_tokens(user=None);
issued_secrets() ({secret: kind} of every token, code and client secret).

Outages (the network between the client under test and the service is
cut; the service itself, the peer client and /_control/ stay up; details
in server.py):

    fake.go_down()      # connections refused, open ones reset
    fake.come_back()    # listening again on the same port, all state intact
    fake.freeze()       # connections accepted, requests read, nothing answered
    fake.thaw()         # hanging requests dropped unapplied (connection reset)
    fake.is_down(), fake.is_frozen(), fake.outage_stats()

reset() empties the primary drive and forgets added users, sites and shares
(their tokens then answer 401); the account type and tenant stay.

All state is guarded by one re-entrant lock (`fake.lock`); download bodies
are streamed outside it (content objects are immutable) and request bodies
are read before taking it.
"""

import threading
import time
from urllib.parse import quote

from . import util
from .accounts import Share, Site, Tenant, User
from .authorize import Authorize
from .batch import Batch
from .control import Control
from .delta import Delta
from .directory import Directory
from .download import Downloads
from .features import Features
from .drive import Drive, normalize_drive_id
from .faults import Faults
from .graph import GraphApi
from .identity import Identity
from .server import FakeHTTPServer, Outage, serve_local
from .stats import Stats
from .upload import Uploads
from .versions import Versions
from .writes import Writes


class Config:
    """Tunables (POST /_control/config).  Unknown keys are errors."""
    DEFAULTS = {
        "page_size": 200,                 # children page size without $top
        "access_token_lifetime": 3600,    # seconds
        "device_interval": 5,             # devicecode "interval"
        "device_expires_in": 900,         # devicecode "expires_in"
        "slow_down_increment": 0,         # seconds added to a code's interval per slow_down (RFC 8628 says 5)
        "auto_approve": False,            # device codes: False | True (approved at issue) | "after_first_poll"
        "auto_consent": False,            # /authorize answers 302 with a code at once (no sign-in page)
        "auth_code_lifetime": 600,        # seconds an authorization code stays redeemable
        "download_url_lifetime": 3600,    # seconds a downloadUrl stays valid
        "latency_ms": 0,                  # added to every non-control request
        "bandwidth": 0,                   # bytes/s all response bodies share (0: unlimited)
        "quota_total": 1 << 40,           # bytes (1 TiB)
        "simple_upload_max": 250 * 1024 * 1024,   # PUT content body limit (graph-docs 250 MB) -> 413
        "upload_session_lifetime": 900,   # seconds; extended by every accepted fragment
        "upload_session_conflict": True,  # 409 for a second session on the same parent+name
        "delta_duplicates": False,        # re-send every third item of a delta round at its end
        "delta_child_first": False,       # send delta rounds in reverse order (children first)
        "copy_polls_in_progress": 1,      # monitor polls answering inProgress before completed
        "batch": True,                    # POST /$batch served (False: 404, a service without it)
    }
    BOOLEAN = {"upload_session_conflict", "delta_duplicates", "delta_child_first", "auto_consent", "batch"}

    def __init__(self, **kw):
        for k, v in self.DEFAULTS.items():
            setattr(self, k, v)
        self.update(**kw)

    def update(self, **kw):
        for k, v in kw.items():
            if k not in self.DEFAULTS:
                raise ValueError("unknown config key '%s'" % k)
            if k == "auto_approve":
                if v not in (True, False, "after_first_poll", "immediate"):
                    raise ValueError("auto_approve must be true, false or 'after_first_poll'")
                v = True if v == "immediate" else v
            elif k in self.BOOLEAN:
                if not isinstance(v, bool):
                    raise ValueError("'%s' must be true or false" % k)
            else:
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                    raise ValueError("'%s' must be a non-negative number" % k)
                if k == "page_size" and not 1 <= v <= 1000:
                    raise ValueError("page_size must be 1..1000")
            setattr(self, k, v)

    def as_dict(self):
        return {k: getattr(self, k) for k in self.DEFAULTS}


class FakeGraph:
    CLIENT_ID = "00000000-0000-0000-0000-0000000000a1"
    DEFAULT_SCOPE = "Files.ReadWrite User.Read offline_access"
    DEFAULT_REDIRECT_URIS = ["http://localhost", "https://login.microsoftonline.com/common/oauth2/nativeclient"]

    def __init__(self, port=0, host="127.0.0.1", drive_id=None, owner_name="Fake User",
                 owner_email=None, clients=None, sample=False, verbose=False, account="personal",
                 tenant_id=None, tenant_domain="contoso.onmicrosoft.com", **options):
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("the fake binds to 127.0.0.1 only")
        if account not in ("personal", "business"):
            raise ValueError("account must be 'personal' or 'business'")
        self.host = "127.0.0.1"
        self._want_port = port
        self.verbose = verbose
        self.lock = threading.RLock()
        self.config = Config(**options)
        self.sealer = util.Sealer()
        self.account = account
        self.tenant = Tenant(tenant_id, tenant_domain)
        self.users = []
        self.drives = {}
        self.sites = []
        self.shares = []
        if owner_email is None:
            owner_email = "fake.user@outlook.com" if account == "personal" else "fake.user@" + self.tenant.domain
        self.me = self._new_user(account, owner_name, owner_email, "me", True, drive_id)
        self.drive = self.me.drive
        self.identity = Identity(self)
        self.identity.clients = {}
        if clients:
            for cid, spec in dict(clients).items():
                self.register_client(cid, **{k: v for k, v in dict(spec).items()
                                             if k in ("public", "secret", "redirect_uris", "roles", "name")})
        else:
            self.register_client(self.CLIENT_ID, name="onedrivefs")
        self.authorize = Authorize(self)
        self.counters = Stats()
        self.fault_set = Faults()
        self.graph = GraphApi(self)
        self.batch = Batch(self)
        self.directory = Directory(self)
        self.writes = Writes(self)
        self.uploads = Uploads(self)
        self.versions = Versions(self)
        self.features = Features(self)
        self.delta = Delta(self)
        self.downloads = Downloads(self)
        self.control = Control(self)
        self.outage = Outage()
        self._down = False
        self._server = None
        self._thread = None
        self.port = None
        if sample:
            self.load_sample()

    # ------------------------------------------------------------ lifecycle
    def start(self):
        if self._server is not None:
            return self
        self._server = FakeHTTPServer((self.host, self._want_port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fakegraph", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.outage.release()
        self._down = False
        self._stop_front(reset=False)

    def _stop_front(self, reset):
        srv, self._server = self._server, None
        if srv is None:
            return
        srv.shutdown()
        srv.server_close()
        srv.close_all_connections(reset=reset)
        self._thread.join(timeout=5)

    # -------------------------------------------------------------- outages
    def go_down(self):
        """Stop listening: new connections are refused and open ones reset
        (requests in flight get no answer).  Everything else stays: tree,
        tokens, upload sessions, stats, faults, config."""
        if self._server is None:
            raise RuntimeError("FakeGraph not started")
        self._down = True
        self.outage.release()            # requests hanging in a freeze die with their connections
        self._stop_front(reset=True)

    def come_back(self, timeout=5.0):
        """Listen again on the same port (retrying the bind for up to
        timeout seconds) with all state intact."""
        if not self._down:
            raise RuntimeError("FakeGraph is not down")
        end = time.monotonic() + timeout
        while True:
            try:
                self._server = FakeHTTPServer((self.host, self.port), self)
                break
            except OSError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="fakegraph", daemon=True)
        self._thread.start()
        self._down = False

    def freeze(self):
        """Keep accepting connections and reading requests, answer nothing:
        each request hangs until thaw()."""
        self.outage.freeze()

    def thaw(self):
        """End a freeze: every hanging request is dropped without being
        applied and its connection reset; later requests are answered.
        Returns the number of requests dropped."""
        return self.outage.thaw()

    def is_down(self):
        return self._down

    def is_frozen(self):
        return self.outage.frozen

    def outage_stats(self):
        """{"down", "frozen", "hanging": requests waiting now, "caught":
        requests caught by freezes so far}."""
        return {"down": self._down, "frozen": self.outage.frozen, "hanging": self.outage.waiting,
                "caught": self.outage.caught}

    def serve_local(self, method, target, headers=None, body=b""):
        """One request answered in process (see server.serve_local)."""
        return serve_local(self, method, target, headers, body)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        if self.port is None:
            raise RuntimeError("FakeGraph not started")
        return "http://%s:%d" % (self.host, self.port)

    @property
    def graph_url(self):
        return self.url + "/v1.0"

    @property
    def auth_url(self):
        return self.url

    @property
    def drive_id(self):
        return self.drive.drive_id

    @property
    def root_id(self):
        return self.drive.root.id

    def info(self):
        with self.lock:
            return {"url": self.url, "graph_url": self.graph_url, "auth_url": self.auth_url,
                    "client_id": self.CLIENT_ID, "drive_id": self.drive_id, "root_id": self.root_id,
                    "user": self.me.email, "user_id": self.me.id, "account": self.account,
                    "tenant_id": self.tenant.id if self.has_business_users() else None,
                    "tenant_domain": self.tenant.domain if self.has_business_users() else None,
                    "users": [u.describe() for u in self.users],
                    "drives": [{"id": d.drive_id, "driveType": d.kind, "name": d.name, "alias": d.alias,
                                "root_id": d.root.id} for d in self.drives.values()],
                    "sites": [x.describe() for x in self.sites],
                    "shares": [x.describe() for x in self.shares]}

    # ------------------------------------------------- accounts and drives
    def _new_user(self, kind, name, email, alias, signin, drive_id=None):
        user = User(kind, name, email, alias=alias, signin=signin)
        if kind == "business":
            user.id = util.new_guid()
        drive = Drive(drive_id, name, email, self.config.quota_total, kind=kind, owner=user, alias=alias)
        if kind == "personal":
            user.id = drive.user_id
        else:
            upn = email.replace(".", "_").replace("@", "_")
            drive.web_url = "https://%s/personal/%s/Documents" % (self.tenant.my_host, upn)
        user.drive = drive
        self.users.append(user)
        self.drives[drive.drive_id] = drive
        return user

    def set_account(self, account, owner_name="Fake User", owner_email=None):
        """Replace the primary account by a new one of kind account
        ("personal" | "business") with a new, empty drive; added users,
        sites and shares are dropped and old tokens answer 401."""
        if account not in ("personal", "business"):
            raise ValueError("account must be 'personal' or 'business'")
        with self.lock:
            if owner_email is None:
                owner_email = "fake.user@outlook.com" if account == "personal" else "fake.user@" + self.tenant.domain
            self.account = account
            self.users, self.drives, self.sites, self.shares = [], {}, [], []
            self.uploads.reset()
            self.me = self._new_user(account, owner_name, owner_email, "me", True)
            self.drive = self.me.drive
            self.delta._drive = self.drive
            return self.info()

    def has_business_users(self):
        return any(u.is_business for u in self.users)

    def signin_users(self):
        return [u for u in self.users if u.signin]

    def user_by_id(self, uid):
        for u in self.users:
            if u.id == uid:
                return u
        return None

    def user_by_ref(self, ref):
        """A user by id, userPrincipalName or alias (None if unknown)."""
        for u in self.users:
            if u.matches(ref) or (u.alias is not None and u.alias == ref):
                return u
        return None

    def drive_by_id(self, raw):
        return self.drives.get(normalize_drive_id(raw))

    def drive_for(self, key=None):
        """The drive named by key: None/"me" (primary), an alias, a drive
        id, or a user id/UPN.  KeyError if unknown."""
        with self.lock:
            if key is None or key == "me":
                return self.drive
            if isinstance(key, Drive):
                return key
            for d in self.drives.values():
                if d.alias == key:
                    return d
            d = self.drive_by_id(key)
            if d is not None:
                return d
            u = self.user_by_ref(key)
            if u is not None:
                return u.drive
        raise KeyError("unknown drive %r" % key)

    def add_user(self, name, email=None, kind=None, signin=False, alias=None, quota_total=None):
        """Another user (kind defaults to the primary account's) owning a
        drive; signin=True also offers it in the authorize page's account
        picker.  Returns the accounts.User; its drive alias is `alias`
        (default: the first name in lower case)."""
        kind = kind or self.account
        first = name.split()[0].lower()
        if email is None:
            dom = self.tenant.domain if kind == "business" else "outlook.com"
            email = "%s@%s" % (".".join(name.lower().split()), dom)
        with self.lock:
            if self.user_by_ref(email) is not None:
                raise ValueError("user %s exists" % email)
            user = self._new_user(kind, name, email, alias or first, signin)
            if quota_total is not None:
                user.drive.quota_total = quota_total
            return user

    def add_account(self, name, email=None, kind=None, alias=None):
        """A second account that can sign in (shown in the account picker)."""
        return self.add_user(name, email, kind=kind, signin=True, alias=alias)

    def add_site(self, path="/sites/Team", display_name=None, libraries=("Documents",), alias=None,
                 hostname=None):
        """A SharePoint site with document libraries (names, or dicts
        {"name", "alias"}).  Library aliases: `alias` (default the site name
        in lower case) for the first, "alias/Name" for the others."""
        with self.lock:
            site = Site(hostname or self.tenant.sharepoint_host, path, display_name or path.rstrip("/").split("/")[-1])
            alias = alias or site.name.lower()
            owner = self.me if self.me.is_business else User("business", "System Account", "", util.new_guid())
            for i, spec in enumerate(libraries):
                spec = {"name": spec} if isinstance(spec, str) else dict(spec)
                lib_alias = spec.get("alias") or (alias if i == 0 else "%s/%s" % (alias, spec["name"]))
                drive = Drive(None, owner.name, owner.email, self.config.quota_total, kind="documentLibrary",
                              name=spec["name"], owner=owner, site=site, alias=lib_alias)
                drive.web_url = "%s/%s" % (site.web_url, quote("Shared Documents" if spec["name"] == "Documents"
                                                               else spec["name"], safe=""))
                site.drives.append(drive)
                self.drives[drive.drive_id] = drive
            self.sites.append(site)
            return site

    def site_by_ref(self, ref):
        for x in self.sites:
            if x.matches_id(ref):
                return x
        return None

    def share(self, path, owner, to=None, role="read", shortcut=True, name=None):
        """Share the item at `path` of owner's drive (created as a folder if
        missing) with user `to` (default the primary account), role "read"
        or "write"; with shortcut=True add it to the grantee's "My files"
        root as `name` (default the item's name).  Returns the Share's
        description {"drive_id", "item_id", "shortcut_id", ...}."""
        with self.lock:
            drive = self.drive_for(owner)
            grantee = self.me if to is None else self.user_by_ref(to)
            if grantee is None:
                raise KeyError("unknown user %r" % to)
            item = drive.lookup_path(path)
            if item is None:
                item = drive.ensure_folder(drive.split_user_path(path))
            sh = Share(item, grantee, role)
            self.shares.append(sh)
            if shortcut:
                mine = grantee.drive
                label = name or item.name
                if mine.child(mine.root, label) is not None:
                    label = mine.unique_name(mine.root, label)
                mine.add_shortcut(mine.root, label, sh)
            return sh.describe()

    def share_for(self, user, item):
        """The share that gives user access to item (None if none)."""
        best = None
        for sh in self.shares:
            if sh.grantee is user and sh.covers(item):
                if best is None or sh.writable:
                    best = sh
        return best

    # ---------------------------------------------------------------- state
    def reset(self):
        """Empty the drive, clear stats and faults.  Tokens, device codes and
        the root id survive (a mounted client keeps working); use
        expire_tokens()/revoke_refresh_tokens() or reset_identity() for those."""
        with self.lock:
            self.drive.reset()
            self.uploads.reset()
            self.features.reset()
            keep = [u for u in self.users if u is self.me]
            self.users = keep
            self.drives = {self.drive.drive_id: self.drive}
            self.sites = []
            self.shares = []
        self.counters.reset()
        self.fault_set.clear()

    def seed(self, tree=None, generate=None, drive=None):
        """Add items: tree=[{"path", "content"|"folder", "mtime", "ctime"}],
        generate={"folders", "files_per_folder", "file_size", "depth",
        "under", "seed", "root_files"}; drive=KEY (see drive_for).  Returns
        the number of items."""
        n = 0
        with self.lock:
            d = self.drive_for(drive)
            if tree is not None:
                n += d.seed_tree(tree)
            if generate is not None:
                if not isinstance(generate, dict):
                    raise ValueError("'generate' must be an object")
                n += d.seed_generate(**generate)
        return n

    def load_sample(self):
        from .sample import sample_tree
        return self.seed(tree=sample_tree())

    def dump(self, drive=None):
        with self.lock:
            return self.drive_for(drive).dump()

    def item(self, key, drive=None):
        """Item by id or by path ("/Documents/a.txt"); KeyError if absent."""
        with self.lock:
            d = self.drive_for(drive)
            it = None
            if "/" not in key:
                it = d.get(key)
            if it is None:
                it = d.lookup_path(key)
        if it is None:
            raise KeyError(key)
        return it

    def item_id(self, path, drive=None):
        return self.item(path, drive).id

    def content(self, key, drive=None):
        """The bytes of a file (by id or path)."""
        it = self.item(key, drive)
        if it.is_folder:
            raise ValueError("%s is a folder" % key)
        return it.content.to_bytes()

    def write_content(self, key, filename, chunk=1 << 20):
        """Write a file's bytes to a local file (streamed); returns the size."""
        it = self.item(key)
        n = 0
        with open(filename, "wb") as f:
            for part in it.content.iter_range(0, it.content.size, chunk):
                f.write(part)
                n += len(part)
        return n

    def quickxorhash(self, key, drive=None):
        return self.item(key, drive).content.quickxorhash()

    def download_url(self, item):
        return self.downloads.url_for(item)

    def versions_of(self, key, drive=None):
        """[{"id", "size", "quickXorHash"}] newest first (ids as the API shows them)."""
        from .versions import version_id
        with self.lock:
            it = self.item(key, drive)
            if it.is_folder:
                return []
            return [{"id": version_id(it, i), "size": it.versions[i].size,
                     "quickXorHash": it.versions[i].content.quickxorhash()}
                    for i in range(len(it.versions) - 1, -1, -1)]

    def recycle_bin(self, drive=None):
        """Deleted (not permanently) subtrees: [{"id","name","path","parent_id","folder","size","deleted"}]."""
        with self.lock:
            return self.drive_for(drive).recycle_bin()

    def set_quota(self, total):
        """Set quota.total (bytes); tests fill the drive with it."""
        return self.set_config(quota_total=total)["quota_total"]

    def quota(self, drive=None):
        with self.lock:
            return self.drive_for(drive).quota()

    def upload_sessions(self):
        """Open upload sessions [{"uploadUrl","parent_id","name","item_id","received","total",...}]."""
        with self.lock:
            return self.uploads.snapshot()

    def expire_uploads(self, url=None):
        """Expire every open upload session (or the one with this uploadUrl): its URL answers 404."""
        with self.lock:
            return self.uploads.expire(url)

    def invalidate_delta(self, drive=None):
        """Every delta token issued so far answers 410 resyncRequired from now on."""
        with self.lock:
            if drive is None:
                for d in self.drives.values():
                    d.invalidate_delta()
            else:
                self.drive_for(drive).invalidate_delta()

    def client(self, token=None, scope=None, user=None, drive=None):
        """A small Graph client ("another device") using the real API with
        its own token (client.GraphClient).  user: act as that account (ref);
        drive: address that drive (KEY) as /drives/{id} instead of /me/drive."""
        from .client import GraphClient
        with self.lock:
            u = self.me if user is None else self.user_by_ref(user)
            if u is None:
                raise KeyError("unknown user %r" % user)
            if token is None:   # not counted in token_grants: the peer stays out of the stats
                token = self.identity.issue(self.CLIENT_ID, (scope or self.DEFAULT_SCOPE).split(),
                                            user=u)["access_token"]
            base = None if drive is None else "/drives/" + quote(self.drive_for(drive).drive_id, safe="!")
        return GraphClient(self, token, base=base)

    # ---------------------------------------------------------------- stats
    def stats(self):
        return self.counters.snapshot()

    def reset_stats(self):
        self.counters.reset()

    # --------------------------------------------------------------- faults
    def faults(self, spec=None, **kw):
        """Replace the fault set: faults({"latency_ms":..,"rules":[..]}) or
        faults(rules=[...], latency_ms=...); faults() clears."""
        if spec is None:
            spec = kw
        self.fault_set.set(spec)

    def clear_faults(self):
        self.fault_set.clear()

    def faults_snapshot(self):
        return self.fault_set.snapshot()

    # --------------------------------------------------------------- config
    def set_config(self, **kw):
        with self.lock:
            self.config.update(**kw)
            self.drive.quota_total = self.config.quota_total
        return self.get_config()

    def get_config(self):
        return self.config.as_dict()

    # ------------------------------------------------------------- identity
    def reset_identity(self):
        """Forget every token, device code, authorize transaction and code."""
        with self.lock:
            self.identity.reset()
            self.authorize.reset()

    def register_client(self, client_id, public=True, secret=None, redirect_uris=None, roles=None, name=None):
        """Register (or replace) an app: public (native) or confidential
        (with `secret`), its redirect URIs (default http://localhost and the
        nativeclient URI) and application permissions `roles` (e.g.
        ["Files.ReadWrite.All"]) granted to client_credentials tokens."""
        if not public and not secret:
            raise ValueError("a confidential client needs a secret")
        uris = list(self.DEFAULT_REDIRECT_URIS if redirect_uris is None else redirect_uris)
        with self.lock:
            self.identity.clients[client_id] = {"public": bool(public), "secret": secret, "redirect_uris": uris,
                                                "roles": list(roles or []), "name": name or client_id}

    def clients(self):
        with self.lock:
            return {cid: {k: v for k, v in c.items() if k != "secret"} for cid, c in self.identity.clients.items()}

    def issued_secrets(self):
        """{secret: kind} of every credential still known (since the last
        reset_identity()): access and refresh tokens, device codes,
        authorization codes and client secrets, for the tests' leak scan."""
        with self.lock:
            out = {c["secret"]: "client secret" for c in self.identity.clients.values() if c.get("secret")}
            out.update((v, "authorization code") for v in self.authorize.codes_by_value)
            out.update((v, "device code") for v in self.identity.device_codes)
            out.update((v, "refresh token") for v in self.identity.refresh_tokens)
            out.update((v, "access token") for v in self.identity.access_tokens)
            return out

    def issue_tokens(self, scope=None, client_id=None, user=None):
        """Token response as if a device-code sign-in had just succeeded
        (for the primary account, or user = a ref of another account)."""
        with self.lock:
            u = None if user is None else self.user_by_ref(user)
            if user is not None and u is None:
                raise KeyError("unknown user %r" % user)
            self.counters.grant("control")
            return self.identity.issue(client_id or self.CLIENT_ID, (scope or self.DEFAULT_SCOPE).split(), user=u)

    def issue_app_token(self, client_id):
        """An app-only token response for a registered confidential client
        (as client_credentials would give, without the HTTP round trip)."""
        with self.lock:
            c = self.identity.clients[client_id]
            self.counters.grant("control")
            return self.identity.issue(client_id, [], app=True, roles=c.get("roles"))

    def expire_tokens(self):
        with self.lock:
            return self.identity.expire_access_tokens()

    def revoke_refresh_tokens(self, user=None):
        with self.lock:
            u = None if user is None else self.user_by_ref(user)
            if user is not None and u is None:
                raise KeyError("unknown user %r" % user)
            return self.identity.revoke_refresh_tokens(u)

    def approve_device(self, user_code=None, account=None):
        with self.lock:
            u = None if account is None else self.user_by_ref(account)
            if account is not None and u is None:
                raise KeyError("unknown account %r" % account)
            return self.identity.approve(user_code, u)

    def decline_device(self, user_code=None):
        with self.lock:
            return self.identity.decline(user_code)

    def pending_devices(self):
        with self.lock:
            return self.identity.pending()

    def pending_authorizations(self):
        """Sign-in pages served and not answered yet: [{"txn", "client_id", "redirect_uri", "scope", ...}]."""
        with self.lock:
            return self.authorize.pending()

    def approve_authorization(self, txn=None, account=None):
        """Press "Accept" on a pending sign-in page (the newest by default),
        as `account` (id/UPN/alias; default login_hint or the primary).
        Returns the redirect URL (redirect_uri?code=...&state=...)."""
        with self.lock:
            return self.authorize.approve(txn, account)

    def decline_authorization(self, txn=None):
        """Press "Cancel": returns redirect_uri?error=access_denied&...."""
        with self.lock:
            return self.authorize.decline(txn)

    def auth_codes(self):
        """Every authorization code issued: [{"code", "client_id", "redirect_uri", "user", "redeemed", ...}]."""
        with self.lock:
            return self.authorize.codes()
