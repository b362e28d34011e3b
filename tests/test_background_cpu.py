"""Code that runs outside admitted executions is held to max_execution_time by the CPU clock.

Real kernels under real cgroups (one case under psutil too), limits from
sandbox_helpers: 3 s per execution, 2 s interrupt grace, 40% of a core. Each
case waits for its outcome with a deadline; verdicts are read from the
activity log (GET admin/events), which records kernel-wide verdicts too.
"""

from __future__ import annotations

import time

import pytest

from harness import new_message
from sandbox_helpers import kernel_pid, run_until_answer, start_confined, wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.e2e]

API = "/advanced-eda/api"
LIMIT, GRACE = 3, 2
# limit + grace + the CPU clock's 1 s windows + a restart on a loaded 2-core host
VERDICT_WITHIN = 40

TRAP = """
class Trap:
    def __getattr__(self, name):  # runs inside the kernel's inspect/complete handler
        while True:
            pass
trap = Trap()
"""

FORGED_IDLE = """
k = get_ipython().kernel
k.session.send(k.iopub_socket, 'status', {'execution_state': 'idle'}, parent=k.get_parent('shell'))
while True:
    pass
"""

SPINNING_THREAD = """
import threading
def spin():
    while True:
        pass
threading.Thread(target=spin, daemon=True).start()
"""


@pytest.fixture(scope="module")
def cgroup_server(tmp_path_factory):
    srv = start_confined(tmp_path_factory.mktemp("background-cgroup"), "cgroup")
    yield srv
    srv.stop()


def verdicts_on(srv, kernel_id: str) -> list[dict]:
    r = srv.get(f"{API}/admin/events?user=alice", "admin")
    assert r.status_code == 200, r.text
    return [e for e in r.json()["events"] if e["kind"] == "verdict" and e["kernel_id"] == kernel_id]


def wait_verdict(srv, kernel_id: str, names: tuple[str, ...], killed: bool | None = None) -> dict:
    def found():
        for event in verdicts_on(srv, kernel_id):
            if event["reason"] in names and (killed is None or event["details"]["killed"] == killed):
                return event
        return None

    return wait_for(found, timeout=VERDICT_WITHIN, interval=0.5, what=f"{names} on {kernel_id}")


def shell_request(kc, msg_type: str, content: dict) -> str:
    msg = new_message(msg_type, content, kc.session)
    kc.send(msg)
    return msg["header"]["msg_id"]


