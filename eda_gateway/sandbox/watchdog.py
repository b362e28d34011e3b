"""Stops what breaks a limit and names it: wall time and memory verdicts.

Wall time: admission tells us when executions are admitted and finished. A
kernel runs its executions in order, so the head of a kernel's queue started
when it was admitted or when the one before it finished, whichever is later;
the clock pauses only while the server itself (re)starts the kernel (never on
the kernel's iopub ``status``, which the kernel can forge).
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
import time
from collections import OrderedDict

from tornado.web import HTTPError

from ..verdicts import BACKGROUND_EXECUTION_TIMEOUT, EXECUTION_TIMEOUT, MEMORY_LIMIT_EXCEEDED, Verdict
from .base import MemoryKill
from .cpu_clock import INTERRUPT, KILL, CpuClock

MIB = 1024 * 1024


class Watchdog:
    def __init__(self, sandbox, poll_seconds: float = 0.25):
        self.sandbox = sandbox
        self.poll_seconds = poll_seconds
        self._queues: dict[str, OrderedDict[str, float]] = {}  # kernel -> msg_id -> admitted (monotonic)
        self._head_since: dict[str, float] = {}
        self._escalate_at: dict[tuple[str, str], float] = {}
        self._tasks: list[asyncio.Task] = []
        self.listening = False
        self.cpu = CpuClock()

    @property
    def gateway(self):
        return self.sandbox.gateway

    @property
    def log(self):
        return self.sandbox.log

    def start(self) -> list[asyncio.Task]:
        admission = getattr(self.gateway, "admission", None)
        if admission is not None and not self.listening:
            admission.add_listener(self.on_admission)
            self.listening = True
        elif admission is None:
            self.log.warning("eda_gateway sandbox: no admission service: wall-time limits are not enforced")
        listeners = getattr(self.gateway.kernel_manager, "listeners", None)
        if listeners is not None and self.on_kernel_event not in listeners:
            listeners.append(self.on_kernel_event)
        self._tasks = [asyncio.create_task(self._run())]
        return self._tasks

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    def forget(self, kernel_id: str) -> None:
        self._queues.pop(kernel_id, None)
        self._head_since.pop(kernel_id, None)
        for key in [k for k in self._escalate_at if k[0] == kernel_id]:
            del self._escalate_at[key]
        self.cpu.forget(kernel_id)

    # --- what the server does to kernels (trusted, unlike the kernel's iopub) -------
    def launching(self, kernel_id: str) -> None:
        """The provisioner launches a process for the kernel (every start and restart)."""
        self.cpu.launched(kernel_id, time.monotonic())

    def on_kernel_event(self, event: str, kernel_id: str, owner: str) -> None:
        if event in ("restarting", "died"):  # the old process goes; the launch follows
            self.cpu.launched(kernel_id, time.monotonic())
        elif event in ("started", "restarted"):  # a restart returns once the kernel answered
            self.cpu.server_ready(kernel_id)

    # --- admission listener --------------------------------------------------------
    def on_admission(self, event: str, info: dict) -> None:
        kernel_id, msg_id = info.get("kernel_id"), info.get("msg_id")
        if not kernel_id or not msg_id:
            return
        now = time.monotonic()
        if event == "admitted":
            queue = self._queues.setdefault(kernel_id, OrderedDict())
            if not queue:
                self._head_since[kernel_id] = now
            queue[msg_id] = now
        elif event == "finished":
            queue = self._queues.get(kernel_id)
            if queue is None or msg_id not in queue:
                return
            was_head = next(iter(queue)) == msg_id
            del queue[msg_id]
            self._escalate_at.pop((kernel_id, msg_id), None)
            if was_head:
                self._head_since[kernel_id] = now
            if not queue:
                self._queues.pop(kernel_id, None)
                self._head_since.pop(kernel_id, None)

    def in_flight(self, kernel_id: str) -> str | None:
        queue = self._queues.get(kernel_id)
        return next(iter(queue)) if queue else None

    # --- the loop ----------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                backend = self.sandbox.backend
                if backend is None:
                    continue
                for kill in await loop.run_in_executor(None, backend.memory_kills):
                    await self._memory_verdict(kill)
                await self._check_wall_time()
                await self._check_cpu(await loop.run_in_executor(None, backend.cpu_seconds))
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("eda_gateway sandbox: watchdog tick failed")

    async def _check_wall_time(self) -> None:
        now = time.monotonic()
        for kernel_id in list(self._queues):
            msg_id = self.in_flight(kernel_id)
            if msg_id is None:
                continue
            limits = self._limits(kernel_id)
            state = self._execution_state(kernel_id)
            escalate_at = self._escalate_at.get((kernel_id, msg_id))
            if escalate_at is None:
                if self.cpu.starting(kernel_id, now):
                    # the server is (re)starting the kernel: that does not eat the execution's
                    # time (iopub's "starting"/"idle" would, but the kernel can forge them)
                    self._head_since[kernel_id] = now
                elif now - self._head_since.get(kernel_id, now) >= limits.max_execution_time:
                    await self._interrupt(kernel_id, msg_id, limits)
            elif now >= escalate_at:
                if state == "idle" and not self.cpu.busy(kernel_id):
                    # the interrupt worked but its reply got lost; a forged idle over a
                    # busy core is no end
                    self.on_admission("finished", {"kernel_id": kernel_id, "msg_id": msg_id})
                else:
                    await self._kill_for_time(kernel_id, msg_id, limits)

    async def _check_cpu(self, cpu_seconds: dict[str, float]) -> None:
        now = time.monotonic()
        grace = self.sandbox.config.interrupt_grace
        for kernel_id, seconds in cpu_seconds.items():
            if kernel_id not in self.sandbox.kernels:
                continue
            limits = self._limits(kernel_id)
            decision = self.cpu.observe(
                kernel_id, now, seconds,
                admitted=self.in_flight(kernel_id) is not None,
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
            return getattr(self.gateway.kernel_manager.get_kernel(kernel_id), "execution_state", "busy")
        except (KeyError, HTTPError):  # jupyter_server answers an unknown kernel with a 404
            return "dead"

    def _limits(self, kernel_id: str):
        record = self.sandbox.kernels.get(kernel_id)
        if record is not None:
            return record.limits
        owner = self.gateway.kernel_manager.owner_of(kernel_id) or ""
        return self.gateway.limits_for(owner)

    # --- verdicts -------------------------------------------------------------------
    async def _interrupt(self, kernel_id: str, msg_id: str, limits) -> None:
        grace = self.sandbox.config.interrupt_grace
        self._escalate_at[(kernel_id, msg_id)] = time.monotonic() + grace
        self.gateway.verdicts.publish(
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
            kernel = self.gateway.kernel_manager.get_kernel(kernel_id)
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
        """The interrupt did not help: kill the tree, say so, start the kernel anew."""
        self.forget(kernel_id)
        self.log.warning("eda_gateway sandbox: kernel %s %s: killing and restarting it", kernel_id, why)
        await self.sandbox.kill_tree(kernel_id)
        self.gateway.verdicts.publish(verdict)
        await self._restart(kernel_id)

    async def _interrupt_background(self, kernel_id: str, limits) -> None:
        limit = limits.max_execution_time
        self.gateway.verdicts.publish(
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
        self.gateway.verdicts.publish(verdict)
        return verdict

    async def _restart(self, kernel_id: str) -> None:
        mapping = self.gateway.kernel_manager
        if kernel_id not in mapping:
            return
        if mapping.get_kernel(kernel_id).shutting_down:
            return  # the auto-restarter (or a shutdown) got there first
        try:
            await mapping.restart_kernel(kernel_id, now=True, answered=True)
        except Exception:
            self.log.exception("eda_gateway sandbox: restarting kernel %s failed", kernel_id)
