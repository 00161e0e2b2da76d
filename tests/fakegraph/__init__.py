"""fakegraph: a loopback fake of Microsoft Graph (OneDrive personal and
business, SharePoint libraries, shared folders) and the Microsoft identity
platform (device code, authorization code + PKCE, refresh, client
credentials) for onedrivefs tests.  Standard library only.

    from fakegraph import FakeGraph          (or tests.fakegraph)
    with FakeGraph(device_interval=1) as fake: ...
    with FakeGraph(account="business", auto_consent=True) as fake: ...

Modules: fake (FakeGraph, Config), server (HTTP/routing/faults), graph
(/v1.0 routes), writes (create folder, PATCH, DELETE, PUT content), upload
(upload sessions), versions, delta, render (JSON shapes), drive (item tree,
versions, change log, recycle bin), content (bytes, temp-file and generated
content), qxhash (QuickXorHash), identity (OAuth endpoints), download
(pre-authenticated URLs), control (/_control/), client (a Graph client for
tests: "another device"), faults, stats, naming, util, web
(request/response/errors), sample (demo drive), accounts (users, tenant,
sites, shares), authorize (/authorize, sign-in page, auth codes), directory
(/users, /sites, revokeSignInSessions).
"""

from .fake import Config, FakeGraph
from .qxhash import QuickXorHash, quickxorhash

__all__ = ["FakeGraph", "Config", "QuickXorHash", "quickxorhash"]
