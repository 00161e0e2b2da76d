"""Tests of the fake Graph server itself (tests/fakegraph).

Run: /usr/bin/python3 -m pytest -q tests/test_fakegraph.py
Standard library HTTP only (http.client / urllib); one server per module,
reset before every test.
"""

import base64
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import quote, urlencode, urlsplit

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fakegraph import FakeGraph, QuickXorHash, quickxorhash  # noqa: E402
from fakegraph.content import BLOCK, GeneratedContent  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CID = FakeGraph.CLIENT_ID


# ----------------------------------------------------------------- helpers
class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body.decode("utf-8"))


def req(method, url, headers=None, body=None, conn=None):
    parts = urlsplit(url)
    own = conn is None
    if own:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    target = parts.path + ("?" + parts.query if parts.query else "")
    conn.request(method, target, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    if own:
        conn.close()
    return Resp(r.status, hdrs, data)


def form_post(url, fields, headers=None):
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    h.update(headers or {})
    return req("POST", url, h, urlencode(fields).encode())


@pytest.fixture(scope="module")
def fake():
    with FakeGraph(device_interval=1) as f:
        yield f


@pytest.fixture(autouse=True)
def clean(fake):
    if fake.is_down():
        fake.come_back()
    fake.thaw()
    fake.reset()
    fake.reset_identity()
    fake.set_config(**{k: v for k, v in fake.config.DEFAULTS.items()})
    fake.set_config(device_interval=1)
    yield


@pytest.fixture
def token(fake):
    return fake.issue_tokens()["access_token"]


def g(fake, token, path, method="GET", headers=None, body=None):
    h = {"Authorization": "Bearer " + token}
    h.update(headers or {})
    return req(method, fake.graph_url + path, h, body)


def token_url(fake, tenant="common"):
    return "%s/%s/oauth2/v2.0/token" % (fake.auth_url, tenant)


def devicecode(fake, tenant="common", scope="Files.ReadWrite offline_access User.Read", client_id=CID):
    return form_post("%s/%s/oauth2/v2.0/devicecode" % (fake.auth_url, tenant),
                     {"client_id": client_id, "scope": scope})


def poll(fake, device_code, client_id=CID):
    return form_post(token_url(fake), {"grant_type": DEVICE_GRANT, "client_id": client_id,
                                       "device_code": device_code})


def assert_token_error(r, error, status=400):
    assert r.status == status, r.body
    assert r.header("content-type").startswith("application/json")
    j = r.json()
    assert j["error"] == error
    for k in ("error_description", "error_codes", "timestamp", "trace_id", "correlation_id"):
        assert k in j
    assert j["error_description"].startswith("AADSTS%d: " % j["error_codes"][0])
    assert "\r\nTrace ID: " in j["error_description"] and "\r\nCorrelation ID: " in j["error_description"]
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$", j["timestamp"])
    return j


def assert_graph_error(r, status, code):
    assert r.status == status, (r.status, r.body)
    assert r.header("content-type") == ("application/json;odata.metadata=minimal;odata.streaming=true;"
                                        "IEEE754Compatible=false;charset=utf-8")
    assert r.header("request-id") and r.header("client-request-id")
    e = r.json()["error"]
    assert e["code"] == code
    assert "message" in e
    inner = e["innerError"]
    assert inner["request-id"] == r.header("request-id")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$", inner["date"])
    return e


def children_all(fake, token, path):
    names, pages = [], 0
    r = g(fake, token, path)
    while True:
        assert r.status == 200, r.body
        j = r.json()
        pages += 1
        names += [v["name"] for v in j["value"]]
        nxt = j.get("@odata.nextLink")
        if not nxt:
            return names, pages
        assert nxt.startswith(fake.graph_url + "/")
        r = req("GET", nxt, {"Authorization": "Bearer " + token})


# ------------------------------------------------------------ quickxorhash
def qx_reference(data):
    """Straightforward bit-by-bit QuickXorHash (od-docs pseudo-code)."""
    bits = [0] * 160
    for i, byte in enumerate(data):
        for k in range(8):
            if (byte >> k) & 1:
                bits[(i * 11 + k) % 160] ^= 1
    out = bytearray(20)
    for j in range(160):
        if bits[j]:
            out[j // 8] |= 1 << (j % 8)
    for i, lb in enumerate(len(data).to_bytes(8, "little")):
        out[12 + i] ^= lb
    return base64.b64encode(bytes(out)).decode()


def test_quickxorhash_known_vectors():
    assert quickxorhash(b"") == "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
    # vectors published with rclone's implementation (input base64 -> hash)
    known = {"Sg==": "SgAAAAAAAAAAAAAAAQAAAAAAAAA=",
             "tbQ=": "taAFAAAAAAAAAAAAAgAAAAAAAAA=",
             "2fuxhBJXtpWFe8dOfdGeHw==": "O9tHLAghgSvYohKFyMMxnNCHaHg="}
    for data, want in known.items():
        assert quickxorhash(base64.b64decode(data)) == want
        assert qx_reference(base64.b64decode(data)) == want


def test_quickxorhash_matches_bitwise_reference():
    rnd = random.Random(1)
    for n in (1, 2, 19, 20, 21, 159, 160, 161, 319, 320, 1000, 4099):
        data = bytes(rnd.getrandbits(8) for _ in range(n))
        assert quickxorhash(data) == qx_reference(data), n
        h = QuickXorHash()
        i = 0
        while i < n:                       # uneven incremental updates
            step = rnd.randint(1, 200)
            h.update(data[i:i + step])
            i += step
        assert h.b64digest() == qx_reference(data)


def test_generated_content_is_deterministic_and_hash_consistent():
    for size in (0, 1, 16, 17, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 77, 300001):
        a, b = GeneratedContent(size, 5), GeneratedContent(size, 5)
        data = a.to_bytes()
        assert len(data) == size and data == b.to_bytes()
        assert a.quickxorhash() == quickxorhash(data)
        for off in (0, 7, BLOCK - 3, size // 2):
            assert a.read(off, 5000) == data[off:off + 5000]
    g1, g2 = GeneratedContent(3 * BLOCK, 1).to_bytes(), GeneratedContent(3 * BLOCK, 2).to_bytes()
    assert g1 != g2
    blocks = {g1[i:i + BLOCK] for i in range(0, 3 * BLOCK, BLOCK)}
    assert len(blocks) == 3                 # every block is distinct
    t = time.time()
    GeneratedContent(256 << 20, 9).quickxorhash()
    assert time.time() - t < 2


# ------------------------------------------------------- identity platform
def test_device_code_flow_pending_slow_down_approve_single_use(fake):
    r = devicecode(fake)
    assert r.status == 200
    d = r.json()
    assert set(d) == {"device_code", "user_code", "verification_uri", "expires_in", "interval", "message"}
    assert d["verification_uri"] == fake.url + "/devicelogin"
    assert d["expires_in"] == 900 and d["interval"] == 1
    assert d["user_code"] in d["message"]
    assert_token_error(poll(fake, d["device_code"]), "authorization_pending")
    assert_token_error(poll(fake, d["device_code"]), "slow_down")     # polled faster than interval
    assert_token_error(poll(fake, d["device_code"]), "slow_down")     # still too fast: keeps counting
    time.sleep(1.05)
    assert_token_error(poll(fake, d["device_code"]), "authorization_pending")
    assert [p["user_code"] for p in fake.pending_devices()] == [d["user_code"]]
    r = req("POST", fake.url + "/_control/device/approve", {"Content-Type": "application/json"},
             json.dumps({"user_code": d["user_code"]}).encode())
    assert r.status == 200 and r.json()["approved"] == [d["user_code"]]
    time.sleep(1.05)
    r = poll(fake, d["device_code"])
    assert r.status == 200, r.body
    tok = r.json()
    assert tok["token_type"] == "Bearer"
    assert tok["expires_in"] == 3600 and tok["ext_expires_in"] == 3600
    assert tok["access_token"] and tok["refresh_token"]
    assert "Files.ReadWrite" in tok["scope"].split()
    assert g(fake, tok["access_token"], "/me").status == 200
    time.sleep(1.05)
    assert_token_error(poll(fake, d["device_code"]), "invalid_grant")      # single use
    st = fake.stats()
    assert st["token_grants"]["device_code"] == 1
    assert st["token_errors"]["slow_down"] == 2


def test_device_code_declined_expired_bad_code(fake):
    fake.set_config(device_interval=0, device_expires_in=1)
    d = devicecode(fake).json()
    fake.decline_device(d["user_code"])
    assert_token_error(poll(fake, d["device_code"]), "authorization_declined")
    d2 = devicecode(fake).json()
    time.sleep(1.05)
    assert_token_error(poll(fake, d2["device_code"]), "expired_token")
    assert_token_error(poll(fake, "not-a-device-code"), "bad_verification_code")
    d3 = devicecode(fake).json()       # a code is bound to its client
    fake.register_client("11111111-2222-3333-4444-555555555555")
    assert_token_error(poll(fake, d3["device_code"], "11111111-2222-3333-4444-555555555555"),
                       "bad_verification_code")


def test_device_code_auto_approve_modes(fake):
    fake.set_config(device_interval=0, auto_approve=True)
    d = devicecode(fake).json()
    assert poll(fake, d["device_code"]).status == 200
    fake.set_config(auto_approve="after_first_poll")
    d = devicecode(fake).json()
    assert_token_error(poll(fake, d["device_code"]), "authorization_pending")
    assert poll(fake, d["device_code"]).status == 200


def test_devicelogin_page_approves(fake):
    fake.set_config(device_interval=0)
    d = devicecode(fake).json()
    r = req("GET", fake.url + "/devicelogin")
    assert r.status == 200 and b"<form" in r.body
    r = form_post(fake.url + "/devicelogin", {"user_code": d["user_code"].lower(), "action": "approve"})
    assert r.status == 200 and b"signed in" in r.body
    assert poll(fake, d["device_code"]).status == 200


def test_no_refresh_token_without_offline_access(fake):
    fake.set_config(device_interval=0, auto_approve=True)
    d = devicecode(fake, scope="Files.Read User.Read").json()
    tok = poll(fake, d["device_code"]).json()
    assert "refresh_token" not in tok and tok["access_token"]


def test_token_endpoint_request_errors(fake):
    j = assert_token_error(req("POST", token_url(fake), {"Content-Type": "application/json"},
                                json.dumps({"grant_type": "refresh_token"}).encode()), "invalid_request")
    assert j["error_codes"] == [900144]
    assert_token_error(form_post(token_url(fake), {"client_id": CID}), "invalid_request")   # no grant_type
    j = assert_token_error(form_post(token_url(fake), {"grant_type": "refresh_token", "refresh_token": "x",
                                                       "client_id": "deadbeef-0000-0000-0000-000000000000"}),
                           "unauthorized_client")
    assert "AADSTS700016" in j["error_description"] and "was not found in the directory" in j["error_description"]
    assert_token_error(form_post(token_url(fake), {"grant_type": "password", "client_id": CID}),
                       "unsupported_grant_type")
    j = assert_token_error(form_post(token_url(fake), {"grant_type": "client_credentials", "client_id": CID}),
                           "invalid_request")          # app-only tokens need a tenant, not /common
    assert j["error_codes"] == [9001023]
    assert_token_error(form_post(token_url(fake, "organizations"), {"grant_type": "refresh_token",
                                                                    "refresh_token": "x", "client_id": CID}),
                       "invalid_request")
    j = assert_token_error(devicecode(fake, tenant="contoso.onmicrosoft.com"), "invalid_request")
    assert j["error_codes"] == [90002]
    assert_token_error(devicecode(fake, tenant="organizations"), "invalid_request")
    assert devicecode(fake, tenant="consumers").status == 200
    assert_token_error(req("GET", token_url(fake)), "invalid_request")
    assert_token_error(devicecode(fake, scope=""), "invalid_request")
    j = assert_token_error(form_post(token_url(fake), {"grant_type": "refresh_token", "refresh_token": "x",
                                                       "client_id": CID, "client_secret": "s"}),
                           "invalid_client")
    assert j["error_codes"] == [700025]


def test_refresh_rotation_and_revoke(fake):
    first = fake.issue_tokens()
    rt1 = first["refresh_token"]
    r = form_post(token_url(fake), {"grant_type": "refresh_token", "refresh_token": rt1, "client_id": CID,
                                    "scope": "Files.ReadWrite offline_access"})
    assert r.status == 200, r.body
    second = r.json()
    assert second["refresh_token"] != rt1 and second["access_token"] != first["access_token"]
    assert g(fake, second["access_token"], "/me/drive").status == 200
    # the old refresh token is not revoked by rotation
    r = form_post(token_url(fake), {"grant_type": "refresh_token", "refresh_token": rt1, "client_id": CID})
    assert r.status == 200
    # scopes beyond the grant are refused
    assert_token_error(form_post(token_url(fake), {"grant_type": "refresh_token", "refresh_token": rt1,
                                                   "client_id": CID, "scope": "Mail.Read"}), "invalid_grant")
    j = assert_token_error(form_post(token_url(fake), {"grant_type": "refresh_token", "refresh_token": "bogus",
                                                       "client_id": CID}), "invalid_grant")
    assert j["error_codes"] == [70008]
    assert req("POST", fake.url + "/_control/tokens/revoke").status == 200
    for rt in (rt1, second["refresh_token"]):
        j = assert_token_error(form_post(token_url(fake), {"grant_type": "refresh_token", "refresh_token": rt,
                                                           "client_id": CID}), "invalid_grant")
        assert j["error_codes"] == [50173]
    # access tokens stay valid until they expire
    assert g(fake, second["access_token"], "/me").status == 200


def test_graph_401s(fake, token):
    r = req("GET", fake.graph_url + "/me/drive")
    e = assert_graph_error(r, 401, "InvalidAuthenticationToken")
    assert r.header("www-authenticate").startswith('Bearer realm="", authorization_uri=')
    assert 'client_id="00000003-0000-0000-c000-000000000000"' in r.header("www-authenticate")
    assert e["message"] == "Access token is empty."
    r = g(fake, "not-a-token", "/me/drive/root")
    assert_graph_error(r, 401, "InvalidAuthenticationToken")
    assert r.header("www-authenticate")
    assert g(fake, token, "/me/drive").status == 200
    assert req("POST", fake.url + "/_control/tokens/expire").json()["expired"] >= 1
    r = g(fake, token, "/me/drive")
    e = assert_graph_error(r, 401, "InvalidAuthenticationToken")
    assert e["message"] == "Access token has expired or is not yet valid."
    assert r.header("www-authenticate")


def test_access_token_lifetime_config(fake):
    fake.set_config(access_token_lifetime=1)
    tok = fake.issue_tokens()
    assert tok["expires_in"] == 1
    assert g(fake, tok["access_token"], "/me").status == 200
    time.sleep(1.05)
    assert g(fake, tok["access_token"], "/me").status == 401


def test_scope_without_files_is_denied(fake):
    tok = fake.issue_tokens(scope="User.Read")["access_token"]
    assert g(fake, tok, "/me").status == 200
    assert_graph_error(g(fake, tok, "/me/drive/root"), 403, "accessDenied")


# ------------------------------------------------------------- drive + me
def test_me_and_drive_quota(fake, token):
    fake.seed(tree=[{"path": "a.txt", "content": "12345"}, {"path": "B/c.bin", "content": {"size": 1000, "seed": 1}}])
    me = g(fake, token, "/me").json()
    assert me["id"] == fake.drive_id.lower()
    assert {"displayName", "userPrincipalName", "mail"} <= set(me)
    d = g(fake, token, "/me/drive").json()
    assert d["id"] == fake.drive_id and d["driveType"] == "personal"
    assert re.match(r"^[0-9A-F]{16}$", d["id"])
    assert d["owner"]["user"]["displayName"]
    q = d["quota"]
    assert q["used"] == 1005 and q["total"] == 1 << 40 and q["remaining"] == q["total"] - 1005
    assert q["deleted"] == 0 and q["state"] == "normal"
    fake.set_config(quota_total=1100)
    q = g(fake, token, "/drives/" + fake.drive_id.lower()).json()["quota"]
    assert q["total"] == 1100 and q["remaining"] == 95 and q["state"] == "nearing"
    fake.set_config(quota_total=1010)
    assert g(fake, token, "/me/drive").json()["quota"]["state"] == "critical"
    fake.set_config(quota_total=1000)
    q = g(fake, token, "/me/drive").json()["quota"]
    assert q["state"] == "exceeded" and q["remaining"] == 0
    assert_graph_error(g(fake, token, "/drives/0123456789ABCDEF"), 404, "itemNotFound")
    drives = g(fake, token, "/me/drives").json()
    assert [x["id"] for x in drives["value"]] == [fake.drive_id]


TREE = [
    {"path": "Documents/notes.txt", "content": "hello\nworld\n", "mtime": "2024-01-02T03:04:05Z"},
    {"path": "Documents/Résumé 日本.txt", "content": "cv"},
    {"path": "Documents/C# and 100% sure.txt", "content": "sharp"},
    {"path": "Documents/Sub Folder/deep.bin", "content": {"size": 5000, "seed": 3}},
    {"path": "Photos", "folder": True},
]


def test_items_by_id_and_path(fake, token):
    fake.seed(tree=TREE)
    root = g(fake, token, "/me/drive/root").json()
    assert root["id"] == fake.root_id and root["root"] == {} and root["name"] == "root"
    assert root["parentReference"] == {"driveId": fake.drive_id, "driveType": "personal"}
    assert root["size"] == 12 + 2 + 5 + 5000
    assert root["folder"]["childCount"] == 2
    for p in ("/me/drive/items/root", "/drives/%s/root" % fake.drive_id.lower(), "/me/drive/root:",
              "/me/drive/root:/", "/drives/%s/items/root" % fake.drive_id):
        assert g(fake, token, p).json()["id"] == fake.root_id, p

    n = g(fake, token, "/me/drive/root:/Documents/notes.txt").json()
    nid = n["id"]
    assert nid.startswith(fake.drive_id + "!")
    assert n["name"] == "notes.txt" and n["size"] == 12
    assert re.match(r'^"\{[0-9A-F-]{36}\},\d+"$', n["eTag"])
    assert re.match(r'^"c:\{[0-9A-F-]{36}\},\d+"$', n["cTag"])
    assert n["file"]["mimeType"] == "text/plain"
    assert n["file"]["hashes"]["quickXorHash"] == quickxorhash(b"hello\nworld\n")
    assert n["fileSystemInfo"]["lastModifiedDateTime"] == "2024-01-02T03:04:05Z"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", n["lastModifiedDateTime"])
    pr = n["parentReference"]
    assert pr["path"] == "/drive/root:/Documents" and pr["driveType"] == "personal"
    assert pr["driveId"] == fake.drive_id
    assert n["@microsoft.graph.downloadUrl"].startswith(fake.url + "/_download/")
    assert "createdBy" in n and "lastModifiedBy" in n and "webUrl" in n

    # same item through every addressing form, case-insensitive paths
    forms = ["/me/drive/items/%s" % quote(nid, safe="!"), "/me/drive/items/%s" % quote(nid, safe=""),
             "/drives/%s/items/%s" % (fake.drive_id.lower(), nid),
             "/me/drive/root:/documents/NOTES.TXT", "/me/drive/root:/Documents/notes.txt:",
             "/drives/%s/root:/DOCUMENTS/notes.txt" % fake.drive_id,
             "/me/drive/items/%s:/notes.txt:" % pr["id"], "/me/drive/items/%s:/Notes.Txt" % pr["id"],
             "/me/drive/items/%s" % nid.lower().replace("!", "!", 1)]
    for p in forms:
        r = g(fake, token, p)
        assert r.status == 200 and r.json()["id"] == nid, (p, r.body)

    # percent-encoded unicode, '#' and '%'
    r = g(fake, token, "/me/drive/root:/Documents/" + quote("Résumé 日本.txt"))
    assert r.status == 200 and r.json()["name"] == "Résumé 日本.txt"
    r = g(fake, token, "/me/drive/root:/Documents/" + quote("c# AND 100% SURE.txt") + ":")
    assert r.status == 200 and r.json()["name"] == "C# and 100% sure.txt"
    deep = g(fake, token, "/me/drive/root:/Documents/Sub%20Folder/deep.bin").json()
    assert deep["parentReference"]["path"] == "/drive/root:/Documents/Sub%20Folder"
    assert deep["file"]["mimeType"] == "application/octet-stream"
    docs = g(fake, token, "/me/drive/root:/Documents").json()
    assert docs["size"] == 12 + 2 + 5 + 5000 and docs["folder"]["childCount"] == 4
    assert "@microsoft.graph.downloadUrl" not in docs and "file" not in docs


def test_item_errors(fake, token):
    fake.seed(tree=TREE)
    assert_graph_error(g(fake, token, "/me/drive/root:/nope.txt"), 404, "itemNotFound")
    assert_graph_error(g(fake, token, "/me/drive/root:/Documents/notes.txt/x"), 404, "itemNotFound")
    assert_graph_error(g(fake, token, "/me/drive/items/%s!99999" % fake.drive_id), 404, "itemNotFound")
    assert_graph_error(g(fake, token, "/me/drive/root/Children"), 400, "BadRequest")
    assert_graph_error(g(fake, token, "/me/drive/bogus"), 400, "BadRequest")
    assert_graph_error(g(fake, token, "/me/foo"), 400, "BadRequest")
    assert_graph_error(g(fake, token, "/drive/root"), 400, "BadRequest")
    assert_graph_error(g(fake, token, "/me/drive/root/thumbnails"), 501, "notSupported")
    assert_graph_error(g(fake, token, "/me/drive/root", method="PUT", body=b"{}"), 501, "notSupported")
    assert_graph_error(g(fake, token, "/me/drive/root", method="POST", body=b"{}"), 405, "BadRequest")
    r = g(fake, token, "/me/drive/root:/Documents/notes.txt", headers={"client-request-id": "abc-123"})
    assert r.header("client-request-id") == "abc-123"


def test_if_none_match_on_item(fake, token):
    fake.seed(tree=TREE)
    n = g(fake, token, "/me/drive/root:/Documents/notes.txt").json()
    r = g(fake, token, "/me/drive/items/" + n["id"], headers={"If-None-Match": n["eTag"]})
    assert r.status == 304 and r.body == b""
    r = g(fake, token, "/me/drive/items/" + n["id"], headers={"If-None-Match": '"{00000000-0000-0000-0000-000000000000},1"'})
    assert r.status == 200


def test_select(fake, token):
    fake.seed(tree=TREE)
    j = g(fake, token, "/me/drive/root:/Documents/notes.txt?$select=name,size").json()
    assert set(j) == {"@odata.context", "id", "name", "size"}
    j = g(fake, token, "/me/drive/root:/Documents/notes.txt?select=name,file").json()
    assert set(j) == {"@odata.context", "id", "name", "file"}
    j = g(fake, token, "/me/drive/root:/Documents/notes.txt?$select=id,@microsoft.graph.downloadUrl").json()
    assert set(j) == {"@odata.context", "id", "@microsoft.graph.downloadUrl"}
    j = g(fake, token, "/me/drive/root/children?$select=name,folder").json()
    for v in j["value"]:
        assert set(v) <= {"id", "name", "folder"}
    assert j["@odata.context"].endswith("/children(name,folder)")
    assert_graph_error(g(fake, token, "/me/drive/root?$select=name,bogus"), 400, "BadRequest")


def test_children_paging(fake, token):
    fake.seed(generate={"folders": 1, "files_per_folder": 450, "file_size": 10})
    folder = "/me/drive/root:/folder-00000:/children"
    names, pages = children_all(fake, token, folder)
    assert pages == 3
    assert len(names) == 450 and len(set(names)) == 450
    assert set(names) == {"file-%05d.bin" % i for i in range(450)}

    r = g(fake, token, folder + "?$select=name&$top=100").json()
    assert len(r["value"]) == 100
    nxt = r["@odata.nextLink"]
    qs = urlsplit(nxt).query
    assert "$select=name" in qs and "$top=100" in qs and "$skiptoken=" in qs
    tok1 = qs.split("$skiptoken=")[1]
    assert not tok1.isdigit() and len(tok1) > 20
    r2 = req("GET", nxt, {"Authorization": "Bearer " + token}).json()
    assert set(r2["value"][0]) == {"id", "name"} and len(r2["value"]) == 100
    assert {v["name"] for v in r["value"]}.isdisjoint(v["name"] for v in r2["value"])
    tok2 = urlsplit(r2["@odata.nextLink"]).query.split("$skiptoken=")[1]
    assert tok1[:8] != tok2[:8]            # not sequential-looking

    # tampered skip tokens are refused
    bad = nxt[:-3] + ("AAA" if nxt[-3:] != "AAA" else "BBB")
    assert_graph_error(req("GET", bad, {"Authorization": "Bearer " + token}), 400, "invalidRequest")

    fake.set_config(page_size=50)
    names, pages = children_all(fake, token, folder)
    assert pages == 9 and len(set(names)) == 450
    assert len(g(fake, token, folder + "?$top=1000").json()["value"]) == 450
    assert_graph_error(g(fake, token, folder + "?$top=1001"), 400, "invalidRequest")
    assert_graph_error(g(fake, token, folder + "?$top=0"), 400, "invalidRequest")
    assert_graph_error(g(fake, token, folder + "?$top=many"), 400, "invalidRequest")


def test_children_shapes(fake, token):
    fake.seed(tree=TREE)
    j = g(fake, token, "/me/drive/root/children").json()
    assert "@odata.nextLink" not in j and j["@odata.context"].endswith("/children")
    assert sorted(v["name"] for v in j["value"]) == ["Documents", "Photos"]
    docs_id = [v["id"] for v in j["value"] if v["name"] == "Documents"][0]
    by_id = g(fake, token, "/me/drive/items/%s/children" % docs_id).json()["value"]
    by_path = g(fake, token, "/me/drive/root:/documents:/children").json()["value"]
    assert {v["id"] for v in by_id} == {v["id"] for v in by_path}
    f = [v for v in by_id if v["name"] == "notes.txt"][0]
    assert "@microsoft.graph.downloadUrl" in f and f["file"]["hashes"]["quickXorHash"]
    r = g(fake, token, "/me/drive/root:/Documents/notes.txt:/children")
    assert r.status == 200 and r.json()["value"] == []
    assert g(fake, token, "/me/drive/root:/Photos:/children").json()["value"] == []


# --------------------------------------------------------------- download
def test_content_redirect_and_ranges(fake, token):
    fake.seed(tree=[{"path": "f.bin", "content": {"size": 100000, "seed": 42}},
                    {"path": "empty.txt", "content": ""}, {"path": "D", "folder": True}])
    data = fake.content("/f.bin")
    assert len(data) == 100000
    item = g(fake, token, "/me/drive/root:/f.bin").json()
    r = g(fake, token, "/me/drive/items/%s/content" % item["id"])
    assert r.status == 302 and r.body == b""
    loc = r.header("location")
    assert loc.startswith(fake.url + "/_download/")
    r2 = g(fake, token, "/me/drive/root:/f.bin:/content")
    assert r2.status == 302
    r = req("GET", loc)
    assert r.status == 200 and r.body == data and r.header("content-length") == "100000"
    r = req("GET", loc, {"Range": "bytes=10-19"})
    assert r.status == 206 and r.body == data[10:20] and r.header("content-range") == "bytes 10-19/100000"
    r = req("GET", loc, {"Range": "bytes=99990-"})
    assert r.status == 206 and r.body == data[99990:] and r.header("content-range") == "bytes 99990-99999/100000"
    r = req("GET", loc, {"Range": "bytes=-5"})
    assert r.status == 206 and r.body == data[-5:]
    r = req("GET", loc, {"Range": "bytes=99999-200000"})
    assert r.status == 206 and r.body == data[-1:]
    r = req("GET", loc, {"Range": "bytes=100000-"})
    assert r.status == 416 and r.header("content-range") == "bytes */100000"
    r = req("HEAD", loc)
    assert r.status == 200 and r.header("content-length") == "100000" and r.body == b""
    # the downloadUrl property is a working URL too
    r = req("GET", item["@microsoft.graph.downloadUrl"], {"Range": "bytes=0-0"})
    assert r.status == 206 and r.body == data[:1]
    # empty file, folder, If-None-Match
    loc = g(fake, token, "/me/drive/root:/empty.txt:/content").header("location")
    assert req("GET", loc).body == b""
    assert req("GET", loc, {"Range": "bytes=0-"}).status == 416
    assert_graph_error(g(fake, token, "/me/drive/root:/D:/content"), 404, "itemNotFound")
    r = g(fake, token, "/me/drive/root:/f.bin:/content", headers={"If-None-Match": item["cTag"]})
    assert r.status == 304
    st = fake.stats()
    assert st["requests"]["GET content"] == 5
    assert st["bytes_sent_content"] == 100000 + 10 + 10 + 5 + 1 + 1


def test_download_rejects_authorization_and_bad_tokens(fake, token):
    fake.seed(tree=[{"path": "f.txt", "content": "secret"}])
    loc = g(fake, token, "/me/drive/root:/f.txt:/content").header("location")
    r = req("GET", loc, {"Authorization": "Bearer " + token})
    assert_graph_error(r, 401, "unauthenticated")
    v = fake.stats()["auth_violations"]
    assert len(v) == 1 and v[0]["path"].startswith("/_download/")
    tok = loc.rsplit("/", 1)[1]
    forged = tok[:-2] + ("AA" if tok[-2:] != "AA" else "BB")
    assert_graph_error(req("GET", fake.url + "/_download/" + forged), 401, "unauthenticated")
    assert req("GET", loc).body == b"secret"


def test_download_large_generated_ranges_and_write_content(fake, token, tmp_path):
    fake.seed(tree=[{"path": "Large/big.bin", "content": {"size": 256 << 20, "seed": 7}},
                    {"path": "Large/mid.bin", "content": {"size": 8 << 20, "seed": 8}}])
    t = time.time()
    j = g(fake, token, "/me/drive/root:/Large:/children").json()
    assert time.time() - t < 2
    big = [v for v in j["value"] if v["name"] == "big.bin"][0]
    assert big["size"] == 256 << 20
    assert big["file"]["hashes"]["quickXorHash"] == GeneratedContent(256 << 20, 7).quickxorhash()
    off = (123 << 20) + 12345
    r = req("GET", big["@microsoft.graph.downloadUrl"], {"Range": "bytes=%d-%d" % (off, off + 99999)})
    assert r.status == 206 and r.body == GeneratedContent(256 << 20, 7).read(off, 100000)
    out = tmp_path / "mid.bin"
    assert fake.write_content("/Large/mid.bin", str(out)) == 8 << 20
    mid = [v for v in j["value"] if v["name"] == "mid.bin"][0]
    r = req("GET", mid["@microsoft.graph.downloadUrl"])
    assert r.body == out.read_bytes()
    assert quickxorhash(r.body) == mid["file"]["hashes"]["quickXorHash"]


# ------------------------------------------------------ seeding, dump, stats
def test_seed_10000_items_fast_and_dump(fake, token):
    t = time.time()
    n = fake.seed(generate={"folders": 1000, "files_per_folder": 10, "file_size": 100, "depth": 1})
    elapsed = time.time() - t
    assert n == 11000
    assert elapsed < 3, elapsed
    d = fake.dump()["items"]
    assert len(d) == 11000
    assert sum(1 for x in d if x["folder"]) == 1000
    rec = [x for x in d if x["path"] == "/folder-00005/file-00003.bin"][0]
    assert rec["size"] == 100 and rec["quickXorHash"] and rec["eTag"] and rec["cTag"] and rec["id"]
    item = g(fake, token, "/me/drive/items/" + rec["id"]).json()
    assert item["file"]["hashes"]["quickXorHash"] == rec["quickXorHash"]
    assert item["eTag"] == rec["eTag"] and item["fileSystemInfo"]["lastModifiedDateTime"] == rec["mtime"]
    names, pages = children_all(fake, token, "/me/drive/root/children")
    assert len(set(names)) == 1000 and pages == 5
    assert g(fake, token, "/me/drive").json()["quota"]["used"] == 1000000


def test_seed_generate_depth_and_invalid_names(fake):
    n = fake.seed(generate={"folders": 30, "files_per_folder": 1, "file_size": 0, "depth": 3})
    assert n == 60
    paths = [x["path"] for x in fake.dump()["items"] if x["folder"]]
    assert max(p.count("/") for p in paths) >= 3
    for bad in ("a:b.txt", "trailing.", " lead", "CON.txt", "x/desktop.ini", "q?.txt", "~$lock.docx"):
        with pytest.raises(ValueError):
            fake.seed(tree=[{"path": bad, "content": "x"}])
    fake.seed(tree=[{"path": "ok #1 100%.txt", "content": "x"}])


def test_control_endpoints_over_http(fake, token):
    base = fake.url + "/_control"
    js = {"Content-Type": "application/json"}
    r = req("POST", base + "/seed", js, json.dumps({"tree": [
        {"path": "Documents/notes.txt", "content": "text", "mtime": "2024-01-02T03:04:05Z"},
        {"path": "Documents/big.bin", "content": {"size": 4096, "seed": 2}},
        {"path": "Photos", "folder": True}]}).encode())
    assert r.status == 200 and r.json()["created"] == 3
    r = req("POST", base + "/seed", js, json.dumps({"generate": {"folders": 2, "files_per_folder": 3,
                                                                   "file_size": 10}}).encode())
    assert r.json()["created"] == 8
    items = req("GET", base + "/dump").json()["items"]
    byp = {x["path"]: x for x in items}
    assert byp["/Documents/notes.txt"]["mtime"] == "2024-01-02T03:04:05Z"
    assert byp["/Documents/notes.txt"]["quickXorHash"] == quickxorhash(b"text")
    assert byp["/Photos"]["folder"] is True and byp["/Documents"]["size"] == 4100
    assert "/" not in byp
    assert req("GET", base + "/content?path=/Documents/big.bin").body == GeneratedContent(4096, 2).to_bytes()
    r = req("POST", base + "/config", js, json.dumps({"page_size": 2}).encode())
    assert r.json()["page_size"] == 2
    assert len(g(fake, token, "/me/drive/root/children").json()["value"]) == 2
    assert req("POST", base + "/config", js, json.dumps({"bogus": 1}).encode()).status == 400
    r = req("POST", base + "/tokens/issue", js, b"{}")
    assert r.json()["access_token"]
    assert req("GET", base + "/info").json()["drive_id"] == fake.drive_id
    assert req("POST", base + "/seed", js, b"{not json").status == 400
    assert req("GET", base + "/nope").status == 404
    old_ids = {x["id"] for x in items}
    assert req("POST", base + "/reset").status == 200
    assert req("GET", base + "/dump").json() == {"items": []}
    assert g(fake, token, "/me/drive/root").json()["id"] == fake.root_id   # tokens and root id survive
    fake.seed(tree=[{"path": "new.txt", "content": "n"}])
    assert fake.item_id("/new.txt") not in old_ids                          # ids are never reused
    assert req("POST", base + "/identity/reset").status == 200
    assert g(fake, token, "/me").status == 401


def test_stats(fake, token):
    fake.seed(tree=TREE)
    fake.reset_stats()
    g(fake, token, "/me/drive")
    g(fake, token, "/me/drive/root/children")
    g(fake, token, "/me/drive/root/children")
    g(fake, token, "/me/drive/root:/Documents/notes.txt")
    req("GET", fake.url + "/_control/stats")           # control requests are not counted
    st = req("GET", fake.url + "/_control/stats").json()
    assert st["requests"] == {"GET drive": 1, "GET children": 2, "GET item": 1}
    assert st["total_requests"] == 4 and st["responses"] == {"200": 4}
    assert st["bytes_sent"] > 0 and st["bytes_sent_content"] == 0
    assert st["auth_violations"] == []
    assert req("POST", fake.url + "/_control/stats/reset").status == 200
    assert fake.stats()["total_requests"] == 0


# ------------------------------------------------------------------ faults
def test_fault_throttling_429_then_success(fake, token):
    fake.faults(rules=[{"match": "GET children", "status": 429, "retry_after": "0.5", "times": 2}])
    for _ in range(2):
        r = g(fake, token, "/me/drive/root/children")
        e = assert_graph_error(r, 429, "activityLimitReached")
        assert r.header("retry-after") == "0.5"
        assert e["innerError"]["code"] == "throttledRequest"
    assert g(fake, token, "/me/drive/root/children").status == 200
    assert fake.faults_snapshot()["rules"] == []
    assert fake.stats()["faults_applied"] == 2


def test_fault_503_by_method_and_prefix(fake, token):
    fake.seed(tree=TREE)
    loc = g(fake, token, "/me/drive/root:/Documents/notes.txt:/content").header("location")
    r = req("POST", fake.url + "/_control/faults", {"Content-Type": "application/json"}, json.dumps(
        {"rules": [{"match": "GET /_download", "status": 503, "retry_after": "1", "times": 1}]}).encode())
    assert r.status == 200
    r = req("GET", loc)
    assert_graph_error(r, 503, "serviceNotAvailable")
    assert r.header("retry-after") == "1"
    assert req("GET", loc).body == b"hello\nworld\n"
    # identity routes answer in their own dialect
    fake.faults(rules=[{"match": "POST token", "status": 503, "times": 1}])
    r = form_post(token_url(fake), {"grant_type": "refresh_token", "refresh_token": "x", "client_id": CID})
    assert_token_error(r, "temporarily_unavailable", 503)


def test_fault_drop_malformed_truncate_oversize(fake, token):
    fake.seed(tree=TREE)
    fake.faults(rules=[{"match": "GET drive", "drop": True, "times": 2}])
    for _ in range(2):
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            g(fake, token, "/me/drive")
    assert g(fake, token, "/me/drive").status == 200

    fake.faults(rules=[{"match": "GET item", "body": "{not json", "times": 1}])
    r = g(fake, token, "/me/drive/root")
    assert r.status == 200 and r.body == b"{not json"
    with pytest.raises(ValueError):
        r.json()

    fake.faults(rules=[{"match": "GET children", "truncate": True, "times": 1}])
    with pytest.raises(http.client.IncompleteRead):
        g(fake, token, "/me/drive/root/children")
    assert g(fake, token, "/me/drive/root/children").status == 200

    loc = g(fake, token, "/me/drive/root:/Documents/Sub Folder/deep.bin:/content".replace(" ", "%20")
            ).header("location")
    fake.faults(rules=[{"match": "* /_download/", "truncate": True, "times": 1}])
    with pytest.raises(http.client.IncompleteRead):
        req("GET", loc)

    fake.faults(rules=[{"match": "GET me", "oversize": 3000000, "times": 1}])
    r = g(fake, token, "/me")
    assert r.status == 200 and len(r.body) == 3000000
    assert r.json()["value"] == []
    fake.faults({})
    assert fake.faults_snapshot() == {"latency_ms": 0, "stall_ms": 0, "rules": []}


def test_fault_latency_and_stall(fake, token):
    fake.faults(latency_ms=150)
    t = time.time()
    g(fake, token, "/me")
    assert time.time() - t >= 0.14
    fake.faults(rules=[{"match": "GET me", "stall_ms": 300, "times": 1}])
    t = time.time()
    assert g(fake, token, "/me").status == 200
    assert time.time() - t >= 0.29
    t = time.time()
    g(fake, token, "/me")
    assert time.time() - t < 0.25
    with pytest.raises(ValueError):
        fake.faults(rules=[{"match": "GET me", "explode": True}])


def test_fault_mid_body_stall(fake, token):
    fake.seed(tree=[{"path": "f.bin", "content": {"size": 200000, "seed": 1}}])
    loc = g(fake, token, "/me/drive/root:/f.bin:/content").header("location")
    fake.faults(rules=[{"match": "GET download", "stall_body_ms": 300, "times": 1}])
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    try:
        t = time.time()
        conn.request("GET", urlsplit(loc).path)
        r = conn.getresponse()
        assert r.status == 200 and time.time() - t < 0.25      # headers arrive at once
        first = r.read(100000)
        assert len(first) == 100000 and time.time() - t < 0.25  # first half too
        rest = r.read()
        assert time.time() - t >= 0.29 and first + rest == fake.content("/f.bin")
        # the top-level stall_ms applies to every response; a short read timeout sees it
        fake.faults(stall_ms=1000)
        conn.sock.settimeout(0.3)
        conn.request("GET", urlsplit(loc).path)
        r = conn.getresponse()
        r.read(100000)
        with pytest.raises(OSError):
            r.read(10)
    finally:
        conn.close()


def test_bandwidth_cap_shared_by_downloads(fake, token):
    fake.seed(tree=[{"path": "a.bin", "content": {"size": 300000, "seed": 1}},
                    {"path": "b.bin", "content": {"size": 300000, "seed": 2}}])
    locs = [g(fake, token, "/me/drive/root:/%s:/content" % n).header("location")
            for n in ("a.bin", "b.bin")]
    fake.set_config(bandwidth=2000000)
    t = time.time()
    assert req("GET", locs[0]).body == fake.content("/a.bin")
    assert time.time() - t >= 0.14                              # 300 kB at 2 MB/s
    # two downloads at once share the link: 600 kB take 0.3 s in all
    results = []
    threads = [threading.Thread(target=lambda u=u: results.append(req("GET", u).body))
               for u in locs]
    t = time.time()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30)
    assert time.time() - t >= 0.29
    assert sorted(results) == sorted([fake.content("/a.bin"), fake.content("/b.bin")])
    fake.set_config(bandwidth=0)
    t = time.time()
    assert req("GET", locs[0]).body == fake.content("/a.bin")


# --------------------------------------------------------- server plumbing
def test_keep_alive_connection_reuse(fake, token):
    fake.seed(tree=TREE)
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    try:
        for _ in range(5):
            r = req("GET", fake.graph_url + "/me/drive/root/children",
                     {"Authorization": "Bearer " + token}, conn=conn)
            assert r.status == 200
        r = req("GET", fake.graph_url + "/me/drive/root:/Documents/notes.txt:/content",
                 {"Authorization": "Bearer " + token}, conn=conn)
        assert r.status == 302 and r.header("content-length") == "0"
        r = req("GET", fake.graph_url + "/me", conn=conn)
        assert r.status == 401
        r = req("GET", fake.graph_url + "/me", {"Authorization": "Bearer " + token}, conn=conn)
        assert r.status == 200
    finally:
        conn.close()


def test_unknown_top_level_path(fake):
    assert req("GET", fake.url + "/nothing/here").status == 404


def test_cli_port_file_and_sigterm(tmp_path):
    port_file = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fakegraph", "__main__.py"), "--port", "0",
                             "--port-file", str(port_file), "--sample", "--auto-approve", "--latency-ms", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(tmp_path))
    try:
        deadline = time.time() + 10
        while not port_file.exists() and time.time() < deadline:
            time.sleep(0.02)
        port = int(port_file.read_text())
        line = proc.stdout.readline().decode()
        assert line.strip() == "fake graph server listening on http://127.0.0.1:%d" % port
        info = req("GET", "http://127.0.0.1:%d/_control/info" % port).json()
        assert info["client_id"] == CID
        dump = req("GET", "http://127.0.0.1:%d/_control/dump" % port).json()["items"]
        paths = {x["path"] for x in dump}
        assert "/Documents/notes.txt" in paths and "/Large files/video-300M.mp4" in paths
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- outages
def test_go_down_refuses_then_come_back_keeps_state(fake, token):
    fake.seed(tree=TREE)
    port = fake.port
    # state to survive: an upload session holding one fragment, a download URL, stats
    sess = gj(fake, token, "/me/drive/root:/up.bin:/createUploadSession", "POST", {"item": {}}).json()
    part = GeneratedContent(2 * KIB320, 9).to_bytes()
    r = req("PUT", sess["uploadUrl"], {"Content-Range": "bytes 0-%d/%d" % (KIB320 - 1, len(part))},
            part[:KIB320])
    assert r.status == 202, r.body
    loc = g(fake, token, "/me/drive/root:/Documents/notes.txt:/content").header("location")
    keep = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        assert req("GET", fake.graph_url + "/me", {"Authorization": "Bearer " + token}, conn=keep).status == 200
        before_dump = fake.dump()
        before_stats = fake.stats()

        fake.go_down()
        assert fake.is_down() and fake.outage_stats()["down"]
        with pytest.raises(ConnectionRefusedError):
            req("GET", fake.graph_url + "/me", {"Authorization": "Bearer " + token})
        with pytest.raises(ConnectionRefusedError):
            req("GET", fake.url + "/_control/info")
        with pytest.raises((ConnectionError, http.client.HTTPException)):   # the open connection is gone
            req("GET", fake.graph_url + "/me", {"Authorization": "Bearer " + token}, conn=keep)
        # "another device" still reaches the service (in process), and is not counted as the client
        other = fake.client()
        other.put_content("/Documents/while-down.txt", data=b"from elsewhere")
        assert other.get_content("/Documents/while-down.txt") == b"from elsewhere"
        assert fake.stats()["total_requests"] == before_stats["total_requests"]
        assert fake.stats()["peer_requests"] > before_stats["peer_requests"]
        fake.come_back()
        with pytest.raises(RuntimeError):
            fake.come_back()
    finally:
        keep.close()
    assert not fake.is_down() and fake.port == port
    # all state intact: tree, tokens, the upload session, the download URL, stats
    after = {x["path"]: x for x in fake.dump()["items"]}
    for x in before_dump["items"]:
        assert after[x["path"]] == x or x["path"] in ("/", "/Documents"), x["path"]
    assert "/Documents/while-down.txt" in after
    assert g(fake, token, "/me").status == 200
    r = req("GET", loc)
    assert r.status == 200 and r.body == b"hello\nworld\n"
    r = req("GET", sess["uploadUrl"])
    assert r.status == 200 and r.json()["nextExpectedRanges"] == ["%d-" % KIB320], r.body
    r = req("PUT", sess["uploadUrl"], {"Content-Range": "bytes %d-%d/%d" % (KIB320, len(part) - 1, len(part))},
            part[KIB320:])
    assert r.status in (200, 201) and fake.content("/up.bin") == part
    st = fake.stats()
    assert st["total_requests"] >= before_stats["total_requests"] + 4
    assert st["requests"]["PUT upload"] == 2 and st["requests"]["GET me"] >= 2


def test_freeze_hangs_requests_then_thaw_resets_them(fake, token):
    import threading
    fake.seed(tree=TREE)
    auth = {"Authorization": "Bearer " + token}
    fake.freeze()
    assert fake.is_frozen()
    # accepted, read, never answered: a client timeout is all it gets
    t = time.time()
    with pytest.raises(socket.timeout):
        conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=0.5)
        try:
            conn.request("GET", "/v1.0/me", headers=auth)
            conn.getresponse()
        finally:
            conn.close()
    assert 0.45 <= time.time() - t < 5
    # a write caught by the freeze hangs; control and the peer still work meanwhile
    box = {}

    def put():
        try:
            box["r"] = g(fake, token, "/me/drive/root:/frozen.txt:/content", method="PUT",
                         headers={"Content-Type": "text/plain"}, body=b"never applied")
        except Exception as e:        # handed to the test
            box["e"] = e
    th = threading.Thread(target=put, daemon=True)
    th.start()
    end = time.time() + 10
    while req("GET", fake.url + "/_control/outage").json()["hanging"] < 2 and time.time() < end:
        time.sleep(0.02)
    o = req("GET", fake.url + "/_control/outage").json()
    assert o["frozen"] and o["hanging"] == 2 and o["caught"] == 2, o       # the timed-out one still hangs
    assert fake.client().get("/Documents/notes.txt")["size"] == 12
    assert th.is_alive()
    assert fake.stats()["requests"]["PUT content"] == 1                    # read and counted
    # thaw over the control endpoint: the hanging requests are dropped unapplied, connections reset
    r = req("POST", fake.url + "/_control/thaw", {"Content-Type": "application/json"}, b"{}")
    assert r.status == 200 and r.json()["dropped"] == 2
    th.join(10)
    assert not th.is_alive()
    assert isinstance(box.get("e"), (ConnectionError, http.client.HTTPException)), box
    assert "/frozen.txt" not in {x["path"] for x in fake.dump()["items"]}
    assert g(fake, token, "/me").status == 200
    assert fake.outage_stats() == {"down": False, "frozen": False, "hanging": 0, "caught": 2}
    # freeze over control too; going down during a freeze drops what hangs, and the freeze outlives it
    assert req("POST", fake.url + "/_control/freeze", {"Content-Type": "application/json"}, b"{}").status == 200
    th = threading.Thread(target=put, daemon=True)
    th.start()
    end = time.time() + 10
    while fake.outage_stats()["hanging"] < 1 and time.time() < end:
        time.sleep(0.02)
    fake.go_down()
    th.join(10)
    assert not th.is_alive() and fake.outage_stats()["hanging"] == 0
    fake.come_back()
    assert fake.is_frozen()
    with pytest.raises(socket.timeout):
        req_timeout = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=0.3)
        try:
            req_timeout.request("GET", "/v1.0/me", headers=auth)
            req_timeout.getresponse()
        finally:
            req_timeout.close()
    fake.thaw()
    assert g(fake, token, "/me").status == 200
    assert "/frozen.txt" not in {x["path"] for x in fake.dump()["items"]}


