"""Fixtures for the onedrivefs integration tests.

fake      a started FakeGraph (function scope) wrapped in FakeCtl: control
          endpoints as methods (seed, dump, stats, stats_reset, faults,
          config, expire_tokens, revoke_tokens, approve, decline, content).
env       an OdfsEnv: temp HOME, XDG_CONFIG_HOME, XDG_CACHE_HOME and a
          mountpoint, all under one per-test folder; .environ for subprocesses.
          Its teardown fails the test when a file below that folder or a
          captured output holds a secret the fake issued, or a token or
          secret file is not private (helpers.secret_problems).
login     runs `onedrivefs login -o ...` against the fake (auto-approved),
          checks exit 0 and tokens.json 0600 / folder 0700; returns the result.
mounter   factory: mounter.mount(opts={}, expect_errors=(), debug=False)
          starts `onedrivefs -f` and returns a Mount once it shows in
          /proc/self/mountinfo; every mount is unmounted and checked at
          teardown (exit status, stderr, sanitizers, valgrind, auth violations).
mount     mounter.mount() with the options of @pytest.mark.mount_opts(...) and
          the expected error regexes of @pytest.mark.expect_errors(...).

A session-level safety net unmounts anything left under the session's temp
root and kills onedrivefs processes whose command line points into it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers  # noqa: E402
from helpers import deadline, wait_until  # noqa: E402

from fakegraph import FakeGraph  # noqa: E402

SESSION_ROOT = None


# ----------------------------------------------------------- safety net
def _cleanup_root(root):
    for mp, _fs, _src in helpers.mounts():
        if mp.startswith(root + "/"):
            subprocess.run(["fusermount3", "-uz", mp], capture_output=True, timeout=30)
    for pid in helpers.pids_with_cmdline(root):
        helpers.kill_pid(pid)


@pytest.fixture(scope="session", autouse=True)
def session_root():
    global SESSION_ROOT
    root = tempfile.mkdtemp(prefix="odfs-test-")
    SESSION_ROOT = root
    yield root
    _cleanup_root(root)
    shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------ fake
class FakeCtl:
    """The fake server plus its control endpoints."""

    def __init__(self, server):
        self.server = server
        self.url = server.url
        self.graph_url = server.graph_url
        self.auth_url = server.auth_url
        self.client_id = getattr(FakeGraph, "CLIENT_ID", "00000000-0000-0000-0000-0000000000a1")
        self.seeded = {}          # path (no leading slash) -> content spec

    def ctl(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "/_control/" + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
        return json.loads(raw) if raw.strip() else None

    def seed(self, tree):
        for e in tree:
            if not e.get("folder"):
                self.seeded[e["path"].strip("/")] = e.get("content")
        return self.ctl("POST", "seed", {"tree": tree})

    def dump(self):
        return self.ctl("GET", "dump")["items"]

    def dump_by_path(self):
        """{'a/b': record} (no leading slash)."""
        return {r["path"].lstrip("/"): r for r in self.dump()}

    def stats(self):
        return self.ctl("GET", "stats")

    def stats_reset(self):
        return self.ctl("POST", "stats/reset", {})

    def faults(self, spec):
        return self.ctl("POST", "faults", spec)

    def config(self, **kw):
        return self.ctl("POST", "config", kw)

    def expire_tokens(self):
        return self.ctl("POST", "tokens/expire", {})

    def revoke_tokens(self):
        return self.ctl("POST", "tokens/revoke", {})

    def approve(self):
        return self.ctl("POST", "device/approve", {})

    def decline(self):
        return self.ctl("POST", "device/decline", {})

    def content(self, path):
        """The bytes of a file on the fake drive."""
        path = path.strip("/")
        fn = getattr(self.server, "content", None)
        if fn is not None:
            data = fn("/" + path)
            if hasattr(data, "to_bytes"):
                data = data.to_bytes()
            return bytes(data)
        from fakegraph.content import make_content
        return make_content(self.seeded[path]).to_bytes()

    def auth_violations(self):
        return self.stats().get("auth_violations", [])

    def opts(self, **extra):
        """The -o string every onedrivefs command needs for this fake."""
        o = {"client_id": self.client_id, "auth_url": self.auth_url, "graph_url": self.graph_url}
        o.update({k: None if v is None else str(v) for k, v in extra.items()})
        # a None value is a bare flag such as ro
        return ",".join(k if v is None else "%s=%s" % (k, v) for k, v in o.items())


STARTED_FAKES = []     # FakeGraphs of start_fake() not yet scanned for by an env teardown


def _started_fakes_secrets():
    """issued_secrets() of every fake started since the last env teardown."""
    out = {}
    for server in STARTED_FAKES:
        out.update(server.issued_secrets())
    del STARTED_FAKES[:]
    return out


def start_fake(**options):
    options.setdefault("auto_approve", True)
    # fast device-code polling so that each login costs about a second
    options.setdefault("device_interval", 1)
    server = FakeGraph(port=0, **options)
    server.start()
    STARTED_FAKES.append(server)
    return FakeCtl(server)


@pytest.fixture
def fake():
    ctl = start_fake()
    try:
        yield ctl
        violations = ctl.auth_violations()
        assert violations == [], "Authorization header sent where it must not be: %r" % violations
    finally:
        ctl.server.stop()


# ------------------------------------------------------------------- env
class OdfsEnv:
    def __init__(self, base):
        self.base = Path(base)
        self.home = self.base / "home"
        self.config_home = self.base / "config"
        self.cache_home = self.base / "cache"
        self.mnt = self.base / "mnt"
        for d in (self.home, self.config_home, self.cache_home, self.mnt):
            d.mkdir(parents=True)
        self.config_dir = self.config_home / "onedrivefs"
        self.cache_dir = self.cache_home / "onedrivefs"
        self.tokens = self.config_dir / "tokens.json"
        self.environ = dict(os.environ)
        for k in list(self.environ):
            if k.startswith(("XDG_", "ODFS_")) or k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                                                         "https_proxy", "ALL_PROXY", "all_proxy"):
                del self.environ[k]
        self.environ.update(HOME=str(self.home), XDG_CONFIG_HOME=str(self.config_home),
                            XDG_CACHE_HOME=str(self.cache_home), NO_PROXY="127.0.0.1,localhost",
                            LC_ALL="C.UTF-8")
        self.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.outputs = []         # every captured output, for the token-leak check

    def run(self, args, timeout=30, valgrind=None):
        """Run onedrivefs (under valgrind when ODFS_VALGRIND=1) and fail on
        any sanitizer or valgrind report."""
        if valgrind is None:
            valgrind = helpers.VALGRIND
        r = helpers.run_odfs(args, self.environ, timeout=timeout, valgrind=valgrind)
        self.outputs.append(r.stdout + r.stderr)
        problems = helpers.sanitizer_problems(r.stdout + r.stderr)
        if valgrind and r.returncode == helpers.VALGRIND_EXIT:
            problems.append("valgrind reported errors (exit %d)" % r.returncode)
        assert not problems, "onedrivefs %s:\n  %s\n%s" % (" ".join(args[:2]), "\n  ".join(problems),
                                                             r.stderr[-6000:])
        return r

    def read_tokens(self):
        with open(self.tokens) as f:
            return json.load(f)


@pytest.fixture
def env(session_root, request):
    name = request.node.name[:40].replace("/", "_").replace("[", "_").replace("]", "_")
    base = tempfile.mkdtemp(prefix=name + "-", dir=session_root)
    e = OdfsEnv(base)
    yield e
    # a mount of this env left behind is cleaned by the mounter / safety net.
    # The mounters depend on env, so the daemons are stopped by now: no file
    # or output of the test may hold a token, code or client secret the fake
    # issued, and token/secret files must be private (helpers.secret_problems)
    problems = helpers.secret_problems(_started_fakes_secrets(), e.base,
                                       {"captured output %d" % i: t for i, t in enumerate(e.outputs)})
    assert not problems, "secrets leaked or exposed:\n  " + "\n  ".join(problems)


def do_login(fake, env, extra_opts=None):
    r = env.run(["login", "-o", fake.opts(**(extra_opts or {}))], timeout=30)
    assert r.returncode == 0, "login failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr)
    assert env.tokens.is_file(), "login did not store %s" % env.tokens
    mode = env.tokens.stat().st_mode & 0o777
    assert mode == 0o600, "tokens.json has mode %o, want 600" % mode
    dmode = env.config_dir.stat().st_mode & 0o777
    assert dmode == 0o700, "%s has mode %o, want 700" % (env.config_dir, dmode)
    problems = helpers.log_problems(r.stdout + r.stderr)
    assert not problems, "\n".join(problems)
    return r


@pytest.fixture
def login(fake, env):
    return do_login(fake, env)


# ----------------------------------------------------------------- mount
class Mount:
    def __init__(self, fake, env, path, opts, expect_errors, debug, valgrind):
        self.fake = fake
        self.env = env
        self.path = Path(path)
        self.opts = opts
        self.expect_errors = list(expect_errors)
        self.debug = debug
        self.valgrind = valgrind
        self.stderr_path = env.base / ("daemon-%d.log" % time.monotonic_ns())
        self.proc = None
        self.done = False
        self.returncode = None

    def p(self, rel):
        """Absolute path string of rel inside the mount."""
        return str(self.path / rel)

    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors="surrogateescape")
        except FileNotFoundError:
            return ""

    def start(self, timeout=20):
        args = ["-f"] + (["-d"] if self.debug else []) + ["-o", self.fake.opts(**self.opts),
                                                          str(self.path)]
        with open(self.stderr_path, "wb") as errf:
            self.proc = subprocess.Popen(helpers.odfs_cmd(args, self.valgrind), env=self.env.environ,
                                         stdin=subprocess.DEVNULL, stdout=errf, stderr=errf)

        def ready():
            if helpers.is_mounted(self.path):
                return True
            if self.proc.poll() is not None:
                raise AssertionError("onedrivefs exited with %d before mounting:\n%s"
                                     % (self.proc.returncode, self.stderr_text()))
            return False
        try:
            wait_until(ready, timeout, "the mount of %s" % self.path)
        except AssertionError:
            self.stop(check=False)
            raise
        return self

    def stop(self, check=True):
        """Unmount, wait for the daemon to exit (SIGKILL after a deadline)
        and, when check, fail on anything wrong.  Idempotent."""
        if self.done:
            return
        self.done = True
        problems = helpers.fuse_unmount(self.path)
        try:
            self.proc.wait(timeout=deadline(15))
        except subprocess.TimeoutExpired:
            problems.append("onedrivefs did not exit within %.0fs of the unmount" % deadline(15))
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.returncode = self.proc.returncode
        text = self.stderr_text()
        self.env.outputs.append(text)
        if not check:
            return
        if self.returncode == helpers.VALGRIND_EXIT and self.valgrind:
            problems.append("valgrind reported errors (exit %d)" % self.returncode)
        elif self.returncode != 0 and not problems:
            problems.append("onedrivefs exited with %d after a clean unmount" % self.returncode)
        problems += helpers.log_problems(text, self.expect_errors)
        violations = self.fake.auth_violations()
        if violations:
            problems.append("auth violations on the fake: %r" % violations)
        if problems:
            raise AssertionError("daemon for %s:\n  %s\n--- stderr ---\n%s"
                                 % (self.path, "\n  ".join(problems), text[-6000:]))


class Mounter:
    def __init__(self, fake, env):
        self.fake = fake
        self.env = env
        self.mounts = []

    def mount(self, opts=None, expect_errors=(), debug=False, path=None, timeout=20):
        m = Mount(self.fake, self.env, path or self.env.mnt, dict(opts or {}), expect_errors,
                  debug, helpers.VALGRIND)
        self.mounts.append(m)
        return m.start(timeout=timeout)

    def remount(self, m, **kw):
        """Stop m (with its checks) and mount again with the same settings."""
        m.stop()
        kw.setdefault("opts", m.opts)
        kw.setdefault("expect_errors", m.expect_errors)
        kw.setdefault("debug", m.debug)
        return self.mount(path=m.path, **kw)

    def stop_all(self):
        errors = []
        for m in self.mounts:
            try:
                m.stop()
            except AssertionError as e:
                errors.append(str(e))
        if errors:
            raise AssertionError("\n".join(errors))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def mounter(fake, env, login, request):
    mt = Mounter(fake, env)
    yield mt
    rep = getattr(request.node, "rep_call", None)
    failed = rep is not None and rep.failed
    try:
        mt.stop_all()
    finally:
        if failed:
            for m in mt.mounts:
                sys.stderr.write("--- daemon stderr (%s) ---\n%s\n" % (m.path, m.stderr_text()[-8000:]))


def _marker_opts(request):
    opts = {}
    mark = request.node.get_closest_marker("mount_opts")
    if mark:
        opts.update(mark.kwargs)
    errs = []
    mark = request.node.get_closest_marker("expect_errors")
    if mark:
        errs = list(mark.args)
    return opts, errs


@pytest.fixture
def mount(mounter, request):
    opts, errs = _marker_opts(request)
    return mounter.mount(opts=opts, expect_errors=errs)


# ------------------------------------ sign-in and drives (test_signin.py, test_drives.py)
def _mounter_for(fake, env, request):
    mt = Mounter(fake, env)
    yield mt
    rep = getattr(request.node, "rep_call", None)
    try:
        mt.stop_all()
    finally:
        if rep is not None and rep.failed:
            for m in mt.mounts:
                sys.stderr.write("--- daemon stderr (%s) ---\n%s\n" % (m.path, m.stderr_text()[-8000:]))


@pytest.fixture
def bare_mounter(fake, env, request):
    """A mounter without the automatic login: the test signs in its own way."""
    yield from _mounter_for(fake, env, request)


@pytest.fixture
def business_fake():
    """A fake whose primary account is a work/school account (tenant
    contoso.onmicrosoft.com), for SharePoint, app-only and revocation tests."""
    ctl = start_fake(account="business")
    try:
        yield ctl
        violations = ctl.auth_violations()
        assert violations == [], "Authorization header sent where it must not be: %r" % violations
    finally:
        ctl.server.stop()


@pytest.fixture
def business_mounter(business_fake, env, request):
    """A mounter on business_fake; nobody is signed in yet."""
    yield from _mounter_for(business_fake, env, request)


@pytest.fixture(scope="session", autouse=True)
def no_display():
    """`onedrivefs login` without a flag signs in in the browser when there is a
    display: keep every test headless (the device-code login of do_login);
    tests that want a display set DISPLAY in their own environment."""
    saved = {k: os.environ.pop(k) for k in ("DISPLAY", "WAYLAND_DISPLAY") if k in os.environ}
    yield
    os.environ.update(saved)
