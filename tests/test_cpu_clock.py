"""The CPU clock's decisions (eda_gateway/sandbox/cpu_clock.py), on a fake clock: no kernels, no sleeps."""

from __future__ import annotations

from eda_gateway.sandbox.cpu_clock import BUSY_SHARE, INTERRUPT, KILL, CpuClock

TICK = 0.25
LIMIT, GRACE = 3.0, 2.0


class Feed:
    """One kernel's ticks: ``share`` of a core used per tick."""

    def __init__(self, clock: CpuClock, kernel_id: str = "k", now: float = 100.0) -> None:
        self.clock, self.kernel_id, self.now, self.cpu = clock, kernel_id, now, 0.0
        self.clock.observe(kernel_id, now, 0.0, admitted=False, limit=LIMIT, grace=GRACE)

    def run(self, seconds: float, share: float, admitted: bool = False, kernel_up: bool = False) -> list:
        decisions = []
        for _ in range(round(seconds / TICK)):
            self.now += TICK
            self.cpu += share * TICK
            decision = self.clock.observe(self.kernel_id, self.now, self.cpu, admitted=admitted,
                                          limit=LIMIT, grace=GRACE, kernel_up=kernel_up)
            if decision:
                decisions.append((round(self.now - 100.0, 2), decision))
            if decision == KILL:
                break  # the watchdog kills and relaunches the kernel
        return decisions


def test_a_busy_kernel_with_nothing_admitted_is_interrupted_at_the_limit_then_killed():
    feed = Feed(CpuClock())
    decisions = feed.run(10, share=0.5)
    assert [d for _, d in decisions] == [INTERRUPT, KILL]
    interrupted_at, killed_at = (t for t, _ in decisions)
    assert LIMIT <= interrupted_at <= LIMIT + 1  # judged on 1 s windows
    assert killed_at - interrupted_at >= GRACE


def test_an_idle_window_resets_the_count():
    clock = CpuClock()
    feed = Feed(clock)
    assert feed.run(2, share=0.5) == []
    assert clock.background_seconds("k") == 2
    assert feed.run(1, share=0.0) == []
    assert clock.background_seconds("k") == 0
    assert feed.run(2, share=0.5) == []  # 2 + 2 busy seconds, but not in a row
    assert [d for _, d in feed.run(2, share=0.5)] == [INTERRUPT]


def test_going_idle_after_the_interrupt_ends_the_matter():
    feed = Feed(CpuClock())
    assert [d for _, d in feed.run(4, share=0.5)] == [INTERRUPT]
    assert feed.run(1, share=0.0) == []  # the interrupt worked
    assert feed.run(2, share=0.5) == []  # counted anew: no kill


def test_admitted_executions_do_not_count_and_do_not_reset():
    clock = CpuClock()
    feed = Feed(clock)
    assert feed.run(60, share=1.0, admitted=True) == []  # its own clock (the watchdog's wall time) applies
    assert clock.background_seconds("k") == 0
    assert feed.run(2, share=0.5) == []
    assert feed.run(2, share=0.5, admitted=True) == []  # a cell in between pauses the count ...
    assert clock.background_seconds("k") == 2
    assert [d for _, d in feed.run(1, share=0.5)] == [INTERRUPT]  # ... it does not reset it


def test_short_cells_between_ticks_only_exempt_their_own_ticks():
    clock = CpuClock()
    feed = Feed(clock)
    for _ in range(4):  # an admitted tick in every window
        feed.run(TICK, share=0.5, admitted=True)
        feed.run(3 * TICK, share=0.5)
    assert clock.background_seconds("k") == 3.0


def test_the_threshold_is_a_share_of_one_core():
    below, above = Feed(CpuClock()), Feed(CpuClock())
    assert below.run(30, share=BUSY_SHARE * 0.8) == []  # an idle-ish kernel: never busy
    assert [d for _, d in above.run(4, share=BUSY_SHARE * 1.5)] == [INTERRUPT]


def test_a_start_is_exempt_until_the_kernel_settles():
    clock = CpuClock()
    feed = Feed(clock)
    clock.launched("k", feed.now)
    feed.cpu = 0.0  # a new process: its counter starts again
    assert clock.starting("k", feed.now)
    assert feed.run(8, share=0.5) == []  # importing ipykernel on a loaded host
    assert feed.run(1.5, share=0.0) == []  # settled (one whole window)
    assert not clock.starting("k", feed.now)
    assert [d for _, d in feed.run(4, share=0.5)] == [INTERRUPT]


def test_a_start_ends_when_the_server_says_the_kernel_is_up():
    clock = CpuClock()
    feed = Feed(clock)
    clock.launched("k", feed.now)
    assert feed.run(5, share=0.5, kernel_up=True) == []  # a kernel saying it is up counts for nothing ...
    clock.server_ready("k")  # ... until the server's own start returned
    assert not clock.starting("k", feed.now) or feed.run(TICK, share=0.5, kernel_up=True) == []
    assert not clock.starting("k", feed.now)
    assert [d for _, d in feed.run(4, share=0.5, kernel_up=True)] == [INTERRUPT]


def test_a_start_that_never_settles_is_exempt_for_a_bounded_time():
    clock = CpuClock(startup_allowance=10)
    feed = Feed(clock)
    clock.launched("k", feed.now)
    decisions = feed.run(30, share=0.5)
    assert [d for _, d in decisions] == [INTERRUPT, KILL]
    assert 10 + LIMIT <= decisions[0][0] <= 10 + LIMIT + 1


def test_kernels_are_counted_apart_and_forgotten():
    clock = CpuClock()
    busy, quiet = Feed(clock, "busy"), Feed(clock, "quiet")
    for _ in range(4):
        busy.run(1, share=0.5)
        quiet.run(1, share=0.01)
    assert clock.background_seconds("busy") >= LIMIT and clock.background_seconds("quiet") == 0
    clock.forget("busy")
    assert clock.background_seconds("busy") == 0 and not clock.busy("busy")


# --- a kernel-wide verdict (msg_id None) is not any later run's -----------------------


def test_a_background_verdict_does_not_rename_a_later_rest_runs_error():
    import asyncio
    import concurrent.futures
    import logging
    from types import SimpleNamespace

    from eda_gateway.execution import KernelRunner
    from eda_gateway.outputs import OutputCollector
    from eda_gateway.verdicts import BACKGROUND_EXECUTION_TIMEOUT, Verdict, VerdictBus

    bus = VerdictBus()
    bus.publish(Verdict(BACKGROUND_EXECUTION_TIMEOUT, "busy with no execution", "k", None, killed=False))
    runner = KernelRunner(None, bus, SimpleNamespace(allocation_refused=lambda *a: None), 1 << 20,
                          logging.getLogger("test"))
    collector = OutputCollector(1 << 20)
    error = {"ename": "NameError", "evalue": "name 'x' is not defined", "traceback": []}
    collector.add("error", error)

    async def result():
        reply = asyncio.get_running_loop().create_future()
        reply.set_result({"status": "error", "execution_count": 2, **error})
        return runner._result("k", "later-run", 0.0, collector, reply, [], None, 60)

    # in a thread of its own: other tests' plugins (playwright) may leave a loop running in this one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(asyncio.run, result()).result().error["ename"] == "NameError"