# ================================================================ writes
JSON_CT = {"Content-Type": "application/json"}
ZERO_QX = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
KIB320 = 320 * 1024


def gj(fake, token, path, method, obj, headers=None):
    """A Graph request with a JSON body."""
    h = dict(JSON_CT)
    h.update(headers or {})
    return g(fake, token, path, method=method, headers=h, body=json.dumps(obj).encode())


def mkdir(fake, token, parent_path, name, **extra):
    body = {"name": name, "folder": {}}
    body.update(extra)
    return gj(fake, token, parent_path + "/children", "POST", body)


def inner_code(r):
    return r.json()["error"]["innerError"].get("code")


def test_create_folder(fake, token):
    r = mkdir(fake, token, "/me/drive/root", "New Folder",
              fileSystemInfo={"createdDateTime": "2001-01-01T00:00:00Z",
                              "lastModifiedDateTime": "2001-01-01T00:00:00Z"})
    assert r.status == 201, r.body
    j = r.json()
    assert j["name"] == "New Folder" and j["folder"]["childCount"] == 0 and j["size"] == 0
    assert j["parentReference"]["id"] == fake.root_id
    assert not j["fileSystemInfo"]["lastModifiedDateTime"].startswith("2001")     # ignored (quirk 3)
    assert j["@odata.context"].endswith("/items/$entity") and r.header("etag") == j["eTag"]
    fid = j["id"]
    # personal default: an existing folder comes back with 200
    r = mkdir(fake, token, "/me/drive/root", "new folder")
    assert r.status == 200 and r.json()["id"] == fid and r.json()["name"] == "New Folder"
    e = assert_graph_error(mkdir(fake, token, "/me/drive/root", "NEW FOLDER",
                                 **{"@microsoft.graph.conflictBehavior": "fail"}), 409, "nameAlreadyExists")
    assert e["message"]
    r = mkdir(fake, token, "/me/drive/root", "New Folder", **{"@microsoft.graph.conflictBehavior": "rename"})
    assert r.status == 201 and r.json()["name"] == "New Folder 1"
    r = mkdir(fake, token, "/me/drive/root", "New Folder", **{"@name.conflictBehavior": "rename"})
    assert r.status == 201 and r.json()["name"] == "New Folder 2"
    r = gj(fake, token, "/me/drive/root/children?@microsoft.graph.conflictBehavior=fail", "POST",
           {"name": "New Folder", "folder": {}})
    assert_graph_error(r, 409, "nameAlreadyExists")
    r = mkdir(fake, token, "/me/drive/root", "New Folder", **{"@microsoft.graph.conflictBehavior": "replace"})
    assert r.status == 200 and r.json()["id"] == fid
    # below a folder, by id and by path; the parent's childCount follows
    r = mkdir(fake, token, "/me/drive/items/%s" % fid, "Sub")
    assert r.status == 201 and r.json()["parentReference"]["path"] == "/drive/root:/New%20Folder"
    r = mkdir(fake, token, "/me/drive/root:/New Folder/Sub:".replace(" ", "%20"), "Deeper")
    assert r.status == 201
    assert g(fake, token, "/me/drive/items/" + fid).json()["folder"]["childCount"] == 1
    # a file in the way: 409 without conflictBehavior
    fake.seed(tree=[{"path": "afile", "content": "x"}])
    assert_graph_error(mkdir(fake, token, "/me/drive/root", "AFile"), 409, "nameAlreadyExists")
    r = mkdir(fake, token, "/me/drive/root", "afile", **{"@microsoft.graph.conflictBehavior": "rename"})
    assert r.json()["name"] == "afile 1"


