"""The admission store in a real Redis (eda_gateway/redis_store.py): the primitives, one atomic
``apply`` per decision exact under concurrent servers, leases that expire unless renewed, and
an outage: refused at once, then recovered without a restart.

Two ``RedisStore`` objects on one Redis stand for two servers. Windows are 60 s long, so no
entry leaves one during a test; lease expiry is asserted as an outcome (held, then gone)."""

from __future__ import annotations

import threading

import pytest

from eda_gateway.admission import UNAVAILABLE, AdmissionService
from eda_gateway.limits import Limits
from eda_gateway.redis_store import RedisStore, check_url, redacted
from eda_gateway.store import Add, Hold, StoreUnavailable, WindowRead, passed
from redis_harness import RedisServer
from sandbox_helpers import wait_for

pytestmark = pytest.mark.e2e  # a real redis-server (tests/conftest.py: tiers)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def store(redis_server, request):
    """A store of its own (key prefix per test) on the shared Redis."""
    made = []

    def make(**kwargs):
        made.append(RedisStore(redis_server.url, prefix=f"t{id(request.node)}", **kwargs))
        return made[-1]

    yield make
    for s in made:
        s.close()


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_windows_count_refuse_and_take_back(store):
    s = store()
    first = s.add("alice", "w", 2, 60.0, now=100.0)
    assert first.added and first.count == 1 and 99.0 < first.oldest <= 100.0  # in the caller's clock
    assert s.add("alice", "w", 2, 60.0, now=100.0).count == 2
    full = s.add("alice", "w", 2, 60.0, now=100.0)
    assert not full.added and full.count == 2 and full.oldest == pytest.approx(first.oldest, abs=0.05)
    read = s.read("alice", "w", 60.0, now=100.0)
    assert read.count == 2 and read.oldest <= read.newest <= 100.0
    s.remove("alice", "w", first.entry)
    assert s.read("alice", "w", 60.0, now=100.0).count == 1
    s.remove("alice", "w", first.entry)  # gone already: a no-op
    assert s.add("alice", "w", 2, 60.0, now=100.0).added
    assert s.read("nobody", "w", 60.0, now=100.0) == WindowRead()
    assert s.add("bob", "w", 2, 60.0, now=100.0).count == 1  # per user
    assert s.add("al:ice", "w", 2, 60.0, now=100.0).count == 1  # no two users share a key


def test_leases_hold_release_and_count_once_per_kernel(store):
    s = store()
    assert s.hold("alice", "k1", 2, now=0.0).new
    again = s.hold("alice", "k1", 2, now=0.0)
    assert again.held and not again.new and again.count == 1
    assert s.hold("alice", "k2", 2, now=0.0).new
    refused = s.hold("alice", "k3", 2, now=0.0)
    assert not refused.held and refused.count == 2
    assert s.held("alice") == {"k1", "k2"} and s.held("bob") == frozenset()
    s.release("alice", "k1", now=0.0)
    s.release("alice", "k1", now=0.0)  # idempotent
    assert s.hold("alice", "k3", 2, now=0.0).new
    assert s.held("alice") == {"k2", "k3"}


def test_apply_is_one_all_or_nothing_step(store):
    s = store()
    s.hold("alice", "busy", 1, now=0.0)
    steps = [Add("per_day", 5, 86400.0), Add("per_minute", 5, 60.0), Hold("k2", 1)]
    outcomes = s.apply("alice", steps, now=1.0)
    assert [passed(o) for o in outcomes] == [True, True, False]
    assert s.read("alice", "per_day", 86400.0, 1.0).count == 0  # taken back
    assert s.read("alice", "per_minute", 60.0, 1.0).count == 0
    s.release("alice", "busy", now=1.0)
    assert all(passed(o) for o in s.apply("alice", steps, now=2.0))
    assert s.held("alice") == {"k2"}


