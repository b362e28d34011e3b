"""Admission rules over a store's primitives (eda_gateway/store.py).

Each rule names its part of an admission as a store step (``step``: add to a window, hold
a lease) and reads the store's outcome (``judge``: a refusal with a reason, a wait and a
message, or None). ``AdmissionService.admit`` hands every rule's step to the store at once
(``Store.apply``: all or nothing, one round trip for a shared store) and the first refused
step's rule speaks. Each rule also reports its part of a user's usage.

- ``SlidingWindowRule``: ``max_executions_per_minute`` admissions per ``window_seconds``.
- ``DailyQuotaRule``: ``max_executions_per_day`` admissions in any 24 h (0: off).
- ``ConcurrencyRule``: ``max_concurrent_executions`` kernels holding a lease of the user;
  a kernel that holds one already passes ("Run All" queued in one kernel counts once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from .limits import Limits
from .store import Add, Hold, LeaseHold, Outcome, Step, Store, WindowAdd

PER_MINUTE = "per_minute"
PER_DAY = "per_day"
CONCURRENT = "concurrent"

DAY_SECONDS = 86400.0


class Attempt(NamedTuple):
    """One execution asking to be admitted."""

    user: str
    kernel_id: str
    now: float  # the store's (monotonic) clock
    limits: Limits


class Refusal(NamedTuple):
    reason: str
    retry_after_seconds: float
    message: str


class Rule(Protocol):
    reason: str

    def step(self, attempt: Attempt) -> Step | None:
        """This rule's part of the admission, for ``Store.apply``; None: the rule is off."""

    def judge(self, attempt: Attempt, outcome: Outcome) -> Refusal | None:
        """The refusal ``outcome`` (the store's answer to ``step``) means, if any."""


@dataclass(frozen=True)
class WindowUsage:
    """A sliding window's part of a user's usage."""

    limit: int
    window_seconds: float
    executions: int
    remaining: int
    reset_in_seconds: float  # until the oldest admission in the window leaves it (0: none in it)

    @property
    def limited(self) -> bool:
        return self.remaining == 0

    @property
    def retry_after_seconds(self) -> float:
        return self.reset_in_seconds if self.limited else 0.0


@dataclass(frozen=True)
class ConcurrencyUsage:
    limit: int
    kernels: frozenset[str]
    retry_after_seconds: float  # 0 unless every slot is busy

    @property
    def limited(self) -> bool:
        return len(self.kernels) >= self.limit


class _WindowRule:
    """An exact sliding window over the store's ``add``: at most ``limit`` admissions
    in any ``window_seconds``."""

    reason = ""
    window = ""

    def limit_of(self, limits: Limits) -> int:
        raise NotImplementedError

    def seconds_of(self, limits: Limits) -> float:
        raise NotImplementedError

    def words(self, limit: int, seconds: float, wait: float) -> str:
        raise NotImplementedError

    def step(self, attempt: Attempt) -> Add | None:
        limit = self.limit_of(attempt.limits)
        return Add(self.window, limit, self.seconds_of(attempt.limits)) if limit > 0 else None

    def judge(self, attempt: Attempt, outcome: WindowAdd) -> Refusal | None:
        if outcome.added:
            return None
        limit, seconds = self.limit_of(attempt.limits), self.seconds_of(attempt.limits)
        # the oldest admission in the window leaves it first
        wait = max(outcome.oldest + seconds - attempt.now, 0.001) if outcome.oldest is not None else 0.001
        return Refusal(self.reason, wait, self.words(limit, seconds, wait))

    def usage(self, store: Store, user: str, now: float, limits: Limits) -> WindowUsage | None:
        limit = self.limit_of(limits)
        if limit <= 0:
            return None
        seconds = self.seconds_of(limits)
        read = store.read(user, self.window, seconds, now)
        reset_in = max(0.0, read.oldest + seconds - now) if read.oldest is not None else 0.0
        return WindowUsage(limit, seconds, read.count, max(0, limit - read.count), reset_in)


class SlidingWindowRule(_WindowRule):
    reason = PER_MINUTE
    window = PER_MINUTE

    def limit_of(self, limits: Limits) -> int:
        return limits.max_executions_per_minute

    def seconds_of(self, limits: Limits) -> float:
        return limits.window_seconds

    def words(self, limit: int, seconds: float, wait: float) -> str:
        return (
            f"Rate limit exceeded: at most {limit} executions per {whole_seconds_words(seconds)} s. "
            f"Try again in {whole_seconds_words(wait)} s."
        )


class DailyQuotaRule(_WindowRule):
    """At most ``max_executions_per_day`` admissions in any rolling 24 h; off at 0."""

    reason = PER_DAY
    window = PER_DAY

    def limit_of(self, limits: Limits) -> int:
        return limits.max_executions_per_day

    def seconds_of(self, limits: Limits) -> float:
        return DAY_SECONDS

    def words(self, limit: int, seconds: float, wait: float) -> str:
        return (
            f"Daily quota exceeded: at most {limit} executions per 24 h (EDARateLimiter.max_executions_per_day). "
            f"Try again in {duration_words(wait)}."
        )


class ConcurrencyRule:
    """At most ``max_concurrent_executions`` kernels hold a lease of the user."""

    reason = CONCURRENT

    def __init__(self, wait_for: Callable[[str, float], float]) -> None:
        """``wait_for(user, now)``: seconds until a busy kernel of the user must be free."""
        self._wait_for = wait_for

    def step(self, attempt: Attempt) -> Hold:
        return Hold(attempt.kernel_id, attempt.limits.max_concurrent_executions)

    def judge(self, attempt: Attempt, outcome: LeaseHold) -> Refusal | None:
        if outcome.held:
            return None  # a new lease, or this kernel holds one already
        limit = attempt.limits.max_concurrent_executions
        wait = self._wait_for(attempt.user, attempt.now)
        return Refusal(
            CONCURRENT,
            wait,
            f"Concurrency limit exceeded: at most {limit} kernels may run executions at once. "
            f"Try again in {whole_seconds_words(wait)} s, or when a running execution ends.",
        )

    def usage(self, store: Store, user: str, now: float, limits: Limits) -> ConcurrencyUsage:
        kernels = store.held(user)
        limit = limits.max_concurrent_executions
        wait = self._wait_for(user, now) if len(kernels) >= limit else 0.0
        return ConcurrencyUsage(limit, kernels, wait)


def whole_seconds_words(value: float) -> str:
    """Whole seconds for people, rounded up so waiting that long always works."""
    return str(max(1, int(-(-value // 1))))


def duration_words(value: float) -> str:
    """``41 s``, ``12 min``, ``5 h 12 min``: rounded up so waiting that long always works."""
    seconds = int(whole_seconds_words(value))
    if seconds < 60:
        return f"{seconds} s"
    minutes = -(-seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if minutes else f"{hours} h"
