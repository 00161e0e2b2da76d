"""Write with ordinary Unix tools: every change reaches the fake drive (names,
sizes, quickXorHash, bytes) and nothing local is lost on a refused input."""

import errno
import io
import os
import re
import shutil
import subprocess
import tarfile
import time
from calendar import timegm

import pytest

from helpers import (MIB, VALGRIND, assert_remote_tree, binary_has_sanitizer, deadline, local_tree,
                     log_lines_matching, message_lines, pattern, pattern_chunks, pattern_range, qxhash,
                     recycle_bin, remote_under, rss_anon_kib, versions, wait_equal, wait_gone, wait_landed,
                     wait_settled, wait_until, xattr)

BIG_REMOTE = "remote/big.bin"
BIG_REMOTE_SIZE = 6 * MIB
REMOTE_FILES = {
    "remote/small.txt": "a small remote file\n",
    "remote/config.txt": "name = foo\nmode = foo bar\nother = baz\n",
    "remote/log.txt": "line 1\n",
    "remote/sub/x.txt": "x in sub\n",
    "remote/sub/y.txt": "y in sub\n",
    "docs/note.txt": "the original note\n" * 20,
    "Full/a.txt": "full folder file\n",
    "Full/Inner/b.txt": "inner file\n",
}


def seed(fake):
    tree = [{"path": p, "content": c, "mtime": "2022-02-02T02:02:02Z"} for p, c in REMOTE_FILES.items()]
    tree.append({"path": BIG_REMOTE, "content": {"size": BIG_REMOTE_SIZE, "seed": 31}})
    tree.append({"path": "remote/big2.bin", "content": {"size": BIG_REMOTE_SIZE, "seed": 32}})
    tree.append({"path": "docs/x.odt", "content": {"size": 150000, "seed": 33}})
    tree.append({"path": "Empty", "folder": True})
    fake.seed(tree)
    return fake.dump_by_path()


@pytest.fixture
def tree(fake):
    return seed(fake)


@pytest.fixture
def mnt(tree, mounter, request):
    mark = request.node.get_closest_marker("expect_errors")
    return mounter.mount(expect_errors=list(mark.args) if mark else [])


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def sh(cmd, cwd=None, env=None, timeout=60, check=True):
    r = subprocess.run(cmd, shell=isinstance(cmd, str), cwd=cwd and str(cwd), env=env, capture_output=True,
                       timeout=deadline(timeout))
    if check:
        assert r.returncode == 0, "%r failed (%d):\n%s%s" % (cmd, r.returncode, r.stdout.decode(errors="replace"),
                                                             r.stderr.decode(errors="replace"))
    return r


