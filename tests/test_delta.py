"""Remote changes appear by themselves: the delta thread (src/delta.c).

A second client ("another device", fake.server.client()) changes the drive
through the Graph API; the mount must show each change through ls, stat and
cat within a poll interval, without a remount.  The kernel caches entries
and attributes for an hour while delta runs, so every check below that sees
a change also proves the push invalidation reached the kernel.
"""

import errno
import math
import os
import subprocess

import pytest

from helpers import deadline, peer, req_count, wait_until

POLL = 1                      # seconds between delta rounds in these tests
SEEN = 10 + 4 * POLL          # how long a change may take to show (scaled by deadline())

TREE = {
    "Docs/a.txt": "alpha\n",
    "Docs/b.txt": "bravo\n",
    "Docs/sub/c.txt": "charlie\n",
    "Docs/sub/deeper/d.txt": "delta\n",
    "Other/e.txt": "echo\n",
    "Gone/one.txt": "one\n",
    "Gone/inner/two.txt": "two\n",
    "top.txt": "at the top\n",
}
FOLDERS = ["Empty"]


def seed(fake):
    tree = [{"path": p, "content": c} for p, c in TREE.items()]
    tree += [{"path": p, "folder": True} for p in FOLDERS]
    fake.seed(tree)
    return fake.dump_by_path()


def tree_paths(root):
    r = subprocess.run(["find", str(root), "-mindepth", "1"], capture_output=True,
                       timeout=deadline(60))
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    prefix = str(root) + "/"
    return {line[len(prefix):] for line in r.stdout.decode("utf-8", "surrogateescape").splitlines()}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def exists(path):
    try:
        os.stat(path)
        return True
    except FileNotFoundError:
        return False


def requests(fake, label):
    return req_count(fake.stats(), lambda l: l == label)


def wait_shows(what, cond, timeout=SEEN):
    return wait_until(cond, timeout, what, interval=0.05)


def mount_delta(mounter, **opts):
    o = {"poll_interval": POLL}
    o.update(opts)
    return mounter.mount(opts=o)


# ------------------------------------------------------------ initial sync
@pytest.mark.valgrind
def test_first_mount_fills_the_tree_from_delta(fake, mounter):
    server = seed(fake)
    fake.config(page_size=3)
    fake.stats_reset()
    m = mounter.mount(opts={"page_size": 3})          # default poll_interval (30 s)
    assert tree_paths(m.path) == set(server)
    assert read(m.p("Docs/sub/deeper/d.txt")) == b"delta\n"
    st = fake.stats()
    # no folder listed one by one: the tree came from ceil(items / 3) delta pages
    assert requests(fake, "GET children") == 0, st["requests"]
    pages = math.ceil((len(server) + 1) / 3)          # + the root item
    assert pages <= requests(fake, "GET delta") <= pages + 1, st["requests"]


def test_remount_resumes_from_the_stored_link(fake, mounter):
    seed(fake)
    m = mount_delta(mounter)
    assert "a.txt" in os.listdir(m.p("Docs"))
    m.stop()
    other = peer(fake)
    other.put_content("/Docs/while-away.txt", data=b"written while unmounted\n")
    other.delete("/Docs/b.txt")
    fake.stats_reset()
    m2 = mount_delta(mounter)
    wait_shows("the change made while unmounted", lambda: exists(m2.p("Docs/while-away.txt")))
    assert not exists(m2.p("Docs/b.txt"))
    assert read(m2.p("Docs/while-away.txt")) == b"written while unmounted\n"
    # one small incremental round (a page or two), not a new enumeration or listings
    assert requests(fake, "GET children") == 0
    assert requests(fake, "GET delta") <= 3


def test_poll_interval_zero_disables_delta(fake, mounter):
    server = seed(fake)
    m = mounter.mount(opts={"poll_interval": 0})
    assert tree_paths(m.path) == set(server)
    assert requests(fake, "GET delta") == 0
    assert requests(fake, "GET children") >= 1 + sum(1 for r in server.values() if r["folder"])


