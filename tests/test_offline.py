"""The mount keeps working while the service cannot be reached (issue 4,
Offline): cached reads are served, and create, write, mkdir, rename and
delete are applied locally at once, journalled and replayed in order when
the service returns, with the conflict rule.

Two kinds of outage (FakeGraph, see tests/fakegraph/server.py):
  down    fake.server.go_down(): connections refused, come_back() later
  frozen  fake.server.freeze(): connections accepted, nothing answered;
          thaw() drops what hung (connection reset)

While the fake is down its /_control/ endpoints are unreachable too, so
these tests read the server's state in process (server_tree) and "another
device" (helpers.peer) reaches the service in process.  Every check that
waits does so on a condition with a deadline.
"""

import base64
import errno
import os
import re
import subprocess
import time

import pytest

from helpers import (BINARY, MIB, call_with_deadline, deadline, kill_daemon, local_tree, log_lines_matching,
                     meta_db_integrity, pattern, peer, qxhash, read_back, remote_under, wait_settled, wait_until,
                     xattr)

IO_TIMEOUT = 2                              # seconds, also connect_timeout
OP_BOUND = 2 * IO_TIMEOUT + 4               # a local operation during an outage returns within this
LAND = 60                                   # seconds for everything journalled to land after the return
CONFLICT_A = re.compile(r"^A \(conflict \d{4}-\d{2}-\d{2} \d{6}\)\.txt$")


def _binary_accepts(key):
    """True when `onedrivefs --help` names the option key."""
    try:
        r = subprocess.run([BINARY, "--help"], capture_output=True, text=True, timeout=30)
    except OSError:
        return False
    return key in r.stdout + r.stderr


# offline_probe (prober interval cap, seconds) is newer than the rest: only it is gated
OFFLINE_OPTS = {"io_timeout": IO_TIMEOUT, "connect_timeout": IO_TIMEOUT, "poll_interval": 1}
if _binary_accepts("offline_probe"):
    OFFLINE_OPTS["offline_probe"] = 1


@pytest.fixture
def outage(fake, mounter):
    """The FakeGraph, brought back up and thawed at teardown (before the
    mounts' own checks, which talk to it)."""
    yield fake.server
    if fake.server.is_down():
        fake.server.come_back()
    fake.server.thaw()


def mount(mounter, expect_errors=(), **opts):
    o = dict(OFFLINE_OPTS)
    o.update(opts)
    return mounter.mount(opts=o, expect_errors=expect_errors, debug=bool(os.environ.get("ODFS_DEBUG")))


def server_tree(fake):
    """{path (no leading slash): (folder, size, quickXorHash, eTag)} read in
    process, so it works while the fake is down or frozen."""
    return {r["path"].strip("/"): (r["folder"], r["size"], r["quickXorHash"], r["eTag"])
            for r in fake.server.dump()["items"] if r["path"].strip("/")}


def bounded(fn, what):
    """fn() must return within OP_BOUND seconds (scaled)."""
    return call_with_deadline(fn, OP_BOUND, what)


def write(path, data, mode="wb"):
    def run():
        with open(path, mode) as f:
            f.write(data)
    bounded(run, "writing '%s'" % path)


def seed(fake, files, folders=()):
    tree = [{"path": p, "content": {"base64": base64.b64encode(c).decode()}} for p, c in files.items()]
    tree += [{"path": p, "folder": True} for p in folders]
    fake.seed(tree)


def warm(m, prefix):
    """List every folder and read every file below prefix: all metadata and
    content cached.  Returns ({rel: bytes}, {folders})."""
    return local_tree(m.p(prefix))


def wait_server_tree(fake, prefix, files, folders, timeout=LAND, what="the journal to land"):
    """Wait until the server's subtree at prefix holds exactly the folders
    and files ({rel: bytes}, compared by size and quickXorHash)."""
    want = {rel: (False, len(data), qxhash(data)) for rel, data in files.items()}
    want.update({rel: (True, None, None) for rel in folders})
    last = {}

    def same():
        got = {}
        for rel, rec in remote_under(fake, prefix).items():
            got[rel] = (True, None, None) if rec["folder"] else (False, rec["size"], rec["quickXorHash"])
        last["got"] = got
        return got == want
    try:
        wait_until(same, timeout, what, interval=0.1)
    except AssertionError as e:
        got = last.get("got", {})
        diff = ["%s: server %r, want %r" % (k, got.get(k), want.get(k)) for k in sorted(set(got) | set(want))
                if got.get(k) != want.get(k)]
        raise AssertionError("%s; differences:\n  %s" % (e, "\n  ".join(diff[:20])))


