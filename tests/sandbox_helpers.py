"""Helpers shared by the sandbox tests: confined servers, kernel pids, cgroup leftovers."""

from __future__ import annotations

import glob
import os
import time

import psutil
import pytest

from harness import GatewayServer

STRICT = os.environ.get("EDA_STRICT") == "1"

LIMITS = """
c.EDASandbox.enforcement = {enforcement!r}
c.EDASandbox.max_memory_mb = 128
c.EDASandbox.max_execution_time = 3
c.EDASandbox.interrupt_grace = 2
c.EDASandbox.max_cpu_percent = 40
c.EDASandbox.max_processes = 64
c.EDATelemetry.interval = 0.5
c.EDARateLimiter.max_executions_per_minute = 1000
c.EDARateLimiter.max_concurrent_executions = 10
c.EDAGateway.user_limits = {{"carol": {{"max_execution_time": 30, "max_memory_mb": 256, "max_open_files": 2048}}}}
"""

BACKENDS = ["cgroup", "psutil"]


def start_confined(tmp, enforcement: str, extra: str = "", env: dict | None = None) -> GatewayServer:
    """A server forced to one enforcement; without cgroups: skip, or fail under EDA_STRICT=1."""
    srv = GatewayServer(tmp, extra_config=LIMITS.format(enforcement=enforcement) + extra, env=env or {})
    try:
        return srv.start()
    except RuntimeError:
        if enforcement == "cgroup" and "EDASandbox.enforcement = 'cgroup' but" in srv.log() and not STRICT:
            pytest.skip("no usable cgroups on this host")
        raise


def wait_for(predicate, timeout: float = 30, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def kernel_processes(kernel_id: str) -> list[psutil.Process]:
    """Every live process carrying the sandbox's marker for this kernel."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("EDA_SANDBOX_KERNEL") == kernel_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):
            pass
    return found


def kernel_pid(srv: GatewayServer, kernel_id: str) -> int:
    """The kernel's main process: the server's child carrying its marker."""

    def find():
        for child in psutil.Process(srv.proc.pid).children():
            try:
                if child.environ().get("EDA_SANDBOX_KERNEL") == kernel_id:
                    return child.pid
            except psutil.Error:
                pass
        return None

    return wait_for(find, what=f"kernel {kernel_id} process")


def server_cgroups(server_pid: int) -> list[str]:
    """cgroup directories created by the server with this pid (any hierarchy)."""
    found = []
    for mount in glob.glob("/sys/fs/cgroup/*"):
        for root, dirs, _ in os.walk(mount):
            for d in dirs:
                if d.startswith(f"srv-{server_pid}-"):
                    found.append(os.path.join(root, d))
            # our cgroups live under an eda_gateway dir: do not descend elsewhere deeply
            dirs[:] = [d for d in dirs if not d.startswith("k-")]
    return found


def run_until_answer(srv, kernel_id, user, code, timeout=60):
    """Run ``code`` on a kernel that may be restarting: retry until it answers."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        kc = srv.kernel_ws(kernel_id, user)
        try:
            ex = kc.run(code, timeout=15)
            # a request racing the restart is answered too (KernelDied, KernelRestarted): try again
            if ex.error is None or ex.error.get("ename") not in (
                "MemoryLimitExceeded", "ExecutionTimeout", "KernelDied", "KernelRestarted"
            ):
                return ex
            last = ex
        except Exception as e:  # restarting: the websocket may close
            last = e
        finally:
            kc.close()
        time.sleep(0.5)
    raise AssertionError(f"kernel {kernel_id} never answered again: {last!r}")
