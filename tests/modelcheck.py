#!/usr/bin/env python3
"""modelcheck: a randomized, model-based tester of the onedrivefs mount.

It runs a seeded random sequence of file-system operations on a onedrivefs
mount (against a fresh in-process fake Graph server) and, in lockstep, on
a plain local folder, the model.  Every operation's outcome (errno, bytes
read, bytes written) must agree; every few steps the whole trees are
compared; at random points the daemon is unmounted and mounted again, or
killed with SIGKILL and mounted again, and once uploads have settled the
fake server's own dump must equal the model too.  A failure prints the
seed and a shrunk operation log that still fails (greedy delta debugging,
each attempt on a fresh fake server and mount).

    python3 tests/modelcheck.py --seed 7 --ops 2000
    python3 tests/modelcheck.py --seed 7 --ops 2000 --faults      # fault soak
    python3 tests/modelcheck.py --total-ops 100000                # long run
    python3 tests/modelcheck.py --seconds 600 --faults            # soak by time
    python3 tests/modelcheck.py --replay /tmp/modelcheck-7.ops    # replay a log

Model semantics (what "the same" means)
---------------------------------------
- The model is a real local folder (a temporary folder on ext4/tmpfs)
  plus case folding done here: OneDrive names are case-insensitive and
  case-preserving, so every path of an operation is resolved in the model
  component by component, comparing folded names (str.lower(), i.e. simple
  lower case; the name pools avoid letters whose folding is ambiguous).
  Consequences, all checked:
    * mkdir / open(O_CREAT|O_EXCL) of a name that differs only in case from
      an existing entry fails with EEXIST;
    * open(O_CREAT) without O_EXCL of such a name either opens the existing
      file (the kernel found it by a case-insensitive lookup) or fails with
      EEXIST (the documented "second create"; the kernel asked the daemon to
      create): both are accepted, nothing else;
    * every other lookup is case-insensitive: stat("DOCS") finds "Docs",
      also when "DOCS" was looked up (and missing) before "Docs" was made;
    * rename(x, "FOO") where "foo" (another entry) exists replaces "foo",
      and the entry is then called "FOO" (the name asked for);
    * rename("foo", "FOO") (the same entry) is a no-op: the kernel sees the
      same inode for both names (the lookup is case-insensitive) and returns
      0 without asking the daemon, so a case-only rename cannot work
      through FUSE.  The model follows the kernel.
- Names OneDrive refuses (forbidden characters, reserved names, leading
  space, trailing dot or space, "~$", "_vti_", over 255 bytes, paths over
  400 characters) are never applied to the model: the mount must answer
  EINVAL (ENAMETOOLONG accepted for a name over 255 bytes) once the
  parents exist; when a parent is missing, the model's error is expected.
- Times: modification times are compared in whole seconds, and only where
  the test set them explicitly (utime/futimens) and nothing wrote to the
  file afterwards; other files' mtimes must merely be plausible (within
  the run's wall-clock window).  Access times, ctimes and folder times are
  not compared.
- Modes are never compared (chmod is accepted without effect); symlink,
  link and mknod must fail with EPERM on the mount and are not applied to
  the model.
- Open files: descriptors are kept in slots on both sides; reads, writes,
  ftruncate, fsync and futimens go through them.  A file unlinked or
  replaced while open stays usable through its descriptor (POSIX), and its
  later writes must not reappear anywhere.  Before an unmount or a SIGKILL
  every slot is closed (on both sides): data written to a file whose
  close() had not returned when the daemon died has no promise attached.
- After a SIGKILL, meta.db and content/content.db (copies of them with
  their WAL, so nothing is checkpointed behind the daemon's back) must pass
  PRAGMA integrity_check, and the next mount must come up on its own.
- Settling: after a remount (and at the end of every run) the tester waits
  until the fake server's dump equals the model (paths with exact case,
  folder flags, sizes, quickXorHashes, explicit mtimes) and every file's
  user.onedrive.status is "clean" (when the xattr is supported), with a
  deadline.  No conflict copies may appear: there is no other device.
- Faults (--faults): a thread injects, at random moments, 429 with
  Retry-After, 503, dropped connections, slow responses, stalled bodies,
  access-token expiry, upload-session expiry, a quick restart of the fake
  server on the same port keeping its state (FakeGraph.go_down() and
  come_back(); the port stays closed for at most about 0.3 s), a real
  outage (closed for 1 to 4 s: the mount goes offline, journals every
  change and replays it when its prober finds the fake again) and a freeze
  (accepting but silent for 0.5 to 3 s, then every hanging request is
  reset).  All files are written through the mount, so their bytes are
  cached and readable offline; a client that behaves as documented
  absorbs every episode: no operation may fail
  and nothing may differ at the end.  Injection pauses for the final
  settle.
- --skip orphans / --skip case turn one check off (to look past a known
  bug while hunting for others); make check never uses them.

Any `error:` line in the daemon's log and any sanitizer report fail the run
(as in the pytest suites).  The exit status is 0 when every run passed.
"""

import argparse
import errno
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
if os.environ.get("MODELCHECK_FAKEGRAPH_PARENT"):     # run against another copy of tests/fakegraph
    sys.path.insert(0, os.environ["MODELCHECK_FAKEGRAPH_PARENT"])

import helpers  # noqa: E402
from fakegraph import FakeGraph  # noqa: E402
from fakegraph.qxhash import quickxorhash  # noqa: E402

MIB = 1 << 20
CHUNK = 327680                        # upload_chunk for the mount: 320 KiB
SIMPLE_MAX = 4 * MIB                  # simple PUT limit of the daemon
FILE_MAX = 6 * MIB                    # files never grow past this
DAEMON_SCOPES = "User.Read Files.ReadWrite.All Sites.Read.All offline_access"
DEFAULT_OPTS = {"upload_chunk": CHUNK}

FILE_NAMES = ["a", "b.txt", "Notes.md", "c.bin", "\u00e4rger.txt", "x y.dat", "\u03c9", "long-name-0123456789.txt"]
DIR_NAMES = ["d", "Docs", "sub dir", "\u00c4-dir", "e"]
# Names OneDrive refuses (each breaks exactly one rule, none is ambiguous).
BAD_NAMES = ["a*b", "q?.txt", "x:y", "pipe|", "lt<", "gt>", 'quo"te', "back\\slash", "trail.", "trail ",
             " lead", "con", "LPT1.txt", "aux.c", "desktop.ini", ".lock", "~$tmp.docx", "my_vti_file",
             "ctl\x01x", "n" * 256]
FORBIDDEN_CHARS = set('"*:<>?/\\|')


def fold(name):
    return name.lower()


def onedrive_name_ok(name):
    """True if OneDrive accepts the name (the documented rules)."""
    if not name or name in (".", ".."):
        return False
    if len(name.encode("utf-8", "surrogateescape")) > 255:
        return False
    if any(c in FORBIDDEN_CHARS or ord(c) < 0x20 or ord(c) == 0x7f for c in name):
        return False
    if name[0] == " " or name[-1] in ". ":
        return False
    low = name.lower()
    if low.startswith("~$") or "_vti_" in low or low in (".lock", "desktop.ini"):
        return False
    base = low.split(".", 1)[0]
    if base in ("con", "prn", "aux", "nul"):
        return False
    if len(base) == 4 and base[:3] in ("com", "lpt") and base[3].isdigit():
        return False
    return True


def rbytes(seed, n):
    return random.Random(seed).randbytes(n)


def errname(e):
    return errno.errorcode.get(e, str(e)) if isinstance(e, int) else str(e)


