"""The model-based tester (tests/modelcheck.py) in `make check`: a bounded
run of a few fixed seeds plus one fresh random seed (its number is in the
test id and in any failure, so `--seed N` replays it), a short fault soak,
the SQLite cache's integrity after SIGKILL, and several processes writing,
renaming and listing in the same folders at once.

The fault soak and the concurrency runs keep fixed seeds: the tester still
knows open bugs under faults (tests/README), and a fresh fault seed in CI
would make main red at random; `make check-long` and `make soak` use fresh
ones.

Knobs (environment): MODELCHECK_OPS (operations per seed, default 1000),
MODELCHECK_SEED (the extra seed, instead of a fresh one), MODELCHECK_RANDOM=0
(the extra seed fixed at 4), MODELCHECK_FAULT_SEED (the fault soak's seed,
default 23134), MODELCHECK_SHRINK_SECONDS (time budget for shrinking a
failure, default 60), MODELCHECK_LOG_DIR (where failing op logs go, default
/tmp).  Long runs and the fault soak: `make check-long`, `make soak`
(tests/README).
"""

import os
import random

import pytest

import helpers
import modelcheck
from modelcheck import Failure, Harness, MIB

OPS = int(os.environ.get("MODELCHECK_OPS", "1000"))
SHRINK = float(os.environ.get("MODELCHECK_SHRINK_SECONDS", "60"))
LOG_DIR = os.environ.get("MODELCHECK_LOG_DIR", "/tmp")
FIXED_SEEDS = [1, 2, 3]
if os.environ.get("MODELCHECK_SEED"):
    RANDOM_SEED = int(os.environ["MODELCHECK_SEED"])
elif os.environ.get("MODELCHECK_RANDOM") == "0":
    RANDOM_SEED = 4
else:
    RANDOM_SEED = random.SystemRandom().randrange(1000, 1 << 31)
FAULT_SEED = int(os.environ.get("MODELCHECK_FAULT_SEED", "23134"))
CONCURRENCY_SEED = 4


def run_seed(seed, workdir, ops=OPS, **kw):
    text, res = modelcheck.check_seed(seed, ops, shrink_seconds=SHRINK, log_dir=LOG_DIR, workdir=workdir,
                                      out=print, **kw)
    if text is not None:
        pytest.fail(text, pytrace=False)
    return res


@pytest.mark.parametrize("seed", FIXED_SEEDS + [RANDOM_SEED],
                         ids=["seed%d" % s for s in FIXED_SEEDS] + ["random-seed%d" % RANDOM_SEED])
def test_model_random_ops(seed, session_root):
    """A seeded random sequence of operations on the mount and a local
    model in lockstep, with remounts and SIGKILLs; mount, model and
    server must agree throughout."""
    res = run_seed(seed, session_root, kill_rate=0.006, remount_rate=0.006)
    assert len(res.ops) == OPS


def test_model_with_faults(session_root):
    """A short fault soak: the fake throttles, fails, drops, stalls,
    expires tokens and upload sessions and restarts; nothing may fail."""
    run_seed(FAULT_SEED, session_root, ops=OPS // 2, faults=True,
             kill_rate=0.004, remount_rate=0.004)


def scripted(ops, workdir, **kw):
    res = modelcheck.run_ops(ops=ops, workdir=workdir, **kw)
    if res.failure is not None:
        pytest.fail(str(res.failure), pytrace=False)
    return res


