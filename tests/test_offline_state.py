"""Connectivity: "offline since" in the log and in user.onedrive.status when
the service stops answering, cached files still readable, uncached reads
failing fast with EIO, the way back found by itself, and a mount started
while the service is down working from the cache."""

import errno
import os
import re
import subprocess
import time

import pytest

from helpers import deadline, wait_until, xattr

FILES = {"Docs/cached.txt": "bytes kept on this machine\n",
         "Docs/remote.txt": "bytes only on the service\n"}
FAST = {"connect_timeout": 2, "io_timeout": 2, "max_retries": 2, "offline_probe": 2}
OFFLINE_STATUS = re.compile(r"^clean, offline since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")


def seed(fake):
    fake.seed([{"path": p, "content": c} for p, c in FILES.items()])


def fake_down(fake):
    """Stop the fake: its port refuses connections.  Returns the port."""
    port = fake.server.port
    fake.server.stop()
    return port


def fake_up(fake, port):
    """Start the fake again on the same port, its drive as it was."""
    def started():
        fake.server._want_port = port        # FakeGraph pins the port it binds
        try:
            fake.server.start()
        except OSError:
            return False                     # the port is still in TIME_WAIT use
        return True
    wait_until(started, 20, "the fake to listen on port %d again" % port, interval=0.05)
    assert fake.server.port == port


def read(m, rel):
    with open(m.p(rel)) as f:
        return f.read()


def test_offline_since_then_back_online(fake, mounter):
    seed(fake)
    m = mounter.mount(opts=FAST)
    assert read(m, "Docs/cached.txt") == FILES["Docs/cached.txt"]
    assert xattr(m.p("Docs/cached.txt"), "status") == "clean"
    port = fake_down(fake)
    try:
        # the first request that finds nobody: EIO within one attempt's bound
        t0 = time.monotonic()
        with pytest.raises(OSError) as e:
            read(m, "Docs/remote.txt")
        assert e.value.errno == errno.EIO
        assert time.monotonic() - t0 < deadline(20)
        wait_until(lambda: "offline since" in m.stderr_text(), 10, "the 'offline since' line")
        line = [l for l in m.stderr_text().splitlines() if "offline since" in l][0]
        assert "warning:" in line and "cannot reach '127.0.0.1:%d'" % port in line, line
        # offline: one attempt, no retries, so a second read fails faster still
        t0 = time.monotonic()
        with pytest.raises(OSError) as e:
            read(m, "Docs/remote.txt")
        assert e.value.errno == errno.EIO
        assert time.monotonic() - t0 < deadline(10)
        # cached bytes and metadata are served; the status says since when
        assert read(m, "Docs/cached.txt") == FILES["Docs/cached.txt"]
        assert sorted(__import__("os").listdir(m.p("Docs"))) == ["cached.txt", "remote.txt"]
        status = xattr(m.p("Docs/cached.txt"), "status")
        assert OFFLINE_STATUS.match(status), status
        assert m.stderr_text().count("offline since") == 1, m.stderr_text()
    finally:
        fake_up(fake, port)
    # the prober finds the service by itself (offline_probe=2)
    wait_until(lambda: xattr(m.p("Docs/cached.txt"), "status") == "clean", 20,
               "the status to lose its offline suffix")
    wait_until(lambda: "back online after" in m.stderr_text(), 10, "the 'back online' line")
    assert read(m, "Docs/remote.txt") == FILES["Docs/remote.txt"]


def test_mount_while_offline_uses_the_cache(fake, mounter):
    seed(fake)
    m = mounter.mount(opts=FAST)
    assert read(m, "Docs/cached.txt") == FILES["Docs/cached.txt"]
    m.stop()
    port = fake_down(fake)
    try:
        m = mounter.mount(opts=FAST)
        text = m.stderr_text()
        assert "mounting from the cache" in text and "warning:" in text, text
        assert sorted(__import__("os").listdir(m.p("Docs"))) == ["cached.txt", "remote.txt"]
        assert read(m, "Docs/cached.txt") == FILES["Docs/cached.txt"]
        assert OFFLINE_STATUS.match(xattr(m.p("Docs/cached.txt"), "status"))
        with pytest.raises(OSError) as e:
            read(m, "Docs/remote.txt")
        assert e.value.errno == errno.EIO
    finally:
        fake_up(fake, port)
    wait_until(lambda: xattr(m.p("Docs/cached.txt"), "status") == "clean", 20,
               "the status to lose its offline suffix")
    wait_until(lambda: "back online after" in m.stderr_text(), 10, "the 'back online' line")
    assert read(m, "Docs/remote.txt") == FILES["Docs/remote.txt"]


def test_mount_while_offline_without_cache_fails(fake, env, login):
    port = fake_down(fake)
    try:
        r = env.run(["-f", "-o", fake.opts(**FAST), str(env.mnt)], timeout=deadline(30))
    finally:
        fake_up(fake, port)
    assert r.returncode == 1, r.stderr
    assert "error: cannot reach '127.0.0.1:%d'" % port in r.stderr, r.stderr
    assert "mounting from the cache" not in r.stderr


def test_written_offline_is_dirty_then_sent_when_back(fake, mounter):
    seed(fake)
    m = mounter.mount(opts=FAST)
    assert read(m, "Docs/cached.txt") == FILES["Docs/cached.txt"]
    port = fake_down(fake)
    try:
        with pytest.raises(OSError):
            read(m, "Docs/remote.txt")           # finds the service gone
        with open(m.p("Docs/new.txt"), "w") as f:
            f.write("written while offline\n")
        # offline already: its upload waits for the service (no attempt, no error)
        dirty = re.compile(r"^dirty, offline since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
        status = xattr(m.p("Docs/new.txt"), "status")
        assert dirty.match(status), status
        # fsync does not fail an editor's save for a network cut: the bytes are journalled
        fd = os.open(m.p("Docs/new.txt"), os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        assert "cannot upload" not in m.stderr_text()
        assert dirty.match(xattr(m.p("Docs/new.txt"), "status"))
    finally:
        fake_up(fake, port)
    wait_until(lambda: xattr(m.p("Docs/new.txt"), "status") == "clean", 30,
               "the upload once the service is back")
    assert fake.content("Docs/new.txt") == b"written while offline\n"
