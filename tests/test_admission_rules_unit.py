"""The store's primitives, each admission rule, roll-back, the daily quota, and the rendering
of a user's usage (rate-limit-status JSON and RateLimit headers), with a hand-driven clock."""

from __future__ import annotations

import pytest
from traitlets import TraitError

from eda_gateway.admission import PER_DAY, PER_MINUTE, AdmissionService
from eda_gateway.handlers.ratelimit import render_status
from eda_gateway.handlers.ratelimit_headers import set_rate_limit_headers
from eda_gateway.limits import EDARateLimiter, LimitPolicy, Limits, validate_user_limits
from eda_gateway.ledger import REPLIED
from eda_gateway.rules import (
    CONCURRENT,
    DAY_SECONDS,
    Attempt,
    ConcurrencyRule,
    DailyQuotaRule,
    Refusal,
    SlidingWindowRule,
    duration_words,
)
from eda_gateway.store import Add, Hold, MemoryStore, WindowRead, passed

DAY = DAY_SECONDS


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def service(base: Limits | None = None, user_limits=None, groups=None, store=None):
    clock, wall = Clock(), Clock(1_800_000_000.0)
    policy = LimitPolicy(base or Limits(), user_limits or {}, groups or {})

    def tick(seconds):
        clock.now += seconds
        wall.now += seconds

    return AdmissionService(policy.for_user, store=store, clock=clock, wall_clock=wall), tick


def run(svc, user="alice", kernel="k1", msg_id="m"):
    decision = svc.admit(user, kernel, msg_id, "notebook")
    if decision.allowed:
        svc.ledger.finish(kernel, msg_id, REPLIED)
    return decision


# --- store primitives -------------------------------------------------------------------


def test_store_add_admits_up_to_the_limit_in_the_window_and_says_count_and_oldest():
    store = MemoryStore()
    first = store.add("alice", "w", 2, 10.0, now=100.0)
    assert (first.added, first.count, first.oldest) == (True, 1, 100.0)
    second = store.add("alice", "w", 2, 10.0, now=104.0)
    assert (second.added, second.count, second.oldest) == (True, 2, 100.0)
    full = store.add("alice", "w", 2, 10.0, now=109.9)
    assert (full.added, full.count, full.oldest) == (False, 2, 100.0)
    # the entry at 100 leaves the window at 110
    later = store.add("alice", "w", 2, 10.0, now=110.0)
    assert (later.added, later.count, later.oldest) == (True, 2, 104.0)
    assert store.read("alice", "w", 10.0, now=110.0) == WindowRead(2, 104.0, 110.0)
    # windows are per user and per name
    assert store.add("bob", "w", 2, 10.0, now=110.0).count == 1
    assert store.add("alice", "other", 2, 10.0, now=110.0).count == 1


def test_store_remove_takes_back_one_entry_and_read_changes_nothing():
    store = MemoryStore()
    store.add("alice", "w", 3, 10.0, now=1.0)
    taken = store.add("alice", "w", 3, 10.0, now=1.0)  # two entries at the same time
    store.remove("alice", "w", taken.entry)
    assert store.read("alice", "w", 10.0, now=2.0).count == 1
    store.remove("alice", "w", taken.entry)
    store.remove("alice", "w", taken.entry)  # gone already: a no-op
    store.remove("nobody", "w", 1.0)
    assert store.read("alice", "w", 10.0, now=2.0) == WindowRead()
    assert store.read("nobody", "w", 10.0, now=2.0) == WindowRead()
    assert len(store) == 1  # reading creates no user


def test_store_leases_hold_up_to_the_limit_and_a_held_kernel_passes():
    store = MemoryStore()
    assert store.hold("alice", "k1", 2, now=0.0).new
    again = store.hold("alice", "k1", 2, now=0.0)
    assert again.held and not again.new
    assert store.hold("alice", "k2", 2, now=0.0).new
    refused = store.hold("alice", "k3", 2, now=0.0)
    assert (refused.held, refused.new, refused.count) == (False, False, 2)
    assert store.held("alice") == frozenset({"k1", "k2"}) and store.held("bob") == frozenset()
    store.release("alice", "k1", now=0.0)
    store.release("alice", "k1", now=0.0)  # idempotent
    assert store.hold("alice", "k3", 2, now=0.0).new
    assert store.held("alice") == frozenset({"k2", "k3"})


