"""OneDrive's own features from the shell and through the mount: versions
(listed, fetched, restored), server-side copy (cp through copy_file_range,
`onedrivefs cp` for folders), web and sharing links."""

import os
import subprocess

import pytest

from helpers import MIB, wait_until, xattr

BIG = 3 * MIB


@pytest.fixture
def mnt(fake, mounter):
    fake.seed([{"path": "docs/v.txt", "content": "version one\n"},
               {"path": "docs/big.bin", "content": {"size": BIG, "seed": 7}},
               {"path": "Dir/a.txt", "content": "in a folder\n"},
               {"path": "Dir/Sub/b.txt", "content": "deeper\n"},
               {"path": "Out", "folder": True}])
    return mounter.mount()


BINARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "onedrivefs")


def odfs(m, *args, check=True, binary=False):
    """Run an onedrivefs command against the mount m (no options needed)."""
    r = subprocess.run([BINARY] + list(args), env=m.env.environ, capture_output=True, timeout=60)
    if check:
        assert r.returncode == 0, r.stderr.decode(errors="replace")
    if binary:
        return r
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(), r.stderr.decode())


def test_versions_list_get_restore(fake, mnt):
    p = mnt.p("docs/v.txt")
    with open(p, "w") as f:
        f.write("version two, longer\n")
    wait_until(lambda: xattr(p, "status") == "clean", 30, "the upload")
    r = odfs(mnt, "versions", p)
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["ID", "MODIFIED"]
    ids = [ln.split()[0] for ln in lines[1:]]
    assert ids[0] == "current" and len(ids) == 2
    assert lines[1].split()[2] == "20" and lines[2].split()[2] == "12"
    old = ids[1]
    r = odfs(mnt, "versions", p, "--get", old, binary=True)
    assert r.stdout == b"version one\n"
    # the same through the attribute
    listing = xattr(p, "versions")
    assert listing.splitlines()[1].split("\t")[0] == old
    assert open(p).read() == "version two, longer\n"
    odfs(mnt, "restore", p, old)
    assert fake.content("docs/v.txt") == b"version one\n"
    assert open(p).read() == "version one\n"          # at once, no remount
    assert os.stat(p).st_size == 12
    # an unknown version is a clear failure
    r = odfs(mnt, "restore", p, "nope", check=False)
    assert r.returncode == 1 and "cannot restore" in r.stderr
    mnt.expect_errors.append("cannot restore")
    r = odfs(mnt, "versions", mnt.p("Dir"), check=False)
    assert r.returncode == 1


def test_cp_is_server_side(fake, mnt):
    src, dst = mnt.p("docs/big.bin"), mnt.p("Out/copy.bin")
    fake.stats_reset()
    subprocess.run(["cp", src, dst], check=True, timeout=60)
    st = fake.stats()
    assert st["requests"].get("POST copy") == 1, st["requests"]
    assert st["bytes_sent_content"] == 0 and st["bytes_received_content"] == 0
    assert os.stat(dst).st_size == BIG
    want = fake.content("docs/big.bin")
    assert fake.content("Out/copy.bin") == want
    assert xattr(dst, "status") == "clean"
    assert xattr(dst, "id") == fake.server.item("/Out/copy.bin").id
    with open(dst, "rb") as f:
        assert f.read() == want
    # a copy of a file written here but not uploaded falls back to bytes
    local = mnt.p("Out/local.txt")
    with open(local, "w") as f:
        f.write("local bytes\n")
    subprocess.run(["cp", local, mnt.p("Out/local2.txt")], check=True, timeout=60)
    assert open(mnt.p("Out/local2.txt")).read() == "local bytes\n"


def test_cp_command_folder(fake, mnt):
    odfs(mnt, "cp", mnt.p("Dir"), mnt.p("Out"))
    assert fake.content("Out/Dir/Sub/b.txt") == b"deeper\n"
    assert open(mnt.p("Out/Dir/Sub/b.txt")).read() == "deeper\n"
    odfs(mnt, "cp", mnt.p("Dir/a.txt"), mnt.p("Out/renamed.txt"))
    assert open(mnt.p("Out/renamed.txt")).read() == "in a folder\n"


def test_share_and_weburl(fake, mnt):
    p = mnt.p("docs/v.txt")
    assert xattr(p, "weburl").startswith("http")
    view = odfs(mnt, "share", p).stdout.strip()
    assert view.startswith(fake.url)
    edit = odfs(mnt, "share", p, "--edit", "--expiry", "2099-12-31").stdout.strip()
    assert edit != view
    links = fake.server.features.links
    assert {k[1] for k in links} == {"view", "edit"}
    assert [v.get("expirationDateTime") for k, v in links.items() if k[1] == "edit"] == \
        ["2099-12-31T00:00:00Z"]