class Failure(Exception):
    """A divergence.  kind groups failures for shrinking (same kind = same bug)."""

    def __init__(self, kind, message, step=None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.step = step

    def __str__(self):
        return "[%s] step %s: %s" % (self.kind, self.step, self.message)


def fmt_op(op):
    return json.dumps(op, sort_keys=True, ensure_ascii=True)


# =================================================================== harness
class Harness:
    """A fresh fake Graph server (in this process), a temp HOME/XDG setup
    with tokens for it, the mountpoint and the model folder."""

    def __init__(self, workdir=None, opts=None, debug=False, keep=False, log=None):
        self.base = Path(tempfile.mkdtemp(prefix="modelcheck-", dir=workdir))
        self.keep = keep
        self.debug = debug
        self.log = log or (lambda msg: None)
        self.home = self.base / "home"
        self.config_home = self.base / "config"
        self.cache_home = self.base / "cache"
        self.mnt = self.base / "mnt"
        self.model = self.base / "model"
        for d in (self.home, self.config_home, self.cache_home, self.mnt, self.model):
            d.mkdir(parents=True)
        self.config_dir = self.config_home / "onedrivefs"
        self.cache_dir = self.cache_home / "onedrivefs"
        self.environ = dict(os.environ)
        for k in list(self.environ):
            if k.startswith(("XDG_", "ODFS_")) or k.lower() in ("http_proxy", "https_proxy", "all_proxy"):
                del self.environ[k]
        self.environ.update(HOME=str(self.home), XDG_CONFIG_HOME=str(self.config_home),
                            XDG_CACHE_HOME=str(self.cache_home), NO_PROXY="127.0.0.1,localhost",
                            LC_ALL="C.UTF-8")
        self.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.fake = FakeGraph(port=0, auto_approve=True, device_interval=1)
        self.fake.start()
        self.fake_lock = threading.Lock()     # restart vs. direct use
        self.opts = dict(DEFAULT_OPTS)
        self.opts.update(opts or {})
        self.proc = None
        self.log_path = None
        self.logs = []                 # every daemon log of this harness
        self.incarnation = 0
        self._write_tokens()

    # ------------------------------------------------------------ sign-in
    def _write_tokens(self):
        """tokens.json as `onedrivefs login` writes it (common.md), for
        this fake: each run gets its own fake without a device flow."""
        tok = self.fake.issue_tokens(scope=DAEMON_SCOPES)
        self.config_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.config_dir, 0o700)
        data = {"client_id": FakeGraph.CLIENT_ID, "tenant": "common", "auth_url": self.fake.auth_url,
                "access_token": tok["access_token"], "refresh_token": tok["refresh_token"],
                "expires_at": int(time.time()) + int(tok.get("expires_in", 3600))}
        path = self.config_dir / "tokens.json"
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)

    def mount_opts(self):
        o = {"client_id": FakeGraph.CLIENT_ID, "auth_url": self.fake.auth_url,
             "graph_url": self.fake.graph_url}
        o.update({k: str(v) for k, v in self.opts.items()})
        return ",".join("%s=%s" % kv for kv in o.items())

    # -------------------------------------------------------------- mount
    def mount(self, timeout=30):
        self.incarnation += 1
        self.log_path = self.base / ("daemon-%02d.log" % self.incarnation)
        self.logs.append(self.log_path)
        args = ["-f"] + (["-d"] if self.debug else []) + ["-o", self.mount_opts(), str(self.mnt)]
        with open(self.log_path, "wb") as errf:
            self.proc = subprocess.Popen(helpers.odfs_cmd(args, helpers.VALGRIND), env=self.environ,
                                         stdin=subprocess.DEVNULL, stdout=errf, stderr=errf)
        end = time.monotonic() + helpers.deadline(timeout)
        while not helpers.is_mounted(self.mnt):
            if self.proc.poll() is not None:
                raise Failure("mount", "onedrivefs exited with %d before mounting:\n%s"
                              % (self.proc.returncode, self.log_tail()))
            if time.monotonic() > end:
                self.kill_quietly()
                raise Failure("mount", "the mount did not appear within %.0fs:\n%s"
                              % (helpers.deadline(timeout), self.log_tail()))
            time.sleep(0.02)

    def log_text(self, path=None):
        try:
            return Path(path or self.log_path).read_text(errors="surrogateescape")
        except (FileNotFoundError, TypeError):
            return ""

    def log_tail(self, n=6000):
        return self.log_text()[-n:]

    def check_log(self, expect_errors=()):
        problems = helpers.log_problems(self.log_text(), expect_errors)
        if problems:
            raise Failure("daemon-log", "%s\n--- daemon log ---\n%s" % ("\n".join(problems[:10]),
                                                                       self.log_tail()))

    def unmount(self, expect_errors=()):
        """Clean unmount; the daemon must exit 0 with a clean log."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        problems = helpers.fuse_unmount(self.mnt)
        try:
            proc.wait(timeout=helpers.deadline(30))
        except subprocess.TimeoutExpired:
            problems.append("onedrivefs did not exit within %.0fs of the unmount" % helpers.deadline(30))
            proc.kill()
            proc.wait(timeout=30)
        if proc.returncode != 0 and not problems:
            problems.append("onedrivefs exited with %d after a clean unmount" % proc.returncode)
        problems += helpers.log_problems(self.log_text(), expect_errors)
        if problems:
            raise Failure("unmount", "%s\n--- daemon log ---\n%s" % ("\n".join(problems[:10]), self.log_tail()))

    def kill(self, expect_errors=()):
        """SIGKILL the daemon, lazily unmount the dead mount."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        subprocess.run(["fusermount3", "-uz", str(self.mnt)], capture_output=True, timeout=30)
        end = time.monotonic() + 10
        while helpers.is_mounted(self.mnt) and time.monotonic() < end:
            time.sleep(0.02)
        problems = helpers.log_problems(self.log_text(), expect_errors)
        if problems:
            raise Failure("daemon-log", "before SIGKILL: %s\n--- daemon log ---\n%s"
                          % ("\n".join(problems[:10]), self.log_tail()))

    def kill_quietly(self):
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self.proc = None
        if helpers.is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-uz", str(self.mnt)], capture_output=True, timeout=30)

    def daemon_dead(self):
        return self.proc is not None and self.proc.poll() is not None

    def daemon_stacks(self):
        """Thread backtraces of the running daemon (gdb), for hangs."""
        if self.proc is None or shutil.which("gdb") is None:
            return "(no gdb)"
        try:
            r = subprocess.run(["gdb", "-p", str(self.proc.pid), "-batch", "-nx", "-ex", "set pagination off",
                                "-ex", "thread apply all bt"], capture_output=True, text=True, timeout=60,
                               errors="replace")
            return r.stdout[-20000:]
        except (OSError, subprocess.TimeoutExpired) as e:
            return "(gdb failed: %s)" % e

    # ------------------------------------------------------- fake server
    def restart_fake(self, down_seconds):
        """Stop the fake and start it again on the same port, state kept."""
        with self.fake_lock:
            port = self.fake.port
            self.fake.go_down()
            time.sleep(down_seconds)             # the outage itself: its length is the point
            self.fake.come_back()
            assert self.fake.port == port

    def dump(self):
        """{path (no leading slash): record} of the fake's drive, root excluded."""
        with self.fake_lock:
            items = self.fake.dump()["items"]
        return {r["path"].strip("/"): r for r in items if r["path"].strip("/")}

    # ------------------------------------------------------------ sqlite
    def integrity(self):
        """{db: result} of PRAGMA integrity_check on copies of the cache's
        databases (with -wal and -shm), so the check cannot checkpoint."""
        out = {}
        for rel in ("meta.db", "content/content.db"):
            db = self.cache_dir / rel
            if not db.exists():
                out[rel] = "missing"
                continue
            tmp = Path(tempfile.mkdtemp(prefix="integrity-", dir=self.base))
            try:
                for suffix in ("", "-wal", "-shm"):
                    src = Path(str(db) + suffix)
                    if src.exists():
                        shutil.copyfile(src, tmp / ("x.db" + suffix))
                con = sqlite3.connect(str(tmp / "x.db"), timeout=10)
                try:
                    rows = con.execute("PRAGMA integrity_check").fetchall()
                    out[rel] = "\n".join(str(r[0]) for r in rows)
                finally:
                    con.close()
            except sqlite3.DatabaseError as e:
                out[rel] = "sqlite error: %s" % e
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return out

    def close(self):
        self.kill_quietly()
        try:
            self.fake.stop()
        except Exception:
            pass
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)


# ============================================================ fault injector
FAULT_KINDS = ["429", "503", "drop", "slow", "stall", "token-expiry", "upload-expiry", "restart", "outage",
               "freeze"]


class FaultInjector(threading.Thread):
    """Random fault episodes against the harness's fake server."""

    def __init__(self, harness, seed, kinds=None, gap=(0.05, 0.6)):
        super().__init__(name="fault-injector", daemon=True)
        self.h = harness
        self.rng = random.Random(seed ^ 0x5eed)
        self.kinds = list(kinds or FAULT_KINDS)
        self.gap = gap
        self.enabled = threading.Event()
        self.enabled.set()
        self.stopping = threading.Event()
        self.idle = threading.Event()
        self.idle.set()
        self.counts = {}
        self.errors = []

    def pause(self):
        """Stop injecting and wait until the current episode is over; clear faults."""
        self.enabled.clear()
        self.idle.wait(timeout=30)
        with self.h.fake_lock:
            self.h.fake.clear_faults()
            self.h.fake.set_config(latency_ms=0)

    def resume(self):
        self.enabled.set()

    def stop(self):
        self.stopping.set()
        self.enabled.set()
        self.join(timeout=30)
        with self.h.fake_lock:
            self.h.fake.clear_faults()

    def run(self):
        while not self.stopping.is_set():
            time.sleep(self.rng.uniform(*self.gap))
            self.enabled.wait()
            if self.stopping.is_set():
                break
            self.idle.clear()
            try:
                kind = self.rng.choice(self.kinds)
                self.episode(kind)
                self.counts[kind] = self.counts.get(kind, 0) + 1
            except Exception as e:      # the injector must not die silently
                self.errors.append("%s: %s" % (type(e).__name__, e))
            finally:
                self.idle.set()

    def episode(self, kind):
        fake, rng = self.h.fake, self.rng
        if kind == "429":
            fake.faults(rules=[{"match": "*", "status": 429, "retry_after": rng.choice(["1", "0.5", "2"]),
                                "times": rng.randint(1, 3)}])
        elif kind == "503":
            fake.faults(rules=[{"match": "*", "status": 503, "times": rng.randint(1, 3)}])
        elif kind == "drop":
            fake.faults(rules=[{"match": "*", "drop": True, "times": rng.randint(1, 2)}])
        elif kind == "slow":
            fake.faults(latency_ms=rng.choice([100, 300, 800]))
            time.sleep(rng.uniform(0.5, 3))
            fake.clear_faults()
        elif kind == "stall":
            fake.faults(rules=[{"match": "*", "stall_body_ms": rng.choice([500, 2000]), "times": 1}])
        elif kind == "token-expiry":
            with self.h.fake_lock:
                fake.expire_tokens()
        elif kind == "upload-expiry":
            with self.h.fake_lock:
                fake.expire_uploads()
        elif kind == "restart":
            # a quick restart: http.c gives up on refused connections after
            # about 0.6 s by design ("offline: say so soon"), so a longer
            # outage would fail synchronous operations (mkdir, rename...) as
            # documented rather than as a bug
            self.h.restart_fake(rng.uniform(0.0, 0.3))
        elif kind == "outage":
            # a real spell offline: the mount goes offline, journals every
            # change and replays it when the prober finds the fake again
            self.h.restart_fake(rng.uniform(1.0, 4.0))
        elif kind == "freeze":
            # accepting but silent; the thaw resets what hung
            with self.h.fake_lock:
                self.h.fake.freeze()
                time.sleep(rng.uniform(0.5, 3.0))
                self.h.fake.thaw()
        else:
            raise ValueError(kind)


# ================================================================ the model
class Model:
    """The local folder with case-insensitive path resolution."""

    def __init__(self, root):
        self.root = str(root)

    def _find(self, dirpath, name):
        """Actual name in dirpath folding to name's fold, else None."""
        try:
            names = os.listdir(dirpath)
        except OSError:
            return None
        if name in names:
            return name
        f = fold(name)
        hits = sorted(n for n in names if fold(n) == f)
        return hits[0] if hits else None

    def resolve(self, rel):
        """Absolute model path for rel (components matched case-insensitively;
        a missing component is kept as given)."""
        cur = self.root
        for comp in rel.split("/"):
            if not comp:
                continue
            found = self._find(cur, comp) if os.path.isdir(cur) else None
            cur = os.path.join(cur, found if found is not None else comp)
        return cur

    def resolve_parent(self, rel):
        """(absolute model path of rel's parent, last component as given,
        actual existing name folding to it or None)."""
        parent, _, name = rel.rpartition("/")
        p = self.resolve(parent)
        return p, name, (self._find(p, name) if os.path.isdir(p) else None)

    def rel(self, abspath):
        return os.path.relpath(abspath, self.root)


