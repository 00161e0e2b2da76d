"""Shared pieces of the onedrivefs benchmarks (Python 3 standard library).

Fake     the fake Graph server (tests/fakegraph) in its own process, with
         latency injected on every request, and its control endpoints.
Odfs     one onedrivefs set-up: private XDG config/cache folders, login,
         mount (daemon mode), unmount, the daemon's pid and memory.
Report   collects figures and goals; bench/run prints the summary.

Every benchmark makes its own temporary folder, fake server and cache, so
they do not disturb each other or your own ~/.cache/onedrivefs.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BINARY = Path(os.environ.get("ODFS_BINARY") or REPO / "onedrivefs")
FAKE_MAIN = REPO / "tests" / "fakegraph" / "__main__.py"
MiB = 1024 * 1024


class BenchError(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def fmt_s(seconds):
    return "%.2f s" % seconds


class Timer:
    def __enter__(self):
        self.start = time.monotonic()
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.start


def wait_until(cond, seconds, what):
    end = time.monotonic() + seconds
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise BenchError("timed out after %ds waiting for %s" % (seconds, what))
        time.sleep(0.05)


def clean_env(**extra):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("XDG_", "ODFS_")) or k.lower() in ("http_proxy", "https_proxy",
                                                             "all_proxy"):
            del env[k]
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost", LC_ALL="C.UTF-8")
    env.update(extra)
    return env


# --------------------------------------------------------------------- fake
class Fake:
    """The fake server as a separate process, latency applied to every
    non-control request (the control endpoints are never delayed); with
    bandwidth (bytes per second) response bodies share a link that fast."""

    def __init__(self, workdir, latency_ms, bandwidth=0):
        self.workdir = Path(workdir)
        self.latency_ms = latency_ms
        extra = ["--bandwidth", str(bandwidth)] if bandwidth else []
        port_file = self.workdir / "fake.port"
        self.log_path = self.workdir / "fake.log"
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(
                [sys.executable, str(FAKE_MAIN), "--port", "0", "--port-file", str(port_file),
                 "--auto-approve", "--device-interval", "1", "--latency-ms", str(latency_ms)] + extra,
                cwd=str(REPO), stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True)

        def port():
            if self.proc.poll() is not None:
                raise BenchError("the fake server exited; see %s" % self.log_path)
            try:
                return int(port_file.read_text().strip())
            except (OSError, ValueError):
                return None
        self.url = "http://127.0.0.1:%d" % wait_until(port, 30, "the fake server's port file")
        self.graph_url = self.url + "/v1.0"
        self.auth_url = self.url
        self.client_id = self.ctl("GET", "info").get("client_id",
                                                     "00000000-0000-0000-0000-0000000000a1")

    def ctl(self, method, path, body=None, timeout=600):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "/_control/" + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
        return json.loads(raw) if raw.strip() else {}

    def seed(self, tree=None, generate=None):
        body = {}
        if tree is not None:
            body["tree"] = tree
        if generate is not None:
            body["generate"] = generate
        return self.ctl("POST", "seed", body)

    def stats(self):
        return self.ctl("GET", "stats")

    def stats_reset(self):
        self.ctl("POST", "stats/reset", {})

    def dump_by_path(self):
        return {r["path"].lstrip("/"): r for r in self.ctl("GET", "dump")["items"]}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def graph_requests(stats):
    """Requests a client made to Graph and download URLs (not sign-in)."""
    return sum(n for label, n in stats["requests"].items() if "token" not in label
               and "devicecode" not in label and "devicelogin" not in label)


def top_labels(stats, n=4):
    items = sorted(stats["requests"].items(), key=lambda kv: -kv[1])[:n]
    return ", ".join("%s: %d" % kv for kv in items) or "none"


# --------------------------------------------------------------------- odfs
class Odfs:
    """onedrivefs with private config/cache folders pointed at a Fake."""

    def __init__(self, workdir, fake, **settings):
        if not BINARY.exists():
            raise BenchError("'%s' is not built: run 'make' first" % BINARY)
        self.workdir = Path(workdir)
        self.fake = fake
        self.config_home = self.workdir / "config"
        self.cache_home = self.workdir / "cache"
        self.mnt = self.workdir / "mnt"
        for d in (self.config_home, self.cache_home, self.mnt):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.env = clean_env(XDG_CONFIG_HOME=str(self.config_home),
                             XDG_CACHE_HOME=str(self.cache_home))
        keys = {"client_id": fake.client_id, "auth_url": fake.auth_url,
                "graph_url": fake.graph_url}
        keys.update({k: str(v) for k, v in settings.items()})
        cfg = self.config_home / "onedrivefs"
        cfg.mkdir(mode=0o700, exist_ok=True)
        (cfg / "config").write_text("".join("%s = %s\n" % kv for kv in keys.items()))
        self.pid = None

    def login(self):
        r = subprocess.run([str(BINARY), "login"], env=self.env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise BenchError("onedrivefs login failed (%d): %s" % (r.returncode,
                                                                   r.stderr.strip()))

    def mount(self):
        r = subprocess.run([str(BINARY), str(self.mnt)], env=self.env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise BenchError("mounting failed (%d): %s" % (r.returncode, r.stderr.strip()))
        wait_until(self.is_mounted, 30, "the mount to appear")
        self.pid = wait_until(self._find_pid, 10, "the daemon's pid")

    def _find_pid(self):
        mnt = str(self.mnt)
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    argv = [a.decode("utf-8", "replace") for a in f.read().split(b"\0")]
            except OSError:
                continue
            if argv and os.path.basename(argv[0]) == "onedrivefs" and mnt in argv:
                return int(d)
        return None

    def is_mounted(self):
        mnt = os.path.realpath(str(self.mnt))
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == mnt for line in f)

    def status(self, field):
        """A field of /proc/PID/status in kB (VmHWM, VmRSS)."""
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise BenchError("no %s in /proc/%d/status" % (field, self.pid))

    def unmount(self):
        if self.is_mounted():
            r = subprocess.run(["fusermount3", "-u", str(self.mnt)], capture_output=True,
                               text=True, timeout=60)
            if r.returncode != 0:
                subprocess.run(["fusermount3", "-uz", str(self.mnt)], capture_output=True,
                               timeout=60)
        if self.pid:
            pid, self.pid = self.pid, None
            end = time.monotonic() + 20
            while os.path.exists("/proc/%d" % pid) and time.monotonic() < end:
                try:
                    with open("/proc/%d/stat" % pid) as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                            break
                except OSError:
                    break
                time.sleep(0.05)
            else:
                if os.path.exists("/proc/%d" % pid):
                    os.kill(pid, signal.SIGKILL)

    def token(self):
        with open(self.config_home / "onedrivefs" / "tokens.json") as f:
            return json.load(f)["access_token"]


# ------------------------------------------------------------------- report
class Report:
    """Figures and goals of one benchmark."""

    def __init__(self, name):
        self.name = name
        self.goals = []     # (text, ok)

    def figure(self, label, value):
        log("  %-44s %s" % (label, value))

    def goal(self, text, ok):
        self.goals.append((text, ok))
        log("  goal: %-38s %s" % (text, "met" if ok else "NOT MET"))

    def exit_status(self):
        """0 when every goal is met, else 1."""
        return 0 if all(ok for _, ok in self.goals) else 1


def bench_parser(doc, keep_help="keep the temporary folder"):
    """The command line every bench_*.py run alone starts from: --latency-ms, --keep."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--latency-ms", type=float, default=50)
    ap.add_argument("--keep", action="store_true", help=keep_help)
    return ap