def assert_mount_tree(m, prefix, files, folders):
    """ls/stat/cat through the mount show exactly files and folders."""
    got_files, got_folders = local_tree(m.p(prefix))
    assert got_folders == set(folders), "folders in the mount: %r, want %r" % (sorted(got_folders),
                                                                                 sorted(folders))
    assert set(got_files) == set(files), "files in the mount: %r, want %r" % (sorted(got_files), sorted(files))
    for rel, data in files.items():
        assert got_files[rel] == data, "'%s' reads back wrong bytes" % rel
        assert os.stat(m.p(prefix + "/" + rel)).st_size == len(data), rel


def no_conflict_names(fake):
    names = [p for p in fake.dump_by_path() if "(conflict" in p]
    assert names == [], "unexpected conflict copies: %r" % names


def read_fails_with_eio(path):
    """Reading path fails with EIO within OP_BOUND; returns the seconds it took."""
    def run():
        t = time.monotonic()
        try:
            with open(path, "rb") as f:
                f.read()
        except OSError as e:
            return e.errno, time.monotonic() - t
        return None, time.monotonic() - t
    err, took = bounded(run, "reading never-cached '%s'" % path)
    assert err == errno.EIO, "reading never-cached '%s' gave %r, want EIO" % (path, err and errno.errorcode[err])
    return took


def edits_while_offline(m, p):
    """The edits of scenarios 1 and 3 below folder p (seeded by SEED(p));
    returns the expected (files, folders) relative to p."""
    files = {rel[len(p) + 1:]: data for rel, data in SEED(p).items()}
    folders = {"dst", "emptydir"}
    # create + write new files, one large enough for an upload session
    files["new.txt"] = b"created while offline\n"
    write(m.p(p + "/new.txt"), files["new.txt"])
    files["big.bin"] = pattern(5 * MIB + 123, 700)
    write(m.p(p + "/big.bin"), files["big.bin"])
    # append to an existing file
    write(m.p(p + "/append.txt"), b"line 2, offline\n", mode="ab")
    files["append.txt"] += b"line 2, offline\n"
    # nested mkdir, a file inside
    bounded(lambda: os.makedirs(m.p(p + "/n1/n2/n3")), "mkdir -p")
    folders |= {"n1", "n1/n2", "n1/n2/n3"}
    files["n1/n2/n3/deep.txt"] = b"deep down\n"
    write(m.p(p + "/n1/n2/n3/deep.txt"), files["n1/n2/n3/deep.txt"])
    # rename within a folder, across folders, and over an existing file
    bounded(lambda: os.rename(m.p(p + "/old.txt"), m.p(p + "/renamed.txt")), "rename")
    files["renamed.txt"] = files.pop("old.txt")
    bounded(lambda: os.rename(m.p(p + "/move.txt"), m.p(p + "/dst/moved.txt")), "move")
    files["dst/moved.txt"] = files.pop("move.txt")
    bounded(lambda: os.rename(m.p(p + "/over-src.txt"), m.p(p + "/over-dst.txt")), "rename over a file")
    files["over-dst.txt"] = files.pop("over-src.txt")
    # unlink, rmdir
    bounded(lambda: os.unlink(m.p(p + "/gone.txt")), "unlink")
    del files["gone.txt"]
    bounded(lambda: os.rmdir(m.p(p + "/emptydir")), "rmdir")
    folders.discard("emptydir")
    return files, folders


def SEED(p):
    return {p + "/keep.txt": b"kept as it is\n" * 100,
            p + "/append.txt": b"line 1\n",
            p + "/old.txt": b"the old name\n",
            p + "/move.txt": b"moving across\n",
            p + "/over-src.txt": b"the winner\n",
            p + "/over-dst.txt": b"the loser, replaced\n",
            p + "/gone.txt": b"to be deleted\n",
            p + "/dst/already.txt": b"was here\n"}


def seed_scenario(fake, p):
    seed(fake, SEED(p), folders=[p + "/emptydir"])


# --------------------------------------------------------------- scenarios
def test_down_edits_apply_locally_and_land_on_return(fake, mounter, outage):
    seed_scenario(fake, "s1")
    m = mount(mounter)
    cached, _ = warm(m, "s1")
    before = server_tree(fake)

    outage.go_down()
    # cached content is served, byte-identical
    assert bounded(lambda: read_back(m.p("s1/keep.txt")), "a cached read") == cached["keep.txt"]
    files, folders = edits_while_offline(m, "s1")
    # visible at once through ls, stat and cat
    assert_mount_tree(m, "s1", files, folders)
    assert server_tree(fake) == before, "something reached the server while it was down"

    outage.come_back()
    wait_server_tree(fake, "s1", files, folders)
    wait_settled(m.p("s1"), timeout=LAND)
    for rel, data in files.items():
        assert fake.content("s1/" + rel) == data, rel
    assert_mount_tree(m, "s1", files, folders)
    no_conflict_names(fake)