# ================================================================ the runner
def call(fn):
    """('ok', value) or ('err', errno)."""
    try:
        return ("ok", fn())
    except OSError as e:
        return ("err", e.errno)


def fmt_res(r):
    if r[0] == "err":
        return "error %s" % errname(r[1])
    v = r[1]
    if isinstance(v, (bytes, bytearray)):
        return "%d bytes" % len(v)
    return "ok %r" % (v,)


class Handle:
    def __init__(self, mfd, lfd, flags, lino):
        self.mfd, self.lfd, self.flags, self.lino = mfd, lfd, flags, lino


class Runner:
    """Executes operations on mount and model, compares, keeps stats."""

    def __init__(self, harness, seed=0, faults=False, fault_kinds=None, settle_timeout=90,
                 expect_errors=(), out=None, skip=()):
        self.h = harness
        self.skip = set(skip)          # checks turned off by hand (--skip), e.g. "orphans"
        self.seed = seed
        self.model = Model(harness.model)
        self.handles = {}
        # model inode -> "explicit" (mtime set by utime: compared exactly) or
        # "unknown" (an operation POSIX lets leave the mtime alone, e.g. a
        # truncate to the same size: not compared); absent: written lately,
        # the mtime must be plausible
        self.explicit = {}
        self.start_time = time.time()
        self.step = None
        self.counts = {}
        self.settle_timeout = settle_timeout
        self.expect_errors = list(expect_errors)
        self.out = out or (lambda msg: None)
        self.injector = None
        self.faults = faults
        self.fault_kinds = fault_kinds
        self.xattr_status = None       # None unknown, True supported, False not
        self.settles = 0
        self.kills = 0
        self.remounts = 0

    # ----------------------------------------------------------- lifecycle
    def start(self):
        self.h.mount()
        if self.faults:
            self.injector = FaultInjector(self.h, self.seed, self.fault_kinds)
            self.injector.start()

    def finish(self):
        """Close every slot, compare, stop faults, settle and compare the
        server; unmount cleanly."""
        self.step = "final"
        self.close_all()
        self.check_tree()
        if self.injector:
            self.injector.pause()
        self.settle()
        self.h.unmount(self.expect_errors)
        violations = self.h.fake.stats().get("auth_violations", [])
        if violations:
            raise Failure("auth", "Authorization header sent where it must not be: %r" % violations[:5],
                          self.step)

    def shutdown(self):
        if self.injector:
            self.injector.stop()
        for hd in list(self.handles.values()):
            for fd in (hd.mfd, hd.lfd):
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.handles.clear()

    # --------------------------------------------------------------- paths
    def mp(self, rel):
        return os.path.join(str(self.h.mnt), rel) if rel else str(self.h.mnt)

    def lino(self, path):
        try:
            return os.lstat(path).st_ino
        except OSError:
            return None

    def touched(self, lpath=None, ino=None, changed=True):
        """A write-like operation succeeded; changed=False when it did not
        change the size or bytes (POSIX need not update the mtime then)."""
        ino = ino if ino is not None else self.lino(lpath)
        if ino is None:
            return
        if changed:
            self.explicit.pop(ino, None)
        else:
            self.explicit[ino] = "unknown"

    @staticmethod
    def size_of(path=None, fd=None):
        try:
            return os.fstat(fd).st_size if fd is not None else os.stat(path).st_size
        except OSError:
            return None

    # ------------------------------------------------------------- compare
    def orphaned(self, op):
        """True when op goes through a slot whose file was unlinked or replaced."""
        hd = self.handles.get(op.get("slot"))
        if hd is None or op["op"] == "open":
            return False
        try:
            return os.fstat(hd.lfd).st_nlink == 0
        except OSError:
            return False

    def same(self, op, mres, lres, accept=()):
        if mres == lres:
            return
        if mres[0] == "err" and mres[1] in accept:
            return
        kind = ("orphan:" if self.orphaned(op) else "result:") + op["op"]
        if kind.startswith("orphan:") and "orphans" in self.skip:
            return
        raise Failure(kind, "%s: mount gave %s, model %s%s" % (
            fmt_op(op), fmt_res(mres), fmt_res(lres),
            " (through a descriptor of a file since unlinked or replaced)" if kind.startswith("orphan") else ""),
            self.step)

    def invalid_new_name(self, rel):
        """The rule a new name at rel breaks (None when OneDrive takes it)."""
        name = rel.rpartition("/")[2]
        if not onedrive_name_ok(name):
            return "name"
        if len(rel) > 400:
            return "path"
        return None

    def refused(self, op, mres, pre_err, longname=False):
        """Outcome check of an operation OneDrive refuses: EINVAL once the
        parents exist, else the model's precondition error."""
        if pre_err is not None:
            self.same(op, mres, ("err", pre_err), accept=(errno.EINVAL,))
            return
        accept = (errno.ENAMETOOLONG,) if longname else ()
        self.same(op, mres, ("err", errno.EINVAL), accept=accept)

    def case_clash(self, rel, flags):
        """True when open(rel, O_CREAT) names an existing entry by another
        case: the documented EEXIST ("the second create") is accepted then,
        as well as opening the existing file (when the kernel finds it by a
        case-insensitive lookup first)."""
        if not flags & os.O_CREAT:
            return False
        _p, name, existing = self.model.resolve_parent(rel)
        return existing is not None and existing != name

    def parent_error(self, rel):
        """errno the model gives for a missing/non-folder parent, else None."""
        parent = self.model.resolve(rel.rpartition("/")[0])
        if not os.path.exists(parent):
            return errno.ENOENT
        if not os.path.isdir(parent):
            return errno.ENOTDIR
        return None

    # ---------------------------------------------------------- operations
    def execute(self, op, step):
        self.step = step
        kind = op["op"]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        fn = getattr(self, "op_" + kind.replace("-", "_"))
        try:
            fn(op)
        except Failure as f:
            if f.step is None:
                f.step = step
            if self.h.daemon_dead():
                f.message += "\n(the daemon exited with %s)\n--- daemon log ---\n%s" % (
                    self.h.proc.returncode, self.h.log_tail())
            raise

    def close_slot(self, slot):
        hd = self.handles.pop(slot, None)
        if hd is None:
            return None
        mres = call(lambda: os.close(hd.mfd))
        lres = call(lambda: os.close(hd.lfd))
        return mres, lres

    def close_all(self):
        for slot in sorted(self.handles):
            r = self.close_slot(slot)
            if r and r[0] != r[1]:
                raise Failure("result:close", "closing slot %d: mount gave %s, model %s"
                              % (slot, fmt_res(r[0]), fmt_res(r[1])), self.step)

    def op_open(self, op):
        slot, rel, flags = op["slot"], op["path"], 0
        names = op["flags"]
        acc = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}[op["mode"]]
        for n in names:
            flags |= {"creat": os.O_CREAT, "trunc": os.O_TRUNC, "append": os.O_APPEND,
                      "excl": os.O_EXCL}[n]
        flags |= acc
        if slot in self.handles:
            self.close_slot(slot)
        lpath = self.model.resolve(rel)
        existed = os.path.lexists(lpath)
        if (flags & os.O_CREAT) and not existed:
            why = self.invalid_new_name(rel)
            if why:
                mres = call(lambda: os.open(self.mp(rel), flags, 0o644))
                if mres[0] == "ok":
                    os.close(mres[1])
                self.refused(op, mres, self.parent_error(rel), longname=True)
                return
            # the new entry takes the name as given
            p, name, _ = self.model.resolve_parent(rel)
            lpath = os.path.join(p, name)
        elif not existed and not onedrive_name_ok(rel.rpartition("/")[2]):
            mres = call(lambda: os.open(self.mp(rel), flags, 0o644))
            if mres[0] == "ok":
                os.close(mres[1])
            self.same(op, mres, ("err", errno.ENOENT), accept=(errno.EINVAL, errno.ENAMETOOLONG))
            return
        before = self.size_of(lpath) if existed else None
        mres = call(lambda: os.open(self.mp(rel), flags, 0o644))
        if self.case_clash(rel, flags) and mres == ("err", errno.EEXIST):
            return          # documented: a create whose name differs only in case gets EEXIST
        lres = call(lambda: os.open(lpath, flags, 0o644))
        if mres[0] == "ok" and lres[0] == "ok":
            ino = os.fstat(lres[1]).st_ino
            if not existed:
                self.touched(ino=ino)
            elif flags & os.O_TRUNC:
                self.touched(ino=ino, changed=bool(before))
            self.handles[slot] = Handle(mres[1], lres[1], flags, ino)
            return
        for r in (mres, lres):
            if r[0] == "ok":
                os.close(r[1])
        self.same(op, ("ok", "fd") if mres[0] == "ok" else mres, ("ok", "fd") if lres[0] == "ok" else lres)

    def op_close(self, op):
        r = self.close_slot(op["slot"])
        if r:
            self.same(op, r[0], r[1])

    def op_write(self, op):
        hd = self.handles.get(op["slot"])
        if hd is None:
            return
        data = rbytes(op["seed"], op["len"])
        mres = call(lambda: os.pwrite(hd.mfd, data, op["off"]))
        lres = call(lambda: os.pwrite(hd.lfd, data, op["off"]))
        if lres[0] == "ok":
            self.touched(ino=hd.lino)
        self.same(op, mres, lres)

    def op_read(self, op):
        hd = self.handles.get(op["slot"])
        if hd is None:
            return
        mres = call(lambda: os.pread(hd.mfd, op["len"], op["off"]))
        lres = call(lambda: os.pread(hd.lfd, op["len"], op["off"]))
        if mres != lres and mres[0] == "ok" and lres[0] == "ok":
            if self.orphaned(op):
                if "orphans" in self.skip:
                    return
                raise Failure("orphan:data", "%s: read through a descriptor of a file since unlinked or "
                              "replaced differs: %s" % (fmt_op(op), describe_diff(mres[1], lres[1], op["off"])),
                              self.step)
            raise Failure("data", "%s: read through the handle differs: %s" % (
                fmt_op(op), describe_diff(mres[1], lres[1], op["off"])), self.step)
        self.same(op, mres, lres)

    def op_ftruncate(self, op):
        hd = self.handles.get(op["slot"])
        if hd is None:
            return
        before = self.size_of(fd=hd.lfd)
        mres = call(lambda: os.ftruncate(hd.mfd, op["size"]))
        lres = call(lambda: os.ftruncate(hd.lfd, op["size"]))
        if lres[0] == "ok":
            self.touched(ino=hd.lino, changed=before != op["size"])
        self.same(op, mres, lres)

    def op_fsync(self, op):
        hd = self.handles.get(op["slot"])
        if hd is None:
            return
        mres = call(lambda: os.fsync(hd.mfd))
        lres = call(lambda: os.fsync(hd.lfd))
        self.same(op, mres, lres)

    def op_futimens(self, op):
        hd = self.handles.get(op["slot"])
        if hd is None:
            return
        ns = (op["atime"], op["mtime"])
        mres = call(lambda: os.utime(hd.mfd, ns=ns))
        lres = call(lambda: os.utime(hd.lfd, ns=ns))
        if lres[0] == "ok":
            self.explicit[hd.lino] = "explicit"
        self.same(op, mres, lres)

    def op_writefile(self, op):
        """open(O_CREAT|O_WRONLY[|O_TRUNC]) + pwrite + close in one step, like cp/editors."""
        rel = op["path"]
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if op.get("trunc", True) else 0)
        lpath = self.model.resolve(rel)
        existed = os.path.lexists(lpath)
        if not existed:
            if self.invalid_new_name(rel):
                mres = call(lambda: self._writefile(self.mp(rel), flags, op))
                self.refused(op, mres, self.parent_error(rel), longname=True)
                return
            p, name, _ = self.model.resolve_parent(rel)
            lpath = os.path.join(p, name)
        before = self.size_of(lpath) if existed else None
        mres = call(lambda: self._writefile(self.mp(rel), flags, op))
        if self.case_clash(rel, flags) and mres == ("err", errno.EEXIST):
            return          # documented: a create whose name differs only in case gets EEXIST
        lres = call(lambda: self._writefile(lpath, flags, op))
        if lres[0] == "ok":
            if not existed or op["len"]:
                self.touched(lpath)
            elif flags & os.O_TRUNC:
                self.touched(lpath, changed=bool(before))
        self.same(op, mres, lres)

    @staticmethod
    def _writefile(path, flags, op):
        fd = os.open(path, flags, 0o644)
        try:
            n = 0
            if op["len"]:
                n = os.pwrite(fd, rbytes(op["seed"], op["len"]), op.get("off", 0))
        finally:
            os.close(fd)
        return n

    def op_readfile(self, op):
        rel = op["path"]
        lpath = self.model.resolve(rel)
        mres = call(lambda: Path(self.mp(rel)).read_bytes())
        lres = call(lambda: Path(lpath).read_bytes())
        if mres != lres and mres[0] == "ok" and lres[0] == "ok":
            raise Failure("data", "%s: content differs: %s" % (fmt_op(op), describe_diff(mres[1], lres[1])),
                          self.step)
        self.same(op, mres, lres)

    def op_truncate(self, op):
        rel = op["path"]
        lpath = self.model.resolve(rel)
        before = self.size_of(lpath)
        mres = call(lambda: os.truncate(self.mp(rel), op["size"]))
        lres = call(lambda: os.truncate(lpath, op["size"]))
        if lres[0] == "ok":
            self.touched(lpath, changed=before != op["size"])
        self.same(op, mres, lres)

    def op_utime(self, op):
        rel = op["path"]
        lpath = self.model.resolve(rel)
        ns = (op["atime"], op["mtime"])
        mres = call(lambda: os.utime(self.mp(rel), ns=ns))
        lres = call(lambda: os.utime(lpath, ns=ns))
        if lres[0] == "ok" and os.path.isfile(lpath):
            self.explicit[self.lino(lpath)] = "explicit"
        self.same(op, mres, lres)

    def op_chmod(self, op):
        rel = op["path"]
        lpath = self.model.resolve(rel)
        mres = call(lambda: os.chmod(self.mp(rel), op["mode"]))
        lres = call(lambda: os.stat(lpath) and None)
        self.same(op, mres, lres)

    def op_stat(self, op):
        rel = op["path"]
        lpath = self.model.resolve(rel)

        def brief(p):
            st = os.lstat(p)
            return ("d" if stat.S_ISDIR(st.st_mode) else "f", 0 if stat.S_ISDIR(st.st_mode) else st.st_size)
        self.same(op, call(lambda: brief(self.mp(rel))), call(lambda: brief(lpath)))

    def op_listdir(self, op):
        rel = op["path"]
        lpath = self.model.resolve(rel)
        self.same(op, call(lambda: sorted(os.listdir(self.mp(rel)))), call(lambda: sorted(os.listdir(lpath))))

    def op_mkdir(self, op):
        rel = op["path"]
        lpath = self.model.resolve(rel)
        if not os.path.lexists(lpath) and self.invalid_new_name(rel):
            mres = call(lambda: os.mkdir(self.mp(rel)))
            self.refused(op, mres, self.parent_error(rel), longname=True)
            return
        if not os.path.lexists(lpath):
            p, name, _ = self.model.resolve_parent(rel)
            lpath = os.path.join(p, name)
        self.same(op, call(lambda: os.mkdir(self.mp(rel))), call(lambda: os.mkdir(lpath)))

    def op_rmdir(self, op):
        rel = op["path"]
        lpath = self.model.resolve(rel)
        self.same(op, call(lambda: os.rmdir(self.mp(rel))), call(lambda: os.rmdir(lpath)))

    def op_unlink(self, op):
        rel = op["path"]
        lpath = self.model.resolve(rel)
        self.same(op, call(lambda: os.unlink(self.mp(rel))), call(lambda: os.unlink(lpath)))

    def op_rename(self, op):
        src, dst = op["src"], op["dst"]
        lsrc = self.model.resolve(src)
        dparent, dname, existing = self.model.resolve_parent(dst)
        if existing is None and self.invalid_new_name(dst):
            mres = call(lambda: os.rename(self.mp(src), self.mp(dst)))
            pre = None
            if not os.path.lexists(lsrc):
                pre = errno.ENOENT
            elif self.parent_error(dst):
                pre = self.parent_error(dst)
            self.refused(op, mres, pre, longname=True)
            return

        def model_rename():
            if not os.path.lexists(lsrc):
                raise OSError(errno.ENOENT, "no source")
            if existing is not None:
                target = os.path.join(dparent, existing)
                if os.path.samefile(lsrc, target) if os.path.lexists(target) else False:
                    return None              # the same entry: the kernel makes it a no-op
                os.rename(lsrc, target)
                if existing != dname:
                    os.rename(target, os.path.join(dparent, dname))
                return None
            os.rename(lsrc, os.path.join(dparent, dname))
            return None
        mres = call(lambda: os.rename(self.mp(src), self.mp(dst)))
        lres = call(model_rename)
        self.same(op, mres, lres)

    def op_symlink(self, op):
        mres = call(lambda: os.symlink("target", self.mp(op["path"])))
        pre = self.parent_error(op["path"])
        lpath = self.model.resolve(op["path"])
        if pre is None and os.path.lexists(lpath):
            pre = errno.EEXIST
        self.same(op, mres, ("err", pre or errno.EPERM))

    def op_link(self, op):
        lsrc = self.model.resolve(op["src"])
        mres = call(lambda: os.link(self.mp(op["src"]), self.mp(op["dst"])))
        pre = None
        if not os.path.lexists(lsrc):
            pre = errno.ENOENT
        elif self.parent_error(op["dst"]):
            pre = self.parent_error(op["dst"])
        elif os.path.lexists(self.model.resolve(op["dst"])):
            pre = errno.EEXIST
        elif os.path.isdir(lsrc):
            pre = errno.EPERM
        self.same(op, mres, ("err", pre or errno.EPERM))

    def op_mknod(self, op):
        mres = call(lambda: os.mkfifo(self.mp(op["path"])))
        pre = self.parent_error(op["path"])
        if pre is None and os.path.lexists(self.model.resolve(op["path"])):
            pre = errno.EEXIST
        self.same(op, mres, ("err", pre or errno.EPERM))

    def op_check(self, op):
        self.check_tree()

    def op_server(self, op):
        """Scripted server settings: {"config": {...}} (FakeGraph.set_config)
        and/or {"faults": {...}} (FakeGraph.faults; {} clears)."""
        with self.h.fake_lock:
            if "config" in op:
                self.h.fake.set_config(**op["config"])
            if "faults" in op:
                self.h.fake.faults(op["faults"])

    def op_sleep(self, op):
        time.sleep(op["seconds"])

    def op_settle(self, op):
        self.close_all()
        self.check_tree()
        self.settle()

    def op_remount(self, op):
        self.close_all()
        self.h.unmount(self.expect_errors)
        self.remounts += 1
        self.h.mount()
        self.check_tree()
        self.settle()

    def op_kill(self, op):
        self.close_all()
        if op.get("settle_first"):
            self.settle()
        self.h.kill(self.expect_errors)
        self.kills += 1
        res = self.h.integrity()
        bad = {db: r for db, r in res.items() if r != "ok" and not (r == "missing" and db != "meta.db")}
        if bad:
            raise Failure("integrity", "after SIGKILL: %r" % bad, self.step)
        self.h.mount()
        self.check_tree()
        self.settle()

    # -------------------------------------------------------------- trees
    def snapshot(self, root, read=True):
        out = {}

        def walk(d, prefix):
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
            for e in entries:
                rel = prefix + e.name
                st = os.lstat(e.path)
                if stat.S_ISDIR(st.st_mode):
                    out[rel] = ("d",)
                    walk(e.path, rel + "/")
                elif stat.S_ISREG(st.st_mode):
                    try:
                        data = Path(e.path).read_bytes() if read else None
                    except OSError as err:
                        raise OSError(err.errno, "cannot read '%s': %s" % (rel, os.strerror(err.errno))) from None
                    out[rel] = ("f", st.st_size, data, st.st_mtime_ns, st.st_ino)
                else:
                    out[rel] = ("?", stat.S_IFMT(st.st_mode))
        walk(root, "")
        return out

    def check_tree(self):
        try:
            mount = self.snapshot(str(self.h.mnt))
        except OSError as e:
            model = self.snapshot(self.model.root)
            rel = str(e).split("'")[1] if str(e).count("'") >= 2 else None
            raise Failure("tree:io", "cannot walk the mount: %s%s" % (
                e, self.server_view([rel], {}, model) if rel else ""), self.step)
        model = self.snapshot(self.model.root)
        problems = []
        only_m = sorted(set(mount) - set(model))
        only_l = sorted(set(model) - set(mount))
        if only_m:
            problems.append("only in the mount: %r" % only_m[:10])
        if only_l:
            problems.append("only in the model: %r" % only_l[:10])
        now = time.time()
        for rel in sorted(set(mount) & set(model)):
            m, l = mount[rel], model[rel]
            if m[0] != l[0]:
                problems.append("%s: mount has %s, model %s" % (rel, m[0], l[0]))
                continue
            if m[0] != "f":
                continue
            if m[1] != len(m[2]):
                problems.append("%s: mount st_size %d but %d bytes read" % (rel, m[1], len(m[2])))
            if m[2] != l[2]:
                problems.append("%s: content differs: %s" % (rel, describe_diff(m[2], l[2])))
            state = self.explicit.get(l[4])
            if state == "explicit":
                if m[3] // 10**9 != l[3] // 10**9:
                    problems.append("%s: mtime %s, model %s (set explicitly)" % (rel, m[3] / 1e9, l[3] / 1e9))
            elif state is None and not (self.start_time - 5 <= m[3] / 1e9 <= now + 5):
                problems.append("%s: implausible mtime %s (run started %s)" % (rel, m[3] / 1e9, self.start_time))
        if problems:
            raise Failure("tree:" + problem_category(problems[0]),
                          "mount and model differ:\n  " + "\n  ".join(problems[:20]) +
                          self.server_view([p.split(":", 1)[0] for p in problems[:20]], mount, model), self.step)
        return model

    def server_view(self, rels, mount, model):
        """What the server holds for the paths of a tree difference (diagnosis)."""
        try:
            dump = self.h.dump()
        except Exception:
            return ""
        lines = []
        for rel in dict.fromkeys(rels):
            r = dump.get(rel)
            if r is None:
                lines.append("%s: not on the server" % rel)
                continue
            if r["folder"]:
                lines.append("%s: a folder on the server" % rel)
                continue
            same = [who for who, snap in (("model", model), ("mount", mount))
                    if snap.get(rel, ("?",))[0] == "f" and quickxorhash(snap[rel][2]) == r["quickXorHash"]]
            lines.append("%s: on the server %d bytes, mtime %s, %s" % (
                rel, r["size"], r.get("mtime"), "same bytes as the " + " and the ".join(same) if same
                else "bytes unlike the mount's and the model's"))
        return "\n(server: " + "; ".join(lines) + ")" if lines else ""

    def remote_problems(self, model):
        dump = self.h.dump()
        problems = []
        only_r = sorted(set(dump) - set(model))
        only_l = sorted(set(model) - set(dump))
        if only_r:
            problems.append("only on the server: %r" % only_r[:10])
        if only_l:
            problems.append("not on the server: %r" % only_l[:10])
        for rel in sorted(set(dump) & set(model)):
            r, l = dump[rel], model[rel]
            if r["folder"] != (l[0] == "d"):
                problems.append("%s: folder=%s on the server" % (rel, r["folder"]))
                continue
            if l[0] != "f":
                continue
            if r["size"] != l[1]:
                problems.append("%s: size %d on the server, %d in the model" % (rel, r["size"], l[1]))
            elif r["quickXorHash"] != quickxorhash(l[2]):
                problems.append("%s: quickXorHash differs (same size %d)" % (rel, l[1]))
            if self.explicit.get(l[4]) == "explicit":
                want = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(l[3] // 10**9))
                if r.get("mtime") and r["mtime"] != want:
                    problems.append("%s: mtime %s on the server, %s in the model" % (rel, r["mtime"], want))
        return problems

    def status_problems(self):
        if self.xattr_status is False:
            return []
        bad = {}
        for dirpath, _dirs, files in os.walk(str(self.h.mnt)):
            for f in files:
                p = os.path.join(dirpath, f)
                try:
                    s = helpers.xattr(p, "status")
                except OSError as e:
                    if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                        self.xattr_status = False
                        return []
                    raise
                if s is None and self.xattr_status is None:
                    self.xattr_status = False
                    return []
                self.xattr_status = True
                if s != "clean":
                    bad[os.path.relpath(p, str(self.h.mnt))] = s
        return ["status of %s is %r" % kv for kv in sorted(bad.items())[:10]]

    def settle(self):
        """Wait until the server equals the model and every file is clean,
        with fault injection paused meanwhile (with only outages and freezes
        the service is out of reach most of the time, and nothing could
        settle: a failure of the tester, not of the mount)."""
        paused = self.injector is not None and self.injector.enabled.is_set()
        if paused:
            self.injector.pause()
        try:
            self._settle()
        finally:
            if paused:
                self.injector.resume()

    def _settle(self):
        self.settles += 1
        model = self.snapshot(self.model.root)
        end = time.monotonic() + helpers.deadline(self.settle_timeout)
        clean_since = None
        while True:
            problems = self.remote_problems(model)
            status = self.status_problems()
            if not problems and not status:
                return
            # every file says "clean" yet the server differs: nothing is
            # left to upload, so waiting longer cannot help (grace period
            # for deletes and renames that are still on their way)
            if self.xattr_status and not status and problems:
                clean_since = clean_since or time.monotonic()
                if time.monotonic() - clean_since > helpers.deadline(5):
                    raise Failure("settle:" + problem_category(problems[0]),
                                  "every file is clean but the server differs from the model:\n  %s"
                                  % "\n  ".join(problems[:20]), self.step)
            else:
                clean_since = None
            problems = problems or status
            if self.h.daemon_dead():
                raise Failure("settle", "the daemon died while uploads settled (exit %s):\n%s"
                              % (self.h.proc.returncode, self.h.log_tail()), self.step)
            if time.monotonic() > end:
                raise Failure("settle:" + problem_category(problems[0]),
                              "after %.0fs the server still differs from the model:\n  %s"
                              % (helpers.deadline(self.settle_timeout), "\n  ".join(problems[:20])), self.step)
            time.sleep(0.1)


def problem_category(text):
    """A short name for the kind of a difference (failures of one kind
    count as the same bug while shrinking)."""
    for key, cat in (("only in the mount", "extra"), ("only in the model", "missing"),
                     ("only on the server", "extra"), ("not on the server", "missing"),
                     ("content differs", "content"), ("quickXorHash", "content"), ("size", "size"),
                     ("st_size", "size"), ("set explicitly", "mtime"), ("mtime", "mtime"),
                     ("implausible mtime", "mtime"), ("status of", "status"), ("folder", "type"),
                     ("mount has", "type")):
        if key in text:
            return cat
    return "other"


def describe_diff(got, want, base=0):
    if len(got) != len(want):
        first = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), None)
        return "mount %d bytes, model %d bytes%s" % (len(got), len(want),
                                                    "" if first is None else ", first difference at %d" % (base + first))
    first = next(i for i in range(len(got)) if got[i] != want[i])
    last = max(i for i in range(len(got)) if got[i] != want[i])
    zeros = all(b == 0 for b in got[first:last + 1])
    return "%d bytes, differing in [%d, %d]%s" % (len(got), base + first, base + last,
                                                 " (mount has zeros there)" if zeros else "")


