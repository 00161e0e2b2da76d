"""JSON batching: POST /v1.0/$batch (graph-notes 14, graph-docs
concepts/json-batching.md).

  {"requests": [{"id", "method", "url" (relative to the version root),
                 "headers" {..}, "body" (JSON, or base64 text), "dependsOn" [ids]}, ...]}
  -> 200 {"responses": [{"id", "status", "headers" {..}, "body"}, ...]}

Validation (the whole batch answers 400 BadRequest): a body that is not a
JSON object with a "requests" array, no requests or more than 20, a
request without a string id, method or url, an absolute url, duplicate
ids, a body without a Content-Type header, dependsOn naming an unknown id
(or a cycle).

Each request runs as a request of its own would: the outer Authorization
header is checked again for it (401 inside the batch), it is counted in
stats.batched under its own route label (the outer request counts once as
"POST batch" in stats.requests), and fault rules that answer with a status
or a body apply to it (a 429 with its Retry-After in that response's
headers); rules that drop, stall or truncate act on the outer request
only.  Content transfer is not batched: a /content request inside a batch
answers 400.  dependsOn: the dependants of a request that failed (not 2xx)
answer 424 Failed Dependency.  Responses come back in another order than
the requests (the service promises no order).

Config "batch" false (POST /_control/config): /$batch answers 404, as a
service without batching would.
"""

import base64
import json
import random

from . import graph
from .web import GraphError, Request, graph_error, graph_json

MAX_REQUESTS = 20


def _bad(message):
    return GraphError(400, "BadRequest", message)


