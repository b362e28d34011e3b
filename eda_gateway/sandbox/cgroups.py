"""What cgroup v1 and v2 backends share: where our cgroups live, per-kernel leaves,
killing a cgroup's processes, and cleaning what a crashed server left.

Layout, under the server's OWN cgroup of each hierarchy (so limits set on the
server - a systemd unit, a container - still bound the kernels)::

    <own cgroup>/eda_gateway/srv-<pid>-<start>/k-<kernel_id>

One ``srv-*`` directory per server process: parallel servers never touch each
other's kernels, and a ``srv-*`` whose server is dead is stale and removed.
"""

from __future__ import annotations

import errno
import os
import threading
import time

from ..limits import Limits
from .base import Backend, KernelUsage, LaunchPlan, MemoryKill, SandboxUnavailable, instance_alive, kill_pids

ROOT_NAME = "eda_gateway"


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def read_int(path: str, default: int = 0) -> int:
    try:
        text = read_text(path).strip()
    except OSError:
        return default
    return default if text in ("", "max") else int(text.split()[0])


def read_keyed(path: str) -> dict[str, int]:
    """Files of ``key value`` lines (memory.stat, memory.events, cpu.stat, oom_control)."""
    out = {}
    try:
        for line in read_text(path).splitlines():
            key, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                out[key] = int(value)
    except OSError:
        pass
    return out


def write(path: str, value) -> None:
    with open(path, "w") as f:
        f.write(str(value))


def procs_in(directory: str) -> list[int]:
    try:
        return [int(p) for p in read_text(os.path.join(directory, "cgroup.procs")).split()]
    except OSError:
        return []