# ============================================================== generation
class Generator:
    """Random operations, chosen from the model's current state (so the
    same seed always yields the same sequence)."""

    WEIGHTS = [("open", 12), ("write", 20), ("read", 6), ("ftruncate", 3), ("fsync", 2), ("close", 9),
               ("futimens", 2), ("writefile", 9), ("readfile", 3), ("truncate", 4), ("rename", 11),
               ("mkdir", 6), ("rmdir", 3), ("unlink", 5), ("utime", 3), ("stat", 2), ("listdir", 2),
               ("badname", 2), ("unsupported", 1), ("chmod", 1), ("check", 2), ("settle", 0.3)]

    def __init__(self, seed, model_root, remount_rate=0.004, kill_rate=0.004, big_rate=0.02, slots=4,
                 case_rate=0.12):
        self.rng = random.Random(seed)
        self.root = str(model_root)
        self.remount_rate = remount_rate
        self.kill_rate = kill_rate
        self.big_rate = big_rate
        self.slots = slots
        self.case_rate = case_rate
        self.kinds = [k for k, _ in self.WEIGHTS]
        self.weights = [w for _, w in self.WEIGHTS]

    def tree(self):
        files, dirs = [], [""]
        for dirpath, dirnames, filenames in os.walk(self.root):
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel + "/"
            dirnames.sort()
            for d in dirnames:
                dirs.append(rel + d)
            for f in sorted(filenames):
                files.append(rel + f)
        return files, dirs

    def vary(self, rel):
        """Sometimes spell a path in another case."""
        if not rel or self.rng.random() >= self.case_rate:
            return rel
        parts = rel.split("/")
        i = self.rng.randrange(len(parts))
        p = parts[i]
        parts[i] = self.rng.choice([p.upper(), p.swapcase(), p.capitalize()])
        return "/".join(parts)

    def size_of(self, rel):
        try:
            return os.path.getsize(os.path.join(self.root, rel))
        except OSError:
            return 0

    def write_len(self):
        r = self.rng.random()
        if r < self.big_rate:
            return self.rng.randint(MIB, 3 * MIB)
        if r < 0.45:
            return self.rng.randint(1, 200)
        if r < 0.85:
            return self.rng.randint(200, 70000)
        return self.rng.randint(70000, 700000)

    def offset(self, size, n):
        r = self.rng.random()
        if r < 0.3:
            off = size                                   # append
        elif r < 0.6:
            off = self.rng.randint(0, max(0, size))
        elif r < 0.75:
            b = self.rng.choice([65536, 131072, CHUNK, 2 * CHUNK, 1 << 20, SIMPLE_MAX])
            off = max(0, b - self.rng.randint(1, min(max(n, 1), 4096)))   # across a boundary
        elif r < 0.9:
            off = size + self.rng.randint(1, 100000)      # past the end: a hole
        else:
            off = self.rng.randint(0, size + 2 * MIB)
        if off + n > FILE_MAX:
            off = max(0, FILE_MAX - n)
        return off

    def new_size(self, size):
        r = self.rng.random()
        if r < 0.15:
            return 0
        if r < 0.5:
            return self.rng.randint(0, max(0, size))     # down
        if r < 0.6:
            return self.rng.choice([CHUNK, 65536, SIMPLE_MAX + 1, 1 << 20])
        return min(FILE_MAX, size + self.rng.randint(1, 300000))   # up

    def new_name_in(self, dirs, kind="file"):
        d = self.rng.choice(dirs)
        if kind == "dir" and d.count("/") >= 2:
            d = ""
        pool = DIR_NAMES if kind == "dir" else FILE_NAMES
        name = self.rng.choice(pool)
        if self.case_rate and self.rng.random() < 0.1:
            name = name.upper()
        return (d + "/" + name) if d else name

    def times(self):
        sec = self.rng.randint(978307200, 1767225600)    # 2001 .. 2026
        ns = self.rng.choice([0, self.rng.randint(0, 10**9 - 1)])
        return sec * 10**9 + self.rng.randint(0, 10**9 - 1), sec * 10**9 + ns

    def next(self, open_slots):
        rng = self.rng
        if rng.random() < self.kill_rate:
            return {"op": "kill", "settle_first": rng.random() < 0.2}
        if rng.random() < self.remount_rate:
            return {"op": "remount"}
        files, dirs = self.tree()
        subdirs = dirs[1:]
        kind = rng.choices(self.kinds, self.weights)[0]
        free = [s for s in range(self.slots) if s not in open_slots]
        if kind in ("write", "read", "ftruncate", "fsync", "close", "futimens") and not open_slots:
            kind = "open"
        if kind == "open" and not free:
            kind = "close"
        if kind in ("readfile", "truncate", "unlink", "utime") and not files:
            kind = "writefile"
        if kind == "rmdir" and not subdirs:
            kind = "mkdir"
        if kind == "open":
            if files and rng.random() < 0.55:
                path = self.vary(rng.choice(files))
            else:
                path = self.new_name_in(dirs)
            mode = rng.choices(["rw", "w", "r"], [6, 3, 1])[0]
            flags = []
            if rng.random() < 0.7:
                flags.append("creat")
                if rng.random() < 0.15:
                    flags.append("excl")
            if mode != "r" and rng.random() < 0.25:
                flags.append("trunc")
            if mode != "r" and rng.random() < 0.2:
                flags.append("append")
            return {"op": "open", "slot": rng.choice(free), "path": path, "mode": mode, "flags": flags}
        if kind in ("write", "read", "ftruncate", "fsync", "close", "futimens"):
            slot = rng.choice(sorted(open_slots))
            size = open_slots[slot]
            if kind == "write":
                n = self.write_len()
                return {"op": "write", "slot": slot, "off": self.offset(size, n), "len": n,
                        "seed": rng.randrange(1 << 30)}
            if kind == "read":
                return {"op": "read", "slot": slot, "off": rng.randint(0, size + 10),
                        "len": rng.choice([1, 100, 4096, 65536, 200000, 1 << 20])}
            if kind == "ftruncate":
                return {"op": "ftruncate", "slot": slot, "size": self.new_size(size)}
            if kind == "futimens":
                a, m = self.times()
                return {"op": "futimens", "slot": slot, "atime": a, "mtime": m}
            return {"op": kind, "slot": slot}
        if kind == "writefile":
            if files and rng.random() < 0.4:
                path = self.vary(rng.choice(files))
            else:
                path = self.new_name_in(dirs)
            n = self.write_len() if rng.random() < 0.9 else 0
            trunc = rng.random() < 0.85
            off = 0 if trunc or rng.random() < 0.5 else self.offset(self.size_of(path), n)
            return {"op": "writefile", "path": path, "len": n, "off": off, "trunc": trunc,
                    "seed": rng.randrange(1 << 30)}
        if kind == "readfile":
            return {"op": "readfile", "path": self.vary(rng.choice(files))}
        if kind == "truncate":
            f = rng.choice(files)
            return {"op": "truncate", "path": self.vary(f), "size": self.new_size(self.size_of(f))}
        if kind == "utime":
            a, m = self.times()
            return {"op": "utime", "path": self.vary(rng.choice(files + subdirs if rng.random() < 0.2 else files)),
                    "atime": a, "mtime": m}
        if kind == "unlink":
            pool = files if rng.random() < 0.9 or not subdirs else subdirs
            return {"op": "unlink", "path": self.vary(rng.choice(pool))}
        if kind == "rmdir":
            pool = subdirs if rng.random() < 0.9 or not files else files
            return {"op": "rmdir", "path": self.vary(rng.choice(pool))}
        if kind == "mkdir":
            if subdirs and rng.random() < 0.1:
                return {"op": "mkdir", "path": self.vary(rng.choice(subdirs))}    # exists (maybe other case)
            return {"op": "mkdir", "path": self.new_name_in(dirs, "dir")}
        if kind == "rename":
            return self.rename(files, dirs, subdirs)
        if kind == "stat":
            return {"op": "stat", "path": self.vary(rng.choice(files + subdirs + ["nope"]))}
        if kind == "listdir":
            return {"op": "listdir", "path": self.vary(rng.choice(dirs))}
        if kind == "chmod":
            return {"op": "chmod", "path": self.vary(rng.choice(files + dirs)), "mode": rng.choice([0o600, 0o755,
                                                                                                    0o444])}
        if kind == "badname":
            bad = rng.choice(BAD_NAMES)
            d = rng.choice(dirs)
            path = (d + "/" + bad) if d else bad
            what = rng.choice(["writefile", "mkdir", "rename", "open"])
            if what == "rename" and (files or subdirs):
                return {"op": "rename", "src": rng.choice(files + subdirs), "dst": path}
            if what == "mkdir":
                return {"op": "mkdir", "path": path}
            if what == "open":
                return {"op": "open", "slot": (free or [0])[0], "path": path, "mode": "rw", "flags": ["creat"]}
            return {"op": "writefile", "path": path, "len": 10, "off": 0, "trunc": True, "seed": 1}
        if kind == "unsupported":
            what = rng.choice(["symlink", "link", "mknod"])
            if what == "link" and files:
                return {"op": "link", "src": rng.choice(files), "dst": self.new_name_in(dirs)}
            return {"op": "symlink" if what == "link" else what, "path": self.new_name_in(dirs)}
        if kind in ("check", "settle"):
            return {"op": kind}
        raise AssertionError(kind)

    def rename(self, files, dirs, subdirs):
        rng = self.rng
        r = rng.random()
        if subdirs and r < 0.25:
            src = rng.choice(subdirs)
            if rng.random() < 0.5:
                dst = rng.choice(subdirs)                        # folder over folder (empty or not), or self
            else:
                dst = self.new_name_in(dirs, "dir")
            return {"op": "rename", "src": self.vary(src), "dst": self.vary(dst)}
        if not files:
            return {"op": "rename", "src": self.new_name_in(dirs), "dst": self.new_name_in(dirs)}
        src = rng.choice(files)
        if r < 0.55:
            dst = rng.choice(files)                              # over an existing file
        elif r < 0.75:
            d = src.rpartition("/")[0]                           # within the folder
            name = rng.choice(FILE_NAMES)
            dst = (d + "/" + name) if d else name
        else:
            dst = self.new_name_in(dirs)                         # across folders
        if rng.random() < 0.05 and subdirs:
            dst = rng.choice(subdirs)                            # file over folder
        return {"op": "rename", "src": self.vary(src), "dst": self.vary(dst)}


