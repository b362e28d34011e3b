"""A real server whose wall-time limit breaks: the kernel it could not limit is stopped.

The watchdog's subscriber to the execution bus is patched (in the server's config) to
raise, as a bug there would: the execution it should time is not left running
unlimited, its kernel is killed and shut down (eda_gateway/ledger.py, fail closed).
"""

from __future__ import annotations

import pytest

from harness import GatewayServer
from sandbox_helpers import wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]

BROKEN_WALL_CLOCK = (
    "import eda_gateway.sandbox.watchdog as _watchdog\n"
    "def _broken(self, event):\n"
    "    raise RuntimeError('a bug in the wall clock')\n"
    "_watchdog.Watchdog.on_execution = _broken\n"
    "c.EDAIsolation.isolation = 'none'\n"
)


def test_an_execution_the_wall_clock_cannot_limit_stops_its_kernel(tmp_path):
    srv = GatewayServer(tmp_path, extra_config=BROKEN_WALL_CLOCK).start()
    try:
        kid = srv.start_kernel("alice")
        kc = srv.kernel_ws(kid, "alice")
        try:
            kc.execute("import time; time.sleep(600)")
            wait_for(lambda: kid not in {k["id"] for k in srv.get("/api/kernels", "alice").json()},
                     timeout=60, what="the kernel to be stopped")
        finally:
            kc.close()
        log = srv.log()
        assert "a limit failed on ExecutionStarted" in log and "a bug in the wall clock" in log
        assert srv.get("/advanced-eda/api/rate-limit-status", "alice").json()["active_executions"] == []
    finally:
        srv.stop()
