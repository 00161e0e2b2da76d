#!/usr/bin/env python3
"""make demo / make demo-stop: try onedrivefs without a Microsoft account.

start  runs the fake Graph server (tests/fakegraph) with a sample drive,
       signs in to it, writes a config file and mounts it on demo/OneDrive.
stop   unmounts, stops the daemon and the fake server and removes demo/.

Everything lives in demo/ at the top of the source tree:
  demo/fake.log, fake.pid, fake.port   the fake server
  demo/config/onedrivefs/              config and tokens.json (XDG_CONFIG_HOME)
  demo/cache/onedrivefs/               metadata and content cache (XDG_CACHE_HOME)
  demo/daemon.log, daemon.pid          onedrivefs's start-up output and pid
  demo/OneDrive                        the mount point
Python 3 standard library only; nothing is built here (make did that).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "demo"
BINARY = REPO / "onedrivefs"
FAKE_MAIN = REPO / "tests" / "fakegraph" / "__main__.py"
MNT = DEMO / "OneDrive"
CONFIG_HOME = DEMO / "config"
CACHE_HOME = DEMO / "cache"
FAKE_LOG = DEMO / "fake.log"
FAKE_PID = DEMO / "fake.pid"
FAKE_PORT = DEMO / "fake.port"
DAEMON_LOG = DEMO / "daemon.log"
DAEMON_PID = DEMO / "daemon.pid"
CLIENT_ID = "00000000-0000-0000-0000-0000000000a1"   # the fake's public client id

PORT_DEADLINE = 20       # seconds for the fake server to listen
LOGIN_DEADLINE = 60      # seconds for `onedrivefs login`
MOUNT_DEADLINE = 60      # seconds for `onedrivefs MOUNTPOINT` to return
STOP_DEADLINE = 10       # seconds for a process to exit after a request


def say(msg=""):
    print(msg, flush=True)


def fail(msg):
    print("demo: " + msg, file=sys.stderr, flush=True)
    return 1


def rel(path):
    """path as the user should type it (relative when under the cwd)."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


# ---------------------------------------------------------------- processes
def read_pid(path):
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None