def iso(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def epoch(iso_text):
    return timegm(time.strptime(iso_text[:19], "%Y-%m-%dT%H:%M:%S"))


def stat_requests(fake, *labels):
    s = fake.stats()
    return sum(s["requests"].get(l, 0) for l in labels)


def errno_of(fn, *args):
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return 0


# ------------------------------------------------------------- copy trees
def make_mixed_tree(root):
    files = {
        "a.txt": b"hello\n",
        "empty.txt": b"",
        "sub/b.bin": pattern(100000, 1),
        "sub/deeper/leaf.txt": b"deep leaf\n" * 3,
        "sub/four.bin": pattern(4 * MIB, 2),            # the simple-PUT limit
        "sub/four+1.bin": pattern(4 * MIB + 1, 3),      # just over: an upload session
        "big.bin": pattern(6 * MIB, 4),                 # upload session, 10 MiB chunks or less
        "Ünïcödé/日本語 ファイル.txt": "日本語のテキスト\n".encode(),
        "emoji 😀 name.txt": b"emoji\n",
        "with space & #hash%.txt": b"odd characters\n",
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (root / "empty dir").mkdir()
    (root / "sub" / "empty sub").mkdir()
    return files


@pytest.mark.valgrind
def test_cp_r_mixed_tree(tree, mnt, fake, env):
    src = env.base / "src" / "tree"
    src.mkdir(parents=True)
    files = make_mixed_tree(src)
    sh(["cp", "-r", str(src), mnt.p("")])
    wait_landed(fake, {"tree/" + k: v for k, v in files.items()}, timeout=90, what="cp -r to land")
    wait_until(lambda: {"tree/empty dir", "tree/sub/empty sub"} <= set(fake.dump_by_path()), 30,
               "the empty folders")
    assert_remote_tree(fake, src, "tree")
    # read back through the mount: cmp -r
    sh(["diff", "-r", "--no-dereference", str(src), mnt.p("tree")])
    wait_settled(mnt.p("tree"))
    dump = fake.dump_by_path()
    for rel in files:
        p = mnt.p("tree/" + rel)
        rec = dump["tree/" + rel]
        assert xattr(p, "id") == rec["id"], rel
        assert xattr(p, "quickxorhash") == rec["quickXorHash"], rel
        assert os.stat(p).st_size == rec["size"], rel
    # files over 4 MiB used upload sessions; no placeholder was uploaded
    # ahead of the real content (a non-empty file has no empty version)
    assert stat_requests(fake, "POST createUploadSession") >= 2
    for rel, data in files.items():
        sizes = [v["size"] for v in versions(fake, "tree/" + rel)]
        if data:
            assert 0 not in sizes, "%s: an empty placeholder was uploaded first (versions %r)" % (rel, sizes)


def test_xattrs_after_upload(tree, mnt, fake):
    fake.faults({"rules": [{"match": "PUT content", "stall_ms": 1500, "times": 1}]})
    p = mnt.p("fresh.txt")
    data = b"fresh content\n" * 100
    write(p, data)
    st = xattr(p, "status")
    assert st in ("dirty", "uploading", "clean"), st
    assert st != "clean", "status was clean while the upload was still stalled on the server"
    dump = wait_landed(fake, {"fresh.txt": data})
    wait_settled(mnt.p(""))
    rec = dump["fresh.txt"]
    wait_until(lambda: xattr(p, "id") == rec["id"], 10, "user.onedrive.id to take the real id")
    assert not xattr(p, "id").startswith("local:")
    assert xattr(p, "etag") == fake.dump_by_path()["fresh.txt"]["eTag"]
    assert xattr(p, "quickxorhash") == rec["quickXorHash"] == qxhash(data)
    assert xattr(p, "status") == "clean"
    # a remote file that was never touched
    r = tree["remote/small.txt"]
    assert xattr(mnt.p("remote/small.txt"), "id") == r["id"]
    assert xattr(mnt.p("remote/small.txt"), "status") == "clean"


# ------------------------------------------------------------ mv and rm
def test_mv_within_and_across_folders_keeps_ids(tree, mnt, fake):
    os.mkdir(mnt.p("other"))
    fresh = b"fresh file\n"
    write(mnt.p("fresh.txt"), fresh)
    wait_landed(fake, {"fresh.txt": fresh})
    wait_settled(mnt.p(""))
    ids = {p: xattr(mnt.p(p), "id") for p in ("remote/small.txt", "remote/config.txt", "remote/sub",
                                              "fresh.txt", BIG_REMOTE)}
    assert ids["remote/small.txt"] == tree["remote/small.txt"]["id"]
    assert ids["remote/sub"] == tree["remote/sub"]["id"]
    big = fake.content(BIG_REMOTE)
    fake.stats_reset()
    moves = [("remote/small.txt", "remote/renamed.txt"),           # rename in place
             ("remote/config.txt", "other/config.txt"),            # move
             ("remote/sub", "other/sub2"),                         # folder: move + rename
             ("fresh.txt", "other/fresh2.txt"),                    # an uploaded new file
             (BIG_REMOTE, "other/Big.BIN")]                        # move + case change
    for a, b in moves:
        sh(["mv", mnt.p(a), mnt.p(b)])
    want = {b: ids[a] for a, b in moves}
    want["other/sub2/x.txt"] = tree["remote/sub/x.txt"]["id"]

    def moved():
        d = fake.dump_by_path()
        return all(d.get(p, {}).get("id") == i for p, i in want.items()) and \
            not any(a in d for a, _b in moves)
    wait_until(moved, 30, "the moves to reach the server")
    for a, b in moves:
        assert xattr(mnt.p(b), "id") == ids[a], b
        assert not os.path.exists(mnt.p(a)), a
    assert read(mnt.p("other/Big.BIN")) == fake.content("other/Big.BIN") == big
    assert fake.content("remote/renamed.txt") == REMOTE_FILES["remote/small.txt"].encode()
    assert fake.content("other/sub2/y.txt") == REMOTE_FILES["remote/sub/y.txt"].encode()
    assert fake.content("other/fresh2.txt") == fresh
    # renames only: no content re-uploaded, nothing deleted and re-created
    assert stat_requests(fake, "PUT content", "POST createUploadSession", "DELETE item") == 0
    assert recycle_bin(fake) == []


def test_rm_r(tree, mnt, fake):
    write(mnt.p("remote/sub/new.txt"), b"new\n")
    wait_landed(fake, {"remote/sub/new.txt": b"new\n"})
    sh(["rm", "-r", mnt.p("remote")])
    assert not os.path.exists(mnt.p("remote"))
    wait_gone(fake, ["remote", "remote/small.txt", "remote/sub/new.txt"])
    assert not any(p.startswith("remote/") for p in fake.dump_by_path())
    # deleted into the recycle bin, not permanently
    binned = {e["name"] for e in recycle_bin(fake)}
    assert "remote" in binned or "small.txt" in binned, binned
    assert stat_requests(fake, "POST permanentDelete") == 0
    # the rest is untouched
    assert fake.content("docs/note.txt") == REMOTE_FILES["docs/note.txt"].encode()


def test_unlink_of_local_only_file_makes_no_request(tree, mnt, fake):
    fake.stats_reset()
    p = mnt.p("scratch.tmp")
    fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"scratch data\n")
    os.unlink(p)
    os.close(fd)
    # a create that was never uploaded: dropped locally, no request at all
    write(mnt.p("marker.txt"), b"marker\n")
    wait_landed(fake, {"marker.txt": b"marker\n"})
    assert "scratch.tmp" not in fake.dump_by_path()
    assert stat_requests(fake, "DELETE item") == 0
    assert stat_requests(fake, "PUT content") == 1, fake.stats()["requests"]
    assert not os.path.exists(p)


def test_mkdir_rmdir(tree, mnt, fake):
    os.mkdir(mnt.p("newdir"))
    wait_until(lambda: fake.dump_by_path().get("newdir", {}).get("folder"), 20, "newdir on the server")
    assert errno_of(os.mkdir, mnt.p("NewDir")) == errno.EEXIST
    os.makedirs(mnt.p("newdir/a/b"))
    wait_until(lambda: "newdir/a/b" in fake.dump_by_path(), 20, "newdir/a/b on the server")
    # an existing name in another case in a folder never listed before
    assert errno_of(os.mkdir, mnt.p("Full/INNER")) == errno.EEXIST
    # non-empty folders: one never listed, one created here
    assert errno_of(os.rmdir, mnt.p("Full")) == errno.ENOTEMPTY
    assert errno_of(os.rmdir, mnt.p("newdir")) == errno.ENOTEMPTY
    os.rmdir(mnt.p("newdir/a/b"))
    os.rmdir(mnt.p("Empty"))
    wait_gone(fake, ["newdir/a/b", "Empty"])
    d = fake.dump_by_path()
    assert d["newdir/a"]["folder"] and d["newdir"]["folder"]
    assert [p for p in d if p.lower() == "newdir"] == ["newdir"]
    # nothing lost
    assert fake.content("Full/a.txt") == REMOTE_FILES["Full/a.txt"].encode()
    assert fake.content("Full/Inner/b.txt") == REMOTE_FILES["Full/Inner/b.txt"].encode()
    assert read(mnt.p("Full/Inner/b.txt")) == REMOTE_FILES["Full/Inner/b.txt"].encode()
    assert sorted(os.listdir(mnt.p(""))) == sorted(["remote", "docs", "Full", "newdir"])


# ------------------------------------------------------------ bulk tools
def test_tar_xf_1000_small_files(tree, mnt, fake, env):
    base_mtime = 1600000000
    files = {"t/d%02d/f%03d.txt" % (i // 100, i): ("file %d\n" % i).encode() * (i % 7 + 1) for i in range(1000)}
    tarball = env.base / "many.tar"
    with tarfile.open(str(tarball), "w") as tf:
        for i, (rel, data) in enumerate(sorted(files.items())):
            ti = tarfile.TarInfo(rel)
            ti.size = len(data)
            ti.mtime = base_mtime + i
            ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(data))
    t0 = time.monotonic()
    r = sh(["tar", "xf", str(tarball), "-C", mnt.p("")], timeout=120)
    assert r.stderr == b"", r.stderr
    wait_landed(fake, files, timeout=150, what="1000 files from tar")
    took = time.monotonic() - t0
    # a simple PUT cannot carry a time: the PATCH that sets tar's follows it,
    # so the times are checked once every upload has settled
    wait_settled(mnt.p("t"), timeout=60)
    dump = fake.dump_by_path()
    for i, rel in enumerate(sorted(files)):
        assert epoch(dump[rel]["mtime"]) == base_mtime + i, rel
    local, _ = local_tree(mnt.p("t"))
    assert local == {k[2:]: v for k, v in files.items()}
    print("tar xf of 1000 files landed in %.1fs" % took)


def test_rsync_a_twice_transfers_nothing_the_second_time(tree, mnt, fake, env):
    if shutil.which("rsync") is None:
        pytest.skip("rsync is not installed (add it to .ci/run's package list)")
    src = env.base / "rs"
    src.mkdir()
    files = make_mixed_tree(src)
    r = sh(["rsync", "-a", str(src) + "/", mnt.p("rs") + "/"], timeout=120)
    wait_landed(fake, {"rs/" + k: v for k, v in files.items()}, timeout=90)
    wait_settled(mnt.p("rs"))
    assert_remote_tree(fake, src, "rs")
    dump = fake.dump_by_path()
    times = {rel: (os.stat(str(src / rel)).st_mtime_ns, os.stat(mnt.p("rs/" + rel)).st_mtime_ns,
                   dump["rs/" + rel]["mtime"]) for rel in files}
    fake.stats_reset()
    r = sh(["rsync", "-a", "-i", "--stats", str(src) + "/", mnt.p("rs") + "/"], timeout=120)
    out = r.stdout.decode()
    assert "Number of regular files transferred: 0" in out, "%s\nmtimes (source ns, mount ns, server) " \
        "before the second run:\n%s" % (out, "\n".join("%s: %r" % kv for kv in sorted(times.items())))
    assert stat_requests(fake, "PUT content", "POST createUploadSession", "PUT upload") == 0
    # rsync's temporary names never stay on the server
    assert not [p for p in remote_under(fake, "rs") if os.path.basename(p).startswith(".")]


def test_sed_i_keeps_the_item(tree, mnt, fake):
    p = mnt.p("remote/config.txt")
    old = tree["remote/config.txt"]
    sh(["sed", "-i", "s/foo/bar/g", p])
    want = REMOTE_FILES["remote/config.txt"].replace("foo", "bar").encode()
    assert read(p) == want
    dump = wait_landed(fake, {"remote/config.txt": want})
    assert dump["remote/config.txt"]["id"] == old["id"], "sed -i replaced the item instead of updating it"
    assert len(versions(fake, "remote/config.txt")) >= 2
    assert [x for x in os.listdir(mnt.p("remote")) if x.startswith("sed")] == []
    assert [x for x in remote_under(fake, "remote") if x.startswith("sed")] == []


@pytest.mark.valgrind
def test_vim_style_save_keeps_id_and_adds_a_version(tree, mnt, fake):
    """Swap file, temp file written and fsynced, renamed over the original."""
    path = "docs/note.txt"
    orig = tree[path]
    assert read(mnt.p(path)) == REMOTE_FILES[path].encode()
    swp = mnt.p("docs/.note.txt.swp")
    with open(swp, "wb") as f:
        f.write(b"b0VIM 9.0" + b"\0" * 4000)
    new = b"the edited note\n" * 30
    tmp = mnt.p("docs/note.txt.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    os.write(fd, new)
    os.fsync(fd)
    os.close(fd)
    os.rename(tmp, mnt.p(path))
    os.unlink(swp)
    assert read(mnt.p(path)) == new
    dump = wait_landed(fake, {path: new})
    assert dump[path]["id"] == orig["id"], "the save replaced the item (id %s -> %s)" % (orig["id"],
                                                                                       dump[path]["id"])
    vs = versions(fake, path)
    assert len(vs) >= 2 and vs[0]["quickXorHash"] == qxhash(new)
    assert REMOTE_FILES[path].encode() in [fake.server.item(orig["id"]).versions[i].content.to_bytes()
                                           for i in range(len(vs))]
    wait_gone(fake, ["docs/.note.txt.swp", "docs/note.txt.tmp"])
    assert sorted(os.listdir(mnt.p("docs"))) == ["note.txt", "x.odt"]
    wait_settled(mnt.p("docs"))
    assert xattr(mnt.p(path), "id") == orig["id"]


def test_real_vim_save(tree, mnt, fake, env):
    if shutil.which("vim") is None:
        pytest.skip("vim is not installed (add vim-tiny or vim to .ci/run's package list)")
    path = "docs/note.txt"
    r = sh(["vim", "-u", "NONE", "-i", "NONE", "-N", "-es", "-c", "%s/original/edited/", "-c", "wq",
            mnt.p(path)], env=env.environ, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    want = REMOTE_FILES[path].replace("original", "edited").encode()
    assert read(mnt.p(path)) == want
    wait_landed(fake, {path: want})
    # no swap file, vim's 4913 probe or backup left anywhere
    wait_equal(lambda: sorted(remote_under(fake, "docs")), ["note.txt", "x.odt"], 30,
               "only note.txt and x.odt in docs on the server")
    assert sorted(os.listdir(mnt.p("docs"))) == ["note.txt", "x.odt"]


def test_libreoffice_style_save(tree, mnt, fake):
    """Lock file, temp file, rename over the document, lock file removed."""
    doc = "docs/x.odt"
    orig = tree[doc]
    lock = mnt.p("docs/.~lock.x.odt#")
    lock_data = b"Fake User,user,host,29.11.2026 02:30,file:///home/user/.config/libreoffice/4;"
    write(lock, lock_data)
    assert read(mnt.p(doc)) == fake.content(doc)
    new = pattern(180000, 44)
    tmp = mnt.p("docs/lu4242ab7c.tmp")
    fake.stats_reset()
    with open(tmp, "wb") as f:
        f.write(new[:100000])
        f.write(new[100000:])
    os.rename(tmp, mnt.p(doc))
    os.unlink(lock)
    assert read(mnt.p(doc)) == new
    dump = wait_landed(fake, {doc: new})
    assert dump[doc]["id"] == orig["id"], "the save replaced the item"
    assert len(versions(fake, doc)) >= 2
    wait_settled(mnt.p("docs"))
    wait_gone(fake, ["docs/.~lock.x.odt#"])
    assert sorted(remote_under(fake, "docs")) == ["note.txt", "x.odt"]
    # the temp file never went up under its own name: not on the server, not
    # in the recycle bin, and its bytes crossed the wire once
    names = {e["name"] for e in recycle_bin(fake)}
    assert "lu4242ab7c.tmp" not in names, names
    received = fake.stats()["bytes_received_content"]
    assert received <= len(new) + len(lock_data), "received %d bytes for a %d-byte save" % (received, len(new))


def test_git_in_the_mount(tree, fake, env, mounter):
    if shutil.which("git") is None:
        pytest.skip("git is not installed (add git to .ci/run's package list)")
    m = mounter.mount(expect_errors=[r"symlink|link|special file|mknod"])
    repo = m.p("repo")
    os.mkdir(repo)
    genv = dict(env.environ, GIT_AUTHOR_NAME="T", GIT_AUTHOR_EMAIL="t@example.com",
                GIT_COMMITTER_NAME="T", GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_NOSYSTEM="1")
    git = ["git", "-c", "safe.directory=*", "-c", "init.defaultBranch=main", "-C", repo]
    sh(git + ["init", "-q"], env=genv)
    write(os.path.join(repo, "README"), b"hello git\n")
    os.mkdir(os.path.join(repo, "src"))
    write(os.path.join(repo, "src", "main.c"), b"int main(void) { return 0; }\n")
    write(os.path.join(repo, "data.bin"), pattern(300000, 5))
    sh(git + ["add", "-A"], env=genv)
    sh(git + ["commit", "-q", "-m", "first"], env=genv)
    r = sh(git + ["status", "--porcelain"], env=genv)
    assert r.stdout == b"", r.stdout
    write(os.path.join(repo, "README"), b"hello git, again\n")
    sh(git + ["commit", "-q", "-a", "-m", "second"], env=genv)
    r = sh(git + ["log", "--oneline"], env=genv)
    assert len(r.stdout.splitlines()) == 2, r.stdout
    sh(git + ["fsck", "--strict"], env=genv, timeout=120)
    wait_settled(repo, timeout=90)
    files, _ = local_tree(repo)
    wait_landed(fake, {"repo/" + k: v for k, v in files.items()}, timeout=60)
    assert fake.content("repo/README") == b"hello git, again\n"
    # the repository survives a remount and is still clean
    m2 = mounter.remount(m)
    assert m2.path == m.path
    r = sh(git + ["status", "--porcelain"], env=genv)
    assert r.stdout == b"", r.stdout
    sh(git + ["fsck", "--strict"], env=genv, timeout=120)
    assert not [p for p in remote_under(fake, "repo/.git") if p.endswith(".lock")]


# --------------------------------------------------------- partial writes
def test_appends(tree, mnt, fake):
    p = mnt.p("appended.txt")
    sh("echo one >> '%s'; echo two >> '%s'" % (p, p))
    with open(p, "ab") as f:
        f.write(b"three\n")
        f.flush()
        f.write(b"four\n")
    sh("echo more >> '%s'" % mnt.p("remote/log.txt"))
    want = {"appended.txt": b"one\ntwo\nthree\nfour\n", "remote/log.txt": b"line 1\nmore\n"}
    for k, v in want.items():
        assert read(mnt.p(k)) == v, k
    wait_landed(fake, want)
    assert fake.dump_by_path()["remote/log.txt"]["id"] == tree["remote/log.txt"]["id"]


def test_write_into_middle_of_remote_file_is_lazy(tree, mnt, fake, env):
    size = BIG_REMOTE_SIZE
    orig = fake.content(BIG_REMOTE)
    patch = b"PATCHED!" * 1000
    off = 3000123
    fake.stats_reset()
    fd = os.open(mnt.p(BIG_REMOTE), os.O_WRONLY)
    try:
        assert os.pwrite(fd, patch, off) == len(patch)
        sent = fake.stats()["bytes_sent_content"]
        print("downloaded before the write returned: %d bytes" % sent)
        assert sent < size // 2, "the write downloaded %d of %d bytes first" % (sent, size)
        assert os.fstat(fd).st_size == size
        os.fsync(fd)
        # fsync returned: the server has the new bytes already
        want = orig[:off] + patch + orig[off + len(patch):]
        d = fake.dump_by_path()[BIG_REMOTE]
        assert d["size"] == size and d["quickXorHash"] == qxhash(want)
    finally:
        os.close(fd)
    assert fake.content(BIG_REMOTE) == want
    assert d["id"] == tree[BIG_REMOTE]["id"]
    # the same with dd conv=notrunc on the other remote file
    orig2 = fake.content("remote/big2.bin")
    pfile = env.base / "patch.bin"
    pfile.write_bytes(patch)
    fake.stats_reset()
    sh(["dd", "if=%s" % pfile, "of=%s" % mnt.p("remote/big2.bin"), "bs=4096", "seek=100", "conv=notrunc",
        "status=none"])
    want2 = orig2[:409600] + patch + orig2[409600 + len(patch):]
    assert read(mnt.p("remote/big2.bin")) == want2
    wait_landed(fake, {"remote/big2.bin": want2})


def test_truncate_up_and_down(tree, mnt, fake):
    big = fake.content(BIG_REMOTE)
    small = REMOTE_FILES["remote/config.txt"].encode()
    sh(["truncate", "-s", str(BIG_REMOTE_SIZE + MIB + 3), mnt.p(BIG_REMOTE)])
    sh(["truncate", "-s", "10", mnt.p("remote/config.txt")])
    write(mnt.p("local.bin"), pattern(5000, 6))
    sh(["truncate", "-s", "100", mnt.p("local.bin")])
    sh(["truncate", "-s", "9000", mnt.p("local.bin")])
    write(mnt.p("local2.bin"), b"0123456789")
    with open(mnt.p("local2.bin"), "r+b") as f:
        f.truncate(4)
        f.seek(0, 2)
        f.write(b"xy")
    with open(mnt.p("remote/log.txt"), "r+b") as f:
        f.truncate(0)
    want = {
        BIG_REMOTE: big + b"\0" * (MIB + 3),
        "remote/config.txt": small[:10],
        "local.bin": pattern(5000, 6)[:100] + b"\0" * 8900,
        "local2.bin": b"0123xy",
        "remote/log.txt": b"",
    }
    for k, v in want.items():
        assert os.stat(mnt.p(k)).st_size == len(v), k
        assert read(mnt.p(k)) == v, k
    dump = wait_landed(fake, want, timeout=60)
    for k in (BIG_REMOTE, "remote/config.txt", "remote/log.txt"):
        assert dump[k]["id"] == tree[k]["id"], k


@pytest.mark.slow
def test_200_mib_file_through_an_upload_session(tree, mnt, fake):
    size = 200 * MIB
    p = mnt.p("huge.bin")
    from fakegraph.qxhash import QuickXorHash
    h = QuickXorHash()
    t0 = time.monotonic()
    with open(p, "wb") as f:
        for part in pattern_chunks(size, 7, chunk=MIB):
            f.write(part)
            h.update(part)
    want_qx = h.b64digest()
    check_rss = not VALGRIND and not binary_has_sanitizer()
    peak = [0]

    def landed():
        peak[0] = max(peak[0], rss_anon_kib(mnt.proc.pid))
        rec = fake.dump_by_path().get("huge.bin")
        return rec is not None and rec["size"] == size and rec["quickXorHash"] == want_qx
    wait_until(landed, 120, "the 200 MiB file to land", interval=0.2)
    took = time.monotonic() - t0
    st = fake.stats()
    assert st["requests"].get("POST createUploadSession", 0) == 1
    assert st["requests"].get("PUT upload", 0) == 20         # the default upload_chunk is 10 MiB
    assert st["bytes_received_content"] == size, "bytes were sent more than once"
    item = fake.server.item("/huge.bin")
    for off in (0, 327679, 10 * MIB - 1, 100 * MIB + 12345, size - 70000):
        assert item.content.read(off, 65536) == pattern_range(size, 7, off, 65536), off
    if check_rss:
        assert peak[0] < 100 * 1024, "daemon RssAnon peaked at %d KiB during the upload" % peak[0]
    wait_settled(mnt.p(""), timeout=30)
    print("200 MiB written and uploaded in %.1fs (RssAnon peak %d KiB)" % (took, peak[0]))


# ------------------------------------------------------------ metadata
def test_touch_d_sets_server_mtime(tree, mnt, fake):
    stamp = "2020-01-02 03:04:05 UTC"
    want = epoch("2020-01-02T03:04:05")
    write(mnt.p("touched.txt"), b"touched\n")
    sh(["touch", "-d", stamp, mnt.p("touched.txt")])
    dump = wait_landed(fake, {"touched.txt": b"touched\n"})
    wait_until(lambda: fake.dump_by_path()["touched.txt"]["mtime"] == iso(want), 20,
               "the new file's mtime on the server")
    wait_settled(mnt.p(""))
    fake.stats_reset()
    sh(["touch", "-d", stamp, mnt.p("remote/small.txt")])
    wait_until(lambda: fake.dump_by_path()["remote/small.txt"]["mtime"] == iso(want), 20,
               "the remote file's mtime on the server")
    assert stat_requests(fake, "PATCH item") == 1
    assert stat_requests(fake, "PUT content", "POST createUploadSession") == 0
    for rel in ("touched.txt", "remote/small.txt"):
        assert int(os.stat(mnt.p(rel)).st_mtime) == want, rel
    assert fake.content("remote/small.txt") == REMOTE_FILES["remote/small.txt"].encode()
    assert dump["touched.txt"]["id"] == fake.dump_by_path()["touched.txt"]["id"]


def test_chmod_chown_cp_p_succeed_without_effect(tree, mnt, fake, env):
    p = mnt.p("remote/small.txt")
    before = os.stat(p)
    fake.stats_reset()
    os.chmod(p, 0o600)
    os.chown(p, os.getuid(), os.getgid())
    sh(["chmod", "-R", "go-w", mnt.p("remote")])
    assert os.stat(p).st_size == before.st_size
    assert stat_requests(fake, "PATCH item", "PUT content", "DELETE item") == 0
    # cp -p from outside keeps the time on the server
    src = env.base / "keep.txt"
    src.write_bytes(b"keep my time\n")
    os.utime(str(src), (1500000000, 1500000000))
    sh(["cp", "-p", str(src), mnt.p("keep.txt")])
    # cp -p inside the mount
    sh(["cp", "-p", mnt.p("remote/config.txt"), mnt.p("config copy.txt")])
    dump = wait_landed(fake, {"keep.txt": b"keep my time\n",
                              "config copy.txt": REMOTE_FILES["remote/config.txt"].encode()})
    wait_until(lambda: fake.dump_by_path()["keep.txt"]["mtime"] == iso(1500000000), 20, "keep.txt's mtime")
    wait_until(lambda: fake.dump_by_path()["config copy.txt"]["mtime"] == tree["remote/config.txt"]["mtime"],
               20, "the copy's mtime")
    assert int(os.stat(mnt.p("keep.txt")).st_mtime) == 1500000000
    assert dump["config copy.txt"]["id"] != tree["remote/config.txt"]["id"]


@pytest.mark.expect_errors(r"symlink|symbolic|link|special|mknod|fifo|'sym'|'hard'|'fifo'")
def test_symlink_link_mknod_are_eperm(tree, mnt, fake):
    fake.stats_reset()
    before = fake.dump_by_path()
    ops = [("sym", os.symlink, ("remote/small.txt", mnt.p("sym"))),
           ("hard", os.link, (mnt.p("remote/small.txt"), mnt.p("hard"))),
           ("fifo", os.mkfifo, (mnt.p("fifo"),))]
    for name, fn, args in ops:
        n = len(message_lines(mnt.stderr_text()))
        assert errno_of(fn, *args) == errno.EPERM, name
        assert not os.path.lexists(mnt.p(name)), name
        # one log line says why
        wait_until(lambda: len(message_lines(mnt.stderr_text())) > n, 10, "a log line about '%s'" % name)
        assert len(message_lines(mnt.stderr_text())) == n + 1, mnt.stderr_text()
    assert fake.dump_by_path().keys() == before.keys()
    assert stat_requests(fake, "PUT content", "POST children", "PATCH item", "POST createUploadSession") == 0
    assert read(mnt.p("remote/small.txt")) == REMOTE_FILES["remote/small.txt"].encode()


# ------------------------------------------------------------ bad names
BAD_NAMES = ["a:b", "CON", "x.", "~$x", "_vti_x", "n" * 256]


@pytest.mark.expect_errors(r"'a:b'|'CON'|'x\.'|'~\$x'|'_vti_x'|'nnnnnnnn|too long|400")
@pytest.mark.valgrind
def test_names_onedrive_refuses_are_einval(tree, mnt, fake):
    write(mnt.p("good.txt"), b"keep me\n")
    wait_landed(fake, {"good.txt": b"keep me\n"})
    wait_settled(mnt.p(""))
    before = fake.dump_by_path()
    fake.stats_reset()
    for name in BAD_NAMES:
        allowed = (errno.EINVAL, errno.ENAMETOOLONG) if len(name) > 255 else (errno.EINVAL,)
        rx = re.escape("'" + name[:40])
        nlines = len(log_lines_matching(mnt.stderr_text(), rx))
        e = errno_of(os.open, mnt.p(name), os.O_CREAT | os.O_WRONLY, 0o644)
        assert e in allowed, "create %r: %s" % (name[:20], errno.errorcode.get(e, e))
        e2 = errno_of(os.mkdir, mnt.p(name))
        assert e2 in allowed, "mkdir %r: %s" % (name[:20], errno.errorcode.get(e2, e2))
        e3 = errno_of(os.rename, mnt.p("good.txt"), mnt.p(name))
        assert e3 in allowed, "rename to %r: %s" % (name[:20], errno.errorcode.get(e3, e3))
        if e == errno.EINVAL:
            # one line per refusal, naming the name (and so the rule)
            wait_until(lambda: len(log_lines_matching(mnt.stderr_text(), rx)) >= nlines + 3, 10,
                       "log lines about %r" % name[:20])
            assert len(log_lines_matching(mnt.stderr_text(), rx)) == nlines + 3, mnt.stderr_text()
        assert not os.path.lexists(mnt.p(name))
    # a name that is not valid UTF-8 cannot be sent to the service at all
    bad = os.fsencode(mnt.p("")) + b"/bad\xff\xfe.txt"
    assert errno_of(os.open, bad, os.O_CREAT | os.O_WRONLY, 0o644) == errno.EINVAL
    assert errno_of(os.mkdir, bad) == errno.EINVAL
    # a path over 400 characters
    deep = "/".join(["d" * 120] * 3)
    os.makedirs(mnt.p(deep))
    long_name = "f" * 60
    assert errno_of(os.open, mnt.p(deep + "/" + long_name), os.O_CREAT | os.O_WRONLY, 0o644) == errno.EINVAL
    assert errno_of(os.mkdir, mnt.p(deep + "/" + long_name)) == errno.EINVAL
    assert errno_of(os.rename, mnt.p("good.txt"), mnt.p(deep + "/" + long_name)) == errno.EINVAL
    wait_until(lambda: log_lines_matching(mnt.stderr_text(), "400|too long"), 10, "a line about the path length")
    # nothing created anywhere, nothing lost
    assert read(mnt.p("good.txt")) == b"keep me\n"
    after = fake.dump_by_path()
    new = set(after) - set(before)
    assert new == {"/".join(["d" * 120] * (i + 1)) for i in range(3)}, new
    assert fake.content("good.txt") == b"keep me\n"
    assert stat_requests(fake, "PUT content", "POST createUploadSession", "PATCH item") == 0
    assert sorted(os.listdir(mnt.p(""))) == sorted(["remote", "docs", "Full", "Empty", "good.txt", "d" * 120])


def test_names_differing_only_in_case(tree, mnt, fake):
    write(mnt.p("Report.txt"), b"first\n")
    assert errno_of(os.open, mnt.p("report.txt"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644) == errno.EEXIST
    assert errno_of(os.open, mnt.p("REPORT.TXT"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644) == errno.EEXIST
    # a negative lookup cached by the kernel must not let a twin through
    assert not os.path.exists(mnt.p("twin.txt"))
    write(mnt.p("Twin.txt"), b"twin\n")
    e = errno_of(os.open, mnt.p("twin.txt"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    assert e == errno.EEXIST
    # an existing remote name in another case
    assert errno_of(os.open, mnt.p("remote/SMALL.TXT"), os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                    0o644) == errno.EEXIST
    assert errno_of(os.mkdir, mnt.p("DOCS")) == errno.EEXIST
    wait_landed(fake, {"Report.txt": b"first\n", "Twin.txt": b"twin\n"})
    names = os.listdir(mnt.p(""))
    assert [n for n in names if n.lower() == "report.txt"] == ["Report.txt"]
    assert [n for n in names if n.lower() == "twin.txt"] == ["Twin.txt"]
    remote = [p for p in fake.dump_by_path() if "/" not in p]
    assert sorted(n for n in remote if n.lower() in ("report.txt", "twin.txt")) == ["Report.txt", "Twin.txt"]
    assert fake.content("remote/small.txt") == REMOTE_FILES["remote/small.txt"].encode()


# ---------------------------------------------------- more everyday writes
def test_cp_over_an_existing_file_keeps_the_item(tree, mnt, fake, env):
    src = env.base / "new.txt"
    src.write_bytes(b"replacement text\n")
    sh(["cp", str(src), mnt.p("remote/small.txt")])
    dump = wait_landed(fake, {"remote/small.txt": b"replacement text\n"})
    assert dump["remote/small.txt"]["id"] == tree["remote/small.txt"]["id"]
    assert len(versions(fake, "remote/small.txt")) == 2
    assert recycle_bin(fake) == []


def test_mv_over_an_existing_remote_file(tree, mnt, fake):
    sh(["mv", mnt.p("remote/sub/x.txt"), mnt.p("remote/small.txt")])
    want = REMOTE_FILES["remote/sub/x.txt"].encode()
    assert read(mnt.p("remote/small.txt")) == want
    assert not os.path.exists(mnt.p("remote/sub/x.txt"))
    wait_landed(fake, {"remote/small.txt": want})
    wait_gone(fake, ["remote/sub/x.txt"])
    wait_settled(mnt.p("remote"))
    assert sorted(os.listdir(mnt.p("remote/sub"))) == ["y.txt"]


def test_rename_folder_over_an_empty_folder(tree, mnt, fake):
    os.rename(mnt.p("remote/sub"), mnt.p("Empty"))
    assert sorted(os.listdir(mnt.p("Empty"))) == ["x.txt", "y.txt"]
    wait_until(lambda: fake.dump_by_path().get("Empty", {}).get("id") == tree["remote/sub"]["id"], 30,
               "the moved folder under the name 'Empty'")
    wait_gone(fake, ["remote/sub"])
    assert fake.content("Empty/x.txt") == REMOTE_FILES["remote/sub/x.txt"].encode()
    # a folder that is not empty is not replaced
    os.mkdir(mnt.p("dst"))
    write(mnt.p("dst/keep.txt"), b"keep\n")
    os.mkdir(mnt.p("srcdir"))
    assert errno_of(os.rename, mnt.p("srcdir"), mnt.p("dst")) == errno.ENOTEMPTY
    wait_landed(fake, {"dst/keep.txt": b"keep\n"})


def test_reads_see_own_writes_at_once(tree, mnt, fake):
    orig = fake.content(BIG_REMOTE)
    with open(mnt.p(BIG_REMOTE), "r+b") as f:
        f.seek(5 * MIB)
        f.write(b"XYZ")
        f.flush()
        f.seek(5 * MIB - 10)
        assert f.read(20) == orig[5 * MIB - 10:5 * MIB] + b"XYZ" + orig[5 * MIB + 3:5 * MIB + 10]
        # another process sees it too, before close
        r = sh(["dd", "if=%s" % mnt.p(BIG_REMOTE), "bs=1", "skip=%d" % (5 * MIB), "count=3", "status=none"])
        assert r.stdout == b"XYZ"
    want = orig[:5 * MIB] + b"XYZ" + orig[5 * MIB + 3:]
    wait_landed(fake, {BIG_REMOTE: want})


def test_sqlite_database_in_the_mount(tree, mnt, fake, env):
    import sqlite3
    os.mkdir(mnt.p("data"))
    con = sqlite3.connect(mnt.p("data/app.db"))
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    for tx in range(10):
        with con:
            con.executemany("INSERT INTO t (v) VALUES (?)", [("row %d-%d" % (tx, i),) for i in range(100)])
    con.close()
    wait_settled(mnt.p("data"), timeout=60)
    wait_equal(lambda: sorted(remote_under(fake, "data")), ["app.db"], 30, "only app.db in data on the server")
    local = read(mnt.p("data/app.db"))
    wait_landed(fake, {"data/app.db": local})
    copy = env.base / "copy.db"
    copy.write_bytes(fake.content("data/app.db"))
    c2 = sqlite3.connect(str(copy))
    try:
        assert c2.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c2.execute("SELECT count(*) FROM t").fetchone()[0] == 1000
    finally:
        c2.close()


def test_touch_creates_an_empty_file(tree, mnt, fake):
    fake.stats_reset()
    sh(["touch", mnt.p("empty.txt")])
    wait_landed(fake, {"empty.txt": b""})
    wait_settled(mnt.p(""))
    st = fake.stats()["requests"]
    assert st.get("PUT content", 0) == 1 and st.get("POST createUploadSession", 0) == 0, st
    assert versions(fake, "empty.txt")[0]["size"] == 0


@pytest.mark.expect_errors(r"'tree2/a:b\.txt'|'tree2/CON'")
def test_cp_r_with_a_refused_name(tree, mnt, fake, env):
    src = env.base / "tree2"
    src.mkdir()
    (src / "ok.txt").write_bytes(b"fine\n")
    (src / "a:b.txt").write_bytes(b"refused\n")
    (src / "CON").write_bytes(b"reserved\n")
    (src / "quote's (1) + a;b=c@d$e!f~g.txt").write_bytes(b"odd but allowed\n")
    r = sh(["cp", "-r", str(src), mnt.p("")], check=False)
    err = r.stderr.decode()
    # cp names the two refused files and says why; the rest lands
    assert r.returncode != 0
    assert "a:b.txt" in err and "CON" in err and "Invalid argument" in err, err
    want = {"tree2/ok.txt": b"fine\n", "tree2/quote's (1) + a;b=c@d$e!f~g.txt": b"odd but allowed\n"}
    wait_landed(fake, want)
    wait_settled(mnt.p("tree2"))
    assert sorted(remote_under(fake, "tree2")) == sorted(k[6:] for k in want)
    assert sorted(os.listdir(mnt.p("tree2"))) == sorted(k[6:] for k in want)
    assert (src / "a:b.txt").read_bytes() == b"refused\n"


def test_overwrite_big_remote_file_with_small_content(tree, mnt, fake, env):
    sh("printf 'tiny\\n' > '%s'" % mnt.p(BIG_REMOTE))
    sh(": > '%s'" % mnt.p("remote/big2.bin"))
    dump = wait_landed(fake, {BIG_REMOTE: b"tiny\n", "remote/big2.bin": b""})
    assert dump[BIG_REMOTE]["id"] == tree[BIG_REMOTE]["id"]
    assert dump["remote/big2.bin"]["id"] == tree["remote/big2.bin"]["id"]
    # and back to a big one over the small one, through a session
    big = pattern(5 * MIB + 3, 12)
    src = env.base / "big"
    src.write_bytes(big)
    sh(["cp", str(src), mnt.p("remote/small.txt")])
    dump = wait_landed(fake, {"remote/small.txt": big})
    assert dump["remote/small.txt"]["id"] == tree["remote/small.txt"]["id"]


def test_rename_over_a_large_remote_file(tree, mnt, fake):
    new = pattern(7 * MIB + 1, 13)
    tmp = mnt.p("remote/.big.bin.partial")
    write(tmp, new)
    os.rename(tmp, mnt.p(BIG_REMOTE))
    dump = wait_landed(fake, {BIG_REMOTE: new}, timeout=60)
    assert dump[BIG_REMOTE]["id"] == tree[BIG_REMOTE]["id"]
    assert len(versions(fake, BIG_REMOTE)) == 2
    wait_settled(mnt.p("remote"))
    assert ".big.bin.partial" not in os.listdir(mnt.p("remote"))
    assert not [p for p in remote_under(fake, "remote") if "partial" in p]


def test_utimens_close_to_now_is_kept(tree, mnt, fake):
    """A time a second or two before the upload (what rsync -a, cp -p and
    tar set for files made just now) must reach the server exactly: tools
    compare whole seconds."""
    want = {}
    for i in range(4):
        rel = "recent%d.txt" % i
        write(mnt.p(rel), b"recent %d\n" % i)
        t = int(time.time()) - 1 - (i % 2)
        os.utime(mnt.p(rel), (t, t))
        want[rel] = t
    wait_landed(fake, {rel: b"recent %d\n" % i for i, rel in enumerate(want)})
    wait_settled(mnt.p(""))
    d = fake.dump_by_path()
    got = {rel: (d[rel]["mtime"], int(os.stat(mnt.p(rel)).st_mtime)) for rel in want}
    assert got == {rel: (iso(t), t) for rel, t in want.items()}, "(server, mount) times: %r, want %r" % (
        got, want)


AGREEMENT_NAMES = ["con.txt", "Aux.c", "nul", "LPT1.txt", "com0", "com10", "console", ".lock", "x.lock",
                   "desktop.ini", "Desktop.INI", "~$", "a~$b", "foo_VTI_bar", "_vti", " lead", "trail ",
                   "tab\tname", "a|b", 'a"b', "a*b", "a?b", "a<b", "a>b", "a\\b", ".hidden", "..x", "x..y",
                   "#", "%20", "a;b", "n" * 255, "é" * 127, "日" * 85, "emoji 😀", "ends.", "ends. "]


@pytest.mark.expect_errors(r"cannot create")
def test_name_rules_agree_with_the_service(tree, mnt, fake):
    """Every name the mount accepts, the service accepts too (else the file
    would be stuck locally); every name it refuses, the service refuses."""
    from fakegraph import naming
    os.mkdir(mnt.p("n"))
    accepted = {}
    disagree = []
    for name in AGREEMENT_NAMES:
        try:
            naming.validate_name(name)
            naming.check_path_length(["n", name])
            service_ok = True
        except naming.InvalidName:
            service_ok = False
        e = errno_of(write, mnt.p("n/" + name), b"name test\n")
        if e == 0:
            accepted["n/" + name] = b"name test\n"
            if not service_ok:
                disagree.append("%r: the mount accepts it, the service refuses it" % name)
        elif e in (errno.EINVAL, errno.ENAMETOOLONG):
            if service_ok:
                disagree.append("%r: the mount refuses it (%s), the service accepts it" % (
                    name, errno.errorcode[e]))
        else:
            disagree.append("%r: %s" % (name, errno.errorcode.get(e, e)))
    assert not disagree, "\n".join(disagree)
    wait_landed(fake, accepted, timeout=60)
    wait_settled(mnt.p("n"))