class Batch:
    def __init__(self, fake):
        self.fake = fake
        self._rnd = random.Random()

    def handle(self, req):
        fake = self.fake
        if not fake.config.batch:
            raise GraphError(404, "BadRequest", "Resource not found for the segment '$batch'.")
        if req.method != "POST":
            raise GraphError(405, "BadRequest",
                             "The HTTP method '%s' is not supported for this resource." % req.method,
                             headers=[("Allow", "POST")])
        with fake.lock:
            fake.identity.authenticate(req)
        reqs = self._parse(req)
        order = self._order(reqs)
        results = {}
        for r in order:
            results[r["id"]] = self._run(req, r, results)
        responses = [results[r["id"]] for r in reqs]
        if len(responses) > 1:
            shuffled = list(responses)
            while shuffled == responses:
                self._rnd.shuffle(shuffled)
            responses = shuffled
        return graph_json(req, {"responses": responses})

    # ---------------------------------------------------------- validation
    @staticmethod
    def _parse(req):
        if req.oversize is not None:
            raise GraphError(413, "requestTooLarge", "The request body is too large.")
        try:
            doc = json.loads(req.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise _bad("Invalid batch payload format.")
        reqs = doc.get("requests") if isinstance(doc, dict) else None
        if not isinstance(reqs, list) or not reqs:
            raise _bad("Invalid batch payload format.")
        if len(reqs) > MAX_REQUESTS:
            raise _bad("Number of batch request steps exceeds the maximum value of %d." % MAX_REQUESTS)
        seen = set()
        for r in reqs:
            if not isinstance(r, dict):
                raise _bad("Invalid batch payload format.")
            for key in ("id", "method", "url"):
                if not isinstance(r.get(key), str) or not r[key]:
                    raise _bad("Missing or invalid '%s' in a batch request." % key)
            if r["id"] in seen:
                raise _bad("Batch request ids must be unique: '%s' is repeated." % r["id"])
            seen.add(r["id"])
            if "://" in r["url"] or not r["url"].startswith("/"):
                raise _bad("The url of batch request '%s' must be relative to the version root."
                           % r["id"])
            hdrs = r.get("headers", {})
            if not isinstance(hdrs, dict) or not all(isinstance(v, str) for v in hdrs.values()):
                raise _bad("Invalid headers in batch request '%s'." % r["id"])
            if "body" in r and not any(k.lower() == "content-type" for k in hdrs):
                raise _bad("Write request id : %s does not contain Content-Type header or body."
                           % r["id"])
            deps = r.get("dependsOn", [])
            if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
                raise _bad("Invalid dependsOn in batch request '%s'." % r["id"])
        for r in reqs:
            for d in r.get("dependsOn", []):
                if d not in seen or d == r["id"]:
                    raise _bad("Batch request '%s' depends on an unknown request '%s'." % (r["id"], d))
        return reqs

    def _order(self, reqs):
        """Requests with their dependencies first (400 on a cycle); the
        service runs independent requests in parallel, so their order is
        random here."""
        by_id = {r["id"]: r for r in reqs}
        done, order, visiting = set(), [], set()

        def visit(r):
            if r["id"] in done:
                return
            if r["id"] in visiting:
                raise _bad("Batch requests depend on each other in a cycle.")
            visiting.add(r["id"])
            for d in r.get("dependsOn", []):
                visit(by_id[d])
            visiting.discard(r["id"])
            done.add(r["id"])
            order.append(r)

        shuffled = list(reqs)
        self._rnd.shuffle(shuffled)
        for r in shuffled:
            visit(r)
        return order

    # ----------------------------------------------------------- execution
    def _run(self, outer, r, results):
        fake = self.fake
        rid = r["id"]
        for d in r.get("dependsOn", []):
            if not 200 <= results[d]["status"] < 300:
                return {"id": rid, "status": 424, "headers": {"Content-Type": "application/json"},
                        "body": {"error": {"code": "FailedDependency",
                                           "message": "The dependent request '%s' failed." % d}}}
        hdrs = {k: v for k, v in r.get("headers", {}).items()}
        auth = outer.header("Authorization")
        if auth is not None:
            hdrs["Authorization"] = auth
        body = b""
        if "body" in r:
            ctype = next(v for k, v in hdrs.items() if k.lower() == "content-type")
            if "json" in ctype.lower():
                body = json.dumps(r["body"]).encode("utf-8")
            elif isinstance(r["body"], str):
                try:
                    body = base64.b64decode(r["body"], validate=True)
                except ValueError:
                    return self._answer(rid, graph_error(outer, _bad("The body is not valid base64.")))
            else:
                return self._answer(rid, graph_error(outer, _bad("The body does not match its Content-Type.")))
        sub = Request(r["method"].upper(), "/v1.0" + r["url"], _Headers(hdrs), body, outer.client_address)
        route = graph.parse_route(sub.method, sub.path[5:])
        sub.label = route.label
        fake.counters.batched_request(sub.label)
        if route.kind == "item" and route.op == "content":
            # content transfer is never batched (graph-notes 14)
            return self._answer(rid, graph_error(sub, _bad("Content cannot be transferred in a batch.")))
        rule = fake.fault_set.take(sub, lambda rl: "status" in rl or "body" in rl)
        if rule is not None:
            from .server import fault_response
            fake.counters.fault()
            return self._answer(rid, fault_response(fake, sub, "graph", rule))
        try:
            resp = fake.graph.handle(sub, route)
        except GraphError as e:
            resp = graph_error(sub, e)
        return self._answer(rid, resp)

    @staticmethod
    def _answer(rid, resp):
        headers = {k: v for k, v in resp.headers}
        data = b"".join(resp.chunks())
        out = {"id": rid, "status": resp.status, "headers": headers}
        if data:
            ctype = (resp.header("Content-Type") or "").lower()
            if "json" in ctype:
                out["body"] = json.loads(data.decode("utf-8"))
            else:
                out["body"] = base64.b64encode(data).decode("ascii")
        return out


class _Headers(dict):
    """Case-insensitive get(), as http.client's HTTPMessage offers."""

    def get(self, name, default=None):
        lname = name.lower()
        for k, v in self.items():
            if k.lower() == lname:
                return v
        return default
