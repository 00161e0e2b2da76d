"""A flaky service: throttling, failures, dropped connections, expiring
tokens and broken bodies must not corrupt what the mount shows."""

import errno
import os
import re
import time

import pytest

from helpers import children_rules

MIB = 1 << 20
BIG = "big.bin"
BIG_SIZE = 8 * MIB
LIST_DIR = "Folder"
LIST_N = 250


@pytest.fixture
def tree(fake):
    fake.config(page_size=100)
    t = [{"path": BIG, "content": {"size": BIG_SIZE, "seed": 21}},
         {"path": "small.txt", "content": "small file\n"},
         {"path": "other/one.txt", "content": "one\n"},
         {"path": "other/two.bin", "content": {"size": 300000, "seed": 22}},
         {"path": "bad/x.txt", "content": "x\n"},
         {"path": "later/y.txt", "content": "y\n"}]
    t += [{"path": "%s/f%03d.txt" % (LIST_DIR, i), "content": "%d\n" % i} for i in range(LIST_N)]
    fake.seed(t)
    return fake.dump_by_path()


def mount_tree(mounter, **opts):
    # These tests fault folder listings, so they use them: no delta thread.
    o = {"page_size": 100, "poll_interval": 0}
    o.update(opts)
    return mounter.mount(opts=o)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def check_listing(m):
    names = sorted(os.listdir(m.p(LIST_DIR)))
    assert names == ["f%03d.txt" % i for i in range(LIST_N)]


def faults_applied(fake):
    return fake.stats().get("faults_applied", 0)


# ------------------------------------------------------------ throttling
@pytest.mark.valgrind
def test_429_with_retry_after_on_listing(tree, fake, mounter):
    m = mount_tree(mounter)
    os.listdir(m.p(""))
    # page 1 of 'Folder' goes through, page 2 (an @odata.nextLink) is
    # throttled twice, then the rest follows
    fake.faults({"rules": [{"match": "GET children", "stall_ms": 0, "times": 1},
                           {"match": "GET children", "status": 429, "retry_after": "0.5", "times": 2}]})
    check_listing(m)
    assert faults_applied(fake) == 3
    assert fake.stats()["responses"].get("429", 0) == 2
    assert fake.stats()["requests"]["GET children"] == 1 + 3 + 2   # root, 3 pages, 2 refused


@pytest.mark.valgrind
def test_429_with_retry_after_on_download(tree, fake, mounter):
    m = mount_tree(mounter)
    fake.faults({"rules": [{"match": "GET download", "status": 429, "retry_after": "0.5", "times": 2}]})
    assert read(m.p("other/two.bin")) == fake.content("other/two.bin")
    assert faults_applied(fake) == 2


def test_429_retry_after_is_honoured(tree, fake, mounter):
    m = mount_tree(mounter)
    os.listdir(m.p(""))
    fake.faults({"rules": [{"match": "GET children", "status": 429, "retry_after": "1", "times": 1}]})
    t0 = time.monotonic()
    check_listing(m)
    assert time.monotonic() - t0 >= 0.95, "the client did not wait for Retry-After"


def test_503_on_listing_and_download(tree, fake, mounter):
    m = mount_tree(mounter)
    fake.faults({"rules": [{"match": "GET children", "status": 503, "times": 2},
                           {"match": "GET download", "status": 503, "times": 2},
                           {"match": "GET content", "status": 503, "times": 1}]})
    check_listing(m)
    assert read(m.p("other/two.bin")) == fake.content("other/two.bin")
    assert faults_applied(fake) >= 4


def test_dropped_connections(tree, fake, mounter):
    m = mount_tree(mounter)
    fake.faults({"rules": [{"match": "GET children", "drop": True, "times": 2},
                           {"match": "GET download", "drop": True, "times": 2}]})
    check_listing(m)
    assert read(m.p("other/two.bin")) == fake.content("other/two.bin")
    assert faults_applied(fake) == 4


