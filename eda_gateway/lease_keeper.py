"""Ends leases in the execution ledger from the kernel's side, so none outlives its execution.

The kernel websocket ends a lease at the ``execute_reply`` it forwards, but a reply
can be lost to the lease: the client disconnects, or reconnects with a new session
id (jupyter_server then drops the old session's buffered replies). The kernel
itself always says when it is done: iopub ``status: idle`` parented to the request.
One iopub subscription per kernel watches for that (headers only; contents are
unpacked only for status messages).

Also: a kernel that restarts (API or the auto-restarter after it died), is killed by
the sandbox, or is shut down ends all of its leases.
"""

from __future__ import annotations

import asyncio
import logging

from typing import Protocol

from .ledger import IDLE, KERNEL_DIED, KERNEL_RESTARTED, KERNEL_STOPPED, KILLED
from .verdicts import Verdict

log = logging.getLogger(__name__)

# The auto-restarter fires its callback before the new process exists: watch again
# after this delay (the SUB socket also reconnects by itself when ports are kept).
_REWATCH_DELAY = 2.0


class Leases(Protocol):
    """What the lease keeper needs of the execution ledger (eda_gateway/ledger.py)."""

    def holds(self, kernel_id: str, msg_id: str) -> bool: ...

    def finish(self, kernel_id: str, msg_id: str, reason: str) -> bool: ...

    def end_kernel(self, kernel_id: str, reason: str) -> int: ...


class LeaseKeeper:
    def __init__(self, ledger: Leases, kernel_manager) -> None:
        self.ledger = ledger
        self.kernel_manager = kernel_manager
        self._streams: dict[str, object] = {}
        self._callbacks: dict[str, tuple] = {}

    # --- kernel_manager.listeners -------------------------------------------

    def on_kernel_event(self, event: str, kernel_id: str, owner: str) -> None:
        if event == "started":
            self._watch(kernel_id)
            self._add_restart_callbacks(kernel_id)
        elif event == "restarted":
            self.ledger.end_kernel(kernel_id, KERNEL_RESTARTED)
            self._watch(kernel_id)
        elif event == "stopped":
            self.ledger.end_kernel(kernel_id, KERNEL_STOPPED)
            self._unwatch(kernel_id)
            self._callbacks.pop(kernel_id, None)

    # --- VerdictBus listener ----------------------------------------------------

    def on_verdict(self, verdict: Verdict) -> None:
        if verdict.killed:
            self.ledger.end_kernel(verdict.kernel_id, KILLED)

    # --- internals ----------------------------------------------------------------

    def _add_restart_callbacks(self, kernel_id: str) -> None:
        def restarting() -> None:
            log.info("eda_gateway: kernel %s died and is restarting: its leases end", kernel_id)
            self.ledger.end_kernel(kernel_id, KERNEL_DIED)
            asyncio.get_event_loop().call_later(_REWATCH_DELAY, self._rewatch_if_alive, kernel_id)

        def dead() -> None:
            self.ledger.end_kernel(kernel_id, KERNEL_DIED)

        try:
            self.kernel_manager.add_restart_callback(kernel_id, restarting, "restart")
            self.kernel_manager.add_restart_callback(kernel_id, dead, "dead")
            self._callbacks[kernel_id] = (restarting, dead)
        except Exception:
            log.exception("eda_gateway: cannot watch restarts of kernel %s", kernel_id)

    def _rewatch_if_alive(self, kernel_id: str) -> None:
        if kernel_id in self.kernel_manager:
            self._watch(kernel_id)

    def _watch(self, kernel_id: str) -> None:
        self._unwatch(kernel_id)
        try:
            stream = self.kernel_manager.connect_iopub(kernel_id)
        except Exception:
            log.exception("eda_gateway: cannot watch iopub of kernel %s", kernel_id)
            return
        session = self.kernel_manager.get_kernel(kernel_id).session
        ledger = self.ledger

        def on_iopub(msg_list) -> None:
            try:
                _, parts = session.feed_identities(msg_list)
                # parts: signature, header, parent_header, metadata, content, ...
                header = session.unpack(parts[1])
                if header.get("msg_type") != "status":
                    return
                parent = session.unpack(parts[2])
                msg_id = parent.get("msg_id")
                if not msg_id or not ledger.holds(kernel_id, msg_id):
                    return
                if session.unpack(parts[4]).get("execution_state") == "idle":
                    ledger.finish(kernel_id, msg_id, IDLE)
            except Exception:
                log.exception("eda_gateway: bad iopub message from kernel %s", kernel_id)

        stream.on_recv(on_iopub)
        self._streams[kernel_id] = stream

    def _unwatch(self, kernel_id: str) -> None:
        stream = self._streams.pop(kernel_id, None)
        if stream is not None and not stream.closed():
            stream.on_recv(None)
            stream.close()

    def close(self) -> None:
        for kernel_id in list(self._streams):
            self._unwatch(kernel_id)