def test_create_folder_errors(fake, token):
    for bad in ("a:b", "x?", "trail.", " lead", "trail ", "CON", "con.txt", "desktop.ini", "~$x", "a_vti_b",
                "a\x01b", "", "a|b", 'q"', "a<b", "a*b", "a\\b"):
        r = mkdir(fake, token, "/me/drive/root", bad)
        assert_graph_error(r, 400, "invalidRequest")
        if bad:
            assert inner_code(r) == "invalidPath", bad
    r = mkdir(fake, token, "/me/drive/root", "x" * 400)
    assert assert_graph_error(r, 400, "invalidRequest")["innerError"].get("code") == "pathIsTooLong"
    ok = mkdir(fake, token, "/me/drive/root", "ok #1 100% é")
    assert ok.status == 201
    assert_graph_error(gj(fake, token, "/me/drive/root/children", "POST", {"name": "f.txt", "file": {}}),
                       400, "invalidRequest")
    assert_graph_error(gj(fake, token, "/me/drive/root/children", "POST", {"name": "nofacet"}),
                       400, "invalidRequest")
    assert_graph_error(gj(fake, token, "/me/drive/root/children", "POST", {"folder": {}}), 400, "invalidRequest")
    assert_graph_error(mkdir(fake, token, "/me/drive/root", "c", **{"@microsoft.graph.conflictBehavior": "Fail"}),
                       400, "invalidRequest")
    r = g(fake, token, "/me/drive/root/children", method="POST", body=b'{"name":"a","folder":{}}')
    assert_graph_error(r, 415, "BadRequest")                       # no Content-Type
    r = g(fake, token, "/me/drive/root/children", method="POST", headers=JSON_CT, body=b"{nope")
    assert_graph_error(r, 400, "invalidRequest")
    r = g(fake, token, "/me/drive/root/children", method="POST", headers=JSON_CT, body=b"[1]")
    assert_graph_error(r, 400, "invalidRequest")
    fake.seed(tree=[{"path": "f.txt", "content": "x"}])
    assert_graph_error(mkdir(fake, token, "/me/drive/root:/f.txt:", "sub"), 400, "invalidRequest")
    assert_graph_error(mkdir(fake, token, "/me/drive/root:/missing:", "sub"), 404, "itemNotFound")
    ro = fake.issue_tokens(scope="Files.Read User.Read offline_access")["access_token"]
    assert_graph_error(mkdir(fake, ro, "/me/drive/root", "x"), 403, "accessDenied")
    assert g(fake, ro, "/me/drive/root").status == 200
    assert_graph_error(g(fake, token, "/me/drive/root/children", method="DELETE"), 405, "BadRequest")


