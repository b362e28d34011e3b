"""No execution ends without an answer, whatever ends its kernel.

The watchdog is switched off here (it looks once an hour), so jupyter_client's
auto-restarter is always first to see a kernel killed for memory: the race that
used to lose the verdict, on purpose, every time.
"""

from __future__ import annotations

import threading

import pytest

from harness import GatewayServer

pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]

RESTART_LIMIT = 2  # the auto-restarter gives up at the third death in a row (default 5)
ALLOCATE = "x = b'x' * (400 * 1024 * 1024)"  # written, so the pages really count


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    srv = GatewayServer(tmp_path_factory.mktemp("endings"), extra_config=(
        "c.EDASandbox.max_memory_mb = 128\n"
        "c.EDASandbox.watchdog_interval = 3600\n"
        "c.EDAIsolation.isolation = 'none'\n"  # faster restarts; confinement is tested elsewhere
        "c.EDARateLimiter.max_executions_per_minute = 1000\n"
        f"c.KernelRestarter.restart_limit = {RESTART_LIMIT}\n"
    )).start()
    yield srv
    srv.stop()


def test_memory_kills_seen_first_by_the_auto_restarter_still_name_their_verdict(gw):
    """Kills in a row, each found by the auto-restarter first; the one past jupyter_client's
    restart_limit (2 here) makes it give up, and that one is named too."""
    for kernel in range(2):
        kid = gw.start_kernel("alice")
        kc = gw.kernel_ws(kid, "alice")
        try:
            for attempt in range(RESTART_LIMIT if kernel == 0 else RESTART_LIMIT + 1):
                # sent right after the last restart, so every kill lands before the watchdog looks
                ex = kc.run(ALLOCATE, timeout=90)
                assert ex.reply["status"] == "error", (kernel, attempt, ex.reply)
                assert ex.reply["ename"] == "MemoryLimitExceeded", (kernel, attempt, ex.reply)
                assert type(ex.reply["execution_count"]) is int
                assert ex.error["ename"] == "MemoryLimitExceeded" and "128 MiB" in ex.error["evalue"]
            if kernel == 0:
                assert kc.run("'alive'", timeout=90).result == "'alive'"
        finally:
            kc.close()
            gw.delete(f"/api/kernels/{kid}", "alice")
    assert gw.get("/advanced-eda/api/rate-limit-status", "alice").json()["concurrent_executions"] == 0


def test_a_crash_ends_the_running_execution_with_kernel_died(gw):
    kid = gw.start_kernel("bob")
    kc = gw.kernel_ws(kid, "bob")
    try:
        ex = kc.run("import os; os._exit(3)", timeout=90)
        assert (ex.reply["status"], ex.reply["ename"]) == ("error", "KernelDied")
        assert "variables are lost" in ex.error["evalue"]
        assert kc.run("'back'", timeout=90).result == "'back'"
    finally:
        kc.close()
        gw.delete(f"/api/kernels/{kid}", "bob")


def test_a_restart_through_the_api_answers_what_was_running_and_queued(gw):
    kid = gw.start_kernel("carol")
    kc = gw.kernel_ws(kid, "carol")
    try:
        assert kc.run("1").result == "1"  # started and answering
        running = kc.execute("import time; time.sleep(60)")
        queued = kc.execute("'never ran'")
        assert gw.post(f"/api/kernels/{kid}/restart", "carol").status_code == 200
        for msg_id in (running, queued):
            messages = kc.collect(msg_id, timeout=60)
            reply = next(m for m in messages if (m.get("msg_type") or m["header"]["msg_type"]) == "execute_reply")
            assert reply["content"]["ename"] == "KernelRestarted", reply["content"]
        status = gw.get("/advanced-eda/api/rate-limit-status", "carol").json()
        assert status["concurrent_executions"] == 0  # no lease left behind
    finally:
        kc.close()
        gw.delete(f"/api/kernels/{kid}", "carol")


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """The default watchdog: it publishes the verdict, then kills and restarts the kernel."""
    srv = GatewayServer(tmp_path_factory.mktemp("watched"), extra_config=(
        "c.EDASandbox.max_memory_mb = 128\n"
        "c.EDAIsolation.isolation = 'none'\n"
        "c.EDARateLimiter.max_executions_per_minute = 1000\n"
        "c.EDARateLimiter.max_concurrent_executions = 4\n"
    )).start()
    yield srv
    srv.stop()


def test_what_is_sent_right_after_a_kill_runs_on_the_restarted_kernel(watched):
    """A client that sends its next cell as soon as it hears MemoryLimitExceeded: the old
    process may still be there, and took (and lost) that cell in one kill of three to ten.
    It waits for the new process instead (eda_gateway/restart_hold.py)."""
    kid = watched.start_kernel("alice")
    kc = watched.kernel_ws(kid, "alice")
    try:
        assert kc.run("1").result == "1"
        for attempt in range(20):
            doomed, queued = kc.execute(ALLOCATE), kc.execute("'queued'")
            for msg_id in (doomed, queued):
                ended = [m for m in kc.collect(msg_id, timeout=90) if m["msg_type"] == "execute_reply"]
                assert ended[0]["content"]["ename"] == "MemoryLimitExceeded", (attempt, ended)
            after = kc.run("print('after', flush=True)", timeout=60)  # at once: TimeoutError if it was lost
            assert after.stdout == "after\n", (attempt, after.reply)
        assert watched.get("/advanced-eda/api/rate-limit-status", "alice").json()["concurrent_executions"] == 0
    finally:
        kc.close()
        watched.delete(f"/api/kernels/{kid}", "alice")


def test_cells_sent_while_the_api_restarts_the_kernel_are_all_answered(gw):
    """JupyterLab waits for a restart before it sends again; other clients may not. Whatever
    arrives while the old process goes either ran there (then KernelRestarted) or waits for
    the new one: never lost (without the hold, one of the first five was)."""
    kid = gw.start_kernel("bob")
    kc = gw.kernel_ws(kid, "bob")
    try:
        assert kc.run("1").result == "1"
        for attempt in range(3):
            restart = threading.Thread(target=gw.post, args=(f"/api/kernels/{kid}/restart", "bob"))
            restart.start()
            sent = [kc.execute(f"{attempt} * 10 + {i}") for i in range(5)]
            for i, msg_id in enumerate(sent):
                reply = [m for m in kc.collect(msg_id, timeout=60) if m["msg_type"] == "execute_reply"][0]["content"]
                assert reply["status"] == "ok" or reply["ename"] == "KernelRestarted", (attempt, i, reply)
            restart.join(60)
        assert kc.run("'still here'").result == "'still here'"
    finally:
        kc.close()
        gw.delete(f"/api/kernels/{kid}", "bob")