def rmdir_retry(directory: str, timeout: float = 5.0) -> bool:
    """rmdir a cgroup; it is busy until its killed processes are reaped."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(directory)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                return False
            kill_pids(procs_in(directory))
            time.sleep(0.02)


def own_cgroups(proc_cgroup: str = "/proc/self/cgroup") -> dict[str, str]:
    """{controller or "" (v2): our cgroup path} from /proc/self/cgroup."""
    own = {}
    for line in read_text(proc_cgroup).splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            own[name] = path
    return own


class CgroupBackend(Backend):
    """A kernel's tree is the content of its leaf cgroup(s)."""

    def __init__(self, log, bases: dict[str, str]):
        """``bases``: {role: <own cgroup dir>/eda_gateway} for each hierarchy we use."""
        super().__init__(log)
        self.bases = bases
        self._oom_seen: dict[str, int] = {}
        self._oom_lock = threading.Lock()  # the watchdog's thread and the event loop both take kills
        self._limit: dict[str, int] = {}

    # --- paths ------------------------------------------------------------
    def instance_dir(self, role: str) -> str:
        return os.path.join(self.bases[role], self.instance)

    def leaf(self, role: str, kernel_id: str) -> str:
        return os.path.join(self.instance_dir(role), f"k-{kernel_id}")

    def leaves(self, kernel_id: str) -> list[str]:
        return [self.leaf(role, kernel_id) for role in self.bases]

    def procs_files(self, kernel_id: str) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self.leaves(kernel_id)]

    def kernel_ids(self) -> list[str]:
        first = self.instance_dir(next(iter(self.bases)))
        try:
            return [n[2:] for n in os.listdir(first) if n.startswith("k-")]
        except OSError:
            return []

    # --- life of the backend -------------------------------------------------
    def start(self) -> None:
        for base in dict.fromkeys(self.bases.values()):
            self.remove_stale(base)
        for role in self.bases:
            try:
                os.makedirs(self.instance_dir(role), exist_ok=True)
                self.enable_controllers(role)
            except OSError as e:
                raise SandboxUnavailable(f"cannot create {self.instance_dir(role)}: {e}") from e

    def enable_controllers(self, role: str) -> None:
        """cgroup v2 must delegate controllers down the tree; v1 needs nothing."""

    def remove_stale(self, base: str) -> None:
        try:
            names = os.listdir(base)
        except OSError:
            return
        for name in names:
            path = os.path.join(base, name)
            if not name.startswith("srv-") or not os.path.isdir(path) or instance_alive(name):
                continue
            leftovers = self.remove_tree(path)
            self.log.warning(
                "eda_gateway sandbox: removed stale cgroup %s of a server that is gone (%d processes killed)",
                path,
                leftovers,
            )

    def remove_tree(self, path: str) -> int:
        killed = 0
        for child in sorted(os.listdir(path)):
            child_path = os.path.join(path, child)
            if os.path.isdir(child_path):
                killed += self.kill_dir(child_path)
                rmdir_retry(child_path)
        rmdir_retry(path)
        return killed

    def stop(self) -> None:
        for role in self.bases:
            instance = self.instance_dir(role)
            if os.path.isdir(instance):
                self.remove_tree(instance)
        for base in dict.fromkeys(self.bases.values()):
            try:
                os.rmdir(base)  # only when no other server uses it
            except OSError:
                pass

    # --- life of one kernel ----------------------------------------------------
    def prepare(self, kernel_id: str, limits: Limits) -> LaunchPlan:
        for role in self.bases:
            leaf = self.leaf(role, kernel_id)
            os.makedirs(leaf, exist_ok=True)
            self.apply_limits(role, leaf, limits)
        self._limit[kernel_id] = limits.memory_bytes
        self._oom_seen[kernel_id] = self.oom_kills(kernel_id)
        files = self.procs_files(kernel_id)

        def enter_cgroups() -> None:  # runs in the child between fork and exec
            pid = str(os.getpid()).encode()
            for path in files:
                fd = os.open(path, os.O_WRONLY)
                try:
                    os.write(fd, pid)
                finally:
                    os.close(fd)

        return LaunchPlan(preexec_fn=enter_cgroups)

    def apply_limits(self, role: str, leaf: str, limits: Limits) -> None:
        raise NotImplementedError

    def kill_dir(self, directory: str, timeout: float = 5.0) -> int:
        """SIGKILL until the cgroup is empty (a forking tree may race one pass)."""
        killed = 0
        deadline = time.monotonic() + timeout
        while (pids := procs_in(directory)) and time.monotonic() < deadline:
            killed += kill_pids(pids)
            time.sleep(0.01)
        return killed

    def kill(self, kernel_id: str) -> None:
        for leaf in self.leaves(kernel_id):
            self.kill_dir(leaf)

    def release(self, kernel_id: str) -> None:
        for leaf in self.leaves(kernel_id):
            self.kill_dir(leaf)
            if not rmdir_retry(leaf):
                self.log.warning("eda_gateway sandbox: could not remove %s", leaf)
        self._oom_seen.pop(kernel_id, None)
        self._limit.pop(kernel_id, None)

    # --- observation ---------------------------------------------------------
    def oom_kills(self, kernel_id: str) -> int:
        raise NotImplementedError

    def usage(self, kernel_id: str) -> KernelUsage:
        raise NotImplementedError

    def cpu_usage(self, kernel_id: str) -> float:
        """The leaf's cumulative CPU seconds (one small file)."""
        raise NotImplementedError

    def sample(self) -> dict[str, KernelUsage]:
        return {kid: self.usage(kid) for kid in self.kernel_ids()}

    def cpu_seconds(self) -> dict[str, float]:
        return {kid: self.cpu_usage(kid) for kid in self.kernel_ids()}

    def memory_kill_candidates(self) -> list[str]:
        with self._oom_lock:
            seen = dict(self._oom_seen)
        return [kid for kid, count in seen.items() if self.oom_kills(kid) > count]

    def take_memory_kill(self, kernel_id: str) -> MemoryKill | None:
        with self._oom_lock:
            seen = self._oom_seen.get(kernel_id)
            if seen is None:
                return None
            count = self.oom_kills(kernel_id)
            if count <= seen:
                return None
            self._oom_seen[kernel_id] = count
        return MemoryKill(kernel_id, self._limit.get(kernel_id, 0), self.usage(kernel_id).peak_bytes)
