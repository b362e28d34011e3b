"""Refusal log lines, rate-limited: the first per user per interval, then a summary.

A refused request costs its sender nothing; a log line per refusal would let one
user grow the server log without bound. Per user, the first refusal of each
interval is logged in full; the rest are counted, and ``tick`` (called periodically
and on each refusal) logs one line per user at the end of the interval:
"alice: 1,432 refusals in the last 60 s".

``quiet_refusals`` applies the same to the server's access log lines of 429 answers
(REST executions over budget, refused kernel connections, authentication backoff).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RefusalLog:
    def __init__(self, log, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.interval = interval
        self.clock = clock
        self._started = clock()
        self._counts: dict[str, int] = {}

    def first(self, user: str) -> bool:
        """Count one refusal of ``user``; True if it is their first of the interval."""
        self.tick()
        seen = self._counts.get(user, 0)
        self._counts[user] = seen + 1
        return not seen

    def refused(self, user: str, message: str, *args) -> None:
        """Log ``message % args`` if it is ``user``'s first refusal of the interval."""
        if self.first(user):
            self.log.info(message + " (further refusals of %s are summarised every %g s)", *args, user,
                          self.interval)

    def tick(self) -> None:
        now = self.clock()
        elapsed = now - self._started
        if elapsed < self.interval:
            return
        for user, count in sorted(self._counts.items()):
            if count > 1:
                self.log.info("eda_gateway: %s: %s refusals in the last %.0f s", user, f"{count:,}", elapsed)
        self._counts.clear()
        self._started = now


def quiet_refusals(log_function: Callable, refusals: RefusalLog) -> Callable:
    """jupyter_server's ``log_function`` (one line per request), with 429 answers
    rate-limited per user (per client address when no one is logged in)."""

    def log_request(handler, *args, **kwargs):
        if handler.get_status() == 429:
            try:
                who = getattr(handler.current_user, "username", None)
            except Exception:
                who = None
            if not refusals.first(who or f"client {handler.request.remote_ip}"):
                return None
        return log_function(handler, *args, **kwargs)

    return log_request
