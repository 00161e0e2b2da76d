"""Microsoft identity platform v2.0 emulation (graph-notes section 1):
POST /{tenant}/oauth2/v2.0/devicecode, POST /{tenant}/oauth2/v2.0/token,
GET/POST /devicelogin (a tiny page where the "user" types the code), and the
access-token check used by the Graph routes.

The account is a personal Microsoft account: tenants `common`, `consumers`
and the consumer tenant GUID are accepted; `organizations` fails with an
AADSTS50020-style invalid_request, other tenant ids/domains with AADSTS90002.

Grant handlers live in GRANT_HANDLERS (grant_type -> method name) so the
authorization_code (+PKCE) and client_credentials grants can be added next
to device_code and refresh_token.  Access tokens are opaque random strings;
refresh tokens rotate (a new one per refresh, old ones stay valid until
revoked through /_control/tokens/revoke).
"""

import base64
import html
import json
import secrets
from urllib.parse import parse_qsl

from . import util
from .drive import PERSONAL_CONSUMER_TENANT
from .web import GraphError, TokenError, Response, token_error, token_json, text_response

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
GRAPH_RESOURCE = "https://graph.microsoft.com/"
OIDC_SCOPES = {"openid", "profile", "email"}
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ23456789"
SLOW_DOWN_TOLERANCE = 0.05     # seconds of clock jitter forgiven between polls

WWW_AUTHENTICATE = ('Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                    'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"')

GRANT_HANDLERS = {
    DEVICE_GRANT: "_grant_device_code",
    "refresh_token": "_grant_refresh_token",
    # "authorization_code": "_grant_authorization_code",   (later: PKCE)
    # "client_credentials": "_grant_client_credentials",   (later: secrets)
}

GRANT_LABELS = {DEVICE_GRANT: "device_code", "refresh_token": "refresh_token"}


def _missing(param):
    return TokenError("invalid_request", 900144,
                      "The request body must contain the following parameter: '%s'." % param)


def scope_name(s):
    """'https://graph.microsoft.com/Files.Read' -> 'files.read'."""
    s = s.strip()
    if s.lower().startswith(GRAPH_RESOURCE):
        s = s[len(GRAPH_RESOURCE):]
    return s.lower()


class DeviceCode:
    __slots__ = ("device_code", "user_code", "client_id", "scopes", "issued", "expires_at",
                 "interval", "state", "last_poll", "polls", "approve_on_first_poll")

    def __init__(self, client_id, scopes, expires_in, interval):
        t = util.now()
        self.device_code = "DAQABAAEAAAD" + util.random_urlsafe(120)
        self.user_code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(9))
        self.client_id = client_id
        self.scopes = scopes
        self.issued = t
        self.expires_at = t + expires_in
        self.interval = interval
        self.state = "pending"          # pending | approved | declined | redeemed
        self.last_poll = None
        self.polls = 0
        self.approve_on_first_poll = False


