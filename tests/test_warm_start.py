"""Warm start (``EDAGateway.warm_start``): a user who listed datasets has a warm, confined
kernel ready, and their first run on a dataset takes it: the data is loaded there, the
sandbox still confines it, and warm kernels never take a user's last kernel slot."""

from __future__ import annotations

import pytest

from harness import GatewayServer
from sandbox_helpers import wait_for
from test_execute_api import datasets_config

pytestmark = pytest.mark.e2e

API = "/advanced-eda/api"
CONFIG = """
c.EDAGateway.max_kernels_per_user = 3
c.EDASandbox.max_memory_mb = 256
c.EDARateLimiter.max_executions_per_minute = 100
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("warm")
    srv = GatewayServer(tmp, extra_config=datasets_config(tmp) + CONFIG).start()
    yield srv
    srv.stop()


def kernels(srv, user) -> set[str]:
    return {k["id"] for k in srv.get("/api/kernels", user).json()}


def purposes(srv, user) -> tuple[dict, dict]:
    """What the monitor's figures (system-stats, once sampled) and the admin view say each of
    ``user``'s kernels is for: kernel_id -> (dataset, warm), twice."""
    stats = {k["kernel_id"]: (k["dataset"], k["warm"])
             for k in srv.get(f"{API}/system-stats", user).json()["kernels"]}
    [row] = [u for u in srv.get(f"{API}/admin/users", "admin").json()["users"] if u["user"] == user]
    return stats, {k["kernel_id"]: (k["dataset"], k["warm"]) for k in row["kernels"]}


def run(srv, user, dataset, code) -> dict:
    r = srv.post(f"{API}/execute-custom-code/{dataset}", user, json={"code": code})
    assert r.status_code == 200, r.text
    return r.json()


def test_the_first_run_on_a_dataset_takes_the_warm_kernel_with_the_data_loaded(server):
    assert server.get(f"{API}/datasets", "alice").status_code == 200  # listing warms one up
    warm = wait_for(lambda: kernels(server, "alice"), timeout=60, what="alice's warm kernel")
    assert len(warm) == 1
    answer = run(server, "alice", "sales", "import os; (len(df), int(df.amount.sum()), os.environ['EDA_SOURCE_ID'])")
    assert answer["status"] == "ok", answer
    assert answer["kernel_id"] in warm  # no kernel was started for it
    assert answer["outputs"][-1]["data"]["text/plain"] == "(3, 60, 'sales')"
    # the next new dataset finds a warm kernel too, and it is a different one
    wait_for(lambda: len(kernels(server, "alice")) == 2, timeout=60, what="a new warm kernel")
    [second] = kernels(server, "alice") - {answer["kernel_id"]}
    # the monitor can name both: the dataset kernel (whoever ran there: the EDA Runner, an agent) and the warm one
    named = {answer["kernel_id"]: ("sales", False), second: (None, True)}
    wait_for(lambda: purposes(server, "alice") == (named, named), timeout=30,
             what="the next sample naming alice's kernels")
    events = run(server, "alice", "events", "list(df.columns)")
    assert events["status"] == "ok" and events["kernel_id"] != answer["kernel_id"], events
    assert "kind" in events["outputs"][-1]["data"]["text/plain"]


def test_a_warm_kernel_is_confined_like_any(server):
    assert server.get(f"{API}/datasets", "bob").status_code == 200
    warm = wait_for(lambda: kernels(server, "bob"), timeout=60, what="bob's warm kernel")
    bomb = run(server, "bob", "metrics", "x = bytearray(600 * 1024 * 1024); x[::4096] = b'x' * len(x[::4096])")
    assert bomb["kernel_id"] in warm
    assert bomb["status"] == "error" and bomb["error"]["ename"] == "MemoryLimitExceeded", bomb


def test_warm_kernels_never_take_a_users_last_kernel_slots(server):
    """max_kernels_per_user = 3: with two kernels of carol's own, no warm one is started."""
    first, second = server.start_kernel("carol"), server.start_kernel("carol")
    assert server.get(f"{API}/datasets", "carol").status_code == 200
    assert run(server, "carol", "secret", "len(df)")["status"] == "ok"  # a third kernel: carol's own run
    assert len(kernels(server, "carol")) == 3 and {first, second} <= kernels(server, "carol")
    assert "warm kernel" not in "".join(line for line in server.log().splitlines() if "of carol" in line)
