"""RestartHold (eda_gateway/restart_hold.py) on a fake clock: what a connection's client sends
while its kernel restarts waits for the new process, in order, and is bounded."""

from __future__ import annotations

from concurrent.futures import Future

from eda_gateway.restart_hold import POLL_SECONDS, RestartHold


class FakeLoop:
    """call_later on a clock the test moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, object]] = []

    def call_later(self, delay, callback) -> None:
        self.timers.append((self.now + delay, callback))

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while True:
            due = sorted((t for t in self.timers if t[0] <= end), key=lambda t: t[0])
            if not due:
                break
            when, callback = due[0]
            self.timers.remove(due[0])
            self.now = when
            callback()
        self.now = end


def done() -> Future:
    future = Future()
    future.set_result(None)
    return future


class Kernel:
    """The kernel manager's ``ready``: jupyter_client makes a new future for each shutdown and start."""

    def __init__(self) -> None:
        self.ready = done()

    def restart_begins(self) -> None:
        self.ready = Future()

    def restart_ends(self) -> None:
        self.ready.set_result(None)


def make(kernel: Kernel, loop: FakeLoop, **options):
    released, refused = [], []
    hold = RestartHold(ready=lambda: kernel.ready, release=released.extend, refuse=refused.append,
                       clock=lambda: loop.now, call_later=loop.call_later, **options)
    return hold, released, refused


def test_messages_wait_until_the_restart_is_over_then_go_in_order():
    kernel, loop = Kernel(), FakeLoop()
    hold, released, _ = make(kernel, loop)
    hold.begin()  # the verdict: the old process is still there
    hold.hold("a")
    loop.advance(1)
    assert released == [] and hold.holding  # no restart yet: the old future is still the one
    kernel.restart_begins()
    hold.hold("b")
    loop.advance(1)
    assert released == []
    kernel.restart_ends()
    loop.advance(POLL_SECONDS)
    assert released == ["a", "b"] and not hold.holding


def test_a_hold_begun_during_the_restart_ends_with_it():
    kernel, loop = Kernel(), FakeLoop()
    kernel.restart_begins()  # the relaunch was already under way
    hold, released, _ = make(kernel, loop)
    hold.begin()
    hold.hold("a")
    loop.advance(1)
    assert released == []
    kernel.restart_ends()
    loop.advance(POLL_SECONDS)
    assert released == ["a"]


def test_beyond_max_messages_they_are_refused_not_kept():
    kernel, loop = Kernel(), FakeLoop()
    hold, released, refused = make(kernel, loop, max_messages=2)
    hold.begin()
    for message in "abcd":
        hold.hold(message)
    assert refused == ["c", "d"]
    kernel.restart_begins()
    kernel.restart_ends()
    loop.advance(POLL_SECONDS)
    assert released == ["a", "b"]


def test_a_restart_that_never_comes_ends_the_hold_after_max_wait():
    kernel, loop = Kernel(), FakeLoop()
    hold, released, _ = make(kernel, loop, max_wait=30)
    hold.begin()
    hold.hold("a")
    loop.advance(29)
    assert released == []
    loop.advance(1 + POLL_SECONDS)
    assert released == ["a"] and not hold.holding


def test_a_closing_connection_passes_nothing_on():
    kernel, loop = Kernel(), FakeLoop()
    hold, released, _ = make(kernel, loop)
    hold.begin()
    hold.hold("a")
    hold.drop()
    kernel.restart_begins()
    kernel.restart_ends()
    loop.advance(1)
    assert released == [] and not hold.holding and loop.timers == []


def test_a_second_kill_while_holding_keeps_one_hold():
    kernel, loop = Kernel(), FakeLoop()
    hold, released, _ = make(kernel, loop)
    hold.begin()
    hold.hold("a")
    hold.begin()  # e.g. the verdict, then the kernel's "restarting"
    kernel.restart_begins()
    kernel.restart_ends()
    loop.advance(1)
    assert released == ["a"]
    assert len(loop.timers) == 0  # one poll chain, ended


def test_beyond_max_bytes_they_are_refused_not_kept():
    kernel, loop = Kernel(), FakeLoop()
    hold, released, refused = make(kernel, loop, max_bytes=10)
    hold.begin()
    for message in ("aaaa", b"bbbb", "cccc", "d"):
        hold.hold(message)
    assert refused == ["cccc"]
    kernel.restart_begins()
    kernel.restart_ends()
    loop.advance(POLL_SECONDS)
    assert released == ["aaaa", b"bbbb", "d"]
