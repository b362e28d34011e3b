"""Admission over real kernel websockets to real kernels, both protocols.

One server for the module with a short window (10 s) so that waiting out a window
stays cheap, yet long enough for a burst of executions on a slow host; each test uses its own users so that budgets do not mix.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time

import psutil
import websocket
import pytest

from harness import TOKENS, GatewayServer, new_message, until_released

pytestmark = pytest.mark.e2e  # real servers (tests/conftest.py: tiers)

V1 = "v1.kernel.websocket.jupyter.org"
PROTOCOLS = [pytest.param(None, id="legacy"), pytest.param(V1, id="v1")]
STATUS = "/advanced-eda/api/rate-limit-status"
WINDOW = 10.0

USERS = ["p_legacy", "p_v1", "other", "conc", "burst", "life_legacy", "life_v1", "odd_legacy", "odd_v1", "junk_legacy", "junk_v1"]
CONFIG = f"""
c.EDARateLimiter.window_seconds = {WINDOW}
c.EDARateLimiter.max_executions_per_minute = 10
c.EDARateLimiter.max_concurrent_executions = 2
c.EDAGateway.user_limits = {{
    "bob": {{"max_executions_per_minute": 20}},
    "life_legacy": {{"max_concurrent_executions": 1, "max_executions_per_minute": 100}},
    "life_v1": {{"max_concurrent_executions": 1, "max_executions_per_minute": 100}},
}}
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    tokens = dict(TOKENS, **{u: f"{u}-token" for u in USERS})
    srv = GatewayServer(tmp_path_factory.mktemp("adm"), extra_config=CONFIG, tokens=tokens).start()
    yield srv
    srv.stop()


@pytest.fixture
def kernels(gw):
    """Start kernels for a user; all are shut down after the test."""
    started = []

    def start(user: str, n: int = 1) -> list[str]:
        ids = [gw.start_kernel(user) for _ in range(n)]
        started.extend((user, k) for k in ids)
        return ids

    yield start
    for user, kid in started:
        gw.delete(f"/api/kernels/{kid}", user)


def msg_type(m: dict) -> str:
    return m.get("msg_type") or m["header"]["msg_type"]


def collect_many(kc, msg_ids, timeout=60) -> dict[str, list[dict]]:
    """Messages of several executions on one socket, until each has its reply and idle."""
    got = {mid: [] for mid in msg_ids}
    done: set[str] = set()
    deadline = time.monotonic() + timeout
    pending = [m for m in kc.backlog]
    kc.backlog.clear()
    while len(done) < len(got):
        m = pending.pop(0) if pending else kc.recv(max(0.1, deadline - time.monotonic()))
        parent = m.get("parent_header", {}).get("msg_id")
        if parent not in got:
            continue
        got[parent].append(m)
        types = [msg_type(x) for x in got[parent]]
        if "execute_reply" in types and any(
            msg_type(x) == "status" and x["content"].get("execution_state") == "idle" for x in got[parent]
        ):
            done.add(parent)
    return got


def status(gw, caller, params=None):
    r = gw.get(STATUS, caller, params=params or {})
    assert r.status_code == 200, r.text
    return r.json()


def assert_refused(messages: list[dict], msg_id: str, limit_words: str) -> float:
    """The contract's four messages, parented to the request; returns the wait in evalue."""
    assert [msg_type(m) for m in messages] == ["status", "error", "status", "execute_reply"]
    assert [m["content"].get("execution_state") for m in messages[::2]] == ["busy", "idle"]
    assert all(m["parent_header"]["msg_id"] == msg_id for m in messages)
    error, reply = messages[1]["content"], messages[3]["content"]
    assert error["ename"] == "RateLimitExceeded" and reply["ename"] == "RateLimitExceeded"
    assert reply["status"] == "error"
    # what strict clients validate: an integer count (nothing ran), and only the spec's keys
    assert type(reply["execution_count"]) is int
    assert set(error) == {"ename", "evalue", "traceback"}
    assert limit_words in error["evalue"], error["evalue"]
    wait = float(re.search(r"Try again in (\d+) s", error["evalue"]).group(1))
    for m in (messages[1], messages[3]):  # the wait as a number, too
        details = m["metadata"]["eda_gateway"]
        assert details["verdict"] == "RateLimitExceeded" and details["reason"] in ("per_minute", "concurrent")
        assert wait - 1 <= details["retry_after_seconds"] <= wait
    return wait


