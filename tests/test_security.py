"""The secret scan every test gets from the env fixture's teardown
(helpers.secret_problems with FakeGraph.issued_secrets()): it must find a
token, code or client secret in any file or captured output, whole or
truncated, and token or secret files that others can read - and it must
never print a secret.
"""

import json
import os
import urllib.parse
import urllib.request

import conftest
import helpers
from fakegraph import FakeGraph

APP_ID = "00000000-0000-0000-0000-0000000000e1"
APP_SECRET = "security-test-secret-0123"


def issued():
    """A fake (not serving) with a personal sign-in and a confidential app:
    (its issued_secrets(), the token response)."""
    f = FakeGraph()
    f.register_client(APP_ID, public=False, secret=APP_SECRET, roles=["Files.Read.All"])
    tok = f.issue_tokens()
    return f.issued_secrets(), tok


def private_env(tmp_path, tok):
    """A config and cache folder as onedrivefs leaves them: tokens.json
    600 in a 700 folder, a cache with a database and its WAL."""
    cfg = tmp_path / "config" / "onedrivefs"
    cache = tmp_path / "cache" / "onedrivefs"
    cfg.mkdir(parents=True, mode=0o700)
    cache.mkdir(parents=True, mode=0o700)
    os.chmod(cfg, 0o700)
    tokens = cfg / "tokens.json"
    tokens.write_text(json.dumps({"access_token": tok["access_token"], "refresh_token": tok["refresh_token"]}))
    tokens.chmod(0o600)
    (cfg / "config").write_text("client_id = %s\n" % FakeGraph.CLIENT_ID)
    (cache / "meta.db").write_bytes(b"SQLite format 3\0" + bytes(4096))
    (cache / "meta.db-wal").write_bytes(bytes(range(256)) * 64)
    return cfg, cache


def assert_no_secret_text(problems, secrets):
    for p in problems:
        for s in secrets:
            if len(s) >= helpers.SECRET_MIN_LEN:
                assert s not in p and s[-24:] not in p, "a problem prints a secret: %s" % p[:60]


def test_issued_secrets_lists_every_credential(fake):
    fake.server.register_client(APP_ID, public=False, secret=APP_SECRET)
    tok = fake.server.issue_tokens()
    body = urllib.parse.urlencode({"client_id": fake.client_id, "scope": FakeGraph.DEFAULT_SCOPE}).encode()
    with urllib.request.urlopen(fake.auth_url + "/common/oauth2/v2.0/devicecode", body, timeout=10) as r:
        device_code = json.loads(r.read())["device_code"]
    secrets = fake.server.issued_secrets()
    assert secrets[tok["access_token"]] == "access token"
    assert secrets[tok["refresh_token"]] == "refresh token"
    assert secrets[device_code] == "device code"
    assert secrets[APP_SECRET] == "client secret"
    # every fake of start_fake() is scanned by the env teardown
    assert fake.server in conftest.STARTED_FAKES


def test_clean_tree_passes(tmp_path):
    secrets, tok = issued()
    private_env(tmp_path, tok)
    assert helpers.secret_problems(secrets, tmp_path, {"login output": "signed in as fake.user@outlook.com"}) == []


def test_token_planted_in_cache_is_reported(tmp_path):
    secrets, tok = issued()
    _cfg, cache = private_env(tmp_path, tok)
    wal = cache / "meta.db-wal"
    wal.write_bytes(wal.read_bytes() + b"\x00\x17" + tok["refresh_token"].encode() + b"\x00" * 100)
    problems = helpers.secret_problems(secrets, tmp_path)
    assert len(problems) == 1, problems
    assert str(wal) in problems[0] and "refresh token" in problems[0], problems
    assert helpers.secret_label(tok["refresh_token"], "refresh token") in problems[0]
    assert_no_secret_text(problems, secrets)


