"""cgroup v1: one leaf per kernel in each of the memory, cpu, pids (and cpuacct) hierarchies.

memory.limit_in_bytes (+ memory.memsw.limit_in_bytes where swap accounting
exists, so swap cannot stretch the limit), cpu.cfs_quota_us over a 20 ms
period plus cpu.cfs_burst_us (throttled, never killed), pids.max (fork bombs get EAGAIN),
memory.kmem.tcp.limit_in_bytes (socket buffers, which v1 does not charge to the memory limit). The
kernel's OOM killer does the memory kill; ``oom_kill`` in memory.oom_control
tells us it happened.
"""

from __future__ import annotations

import errno
import os

from ..limits import Limits
from .base import KernelUsage
from .cgroups import CgroupBackend, read_int, read_keyed, write

# 20 ms, not the kernel's default 100 ms: a throttled kernel waits at most
# period - quota (10 ms at 50%) instead of 50 ms, which measured back-to-back
# trivial executes' p95 at ~12 ms instead of ~29 ms (benchmarks/RESULTS.md,
# Admission). 10 ms throttled more often and raised the p50; the share is the same.
CFS_PERIOD_US = 20_000
# cpu.cfs_burst_us = quota (the most the kernel accepts): a kernel that was idle
# may run one period at up to twice its share, so a ~12 ms cell after a pause is
# not throttled at all. Burst is only unused quota carried over, so a sustained
# loop still averages the limit over seconds (tests/test_sandbox.py checks it).
REQUIRED = ("memory", "cpu", "pids")
# v1 keeps socket buffers (TCP and UDP queues) out of memory.limit_in_bytes: a kernel
# with ~800 sockets of unread datagrams held ~700 MB of host memory under a 38 MB
# cgroup. memory.kmem.tcp.limit_in_bytes caps them; past it, datagrams are dropped
# (docs/sandbox.md). v2 charges them to memory.max with everything else.
SOCKET_MEMORY_BYTES = 64 * 1024 * 1024


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
            tcp = os.path.join(leaf, "memory.kmem.tcp.limit_in_bytes")
            if os.path.exists(tcp):  # v1 charges socket buffers (UDP too) only here, not to the limit above
                write(tcp, SOCKET_MEMORY_BYTES)
            for counter in ("memory.max_usage_in_bytes", "memory.failcnt"):
                write(os.path.join(leaf, counter), 0)  # fresh peak after a restart
        elif role == "cpu":
            quota = max(1000, int(CFS_PERIOD_US * limits.max_cpu_percent / 100))
            burst = os.path.join(leaf, "cpu.cfs_burst_us")  # Linux >= 5.14
            has_burst = os.path.exists(burst)
            if has_burst:  # the kernel refuses a quota below the burst: clear it first
                write(burst, 0)
            write(os.path.join(leaf, "cpu.cfs_period_us"), CFS_PERIOD_US)
            write(os.path.join(leaf, "cpu.cfs_quota_us"), quota)
            if has_burst:
                write(burst, quota)
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
            cpu_seconds=self.cpu_usage(kernel_id),
            processes=read_int(os.path.join(self.leaf("pids", kernel_id), "pids.current")),
        )

    def cpu_usage(self, kernel_id: str) -> float:
        return read_int(os.path.join(self.leaf(self._cpuacct_role, kernel_id), "cpuacct.usage")) / 1e9
