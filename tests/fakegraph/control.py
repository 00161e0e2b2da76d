"""Test-control endpoints under /_control/ (no auth, JSON in and out, never
counted in stats nor affected by faults).  Each maps onto a FakeGraph
method of the same meaning, so pytest fixtures can call those directly.

  POST /_control/reset                 empty drive (root id kept), clear stats and faults
  POST /_control/identity/reset        forget all tokens and device codes
  POST /_control/seed                  {"tree": [...]} | {"generate": {...}}  -> {"created": n}
  GET  /_control/dump                  {"items": [{path,id,folder,size,quickXorHash,mtime,eTag,cTag}]}
  GET  /_control/stats                 counters;   POST /_control/stats/reset
  GET  /_control/faults                current set; POST /_control/faults {latency_ms, rules} ({} clears)
  POST /_control/tokens/expire         every issued access token expires now
  POST /_control/tokens/revoke         every refresh token is revoked
  POST /_control/tokens/issue          {"scope", "client_id"} -> token response (skips the device flow)
  GET  /_control/device                pending device codes (user codes)
  POST /_control/device/approve        {"user_code": "..."} or {} for all pending
  POST /_control/device/decline        same
  GET  /_control/config                POST /_control/config {page_size, access_token_lifetime, ...}
  GET  /_control/info                  urls, client id, drive id, root id
  GET  /_control/content?path=/a/b     raw bytes of a file (or ?id=...)
  POST /_control/clients               {"client_id", "public", "secret"} registers an app
  POST /_control/quota                 {"total": N} sets quota.total -> the drive's quota object
  GET  /_control/uploads               open upload sessions
  POST /_control/upload/expire         {} expires every open session, {"url": uploadUrl} one -> {"expired": n}
  POST /_control/delta/invalidate      every delta token answers 410 resyncRequired from now on
  GET  /_control/recyclebin            deleted subtrees (not permanently deleted)
  GET  /_control/versions?path=/a/b    versions of a file (or ?id=), newest first
"""

import json

from .web import Response, plain_json


class ControlError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Control:
    def __init__(self, fake):
        self.fake = fake
        self.routes = {
            ("POST", "reset"): self._reset,
            ("POST", "seed"): self._seed,
            ("POST", "identity/reset"): lambda b, q: self.fake.reset_identity(),
            ("GET", "dump"): lambda b, q: self.fake.dump(),
            ("GET", "stats"): lambda b, q: self.fake.stats(),
            ("POST", "stats/reset"): self._stats_reset,
            ("GET", "faults"): lambda b, q: self.fake.faults_snapshot(),
            ("POST", "faults"): self._faults,
            ("POST", "tokens/expire"): lambda b, q: {"expired": self.fake.expire_tokens()},
            ("POST", "tokens/revoke"): lambda b, q: {"revoked": self.fake.revoke_refresh_tokens()},
            ("POST", "tokens/issue"): self._issue,
            ("GET", "device"): lambda b, q: {"pending": self.fake.pending_devices()},
            ("POST", "device/approve"): lambda b, q: {"approved": self.fake.approve_device(b.get("user_code"))},
            ("POST", "device/decline"): lambda b, q: {"declined": self.fake.decline_device(b.get("user_code"))},
            ("GET", "config"): lambda b, q: self.fake.get_config(),
            ("POST", "config"): lambda b, q: self.fake.set_config(**b),
            ("GET", "info"): lambda b, q: self.fake.info(),
            ("GET", "content"): self._content,
            ("POST", "clients"): self._clients,
            ("POST", "quota"): self._quota,
            ("GET", "uploads"): lambda b, q: {"sessions": self.fake.upload_sessions()},
            ("POST", "upload/expire"): lambda b, q: {"expired": self.fake.expire_uploads(b.get("url"))},
            ("POST", "delta/invalidate"): lambda b, q: self.fake.invalidate_delta(),
            ("GET", "recyclebin"): lambda b, q: {"items": self.fake.recycle_bin()},
            ("GET", "versions"): self._versions,
        }

    def handle(self, req, sub):
        sub = sub.strip("/")
        fn = self.routes.get((req.method, sub))
        if fn is None:
            if any(k[1] == sub for k in self.routes):
                return plain_json(405, {"error": "method not allowed"})
            return plain_json(404, {"error": "unknown control endpoint '%s'" % sub})
        body = {}
        if req.body:
            try:
                body = json.loads(req.body.decode("utf-8"))
            except ValueError as e:
                return plain_json(400, {"error": "invalid JSON: %s" % e})
            if not isinstance(body, dict):
                return plain_json(400, {"error": "body must be a JSON object"})
        try:
            out = fn(body, dict(req.query))
        except ControlError as e:
            return plain_json(e.status, {"error": str(e)})
        except (ValueError, KeyError, TypeError) as e:
            return plain_json(400, {"error": "%s: %s" % (type(e).__name__, e)})
        if isinstance(out, Response):
            return out
        return plain_json(200, out if out is not None else {"ok": True})

    def _reset(self, body, q):
        self.fake.reset()
        return {"ok": True}

    def _seed(self, body, q):
        if "tree" not in body and "generate" not in body:
            raise ValueError("seed needs 'tree' or 'generate'")
        n = 0
        if "tree" in body:
            n += self.fake.seed(tree=body["tree"])
        if "generate" in body:
            n += self.fake.seed(generate=body["generate"])
        return {"created": n}

    def _stats_reset(self, body, q):
        self.fake.reset_stats()
        return {"ok": True}

    def _faults(self, body, q):
        self.fake.faults(body)
        return self.fake.faults_snapshot()

    def _issue(self, body, q):
        return self.fake.issue_tokens(scope=body.get("scope", "Files.ReadWrite User.Read offline_access"),
                                      client_id=body.get("client_id"))

    def _content(self, body, q):
        key = q.get("id") or q.get("path")
        if not key:
            raise ValueError("give ?path= or ?id=")
        data = self.fake.content(key)
        return Response(200, [("Content-Type", "application/octet-stream")], data)

    def _quota(self, body, q):
        total = body.get("total")
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ValueError("'total' must be a non-negative integer")
        self.fake.set_quota(total)
        return self.fake.quota()

    def _versions(self, body, q):
        key = q.get("id") or q.get("path")
        if not key:
            raise ValueError("give ?path= or ?id=")
        return {"versions": self.fake.versions_of(key)}

    def _clients(self, body, q):
        self.fake.register_client(body["client_id"], public=body.get("public", True), secret=body.get("secret"))
        return {"ok": True}
