"""The upload queue: what is uploaded, when, and under which name - a file
renamed or deleted before its upload starts, a file written again while it
uploads, an unmount with uploads pending, remote changes during an edit."""

import os
import re
import time

import pytest

from helpers import (MIB, deadline, log_lines_matching, pattern, peer, read_back, recycle_bin, upload_sessions,
                     versions, wait_equal, wait_landed, wait_settled, wait_until, xattr)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def puts(fake):
    r = fake.stats()["requests"]
    return r.get("PUT content", 0) + r.get("POST createUploadSession", 0)


@pytest.mark.valgrind
def test_renamed_or_deleted_before_upload_starts(fake, mounter):
    """One worker, busy with a stalled upload: whatever happens to the files
    queued behind it happens before their uploads start."""
    m = mounter.mount(opts={"upload_workers": 1, "small_uploads": 1})
    fake.faults({"rules": [{"match": "PUT content", "stall_ms": 2000, "times": 1}]})
    write(m.p("blocker.txt"), b"blocks the only worker\n")
    wait_until(lambda: puts(fake) >= 1, 20, "the first upload to start")
    write(m.p("a.txt"), b"renamed before upload\n")
    os.rename(m.p("a.txt"), m.p("b.txt"))
    gone = pattern(50000, 1)
    write(m.p("gone.txt"), gone)
    os.unlink(m.p("gone.txt"))
    os.mkdir(m.p("dir1"))
    write(m.p("dir1/in.txt"), b"in a folder renamed before upload\n")
    os.rename(m.p("dir1"), m.p("dir2"))
    write(m.p("moved.txt"), b"moved into a folder before upload\n")
    os.rename(m.p("moved.txt"), m.p("dir2/moved.txt"))
    want = {"blocker.txt": b"blocks the only worker\n", "b.txt": b"renamed before upload\n",
            "dir2/in.txt": b"in a folder renamed before upload\n",
            "dir2/moved.txt": b"moved into a folder before upload\n"}
    wait_landed(fake, want, timeout=60)
    wait_settled(m.p(""))
    d = fake.dump_by_path()
    assert sorted(p for p in d if p) == sorted(list(want) + ["dir2"])
    # the old names never reached the server, the deleted file not at all
    assert recycle_bin(fake) == []
    st = fake.stats()
    assert st["requests"].get("PUT content", 0) == 4, st["requests"]
    assert st["bytes_received_content"] == sum(len(v) for v in want.values())


@pytest.mark.parametrize("size", [3000, 5 * MIB], ids=["simple", "session"])
def test_written_again_while_uploading(fake, mounter, size):
    m = mounter.mount()
    label = "PUT content" if size < 4 * MIB else "PUT upload"
    fake.faults({"rules": [{"match": label, "stall_ms": 1500, "times": 1}]})
    v1, v2 = pattern(size, 2), pattern(size + 11, 3)
    write(m.p("f.bin"), v1)
    wait_until(lambda: fake.stats()["requests"].get(label, 0) >= 1, 20, "the first upload to start")
    write(m.p("f.bin"), v2)
    assert read_back(m.p("f.bin")) == v2
    wait_landed(fake, {"f.bin": v2}, timeout=60)
    wait_settled(m.p(""))
    assert fake.content("f.bin") == v2
    assert read_back(m.p("f.bin")) == v2
    assert [p for p in fake.dump_by_path() if p] == ["f.bin"], "a conflict copy for our own upload"


def test_unmount_with_uploads_pending(fake, mounter):
    """Unmounting does not wait for a hanging upload; the next mount
    finishes it."""
    m = mounter.mount()
    fake.faults({"rules": [{"match": "PUT content", "stall_ms": 60000, "drop": True}]})
    files = {"p%d.txt" % i: b"pending %d\n" % i for i in range(10)}
    for rel, data in files.items():
        write(m.p(rel), data)
    wait_until(lambda: puts(fake) >= 1, 20, "an upload to start")
    t0 = time.monotonic()
    m.stop()                           # fails if the daemon takes over 15 s or logs an error
    took = time.monotonic() - t0
    assert took < 10, "unmount took %.1fs with uploads pending" % took
    fake.faults({})
    assert not [p for p in fake.dump_by_path() if p.startswith("p")]
    m2 = mounter.mount(path=m.path)
    wait_landed(fake, files, timeout=60)
    wait_settled(m2.p(""))


def test_remote_delete_during_local_edit(fake, mounter):
    fake.seed([{"path": "doc.txt", "content": "original\n"}])
    m = mounter.mount()
    assert read_back(m.p("doc.txt")) == b"original\n"
    with open(m.p("doc.txt"), "wb") as f:
        f.write(b"local ")
        f.flush()
        peer(fake).delete("/doc.txt")
        f.write(b"edit\n")
    # the local version is not lost: it is uploaded again under its name
    wait_landed(fake, {"doc.txt": b"local edit\n"}, timeout=60)
    wait_settled(m.p(""))
    assert read_back(m.p("doc.txt")) == b"local edit\n"


