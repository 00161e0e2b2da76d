"""Fixes to the write path, each with the test that showed the bug:
unmounting while an upload waits (Retry-After, throttling), permanent upload
failures (read-only shared folder, refused name), a time set while the bytes
travel, a rename over a file while its source uploads, an unusable item in
a listing, and EXDEV (a move between drives) being routine, not an error."""

import errno
import json
import os
import re
import threading
import time

import pytest

from helpers import (MIB, children_rules, deadline, kill_daemon, log_lines_matching, meta_db_integrity,
                     pattern, peer, qxhash, read_back, versions,
                     wait_gone, wait_landed, wait_settled, wait_until, xattr)

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


def lose_the_answer(fake, m, rel, data, retry_after="30", retries=20):
    """Write rel through the mount: the service takes the upload but the
    answer breaks off, and the retries fail (503) for a while, so the
    upload waits in back-off with what it sent in doubt."""
    fake.faults({"rules": [{"match": "PUT content", "truncate": True, "times": 1},
                           {"match": "PUT content", "status": 503, "retry_after": retry_after,
                            "times": retries}]})
    write(m.p(rel), data)
    wait_until(lambda: faults_applied(fake) >= 2, 30, "the answer to be lost and the retry to fail")
    assert fake.content(rel) == data   # landed all the same


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


# ------------------------------------------- a crash between id and content
@pytest.mark.parametrize("size", [1000, 5 * MIB], ids=["simple", "session"])
def test_crash_between_new_id_and_content_move(fake, mounter, env, size):
    """A new file's upload landed and the cache took the item's real id,
    then the daemon died before the content followed the id (the test hook
    ODFS_TEST_KILL_AT=content-move kills it right there).  The next mount
    finds the bytes under the real id: the file reads back, never asking
    the service for a local id."""
    env.environ["ODFS_TEST_KILL_AT"] = "content-move"
    m = mounter.mount()
    del env.environ["ODFS_TEST_KILL_AT"]
    data = pattern(size, 61)
    write(m.p("new.bin"), data)
    wait_until(lambda: m.proc.poll() is not None, 60, "the daemon to die at the test hook")
    kill_daemon(m)
    assert meta_db_integrity(env) == "ok"
    wait_landed(fake, {"new.bin": data}, timeout=30)
    # the bytes must come from the local copy
    fake.faults({"rules": [{"match": "GET content", "status": 500},
                           {"match": "GET download", "status": 500}]})
    m2 = mounter.mount(path=m.path)
    assert read_back(m2.p("new.bin")) == data
    fake.faults({})
    wait_settled(m2.p(""))
    assert xattr(m2.p("new.bin"), "status") == "clean"
    assert xattr(m2.p("new.bin"), "id") == fake.dump_by_path()["new.bin"]["id"]


