"""Start-up, sign-in and command line behaviour of onedrivefs."""

import os
import re
import subprocess
import time

import pytest

import helpers
from conftest import do_login, start_fake
from helpers import deadline, message_lines, wait_until


def error_sentence(r):
    """The single message onedrivefs printed on a failure (stderr)."""
    lines = message_lines(r.stderr)
    assert len(lines) == 1, "want exactly one message line, got:\n%s" % r.stderr
    line = lines[0]
    assert line.startswith("onedrivefs: error: "), line
    return line


def assert_not_mounted(path):
    assert helpers.mount_count(path) == 0, "%s is mounted" % path


# -------------------------------------------------------------- basics
def test_version(env):
    r = env.run(["--version"])
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert "onedrivefs" in out
    assert re.search(r"\b\d+\.\d+\.\d+\b", out), out
    assert not helpers.log_problems(out)


def test_help(env):
    r = env.run(["--help"])
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    low = out.lower()
    assert "usage" in low
    assert "onedrivefs login" in out
    assert "mountpoint" in low
    for key in ("client_id", "-f", "-o"):
        assert key in out, key
    assert not helpers.log_problems(out)


def test_no_arguments_is_a_usage_error(env):
    r = env.run([])
    assert r.returncode != 0
    assert "usage" in (r.stdout + r.stderr).lower() or "mountpoint" in (r.stdout + r.stderr).lower()


# ---------------------------------------------------------- client_id
def test_mount_without_client_id(fake, env):
    r = env.run(["-f", "-o", "auth_url=%s,graph_url=%s" % (fake.auth_url, fake.graph_url), str(env.mnt)])
    assert r.returncode == 1, r.stderr
    assert "client_id" in error_sentence(r)
    assert_not_mounted(env.mnt)


def test_login_without_client_id(fake, env):
    r = env.run(["login", "-o", "auth_url=%s,graph_url=%s" % (fake.auth_url, fake.graph_url)])
    assert r.returncode == 1, r.stderr
    assert "client_id" in error_sentence(r)
    assert not env.tokens.exists()


