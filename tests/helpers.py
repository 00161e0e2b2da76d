"""Helpers shared by the onedrivefs integration tests (not a test module).

Everything here waits on conditions with deadlines; nothing sleeps and
hopes.  Deadlines scale with ODFS_VALGRIND=1 (x10) and ODFS_TIMEOUT_FACTOR.
"""

import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BINARY = os.environ.get("ODFS_BINARY") or str(REPO / "onedrivefs")
VALGRIND = os.environ.get("ODFS_VALGRIND") == "1"
VALGRIND_CMD = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite"]
VALGRIND_EXIT = 99

try:
    _factor = float(os.environ.get("ODFS_TIMEOUT_FACTOR", "1"))
except ValueError:
    _factor = 1.0
TIMEOUT_FACTOR = _factor * (10.0 if VALGRIND else 1.0)


def deadline(seconds):
    """Seconds scaled for slow runs (valgrind, sanitizers)."""
    return seconds * TIMEOUT_FACTOR


def wait_until(cond, timeout, what, interval=0.02):
    """Poll cond() until it returns a true value (returned) or the scaled
    deadline passes (AssertionError naming `what`)."""
    end = time.monotonic() + deadline(timeout)
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out after %.1fs waiting for %s" % (deadline(timeout), what))
        time.sleep(interval)


# ------------------------------------------------------------------ mounts
def _unescape_mountinfo(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounts():
    """[(mountpoint, fstype, source)] from /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            rfields = right.split()
            if len(fields) < 5 or len(rfields) < 2:
                continue
            out.append((_unescape_mountinfo(fields[4]), rfields[0], rfields[1]))
    return out


def fuse_connection_abort(path):
    """Abort the FUSE connection behind the mount at path, as the kernel does
    when a daemon is torn away: requests it has not answered are dropped,
    releases of files still open included."""
    path = os.path.realpath(str(path))
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if _unescape_mountinfo(fields[4]) == path:
                minor = fields[2].split(":")[1]
                break
        else:
            raise AssertionError("%s is not mounted" % path)
    conn = "/sys/fs/fuse/connections"
    if not os.path.exists(os.path.join(conn, minor)):
        # fusectl is not mounted on every machine; root can mount it
        subprocess.run(["mount", "-t", "fusectl", "fusectl", conn], capture_output=True, timeout=30)
    with open(os.path.join(conn, minor, "abort"), "w") as f:
        f.write("1")


def mount_count(path):
    path = os.path.realpath(str(path))
    return sum(1 for m in mounts() if m[0] == path)


def is_mounted(path):
    return mount_count(path) > 0


def fuse_unmount(path):
    """Unmount path (lazily when busy).  Returns the list of problems."""
    problems = []
    path = str(path)
    if not is_mounted(path):
        return problems
    r = subprocess.run(["fusermount3", "-u", path], capture_output=True, text=True, timeout=30)
    if r.returncode != 0 and is_mounted(path):
        problems.append("fusermount3 -u '%s' failed: %s" % (path, r.stderr.strip()))
        subprocess.run(["fusermount3", "-uz", path], capture_output=True, text=True, timeout=30)
    return problems


# --------------------------------------------------------------- processes
def odfs_cmd(args, valgrind=False, valgrind_log=None):
    """argv for onedrivefs; valgrind_log (a path, %p allowed) sends
    valgrind's report to files (daemon mode: the child's stderr is gone)."""
    cmd = [BINARY] + list(args)
    if valgrind:
        vg = list(VALGRIND_CMD)
        if valgrind_log:
            vg.append("--log-file=%s" % valgrind_log)
        cmd = vg + cmd
    return cmd


def run_odfs(args, env, timeout=30, valgrind=False, input=None, valgrind_log=None):
    """Run onedrivefs to completion; returns CompletedProcess (text)."""
    return subprocess.run(odfs_cmd(args, valgrind, valgrind_log), env=env, capture_output=True, text=True,
                          timeout=deadline(timeout), input=input,
                          errors="surrogateescape")


def pids_with_cmdline(fragment):
    """Pids of onedrivefs processes (or valgrind running it) whose command
    line contains fragment."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                raw = f.read()
        except OSError:
            continue
        argv = raw.split(b"\0")
        joined = raw.replace(b"\0", b" ")
        if fragment.encode() in joined and any(a.endswith(b"onedrivefs") for a in argv[:8]):
            out.append(int(d))
    return out


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_pid(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# -------------------------------------------------------------------- logs
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer",
                     "UndefinedBehaviorSanitizer")