def reply_to(kc, msg_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.recv(max(0.1, deadline - time.monotonic()))
        if msg.get("channel") == "shell" and msg.get("parent_header", {}).get("msg_id") == msg_id:
            return msg


def test_an_inspection_that_runs_forever_is_stopped(cgroup_server):
    srv = cgroup_server
    kid = srv.start_kernel("alice")
    kc = srv.kernel_ws(kid, "alice")
    assert kc.run(TRAP).reply["status"] == "ok"
    pid = kernel_pid(srv, kid)
    shell_request(kc, "inspect_request", {"code": "trap.anything", "cursor_pos": 13, "detail_level": 0})
    verdict = wait_verdict(srv, kid, ("BackgroundExecutionTimeout",), killed=True)
    kc.close()
    # the kernel ignores SIGINT outside executions: killed after the grace, restarted
    assert verdict["details"]["msg_id"] is None
    assert run_until_answer(srv, kid, "alice", "1 + 1").result == "2"
    assert kernel_pid(srv, kid) != pid
    assert srv.delete(f"/api/kernels/{kid}", "alice").status_code == 204


def test_a_cell_forging_its_own_idle_is_stopped_all_the_same(cgroup_server):
    srv = cgroup_server
    kid = srv.start_kernel("alice")
    kc = srv.kernel_ws(kid, "alice")
    assert kc.run("1").reply["status"] == "ok"
    kc.execute(FORGED_IDLE)
    # the forged idle ends the cell's lease: whichever clock runs then, a verdict comes in time
    wait_verdict(srv, kid, ("ExecutionTimeout", "BackgroundExecutionTimeout"))
    kc.close()
    # requests sent right after an interrupted cell may be aborted: ask until answered
    wait_for(lambda: run_until_answer(srv, kid, "alice", "2 + 2").result == "4", timeout=30,
             what="the kernel answering again")
    assert srv.delete(f"/api/kernels/{kid}", "alice").status_code == 204


COMM_TARGET = """
def on_open(comm, msg):  # runs inside the kernel's comm_open handler
    while True:
        pass
get_ipython().kernel.comm_manager.register_target('spin', on_open)
"""


def test_a_comm_handler_that_runs_forever_is_stopped(cgroup_server):
    srv = cgroup_server
    kid = srv.start_kernel("alice")
    kc = srv.kernel_ws(kid, "alice")
    assert kc.run(COMM_TARGET).reply["status"] == "ok"
    pid = kernel_pid(srv, kid)
    shell_request(kc, "comm_open", {"comm_id": "c1", "target_name": "spin", "data": {}})
    wait_verdict(srv, kid, ("BackgroundExecutionTimeout",))
    kc.close()
    # the interrupt usually ends a comm handler (ipykernel catches the KeyboardInterrupt); else the kill
    assert run_until_answer(srv, kid, "alice", "1 + 1").result == "2"
    interrupted = [e for e in verdicts_on(srv, kid) if not e["details"]["killed"]]
    assert interrupted and interrupted[0]["reason"] == "BackgroundExecutionTimeout"
    if kernel_pid(srv, kid) == pid:  # interrupted: the CPU went idle, so no kill followed
        assert all(not e["details"]["killed"] for e in verdicts_on(srv, kid))
    assert srv.delete(f"/api/kernels/{kid}", "alice").status_code == 204


def test_a_forged_idle_of_another_parent_does_not_pause_the_execution_clock(cgroup_server):
    srv = cgroup_server
    kid = srv.start_kernel("alice")
    kc = srv.kernel_ws(kid, "alice")
    assert kc.run("marker = 7").reply["status"] == "ok"
    forge = ("import time\nk = get_ipython().kernel\n"
             "while True:\n"
             "    k.session.send(k.iopub_socket, 'status', {'execution_state': 'idle'}, parent={})\n"
             "    t = time.time()\n"
             "    while time.time() - t < 0.1: pass\n")
    ex = kc.run(forge, timeout=VERDICT_WITHIN)
    assert ex.error["ename"] == "ExecutionTimeout", ex.error  # its own lease held: its own clock stopped it
    assert kc.run("marker").result == "7"  # interrupted, not killed
    kc.close()
    assert srv.delete(f"/api/kernels/{kid}", "alice").status_code == 204


def check_spinning_thread_is_stopped(srv):
    kid = srv.start_kernel("alice")
    kc = srv.kernel_ws(kid, "alice")
    pid = kernel_pid(srv, kid)
    assert kc.run(SPINNING_THREAD).reply["status"] == "ok"  # the cell returns at once
    verdict = wait_verdict(srv, kid, ("BackgroundExecutionTimeout",), killed=True)
    kc.close()
    assert verdict["details"]["msg_id"] is None
    assert run_until_answer(srv, kid, "alice", "'spin' in dir()").result == "False"  # a fresh kernel
    assert kernel_pid(srv, kid) != pid
    interrupted = [e for e in verdicts_on(srv, kid) if not e["details"]["killed"]]
    assert [e["reason"] for e in interrupted] == ["BackgroundExecutionTimeout"]  # interrupted first
    assert srv.delete(f"/api/kernels/{kid}", "alice").status_code == 204


def test_a_thread_left_spinning_after_its_cell_is_stopped(cgroup_server):
    check_spinning_thread_is_stopped(cgroup_server)


def test_a_thread_left_spinning_is_stopped_under_psutil_too(tmp_path):
    srv = start_confined(tmp_path, "psutil")
    try:
        check_spinning_thread_is_stopped(srv)
    finally:
        srv.stop()


def test_quick_completions_while_typing_are_answered_and_not_stopped(cgroup_server):
    srv = cgroup_server
    kid = srv.start_kernel("alice")  # a fresh kernel: its start must not count either
    kc = srv.kernel_ws(kid, "alice")
    # jedi's first completions can time out at 40% of a core: the plain completer is enough here
    assert kc.run("import os\nget_ipython().Completer.use_jedi = False").reply["status"] == "ok"
    pid = kernel_pid(srv, kid)
    # typing for longer than limit + grace, and at least 5 rounds however slow the machine:
    # completions and inspections all along
    until = time.monotonic() + LIMIT + GRACE + 2
    answered = 0
    while time.monotonic() < until or answered < 5:
        msg_id = shell_request(kc, "complete_request", {"code": "pri", "cursor_pos": 3})
        reply = reply_to(kc, msg_id)
        assert reply["content"]["status"] == "ok" and "print" in reply["content"]["matches"], reply["content"]
        msg_id = shell_request(kc, "inspect_request", {"code": "os.path", "cursor_pos": 7, "detail_level": 0})
        assert reply_to(kc, msg_id)["content"]["status"] == "ok"
        answered += 1
        time.sleep(0.3)  # a typist's pace, not a wait for an outcome
    kc.close()
    assert answered >= 5
    assert verdicts_on(srv, kid) == []
    assert kernel_pid(srv, kid) == pid
    status = srv.get(f"{API}/rate-limit-status", "alice").json()
    assert status["executions_in_window"] <= 20  # completions are not executions (only our cells count)
    assert srv.delete(f"/api/kernels/{kid}", "alice").status_code == 204
