"""Request/response objects and the two error dialects.

Handlers receive a Request and return a Response (or raise GraphError /
TokenError, rendered here): Graph errors as
  {"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}
with Graph's OData content type and request-id headers (graph-notes 2.1, 11.1);
identity-platform errors as
  {"error", "error_description" (AADSTSnnn: ... Trace ID / Correlation ID /
   Timestamp), "error_codes", "timestamp", "trace_id", "correlation_id", "error_uri"}
(graph-notes 1.6).
"""

from urllib.parse import parse_qsl, urlsplit

from . import util

GRAPH_CONTENT_TYPE = ("application/json;odata.metadata=minimal;odata.streaming=true;"
                      "IEEE754Compatible=false;charset=utf-8")
TOKEN_CONTENT_TYPE = "application/json; charset=utf-8"

# Graph-style top level code used when a status is produced without a more
# specific code (faults, generic failures).
STATUS_CODES = {
    400: ("invalidRequest", "Invalid request"),
    401: ("unauthenticated", "Unauthenticated"),
    403: ("accessDenied", "Access denied"),
    404: ("itemNotFound", "The resource could not be found."),
    405: ("BadRequest", "Unsupported method for this resource."),
    409: ("nameAlreadyExists", "Name already exists"),
    410: ("resyncRequired", "Resync required"),
    411: ("invalidRequest", "Length required"),
    412: ("resourceModified", "ETag does not match current item's value"),
    413: ("requestTooLarge", "The request is too large"),
    415: ("BadRequest", "Unsupported media type"),
    416: ("invalidRange", "Requested range is not satisfiable"),
    429: ("activityLimitReached", "The request has been throttled"),
    500: ("generalException", "An unspecified error has occurred."),
    501: ("notSupported", "Not supported"),
    502: ("generalException", "Bad gateway"),
    503: ("serviceNotAvailable", "Service Unavailable"),
    504: ("generalException", "Gateway timeout"),
    507: ("quotaLimitReached", "Insufficient Storage"),
}

INNER_FOR_STATUS = {429: "throttledRequest"}


class Request:
    def __init__(self, method, target, headers, body=b"", client_address=None):
        self.method = method
        self.target = target
        parts = urlsplit(target)
        self.path = parts.path            # raw (still percent-encoded)
        self.query_string = parts.query
        self.query = parse_qsl(parts.query, keep_blank_values=True)
        self.headers = headers
        self.body = body
        self.oversize = None              # declared body length when it was too large and discarded
        self.client_address = client_address
        self.request_id = util.new_guid()
        self.client_request_id = headers.get("client-request-id") or self.request_id
        self.label = "unknown"

    def header(self, name, default=None):
        v = self.headers.get(name)
        return default if v is None else v

    def qget(self, name, default=None):
        for k, v in self.query:
            if k == name:
                return v
        return default

    def qcount(self, name):
        return sum(1 for k, _ in self.query if k == name)


class Response:
    """status, headers (list of pairs) and a body: bytes, or `stream` (an
    iterable of byte chunks) with an explicit `length`.  `content` marks
    file-content bytes (download statistics)."""

    def __init__(self, status, headers=None, body=b"", stream=None, length=None, content=False):
        self.status = status
        self.headers = list(headers or [])
        self.body = body
        self.stream = stream
        self.length = len(body) if stream is None else length
        self.content = content

    def header(self, name):
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return None

    def chunks(self):
        if self.stream is None:
            if self.body:
                yield self.body
        else:
            yield from self.stream


def graph_headers(req):
    return [("Content-Type", GRAPH_CONTENT_TYPE),
            ("request-id", req.request_id),
            ("client-request-id", req.client_request_id),
            ("Cache-Control", "no-store, no-cache")]


def graph_json(req, obj, status=200, headers=()):
    return Response(status, graph_headers(req) + list(headers), util.dumps(obj))


def graph_empty(req, status, headers=()):
    """A body-less Graph response (204, 302, 304)."""
    h = [("request-id", req.request_id), ("client-request-id", req.client_request_id),
         ("Cache-Control", "no-store, no-cache")]
    return Response(status, h + list(headers), b"")


class GraphError(Exception):
    def __init__(self, status, code=None, message=None, inner_code=None, headers=(), inner_extra=None):
        dcode, dmsg = STATUS_CODES.get(status, ("generalException", "Error"))
        self.status = status
        self.code = code or dcode
        self.message = message if message is not None else dmsg
        self.inner_code = inner_code
        self.inner_extra = inner_extra or {}
        self.headers = list(headers)
        super().__init__("%d %s: %s" % (status, self.code, self.message))


def graph_error_body(req, err):
    inner = {}
    if err.inner_code:
        inner["code"] = err.inner_code
    inner.update(err.inner_extra)
    inner.update({"date": util.inner_error_date(),
                  "request-id": req.request_id,
                  "client-request-id": req.client_request_id})
    return {"error": {"code": err.code, "message": err.message, "innerError": inner}}


def graph_error(req, err):
    return graph_json(req, graph_error_body(req, err), err.status, err.headers)


class TokenError(Exception):
    def __init__(self, error, aadsts, text, status=400, headers=()):
        self.error = error
        self.aadsts = aadsts
        self.text = text
        self.status = status
        self.headers = list(headers)
        super().__init__("%s AADSTS%d: %s" % (error, aadsts, text))


def token_headers():
    return [("Content-Type", TOKEN_CONTENT_TYPE),
            ("Cache-Control", "no-store, no-cache"),
            ("Pragma", "no-cache")]


def token_error(base_url, err):
    ts = util.aad_timestamp()
    trace = util.new_guid()
    corr = util.new_guid()
    body = {
        "error": err.error,
        "error_description": "AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s"
                             % (err.aadsts, err.text, trace, corr, ts),
        "error_codes": [err.aadsts],
        "timestamp": ts,
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": "%s/error?code=%d" % (base_url, err.aadsts),
    }
    return Response(err.status, token_headers() + err.headers, util.dumps(body))


def token_json(obj):
    return Response(200, token_headers(), util.dumps(obj))


def text_response(status, text, ctype="text/plain; charset=utf-8", headers=()):
    return Response(status, [("Content-Type", ctype)] + list(headers), text.encode("utf-8"))


def plain_json(status, obj, headers=()):
    return Response(status, [("Content-Type", "application/json; charset=utf-8")] + list(headers),
                    util.dumps(obj))