def test_down_replays_in_order(fake, mounter, outage):
    seed(fake, {"s2/a": b"old a\n", "s2/x": b"x was a file\n", "s2/file": b"payload\n", "s2/e/f": b"f\n"})
    m = mount(mounter)
    warm(m, "s2")
    before = server_tree(fake)

    outage.go_down()
    s = m.p("s2")
    bounded(lambda: os.rename(s + "/a", s + "/b"), "mv a b")
    write(s + "/a", b"new\n")
    bounded(lambda: os.unlink(s + "/x"), "rm x")
    bounded(lambda: os.mkdir(s + "/x"), "mkdir x")
    bounded(lambda: os.mkdir(s + "/d"), "mkdir d")
    bounded(lambda: os.rename(s + "/file", s + "/d/file"), "mv file d/")
    bounded(lambda: os.unlink(s + "/e/f"), "rm e/f")
    bounded(lambda: os.rmdir(s + "/e"), "rmdir e")
    files = {"a": b"new\n", "b": b"old a\n", "d/file": b"payload\n"}
    folders = {"x", "d"}
    assert_mount_tree(m, "s2", files, folders)
    assert server_tree(fake) == before, "something reached the server while it was down"

    outage.come_back()
    wait_server_tree(fake, "s2", files, folders)
    wait_settled(m.p("s2"), timeout=LAND)
    for rel, data in files.items():
        assert fake.content("s2/" + rel) == data, rel
    assert_mount_tree(m, "s2", files, folders)
    no_conflict_names(fake)


def test_frozen_edits_do_not_hang_and_land_on_thaw(fake, mounter, outage):
    seed_scenario(fake, "s3")
    never = pattern(300000, 701)
    seed(fake, {"s3-never/never.bin": never})
    m = mount(mounter, expect_errors=[r"never\.bin"])
    cached, _ = warm(m, "s3")
    assert os.listdir(m.p("s3-never")) == ["never.bin"]        # known, content never read
    before = server_tree(fake)

    outage.freeze()
    assert bounded(lambda: read_back(m.p("s3/keep.txt")), "a cached read") == cached["keep.txt"]
    files, folders = edits_while_offline(m, "s3")
    assert_mount_tree(m, "s3", files, folders)
    took = read_fails_with_eio(m.p("s3-never/never.bin"))
    assert took < deadline(OP_BOUND), took
    assert server_tree(fake) == before, "something was applied on the server while it was frozen"

    assert outage.outage_stats()["caught"] >= 1, "the mount sent nothing while frozen: the test proves nothing"
    outage.thaw()
    wait_server_tree(fake, "s3", files, folders)
    wait_settled(m.p("s3"), timeout=LAND)
    for rel, data in files.items():
        assert fake.content("s3/" + rel) == data, rel
    assert_mount_tree(m, "s3", files, folders)
    # and the never-cached file reads again, no remount
    wait_until(lambda: _reads(m.p("s3-never/never.bin")) == never, LAND, "never.bin to read after the thaw")
    no_conflict_names(fake)


def _reads(path):
    try:
        return read_back(path)
    except OSError:
        return None


