"""One budget across servers: two real eda_gateway servers on one real Redis
(``EDARateLimiter.store_url``), users' kernels on both, executions over real websockets."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from harness import GatewayServer
from redis_harness import RedisServer
from sandbox_helpers import wait_for

pytestmark = pytest.mark.e2e

LEASE_TTL = 3
CONFIG = """
c.EDARateLimiter.store_url = {url!r}
c.EDARateLimiter.lease_ttl = {ttl}
c.EDARateLimiter.max_executions_per_minute = 10
c.EDARateLimiter.max_concurrent_executions = 2
c.EDARateLimiter.refusal_flood_slow_after = 100  # every refusal answered at once
c.EDAGateway.user_limits = {{"bob": {{"max_concurrent_executions": 1}}, "carol": {{"max_concurrent_executions": 1}}}}
c.EDASandbox.max_execution_time = 120
c.EDASandbox.max_disk_mb = 0  # a SIGKILLed server could not unmount its users' volumes
c.EDAGateway.heartbeat_interval = 1
c.EDATelemetry.interval = 0.5
"""
SLEEP = "import time; time.sleep(100)"


def pair(tmp, url):
    return [GatewayServer(tmp / name, extra_config=CONFIG.format(url=url, ttl=LEASE_TTL)).start()
            for name in ("a", "b")]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def servers(tmp_path_factory, redis_server):
    both = pair(tmp_path_factory.mktemp("servers"), redis_server.url)
    yield both
    for srv in both:
        srv.stop()


def ename(execution) -> str | None:
    return execution.error["ename"] if execution.error else None


def test_sixty_executions_at_once_half_on_each_server_admit_exactly_the_limit(servers):
    clients = [srv.kernel_ws(srv.start_kernel("alice"), "alice") for srv in servers]
    try:
        sent = {client: [client.execute("1") for _ in range(30)] for client in clients}
        outcomes = [ename_of(messages) for client, ids in sent.items() for messages in collect_all(client, ids)]
    finally:
        for client in clients:
            client.close()
    assert outcomes.count(None) == 10, outcomes
    assert outcomes.count("RateLimitExceeded") == 50
    for srv in servers:  # each server shows the one budget
        assert srv.get("/advanced-eda/api/rate-limit-status", "alice").json()["executions_in_window"] == 10


def ename_of(messages) -> str | None:
    errors = [m for m in messages if (m.get("msg_type") or m["header"]["msg_type"]) == "error"]
    return errors[0]["content"]["ename"] if errors else None


def collect_all(client, msg_ids, timeout: float = 60) -> list[list[dict]]:
    """The messages of each of ``msg_ids`` (sent at once), until each has its reply and idle."""
    got = {msg_id: [] for msg_id in msg_ids}
    done: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(done) < len(got):
        msg = client.recv(max(0.1, deadline - time.monotonic()))
        parent = msg.get("parent_header", {}).get("msg_id")
        if parent not in got:
            continue
        got[parent].append(msg)
        types = {m.get("msg_type") or m["header"]["msg_type"] for m in got[parent]}
        idle = any(m["content"].get("execution_state") == "idle" for m in got[parent]
                   if (m.get("msg_type") or m["header"]["msg_type"]) == "status")
        if "execute_reply" in types and idle:
            done.add(parent)
    return [got[msg_id] for msg_id in msg_ids]


def admitted(client, code):
    """``code``'s execution if it was admitted (None if refused): for wait_for."""
    execution = client.run(code)
    return execution if ename(execution) is None else None


def test_the_concurrency_limit_holds_across_servers_while_its_lease_is_renewed(servers):
    a, b = servers
    on_a = a.kernel_ws(a.start_kernel("bob"), "bob")
    kernel_b = b.start_kernel("bob")
    on_b = b.kernel_ws(kernel_b, "bob")
    try:
        on_a.execute(SLEEP)
        wait_for(lambda: b.get("/advanced-eda/api/rate-limit-status", "bob").json()["concurrent_executions"] == 1,
                 timeout=20, what="bob's execution on a counted on b")
        time.sleep(LEASE_TTL + 1)  # past one lease_ttl: a renews the lease while its execution runs
        refused = on_b.run("2")
        assert ename(refused) == "RateLimitExceeded" and "Concurrency" in refused.error["evalue"]
        for kernel in a.get("/api/kernels", "bob").json():
            assert a.post(f"/api/kernels/{kernel['id']}/interrupt", "bob").status_code == 204
        ran = wait_for(lambda: admitted(on_b, "3"), timeout=20, interval=0.3,
                       what="b admits once a's execution ended")
        assert ran.result == "3"
    finally:
        on_a.close()
        on_b.close()


