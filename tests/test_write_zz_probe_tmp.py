import os, sys, time, subprocess
from helpers import *
from test_write_ops import make_mixed_tree
def test_probe(fake, mounter, env):
    m = mounter.mount(debug=True)
    src = env.base / "rs"; src.mkdir()
    files = make_mixed_tree(src)
    for i, rel in enumerate(sorted(files)):
        os.utime(src / rel, ns=(1000000000 * 10**9 + i * 10**9 + 123456789,) * 2)
    subprocess.run(["rsync", "-a", str(src) + "/", m.p("rs") + "/"], check=True)
    wait_landed(fake, {"rs/" + k: v for k, v in files.items()}, timeout=90)
    wait_settled(m.p("rs"))
    d = fake.dump_by_path()
    bad = [rel for rel in files if d["rs/" + rel]["mtime"][:4] != "2001"]
    print("BAD", bad)
    if bad:
        print("\n".join(l for l in m.stderr_text().splitlines() if "a.txt" in l or "PATCH" in l or "PUT" in l)[:6000])
