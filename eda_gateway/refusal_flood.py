"""When one connection keeps sending requests that are refused: slow it, then close it.

A refusal costs the sender nothing, so a client in a loop can draw thousands a
second. Per connection, refusals are counted over a sliding window: up to
``slow_after`` are answered at once (a person pressing run again), more are answered
after ``delay`` seconds each, and past ``close_after`` the connection is closed with
``CLOSE_CODE`` and a reason naming the setting.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

CLOSE_CODE = 4029  # application range (4000-4999), after HTTP 429 Too Many Requests
SETTING = "EDARateLimiter.refusal_flood_close_after"


class RefusalFlood:
    def __init__(self, slow_after: int, close_after: int, window: float, delay: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.slow_after = slow_after
        self.close_after = close_after
        self.window = window
        self.delay = delay
        self.clock = clock
        self._times: deque[float] = deque(maxlen=close_after + 1)

    def refused(self) -> float | None:
        """Seconds to wait before answering this refusal (0: now), or None: close instead."""
        now = self.clock()
        self._times.append(now)
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()
        count = len(self._times)
        if count > self.close_after:
            return None
        return self.delay if count > self.slow_after else 0.0

    def reason(self) -> str:
        """The close reason (a websocket allows 123 bytes)."""
        return f"too many refused executions: over {self.close_after} in {self.window:g} s ({SETTING})"
