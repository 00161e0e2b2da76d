"""Every way to sign in: the browser (authorization code + PKCE with a
loopback listener, driven by urllib or by headless Chromium), the device
code, profiles, logout and revocation, and every kind of bad input - each
with a clear message, no token stored and nothing half-written.
"""

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import helpers
from helpers import deadline, wait_until

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))



def http_get(url, opener=NO_PROXY, data=None):
    """(status, body text, headers) without raising on 4xx/5xx."""
    try:
        with opener.open(urllib.request.Request(url, data=data), timeout=deadline(20)) as r:
            return r.status, r.read().decode("utf-8", "replace"), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace"), e.headers


class BrowserLogin:
    """`onedrivefs login --browser` running in the background; .url is the
    authorize URL it printed."""

    def __init__(self, fake, env, opts=None, args=("--browser",), environ=None):
        self.env = env
        cmd = helpers.odfs_cmd(["login"] + list(args) + ["-o", fake.opts(**(opts or {}))])
        self.proc = subprocess.Popen(cmd, env=environ or env.environ, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.url = None
        end = time.monotonic() + deadline(20)
        while time.monotonic() < end:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith("  http"):
                self.url = line.strip()
            if line.startswith("waiting for the answer on "):
                self.redirect_uri = line.split()[5]
                break
        if self.url is None:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError("login --browser printed no URL:\n%s%s%s"
                                 % ("".join(self.lines), out, err))

    def param(self, name):
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query)[name][0]

    def finish(self, timeout=30):
        """Wait for exit; returns (returncode, stdout, stderr) and checks for sanitizer reports."""
        try:
            out, err = self.proc.communicate(timeout=deadline(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError("login --browser did not finish:\n%s%s%s"
                                 % ("".join(self.lines), out, err))
        out = "".join(self.lines) + out
        self.env.outputs.append(out + err)
        problems = helpers.sanitizer_problems(out + err)
        assert not problems, "\n".join(problems) + err
        return self.proc.returncode, out, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.finish()


def open_authorize(url):
    """GET the authorize URL like a browser: the fake creates a transaction."""
    status, body, _ = http_get(url)
    return status, body


def deliver(redirect_url):
    """The browser following the redirect to the loopback listener."""
    return http_get(redirect_url)


def replace_query(url, **changes):
    parts = urllib.parse.urlsplit(url)
    q = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    q = [(k, changes.pop(k)) if k in changes else (k, v) for k, v in q]
    q += list(changes.items())
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))


def assert_nothing_stored(env):
    assert not env.tokens.exists(), "tokens.json was stored after a failed sign-in"
    if env.config_dir.exists():
        leftovers = [p.name for p in env.config_dir.iterdir() if ".tmp" in p.name]
        assert leftovers == [], "half-written files left: %r" % leftovers


def check_tokens(env):
    assert env.tokens.is_file()
    assert stat.S_IMODE(env.tokens.stat().st_mode) == 0o600
    assert stat.S_IMODE(env.config_dir.stat().st_mode) == 0o700
    tok = env.read_tokens()
    assert tok["refresh_token"] and tok["access_token"]
    return tok


def browser_login(fake, env, opts=None):
    """A full browser sign-in driven by urllib; returns the redirect URL used."""
    bl = BrowserLogin(fake, env, opts)
    status, body = open_authorize(bl.url)
    assert status == 200 and "id='accept'" in body.replace('"', "'"), body[:500]
    redirect = fake.server.approve_authorization()
    status, page, _ = deliver(redirect)
    rc, out, err = bl.finish()
    assert rc == 0, out + err
    assert status == 200 and 'id="success"' in page, page
    assert "signed in" in out
    assert not helpers.log_problems(out + err)
    return redirect