def argv_of(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return []
    return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0") if a]


def is_daemon(argv):
    """argv is onedrivefs (maybe under valgrind) serving the demo mount point."""
    return (any(os.path.basename(a) == "onedrivefs" for a in argv[:8])
            and str(MNT) in argv)


def is_fake(argv):
    return any(a == str(FAKE_MAIN) for a in argv[:4])


def alive(pid, check):
    """pid runs and check(its argv) holds (guards against pid reuse)."""
    if pid is None:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and check(argv_of(pid))


def wait_gone(pid, check, seconds):
    end = time.monotonic() + seconds
    while alive(pid, check):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


def stop_pid(pid, check, what):
    """SIGTERM, wait, then SIGKILL.  Returns a message or None."""
    if not alive(pid, check):
        return None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    if wait_gone(pid, check, STOP_DEADLINE):
        return "stopped %s (pid %d)" % (what, pid)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    wait_gone(pid, check, STOP_DEADLINE)
    return "killed %s (pid %d): it did not stop within %ds" % (what, pid, STOP_DEADLINE)


def daemon_pids():
    """onedrivefs processes serving the demo mount point."""
    return [int(d) for d in os.listdir("/proc")
            if d.isdigit() and int(d) != os.getpid() and is_daemon(argv_of(int(d)))]


# ------------------------------------------------------------------- mounts
def is_mounted(path):
    path = os.path.realpath(str(path))
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                mp = line.split()[4]
                mp = mp.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
                if mp == path:
                    return True
    except OSError:
        pass
    return False


def unmount(path):
    """Unmount path, lazily if busy.  Returns a message or None."""
    if not is_mounted(path):
        return None
    r = subprocess.run(["fusermount3", "-u", str(path)], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=30)
    if r.returncode == 0 and not is_mounted(path):
        return "unmounted %s" % rel(path)
    subprocess.run(["fusermount3", "-uz", str(path)], capture_output=True, text=True,
                   stdin=subprocess.DEVNULL, timeout=30)
    if is_mounted(path):
        return None
    return "unmounted %s lazily: it was busy" % rel(path)


# -------------------------------------------------------------------- start
def demo_env():
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("XDG_", "ODFS_")) or k.lower() in ("http_proxy", "https_proxy",
                                                             "all_proxy"):
            del env[k]
    env.update(XDG_CONFIG_HOME=str(CONFIG_HOME), XDG_CACHE_HOME=str(CACHE_HOME),
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    return env


def tail(path, lines=15):
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def running_parts():
    parts = []
    if is_mounted(MNT):
        parts.append("%s is mounted" % rel(MNT))
    if alive(read_pid(FAKE_PID), is_fake):
        parts.append("the fake server runs (pid %d)" % read_pid(FAKE_PID))
    if daemon_pids():
        parts.append("onedrivefs runs (pid %s)" % ", ".join(map(str, daemon_pids())))
    return parts


def start_fake():
    """Start the fake server; returns its base URL or None."""
    FAKE_PORT.unlink(missing_ok=True)
    with open(FAKE_LOG, "wb") as log:
        proc = subprocess.Popen([sys.executable, str(FAKE_MAIN), "--port", "0",
                                 "--port-file", str(FAKE_PORT), "--sample", "--auto-approve"],
                                cwd=str(REPO), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    FAKE_PID.write_text("%d\n" % proc.pid)
    end = time.monotonic() + PORT_DEADLINE
    while time.monotonic() < end:
        try:
            port = int(FAKE_PORT.read_text().strip())
            if 0 < port < 65536:
                return "http://127.0.0.1:%d" % port
        except (OSError, ValueError):
            pass
        if proc.poll() is not None:
            fail("the fake server exited with status %d; its log (%s):" % (proc.returncode,
                                                                          rel(FAKE_LOG)))
            print(tail(FAKE_LOG), file=sys.stderr)
            return None
        time.sleep(0.05)
    fail("the fake server did not write '%s' within %ds; see %s"
         % (rel(FAKE_PORT), PORT_DEADLINE, rel(FAKE_LOG)))
    return None


def fake_control(url, path, body):
    req = urllib.request.Request(url + "/_control/" + path, data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
    except OSError:
        pass    # only a speed-up: the default interval works too


def write_config(keys):
    cfg_dir = CONFIG_HOME / "onedrivefs"
    cfg_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = "# written by 'make demo': settings for the fake Graph server\n"
    text += "".join("%s = %s\n" % kv for kv in keys.items())
    path = cfg_dir / "config"
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def find_daemon(seconds=5):
    end = time.monotonic() + seconds
    while True:
        pids = daemon_pids()
        if pids or time.monotonic() > end:
            return pids
        time.sleep(0.05)


def start():
    if not BINARY.exists():
        return fail("'%s' is not built: run 'make demo' (or 'make' first)" % rel(BINARY))
    if not FAKE_MAIN.exists():
        return fail("the fake server '%s' is missing" % rel(FAKE_MAIN))
    if not os.path.exists("/dev/fuse"):
        return fail("/dev/fuse does not exist: load the fuse module ('sudo modprobe fuse')")
    if shutil.which("fusermount3") is None:
        return fail("fusermount3 not found: install fuse3 ('sudo apt-get install fuse3')")

    parts = running_parts()
    if parts:
        say("the demo is already running: " + "; ".join(parts) + ".")
        say("stop it with:  make demo-stop")
        return 0

    # Leftovers of a demo that was not stopped cleanly.
    shutil.rmtree(DEMO, ignore_errors=True)
    for d in (DEMO, CONFIG_HOME, CACHE_HOME, MNT):
        d.mkdir(mode=0o700, parents=True, exist_ok=True)

    say("starting the fake Graph server (log: %s)" % rel(FAKE_LOG))
    url = start_fake()
    if url is None:
        return abort()
    say("fake Graph server listening on %s" % url)
    fake_control(url, "config", {"device_interval": 1})

    keys = {"client_id": CLIENT_ID, "auth_url": url, "graph_url": url + "/v1.0"}
    opts = ",".join("%s=%s" % kv for kv in keys.items())
    env = demo_env()

    say()
    say("signing in; the fake server approves the code by itself:")
    say("$ ./onedrivefs login -o %s" % opts)
    try:
        r = subprocess.run([str(BINARY), "login", "-o", opts], env=env, cwd=str(REPO),
                           stdin=subprocess.DEVNULL, timeout=LOGIN_DEADLINE)
    except subprocess.TimeoutExpired:
        fail("'onedrivefs login' did not finish within %ds" % LOGIN_DEADLINE)
        return abort()
    if r.returncode != 0:
        fail("'onedrivefs login' failed (exit status %d)" % r.returncode)
        return abort()

    cfg = write_config(keys)
    say()
    say("wrote %s, so later commands need no -o" % rel(cfg))

    say("mounting:")
    say("$ XDG_CONFIG_HOME=%s XDG_CACHE_HOME=%s ./onedrivefs %s"
        % (rel(CONFIG_HOME), rel(CACHE_HOME), rel(MNT)))
    try:
        with open(DAEMON_LOG, "wb") as log:
            r = subprocess.run([str(BINARY), str(MNT)], env=env, cwd=str(REPO),
                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               timeout=MOUNT_DEADLINE)
    except subprocess.TimeoutExpired:
        fail("'onedrivefs %s' did not return within %ds" % (rel(MNT), MOUNT_DEADLINE))
        return abort()
    out = tail(DAEMON_LOG, 30)
    if out:
        say(out)
    if r.returncode != 0 or not is_mounted(MNT):
        fail("mounting failed (exit status %d)" % r.returncode)
        return abort()
    pids = find_daemon()
    if pids:
        DAEMON_PID.write_text("%d\n" % pids[0])

    m = rel(MNT)
    say()
    say("the demo drive is mounted on %s.  Try:" % m)
    say("  ls %s" % m)
    say("  ls -l %s/Documents" % m)
    say("  cat %s/Documents/notes.txt" % m)
    say("  df -h %s" % m)
    say("  echo hi > %s/hello.txt" % m)
    say("  getfattr -d -m - %s/hello.txt      # user.onedrive.status: dirty, then clean" % m)
    say("  ./onedrivefs versions %s/Documents/notes.txt" % m)
    say("  find %s | head" % m)
    say("stop the demo with:  make demo-stop")
    return 0


def abort():
    """Undo a failed start; the logs are kept for a look."""
    for path in (FAKE_LOG, DAEMON_LOG):
        if path.exists() and path.stat().st_size:
            say("see %s" % rel(path))
    stop(keep_logs=True, quiet=True)
    return 1


# --------------------------------------------------------------------- stop
def stop(keep_logs=False, quiet=False):
    msgs = []
    m = unmount(MNT)
    if m:
        msgs.append(m)
    lazy = m is not None and "lazily" in m
    if is_mounted(MNT):
        fail("cannot unmount %s: run 'fusermount3 -uz %s' and try again" % (rel(MNT), rel(MNT)))
        return 1

    # After the unmount the daemon exits by itself; wait for it, then insist.
    pids = set(daemon_pids())
    p = read_pid(DAEMON_PID)
    if alive(p, is_daemon):
        pids.add(p)
    for pid in sorted(pids):
        # A lazy unmount leaves the daemon serving whoever still uses it.
        if not lazy and wait_gone(pid, is_daemon, STOP_DEADLINE):
            msgs.append("onedrivefs (pid %d) exited" % pid)
        else:
            m = stop_pid(pid, is_daemon, "onedrivefs")
            if m:
                msgs.append(m)

    m = stop_pid(read_pid(FAKE_PID), is_fake, "the fake server")
    if m:
        msgs.append(m)

    # Nothing secret stays behind: tokens, config and cache all go.
    if DEMO.exists():
        if keep_logs:
            for child in DEMO.iterdir():
                if child not in (FAKE_LOG, DAEMON_LOG):
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child, ignore_errors=True)
                    else:
                        child.unlink(missing_ok=True)
        else:
            shutil.rmtree(DEMO, ignore_errors=True)
            msgs.append("removed %s" % rel(DEMO))

    if not quiet:
        if msgs:
            for m in msgs:
                say(m)
            say("demo stopped")
        else:
            say("no demo is running")
    return 0


def main(argv):
    if len(argv) != 2 or argv[1] not in ("start", "stop"):
        print("usage: %s start|stop   (normally run by 'make demo' and 'make demo-stop')"
              % rel(Path(argv[0])), file=sys.stderr)
        return 2
    os.umask(0o077)
    try:
        return start() if argv[1] == "start" else stop()
    except KeyboardInterrupt:
        fail("interrupted; run 'make demo-stop' to clean up")
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv))
