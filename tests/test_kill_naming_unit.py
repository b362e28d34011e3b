"""A kill for a broken limit is named by its verdict, whoever notices the process gone first.

The watchdog kills a kernel's tree and restarts it; meanwhile jupyter_server's auto-restarter
may see the process gone and report "died" (eda_gateway/endings.py: KernelDied). Seen on a
saturated 2-core machine: a REST run ended as KernelDied instead of ExecutionTimeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from types import SimpleNamespace

from eda_gateway.execution import KernelRunner
from eda_gateway.limits import Limits
from eda_gateway.outputs import OutputCollector
from eda_gateway.sandbox.watchdog import Watchdog
from eda_gateway.verdicts import EXECUTION_TIMEOUT, KERNEL_DIED, Verdict, VerdictBus

log = logging.getLogger("test")


def run_alone(coroutine):
    # in a thread of its own: other tests' plugins (playwright) may leave a loop running in this one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def test_the_watchdog_names_a_kill_for_time_before_the_process_goes():
    bus, seen_at_kill = VerdictBus(), []
    published = []
    bus.add_listener(published.append)

    async def kill_tree(kernel_id):
        seen_at_kill.extend(v.ename for v in published)

    sandbox = SimpleNamespace(backend=None, log=log, kill_tree=kill_tree, kernels={},
                              config=SimpleNamespace(interrupt_grace=2.0))
    watchdog = Watchdog(sandbox, None, {}, bus, limits_for=lambda owner: Limits())
    run_alone(watchdog._kill_for_time("k", "m", Limits(max_execution_time=3)))
    assert seen_at_kill == [EXECUTION_TIMEOUT]


def test_a_rest_run_killed_for_a_limit_keeps_its_verdict_over_the_ending_that_follows():
    bus = VerdictBus()
    runner = KernelRunner(None, bus, SimpleNamespace(allocation_refused=lambda *a: None), 1 << 20, log)
    verdicts = [
        Verdict(EXECUTION_TIMEOUT, "ran longer than max_execution_time and was killed", "k", "m", killed=True),
        Verdict(KERNEL_DIED, "the kernel's process ended unexpectedly", "k", None, killed=True),
    ]

    async def result():
        reply = asyncio.get_running_loop().create_future()  # never answered: the kernel was killed
        return runner._result("k", "m", 0.0, OutputCollector(1 << 20), reply, verdicts, "killed", 60)

    assert run_alone(result()).error["ename"] == EXECUTION_TIMEOUT