# ------------------------------------------------------------------ browser
def test_browser_login_pkce_then_mount(fake, env, bare_mounter):
    fake.seed([{"path": "Documents/hello.txt", "content": "hello from the browser sign-in"}])
    bl = BrowserLogin(fake, env)
    assert bl.param("code_challenge_method") == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", bl.param("code_challenge"))
    assert bl.param("response_type") == "code"
    assert re.fullmatch(r"http://localhost:\d+", bl.param("redirect_uri"))
    assert len(bl.param("state")) >= 16
    assert "offline_access" in bl.param("scope")

    # favicon and stray requests do not end the wait
    status, _, _ = http_get(bl.redirect_uri + "/favicon.ico")
    assert status == 404
    status, _, _ = http_get(bl.redirect_uri + "/")
    assert status == 400
    assert bl.proc.poll() is None

    status, _ = open_authorize(bl.url)
    assert status == 200
    redirect = fake.server.approve_authorization()
    assert redirect.startswith(bl.redirect_uri + "/?code=") or redirect.startswith(bl.redirect_uri + "?code=")
    status, page, headers = deliver(redirect)
    rc, out, err = bl.finish()
    assert rc == 0, out + err
    assert status == 200 and 'id="success"' in page
    assert headers.get("Cache-Control") == "no-store"
    check_tokens(env)
    # the code, verifier and tokens never reach the terminal
    tok = env.read_tokens()
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(redirect).query)["code"][0]
    for secret in (code, tok["access_token"], tok["refresh_token"]):
        assert secret not in out + err

    m = bare_mounter.mount()
    with open(m.p("Documents/hello.txt")) as f:
        assert f.read() == "hello from the browser sign-in"


def test_login_without_flag_picks_browser_with_display(fake, env, tmp_path):
    # a stand-in xdg-open records the URL it was asked to open
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "opened"
    script = bindir / "xdg-open"
    script.write_text("#!/bin/sh\nprintf '%%s\\n' \"$1\" > %s\n" % record)
    script.chmod(0o755)
    environ = dict(env.environ, DISPLAY=":99", PATH="%s:%s" % (bindir, env.environ.get("PATH", "")))
    bl = BrowserLogin(fake, env, args=(), environ=environ)
    wait_until(record.exists, 10, "xdg-open to be run")
    assert record.read_text().strip() == bl.url
    open_authorize(bl.url)
    deliver(fake.server.approve_authorization())
    rc, out, err = bl.finish()
    assert rc == 0, out + err
    check_tokens(env)


