#!/usr/bin/env python3
"""Benchmark 3: a thumbnailer reading 64 KiB from the head of each of 200
files of 8 MiB.

onedrivefs  the folder is listed first (ls), then each file is opened,
            64 KiB read from offset 0, and closed
baseline    what was asked for (200 x 64 KiB), and, for time, curl asking
            for the same ranges (GET .../content, then a ranged GET of the
            download URL) with the same latency
figure      bytes the server sent / bytes asked (goal: at most 2)
"""

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (MiB, Report, Timer, Workspace, bench_parser, curl_download, fmt_s,  # noqa: E402
                      graph_requests, log, top_labels, write_auth_header)

FILES = 200
FILE_SIZE = 8 * MiB
HEAD = 64 * 1024


def run(latency_ms=50, keep=False):
    rep = Report("heads")
    log("== 3. %d KiB from the head of %d files of %d MiB (latency %g ms)"
        % (HEAD // 1024, FILES, FILE_SIZE // MiB, latency_ms))
    with Workspace("heads", latency_ms, keep) as ws:
        fake = ws.fake
        names = ["photos/img-%04d.jpg" % i for i in range(FILES)]
        fake.seed(tree=[{"path": n, "content": {"size": FILE_SIZE, "seed": 1000 + i}}
                        for i, n in enumerate(names)])
        ids = fake.dump_by_path()
        odfs = ws.odfs()
        odfs.login()
        odfs.mount()
        subprocess.run(["ls", "-l", str(odfs.mnt / "photos")], stdout=subprocess.DEVNULL,
                       check=True, timeout=600)

        fake.stats_reset()
        got = 0
        with Timer() as t:
            for n in names:
                fd = os.open(str(odfs.mnt / n), os.O_RDONLY)
                try:
                    got += len(os.read(fd, HEAD))
                finally:
                    os.close(fd)
        st = fake.stats()
        odfs_t = t.seconds

        header = ws.dir / "curl-auth"
        write_auth_header(header, odfs.token())
        fake.stats_reset()
        curl_t = 0.0
        for n in names:
            secs, _ = curl_download(fake.graph_url, ids[n]["id"], header, (0, HEAD - 1))
            curl_t += secs
        header.unlink()
        curl_sent = fake.stats()["bytes_sent_content"]

        asked = FILES * HEAD
        ratio = st["bytes_sent_content"] / asked
        rep.figure("bytes asked (baseline)", "%d (%d x %d)" % (asked, FILES, HEAD))
        rep.figure("bytes read through the mount", "%d" % got)
        rep.figure("bytes the server sent (content)", "%d" % st["bytes_sent_content"])
        rep.figure("bytes sent by the server for curl", "%d" % curl_sent)
        rep.figure("onedrivefs: time, requests", "%s, %d (%s)"
                   % (fmt_s(odfs_t), graph_requests(st), top_labels(st)))
        rep.figure("baseline: curl ranged fetches, time", fmt_s(curl_t))
        rep.figure("time onedrivefs / curl", "%.2f" % (odfs_t / curl_t if curl_t else 0))
        rep.figure("bytes sent / bytes asked", "%.2f" % ratio)
        rep.goal("thumbnail ratio at most 2", ratio <= 2)
        rep.goal("every head read in full", got == asked)
    return rep


def main():
    ap = bench_parser(__doc__)
    a = ap.parse_args()
    return run(a.latency_ms, a.keep).exit_status()


if __name__ == "__main__":
    sys.exit(main())
