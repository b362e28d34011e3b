"""Admission control: may this execution start now?

One budget per user, shared by every execution path (kernel websocket and REST), as
rules over a store's primitives (eda_gateway/rules.py, eda_gateway/store.py):

- a sliding window of ``max_executions_per_minute`` admissions per ``window_seconds``;
- at most ``max_executions_per_day`` admissions in any rolling 24 h (off at 0);
- ``max_concurrent_executions`` *kernels* holding at least one admitted, unfinished
  execution ("Run All" queued in one kernel counts once).

Admission decides; a lease (one admitted execution) is recorded, and ended, in the
execution ledger (eda_gateway/ledger.py): at its ``execute_reply``, when its kernel goes
idle for it, dies, restarts or stops, or at the latest at a safety expiry tied to the
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
from dataclasses import dataclass

from .ledger import ExecutionBus, ExecutionLedger
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
from .rules import whole_seconds_words
from .store import MemoryStore, Store, StoreUnavailable

__all__ = ["CONCURRENT", "PER_DAY", "PER_MINUTE", "UNAVAILABLE", "AdmissionService", "Decision", "MemoryStore",
           "Store", "StoreUnavailable", "Usage"]

# The refusal's reason when the shared store is out of reach (named AdmissionUnavailable).
UNAVAILABLE = "unavailable"

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


# --- admission --------------------------------------------------------------------


class AdmissionService:
    """The one place that says yes or no to an execution."""

    def __init__(
        self,
        limits_for: Callable[[str], Limits],
        expiry_extra_seconds: float = SAFETY_MARGIN_SECONDS,
        store: Store | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        ledger: ExecutionLedger | None = None,
        fail_open: bool = False,
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
        self.store: Store = store if store is not None else MemoryStore()
        self._window_rule = SlidingWindowRule()
        self._daily_rule = DailyQuotaRule()
        self._concurrency_rule = ConcurrencyRule(self._concurrency_wait)
        # in this order: the longest wait speaks first (a full day is not "retry in 20 s")
        self.rules = (self._daily_rule, self._window_rule, self._concurrency_rule)
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
        # a shared store out of reach: refuse (default) or admit uncounted
        self.fail_open = fail_open
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
        try:
            refusal = self._apply_rules(Attempt(username, kernel_id, now, self._limits_for(username)))
        except StoreUnavailable as e:
            if self.fail_open:  # the admin chose it (EDARateLimiter.store_failure = "open")
                self.ledger.begin(username, kernel_id, msg_id, source)
                return ALLOWED
            wait = max(1.0, e.retry_after)
            self.ledger.refused(username, kernel_id, msg_id, source, UNAVAILABLE)
            return Decision(
                False, UNAVAILABLE, wait,
                "Admission unavailable: the shared execution budget cannot be checked now (the admission store, "
                f"EDARateLimiter.store_url, is out of reach). Try again in {whole_seconds_words(wait)} s.",
            )
        if refusal is not None:
            self.ledger.refused(username, kernel_id, msg_id, source, refusal.reason)
            return Decision(False, refusal.reason, refusal.retry_after_seconds, refusal.message)
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

    def saw(self, username: str) -> None:
        """The user themselves asked something: their session starts now if it has not yet
        (someone else looking, an admin, must not start it)."""
        self._first_seen.setdefault(username, self._wall())

    def usage(self, username: str) -> Usage:
        """Where ``username``'s budget stands now; changes nothing but expired leases (the
        ledger drops those when asked for the active executions, before the store is read).
        Raises StoreUnavailable when a shared store is out of reach."""
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

    # --- internals ------------------------------------------------------------

    def _apply_rules(self, attempt: Attempt) -> Refusal | None:
        """Every rule's step in one ``Store.apply`` (all or nothing); the rule of the first
        refused step speaks. Raises StoreUnavailable (a shared store out of reach)."""
        ruled = [(rule, step) for rule in self.rules if (step := rule.step(attempt)) is not None]
        outcomes = self.store.apply(attempt.user, [step for _, step in ruled], attempt.now)
        for (rule, _), outcome in zip(ruled, outcomes):
            refusal = rule.judge(attempt, outcome)
            if refusal is not None:
                return refusal
        return None

    def _concurrency_wait(self, username: str, now: float) -> float:
        """Seconds until a busy kernel must be free: its current execution ends by the
        sandbox's time limit at the latest (usually much sooner); at least 1 s."""
        limit = self._limits_for(username).max_execution_time
        waits = [since + limit - now for since in self.ledger.head_starts(username)]
        return max(1.0, min(waits)) if waits else 1.0


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))

