#!/usr/bin/env python3
"""Benchmark 6: writing with ordinary Unix tools.

    bench_write.py [--latency-ms 50] [--keep] [--workers N] [--small-uploads N] [cp|tar|rss ...]
                                                     (default: all three)

6a. cp   a 256 MiB file copied into the mount, then fsync (which returns
         once the file has landed): `cp` + open/fsync/close, and again
         with `dd bs=1M conv=fsync` (a shell redirection's pattern: the
         output is opened, dup2()ed and the first descriptor closed, so a
         flush reaches the daemon before the first byte)
         baseline: curl pushing the same bytes through an upload session
         in the same run: POST createUploadSession with the bearer, then
         one PUT per chunk of upload_chunk bytes with Content-Range, in
         sequence, on one connection, no Authorization (as the daemon does)
         figure: throughput ratio onedrivefs / curl (goal: at least 0.8)
6b. tar  `tar xf` of 1,000 files of 4 KiB in 10 folders into the mount
         baseline: the same extraction on local disk (median of 3)
         figures: time until tar returns (goal: within 3x local), time
         until all 1,000 files are on the server with their sizes (goal:
         under 8 s), requests the server counted (total_requests)
6c. rss  VmHWM of the daemon, sampled every 0.1 s, while cp + fsync copies
         a 1 GiB file in (goal: under 40 MB, and flat: the peak at the end of
         the upload within 4 MB of the peak a quarter of the way through)

The mounts use poll_interval=0 (no delta thread: its polls would count as
requests) and upload_chunk=10 MiB (the default, set explicitly so that
curl uses the same size); --workers N sets upload_workers (default 4),
--small-uploads N sets small_uploads (default 32).
"""

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (MiB, BenchError, Report, Timer, Workspace, bench_parser, fmt_s,  # noqa: E402
                      log, top_labels, write_auth_header)

CHUNK = 10 * MiB                 # upload_chunk: the daemon's default, given to both
CP_SIZE = 256 * MiB
TAR_FILES = 1000
TAR_FOLDERS = 10
TAR_FILE_SIZE = 4096
RSS_SIZE = 1024 * MiB
RSS_FREE_NEEDED = 4 * 1024 * MiB
RSS_GOAL_KB = 40 * 1024
RSS_FLAT_KB = 4 * 1024
PARTS = ("cp", "tar", "rss")


