"""psutil: confinement without cgroups, by watching every kernel's process tree.

One enforcement thread, ``tick`` seconds apart (default 0.1 s):
- memory: the tree's summed RSS over the limit -> SIGKILL the tree (the sandbox
  then restarts the kernel and names the verdict). Honest accuracy: a fast
  allocation can run past the limit for up to one tick (this project measured up
  to 700 MiB over at 512 MiB with numpy), so RLIMIT_AS (limit + headroom for
  the ~1 GiB of address space an idle ipykernel maps) backs it in each process;
  RSS also counts pages shared after fork() once per process (over-estimate).
- CPU: duty cycling, SIGSTOP the tree once it used its share of the period,
  SIGCONT when the debt is paid (~46-50% held at a 50% target).
- processes: more than max_processes in the tree -> the newest are killed.
Trees are re-read with one ``process_iter`` pass for all kernels every
``refresh`` seconds; between passes only the known pids are read (cheap).
"""

from __future__ import annotations

import os
import resource
import signal
import threading
import time
from dataclasses import dataclass, field

import psutil

from ..limits import Limits
from .base import (
    KERNEL_MARKER,
    SERVER_MARKER,
    Backend,
    KernelUsage,
    LaunchPlan,
    MemoryKill,
    instance_alive,
    kill_marked,
    kill_pids,
)

# Address space an idle ipykernel maps beyond what it uses (measured ~0.9 GiB
# with MALLOC_ARENA_MAX=2): RLIMIT_AS = memory limit + this.
ADDRESS_SPACE_HEADROOM = 1536 * 1024 * 1024
BURST_PERIODS = 2  # CPU credit a quiet kernel may bank, in ticks


@dataclass
class _Tree:
    kernel_id: str
    limits: Limits
    pid: int | None = None
    procs: dict[int, psutil.Process] = field(default_factory=dict)
    cpu_last: dict[int, float] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    memory: int = 0
    peak: int = 0
    budget: float = 0.0  # CPU seconds it may still use before being stopped
    stopped_until: float = 0.0
    last_tick: float = 0.0


