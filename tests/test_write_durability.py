"""Durability of the write path: a close() that returned is never forgotten,
not even by a kill -9; upload sessions resume; fsync waits for the server."""

import os
import subprocess

import pytest

from helpers import (MIB, call_with_deadline, fuse_connection_abort, kill_daemon, meta_db_integrity, pattern, qxhash, read_back, versions,
                     upload_sessions, expire_upload_sessions, wait_landed, wait_settled, wait_until)

SESSION_SIZE = 30 * MIB


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def stall_after_first_fragment(fake):
    """The first fragment of an upload session goes through, every later one
    hangs and is then dropped unapplied (so a killed daemon leaves a session
    that holds exactly the first fragment)."""
    fake.faults({"rules": [{"match": "PUT upload", "times": 1, "stall_ms": 0},
                           {"match": "PUT upload", "stall_ms": 60000, "drop": True}]})


def wait_first_fragment(fake):
    def started():
        s = upload_sessions(fake)
        return s and s[0]["received"] > 0 and fake.stats()["requests"].get("PUT upload", 0) >= 2 and s
    sessions = wait_until(started, 60, "the first fragment to land and the second to hang")
    assert len(sessions) == 1, sessions
    return sessions[0]["received"]


@pytest.mark.slow
def test_kill9_with_100_pending_uploads(fake, mounter, env):
    m = mounter.mount()
    os.mkdir(m.p("pending"))
    wait_until(lambda: "pending" in fake.dump_by_path(), 20, "the folder on the server")
    # every simple upload hangs, then is dropped without being applied
    fake.faults({"rules": [{"match": "PUT content", "stall_ms": 60000, "drop": True}]})
    files = {"pending/f%03d.bin" % i: pattern(1000 + 37 * i, 100 + i) for i in range(100)}
    files["pending/empty.txt"] = b""
    for rel, data in files.items():
        write(m.p(rel), data)
    # every close() returned: the journal holds them all
    kill_daemon(m)
    assert meta_db_integrity(env) == "ok"
    fake.faults({})
    assert not [p for p in fake.dump_by_path() if p.startswith("pending/")], "uploads landed despite the stall"
    m2 = mounter.mount(path=m.path)
    wait_landed(fake, files, timeout=90, what="the 101 uploads journalled before the kill")
    wait_settled(m2.p("pending"))
    for rel, data in files.items():
        assert read_back(m2.p(rel)) == data, rel
    assert sorted(os.listdir(m2.p("pending"))) == sorted(os.path.basename(p) for p in files)


@pytest.mark.slow
@pytest.mark.valgrind
def test_kill9_mid_upload_session_resumes(fake, mounter, env):
    m = mounter.mount()
    data = pattern(SESSION_SIZE, 50)
    stall_after_first_fragment(fake)
    write(m.p("session.bin"), data)
    received = wait_first_fragment(fake)
    assert 0 < received < SESSION_SIZE
    kill_daemon(m)
    assert meta_db_integrity(env) == "ok"
    fake.faults({})
    fake.stats_reset()
    m2 = mounter.mount(path=m.path)
    wait_landed(fake, {"session.bin": data}, timeout=90)
    st = fake.stats()
    # resumed: the session was asked for nextExpectedRanges, not re-created,
    # and the bytes it already had were not sent again
    assert st["requests"].get("POST createUploadSession", 0) == 0, st["requests"]
    assert st["requests"].get("GET upload", 0) >= 1, st["requests"]
    assert st["bytes_received_content"] <= SESSION_SIZE - received, st["bytes_received_content"]
    wait_settled(m2.p(""))
    assert read_back(m2.p("session.bin")) == data


@pytest.mark.slow
def test_kill9_then_expired_session_starts_over(fake, mounter, env):
    m = mounter.mount()
    data = pattern(SESSION_SIZE, 51)
    stall_after_first_fragment(fake)
    write(m.p("expired.bin"), data)
    wait_first_fragment(fake)
    kill_daemon(m)
    assert meta_db_integrity(env) == "ok"
    fake.faults({})
    assert expire_upload_sessions(fake) == 1
    fake.stats_reset()
    m2 = mounter.mount(path=m.path)
    wait_landed(fake, {"expired.bin": data}, timeout=90)
    st = fake.stats()
    assert st["requests"].get("POST createUploadSession", 0) == 1, st["requests"]
    assert st["bytes_received_content"] >= SESSION_SIZE
    wait_settled(m2.p(""))
    assert read_back(m2.p("expired.bin")) == data


def test_kill9_twice_in_a_row(fake, mounter, env):
    """A second crash during recovery loses nothing either."""
    m = mounter.mount()
    fake.faults({"rules": [{"match": "PUT content", "stall_ms": 60000, "drop": True}]})
    files = {"twice/a%02d.txt" % i: ("file %d\n" % i).encode() * (i + 1) for i in range(20)}
    os.mkdir(m.p("twice"))
    for rel, data in files.items():
        write(m.p(rel), data)
    kill_daemon(m)
    assert meta_db_integrity(env) == "ok"
    fake.stats_reset()
    m2 = mounter.mount(path=m.path)          # the stall still holds: recovery hangs too
    wait_until(lambda: fake.stats()["requests"].get("PUT content", 0) >= 1, 30, "recovery to start uploading")
    kill_daemon(m2)
    assert meta_db_integrity(env) == "ok"
    fake.faults({})
    m3 = mounter.mount(path=m.path)
    wait_landed(fake, files, timeout=60)
    wait_settled(m3.p("twice"))