def test_patch_rename_move(fake, token):
    fake.seed(tree=[{"path": "A/a.txt", "content": "aaa", "mtime": "2020-02-02T02:02:02Z"},
                    {"path": "A/Sub/deep.txt", "content": "d"}, {"path": "B/b.txt", "content": "bb"}])
    a = g(fake, token, "/me/drive/root:/A/a.txt").json()
    r = gj(fake, token, "/me/drive/items/" + a["id"], "PATCH", {"name": "renamed.txt"})
    assert r.status == 200, r.body
    j = r.json()
    assert j["name"] == "renamed.txt" and j["id"] == a["id"]
    assert j["eTag"] != a["eTag"] and j["cTag"] == a["cTag"]             # metadata only
    assert j["fileSystemInfo"] == a["fileSystemInfo"]                   # kept on rename
    assert g(fake, token, "/me/drive/root:/A/a.txt").status == 404
    # case-only rename of the same item
    r = gj(fake, token, "/me/drive/items/" + a["id"], "PATCH", {"name": "RENAMED.txt"})
    assert r.status == 200 and r.json()["name"] == "RENAMED.txt"
    # conflict (case-insensitive) in the target folder
    fake.seed(tree=[{"path": "A/other.txt", "content": "o"}])
    r = gj(fake, token, "/me/drive/items/" + a["id"], "PATCH", {"name": "OTHER.TXT"})
    assert_graph_error(r, 409, "nameAlreadyExists")
    r = gj(fake, token, "/me/drive/items/%s?@microsoft.graph.conflictBehavior=rename" % a["id"], "PATCH",
           {"name": "other.txt"})
    assert r.status == 200 and r.json()["name"] == "other 1.txt"
    # move by parentReference.id (+ rename), sizes follow
    bid = fake.item_id("/B")
    r = gj(fake, token, "/me/drive/items/" + a["id"], "PATCH", {"parentReference": {"id": bid}, "name": "m.txt"})
    assert r.status == 200 and r.json()["parentReference"]["id"] == bid
    assert r.json()["parentReference"]["path"] == "/drive/root:/B"
    assert fake.item("/B").size == 5
    assert fake.item("/A").size == 2
    # "root" is not an id; the real root id works
    r = gj(fake, token, "/me/drive/items/" + a["id"], "PATCH", {"parentReference": {"id": "root"}})
    assert_graph_error(r, 400, "invalidRequest")
    r = gj(fake, token, "/me/drive/items/" + a["id"], "PATCH", {"parentReference": {"id": fake.root_id}})
    assert r.status == 200 and fake.item("/m.txt").id == a["id"]
    r = gj(fake, token, "/me/drive/items/" + a["id"], "PATCH",
           {"parentReference": {"path": "/drive/root:/B", "driveId": fake.drive_id.lower()}})
    assert r.status == 200 and fake.item("/B/m.txt").id == a["id"]
    # folder moves: not into itself or its subtree
    aid, subid = fake.item_id("/A"), fake.item_id("/A/Sub")
    for target in (aid, subid):
        r = gj(fake, token, "/me/drive/items/" + aid, "PATCH", {"parentReference": {"id": target}})
        assert_graph_error(r, 400, "invalidRequest")
    r = gj(fake, token, "/me/drive/items/" + subid, "PATCH", {"parentReference": {"id": bid}})
    assert r.status == 200 and fake.content("/B/Sub/deep.txt") == b"d"
    # errors
    for body, status, code in [({"name": "bad:name"}, 400, "invalidRequest"),
                               ({"name": 5}, 400, "invalidRequest"),
                               ({"parentReference": {"id": fake.drive_id + "!999999"}}, 404, "itemNotFound"),
                               ({"parentReference": {"id": a["id"]}}, 400, "invalidRequest"),
                               ({"parentReference": {"id": bid, "driveId": "0123456789ABCDEF"}}, 400,
                                "invalidRequest"),
                               ({"size": 3}, 400, "invalidRequest"),
                               ({"fileSystemInfo": {"lastModifiedDateTime": "yesterday"}}, 400, "invalidRequest")]:
        assert_graph_error(gj(fake, token, "/me/drive/items/" + aid, "PATCH", body), status, code)
    assert inner_code(gj(fake, token, "/me/drive/items/" + aid, "PATCH", {"cTag": "x"})) == "propertyNotUpdateable"
    assert_graph_error(gj(fake, token, "/me/drive/root", "PATCH", {"name": "x"}), 403, "notAllowed")
    # conflictBehavior replace: the file in the way goes to the recycle bin
    fake.seed(tree=[{"path": "R/one.txt", "content": "1"}, {"path": "R/two.txt", "content": "22"}])
    one = fake.item_id("/R/one.txt")
    r = gj(fake, token, "/me/drive/items/%s?@microsoft.graph.conflictBehavior=replace" % one, "PATCH",
           {"name": "two.txt"})
    assert r.status == 200 and fake.item_id("/R/two.txt") == one and fake.content("/R/two.txt") == b"1"
    assert fake.recycle_bin()[-1]["path"] == "/R/two.txt"
    assert_graph_error(gj(fake, token, "/me/drive/items/%s!424242" % fake.drive_id, "PATCH", {"name": "x"}),
                       404, "itemNotFound")


def test_patch_timestamps_make_versions(fake, token):
    fake.seed(tree=[{"path": "f.txt", "content": "one"}, {"path": "D", "folder": True}])
    f = g(fake, token, "/me/drive/root:/f.txt").json()
    assert len(g(fake, token, "/me/drive/items/%s/versions" % f["id"]).json()["value"]) == 1
    r = gj(fake, token, "/me/drive/items/" + f["id"], "PATCH",
           {"fileSystemInfo": {"createdDateTime": "2021-03-04T05:06:07.891Z",
                               "lastModifiedDateTime": "2022-03-04T05:06:07.5Z"}})
    assert r.status == 200, r.body
    j = r.json()
    assert j["fileSystemInfo"] == {"createdDateTime": "2021-03-04T05:06:07Z",
                                   "lastModifiedDateTime": "2022-03-04T05:06:07Z"}   # whole seconds
    assert j["eTag"] != f["eTag"] and j["cTag"] == f["cTag"]
    assert len(g(fake, token, "/me/drive/items/%s/versions" % f["id"]).json()["value"]) == 2    # quirk 2
    r = gj(fake, token, "/me/drive/items/" + f["id"], "PATCH",
           {"fileSystemInfo": {"lastModifiedDateTime": "2023-01-01T00:00:00Z"}})
    assert r.json()["fileSystemInfo"]["createdDateTime"] == "2021-03-04T05:06:07Z"
    assert {x["path"]: x for x in fake.dump()["items"]}["/f.txt"]["versions"] == 3
    d = gj(fake, token, "/me/drive/root:/D", "PATCH",
           {"fileSystemInfo": {"lastModifiedDateTime": "2019-01-01T00:00:00Z"}}).json()
    assert d["fileSystemInfo"]["lastModifiedDateTime"] == "2019-01-01T00:00:00Z"
    r = gj(fake, token, "/me/drive/root:/D", "PATCH", {"fileSystemInfo": {"bogus": 1}})
    assert_graph_error(r, 400, "BadRequest")


def test_preconditions(fake, token):
    fake.seed(tree=[{"path": "f.txt", "content": "one"}])
    f = g(fake, token, "/me/drive/root:/f.txt").json()
    url = "/me/drive/items/" + f["id"]
    stale = '"{00000000-0000-0000-0000-000000000000},1"'
    r = gj(fake, token, url, "PATCH", {"name": "g.txt"}, {"If-Match": stale})
    e = assert_graph_error(r, 412, "resourceModified")
    assert e["innerError"]["code"] == "entityTagDoesNotMatch"
    r = gj(fake, token, url, "PATCH", {"name": "g.txt"}, {"If-Match": "unquoted-tag"})
    assert assert_graph_error(r, 400, "invalidRequest")["innerError"].get("code") == "malformedEntityTag"
    r = gj(fake, token, url, "PATCH", {"name": "g.txt"}, {"If-Match": f["cTag"]})       # cTag works too
    assert r.status == 200
    g1 = r.json()
    r = gj(fake, token, url, "PATCH", {"name": "h.txt"}, {"If-Match": f["eTag"]})       # eTag changed
    assert_graph_error(r, 412, "resourceModified")
    assert gj(fake, token, url, "PATCH", {"name": "h.txt"}, {"If-Match": "*"}).status == 200
    # PUT content
    r = g(fake, token, url + "/content", "PUT", {"If-Match": g1["eTag"]}, b"two")
    assert_graph_error(r, 412, "resourceModified")
    cur = g(fake, token, url).json()
    r = g(fake, token, url + "/content", "PUT", {"If-Match": cur["eTag"]}, b"two")
    assert r.status == 200 and r.json()["size"] == 3
    r = g(fake, token, "/me/drive/root:/h.txt:/content", "PUT", {"If-None-Match": "*"}, b"x")
    assert_graph_error(r, 412, "resourceModified")
    r = g(fake, token, "/me/drive/root:/new.txt:/content", "PUT", {"If-None-Match": "*"}, b"x")
    assert r.status == 201
    r = g(fake, token, "/me/drive/root:/absent.txt:/content", "PUT", {"If-Match": "*"}, b"x")
    assert_graph_error(r, 412, "resourceModified")
    # DELETE
    assert_graph_error(g(fake, token, url, "DELETE", {"If-Match": stale}), 412, "resourceModified")
    cur = g(fake, token, url).json()
    assert g(fake, token, url, "DELETE", {"If-Match": cur["eTag"]}).status == 204


def test_delete_recycle_and_permanent(fake, token):
    fake.seed(tree=[{"path": "D/a.bin", "content": {"size": 1000, "seed": 1}},
                    {"path": "D/E/b.bin", "content": {"size": 500, "seed": 2}},
                    {"path": "p.bin", "content": {"size": 70, "seed": 3}}])
    did = fake.item_id("/D")
    bid = fake.item_id("/D/E/b.bin")
    r = g(fake, token, "/me/drive/items/" + did, "DELETE")
    assert r.status == 204 and r.body == b""
    for p in ("/me/drive/items/" + did, "/me/drive/items/" + bid, "/me/drive/root:/D/E"):
        assert_graph_error(g(fake, token, p), 404, "itemNotFound")
    q = g(fake, token, "/me/drive").json()["quota"]
    assert q["used"] == 70 and q["deleted"] == 1500
    rb = fake.recycle_bin()
    assert [(x["id"], x["path"], x["size"], x["folder"]) for x in rb] == [(did, "/D", 1500, True)]
    assert g(fake, token, "/me/drive/root").json()["folder"]["childCount"] == 1
    assert_graph_error(g(fake, token, "/me/drive/items/" + did, "DELETE"), 404, "itemNotFound")
    r = g(fake, token, "/me/drive/root:/p.bin:/permanentDelete", "POST")
    assert r.status == 204
    assert fake.quota()["deleted"] == 1500 and len(fake.recycle_bin()) == 1 and fake.quota()["used"] == 0
    assert_graph_error(g(fake, token, "/me/drive/root", "DELETE"), 403, "notAllowed")
    assert_graph_error(g(fake, token, "/me/drive/items/" + fake.root_id, "DELETE"), 403, "notAllowed")
    assert_graph_error(g(fake, token, "/me/drive/root/permanentDelete", "GET"), 405, "BadRequest")


def test_put_content_create_replace(fake, token):
    fake.seed(tree=[{"path": "D", "folder": True}])
    did = fake.item_id("/D")
    q0 = fake.quota()["used"]
    r = g(fake, token, "/me/drive/items/%s:/a.txt:/content" % did, "PUT", {"Content-Type": "text/plain"}, b"hello")
    assert r.status == 201, r.body
    a = r.json()
    assert a["name"] == "a.txt" and a["size"] == 5 and a["file"]["hashes"]["quickXorHash"] == quickxorhash(b"hello")
    assert a["parentReference"]["id"] == did and "@microsoft.graph.downloadUrl" in a
    assert fake.quota()["used"] == q0 + 5 and fake.content("/D/a.txt") == b"hello"
    t0 = int(time.time())
    # replace by path (default conflictBehavior replace): same id, new tags, version recorded
    gj(fake, token, "/me/drive/items/" + a["id"], "PATCH",
       {"fileSystemInfo": {"lastModifiedDateTime": "2000-01-01T00:00:00Z"}})
    mid = g(fake, token, "/me/drive/items/" + a["id"]).json()
    r = g(fake, token, "/me/drive/root:/D/A.TXT:/content", "PUT", body=b"hello world")
    assert r.status == 200
    b = r.json()
    assert b["id"] == a["id"] and b["name"] == "a.txt" and b["size"] == 11
    assert b["cTag"] != mid["cTag"] and b["eTag"] != mid["eTag"]
    assert util_parse(b["fileSystemInfo"]["lastModifiedDateTime"]) >= t0 - 1          # reset to now
    assert [v["id"] for v in g(fake, token, "/me/drive/items/%s/versions" % a["id"]).json()["value"]] == \
        ["current", "2-3", "1-3"]
    assert fake.quota()["used"] == q0 + 11
    # by id
    r = g(fake, token, "/me/drive/items/%s/content" % a["id"], "PUT", body=b"")
    assert r.status == 200 and r.json()["size"] == 0
    assert r.json()["file"]["hashes"]["quickXorHash"] == ZERO_QX
    # conflict behaviours
    u = "/me/drive/root:/D/a.txt:/content?@microsoft.graph.conflictBehavior="
    assert_graph_error(g(fake, token, u + "fail", "PUT", body=b"x"), 409, "nameAlreadyExists")
    r = g(fake, token, u + "rename", "PUT", body=b"x")
    assert r.status == 201 and r.json()["name"] == "a 1.txt"
    assert g(fake, token, u + "rename", "PUT", body=b"x").json()["name"] == "a 2.txt"
    assert_graph_error(g(fake, token, u + "sometimes", "PUT", body=b"x"), 400, "invalidRequest")
    # a chunked request body works like any other
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    try:
        conn.putrequest("PUT", "/v1.0/me/drive/root:/D/chunked.txt:/content")
        conn.putheader("Authorization", "Bearer " + token)
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for part in (b"abc", b"defg"):
            conn.send(b"%x\r\n%s\r\n" % (len(part), part))
        conn.send(b"0\r\n\r\n")
        r = conn.getresponse()
        assert r.status == 201 and json.loads(r.read())["size"] == 7
    finally:
        conn.close()
    assert fake.content("/D/chunked.txt") == b"abcdefg"
    # zero-byte new file; root-relative path
    r = g(fake, token, "/me/drive/root:/empty.txt:/content", "PUT", body=b"")
    assert r.status == 201 and r.json()["size"] == 0
    # errors
    assert_graph_error(g(fake, token, "/me/drive/root:/D:/content", "PUT", body=b"x"), 409, "nameAlreadyExists")
    assert_graph_error(g(fake, token, "/me/drive/items/%s/content" % did, "PUT", body=b"x"), 400, "invalidRequest")
    assert_graph_error(g(fake, token, "/me/drive/root/content", "PUT", body=b"x"), 400, "invalidRequest")
    assert_graph_error(g(fake, token, "/me/drive/root:/nope/x.txt:/content", "PUT", body=b"x"), 404, "itemNotFound")
    assert_graph_error(g(fake, token, "/me/drive/root:/D/a.txt/x.txt:/content", "PUT", body=b"x"), 400,
                       "invalidRequest")
    r = g(fake, token, "/me/drive/root:/bad%3F.txt:/content", "PUT", body=b"x")
    assert assert_graph_error(r, 400, "invalidRequest")["innerError"].get("code") == "invalidPath"


def util_parse(s):
    from fakegraph import util
    return util.parse_iso(s)


def test_put_content_quota_and_size_limit(fake, token):
    fake.seed(tree=[{"path": "f.bin", "content": {"size": 1000, "seed": 1}}])
    r = req("POST", fake.url + "/_control/quota", JSON_CT, json.dumps({"total": 1500}).encode())
    assert r.status == 200 and r.json()["total"] == 1500 and r.json()["remaining"] == 500
    before = fake.dump()
    e = assert_graph_error(g(fake, token, "/me/drive/root:/g.bin:/content", "PUT", body=b"x" * 501),
                           507, "quotaLimitReached")
    assert e["message"]
    assert_graph_error(g(fake, token, "/me/drive/root:/f.bin:/content", "PUT", body=b"x" * 1501),
                       507, "quotaLimitReached")
    assert fake.dump() == before                                            # nothing changed
    assert g(fake, token, "/me/drive/root:/f.bin:/content", "PUT", body=b"x" * 1500).status == 200
    q = g(fake, token, "/me/drive").json()["quota"]
    assert q["used"] == 1500 and q["remaining"] == 0 and q["state"] == "exceeded"
    assert_graph_error(g(fake, token, "/me/drive/root:/z.txt:/content", "PUT", body=b""), 507, "quotaLimitReached")
    assert_graph_error(mkdir(fake, token, "/me/drive/root", "F"), 507, "quotaLimitReached")
    fake.set_quota(1 << 40)
    # simple PUT size limit: 413, body discarded, the connection stays usable
    fake.set_config(simple_upload_max=1000)
    fake.reset_stats()
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=10)
    try:
        h = {"Authorization": "Bearer " + token}
        r = req("PUT", fake.graph_url + "/me/drive/root:/big.bin:/content", h, b"y" * 5000, conn=conn)
        assert_graph_error(r, 413, "requestTooLarge")
        r = req("PUT", fake.graph_url + "/me/drive/root:/ok.bin:/content", h, b"y" * 1000, conn=conn)
        assert r.status == 201
    finally:
        conn.close()
    st = fake.stats()
    assert st["requests"]["PUT content"] == 2 and st["bytes_received_content"] == 6000