# ================================================================= running
class RunResult:
    def __init__(self, seed, ops, failure=None, runner=None, seconds=0.0, faults=None):
        self.seed = seed
        self.ops = ops
        self.failure = failure
        self.counts = dict(runner.counts) if runner else {}
        self.kills = runner.kills if runner else 0
        self.remounts = runner.remounts if runner else 0
        self.settles = runner.settles if runner else 0
        self.seconds = seconds
        self.faults = faults or {}


def open_slot_sizes(runner):
    out = {}
    for slot, hd in runner.handles.items():
        try:
            out[slot] = os.fstat(hd.lfd).st_size
        except OSError:
            out[slot] = 0
    return out


class Watchdog:
    """Fails a run whose single step takes too long (a hang in the daemon):
    records the daemon's stacks, then SIGKILLs it so the blocked system
    call returns and the run can report."""

    def __init__(self, harness, seconds):
        self.h = harness
        self.seconds = seconds
        self.lock = threading.Lock()
        self.deadline = None
        self.what = None
        self.fired = None
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)
        self.thread.start()

    def arm(self, what, seconds=None):
        with self.lock:
            self.what = what
            self.deadline = time.monotonic() + helpers.deadline(seconds or self.seconds)

    def disarm(self):
        with self.lock:
            self.deadline = None

    def _loop(self):
        while not self.stop_ev.wait(0.5):
            with self.lock:
                late = self.deadline is not None and time.monotonic() > self.deadline
                what = self.what
            if late:
                stacks = self.h.daemon_stacks()
                self.fired = "%s did not finish within %.0fs (hang?)\n--- daemon threads ---\n%s" % (
                    what, helpers.deadline(self.seconds), stacks)
                with self.lock:
                    self.deadline = None
                self.h.kill_quietly()

    def close(self):
        self.stop_ev.set()
        self.thread.join(timeout=5)


