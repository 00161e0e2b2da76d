"""Small files land fast: the time PATCHes that follow simple uploads (and
plain utimens) are gathered into JSON batches (POST /$batch), and small
uploads run on their own wider lane (-o small_uploads)."""

import errno
import os
import threading
import time
from calendar import timegm

import pytest

from helpers import log_lines_matching, wait_landed, wait_settled, wait_until

BASE_MTIME = 1500000000


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def epoch(iso_text):
    return timegm(time.strptime(iso_text[:19], "%Y-%m-%dT%H:%M:%S"))


def tar_like(m, n, folder="t"):
    """Write n small files as tar does (write, close, then set the time)."""
    os.mkdir(m.p(folder))
    files = {}
    for i in range(n):
        rel = "%s/f%03d.bin" % (folder, i)
        data = (b"file %d\n" % i) * (i % 5 + 1)
        write(m.p(rel), data)
        os.utime(m.p(rel), (BASE_MTIME + i, BASE_MTIME + i))
        files[rel] = data
    return files


def wait_times(fake, files, timeout=60):
    want = {rel: BASE_MTIME + i for i, rel in enumerate(sorted(files))}

    def wrong():
        dump = fake.dump_by_path()
        return [rel for rel, t in want.items() if rel not in dump or epoch(dump[rel]["mtime"]) != t]
    wait_until(lambda: not wrong(), timeout, "the times tar set on the server")

def touch_all_at_once(m, files):
    """utimens on every file at the same moment (file i gets BASE_MTIME + i,
    in sorted order): {rel: 0 or errno}; fails if a call never returns."""
    results = {}
    go = threading.Barrier(len(files))

    def touch(rel, t):
        go.wait()
        try:
            os.utime(m.p(rel), (t, t))
            results[rel] = 0
        except OSError as e:
            results[rel] = e.errno
    threads = [threading.Thread(target=touch, args=(rel, BASE_MTIME + i), daemon=True)
               for i, rel in enumerate(sorted(files))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    hung = sorted(rel for rel, t in zip(sorted(files), threads) if t.is_alive())
    assert not hung, "utimens never returned for %r" % hung
    return results


def patches(st):
    return st["requests"].get("PATCH item", 0), st.get("batched", {}).get("PATCH item", 0)


def test_tar_like_small_files_land_with_batched_times(fake, mounter):
    fake.config(latency_ms=20)
    m = mounter.mount()
    files = tar_like(m, 60)
    wait_landed(fake, files, timeout=90)
    wait_times(fake, files)
    wait_settled(m.p("t"))
    st = fake.stats()
    single, batched = patches(st)
    assert single + batched >= 60, st
    assert single < 60 and batched > 0, st
    assert st["requests"].get("POST batch", 0) >= 1, st
    assert st["requests"].get("PUT content", 0) == 60, st
    for rel, data in files.items():
        with open(m.p(rel), "rb") as f:
            assert f.read() == data
        assert int(os.stat(m.p(rel)).st_mtime) == BASE_MTIME + sorted(files).index(rel)


def test_without_batch_the_times_go_one_by_one(fake, mounter):
    fake.config(latency_ms=20, batch=False)
    m = mounter.mount()
    files = tar_like(m, 30)
    wait_landed(fake, files, timeout=90)
    wait_times(fake, files)
    wait_settled(m.p("t"))
    m.stop()
    st = fake.stats()
    single, batched = patches(st)
    assert batched == 0 and single >= 30, st
    # refused once (or once per batch already on its way), then remembered
    assert 1 <= st["requests"].get("POST batch", 0) <= 2, st
    assert len(log_lines_matching(m.stderr_text(), r"does not take JSON batches")) == 1


def test_throttled_patches_inside_a_batch_are_sent_again(fake, mounter):
    fake.config(latency_ms=20)
    m = mounter.mount()
    fake.faults({"rules": [{"match": "PATCH item", "status": 429, "retry_after": "1", "times": 6}]})
    files = tar_like(m, 40)
    wait_landed(fake, files, timeout=90)
    wait_times(fake, files)
    wait_settled(m.p("t"))
    st = fake.stats()
    assert st["faults_applied"] >= 6, st
    assert st["batched"].get("PATCH item", 0) > 0, st


@pytest.mark.parametrize("batch", [True, False], ids=["batched", "single"])
def test_412_inside_a_batch_is_a_412(fake, mounter, batch):
    """utimens on files that are on the service: a PATCH each, gathered;
    one item answers 412 (changed elsewhere): its utimens fails with
    ESTALE exactly as the single PATCH's does, the others are set."""
    m = mounter.mount(expect_errors=(r"cannot set the time of 'u/g05\.txt'.*\(412\)",))
    os.mkdir(m.p("u"))
    files = {"u/g%02d.txt" % i: b"g %d\n" % i for i in range(12)}
    for rel, data in files.items():
        write(m.p(rel), data)
    dump = wait_landed(fake, files, timeout=60)
    wait_settled(m.p("u"))
    fake.config(latency_ms=50, batch=batch)
    target = "u/g05.txt"
    fake.faults({"rules": [{"match": "PATCH /v1.0/drives/%s/items/%s" % (fake.server.drive_id,
                                                                        dump[target]["id"]),
                            "status": 412}]})
    fake.stats_reset()
    results = touch_all_at_once(m, files)
    assert results[target] == errno.ESTALE, results
    assert all(v == 0 for rel, v in results.items() if rel != target), results
    want = {rel: BASE_MTIME + i for i, rel in enumerate(sorted(files)) if rel != target}
    dump = fake.dump_by_path()
    assert {rel: epoch(dump[rel]["mtime"]) for rel in want} == want
    st = fake.stats()
    if batch:
        assert st["requests"].get("POST batch", 0) >= 1 and st["batched"].get("PATCH item", 0) > 1, st
    else:
        # the kernel asks once more after ESTALE
        assert st["requests"].get("PATCH item", 0) >= len(files), st


def test_throttled_answers_in_the_middle_of_a_batch(fake, mounter):
    """Concurrent utimens on files on the service, gathered into batches;
    two items in the middle answer 429 once: every call returns, every time
    is set (a throttled answer sent again must not leave the others'
    callers waiting), and the pause is client-wide."""
    m = mounter.mount()
    os.mkdir(m.p("u"))
    files = {"u/g%02d.txt" % i: b"g %d\n" % i for i in range(12)}
    for rel, data in files.items():
        write(m.p(rel), data)
    dump = wait_landed(fake, files, timeout=60)
    wait_settled(m.p("u"))
    fake.config(latency_ms=50)
    fake.faults({"rules": [{"match": "PATCH /v1.0/drives/%s/items/%s" % (fake.server.drive_id,
                                                                        dump[rel]["id"]),
                            "status": 429, "retry_after": "1", "times": 1}
                           for rel in ("u/g04.txt", "u/g07.txt")]})
    fake.stats_reset()
    results = touch_all_at_once(m, files)
    assert results == {rel: 0 for rel in files}, results
    want = {rel: BASE_MTIME + i for i, rel in enumerate(sorted(files))}
    dump = fake.dump_by_path()
    assert {rel: epoch(dump[rel]["mtime"]) for rel in want} == want
    st = fake.stats()
    assert st["faults_applied"] == 2, st
    assert st["requests"].get("POST batch", 0) >= 1, st