# ------------------------------------------------------- upload sessions
def create_session(fake, token, target, body=None, headers=None):
    if body is None:
        return g(fake, token, target + "/createUploadSession", "POST", headers)
    return gj(fake, token, target + "/createUploadSession", "POST", body, headers)


def put_frag(url, data, start, total, headers=None, conn=None):
    h = {"Content-Range": "bytes %d-%d/%d" % (start, start + len(data) - 1, total)}
    h.update(headers or {})
    return req("PUT", url, h, data, conn=conn)


def test_upload_session_flow(fake, token):
    fake.seed(tree=[{"path": "D", "folder": True}])
    did = fake.item_id("/D")
    data = GeneratedContent(3 * KIB320 + 1234, 7).to_bytes()
    r = create_session(fake, token, "/me/drive/items/%s:/up.bin:" % did,
                       {"item": {"@microsoft.graph.conflictBehavior": "fail", "name": "up.bin",
                                 "fileSystemInfo": {"createdDateTime": "2010-01-01T00:00:00Z",
                                                    "lastModifiedDateTime": "2011-01-01T00:00:00Z"},
                                 "fileSize": len(data)}})
    assert r.status == 200, r.body
    s = r.json()
    assert s["nextExpectedRanges"] == ["0-"] and s["uploadUrl"].startswith(fake.url + "/_upload/")
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", s["expirationDateTime"])
    url = s["uploadUrl"]
    assert g(fake, token, "/me/drive/root:/D/up.bin").status == 404        # nothing yet
    r = put_frag(url, data[:2 * KIB320], 0, len(data))
    assert r.status == 202, r.body
    assert r.json()["nextExpectedRanges"] == ["%d-" % (2 * KIB320)] and "expirationDateTime" in r.json()
    r = req("GET", url)
    assert r.status == 200 and r.json()["nextExpectedRanges"] == ["%d-" % (2 * KIB320)]
    r = put_frag(url, data[2 * KIB320:3 * KIB320], 2 * KIB320, len(data))
    assert r.status == 202
    r = put_frag(url, data[3 * KIB320:], 3 * KIB320, len(data))
    assert r.status == 201, r.body
    it = r.json()
    assert it["name"] == "up.bin" and it["size"] == len(data)
    assert it["file"]["hashes"]["quickXorHash"] == quickxorhash(data)
    assert it["fileSystemInfo"] == {"createdDateTime": "2010-01-01T00:00:00Z",
                                    "lastModifiedDateTime": "2011-01-01T00:00:00Z"}
    assert fake.content("/D/up.bin") == data
    assert_graph_error(req("GET", url), 404, "itemNotFound")                 # the session is over
    assert fake.upload_sessions() == []
    # replace through an id-addressed session: 200, same id, new cTag
    r = create_session(fake, token, "/me/drive/items/" + it["id"])
    s = r.json()
    assert r.status == 200
    r = put_frag(s["uploadUrl"], b"short", 0, 5)
    assert r.status == 200 and r.json()["id"] == it["id"] and r.json()["cTag"] != it["cTag"]
    assert fake.content("/D/up.bin") == b"short"
    # path-addressed default conflictBehavior is replace
    r = create_session(fake, token, "/me/drive/root:/D/UP.bin:", {"item": {}})
    r = put_frag(r.json()["uploadUrl"], b"again", 0, 5)
    assert r.status == 200 and r.json()["id"] == it["id"] and r.json()["name"] == "up.bin"
    # rename
    r = create_session(fake, token, "/me/drive/root:/D/up.bin:",
                       {"item": {"@microsoft.graph.conflictBehavior": "rename"}})
    r = put_frag(r.json()["uploadUrl"], b"third", 0, 5)
    assert r.status == 201 and r.json()["name"] == "up 1.bin"
    assert len(fake.versions_of("/D/up.bin")) == 3
    # Authorization on the upload URL: 401 and an auth violation
    s = create_session(fake, token, "/me/drive/root:/D/auth.bin:").json()
    r = put_frag(s["uploadUrl"], b"x", 0, 1, {"Authorization": "Bearer " + token})
    assert_graph_error(r, 401, "unauthenticated")
    v = fake.stats()["auth_violations"]
    assert len(v) == 1 and v[0]["route"] == "PUT upload"
    for m in ("GET", "DELETE"):
        assert_graph_error(req(m, s["uploadUrl"], {"Authorization": "Bearer " + token}), 401, "unauthenticated")
    # cancel
    assert req("DELETE", s["uploadUrl"]).status == 204
    assert_graph_error(put_frag(s["uploadUrl"], b"x", 0, 1), 404, "itemNotFound")
    assert_graph_error(req("DELETE", s["uploadUrl"]), 404, "itemNotFound")
    assert_graph_error(req("GET", fake.url + "/_upload/garbage"), 404, "itemNotFound")
    assert_graph_error(req("POST", s["uploadUrl"]), 404, "itemNotFound")
    # the target folder disappears while the session is open: 404 at completion
    s = create_session(fake, token, "/me/drive/root:/D/late.bin:").json()
    g(fake, token, "/me/drive/items/" + did, "DELETE")
    assert_graph_error(put_frag(s["uploadUrl"], b"x", 0, 1), 404, "itemNotFound")
    assert fake.upload_sessions() == []


def test_upload_fragment_rules(fake, token):
    total = 3 * KIB320
    data = GeneratedContent(total, 3).to_bytes()
    s = create_session(fake, token, "/me/drive/root:/f.bin:").json()
    url = s["uploadUrl"]
    e = assert_graph_error(req("PUT", url, {}, data[:KIB320]), 400, "invalidRequest")     # no Content-Range
    assert "Content-Range" in e["message"]
    for bad in ("bytes 0--1/0", "bytes 0-9/*", "bytes=0-9/10", "0-9/10", "bytes 5-4/10", "bytes 0-10/10",
                "bytes 0-0/0"):
        r = req("PUT", url, {"Content-Range": bad}, b"x" * 10)
        assert_graph_error(r, 400, "invalidRequest")
    r = req("PUT", url, {"Content-Range": "bytes 0-%d/%d" % (KIB320 - 1, total)}, data[:KIB320 - 1])
    assert_graph_error(r, 400, "invalidRequest")                               # length mismatch
    r = put_frag(url, data[:1000], 0, total)                                    # not a 320 KiB multiple
    assert_graph_error(r, 400, "invalidRequest")
    r = put_frag(url, data[KIB320:2 * KIB320], KIB320, total)                  # gap
    assert assert_graph_error(r, 416, "invalidRange")["innerError"].get("code") == "fragmentOutOfOrder"
    assert put_frag(url, data[:KIB320], 0, total).status == 202
    r = put_frag(url, data[:KIB320], 0, total)                                  # resent
    e = assert_graph_error(r, 416, "invalidRange")
    assert e["innerError"]["code"] == "fragmentOverlap"
    r = put_frag(url, data[KIB320:2 * KIB320], KIB320, total + 1)              # other total
    assert assert_graph_error(r, 400, "invalidRequest")["innerError"].get("code") == "fragmentLengthMismatch"
    assert req("GET", url).json()["nextExpectedRanges"] == ["%d-" % KIB320]     # nothing stored by errors
    # >= 60 MiB fragments are refused (body discarded)
    big = b"\0" * (60 * 1024 * 1024)
    r = req("PUT", url, {"Content-Range": "bytes %d-%d/%d" % (KIB320, KIB320 + len(big) - 1, 200 << 20)}, big)
    assert assert_graph_error(r, 400, "invalidRequest")["innerError"].get("code") == "maxFragmentLengthExceeded"
    assert put_frag(url, data[KIB320:], KIB320, total).status == 201           # last fragment: any size
    assert fake.content("/f.bin") == data
    # fileSize sets the total
    s = create_session(fake, token, "/me/drive/root:/g.bin:", {"item": {"fileSize": 10}}).json()
    r = put_frag(s["uploadUrl"], b"x" * 11, 0, 11)
    assert assert_graph_error(r, 400, "invalidRequest")["innerError"].get("code") == "fragmentLengthMismatch"


def test_upload_session_creation_errors(fake, token):
    fake.seed(tree=[{"path": "D", "folder": True}, {"path": "D/e.txt", "content": "e"}])
    did = fake.item_id("/D")
    assert_graph_error(create_session(fake, token, "/me/drive/items/%s:/x.bin:" % did, {"item": {"name": "y.bin"}}),
                       400, "invalidRequest")
    assert_graph_error(create_session(fake, token, "/me/drive/items/%s:/bad%%7C.bin:" % did), 400, "invalidRequest")
    assert_graph_error(create_session(fake, token, "/me/drive/items/" + did), 400, "invalidRequest")    # folder
    assert_graph_error(create_session(fake, token, "/me/drive/root:/D:"), 409, "nameAlreadyExists")
    assert_graph_error(create_session(fake, token, "/me/drive/root:/D/e.txt:",
                                      {"item": {"@microsoft.graph.conflictBehavior": "fail"}}),
                       409, "nameAlreadyExists")
    assert_graph_error(create_session(fake, token, "/me/drive/root:/nope/x.bin:"), 404, "itemNotFound")
    assert_graph_error(create_session(fake, token, "/me/drive/root:/x.bin:", {"item": {"bogus": 1}}),
                       400, "BadRequest")
    assert_graph_error(create_session(fake, token, "/me/drive/root:/x.bin:", {"item": {"description": "d"}}),
                       400, "invalidRequest")
    assert_graph_error(create_session(fake, token, "/me/drive/root:/x.bin:", {"deferCommit": True}),
                       501, "notSupported")
    assert_graph_error(create_session(fake, token, "/me/drive/root:/x.bin:", {"item": {"fileSize": -1}}),
                       400, "invalidRequest")
    stale = '"{00000000-0000-0000-0000-000000000000},1"'
    assert_graph_error(create_session(fake, token, "/me/drive/root:/D/e.txt:", headers={"If-Match": stale}),
                       412, "resourceModified")
    e_tag = g(fake, token, "/me/drive/root:/D/e.txt").json()["eTag"]
    assert_graph_error(create_session(fake, token, "/me/drive/root:/D/e.txt:", headers={"If-None-Match": e_tag}),
                       412, "resourceModified")
    fake.set_quota(fake.quota()["used"] + 100)
    assert_graph_error(create_session(fake, token, "/me/drive/root:/q.bin:", {"item": {"fileSize": 101}}),
                       507, "quotaLimitReached")
    assert fake.upload_sessions() == []
    # quota checked again at completion
    s = create_session(fake, token, "/me/drive/root:/q.bin:").json()
    assert_graph_error(put_frag(s["uploadUrl"], b"z" * 101, 0, 101), 507, "quotaLimitReached")
    assert g(fake, token, "/me/drive/root:/q.bin").status == 404 and fake.upload_sessions() == []
    fake.set_quota(1 << 40)
    # If-Match given at creation is checked at completion
    s = create_session(fake, token, "/me/drive/root:/D/e.txt:", headers={"If-Match": e_tag}).json()
    g(fake, token, "/me/drive/root:/D/e.txt:/content", "PUT", body=b"changed meanwhile")
    assert_graph_error(put_frag(s["uploadUrl"], b"z", 0, 1), 412, "resourceModified")


def test_upload_session_conflicts_and_expiry(fake, token):
    s1 = create_session(fake, token, "/me/drive/root:/a.bin:").json()
    e = assert_graph_error(create_session(fake, token, "/me/drive/root:/A.BIN:"), 409, "nameAlreadyExists")
    assert e["message"] == "An upload session already exists for this file"
    assert len(fake.upload_sessions()) == 1
    assert req("DELETE", s1["uploadUrl"]).status == 204                     # cancelling frees it
    s2 = create_session(fake, token, "/me/drive/root:/a.bin:",
                        {"item": {"@microsoft.graph.conflictBehavior": "fail"}}).json()
    # the name gets taken meanwhile: 409 at completion, the session ends
    assert g(fake, token, "/me/drive/root:/a.bin:/content", "PUT", body=b"other").status == 201
    assert_graph_error(put_frag(s2["uploadUrl"], b"mine", 0, 4), 409, "nameAlreadyExists")
    assert fake.content("/a.bin") == b"other"
    assert_graph_error(req("GET", s2["uploadUrl"]), 404, "itemNotFound")
    # completing frees the name for a new session
    s3 = create_session(fake, token, "/me/drive/root:/a.bin:").json()
    assert put_frag(s3["uploadUrl"], b"mine", 0, 4).status == 200
    assert create_session(fake, token, "/me/drive/root:/a.bin:").status == 200
    fake.set_config(upload_session_conflict=False)
    assert create_session(fake, token, "/me/drive/root:/a.bin:").status == 200   # personal-style
    # expiry: lifetime extended by fragments; control expiry; 404 afterwards
    fake.set_config(upload_session_lifetime=0.5)
    s = create_session(fake, token, "/me/drive/root:/b.bin:").json()
    time.sleep(0.3)
    r = put_frag(s["uploadUrl"], b"x" * KIB320, 0, 2 * KIB320)
    assert r.status == 202 and r.json()["expirationDateTime"] > s["expirationDateTime"]
    time.sleep(0.3)
    assert req("GET", s["uploadUrl"]).status == 200            # extended by the fragment
    time.sleep(0.6)
    r = req("GET", s["uploadUrl"])
    assert_graph_error(r, 404, "itemNotFound")
    assert r.json()["error"]["message"] == "The upload session was not found"
    fake.set_config(upload_session_lifetime=900)
    s = create_session(fake, token, "/me/drive/root:/c.bin:").json()
    r = req("POST", fake.url + "/_control/upload/expire", JSON_CT, json.dumps({"url": s["uploadUrl"]}).encode())
    assert r.json() == {"expired": 1}
    assert_graph_error(put_frag(s["uploadUrl"], b"x", 0, 1), 404, "itemNotFound")
    s = create_session(fake, token, "/me/drive/root:/d.bin:").json()
    assert req("GET", fake.url + "/_control/uploads").json()["sessions"][-1]["name"] == "d.bin"
    assert fake.expire_uploads() >= 1 and fake.upload_sessions() == []


def test_upload_session_200_mib(fake, token):
    total = 200 << 20
    src = GeneratedContent(total, 77)
    chunk = 32 * KIB320                                         # 10 MiB
    s = create_session(fake, token, "/me/drive/root:/big.bin:", {"item": {"fileSize": total}}).json()
    fake.reset_stats()
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=30)
    try:
        pos = 0
        while pos < total:
            part = src.read(pos, chunk)
            r = put_frag(s["uploadUrl"], part, pos, total, conn=conn)
            pos += len(part)
            assert r.status == (201 if pos == total else 202), r.body
    finally:
        conn.close()
    it = r.json()
    assert it["size"] == total and it["file"]["hashes"]["quickXorHash"] == src.quickxorhash()
    assert fake.stats()["bytes_received_content"] == total
    loc = g(fake, token, "/me/drive/items/%s/content" % it["id"]).header("location")
    r = req("GET", loc, {"Range": "bytes=%d-%d" % (total - 5000, total - 1)})
    assert r.status == 206 and r.body == src.read(total - 5000, 5000)


# ---------------------------------------------------------------- versions
def test_versions(fake, token):
    fake.seed(tree=[{"path": "v.txt", "content": "v1"}, {"path": "D", "folder": True}])
    vid = fake.item_id("/v.txt")
    base = "/me/drive/items/%s/versions" % vid
    g(fake, token, "/me/drive/items/%s/content" % vid, "PUT", body=b"v2 longer")
    vs = g(fake, token, base).json()
    assert vs["@odata.context"].endswith("/versions")
    assert [v["id"] for v in vs["value"]] == ["current", "1-2"]
    assert [v["size"] for v in vs["value"]] == [9, 2]
    for v in vs["value"]:
        assert set(v) == {"id", "lastModifiedDateTime", "size", "lastModifiedBy"}
    assert g(fake, token, base + "/1-2").json()["size"] == 2
    r = g(fake, token, base + "/1-2/content")
    assert r.status == 302 and req("GET", r.header("location")).body == b"v1"
    old_loc = r.header("location")
    assert req("GET", g(fake, token, base + "/current/content").header("location")).body == b"v2 longer"
    r = g(fake, token, base + "/1-2/restoreVersion", "POST")
    assert r.status == 204 and r.body == b""
    assert fake.content("/v.txt") == b"v1"
    assert [v["id"] for v in g(fake, token, base).json()["value"]] == ["current", "2-3", "1-3"]
    assert req("GET", old_loc).body == b"v1"                     # a version URL survives new versions
    assert_graph_error(g(fake, token, base + "/1-2"), 404, "itemNotFound")            # ids changed
    assert_graph_error(g(fake, token, base + "/nope/content"), 404, "itemNotFound")
    assert_graph_error(g(fake, token, "/me/drive/root:/D:/versions"), 400, "invalidRequest")
    assert_graph_error(g(fake, token, base + "/current", "DELETE"), 501, "notSupported")
    r = req("GET", fake.url + "/_control/versions?path=/v.txt").json()["versions"]
    assert [x["size"] for x in r] == [2, 9, 2]


# ------------------------------------------------------- copy and createLink
def test_copy_with_monitor(fake, token):
    fake.seed(tree=[{"path": "A/f.txt", "content": "copy me"}, {"path": "A/S/g.txt", "content": "deep"},
                    {"path": "B", "folder": True}])
    fid, bid = fake.item_id("/A/f.txt"), fake.item_id("/B")
    body = json.dumps({"parentReference": {"driveId": fake.drive_id, "id": bid}, "name": "f2.txt"}).encode()
    fake.reset_stats()
    r = g(fake, token, "/me/drive/items/%s/copy" % fid, "POST", JSON_CT, body)
    assert r.status == 202 and r.body == b""
    mon = r.header("location")
    assert "/_monitor/" in mon
    j = req("GET", mon).json()
    assert j["status"] == "inProgress" and j["operation"] == "ItemCopy"
    j = req("GET", mon).json()
    assert j["status"] == "completed" and j["percentageComplete"] == 100.0
    assert j["resourceId"] == fake.item_id("/B/f2.txt")
    assert fake.content("/B/f2.txt") == b"copy me"
    st = fake.stats()
    assert st["requests"] == {"POST copy": 1, "GET monitor": 2}
    assert st["bytes_received_content"] == 0 and st["bytes_sent_content"] == 0
    # a name in use: 409 by default, rename on request
    assert_graph_error(g(fake, token, "/me/drive/items/%s/copy" % fid, "POST", JSON_CT, body), 409,
                       "nameAlreadyExists")
    r = g(fake, token, "/me/drive/items/%s/copy?@microsoft.graph.conflictBehavior=rename" % fid, "POST",
          JSON_CT, body)
    assert r.status == 202 and fake.content("/B/f2 1.txt") == b"copy me"
    # folders go whole; no parentReference copies next to the source
    r = g(fake, token, "/me/drive/root:/A:/copy", "POST", JSON_CT, b'{"name": "A2"}')
    assert r.status == 202 and fake.content("/A2/S/g.txt") == b"deep"
    assert_graph_error(g(fake, token, "/me/drive/root:/A:/copy", "POST", JSON_CT,
                         json.dumps({"parentReference": {"id": fake.item_id("/A/S")}}).encode()),
                       400, "invalidRequest")
    # the monitor is pre-authenticated: a bearer token there is a violation
    assert req("GET", mon, {"Authorization": "Bearer " + token}).status == 401
    assert len(fake.stats()["auth_violations"]) == 1
    assert req("GET", fake.url + "/_monitor/nope").status == 404


