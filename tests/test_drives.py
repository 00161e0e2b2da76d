"""Every kind of drive: a drive by id with application permissions
(client credentials), a SharePoint document library, folders shared with
the user and added to their OneDrive (remoteItem shortcuts), and
`onedrivefs drives`.
"""

import errno
import os
import re
import time

import pytest

from conftest import do_login
from helpers import wait_until

APP_ID = "00000000-0000-0000-0000-0000000000d1"
APP_SECRET = "app-secret-value-123"


def secret_file(tmp_path, value=APP_SECRET, mode=0o600):
    p = tmp_path / "app.secret"
    p.write_text(value + "\n")
    p.chmod(mode)
    return p


def app_opts(fake, tmp_path, **extra):
    o = {"auth": "client_credentials", "tenant": fake.server.tenant.id, "client_id": APP_ID,
         "client_secret_file": str(secret_file(tmp_path))}
    o.update(extra)
    return o


def on_server(fake, path, drive=None):
    """The bytes of path on the fake (None while it does not exist)."""
    try:
        data = fake.server.content(path, drive=drive)
    except KeyError:
        return None
    return bytes(data.to_bytes() if hasattr(data, "to_bytes") else data)


# Folders on another drive are not in the mounted drive's delta (graph-notes
# quirk 25): fs.c lists them again after dir_ttl even while delta runs
# (graph_id_is_remote()), so the shortcut tests mount with delta on.
SHORTCUT_OPTS = {"dir_ttl": "1"}


# ------------------------------------------------------ client credentials
@pytest.mark.valgrind
def test_client_credentials_mount_by_drive_id(business_fake, env, business_mounter, tmp_path):
    fake = business_fake
    fake.server.register_client(APP_ID, public=False, secret=APP_SECRET, roles=["Files.ReadWrite.All"])
    fake.seed([{"path": "Reports/q3.txt", "content": "app-only read"}])
    m = business_mounter.mount(opts=app_opts(fake, tmp_path, drive_id=fake.server.drive_id))
    with open(m.p("Reports/q3.txt")) as f:
        assert f.read() == "app-only read"
    with open(m.p("Reports/new.txt"), "w") as f:
        f.write("written by the app")
    wait_until(lambda: on_server(fake, "/Reports/new.txt") == b"written by the app", 30,
               "the upload of Reports/new.txt")
    m.stop()
    # app-only: nothing was stored, the secret never reached the log
    assert not env.tokens.exists()
    assert APP_SECRET not in m.stderr_text()


def test_client_credentials_token_renewed_before_expiry(business_fake, env, business_mounter, tmp_path):
    fake = business_fake
    fake.server.register_client(APP_ID, public=False, secret=APP_SECRET, roles=["Files.Read.All"])
    fake.config(access_token_lifetime=4)
    fake.seed([{"path": "a.txt", "content": "one"}, {"path": "b.txt", "content": "two"}])
    m = business_mounter.mount(opts=app_opts(fake, tmp_path, drive_id=fake.server.drive_id))
    with open(m.p("a.txt")) as f:
        assert f.read() == "one"
    time.sleep(5)   # past the first token's life: a new one was fetched meanwhile
    with open(m.p("b.txt")) as f:
        assert f.read() == "two"


def test_client_credentials_by_user(business_fake, env, business_mounter, tmp_path):
    fake = business_fake
    fake.server.register_client(APP_ID, public=False, secret=APP_SECRET, roles=["Files.Read.All"])
    fake.seed([{"path": "mine.txt", "content": "by upn"}])
    m = business_mounter.mount(opts=app_opts(fake, tmp_path, user=fake.server.me.email))
    with open(m.p("mine.txt")) as f:
        assert f.read() == "by upn"


def test_client_credentials_needs_a_drive(business_fake, env, tmp_path):
    fake = business_fake
    fake.server.register_client(APP_ID, public=False, secret=APP_SECRET, roles=["Files.Read.All"])
    r = env.run(["-f", "-o", fake.opts(**app_opts(fake, tmp_path)), str(env.mnt)])
    assert r.returncode == 1
    assert "no /me drive" in r.stderr and "drive_id=" in r.stderr, r.stderr


@pytest.mark.valgrind
def test_client_credentials_errors(business_fake, env, tmp_path):
    fake = business_fake
    fake.server.register_client(APP_ID, public=False, secret=APP_SECRET, roles=["Files.Read.All"])
    drive = {"drive_id": fake.server.drive_id}
    # wrong secret
    o = app_opts(fake, tmp_path, **drive)
    o["client_secret_file"] = str(secret_file(tmp_path, "wrong"))
    r = env.run(["-f", "-o", fake.opts(**o), str(env.mnt)])
    assert r.returncode == 1 and "refused the client secret" in r.stderr, r.stderr
    assert "wrong" not in r.stderr.replace("wrong'", "")
    # tenant common
    r = env.run(["-f", "-o", fake.opts(**app_opts(fake, tmp_path, tenant="common", **drive)), str(env.mnt)])
    assert r.returncode == 1 and "needs the tenant id or domain" in r.stderr, r.stderr
    # a secret file others can read
    o = app_opts(fake, tmp_path, **drive)
    os.chmod(o["client_secret_file"], 0o640)
    r = env.run(["-f", "-o", fake.opts(**o), str(env.mnt)])
    assert r.returncode == 1 and "can be read by other users" in r.stderr, r.stderr
    assert APP_SECRET not in r.stderr
    # no secret at all
    o = app_opts(fake, tmp_path, **drive)
    del o["client_secret_file"]
    r = env.run(["-f", "-o", fake.opts(**o), str(env.mnt)])
    assert r.returncode == 1 and "needs client_secret_file" in r.stderr, r.stderr
    # login makes no sense
    r = env.run(["login", "-o", fake.opts(**app_opts(fake, tmp_path, **drive))])
    assert r.returncode == 1 and "nothing to log in to" in r.stderr