def test_created_on_both_sides(fake, mounter):
    m = mounter.mount(expect_errors=[r"conflict"])
    with open(m.p("new.txt"), "wb") as f:
        f.write(b"made here\n")
        f.flush()
        peer(fake).put_content("/new.txt", data=b"made there\n")
    rx = re.compile(r"^new \(conflict \d{4}-\d{2}-\d{2} \d{6}\)\.txt$")

    def both():
        d = fake.dump_by_path()
        copies = [p for p in d if rx.match(p)]
        return copies if copies and d.get("new.txt") else None
    copies = wait_until(both, 60, "both versions on the server")
    assert len(copies) == 1, copies
    assert fake.content("new.txt") == b"made there\n"
    assert fake.content(copies[0]) == b"made here\n"
    wait_until(lambda: copies[0] in os.listdir(m.p("")), 30, "the copy in the mount")
    wait_until(lambda: read_back(m.p("new.txt")) == b"made there\n", 30, "the mount to show the remote file")
    assert read_back(m.p(copies[0])) == b"made here\n"
    assert "conflict" in (xattr(m.p("new.txt"), "status"), xattr(m.p(copies[0]), "status"))
    assert len([l for l in log_lines_matching(m.stderr_text(), re.escape(copies[0])) if "new.txt" in l]) == 1


def test_upload_chunks(fake, mounter):
    """upload_chunk sets the fragment size; every fragment but the last is a
    multiple of 320 KiB (the fake refuses others)."""
    chunk = 5 * 327680
    m = mounter.mount(opts={"upload_chunk": chunk})
    data = pattern(9 * MIB + 5, 4)
    write(m.p("chunked.bin"), data)
    wait_landed(fake, {"chunked.bin": data}, timeout=60)
    n = -(-len(data) // chunk)
    assert fake.stats()["requests"].get("PUT upload", 0) == n
    assert fake.stats()["bytes_received_content"] == len(data)
    assert upload_sessions(fake) == []
    assert len(versions(fake, "chunked.bin")) == 1


def stall_first_upload(fake, mounter, stall_ms=1500, **opts):
    m = mounter.mount(opts=opts)
    fake.faults({"rules": [{"match": "PUT content", "stall_ms": stall_ms, "times": 1}]})
    return m


def test_renamed_while_uploading(fake, mounter):
    m = stall_first_upload(fake, mounter)
    os.mkdir(m.p("later"))
    write(m.p("a.txt"), b"renamed during its upload\n")
    wait_until(lambda: puts(fake) >= 1, 20, "the upload to start")
    os.rename(m.p("a.txt"), m.p("later/b.txt"))
    wait_landed(fake, {"later/b.txt": b"renamed during its upload\n"}, timeout=60)
    wait_settled(m.p(""))
    wait_until(lambda: "a.txt" not in fake.dump_by_path(), 20, "a.txt to go from the server")
    assert sorted(p for p in fake.dump_by_path() if p) == ["later", "later/b.txt"]
    assert os.listdir(m.p("")) == ["later"]


def test_deleted_while_uploading(fake, mounter):
    m = stall_first_upload(fake, mounter)
    write(m.p("doomed.txt"), b"deleted during its upload\n")
    wait_until(lambda: puts(fake) >= 1, 20, "the upload to start")
    os.unlink(m.p("doomed.txt"))
    write(m.p("marker.txt"), b"after\n")
    wait_landed(fake, {"marker.txt": b"after\n"}, timeout=60)
    # the upload that was under way may land, but does not stay
    wait_until(lambda: "doomed.txt" not in fake.dump_by_path(), 30, "doomed.txt to stay gone")
    assert os.listdir(m.p("")) == ["marker.txt"]


def test_renamed_over_a_file_whose_upload_is_pending(fake, mounter):
    m = stall_first_upload(fake, mounter)
    write(m.p("target.txt"), b"first version\n")
    wait_until(lambda: puts(fake) >= 1, 20, "the upload to start")
    write(m.p("source.tmp"), b"second version\n")
    os.rename(m.p("source.tmp"), m.p("target.txt"))
    assert read_back(m.p("target.txt")) == b"second version\n"
    wait_landed(fake, {"target.txt": b"second version\n"}, timeout=60)
    wait_settled(m.p(""))
    assert sorted(p for p in fake.dump_by_path() if p) == ["target.txt"]


def test_parallel_writers(fake, mounter):
    import threading
    m = mounter.mount()
    want = {}
    errors = []

    def worker(k):
        try:
            os.mkdir(m.p("w%d" % k))
            for i in range(30):
                rel = "w%d/f%02d.bin" % (k, i)
                data = pattern(500 + 997 * i, 1000 * k + i)
                write(m.p(rel), data)
                if i % 5 == 4:
                    os.rename(m.p(rel), m.p(rel + ".renamed"))
                    rel += ".renamed"
                want[rel] = data
        except Exception as e:          # reported below
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(deadline(120))
    assert not errors, errors
    wait_landed(fake, want, timeout=120, what="240 files from 8 writers")
    wait_settled(m.p(""), timeout=60)
    files = sorted(p for p, r in fake.dump_by_path().items() if p and not r["folder"])
    assert files == sorted(want)


@pytest.mark.parametrize("size", [3000, 5 * MIB], ids=["simple", "session"])
def test_utimens_while_uploading(fake, mounter, size):
    """rsync, cp -p and tar set the time right after close(), often while the
    upload runs: the time must not be lost to the upload's answer."""
    m = mounter.mount()
    label = "PUT content" if size < 4 * MIB else "PUT upload"
    fake.faults({"rules": [{"match": label, "stall_ms": 1500, "times": 1}]})
    data = pattern(size, 5)
    write(m.p("timed.bin"), data)
    wait_until(lambda: fake.stats()["requests"].get(label, 0) >= 1, 20, "the upload to start")
    os.utime(m.p("timed.bin"), (1234567890, 1234567890))
    wait_landed(fake, {"timed.bin": data}, timeout=60)
    wait_settled(m.p(""))
    wait_equal(lambda: fake.dump_by_path()["timed.bin"]["mtime"], "2009-02-13T23:31:30Z", 20,
               "the time set during the upload on the server")
    assert int(os.stat(m.p("timed.bin")).st_mtime) == 1234567890
