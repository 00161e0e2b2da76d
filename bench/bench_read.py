#!/usr/bin/env python3
"""Benchmark 2: cold sequential read of a 256 MiB file.

onedrivefs  read the file through a fresh mount (empty content cache) in
            1 MiB reads, as cp or cat would; the file is looked up (stat)
            before the clock starts, as curl starts from a known item id
baseline    curl fetching the same file from the same fake server, with the
            same latency: GET .../content with the bearer (302), then GET
            the download URL without it
figure      throughput ratio onedrivefs / curl (goal: at least 0.9)

On loopback the fake sends far faster than a real connection; --bandwidth
MB/s (repeatable, 0 = unlimited) caps the link the server's responses share
and runs the measurement once per cap, each with its own fake and mount.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (MiB, Report, Timer, Workspace, bench_parser, curl_download, fmt_s,  # noqa: E402
                      graph_requests, log, top_labels, write_auth_header)

SIZE = 256 * MiB
PATH = "bench/big-256MiB.bin"


def read_all(path, chunk=MiB, advise=True):
    """Read path to its end in chunk-sized reads.  advise: tell the kernel
    the reads are sequential first, as cat and cp do (coreutils'
    fdadvise(FADVISE_SEQUENTIAL)); the kernel then reads ahead twice as far
    and its first read of the file is 256 KiB instead of 128 KiB."""
    total = 0
    fd = os.open(str(path), os.O_RDONLY)
    try:
        with Timer() as t:
            if advise:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            while True:
                b = os.read(fd, chunk)
                if not b:
                    break
                total += len(b)
    finally:
        os.close(fd)
    return t.seconds, total


def link_name(mbs):
    return "%g MB/s" % mbs if mbs else "unlimited"


def run(latency_ms=50, keep=False, bandwidths=(0,)):
    rep = Report("read")
    for mbs in bandwidths:
        run_one(rep, latency_ms, keep, mbs)
    return rep


def run_one(rep, latency_ms, keep, mbs):
    log("== 2. cold sequential read of a %d MiB file (latency %g ms, link %s)"
        % (SIZE // MiB, latency_ms, link_name(mbs)))
    tag = " (%s)" % link_name(mbs) if mbs else ""
    with Workspace("read", latency_ms, keep, bandwidth=int(mbs * 1e6)) as ws:
        fake = ws.fake
        fake.seed(tree=[{"path": PATH, "content": {"size": SIZE, "seed": 256}}])
        item_id = fake.dump_by_path()[PATH]["id"]
        odfs = ws.odfs()
        odfs.login()
        odfs.mount()

        header = ws.dir / "curl-auth"
        write_auth_header(header, odfs.token())
        fake.stats_reset()
        curl_t, curl_n = curl_download(fake.graph_url, item_id, header)
        header.unlink()
        if curl_n != SIZE:
            log("  warning: curl fetched %d bytes, expected %d" % (curl_n, SIZE))

        # Look the file up first: curl starts from a known id, so the timed
        # part compares transfers, not path lookups.
        os.stat(str(odfs.mnt / PATH))
        fake.stats_reset()
        odfs_t, odfs_n = read_all(odfs.mnt / PATH)
        st = fake.stats()

        curl_mbs = curl_n / MiB / curl_t if curl_t else 0
        odfs_mbs = odfs_n / MiB / odfs_t if odfs_t else 0
        ratio = odfs_mbs / curl_mbs if curl_mbs else 0
        rep.figure("baseline: curl 302 + download", "%s, %.1f MiB/s" % (fmt_s(curl_t), curl_mbs))
        rep.figure("onedrivefs: cold sequential read", "%s, %.1f MiB/s" % (fmt_s(odfs_t),
                                                                          odfs_mbs))
        rep.figure("onedrivefs: bytes read", "%d" % odfs_n)
        rep.figure("onedrivefs: requests", "%d (%s)" % (graph_requests(st), top_labels(st)))
        rep.figure("onedrivefs: bytes sent by the server / file size",
                   "%.3f" % (st["bytes_sent_content"] / SIZE))
        rep.figure("throughput ratio onedrivefs / curl", "%.2f" % ratio)
        rep.goal("read ratio at least 0.9" + tag, ratio >= 0.9)
        rep.goal("whole file read" + tag, odfs_n == SIZE)


def main():
    ap = bench_parser(__doc__)
    ap.add_argument("--bandwidth", type=float, action="append", metavar="MBPS",
                    help="cap the server's link at MBPS MB/s (repeatable; 0 = unlimited)")
    a = ap.parse_args()
    return run(a.latency_ms, a.keep, a.bandwidth or (0,)).exit_status()


if __name__ == "__main__":
    sys.exit(main())
