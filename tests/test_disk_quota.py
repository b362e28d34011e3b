"""Disk quotas: one size-capped volume per user holds their workspace and content folder
(eda_gateway/quotas.py); real server, real kernels under the default isolation."""

import base64
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from eda_gateway.users import user_id
from harness import TOKENS, GatewayServer
from sandbox_helpers import STRICT, wait_for

pytestmark = pytest.mark.e2e  # real servers (tests/conftest.py: tiers)

MIB = 1024 * 1024
QUOTA_MB = 64
API = "/advanced-eda/api"
CONFIG = f"""
c.EDASandbox.max_disk_mb = {QUOTA_MB}
c.EDATelemetry.interval = 0.5
c.EDARateLimiter.max_executions_per_minute = 1000
c.EDARateLimiter.max_concurrent_executions = 10
"""
USERS = dict(TOKENS, dave="dave-token")


def start(tmp, **kwargs) -> GatewayServer:
    srv = GatewayServer(tmp, extra_config=CONFIG, tokens=USERS, **kwargs)
    try:
        return srv.start()
    except RuntimeError:
        if "EDASandbox.max_disk_mb > 0 but" in srv.log() and not STRICT:
            pytest.skip("no loop mounts on this host")
        raise


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("disk")
    # carol's files from before the quota: a folder, a file, a link that must stay a link
    carol = tmp / "root" / user_id("carol")
    (carol / "reports").mkdir(parents=True)
    (carol / "reports" / "q1.txt").write_text("carol's q1")
    os.symlink("/etc/hostname", carol / "hostname-link")
    # dave's do not fit: a sparse file of twice the quota
    dave = tmp / "root" / user_id("dave")
    dave.mkdir()
    with open(dave / "huge.bin", "wb") as f:
        f.truncate(2 * QUOTA_MB * MIB)
    return tmp


@pytest.fixture(scope="module")
def server(tmp):
    srv = start(tmp)
    yield srv
    srv.stop()


def put_file(server, user, path, data: bytes):
    return server.put(f"/api/contents/{path}", user,
                      json={"type": "file", "format": "base64", "content": base64.b64encode(data).decode()})


def read_file(server, user, path) -> bytes:
    r = server.get(f"/api/contents/{path}?format=base64", user)
    assert r.status_code == 200, r.text
    return base64.b64decode(r.json()["content"])


def run(server, user, code):
    kid = server.start_kernel(user)
    client = server.kernel_ws(kid, user)
    try:
        return client.run(code, timeout=90)
    finally:
        client.close()
        server.delete(f"/api/kernels/{kid}", user)


FILL = (
    "import errno\n"
    "try:\n"
    "    with open('fill.bin', 'wb') as f:\n"
    f"        f.write(b'x' * ({QUOTA_MB} + 16) * 2**20)\n"
    "except OSError as e:\n"
    "    print('ERRNO', e.errno)\n"
    "    raise\n"
)


@pytest.fixture(scope="module")
def alice_full(server):
    """alice keeps a file, then a cell writes past her quota."""
    assert put_file(server, "alice", "keep.bin", b"kept " * 1000).status_code == 201
    return run(server, "alice", FILL)


def test_volume_holds_workspace_and_content_folder(server):
    """Kernel cwd and content folder are one filesystem, not the host's; the usable space
    is the quota plus a small overshoot (docs/sandbox.md, Disk)."""
    out = run(server, "bob", "import os, json\nprint(json.dumps([os.getcwd(), os.stat('.').st_dev, os.getuid()]))")
    cwd, kernel_dev, kernel_uid = __import__("json").loads(out.stdout)
    content = server.root_dir / user_id("bob")
    assert cwd == str(server.workspace_root / f"eda_user_{user_id('bob')}")
    assert os.stat(cwd).st_dev == os.stat(content).st_dev != os.stat(server.root_dir).st_dev
    # under the uid layer the volume's folders belong to the kernel's uid, as any content folder does
    assert os.stat(content).st_uid == os.stat(cwd).st_uid == kernel_uid
    info = os.statvfs(content)
    capacity = (info.f_blocks - info.f_bfree + info.f_bavail) * info.f_frsize
    assert QUOTA_MB * MIB <= capacity <= QUOTA_MB * MIB * 1.05, capacity / MIB


def test_cell_writing_past_the_quota_gets_enospc(alice_full):
    assert alice_full.error is not None
    assert "ERRNO 28" in alice_full.stdout
    assert "No space left on device" in alice_full.error["evalue"]


def test_contents_put_past_the_quota_answers_507(server, alice_full):
    r = put_file(server, "alice", "more.bin", b"y" * 4 * MIB)
    assert r.status_code == 507, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert "EDASandbox.max_disk_mb" in r.json()["message"] and f"{QUOTA_MB} MiB" in r.json()["message"]
    # an overwrite that does not fit leaves the old content
    assert put_file(server, "alice", "keep.bin", b"z" * 4 * MIB).status_code == 507
    assert read_file(server, "alice", "keep.bin") == b"kept " * 1000
    assert server.get("/api/contents/more.bin", "alice").status_code == 404