_VG_ERRORS = re.compile(r"^==\d+== ERROR SUMMARY: ([1-9]\d*) errors", re.M)
_ERROR_LINE = re.compile(r"(^|\s)error:")


def log_problems(text, expect_errors=()):
    """Unexpected `error:` lines and sanitizer/valgrind reports in a log."""
    problems = []
    pats = [re.compile(p) for p in expect_errors]
    for line in text.splitlines():
        if _ERROR_LINE.search(line) and not any(p.search(line) for p in pats):
            problems.append("unexpected error line: %r" % line)
    for m in SANITIZER_MARKERS:
        if m in text:
            problems.append("sanitizer report (%s) in the log" % m)
    if _VG_ERRORS.search(text):
        problems.append("valgrind reported errors")
    return problems


def sanitizer_problems(text):
    """Sanitizer or valgrind reports in a log (always a failure)."""
    return [p for p in log_problems(text) if not p.startswith("unexpected error line")]


def message_lines(text):
    """Lines of a log that are not valgrind/sanitizer noise."""
    return [l for l in text.splitlines() if l.strip() and not l.startswith("==")]


# -------------------------------------------------------------- fake stats
def req_count(stats, pred):
    """Sum of stats['requests'] entries whose label satisfies pred."""
    return sum(n for label, n in stats["requests"].items() if pred(label))


def children_rules(item_id, rule):
    """Fault rules hitting the listing of one folder (all its pages),
    whichever URL form the client uses (by drive id, any case, or /me/drive)."""
    drive_id = item_id.split("!")[0]
    out = []
    for prefix in ("/v1.0/drives/%s/items/%s/children" % (drive_id, item_id),
                   "/v1.0/drives/%s/items/%s/children" % (drive_id.lower(), item_id),
                   "/v1.0/me/drive/items/%s/children" % item_id):
        r = dict(rule)
        r["match"] = "GET " + prefix
        out.append(r)
    return out


# ================================================================ writing
# Helpers for the write-path suites (tests/test_write*.py).

MIB = 1 << 20
XATTR_PREFIX = "user.onedrive."


def qxhash(data):
    """Base64 quickXorHash of bytes (the fake's reference implementation)."""
    from fakegraph.qxhash import quickxorhash
    return quickxorhash(data)


def pattern_chunks(size, seed, chunk=MIB):
    """Deterministic bytes, produced in chunks: every 64 KiB block starts
    with its own stamp, so a misplaced block is detected."""
    import hashlib
    base = hashlib.shake_256(b"odfs-pattern:%d" % seed).digest(65536)
    pos = 0
    buf = bytearray()
    k = 0
    while pos < size:
        while len(buf) < chunk and pos + len(buf) < size:
            stamp = hashlib.blake2b(b"%d:%d" % (seed, k), digest_size=16).digest()
            buf += stamp + base[16:]
            k += 1
        n = min(chunk, size - pos)
        yield bytes(buf[:n])
        del buf[:n]
        pos += n


def pattern(size, seed):
    """pattern_chunks() joined (for sizes that fit in memory)."""
    return b"".join(pattern_chunks(size, seed))


def xattr(path, name):
    """user.onedrive.<name> of path as text, None when it has none."""
    import errno
    try:
        return os.getxattr(str(path), XATTR_PREFIX + name).decode("utf-8", "surrogateescape")
    except OSError as e:
        if e.errno == errno.ENODATA:
            return None
        raise


def local_tree(root):
    """({rel: bytes} of the files, {rel} of the folders) below root."""
    root = str(root)
    files, folders = {}, set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for d in dirnames:
            folders.add(os.path.normpath(os.path.join(rel_dir, d)))
        for f in filenames:
            rel = os.path.normpath(os.path.join(rel_dir, f))
            with open(os.path.join(dirpath, f), "rb") as fh:
                files[rel] = fh.read()
    return files, folders


