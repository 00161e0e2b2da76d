"""Tests of the fake Graph server's JSON batching (tests/fakegraph/batch.py).

Run: /usr/bin/python3 -m pytest -q tests/test_fakegraph_batch.py
"""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fakegraph import FakeGraph  # noqa: E402
from test_fakegraph import assert_graph_error, g  # noqa: E402


@pytest.fixture(scope="module")
def fake():
    with FakeGraph() as f:
        yield f


@pytest.fixture(autouse=True)
def clean(fake):
    fake.reset()
    fake.set_config(**{k: v for k, v in fake.config.DEFAULTS.items()})
    yield


@pytest.fixture
def token(fake):
    return fake.issue_tokens()["access_token"]


def batch(fake, token, requests, raw=None):
    body = raw if raw is not None else json.dumps({"requests": requests}).encode()
    return g(fake, token, "/$batch", "POST", {"Content-Type": "application/json"}, body)


def patch_times(rid, item_id, when, if_match=None):
    r = {"id": rid, "method": "PATCH", "url": "/me/drive/items/" + item_id,
         "headers": {"Content-Type": "application/json"},
         "body": {"fileSystemInfo": {"lastModifiedDateTime": when}}}
    if if_match:
        r["headers"]["If-Match"] = if_match
    return r


def by_id(resp):
    assert resp.status == 200, resp.body
    return {r["id"]: r for r in resp.json()["responses"]}


def seed_files(fake, n):
    fake.seed(tree=[{"path": "f%02d.txt" % i, "content": "x%d" % i} for i in range(n)])
    return [fake.item_id("/f%02d.txt" % i) for i in range(n)]


def test_patches_in_one_batch_apply_and_come_back_shuffled(fake, token):
    ids = seed_files(fake, 8)
    when = "2020-01-02T03:04:05Z"
    fake.reset_stats()
    reqs = [patch_times(str(i), item, when) for i, item in enumerate(ids)]
    r = batch(fake, token, reqs)
    got = r.json()["responses"]
    assert [x["id"] for x in got] != [x["id"] for x in reqs]
    res = by_id(r)
    for i, item in enumerate(ids):
        x = res[str(i)]
        assert x["status"] == 200
        assert x["body"]["id"] == item
        assert x["body"]["fileSystemInfo"]["lastModifiedDateTime"] == when
        assert x["body"]["eTag"]
    for item in ids:
        assert fake.item(item).fs_modified == 1577934245
    st = fake.stats()
    assert st["requests"] == {"POST batch": 1}
    assert st["batched"] == {"PATCH item": 8}
    assert st["total_batched"] == 8