def run_ops(ops=None, seed=0, nops=0, workdir=None, opts=None, faults=False, fault_kinds=None, debug=False,
            keep=False, remount_rate=0.004, kill_rate=0.004, big_rate=0.02, step_timeout=120,
            settle_timeout=90, out=None, progress=0, skip=()):
    """Run ops (a list) or, when ops is None, nops generated from seed.
    Returns a RunResult; result.ops is the list actually run (generated or
    given), up to and including the failing step."""
    out = out or (lambda msg: None)
    t0 = time.monotonic()
    h = Harness(workdir=workdir, opts=opts, debug=debug, keep=keep)
    runner = Runner(h, seed=seed, faults=faults, fault_kinds=fault_kinds, settle_timeout=settle_timeout, skip=skip)
    gen = None if ops is not None else Generator(seed, h.model, remount_rate=remount_rate, kill_rate=kill_rate,
                                                 big_rate=big_rate, case_rate=0 if "case" in skip else 0.12)
    pace = Generator(seed, h.model)
    done = []
    failure = None
    dog = Watchdog(h, step_timeout)
    try:
        dog.arm("mounting")
        runner.start()
        total = len(ops) if ops is not None else nops
        for i in range(total):
            if ops is not None:
                # a replay keeps the pace of a generated run (which walks
                # the model and the slots before every operation): some
                # daemon races only show at that pace
                open_slot_sizes(runner)
                Generator.tree(pace)
                op = ops[i]
            else:
                op = gen.next(open_slot_sizes(runner))
            done.append(op)
            slow = op["op"] in ("remount", "kill", "settle")
            dog.arm("step %d %s" % (i, fmt_op(op)), step_timeout + (settle_timeout if slow else 0))
            runner.execute(op, i)
            if dog.fired:
                raise Failure("hang", dog.fired, i)
            if progress and (i + 1) % progress == 0:
                out("  seed %d: %d/%d ops, %.0fs" % (seed, i + 1, total, time.monotonic() - t0))
        dog.arm("the final check and settle", step_timeout + settle_timeout)
        runner.finish()
        if dog.fired:
            raise Failure("hang", dog.fired, "final")
    except Failure as f:
        failure = f
        if dog.fired and f.kind != "hang":
            failure = Failure("hang", dog.fired + "\n(then: %s)" % f, f.step)
    except Exception as e:      # a bug in the tester or an unexpected error
        if dog.fired:
            failure = Failure("hang", dog.fired, runner.step)
        else:
            failure = Failure("exception", "%s\n%s" % (e, traceback.format_exc()), runner.step)
    finally:
        dog.close()
        fault_counts = dict(runner.injector.counts) if runner.injector else {}
        if runner.injector:
            try:
                fault_counts["requests-hit"] = h.fake.stats().get("faults_applied", 0)
            except Exception:
                pass
        if runner.injector and runner.injector.errors and failure is None:
            failure = Failure("injector", "; ".join(runner.injector.errors[:5]), "final")
        runner.shutdown()
        if failure is not None and h.proc is not None and failure.kind not in ("daemon-log", "unmount"):
            text = h.log_text()
            problems = helpers.log_problems(text)
            if problems:
                failure.message += "\n(daemon log problems: %s)" % "; ".join(problems[:5])
        if failure is not None:
            failure.log_dir = str(h.base) if keep else None
        h.close()
    return RunResult(seed, done, failure, runner, time.monotonic() - t0, fault_counts)