def test_sigkill_with_uploads_pending_keeps_cache_sound(session_root):
    """Files closed just before a SIGKILL (small ones, one past the simple
    upload limit, a rename over an existing file, a folder) survive: the
    cache passes integrity_check, the next mount needs no repair and
    finishes every upload."""
    ops = [{"op": "server", "config": {"latency_ms": 30}},
           {"op": "mkdir", "path": "docs"},
           {"op": "writefile", "path": "docs/a.txt", "len": 1000, "off": 0, "trunc": True, "seed": 1},
           {"op": "writefile", "path": "big.bin", "len": 4 * MIB + 12345, "off": 0, "trunc": True, "seed": 2},
           {"op": "open", "slot": 0, "path": "docs/b.txt", "mode": "rw", "flags": ["creat"]},
           {"op": "write", "slot": 0, "off": 70000, "len": 5000, "seed": 3},
           {"op": "futimens", "slot": 0, "atime": 1300000000 * 10**9, "mtime": 1300000000 * 10**9},
           {"op": "close", "slot": 0},
           {"op": "writefile", "path": "docs/.b.tmp", "len": 300, "off": 0, "trunc": True, "seed": 4},
           {"op": "rename", "src": "docs/.b.tmp", "dst": "docs/a.txt"},
           {"op": "kill"},
           {"op": "writefile", "path": "big.bin", "len": 100, "off": 4 * MIB, "trunc": False, "seed": 5},
           {"op": "truncate", "path": "docs/b.txt", "size": 10},
           {"op": "kill"},
           {"op": "server", "config": {"latency_ms": 0}},
           {"op": "remount"}]
    scripted(ops, session_root)


def test_sigkill_mid_upload_session_resumes(session_root):
    """A SIGKILL while a large file goes up in an upload session: the next
    mount resumes or restarts it and the server ends with the right bytes."""
    ops = [{"op": "server", "config": {"latency_ms": 150}},
           {"op": "writefile", "path": "large.bin", "len": 5 * MIB + 7, "off": 0, "trunc": True, "seed": 9},
           {"op": "sleep", "seconds": 1.0},
           {"op": "kill"},
           {"op": "server", "config": {"latency_ms": 0}},
           {"op": "check"}]
    scripted(ops, session_root)


def test_concurrent_writers_renamers_listers(session_root):
    """Several processes writing, renaming (the save dance), appending to
    one shared file and listing in the same folders at once: no deadlock
    (a watchdog fails instead of hanging) and no lost write, in the mount
    and then on the server."""
    h = Harness(workdir=session_root)
    try:
        h.mount()
        try:
            stats = modelcheck.concurrency_run(h, workers=4, iterations=150, seed=CONCURRENCY_SEED,
                                              timeout=120)
        except Failure as f:
            pytest.fail("seed %d: %s" % (CONCURRENCY_SEED, f), pytrace=False)
        assert stats["files"] > 0
        try:
            h.unmount()
        except Failure as f:
            pytest.fail(str(f), pytrace=False)
        bad = {db: r for db, r in h.integrity().items() if r != "ok"}
        assert not bad, bad
    finally:
        h.close()


def test_concurrent_then_sigkill(session_root):
    """The same concurrency, then SIGKILL at once: the cache is sound and a
    new mount shows every closed file (the journal kept them)."""
    h = Harness(workdir=session_root)
    try:
        h.mount()
        try:
            modelcheck.concurrency_run(h, workers=3, iterations=30, seed=CONCURRENCY_SEED + 1, timeout=120,
                                       settle_timeout=0.001)
        except Failure as f:
            if "server still differs" not in str(f):     # not waiting for the uploads here
                pytest.fail(str(f), pytrace=False)
        before, _ = helpers.local_tree(h.mnt)
        try:
            h.kill()
        except Failure as f:
            pytest.fail(str(f), pytrace=False)
        bad = {db: r for db, r in h.integrity().items() if r != "ok"}
        assert not bad, "after SIGKILL: %r" % bad
        h.mount()
        after, _ = helpers.local_tree(h.mnt)
        lost = sorted(set(before) - set(after))
        changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
        assert not lost and not changed, "after SIGKILL and remount: lost %r, changed %r" % (lost[:10], changed[:10])
        try:
            h.unmount()
        except Failure as f:
            pytest.fail(str(f), pytrace=False)
    finally:
        h.close()
