"""Kernel websocket that asks admission before any code reaches the kernel.

Every ``execute_request`` (legacy JSON frames and ``v1.kernel.websocket.jupyter.org``)
is checked with admission. A refused one never reaches the kernel: the
client gets, parented to its request, iopub ``busy`` / ``error`` (``RateLimitExceeded``)
/ ``idle`` and a shell ``execute_reply`` with ``status: "error"``, so the cell ends
cleanly instead of hanging. A request admission could not count is refused the same
way with ``InvalidExecuteRequest``: one without a msg_id, one whose msg_id is still
running on the kernel (the kernel would run every copy), or code sent on the control
channel (ipykernel runs it there too; no Jupyter client sends it).

A connection that keeps drawing refusals is answered late, then closed with close code
4029 and a reason (eda_gateway/refusal_flood.py). Each user holds at most
``max_connections_per_user`` kernel websockets: one more is answered HTTP 429 with a
JSON body before the upgrade, before any ZMQ socket is opened for it.

Leases live in the execution ledger (eda_gateway/ledger.py): this ends them there at
the ``execute_reply`` seen here (the lease keeper also ends them when the kernel goes
idle, restarts, dies or stops). Sandbox verdicts arrive on the verdict bus: a killed
kernel's in-flight executions are ended here with the verdict's error; an interrupted
execution's error and reply are renamed to it. From a kill (or a restart) until the new
process is up, what the client sends waits (eda_gateway/restart_hold.py): the old process
would lose it without an answer.

jupyter_server builds the connection itself, so its collaborators come from one place:
the ``ConnectionServices`` the app puts in the web app's settings (``SETTINGS_KEY``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from jupyter_client.jsonutil import json_default
from jupyter_server._tz import utcnow
from tornado import web
from tornado.ioloop import IOLoop
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)
from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection

from .admission import UNAVAILABLE
from .ledger import KILLED, REPLIED, UNDELIVERED
from .refusal_flood import CLOSE_CODE as FLOOD_CLOSE_CODE
from .restart_hold import RestartHold
from .verdicts import ADMISSION_UNAVAILABLE, INVALID_EXECUTE_REQUEST, KERNEL_RESTARTED, RATE_LIMIT_EXCEEDED, Verdict

V1 = "v1.kernel.websocket.jupyter.org"
TOO_MANY_CONNECTIONS = "TooManyConnections"
KERNEL_GONE = 1001  # websocket close code "going away"
SETTINGS_KEY = "eda_connection_services"


@dataclass(frozen=True)
class ConnectionServices:
    """Everything a kernel websocket connection uses, and nothing else of the app."""

    admission: object  # admit(user, kernel_id, msg_id, source) -> Decision
    ledger: object  # holds(kernel_id, msg_id), finish(kernel_id, msg_id, reason)
    connections: object  # ConnectionLimiter: acquire / release
    refusal_log: object  # RefusalLog: refused(user, *log_line)
    refusal_flood: Callable[[], object]  # a new RefusalFlood per connection
    verdicts: object  # VerdictBus: subscribe / recent
    sandbox: object  # refuses_allocations, allocation_refused(kernel_id, msg_id, content)
    kernel_listeners: list  # EDAKernelManager.listeners


def ending_messages(
    session, parent_header: dict, ename: str, evalue: str, reply_channel: str = "shell",
    details: dict | None = None,
) -> list[tuple[str, dict]]:
    """(channel, message) that end an execution with an error, as a kernel would:
    iopub busy, iopub error, iopub idle, execute_reply(status error) on the request's channel.

    Everything follows the messaging spec: the reply's ``execution_count`` is an integer
    (0: nothing ran, so the kernel's counter did not move), and the error carries only
    ``ename``/``evalue``/``traceback`` (nbformat keeps no other key in a saved output).
    What a client can act on (e.g. ``retry_after_seconds``) travels as numbers in both
    messages' metadata under ``eda_gateway``, beside the verdict's name.
    """
    traceback = [f"{ename}: {evalue}"]
    error = {"ename": ename, "evalue": evalue, "traceback": traceback}
    metadata = {"eda_gateway": {"verdict": ename, **(details or {})}}
    return [
        ("iopub", session.msg("status", {"execution_state": "busy"}, parent=parent_header)),
        ("iopub", session.msg("error", dict(error), parent=parent_header, metadata=metadata)),
        ("iopub", session.msg("status", {"execution_state": "idle"}, parent=parent_header)),
        (
            reply_channel,
            session.msg(
                "execute_reply",
                {"status": "error", "execution_count": 0, **error},
                parent=parent_header,
                metadata=metadata,
            ),
        ),
    ]


def _check_part_count(frame, width: int, byteorder: str, minimum: int) -> None:
    """A binary frame starts with its part count; jupyter_server's parsers trust it and
    build a list (or a struct format) that long: 2**64 from one frame hangs the server."""
    if not isinstance(frame, bytes) or len(frame) < width:
        raise TypeError("a binary frame was expected")
    count = int.from_bytes(frame[:width], byteorder, signed=width == 4)
    if not minimum <= count <= len(frame) // width:
        raise ValueError(f"a frame cannot hold {count} parts")


def renamed(content: dict, verdict: Verdict) -> dict:
    """An error / execute_reply content renamed to the sandbox's verdict."""
    return {
        **content,
        "status": "error",
        "ename": verdict.ename,
        "evalue": verdict.evalue,
        "traceback": [f"{verdict.ename}: {verdict.evalue}"],
    }


class EDAKernelWebsocketConnection(ZMQChannelsWebsocketConnection):
    """ZMQ channels connection with admission control and sandbox verdicts."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._inflight: dict[str, dict] = {}  # msg_id -> request header, forwarded and unanswered
        self._ended: set[str] = set()  # msg_ids we ended ourselves: drop late kernel replies
        self._rewrites: dict[str, Verdict] = {}  # msg_id -> verdict of an interrupted execution
        self._unsubscribe = None
        self._flood = None  # RefusalFlood, from the first refusal on
        self._flooded = False
        self._hold = RestartHold(
            ready=lambda: self.kernel_manager.ready,
            release=self._release_held,
            refuse=self._refuse_held,
            clock=time.monotonic,
            call_later=lambda delay, callback: IOLoop.current().call_later(delay, callback),
        )

    @property
    def services(self) -> ConnectionServices:
        return self.websocket_handler.settings[SETTINGS_KEY]

    @property
    def username(self) -> str:
        return self.websocket_handler.current_user.username

    # --- connection life -------------------------------------------------------

    async def prepare(self):
        # Counted before jupyter_server opens any ZMQ socket for us (its prepare asks
        # for kernel_info on one); refused here, the answer is plain HTTP, before the upgrade.
        refusal = self.services.connections.acquire(self.username, self, self._handler_alive)
        if refusal is not None:
            self.services.refusal_log.refused(self.username, "eda_gateway: refused a kernel connection of %s: %s",
                                             self.username, refusal)
            handler = self.websocket_handler
            handler.set_status(429)
            handler.set_header("Content-Type", "application/json")
            handler.set_header("Retry-After", "5")
            raise web.Finish(json.dumps({"error": TOO_MANY_CONNECTIONS, "message": refusal}))
        try:
            await self._prepare()
        except BaseException:
            self.services.connections.release(self)  # no websocket: no on_close will come
            raise

    def _handler_alive(self) -> bool:
        """Still opening, or open: what holds (or will hold) ZMQ sockets."""
        handler = self.websocket_handler
        return not handler._finished or handler.ws_connection is not None

    async def _prepare(self):
        # Opening can wait long for the kernel's first kernel_info (a kernel still
        # starting): a client on its way in is activity, not an idle kernel to cull.
        self.kernel_manager.last_activity = utcnow()
        try:
            return await super().prepare()
        finally:
            self.kernel_manager.last_activity = utcnow()

    def connect(self):
        # Without this, Nagle holds our small frames: ~48 ms -> ~10 ms per trivial execute.
        self.websocket_handler.set_nodelay(True)
        connected = super().connect()
        if connected is not None and self._unsubscribe is None:
            self._unsubscribe = self.services.verdicts.subscribe(self.kernel_id, self._on_verdict)
            self.services.kernel_listeners.append(self._on_kernel_event)
        return connected

    def _on_kernel_event(self, event: str, kernel_id: str, owner: str) -> None:
        if kernel_id != self.kernel_id:
            return
        if event in ("restarting", "died"):  # the old process is going: nothing more for it
            self._hold.begin()
        # jupyter_server leaves a stopped kernel's websockets open: they would hold their
        # place (and their ZMQ sockets) until the client noticed.
        if event == "stopped":
            self.services.connections.release(self)
            if self.websocket_handler.ws_connection is not None:
                self.websocket_handler.close(KERNEL_GONE, "the kernel was shut down")

    def disconnect(self):
        # however the connection ends (client gone, kernel gone, error); safe twice
        self.services.connections.release(self)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
            try:
                self.services.kernel_listeners.remove(self._on_kernel_event)
            except ValueError:
                pass
        # Unanswered requests keep their leases: the kernel is still running them and
        # the lease keeper ends each when the kernel goes idle for it.
        self._inflight.clear()
        self._ended.clear()
        self._rewrites.clear()
        self._hold.drop()
        return super().disconnect()

    # --- client -> kernel --------------------------------------------------------

    def handle_incoming_message(self, incoming_msg) -> None:
        if self._flooded:  # closing: nothing more from this client
            return
        if self._hold.holding:  # the kernel is restarting: passed on once it is up
            self._hold.hold(incoming_msg)
            return
        if not self.channels:
            return super().handle_incoming_message(incoming_msg)
        try:
            channel, header, msg = self._parse(incoming_msg)
        except Exception as e:  # whatever a client sends: drop it, keep the socket
            # a line per message would let one client grow the log without bound
            self.services.refusal_log.refused(self.username, "eda_gateway: dropped a malformed kernel message "
                                             "from %s (%s)", self.username, type(e).__name__)
            return
        if channel not in self.channels:
            self.services.refusal_log.refused(self.username, "No such channel: %r", str(channel)[:64])
            return
        if header is not None:
            allowed_types = self.multi_kernel_manager.allowed_message_types
            if allowed_types and header.get("msg_type") not in allowed_types:
                self.services.refusal_log.refused(self.username, "Received message of type %r, which is not allowed.",
                                                 str(header.get("msg_type"))[:64])
                return
            if header.get("msg_type") == "execute_request":
                if channel != "shell":
                    self._refuse_invalid(header, "code runs only from the shell channel", channel)
                    return
                if not self._admit(header):
                    return
        stream = self.channels[channel]
        try:
            if self.subprotocol == V1:
                self.session.send_raw(stream, msg)
            else:
                self.session.send(stream, msg)
        except Exception as e:  # e.g. content that is not JSON: nothing reached the kernel
            self.log.warning("eda_gateway: could not pass a message of %s to the kernel (%s)",
                             self.username, type(e).__name__)
            if header is not None and header.get("msg_type") == "execute_request":
                msg_id = header.get("msg_id")  # admitted above, so a string
                self.services.ledger.finish(self.kernel_id, msg_id, UNDELIVERED)
                self._inflight.pop(msg_id, None)

    def _release_held(self, messages: list) -> None:
        for message in messages:  # in order, as if they arrived now (admission included)
            self.handle_incoming_message(message)

    def _refuse_held(self, message) -> None:
        """One message too many while the kernel restarts: an execution is answered."""
        try:
            channel, header, _ = self._parse(message)
        except Exception:
            return
        if header is not None and header.get("msg_type") == "execute_request":
            why = (f"the kernel is restarting and enough already waits for it (at most {self._hold.max_messages} "
                   f"messages, {self._hold.max_bytes >> 20} MiB): run this again once it is back")
            self._answer_refusal(ending_messages(self.session, header, KERNEL_RESTARTED, why, channel),
                                 "eda_gateway: refused an execute_request of %s on kernel %s: %s",
                                 self.username, self.kernel_id, why)

    def _parse(self, incoming_msg) -> tuple[str, dict | None, object]:
        """(channel, header or None, what to forward); raises on a malformed message."""
        if self.subprotocol == V1:
            _check_part_count(incoming_msg, 8, "little", minimum=6)  # channel, 4 parts, end
            channel, msg_list = deserialize_msg_from_ws_v1(incoming_msg)
            header = None
            if channel in ("shell", "control"):  # where a kernel takes execute_request
                header = self.session.unpack(msg_list[0])
            forward = msg_list
        else:
            if isinstance(incoming_msg, bytes):
                _check_part_count(incoming_msg, 4, "big", minimum=1)
                msg = deserialize_binary_message(incoming_msg)
            else:
                msg = json.loads(incoming_msg)
            if not isinstance(msg, dict):
                raise TypeError("a message is a JSON object")
            channel = msg.pop("channel", None) or "shell"
            header = msg.get("header")
            if header is None:
                raise KeyError("header")
            for part in ("parent_header", "metadata", "content"):
                msg.setdefault(part, {})  # Session.send needs them all
            forward = msg
        if header is not None and not isinstance(header, dict):
            raise TypeError("a header is a JSON object")
        return channel, header, forward

    def _admit(self, header: dict) -> bool:
        msg_id = header.get("msg_id")
        if not isinstance(msg_id, str) or not msg_id:
            self._refuse_invalid(header, "an execute_request needs a msg_id (a non-empty string)")
            return False
        if self.services.ledger.holds(self.kernel_id, msg_id):
            # admission counts a msg_id once, but the kernel would run every copy
            self._refuse_invalid(header, f"msg_id {msg_id[:64]!r} is already running on this kernel")
            return False
        decision = self.services.admission.admit(self.username, self.kernel_id, msg_id, "notebook")
        if decision.allowed:
            self._inflight[msg_id] = header
            return True
        ename = ADMISSION_UNAVAILABLE if decision.reason == UNAVAILABLE else RATE_LIMIT_EXCEEDED
        self._answer_refusal(
            ending_messages(
                self.session, header, ename, decision.message,
                details={"reason": decision.reason, "retry_after_seconds": round(decision.retry_after_seconds, 3)},
            ),
            "eda_gateway: refused execution of %s on kernel %s (%s, retry in %.1f s)",
            self.username, self.kernel_id, decision.reason, decision.retry_after_seconds,
        )
        return False

    def _refuse_invalid(self, header: dict, why: str, channel: str = "shell") -> None:
        self._answer_refusal(
            ending_messages(self.session, header, INVALID_EXECUTE_REQUEST, why, channel),
            "eda_gateway: refused an execute_request of %s on kernel %s: %s", self.username, self.kernel_id, why,
        )

    def _answer_refusal(self, messages: list[tuple[str, dict]], *log_line) -> None:
        """Answer now, later, or close a connection that keeps drawing refusals
        (eda_gateway/refusal_flood.py); log lines are rate-limited (eda_gateway/refusal_log.py)."""
        self.services.refusal_log.refused(self.username, *log_line)
        if self._flood is None:
            self._flood = self.services.refusal_flood()
        delay = self._flood.refused()
        if delay is None:
            self._flooded = True
            self.log.warning("eda_gateway: closing a kernel connection of %s: %s", self.username,
                             self._flood.reason())
            self.websocket_handler.close(FLOOD_CLOSE_CODE, self._flood.reason())
        elif delay:
            # the messages are bounded: past close_after the connection is closed
            IOLoop.current().call_later(delay, self._write_all, messages)
        else:
            self._write_all(messages)

    # --- kernel -> client ----------------------------------------------------------

    def handle_outgoing_message(self, stream, outgoing_msg) -> None:
        if isinstance(stream, str):
            stream = self.channels[stream]
        channel = getattr(stream, "channel", None)
        if channel == "shell" or (channel == "iopub" and self._verdict_possible()):
            _, fed = self.session.feed_identities(outgoing_msg)
            parts = fed[1:]
            header = self.session.unpack(parts[0])
            msg_type = header.get("msg_type")
            if msg_type in ("execute_reply", "error"):
                parent_id = self.session.unpack(parts[1]).get("msg_id")
                if parent_id in self._ended:
                    if msg_type == "execute_reply":
                        self._ended.discard(parent_id)
                    return  # we already ended this execution for the client
                if msg_type == "execute_reply":
                    self._inflight.pop(parent_id, None)
                    self.services.ledger.finish(self.kernel_id, parent_id, REPLIED)
                if self.services.sandbox.refuses_allocations:
                    # publishes a verdict (and so a rewrite) if the backstop refused memory
                    self.services.sandbox.allocation_refused(self.kernel_id, parent_id, self.session.unpack(parts[3]))
                verdict = self._rewrite_for(parent_id, msg_type)
                if verdict is not None:
                    msg = self.session.deserialize(fed)
                    msg["content"] = renamed(msg["content"], verdict)
                    msg["metadata"] = {**msg.get("metadata", {}),
                                       "eda_gateway": {"verdict": verdict.ename, **verdict.details}}
                    self._write_all([(channel, msg)])
                    return
        super().handle_outgoing_message(stream, outgoing_msg)

    # --- sandbox verdicts ----------------------------------------------------------

    def _verdict_possible(self) -> bool:
        return (
            bool(self._rewrites)
            or self.services.sandbox.refuses_allocations
            or self.services.verdicts.recent(self.kernel_id) is not None
        )

    def _rewrite_for(self, msg_id: str | None, msg_type: str) -> Verdict | None:
        if not msg_id:
            return None
        verdict = self._rewrites.get(msg_id)
        if verdict is None:
            recent = self.services.verdicts.recent(self.kernel_id, msg_id)
            if recent is not None and not recent.killed and recent.msg_id == msg_id:
                verdict = recent
        if verdict is not None and msg_type == "execute_reply":
            self._rewrites.pop(msg_id, None)
        return verdict

    def _on_verdict(self, verdict: Verdict) -> None:
        if not verdict.killed:
            if verdict.msg_id:
                self._rewrites[verdict.msg_id] = verdict
            return
        # The kernel was killed: no reply will come for anything it was running.
        for msg_id, header in list(self._inflight.items()):
            self._ended.add(msg_id)
            self.services.ledger.finish(self.kernel_id, msg_id, KILLED)
            self._write_all(ending_messages(self.session, header, verdict.ename, verdict.evalue,
                                            details=verdict.details))
        self._inflight.clear()
        self._hold.begin()  # the kernel is killed and restarted: what comes next waits for it

    # --- writing -------------------------------------------------------------------

    def _write_all(self, messages: list[tuple[str, dict]]) -> None:
        if self.websocket_handler.ws_connection is None:
            return
        for channel, msg in messages:
            if self.subprotocol == V1:
                self.write_message(serialize_msg_to_ws_v1(msg, channel, self.session.pack), binary=True)
            else:
                msg["channel"] = channel
                self.write_message(json.dumps(msg, default=json_default))
