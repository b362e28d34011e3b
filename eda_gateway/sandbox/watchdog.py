"""Stops what breaks a limit and names it: wall time and memory verdicts.

Wall time: the execution ledger (eda_gateway/ledger.py) says which execution
heads each kernel's queue and since when (admitted, or the one before it ended,
whichever is later); the watchdog holds that clock only while the server itself
(re)starts the kernel (never on the kernel's iopub ``status``, which the kernel
can forge). It subscribes to the ledger's bus as an enforcement subscriber: if it
fails on an event, the bus stops the kernel rather than leave it unlimited.
At ``max_execution_time`` the watchdog publishes ``ExecutionTimeout``
(killed=False) and interrupts the kernel; if the execution is still running
``interrupt_grace`` seconds later, the kernel's tree is killed, the kernel
restarted, and ``ExecutionTimeout`` published again with killed=True.

Busy without an execution: the CPU clock (cpu_clock.py) sums the time a kernel
keeps a core busy, by the backend's CPU accounting, while no admitted execution
is in flight (completions, comm or debugger code, threads, a forged ``idle``).
Past ``max_execution_time``: ``BackgroundExecutionTimeout`` (killed=False) and
an interrupt; still busy ``interrupt_grace`` later: kill, restart, and the
verdict again with killed=True.

Memory: the backend reports kills for memory (the kernel's OOM killer in a
cgroup, or the psutil watchdog); the watchdog publishes
``MemoryLimitExceeded`` (killed=True) naming the limit and the peak, kills
what is left of the tree and restarts the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from tornado.web import HTTPError

from ..ledger import IDLE, ExecutionEvent, ExecutionFinished, ExecutionLedger, ExecutionStarted
from ..verdicts import BACKGROUND_EXECUTION_TIMEOUT, EXECUTION_TIMEOUT, MEMORY_LIMIT_EXCEEDED, Verdict
from .base import MemoryKill
from .cpu_clock import INTERRUPT, KILL, CpuClock

MIB = 1024 * 1024


class Confinement(Protocol):
    """What the watchdog needs of the sandbox (eda_gateway/sandbox/service.py)."""

    backend: object  # the enforcement backend, None when stopped
    kernels: dict  # kernel_id -> ConfinedKernel (its limits)
    config: object  # EDASandbox: interrupt_grace
    log: logging.Logger

    async def kill_tree(self, kernel_id: str) -> None: ...


class Watchdog:
    def __init__(self, sandbox: Confinement, ledger: ExecutionLedger | None, kernel_manager, verdicts,
                 limits_for: Callable[[str], object], poll_seconds: float = 0.25,
                 clock: Callable[[], float] = time.monotonic):
        self.sandbox = sandbox
        self.ledger = ledger
        self.kernel_manager = kernel_manager
        self.verdicts = verdicts
        self.limits_for = limits_for
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._escalate_at: dict[tuple[str, str], float] = {}
        self._server_work: dict[str, int] = {}  # kernel -> requests of the server's own in flight
        self._tasks: list[asyncio.Task] = []
        self.listening = False
        self.cpu = CpuClock()

    @property
    def log(self):
        return self.sandbox.log

    def start(self) -> list[asyncio.Task]:
        if self.ledger is not None and not self.listening:
            self.ledger.bus.enforce(self.on_execution)
            self.listening = True
        elif self.ledger is None:
            self.log.warning("eda_gateway sandbox: no execution ledger: wall-time limits are not enforced")
        listeners = getattr(self.kernel_manager, "listeners", None)
        if listeners is not None and self.on_kernel_event not in listeners:
            listeners.append(self.on_kernel_event)
        self._tasks = [asyncio.create_task(self._run())]
        return self._tasks

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    def forget(self, kernel_id: str) -> None:
        for key in [k for k in self._escalate_at if k[0] == kernel_id]:
            del self._escalate_at[key]
        self.cpu.forget(kernel_id)

    # --- what the server does to kernels (trusted, unlike the kernel's iopub) -------
    def launching(self, kernel_id: str) -> None:
        """The provisioner launches a process for the kernel (every start and restart)."""
        self.cpu.launched(kernel_id, self._clock())

    @contextlib.contextmanager
    def server_work(self, kernel_id: str):
        """The server runs code of its own in the kernel (a dataset's preload after each
        start): not the user's, not admitted, so its CPU is not background work. The caller
        bounds it with its own deadline."""
        self._server_work[kernel_id] = self._server_work.get(kernel_id, 0) + 1
        try:
            yield
        finally:
            self._server_work[kernel_id] -= 1
            if not self._server_work[kernel_id]:
                del self._server_work[kernel_id]

    def on_kernel_event(self, event: str, kernel_id: str, owner: str) -> None:
        if event in ("restarting", "died"):  # the old process goes; the launch follows
            self.cpu.launched(kernel_id, self._clock())
        elif event in ("started", "restarted"):  # a restart returns once the kernel answered
            self.cpu.server_ready(kernel_id)

    # --- the ledger's bus (an enforcement subscriber: failing here stops the kernel) -----
    def on_execution(self, event: ExecutionEvent) -> None:
        if isinstance(event, ExecutionStarted):
            # the head's clock runs from now: its limit must be known, or the kernel goes
            limit = self._limits(event.kernel_id).max_execution_time
            if not limit > 0:
                raise ValueError(f"no wall-time limit for kernel {event.kernel_id}: {limit!r}")
        elif isinstance(event, ExecutionFinished):
            self._escalate_at.pop((event.kernel_id, event.msg_id), None)

    def in_flight(self, kernel_id: str) -> str | None:
        head = self.ledger.head(kernel_id) if self.ledger is not None else None
        return head.msg_id if head is not None else None

    # --- the loop ----------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                backend = self.sandbox.backend
                if backend is None:
                    continue
                await self._check_memory(backend)
                await self._check_wall_time()
                await self._check_cpu(await loop.run_in_executor(None, backend.cpu_seconds))
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("eda_gateway sandbox: watchdog tick failed")

    async def _check_memory(self, backend) -> None:
        loop = asyncio.get_running_loop()
        for kernel_id in await loop.run_in_executor(None, backend.memory_kill_candidates):
            # taken here, on the loop: the auto-restarter's "died" may have taken it meanwhile
            # and published its verdict (memory_verdict_for); one of the two takes it whole
            kill = backend.take_memory_kill(kernel_id)
            if kill is not None:
                await self._memory_verdict(kill)

    async def _check_wall_time(self) -> None:
        if self.ledger is None:
            return
        now = self._clock()
        for kernel_id in self.ledger.kernels():
            try:
                await self._check_head(kernel_id, now)
            except Exception:
                # a limit that cannot be checked is no limit: the kernel stops
                self.log.exception("eda_gateway sandbox: checking the wall time of kernel %s failed", kernel_id)
                self.ledger.bus.stop_unlimited(kernel_id)

    async def _check_head(self, kernel_id: str, now: float) -> None:
        head = self.ledger.head(kernel_id)
        if head is None:
            return
        msg_id = head.msg_id
        limits = self._limits(kernel_id)
        escalate_at = self._escalate_at.get((kernel_id, msg_id))
        if escalate_at is None:
            if self.cpu.starting(kernel_id, now) or kernel_id in self._server_work:
                # the server is (re)starting the kernel or preloading its dataset: that does
                # not eat the execution's time (iopub's "starting"/"idle" would, but the
                # kernel can forge them)
                self.ledger.hold_head_clock(kernel_id)
            elif now - head.since >= limits.max_execution_time:
                await self._interrupt(kernel_id, msg_id, limits)
        elif now >= escalate_at:
            if self._execution_state(kernel_id) == "idle" and not self.cpu.busy(kernel_id):
                # the interrupt worked but its reply got lost; a forged idle over a
                # busy core is no end
                self.ledger.finish(kernel_id, msg_id, IDLE)
            else:
                await self._kill_for_time(kernel_id, msg_id, limits)

    async def _check_cpu(self, cpu_seconds: dict[str, float]) -> None:
        now = self._clock()
        grace = self.sandbox.config.interrupt_grace
        for kernel_id, seconds in cpu_seconds.items():
            if kernel_id not in self.sandbox.kernels:
                continue
            limits = self._limits(kernel_id)
            decision = self.cpu.observe(
                kernel_id, now, seconds,
                admitted=self.in_flight(kernel_id) is not None or kernel_id in self._server_work,
                limit=limits.max_execution_time, grace=grace,
                kernel_up=self._execution_state(kernel_id) != "starting",
            )
            if decision == INTERRUPT:
                await self._interrupt_background(kernel_id, limits)
            elif decision == KILL:
                await self._kill_background(kernel_id, limits)

    def _execution_state(self, kernel_id: str) -> str:
        """jupyter_server's view of the kernel, kept current from its iopub status messages."""
        try:
            return getattr(self.kernel_manager.get_kernel(kernel_id), "execution_state", "busy")
        except (KeyError, HTTPError):  # jupyter_server answers an unknown kernel with a 404
            return "dead"

    def _limits(self, kernel_id: str):
        record = self.sandbox.kernels.get(kernel_id)
        if record is not None:
            return record.limits
        owner = self.kernel_manager.owner_of(kernel_id) or ""
        return self.limits_for(owner)

    # --- verdicts -------------------------------------------------------------------
    async def _interrupt(self, kernel_id: str, msg_id: str, limits) -> None:
        grace = self.sandbox.config.interrupt_grace
        self._escalate_at[(kernel_id, msg_id)] = self._clock() + grace
        self.verdicts.publish(
            Verdict(
                EXECUTION_TIMEOUT,
                f"execution stopped: it ran longer than max_execution_time ({limits.max_execution_time:g} s)",
                kernel_id,
                msg_id,
                killed=False,
                details={"limit_seconds": limits.max_execution_time, "action": "interrupted"},
            )
        )
        self.log.warning(
            "eda_gateway sandbox: execution %s on kernel %s passed %gs: interrupting",
            msg_id, kernel_id, limits.max_execution_time,
        )
        await self._send_interrupt(kernel_id)

    async def _send_interrupt(self, kernel_id: str) -> None:
        try:
            kernel = self.kernel_manager.get_kernel(kernel_id)
            result = kernel.interrupt_kernel()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await result
        except Exception:
            self.log.exception("eda_gateway sandbox: interrupting kernel %s failed", kernel_id)

    async def _kill_for_time(self, kernel_id: str, msg_id: str, limits) -> None:
        grace = self.sandbox.config.interrupt_grace
        await self._kill_and_restart(kernel_id, f"ignored the interrupt for {grace:g}s", Verdict(
            EXECUTION_TIMEOUT,
            f"execution stopped: it ran longer than max_execution_time ({limits.max_execution_time:g} s) "
            f"and ignored the interrupt for {grace:g} s, so the kernel was killed and restarted "
            "(its variables are lost)",
            kernel_id,
            msg_id,
            killed=True,
            details={"limit_seconds": limits.max_execution_time, "action": "killed"},
        ))

    async def _kill_and_restart(self, kernel_id: str, why: str, verdict: Verdict) -> None:
        """The interrupt did not help: say so, kill the tree, start the kernel anew."""
        self.forget(kernel_id)
        self.log.warning("eda_gateway sandbox: kernel %s %s: killing and restarting it", kernel_id, why)
        # the verdict first: the auto-restarter may see the process gone while the kill is
        # awaited, and its "died" must find the execution already named
        self.verdicts.publish(verdict)
        await self.sandbox.kill_tree(kernel_id)
        await self._restart(kernel_id)

    async def _interrupt_background(self, kernel_id: str, limits) -> None:
        limit = limits.max_execution_time
        self.verdicts.publish(
            Verdict(
                BACKGROUND_EXECUTION_TIMEOUT,
                f"the kernel kept a CPU busy for longer than max_execution_time ({limit:g} s) with no "
                "execution running (completion, comm, debugger or thread code): it was interrupted",
                kernel_id,
                None,
                killed=False,
                details={"limit_seconds": limit, "action": "interrupted"},
            )
        )
        self.log.warning(
            "eda_gateway sandbox: kernel %s used CPU for %gs with no execution in flight: interrupting",
            kernel_id, self.cpu.background_seconds(kernel_id),
        )
        await self._send_interrupt(kernel_id)

    async def _kill_background(self, kernel_id: str, limits) -> None:
        grace = self.sandbox.config.interrupt_grace
        await self._kill_and_restart(kernel_id, f"kept using CPU {grace:g}s after the interrupt", Verdict(
            BACKGROUND_EXECUTION_TIMEOUT,
            f"the kernel kept a CPU busy for longer than max_execution_time ({limits.max_execution_time:g} s) "
            f"with no execution running and ignored the interrupt for {grace:g} s, so it was killed and "
            "restarted (its variables are lost)",
            kernel_id,
            None,
            killed=True,
            details={"limit_seconds": limits.max_execution_time, "action": "killed"},
        ))

    async def _memory_verdict(self, kill: MemoryKill) -> None:
        self.memory_verdict(kill)
        await self.sandbox.kill_tree(kill.kernel_id)
        await self._restart(kill.kernel_id)

    def memory_verdict(self, kill: MemoryKill) -> Verdict:
        """Publish ``MemoryLimitExceeded`` for a kill (the caller sees to the restart)."""
        kernel_id = kill.kernel_id
        msg_id = self.in_flight(kernel_id)
        self.forget(kernel_id)
        limit_mib, peak_mib = kill.limit_bytes / MIB, kill.peak_bytes / MIB
        self.log.warning(
            "eda_gateway sandbox: kernel %s exceeded its memory limit (%.0f MiB, peak %.0f MiB): restarting it",
            kernel_id, limit_mib, peak_mib,
        )
        verdict = Verdict(
            MEMORY_LIMIT_EXCEEDED,
            f"the kernel used more than its memory limit of {limit_mib:.0f} MiB (peak {peak_mib:.0f} MiB) "
            "and was killed and restarted (its variables are lost)",
            kernel_id,
            msg_id,
            killed=True,
            details={"limit_bytes": kill.limit_bytes, "peak_bytes": kill.peak_bytes},
        )
        self.verdicts.publish(verdict)
        return verdict

    async def _restart(self, kernel_id: str) -> None:
        mapping = self.kernel_manager
        if kernel_id not in mapping:
            return
        if mapping.get_kernel(kernel_id).shutting_down:
            return  # the auto-restarter (or a shutdown) got there first
        try:
            await mapping.restart_kernel(kernel_id, now=True, answered=True)
        except Exception:
            self.log.exception("eda_gateway sandbox: restarting kernel %s failed", kernel_id)