def test_store_memory_is_bounded_by_the_limit_of_each_window():
    store = MemoryStore()
    for i in range(1000):
        store.add("alice", "w", 5, 10.0, now=float(i))
        store.add("alice", "day", 20, DAY, now=float(i))
    state = store._users["alice"]
    assert (len(state.window("w").times), len(state.window("day").times)) == (5, 20)


def test_store_keeps_a_user_whose_long_window_still_counts():
    store = MemoryStore()
    store.add("daily", "per_day", 5, DAY, now=0.0)
    for i in range(40):  # each add looks at a few users at the front
        store.add(f"u{i}", "w", 5, 10.0, now=100.0 + i)
    assert "daily" in store._users  # 24 h have not passed
    for i in range(40):
        store.add(f"v{i}", "w", 5, 10.0, now=DAY + 1.0 + i)
    assert "daily" not in store._users


# --- rules --------------------------------------------------------------------------------


def attempt(now=0.0, kernel="k1", **limits):
    return Attempt("alice", kernel, now, Limits(**limits))


def judged(rule, store, att):
    """The rule's step applied alone, and what the rule makes of the outcome."""
    step = rule.step(att)
    if step is None:
        return None, None
    (outcome,) = store.apply(att.user, [step], att.now)
    return rule.judge(att, outcome), outcome


def test_sliding_window_rule_refuses_with_the_exact_wait_and_a_taken_back_entry_frees_the_slot():
    store, rule = MemoryStore(), SlidingWindowRule()
    passed, outcome = judged(rule, store, attempt(0.0, max_executions_per_minute=1, window_seconds=60.0))
    assert passed is None and outcome.added
    refused, _ = judged(rule, store, attempt(15.0, max_executions_per_minute=1, window_seconds=60.0))
    assert isinstance(refused, Refusal) and refused.reason == PER_MINUTE
    assert refused.retry_after_seconds == pytest.approx(45.0) and "Try again in 45 s" in refused.message
    store.remove("alice", PER_MINUTE, outcome.entry)
    assert judged(rule, store, attempt(15.0, max_executions_per_minute=1, window_seconds=60.0))[0] is None


def test_daily_rule_is_off_at_zero_and_refuses_past_its_quota_until_24_h_later():
    store, rule = MemoryStore(), DailyQuotaRule()
    for i in range(5):
        assert rule.step(attempt(float(i))) is None  # off: no step, nothing recorded
    assert store.read("alice", PER_DAY, DAY, 5.0).count == 0
    assert rule.usage(store, "alice", 5.0, Limits()) is None
    assert judged(rule, store, attempt(0.0, max_executions_per_day=2))[0] is None
    assert judged(rule, store, attempt(3600.0, max_executions_per_day=2))[0] is None
    refused, _ = judged(rule, store, attempt(7200.0, max_executions_per_day=2))
    assert isinstance(refused, Refusal) and refused.reason == PER_DAY
    assert refused.retry_after_seconds == pytest.approx(DAY - 7200.0)
    assert "at most 2 executions per 24 h" in refused.message and "max_executions_per_day" in refused.message
    assert "Try again in 22 h" in refused.message
    assert isinstance(judged(rule, store, attempt(DAY - 0.001, max_executions_per_day=2))[0], Refusal)
    assert judged(rule, store, attempt(DAY, max_executions_per_day=2))[0] is None  # the first left the 24 h


def test_concurrency_rule_holds_kernels_and_a_kernel_holding_one_passes():
    store = MemoryStore()
    rule = ConcurrencyRule(lambda user, now: 7.0)
    assert judged(rule, store, attempt(kernel="k1", max_concurrent_executions=1))[0] is None
    again, outcome = judged(rule, store, attempt(kernel="k1", max_concurrent_executions=1))
    assert again is None and outcome.held and not outcome.new
    refused, _ = judged(rule, store, attempt(kernel="k2", max_concurrent_executions=1))
    assert isinstance(refused, Refusal) and refused.reason == CONCURRENT and refused.retry_after_seconds == 7.0
    assert store.held("alice") == frozenset({"k1"})


