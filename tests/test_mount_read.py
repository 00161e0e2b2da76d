"""Browse and read: a mounted fake drive must look exactly like the server."""

import errno
import os
import stat
import subprocess
import time
import unicodedata
from calendar import timegm

import pytest

from helpers import children_rules, deadline, req_count, wait_until

MIB = 1 << 20
BIG = "Large/big file.bin"
BIG_SIZE = 20 * MIB
MANY = 450

SMALL_FILES = {
    "Documents/notes.txt": "Hello from the fake drive\n",
    "Documents/empty.txt": "",
    "Documents/with space.txt": "spaces in the name\n",
    "Documents/hash#name.txt": "a hash sign\n",
    "Documents/100% done.txt": "a percent sign\n",
    "Documents/Reports/2024/q1.txt": "quarter one\n" * 50,
    "Documents/Reports/2024/deep/nested/leaf.txt": "deep leaf\n",
    "Café/résumé.txt": "accents é è ü\n",
    "日本/日本語.txt": "日本語のテキスト\n",
    "top level.txt": "at the root\n",
}
GENERATED = {
    "Sizes/one.bin": (1, 11),
    "Sizes/page-1.bin": (4095, 12),
    "Sizes/page.bin": (4096, 13),
    "Sizes/page+1.bin": (4097, 14),
    "Sizes/block.bin": (40960, 15),
    "Sizes/odd.bin": (131073, 16),
    "Sizes/mib+7.bin": (MIB + 7, 17),
}
MTIMES = {
    "Documents/notes.txt": "2021-03-04T05:06:07Z",
    "Documents/Reports/2024/q1.txt": "2024-04-01T00:00:01Z",
    "Sizes/one.bin": "1999-12-31T23:59:59Z",
    "日本/日本語.txt": "2020-02-29T12:00:00Z",
}
EMPTY_FOLDERS = ["Empty folder", "Documents/Reports/empty sub"]


def seed_tree(fake):
    fake.config(page_size=200)
    tree = []
    for path, text in SMALL_FILES.items():
        tree.append({"path": path, "content": text})
    for path, (size, seed) in GENERATED.items():
        tree.append({"path": path, "content": {"size": size, "seed": seed}})
    tree.append({"path": BIG, "content": {"size": BIG_SIZE, "seed": 7}})
    for i in range(MANY):
        tree.append({"path": "Many/item-%03d.txt" % i, "content": "item %d\n" % i})
    for path in EMPTY_FOLDERS:
        tree.append({"path": path, "folder": True})
    for e in tree:
        if e["path"] in MTIMES:
            e["mtime"] = MTIMES[e["path"]]
    fake.seed(tree)
    return fake.dump_by_path()


def iso_to_epoch(s):
    return timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))


def tree_paths(root):
    """Relative paths of everything below root, via find(1)."""
    r = subprocess.run(["find", str(root), "-mindepth", "1"], capture_output=True,
                       timeout=deadline(60))
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    prefix = str(root) + "/"
    out = set()
    for line in r.stdout.decode("utf-8", "surrogateescape").splitlines():
        assert line.startswith(prefix), line
        out.add(line[len(prefix):])
    return out


def ls_la(folder):
    """{name: (type char, size, mtime)} from `ls -la` of one folder."""
    r = subprocess.run(["ls", "-la", "--quoting-style=literal", "--time-style=+%s", str(folder)],
                       capture_output=True, timeout=deadline(30), env=dict(os.environ, LC_ALL="C.UTF-8"))
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    out = {}
    lines = r.stdout.decode("utf-8", "surrogateescape").splitlines()
    assert lines[0].startswith("total "), lines[0]
    for line in lines[1:]:
        perms, _links, _owner, _group, size, mtime, name = line.split(None, 6)
        out[name] = (perms[0], int(size), int(mtime))
    return out


@pytest.fixture
def tree(fake):
    return seed_tree(fake)