def own_socket(gw, kernels, prefix: str, protocol):
    """(user, kernel id, client) for a per-protocol user ``<prefix>_legacy`` / ``<prefix>_v1``."""
    user = f"{prefix}_legacy" if protocol is None else f"{prefix}_v1"
    (kid,) = kernels(user)
    return user, kid, gw.kernel_ws(kid, user, protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_eleventh_execution_is_refused_and_runs_again_after_the_announced_wait(gw, kernels, protocol):
    # The retry time's arithmetic is tested on a fake clock (tests/test_admission_rules_unit.py,
    # tests/test_websocket_admission_unit.py); here: the refusal, the status and the headers a
    # real server gives, and that waiting as long as announced is enough.
    user, kid, kc = own_socket(gw, kernels, "p", protocol)
    try:
        for i in range(10):
            ex = kc.run(f"{i} + 1")
            assert ex.reply["status"] == "ok" and ex.result == str(i + 1)
        msg_id = kc.execute("print('must never run')")
        messages = kc.collect(msg_id)
        wait = assert_refused(messages, msg_id, f"10 executions per {WINDOW:g} s")
        assert 0 < wait <= WINDOW
        assert "must never run" not in str(messages)

        s = status(gw, user)
        assert (s["executions_in_window"], s["remaining"], s["status"]) == (10, 0, "limited")
        assert 0 < s["retry_after_seconds"] <= WINDOW
        r = gw.get(STATUS, user)
        assert r.headers["RateLimit-Policy"] == f'"exec";q=10;w={WINDOW:g}'
        assert re.fullmatch(r'"exec";r=0;t=\d+', r.headers["RateLimit"])

        # another user is unaffected meanwhile
        (other_kid,) = kernels("other")
        okc = gw.kernel_ws(other_kid, "other", protocol)
        assert okc.run("2 * 21").result == "42"
        okc.close()

        # after the announced wait, the user runs again
        time.sleep(s["retry_after_seconds"] + 0.2)
        assert kc.run("'again'").reply["status"] == "ok"
    finally:
        kc.close()


def test_an_override_raises_one_users_limit(gw, kernels):
    (kid,) = kernels("bob")
    kc = gw.kernel_ws(kid, "bob", V1)
    try:
        ids = [kc.execute(f"{i}") for i in range(12)]
        results = collect_many(kc, ids)
        assert all(msgs[-1]["content"].get("status") != "error" for msgs in results.values())
        assert all(
            next(m for m in msgs if msg_type(m) == "execute_reply")["content"]["status"] == "ok"
            for msgs in results.values()
        )
        s = status(gw, "bob")
        assert s["limits"]["max_executions_per_minute"] == 20
        assert (s["executions_in_window"], s["remaining"]) == (12, 8)
        # the default still applies to everyone else
        assert status(gw, "carol")["limits"]["max_executions_per_minute"] == 10
    finally:
        kc.close()


def test_a_third_busy_kernel_is_refused_but_run_all_in_one_kernel_is_not(gw, kernels):
    k1, k2, k3 = kernels("conc", 3)
    c1, c2, c3 = (gw.kernel_ws(k, "conc") for k in (k1, k2, k3))
    try:
        slow1 = c1.execute(until_released("go1"))
        slow2 = c2.execute(until_released("go2"))
        s = wait_for_concurrent(gw, "conc", 2)
        assert s["status"] == "limited"
        assert sorted(e["kernel_id"] for e in s["active_executions"]) == sorted([k1, k2])
        assert all(e["source"] == "notebook" and e["duration_seconds"] >= 0 for e in s["active_executions"])

        refused = c3.execute("1")
        wait = assert_refused(c3.collect(refused), refused, "at most 2 kernels")
        assert wait >= 1
        # durations are live: they grew since the first look (ms resolution)
        time.sleep(0.1)
        later = {e["kernel_id"]: e["duration_seconds"] for e in status(gw, "conc")["active_executions"]}
        assert all(later.get(e["kernel_id"], float("inf")) > e["duration_seconds"]  # (or already done)
                   for e in s["active_executions"]), (s, later)

        # "Run All": five more cells queued behind the running one in k1 are admitted
        run_all = [c1.execute(f"x = {i}") for i in range(5)]
        gw.release("conc", "go1")
        results = collect_many(c1, [slow1, *run_all])
        for mid in run_all:
            reply = next(m for m in results[mid] if msg_type(m) == "execute_reply")["content"]
            assert reply["status"] == "ok", reply
        gw.release("conc", "go2")
        c2.collect(slow2)
        # both kernels are done: the third kernel runs at once
        assert c3.run("3").reply["status"] == "ok"
        assert status(gw, "conc")["concurrent_executions"] == 0
    finally:
        for c in (c1, c2, c3):
            c.close()


def test_fifty_executions_at_once_over_ten_sockets_admit_exactly_the_limit(gw, kernels):
    k1, k2 = kernels("burst", 2)
    clients = [gw.kernel_ws(k1 if i % 2 else k2, "burst", V1 if i % 3 else None) for i in range(10)]
    start = threading.Barrier(len(clients))
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def fire(kc):
        try:
            start.wait()
            ids = [kc.execute("1") for _ in range(5)]
            for msgs in collect_many(kc, ids).values():
                reply = next(m for m in msgs if msg_type(m) == "execute_reply")["content"]
                outcomes.append(reply["status"] if reply["status"] == "ok" else reply["ename"])
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=fire, args=(kc,)) for kc in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for kc in clients:
        kc.close()
    assert not errors, errors
    assert sorted(set(outcomes)) == ["RateLimitExceeded", "ok"]
    assert outcomes.count("ok") == 10 and outcomes.count("RateLimitExceeded") == 40
    assert status(gw, "burst")["executions_in_window"] == 10


