"""What every enforcement backend offers the sandbox, and the small types they share."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from ..limits import Limits

# Environment markers every confined kernel (and what it forks) inherits: they
# let a later server find processes of a crashed one even when they escaped
# the kernel's process tree (psutil backend) - see ``kill_marked``.
KERNEL_MARKER = "EDA_SANDBOX_KERNEL"
SERVER_MARKER = "EDA_SANDBOX_SERVER"


class SandboxUnavailable(RuntimeError):
    """The requested enforcement cannot be had on this host; the message says why."""


@dataclass
class KernelUsage:
    """One kernel's confined process tree, as last measured."""

    memory_bytes: int = 0
    peak_bytes: int = 0
    cpu_seconds: float = 0.0  # cumulative CPU time of the tree
    processes: int = 0


@dataclass
class LaunchPlan:
    """What the provisioner adds to the kernel's Popen arguments."""

    env: dict = field(default_factory=dict)
    preexec_fn: Callable[[], None] | None = None


@dataclass(frozen=True)
class MemoryKill:
    """The backend saw (or did) a kill for memory in this kernel's tree."""

    kernel_id: str
    limit_bytes: int
    peak_bytes: int


def instance_name(pid: int | None = None) -> str:
    """``srv-<pid>-<start time>``: unique per server process, even across pid reuse."""
    pid = os.getpid() if pid is None else pid
    return f"srv-{pid}-{int(psutil.Process(pid).create_time())}"


def instance_alive(name: str) -> bool:
    """Is the server that created ``srv-<pid>-<start>`` still running?"""
    try:
        _, pid, started = name.split("-")
        return int(psutil.Process(int(pid)).create_time()) == int(started)
    except (ValueError, psutil.Error):
        return False


def kill_pids(pids) -> int:
    """SIGKILL each pid (stopped ones too); return how many were signalled."""
    killed = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except (ProcessLookupError, PermissionError):
            pass
    return killed


def kill_marked(predicate: Callable[[str, str], bool]) -> list[int]:
    """Kill every process whose environment markers (kernel, server) match ``predicate``.

    Reads /proc/<pid>/environ of every process: costly, so only used at
    clean-up time (a kernel stops, the server starts or stops).
    """
    victims = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            env = proc.environ()
        except (psutil.Error, OSError):
            continue
        kernel, server = env.get(KERNEL_MARKER), env.get(SERVER_MARKER)
        if kernel and server and predicate(kernel, server):
            victims.append(proc.pid)
    kill_pids(victims)
    return victims


def wait_gone(pids, timeout: float = 5.0) -> None:
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=timeout)


class Backend:
    """One way of confining kernels. Methods are blocking; the sandbox calls the
    slow ones (sample, kill, release, start, stop) off the event loop."""

    name = "none"
    # True when an allocation past the limit fails inside the kernel (MemoryError)
    # rather than the kernel being killed: the sandbox then names that error.
    refuses_allocations = False

    def __init__(self, log):
        self.log = log
        self.instance = instance_name()

    # --- life of the backend --------------------------------------------------
    def start(self) -> None:
        """Clean what crashed servers left behind, then prepare this server's space."""

    def stop(self) -> None:
        """Kill every confined process and remove everything this server created."""

    def describe(self) -> str:
        return self.name

    # --- life of one kernel ---------------------------------------------------
    def prepare(self, kernel_id: str, limits: Limits) -> LaunchPlan:
        raise NotImplementedError

    def attached(self, kernel_id: str, pid: int) -> None:
        """The kernel process exists (called after every (re)launch)."""

    def kill(self, kernel_id: str) -> None:
        """SIGKILL every process of the kernel's tree."""
        raise NotImplementedError

    def release(self, kernel_id: str) -> None:
        """The kernel is gone for good: kill leftovers, forget it."""
        raise NotImplementedError

    # --- observation --------------------------------------------------------
    def sample(self) -> dict[str, KernelUsage]:
        raise NotImplementedError

    def cpu_seconds(self) -> dict[str, float]:
        """Each kernel's cumulative CPU seconds, for the watchdog's tick (keep it cheap)."""
        return {kid: usage.cpu_seconds for kid, usage in self.sample().items()}

    def memory_kill_candidates(self) -> list[str]:
        """Kernels with a kill for memory not taken yet. Reads without taking: the watchdog
        calls it off the event loop, then takes each kill on the loop, where the auto-
        restarter's "died" also takes it, so whoever takes a kill publishes its verdict."""
        return []

    def take_memory_kill(self, kernel_id: str) -> MemoryKill | None:
        """A kill for memory in this kernel's tree not taken yet (then it is taken)."""
        return None


def now() -> float:
    return time.monotonic()