def test_download_truncated_then_retried(tree, fake, mounter):
    m = mount_tree(mounter)
    fake.faults({"rules": [{"match": "GET download", "truncate": True, "times": 1}]})
    assert read(m.p("other/two.bin")) == fake.content("other/two.bin")


# ---------------------------------------------------------------- tokens
@pytest.mark.valgrind
def test_token_expires_mid_read(tree, fake, mounter):
    m = mount_tree(mounter)
    want = fake.content(BIG)
    with open(m.p(BIG), "rb", buffering=0) as f:
        first = f.read(MIB)
        assert first == want[:MIB]
        fake.expire_tokens()
        rest = b""
        while True:
            chunk = f.read(MIB)
            if not chunk:
                break
            rest += chunk
    assert first + rest == want
    # Graph calls after the expiry (a listing and a new download URL) refresh once
    check_listing(m)
    assert read(m.p("other/two.bin")) == fake.content("other/two.bin")
    assert fake.stats()["token_grants"].get("refresh_token", 0) >= 1


def test_token_expires_between_listings(tree, fake, mounter):
    m = mount_tree(mounter)
    assert os.listdir(m.p("other"))
    fake.expire_tokens()
    check_listing(m)
    fake.expire_tokens()
    assert sorted(os.listdir(m.p("later"))) == ["y.txt"]
    assert fake.stats()["token_grants"].get("refresh_token", 0) >= 2


# -------------------------------------------------------- broken bodies
BAD_NAME = re.compile(r"'/?bad'")


def _broken_listing(tree, fake, mounter, rule):
    m = mounter.mount(opts={"page_size": 100, "max_retries": 2, "poll_interval": 0},
                      expect_errors=[BAD_NAME.pattern])
    fake.faults({"rules": children_rules(tree["bad"]["id"], rule)})
    seen = len(m.stderr_text())
    with pytest.raises(OSError) as ei:
        os.listdir(m.p("bad"))
    assert ei.value.errno == errno.EIO, ei.value
    assert faults_applied(fake) >= 1
    # one error line about it, naming the folder (not a cascade, not an id)
    errors = [l for l in m.stderr_text()[seen:].splitlines() if "error:" in l]
    assert len(errors) == 1, "want one error line, got:\n" + "\n".join(errors)
    assert BAD_NAME.search(errors[0]), errors[0]
    # the daemon is alive and still serves other folders
    assert m.proc.poll() is None
    check_listing(m)
    assert read(m.p("other/one.txt")) == b"one\n"
    # the failure is not cached: once the service is well again it lists
    fake.faults({})
    assert os.listdir(m.p("bad")) == ["x.txt"]
    return m


@pytest.mark.valgrind
def test_malformed_json_listing_is_eio(tree, fake, mounter):
    _broken_listing(tree, fake, mounter, {"status": 200, "body": "{not json"})


def test_truncated_listing_is_eio(tree, fake, mounter):
    _broken_listing(tree, fake, mounter, {"truncate": True})


@pytest.mark.slow
def test_oversized_listing_is_eio(tree, fake, mounter):
    _broken_listing(tree, fake, mounter, {"oversize": 50 * MIB})


# ---------------------------------------------------------------- latency
@pytest.mark.slow
def test_latency_breaks_nothing(tree, fake, mounter):
    fake.faults({"latency_ms": 50})
    m = mount_tree(mounter)
    check_listing(m)
    assert sorted(os.listdir(m.p("other"))) == ["one.txt", "two.bin"]
    assert read(m.p("other/two.bin")) == fake.content("other/two.bin")
    with open(m.p(BIG), "rb") as f:
        f.seek(3 * MIB)
        assert f.read(100000) == fake.content(BIG)[3 * MIB:3 * MIB + 100000]


def test_stalled_listing_still_completes(tree, fake, mounter):
    m = mount_tree(mounter)
    fake.faults({"rules": [{"match": "GET children", "stall_ms": 1500, "times": 1}]})
    check_listing(m)
