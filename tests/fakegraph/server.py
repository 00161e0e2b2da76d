"""HTTP front end: ThreadingHTTPServer (HTTP/1.1, keep-alive, daemon
threads, 127.0.0.1), request routing, latency and fault injection, stats.

Routes (by path prefix):
  /v1.0/$batch                    JSON batching        (batch.py)
  /v1.0/...                       Graph API            (graph.py)
  /_download/{token}              pre-authenticated content (download.py)
  /_upload/{token}                upload session URLs, no auth (upload.py)
  /{tenant}/oauth2/v2.0/{ep}      identity platform    (identity.py; authorize: authorize.py)
  /{tenant}/oauth2/v2.0/authorize/consent   the sign-in page's form target (authorize.py)
  /devicelogin                    device-code sign-in page (identity.py)
  /_control/...                   test control, no auth, never faulted or counted (control.py)
Everything else: 404.

Route labels (stats keys, fault `match` values) are "<METHOD> <route>":
me, drives, drive, item, children, content, createUploadSession,
permanentDelete, delta, versions, version, versionContent, restoreVersion,
batch, unknown (Graph: e.g. "POST children", "PATCH item", "DELETE item",
"PUT content", "GET delta"), upload ("PUT upload", "GET upload",
"DELETE upload"), download, devicecode, token, devicelogin, and
"<METHOD> notfound" for other paths; also "GET user", "GET site",
"POST revokeSignInSessions", "GET authorize", "POST consent".

Request bodies are capped: PUT content at config simple_upload_max, PUT
upload at 60 MiB, other Graph/upload requests at 16 MiB.  A larger body is
read and discarded (never buffered) and the request is marked
(req.oversize); the handler answers 413 / 400 as the service would.

Bandwidth (config bandwidth, bytes per second, 0 = unlimited): the bodies
of counted responses share one link of that speed, as a client's real
connection to the service would; each piece of a body waits for its turn
on the link before it is written.

Requests carrying "X-Fakegraph-Peer: 1" come from the tests' second client
(client.py, "another device"): no latency or faults apply to them and they
are counted only in stats.peer_requests.

Outages (Outage below; FakeGraph.go_down/come_back/freeze/thaw): an outage
cuts the network between the client under test and the service, not the
service itself.  Down: the listening socket is closed, so connections are
refused, and open connections are reset.  Frozen: connections are accepted
and requests read (and counted), but nothing is answered; on thaw each
request caught by the freeze is dropped unapplied and its connection reset
(RST), as a request lost in a network outage would be: the client must
send it again.  Control requests and the peer's never freeze; while the
front end is down the peer reaches the service in process (serve_local).
"""

import re
import socket
import struct
import sys
import threading
import time
import traceback
from urllib.parse import unquote
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import graph
from .upload import FRAGMENT_MAX
from .web import (GraphError, Request, Response, TokenError, graph_error, graph_headers, text_response,
                  token_error, INNER_FOR_STATUS)

_OAUTH = re.compile(r"^/([^/]+)/oauth2/v2\.0/([^/]+)/?$")
_CONSENT = re.compile(r"^/([^/]+)/oauth2/v2\.0/authorize/consent/?$")
IDENTITY_ENDPOINTS = ("devicecode", "token", "authorize")


def route(fake, req):
    """Return (kind, handler) and set req.label.  kind: graph | download |
    identity | control | other."""
    path, method = req.path, req.method
    if path in ("/v1.0/$batch", "/v1.0/%24batch"):
        req.label = method + " batch"
        return "graph", lambda: fake.batch.handle(req)
    if path == "/v1.0" or path.startswith("/v1.0/"):
        r = graph.parse_route(method, path[5:])
        req.label = r.label
        return "graph", lambda: fake.graph.handle(req, r)
    if path.startswith("/_upload/"):
        req.label = method + " upload"
        token = path[len("/_upload/"):]
        return "upload", lambda: fake.uploads.handle(req, token)
    if path.startswith("/_download/"):
        req.label = method + " download"
        token = path[len("/_download/"):]
        return "download", lambda: fake.downloads.handle(req, token)
    if path.startswith("/_monitor/"):
        req.label = method + " monitor"
        token = path[len("/_monitor/"):]
        return "monitor", lambda: fake.features.monitor(req, token)
    if path == "/_control" or path.startswith("/_control/"):
        req.label = "control"
        return "control", lambda: fake.control.handle(req, path[len("/_control/"):])
    if path in ("/devicelogin", "/devicelogin/"):
        req.label = method + " devicelogin"
        return "identity", lambda: fake.identity.devicelogin(req)
    m = _CONSENT.match(path)
    if m:
        req.label = method + " consent"
        tenant = unquote(m.group(1))
        return "identity", lambda: fake.authorize.consent(req, tenant)
    m = _OAUTH.match(path)
    if m and m.group(2) in IDENTITY_ENDPOINTS:
        req.label = "%s %s" % (method, m.group(2))
        tenant, endpoint = unquote(m.group(1)), m.group(2)
        return "identity", lambda: fake.identity.route(req, tenant, endpoint)
    req.label = method + " notfound"
    return "other", lambda: text_response(404, "Not Found")


