"""The execution ledger: per kernel, the admitted executions in order, and the head's clock.

It is the only place an execution's lease begins (``begin``, called by admission once
it said yes) or ends (``finish``, ``end_kernel``, or the safety expiry). Everyone else
reads it: the watchdog times the head of each queue, the websocket and the REST runner
end what they saw answered, the lease keeper ends what the kernel's side says is over.

A kernel runs its executions in order, so the head of a kernel's queue could start
when it was admitted or when the one before it ended, whichever is later. The head's
clock stands still while the server itself (re)starts the kernel (``hold_head_clock``,
from the watchdog, which knows launches from the provisioner; never from the kernel's
iopub ``status``, which the kernel can forge). A lease nobody ended is dropped
``expiry_budget(user)`` seconds after its execution could start.

Every change is a typed, frozen event on one ``ExecutionBus``. Enforcement subscribers
(a limit depends on them) fail closed: an exception in one stops the kernel concerned.
Observers (logs, metrics, counts) have their errors logged and ignored.

Synchronous, never awaits: on the single event loop a check and its record are one step.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, Union

log = logging.getLogger(__name__)

# Why an execution ended.
REPLIED = "replied"  # its execute_reply reached us
IDLE = "idle"  # the kernel went idle for it (the reply was lost to the lease)
KERNEL_RESTARTED = "kernel_restarted"
KERNEL_STOPPED = "kernel_stopped"
KERNEL_DIED = "kernel_died"
KILLED = "killed"  # a verdict killed the kernel
EXPIRED = "expired"  # nobody ended it within its safety budget
UNDELIVERED = "undelivered"  # it never reached the kernel
ABANDONED = "abandoned"  # the REST runner stopped waiting for it (deadline, error)
END_REASONS = frozenset({REPLIED, IDLE, KERNEL_RESTARTED, KERNEL_STOPPED, KERNEL_DIED, KILLED, EXPIRED,
                         UNDELIVERED, ABANDONED})

ADMITTED = "admitted"  # waiting behind another execution on its kernel
STARTED = "started"  # the head of its kernel's queue: it may be running

# Endings remembered after the fact (msg_ids are unique; old ones are of no use).
RECENT_ENDINGS = 4096


# --- events ----------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionEvent:
    user: str
    kernel_id: str
    msg_id: str
    source: str  # "notebook" | "api"
    at: float  # epoch seconds


@dataclass(frozen=True)
class ExecutionAdmitted(ExecutionEvent):
    """Admission said yes: the execution holds a lease."""


@dataclass(frozen=True)
class ExecutionStarted(ExecutionEvent):
    """The execution heads its kernel's queue: its time limit runs from now."""


@dataclass(frozen=True)
class ExecutionFinished(ExecutionEvent):
    """The lease ended; ``reason`` is one of ``END_REASONS``."""

    reason: str


@dataclass(frozen=True)
class ExecutionRefused(ExecutionEvent):
    """Admission said no; ``reason`` is admission's ("per_minute", "concurrent")."""

    reason: str


Event = Union[ExecutionAdmitted, ExecutionStarted, ExecutionFinished, ExecutionRefused]
Subscriber = Callable[[ExecutionEvent], None]


class ExecutionBus:
    """One bus for execution events, with two kinds of subscribers.

    ``stop_kernel(kernel_id)`` is called when an enforcement subscriber fails on an
    event of that kernel (it may return an awaitable: it is scheduled).
    """

    def __init__(self, stop_kernel: Callable[[str], object] | None = None, logger: logging.Logger = log) -> None:
        self._stop_kernel = stop_kernel
        self._log = logger
        self._enforcers: list[Subscriber] = []
        self._observers: list[Subscriber] = []
        self._stopping: set[asyncio.Future] = set()  # keeps scheduled stops alive

    def enforce(self, subscriber: Subscriber) -> None:
        """A subscriber a limit depends on: if it fails, the kernel is stopped."""
        if subscriber not in self._enforcers:
            self._enforcers.append(subscriber)

    def observe(self, subscriber: Subscriber) -> None:
        """A subscriber that only watches: its errors are logged."""
        if subscriber not in self._observers:
            self._observers.append(subscriber)

    @property
    def enforcing(self) -> bool:
        return bool(self._enforcers)

    @property
    def heard(self) -> bool:
        """Anyone subscribed: events nobody hears are not built."""
        return bool(self._enforcers or self._observers)

    def publish(self, event: ExecutionEvent) -> None:
        for subscriber in list(self._enforcers):
            try:
                subscriber(event)
            except Exception:
                self._log.exception("eda_gateway: a limit failed on %s of %s on kernel %s: stopping the kernel",
                                    type(event).__name__, event.msg_id, event.kernel_id)
                self.stop_unlimited(event.kernel_id)
        for subscriber in list(self._observers):
            try:
                subscriber(event)
            except Exception:
                self._log.exception("eda_gateway: an observer failed on %s", type(event).__name__)

    def stop_unlimited(self, kernel_id: str) -> None:
        """Fail closed: a limit could not be applied to this kernel, so it stops."""
        if self._stop_kernel is None:
            self._log.critical("eda_gateway: nothing can stop kernel %s: its limits may not hold", kernel_id)
            return
        try:
            result = self._stop_kernel(kernel_id)
            if inspect.isawaitable(result):
                future = asyncio.ensure_future(result)
                self._stopping.add(future)
                future.add_done_callback(self._stopped)
        except Exception:
            self._log.critical("eda_gateway: stopping kernel %s failed: its limits may not hold", kernel_id,
                               exc_info=True)

    def _stopped(self, future: asyncio.Future) -> None:
        self._stopping.discard(future)
        if not future.cancelled() and future.exception() is not None:
            self._log.critical("eda_gateway: stopping a kernel failed: its limits may not hold",
                               exc_info=future.exception())


