"""Graph resources beyond drive items: users, SharePoint sites and
revokeSignInSessions (graph-notes 3, 14).

  GET  /users/{id|userPrincipalName}         user resource (app-only: a work user of the tenant)
  GET  /users/{id|upn}/drives                [that user's drive] (self, or app-only)
  GET  /sites/{site-id}                      site {id "host,guid,guid", name, displayName, webUrl, ...}
  GET  /sites/{hostname}:/{server-relative-path}        the same, by path
  GET  /sites/{site-id}/drives               document libraries (driveType documentLibrary)
  POST /me/revokeSignInSessions, /users/{id|upn}/revokeSignInSessions

Unknown users -> 404 Request_ResourceNotFound; unknown sites -> 404
itemNotFound "Requested site could not be found".  Sites need a work
account (personal: 400 BadRequest "Tenant does not have a SPO license.")
with a Sites.* or Files.*.All scope, or an app-only token with such a role
(else 403 accessDenied).  The site id is accepted whole, as
"host,siteGuid" or as the bare site GUID.

revokeSignInSessions: work/school accounts only.  For a personal account
the service answers 404 with an empty code and "No HTTP resource was found
that matches the request URI '...profile/revokeSignInSessions...'"
(MicrosoftDocs/feedback#3395).  Needs User.RevokeSessions.All,
User.ReadWrite.All, Directory.ReadWrite.All or Directory.AccessAsUser.All
(delegated) or the application role (else 403 Authorization_RequestDenied
"Insufficient privileges to complete the operation.").  Success is the
documented quirk (graph-notes 14): 200 {"@odata.context":
".../$metadata#Edm.Boolean", "value": true} instead of 204; the user's
refresh tokens are revoked at once (AADSTS50173 on the next refresh);
access tokens stay valid until they expire.
"""

from . import render
from .identity import scope_name
from .web import GraphError, graph_json

REVOKE_SCOPES = {"user.revokesessions.all", "user.readwrite.all", "directory.readwrite.all",
                 "directory.accessasuser.all"}


def _user_not_found(ref):
    return GraphError(404, "Request_ResourceNotFound", "Resource '%s' does not exist or one of its queried "
                                                       "reference-property objects are not present." % ref)


class Directory:
    def __init__(self, fake):
        self.fake = fake

    def find_user(self, ref, token):
        u = self.fake.user_by_ref(ref)
        if u is None or (u.alias == ref and not u.matches(ref)):
            raise _user_not_found(ref)
        if token.get("app") and not u.is_business:
            raise _user_not_found(ref)
        return u

    def find_site(self, route, token, user):
        if user is not None and not user.is_business:
            raise GraphError(400, "BadRequest", "Tenant does not have a SPO license.")
        ident = self.fake.identity
        if not (ident.has_sites_scope(token) or ident.has_all_scope(token)):
            raise GraphError(403, "accessDenied", "Access denied", inner_code="accessRestricted")
        site = None
        if route.site_path is not None:
            host, path = route.site_path
            site = next((x for x in self.fake.sites if x.matches_path(host, path)), None)
        else:
            site = self.fake.site_by_ref(route.owner[1])
        if site is None:
            raise GraphError(404, "itemNotFound", "Requested site could not be found")
        return site

    def handle(self, req, route, token, user):
        fake = self.fake
        if route.kind == "user":
            u = self.find_user(route.owner[1], token)
            return graph_json(req, dict({"@odata.context": fake.graph_url + "/$metadata#users/$entity"},
                                        **render.user_json(u)))
        if route.kind == "site":
            site = self.find_site(route, token, user)
            return graph_json(req, dict({"@odata.context": fake.graph_url + "/$metadata#sites/$entity"},
                                        **render.site_json(site)))
        # drives of a user or a site
        if route.owner[0] == "user":
            u = self.find_user(route.owner[1], token)
            if user is not None and u is not user:
                raise GraphError(403, "accessDenied", "Access denied")
            fake.graph._access(token, user, u.drive, False)
            drives = [u.drive]
        else:
            drives = self.find_site(route, token, user).drives
            if drives:
                fake.graph._access(token, user, drives[0], False)
        return graph_json(req, {"@odata.context": fake.graph_url + "/$metadata#drives",
                                "value": [render.drive_json(d, fake.url) for d in drives]})

    def revoke(self, req, route, token, user):
        fake = self.fake
        if req.method != "POST":
            raise fake.graph._method_error(req, ("POST",))
        target = user if route.owner[0] == "me" else self.find_user(route.owner[1], token)
        if not target.is_business:
            err = GraphError(404, "", "No HTTP resource was found that matches the request URI "
                                      "'https://outlook.office365.com:444/profile/v1.0/users('CID:%s')/profile/"
                                      "revokeSignInSessions?api-version=AGSV1-internal'." % target.id)
            err.code = ""
            raise err
        granted = {scope_name(s) for s in (token["roles"] if token.get("app") else token["scopes"])}
        if not granted & REVOKE_SCOPES:
            raise GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
        fake.identity.revoke_refresh_tokens(target)
        return graph_json(req, {"@odata.context": fake.graph_url + "/$metadata#Edm.Boolean", "value": True})