class Outage:
    """The frozen state: handlers of requests caught by a freeze wait here
    until thaw() (or release() at shutdown), then drop their request."""

    def __init__(self):
        self._cond = threading.Condition()
        self.frozen = False
        self._epoch = 0            # bumped by every thaw/release
        self.waiting = 0           # requests hanging right now
        self.caught = 0            # requests caught by freezes so far

    def freeze(self):
        with self._cond:
            self.frozen = True

    def thaw(self):
        """Unfreeze; returns the number of hanging requests dropped."""
        with self._cond:
            n = self.waiting
            self.frozen = False
            self._epoch += 1
            self._cond.notify_all()
            return n

    def release(self):
        """Let every hanging request go (they are dropped), freeze kept."""
        with self._cond:
            self._epoch += 1
            self._cond.notify_all()

    def hold(self):
        """Block while frozen; True when this request was caught (and must
        be dropped), False when not frozen at all."""
        with self._cond:
            if not self.frozen:
                return False
            epoch = self._epoch
            self.waiting += 1
            self.caught += 1
            try:
                while self._epoch == epoch:
                    self._cond.wait()
            finally:
                self.waiting -= 1
            return True


def serve_local(fake, method, target, headers=None, body=b""):
    """Answer one peer request in process, without a socket: how the tests'
    "another device" reaches the service while the front end is down (the
    outage is on this machine's network, not the service's).  Returns
    (status, [(header, value)], body bytes)."""
    hdrs = HTTPMessage()
    for k, v in (headers or {}).items():
        hdrs[k] = v
    req = Request(method, target, hdrs, bytes(body or b""), ("127.0.0.1", 0))
    kind, handler = route(fake, req)
    if kind != "control":
        fake.counters.peer()
    try:
        resp = handler()
    except GraphError as e:
        resp = graph_error(req, e)
    no_body = method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
    return resp.status, list(resp.headers), b"" if no_body else b"".join(resp.chunks())


