"""The execution ledger and its bus on their own, with a hand-driven clock: order, the
head and since when, the clock held while the server (re)starts a kernel, expiry, every
end reason exactly once, and subscribers that fail closed or are only logged."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from eda_gateway import ledger as ledger_module
from eda_gateway.ledger import (
    ADMITTED,
    END_REASONS,
    EXPIRED,
    IDLE,
    KERNEL_STOPPED,
    KILLED,
    REPLIED,
    STARTED,
    ExecutionAdmitted,
    ExecutionBus,
    ExecutionFinished,
    ExecutionLedger,
    ExecutionStarted,
)
from eda_gateway.limits import Limits
from eda_gateway.sandbox.watchdog import Watchdog
from eda_gateway.verdicts import EXECUTION_TIMEOUT


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Store:
    """Records what the ledger releases."""

    def __init__(self):
        self.released: list[tuple[str, str]] = []

    def release(self, user, kernel_id, now):
        self.released.append((user, kernel_id))


def make(budget=45.0, stop_kernel=None):
    clock = Clock()
    events = []
    bus = ExecutionBus(stop_kernel=stop_kernel)
    bus.observe(events.append)
    store = Store()
    return ExecutionLedger(bus, store, lambda user: budget, clock, Clock(1.8e9)), clock, events, store


def finished(events):
    return [(e.msg_id, e.reason) for e in events if isinstance(e, ExecutionFinished)]


def started(events):
    return [e.msg_id for e in events if isinstance(e, ExecutionStarted)]


def test_executions_keep_their_order_and_the_head_runs_from_when_it_could_start():
    ledger, clock, events, _ = make()
    ledger.begin("alice", "k1", "a", "notebook")
    clock.now += 1
    ledger.begin("alice", "k1", "b", "notebook")
    ledger.begin("alice", "k1", "c", "api")
    assert ledger.pending_on("k1") == ["a", "b", "c"]
    assert (ledger.head("k1").msg_id, ledger.head("k1").since) == ("a", 1000.0)
    assert [ledger.state("k1", m) for m in "abc"] == [STARTED, ADMITTED, ADMITTED]
    clock.now += 4
    ledger.finish("k1", "b", REPLIED)  # not the head: the head's clock does not move
    assert (ledger.head("k1").msg_id, ledger.head("k1").since) == ("a", 1000.0)
    clock.now += 2
    ledger.finish("k1", "a", REPLIED)  # c starts now
    assert (ledger.head("k1").msg_id, ledger.head("k1").since) == ("c", 1007.0)
    assert started(events) == ["a", "c"]
    assert [type(e).__name__ for e in events[:4]] == ["ExecutionAdmitted", "ExecutionStarted",
                                                       "ExecutionAdmitted", "ExecutionAdmitted"]


def test_the_head_clock_stands_still_while_the_server_restarts_the_kernel():
    ledger, clock, _, _ = make()
    ledger.begin("alice", "k1", "a", "notebook")
    for _ in range(3):  # every watchdog tick of the (re)start
        clock.now += 5
        ledger.hold_head_clock("k1")
    assert ledger.head("k1").since == 1015.0
    clock.now += 5  # the kernel is up: the clock runs again
    assert clock.now - ledger.head("k1").since == 5.0
    ledger.hold_head_clock("k2")  # a kernel without executions: nothing to hold
    assert ledger.head("k2") is None


def test_a_lease_nobody_ended_expires_and_the_next_gets_its_own_budget():
    ledger, clock, events, store = make(budget=45.0)
    ledger.begin("alice", "k1", "a", "notebook")
    ledger.begin("alice", "k1", "b", "notebook")
    clock.now += 44
    ledger.expire("alice")
    assert ledger.pending_on("k1") == ["a", "b"]
    clock.now += 2
    ledger.expire()  # everyone's
    assert finished(events) == [("a", EXPIRED)] and ledger.state("k1", "a") == EXPIRED
    assert ledger.head("k1") == ledger_module.Head("b", "alice", 1045.0)
    clock.now += 45
    assert ledger.active_executions("alice") == []  # b expired too, 45 s after it could start
    assert finished(events) == [("a", EXPIRED), ("b", EXPIRED)]
    assert store.released == [("alice", "k1")]


@pytest.mark.parametrize("reason", sorted(END_REASONS))
def test_every_end_reason_is_told_once_and_remembered(reason):
    ledger, _, events, store = make()
    ledger.begin("alice", "k1", "a", "notebook")
    ledger.begin("alice", "k1", "b", "notebook")
    assert ledger.finish("k1", "a", reason)
    assert ledger.end_kernel("k1", reason) == 1
    assert finished(events) == [("a", reason), ("b", reason)]
    assert ledger.state("k1", "a") == ledger.state("k1", "b") == reason
    assert all(e.user == "alice" and e.kernel_id == "k1" for e in events)
    assert store.released == [("alice", "k1")]


def test_each_execution_ends_once_whoever_tries_to_end_it():
    ledger, clock, events, store = make(budget=45.0)
    for m in ("a", "b", "c"):
        ledger.begin("alice", "k1", m, "notebook")
    assert ledger.finish("k1", "a", REPLIED)
    assert not ledger.finish("k1", "a", IDLE)  # the lease keeper saw the idle after the reply
    assert ledger.end_kernel("k1", KILLED) == 2  # a verdict: b and c
    assert ledger.end_kernel("k1", KERNEL_STOPPED) == 0  # the lease keeper, on the same kill
    assert not ledger.finish("k1", "b", REPLIED)  # a late reply
    clock.now += 100
    ledger.expire()
    assert finished(events) == [("a", REPLIED), ("b", KILLED), ("c", KILLED)]
    assert ledger.state("k1", "a") == REPLIED and ledger.state("k9", "a") is None
    assert store.released == [("alice", "k1")]  # the store hears once, when the kernel is free


def test_every_user_holding_a_lease_on_a_kernel_is_released_with_it():
    ledger, _, _, store = make()
    ledger.begin("alice", "k1", "a", "notebook")
    ledger.begin("admin", "k1", "b", "notebook")  # an admin runs code in alice's kernel
    ledger.finish("k1", "a", REPLIED)
    assert store.released == []  # the kernel is still busy
    ledger.finish("k1", "b", REPLIED)
    assert sorted(store.released) == [("admin", "k1"), ("alice", "k1")]
    assert ledger.kernels() == [] and ledger.active_executions() == []


def test_the_same_request_again_is_one_lease():
    ledger, _, events, _ = make()
    ledger.begin("alice", "k1", "a", "notebook")
    ledger.begin("alice", "k1", "a", "notebook")
    assert ledger.pending_on("k1") == ["a"]
    assert [type(e) for e in events] == [ExecutionAdmitted, ExecutionStarted]


def test_events_are_frozen():
    event = ExecutionFinished("alice", "k1", "a", "notebook", 1.0, REPLIED)
    with pytest.raises(AttributeError):
        event.reason = IDLE


# --- the bus ---------------------------------------------------------------------------


def test_a_failing_enforcement_subscriber_stops_the_kernel_and_others_still_hear(caplog):
    stopped = []
    bus = ExecutionBus(stop_kernel=stopped.append)
    heard = []

    def broken(event):
        raise RuntimeError("a bug in a limit")

    bus.enforce(broken)
    bus.enforce(heard.append)
    bus.observe(heard.append)
    event = ExecutionStarted("alice", "k1", "a", "notebook", 1.0)
    with caplog.at_level(logging.ERROR, logger=ledger_module.log.name):
        bus.publish(event)
    assert stopped == ["k1"]
    assert heard == [event, event]
    assert "a limit failed" in caplog.text and "a bug in a limit" in caplog.text


def test_an_asynchronous_stop_is_scheduled_and_awaited():
    stopped = []

    async def stop(kernel_id):
        stopped.append(kernel_id)

    async def main():
        bus = ExecutionBus(stop_kernel=stop)
        bus.enforce(lambda event: 1 / 0)
        bus.publish(ExecutionStarted("alice", "k1", "a", "notebook", 1.0))
        await asyncio.gather(*bus._stopping)

    asyncio.run(main())
    assert stopped == ["k1"]


def test_a_failing_observer_is_logged_and_ignored(caplog):
    stopped = []
    bus = ExecutionBus(stop_kernel=stopped.append)
    heard = []
    bus.observe(lambda event: 1 / 0)
    bus.observe(heard.append)
    event = ExecutionAdmitted("alice", "k1", "a", "notebook", 1.0)
    with caplog.at_level(logging.ERROR, logger=ledger_module.log.name):
        bus.publish(event)
    assert heard == [event] and stopped == []
    assert "an observer failed on ExecutionAdmitted" in caplog.text


def test_a_failing_enforcement_subscriber_without_a_stop_is_critical(caplog):
    bus = ExecutionBus()
    bus.enforce(lambda event: 1 / 0)
    with caplog.at_level(logging.CRITICAL, logger=ledger_module.log.name):
        bus.publish(ExecutionStarted("alice", "k1", "a", "notebook", 1.0))
    assert "nothing can stop kernel k1" in caplog.text


# --- the watchdog reads the ledger -----------------------------------------------------


class Verdicts:
    def __init__(self):
        self.published = []

    def publish(self, verdict):
        self.published.append(verdict)


class Kernel:
    execution_state = "busy"
    shutting_down = False

    def __init__(self):
        self.interrupts = 0

    def interrupt_kernel(self):
        self.interrupts += 1


def watched(limits_for=lambda user: Limits(max_execution_time=30.0)):
    clock = Clock()
    stopped = []
    bus = ExecutionBus(stop_kernel=stopped.append)
    ledger = ExecutionLedger(bus, Store(), lambda user: 1000.0, clock)
    kernel = Kernel()
    kernel_manager = SimpleNamespace(get_kernel=lambda kid: kernel, owner_of=lambda kid: "alice", listeners=[])
    sandbox = SimpleNamespace(backend=None, kernels={}, config=SimpleNamespace(interrupt_grace=5.0),
                              log=logging.getLogger("test"))
    verdicts = Verdicts()
    watchdog = Watchdog(sandbox, ledger, kernel_manager, verdicts, limits_for, clock=clock)
    bus.enforce(watchdog.on_execution)  # what watchdog.start() subscribes
    return watchdog, ledger, clock, verdicts, kernel, stopped


def test_the_watchdog_interrupts_the_head_at_its_limit_from_the_ledger():
    watchdog, ledger, clock, verdicts, kernel, _ = watched()
    ledger.begin("alice", "k1", "a", "notebook")
    ledger.begin("alice", "k1", "b", "notebook")
    clock.now += 20
    ledger.finish("k1", "a", REPLIED)  # b's 30 s start now
    clock.now += 29.9
    asyncio.run(watchdog._check_wall_time())
    assert verdicts.published == []
    clock.now += 0.1
    asyncio.run(watchdog._check_wall_time())
    assert [(v.ename, v.msg_id, v.killed) for v in verdicts.published] == [(EXECUTION_TIMEOUT, "b", False)]
    assert kernel.interrupts == 1


def test_the_watchdog_holds_the_head_clock_while_the_server_restarts_the_kernel():
    watchdog, ledger, clock, verdicts, _, _ = watched()
    watchdog.launching("k1")  # the provisioner launches the process
    ledger.begin("alice", "k1", "a", "notebook")
    for _ in range(10):  # 15 s of a (re)start that has not settled yet
        clock.now += 1.5
        asyncio.run(watchdog._check_wall_time())
    watchdog.cpu.forget("k1")  # settled
    clock.now += 29.0
    asyncio.run(watchdog._check_wall_time())
    assert verdicts.published == []  # 44 s after admission, 29 s after the start
    clock.now += 1.0
    asyncio.run(watchdog._check_wall_time())
    assert [v.msg_id for v in verdicts.published] == ["a"]


def test_after_an_interrupt_an_idle_kernel_ends_the_execution_in_the_ledger():
    watchdog, ledger, clock, verdicts, kernel, _ = watched()
    ledger.begin("alice", "k1", "a", "notebook")
    clock.now += 30
    asyncio.run(watchdog._check_wall_time())
    kernel.execution_state = "idle"  # the interrupt worked; its reply was lost
    clock.now += 5
    asyncio.run(watchdog._check_wall_time())
    assert ledger.state("k1", "a") == IDLE and ledger.head("k1") is None
    assert watchdog._escalate_at == {}


def test_a_watchdog_that_cannot_limit_an_execution_stops_its_kernel():
    def no_limits(user):
        raise KeyError(user)

    _, ledger, _, _, _, stopped = watched(limits_for=no_limits)
    ledger.begin("alice", "k1", "a", "notebook")
    assert stopped == ["k1"]


def test_a_wall_time_check_that_fails_stops_that_kernel_and_checks_the_others():
    calls = []

    def flaky_limits(user):
        calls.append(user)
        if len(calls) == 3:  # k1's first tick: a bug in the check
            raise RuntimeError("a bug in the check")
        return Limits(max_execution_time=30.0)

    watchdog, ledger, clock, verdicts, _, stopped = watched(limits_for=flaky_limits)
    ledger.begin("alice", "k1", "a", "notebook")
    ledger.begin("alice", "k2", "b", "notebook")
    clock.now += 30
    asyncio.run(watchdog._check_wall_time())
    assert stopped == ["k1"]
    assert [v.msg_id for v in verdicts.published] == ["b"]  # k2 is still limited
