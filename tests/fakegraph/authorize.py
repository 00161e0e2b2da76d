"""The authorization-code flow (+PKCE) of the identity platform
(graph-notes 1.2): the /authorize endpoint, a small sign-in/consent page, and
the authorization codes redeemed at /token (identity.py).

  GET|POST /{tenant}/oauth2/v2.0/authorize?client_id&response_type=code&redirect_uri
           &scope&state&response_mode&code_challenge&code_challenge_method&prompt&login_hint
  POST     /{tenant}/oauth2/v2.0/authorize/consent   (form: txn, action=accept|cancel, account)

Errors the service shows on its own page (no redirect; HTML, status 400,
"AADSTSnnnnn: ..." in the body and in the <title>-less page's
id="error-code" element): unknown tenant (AADSTS90002), missing client_id
(AADSTS900144), unknown client (AADSTS700016), missing redirect_uri
(AADSTS900144), redirect_uri not registered for the client (AADSTS50011).
Redirect URIs must equal a registered one exactly, except that for loopback
registrations (http://localhost, http://127.0.0.1) the port is ignored
(Microsoft documents this for native apps).

Once the redirect URI is trusted, errors go back to it:
{redirect_uri}?error=...&error_description=AADSTSnnn: ...&error_uri=...&state=...
  response_type missing -> invalid_request (900144), not "code" ->
  unsupported_response_type (70005); scope missing -> invalid_request
  (900144); response_mode not query|fragment|form_post -> invalid_request
  (70007); code_challenge_method without code_challenge, or not S256|plain ->
  invalid_request (90023), a challenge of the wrong size (S256: 43
  characters, plain: 43-128) -> invalid_request (501491); prompt=none
  without auto_consent -> login_required (50058); the user pressing Cancel ->
  access_denied (65004 "User declined to consent to access the app").

Otherwise a transaction is created and the sign-in page served (200 HTML,
no JavaScript): a form posting to .../authorize/consent with a hidden
input id="txn" name="txn", an account picker (radio inputs name="account",
id="account-0", "account-1"..., value = the user id; shown for every
sign-in account of the fake, preselected by login_hint), and the buttons
id="accept" (name=action value=accept) and id="cancel" (value=cancel).
Accept -> 302 {redirect_uri}?code=...&state=... (response_mode fragment:
"#code=..."; form_post: a 200 page with an auto-submitting form).  An account
that may not use the tenant (a personal account at /organizations, a work
account at /consumers) gets an error page (AADSTS50020), no redirect.  A
used, unknown or expired transaction (15 minutes) -> error page AADSTS50089.
Config auto_consent=True skips the page: /authorize answers 302 with a code
at once (for the primary account, or the login_hint account).

Codes live config auth_code_lifetime seconds (600), are single use and bound
to the client, the redirect_uri and the PKCE challenge (checked in redeem()).
Python API (FakeGraph mirrors these): pending(), approve(txn=None,
account=None) and decline(txn=None) return the redirect URL the browser
would be sent to, codes() lists issued codes.
"""

import base64
import hashlib
import html
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from . import util
from .web import Response, TokenError, text_response

TXN_LIFETIME = 900
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
RESPONSE_MODES = ("query", "fragment", "form_post")


class PageError(Exception):
    """An error shown on the service's own page (never redirected)."""

    def __init__(self, aadsts, text, status=400):
        super().__init__("AADSTS%d: %s" % (aadsts, text))
        self.aadsts = aadsts
        self.text = text
        self.status = status


class RedirectError(Exception):
    def __init__(self, error, aadsts, text):
        super().__init__("%s AADSTS%d: %s" % (error, aadsts, text))
        self.error = error
        self.aadsts = aadsts
        self.text = text


