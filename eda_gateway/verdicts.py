"""Named verdicts: how the sandbox tells every client of a kernel why an execution ended.

The sandbox publishes a ``Verdict`` when a limit ends an execution. Whoever
talks to the user about that kernel (the kernel websocket connection, the REST
execution API) subscribes per kernel and turns it into the error the user sees;
global listeners (admission, telemetry, history) observe every verdict.

- ``killed=False``: the kernel was interrupted and will still answer: rewrite
  the error/execute_reply of ``msg_id`` to ``ename``/``evalue``.
- ``killed=True``: the kernel was killed, no reply will come: end every
  in-flight execution on that kernel now, with this verdict.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

EXECUTION_TIMEOUT = "ExecutionTimeout"
# a kernel kept a CPU busy past max_execution_time with no admitted execution (msg_id None)
BACKGROUND_EXECUTION_TIMEOUT = "BackgroundExecutionTimeout"
MEMORY_LIMIT_EXCEEDED = "MemoryLimitExceeded"
RATE_LIMIT_EXCEEDED = "RateLimitExceeded"
# the shared admission store (EDARateLimiter.store_url) is out of reach: nothing can be counted
ADMISSION_UNAVAILABLE = "AdmissionUnavailable"
# a user's disk volume is full (eda_gateway/quotas.py): not about one execution, so kernel_id
# is "" and ``user`` says whose
DISK_QUOTA_EXCEEDED = "DiskQuotaExceeded"
# a request the gateway cannot count (no msg_id, a msg_id already running, code on control)
INVALID_EXECUTE_REQUEST = "InvalidExecuteRequest"
# not limits: why executions still waiting for an answer ended (eda_gateway/endings.py)
KERNEL_DIED = "KernelDied"
KERNEL_RESTARTED = "KernelRestarted"
KERNEL_SHUT_DOWN = "KernelShutDown"
ENDINGS = frozenset({KERNEL_DIED, KERNEL_RESTARTED, KERNEL_SHUT_DOWN})


@dataclass(frozen=True)
class Verdict:
    ename: str
    evalue: str
    kernel_id: str
    msg_id: str | None = None
    killed: bool = False
    details: dict = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    user: str | None = None  # for verdicts on no kernel; else the kernel's owner


VerdictCallback = Callable[[Verdict], None]


class VerdictBus:
    """Per-kernel publish/subscribe of verdicts, plus listeners for all of them."""

    # How long a published verdict stays readable with ``recent()``: a reply
    # racing the publication can still be rewritten.
    recent_seconds = 60.0

    def __init__(self) -> None:
        self._subscribers: dict[str, list[VerdictCallback]] = {}
        self._listeners: list[VerdictCallback] = []
        self._recent: dict[str, Verdict] = {}

    def subscribe(self, kernel_id: str, callback: VerdictCallback) -> Callable[[], None]:
        """Call ``callback`` for verdicts on ``kernel_id``; returns the unsubscribe function."""
        self._subscribers.setdefault(kernel_id, []).append(callback)

        def unsubscribe() -> None:
            callbacks = self._subscribers.get(kernel_id, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                self._subscribers.pop(kernel_id, None)

        return unsubscribe

    def add_listener(self, callback: VerdictCallback) -> None:
        """Call ``callback`` for every verdict on every kernel."""
        self._listeners.append(callback)

    def publish(self, verdict: Verdict) -> None:
        self._recent[verdict.kernel_id] = verdict
        for callback in [*self._listeners, *self._subscribers.get(verdict.kernel_id, [])]:
            try:
                callback(verdict)
            except Exception:
                log.exception("eda_gateway: verdict subscriber failed")

    def recent(self, kernel_id: str, msg_id: str | None = None) -> Verdict | None:
        """The verdict published for this kernel (and execution) in the last minute, if any."""
        verdict = self._recent.get(kernel_id)
        if verdict is None or time.time() - verdict.at > self.recent_seconds:
            self._recent.pop(kernel_id, None)
            return None
        if msg_id is not None and verdict.msg_id not in (None, msg_id):
            return None
        return verdict

    def forget(self, kernel_id: str) -> None:
        """The kernel is gone."""
        self._recent.pop(kernel_id, None)
        self._subscribers.pop(kernel_id, None)