def test_truncated_token_and_every_kind_are_reported(tmp_path):
    secrets, tok = issued()
    _cfg, cache = private_env(tmp_path, tok)
    at = tok["access_token"]
    # the second half of an access token (a log that cut it), the client secret in a log
    (tmp_path / "daemon-1.log").write_text("onedrivefs: debug: bearer ...%s\n" % at[len(at) // 2 - 20:])
    (cache / "content").mkdir()
    (cache / "content" / "17").write_bytes(b"x" * 10000 + APP_SECRET.encode() + b"y" * 10000)
    problems = helpers.secret_problems(secrets, tmp_path)
    assert len(problems) == 2, problems
    assert any("daemon-1.log" in p and "access token" in p for p in problems), problems
    assert any("content/17" in p and "client secret" in p for p in problems), problems
    assert_no_secret_text(problems, secrets)


def test_captured_output_is_scanned(tmp_path):
    secrets, tok = issued()
    texts = {"captured output 0": "ok\n", "captured output 1": "token: %s\n" % tok["access_token"]}
    problems = helpers.secret_problems(secrets, tmp_path, texts)
    assert problems == ["captured output 1 holds a secret: %s" % helpers.secret_label(tok["access_token"],
                                                                                "access token")]


def test_token_in_a_long_run_of_token_characters(tmp_path):
    """User data made of letters (one run longer than the window search
    handles by slicing) still gets searched."""
    secrets, tok = issued()
    (tmp_path / "big.txt").write_bytes(b"A" * 100000 + tok["refresh_token"].encode() + b"B" * 100000)
    problems = helpers.secret_problems(secrets, tmp_path)
    assert len(problems) == 1 and "refresh token" in problems[0], problems


def test_loose_tokens_json_is_reported(tmp_path):
    secrets, tok = issued()
    cfg, _cache = private_env(tmp_path, tok)
    (cfg / "tokens.json").chmod(0o644)
    os.chmod(cfg, 0o755)
    problems = helpers.secret_problems(secrets, tmp_path)
    assert sorted(problems) == sorted([
        "token file '%s' has mode 644, want 600" % (cfg / "tokens.json"),
        "the folder of token file '%s' has mode 755, want 700" % cfg]), problems


def test_token_file_of_a_profile_is_checked_too(tmp_path):
    secrets, tok = issued()
    prof = tmp_path / "config" / "onedrivefs" / "profiles" / "work"
    prof.mkdir(parents=True)
    os.chmod(prof, 0o700)
    (prof / "tokens.json").write_text(json.dumps(tok))
    (prof / "tokens.json").chmod(0o640)
    problems = helpers.secret_problems(secrets, tmp_path)
    assert problems == ["token file '%s' has mode 640, want 600" % (prof / "tokens.json")], problems


def test_secret_file_is_not_a_leak_but_must_be_private(tmp_path):
    secrets, _tok = issued()
    sf = tmp_path / "app.secret"
    sf.write_text(APP_SECRET + "\n")
    sf.chmod(0o600)
    assert helpers.secret_problems(secrets, tmp_path) == []
    sf.chmod(0o644)
    assert helpers.secret_problems(secrets, tmp_path) == [
        "secret file '%s' has mode 644, want 600" % sf]


def test_big_files_are_skipped(tmp_path, monkeypatch):
    secrets, tok = issued()
    (tmp_path / "huge").write_bytes(b"\0" * 5000 + tok["access_token"].encode())
    assert len(helpers.secret_problems(secrets, tmp_path)) == 1
    monkeypatch.setattr(helpers, "SCAN_MAX_BYTES", 4096)
    assert helpers.secret_problems(secrets, tmp_path) == []


def test_short_secrets_are_ignored(tmp_path):
    (tmp_path / "log").write_text("s3cret\n")
    assert helpers.secret_problems({"s3cret": "client secret"}, tmp_path) == []


def test_env_teardown_scans_a_real_login(fake, env, login):
    """What the env teardown sees after `onedrivefs login`: the tokens it
    stored are known secrets, nothing leaks, and a stray copy is found."""
    secrets = fake.server.issued_secrets()
    stored = env.read_tokens()
    assert secrets.get(stored["access_token"]) == "access token"
    assert secrets.get(stored["refresh_token"]) == "refresh token"
    assert any(k == "device code" for k in secrets.values())
    texts = {"captured output %d" % i: t for i, t in enumerate(env.outputs)}
    assert helpers.secret_problems(secrets, env.base, texts) == []
    stray = env.config_dir / "tokens.json.old"
    stray.write_bytes(env.tokens.read_bytes())
    try:
        problems = helpers.secret_problems(secrets, env.base, texts)
    finally:
        stray.unlink()
    assert sorted(problems) == sorted("'%s' holds a secret: %s" % (stray, helpers.secret_label(stored[k], k.replace("_", " ")))
                                      for k in ("access_token", "refresh_token")), problems
