"""Every Jupyter client keeps working: default login, gateway mode, configured managers.

Installing eda_gateway enables it for every server in the environment, so a plain
``jupyter lab`` (one token, jupyter_server's own login) and a server in gateway
mode must work as they did, plus the limits.
"""

from __future__ import annotations

import asyncio
import getpass
import threading

import pytest
import requests

from harness import GatewayServer, start_failure

pytestmark = pytest.mark.e2e  # real servers (tests/conftest.py: tiers)

TOKEN = "personal-token-0123456789"


def test_default_login_is_one_stable_owner_who_may_do_everything(tmp_path):
    """Token-only requests (no cookies kept), as scripts, CI jobs and agents send them."""
    srv = GatewayServer(tmp_path, single_token=TOKEN).start()
    try:
        me = srv.get("/api/me").json()["identity"]["username"]
        assert me == getpass.getuser()
        assert f"single-user mode: every authenticated request is {me!r}" in srv.log()

        kid = srv.start_kernel()
        assert srv.get(f"/api/kernels/{kid}").status_code == 200
        assert [k["id"] for k in srv.get("/api/kernels").json()] == [kid]
        kc = srv.kernel_ws(kid)
        try:
            # the owner's kernel may write the owner's files (a uid of its own could not)
            assert kc.run(f"open({str(srv.root_dir)!r} + '/made-by-kernel.txt', 'w').write('k')").reply["status"] == "ok"
        finally:
            kc.close()
        # files land where a plain server puts them: root_dir itself, no folder per request
        body = {"type": "file", "format": "text", "content": "hello"}
        assert srv.put("/api/contents/notes.txt", json=body).status_code == 201
        assert srv.get("/api/contents/notes.txt").json()["content"] == "hello"
        assert srv.get("/api/contents/made-by-kernel.txt").json()["content"] == "k"
        assert sorted(p.name for p in srv.root_dir.iterdir()) == ["made-by-kernel.txt", "notes.txt"]
        # the owner has a plain server's rights: terminals, and the limits' status
        assert srv.post("/api/terminals").status_code == 200
        assert srv.get("/advanced-eda/api/rate-limit-status").json()["user"] == me
        assert srv.delete(f"/api/kernels/{kid}").status_code == 204
        assert srv.get("/api/kernels").json() == []
        # a client that goes through a session (JupyterLab, nbclient) finds its kernel again
        r = srv.post("/api/sessions", json={"path": "a.ipynb", "type": "notebook", "name": "",
                                            "kernel": {"name": "python3"}})
        assert r.status_code == 201, r.text
        session_kernel = r.json()["kernel"]["id"]
        assert srv.get("/api/sessions").json()[0]["kernel"]["id"] == session_kernel
        assert srv.get(f"/api/kernels/{session_kernel}").status_code == 200
        assert srv.delete(f"/api/sessions/{r.json()['id']}").status_code == 204
        # a wrong token is still refused
        assert requests.get(f"{srv.base_url}/api/kernels", headers={"Authorization": "token nope"}).status_code == 403
    finally:
        srv.stop()


def test_the_single_owner_can_be_named_and_multi_user_mode_forced(tmp_path):
    named = GatewayServer(tmp_path / "named", single_token=TOKEN,
                          extra_config="c.EDAGateway.single_user_name = 'ana'\n").start()
    try:
        assert named.get("/api/me").json()["identity"]["username"] == "ana"
        kid = named.start_kernel()
        kc = named.kernel_ws(kid)
        try:
            assert kc.run("import os; os.environ['EDA_USER']").result == "'ana'"
        finally:
            kc.close()
    finally:
        named.stop()
    forced = GatewayServer(tmp_path / "forced", single_token=TOKEN,
                           extra_config="c.EDAGateway.identity_mode = 'multi-user'\n").start()
    try:
        assert "multi-user mode: EDAGateway.identity_mode is 'multi-user'" in forced.log()
        kid = forced.start_kernel()
        # every token-only request is a new anonymous user there, as the mode says
        assert forced.get(f"/api/kernels/{kid}").status_code == 403
    finally:
        forced.stop()