def test_other_users_are_unaffected(server, alice_full):
    assert put_file(server, "bob", "bob.bin", b"b" * 4 * MIB).status_code == 201
    out = run(server, "bob", "open('ten.bin', 'wb').write(b'x' * 10 * 2**20); print('ok')")
    assert out.error is None and out.stdout.strip() == "ok"
    assert read_file(server, "bob", "bob.bin") == b"b" * 4 * MIB


def test_verdict_in_rate_limit_status_and_history(server, alice_full):
    def disk():
        d = server.get(f"{API}/rate-limit-status", "alice").json()["disk"]
        return d if d["full"] and d["last_exceeded_at"] else None

    status = wait_for(disk, timeout=20, what="alice's disk reported full")
    assert status["limit_bytes"] == QUOTA_MB * MIB and status["free_bytes"] < MIB
    assert server.get(f"{API}/rate-limit-status", "bob").json()["disk"]["full"] is False

    def verdicts():
        events = server.get(f"{API}/admin/events?kind=verdict", "alice").json()["events"]
        return [e for e in events if e["reason"] == "DiskQuotaExceeded"]

    found = wait_for(verdicts, timeout=20, what="a DiskQuotaExceeded verdict in alice's history")
    assert {e["user"] for e in found} == {"alice"}
    users = server.get(f"{API}/admin/users", "admin").json()["users"]
    alice = next(u for u in users if u["user"] == "alice")
    assert alice["verdicts"].get("DiskQuotaExceeded", 0) >= 1


def test_existing_files_are_migrated_on_first_use(server):
    assert read_file(server, "carol", "reports/q1.txt") == b"carol's q1"
    folder = server.root_dir / user_id("carol")
    assert os.stat(folder).st_dev != os.stat(server.root_dir).st_dev  # on carol's volume now
    assert os.readlink(folder / "hostname-link") == "/etc/hostname"  # copied as a link, not followed


def test_files_that_do_not_fit_are_refused_and_left_in_place(server):
    r = server.get("/api/contents", "dave")
    assert r.status_code == 507, r.text
    assert "EDASandbox.max_disk_mb" in r.json()["message"]
    huge = server.root_dir / user_id("dave") / "huge.bin"
    assert os.stat(huge).st_size == 2 * QUOTA_MB * MIB
    assert os.stat(huge).st_dev == os.stat(server.root_dir).st_dev  # nothing mounted over it
    assert not (server.disk_root / "images" / f"{user_id('dave')}.img").exists()


def test_restart_reuses_the_volume(server, tmp, alice_full):
    """Last: the module's server stops; a new one mounts the same images again."""
    image = server.disk_root / "images" / f"{user_id('alice')}.img"
    inode = os.stat(image).st_ino
    server.stop()
    assert os.stat(server.root_dir / user_id("alice")).st_dev == os.stat(server.root_dir).st_dev  # unmounted
    again = start(tmp)
    try:
        assert os.stat(image).st_ino == inode
        assert read_file(again, "alice", "keep.bin") == b"kept " * 1000
        assert read_file(again, "carol", "reports/q1.txt") == b"carol's q1"
        # still full: what a kernel wrote is on the volume too
        assert put_file(again, "alice", "more.bin", b"y" * 4 * MIB).status_code == 507
    finally:
        again.stop()


@pytest.fixture
def unprivileged_tmp():
    """A folder the nobody user may write (pytest's tmp folders are root's, 0700)."""
    path = tempfile.mkdtemp(prefix="eda-disk-nobody-")
    os.chmod(path, 0o755)
    os.chown(path, 65534, 65534)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def nobody_server(tmp, **kwargs) -> GatewayServer:
    from pathlib import Path

    command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "jupyter_server"]
    srv = GatewayServer(Path(tmp), extra_config=CONFIG + "c.EDASandbox.enforcement = 'psutil'\n",
                        command=command, env={"HOME": tmp}, **kwargs)
    for path in (tmp, *(os.path.join(tmp, d) for d in os.listdir(tmp))):
        os.chown(path, 65534, 65534)
    return srv


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_not_root_fails_closed_in_multi_user_mode(unprivileged_tmp):
    srv = nobody_server(unprivileged_tmp)
    with pytest.raises(RuntimeError):
        srv.start()
    assert srv.proc.returncode != 0
    assert "EDASandbox.max_disk_mb > 0 but the server does not run as root" in srv.log()


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
def test_not_root_warns_in_single_user_mode(unprivileged_tmp):
    srv = nobody_server(unprivileged_tmp, single_token="owner-token")
    srv.start()
    try:
        assert "no disk quota: EDASandbox.max_disk_mb = 64 but the server does not run as root" in srv.log()
        assert srv.get(f"{API}/rate-limit-status", "owner").json()["disk"] is None
    finally:
        srv.stop()