# ---------------------------------------------------------- remote changes
def test_remote_changes_show_without_remount(fake, mounter):
    seed(fake)
    m = mount_delta(mounter)
    other = peer(fake)
    # warm every kernel cache: entries, attributes, pages, and a negative entry
    assert tree_paths(m.path) >= {"Docs/a.txt", "Gone/inner/two.txt"}
    assert read(m.p("Docs/a.txt")) == b"alpha\n"
    assert read(m.p("top.txt")) == b"at the top\n"
    old_size = os.stat(m.p("Docs/a.txt")).st_size
    assert not exists(m.p("Docs/new.txt"))

    # new file (the kernel had a negative entry for it)
    other.put_content("/Docs/new.txt", data=b"brand new\n")
    wait_shows("a new file", lambda: exists(m.p("Docs/new.txt")))
    assert read(m.p("Docs/new.txt")) == b"brand new\n"
    assert "new.txt" in os.listdir(m.p("Docs"))

    # modified content, same size: the old bytes must not come back from any cache
    other.put_content("/top.txt", data=b"AT THE TOP\n")
    wait_shows("same-size new content", lambda: read(m.p("top.txt")) == b"AT THE TOP\n")
    # modified content, new size: stat sees it without a new lookup
    other.put_content("/Docs/a.txt", data=b"alpha, longer now\n")
    wait_shows("the new size", lambda: os.stat(m.p("Docs/a.txt")).st_size != old_size)
    assert os.stat(m.p("Docs/a.txt")).st_size == len(b"alpha, longer now\n")
    assert read(m.p("Docs/a.txt")) == b"alpha, longer now\n"

    # rename within a folder (same inode)
    ino = os.stat(m.p("Docs/b.txt")).st_ino
    other.rename("/Docs/b.txt", "b-renamed.txt")
    wait_shows("a rename", lambda: exists(m.p("Docs/b-renamed.txt")))
    assert not exists(m.p("Docs/b.txt"))
    assert os.stat(m.p("Docs/b-renamed.txt")).st_ino == ino
    assert read(m.p("Docs/b-renamed.txt")) == b"bravo\n"

    # move to another folder with a new name
    other.move("/Docs/sub/c.txt", "/Other", "c-moved.txt")
    wait_shows("a move", lambda: exists(m.p("Other/c-moved.txt")))
    assert not exists(m.p("Docs/sub/c.txt"))
    assert sorted(os.listdir(m.p("Other"))) == ["c-moved.txt", "e.txt"]
    assert read(m.p("Other/c-moved.txt")) == b"charlie\n"

    # delete a file
    other.delete("/Other/e.txt")
    wait_shows("a deleted file", lambda: not exists(m.p("Other/e.txt")))
    assert os.listdir(m.p("Other")) == ["c-moved.txt"]

    # remove a whole folder tree
    other.delete("/Gone")
    wait_shows("a removed folder tree", lambda: not exists(m.p("Gone")))
    assert "Gone" not in os.listdir(m.p(""))
    with pytest.raises(FileNotFoundError):
        os.stat(m.p("Gone/inner/two.txt"))

    # a new folder with content, and a folder moved with its subtree
    other.mkdir("/Fresh")
    other.put_content("/Fresh/f.txt", data=b"fresh\n")
    other.move("/Docs/sub", "/Fresh")
    wait_shows("a new folder", lambda: exists(m.p("Fresh/sub/deeper/d.txt")))
    assert sorted(os.listdir(m.p("Fresh"))) == ["f.txt", "sub"]
    assert read(m.p("Fresh/sub/deeper/d.txt")) == b"delta\n"
    assert not exists(m.p("Docs/sub"))
    # nothing was listed folder by folder
    assert requests(fake, "GET children") == 0
    assert tree_paths(m.path) == set(fake.dump_by_path())


def test_open_file_sees_new_content_after_a_remote_change(fake, mounter):
    """The page cache of an inode is dropped when its content changes remotely."""
    fake.seed([{"path": "f.bin", "content": {"size": 65536, "seed": 3}}])
    m = mount_delta(mounter)
    old = fake.content("f.bin")
    assert read(m.p("f.bin")) == old
    peer(fake).put_content("/f.bin", data=b"x" * 65536)
    wait_shows("the new bytes", lambda: read(m.p("f.bin")) == b"x" * 65536)
    # and again through an `open` that keeps the page cache if the tag is the same
    assert subprocess.run(["cat", m.p("f.bin")], capture_output=True,
                          timeout=deadline(30)).stdout == b"x" * 65536


