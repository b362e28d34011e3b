"""Websocket admission in process: the connection class with a mocked websocket handler,
as jupyter_server's own tests/services/kernels/test_connection.py builds it.

The connection's collaborators are real (AdmissionService, ExecutionLedger, RefusalLog,
RefusalFlood, VerdictBus, ConnectionLimiter) on one fake clock; the kernel's channels
are streams that keep what they were sent, so "reached the kernel" is what they hold.
No server, no kernel process, no sleeps.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future
from types import SimpleNamespace
from unittest.mock import MagicMock

import pytest
from jupyter_client.jsonutil import json_default
from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1, serialize_msg_to_ws_v1
from jupyter_server.services.kernels.websocket import KernelWebsocketHandler
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
from tornado.web import Application
from traitlets import Bool, List, Unicode
from traitlets.config import Configurable

from eda_gateway.admission import AdmissionService, MemoryStore
from eda_gateway.connections import ConnectionLimiter
from eda_gateway.ledger import REPLIED, ExecutionBus, ExecutionLedger
from eda_gateway.limits import Limits
from eda_gateway.refusal_flood import RefusalFlood
from eda_gateway.refusal_log import RefusalLog
from eda_gateway.verdicts import Verdict, VerdictBus
from eda_gateway.websocket import SETTINGS_KEY, V1, ConnectionServices, EDAKernelWebsocketConnection

KERNEL_ID = "00000000-0000-4000-8000-0000000000aa"
USER = "alice"
PROTOCOLS = [pytest.param(None, id="legacy"), pytest.param(V1, id="v1")]
LIMITS = Limits(max_executions_per_minute=2, max_concurrent_executions=2, window_seconds=60.0)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class _Kernels(Configurable):
    """The MappingKernelManager's place: what the connection asks of it."""

    allowed_message_types = List([])
    allow_tracebacks = Bool(True)


class _Kernel(Configurable):
    """One kernel's manager: the connection's parent (never started here)."""

    kernel_id = Unicode(KERNEL_ID)

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ready = _done()  # jupyter_client's: a new future for every (re)start


def _done() -> Future:
    future = Future()
    future.set_result(None)
    return future


