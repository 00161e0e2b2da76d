"""CLI: run the fake Graph server until SIGTERM/SIGINT.

    python3 tests/fakegraph/__main__.py --port 0 --port-file FILE [--sample]
        [--auto-approve] [--latency-ms N] [--bandwidth BYTES_PER_S] [--page-size N] [--device-interval N]
        [--access-token-lifetime N] [--account personal|business] [--auto-consent] [--verbose]
    python3 -m tests.fakegraph ...   (from the repository root)

Writes the port to FILE (atomically) once listening and prints
"fake graph server listening on http://127.0.0.1:PORT".
"""

import os
import sys

if __package__ in (None, ""):
    # Run as a script: make the package importable as "fakegraph" and keep
    # this directory off sys.path (its module names must not shadow stdlib).
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(_here))
    from fakegraph import FakeGraph  # noqa: E402
else:
    from . import FakeGraph

import argparse  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(prog="fakegraph", description="Fake Microsoft Graph / OneDrive server")
    ap.add_argument("--port", type=int, default=0, help="TCP port (0 = pick a free one)")
    ap.add_argument("--port-file", help="write the chosen port to this file once listening")
    ap.add_argument("--sample", action="store_true", help="seed the sample drive")
    ap.add_argument("--auto-approve", action="store_true", help="approve device codes immediately")
    ap.add_argument("--latency-ms", type=float, default=0, help="delay added to every request")
    ap.add_argument("--bandwidth", type=float, default=0,
                    help="bytes per second all response bodies share (0: unlimited)")
    ap.add_argument("--page-size", type=int, default=200)
    ap.add_argument("--device-interval", type=int, default=5)
    ap.add_argument("--access-token-lifetime", type=int, default=3600)
    ap.add_argument("--account", choices=("personal", "business"), default="personal",
                    help="kind of the primary account")
    ap.add_argument("--auto-consent", action="store_true",
                    help="/authorize redirects with a code at once (no sign-in page)")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)

    # handlers first: readiness (port file / banner) implies signals work
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    fake = FakeGraph(port=args.port, sample=args.sample, verbose=args.verbose,
                     auto_approve=args.auto_approve, latency_ms=args.latency_ms,
                     bandwidth=args.bandwidth,
                     page_size=args.page_size, device_interval=args.device_interval,
                     access_token_lifetime=args.access_token_lifetime, account=args.account,
                     auto_consent=args.auto_consent)
    fake.start()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % fake.port)
        os.replace(tmp, args.port_file)
    print("fake graph server listening on %s" % fake.url, flush=True)

    while not stop.wait(3600):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
