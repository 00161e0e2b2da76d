"""Name operations made while the service is out of reach (src/journal.c):
applied here at once, journalled, replayed in order when it answers again,
with the conflict rule.  The outage here is the fake server refusing
connections (stopped, then started again on the same port)."""

import errno
import os

import pytest

from helpers import kill_daemon, meta_db_integrity, peer, qxhash, read_back, wait_landed, wait_settled, wait_until

FAST = {"io_timeout": "3", "connect_timeout": "2", "max_retries": "1"}
# the other device's edits must reach the mount only through the replay:
# no delta round after the first
SLOW_POLL = dict(FAST, poll_interval="3600")


def go_down(fake):
    """Refuse connections (the peer client still reaches the fake in-process)."""
    fake.server.go_down()


def come_back(fake):
    fake.server.come_back()


def seed(fake, files):
    fake.seed([{"path": p, "content": c} for p, c in files.items()])


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def gone(dump, *paths):
    return all(p not in dump for p in paths)


def no_conflicts(dump):
    return [p for p in dump if "(conflict" in p]


def test_offline_tree_changes_replay_in_order(fake, mounter):
    seed(fake, {"a.txt": "alpha", "d1/x.txt": "xx", "d2/y.txt": "yy", "e/f.txt": "ff", "keep/k.txt": "k"})
    m = mounter.mount(opts=FAST)
    assert read_back(m.p("a.txt")) == b"alpha"
    for d in ("d1", "d2", "e"):
        os.listdir(m.p(d))
    assert read_back(m.p("d2/y.txt")) == b"yy"     # cached: readable offline
    go_down(fake)
    os.mkdir(m.p("new"))
    os.mkdir(m.p("new/sub"))
    write(m.p("new/sub/n.txt"), b"new file")
    os.rename(m.p("a.txt"), m.p("new/a2.txt"))      # a folder made offline receives a remote file
    write(m.p("a.txt"), b"replacement a")           # ... and its old name is used again at once
    os.unlink(m.p("e/f.txt"))
    os.rmdir(m.p("e"))
    os.rename(m.p("d1"), m.p("d1renamed"))
    os.rename(m.p("d2/y.txt"), m.p("d1renamed/x.txt"))   # over a remote file, into a renamed folder
    os.utime(m.p("new"), (1600000000, 1600000000))
    # all of it shows at once, while the service is still away
    assert sorted(os.listdir(m.p(""))) == ["a.txt", "d1renamed", "d2", "keep", "new"]
    assert read_back(m.p("new/a2.txt")) == b"alpha"
    assert read_back(m.p("d1renamed/x.txt")) == b"yy"
    assert os.stat(m.p("new")).st_mtime == 1600000000
    come_back(fake)
    want = {"new/sub/n.txt": b"new file", "new/a2.txt": b"alpha", "a.txt": b"replacement a",
            "d1renamed/x.txt": b"yy", "keep/k.txt": b"k"}
    dump = wait_landed(fake, want, timeout=60, what="the changes made offline")
    dump = wait_until(lambda: (lambda d: d if gone(d, "e", "e/f.txt", "d1", "d2/y.txt") else None)(
        fake.dump_by_path()), 30, "the removals made offline")
    assert no_conflicts(dump) == []
    assert dump["new"]["mtime"] == "2020-09-13T12:26:40Z", dump["new"]
    wait_settled(m.p(""))
    assert "sent 9 changes made while offline" in m.stderr_text()


def test_offline_swap_and_reuse_of_names(fake, mounter):
    seed(fake, {"a": "A", "b": "B", "x/f": "F"})
    m = mounter.mount(opts=FAST)
    os.listdir(m.p("x"))
    go_down(fake)
    os.rename(m.p("a"), m.p("tmp"))       # swap a and b through a third name
    os.rename(m.p("b"), m.p("a"))
    os.rename(m.p("tmp"), m.p("b"))
    os.unlink(m.p("x/f"))                 # rm x/f; rmdir x; mkdir x: a new folder of the same name
    os.rmdir(m.p("x"))
    os.mkdir(m.p("x"))
    write(m.p("x/g"), b"G")
    come_back(fake)
    dump = wait_landed(fake, {"a": b"B", "b": b"A", "x/g": b"G"}, timeout=60, what="the swap")
    dump = wait_until(lambda: (lambda d: d if gone(d, "x/f", "tmp") else None)(fake.dump_by_path()), 30,
                      "x/f to go")
    assert no_conflicts(dump) == []
    assert read_back(m.p("a")) == b"B" and read_back(m.p("b")) == b"A"