def test_two_servers_admit_exactly_the_limit_under_concurrency(store):
    """60 admissions at once, 30 through each of two stores (two servers): exactly 10 pass."""
    servers = [store(), store()]
    results, barrier = [], threading.Barrier(60)

    def one(i):
        barrier.wait()
        outcomes = servers[i % 2].apply("alice", [Add("per_minute", 10, 60.0), Hold(f"k{i % 2}", 2)], now=0.0)
        results.append(len(outcomes) == 2 and all(passed(o) for o in outcomes))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 10
    assert servers[0].read("alice", "per_minute", 60.0, 0.0).count == 10


def test_a_lease_lives_while_renewed_and_is_gone_within_the_ttl_when_not(store):
    renewed, abandoned = store(lease_ttl=1.0), store(lease_ttl=1.0)
    assert renewed.hold("alice", "kept", 5, now=0.0).new
    assert abandoned.hold("alice", "dead", 5, now=0.0).new  # its server "dies": never renewed
    ticks = {"n": 0}

    def renew_and_check():
        renewed.renew()
        ticks["n"] += 1
        return "dead" not in renewed.held("alice")

    wait_for(renew_and_check, timeout=10, interval=0.2)
    assert "kept" in renewed.held("alice") and ticks["n"] >= 1  # renewed past the ttl of the other
    renewed.release("alice", "kept", now=0.0)
    assert renewed.renew() == 0 and renewed.held("alice") == frozenset()  # released: not brought back


def test_an_outage_fails_at_once_then_recovers_without_a_restart(tmp_path):
    server = RedisServer(tmp_path).start()
    clock = Clock()
    s = RedisStore(server.url, clock=clock)
    changes = []
    s.on_change = lambda available, why: changes.append(available)
    try:
        assert s.add("alice", "w", 5, 60.0, now=0.0).added
        server.stop()
        with pytest.raises(StoreUnavailable) as first:
            s.add("alice", "w", 5, 60.0, now=0.0)
        assert first.value.retry_after == pytest.approx(1.0) and changes == [False]
        with pytest.raises(StoreUnavailable):  # within the back-off: no socket, no wait
            s.held("alice")
        s.release("alice", "k", now=0.0)  # best effort: never raises
        server = RedisServer(tmp_path, port=server.port).start()
        with pytest.raises(StoreUnavailable):  # still backing off (the fake clock did not move)
            s.add("alice", "w", 5, 60.0, now=0.0)
        clock.now += 1.0
        assert s.add("alice", "w", 5, 60.0, now=0.0).added
        assert changes == [False, True] and s.available
    finally:
        s.close()
        server.stop()


def test_admission_refuses_with_admission_unavailable_or_admits_uncounted_when_told(tmp_path):
    server = RedisServer(tmp_path).start()
    try:
        closed = AdmissionService(lambda user: Limits(), store=RedisStore(server.url, prefix="closed"))
        opened = AdmissionService(lambda user: Limits(), store=RedisStore(server.url, prefix="open"),
                                  fail_open=True)
        assert closed.admit("alice", "k1", "m1", "notebook").allowed
        server.stop()
        refused = closed.admit("alice", "k1", "m2", "notebook")
        assert not refused.allowed and refused.reason == UNAVAILABLE and refused.retry_after_seconds >= 1
        assert "Admission unavailable" in refused.message and "127.0.0.1" not in refused.message
        assert opened.admit("alice", "k1", "m3", "api").allowed  # the admin chose fail-open
        with pytest.raises(StoreUnavailable):
            closed.usage("alice")
    finally:
        server.stop()


def test_urls_are_checked_and_passwords_never_shown():
    check_url("redis://127.0.0.1:6379/0")
    check_url("rediss://user:pw@redis.example:6380/1")
    with pytest.raises(ValueError, match="not a Redis URL"):
        check_url("http://127.0.0.1:6379")
    assert redacted("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert "s3cret" not in redacted("redis://:s3cret@host/0")
    assert redacted("redis://host:6379/0") == "redis://host:6379/0"