def remote_under(fake, prefix):
    """{rel: dump record} of everything below prefix ("" = the whole drive,
    the root itself excluded)."""
    prefix = prefix.strip("/")
    out = {}
    for path, rec in fake.dump_by_path().items():
        if not path:
            continue
        if not prefix:
            out[path] = rec
        elif path.startswith(prefix + "/"):
            out[path[len(prefix) + 1:]] = rec
    return out


def landed_mismatches(dump, expected):
    """What differs between the dump ({path: record}) and expected
    ({path: bytes}): a list of short descriptions (empty when all landed)."""
    out = []
    for path, want in expected.items():
        rec = dump.get(path)
        if rec is None:
            out.append("%s: missing" % path)
        elif rec["folder"]:
            out.append("%s: is a folder" % path)
        elif rec["size"] != len(want):
            out.append("%s: size %d, want %d" % (path, rec["size"], len(want)))
        elif rec["quickXorHash"] != qxhash(want):
            out.append("%s: quickXorHash %s, want %s" % (path, rec["quickXorHash"], qxhash(want)))
    return out


def wait_landed(fake, expected, timeout=60, what="the uploads"):
    """Wait until every path of expected ({path: bytes}, paths without a
    leading slash) is on the fake with that size and quickXorHash; returns
    the dump ({path: record}).  The error names what is still missing."""
    expected = {p.strip("/"): bytes(v) for p, v in expected.items()}
    hashes = {p: qxhash(v) for p, v in expected.items()}
    end = time.monotonic() + deadline(timeout)
    while True:
        dump = fake.dump_by_path()
        bad = []
        for path, want in expected.items():
            rec = dump.get(path)
            if rec is None or rec["folder"] or rec["size"] != len(want) or rec["quickXorHash"] != hashes[path]:
                bad.append(path)
        if not bad:
            return dump
        if time.monotonic() > end:
            desc = landed_mismatches(dump, {p: expected[p] for p in bad[:10]})
            raise AssertionError("timed out after %.1fs waiting for %s; %d not landed, e.g.:\n  %s"
                                 % (deadline(timeout), what, len(bad), "\n  ".join(desc)))
        time.sleep(0.05)


def wait_gone(fake, paths, timeout=30):
    """Wait until none of paths is on the fake any more."""
    paths = [p.strip("/") for p in paths]
    return wait_until(lambda: not (set(paths) & set(fake.dump_by_path())), timeout,
                      "%s to disappear from the server" % ", ".join(paths[:5]))


def statuses(root):
    """{rel: user.onedrive.status} of every file below root."""
    out = {}
    root = str(root)
    for dirpath, _dirnames, filenames in os.walk(root):
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = xattr(p, "status")
    return out


def wait_settled(root, timeout=60):
    """Wait until every file below root (a path in a mount) has
    user.onedrive.status "clean"."""
    end = time.monotonic() + deadline(timeout)
    while True:
        st = statuses(root)
        bad = {p: s for p, s in st.items() if s != "clean"}
        if not bad:
            return st
        if time.monotonic() > end:
            raise AssertionError("timed out after %.1fs waiting for the files below %s to be clean; "
                                 "not clean: %r" % (deadline(timeout), root, dict(list(bad.items())[:10])))
        time.sleep(0.1)


def assert_remote_tree(fake, local_root, prefix):
    """The fake's subtree at prefix equals the local folder local_root:
    same names (files and folders), sizes, quickXorHashes and bytes."""
    files, folders = local_tree(local_root)
    remote = remote_under(fake, prefix)
    rfiles = {p for p, r in remote.items() if not r["folder"]}
    rfolders = {p for p, r in remote.items() if r["folder"]}
    assert rfolders == folders, "folders differ: only remote %r, only local %r" % (
        sorted(rfolders - folders), sorted(folders - rfolders))
    assert rfiles == set(files), "files differ: only remote %r, only local %r" % (
        sorted(rfiles - set(files)), sorted(set(files) - rfiles))
    for rel, data in files.items():
        rec = remote[rel]
        assert rec["size"] == len(data), rel
        assert rec["quickXorHash"] == qxhash(data), rel
        assert fake.content(prefix.strip("/") + "/" + rel if prefix.strip("/") else rel) == data, rel