class Txn:
    def __init__(self, tenant, client_id, redirect_uri, scopes, state, mode, challenge, method, prompt, hint):
        self.id = util.random_urlsafe(24)
        self.tenant = tenant
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.scopes = scopes
        self.state = state
        self.mode = mode
        self.challenge = challenge
        self.method = method
        self.prompt = prompt
        self.login_hint = hint
        self.created = util.now()
        self.status = "pending"           # pending | approved | declined
        self.location = None

    def describe(self):
        return {"txn": self.id, "tenant": self.tenant, "client_id": self.client_id,
                "redirect_uri": self.redirect_uri, "scope": " ".join(self.scopes), "state": self.state,
                "code_challenge_method": self.method, "prompt": self.prompt, "login_hint": self.login_hint,
                "status": self.status}


class AuthCode:
    def __init__(self, txn, user, lifetime):
        self.code = ("1.AX" if user.is_business else "M.C5_BAY.2.U.") + util.random_urlsafe(90)
        self.client_id = txn.client_id
        self.redirect_uri = txn.redirect_uri
        self.scopes = txn.scopes
        self.challenge = txn.challenge
        self.method = txn.method
        self.tenant = txn.tenant
        self.user = user
        self.issued = util.now()
        self.expires_at = self.issued + lifetime
        self.redeemed = False

    def describe(self):
        return {"code": self.code, "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                "scope": " ".join(self.scopes), "user": self.user.email, "code_challenge_method": self.method,
                "redeemed": self.redeemed, "expires_in": max(0, int(self.expires_at - util.now()))}


def redirect_matches(registered, requested):
    if registered == requested:
        return True
    r, q = urlsplit(registered), urlsplit(requested)
    if r.scheme != "http" or q.scheme != "http":
        return False
    if r.hostname is None or ("[%s]" % r.hostname if ":" in r.hostname else r.hostname) not in LOOPBACK_HOSTS:
        return False
    try:
        q.port                      # a malformed port never matches
    except ValueError:
        return False
    return (r.hostname == q.hostname and (r.path or "/") == (q.path or "/") and r.query == q.query
            and not q.fragment and q.username is None)


def pkce_ok(method, challenge, verifier):
    if method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") == challenge
    return verifier == challenge


def _page(title, body, status=200):
    doc = ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>%s</title></head>\n<body>\n%s\n"
           "</body></html>\n" % (html.escape(title), body))
    return Response(status, [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store, no-cache"),
                             ("X-Frame-Options", "DENY")], doc.encode("utf-8"))