def test_gateway_mode_steps_aside_and_kernels_run_on_the_gateway(tmp_path):
    """A server whose kernels live on a remote gateway (here: an eda_gateway server)."""
    remote = GatewayServer(tmp_path / "remote").start()
    local = GatewayServer(tmp_path / "local", single_token=TOKEN, extra_config=(
        f"c.GatewayClient.url = {remote.base_url!r}\n"
        f"c.GatewayClient.auth_token = {remote.tokens['alice']!r}\n"
    )).start()
    try:
        assert "eda_gateway: inactive: this server runs its kernels on a remote gateway" in local.log()
        kid = local.start_kernel()
        # the kernel is alice's, on the remote server, under its limits
        assert [k["id"] for k in remote.get("/api/kernels", "alice").json()] == [kid]
        assert remote.get(f"/api/kernels/{kid}", "bob").status_code == 403
        kc = local.kernel_ws(kid)
        try:
            assert kc.run("import os; os.environ['EDA_USER']").result == "'alice'"
        finally:
            kc.close()
        r = local.get("/advanced-eda/api/rate-limit-status")
        assert (r.status_code, r.json()["error"]) == (503, "inactive")
        assert local.delete(f"/api/kernels/{kid}").status_code == 204
        assert remote.get("/api/kernels", "alice").json() == []
    finally:
        local.stop()
        remote.stop()


def test_configured_managers_are_composed_with(tmp_path):
    srv = GatewayServer(tmp_path, extra_config=(
        "from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager\n"
        "class CountingKernelManager(AsyncMappingKernelManager):\n"
        "    async def start_kernel(self, **kwargs):\n"
        "        kid = await super().start_kernel(**kwargs)\n"
        "        open(self.root_dir + '/../starts.log', 'a').write(kid + '\\n')\n"
        "        return kid\n"
        "c.ServerApp.kernel_manager_class = CountingKernelManager\n"
        "c.ServerApp.contents_manager_class = "
        "'jupyter_server.services.contents.largefilemanager.AsyncLargeFileManager'\n"
    )).start()
    try:
        kid = srv.start_kernel("alice")
        assert (srv.tmp / "starts.log").read_text().split() == [kid]  # the admin's class ran
        assert srv.get(f"/api/kernels/{kid}", "bob").status_code == 403  # ...and ours: ownership
        assert srv.put("/api/contents/mine.txt", "alice", json={"type": "file", "format": "text",
                                                                 "content": "x"}).status_code == 201
        assert not (srv.root_dir / "mine.txt").exists()  # per-user folders kept
        assert srv.get("/api/contents/mine.txt", "bob").status_code == 404
    finally:
        srv.stop()


def test_a_configured_class_that_cannot_carry_the_protection_stops_startup_naming_it(tmp_path):
    code, log = start_failure(tmp_path / "km", (
        "from jupyter_server.services.kernels.kernelmanager import MappingKernelManager\n"
        "class OldSyncKernelManager(MappingKernelManager): pass\n"
        "c.ServerApp.kernel_manager_class = OldSyncKernelManager\n"
    ))
    assert code != 0
    assert "ServerApp.kernel_manager_class = " in log and "OldSyncKernelManager cannot carry" in log
    assert "derive it from jupyter_server.services.kernels.kernelmanager.AsyncMappingKernelManager" in log
    code, log = start_failure(tmp_path / "ws", (
        "from jupyter_server.services.kernels.connection.base import BaseKernelWebsocketConnection\n"
        "class Mine(BaseKernelWebsocketConnection): pass\n"
        "c.ServerApp.kernel_websocket_connection_class = Mine\n"
    ))
    assert code != 0 and "ServerApp.kernel_websocket_connection_class" in log and "admission" in log


def test_stop_extension_is_safe_after_any_partial_start():
    from eda_gateway.app import EDAGateway

    errors = []

    def stop():  # in a thread of its own: the test process may already run an event loop
        try:
            asyncio.run(EDAGateway().stop_extension())  # nothing was started: nothing to undo
        except Exception as e:
            errors.append(e)

    thread = threading.Thread(target=stop)
    thread.start()
    thread.join(30)
    assert errors == []
