"""One background sampler; system-stats, Prometheus and history read its snapshot.

Every ``EDATelemetry.interval`` seconds (default 2) the sampler gathers the
kernel list on the event loop (cheap attribute reads), then measures host
CPU/memory and every kernel's usage in a worker thread (the sandbox backend:
cgroup files, or the psutil watchdog's last pass). Requests never walk
processes: they read ``EDATelemetry.snapshot``. ``EDATelemetry`` is both the
configuration section and the service (``Telemetry`` is its other name).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sized
from dataclasses import dataclass, field
from typing import Any, Protocol

import psutil
from traitlets import Float, TraitError, validate
from traitlets.config import LoggingConfigurable

from .limits import Limits


@dataclass(frozen=True)
class KernelSample:
    kernel_id: str
    user: str
    pid: int | None
    memory_bytes: int
    cpu_percent: float
    execution_state: str
    limits: Limits
    dataset: str | None = None  # a dataset kernel of the execution API (EDA Runner, agents): its dataset
    warm: bool = False  # started ahead for its owner's next dataset (EDAGateway.warm_start)

    def to_json(self) -> dict:
        return {
            "kernel_id": self.kernel_id,
            "user": self.user,
            "pid": self.pid,
            "memory_bytes": self.memory_bytes,
            "cpu_percent": round(self.cpu_percent, 1),
            "execution_state": self.execution_state,
            "dataset": self.dataset,
            "warm": self.warm,
            "limits": {
                "memory_bytes": self.limits.memory_bytes,
                "cpu_percent": self.limits.max_cpu_percent,
                "execution_seconds": self.limits.max_execution_time,
            },
        }


@dataclass(frozen=True)
class Snapshot:
    cpu_percent: float = 0.0
    cpu_count: int = field(default_factory=lambda: psutil.cpu_count() or 1)
    memory_total: int = 0
    memory_used: int = 0
    memory_available: int = 0
    memory_percent: float = 0.0
    kernels: tuple[KernelSample, ...] = ()
    active_executions: int = 0
    enforcement: str = "none"
    sampled_at: float | None = None  # epoch seconds; None before the first sample
    duration_seconds: float = 0.0  # how long the measurement took

    @property
    def active_users(self) -> int:
        return len({k.user for k in self.kernels})


@dataclass
class _Previous:
    cpu_seconds: float
    at: float


class Kernels(Protocol):
    """The kernel manager, as the sampler reads it (EDAKernelManager)."""

    def list_kernel_ids(self) -> list[str]: ...

    def get_kernel(self, kernel_id: str) -> Any: ...

    def owner_of(self, kernel_id: str) -> str | None: ...


class EDATelemetry(LoggingConfigurable):
    """How often the one background sampler measures the host and every kernel; the sampler."""

    interval = Float(2.0, config=True, help="Seconds between two samples behind system-stats and /metrics.")

    @validate("interval")
    def _positive(self, proposal):
        if proposal["value"] <= 0:
            raise TraitError(f"EDATelemetry.interval must be > 0, got {proposal['value']!r}")
        return proposal["value"]

    def __init__(self, *, kernels: Kernels, sandbox, limits_for: Callable[[str], Limits],
                 active_executions: Callable[[], Sized], **kwargs):
        """``sandbox``: eda_gateway.sandbox.Sandbox (usage, pids, limits of confined kernels);
        ``active_executions``: admission's executions in flight."""
        super().__init__(**kwargs)
        self.kernels = kernels
        self.sandbox = sandbox
        self.limits_for = limits_for
        self.active_executions = active_executions
        # kernel_id -> dataset of the execution API's kernels (None: a warm one); set once that exists
        self.dataset_kernels: Callable[[], dict[str, str | None]] = dict
        self.snapshot = Snapshot()
        self.listeners: list[Callable[[Snapshot], None]] = []
        self._previous: dict[str, _Previous] = {}
        self._task: asyncio.Task | None = None

    def start(self) -> asyncio.Task:
        psutil.cpu_percent(interval=None)  # the first call only sets the baseline
        self._task = asyncio.create_task(self._run())
        return self._task

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            try:
                await self.sample_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.log.exception("eda_gateway: telemetry sample failed")
            await asyncio.sleep(self.interval)

    def _kernels_now(self) -> list[tuple[str, str, str]]:
        """(kernel_id, owner, execution_state) of every kernel: event-loop reads only."""
        mapping = self.kernels
        out = []
        for kernel_id in mapping.list_kernel_ids():
            try:
                state = getattr(mapping.get_kernel(kernel_id), "execution_state", "unknown")
            except KeyError:
                continue
            out.append((kernel_id, mapping.owner_of(kernel_id) or "", state))
        return out

    def _active_executions(self) -> int:
        return len(self.active_executions())

    def _measure(self):
        """Blocking part, in a worker thread."""
        started = time.perf_counter()
        usage = self.sandbox.sample()
        cpu = psutil.cpu_percent(interval=None)
        memory = psutil.virtual_memory()
        return usage, cpu, memory, time.perf_counter() - started

    async def sample_once(self) -> Snapshot:
        kernels = self._kernels_now()
        datasets = self.dataset_kernels()
        loop = asyncio.get_running_loop()
        usage, cpu, memory, took = await loop.run_in_executor(None, self._measure)
        now = time.time()
        sandbox = self.sandbox
        samples = []
        for kernel_id, owner, state in kernels:
            record = sandbox.kernels.get(kernel_id)
            measured = usage.get(kernel_id)
            cpu_percent = 0.0
            if measured is not None:
                previous = self._previous.get(kernel_id)
                if previous is not None and now > previous.at and measured.cpu_seconds >= previous.cpu_seconds:
                    cpu_percent = 100 * (measured.cpu_seconds - previous.cpu_seconds) / (now - previous.at)
                self._previous[kernel_id] = _Previous(measured.cpu_seconds, now)
            samples.append(
                KernelSample(
                    kernel_id=kernel_id,
                    user=owner,
                    pid=record.pid if record else None,
                    memory_bytes=measured.memory_bytes if measured else 0,
                    cpu_percent=cpu_percent,
                    execution_state=state,
                    limits=record.limits if record else self.limits_for(owner),
                    dataset=datasets.get(kernel_id),
                    warm=kernel_id in datasets and datasets[kernel_id] is None,
                )
            )
        known = {k for k, _, _ in kernels}
        for gone in set(self._previous) - known:
            del self._previous[gone]
        self.snapshot = Snapshot(
            cpu_percent=cpu,
            cpu_count=psutil.cpu_count() or 1,
            memory_total=memory.total,
            memory_used=memory.used,
            memory_available=memory.available,
            memory_percent=memory.percent,
            kernels=tuple(samples),
            active_executions=self._active_executions(),
            enforcement=sandbox.enforcement,
            sampled_at=now,
            duration_seconds=took,
        )
        for listener in list(self.listeners):
            try:
                listener(self.snapshot)
            except Exception:
                self.log.exception("eda_gateway: telemetry listener failed")
        return self.snapshot


Telemetry = EDATelemetry