def make_source(path, size, seed):
    """size bytes of a random 1 MiB block, each copy stamped with its index
    so no two blocks are alike; quick even for 1 GiB."""
    block = bytearray(random.Random(seed).randbytes(MiB))
    with open(path, "wb") as f:
        for i in range(0, size, MiB):
            block[:16] = b"%016d" % (i // MiB)
            f.write(block[:min(MiB, size - i)])


def copy_fsync(src, dst, tool="cp"):
    """Copy src to dst and fsync it (which returns once the file has landed).
    cp: `cp`, then open + fsync + close, as `python -c os.fsync` would.
    dd: `dd bs=1M conv=fsync`, which opens its output, dup2()s it to fd 1
    and closes the first descriptor (as a shell redirection does): the
    kernel sends a FUSE flush before the first byte is written."""
    with Timer() as t:
        if tool == "dd":
            cmd = ["dd", "if=%s" % src, "of=%s" % dst, "bs=1M", "conv=fsync"]
        else:
            cmd = ["cp", str(src), str(dst)]
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=3600)
        if r.returncode != 0:
            raise BenchError("%s into the mount failed (%d): %s" % (tool, r.returncode,
                                                                    r.stderr.strip()))
        if tool != "dd":
            fd = os.open(str(dst), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    return t.seconds


def curl_session_upload(graph_url, header_file, name, chunk_dir, size):
    """The baseline: createUploadSession with the bearer, then the chunks in
    order with Content-Range on one curl connection (--next), no bearer.
    Returns (seconds, number of PUTs)."""
    chunks = sorted(chunk_dir.iterdir())
    with Timer() as t:
        r = subprocess.run(["curl", "-sS", "-X", "POST", "-H", "@%s" % header_file,
                            "-H", "Content-Type: application/json",
                            "-d", json.dumps({"item": {
                                "@microsoft.graph.conflictBehavior": "replace"}}),
                            "%s/me/drive/root:/%s:/createUploadSession" % (graph_url, name)],
                           capture_output=True, text=True, timeout=600)
        try:
            url = json.loads(r.stdout)["uploadUrl"]
        except (ValueError, KeyError):
            raise BenchError("curl: no upload session: %s %s" % (r.stdout.strip()[:300],
                                                                  r.stderr.strip()))
        cmd = ["curl", "-sS"]
        off = 0
        for i, c in enumerate(chunks):
            n = c.stat().st_size
            if i:
                cmd.append("--next")
            cmd += ["-o", "/dev/null", "-w", "%{http_code}\\n", "-H", "Expect:",
                    "-H", "Content-Range: bytes %d-%d/%d" % (off, off + n - 1, size),
                    "-T", str(c), url]
            off += n
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    codes = r.stdout.split()
    if r.returncode != 0 or codes[:-1] != ["202"] * (len(chunks) - 1) or \
            codes[-1:] not in (["201"], ["200"]):
        raise BenchError("curl: the upload session failed: %s %s" % (" ".join(codes),
                                                                     r.stderr.strip()))
    return t.seconds, len(chunks)


def split_chunks(src, chunk_dir, chunk):
    chunk_dir.mkdir()
    with open(src, "rb") as f:
        i = 0
        while True:
            b = f.read(chunk)
            if not b:
                break
            (chunk_dir / ("%04d" % i)).write_bytes(b)
            i += 1


# ---------------------------------------------------------------------- 6a
def bench_cp(rep, latency_ms, keep, mount_opts):
    log("== 6a. cp + fsync of a %d MiB file into the mount (latency %g ms)"
        % (CP_SIZE // MiB, latency_ms))
    with Workspace("write-cp", latency_ms, keep) as ws:
        fake = ws.fake
        src = ws.dir / "src.bin"
        make_source(src, CP_SIZE, 6)
        split_chunks(src, ws.dir / "chunks", CHUNK)
        odfs = ws.odfs(**mount_opts)
        odfs.login()
        odfs.mount()
        os.listdir(str(odfs.mnt))

        header = ws.dir / "curl-auth"
        write_auth_header(header, odfs.token())
        fake.stats_reset()
        curl_t, puts = curl_session_upload(fake.graph_url, header, "curl-256MiB.bin",
                                           ws.dir / "chunks", CP_SIZE)
        header.unlink()
        curl_st = fake.stats()
        curl_mbs = CP_SIZE / MiB / curl_t if curl_t else 0
        rep.figure("baseline: curl session + %d PUTs of %d MiB" % (puts, CHUNK // MiB),
                   "%s, %.1f MiB/s, %d requests" % (fmt_s(curl_t), curl_mbs,
                                                    curl_st["total_requests"]))

        ratios = {}
        for tool, label in (("cp", "cp + fsync"), ("dd", "dd bs=1M conv=fsync")):
            name = "%s-256MiB.bin" % tool
            fake.stats_reset()
            odfs_t = copy_fsync(src, odfs.mnt / name, tool)
            st = fake.stats()
            item = fake.dump_by_path().get(name, {})
            odfs_mbs = CP_SIZE / MiB / odfs_t if odfs_t else 0
            ratios[tool] = odfs_mbs / curl_mbs if curl_mbs else 0
            rep.figure("onedrivefs: %s" % label, "%s, %.1f MiB/s" % (fmt_s(odfs_t), odfs_mbs))
            rep.figure("  requests", "%d (%s)" % (st["total_requests"], top_labels(st)))
            rep.figure("  bytes received by the server / size",
                       "%.3f" % (st["bytes_received_content"] / CP_SIZE))
            rep.figure("  throughput ratio onedrivefs / curl", "%.2f" % ratios[tool])
            rep.figure("  landed byte-identical", "yes" if item.get("size") == CP_SIZE and
                       item.get("quickXorHash") and item.get("quickXorHash") ==
                       fake.dump_by_path().get("curl-256MiB.bin", {}).get("quickXorHash")
                       else "NO")
        rep.goal("cp+fsync ratio at least 0.8", ratios["cp"] >= 0.8)
        rep.goal("dd conv=fsync ratio at least 0.8", ratios["dd"] >= 0.8)


# ---------------------------------------------------------------------- 6b
def tar_extract(archive, dest):
    with Timer() as t:
        r = subprocess.run(["tar", "xf", str(archive), "-C", str(dest)],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=3600)
    if r.returncode != 0:
        raise BenchError("tar xf into '%s' failed (%d): %s" % (dest, r.returncode,
                                                              r.stderr.strip()[:300]))
    return t.seconds


def landed(fake, names, force=False):
    """Files on the server with their size; the dump (1,000 items, under the
    fake's lock) is only asked for once enough PUTs were counted."""
    st = fake.stats()["requests"]
    if not force and st.get("PUT content", 0) + st.get("PUT upload", 0) < len(names):
        return 0
    items = fake.dump_by_path()
    return sum(1 for n in names if items.get(n, {}).get("size") == TAR_FILE_SIZE)


def settled_stats(fake, quiet_s=2.0, limit_s=60):
    """Stats once the server has seen no request for quiet_s (trailing
    PATCHes for times, ...)."""
    end = time.monotonic() + limit_s
    st = fake.stats()
    last, since = st["total_requests"], time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.2)
        st = fake.stats()
        if st["total_requests"] != last:
            last, since = st["total_requests"], time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return st


def bench_tar(rep, latency_ms, keep, mount_opts):
    log("== 6b. tar xf of %d files of %d KiB in %d folders (latency %g ms)"
        % (TAR_FILES, TAR_FILE_SIZE // 1024, TAR_FOLDERS, latency_ms))
    with Workspace("write-tar", latency_ms, keep) as ws:
        fake = ws.fake
        rnd = random.Random(66)
        tree = ws.dir / "tree"
        names = []
        for i in range(TAR_FILES):
            rel = "untar/d%02d/f%04d.bin" % (i % TAR_FOLDERS, i)
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            (tree / rel).write_bytes(rnd.randbytes(TAR_FILE_SIZE))
            names.append(rel)
        archive = ws.dir / "files.tar"
        subprocess.run(["tar", "cf", str(archive), "-C", str(tree), "untar"], check=True,
                       timeout=600)

        local_times = []
        for k in range(3):
            dest = ws.dir / ("local%d" % k)
            dest.mkdir()
            local_times.append(tar_extract(archive, dest))
        local_t = statistics.median(local_times)

        odfs = ws.odfs(**mount_opts)
        odfs.login()
        odfs.mount()
        os.listdir(str(odfs.mnt))

        fake.stats_reset()
        start = time.monotonic()
        odfs_t = tar_extract(archive, odfs.mnt)
        n_landed = 0
        while True:
            n_landed = landed(fake, names)
            if n_landed == TAR_FILES:
                break
            if time.monotonic() - start > 300:
                n_landed = landed(fake, names, force=True)
                break
            time.sleep(0.05)
        landed_t = time.monotonic() - start
        st_landed = fake.stats()
        st = settled_stats(fake)

        rep.figure("baseline: tar xf on local disk (median of 3)",
                   "%s (%s)" % (fmt_s(local_t), ", ".join("%.3f" % x for x in local_times)))
        rep.figure("onedrivefs: tar xf returned after", fmt_s(odfs_t))
        rep.figure("tar time onedrivefs / local", "%.1f" % (odfs_t / local_t if local_t else 0))
        rep.figure("onedrivefs: all files landed after", "%s (%d of %d)"
                   % (fmt_s(landed_t), n_landed, TAR_FILES))
        rep.figure("requests until landed", "%d" % st_landed["total_requests"])
        rep.figure("requests once quiet (total_requests)", "%d (%s)"
                   % (st["total_requests"], top_labels(st, 5)))
        rep.figure("requests per file", "%.2f" % (st["total_requests"] / TAR_FILES))
        rep.goal("tar returns within 3x local disk", odfs_t <= 3 * local_t)
        rep.goal("all %d files landed under 8 s" % TAR_FILES,
                 n_landed == TAR_FILES and landed_t < 8)


# ---------------------------------------------------------------------- 6c
class Sampler(threading.Thread):
    """VmHWM and VmRSS of the daemon, and the bytes the open upload session
    has received, every 0.1 s."""

    def __init__(self, odfs, fake):
        super().__init__(daemon=True)
        self.odfs, self.fake = odfs, fake
        self.samples = []         # (seconds, hwm_kb, rss_kb, received bytes or None)
        self.stop = threading.Event()
        self.start_t = time.monotonic()

    def run(self):
        while not self.stop.is_set():
            try:
                hwm, rss = self.odfs.status("VmHWM"), self.odfs.status("VmRSS")
                sessions = self.fake.ctl("GET", "uploads").get("sessions", [])
                got = max((s["received"] for s in sessions), default=None)
            except (OSError, BenchError, ValueError):
                break
            self.samples.append((time.monotonic() - self.start_t, hwm, rss, got))
            self.stop.wait(0.1)


def bench_rss(rep, latency_ms, keep, mount_opts):
    log("== 6c. daemon memory while cp + fsync uploads a %d MiB file (latency %g ms)"
        % (RSS_SIZE // MiB, latency_ms))
    free = shutil.disk_usage(os.environ.get("TMPDIR") or "/tmp").free
    if free < RSS_FREE_NEEDED:
        log("  skipped: %.1f GiB free in the temporary folder, %d GiB needed (source, staging "
            "copy and the server's copy)" % (free / 1024 / MiB, RSS_FREE_NEEDED // 1024 // MiB))
        return
    with Workspace("write-rss", latency_ms, keep) as ws:
        fake = ws.fake
        src = ws.dir / "src.bin"
        make_source(src, RSS_SIZE, 7)
        odfs = ws.odfs(**mount_opts)
        odfs.login()
        odfs.mount()
        os.listdir(str(odfs.mnt))
        hwm_start = odfs.status("VmHWM")

        fake.stats_reset()
        sampler = Sampler(odfs, fake)
        sampler.start()
        try:
            odfs_t = copy_fsync(src, odfs.mnt / "odfs-1GiB.bin")
        finally:
            sampler.stop.set()
            sampler.join()
        hwm_end = odfs.status("VmHWM")
        rss_end = odfs.status("VmRSS")
        st = fake.stats()
        size = fake.dump_by_path().get("odfs-1GiB.bin", {}).get("size")

        s = sampler.samples
        up = [x for x in s if x[3] is not None]
        first_up = up[0] if up else None
        quarter = next((x for x in up if x[3] >= RSS_SIZE // 4), None)
        rep.figure("VmHWM after mount (baseline)", "%.1f MB" % (hwm_start / 1024))
        if first_up:
            rep.figure("VmHWM when the upload started", "%.1f MB at %.1f s"
                       % (first_up[1] / 1024, first_up[0]))
        if quarter:
            rep.figure("VmHWM at a quarter of the upload", "%.1f MB at %.1f s"
                       % (quarter[1] / 1024, quarter[0]))
        rep.figure("VmHWM at the end (peak)", "%.1f MB" % (hwm_end / 1024))
        rep.figure("VmRSS: largest sample, at the end", "%.1f MB, %.1f MB"
                   % (max((x[2] for x in s), default=0) / 1024, rss_end / 1024))
        rep.figure("samples (every 0.1 s)", "%d" % len(s))
        rep.figure("onedrivefs: cp + fsync of 1 GiB", "%s, %.1f MiB/s, %d requests"
                   % (fmt_s(odfs_t), RSS_SIZE / MiB / odfs_t if odfs_t else 0,
                      st["total_requests"]))
        rep.goal("peak RSS under 40 MB while uploading", hwm_end < RSS_GOAL_KB)
        rep.goal("peak RSS flat (end - quarter < 4 MB)",
                 quarter is not None and hwm_end - quarter[1] < RSS_FLAT_KB)
        rep.goal("1 GiB file landed", size == RSS_SIZE)


BENCHES = {"cp": bench_cp, "tar": bench_tar, "rss": bench_rss}


def run(latency_ms=50, keep=False, parts=None, workers=None, small_uploads=None):
    rep = Report("write")
    mount_opts = {"poll_interval": 0, "upload_chunk": CHUNK}
    if workers:
        mount_opts["upload_workers"] = workers
        log("(upload_workers=%d)" % workers)
    if small_uploads:
        mount_opts["small_uploads"] = small_uploads
        log("(small_uploads=%d)" % small_uploads)
    for name in parts or PARTS:
        BENCHES[name](rep, latency_ms, keep, mount_opts)
    return rep


def main():
    ap = bench_parser(__doc__, keep_help="keep the temporary folders")
    ap.add_argument("parts", nargs="*", metavar="PART", help="cp, tar or rss (default: all)")
    ap.add_argument("--workers", type=int, metavar="N",
                    help="upload_workers for the mounts (default: the daemon's, 4)")
    ap.add_argument("--small-uploads", type=int, metavar="N",
                    help="small_uploads for the mounts (default: the daemon's, 32)")
    a = ap.parse_args()
    for p in a.parts:
        if p not in BENCHES:
            ap.error("unknown part '%s': choose from %s" % (p, ", ".join(PARTS)))
    return run(a.latency_ms, a.keep, a.parts, a.workers, a.small_uploads).exit_status()


if __name__ == "__main__":
    sys.exit(main())
