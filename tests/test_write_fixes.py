"""Fixes to the write path, each with the test that showed the bug:
unmounting while an upload waits (Retry-After, throttling), permanent upload
failures (read-only shared folder, refused name), a time set while the bytes
travel, a rename over a file while its source uploads, an unusable item in
a listing, and EXDEV (a move between drives) being routine, not an error."""

import errno
import json
import os
import re
import time

import pytest

from helpers import (MIB, children_rules, deadline, log_lines_matching, pattern, peer, read_back,
                     wait_landed, wait_settled, wait_until, xattr)

# folders on another drive are not in the drive's delta (see test_drives.py)
SHORTCUT_OPTS = {"poll_interval": "0", "dir_ttl": "1"}
READ_ONLY_TEXT = "access denied: this folder is read-only for you"


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def requests(fake, label):
    return fake.stats()["requests"].get(label, 0)


def faults_applied(fake):
    return fake.stats().get("faults_applied", 0)


def stop_promptly(m, limit=10):
    t0 = time.monotonic()
    m.stop()                           # fails after 15 s, or on an error line
    took = time.monotonic() - t0
    assert took < limit, "unmount took %.1fs with an upload waiting" % took


# ------------------------------------------------ unmount cuts waits short
def test_unmount_during_chunk_retry_after(fake, mounter):
    """A chunk answered 503 with a long Retry-After: the unmount does not
    sit it out; the next mount finishes the upload."""
    m = mounter.mount()
    fake.faults({"rules": [{"match": "PUT upload", "status": 503, "retry_after": "200"}]})
    data = pattern(5 * MIB, 3)
    write(m.p("big.bin"), data)
    wait_until(lambda: faults_applied(fake) >= 1, 30, "a chunk to be refused")
    time.sleep(0.3)                    # the worker is now in its Retry-After wait
    stop_promptly(m)
    fake.faults({})
    m2 = mounter.mount(path=m.path)
    wait_landed(fake, {"big.bin": data}, timeout=60)
    wait_settled(m2.p(""))


def test_unmount_while_throttled(fake, mounter):
    """A simple upload throttled (429, Retry-After 200): http.c's wait is
    cut short by the unmount."""
    m = mounter.mount()
    fake.faults({"rules": [{"match": "PUT content", "status": 429, "retry_after": "200"}]})
    write(m.p("small.txt"), b"throttled\n")
    wait_until(lambda: faults_applied(fake) >= 1, 30, "the upload to be throttled")
    time.sleep(0.3)
    stop_promptly(m)
    fake.faults({})
    m2 = mounter.mount(path=m.path)
    wait_landed(fake, {"small.txt": b"throttled\n"}, timeout=60)
    wait_settled(m2.p(""))


# ------------------------------------------------------ permanent failures
def test_read_only_share_upload_is_permanent(fake, mounter):
    fake.server.add_user("Bob Jones")
    fake.server.seed(tree=[{"path": "Ro/info.txt", "content": "look, don't touch"}], drive="bob")
    fake.server.share("/Ro", owner="bob", role="read")
    m = mounter.mount(opts=SHORTCUT_OPTS, expect_errors=[r"new\.txt"])
    assert "info.txt" in os.listdir(m.p("Ro"))
    with open(m.p("Ro/new.txt"), "wb") as f:
        f.write(b"mine, not theirs\n")
        f.flush()
        with pytest.raises(OSError) as ei:
            os.fsync(f.fileno())
        assert ei.value.errno == errno.EACCES
    assert xattr(m.p("Ro/new.txt"), "status") == "error: " + READ_ONLY_TEXT
    # not retried forever: the number of attempts stays put
    tries = requests(fake, "PUT content")
    time.sleep(3)
    assert requests(fake, "PUT content") == tries
    # the local copy is kept
    assert read_back(m.p("Ro/new.txt")) == b"mine, not theirs\n"
    lines = log_lines_matching(m.stderr_text(), r"cannot upload .*new\.txt")
    assert len(lines) == 1 and READ_ONLY_TEXT in lines[0], lines
    # fsync says so at once, without another attempt
    fd = os.open(m.p("Ro/new.txt"), os.O_RDONLY)
    try:
        with pytest.raises(OSError) as ei:
            os.fsync(fd)
        assert ei.value.errno == errno.EACCES
    finally:
        os.close(fd)
    assert requests(fake, "PUT content") == tries
    # a later write tries once more
    with open(m.p("Ro/new.txt"), "ab") as f:
        f.write(b"more\n")
    wait_until(lambda: requests(fake, "PUT content") == tries + 1, 30, "one more attempt")
    wait_until(lambda: xattr(m.p("Ro/new.txt"), "status") == "error: " + READ_ONLY_TEXT, 30,
               "the error status again")
    time.sleep(2)
    assert requests(fake, "PUT content") == tries + 1
    assert read_back(m.p("Ro/new.txt")) == b"mine, not theirs\nmore\n"
    with pytest.raises(KeyError):
        fake.server.item("/Ro/new.txt", drive="bob")


