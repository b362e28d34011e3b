"""cgroup v1: one leaf per kernel in each of the memory, cpu, pids (and cpuacct) hierarchies.

memory.limit_in_bytes (+ memory.memsw.limit_in_bytes where swap accounting
exists, so swap cannot stretch the limit), cpu.cfs_quota_us over a 100 ms
period (throttled, never killed), pids.max (fork bombs get EAGAIN). The
kernel's OOM killer does the memory kill; ``oom_kill`` in memory.oom_control
tells us it happened.
"""

from __future__ import annotations

import errno
import os

from ..limits import Limits
from .base import KernelUsage
from .cgroups import CgroupBackend, read_int, read_keyed, write

CFS_PERIOD_US = 100_000
REQUIRED = ("memory", "cpu", "pids")


class CgroupV1Backend(CgroupBackend):
    name = "cgroup-v1"

    def __init__(self, log, bases: dict[str, str]):
        super().__init__(log, bases)
        # where cpu time is read: cpuacct, often co-mounted with cpu
        self._cpuacct_role = "cpuacct" if "cpuacct" in bases else "cpu"

    def describe(self) -> str:
        return f"cgroup-v1 ({', '.join(sorted(self.bases))} under {self.bases['memory']})"

    def apply_limits(self, role: str, leaf: str, limits: Limits) -> None:
        if role == "memory":
            limit = limits.memory_bytes
            memsw = os.path.join(leaf, "memory.memsw.limit_in_bytes")
            try:
                write(os.path.join(leaf, "memory.limit_in_bytes"), limit)
            except OSError as e:  # memsw must stay >= memory: raise memsw first
                if e.errno != errno.EINVAL or not os.path.exists(memsw):
                    raise
                write(memsw, limit)
                write(os.path.join(leaf, "memory.limit_in_bytes"), limit)
            if os.path.exists(memsw):
                write(memsw, limit)
            for counter in ("memory.max_usage_in_bytes", "memory.failcnt"):
                write(os.path.join(leaf, counter), 0)  # fresh peak after a restart
        elif role == "cpu":
            write(os.path.join(leaf, "cpu.cfs_period_us"), CFS_PERIOD_US)
            quota = max(1000, int(CFS_PERIOD_US * limits.max_cpu_percent / 100))
            write(os.path.join(leaf, "cpu.cfs_quota_us"), quota)
        elif role == "pids":
            write(os.path.join(leaf, "pids.max"), limits.max_processes)

    def oom_kills(self, kernel_id: str) -> int:
        return read_keyed(os.path.join(self.leaf("memory", kernel_id), "memory.oom_control")).get("oom_kill", 0)

    def usage(self, kernel_id: str) -> KernelUsage:
        mem = self.leaf("memory", kernel_id)
        used = read_int(os.path.join(mem, "memory.usage_in_bytes"))
        # like `docker stats`: page cache the kernel can drop does not count
        inactive = read_keyed(os.path.join(mem, "memory.stat")).get("total_inactive_file", 0)
        return KernelUsage(
            memory_bytes=max(0, used - inactive),
            peak_bytes=read_int(os.path.join(mem, "memory.max_usage_in_bytes")),
            cpu_seconds=read_int(os.path.join(self.leaf(self._cpuacct_role, kernel_id), "cpuacct.usage")) / 1e9,
            processes=read_int(os.path.join(self.leaf("pids", kernel_id), "pids.current")),
        )