# ------------------------------------ found by the model tester (modelcheck)
def test_unlinked_open_file_stays_usable(fake, mounter):
    """POSIX: a descriptor of a file since unlinked works until its last
    close (read, write, ftruncate, fstat, futimens), and nothing of it goes
    up (modelcheck bugE, bugE2, bugE3)."""
    m = mounter.mount()
    data = pattern(100, 1)
    write(m.p("a"), data)
    wait_landed(fake, {"a": data}, timeout=30)
    wait_settled(m.p(""))
    fd = os.open(m.p("a"), os.O_RDWR)
    try:
        os.unlink(m.p("a"))
        assert os.pwrite(fd, b"0123456789", 0) == 10
        assert os.pread(fd, 200, 0) == b"0123456789" + data[10:]
        os.utime(fd, (1000000000, 1000000000))
        os.ftruncate(fd, 389368)
        st = os.fstat(fd)
        assert st.st_size == 389368
        assert os.pread(fd, 10, 389358) == bytes(10)
    finally:
        os.close(fd)
    # a new file, never uploaded, unlinked while open for appending
    fd = os.open(m.p("Notes.md"), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
    try:
        os.unlink(m.p("Notes.md"))
        os.ftruncate(fd, 389368)
        assert os.fstat(fd).st_size == 389368
    finally:
        os.close(fd)
    time.sleep(1)
    wait_settled(m.p(""))
    assert os.listdir(m.p("")) == []
    dump = fake.dump_by_path()
    assert "a" not in dump and "Notes.md" not in dump, sorted(dump)


def test_unlinked_file_with_two_descriptors(fake, mounter):
    """Two descriptors, the first closed, then an unlink: the second still
    takes a time and a size (modelcheck, test_model_with_faults)."""
    m = mounter.mount()
    write(m.p("x y.dat"), b"twice open\n")
    fd1 = os.open(m.p("x y.dat"), os.O_RDONLY)
    fd2 = os.open(m.p("X Y.DAT"), os.O_WRONLY)
    try:
        os.close(fd1)
        os.unlink(m.p("X Y.DAT"))
        os.utime(fd2, (1000000000, 1000000000))
        assert int(os.fstat(fd2).st_mtime) == 1000000000
        os.ftruncate(fd2, 3)
        assert os.fstat(fd2).st_size == 3
    finally:
        os.close(fd2)
    wait_settled(m.p(""))
    assert os.listdir(m.p("")) == []


def test_replaced_open_file_stays_readable(fake, mounter):
    """A file replaced by a rename while open (its item deleted on the
    server): the old descriptor still reads the old bytes (modelcheck
    bugE)."""
    old = b"old version\n" * 250
    fake.seed([{"path": "doc.txt", "content": old.decode()},
               {"path": "other.txt", "content": "other\n"}])
    m = mounter.mount()
    fd = os.open(m.p("doc.txt"), os.O_RDONLY)
    try:
        os.rename(m.p("other.txt"), m.p("doc.txt"))
        wait_gone(fake, ["other.txt"])
        assert os.pread(fd, 5000, 0) == old
        assert os.fstat(fd).st_size == len(old)
    finally:
        os.close(fd)
    assert read_back(m.p("doc.txt")) == b"other\n"
    wait_settled(m.p(""))


def test_case_alias_does_not_outlive_a_rename(fake, mounter):
    """Another spelling of a name is not cached by the kernel: after the
    file is renamed, the spelling means whatever has the name now
    (modelcheck bugD2)."""
    m = mounter.mount()
    write(m.p("Notes.md"), b"first\n")
    assert read_back(m.p("nOTES.MD")) == b"first\n"
    os.rename(m.p("Notes.md"), m.p("\u00e4rger.txt"))
    write(m.p("Notes.md"), b"")
    os.truncate(m.p("nOTES.MD"), 1000)
    assert os.stat(m.p("Notes.md")).st_size == 1000
    assert read_back(m.p("\u00e4rger.txt")) == b"first\n"


def test_negative_lookup_is_not_cached(fake, mounter):
    """stat of a missing name, then a folder made under another case: the
    first spelling finds it at once (modelcheck bugG)."""
    m = mounter.mount()
    with pytest.raises(FileNotFoundError):
        os.stat(m.p("DOCS"))
    os.mkdir(m.p("Docs"))
    assert os.path.isdir(m.p("DOCS"))


def test_rename_over_other_case_renames_the_item(fake, mounter):
    """x renamed over notes.txt as NOTES.TXT: the item keeps its id and
    takes the new spelling on the server (modelcheck bugF)."""
    m = mounter.mount()
    write(m.p("notes.txt"), pattern(10, 1))
    wait_landed(fake, {"notes.txt": pattern(10, 1)}, timeout=30)
    wait_settled(m.p(""))
    item_id = fake.dump_by_path()["notes.txt"]["id"]
    write(m.p("x"), pattern(20, 2))
    os.rename(m.p("x"), m.p("NOTES.TXT"))
    dump = wait_landed(fake, {"NOTES.TXT": pattern(20, 2)}, timeout=30)
    assert dump["NOTES.TXT"]["id"] == item_id
    wait_settled(m.p(""))
    assert "notes.txt" not in fake.dump_by_path()
    assert os.listdir(m.p("")) == ["NOTES.TXT"]


def test_rename_over_file_whose_first_upload_runs(fake, mounter):
    """A file on the server renamed over a new file while that file's first
    upload is on its way: no EEXIST, the source's bytes win (modelcheck
    bugL)."""
    m = mounter.mount()
    os.mkdir(m.p("d"))
    src = pattern(100, 1)
    write(m.p("d/src.txt"), src)
    wait_landed(fake, {"d/src.txt": src}, timeout=30)
    wait_settled(m.p(""))
    fake.server.set_config(latency_ms=300)
    write(m.p("dst.txt"), pattern(15377, 2))
    time.sleep(0.6)
    os.rename(m.p("d/src.txt"), m.p("dst.txt"))
    fake.server.set_config(latency_ms=0)
    assert read_back(m.p("dst.txt")) == src
    wait_landed(fake, {"dst.txt": src}, timeout=30)
    wait_gone(fake, ["d/src.txt"])
    wait_settled(m.p(""))


def test_name_unlinked_through_another_spelling(fake, mounter):
    """unlink through another case of a name the kernel still caches: the
    cached spelling is looked up again, not answered ENOENT (modelcheck
    seed 3)."""
    m = mounter.mount()
    os.mkdir(m.p("\u00c4-dir"))
    fd = os.open(m.p("\u00c4-dir/\u03c9"), os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.unlink(m.p("\u00c4-dir/\u03a9"))
        data = pattern(44915, 3)
        write(m.p("\u00c4-dir/\u03c9"), data)
        assert read_back(m.p("\u00c4-dir/\u03c9")) == data
        assert os.stat(m.p("\u00c4-dir/\u03c9")).st_size == len(data)
    finally:
        os.close(fd)
    wait_landed(fake, {"\u00c4-dir/\u03c9": data}, timeout=30)
    wait_settled(m.p(""))


def test_file_renamed_through_another_spelling(fake, mounter):
    """A file renamed through another case of its name: the old name,
    still cached by the kernel, then means a new file, not the moved one
    (modelcheck bugD)."""
    m = mounter.mount()
    os.mkdir(m.p("\u00c4-dir"))
    os.mkdir(m.p("sub dir"))
    os.close(os.open(m.p("sub dir/b.txt"), os.O_CREAT | os.O_RDONLY, 0o644))
    os.rename(m.p("sub dir/B.TXT"), m.p("\u00c4-dir/Notes.md"))
    fd = os.open(m.p("sub dir/b.txt"), os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        os.write(fd, b"hello")
    finally:
        os.close(fd)
    assert read_back(m.p("sub dir/b.txt")) == b"hello"
    assert read_back(m.p("\u00c4-dir/Notes.md")) == b""
    wait_landed(fake, {"sub dir/b.txt": b"hello", "\u00c4-dir/Notes.md": b""}, timeout=30)
    wait_settled(m.p(""))


# ------------------------------------------------ an answer lost on the way
def test_mkdir_whose_answer_is_lost(fake, mounter):
    """The folder is created but the connection breaks in the answer: a
    POST sent again would get 409 for our own folder.  mkdir succeeds and
    the server holds one folder."""
    m = mounter.mount()
    fake.faults({"rules": [{"match": "POST children", "truncate": True, "times": 1}]})
    os.mkdir(m.p("lost"))
    assert faults_applied(fake) == 1
    fake.faults({})
    assert [p for p in fake.dump_by_path() if p.startswith("lost")] == ["lost"]
    write(m.p("lost/a.txt"), b"inside\n")
    wait_landed(fake, {"lost/a.txt": b"inside\n"}, timeout=30)
    wait_settled(m.p(""))
    assert os.listdir(m.p("")) == ["lost"]


@pytest.mark.parametrize("op", ["rename", "utime"])
def test_patch_whose_answer_is_lost(fake, mounter, op):
    """PATCH is idempotent: sent again after the answer broke off."""
    fake.seed([{"path": "f.txt", "content": "f\n"}])
    m = mounter.mount()
    assert read_back(m.p("f.txt")) == b"f\n"
    fake.faults({"rules": [{"match": "PATCH item", "truncate": True, "times": 1}]})
    if op == "rename":
        os.rename(m.p("f.txt"), m.p("g.txt"))
        want = "g.txt"
    else:
        os.utime(m.p("f.txt"), (1500000000, 1500000000))
        want = "f.txt"
    wait_until(lambda: faults_applied(fake) >= 1, 20, "the answer to break off")
    fake.faults({})
    wait_until(lambda: want in fake.dump_by_path(), 20, "the change on the server")
    if op == "utime":
        assert os.stat(m.p("f.txt")).st_mtime == 1500000000
        wait_until(lambda: "2017-07-14" in json.dumps(fake.dump_by_path()["f.txt"]), 20,
                   "the time on the server")


# ------------------------------------- a token that expires again at once
def test_upload_401_after_refresh_is_not_read_only(fake, mounter):
    """A 401 right after a refresh (the token expired again meanwhile) is a
    sign-in hiccup: the upload refreshes again and lands, instead of being
    abandoned as "read-only for you"."""
    m = mounter.mount()
    fake.faults({"rules": [{"match": "PUT content", "status": 401, "times": 2}]})
    write(m.p("t.txt"), b"token trouble\n")
    wait_landed(fake, {"t.txt": b"token trouble\n"}, timeout=30)
    assert faults_applied(fake) == 2
    fake.faults({})
    wait_settled(m.p(""))
    assert READ_ONLY_TEXT not in m.stderr_text()


# ------------------------------------------ no upload while still open
def test_no_upload_while_a_handle_is_still_open_for_writing(fake, mounter):
    """dd and shell redirections close a first descriptor (a flush) before
    writing through a dup: nothing may go up until the last writer closes,
    so the service never holds a half-written file."""
    m = mounter.mount()
    data = pattern(6 * MIB, 7)
    fd = os.open(m.p("dd.bin"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    fd2 = os.dup(fd)
    os.close(fd)                       # flush with nothing written yet: queued
    for off in range(0, len(data), MIB):
        os.write(fd2, data[off:off + MIB])
        time.sleep(0.2)                # well past the queue's settle time
    assert requests(fake, "PUT content") == 0 and requests(fake, "PUT upload") == 0, \
        "an upload started while the file was still open for writing"
    assert "dd.bin" not in fake.dump_by_path()
    os.close(fd2)
    wait_landed(fake, {"dd.bin": data})
    assert requests(fake, "POST createUploadSession") == 1
    assert fake.stats()["bytes_received_content"] == len(data)


def test_fsync_uploads_even_while_open(fake, mounter):
    m = mounter.mount()
    data = pattern(300 * 1024, 8)
    with open(m.p("synced.bin"), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())           # must not wait for the close
        assert fake.content("synced.bin") == data
    wait_settled(m.p(""))


def test_explicit_time_kept_without_extra_version_for_plain_writes(fake, mounter):
    """A plain write leaves the time to the service (no PATCH, one version);
    a time set with utime reaches the service to the second."""
    m = mounter.mount()
    write(m.p("plain.txt"), b"plain\n")
    write(m.p("timed.txt"), b"timed\n")
    t = int(time.time()) - 1
    os.utime(m.p("timed.txt"), (t, t))
    wait_landed(fake, {"plain.txt": b"plain\n", "timed.txt": b"timed\n"})
    wait_settled(m.p(""))
    assert len(versions(fake, "plain.txt")) == 1
    d = fake.dump_by_path()
    assert d["timed.txt"]["mtime"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    assert int(os.stat(m.p("timed.txt")).st_mtime) == t


def test_explicit_time_survives_a_kill(fake, mounter, env):
    """A time set on purpose while the upload waits, then SIGKILL: the
    mark that makes it exact is journalled with the upload, so the next
    mount still sends it to the second (the model tester's seed 405, step
    120, under faults).  The time is a second from now, within the slack
    an implicit time gets, so a lost mark shows."""
    m = mounter.mount()
    fake.faults({"rules": [{"match": "PUT content", "status": 429, "retry_after": "200"}]})
    write(m.p("timed.txt"), b"timed, then killed\n")
    wait_until(lambda: faults_applied(fake) >= 1, 30, "the upload to be throttled")
    t = int(time.time()) + 1
    os.utime(m.p("timed.txt"), (t, t))
    kill_daemon(m)
    assert meta_db_integrity(env) == "ok"
    fake.faults({})
    m2 = mounter.mount(path=m.path)
    wait_landed(fake, {"timed.txt": b"timed, then killed\n"})
    wait_settled(m2.p(""))
    assert fake.dump_by_path()["timed.txt"]["mtime"] == time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                      time.gmtime(t))
    assert int(os.stat(m2.p("timed.txt")).st_mtime) == t


@pytest.mark.parametrize("how", ["rename", "unlink"])
def test_other_spelling_leaves_no_stale_entry(fake, mounter, how):
    """A file renamed (or removed) through another spelling of its name:
    the kernel's entry of the stored spelling, cached since a stat, must
    not keep pointing at the file, or a later create through that name
    writes into the moved file (the model tester's seed 11)."""
    m = mounter.mount()
    os.mkdir(m.p("E"))
    os.mkdir(m.p("F"))
    write(m.p("E/b.txt"), b"first\n")
    os.stat(m.p("E/b.txt"))            # the kernel now holds E/b.txt
    if how == "rename":
        os.rename(m.p("E/B.TXT"), m.p("F/b.txt"))
        assert read_back(m.p("F/b.txt")) == b"first\n"   # an open through the new path
    else:
        os.unlink(m.p("E/B.TXT"))
    with pytest.raises(FileNotFoundError):
        os.stat(m.p("E/b.txt"))
    write(m.p("E/b.txt"), b"second\n")
    assert read_back(m.p("E/b.txt")) == b"second\n"
    want = {"E/b.txt": b"second\n"}
    if how == "rename":
        assert read_back(m.p("F/b.txt")) == b"first\n"
        want["F/b.txt"] = b"first\n"
    wait_landed(fake, want)
    wait_settled(m.p(""))
    assert sorted(os.listdir(m.p("E"))) == ["b.txt"]


def test_folder_renamed_through_other_spelling(fake, mounter):
    """The same for a folder: its old spelling and the paths under it are
    gone after the rename, and a new folder of that name starts empty."""
    m = mounter.mount()
    os.mkdir(m.p("Dir"))
    write(m.p("Dir/x.txt"), b"x\n")
    os.stat(m.p("Dir/x.txt"))
    os.rename(m.p("dir"), m.p("Moved"))
    with pytest.raises(FileNotFoundError):
        os.stat(m.p("Dir/x.txt"))
    os.mkdir(m.p("Dir"))
    write(m.p("Dir/x.txt"), b"new x\n")
    assert read_back(m.p("Moved/x.txt")) == b"x\n"
    assert read_back(m.p("Dir/x.txt")) == b"new x\n"
    wait_landed(fake, {"Moved/x.txt": b"x\n", "Dir/x.txt": b"new x\n"})
    wait_settled(m.p(""))


@pytest.mark.parametrize("then", ["rewrite", "rename", "kill"])
def test_new_file_whose_create_answer_was_lost(fake, mounter, env, then):
    """The service creates a new file but its answer is lost; before the
    next try the file is written again, renamed, or the daemon killed.
    The item that PUT made is taken for the file's own: no "(conflict
    ...)" copy of itself and no phantom under the old name (the model
    tester's seed 405, under faults)."""
    m = mounter.mount()
    fake.faults({"rules": [{"match": "PUT content", "truncate": True, "times": 1}]})
    write(m.p("new.txt"), b"first\n")
    wait_until(lambda: faults_applied(fake) >= 1, 30, "the answer to be lost")
    assert fake.content("new.txt") == b"first\n"   # made all the same
    want = {"new.txt": b"second, longer\n"}
    if then == "rewrite":
        write(m.p("new.txt"), b"second, longer\n")
    elif then == "rename":
        os.mkdir(m.p("sub"))
        os.rename(m.p("new.txt"), m.p("sub/moved.txt"))
        write(m.p("sub/moved.txt"), b"second, longer\n")
        want = {"sub/moved.txt": b"second, longer\n"}
    else:
        write(m.p("new.txt"), b"second, longer\n")
        kill_daemon(m)
        assert meta_db_integrity(env) == "ok"
        m = mounter.mount(path=m.path)
    wait_landed(fake, want)
    wait_settled(m.p(""))
    files = sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder"))
    assert files == sorted(want), files
    assert len(versions(fake, next(iter(want)))) >= 1
    names = [os.path.join(d, f) for d, _, fs in os.walk(m.p("")) for f in fs]
    assert [os.path.relpath(n, m.p("")) for n in names] == list(want)


@pytest.mark.parametrize("then", ["rewrite", "kill", "large"])
def test_new_version_whose_answer_was_lost(fake, mounter, env, then):
    """A new version of a file lands on the service but its answer is
    lost; the file is written again (or the daemon killed first) before
    the next try, whose If-Match then fails against that version - our
    own.  The next version replaces it: no "(conflict ...)" copy of the
    file's own earlier version (the model tester's seed 833693599, under
    faults)."""
    big = then == "large"
    first = pattern(5 * MIB + 1, 1) if big else b"first version\n"
    second = pattern(5 * MIB + 3, 2) if big else b"second, longer version\n"
    fake.seed([{"path": "f.txt", "content": "original\n"}])
    m = mounter.mount()
    assert read_back(m.p("f.txt")) == b"original\n"
    # one chunk (upload_chunk is 10 MiB): its answer is lost, the session completes all the same
    fake.faults({"rules": [{"match": "PUT upload" if big else "PUT content", "truncate": True, "times": 1}]})
    write(m.p("f.txt"), first)
    wait_until(lambda: faults_applied(fake) >= 1, 30, "the answer to be lost")
    wait_until(lambda: fake.content("f.txt") == first, 30, "the first version on the service")
    fake.faults({})
    if then == "kill":
        write(m.p("f.txt"), second)
        kill_daemon(m)
        assert meta_db_integrity(env) == "ok"
        m = mounter.mount(path=m.path)
    else:
        write(m.p("f.txt"), second)
    wait_landed(fake, {"f.txt": second})
    wait_settled(m.p(""))
    files = sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder"))
    assert files == ["f.txt"], files
    assert os.listdir(m.p("")) == ["f.txt"]
    assert read_back(m.p("f.txt")) == second


def test_unlink_of_a_file_deleted_on_the_service(fake, mounter):
    """Another device deleted the file before this mount heard of it: the
    unlink succeeds (gone is gone) and the service's "not found" message is
    not leaked (AddressSanitizer's leak check fails the test otherwise)."""
    fake.seed([{"path": "gone.txt", "content": "x\n"}])
    m = mounter.mount(opts={"poll_interval": "0", "dir_ttl": "3600"})
    assert os.listdir(m.p("")) == ["gone.txt"]
    peer(fake).delete("/gone.txt")
    os.unlink(m.p("gone.txt"))
    assert os.listdir(m.p("")) == []
    assert [p for p in fake.dump_by_path() if p] == []


def test_file_written_while_its_session_uploads(fake, mounter):
    """The file is written over, head and tail, while its upload session is
    half-way: the bytes already sent are the old ones, those still to come
    the new ones.  The session must not complete with that mix (a version
    that never existed here, whose hash no lost-answer record knows: after
    a lost answer the next upload kept a "(conflict ...)" copy of it).  Only
    whole versions reach the service."""
    old = pattern(5 * MIB + 1, 1)
    fake.seed([{"path": "f.txt", "content": "original\n"}])
    m = mounter.mount(opts={"upload_chunk": str(320 * 1024)})
    assert read_back(m.p("f.txt")) == b"original\n"
    # the first chunk's answer comes late: the file is written meanwhile
    fake.faults({"rules": [{"match": "PUT upload", "stall_ms": 1500, "times": 1}]})
    write(m.p("f.txt"), old)
    wait_until(lambda: faults_applied(fake) >= 1, 30, "the first chunk to be sent")
    with open(m.p("f.txt"), "r+b") as f:
        f.write(b"new head")
        f.seek(-8, os.SEEK_END)
        f.write(b"new tail")
    new = b"new head" + old[8:-8] + b"new tail"
    wait_landed(fake, {"f.txt": new})
    wait_settled(m.p(""))
    whole = {qxhash(v) for v in (b"original\n", old, new)}
    torn = [v for v in versions(fake, "f.txt") if v["quickXorHash"] not in whole]
    assert not torn, "versions on the service that never existed here: %r" % torn
    assert read_back(m.p("f.txt")) == new


@pytest.mark.parametrize("then", ["unlink", "rename-over", "rename-away"])
def test_new_file_removed_while_its_create_is_in_doubt(fake, mounter, then):
    """A new file's create lands but its answer is lost, and the file is
    deleted here (or replaced, or renamed) before the retry learns what
    happened: the item that create made must not stay on the service under
    its old name, where it would show up again and make a later rename onto
    that name fail with EEXIST (the model tester's seed 400, under faults)."""
    m = mounter.mount()
    os.mkdir(m.p("d"))
    write(m.p("d/other.txt"), b"other\n")
    wait_landed(fake, {"d/other.txt": b"other\n"})
    # the answer breaks off, and the client's own retries fail for a while
    fake.faults({"rules": [{"match": "PUT content", "truncate": True, "times": 1},
                           {"match": "PUT content", "status": 503, "retry_after": "1", "times": 3}]})
    write(m.p("new.txt"), b"first\n")
    wait_until(lambda: faults_applied(fake) >= 1, 30, "the answer to be lost")
    assert fake.content("new.txt") == b"first\n"   # made all the same
    if then == "unlink":
        os.unlink(m.p("new.txt"))
        want = {"d/other.txt": b"other\n"}
    elif then == "rename-over":
        os.rename(m.p("d/other.txt"), m.p("new.txt"))
        want = {"new.txt": b"other\n"}
    else:
        os.rename(m.p("new.txt"), m.p("d/moved.txt"))
        want = {"d/other.txt": b"other\n", "d/moved.txt": b"first\n"}
    fake.faults({})
    wait_landed(fake, want)
    wait_until(lambda: sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder")) == sorted(want),
               30, "only %r on the server" % sorted(want))
    wait_settled(m.p(""))
    os.rename(m.p("d"), m.p("e"))
    write(m.p("e/new.txt"), b"again\n")
    os.rename(m.p("e/new.txt"), m.p("new.txt"))       # onto the name the create had used
    assert read_back(m.p("new.txt")) == b"again\n"


def test_rename_onto_a_file_whose_create_is_in_doubt(fake, mounter):
    """A new file's create lands with its answer lost, and its retry fails
    too: the upload waits in back-off.  A file on the service is then
    renamed onto it: the item that create made holds the name on the
    service, and the rename must not fail with EEXIST because of it (the
    model tester's seed 400, under faults)."""
    m = mounter.mount(opts={"max_retries": "1"})
    write(m.p("src.txt"), b"source\n")
    wait_landed(fake, {"src.txt": b"source\n"})
    wait_settled(m.p(""))
    lose_the_answer(fake, m, "new.txt", b"first\n", retry_after="0", retries=4)
    os.rename(m.p("src.txt"), m.p("new.txt"))
    fake.faults({})
    want = {"new.txt": b"source\n"}
    wait_landed(fake, want)
    wait_settled(m.p(""))
    wait_until(lambda: sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder")) == sorted(want),
               30, "only %r on the server" % sorted(want))
    assert os.listdir(m.p("")) == ["new.txt"]
    assert read_back(m.p("new.txt")) == b"source\n"


def test_rename_over_a_file_while_the_source_upload_lands(fake, env, mounter):
    """A file's new version lands, and while the upload records that in the
    cache (held there by ODFS_TEST_PAUSE_AT=landed until the test says go)
    the file is renamed over another, whose item it takes over.  The landing must
    not overwrite the take-over (its new id with the old item's size and
    tags, marked clean): the target's item then kept its old bytes and
    reads failed with "the server sent N bytes less than asked" (the model
    tester's seed 672755882, under faults)."""
    fake.seed([{"path": "src.txt", "content": "old source\n"},
               {"path": "target.txt", "content": "target\n"}])
    pause_dir = env.base / "pause"
    pause_dir.mkdir()
    env.environ["ODFS_TEST_PAUSE_AT"] = "landed"
    env.environ["ODFS_TEST_PAUSE_DIR"] = str(pause_dir)
    try:
        m = mounter.mount()
    finally:
        del env.environ["ODFS_TEST_PAUSE_AT"]
        del env.environ["ODFS_TEST_PAUSE_DIR"]
    assert read_back(m.p("target.txt")) == b"target\n"
    new = b"new source, longer than the target\n"
    write(m.p("src.txt"), new)
    wait_until(lambda: (pause_dir / "landed.paused").exists(), 30, "the upload to stand where it lands")
    assert fake.content("src.txt") == new
    os.rename(m.p("src.txt"), m.p("target.txt"))      # while the upload lands
    (pause_dir / "landed.go").touch()
    wait_landed(fake, {"target.txt": new})
    wait_settled(m.p(""))
    wait_until(lambda: sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder")) == ["target.txt"],
               30, "only target.txt on the server")
    assert read_back(m.p("target.txt")) == new
    m = mounter.remount(m)
    assert read_back(m.p("target.txt")) == new


def test_rename_over_a_new_file_while_the_source_version_lands(fake, mounter):
    """A file with a new version on its way is renamed over a new file whose
    first upload runs: the rename waits for that upload, and meanwhile the
    source's version lands (its cached bytes now clean under the new tag).
    The take-over must still give the target's item every byte of the
    source: it reopened them under the tag it had read before the landing,
    took them for stale and dropped them, so reads fetched the target's own
    older bytes ("the server sent N bytes less than asked", or that older
    content: the model tester's seed 8401 under faults)."""
    fake.seed([{"path": "src.txt", "content": "old source\n"}])
    m = mounter.mount()
    assert read_back(m.p("src.txt")) == b"old source\n"
    src_put = "PUT /v1.0/drives/%s/items/%s/content" % (fake.server.drive_id, fake.server.item_id("/src.txt"))
    # the source's version lands after 1 s, the target's create after 3 s
    fake.faults({"rules": [{"match": src_put, "stall_ms": 1000, "times": 1},
                           {"match": "PUT content", "stall_ms": 3000, "times": 1}]})
    target, new = pattern(1000, 1), pattern(200 * 1024 + 7, 2)
    write(m.p("target.txt"), target)
    wait_until(lambda: xattr(m.p("target.txt"), "status") == "uploading", 20, "the target's upload to start")
    write(m.p("src.txt"), new)
    wait_until(lambda: xattr(m.p("src.txt"), "status") == "uploading", 20, "the source's upload to start")
    os.rename(m.p("src.txt"), m.p("target.txt"))      # waits for the target's upload
    assert read_back(m.p("target.txt")) == new
    wait_landed(fake, {"target.txt": new})
    wait_until(lambda: "src.txt" not in fake.dump_by_path(), 30, "the source's item to go")
    wait_settled(m.p(""))
    m = mounter.remount(m)
    assert read_back(m.p("target.txt")) == new


def test_rename_waiting_for_the_target_keeps_the_source_version_that_landed(fake, mounter):
    """As above: the source's version lands while the rename waits for the
    target's create, before the take-over begins.  Making the source's
    bytes local used the entry read before the wait, whose tag is the one
    before that version: the bytes, clean under the new tag, were dropped
    as stale and fetched again, or, when that fetch failed (offline), the
    rename fell back to a move and the file had no byte in the cache (the
    model tester's seed 8005 under faults: "cannot read ... while offline:
    it is not in the cache" for bytes all written here).  Downloads fail
    here: the take-over must need none."""
    fake.seed([{"path": "src.txt", "content": "old source\n"}])
    m = mounter.mount(opts={"max_retries": "1"})
    assert read_back(m.p("src.txt")) == b"old source\n"
    src_put = "PUT /v1.0/drives/%s/items/%s/content" % (fake.server.drive_id, fake.server.item_id("/src.txt"))
    # the source's version lands after 1 s, the target's create after 3 s; no download works
    fake.faults({"rules": [{"match": src_put, "stall_ms": 1000, "times": 1},
                           {"match": "PUT content", "stall_ms": 3000, "times": 1},
                           {"match": "GET content", "status": 503, "retry_after": "0"},
                           {"match": "GET download", "status": 503, "retry_after": "0"}]})
    target, new = pattern(1000, 1), pattern(200 * 1024 + 7, 2)
    write(m.p("target.txt"), target)
    wait_until(lambda: xattr(m.p("target.txt"), "status") == "uploading", 20, "the target's upload to start")
    write(m.p("src.txt"), new)
    wait_until(lambda: xattr(m.p("src.txt"), "status") == "uploading", 20, "the source's upload to start")
    os.rename(m.p("src.txt"), m.p("target.txt"))      # waits for the target's upload; the source lands
    assert read_back(m.p("target.txt")) == new
    wait_landed(fake, {"target.txt": new})
    wait_until(lambda: "src.txt" not in fake.dump_by_path(), 30, "the source's item to go")
    wait_settled(m.p(""))
    fake.faults({})
    m = mounter.remount(m)
    assert read_back(m.p("target.txt")) == new


def test_time_set_while_a_create_is_in_doubt(fake, mounter):
    """A new file's create lands with its answer lost and the retries fail;
    its time is then set on purpose.  The next run takes the item that
    create made for the file's own, and must give it that time too (it
    carries the time of the lost upload)."""
    m = mounter.mount(opts={"max_retries": "1"})
    lose_the_answer(fake, m, "new.txt", b"first\n", retry_after="0", retries=4)
    os.utime(m.p("new.txt"), (1373711851, 1373711851))
    fake.faults({})
    wait_landed(fake, {"new.txt": b"first\n"})
    wait_settled(m.p(""))
    wait_until(lambda: "2013-07-13T10:37:31" in json.dumps(fake.dump_by_path()["new.txt"]), 20,
               "the time on the server")
    assert os.stat(m.p("new.txt")).st_mtime == 1373711851


@pytest.mark.parametrize("then", ["offline", "lookup-fails", "kill"])
def test_create_in_doubt_of_a_file_removed_is_not_forgotten(fake, mounter, env, then):
    """A new file's create lands with its answer lost, and the file is
    deleted here before the retry learns what happened.  What that create
    made must go even when the deletion cannot look for it at once: the
    mount is offline, the service fails the lookup, or the daemon is killed
    before the look.  The record of the doubt was dropped, and the file
    stayed on the service only (the model tester's "settle:extra" under
    outages and kills)."""
    opts = {"io_timeout": "2", "connect_timeout": "2", "poll_interval": "1", "offline_probe": "1",
            "max_retries": "1"}
    m = mounter.mount(opts=opts)
    write(m.p("keep.txt"), b"keep\n")
    wait_landed(fake, {"keep.txt": b"keep\n"})
    # the answer breaks off, and the retries fail for a while: the upload waits in back-off
    lose_the_answer(fake, m, "new.txt", b"first\n")
    if then == "offline":
        fake.server.go_down()
        try:
            os.listdir(m.p(""))
            wait_until(lambda: "offline since" in m.stderr_text(), 30, "the mount to go offline")
            os.unlink(m.p("new.txt"))
        finally:
            fake.server.come_back()
        fake.faults({})
    elif then == "lookup-fails":
        fake.faults({"rules": [{"match": "GET item", "status": 503, "retry_after": "1", "times": 4}]})
        os.unlink(m.p("new.txt"))
        wait_until(lambda: faults_applied(fake) >= 3, 30, "the lookup to fail")
        fake.faults({})
    else:
        fake.faults({"rules": [{"match": "GET item", "status": 503, "retry_after": "1", "times": 100}]})
        before = faults_applied(fake)
        os.unlink(m.p("new.txt"))
        wait_until(lambda: faults_applied(fake) >= before + 2, 30, "the lookup to fail")
        kill_daemon(m)
        assert meta_db_integrity(env) == "ok"
        fake.faults({})
        m = mounter.mount(path=m.path, opts=opts)
    want = ["keep.txt"]
    wait_until(lambda: sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder")) == want,
               60, "only %r on the server" % want)
    # the delta may have shown the stray item meanwhile: it goes with its deletion
    wait_until(lambda: os.listdir(m.p("")) == want, 30, "only %r in the mount" % want)


def test_rename_of_a_new_file_whose_follow_up_gets_no_answer(fake, mounter):
    """A new file is renamed while its create travels; once the item
    exists the upload follows with a PATCH, which gets no answer (dropped
    connections, or the unmount cutting it short).  The rename must reach
    the service later instead of being logged as an error and lost: the
    service kept the old name, and the next delta showed it in the mount
    too (the model tester's names that renames passed through)."""
    m = mounter.mount(opts={"max_retries": "1", "poll_interval": "1"})
    os.mkdir(m.p("sub"))
    wait_until(lambda: "sub" in fake.dump_by_path(), 30, "the folder on the server")
    fake.faults({"rules": [{"match": "PUT content", "stall_ms": 1500, "times": 1},
                           {"match": "PATCH item", "drop": True, "times": 40}]})
    write(m.p("new.txt"), b"first\n")
    wait_until(lambda: requests(fake, "PUT content") >= 1, 20, "the create to start")
    os.rename(m.p("new.txt"), m.p("sub/moved.txt"))
    # every try dropped: the PATCH gives up, and the mount takes the service for out of reach
    wait_until(lambda: "offline since" in m.stderr_text(), 60, "the follow-up to give up")
    fake.faults({})
    want = {"sub/moved.txt": b"first\n"}
    wait_landed(fake, want)
    wait_until(lambda: sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder")) == sorted(want),
               30, "only %r on the server" % sorted(want))
    wait_settled(m.p(""))
    assert os.listdir(m.p("")) == ["sub"]
    assert os.listdir(m.p("sub")) == ["moved.txt"]
    assert read_back(m.p("sub/moved.txt")) == b"first\n"


def test_file_deleted_offline_while_its_own_version_is_in_doubt(fake, mounter):
    """A new version of a file lands with its answer lost and its retry
    fails; the mount goes offline and the file is deleted there.  The
    journalled delete was conditioned on the tag seen before that version,
    so on replay the file's own version passed for a change made on
    another device and the file stayed on the service (the model tester's
    seed 8206 under faults: "changed on another device after you deleted
    it here; it was kept")."""
    opts = {"io_timeout": "2", "connect_timeout": "2", "poll_interval": "1", "offline_probe": "1",
            "max_retries": "1"}
    fake.seed([{"path": "f.txt", "content": "original\n"}, {"path": "keep.txt", "content": "keep\n"}])
    m = mounter.mount(opts=opts)
    assert read_back(m.p("f.txt")) == b"original\n"
    lose_the_answer(fake, m, "f.txt", b"our new version\n")
    fake.server.go_down()
    try:
        wait_until(lambda: "offline since" in m.stderr_text(), 30, "the mount to go offline")
        os.unlink(m.p("f.txt"))
    finally:
        fake.server.come_back()
    fake.faults({})
    want = ["keep.txt"]
    wait_until(lambda: sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder")) == want,
               60, "only %r on the server" % want)
    assert "changed on another device" not in m.stderr_text()
    wait_until(lambda: os.listdir(m.p("")) == want, 30, "only %r in the mount" % want)


@pytest.mark.parametrize("how", ["rmdir", "rename-over"])
def test_folder_that_gained_files_elsewhere_is_not_deleted(fake, mounter, how):
    """The cache holds a folder as empty while another device has put a file
    in it since (no delta round, listing still fresh).  rmdir, or a rename of
    an empty folder over it, would DELETE it on the service with everything
    in it: ENOTEMPTY instead, the file stays, and the folder shows it."""
    m = mounter.mount(opts={"poll_interval": 0, "dir_ttl": 3600})
    os.mkdir(m.p("shared"))
    os.mkdir(m.p("empty"))
    assert os.listdir(m.p("shared")) == []
    wait_until(lambda: {"shared", "empty"} <= set(fake.dump_by_path()), 20, "both folders on the server")
    peer(fake).put_content("/shared/theirs.txt", data=b"written elsewhere\n")
    assert os.listdir(m.p("shared")) == []          # the cache does not know yet
    with pytest.raises(OSError) as exc:
        if how == "rmdir":
            os.rmdir(m.p("shared"))
        else:
            os.rename(m.p("empty"), m.p("shared"))
    assert exc.value.errno == errno.ENOTEMPTY
    assert fake.content("shared/theirs.txt") == b"written elsewhere\n"
    assert os.listdir(m.p("shared")) == ["theirs.txt"]
    assert read_back(m.p("shared/theirs.txt")) == b"written elsewhere\n"
    assert "empty" in fake.dump_by_path()


@pytest.mark.parametrize("then", ["waiting", "running", "kill"])
def test_rename_over_a_file_whose_own_version_is_in_doubt(fake, mounter, env, then):
    """A new version of a file lands with its answer lost; before the retry
    (waiting in back-off, or running), a file written here is renamed over
    it and takes over its item, on the tag seen before that version.  That
    upload's If-Match then fails against the file's own version: it must
    replace it, not keep a "(conflict ...)" copy of it (the model tester's
    seed 8005 under faults)."""
    fake.seed([{"path": "f.txt", "content": "original\n"}])
    m = mounter.mount()
    assert read_back(m.p("f.txt")) == b"original\n"
    rules = [{"match": "PUT content", "truncate": True, "times": 1}]
    if then == "running":
        # the retry is still out (its answer late) when the rename comes
        rules.append({"match": "PUT content", "stall_ms": 2000, "times": 1})
    fake.faults({"rules": rules})
    write(m.p("f.txt"), b"our new version\n")
    wait_until(lambda: faults_applied(fake) >= 1, 30, "the answer to be lost")
    assert fake.content("f.txt") == b"our new version\n"   # landed all the same
    if then == "running":
        wait_until(lambda: faults_applied(fake) >= 2, 30, "the retry to go out")
    write(m.p("f.tmp"), b"the replacement, written in full\n")
    os.rename(m.p("f.tmp"), m.p("f.txt"))
    if then == "kill":
        kill_daemon(m)
        assert meta_db_integrity(env) == "ok"
        m = mounter.mount(path=m.path)
    fake.faults({})
    want = {"f.txt": b"the replacement, written in full\n"}
    wait_landed(fake, want)
    wait_settled(m.p(""))
    files = sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder"))
    assert files == ["f.txt"], files
    assert os.listdir(m.p("")) == ["f.txt"]
    assert read_back(m.p("f.txt")) == want["f.txt"]
    assert "your version was saved" not in m.stderr_text()


def test_new_file_renamed_while_its_create_is_refused_for_its_old_name(fake, mounter):
    """A new large file is renamed while its upload session runs, and a
    new file takes its old name and lands first: the session's last chunk
    is refused (409, the name is taken).  The file's name is another one
    now: the create goes again under it, no "(conflict ...)" copy that
    takes the place of the renamed file (the model tester's seed 8437
    under faults)."""
    m = mounter.mount()
    big = pattern(5 * MIB + 7, 4)
    fake.faults({"rules": [{"match": "PUT upload", "stall_ms": 4000, "times": 1}]})
    write(m.p("b.txt"), big)
    wait_until(lambda: faults_applied(fake) >= 1, 30, "the session's chunk to go out")
    os.rename(m.p("b.txt"), m.p("A"))
    write(m.p("b.txt"), b"a new file of the old name\n")
    wait_until(lambda: "b.txt" in fake.dump_by_path(), 30, "the new file on the server")
    want = {"A": big, "b.txt": b"a new file of the old name\n"}
    wait_landed(fake, want)
    wait_settled(m.p(""))
    files = sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder"))
    assert files == sorted(want), files
    assert sorted(os.listdir(m.p(""))) == sorted(want)
    assert read_back(m.p("A")) == big
    assert "your version was saved" not in m.stderr_text()


def test_rename_over_another_spelling_whose_patch_gets_no_answer(fake, mounter):
    """A file written here is renamed over an existing file through another
    spelling of its name: the target's item takes the new spelling (a
    PATCH) and the new bytes.  That PATCH gets no answer: the rename failed
    with EIO and an error line, though it is a change to journal like any
    other made while the service is out of reach (the model tester's seed
    8005 under faults)."""
    fake.seed([{"path": "long.txt", "content": "original\n"}])
    m = mounter.mount(opts={"max_retries": "1", "poll_interval": "1"})
    assert read_back(m.p("long.txt")) == b"original\n"
    # an editor's temp file, fsynced (so uploaded) and written again
    write(m.p("new.tmp"), b"the first draft\n")
    wait_landed(fake, {"new.tmp": b"the first draft\n"})
    write(m.p("new.tmp"), b"the replacement\n")
    fake.faults({"rules": [{"match": "PATCH item", "drop": True, "times": 40}]})
    os.rename(m.p("new.tmp"), m.p("LONG.TXT"))
    assert os.listdir(m.p("")) == ["LONG.TXT"]
    wait_until(lambda: "offline since" in m.stderr_text(), 60, "the PATCH to give up")
    fake.faults({})
    want = {"LONG.TXT": b"the replacement\n"}
    wait_landed(fake, want)
    wait_until(lambda: sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder")) == sorted(want),
               30, "only %r on the server" % sorted(want))
    wait_settled(m.p(""))
    assert os.listdir(m.p("")) == ["LONG.TXT"]
    assert read_back(m.p("LONG.TXT")) == want["LONG.TXT"]


def test_new_file_lands_while_its_rename_over_another_spelling_waits(fake, mounter):
    """A file created here, never uploaded, is renamed over an existing
    file through another spelling of its name; while the PATCH of that
    spelling waits (no answer, retried), the new file's own first upload
    lands and gives it an id of the service's.  The take-over must go on
    with that id (the bytes and the row moved there): it used the local
    id read before the wait, the content move failed and the rename
    answered ENOENT.  The item the upload made is deleted afterwards."""
    fake.seed([{"path": "long.txt", "content": "original\n"}])
    m = mounter.mount(opts={"max_retries": "1", "poll_interval": "1"})
    assert read_back(m.p("long.txt")) == b"original\n"
    # the new file's create lands after 1 s; the PATCH waits 3 s per attempt, unanswered
    fake.faults({"rules": [{"match": "PUT content", "stall_ms": 1000, "times": 1},
                           {"match": "PATCH item", "stall_ms": 3000, "drop": True, "times": 40}]})
    write(m.p("new.tmp"), b"the replacement\n")
    wait_until(lambda: xattr(m.p("new.tmp"), "status") == "uploading", 20, "the new file's upload to start")
    done = []

    def rename():
        try:
            os.rename(m.p("new.tmp"), m.p("LONG.TXT"))
            done.append(0)
        except OSError as e:
            done.append(e.errno)

    renaming = threading.Thread(target=rename)
    renaming.start()
    try:
        wait_until(lambda: "new.tmp" in fake.dump_by_path(), 30, "the new file's create to land")
        assert renaming.is_alive(), "the rename was done before the create landed"
    finally:
        renaming.join(60)
    assert done == [0], "the rename failed: %s" % [errno.errorcode.get(e, e) for e in done]
    assert os.listdir(m.p("")) == ["LONG.TXT"]
    assert read_back(m.p("LONG.TXT")) == b"the replacement\n"
    fake.faults({})
    want = {"LONG.TXT": b"the replacement\n"}
    wait_landed(fake, want)
    wait_until(lambda: sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder")) == sorted(want),
               30, "only %r on the server" % sorted(want))
    wait_settled(m.p(""))
    assert os.listdir(m.p("")) == ["LONG.TXT"]
    assert read_back(m.p("LONG.TXT")) == want["LONG.TXT"]
    assert "your version was saved" not in m.stderr_text()


def test_item_of_a_lost_create_listed_before_its_deletion(fake, mounter, env):
    """A new file's create lands with its answer lost, and the file is
    deleted here while the service cannot be asked (the daemon then dies).
    After the remount the delta round lists the item that create made (no
    row names it any more) while the upload queue looks it up and deletes
    it: the row must go with the deletion, not stay in the mount until a
    later round (the model tester's seed 8405, tree:extra after a remount,
    with only a "slow" fault)."""
    opts = {"max_retries": "1", "poll_interval": "3600", "dir_ttl": "3600"}
    m = mounter.mount(opts=opts)
    write(m.p("keep.txt"), b"keep\n")
    wait_landed(fake, {"keep.txt": b"keep\n"})
    # the answer breaks off, and the retries fail for a while: the upload waits in back-off
    lose_the_answer(fake, m, "new.txt", b"first\n")
    fake.faults({"rules": [{"match": "GET item", "status": 503, "retry_after": "1", "times": 100}]})
    before = faults_applied(fake)
    os.unlink(m.p("new.txt"))
    wait_until(lambda: faults_applied(fake) >= before + 2, 30, "the lookup to fail")
    kill_daemon(m)
    assert meta_db_integrity(env) == "ok"
    # the deletion waits long enough for the mount's first delta round to see the item
    fake.faults({"rules": [{"match": "DELETE item", "stall_ms": 3000, "times": 1}]})
    rounds = requests(fake, "GET delta")
    deletes = requests(fake, "DELETE item")
    m = mounter.mount(path=m.path, opts=opts)
    wait_until(lambda: requests(fake, "DELETE item") > deletes, 30, "the stray item's deletion")
    assert requests(fake, "GET delta") > rounds
    want = ["keep.txt"]
    wait_until(lambda: sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder")) == want,
               30, "only %r on the server" % want)
    # no delta round comes for an hour: the deletion itself must drop the row
    wait_until(lambda: os.listdir(m.p("")) == want, 10, "only %r in the mount" % want)


@pytest.mark.parametrize("bytes_", ["same", "other"])
def test_rename_over_a_file_whose_new_version_is_on_its_way(fake, mounter, bytes_):
    """A file's new version travels (the service answers late) while
    another file is renamed over it: the rename deletes the target's item,
    and the upload then meets 404.  That is no deletion on another device:
    the file was replaced here, and nothing of it may come back.  The
    upload created it again under its old name, found the renamed file
    there (409), and with the same bytes took that item for a create of
    its own and deleted it with the replaced file (the model tester's seed
    9005 with outages, settle:missing 'Ä-dir/ω'), with other bytes kept a
    conflict copy of a file deleted here."""
    kept = b"the renamed file\n"
    fake.seed([{"path": "src.txt", "content": kept.decode()}, {"path": "target.txt", "content": "target\n"}])
    m = mounter.mount(opts={"poll_interval": "1"})
    assert read_back(m.p("target.txt")) == b"target\n"
    target_put = "PUT /v1.0/drives/%s/items/%s/content" % (fake.server.drive_id,
                                                          fake.server.item_id("/target.txt"))
    fake.faults({"rules": [{"match": target_put, "stall_ms": 2000, "times": 1}]})
    write(m.p("target.txt"), kept if bytes_ == "same" else b"the replaced version\n")
    wait_until(lambda: faults_applied(fake) >= 1, 30, "the target's upload to be held")
    os.rename(m.p("src.txt"), m.p("target.txt"))
    wait_until(lambda: fake.stats()["responses"].get("404", 0) >= 1, 30,
               "the held upload to find its item gone")
    m = mounter.remount(m)             # the upload's run is over
    wait_landed(fake, {"target.txt": kept})
    wait_settled(m.p(""))
    assert sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder")) == ["target.txt"]
    assert os.listdir(m.p("")) == ["target.txt"]
    assert read_back(m.p("target.txt")) == kept


def test_uploaded_temporary_file_whose_deletion_is_refused_for_now(fake, mounter):
    """An editor's save: a temporary file written and uploaded, then
    renamed over the file, whose item takes over its bytes.  The temporary
    file's own item is deleted then; when the service refuses that for now
    (503 past the retries) the deletion must wait in the journal like any
    change the service could not take: it was logged as an error and the
    temporary file stayed on the service (the model tester's seed 9010
    with faults, a daemon-log failure)."""
    fake.seed([{"path": "target.txt", "content": "target\n"}])
    m = mounter.mount(opts={"max_retries": "1"})
    assert read_back(m.p("target.txt")) == b"target\n"
    new = b"saved by the editor\n"
    write(m.p("tmp.txt"), new)
    wait_landed(fake, {"tmp.txt": new})
    wait_settled(m.p(""))
    fake.faults({"rules": [{"match": "DELETE item", "status": 503, "retry_after": "1", "times": 3}]})
    os.rename(m.p("tmp.txt"), m.p("target.txt"))
    wait_until(lambda: faults_applied(fake) >= 2, 30, "the deletion to be refused")
    wait_landed(fake, {"target.txt": new})
    wait_until(lambda: sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder")) == ["target.txt"],
               60, "only target.txt on the server")
    assert os.listdir(m.p("")) == ["target.txt"]
    assert read_back(m.p("target.txt")) == new
    m = mounter.remount(m)             # no error line
    assert read_back(m.p("target.txt")) == new


def test_file_renamed_while_its_new_version_lands_stays_readable_offline(fake, mounter):
    """A file with a new version on its way is renamed (a PATCH of its
    item), and the version lands before the PATCH answers.  The rename
    then wrote the tags it had read before the landing into the cache,
    while the cached bytes were kept under the new ones: they passed for
    stale, were dropped, and a read while offline failed although every
    byte was written here ("cannot read ... while offline: it is not in
    the cache", the model tester's seed 9016 with faults, tree:io)."""
    fake.seed([{"path": "src.txt", "content": "old source\n"}])
    m = mounter.mount()
    assert read_back(m.p("src.txt")) == b"old source\n"
    item = "/v1.0/drives/%s/items/%s" % (fake.server.drive_id, fake.server.item_id("/src.txt"))
    # the version lands after 1 s, the rename's PATCH is answered after 2.5 s
    fake.faults({"rules": [{"match": "PUT " + item + "/content", "stall_ms": 1000, "times": 1},
                           {"match": "PATCH " + item, "stall_ms": 2500, "times": 1}]})
    new = pattern(300 * 1024, 5)
    write(m.p("src.txt"), new)
    wait_until(lambda: faults_applied(fake) >= 1, 30, "the upload to be held")
    os.rename(m.p("src.txt"), m.p("moved.txt"))
    assert faults_applied(fake) >= 2
    wait_landed(fake, {"moved.txt": new})
    wait_settled(m.p(""))
    m.stop()
    fake.server.go_down()
    try:
        m = mounter.mount()            # from the cache
        assert read_back(m.p("moved.txt")) == new
    finally:
        fake.server.come_back()


def test_create_in_doubt_of_a_file_renamed_over_another_is_not_forgotten(fake, mounter, env):
    """A new file's create lands with its answer lost, and before a run
    learns what happened the file is renamed over a file on the service,
    whose item it takes over, and the daemon is killed.  After the remount
    the file is no new file any more, and its upload ignored the record of
    the doubt: what that create made stayed on the service under the old
    name (the model tester's seed 9009 with faults, settle:extra
    'long-name-0123456789.txt')."""
    opts = {"io_timeout": "2", "connect_timeout": "2", "poll_interval": "1", "max_retries": "1"}
    fake.seed([{"path": "target.txt", "content": "target\n"}])
    m = mounter.mount(opts=opts)
    assert read_back(m.p("target.txt")) == b"target\n"
    # the answer breaks off, and the retries fail for a while: the upload waits in back-off
    lose_the_answer(fake, m, "new.txt", b"first\n")
    fake.faults({"rules": [{"match": "GET item", "status": 503, "retry_after": "1", "times": 100}]})
    before = faults_applied(fake)
    os.rename(m.p("new.txt"), m.p("target.txt"))
    wait_until(lambda: faults_applied(fake) >= before + 2, 30, "the lookup to fail")
    kill_daemon(m)
    assert meta_db_integrity(env) == "ok"
    fake.faults({})
    m = mounter.mount(path=m.path, opts=opts)
    wait_landed(fake, {"target.txt": b"first\n"})
    want = ["target.txt"]
    wait_until(lambda: sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder")) == want,
               30, "only %r on the server" % want)
    wait_until(lambda: os.listdir(m.p("")) == want, 30, "only %r in the mount" % want)
    assert read_back(m.p("target.txt")) == b"first\n"


def test_offline_rename_over_a_new_file_whose_create_is_in_doubt(fake, mounter, env):
    """A new file's create lands with its answer lost; then, offline, a file
    on the service is renamed over it (journalled) and the daemon is
    killed.  After the remount the journal replays the move before the
    upload queue settles the doubt: the name is held by what that create
    made, so the moved file took a conflict name (the model tester's seed
    9009 with faults, settle:extra 'E/Docs/C (conflict ...).BIN').  The
    replay now settles the doubt at that name first."""
    opts = {"io_timeout": "2", "connect_timeout": "2", "poll_interval": "1", "max_retries": "1"}
    fake.seed([{"path": "other.txt", "content": "other\n"}])
    m = mounter.mount(opts=opts)
    assert read_back(m.p("other.txt")) == b"other\n"
    # the answer breaks off, and the retries fail for a while: the upload waits in back-off
    lose_the_answer(fake, m, "C.BIN", b"first\n")
    fake.faults({})   # (the upload sits out its back-off)
    fake.server.go_down()
    os.rename(m.p("other.txt"), m.p("C.BIN"))
    kill_daemon(m)
    assert meta_db_integrity(env) == "ok"
    fake.server.come_back()
    m = mounter.mount(path=m.path, opts=opts)
    want = ["C.BIN"]
    wait_until(lambda: sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder")) == want,
               30, "only %r on the server" % want)
    assert fake.content("C.BIN") == b"other\n"
    wait_until(lambda: os.listdir(m.p("")) == want, 30, "only %r in the mount" % want)
    assert read_back(m.p("C.BIN")) == b"other\n"


def test_rename_over_a_new_file_whose_create_cannot_be_settled_now(fake, mounter):
    """A new file's create lands with its answer lost and its upload waits in
    back-off; a file on the service is renamed over it while the service
    cannot say what that create made (lookups fail): the PATCH meets the
    name the stray holds.  The rename used to fail with EEXIST (the model
    tester's seed 9009 with faults, result:rename at step 764); now it goes
    through the journal, whose replay settles the doubt, then moves."""
    opts = {"io_timeout": "2", "connect_timeout": "2", "poll_interval": "1", "max_retries": "1"}
    fake.seed([{"path": "other.txt", "content": "other\n"}])
    m = mounter.mount(opts=opts)
    assert read_back(m.p("other.txt")) == b"other\n"
    lose_the_answer(fake, m, "C.BIN", b"first\n")
    fake.faults({"rules": [{"match": "GET item", "status": 503, "retry_after": "1", "times": 4}]})
    os.rename(m.p("other.txt"), m.p("C.BIN"))
    assert read_back(m.p("C.BIN")) == b"other\n"
    want = ["C.BIN"]
    wait_until(lambda: sorted(p for p, v in fake.dump_by_path().items() if not v.get("folder")) == want,
               30, "only %r on the server" % want)
    assert fake.content("C.BIN") == b"other\n"
    assert os.listdir(m.p("")) == want


def test_time_whose_patches_fail_after_the_upload_is_sent_later(fake, mounter):
    """tar sets a file's time before close; the PUT lands, and every PATCH
    that should give the item that time fails (503 past the retries).  The
    file was left clean with the service's own time for good (the model
    tester's seed 9115 with faults, settle:mtime); now the time goes to the
    journal, which sends it once the service takes it."""
    from calendar import timegm
    m = mounter.mount(opts={"max_retries": "1"})
    fake.faults({"rules": [{"match": "PATCH item", "status": 503, "retry_after": "1", "times": 4}]})
    path = m.p("t.bin")
    write(path, b"tar member\n")
    os.utime(path, (1500000000, 1500000000))
    wait_landed(fake, {"t.bin": b"tar member\n"})

    def server_time():
        it = fake.dump_by_path().get("t.bin")
        return it and timegm(time.strptime(it["mtime"][:19], "%Y-%m-%dT%H:%M:%S"))
    wait_until(lambda: server_time() == 1500000000, 30, "the time tar set on the server")
    assert faults_applied(fake) == 4
    assert int(os.stat(path).st_mtime) == 1500000000