def test_apply_is_all_or_nothing():
    store = MemoryStore()
    store.hold("alice", "busy", 1, now=0.0)
    steps = [Add(PER_DAY, 5, DAY), Add(PER_MINUTE, 5, 60.0), Hold("k2", 1)]
    outcomes = store.apply("alice", steps, now=1.0)
    assert [o.added for o in outcomes[:2]] == [True, True] and not outcomes[2].held
    # the refused hold took back both window entries
    assert store.read("alice", PER_DAY, DAY, 1.0).count == 0 and store.read("alice", PER_MINUTE, 60.0, 1.0).count == 0
    store.release("alice", "busy", now=1.0)
    assert all(passed(o) for o in store.apply("alice", steps, now=2.0))
    assert store.held("alice") == frozenset({"k2"})
    # a refusal ends the run: the steps after it are not run
    full = [Add("w", 1, 60.0), Add("w", 1, 60.0), Hold("k3", 5)]
    assert len(store.apply("bob", full, now=3.0)) == 2 and store.held("bob") == frozenset()


def test_a_refusal_rolls_back_what_earlier_rules_recorded():
    base = Limits(max_executions_per_day=10, max_concurrent_executions=1, max_executions_per_minute=10)
    svc, _ = service(base)
    assert svc.admit("alice", "k1", "a", "notebook").allowed  # holds the only slot
    for i in range(5):
        refused = svc.admit("alice", "k2", f"b{i}", "notebook")
        assert refused.reason == CONCURRENT
    usage = svc.usage("alice")
    # the daily and per-minute entries of the refused executions were taken back
    assert (usage.daily.executions, usage.executions_in_window) == (1, 1)
    assert svc.store.held("alice") == frozenset({"k1"})


def test_a_per_minute_refusal_takes_back_the_daily_entry():
    svc, _ = service(Limits(max_executions_per_day=100, max_executions_per_minute=2))
    run(svc, msg_id="a")
    run(svc, msg_id="b")
    for i in range(20):
        assert run(svc, msg_id=f"x{i}").reason == PER_MINUTE
    assert svc.usage("alice").daily.executions == 2


# --- the daily quota through the service --------------------------------------------------


def test_daily_quota_refuses_the_third_of_two_and_frees_24_h_after_the_first():
    svc, tick = service(Limits(max_executions_per_day=2, max_executions_per_minute=10, window_seconds=60.0))
    assert run(svc, msg_id="a").allowed
    tick(600.0)
    assert run(svc, msg_id="b").allowed
    tick(600.0)
    refused = run(svc, msg_id="c")
    assert not refused.allowed and refused.reason == PER_DAY
    assert refused.retry_after_seconds == pytest.approx(DAY - 1200.0)
    usage = svc.usage("alice")
    assert (usage.daily.executions, usage.daily.remaining) == (2, 0)
    assert usage.limited and usage.level == "limited"
    assert usage.retry_after_seconds == pytest.approx(DAY - 1200.0)
    assert usage.remaining == 10  # the per-minute window is not what refuses
    tick(DAY - 1200.0)
    assert run(svc, msg_id="c").allowed  # "a" is 24 h old
    assert not run(svc, msg_id="d").allowed  # "b" is not yet
    tick(600.0)
    assert run(svc, msg_id="d").allowed


def test_daily_quota_per_user_and_group_overrides():
    svc, _ = service(
        Limits(max_executions_per_day=1),
        user_limits={"bob": {"max_executions_per_day": 3}, "@big": {"max_executions_per_day": 5}},
        groups={"big": ["carol"]},
    )
    assert run(svc, "alice", "ka", "a1").allowed
    assert run(svc, "alice", "ka", "a2").reason == PER_DAY
    for i in range(3):
        assert run(svc, "bob", "kb", f"b{i}").allowed
    assert run(svc, "bob", "kb", "b3").reason == PER_DAY
    for i in range(5):
        assert run(svc, "carol", "kc", f"c{i}").allowed
    assert run(svc, "carol", "kc", "c5").reason == PER_DAY
    # off by default; on for one user only
    only_dave, _ = service(user_limits={"dave": {"max_executions_per_day": 1}})
    assert only_dave.usage("erin").daily is None and only_dave.usage("dave").daily.remaining == 1
    assert run(only_dave, "dave", "kd", "d1").allowed and run(only_dave, "dave", "kd", "d2").reason == PER_DAY
    assert run(only_dave, "erin", "ke", "e1").allowed and run(only_dave, "erin", "ke", "e2").allowed


