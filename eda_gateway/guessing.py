"""Slows down guessing: failed authentications per key (a client address), then backoff.

A key may fail ``free_failures`` times in a row at full speed (typos, an old token in
a script). Each failure after that doubles the wait before the next attempt from that
key, from ``base_delay`` up to ``max_delay`` seconds. Only ``max_delay`` quiet seconds
after the wait ran out forget the key; a success does not (a user guessing others'
tokens would reset their own count with their own valid one). At most ``max_keys`` keys are
remembered (the longest quiet go first), so a flood of addresses cannot grow memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Record:
    failures: int = 0
    blocked_until: float = 0.0
    last_failure: float = 0.0


class GuessThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic, free_failures: int = 5,
                 base_delay: float = 1.0, max_delay: float = 300.0, max_keys: int = 10_000):
        self.clock = clock
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_keys = max_keys
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def _record(self, key: str) -> _Record | None:
        record = self._records.get(key)
        if record is not None and self.clock() > max(record.blocked_until, record.last_failure) + self.max_delay:
            del self._records[key]  # quiet long enough: a fresh start
            return None
        return record

    def retry_after(self, key: str) -> float:
        """Seconds before ``key`` may try again (0: now)."""
        record = self._record(key)
        return max(0.0, record.blocked_until - self.clock()) if record else 0.0

    def failed(self, key: str) -> int:
        """Count a failure; returns how many in a row this key has now."""
        now = self.clock()
        record = self._record(key) or _Record()
        record.failures += 1
        record.last_failure = now
        over = record.failures - self.free_failures
        if over > 0:
            record.blocked_until = now + min(self.max_delay, self.base_delay * 2 ** (over - 1))
        self._records[key] = record
        self._records.move_to_end(key)
        while len(self._records) > self.max_keys:
            self._records.popitem(last=False)
        return record.failures