def test_client_id_from_config_file(fake, env):
    env.config_dir.mkdir(mode=0o700)
    (env.config_dir / "config").write_text(
        "# written by the test\nclient_id = %s\nauth_url = %s\ngraph_url = %s\n"
        % (fake.client_id, fake.auth_url, fake.graph_url))
    r = env.run(["login"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert env.tokens.is_file()


def test_unknown_key_in_config_file(fake, env):
    env.config_dir.mkdir(mode=0o700)
    (env.config_dir / "config").write_text("client_id = %s\nno_such_key = 1\n" % fake.client_id)
    r = env.run(["-f", str(env.mnt)])
    assert r.returncode == 1
    line = error_sentence(r)
    assert "no_such_key" in line and "line 2" in line, line


# ------------------------------------------------------------- tokens
@pytest.mark.valgrind
def test_mount_without_login(fake, env):
    r = env.run(["-f", "-o", fake.opts(), str(env.mnt)])
    assert r.returncode == 1, r.stderr
    assert "onedrivefs login" in error_sentence(r)
    assert_not_mounted(env.mnt)


@pytest.mark.valgrind
@pytest.mark.parametrize("foreground", [True, False], ids=["foreground", "daemon"])
def test_refused_refresh_token(fake, env, login, foreground):
    fake.revoke_tokens()
    fake.expire_tokens()
    args = (["-f"] if foreground else []) + ["-o", fake.opts(), str(env.mnt)]
    r = env.run(args)
    try:
        assert r.returncode == 1, r.stderr
        assert "onedrivefs login" in error_sentence(r)
    finally:
        helpers.fuse_unmount(env.mnt)
    assert_not_mounted(env.mnt)
    assert not helpers.pids_with_cmdline(str(env.mnt))


@pytest.mark.valgrind
def test_tokens_file_and_folder_modes(fake, env, login, mounter):
    assert env.tokens.stat().st_mode & 0o777 == 0o600
    assert env.config_dir.stat().st_mode & 0o777 == 0o700
    tok = env.read_tokens()
    for key in ("client_id", "tenant", "auth_url", "access_token", "refresh_token", "expires_at"):
        assert key in tok, key
    assert tok["client_id"] == fake.client_id
    assert isinstance(tok["expires_at"], int) and tok["expires_at"] > time.time()
    # no temp files left behind by the atomic write
    assert set(os.listdir(env.config_dir)) <= {"tokens.json", "config"}, os.listdir(env.config_dir)
    mounter.mount()
    assert env.cache_dir.stat().st_mode & 0o777 == 0o700


def test_expired_access_token_is_refreshed_and_stored(fake, env, login, mounter):
    before = env.read_tokens()
    fake.expire_tokens()
    m = mounter.mount()
    assert os.listdir(m.p("")) == []
    grants = fake.stats().get("token_grants", {})
    assert grants.get("refresh_token", 0) >= 1, grants

    def rotated():
        try:
            return env.read_tokens()["refresh_token"] != before["refresh_token"]
        except (OSError, ValueError):
            return False
    wait_until(rotated, 10, "the rotated refresh token to be stored")
    assert env.tokens.stat().st_mode & 0o777 == 0o600


# ------------------------------------------------------------ mountpoint
@pytest.mark.valgrind
def test_mountpoint_missing(fake, env, login):
    missing = env.base / "does-not-exist"
    r = env.run(["-f", "-o", fake.opts(), str(missing)])
    assert r.returncode == 1
    line = error_sentence(r)
    assert str(missing) in line, line
    assert not missing.exists()


def test_mountpoint_is_a_file(fake, env, login):
    f = env.base / "regular-file"
    f.write_text("x")
    r = env.run(["-f", "-o", fake.opts(), str(f)])
    assert r.returncode == 1
    line = error_sentence(r)
    assert str(f) in line, line
    assert_not_mounted(f)
    assert f.read_text() == "x"


@pytest.mark.parametrize("foreground", [True, False], ids=["foreground", "daemon"])
def test_already_mounted(fake, env, mount, foreground):
    assert helpers.mount_count(mount.path) == 1
    r = env.run((["-f"] if foreground else []) + ["-o", fake.opts(), str(mount.path)], timeout=30)
    assert r.returncode == 1, r.stderr
    line = error_sentence(r)
    assert str(mount.path) in line, line
    assert helpers.mount_count(mount.path) == 1
    assert len(helpers.pids_with_cmdline(str(mount.path))) == 1
    assert os.listdir(mount.p("")) == []


# ------------------------------------------------------------- daemon
def read_reports(folder):
    """Non-empty sanitizer/valgrind report files in folder, as one text."""
    out = ""
    for rep in sorted(folder.iterdir()):
        text = rep.read_text(errors="replace")
        if text.strip():
            out += "--- %s ---\n%s\n" % (rep.name, text[-6000:])
    return out


@pytest.mark.valgrind
def test_daemon_mode_returns_when_ready(fake, env, login):
    fake.seed([{"path": "Documents/notes.txt", "content": "hello\n"}])
    mnt = str(env.mnt)
    # the daemon's stderr is gone once it detaches: sanitizer and valgrind
    # reports go to files instead
    reports = env.base / "reports"
    reports.mkdir()
    environ = dict(env.environ)
    environ["ASAN_OPTIONS"] = "detect_leaks=1:log_path=%s/asan" % reports
    environ["UBSAN_OPTIONS"] = "print_stacktrace=1:log_path=%s/ubsan" % reports
    try:
        r = helpers.run_odfs(["-o", fake.opts(), mnt], environ, timeout=30, valgrind=helpers.VALGRIND,
                             valgrind_log="%s/valgrind.%%p" % reports)
        # checked right away: the command returns only once the mount is ready
        assert helpers.mount_count(mnt) == 1, "not mounted when the command returned:\n" + r.stderr
        assert r.returncode == 0, r.stderr + read_reports(reports)
        assert not helpers.log_problems(r.stdout + r.stderr)
        pids = helpers.pids_with_cmdline(mnt)
        assert len(pids) == 1, pids
        with open(os.path.join(mnt, "Documents", "notes.txt"), "rb") as f:
            assert f.read() == b"hello\n"
        r = subprocess.run(["fusermount3", "-u", mnt], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        wait_until(lambda: not helpers.pid_alive(pids[0]), 15, "the daemon to exit after the unmount")
    finally:
        helpers.fuse_unmount(mnt)
        for pid in helpers.pids_with_cmdline(mnt):
            helpers.kill_pid(pid)
    text = read_reports(reports)
    assert not text, text
    assert fake.auth_violations() == []


def test_daemon_mode_failure_is_reported_by_the_command(fake, env):
    # no login: the parent must report the failure and exit 1, not return 0
    r = env.run(["-o", fake.opts(), str(env.mnt)], timeout=30)
    assert r.returncode == 1
    assert "onedrivefs login" in error_sentence(r)
    assert_not_mounted(env.mnt)
    assert not helpers.pids_with_cmdline(str(env.mnt))


# -------------------------------------------------------------- login
def _start_login(fake, env):
    errf = open(env.base / "login.out", "wb")
    p = subprocess.Popen(helpers.odfs_cmd(["login", "-o", fake.opts()], helpers.VALGRIND), env=env.environ,
                         stdin=subprocess.DEVNULL, stdout=errf, stderr=subprocess.STDOUT)
    errf.close()
    return p


def _device_code_requested(fake):
    return any("devicecode" in label for label in fake.stats()["requests"])


@pytest.fixture
def manual_fake():
    """A fake that does not approve device codes by itself."""
    ctl = start_fake(auto_approve=False)
    try:
        yield ctl
    finally:
        ctl.server.stop()


def test_login_prints_code_and_url(fake, env):
    r = do_login(fake, env)
    out = r.stdout + r.stderr
    assert fake.url + "/devicelogin" in out, out


def test_login_with_manual_approval(manual_fake, env):
    p = _start_login(manual_fake, env)
    try:
        wait_until(lambda: _device_code_requested(manual_fake), 15, "the device code request")
        manual_fake.approve()
        p.wait(timeout=deadline(30))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = (env.base / "login.out").read_text(errors="replace")
    env.outputs.append(out)
    assert not helpers.sanitizer_problems(out), out
    assert p.returncode == 0, out
    assert env.tokens.stat().st_mode & 0o777 == 0o600


def test_login_declined(manual_fake, env):
    p = _start_login(manual_fake, env)
    try:
        wait_until(lambda: _device_code_requested(manual_fake), 15, "the device code request")
        manual_fake.decline()
        p.wait(timeout=deadline(30))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = (env.base / "login.out").read_text(errors="replace")
    env.outputs.append(out)
    assert not helpers.sanitizer_problems(out), out
    assert p.returncode == 1, out
    errors = [l for l in message_lines(out) if "error:" in l]
    assert len(errors) == 1, out
    assert not env.tokens.exists()
    assert not env.config_dir.exists() or os.listdir(env.config_dir) == []


def test_login_code_expires(manual_fake, env):
    manual_fake.config(device_expires_in=2, device_interval=1)
    p = _start_login(manual_fake, env)
    try:
        p.wait(timeout=deadline(20))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = (env.base / "login.out").read_text(errors="replace")
    env.outputs.append(out)
    assert not helpers.sanitizer_problems(out), out
    assert p.returncode == 1, out
    errors = [l for l in message_lines(out) if "error:" in l]
    assert len(errors) == 1, out
    assert "expire" in errors[0], errors[0]
    assert not env.tokens.exists()
    assert not env.config_dir.exists() or os.listdir(env.config_dir) == []


# ------------------------------------------------------- secrets in logs
def test_no_token_text_in_any_output(fake, env, login, mounter):
    fake.seed([{"path": "a/b.txt", "content": "bee\n"},
               {"path": "d/c.bin", "content": {"size": 300000, "seed": 3}}])
    r = login
    seen = env.read_tokens()
    secrets = {seen["access_token"], seen["refresh_token"]}
    m = mounter.mount(debug=True)
    assert open(m.p("a/b.txt"), "rb").read() == b"bee\n"
    fake.expire_tokens()                    # force a refresh while running, with -d
    # 'd' was never listed: its listing needs Graph, hence a refresh
    assert open(m.p("d/c.bin"), "rb").read() == fake.content("d/c.bin")
    assert fake.stats()["token_grants"].get("refresh_token", 0) >= 1
    wait_until(lambda: env.read_tokens()["refresh_token"] != seen["refresh_token"], 10,
               "the refreshed tokens to be stored")
    m.stop()
    now = env.read_tokens()
    secrets |= {now["access_token"], now["refresh_token"]}
    assert all(len(s) >= 16 for s in secrets)
    assert "debug:" in m.stderr_text(), "-d produced no debug output"

    texts = {"login output": r.stdout + r.stderr}
    for i, t in enumerate(env.outputs):
        texts["captured output %d" % i] = t
    for d in (env.config_home, env.cache_home, env.home):
        for dirpath, _dirs, files in os.walk(d):
            for name in files:
                p = os.path.join(dirpath, name)
                if os.path.realpath(p) == os.path.realpath(env.tokens):
                    continue
                with open(p, "rb") as f:
                    texts[p] = f.read().decode("latin-1")
    assert len(texts) > 2
    for where, text in texts.items():
        for s in secrets:
            assert s not in text, "a token appears in %s" % where
            assert s[-24:] not in text, "the tail of a token appears in %s" % where


def test_fstab_form_source_then_mountpoint(fake, env, login, tmp_path):
    """mount.fuse3 runs 'onedrivefs SOURCE MOUNTPOINT -o ...' for fstab lines."""
    fake.seed([{"path": "Documents/notes.txt", "content": "hello\n"}])
    mnt = str(env.mnt)
    # exactly how mount(8) calls us for "onedrivefs /mnt fuse.onedrivefs ..."
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(helpers.BINARY, str(bindir / "onedrivefs"))
    environ = dict(env.environ)
    environ["PATH"] = "%s:%s" % (bindir, environ.get("PATH", "/usr/bin:/bin"))
    try:
        r = subprocess.run(["mount.fuse3", "onedrivefs", mnt, "-o", fake.opts()], env=environ,
                           capture_output=True, text=True, timeout=deadline(30))
        assert r.returncode == 0, r.stderr
        assert helpers.mount_count(mnt) == 1, r.stderr
        with open(os.path.join(mnt, "Documents", "notes.txt"), "rb") as f:
            assert f.read() == b"hello\n"
    finally:
        helpers.fuse_unmount(mnt)
        for pid in helpers.pids_with_cmdline(mnt):
            helpers.kill_pid(pid)


def test_three_arguments_are_refused(fake, env):
    r = env.run(["-o", fake.opts(), "onedrivefs", str(env.mnt), "extra"], timeout=30)
    assert r.returncode == 1
    assert "unexpected argument 'extra'" in error_sentence(r)
    assert_not_mounted(env.mnt)
