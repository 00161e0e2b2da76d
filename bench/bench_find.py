#!/usr/bin/env python3
"""Benchmarks 1 and 4: `find -ls` over 10,000 files in 1,000 folders, and
the daemon's peak memory after that listing.

1. cold     fresh cache, first `find -ls` of the whole tree
   warm     the same again in the same mount        (goal: 0 Graph requests)
   remount  unmount, mount again on the same cache  (goal: 0 Graph requests)
   baseline a plain client listing the same tree with sequential
            GET /children requests (following @odata.nextLink), timed in
            the same run with the same latency
4. VmHWM of the daemon right after mounting and after the cold listing
   (goal: under 30 MB)

The mount uses dir_ttl=3600 (settable with --dir-ttl) so that the minute
the cold pass itself takes does not expire the listings it made, and
poll_interval=0: this measures the folder walk (no delta thread, whose
polls would also count as requests); bench_delta.py measures the first
mount filled from delta next to the same walk.
"""

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (Report, Timer, Workspace, bench_parser, fmt_s, graph_requests,  # noqa: E402
                      log, top_labels)

FOLDERS = 1000
FILES_PER_FOLDER = 10
RSS_GOAL_KB = 30 * 1024


def find_ls(mnt):
    with Timer() as t:
        r = subprocess.run(["find", str(mnt), "-ls"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=3600)
    lines = r.stdout.count(b"\n")
    if r.returncode != 0:
        log("  warning: find exited with %d: %s" % (r.returncode,
                                                    r.stderr.decode(errors="replace")[:300]))
    return t.seconds, lines


def baseline_walk(graph_url, token):
    """Sequential listing of every folder by id, as a simple client does."""
    requests = 0
    items = 0

    def get(url):
        nonlocal requests
        requests += 1
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.load(r)

    root = get(graph_url + "/me/drive/root")
    todo = [root["id"]]
    with Timer() as t:
        while todo:
            folder = todo.pop()
            url = "%s/me/drive/items/%s/children?$top=1000" % (graph_url, folder)
            while url:
                page = get(url)
                for it in page.get("value", []):
                    items += 1
                    if "folder" in it:
                        todo.append(it["id"])
                url = page.get("@odata.nextLink")
    return t.seconds, requests - 1, items


def run(latency_ms=50, dir_ttl=3600, keep=False):
    rep = Report("find")
    log("== 1. find -ls over %d files in %d folders (latency %g ms)"
        % (FOLDERS * FILES_PER_FOLDER, FOLDERS, latency_ms))
    with Workspace("find", latency_ms, keep) as ws:
        fake = ws.fake
        fake.seed(generate={"folders": FOLDERS, "files_per_folder": FILES_PER_FOLDER,
                            "file_size": 100})
        odfs = ws.odfs(dir_ttl=dir_ttl, poll_interval=0)
        odfs.login()
        odfs.mount()
        hwm_start = odfs.status("VmHWM")

        fake.stats_reset()
        cold_t, lines = find_ls(odfs.mnt)
        cold = fake.stats()
        hwm_listed = odfs.status("VmHWM")
        rss_listed = odfs.status("VmRSS")

        fake.stats_reset()
        warm_t, _ = find_ls(odfs.mnt)
        warm = fake.stats()

        odfs.unmount()
        odfs.mount()
        fake.stats_reset()
        re_t, re_lines = find_ls(odfs.mnt)
        again = fake.stats()

        fake.stats_reset()
        base_t, base_req, base_items = baseline_walk(fake.graph_url, odfs.token())

        rep.figure("entries printed by find (cold / remount)", "%d / %d" % (lines, re_lines))
        rep.figure("baseline: sequential GET /children", "%s, %d requests, %d items"
                   % (fmt_s(base_t), base_req, base_items))
        rep.figure("cold: wall time, Graph requests", "%s, %d" % (fmt_s(cold_t),
                                                                 graph_requests(cold)))
        rep.figure("cold: requests by kind", top_labels(cold))
        rep.figure("cold: time / baseline time", "%.2f" % (cold_t / base_t if base_t else 0))
        rep.figure("cold: requests / baseline requests",
                   "%.2f" % (graph_requests(cold) / base_req if base_req else 0))
        rep.figure("warm: wall time, Graph requests", "%s, %d" % (fmt_s(warm_t),
                                                                 graph_requests(warm)))
        rep.figure("remount: wall time, Graph requests", "%s, %d" % (fmt_s(re_t),
                                                                    graph_requests(again)))
        rep.figure("warm / cold time", "%.3f" % (warm_t / cold_t if cold_t else 0))
        rep.goal("warm listing makes 0 requests", graph_requests(warm) == 0)
        rep.goal("remounted listing makes 0 requests", graph_requests(again) == 0)
        rep.goal("all %d entries listed" % (FOLDERS * (FILES_PER_FOLDER + 1) + 1),
                 lines == re_lines == FOLDERS * (FILES_PER_FOLDER + 1) + 1)

        log("== 4. daemon memory after the %d-item listing" % (FOLDERS * (FILES_PER_FOLDER + 1)))
        rep.figure("VmHWM after mount (baseline)", "%.1f MB" % (hwm_start / 1024))
        rep.figure("VmHWM after the cold listing", "%.1f MB" % (hwm_listed / 1024))
        rep.figure("VmRSS after the cold listing", "%.1f MB" % (rss_listed / 1024))
        rep.figure("VmHWM after listing / after mount", "%.2f" % (hwm_listed / hwm_start
                                                                if hwm_start else 0))
        rep.goal("peak RSS under 30 MB", hwm_listed < RSS_GOAL_KB)
    return rep


def main():
    ap = bench_parser(__doc__)
    ap.add_argument("--dir-ttl", type=int, default=3600)
    a = ap.parse_args()
    return run(a.latency_ms, a.dir_ttl, a.keep).exit_status()


if __name__ == "__main__":
    sys.exit(main())