class Authorize:
    def __init__(self, fake):
        self.fake = fake
        self.reset()

    def reset(self):
        self.txns = {}
        self.codes_by_value = {}

    # ------------------------------------------------------------ pages
    def error_page(self, err):
        trace, corr = util.new_guid(), util.new_guid()
        body = ("<h1>Sign in</h1>\n<p>Sorry, but we're having trouble signing you in.</p>\n"
                "<p id='error-code'>AADSTS%d: %s</p>\n<p>Request Id: %s<br>Correlation Id: %s<br>"
                "Timestamp: %s</p>" % (err.aadsts, html.escape(err.text), trace, corr, util.aad_timestamp()))
        return _page("Sign in to your account", body, err.status)

    def _signin_page(self, txn):
        client = self.fake.identity.clients.get(txn.client_id, {})
        users = self.fake.signin_users()
        chosen = self._hinted_user(txn.login_hint) or self.fake.me
        rows = []
        for i, u in enumerate(users):
            kind = "Work or school account" if u.is_business else "Personal account"
            rows.append("<label><input type='radio' name='account' id='account-%d' value='%s'%s> %s "
                        "(%s) - %s</label><br>" % (i, html.escape(u.id), " checked" if u is chosen else "",
                                                   html.escape(u.name), html.escape(u.email), kind))
        scopes = "".join("<li>%s</li>" % html.escape(s) for s in txn.scopes)
        body = ("<h1>Sign in</h1>\n<p>Fake Graph sign-in. <b id='app-name'>%s</b> would like to:</p><ul>%s</ul>\n"
                "<form method='post' action='/%s/oauth2/v2.0/authorize/consent' id='consent'>\n"
                "<input type='hidden' name='txn' id='txn' value='%s'>\n"
                "<fieldset id='accounts'><legend>Pick an account</legend>\n%s\n</fieldset>\n"
                "<button type='submit' name='action' value='accept' id='accept'>Accept</button>\n"
                "<button type='submit' name='action' value='cancel' id='cancel'>Cancel</button>\n"
                "</form>" % (html.escape(client.get("name") or txn.client_id), scopes,
                             quote(txn.tenant, safe=""), html.escape(txn.id), "\n".join(rows)))
        return _page("Sign in to your account", body)

    # ------------------------------------------------------- responses
    @staticmethod
    def _location(redirect_uri, mode, params):
        qs = urlencode([(k, v) for k, v in params if v is not None])
        if mode == "fragment":
            return redirect_uri + "#" + qs
        return redirect_uri + ("&" if "?" in redirect_uri else "?") + qs

    def _respond(self, redirect_uri, mode, params):
        if mode == "form_post":
            fields = "".join("<input type='hidden' name='%s' value='%s'>" % (html.escape(k), html.escape(v))
                             for k, v in params if v is not None)
            body = ("<form method='post' name='hiddenform' action='%s'>%s<noscript><p>Script is disabled. "
                    "Click Submit to continue.</p><input type='submit' value='Submit' id='submit'></noscript>"
                    "</form><script>window.onload=function(){document.forms[0].submit();}</script>"
                    % (html.escape(redirect_uri), fields))
            return _page("Working...", body)
        return Response(302, [("Location", self._location(redirect_uri, mode, params)),
                              ("Cache-Control", "no-store, no-cache"), ("Content-Type", "text/html; charset=utf-8")],
                        b"")

    def _error_params(self, err, state):
        return [("error", err.error),
                ("error_description", "AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s"
                 % (err.aadsts, err.text, util.new_guid(), util.new_guid(), util.aad_timestamp())),
                ("error_uri", "%s/error?code=%d" % (self.fake.url, err.aadsts)),
                ("state", state)]

    # --------------------------------------------------------- authorize
    def handle(self, req, tenant):
        if req.method == "POST":
            ctype = (req.header("Content-Type") or "").split(";")[0].strip().lower()
            pairs = parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True) \
                if ctype == "application/x-www-form-urlencoded" else []
        elif req.method in ("GET", "HEAD"):
            pairs = req.query
        else:
            return text_response(405, "Method Not Allowed", headers=[("Allow", "GET, POST")])
        params = {}
        for k, v in pairs:
            params.setdefault(k, v)
        with self.fake.lock:
            try:
                return self._authorize(tenant, params)
            except PageError as e:
                return self.error_page(e)

    def _client_and_redirect(self, tenant, params):
        try:
            self.fake.identity._check_tenant(tenant)
        except TokenError as e:
            raise PageError(e.aadsts, e.text)
        cid = params.get("client_id")
        if not cid:
            raise PageError(900144, "The request body must contain the following parameter: 'client_id'.")
        client = self.fake.identity.clients.get(cid)
        if client is None:
            raise PageError(700016, "Application with identifier '%s' was not found in the directory '%s'. This "
                                    "can happen if the application has not been installed by the administrator "
                                    "of the tenant or consented to by any user in the tenant. You may have sent "
                                    "your authentication request to the wrong tenant." % (cid, tenant))
        ru = params.get("redirect_uri")
        if not ru:
            raise PageError(900144, "The request body must contain the following parameter: 'redirect_uri'.")
        if not any(redirect_matches(r, ru) for r in client.get("redirect_uris") or ()):
            raise PageError(50011, "The redirect URI '%s' specified in the request does not match the redirect "
                                   "URIs configured for the application '%s'. Make sure the redirect URI sent in "
                                   "the request matches one added to your application in the Azure portal. "
                                   "Navigate to https://aka.ms/redirectUriMismatchError to learn more about how "
                                   "to fix this." % (ru, cid))
        return cid, ru

    def _authorize(self, tenant, params):
        cid, ru = self._client_and_redirect(tenant, params)
        state = params.get("state")
        mode = params.get("response_mode") or "query"
        err_mode = mode if mode in RESPONSE_MODES else "query"
        try:
            txn = self._validate(tenant, cid, ru, params, mode, state)
        except RedirectError as e:
            return self._respond(ru, err_mode, self._error_params(e, state))
        if self.fake.config.auto_consent:
            user = self._hinted_user(txn.login_hint) or self.fake.me
            return self._finish(txn, user)
        if txn.prompt == "none":
            return self._respond(ru, mode, self._error_params(RedirectError(
                "login_required", 50058, "A silent sign-in request was sent but no user is signed in."), state))
        self.txns[txn.id] = txn
        return self._signin_page(txn)

    def _validate(self, tenant, cid, ru, params, mode, state):
        rt = params.get("response_type")
        if not rt:
            raise RedirectError("invalid_request", 900144,
                                "The request body must contain the following parameter: 'response_type'.")
        if set(rt.split()) != {"code"}:
            raise RedirectError("unsupported_response_type", 70005,
                                "The application requested an unsupported response type '%s'." % rt)
        scope = (params.get("scope") or "").strip()
        if not scope:
            raise RedirectError("invalid_request", 900144,
                                "The request body must contain the following parameter: 'scope'.")
        if mode not in RESPONSE_MODES:
            raise RedirectError("invalid_request", 70007,
                                "The application returned an unsupported value '%s' of response_mode." % mode)
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if challenge is None and method is not None:
            raise RedirectError("invalid_request", 90023, "code_challenge_method was sent without a code_challenge.")
        if challenge is not None:
            method = method or "plain"
            if method not in ("S256", "plain"):
                raise RedirectError("invalid_request", 90023,
                                    "Invalid code_challenge_method '%s'; it must be 'S256' or 'plain'." % method)
            ok = len(challenge) == 43 if method == "S256" else 43 <= len(challenge) <= 128
            if not ok:
                raise RedirectError("invalid_request", 501491, "Invalid size of Code_Challenge parameter.")
        return Txn(tenant, cid, ru, scope.split(), state, mode, challenge, method, params.get("prompt"),
                   params.get("login_hint"))

    def _hinted_user(self, hint):
        if not hint:
            return None
        for u in self.fake.signin_users():
            if u.email.lower() == hint.lower():
                return u
        return None

    def _finish(self, txn, user):
        """Issue a code for user (or show the tenant refusal page)."""
        refusal = self.fake.identity.tenant_refusal(user, txn.tenant, txn.client_id)
        if refusal is not None:
            txn.status = "declined"
            return self.error_page(PageError(refusal.aadsts, refusal.text))
        ac = AuthCode(txn, user, self.fake.config.auth_code_lifetime)
        self.codes_by_value[ac.code] = ac
        txn.status = "approved"
        txn.location = self._location(txn.redirect_uri, txn.mode, [("code", ac.code), ("state", txn.state)])
        return self._respond(txn.redirect_uri, txn.mode, [("code", ac.code), ("state", txn.state)])

    def _decline(self, txn):
        txn.status = "declined"
        err = RedirectError("access_denied", 65004, "User declined to consent to access the app.")
        params = self._error_params(err, txn.state)
        txn.location = self._location(txn.redirect_uri, txn.mode, params)
        return self._respond(txn.redirect_uri, txn.mode, params)

    # ----------------------------------------------------------- consent
    def consent(self, req, tenant):
        if req.method != "POST":
            return text_response(405, "Method Not Allowed", headers=[("Allow", "POST")])
        form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
        with self.fake.lock:
            try:
                txn = self._live_txn(form.get("txn"))
                if form.get("action", "accept") == "cancel":
                    return self._decline(txn)
                return self._finish(txn, self._pick_user(txn, form.get("account")))
            except PageError as e:
                return self.error_page(e)

    def _live_txn(self, tid):
        txn = self.txns.get(tid or "")
        if txn is None or txn.status != "pending" or util.now() - txn.created > TXN_LIFETIME:
            raise PageError(50089, "Flow token expired. Authentication failed; please sign in again.")
        return txn

    def _pick_user(self, txn, ref):
        if ref:
            u = self.fake.user_by_ref(ref)
            if u is None or not u.signin:
                raise PageError(50034, "The user account does not exist in the directory. To sign into this "
                                       "application, the account must be added to the directory.")
            return u
        return self._hinted_user(txn.login_hint) or self.fake.me

    # ------------------------------------------------------- Python API
    def _select(self, tid):
        if tid is not None:
            return self._live_txn(tid)
        live = [t for t in self.txns.values() if t.status == "pending"]
        if not live:
            raise KeyError("no pending authorize request")
        return live[-1]

    def pending(self):
        t = util.now()
        return [x.describe() for x in self.txns.values() if x.status == "pending" and t - x.created <= TXN_LIFETIME]

    def approve(self, tid=None, account=None):
        """Approve a pending transaction (the newest by default) as account
        (user id, UPN or alias; default login_hint / primary).  Returns the
        redirect URL; raises KeyError if nothing is pending, ValueError if
        the account may not sign in at the transaction's tenant."""
        try:
            txn = self._select(tid)
            user = self._pick_user(txn, account)
        except PageError as e:
            raise KeyError(str(e))
        refusal = self.fake.identity.tenant_refusal(user, txn.tenant, txn.client_id)
        if refusal is not None:
            raise ValueError(str(refusal))
        self._finish(txn, user)
        return txn.location

    def decline(self, tid=None):
        try:
            txn = self._select(tid)
        except PageError as e:
            raise KeyError(str(e))
        self._decline(txn)
        return txn.location

    def codes(self):
        return [c.describe() for c in self.codes_by_value.values()]

    # ------------------------------------------------------- redemption
    def redeem(self, form, cid, tenant):
        """Check an authorization_code grant; returns the AuthCode (now
        redeemed) or raises TokenError."""
        value = form.get("code")
        if not value:
            raise TokenError("invalid_request", 900144,
                             "The request body must contain the following parameter: 'code'.")
        ac = self.codes_by_value.get(value)
        if ac is None or ac.client_id != cid:
            raise TokenError("invalid_grant", 70000,
                             "Provided grant is invalid or malformed. The authorization code is not valid for "
                             "this client.")
        if ac.redeemed:
            raise TokenError("invalid_grant", 54005,
                             "OAuth2 Authorization code was already redeemed, please retry with a new valid code "
                             "or use an existing refresh token.")
        if util.now() >= ac.expires_at:
            raise TokenError("invalid_grant", 70008,
                             "The provided authorization code or refresh token has expired due to inactivity. "
                             "Send a new interactive authorization request for this user and resource.")
        ru = form.get("redirect_uri")
        if not ru:
            raise TokenError("invalid_request", 900144,
                             "The request body must contain the following parameter: 'redirect_uri'.")
        if ru != ac.redirect_uri:
            raise TokenError("invalid_grant", 70000,
                             "The provided value for the 'redirect_uri' is not valid. The value must exactly match "
                             "the redirect URI used to obtain the authorization code.")
        if ac.challenge is not None:
            verifier = form.get("code_verifier")
            if not verifier:
                raise TokenError("invalid_request", 900144,
                                 "The request body must contain the following parameter: 'code_verifier'.")
            if not pkce_ok(ac.method, ac.challenge, verifier):
                raise TokenError("invalid_grant", 501481,
                                 "The Code_Verifier does not match the code_challenge supplied in the "
                                 "authorization request.")
        self.fake.identity.check_user_tenant(ac.user, tenant, cid)
        ac.redeemed = True
        return ac