def test_create_link(fake, token):
    fake.seed(tree=[{"path": "s.txt", "content": "share me"}])
    url = "/me/drive/root:/s.txt:/createLink"
    r = g(fake, token, url, "POST", JSON_CT, b'{"type": "view"}')
    assert r.status == 201
    p = r.json()
    assert p["roles"] == ["read"] and p["link"]["type"] == "view" and p["link"]["scope"] == "anonymous"
    assert p["link"]["webUrl"].startswith("http")
    again = g(fake, token, url, "POST", JSON_CT, b'{"type": "view"}')
    assert again.status == 200 and again.json()["link"]["webUrl"] == p["link"]["webUrl"]
    e = g(fake, token, url, "POST", JSON_CT, b'{"type": "edit", "expirationDateTime": "2099-01-01T00:00:00Z"}')
    assert e.status == 201 and e.json()["roles"] == ["write"]
    assert e.json()["expirationDateTime"] == "2099-01-01T00:00:00Z"
    assert e.json()["link"]["webUrl"] != p["link"]["webUrl"]
    assert_graph_error(g(fake, token, url, "POST", JSON_CT, b'{"type": "bogus"}'), 400, "invalidRequest")
    assert_graph_error(g(fake, token, url, "POST", JSON_CT,
                         b'{"type": "view", "expirationDateTime": "2001-01-01T00:00:00Z"}'), 400, "invalidRequest")
    assert_graph_error(g(fake, token, url, "POST", JSON_CT, b'{"type": "view", "scope": "organization"}'),
                       400, "invalidRequest")
    assert "webUrl" in g(fake, token, "/me/drive/root:/s.txt").json()


# ------------------------------------------------------------------- delta
def delta_round(fake, token, url="/me/drive/root/delta", headers=None):
    """All pages of one round: (items, deltaLink, pages)."""
    items, pages = [], 0
    r = g(fake, token, url, headers=headers) if not url.startswith("http") else \
        req("GET", url, dict({"Authorization": "Bearer " + token}, **(headers or {})))
    while True:
        assert r.status == 200, r.body
        j = r.json()
        pages += 1
        assert j["@odata.context"].endswith("$metadata#Collection(driveItem)")
        items += j["value"]
        if "@odata.deltaLink" in j:
            assert "@odata.nextLink" not in j
            return items, j["@odata.deltaLink"], pages
        nxt = j["@odata.nextLink"]
        assert nxt.startswith(fake.graph_url + "/") and "token=" in nxt
        r = req("GET", nxt, dict({"Authorization": "Bearer " + token}, **(headers or {})))


def test_delta_full_enumeration(fake, token):
    fake.seed(tree=TREE + [{"path": "Photos/p%02d.jpg" % i, "content": "p"} for i in range(20)])
    n = 1 + len(fake.dump()["items"])
    items, link, pages = delta_round(fake, token, "/me/drive/root/delta?$top=7")
    assert pages == (n + 6) // 7 and pages > 2
    ids = [x["id"] for x in items]
    assert len(ids) == len(set(ids)) == n
    assert items[0]["id"] == fake.root_id and items[0]["root"] == {}
    seen = set()
    for x in items:
        assert x["@odata.type"] == "#microsoft.graph.driveItem"
        assert "path" not in x["parentReference"] and "@microsoft.graph.downloadUrl" not in x
        if "id" in x["parentReference"]:
            assert x["parentReference"]["id"] in seen                    # parents first
        seen.add(x["id"])
    f = [x for x in items if x["name"] == "notes.txt"][0]
    assert f["cTag"] and f["size"] == 12 and f["file"]["hashes"]["quickXorHash"]
    assert link.startswith(fake.graph_url + "/me/drive/root/delta?") and "$top=7" in link
    # nothing changed: an empty round
    items, link2, _ = delta_round(fake, token, link)
    assert items == [] and link2 != link
    # token=latest and the drives/{id} address
    j = g(fake, token, "/drives/%s/root/delta?token=latest" % fake.drive_id).json()
    assert j["value"] == [] and j["@odata.deltaLink"].startswith(fake.graph_url + "/drives/")
    # $select is kept in the links
    items, link3, _ = delta_round(fake, token, "/me/drive/root/delta?$select=id,name,deleted&$top=50")
    assert all(set(x) <= {"@odata.type", "id", "name", "deleted"} for x in items) and "$select=" in link3


def test_delta_incremental(fake, token):
    fake.seed(tree=[{"path": "A/a1.txt", "content": "1"}, {"path": "A/Sub/s.txt", "content": "s"},
                    {"path": "B/b.txt", "content": "b"}, {"path": "C/c.txt", "content": "c"},
                    {"path": "keep.txt", "content": "k"}])
    _, link, _ = delta_round(fake, token)
    other = fake.client()
    ids = {p: fake.item_id(p) for p in ("/A", "/A/a1.txt", "/A/Sub", "/A/Sub/s.txt", "/B", "/B/b.txt", "/C",
                                        "/C/c.txt", "/keep.txt")}
    other.put_content("/B/new.txt", data=b"new")
    other.put_content("/B/b.txt", data=b"b changed")
    other.put_content("/B/b.txt", data=b"b changed twice")
    other.rename("/A", "A2")                      # descendants are not emitted
    other.delete("/C")
    items, link2, _ = delta_round(fake, token, link)
    byid = {x["id"]: x for x in items}
    assert len(byid) == len(items)                               # each item once
    new_id = fake.item_id("/B/new.txt")
    assert set(byid) == {fake.root_id, ids["/A"], ids["/B"], ids["/B/b.txt"], new_id, ids["/C"], ids["/C/c.txt"]}
    assert byid[ids["/A"]]["name"] == "A2"
    assert byid[ids["/B/b.txt"]]["size"] == len(b"b changed twice")          # latest state
    for key in ("/C", "/C/c.txt"):
        d = byid[ids[key]]
        assert d["deleted"] == {} and d["name"] == key.rsplit("/", 1)[1]
        assert "size" not in d and "cTag" not in d
        assert d["parentReference"]["id"] in (fake.root_id, ids["/C"])
    assert byid[ids["/C/c.txt"]]["file"]["hashes"]["quickXorHash"] == ZERO_QX
    assert "deleted" not in byid[ids["/B"]] and byid[ids["/B"]]["folder"]["childCount"] == 2
    # deltaExcludeParent: only the items that changed themselves
    other.set_times("/B/new.txt", mtime=1600000000)
    items, link3, _ = delta_round(fake, token, link2, headers={"Prefer": "deltaExcludeParent"})
    assert [x["id"] for x in items] == [new_id]
    # a folder renamed after a file was added to it comes after the file
    other.put_content("/B/later.txt", data=b"l")
    other.rename("/B", "B2")
    items, _, _ = delta_round(fake, token, link3)
    order = [x["id"] for x in items]
    assert order.index(fake.item_id("/B2/later.txt")) < order.index(ids["/B"])
    # the function-call form
    tok = link3.split("token=")[1]
    r = g(fake, token, "/me/drive/root/delta(token='%s')" % tok)
    assert r.status == 200 and len(r.json()["value"]) == len(items)


def test_delta_resync_and_quirk_options(fake, token):
    fake.seed(tree=[{"path": "A/B/c.txt", "content": "c"}, {"path": "d.txt", "content": "d"}])
    _, link, _ = delta_round(fake, token, "/me/drive/root/delta?$top=2")
    r1 = g(fake, token, "/me/drive/root/delta?$top=2")
    nxt = r1.json()["@odata.nextLink"]
    assert req("POST", fake.url + "/_control/delta/invalidate").status == 200
    for url in (link, nxt):
        r = req("GET", url, {"Authorization": "Bearer " + token})
        e = assert_graph_error(r, 410, "resyncRequired")
        assert e["innerError"]["code"] == "resyncChangesApplyDifferences"
        loc = r.header("location")
        assert loc.startswith(fake.graph_url + "/me/drive/root/delta") and "token=" not in loc and "$top=2" in loc
    items, _, _ = delta_round(fake, token, loc)
    assert len(items) == 5
    r = g(fake, token, "/me/drive/root/delta?token=garbage")
    assert_graph_error(r, 410, "resyncRequired")
    fake.set_config(delta_duplicates=True)
    items, _, pages = delta_round(fake, token, "/me/drive/root/delta?$top=2")
    ids = [x["id"] for x in items]
    assert len(ids) > len(set(ids)) == 5 and pages > 2
    fake.set_config(delta_duplicates=False, delta_child_first=True)
    items, link, _ = delta_round(fake, token)
    pos = {x["id"]: i for i, x in enumerate(items)}
    assert pos[fake.item_id("/A/B/c.txt")] < pos[fake.item_id("/A/B")] < pos[fake.item_id("/A")] < pos[fake.root_id]
    with pytest.raises(ValueError):
        fake.set_config(delta_child_first=1)
    assert_graph_error(g(fake, token, "/me/drive/root:/A:/delta"), 501, "notSupported")
    assert_graph_error(g(fake, token, "/me/drive/root/delta", "POST"), 405, "BadRequest")
    # a drive reset invalidates tokens too
    fake.reset()
    assert_graph_error(req("GET", link, {"Authorization": "Bearer " + token}), 410, "resyncRequired")


# ------------------------------------------------- helpers, stats, faults
def test_peer_client_helper(fake, token):
    other = fake.client()
    fake.faults(rules=[{"match": "*", "status": 503}])             # would break any counted request
    fake.reset_stats()
    d = other.mkdir("/Docs")
    assert d["name"] == "Docs" and other.mkdir("/Docs/Sub")["parentReference"]["id"] == d["id"]
    assert other.mkdir(d["id"], "Docs2")["name"] == "Docs2"
    a = other.put_content("/Docs/a.txt", data=b"hello")
    assert other.put_content(d["id"], "a.txt", b"x", conflict="rename")["name"] == "a 1.txt"
    big = GeneratedContent(2 * KIB320 + 5, 4).to_bytes()
    b = other.upload("/Docs/b.bin", data=big, chunk=KIB320, mtime=1500000000)
    assert b["size"] == len(big) and b["fileSystemInfo"]["lastModifiedDateTime"] == "2017-07-14T02:40:00Z"
    assert other.get_content("/Docs/b.bin") == big and other.get_content(a["id"]) == b"hello"
    assert other.rename("/Docs/a.txt", "c.txt")["name"] == "c.txt"
    assert other.move(a["id"], "/Docs/Sub", "d.txt")["parentReference"]["id"] == fake.item_id("/Docs/Sub")
    assert other.set_times(a["id"], mtime=1600000000, ctime=1500000000)["fileSystemInfo"] == \
        {"createdDateTime": "2017-07-14T02:40:00Z", "lastModifiedDateTime": "2020-09-13T12:26:40Z"}
    assert sorted(x["name"] for x in other.children("/Docs")) == ["Docs2", "Sub", "a 1.txt", "b.bin"]
    assert len(other.versions(a["id"])) == 2
    items, link = other.delta()
    assert len(items) == 1 + len(fake.dump()["items"])
    with pytest.raises(Exception) as ei:
        other.mkdir("/Docs", conflict="fail")
    assert ei.value.status == 409 and ei.value.code == "nameAlreadyExists"
    other.delete("/Docs/Sub")
    other.permanent_delete("/Docs/b.bin")
    assert fake.recycle_bin()[0]["path"] == "/Docs/Sub"
    st = fake.stats()
    assert st["total_requests"] == 0 and st["faults_applied"] == 0 and st["peer_requests"] > 10
    assert st["token_grants"] == {} and st["bytes_received_content"] == 0
    assert st["auth_violations"] == [] and len(fake.faults_snapshot()["rules"]) == 1


def test_write_route_labels_faults_and_control(fake, token):
    fake.reset_stats()
    mkdir(fake, token, "/me/drive/root", "L")
    fid = fake.item_id("/L")
    gj(fake, token, "/me/drive/items/" + fid, "PATCH", {"name": "L2"})
    g(fake, token, "/me/drive/root:/L2/f.txt:/content", "PUT", body=b"f")
    s = create_session(fake, token, "/me/drive/root:/L2/u.bin:").json()
    req("GET", s["uploadUrl"])
    fake.faults(rules=[{"match": "PUT upload", "status": 503, "retry_after": "1", "times": 1}])
    assert_graph_error(put_frag(s["uploadUrl"], b"u", 0, 1), 503, "serviceNotAvailable")
    assert put_frag(s["uploadUrl"], b"u", 0, 1).status == 201
    s2 = create_session(fake, token, "/me/drive/root:/L2/v.bin:").json()
    req("DELETE", s2["uploadUrl"])
    g(fake, token, "/me/drive/root/delta")
    f = fake.item_id("/L2/f.txt")
    g(fake, token, "/me/drive/items/%s/versions" % f)
    g(fake, token, "/me/drive/items/%s/versions/current" % f)
    g(fake, token, "/me/drive/items/%s/versions/current/content" % f)
    g(fake, token, "/me/drive/items/%s/versions/current/restoreVersion" % f, "POST")
    g(fake, token, "/me/drive/items/%s/permanentDelete" % f, "POST")
    g(fake, token, "/me/drive/items/" + fid, "DELETE")
    st = fake.stats()["requests"]
    assert st == {"POST children": 1, "PATCH item": 1, "PUT content": 1, "POST createUploadSession": 2,
                  "GET upload": 1, "PUT upload": 2, "DELETE upload": 1, "GET delta": 1, "GET versions": 1,
                  "GET version": 1, "GET versionContent": 1, "POST restoreVersion": 1,
                  "POST permanentDelete": 1, "DELETE item": 1}
    assert fake.stats()["bytes_received_content"] == 3
    # control endpoints
    fake.seed(tree=[{"path": "x.txt", "content": "xx"}])
    g(fake, token, "/me/drive/root:/x.txt:/content", "PUT", body=b"yyy")
    dump = {x["path"]: x for x in req("GET", fake.url + "/_control/dump").json()["items"]}
    assert dump["/x.txt"]["versions"] == 2
    rb = req("GET", fake.url + "/_control/recyclebin").json()["items"]
    assert [x["path"] for x in rb] == ["/L2"]
    assert req("POST", fake.url + "/_control/quota", JSON_CT, b'{"total": -1}').status == 400
    assert req("GET", fake.url + "/_control/uploads").json() == {"sessions": []}
    assert fake.get_config()["simple_upload_max"] == 250 * 1024 * 1024


# ------------------------------------------- authorize endpoint (auth code + PKCE)
from html.parser import HTMLParser  # noqa: E402
from urllib.parse import parse_qs  # noqa: E402

REDIRECT = "http://localhost:53682/"


class FormScraper(HTMLParser):
    """Collects the ids, the form action and the inputs of a page."""

    def __init__(self, text):
        super().__init__()
        self.ids, self.inputs, self.action, self.radios = {}, {}, None, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids[a["id"]] = (tag, a)
        if tag == "form":
            self.action = a.get("action")
        if tag == "input" and a.get("type") == "hidden":
            self.inputs[a["name"]] = a.get("value")
        if tag == "input" and a.get("type") == "radio":
            self.radios.append(a)


def pkce_pair(verifier="v" * 43 + "-._~0123456789"):
    digest = __import__("hashlib").sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(fake, tenant="common", **params):
    p = {"client_id": CID, "response_type": "code", "redirect_uri": REDIRECT,
         "scope": "Files.ReadWrite offline_access User.Read", "state": "st-123", "response_mode": "query"}
    p.update(params)
    p = {k: v for k, v in p.items() if v is not None}
    return "%s/%s/oauth2/v2.0/authorize?%s" % (fake.auth_url, tenant, urlencode(p))


def query_of(location):
    parts = urlsplit(location)
    return {k: v[0] for k, v in parse_qs(parts.query or parts.fragment).items()}


def sign_in(fake, action="accept", account=None, tenant="common", **params):
    """GET the sign-in page and press a button; returns (page scraper, response)."""
    r = req("GET", authorize_url(fake, tenant, **params))
    assert r.status == 200, r.body
    page = FormScraper(r.body.decode())
    fields = {"txn": page.inputs["txn"], "action": action}
    if account is not None:
        fields["account"] = account
    return page, form_post(fake.auth_url + page.action, fields)


def redeem(fake, code, verifier=None, redirect_uri=REDIRECT, tenant="common", client_id=CID, extra=None,
           headers=None):
    f = {"grant_type": "authorization_code", "client_id": client_id, "code": code, "redirect_uri": redirect_uri}
    if verifier is not None:
        f["code_verifier"] = verifier
    f.update(extra or {})
    return form_post(token_url(fake, tenant), f, headers)