def test_a_killed_server_gives_its_leases_back_within_the_lease_ttl(tmp_path, redis_server):
    a, b = pair(tmp_path, redis_server.url)
    try:
        on_a = a.kernel_ws(a.start_kernel("carol"), "carol")
        on_a.execute(SLEEP)
        on_b = b.kernel_ws(b.start_kernel("carol"), "carol")
        wait_for(lambda: ename(on_b.run("1")) == "RateLimitExceeded", timeout=20, interval=0.3,
                 what="b refuses carol while a runs her execution")
        os.killpg(a.proc.pid, signal.SIGKILL)  # no clean-up, no release: only the expiry is left
        killed_at = time.monotonic()
        wait_for(lambda: ename(on_b.run("4")) is None, timeout=LEASE_TTL + 20, interval=0.3,
                 what="b admits once a's lease expired")
        assert time.monotonic() - killed_at < LEASE_TTL + 20
        on_b.close()
    finally:
        a.stop()
        b.stop()


def test_redis_down_refuses_with_admission_unavailable_then_resumes_without_a_restart(tmp_path):
    redis_server = RedisServer(tmp_path).start()
    (tmp_path / "nums.csv").write_text("n\n1\n2\n")
    dataset = f'c.EDAGateway.datasets = {{"nums": {{"path": "{tmp_path / "nums.csv"}", "users": ["alice"]}}}}\n'
    srv = GatewayServer(tmp_path / "srv", extra_config=CONFIG.format(url=redis_server.url, ttl=LEASE_TTL)
                        + dataset).start()
    try:
        client = srv.kernel_ws(srv.start_kernel("alice"), "alice")
        assert client.run("1 + 1").result == "2"
        redis_server.stop()
        refused = client.run("2 + 2")
        assert ename(refused) == "AdmissionUnavailable", refused.messages
        assert "Try again in" in refused.error["evalue"]
        # the REST execution API: a 503 with Retry-After and a JSON message, as openapi.json says
        rest = srv.post("/advanced-eda/api/execute-custom-code/nums", "alice", json={"code": "1"})
        assert rest.status_code == 503, (rest.status_code, rest.text)
        assert rest.json()["error"] == "admission_unavailable" and rest.json()["message"], rest.text
        assert int(rest.headers["Retry-After"]) >= 1
        status = srv.get("/advanced-eda/api/rate-limit-status", "alice")
        assert status.status_code == 503 and status.json()["error"] == "admission_unavailable"
        assert int(status.headers["Retry-After"]) >= 1
        assert srv.get("/advanced-eda/api/system-stats", "alice").status_code == 200  # the rest still works
        metrics = srv.get("/metrics", "admin").text
        assert "eda_gateway_admission_store_up 0.0" in metrics
        assert 'eda_gateway_executions_refused_total{reason="unavailable"}' in metrics
        redis_server = RedisServer(tmp_path, port=redis_server.port).start()
        resumed = wait_for(lambda: admitted(client, "3 + 3"), timeout=30, interval=0.5,
                           what="executions resume once Redis is back")
        assert resumed.result == "6"
        assert "eda_gateway_admission_store_up 1.0" in srv.get("/metrics", "admin").text
        assert "the admission store is out of reach" in srv.log() and "the admission store is back" in srv.log()
        client.close()
    finally:
        srv.stop()
        redis_server.stop()


def test_an_admin_sees_every_servers_kernels_each_with_its_server(tmp_path, redis_server):
    a, b = pair(tmp_path, redis_server.url)
    try:
        kernel = b.start_kernel("alice")

        def b_seen_from_a():
            beats = {s["server"]: s for s in a.get("/advanced-eda/api/admin/users", "admin").json().get("servers", [])}
            on_b = [s for s in beats.values() if any(k["kernel_id"] == kernel for k in s["kernels"])]
            return (beats, on_b[0]) if on_b else None

        beats, on_b = wait_for(b_seen_from_a, timeout=30, interval=0.3, what="b's kernel in a's admin view")
        assert on_b["url"].startswith(b.base_url) and not on_b["this_server"]
        assert on_b["server"] == f"{socket.gethostname()}:{b.port}"  # EDAGateway.server_name's default
        assert [k["user"] for k in on_b["kernels"] if k["kernel_id"] == kernel] == ["alice"]
        assert sum(s["this_server"] for s in beats.values()) == 1
        assert a.get("/advanced-eda/api/admin/users", "alice").status_code == 403
        b.stop()  # a stopped server leaves the view at once

        def names():
            return {s["server"] for s in a.get("/advanced-eda/api/admin/users", "admin").json()["servers"]}

        wait_for(lambda: on_b["server"] not in names(), timeout=20, what="b gone from a's admin view")
    finally:
        a.stop()
        b.stop()
