"""Request statistics (GET /_control/stats).

Counted for every request except /_control/ and the test peer client's
(header X-Fakegraph-Peer, see client.py; those only count in peer_requests):
per route label ("GET children", "GET download", "POST token", "PUT upload",
...), per response status, bytes sent, download body bytes, upload body bytes
received (bytes_received_content: bodies of PUT content and PUT upload,
accepted or not), token grants/errors, applied faults and auth violations (an
Authorization header sent to a pre-authenticated download or upload URL).
Requests inside a JSON batch count in batched (per route label) and
total_batched; the batch itself is one request, "POST batch".
"""

import threading

from . import util


class Stats:
    def __init__(self):
        self._lock = threading.Lock()
        self.reset()

    def reset(self):
        with self._lock:
            self.requests = {}
            self.batched = {}
            self.total_batched = 0
            self.responses = {}
            self.total_requests = 0
            self.bytes_sent = 0
            self.bytes_sent_content = 0
            self.bytes_received_content = 0
            self.peer_requests = 0
            self.auth_violations = []
            self.token_grants = {}
            self.token_errors = {}
            self.faults_applied = 0

    def request(self, label):
        with self._lock:
            self.total_requests += 1
            self.requests[label] = self.requests.get(label, 0) + 1

    def batched_request(self, label):
        with self._lock:
            self.total_batched += 1
            self.batched[label] = self.batched.get(label, 0) + 1

    def response(self, status):
        with self._lock:
            k = str(status)
            self.responses[k] = self.responses.get(k, 0) + 1

    def sent(self, n, content=False):
        with self._lock:
            self.bytes_sent += n
            if content:
                self.bytes_sent_content += n

    def received(self, n):
        with self._lock:
            self.bytes_received_content += n

    def peer(self):
        with self._lock:
            self.peer_requests += 1

    def violation(self, req, what):
        with self._lock:
            self.auth_violations.append({"time": util.iso_millis(util.now()), "method": req.method,
                                         "path": req.path, "route": req.label, "what": what})

    def grant(self, grant_type):
        with self._lock:
            self.token_grants[grant_type] = self.token_grants.get(grant_type, 0) + 1

    def token_error(self, error):
        with self._lock:
            self.token_errors[error] = self.token_errors.get(error, 0) + 1

    def fault(self):
        with self._lock:
            self.faults_applied += 1

    def snapshot(self):
        with self._lock:
            return {
                "requests": dict(self.requests),
                "total_requests": self.total_requests,
                "batched": dict(self.batched),
                "total_batched": self.total_batched,
                "responses": dict(self.responses),
                "bytes_sent": self.bytes_sent,
                "bytes_sent_content": self.bytes_sent_content,
                "bytes_received_content": self.bytes_received_content,
                "peer_requests": self.peer_requests,
                "auth_violations": list(self.auth_violations),
                "token_grants": dict(self.token_grants),
                "token_errors": dict(self.token_errors),
                "faults_applied": self.faults_applied,
            }
