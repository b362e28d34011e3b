"""Backends against a stand-in cgroup tree (a temp directory).

cgroup v2 with memory/cpu/pids cannot run on this host (its v2 mount only has
hugetlb), so its file protocol is checked here; cgroup v1 and psutil run for
real in test_sandbox.py.
"""

from __future__ import annotations

import logging
import os

from eda_gateway.limits import Limits
from eda_gateway.sandbox.cgroup_v1 import CgroupV1Backend
from eda_gateway.sandbox.cgroup_v2 import CgroupV2Backend
from eda_gateway.sandbox.detect import cgroup_mounts

log = logging.getLogger("test")
LIMITS = Limits(max_memory_mb=64, max_cpu_percent=25, max_processes=32)
KID = "0b3c9d1e-0000-4000-8000-000000000001"


def read(path):
    with open(path) as f:
        return f.read()


def fake_v2(tmp_path):
    own = tmp_path / "own"
    own.mkdir()
    (own / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (own / "cgroup.subtree_control").write_text("")
    return own


def test_v2_delegates_controllers_and_writes_limits(tmp_path):
    own = fake_v2(tmp_path)
    backend = CgroupV2Backend(log, str(own / "eda_gateway"))
    backend.start()
    instance = own / "eda_gateway" / backend.instance
    for level in (own, own / "eda_gateway", instance):
        assert read(level / "cgroup.subtree_control") == "+memory +cpu +pids"
    leaf = instance / f"k-{KID}"
    leaf.mkdir()
    (leaf / "memory.swap.max").write_text("max")
    (leaf / "cpu.max.burst").write_text("0")
    plan = backend.prepare(KID, LIMITS)
    assert read(leaf / "memory.max") == str(64 << 20)
    assert read(leaf / "memory.swap.max") == "0"
    assert read(leaf / "cpu.max") == "5000 20000"  # 25% over a 20 ms period
    assert read(leaf / "cpu.max.burst") == "5000"  # an idle kernel may carry one quota over
    assert read(leaf / "pids.max") == "32"
    assert plan.preexec_fn is not None


def prepared_v2(tmp_path, memory_events: str):
    """A v2 backend on a stand-in tree, KID's leaf prepared with these ``memory.events``."""
    own = fake_v2(tmp_path)
    backend = CgroupV2Backend(log, str(own / "eda_gateway"))
    backend.start()
    leaf = own / "eda_gateway" / backend.instance / f"k-{KID}"
    leaf.mkdir()
    (leaf / "memory.events").write_text(memory_events)
    backend.prepare(KID, LIMITS)
    return backend, leaf


def test_v2_reports_usage_and_memory_kills(tmp_path):
    backend, leaf = prepared_v2(tmp_path, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 0\n")
    assert backend.memory_kill_candidates() == []
    (leaf / "memory.current").write_text(str(70 << 20))
    (leaf / "memory.stat").write_text(f"anon 1\ninactive_file {6 << 20}\n")
    (leaf / "memory.peak").write_text(str(66 << 20))
    (leaf / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n")
    (leaf / "pids.current").write_text("5\n")
    (leaf / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\n")
    usage = backend.sample()[KID]
    assert (usage.memory_bytes, usage.peak_bytes, usage.cpu_seconds, usage.processes) == (64 << 20, 66 << 20, 2.5, 5)
    assert backend.memory_kill_candidates() == [KID]
    assert backend.memory_kill_candidates() == [KID]  # looking takes nothing
    kill = backend.take_memory_kill(KID)
    assert (kill.kernel_id, kill.limit_bytes, kill.peak_bytes) == (KID, 64 << 20, 66 << 20)
    assert backend.memory_kill_candidates() == [] and backend.take_memory_kill(KID) is None  # taken once


def test_a_memory_kill_the_auto_restarter_takes_while_the_watchdog_looks_gets_one_verdict(tmp_path):
    """The watchdog looks for kills off the loop; the kernel's "died" (the auto-restarter, on
    the loop) may take the kill meanwhile: it names the verdict, and the watchdog adds none."""
    import asyncio
    import threading
    from types import SimpleNamespace

    from eda_gateway.sandbox.watchdog import Watchdog

    backend, leaf = prepared_v2(tmp_path, "oom_kill 0\n")
    for name, value in (("memory.current", 0), ("memory.peak", 70 << 20), ("cpu.stat", "usage_usec 0"),
                        ("pids.current", 0), ("memory.stat", "anon 0")):
        (leaf / name).write_text(f"{value}\n")
    (leaf / "memory.events").write_text("oom_kill 1\n")

    published, looked, died_done = [], threading.Event(), threading.Event()
    look = backend.memory_kill_candidates

    def candidates_while_the_kernel_dies():
        found = look()
        looked.set()
        died_done.wait(10)  # the "died" runs on the loop now, between the look and the take
        return found

    backend.memory_kill_candidates = candidates_while_the_kernel_dies

    async def kill_tree(kernel_id):
        published.append(("kill_tree", kernel_id))

    sandbox = SimpleNamespace(backend=backend, log=log, kill_tree=kill_tree, kernels={})
    watchdog = Watchdog(sandbox, None, {}, SimpleNamespace(publish=lambda v: published.append(v.ename)),
                        limits_for=lambda owner: LIMITS)

    async def main():
        tick = asyncio.ensure_future(watchdog._check_memory(backend))
        assert await asyncio.to_thread(looked.wait, 10)  # the tick looked, off the loop
        kill = backend.take_memory_kill(KID)  # what memory_verdict_for does on "died"
        assert kill is not None, "the watchdog's look took the kill: the died kernel's verdict is lost"
        watchdog.memory_verdict(kill)
        died_done.set()
        await tick

    asyncio.run(main())
    assert published == ["MemoryLimitExceeded"]


def test_stale_instances_of_dead_servers_are_removed_live_ones_kept(tmp_path):
    own = fake_v2(tmp_path)
    base = own / "eda_gateway"
    stale = base / "srv-999999999-1" / f"k-{KID}"
    stale.mkdir(parents=True)
    live = base / f"srv-{os.getppid()}-0"  # wrong start time: also stale (pid reused)
    live.mkdir()
    from eda_gateway.sandbox.base import instance_name

    parent = base / instance_name(os.getppid())  # a running server
    parent.mkdir()
    CgroupV2Backend(log, str(base)).start()
    assert not (base / "srv-999999999-1").exists()
    assert not live.exists()
    assert parent.exists()


def test_v1_writes_memory_cpu_and_pids_limits(tmp_path):
    bases = {c: str(tmp_path / c / "eda_gateway") for c in ("memory", "cpu", "pids")}
    backend = CgroupV1Backend(log, bases)
    backend.start()
    mem = tmp_path / "memory" / "eda_gateway" / backend.instance / f"k-{KID}"
    mem.mkdir()
    (mem / "memory.memsw.limit_in_bytes").write_text("9223372036854771712")
    cpu = tmp_path / "cpu" / "eda_gateway" / backend.instance / f"k-{KID}"
    cpu.mkdir()
    (cpu / "cpu.cfs_burst_us").write_text("0")
    backend.prepare(KID, LIMITS)
    assert read(mem / "memory.limit_in_bytes") == str(64 << 20)
    assert read(mem / "memory.memsw.limit_in_bytes") == str(64 << 20)  # swap cannot stretch it
    assert (read(cpu / "cpu.cfs_period_us"), read(cpu / "cpu.cfs_quota_us")) == ("20000", "5000")
    assert read(cpu / "cpu.cfs_burst_us") == "5000"
    pids = tmp_path / "pids" / "eda_gateway" / backend.instance / f"k-{KID}"
    assert read(pids / "pids.max") == "32"


def test_mountinfo_parsing_finds_v1_controllers_and_v2(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(
        "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n"
        "31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
        "32 25 0:28 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n"
        "33 25 0:29 / /proc proc rw - proc proc rw\n"
    )
    mounts = cgroup_mounts(str(info))
    assert mounts["memory"] == "/sys/fs/cgroup/memory"
    assert mounts["cpu"] == mounts["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct"
    assert mounts[""] == "/sys/fs/cgroup/unified"
    assert "proc" not in mounts