def kernel_pid(kernel_id: str) -> int:
    for proc in psutil.process_iter(["cmdline"]):
        if any(f"kernel-{kernel_id}.json" in part for part in proc.info["cmdline"] or ()):
            return proc.pid
    raise AssertionError(f"no process for kernel {kernel_id}")


def wait_for_concurrent(gw, user, expected: int, timeout=30.0) -> dict:
    """Poll until the user's concurrent executions are ``expected`` (a restarted
    kernel may take seconds before the server passes it a request)."""
    deadline = time.monotonic() + timeout
    while True:
        s = status(gw, user)
        if s["concurrent_executions"] == expected and len(s["active_executions"]) >= expected:
            if expected or not s["active_executions"]:
                return s
        assert time.monotonic() < deadline, s
        time.sleep(0.2)


def wait_until_no_lease(gw, user, timeout=30.0) -> dict:
    return wait_for_concurrent(gw, user, 0, timeout)


def wait_until_kernel_answers(gw, kernel_id, user, protocol, timeout=90.0):
    """A client connected to the restarted kernel, once it answers. A socket opened
    while the auto-restarter is still at work was once seen to get no answer (CI,
    under load): reconnect like JupyterLab does rather than wait on it forever."""
    deadline = time.monotonic() + timeout
    while True:
        kc = gw.kernel_ws(kernel_id, user, protocol)
        try:
            if kc.run("1", timeout=10).reply["status"] == "ok":
                return kc
        except (TimeoutError, websocket.WebSocketTimeoutException):
            pass
        kc.close()
        assert time.monotonic() < deadline, "the restarted kernel never answered"
        time.sleep(0.5)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_no_lease_is_left_after_restart_kill_or_reconnect(gw, kernels, protocol):
    """max_concurrent_executions is 1 for this user: any leaked lease on k1 would
    refuse the execution on k2."""
    user = "life_legacy" if protocol is None else "life_v1"
    k1, k2 = kernels(user, 2)
    other = gw.kernel_ws(k2, user, protocol)

    def assert_k2_runs_at_once():
        assert other.run("'free'").reply["status"] == "ok"

    # 1. restart through the API while an execution runs
    kc = gw.kernel_ws(k1, user, protocol)
    kc.execute("import time; time.sleep(30)")
    wait_for_concurrent(gw, user, 1)
    blocked = other.execute("1")
    assert_refused(other.collect(blocked), blocked, "at most 1 kernels")
    assert gw.post(f"/api/kernels/{k1}/restart", user).status_code == 200
    wait_until_no_lease(gw, user, timeout=2)
    assert_k2_runs_at_once()
    kc.close()

    # 2. the kernel is killed from outside; the auto-restarter brings it back
    kc = gw.kernel_ws(k1, user, protocol)
    kc.execute("import time; time.sleep(30)")
    wait_for_concurrent(gw, user, 1)
    os.kill(kernel_pid(k1), signal.SIGKILL)
    wait_until_no_lease(gw, user, timeout=20)
    assert_k2_runs_at_once()
    kc.close()

    # 3. the client leaves mid-execution and comes back with a new session id:
    # jupyter_server drops the old session's reply, the lease still ends when k1 is idle
    kc = wait_until_kernel_answers(gw, k1, user, protocol)
    kc.execute("import time; time.sleep(3)")
    wait_for_concurrent(gw, user, 1, timeout=2)
    kc.close()
    time.sleep(0.3)
    assert status(gw, user)["concurrent_executions"] == 1  # k1 is really still running
    kc = gw.kernel_ws(k1, user, protocol)  # a new session id
    wait_until_no_lease(gw, user, timeout=10)
    assert_k2_runs_at_once()
    assert kc.run("'back'").reply["status"] == "ok"
    kc.close()
    other.close()


