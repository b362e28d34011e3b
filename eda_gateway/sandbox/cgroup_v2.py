"""cgroup v2 (a delegated, writable subtree): one leaf per kernel.

memory.max with memory.swap.max = 0, cpu.max (20 ms period) + cpu.max.burst, pids.max; memory.events'
``oom_kill`` tells a memory kill; cgroup.kill empties a leaf in one write.
Controllers must be enabled in every ancestor's cgroup.subtree_control, and
v2 forbids processes in a cgroup that delegates them ("no internal
processes"): if the server's own cgroup holds processes, the server moves
itself into a ``eda-gateway-server`` leaf next to ``eda_gateway`` first, as
systemd's ``Delegate=`` units do.
"""

from __future__ import annotations

import errno
import os

from ..limits import Limits
from .base import KernelUsage
from .cgroups import CgroupBackend, procs_in, read_int, read_keyed, write

# 20 ms and burst = quota, as cgroup_v1.CFS_PERIOD_US (see there why)
CPU_PERIOD_US = 20_000
CONTROLLERS = ("memory", "cpu", "pids")
SERVER_LEAF = "eda-gateway-server"


class CgroupV2Backend(CgroupBackend):
    name = "cgroup-v2"

    def __init__(self, log, base: str):
        super().__init__(log, {"unified": base})
        self._peaks: dict[str, int] = {}

    def describe(self) -> str:
        return f"cgroup-v2 (memory, cpu, pids under {self.bases['unified']})"

    def enable_controllers(self, role: str) -> None:
        base = self.bases[role]
        own = os.path.dirname(base)
        enable = " ".join(f"+{c}" for c in CONTROLLERS)
        try:
            write(os.path.join(own, "cgroup.subtree_control"), enable)
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            # our own cgroup holds processes (this server): move into a leaf
            leaf = os.path.join(own, SERVER_LEAF)
            os.makedirs(leaf, exist_ok=True)
            for pid in procs_in(own):
                if pid == os.getpid():
                    write(os.path.join(leaf, "cgroup.procs"), pid)
            write(os.path.join(own, "cgroup.subtree_control"), enable)
        write(os.path.join(base, "cgroup.subtree_control"), enable)
        write(os.path.join(self.instance_dir(role), "cgroup.subtree_control"), enable)

    def apply_limits(self, role: str, leaf: str, limits: Limits) -> None:
        write(os.path.join(leaf, "memory.max"), limits.memory_bytes)
        if os.path.exists(os.path.join(leaf, "memory.swap.max")):
            write(os.path.join(leaf, "memory.swap.max"), 0)
        quota = max(1000, int(CPU_PERIOD_US * limits.max_cpu_percent / 100))
        burst = os.path.join(leaf, "cpu.max.burst")  # Linux >= 5.14
        if os.path.exists(burst):  # the kernel refuses a quota below the burst: clear it first
            write(burst, 0)
        write(os.path.join(leaf, "cpu.max"), f"{quota} {CPU_PERIOD_US}")
        if os.path.exists(burst):
            write(burst, quota)
        write(os.path.join(leaf, "pids.max"), limits.max_processes)

    def kill_dir(self, directory: str, timeout: float = 5.0) -> int:
        kill_file = os.path.join(directory, "cgroup.kill")
        count = len(procs_in(directory))
        if count and os.path.exists(kill_file):
            try:
                write(kill_file, 1)  # atomic: a forking tree cannot race it
            except OSError:
                pass
        return max(count, super().kill_dir(directory, timeout))

    def oom_kills(self, kernel_id: str) -> int:
        return read_keyed(os.path.join(self.leaf("unified", kernel_id), "memory.events")).get("oom_kill", 0)

    def usage(self, kernel_id: str) -> KernelUsage:
        leaf = self.leaf("unified", kernel_id)
        used = read_int(os.path.join(leaf, "memory.current"))
        inactive = read_keyed(os.path.join(leaf, "memory.stat")).get("inactive_file", 0)
        # memory.peak exists from Linux 5.19; before that, the highest sample seen
        peak = read_int(os.path.join(leaf, "memory.peak"), default=-1)
        if peak < 0:
            peak = self._peaks[kernel_id] = max(self._peaks.get(kernel_id, 0), used)
        return KernelUsage(
            memory_bytes=max(0, used - inactive),
            peak_bytes=peak,
            cpu_seconds=self.cpu_usage(kernel_id),
            processes=read_int(os.path.join(leaf, "pids.current")),
        )

    def cpu_usage(self, kernel_id: str) -> float:
        return read_keyed(os.path.join(self.leaf("unified", kernel_id), "cpu.stat")).get("usage_usec", 0) / 1e6

    def release(self, kernel_id: str) -> None:
        super().release(kernel_id)
        self._peaks.pop(kernel_id, None)
