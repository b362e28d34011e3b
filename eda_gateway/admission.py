"""Admission control: may this execution start now?

One budget per user, shared by every execution path (kernel websocket and REST):

- a sliding window of ``max_executions_per_minute`` admissions per ``window_seconds``,
  kept as a log of the user's last ``limit`` admission times (memory O(limit));
- ``max_concurrent_executions`` *kernels* holding at least one admitted, unfinished
  execution ("Run All" queued in one kernel counts once).

Admission decides; a lease (one admitted execution) is recorded, and ended, in the
execution ledger (eda_gateway/ledger.py): at its ``execute_reply``, when its kernel goes
idle for it, dies, restarts or stops, or at the latest at a safety expiry tied to the
sandbox's time limit, so no lease can leak.

Everything here is synchronous and never awaits: on the single event loop a check
and its record are one atomic step, so concurrent requests cannot both squeeze into
the last slot. The per-user window and busy-kernel set live behind ``AdmissionStore``
so that a shared store (several servers) can replace ``MemoryStore``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .ledger import ExecutionBus, ExecutionLedger
from .limits import Limits

log = logging.getLogger(__name__)

PER_MINUTE = "per_minute"
CONCURRENT = "concurrent"

# Extra seconds, beyond the sandbox's own time limit and kill grace, before a lease
# nobody ended is considered leaked and dropped.
SAFETY_MARGIN_SECONDS = 10.0

# Users whose resolved limits are remembered.
LIMITS_CACHE_SIZE = 65536

# Idle users dropped per admission (amortised clean-up, never a sweep of all users).
_DROP_PER_CALL = 4


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str | None = None  # None | "per_minute" | "concurrent"
    retry_after_seconds: float = 0.0
    message: str = ""


ALLOWED = Decision(True)


# --- storage ------------------------------------------------------------------


class AdmissionStore(Protocol):
    """Per-user window log and busy kernels; each call is atomic."""

    def acquire(self, user: str, kernel_id: str, now: float, limits: Limits) -> str | None:
        """Record an admission (and the kernel as busy) or return the refusal reason."""

    def release(self, user: str, kernel_id: str, now: float) -> None:
        """The kernel holds no admitted execution of ``user`` any more."""

    def usage(self, user: str, now: float, limits: Limits) -> "Usage":
        """What ``user`` has used, without changing anything."""


@dataclass
class Usage:
    in_window: int = 0
    oldest: float | None = None  # monotonic time of the oldest admission in the window
    newest: float | None = None
    busy_kernels: frozenset = frozenset()


class _UserState:
    __slots__ = ("times", "busy")

    def __init__(self, limit: int) -> None:
        self.times: deque[float] = deque(maxlen=limit)  # monotonic admission times
        self.busy: set[str] | None = None  # kernels holding a lease; None when empty


class MemoryStore:
    """In-process store: one deque of at most ``limit`` times per active user.

    Users are kept in last-touched order; each call drops a few users at the front
    whose window is empty and who hold no lease, so idle users cost nothing and no
    call ever walks all users.
    """

    def __init__(self) -> None:
        self._users: OrderedDict[str, _UserState] = OrderedDict()
        self._windows: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._users)

    def _state(self, user: str, limits: Limits) -> _UserState:
        state = self._users.get(user)
        if state is None:
            state = self._users[user] = _UserState(limits.max_executions_per_minute)
        elif state.times.maxlen != limits.max_executions_per_minute:
            state.times = deque(state.times, maxlen=limits.max_executions_per_minute)
        self._windows[user] = limits.window_seconds
        return state

    @staticmethod
    def _in_window(times: deque, now: float, window: float) -> tuple[int, float | None]:
        horizon = now - window
        count = 0
        oldest = None
        for t in reversed(times):  # newest first; at most ``limit`` entries
            if t <= horizon:
                break
            count += 1
            oldest = t
        return count, oldest

    def acquire(self, user: str, kernel_id: str, now: float, limits: Limits) -> str | None:
        state = self._state(user, limits)
        times = state.times
        # the window is full when the oldest of the last ``limit`` admissions is still in it
        if len(times) == times.maxlen and times[0] > now - limits.window_seconds:
            self._touch(user, now)
            return PER_MINUTE
        busy = state.busy
        if (busy is None or kernel_id not in busy) and len(busy or ()) >= limits.max_concurrent_executions:
            self._touch(user, now)
            return CONCURRENT
        times.append(now)
        if busy is None:
            state.busy = {kernel_id}
        else:
            busy.add(kernel_id)
        self._touch(user, now)
        return None

    def release(self, user: str, kernel_id: str, now: float) -> None:
        state = self._users.get(user)
        if state is None or state.busy is None:
            return
        state.busy.discard(kernel_id)
        if not state.busy:
            state.busy = None

    def usage(self, user: str, now: float, limits: Limits) -> Usage:
        state = self._users.get(user)
        if state is None:
            return Usage()
        count, oldest = self._in_window(state.times, now, limits.window_seconds)
        newest = state.times[-1] if state.times else None
        return Usage(count, oldest, newest, frozenset(state.busy or ()))

    def _touch(self, user: str, now: float) -> None:
        self._users.move_to_end(user)
        for _ in range(_DROP_PER_CALL):
            first = next(iter(self._users))
            if first == user:
                return
            state = self._users[first]
            window = self._windows.get(first, 0.0)
            if state.busy or (state.times and state.times[-1] > now - window):
                # still active: give it another turn at the back
                self._users.move_to_end(first)
                continue
            del self._users[first]
            self._windows.pop(first, None)


# --- admission --------------------------------------------------------------------


class AdmissionService:
    """The one place that says yes or no to an execution."""

    def __init__(
        self,
        limits_for: Callable[[str], Limits],
        expiry_extra_seconds: float = SAFETY_MARGIN_SECONDS,
        store: AdmissionStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        ledger: ExecutionLedger | None = None,
    ) -> None:
        """Leases live in ``ledger`` (eda_gateway/ledger.py), which must release them in
        ``store``. Without one, a ledger of its own drops an unfinished execution's lease
        ``max_execution_time + expiry_extra_seconds`` after it could start (the sandbox has
        stopped it by then: pass its kill grace plus a margin)."""
        # Limits are static config, but resolving overrides costs ~5 µs: remember them
        # (bounded), sharing one object among users with the same limits.
        interned: dict[Limits, Limits] = {}

        @functools.lru_cache(maxsize=LIMITS_CACHE_SIZE)
        def cached_limits(username: str) -> Limits:
            limits = limits_for(username)
            return interned.setdefault(limits, limits)

        self._limits_for = cached_limits
        self.store: AdmissionStore = store if store is not None else MemoryStore()
        self._clock = clock
        self._wall = wall_clock
        if ledger is None:
            ledger = ExecutionLedger(
                ExecutionBus(),
                self.store,
                lambda user: self._limits_for(user).max_execution_time + expiry_extra_seconds,
                clock,
                wall_clock,
            )
        self.ledger = ledger
        self._first_seen: dict[str, float] = {}

    # --- the questions ---------------------------------------------------------

    def limits(self, username: str) -> Limits:
        return self._limits_for(username)

    def admit(self, username: str, kernel_id: str, msg_id: str, source: str) -> Decision:
        """Yes (the ledger records the lease) or no, with when to retry."""
        now = self._clock()
        self._first_seen.setdefault(username, self._wall())
        if self.ledger.holds(kernel_id, msg_id):
            return ALLOWED  # the same request again counts once (the websocket refuses a copy: the kernel would run it)
        self.ledger.expire(username)
        limits = self._limits_for(username)
        reason = self.store.acquire(username, kernel_id, now, limits)
        if reason is not None:
            decision = self._refusal(username, reason, now, limits)
            self.ledger.refused(username, kernel_id, msg_id, source, reason)
            return decision
        self.ledger.begin(username, kernel_id, msg_id, source)
        return ALLOWED

    # Read-only views of the ledger, for the callers that ask admission.
    def holds(self, kernel_id: str, msg_id: str) -> bool:
        return self.ledger.holds(kernel_id, msg_id)

    def pending_on(self, kernel_id: str) -> list[str]:
        """msg_ids admitted on this kernel and not finished yet, oldest first."""
        return self.ledger.pending_on(kernel_id)

    def active_executions(self, username: str | None = None) -> list[dict]:
        return self.ledger.active_executions(username)

    def status(self, username: str, observe: bool = True) -> dict:
        """The rate-limit-status answer (openapi.json).

        ``observe=False`` when someone else (an admin) asks: that must not start
        the user's session.
        """
        now, wall = self._clock(), self._wall()
        if observe:
            first_seen = self._first_seen.setdefault(username, wall)
        else:
            first_seen = self._first_seen.get(username, wall)
        self.ledger.expire(username)
        limits = self._limits_for(username)
        usage = self.store.usage(username, now, limits)
        limit, window = limits.max_executions_per_minute, limits.window_seconds
        remaining = max(0, limit - usage.in_window)
        concurrent = len(usage.busy_kernels)
        reset_in = usage.oldest + window - now if usage.oldest is not None else 0.0
        retry_after = 0.0
        if remaining == 0:
            retry_after = reset_in
        elif concurrent >= limits.max_concurrent_executions:
            retry_after = self._concurrency_wait(username, now)
        used = usage.in_window / limit
        if remaining == 0 or concurrent >= limits.max_concurrent_executions:
            level = "limited"
        elif used < 0.5:
            level = "normal"
        elif used < 0.8:
            level = "medium"
        else:
            level = "high"
        active = [
            {
                "kernel_id": e["kernel_id"],
                "source": e["source"],
                "started_at": iso(e["started_at"]),
                "duration_seconds": round(max(0.0, wall - e["started_at"]), 3),
            }
            for e in self.active_executions(username)
        ]
        return {
            "user": username,
            "limits": {
                "max_executions_per_minute": limit,
                "window_seconds": window,
                "max_concurrent_executions": limits.max_concurrent_executions,
            },
            "executions_in_window": usage.in_window,
            "remaining": remaining,
            "concurrent_executions": concurrent,
            "retry_after_seconds": round(max(0.0, retry_after), 3),
            "reset_in_seconds": round(max(0.0, reset_in), 3),
            "status": level,
            "active_executions": active,
            "session": {
                "started_at": iso(first_seen),
                "duration_seconds": round(max(0.0, wall - first_seen), 3),
            },
        }

    # --- internals ------------------------------------------------------------

    def _refusal(self, username: str, reason: str, now: float, limits: Limits) -> Decision:
        if reason == PER_MINUTE:
            usage = self.store.usage(username, now, limits)
            wait = (usage.oldest + limits.window_seconds - now) if usage.oldest is not None else 0.0
            wait = max(wait, 0.001)
            message = (
                f"Rate limit exceeded: at most {limits.max_executions_per_minute} executions "
                f"per {_seconds(limits.window_seconds)} s. Try again in {_seconds(wait)} s."
            )
        else:
            wait = self._concurrency_wait(username, now)
            message = (
                f"Concurrency limit exceeded: at most {limits.max_concurrent_executions} kernels "
                f"may run executions at once. Try again in {_seconds(wait)} s, "
                f"or when a running execution ends."
            )
        return Decision(False, reason, wait, message)

    def _concurrency_wait(self, username: str, now: float) -> float:
        """Seconds until a busy kernel must be free: its current execution ends by the
        sandbox's time limit at the latest (usually much sooner); at least 1 s."""
        limit = self._limits_for(username).max_execution_time
        waits = [since + limit - now for since in self.ledger.head_starts(username)]
        return max(1.0, min(waits)) if waits else 1.0


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _seconds(value: float) -> str:
    """Whole seconds for people, rounded up so waiting that long always works."""
    return str(max(1, int(-(-value // 1))))