def test_refused_name_is_permanent(fake, mounter):
    """400 invalidRequest for a name the client thought fine: an error
    status, not endless retries; a later write tries once more."""
    m = mounter.mount(expect_errors=[r"odd\.txt"])
    fake.faults({"rules": [{"match": "PUT content", "status": 400}]})
    write(m.p("odd.txt"), b"refused\n")
    fd = os.open(m.p("odd.txt"), os.O_RDONLY)
    try:
        with pytest.raises(OSError) as ei:
            os.fsync(fd)
        assert ei.value.errno == errno.EINVAL
    finally:
        os.close(fd)
    status = xattr(m.p("odd.txt"), "status")
    assert status.startswith("error: the service refuses the name 'odd.txt'"), status
    tries = faults_applied(fake)
    time.sleep(3)
    assert faults_applied(fake) == tries
    assert read_back(m.p("odd.txt")) == b"refused\n"
    fake.faults({})
    write(m.p("odd.txt"), b"accepted now\n")
    wait_landed(fake, {"odd.txt": b"accepted now\n"}, timeout=30)
    wait_settled(m.p(""))


# --------------------------------------------------- races with an upload
def test_utimens_during_simple_upload(fake, mounter):
    m = mounter.mount()
    fake.faults({"rules": [{"match": "PUT content", "stall_ms": 2000, "times": 1}]})
    write(m.p("t.txt"), b"timed\n")
    wait_until(lambda: requests(fake, "PUT content") >= 1, 20, "the upload to start")
    when = 1000000000                  # 2001-09-09T01:46:40Z
    os.utime(m.p("t.txt"), (when, when))
    wait_landed(fake, {"t.txt": b"timed\n"}, timeout=30)
    wait_settled(m.p(""))
    wait_until(lambda: fake.dump_by_path()["t.txt"]["mtime"] == "2001-09-09T01:46:40Z", 30,
               "the new time on the server")
    assert int(os.stat(m.p("t.txt")).st_mtime) == when


def test_rename_over_while_source_uploads(fake, mounter):
    """An editor's save: the temp file is still uploading under its own
    name when it is renamed over the document.  The document's item gets
    the bytes, the temp name does not stay on the server."""
    fake.seed([{"path": "doc.txt", "content": "old version\n"}])
    m = mounter.mount()
    assert read_back(m.p("doc.txt")) == b"old version\n"
    doc_id = fake.dump_by_path()["doc.txt"]["id"]
    fake.faults({"rules": [{"match": "PUT content", "stall_ms": 2000, "times": 1}]})
    write(m.p("doc.txt.tmp"), b"new version\n")
    wait_until(lambda: requests(fake, "PUT content") >= 1, 20, "the temp file's upload to start")
    os.rename(m.p("doc.txt.tmp"), m.p("doc.txt"))
    dump = wait_landed(fake, {"doc.txt": b"new version\n"}, timeout=30)
    assert dump["doc.txt"]["id"] == doc_id
    wait_until(lambda: "doc.txt.tmp" not in fake.dump_by_path(), 30, "the temp file to go")
    wait_settled(m.p(""))
    assert sorted(os.listdir(m.p(""))) == ["doc.txt"]