def test_dir_ttl_access_wakes_an_early_round(fake, mounter):
    """With a long poll interval, touching a folder older than dir_ttl asks delta for news."""
    seed(fake)
    m = mounter.mount(opts={"poll_interval": 3600, "dir_ttl": 1})
    assert "a.txt" in os.listdir(m.p("Docs"))
    peer(fake).put_content("/Docs/soon.txt", data=b"soon\n")

    def seen():
        return "soon.txt" in os.listdir(m.p("Docs"))
    wait_shows("a change after dir_ttl", seen)
    assert requests(fake, "GET children") == 0


# ------------------------------------------------------------------ resync
def test_410_resync_in_the_middle_of_a_run(fake, mounter):
    seed(fake)
    m = mount_delta(mounter)
    assert tree_paths(m.path) >= {"Docs/a.txt"}
    ino = os.stat(m.p("Docs/a.txt")).st_ino
    fake.ctl("POST", "delta/invalidate", {})
    other = peer(fake)
    other.put_content("/Docs/after-resync.txt", data=b"after\n")
    other.delete("/top.txt")
    wait_shows("changes after a 410", lambda: exists(m.p("Docs/after-resync.txt")))
    wait_shows("a delete after a 410", lambda: not exists(m.p("top.txt")))
    assert fake.stats()["responses"].get("410", 0) >= 1
    # the resync kept what it found again: same inode, no folder listings
    assert os.stat(m.p("Docs/a.txt")).st_ino == ino
    assert requests(fake, "GET children") == 0
    assert tree_paths(m.path) == set(fake.dump_by_path())
    # and the thread carries on with the new link
    other.put_content("/Docs/later.txt", data=b"later\n")
    wait_shows("a change after the resync", lambda: exists(m.p("Docs/later.txt")))


def _write_or_skip(path, data):
    try:
        with open(path, "wb") as f:
            f.write(data)
    except OSError as e:
        if e.errno in (errno.EROFS, errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP):
            pytest.skip("the mount does not write yet (%s)" % os.strerror(e.errno))
        raise


@pytest.mark.expect_errors(r"upload", r"cannot")
def test_resync_keeps_pending_local_edits(fake, mounter):
    seed(fake)
    m = mount_delta(mounter)
    assert read(m.p("Docs/a.txt")) == b"alpha\n"
    # uploads fail for now: the local edit stays pending
    fake.faults({"rules": [{"match": "PUT", "status": 503, "retry_after": "30"},
                           {"match": "POST", "status": 503, "retry_after": "30"}]})
    _write_or_skip(m.p("Docs/local-new.txt"), b"made here\n")
    _write_or_skip(m.p("Docs/a.txt"), b"edited here\n")
    fake.ctl("POST", "delta/invalidate", {})
    peer(fake).put_content("/Docs/remote.txt", data=b"remote\n")
    wait_shows("the resync", lambda: exists(m.p("Docs/remote.txt")))
    # a full enumeration that does not name them must not drop or overwrite them
    assert read(m.p("Docs/local-new.txt")) == b"made here\n"
    assert read(m.p("Docs/a.txt")) == b"edited here\n"
    fake.faults({})


# ------------------------------------------------------------ delta quirks
@pytest.mark.parametrize("quirks", [{"delta_duplicates": True}, {"delta_child_first": True},
                                    {"delta_duplicates": True, "delta_child_first": True}],
                         ids=["duplicates", "child-first", "both"])
def test_duplicates_and_children_before_parents(fake, mounter, quirks):
    server = seed(fake)
    fake.config(page_size=2, **quirks)
    m = mount_delta(mounter, page_size=2)
    assert tree_paths(m.path) == set(server)
    inodes = {p: os.stat(m.p(p)).st_ino for p in server}
    assert len(set(inodes.values())) == len(inodes)
    # an incremental round with a new nested tree (children first when reversed)
    other = peer(fake)
    other.mkdir("/N1")
    other.mkdir("/N1/N2")
    other.put_content("/N1/N2/leaf.txt", data=b"leaf\n")
    other.rename("/N1", "N1-renamed")          # the parent changes after its children
    wait_shows("a nested new tree", lambda: exists(m.p("N1-renamed/N2/leaf.txt")))
    assert read(m.p("N1-renamed/N2/leaf.txt")) == b"leaf\n"
    assert tree_paths(m.path) == set(fake.dump_by_path())
    assert {p: os.stat(m.p(p)).st_ino for p in server} == inodes
