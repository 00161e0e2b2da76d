#!/usr/bin/env python3
"""Benchmark 5: the first mount filled from delta, and remote changes.

5a. cold `find -ls` over 10,000 files in 1,000 folders on an empty cache,
    twice in the same run against the same server and latency:
      walk   poll_interval=0: every folder listed with GET /children
      delta  the default: the tree comes from root delta pages
    (goals: delta makes at most 60 requests and takes at most a tenth of
    the walk's time)
5b. time from a change made by another client (a new file, written
    through the Graph API with no latency) to `stat` in the mount seeing
    it, for a few changes, with poll_interval=1 (goal: every change seen
    within poll_interval + 1 s)
"""

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (Report, Timer, Workspace, bench_parser, fmt_s, graph_requests,  # noqa: E402
                      log, top_labels)

FOLDERS = 1000
FILES_PER_FOLDER = 10
ENTRIES = FOLDERS * (FILES_PER_FOLDER + 1) + 1
REQUEST_GOAL = 60
CHANGES = 5
POLL = 1


def find_ls(mnt):
    with Timer() as t:
        r = subprocess.run(["find", str(mnt), "-ls"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=3600)
    if r.returncode != 0:
        log("  warning: find exited with %d: %s" % (r.returncode,
                                                    r.stderr.decode(errors="replace")[:300]))
    return t.seconds, r.stdout.count(b"\n")


def cold_pass(ws, sub, **settings):
    odfs = ws.odfs(sub, dir_ttl=3600, **settings)
    odfs.login()
    ws.fake.stats_reset()
    with Timer() as t:
        odfs.mount()
        _, lines = find_ls(odfs.mnt)
    stats = ws.fake.stats()
    return odfs, t.seconds, lines, stats


def peer_put(fake, token, path, data):
    """Another device writes a file: the peer header skips latency and stats."""
    url = "%s/me/drive/root:/%s:/content" % (fake.graph_url, path)
    req = urllib.request.Request(url, data=data, method="PUT",
                                 headers={"Authorization": "Bearer " + token,
                                          "Content-Type": "application/octet-stream",
                                          "X-Fakegraph-Peer": "1"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def change_latency(fake, odfs, n):
    token = odfs.token()
    times = []
    for i in range(n):
        rel = "bench-change-%d.txt" % i
        path = odfs.mnt / rel
        peer_put(fake, token, rel, b"changed elsewhere %d\n" % i)
        start = time.monotonic()
        while not os.path.exists(path):
            if time.monotonic() - start > 60:
                break
            time.sleep(0.005)
        times.append(time.monotonic() - start)
        time.sleep(0.3)     # spread the changes over the poll cycle
    return times


def run(latency_ms=50, keep=False):
    rep = Report("delta")
    log("== 5. first mount from delta, %d files in %d folders (latency %g ms)"
        % (FOLDERS * FILES_PER_FOLDER, FOLDERS, latency_ms))
    with Workspace("delta", latency_ms, keep) as ws:
        ws.fake.seed(generate={"folders": FOLDERS, "files_per_folder": FILES_PER_FOLDER,
                               "file_size": 100})
        walk, walk_t, walk_lines, walk_stats = cold_pass(ws, "walk", poll_interval=0)
        walk.unmount()
        delta, delta_t, delta_lines, delta_stats = cold_pass(ws, "delta", poll_interval=POLL)
        walk_req = graph_requests(walk_stats)
        delta_req = graph_requests(delta_stats)
        rep.figure("entries printed by find (walk / delta)", "%d / %d" % (walk_lines, delta_lines))
        rep.figure("walk: mount + cold find, requests", "%s, %d" % (fmt_s(walk_t), walk_req))
        rep.figure("walk: requests by kind", top_labels(walk_stats))
        rep.figure("delta: mount + cold find, requests", "%s, %d" % (fmt_s(delta_t), delta_req))
        rep.figure("delta: requests by kind", top_labels(delta_stats))
        rep.figure("delta / walk: time", "%.3f" % (delta_t / walk_t if walk_t else 0))
        rep.figure("delta / walk: requests", "%.3f" % (delta_req / walk_req if walk_req else 0))

        times = change_latency(ws.fake, delta, CHANGES)
        rep.figure("change -> stat, poll_interval=%d (median / max)" % POLL,
                   "%.2f s / %.2f s" % (statistics.median(times), max(times)))
        rep.figure("change -> stat, each", " ".join("%.2f" % t for t in times))
        delta.unmount()

        rep.goal("all %d entries listed both ways" % ENTRIES,
                 walk_lines == delta_lines == ENTRIES)
        rep.goal("delta cold find: at most %d requests" % REQUEST_GOAL, delta_req <= REQUEST_GOAL)
        rep.goal("delta cold find: at most 1/10 of the walk's time",
                 walk_t > 0 and delta_t <= walk_t / 10)
        rep.goal("every change seen within %d s" % (POLL + 1), max(times) <= POLL + 1)
    return rep


def main():
    ap = bench_parser(__doc__)
    a = ap.parse_args()
    return run(a.latency_ms, a.keep).exit_status()


if __name__ == "__main__":
    sys.exit(main())
