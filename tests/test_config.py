"""Configuration: bad values stop start-up naming the setting; the headless command works."""

import subprocess
import sys
from pathlib import Path

import pytest

from harness import GatewayServer, start_failure

BAD = [
    ({"EDASandbox": {"max_memory_mb": -1}}, "max_memory_mb"),
    ({"EDASandbox": {"max_execution_time": 0}}, "max_execution_time"),
    ({"EDASandbox": {"enforcement": "magic"}}, "enforcement"),
    ({"EDARateLimiter": {"max_executions_per_minute": -5}}, "max_executions_per_minute"),
    ({"EDARateLimiter": {"max_executions_per_day": -1}}, "max_executions_per_day"),
    ({"EDAGateway": {"max_kernels_per_user": 0}}, "max_kernels_per_user"),
    ({"EDAGateway": {"workspace_root": "relative/dir"}}, "workspace_root"),
    ({"EDAGateway": {"user_limits": {"alice": {"max_memroy_mb": 10}}}}, "max_memroy_mb"),
    ({"EDAGateway": {"user_limits": {"@analysts": {"max_memory_mb": -3}}}}, "user_limits"),
    ({"EDAGateway": {"datasets": {"sales": {"path": "/nonexistent/sales.csv"}}}}, "datasets"),
    ({"EDAIdentityProvider": {"user_tokens": {"eve": "sha256:nothex"}}}, "user_tokens"),
    ({"EDAContentsManager": {"max_read_mb": 0}}, "max_read_mb"),
]


@pytest.mark.parametrize("config, setting", BAD, ids=[s for _, s in BAD])
def test_bad_value_stops_startup_naming_the_setting(refused_start, config, setting):
    assert setting in refused_start(config)


@pytest.mark.e2e
def test_a_bad_value_stops_the_server_process(tmp_path):
    """The process itself exits non-zero, naming the setting (the rest: in process, above)."""
    code, log = start_failure(tmp_path, "c.EDASandbox.max_memory_mb = -1")
    assert code != 0
    assert "max_memory_mb" in log


def test_defaults_match_the_contract():
    from eda_gateway.limits import EDARateLimiter, EDASandbox, Limits

    sandbox, rate = EDASandbox(), EDARateLimiter()
    assert (sandbox.max_execution_time, sandbox.max_memory_mb, sandbox.max_cpu_percent) == (30, 512, 50)
    assert sandbox.enforcement == "auto"
    assert (rate.max_executions_per_minute, rate.max_concurrent_executions, rate.window_seconds) == (10, 2, 60)
    assert Limits().max_kernels_per_user == 4
    assert rate.max_executions_per_day == Limits().max_executions_per_day == 0  # no daily quota


def test_user_and_group_overrides():
    from eda_gateway.limits import LimitPolicy, Limits

    policy = LimitPolicy(
        Limits(),
        {"alice": {"max_memory_mb": 2048}, "@analysts": {"max_executions_per_minute": 30, "max_memory_mb": 1024},
         "@power": {"max_executions_per_minute": 50}},
        {"analysts": ["alice", "bob"], "power": ["bob"]},
    )
    alice, bob, carol = policy.for_user("alice"), policy.for_user("bob"), policy.for_user("carol")
    assert alice.max_memory_mb == 2048 and alice.max_executions_per_minute == 30
    assert bob.max_memory_mb == 1024 and bob.max_executions_per_minute == 50
    assert carol == Limits()


@pytest.mark.e2e
def test_demo_config_loads(tmp_path):
    """The repository's jupyter_config.py is valid: a server starts with it."""
    text = (Path(__file__).parent.parent / "jupyter_config.py").read_text()
    srv = GatewayServer(tmp_path, extra_config=text.replace("c = get_config()", ""))
    srv.start()
    try:
        assert srv.request("GET", "/api/me", None, headers={"Authorization": "token alice-demo-token"}).json()[
            "identity"
        ]["username"] == "alice"
        assert srv.request("GET", "/api/me", None, headers={"Authorization": "token admin-demo-token"}).json()[
            "identity"
        ]["username"] == "admin"
    finally:
        srv.stop()


@pytest.mark.e2e
def test_extension_is_listed_enabled():
    out = subprocess.run(
        [sys.executable, "-m", "jupyter_server", "extension", "list"], capture_output=True, text=True, timeout=60
    )
    text = out.stdout + out.stderr
    assert "eda_gateway" in text and "enabled" in text.split("eda_gateway", 1)[1][:40]


@pytest.mark.e2e
def test_headless_command_serves_kernels(tmp_path):
    command = [str(Path(sys.executable).parent / "jupyter-eda-gateway")]
    srv = GatewayServer(tmp_path, command=command).start()
    try:
        kid = srv.start_kernel("alice")
        client = srv.kernel_ws(kid, "alice")
        assert client.run("21*2").result == "42"
        client.close()
        assert srv.get("/api/kernels", "bob").json() == []
    finally:
        srv.stop()


@pytest.mark.e2e
def test_other_identity_providers_that_name_users_work_unchanged(tmp_path):
    """An identity provider of the deployment's own (JupyterHub's, say) names users:
    eda_gateway owns kernels by those names (multi-user mode)."""
    srv = GatewayServer(tmp_path, extra_config=(
        "from jupyter_server.auth.identity import IdentityProvider, User\n"
        "class NamedByToken(IdentityProvider):\n"
        "    def get_user_token(self, handler):\n"
        "        token = self.get_token(handler) or ''\n"
        "        return User(username=token[:-len('-token')]) if token.endswith('-token') else None\n"
        "c.ServerApp.identity_provider_class = NamedByToken\n"
    ))
    srv.start()
    try:
        assert "multi-user mode: identity provider" in srv.log() and "NamedByToken names users" in srv.log()
        assert srv.get("/api/me", "alice").json()["identity"]["username"] == "alice"
        kid = srv.start_kernel("alice")
        kc = srv.kernel_ws(kid, "alice")
        try:
            assert kc.run("import os; os.environ['EDA_USER']").result == "'alice'"
        finally:
            kc.close()
        assert kid in {k["id"] for k in srv.get("/api/kernels", "alice").json()}
        assert srv.get(f"/api/kernels/{kid}", "bob").status_code == 403
    finally:
        srv.stop()


@pytest.mark.e2e
def test_an_admins_own_websocket_class_built_on_ours_is_used(tmp_path):
    srv = GatewayServer(tmp_path, extra_config=(
        "from eda_gateway.websocket import EDAKernelWebsocketConnection\n"
        "class Mine(EDAKernelWebsocketConnection):\n"
        "    def connect(self):\n"
        "        self.log.info('Mine connects')\n"
        "        return super().connect()\n"
        "c.ServerApp.kernel_websocket_connection_class = Mine\n"
    ))
    srv.start()
    try:
        kc = srv.kernel_ws(srv.start_kernel("alice"), "alice")
        try:
            assert kc.run("1 + 1").result == "2"
        finally:
            kc.close()
        assert "Mine connects" in srv.log()
    finally:
        srv.stop()
