"""Microsoft identity platform v2.0 emulation (graph-notes section 1):
POST /{tenant}/oauth2/v2.0/devicecode, POST /{tenant}/oauth2/v2.0/token,
GET/POST /devicelogin (a tiny page where the "user" types the code), and the
access-token check used by the Graph routes.

The authorize endpoint (authorization code + PKCE, sign-in/consent page)
lives in authorize.py; its grant is redeemed here.

Tenants ({tenant} in the URL): `common`, `organizations`, `consumers`, the
consumer tenant GUID 9188040d-..., and - once the fake has a work/school
user - the work tenant's GUID and domain (accounts.Tenant).  Anything else
-> invalid_request AADSTS90002.  Accounts per tenant:
  personal account: common, consumers, 9188040d-... (organizations or the
                    work tenant -> invalid_request AADSTS50020)
  work account:     common, organizations, its tenant id/domain (consumers ->
                    invalid_request AADSTS50020: the account does not exist
                    in the 'Microsoft Accounts' tenant)
Device codes and token grants refuse a tenant no sign-in account may use
(50020) up front; a grant bound to a user (code, refresh token) is checked
against that user.

Clients (identity.clients, FakeGraph.register_client): {"public": bool,
"secret": str|None, "redirect_uris": [...], "roles": [application
permissions, for client_credentials], "name"}.  Client authentication: form
client_secret or HTTP Basic (RFC 6749 2.3.1: urlencoded id:secret).  Public
client presenting a secret -> invalid_client AADSTS700025 (400); confidential
client without one -> invalid_client AADSTS7000218 (401); wrong secret ->
invalid_client AADSTS7000215 (401).

Grants (GRANT_HANDLERS): device_code, refresh_token, authorization_code
(authorize.py: code single use -> invalid_grant AADSTS54005, expired ->
AADSTS70008, bound to client, redirect_uri (AADSTS70000 when different) and
PKCE challenge (verifier mismatch -> invalid_grant AADSTS501481, verifier
missing -> invalid_request AADSTS900144)), client_credentials (confidential
clients only; tenant common/consumers -> invalid_request AADSTS9001023,
organizations -> invalid_request AADSTS50059 (no tenant-identifying
information); scope must be exactly https://graph.microsoft.com/.default (or
00000003-0000-0000-c000-000000000000/.default): no /.default ->
invalid_scope AADSTS1002012, several scopes -> invalid_scope AADSTS70011,
another resource -> invalid_resource AADSTS500011; the response has no
refresh_token and no scope; the token is app-only, carrying the client's
roles).

Access tokens are opaque random strings bound to a user (None for app-only
tokens); refresh tokens rotate (a new one per refresh, old ones stay valid
until revoked: /_control/tokens/revoke, or POST /me/revokeSignInSessions for
that user's tokens -> invalid_grant AADSTS50173).
"""

import base64
import html
import json
import secrets
from urllib.parse import parse_qsl

from urllib.parse import unquote

from . import util
from .accounts import PERSONAL_CONSUMER_TENANT
from .web import GraphError, TokenError, Response, token_error, token_json, text_response

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
GRAPH_RESOURCE = "https://graph.microsoft.com/"
OIDC_SCOPES = {"openid", "profile", "email"}
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ23456789"
SLOW_DOWN_TOLERANCE = 0.05     # seconds of clock jitter forgiven between polls

