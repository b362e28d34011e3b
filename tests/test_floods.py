"""Floods one user aims at the shared server: kernel websockets, and refused executions.

One server for the module: alice may hold 8 kernel websockets; "flooder" has a budget
of 2 executions a minute, so everything past that is refused.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import websocket

from harness import TOKENS, GatewayServer

pytestmark = pytest.mark.e2e  # real servers (tests/conftest.py: tiers)

CAP = 8
API = "/advanced-eda/api"
USERS = ["flooder"]
CONFIG = f"""
c.EDAGateway.max_connections_per_user = {CAP}
c.EDAGateway.user_limits = {{
    "alice": {{"max_executions_per_minute": 1000, "max_concurrent_executions": 4}},
    "bob": {{"max_executions_per_minute": 1000}},
    "flooder": {{"max_executions_per_minute": 2}},
}}
"""


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    tokens = dict(TOKENS, **{u: f"{u}-token" for u in USERS})
    srv = GatewayServer(tmp_path_factory.mktemp("floods"), extra_config=CONFIG, tokens=tokens).start()
    yield srv
    srv.stop()


def refused_connection(gw, kernel_id, user="alice") -> dict:
    """The JSON answer of a kernel websocket handshake that must be refused."""
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        gw.kernel_ws(kernel_id, user).close()
    assert e.value.status_code == 429
    return json.loads(e.value.resp_body)


def connect_when_freed(gw, kernel_id, user="alice", timeout=10.0):
    """The server frees a place when it sees the close, a moment after the client."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return gw.kernel_ws(kernel_id, user)
        except websocket.WebSocketBadStatusException as e:
            if e.status_code != 429 or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_a_websocket_flood_is_refused_past_the_cap_and_spares_everyone_else(gw):
    assert "sized for" in gw.log() and "ZMQ MAX_SOCKETS" in gw.log()
    bob_kernel = gw.start_kernel("bob")
    alice_kernel = gw.start_kernel("alice")
    bob = gw.kernel_ws(bob_kernel, "bob")
    assert bob.run("1").reply["status"] == "ok"
    lines_before = len(gw.log().splitlines())

    held, refusals = [], []
    for _ in range(40):
        try:
            held.append(gw.kernel_ws(alice_kernel, "alice"))
        except websocket.WebSocketBadStatusException as e:
            refusals.append((e.status_code, json.loads(e.resp_body)))
    assert len(held) == CAP and len(refusals) == 40 - CAP
    assert {status for status, _ in refusals} == {429}
    body = refusals[0][1]
    assert body["error"] == "TooManyConnections"
    assert "max_connections_per_user = 8" in body["message"]

    # more refused handshakes go on while bob works: every one of his executions is answered
    # (how much slower they are is measured by benchmarks/ws_flood.py, not asserted here)
    stop = threading.Event()
    attempts = []

    def hammer():
        while not stop.is_set():
            attempts.append(1)
            try:
                gw.kernel_ws(alice_kernel, "alice").close()
            except websocket.WebSocketBadStatusException:
                pass
            stop.wait(0.02)  # ~50 handshakes a second: a flood, not a benchmark of our client

    flood = threading.Thread(target=hammer, daemon=True)
    flood.start()
    try:
        i = 0
        while i < 10 or len(attempts) < 25:  # bob works for as long as the flood takes to get going
            assert bob.run(f"{i} * 7").result == str(i * 7)
            i += 1
            assert i < 10_000, "the flood never got going"
        new_kernel = gw.start_kernel("bob")
        with_new = gw.kernel_ws(new_kernel, "bob")
        assert with_new.run("print('hi')").stdout == "hi\n"
        with_new.close()
    finally:
        stop.set()
        flood.join(30)
    # each refused handshake is a 429 in the access log: rate-limited too
    grown = gw.log().splitlines()[lines_before:]
    assert len(grown) < 50, (len(attempts), grown)
    for kc in held:  # alice's own connections never failed
        assert kc.run("1 + 1").result == "2"

    # however they end, closed connections give their place back
    for kc in held[: CAP // 2]:
        kc.close()
    for kc in held[CAP // 2:]:
        kc.ws.shutdown()  # gone without a close frame
    again = [connect_when_freed(gw, alice_kernel) for _ in range(CAP)]
    assert refused_connection(gw, alice_kernel)["error"] == "TooManyConnections"
    assert again[-1].run("3").result == "3"

    # a kernel shut down under its connections gives them all back
    assert gw.delete(f"/api/kernels/{alice_kernel}", "alice").status_code == 204
    other = gw.start_kernel("alice")
    fresh = [connect_when_freed(gw, other) for _ in range(CAP)]
    assert fresh[0].run("4").result == "4"
    for kc in [*again, *fresh, bob]:
        kc.close()
    for user, kid in (("bob", bob_kernel), ("bob", new_kernel), ("alice", other)):
        gw.delete(f"/api/kernels/{kid}", user)


def close_frame(kc, timeout=30) -> tuple[int, str]:
    """Read until the server's close frame; its (code, reason)."""
    kc.ws.settimeout(timeout)
    while True:
        frame = kc.ws.recv_frame()
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big"), frame.data[2:].decode()
        if frame.opcode == websocket.ABNF.OPCODE_TEXT:
            kc.backlog.append(json.loads(frame.data))


def test_a_flood_of_refused_executions_is_slowed_then_closed_and_stays_cheap(gw):
    bob_kernel = gw.start_kernel("bob")
    bob = gw.kernel_ws(bob_kernel, "bob")
    assert bob.run("1").reply["status"] == "ok"
    bob.close()
    bob_rows = lambda: gw.get(f"{API}/admin/events?user=bob&limit=1000", "admin").json()["events"]  # noqa: E731
    bob_before = bob_rows()
    lines_before = len(gw.log().splitlines())

    kernel = gw.start_kernel("flooder")
    kc = gw.kernel_ws(kernel, "flooder")
    assert kc.run("1").reply["status"] == "ok" and kc.run("2").reply["status"] == "ok"  # the budget: 2
    for _ in range(10):  # answered at once (when: tests/test_refusal_unit.py, on a fake clock)
        assert kc.run("3").error["ename"] == "RateLimitExceeded"
    t0 = time.monotonic()  # the 11th in the window waits refusal_flood_delay (1 s) at least
    assert kc.run("3").error["ename"] == "RateLimitExceeded"
    assert time.monotonic() - t0 >= 1.0
    sent = 0
    try:
        for _ in range(2000):
            kc.execute("4")
            sent += 1
    except (websocket.WebSocketException, OSError):
        pass  # the server may close while we send
    code, reason = close_frame(kc)
    assert code == 4029 and "refusal_flood_close_after" in reason, (code, reason)
    kc.close()

    refused = gw.get(f"{API}/admin/events?user=flooder&kind=execution.refused", "admin").json()["events"]
    assert 1 <= len(refused) <= 2  # one row per minute, not one per refusal
    assert sum(e["count"] for e in refused) == 51  # closed at the 51st in the window
    assert bob_rows() == bob_before
    grown = len(gw.log().splitlines()) - lines_before
    assert grown < 50, gw.log().splitlines()[lines_before:]
    gw.delete(f"/api/kernels/{kernel}", "flooder")
    gw.delete(f"/api/kernels/{bob_kernel}", "bob")