# ================================================================ shrinking
def shrink(ops, failure, budget_seconds=300, out=None, **run_kw):
    """Greedy delta debugging: drop chunks of ops (halves, quarters, ...
    single ops) while a fresh run still fails with the same kind.  Returns
    (ops, failure, attempts)."""
    out = out or (lambda msg: None)
    kind = failure.kind
    end = time.monotonic() + budget_seconds
    best, best_f = list(ops), failure
    attempts = 0

    tries = 1

    def still_fails(cand):
        nonlocal attempts
        for _ in range(tries):
            attempts += 1
            r = run_ops(ops=cand, **run_kw)
            if r.failure is not None and r.failure.kind == kind:
                return r
            if time.monotonic() > end:
                break
        return None

    # first: confirm it reproduces from the log at all; a timing-dependent
    # failure gets several tries per candidate
    r = None
    for confirm in range(6):
        attempts += 1
        r = run_ops(ops=best, **run_kw)
        if r.failure is not None and r.failure.kind == kind:
            break
        r = None
    if r is None:
        out("  (the failure did not reproduce from the op log in 6 tries; not shrinking)")
        return best, best_f, attempts, False
    if confirm > 0:
        tries = 4
        out("  (timing-dependent: reproduced on try %d; %d tries per candidate)" % (confirm + 1, tries))
    best, best_f = r.ops, r.failure
    cand = drop_dead_slot_ops(best)
    if len(cand) < len(best):
        r = still_fails(cand)
        if r is not None:
            best, best_f = r.ops, r.failure
    n = 2
    while len(best) >= 2 and time.monotonic() < end:
        size = int(math.ceil(len(best) / n))
        removed = False
        for start in range(0, len(best), size):
            if time.monotonic() > end:
                break
            cand = best[:start] + best[start + size:]
            if not cand:
                continue
            r = still_fails(cand)
            if r is not None:
                best, best_f = r.ops, r.failure
                out("  shrunk to %d ops (%d attempts)" % (len(best), attempts))
                n = max(n - 1, 2)
                removed = True
                break
        if not removed:
            if size <= 1:
                break
            n = min(n * 2, len(best))
    return best, best_f, attempts, True


# ============================================================= concurrency
RECORD = 64


def record(wid, i):
    """One fixed-size line a worker appends to the shared log file."""
    return ("w%02d %06d " % (wid, i)).encode().ljust(RECORD - 1, b".") + b"\n"


def worker_main(root, wid, iterations, seed):
    """One of several processes writing, renaming and listing in the same
    folders (shared/A, shared/B).  Prints its final state as JSON:
    {"files": {rel: [seed, len]}, "appends": n}."""
    rng = random.Random(seed * 1000 + wid)
    folders = ["shared/A", "shared/B"]
    mine = {}                  # rel -> [seed, len]
    appends = 0
    common = []                # [seed, len] of every version renamed over shared/common.dat
    for i in range(iterations):
        r = rng.random()
        if r < 0.08:
            # everybody saves over the same file: it must end as one whole version
            n = rng.choice([1, 3000, 200000])
            dseed = rng.randrange(1 << 30)
            tmp = "%s/.w%02d-c%d.tmp" % (rng.choice(folders), wid, i)
            with open(os.path.join(root, tmp), "wb") as f:
                f.write(rbytes(dseed, n))
            os.rename(os.path.join(root, tmp), os.path.join(root, "shared/common.dat"))
            common.append([dseed, n])
        elif r < 0.5:
            # the save dance: write a temp file, rename it over the real one
            j = rng.randrange(6)
            final = "%s/w%02d-%d.dat" % (folders[j % 2], wid, j)
            tmp = "%s/.w%02d-%d.tmp" % (rng.choice(folders), wid, i)
            n = rng.choice([0, 10, 5000, 70000, 400000])
            dseed = rng.randrange(1 << 30)
            with open(os.path.join(root, tmp), "wb") as f:
                f.write(rbytes(dseed, n))
            os.rename(os.path.join(root, tmp), os.path.join(root, final))
            mine[final] = [dseed, n]
        elif r < 0.65:
            with open(os.path.join(root, "shared/log.txt"), "ab") as f:
                f.write(record(wid, i))
            appends += 1
        elif r < 0.75 and mine:
            rel = rng.choice(sorted(mine))
            os.unlink(os.path.join(root, rel))
            del mine[rel]
        elif r < 0.85 and mine:
            rel = rng.choice(sorted(mine))
            got = Path(root, rel).read_bytes()
            want = rbytes(*mine[rel])
            if got != want:
                raise SystemExit("worker %d: %s reads back %s" % (wid, rel, describe_diff(got, want)))
        else:
            for folder in folders:
                names = set(os.listdir(os.path.join(root, folder)))
                for rel in mine:
                    if rel.startswith(folder + "/") and rel.rpartition("/")[2] not in names:
                        raise SystemExit("worker %d: %s missing from the listing of %s" % (wid, rel, folder))
    print(json.dumps({"files": mine, "appends": appends, "common": common}))
    return 0


def concurrency_run(h, workers=4, iterations=60, seed=1, timeout=120, settle_timeout=90):
    """Run `workers` processes against the mounted harness h at once; a
    watchdog fails (with the daemon's thread stacks) instead of hanging.
    Then the mount and, once settled, the server must hold exactly every
    worker's final files and every appended record.  Raises Failure."""
    root = str(h.mnt)
    os.makedirs(os.path.join(root, "shared/A"))
    os.makedirs(os.path.join(root, "shared/B"))
    Path(root, "shared/log.txt").write_bytes(b"")
    procs = []
    for wid in range(workers):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(wid), "--worker-root", root,
               "--ops", str(iterations), "--seed", str(seed)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=dict(os.environ, PYTHONPATH=str(HERE))))
    end = time.monotonic() + helpers.deadline(timeout)
    while any(p.poll() is None for p in procs) and time.monotonic() < end and not h.daemon_dead():
        time.sleep(0.05)
    if any(p.poll() is None for p in procs):
        why = "the daemon died (exit %s)" % h.proc.returncode if h.daemon_dead() else \
            "the workers did not finish within %.0fs (deadlock?)" % helpers.deadline(timeout)
        stacks = h.daemon_stacks() if not h.daemon_dead() else ""
        h.kill_quietly()               # aborts the connection: blocked system calls return
        for p in procs:
            try:
                p.kill()
                p.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        raise Failure("hang", "%s\n--- daemon threads ---\n%s\n--- daemon log ---\n%s" % (why, stacks,
                                                                                        h.log_tail()))
    expected, appends, common = {}, {}, []
    for wid, p in enumerate(procs):
        outp, errp = p.communicate()
        if p.returncode != 0:
            raise Failure("concurrency", "worker %d failed (exit %d): %s" % (wid, p.returncode, errp[-3000:]))
        st = json.loads(outp.strip().splitlines()[-1])
        for rel, (dseed, n) in st["files"].items():
            expected[rel] = rbytes(dseed, n)
        appends[wid] = st["appends"]
        common += [rbytes(dseed, n) for dseed, n in st["common"]]
    problems = []
    files, _folders = helpers.local_tree(os.path.join(root, "shared"))
    files = {"shared/" + k: v for k, v in files.items()}
    log = files.pop("shared/log.txt", None)
    common_now = files.pop("shared/common.dat", None)
    if common and common_now is None:
        problems.append("shared/common.dat: lost")
    elif common_now is not None and common_now not in common:
        problems.append("shared/common.dat: %d bytes, none of the %d versions saved over it" % (
            len(common_now), len(common)))
    for rel in sorted(set(files) | set(expected)):
        if rel not in files:
            problems.append("%s: lost (not in the mount)" % rel)
        elif rel not in expected:
            problems.append("%s: in the mount but no worker left it there" % rel)
        elif files[rel] != expected[rel]:
            problems.append("%s: %s" % (rel, describe_diff(files[rel], expected[rel])))
    want_log = None
    if log is None:
        problems.append("shared/log.txt: lost")
    else:
        recs = [log[k:k + RECORD] for k in range(0, len(log), RECORD)]
        seen = {}
        for rec in recs:
            seen[rec] = seen.get(rec, 0) + 1
        wanted = [record(wid, i) for wid in range(workers) for i in range(iterations)]
        wanted_n = sum(appends.values())
        if len(log) != wanted_n * RECORD:
            problems.append("shared/log.txt: %d bytes, want %d appended records of %d bytes" % (
                len(log), wanted_n, RECORD))
        dup = [r for r, c in seen.items() if c > 1]
        bad = [r for r in seen if r not in set(wanted)]
        if dup or bad:
            problems.append("shared/log.txt: %d duplicated and %d damaged records" % (len(dup), len(bad)))
        want_log = log
    if problems:
        raise Failure("concurrency", "after %d workers x %d operations:\n  %s" % (workers, iterations,
                                                                                   "\n  ".join(problems[:20])))
    # the server must end up with the same
    if want_log is not None:
        expected["shared/log.txt"] = want_log
    if common_now is not None:
        expected["shared/common.dat"] = common_now
    hashes = {rel: (len(v), quickxorhash(v)) for rel, v in expected.items()}
    end = time.monotonic() + helpers.deadline(settle_timeout)
    while True:
        dump = h.dump()
        remote = {rel: (r["size"], r["quickXorHash"]) for rel, r in dump.items()
                  if rel.startswith("shared/") and not r["folder"]}
        if remote == hashes:
            return {"files": len(expected), "appends": sum(appends.values())}
        if time.monotonic() > end:
            diff = ["%s: server %s, want %s" % (rel, remote.get(rel), hashes.get(rel))
                    for rel in sorted(set(remote) | set(hashes)) if remote.get(rel) != hashes.get(rel)]
            raise Failure("concurrency", "after %.0fs the server still differs:\n  %s"
                          % (helpers.deadline(settle_timeout), "\n  ".join(diff[:20])))
        time.sleep(0.1)