def test_replay_applies_the_conflict_rule(fake, mounter, outage):
    seed(fake, {"s4/A.txt": b"original A\n", "s4/B.txt": b"original B\n", "s4/C.txt": b"untouched\n"})
    m = mount(mounter, expect_errors=[r"conflict", r"B\.txt"])
    warm(m, "s4")
    other = peer(fake)

    outage.go_down()
    local_a = b"edited here while offline\n"
    write(m.p("s4/A.txt"), local_a)
    bounded(lambda: os.unlink(m.p("s4/B.txt")), "rm B.txt")
    # meanwhile another device, which can reach the service, changes both
    remote_a = b"edited on another device\n"
    remote_b = b"B changed on another device\n"
    other.put_content("/s4/A.txt", data=remote_a)
    other.put_content("/s4/B.txt", data=remote_b)
    assert read_back(m.p("s4/A.txt")) == local_a
    assert not os.path.exists(m.p("s4/B.txt"))

    outage.come_back()

    def landed():
        tree = remote_under(fake, "s4")
        copies = [p for p in tree if CONFLICT_A.match(p)]
        if len(copies) != 1 or tree[copies[0]]["quickXorHash"] != qxhash(local_a):
            return None
        return copies[0]
    copy = wait_until(landed, LAND, "the conflict copy of A.txt with the local bytes")
    # nothing lost: A holds the remote bytes, the copy ours, B survived with the remote change
    tree = remote_under(fake, "s4")
    assert sorted(tree) == sorted(["A.txt", copy, "B.txt", "C.txt"]), sorted(tree)
    assert fake.content("s4/A.txt") == remote_a
    assert fake.content("s4/" + copy) == local_a
    assert fake.content("s4/B.txt") == remote_b
    assert fake.content("s4/C.txt") == b"untouched\n"
    # the mount shows the same: B reappears, A turns into the remote version
    wait_until(lambda: _reads(m.p("s4/B.txt")) == remote_b, LAND, "B.txt to reappear in the mount")
    wait_until(lambda: _reads(m.p("s4/A.txt")) == remote_a, LAND, "A.txt to show the remote bytes")
    # the copy is on the service; its status says why it exists (documented: "conflict")
    wait_until(lambda: xattr(m.p("s4/" + copy), "status") == "conflict", LAND,
               "the conflict copy to say conflict")
    assert read_back(m.p("s4/" + copy)) == local_a
    assert sorted(os.listdir(m.p("s4"))) == sorted(tree)
    for name in ("A.txt", "B.txt", "C.txt"):
        wait_until(lambda: xattr(m.p("s4/" + name), "status") == "clean", LAND, name + " to be clean")
    # one log line says why B is back
    lines = wait_until(lambda: log_lines_matching(m.stderr_text(), r"B\.txt"), 10, "a log line about B.txt")
    assert len(lines) == 1, lines


def test_kill9_while_offline_then_remount_offline(fake, mounter, env, outage):
    seed(fake, {"s5/cached.txt": b"cached before the outage\n", "s5/victim.txt": b"deleted offline\n"})
    m = mount(mounter)
    warm(m, "s5")

    outage.go_down()
    bounded(lambda: os.mkdir(m.p("s5/q")), "mkdir")
    write(m.p("s5/q/new.txt"), b"queued\n")
    bounded(lambda: os.rename(m.p("s5/cached.txt"), m.p("s5/q/moved.txt")), "move")
    write(m.p("s5/q/moved.txt"), b"appended offline\n", mode="ab")
    bounded(lambda: os.unlink(m.p("s5/victim.txt")), "unlink")
    big = pattern(2 * MIB + 5, 702)
    write(m.p("s5/big.bin"), big)
    files = {"q/new.txt": b"queued\n", "q/moved.txt": b"cached before the outage\nappended offline\n",
             "big.bin": big}
    folders = {"q"}
    # every call returned: the journal holds them; the daemon dies with all of it queued
    kill_daemon(m)
    assert meta_db_integrity(env) == "ok"
    assert "s5/q" not in server_tree(fake)

    # still down: the mount comes up from the cache, the queued state visible
    m2 = mount(mounter)
    assert_mount_tree(m2, "s5", files, folders)

    outage.come_back()
    wait_server_tree(fake, "s5", files, folders)
    wait_settled(m2.p("s5"), timeout=LAND)
    for rel, data in files.items():
        assert fake.content("s5/" + rel) == data, rel
    assert_mount_tree(m2, "s5", files, folders)
    no_conflict_names(fake)


def test_uncached_read_fails_fast_offline_and_works_after_return(fake, mounter, outage):
    never = pattern(200000, 703)
    seed(fake, {"s6/never.bin": never, "s6/cached.txt": b"in the cache\n"})
    m = mount(mounter, expect_errors=[r"never\.bin"])
    assert sorted(os.listdir(m.p("s6"))) == ["cached.txt", "never.bin"]
    assert read_back(m.p("s6/cached.txt")) == b"in the cache\n"
    assert os.stat(m.p("s6/never.bin")).st_size == len(never)

    outage.go_down()
    took = read_fails_with_eio(m.p("s6/never.bin"))
    assert took < deadline(OP_BOUND), took
    assert read_back(m.p("s6/cached.txt")) == b"in the cache\n"
    lines = wait_until(lambda: log_lines_matching(m.stderr_text(), r"never\.bin"), 10,
                       "a log line about the failed read")
    assert len(lines) == 1, lines

    outage.come_back()
    # no remount: the return is noticed and the read works
    wait_until(lambda: _reads(m.p("s6/never.bin")) == never, LAND, "never.bin to read after the return")
    assert len(log_lines_matching(m.stderr_text(), r"never\.bin")) == 1