def test_delete_while_new_file_uploads(fake, mounter):
    m = mounter.mount()
    fake.faults({"rules": [{"match": "PUT content", "stall_ms": 1500, "times": 1}]})
    write(m.p("brief.txt"), b"short-lived\n")
    wait_until(lambda: requests(fake, "PUT content") >= 1, 20, "the upload to start")
    os.unlink(m.p("brief.txt"))
    time.sleep(3)
    wait_until(lambda: "brief.txt" not in fake.dump_by_path(), 30, "the new item to be removed")
    assert os.listdir(m.p("")) == []


# ----------------------------------------------------------------- listing
def test_unusable_item_in_listing_is_skipped(fake, mounter):
    """One bad item in a valid page is skipped (as delta does), with one
    warning naming the folder; a page that is not JSON still fails."""
    fake.seed([{"path": "mixed/a.txt", "content": "a\n"}, {"path": "mixed/b.txt", "content": "b\n"},
               {"path": "broken/c.txt", "content": "c\n"}])
    folder_id = fake.dump_by_path()["mixed"]["id"]
    broken_id = fake.dump_by_path()["broken"]["id"]
    items = peer(fake).children("/mixed")
    bad = dict(items[0])
    bad["id"] = folder_id.split("!")[0] + "!9999"
    bad["name"] = "a/b"                # no usable file name
    body = json.dumps({"value": [items[0], bad, items[1]]})
    m = mounter.mount(opts={"poll_interval": "0"}, expect_errors=[r"'/?broken'"])
    seen = len(m.stderr_text())
    fake.faults({"rules": children_rules(folder_id, {"status": 200, "body": body})})
    assert sorted(os.listdir(m.p("mixed"))) == ["a.txt", "b.txt"]
    assert faults_applied(fake) >= 1
    text = m.stderr_text()[seen:]
    warnings = [l for l in text.splitlines() if "skipped" in l]
    assert len(warnings) == 1, text
    assert "warning:" in warnings[0] and folder_id in warnings[0] and "1 item " in warnings[0], warnings
    # a page that is not JSON at all still fails the listing (EIO, one error line)
    fake.faults({"rules": children_rules(broken_id, {"status": 200, "body": "{not json"})})
    seen = len(m.stderr_text())
    with pytest.raises(OSError) as ei:
        os.listdir(m.p("broken"))
    assert ei.value.errno == errno.EIO
    errors = [l for l in m.stderr_text()[seen:].splitlines() if "error:" in l]
    assert len(errors) == 1 and "broken" in errors[0], errors
    fake.faults({})
    assert os.listdir(m.p("broken")) == ["c.txt"]


# ------------------------------------------------------------------- EXDEV
def test_move_between_drives_is_not_an_error(fake, mounter):
    fake.server.add_user("Bob Jones")
    fake.server.seed(tree=[{"path": "Projects/plan.txt", "content": "bob's plan"}], drive="bob")
    fake.server.share("/Projects", owner="bob", role="write")
    m = mounter.mount(opts=SHORTCUT_OPTS)     # no error line expected
    assert "plan.txt" in os.listdir(m.p("Projects"))
    with pytest.raises(OSError) as e:
        os.rename(m.p("Projects/plan.txt"), m.p("plan.txt"))
    assert e.value.errno == errno.EXDEV
    m.stop()
    assert not log_lines_matching(m.stderr_text(), r"plan\.txt"), m.stderr_text()