def test_offline_delete_of_a_file_changed_elsewhere_keeps_it(fake, mounter):
    seed(fake, {"doc.txt": "v1", "other.txt": "o"})
    m = mounter.mount(opts=SLOW_POLL)
    assert read_back(m.p("doc.txt")) == b"v1"
    peer(fake).put_content("/doc.txt", data=b"v2 from the other device")
    go_down(fake)
    os.unlink(m.p("doc.txt"))
    os.unlink(m.p("other.txt"))
    come_back(fake)
    wait_until(lambda: "other.txt" not in fake.dump_by_path(), 30, "the unchanged file to be deleted")
    dump = fake.dump_by_path()
    assert dump["doc.txt"]["quickXorHash"] == qxhash(b"v2 from the other device")
    wait_until(lambda: "changed on another device after you deleted it here; it was kept" in m.stderr_text(),
               30, "the log line")
    # it comes back in the mount, with the other device's bytes
    wait_until(lambda: os.path.exists(m.p("doc.txt")), 60, "doc.txt back in the mount")
    assert read_back(m.p("doc.txt")) == b"v2 from the other device"


def test_offline_new_folder_meets_a_folder_made_elsewhere(fake, mounter):
    seed(fake, {"base/a.txt": "a"})
    m = mounter.mount(opts=SLOW_POLL)
    os.listdir(m.p("base"))
    p = peer(fake)
    p.mkdir("/base", "shared")
    p.put_content("/base/shared/theirs.txt", data=b"theirs")
    p.put_content("/base/taken.txt", data=b"theirs too")
    go_down(fake)
    os.mkdir(m.p("base/shared"))
    write(m.p("base/shared/mine.txt"), b"mine")
    os.rename(m.p("base/a.txt"), m.p("base/taken.txt"))
    come_back(fake)
    dump = wait_landed(fake, {"base/shared/mine.txt": b"mine", "base/shared/theirs.txt": b"theirs",
                              "base/taken.txt": b"theirs too"}, timeout=60, what="the merged folder")
    renamed = [p for p in dump if p.startswith("base/taken (conflict ")]
    assert len(renamed) == 1 and dump[renamed[0]]["quickXorHash"] == qxhash(b"a"), sorted(dump)
    assert "base/a.txt" not in dump
    assert sorted(p for p in dump if p.startswith("base/shared")) == ["base/shared", "base/shared/mine.txt",
                                                                 "base/shared/theirs.txt"], sorted(dump)
    # the mount shows the merged folder: the round after the journal drained brings theirs
    wait_until(lambda: sorted(os.listdir(m.p("base/shared"))) == ["mine.txt", "theirs.txt"], 30,
               "both files in the merged folder")
    assert read_back(m.p("base/shared/theirs.txt")) == b"theirs"


def test_kill9_with_journalled_changes_then_remount(fake, mounter, env):
    seed(fake, {"a.txt": "alpha", "d/b.txt": "beta"})
    m = mounter.mount(opts=FAST)
    os.listdir(m.p("d"))
    go_down(fake)
    os.mkdir(m.p("n"))
    write(m.p("n/c.txt"), b"gamma")
    os.rename(m.p("a.txt"), m.p("n/a.txt"))
    os.unlink(m.p("d/b.txt"))
    kill_daemon(m)
    assert meta_db_integrity(env) == "ok"
    come_back(fake)
    m2 = mounter.mount(path=m.path, opts=FAST)
    dump = wait_landed(fake, {"n/c.txt": b"gamma", "n/a.txt": b"alpha"}, timeout=60,
                       what="the journalled changes after the kill")
    wait_until(lambda: "d/b.txt" not in fake.dump_by_path(), 30, "the delete after the kill")
    assert "a.txt" not in fake.dump_by_path()
    assert read_back(m2.p("n/a.txt")) == b"alpha"


# ---- the conflict rule when an offline edit meets a rename, a time, a taken name, a lost folder
def conflict_copies(dump, stem):
    return [p for p in dump if p.startswith(stem + " (conflict ")]


@pytest.mark.parametrize("then", ["rename", "utime"])
def test_offline_edit_and_name_or_time_change_vs_edit_elsewhere(fake, mounter, then):
    """An edit made offline, plus a rename or a new time, meets an edit made
    by another device: the replayed PATCH must not make the other device's
    version the base of our upload (both are kept)."""
    seed(fake, {"f.txt": "v1"})
    m = mounter.mount(opts=SLOW_POLL, expect_errors=[r"conflict", r"another device"])
    assert read_back(m.p("f.txt")) == b"v1"
    go_down(fake)
    if then == "utime":
        os.utime(m.p("f.txt"), (1600000000, 1600000000))
    write(m.p("f.txt"), b"mine, written offline")
    final = "f.txt"
    if then == "rename":
        os.rename(m.p("f.txt"), m.p("g.txt"))
        final = "g.txt"
    peer(fake).put_content("/f.txt", data=b"theirs, written elsewhere")   # in-process while down
    come_back(fake)

    def both():
        dump = fake.dump_by_path()
        hashes = {v["quickXorHash"]: p for p, v in dump.items() if not v["folder"]}
        if qxhash(b"theirs, written elsewhere") in hashes and qxhash(b"mine, written offline") in hashes:
            return dump
    dump = wait_until(both, 60, "both versions on the server")
    mine = [p for p, v in dump.items() if v["quickXorHash"] == qxhash(b"mine, written offline")]
    assert len(mine) == 1 and "(conflict " in mine[0], sorted(dump)
    theirs = [p for p, v in dump.items() if v["quickXorHash"] == qxhash(b"theirs, written elsewhere")]
    assert theirs == [final], sorted(dump)