@pytest.fixture
def mnt(tree, mounter, request):
    """The seeded drive mounted with page_size=200 (so 'Many' takes 3 pages)."""
    opts = {"page_size": 200}
    mark = request.node.get_closest_marker("mount_opts")
    if mark:
        opts.update(mark.kwargs)
    return mounter.mount(opts=opts)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def drop_page_cache(path):
    """Make the next read of path reach the daemon (not the page cache)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


# ------------------------------------------------------------------ listing
@pytest.mark.valgrind
@pytest.mark.mount_opts(poll_interval=0)
def test_find_lists_exactly_the_server_tree(tree, mnt, fake):
    # count the requests for the pages of 'Many' (a rule that changes nothing)
    fake.faults({"rules": children_rules(tree["Many"]["id"], {"stall_ms": 0})})
    assert tree_paths(mnt.path) == set(tree)
    # 450 children at 200 a page: the listing of 'Many' followed
    # @odata.nextLink through three pages, once; nothing dropped or doubled
    assert len(os.listdir(mnt.p("Many"))) == MANY
    assert fake.stats()["faults_applied"] == 3
    folders = 1 + sum(1 for r in tree.values() if r["folder"])
    assert req_count(fake.stats(), lambda l: l == "GET children") == folders + 2


def test_ls_la_sizes_types_and_mtimes(tree, mnt):
    folders = [""] + [p for p, r in tree.items() if r["folder"]]
    for folder in folders:
        listing = ls_la(mnt.path / folder)
        assert listing.pop(".")[0] == "d"
        assert listing.pop("..")[0] == "d"
        want = {p.rsplit("/", 1)[-1]: r for p, r in tree.items()
                if p.rpartition("/")[0] == folder}
        assert set(listing) == set(want), "folder %r" % folder
        for name, (kind, size, mtime) in listing.items():
            rec = want[name]
            assert kind == ("d" if rec["folder"] else "-"), name
            if not rec["folder"]:
                assert size == rec["size"], name
            assert mtime == iso_to_epoch(rec["mtime"]), name


def test_stat_matches_dump(tree, mnt):
    for path, rec in tree.items():
        st = os.stat(mnt.p(path))
        if rec["folder"]:
            assert stat.S_ISDIR(st.st_mode), path
        else:
            assert stat.S_ISREG(st.st_mode), path
            assert st.st_size == rec["size"], path
        assert int(st.st_mtime) == iso_to_epoch(rec["mtime"]), path
    for path, when in MTIMES.items():
        assert int(os.stat(mnt.p(path)).st_mtime) == iso_to_epoch(when), path
    root = os.stat(mnt.p(""))
    assert stat.S_ISDIR(root.st_mode)
    assert root.st_ino == 1


def test_unicode_names_are_verbatim(tree, mnt):
    names = set(os.listdir(mnt.p("")))
    assert "Café" in names and "日本" in names
    assert unicodedata.normalize("NFC", "Café") in names
    assert "résumé.txt" in os.listdir(mnt.p("Café"))
    assert os.listdir(mnt.p("日本")) == ["日本語.txt"]


# --------------------------------------------------------------------- read
@pytest.mark.valgrind
def test_cat_small_files_equal_server_content(tree, mnt, fake):
    files = list(SMALL_FILES) + list(GENERATED) + ["Many/item-000.txt", "Many/item-449.txt"]
    for path in files:
        assert read_file(mnt.p(path)) == fake.content(path), path
    for path in ("Documents/notes.txt", "Sizes/page+1.bin"):
        r = subprocess.run(["cat", mnt.p(path)], capture_output=True, timeout=deadline(30))
        assert r.returncode == 0 and r.stdout == fake.content(path), path


def test_cmp_against_local_copy(tree, mnt, fake, env):
    for path in ("Sizes/odd.bin", "Sizes/mib+7.bin", "Documents/100% done.txt"):
        local = env.base / "copy"
        local.write_bytes(fake.content(path))
        r = subprocess.run(["cmp", str(local), mnt.p(path)], capture_output=True, text=True,
                           timeout=deadline(30))
        assert r.returncode == 0, "%s: %s%s" % (path, r.stdout, r.stderr)


@pytest.mark.valgrind
def test_big_file_bytes_and_quickxorhash(tree, mnt, fake):
    from fakegraph import qxhash
    want = fake.content(BIG)
    assert len(want) == BIG_SIZE
    got = read_file(mnt.p(BIG))
    assert len(got) == BIG_SIZE
    assert got == want, "first difference at byte %d" % next(
        i for i in range(len(got)) if got[i] != want[i])
    assert qxhash.quickxorhash(got) == tree[BIG]["quickXorHash"]


def test_random_reads_of_big_file(tree, mnt, fake):
    want = fake.content(BIG)
    offsets = [0, 1, 40959, 40960, 5 * MIB + 3, BIG_SIZE - 4096, BIG_SIZE - 1, 12345678, 7 * MIB]
    with open(mnt.p(BIG), "rb", buffering=0) as f:
        for off in offsets:
            f.seek(off)
            n = 70000
            assert f.read(n) == want[off:off + n], "offset %d" % off
        f.seek(BIG_SIZE)
        assert f.read(10) == b""


def test_head_reads_only_what_it_needs(tree, mnt, fake):
    os.listdir(mnt.p("Large"))          # the listing is not what we measure
    fake.stats_reset()
    r = subprocess.run(["head", "-c", "100", mnt.p(BIG)], capture_output=True, timeout=deadline(30))
    assert r.returncode == 0
    assert r.stdout == fake.content(BIG)[:100]
    st = fake.stats()
    reqs = st["requests"]
    assert reqs.get("GET download", 0) == 1, reqs
    # the download URL comes either from GET .../content (302) or from the
    # listing's @microsoft.graph.downloadUrl; nothing else is needed
    assert reqs.get("GET content", 0) <= 1, reqs
    assert set(reqs) <= {"GET content", "GET download"}, reqs
    assert st["bytes_sent_content"] <= 2 * MIB, \
        "head -c 100 of a 20 MiB file moved %d bytes" % st["bytes_sent_content"]


def test_second_read_costs_no_download(tree, mnt, fake):
    path = "Sizes/mib+7.bin"
    assert read_file(mnt.p(path)) == fake.content(path)
    drop_page_cache(mnt.p(path))
    fake.stats_reset()
    assert read_file(mnt.p(path)) == fake.content(path)
    r = subprocess.run(["cat", mnt.p(path)], capture_output=True, timeout=deadline(30))
    assert r.stdout == fake.content(path)
    reqs = fake.stats()["requests"]
    assert reqs.get("GET download", 0) == 0, reqs
    assert reqs.get("GET content", 0) == 0, reqs


def test_content_cache_survives_remount(tree, mnt, fake, mounter):
    path = "Sizes/odd.bin"
    assert read_file(mnt.p(path)) == fake.content(path)
    m2 = mounter.remount(mnt)
    fake.stats_reset()
    assert read_file(m2.p(path)) == fake.content(path)
    reqs = fake.stats()["requests"]
    assert reqs.get("GET download", 0) == 0, reqs


# ------------------------------------------------------------- attributes
def test_statfs_shows_quota(tree, mnt, fake):
    drive_used = sum(r["size"] for p, r in tree.items() if "/" not in p)
    vfs = os.statvfs(mnt.p(""))
    bs = vfs.f_frsize
    assert bs > 0
    total = vfs.f_blocks * bs
    used = (vfs.f_blocks - vfs.f_bfree) * bs
    assert abs(total - (1 << 40)) < bs, (total, bs)
    assert abs(used - drive_used) < bs, (used, drive_used, bs)
    r = subprocess.run(["df", "-B1", mnt.p("")], capture_output=True, text=True, timeout=deadline(30))
    assert r.returncode == 0, r.stderr
    fields = r.stdout.splitlines()[-1].split()
    assert abs(int(fields[1]) - (1 << 40)) < bs, r.stdout


def test_statfs_follows_configured_quota(fake, mounter):
    fake.config(quota_total=5 * (1 << 30))
    fake.seed([{"path": "a.bin", "content": {"size": 3 * MIB, "seed": 1}}])
    m = mounter.mount()
    vfs = os.statvfs(m.p(""))
    assert abs(vfs.f_blocks * vfs.f_frsize - 5 * (1 << 30)) < vfs.f_frsize
    assert abs((vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize - 3 * MIB) < vfs.f_frsize


def test_unknown_path_is_enoent(tree, mnt):
    for p in ("nope", "Documents/nope.txt", "Documents/Reports/2024/deep/none", "Many/item-450.txt"):
        with pytest.raises(FileNotFoundError):
            os.stat(mnt.p(p))
    with pytest.raises(FileNotFoundError):
        open(mnt.p("no such folder/file.txt"), "rb")
    with pytest.raises(NotADirectoryError):
        os.stat(mnt.p("Documents/notes.txt/below"))


def test_lookup_is_case_insensitive(tree, mnt, fake):
    a = os.stat(mnt.p("Documents/notes.txt"))
    b = os.stat(mnt.p("DOCUMENTS/NOTES.TXT"))
    c = os.stat(mnt.p("documents/Notes.Txt"))
    assert a.st_ino == b.st_ino == c.st_ino
    assert read_file(mnt.p("DOCUMENTS/NOTES.TXT")) == fake.content("Documents/notes.txt")
    assert os.stat(mnt.p("CAFÉ/RÉSUMÉ.TXT")).st_ino == os.stat(mnt.p("Café/résumé.txt")).st_ino


def test_xattrs_match_dump(tree, mnt):
    for path in ("Documents/notes.txt", "Documents/100% done.txt", "日本/日本語.txt", BIG, "Documents"):
        rec = tree[path]
        assert os.getxattr(mnt.p(path), "user.onedrive.id").decode() == rec["id"], path
        assert os.getxattr(mnt.p(path), "user.onedrive.etag").decode() == rec["eTag"], path
        if not rec["folder"]:
            assert os.getxattr(mnt.p(path), "user.onedrive.quickxorhash").decode() == \
                rec["quickXorHash"], path
        names = os.listxattr(mnt.p(path))
        assert "user.onedrive.id" in names, names
    with pytest.raises(OSError) as ei:
        os.getxattr(mnt.p("Documents/notes.txt"), "user.onedrive.nonexistent")
    assert ei.value.errno in (errno.ENODATA, errno.ENOTSUP)


# ------------------------------------------------------------ read-only
@pytest.mark.mount_opts(ro=None)
def test_read_only_mount_refuses_writes_with_erofs(tree, mnt, fake):
    """-o ro passes through to the kernel: every write is refused, nothing changes."""
    before = fake.dump()
    f = mnt.p("Documents/notes.txt")
    attempts = {
        "open for write": lambda: os.close(os.open(f, os.O_WRONLY)),
        "open for append": lambda: os.close(os.open(f, os.O_RDWR | os.O_APPEND)),
        "truncate": lambda: os.truncate(f, 0),
        "create": lambda: os.close(os.open(mnt.p("Documents/new.txt"), os.O_WRONLY | os.O_CREAT, 0o644)),
        "mkdir": lambda: os.mkdir(mnt.p("New folder")),
        "rmdir": lambda: os.rmdir(mnt.p("Empty folder")),
        "unlink": lambda: os.unlink(f),
        "rename": lambda: os.rename(f, mnt.p("Documents/renamed.txt")),
        "touch": lambda: os.utime(f, None),
        "chmod": lambda: os.chmod(f, 0o600),
        "symlink": lambda: os.symlink("notes.txt", mnt.p("Documents/link")),
    }
    for what, fn in attempts.items():
        with pytest.raises(OSError) as ei:
            fn()
        assert ei.value.errno == errno.EROFS, "%s: %r" % (what, ei.value)
    for argv in (["rm", "-f", f], ["mv", f, mnt.p("x.txt")], ["touch", mnt.p("t.txt")],
                 ["mkdir", mnt.p("d")]):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=deadline(30))
        assert r.returncode != 0, argv
        assert "Read-only file system" in r.stderr, (argv, r.stderr)
    assert fake.dump() == before
    assert read_file(f) == fake.content("Documents/notes.txt")


# -------------------------------------------------------------- remounts
@pytest.mark.valgrind
def test_inodes_stable_across_remount(tree, mnt, mounter):
    paths = sorted(tree)
    before = {p: os.stat(mnt.p(p)).st_ino for p in paths}
    assert len(set(before.values())) == len(paths), "inode numbers are not unique"
    assert 1 not in before.values()
    m2 = mounter.remount(mnt)
    after = {p: os.stat(m2.p(p)).st_ino for p in reversed(paths)}
    assert after == before


def test_remount_lists_known_folders_without_requests(tree, mnt, fake, mounter):
    assert tree_paths(mnt.path) == set(tree)
    m2 = mounter.remount(mnt)
    fake.stats_reset()
    assert tree_paths(m2.path) == set(tree)
    reqs = fake.stats()["requests"]
    assert reqs.get("GET children", 0) == 0, reqs


@pytest.mark.slow
@pytest.mark.mount_opts(dir_ttl=1, attr_timeout=1)
def test_changed_content_is_downloaded_again(tree, mnt, fake):
    path = "Documents/notes.txt"
    old = fake.content(path)
    assert read_file(mnt.p(path)) == old
    ctag = tree[path]["cTag"]
    new = "the content changed on the server, and its size too\n"
    fake.seed([{"path": path, "content": new}])
    rec = fake.dump_by_path()[path]
    assert rec["cTag"] != ctag
    fake.stats_reset()

    def fresh():
        os.listdir(mnt.p("Documents"))
        drop_page_cache(mnt.p(path))
        data = read_file(mnt.p(path))
        assert data in (old, new.encode()), data[:80]
        return data == new.encode()
    wait_until(fresh, 15, "the new content of %s" % path, interval=0.2)
    assert os.stat(mnt.p(path)).st_size == len(new)
    assert os.getxattr(mnt.p(path), "user.onedrive.etag").decode() == rec["eTag"]
    assert fake.stats()["requests"].get("GET download", 0) >= 1