class Identity:
    def __init__(self, fake):
        self.fake = fake
        self.clients = {}
        self.reset()

    def reset(self):
        self.device_codes = {}
        self.user_codes = {}
        self.access_tokens = {}
        self.refresh_tokens = {}

    # ------------------------------------------------------------ plumbing
    @property
    def cfg(self):
        return self.fake.config

    def route(self, req, tenant, endpoint):
        handler = {"devicecode": self._devicecode, "token": self._token}.get(endpoint)
        if handler is None:
            return text_response(404, "Not Found")
        try:
            if req.method != "POST":
                raise TokenError("invalid_request", 900561,
                                 "The endpoint only accepts POST, OPTIONS requests. Received a %s request."
                                 % req.method)
            with self.fake.lock:
                return handler(req, tenant)
        except TokenError as e:
            self.fake.counters.token_error(e.error)
            return token_error(self.fake.url, e)

    def _form(self, req):
        ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise _missing("grant_type" if req.path.endswith("/token") else "client_id")
        try:
            pairs = parse_qsl(req.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise TokenError("invalid_request", 900144, "The request body is not valid UTF-8.")
        form = {}
        for k, v in pairs:
            form.setdefault(k, v)
        return form

    def _check_tenant(self, tenant):
        t = tenant.lower()
        if t in ("common", "consumers", PERSONAL_CONSUMER_TENANT):
            return
        if t == "organizations":
            raise TokenError("invalid_request", 50020,
                             "User account '%s' from identity provider 'live.com' does not exist in tenant "
                             "'organizations' and cannot access the application in that tenant. The account "
                             "needs to be added as an external user in the tenant first."
                             % self.fake.drive.owner_email)
        raise TokenError("invalid_request", 90002,
                         "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are "
                         "signing into the correct cloud." % tenant)

    def _check_client(self, form, tenant, require_auth=True):
        cid = form.get("client_id")
        if not cid:
            raise _missing("client_id")
        client = self.clients.get(cid)
        if client is None:
            raise TokenError("unauthorized_client", 700016,
                             "Application with identifier '%s' was not found in the directory 'Microsoft "
                             "Accounts'. This can happen if the application has not been installed by the "
                             "administrator of the tenant or consented to by any user in the tenant. You may "
                             "have sent your authentication request to the wrong tenant." % cid)
        if require_auth:
            secret = form.get("client_secret")
            if client.get("public", True):
                if secret is not None or form.get("client_assertion") is not None:
                    raise TokenError("invalid_client", 700025,
                                     "Client is public so neither 'client_assertion' nor 'client_secret' "
                                     "should be presented.")
            else:
                if secret is None:
                    raise TokenError("invalid_client", 7000218,
                                     "The request body must contain the following parameter: "
                                     "'client_assertion' or 'client_secret'.", status=401)
                if secret != client.get("secret"):
                    raise TokenError("invalid_client", 7000215,
                                     "Invalid client secret provided. Ensure the secret being sent in the "
                                     "request is the client secret value, not the client secret ID, for a "
                                     "secret added to app '%s'." % cid, status=401)
        return cid

    # ---------------------------------------------------------- devicecode
    def _devicecode(self, req, tenant):
        form = self._form(req)
        self._check_tenant(tenant)
        cid = self._check_client(form, tenant, require_auth=False)
        scope = form.get("scope", "").strip()
        if not scope:
            raise _missing("scope")
        dc = DeviceCode(cid, scope.split(), self.cfg.device_expires_in, self.cfg.device_interval)
        mode = self.cfg.auto_approve
        if mode == "after_first_poll":
            dc.approve_on_first_poll = True
        elif mode:
            dc.state = "approved"
        self.device_codes[dc.device_code] = dc
        self.user_codes[dc.user_code] = dc
        uri = self.fake.url + "/devicelogin"
        return token_json({
            "user_code": dc.user_code,
            "device_code": dc.device_code,
            "verification_uri": uri,
            "expires_in": int(self.cfg.device_expires_in),
            "interval": int(self.cfg.device_interval),
            "message": "To sign in, use a web browser to open the page %s and enter the code %s to "
                       "authenticate." % (uri, dc.user_code),
        })

    # --------------------------------------------------------------- token
    def _token(self, req, tenant):
        form = self._form(req)
        grant = form.get("grant_type")
        if not grant:
            raise _missing("grant_type")
        self._check_tenant(tenant)
        handler = GRANT_HANDLERS.get(grant)
        if handler is None:
            raise TokenError("unsupported_grant_type", 70003,
                             "The app requested an unsupported grant type '%s'." % grant)
        cid = self._check_client(form, tenant)
        resp = getattr(self, handler)(form, cid)
        self.fake.counters.grant(GRANT_LABELS.get(grant, grant))
        return resp

    def _grant_device_code(self, form, cid):
        code = form.get("device_code")
        if not code:
            raise _missing("device_code")
        dc = self.device_codes.get(code)
        if dc is None or dc.client_id != cid:
            raise TokenError("bad_verification_code", 70000,
                             "The provided value for the input parameter 'device_code' is not valid.")
        if dc.state == "redeemed":
            raise TokenError("invalid_grant", 54005,
                             "OAuth2 Authorization code was already redeemed, please retry with a new valid "
                             "code or use an existing refresh token.")
        t = util.now()
        if t >= dc.expires_at:
            raise TokenError("expired_token", 70019, "Verification code expired.")
        previous, dc.last_poll = dc.last_poll, t
        dc.polls += 1
        if previous is not None and t - previous < dc.interval - SLOW_DOWN_TOLERANCE:
            dc.interval += self.cfg.slow_down_increment
            raise TokenError("slow_down", 70016,
                             "OAuth 2.0 device flow error. Polling too frequently; poll no more often than "
                             "the interval.")
        if dc.state == "declined":
            raise TokenError("authorization_declined", 70000, "The user denied the authorization request.")
        if dc.state == "pending":
            if dc.approve_on_first_poll:
                dc.state = "approved"
            raise TokenError("authorization_pending", 70016,
                             "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
        dc.state = "redeemed"
        return token_json(self.issue(cid, dc.scopes))

    def _grant_refresh_token(self, form, cid):
        rt = form.get("refresh_token")
        if not rt:
            raise _missing("refresh_token")
        rec = self.refresh_tokens.get(rt)
        if rec is None:
            raise TokenError("invalid_grant", 70008,
                             "The provided authorization code or refresh token has expired due to inactivity. "
                             "Send a new interactive authorization request for this user and resource.")
        if rec["revoked"]:
            raise TokenError("invalid_grant", 50173,
                             "The provided grant has expired due to it being revoked, a fresh auth token is "
                             "needed. The user might have changed or reset their password.")
        if rec["client_id"] != cid:
            raise TokenError("invalid_grant", 70000,
                             "Provided grant is invalid or malformed. The refresh token was issued to a "
                             "different client.")
        scopes = rec["scopes"]
        if form.get("scope"):
            asked = form["scope"].split()
            granted = {scope_name(s) for s in scopes}
            extra = [s for s in asked if scope_name(s) not in granted | OIDC_SCOPES | {"offline_access"}]
            if extra:
                raise TokenError("invalid_grant", 65001,
                                 "The user or administrator has not consented to use the application with ID "
                                 "'%s'. Send an interactive authorization request for this user and resource."
                                 % cid)
            scopes = asked
        return token_json(self.issue(cid, scopes, had_offline=True))

    # -------------------------------------------------------------- tokens
    def issue(self, client_id, scopes, had_offline=False):
        """Mint tokens (also used by /_control/tokens/issue)."""
        t = util.now()
        life = int(self.cfg.access_token_lifetime)
        at = "EwB" + util.random_urlsafe(96)
        self.access_tokens[at] = {"client_id": client_id, "scopes": list(scopes), "expires_at": t + life}
        out = {
            "token_type": "Bearer",
            "scope": " ".join(s for s in scopes if scope_name(s) not in OIDC_SCOPES),
            "expires_in": life,
            "ext_expires_in": life,
            "access_token": at,
        }
        names = {scope_name(s) for s in scopes}
        if "offline_access" in names or had_offline:
            rt = "M.C5" + util.random_urlsafe(120)
            self.refresh_tokens[rt] = {"client_id": client_id, "scopes": list(scopes), "revoked": False}
            out["refresh_token"] = rt
        if "openid" in names:
            out["id_token"] = self._id_token(client_id, t, life)
        return out

    def _id_token(self, client_id, t, life):
        def b64(obj):
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
        d = self.fake.drive
        claims = {"ver": "2.0", "iss": "https://login.microsoftonline.com/%s/v2.0" % PERSONAL_CONSUMER_TENANT,
                  "sub": util.random_urlsafe(24), "aud": client_id, "exp": int(t + life), "iat": int(t),
                  "nbf": int(t), "name": d.owner_name, "preferred_username": d.owner_email,
                  "oid": "00000000-0000-0000-%s-%s" % (d.user_id[:4], d.user_id[4:]),
                  "tid": PERSONAL_CONSUMER_TENANT}
        return "%s.%s.%s" % (b64({"typ": "JWT", "alg": "RS256", "kid": "fakegraph"}), b64(claims),
                             util.random_urlsafe(64))

    def expire_access_tokens(self):
        t = util.now()
        for rec in self.access_tokens.values():
            rec["expires_at"] = min(rec["expires_at"], t - 1)
        return len(self.access_tokens)

    def revoke_refresh_tokens(self):
        for rec in self.refresh_tokens.values():
            rec["revoked"] = True
        return len(self.refresh_tokens)

    def authenticate(self, req):
        """Check the bearer token of a Graph request; returns the token
        record or raises a 401 GraphError."""
        hdr = [("WWW-Authenticate", WWW_AUTHENTICATE)]
        auth = req.header("Authorization") or ""
        scheme, _, tok = auth.strip().partition(" ")
        tok = tok.strip()
        if scheme.lower() != "bearer" or not tok:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", headers=hdr)
        rec = self.access_tokens.get(tok)
        if rec is None:
            raise GraphError(401, "InvalidAuthenticationToken",
                             "CompactToken parsing failed with error code: 80049217", headers=hdr)
        if util.now() >= rec["expires_at"]:
            raise GraphError(401, "InvalidAuthenticationToken",
                             "Access token has expired or is not yet valid.", headers=hdr)
        return rec

    @staticmethod
    def has_drive_scope(rec):
        for s in rec["scopes"]:
            n = scope_name(s)
            if n.startswith("files.") or n.startswith("sites.") or n == ".default":
                return True
        return False

    @staticmethod
    def has_write_scope(rec):
        """Files.ReadWrite*, Sites.ReadWrite* or .default (writes need it)."""
        for s in rec["scopes"]:
            n = scope_name(s)
            if (n.startswith("files.readwrite") or n.startswith("sites.readwrite") or n == ".default"
                    or n.startswith("sites.manage") or n.startswith("sites.fullcontrol")):
                return True
        return False

    # -------------------------------------------------------- device admin
    def _find_codes(self, user_code, states=("pending",)):
        if user_code is None:
            return [dc for dc in self.device_codes.values() if dc.state in states]
        dc = self.user_codes.get(user_code.replace("-", "").replace(" ", "").upper())
        if dc is None:
            raise KeyError("unknown user_code %r" % user_code)
        return [dc]

    def approve(self, user_code=None):
        codes = self._find_codes(user_code)
        for dc in codes:
            if dc.state == "pending":
                dc.state = "approved"
        return [dc.user_code for dc in codes]

    def decline(self, user_code=None):
        codes = self._find_codes(user_code)
        for dc in codes:
            if dc.state in ("pending", "approved"):
                dc.state = "declined"
        return [dc.user_code for dc in codes]

    def pending(self):
        t = util.now()
        return [{"user_code": dc.user_code, "client_id": dc.client_id, "scope": " ".join(dc.scopes),
                 "state": dc.state, "expires_in": max(0, int(dc.expires_at - t)), "polls": dc.polls}
                for dc in self.device_codes.values() if dc.state in ("pending", "approved")]

    # ------------------------------------------------------ devicelogin UI
    def devicelogin(self, req):
        msg = ""
        if req.method == "POST":
            form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
            code = form.get("user_code", "")
            action = form.get("action", "approve")
            with self.fake.lock:
                try:
                    dc = self._find_codes(code)[0]
                    if util.now() >= dc.expires_at:
                        msg = "That code has expired."
                    elif action == "decline":
                        self.decline(dc.user_code)
                        msg = "You declined the sign-in. You can close this window."
                    else:
                        self.approve(dc.user_code)
                        msg = "You have signed in as %s. You can close this window." % self.fake.drive.owner_email
                except (KeyError, IndexError):
                    msg = "That code wasn't recognised. Check the code and try again."
        elif req.method not in ("GET", "HEAD"):
            return text_response(405, "Method Not Allowed", headers=[("Allow", "GET, POST")])
        page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Enter code</title></head><body>"
                "<h1>Enter code</h1><p>Fake Graph sign-in for %s</p>%s"
                "<form method='post' action='/devicelogin'><input name='user_code' autofocus "
                "placeholder='Code'> <button name='action' value='approve'>Next</button> "
                "<button name='action' value='decline'>Cancel sign-in</button></form></body></html>"
                % (html.escape(self.fake.drive.owner_email),
                   "<p><b>%s</b></p>" % html.escape(msg) if msg else ""))
        return Response(200, [("Content-Type", "text/html; charset=utf-8")], page.encode("utf-8"))
