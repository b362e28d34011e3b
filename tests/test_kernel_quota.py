"""max_kernels_per_user: REST and session starts answer JSON 403 naming the limit;
starts still in progress count; restarts do not."""

from __future__ import annotations

import threading

import pytest

from harness import GatewayServer


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    srv = GatewayServer(
        tmp_path_factory.mktemp("quota"),
        extra_config='c.EDAGateway.max_kernels_per_user = 2\nc.EDAGateway.user_limits = {"bob": {"max_kernels_per_user": 3}}\n',
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
