"""Conflicts and a flaky service on the write path: both versions of a
conflicting edit are kept, a full quota loses nothing, and throttling,
failures, dropped connections and expiring tokens or sessions still end
with every byte on the server."""

import base64
import calendar
import errno
import os
import re
import time

import pytest

from helpers import (MIB, call_with_deadline, expire_upload_sessions, log_lines_matching, pattern, peer, quota,
                     read_back, set_quota, upload_sessions, wait_equal, wait_landed, wait_settled, wait_until,
                     xattr)

CONFLICT_NAME = re.compile(r"^doc \(conflict (\d{4}-\d{2}-\d{2} \d{6})\)\.(txt|bin)$")


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def faults_applied(fake):
    return fake.stats().get("faults_applied", 0)


def workload(m, tag):
    """Ordinary writes of every kind: a folder, small files, an empty file,
    a file that needs an upload session, a rename and a new time.  Returns
    what the server must end up with ({path: bytes})."""
    os.mkdir(m.p(tag))
    want = {}
    for i in range(8):
        data = ("%s file %d\n" % (tag, i)).encode() * (i * 50 + 1)
        write(m.p("%s/f%d.txt" % (tag, i)), data)
        want["%s/f%d.txt" % (tag, i)] = data
    write(m.p(tag + "/empty"), b"")
    want[tag + "/empty"] = b""
    big = pattern(6 * MIB + 12345, 70)
    write(m.p(tag + "/big.bin"), big)
    want[tag + "/big.bin"] = big
    os.rename(m.p(tag + "/f0.txt"), m.p(tag + "/renamed.txt"))
    want[tag + "/renamed.txt"] = want.pop(tag + "/f0.txt")
    os.utime(m.p(tag + "/f1.txt"), (1600000000, 1600000000))
    return want


def check_workload(fake, m, tag, want):
    dump = wait_landed(fake, want, timeout=120, what="the %s workload" % tag)
    wait_until(lambda: fake.dump_by_path()[tag + "/f1.txt"]["mtime"] == "2020-09-13T12:26:40Z", 30,
               "the new time of f1.txt")
    assert tag + "/f0.txt" not in fake.dump_by_path()
    wait_settled(m.p(tag), timeout=60)
    for rel, data in want.items():
        assert fake.content(rel) == data, rel
        assert read_back(m.p(rel)) == data, rel
    # no conflict copies, no strays
    names = sorted(p for p in fake.dump_by_path() if p.startswith(tag + "/"))
    assert names == sorted(want), names
    return dump


