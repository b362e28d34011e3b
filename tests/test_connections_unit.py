"""The connection caps and the ZMQ / open-files sizing, without a server."""

from __future__ import annotations

from eda_gateway import capacity
from eda_gateway.connections import ConnectionLimiter


def test_per_user_cap_counts_all_kernels_and_spares_other_users():
    limiter = ConnectionLimiter(lambda user: 2, total=10)
    assert limiter.acquire("alice", "a1", lambda: True) is None
    assert limiter.acquire("alice", "a2", lambda: True) is None
    why = limiter.acquire("alice", "a3", lambda: True)
    assert "max_connections_per_user = 2" in why
    assert limiter.acquire("bob", "b1", lambda: True) is None
    limiter.release("a1")
    limiter.release("a1")  # twice is harmless
    assert limiter.count("alice") == 1
    assert limiter.acquire("alice", "a3", lambda: True) is None


def test_a_holder_that_never_released_is_dropped_once_dead():
    alive = {"a1": True}
    limiter = ConnectionLimiter(lambda user: 1, total=10)
    limiter.acquire("alice", "a1", lambda: alive["a1"])
    assert limiter.acquire("alice", "a2", lambda: True) is not None
    alive["a1"] = False
    assert limiter.acquire("alice", "a2", lambda: True) is None
    assert limiter.count() == 1


def test_the_server_budget_refuses_when_full():
    limiter = ConnectionLimiter(lambda user: 5, total=2)
    limiter.acquire("alice", "a1", lambda: True)
    limiter.acquire("bob", "b1", lambda: True)
    assert "max_connections_total = 2" in limiter.acquire("carol", "c1", lambda: True)


def test_sizing_fits_the_hard_fd_limit_by_admitting_fewer_connections():
    wanted = capacity.plan(1000, 40)
    assert wanted.max_sockets == 1000 * 5 + 40 * 12 + 256
    fitted = capacity.fit(wanted, 40, hard_files=4096, socket_limit=65535)
    assert 0 < fitted.connections < 1000 and fitted.open_files <= 4096
    assert capacity.fit(wanted, 40, hard_files=1 << 20, socket_limit=65535) == wanted
