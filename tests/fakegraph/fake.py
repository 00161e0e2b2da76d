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
invalidate_delta(), client(token=None, scope=None).

All state is guarded by one re-entrant lock (`fake.lock`); download bodies
are streamed outside it (content objects are immutable) and request bodies
are read before taking it.
"""

import threading

from . import util
from .control import Control
from .delta import Delta
from .download import Downloads
from .drive import Drive
from .faults import Faults
from .graph import GraphApi
from .identity import Identity
from .server import FakeHTTPServer
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
        "auto_approve": False,            # False | True (approved at issue) | "after_first_poll"
        "download_url_lifetime": 3600,    # seconds a downloadUrl stays valid
        "latency_ms": 0,                  # added to every non-control request
        "quota_total": 1 << 40,           # bytes (1 TiB)
        "simple_upload_max": 250 * 1024 * 1024,   # PUT content body limit (graph-docs 250 MB) -> 413
        "upload_session_lifetime": 900,   # seconds; extended by every accepted fragment
        "upload_session_conflict": True,  # 409 for a second session on the same parent+name
        "delta_duplicates": False,        # re-send every third item of a delta round at its end
        "delta_child_first": False,       # send delta rounds in reverse order (children first)
    }
    BOOLEAN = {"upload_session_conflict", "delta_duplicates", "delta_child_first"}

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

    def __init__(self, port=0, host="127.0.0.1", drive_id=None, owner_name="Fake User",
                 owner_email="fake.user@outlook.com", clients=None, sample=False, verbose=False, **options):
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("the fake binds to 127.0.0.1 only")
        self.host = "127.0.0.1"
        self._want_port = port
        self.verbose = verbose
        self.lock = threading.RLock()
        self.config = Config(**options)
        self.sealer = util.Sealer()
        self.drive = Drive(drive_id, owner_name, owner_email, self.config.quota_total)
        self.identity = Identity(self)
        self.identity.clients = dict(clients) if clients else {self.CLIENT_ID: {"public": True, "secret": None}}
        self.counters = Stats()
        self.fault_set = Faults()
        self.graph = GraphApi(self)
        self.writes = Writes(self)
        self.uploads = Uploads(self)
        self.versions = Versions(self)
        self.delta = Delta(self)
        self.downloads = Downloads(self)
        self.control = Control(self)
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
        srv, self._server = self._server, None
        if srv is None:
            return
        srv.shutdown()
        srv.close_all_connections()
        srv.server_close()
        self._thread.join(timeout=5)

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
        return {"url": self.url, "graph_url": self.graph_url, "auth_url": self.auth_url,
                "client_id": self.CLIENT_ID, "drive_id": self.drive_id, "root_id": self.root_id,
                "user": self.drive.owner_email}

    # ---------------------------------------------------------------- state
    def reset(self):
        """Empty the drive, clear stats and faults.  Tokens, device codes and
        the root id survive (a mounted client keeps working); use
        expire_tokens()/revoke_refresh_tokens() or reset_identity() for those."""
        with self.lock:
            self.drive.reset()
            self.uploads.reset()
        self.counters.reset()
        self.fault_set.clear()

    def seed(self, tree=None, generate=None):
        """Add items: tree=[{"path", "content"|"folder", "mtime", "ctime"}],
        generate={"folders", "files_per_folder", "file_size", "depth",
        "under", "seed", "root_files"}.  Returns the number of items."""
        n = 0
        with self.lock:
            if tree is not None:
                n += self.drive.seed_tree(tree)
            if generate is not None:
                if not isinstance(generate, dict):
                    raise ValueError("'generate' must be an object")
                n += self.drive.seed_generate(**generate)
        return n

    def load_sample(self):
        from .sample import sample_tree
        return self.seed(tree=sample_tree())

    def dump(self):
        with self.lock:
            return self.drive.dump()

    def item(self, key):
        """Item by id or by path ("/Documents/a.txt"); KeyError if absent."""
        with self.lock:
            it = None
            if "/" not in key:
                it = self.drive.get(key)
            if it is None:
                it = self.drive.lookup_path(key)
        if it is None:
            raise KeyError(key)
        return it

    def item_id(self, path):
        return self.item(path).id

    def content(self, key):
        """The bytes of a file (by id or path)."""
        it = self.item(key)
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

    def quickxorhash(self, key):
        return self.item(key).content.quickxorhash()

    def download_url(self, item):
        return self.downloads.url_for(item)

    def versions_of(self, key):
        """[{"id", "size", "quickXorHash"}] newest first (ids as the API shows them)."""
        from .versions import version_id
        with self.lock:
            it = self.item(key)
            if it.is_folder:
                return []
            return [{"id": version_id(it, i), "size": it.versions[i].size,
                     "quickXorHash": it.versions[i].content.quickxorhash()}
                    for i in range(len(it.versions) - 1, -1, -1)]

    def recycle_bin(self):
        """Deleted (not permanently) subtrees: [{"id","name","path","parent_id","folder","size","deleted"}]."""
        with self.lock:
            return self.drive.recycle_bin()

    def set_quota(self, total):
        """Set quota.total (bytes); tests fill the drive with it."""
        return self.set_config(quota_total=total)["quota_total"]

    def quota(self):
        with self.lock:
            return self.drive.quota()

    def upload_sessions(self):
        """Open upload sessions [{"uploadUrl","parent_id","name","item_id","received","total",...}]."""
        with self.lock:
            return self.uploads.snapshot()

    def expire_uploads(self, url=None):
        """Expire every open upload session (or the one with this uploadUrl): its URL answers 404."""
        with self.lock:
            return self.uploads.expire(url)

    def invalidate_delta(self):
        """Every delta token issued so far answers 410 resyncRequired from now on."""
        with self.lock:
            self.drive.invalidate_delta()

    def client(self, token=None, scope=None):
        """A small Graph client ("another device") using the real API with
        its own token (client.GraphClient)."""
        from .client import GraphClient
        if token is None:
            with self.lock:     # not counted in token_grants: the peer stays out of the stats
                token = self.identity.issue(self.CLIENT_ID, (scope or self.DEFAULT_SCOPE).split())["access_token"]
        return GraphClient(self, token)

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
        """Forget every token and device code."""
        with self.lock:
            self.identity.reset()

    def register_client(self, client_id, public=True, secret=None):
        with self.lock:
            self.identity.clients[client_id] = {"public": bool(public), "secret": secret}

    def issue_tokens(self, scope=None, client_id=None):
        """Token response as if a device-code sign-in had just succeeded."""
        with self.lock:
            self.counters.grant("control")
            return self.identity.issue(client_id or self.CLIENT_ID, (scope or self.DEFAULT_SCOPE).split())

    def expire_tokens(self):
        with self.lock:
            return self.identity.expire_access_tokens()

    def revoke_refresh_tokens(self):
        with self.lock:
            return self.identity.revoke_refresh_tokens()

    def approve_device(self, user_code=None):
        with self.lock:
            return self.identity.approve(user_code)

    def decline_device(self, user_code=None):
        with self.lock:
            return self.identity.decline(user_code)

    def pending_devices(self):
        with self.lock:
            return self.identity.pending()
