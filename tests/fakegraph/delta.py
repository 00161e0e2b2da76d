"""Delta (graph-notes 10): GET /me/drive/root/delta, /drives/{d}/root/delta,
also root/delta(token='...').

* No token: full enumeration of the live tree in pre-order (the root first,
  parents before children).  ?token=latest: {"value": [], "@odata.deltaLink"}.
  ?token=<from a deltaLink>: every item changed since, once, in its latest
  state (creates, content/metadata changes, moves, and the ancestors whose
  size/cTag/childCount changed with them - the service includes parents
  unless the request says `Prefer: deltaExcludeParent`), plus deleted items.
  Incremental rounds are ordered by change sequence, so a child may precede
  its parent (e.g. a folder renamed after a file was added to it).
* Paging: $top (1..1000, default config page_size) -> @odata.nextLink;
  the last page carries @odata.deltaLink.  Both are absolute URLs that keep
  the request's other query options ($select, $top) with an opaque sealed
  `token`.  A round's item list is fixed when its first page is served
  (kept server-side, the newest 64 rounds), so paging is stable under
  concurrent changes; items changed meanwhile come again next round.
* Item shape: as GET item, plus "@odata.type", without
  parentReference.path and without @microsoft.graph.downloadUrl (clients
  must use /content).  Deleted items (personal): "@odata.type", id, name,
  parentReference {driveId, driveType, id}, "deleted": {}, and a file facet
  with the all-zero quickXorHash (quirk 7) or a folder facet; no size, no
  cTag, no times.  Business/library drives (quirk 7): no name, "deleted":
  {"state": "deleted"}, an empty file facet.  Deleting a folder reports
  every item of its subtree.  Tokens are bound to their drive.
* Tokens die with POST /_control/delta/invalidate or a drive reset; so do
  unreadable tokens: the answer is 410 Gone, code resyncRequired, inner
  resyncChangesApplyDifferences, with a Location header holding a fresh
  delta URL (no token: full re-enumeration).
* Test options (config): delta_duplicates - every third item of a round is
  sent again at its end (duplicates across pages); delta_child_first - the
  round is sent in reverse order (children before parents, root last).
* Only root delta: folder-scoped delta (personal supports it) answers 501.
"""

import itertools

from . import render, util
from .qxhash import EMPTY_B64
from .web import GraphError, graph_json

MAX_ROUNDS = 64
RESYNC_MESSAGE = ("Resync required. Replace any local items with the server's version (including deletes) "
                  "if you're sure that the service was up to date with your local changes when you last "
                  "sync'd. Upload any local changes that the server doesn't know about.")


