"""AdmissionService on its own, with a hand-driven clock: exact window arithmetic,
concurrency leases (in its ledger), overrides, expiry, memory bounds and events."""

from __future__ import annotations

import pytest

from eda_gateway.admission import CONCURRENT, PER_MINUTE, AdmissionService, MemoryStore
from eda_gateway.handlers.ratelimit import render_status
from eda_gateway.ledger import KERNEL_STOPPED, REPLIED
from eda_gateway.limits import LimitPolicy, Limits


def rendered(svc, user, observe=True) -> dict:
    """rate-limit-status as the handler renders it; ``observe``: the user themselves asks."""
    if observe:
        svc.saw(user)
    return render_status(svc.usage(user))


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def service(limit=10, window=60.0, concurrent=2, user_limits=None, groups=None, budget=45.0, store=None):
    clock = Clock()
    wall = Clock(1_800_000_000.0)
    base = Limits(max_executions_per_minute=limit, window_seconds=window, max_concurrent_executions=concurrent)
    policy = LimitPolicy(base, user_limits or {}, groups or {})

    def tick(seconds):
        clock.now += seconds
        wall.now += seconds

    # Limits' default max_execution_time is 30 s
    svc = AdmissionService(policy.for_user, budget - 30.0, store=store, clock=clock, wall_clock=wall)
    return svc, tick


def admit_and_finish(svc, user="alice", kernel="k1", n=1, start=0):
    for i in range(start, start + n):
        d = svc.admit(user, kernel, f"m{i}", "notebook")
        assert d.allowed, (i, d)
        svc.ledger.finish(kernel, f"m{i}", REPLIED)


def test_window_admits_exactly_the_limit_and_says_when_to_retry():
    svc, tick = service(limit=10, window=60)
    for i in range(10):
        admit_and_finish(svc, n=1, start=i)
        tick(2.0)  # admissions at t=0,2,...,18; now t=20
    refused = svc.admit("alice", "k1", "m10", "notebook")
    assert not refused.allowed and refused.reason == PER_MINUTE
    # the oldest admission (t=0) leaves the 60 s window at t=60
    assert refused.retry_after_seconds == pytest.approx(40.0)
    assert "10 executions per 60 s" in refused.message and "40 s" in refused.message
    tick(39.9)
    assert not svc.admit("alice", "k1", "m10", "notebook").allowed
    tick(0.2)
    assert svc.admit("alice", "k1", "m10", "notebook").allowed
    # exactly one slot came free: the next one waits for the admission made at t=2
    again = svc.admit("alice", "k1", "m11", "notebook")
    assert not again.allowed and again.retry_after_seconds == pytest.approx(1.9)


def test_refusals_do_not_count():
    svc, tick = service(limit=2, window=10)
    admit_and_finish(svc, n=2)
    for i in range(50):
        assert not svc.admit("alice", "k1", f"x{i}", "notebook").allowed
    tick(10.01)
    assert svc.admit("alice", "k1", "y", "notebook").allowed


def test_same_request_again_counts_once():
    svc, _ = service(limit=2)
    assert svc.admit("alice", "k1", "same", "notebook").allowed
    assert svc.admit("alice", "k1", "same", "notebook").allowed
    assert rendered(svc, "alice")["executions_in_window"] == 1


def test_concurrency_counts_kernels_not_queued_cells():
    svc, _ = service(concurrent=2)
    assert svc.admit("alice", "k1", "a1", "notebook").allowed
    assert svc.admit("alice", "k2", "b1", "api").allowed
    # "Run All" in a kernel that already runs: not a new concurrent kernel
    for i in range(2, 7):
        assert svc.admit("alice", "k1", f"a{i}", "notebook").allowed
    third = svc.admit("alice", "k3", "c1", "notebook")
    assert not third.allowed and third.reason == CONCURRENT and third.retry_after_seconds >= 1
    status = rendered(svc, "alice")
    assert status["concurrent_executions"] == 2 and status["status"] == "limited"
    assert sorted({e["kernel_id"] for e in status["active_executions"]}) == ["k1", "k2"]
    assert {e["source"] for e in status["active_executions"]} == {"notebook", "api"}
    # k1 stays busy until its last queued cell ends
    for i in range(1, 6):
        svc.ledger.finish("k1", f"a{i}", REPLIED)
    assert not svc.admit("alice", "k3", "c1", "notebook").allowed
    svc.ledger.finish("k1", "a6", REPLIED)
    assert svc.admit("alice", "k3", "c1", "notebook").allowed


def test_release_kernel_ends_all_its_leases():
    svc, _ = service(concurrent=1)
    for i in range(3):
        assert svc.admit("alice", "k1", f"a{i}", "notebook").allowed
    assert not svc.admit("alice", "k2", "b", "notebook").allowed
    assert svc.ledger.end_kernel("k1", KERNEL_STOPPED) == 3
    assert svc.active_executions("alice") == []
    assert svc.admit("alice", "k2", "b", "notebook").allowed
    assert svc.ledger.end_kernel("unknown", KERNEL_STOPPED) == 0
    assert not svc.ledger.finish("k1", "a0", REPLIED)  # already ended: a no-op


