"""Helpers shared by the onedrivefs integration tests (not a test module).

Everything here waits on conditions with deadlines; nothing sleeps and
hopes.  Deadlines scale with ODFS_VALGRIND=1 (x10) and ODFS_TIMEOUT_FACTOR.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BINARY = os.environ.get("ODFS_BINARY") or str(REPO / "onedrivefs")
VALGRIND = os.environ.get("ODFS_VALGRIND") == "1"
VALGRIND_CMD = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
                "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite"]
VALGRIND_EXIT = 99

try:
    _factor = float(os.environ.get("ODFS_TIMEOUT_FACTOR", "1"))
except ValueError:
    _factor = 1.0
TIMEOUT_FACTOR = _factor * (10.0 if VALGRIND else 1.0)


def deadline(seconds):
    """Seconds scaled for slow runs (valgrind, sanitizers)."""
    return seconds * TIMEOUT_FACTOR


def wait_until(cond, timeout, what, interval=0.02):
    """Poll cond() until it returns a true value (returned) or the scaled
    deadline passes (AssertionError naming `what`)."""
    end = time.monotonic() + deadline(timeout)
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out after %.1fs waiting for %s" % (deadline(timeout), what))
        time.sleep(interval)


# ------------------------------------------------------------------ mounts
def _unescape_mountinfo(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounts():
    """[(mountpoint, fstype, source)] from /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            rfields = right.split()
            if len(fields) < 5 or len(rfields) < 2:
                continue
            out.append((_unescape_mountinfo(fields[4]), rfields[0], rfields[1]))
    return out


def mount_count(path):
    path = os.path.realpath(str(path))
    return sum(1 for m in mounts() if m[0] == path)


def is_mounted(path):
    return mount_count(path) > 0


def fuse_unmount(path):
    """Unmount path (lazily when busy).  Returns the list of problems."""
    problems = []
    path = str(path)
    if not is_mounted(path):
        return problems
    r = subprocess.run(["fusermount3", "-u", path], capture_output=True, text=True, timeout=30)
    if r.returncode != 0 and is_mounted(path):
        problems.append("fusermount3 -u '%s' failed: %s" % (path, r.stderr.strip()))
        subprocess.run(["fusermount3", "-uz", path], capture_output=True, text=True, timeout=30)
    return problems


# --------------------------------------------------------------- processes
def odfs_cmd(args, valgrind=False, valgrind_log=None):
    """argv for onedrivefs; valgrind_log (a path, %p allowed) sends
    valgrind's report to files (daemon mode: the child's stderr is gone)."""
    cmd = [BINARY] + list(args)
    if valgrind:
        vg = list(VALGRIND_CMD)
        if valgrind_log:
            vg.append("--log-file=%s" % valgrind_log)
        cmd = vg + cmd
    return cmd


def run_odfs(args, env, timeout=30, valgrind=False, input=None, valgrind_log=None):
    """Run onedrivefs to completion; returns CompletedProcess (text)."""
    return subprocess.run(odfs_cmd(args, valgrind, valgrind_log), env=env, capture_output=True, text=True,
                          timeout=deadline(timeout), input=input,
                          errors="surrogateescape")


def pids_with_cmdline(fragment):
    """Pids of onedrivefs processes (or valgrind running it) whose command
    line contains fragment."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                raw = f.read()
        except OSError:
            continue
        argv = raw.split(b"\0")
        joined = raw.replace(b"\0", b" ")
        if fragment.encode() in joined and any(a.endswith(b"onedrivefs") for a in argv[:8]):
            out.append(int(d))
    return out


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_pid(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# -------------------------------------------------------------------- logs
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer",
                     "UndefinedBehaviorSanitizer")
_VG_ERRORS = re.compile(r"^==\d+== ERROR SUMMARY: ([1-9]\d*) errors", re.M)
_ERROR_LINE = re.compile(r"(^|\s)error:")


def log_problems(text, expect_errors=()):
    """Unexpected `error:` lines and sanitizer/valgrind reports in a log."""
    problems = []
    pats = [re.compile(p) for p in expect_errors]
    for line in text.splitlines():
        if _ERROR_LINE.search(line) and not any(p.search(line) for p in pats):
            problems.append("unexpected error line: %r" % line)
    for m in SANITIZER_MARKERS:
        if m in text:
            problems.append("sanitizer report (%s) in the log" % m)
    if _VG_ERRORS.search(text):
        problems.append("valgrind reported errors")
    return problems


def sanitizer_problems(text):
    """Sanitizer or valgrind reports in a log (always a failure)."""
    return [p for p in log_problems(text) if not p.startswith("unexpected error line")]


def message_lines(text):
    """Lines of a log that are not valgrind/sanitizer noise."""
    return [l for l in text.splitlines() if l.strip() and not l.startswith("==")]


# -------------------------------------------------------------- fake stats
def req_count(stats, pred):
    """Sum of stats['requests'] entries whose label satisfies pred."""
    return sum(n for label, n in stats["requests"].items() if pred(label))


def children_rules(item_id, rule):
    """Fault rules hitting the listing of one folder (all its pages),
    whichever URL form the client uses (by drive id, any case, or /me/drive)."""
    drive_id = item_id.split("!")[0]
    out = []
    for prefix in ("/v1.0/drives/%s/items/%s/children" % (drive_id, item_id),
                   "/v1.0/drives/%s/items/%s/children" % (drive_id.lower(), item_id),
                   "/v1.0/me/drive/items/%s/children" % item_id):
        r = dict(rule)
        r["match"] = "GET " + prefix
        out.append(r)
    return out