def test_authorize_page_accept_and_redeem_with_pkce(fake):
    verifier, challenge = pkce_pair()
    r = req("GET", authorize_url(fake, code_challenge=challenge, code_challenge_method="S256",
                                 login_hint="fake.user@outlook.com", prompt="select_account"))
    assert r.status == 200 and r.header("content-type").startswith("text/html")
    assert b"<script" not in r.body                       # drivable without JavaScript
    page = FormScraper(r.body.decode())
    assert page.ids["accept"][0] == "button" and page.ids["cancel"][0] == "button"
    assert page.ids["txn"][1]["name"] == "txn"
    assert page.action == "/common/oauth2/v2.0/authorize/consent"
    assert [x["value"] for x in page.radios] == [fake.me.id] and "checked" in page.radios[0]
    pend = fake.pending_authorizations()
    assert len(pend) == 1 and pend[0]["txn"] == page.inputs["txn"] and pend[0]["code_challenge_method"] == "S256"
    r = form_post(fake.auth_url + page.action, {"txn": page.inputs["txn"], "action": "accept"})
    assert r.status == 302, r.body
    loc = r.header("location")
    assert loc.startswith(REDIRECT + "?")
    q = query_of(loc)
    assert q["state"] == "st-123" and q["code"]
    assert fake.auth_codes()[0]["code"] == q["code"] and not fake.auth_codes()[0]["redeemed"]
    r = redeem(fake, q["code"], verifier)
    assert r.status == 200, r.body
    tok = r.json()
    assert tok["token_type"] == "Bearer" and tok["refresh_token"] and "id_token" not in tok
    assert g(fake, tok["access_token"], "/me").json()["id"] == fake.me.id
    j = assert_token_error(redeem(fake, q["code"], verifier), "invalid_grant")     # single use
    assert j["error_codes"] == [54005]
    assert fake.stats()["token_grants"]["authorization_code"] == 1
    # the refresh token works like any other
    r = form_post(token_url(fake), {"grant_type": "refresh_token", "client_id": CID,
                                    "refresh_token": tok["refresh_token"]})
    assert r.status == 200
    # the page is gone once answered
    r = form_post(fake.auth_url + page.action, {"txn": page.inputs["txn"], "action": "accept"})
    assert r.status == 400 and b"AADSTS50089" in r.body and r.header("location") is None


def test_authorize_code_binding_and_pkce_errors(fake):
    verifier, challenge = pkce_pair()
    other = "22222222-2222-2222-2222-222222222222"
    fake.register_client(other, redirect_uris=[REDIRECT])

    def code(**kw):
        _, r = sign_in(fake, code_challenge=challenge, code_challenge_method="S256", **kw)
        assert r.status == 302, r.body
        return query_of(r.header("location"))["code"]

    c = code()
    assert assert_token_error(redeem(fake, c, "w" * 43), "invalid_grant")["error_codes"] == [501481]
    assert assert_token_error(redeem(fake, c), "invalid_request")["error_codes"] == [900144]
    j = assert_token_error(redeem(fake, c, verifier, redirect_uri="http://localhost:1/"), "invalid_grant")
    assert j["error_codes"] == [70000] and "redirect_uri" in j["error_description"]
    assert assert_token_error(redeem(fake, c, verifier, client_id=other), "invalid_grant")["error_codes"] == [70000]
    assert assert_token_error(redeem(fake, "garbage", verifier), "invalid_grant")["error_codes"] == [70000]
    assert redeem(fake, c, verifier).status == 200         # failed attempts do not burn the code
    # plain PKCE, and no PKCE at all
    _, r = sign_in(fake, code_challenge="p" * 50, code_challenge_method="plain")
    c2 = query_of(r.header("location"))["code"]
    assert assert_token_error(redeem(fake, c2, "q" * 50), "invalid_grant")["error_codes"] == [501481]
    assert redeem(fake, c2, "p" * 50).status == 200
    _, r = sign_in(fake)
    assert redeem(fake, query_of(r.header("location"))["code"]).status == 200
    # expiry
    fake.set_config(auth_code_lifetime=0)
    c3 = code()
    assert assert_token_error(redeem(fake, c3, verifier), "invalid_grant")["error_codes"] == [70008]


def test_authorize_errors_on_page_and_by_redirect(fake):
    def page_error(r, code):
        assert r.status == 400 and r.header("location") is None, (r.status, r.body)
        assert r.header("content-type").startswith("text/html")
        assert ("AADSTS%d" % code).encode() in r.body

    page_error(req("GET", authorize_url(fake, client_id="deadbeef-0000-0000-0000-000000000000")), 700016)
    page_error(req("GET", authorize_url(fake, client_id=None)), 900144)
    page_error(req("GET", authorize_url(fake, redirect_uri="https://evil.example/cb")), 50011)
    page_error(req("GET", authorize_url(fake, redirect_uri="https://localhost/")), 50011)
    page_error(req("GET", authorize_url(fake, redirect_uri=None)), 900144)
    page_error(req("GET", authorize_url(fake, tenant="nosuch.onmicrosoft.com")), 90002)
    # loopback registrations accept any port
    for uri in ("http://localhost:1/", "http://localhost:65000", "http://localhost"):
        assert req("GET", authorize_url(fake, redirect_uri=uri)).status == 200
    assert req("GET", authorize_url(
        fake, redirect_uri="https://login.microsoftonline.com/common/oauth2/nativeclient")).status == 200
    page_error(req("GET", authorize_url(fake, redirect_uri="http://localhost:8080/other")), 50011)

    def redirected(r, error, code):
        assert r.status == 302, r.body
        q = query_of(r.header("location"))
        assert q["error"] == error and q["error_description"].startswith("AADSTS%d: " % code), q
        assert q["state"] == "st-123"
        return q

    redirected(req("GET", authorize_url(fake, response_type="token")), "unsupported_response_type", 70005)
    redirected(req("GET", authorize_url(fake, response_type=None)), "invalid_request", 900144)
    redirected(req("GET", authorize_url(fake, scope=None)), "invalid_request", 900144)
    redirected(req("GET", authorize_url(fake, response_mode="weird")), "invalid_request", 70007)
    redirected(req("GET", authorize_url(fake, code_challenge="x" * 10, code_challenge_method="S256")),
               "invalid_request", 501491)
    redirected(req("GET", authorize_url(fake, code_challenge="x" * 43, code_challenge_method="S512")),
               "invalid_request", 90023)
    redirected(req("GET", authorize_url(fake, prompt="none")), "login_required", 50058)
    # Cancel: consent declined
    page, r = sign_in(fake, action="cancel")
    q = redirected(r, "access_denied", 65004)
    assert q["error_uri"].endswith("code=65004")
    assert page.inputs["txn"] not in [p["txn"] for p in fake.pending_authorizations()]
    assert req("PUT", authorize_url(fake)).status == 405


def test_authorize_auto_consent_modes_and_control(fake):
    fake.set_config(auto_consent=True)
    r = req("GET", authorize_url(fake))
    assert r.status == 302 and query_of(r.header("location"))["code"]
    r = req("GET", authorize_url(fake, response_mode="fragment"))
    assert r.status == 302 and "#code=" in r.header("location")
    assert redeem(fake, query_of(r.header("location"))["code"]).status == 200
    r = req("GET", authorize_url(fake, response_mode="form_post"))
    assert r.status == 200
    page = FormScraper(r.body.decode())
    assert page.action == REDIRECT and page.inputs["code"] and page.inputs["state"] == "st-123"
    r = req("GET", authorize_url(fake, prompt="none"))        # a "signed-in session": silent success
    assert r.status == 302 and "code=" in r.header("location")
    # POST to /authorize works like GET
    r = form_post("%s/common/oauth2/v2.0/authorize" % fake.auth_url,
                  {"client_id": CID, "response_type": "code", "redirect_uri": REDIRECT, "scope": "Files.Read"})
    assert r.status == 302
    fake.set_config(auto_consent=False)
    # programmatic approve / decline, also over /_control/
    req("GET", authorize_url(fake, state="one"))
    loc = fake.approve_authorization()
    assert query_of(loc)["state"] == "one" and redeem(fake, query_of(loc)["code"]).status == 200
    req("GET", authorize_url(fake, state="two"))
    base = fake.url + "/_control"
    js = {"Content-Type": "application/json"}
    pend = req("GET", base + "/authorize").json()["pending"]
    assert [p["state"] for p in pend] == ["two"]
    r = req("POST", base + "/authorize/decline", js, json.dumps({"txn": pend[0]["txn"]}).encode())
    assert query_of(r.json()["location"])["error"] == "access_denied"
    assert req("POST", base + "/authorize/approve", js, b"{}").status == 400     # nothing pending
    req("GET", authorize_url(fake, state="three"))
    r = req("POST", base + "/authorize/approve", js, b"{}")
    assert query_of(r.json()["location"])["state"] == "three"
    assert len(req("GET", base + "/codes").json()["codes"]) == fake.auth_codes().__len__() >= 5
    assert fake.stats()["requests"].get("GET authorize", 0) >= 5


def test_confidential_client_auth_code_and_basic_auth(fake):
    cid = "33333333-3333-3333-3333-333333333333"
    fake.register_client(cid, public=False, secret="s3cret", redirect_uris=["https://app.example/cb"])
    fake.set_config(auto_consent=True)

    def code():
        r = req("GET", authorize_url(fake, client_id=cid, redirect_uri="https://app.example/cb"))
        assert r.status == 302, r.body
        return query_of(r.header("location"))["code"]

    c = code()
    j = assert_token_error(redeem(fake, c, client_id=cid, redirect_uri="https://app.example/cb"),
                           "invalid_client", 401)
    assert j["error_codes"] == [7000218]
    j = assert_token_error(redeem(fake, c, client_id=cid, redirect_uri="https://app.example/cb",
                                  extra={"client_secret": "wrong"}), "invalid_client", 401)
    assert j["error_codes"] == [7000215]
    r = redeem(fake, c, client_id=cid, redirect_uri="https://app.example/cb", extra={"client_secret": "s3cret"})
    assert r.status == 200, r.body
    basic = "Basic " + base64.b64encode(("%s:%s" % (cid, quote("s3cret"))).encode()).decode()
    r = form_post(token_url(fake), {"grant_type": "authorization_code", "code": code(),
                                    "redirect_uri": "https://app.example/cb"}, {"Authorization": basic})
    assert r.status == 200, r.body
    bad = "Basic " + base64.b64encode(("%s:nope" % cid).encode()).decode()
    assert_token_error(form_post(token_url(fake), {"grant_type": "authorization_code", "code": code(),
                                                   "redirect_uri": "https://app.example/cb"},
                                 {"Authorization": bad}), "invalid_client", 401)
    # a public client presenting a secret, by Basic auth too
    pub = "Basic " + base64.b64encode(("%s:x" % CID).encode()).decode()
    j = assert_token_error(form_post(token_url(fake), {"grant_type": "refresh_token", "refresh_token": "x"},
                                     {"Authorization": pub}), "invalid_client")
    assert j["error_codes"] == [700025]
    with pytest.raises(ValueError):
        fake.register_client("44444444-4444-4444-4444-444444444444", public=False)


def test_account_picker_personal_and_work(fake):
    work = fake.add_account("Alex Work", kind="business")
    assert work.email == "alex.work@contoso.onmicrosoft.com" and fake.drive_for("alex").kind == "business"
    page, r = sign_in(fake, account=work.id)
    assert [x["value"] for x in page.radios] == [fake.me.id, work.id]
    tok = redeem(fake, query_of(r.header("location"))["code"]).json()
    assert g(fake, tok["access_token"], "/me").json()["userPrincipalName"] == work.email
    d = g(fake, tok["access_token"], "/me/drive").json()
    assert d["driveType"] == "business" and d["id"].startswith("b!")
    # login_hint preselects
    page = FormScraper(req("GET", authorize_url(fake, login_hint=work.email)).body.decode())
    assert [x["value"] for x in page.radios if "checked" in x] == [work.id]
    # a personal account at /organizations, a work account at /consumers: error page, no redirect
    _, r = sign_in(fake, tenant="organizations", account=fake.me.id)
    assert r.status == 400 and b"AADSTS50020" in r.body and r.header("location") is None
    _, r = sign_in(fake, tenant="consumers", account=work.id)
    assert r.status == 400 and b"AADSTS50020" in r.body
    _, r = sign_in(fake, tenant=fake.tenant.domain, account=work.id)
    c = query_of(r.header("location"))["code"]
    assert redeem(fake, c, tenant="consumers").status == 400          # the code's user is checked
    assert redeem(fake, c, tenant=fake.tenant.id).status == 200
    _, r = sign_in(fake, account="nobody@example.com")
    assert r.status == 400 and b"AADSTS50034" in r.body
    # device code approved as the second account
    fake.set_config(device_interval=0)
    dc = devicecode(fake, tenant="organizations").json()            # allowed: a work account exists now
    fake.approve_device(dc["user_code"], account="alex")
    tok = poll(fake, dc["device_code"]).json()
    assert g(fake, tok["access_token"], "/me").json()["id"] == work.id
    fake.reset()
    assert [u.id for u in fake.signin_users()] == [fake.me.id]
    assert g(fake, tok["access_token"], "/me").status == 401            # the account is gone


# ---------------------------------------------------------- business fake
@pytest.fixture(scope="module")
def biz_server():
    with FakeGraph(account="business", device_interval=0, tenant_id="aaaabbbb-0000-1111-2222-333344445555") as f:
        yield f


@pytest.fixture
def biz(biz_server):
    biz_server.reset()
    biz_server.reset_identity()
    biz_server.set_config(**{k: v for k, v in biz_server.config.DEFAULTS.items()})
    biz_server.set_config(device_interval=0, auto_approve=True)
    return biz_server


APP = "55555555-5555-5555-5555-555555555555"


def app_token(fake, roles=("Files.ReadWrite.All",), tenant=None):
    fake.register_client(APP, public=False, secret="app-secret", roles=list(roles))
    r = form_post(token_url(fake, tenant or fake.tenant.domain),
                  {"grant_type": "client_credentials", "client_id": APP, "client_secret": "app-secret",
                   "scope": "https://graph.microsoft.com/.default"})
    assert r.status == 200, r.body
    return r.json()


def test_business_account_shapes_and_tenants(biz):
    biz.seed(tree=[{"path": "Docs/a.txt", "content": "hello"}, {"path": "Empty", "folder": True}])
    tok = biz.issue_tokens()["access_token"]
    d = g(biz, tok, "/me/drive").json()
    assert d["driveType"] == "business" and re.match(r"^b![A-Za-z0-9_-]{64}$", d["id"])
    assert "fileCount" in d["quota"] and "storagePlanInformation" not in d["quota"]
    assert d["owner"]["user"]["email"] == biz.me.email
    me = g(biz, tok, "/me").json()
    assert re.match(r"^[0-9a-f-]{36}$", me["id"]) and me["userPrincipalName"] == "fake.user@contoso.onmicrosoft.com"
    root = g(biz, tok, "/me/drive/root").json()
    assert re.match(r"^01[A-Z2-7]{32}$", root["id"]) and "cTag" not in root
    kids = {x["name"]: x for x in g(biz, tok, "/me/drive/root/children").json()["value"]}
    assert "cTag" not in kids["Docs"] and kids["Docs"]["folder"] == {"childCount": 1}
    f = g(biz, tok, "/me/drive/root:/Docs/a.txt").json()
    assert f["cTag"] and re.match(r"^01[A-Z2-7]{32}$", f["id"])
    assert f["parentReference"]["driveType"] == "business"
    assert f["parentReference"]["path"] == "/drives/%s/root:/Docs" % d["id"]
    assert f["createdBy"]["user"]["email"] == biz.me.email
    assert f["webUrl"].startswith("https://contoso-my.sharepoint.com/personal/fake_user_contoso_onmicrosoft_com/")
    assert g(biz, tok, "/drives/%s/items/%s" % (d["id"], f["id"])).status == 200
    assert g(biz, tok, "/drives/%s/items/%s" % (d["id"].lower(), f["id"])).status == 404   # exact ids
    # the content path works as for personal
    r = g(biz, tok, "/me/drive/items/%s/content" % f["id"])
    assert req("GET", r.header("location")).body == b"hello"
    # deleted items in delta lack the name (quirk 7)
    _, link = biz.client().delta()
    biz.client().delete("/Docs/a.txt")
    items, _ = biz.client().delta(link)
    gone = [x for x in items if "deleted" in x]
    assert gone and "name" not in gone[0] and gone[0]["parentReference"]["driveType"] == "business"
    # tenants for a work account
    for t in ("common", "organizations", biz.tenant.domain, biz.tenant.id):
        assert devicecode(biz, tenant=t).status == 200, t
    j = assert_token_error(devicecode(biz, tenant="consumers"), "invalid_request")
    assert j["error_codes"] == [50020]
    j = assert_token_error(devicecode(biz, tenant="other.onmicrosoft.com"), "invalid_request")
    assert j["error_codes"] == [90002]
    rt = biz.issue_tokens()["refresh_token"]
    assert form_post(token_url(biz, biz.tenant.id), {"grant_type": "refresh_token", "client_id": CID,
                                                     "refresh_token": rt}).status == 200
    assert_token_error(form_post(token_url(biz, "consumers"), {"grant_type": "refresh_token", "client_id": CID,
                                                               "refresh_token": rt}), "invalid_request")
    # id_token of a work account names the tenant
    tokj = biz.issue_tokens(scope="openid Files.Read")
    claims = json.loads(base64.urlsafe_b64decode(tokj["id_token"].split(".")[1] + "=="))
    assert claims["tid"] == biz.tenant.id and claims["oid"] == biz.me.id
    # creating an existing folder without conflictBehavior: 409 on business
    assert mkdir(biz, tok, "/me/drive/root", "Empty").status == 409