def test_safety_expiry_ends_a_lease_nobody_ended():
    svc, tick = service(concurrent=1, budget=45.0)
    assert svc.admit("alice", "k1", "a", "notebook").allowed
    tick(44.0)
    assert not svc.admit("alice", "k2", "b", "notebook").allowed
    tick(2.0)
    assert svc.admit("alice", "k2", "b", "notebook").allowed
    assert [e["msg_id"] for e in svc.active_executions("alice")] == ["b"]


def test_queued_cells_get_their_own_budget_from_when_they_could_start():
    svc, tick = service(concurrent=2, budget=45.0)
    assert svc.admit("alice", "k1", "a", "notebook").allowed
    assert svc.admit("alice", "k1", "b", "notebook").allowed
    tick(40.0)
    svc.ledger.finish("k1", "a", REPLIED)  # b starts now
    tick(40.0)  # 80 s after b was admitted, 40 s after it could start
    assert [e["msg_id"] for e in svc.active_executions("alice")] == ["b"]


def test_other_users_are_unaffected_and_overrides_apply():
    svc, _ = service(
        limit=3,
        user_limits={"bob": {"max_executions_per_minute": 5}, "@fast": {"max_concurrent_executions": 3, "max_executions_per_minute": 9}},
        groups={"fast": ["carol"]},
    )
    admit_and_finish(svc, "alice", n=3)
    assert not svc.admit("alice", "k1", "z", "notebook").allowed
    admit_and_finish(svc, "bob", "kb", n=5)
    assert not svc.admit("bob", "kb", "z", "notebook").allowed
    assert rendered(svc, "bob")["limits"]["max_executions_per_minute"] == 5
    for k in ("c1", "c2", "c3"):
        assert svc.admit("carol", k, k, "notebook").allowed
    assert svc.admit("carol", "c4", "c4", "notebook").reason == CONCURRENT


def test_status_levels_and_fields():
    svc, tick = service(limit=10, window=60)
    s = rendered(svc, "alice")
    assert (s["executions_in_window"], s["remaining"], s["status"], s["reset_in_seconds"]) == (0, 10, "normal", 0)
    admit_and_finish(svc, n=5)
    assert rendered(svc, "alice")["status"] == "medium"
    admit_and_finish(svc, n=3, start=5)
    assert rendered(svc, "alice")["status"] == "high"
    tick(10)
    admit_and_finish(svc, n=2, start=8)
    s = rendered(svc, "alice")
    assert (s["remaining"], s["status"]) == (0, "limited")
    assert s["retry_after_seconds"] == pytest.approx(50.0) and s["reset_in_seconds"] == pytest.approx(50.0)
    assert s["session"]["duration_seconds"] == pytest.approx(10.0)
    assert s["session"]["started_at"].endswith("Z")
    assert svc.admit("alice", "k9", "live", "api").allowed is False


def test_bus_sees_admitted_started_refused_finished():
    svc, _ = service(limit=1)
    events = []
    svc.ledger.bus.observe(lambda e: events.append((type(e).__name__, e.msg_id, getattr(e, "reason", None), e.user)))
    svc.admit("alice", "k1", "a", "api")
    svc.admit("alice", "k1", "b", "api")
    svc.ledger.finish("k1", "a", REPLIED)
    assert events == [("ExecutionAdmitted", "a", None, "alice"), ("ExecutionStarted", "a", None, "alice"),
                      ("ExecutionRefused", "b", "per_minute", "alice"), ("ExecutionFinished", "a", "replied", "alice")]


def test_window_memory_is_bounded_by_the_limit():
    store = MemoryStore()
    svc, tick = service(limit=10, window=60, store=store)
    for i in range(1000):
        svc.admit("alice", "k1", f"m{i}", "notebook")
        svc.ledger.finish("k1", f"m{i}", REPLIED)
        tick(7.0)
    assert len(store._users["alice"].window(PER_MINUTE).times) == 10


def test_idle_users_are_dropped_without_a_sweep():
    store = MemoryStore()
    svc, tick = service(limit=5, window=10, store=store, user_limits={"active": {"max_executions_per_minute": 1000}})
    for i in range(100):
        admit_and_finish(svc, f"user{i}", f"k{i}")
    assert len(store) == 100
    tick(11)
    # each admission drops at most a few idle users from the front: no call walks everyone
    for i in range(30):
        before = len(store)
        admit_and_finish(svc, "active", "ka", start=i)
        assert before - 4 <= len(store) <= max(before, 1 + (100 - 4 * i))
    assert len(store) == 1  # only "active" is left
    # a user still holding a lease is never dropped
    assert svc.admit("holder", "kh", "h", "notebook").allowed
    tick(20)
    for i in range(10):
        admit_and_finish(svc, "active", "ka", start=100 + i)
    assert "holder" in store._users and rendered(svc, "holder")["concurrent_executions"] == 1


def test_someone_elses_look_does_not_start_a_users_session():
    svc, tick = service()
    rendered(svc, "alice", observe=False)  # an admin looks first
    tick(100.0)
    assert rendered(svc, "alice")["session"]["duration_seconds"] == 0
    tick(5.0)
    assert rendered(svc, "alice", observe=False)["session"]["duration_seconds"] == 5