def reset_connection(sock):
    """Abortive close: the peer sees ECONNRESET, not an orderly end."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


OTHER_BODY_MAX = 16 * 1024 * 1024
PEER_HEADER = "X-Fakegraph-Peer"


def body_limit(fake, req, kind):
    if req.label == "PUT content":
        return fake.config.simple_upload_max
    if req.label == "PUT upload":
        return FRAGMENT_MAX - 1
    if kind in ("graph", "upload"):
        return OTHER_BODY_MAX
    return None


def _oversize_stream(n):
    head, tail = b'{"value":[],"padding":"', b'"}'
    yield head
    left = n - len(head) - len(tail)
    block = b"x" * (1 << 20)
    while left > 0:
        k = min(left, len(block))
        yield block[:k]
        left -= k
    yield tail


def fault_response(fake, req, kind, rule):
    """Response for a status/body/oversize rule (None if the rule does not
    replace the real answer)."""
    extra = [(k, str(v)) for k, v in (rule.get("headers") or {}).items()]
    if "retry_after" in rule:
        extra.append(("Retry-After", rule["retry_after"]))
    if "oversize" in rule:
        n = rule["oversize"]
        return Response(rule.get("status", 200), graph_headers(req) + extra, stream=_oversize_stream(n), length=n)
    if "body" in rule:
        body = rule["body"]
        body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        return Response(rule.get("status", 200), graph_headers(req) + extra, body)
    if "status" in rule:
        status = rule["status"]
        if kind == "identity":
            err = "temporarily_unavailable" if status == 429 or status >= 500 else "invalid_request"
            return token_error(fake.url, TokenError(err, 90033 if err == "temporarily_unavailable" else 90000,
                                                    "A transient error has occurred. Please try again."
                                                    if err == "temporarily_unavailable"
                                                    else "Injected failure.", status=status, headers=extra))
        return graph_error(req, GraphError(status, inner_code=INNER_FOR_STATUS.get(status), headers=extra))
    return None


class Link:
    """The shared bandwidth cap: pieces of response bodies queue for one link."""
    PIECE = 64 * 1024
    BURST = 0.01        # seconds of link time a late writer may catch up on

    def __init__(self):
        self._lock = threading.Lock()
        self._free_at = 0.0

    def write(self, wfile, data, rate):
        """Write data to wfile no faster than rate bytes per second (0: at once)."""
        if not rate:
            wfile.write(data)
            return
        view = memoryview(data)
        for pos in range(0, len(view), self.PIECE):
            piece = view[pos:pos + self.PIECE]
            with self._lock:
                now = time.monotonic()
                # a token bucket: the time spent writing is not lost to the link
                self._free_at = max(now - self.BURST, self._free_at) + len(piece) / rate
                wait = self._free_at - now
            if wait > 0:
                time.sleep(wait)
            wfile.write(piece)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-IIS/10.0"
    timeout = 300

    def version_string(self):
        return self.server_version

    def setup(self):
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self.server.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, fmt, *args):
        if self.server.fake.verbose:
            sys.stderr.write("fakegraph: %s %s\n" % (self.address_string(), fmt % args))

    # every method goes through _handle
    def do_GET(self):
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _read_body(self, limit):
        """(body, oversize): oversize is the length read and discarded when
        the body exceeds `limit` (None = no limit)."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts, total, over = [], 0, False
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                over = over or (limit is not None and total > limit)
                if over:
                    parts = []
                    self._discard(size)
                else:
                    parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return (b"", total) if over else (b"".join(parts), None)
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0:
            raise ValueError("negative Content-Length")
        if limit is not None and n > limit:
            self._discard(n)
            return b"", n
        return (self.rfile.read(n) if n > 0 else b""), None

    def _discard(self, n):
        while n > 0:
            chunk = self.rfile.read(min(n, 1 << 20))
            if not chunk:
                raise OSError("connection closed while reading the body")
            n -= len(chunk)

    def _handle(self):
        fake = self.server.fake
        req = Request(self.command, self.path, self.headers, b"", self.client_address)
        kind, handler = route(fake, req)
        try:
            req.body, req.oversize = self._read_body(body_limit(fake, req, kind))
        except (ValueError, OSError):
            self.close_connection = True
            self._send(text_response(400, "Bad Request"), counted=False)
            return
        peer = kind != "control" and req.header(PEER_HEADER) is not None
        counted = kind != "control" and not peer
        rule = None
        if peer:
            fake.counters.peer()
        elif counted:
            fake.counters.request(req.label)
            if req.label in ("PUT content", "PUT upload"):
                fake.counters.received(req.oversize if req.oversize is not None else len(req.body))
            if fake.outage.hold():
                self._reset()
                return
            delay = fake.config.latency_ms + fake.fault_set.latency_ms
            if delay:
                time.sleep(delay / 1000.0)
            rule = fake.fault_set.take(req)
        resp = None
        if rule is not None:
            fake.counters.fault()
            if rule.get("stall_ms"):
                time.sleep(rule["stall_ms"] / 1000.0)
            if rule.get("drop"):
                self._drop()
                return
            resp = fault_response(fake, req, kind, rule)
        if resp is None:
            try:
                resp = handler()
            except GraphError as e:
                resp = graph_error(req, e)
            except Exception:  # a bug in the fake: answer 500 and say so
                traceback.print_exc()
                resp = graph_error(req, GraphError(500, "generalException",
                                                   "fakegraph internal error (see server stderr)"))
        stall = 0
        if counted:
            stall = (rule or {}).get("stall_body_ms") or fake.fault_set.stall_ms
        self._send(resp, counted=counted, truncate=bool(rule and rule.get("truncate")),
                   stall_body_ms=stall)

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _reset(self):
        """Drop the request unanswered with a connection reset."""
        self.close_connection = True
        reset_connection(self.connection)

    def _send(self, resp, counted=True, truncate=False, stall_body_ms=0):
        fake = self.server.fake
        status = resp.status
        self.send_response(status)
        for k, v in resp.headers:
            if k.lower() not in ("content-length", "connection"):
                self.send_header(k, v)
        no_body = status in (204, 304) or 100 <= status < 200
        if not no_body:
            self.send_header("Content-Length", str(resp.length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if counted:
            fake.counters.response(status)
        if self.command == "HEAD" or no_body:
            return
        half = resp.length // 2
        limit = half if truncate else None
        stall_at = half if stall_body_ms and not truncate else None
        sent = 0
        rate = fake.config.bandwidth if counted else 0
        link = self.server.link
        try:
            for chunk in resp.chunks():
                if limit is not None:
                    chunk = chunk[:limit - sent]
                if stall_at is not None and sent + len(chunk) >= stall_at:
                    cut = stall_at - sent
                    link.write(self.wfile, chunk[:cut], rate)
                    sent += cut
                    time.sleep(stall_body_ms / 1000.0)
                    chunk, stall_at = chunk[cut:], None
                if chunk:
                    link.write(self.wfile, chunk, rate)
                    sent += len(chunk)
                if limit is not None and sent >= limit:
                    break
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            self.close_connection = True
        finally:
            if counted:
                fake.counters.sent(sent, content=resp.content)
        if truncate:
            self._drop()


class FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, fake):
        self.fake = fake
        self.link = Link()
        self._conns = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, Handler)

    def track(self, conn, add):
        with self._conns_lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def close_all_connections(self, reset=False):
        """Shut every open connection down (reset=True: with an RST, as a
        dying server's kernel would for a request in flight)."""
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                if reset:
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout)):
            return
        super().handle_error(request, client_address)
