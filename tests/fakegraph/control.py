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
  POST /_control/freeze                requests hang unanswered (control and peer ones excepted)
  POST /_control/thaw                  -> {"dropped": n} hanging requests dropped, connections reset
  GET  /_control/outage                {"down", "frozen", "hanging", "caught"} (go_down has no endpoint:
                                       it closes the port this would be reached on)

Accounts, drives and sign-in (see fake.py / accounts.py / authorize.py):
  POST /_control/account               {"account": "personal"|"business", "name", "email"} replace the primary account
  GET  /_control/users                 POST {"name", "email", "kind", "signin", "alias"} -> the new user
  GET  /_control/sites                 POST {"path", "display_name", "libraries": [...], "alias", "hostname"}
  GET  /_control/shares                POST {"path", "owner", "to", "role": "read"|"write", "shortcut", "name"}
  GET  /_control/clients               registered apps (no secrets); POST also takes "redirect_uris", "roles", "name"
  GET  /_control/authorize             pending sign-in pages (transactions)
  POST /_control/authorize/approve     {"txn", "account"} (defaults: newest, primary) -> {"location": redirect URL}
  POST /_control/authorize/decline     {"txn"} -> {"location": redirect_uri?error=access_denied&...}
  GET  /_control/codes                 issued authorization codes
  POST /_control/tokens/app            {"client_id"} -> app-only token response (client_credentials)
  POST /_control/tokens/issue          also {"user": id|upn|alias};  POST /_control/tokens/revoke {"user"} for one user
  POST /_control/device/approve        also {"account": id|upn|alias}
  seed, dump, content, versions, recyclebin, quota take "drive" (body) / ?drive= (query): None|"me",
  an alias ("bob", "team", "team/Team Assets"), a drive id, or a user id/UPN.
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
            ("GET", "dump"): lambda b, q: self.fake.dump(q.get("drive")),
            ("GET", "stats"): lambda b, q: self.fake.stats(),
            ("POST", "stats/reset"): self._stats_reset,
            ("GET", "faults"): lambda b, q: self.fake.faults_snapshot(),
            ("POST", "faults"): self._faults,
            ("POST", "tokens/expire"): lambda b, q: {"expired": self.fake.expire_tokens()},
            ("POST", "tokens/revoke"): lambda b, q: {"revoked": self.fake.revoke_refresh_tokens(b.get("user"))},
            ("POST", "tokens/app"): lambda b, q: self.fake.issue_app_token(b["client_id"]),
            ("POST", "account"): lambda b, q: self.fake.set_account(b.get("account", "personal"),
                                                                     b.get("name", "Fake User"), b.get("email")),
            ("GET", "users"): lambda b, q: {"users": self.fake.info()["users"]},
            ("POST", "users"): lambda b, q: self.fake.add_user(b["name"], b.get("email"), kind=b.get("kind"),
                                                                signin=bool(b.get("signin", False)),
                                                                alias=b.get("alias")).describe(),
            ("GET", "sites"): lambda b, q: {"sites": self.fake.info()["sites"]},
            ("POST", "sites"): self._sites,
            ("GET", "shares"): lambda b, q: {"shares": self.fake.info()["shares"]},
            ("POST", "shares"): lambda b, q: self.fake.share(b["path"], b["owner"], to=b.get("to"),
                                                              role=b.get("role", "read"), name=b.get("name"),
                                                              shortcut=bool(b.get("shortcut", True))),
            ("GET", "clients"): lambda b, q: {"clients": self.fake.clients()},
            ("GET", "authorize"): lambda b, q: {"pending": self.fake.pending_authorizations()},
            ("POST", "authorize/approve"): lambda b, q: {"location": self.fake.approve_authorization(
                b.get("txn"), b.get("account"))},
            ("POST", "authorize/decline"): lambda b, q: {"location": self.fake.decline_authorization(b.get("txn"))},
            ("GET", "codes"): lambda b, q: {"codes": self.fake.auth_codes()},
            ("POST", "tokens/issue"): self._issue,
            ("GET", "device"): lambda b, q: {"pending": self.fake.pending_devices()},
            ("POST", "device/approve"): lambda b, q: {"approved": self.fake.approve_device(b.get("user_code"),
                                                                                            b.get("account"))},
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
            ("GET", "recyclebin"): lambda b, q: {"items": self.fake.recycle_bin(q.get("drive"))},
            ("GET", "versions"): self._versions,
            ("POST", "freeze"): lambda b, q: self.fake.freeze(),
            ("POST", "thaw"): lambda b, q: {"dropped": self.fake.thaw()},
            ("GET", "outage"): lambda b, q: self.fake.outage_stats(),
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
        drive = body.get("drive")
        if "tree" in body:
            n += self.fake.seed(tree=body["tree"], drive=drive)
        if "generate" in body:
            n += self.fake.seed(generate=body["generate"], drive=drive)
        return {"created": n}

    def _sites(self, body, q):
        kw = {k: body[k] for k in ("display_name", "alias", "hostname") if k in body}
        if "libraries" in body:
            kw["libraries"] = body["libraries"]
        return self.fake.add_site(body.get("path", "/sites/Team"), **kw).describe()

    def _stats_reset(self, body, q):
        self.fake.reset_stats()
        return {"ok": True}

    def _faults(self, body, q):
        self.fake.faults(body)
        return self.fake.faults_snapshot()

    def _issue(self, body, q):
        return self.fake.issue_tokens(scope=body.get("scope", "Files.ReadWrite User.Read offline_access"),
                                      client_id=body.get("client_id"), user=body.get("user"))

    def _content(self, body, q):
        key = q.get("id") or q.get("path")
        if not key:
            raise ValueError("give ?path= or ?id=")
        data = self.fake.content(key, q.get("drive"))
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
        return {"versions": self.fake.versions_of(key, q.get("drive"))}

    def _clients(self, body, q):
        self.fake.register_client(body["client_id"], public=body.get("public", True), secret=body.get("secret"),
                                  redirect_uris=body.get("redirect_uris"), roles=body.get("roles"),
                                  name=body.get("name"))
        return {"ok": True}
