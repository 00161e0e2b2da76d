"""fakegraph: a loopback fake of Microsoft Graph (OneDrive personal) and the
Microsoft identity platform for onedrivefs tests.  Standard library only.

    from fakegraph import FakeGraph          (or tests.fakegraph)
    with FakeGraph(device_interval=1) as fake: ...

Modules: fake (FakeGraph, Config), server (HTTP/routing/faults), graph
(/v1.0 routes), render (JSON shapes), drive (item tree), content (bytes and
generated content), qxhash (QuickXorHash), identity (OAuth endpoints),
download (pre-authenticated URLs), control (/_control/), faults, stats,
naming, util, web (request/response/errors), sample (demo drive).
"""

from .fake import Config, FakeGraph
from .qxhash import QuickXorHash, quickxorhash

__all__ = ["FakeGraph", "Config", "QuickXorHash", "quickxorhash"]