def versions(fake, path):
    """Versions of a file on the fake, newest first [{"id","size","quickXorHash"}]."""
    return fake.server.versions_of("/" + path.strip("/"))


def recycle_bin(fake):
    return fake.server.recycle_bin()


def upload_sessions(fake):
    return fake.server.upload_sessions()


def expire_upload_sessions(fake):
    return fake.ctl("POST", "upload/expire", {})["expired"]


def set_quota(fake, total):
    return fake.ctl("POST", "quota", {"total": int(total)})


def quota(fake):
    return fake.server.quota()


def peer(fake):
    """A second Graph client ("another device") on the fake."""
    return fake.server.client()


def log_lines_matching(text, regex):
    rx = re.compile(regex)
    return [l for l in message_lines(text) if rx.search(l)]


def kill_daemon(m):
    """SIGKILL the daemon of Mount m, lazily unmount the dead mount and
    mark m stopped; fail on sanitizer reports and unexpected `error:` lines
    in what it logged before dying."""
    m.proc.send_signal(signal.SIGKILL)
    m.proc.wait(timeout=deadline(30))
    m.done = True
    m.returncode = m.proc.returncode
    subprocess.run(["fusermount3", "-uz", str(m.path)], capture_output=True, timeout=30)
    wait_until(lambda: not is_mounted(m.path), 10, "the dead mount of %s to go" % m.path)
    text = m.stderr_text()
    m.env.outputs.append(text)
    problems = log_problems(text, m.expect_errors)
    assert not problems, "daemon for %s before SIGKILL:\n  %s\n%s" % (m.path, "\n  ".join(problems),
                                                                      text[-6000:])


def meta_db_integrity(env):
    """PRAGMA integrity_check of cache_dir/meta.db ("ok" when sound)."""
    import sqlite3
    db = env.cache_dir / "meta.db"
    assert db.is_file(), "no %s" % db
    con = sqlite3.connect(str(db), timeout=10)
    try:
        rows = con.execute("PRAGMA integrity_check").fetchall()
    finally:
        con.close()
    return "\n".join(r[0] for r in rows)