class Delta:
    def __init__(self, fake):
        self.fake = fake
        self._handles = itertools.count(1)
        self._drive = fake.drive

    @property
    def drive(self):
        """The drive of the request being served (set by handle(), which runs
        under the fake's lock)."""
        return self._drive

    # ------------------------------------------------------------ rounds
    def _store(self, ids, end):
        cfg = self.fake.config
        if cfg.delta_child_first:
            ids.reverse()
        if cfg.delta_duplicates and len(ids) > 1:
            ids = ids + ids[::3]
        rounds = self.drive.delta_rounds
        h = "%d.%s" % (next(self._handles), util.random_hex(4))
        rounds[h] = {"ids": ids, "end": end}
        while len(rounds) > MAX_ROUNDS:
            rounds.popitem(last=False)
        return h

    def _full_round(self):
        drive = self.drive
        ids = [drive.root.id] + [it.id for it in drive.walk()]
        return self._store(ids, drive.seq)

    def _incremental_round(self, since, exclude_parent):
        drive = self.drive
        entries = []
        for it in drive.items.values():
            n = it.dseq if exclude_parent else it.seq
            if n > since:
                entries.append((n, len(drive.path_names(it)), it.id))
        for tid, rec in drive.tombstones.items():
            if rec["seq"] > since:
                entries.append((rec["seq"], rec["depth"], tid))
        entries.sort()
        return self._store([e[2] for e in entries], drive.seq)

    # ------------------------------------------------------------ render
    def _render(self, item_id, select):
        drive = self.drive
        it = drive.items.get(item_id)
        if it is not None:
            d = {"@odata.type": "#microsoft.graph.driveItem"}
            d.update(render.item_json(drive, it, self.fake.url, None, select))
            if "parentReference" in d:
                d["parentReference"].pop("path", None)
            return d
        rec = drive.tombstones.get(item_id)
        if rec is None:
            return None
        d = {"@odata.type": "#microsoft.graph.driveItem", "id": item_id, "name": rec["name"],
             "parentReference": {"driveId": drive.drive_id, "driveType": drive.kind, "id": rec["parent_id"]},
             "deleted": {}}
        if drive.business:
            del d["name"]                 # quirk 7: business deleted items lack the name
            d["deleted"] = {"state": "deleted"}
        if rec["folder"]:
            d["folder"] = {"childCount": 0}
        elif drive.business:
            d["file"] = {}
        else:
            d["file"] = {"hashes": {"quickXorHash": EMPTY_B64}}
        if select is not None:
            d = {k: v for k, v in d.items() if k in select or k in ("id", "@odata.type")}
        return d

    # ------------------------------------------------------------- links
    def _link(self, req, token):
        path = req.path
        cut = path.find("/delta(")
        if cut != -1:
            path = path[:cut] + "/delta"
        kept = [p for p in req.query_string.split("&") if p and p.split("=", 1)[0] != "token"]
        if token is not None:
            kept.append("token=" + token)
        return "%s%s%s" % (self.fake.url, path, ("?" + "&".join(kept)) if kept else "")

    def _seal(self, obj):
        obj["ep"] = self.drive.delta_epoch
        obj["d"] = self.drive.drive_id
        return self.fake.sealer.seal_json("delta", obj)

    def _resync(self, req):
        return GraphError(410, "resyncRequired", RESYNC_MESSAGE, inner_code="resyncChangesApplyDifferences",
                          headers=[("Location", self._link(req, None))])

    # ----------------------------------------------------------- handler
    def handle(self, req, route, item):
        fake = self.fake
        self._drive = drive = item.drive
        if item is not drive.root:
            raise GraphError(501, "notSupported", "The fake Graph server implements delta on the root only.")
        select, _ = fake.graph.select(req)
        top = fake.graph.page_size(req)
        token = route.fn_token if route.fn_token is not None else req.qget("token")
        prefer = (req.header("Prefer") or "").lower()
        exclude_parent = "deltaexcludeparent" in prefer or req.header("deltaExcludeParent") is not None
        body = {"@odata.context": fake.graph_url + "/$metadata#Collection(driveItem)", "value": []}
        if token == "latest":
            body["@odata.deltaLink"] = self._link(req, self._seal({"s": drive.seq}))
            return graph_json(req, body)
        offset = 0
        if token is None or token == "":
            handle = self._full_round()
        else:
            data = fake.sealer.unseal_json("delta", token)
            if not isinstance(data, dict) or data.get("ep") != drive.delta_epoch or \
                    data.get("d") != drive.drive_id:
                raise self._resync(req)
            if "h" in data:
                handle, offset = data["h"], int(data["o"])
                if handle not in drive.delta_rounds:
                    raise self._resync(req)
                drive.delta_rounds.move_to_end(handle)
            else:
                handle = self._incremental_round(int(data["s"]), exclude_parent)
        rnd = drive.delta_rounds[handle]
        for item_id in rnd["ids"][offset:offset + top]:
            d = self._render(item_id, select)
            if d is not None:
                body["value"].append(d)
        if offset + top < len(rnd["ids"]):
            body["@odata.nextLink"] = self._link(req, self._seal({"h": handle, "o": offset + top}))
        else:
            body["@odata.deltaLink"] = self._link(req, self._seal({"s": rnd["end"]}))
        return graph_json(req, body)