def test_raising_the_quota_grows_the_volume(tmp_path):
    """An admin raises max_disk_mb: the image grows at its next mount, files kept."""
    from eda_gateway.quotas import DiskQuotas

    why = DiskQuotas.unavailable()
    if why:
        if STRICT:
            pytest.fail(why)
        pytest.skip(why)
    folder = tmp_path / "content"
    limit = {"mb": 32}
    quotas = DiskQuotas(str(tmp_path / "disks"), lambda u: limit["mb"], lambda u: {"content": str(folder)})
    quotas.start()
    try:
        quotas.ensure("erin")
        (folder / "a.txt").write_text("before")
        assert quotas.usage("erin")["free_bytes"] < 33 * MIB
    finally:
        quotas.release_all()
    limit["mb"] = 48
    quotas.start()
    try:
        used = quotas.usage("erin")  # start() mounted the existing volume again
        assert 48 * MIB <= used["used_bytes"] + used["free_bytes"] <= 50 * MIB
        assert (folder / "a.txt").read_text() == "before"
    finally:
        quotas.release_all()
    assert not os.path.ismount(folder)


def quotas_or_skip():
    from eda_gateway.quotas import DiskQuotas

    why = DiskQuotas.unavailable()
    if why:
        if STRICT:
            pytest.fail(why)
        pytest.skip(why)
    return DiskQuotas


def test_a_volume_whose_check_corrects_an_error_still_grows(tmp_path):
    """e2fsck -p exits 1 when it corrected something: the volume is fine and grows."""
    DiskQuotas = quotas_or_skip()
    folder, limit = tmp_path / "content", {"mb": 32}
    quotas = DiskQuotas(str(tmp_path / "disks"), lambda u: limit["mb"], lambda u: {"content": str(folder)})
    quotas.start()
    try:
        quotas.ensure("erin")
        (folder / "a.txt").write_text("before")
    finally:
        quotas.release_all()
    image = quotas.image_of("erin")
    for request in ("set_bg 0 free_blocks_count 17", "set_bg 0 checksum calc"):  # a wrong count: fsck fixes it
        subprocess.run(["debugfs", "-w", "-R", request, image], capture_output=True, check=True)
    limit["mb"] = 48
    quotas.start()
    try:
        used = quotas.usage("erin")
        assert 48 * MIB <= used["used_bytes"] + used["free_bytes"] <= 50 * MIB
        assert (folder / "a.txt").read_text() == "before"
    finally:
        quotas.release_all()


def test_a_volume_that_cannot_be_mounted_answers_503_and_names_no_path(tmp_path):
    from tornado.web import HTTPError

    DiskQuotas = quotas_or_skip()
    quotas = DiskQuotas(str(tmp_path / "disks"), lambda u: 32, lambda u: {"content": str(tmp_path / "c")})
    quotas.start()
    try:
        with open(quotas.image_of("frank"), "wb") as f:  # not a filesystem
            f.write(b"garbage" * 1000)
        with pytest.raises(HTTPError) as refused:
            quotas.ensure("frank")
        assert refused.value.status_code == 503
        assert "could not be mounted" in refused.value.log_message and "/" not in refused.value.log_message
        assert not os.path.ismount(tmp_path / "c")
    finally:
        quotas.release_all()


def loop_devices_of(image) -> list[str]:
    done = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True, check=True)
    return [line.split(":")[0] for line in done.stdout.splitlines()]


def test_a_crashed_servers_mounts_are_released_at_the_next_start(tmp_path):
    """SIGKILL leaves the mounts; the next start detaches them and mounts each image once."""
    import signal

    srv = start(tmp_path)
    assert put_file(srv, "alice", "a.txt", b"before the crash").status_code == 201
    image = srv.disk_root / "images" / f"{user_id('alice')}.img"
    os.killpg(srv.proc.pid, signal.SIGKILL)
    srv.stop()
    folder = srv.root_dir / user_id("alice")
    assert os.path.ismount(folder) and len(loop_devices_of(image)) == 1  # what a crash leaves
    again = start(tmp_path)
    try:
        assert read_file(again, "alice", "a.txt") == b"before the crash"
        assert len(loop_devices_of(image)) == 1  # never two mounts of one ext4 image
    finally:
        again.stop()
    assert not os.path.ismount(folder) and loop_devices_of(image) == []  # nothing stacked, nothing left
    assert "left behind by an earlier server" in again.log()


def test_sigint_without_a_terminal_stops_the_server_with_its_clean_up(tmp_path):
    """How JupyterHub stops services and spawned servers: SIGINT, no terminal. jupyter_server
    leaves SIGINT to Python then (a KeyboardInterrupt ends the process at once); the volumes
    and kernels must still be released as on SIGTERM."""
    import signal

    srv = start(tmp_path)  # stdin is not a terminal (subprocess)
    assert put_file(srv, "alice", "a.txt", b"kept").status_code == 201
    image = srv.disk_root / "images" / f"{user_id('alice')}.img"
    folder = srv.root_dir / user_id("alice")
    assert os.path.ismount(folder)
    srv.proc.send_signal(signal.SIGINT)
    srv.proc.wait(30)
    srv.stop()
    assert not os.path.ismount(folder) and loop_devices_of(image) == [], srv.log()[-2000:]
    assert "received signal" in srv.log()