class CapturingStream:
    """A kernel channel that keeps the frames sent to it."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.sent: list[list[bytes]] = []

    def send_multipart(self, parts, flags=0, copy=True, track=False):
        self.sent.append(list(parts))

    def closed(self) -> bool:
        return False


class Harness:
    """One connection of ``USER`` to ``KERNEL_ID``, its services and what each side got."""

    def __init__(self, protocol: str | None, limits: Limits = LIMITS) -> None:
        self.clock = FakeClock()
        store = MemoryStore()
        self.ledger = ExecutionLedger(ExecutionBus(), store, lambda user: limits.max_execution_time + 10,
                                      self.clock, self.clock)
        self.admission = AdmissionService(lambda user: limits, store=store, clock=self.clock,
                                          wall_clock=self.clock, ledger=self.ledger)
        services = ConnectionServices(
            admission=self.admission,
            ledger=self.ledger,
            connections=ConnectionLimiter(lambda user: 16, total=100),
            refusal_log=RefusalLog(logging.getLogger("test_websocket_admission_unit"), clock=self.clock),
            refusal_flood=lambda: RefusalFlood(100, 200, 60.0, 1.0, clock=self.clock),  # never slows here
            verdicts=VerdictBus(),
            sandbox=SimpleNamespace(refuses_allocations=False),
            kernel_listeners=[],
        )
        request = HTTPServerRequest(start_line=RequestStartLine("GET", f"/api/kernels/{KERNEL_ID}/channels", "HTTP/1.1"),
                                      headers=HTTPHeaders({"Host": "127.0.0.1"}))
        request.connection = MagicMock()
        handler = KernelWebsocketHandler(Application(**{SETTINGS_KEY: services}), request)
        handler.current_user = SimpleNamespace(username=USER)
        handler.ws_connection = MagicMock(selected_subprotocol=protocol)
        self.written: list[tuple[object, bool]] = []
        handler.write_message = lambda message, binary=False: self.written.append((message, binary))
        self.conn = EDAKernelWebsocketConnection(parent=_Kernel(parent=_Kernels()), websocket_handler=handler)
        self.channels = {name: CapturingStream(name) for name in ("shell", "control", "iopub", "stdin")}
        self.conn.channels = self.channels
        self.protocol = protocol

    @property
    def session(self):
        return self.conn.session

    # --- the client's side -------------------------------------------------------

    def send(self, msg_type: str, content: dict | None = None, channel: str = "shell", msg_id: str | None = None):
        msg = self.session.msg(msg_type, content or {})
        if msg_id is not None:
            msg["header"]["msg_id"] = msg_id
        if self.protocol == V1:
            self.conn.handle_incoming_message(serialize_msg_to_ws_v1(msg, channel, self.session.pack))
        else:
            self.conn.handle_incoming_message(json.dumps({**msg, "channel": channel}, default=json_default))
        return msg

    def execute(self, code: str = "1", **kwargs) -> dict:
        return self.send("execute_request", {"code": code, "silent": False}, **kwargs)

    def client_got(self) -> list[dict]:
        """What the client was written, decoded, each with its channel."""
        messages = []
        for message, binary in self.written:
            if self.protocol == V1:
                assert binary
                channel, parts = deserialize_msg_from_ws_v1(message)
                header, parent, metadata, content = (self.session.unpack(p) for p in parts[:4])
                messages.append({"channel": channel, "header": header, "parent_header": parent,
                                 "metadata": metadata, "content": content})
            else:
                messages.append(json.loads(message))
        return messages

    # --- the kernel's side ---------------------------------------------------------

    def kernel_got(self, channel: str = "shell") -> list[dict]:
        out = []
        for frames in self.channels[channel].sent:
            _, fed = self.session.feed_identities(frames)  # [signature, header, parent, metadata, content]
            header, parent, metadata, content = (self.session.unpack(part) for part in fed[1:5])
            out.append({"header": header, "parent_header": parent, "metadata": metadata, "content": content})
        return out

    def kernel_replies(self, request: dict, status: str = "ok") -> None:
        reply = self.session.msg("execute_reply", {"status": status, "execution_count": 1}, parent=request["header"])
        self.conn.handle_outgoing_message("shell", self.session.serialize(reply))


def msg_types(messages: list[dict]) -> list[str]:
    return [m["header"]["msg_type"] for m in messages]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_execution_under_the_limit_reaches_the_kernel_and_holds_a_lease(protocol):
    h = Harness(protocol)
    request = h.execute("40 + 2")
    (forwarded,) = h.kernel_got("shell")
    assert forwarded["header"]["msg_id"] == request["header"]["msg_id"]
    assert forwarded["content"]["code"] == "40 + 2"
    assert h.ledger.holds(KERNEL_ID, request["header"]["msg_id"])
    assert h.ledger.state(KERNEL_ID, request["header"]["msg_id"]) == "started"
    assert [e["source"] for e in h.admission.active_executions(USER)] == ["notebook"]
    assert h.written == []  # the gateway itself said nothing to the client


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_over_the_limit_the_request_never_reaches_the_kernel_and_the_client_learns_when_to_retry(protocol):
    h = Harness(protocol)
    first = h.execute("1")
    h.kernel_replies(first)
    h.clock.now += 10.0
    second = h.execute("2")
    h.kernel_replies(second)
    h.written.clear()
    h.clock.now += 5.0  # 15 s after the first admission: it leaves the window in 45 s

    refused = h.execute("print('must never run')")
    msg_id = refused["header"]["msg_id"]
    assert [m["header"]["msg_id"] for m in h.kernel_got("shell")] == [first["header"]["msg_id"],
                                                                     second["header"]["msg_id"]]
    assert not h.ledger.holds(KERNEL_ID, msg_id) and h.ledger.state(KERNEL_ID, msg_id) is None
    got = h.client_got()
    assert [(m["channel"], m["header"]["msg_type"]) for m in got] == [
        ("iopub", "status"), ("iopub", "error"), ("iopub", "status"), ("shell", "execute_reply")]
    assert [m["content"].get("execution_state") for m in got[::2]] == ["busy", "idle"]
    assert all(m["parent_header"]["msg_id"] == msg_id for m in got)
    error, reply = got[1], got[3]
    assert error["content"]["ename"] == reply["content"]["ename"] == "RateLimitExceeded"
    assert reply["content"]["status"] == "error" and reply["content"]["execution_count"] == 0
    assert set(error["content"]) == {"ename", "evalue", "traceback"}
    # openapi.json VerdictMetadata: the wait as a number, in both messages
    for m in (error, reply):
        assert m["metadata"]["eda_gateway"] == {"verdict": "RateLimitExceeded", "reason": "per_minute",
                                                "retry_after_seconds": 45.0}
    assert h.admission.usage(USER).executions_in_window == 2  # the refusal was not counted

    # once the first admission has left the window, the next one runs
    h.clock.now += 45.0
    again = h.execute("3")
    assert h.kernel_got("shell")[-1]["header"]["msg_id"] == again["header"]["msg_id"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_msg_id_still_running_is_refused_and_counted_once(protocol):
    h = Harness(protocol)
    request = h.execute("import time; time.sleep(1)")
    copy = h.execute("import time; time.sleep(1)", msg_id=request["header"]["msg_id"])
    assert len(h.kernel_got("shell")) == 1  # the kernel would have run the copy too
    got = h.client_got()
    assert msg_types(got) == ["status", "error", "status", "execute_reply"]
    assert got[3]["content"]["ename"] == "InvalidExecuteRequest"
    assert "already running" in got[3]["content"]["evalue"]
    assert got[3]["metadata"]["eda_gateway"] == {"verdict": "InvalidExecuteRequest"}
    assert all(m["parent_header"]["msg_id"] == copy["header"]["msg_id"] for m in got)
    assert h.admission.usage(USER).executions_in_window == 1
    assert h.ledger.pending_on(KERNEL_ID) == [request["header"]["msg_id"]]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_requests_admission_cannot_count_never_reach_the_kernel(protocol):
    h = Harness(protocol)
    on_control = h.execute("ran_on_control = 1", channel="control")
    h.execute("ran_without_id = 1", msg_id="")
    assert h.kernel_got("shell") == [] and h.kernel_got("control") == []
    replies = [m for m in h.client_got() if m["header"]["msg_type"] == "execute_reply"]
    assert [(m["channel"], m["content"]["ename"]) for m in replies] == [
        ("control", "InvalidExecuteRequest"), ("shell", "InvalidExecuteRequest")]
    assert replies[0]["parent_header"]["msg_id"] == on_control["header"]["msg_id"]
    assert "msg_id" in replies[1]["content"]["evalue"]
    assert h.admission.usage(USER).executions_in_window == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_kernels_execute_reply_ends_the_lease_and_reaches_the_client(protocol):
    h = Harness(protocol)
    request = h.execute("1")
    msg_id = request["header"]["msg_id"]
    h.kernel_replies(request)
    assert not h.ledger.holds(KERNEL_ID, msg_id)
    assert h.ledger.state(KERNEL_ID, msg_id) == REPLIED
    assert h.admission.usage(USER).concurrent_executions == 0
    (reply,) = h.client_got()
    assert reply["header"]["msg_type"] == "execute_reply" and reply["parent_header"]["msg_id"] == msg_id
    assert reply["content"]["status"] == "ok"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_other_messages_pass_without_admission_even_when_the_budget_is_spent(protocol):
    h = Harness(protocol)
    for code in ("1", "2"):
        h.kernel_replies(h.execute(code))
    h.written.clear()
    assert h.admission.usage(USER).remaining == 0
    h.send("kernel_info_request")
    h.send("complete_request", {"code": "pri", "cursor_pos": 3})
    h.send("comm_msg", {"comm_id": "c", "data": {}})
    h.send("interrupt_request", channel="control")
    assert msg_types(h.kernel_got("shell"))[2:] == ["kernel_info_request", "complete_request", "comm_msg"]
    assert msg_types(h.kernel_got("control")) == ["interrupt_request"]
    assert h.written == []  # nothing refused
    usage = h.admission.usage(USER)
    assert (usage.executions_in_window, usage.concurrent_executions) == (2, 0)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_after_a_kill_messages_wait_for_the_new_process_then_go_through_admission(protocol):
    h = Harness(protocol, Limits(max_executions_per_minute=100, max_concurrent_executions=2, window_seconds=60.0))
    doomed = h.execute("x = bytearray(10**10)")
    h.conn._on_verdict(Verdict("MemoryLimitExceeded", "over 512 MiB", KERNEL_ID, None, killed=True))
    assert msg_types(h.client_got())[-1] == "execute_reply"  # the doomed one is answered
    h.written.clear()
    h.conn._hold.max_messages = 2
    info = h.send("kernel_info_request")
    first, second, third = h.execute("1"), h.execute("2"), h.execute("3")
    assert msg_types(h.kernel_got("shell")) == ["execute_request"]  # only the doomed one reached the old process
    assert not h.ledger.holds(KERNEL_ID, first["header"]["msg_id"])  # waiting: no lease yet
    # past max_messages: answered now, never sent
    refused = h.client_got()
    assert {m["parent_header"]["msg_id"] for m in refused} == {second["header"]["msg_id"], third["header"]["msg_id"]}
    assert {m["content"]["ename"] for m in refused if m["header"]["msg_type"] == "execute_reply"} == {"KernelRestarted"}
    h.conn.parent.ready = Future()  # the restart begins ...
    h.conn._hold._check()
    assert len(h.kernel_got("shell")) == 1
    h.conn.parent.ready.set_result(None)  # ... and ends: what waited goes on, in order, admitted
    h.conn._hold._check()
    assert [m["header"]["msg_id"] for m in h.kernel_got("shell")[1:]] == [info["header"]["msg_id"],
                                                                          first["header"]["msg_id"]]
    assert h.ledger.holds(KERNEL_ID, first["header"]["msg_id"])
    assert doomed["header"]["msg_id"] not in [m["parent_header"].get("msg_id") for m in h.client_got()]
