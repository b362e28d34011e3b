"""max_kernels_per_user: REST and session starts answer JSON 403 naming the limit;
starts still in progress count; restarts do not."""

from __future__ import annotations

import threading
import time

import pytest

from harness import GatewayServer

pytestmark = pytest.mark.e2e  # real servers (tests/conftest.py: tiers)


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    srv = GatewayServer(
        tmp_path_factory.mktemp("quota"),
        extra_config='c.EDAGateway.max_kernels_per_user = 2\nc.EDAGateway.user_limits = {"bob": {"max_kernels_per_user": 3}}\n'
        'c.EDAGateway.reclaim_idle_at_quota = False\n',
    ).start()
    yield srv
    srv.stop()


def shut_down_all(gw, user):
    for k in gw.get("/api/kernels", user).json():
        gw.delete(f"/api/kernels/{k['id']}", user)


def assert_quota_refusal(r):
    assert r.status_code == 403, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    assert "max_kernels_per_user (2)" in r.json()["message"]
    assert "max_kernels_per_user (2)" in r.reason  # for clients that show only the status line


def test_rest_and_session_starts_beyond_the_limit_get_a_json_403(gw):
    try:
        gw.start_kernel("alice")
        gw.start_kernel("alice")
        assert_quota_refusal(gw.post("/api/kernels", "alice", json={}))
        r = gw.post(
            "/api/sessions", "alice",
            json={"path": "nb.ipynb", "type": "notebook", "name": "nb.ipynb", "kernel": {"name": "python3"}},
        )
        assert_quota_refusal(r)
        assert len(gw.get("/api/kernels", "alice").json()) == 2  # nothing half-started
        assert gw.get("/api/sessions", "alice").json() == []
        # the limit is per user, and overrides apply
        for _ in range(3):
            gw.start_kernel("bob")
        assert gw.post("/api/kernels", "bob", json={}).status_code == 403
        # shutting one down frees a slot
        kid = gw.get("/api/kernels", "alice").json()[0]["id"]
        assert gw.delete(f"/api/kernels/{kid}", "alice").status_code == 204
        assert gw.post("/api/kernels", "alice", json={}).status_code == 201
    finally:
        shut_down_all(gw, "alice")
        shut_down_all(gw, "bob")


def test_pending_starts_count(gw):
    """Four starts sent at once: exactly the limit is started, the rest refused."""
    codes: list[int] = []
    barrier = threading.Barrier(4)

    def start():
        barrier.wait()
        codes.append(gw.post("/api/kernels", "carol", json={}).status_code)

    threads = [threading.Thread(target=start) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sorted(codes) == [201, 201, 403, 403]
        assert len(gw.get("/api/kernels", "carol").json()) == 2
    finally:
        shut_down_all(gw, "carol")


def test_restarts_do_not_count(gw):
    try:
        kids = [gw.start_kernel("alice") for _ in range(2)]
        for kid in kids:
            assert gw.post(f"/api/kernels/{kid}/restart", "alice").status_code == 200
        assert len(gw.get("/api/kernels", "alice").json()) == 2
        assert_quota_refusal(gw.post("/api/kernels", "alice", json={}))
    finally:
        shut_down_all(gw, "alice")


# --- idle kernels do not block the quota ------------------------------------------------

@pytest.fixture(scope="module")
def roomy(tmp_path_factory):
    """Reclaiming at the quota (the default), and carol's idle kernels culled after 6 s."""
    srv = GatewayServer(
        tmp_path_factory.mktemp("reclaim"),
        extra_config='c.EDAGateway.max_kernels_per_user = 2\n'
        'c.EDAGateway.user_limits = {"carol": {"cull_idle_after": 6}}\n',
    ).start()
    yield srv
    srv.stop()


def wait_until(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def kernel_ids(gw, user) -> set[str]:
    return {k["id"] for k in gw.get("/api/kernels", user).json()}


def test_at_the_quota_the_least_recently_used_idle_kernel_is_reclaimed(roomy):
    gw = roomy
    try:
        old, recent = gw.start_kernel("alice"), gw.start_kernel("alice")
        kc = gw.kernel_ws(recent, "alice")
        assert kc.run("1").result == "1"  # `recent` was used last
        kc.close()
        wait_until(lambda: gw.get(f"/api/kernels/{recent}", "alice").json()["connections"] == 0, "socket closed")
        new = gw.start_kernel("alice")
        assert kernel_ids(gw, "alice") == {recent, new}
        events = gw.get("/advanced-eda/api/admin/events?user=alice&kind=kernel.reclaimed", "admin").json()["events"]
        assert [(e["kernel_id"], e["reason"]) for e in events] == [(old, "quota")]
        # kernels in use (a client connected) are never reclaimed: then the quota refuses
        sockets = [gw.kernel_ws(kid, "alice") for kid in (recent, new)]
        try:
            r = gw.post("/api/kernels", "alice", json={})
            assert r.status_code == 403 and "max_kernels_per_user (2)" in r.json()["message"]
        finally:
            for s in sockets:
                s.close()
    finally:
        shut_down_all(gw, "alice")


def test_idle_kernels_are_culled_after_the_owners_cull_idle_after(roomy):
    gw = roomy
    try:
        # alice has the default timeout (an hour): hers, idle longer than carol's, must stay
        mine = gw.start_kernel("alice")
        open_in_a_tab = gw.start_kernel("carol")
        tab = gw.kernel_ws(open_in_a_tab, "carol")
        try:
            assert tab.run("'connected'").result == "'connected'"
            unused = gw.start_kernel("carol")
            wait_until(lambda: unused not in kernel_ids(gw, "carol"), "the idle kernel was never culled")
            assert open_in_a_tab in kernel_ids(gw, "carol")  # connected: kept, like jupyter_server's culler
            assert tab.run("'still here'").result == "'still here'"
        finally:
            tab.close()
        events = gw.get("/advanced-eda/api/admin/events?user=carol&kind=kernel.reclaimed", "admin").json()["events"]
        assert [(e["kernel_id"], e["reason"]) for e in events] == [(unused, "idle")]
        assert mine in kernel_ids(gw, "alice")  # idle longer than the kernel just culled
    finally:
        shut_down_all(gw, "carol")
        shut_down_all(gw, "alice")