def binary_has_sanitizer():
    """True when the onedrivefs binary was built with ASan/UBSan."""
    try:
        with open(BINARY, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"__ubsan_handle" in data


def rss_anon_kib(pid):
    """RssAnon of a process in KiB (0 when it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pattern_range(size, seed, off, n):
    """Bytes [off, off+n) of pattern(size, seed) without producing the rest."""
    import hashlib
    base = hashlib.shake_256(b"odfs-pattern:%d" % seed).digest(65536)
    end = min(size, off + n)
    out = bytearray()
    k = off // 65536
    while k * 65536 < end:
        out += hashlib.blake2b(b"%d:%d" % (seed, k), digest_size=16).digest() + base[16:]
        k += 1
    start = off - (off // 65536) * 65536
    return bytes(out[start:start + (end - off)])


def call_with_deadline(fn, timeout, what):
    """Run fn() in a thread; its result, or AssertionError when it is still
    blocked after the (scaled) deadline.  For calls that must not hang,
    such as fsync() on a file whose upload cannot succeed."""
    import threading
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:      # handed to the caller
            box["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(deadline(timeout))
    if t.is_alive():
        raise AssertionError("%s still blocked after %.1fs" % (what, deadline(timeout)))
    if "error" in box:
        raise box["error"]
    return box.get("value")


def read_back(path):
    """The bytes of a file (through the mount)."""
    with open(str(path), "rb") as f:
        return f.read()


def wait_equal(get, want, timeout, what):
    """Wait until get() == want; the error shows the last value seen."""
    last = [None]

    def cond():
        last[0] = get()
        return last[0] == want
    try:
        wait_until(cond, timeout, what)
    except AssertionError as e:
        raise AssertionError("%s; last value %r, want %r" % (e, last[0], want))


# ---------------------------------------------------------------- secrets
SCAN_MAX_BYTES = 50 * MIB       # larger files are user content, not worth reading
SECRET_MIN_LEN = 8              # shorter test secrets ("s3cret") would match by chance
TOKEN_FILE_NAMES = ("tokens.json",)


def secret_label(secret, kind):
    """How a problem names a secret: its kind, first 4 characters and
    length, never the secret itself."""
    return "%s %s... (%d chars)" % (kind, secret[:4], len(secret))


_WINDOW = 24
_TOKEN_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_RUN_MAP = bytes(0x61 if c in _TOKEN_CHARS else 0x0a for c in range(256))   # token chars -> 'a', others -> '\n'


def _secret_fragments(secrets):
    """{fragment bytes: (secret, kind)}: a long secret is found by its last
    24 characters and by 24 from its middle (so a truncated copy counts
    too; fixed prefixes such as a JWT header are never used), a short one
    only whole."""
    frags = {}
    for s, kind in secrets.items():
        if len(s) < SECRET_MIN_LEN:
            continue
        parts = [s] if len(s) < 64 else [s[-_WINDOW:], s[len(s) // 2 - _WINDOW // 2:len(s) // 2 + _WINDOW // 2]]
        for p in parts:
            frags[p.encode("utf-8", "surrogateescape")] = (s, kind)
    return frags


def _fragments_in(data, windows, others):
    """The fragments present in data.  windows (24 token characters each)
    can only sit in a run of >= 24 token characters: bytes.translate and
    bytes.find locate those runs at C speed, and only their 24-byte windows
    are looked up; others are searched with bytes.find."""
    found = {f for f in others if f in data}
    if not windows:
        return found
    runs = data.translate(_RUN_MAP)
    needle = b"a" * _WINDOW
    pos = runs.find(needle)
    while pos >= 0:
        end = runs.find(b"\n", pos)        # the first hit is a run's start: it ends here
        end = len(runs) if end < 0 else end
        run = data[pos:end]
        if end - pos > 4096:                # a long run (user data): one search per fragment
            found.update(w for w in windows if w in run)
        else:
            found.update(w for w in (run[i:i + _WINDOW] for i in range(end - pos - _WINDOW + 1)) if w in windows)
        pos = runs.find(needle, end)
    return found


def _mode_problem(path, want, what):
    mode = os.lstat(path).st_mode & 0o777
    if mode != want:
        return "%s '%s' has mode %o, want %o" % (what, path, mode, want)
    return None


def secret_problems(secrets, root, texts=None):
    """Leaks of secrets ({secret: kind}, e.g. FakeGraph.issued_secrets())
    in the regular files below root (files over SCAN_MAX_BYTES and FUSE
    mounts are skipped) and in texts ({where: str}, captured outputs), and
    token or secret files with loose modes.  A file named tokens.json is
    the token store, and a file holding exactly a client secret is a
    secret file: neither counts as a leak, but each must be mode 600, and
    tokens.json's folder 700.  Each file is read once and searched for
    all secrets at once (_fragments_in).  Returns a list of problems naming
    the file and the kind of secret (see secret_label)."""
    frags = _secret_fragments(secrets)
    windows = {f for f in frags if len(f) == _WINDOW and _TOKEN_CHARS.issuperset(f)}
    others = set(frags) - windows
    client_secrets = {s.encode("utf-8", "surrogateescape") for s, k in secrets.items()
                      if k == "client secret" and len(s) >= SECRET_MIN_LEN}
    problems = []

    def search(data, where):
        found = dict(frags[f] for f in _fragments_in(data, windows, others))
        for s, kind in sorted(found.items(), key=lambda x: x[1]):
            problems.append("%s holds a secret: %s" % (where, secret_label(s, kind)))

    root = os.path.realpath(str(root))
    mounted = {mp for mp, _fs, _src in mounts() if mp == root or mp.startswith(root + "/")}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in mounted]
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode):
                    continue
                if name in TOKEN_FILE_NAMES:
                    problems += [p for p in (_mode_problem(path, 0o600, "token file"),
                                             _mode_problem(dirpath, 0o700, "the folder of token file"))
                                 if p]
                    continue
                if st.st_size > SCAN_MAX_BYTES:
                    continue
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue        # gone meanwhile, or not ours to read
            if len(data) < 4096 and data.strip() in client_secrets:
                p = _mode_problem(path, 0o600, "secret file")
                if p:
                    problems.append(p)
                continue
            search(data, "'%s'" % path)
    for where, text in (texts or {}).items():
        search(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text), where)
    return problems