# ----------------------------------------------------------------- SharePoint
@pytest.mark.valgrind
def test_sharepoint_library_by_name(business_fake, env, business_mounter):
    fake = business_fake
    fake.server.add_site("/sites/Team", libraries=["Documents", "Team Assets"])
    fake.server.seed(tree=[{"path": "logo.txt", "content": "team assets"}], drive="team/Team Assets")
    fake.server.seed(tree=[{"path": "doc.txt", "content": "team documents"}], drive="team")
    do_login(fake, env)
    site = "%s:/sites/Team" % fake.server.tenant.sharepoint_host
    m = business_mounter.mount(opts={"site": site, "library": "Team Assets"})
    with open(m.p("logo.txt")) as f:
        assert f.read() == "team assets"
    assert "documentLibrary" in m.stderr_text()
    m.stop()
    m = business_mounter.mount(opts={"site": site}, path=env.mnt)   # default library: Documents
    with open(m.p("doc.txt")) as f:
        assert f.read() == "team documents"
    m.stop()

    r = env.run(["-f", "-o", business_fake.opts(site=site, library="Nope"), str(env.mnt)])
    assert r.returncode == 1
    assert "has no document library named 'Nope'" in r.stderr and "'Team Assets'" in r.stderr, r.stderr
    r = env.run(["-f", "-o", business_fake.opts(site="contoso.sharepoint.com:/sites/Missing"), str(env.mnt)])
    assert r.returncode == 1 and "was not found" in r.stderr, r.stderr
    r = env.run(["-f", "-o", business_fake.opts(site=site, drive_id="x"), str(env.mnt)])
    assert r.returncode == 1 and "cannot be combined" in r.stderr


def test_drives_command(business_fake, env):
    fake = business_fake
    fake.server.add_site("/sites/Team", libraries=["Documents", "Team Assets"])
    do_login(fake, env)
    r = env.run(["drives", "-o", fake.opts()])
    assert r.returncode == 0, r.stderr
    assert "-o drive_id=%s" % fake.server.drive_id in r.stdout
    r = env.run(["drives", "-o", fake.opts(site="contoso.sharepoint.com:/sites/Team")])
    assert r.returncode == 0, r.stderr
    assert "Team Assets (documentLibrary)" in r.stdout
    ids = re.findall(r"drive_id=(\S+)", r.stdout)
    assert len(ids) == 2


# ------------------------------------------------------------------ shortcuts
@pytest.mark.valgrind
def test_shared_folder_shortcut_read_write(fake, env, mounter):
    fake.server.add_user("Bob Jones")
    fake.server.seed(tree=[{"path": "Projects/plan.txt", "content": "bob's plan"},
                           {"path": "Projects/Sub/deep.txt", "content": "deep"}], drive="bob")
    fake.server.share("/Projects", owner="bob", role="write")
    # fs_names.c logs EXDEV as an error today; mv's fallback makes it routine
    m = mounter.mount(opts=SHORTCUT_OPTS, expect_errors=[r"cannot move between drives"])
    assert "Projects" in os.listdir(m.path)
    assert os.path.isdir(m.p("Projects"))
    assert sorted(os.listdir(m.p("Projects"))) == ["Sub", "plan.txt"]
    with open(m.p("Projects/plan.txt")) as f:
        assert f.read() == "bob's plan"
    with open(m.p("Projects/Sub/deep.txt")) as f:
        assert f.read() == "deep"
    with open(m.p("Projects/mine.txt"), "w") as f:
        f.write("from the grantee")
    os.mkdir(m.p("Projects/NewDir"))
    assert fake.server.item("/Projects/NewDir", drive="bob") is not None
    wait_until(lambda: on_server(fake, "/Projects/mine.txt", drive="bob") == b"from the grantee", 30,
               "the upload into the shared folder")
    # a change by the owner shows after dir_ttl
    fake.server.seed(tree=[{"path": "Projects/added-by-bob.txt", "content": "hi"}], drive="bob")
    wait_until(lambda: "added-by-bob.txt" in os.listdir(m.p("Projects")), 10, "the owner's new file")
    # moving between drives is refused (mv copies instead)
    with pytest.raises(OSError) as e:
        os.rename(m.p("Projects/plan.txt"), m.p("plan.txt"))
    assert e.value.errno == errno.EXDEV


def test_read_only_share_is_eacces(fake, env, mounter):
    fake.server.add_user("Bob Jones")
    fake.server.seed(tree=[{"path": "Ro/info.txt", "content": "look, don't touch"}], drive="bob")
    fake.server.share("/Ro", owner="bob", role="read")
    m = mounter.mount(opts=SHORTCUT_OPTS, expect_errors=[r"Ro|accessDenied|denied|permission"])
    with open(m.p("Ro/info.txt")) as f:
        assert f.read() == "look, don't touch"
    with pytest.raises(OSError) as e:
        os.mkdir(m.p("Ro/nope"))
    assert e.value.errno == errno.EACCES
    m.stop()
    lines = [l for l in m.stderr_text().splitlines() if "nope" in l]
    assert len(lines) == 1 and "accessDenied" in lines[0], lines