def test_login_without_flag_picks_device_code_headless(fake, env):
    environ = {k: v for k, v in env.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    r = helpers.run_odfs(["login", "-o", fake.opts()], environ, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "enter the code" in r.stdout.lower() or "devicelogin" in r.stdout
    assert "/authorize?" not in r.stdout
    check_tokens(env)


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriver:
    """Just enough of the W3C WebDriver protocol, over urllib."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.log = open(tmp_path / "chromedriver.log", "wb")
        self.proc = subprocess.Popen([CHROMEDRIVER, "--port=%d" % self.port], stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.base = "http://127.0.0.1:%d" % self.port
        wait_until(self._ready, 30, "chromedriver to start")
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--no-proxy-server",
                     "--user-data-dir=%s" % (tmp_path / "chromium-profile")]}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def _ready(self):
        try:
            return self.call("GET", "/status")["ready"]
        except OSError:
            return False

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with NO_PROXY.open(req, timeout=deadline(60)) as r:
            return json.loads(r.read())["value"]

    def s(self, method, path, body=None):
        return self.call(method, "/session/%s%s" % (self.session, path), body)

    def find(self, css):
        try:
            el = self.s("POST", "/element", {"using": "css selector", "value": css})
        except urllib.error.HTTPError:
            return None
        return next(iter(el.values()))

    def close(self):
        try:
            self.call("DELETE", "/session/%s" % self.session)
        except Exception:
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.mark.skipif(not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
                    reason="needs Debian's chromium and chromium-driver (installed by .ci/run)")
def test_browser_login_with_chromium(fake, env, bare_mounter, tmp_path):
    fake.seed([{"path": "chromium.txt", "content": "signed in by a real browser"}])
    bl = BrowserLogin(fake, env)
    wd = WebDriver(tmp_path)
    try:
        wd.s("POST", "/url", {"url": bl.url})
        accept = wait_until(lambda: wd.find("#accept"), 30, "the sign-in page")
        assert wd.find("#txn") is not None
        wd.s("POST", "/element/%s/click" % accept, {})
        wait_until(lambda: wd.find("#success"), 30, "the success page")
        assert "close this tab" in wd.s("GET", "/source")
    finally:
        wd.close()
    rc, out, err = bl.finish()
    assert rc == 0, out + err
    check_tokens(env)
    m = bare_mounter.mount()
    with open(m.p("chromium.txt")) as f:
        assert f.read() == "signed in by a real browser"


# ---------------------------------------------------------------- bad input
def failed_login(bl, *patterns):
    rc, out, err = bl.finish()
    assert rc == 1, out + err
    for p in patterns:
        assert re.search(p, err), "%r not in:\n%s" % (p, err)
    assert "error:" in err
    return out, err


def test_wrong_pkce_verifier(fake, env):
    bl = BrowserLogin(fake, env)
    other = "A" * 43   # a well-formed challenge that is not ours
    open_authorize(replace_query(bl.url, code_challenge=other))
    status, page, _ = deliver(fake.server.approve_authorization())
    failed_login(bl, r"PKCE code verifier", r"AADSTS501481", r"nothing was stored")
    assert status == 400 and 'id="error"' in page and "PKCE" in page
    assert_nothing_stored(env)


def test_reused_authorization_code(fake, env):
    first = browser_login(fake, env)
    env.tokens.unlink()
    bl = BrowserLogin(fake, env)
    reused = replace_query(bl.redirect_uri + "/?" + urllib.parse.urlsplit(first).query,
                           state=bl.param("state"))
    deliver(reused)
    failed_login(bl, r"already used", r"AADSTS54005")
    assert_nothing_stored(env)


def test_state_mismatch(fake, env):
    bl = BrowserLogin(fake, env)
    open_authorize(bl.url)
    redirect = fake.server.approve_authorization()
    status, page, _ = deliver(replace_query(redirect, state="forged-state-value"))
    failed_login(bl, r"state mismatch", r"does not belong to this sign-in")
    assert status == 400 and 'id="error"' in page
    # the code was never redeemed
    assert not any(c.get("redeemed") for c in fake.server.auth_codes())
    assert_nothing_stored(env)


def test_redirect_uri_mismatch_at_redemption(fake, env):
    bl = BrowserLogin(fake, env)
    port = int(bl.redirect_uri.rsplit(":", 1)[1])
    other = "http://localhost:%d" % (port + 1 if port < 65535 else port - 1)
    open_authorize(replace_query(bl.url, redirect_uri=other))
    redirect = fake.server.approve_authorization()
    assert redirect.startswith(other)
    deliver(bl.redirect_uri + "/?" + urllib.parse.urlsplit(redirect).query)
    failed_login(bl, r"refused the authorization code", r"AADSTS70000", r"redirect URI")
    assert_nothing_stored(env)


def test_redirect_uri_not_registered(fake, env):
    fake.server.register_client("00000000-0000-0000-0000-0000000000b2", public=True,
                                redirect_uris=["https://login.microsoftonline.com/common/oauth2/nativeclient"])
    bl = BrowserLogin(fake, env, opts={"client_id": "00000000-0000-0000-0000-0000000000b2"})
    status, body = open_authorize(bl.url)
    # the service shows its own page and never redirects; the hint we printed says what to do
    assert status == 400 and "AADSTS50011" in body
    assert "AADSTS50011" in "".join(bl.lines) and "http://localhost" in "".join(bl.lines)
    bl.kill()
    assert_nothing_stored(env)


def test_consent_cancelled_in_browser(fake, env):
    bl = BrowserLogin(fake, env)
    open_authorize(bl.url)
    status, page, _ = deliver(fake.server.decline_authorization())
    failed_login(bl, r"cancelled in the browser", r"access_denied", r"nothing was stored")
    assert status == 400 and 'id="error"' in page
    assert_nothing_stored(env)


def test_confidential_client_without_secret(fake, env):
    fake.server.register_client("00000000-0000-0000-0000-0000000000c3", public=False, secret="s3cret")
    bl = BrowserLogin(fake, env, opts={"client_id": "00000000-0000-0000-0000-0000000000c3"})
    open_authorize(bl.url)
    deliver(fake.server.approve_authorization())
    failed_login(bl, r"needs a client secret", r"invalid_client", r"AADSTS7000218")
    assert_nothing_stored(env)


def test_confidential_client_with_secret_file(fake, env, tmp_path):
    fake.server.register_client("00000000-0000-0000-0000-0000000000c4", public=False, secret="s3cret-value")
    secret = tmp_path / "secret"
    secret.write_text("s3cret-value\n")
    secret.chmod(0o600)
    opts = {"client_id": "00000000-0000-0000-0000-0000000000c4", "client_secret_file": str(secret)}
    bl = BrowserLogin(fake, env, opts=opts)
    open_authorize(bl.url)
    deliver(fake.server.approve_authorization())
    rc, out, err = bl.finish()
    assert rc == 0, out + err
    assert "s3cret-value" not in out + err
    check_tokens(env)
    # the refresh grant sends the secret too: a mount refreshes at start when the token expired
    fake.expire_tokens()
    r = env.run(["drives", "-o", fake.opts(**opts)])
    assert r.returncode == 0, r.stderr
    assert "s3cret-value" not in r.stdout + r.stderr


def test_public_client_presenting_secret(fake, env, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("not-for-public-clients")
    secret.chmod(0o600)
    bl = BrowserLogin(fake, env, opts={"client_secret_file": str(secret)})
    open_authorize(bl.url)
    deliver(fake.server.approve_authorization())
    failed_login(bl, r"public client", r"AADSTS700025")
    assert_nothing_stored(env)


def test_secret_file_with_loose_permissions(fake, env, tmp_path):
    fake.server.register_client("00000000-0000-0000-0000-0000000000c5", public=False, secret="s3cret")
    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    secret.chmod(0o644)
    bl = BrowserLogin(fake, env, opts={"client_id": "00000000-0000-0000-0000-0000000000c5",
                                       "client_secret_file": str(secret)})
    open_authorize(bl.url)
    deliver(fake.server.approve_authorization())
    out, err = failed_login(bl, r"can be read by other users", r"chmod 600")
    assert "s3cret" not in out + err
    assert_nothing_stored(env)


@pytest.mark.valgrind
def test_wrong_tenant_for_account_type(fake, env):
    # a personal account at /organizations
    r = env.run(["login", "--device-code", "-o", fake.opts(tenant="organizations")])
    assert r.returncode == 1
    assert "cannot sign in at tenant 'organizations'" in r.stderr, r.stderr
    assert "personal Microsoft account needs tenant common or consumers" in r.stderr
    assert_nothing_stored(env)


def test_unknown_tenant(fake, env):
    r = env.run(["login", "--device-code", "-o", fake.opts(tenant="nosuch.example.org")])
    assert r.returncode == 1
    assert "tenant 'nosuch.example.org' was not found" in r.stderr, r.stderr
    assert_nothing_stored(env)


@pytest.mark.valgrind
def test_device_code_declined(fake, env):
    fake.config(auto_approve=False)

    def decline():
        wait_until(lambda: fake.server.pending_devices(), 20, "a device code")
        fake.decline()
    t = threading.Thread(target=decline)
    t.start()
    r = env.run(["login", "--device-code", "-o", fake.opts()])
    t.join()
    assert r.returncode == 1
    assert "declined" in r.stderr, r.stderr
    assert_nothing_stored(env)


def test_device_code_expired(fake, env):
    fake.config(auto_approve=False, device_expires_in=2)
    r = env.run(["login", "--device-code", "-o", fake.opts()])
    assert r.returncode == 1
    assert "code expired" in r.stderr, r.stderr
    assert_nothing_stored(env)


def test_login_flags_checked(fake, env):
    r = env.run(["login", "--browser", "--device-code", "-o", fake.opts()])
    assert r.returncode == 1 and "choose one of" in r.stderr
    r = env.run(["--browser", str(env.mnt), "-o", fake.opts()])
    assert r.returncode == 1 and "goes with 'onedrivefs login'" in r.stderr
    r = env.run(["logout", "--profile", "../x"])
    assert r.returncode == 1 and "invalid profile name" in r.stderr
    r = env.run(["login", "-o", fake.opts(auth="telepathy")])
    assert r.returncode == 1 and "expected device_code, browser or client_credentials" in r.stderr
    assert_nothing_stored(env)


# ----------------------------------------------------------------- profiles
def test_profiles_side_by_side(fake, env):
    fake.seed([{"path": "a.txt", "content": "A"}])
    r = env.run(["login", "--device-code", "--profile", "work", "-o", fake.opts()])
    assert r.returncode == 0, r.stderr
    prof = env.config_dir / "profiles" / "work"
    assert (prof / "tokens.json").is_file()
    assert stat.S_IMODE((prof / "tokens.json").stat().st_mode) == 0o600
    assert not env.tokens.exists(), "the default profile's tokens were touched"
    # the default profile is not signed in, and cannot mount
    r = env.run(["drives", "-o", fake.opts()])
    assert r.returncode == 1 and "not signed in" in r.stderr
    r = env.run(["-f", "-o", fake.opts(), str(env.mnt)])
    assert r.returncode == 1 and "not signed in" in r.stderr
    # while the profile is
    r = env.run(["drives", "--profile", "work", "-o", fake.opts()])
    assert r.returncode == 0, r.stderr
    assert "drive_id=" in r.stdout


def test_profile_mount_uses_its_own_cache(fake, env, bare_mounter):
    fake.seed([{"path": "p.txt", "content": "profile"}])
    r = env.run(["login", "--device-code", "--profile", "home", "-o", fake.opts()])
    assert r.returncode == 0, r.stderr
    m = Mount2(fake, env, ["--profile", "home"])
    try:
        with open(os.path.join(str(env.mnt), "p.txt")) as f:
            assert f.read() == "profile"
    finally:
        m.stop()
    assert (env.cache_dir / "profiles" / "home" / "meta.db").is_file()
    assert not (env.cache_dir / "meta.db").exists()


class Mount2:
    """A foreground mount with extra command-line arguments (--profile)."""

    def __init__(self, fake, env, extra):
        self.env = env
        self.log = env.base / "profile-daemon.log"
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(helpers.odfs_cmd(["-f"] + extra + ["-o", fake.opts(), str(env.mnt)]),
                                         env=env.environ, stdin=subprocess.DEVNULL, stdout=f, stderr=f)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(self.log.read_text())
            return helpers.is_mounted(env.mnt)
        wait_until(ready, 20, "the profile mount")

    def stop(self):
        problems = helpers.fuse_unmount(self.env.mnt)
        self.proc.wait(timeout=deadline(15))
        text = self.log.read_text()
        problems += helpers.log_problems(text)
        assert not problems and self.proc.returncode == 0, "\n".join(problems) + text


# ------------------------------------------------------- logout, revocation
def test_logout_removes_tokens(fake, env, login):
    r = env.run(["logout"])
    assert r.returncode == 0, r.stderr
    assert "signed out" in r.stdout
    assert not env.tokens.exists()
    r = env.run(["logout"])
    assert r.returncode == 0 and "not signed in" in r.stdout


@pytest.mark.valgrind
def test_logout_revoke_personal_explains(fake, env, login):
    r = env.run(["logout", "--revoke", "-o", fake.opts()])
    assert r.returncode == 0, r.stderr
    assert "https://account.live.com/consent/Manage" in r.stdout
    assert "work and school accounts" in r.stdout
    assert not env.tokens.exists()
    # nothing was POSTed to revokeSignInSessions
    assert "revokeSignInSessions" not in json.dumps(fake.stats())


REVOKE_SCOPES = "User.Read Files.ReadWrite.All Sites.Read.All offline_access User.RevokeSessions.All"
EXPIRED = r"sign-in expired or was revoked: run 'onedrivefs login'"


def test_revoke_then_refresh_fails_and_login_recovers(business_fake, env, business_mounter):
    fake = business_fake
    fake.seed([{"path": "kept.txt", "content": "cached before the revocation"},
               {"path": "later.txt", "content": "read after signing in again"}])
    from conftest import do_login
    r = env.run(["logout", "--revoke", "-o", fake.opts()])
    assert r.returncode == 1 and "not signed in" in r.stderr
    do_login(fake, env)
    # the default scopes may not revoke: a clear message, the tokens kept
    r = env.run(["logout", "--revoke", "-o", fake.opts()])
    assert r.returncode == 1 and "User.RevokeSessions.All" in r.stderr, r.stderr
    assert env.tokens.exists()
    do_login(fake, env, {"scopes": REVOKE_SCOPES})
    m = business_mounter.mount(expect_errors=[EXPIRED, r"cannot", r"later\.txt"])
    with open(m.p("kept.txt")) as f:
        assert f.read() == "cached before the revocation"

    r = env.run(["logout", "--revoke", "-o", fake.opts()])
    assert r.returncode == 0, r.stderr
    assert "revoked every sign-in session" in r.stdout
    assert not env.tokens.exists()

    # the mount still holds the old refresh token, which is dead now: once the
    # access token is refused, the refresh fails with the clear message
    fake.expire_tokens()
    with pytest.raises(OSError):
        with open(m.p("later.txt")) as f:
            f.read()
    wait_until(lambda: re.search(EXPIRED, m.stderr_text()), 20, "the expiry message in the log")
    assert len(re.findall(r"(?m)^onedrivefs: error: " + EXPIRED, m.stderr_text())) == 1, \
        "auth said it more than once"
    # cached content is still served, and writes stay journalled
    with open(m.p("kept.txt")) as f:
        assert f.read() == "cached before the revocation"
    with open(m.p("offline.txt"), "w") as f:
        f.write("written while signed out")

    def status():
        return os.getxattr(m.p("offline.txt"), "user.onedrive.status").decode()
    wait_until(lambda: "sign-in expired" in status(), 20, "the status of the journalled write")
    # a file with nothing pending says it too: nothing can be checked until then
    assert os.getxattr(m.p("kept.txt"), "user.onedrive.status").decode() == \
        "error: sign-in expired: run 'onedrivefs login'"
    with pytest.raises(KeyError):
        fake.server.item("/offline.txt")

    # sign in again: the mount carries on without a remount
    do_login(fake, env)
    def readable():
        try:
            with open(m.p("later.txt")) as f:
                return f.read() == "read after signing in again"
        except OSError:
            return False
    wait_until(readable, 30, "the mount to use the new sign-in")
    assert "signed in again" in m.stderr_text()

    def uploaded():
        try:
            data = fake.server.content("/offline.txt")
        except KeyError:
            return False
        return bytes(data.to_bytes() if hasattr(data, "to_bytes") else data) == b"written while signed out"
    wait_until(uploaded, 60, "the journalled write to be uploaded after the new sign-in")
    assert os.getxattr(m.p("kept.txt"), "user.onedrive.status").decode() == "clean"