def test_offline_move_into_a_folder_where_the_name_was_taken(fake, mounter):
    """mv a/f b/f offline (same name) while another device made b/f: ours
    is moved under a conflict name, nothing disappears from the mount."""
    seed(fake, {"a/f": "mine", "b/other": "o"})
    m = mounter.mount(opts=SLOW_POLL, expect_errors=[r"taken on another device"])
    os.listdir(m.p("a"))
    os.listdir(m.p("b"))
    go_down(fake)
    os.rename(m.p("a/f"), m.p("b/f"))
    peer(fake).put_content("/b/f", data=b"theirs")
    come_back(fake)
    dump = wait_until(lambda: (lambda d: d if conflict_copies(d, "b/f") else None)(fake.dump_by_path()),
                      60, "our file moved under a conflict name")
    assert "a/f" not in dump
    copy = conflict_copies(dump, "b/f")[0]
    assert dump[copy]["quickXorHash"] == qxhash(b"mine")
    assert fake.content("b/f") == b"theirs"
    name = copy.split("/", 1)[1]
    wait_until(lambda: sorted(os.listdir(m.p("b"))) == sorted(["f", "other", name]), 30,
               "both files in the mount")
    assert read_back(m.p("b/" + name)) == b"mine"
    assert "taken on another device" in m.stderr_text()


def test_offline_folder_whose_parent_was_deleted_elsewhere(fake, mounter):
    """mkdir p/d and a file in it offline, while another device deletes p:
    the folder and its file land in the drive root, nothing is lost."""
    seed(fake, {"p/x": "x"})
    m = mounter.mount(opts=SLOW_POLL, expect_errors=[r"deleted on another device"])
    os.listdir(m.p("p"))
    go_down(fake)
    os.mkdir(m.p("p/d"))
    write(m.p("p/d/f"), b"precious")
    peer(fake).delete("/p")
    come_back(fake)
    wait_landed(fake, {"d/f": b"precious"}, timeout=60, what="the folder and its file in the root")
    assert "p" not in fake.dump_by_path()
    assert "deleted on another device" in m.stderr_text()
    wait_until(lambda: os.path.exists(m.p("d/f")), 30, "the folder in the root of the mount")
    assert read_back(m.p("d/f")) == b"precious"


def test_offline_new_folder_merged_into_a_folder_moved_there_elsewhere(fake, mounter):
    # another device moves a folder the mount knows (with its files) to the
    # name of a folder made here offline: the replayed create merges the
    # two, and the merged folder must show the files it already held on the
    # service (no delta round reports them: they did not change), or an
    # rmdir here once it looks empty would delete them with the folder
    seed(fake, {"base/a.txt": "a", "other/stuff/theirs.txt": "theirs", "other/stuff/deep/t2.txt": "t2"})
    m = mounter.mount(opts=SLOW_POLL)
    os.listdir(m.p("base"))
    assert sorted(os.listdir(m.p("other/stuff"))) == ["deep", "theirs.txt"]
    peer(fake).move("/other/stuff", "/base", "shared")
    go_down(fake)
    os.mkdir(m.p("base/shared"))
    write(m.p("base/shared/mine.txt"), b"mine")
    come_back(fake)
    wait_landed(fake, {"base/shared/mine.txt": b"mine", "base/shared/theirs.txt": b"theirs",
                       "base/shared/deep/t2.txt": b"t2"}, timeout=60, what="the merged folder")
    wait_until(lambda: sorted(os.listdir(m.p("base/shared"))) == ["deep", "mine.txt", "theirs.txt"], 30,
               "the files the folder held on the service, in the merged folder")
    assert read_back(m.p("base/shared/theirs.txt")) == b"theirs"
    os.unlink(m.p("base/shared/mine.txt"))
    with pytest.raises(OSError) as e:
        os.rmdir(m.p("base/shared"))
    assert e.value.errno == errno.ENOTEMPTY
    dump = fake.dump_by_path()
    assert "base/shared/theirs.txt" in dump and "base/shared/deep/t2.txt" in dump, sorted(dump)
    assert not no_conflicts(dump), sorted(dump)
