"""Two servers on one host (eda_gateway/claims.py): a second server pointed at the first one's
workspace root or history database refuses to start, naming the owner; the first one's
workspaces stay where they are; once the first stops, its folders may be taken over."""

import os
import signal

import pytest

from harness import GatewayServer
from eda_gateway.workspaces import LOCK_NAME, Workspaces

pytestmark = pytest.mark.e2e  # real servers (tests/conftest.py: tiers)

NO_DISK = "c.EDASandbox.max_disk_mb = 0\n"


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    srv = GatewayServer(tmp_path_factory.mktemp("first"), extra_config=NO_DISK)
    yield srv.start()
    srv.stop()


@pytest.fixture(scope="module")
def alice_workspace(first):
    kernel = first.start_kernel("alice")
    workspace = Workspaces(str(first.workspace_root)).path_for("alice")
    assert os.path.isdir(workspace)
    keep = os.path.join(workspace, "keep.txt")
    with open(keep, "w") as f:
        f.write("alice's")
    yield keep
    first.delete(f"/api/kernels/{kernel}")


def second_refuses(tmp, settings: str) -> str:
    srv = GatewayServer(tmp, extra_config=NO_DISK + settings)
    try:
        srv.start()
    except RuntimeError:
        assert srv.proc.returncode not in (0, None)
        return srv.log()
    srv.stop()
    raise AssertionError("the second server started on the first one's state")


def test_second_server_on_the_same_workspace_root_refuses(first, alice_workspace, tmp_path):
    log = second_refuses(tmp_path, f"c.EDAGateway.workspace_root = {str(first.workspace_root)!r}\n"
                                   f"c.EDAGateway.history_db = {str(first.history_db)!r}\n")
    assert "EDAGateway.workspace_root" in log and "in use by another running server" in log, log
    assert f"pid {first.proc.pid}" in log, log
    with open(alice_workspace) as f:
        assert f.read() == "alice's"  # not moved aside, not cleaned
    assert sorted(os.listdir(first.workspace_root)) == [LOCK_NAME, "eda_user_alice"]
    assert first.get("/api/kernels", "alice").json()  # the first server serves on


def test_second_server_on_the_same_history_refuses(first, tmp_path):
    log = second_refuses(tmp_path, f"c.EDAGateway.history_db = {str(first.history_db)!r}\n")
    assert "EDAGateway.history_db" in log and f"pid {first.proc.pid}" in log, log


def test_the_claim_ends_with_its_server(tmp_path):
    a = GatewayServer(tmp_path / "a", extra_config=NO_DISK).start()
    shared = (f"c.EDAGateway.workspace_root = {str(a.workspace_root)!r}\n"
              f"c.EDAGateway.history_db = {str(a.history_db)!r}\n")
    os.killpg(a.proc.pid, signal.SIGKILL)  # no clean-up: its lock file stays, naming a dead pid
    a.stop()
    b = GatewayServer(tmp_path / "b", extra_config=NO_DISK + shared).start()
    try:
        assert b.get("/api/status").status_code == 200
    finally:
        b.stop()


def test_a_lock_file_planted_as_a_symlink_is_refused(tmp_path):
    from eda_gateway.claims import Claim, Claimed

    target = tmp_path / "elsewhere"
    target.write_text("precious")
    (tmp_path / LOCK_NAME).symlink_to(target)
    with pytest.raises(Claimed, match="symlink"):
        Claim(str(tmp_path / LOCK_NAME), "EDAGateway.workspace_root").take({"pid": os.getpid()})
    assert target.read_text() == "precious"


def test_a_held_claim_names_its_owner(tmp_path):
    from eda_gateway.claims import Claim, Claimed

    lock = str(tmp_path / LOCK_NAME)
    first = Claim(lock, "EDAGateway.workspace_root")
    first.take({"pid": 4242, "started": 0, "port": 8888})
    try:
        with pytest.raises(Claimed, match="pid 4242, started .*, port 8888"):
            Claim(lock, "EDAGateway.workspace_root").take({"pid": os.getpid()})
    finally:
        first.release()
    Claim(lock, "EDAGateway.workspace_root").take({"pid": os.getpid()})  # free once released


def test_two_single_user_labs_of_one_person_may_share(first, tmp_path):
    """A personal server (jupyter_server's own token): two labs of the same person on the
    default folders is an everyday thing, not a neighbour to keep out."""
    lab = GatewayServer(tmp_path, single_token="personal-lab-token-0123", extra_config=NO_DISK
                        + f"c.EDAGateway.workspace_root = {str(first.workspace_root)!r}\n"
                        + f"c.EDAGateway.history_db = {str(first.history_db)!r}\n").start()
    try:
        assert "single-user mode: shared with another server" in lab.log()
        assert lab.get("/api/status").status_code == 200
    finally:
        lab.stop()
    assert first.get("/api/kernels", "alice").status_code == 200