def drop_dead_slot_ops(ops):
    """ops without the descriptor operations on a slot that no earlier
    operation opened (they do nothing)."""
    out, opened = [], set()
    for op in ops:
        if op["op"] == "open":
            opened.add(op["slot"])
        elif "slot" in op and op["slot"] not in opened:
            continue
        out.append(op)
        if op["op"] == "close":
            opened.discard(op["slot"])
        elif op["op"] in ("remount", "kill", "settle"):     # these close every slot
            opened.clear()
    return out


# ===================================================================== CLI
def report_failure(seed, res, shrunk_ops, shrunk_failure, reproduced, log_dir):
    lines = ["", "=" * 72, "FAILURE with seed %d after %d operations: %s" % (seed, len(res.ops), res.failure.kind),
             str(res.failure)]
    if shrunk_ops is not None:
        lines.append("-" * 72)
        lines.append("shrunk op log (%d ops, %s):" % (len(shrunk_ops),
                                                      "reproduces" if reproduced else "did NOT reproduce"))
        for op in shrunk_ops:
            lines.append("  " + fmt_op(op))
        if shrunk_failure is not None and shrunk_failure is not res.failure:
            lines.append("shrunk failure: %s" % shrunk_failure)
    path = None
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
        path = os.path.join(log_dir, "modelcheck-seed%d.ops" % seed)
        with open(path, "w") as f:
            for op in (shrunk_ops if shrunk_ops is not None else res.ops):
                f.write(fmt_op(op) + "\n")
        full = os.path.join(log_dir, "modelcheck-seed%d.full.ops" % seed)
        with open(full, "w") as f:
            for op in res.ops:
                f.write(fmt_op(op) + "\n")
        lines.append("replay: python3 tests/modelcheck.py --replay %s   (full log: %s)" % (path, full))
    lines.append("regenerate: python3 tests/modelcheck.py --seed %d --ops %d" % (seed, len(res.ops)))
    lines.append("=" * 72)
    return "\n".join(lines), path


def load_ops(path):
    ops = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                ops.append(json.loads(line))
    return ops


def check_seed(seed, nops, shrink_seconds=300, log_dir=None, out=print, **kw):
    """Run one seed; on failure shrink and return the report text (None when it passed)."""
    res = run_ops(seed=seed, nops=nops, out=out, **kw)
    summary = "seed %d: %d ops in %.1fs, %d remounts, %d kills, %d settles%s" % (
        seed, len(res.ops), res.seconds, res.remounts, res.kills, res.settles,
        ", faults %s" % json.dumps(res.faults, sort_keys=True) if res.faults else "")
    if res.failure is None:
        out(summary + ": ok")
        return None, res
    out(summary + ": FAILED (%s at step %s)" % (res.failure.kind, res.failure.step))
    shrunk, sf, reproduced = None, None, False
    if shrink_seconds > 0:
        out("  shrinking (budget %ds)..." % shrink_seconds)
        kw2 = {k: v for k, v in kw.items() if k not in ("progress",)}
        shrunk, sf, attempts, reproduced = shrink(res.ops, res.failure, shrink_seconds, out=out, seed=seed, **kw2)
        out("  %d attempts" % attempts)
    text, _path = report_failure(seed, res, shrunk, sf, reproduced, log_dir)
    return text, res


def main(argv=None):
    ap = argparse.ArgumentParser(description="randomized model-based tester of the onedrivefs mount")
    ap.add_argument("--seed", type=int, action="append", help="seed (repeatable); default: one random seed")
    ap.add_argument("--ops", type=int, default=1000, help="operations per seed (default 1000)")
    ap.add_argument("--total-ops", type=int, default=0,
                    help="keep running consecutive seeds until this many operations ran in total")
    ap.add_argument("--seconds", type=float, default=0, help="keep running consecutive seeds for this long")
    ap.add_argument("--replay", help="run the op log in this file (one JSON op per line) instead")
    ap.add_argument("--repeat", type=int, default=1, help="with --replay: run it up to N times until it fails")
    ap.add_argument("--faults", action="store_true", help="inject server faults at random (fault soak)")
    ap.add_argument("--fault-kinds", help="comma-separated subset of: " + ",".join(FAULT_KINDS))
    ap.add_argument("--kill-rate", type=float, default=0.004, help="chance per op of a SIGKILL + remount")
    ap.add_argument("--remount-rate", type=float, default=0.004, help="chance per op of a clean remount")
    ap.add_argument("--big-rate", type=float, default=0.02, help="chance of a 1-3 MiB write")
    ap.add_argument("--shrink-seconds", type=float, default=600, help="time budget for shrinking (0: none)")
    ap.add_argument("--step-timeout", type=float, default=120, help="seconds one operation may take")
    ap.add_argument("--settle-timeout", type=float, default=90, help="seconds uploads may take to land")
    ap.add_argument("--log-dir", default="/tmp", help="where failing op logs are written (default /tmp)")
    ap.add_argument("--workdir", help="where the temporary folders go (default $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders (daemon logs, model)")
    ap.add_argument("--debug", action="store_true", help="run the daemon with -d")
    ap.add_argument("-o", dest="opts", action="append", default=[], help="extra mount option KEY=VALUE")
    ap.add_argument("--progress", type=int, default=0, help="print progress every N ops")
    ap.add_argument("--keep-going", action="store_true", help="continue with the next seed after a failure")
    ap.add_argument("--skip", action="append", default=[], choices=["orphans", "case"],
                    help="turn a check off to look past a known bug (orphans: I/O through descriptors of "
                         "unlinked or replaced files; case: paths spelt in another case than stored); "
                         "never in make check")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--worker-root", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker is not None:
        return worker_main(args.worker_root, args.worker, args.ops, (args.seed or [1])[0])

    if not os.path.exists(helpers.BINARY):
        print("modelcheck: no binary at %s: run make first" % helpers.BINARY, file=sys.stderr)
        return 2
    opts = dict(DEFAULT_OPTS)
    for o in args.opts:
        k, _, v = o.partition("=")
        opts[k] = v
    kw = dict(workdir=args.workdir, opts=opts, faults=args.faults,
              fault_kinds=args.fault_kinds.split(",") if args.fault_kinds else None, debug=args.debug,
              keep=args.keep, remount_rate=args.remount_rate, kill_rate=args.kill_rate, big_rate=args.big_rate,
              step_timeout=args.step_timeout, settle_timeout=args.settle_timeout, skip=args.skip)
    out = lambda msg: print(msg, flush=True)      # noqa: E731

    if args.replay:
        ops = load_ops(args.replay)
        out("replaying %d ops from %s" % (len(ops), args.replay))
        for attempt in range(args.repeat):
            res = run_ops(ops=ops, seed=(args.seed or [0])[0], out=out, progress=args.progress, **kw)
            if res.failure is not None:
                break
            out("replay passed (%.1fs)" % res.seconds)
        if res.failure is None:
            return 0
        out("replay FAILED: %s" % res.failure)
        if args.shrink_seconds > 0 and len(ops) > 1:
            out("  shrinking (budget %ds)..." % args.shrink_seconds)
            shrunk, sf, attempts, reproduced = shrink(res.ops, res.failure, args.shrink_seconds, out=out,
                                                      seed=(args.seed or [0])[0], **kw)
            text, _path = report_failure((args.seed or [0])[0], res, shrunk, sf, reproduced, args.log_dir)
            out(text)
        return 1

    seeds = list(args.seed or [])
    if not seeds:
        seeds = [random.SystemRandom().randrange(1, 1 << 31)]
    out("modelcheck: binary %s, seeds %s%s, %d ops per seed%s" % (
        helpers.BINARY, seeds, " and following" if (args.total_ops or args.seconds) else "", args.ops,
        ", with faults" if args.faults else ""))
    t0 = time.monotonic()
    total = 0
    failures = []
    fault_totals = {}
    i = 0
    while True:
        if i < len(seeds):
            seed = seeds[i]
        elif (args.total_ops and total < args.total_ops) or (args.seconds and time.monotonic() - t0 < args.seconds):
            seed = seeds[-1] + (i - len(seeds) + 1)
        else:
            break
        i += 1
        text, res = check_seed(seed, args.ops, shrink_seconds=args.shrink_seconds, log_dir=args.log_dir, out=out,
                               progress=args.progress, **kw)
        total += len(res.ops)
        for k, v in res.faults.items():
            fault_totals[k] = fault_totals.get(k, 0) + v
        if text:
            out(text)
            failures.append(seed)
            if not args.keep_going:
                break
    out("modelcheck: %d runs, %d operations, %.0fs%s; %s" % (
        i, total, time.monotonic() - t0,
        ", faults injected %s" % json.dumps(fault_totals, sort_keys=True) if fault_totals else "",
        "failed seeds %s" % failures if failures else "all passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