WWW_AUTHENTICATE = ('Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                    'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"')

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRANT_HANDLERS = {
    DEVICE_GRANT: "_grant_device_code",
    "refresh_token": "_grant_refresh_token",
    "authorization_code": "_grant_authorization_code",
    "client_credentials": "_grant_client_credentials",
}

GRANT_LABELS = {DEVICE_GRANT: "device_code", "refresh_token": "refresh_token",
                "authorization_code": "authorization_code", "client_credentials": "client_credentials"}
APP_READ_ROLES = {"files.read.all", "files.readwrite.all", "sites.read.all", "sites.readwrite.all",
                  "sites.manage.all", "sites.fullcontrol.all"}
APP_WRITE_ROLES = {"files.readwrite.all", "sites.readwrite.all", "sites.manage.all", "sites.fullcontrol.all"}


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
                 "interval", "state", "last_poll", "polls", "approve_on_first_poll", "user")

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
        self.user = None                # who approved (None: the primary account)


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
        if endpoint == "authorize":
            return self.fake.authorize.handle(req, tenant)
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
        """invalid_request AADSTS90002 unless the tenant exists."""
        t = tenant.lower()
        if t in ("common", "consumers", "organizations", PERSONAL_CONSUMER_TENANT):
            return
        ten = self.fake.tenant
        if ten is not None and self.fake.has_business_users() and ten.matches(t):
            return
        raise TokenError("invalid_request", 90002,
                         "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are "
                         "signing into the correct cloud." % tenant)

    def tenant_refusal(self, user, tenant, client_id=None):
        """A TokenError (AADSTS50020) if `user` cannot sign in at `tenant`,
        else None."""
        t = tenant.lower()
        ten = self.fake.tenant
        if user.kind == "personal":
            if t in ("common", "consumers", PERSONAL_CONSUMER_TENANT):
                return None
            where = "organizations" if t == "organizations" else tenant
            return TokenError("invalid_request", 50020,
                              "User account '%s' from identity provider 'live.com' does not exist in tenant "
                              "'%s' and cannot access the application '%s' in that tenant. The account "
                              "needs to be added as an external user in the tenant first."
                              % (user.email, where, client_id or self.fake.CLIENT_ID))
        if t in ("common", "organizations") or (ten is not None and ten.matches(t)):
            return None
        return TokenError("invalid_request", 50020,
                          "User account '%s' from identity provider 'https://sts.windows.net/%s/' does not "
                          "exist in tenant 'Microsoft Accounts' and cannot access the application '%s' in that "
                          "tenant. The account needs to be added as an external user in the tenant first."
                          % (user.email, ten.id if ten else "", client_id or self.fake.CLIENT_ID))

    def check_user_tenant(self, user, tenant, client_id=None):
        err = self.tenant_refusal(user, tenant, client_id)
        if err is not None:
            raise err

    def _check_any_account(self, tenant, client_id=None):
        """50020 (for the primary account) unless some sign-in account may
        use this tenant."""
        if any(self.tenant_refusal(u, tenant) is None for u in self.fake.signin_users()):
            return
        self.check_user_tenant(self.fake.me, tenant, client_id)

    def _basic_auth(self, req, form):
        """Fold an HTTP Basic client authentication (RFC 6749 2.3.1) into
        form: client_id / client_secret."""
        auth = (req.header("Authorization") or "").strip()
        scheme, _, cred = auth.partition(" ")
        if scheme.lower() != "basic":
            return
        try:
            raw = base64.b64decode(cred.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise TokenError("invalid_client", 7000215, "Invalid client secret provided.", status=401)
        cid, sep, secret = raw.partition(":")
        if not sep:
            raise TokenError("invalid_client", 7000215, "Invalid client secret provided.", status=401)
        cid, secret = unquote(cid.replace("+", " ")), unquote(secret.replace("+", " "))
        if form.get("client_id") and form["client_id"] != cid:
            raise TokenError("invalid_client", 700016, "The client_id in the Authorization header does not "
                             "match the client_id in the request body.", status=401)
        form["client_id"] = cid
        if "client_secret" in form and form["client_secret"] != secret:
            raise TokenError("invalid_client", 7000215, "Invalid client secret provided.", status=401)
        form["client_secret"] = secret

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
        self._check_any_account(tenant, form.get("client_id"))
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
        self._basic_auth(req, form)
        grant = form.get("grant_type")
        if not grant:
            raise _missing("grant_type")
        self._check_tenant(tenant)
        handler = GRANT_HANDLERS.get(grant)
        if handler is None:
            raise TokenError("unsupported_grant_type", 70003,
                             "The app requested an unsupported grant type '%s'." % grant)
        if grant == "client_credentials":
            self._check_app_tenant(tenant)
        else:
            self._check_any_account(tenant, form.get("client_id"))
        cid = self._check_client(form, tenant)
        resp = getattr(self, handler)(form, cid, tenant)
        self.fake.counters.grant(GRANT_LABELS.get(grant, grant))
        return resp

    def _check_app_tenant(self, tenant):
        t = tenant.lower()
        if t in ("common", "consumers"):
            raise TokenError("invalid_request", 9001023,
                             "The grant type isn't supported over the /common or /consumers endpoints. Please "
                             "use the /organizations or tenant-specific endpoint.")
        if t == "organizations":
            raise TokenError("invalid_request", 50059,
                             "No tenant-identifying information found in either the request or implied by any "
                             "provided credentials.")
        if t == PERSONAL_CONSUMER_TENANT:
            raise TokenError("invalid_request", 9001023,
                             "The grant type isn't supported over the /common or /consumers endpoints. Please "
                             "use the /organizations or tenant-specific endpoint.")

    def _grant_client_credentials(self, form, cid, tenant):
        client = self.clients[cid]
        if client.get("public", True):
            raise TokenError("invalid_client", 7000218,
                             "The request body must contain the following parameter: 'client_assertion' or "
                             "'client_secret'.", status=401)
        scope = form.get("scope", "").strip()
        if not scope:
            raise _missing("scope")
        parts = scope.split()
        if any(not p.endswith("/.default") for p in parts):
            bad = [p for p in parts if not p.endswith("/.default")][0]
            raise TokenError("invalid_scope", 1002012,
                             "The provided value for scope %s is not valid. Client credential flows must have a "
                             "scope value with /.default suffixed to the resource identifier (application ID "
                             "URI)." % bad)
        if len(parts) != 1:
            raise TokenError("invalid_scope", 70011,
                             "The provided request must include a 'scope' input parameter. The provided value "
                             "for the input parameter 'scope' is not valid. The scope %s is not valid." % scope)
        resource = parts[0][:-len("/.default")].rstrip("/").lower()
        if resource not in (GRAPH_RESOURCE.rstrip("/"), GRAPH_APP_ID):
            raise TokenError("invalid_resource", 500011,
                             "The resource principal named %s was not found in the tenant named %s. This can "
                             "happen if the application has not been installed by the administrator of the "
                             "tenant or consented to by any user in the tenant. You might have sent your "
                             "authentication request to the wrong tenant." % (parts[0][:-len("/.default")], tenant))
        return token_json(self.issue(cid, [GRAPH_RESOURCE + ".default"], app=True,
                                     roles=list(client.get("roles") or [])))

    def _grant_authorization_code(self, form, cid, tenant):
        code = self.fake.authorize.redeem(form, cid, tenant)
        return token_json(self.issue(cid, code.scopes, user=code.user))

    def _grant_device_code(self, form, cid, tenant):
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
        user = dc.user or self.fake.me
        self.check_user_tenant(user, tenant, cid)
        dc.state = "redeemed"
        return token_json(self.issue(cid, dc.scopes, user=user))

    def _grant_refresh_token(self, form, cid, tenant):
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
        user = self.fake.user_by_id(rec["user_id"])
        if user is None:
            raise TokenError("invalid_grant", 70008,
                             "The provided authorization code or refresh token has expired due to inactivity. "
                             "Send a new interactive authorization request for this user and resource.")
        self.check_user_tenant(user, tenant, cid)
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
        return token_json(self.issue(cid, scopes, had_offline=True, user=user))

    # -------------------------------------------------------------- tokens
    def issue(self, client_id, scopes, had_offline=False, user=None, app=False, roles=None):
        """Mint tokens (also used by /_control/tokens/issue).  user: the
        accounts.User (default the primary account); app=True mints an
        app-only token carrying `roles` (no refresh token, no scope)."""
        t = util.now()
        life = int(self.cfg.access_token_lifetime)
        if app:
            at = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + util.random_urlsafe(96)
            self.access_tokens[at] = {"client_id": client_id, "scopes": [], "roles": list(roles or []),
                                      "expires_at": t + life, "user_id": None, "app": True}
            return {"token_type": "Bearer", "expires_in": life, "ext_expires_in": life, "access_token": at}
        user = user or self.fake.me
        at = ("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." if user.is_business else "EwB") + util.random_urlsafe(96)
        self.access_tokens[at] = {"client_id": client_id, "scopes": list(scopes), "expires_at": t + life,
                                  "user_id": user.id, "app": False, "roles": []}
        out = {
            "token_type": "Bearer",
            "scope": " ".join(s for s in scopes if scope_name(s) not in OIDC_SCOPES),
            "expires_in": life,
            "ext_expires_in": life,
            "access_token": at,
        }
        names = {scope_name(s) for s in scopes}
        if "offline_access" in names or had_offline:
            rt = ("1.A" if user.is_business else "M.C5") + util.random_urlsafe(120)
            self.refresh_tokens[rt] = {"client_id": client_id, "scopes": list(scopes), "revoked": False,
                                       "user_id": user.id}
            out["refresh_token"] = rt
        if "openid" in names:
            out["id_token"] = self._id_token(client_id, t, life, user)
        return out

    def _id_token(self, client_id, t, life, user):
        def b64(obj):
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
        if user.is_business:
            tid = self.fake.tenant.id
            oid = user.id
        else:
            tid = PERSONAL_CONSUMER_TENANT
            oid = "00000000-0000-0000-%s-%s" % (user.id[:4], user.id[4:])
        claims = {"ver": "2.0", "iss": "https://login.microsoftonline.com/%s/v2.0" % tid,
                  "sub": util.random_urlsafe(24), "aud": client_id, "exp": int(t + life), "iat": int(t),
                  "nbf": int(t), "name": user.name, "preferred_username": user.email, "oid": oid, "tid": tid}
        return "%s.%s.%s" % (b64({"typ": "JWT", "alg": "RS256", "kid": "fakegraph"}), b64(claims),
                             util.random_urlsafe(64))

    def expire_access_tokens(self):
        t = util.now()
        for rec in self.access_tokens.values():
            rec["expires_at"] = min(rec["expires_at"], t - 1)
        return len(self.access_tokens)

    def revoke_refresh_tokens(self, user=None):
        """Revoke every refresh token (or those of one accounts.User)."""
        n = 0
        for rec in self.refresh_tokens.values():
            if user is None or rec["user_id"] == user.id:
                rec["revoked"] = True
                n += 1
        return n

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
        if rec.get("app") and not rec["roles"]:
            raise GraphError(401, "InvalidAuthenticationToken",
                             "Either scp or roles claim need to be present in the token.", headers=hdr)
        if not rec.get("app") and self.fake.user_by_id(rec.get("user_id")) is None:
            raise GraphError(401, "InvalidAuthenticationToken",
                             "CompactToken validation failed: the user no longer exists.", headers=hdr)
        return rec

    @staticmethod
    def has_all_scope(rec, write=False):
        """Files.Read(Write).All / Sites.*.All (delegated) or the matching
        application roles: access beyond the user's own drive."""
        names = {scope_name(s) for s in (rec["roles"] if rec.get("app") else rec["scopes"])}
        if rec.get("app"):
            return bool(names & (APP_WRITE_ROLES if write else APP_READ_ROLES))
        want = APP_WRITE_ROLES if write else APP_READ_ROLES
        return bool(names & want) or ".default" in names

    @staticmethod
    def has_sites_scope(rec):
        names = {scope_name(s) for s in (rec["roles"] if rec.get("app") else rec["scopes"])}
        return any(n.startswith("sites.") for n in names) or ".default" in names

    @staticmethod
    def has_drive_scope(rec):
        if rec.get("app"):
            return Identity.has_all_scope(rec)
        for s in rec["scopes"]:
            n = scope_name(s)
            if n.startswith("files.") or n.startswith("sites.") or n == ".default":
                return True
        return False

    @staticmethod
    def has_write_scope(rec):
        """Files.ReadWrite*, Sites.ReadWrite* or .default (writes need it)."""
        if rec.get("app"):
            return Identity.has_all_scope(rec, write=True)
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

    def approve(self, user_code=None, user=None):
        """Approve pending device codes (as `user`, default the primary)."""
        codes = self._find_codes(user_code)
        for dc in codes:
            if dc.state == "pending":
                dc.state = "approved"
                dc.user = user
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
                        msg = "You have signed in as %s. You can close this window." % self.fake.me.email
                except (KeyError, IndexError):
                    msg = "That code wasn't recognised. Check the code and try again."
        elif req.method not in ("GET", "HEAD"):
            return text_response(405, "Method Not Allowed", headers=[("Allow", "GET, POST")])
        page = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Enter code</title></head><body>"
                "<h1>Enter code</h1><p>Fake Graph sign-in for %s</p>%s"
                "<form method='post' action='/devicelogin'><input name='user_code' autofocus "
                "placeholder='Code'> <button name='action' value='approve'>Next</button> "
                "<button name='action' value='decline'>Cancel sign-in</button></form></body></html>"
                % (html.escape(self.fake.me.email),
                   "<p><b>%s</b></p>" % html.escape(msg) if msg else ""))
        return Response(200, [("Content-Type", "text/html; charset=utf-8")], page.encode("utf-8"))