class Workspace:
    """A temporary folder with a fake server; cleans up mounts and processes."""

    def __init__(self, name, latency_ms, keep=False, bandwidth=0):
        self.dir = Path(tempfile.mkdtemp(prefix="odfs-bench-%s-" % name))
        self.keep = keep
        self.fake = Fake(self.dir, latency_ms, bandwidth)
        self.mounts = []

    def odfs(self, sub="odfs", **settings):
        o = Odfs(self.dir / sub, self.fake, **settings)
        self.mounts.append(o)
        return o

    def close(self):
        for o in self.mounts:
            try:
                o.unmount()
            except (OSError, BenchError, subprocess.SubprocessError) as e:
                log("  warning: cleaning up '%s': %s" % (o.mnt, e))
        self.fake.stop()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            log("  kept %s" % self.dir)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# -------------------------------------------------------------------- curl
def curl_download(graph_url, item_id, header_file, range_=None):
    """What a plain HTTP client does: GET .../content with the bearer (302),
    then GET the download URL without it.  Returns (seconds, bytes)."""
    with Timer() as t:
        r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{redirect_url}",
                            "-H", "@%s" % header_file,
                            "%s/me/drive/items/%s/content" % (graph_url, item_id)],
                           capture_output=True, text=True, timeout=600)
        url = r.stdout.strip()
        if r.returncode != 0 or not url:
            raise BenchError("curl: no redirect for item '%s': %s" % (item_id, r.stderr.strip()))
        cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}"]
        if range_:
            cmd += ["-r", "%d-%d" % range_]
        r = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise BenchError("curl: download failed: %s" % r.stderr.strip())
    return t.seconds, int(float(r.stdout.strip() or 0))


def write_auth_header(path, token):
    """The bearer goes to curl in a 0600 file, not on its command line."""
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("Authorization: Bearer %s\n" % token)