# --- the ledger ----------------------------------------------------------------------


class LeaseStore(Protocol):
    """Where admission's concurrency rule holds a user's busy kernels (eda_gateway/store.py)."""

    def release(self, user: str, kernel_id: str, now: float) -> None:
        """The kernel holds no admitted execution of ``user`` any more."""


@dataclass
class Execution:
    msg_id: str
    user: str
    source: str
    started_at: float  # epoch of the admission, for people
    admitted: float  # monotonic


@dataclass(frozen=True)
class Head:
    """The execution heading a kernel's queue, and since when (monotonic) it could run."""

    msg_id: str
    user: str
    since: float


@dataclass
class _Queue:
    users: set = field(default_factory=set)  # everyone holding a lease here (admins may run too)
    # insertion order == the kernel's execution order
    executions: OrderedDict = field(default_factory=OrderedDict)
    head_since: float = 0.0  # monotonic time the current head could start


class ExecutionLedger:
    def __init__(
        self,
        bus: ExecutionBus,
        store: LeaseStore,
        expiry_budget: Callable[[str], float],
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.bus = bus
        self._store = store
        self._expiry_budget = expiry_budget
        self._clock = clock
        self._wall = wall_clock
        self._kernels: dict[str, _Queue] = {}
        self._user_kernels: dict[str, set[str]] = {}  # kernels with leases, per user
        self._endings: OrderedDict[tuple[str, str], str] = OrderedDict()  # (kernel, msg_id) -> reason

    # --- beginning -------------------------------------------------------------

    def begin(self, user: str, kernel_id: str, msg_id: str, source: str) -> None:
        """Admission said yes (and holds the kernel busy in its store): the lease begins."""
        now = self._clock()
        queue = self._kernels.get(kernel_id)
        if queue is None:
            queue = self._kernels[kernel_id] = _Queue(head_since=now)
        elif msg_id in queue.executions:
            return
        elif not queue.executions:
            queue.head_since = now
        queue.users.add(user)
        execution = Execution(msg_id, user, source, self._wall(), now)
        queue.executions[msg_id] = execution
        self._user_kernels.setdefault(user, set()).add(kernel_id)
        self._publish(ExecutionAdmitted, kernel_id, execution)
        if len(queue.executions) == 1:
            self._publish(ExecutionStarted, kernel_id, execution)

    def refused(self, user: str, kernel_id: str, msg_id: str, source: str, reason: str) -> None:
        """Admission said no: no lease, but subscribers hear of it."""
        if self.bus.heard:
            self.bus.publish(ExecutionRefused(user, kernel_id, msg_id, source, self._wall(), reason))

    # --- ending ------------------------------------------------------------------

    def finish(self, kernel_id: str, msg_id: str, reason: str) -> bool:
        """End one execution's lease; False if it held none (already ended: a no-op)."""
        queue = self._kernels.get(kernel_id)
        if queue is None or msg_id not in queue.executions:
            return False
        was_head = next(iter(queue.executions)) == msg_id
        execution = queue.executions.pop(msg_id)
        if was_head:
            queue.head_since = self._clock()  # the next queued cell starts now
        self._ended(kernel_id, execution, reason, queue, was_head)
        return True

    def end_kernel(self, kernel_id: str, reason: str) -> int:
        """The kernel died, restarted, stopped or was killed: end all of its leases."""
        queue = self._kernels.get(kernel_id)
        if queue is None:
            return 0
        ended = list(queue.executions.values())
        queue.executions.clear()
        self._drop_kernel(kernel_id, queue)
        for execution in ended:
            self._remember(kernel_id, execution.msg_id, reason)
            self._publish(ExecutionFinished, kernel_id, execution, reason)
        return len(ended)

    def expire(self, user: str | None = None) -> None:
        """Drop leases older than their safety budget (their end went unseen); all users' if None."""
        now = self._clock()
        users = [user] if user is not None else list(self._user_kernels)
        for name in users:
            kernel_ids = self._user_kernels.get(name)
            if not kernel_ids:
                continue
            budget = self._expiry_budget(name)
            for kid in list(kernel_ids):
                queue = self._kernels.get(kid)
                if queue is None:
                    kernel_ids.discard(kid)
                    continue
                while queue.executions and now - queue.head_since > budget:
                    msg_id, execution = next(iter(queue.executions.items()))
                    log.warning("eda_gateway: lease of %s on kernel %s expired after %.0f s without an end",
                                msg_id, kid, budget)
                    del queue.executions[msg_id]
                    queue.head_since += budget
                    self._ended(kid, execution, EXPIRED, queue, True)

    # --- the head's clock -----------------------------------------------------------

    def hold_head_clock(self, kernel_id: str) -> None:
        """The server itself is (re)starting the kernel: that does not eat the head's time
        (called on every watchdog tick of that period; the clock runs again after it)."""
        queue = self._kernels.get(kernel_id)
        if queue is not None and queue.executions:
            queue.head_since = self._clock()

    # --- questions -----------------------------------------------------------------

    def head(self, kernel_id: str) -> Head | None:
        queue = self._kernels.get(kernel_id)
        if queue is None or not queue.executions:
            return None
        execution = next(iter(queue.executions.values()))
        return Head(execution.msg_id, execution.user, queue.head_since)

    def kernels(self) -> list[str]:
        """Kernels holding at least one lease."""
        return list(self._kernels)

    def holds(self, kernel_id: str, msg_id: str) -> bool:
        queue = self._kernels.get(kernel_id)
        return queue is not None and msg_id in queue.executions

    def state(self, kernel_id: str, msg_id: str) -> str | None:
        """``admitted`` (queued), ``started`` (heads the queue), the end reason of a recent
        ending, or None for an execution the ledger does not know."""
        queue = self._kernels.get(kernel_id)
        if queue is not None and msg_id in queue.executions:
            return STARTED if next(iter(queue.executions)) == msg_id else ADMITTED
        return self._endings.get((kernel_id, msg_id))

    def pending_on(self, kernel_id: str) -> list[str]:
        """msg_ids admitted on this kernel and not finished yet, oldest first."""
        queue = self._kernels.get(kernel_id)
        return list(queue.executions) if queue is not None else []

    def head_starts(self, user: str) -> list[float]:
        """When the head of each of ``user``'s busy kernels could start (monotonic)."""
        return [self._kernels[kid].head_since for kid in self._user_kernels.get(user, ()) if kid in self._kernels]

    def active_executions(self, user: str | None = None) -> list[dict]:
        self.expire(user)
        kernel_ids = self._user_kernels.get(user, ()) if user is not None else self._kernels
        return [
            {"kernel_id": kid, "msg_id": e.msg_id, "user": e.user, "source": e.source, "started_at": e.started_at}
            for kid in list(kernel_ids)
            for e in self._kernels[kid].executions.values()
        ]

    # --- internals -------------------------------------------------------------------

    def _ended(self, kernel_id: str, execution: Execution, reason: str, queue: _Queue, was_head: bool) -> None:
        if not queue.executions:
            self._drop_kernel(kernel_id, queue)
        self._remember(kernel_id, execution.msg_id, reason)
        self._publish(ExecutionFinished, kernel_id, execution, reason)
        if was_head and queue.executions and self._kernels.get(kernel_id) is queue:
            self._publish(ExecutionStarted, kernel_id, next(iter(queue.executions.values())))

    def _remember(self, kernel_id: str, msg_id: str, reason: str) -> None:
        self._endings[(kernel_id, msg_id)] = reason
        if len(self._endings) > RECENT_ENDINGS:
            self._endings.popitem(last=False)

    def _drop_kernel(self, kernel_id: str, queue: _Queue) -> None:
        self._kernels.pop(kernel_id, None)
        now = self._clock()
        for user in queue.users:
            user_kernels = self._user_kernels.get(user)
            if user_kernels is not None:
                user_kernels.discard(kernel_id)
                if not user_kernels:
                    del self._user_kernels[user]
            # the one place a lease leaves the store
            self._store.release(user, kernel_id, now)

    def _publish(self, kind, kernel_id: str, execution: Execution, reason: str | None = None) -> None:
        if not self.bus.heard:
            return
        args = (execution.user, kernel_id, execution.msg_id, execution.source, self._wall())
        self.bus.publish(kind(*args, reason) if reason is not None else kind(*args))