def test_client_credentials_grant(biz):
    tok = app_token(biz)
    assert set(tok) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    at = tok["access_token"]
    e = assert_graph_error(g(biz, at, "/me"), 400, "BadRequest")
    assert e["message"] == "/me request is only valid with delegated authentication flow."
    assert_graph_error(g(biz, at, "/me/drive/root/children"), 400, "BadRequest")
    biz.seed(tree=[{"path": "x.txt", "content": "x"}])
    r = g(biz, at, "/users/%s/drive" % biz.me.email)
    assert r.status == 200 and r.json()["id"] == biz.drive_id
    assert g(biz, at, "/users/%s/drive/root:/x.txt" % biz.me.id).status == 200
    assert g(biz, at, "/drives/%s/root/children" % biz.drive_id).json()["value"][0]["name"] == "x.txt"
    r = g(biz, at, "/users/%s/drive/root:/y.txt:/content" % biz.me.email, "PUT", body=b"y")
    assert r.status == 201
    assert_graph_error(g(biz, at, "/users/nobody@contoso.onmicrosoft.com/drive"), 404, "Request_ResourceNotFound")
    assert g(biz, at, "/users/%s" % biz.me.email).json()["id"] == biz.me.id
    # read-only role: writes are denied; no role at all: the token is refused
    ro = app_token(biz, roles=["Files.Read.All"])["access_token"]
    assert g(biz, ro, "/drives/%s/root/children" % biz.drive_id).status == 200
    assert_graph_error(g(biz, ro, "/drives/%s/root:/z.txt:/content" % biz.drive_id, "PUT", body=b"z"),
                       403, "accessDenied")
    none = app_token(biz, roles=[])["access_token"]
    assert_graph_error(g(biz, none, "/drives/%s" % biz.drive_id), 401, "InvalidAuthenticationToken")
    # grant errors
    base = {"grant_type": "client_credentials", "client_id": APP, "client_secret": "app-secret",
            "scope": "https://graph.microsoft.com/.default"}
    for t in ("common", "consumers"):
        j = assert_token_error(form_post(token_url(biz, t), base), "invalid_request")
        assert j["error_codes"] == [9001023]
    assert assert_token_error(form_post(token_url(biz, "organizations"), base),
                              "invalid_request")["error_codes"] == [50059]
    t = biz.tenant.id

    def cc(**kw):
        return form_post(token_url(biz, t), dict(base, **kw))

    assert assert_token_error(cc(scope="Files.Read.All"), "invalid_scope")["error_codes"] == [1002012]
    assert assert_token_error(cc(scope="https://graph.microsoft.com/.default https://x.example/.default"),
                              "invalid_scope")["error_codes"] == [70011]
    assert assert_token_error(cc(scope="https://vault.example/.default"), "invalid_resource")["error_codes"] == [500011]
    assert cc(scope="00000003-0000-0000-c000-000000000000/.default").status == 200
    assert assert_token_error(cc(client_secret="bad"), "invalid_client", 401)["error_codes"] == [7000215]
    assert assert_token_error(form_post(token_url(biz, t), {k: v for k, v in base.items() if k != "client_secret"}),
                              "invalid_client", 401)["error_codes"] == [7000218]
    j = assert_token_error(form_post(token_url(biz, t), dict(base, client_id=CID, client_secret="")),
                           "invalid_client")
    assert j["error_codes"] == [700025]
    j = assert_token_error(form_post(token_url(biz, t), {"grant_type": "client_credentials", "client_id": CID,
                                                         "scope": base["scope"]}), "invalid_client", 401)
    assert j["error_codes"] == [7000218]                 # public clients have no credentials
    basic = "Basic " + base64.b64encode(b"%s:app-secret" % APP.encode()).decode()
    r = form_post(token_url(biz, t), {"grant_type": "client_credentials", "scope": base["scope"]},
                  {"Authorization": basic})
    assert r.status == 200 and "refresh_token" not in r.json()
    assert biz.stats()["token_grants"]["client_credentials"] >= 2


def test_users_drive_delegated(biz):
    bob = biz.add_user("Bob Jones")
    tok = biz.issue_tokens()["access_token"]
    assert g(biz, tok, "/users/%s/drive" % biz.me.email.upper()).json()["id"] == biz.drive_id
    assert g(biz, tok, "/users/%s/drives" % biz.me.id).json()["value"][0]["id"] == biz.drive_id
    assert_graph_error(g(biz, tok, "/users/%s/drive" % bob.email), 403, "accessDenied")
    assert_graph_error(g(biz, tok, "/drives/%s/root" % bob.drive.drive_id), 403, "accessDenied")
    assert_graph_error(g(biz, tok, "/users/bob/drive"), 404, "Request_ResourceNotFound")   # aliases are ours
    assert_graph_error(g(biz, tok, "/drives/b!nosuchdrive/root"), 404, "itemNotFound")
    assert g(biz, tok, "/me/drives").json()["value"][0]["driveType"] == "business"


def test_sharepoint_sites_and_libraries(biz):
    site = biz.add_site("/sites/Team", display_name="Team Site", libraries=["Documents", "Team Assets"])
    biz.seed(tree=[{"path": "Plan.docx", "content": "plan"}], drive="team")
    biz.seed(tree=[{"path": "logo.png", "content": {"size": 1000, "seed": 3}}], drive="team/Team Assets")
    tok = biz.issue_tokens(scope="Files.ReadWrite.All Sites.Read.All offline_access")["access_token"]
    r = g(biz, tok, "/sites/contoso.sharepoint.com:/sites/Team")
    assert r.status == 200, r.body
    s = r.json()
    assert s["id"] == site.id and s["id"].count(",") == 2 and s["id"].startswith("contoso.sharepoint.com,")
    assert s["displayName"] == "Team Site" and s["name"] == "Team"
    assert s["webUrl"] == "https://contoso.sharepoint.com/sites/Team"
    assert g(biz, tok, "/sites/contoso.sharepoint.com:/sites/team:").json()["id"] == site.id
    assert g(biz, tok, "/sites/%s" % quote(site.id)).json()["id"] == site.id
    drives = g(biz, tok, "/sites/%s/drives" % site.id).json()["value"]
    assert [d["name"] for d in drives] == ["Documents", "Team Assets"]
    assert {d["driveType"] for d in drives} == {"documentLibrary"}
    assert g(biz, tok, "/sites/contoso.sharepoint.com:/sites/Team:/drives").json()["value"][1]["name"] == "Team Assets"
    d = g(biz, tok, "/sites/%s/drive" % site.id).json()
    assert d["id"] == drives[0]["id"] and d["webUrl"].endswith("/sites/Team/Shared%20Documents")
    kids = g(biz, tok, "/sites/%s/drive/root/children" % site.id).json()["value"]
    assert [k["name"] for k in kids] == ["Plan.docx"]
    assert kids[0]["parentReference"]["driveType"] == "documentLibrary"
    assert kids[0]["parentReference"]["siteId"] == site.id
    lib2 = drives[1]["id"]
    r = g(biz, tok, "/drives/%s/root:/logo.png:/content" % lib2)
    assert req("GET", r.header("location")).body == GeneratedContent(1000, 3).to_bytes()
    r = g(biz, tok, "/drives/%s/root:/new.txt:/content" % lib2, "PUT", body=b"new")
    assert r.status == 201 and biz.content("/new.txt", drive="team/Team Assets") == b"new"
    assert_graph_error(g(biz, tok, "/sites/contoso.sharepoint.com:/sites/Nope"), 404, "itemNotFound")
    assert_graph_error(g(biz, tok, "/sites/%s/drives" % "x,y,z"), 404, "itemNotFound")
    # scopes: no Sites/Files.*.All -> 403; read-only -> no writes
    own = biz.issue_tokens(scope="Files.ReadWrite")["access_token"]
    assert_graph_error(g(biz, own, "/sites/%s" % site.id), 403, "accessDenied")
    assert_graph_error(g(biz, own, "/drives/%s/root" % lib2), 403, "accessDenied")
    rd = biz.issue_tokens(scope="Sites.Read.All")["access_token"]
    assert g(biz, rd, "/drives/%s/root/children" % lib2).status == 200
    assert_graph_error(g(biz, rd, "/drives/%s/root:/n.txt:/content" % lib2, "PUT", body=b"n"), 403, "accessDenied")
    # app-only with a role
    at = app_token(biz, roles=["Sites.Read.All"])["access_token"]
    assert g(biz, at, "/sites/%s/drives" % site.id).status == 200
    st = biz.stats()["requests"]
    assert st.get("GET site", 0) >= 3 and st.get("GET drives", 0) >= 2


def test_sites_need_a_work_account(fake, token):
    fake.add_site("/sites/Team")
    assert_graph_error(g(fake, token, "/sites/contoso.sharepoint.com:/sites/Team"), 400, "BadRequest")
    lib = fake.drive_for("team").drive_id
    assert_graph_error(g(fake, token, "/drives/%s/root" % lib), 400, "BadRequest")


def test_revoke_sign_in_sessions(fake, token, biz):
    e = assert_graph_error(g(fake, token, "/me/revokeSignInSessions", "POST"), 404, "")
    assert "No HTTP resource was found" in e["message"]
    first = biz.issue_tokens(scope="User.RevokeSessions.All Files.Read offline_access")
    bob = biz.add_user("Bob Jones", signin=True)
    other = biz.issue_tokens(user="bob")
    plain = biz.issue_tokens()["access_token"]
    assert_graph_error(g(biz, plain, "/me/revokeSignInSessions", "POST"), 403, "Authorization_RequestDenied")
    assert_graph_error(g(biz, first["access_token"], "/me/revokeSignInSessions"), 405, "BadRequest")
    r = g(biz, first["access_token"], "/me/revokeSignInSessions", "POST")
    assert r.status == 200, r.body
    assert r.json() == {"@odata.context": biz.graph_url + "/$metadata#Edm.Boolean", "value": True}
    j = assert_token_error(form_post(token_url(biz), {"grant_type": "refresh_token", "client_id": CID,
                                                      "refresh_token": first["refresh_token"]}), "invalid_grant")
    assert j["error_codes"] == [50173]
    assert g(biz, first["access_token"], "/me").status == 200          # access tokens live on
    assert form_post(token_url(biz), {"grant_type": "refresh_token", "client_id": CID,
                                      "refresh_token": other["refresh_token"]}).status == 200   # bob unaffected
    at = app_token(biz, roles=["User.RevokeSessions.All"])["access_token"]
    assert g(biz, at, "/users/%s/revokeSignInSessions" % bob.email, "POST").status == 200
    assert_token_error(form_post(token_url(biz), {"grant_type": "refresh_token", "client_id": CID,
                                                  "refresh_token": other["refresh_token"]}), "invalid_grant")


# ---------------------------------------------------------- shared folders
def test_shared_folder_shortcut_read_only(fake, token):
    bob = fake.add_user("Bob Jones")
    fake.seed(tree=[{"path": "Projects/plan.txt", "content": "plan"}, {"path": "Projects/Sub/deep.txt",
                                                                       "content": "deep"},
                    {"path": "Private/secret.txt", "content": "s"}], drive="bob")
    sh = fake.share("/Projects", owner="bob", role="read")
    kids = {x["name"]: x for x in g(fake, token, "/me/drive/root/children").json()["value"]}
    sc = kids["Projects"]
    assert sc["id"] == sh["shortcut_id"] and "folder" not in sc and "file" not in sc
    assert "@microsoft.graph.downloadUrl" not in sc
    ri = sc["remoteItem"]
    assert ri["id"] == sh["item_id"] and ri["name"] == "Projects" and ri["folder"]["childCount"] == 2
    assert ri["parentReference"]["driveId"] == bob.drive.drive_id and ri["parentReference"]["driveType"] == "personal"
    assert ri["parentReference"]["id"] == bob.drive.root.id
    assert ri["size"] == 8 and sc["size"] == 8
    assert ri["shared"]["owner"]["user"]["displayName"] == "Bob Jones"
    assert set(ri["fileSystemInfo"]) == {"createdDateTime", "lastModifiedDateTime"}
    base = "/drives/%s/items/%s" % (bob.drive.drive_id, ri["id"])
    names = sorted(x["name"] for x in g(fake, token, base + "/children").json()["value"])
    assert names == ["Sub", "plan.txt"]
    f = g(fake, token, base + ":/Sub/deep.txt").json()
    assert f["parentReference"]["driveId"] == bob.drive.drive_id
    r = g(fake, token, "/drives/%s/items/%s/content" % (bob.drive.drive_id, f["id"]))
    assert req("GET", r.header("location")).body == b"deep"
    # outside the share, and writes into a read-only share
    assert_graph_error(g(fake, token, "/drives/%s/root/children" % bob.drive.drive_id), 403, "accessDenied")
    secret = fake.item_id("/Private/secret.txt", drive="bob")
    assert_graph_error(g(fake, token, "/drives/%s/items/%s" % (bob.drive.drive_id, secret)), 403, "accessDenied")
    assert_graph_error(g(fake, token, base + ":/new.txt:/content", "PUT", body=b"x"), 403, "accessDenied")
    assert_graph_error(gj(fake, token, base + "/children", "POST", {"name": "N", "folder": {}}), 403, "accessDenied")
    assert_graph_error(g(fake, token, "/drives/%s/items/%s" % (bob.drive.drive_id, f["id"]), "DELETE"),
                       403, "accessDenied")
    assert g(fake, token, "/drives/%s" % bob.drive.drive_id).status == 200       # drive metadata, no quota
    assert "quota" not in g(fake, token, "/drives/%s" % bob.drive.drive_id).json()
    # the shortcut itself has no content; its remote target moves with changes
    assert g(fake, token, "/me/drive/items/%s/content" % sc["id"]).status == 404
    fake.seed(tree=[{"path": "Projects/more.txt", "content": "1234"}], drive="bob")
    ri = g(fake, token, "/me/drive/items/%s" % sc["id"]).json()["remoteItem"]
    assert ri["folder"]["childCount"] == 3 and ri["size"] == 12
    # delta of my drive carries the shortcut with its remoteItem
    items, _ = fake.client().delta()
    assert [x for x in items if x["name"] == "Projects"][0]["remoteItem"]["id"] == sh["item_id"]
    dump = {x["path"]: x for x in fake.dump()["items"]}
    assert dump["/Projects"]["remote"] == {"driveId": bob.drive.drive_id, "id": sh["item_id"]}


def test_shared_folder_read_write_and_business_scopes(fake, token, biz):
    fake.add_user("Carol Smith")
    sh = fake.share("/Team work", owner="carol", role="write", name="Carol's work")
    base = "/drives/%s/items/%s" % (sh["drive_id"], sh["item_id"])
    assert g(fake, token, base + ":/a.txt:/content", "PUT", body=b"mine").status == 201
    assert fake.content("/Team work/a.txt", drive="carol") == b"mine"
    assert mkdir(fake, token, base, "Sub").status == 201, mkdir(fake, token, base, "Sub2").body
    sub = fake.item_id("/Team work/Sub", drive="carol")
    r = create_session(fake, token, "/drives/%s/items/%s:/big.bin:" % (sh["drive_id"], sub))
    assert r.status == 200
    assert put_frag(r.json()["uploadUrl"], b"z" * 10, 0, 10).status == 201
    assert fake.content("/Team work/Sub/big.bin", drive="carol") == b"z" * 10
    # moving an item out of the share is refused
    fid = fake.item_id("/Team work/a.txt", drive="carol")
    r = gj(fake, token, "/drives/%s/items/%s" % (sh["drive_id"], fid), "PATCH",
           {"parentReference": {"id": fake.drive_for("carol").root.id}})
    assert_graph_error(r, 403, "accessDenied")
    names = [x["name"] for x in g(fake, token, "/me/drive/root/children").json()["value"]]
    assert "Carol's work" in names
    # a second shortcut with a taken name gets a unique one
    fake.share("/Other", owner="carol", role="read", name="Carol's work")
    names = [x["name"] for x in g(fake, token, "/me/drive/root/children").json()["value"]]
    assert "Carol's work 1" in names
    # on business, shared items need Files.Read(Write).All
    dave = biz.add_user("Dave Lee")
    s2 = biz.share("/Shared", owner=dave.email, role="read")
    own = biz.issue_tokens(scope="Files.ReadWrite")["access_token"]
    all_ = biz.issue_tokens(scope="Files.Read.All")["access_token"]
    b2 = "/drives/%s/items/%s/children" % (s2["drive_id"], s2["item_id"])
    assert_graph_error(g(biz, own, b2), 403, "accessDenied")
    assert g(biz, all_, b2).status == 200
    sc = [x for x in g(biz, all_, "/me/drive/root/children").json()["value"] if x["name"] == "Shared"][0]
    assert sc["remoteItem"]["parentReference"]["driveType"] == "business"


def test_multi_drive_control_endpoints(fake, token):
    base = fake.url + "/_control"
    js = {"Content-Type": "application/json"}

    def ctl(path, body=None, method="POST"):
        r = req(method, base + path, js, None if body is None else json.dumps(body).encode())
        assert r.status == 200, (path, r.body)
        return r.json()

    u = ctl("/users", {"name": "Erin Moss", "signin": True})
    assert u["userPrincipalName"] == "erin.moss@outlook.com" and u["kind"] == "personal" and u["alias"] == "erin"
    assert ctl("/seed", {"tree": [{"path": "e.txt", "content": "e"}], "drive": "erin"})["created"] == 1
    assert [x["path"] for x in ctl("/dump?drive=erin", method="GET")["items"]] == ["/e.txt"]
    assert req("GET", base + "/content?path=/e.txt&drive=erin").body == b"e"
    sh = ctl("/shares", {"path": "/Box", "owner": "erin", "role": "write"})
    assert sh["role"] == "write" and sh["shortcut_id"]
    assert ctl("/shares", method="GET")["shares"][0]["item_id"] == sh["item_id"]
    site = ctl("/sites", {"path": "/sites/Docs", "libraries": ["Documents", {"name": "Archive", "alias": "arc"}]})
    assert [d["alias"] for d in site["drives"]] == ["docs", "arc"]
    ctl("/clients", {"client_id": APP, "public": False, "secret": "s", "roles": ["Files.Read.All"],
                     "redirect_uris": ["https://x.example/cb"]})
    cl = ctl("/clients", method="GET")["clients"]
    assert cl[APP]["roles"] == ["Files.Read.All"] and "secret" not in cl[APP]
    tok = ctl("/tokens/issue", {"user": "erin", "scope": "Files.Read"})
    assert g(fake, tok["access_token"], "/me").json()["userPrincipalName"] == "erin.moss@outlook.com"
    info = ctl("/info", method="GET")
    assert info["account"] == "personal" and len(info["drives"]) == 4 and info["tenant_id"] is None
    assert req("POST", base + "/seed", js, json.dumps({"tree": [], "drive": "nope"}).encode()).status == 400
    ctl("/reset")
    assert len(ctl("/info", method="GET")["drives"]) == 1


def test_account_switch_over_control():
    with FakeGraph() as f:
        r = req("POST", f.url + "/_control/account", {"Content-Type": "application/json"},
                json.dumps({"account": "business", "name": "Zed Work"}).encode())
        assert r.status == 200 and r.json()["account"] == "business"
        tok = f.issue_tokens()["access_token"]
        assert g(f, tok, "/me/drive").json()["driveType"] == "business"
        assert g(f, tok, "/me").json()["userPrincipalName"] == "fake.user@contoso.onmicrosoft.com"
        assert f.info()["tenant_domain"] == "contoso.onmicrosoft.com"
