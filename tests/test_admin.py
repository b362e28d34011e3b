"""Admin API over a real server: who uses what, history for charts, 403s, acting on others' kernels."""

from __future__ import annotations

import time

import pytest

from harness import GatewayServer

pytestmark = pytest.mark.e2e  # real servers (tests/conftest.py: tiers)

API = "/advanced-eda/api"
CONFIG = """
c.EDAGateway.user_limits = {"alice": {"max_executions_per_minute": 3, "window_seconds": 3600}}
c.EDAGateway.history_sample_interval = 1
c.EDATelemetry.interval = 0.5
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = GatewayServer(tmp_path_factory.mktemp("admin"), extra_config=CONFIG).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def activity(server):
    """alice: 3 executions admitted, the 4th refused (per_minute); bob: one execution."""
    alice_kid = server.start_kernel("alice")
    with_ws = server.kernel_ws(alice_kid, "alice")
    replies = [with_ws.run(f"{i} + 1").reply for i in range(4)]
    with_ws.close()
    assert [r["status"] for r in replies] == ["ok", "ok", "ok", "error"]
    assert replies[3]["ename"] == "RateLimitExceeded"
    bob_kid = server.start_kernel("bob")
    ws = server.kernel_ws(bob_kid, "bob")
    assert ws.run("'bob' * 2").result == "'bobbob'"
    ws.close()
    return {"alice": alice_kid, "bob": bob_kid}


def wait_for(fetch, ready, timeout=20.0):
    """Poll ``fetch()`` until ``ready(value)``; return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if ready(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def rows(server, user="admin", query=""):
    r = server.get(f"{API}/admin/users{query}", user)
    assert r.status_code == 200, r.text
    return {u["user"]: u for u in r.json()["users"]}


def test_admin_users_shows_each_users_kernels_budget_refusals_and_limits(server, activity):
    users = wait_for(lambda: rows(server), lambda u: (u.get("alice") or {}).get("memory_bytes"))
    alice, bob = users["alice"], users["bob"]
    assert [k["kernel_id"] for k in alice["kernels"]] == [activity["alice"]]
    assert alice["kernel_count"] == 1 and alice["memory_bytes"] > 10 * 2**20  # a real ipykernel
    assert alice["kernels"][0]["memory_bytes"] == alice["memory_bytes"]
    assert alice["executions"] == 3 and alice["executions_in_window"] == 3
    assert alice["refusals"] == {"per_minute": 1}
    assert alice["status"] == "limited"
    assert alice["limits"]["max_executions_per_minute"] == 3  # the override, not the default 10
    assert alice["limits"]["memory_bytes"] == 512 * 2**20
    assert alice["last_activity"] and not alice["admin"]
    assert bob["executions"] == 1 and bob["refusals"] == {} and bob["limits"]["max_executions_per_minute"] == 10
    assert "carol" not in users  # no activity, no kernel
    # a window that ends before anything happened shows no counts
    old = rows(server, query="?since=2020-01-01T00:00:00Z&until=2020-01-02T00:00:00Z")
    assert old["alice"]["executions"] == 0  # listed for the kernel she has now, nothing counted then


def test_history_series_for_charts(server, activity):
    def fetch():
        r = server.get(f"{API}/admin/history?bucket=1m&since={time.time() - 600:.0f}", "admin")
        assert r.status_code == 200, r.text
        return r.json()

    # a sample taken while bob's kernel was still starting may be small: wait for a full one
    body = wait_for(fetch, lambda b: any(
        (p["peak_memory_bytes"] or 0) > 10 * 2**20 for u in b["users"] if u["user"] == "bob" for p in u["points"]))
    assert body["bucket_seconds"] == 60
    series = {u["user"]: u for u in body["users"]}
    alice = series["alice"]
    assert alice["totals"] == {"executions": 3, "refusals": {"per_minute": 1}, "verdicts": {}}
    assert sum(p["executions"] for p in alice["points"]) == 3
    assert sum(p["refusals"] for p in alice["points"]) == 1
    assert len(alice["points"]) in (10, 11)  # dense minute buckets over the last 10 minutes
    assert all(p["start"].endswith(":00Z") for p in alice["points"])  # on whole minutes
    peaks = [p["peak_memory_bytes"] for p in series["bob"]["points"] if p["peak_memory_bytes"]]
    assert peaks and max(peaks) > 10 * 2**20
    assert sum(p["executions"] for p in series["bob"]["points"]) == 1


def test_a_user_reads_only_their_own_history(server, activity):
    mine = server.get(f"{API}/admin/history", "alice")
    assert mine.status_code == 200
    assert [u["user"] for u in mine.json()["users"]] == ["alice"]
    assert server.get(f"{API}/admin/history?user=alice", "alice").status_code == 200
    events = server.get(f"{API}/admin/events", "bob").json()["events"]
    assert events and {e["user"] for e in events} == {"bob"}
    everyone = server.get(f"{API}/admin/history", "admin").json()["users"]
    assert {"alice", "bob"} <= {u["user"] for u in everyone}


@pytest.mark.parametrize(
    "user, path",
    [
        ("alice", "/admin/users"),
        ("bob", "/admin/users"),
        ("alice", "/admin/history?user=bob"),
        ("bob", "/admin/events?user=alice"),
        (None, "/admin/users"),
        (None, "/admin/history"),
    ],
)
def test_non_admins_get_403_json(server, user, path):
    r = server.get(API + path, user)
    assert r.status_code == 403
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"] == "forbidden"


@pytest.mark.parametrize(
    "query",
    [
        "/admin/history?since=yesterday",
        "/admin/history?until=inf",
        "/admin/history?since=nan",
        "/admin/history?since=2030-01-01T00:00:00Z&until=2029-01-01T00:00:00Z",
        "/admin/history?bucket=0",
        "/admin/history?bucket=0.5s",
        "/admin/history?bucket=5 minutes",
        "/admin/history?bucket=",
        "/admin/history?bucket=1s&since=0",  # far too many buckets
        "/admin/events?limit=0",
        "/admin/events?limit=ten",
        "/admin/events?limit=99999",
        "/admin/events?kind=bogus",
        "/admin/users?since=99999999999999",
    ],
)
def test_bad_queries_get_a_clear_400(server, query):
    r = server.get(API + query, "admin")
    assert r.status_code == 400, (query, r.status_code, r.text)
    body = r.json()
    assert body["error"] == "bad_request" and body["message"]


def test_events_filter_by_kind(server, activity):
    r = server.get(f"{API}/admin/events?user=alice&kind=execution.refused&kind=kernel.started", "admin")
    assert r.status_code == 200
    kinds = [e["kind"] for e in r.json()["events"]]
    assert sorted(kinds) == ["execution.refused", "kernel.started"]


def test_admin_interrupts_and_shuts_down_another_users_kernel(server):
    kid = server.start_kernel("carol")
    carol = server.kernel_ws(kid, "carol")
    msg_id = carol.execute("print('spinning', flush=True)\nwhile True: pass")
    # wait until the loop really runs before interrupting it
    while True:
        msg = carol.recv(30)
        if msg.get("msg_type") == "stream" and msg["parent_header"].get("msg_id") == msg_id:
            break
    assert server.post(f"/api/kernels/{kid}/interrupt", "bob").status_code == 403  # not bob's
    assert server.post(f"/api/kernels/{kid}/interrupt", "admin").status_code == 204
    messages = carol.collect(msg_id, timeout=30)
    errors = [m["content"] for m in messages if m.get("msg_type") == "error"]
    assert errors and errors[0]["ename"] == "KeyboardInterrupt"
    assert carol.run("'still alive'").result == "'still alive'"

    assert server.delete(f"/api/kernels/{kid}", "admin").status_code == 204
    assert server.get("/api/kernels", "carol").json() == []
    carol.close()
    events = server.get(f"{API}/admin/events?user=carol&kind=kernel.stopped", "admin").json()["events"]
    assert [e["kernel_id"] for e in events] == [kid]