# -------------------------------------------------------------- conflicts
@pytest.mark.parametrize("size", [20, 5 * MIB], ids=["simple", "session"])
@pytest.mark.valgrind
def test_conflicting_remote_edit_keeps_both(fake, mounter, size):
    ext = "txt" if size < MIB else "bin"
    name = "doc." + ext
    original = pattern(size, 80)
    fake.seed([{"path": name, "content": {"base64": base64.b64encode(original).decode()}}])
    orig_id = fake.dump_by_path()[name]["id"]
    m = mounter.mount(expect_errors=[r"conflict"])
    assert read_back(m.p(name)) == original
    local = pattern(size + 7, 81)
    remote = pattern(size + 3, 82)
    t0 = time.time()
    f = open(m.p(name), "wb")
    try:
        f.write(local[:size // 2])
        f.flush()
        # another device changes the file while the local edit is under way
        peer(fake).put_content("/" + name, data=remote) if size < 4 * MIB else \
            peer(fake).upload("/" + name, data=remote)
        f.write(local[size // 2:])
    finally:
        f.close()

    def conflict_copy():
        d = fake.dump_by_path()
        hits = [p for p in d if CONFLICT_NAME.match(p)]
        return hits if hits and d[hits[0]]["size"] == len(local) else None
    hits = wait_until(conflict_copy, 60, "the conflict copy on the server")
    t1 = time.time()
    assert len(hits) == 1, hits
    copy = hits[0]
    stamp = CONFLICT_NAME.match(copy).group(1)
    when = calendar.timegm(time.strptime(stamp, "%Y-%m-%d %H%M%S"))      # the name's time is UTC
    assert int(t0) - 1 <= when <= t1 + 1, "conflict time %s is not UTC now" % stamp
    assert copy.endswith("." + ext)
    # the original name holds the remote version, the copy the local one
    assert fake.content(copy) == local
    assert fake.content(name) == remote
    assert fake.dump_by_path()[name]["id"] == orig_id
    wait_until(lambda: copy in os.listdir(m.p("")), 30, "the conflict copy in the mount")
    wait_until(lambda: read_back(m.p(name)) == remote, 30, "the mount to show the remote version")
    assert read_back(m.p(copy)) == local
    st = (xattr(m.p(name), "status"), xattr(m.p(copy), "status"))
    assert "conflict" in st, "status shows no conflict: %r" % (st,)
    # one line tells what happened: it names both the file and its copy
    lines = [l for l in log_lines_matching(m.stderr_text(), re.escape(copy)) if name in l.replace(copy, "")]
    assert len(lines) == 1, m.stderr_text()


# ------------------------------------------------------------------ quota
@pytest.mark.slow
def test_quota_full_then_freed(fake, mounter):
    m = mounter.mount(expect_errors=[r"quota|space|full|507"])
    used = quota(fake)["used"]
    set_quota(fake, used + 50000)
    files = {"q/small.bin": pattern(300000, 90), "q/big.bin": pattern(5 * MIB, 91)}
    os.mkdir(m.p("q"))
    for rel, data in files.items():
        fd = os.open(m.p(rel), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            try:
                call_with_deadline(lambda: os.fsync(fd), 60, "fsync of %s with the quota full" % rel)
                e = 0
            except OSError as err:
                e = err.errno
            assert e == errno.ENOSPC, "fsync of %s: %s, want ENOSPC" % (rel, errno.errorcode.get(e, e))
        finally:
            try:
                os.close(fd)
            except OSError:
                pass
        st = xattr(m.p(rel), "status")
        assert st.startswith("error") and "quota" in st.lower(), st
        # the data stays
        assert read_back(m.p(rel)) == data
    assert not [p for p in fake.dump_by_path() if p.startswith("q/")]
    # space is freed: the uploads go through on their own
    set_quota(fake, 1 << 40)
    wait_landed(fake, files, timeout=150, what="the uploads after the quota was raised")
    wait_settled(m.p("q"), timeout=30)
    for rel, data in files.items():
        assert fake.content(rel) == data


# ------------------------------------------------------- a flaky service
@pytest.mark.slow
def test_429_storm(fake, mounter):
    m = mounter.mount()
    r = lambda match, n: {"match": match, "status": 429, "retry_after": "0.3", "times": n}  # noqa: E731
    fake.faults({"rules": [r("PUT content", 8), r("POST createUploadSession", 2), r("PUT upload", 3),
                           r("POST children", 2), r("PATCH item", 2)]})
    want = workload(m, "storm")
    check_workload(fake, m, "storm", want)
    assert faults_applied(fake) >= 15
    assert fake.stats()["responses"].get("429", 0) >= 15


@pytest.mark.slow
def test_503s(fake, mounter):
    m = mounter.mount()
    r = lambda match, n, st=503: {"match": match, "status": st, "times": n}  # noqa: E731
    fake.faults({"rules": [r("PUT content", 4), r("PUT content", 2, 500), r("POST createUploadSession", 2),
                           r("PUT upload", 2, 502), r("PUT upload", 1, 504), r("POST children", 2),
                           r("PATCH item", 2)]})
    want = workload(m, "unavailable")
    check_workload(fake, m, "unavailable", want)
    assert faults_applied(fake) >= 15


@pytest.mark.slow
def test_dropped_connections(fake, mounter):
    m = mounter.mount()
    r = lambda match, n: {"match": match, "drop": True, "times": n}  # noqa: E731
    fake.faults({"rules": [r("PUT content", 4), r("POST createUploadSession", 1), r("PUT upload", 2),
                           r("POST children", 1), r("PATCH item", 1)]})
    want = workload(m, "dropped")
    check_workload(fake, m, "dropped", want)
    assert faults_applied(fake) >= 9


def test_response_lost_after_the_upload_was_applied(fake, mounter):
    """The server stored the bytes but the answer was cut off: the retry must
    not turn the client's own upload into a conflict."""
    fake.seed([{"path": "edit.txt", "content": "before\n"}])
    m = mounter.mount()
    assert read_back(m.p("edit.txt")) == b"before\n"
    fake.faults({"rules": [{"match": "PUT content", "truncate": True, "times": 2}]})
    write(m.p("edit.txt"), b"after\n")
    write(m.p("new.txt"), b"brand new\n")
    wait_landed(fake, {"edit.txt": b"after\n", "new.txt": b"brand new\n"}, timeout=60)
    wait_settled(m.p(""))
    assert sorted(p for p in fake.dump_by_path() if p) == ["edit.txt", "new.txt"]
    assert xattr(m.p("edit.txt"), "status") == "clean"


def test_tokens_expire_mid_upload(fake, mounter):
    m = mounter.mount()
    fake.faults({"rules": [{"match": "PUT upload", "times": 1, "stall_ms": 0},
                           {"match": "PUT upload", "times": 1, "stall_ms": 1500}]})
    big = pattern(25 * MIB, 92)
    write(m.p("big.bin"), big)
    wait_until(lambda: any(s["received"] > 0 for s in upload_sessions(fake)), 60, "the first fragment")
    grants = fake.stats()["token_grants"].get("refresh_token", 0)
    fake.expire_tokens()
    small = {"after/%d.txt" % i: b"after expiry %d\n" % i for i in range(5)}
    os.mkdir(m.p("after"))
    for rel, data in small.items():
        write(m.p(rel), data)
    want = dict(small, **{"big.bin": big})
    wait_landed(fake, want, timeout=90)
    wait_settled(m.p(""))
    assert fake.stats()["token_grants"].get("refresh_token", 0) > grants
    for rel, data in want.items():
        assert fake.content(rel) == data, rel


def test_upload_session_expires_midway(fake, mounter):
    m = mounter.mount()
    fake.faults({"rules": [{"match": "PUT upload", "times": 1, "stall_ms": 0},
                           {"match": "PUT upload", "times": 1, "stall_ms": 2000}]})
    big = pattern(25 * MIB, 93)
    write(m.p("big.bin"), big)

    def second_fragment_hangs():
        return any(s["received"] > 0 for s in upload_sessions(fake)) and \
            fake.stats()["requests"].get("PUT upload", 0) >= 2
    wait_until(second_fragment_hangs, 60, "the second fragment to hang")
    assert expire_upload_sessions(fake) == 1
    wait_landed(fake, {"big.bin": big}, timeout=90)
    wait_settled(m.p(""))
    assert fake.stats()["requests"].get("POST createUploadSession", 0) == 2
    assert fake.content("big.bin") == big


@pytest.mark.slow
def test_outage_then_recovery(fake, mounter):
    """The service is unreachable for a while: writes still succeed locally at
    once, and land when it is back."""
    m = mounter.mount()
    os.mkdir(m.p("offline"))
    wait_until(lambda: "offline" in fake.dump_by_path(), 20, "the folder on the server")
    fake.faults({"rules": [{"match": "*", "drop": True}]})
    files = {"offline/f%d.bin" % i: pattern(1000 * i + 1, 200 + i) for i in range(5)}
    files["offline/big.bin"] = pattern(5 * MIB, 210)
    for rel, data in files.items():
        t0 = time.monotonic()
        write(m.p(rel), data)
        assert time.monotonic() - t0 < 5, "writing %s waited for the service" % rel
    assert read_back(m.p("offline/big.bin")) == files["offline/big.bin"]
    wait_until(lambda: faults_applied(fake) >= 3, 30, "the daemon to try and fail")
    fake.faults({})
    wait_landed(fake, files, timeout=120, what="the uploads after the outage")
    wait_settled(m.p("offline"))


@pytest.mark.parametrize("size", [20, 5 * MIB], ids=["simple", "session"])
def test_remote_rename_during_local_edit_is_no_conflict(fake, mounter, size):
    """A rename changes the eTag but not the cTag: the edit lands on the
    item under its new name, and no conflict copy is made."""
    original = pattern(size, 83)
    fake.seed([{"path": "doc.bin", "content": {"base64": base64.b64encode(original).decode()}}])
    item_id = fake.dump_by_path()["doc.bin"]["id"]
    m = mounter.mount()
    assert read_back(m.p("doc.bin")) == original
    local = pattern(size + 5, 84)
    with open(m.p("doc.bin"), "wb") as f:
        f.write(local[:10])
        f.flush()
        peer(fake).rename("/doc.bin", "renamed.bin")
        f.write(local[10:])
    dump = wait_landed(fake, {"renamed.bin": local}, timeout=60)
    assert dump["renamed.bin"]["id"] == item_id
    wait_equal(lambda: [p for p in fake.dump_by_path() if p], ["renamed.bin"], 30, "no other file on the server")
    assert "conflict" not in m.stderr_text()


def test_editor_save_over_a_remotely_changed_file_keeps_both(fake, mounter):
    """The editor read the file, another device changed it, then the editor
    saved (temp file renamed over it): neither version is lost."""
    fake.seed([{"path": "doc.txt", "content": "original\n"}])
    m = mounter.mount(expect_errors=[r"conflict"])
    assert read_back(m.p("doc.txt")) == b"original\n"
    peer(fake).put_content("/doc.txt", data=b"remote edit\n")
    write(m.p(".doc.txt.tmp"), b"local save\n")
    os.rename(m.p(".doc.txt.tmp"), m.p("doc.txt"))

    def copies():
        return [p for p in fake.dump_by_path() if CONFLICT_NAME.match(p)] or None
    hits = wait_until(copies, 60, "the conflict copy on the server")
    assert len(hits) == 1, hits
    assert fake.content(hits[0]) == b"local save\n"
    assert fake.content("doc.txt") == b"remote edit\n"
    wait_until(lambda: read_back(m.p("doc.txt")) == b"remote edit\n", 30, "the mount to show the remote version")
    assert read_back(m.p(hits[0])) == b"local save\n"
    assert not [p for p in fake.dump_by_path() if p.endswith(".tmp")]