class PsutilBackend(Backend):
    name = "psutil"
    refuses_allocations = True  # the RLIMIT_AS backstop turns big allocations into MemoryError

    def __init__(self, log, tick: float = 0.1, refresh: float = 0.5):
        super().__init__(log)
        self.tick = tick
        self.refresh = refresh
        self._trees: dict[str, _Tree] = {}
        self._kills: list[MemoryKill] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def describe(self) -> str:
        return f"psutil (watchdog every {self.tick:g}s, RLIMIT_AS backstop)"

    # --- life of the backend -------------------------------------------------
    def start(self) -> None:
        stale = kill_marked(lambda kernel, server: server != self.instance and not instance_alive(server))
        if stale:
            self.log.warning("eda_gateway sandbox: killed %d stale kernel processes of a server that is gone", len(stale))
        self._thread = threading.Thread(target=self._run, name="eda-sandbox-psutil", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread:
            self._thread.join(timeout=5)
        with self._lock:
            kernel_ids = list(self._trees)
        for kid in kernel_ids:
            self.kill(kid)
        kill_marked(lambda kernel, server: server == self.instance)
        self._trees.clear()

    # --- life of one kernel ---------------------------------------------------
    def prepare(self, kernel_id: str, limits: Limits) -> LaunchPlan:
        with self._lock:
            self._trees[kernel_id] = _Tree(kernel_id, limits)
        address_space = limits.memory_bytes + ADDRESS_SPACE_HEADROOM

        def limit_address_space() -> None:  # runs in the child between fork and exec
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

        return LaunchPlan(preexec_fn=limit_address_space)

    def attached(self, kernel_id: str, pid: int) -> None:
        with self._lock:
            tree = self._trees.get(kernel_id)
            if tree is not None:
                tree.pid = pid
                try:
                    tree.procs = {pid: psutil.Process(pid)}
                except psutil.Error:
                    tree.procs = {}

    def _tree_pids(self, tree: _Tree) -> list[int]:
        pids = set(tree.procs)
        if tree.pid:
            try:
                pids.update(p.pid for p in psutil.Process(tree.pid).children(recursive=True))
                pids.add(tree.pid)
            except psutil.Error:
                pass
        return list(pids)

    def kill(self, kernel_id: str) -> None:
        with self._lock:
            tree = self._trees.get(kernel_id)
            if tree is None:
                return
            pids = self._tree_pids(tree)
            tree.stopped_until = 0.0
        kill_pids(pids)

    def release(self, kernel_id: str) -> None:
        self.kill(kernel_id)
        # processes that left the tree (setsid + parent died) still carry the marker
        kill_marked(lambda kernel, server: kernel == kernel_id and server == self.instance)
        with self._lock:
            self._trees.pop(kernel_id, None)

    # --- observation -----------------------------------------------------------
    def sample(self) -> dict[str, KernelUsage]:
        with self._lock:
            return {
                kid: KernelUsage(t.memory, t.peak, t.cpu_seconds, len(t.procs))
                for kid, t in self._trees.items()
                if t.pid
            }

    def memory_kill_candidates(self) -> list[str]:
        with self._lock:
            return list(dict.fromkeys(k.kernel_id for k in self._kills))

    def take_memory_kill(self, kernel_id: str) -> MemoryKill | None:
        with self._lock:
            mine = [k for k in self._kills if k.kernel_id == kernel_id]
            self._kills = [k for k in self._kills if k.kernel_id != kernel_id]
        return mine[-1] if mine else None

    # --- the enforcement thread ------------------------------------------------
    def _run(self) -> None:
        next_refresh = 0.0
        while not self._stopping.wait(self.tick):
            try:
                now = time.monotonic()
                if now >= next_refresh:
                    self._refresh_trees()
                    next_refresh = now + self.refresh
                with self._lock:
                    trees = [t for t in self._trees.values() if t.pid]
                for tree in trees:
                    self._enforce(tree, now)
            except Exception:
                self.log.exception("eda_gateway sandbox: psutil watchdog tick failed")

    def _refresh_trees(self) -> None:
        children: dict[int, list[int]] = {}
        for proc in psutil.process_iter(["ppid"]):
            children.setdefault(proc.info["ppid"], []).append(proc.pid)
        with self._lock:
            for tree in self._trees.values():
                if not tree.pid:
                    continue
                seen, todo = set(), [tree.pid]
                while todo:
                    pid = todo.pop()
                    if pid not in seen:
                        seen.add(pid)
                        todo.extend(children.get(pid, ()))
                for pid in seen - set(tree.procs):
                    try:
                        tree.procs[pid] = psutil.Process(pid)
                    except psutil.Error:
                        pass

    def _enforce(self, tree: _Tree, now: float) -> None:
        limits = tree.limits
        memory, used_cpu, alive = 0, 0.0, {}
        for pid, proc in list(tree.procs.items()):
            try:
                with proc.oneshot():
                    memory += proc.memory_info().rss
                    t = proc.cpu_times()
            except psutil.Error:
                continue
            cpu = t.user + t.system + t.children_user + t.children_system
            used_cpu += max(0.0, cpu - tree.cpu_last.get(pid, cpu if pid != tree.pid else 0.0))
            tree.cpu_last[pid] = cpu
            alive[pid] = proc
        with self._lock:
            tree.procs = alive
            tree.cpu_last = {pid: tree.cpu_last[pid] for pid in alive}
            tree.cpu_seconds += used_cpu
            tree.memory = memory
            if len(alive) == 1:
                tree.peak = max(tree.peak, memory)
        if len(alive) > limits.max_processes:
            newest = sorted((p for p in alive.values() if p.pid != tree.pid), key=_created, reverse=True)
            excess = newest[: len(alive) - limits.max_processes]
            kill_pids([p.pid for p in excess])
            for p in excess:
                alive.pop(p.pid, None)
        if memory > limits.memory_bytes and len(alive) > 1:
            # pages shared after fork() count once per process in RSS: confirm with PSS
            memory = _proportional(alive)
        if memory > limits.memory_bytes:
            with self._lock:  # recorded first: whoever sees the kernel dead must find why
                tree.peak = max(tree.peak, memory)
                self._kills.append(MemoryKill(tree.kernel_id, limits.memory_bytes, tree.peak))
                tree.pid = None  # the sandbox restarts it; attached() tracks the new one
                tree.procs = {}
            kill_pids(list(alive))
            self.log.warning(
                "eda_gateway sandbox: kernel %s used %d MiB > %d MiB: killed",
                tree.kernel_id, memory >> 20, limits.max_memory_mb,
            )
            return
        self._throttle(tree, alive, used_cpu, now)

    def _throttle(self, tree: _Tree, alive: dict, used_cpu: float, now: float) -> None:
        share = tree.limits.max_cpu_percent / 100
        if share >= psutil.cpu_count():
            return
        if tree.stopped_until:
            if now < tree.stopped_until:
                return
            _signal_all(alive, signal.SIGCONT)
            tree.stopped_until = 0.0
            tree.last_tick = now
            return
        elapsed = now - tree.last_tick if tree.last_tick else self.tick
        tree.last_tick = now
        tree.budget = min(tree.budget + share * elapsed - used_cpu, share * self.tick * BURST_PERIODS)
        if tree.budget < 0:
            # stopped long enough that the average comes back to the share
            tree.stopped_until = now + (-tree.budget) / share
            tree.budget = 0.0
            _signal_all(alive, signal.SIGSTOP)


def _proportional(procs: dict) -> int:
    """The tree's proportional set size (smaps_rollup): shared pages split between sharers."""
    total = 0
    for proc in procs.values():
        try:
            total += proc.memory_full_info().pss
        except psutil.Error:
            pass
    return total


def _created(proc: psutil.Process) -> float:
    try:
        return proc.create_time()
    except psutil.Error:
        return 0.0


def _signal_all(procs: dict, signum: int) -> None:
    for pid in procs:
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


__all__ = ["PsutilBackend", "KERNEL_MARKER", "SERVER_MARKER"]
