"""Admission control: may this execution start now?

One budget per user, shared by every execution path (kernel websocket and REST), as
rules over a store's primitives (eda_gateway/rules.py, eda_gateway/store.py):

- a sliding window of ``max_executions_per_minute`` admissions per ``window_seconds``;
- at most ``max_executions_per_day`` admissions in any rolling 24 h (off at 0);
- ``max_concurrent_executions`` *kernels* holding at least one admitted, unfinished
  execution ("Run All" queued in one kernel counts once).

A lease (one admitted execution) ends at its ``execute_reply`` (``finish``), when its
kernel goes idle for it (the kernel watcher in the app), when its kernel dies, restarts
or stops (``release_kernel``), or at the latest at a safety expiry tied to the
sandbox's time limit, so no lease can leak.

Everything here is synchronous and never awaits: on the single event loop a check
and its record are one atomic step, so concurrent requests cannot both squeeze into
the last slot. ``usage`` answers with a frozen ``Usage``; handlers render it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .levels import level_of
from .limits import Limits
from .rules import (
    CONCURRENT,
    PER_DAY,
    PER_MINUTE,
    Attempt,
    ConcurrencyRule,
    ConcurrencyUsage,
    DailyQuotaRule,
    Refusal,
    SlidingWindowRule,
    WindowUsage,
)
from .store import MemoryStore, Store

__all__ = ["CONCURRENT", "PER_DAY", "PER_MINUTE", "AdmissionService", "Decision", "MemoryStore", "Store", "Usage"]

log = logging.getLogger(__name__)

# Extra seconds, beyond the sandbox's own time limit and kill grace, before a lease
# nobody ended is considered leaked and dropped.
SAFETY_MARGIN_SECONDS = 10.0

# Users whose resolved limits are remembered.
LIMITS_CACHE_SIZE = 65536


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str | None = None  # None | "per_minute" | "per_day" | "concurrent"
    retry_after_seconds: float = 0.0
    message: str = ""


ALLOWED = Decision(True)


@dataclass(frozen=True)
class ActiveExecution:
    kernel_id: str
    source: str
    started_at: float  # epoch


@dataclass(frozen=True)
class Usage:
    """Where one user's budget stands at ``taken_at``: what rate-limit-status and the
    RateLimit headers show (eda_gateway/handlers/ratelimit.py renders it)."""

    user: str
    limits: Limits
    window: WindowUsage
    concurrency: ConcurrencyUsage
    daily: WindowUsage | None  # None: no daily quota
    active_executions: tuple[ActiveExecution, ...]
    session_started_at: float  # epoch: when this server first saw the user (or taken_at)
    taken_at: float  # epoch

    @property
    def executions_in_window(self) -> int:
        return self.window.executions

    @property
    def remaining(self) -> int:
        return self.window.remaining

    @property
    def reset_in_seconds(self) -> float:
        return self.window.reset_in_seconds

    @property
    def concurrent_executions(self) -> int:
        return len(self.concurrency.kernels)

    @property
    def limited(self) -> bool:
        """The next execution would be refused."""
        return any(part.limited for part in (self.window, self.concurrency, self.daily) if part is not None)

    @property
    def retry_after_seconds(self) -> float:
        """Until every limit that refuses now admits again (0: none refuses)."""
        parts = (self.window, self.concurrency, self.daily)
        return max((p.retry_after_seconds for p in parts if p is not None and p.limited), default=0.0)

    @property
    def level(self) -> str:
        return level_of(self.window.executions / self.window.limit, self.limited)


# --- leases ---------------------------------------------------------------------


@dataclass
class _Execution:
    msg_id: str
    user: str
    source: str
    started_at: float  # epoch, for people
    admitted: float  # monotonic


@dataclass
class _KernelLeases:
    user: str  # the user of the first execution (kernels belong to one user)
    users: set = field(default_factory=set)  # everyone holding a lease here (admins may run too)
    # insertion order == the kernel's execution order
    executions: dict[str, _Execution] = field(default_factory=dict)
    head_since: float = 0.0  # monotonic time the current head execution could start


Listener = Callable[[str, dict], None]


class AdmissionService:
    """The one place that says yes or no to an execution."""

    def __init__(
        self,
        limits_for: Callable[[str], Limits],
        expiry_extra_seconds: float = SAFETY_MARGIN_SECONDS,
        store: Store | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """An unfinished execution's lease is dropped ``max_execution_time +
        expiry_extra_seconds`` after it could start (the sandbox has stopped it by then:
        pass its kill grace plus a margin)."""
        # Limits are static config, but resolving overrides costs ~5 µs: remember them
        # (bounded), sharing one object among users with the same limits.
        interned: dict[Limits, Limits] = {}

        @functools.lru_cache(maxsize=LIMITS_CACHE_SIZE)
        def cached_limits(username: str) -> Limits:
            limits = limits_for(username)
            return interned.setdefault(limits, limits)

        self._limits_for = cached_limits
        self._expiry_extra = expiry_extra_seconds
        self.store: Store = store if store is not None else MemoryStore()
        self._window_rule = SlidingWindowRule()
        self._daily_rule = DailyQuotaRule()
        self._concurrency_rule = ConcurrencyRule(self._concurrency_wait)
        # in this order: the longest wait speaks first (a full day is not "retry in 20 s")
        self.rules = (self._daily_rule, self._window_rule, self._concurrency_rule)
        self._clock = clock
        self._wall = wall_clock
        self._kernels: dict[str, _KernelLeases] = {}
        self._user_kernels: dict[str, set[str]] = {}  # kernels with leases, per user
        self._first_seen: dict[str, float] = {}
        self._listeners: list[Listener] = []

    # --- the questions ---------------------------------------------------------

    def limits(self, username: str) -> Limits:
        return self._limits_for(username)

    def admit(self, username: str, kernel_id: str, msg_id: str, source: str) -> Decision:
        now = self._clock()
        self._first_seen.setdefault(username, self._wall())
        leases = self._kernels.get(kernel_id)
        if leases is not None and msg_id in leases.executions:
            return ALLOWED  # the same request again counts once (the websocket refuses a copy: the kernel would run it)
        self._expire_user(username, now)
        refusal = self._apply_rules(Attempt(username, kernel_id, now, self._limits_for(username)))
        if refusal is not None:
            self._emit("refused", username, kernel_id, msg_id, source, refusal.reason)
            return Decision(False, refusal.reason, refusal.retry_after_seconds, refusal.message)
        if leases is None:
            leases = self._kernels[kernel_id] = _KernelLeases(username, head_since=now)
        elif not leases.executions:
            leases.user = username
            leases.head_since = now
        leases.users.add(username)
        leases.executions[msg_id] = _Execution(msg_id, username, source, self._wall(), now)
        self._user_kernels.setdefault(username, set()).add(kernel_id)
        self._emit("admitted", username, kernel_id, msg_id, source, None)
        return ALLOWED

    def finish(self, kernel_id: str, msg_id: str) -> bool:
        """End one execution's lease; False if it held none."""
        leases = self._kernels.get(kernel_id)
        if leases is None:
            return False
        execution = leases.executions.pop(msg_id, None)
        if execution is None:
            return False
        leases.head_since = self._clock()  # the next queued cell starts now
        if not leases.executions:
            self._drop_kernel(kernel_id, leases)
        self._emit("finished", execution.user, kernel_id, msg_id, execution.source, None)
        return True

    def release_kernel(self, kernel_id: str) -> int:
        """The kernel died, restarted or stopped: end all of its leases."""
        leases = self._kernels.get(kernel_id)
        if leases is None:
            return 0
        ended = list(leases.executions.values())
        leases.executions.clear()
        self._drop_kernel(kernel_id, leases)
        for execution in ended:
            self._emit("finished", execution.user, kernel_id, execution.msg_id, execution.source, None)
        return len(ended)

    def holds(self, kernel_id: str, msg_id: str) -> bool:
        leases = self._kernels.get(kernel_id)
        return leases is not None and msg_id in leases.executions

    def pending_on(self, kernel_id: str) -> list[str]:
        """msg_ids admitted on this kernel and not finished yet, oldest first."""
        leases = self._kernels.get(kernel_id)
        return list(leases.executions) if leases is not None else []

    def active_executions(self, username: str | None = None) -> list[dict]:
        now = self._clock()
        if username is None:
            kernel_ids = list(self._kernels)
            for user in {self._kernels[k].user for k in kernel_ids}:
                self._expire_user(user, now)
        else:
            self._expire_user(username, now)
        kernel_ids = self._user_kernels.get(username, ()) if username is not None else self._kernels
        return [
            {
                "kernel_id": kid,
                "msg_id": e.msg_id,
                "user": e.user,
                "source": e.source,
                "started_at": e.started_at,
            }
            for kid in list(kernel_ids)
            for e in self._kernels[kid].executions.values()
        ]

    def saw(self, username: str) -> None:
        """The user themselves asked something: their session starts now if it has not yet
        (someone else looking, an admin, must not start it)."""
        self._first_seen.setdefault(username, self._wall())

    def usage(self, username: str) -> Usage:
        """Where ``username``'s budget stands now; changes nothing but expired leases."""
        active = tuple(
            ActiveExecution(e["kernel_id"], e["source"], e["started_at"]) for e in self.active_executions(username)
        )
        now, wall = self._clock(), self._wall()
        limits = self._limits_for(username)
        return Usage(
            user=username,
            limits=limits,
            window=self._window_rule.usage(self.store, username, now, limits),
            concurrency=self._concurrency_rule.usage(self.store, username, now, limits),
            daily=self._daily_rule.usage(self.store, username, now, limits),
            active_executions=active,
            session_started_at=self._first_seen.get(username, wall),
            taken_at=wall,
        )

    def add_listener(self, callback: Listener) -> None:
        self._listeners.append(callback)

    # --- internals ------------------------------------------------------------

    def _apply_rules(self, attempt: Attempt) -> Refusal | None:
        """Run the rules in order; on a refusal take back what earlier ones recorded."""
        undos = []
        for rule in self.rules:
            outcome = rule.admit(self.store, attempt)
            if isinstance(outcome, Refusal):
                for undo in reversed(undos):
                    undo()
                return outcome
            undos.append(outcome)
        return None

    def _concurrency_wait(self, username: str, now: float) -> float:
        """Seconds until a busy kernel must be free: its current execution ends by the
        sandbox's time limit at the latest (usually much sooner); at least 1 s."""
        limit = self._limits_for(username).max_execution_time
        waits = [
            self._kernels[kid].head_since + limit - now
            for kid in self._user_kernels.get(username, ())
            if kid in self._kernels
        ]
        return max(1.0, min(waits)) if waits else 1.0

    def _expire_user(self, username: str, now: float) -> None:
        """Drop leases older than the safety budget (their end went unseen)."""
        kernel_ids = self._user_kernels.get(username)
        if not kernel_ids:
            return
        budget = self._limits_for(username).max_execution_time + self._expiry_extra
        for kid in list(kernel_ids):
            leases = self._kernels.get(kid)
            if leases is None:
                kernel_ids.discard(kid)
                continue
            while leases.executions and now - leases.head_since > budget:
                msg_id, execution = next(iter(leases.executions.items()))
                log.warning(
                    "eda_gateway: lease of %s on kernel %s expired after %.0f s without an end",
                    msg_id,
                    kid,
                    budget,
                )
                del leases.executions[msg_id]
                leases.head_since += budget
                self._emit("finished", execution.user, kid, msg_id, execution.source, "expired")
            if not leases.executions:
                self._drop_kernel(kid, leases)

    def _drop_kernel(self, kernel_id: str, leases: _KernelLeases) -> None:
        self._kernels.pop(kernel_id, None)
        now = self._clock()
        for user in leases.users or {leases.user}:
            user_kernels = self._user_kernels.get(user)
            if user_kernels is not None:
                user_kernels.discard(kernel_id)
                if not user_kernels:
                    del self._user_kernels[user]
            self.store.release(user, kernel_id, now)

    def _emit(self, event, user, kernel_id, msg_id, source, reason) -> None:
        if not self._listeners:
            return
        info = {
            "user": user,
            "kernel_id": kernel_id,
            "msg_id": msg_id,
            "source": source,
            "reason": reason,
            "at": self._wall(),
        }
        for callback in list(self._listeners):
            try:
                callback(event, info)
            except Exception:
                log.exception("eda_gateway: admission listener failed on %s", event)


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))