@pytest.mark.valgrind
def test_connection_aborted_with_files_open(fake, mounter, env):
    """The session ends while files are open (their releases never come):
    bytes whose write() returned still land, and nothing leaks."""
    fake.seed([{"path": "read.txt", "content": "readable\n"}])
    m = mounter.mount()
    data = pattern(300000, 61)
    writer = open(m.p("open.bin"), "wb", buffering=0)
    reader = open(m.p("read.txt"), "rb", buffering=0)
    try:
        assert writer.write(data) == len(data)    # acknowledged: it must not be lost
        assert reader.read() == b"readable\n"
        fuse_connection_abort(m.path)
        m.proc.wait(timeout=60)
    finally:
        for f in (writer, reader):
            try:
                f.close()
            except OSError:
                pass                                # the connection is gone
    m.stop()     # valgrind's verdict and the log's error lines
    assert m.returncode == 0, m.stderr_text()
    assert meta_db_integrity(env) == "ok"
    m2 = mounter.mount(path=m.path)
    wait_landed(fake, {"open.bin": data}, timeout=60, what="the bytes written before the abort")
    wait_settled(m2.p(""))
    assert read_back(m2.p("open.bin")) == data
    assert read_back(m2.p("read.txt")) == b"readable\n"


def test_fsync_waits_until_landed(fake, mounter):
    m = mounter.mount()
    # make each upload take a while, so that returning early would show
    fake.faults({"rules": [{"match": "PUT content", "stall_ms": 800, "times": 2},
                           {"match": "PUT upload", "stall_ms": 800, "times": 1}]})
    for name, data in (("small.txt", b"fsync me\n" * 100), ("big.bin", pattern(6 * MIB, 52))):
        fd = os.open(m.p(name), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            call_with_deadline(lambda: os.fsync(fd), 60, "fsync of %s" % name)
            rec = fake.dump_by_path().get(name)
            assert rec is not None, "fsync of %s returned before it landed" % name
            assert rec["size"] == len(data) and rec["quickXorHash"] == qxhash(data), name
        finally:
            os.close(fd)
    # `sync FILE` (fsync on a read-only descriptor) after close() waits too
    data = b"synced later\n"
    write(m.p("later.txt"), data)
    r = subprocess.run(["sync", m.p("later.txt")], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rec = fake.dump_by_path().get("later.txt")
    assert rec is not None and rec["quickXorHash"] == qxhash(data), "sync returned before the upload landed"
    assert fake.content("later.txt") == data


def test_nothing_is_uploaded_twice_after_a_remount_or_a_kill(fake, mounter, env):
    m = mounter.mount(opts={"upload_workers": 1, "small_uploads": 1})
    files = {"done/f%d.bin" % i: pattern(3000 * i + 1, 300 + i) for i in range(10)}
    files["done/big.bin"] = pattern(5 * MIB, 310)
    os.mkdir(m.p("done"))
    for rel, data in files.items():
        write(m.p(rel), data)
    wait_landed(fake, files, timeout=60)
    wait_settled(m.p("done"))
    m = mounter.remount(m)
    fake.stats_reset()
    # the queue is FIFO: with one worker, anything resumed would go before this
    write(m.p("marker1.txt"), b"one\n")
    wait_landed(fake, {"marker1.txt": b"one\n"})
    assert fake.stats()["requests"].get("PUT content", 0) == 1, fake.stats()["requests"]
    assert fake.stats()["requests"].get("POST createUploadSession", 0) == 0
    # fsync returned: a kill -9 right after it does not make the next mount upload again
    fd = os.open(m.p("synced.txt"), os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"synced\n")
    os.fsync(fd)
    os.close(fd)
    kill_daemon(m)
    assert meta_db_integrity(env) == "ok"
    fake.stats_reset()
    m = mounter.mount(path=m.path, opts={"upload_workers": 1, "small_uploads": 1})
    write(m.p("marker2.txt"), b"two\n")
    wait_landed(fake, {"marker2.txt": b"two\n", "synced.txt": b"synced\n"})
    st = fake.stats()
    assert st["requests"].get("PUT content", 0) == 1, st["requests"]
    assert st["bytes_received_content"] == len(b"two\n")
    assert len(versions(fake, "synced.txt")) == 1


def test_kill9_while_a_partial_edit_of_a_remote_file_waits_for_its_download(fake, mounter, env):
    """A write into the middle of a remote file, and a truncate up of
    another: their uploads first need the rest of the bytes, which hang.
    The local changes survive a kill -9 and land after the remount."""
    size = 6 * MIB
    fake.seed([{"path": "r/edit.bin", "content": {"size": size, "seed": 320}},
               {"path": "r/grow.bin", "content": {"size": 300000, "seed": 321}}])
    m = mounter.mount()
    orig = fake.content("r/edit.bin")
    grow = fake.content("r/grow.bin")
    os.listdir(m.p("r"))
    fake.faults({"rules": [{"match": "GET download", "stall_ms": 60000, "drop": True}]})
    patch = b"CRASH-SAFE" * 500
    fd = os.open(m.p("r/edit.bin"), os.O_WRONLY)
    try:
        os.pwrite(fd, patch, 4000000)
    finally:
        os.close(fd)
    os.truncate(m.p("r/grow.bin"), 1000000)
    wait_until(lambda: fake.stats()["requests"].get("GET download", 0) >= 1, 20,
               "an upload to ask for the missing bytes")
    kill_daemon(m)
    assert meta_db_integrity(env) == "ok"
    fake.faults({})
    m2 = mounter.mount(path=m.path)
    want = {"r/edit.bin": orig[:4000000] + patch + orig[4000000 + len(patch):],
            "r/grow.bin": grow + b"\0" * (1000000 - len(grow))}
    wait_landed(fake, want, timeout=60)
    wait_settled(m2.p("r"))
    for rel, data in want.items():
        assert read_back(m2.p(rel)) == data, rel