def test_daily_trait_defaults_to_off_and_must_not_be_negative():
    assert EDARateLimiter().max_executions_per_day == 0 and Limits().max_executions_per_day == 0
    assert EDARateLimiter(max_executions_per_day=5).max_executions_per_day == 5
    with pytest.raises(TraitError, match="max_executions_per_day must be >= 0"):
        EDARateLimiter(max_executions_per_day=-1)
    validate_user_limits({"@analysts": {"max_executions_per_day": 100}})
    with pytest.raises(TraitError, match="max_executions_per_day"):
        validate_user_limits({"alice": {"max_executions_per_day": -1}})


def test_duration_words_round_up():
    assert [duration_words(s) for s in (0.2, 59.0, 61.0, 3600.0, 3601.0, 18720.0)] == [
        "1 s", "59 s", "2 min", "1 h", "1 h 01 min", "5 h 12 min"]


# --- usage rendered -----------------------------------------------------------------------


def test_usage_renders_the_rate_limit_status_shape_with_daily_fields():
    svc, tick = service(Limits(max_executions_per_day=4, max_executions_per_minute=10, window_seconds=60.0))
    off = render_status(service()[0].usage("alice"))
    assert off["daily"] is None and off["limits"]["max_executions_per_day"] == 0
    svc.saw("alice")
    run(svc, msg_id="a")
    tick(30.0)
    assert svc.admit("alice", "k1", "live", "api").allowed
    tick(2.0)
    body = render_status(svc.usage("alice"))
    assert body["limits"] == {"max_executions_per_minute": 10, "window_seconds": 60.0,
                              "max_concurrent_executions": 2, "max_executions_per_day": 4}
    assert body["daily"] == {"executions": 2, "remaining": 2, "reset_in_seconds": DAY - 32.0}
    assert (body["executions_in_window"], body["remaining"], body["reset_in_seconds"]) == (2, 8, 28.0)
    assert body["concurrent_executions"] == 1 and body["retry_after_seconds"] == 0 and body["status"] == "normal"
    assert body["active_executions"] == [{"kernel_id": "k1", "source": "api",
                                          "started_at": "2027-01-15T08:00:30Z", "duration_seconds": 2.0}]
    assert body["session"] == {"started_at": "2027-01-15T08:00:00Z", "duration_seconds": 32.0}


def test_reading_usage_has_no_side_effects():
    svc, tick = service()
    first = svc.usage("alice")
    tick(100.0)
    assert svc.usage("alice").session_started_at == first.taken_at + 100.0  # never seen: no session yet
    svc.saw("alice")
    tick(5.0)
    svc.saw("alice")  # seen again: the session does not move
    assert render_status(svc.usage("alice"))["session"]["duration_seconds"] == 5.0
    assert len(svc.store) == 0  # reading created nothing


def test_levels_come_from_the_shared_thresholds():
    svc, tick = service(Limits(max_executions_per_minute=10))
    levels = []
    for i in range(10):
        levels.append(svc.usage("alice").level)
        run(svc, msg_id=f"m{i}")
    levels.append(svc.usage("alice").level)
    assert levels == ["normal"] * 5 + ["medium"] * 3 + ["high"] * 2 + ["limited"]


class Headers:
    def __init__(self):
        self.headers = {}

    def set_header(self, name, value):
        self.headers[name] = value


def test_rate_limit_headers_are_rendered_from_the_usage():
    svc, tick = service(Limits(max_executions_per_minute=3, window_seconds=90.0))
    run(svc, msg_id="a")
    tick(10.4)
    handler = Headers()
    set_rate_limit_headers(handler, svc.usage("alice"))
    assert handler.headers == {"RateLimit-Policy": '"exec";q=3;w=90', "RateLimit": '"exec";r=2;t=80'}
