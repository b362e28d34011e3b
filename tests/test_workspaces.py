"""Private workspaces: 0700 folders, TMPDIR/cwd in real kernels, safe ids, clean-up."""

import os
import stat
import subprocess
import sys
import time

import pytest

from eda_gateway.users import InvalidUsername, user_id, username_from_id
from eda_gateway.workspaces import LOCK_NAME, WORKSPACE_PREFIX, Workspaces
from harness import TOKENS, GatewayServer

pytestmark = pytest.mark.e2e  # real servers (tests/conftest.py: tiers)

HOSTILE = ["../x", "a/b", ".hidden", "zoë", "名前", "a_2f", "..", "x y", "-"]


@pytest.mark.parametrize("name", HOSTILE + ["alice", "Bob-1"])
def test_user_id_is_safe_and_reversible(name):
    encoded = user_id(name)
    assert "/" not in encoded and ".." not in encoded and not encoded.startswith(".")
    assert encoded and encoded.isascii()
    assert username_from_id(encoded) == name


def test_user_id_is_collision_free():
    names = HOSTILE + ["alice", "a/b", "a_2fb", "a%2fb", "A", "a"]
    assert len({user_id(n) for n in set(names)}) == len(set(names))


def test_user_id_refuses_empty_and_huge():
    with pytest.raises(InvalidUsername):
        user_id("")
    with pytest.raises(InvalidUsername):
        user_id("é" * 200)
    with pytest.raises(InvalidUsername):
        username_from_id("../x")


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    tokens = dict(TOKENS, **{name: f"tok-{i}" for i, name in enumerate(HOSTILE)})
    srv = GatewayServer(
        tmp_path_factory.mktemp("hostile"),
        tokens=tokens,
        env={"EDA_TEST_MARKER": "from-server-env", "JUPYTER_TOKEN": "server-secret"},
    ).start()
    yield srv
    srv.stop()


def kernel_facts(server, user):
    kid = server.start_kernel(user)
    client = server.kernel_ws(kid, user)
    try:
        out = client.run(
            "import os, tempfile, json\n"
            "print(json.dumps({'cwd': os.getcwd(), 'tmp': tempfile.gettempdir(),\n"
            "  'user': os.environ.get('EDA_USER'), 'marker': os.environ.get('EDA_TEST_MARKER'),\n"
            "  'token': os.environ.get('JUPYTER_TOKEN'), 'path': bool(os.environ.get('PATH'))}))"
        ).stdout
    finally:
        client.close()
        server.delete(f"/api/kernels/{kid}", user)
    import json

    return json.loads(out)


@pytest.mark.parametrize("user", ["alice"] + HOSTILE)
def test_kernel_runs_in_private_workspace(hostile_server, user):
    facts = kernel_facts(hostile_server, user)
    workspace = hostile_server.workspace_root / f"{WORKSPACE_PREFIX}{user_id(user)}"
    assert facts["cwd"] == facts["tmp"] == str(workspace)
    assert facts["user"] == user
    # merged with the server's environment, not replaced; server secrets withheld
    assert facts["marker"] == "from-server-env" and facts["path"]
    assert facts["token"] is None
    info = os.lstat(workspace)
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
    assert workspace.parent == hostile_server.workspace_root


def test_no_workspace_escapes_the_root(hostile_server):
    for entry in hostile_server.workspace_root.iterdir():
        assert entry.name.startswith(WORKSPACE_PREFIX) or entry.name == LOCK_NAME, entry.name
    assert not (hostile_server.tmp / "x").exists()


def age(path, seconds):
    old = time.time() - seconds
    os.utime(path, (old, old), follow_symlinks=False)


def test_cleanup_removes_old_keeps_new_and_does_not_follow_symlinks(tmp_path):
    root = tmp_path / "ws"
    spaces = Workspaces(str(root))
    home = spaces.ensure("alice")
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "precious.txt"
    target.write_text("keep me")
    age(target, 10_000)
    old, new = os.path.join(home, "old.csv"), os.path.join(home, "new.csv")
    for p in (old, new):
        with open(p, "w") as f:
            f.write("x")
    age(old, 10_000)
    os.makedirs(os.path.join(home, "sub"))
    nested = os.path.join(home, "sub", "old.bin")
    open(nested, "w").close()
    age(nested, 10_000)
    link = os.path.join(home, "link")
    os.symlink(target, link)
    age(link, 10_000)
    dir_link = os.path.join(home, "dirlink")
    os.symlink(outside, dir_link)
    age(dir_link, 10_000)
    stray = root / "not_a_workspace.txt"
    stray.write_text("x")
    age(stray, 10_000)

    report = spaces.cleanup(max_age=3600)

    assert not os.path.exists(old) and not os.path.exists(nested)
    assert os.path.exists(new)
    assert not os.path.lexists(link) and not os.path.lexists(dir_link)
    assert target.read_text() == "keep me"
    assert stray.exists()  # only eda_user_* folders are cleaned
    assert os.path.isdir(home)
    assert report.removed_files == 4


