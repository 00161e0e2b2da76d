"""fakegraph: a loopback fake of Microsoft Graph (OneDrive personal) and the
Microsoft identity platform for onedrivefs tests.  Standard library only.

    from fakegraph import FakeGraph          (or tests.fakegraph)
    with FakeGraph(device_interval=1) as fake: ...

Modules: fake (FakeGraph, Config), server (HTTP/routing/faults), graph
(/v1.0 routes), writes (create folder, PATCH, DELETE, PUT content), upload
(upload sessions), versions, delta, render (JSON shapes), drive (item tree,
versions, change log, recycle bin), content (bytes, temp-file and generated
content), qxhash (QuickXorHash), identity (OAuth endpoints), download
(pre-authenticated URLs), control (/_control/), client (a Graph client for
tests: "another device"), faults, stats, naming, util, web
(request/response/errors), sample (demo drive).
"""

from .fake import Config, FakeGraph
from .qxhash import QuickXorHash, quickxorhash

__all__ = ["FakeGraph", "Config", "QuickXorHash", "quickxorhash"]