def test_get_and_delete_and_children_post_in_a_batch(fake, token):
    ids = seed_files(fake, 2)
    root = fake.root_id
    res = by_id(batch(fake, token, [
        {"id": "a", "method": "GET", "url": "/me/drive/items/" + ids[0]},
        {"id": "b", "method": "DELETE", "url": "/me/drive/items/" + ids[1]},
        {"id": "c", "method": "POST", "url": "/me/drive/items/%s/children" % root,
         "headers": {"Content-Type": "application/json"},
         "body": {"name": "New", "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}},
    ]))
    assert res["a"]["status"] == 200 and res["a"]["body"]["id"] == ids[0]
    assert res["b"]["status"] == 204 and "body" not in res["b"]
    assert res["c"]["status"] == 201 and res["c"]["body"]["name"] == "New"
    assert fake.item("/New") is not None


@pytest.mark.parametrize("requests, raw", [
    ([], None),
    (None, b"{not json"),
    (None, b'{"requests": {}}'),
    ([{"id": "1", "method": "GET"}], None),
    ([{"id": "1", "url": "/me/drive"}], None),
    ([{"method": "GET", "url": "/me/drive"}], None),
    ([{"id": "1", "method": "GET", "url": "/me/drive"}, {"id": "1", "method": "GET", "url": "/me"}], None),
    ([{"id": "1", "method": "PATCH", "url": "/me/drive/items/x", "body": {"name": "y"}}], None),
    ([{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/me"}], None),
    ([{"id": "1", "method": "GET", "url": "/me", "dependsOn": ["9"]}], None),
    ([{"id": str(i), "method": "GET", "url": "/me"} for i in range(21)], None),
])
def test_malformed_batches_are_400(fake, token, requests, raw):
    fake.reset_stats()
    assert_graph_error(batch(fake, token, requests, raw), 400, "BadRequest")
    assert fake.stats()["total_batched"] == 0


def test_twenty_requests_are_fine(fake, token):
    res = by_id(batch(fake, token, [{"id": str(i), "method": "GET", "url": "/me/drive"} for i in range(20)]))
    assert len(res) == 20 and all(x["status"] == 200 for x in res.values())


def test_each_request_gets_the_token_checks(fake, token):
    assert_graph_error(batch(fake, "bogus", [{"id": "1", "method": "GET", "url": "/me"}]), 401,
                       "InvalidAuthenticationToken")
    fake.expire_tokens()
    assert_graph_error(batch(fake, token, [{"id": "1", "method": "GET", "url": "/me"}]), 401,
                       "InvalidAuthenticationToken")


def test_content_inside_a_batch_is_refused(fake, token):
    ids = seed_files(fake, 1)
    res = by_id(batch(fake, token, [
        {"id": "1", "method": "GET", "url": "/me/drive/items/%s/content" % ids[0]},
        {"id": "2", "method": "PUT", "url": "/me/drive/items/%s/content" % ids[0],
         "headers": {"Content-Type": "application/octet-stream"}, "body": "aGVsbG8="},
        {"id": "3", "method": "GET", "url": "/me/drive/items/" + ids[0]},
    ]))
    assert res["1"]["status"] == 400 and res["2"]["status"] == 400
    assert res["3"]["status"] == 200
    assert fake.content(ids[0]) == b"x0"


def test_depends_on_failure_gives_424(fake, token):
    ids = seed_files(fake, 1)
    res = by_id(batch(fake, token, [
        {"id": "2", "method": "PATCH", "url": "/me/drive/items/" + ids[0], "dependsOn": ["1"],
         "headers": {"Content-Type": "application/json"}, "body": {"name": "renamed.txt"}},
        {"id": "1", "method": "GET", "url": "/me/drive/items/nosuchitem"},
        {"id": "3", "method": "GET", "url": "/me/drive/items/" + ids[0], "dependsOn": ["2"]},
    ]))
    assert res["1"]["status"] == 404
    assert res["2"]["status"] == 424
    assert res["3"]["status"] == 424
    assert fake.item("/f00.txt") is not None


def test_depends_on_runs_in_order(fake, token):
    ids = seed_files(fake, 1)
    res = by_id(batch(fake, token, [
        {"id": "b", "method": "GET", "url": "/me/drive/items/" + ids[0], "dependsOn": ["a"]},
        {"id": "a", "method": "PATCH", "url": "/me/drive/items/" + ids[0],
         "headers": {"Content-Type": "application/json"}, "body": {"name": "renamed.txt"}},
    ]))
    assert res["a"]["status"] == 200
    assert res["b"]["body"]["name"] == "renamed.txt"


def test_faults_hit_single_requests_with_retry_after(fake, token):
    ids = seed_files(fake, 4)
    fake.faults({"rules": [{"match": "PATCH item", "status": 429, "retry_after": "2", "times": 2}]})
    when = "2021-05-06T07:08:09Z"
    res = by_id(batch(fake, token, [patch_times(str(i), item, when) for i, item in enumerate(ids)]))
    throttled = [x for x in res.values() if x["status"] == 429]
    assert len(throttled) == 2
    for x in throttled:
        assert x["headers"]["Retry-After"] == "2"
        assert x["body"]["error"]["code"] == "activityLimitReached"
    assert sum(1 for x in res.values() if x["status"] == 200) == 2


def test_if_match_inside_a_batch_gives_412(fake, token):
    ids = seed_files(fake, 2)
    good = fake.item(ids[1]).etag
    res = by_id(batch(fake, token, [
        patch_times("old", ids[0], "2020-01-01T00:00:00Z", if_match='"{00000000-0000-0000-0000-000000000000},1"'),
        patch_times("ok", ids[1], "2020-01-01T00:00:00Z", if_match=good),
    ]))
    assert res["old"]["status"] == 412
    assert res["ok"]["status"] == 200


def test_batch_switched_off_answers_404(fake, token):
    fake.set_config(batch=False)
    r = batch(fake, token, [{"id": "1", "method": "GET", "url": "/me"}])
    assert r.status == 404
    assert fake.stats()["total_batched"] == 0