def test_server_cleans_workspaces_periodically(make_server):
    srv = make_server("c.EDAGateway.cleanup_interval = 1\nc.EDAGateway.temp_file_max_age = 600\n")
    kid = srv.start_kernel("bob")
    srv.delete(f"/api/kernels/{kid}", "bob")
    home = srv.workspace_root / f"{WORKSPACE_PREFIX}bob"
    old, new = home / "old.tmp", home / "fresh.tmp"
    old.write_text("x")
    new.write_text("y")
    age(old, 3600)
    deadline = time.monotonic() + 30
    while old.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not old.exists()
    assert new.exists()


def test_cleanup_survives_a_folder_swapped_for_a_symlink_while_it_runs(tmp_path):
    """A kernel may swap a sub-folder of its workspace for a link to somewhere else while
    the clean-up (root) walks it: files out there must survive. The swap runs in a loop
    from another process, racing many clean-ups."""
    root = tmp_path / "ws"
    spaces = Workspaces(str(root))
    home = spaces.ensure("alice")
    outside = tmp_path / "outside"
    outside.mkdir()
    for i in range(50):
        (outside / f"precious{i}").write_text("keep me")
        age(outside / f"precious{i}", 10_000)
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, home, str(outside)])
    try:
        while not os.path.lexists(os.path.join(home, "sub")):
            assert swapper.poll() is None
            time.sleep(0.01)
        for _ in range(10_000):
            spaces.cleanup(max_age=3600)
    finally:
        swapper.kill()
        swapper.wait()
    assert sorted(p.name for p in outside.iterdir()) == sorted(f"precious{i}" for i in range(50))


# refills sub/ with old files, then keeps swapping it with a symlink to the outside folder
SWAPPER = r"""
import os, sys
home, outside = sys.argv[1], sys.argv[2]
sub, aside, link = (os.path.join(home, n) for n in ("sub", "aside", "link"))
os.symlink(outside, link)
while True:
    os.makedirs(sub, exist_ok=True)
    for i in range(20):
        p = os.path.join(sub, f"f{i}")
        open(p, "w").close()
        os.utime(p, (1, 1))
    for _ in range(20):
        os.rename(sub, aside)
        os.rename(link, sub)      # sub is now a link to the outside folder
        os.rename(sub, link)
        os.rename(aside, sub)
"""


PLANTED_STARTUP = "PLANTED_BY_ANOTHER_UID = True\n"
WHO_AM_I = "import os\nprint(os.getuid(), 'PLANTED_BY_ANOTHER_UID' in globals())"


def test_a_workspace_planted_by_another_uid_is_moved_aside(make_server):
    """Under the uid layer alone, kernels may write a shared /tmp: alice's kernel could
    make bob's workspace first, with an IPython startup file in it, as alice's uid."""
    srv = make_server()
    isolation = srv.get("/advanced-eda/api/system-stats", "admin").json()["isolation"]
    assert "uid" in isolation, isolation  # auto, on this host (root)
    alice_kid = srv.start_kernel("alice")
    client = srv.kernel_ws(alice_kid, "alice")
    alice_uid = int(client.run(WHO_AM_I).stdout.split()[0])
    client.close()
    # what alice's kernel could do where /tmp is writable to it (done here as root)
    bobs = srv.workspace_root / (WORKSPACE_PREFIX + "bob")
    startup = bobs / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-planted.py").write_text(PLANTED_STARTUP)
    for path in (bobs, *bobs.rglob("*")):
        os.chown(path, alice_uid, alice_uid)
        os.chmod(path, 0o777 if path.is_dir() else 0o666)  # writable: IPython would use it

    bob_kid = srv.start_kernel("bob")
    client = srv.kernel_ws(bob_kid, "bob")
    bob_uid, planted = client.run(WHO_AM_I).stdout.split()
    client.close()
    assert planted == "False" and int(bob_uid) != alice_uid
    assert not (startup / "00-planted.py").exists()  # bob's kernel made its own .ipython
    assert [p.name for p in srv.workspace_root.glob(WORKSPACE_PREFIX + "bob.foreign-*")]
    assert "belonged to another uid" in srv.log()
