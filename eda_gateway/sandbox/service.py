"""The sandbox service: one enforcement backend, the kernels it confines, and the watchdog.

The app creates it with its collaborators, starts it before any kernel can start
and stops it last. It is the first step of the launch chain (launcher.py): the
provisioner calls ``prepare_launch`` / ``attached`` / ``kill_tree`` / ``released``
for every (re)launch of every kernel.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..limits import Limits
from ..verdicts import MEMORY_LIMIT_EXCEEDED, Verdict
from .base import KERNEL_MARKER, SERVER_MARKER, Backend, KernelUsage
from .detect import detect
from .watchdog import Watchdog

# Allocator and BLAS settings that keep a normal numpy kernel inside its limits:
# glibc's per-thread arenas and BLAS thread pools inflate memory and CPU demand.
KERNEL_ENV_DEFAULTS = {
    "MALLOC_ARENA_MAX": "2",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


@dataclass
class ConfinedKernel:
    kernel_id: str
    owner: str
    limits: Limits
    pid: int | None = None
    launched_at: float = 0.0
    launches: int = 0


@dataclass(frozen=True)
class WatchdogPeers:
    """What the watchdog (watchdog.py) works with: these four services, not the app."""

    kernel_manager: Any  # EDAKernelManager: owners, kernels to interrupt and restart, listeners
    ledger: Any  # ExecutionLedger: each kernel's head execution and since when
    limits_for: Callable[[str], Limits]
    verdicts: Any  # VerdictBus


class Sandbox:
    def __init__(self, config, log, *, limits_for: Callable[[str], Limits], verdicts, watchdog_peers: WatchdogPeers):
        """``config``: EDASandbox; ``verdicts``: the VerdictBus its verdicts go to."""
        self.config = config
        self.log = log
        self.limits_for = limits_for
        self.verdicts = verdicts
        self.backend: Backend | None = None
        self.kernels: dict[str, ConfinedKernel] = {}
        self.watchdog = Watchdog(self, watchdog_peers.ledger, watchdog_peers.kernel_manager,
                                 watchdog_peers.verdicts, watchdog_peers.limits_for, config.watchdog_interval)

    # --- life ----------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.backend is not None

    @property
    def refuses_allocations(self) -> bool:
        """Whether kernels may see a MemoryError that ``allocation_refused`` names."""
        return self.backend is not None and self.backend.refuses_allocations

    @property
    def enforcement(self) -> str:
        return self.backend.name if self.backend else "none"

    def start(self) -> None:
        """Detect and start the backend (raises SandboxUnavailable when a forced one is missing)."""
        self.backend = detect(self.config.enforcement, self.log)
        self.log.info("eda_gateway sandbox: enforcement %s", self.backend.describe())

    def server_work(self, kernel_id: str):
        """A context in which the server's own code runs in the kernel (watchdog.server_work)."""
        return self.watchdog.server_work(kernel_id)

    def start_watchdog(self) -> list[asyncio.Task]:
        return self.watchdog.start()

    async def stop(self, kernel_manager=None) -> None:
        """Shut every kernel down, then remove every trace of this server's sandbox."""
        self.watchdog.stop()
        if kernel_manager is not None and len(kernel_manager):
            try:
                await asyncio.wait_for(kernel_manager.shutdown_all(now=True), timeout=15)
            except Exception:
                self.log.exception("eda_gateway sandbox: shutting kernels down failed; killing them")
        backend, self.backend = self.backend, None
        if backend is not None:
            await asyncio.get_running_loop().run_in_executor(None, backend.stop)
        self.kernels.clear()

    # --- called by the provisioner -------------------------------------------------
    def prepare_launch(self, kernel_id: str, owner: str, kwargs: dict) -> dict:
        if kernel_id in self.kernels:
            # A relaunch: if the old process died for memory and nobody said so yet
            # (the auto-restarter can beat the watchdog), say it now, before the
            # new process resets what the backend counts.
            self.memory_verdict_for(kernel_id)
        self.watchdog.launching(kernel_id)  # the CPU clock counts the new process from its start
        limits = self.limits_for(owner)
        plan = self.backend.prepare(kernel_id, limits)
        env = dict(kwargs.get("env") or os.environ)
        for name, value in KERNEL_ENV_DEFAULTS.items():
            env.setdefault(name, value)
        env.update(plan.env)
        env[KERNEL_MARKER] = kernel_id
        env[SERVER_MARKER] = self.backend.instance
        kwargs["env"] = env
        kwargs["preexec_fn"] = _chain(kwargs.get("preexec_fn"), plan.preexec_fn, _open_files_limit(limits))
        record = self.kernels.get(kernel_id)
        if record is None:
            record = self.kernels[kernel_id] = ConfinedKernel(kernel_id, owner, limits)
        record.limits = limits
        record.launches += 1
        return kwargs

    def attached(self, kernel_id: str, pid: int) -> None:
        record = self.kernels.get(kernel_id)
        if record is not None:
            record.pid = pid
            record.launched_at = time.time()
        self.backend.attached(kernel_id, pid)
        self.log.info(
            "eda_gateway sandbox: kernel %s (pid %s, owner %s) confined by %s: %s MiB, %s%% CPU, %s processes",
            kernel_id, pid, record.owner if record else "?", self.enforcement,
            record.limits.max_memory_mb if record else "?",
            record.limits.max_cpu_percent if record else "?",
            record.limits.max_processes if record else "?",
        )

    async def kill_tree(self, kernel_id: str) -> None:
        if self.backend is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.backend.kill, kernel_id)

    async def released(self, kernel_id: str, restart: bool) -> None:
        backend = self.backend
        if backend is None:
            return
        loop = asyncio.get_running_loop()
        if restart:
            await loop.run_in_executor(None, backend.kill, kernel_id)
        else:
            await loop.run_in_executor(None, backend.release, kernel_id)
            self.kernels.pop(kernel_id, None)
            self.watchdog.forget(kernel_id)

    # --- naming errors ---------------------------------------------------------------
    def memory_verdict_for(self, kernel_id: str) -> Verdict | None:
        """``MemoryLimitExceeded`` if the kernel's last process died for memory and no
        verdict said so yet (published now); None otherwise. The caller restarts."""
        backend = self.backend
        kill = backend.take_memory_kill(kernel_id) if backend is not None else None
        return self.watchdog.memory_verdict(kill) if kill is not None else None

    def allocation_refused(self, kernel_id: str, msg_id: str | None, content: dict) -> Verdict | None:
        """The MemoryLimitExceeded verdict for a MemoryError the backend's backstop caused.

        ``content`` is an ``error`` or ``execute_reply`` content. Under psutil the kernel
        keeps running, so the verdict is not ``killed``: clients rename the error. Both
        the iopub error and the reply (and every client of the kernel) ask: one verdict.
        """
        if content.get("ename") != "MemoryError" or not self.refuses_allocations:
            return None
        record = self.kernels.get(kernel_id)
        if record is None:
            return None
        bus = self.verdicts
        earlier = bus.recent(kernel_id, msg_id)
        if earlier is not None and earlier.msg_id == msg_id and earlier.ename == MEMORY_LIMIT_EXCEEDED:
            return earlier
        limit_mib = record.limits.max_memory_mb
        verdict = Verdict(
            MEMORY_LIMIT_EXCEEDED,
            f"an allocation would have taken the kernel past its memory limit of {limit_mib} MiB and was "
            "refused (the kernel and its variables are kept)",
            kernel_id,
            msg_id,
            details={"limit_bytes": record.limits.memory_bytes, "action": "refused"},
        )
        self.log.warning("eda_gateway sandbox: kernel %s: an allocation past %s MiB was refused", kernel_id, limit_mib)
        bus.publish(verdict)
        return verdict

    # --- observation ---------------------------------------------------------------
    def sample(self) -> dict[str, KernelUsage]:
        """Blocking: call off the event loop."""
        backend = self.backend
        return backend.sample() if backend is not None else {}


def _open_files_limit(limits: Limits):
    """RLIMIT_NOFILE for the kernel's tree (it would inherit the server's, often tens of
    thousands): each socket can queue up to 2 x net.core.rmem_max of host memory."""
    count = limits.max_open_files

    def limit_open_files() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))

    return limit_open_files


def _chain(*functions):
    functions = [f for f in functions if f is not None]
    if not functions:
        return None
    if len(functions) == 1:
        return functions[0]

    def run_all() -> None:
        for f in functions:
            f()

    return run_all