def test_status_is_per_user_and_admins_may_ask_about_anyone(gw):
    r = gw.get(STATUS, "carol", params={"user": "alice"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    s = status(gw, "admin", {"user": "p_legacy"})
    assert s["user"] == "p_legacy"
    own = status(gw, "carol", {"user": "carol"})
    assert own["user"] == "carol" and own["session"]["started_at"].endswith("Z")
    assert set(own) == {
        "user", "limits", "executions_in_window", "remaining", "concurrent_executions",
        "retry_after_seconds", "reset_in_seconds", "status", "daily", "active_executions", "session", "disk",
    }
    assert own["daily"] is None and own["limits"]["max_executions_per_day"] == 0  # no daily quota by default
    assert gw.get(STATUS, None).status_code in (401, 403)


def replies_to(kc, msg_id: str, n: int, timeout=60.0) -> list[dict]:
    """The first ``n`` execute_replies parented to ``msg_id`` (on any channel)."""
    replies, deadline = [], time.monotonic() + timeout
    while len(replies) < n:
        m = kc.recv(max(0.1, deadline - time.monotonic()))
        if msg_type(m) == "execute_reply" and m["parent_header"].get("msg_id") == msg_id:
            replies.append(m)
    return replies


def execute_message(kc, code: str, channel: str = "shell", msg_id: str | None = None) -> dict:
    msg = new_message("execute_request", {"code": code, "silent": False, "store_history": True,
                                          "user_expressions": {}, "allow_stdin": False}, kc.session, channel)
    if msg_id is not None:
        msg["header"]["msg_id"] = msg_id
    return msg


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_requests_admission_cannot_count_are_refused_and_never_run(gw, kernels, protocol):
    """ipykernel runs code sent on the control channel and code without a msg_id, and runs
    every copy of a msg_id: each would have run uncounted, past the budget."""
    user, kid, kc = own_socket(gw, kernels, "odd", protocol)
    try:
        on_control = execute_message(kc, "ran_on_control = 1", channel="control")
        kc.send(dict(on_control))
        (reply,) = replies_to(kc, on_control["header"]["msg_id"], 1)
        assert reply["channel"] == "control" and reply["content"]["ename"] == "InvalidExecuteRequest"
        kc.send(execute_message(kc, "ran_without_id = 1", msg_id=""))
        (reply,) = replies_to(kc, "", 1)
        assert reply["content"]["ename"] == "InvalidExecuteRequest" and "msg_id" in reply["content"]["evalue"]
        twice = execute_message(kc, "import time; time.sleep(1); runs = globals().get('runs', 0) + 1")
        msg_id = twice["header"]["msg_id"]
        kc.send(dict(twice, header=dict(twice["header"])))
        kc.send(twice)
        replies = replies_to(kc, msg_id, 2)
        names = sorted(r["content"].get("ename") or r["content"]["status"] for r in replies)
        assert names == ["InvalidExecuteRequest", "ok"], replies
        probe = kc.run("(globals().get('ran_on_control'), globals().get('ran_without_id'), runs)")
        assert probe.result == "(None, None, 1)"
        # counted: the one copy that ran and the probe
        assert status(gw, user)["executions_in_window"] == 2
    finally:
        kc.close()


JUNK_TEXT = ["not json", "[]", "5", '{"header": "x"}', '{"channel": "shell"}', '{"header": {"msg_id": 1}, "channel": "nochan"}']
# binary frames whose part counts lie: 2**64-1 parts (v1), 2**31-1 (legacy) in a few bytes
JUNK_BINARY = [b"", b"\x00" * 3, b"\xff" * 64, b"\x7f\xff\xff\xff" + b"\x00" * 12, (8).to_bytes(8, "little") * 3]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_malformed_frames_are_dropped_and_the_socket_lives_on(gw, kernels, protocol):
    user, kid, kc = own_socket(gw, kernels, "junk", protocol)
    try:
        for frame in JUNK_TEXT:
            kc.ws.send(frame)
        for frame in JUNK_BINARY:
            kc.ws.send_binary(frame)
        if protocol is None:
            # a bare execute_request (no parent_header, metadata, content): admitted, ended
            kc.ws.send(json.dumps({"header": execute_message(kc, "")["header"], "channel": "shell"}))
        assert kc.run("6 * 7").result == "42"
        s = wait_until_no_lease(gw, user, timeout=10)
        assert s["executions_in_window"] == (2 if protocol is None else 1)
        assert "Uncaught exception" not in gw.log()
    finally:
        kc.close()
