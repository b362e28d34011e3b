"""system-stats and /metrics, read from the one background sampler's snapshot."""

from __future__ import annotations

import re
import time

import pytest

from sandbox_helpers import BACKENDS, kernel_pid, start_confined, wait_for

STATS = "/advanced-eda/api/system-stats"
EXTRA = """
c.EDAGateway.user_limits = {"carol": {"max_execution_time": 30, "max_memory_mb": 256},
                            "bob": {"max_executions_per_minute": 2, "window_seconds": 3600}}
"""


@pytest.fixture(scope="module", params=BACKENDS)
def observed(request, tmp_path_factory):
    srv = start_confined(tmp_path_factory.mktemp(f"telemetry-{request.param}"), request.param, EXTRA)
    yield srv
    srv.stop()


def stats(srv, user):
    r = srv.get(STATS, user)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def kernel_in_stats(srv, user, kid, **want):
    def find():
        for k in stats(srv, user)["kernels"]:
            if k["kernel_id"] == kid and all(k[key] == value for key, value in want.items()):
                return k
        return None

    return wait_for(find, timeout=20, what=f"kernel {kid} {want} in system-stats")


@pytest.mark.e2e
def test_system_stats_has_the_contract_shape(observed):
    kid = observed.start_kernel("alice")
    kernel = kernel_in_stats(observed, "alice", kid)
    body = stats(observed, "alice")
    # openapi.json's fields, plus "isolation" and "isolation_warning" (docs/isolation.md)
    assert set(body) - {"isolation", "isolation_warning"} == {
        "cpu", "memory", "active_users", "active_kernels", "active_executions",
        "enforcement", "sampled_at", "kernels",
    }
    assert set(body["cpu"]) == {"percent", "count"} and body["cpu"]["count"] >= 1
    assert set(body["memory"]) == {"total", "used", "available", "percent"}
    assert body["memory"]["total"] > body["memory"]["available"] > 0
    assert body["enforcement"] in ("cgroup-v1", "cgroup-v2", "psutil")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["sampled_at"])
    assert set(kernel) == {"kernel_id", "user", "pid", "memory_bytes", "cpu_percent", "execution_state", "limits",
                           "dataset", "warm"}
    assert (kernel["dataset"], kernel["warm"]) == (None, False)  # a notebook's kernel
    assert kernel["user"] == "alice" and kernel["pid"] == kernel_pid(observed, kid)
    assert kernel["limits"] == {"memory_bytes": 128 << 20, "cpu_percent": 40.0, "execution_seconds": 3.0}
    assert kernel["execution_state"] in ("idle", "starting", "busy")
    assert observed.delete(f"/api/kernels/{kid}", "alice").status_code == 204


@pytest.mark.e2e
def test_users_see_their_own_kernels_and_admins_all(observed):
    mine = observed.start_kernel("alice")
    theirs = observed.start_kernel("bob")
    kernel_in_stats(observed, "admin", mine)
    kernel_in_stats(observed, "admin", theirs)
    alice = stats(observed, "alice")
    assert {k["user"] for k in alice["kernels"]} == {"alice"}
    assert {k["kernel_id"] for k in alice["kernels"]} == {mine}
    assert {k["kernel_id"] for k in stats(observed, "bob")["kernels"]} == {theirs}
    assert stats(observed, "carol")["kernels"] == []
    admin = stats(observed, "admin")
    assert {mine, theirs} <= {k["kernel_id"] for k in admin["kernels"]}
    assert admin["active_kernels"] >= 2 and admin["active_users"] >= 2
    for kid, user in ((mine, "alice"), (theirs, "bob")):
        assert observed.delete(f"/api/kernels/{kid}", user).status_code == 204


@pytest.mark.e2e
def test_anonymous_callers_get_json_refusals(observed):
    r = observed.get(STATS, None)
    assert r.status_code in (401, 403)
    assert r.headers["Content-Type"].startswith("application/json")


@pytest.mark.e2e
def test_usage_is_measured_and_busy_executions_are_counted(observed):
    kid = observed.start_kernel("carol")
    kc = observed.kernel_ws(kid, "carol")
    assert kc.run("block = b'x' * (80 << 20)").reply["status"] == "ok"
    kernel = kernel_in_stats(observed, "carol", kid)
    wait_for(lambda: kernel_in_stats(observed, "carol", kid)["memory_bytes"] > 80 << 20,
             timeout=10, what="80 MiB block seen in memory_bytes")
    # busy until interrupted (the 30 s limit is far): the checks below see it running however
    # slowly a loaded machine samples
    msg_id = kc.execute("import time\nt = time.time()\nwhile time.time() - t < 25: pass")
    busy = kernel_in_stats(observed, "carol", kid, execution_state="busy")
    wait_for(lambda: kernel_in_stats(observed, "carol", kid)["cpu_percent"] > 10,
             timeout=20, what="busy loop seen in cpu_percent")
    assert stats(observed, "admin")["active_executions"] >= 1
    assert observed.post(f"/api/kernels/{kid}/interrupt", "carol").status_code == 204
    kc.collect(msg_id, timeout=60)
    kc.close()
    assert busy["pid"] == kernel["pid"]
    assert observed.delete(f"/api/kernels/{kid}", "carol").status_code == 204


@pytest.mark.e2e
def test_answers_come_from_the_snapshot(observed):
    """Many requests inside one sampling interval share one sampled_at: no per-request sampling."""
    seen = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        seen.append(stats(observed, "admin")["sampled_at"])
    assert len(seen) > len(set(seen)), "every answer had its own sample"
    assert len(set(seen)) >= 2, "the sampler stopped sampling"


@pytest.mark.e2e
def test_prometheus_metrics(observed):
    kid = observed.start_kernel("bob")
    kc = observed.kernel_ws(kid, "bob")
    replies = [kc.run("1").reply["status"] for _ in range(3)]  # bob may run 2 per minute
    kc.close()
    assert replies[:2] == ["ok", "ok"] and replies[2] == "error"
    kernel_in_stats(observed, "bob", kid)

    def scrape():
        text = observed.get("/metrics", "admin").text
        return text if re.search(r'eda_gateway_user_memory_bytes\{user="bob"\} [1-9]', text) else None

    text = wait_for(scrape, timeout=10, what="bob's memory gauge")
    assert re.search(r'eda_gateway_user_cpu_percent\{user="bob"\}', text)
    assert re.search(r'eda_gateway_executions_admitted_total\{source="notebook"\} [1-9]', text)
    assert re.search(r'eda_gateway_executions_refused_total\{reason="per_minute"\} [1-9]', text)
    assert re.search(r'eda_gateway_enforcement\{backend="(cgroup-v1|cgroup-v2|psutil)"\} 1\.0', text)
    # the gauges name users: not for other users to read (nor for anonymous scrapers)
    assert observed.get("/metrics", "bob").status_code == 403
    assert observed.get("/metrics", None).status_code == 403
    assert observed.delete(f"/api/kernels/{kid}", "bob").status_code == 204


def test_bad_sampling_interval_stops_start_up(refused_start):
    assert "EDATelemetry.interval" in refused_start({"EDATelemetry": {"interval": -1}})
